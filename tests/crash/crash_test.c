/* Crash test (style R21): a publisher streams events and a consumer settles
 * them while the real hub is killed with SIGKILL at random moments and
 * restarted on the same LMDB folder. At the end every event that got an Ack
 * has been delivered, and no event id was ever delivered with two different
 * contents. The schedule is seeded and printed, so a failure can be
 * replayed with HANDOVER_CRASH_SEED. */
#include <criterion/criterion.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handover/map.h"
#include "handover/timeutil.h"
#include "harness.h"
#include "store.h"

#define N_EVENTS 4000
#define WINDOW   200
#define KILLS    6

typedef struct seen {
    bool acked;
    int delivered;
    uint8_t digest[32];
} seen;

typedef struct run {
    hov_map *ids; /* event id -> seen */
    hov_sample *samples;
    int acked, naks, deliveries, redeliveries;
} run;

static seen *
lookup(run *r, const char *id)
{
    seen *s = hov_map_get(r->ids, id, strlen(id));
    if (s == NULL) {
        s = calloc(1, sizeof *s);
        hov_error err = {0};
        cr_assert(hov_map_put(r->ids, id, strlen(id), s, &err) == HOV_OK);
    }
    return s;
}

static void
drain(run *r, hov_client *pub, hov_client *cons)
{
    hov_msg m;
    hov_error err = {0};
    for (;;) {
        cr_assert(hov_client_next(pub, 0, &m, &err) == HOV_OK, "%s", err.msg);
        if (m.kind == HOV_MSG_NONE)
            break;
        if (m.kind == HOV_MSG_ACK) {
            seen *s = lookup(r, m.event_id);
            if (!s->acked)
                r->acked++;
            s->acked = true;
        } else if (m.kind == HOV_MSG_NAK) {
            r->naks++;
            cr_log_error("nak %s: %s", hov_errname(m.code), m.reason);
        }
    }
    for (;;) {
        cr_assert(hov_client_next(cons, 0, &m, &err) == HOV_OK, "%s", err.msg);
        if (m.kind == HOV_MSG_NONE)
            break;
        if (m.kind != HOV_MSG_DELIVER)
            continue;
        uint8_t d[32];
        crypto_hash_sha256(d, m.event, m.event_len);
        seen *s = lookup(r, m.event_id);
        if (s->delivered == 0) {
            memcpy(s->digest, d, 32);
        } else {
            r->redeliveries++;
            cr_assert(memcmp(s->digest, d, 32) == 0,
                      "event %s was delivered as two different events",
                      m.event_id);
        }
        s->delivered++;
        r->deliveries++;
        /* A settle lost in a crash is redelivered: the partner dedupes. */
        if (hov_client_settle(cons, m.delivery_id, HOV_SETTLE_DONE, NULL,
                              &err) != HOV_OK)
            err.code = HOV_OK;
    }
}

static void
crash_round(unsigned seed)
{
    th_hub hub;
    /* A small ids_merge_at: a merge of the ids index is under way (a step
     * in every group commit) when most of the kills land. */
    static const char *args[] = {"--set", "heartbeat_ms=200", "--set",
                                 "ids_merge_at=256", NULL};
    th_hub_init(&hub, args);
    th_hub_start(&hub);
    srand(seed);
    cr_log_info("crash round seed=%u (HANDOVER_CRASH_SEED to replay)", seed);

    run r = {0};
    hov_error err = {0};
    cr_assert(hov_map_new(&r.ids, &err) == HOV_OK);
    static const char *patients[] = {"9992468130", "9994127357", "9993001007",
                                     "9995050501", "9996118428", "9997345207",
                                     "9998765439", "9992024682"};
    hov_client_opts po = {
        .agency = "gp", .name = "crash-pub", .resend_ms = 2000};
    hov_client_opts co = {.agency = "nursing",
                          .name = "crash-cons",
                          .consume = true,
                          .credit = 64};
    hov_client *pub, *cons;
    cr_assert(hov_client_new(&pub, &po, &err) == HOV_OK);
    cr_assert(hov_client_new(&cons, &co, &err) == HOV_OK);
    cr_assert(hov_client_connect(pub, hub.endpoint, &err) == HOV_OK);
    cr_assert(hov_client_connect(cons, hub.endpoint, &err) == HOV_OK);

    int kill_at[KILLS];
    for (int k = 0; k < KILLS; k++)
        kill_at[k] = (N_EVENTS / (KILLS + 1)) * (k + 1) + rand() % 300 - 150;
    int kills = 0, published = 0;
    hov_sample s;
    uint64_t deadline = hov_mono_ms() + (uint64_t)th_ms(120000);
    while (published < N_EVENTS || hov_client_pending(pub) > 0) {
        cr_assert(hov_mono_ms() < deadline,
                  "stuck: published %d, pending %zu, acked %d", published,
                  hov_client_pending(pub), r.acked);
        while (published < N_EVENTS && hov_client_pending(pub) < WINDOW) {
            hov_sample_init(&s, "referral", patients[published % 8]);
            size_t len;
            uint8_t *buf = hov_sample_pack(&s, &len);
            cr_assert(hov_client_publish(pub, buf, len, NULL, NULL, &err) ==
                      HOV_OK);
            free(buf);
            lookup(&r, s.event_id);
            published++;
            if (kills < KILLS && published >= kill_at[kills]) {
                /* Let a random amount of the stream reach the hub, then
                 * pull the plug mid-batch. */
                uint64_t until = hov_mono_ms() + (uint64_t)(rand() % 40);
                while (hov_mono_ms() < until)
                    drain(&r, pub, cons);
                th_hub_kill(&hub, SIGKILL);
                kills++;
                th_hub_start(&hub);
            }
        }
        drain(&r, pub, cons);
        hov_msg m;
        cr_assert(hov_client_next(pub, 5, &m, &err) == HOV_OK);
        if (m.kind == HOV_MSG_ACK) {
            seen *x = lookup(&r, m.event_id);
            if (!x->acked)
                r.acked++;
            x->acked = true;
        } else if (m.kind == HOV_MSG_NAK) {
            r.naks++;
        }
    }
    cr_assert_eq(kills, KILLS);
    cr_assert_eq(r.naks, 0, "no event may be refused in a crash test");
    cr_assert_eq(r.acked, N_EVENTS, "every publish is eventually Acked");

    /* Every Acked event reaches the consumer. */
    deadline = hov_mono_ms() + (uint64_t)th_ms(60000);
    for (;;) {
        int missing = 0;
        size_t pos = 0;
        void *v;
        while (hov_map_next(r.ids, &pos, NULL, NULL, &v)) {
            seen *x = v;
            if (x->acked && x->delivered == 0)
                missing++;
        }
        if (missing == 0)
            break;
        cr_assert(hov_mono_ms() < deadline,
                  "%d Acked events were never delivered", missing);
        drain(&r, pub, cons);
        hov_msg m;
        cr_assert(hov_client_next(cons, 10, &m, &err) == HOV_OK);
        if (m.kind == HOV_MSG_DELIVER) {
            seen *x = lookup(&r, m.event_id);
            uint8_t d[32];
            crypto_hash_sha256(d, m.event, m.event_len);
            if (x->delivered)
                cr_assert(memcmp(x->digest, d, 32) == 0,
                          "event %s delivered as two different events",
                          m.event_id);
            memcpy(x->digest, d, 32);
            x->delivered++;
            cr_assert(hov_client_settle(cons, m.delivery_id, HOV_SETTLE_DONE,
                                        NULL, &err) == HOV_OK);
        }
    }
    cr_log_info("seed=%u kills=%d acked=%d deliveries=%d redeliveries=%d", seed,
                kills, r.acked, r.deliveries, r.redeliveries);
    hov_client_free(pub);
    hov_client_free(cons);
    th_hub_stop(&hub);

    /* Stored once each: a resend of an event whose Ack a kill cut off was
     * known as a duplicate, wherever its id was (recent log, half-merged
     * index, or merged). */
    store *st;
    cr_assert(store_new(&st, &err) == HOV_OK);
    char data[300];
    snprintf(data, sizeof data, "%s/data", hub.dir);
    cr_assert(store_open_rdonly(st, data, &err) == HOV_OK, "%s", err.msg);
    cr_assert_eq(store_event_next_seq(st) - 1, N_EVENTS,
                 "%llu events stored for %d sent",
                 (unsigned long long)(store_event_next_seq(st) - 1), N_EVENTS);
    store_free(st);
    size_t pos = 0;
    void *v;
    while (hov_map_next(r.ids, &pos, NULL, NULL, &v))
        free(v);
    hov_map_free(r.ids);
    th_hub_fini(&hub);
}

static unsigned
seed_for(unsigned round)
{
    const char *s = getenv("HANDOVER_CRASH_SEED");
    if (s)
        return (unsigned)strtoul(s, NULL, 10) + round;
    return (unsigned)hov_now_ms() + round * 7919u;
}

Test(crash, kill9_mid_stream_loses_nothing, .timeout = 400)
{
    for (unsigned round = 0; round < 3; round++)
        crash_round(seed_for(round));
}
