/* handover-gp end to end: the real hub, the real GP adapter and the GP
 * system simulator as processes over real sockets, with the curl
 * command-line tool as an independent FHIR client. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "handover.pb-c.h"
#include "handover/timeutil.h"
#include "harness.h"

#ifndef HANDOVER_SHARED_DIR
#define HANDOVER_SHARED_DIR HANDOVER_SOURCE_DIR "/../shared"
#endif
#define FHIR HANDOVER_SHARED_DIR "/samples/fhir"

typedef struct rig {
    th_hub hub;
    th_proc adapter, sim, nursing, nsim;
    char dir[256];
    char mode_file[300], sim_log[300], nsim_log[300];
    char listen_port[16], sim_port[16], mllp_port[16], nsim_port[16];
    char set_hub[128], set_listen[64], set_partner[128];
    char set_nhub[128], set_nlisten[64], set_npartner[64];
    char base[64];
    const char *adapter_argv[24], *sim_argv[16];
    const char *nursing_argv[16], *nsim_argv[16];
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
    snprintf(r->mode_file, sizeof r->mode_file, "%s/gp-sim.mode", r->dir);
    snprintf(r->sim_log, sizeof r->sim_log, "%s/gp-sim.received", r->dir);
    snprintf(r->nsim_log, sizeof r->nsim_log, "%s/nsim.received", r->dir);
    snprintf(r->listen_port, sizeof r->listen_port, "%d", th_free_port());
    snprintf(r->sim_port, sizeof r->sim_port, "%d", th_free_port());
    snprintf(r->mllp_port, sizeof r->mllp_port, "%d", th_free_port());
    snprintf(r->nsim_port, sizeof r->nsim_port, "%d", th_free_port());
    snprintf(r->base, sizeof r->base, "http://127.0.0.1:%s/fhir",
             r->listen_port);
    snprintf(r->set_hub, sizeof r->set_hub, "hub.endpoint=%s", r->hub.endpoint);
    snprintf(r->set_listen, sizeof r->set_listen, "listen.port=%s",
             r->listen_port);
    snprintf(r->set_partner, sizeof r->set_partner,
             "partner.url=http://127.0.0.1:%s/fhir", r->sim_port);
    set_mode(r, "201");
    const char **a = r->adapter_argv;
    int n = 0;
    a[n++] = HANDOVER_GP_BIN;
    a[n++] = "--set";
    a[n++] = r->set_hub;
    a[n++] = "--set";
    a[n++] = r->set_listen;
    a[n++] = "--set";
    a[n++] = r->set_partner;
    a[n++] = "--set";
    a[n++] = "partner.timeout_ms=2000";
    if (extra != NULL) {
        a[n++] = "--set";
        a[n++] = extra;
    }
    a[n] = NULL;
    th_proc_init(&r->adapter, r->dir, "gp", "started:", r->adapter_argv);
    const char **s = r->sim_argv;
    n = 0;
    s[n++] = HANDOVER_GP_SIM_BIN;
    s[n++] = "serve";
    s[n++] = "--port";
    s[n++] = r->sim_port;
    s[n++] = "--mode-file";
    s[n++] = r->mode_file;
    s[n++] = "--log";
    s[n++] = r->sim_log;
    s[n] = NULL;
    th_proc_init(&r->sim, r->dir, "gp-sim", "listens on", r->sim_argv);
    /* The nursing side, for the journey across protocols. */
    snprintf(r->set_nhub, sizeof r->set_nhub, "hub.endpoint=%s",
             r->hub.endpoint);
    snprintf(r->set_nlisten, sizeof r->set_nlisten, "listen.port=%s",
             r->mllp_port);
    snprintf(r->set_npartner, sizeof r->set_npartner, "partner.port=%s",
             r->nsim_port);
    const char **na = r->nursing_argv;
    n = 0;
    na[n++] = HANDOVER_NURSING_BIN;
    na[n++] = "--set";
    na[n++] = r->set_nhub;
    na[n++] = "--set";
    na[n++] = r->set_nlisten;
    na[n++] = "--set";
    na[n++] = r->set_npartner;
    na[n] = NULL;
    th_proc_init(&r->nursing, r->dir, "nursing", "started:", r->nursing_argv);
    const char **ns = r->nsim_argv;
    n = 0;
    ns[n++] = HANDOVER_NURSING_SIM_BIN;
    ns[n++] = "serve";
    ns[n++] = "--port";
    ns[n++] = r->nsim_port;
    ns[n++] = "--log";
    ns[n++] = r->nsim_log;
    ns[n] = NULL;
    th_proc_init(&r->nsim, r->dir, "nursing-sim", "listens on", r->nsim_argv);
    th_hub_start(&r->hub);
}

static void
rig_fini(rig *r)
{
    th_proc_kill(&r->adapter, SIGKILL);
    th_proc_kill(&r->sim, SIGKILL);
    th_proc_kill(&r->nursing, SIGKILL);
    th_proc_kill(&r->nsim, SIGKILL);
    th_hub_fini(&r->hub);
}

typedef struct answer {
    int status;
    json_t *body; /* NULL when not JSON */
    char location[256];
} answer;

/* POST file to <base><path> with the curl command-line tool. */
static answer
curl_post(rig *r, const char *path, const char *file, const char *ine)
{
    static int seq;
    char url[256], out[320], hdr[320], data[400], ineh[400], code[320];
    snprintf(url, sizeof url, "%s%s", r->base, path);
    snprintf(out, sizeof out, "%s/curl-%d.body", r->dir, ++seq);
    snprintf(hdr, sizeof hdr, "%s/curl-%d.headers", r->dir, seq);
    snprintf(code, sizeof code, "curl-%d", seq);
    snprintf(data, sizeof data, "@%s", file);
    snprintf(ineh, sizeof ineh, "If-None-Exist: %s", ine ? ine : "");
    const char *argv[24];
    int n = 0;
    argv[n++] = "/usr/bin/curl";
    argv[n++] = "-sS";
    argv[n++] = "-o";
    argv[n++] = out;
    argv[n++] = "-D";
    argv[n++] = hdr;
    argv[n++] = "-w";
    argv[n++] = "status=%{http_code}\n";
    argv[n++] = "-X";
    argv[n++] = "POST";
    argv[n++] = "-H";
    argv[n++] = "Content-Type: application/fhir+json";
    if (ine != NULL) {
        argv[n++] = "-H";
        argv[n++] = ineh;
    }
    argv[n++] = "--data-binary";
    argv[n++] = data;
    argv[n++] = url;
    argv[n] = NULL;
    th_proc p;
    th_proc_init(&p, r->dir, code, "", argv);
    cr_assert_eq(th_proc_run(&p, 30000), 0, "curl failed for %s", file);
    answer a = {0};
    FILE *f = fopen(p.log, "r");
    char line[256];
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "status=%d", &a.status) == 1)
            break;
    if (f)
        fclose(f);
    json_error_t je;
    a.body = json_load_file(out, 0, &je);
    f = fopen(hdr, "r");
    while (f && fgets(line, sizeof line, f))
        if (strncasecmp(line, "Location: ", 10) == 0) {
            snprintf(a.location, sizeof a.location, "%s", line + 10);
            a.location[strcspn(a.location, "\r\n")] = '\0';
        }
    if (f)
        fclose(f);
    return a;
}

/* The first issue's code, or "". */
static const char *
issue_code(const answer *a)
{
    json_t *i = json_array_get(json_object_get(a->body, "issue"), 0);
    const char *c = json_string_value(json_object_get(i, "code"));
    return c ? c : "";
}

static const char *
issue_text(const answer *a)
{
    json_t *i = json_array_get(json_object_get(a->body, "issue"), 0);
    const char *c = json_string_value(json_object_get(i, "diagnostics"));
    return c ? c : "";
}

static void
expect_post(rig *r, const char *path, const char *file, const char *ine,
            int status, const char *code)
{
    answer a = curl_post(r, path, file, ine);
    cr_expect_eq(a.status, status, "%s: status %d, expected %d (%s: %s)", file,
                 a.status, status, issue_code(&a), issue_text(&a));
    if (code != NULL)
        cr_expect_str_eq(issue_code(&a), code, "%s: %s", file, issue_text(&a));
    json_decref(a.body);
}

/* Lines in gp-sim's log with identifier id and status st (0: any). */
static size_t
sim_count(const rig *r, const char *id, int st)
{
    FILE *f = fopen(r->sim_log, "r");
    if (f == NULL)
        return 0;
    char line[600];
    size_t n = 0;
    while (fgets(line, sizeof line, f)) {
        char i[400], t[40], d[64];
        int s = 0;
        if (sscanf(line, "%399s %39s %63s %d", i, t, d, &s) != 4)
            continue;
        if (strstr(i, id) != NULL && (st == 0 || s == st))
            n++;
    }
    fclose(f);
    return n;
}

/* Every request gp-sim received for id carried the same document. */
static void
expect_one_document(const rig *r, const char *id)
{
    FILE *f = fopen(r->sim_log, "r");
    cr_assert_not_null(f);
    char line[600], first[64] = "";
    while (fgets(line, sizeof line, f)) {
        char i[400], t[40], d[64];
        int s = 0;
        if (sscanf(line, "%399s %39s %63s %d", i, t, d, &s) != 4 ||
            strstr(i, id) == NULL)
            continue;
        if (first[0] == '\0')
            memcpy(first, d, sizeof first);
        else
            cr_expect_str_eq(d, first,
                             "%s reached the GP system as two different "
                             "documents",
                             id);
    }
    fclose(f);
}

static bool
wait_sim(const rig *r, const char *id, int st, size_t n, int timeout_ms)
{
    uint64_t deadline = hov_mono_ms() + (uint64_t)th_ms(timeout_ms);
    while (hov_mono_ms() < deadline) {
        if (sim_count(r, id, st) >= n)
            return true;
        usleep(20000);
    }
    return false;
}

#define EDITH_DISCHARGE  "e09339b8-a502-5cfc-af76-7873b23f04b6"
#define RUBY_DISCHARGE   "1f77db6f-8a5d-514f-9a74-16a2aae1843f"
#define PATRICK_REFERRAL "ae41b2a2-c361-59f0-b094-ae08febec1f6"

/* Publish a discharge as the trust would, with a given id. */
static void
publish_discharge(hov_client *c, const char *id, const char *nhs,
                  const char *gp_code)
{
    hov_sample s;
    hov_sample_init(&s, "discharge", nhs);
    if (id != NULL) {
        snprintf(s.event_id, sizeof s.event_id, "%s", id);
        snprintf(s.correlation_id, sizeof s.correlation_id, "%s", id);
    }
    hov_sample_set_pathway(&s, 0);
    hov_sample_set_registered_gp(&s, gp_code);
    th_publish_ok(c, &s);
}

Test(gp, every_fhir_sample_gets_its_documented_answer, .timeout = 240)
{
    rig r;
    rig_init(&r, NULL);
    th_proc_start(&r.sim);
    th_proc_start(&r.nsim);
    th_proc_start(&r.nursing);
    th_proc_start(&r.adapter);
    cr_assert(th_proc_wait_log(&r.adapter, "hub up", 1, 10000));

    expect_post(&r, "", FHIR "/valid/referral-message-bundle.json", NULL, 201,
                NULL);
    static const char ine112[] = "identifier=https://fhir.gp-system.example/"
                                 "Id/referral|Z99003-REF-000112";
    expect_post(&r, "/ServiceRequest",
                FHIR "/valid/servicerequest-social-prescribing.json", ine112,
                201, NULL);
    expect_post(&r, "/ServiceRequest",
                FHIR "/valid/servicerequest-social-prescribing.json", ine112,
                200, NULL);
    expect_post(&r, "/DeviceRequest",
                FHIR "/valid/devicerequest-equipment-order.json", NULL, 201,
                NULL);

    expect_post(&r, "/ServiceRequest", FHIR "/invalid/malformed-json.json",
                NULL, 400, "structure");
    expect_post(&r, "/ServiceRequest", FHIR "/invalid/wrong-resourcetype.json",
                NULL, 400, "invalid");
    expect_post(&r, "/ServiceRequest",
                FHIR "/invalid/servicerequest-missing-nhs-number.json", NULL,
                422, "required");
    expect_post(&r, "/ServiceRequest",
                FHIR "/invalid/servicerequest-bad-nhs-checkdigit.json", NULL,
                422, "value");
    expect_post(&r, "/ServiceRequest",
                FHIR "/invalid/servicerequest-unknown-service.json", NULL, 422,
                "code-invalid");
    expect_post(&r, "/ServiceRequest",
                FHIR "/invalid/servicerequest-voluntary-no-consent.json", NULL,
                422, "business-rule");
    expect_post(&r, "", FHIR "/invalid/bundle-messageheader-not-first.json",
                NULL, 422, "invariant");

    static const char ine117[] = "identifier=https://fhir.gp-system.example/"
                                 "Id/referral|Z99003-REF-000117";
    expect_post(&r, "/ServiceRequest",
                FHIR "/pairs/identifier-conflict/1-original.json", ine117, 201,
                NULL);
    expect_post(&r, "/ServiceRequest",
                FHIR "/pairs/identifier-conflict/2-resend-identical.json",
                ine117, 200, NULL);
    expect_post(&r, "/ServiceRequest",
                FHIR "/pairs/identifier-conflict/3-conflict.json", ine117, 409,
                "conflict");

    /* Outcomes answer discharges delivered to the practices: sent first,
     * one is refused (the event may still come); after delivery, 201. */
    expect_post(&r, "/Task",
                FHIR "/outcomes/task-outcome-discharge-acknowledged.json", NULL,
                422, "not-found");
    hov_client *trust = th_client(&r.hub, "nursing", "test-trust", false, 0);
    publish_discharge(trust, EDITH_DISCHARGE, "9992468130", "Z99001");
    publish_discharge(trust, RUBY_DISCHARGE, "9998765439", "Z99002");
    cr_assert(wait_sim(&r, EDITH_DISCHARGE, 201, 1, 10000),
              "Edith's discharge did not reach the GP system");
    cr_assert(wait_sim(&r, RUBY_DISCHARGE, 201, 1, 10000));
    expect_post(&r, "/Task",
                FHIR "/outcomes/task-outcome-discharge-acknowledged.json", NULL,
                201, NULL);
    expect_post(&r, "/Task",
                FHIR "/outcomes/task-outcome-discharge-rejected.json", NULL,
                201, NULL);

    /* The GP's referral reached community nursing as HL7 REF^I12, and the
     * nursing outcome comes back to the GP system as a FHIR Task. */
    cr_assert(th_proc_wait_log(&r.nsim, "REF^I12", 1, 10000));
    const char *send_argv[] = {
        HANDOVER_NURSING_SIM_BIN,
        "send",
        "--port",
        r.mllp_port,
        HANDOVER_SHARED_DIR "/samples/hl7/outcomes/rri-i12-referral-"
                            "accepted-enhanced-mode.hl7",
        NULL,
    };
    th_proc sender;
    th_proc_init(&sender, r.dir, "sender", "", send_argv);
    cr_expect_eq(th_proc_run(&sender, 30000), 0);
    cr_expect(th_proc_wait_log(&r.sim, "POST /fhir/Task", 1, 10000),
              "the nursing outcome did not reach the GP system");

    /* GET /fhir/metadata */
    const char *meta_argv[] = {"/usr/bin/curl",           "-sS", "-w",
                               "\nstatus=%{http_code}\n", NULL,  NULL};
    char url[128];
    snprintf(url, sizeof url, "%s/metadata", r.base);
    meta_argv[4] = url;
    th_proc meta;
    th_proc_init(&meta, r.dir, "metadata", "", meta_argv);
    cr_expect_eq(th_proc_run(&meta, 10000), 0);
    cr_expect(th_proc_log_count(&meta, "CapabilityStatement") == 1);
    cr_expect(th_proc_log_count(&meta, "status=200") == 1);

    hov_client_free(trust);
    th_proc_stop(&r.adapter);
    th_proc_stop(&r.nursing);
    th_proc_stop(&r.sim);
    rig_fini(&r);
}

/* Connect to port; -1 on failure. */
static int
connect_port(const char *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port =
                                htons((uint16_t)strtoul(port, NULL, 10))};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

Test(gp, slowloris_is_cut_off_while_others_are_served, .timeout = 60)
{
    rig r;
    rig_init(&r, "listen.header_timeout_ms=1500");
    th_proc_start(&r.adapter);
    int fd = connect_port(r.listen_port);
    cr_assert_geq(fd, 0);
    static const char req[] = "POST /fhir/Task HTTP/1.1\r\nHost: x\r\n";
    uint64_t start = hov_mono_ms();
    bool cut = false;
    for (size_t i = 0; i < sizeof req - 1 && !cut; i++) {
        if (send(fd, req + i, 1, MSG_NOSIGNAL) != 1) {
            cut = true;
            break;
        }
        /* Meanwhile another client is served at once. */
        if (i == 1) {
            char url[128];
            snprintf(url, sizeof url, "%s/metadata", r.base);
            const char *argv[] = {"/usr/bin/curl",
                                  "-sS",
                                  "-m",
                                  "5",
                                  "-o",
                                  "/dev/null",
                                  "-w",
                                  "status=%{http_code}\n",
                                  url,
                                  NULL};
            th_proc p;
            th_proc_init(&p, r.dir, "curl-meta", "", argv);
            cr_expect_eq(th_proc_run(&p, 10000), 0);
            cr_expect(th_proc_log_count(&p, "status=200") == 1);
        }
        struct timeval tv = {0, 500000};
        fd_set rs;
        FD_ZERO(&rs);
        FD_SET(fd, &rs);
        if (select(fd + 1, &rs, NULL, NULL, &tv) > 0) {
            char buf[512];
            ssize_t n = recv(fd, buf, sizeof buf, 0);
            cut = true;
            if (n > 0)
                cr_expect(strncmp(buf, "HTTP/1.1 408", 12) == 0, "%.*s", (int)n,
                          buf);
        }
    }
    uint64_t took = hov_mono_ms() - start;
    cr_expect(cut, "the slow client was never cut off");
    cr_expect_lt(took, (uint64_t)th_ms(6000), "cut off only after %llu ms",
                 (unsigned long long)took);
    close(fd);
    th_proc_stop(&r.adapter);
    rig_fini(&r);
}

Test(gp, partner_down_errors_and_kill_9_lose_and_duplicate_nothing,
     .timeout = 180)
{
    rig r;
    rig_init(&r, NULL);
    th_proc_start(&r.adapter);
    hov_client *trust = th_client(&r.hub, "nursing", "test-trust", false, 0);
    static const char *const nhs[] = {"9990000018", "9990000026", "9990000034",
                                      "9990000042", "9990000050", "9990000069"};
    /* GP system down: retried with back-off, delivered once it is up. */
    char ids[24][37];
    for (int i = 0; i < 3; i++) {
        hov_sample s;
        hov_sample_init(&s, "discharge", nhs[i]);
        hov_sample_set_pathway(&s, 0);
        th_publish_ok(trust, &s);
        memcpy(ids[i], s.event_id, 37);
    }
    cr_assert(th_proc_wait_log(&r.adapter, "GP system unreachable", 3, 10000));
    th_proc_start(&r.sim);
    for (int i = 0; i < 3; i++)
        cr_expect(wait_sim(&r, ids[i], 201, 1, 15000), "%s", ids[i]);

    /* 500: retried; 422: rejected to dead letters with its text. */
    set_mode(&r, "500");
    hov_sample s;
    hov_sample_init(&s, "discharge", nhs[3]);
    hov_sample_set_pathway(&s, 0);
    th_publish_ok(trust, &s);
    memcpy(ids[3], s.event_id, 37);
    cr_assert(wait_sim(&r, ids[3], 500, 2, 10000));
    set_mode(&r, "201");
    cr_expect(wait_sim(&r, ids[3], 201, 1, 10000));
    /* No answer: the post times out (partner.timeout_ms) and is retried;
     * the resend is the same document and creates nothing twice. */
    set_mode(&r, "hang");
    hov_sample_init(&s, "discharge", nhs[5]);
    hov_sample_set_pathway(&s, 0);
    th_publish_ok(trust, &s);
    char hung[37];
    memcpy(hung, s.event_id, 37);
    cr_assert(th_proc_wait_log(&r.adapter, "timed out", 1, 10000));
    set_mode(&r, "201");
    cr_expect(wait_sim(&r, hung, 201, 1, 10000));
    expect_one_document(&r, hung);
    set_mode(&r, "422");
    hov_sample_init(&s, "discharge", nhs[4]);
    hov_sample_set_pathway(&s, 0);
    th_publish_ok(trust, &s);
    cr_expect(th_proc_wait_log(&r.adapter, "settled rejected", 1, 10000));
    cr_expect(th_proc_log_count(&r.adapter, "gp-sim answered 422") >= 1);

    /* kill -9 twice while 20 deliveries are in flight. */
    set_mode(&r, "delay:40");
    for (int i = 4; i < 24; i++) {
        hov_sample_init(&s, "discharge", nhs[i % 6]);
        hov_sample_set_pathway(&s, 0);
        th_publish_ok(trust, &s);
        memcpy(ids[i], s.event_id, 37);
    }
    cr_assert(th_proc_wait_log(&r.adapter, "delivered event=", 8, 10000));
    th_proc_kill(&r.adapter, SIGKILL);
    th_proc_start(&r.adapter);
    cr_assert(th_proc_wait_log(&r.adapter, "delivered event=", 14, 20000));
    th_proc_kill(&r.adapter, SIGKILL);
    th_proc_start(&r.adapter);
    for (int i = 4; i < 24; i++) {
        cr_expect(wait_sim(&r, ids[i], 201, 1, 30000), "%s lost", ids[i]);
        cr_expect_eq(sim_count(&r, ids[i], 201), 1,
                     "%s created twice at the GP system", ids[i]);
        expect_one_document(&r, ids[i]);
    }
    hov_client_free(trust);
    th_proc_stop(&r.adapter);
    rig_fini(&r);
}

/* handover-audit with args (NULL-terminated) on the rig's hub, as operator
 * "tester"; its output (stdout and stderr) in <dir>/<name>.log, copied to
 * out. Returns its exit status. */
static int
audit_tool(rig *r, const char *name, char *out, size_t cap,
           const char *const *args)
{
    const char *argv[24] = {HANDOVER_AUDIT_BIN};
    char data[320];
    snprintf(data, sizeof data, "%s/data", r->hub.dir);
    int n = 1;
    for (; args[n - 1] != NULL && n < 19; n++)
        argv[n] = args[n - 1];
    argv[n++] = "--data";
    argv[n++] = data;
    argv[n++] = "--operator";
    argv[n++] = "tester";
    argv[n] = NULL;
    th_proc p;
    th_proc_init(&p, r->dir, name, NULL, argv);
    int st = th_proc_run(&p, 20000);
    FILE *f = fopen(p.log, "r");
    cr_assert_not_null(f, "%s", p.log);
    size_t k = fread(out, 1, cap - 1, f);
    out[k] = '\0';
    fclose(f);
    return st;
}

/* handover-audit replay: the GP system received a discharge, lost it, and
 * asks for it again. The replay is refused while the event is on its way,
 * to a practice it was never routed to, and without a running hub; once it
 * was delivered it goes again with the same identifier, the GP system's
 * conditional create finds it (200, nothing created twice), and the audit
 * trail names the operator. */
Test(gp, replay_goes_again_once_and_the_gp_system_keeps_one_copy, .timeout = 90)
{
    rig r;
    rig_init(&r, NULL);
    th_proc_start(&r.sim);
    hov_client *trust = th_client(&r.hub, "nursing", "test-trust", false, 0);
    hov_sample s;
    hov_sample_init(&s, "discharge", "9990000018");
    hov_sample_set_pathway(&s, 0);
    hov_sample_set_registered_gp(&s, "Z99001");
    th_publish_ok(trust, &s);
    char out[8192];
    /* No adapter yet: it is queued, so there is nothing to replay. */
    const char *const one[] = {"replay", s.event_id, "--dest", "Z99001", NULL};
    cr_expect_eq(audit_tool(&r, "replay-queued", out, sizeof out, one), 1, "%s",
                 out);
    cr_expect(strstr(out, "still queued or in flight") != NULL, "%s", out);
    th_proc_start(&r.adapter);
    cr_assert(wait_sim(&r, s.event_id, 201, 1, 15000));
    cr_assert(th_proc_wait_log(&r.adapter, "delivered event=", 1, 10000));
    /* The hub records the settle just after the adapter logs it. */
    int st = 1;
    for (int i = 0; i < 50 && st != 0; i++) {
        st = audit_tool(&r, "replay-one", out, sizeof out, one);
        if (st != 0)
            usleep(100000);
    }
    cr_assert_eq(st, 0, "replay: %s", out);
    cr_expect(strstr(out, "replayed ") != NULL, "%s", out);
    cr_assert(wait_sim(&r, s.event_id, 200, 1, 15000),
              "the replay did not reach the GP system");
    cr_expect_eq(sim_count(&r, s.event_id, 201), 1,
                 "the GP system created the discharge twice");
    expect_one_document(&r, s.event_id);

    /* Never routed there; not a configured organisation. */
    const char *const other[] = {"replay", s.event_id, "--dest", "Z99002",
                                 NULL};
    cr_expect_eq(audit_tool(&r, "replay-other", out, sizeof out, other), 1);
    cr_expect(strstr(out, "never routed there") != NULL, "%s", out);
    const char *const nobody[] = {"replay", s.event_id, "--dest", "X1", NULL};
    cr_expect_eq(audit_tool(&r, "replay-nobody", out, sizeof out, nobody), 1);
    cr_expect(strstr(out, "not a configured organisation") != NULL, "%s", out);

    /* A day's range: every event of the day the practice received. */
    cr_assert(wait_sim(&r, s.event_id, 200, 1, 15000));
    cr_assert(th_proc_wait_log(&r.adapter, "delivered event=", 2, 10000));
    char today[11];
    hov_today_london(today);
    const char *const day[] = {"replay", "--from", today,    "--to",
                               today,    "--dest", "Z99001", NULL};
    st = 1;
    for (int i = 0; i < 50 && st != 0; i++) {
        st = audit_tool(&r, "replay-day", out, sizeof out, day);
        if (st != 0)
            usleep(100000);
    }
    cr_assert_eq(st, 0, "%s", out);
    cr_expect(strstr(out, "replayed 1 of 1 event to Z99001") != NULL, "%s",
              out);
    cr_assert(wait_sim(&r, s.event_id, 200, 2, 15000));
    cr_expect_eq(sim_count(&r, s.event_id, 201), 1);

    /* The trail: two replays by operator tester. */
    const char *const trace[] = {"trace", s.event_id, "--json", NULL};
    cr_assert_eq(audit_tool(&r, "trace", out, sizeof out, trace), 0, "%s", out);
    size_t replays = 0;
    for (const char *p = out; (p = strstr(p, "\"replayed\"")) != NULL; p++)
        replays++;
    cr_expect_eq(replays, 2, "%s", out);
    cr_expect(strstr(out, "operator:tester") != NULL, "%s", out);

    /* No hub: a replay cannot be done, and says so. */
    th_hub_stop(&r.hub);
    cr_expect_eq(audit_tool(&r, "replay-nohub", out, sizeof out, one), 3);
    cr_expect(strstr(out, "needs the hub running") != NULL, "%s", out);
    hov_client_free(trust);
    rig_fini(&r);
}
