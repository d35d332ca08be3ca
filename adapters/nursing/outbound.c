/* Deliveries to the community nursing system: one MLLP connection, one
 * message at a time, settled only after the partner's ACK (domain 5.6):
 * AA/CA done; AE/CE rejected with the ERR text (dead letters); AR/CR
 * retry later, except codes 200 to 203 (the partner will never take that
 * type or version), rejected; no ACK within the timeout, retry later.
 *
 * A redelivery of the same event is the same message byte for byte:
 * MSH-10 comes from the event id and MSH-7 from the hub's received_at, so
 * the partner can recognise a resend by its control id.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handover.pb-c.h"
#include "handover/log.h"
#include "handover/timeutil.h"
#include "hl7.h"
#include "map_out.h"
#include "mllp.h"
#include "nursing.h"

typedef struct odeliv {
    uint64_t delivery_id;
    uint32_t attempt;
    char event_id[37];
    char control[21];
    uint8_t *framed;
    size_t len;
    struct odeliv *next;
} odeliv;

typedef enum ostate {
    O_IDLE,       /* no connection */
    O_CONNECTING, /* connect in progress */
    O_READY,      /* connected, nothing in flight */
    O_AWAIT_ACK,  /* head sent, waiting for its ACK */
} ostate;

struct outbound {
    nursing *n;
    odeliv *head, *tail;
    size_t queued;
    ostate state;
    uv_tcp_t *tcp; /* NULL when closed; freed by its close callback */
    uv_connect_t connect;
    uv_timer_t timer;
    mllp_framer *fr;
    bool stopped;
};

static void out_pump(outbound *o);

static void
odeliv_free(odeliv *d)
{
    if (d != NULL)
        free(d->framed);
    free(d);
}

static odeliv *
out_pop(outbound *o)
{
    odeliv *d = o->head;
    if (d != NULL) {
        o->head = d->next;
        if (o->head == NULL)
            o->tail = NULL;
        o->queued--;
    }
    return d;
}

static void
out_settle(outbound *o, odeliv *d, hov_settle how, const char *reason)
{
    char extra[40];
    snprintf(extra, sizeof extra, " control_id=%s", d->control);
    hublink_settle_log(o->n->hub, d->delivery_id, d->event_id, d->attempt, how,
                       reason, extra);
}

static void
on_tcp_closed(uv_handle_t *h)
{
    free(h);
}

static void
out_disconnect(outbound *o)
{
    if (o->tcp != NULL) {
        o->tcp->data = NULL;
        uv_close((uv_handle_t *)o->tcp, on_tcp_closed);
        o->tcp = NULL;
    }
    if (o->fr != NULL)
        mllp_framer_reset(o->fr);
    uv_timer_stop(&o->timer);
    o->state = O_IDLE;
}

/* The partner cannot be reached: every queued delivery goes back to the
 * hub to be retried with back-off, rather than each one waiting out its
 * own connect attempt. */
static void
out_fail_all(outbound *o, const char *reason)
{
    out_disconnect(o);
    odeliv *d;
    while ((d = out_pop(o)) != NULL) {
        out_settle(o, d, HOV_SETTLE_RETRY, reason);
        odeliv_free(d);
    }
}

static void
on_ack_timeout(uv_timer_t *t)
{
    outbound *o = t->data;
    char reason[128];
    if (o->state == O_CONNECTING) {
        snprintf(reason, sizeof reason,
                 "partner unreachable: no connection to %s:%llu within "
                 "%llu ms",
                 o->n->cfg.partner_host,
                 (unsigned long long)o->n->cfg.partner_port,
                 (unsigned long long)o->n->cfg.connect_timeout_ms);
        out_fail_all(o, reason);
        return;
    }
    if (o->state != O_AWAIT_ACK)
        return;
    snprintf(reason, sizeof reason, "no ACK from the partner within %llu s",
             (unsigned long long)o->n->cfg.ack_timeout_ms / 1000);
    /* Close: a late ACK on this connection must not be taken for the
     * next message's. */
    out_disconnect(o);
    odeliv *d = out_pop(o);
    out_settle(o, d, HOV_SETTLE_RETRY, reason);
    odeliv_free(d);
    out_pump(o);
}

/* Decide what the partner's ACK means for the delivery at the head. */
static void
out_ack(outbound *o, const uint8_t *body, size_t len)
{
    odeliv *d = o->head;
    hl7_parse_opts po = {.accept_lf = true};
    hl7_error perr = {0};
    hl7_msg *m = NULL;
    hl7_ack_info ai;
    int rc = hl7_parse(body, len, &po, &m, &perr);
    if (rc == 0)
        rc = hl7_ack_read(m, &ai, &perr);
    hl7_msg_free(m);
    if (rc != 0) {
        hov_warn("partner answer event=%s is not a readable ACK (%s): "
                 "waiting on",
                 d ? d->event_id : "-", perr.text);
        return;
    }
    if (d == NULL || o->state != O_AWAIT_ACK ||
        strcmp(ai.control, d->control) != 0) {
        hov_warn("partner ACK for control_id=%s matches nothing in "
                 "flight: ignored",
                 ai.control);
        return;
    }
    uv_timer_stop(&o->timer);
    out_pop(o);
    o->state = O_READY;
    char reason[400];
    const char *text = ai.text[0] ? ai.text : "(no text)";
    if (ai.code[1] == 'A') {
        out_settle(o, d, HOV_SETTLE_DONE, NULL);
    } else if (ai.code[1] == 'E') {
        snprintf(reason, sizeof reason, "partner answered %s %d: %s", ai.code,
                 ai.err_code, text);
        out_settle(o, d, HOV_SETTLE_REJECTED, reason);
    } else if (ai.err_code >= 200 && ai.err_code <= 203) {
        snprintf(reason, sizeof reason,
                 "partner answered %s %d (it does not take this message "
                 "type or version): %s",
                 ai.code, ai.err_code, text);
        out_settle(o, d, HOV_SETTLE_REJECTED, reason);
    } else {
        snprintf(reason, sizeof reason, "partner answered %s %d: %s", ai.code,
                 ai.err_code, text);
        out_settle(o, d, HOV_SETTLE_RETRY, reason);
    }
    odeliv_free(d);
    out_pump(o);
}

static int
out_frame_cb(void *user, const mllp_event *ev)
{
    outbound *o = user;
    if (ev->kind == MLLP_FRAME && !(ev->flags & MLLP_F_BAD_END) &&
        !(ev->flags & MLLP_F_OVERSIZE))
        out_ack(o, ev->body, ev->len);
    else if (ev->kind == MLLP_JUNK)
        hov_warn("partner sent %zu bytes outside an MLLP frame", ev->len);
    else if (ev->kind == MLLP_FRAME)
        hov_warn("partner sent an untrustworthy frame: ignored");
    return 0;
}

static void
out_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    buf->base = malloc(suggested);
    buf->len = buf->base ? suggested : 0;
}

static void
out_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    outbound *o = s->data;
    if (o == NULL) {
        free(buf->base);
        return;
    }
    if (nread > 0) {
        (void)mllp_feed(o->fr, (const uint8_t *)buf->base, (size_t)nread,
                        out_frame_cb, o);
        free(buf->base);
        return;
    }
    free(buf->base);
    if (nread == 0)
        return;
    char reason[128];
    snprintf(reason, sizeof reason, "partner closed the connection%s%s",
             nread == UV_EOF ? "" : ": ",
             nread == UV_EOF ? "" : uv_strerror((int)nread));
    bool awaiting = o->state == O_AWAIT_ACK;
    out_disconnect(o);
    if (awaiting) {
        odeliv *d = out_pop(o);
        out_settle(o, d, HOV_SETTLE_RETRY, reason);
        odeliv_free(d);
    } else {
        hov_info("%s", reason);
    }
    out_pump(o);
}

static void
on_sent(uv_write_t *w, int status)
{
    outbound *o = w->data;
    free(w);
    if (status < 0 && status != UV_ECANCELED && o != NULL && !o->stopped)
        hov_warn("sending to the partner failed: %s", uv_strerror(status));
}

static void
out_send_head(outbound *o)
{
    odeliv *d = o->head;
    uv_write_t *w = malloc(sizeof *w);
    if (w == NULL) {
        out_fail_all(o, "out of memory sending to the partner");
        return;
    }
    w->data = o;
    uv_buf_t buf = uv_buf_init((char *)d->framed, (unsigned)d->len);
    /* d->framed stays alive until the ACK settles d, past the write. */
    int rc = uv_write(w, (uv_stream_t *)o->tcp, &buf, 1, on_sent);
    if (rc != 0) {
        free(w);
        char reason[128];
        snprintf(reason, sizeof reason, "send to the partner: %s",
                 uv_strerror(rc));
        out_disconnect(o);
        odeliv *x = out_pop(o);
        out_settle(o, x, HOV_SETTLE_RETRY, reason);
        odeliv_free(x);
        out_pump(o);
        return;
    }
    o->state = O_AWAIT_ACK;
    hov_debug("sent event=%s control_id=%s", d->event_id, d->control);
    uv_timer_start(&o->timer, on_ack_timeout, o->n->cfg.ack_timeout_ms, 0);
}

static void
on_connected(uv_connect_t *req, int status)
{
    outbound *o = req->data;
    if (o->stopped || o->state != O_CONNECTING ||
        req->handle != (uv_stream_t *)o->tcp)
        return;
    uv_timer_stop(&o->timer);
    if (status < 0) {
        char reason[160];
        snprintf(reason, sizeof reason,
                 "partner unreachable: connect to %s:%llu: %s",
                 o->n->cfg.partner_host,
                 (unsigned long long)o->n->cfg.partner_port,
                 uv_strerror(status));
        out_fail_all(o, reason);
        return;
    }
    hov_info("connected to the partner %s:%llu", o->n->cfg.partner_host,
             (unsigned long long)o->n->cfg.partner_port);
    o->tcp->data = o;
    if (uv_read_start((uv_stream_t *)o->tcp, out_alloc, out_read) != 0) {
        out_fail_all(o, "partner connection: cannot read");
        return;
    }
    o->state = O_READY;
    out_pump(o);
}

static void
out_pump(outbound *o)
{
    if (o->stopped || o->head == NULL)
        return;
    if (o->state == O_READY) {
        out_send_head(o);
        return;
    }
    if (o->state != O_IDLE)
        return;
    struct sockaddr_in addr;
    int rc =
        uv_ip4_addr(o->n->cfg.partner_host, (int)o->n->cfg.partner_port, &addr);
    uv_tcp_t *tcp = rc == 0 ? malloc(sizeof *tcp) : NULL;
    if (tcp == NULL) {
        out_fail_all(o, rc != 0 ? "partner.host is not an IPv4 address"
                                : "out of memory connecting to the partner");
        return;
    }
    uv_tcp_init(o->n->loop, tcp);
    tcp->data = o;
    o->connect.data = o;
    rc = uv_tcp_connect(&o->connect, tcp, (const struct sockaddr *)&addr,
                        on_connected);
    o->tcp = tcp;
    if (rc != 0) {
        char reason[128];
        snprintf(reason, sizeof reason, "partner unreachable: %s",
                 uv_strerror(rc));
        out_fail_all(o, reason);
        return;
    }
    o->state = O_CONNECTING;
    uv_timer_start(&o->timer, on_ack_timeout, o->n->cfg.connect_timeout_ms, 0);
}

void
outbound_deliver(nursing *n, const hov_msg *msg)
{
    outbound *o = n->out;
    if (o == NULL)
        return; /* stopping: left unsettled, delivered again */
    odeliv *d = calloc(1, sizeof *d);
    if (d == NULL) {
        hov_error err = {0};
        if (hublink_settle(n->hub, msg->delivery_id, HOV_SETTLE_RETRY,
                           "adapter out of memory", &err) != HOV_OK)
            hov_warn("settle: %s", err.msg);
        return;
    }
    d->delivery_id = msg->delivery_id;
    d->attempt = msg->attempt;
    snprintf(d->event_id, sizeof d->event_id, "%s", msg->event_id);
    map_out_control_id(msg->event_id, d->control);

    Handover__Event *ev =
        handover__event__unpack(NULL, msg->event_len, msg->event);
    if (ev == NULL) {
        out_settle(o, d, HOV_SETTLE_REJECTED,
                   "the delivered event could not be decoded");
        odeliv_free(d);
        return;
    }
    uint64_t stamp = 0;
    if (!hov_rfc3339_to_ms(ev->received_at, &stamp))
        stamp = hov_now_ms();
    map_out_opts mo = {
        .recv_app = n->cfg.partner_app,
        .recv_facility = n->cfg.partner_facility,
        .now_ms = stamp,
        .destination = msg->destination,
    };
    uint8_t *body = NULL;
    size_t blen = 0;
    char why[256] = "";
    int rc = map_out(ev, &mo, &body, &blen, why, sizeof why);
    handover__event__free_unpacked(ev, NULL);
    if (rc == 0 && mllp_wrap(body, blen, &d->framed, &d->len) != 0)
        rc = -2;
    free(body);
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
    o->queued++;
    out_pump(o);
}

hov_err
outbound_start(nursing *n, hov_error *err)
{
    outbound *o = calloc(1, sizeof *o);
    if (o == NULL || (o->fr = mllp_framer_new(0, 0)) == NULL) {
        free(o);
        return hov_fail(err, HOV_ENOMEM, 0, "outbound");
    }
    o->n = n;
    uv_timer_init(n->loop, &o->timer);
    o->timer.data = o;
    n->out = o;
    return HOV_OK;
}

static void
on_timer_closed(uv_handle_t *h)
{
    outbound *o = h->data;
    mllp_framer_free(o->fr);
    free(o);
}

void
outbound_stop(nursing *n)
{
    outbound *o = n->out;
    if (o == NULL || o->stopped)
        return;
    o->stopped = true;
    out_disconnect(o);
    odeliv *d;
    while ((d = out_pop(o)) != NULL)
        odeliv_free(d); /* unsettled: the hub delivers them again */
    n->out = NULL;
    uv_close((uv_handle_t *)&o->timer, on_timer_closed);
}
