#include "commit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "digest.h"
#include "handover/log.h"
#include "handover/str.h"
#include "handover/timeutil.h"
#include "overdue.h"
#include "validate.h"

#define DIGEST_BYTES STORE_DIGEST_BYTES

/* Is the event delivered (or at least sent) to an organisation of agency?
 * 1: yes; 0: routed there but not yet sent; -1: never routed there. */
static int
delivered_to(const config *c, store_txn *txn, uint64_t event_seq,
             const char *org, config_agency agency, bool inflight,
             hov_error *err, hov_err *fail)
{
    int best = -1;
    for (size_t i = 0; i <= c->n_orgs && best < 1; i++) {
        /* The sender's own code first, then its agency's other codes. */
        const char *code = i == 0 ? org : c->orgs[i - 1].code;
        if (i > 0 &&
            (c->orgs[i - 1].agency != agency || strcmp(code, org) == 0))
            continue;
        Handover__Store__Delivery *d = NULL;
        hov_err e = store_delivery_get(txn, event_seq, code, &d, err);
        if (e == HOV_ENOTFOUND)
            continue;
        if (e != HOV_OK) {
            *fail = e;
            return -1;
        }
        int v = (d->state == HANDOVER__STORE__DELIVERY__STATE__DELIVERED ||
                 d->attempts > 0)
                    ? 1
                    : 0;
        /* Sent but not yet settled counts as delivered: the partner may
         * answer before its adapter's Settle reaches us. The broker saw
         * that when it staged the outcome. */
        if (d->state == HANDOVER__STORE__DELIVERY__STATE__ROUTED && v == 0 &&
            inflight)
            v = 1;
        if (v > best)
            best = v;
        handover__store__delivery__free_unpacked(d, NULL);
    }
    return best;
}

static hov_err
put_delivery(store_txn *txn, uint64_t event_seq, const char *dest,
             Handover__Store__Delivery__State state, config_agency agency,
             uint64_t seq, uint32_t attempts, uint64_t now, hov_error *err)
{
    Handover__Store__Delivery d = HANDOVER__STORE__DELIVERY__INIT;
    d.state = state;
    d.agency = (char *)config_agency_name(agency);
    d.queue_seq = seq;
    d.changed_ms = now;
    d.attempts = attempts;
    return store_delivery_put(txn, event_seq, dest, &d, err);
}

/* What the hub needs of the event an outcome answers. */
typedef struct answered {
    uint64_t seq;
    Handover__Event *ev; /* unpacked from the store, owned */
} answered;

/* Checks an outcome against the event it answers. On a business refusal
 * sets o->result/o->reason and returns HOV_OK; returns an error only for
 * store failures. */
static hov_err
check_outcome(const commit_ctx *c, batch *bt, store_txn *txn, op *o,
              answered *a, hov_error *err)
{
    Handover__Event *ev = o->ev;
    uint8_t digest[DIGEST_BYTES];
    hov_err e = store_event_find(txn, ev->in_reply_to, &a->seq, digest, err);
    if (e == HOV_ENOTFOUND) {
        o->result = HOV_EREPLYTOLATER;
        snprintf(o->reason, sizeof o->reason,
                 "in_reply_to not yet known: event %s is not held by the "
                 "hub; resend later",
                 ev->in_reply_to);
        return HOV_OK;
    }
    const uint8_t *bytes;
    size_t len;
    if (e != HOV_OK ||
        (e = store_event_read(txn, a->seq, &bytes, &len, err)) != HOV_OK)
        return e == HOV_ENOTFOUND ? hov_fail(err, HOV_ESTORE, 0,
                                             "event %s is indexed but missing",
                                             ev->in_reply_to)
                                  : e;
    a->ev = handover__event__unpack(NULL, len, bytes);
    if (a->ev == NULL || a->ev->source == NULL || a->ev->patient == NULL ||
        a->ev->source->org == NULL)
        return hov_fail(err, HOV_ESTORE, 0, "stored event %s is unreadable",
                        ev->in_reply_to);
    const Handover__Event *q = a->ev;
    const char *org = ev->source->org->code;
    hov_err fail = HOV_OK;
    int d = delivered_to(c->cfg, txn, a->seq, org, o->agency,
                         o->answered_inflight, err, &fail);
    if (fail != HOV_OK)
        return fail;
    if (d < 0) {
        o->result = HOV_EREPLYTO;
        snprintf(o->reason, sizeof o->reason,
                 "in_reply_to %s is not an event delivered to %s",
                 ev->in_reply_to, org);
    } else if (d == 0) {
        o->result = HOV_EREPLYTOLATER;
        snprintf(o->reason, sizeof o->reason,
                 "in_reply_to not yet known: event %s has not yet been "
                 "delivered to %s; resend later",
                 ev->in_reply_to, org);
    } else if (!validate_outcome_status_allowed(ev->outcome->status,
                                                q->event_type)) {
        o->result = HOV_ECODE;
        snprintf(o->reason, sizeof o->reason,
                 "outcome.status '%s' is not allowed for a %s",
                 ev->outcome->status, q->event_type);
    } else if (ev->correlation_id[0] != '\0' &&
               strcmp(ev->correlation_id, q->correlation_id) != 0) {
        o->result = HOV_EINVAL;
        snprintf(o->reason, sizeof o->reason,
                 "correlation_id %s differs from %s, the correlation_id of "
                 "the answered event %s",
                 ev->correlation_id, q->correlation_id, ev->in_reply_to);
    } else if (ev->patient->nhs_number[0] &&
               strcmp(ev->patient->nhs_number, q->patient->nhs_number) != 0) {
        o->result = HOV_EINVAL;
        snprintf(o->reason, sizeof o->reason,
                 "patient.nhs_number is not the patient of the answered "
                 "event %s",
                 ev->in_reply_to);
    } else {
        /* Copied for the audit trail and for ordering (domain 3.3), and
         * the journey for tracing. The copies live in the batch arena,
         * like the rest of ev. */
        if (ev->patient->nhs_number[0] == '\0') {
            ev->patient->nhs_number =
                arena_strdup(&bt->arena, q->patient->nhs_number);
            if (ev->patient->nhs_number == NULL)
                return hov_fail(err, HOV_ENOMEM, 0, "copy NHS number");
            o->ev_changed = true;
        }
        if (ev->correlation_id[0] == '\0') {
            ev->correlation_id = arena_strdup(&bt->arena, q->correlation_id);
            if (ev->correlation_id == NULL)
                return hov_fail(err, HOV_ENOMEM, 0, "copy correlation_id");
            o->ev_changed = true;
        }
    }
    return HOV_OK;
}

static hov_err
store_event(batch *bt, store_txn *txn, op *o, const char *actor, uint64_t *seq,
            hov_error *err)
{
    Handover__Event *ev = o->ev;
    Handover__Event hub = HANDOVER__EVENT__INIT;
    Handover__Source src = HANDOVER__SOURCE__INIT;
    src.agency = (char *)actor;
    hub.received_at = bt->received_at; /* formatted once per batch */
    hub.source = &src;
    size_t tail = handover__event__get_packed_size(&hub);
    size_t head = o->raw_len;
    char *saved_recv = ev->received_at, *saved_agency = ev->source->agency;
    if (o->ev_changed) {
        ev->received_at = bt->received_at;
        ev->source->agency = (char *)actor;
        head = handover__event__get_packed_size(ev);
        tail = 0;
    }
    /* Stored as sent (with the hub's fields appended, which the digest
     * leaves out), the bytes are their own reference: the digest is only
     * computed if the id comes again (digest.h). Packed again, they are
     * not, so the digest of the sender's bytes is kept. */
    uint8_t digest[DIGEST_BYTES] = {0};
    if (o->ev_changed && !digest_event(o->raw, o->raw_len, digest))
        return hov_fail(err, HOV_EMALFORMED, 0,
                        "event %s is not protobuf wire format", ev->event_id);
    uint8_t *dst;
    hov_err e =
        store_event_add(txn, ev->event_id, digest, head + tail, seq, &dst, err);
    if (e == HOV_OK && o->ev_changed)
        handover__event__pack(ev, dst);
    else if (e == HOV_OK) {
        memcpy(dst, o->raw, head);
        handover__event__pack(&hub, dst + head);
    }
    ev->received_at = saved_recv;
    ev->source->agency = saved_agency;
    return e;
}

/* Is o the same event as the one held under its id (stored as seq, with
 * digest held)? Resends only: digests are computed here, not on arrival. */
static hov_err
same_content(store_txn *txn, const op *o, uint64_t seq,
             const uint8_t held[DIGEST_BYTES], bool *same, hov_error *err)
{
    uint8_t now[DIGEST_BYTES], ref[DIGEST_BYTES];
    *same = false;
    if (!digest_event(o->raw, o->raw_len, now))
        return HOV_OK; /* decoded, so never; then it is not the same */
    if (!digest_is_lazy(held)) {
        memcpy(ref, held, DIGEST_BYTES);
    } else {
        const uint8_t *data;
        size_t len;
        hov_err e = store_event_read(txn, seq, &data, &len, err);
        if (e == HOV_ENOTFOUND)
            return hov_fail(err, HOV_ESTORE, 0,
                            "event %s is indexed but missing from the store",
                            o->ev->event_id);
        if (e != HOV_OK)
            return e;
        if (!digest_event(data, len, ref)) {
            hov_warn("stored event %s (seq %llu) is not protobuf wire "
                     "format; its resend is refused as a conflict",
                     o->ev->event_id, (unsigned long long)seq);
            return HOV_OK;
        }
    }
    *same = memcmp(now, ref, DIGEST_BYTES) == 0;
    return HOV_OK;
}

/* Checks that need the store (dedupe, the answered event of an outcome),
 * then routing, then the writes. On a business refusal sets
 * o->result/o->reason and returns HOV_OK; returns an error only for store
 * failures, which poison txn. */
static hov_err
apply_publish(const commit_ctx *c, batch *bt, store_txn *txn, op *o,
              uint64_t now, hov_error *err)
{
    Handover__Event *ev = o->ev;
    const char *id = ev->event_id;
    const char *nhs = ev->patient->nhs_number;
    const char *actor = config_agency_name(o->agency);
    uint64_t seq;
    uint8_t held[DIGEST_BYTES];
    hov_err e = store_event_find(txn, id, &seq, held, err);
    bool same = false;
    if (e == HOV_OK &&
        (e = same_content(txn, o, seq, held, &same, err)) != HOV_OK)
        return e;
    if (e == HOV_OK) {
        if (same) {
            o->duplicate = true;
            return audit_log(txn, now, id, nhs, actor, AUDIT_DUPLICATE,
                             "resent with the same content; not routed again",
                             err);
        }
        o->result = HOV_ECONFLICT;
        snprintf(o->reason, sizeof o->reason,
                 "conflict: event %s is already held with different "
                 "content; a changed event needs a new id",
                 id);
        return audit_log(txn, now, id, nhs, actor, AUDIT_REJECTED, o->reason,
                         err);
    }
    if (e != HOV_ENOTFOUND)
        return e;

    answered a = {0};
    route_reply reply = {0};
    hov_error rerr = {0};
    if (ev->body_case == HANDOVER__EVENT__BODY_OUTCOME) {
        if ((e = check_outcome(c, bt, txn, o, &a, err)) != HOV_OK)
            goto out;
        if (o->result != HOV_OK)
            goto refused;
        nhs = ev->patient->nhs_number;
        reply.source_org = a.ev->source->org->code;
        reply.event_type = a.ev->event_type;
    }
    if (route_match(c->cfg, ev, &reply, &o->routes, &rerr) != HOV_OK) {
        o->result = rerr.code;
        snprintf(o->reason, sizeof o->reason, "%s", rerr.msg);
        goto refused;
    }

    /* Accept: store the event as the sender packed it, followed by the
     * hub's own fields (received_at, source.agency) packed as a second
     * Event. Protobuf parsers merge concatenated messages field by field,
     * later values winning, so the stored bytes read as the event with the
     * hub's fields set, without packing all of it a second time. When the
     * hub filled a field in itself (an outcome's NHS number), it packs the
     * whole event instead. */
    if ((e = store_event(bt, txn, o, actor, &seq, err)) != HOV_OK)
        goto out;

    /* Built without snprintf: this runs for every event. */
    char detail[512];
    size_t dl = hov_stradd(detail, sizeof detail, 0, "from ");
    dl = hov_stradd(detail, sizeof detail, dl, ev->source->org->code);
    dl = hov_stradd(detail, sizeof detail, dl, "; routed to");
    for (size_t i = 0; i < o->routes.n; i++) {
        route_dest *d = &o->routes.dest[i];
        if (d->dead) {
            uint64_t dseq;
            Handover__Store__DeadLetter dead =
                HANDOVER__STORE__DEAD_LETTER__INIT;
            dead.event_id = (char *)id;
            dead.agency = (char *)config_agency_name(d->agency);
            dead.destination = d->code;
            dead.reason = d->reason;
            dead.dead_ms = now;
            dead.patient = (char *)nhs;
            dead.view = d->view;
            dead.event_seq = seq;
            if ((e = store_dead_put(txn, &dead, &dseq, err)) != HOV_OK ||
                (e = put_delivery(txn, seq, d->code,
                                  HANDOVER__STORE__DELIVERY__STATE__DEAD,
                                  d->agency, 0, 0, now, err)) != HOV_OK ||
                (e = audit_log(txn, now, id, nhs, "hub", AUDIT_DEAD, d->reason,
                               err)) != HOV_OK)
                goto out;
            continue;
        }
        queue_item *it = queue_item_new();
        if (it == NULL) {
            e = hov_fail(err, HOV_ENOMEM, 0, "allocate delivery");
            goto out;
        }
        o->items[o->n_items++] = it;
        it->seq = store_queue_next_seq(txn, d->agency);
        it->queue = d->agency;
        it->event_seq = seq;
        it->enqueued_ms = now;
        hov_strlcpy(it->event_id, sizeof it->event_id, id);
        hov_strlcpy(it->dest, sizeof it->dest, d->code);
        hov_strlcpy(it->view, sizeof it->view, d->view);
        Handover__Store__QueueEntry qe = HANDOVER__STORE__QUEUE_ENTRY__INIT;
        qe.event_id = (char *)id;
        qe.destination = d->code;
        qe.patient = (char *)nhs;
        qe.enqueued_ms = now;
        qe.view = d->view;
        qe.event_seq = seq;
        if ((e = store_queue_put(txn, d->agency, it->seq, &qe, err)) !=
                HOV_OK ||
            (e = put_delivery(txn, seq, d->code,
                              HANDOVER__STORE__DELIVERY__STATE__ROUTED,
                              d->agency, it->seq, 0, now, err)) != HOV_OK)
            goto out;
        dl = hov_stradd(detail, sizeof detail, dl, " ");
        dl = hov_stradd(detail, sizeof detail, dl, d->code);
    }
    if (o->n_items == 0)
        dl = hov_stradd(detail, sizeof detail, dl, " nobody (recorded only)");
    if (o->routes.warning[0]) {
        dl = hov_stradd(detail, sizeof detail, dl, "; ");
        dl = hov_stradd(detail, sizeof detail, dl, o->routes.warning);
    }
    if ((e = overdue_on_publish(txn, ev, seq, &o->routes, err)) != HOV_OK)
        goto out;
    if (ev->body_case == HANDOVER__EVENT__BODY_OUTCOME &&
        ((e = store_reply_put(txn, a.seq, seq, err)) != HOV_OK ||
         (e = overdue_on_outcome(txn, a.ev, a.seq, o->agency,
                                 ev->outcome->status, err)) != HOV_OK))
        goto out;
    e = audit_log(txn, now, id, nhs, actor, AUDIT_ACCEPTED, detail, err);
    goto out;

refused:
    e = audit_log(txn, now, id, nhs, actor, AUDIT_REJECTED, o->reason, err);
out:
    if (a.ev)
        handover__event__free_unpacked(a.ev, NULL);
    return e;
}

static uint64_t
backoff_ms(const config *c, uint32_t attempts)
{
    uint64_t d = c->backoff_initial_ms;
    for (uint32_t i = 1; i < attempts && d < c->backoff_max_ms; i++)
        d *= 2;
    return d < c->backoff_max_ms ? d : c->backoff_max_ms;
}

static hov_err
apply_settle(const commit_ctx *c, store_txn *txn, op *o, uint64_t now,
             hov_error *err)
{
    settle_snap *it = &o->snap; /* never the broker's queue item */
    char *patient = it->patient;
    hov_err e;
    char detail[400];
    if (o->outcome == HANDOVER__SETTLE_OUTCOME__SETTLE_DONE) {
        size_t dl = hov_stradd(detail, sizeof detail, 0, "to ");
        dl = hov_stradd(detail, sizeof detail, dl, it->dest);
        dl = hov_stradd(detail, sizeof detail, dl, ", attempt ");
        (void)hov_stradd_u(detail, sizeof detail, dl, it->attempts);
        if ((e = store_queue_del(txn, it->queue, it->seq, err)) != HOV_OK &&
            e != HOV_ENOTFOUND)
            return e;
        if ((e = put_delivery(txn, it->event_seq, it->dest,
                              HANDOVER__STORE__DELIVERY__STATE__DELIVERED,
                              it->queue, it->seq, it->attempts, now, err)) !=
            HOV_OK)
            return e;
        return audit_log(txn, now, it->event_id, "",
                         config_agency_name(it->queue), AUDIT_DELIVERED, detail,
                         err);
    }
    bool rejected = o->outcome == HANDOVER__SETTLE_OUTCOME__SETTLE_REJECTED;
    o->to_dead = rejected || it->attempts >= c->cfg->max_attempts;
    char why[300];
    if (rejected)
        snprintf(why, sizeof why, "rejected by %s: %.200s", it->dest,
                 o->reason[0] ? o->reason : "no reason given");
    else if (o->timeout)
        snprintf(why, sizeof why, "no settle within %u ms (attempt %u)",
                 c->cfg->settle_timeout_ms, it->attempts);
    else
        snprintf(why, sizeof why, "retry requested by %s (attempt %u): %.200s",
                 it->dest, it->attempts,
                 o->reason[0] ? o->reason : "no reason given");
    if (o->to_dead) {
        if (!rejected)
            snprintf(detail, sizeof detail,
                     "gave up after %u attempts (max_attempts): %.300s",
                     it->attempts, why);
        else
            snprintf(detail, sizeof detail, "%s", why);
        uint64_t dseq;
        Handover__Store__DeadLetter dead = HANDOVER__STORE__DEAD_LETTER__INIT;
        dead.event_id = it->event_id;
        dead.agency = (char *)config_agency_name(it->queue);
        dead.destination = it->dest;
        dead.reason = detail;
        dead.attempts = it->attempts;
        dead.dead_ms = now;
        dead.queue_seq = it->seq;
        dead.patient = patient;
        dead.view = it->view;
        dead.event_seq = it->event_seq;
        if ((e = store_queue_del(txn, it->queue, it->seq, err)) != HOV_OK &&
            e != HOV_ENOTFOUND)
            return e;
        if ((e = store_dead_put(txn, &dead, &dseq, err)) != HOV_OK ||
            (e = put_delivery(
                 txn, it->event_seq, it->dest,
                 rejected ? HANDOVER__STORE__DELIVERY__STATE__REJECTED
                          : HANDOVER__STORE__DELIVERY__STATE__DEAD,
                 it->queue, it->seq, it->attempts, now, err)) != HOV_OK ||
            (e = overdue_on_dead(txn, it->event_seq, it->dest, it->queue, true,
                                 err)) != HOV_OK)
            return e;
        return audit_log(txn, now, it->event_id, "",
                         config_agency_name(it->queue), AUDIT_DEAD, detail,
                         err);
    }
    o->not_before_ms = now + backoff_ms(c->cfg, it->attempts);
    Handover__Store__QueueEntry qe = HANDOVER__STORE__QUEUE_ENTRY__INIT;
    qe.event_id = it->event_id;
    qe.destination = it->dest;
    qe.patient = patient;
    qe.attempts = it->attempts;
    qe.not_before_ms = o->not_before_ms;
    qe.last_error = why;
    qe.enqueued_ms = it->enqueued_ms;
    qe.view = it->view;
    qe.event_seq = it->event_seq;
    if ((e = store_queue_put(txn, it->queue, it->seq, &qe, err)) != HOV_OK)
        return e;
    snprintf(detail, sizeof detail, "%s; next attempt in %llu ms", why,
             (unsigned long long)(o->not_before_ms - now));
    return audit_log(txn, now, it->event_id, "", config_agency_name(it->queue),
                     AUDIT_RETRY, detail, err);
}

static hov_err
apply_op(const commit_ctx *c, batch *bt, store_txn *txn, op *o, uint64_t now,
         hov_error *err)
{
    switch (o->kind) {
    case OP_PUBLISH:
        o->result = HOV_OK;
        o->reason[0] = '\0';
        o->duplicate = false;
        op_release_items(o);
        if (o->refused_full)
            return HOV_OK;
        return apply_publish(c, bt, txn, o, now, err);
    case OP_SETTLE:
        if (o->failed)
            return HOV_OK;
        return apply_settle(c, txn, o, now, err);
    case OP_AUDIT_REJECT:
        if (o->failed)
            return HOV_OK;
        return audit_log(txn, now, o->event_id, o->nhs, "hub", AUDIT_REJECTED,
                         o->reason, err);
    }
    return HOV_OK;
}

/* Nothing of the batch could be written: refuse its publishes (the
 * senders resend) and put its settles back. */
static void
batch_fail_all(batch *bt, hov_err e, const char *msg)
{
    for (size_t j = 0; j < bt->nops; j++) {
        op *o = &bt->ops[j];
        if (o->kind == OP_PUBLISH && !o->refused_full) {
            o->result = e == HOV_EIO ? HOV_EIO : HOV_ESTORE;
            snprintf(o->reason, sizeof o->reason,
                     "temporarily unavailable; resend: the hub could not "
                     "store the event: %s",
                     msg);
            op_release_items(o);
        }
        o->failed = true;
    }
}

/* Once enough new ids have gathered, move them into the ids tree in one
 * sorted pass (store.h). A failure leaves them where they are, durable in
 * the recent log; it is logged and tried again after the next commit. */
static void
merge_ids(const commit_ctx *c)
{
    hov_error err = {0};
    size_t merged = 0;
    uint64_t t0 = hov_mono_us();
    if (store_merge_ids(c->st, false, &merged, &err) != HOV_OK)
        hov_warn("merge of the ids index postponed: %s", err.msg);
    else if (merged > 0)
        hov_info("merged ids=%zu into the ids index in %llu ms", merged,
                 (unsigned long long)(hov_mono_us() - t0) / 1000);
}

/* Apply the batch in one write transaction and commit it. When the
 * store fills up part-way, the transaction is redone without the publish
 * that hit the limit and those after it (they are Nak'd "temporary"), so
 * settles, which free space, still go through. When the store is broken
 * (LMDB says MDB_PANIC) bt->fatal is set and the hub must stop. */
void
commit_batch(const commit_ctx *c, batch *bt)
{
    uint64_t now = hov_now_ms();
    hov_error *fatal = &bt->fatal_err;
    hov_rfc3339_format(now, bt->received_at);
    for (size_t attempt = 0; attempt <= bt->nops + 1; attempt++) {
        store_txn *txn = NULL;
        hov_error err = {0};
        hov_err e = store_begin(c->st, false, &txn, &err);
        size_t failed_at = bt->nops;
        for (size_t i = 0; e == HOV_OK && i < bt->nops; i++) {
            e = apply_op(c, bt, txn, &bt->ops[i], now, &err);
            if (e != HOV_OK)
                failed_at = i;
        }
        if (e == HOV_OK) {
            uint64_t t0 = hov_mono_us();
            e = store_commit(txn, &err);
            bt->commit_us += hov_mono_us() - t0;
            if (e == HOV_OK) {
                merge_ids(c);
                /* The batch is durable and is answered, but a merge that
                 * broke the store (MDB_PANIC) leaves nothing writable:
                 * stop now, with the cause, not at the next batch. */
                if (store_broken(c->st))
                    bt->fatal = hov_fail(fatal, HOV_ESTORE, 0,
                                         "the store can no longer be written "
                                         "safely (a merge of the ids index "
                                         "failed; see the warning above); "
                                         "restart the hub once the cause is "
                                         "fixed");
                return;
            }
        } else if (txn != NULL) {
            store_abort(txn);
        }
        hov_errorf("commit failed ops=%zu: %s", bt->nops, err.msg);
        if (store_broken(c->st)) {
            batch_fail_all(bt, e, err.msg);
            bt->fatal = hov_fail(fatal, HOV_ESTORE, err.cause,
                                 "the store can no longer be written safely "
                                 "(%s); restart the hub once the cause is "
                                 "fixed",
                                 err.msg);
            return;
        }
        if (e != HOV_ESTOREFULL) {
            batch_fail_all(bt, e, err.msg);
            return;
        }
        /* Full: leave out the publish that hit the limit and every later
         * one; a settle or audit record that hit it is put back. */
        bool changed = false;
        for (size_t j = failed_at < bt->nops ? failed_at : 0; j < bt->nops;
             j++) {
            op *o = &bt->ops[j];
            if (o->kind == OP_PUBLISH && !o->refused_full) {
                o->refused_full = true;
                op_release_items(o);
                changed = true;
            } else if (o->kind != OP_PUBLISH && j == failed_at && !o->failed) {
                o->failed = true;
                changed = true;
            }
        }
        if (!changed) {
            batch_fail_all(bt, e, err.msg);
            return;
        }
    }
    batch_fail_all(bt, HOV_ESTORE, "the batch could not be committed");
}
