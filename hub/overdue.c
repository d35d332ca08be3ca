#include "overdue.h"

#include <stdlib.h>
#include <string.h>

#include "handover/log.h"
#include "handover/map.h"
#include "handover/str.h"
#include "handover/timeutil.h"

#define MINUTE_MS ((uint64_t)60 * 1000)
#define HOUR_MS   (60 * MINUTE_MS)
#define DAY_MS    (24 * HOUR_MS)

/* An early answer's bits: bit a, agency a answered; bit 4 + a, it sent a
 * status other than accepted. EARLY_SET keeps the map value non-NULL. */
#define EARLY_SET 0x100u

enum { OD_AWAIT, OD_ANSWERED, OD_DEAD };

typedef struct od_recv {
    char dest[CONFIG_CODE_MAX];
    config_agency agency;
    int state;
    uint64_t due_ms;
} od_recv;

typedef struct od_req {
    char event_id[40];
    char type[16];     /* "equipment_order" fits */
    char priority[16]; /* "two_hour_crisis" fits */
    bool equipment;
    size_t n;
    od_recv r[];
} od_req;

struct overdue {
    hov_map *reqs;  /* event id -> od_req, owned */
    hov_map *early; /* event id -> answer bits, while loading */
    uint64_t load_next, load_end;
    bool loaded;
};

hov_err
overdue_new(overdue **out, uint64_t load_end, hov_error *err)
{
    overdue *o = calloc(1, sizeof *o);
    if (o == NULL)
        return hov_fail(err, HOV_ENOMEM, 0, "allocate the overdue tracker");
    hov_err e = hov_map_new(&o->reqs, err);
    if (e == HOV_OK)
        e = hov_map_new(&o->early, err);
    if (e != HOV_OK) {
        overdue_free(o);
        return e;
    }
    o->load_next = 1;
    o->load_end = load_end;
    o->loaded = load_end <= 1;
    *out = o;
    return HOV_OK;
}

void
overdue_free(overdue *o)
{
    if (o == NULL)
        return;
    if (o->reqs) {
        size_t pos = 0;
        void *v;
        while (hov_map_next(o->reqs, &pos, NULL, NULL, &v))
            free(v);
        hov_map_free(o->reqs);
    }
    hov_map_free(o->early);
    free(o);
}

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

/* Mark agency's receivers of req answered. Once every receiver has
 * answered, removes req from the map, frees it and returns true. */
static bool
req_answer(overdue *o, od_req *req, unsigned agency, bool past_accepted)
{
    if (req->equipment && !past_accepted)
        return false; /* accepted alone does not answer required_by */
    bool open = false;
    for (size_t i = 0; i < req->n; i++) {
        if (req->r[i].agency == (config_agency)agency &&
            req->r[i].state == OD_AWAIT)
            req->r[i].state = OD_ANSWERED;
        if (req->r[i].state != OD_ANSWERED)
            open = true;
    }
    if (open)
        return false;
    hov_map_del(o->reqs, req->event_id, strlen(req->event_id));
    free(req);
    return true;
}

static void
apply_early(overdue *o, od_req *req)
{
    size_t kl = strlen(req->event_id);
    uintptr_t bits = (uintptr_t)hov_map_del(o->early, req->event_id, kl);
    if (bits == 0)
        return;
    for (unsigned a = 0; a < AGENCY_COUNT; a++) {
        if ((bits & (1u << a)) &&
            req_answer(o, req, a, (bits & (1u << (4 + a))) != 0))
            return; /* fully answered and freed */
    }
}

static void
answer(overdue *o, const char *event_id, config_agency from, const char *status)
{
    if (event_id == NULL || event_id[0] == '\0')
        return;
    bool past = status == NULL || strcmp(status, "accepted") != 0;
    size_t kl = strlen(event_id);
    od_req *req = hov_map_get(o->reqs, event_id, kl);
    if (req != NULL) {
        (void)req_answer(o, req, from, past);
        return;
    }
    if (o->loaded)
        return; /* answered already, or never waited for */
    /* The catch-up has not reached the request yet: keep the answer. */
    uintptr_t bits = (uintptr_t)hov_map_get(o->early, event_id, kl);
    bits |= EARLY_SET | (1u << from) | (past ? 1u << (4 + from) : 0);
    hov_error err = {0};
    if (hov_map_put(o->early, event_id, kl, (void *)bits, &err) != HOV_OK)
        hov_warn("overdue tracking: %s; the outcome for event %s may be "
                 "missed until the next start",
                 err.msg, event_id);
}

/* A new entry with room for n receivers, or NULL. */
static od_req *
req_new(const Handover__Event *ev, size_t n)
{
    od_req *req = calloc(1, sizeof *req + n * sizeof(od_recv));
    if (req == NULL)
        return NULL;
    hov_strlcpy(req->event_id, sizeof req->event_id, ev->event_id);
    hov_strlcpy(req->type, sizeof req->type,
                ev->event_type ? ev->event_type : "");
    hov_strlcpy(req->priority, sizeof req->priority,
                ev->priority ? ev->priority : "");
    req->equipment = ev->body_case == HANDOVER__EVENT__BODY_EQUIPMENT_ORDER;
    return req;
}

static void
req_add_recv(od_req *req, const Handover__Event *ev, const char *dest,
             config_agency agency, bool dead)
{
    uint64_t due;
    if (!overdue_due_ms(ev, agency, &due))
        return; /* validated requests always have their times */
    od_recv *r = &req->r[req->n++];
    hov_strlcpy(r->dest, sizeof r->dest, dest);
    r->agency = agency;
    r->state = dead ? OD_DEAD : OD_AWAIT;
    r->due_ms = due;
}

/* Take req into the map (or free it when it waits for nobody). */
static void
req_keep(overdue *o, od_req *req)
{
    if (req->n == 0) {
        free(req);
        return;
    }
    hov_error err = {0};
    if (hov_map_put(o->reqs, req->event_id, strlen(req->event_id), req, &err) !=
        HOV_OK) {
        hov_warn("overdue tracking: %s; event %s is not tracked", err.msg,
                 req->event_id);
        free(req);
        return;
    }
    if (!o->loaded)
        apply_early(o, req);
}

void
overdue_on_publish(overdue *o, const Handover__Event *ev, config_agency from,
                   const route_result *routes)
{
    if (o == NULL || ev == NULL || ev->event_id == NULL)
        return;
    if (ev->body_case == HANDOVER__EVENT__BODY_OUTCOME) {
        answer(o, ev->in_reply_to, from,
               ev->outcome ? ev->outcome->status : NULL);
        return;
    }
    if (!is_request(ev) ||
        hov_map_get(o->reqs, ev->event_id, strlen(ev->event_id)) != NULL)
        return;
    od_req *req = req_new(ev, routes->n);
    if (req == NULL) {
        hov_warn("overdue tracking: out of memory; event %s is not tracked",
                 ev->event_id);
        return;
    }
    for (size_t i = 0; i < routes->n; i++)
        req_add_recv(req, ev, routes->dest[i].code, routes->dest[i].agency,
                     routes->dest[i].dead);
    req_keep(o, req);
}

void
overdue_on_dead(overdue *o, const char *event_id, const char *dest, bool dead)
{
    if (o == NULL || event_id == NULL)
        return;
    od_req *req = hov_map_get(o->reqs, event_id, strlen(event_id));
    if (req == NULL)
        return; /* not tracked, or not loaded yet: the store says */
    for (size_t i = 0; i < req->n; i++) {
        od_recv *r = &req->r[i];
        if (strcmp(r->dest, dest) != 0)
            continue;
        if (dead && r->state == OD_AWAIT)
            r->state = OD_DEAD;
        else if (!dead && r->state == OD_DEAD)
            r->state = OD_AWAIT;
    }
}

/* ------------------------------------------------------------- catch-up */

typedef struct load_ctx {
    overdue *o;
    store_txn *txn;
    uint64_t deadline_us;
    size_t n;
} load_ctx;

typedef struct recv_ctx {
    const Handover__Event *ev;
    od_req *req;
    size_t cap;
} recv_ctx;

static hov_err
load_recv(void *arg, const char *dest, const Handover__Store__Delivery *d,
          hov_error *err)
{
    recv_ctx *c = arg;
    (void)err;
    int agency = config_agency_parse(d->agency ? d->agency : "");
    if (agency < 0 || c->req->n == c->cap)
        return HOV_OK;
    bool dead = d->state == HANDOVER__STORE__DELIVERY__STATE__DEAD ||
                d->state == HANDOVER__STORE__DELIVERY__STATE__REJECTED;
    req_add_recv(c->req, c->ev, dest, (config_agency)agency, dead);
    return HOV_OK;
}

static hov_err
load_request(overdue *o, store_txn *txn, uint64_t seq,
             const Handover__Event *ev, hov_error *err)
{
    od_req *req = req_new(ev, ROUTE_MAX_DESTS);
    if (req == NULL)
        return hov_fail(err, HOV_ENOMEM, 0, "track event %s", ev->event_id);
    recv_ctx rc = {ev, req, ROUTE_MAX_DESTS};
    hov_err e = store_delivery_scan(txn, seq, load_recv, &rc, err);
    if (e != HOV_OK) {
        free(req);
        return e;
    }
    if (req->n > 0 && req->n < ROUTE_MAX_DESTS) {
        /* Most requests have one to three receivers: give the rest back,
         * since a store's worth of waiting requests may be held. */
        od_req *small = realloc(req, sizeof *req + req->n * sizeof(od_recv));
        if (small != NULL)
            req = small;
    }
    req_keep(o, req);
    return HOV_OK;
}

/* HOV_ETIMEDOUT: the time slice is spent (seq not read); HOV_ENOTFOUND:
 * past the end of the catch-up. Neither touches err. */
static hov_err
load_one(void *arg, uint64_t seq, const uint8_t *data, size_t len,
         hov_error *err)
{
    load_ctx *c = arg;
    overdue *o = c->o;
    if (seq >= o->load_end)
        return HOV_ENOTFOUND;
    if ((++c->n & 31) == 0 && hov_mono_us() > c->deadline_us)
        return HOV_ETIMEDOUT;
    Handover__Event *ev = handover__event__unpack(NULL, len, data);
    hov_err e = HOV_OK;
    if (ev == NULL) {
        hov_warn("overdue tracking: stored event %llu cannot be decoded; "
                 "skipped",
                 (unsigned long long)seq);
    } else if (ev->body_case == HANDOVER__EVENT__BODY_OUTCOME) {
        int from = config_agency_parse(
            ev->source && ev->source->agency ? ev->source->agency : "");
        if (from >= 0)
            answer(o, ev->in_reply_to, (config_agency)from,
                   ev->outcome ? ev->outcome->status : NULL);
    } else if (is_request(ev) && ev->event_id != NULL &&
               hov_map_get(o->reqs, ev->event_id, strlen(ev->event_id)) ==
                   NULL) {
        e = load_request(o, c->txn, seq, ev, err);
    }
    if (ev != NULL)
        handover__event__free_unpacked(ev, NULL);
    if (e == HOV_OK)
        o->load_next = seq + 1;
    return e;
}

static void
load_done(overdue *o)
{
    o->loaded = true;
    o->load_next = o->load_end;
    /* Answers to requests the store does not hold as waiting. */
    hov_map_free(o->early);
    o->early = NULL;
}

hov_err
overdue_load_step(overdue *o, store *st, uint64_t budget_us, hov_error *err)
{
    if (o->loaded)
        return HOV_OK;
    store_txn *txn;
    hov_err e = store_begin(st, true, &txn, err);
    if (e != HOV_OK)
        return e;
    load_ctx c = {o, txn, hov_mono_us() + budget_us, 0};
    e = store_event_scan(txn, o->load_next, load_one, &c, err);
    store_abort(txn);
    if (e == HOV_ETIMEDOUT)
        return HOV_OK;
    if (e == HOV_OK || e == HOV_ENOTFOUND) {
        load_done(o);
        return HOV_OK;
    }
    return e;
}

bool
overdue_loading(const overdue *o, uint64_t *done, uint64_t *total)
{
    if (done)
        *done = o->load_next > 0 ? o->load_next - 1 : 0;
    if (total)
        *total = o->load_end > 0 ? o->load_end - 1 : 0;
    return !o->loaded;
}

/* ------------------------------------------------------------- queries */

size_t
overdue_tracked(const overdue *o)
{
    return hov_map_count(o->reqs);
}

size_t
overdue_count(const overdue *o, uint64_t now_ms, uint64_t *oldest_due)
{
    size_t n = 0;
    uint64_t oldest = 0;
    size_t pos = 0;
    void *v;
    while (hov_map_next(o->reqs, &pos, NULL, NULL, &v)) {
        const od_req *req = v;
        for (size_t i = 0; i < req->n; i++) {
            const od_recv *r = &req->r[i];
            if (r->state != OD_AWAIT || r->due_ms >= now_ms)
                continue;
            n++;
            if (oldest == 0 || r->due_ms < oldest)
                oldest = r->due_ms;
        }
    }
    if (oldest_due)
        *oldest_due = oldest;
    return n;
}

static int
item_cmp(const void *a, const void *b)
{
    const overdue_item *x = a, *y = b;
    if (x->due_ms != y->due_ms)
        return x->due_ms < y->due_ms ? -1 : 1;
    int c = strcmp(x->event_id, y->event_id);
    return c ? c : strcmp(x->dest, y->dest);
}

hov_err
overdue_list(const overdue *o, uint64_t now_ms, overdue_item *out, size_t max,
             size_t *n, size_t *total, hov_error *err)
{
    size_t all = overdue_count(o, now_ms, NULL);
    *n = 0;
    *total = all;
    if (all == 0 || max == 0)
        return HOV_OK;
    overdue_item *v = malloc(all * sizeof *v);
    if (v == NULL)
        return hov_fail(err, HOV_ENOMEM, 0, "list %zu overdue outcomes", all);
    size_t k = 0;
    size_t pos = 0;
    void *val;
    while (hov_map_next(o->reqs, &pos, NULL, NULL, &val) && k < all) {
        const od_req *req = val;
        for (size_t i = 0; i < req->n && k < all; i++) {
            const od_recv *r = &req->r[i];
            if (r->state != OD_AWAIT || r->due_ms >= now_ms)
                continue;
            v[k].event_id = req->event_id;
            v[k].event_type = req->type;
            v[k].priority = req->priority;
            v[k].dest = r->dest;
            v[k].agency = r->agency;
            v[k].due_ms = r->due_ms;
            k++;
        }
    }
    qsort(v, k, sizeof *v, item_cmp);
    *n = k < max ? k : max;
    memcpy(out, v, *n * sizeof *v);
    free(v);
    return HOV_OK;
}
