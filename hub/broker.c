#include "broker.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "audit.h"
#include "batch.h"
#include "commit.h"
#include "handover/client.h"
#include "handover/frame.h"
#include "handover/ident.h"
#include "handover/log.h"
#include "handover/map.h"
#include "handover/str.h"
#include "handover/timeutil.h"
#include "overdue.h"
#include "queue.h"
#include "route.h"
#include "status.h"
#include "store.h"
#include "validate.h"
#include "zap.h"

#define SESSION_ID_MAX BATCH_PEER_MAX
/* Frames this much over max_event_bytes are refused unread (Nak). */
#define FRAME_OVERHEAD (64 * 1024)

typedef struct session {
    uint8_t id[SESSION_ID_MAX];
    size_t idlen;
    config_agency agency;
    char client[64];
    bool consume;
    unsigned credit;
    uint64_t last_rx_ms; /* monotonic */
    uint64_t last_tx_ms;
    bool gone; /* the peer's connection is gone: drop at the next timers */
    queue_list inflight;
} session;

struct broker {
    const config *cfg;
    store *st;
    void *ctx;
    void *sock;
    hov_map *sessions; /* routing id -> session */
    queue queues[AGENCY_COUNT];
    batch batch;           /* the batch being staged */
    batch *stage;          /* &batch */
    hov_map *inflight_ids; /* event id + agency -> deliveries in flight */
    status *status;        /* the status socket (hub/status.h) */
    zap *zap;              /* CURVE's ZAP handler; NULL: CURVE off */
    char instance[37];
    validate_opts vopts;
    uint64_t next_timeout_scan_ms;
    uint64_t last_work_ms;   /* monotonic: the last Publish or Settle */
    uint64_t merge_retry_ms; /* monotonic: no idle merge before this */
    int full_checked;        /* -1: not yet this batch; else store_near_full */
    /* counters for the periodic summary */
    uint64_t n_accepted, n_duplicate, n_nak, n_delivered, n_retry, n_dead,
        n_commits;
    uint64_t last_summary_ms;
    uint64_t us_commit, us_apply, us_read, us_dispatch, us_poll; /* profiling */
    uint64_t summary_sig;
};

static const char *
nz(const char *s)
{
    return s ? s : "";
}

/* Deliveries in flight per event and agency, for an outcome that may
 * arrive before its event's Settle (the commit never looks at queues). */
static size_t
inflight_key(char *k, size_t cap, const char *event_id, unsigned agency)
{
    size_t n = hov_strlcpy(k, cap - 2, event_id);
    if (n > cap - 3)
        n = cap - 3;
    k[n++] = '/';
    k[n++] = (char)('0' + agency % 10); /* on the hot path: no snprintf */
    k[n] = '\0';
    return n;
}

static void
inflight_add(broker *b, const queue_item *it, int delta)
{
    char k[64];
    size_t kl = inflight_key(k, sizeof k, it->event_id, it->queue);
    uintptr_t n = (uintptr_t)hov_map_get(b->inflight_ids, k, kl);
    n = delta > 0 ? n + 1 : n > 0 ? n - 1 : 0;
    hov_error err = {0};
    if (n == 0)
        hov_map_del(b->inflight_ids, k, kl);
    else if (hov_map_put(b->inflight_ids, k, kl, (void *)n, &err) != HOV_OK)
        hov_warn("in-flight index: %s", err.msg); /* only costs an AR */
}

static bool
inflight_has(broker *b, const char *event_id, config_agency agency)
{
    char k[64];
    size_t kl = inflight_key(k, sizeof k, event_id, agency);
    return hov_map_get(b->inflight_ids, k, kl) != NULL;
}

/* What the commit needs of a delivery being settled. */
static void
snap_fill(settle_snap *sn, const queue_item *it)
{
    sn->queue = it->queue;
    sn->seq = it->seq;
    sn->event_seq = it->event_seq;
    sn->attempts = it->attempts;
    sn->enqueued_ms = it->enqueued_ms;
    hov_strlcpy(sn->event_id, sizeof sn->event_id, it->event_id);
    hov_strlcpy(sn->dest, sizeof sn->dest, it->dest);
    hov_strlcpy(sn->view, sizeof sn->view, it->view);
    hov_strlcpy(sn->patient, sizeof sn->patient, queue_item_patient(it));
}

static uint64_t
delivery_id(unsigned queue, uint64_t seq)
{
    return ((uint64_t)queue << 56) | seq;
}

static bool
code_is_temporary(hov_err c)
{
    return c == HOV_ESTOREFULL || c == HOV_EREPLYTOLATER ||
           c == HOV_EUNAVAILABLE || c == HOV_ETIMEDOUT || c == HOV_EIO ||
           c == HOV_ESTORE || c == HOV_ENOMEM;
}

/* ------------------------------------------------------------ replies --- */

static void
send_to(broker *b, const uint8_t *id, size_t idlen, const Handover__Frame *f,
        const char *what)
{
    hov_error err = {0};
    session *s = hov_map_get(b->sessions, id, idlen);
    if (hov_frame_send(b->sock, id, idlen, f, &err) != HOV_OK) {
        /* The peer is gone or not reading. An Ack it misses makes it
         * resend, which deduplication absorbs; a Nak it misses it would
         * have had to resend anyway. With ZMQ_ROUTER_MANDATORY, "host
         * unreachable" means its connection is gone: drop the session and
         * hand its deliveries on, rather than wait for heartbeats. */
        if (s && err.cause == EHOSTUNREACH) {
            s->gone = true;
        } else {
            hov_warn("send %s failed peer=%.*s: %s", what, (int)idlen,
                     (const char *)id, err.msg);
        }
    }
    if (s)
        s->last_tx_ms = hov_mono_ms();
}

static void
send_nak(broker *b, const uint8_t *id, size_t idlen, uint64_t seq,
         const char *event_id, hov_err code, const char *reason)
{
    Handover__Nak nak = HANDOVER__NAK__INIT;
    nak.seq = seq;
    nak.event_id = (char *)nz(event_id);
    nak.code = (Handover__NakCode)code;
    nak.reason = (char *)reason;
    nak.temporary = code_is_temporary(code);
    Handover__Frame f = HANDOVER__FRAME__INIT;
    f.kind_case = HANDOVER__FRAME__KIND_NAK;
    f.nak = &nak;
    b->n_nak++;
    hov_warn("nak event=%s seq=%llu peer=%.*s code=%s reason=\"%s\"",
             event_id && *event_id ? event_id : "-", (unsigned long long)seq,
             (int)idlen, (const char *)id, hov_errname(code), reason);
    send_to(b, id, idlen, &f, "nak");
}

static void
send_ack(broker *b, op *o)
{
    Handover__Ack ack = HANDOVER__ACK__INIT;
    char *routed[ROUTE_MAX_DESTS];
    size_t n = 0;
    ack.seq = o->seq;
    ack.event_id = o->ev->event_id;
    ack.duplicate = o->duplicate;
    ack.warning = o->routes.warning;
    for (size_t i = 0; i < o->routes.n; i++)
        if (!o->routes.dest[i].dead)
            routed[n++] = o->routes.dest[i].code;
    ack.routed_to = routed;
    ack.n_routed_to = n;
    Handover__Frame f = HANDOVER__FRAME__INIT;
    f.kind_case = HANDOVER__FRAME__KIND_ACK;
    f.ack = &ack;
    send_to(b, o->sid, o->sidlen, &f, "ack");
}

/* --------------------------------------------------------------- staging */

/* The caller checked !batch_full(b->stage). */
static op *
op_new(broker *b, op_kind kind)
{
    return batch_op_new(b->stage, kind);
}

static void
stage_reject_audit(broker *b, const char *event_id, const char *nhs,
                   const char *reason)
{
    if (batch_full(b->stage))
        return; /* logged by send_nak; the audit record is best effort */
    op *o = op_new(b, OP_AUDIT_REJECT);
    snprintf(o->event_id, sizeof o->event_id, "%s", nz(event_id));
    snprintf(o->nhs, sizeof o->nhs, "%s", nz(nhs));
    snprintf(o->reason, sizeof o->reason, "%s", reason);
}

static void
handle_publish(broker *b, session *s, const Handover__Publish *pub)
{
    char reason[256];
    if (pub->event.len > b->cfg->max_event_bytes) {
        snprintf(reason, sizeof reason,
                 "event of %zu bytes exceeds the limit of %zu bytes "
                 "(max_event_bytes)",
                 pub->event.len, b->cfg->max_event_bytes);
        send_nak(b, s->id, s->idlen, pub->seq, NULL, HOV_ETOOBIG, reason);
        return;
    }
    Handover__Event *ev = handover__event__unpack(
        &b->stage->pb_alloc, pub->event.len, pub->event.data);
    if (ev == NULL) {
        snprintf(reason, sizeof reason,
                 "Publish.event (%zu bytes) is not a valid handover.Event "
                 "protobuf",
                 pub->event.len);
        send_nak(b, s->id, s->idlen, pub->seq, NULL, HOV_EMALFORMED, reason);
        return;
    }
    hov_error err = {0};
    const char *nhs = ev->patient ? nz(ev->patient->nhs_number) : "";
    const char *id = hov_uuid_valid(nz(ev->event_id)) ? ev->event_id : "";
    hov_err rc = validate_event(ev, &b->vopts, &err);
    if (rc == HOV_OK && b->full_checked < 0)
        b->full_checked = store_near_full(b->st);
    if (rc == HOV_OK && b->full_checked) {
        size_t used, map;
        store_usage(b->st, &used, &map);
        rc = hov_fail(&err, HOV_ESTOREFULL, 0,
                      "temporarily unavailable; resend: the event store is "
                      "full (%zu of %zu KiB used, the rest is kept for "
                      "deliveries to drain); raise map_size_mb or drain the "
                      "queues",
                      used >> 10, map >> 10);
    }
    if (rc == HOV_OK) {
        const char *org = ev->source->org->code;
        const config_org *o = config_org_find(b->cfg, org);
        if (o == NULL)
            rc = hov_fail(&err, HOV_EIMPERSONATE, 0,
                          "agency %s may not publish as %s: it is not a "
                          "configured organisation",
                          config_agency_name(s->agency), org);
        else if (o->agency != s->agency)
            rc = hov_fail(&err, HOV_EIMPERSONATE, 0,
                          "agency %s may not publish as %s, an organisation "
                          "of agency %s",
                          config_agency_name(s->agency), org,
                          config_agency_name(o->agency));
    }
    if (rc != HOV_OK) {
        send_nak(b, s->id, s->idlen, pub->seq, id, rc, err.msg);
        /* A temporary refusal is logged, not audited: when the store is
         * full, audit records would eat the room kept for draining. */
        if (!code_is_temporary(rc))
            stage_reject_audit(b, id, nhs, err.msg);
        return; /* ev lives in the batch arena */
    }
    op *o = op_new(b, OP_PUBLISH);
    memcpy(o->sid, s->id, s->idlen);
    o->sidlen = s->idlen;
    o->agency = s->agency;
    o->seq = pub->seq;
    o->ev = ev;
    o->raw = pub->event.data; /* the frame is in the batch arena too */
    o->raw_len = pub->event.len;
    if (ev->body_case == HANDOVER__EVENT__BODY_OUTCOME)
        o->answered_inflight = inflight_has(b, ev->in_reply_to, s->agency);
}

static void
session_requeue_all(broker *b, session *s, const char *why)
{
    uint64_t now = hov_now_ms();
    size_t n = 0;
    while (s->inflight.head) {
        queue_item *it = s->inflight.head;
        queue_list_remove(&s->inflight, it);
        it->owner = NULL;
        if (it->state == QS_SETTLING)
            continue; /* its staged settle decides (and counts it out) */
        queue *q = &b->queues[it->queue];
        q->inflight--;
        inflight_add(b, it, -1);
        queue_requeue(q, it, now);
        n++;
    }
    if (n)
        hov_info("requeue client=%s agency=%s deliveries=%zu reason=\"%s\"",
                 s->client, config_agency_name(s->agency), n, why);
}

static void
session_drop(broker *b, session *s, const char *why)
{
    hov_warn("adapter down client=%s agency=%s reason=\"%s\"", s->client,
             config_agency_name(s->agency), why);
    status_on_adapter(b->status, s->client, s->agency, s->consume, false);
    session_requeue_all(b, s, why);
    hov_map_del(b->sessions, s->id, s->idlen);
    free(s);
}

static void
handle_hello(broker *b, const uint8_t *id, size_t idlen,
             const Handover__Hello *h, int key_agency)
{
    char reason[256];
    int agency = config_agency_parse(nz(h->agency));
    if (h->protocol != HOV_PROTOCOL) {
        snprintf(reason, sizeof reason,
                 "protocol %u is not supported: this hub speaks protocol %d",
                 h->protocol, HOV_PROTOCOL);
        send_nak(b, id, idlen, 0, NULL, HOV_EPROTO, reason);
        return;
    }
    if (agency < 0) {
        snprintf(reason, sizeof reason,
                 "Hello.agency '%.40s' is not gp, nursing, social or "
                 "voluntary",
                 nz(h->agency));
        send_nak(b, id, idlen, 0, NULL, HOV_EINVAL, reason);
        return;
    }
    if (key_agency >= 0 && agency != key_agency) {
        /* With CURVE the key decides the agency: a Hello that names
         * another is an agency trying to publish as, or read the queue
         * of, someone else. No session is opened. */
        hov_warn("refused hello client=%.*s: its CURVE key belongs to "
                 "agency %s but it says %s",
                 (int)idlen, (const char *)id,
                 config_agency_name((config_agency)key_agency),
                 config_agency_name((config_agency)agency));
        snprintf(reason, sizeof reason,
                 "this client's CURVE key belongs to agency %s; it may not "
                 "connect as %s",
                 config_agency_name((config_agency)key_agency),
                 config_agency_name((config_agency)agency));
        send_nak(b, id, idlen, 0, NULL, HOV_EPERM, reason);
        return;
    }
    session *s = hov_map_get(b->sessions, id, idlen);
    if (s != NULL) {
        /* The same client reconnected (a restart, or a network blip): what
         * it had not settled goes back to the queue at once. */
        session_requeue_all(b, s, "client reconnected");
        if (s->agency != (config_agency)agency) {
            session_drop(b, s, "client changed agency");
            s = NULL;
        }
    }
    if (s == NULL) {
        s = calloc(1, sizeof *s);
        hov_error err = {0};
        if (s == NULL ||
            hov_map_put(b->sessions, id, idlen, s, &err) != HOV_OK) {
            free(s);
            send_nak(b, id, idlen, 0, NULL, HOV_ENOMEM,
                     "hub out of memory: cannot open a session");
            return;
        }
        memcpy(s->id, id, idlen);
        s->idlen = idlen;
    }
    s->agency = (config_agency)agency;
    s->consume = h->consume;
    s->credit = h->credit;
    s->last_rx_ms = hov_mono_ms();
    snprintf(s->client, sizeof s->client, "%.*s", (int)idlen, (const char *)id);
    hov_info("adapter up client=%s agency=%s consume=%s credit=%u", s->client,
             config_agency_name(s->agency), s->consume ? "yes" : "no",
             s->credit);
    status_on_adapter(b->status, s->client, s->agency, s->consume, true);

    Handover__Hello reply = HANDOVER__HELLO__INIT;
    reply.protocol = HOV_PROTOCOL;
    reply.agency = (char *)config_agency_name(s->agency);
    reply.client = (char *)"handover-hub";
    reply.hub_instance = b->instance;
    reply.heartbeat_ms = b->cfg->heartbeat_ms;
    Handover__Frame f = HANDOVER__FRAME__INIT;
    f.kind_case = HANDOVER__FRAME__KIND_HELLO;
    f.hello = &reply;
    send_to(b, id, idlen, &f, "hello");
}

static void
handle_settle(broker *b, session *s, const Handover__Settle *st)
{
    unsigned qn = (unsigned)(st->delivery_id >> 56);
    uint64_t seq = st->delivery_id & ((1ULL << 56) - 1);
    queue_item *it = qn < AGENCY_COUNT ? queue_find(&b->queues[qn], seq) : NULL;
    if (it == NULL || it->state != QS_INFLIGHT || it->owner != s) {
        /* Late, repeated, or for a delivery already handed to another
         * session: the current owner's settle decides. */
        hov_info("settle ignored client=%s delivery=%llu: not in flight to "
                 "this client",
                 s->client, (unsigned long long)st->delivery_id);
        return;
    }
    if (st->outcome != HANDOVER__SETTLE_OUTCOME__SETTLE_DONE &&
        st->outcome != HANDOVER__SETTLE_OUTCOME__SETTLE_RETRY &&
        st->outcome != HANDOVER__SETTLE_OUTCOME__SETTLE_REJECTED) {
        char reason[128];
        snprintf(reason, sizeof reason,
                 "Settle.outcome %d is not done, retry or rejected",
                 (int)st->outcome);
        send_nak(b, s->id, s->idlen, 0, it->event_id, HOV_EINVAL, reason);
        return;
    }
    op *o = op_new(b, OP_SETTLE);
    o->item = it;
    snap_fill(&o->snap, it);
    o->outcome = st->outcome;
    hov_strlcpy(o->reason, sizeof o->reason, nz(st->reason));
    it->state = QS_SETTLING;
}

/* Read the Publish seq from a frame too big to decode, so the Nak can name
 * it: Frame field 2 (publish) is length-delimited, and Publish field 1 is
 * the varint seq. Returns 0 when the bytes do not have that shape. */
static uint64_t
peek_publish_seq(const uint8_t *p, size_t len)
{
    size_t i = 0;
    if (len < 2 || p[i++] != ((2 << 3) | 2))
        return 0;
    for (int shift = 0; i < len && shift < 64; shift += 7) /* length */
        if (!(p[i++] & 0x80))
            break;
    if (i >= len || p[i++] != ((1 << 3) | 0))
        return 0;
    uint64_t v = 0;
    for (int shift = 0; i < len && shift < 64; shift += 7) {
        v |= (uint64_t)(p[i] & 0x7f) << shift;
        if (!(p[i++] & 0x80))
            return v;
    }
    return 0;
}

/* With CURVE, every frame carries the agency of its connection's key
 * (key_agency, from the ZAP handler's User-Id). A session whose agency
 * differs was opened by another key under the same routing id, which
 * ZMQ_ROUTER_HANDOVER has just handed to this connection: the session is
 * dropped (its deliveries go back to the queue) so nothing more is sent
 * to this connection in its name. Returns the session to use, or NULL. */
static session *
session_check_key(broker *b, session *s, int key_agency)
{
    if (s == NULL || key_agency < 0 || s->agency == (config_agency)key_agency)
        return s;
    hov_warn("refused frame client=%s: the session is agency %s but this "
             "connection's CURVE key belongs to %s",
             s->client, config_agency_name(s->agency),
             config_agency_name((config_agency)key_agency));
    session_drop(b, s, "routing id taken by another agency's key");
    return NULL;
}

static void
handle_frame(broker *b, const uint8_t *id, size_t idlen, const uint8_t *data,
             size_t len, int key_agency)
{
    char reason[256];
    session *s = hov_map_get(b->sessions, id, idlen);
    s = session_check_key(b, s, key_agency);
    if (len > b->cfg->max_event_bytes + FRAME_OVERHEAD) {
        snprintf(reason, sizeof reason,
                 "frame of %zu bytes exceeds the limit of %zu bytes "
                 "(max_event_bytes)",
                 len, b->cfg->max_event_bytes);
        send_nak(b, id, idlen, peek_publish_seq(data, len), NULL, HOV_ETOOBIG,
                 reason);
        return;
    }
    Handover__Frame *f = NULL;
    hov_error err = {0};
    /* Decoded into the batch arena: no malloc and free per frame. */
    ProtobufCAllocator *alloc = &b->stage->pb_alloc;
    if (hov_frame_decode(data, len, alloc, &f, &err) != HOV_OK) {
        send_nak(b, id, idlen, 0, NULL, err.code, err.msg);
        return;
    }
    if (f->kind_case == HANDOVER__FRAME__KIND_HELLO) {
        handle_hello(b, id, idlen, f->hello, key_agency);
    } else if (s == NULL) {
        uint64_t seq =
            f->kind_case == HANDOVER__FRAME__KIND_PUBLISH ? f->publish->seq : 0;
        send_nak(b, id, idlen, seq, NULL, HOV_ESESSION,
                 "no session for this client (the hub restarted, or the "
                 "client never said Hello): send Hello, then resend");
    } else {
        s->last_rx_ms = hov_mono_ms();
        switch (f->kind_case) {
        case HANDOVER__FRAME__KIND_PUBLISH:
            b->last_work_ms = s->last_rx_ms;
            handle_publish(b, s, f->publish);
            break;
        case HANDOVER__FRAME__KIND_SETTLE:
            b->last_work_ms = s->last_rx_ms;
            handle_settle(b, s, f->settle);
            break;
        case HANDOVER__FRAME__KIND_CREDIT:
            s->credit = f->credit->credit;
            break;
        case HANDOVER__FRAME__KIND_HEARTBEAT:
            break;
        default:
            snprintf(reason, sizeof reason,
                     "a %s frame is sent by the hub, never to it",
                     hov_frame_kind_name(f->kind_case));
            send_nak(b, id, idlen, 0, NULL, HOV_EFRAME, reason);
            break;
        }
    }
    handover__frame__free_unpacked(f, alloc);
}

/* ------------------------------------------------------------ answering */

static void
effects_publish(broker *b, op *o, uint64_t now)
{
    if (o->refused_full) {
        char reason[256];
        size_t used, map;
        store_usage(b->st, &used, &map);
        snprintf(reason, sizeof reason,
                 "temporarily unavailable; resend: the event store is full "
                 "(%zu of %zu MiB used); raise map_size_mb or drain the "
                 "queues",
                 used >> 20, map >> 20);
        send_nak(b, o->sid, o->sidlen, o->seq, o->ev->event_id, HOV_ESTOREFULL,
                 reason);
        return;
    }
    if (o->result != HOV_OK) {
        send_nak(b, o->sid, o->sidlen, o->seq, o->ev->event_id, o->result,
                 o->reason);
        return;
    }
    for (size_t i = 0; i < o->routes.n; i++) {
        route_dest *d = &o->routes.dest[i];
        if (!d->dead || o->duplicate)
            continue;
        b->n_dead++;
        hov_warn("dead-lettered event=%s dest=%s reason=\"%s\"",
                 o->ev->event_id, d->code, d->reason);
    }
    uint64_t wall = hov_now_ms();
    for (size_t i = 0; i < o->n_items; i++) {
        queue_item *it = o->items[i];
        hov_error err = {0};
        if (queue_add(&b->queues[it->queue], it, o->ev->patient->nhs_number,
                      wall, &err) != HOV_OK) {
            /* Durable already: the hub's next start loads it again. */
            hov_errorf("queue event=%s dest=%s: %s (delivered after a "
                       "restart)",
                       it->event_id, it->dest, err.msg);
            queue_item_free(it);
        }
    }
    o->n_items = 0;
    if (o->duplicate) {
        b->n_duplicate++;
    } else {
        b->n_accepted++;
        status_on_publish(b->status, &o->routes);
    }
    send_ack(b, o);
    (void)now;
}

static void
effects_settle(broker *b, op *o)
{
    queue_item *it = o->item;
    queue *q = &b->queues[it->queue];
    uint64_t wall = hov_now_ms();
    inflight_add(b, it, -1);
    q->inflight--; /* in flight until now, whether or not its owner left */
    if (it->owner)
        queue_list_remove(&it->owner->inflight, it);
    it->owner = NULL;
    if (o->failed) {
        /* Not recorded: deliver it again later. */
        queue_requeue(q, it, wall);
        return;
    }
    if (o->outcome == HANDOVER__SETTLE_OUTCOME__SETTLE_DONE) {
        b->n_delivered++;
        status_on_settle(b->status, it->queue, STATUS_SETTLED_DONE);
        queue_remove(q, it, wall);
    } else if (o->to_dead) {
        b->n_dead++;
        hov_warn("dead-lettered event=%s dest=%s attempts=%u", it->event_id,
                 it->dest, it->attempts);
        status_on_settle(b->status, it->queue, STATUS_SETTLED_DEAD);
        queue_remove(q, it, wall);
    } else {
        b->n_retry++;
        it->not_before_ms = o->not_before_ms;
        queue_requeue(q, it, wall);
    }
}

/* Answer a committed batch: Acks and Naks, new deliveries queued, settles
 * applied in memory. Everything it did is durable by now. Returns the
 * batch's fatal error, if the store broke under it. */
static hov_err
complete(broker *b, batch *bt, hov_error *err)
{
    uint64_t now = hov_now_ms();
    b->n_commits++;
    b->us_commit += bt->commit_us;
    for (size_t i = 0; i < bt->nops; i++) {
        op *o = &bt->ops[i];
        if (o->kind == OP_PUBLISH) {
            effects_publish(b, o, now);
            o->ev = NULL; /* in the arena, reset below */
        } else if (o->kind == OP_SETTLE) {
            effects_settle(b, o);
        }
    }
    hov_err e = HOV_OK;
    if (bt->fatal != HOV_OK)
        e = hov_fail(err, bt->fatal, bt->fatal_err.cause, "%s",
                     bt->fatal_err.msg);
    batch_reset(bt);
    return e;
}

/* A quiet spell (no Publish or Settle for a moment) is the time to merge
 * the ids gathered so far, so that under load the merges that block the
 * loop for a moment stay rare. A gap of one poll in a burst is not quiet:
 * merging a few thousand ids then would scatter the index writes again.
 * Heartbeats are not work: counting them, a hub with adapters connected
 * was never quiet and kept every new id in memory until ids_merge_at. A
 * steady trickle (5 a second, the county's peak hour at 100 times) never
 * leaves a whole second either, so a gap of MERGE_QUIET_MS, which a
 * benchmark-like burst never leaves, is quiet enough: the ids then merge
 * about every 1,024 events and the hub's memory stays flat.
 *
 * A failed merge is not retried for a while: the loop comes here up to
 * ten times a second, and on a failing disk each try would redo the whole
 * sorted merge and log the same line again. The ids stay durable in the
 * recent log meanwhile. When the failure broke the store (MDB_PANIC)
 * nothing can be written any more: returns the fatal error, so the hub
 * stops with the cause now rather than at the next publish. */
#define IDLE_MERGE_RETRY_MS 5000
#define MERGE_QUIET_MS      150

static hov_err
idle_merge(broker *b, hov_error *fatal)
{
    uint64_t now = hov_mono_ms();
    if (store_recent_count(b->st) < 1024 || now < b->merge_retry_ms ||
        now - b->last_work_ms < MERGE_QUIET_MS)
        return HOV_OK;
    hov_error err = {0};
    size_t merged = 0;
    uint64_t t0 = hov_mono_us();
    if (store_merge_ids(b->st, true, &merged, &err) != HOV_OK) {
        if (store_broken(b->st))
            return hov_fail(fatal, HOV_ESTORE, err.cause,
                            "the store can no longer be written safely "
                            "(merge of the ids index: %s); restart the hub "
                            "once the cause is fixed",
                            err.msg);
        b->merge_retry_ms = now + IDLE_MERGE_RETRY_MS;
        hov_warn("merge of the ids index postponed for %d s: %s",
                 IDLE_MERGE_RETRY_MS / 1000, err.msg);
    } else if (merged > 0) {
        hov_info("merged ids=%zu into the ids index in %llu ms (idle)", merged,
                 (unsigned long long)(hov_mono_us() - t0) / 1000);
    }
    return HOV_OK;
}

/* Phase 3 and 4 of the loop: commit the staged batch in one durable
 * transaction, then answer it. Frames that arrive meanwhile wait in
 * ZeroMQ's queue and make the next batch. */
static hov_err
commit_and_answer(broker *b, hov_error *err)
{
    b->full_checked = -1;
    if (b->stage->nops == 0) {
        batch_reset(b->stage); /* events refused before staging */
        return HOV_OK;
    }
    commit_ctx ctx = {b->cfg, b->st};
    commit_batch(&ctx, b->stage);
    return complete(b, b->stage, err);
}

/* ------------------------------------------------------------- delivery */

static hov_err
dispatch_one(broker *b, store_txn *txn, session *s, queue_item *it,
             const char *today)
{
    const uint8_t *stored, *body;
    size_t slen, blen;
    bool owned;
    hov_error err = {0};
    hov_err e = store_event_read(txn, it->event_seq, &stored, &slen, &err);
    if (e != HOV_OK) {
        hov_errorf("deliver event=%s dest=%s: cannot read the event: %s",
                   it->event_id, it->dest,
                   e == HOV_ENOTFOUND ? "not in the store" : err.msg);
        return e == HOV_ENOTFOUND ? HOV_ESTORE : e;
    }
    e = route_view_pack(it->view, stored, slen, today, &body, &blen, &owned,
                        &err);
    if (e != HOV_OK) {
        hov_errorf("deliver event=%s dest=%s: %s", it->event_id, it->dest,
                   err.msg);
        return e;
    }
    Handover__Deliver d = HANDOVER__DELIVER__INIT;
    d.delivery_id = delivery_id(it->queue, it->seq);
    d.event_id = it->event_id;
    d.destination = it->dest;
    d.attempt = it->attempts + 1;
    d.event.data = (uint8_t *)body;
    d.event.len = blen;
    d.view = it->view;
    Handover__Frame f = HANDOVER__FRAME__INIT;
    f.kind_case = HANDOVER__FRAME__KIND_DELIVER;
    f.deliver = &d;
    e = hov_frame_send(b->sock, s->id, s->idlen, &f, &err);
    if (owned)
        free((void *)body);
    if (e != HOV_OK) {
        if (err.cause == EHOSTUNREACH)
            s->gone = true;
        return e;
    }
    s->last_tx_ms = hov_mono_ms();
    return HOV_OK;
}

/* A queue entry read from the store as an item, or NULL (out of memory). */
static queue_item *
item_from_entry(uint64_t seq, const Handover__Store__QueueEntry *e)
{
    queue_item *it = queue_item_new();
    if (it == NULL)
        return NULL;
    it->seq = seq;
    it->event_seq = e->event_seq;
    it->attempts = e->attempts;
    it->not_before_ms = e->not_before_ms;
    it->enqueued_ms = e->enqueued_ms;
    hov_strlcpy(it->event_id, sizeof it->event_id, e->event_id);
    hov_strlcpy(it->dest, sizeof it->dest, e->destination);
    hov_strlcpy(it->view, sizeof it->view, e->view[0] ? e->view : "full");
    return it;
}

static const char *
entry_patient(const Handover__Store__QueueEntry *e)
{
    return e->patient[0] ? e->patient : e->event_id;
}

/* At start: each queue's first queue_memory_max entries into memory, the
 * rest counted as spilled (read back as the queue drains). */
static hov_err
load_entry(void *arg, unsigned qn, uint64_t seq,
           const Handover__Store__QueueEntry *e, hov_error *err)
{
    broker *b = arg;
    if (qn >= AGENCY_COUNT)
        return hov_fail(err, HOV_ESTORE, 0,
                        "queue entry %llu names queue %u, which does not "
                        "exist",
                        (unsigned long long)seq, qn);
    queue_item *it = item_from_entry(seq, e);
    if (it == NULL)
        return hov_fail(err, HOV_ENOMEM, 0, "load queue");
    hov_err rc =
        queue_add(&b->queues[qn], it, entry_patient(e), hov_now_ms(), err);
    if (rc != HOV_OK)
        queue_item_free(it);
    return rc;
}

typedef struct refill_ctx {
    queue *q;
    size_t want;
    uint64_t now;
} refill_ctx;

static hov_err
refill_one(void *arg, unsigned qn, uint64_t seq,
           const Handover__Store__QueueEntry *e, hov_error *err)
{
    refill_ctx *c = arg;
    (void)qn;
    if (c->want == 0)
        return HOV_ETIMEDOUT; /* enough for now (err untouched) */
    queue_item *it = item_from_entry(seq, e);
    if (it == NULL)
        return hov_fail(err, HOV_ENOMEM, 0, "read queue %u back", c->q->id);
    hov_err rc = queue_unspill(c->q, it, entry_patient(e), c->now, err);
    if (rc != HOV_OK)
        queue_item_free(it);
    c->want--;
    return rc;
}

/* Read spilled deliveries of q back from the store, in order, up to
 * queue_memory_max held. A failure leaves them spilled, tried again at the
 * next pass. Between commits: no write transaction is open. */
static void
refill_queue(broker *b, queue *q)
{
    if (!queue_wants_refill(q))
        return;
    store_txn *txn;
    hov_error err = {0};
    if (store_begin(b->st, true, &txn, &err) != HOV_OK) {
        hov_warn("queue %s: spilled deliveries not read back yet: %s",
                 config_agency_name(q->id), err.msg);
        return;
    }
    refill_ctx c = {q, q->mem_max - queue_held(q), hov_now_ms()};
    hov_err e =
        store_queue_scan_from(txn, q->id, q->spill_from, refill_one, &c, &err);
    store_abort(txn);
    if (e == HOV_OK) {
        size_t left = queue_spill_done(q);
        if (left > 0)
            hov_warn("queue %s: %zu spilled deliveries were counted but not "
                     "found in the store (the depth is corrected)",
                     config_agency_name(q->id), left);
    } else if (e != HOV_ETIMEDOUT) {
        hov_warn("queue %s: spilled deliveries not read back yet: %s",
                 config_agency_name(q->id), err.msg);
    }
}

static void
dispatch(broker *b)
{
    store_txn *txn = NULL;
    char today[11];
    hov_today_london(today);
    session *cons[64];
    for (unsigned qn = 0; qn < AGENCY_COUNT; qn++) {
        queue *q = &b->queues[qn];
        refill_queue(b, q);
        if (q->ready.count == 0 || q->paused)
            continue;
        size_t nc = 0;
        size_t pos = 0;
        void *v;
        while (nc < 64 && hov_map_next(b->sessions, &pos, NULL, NULL, &v)) {
            session *s = v;
            if (s->consume && !s->gone && s->agency == qn &&
                s->inflight.count < s->credit)
                cons[nc++] = s;
        }
        size_t rr = 0;
        while (nc > 0) {
            session *s = cons[rr % nc];
            if (s->inflight.count >= s->credit) {
                {
                    nc--;
                    cons[rr % (nc + 1)] = cons[nc];
                }
                continue;
            }
            queue_item *it = queue_pop_ready(q);
            if (it == NULL)
                break;
            if (txn == NULL) {
                hov_error err = {0};
                if (store_begin(b->st, true, &txn, &err) != HOV_OK) {
                    hov_errorf("deliver: %s", err.msg);
                    queue_requeue(q, it, 0);
                    return;
                }
            }
            hov_err e = dispatch_one(b, txn, s, it, today);
            if (e == HOV_EUNAVAILABLE) {
                /* This consumer's pipe is full or gone: try the others. */
                queue_requeue(q, it, 0);
                {
                    nc--;
                    cons[rr % (nc + 1)] = cons[nc];
                }
                continue;
            }
            if (e != HOV_OK) {
                /* Unreadable or unviewable: hold it back a while rather
                 * than spin on it; the error is logged with the event. */
                it->not_before_ms = hov_now_ms() + 60000;
                queue_requeue(q, it, 0);
                continue;
            }
            it->attempts++;
            it->state = QS_INFLIGHT;
            inflight_add(b, it, +1);
            it->owner = s;
            it->sent_ms = hov_mono_ms();
            queue_list_push_back(&s->inflight, it);
            q->inflight++;
            rr++;
        }
    }
    if (txn)
        store_abort(txn);
}

/* --------------------------------------------------------------- timers */

static void
log_summary(broker *b)
{
    hov_info("summary accepted=%llu duplicate=%llu nak=%llu delivered=%llu "
             "retried=%llu dead=%llu commits=%llu queued gp=%zu "
             "nursing=%zu social=%zu voluntary=%zu sessions=%zu",
             (unsigned long long)b->n_accepted,
             (unsigned long long)b->n_duplicate, (unsigned long long)b->n_nak,
             (unsigned long long)b->n_delivered, (unsigned long long)b->n_retry,
             (unsigned long long)b->n_dead, (unsigned long long)b->n_commits,
             b->queues[0].depth, b->queues[1].depth, b->queues[2].depth,
             b->queues[3].depth, hov_map_count(b->sessions));
    hov_debug("time_ms poll=%llu read=%llu flush=%llu (commit=%llu) "
              "dispatch=%llu",
              (unsigned long long)b->us_poll / 1000,
              (unsigned long long)b->us_read / 1000,
              (unsigned long long)b->us_apply / 1000,
              (unsigned long long)b->us_commit / 1000,
              (unsigned long long)b->us_dispatch / 1000);
}

static void
timers(broker *b)
{
    uint64_t mono = hov_mono_ms();
    uint64_t hb = b->cfg->heartbeat_ms;
    session *dead[64];
    size_t nd = 0;
    size_t pos = 0;
    void *v;
    bool scan = mono >= b->next_timeout_scan_ms;
    if (scan)
        b->next_timeout_scan_ms = mono + 200;
    while (hov_map_next(b->sessions, &pos, NULL, NULL, &v)) {
        session *s = v;
        if (s->gone || mono - s->last_rx_ms > 3 * hb + hb / 2) {
            if (nd < 64)
                dead[nd++] = s;
            continue;
        }
        if (mono - s->last_tx_ms >= hb) {
            Handover__Heartbeat h = HANDOVER__HEARTBEAT__INIT;
            h.time_ms = hov_now_ms();
            h.hub_instance = b->instance;
            Handover__Frame f = HANDOVER__FRAME__INIT;
            f.kind_case = HANDOVER__FRAME__KIND_HEARTBEAT;
            f.heartbeat = &h;
            send_to(b, s->id, s->idlen, &f, "heartbeat");
        }
        if (!scan)
            continue;
        for (queue_item *it = s->inflight.head; it && !batch_full(b->stage);
             it = it->next) {
            if (it->state != QS_INFLIGHT ||
                mono - it->sent_ms < b->cfg->settle_timeout_ms)
                continue;
            hov_warn("settle timeout event=%s dest=%s client=%s attempt=%u",
                     it->event_id, it->dest, s->client, it->attempts);
            op *o = op_new(b, OP_SETTLE);
            o->item = it;
            snap_fill(&o->snap, it);
            o->outcome = HANDOVER__SETTLE_OUTCOME__SETTLE_RETRY;
            o->timeout = true;
            it->state = QS_SETTLING;
        }
    }
    for (size_t i = 0; i < nd; i++) {
        char why[96];
        if (dead[i]->gone)
            snprintf(why, sizeof why, "connection closed");
        else
            snprintf(why, sizeof why,
                     "no frame for %llu ms (heartbeat %llu ms)",
                     (unsigned long long)(mono - dead[i]->last_rx_ms),
                     (unsigned long long)hb);
        session_drop(b, dead[i], why);
    }
    uint64_t wall = hov_now_ms();
    for (unsigned qn = 0; qn < AGENCY_COUNT; qn++)
        queue_promote(&b->queues[qn], wall);

    /* A one-line summary for the operator, when something changed. */
    uint64_t sig = b->n_accepted + b->n_nak + b->n_delivered + b->n_dead +
                   b->n_retry + b->n_duplicate;
    if (sig != b->summary_sig && mono - b->last_summary_ms >= 10000) {
        b->summary_sig = sig;
        b->last_summary_ms = mono;
        log_summary(b);
    }
}

/* Milliseconds until the next timer needs the loop. */
static long
poll_timeout(broker *b)
{
    uint64_t wall = hov_now_ms();
    uint64_t next = UINT64_MAX;
    for (unsigned qn = 0; qn < AGENCY_COUNT; qn++)
        for (queue_item *it = b->queues[qn].backoff.head; it; it = it->next)
            if (it->not_before_ms < next)
                next = it->not_before_ms;
    long t = 100;
    if (next != UINT64_MAX) {
        uint64_t d = next > wall ? next - wall : 0;
        if (d < (uint64_t)t)
            t = (long)d;
    }
    return t;
}

/* ------------------------------------------------------------ lifecycle */

/* What the status socket reads of the broker (hub/status.h). */
static void
status_counters_cb(void *arg, status_counters *out)
{
    const broker *b = arg;
    out->accepted = b->n_accepted;
    out->duplicates = b->n_duplicate;
    out->naks = b->n_nak;
    out->delivered = b->n_delivered;
    out->retried = b->n_retry;
    out->dead = b->n_dead;
}

static void
status_sessions_cb(void *arg, status_session_fn fn, void *fnarg)
{
    const broker *b = arg;
    size_t pos = 0;
    void *v;
    while (hov_map_next(b->sessions, &pos, NULL, NULL, &v)) {
        const session *s = v;
        status_session ss = {s->client,    s->agency, s->consume,
                             s->gone,      s->credit, s->inflight.count,
                             s->last_rx_ms};
        fn(fnarg, &ss);
    }
}

hov_err
broker_new(broker **out, const config *cfg, hov_error *err)
{
    broker *b = calloc(1, sizeof *b);
    if (b == NULL)
        return hov_fail(err, HOV_ENOMEM, 0, "allocate broker");
    b->cfg = cfg;
    b->vopts.allow_test_nhs_numbers = cfg->allow_test_nhs_numbers;
    hov_err e = batch_init(&b->batch, cfg->batch_max, err);
    b->stage = &b->batch;
    if (e == HOV_OK)
        e = hov_map_new(&b->sessions, err);
    if (e == HOV_OK)
        e = hov_map_new(&b->inflight_ids, err);
    for (unsigned i = 0; e == HOV_OK && i < AGENCY_COUNT; i++) {
        e = queue_init(&b->queues[i], i, err);
        b->queues[i].mem_max =
            cfg->queue_memory_max ? cfg->queue_memory_max : 1;
    }
    if (e == HOV_OK)
        e = store_new(&b->st, err);
    hov_uuid_v4(b->instance);
    if (e == HOV_OK) {
        status_hub hub = {.cfg = cfg,
                          .st = b->st,
                          .queues = b->queues,
                          .instance = b->instance,
                          .broker = b,
                          .counters = status_counters_cb,
                          .sessions = status_sessions_cb};
        e = status_new(&b->status, &hub, err);
    }
    if (e != HOV_OK) {
        broker_free(b);
        return e;
    }
    b->full_checked = -1;
    *out = b;
    return HOV_OK;
}

/* CURVE on the hub socket, with the ZAP handler bound first; or the
 * warning that it is off. */
static hov_err
hub_curve(broker *b, hov_error *err)
{
    const config *c = b->cfg;
    if (!c->curve) {
        hov_warn("curve off: the hub socket %s is plain TCP, unencrypted, "
                 "and any process that reaches it may connect as any "
                 "agency; add a curve: section (docs/architecture.md, "
                 "Security) before real patient data flows",
                 c->endpoint);
        return HOV_OK;
    }
    if (!zmq_has("curve"))
        return hov_fail(err, HOV_ECONFIG, 0,
                        "curve is configured but this libzmq was built "
                        "without CURVE (libsodium)");
    char pub[HOV_CURVE_KEY_Z85], sec[HOV_CURVE_KEY_Z85];
    hov_err e = hov_curve_keyfile_read(c->curve_secret_key_file, pub, sec, err);
    if (e != HOV_OK)
        return e;
    if ((e = zap_open(&b->zap, b->ctx, c, err)) != HOV_OK) {
        sodium_memzero(sec, sizeof sec);
        return e;
    }
    int one = 1;
    int rc = zmq_setsockopt(b->sock, ZMQ_CURVE_SERVER, &one, sizeof one);
    if (rc == 0)
        rc = zmq_setsockopt(b->sock, ZMQ_CURVE_SECRETKEY, sec, sizeof sec);
    sodium_memzero(sec, sizeof sec); /* libzmq holds its own copy */
    if (rc == 0)
        rc = zmq_setsockopt(b->sock, ZMQ_ZAP_DOMAIN, ZAP_DOMAIN,
                            strlen(ZAP_DOMAIN));
    if (rc != 0)
        return hov_fail(err, HOV_ESYS, zmq_errno(), "zmq CURVE options: %s",
                        zmq_strerror(zmq_errno()));
    hov_info("curve server public_key=%s (give it to adapters as "
             "hub.curve_server_key)",
             pub);
    return HOV_OK;
}

hov_err
broker_open(broker *b, hov_error *err)
{
    const config *c = b->cfg;
    hov_err e;
    if ((e = store_set_map_size(b->st, c->map_size, err)) != HOV_OK ||
        (e = store_set_merge_at(b->st, c->ids_merge_at, err)) != HOV_OK ||
        (e = store_open(b->st, c->data_dir, err)) != HOV_OK)
        return e;
    /* A store from before the waiting index gets it once, now. */
    uint64_t t0 = hov_mono_ms(), requests;
    if ((e = overdue_build(b->st, &requests, err)) != HOV_OK)
        return e;
    if (requests > 0)
        hov_info("waiting index built from %llu stored requests in %llu ms",
                 (unsigned long long)requests,
                 (unsigned long long)(hov_mono_ms() - t0));
    store_txn *txn;
    if ((e = store_begin(b->st, true, &txn, err)) != HOV_OK)
        return e;
    e = store_queue_scan(txn, load_entry, b, err);
    store_abort(txn);
    if (e != HOV_OK)
        return e;
    /* The status socket, with the paused destinations loaded before the
     * first dispatch. Before ZeroMQ starts its threads: binding the socket
     * sets the process umask for a moment. */
    if ((e = status_open(b->status, err)) != HOV_OK)
        return e;

    b->ctx = zmq_ctx_new();
    if (b->ctx == NULL)
        return hov_fail(err, HOV_ESYS, zmq_errno(), "zmq context: %s",
                        zmq_strerror(zmq_errno()));
    b->sock = zmq_socket(b->ctx, ZMQ_ROUTER);
    if (b->sock == NULL)
        return hov_fail(err, HOV_ESYS, zmq_errno(), "zmq socket: %s",
                        zmq_strerror(zmq_errno()));
    if ((e = hub_curve(b, err)) != HOV_OK)
        return e;
    int one = 1, linger = 2000, hwm = 100000;
    /* Mandatory: a frame to an unknown peer fails instead of vanishing.
     * Handover: a reconnecting client takes its old routing id over. */
    int64_t maxmsg = (int64_t)c->max_event_bytes * 4 + FRAME_OVERHEAD;
    if (zmq_setsockopt(b->sock, ZMQ_ROUTER_MANDATORY, &one, sizeof one) ||
        zmq_setsockopt(b->sock, ZMQ_ROUTER_HANDOVER, &one, sizeof one) ||
        zmq_setsockopt(b->sock, ZMQ_LINGER, &linger, sizeof linger) ||
        zmq_setsockopt(b->sock, ZMQ_SNDHWM, &hwm, sizeof hwm) ||
        zmq_setsockopt(b->sock, ZMQ_RCVHWM, &hwm, sizeof hwm) ||
        zmq_setsockopt(b->sock, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg))
        return hov_fail(err, HOV_ESYS, zmq_errno(), "zmq setsockopt: %s",
                        zmq_strerror(zmq_errno()));
    if (zmq_bind(b->sock, c->endpoint) != 0)
        return hov_fail(err, HOV_ESYS, zmq_errno(), "bind %s: %s", c->endpoint,
                        zmq_strerror(zmq_errno()));
    size_t depth = 0;
    for (unsigned i = 0; i < AGENCY_COUNT; i++)
        depth += b->queues[i].depth;
    size_t used, map;
    store_usage(b->st, &used, &map);
    hov_info("ready endpoint=%s data=%s queued=%zu store=%zu/%zuMiB "
             "instance=%s",
             c->endpoint, c->data_dir, depth, used >> 20, map >> 20,
             b->instance);
    return HOV_OK;
}

hov_err
broker_run(broker *b, volatile sig_atomic_t *stop, hov_error *err)
{
    /* The hub socket, then the status socket's listener and clients. */
    zmq_pollitem_t items[2 + STATUS_POLL_MAX];
    hov_err e = HOV_OK;
    /* The ZAP handler, when CURVE is on, sits after the status items. */
    while (!*stop && e == HOV_OK) {
        uint64_t t0 = hov_mono_us();
        long timeout = poll_timeout(b);
        items[0] = (zmq_pollitem_t){b->sock, 0, ZMQ_POLLIN, 0};
        size_t ns =
            status_poll_items(b->status, items + 1, STATUS_POLL_MAX, &timeout);
        size_t nitems = 1 + ns;
        if (b->zap != NULL)
            items[nitems++] =
                (zmq_pollitem_t){zap_socket(b->zap), 0, ZMQ_POLLIN, 0};
        int n = zmq_poll(items, (int)nitems, timeout);
        uint64_t t1 = hov_mono_us();
        b->us_poll += t1 - t0;
        if (n < 0 && zmq_errno() != EINTR)
            return hov_fail(err, HOV_ESYS, zmq_errno(), "zmq_poll: %s",
                            zmq_strerror(zmq_errno()));
        if (n == 0 && b->stage->nops == 0 && (e = idle_merge(b, err)) != HOV_OK)
            break;
        /* Handshakes first: a connection waits on its answer. */
        if (b->zap != NULL)
            zap_serve(b->zap);
        /* Read every frame that is waiting, up to a batch. */
        while (!batch_full(b->stage)) {
            zmq_msg_t id, body;
            zmq_msg_init(&id);
            if (zmq_msg_recv(&id, b->sock, ZMQ_DONTWAIT) < 0) {
                zmq_msg_close(&id);
                break;
            }
            zmq_msg_init(&body);
            int more = zmq_msg_more(&id);
            if (!more || zmq_msg_recv(&body, b->sock, 0) < 0) {
                zmq_msg_close(&id);
                zmq_msg_close(&body);
                continue;
            }
            if (zmq_msg_more(&body)) {
                /* One protobuf Frame per ZeroMQ message: drop extra parts. */
                zmq_msg_t extra;
                zmq_msg_init(&extra);
                while (zmq_msg_more(&body) &&
                       zmq_msg_recv(&extra, b->sock, 0) >= 0 &&
                       zmq_msg_more(&extra))
                    ;
                zmq_msg_close(&extra);
                send_nak(b, zmq_msg_data(&id), zmq_msg_size(&id), 0, NULL,
                         HOV_EMALFORMED,
                         "multi-part message: send one Frame per ZeroMQ "
                         "message");
            } else if (zmq_msg_size(&id) <= SESSION_ID_MAX) {
                /* The agency of the connection's CURVE key, set by the ZAP
                 * handler; -1 when CURVE is off. */
                int key_agency = -1;
                if (b->zap != NULL &&
                    (key_agency = zap_agency(zmq_msg_gets(&body, "User-Id"))) <
                        0) {
                    /* Cannot happen with CURVE on: ZAP said who it is. */
                    hov_warn("dropped a frame without an authenticated "
                             "agency peer=%.*s",
                             (int)zmq_msg_size(&id),
                             (const char *)zmq_msg_data(&id));
                } else {
                    handle_frame(b, zmq_msg_data(&id), zmq_msg_size(&id),
                                 zmq_msg_data(&body), zmq_msg_size(&body),
                                 key_agency);
                }
            }
            zmq_msg_close(&id);
            zmq_msg_close(&body);
        }
        uint64_t t2 = hov_mono_us();
        b->us_read += t2 - t1;
        timers(b);
        e = commit_and_answer(b, err);
        uint64_t t3 = hov_mono_us();
        b->us_apply += t3 - t2;
        /* Between commits, so that pause, resume and redrive write in a
         * transaction of their own and take effect in this dispatch. */
        status_serve(b->status, items + 1, ns);
        dispatch(b);
        b->us_dispatch += hov_mono_us() - t3;
    }
    if (e == HOV_OK)
        e = commit_and_answer(b, err); /* the batch in hand */
    log_summary(b);
    return e;
}

void
broker_free(broker *b)
{
    if (b == NULL)
        return;
    status_free(b->status);
    batch_fini(&b->batch);
    hov_map_free(b->inflight_ids);
    if (b->sessions) {
        size_t pos = 0;
        void *v;
        while (hov_map_next(b->sessions, &pos, NULL, NULL, &v))
            free(v);
        hov_map_free(b->sessions);
    }
    if (b->sock)
        zmq_close(b->sock);
    zap_free(b->zap); /* after the hub socket: no handshake finds it gone */
    if (b->ctx)
        zmq_ctx_term(b->ctx);
    for (unsigned i = 0; i < AGENCY_COUNT; i++)
        queue_fini(&b->queues[i]);
    store_free(b->st);
    free(b);
}
