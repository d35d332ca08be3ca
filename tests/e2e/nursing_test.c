/* handover-nursing end to end: the real hub, the real adapter and the
 * nursing simulator as processes over real sockets, with an independent
 * HL7 client (Debian's python3-hl7) on the inbound side. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "handover.pb-c.h"
#include "handover/timeutil.h"
#include "harness.h"

#ifndef HANDOVER_SHARED_DIR
#define HANDOVER_SHARED_DIR HANDOVER_SOURCE_DIR "/../shared"
#endif

typedef struct rig {
    th_hub hub;
    th_proc adapter, sim;
    char dir[256];
    char mode_file[300], sim_log[300];
    char listen_port[16], partner_port[16];
    char set_hub[128], set_listen[64], set_partner[64];
    const char *adapter_argv[24];
    const char *sim_argv[16];
} rig;

static const char *const hub_extra[] = {
    "--set", "backoff_initial_ms=100", "--set", "backoff_max_ms=800",
    "--set", "max_attempts=100",       "--set", "settle_timeout_ms=60000",
    NULL,
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
rig_init(rig *r, const char *adapter_extra)
{
    memset(r, 0, sizeof *r);
    th_hub_init(&r->hub, hub_extra);
    snprintf(r->dir, sizeof r->dir, "%s", r->hub.dir);
    snprintf(r->mode_file, sizeof r->mode_file, "%s/sim.mode", r->dir);
    snprintf(r->sim_log, sizeof r->sim_log, "%s/sim.received", r->dir);
    snprintf(r->listen_port, sizeof r->listen_port, "%d", th_free_port());
    snprintf(r->partner_port, sizeof r->partner_port, "%d", th_free_port());
    snprintf(r->set_hub, sizeof r->set_hub, "hub.endpoint=%s", r->hub.endpoint);
    snprintf(r->set_listen, sizeof r->set_listen, "listen.port=%s",
             r->listen_port);
    snprintf(r->set_partner, sizeof r->set_partner, "partner.port=%s",
             r->partner_port);
    set_mode(r, "aa");
    const char **a = r->adapter_argv;
    int n = 0;
    a[n++] = HANDOVER_NURSING_BIN;
    a[n++] = "--set";
    a[n++] = r->set_hub;
    a[n++] = "--set";
    a[n++] = r->set_listen;
    a[n++] = "--set";
    a[n++] = r->set_partner;
    a[n++] = "--set";
    a[n++] = "partner.ack_timeout_ms=2000";
    a[n++] = "--set";
    a[n++] = "partner.connect_timeout_ms=1000";
    if (adapter_extra != NULL) {
        a[n++] = "--set";
        a[n++] = adapter_extra;
    }
    a[n] = NULL;
    th_proc_init(&r->adapter, r->dir, "nursing", "started:", r->adapter_argv);
    const char **s = r->sim_argv;
    n = 0;
    s[n++] = HANDOVER_NURSING_SIM_BIN;
    s[n++] = "serve";
    s[n++] = "--port";
    s[n++] = r->partner_port;
    s[n++] = "--mode-file";
    s[n++] = r->mode_file;
    s[n++] = "--log";
    s[n++] = r->sim_log;
    s[n] = NULL;
    th_proc_init(&r->sim, r->dir, "nursing-sim", "listens on", r->sim_argv);
    th_hub_start(&r->hub);
}

static void
rig_fini(rig *r)
{
    th_proc_kill(&r->adapter, SIGKILL);
    th_proc_kill(&r->sim, SIGKILL);
    th_hub_fini(&r->hub);
}

/* Lines in the simulator's log for control id prefix (20 hex digits). */
static size_t
sim_count(const rig *r, const char *control, char digest[64])
{
    FILE *f = fopen(r->sim_log, "r");
    if (f == NULL)
        return 0;
    char line[256];
    size_t n = 0;
    while (fgets(line, sizeof line, f)) {
        char c[80], t[40], d[64];
        if (sscanf(line, "%79s %39s %63s", c, t, d) != 3)
            continue;
        if (strcmp(c, control) != 0)
            continue;
        if (n == 0 && digest != NULL)
            memcpy(digest, d, sizeof d);
        else if (digest != NULL)
            cr_expect_str_eq(d, digest,
                             "control id %s reached the partner as two "
                             "different messages",
                             control);
        n++;
    }
    fclose(f);
    return n;
}

static void
control_of(const char *event_id, char out[21])
{
    size_t j = 0;
    for (size_t i = 0; event_id[i] && j < 20; i++)
        if (event_id[i] != '-')
            out[j++] = event_id[i];
    out[j] = '\0';
}

static bool
wait_sim(const rig *r, const char *control, size_t n, int timeout_ms)
{
    uint64_t deadline = hov_mono_ms() + (uint64_t)th_ms(timeout_ms);
    while (hov_mono_ms() < deadline) {
        char d[64];
        if (sim_count(r, control, d) >= n)
            return true;
        usleep(20000);
    }
    return false;
}

static int
run_python(rig *r, const char *phase)
{
    char name[64];
    snprintf(name, sizeof name, "python-%s", phase);
    const char *argv[] = {"/usr/bin/python3",
                          HANDOVER_SOURCE_DIR "/tests/e2e/hl7_samples.py",
                          r->listen_port,
                          HANDOVER_SHARED_DIR,
                          phase,
                          NULL};
    th_proc p;
    th_proc_init(&p, r->dir, name, "", argv);
    int st = th_proc_run(&p, 120000);
    if (st != 0) {
        FILE *f = fopen(p.log, "r");
        char line[1024];
        while (f && fgets(line, sizeof line, f))
            fprintf(stderr, "  | %s", line);
        if (f)
            fclose(f);
    }
    return st;
}

/* The event ids of the samples, from samples/README.md. */
#define EDITH_DISCHARGE  "e09339b8-a502-5cfc-af76-7873b23f04b6"
#define RUBY_DISCHARGE   "1f77db6f-8a5d-514f-9a74-16a2aae1843f"
#define ALAN_REFERRAL    "bc5c22e3-bee9-5bb0-b1fa-eb92255781e0"
#define ZOE_REFERRAL     "25e14237-735f-51b9-b0fb-c87ec41a3aae"
#define JOAN_ORDER       "d745de58-a690-5946-975d-ed6388248d9c"
#define DEREK_ORDER      "6b2714c6-a11e-5010-9314-a3e0c972992f"
#define PATRICK_REFERRAL "ae41b2a2-c361-59f0-b094-ae08febec1f6"

/* Collect deliveries on c until every id in want has come (settling each
 * done); assert none is missing. */
static void
expect_deliveries(hov_client *c, const char *const *want, size_t n)
{
    bool got[16] = {0};
    size_t have = 0;
    uint64_t deadline = hov_mono_ms() + (uint64_t)th_ms(15000);
    while (have < n && hov_mono_ms() < deadline) {
        hov_msg m;
        hov_error err = {0};
        cr_assert_eq(hov_client_next(c, 200, &m, &err), HOV_OK, "%s", err.msg);
        if (m.kind != HOV_MSG_DELIVER)
            continue;
        for (size_t i = 0; i < n; i++)
            if (!got[i] && strcmp(m.event_id, want[i]) == 0) {
                got[i] = true;
                have++;
            }
        cr_assert_eq(
            hov_client_settle(c, m.delivery_id, HOV_SETTLE_DONE, NULL, &err),
            HOV_OK);
    }
    for (size_t i = 0; i < n; i++)
        cr_expect(got[i], "event %s was not delivered", want[i]);
}

Test(nursing, every_hl7_sample_gets_its_documented_answer, .timeout = 240)
{
    rig r;
    rig_init(&r, NULL);
    th_proc_start(&r.sim);
    th_proc_start(&r.adapter);
    cr_assert(th_proc_wait_log(&r.adapter, "hub up", 1, 10000));

    /* Patrick's GP referral (the event the RRI sample answers), sent as
     * the GP system would, and delivered to the nursing system as HL7;
     * answering it before that is refused as "resend later". */
    cr_expect_eq(run_python(&r, "early-outcome"), 0);
    hov_client *gp = th_client(&r.hub, "gp", "test-gp", true, 16);
    hov_sample s;
    hov_sample_init(&s, "referral", "9996118428");
    snprintf(s.event_id, sizeof s.event_id, "%s", PATRICK_REFERRAL);
    snprintf(s.correlation_id, sizeof s.correlation_id, "%s", PATRICK_REFERRAL);
    th_publish_ok(gp, &s);
    char control[21];
    control_of(PATRICK_REFERRAL, control);
    cr_assert(wait_sim(&r, control, 1, 10000),
              "the referral did not reach the nursing simulator");

    cr_expect_eq(run_python(&r, "requests"), 0);
    cr_expect_eq(run_python(&r, "outcomes"), 0);

    /* Each valid message reached the right queue. */
    static const char *const to_gp[] = {EDITH_DISCHARGE, RUBY_DISCHARGE};
    expect_deliveries(gp, to_gp, 2);
    hov_client *social = th_client(&r.hub, "social", "test-social", true, 16);
    static const char *const to_social[] = {EDITH_DISCHARGE, ALAN_REFERRAL,
                                            JOAN_ORDER, DEREK_ORDER};
    expect_deliveries(social, to_social, 4);
    hov_client *vol = th_client(&r.hub, "voluntary", "test-vol", true, 16);
    static const char *const to_vol[] = {ZOE_REFERRAL};
    expect_deliveries(vol, to_vol, 1);
    /* Edith's discharge (pathway 1) also reaches community nursing, as an
     * ADT^A03 over MLLP. */
    control_of(EDITH_DISCHARGE, control);
    cr_expect(wait_sim(&r, control, 1, 10000));
    /* The nursing outcome comes back to the GP as an outcome event. */
    hov_msg m;
    Handover__Event *ev = NULL;
    th_next_delivery(gp, 10000, &m, &ev);
    cr_expect_str_eq(ev->event_type, "outcome");
    cr_expect_str_eq(ev->in_reply_to, PATRICK_REFERRAL);
    cr_expect_str_eq(ev->correlation_id, PATRICK_REFERRAL);
    cr_expect_str_eq(ev->outcome->status, "accepted");
    handover__event__free_unpacked(ev, NULL);
    hov_client_free(vol);
    hov_client_free(social);
    hov_client_free(gp);

    cr_expect(th_proc_log_count(&r.adapter, "connection closed mid-frame") >=
              1);
    th_proc_stop(&r.adapter);
    th_proc_stop(&r.sim);
    th_hub_stop(&r.hub);
    rig_fini(&r);
}

/* Publish n district-nursing referrals for distinct patients as the GP;
 * their event ids go to ids. */
static void
publish_referrals(rig *r, hov_client *gp, size_t n, char ids[][37])
{
    static const char *const nhs[] = {"9990000018", "9990000026", "9990000034",
                                      "9990000042", "9990000050", "9990000069"};
    (void)r;
    for (size_t i = 0; i < n; i++) {
        hov_sample s;
        hov_sample_init(&s, "referral", nhs[i % 6]);
        th_publish_ok(gp, &s);
        memcpy(ids[i], s.event_id, 37);
    }
}

Test(nursing, partner_down_then_back_delivers_everything_once, .timeout = 120)
{
    rig r;
    rig_init(&r, NULL);
    th_proc_start(&r.adapter);
    hov_client *gp = th_client(&r.hub, "gp", "test-gp", false, 0);
    char ids[6][37];
    publish_referrals(&r, gp, 6, ids);
    /* Nobody listens: every attempt fails and is retried with back-off. */
    cr_assert(th_proc_wait_log(&r.adapter, "partner unreachable", 3, 10000));
    sleep(1);
    th_proc_start(&r.sim);
    for (size_t i = 0; i < 6; i++) {
        char control[21], d[64];
        control_of(ids[i], control);
        cr_expect(wait_sim(&r, control, 1, 15000), "event %s not delivered",
                  ids[i]);
        cr_expect_eq(sim_count(&r, control, d), 1);
    }
    hov_client_free(gp);
    th_proc_stop(&r.adapter);
    rig_fini(&r);
}

Test(nursing, ar_retries_ae_dead_letters_timeout_retries, .timeout = 120)
{
    rig r;
    rig_init(&r, NULL);
    th_proc_start(&r.sim);
    th_proc_start(&r.adapter);
    hov_client *gp = th_client(&r.hub, "gp", "test-gp", false, 0);
    char ids[3][37], control[21], d[64];

    /* AR 206 (record locked): retried until the partner accepts. */
    set_mode(&r, "ar");
    publish_referrals(&r, gp, 1, ids);
    control_of(ids[0], control);
    cr_assert(wait_sim(&r, control, 2, 10000));
    set_mode(&r, "aa");
    cr_assert(th_proc_wait_log(&r.adapter, "delivered event=", 1, 10000));
    size_t tries = sim_count(&r, control, d); /* same message each time */
    cr_expect_geq(tries, 3);

    /* AE: rejected, to dead letters, with the partner's reason. */
    set_mode(&r, "ae");
    publish_referrals(&r, gp, 1, ids + 1);
    cr_assert(th_proc_wait_log(&r.adapter, "settled rejected", 1, 10000));
    cr_expect(th_proc_log_count(&r.adapter,
                                "service is not accepted by this system") >= 1);

    /* No answer: retried after the ACK timeout, then accepted. */
    set_mode(&r, "silent");
    publish_referrals(&r, gp, 1, ids + 2);
    cr_assert(
        th_proc_wait_log(&r.adapter, "no ACK from the partner", 1, 10000));
    set_mode(&r, "aa");
    control_of(ids[2], control);
    cr_assert(th_proc_wait_log(&r.adapter, "delivered event=", 2, 15000));
    cr_expect_geq(sim_count(&r, control, d), 2);

    hov_client_free(gp);
    th_proc_stop(&r.adapter);
    rig_fini(&r);
}

Test(nursing, kill_9_mid_stream_loses_and_duplicates_nothing, .timeout = 180)
{
    rig r;
    rig_init(&r, NULL);
    set_mode(&r, "delay:30");
    th_proc_start(&r.sim);
    th_proc_start(&r.adapter);
    hov_client *gp = th_client(&r.hub, "gp", "test-gp", true, 16);

    /* Outbound: 30 deliveries in flight, the adapter killed twice. */
    char ids[30][37];
    publish_referrals(&r, gp, 30, ids);
    cr_assert(th_proc_wait_log(&r.adapter, "delivered event=", 5, 10000));
    th_proc_kill(&r.adapter, SIGKILL);
    th_proc_start(&r.adapter);
    cr_assert(th_proc_wait_log(&r.adapter, "delivered event=", 15, 20000));
    th_proc_kill(&r.adapter, SIGKILL);
    th_proc_start(&r.adapter);

    /* Inbound: a message the hub cannot answer yet (the hub is stopped),
     * so the adapter has published it and not acknowledged it; kill the
     * adapter; resume; the sender resends and gets AA once. */
    kill(r.hub.pid, SIGSTOP);
    char port[16];
    snprintf(port, sizeof port, "%s", r.listen_port);
    const char *send_argv[] = {
        HANDOVER_NURSING_SIM_BIN,
        "send",
        "--port",
        port,
        HANDOVER_SHARED_DIR "/samples/hl7/valid/adt-a03-pathway0-no-final-"
                            "cr.hl7",
        NULL,
    };
    th_proc sender;
    th_proc_init(&sender, r.dir, "sender", "", send_argv);
    sender.pid = 0;
    /* Start the send, give it time to be published, then kill -9. */
    pid_t pid = fork();
    if (pid == 0) {
        execv(send_argv[0], (char *const *)send_argv);
        _exit(127);
    }
    usleep(500000);
    th_proc_kill(&r.adapter, SIGKILL);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    kill(r.hub.pid, SIGCONT);
    th_proc_start(&r.adapter);
    cr_expect_eq(th_proc_run(&sender, 30000), 0, "the resend was not AA");

    for (size_t i = 0; i < 30; i++) {
        char control[21], d[64];
        control_of(ids[i], control);
        cr_expect(wait_sim(&r, control, 1, 30000), "event %s lost", ids[i]);
        (void)sim_count(&r, control, d); /* asserts one message per id */
    }
    /* Ruby's discharge reached her GP exactly once. */
    size_t ruby = 0;
    uint64_t deadline = hov_mono_ms() + (uint64_t)th_ms(3000);
    while (hov_mono_ms() < deadline) {
        hov_msg m;
        hov_error err = {0};
        cr_assert_eq(hov_client_next(gp, 200, &m, &err), HOV_OK);
        if (m.kind != HOV_MSG_DELIVER)
            continue;
        ruby += strcmp(m.event_id, RUBY_DISCHARGE) == 0;
        cr_assert_eq(
            hov_client_settle(gp, m.delivery_id, HOV_SETTLE_DONE, NULL, &err),
            HOV_OK);
    }
    cr_expect_eq(ruby, 1);
    hov_client_free(gp);
    th_proc_stop(&r.adapter);
    rig_fini(&r);
}

Test(nursing, lf_terminators_accepted_when_the_partner_setting_says_so,
     .timeout = 60)
{
    rig r;
    rig_init(&r, "hl7.accept_lf_terminators=true");
    th_proc_start(&r.adapter);
    char port[16];
    snprintf(port, sizeof port, "%s", r.listen_port);
    const char *argv[] = {
        HANDOVER_NURSING_SIM_BIN,
        "send",
        "--port",
        port,
        HANDOVER_SHARED_DIR "/samples/hl7/broken/lf-terminators.hl7",
        NULL,
    };
    th_proc sender;
    th_proc_init(&sender, r.dir, "sender", "", argv);
    cr_expect_eq(th_proc_run(&sender, 30000), 0);
    cr_expect(th_proc_log_count(&r.adapter, "LF segment terminators") >= 1);
    th_proc_stop(&r.adapter);
    rig_fini(&r);
}

Test(nursing, bad_configuration_exits_with_a_message, .timeout = 30)
{
    char dir[256];
    th_tmpdir(dir, sizeof dir);
    const char *argv[] = {HANDOVER_NURSING_BIN, "--set", "listen.prot=7420",
                          NULL};
    th_proc p;
    th_proc_init(&p, dir, "bad-config", "", argv);
    cr_expect_eq(th_proc_run(&p, 10000), 2);
    cr_expect(th_proc_log_count(&p, "unknown setting 'listen.prot'") == 1);
    th_rm_rf(dir);
}

Test(nursing, hub_unreachable_answers_ar_and_the_resend_is_one_event,
     .timeout = 90)
{
    rig r;
    rig_init(&r, "listen.hub_timeout_ms=1000");
    th_proc_start(&r.adapter);
    cr_assert(th_proc_wait_log(&r.adapter, "hub up", 1, 10000));
    hov_client *gp = th_client(&r.hub, "gp", "test-gp", true, 16);
    kill(r.hub.pid, SIGSTOP);
    const char *argv[] = {
        HANDOVER_NURSING_SIM_BIN,
        "send",
        "--port",
        r.listen_port,
        HANDOVER_SHARED_DIR "/samples/hl7/valid/adt-a03-pathway0-no-final-"
                            "cr.hl7",
        NULL,
    };
    th_proc sender;
    th_proc_init(&sender, r.dir, "sender", "", argv);
    cr_expect_eq(th_proc_run(&sender, 30000), 1, "expected a refusal");
    cr_expect(th_proc_log_count(&sender, "<- AR 207 temporarily "
                                         "unavailable; resend") == 1);
    cr_expect(th_proc_log_count(&r.adapter, "no hub answer") == 1);
    kill(r.hub.pid, SIGCONT);
    /* The sender resends: AA, and the hub holds one event. */
    cr_expect_eq(th_proc_run(&sender, 30000), 0);
    hov_msg m;
    Handover__Event *ev = NULL;
    th_next_delivery(gp, 10000, &m, &ev);
    cr_expect_str_eq(ev->event_id, RUBY_DISCHARGE);
    handover__event__free_unpacked(ev, NULL);
    hov_error err = {0};
    cr_assert_eq(
        hov_client_settle(gp, m.delivery_id, HOV_SETTLE_DONE, NULL, &err),
        HOV_OK);
    th_no_delivery(gp, 1500);
    hov_client_free(gp);
    th_proc_stop(&r.adapter);
    rig_fini(&r);
}

Test(nursing, a_restarted_hub_is_found_again, .timeout = 90)
{
    rig r;
    rig_init(&r, NULL);
    th_proc_start(&r.sim);
    th_proc_start(&r.adapter);
    cr_assert(th_proc_wait_log(&r.adapter, "hub up", 1, 10000));
    th_hub_stop(&r.hub);
    cr_assert(th_proc_wait_log(&r.adapter, "hub down", 1, 10000));
    th_hub_start(&r.hub);
    cr_assert(th_proc_wait_log(&r.adapter, "hub up", 2, 10000));
    /* Both directions work again. */
    const char *argv[] = {
        HANDOVER_NURSING_SIM_BIN,
        "send",
        "--port",
        r.listen_port,
        HANDOVER_SHARED_DIR "/samples/hl7/valid/adt-a03-discharge-"
                            "pathway1.hl7",
        NULL,
    };
    th_proc sender;
    th_proc_init(&sender, r.dir, "sender", "", argv);
    cr_expect_eq(th_proc_run(&sender, 30000), 0);
    char control[21];
    control_of(EDITH_DISCHARGE, control);
    cr_expect(wait_sim(&r, control, 1, 10000));
    th_proc_stop(&r.adapter);
    rig_fini(&r);
}
