/* Outcome webhooks from voluntary organisations (domain 8.5): verified,
 * mapped to an outcome event, published, and answered 200 only after the
 * hub's durable Ack.
 *
 * Nothing is parsed before the request is authenticated: the sender must
 * be in the organisation table, the timestamp inside the replay window and
 * the signature right over the raw bytes received. Each refusal is 401
 * with no detail a forger could use, and an audit line naming the sender,
 * the peer and the reason; it never produces an event.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "handover.pb-c.h"
#include "handover/log.h"
#include "handover/timeutil.h"
#include "httpd.h"
#include "voluntary.h"
#include "webhook.h"

/* A webhook waiting for the hub. Owned by the inbound list until the hub
 * answers (the client keeps and resends the publish until then). */
typedef struct waiting {
    uint64_t seq;
    httpd_req *req; /* NULL once answered otherwise (hub timeout, stop) */
    uint64_t since_ms;
    char event_id[37];
    struct waiting *next;
} waiting;

struct vol_inbound {
    httpd *server;
    uv_timer_t timer; /* hub timeouts */
    waiting *waits;
    bool stopped;
};

static const char OUTCOME_PATH[] = "/webhooks/v1/outcome";

/* Answer with {"status": <code>, "message": "..."} or, with event_id,
 * {"event_id": "...", "duplicate": ...}. extra is one more header or
 * NULL. */
static void
respond(httpd_req *req, int status, const char *message, const char *extra)
{
    char body[700];
    size_t k = 0;
    k += (size_t)snprintf(body, sizeof body, "{\"status\":%d,\"message\":\"",
                          status);
    /* message is ours or the hub's reason: escape it for JSON. */
    for (const char *p = message; *p != '\0' && k + 8 < sizeof body; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '"' || c == '\\') {
            body[k++] = '\\';
            body[k++] = (char)c;
        } else if (c < 0x20) {
            body[k++] = ' ';
        } else {
            body[k++] = (char)c;
        }
    }
    k += (size_t)snprintf(body + k, sizeof body - k, "\"}");
    const char *headers[3] = {"Content-Type: application/json", extra, NULL};
    httpd_respond(req, status, headers, body, k < sizeof body ? k : 0);
}

/* 401: what the sender learns is only that verification failed (and, for
 * a stale timestamp, that its clock or its queue is the problem, which
 * gives a forger nothing); the reason goes to the audit line. */
static void
refuse_auth(httpd_req *req, const char *sender, const char *key_id,
            const char *reason)
{
    char s[64];
    snprintf(s, sizeof s, "%.60s", sender ? sender : "(none)");
    for (char *p = s; *p; p++)
        if ((unsigned char)*p < 0x21 || *p == '"' || (unsigned char)*p > 0x7e)
            *p = '?';
    char k[64];
    snprintf(k, sizeof k, "%.60s", key_id ? key_id : "(none)");
    for (char *p = k; *p; p++)
        if ((unsigned char)*p < 0x21 || *p == '"' || (unsigned char)*p > 0x7e)
            *p = '?';
    hov_warn("audit webhook refused sender=%s key_id=%s peer=%s status=401 "
             "reason=\"%s\"",
             s, k, httpd_req_peer(req), reason);
    bool stale = strcmp(reason, "timestamp outside replay window") == 0;
    respond(req, 401,
            stale ? "signature verification failed: timestamp outside "
                    "replay window"
                  : "signature verification failed",
            NULL);
}

/* Does any Handover-Signature line hold a match? Several lines are one
 * list (domain 8.2). */
static bool
signature_ok(httpd_req *req, const vol_org *org, const char *ts,
             const uint8_t *body, size_t len)
{
    bool ok = false;
    const char *name, *value;
    for (size_t i = 0; httpd_req_header_at(req, i, &name, &value); i++)
        if (strcasecmp(name, "Handover-Signature") == 0 &&
            webhook_verify(org->secret, org->secret_len, ts, body, len, value))
            ok = true;
    return ok;
}

static int64_t
now_s(const vol *v)
{
    if (v->cfg.clock_override != 0)
        return (int64_t)v->cfg.clock_override;
    return (int64_t)(hov_now_ms() / 1000);
}

static void
on_request(void *user, httpd_req *req)
{
    vol *v = user;
    const char *path = httpd_req_path(req);
    if (strcmp(path, OUTCOME_PATH) != 0) {
        respond(req, 404,
                "no such endpoint: Handover takes POST /webhooks/v1/outcome",
                NULL);
        return;
    }
    if (strcmp(httpd_req_method(req), "POST") != 0) {
        respond(req, 405, "only POST is supported on this endpoint",
                "Allow: POST");
        return;
    }
    const char *sender = httpd_req_header(req, "Handover-Sender");
    const char *key_id = httpd_req_header(req, "Handover-Key-Id");
    const char *ts = httpd_req_header(req, "Handover-Timestamp");
    size_t len = 0;
    const uint8_t *body = httpd_req_body(req, &len);

    /* Domain 8.5's order: sender, timestamp, signature, then the rest. */
    const vol_org *org = vol_org_find(&v->cfg, sender);
    if (org == NULL) {
        refuse_auth(req, sender, key_id, "unknown sender");
        return;
    }
    int64_t t = 0;
    if (!webhook_timestamp_parse(ts, &t)) {
        refuse_auth(req, sender, key_id,
                    "Handover-Timestamp missing or not Unix seconds");
        return;
    }
    if (!webhook_timestamp_fresh(t, now_s(v),
                                 (int64_t)v->cfg.replay_window_s)) {
        refuse_auth(req, sender, key_id, "timestamp outside replay window");
        return;
    }
    if (!signature_ok(req, org, ts, body, len)) {
        refuse_auth(req, sender, key_id, "signature mismatch");
        return;
    }
    if (!webhook_content_type_ok(httpd_req_header(req, "Content-Type"))) {
        respond(req, 415,
                "Content-Type must be application/json (charset=utf-8 "
                "optional)",
                NULL);
        return;
    }
    const char *idem = httpd_req_header(req, "Idempotency-Key");
    if (idem == NULL || idem[0] == '\0') {
        respond(req, 400,
                "Idempotency-Key header is required: it names the outcome, "
                "so a resend is recognised",
                NULL);
        return;
    }
    webhook_in in;
    char why[300] = "";
    int st = webhook_outcome_parse(body, len, org->code, idem, t, &in, why,
                                   sizeof why);
    if (st != 0) {
        hov_warn("refused %d sender=%s peer=%s reason=\"%s\"", st, org->code,
                 httpd_req_peer(req), why);
        respond(req, st, why, st == 503 ? "Retry-After: 10" : NULL);
        return;
    }
    size_t plen = handover__event__get_packed_size(&in.ev);
    uint8_t *packed = malloc(plen ? plen : 1);
    waiting *w = calloc(1, sizeof *w);
    hov_error err = {0};
    hov_err rc = HOV_ENOMEM;
    if (packed != NULL && w != NULL) {
        handover__event__pack(&in.ev, packed);
        rc = hublink_publish(v->hub, packed, plen, NULL, &w->seq, &err);
    }
    free(packed);
    if (rc != HOV_OK) {
        free(w);
        webhook_in_free(&in);
        respond(req, 503, "temporarily unavailable; resend later",
                "Retry-After: 10");
        return;
    }
    w->req = req;
    w->since_ms = hov_mono_ms();
    snprintf(w->event_id, sizeof w->event_id, "%s", in.event_id);
    w->next = v->in->waits;
    v->in->waits = w;
    hov_info("audit webhook verified sender=%s key_id=%s event=%s "
             "in_reply_to=%s",
             org->code, key_id ? key_id : "", in.event_id, in.ev.in_reply_to);
    webhook_in_free(&in);
}

/* The hub's answer as an HTTP answer (domain 8.5). */
static void
respond_hub(waiting *w, const hov_msg *msg)
{
    httpd_req *req = w->req;
    if (msg->kind == HOV_MSG_ACK) {
        char body[160];
        int n = snprintf(body, sizeof body,
                         "{\"status\":200,\"event_id\":\"%s\",\"duplicate\":"
                         "%s}",
                         w->event_id, msg->duplicate ? "true" : "false");
        const char *headers[] = {"Content-Type: application/json", NULL};
        hov_info("%s event=%s", msg->duplicate ? "duplicate" : "accepted",
                 w->event_id);
        httpd_respond(req, 200, headers, body, (size_t)n);
        return;
    }
    int status = 422;
    const char *extra = NULL;
    if (msg->code == HOV_ECONFLICT)
        status = 409; /* same Idempotency-Key, another body (domain 8.3) */
    /* An outcome sent before its event was delivered is 422 (samples
     * README), though the hub calls it temporary: the organisation should
     * send it again later, not treat Handover as unavailable. */
    else if (msg->temporary && msg->code != HOV_EREPLYTOLATER) {
        status = 503;
        extra = "Retry-After: 10";
    }
    hov_warn("hub refused event=%s code=%s reason=\"%s\"", w->event_id,
             hov_errname(msg->code), msg->reason);
    respond(req, status, msg->reason, extra);
}

void
vol_inbound_answer(vol *v, const hov_msg *msg)
{
    if (v->in == NULL)
        return;
    waiting **pp = &v->in->waits;
    while (*pp != NULL && (*pp)->seq != msg->seq)
        pp = &(*pp)->next;
    waiting *w = *pp;
    if (w == NULL)
        return;
    *pp = w->next;
    if (w->req != NULL)
        respond_hub(w, msg);
    else
        hov_info("hub answered after the webhook was given up event=%s "
                 "result=%s",
                 w->event_id,
                 msg->kind == HOV_MSG_ACK ? "ack" : hov_errname(msg->code));
    free(w);
}

static void
on_timer(uv_timer_t *t)
{
    vol *v = t->data;
    uint64_t now = hov_mono_ms();
    for (waiting *w = v->in->waits; w != NULL; w = w->next) {
        if (w->req == NULL || now - w->since_ms < v->cfg.hub_timeout_ms)
            continue;
        hov_warn("no hub answer event=%s within %llu ms: 503 sent; the "
                 "publish is kept and resent to the hub",
                 w->event_id, (unsigned long long)v->cfg.hub_timeout_ms);
        respond(w->req, 503,
                "temporarily unavailable: the hub did not answer in time; "
                "resend later (a resend is harmless)",
                "Retry-After: 10");
        w->req = NULL;
    }
}

hov_err
vol_inbound_start(vol *v, hov_error *err)
{
    vol_inbound *in = calloc(1, sizeof *in);
    if (in == NULL)
        return hov_fail(err, HOV_ENOMEM, 0, "inbound");
    v->in = in;
    uv_timer_init(v->loop, &in->timer);
    in->timer.data = v;
    uv_timer_start(&in->timer, on_timer, 250, 250);
    httpd_opts o = {
        .host = v->cfg.listen_host,
        .port = (int)v->cfg.listen_port,
        .max_body_bytes = (size_t)v->cfg.max_body,
        .header_timeout_ms = v->cfg.header_timeout_ms,
        .body_timeout_ms = v->cfg.body_timeout_ms,
        .idle_timeout_ms = v->cfg.idle_timeout_ms,
        .max_conns = (unsigned)v->cfg.max_conns,
        .name = "webhook",
    };
    return httpd_start(v->loop, &o, on_request, v, &in->server, err);
}

static void
on_timer_closed(uv_handle_t *h)
{
    vol *v = h->data;
    free(v->in);
    v->in = NULL;
}

void
vol_inbound_stop(vol *v)
{
    vol_inbound *in = v->in;
    if (in == NULL || in->stopped)
        return;
    in->stopped = true;
    httpd_stop(in->server);
    in->server = NULL;
    while (in->waits != NULL) {
        waiting *w = in->waits;
        in->waits = w->next;
        if (w->req != NULL)
            respond(w->req, 503, "the adapter is stopping; resend later",
                    "Retry-After: 10");
        free(w);
    }
    uv_close((uv_handle_t *)&in->timer, on_timer_closed);
}
