/* Outcome deadlines (domain brief 2.1) and what answers a request, kept
 * in the waiting index of a real store in a temporary folder. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handover/sample.h"
#include "handover/timeutil.h"
#include "harness.h"
#include "overdue.h"

#define MIN  ((uint64_t)60 * 1000)
#define HOUR (60 * MIN)
#define DAY  (24 * HOUR)

static char dir[256];
static store *st;

static void
open_store(void)
{
    hov_error err = {0};
    cr_assert(store_new(&st, &err) == HOV_OK);
    cr_assert(store_set_map_size(st, (size_t)64 << 20, &err) == HOV_OK);
    cr_assert(store_open(st, dir, &err) == HOV_OK, "%s", err.msg);
}

static void
setup(void)
{
    th_tmpdir(dir, sizeof dir);
    open_store();
}

static void
teardown(void)
{
    store_free(st);
    st = NULL;
    th_rm_rf(dir);
}

TestSuite(overdue, .init = setup, .fini = teardown, .timeout = 20);

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

static store_txn *
begin(bool rdonly)
{
    store_txn *txn;
    hov_error err = {0};
    cr_assert(store_begin(st, rdonly, &txn, &err) == HOV_OK, "%s", err.msg);
    return txn;
}

static void
commit(store_txn *txn)
{
    hov_error err = {0};
    cr_assert(store_commit(txn, &err) == HOV_OK, "%s", err.msg);
}

/* Store ev as agency from sent it (source.agency set, as the hub does) and
 * its delivery records as routes says; returns its sequence number. */
static uint64_t
put_event(store_txn *txn, hov_sample *s, config_agency from,
          const route_result *r)
{
    hov_error err = {0};
    s->source.agency = (char *)config_agency_name(from);
    size_t len = handover__event__get_packed_size(&s->ev);
    uint8_t digest[STORE_DIGEST_BYTES] = {0}, *buf;
    uint64_t seq;
    cr_assert(store_event_add(txn, s->event_id, digest, len, &seq, &buf,
                              &err) == HOV_OK,
              "%s", err.msg);
    handover__event__pack(&s->ev, buf);
    for (size_t i = 0; r && i < r->n; i++) {
        Handover__Store__Delivery d = HANDOVER__STORE__DELIVERY__INIT;
        d.state = r->dest[i].dead ? HANDOVER__STORE__DELIVERY__STATE__DEAD
                                  : HANDOVER__STORE__DELIVERY__STATE__ROUTED;
        d.agency = (char *)config_agency_name(r->dest[i].agency);
        cr_assert(store_delivery_put(txn, seq, r->dest[i].code, &d, &err) ==
                  HOV_OK);
    }
    return seq;
}

/* Publish request s as the hub's commit does. */
static uint64_t
publish(hov_sample *s, config_agency from, const route_result *r)
{
    hov_error err = {0};
    store_txn *txn = begin(false);
    uint64_t seq = put_event(txn, s, from, r);
    cr_assert(overdue_on_publish(txn, &s->ev, seq, r, &err) == HOV_OK, "%s",
              err.msg);
    commit(txn);
    return seq;
}

/* Agency from answers request s (stored as seq) with status. */
static void
answer(hov_sample *s, uint64_t seq, const char *status, config_agency from)
{
    hov_error err = {0};
    hov_sample o;
    hov_sample_init(&o, "outcome", NULL);
    hov_sample_set_reply(&o, s->event_id, status);
    store_txn *txn = begin(false);
    uint64_t oseq = put_event(txn, &o, from, NULL);
    cr_assert(store_reply_put(txn, seq, oseq, &err) == HOV_OK);
    cr_assert(overdue_on_outcome(txn, &s->ev, seq, from, status, &err) ==
                  HOV_OK,
              "%s", err.msg);
    commit(txn);
}

static size_t
count(uint64_t now, uint64_t *oldest)
{
    hov_error err = {0};
    size_t n = 0;
    store_txn *txn = begin(true);
    cr_assert(overdue_count(txn, now, &n, oldest, &err) == HOV_OK, "%s",
              err.msg);
    store_abort(txn);
    return n;
}

static size_t
waiting(void)
{
    store_txn *txn = begin(true);
    size_t n = overdue_waiting(txn);
    store_abort(txn);
    return n;
}

static void
dead(uint64_t seq, const char *dest, config_agency agency, bool is_dead)
{
    hov_error err = {0};
    store_txn *txn = begin(false);
    cr_assert(overdue_on_dead(txn, seq, dest, agency, is_dead, &err) == HOV_OK,
              "%s", err.msg);
    commit(txn);
}

Test(overdue, answered_by_the_receiving_agency_only)
{
    hov_error err = {0};
    hov_sample s;
    hov_sample_init(&s, "referral", NULL);
    s.ev.priority = (char *)"two_hour_crisis";
    s.ev.occurred_at = (char *)"2025-03-14T10:00:00Z";
    route_result r = routes1("RZZ40", AGENCY_NURSING, false);
    uint64_t seq = publish(&s, AGENCY_GP, &r);
    uint64_t at = ms("2025-03-14T10:30:00Z"), oldest = 0;
    cr_assert_eq(count(at, NULL), 0, "due, not yet overdue");
    cr_assert_eq(count(at + 1, &oldest), 1);
    cr_assert_eq(oldest, at);

    overdue_item items[4];
    size_t n, total;
    store_txn *txn = begin(true);
    cr_assert(overdue_list(txn, at + 1, items, 4, &n, &total, &err) == HOV_OK);
    store_abort(txn);
    cr_assert_eq(n, 1);
    cr_assert_eq(total, 1);
    cr_assert_str_eq(items[0].event_id, s.event_id);
    cr_assert_str_eq(items[0].event_type, "referral");
    cr_assert_str_eq(items[0].priority, "two_hour_crisis");
    cr_assert_str_eq(items[0].dest, "RZZ40");
    cr_assert_eq(items[0].agency, AGENCY_NURSING);
    cr_assert_eq(items[0].due_ms, at);

    answer(&s, seq, "accepted", AGENCY_SOCIAL);
    cr_assert_eq(count(at + 1, NULL), 1, "not its receiver");
    answer(&s, seq, "accepted", AGENCY_NURSING);
    cr_assert_eq(count(at + 1, NULL), 0);
    cr_assert_eq(waiting(), 0, "answered receivers are forgotten");
}

Test(overdue, equipment_needs_more_than_accepted)
{
    hov_sample s;
    hov_sample_init(&s, "equipment_order", NULL);
    s.order.required_by = (char *)"2025-01-15";
    route_result r = routes1("8ZZ99", AGENCY_SOCIAL, false);
    uint64_t seq = publish(&s, AGENCY_NURSING, &r);
    uint64_t later = ms("2025-01-16T00:00:00Z");
    answer(&s, seq, "accepted", AGENCY_SOCIAL);
    cr_assert_eq(count(later, NULL), 1,
                 "accepted does not answer the required_by date");
    answer(&s, seq, "delivered", AGENCY_SOCIAL);
    cr_assert_eq(count(later, NULL), 0);
}

Test(overdue, dead_letters_are_not_overdue_until_redriven)
{
    hov_sample s;
    hov_sample_init(&s, "discharge", NULL);
    s.discharge.discharged_at = (char *)"2025-03-14T16:20:00Z";
    uint64_t later = ms("2025-03-20T00:00:00Z");
    route_result r = routes1("Z99009", AGENCY_GP, true);
    uint64_t seq = publish(&s, AGENCY_NURSING, &r);
    cr_assert_eq(count(later, NULL), 0, "a dead letter instead");
    cr_assert_eq(waiting(), 0);
    dead(seq, "Z99009", AGENCY_GP, false);
    cr_assert_eq(count(later, NULL), 1, "redriven: waiting again");
    dead(seq, "Z99009", AGENCY_GP, true);
    cr_assert_eq(count(later, NULL), 0);

    /* Answered while in flight, then dead, then redriven: still answered. */
    hov_sample t;
    hov_sample_init(&t, "discharge", NULL);
    t.discharge.discharged_at = (char *)"2025-03-14T16:20:00Z";
    r = routes1("Z99009", AGENCY_GP, false);
    seq = publish(&t, AGENCY_NURSING, &r);
    answer(&t, seq, "acknowledged", AGENCY_GP);
    dead(seq, "Z99009", AGENCY_GP, true);
    dead(seq, "Z99009", AGENCY_GP, false);
    cr_assert_eq(count(later, NULL), 0, "its outcome is on record");

    /* An event the store does not hold (or cannot decode) leaves the
     * index as it was rather than failing the batch that settles it. */
    dead(seq + 1000, "Z99009", AGENCY_GP, true);
    dead(seq + 1000, "Z99009", AGENCY_GP, false);
    cr_assert_eq(waiting(), 0);
}

/* The overdue are the front of the index: the count stops at the first
 * receiver not yet due, however many wait behind it. */
Test(overdue, earliest_first_and_only_the_overdue)
{
    const char *when[] = {"2025-03-10T09:00:00Z", "2025-03-01T09:00:00Z",
                          "2025-03-20T09:00:00Z", "2025-03-05T09:00:00Z"};
    hov_sample s[4];
    for (int i = 0; i < 4; i++) {
        hov_sample_init(&s[i], "referral", NULL);
        s[i].ev.priority = (char *)"urgent";
        s[i].ev.occurred_at = (char *)when[i];
        route_result r =
            routes1(i % 2 ? "RZZ40" : "RZZ41", AGENCY_NURSING, false);
        (void)publish(&s[i], AGENCY_GP, &r);
    }
    uint64_t now = ms("2025-03-12T00:00:00Z"), oldest;
    cr_assert_eq(count(now, &oldest), 3);
    cr_assert_eq(oldest, ms("2025-03-02T09:00:00Z"));
    overdue_item items[2];
    size_t n, total;
    hov_error err = {0};
    store_txn *txn = begin(true);
    cr_assert(overdue_list(txn, now, items, 2, &n, &total, &err) == HOV_OK);
    store_abort(txn);
    cr_assert_eq(n, 2, "at most max");
    cr_assert_eq(total, 3);
    cr_assert_str_eq(items[0].event_id, s[1].event_id);
    cr_assert_str_eq(items[1].event_id, s[3].event_id);
    cr_assert_eq(waiting(), 4);
}

/* A store written before the index: the hub builds it at start from the
 * events, delivery records and outcomes, once. */
Test(overdue, built_from_an_older_store)
{
    hov_error err = {0};
    uint64_t requests = 0;
    cr_assert(overdue_build(st, &requests, &err) == HOV_OK, "%s", err.msg);
    cr_assert_eq(requests, 0, "an empty store is marked at once");

    store_free(st);
    th_rm_rf(dir);
    th_tmpdir(dir, sizeof dir);
    open_store();
    hov_sample a, b, c, o;
    hov_sample_init(&a, "referral", NULL);
    a.ev.occurred_at = (char *)"2025-03-14T10:00:00Z";
    hov_sample_init(&b, "discharge", NULL);
    b.discharge.discharged_at = (char *)"2025-03-14T16:20:00Z";
    hov_sample_init(&c, "discharge", NULL);
    c.discharge.discharged_at = (char *)"2025-03-14T16:20:00Z";
    route_result ra = routes1("RZZ40", AGENCY_NURSING, false);
    route_result rb = routes1("Z99009", AGENCY_GP, false);
    route_result rc = routes1("Z99009", AGENCY_GP, true);
    store_txn *txn = begin(false);
    uint64_t sa = put_event(txn, &a, AGENCY_GP, &ra);
    (void)put_event(txn, &b, AGENCY_NURSING, &rb);
    (void)put_event(txn, &c, AGENCY_NURSING, &rc);
    hov_sample_init(&o, "outcome", NULL);
    hov_sample_set_reply(&o, a.event_id, "completed");
    uint64_t so = put_event(txn, &o, AGENCY_NURSING, NULL);
    cr_assert(store_reply_put(txn, sa, so, &err) == HOV_OK);
    commit(txn);
    cr_assert(store_merge_ids(st, true, &(size_t){0}, &err) == HOV_OK);
    cr_assert_eq(waiting(), 0, "nothing indexed yet");

    cr_assert(overdue_build(st, &requests, &err) == HOV_OK, "%s", err.msg);
    cr_assert_eq(requests, 3);
    cr_assert_eq(waiting(), 1, "a answered, c dead: only b waits");
    cr_assert_eq(count(ms("2025-04-01T00:00:00Z"), NULL), 1);
    cr_assert(overdue_build(st, &requests, &err) == HOV_OK);
    cr_assert_eq(requests, 0, "built once");
}
