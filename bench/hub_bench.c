/* hub-bench: Handover's throughput and latency benchmark, in the shape of
 * the peer benchmarks (shared/peers/rabbit_bench.c, nats_bench.c).
 *
 * One publisher client (agency gp, source Z99001) publishes N referral
 * events of about SIZE bytes for district nursing, keeping at most WINDOW
 * unconfirmed; the hub routes each to RZZ40, agency nursing's queue. One
 * consumer client (agency nursing, credit WINDOW) in a second thread settles
 * every delivery done. Each client belongs to its own thread.
 *
 * The events are built and packed before the clock starts: N distinct event
 * ids, spread round-robin over P patients (the cast's 999-range NHS numbers,
 * then generated valid ones), because the hub keeps each patient's
 * deliveries in order and a single patient would serialise delivery.
 *
 * Output: exactly one line on stdout,
 *   handover 0.1 durable+group-commit: N msgs x SIZE B: confirmed X msg/s,
 *   end-to-end Y msg/s, latency p50 A ms p99 B ms, ack p50 C ms p99 D ms
 * where "confirmed" is N over the time until the last Ack, "end-to-end" N
 * over the time until the consumer held all N, "latency" publish to
 * delivery and "ack" publish to Ack. Progress and errors go to stderr.
 * Exit status: 0 on success; 1 if the run failed or any publish was
 * refused (Nak) or not routed to nursing; 2 on a usage error.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "handover.pb-c.h"
#include "handover/client.h"
#include "handover/err.h"
#include "handover/log.h"
#include "handover/sample.h"
#include "handover/timeutil.h"

#define DEFAULT_ENDPOINT "tcp://127.0.0.1:7400"
#define DEFAULT_N        50000
#define DEFAULT_SIZE     1024
#define DEFAULT_WINDOW   1000
#define DEFAULT_PATIENTS 1000

/* Upper bounds for the options: generous, but they keep every product of
 * counts and sizes far from overflow and the index within a uint32_t. */
#define MAX_N        10000000UL
#define MAX_SIZE     (1024UL * 1024UL)
#define MAX_WINDOW   1000000UL
#define MAX_PATIENTS 500000UL

/* Where a sample referral from Z99001 for district-nursing must go. */
#define NURSING_ORG "RZZ40"

/* No Hello answered within this long: the hub is not there. */
#define CONNECT_TIMEOUT_MS 10000
/* No Ack, Nak or new delivery for this long while work is outstanding: the
 * hub has stalled. Longer than the client's 10 s resend, so one resend
 * round gets its chance first. */
#define STALL_TIMEOUT_MS 30000
/* How long a client waits in hov_client_next when it has nothing to do. */
#define WAIT_MS     100
#define PROGRESS_MS 1000

#define ID_LEN 36 /* a UUID's text, without the NUL */

/* ------------------------------------------------------------- clocks --- */

/* Monotonic nanoseconds: hov_mono_ms is too coarse for sub-millisecond
 * latencies. Both threads read the same clock. */
static uint64_t
now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* ------------------------------------------------------- NHS numbers --- */

/* The cast of shared/samples/README.md, then the further test numbers of
 * domain.md 4.1. All 999 range: never issued to a real patient. */
static const char *const fixed_nhs[] = {
    "9992468130", "9994127357", "9993001007", "9995050501", "9996118428",
    "9997345207", "9998765439", "9992024682", "9995319764", "9990000018",
    "9990000026", "9990000034", "9990000042", "9990000050", "9990000069",
};
#define N_FIXED_NHS (sizeof fixed_nhs / sizeof fixed_nhs[0])

/* Modulus 11 check digit of nine ASCII digits (domain.md 4.1): weights 10
 * down to 2; 11 - remainder, where 11 means 0 and 10 means that no number
 * begins with these nine digits. Returns the digit, or -1. */
static int
mod11_check_digit(const char nine[9])
{
    int sum = 0;
    for (int i = 0; i < 9; i++)
        sum += (nine[i] - '0') * (10 - i);
    int check = 11 - sum % 11;
    if (check == 11)
        return 0;
    if (check == 10)
        return -1;
    return check;
}

/* Ten digits, a matching check digit, and not ten identical digits (which
 * pass Modulus 11 but the hub refuses by convention). */
static bool
nhs_valid(const char *s)
{
    if (strlen(s) != 10)
        return false;
    for (int i = 0; i < 10; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    bool same = true;
    for (int i = 1; i < 10; i++)
        same = same && s[i] == s[0];
    return !same && mod11_check_digit(s) == s[9] - '0';
}

static bool
is_fixed_nhs(const char *s)
{
    for (size_t i = 0; i < N_FIXED_NHS; i++)
        if (strcmp(fixed_nhs[i], s) == 0)
            return true;
    return false;
}

/* Fill out[0..count-1] with distinct valid NHS numbers: the fixed ones
 * first, then 999000000x upwards. Returns false (after saying why) if the
 * range runs out, which MAX_PATIENTS prevents. */
static bool
make_patients(char (*out)[11], size_t count)
{
    size_t n = 0;
    for (size_t i = 0; i < N_FIXED_NHS && n < count; i++) {
        if (!nhs_valid(fixed_nhs[i])) {
            hov_errorf("built-in NHS number %s fails the Modulus 11 check",
                       fixed_nhs[i]);
            return false;
        }
        snprintf(out[n++], sizeof out[0], "%s", fixed_nhs[i]);
    }
    for (unsigned long v = 999000000UL; n < count && v <= 999999999UL; v++) {
        char nine[10];
        snprintf(nine, sizeof nine, "%09lu", v);
        int check = mod11_check_digit(nine);
        if (check < 0)
            continue;
        char num[11];
        memcpy(num, nine, 9);
        num[9] = (char)('0' + check);
        num[10] = '\0';
        if (!nhs_valid(num) || is_fixed_nhs(num))
            continue;
        memcpy(out[n++], num, sizeof num);
    }
    if (n < count) {
        hov_errorf("only %zu valid 999-range NHS numbers exist, %zu wanted", n,
                   count);
        return false;
    }
    return true;
}

/* ------------------------------------------------------------ the run --- */

typedef struct bench {
    /* options */
    const char *endpoint;
    size_t n, size, window, patients;
    size_t packed_size; /* mean packed size, rounded: SIZE when reachable */

    /* events, built before timing; read-only once the consumer starts */
    uint8_t *arena; /* packed events, back to back */
    size_t *off;    /* event i is arena[off[i] .. off[i + 1]) */
    char (*ids)[ID_LEN + 1];
    uint32_t *slots; /* open addressing: event id -> index + 1; 0 empty */
    size_t mask;     /* slots has mask + 1 entries, a power of two */

    /* per-event times, 0 = not yet. pub_ns and ack_ns belong to the main
     * thread, dlv_ns to the consumer thread; the main thread reads dlv_ns
     * only after pthread_join. */
    uint64_t *pub_ns, *ack_ns, *dlv_ns;

    /* shared between the threads */
    atomic_bool stop;           /* main -> consumer: give up now */
    atomic_bool consumer_ready; /* the hub answered the consumer's Hello */
    atomic_bool consumer_failed;
    atomic_bool consumer_done;
    atomic_size_t received; /* distinct events delivered */
    atomic_size_t lost;     /* Nak'd or not routed: never delivered */

    /* consumer results, read after pthread_join */
    uint64_t last_dlv_ns;
    size_t dup_deliveries, redelivered, foreign;
} bench;

/* FNV-1a over the id's text. */
static uint64_t
id_hash(const char *id)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < ID_LEN && id[i]; i++) {
        h ^= (unsigned char)id[i];
        h *= 1099511628211ULL;
    }
    return h;
}

/* Index of the event with this id, or -1 if it is not one of ours. */
static long
id_lookup(const bench *b, const char *id)
{
    if (id == NULL || strlen(id) != ID_LEN)
        return -1;
    for (size_t s = id_hash(id) & b->mask;; s = (s + 1) & b->mask) {
        uint32_t v = b->slots[s];
        if (v == 0)
            return -1;
        if (memcmp(b->ids[v - 1], id, ID_LEN) == 0)
            return (long)(v - 1);
    }
}

/* Add event i; false if its id is already there. */
static bool
id_insert(bench *b, size_t i)
{
    const char *id = b->ids[i];
    for (size_t s = id_hash(id) & b->mask;; s = (s + 1) & b->mask) {
        uint32_t v = b->slots[s];
        if (v == 0) {
            b->slots[s] = (uint32_t)(i + 1);
            return true;
        }
        if (memcmp(b->ids[v - 1], id, ID_LEN) == 0)
            return false;
    }
}

static bool
build_events(bench *b)
{
    size_t np = b->patients < b->n ? b->patients : b->n;
    char(*nhs)[11] = calloc(np, sizeof *nhs);
    hov_sample *s = malloc(sizeof *s);
    size_t cap = b->n * (b->size + 64) + 4096;
    b->arena = malloc(cap);
    b->off = calloc(b->n + 1, sizeof *b->off);
    b->ids = calloc(b->n, sizeof *b->ids);
    size_t slots = 1;
    while (slots < 2 * b->n)
        slots <<= 1;
    b->mask = slots - 1;
    b->slots = calloc(slots, sizeof *b->slots);
    bool ok = nhs && s && b->arena && b->off && b->ids && b->slots;
    if (!ok)
        hov_errorf("out of memory building %zu events of %zu bytes "
                   "(about %zu MiB)",
                   b->n, b->size, cap >> 20);
    if (ok)
        ok = make_patients(nhs, np);

    size_t used = 0, min_len = SIZE_MAX, max_len = 0;
    for (size_t i = 0; ok && i < b->n; i++) {
        /* A fresh sample per event: a new event id, and a source.ref and
         * occurred_at of its own, as a partner's events would have. */
        hov_sample_init(s, "referral", nhs[i % np]);
        hov_sample_set_size(s, b->size);
        size_t len = handover__event__get_packed_size(&s->ev);
        if (len > cap - used) {
            size_t ncap = cap * 2;
            while (len > ncap - used)
                ncap *= 2;
            uint8_t *p = realloc(b->arena, ncap);
            if (p == NULL) {
                hov_errorf("out of memory growing the event arena to %zu "
                           "MiB",
                           ncap >> 20);
                ok = false;
                break;
            }
            b->arena = p;
            cap = ncap;
        }
        size_t packed = handover__event__pack(&s->ev, b->arena + used);
        if (packed != len) {
            hov_errorf("event %zu packed to %zu bytes, expected %zu", i, packed,
                       len);
            ok = false;
            break;
        }
        b->off[i] = used;
        used += len;
        b->off[i + 1] = used;
        if (len < min_len)
            min_len = len;
        if (len > max_len)
            max_len = len;
        if (strlen(s->event_id) != ID_LEN) {
            hov_errorf("sample event id '%s' is not a UUID", s->event_id);
            ok = false;
            break;
        }
        memcpy(b->ids[i], s->event_id, ID_LEN + 1);
        if (!id_insert(b, i)) {
            hov_errorf("event id %s generated twice", s->event_id);
            ok = false;
        }
    }
    if (ok && (min_len != b->size || max_len != b->size))
        hov_warn("events pack to %zu..%zu bytes, not the %zu asked for "
                 "(the sample referral cannot be made that size); the "
                 "result line gives the mean packed size",
                 min_len, max_len, b->size);
    if (ok)
        b->packed_size = (used + b->n / 2) / b->n;
    if (ok)
        hov_info("built %zu events (%zu..%zu bytes, %zu MiB) for %zu "
                 "patients",
                 b->n, min_len, max_len, used >> 20, np);
    free(nhs);
    free(s);
    return ok;
}

/* ----------------------------------------------------------- consumer --- */

static void
consumer_fail(bench *b)
{
    atomic_store(&b->consumer_failed, true);
}

/* Record and settle one delivery. False on a fatal client error. */
static bool
on_deliver(bench *b, hov_client *c, const hov_msg *m)
{
    uint64_t t = now_ns();
    long i = id_lookup(b, m->event_id);
    if (m->attempt > 1)
        b->redelivered++;
    if (i < 0) {
        /* Left in the queue by an earlier run on the same data folder:
         * settle it so it stops coming back, but do not count it. */
        if (b->foreign++ == 0)
            hov_warn("delivery of event %s, which this run did not publish "
                     "(an earlier run's?): settling it, not counting it",
                     m->event_id);
    } else if (b->dlv_ns[i] != 0) {
        b->dup_deliveries++;
    } else {
        b->dlv_ns[i] = t;
        b->last_dlv_ns = t;
        atomic_fetch_add(&b->received, 1);
    }
    hov_error err = {0};
    hov_err e =
        hov_client_settle(c, m->delivery_id, HOV_SETTLE_DONE, NULL, &err);
    if (e == HOV_EUNAVAILABLE) {
        /* The hub will deliver it again; the duplicate is counted. */
        hov_warn("settle of event %s not sent: %s", m->event_id, err.msg);
        return true;
    }
    if (e != HOV_OK) {
        hov_errorf("settle of event %s failed: %s", m->event_id, err.msg);
        return false;
    }
    return true;
}

static void *
consumer_main(void *arg)
{
    bench *b = arg;
    hov_client *c = NULL;
    hov_error err = {0};
    char name[64];
    snprintf(name, sizeof name, "hub-bench-nursing-%ld", (long)getpid());
    hov_client_opts o = {
        .agency = "nursing",
        .name = name,
        .consume = true,
        .credit = (unsigned)b->window,
    };
    if (hov_client_new(&c, &o, &err) != HOV_OK ||
        hov_client_connect(c, b->endpoint, &err) != HOV_OK) {
        hov_errorf("consumer: %s", err.msg);
        consumer_fail(b);
        hov_client_free(c);
        return NULL;
    }
    uint64_t start = hov_mono_ms(), last_progress = start;
    size_t last_received = 0;
    bool ok = true;
    while (ok && !atomic_load(&b->stop)) {
        hov_msg m;
        /* Short waits until ready: the publisher is waiting for us. */
        int wait = atomic_load(&b->consumer_ready) ? WAIT_MS : 5;
        if (hov_client_next(c, wait, &m, &err) != HOV_OK) {
            hov_errorf("consumer: %s", err.msg);
            ok = false;
            break;
        }
        if (m.kind == HOV_MSG_DELIVER)
            ok = on_deliver(b, c, &m);
        else if (m.kind == HOV_MSG_NAK)
            /* A Nak to a consumer answers a Hello or a Settle. */
            hov_warn("consumer: hub refused a frame: %s: %s",
                     hov_errname(m.code), m.reason);
        uint64_t now = hov_mono_ms();
        if (!atomic_load(&b->consumer_ready)) {
            if (hov_client_hub_up(c)) {
                atomic_store(&b->consumer_ready, true);
                last_progress = now;
            } else if (now - start > CONNECT_TIMEOUT_MS) {
                hov_errorf("consumer: the hub at %s did not answer Hello "
                           "within %d ms",
                           b->endpoint, CONNECT_TIMEOUT_MS);
                ok = false;
            }
            continue;
        }
        size_t got = atomic_load(&b->received);
        if (got + atomic_load(&b->lost) >= b->n) {
            atomic_store(&b->consumer_done, true);
            break;
        }
        if (got != last_received) {
            last_received = got;
            last_progress = now;
        } else if (now - last_progress > STALL_TIMEOUT_MS) {
            hov_errorf("consumer: no new delivery for %d ms (%zu of %zu "
                       "received, hub %s)",
                       STALL_TIMEOUT_MS, got, b->n,
                       hov_client_hub_up(c) ? "up" : "not answering");
            ok = false;
        }
    }
    if (!ok)
        consumer_fail(b);
    /* Closing lingers up to a second, so the last Settles reach the hub. */
    hov_client_free(c);
    return NULL;
}

/* ---------------------------------------------------------- publisher --- */

typedef struct pub_stats {
    size_t published, answered, acked, naks, unrouted, duplicate_acks, warnings;
    uint64_t last_ack_ns;
    char first_nak[320];
    char first_unrouted[160];
    char first_warning[320];
} pub_stats;

static bool
routed_to_nursing(const hov_msg *m)
{
    for (size_t i = 0; i < m->n_routed; i++)
        if (m->routed_to[i] && strcmp(m->routed_to[i], NURSING_ORG) == 0)
            return true;
    return false;
}

static void
on_answer(bench *b, pub_stats *ps, const hov_msg *m)
{
    uint64_t t = now_ns();
    uintptr_t u = (uintptr_t)m->user;
    if (u == 0 || u > b->n) {
        hov_warn("answer to publish seq %" PRIu64 " that this run did not "
                 "make",
                 m->seq);
        return;
    }
    size_t i = u - 1;
    ps->answered++;
    ps->last_ack_ns = t;
    if (m->kind == HOV_MSG_NAK) {
        if (ps->naks++ == 0)
            snprintf(ps->first_nak, sizeof ps->first_nak, "event %s: %s%s: %s",
                     b->ids[i], hov_errname(m->code),
                     m->temporary ? " (temporary)" : "", m->reason);
        atomic_fetch_add(&b->lost, 1);
        return;
    }
    ps->acked++;
    b->ack_ns[i] = t;
    if (m->duplicate)
        ps->duplicate_acks++;
    if (m->warning && m->warning[0] && ps->warnings++ == 0)
        snprintf(ps->first_warning, sizeof ps->first_warning, "event %s: %s",
                 b->ids[i], m->warning);
    if (!routed_to_nursing(m)) {
        if (ps->unrouted++ == 0)
            snprintf(ps->first_unrouted, sizeof ps->first_unrouted,
                     "event %s routed to %zu destinations, not " NURSING_ORG,
                     b->ids[i], m->n_routed);
        atomic_fetch_add(&b->lost, 1);
    }
}

static void
progress(bench *b, const pub_stats *ps, hov_client *c)
{
    hov_info("progress published=%zu confirmed=%zu pending=%zu "
             "delivered=%zu naks=%zu",
             ps->published, ps->answered, hov_client_pending(c),
             atomic_load(&b->received), ps->naks);
}

/* Connect, wait for both clients, publish every event with at most
 * b->window unanswered, then serve the client until the consumer is done.
 * Sets *t0 to the start of timing. False on a fatal failure. */
static bool
publish_all(bench *b, pub_stats *ps, uint64_t *t0)
{
    hov_client *c = NULL;
    hov_error err = {0};
    char name[64];
    snprintf(name, sizeof name, "hub-bench-gp-%ld", (long)getpid());
    hov_client_opts o = {.agency = "gp", .name = name};
    if (hov_client_new(&c, &o, &err) != HOV_OK ||
        hov_client_connect(c, b->endpoint, &err) != HOV_OK) {
        hov_errorf("publisher: %s", err.msg);
        hov_client_free(c);
        return false;
    }
    bool ok = true;
    hov_msg m;

    /* Both Hellos answered before the clock starts. */
    uint64_t start = hov_mono_ms();
    while (ok && !(hov_client_hub_up(c) && atomic_load(&b->consumer_ready))) {
        if (atomic_load(&b->consumer_failed)) {
            ok = false;
        } else if (hov_client_next(c, 10, &m, &err) != HOV_OK) {
            hov_errorf("publisher: %s", err.msg);
            ok = false;
        } else if (hov_mono_ms() - start > CONNECT_TIMEOUT_MS + 1000) {
            hov_errorf("publisher: the hub at %s did not answer Hello "
                       "within %d ms",
                       b->endpoint, CONNECT_TIMEOUT_MS);
            ok = false;
        }
    }
    if (ok)
        hov_info("connected to %s; publishing %zu events, window %zu",
                 b->endpoint, b->n, b->window);

    *t0 = now_ns();
    uint64_t last_answer_ms = hov_mono_ms(), last_progress_ms = last_answer_ms;
    while (ok && ps->answered < b->n) {
        while (ps->published < b->n && hov_client_pending(c) < b->window) {
            size_t i = ps->published;
            b->pub_ns[i] = now_ns();
            if (hov_client_publish(
                    c, b->arena + b->off[i], b->off[i + 1] - b->off[i],
                    (void *)(uintptr_t)(i + 1), NULL, &err) != HOV_OK) {
                hov_errorf("publish of event %s failed: %s", b->ids[i],
                           err.msg);
                ok = false;
                break;
            }
            ps->published++;
        }
        if (!ok)
            break;
        if (hov_client_next(c, WAIT_MS, &m, &err) != HOV_OK) {
            hov_errorf("publisher: %s", err.msg);
            ok = false;
            break;
        }
        uint64_t now = hov_mono_ms();
        if (m.kind == HOV_MSG_ACK || m.kind == HOV_MSG_NAK) {
            if (m.seq == 0 && m.kind == HOV_MSG_NAK)
                hov_warn("publisher: hub refused a frame: %s: %s",
                         hov_errname(m.code), m.reason);
            else
                on_answer(b, ps, &m);
            last_answer_ms = now;
        } else if (now - last_answer_ms > STALL_TIMEOUT_MS) {
            hov_errorf("publisher: no Ack or Nak for %d ms (%zu of %zu "
                       "answered, %zu pending, hub %s)",
                       STALL_TIMEOUT_MS, ps->answered, b->n,
                       hov_client_pending(c),
                       hov_client_hub_up(c) ? "up" : "not answering");
            ok = false;
        }
        if (atomic_load(&b->consumer_failed))
            ok = false;
        if (now - last_progress_ms >= PROGRESS_MS) {
            last_progress_ms = now;
            progress(b, ps, c);
        }
    }

    /* Keep the session alive (heartbeats) while the consumer finishes. */
    while (ok && !atomic_load(&b->consumer_done)) {
        if (atomic_load(&b->consumer_failed)) {
            ok = false;
            break;
        }
        if (hov_client_next(c, WAIT_MS, &m, &err) != HOV_OK) {
            hov_errorf("publisher: %s", err.msg);
            ok = false;
            break;
        }
        uint64_t now = hov_mono_ms();
        if (now - last_progress_ms >= PROGRESS_MS) {
            last_progress_ms = now;
            progress(b, ps, c);
        }
    }
    hov_client_free(c);
    return ok;
}

/* ------------------------------------------------------------ results --- */

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* p50 and p99 in ms of to[i] - from[i] over the events where both are set,
 * picked as the peers do (sorted[n / 2], sorted[n * 99 / 100]). False if
 * out of memory; *count gets the number of samples. */
static bool
percentiles(const uint64_t *from, const uint64_t *to, size_t n, double *p50,
            double *p99, size_t *count)
{
    double *v = malloc((n ? n : 1) * sizeof *v);
    if (v == NULL)
        return false;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (from[i] && to[i])
            v[k++] = (double)(to[i] - from[i]) / 1e6;
    *count = k;
    *p50 = *p99 = 0;
    if (k > 0) {
        qsort(v, k, sizeof *v, cmp_double);
        *p50 = v[k / 2];
        *p99 = v[k * 99 / 100 < k ? k * 99 / 100 : k - 1];
    }
    free(v);
    return true;
}

/* ---------------------------------------------------------- arguments --- */

static void
usage(FILE *f)
{
    fprintf(
        f,
        "usage: hub-bench [--endpoint EP] [-n N] [-s SIZE] [-w WINDOW] "
        "[--patients P]\n"
        "  -e, --endpoint EP   the hub's endpoint (default " DEFAULT_ENDPOINT
        ")\n"
        "  -n N                events to publish (default %d)\n"
        "  -s SIZE             packed event size in bytes (default %d)\n"
        "  -w WINDOW           unconfirmed publishes in flight, and the "
        "consumer's\n"
        "                      credit (default %d)\n"
        "  -p, --patients P    patients to spread the events over "
        "(default %d)\n"
        "Prints one result line on stdout; progress on stderr.\n",
        DEFAULT_N, DEFAULT_SIZE, DEFAULT_WINDOW, DEFAULT_PATIENTS);
}

/* A whole number in [min, max], with nothing after it. */
static bool
parse_count(const char *opt, const char *s, unsigned long min,
            unsigned long max, size_t *out)
{
    /* strtoul accepts leading space and a minus sign (wrapping): refuse
     * both by insisting on a digit first. */
    if (s == NULL || s[0] < '0' || s[0] > '9') {
        fprintf(stderr, "hub-bench: %s wants a whole number, not '%s'\n", opt,
                s ? s : "");
        return false;
    }
    errno = 0;
    char *end = NULL;
    unsigned long v = strtoul(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max) {
        fprintf(stderr,
                "hub-bench: %s must be a whole number from %lu to %lu, not "
                "'%s'\n",
                opt, min, max, s);
        return false;
    }
    *out = (size_t)v;
    return true;
}

static int
parse_args(bench *b, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"endpoint", required_argument, 0, 'e'},
        {"patients", required_argument, 0, 'p'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    b->endpoint = DEFAULT_ENDPOINT;
    b->n = DEFAULT_N;
    b->size = DEFAULT_SIZE;
    b->window = DEFAULT_WINDOW;
    b->patients = DEFAULT_PATIENTS;
    int ch;
    bool ok = true;
    while (ok && (ch = getopt_long(argc, argv, "e:n:s:w:p:h", longopts,
                                   NULL)) != -1) {
        switch (ch) {
        case 'e':
            b->endpoint = optarg;
            ok = optarg[0] != '\0';
            if (!ok)
                fprintf(stderr, "hub-bench: --endpoint is empty\n");
            break;
        case 'n':
            ok = parse_count("-n", optarg, 1, MAX_N, &b->n);
            break;
        case 's':
            ok = parse_count("-s", optarg, 1, MAX_SIZE, &b->size);
            break;
        case 'w':
            ok = parse_count("-w", optarg, 1, MAX_WINDOW, &b->window);
            break;
        case 'p':
            ok = parse_count("--patients", optarg, 1, MAX_PATIENTS,
                             &b->patients);
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            ok = false;
            break;
        }
    }
    if (ok && optind < argc) {
        fprintf(stderr, "hub-bench: unexpected argument '%s'\n", argv[optind]);
        ok = false;
    }
    if (!ok) {
        usage(stderr);
        return 2;
    }
    return -1;
}

/* --------------------------------------------------------------- main --- */

static void
bench_free(bench *b)
{
    free(b->arena);
    free(b->off);
    free(b->ids);
    free(b->slots);
    free(b->pub_ns);
    free(b->ack_ns);
    free(b->dlv_ns);
}

int
main(int argc, char **argv)
{
    hov_log_set_name("hub-bench");
    bench bs;
    memset(&bs, 0, sizeof bs);
    bench *b = &bs;
    int rc = parse_args(b, argc, argv);
    if (rc >= 0)
        return rc;
    atomic_init(&b->stop, false);
    atomic_init(&b->consumer_ready, false);
    atomic_init(&b->consumer_failed, false);
    atomic_init(&b->consumer_done, false);
    atomic_init(&b->received, 0);
    atomic_init(&b->lost, 0);

    b->pub_ns = calloc(b->n, sizeof *b->pub_ns);
    b->ack_ns = calloc(b->n, sizeof *b->ack_ns);
    b->dlv_ns = calloc(b->n, sizeof *b->dlv_ns);
    if (b->pub_ns == NULL || b->ack_ns == NULL || b->dlv_ns == NULL) {
        hov_errorf("out of memory for %zu timestamps", 3 * b->n);
        bench_free(b);
        return 1;
    }
    uint64_t tb = hov_mono_ms();
    if (!build_events(b)) {
        bench_free(b);
        return 1;
    }
    hov_info("events ready in %" PRIu64 " ms", hov_mono_ms() - tb);

    pthread_t consumer;
    int pe = pthread_create(&consumer, NULL, consumer_main, b);
    if (pe != 0) {
        hov_errorf("start the consumer thread: %s", strerror(pe));
        bench_free(b);
        return 1;
    }
    pub_stats ps;
    memset(&ps, 0, sizeof ps);
    uint64_t t0 = 0;
    bool ok = publish_all(b, &ps, &t0);
    atomic_store(&b->stop, true);
    pe = pthread_join(consumer, NULL);
    if (pe != 0) {
        hov_errorf("join the consumer thread: %s", strerror(pe));
        ok = false;
    }
    if (atomic_load(&b->consumer_failed))
        ok = false;

    if (b->foreign)
        hov_warn("%zu deliveries of events from outside this run (settled, "
                 "not counted)",
                 b->foreign);
    if (b->dup_deliveries || b->redelivered)
        hov_warn("%zu duplicate deliveries, %zu deliveries with attempt > 1",
                 b->dup_deliveries, b->redelivered);
    if (ps.duplicate_acks)
        hov_warn("%zu Acks marked duplicate (a publish was resent)",
                 ps.duplicate_acks);
    if (ps.warnings)
        hov_warn("%zu Acks carried a routing warning; first: %s", ps.warnings,
                 ps.first_warning);

    if (ok) {
        double p50, p99, a50, a99;
        size_t nd, na;
        if (!percentiles(b->pub_ns, b->dlv_ns, b->n, &p50, &p99, &nd) ||
            !percentiles(b->pub_ns, b->ack_ns, b->n, &a50, &a99, &na)) {
            hov_errorf("out of memory sorting latencies");
            ok = false;
        } else {
            double conf_s = (double)(ps.last_ack_ns - t0) / 1e9;
            double e2e_s = (double)(b->last_dlv_ns - t0) / 1e9;
            if (conf_s <= 0 || e2e_s <= 0 || nd == 0) {
                hov_errorf("nothing was delivered: no figures");
                ok = false;
            } else {
                printf("handover 0.1 durable+group-commit: %zu msgs x %zu B: "
                       "confirmed %.0f msg/s, end-to-end %.0f msg/s, "
                       "latency p50 %.2f ms p99 %.2f ms, "
                       "ack p50 %.2f ms p99 %.2f ms\n",
                       b->n, b->packed_size, (double)b->n / conf_s,
                       (double)b->n / e2e_s, p50, p99, a50, a99);
                fflush(stdout);
                hov_info("done: %zu acked, %zu delivered, confirmed in "
                         "%.3f s, delivered in %.3f s",
                         na, nd, conf_s, e2e_s);
            }
        }
    }
    if (ps.naks) {
        hov_errorf("FAILED: %zu of %zu publishes refused (Nak); first: %s",
                   ps.naks, b->n, ps.first_nak);
        ok = false;
    }
    if (ps.unrouted) {
        hov_errorf("FAILED: %zu events not routed to " NURSING_ORG
                   "; first: %s",
                   ps.unrouted, ps.first_unrouted);
        ok = false;
    }
    if (!ok)
        hov_errorf("run failed: %zu of %zu published, %zu answered, %zu "
                   "delivered",
                   ps.published, b->n, ps.answered, atomic_load(&b->received));
    bench_free(b);
    return ok ? 0 : 1;
}
