#include "replay.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "access.h"
#include "handover/ident.h"
#include "handover/str.h"

typedef struct pick {
    const char *dest;
    char (*ids)[40];
    size_t n, cap;
} pick;

/* The events of the range that dest took (delivered). */
static hov_err
pick_delivered(void *arg, store_txn *txn, uint64_t seq,
               const Handover__Event *ev, hov_error *err)
{
    pick *p = arg;
    Handover__Store__Delivery *d = NULL;
    hov_err e = store_delivery_get(txn, seq, p->dest, &d, err);
    if (e == HOV_ENOTFOUND)
        return HOV_OK;
    if (e != HOV_OK)
        return e;
    bool took = d->state == HANDOVER__STORE__DELIVERY__STATE__DELIVERED;
    handover__store__delivery__free_unpacked(d, NULL);
    if (!took)
        return HOV_OK;
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 64;
        char(*ids)[40] = realloc(p->ids, cap * sizeof *ids);
        if (ids == NULL)
            return hov_fail(err, HOV_ENOMEM, 0, "out of memory");
        p->ids = ids;
        p->cap = cap;
    }
    hov_strlcpy(p->ids[p->n++], 40, ev->event_id);
    return HOV_OK;
}

static void
say(bool json, const char *id, const char *dest, bool done, const char *text)
{
    if (!json) {
        printf("%s %s to %s: %s\n", done ? "replayed" : "NOT replayed", id,
               dest, text);
        return;
    }
    access_emit(json_pack("{s:s, s:s, s:b, s:s}", "event_id", id, "destination",
                          dest, "replayed", done, done ? "answer" : "reason",
                          text));
}

int
replay_run(const char *dir, const char *operator, const char * event_id,
           const char *from, const char *to, const char *dest, bool json)
{
    if ((event_id != NULL) == (from != NULL || to != NULL) ||
        (event_id == NULL && (from == NULL || to == NULL)) || dest == NULL) {
        fprintf(stderr, "handover-audit: replay wants EVENT_ID or --from "
                        "YYYY-MM-DD --to YYYY-MM-DD, and --dest ORG_CODE\n");
        return EXIT_USAGE;
    }
    if (!access_word_valid(dest, 47) ||
        (event_id && !hov_uuid_valid(event_id))) {
        fprintf(stderr, "handover-audit: replay: --dest is an organisation "
                        "code and EVENT_ID a UUID\n");
        return EXIT_USAGE;
    }
    uint64_t from_ms = 0, to_ms = 0;
    if (event_id == NULL && !access_day_range(from, to, &from_ms, &to_ms)) {
        fprintf(stderr, "handover-audit: replay wants --from YYYY-MM-DD and "
                        "--to YYYY-MM-DD (days in Europe/London, both "
                        "included)\n");
        return EXIT_USAGE;
    }
    char why[700];
    int running = access_hub_running(dir, why, sizeof why);
    if (running <= 0) {
        fprintf(stderr,
                "handover-audit: replay needs the hub running on %s (it puts "
                "each event back on the destination's queue and delivers "
                "it)%s%s\n",
                dir, running < 0 ? ": " : "", running < 0 ? why : "");
        return EXIT_STORE;
    }
    pick p = {dest, NULL, 0, 0};
    if (event_id != NULL) {
        if ((p.ids = malloc(sizeof *p.ids)) == NULL)
            return EXIT_STORE;
        hov_strlcpy(p.ids[0], 40, event_id);
        p.n = 1;
    } else {
        store *st;
        if (access_open_store(dir, &st) != 0)
            return EXIT_STORE;
        hov_error err = {0};
        hov_err e = access_events_in_range(st, from_ms, to_ms, pick_delivered,
                                           &p, &err);
        store_free(st);
        if (e != HOV_OK) {
            fprintf(stderr, "handover-audit: cannot read the store: %s\n",
                    err.msg);
            free(p.ids);
            return EXIT_STORE;
        }
        if (p.n == 0) {
            fprintf(stderr,
                    "handover-audit: nothing to replay: no event received "
                    "%s..%s was delivered to %s\n",
                    from, to, dest);
            free(p.ids);
            return EXIT_FOUND_BAD;
        }
    }
    size_t done = 0;
    int rc = EXIT_DONE;
    for (size_t i = 0; i < p.n; i++) {
        char line[256], answer[2048];
        snprintf(line, sizeof line, "replay %s %s --operator %s\n", p.ids[i],
                 dest, operator);
        int r = access_hub_request(dir, line, answer, sizeof answer, why,
                                   sizeof why);
        if (r < 0) {
            fprintf(stderr, "handover-audit: replay stopped at event %s: %s\n",
                    p.ids[i], why);
            rc = EXIT_STORE;
            break;
        }
        size_t l = strlen(answer);
        while (l > 0 && answer[l - 1] == '\n')
            answer[--l] = '\0';
        say(json, p.ids[i], dest, r == 0, answer);
        if (r == 0)
            done++;
        else
            rc = EXIT_FOUND_BAD;
    }
    fprintf(stderr,
            "handover-audit: replayed %zu of %zu event%s to %s as operator "
            "%s; each is in the audit log, and the partner keeps one copy "
            "by the event id\n",
            done, p.n, p.n == 1 ? "" : "s", dest, operator);
    free(p.ids);
    return rc;
}
