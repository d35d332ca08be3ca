/* Deliveries to the GP system: each discharge or outcome the hub delivers
 * is POSTed as FHIR with a conditional create keyed on the event id
 * (If-None-Exist), so a redelivery after a crash or a timeout creates
 * nothing new at the GP system. Settled by the answer (domain 6.5):
 * 2xx done; 4xx rejected with the OperationOutcome's text (dead letters);
 * 5xx, timeouts and connection failures retry later with back-off.
 *
 * Several deliveries may be in flight (partner.concurrency): the hub keeps
 * one patient's deliveries in order by holding the next until the one
 * before is settled, so concurrency never reorders a patient's events.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fhir_out.h"
#include "gp.h"
#include "handover.pb-c.h"
#include "handover/log.h"
#include "httpc.h"

typedef struct odeliv {
    gp_outbound *o;
    uint64_t delivery_id;
    uint32_t attempt;
    char event_id[37];
    char url[512];
    char ine[320]; /* If-None-Exist: ... */
    char *body;
    size_t len;
    struct odeliv *next;
} odeliv;

struct gp_outbound {
    gp *g;
    httpc *http;
    odeliv *head, *tail; /* waiting for a slot */
    odeliv *busy;        /* in flight */
    size_t inflight;
    bool stopped;
};

static void out_pump(gp_outbound *o);

static void
odeliv_free(odeliv *d)
{
    if (d != NULL)
        free(d->body);
    free(d);
}

static void
out_settle(gp_outbound *o, odeliv *d, hov_settle how, const char *reason)
{
    hublink_settle_log(o->g->hub, d->delivery_id, d->event_id, d->attempt, how,
                       reason, NULL);
}

/* The most useful sentence in an OperationOutcome answer, for the dead
 * letter: the first issue's diagnostics, else its details text, else the
 * start of the body. */
static void
outcome_text(const uint8_t *body, size_t len, char *out, size_t outsz)
{
    out[0] = '\0';
    json_error_t je;
    json_t *j = len ? json_loadb((const char *)body, len, 0, &je) : NULL;
    json_t *issue = j ? json_array_get(json_object_get(j, "issue"), 0) : NULL;
    const char *d = json_string_value(json_object_get(issue, "diagnostics"));
    if (d == NULL)
        d = json_string_value(
            json_object_get(json_object_get(issue, "details"), "text"));
    if (d != NULL)
        snprintf(out, outsz, "%s", d);
    else if (len > 0)
        snprintf(out, outsz, "%.*s", (int)(len < 160 ? len : 160),
                 (const char *)body);
    json_decref(j);
    for (char *p = out; *p; p++)
        if (*p == '\r' || *p == '\n')
            *p = ' ';
}

static void
unlink_busy(gp_outbound *o, odeliv *d)
{
    for (odeliv **pp = &o->busy; *pp; pp = &(*pp)->next)
        if (*pp == d) {
            *pp = d->next;
            break;
        }
    o->inflight--;
}

static void
on_answer(void *user, const httpc_result *r)
{
    odeliv *d = user;
    gp_outbound *o = d->o;
    unlink_busy(o, d);
    if (o->stopped) {
        odeliv_free(d); /* unsettled: the hub delivers it again */
        return;
    }
    char text[256], reason[400];
    if (r->status >= 200 && r->status < 300) {
        out_settle(o, d, HOV_SETTLE_DONE, NULL);
    } else if (r->status >= 400 && r->status < 500) {
        outcome_text(r->body, r->len, text, sizeof text);
        snprintf(reason, sizeof reason, "GP system answered %ld: %s", r->status,
                 text[0] ? text : "(no OperationOutcome)");
        out_settle(o, d, HOV_SETTLE_REJECTED, reason);
    } else if (r->status >= 500) {
        outcome_text(r->body, r->len, text, sizeof text);
        snprintf(reason, sizeof reason, "GP system answered %ld: %s", r->status,
                 text[0] ? text : "(no OperationOutcome)");
        out_settle(o, d, HOV_SETTLE_RETRY, reason);
    } else {
        snprintf(reason, sizeof reason, "GP system unreachable: %s%s",
                 r->timed_out ? "timed out: " : "",
                 r->error && r->error[0] ? r->error : "no answer");
        out_settle(o, d, HOV_SETTLE_RETRY, reason);
    }
    odeliv_free(d);
    out_pump(o);
}

static void
out_pump(gp_outbound *o)
{
    while (!o->stopped && o->head != NULL &&
           o->inflight < o->g->cfg.partner_concurrency) {
        odeliv *d = o->head;
        o->head = d->next;
        if (o->head == NULL)
            o->tail = NULL;
        d->next = o->busy;
        o->busy = d;
        o->inflight++;
        const char *headers[] = {
            "Content-Type: application/fhir+json; charset=utf-8",
            "Accept: application/fhir+json",
            d->ine,
            NULL,
        };
        hov_error err = {0};
        if (httpc_post(o->http, d->url, headers, d->body, d->len,
                       o->g->cfg.partner_timeout_ms, on_answer, d,
                       &err) != HOV_OK) {
            unlink_busy(o, d);
            /* A URL or header the client refuses will not improve on a
             * retry, but the configuration may be fixed and redriven. */
            out_settle(o, d, HOV_SETTLE_RETRY, err.msg);
            odeliv_free(d);
        }
    }
}

void
gp_outbound_deliver(gp *g, const hov_msg *msg)
{
    gp_outbound *o = g->out;
    if (o == NULL || o->stopped)
        return; /* stopping: left unsettled, delivered again */
    odeliv *d = calloc(1, sizeof *d);
    if (d == NULL) {
        hov_error err = {0};
        if (hublink_settle(g->hub, msg->delivery_id, HOV_SETTLE_RETRY,
                           "adapter out of memory", &err) != HOV_OK)
            hov_warn("settle: %s", err.msg);
        return;
    }
    d->o = o;
    d->delivery_id = msg->delivery_id;
    d->attempt = msg->attempt;
    snprintf(d->event_id, sizeof d->event_id, "%s", msg->event_id);
    Handover__Event *ev =
        handover__event__unpack(NULL, msg->event_len, msg->event);
    if (ev == NULL) {
        out_settle(o, d, HOV_SETTLE_REJECTED,
                   "the delivered event could not be decoded");
        odeliv_free(d);
        return;
    }
    fhir_out_opts fo = {.base = g->cfg.base, .destination = msg->destination};
    fhir_out_result fr;
    char why[256] = "";
    int rc = fhir_out(ev, &fo, &fr, why, sizeof why);
    handover__event__free_unpacked(ev, NULL);
    if (rc != 0) {
        out_settle(o, d, rc == -1 ? HOV_SETTLE_REJECTED : HOV_SETTLE_RETRY,
                   rc == -1 ? why : "adapter out of memory");
        fhir_out_result_free(&fr);
        odeliv_free(d);
        return;
    }
    snprintf(d->url, sizeof d->url, "%s/%s", g->cfg.partner_url, fr.path);
    snprintf(d->ine, sizeof d->ine, "If-None-Exist: %s", fr.if_none_exist);
    d->body = fr.body;
    d->len = fr.len;
    fr.body = NULL;
    fhir_out_result_free(&fr);
    if (o->tail != NULL)
        o->tail->next = d;
    else
        o->head = d;
    o->tail = d;
    out_pump(o);
}

hov_err
gp_outbound_start(gp *g, hov_error *err)
{
    gp_outbound *o = calloc(1, sizeof *o);
    if (o == NULL)
        return hov_fail(err, HOV_ENOMEM, 0, "outbound");
    o->g = g;
    g->out = o;
    httpc_opts ho = {
        .ca_file = g->cfg.partner_ca_file[0] ? g->cfg.partner_ca_file : NULL,
        .user_agent = "handover-gp",
    };
    return httpc_new(g->loop, &ho, &o->http, err);
}

void
gp_outbound_stop(gp *g)
{
    gp_outbound *o = g->out;
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
    g->out = NULL;
    free(o);
}
