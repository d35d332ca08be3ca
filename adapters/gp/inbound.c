/* The GP system's requests: FHIR in, events to the hub, 201 only after
 * the hub's durable Ack (domain 6.5). A request waits for its hub answer
 * while the HTTP server holds the connection (keep-alive requests behind
 * it wait too, in order). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fhir_in.h"
#include "gp.h"
#include "handover.pb-c.h"
#include "handover/ident.h"
#include "handover/log.h"
#include "handover/timeutil.h"
#include "httpd.h"

/* A request waiting for the hub. Owned by the inbound list until the hub
 * answers (the client keeps and resends the publish until then). */
typedef struct waiting {
    uint64_t seq;
    httpd_req *req; /* NULL once answered otherwise (hub timeout, stop) */
    uint64_t since_ms;
    char event_id[37];
    char type[16];
    struct waiting *next;
} waiting;

struct gp_inbound {
    httpd *server;
    uv_timer_t timer; /* hub timeouts */
    waiting *waits;
    bool stopped;
};

static const char *const FHIR_JSON = "Content-Type: application/fhir+json; "
                                     "charset=utf-8";

/* Answer with an OperationOutcome; extra is one more header or NULL. */
static void
respond_oo(httpd_req *req, int status, const fhir_in_outcome *oo,
           const char *extra)
{
    char *body = fhir_in_outcome_json(oo);
    const char *headers[3] = {FHIR_JSON, extra, NULL};
    if (body == NULL) {
        static const char *const plain[] = {"Content-Type: text/plain", NULL};
        static const char oom[] = "out of memory; resend later\n";
        httpd_respond(req, 503, plain, oom, sizeof oom - 1);
        return;
    }
    httpd_respond(req, status, headers, body, strlen(body));
    free(body);
}

static void
respond_issue(httpd_req *req, int status, const char *code,
              const char *expression, const char *extra, const char *text)
{
    fhir_in_outcome oo = {0};
    fhir_in_outcome_add(&oo, "error", code, expression, "%s", text);
    respond_oo(req, status, &oo, extra);
}

/* GET /fhir/metadata: what this server supports (domain 6.1). */
static void
respond_metadata(gp *g, httpd_req *req)
{
    char now[32];
    hov_rfc3339_format(hov_now_ms(), now);
    char body[2048];
    int n = snprintf(
        body, sizeof body,
        "{\"resourceType\":\"CapabilityStatement\",\"status\":\"active\","
        "\"date\":\"%s\",\"publisher\":\"Handover\",\"kind\":\"instance\","
        "\"software\":{\"name\":\"handover-gp\"},"
        "\"implementation\":{\"description\":\"Handover GP system adapter: "
        "referrals, equipment orders and outcomes in; discharges and "
        "outcomes out\"},"
        "\"fhirVersion\":\"4.0.1\",\"format\":[\"json\"],"
        "\"rest\":[{\"mode\":\"server\",\"resource\":["
        "{\"type\":\"ServiceRequest\",\"interaction\":[{\"code\":\"create\"}],"
        "\"conditionalCreate\":true},"
        "{\"type\":\"DeviceRequest\",\"interaction\":[{\"code\":\"create\"}],"
        "\"conditionalCreate\":true},"
        "{\"type\":\"Task\",\"interaction\":[{\"code\":\"create\"}],"
        "\"conditionalCreate\":true}],"
        "\"interaction\":[{\"code\":\"transaction\",\"documentation\":"
        "\"message Bundles only: POST %s or %s/$process-message\"}]}],"
        "\"messaging\":[{\"supportedMessage\":[{\"mode\":\"receiver\","
        "\"definition\":\"%s/MessageDefinition/referral\"},"
        "{\"mode\":\"receiver\",\"definition\":"
        "\"%s/MessageDefinition/equipment-order\"},"
        "{\"mode\":\"receiver\",\"definition\":\"%s/MessageDefinition/"
        "outcome\"}]}]}",
        now, "/fhir", "/fhir", g->cfg.base, g->cfg.base, g->cfg.base);
    const char *headers[] = {FHIR_JSON, NULL};
    httpd_respond(req, 200, headers, body,
                  n > 0 && (size_t)n < sizeof body ? (size_t)n : 0);
}

/* The If-None-Exist header must search on the resource's own business
 * identifier: that is what the event id is derived from, so it is the
 * only search Handover can answer exactly (one match or none). */
static bool
if_none_exist_ok(const char *header, const char *identifier, char *why,
                 size_t whysz)
{
    if (header == NULL)
        return true;
    const char *eq = strchr(header, '=');
    if (eq == NULL ||
        strncmp(header, "identifier", (size_t)(eq - header)) != 0 ||
        (size_t)(eq - header) != strlen("identifier")) {
        snprintf(why, whysz,
                 "If-None-Exist supports only identifier=<system>|<value>");
        return false;
    }
    if (strcmp(eq + 1, identifier) != 0) {
        snprintf(why, whysz,
                 "If-None-Exist names identifier %.120s, but the resource's "
                 "business identifier is %.120s",
                 eq + 1, identifier);
        return false;
    }
    return true;
}

static bool
endpoint_of(const char *path, fhir_in_endpoint *ep)
{
    static const struct {
        const char *path;
        fhir_in_endpoint ep;
    } map[] = {
        {"/fhir/ServiceRequest", FHIR_IN_SERVICE_REQUEST},
        {"/fhir/DeviceRequest", FHIR_IN_DEVICE_REQUEST},
        {"/fhir/Task", FHIR_IN_TASK},
        {"/fhir", FHIR_IN_MESSAGE},
        {"/fhir/", FHIR_IN_MESSAGE},
        {"/fhir/$process-message", FHIR_IN_MESSAGE},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (strcmp(path, map[i].path) == 0) {
            *ep = map[i].ep;
            return true;
        }
    return false;
}

static void
on_request(void *user, httpd_req *req)
{
    gp *g = user;
    const char *method = httpd_req_method(req);
    const char *path = httpd_req_path(req);
    if (strcmp(path, "/fhir/metadata") == 0 && strcmp(method, "GET") == 0) {
        respond_metadata(g, req);
        return;
    }
    fhir_in_endpoint ep;
    if (!endpoint_of(path, &ep)) {
        respond_issue(req, 404, "not-found", NULL, NULL,
                      "no such endpoint: Handover takes POST /fhir, "
                      "/fhir/$process-message, /fhir/ServiceRequest, "
                      "/fhir/DeviceRequest and /fhir/Task, and GET "
                      "/fhir/metadata");
        return;
    }
    if (strcmp(method, "POST") != 0) {
        respond_issue(req, 405, "not-supported", NULL, "Allow: POST",
                      "only POST (create) is supported on this endpoint");
        return;
    }
    size_t len = 0;
    const uint8_t *body = httpd_req_body(req, &len);
    fhir_in_opts o = {
        .gp_orgs = (const char *const *)g->cfg.gp_orgs,
        .base = g->cfg.base,
        .max_body = (size_t)g->cfg.max_body,
    };
    fhir_in_result r;
    int st =
        fhir_in(ep, body, len, httpd_req_header(req, "Content-Type"), &o, &r);
    if (st != 0) {
        hov_warn("refused %d peer=%s path=%s issue=%s reason=\"%s\"", st,
                 httpd_req_peer(req), path, r.oo.n ? r.oo.issues[0].code : "",
                 r.oo.n ? r.oo.issues[0].diagnostics : "");
        respond_oo(req, st, &r.oo, st == 503 ? "Retry-After: 10" : NULL);
        fhir_in_result_free(&r);
        return;
    }
    char why[400];
    if (!if_none_exist_ok(httpd_req_header(req, "If-None-Exist"), r.identifier,
                          why, sizeof why)) {
        respond_issue(req, 400, "invalid", NULL, NULL, why);
        fhir_in_result_free(&r);
        return;
    }
    size_t plen = handover__event__get_packed_size(r.event);
    uint8_t *packed = malloc(plen ? plen : 1);
    waiting *w = calloc(1, sizeof *w);
    hov_error err = {0};
    hov_err rc = HOV_ENOMEM;
    if (packed != NULL && w != NULL) {
        handover__event__pack(r.event, packed);
        rc = hublink_publish(g->hub, packed, plen, NULL, &w->seq, &err);
    }
    free(packed);
    if (rc != HOV_OK) {
        free(w);
        respond_issue(req, 503, "transient", NULL, "Retry-After: 10",
                      "temporarily unavailable; resend later");
        fhir_in_result_free(&r);
        return;
    }
    w->req = req;
    w->since_ms = hov_mono_ms();
    snprintf(w->event_id, sizeof w->event_id, "%s", r.event->event_id);
    snprintf(w->type, sizeof w->type, "%s", r.resource_type);
    w->next = g->in->waits;
    g->in->waits = w;
    hov_debug("published event=%s type=%s", w->event_id, w->type);
    fhir_in_result_free(&r);
}

/* The hub's answer as an HTTP answer (domain 6.5). */
static void
respond_hub(waiting *w, const hov_msg *msg)
{
    httpd_req *req = w->req;
    if (msg->kind == HOV_MSG_ACK) {
        fhir_in_outcome oo = {0};
        char loc[96];
        snprintf(loc, sizeof loc, "Location: /fhir/%s/%s", w->type,
                 w->event_id);
        if (msg->duplicate) {
            fhir_in_outcome_add(&oo, "information", "informational", NULL,
                                "already held as event %s: nothing new was "
                                "created",
                                w->event_id);
            hov_info("duplicate event=%s", w->event_id);
            respond_oo(req, 200, &oo, loc);
            return;
        }
        fhir_in_outcome_add(&oo, "information", "informational", NULL,
                            "accepted as event %s", w->event_id);
        if (msg->warning[0] != '\0')
            fhir_in_outcome_add(&oo, "warning", "incomplete", NULL, "%s",
                                msg->warning);
        hov_info("accepted event=%s type=%s", w->event_id, w->type);
        respond_oo(req, 201, &oo, loc);
        return;
    }
    int status = 422;
    const char *code = "business-rule", *extra = NULL;
    switch (msg->code) {
    case HOV_ECONFLICT:
        status = 409;
        code = "conflict";
        break;
    case HOV_ENHSNUMBER:
    case HOV_EINVAL:
        code = "value";
        break;
    case HOV_EMISSING:
        code = "required";
        break;
    case HOV_ECODE:
        code = "code-invalid";
        break;
    case HOV_EREPLYTO:
    case HOV_EREPLYTOLATER:
        code = "not-found";
        break;
    default:
        break;
    }
    /* An outcome sent before its event was delivered is 422 not-found in
     * FHIR (domain 6.5), though the hub calls it temporary: the GP system
     * should send it again later, not treat the server as unavailable. */
    if (msg->temporary && msg->code != HOV_EREPLYTOLATER) {
        status = 503;
        code = "transient";
        extra = "Retry-After: 10";
    }
    hov_warn("hub refused event=%s code=%s reason=\"%s\"", w->event_id,
             hov_errname(msg->code), msg->reason);
    respond_issue(req, status, code, NULL, extra, msg->reason);
}

void
gp_inbound_answer(gp *g, const hov_msg *msg)
{
    if (g->in == NULL)
        return;
    waiting **pp = &g->in->waits;
    while (*pp != NULL && (*pp)->seq != msg->seq)
        pp = &(*pp)->next;
    waiting *w = *pp;
    if (w == NULL)
        return;
    *pp = w->next;
    if (w->req != NULL)
        respond_hub(w, msg);
    else
        hov_info("hub answered after the request was given up event=%s "
                 "result=%s",
                 w->event_id,
                 msg->kind == HOV_MSG_ACK ? "ack" : hov_errname(msg->code));
    free(w);
}

static void
on_timer(uv_timer_t *t)
{
    gp *g = t->data;
    uint64_t now = hov_mono_ms();
    for (waiting *w = g->in->waits; w != NULL; w = w->next) {
        if (w->req == NULL || now - w->since_ms < g->cfg.hub_timeout_ms)
            continue;
        hov_warn("no hub answer event=%s within %llu ms: 503 sent; the "
                 "publish is kept and resent to the hub",
                 w->event_id, (unsigned long long)g->cfg.hub_timeout_ms);
        respond_issue(w->req, 503, "transient", NULL, "Retry-After: 10",
                      "temporarily unavailable: the hub did not answer in "
                      "time; resend later (a resend is harmless)");
        w->req = NULL;
    }
}

hov_err
gp_inbound_start(gp *g, hov_error *err)
{
    gp_inbound *in = calloc(1, sizeof *in);
    if (in == NULL)
        return hov_fail(err, HOV_ENOMEM, 0, "inbound");
    g->in = in;
    uv_timer_init(g->loop, &in->timer);
    in->timer.data = g;
    uv_timer_start(&in->timer, on_timer, 250, 250);
    httpd_opts o = {
        .host = g->cfg.listen_host,
        .port = (int)g->cfg.listen_port,
        .max_body_bytes = (size_t)g->cfg.max_body,
        .header_timeout_ms = g->cfg.header_timeout_ms,
        .body_timeout_ms = g->cfg.body_timeout_ms,
        .idle_timeout_ms = g->cfg.idle_timeout_ms,
        .max_conns = (unsigned)g->cfg.max_conns,
        .name = "FHIR",
    };
    return httpd_start(g->loop, &o, on_request, g, &in->server, err);
}

static void
on_timer_closed(uv_handle_t *h)
{
    gp *g = h->data;
    free(g->in);
    g->in = NULL;
}

void
gp_inbound_stop(gp *g)
{
    gp_inbound *in = g->in;
    if (in == NULL || in->stopped)
        return;
    in->stopped = true;
    httpd_stop(in->server);
    in->server = NULL;
    while (in->waits != NULL) {
        waiting *w = in->waits;
        in->waits = w->next;
        if (w->req != NULL)
            respond_issue(w->req, 503, "transient", NULL, "Retry-After: 10",
                          "the adapter is stopping; resend later");
        free(w);
    }
    uv_close((uv_handle_t *)&in->timer, on_timer_closed);
}
