/* Whole journeys across partners and protocols, every program real: a GP
 * referral to a voluntary organisation and its outcome back to the GP
 * system; an equipment order from community nursing to the equipment
 * service and its delivery outcome back to nursing. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "handover/timeutil.h"
#include "harness.h"

#ifndef HANDOVER_SHARED_DIR
#define HANDOVER_SHARED_DIR HANDOVER_SOURCE_DIR "/../shared"
#endif

#define SECRET         "journey-test-secret-of-at-least-32-bytes-0123456789"
#define IRENE_REFERRAL "d7f579b8-3e33-5390-9c69-e48402254949"
#define JOAN_ORDER     "d745de58-a690-5946-975d-ed6388248d9c"

typedef struct rig {
    th_hub hub;
    th_proc gp, gpsim, vol, volsim, nursing, nsim, social, csim;
    char dir[256];
    char p_fhir[16], p_gpsim[16], p_hook[16], p_volsim[16], p_mllp[16],
        p_nsim[16];
    char s_hub[128], s[16][400];
    char orgs[300], inbox[300], outbox[300], taken[300];
    const char *argv[8][24];
} rig;

/* Set s->s[i] to a --set value and return it. */
static const char *
setv(rig *r, int i, const char *fmt, const char *v)
{
    snprintf(r->s[i], sizeof r->s[i], fmt, v);
    return r->s[i];
}

static void
port(char out[16])
{
    snprintf(out, 16, "%d", th_free_port());
}

static void
rig_start(rig *r)
{
    memset(r, 0, sizeof *r);
    static const char *const hub_extra[] = {
        "--set", "backoff_initial_ms=100", "--set", "backoff_max_ms=800", NULL};
    th_hub_init(&r->hub, hub_extra);
    snprintf(r->dir, sizeof r->dir, "%s", r->hub.dir);
    port(r->p_fhir);
    port(r->p_gpsim);
    port(r->p_hook);
    port(r->p_volsim);
    port(r->p_mllp);
    port(r->p_nsim);
    snprintf(r->s_hub, sizeof r->s_hub, "hub.endpoint=%s", r->hub.endpoint);
    snprintf(r->orgs, sizeof r->orgs, "%s/voluntary-orgs", r->dir);
    snprintf(r->inbox, sizeof r->inbox, "%s/inbox", r->dir);
    snprintf(r->outbox, sizeof r->outbox, "%s/outbox", r->dir);
    snprintf(r->taken, sizeof r->taken, "%s/taken", r->dir);
    mkdir(r->inbox, 0750);
    mkdir(r->outbox, 0750);
    FILE *f = fopen(r->orgs, "w");
    cr_assert_not_null(f);
    for (int i = 1; i <= 3; i++)
        fprintf(f, "local:VCS-000%d - vcs-000%d-test %s\n", i, i, SECRET);
    fclose(f);
    chmod(r->orgs, 0600);
    th_hub_start(&r->hub);

    const char **a = r->argv[0];
    char url[200];
    snprintf(url, sizeof url, "http://127.0.0.1:%s/fhir", r->p_gpsim);
    const char *gp[] = {HANDOVER_GP_BIN,
                        "--set",
                        r->s_hub,
                        "--set",
                        setv(r, 0, "listen.port=%s", r->p_fhir),
                        "--set",
                        setv(r, 1, "partner.url=%s", url),
                        NULL};
    memcpy(a, gp, sizeof gp);
    th_proc_init(&r->gp, r->dir, "gp", "hub up", a);
    a = r->argv[1];
    const char *gpsim[] = {HANDOVER_GP_SIM_BIN, "serve", "--port", r->p_gpsim,
                           NULL};
    memcpy(a, gpsim, sizeof gpsim);
    th_proc_init(&r->gpsim, r->dir, "gp-sim", "listens on", a);

    snprintf(url, sizeof url, "http://127.0.0.1:%s/handover/v1/referrals",
             r->p_volsim);
    a = r->argv[2];
    const char *vol[] = {HANDOVER_VOLUNTARY_BIN,
                         "--set",
                         r->s_hub,
                         "--set",
                         setv(r, 2, "listen.port=%s", r->p_hook),
                         "--set",
                         setv(r, 3, "partner.orgs_file=%s", r->orgs),
                         "--set",
                         setv(r, 4, "partner.default_url=%s", url),
                         NULL};
    memcpy(a, vol, sizeof vol);
    th_proc_init(&r->vol, r->dir, "voluntary", "hub up", a);
    a = r->argv[3];
    const char *volsim[] = {HANDOVER_VOLUNTARY_SIM_BIN,
                            "serve",
                            "--port",
                            r->p_volsim,
                            "--secret",
                            SECRET,
                            NULL};
    memcpy(a, volsim, sizeof volsim);
    th_proc_init(&r->volsim, r->dir, "voluntary-sim", "listens on", a);

    a = r->argv[4];
    const char *nursing[] = {HANDOVER_NURSING_BIN,
                             "--set",
                             r->s_hub,
                             "--set",
                             setv(r, 5, "listen.port=%s", r->p_mllp),
                             "--set",
                             setv(r, 6, "partner.port=%s", r->p_nsim),
                             NULL};
    memcpy(a, nursing, sizeof nursing);
    th_proc_init(&r->nursing, r->dir, "nursing", "hub up", a);
    a = r->argv[5];
    const char *nsim[] = {HANDOVER_NURSING_SIM_BIN, "serve", "--port",
                          r->p_nsim, NULL};
    memcpy(a, nsim, sizeof nsim);
    th_proc_init(&r->nsim, r->dir, "nursing-sim", "listens on", a);

    a = r->argv[6];
    const char *social[] = {HANDOVER_SOCIAL_BIN,
                            "--set",
                            r->s_hub,
                            "--set",
                            setv(r, 7, "files.inbox=%s", r->inbox),
                            "--set",
                            setv(r, 8, "files.outbox=%s", r->outbox),
                            "--set",
                            "files.scan_interval_ms=300",
                            NULL};
    memcpy(a, social, sizeof social);
    th_proc_init(&r->social, r->dir, "social", "hub up", a);
    a = r->argv[7];
    const char *csim[] = {HANDOVER_COUNCIL_SIM_BIN,
                          "take",
                          "--outbox",
                          r->outbox,
                          "--taken",
                          r->taken,
                          "--interval-ms",
                          "100",
                          NULL};
    memcpy(a, csim, sizeof csim);
    th_proc_init(&r->csim, r->dir, "council-sim", "watching", a);

    th_proc *all[] = {&r->gpsim, &r->volsim, &r->nsim,    &r->csim,
                      &r->gp,    &r->vol,    &r->nursing, &r->social};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        th_proc_start(all[i]);
}

static void
rig_stop(rig *r)
{
    th_proc *adapters[] = {&r->gp, &r->vol, &r->nursing, &r->social};
    for (size_t i = 0; i < 4; i++)
        th_proc_stop(adapters[i]);
    th_proc *sims[] = {&r->gpsim, &r->volsim, &r->nsim, &r->csim};
    for (size_t i = 0; i < 4; i++)
        th_proc_kill(sims[i], SIGTERM);
    th_hub_stop(&r->hub);
    th_hub_fini(&r->hub);
}

static int
run(rig *r, const char *name, const char *const *argv)
{
    th_proc p;
    th_proc_init(&p, r->dir, name, "", argv);
    return th_proc_run(&p, 30000);
}

Test(journey, gp_referral_to_a_voluntary_organisation_and_back, .timeout = 120)
{
    rig r;
    rig_start(&r);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%s/fhir/ServiceRequest",
             r.p_fhir);
    const char *curl[] = {
        "/usr/bin/curl",
        "-sS",
        "-o",
        "/dev/null",
        "-w",
        "status=%{http_code}\n",
        "-X",
        "POST",
        "-H",
        "Content-Type: application/fhir+json",
        "--data-binary",
        "@" HANDOVER_SHARED_DIR
        "/samples/fhir/valid/servicerequest-social-prescribing.json",
        url,
        NULL,
    };
    cr_assert_eq(run(&r, "curl", curl), 0);
    /* FHIR in, a signed webhook out to Aldercote Age Well. */
    cr_assert(th_proc_wait_log(&r.volsim, IRENE_REFERRAL, 1, 15000),
              "the referral did not reach the voluntary organisation");
    /* The organisation's signed outcome comes back as a FHIR Task. */
    snprintf(url, sizeof url, "http://127.0.0.1:%s/webhooks/v1/outcome",
             r.p_hook);
    const char *post[] = {HANDOVER_VOLUNTARY_SIM_BIN,
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
                          IRENE_REFERRAL,
                          "--status",
                          "accepted",
                          "--planned-for",
                          "2025-03-20",
                          NULL};
    cr_assert_eq(run(&r, "post-outcome", post), 0);
    cr_assert(th_proc_wait_log(&r.gpsim, "POST /fhir/Task", 1, 15000),
              "the outcome did not reach the GP system");
    rig_stop(&r);
}

Test(journey, nursing_equipment_order_to_the_ces_and_delivery_back,
     .timeout = 120)
{
    rig r;
    rig_start(&r);
    const char *send[] = {HANDOVER_NURSING_SIM_BIN,
                          "send",
                          "--port",
                          r.p_mllp,
                          HANDOVER_SHARED_DIR
                          "/samples/hl7/valid/orm-o01-equipment-order.hl7",
                          NULL};
    cr_assert_eq(run(&r, "send", send), 0, "the ORM was not acknowledged AA");
    /* HL7 in, a file out to the equipment service. */
    cr_assert(th_proc_wait_log(&r.csim, "taken event=" JOAN_ORDER, 1, 15000),
              "the order did not reach the equipment service");
    /* The CES drops a delivery outcome file; nursing gets ORM^O01 SC. */
    const char *outcome[] = {HANDOVER_COUNCIL_SIM_BIN,
                             "outcome",
                             "--inbox",
                             r.inbox,
                             "--org",
                             "8ZZ99",
                             "--in-reply-to",
                             JOAN_ORDER,
                             "--status",
                             "delivered",
                             "--nhs",
                             "9993001007",
                             "--item",
                             "BED-PROF-01:1:CES-A-000101",
                             NULL};
    cr_assert_eq(run(&r, "outcome", outcome), 0);
    cr_assert(th_proc_wait_log(&r.nsim, "ORM^O01", 1, 15000),
              "the delivery outcome did not reach community nursing");
    cr_expect(th_proc_log_count(&r.nsim, "nhs=9993001007") >= 1);
    rig_stop(&r);
}
