/* Configuration parsing and routing rules, without a hub process. */
#include <criterion/criterion.h>
#include <string.h>

#include "config.h"
#include "handover/sample.h"
#include "handover/timeutil.h"
#include "route.h"

static config cfg;

static void
load_default(void)
{
    hov_error err = {0};
    cr_assert(config_load(&cfg, NULL, &err) == HOV_OK, "%s", err.msg);
}

static void
fini(void)
{
    config_fini(&cfg);
}

TestSuite(config, .fini = fini, .timeout = 10);

Test(config, default_is_valid)
{
    load_default();
    cr_assert_str_eq(cfg.endpoint, "tcp://127.0.0.1:7400");
    cr_assert_eq(cfg.max_event_bytes, 1u << 20);
    cr_assert_eq(config_org_find(&cfg, "RZZ40")->agency, AGENCY_NURSING);
    cr_assert_eq(config_org_find(&cfg, "8ZZ99")->agency, AGENCY_SOCIAL);
    cr_assert_str_eq(config_org_find(&cfg, "8ZZ99")->view, "ces");
    cr_assert_eq(config_org_find(&cfg, "local:VCS-0002")->agency,
                 AGENCY_VOLUNTARY);
    cr_assert_gt(cfg.n_routes, 5);
}

Test(config, errors_name_line_and_key)
{
    hov_error err = {0};
    cr_assert_eq(
        config_load_string(&cfg, "hub:\n  enpoint: x\n", "t.yaml", &err),
        HOV_ECONFIG);
    cr_assert(strstr(err.msg, "t.yaml:2") && strstr(err.msg, "enpoint"), "%s",
              err.msg);
    config_fini(&cfg);

    hov_error_clear(&err);
    cr_assert_eq(config_load_string(&cfg,
                                    "organisations:\n"
                                    "  - {code: A1, agency: gp}\n"
                                    "routes:\n"
                                    "  - {name: r, match: {event_type: "
                                    "referral}, to: [B2]}\n",
                                    "t.yaml", &err),
                 HOV_ECONFIG);
    cr_assert(strstr(err.msg, "B2"), "%s", err.msg);
    config_fini(&cfg);

    hov_error_clear(&err);
    cr_assert_eq(config_load_string(&cfg, "hub: [1, 2", "t.yaml", &err),
                 HOV_ECONFIG);
    cr_assert(strstr(err.msg, "YAML"), "%s", err.msg);
    config_fini(&cfg);

    hov_error_clear(&err);
    cr_assert_eq(config_load(&cfg, "/nonexistent/handover.yaml", &err),
                 HOV_EIO);
    cr_assert(strstr(err.msg, "/nonexistent/handover.yaml"), "%s", err.msg);
}

Test(config, set_overrides)
{
    load_default();
    hov_error err = {0};
    cr_assert(config_set(&cfg, "max_attempts", "3", &err) == HOV_OK);
    cr_assert_eq(cfg.max_attempts, 3);
    cr_assert(config_set(&cfg, "allow_test_nhs_numbers", "false", &err) ==
              HOV_OK);
    cr_assert_not(cfg.allow_test_nhs_numbers);
    cr_assert_eq(config_set(&cfg, "max_attempts", "-1", &err), HOV_ECONFIG);
    hov_error_clear(&err);
    cr_assert_eq(config_set(&cfg, "no_such", "1", &err), HOV_ECONFIG);
}

static void
routes_of(hov_sample *s, const char *reply_src, const char *reply_type,
          route_result *r, hov_err want)
{
    hov_error err = {0};
    route_reply rep = {reply_src, reply_type};
    hov_err e = route_match(&cfg, &s->ev, &rep, r, &err);
    cr_assert_eq(e, want, "route_match: %s (%s)", hov_errname(e), err.msg);
}

static bool
has(const route_result *r, const char *code, bool dead)
{
    for (size_t i = 0; i < r->n; i++)
        if (strcmp(r->dest[i].code, code) == 0 && r->dest[i].dead == dead)
            return true;
    return false;
}

Test(config, routing_rules)
{
    load_default();
    hov_sample s;
    route_result r;

    hov_sample_init(&s, "referral", NULL);
    routes_of(&s, NULL, NULL, &r, HOV_OK);
    cr_assert(r.n == 1 && has(&r, "RZZ40", false));

    hov_sample_set_service(&s, "reablement");
    routes_of(&s, NULL, NULL, &r, HOV_OK);
    cr_assert(r.n == 1 && has(&r, "Z9Z9Z", false));

    hov_sample_init(&s, "discharge", NULL);
    hov_sample_set_pathway(&s, 2);
    routes_of(&s, NULL, NULL, &r, HOV_OK);
    cr_assert(has(&r, "Z99001", false) && has(&r, "RZZ40", false) &&
              has(&r, "Z9Z9Z", false));

    hov_sample_set_registered_gp(&s, NULL);
    routes_of(&s, NULL, NULL, &r, HOV_OK);
    cr_assert(strstr(r.warning, "no registered GP"), "%s", r.warning);

    hov_sample_init(&s, "equipment_order", NULL);
    routes_of(&s, NULL, NULL, &r, HOV_OK);
    cr_assert(r.n == 1 && has(&r, "8ZZ99", false));
    cr_assert_str_eq(r.dest[0].view, "ces");

    hov_sample_init(&s, "outcome", NULL);
    hov_sample_set_reply(&s, "0d6f5a48-6a3c-4bd6-9a52-1f1de86bb8a5",
                         "accepted");
    routes_of(&s, "Z99001", "referral", &r, HOV_OK);
    cr_assert(r.n == 1 && has(&r, "Z99001", false));
    routes_of(&s, "RZZ01", "discharge", &r, HOV_OK);
    cr_assert_eq(r.n, 0, "discharge outcomes are recorded, not sent back");
}

Test(config, views_leave_fields_out)
{
    hov_sample s;
    hov_sample_init(&s, "discharge", "9992468130");
    size_t len;
    uint8_t *buf = hov_sample_pack(&s, &len);
    const uint8_t *out;
    size_t olen;
    bool owned;
    hov_error err = {0};
    cr_assert(route_view_pack("full", buf, len, "2026-01-01", &out, &olen,
                              &owned, &err) == HOV_OK);
    cr_assert(!owned && out == buf, "the full view is the stored bytes");
    cr_assert(route_view_pack("ces", buf, len, "2026-01-01", &out, &olen,
                              &owned, &err) == HOV_OK);
    Handover__Event *ev = handover__event__unpack(NULL, olen, out);
    cr_assert_str_eq(ev->reason, "");
    cr_assert_str_eq(ev->discharge->medications_summary, "");
    cr_assert_eq(ev->discharge->n_diagnoses, 0);
    cr_assert_str_eq(ev->patient->nhs_number, "9992468130");
    handover__event__free_unpacked(ev, NULL);
    free((void *)out);
    cr_assert_eq(route_view_pack("nosuch", buf, len, "2026-01-01", &out, &olen,
                                 &owned, &err),
                 HOV_ECONFIG);
    free(buf);
}
