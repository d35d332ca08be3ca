#include "whatif.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "access.h"
#include "config.h"
#include "handover/str.h"
#include "route.h"

#define SET_MAX 32 /* destinations of one event, either way */

typedef struct dest_set {
    char code[SET_MAX][CONFIG_CODE_MAX];
    size_t n;
} dest_set;

/* One event that would have gone differently. */
typedef struct change {
    char id[40], type[24], service[40], from[CONFIG_CODE_MAX], received[32];
    dest_set was, would;
    char refused[300]; /* non-empty: the new rules would refuse it */
} change;

typedef struct whatif {
    const config *cfg;
    change *v;
    size_t n, cap, total;
} whatif;

static void
set_add(dest_set *s, const char *code)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->code[i], code) == 0)
            return;
    if (s->n < SET_MAX)
        hov_strlcpy(s->code[s->n++], CONFIG_CODE_MAX, code);
}

static bool
set_has(const dest_set *s, const char *code)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->code[i], code) == 0)
            return true;
    return false;
}

static bool
set_equal(const dest_set *a, const dest_set *b)
{
    if (a->n != b->n)
        return false;
    for (size_t i = 0; i < a->n; i++)
        if (!set_has(b, a->code[i]))
            return false;
    return true;
}

static hov_err
add_was(void *arg, const char *dest, const Handover__Store__Delivery *d,
        hov_error *err)
{
    (void)d;
    (void)err;
    set_add(arg, dest);
    return HOV_OK;
}

/* For an outcome: the answered event's source and type, which decide
 * where it goes back to. Copied into the caller's buffers. */
static hov_err
answered(store_txn *txn, const char *id, char org[CONFIG_CODE_MAX],
         char type[24], hov_error *err)
{
    uint64_t seq;
    uint8_t dg[STORE_DIGEST_BYTES];
    Handover__Event *ev = NULL;
    hov_err e = store_event_find(txn, id, &seq, dg, err);
    if (e == HOV_OK)
        e = access_event_load(txn, seq, &ev, err);
    if (e == HOV_ENOTFOUND)
        return HOV_OK;
    if (e != HOV_OK)
        return e;
    if (ev->source && ev->source->org)
        hov_strlcpy(org, CONFIG_CODE_MAX, ev->source->org->code);
    hov_strlcpy(type, 24, ev->event_type);
    handover__event__free_unpacked(ev, NULL);
    return HOV_OK;
}

static hov_err
route_again(void *arg, store_txn *txn, uint64_t seq, const Handover__Event *ev,
            hov_error *err)
{
    whatif *w = arg;
    w->total++;
    change c;
    memset(&c, 0, sizeof c);
    hov_err e = store_delivery_scan(txn, seq, add_was, &c.was, err);
    if (e != HOV_OK)
        return e;
    char reply_org[CONFIG_CODE_MAX] = "", reply_type[24] = "";
    if (ev->in_reply_to && ev->in_reply_to[0] &&
        (e = answered(txn, ev->in_reply_to, reply_org, reply_type, err)) !=
            HOV_OK)
        return e;
    route_reply reply = {reply_org, reply_type};
    route_result *r = calloc(1, sizeof *r);
    if (r == NULL)
        return hov_fail(err, HOV_ENOMEM, 0, "out of memory");
    hov_error why = {0};
    if (route_match(w->cfg, ev, &reply, r, &why) == HOV_OK) {
        for (size_t i = 0; i < r->n; i++)
            set_add(&c.would, r->dest[i].code);
    } else {
        hov_strlcpy(c.refused, sizeof c.refused, why.msg);
    }
    free(r);
    if (c.refused[0] == '\0' && set_equal(&c.was, &c.would))
        return HOV_OK;
    hov_strlcpy(c.id, sizeof c.id, ev->event_id);
    hov_strlcpy(c.type, sizeof c.type, ev->event_type);
    hov_strlcpy(c.received, sizeof c.received, ev->received_at);
    if (ev->body_case == HANDOVER__EVENT__BODY_REFERRAL && ev->referral)
        hov_strlcpy(c.service, sizeof c.service, ev->referral->service);
    if (ev->source && ev->source->org)
        hov_strlcpy(c.from, sizeof c.from, ev->source->org->code);
    if (w->n == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 16;
        change *v = realloc(w->v, cap * sizeof *v);
        if (v == NULL)
            return hov_fail(err, HOV_ENOMEM, 0, "out of memory");
        w->v = v;
        w->cap = cap;
    }
    w->v[w->n++] = c;
    return HOV_OK;
}

static void
print_set(const char *label, const dest_set *s, const dest_set *other,
          char sign)
{
    printf("      %-13s", label);
    if (s->n == 0)
        printf(" nobody");
    for (size_t i = 0; i < s->n; i++)
        printf(" %s", s->code[i]);
    bool first = true;
    for (size_t i = 0; i < s->n; i++) {
        if (set_has(other, s->code[i]))
            continue;
        printf("%s%c%s", first ? "   (" : " ", sign, s->code[i]);
        first = false;
    }
    printf("%s\n", first ? "" : ")");
}

static json_t *
set_json(const dest_set *s)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < s->n; i++)
        json_array_append_new(a, json_string(s->code[i]));
    return a;
}

static bool
print_json(const change *c)
{
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:o}", "event_id", c->id,
                          "event_type", c->type, "received_at", c->received,
                          "from", c->from, "sent_to", set_json(&c->was));
    if (o == NULL)
        return false;
    if (c->service[0])
        json_object_set_new(o, "service", json_string(c->service));
    if (c->refused[0])
        json_object_set_new(o, "would_be_refused", json_string(c->refused));
    else
        json_object_set_new(o, "would_go_to", set_json(&c->would));
    return access_emit(o);
}

int
whatif_run(const char *dir, const char *auditor, const char *routes_path,
           const char *from, const char *to, bool json)
{
    uint64_t from_ms, to_ms;
    if (routes_path == NULL || !access_day_range(from, to, &from_ms, &to_ms)) {
        fprintf(stderr, "handover-audit: what-if wants --routes FILE, --from "
                        "YYYY-MM-DD and --to YYYY-MM-DD (days in "
                        "Europe/London, both included)\n");
        return EXIT_USAGE;
    }
    config cfg;
    memset(&cfg, 0, sizeof cfg);
    hov_error err = {0};
    if (config_load(&cfg, routes_path, &err) != HOV_OK) {
        fprintf(stderr, "handover-audit: what-if: %s\n", err.msg);
        config_fini(&cfg);
        return EXIT_USAGE;
    }
    store *st;
    if (access_open_store(dir, &st) != 0) {
        config_fini(&cfg);
        return EXIT_STORE;
    }
    whatif w = {&cfg, NULL, 0, 0, 0};
    hov_err e =
        access_events_in_range(st, from_ms, to_ms, route_again, &w, &err);
    store_free(st); /* closed before the read is recorded */
    config_fini(&cfg);
    int rc = EXIT_DONE;
    char subject[32];
    snprintf(subject, sizeof subject, "%s..%s", from, to);
    if (e != HOV_OK) {
        fprintf(stderr, "handover-audit: cannot read the store: %s\n", err.msg);
        rc = EXIT_STORE;
    } else if (access_record_read(dir, auditor, "what-if", subject, "", "") !=
               0) {
        rc = EXIT_STORE;
    }
    if (rc == EXIT_DONE && !json)
        printf("what-if %s with %s: %zu event%s received, %zu would go "
               "differently\n",
               subject, routes_path, w.total, w.total == 1 ? "" : "s", w.n);
    for (size_t i = 0; rc == EXIT_DONE && i < w.n; i++) {
        const change *c = &w.v[i];
        if (json) {
            if (!print_json(c))
                rc = EXIT_STORE;
            continue;
        }
        printf("  %s %s %s%s%s from %s\n", c->received, c->type, c->id,
               c->service[0] ? " service " : "", c->service, c->from);
        print_set("sent to:", &c->was, &c->would, '-');
        if (c->refused[0])
            printf("      would be refused: %s\n", c->refused);
        else
            print_set("would go to:", &c->would, &c->was, '+');
    }
    if (rc == EXIT_DONE && w.n > 0)
        rc = EXIT_FOUND_BAD;
    free(w.v);
    return rc;
}
