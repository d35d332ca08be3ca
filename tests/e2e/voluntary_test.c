/* handover-voluntary end to end: the real hub, the real voluntary adapter
 * and the voluntary organisation simulator as processes over real sockets;
 * the samples' webhook requests are replayed byte for byte on a raw
 * socket. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "handover.pb-c.h"
#include "handover/timeutil.h"
#include "harness.h"

#ifndef HANDOVER_SHARED_DIR
#define HANDOVER_SHARED_DIR HANDOVER_SOURCE_DIR "/../shared"
#endif
#define WEBHOOK HANDOVER_SHARED_DIR "/samples/webhook"

/* Brackenby Befrienders' test secret (samples/README.md). */
#define SECRET_0002                                                            \
    "handover-test-secret-brackenby-befrienders-NOT-FOR-PRODUCTION"
#define ZOE_REFERRAL "25e14237-735f-51b9-b0fb-c87ec41a3aae"
#define ZOE_OUTCOME  "73c49e42-a681-548f-851f-58bd3074d520"
/* The samples' clock (samples/README.md, webhook section). */
#define SAMPLE_CLOCK "inbound.clock_override=1742211070"

typedef struct rig {
    th_hub hub;
    th_proc adapter, sim;
    char dir[256];
    char mode_file[300], sim_log[300], orgs[300];
    char listen_port[16], sim_port[16];
    char set_hub[128], set_listen[64], set_orgs[360], set_url[128];
    char outcome_url[128];
    const char *adapter_argv[24], *sim_argv[16];
} rig;

static const char *const hub_extra[] = {
    "--set", "backoff_initial_ms=100", "--set", "backoff_max_ms=800",
    "--set", "max_attempts=100",       NULL,
};

static void
set_mode(rig *r, const char *mode)
{
    FILE *f = fopen(r->mode_file, "w");
    cr_assert_not_null(f);
    fprintf(f, "%s\n", mode);
    fclose(f);
}

static void
rig_init(rig *r, const char *extra)
{
    memset(r, 0, sizeof *r);
    th_hub_init(&r->hub, hub_extra);
    snprintf(r->dir, sizeof r->dir, "%s", r->hub.dir);
    snprintf(r->mode_file, sizeof r->mode_file, "%s/vsim.mode", r->dir);
    snprintf(r->sim_log, sizeof r->sim_log, "%s/vsim.received", r->dir);
    snprintf(r->orgs, sizeof r->orgs, "%s/voluntary-orgs", r->dir);
    snprintf(r->listen_port, sizeof r->listen_port, "%d", th_free_port());
    snprintf(r->sim_port, sizeof r->sim_port, "%d", th_free_port());
    snprintf(r->set_hub, sizeof r->set_hub, "hub.endpoint=%s", r->hub.endpoint);
    snprintf(r->set_listen, sizeof r->set_listen, "listen.port=%s",
             r->listen_port);
    snprintf(r->set_orgs, sizeof r->set_orgs, "partner.orgs_file=%s", r->orgs);
    snprintf(r->set_url, sizeof r->set_url,
             "partner.default_url=http://127.0.0.1:%s/handover/v1/referrals",
             r->sim_port);
    snprintf(r->outcome_url, sizeof r->outcome_url,
             "http://127.0.0.1:%s/webhooks/v1/outcome", r->listen_port);
    /* The organisation table: secrets, so owner-only. */
    FILE *f = fopen(r->orgs, "w");
    cr_assert_not_null(f);
    fprintf(f, "# org            url  key id            secret\n"
               "local:VCS-0001   -    vcs-0001-2025-01  "
               "test-secret-aldercote-age-well-NOT-FOR-PRODUCTION\n"
               "local:VCS-0002   -    vcs-0002-2025-01  " SECRET_0002 "\n");
    fclose(f);
    chmod(r->orgs, 0600);
    set_mode(r, "200");
    const char **a = r->adapter_argv;
    int n = 0;
    a[n++] = HANDOVER_VOLUNTARY_BIN;
    a[n++] = "--set";
    a[n++] = r->set_hub;
    a[n++] = "--set";
    a[n++] = r->set_listen;
    a[n++] = "--set";
    a[n++] = r->set_orgs;
    a[n++] = "--set";
    a[n++] = r->set_url;
    a[n++] = "--set";
    a[n++] = "partner.timeout_ms=2000";
    if (extra != NULL) {
        a[n++] = "--set";
        a[n++] = extra;
    }
    a[n] = NULL;
    th_proc_init(&r->adapter, r->dir, "voluntary", "started:", r->adapter_argv);
    const char **s = r->sim_argv;
    n = 0;
    s[n++] = HANDOVER_VOLUNTARY_SIM_BIN;
    s[n++] = "serve";
    s[n++] = "--port";
    s[n++] = r->sim_port;
    s[n++] = "--secret";
    s[n++] = SECRET_0002;
    s[n++] = "--mode-file";
    s[n++] = r->mode_file;
    s[n++] = "--log";
    s[n++] = r->sim_log;
    s[n] = NULL;
    th_proc_init(&r->sim, r->dir, "voluntary-sim", "listens on", r->sim_argv);
    th_hub_start(&r->hub);
}

static void
rig_fini(rig *r)
{
    th_proc_kill(&r->adapter, SIGKILL);
    th_proc_kill(&r->sim, SIGKILL);
    th_hub_fini(&r->hub);
}

/* Lines in the simulator's log for key with status st (0: any). */
static size_t
sim_count(const rig *r, const char *key, int st)
{
    FILE *f = fopen(r->sim_log, "r");
    if (f == NULL)
        return 0;
    char line[256];
    size_t n = 0;
    while (fgets(line, sizeof line, f)) {
        char k[128], d[64];
        int s = -1;
        if (sscanf(line, "%127s %63s %d", k, d, &s) != 3)
            continue;
        if (strcmp(k, key) == 0 && (st == 0 || s == st))
            n++;
    }
    fclose(f);
    return n;
}

static bool
wait_sim(const rig *r, const char *key, int st, size_t n, int timeout_ms)
{
    uint64_t deadline = hov_mono_ms() + (uint64_t)th_ms(timeout_ms);
    while (hov_mono_ms() < deadline) {
        if (sim_count(r, key, st) >= n)
            return true;
        usleep(20000);
    }
    return false;
}

/* Every request the simulator received under key carried one body. */
static void
expect_one_body(const rig *r, const char *key)
{
    FILE *f = fopen(r->sim_log, "r");
    cr_assert_not_null(f);
    char line[256], first[64] = "";
    while (fgets(line, sizeof line, f)) {
        char k[128], d[64];
        int s = -1;
        if (sscanf(line, "%127s %63s %d", k, d, &s) != 3 || strcmp(k, key) != 0)
            continue;
        if (first[0] == '\0')
            memcpy(first, d, sizeof first);
        else
            cr_expect_str_eq(d, first,
                             "Idempotency-Key %s came with two different "
                             "bodies",
                             key);
    }
    fclose(f);
}

/* A social prescribing referral to local:VCS-0002 with explicit consent,
 * as source (an org of the publishing agency). */
static void
referral_init(hov_sample *s, const char *source, const char *nhs)
{
    hov_sample_init(s, "referral", nhs);
    hov_sample_set_source(s, source);
    hov_sample_set_service(s, "social-prescribing");
    hov_sample_clear_destinations(s);
    cr_assert(hov_sample_add_destination(s, "local:VCS-0002"));
    hov_sample_set_consent(s, "explicit", "2025-03-14T13:30:00Z");
}

/* Send a file's bytes on a fresh connection and return the status of the
 * answer (0 when none came). */
static int
replay(const rig *r, const char *file)
{
    FILE *f = fopen(file, "rb");
    cr_assert_not_null(f, "open %s", file);
    char req[4096];
    size_t n = fread(req, 1, sizeof req, f);
    fclose(f);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {
        .sin_family = AF_INET,
        .sin_port = htons((uint16_t)strtoul(r->listen_port, NULL, 10))};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(send(fd, req, n, MSG_NOSIGNAL), (ssize_t)n);
    struct timeval tv = {.tv_sec = th_ms(15000) / 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char buf[2048];
    size_t got = 0;
    while (got + 1 < sizeof buf) {
        ssize_t k = recv(fd, buf + got, sizeof buf - 1 - got, 0);
        if (k <= 0)
            break;
        got += (size_t)k;
        buf[got] = '\0';
        if (strstr(buf, "\r\n\r\n") != NULL)
            break;
    }
    buf[got] = '\0';
    close(fd);
    int status = 0;
    if (sscanf(buf, "HTTP/1.1 %d", &status) != 1)
        status = 0;
    return status;
}

/* Run voluntary-sim post-outcome; returns its exit status. */
static int
post_outcome_ex(rig *r, const char *in_reply_to, const char *status,
                const char *secret, const char *const *extra, th_proc *p)
{
    static int seq;
    static char names[32][24]; /* th_proc borrows its name */
    char *name = names[seq++ % 32];
    snprintf(name, sizeof names[0], "post-%d", seq);
    const char *argv[32] = {HANDOVER_VOLUNTARY_SIM_BIN,
                            "post-outcome",
                            "--url",
                            r->outcome_url,
                            "--secret",
                            secret,
                            "--sender",
                            "local:VCS-0002",
                            "--key-id",
                            "vcs-0002-2025-01",
                            "--in-reply-to",
                            in_reply_to,
                            "--status",
                            status,
                            "--planned-for",
                            "2025-03-20"};
    size_t n = 16;
    for (size_t k = 0; extra != NULL && extra[k] != NULL && n < 30; k++)
        argv[n++] = extra[k];
    argv[n] = NULL;
    th_proc_init(p, r->dir, name, "", argv);
    return th_proc_run(p, 30000);
}

static int
post_outcome(rig *r, const char *in_reply_to, const char *status,
             const char *secret, th_proc *p)
{
    return post_outcome_ex(r, in_reply_to, status, secret, NULL, p);
}

Test(voluntary, referral_reaches_the_organisation_and_its_outcome_returns,
     .timeout = 120)
{
    rig r;
    rig_init(&r, NULL);
    th_proc_start(&r.sim);
    th_proc_start(&r.adapter);
    cr_assert(th_proc_wait_log(&r.adapter, "hub up", 1, 10000));
    hov_client *council = th_client(&r.hub, "social", "test-council", true, 8);

    /* Without consent the hub refuses it, naming the reason. */
    hov_sample s;
    referral_init(&s, "Z9Z9Z", "9995050501");
    hov_sample_set_consent(&s, NULL, NULL);
    const char *why = th_publish_nak(council, &s, HOV_ECONSENT);
    cr_expect_not_null(strstr(why, "consent"), "%s", why);
    referral_init(&s, "Z9Z9Z", "9995050501");
    hov_sample_set_consent(&s, "implied_direct_care", NULL);
    why = th_publish_nak(council, &s, HOV_ECONSENT);
    cr_expect_not_null(strstr(why, "consent"), "%s", why);

    /* With explicit consent it reaches the organisation, signed (the
     * simulator checks with its own code and answers 401 otherwise), with
     * Idempotency-Key = event id. */
    referral_init(&s, "Z9Z9Z", "9995050501");
    th_publish_ok(council, &s);
    char id[37];
    memcpy(id, s.event_id, sizeof id);
    cr_assert(wait_sim(&r, id, 200, 1, 10000), "the referral did not arrive");
    cr_expect_eq(sim_count(&r, id, 401), 0, "signature refused");
    cr_expect(th_proc_wait_log(&r.adapter, "delivered event=", 1, 5000));

    /* The organisation's outcome comes back to the council. */
    th_proc p;
    cr_expect_eq(post_outcome(&r, id, "accepted", SECRET_0002, &p), 0);
    cr_expect(th_proc_log_count(&p, "status=200") == 1);
    hov_msg m;
    Handover__Event *ev = NULL;
    th_next_delivery(council, 10000, &m, &ev);
    cr_expect_str_eq(ev->event_type, "outcome");
    cr_expect_str_eq(ev->in_reply_to, id);
    cr_expect_str_eq(ev->correlation_id, id);
    cr_expect_str_eq(ev->source->org->code, "local:VCS-0002");
    cr_expect_str_eq(ev->outcome->status, "accepted");
    cr_expect_str_eq(ev->outcome->planned_for, "2025-03-20");
    handover__event__free_unpacked(ev, NULL);
    hov_error err = {0};
    cr_assert_eq(
        hov_client_settle(council, m.delivery_id, HOV_SETTLE_DONE, NULL, &err),
        HOV_OK);

    /* A forged outcome (wrong secret) gets 401, an audit line, no event. */
    cr_expect_eq(post_outcome(&r, id, "completed",
                              "a-forger-does-not-know-the-secret-xxxxxxxxx",
                              &p),
                 1);
    cr_expect(th_proc_log_count(&p, "status=401") == 1);
    cr_expect(
        th_proc_wait_log(&r.adapter, "reason=\"signature mismatch\"", 1, 5000));
    th_no_delivery(council, 1000);

    hov_client_free(council);
    th_proc_stop(&r.adapter);
    th_proc_stop(&r.sim);
    rig_fini(&r);
}

Test(voluntary, the_webhook_samples_get_their_documented_answers,
     .timeout = 120)
{
    rig r;
    rig_init(&r, SAMPLE_CLOCK);
    th_proc_start(&r.sim);
    th_proc_start(&r.adapter);
    cr_assert(th_proc_wait_log(&r.adapter, "hub up", 1, 10000));
    hov_client *trust = th_client(&r.hub, "nursing", "test-trust", true, 8);

    /* Before Zoë's referral is delivered, her outcome is refused (422):
     * the referral may still arrive. */
    cr_expect_eq(replay(&r, WEBHOOK "/incoming-outcome.http"), 422);

    hov_sample s;
    referral_init(&s, "RZZ40", "9995050501");
    snprintf(s.event_id, sizeof s.event_id, "%s", ZOE_REFERRAL);
    snprintf(s.correlation_id, sizeof s.correlation_id, "%s", ZOE_REFERRAL);
    th_publish_ok(trust, &s);
    cr_assert(wait_sim(&r, ZOE_REFERRAL, 200, 1, 10000));
    cr_assert(
        th_proc_wait_log(&r.adapter, "delivered event=" ZOE_REFERRAL, 1, 5000));

    cr_expect_eq(replay(&r, WEBHOOK "/incoming-outcome-bad-signature.http"),
                 401);
    cr_expect(
        th_proc_wait_log(&r.adapter, "reason=\"signature mismatch\"", 1, 5000));
    cr_expect_eq(replay(&r, WEBHOOK "/incoming-outcome-stale-timestamp.http"),
                 401);
    cr_expect(th_proc_wait_log(
        &r.adapter, "reason=\"timestamp outside replay window\"", 1, 5000));
    cr_expect_eq(replay(&r, WEBHOOK "/incoming-outcome.http"), 200);
    cr_expect(
        th_proc_wait_log(&r.adapter, "accepted event=" ZOE_OUTCOME, 1, 5000));
    /* Sent again: 200, and no new event. */
    cr_expect_eq(replay(&r, WEBHOOK "/incoming-outcome.http"), 200);
    cr_expect(
        th_proc_wait_log(&r.adapter, "duplicate event=" ZOE_OUTCOME, 1, 5000));

    /* The same Idempotency-Key with another body: 409 (domain 8.3). */
    th_proc p;
    static const char *const same_key[] = {
        "--timestamp", "1742211070", "--idempotency-key",
        "a84ff5ac-69cf-4bd6-94c1-e4a8266d95ea", NULL};
    cr_expect_eq(post_outcome_ex(&r, ZOE_REFERRAL, "completed", SECRET_0002,
                                 same_key, &p),
                 1);
    cr_expect(th_proc_log_count(&p, "status=409") == 1);
    /* A sender not in the table: 401 and an audit line. */
    static const char *const stranger[] = {"--timestamp", "1742211070",
                                           "--sender", "local:VCS-0003", NULL};
    cr_expect_eq(post_outcome_ex(&r, ZOE_REFERRAL, "completed", SECRET_0002,
                                 stranger, &p),
                 1);
    cr_expect(th_proc_log_count(&p, "status=401") == 1);
    cr_expect(th_proc_wait_log(
        &r.adapter, "sender=local:VCS-0003 key_id=vcs-0002-2025-01", 1, 5000));

    /* Exactly one outcome reaches the trust: the refused ones made none. */
    hov_msg m;
    Handover__Event *ev = NULL;
    th_next_delivery(trust, 10000, &m, &ev);
    cr_expect_str_eq(ev->event_id, ZOE_OUTCOME);
    cr_expect_str_eq(ev->in_reply_to, ZOE_REFERRAL);
    cr_expect_str_eq(ev->outcome->status, "accepted");
    handover__event__free_unpacked(ev, NULL);
    hov_error err = {0};
    cr_assert_eq(
        hov_client_settle(trust, m.delivery_id, HOV_SETTLE_DONE, NULL, &err),
        HOV_OK);
    th_no_delivery(trust, 1000);

    hov_client_free(trust);
    th_proc_stop(&r.adapter);
    th_proc_stop(&r.sim);
    rig_fini(&r);
}

Test(voluntary, partner_errors_retry_reject_and_kill_9_loses_nothing,
     .timeout = 180)
{
    rig r;
    rig_init(&r, NULL);
    th_proc_start(&r.sim);
    th_proc_start(&r.adapter);
    hov_client *council = th_client(&r.hub, "social", "test-council", false, 0);

    /* 500, then 200: retried, delivered once, the same body each time. */
    set_mode(&r, "500");
    hov_sample s;
    referral_init(&s, "Z9Z9Z", "9995050501");
    th_publish_ok(council, &s);
    char id[37];
    memcpy(id, s.event_id, sizeof id);
    cr_assert(wait_sim(&r, id, 500, 2, 10000));
    set_mode(&r, "200");
    cr_assert(wait_sim(&r, id, 200, 1, 10000));
    usleep((useconds_t)th_ms(1500) * 1000);
    cr_expect_eq(sim_count(&r, id, 200), 1, "delivered more than once");
    expect_one_body(&r, id);

    /* No answer: timed out and retried with the same body. */
    set_mode(&r, "hang");
    referral_init(&s, "Z9Z9Z", "9995050501");
    th_publish_ok(council, &s);
    memcpy(id, s.event_id, sizeof id);
    cr_assert(th_proc_wait_log(&r.adapter, "timed out", 1, 10000));
    set_mode(&r, "200");
    cr_expect(wait_sim(&r, id, 200, 1, 10000));
    expect_one_body(&r, id);

    /* 400: rejected to dead letters with the organisation's reason. */
    set_mode(&r, "400");
    referral_init(&s, "Z9Z9Z", "9995050501");
    th_publish_ok(council, &s);
    cr_expect(th_proc_wait_log(&r.adapter, "settled rejected", 1, 10000));
    cr_expect(th_proc_log_count(&r.adapter, "referral refused by test mode") >=
              1);

    /* kill -9 twice while 20 deliveries are in flight. */
    set_mode(&r, "delay:40");
    static const char *const nhs[] = {"9995050501", "9992468130", "9993001007",
                                      "9996118428"};
    char ids[20][37];
    for (int i = 0; i < 20; i++) {
        referral_init(&s, "Z9Z9Z", nhs[i % 4]);
        th_publish_ok(council, &s);
        memcpy(ids[i], s.event_id, 37);
    }
    size_t before = th_proc_log_count(&r.adapter, "delivered event=");
    cr_assert(
        th_proc_wait_log(&r.adapter, "delivered event=", before + 6, 10000));
    th_proc_kill(&r.adapter, SIGKILL);
    th_proc_start(&r.adapter);
    before = th_proc_log_count(&r.adapter, "delivered event=");
    cr_assert(
        th_proc_wait_log(&r.adapter, "delivered event=", before + 4, 20000));
    th_proc_kill(&r.adapter, SIGKILL);
    th_proc_start(&r.adapter);
    for (int i = 0; i < 20; i++) {
        cr_expect(wait_sim(&r, ids[i], 200, 1, 30000), "%s lost", ids[i]);
        expect_one_body(&r, ids[i]);
    }
    hov_client_free(council);
    th_proc_stop(&r.adapter);
    th_proc_stop(&r.sim);
    rig_fini(&r);
}
