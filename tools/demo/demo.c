/* handover-demo: the Fellshire partnership in miniature, played against a
 * running hub with real hub clients.
 *
 * Publishers speak for the GP practice (Z99001), the trust (RZZ01 hospital
 * discharges, RZZ40 community nursing) and the council (Z9Z9Z); one
 * consuming client per agency receives and settles that agency's
 * deliveries, and the receiving agencies answer requests with outcomes.
 * Each round raises the events of `script` below. The demo ends when every
 * expected Ack, Nak, delivery and outcome has arrived (exit 0), or after
 * RUN_LIMIT_MS saying what is missing (exit 1).
 *
 * Patients appear by NHS number only (the 999 test range), never by name.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handover.pb-c.h"
#include "handover/client.h"
#include "handover/err.h"
#include "handover/log.h"
#include "handover/map.h"
#include "handover/sample.h"
#include "handover/timeutil.h"

#define DEFAULT_ENDPOINT "tcp://127.0.0.1:7400"
#define RUN_LIMIT_MS     30000 /* everything must have arrived by then */
#define HELLO_LIMIT_MS   5000  /* every client must have met the hub by then */
#define STEP_WAIT_MS     3000  /* per scripted event, to keep the story tidy */
#define POLL_MS          20
#define RESEND_MS        200 /* after a temporary Nak */
#define MAX_ROUNDS       1000
#define MAX_EXPECT       3
#define UNCONFIGURED_GP  "Z99009"
#define LINE_MAX_CHARS   400

/* ------------------------------------------------------------ clients --- */

enum {
    PUB_GP,
    PUB_NURSING,
    PUB_SOCIAL,
    CON_GP, /* consumers, in agency order: gp, nursing, social, voluntary */
    CON_NURSING,
    CON_SOCIAL,
    CON_VOLUNTARY,
    N_CLIENTS
};
#define N_AGENCIES 4

typedef struct client_spec {
    const char *agency;
    const char *name; /* stable: a restarted demo gets its deliveries back */
    bool consume;
} client_spec;

static const client_spec client_specs[N_CLIENTS] = {
    {"gp", "demo-gp-pub", false},
    {"nursing", "demo-nursing-pub", false},
    {"social", "demo-social-pub", false},
    {"gp", "demo-gp", true},
    {"nursing", "demo-nursing", true},
    {"social", "demo-social", true},
    {"voluntary", "demo-voluntary", true},
};

/* ------------------------------------------------------------- script --- */

typedef enum expect_result {
    EXPECT_ACK,
    EXPECT_WARNING,
    EXPECT_NAK,
} expect_result;

/* One event a round raises, and what the hub should make of it. */
typedef struct step {
    const char *what; /* for people */
    const char *type; /* hov_sample_init type */
    const char *nhs;
    int publisher;
    const char *source;      /* NULL: the sample's own */
    const char *service;     /* referral: NULL keeps district-nursing */
    const char *destination; /* a named destination, or NULL */
    bool explicit_consent;
    int pathway;               /* discharge only */
    const char *registered_gp; /* NULL: the patient's own practice */
    bool no_follow_up;         /* pathway 0: nothing new to follow up */
    expect_result result;
    hov_err nak_code; /* EXPECT_NAK */
    const char *deliver_to[MAX_EXPECT];
    const char *answered_by; /* the destination that sends an outcome */
    const char *answer_status;
} step;

static const step script[] = {
    {.what = "GP Z99001 refers a patient to district nursing",
     .type = "referral",
     .nhs = "9996118428",
     .publisher = PUB_GP,
     .service = "district-nursing",
     .result = EXPECT_ACK,
     .deliver_to = {"RZZ40"},
     .answered_by = "RZZ40",
     .answer_status = "accepted"},
    {.what = "GP Z99001 makes a social prescribing referral to "
             "local:VCS-0002, with explicit consent",
     .type = "referral",
     .nhs = "9997345207",
     .publisher = PUB_GP,
     .service = "social-prescribing",
     .destination = "local:VCS-0002",
     .explicit_consent = true,
     .result = EXPECT_ACK,
     .deliver_to = {"local:VCS-0002"},
     .answered_by = "local:VCS-0002",
     .answer_status = "accepted"},
    {.what = "community nursing RZZ40 asks adult social care for an "
             "assessment",
     .type = "referral",
     .nhs = "9993001007",
     .publisher = PUB_NURSING,
     .source = "RZZ40",
     .service = "adult-social-care-assessment",
     .result = EXPECT_ACK,
     .deliver_to = {"Z9Z9Z"}},
    {.what = "hospital RZZ01 discharges a patient on pathway 1",
     .type = "discharge",
     .nhs = "9992468130",
     .publisher = PUB_NURSING,
     .pathway = 1,
     .result = EXPECT_ACK,
     .deliver_to = {"Z99001", "RZZ40", "Z9Z9Z"}},
    {.what = "hospital RZZ01 discharges a patient on pathway 0 whose "
             "practice " UNCONFIGURED_GP " is not configured",
     .type = "discharge",
     .nhs = "9998765439",
     .publisher = PUB_NURSING,
     .pathway = 0,
     .registered_gp = UNCONFIGURED_GP,
     .no_follow_up = true,
     .result = EXPECT_WARNING},
    {.what = "district nurse RZZ40 orders equipment from the equipment "
             "service 8ZZ99",
     .type = "equipment_order",
     .nhs = "9992468130",
     .publisher = PUB_NURSING,
     .result = EXPECT_ACK,
     .deliver_to = {"8ZZ99"},
     .answered_by = "8ZZ99",
     .answer_status = "accepted"},
    {.what = "the council Z9Z9Z sends a referral with a mistyped NHS "
             "number (wrong check digit)",
     .type = "referral",
     .nhs = "9994127358",
     .publisher = PUB_SOCIAL,
     .source = "Z9Z9Z",
     .service = "district-nursing",
     .result = EXPECT_NAK,
     .nak_code = HOV_ENHSNUMBER},
};

#define N_STEPS (sizeof script / sizeof script[0])

/* ------------------------------------------------------------- records --- */

typedef enum rec_state { R_WAITING, R_ACCEPTED, R_REFUSED } rec_state;

/* One event this demo published, and what became of it. */
typedef struct record {
    char event_id[37];
    char nhs[16]; /* as published; "" if the sender had none */
    char what[200];
    char source[HOV_SAMPLE_CODE_CAP];
    const char *type;
    int round;
    int client;             /* the client that publishes it */
    const step *step;       /* NULL for an outcome */
    struct record *answers; /* outcome: the request it answers */
    struct record *outcome; /* request: its outcome, once published */
    uint8_t *data;          /* packed, kept for resends until answered */
    size_t len;
    rec_state state;
    uint64_t resend_at; /* monotonic ms; 0: nothing to resend */
    const char *expect[MAX_EXPECT];
    size_t n_expect;
    bool routed[MAX_EXPECT]; /* named in the Ack */
    bool got[MAX_EXPECT];    /* delivered there */
    /* Delivery lines that arrived before the Ack was read (the consumer's
     * socket was drained first): printed after the Ack's line. */
    char held[MAX_EXPECT][LINE_MAX_CHARS];
    size_t n_held;
} record;

typedef struct demo {
    const char *endpoint;
    const char *keys; /* CURVE key folder, or NULL for plain TCP */
    int rounds;
    uint64_t deadline; /* monotonic ms */
    hov_client *c[N_CLIENTS];
    struct pollfd pfd[N_CLIENTS];
    record *recs;
    size_t nrecs, cap;
    hov_map *by_id; /* event id -> record */
    /* for the summary */
    unsigned requests, outcomes, accepted, warnings, refused, resends;
    unsigned delivered[N_AGENCIES], redelivered, foreign;
    unsigned outcomes_returned, outcomes_expected, dead_expected;
    unsigned surprises;
} demo;

/* -------------------------------------------------------------- output --- */

static const char *
nhs_shown(const char *nhs)
{
    return nhs && nhs[0] ? nhs : "(none)";
}

/* "  verb       type             nhs         rest" into line. */
static void
vline(char line[LINE_MAX_CHARS], const char *verb, const char *type,
      const char *nhs, const char *fmt, va_list ap)
{
    char rest[LINE_MAX_CHARS - 64]; /* leaves room for the columns */
    vsnprintf(rest, sizeof rest, fmt, ap);
    snprintf(line, LINE_MAX_CHARS, "  %-9s  %-15s  %-10s  %s", verb, type,
             nhs_shown(nhs), rest);
}

static void HOV_PRINTF(4, 5) say(const char *verb, const char *type,
                                 const char *nhs, const char *fmt, ...)
{
    char line[LINE_MAX_CHARS];
    va_list ap;
    va_start(ap, fmt);
    vline(line, verb, type, nhs, fmt, ap);
    va_end(ap);
    puts(line);
}

/* As say, but held back while r's own Ack or Nak is still unread. */
static void HOV_PRINTF(5, 6)
    say_after(record *r, const char *verb, const char *type, const char *nhs,
              const char *fmt, ...)
{
    char line[LINE_MAX_CHARS];
    va_list ap;
    va_start(ap, fmt);
    vline(line, verb, type, nhs, fmt, ap);
    va_end(ap);
    if (r && r->state == R_WAITING && r->n_held < MAX_EXPECT)
        memcpy(r->held[r->n_held++], line, sizeof line);
    else
        puts(line);
}

static void
print_held(record *r)
{
    for (size_t i = 0; i < r->n_held; i++)
        puts(r->held[i]);
    r->n_held = 0;
}

/* Something the hub did differently from the script: the demo will fail. */
static void HOV_PRINTF(3, 4)
    surprise(demo *d, const record *r, const char *fmt, ...)
{
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    printf("  UNEXPECTED round %d, %s: %s\n", r->round, r->what, msg);
    d->surprises++;
}

/* ------------------------------------------------------------- records --- */

static record *
rec_new(demo *d, const char *event_id, hov_error *err)
{
    if (d->nrecs == d->cap) {
        hov_fail(err, HOV_ENOMEM, 0, "record event %s: all %zu slots used",
                 event_id, d->cap);
        return NULL;
    }
    record *r = &d->recs[d->nrecs];
    memset(r, 0, sizeof *r);
    snprintf(r->event_id, sizeof r->event_id, "%s", event_id);
    if (hov_map_put(d->by_id, r->event_id, strlen(r->event_id), r, err) !=
        HOV_OK)
        return NULL;
    d->nrecs++;
    return r;
}

static int
expect_index(const record *r, const char *dest)
{
    for (size_t i = 0; i < r->n_expect; i++)
        if (strcmp(r->expect[i], dest) == 0)
            return (int)i;
    return -1;
}

static bool rec_finished(const record *r);

/* Is the answer to request r still to come? */
static bool
answer_pending(const record *r)
{
    if (r->step == NULL || r->step->answered_by == NULL)
        return false;
    int i = expect_index(r, r->step->answered_by);
    if (i < 0 || !r->routed[i])
        return false; /* never routed there: no answer can come */
    return r->outcome == NULL || !rec_finished(r->outcome);
}

/* Has everything this event should cause happened (or become impossible,
 * which is reported as a surprise)? */
static bool
rec_finished(const record *r)
{
    if (r->state == R_WAITING)
        return false;
    if (r->state == R_REFUSED)
        return true;
    for (size_t i = 0; i < r->n_expect; i++)
        if (r->routed[i] && !r->got[i])
            return false;
    return !answer_pending(r);
}

static bool
all_finished(const demo *d)
{
    for (size_t i = 0; i < d->nrecs; i++)
        if (!rec_finished(&d->recs[i]))
            return false;
    return true;
}

/* ----------------------------------------------------------- publishing */

static hov_err
publish(demo *d, record *r, hov_error *err)
{
    r->resend_at = 0;
    return hov_client_publish(d->c[r->client], r->data, r->len, r, NULL, err);
}

/* Keep s's packed bytes in r and publish them. */
static hov_err
pack_and_publish(demo *d, record *r, const hov_sample *s, hov_error *err)
{
    r->data = hov_sample_pack(s, &r->len);
    if (r->data == NULL)
        return hov_fail(err, HOV_ENOMEM, 0, "pack event %s", r->event_id);
    return publish(d, r, err);
}

static void
build_request(hov_sample *s, const step *st)
{
    hov_sample_init(s, st->type, st->nhs);
    if (st->source)
        hov_sample_set_source(s, st->source);
    if (st->service)
        hov_sample_set_service(s, st->service);
    if (st->destination)
        hov_sample_add_destination(s, st->destination);
    if (st->explicit_consent)
        hov_sample_set_consent(s, "explicit", s->occurred_at);
    hov_sample_set_pathway(s, st->pathway); /* no effect unless discharge */
    if (st->registered_gp)
        hov_sample_set_registered_gp(s, st->registered_gp);
    if (st->no_follow_up)
        s->discharge.n_follow_up = 0;
}

static hov_err
raise_step(demo *d, int round, const step *st, record **out, hov_error *err)
{
    hov_sample s;
    build_request(&s, st);
    record *r = rec_new(d, s.event_id, err);
    if (r == NULL)
        return err->code;
    snprintf(r->nhs, sizeof r->nhs, "%s", st->nhs);
    snprintf(r->what, sizeof r->what, "%s", st->what);
    snprintf(r->source, sizeof r->source, "%s", s.source_code);
    r->type = st->type;
    r->round = round;
    r->client = st->publisher;
    r->step = st;
    for (size_t i = 0; i < MAX_EXPECT && st->deliver_to[i]; i++)
        r->expect[r->n_expect++] = st->deliver_to[i];
    if (st->registered_gp && strcmp(st->registered_gp, UNCONFIGURED_GP) == 0)
        d->dead_expected++;
    if (st->answered_by)
        d->outcomes_expected++;
    d->requests++;
    *out = r;
    printf("  > %s\n", st->what);
    return pack_and_publish(d, r, &s, err);
}

/* The agency that received request req answers it through its consuming
 * client; nhs is the NHS number its copy carried ("" when its view has
 * none: the hub then copies it from the request). */
static hov_err
answer(demo *d, int client, record *req, const char *nhs, hov_error *err)
{
    const step *st = req->step;
    hov_sample s;
    hov_sample_init(&s, "outcome", nhs);
    hov_sample_set_source(&s, st->answered_by);
    hov_sample_set_reply(&s, req->event_id, st->answer_status);
    record *r = rec_new(d, s.event_id, err);
    if (r == NULL)
        return err->code;
    snprintf(r->nhs, sizeof r->nhs, "%s", nhs);
    snprintf(r->what, sizeof r->what, "outcome '%s' from %s to: %s",
             st->answer_status, st->answered_by, st->what);
    snprintf(r->source, sizeof r->source, "%s", st->answered_by);
    r->type = "outcome";
    r->round = req->round;
    r->client = client;
    r->answers = req;
    r->expect[r->n_expect++] = req->source;
    req->outcome = r;
    d->outcomes++;
    return pack_and_publish(d, r, &s, err);
}

/* ------------------------------------------------------- acks and naks */

static void
routed_list(const hov_msg *m, char *buf, size_t cap)
{
    size_t n = (size_t)snprintf(buf, cap, "%s", m->n_routed ? "" : " nobody");
    for (size_t i = 0; i < m->n_routed && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, " %s", m->routed_to[i]);
}

static void
check_ack(demo *d, record *r, const hov_msg *m)
{
    for (size_t i = 0; i < m->n_routed; i++) {
        int k = expect_index(r, m->routed_to[i]);
        if (k >= 0)
            r->routed[k] = true;
        else
            surprise(d, r, "also routed to %s", m->routed_to[i]);
    }
    for (size_t i = 0; i < r->n_expect; i++)
        if (!r->routed[i])
            surprise(d, r, "not routed to %s", r->expect[i]);
    if (r->step == NULL)
        return;
    if (r->step->result == EXPECT_NAK)
        surprise(d, r, "accepted, but the hub should have refused it (%s)",
                 hov_errname(r->step->nak_code));
    else if (r->step->result == EXPECT_WARNING && m->warning[0] == '\0')
        surprise(d, r, "accepted without the expected warning");
}

static void
on_ack(demo *d, record *r, const hov_msg *m)
{
    if (r->state != R_WAITING)
        return;
    r->state = R_ACCEPTED;
    free(r->data);
    r->data = NULL;
    d->accepted++;
    char routed[300];
    routed_list(m, routed, sizeof routed);
    bool warned = m->warning[0] != '\0';
    if (warned)
        d->warnings++;
    say(warned ? "warning" : "accepted", r->type, r->nhs,
        "%-6s  routed to%s%s%s%s", r->source, routed,
        m->duplicate ? "  (duplicate)" : "", warned ? "; " : "", m->warning);
    print_held(r);
    check_ack(d, r, m);
}

static void
on_nak(demo *d, record *r, const hov_msg *m)
{
    if (r->state != R_WAITING)
        return;
    if (m->temporary) {
        say("retrying", r->type, r->nhs, "%-6s  %s: %s (again in %d ms)",
            r->source, hov_errname(m->code), m->reason, RESEND_MS);
        r->resend_at = hov_mono_ms() + RESEND_MS;
        d->resends++;
        return;
    }
    r->state = R_REFUSED;
    free(r->data);
    r->data = NULL;
    d->refused++;
    say("refused", r->type, r->nhs, "%-6s  %s: %s", r->source,
        hov_errname(m->code), m->reason);
    print_held(r);
    if (r->step == NULL || r->step->result != EXPECT_NAK)
        surprise(d, r, "refused, but it should have been accepted");
    else if (m->code != r->step->nak_code)
        surprise(d, r, "refused with %s, expected %s", hov_errname(m->code),
                 hov_errname(r->step->nak_code));
}

static hov_err
resend_due(demo *d, bool *busy, hov_error *err)
{
    uint64_t now = hov_mono_ms();
    for (size_t i = 0; i < d->nrecs; i++) {
        record *r = &d->recs[i];
        if (r->resend_at == 0 || now < r->resend_at)
            continue;
        *busy = true;
        hov_err e = publish(d, r, err);
        if (e != HOV_OK)
            return e;
    }
    return HOV_OK;
}

/* ----------------------------------------------------------- deliveries */

/* Record a delivery of one of our events; false if it is a repeat. */
static bool
note_delivery(demo *d, int client, record *r, const char *dest)
{
    int k = expect_index(r, dest);
    if (k < 0) {
        surprise(d, r, "delivered to %s, which the script does not expect",
                 dest);
        return true;
    }
    if (r->got[k]) {
        d->redelivered++;
        return false;
    }
    r->got[k] = true;
    d->delivered[client - CON_GP]++;
    if (r->answers)
        d->outcomes_returned++;
    return true;
}

static void
print_delivery(const hov_msg *m, const Handover__Event *ev, record *r,
               bool first)
{
    const char *src =
        ev->source && ev->source->org ? ev->source->org->code : "?";
    const char *nhs = ev->patient ? ev->patient->nhs_number : "";
    char note[160];
    size_t n = (size_t)snprintf(note, sizeof note, "(view %s", m->view);
    if (ev->body_case == HANDOVER__EVENT__BODY_OUTCOME && n < sizeof note)
        n += (size_t)snprintf(note + n, sizeof note - n, ", status %s",
                              ev->outcome->status);
    if (m->attempt > 1 && n < sizeof note)
        n += (size_t)snprintf(note + n, sizeof note - n, ", attempt %u",
                              m->attempt);
    if (r == NULL && n < sizeof note)
        n += (size_t)snprintf(note + n, sizeof note - n, ", not from this run");
    else if (!first && n < sizeof note)
        n += (size_t)snprintf(note + n, sizeof note - n, ", again");
    if (n < sizeof note)
        snprintf(note + n, sizeof note - n, ")");
    say_after(r, "delivered", ev->event_type, nhs, "%s -> %s  %s", src,
              m->destination, note);
}

static void
settle(demo *d, int client, const hov_msg *m, hov_settle how,
       const char *reason)
{
    hov_error err = {0};
    if (hov_client_settle(d->c[client], m->delivery_id, how, reason, &err) !=
        HOV_OK)
        printf("  note: settle of delivery %llu (event %s) not sent: %s; "
               "the hub will deliver it again\n",
               (unsigned long long)m->delivery_id, m->event_id, err.msg);
}

static hov_err
on_deliver(demo *d, int client, const hov_msg *m, hov_error *err)
{
    Handover__Event *ev = handover__event__unpack(NULL, m->event_len, m->event);
    if (ev == NULL) {
        printf("  UNEXPECTED delivery %llu of event %s to %s is not a "
               "readable handover.Event: rejected\n",
               (unsigned long long)m->delivery_id, m->event_id, m->destination);
        d->surprises++;
        settle(d, client, m, HOV_SETTLE_REJECTED, "not a readable event");
        return HOV_OK;
    }
    record *r = hov_map_get(d->by_id, m->event_id, strlen(m->event_id));
    bool first = r ? note_delivery(d, client, r, m->destination) : false;
    if (r == NULL)
        d->foreign++;
    print_delivery(m, ev, r, first);
    settle(d, client, m, HOV_SETTLE_DONE, NULL);
    hov_err e = HOV_OK;
    if (r && r->step && r->step->answered_by && r->outcome == NULL &&
        strcmp(r->step->answered_by, m->destination) == 0)
        e = answer(d, client, r, ev->patient ? ev->patient->nhs_number : "",
                   err);
    handover__event__free_unpacked(ev, NULL);
    return e;
}

/* ------------------------------------------------------------ the loop */

static hov_err
on_msg(demo *d, int client, const hov_msg *m, hov_error *err)
{
    switch (m->kind) {
    case HOV_MSG_ACK:
    case HOV_MSG_NAK:
        if (m->user == NULL) {
            /* A Nak for no publish: the hub refused the session itself. */
            printf("  hub: %s for client %s: %s\n", hov_errname(m->code),
                   client_specs[client].name, m->reason);
            return HOV_OK;
        }
        if (m->kind == HOV_MSG_ACK)
            on_ack(d, m->user, m);
        else
            on_nak(d, m->user, m);
        return HOV_OK;
    case HOV_MSG_DELIVER:
        return on_deliver(d, client, m, err);
    default:
        return HOV_OK;
    }
}

static hov_err
drain(demo *d, int client, bool *busy, hov_error *err)
{
    for (;;) {
        hov_msg m;
        hov_err e = hov_client_next(d->c[client], 0, &m, err);
        if (e != HOV_OK || m.kind == HOV_MSG_NONE)
            return e;
        *busy = true;
        if ((e = on_msg(d, client, &m, err)) != HOV_OK)
            return e;
    }
}

/* Drain order: publishers, then the consumers that answer (voluntary,
 * social, nursing) before those their outcomes go to (nursing, gp), so an
 * Ack that is already waiting is printed before the delivery it caused. */
static const int drain_order[N_CLIENTS] = {
    PUB_GP,     PUB_NURSING, PUB_SOCIAL, CON_VOLUNTARY,
    CON_SOCIAL, CON_NURSING, CON_GP,
};

/* Handle what every client has waiting and resend what is due; if there
 * was nothing, wait up to wait_ms for the hub. */
static hov_err
pump(demo *d, int wait_ms, hov_error *err)
{
    bool busy = false;
    hov_err e = HOV_OK;
    for (int i = 0; i < N_CLIENTS && e == HOV_OK; i++)
        e = drain(d, drain_order[i], &busy, err);
    if (e == HOV_OK)
        e = resend_due(d, &busy, err);
    if (e != HOV_OK || busy || wait_ms <= 0)
        return e;
    /* ZMQ_FD is edge-triggered: every client was drained just above. */
    if (poll(d->pfd, N_CLIENTS, wait_ms < POLL_MS ? wait_ms : POLL_MS) < 0 &&
        errno != EINTR)
        return hov_fail(err, HOV_ESYS, errno, "poll the hub clients: %s",
                        strerror(errno));
    return HOV_OK;
}

/* Pump until r (or, for NULL, every record) is finished, or until the
 * monotonic time until. */
static hov_err
run_until(demo *d, const record *r, uint64_t until, hov_error *err)
{
    for (;;) {
        if (r ? rec_finished(r) : all_finished(d))
            return HOV_OK;
        uint64_t now = hov_mono_ms();
        if (now >= until)
            return HOV_OK;
        hov_err e = pump(d, (int)(until - now), err);
        if (e != HOV_OK)
            return e;
    }
}

static bool
all_up(const demo *d)
{
    for (int i = 0; i < N_CLIENTS; i++)
        if (!hov_client_hub_up(d->c[i]))
            return false;
    return true;
}

static hov_err
wait_for_hub(demo *d, hov_error *err)
{
    uint64_t until = hov_mono_ms() + HELLO_LIMIT_MS;
    while (!all_up(d)) {
        if (hov_mono_ms() >= until)
            return hov_fail(err, HOV_ETIMEDOUT, 0,
                            "no answer from a hub at %s within %d s: start "
                            "handover-hub there (or pass --endpoint)",
                            d->endpoint, HELLO_LIMIT_MS / 1000);
        hov_err e = pump(d, POLL_MS, err);
        if (e != HOV_OK)
            return e;
    }
    return HOV_OK;
}

/* ------------------------------------------------------------- set-up --- */

static hov_err
open_client(demo *d, int i, hov_error *err)
{
    hov_client_opts o = {0};
    o.agency = client_specs[i].agency;
    o.name = client_specs[i].name;
    o.consume = client_specs[i].consume;
    /* With --keys, each client speaks CURVE with its agency's key, as the
     * adapters do: DIR/<agency>.key, and the hub's public key DIR/hub.pub
     * (handover-ctl keygen writes both). */
    char server[HOV_CURVE_KEY_Z85], pub[HOV_CURVE_KEY_Z85],
        sec[HOV_CURVE_KEY_Z85], path[1024];
    if (d->keys != NULL) {
        snprintf(path, sizeof path, "%s/hub.pub", d->keys);
        hov_err ke = hov_curve_keyfile_read(path, server, NULL, err);
        if (ke == HOV_OK) {
            snprintf(path, sizeof path, "%s/%s.key", d->keys, o.agency);
            ke = hov_curve_keyfile_read(path, pub, sec, err);
        }
        if (ke != HOV_OK)
            return ke;
        o.curve_server_key = server;
        o.curve_public_key = pub;
        o.curve_secret_key = sec;
    }
    hov_err e = hov_client_new(&d->c[i], &o, err);
    sodium_memzero(sec, sizeof sec);
    if (e != HOV_OK)
        return e;
    hov_error cerr = {0};
    if (hov_client_connect(d->c[i], d->endpoint, &cerr) != HOV_OK)
        return hov_fail(err, cerr.code, cerr.cause,
                        "cannot connect to the hub: %s (an endpoint looks "
                        "like %s)",
                        cerr.msg, DEFAULT_ENDPOINT);
    d->pfd[i].events = POLLIN;
    return hov_client_fd(d->c[i], &d->pfd[i].fd, err);
}

static size_t
records_per_round(void)
{
    size_t n = N_STEPS;
    for (size_t i = 0; i < N_STEPS; i++)
        if (script[i].answered_by)
            n++;
    return n;
}

static hov_err
demo_open(demo *d, hov_error *err)
{
    d->cap = (size_t)d->rounds * records_per_round();
    d->recs = calloc(d->cap, sizeof *d->recs);
    if (d->recs == NULL)
        return hov_fail(err, HOV_ENOMEM, 0, "allocate %zu records", d->cap);
    hov_err e = hov_map_new(&d->by_id, err);
    for (int i = 0; i < N_CLIENTS && e == HOV_OK; i++)
        e = open_client(d, i, err);
    return e;
}

static void
demo_close(demo *d)
{
    for (int i = 0; i < N_CLIENTS; i++)
        hov_client_free(d->c[i]);
    for (size_t i = 0; i < d->nrecs; i++)
        free(d->recs[i].data);
    free(d->recs);
    hov_map_free(d->by_id);
}

/* ------------------------------------------------------------ the play --- */

static hov_err
play_round(demo *d, int round, hov_error *err)
{
    printf("\nround %d of %d\n", round, d->rounds);
    for (size_t i = 0; i < N_STEPS; i++) {
        record *r = NULL;
        hov_err e = raise_step(d, round, &script[i], &r, err);
        if (e != HOV_OK)
            return e;
        uint64_t until = hov_mono_ms() + STEP_WAIT_MS;
        e = run_until(d, r, until < d->deadline ? until : d->deadline, err);
        if (e != HOV_OK)
            return e;
    }
    return HOV_OK;
}

static void
report_record(const record *r)
{
    char who[120];
    snprintf(who, sizeof who, "round %d, %s %s (event %s)", r->round, r->type,
             nhs_shown(r->nhs), r->event_id);
    if (r->state == R_WAITING) {
        printf("  %s: no Ack or Nak from the hub: %s\n", who, r->what);
        return;
    }
    for (size_t i = 0; i < r->n_expect; i++)
        if (r->routed[i] && !r->got[i])
            printf("  %s: never delivered to %s: %s\n", who, r->expect[i],
                   r->what);
    /* An outcome not yet delivered is reported as a record of its own. */
    int k = r->step && r->step->answered_by
                ? expect_index(r, r->step->answered_by)
                : -1;
    if (k >= 0 && r->got[k] && r->outcome == NULL)
        printf("  %s: %s received it but sent no outcome\n", who,
               r->step->answered_by);
}

static void
report_missing(const demo *d)
{
    printf("\nstill missing after %d s:\n", RUN_LIMIT_MS / 1000);
    for (size_t i = 0; i < d->nrecs; i++)
        if (!rec_finished(&d->recs[i]))
            report_record(&d->recs[i]);
}

static void
row(const char *what, unsigned n, const char *note)
{
    printf("  %-24s %6u%s%s\n", what, n, note[0] ? "   " : "", note);
}

static void
print_summary(const demo *d)
{
    static const char *agency[N_AGENCIES] = {"gp", "nursing", "social",
                                             "voluntary"};
    char note[160];
    printf("\nsummary\n  %-24s %6s\n", "what", "count");
    snprintf(note, sizeof note, "%u requests, %u outcomes", d->requests,
             d->outcomes);
    row("events published", d->requests + d->outcomes, note);
    snprintf(note, sizeof note, "%u with a warning", d->warnings);
    row("accepted", d->accepted, d->warnings ? note : "");
    row("refused", d->refused, "");
    if (d->resends)
        row("resent after a temporary Nak", d->resends, "");
    for (int a = 0; a < N_AGENCIES; a++) {
        char what[40];
        snprintf(what, sizeof what, "deliveries to %s", agency[a]);
        row(what, d->delivered[a], "");
    }
    if (d->redelivered)
        row("delivered again", d->redelivered, "at-least-once: not counted");
    if (d->foreign)
        row("from an earlier run", d->foreign, "settled, not counted");
    snprintf(note, sizeof note, "of %u expected", d->outcomes_expected);
    row("outcomes returned", d->outcomes_returned, note);
    row("dead letters expected", d->dead_expected,
        "GP copies for unconfigured practice " UNCONFIGURED_GP
        ": the hub holds them for an operator");
}

static int
play(demo *d)
{
    hov_error err = {0};
    hov_err e = demo_open(d, &err);
    if (e == HOV_OK) {
        printf("connecting to the hub at %s\n", d->endpoint);
        e = wait_for_hub(d, &err);
    }
    for (int round = 1; e == HOV_OK && round <= d->rounds; round++)
        e = play_round(d, round, &err);
    if (e == HOV_OK)
        e = run_until(d, NULL, d->deadline, &err);
    if (e != HOV_OK) {
        fprintf(stderr, "handover-demo: %s\n", err.msg);
        return 1;
    }
    bool done = all_finished(d);
    if (!done)
        report_missing(d);
    print_summary(d);
    if (d->surprises)
        printf("\n%u result(s) differed from the script: see the lines "
               "marked UNEXPECTED above\n",
               d->surprises);
    return done && d->surprises == 0 ? 0 : 1;
}

/* ------------------------------------------------------------ arguments */

static void
usage(FILE *f)
{
    fprintf(f,
            "usage: handover-demo [--endpoint EP] [--rounds N] [--keys DIR]\n"
            "  -e, --endpoint EP   the hub's endpoint (default %s)\n"
            "  -k, --keys DIR      speak CURVE: the hub's public key "
            "DIR/hub.pub and each\n"
            "                      agency's key pair DIR/<agency>.key "
            "(handover-ctl keygen)\n"
            "  -r, --rounds N      rounds of events, 1 to %d (default 1)\n"
            "  -h, --help\n"
            "Plays GP, nursing, social care and voluntary sector clients "
            "against a running\nhandover-hub and exits 0 once every "
            "expected delivery and outcome has arrived.\n",
            DEFAULT_ENDPOINT, MAX_ROUNDS);
}

static int
parse_rounds(const char *s, int *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v < 1 || v > MAX_ROUNDS) {
        fprintf(stderr,
                "handover-demo: --rounds wants a number from 1 to %d, not "
                "'%s'\n",
                MAX_ROUNDS, s);
        return -1;
    }
    *out = (int)v;
    return 0;
}

/* 0: run; 1: done (help); 2: bad usage. */
static int
parse_args(int argc, char **argv, demo *d)
{
    static const struct option opts[] = {
        {"endpoint", required_argument, 0, 'e'},
        {"rounds", required_argument, 0, 'r'},
        {"keys", required_argument, 0, 'k'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "e:r:k:h", opts, NULL)) != -1) {
        if (c == 'e')
            d->endpoint = optarg;
        else if (c == 'k')
            d->keys = optarg;
        else if (c == 'r' && parse_rounds(optarg, &d->rounds) != 0)
            return 2;
        else if (c == 'h') {
            usage(stdout);
            return 1;
        } else if (c != 'r') {
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "handover-demo: unexpected argument '%s'\n",
                argv[optind]);
        usage(stderr);
        return 2;
    }
    return 0;
}

int
main(int argc, char **argv)
{
    demo d;
    memset(&d, 0, sizeof d);
    d.endpoint = DEFAULT_ENDPOINT;
    d.rounds = 1;
    hov_log_set_name("handover-demo");
    setvbuf(stdout, NULL, _IOLBF, 0);
    int rc = parse_args(argc, argv, &d);
    if (rc != 0)
        return rc == 1 ? 0 : 2;
    d.deadline = hov_mono_ms() + RUN_LIMIT_MS;
    rc = play(&d);
    demo_close(&d);
    return rc;
}
