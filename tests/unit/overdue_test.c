/* Outcome deadlines (domain brief 2.1) and what answers a request. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "handover/sample.h"
#include "handover/timeutil.h"
#include "overdue.h"

#define MIN  ((uint64_t)60 * 1000)
#define HOUR (60 * MIN)
#define DAY  (24 * HOUR)

static overdue *od;

static void
teardown(void)
{
    overdue_free(od);
    od = NULL;
}

TestSuite(overdue, .fini = teardown, .timeout = 10);

static uint64_t
ms(const char *stamp)
{
    uint64_t v = 0;
    cr_assert(hov_rfc3339_to_ms(stamp, &v), "%s", stamp);
    return v;
}

static uint64_t
due(const Handover__Event *ev, config_agency receiver)
{
    uint64_t d = 0;
    cr_assert(overdue_due_ms(ev, receiver, &d));
    return d;
}

Test(overdue, default_deadlines)
{
    hov_sample s;
    hov_sample_init(&s, "referral", NULL);
    s.ev.occurred_at = (char *)"2025-03-14T10:00:00Z";
    uint64_t t0 = ms("2025-03-14T10:00:00Z");
    s.ev.priority = (char *)"two_hour_crisis";
    cr_assert_eq(due(&s.ev, AGENCY_NURSING), t0 + 30 * MIN);
    cr_assert_eq(due(&s.ev, AGENCY_VOLUNTARY), t0 + 7 * DAY,
                 "the voluntary sector has 7 days whatever the priority");
    s.ev.priority = (char *)"urgent";
    cr_assert_eq(due(&s.ev, AGENCY_SOCIAL), t0 + DAY);
    s.ev.priority = (char *)"routine";
    cr_assert_eq(due(&s.ev, AGENCY_NURSING), t0 + 7 * DAY);

    hov_sample_init(&s, "discharge", NULL);
    s.discharge.discharged_at = (char *)"2025-03-14T16:20:00Z";
    cr_assert_eq(due(&s.ev, AGENCY_GP), ms("2025-03-15T16:20:00Z"));

    /* The end of the required_by day in Europe/London: summer time... */
    hov_sample_init(&s, "equipment_order", NULL);
    s.order.required_by = (char *)"2025-07-01";
    cr_assert_eq(due(&s.ev, AGENCY_SOCIAL), ms("2025-07-01T22:59:59.999Z"));
    /* ... and winter time. */
    s.order.required_by = (char *)"2025-01-15";
    cr_assert_eq(due(&s.ev, AGENCY_SOCIAL), ms("2025-01-15T23:59:59.999Z"));

    hov_sample_init(&s, "outcome", NULL);
    uint64_t d;
    cr_assert_not(overdue_due_ms(&s.ev, AGENCY_GP, &d),
                  "outcomes are never answered");
}

static route_result
routes1(const char *code, config_agency agency, bool dead)
{
    route_result r;
    memset(&r, 0, sizeof r);
    snprintf(r.dest[0].code, sizeof r.dest[0].code, "%s", code);
    r.dest[0].agency = agency;
    r.dest[0].dead = dead;
    r.n = 1;
    return r;
}

static void
answer(const char *event_id, const char *status, config_agency from)
{
    hov_sample o;
    hov_sample_init(&o, "outcome", NULL);
    hov_sample_set_reply(&o, event_id, status);
    route_result none;
    memset(&none, 0, sizeof none);
    overdue_on_publish(od, &o.ev, from, &none);
}

Test(overdue, answered_by_the_receiving_agency_only)
{
    hov_error err = {0};
    cr_assert(overdue_new(&od, 1, &err) == HOV_OK);
    hov_sample s;
    hov_sample_init(&s, "referral", NULL);
    s.ev.priority = (char *)"two_hour_crisis";
    s.ev.occurred_at = (char *)"2025-03-14T10:00:00Z";
    route_result r = routes1("RZZ40", AGENCY_NURSING, false);
    overdue_on_publish(od, &s.ev, AGENCY_GP, &r);
    uint64_t at = ms("2025-03-14T10:30:00Z"), oldest = 0;
    cr_assert_eq(overdue_count(od, at, NULL), 0, "due, not yet overdue");
    cr_assert_eq(overdue_count(od, at + 1, &oldest), 1);
    cr_assert_eq(oldest, at);

    overdue_item items[4];
    size_t n, total;
    cr_assert(overdue_list(od, at + 1, items, 4, &n, &total, &err) == HOV_OK);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(items[0].event_id, s.event_id);
    cr_assert_str_eq(items[0].dest, "RZZ40");

    answer(s.event_id, "accepted", AGENCY_SOCIAL);
    cr_assert_eq(overdue_count(od, at + 1, NULL), 1, "not its receiver");
    answer(s.event_id, "accepted", AGENCY_NURSING);
    cr_assert_eq(overdue_count(od, at + 1, NULL), 0);
    cr_assert_eq(overdue_tracked(od), 0, "answered requests are forgotten");
}

Test(overdue, equipment_needs_more_than_accepted)
{
    hov_error err = {0};
    cr_assert(overdue_new(&od, 1, &err) == HOV_OK);
    hov_sample s;
    hov_sample_init(&s, "equipment_order", NULL);
    s.order.required_by = (char *)"2025-01-15";
    route_result r = routes1("8ZZ99", AGENCY_SOCIAL, false);
    overdue_on_publish(od, &s.ev, AGENCY_NURSING, &r);
    uint64_t later = ms("2025-01-16T00:00:00Z");
    answer(s.event_id, "accepted", AGENCY_SOCIAL);
    cr_assert_eq(overdue_count(od, later, NULL), 1,
                 "accepted does not answer the required_by date");
    answer(s.event_id, "delivered", AGENCY_SOCIAL);
    cr_assert_eq(overdue_count(od, later, NULL), 0);
}

Test(overdue, dead_letters_are_not_overdue_until_redriven)
{
    hov_error err = {0};
    cr_assert(overdue_new(&od, 1, &err) == HOV_OK);
    hov_sample s;
    hov_sample_init(&s, "discharge", NULL);
    s.discharge.discharged_at = (char *)"2025-03-14T16:20:00Z";
    route_result r = routes1("Z99009", AGENCY_GP, true);
    overdue_on_publish(od, &s.ev, AGENCY_NURSING, &r);
    uint64_t later = ms("2025-03-20T00:00:00Z");
    cr_assert_eq(overdue_count(od, later, NULL), 0, "a dead letter instead");
    cr_assert_eq(overdue_tracked(od), 1, "kept: it may be redriven");
    overdue_on_dead(od, s.event_id, "Z99009", false);
    cr_assert_eq(overdue_count(od, later, NULL), 1, "redriven: waiting again");
    overdue_on_dead(od, s.event_id, "Z99009", true);
    cr_assert_eq(overdue_count(od, later, NULL), 0);
}

/* While the store is still being read, an outcome can arrive before the
 * catch-up reaches its request: it is kept and applied then. */
Test(overdue, early_answers_during_the_catch_up)
{
    hov_error err = {0};
    cr_assert(overdue_new(&od, 1000, &err) == HOV_OK);
    uint64_t done, total;
    cr_assert(overdue_loading(od, &done, &total));
    cr_assert_eq(total, 999);
    hov_sample s;
    hov_sample_init(&s, "referral", NULL);
    s.ev.occurred_at = (char *)"2025-03-14T10:00:00Z";
    answer(s.event_id, "rejected", AGENCY_NURSING);
    route_result r = routes1("RZZ40", AGENCY_NURSING, false);
    overdue_on_publish(od, &s.ev, AGENCY_GP, &r);
    cr_assert_eq(overdue_count(od, ms("2025-04-01T00:00:00Z"), NULL), 0);
    cr_assert_eq(overdue_tracked(od), 0);
}
