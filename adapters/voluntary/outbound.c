/* Deliveries to voluntary organisations: each event the hub delivers is
 * POSTed as the canonical event in JSON to the organisation's webhook,
 * signed (domain 8.1, 8.2), and settled by the answer (domain 8.4).
 *
 * The body depends on the delivered event alone (webhook_event_json), so
 * every attempt of one event sends the same bytes under the same
 * Idempotency-Key (the event id): the organisation can drop a resend after
 * a timeout or a crash. Only Handover-Timestamp and the signature change
 * between attempts; the signature is made just before each post so that
 * the receiver's replay window counts from the attempt, not from the
 * first delivery.
 *
 * Back-off between attempts is the hub's (settle retry); Retry-After is
 * not honoured yet, because a settle carries no delay.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handover.pb-c.h"
#include "handover/log.h"
#include "handover/timeutil.h"
#include "httpc.h"
#include "voluntary.h"
#include "webhook.h"

typedef struct odeliv {
    vol_outbound *o;
    uint64_t delivery_id;
    uint32_t attempt;
    char event_id[37];
    char event_type[24];
    const vol_org *org; /* borrowed from the configuration */
    char *body;         /* owned, from webhook_event_json */
    size_t len;
    struct odeliv *next;
} odeliv;

struct vol_outbound {
    vol *v;
    httpc *http;
    odeliv *head, *tail; /* waiting for a slot */
    odeliv *busy;        /* in flight */
    size_t inflight;
    bool stopped;
};

static void out_pump(vol_outbound *o);

static void
odeliv_free(odeliv *d)
{
    if (d != NULL)
        free(d->body);
    free(d);
}

static void
out_settle(vol_outbound *o, odeliv *d, hov_settle how, const char *reason)
{
    char extra[80] = "";
    if (d->org != NULL)
        snprintf(extra, sizeof extra, " org=%s", d->org->code);
    hublink_settle_log(o->v->hub, d->delivery_id, d->event_id, d->attempt, how,
                       reason, extra);
}

/* The first 500 bytes of an answer (domain 8.4), on one line of printable
 * text, for the dead letter. */
static void
answer_text(const uint8_t *body, size_t len, char *out, size_t outsz)
{
    size_t n = len < 500 ? len : 500, k = 0;
    for (size_t i = 0; i < n && k + 1 < outsz; i++) {
        uint8_t c = body[i];
        out[k++] = (c == '\r' || c == '\n' || c == '\t') ? ' '
                   : (c < 0x20 || c == 0x7f)             ? '?'
                                                         : (char)c;
    }
    out[k] = '\0';
}

static void
unlink_busy(vol_outbound *o, odeliv *d)
{
    for (odeliv **pp = &o->busy; *pp; pp = &(*pp)->next)
        if (*pp == d) {
            *pp = d->next;
            break;
        }
    o->inflight--;
}

static bool
retryable(long st)
{
    return st == 408 || st == 425 || st == 429 || st >= 500;
}

static void
on_answer(void *user, const httpc_result *r)
{
    odeliv *d = user;
    vol_outbound *o = d->o;
    unlink_busy(o, d);
    if (o->stopped) {
        odeliv_free(d); /* unsettled: the hub delivers it again */
        return;
    }
    char text[512], reason[640];
    const char *org = d->org->code;
    if (r->error[0] == '\0' && r->status >= 200 && r->status < 300) {
        out_settle(o, d, HOV_SETTLE_DONE, NULL);
    } else if (r->error[0] != '\0' && r->status >= 200 && r->status < 300) {
        /* The status line said yes though the answer was cut short: the
         * organisation has the referral (httpc.h). */
        out_settle(o, d, HOV_SETTLE_DONE, NULL);
    } else if (r->status >= 300 && r->status < 400) {
        snprintf(reason, sizeof reason,
                 "%s answered %ld: redirect refused (not followed, so patient "
                 "data cannot reach an unexpected host); fix its URL",
                 org, r->status);
        out_settle(o, d, HOV_SETTLE_REJECTED, reason);
    } else if (r->status >= 400 && !retryable(r->status)) {
        answer_text(r->body, r->len, text, sizeof text);
        snprintf(reason, sizeof reason, "%s answered %ld: %s", org, r->status,
                 text[0] ? text : "(no body)");
        out_settle(o, d, HOV_SETTLE_REJECTED, reason);
    } else if (r->status != 0) {
        answer_text(r->body, r->len, text, sizeof text);
        snprintf(reason, sizeof reason, "%s answered %ld: %s", org, r->status,
                 text[0] ? text : "(no body)");
        out_settle(o, d, HOV_SETTLE_RETRY, reason);
    } else {
        snprintf(reason, sizeof reason, "%s unreachable: %s%s", org,
                 r->timed_out ? "timed out: " : "",
                 r->error[0] ? r->error : "no answer");
        out_settle(o, d, HOV_SETTLE_RETRY, reason);
    }
    odeliv_free(d);
    out_pump(o);
}

static void
out_post(vol_outbound *o, odeliv *d)
{
    char ts[24], sig[WEBHOOK_SIG_CAP];
    snprintf(ts, sizeof ts, "%llu", (unsigned long long)(hov_now_ms() / 1000));
    hov_error err = {0};
    if (!webhook_sign(d->org->secret, d->org->secret_len, ts, d->body, d->len,
                      sig)) {
        unlink_busy(o, d);
        out_settle(o, d, HOV_SETTLE_RETRY, "libsodium could not initialise");
        odeliv_free(d);
        return;
    }
    char h_ts[48], h_sig[96], h_kid[160], h_type[64], h_idem[64];
    snprintf(h_ts, sizeof h_ts, "Handover-Timestamp: %s", ts);
    snprintf(h_sig, sizeof h_sig, "Handover-Signature: %s", sig);
    snprintf(h_kid, sizeof h_kid, "Handover-Key-Id: %s", d->org->key_id);
    snprintf(h_type, sizeof h_type, "Handover-Event-Type: %s", d->event_type);
    snprintf(h_idem, sizeof h_idem, "Idempotency-Key: %s", d->event_id);
    const char *headers[] = {
        "Content-Type: application/json",
        h_ts,
        h_sig,
        h_kid,
        h_type,
        h_idem,
        NULL,
    };
    if (httpc_post(o->http, d->org->url, headers, d->body, d->len,
                   o->v->cfg.partner_timeout_ms, on_answer, d,
                   &err) != HOV_OK) {
        unlink_busy(o, d);
        /* A URL the client refuses will not improve on a retry, but the
         * table may be fixed and the adapter restarted. */
        out_settle(o, d, HOV_SETTLE_RETRY, err.msg);
        odeliv_free(d);
    }
}

static void
out_pump(vol_outbound *o)
{
    while (!o->stopped && o->head != NULL &&
           o->inflight < o->v->cfg.partner_concurrency) {
        odeliv *d = o->head;
        o->head = d->next;
        if (o->head == NULL)
            o->tail = NULL;
        d->next = o->busy;
        o->busy = d;
        o->inflight++;
        out_post(o, d);
    }
}

void
vol_outbound_deliver(vol *v, const hov_msg *msg)
{
    vol_outbound *o = v->out;
    if (o == NULL || o->stopped)
        return; /* stopping: left unsettled, delivered again */
    odeliv *d = calloc(1, sizeof *d);
    if (d == NULL) {
        hov_error err = {0};
        if (hublink_settle(v->hub, msg->delivery_id, HOV_SETTLE_RETRY,
                           "adapter out of memory", &err) != HOV_OK)
            hov_warn("settle: %s", err.msg);
        return;
    }
    d->o = o;
    d->delivery_id = msg->delivery_id;
    d->attempt = msg->attempt;
    snprintf(d->event_id, sizeof d->event_id, "%s", msg->event_id);
    d->org = vol_org_find(&v->cfg, msg->destination);
    if (d->org == NULL) {
        char reason[200];
        snprintf(reason, sizeof reason,
                 "no webhook configured for %.48s: add it to "
                 "partner.orgs_file and restart handover-voluntary",
                 msg->destination);
        out_settle(o, d, HOV_SETTLE_RETRY, reason);
        odeliv_free(d);
        return;
    }
    Handover__Event *ev =
        handover__event__unpack(NULL, msg->event_len, msg->event);
    if (ev == NULL) {
        out_settle(o, d, HOV_SETTLE_REJECTED,
                   "the delivered event could not be decoded");
        odeliv_free(d);
        return;
    }
    snprintf(d->event_type, sizeof d->event_type, "%s",
             ev->event_type ? ev->event_type : "");
    char why[256] = "";
    int rc = webhook_event_json(ev, &d->body, &d->len, why, sizeof why);
    handover__event__free_unpacked(ev, NULL);
    if (rc != 0) {
        out_settle(o, d, rc == -1 ? HOV_SETTLE_REJECTED : HOV_SETTLE_RETRY,
                   rc == -1 ? why : "adapter out of memory");
        odeliv_free(d);
        return;
    }
    if (o->tail != NULL)
        o->tail->next = d;
    else
        o->head = d;
    o->tail = d;
    out_pump(o);
}

hov_err
vol_outbound_start(vol *v, hov_error *err)
{
    vol_outbound *o = calloc(1, sizeof *o);
    if (o == NULL)
        return hov_fail(err, HOV_ENOMEM, 0, "outbound");
    o->v = v;
    v->out = o;
    httpc_opts ho = {
        .ca_file = v->cfg.partner_ca_file[0] ? v->cfg.partner_ca_file : NULL,
        .connect_timeout_ms = 10000, /* domain 8.4 */
        .user_agent = "handover-voluntary/0.1",
    };
    return httpc_new(v->loop, &ho, &o->http, err);
}

void
vol_outbound_stop(vol *v)
{
    vol_outbound *o = v->out;
    if (o == NULL || o->stopped)
        return;
    o->stopped = true;
    while (o->head != NULL) {
        odeliv *d = o->head;
        o->head = d->next;
        odeliv_free(d);
    }
    o->tail = NULL;
    /* Transfers in flight are cancelled; their callbacks free them. */
    httpc_free(o->http);
    o->http = NULL;
    v->out = NULL;
    free(o);
}
