/* Process faults (issue 8, reliability suite, item 2): the whole system runs
 * (handover-hub, the four adapters and the four partner simulators) under a
 * mixed load of referrals, discharges, equipment orders and outcomes, while
 * the hub and each adapter are killed with SIGKILL at random moments, many
 * times in a row, and restarted on the same data.
 *
 * Most events are published straight to the hub as the originating agency,
 * so they flow out through the real adapters to the simulators; some come
 * in through a partner protocol: ADT^A03 discharges sent as HL7 over MLLP
 * to handover-nursing (accepted when the ACK is AA), and voluntary
 * organisations' outcomes as signed webhooks to handover-voluntary
 * (accepted on 2xx).
 *
 * After the kills stop and everything has drained:
 *  (a) every event the hub Acked, or whose partner was told it was
 *      accepted, reached each of its destinations' simulators at least
 *      once;
 *  (b) no event reached a partner as two different messages (same id,
 *      different digest in the simulator's log);
 *  (c) handover-audit verify passes on the hub's data.
 * Duplicates of the same content (at-least-once) are allowed and counted.
 *
 * The schedule (which process dies when, how long it stays down, the mix
 * of the load) comes from one seed, printed at the start and in the
 * summary; HANDOVER_CHAOS_SEED replays it. HANDOVER_RELIABILITY_LONG=1 runs
 * the long form (minutes, many more kills and events). */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "handover/ident.h"
#include "handover/map.h"
#include "handover/timeutil.h"
#include "harness.h"

#ifndef HANDOVER_SHARED_DIR
#define HANDOVER_SHARED_DIR HANDOVER_SOURCE_DIR "/../shared"
#endif

#define SECRET "chaos-test-secret-of-at-least-32-bytes-0123456789"

enum { D_GP, D_NURSING, D_SOCIAL, D_VOL, ND };
static const char *const dest_name[ND] = {"gp", "nursing", "social",
                                          "voluntary"};

/* Kill targets: the hub, then the adapters in dest order. */
enum { T_HUB, T_NURSING, T_GP, T_SOCIAL, T_VOL, NT };
static const char *const target_name[NT] = {"hub", "nursing", "gp", "social",
                                            "voluntary"};

enum { VIA_CLIENT, VIA_HL7, VIA_WEBHOOK, VIA_FHIR, NVIA };

typedef struct rec {
    char id[37];
    const char *type;
    char nhs[16];
    int via;
    int pub;           /* VIA_CLIENT: which publisher (a dest index) */
    unsigned expect;   /* destinations, a bit per dest */
    bool accepted;     /* hub Ack, AA, or 2xx */
    bool in_flight;    /* published (or a job running), no answer yet */
    uint64_t retry_at; /* 0: nothing to resend */
    uint8_t *buf;      /* packed event until Acked (VIA_CLIENT) */
    size_t len;
    char file[320]; /* VIA_HL7, VIA_FHIR: the message file */
    char occurred[32], idem[37], reply[37]; /* VIA_WEBHOOK */
    bool wants_outcome, outcome_made;
    int received[ND];
    char digest[ND][33];
    bool differs[ND];
} rec;

typedef struct tailf {
    char path[320];
    long off;
} tailf;

typedef struct job {
    pid_t pid;
    rec *r;
    uint64_t started;
} job;

typedef struct chaos {
    th_hub hub;
    th_proc ad[NT]; /* [T_HUB] unused */
    th_proc gpsim, volsim, nsim, csim;
    char dir[256];
    char p_fhir[16], p_gpsim[16], p_hook[16], p_volsim[16], p_mllp[16],
        p_nsim[16];
    char s_hub[128], s[16][400];
    char orgs[300], inbox[300], outbox[300], taken[300], hl7dir[300];
    char gplog[300], nlog[300], vlog[300], joblog[300];
    const char *argv[8][24];

    hov_client *pub[ND]; /* publishers as gp, nursing, social, voluntary */
    hov_map *ids;        /* event id -> rec */
    hov_map *controls;   /* MSH-10 (20 hex digits) -> rec */
    rec **all;
    size_t n, cap;
    tailf t_gp, t_n, t_v, t_c;
    job job[NVIA]; /* one partner sending at a time per protocol */
    unsigned long long rng, rng2;
    unsigned seed;
    int kills[NT];
    int naks_hard, unexpected, unknown, routing_mismatch, job_failures;
    int hl7_seq, fhir_seq;
    char patients[48][12];
    int npatients;
} chaos;

/* ------------------------------------------------------------- helpers */

static uint32_t
rnd_from(unsigned long long *state)
{
    /* splitmix64: the schedule must not depend on libc's rand() */
    unsigned long long z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return (uint32_t)((z ^ (z >> 31)) >> 16);
}

/* The kill schedule and the mix of published events. */
static uint32_t
rnd(chaos *c)
{
    return rnd_from(&c->rng);
}

/* Partner traffic, which starts on a clock: a stream of its own keeps the
 * published mix the same whatever the timing. */
static uint32_t
rnd2(chaos *c)
{
    return rnd_from(&c->rng2);
}

static int
between(chaos *c, int lo, int hi)
{
    return lo + (int)(rnd(c) % (uint32_t)(hi - lo + 1));
}

static rec *
rec_new(chaos *c, const char *id, const char *type, int via, unsigned expect)
{
    rec *r = calloc(1, sizeof *r);
    cr_assert_not_null(r);
    snprintf(r->id, sizeof r->id, "%s", id);
    r->type = type;
    r->via = via;
    r->expect = expect;
    hov_error err = {0};
    cr_assert(hov_map_put(c->ids, r->id, strlen(r->id), r, &err) == HOV_OK);
    if (expect & (1u << D_NURSING)) {
        char ctl[21];
        size_t k = 0;
        for (const char *p = id; *p && k < 20; p++)
            if (*p != '-')
                ctl[k++] = *p;
        ctl[k] = '\0';
        cr_assert(hov_map_put(c->controls, ctl, k, r, &err) == HOV_OK);
    }
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 1024;
        c->all = realloc(c->all, c->cap * sizeof *c->all);
        cr_assert_not_null(c->all);
    }
    c->all[c->n++] = r;
    return r;
}

static int
org_dest(const char *org)
{
    if (strncmp(org, "Z99", 3) == 0)
        return D_GP;
    if (strncmp(org, "RZZ", 3) == 0)
        return D_NURSING;
    if (strcmp(org, "Z9Z9Z") == 0 || strcmp(org, "8ZZ99") == 0)
        return D_SOCIAL;
    if (strncmp(org, "local:VCS", 9) == 0)
        return D_VOL;
    return -1;
}

/* Valid NHS numbers in the 999 test range (modulus 11), so that one
 * patient's deliveries, which the hub keeps in order, do not hold up all
 * the others. */
static void
make_patients(chaos *c)
{
    for (int base = 100000; c->npatients < 48; base += 7919) {
        char d[11];
        snprintf(d, sizeof d, "999%06d", base % 1000000);
        int sum = 0;
        for (int i = 0; i < 9; i++)
            sum += (d[i] - '0') * (10 - i);
        int check = 11 - sum % 11;
        if (check == 11)
            check = 0;
        if (check == 10)
            continue;
        snprintf(c->patients[c->npatients++], 12, "%.9s%d", d, check % 10);
    }
}

static pid_t
spawn_job(const char *const *argv, const char *log)
{
    pid_t pid = fork();
    cr_assert(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    return pid;
}

/* ------------------------------------------------------------ the rig */

static const char *
setv(chaos *c, int i, const char *fmt, const char *v)
{
    snprintf(c->s[i], sizeof c->s[i], fmt, v);
    return c->s[i];
}

static void
port(char out[16])
{
    snprintf(out, 16, "%d", th_free_port());
}

static void
rig_init(chaos *c)
{
    /* Short back-off and heartbeats so that kills are noticed and retries
     * come back quickly; max_attempts high so that a run of kills cannot
     * push a delivery into dead letters (the test would read that as a
     * loss: it checks for dead letters separately). */
    static const char *const hub_extra[] = {
        "--set", "backoff_initial_ms=100", "--set", "backoff_max_ms=1000",
        "--set", "heartbeat_ms=250",       "--set", "max_attempts=1000",
        NULL};
    th_hub_init(&c->hub, hub_extra);
    snprintf(c->dir, sizeof c->dir, "%s", c->hub.dir);
    port(c->p_fhir);
    port(c->p_gpsim);
    port(c->p_hook);
    port(c->p_volsim);
    port(c->p_mllp);
    port(c->p_nsim);
    snprintf(c->s_hub, sizeof c->s_hub, "hub.endpoint=%s", c->hub.endpoint);
    snprintf(c->orgs, sizeof c->orgs, "%s/voluntary-orgs", c->dir);
    snprintf(c->inbox, sizeof c->inbox, "%s/inbox", c->dir);
    snprintf(c->outbox, sizeof c->outbox, "%s/outbox", c->dir);
    snprintf(c->taken, sizeof c->taken, "%s/taken", c->dir);
    snprintf(c->hl7dir, sizeof c->hl7dir, "%s/hl7", c->dir);
    snprintf(c->gplog, sizeof c->gplog, "%s/gp-sim.requests", c->dir);
    snprintf(c->nlog, sizeof c->nlog, "%s/nursing-sim.messages", c->dir);
    snprintf(c->vlog, sizeof c->vlog, "%s/voluntary-sim.requests", c->dir);
    snprintf(c->joblog, sizeof c->joblog, "%s/jobs.log", c->dir);
    mkdir(c->inbox, 0750);
    mkdir(c->outbox, 0750);
    mkdir(c->hl7dir, 0750);
    FILE *f = fopen(c->orgs, "w");
    cr_assert_not_null(f);
    for (int i = 1; i <= 3; i++)
        fprintf(f, "local:VCS-000%d - vcs-000%d-test %s\n", i, i, SECRET);
    fclose(f);
    chmod(c->orgs, 0600);

    const char **a = c->argv[0];
    char url[200];
    snprintf(url, sizeof url, "http://127.0.0.1:%s/fhir", c->p_gpsim);
    const char *gp[] = {HANDOVER_GP_BIN,
                        "--set",
                        c->s_hub,
                        "--set",
                        setv(c, 0, "listen.port=%s", c->p_fhir),
                        "--set",
                        setv(c, 1, "partner.url=%s", url),
                        NULL};
    memcpy(a, gp, sizeof gp);
    th_proc_init(&c->ad[T_GP], c->dir, "gp", "hub up", a);
    a = c->argv[1];
    const char *gpsim[] = {HANDOVER_GP_SIM_BIN,
                           "serve",
                           "--port",
                           c->p_gpsim,
                           "--log",
                           c->gplog,
                           NULL};
    memcpy(a, gpsim, sizeof gpsim);
    th_proc_init(&c->gpsim, c->dir, "gp-sim", "listens on", a);

    snprintf(url, sizeof url, "http://127.0.0.1:%s/handover/v1/referrals",
             c->p_volsim);
    a = c->argv[2];
    const char *vol[] = {HANDOVER_VOLUNTARY_BIN,
                         "--set",
                         c->s_hub,
                         "--set",
                         setv(c, 2, "listen.port=%s", c->p_hook),
                         "--set",
                         setv(c, 3, "partner.orgs_file=%s", c->orgs),
                         "--set",
                         setv(c, 4, "partner.default_url=%s", url),
                         NULL};
    memcpy(a, vol, sizeof vol);
    th_proc_init(&c->ad[T_VOL], c->dir, "voluntary", "hub up", a);
    a = c->argv[3];
    const char *volsim[] = {HANDOVER_VOLUNTARY_SIM_BIN,
                            "serve",
                            "--port",
                            c->p_volsim,
                            "--secret",
                            SECRET,
                            "--log",
                            c->vlog,
                            NULL};
    memcpy(a, volsim, sizeof volsim);
    th_proc_init(&c->volsim, c->dir, "voluntary-sim", "listens on", a);

    a = c->argv[4];
    const char *nursing[] = {HANDOVER_NURSING_BIN,
                             "--set",
                             c->s_hub,
                             "--set",
                             setv(c, 5, "listen.port=%s", c->p_mllp),
                             "--set",
                             setv(c, 6, "partner.port=%s", c->p_nsim),
                             NULL};
    memcpy(a, nursing, sizeof nursing);
    th_proc_init(&c->ad[T_NURSING], c->dir, "nursing", "hub up", a);
    a = c->argv[5];
    const char *nsim[] = {HANDOVER_NURSING_SIM_BIN,
                          "serve",
                          "--port",
                          c->p_nsim,
                          "--log",
                          c->nlog,
                          NULL};
    memcpy(a, nsim, sizeof nsim);
    th_proc_init(&c->nsim, c->dir, "nursing-sim", "listens on", a);

    a = c->argv[6];
    const char *social[] = {HANDOVER_SOCIAL_BIN,
                            "--set",
                            c->s_hub,
                            "--set",
                            setv(c, 7, "files.inbox=%s", c->inbox),
                            "--set",
                            setv(c, 8, "files.outbox=%s", c->outbox),
                            "--set",
                            "files.scan_interval_ms=300",
                            NULL};
    memcpy(a, social, sizeof social);
    th_proc_init(&c->ad[T_SOCIAL], c->dir, "social", "hub up", a);
    a = c->argv[7];
    const char *csim[] = {HANDOVER_COUNCIL_SIM_BIN,
                          "take",
                          "--outbox",
                          c->outbox,
                          "--taken",
                          c->taken,
                          "--interval-ms",
                          "50",
                          NULL};
    memcpy(a, csim, sizeof csim);
    th_proc_init(&c->csim, c->dir, "council-sim", "watching", a);

    snprintf(c->t_gp.path, sizeof c->t_gp.path, "%s", c->gplog);
    snprintf(c->t_n.path, sizeof c->t_n.path, "%s", c->nlog);
    snprintf(c->t_v.path, sizeof c->t_v.path, "%s", c->vlog);
    snprintf(c->t_c.path, sizeof c->t_c.path, "%s", c->csim.log);
}

static void
rig_start(chaos *c)
{
    th_hub_start(&c->hub);
    th_proc *all[] = {&c->gpsim,         &c->volsim,      &c->nsim,
                      &c->csim,          &c->ad[T_GP],    &c->ad[T_VOL],
                      &c->ad[T_NURSING], &c->ad[T_SOCIAL]};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        th_proc_start(all[i]);
    static const char *const agency[ND] = {"gp", "nursing", "social",
                                           "voluntary"};
    static const char *const name[ND] = {"chaos-gp", "chaos-nursing",
                                         "chaos-social", "chaos-voluntary"};
    for (int d = 0; d < ND; d++) {
        /* resend_ms short: a publish the killed hub never answered is sent
         * again soon (the hub dedupes it). */
        hov_client_opts o = {
            .agency = agency[d], .name = name[d], .resend_ms = 2000};
        hov_error err = {0};
        cr_assert(hov_client_new(&c->pub[d], &o, &err) == HOV_OK, "%s",
                  err.msg);
        cr_assert(hov_client_connect(c->pub[d], c->hub.endpoint, &err) ==
                      HOV_OK,
                  "%s", err.msg);
    }
}

/* --------------------------------------------------------- publishing */

static void
publish_rec(chaos *c, rec *r)
{
    hov_error err = {0};
    cr_assert(hov_client_publish(c->pub[r->pub], r->buf, r->len, r, NULL,
                                 &err) == HOV_OK,
              "%s", err.msg);
    r->in_flight = true;
    r->retry_at = 0;
}

static rec *
publish_sample(chaos *c, int pub, hov_sample *s, unsigned expect)
{
    rec *r = rec_new(c, s->event_id, s->ev.event_type, VIA_CLIENT, expect);
    snprintf(r->nhs, sizeof r->nhs, "%s", s->nhs_number);
    r->pub = pub;
    r->buf = hov_sample_pack(s, &r->len);
    cr_assert_not_null(r->buf);
    publish_rec(c, r);
    return r;
}

static const char *
patient(chaos *c)
{
    return c->patients[rnd(c) % (uint32_t)c->npatients];
}

/* One event of the mix, published by its originating agency. */
static void
publish_one(chaos *c)
{
    hov_sample s;
    uint32_t k = rnd(c) % 100;
    rec *r;
    if (k < 45) { /* a GP referral to nursing, social care or a VCS */
        hov_sample_init(&s, "referral", patient(c));
        hov_sample_clear_destinations(&s);
        unsigned expect;
        if (k < 18) {
            hov_sample_set_service(&s, "district-nursing");
            expect = 1u << D_NURSING;
        } else if (k < 32) {
            hov_sample_set_service(&s, "adult-social-care-assessment");
            expect = 1u << D_SOCIAL;
        } else {
            hov_sample_set_service(&s, "social-prescribing");
            cr_assert(hov_sample_add_destination(&s, "local:VCS-0001"));
            hov_sample_set_consent(&s, "explicit", "2025-03-14T13:30:00Z");
            expect = 1u << D_VOL;
        }
        r = publish_sample(c, D_GP, &s, expect);
    } else if (k < 75) { /* a hospital discharge: GP, nursing, council */
        hov_sample_init(&s, "discharge", patient(c));
        hov_sample_set_source(&s, "RZZ01");
        hov_sample_set_pathway(&s, 1);
        hov_sample_set_registered_gp(&s, "Z99001");
        r = publish_sample(c, D_NURSING, &s,
                           1u << D_GP | 1u << D_NURSING | 1u << D_SOCIAL);
    } else { /* an equipment order from community nursing to the CES */
        hov_sample_init(&s, "equipment_order", patient(c));
        r = publish_sample(c, D_NURSING, &s, 1u << D_SOCIAL);
    }
    /* About half the requests are answered, once they have arrived. */
    r->wants_outcome = strcmp(r->type, "discharge") != 0 && rnd(c) % 2 == 0;
}

/* The answer to r, from the organisation it reached. */
static void
publish_outcome(chaos *c, rec *q, const char *from_org)
{
    q->outcome_made = true;
    if (strcmp(from_org, "local:VCS-0001") == 0) {
        /* In through the partner protocol: a signed webhook. */
        char idem[37], name[128], id[37];
        hov_uuid_v4(idem);
        int n = snprintf(name, sizeof name, "webhook|%s|%s", from_org, idem);
        hov_error err = {0};
        cr_assert(hov_uuid_v5(HOV_EVENT_ID_NS, name, (size_t)n, id, &err) ==
                  HOV_OK);
        rec *r = rec_new(c, id, "outcome", VIA_WEBHOOK, 1u << D_GP);
        snprintf(r->idem, sizeof r->idem, "%s", idem);
        snprintf(r->reply, sizeof r->reply, "%s", q->id);
        hov_rfc3339_format(hov_now_ms(), r->occurred);
        r->retry_at = 1; /* due now */
        return;
    }
    hov_sample s;
    hov_sample_init(&s, "outcome", q->nhs);
    hov_sample_set_source(&s, from_org);
    bool equipment = strcmp(q->type, "equipment_order") == 0;
    hov_sample_set_reply(&s, q->id, equipment ? "delivered" : "accepted");
    /* The answer goes back to the request's source: the GP practice for
     * referrals, community nursing for equipment orders. */
    publish_sample(c, strcmp(from_org, "RZZ40") == 0 ? D_NURSING : D_SOCIAL, &s,
                   equipment ? 1u << D_NURSING : 1u << D_GP);
}

/* A copy of a sample partner message with its identifier replaced, so
 * each copy is a new event. */
static void
write_from_template(const char *sample, const char *from, const char *to,
                    const char *path)
{
    FILE *f = fopen(sample, "rb");
    cr_assert_not_null(f, "%s", sample);
    char *t = malloc(65536);
    size_t n = fread(t, 1, 65535, f);
    t[n] = '\0';
    fclose(f);
    const char *at = strstr(t, from);
    cr_assert_not_null(at, "%s has no %s", sample, from);
    f = fopen(path, "wb");
    cr_assert_not_null(f);
    fwrite(t, 1, (size_t)(at - t), f);
    fputs(to, f);
    size_t rest = (size_t)(at - t) + strlen(from);
    fwrite(t + rest, 1, n - rest, f);
    fclose(f);
    free(t);
}

static rec *
partner_rec(chaos *c, const char *name, const char *type, int via,
            unsigned expect)
{
    char id[37];
    hov_error err = {0};
    cr_assert(hov_uuid_v5(HOV_EVENT_ID_NS, name, strlen(name), id, &err) ==
              HOV_OK);
    rec *r = rec_new(c, id, type, via, expect);
    r->retry_at = 1; /* due now */
    return r;
}

/* An ADT^A03 from the trust's PAS, sent over MLLP to handover-nursing
 * (event id over hl7v2|MSH-4|MSH-3|MSH-10): to the GP, nursing and the
 * council, like a published discharge. */
static void
make_hl7(chaos *c)
{
    char ctl[32], name[96];
    snprintf(ctl, sizeof ctl, "CHAOS%07d", ++c->hl7_seq);
    snprintf(name, sizeof name, "hl7v2|RZZ01|FELLGATE-PAS|%s", ctl);
    rec *r = partner_rec(c, name, "discharge", VIA_HL7,
                         1u << D_GP | 1u << D_NURSING | 1u << D_SOCIAL);
    snprintf(r->file, sizeof r->file, "%.280s/%.20s.hl7", c->hl7dir, ctl);
    write_from_template(HANDOVER_SHARED_DIR
                        "/samples/hl7/valid/adt-a03-discharge-pathway1.hl7",
                        "PAS000187342", ctl, r->file);
}

/* A social prescribing ServiceRequest POSTed by the GP system to
 * handover-gp (event id over fhir|<system>|<value>): to Aldercote Age
 * Well as a signed webhook. */
static void
make_fhir(chaos *c)
{
    char value[32], name[160];
    snprintf(value, sizeof value, "Z99003-REF-CHAOS%06d", ++c->fhir_seq);
    snprintf(name, sizeof name,
             "fhir|https://fhir.gp-system.example/Id/referral|%s", value);
    rec *r = partner_rec(c, name, "referral", VIA_FHIR, 1u << D_VOL);
    r->wants_outcome = rnd2(c) % 2 == 0;
    snprintf(r->file, sizeof r->file, "%.280s/%.30s.json", c->hl7dir, value);
    write_from_template(
        HANDOVER_SHARED_DIR
        "/samples/fhir/valid/servicerequest-social-prescribing.json",
        "Z99003-REF-000112", value, r->file);
}

static void
job_start(chaos *c, job *j, rec *r)
{
    j->r = r;
    j->started = hov_mono_ms();
    r->in_flight = true;
    r->retry_at = 0;
    if (r->via == VIA_HL7) {
        const char *argv[] = {HANDOVER_NURSING_SIM_BIN,
                              "send",
                              "--port",
                              c->p_mllp,
                              r->file,
                              NULL};
        j->pid = spawn_job(argv, c->joblog);
        return;
    }
    if (r->via == VIA_FHIR) {
        char url[128], data[340];
        snprintf(url, sizeof url, "http://127.0.0.1:%s/fhir/ServiceRequest",
                 c->p_fhir);
        snprintf(data, sizeof data, "@%s", r->file);
        /* -f: exit 22 on 4xx and 5xx, so 0 means 201 or 200 (held). */
        const char *argv[] = {"/usr/bin/curl",
                              "-sSf",
                              "-o",
                              "/dev/null",
                              "--max-time",
                              "40",
                              "-X",
                              "POST",
                              "-H",
                              "Content-Type: application/fhir+json",
                              "--data-binary",
                              data,
                              url,
                              NULL};
        j->pid = spawn_job(argv, c->joblog);
        return;
    }
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%s/webhooks/v1/outcome",
             c->p_hook);
    const char *argv[] = {HANDOVER_VOLUNTARY_SIM_BIN,
                          "post-outcome",
                          "--url",
                          url,
                          "--secret",
                          SECRET,
                          "--sender",
                          "local:VCS-0001",
                          "--key-id",
                          "vcs-0001-test",
                          "--in-reply-to",
                          r->reply,
                          "--status",
                          "accepted",
                          "--idempotency-key",
                          r->idem,
                          "--occurred-at",
                          r->occurred,
                          NULL};
    j->pid = spawn_job(argv, c->joblog);
}

static void
job_poll(chaos *c, job *j)
{
    if (j->pid <= 0)
        return;
    int st;
    pid_t w = waitpid(j->pid, &st, WNOHANG);
    if (w == 0) {
        /* Neither client should take this long: the adapters answer a
         * partner within their hub timeout (10 s). */
        if (hov_mono_ms() - j->started > (uint64_t)th_ms(45000)) {
            kill(j->pid, SIGKILL);
            waitpid(j->pid, &st, 0);
        } else {
            return;
        }
    }
    j->pid = 0;
    rec *r = j->r;
    r->in_flight = false;
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
        r->accepted = true;
    } else {
        /* No AA or no 2xx (adapter or hub down, AR, 503): the partner
         * resends the same message later, as a real one would. */
        c->job_failures++;
        r->retry_at = hov_mono_ms() + 300;
    }
}

/* Start the next due job of its kind, one at a time (a partner sending in
 * order). */
static void
jobs_run(chaos *c)
{
    bool idle = false;
    for (int v = 1; v < NVIA; v++) {
        job_poll(c, &c->job[v]);
        idle |= c->job[v].pid <= 0;
    }
    static uint64_t last;
    uint64_t now = hov_mono_ms();
    if (now - last < 20)
        return;
    last = now;
    for (size_t i = 0; i < c->n && idle; i++) {
        rec *r = c->all[i];
        if (r->via == VIA_CLIENT || r->accepted || r->in_flight ||
            r->retry_at == 0 || r->retry_at > now)
            continue;
        if (c->job[r->via].pid <= 0)
            job_start(c, &c->job[r->via], r);
    }
}

/* Answers from the hub to the test's own publishers. */
static void
drain_clients(chaos *c)
{
    hov_error err = {0};
    hov_msg m;
    for (int d = 0; d < ND; d++) {
        for (;;) {
            cr_assert(hov_client_next(c->pub[d], 0, &m, &err) == HOV_OK, "%s",
                      err.msg);
            if (m.kind == HOV_MSG_NONE)
                break;
            rec *r = m.user;
            if (r == NULL || (m.kind != HOV_MSG_ACK && m.kind != HOV_MSG_NAK))
                continue;
            r->in_flight = false;
            if (m.kind == HOV_MSG_ACK) {
                r->accepted = true;
                free(r->buf);
                r->buf = NULL;
                unsigned got = 0;
                for (size_t i = 0; i < m.n_routed; i++) {
                    int x = org_dest(m.routed_to[i]);
                    got |= x >= 0 ? 1u << x : 0x100u;
                }
                /* A duplicate Ack (the first was lost in a kill) may not
                 * list the routing again. */
                if (m.n_routed > 0 && got != r->expect) {
                    c->routing_mismatch++;
                    cr_log_error("event %s (%s) routed to mask %#x, expected "
                                 "%#x",
                                 r->id, r->type, got, r->expect);
                }
            } else if (m.code == HOV_EREPLYTOLATER || m.temporary) {
                /* The answered request is not settled at its destination
                 * yet (its adapter was killed after the partner had it). */
                r->retry_at = hov_mono_ms() + 300;
            } else {
                c->naks_hard++;
                cr_log_error("event %s (%s) refused: %s: %s", r->id, r->type,
                             hov_errname(m.code), m.reason);
            }
        }
    }
    /* Resends scan every record: every 20 ms is soon enough. */
    static uint64_t last;
    uint64_t now = hov_mono_ms();
    if (now - last < 20)
        return;
    last = now;
    for (size_t i = 0; i < c->n; i++) {
        rec *r = c->all[i];
        if (r->via == VIA_CLIENT && !r->accepted && !r->in_flight &&
            r->retry_at && r->retry_at <= now && r->buf != NULL)
            publish_rec(c, r);
    }
}

/* ------------------------------------------------- what the sims received */

static void
received(chaos *c, int d, rec *r, const char *digest)
{
    if (r == NULL) {
        c->unknown++;
        return;
    }
    if (!(r->expect & (1u << d))) {
        c->unexpected++;
        cr_log_error("event %s (%s) reached %s, not one of its destinations",
                     r->id, r->type, dest_name[d]);
    }
    if (r->received[d] == 0) {
        snprintf(r->digest[d], sizeof r->digest[d], "%s", digest);
    } else if (strcmp(r->digest[d], digest) != 0 && !r->differs[d]) {
        r->differs[d] = true;
        cr_log_error("event %s (%s) reached %s as two different messages "
                     "(%s, %s)",
                     r->id, r->type, dest_name[d], r->digest[d], digest);
    }
    r->received[d]++;
    /* Not only once Acked: the partner may have it before the test has
     * read the Ack. */
    if (r->received[d] == 1 && r->wants_outcome && !r->outcome_made) {
        if (strcmp(r->type, "equipment_order") == 0)
            publish_outcome(c, r, "8ZZ99");
        else if (d == D_NURSING)
            publish_outcome(c, r, "RZZ40");
        else if (d == D_SOCIAL)
            publish_outcome(c, r, "Z9Z9Z");
        else if (d == D_VOL)
            publish_outcome(c, r, "local:VCS-0001");
    }
}

/* Feed each complete new line of t to fn. */
static void
tail_lines(chaos *c, tailf *t, void (*fn)(chaos *, char *))
{
    FILE *f = fopen(t->path, "r");
    if (f == NULL)
        return;
    fseek(f, t->off, SEEK_SET);
    char line[2048];
    while (fgets(line, sizeof line, f)) {
        size_t n = strlen(line);
        if (n == 0 || line[n - 1] != '\n')
            break; /* a line still being written: read it next time */
        t->off += (long)n;
        line[n - 1] = '\0';
        fn(c, line);
    }
    fclose(f);
}

static rec *
find(chaos *c, const char *id)
{
    return hov_map_get(c->ids, id, strlen(id));
}

/* "identifier resourceType digest status"; the identifier ends in
 * "|<event id>". */
static void
on_gp_line(chaos *c, char *line)
{
    char ident[400], type[64], dg[64];
    int st;
    if (sscanf(line, "%399s %63s %63s %d", ident, type, dg, &st) != 4 ||
        (st != 200 && st != 201))
        return;
    const char *bar = strrchr(ident, '|');
    received(c, D_GP, find(c, bar ? bar + 1 : ident), dg);
}

/* "control_id type digest": MSH-10 is the event id's first 20 hex
 * digits. */
static void
on_nursing_line(chaos *c, char *line)
{
    char ctl[64], type[64], dg[64];
    if (sscanf(line, "%63s %63s %63s", ctl, type, dg) != 3)
        return;
    received(c, D_NURSING, hov_map_get(c->controls, ctl, strlen(ctl)), dg);
}

/* "<Idempotency-Key> <digest> <status>" */
static void
on_vol_line(chaos *c, char *line)
{
    char id[64], dg[64];
    int st;
    if (sscanf(line, "%63s %63s %d", id, dg, &st) != 3 || st != 200)
        return;
    received(c, D_VOL, find(c, id), dg);
}

/* "taken event=<id> file=<name> digest=<hex>" */
static void
on_council_line(chaos *c, char *line)
{
    char id[64], file[256], dg[64];
    if (sscanf(line, "taken event=%63s file=%255s digest=%63s", id, file, dg) !=
        3)
        return;
    received(c, D_SOCIAL, find(c, id), dg);
}

static void
poll_sims(chaos *c)
{
    tail_lines(c, &c->t_gp, on_gp_line);
    tail_lines(c, &c->t_n, on_nursing_line);
    tail_lines(c, &c->t_v, on_vol_line);
    tail_lines(c, &c->t_c, on_council_line);
}

static void
step(chaos *c)
{
    drain_clients(c);
    poll_sims(c);
    jobs_run(c);
}

/* Run the loop for ms. */
static void
spin(chaos *c, int ms)
{
    uint64_t until = hov_mono_ms() + (uint64_t)ms;
    do {
        step(c);
        usleep(2000);
    } while (hov_mono_ms() < until);
}

/* --------------------------------------------------------------- checks */

typedef struct tally {
    int accepted, expected, delivered, lost, differs, duplicates, pending;
    int hl7, webhook, fhir; /* accepted through a partner protocol */
    int dup[ND];
} tally;

static tally
count(const chaos *c, bool log_lost)
{
    tally t = {0};
    for (size_t i = 0; i < c->n; i++) {
        rec *r = c->all[i];
        if (r->accepted) {
            t.accepted++;
            t.hl7 += r->via == VIA_HL7;
            t.webhook += r->via == VIA_WEBHOOK;
            t.fhir += r->via == VIA_FHIR;
        } else
            t.pending++;
        for (int d = 0; d < ND; d++) {
            t.differs += r->differs[d];
            if (r->received[d] > 1) {
                t.duplicates += r->received[d] - 1;
                t.dup[d] += r->received[d] - 1;
            }
            if (!r->accepted || !(r->expect & (1u << d)))
                continue;
            t.expected++;
            if (r->received[d] > 0) {
                t.delivered++;
            } else {
                t.lost++;
                if (log_lost)
                    cr_log_error("lost: event %s (%s, via %d) never reached "
                                 "%s",
                                 r->id, r->type, r->via, dest_name[d]);
            }
        }
    }
    return t;
}

static bool
outcomes_pending(const chaos *c)
{
    for (size_t i = 0; i < c->n; i++) {
        const rec *r = c->all[i];
        if (r->accepted && r->wants_outcome && !r->outcome_made)
            return true;
    }
    return false;
}

/* ------------------------------------------------------------- the test */

static unsigned
chaos_seed(void)
{
    const char *s = getenv("HANDOVER_CHAOS_SEED");
    if (s && *s)
        return (unsigned)strtoul(s, NULL, 10);
    return (unsigned)(hov_now_ms() ^ ((uint64_t)getpid() << 16));
}

static void
kill_target(chaos *c, int t)
{
    if (t == T_HUB)
        th_hub_kill(&c->hub, SIGKILL);
    else
        th_proc_kill(&c->ad[t], SIGKILL);
    c->kills[t]++;
}

static void
restart_target(chaos *c, int t)
{
    if (t == T_HUB)
        th_hub_start(&c->hub);
    else
        th_proc_start(&c->ad[t]);
}

static chaos cc;

/* A failed assertion leaves the test early: take every process it started
 * down with it, so none outlives the run (the data stays for a look when
 * HANDOVER_TEST_KEEP is set). */
static void
chaos_fini(void)
{
    chaos *c = &cc;
    for (int t = 1; t < NT; t++)
        th_proc_kill(&c->ad[t], SIGKILL);
    th_proc *sims[] = {&c->gpsim, &c->volsim, &c->nsim, &c->csim};
    for (size_t i = 0; i < 4; i++)
        th_proc_kill(sims[i], SIGKILL);
    for (int v = 0; v < NVIA; v++)
        if (c->job[v].pid > 0) {
            kill(c->job[v].pid, SIGKILL);
            waitpid(c->job[v].pid, NULL, 0);
            c->job[v].pid = 0;
        }
    if (c->hub.args[0] != NULL)
        th_hub_fini(&c->hub);
}

Test(chaos, sigkill_hub_and_adapters_under_mixed_load, .timeout = 1800,
     .fini = chaos_fini)
{
    bool lng = getenv("HANDOVER_RELIABILITY_LONG") &&
               strcmp(getenv("HANDOVER_RELIABILITY_LONG"), "0") != 0;
    chaos *c = &cc;
    memset(c, 0, sizeof *c);
    c->seed = chaos_seed();
    c->rng = c->seed;
    c->rng2 = (unsigned long long)c->seed << 32 | 0x5eedu;
    /* Short: ~20 s of load with ~18 kills (each process at least 3 times);
     * long: 6 minutes with ~220. Load is paced in wall time (events per
     * second): a sanitizer build gets the same load in the same time. */
    int load_ms = lng ? 360000 : 20000;
    int rate = lng ? 40 : 25; /* client events per second */
    int nkills = lng ? 220 : 18;
    int hl7_every_ms = lng ? 400 : 700;
    printf("CHAOS seed=%u (HANDOVER_CHAOS_SEED=%u replays it) form=%s\n",
           c->seed, c->seed, lng ? "long" : "short");
    fflush(stdout);

    hov_error err = {0};
    cr_assert(hov_map_new(&c->ids, &err) == HOV_OK);
    cr_assert(hov_map_new(&c->controls, &err) == HOV_OK);
    make_patients(c);

    /* The schedule: which process, when (an offset into the load), how
     * long it stays down. Every process dies nkills/NT times, in a seeded
     * shuffle, at seeded moments. */
    int *target = calloc((size_t)nkills, sizeof *target);
    int *at = calloc((size_t)nkills, sizeof *at);
    int *down = calloc((size_t)nkills, sizeof *down);
    for (int k = 0; k < nkills; k++)
        target[k] = k % NT;
    for (int k = nkills - 1; k > 0; k--) {
        int j = (int)(rnd(c) % (uint32_t)(k + 1));
        int tmp = target[k];
        target[k] = target[j];
        target[j] = tmp;
    }
    int slot = (load_ms - 1000) / nkills;
    for (int k = 0; k < nkills; k++) {
        at[k] = 500 + k * slot + (int)(rnd(c) % (uint32_t)(slot / 2 + 1));
        down[k] = between(c, 0, 400);
    }
    if (!lng) {
        for (int k = 0; k < nkills; k++)
            printf("  kill %2d: %-9s at +%5d ms, down %3d ms\n", k,
                   target_name[target[k]], at[k], down[k]);
        fflush(stdout);
    }

    rig_init(c);
    rig_start(c);
    uint64_t t0 = hov_mono_ms();
    int published = 0, next_kill = 0;
    uint64_t next_hl7 = t0 + 300;
    int window = 200; /* unanswered publishes per publisher */
    while (hov_mono_ms() - t0 < (uint64_t)load_ms || next_kill < nkills) {
        uint64_t now = hov_mono_ms();
        int due = (int)((now - t0) * (uint64_t)rate / 1000);
        while (published < due && now - t0 < (uint64_t)load_ms) {
            size_t busiest = 0;
            for (int d = 0; d < ND; d++)
                if (hov_client_pending(c->pub[d]) > busiest)
                    busiest = hov_client_pending(c->pub[d]);
            if (busiest >= (size_t)window)
                break; /* the hub is down: wait rather than pile up */
            publish_one(c);
            published++;
        }
        if (now >= next_hl7 && now - t0 < (uint64_t)load_ms) {
            make_hl7(c);
            if (rnd2(c) % 2 == 0)
                make_fhir(c);
            next_hl7 = now + (uint64_t)hl7_every_ms;
        }
        if (next_kill < nkills && now - t0 >= (uint64_t)at[next_kill]) {
            int t = target[next_kill];
            kill_target(c, t);
            spin(c, down[next_kill]);
            restart_target(c, t);
            next_kill++;
        }
        step(c);
        usleep(2000);
    }
    uint64_t load_end = hov_mono_ms();
    printf("CHAOS load done in %llu ms: %d published by clients, %d HL7 "
           "sent; draining\n",
           (unsigned long long)(load_end - t0), published, c->hl7_seq);
    fflush(stdout);

    /* Drain: everything accepted must arrive, every planned answer must be
     * made and accepted. */
    uint64_t deadline = hov_mono_ms() + (uint64_t)th_ms(lng ? 180000 : 60000);
    tally t;
    for (;;) {
        spin(c, 100);
        t = count(c, false);
        bool busy = t.pending > 0 || outcomes_pending(c) ||
                    c->job[VIA_HL7].pid > 0 || c->job[VIA_WEBHOOK].pid > 0 ||
                    c->job[VIA_FHIR].pid > 0;
        if (!busy && t.lost == 0)
            break;
        if (hov_mono_ms() > deadline) {
            cr_log_error("drain timed out: %d not accepted, %d deliveries "
                         "missing",
                         t.pending, t.lost);
            break;
        }
    }
    /* A moment more, so that late redeliveries are compared too. */
    spin(c, 500);
    uint64_t t_end = hov_mono_ms();
    t = count(c, true);
    bool dead = th_log_contains(&c->hub, "dead-lettered");

    for (int k = 1; k < NT; k++)
        th_proc_stop(&c->ad[k]);
    th_proc *sims[] = {&c->gpsim, &c->volsim, &c->nsim, &c->csim};
    for (size_t i = 0; i < 4; i++)
        th_proc_kill(sims[i], SIGTERM);
    for (int d = 0; d < ND; d++)
        hov_client_free(c->pub[d]);
    th_hub_stop(&c->hub);

    char data[300];
    snprintf(data, sizeof data, "%.250s/data", c->dir);
    const char *verify[] = {HANDOVER_AUDIT_BIN, "verify", "--data", data, NULL};
    th_proc v;
    th_proc_init(&v, c->dir, "audit-verify", "", verify);
    int vst = th_proc_run(&v, 120000);

    printf(
        "CHAOS seed=%u kills: hub=%d nursing=%d gp=%d social=%d "
        "voluntary=%d; events acked=%d (hl7 in=%d, fhir in=%d, webhook in=%d); "
        "deliveries expected=%d received=%d; lost=%d; two-different=%d; "
        "duplicates=%d (gp=%d nursing=%d social=%d voluntary=%d); "
        "not-accepted=%d; refused=%d; partner resends=%d; "
        "unknown=%d; "
        "dead letters=%s; audit verify %s; load %llu ms, drain %llu ms\n",
        c->seed, c->kills[T_HUB], c->kills[T_NURSING], c->kills[T_GP],
        c->kills[T_SOCIAL], c->kills[T_VOL], t.accepted, t.hl7, t.fhir,
        t.webhook, t.expected, t.delivered, t.lost, t.differs, t.duplicates,
        t.dup[D_GP], t.dup[D_NURSING], t.dup[D_SOCIAL], t.dup[D_VOL], t.pending,
        c->naks_hard, c->job_failures, c->unknown, dead ? "yes" : "none",
        vst == 0 ? "ok" : "FAILED", (unsigned long long)(load_end - t0),
        (unsigned long long)(t_end - load_end));
    fflush(stdout);

    cr_expect_eq(t.lost, 0, "%d deliveries of accepted events were lost",
                 t.lost);
    cr_expect_eq(t.differs, 0,
                 "%d events reached a partner as two different messages",
                 t.differs);
    cr_expect_eq(t.pending, 0, "%d events were never accepted", t.pending);
    cr_expect_eq(c->naks_hard, 0, "%d events were refused", c->naks_hard);
    cr_expect_eq(c->unexpected, 0, "%d deliveries to a wrong partner",
                 c->unexpected);
    cr_expect_eq(c->routing_mismatch, 0, "%d events routed unexpectedly",
                 c->routing_mismatch);
    cr_expect(!dead, "the hub dead-lettered deliveries during the run");
    cr_expect_eq(vst, 0, "handover-audit verify failed (see %s)", v.log);

    for (size_t i = 0; i < c->n; i++) {
        free(c->all[i]->buf);
        free(c->all[i]);
    }
    free(c->all);
    free(target);
    free(at);
    free(down);
    hov_map_free(c->ids);
    hov_map_free(c->controls);
}
