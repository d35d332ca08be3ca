#include "overdue.h"

#include <stdlib.h>
#include <string.h>

#include "handover/log.h"
#include "handover/str.h"
#include "handover/timeutil.h"

#define MINUTE_MS ((uint64_t)60 * 1000)
#define HOUR_MS   (60 * MINUTE_MS)
#define DAY_MS    (24 * HOUR_MS)

/* Set once the waiting index covers every stored event. */
#define BUILT_KEY "index/waiting"

static bool
is_request(const Handover__Event *ev)
{
    return ev->body_case == HANDOVER__EVENT__BODY_REFERRAL ||
           ev->body_case == HANDOVER__EVENT__BODY_DISCHARGE ||
           ev->body_case == HANDOVER__EVENT__BODY_EQUIPMENT_ORDER;
}

/* "YYYY-MM-DD" into its parts; false if it is not a date. */
static bool
parse_date(const char *s, int *y, int *m, int *d)
{
    if (s == NULL || !hov_date_valid(s))
        return false;
    *y = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 +
         (s[3] - '0');
    *m = (s[5] - '0') * 10 + (s[6] - '0');
    *d = (s[8] - '0') * 10 + (s[9] - '0');
    return true;
}

bool
overdue_due_ms(const Handover__Event *ev, config_agency receiver,
               uint64_t *due_ms)
{
    uint64_t base;
    switch (ev->body_case) {
    case HANDOVER__EVENT__BODY_REFERRAL: {
        if (ev->occurred_at == NULL ||
            !hov_rfc3339_to_ms(ev->occurred_at, &base))
            return false;
        const char *p = ev->priority ? ev->priority : "";
        uint64_t d = 7 * DAY_MS; /* routine, and every voluntary receiver */
        if (receiver != AGENCY_VOLUNTARY && strcmp(p, "two_hour_crisis") == 0)
            d = 30 * MINUTE_MS;
        else if (receiver != AGENCY_VOLUNTARY && strcmp(p, "urgent") == 0)
            d = DAY_MS;
        *due_ms = base + d;
        return true;
    }
    case HANDOVER__EVENT__BODY_DISCHARGE:
        if (ev->discharge == NULL || ev->discharge->discharged_at == NULL ||
            !hov_rfc3339_to_ms(ev->discharge->discharged_at, &base))
            return false;
        *due_ms = base + DAY_MS;
        return true;
    case HANDOVER__EVENT__BODY_EQUIPMENT_ORDER: {
        int y, m, d;
        if (ev->equipment_order == NULL ||
            !parse_date(ev->equipment_order->required_by, &y, &m, &d))
            return false;
        /* 23:59:59 always exists in London: the clocks change at 01:00. */
        return hov_london_to_ms(y, m, d, 23, 59, 59, 999, due_ms, NULL) == 0;
    }
    default:
        return false;
    }
}

/* The stored event seq, unpacked into *out (owned: free with
 * handover__event__free_unpacked, which takes NULL). HOV_ENOTFOUND (err
 * untouched, with a log line) when it is missing or cannot be decoded: the
 * deadlines of one damaged event must not stop the batch that settles it;
 * a store failure (which poisons txn) is returned as such. */
static hov_err
stored_read(store_txn *txn, uint64_t seq, Handover__Event **out, hov_error *err)
{
    const uint8_t *data;
    size_t len;
    hov_err e = store_event_read(txn, seq, &data, &len, err);
    if (e == HOV_OK) {
        *out = handover__event__unpack(NULL, len, data);
        if (*out != NULL)
            return HOV_OK;
    }
    if (e != HOV_OK && e != HOV_ENOTFOUND)
        return e;
    hov_warn("overdue tracking: stored event %llu is %s; its outcome "
             "deadlines are left as they were",
             (unsigned long long)seq,
             e == HOV_ENOTFOUND ? "missing" : "unreadable");
    return HOV_ENOTFOUND;
}

/* Does this outcome status answer a receiver of req? */
static bool
answers(const Handover__Event *req, const char *status)
{
    if (req->body_case != HANDOVER__EVENT__BODY_EQUIPMENT_ORDER)
        return true;
    /* accepted alone does not answer required_by */
    return status == NULL || strcmp(status, "accepted") != 0;
}

hov_err
overdue_on_publish(store_txn *txn, const Handover__Event *ev,
                   uint64_t event_seq, const route_result *routes,
                   hov_error *err)
{
    if (!is_request(ev))
        return HOV_OK;
    for (size_t i = 0; i < routes->n; i++) {
        const route_dest *d = &routes->dest[i];
        uint64_t due;
        if (d->dead || !overdue_due_ms(ev, d->agency, &due))
            continue; /* validated requests always have their times */
        hov_err e =
            store_waiting_put(txn, due, event_seq, d->code, d->agency, err);
        if (e != HOV_OK)
            return e;
    }
    return HOV_OK;
}

typedef struct answer_ctx {
    store_txn *txn;
    const Handover__Event *req;
    uint64_t seq;
    config_agency from;
} answer_ctx;

static hov_err
answer_one(void *arg, const char *dest, const Handover__Store__Delivery *d,
           hov_error *err)
{
    answer_ctx *c = arg;
    uint64_t due;
    if (config_agency_parse(d->agency ? d->agency : "") != (int)c->from ||
        !overdue_due_ms(c->req, c->from, &due))
        return HOV_OK;
    hov_err e = store_waiting_del(c->txn, due, c->seq, dest, err);
    return e == HOV_ENOTFOUND ? HOV_OK : e; /* answered before, or dead */
}

hov_err
overdue_on_outcome(store_txn *txn, const Handover__Event *req, uint64_t req_seq,
                   config_agency from, const char *status, hov_error *err)
{
    if (!is_request(req) || !answers(req, status))
        return HOV_OK;
    answer_ctx c = {txn, req, req_seq, from};
    return store_delivery_scan(txn, req_seq, answer_one, &c, err);
}

/* Has agency answered the request stored as seq (an outcome that
 * answers, recorded in the replies index)? */
typedef struct answered_ctx {
    store_txn *txn;
    const Handover__Event *req;
    config_agency agency;
    bool yes;
} answered_ctx;

static hov_err
answered_one(void *arg, uint64_t reply_seq, hov_error *err)
{
    answered_ctx *c = arg;
    Handover__Event *ev = NULL;
    hov_err e = stored_read(c->txn, reply_seq, &ev, err);
    if (e != HOV_OK)
        return e == HOV_ENOTFOUND ? HOV_OK : e;
    if (ev->source && ev->source->agency &&
        config_agency_parse(ev->source->agency) == (int)c->agency &&
        answers(c->req, ev->outcome ? ev->outcome->status : NULL))
        c->yes = true;
    handover__event__free_unpacked(ev, NULL);
    return HOV_OK;
}

hov_err
overdue_on_dead(store_txn *txn, uint64_t event_seq, const char *dest,
                config_agency agency, bool dead, hov_error *err)
{
    Handover__Event *req = NULL;
    hov_err e = stored_read(txn, event_seq, &req, err);
    uint64_t due;
    if (e != HOV_OK || !is_request(req) || !overdue_due_ms(req, agency, &due))
        goto out;
    if (dead) {
        e = store_waiting_del(txn, due, event_seq, dest, err);
        if (e == HOV_ENOTFOUND)
            e = HOV_OK; /* answered while in flight */
        goto out;
    }
    answered_ctx c = {txn, req, agency, false};
    e = store_reply_scan(txn, event_seq, answered_one, &c, err);
    if (e == HOV_OK && !c.yes)
        e = store_waiting_put(txn, due, event_seq, dest, agency, err);
out:
    handover__event__free_unpacked(req, NULL);
    return e == HOV_ENOTFOUND ? HOV_OK : e;
}

/* ------------------------------------------------------------- queries */

typedef struct count_ctx {
    uint64_t now;
    size_t n;
    uint64_t oldest;
    overdue_item *out;
    size_t max;
} count_ctx;

static hov_err
count_one(void *arg, uint64_t due_ms, uint64_t event_seq, const char *dest,
          unsigned agency, hov_error *err)
{
    (void)err;
    count_ctx *c = arg;
    if (due_ms >= c->now)
        return HOV_ETIMEDOUT; /* past the overdue: stop (err untouched) */
    if (c->n == 0)
        c->oldest = due_ms;
    if (c->n < c->max) {
        overdue_item *it = &c->out[c->n];
        memset(it, 0, sizeof *it);
        hov_strlcpy(it->dest, sizeof it->dest, dest);
        it->agency = (config_agency)agency;
        it->event_seq = event_seq;
        it->due_ms = due_ms;
    }
    c->n++;
    return HOV_OK;
}

static hov_err
count_scan(store_txn *txn, count_ctx *c, hov_error *err)
{
    hov_err e = store_waiting_scan(txn, count_one, c, err);
    return e == HOV_ETIMEDOUT ? HOV_OK : e;
}

hov_err
overdue_count(store_txn *txn, uint64_t now_ms, size_t *count,
              uint64_t *oldest_due, hov_error *err)
{
    count_ctx c = {.now = now_ms};
    hov_err e = count_scan(txn, &c, err);
    *count = c.n;
    if (oldest_due)
        *oldest_due = c.oldest;
    return e;
}

hov_err
overdue_list(store_txn *txn, uint64_t now_ms, overdue_item *out, size_t max,
             size_t *n, size_t *total, hov_error *err)
{
    count_ctx c = {.now = now_ms, .out = out, .max = max};
    *n = 0;
    *total = 0;
    hov_err e = count_scan(txn, &c, err);
    if (e != HOV_OK)
        return e;
    *total = c.n;
    *n = c.n < max ? c.n : max;
    for (size_t i = 0; i < *n; i++) {
        overdue_item *it = &out[i];
        Handover__Event *ev = NULL;
        hov_error rerr = {0};
        if (stored_read(txn, it->event_seq, &ev, &rerr) != HOV_OK) {
            /* Listed with what the index knows; the store's fault shows
             * elsewhere (status, verify). */
            hov_strlcpy(it->event_id, sizeof it->event_id, "?");
            continue;
        }
        hov_strlcpy(it->event_id, sizeof it->event_id, ev->event_id);
        hov_strlcpy(it->event_type, sizeof it->event_type, ev->event_type);
        hov_strlcpy(it->priority, sizeof it->priority, ev->priority);
        handover__event__free_unpacked(ev, NULL);
    }
    return HOV_OK;
}

size_t
overdue_waiting(store_txn *txn)
{
    return store_waiting_count(txn);
}

/* --------------------------------------------------------------- build */

typedef struct build_ctx {
    store_txn *txn;
    const Handover__Event *ev;
    uint64_t seq;
    uint64_t requests;
} build_ctx;

static hov_err
build_recv(void *arg, const char *dest, const Handover__Store__Delivery *d,
           hov_error *err)
{
    build_ctx *c = arg;
    int agency = config_agency_parse(d->agency ? d->agency : "");
    uint64_t due;
    if (agency < 0 || d->state == HANDOVER__STORE__DELIVERY__STATE__DEAD ||
        d->state == HANDOVER__STORE__DELIVERY__STATE__REJECTED ||
        !overdue_due_ms(c->ev, (config_agency)agency, &due))
        return HOV_OK;
    return store_waiting_put(c->txn, due, c->seq, dest, (unsigned)agency, err);
}

static hov_err
build_one(void *arg, uint64_t seq, const uint8_t *data, size_t len,
          hov_error *err)
{
    build_ctx *c = arg;
    Handover__Event *ev = handover__event__unpack(NULL, len, data);
    if (ev == NULL) {
        hov_warn("overdue index: stored event %llu cannot be decoded; "
                 "skipped",
                 (unsigned long long)seq);
        return HOV_OK;
    }
    hov_err e = HOV_OK;
    if (is_request(ev)) {
        c->ev = ev;
        c->seq = seq;
        c->requests++;
        e = store_delivery_scan(c->txn, seq, build_recv, c, err);
    } else if (ev->body_case == HANDOVER__EVENT__BODY_OUTCOME && ev->source &&
               ev->source->agency) {
        /* Events are read in arrival order: an outcome comes after the
         * request it answers, whose receivers are in the index by now. */
        int from = config_agency_parse(ev->source->agency);
        uint64_t rseq;
        uint8_t digest[STORE_DIGEST_BYTES];
        Handover__Event *req = NULL;
        if (from >= 0 && ev->in_reply_to &&
            (e = store_event_find(c->txn, ev->in_reply_to, &rseq, digest,
                                  err)) == HOV_OK &&
            (e = stored_read(c->txn, rseq, &req, err)) == HOV_OK)
            e = overdue_on_outcome(c->txn, req, rseq, (config_agency)from,
                                   ev->outcome ? ev->outcome->status : NULL,
                                   err);
        handover__event__free_unpacked(req, NULL);
        if (e == HOV_ENOTFOUND)
            e = HOV_OK; /* the hub never accepts such an outcome */
    }
    handover__event__free_unpacked(ev, NULL);
    return e;
}

hov_err
overdue_build(store *st, uint64_t *requests, hov_error *err)
{
    *requests = 0;
    store_txn *txn;
    hov_err e = store_begin(st, false, &txn, err);
    if (e != HOV_OK)
        return e;
    const uint8_t *v;
    size_t vl;
    e = store_meta_get(txn, BUILT_KEY, &v, &vl, err);
    if (e == HOV_OK) {
        store_abort(txn);
        return HOV_OK;
    }
    if (e != HOV_ENOTFOUND) {
        store_abort(txn);
        return e;
    }
    build_ctx c = {.txn = txn};
    e = store_event_scan(txn, 1, build_one, &c, err);
    if (e == HOV_OK)
        e = store_meta_put(txn, BUILT_KEY, (const uint8_t *)"1", 1, err);
    if (e != HOV_OK) {
        store_abort(txn);
        return e;
    }
    *requests = c.requests;
    return store_commit(txn, err);
}
