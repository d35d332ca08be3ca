/* The MLLP listener: HL7 messages in, events to the hub, ACKs back only
 * after the hub has answered (domain 5.6 "Commit before acknowledging").
 *
 * One message per connection is in flight at a time: HL7 senders wait for
 * an ACK before the next message, and a sender that pipelines anyway is
 * answered in order because the framer holds the rest of its bytes
 * (mllp_feed stops at each frame) and the socket is not read meanwhile.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handover.pb-c.h"
#include "handover/ident.h"
#include "handover/log.h"
#include "handover/timeutil.h"
#include "hl7.h"
#include "map_in.h"
#include "mllp.h"
#include "nursing.h"

typedef struct iconn iconn;

/* A publish waiting for the hub, owned by the inbound list until the hub
 * answers (the client resends it until then, even after its connection
 * has gone). */
typedef struct waiting {
    uint64_t seq;
    iconn *conn; /* NULL once the connection closed or gave up waiting */
    char event_id[37];
    char control[65];
    struct waiting *next;
} waiting;

struct iconn {
    nursing *n;
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_shutdown_t shutdown;
    int handles; /* open libuv handles, for the last close to free */
    mllp_framer *fr;
    char peer[64];
    uint64_t last_rx_ms;
    uint64_t frame_start_ms; /* 0: no frame in progress */
    hl7_msg *msg;            /* the message being answered */
    bool enhanced;
    waiting *wait; /* the publish this connection waits on */
    uint64_t wait_since_ms;
    bool reading;
    bool eof;
    bool closing;
    iconn *next;
};

struct inbound {
    uv_tcp_t server;
    iconn *conns;
    waiting *waits;
    bool stopped;
};

static int frame_cb(void *user, const mllp_event *ev);
static void conn_resume(iconn *c);
static void conn_close(iconn *c);

/* ---------------------------------------------------------------- ACKs */

static void
on_written(uv_write_t *w, int status)
{
    if (status < 0)
        hov_warn("MLLP: writing an ACK failed: %s", uv_strerror(status));
    free(w->data);
    free(w);
}

/* Send bytes framed as MLLP; takes ownership of body. */
static void
conn_send(iconn *c, uint8_t *body, size_t len)
{
    uint8_t *framed = NULL;
    size_t flen = 0;
    int rc = mllp_wrap(body, len, &framed, &flen);
    free(body);
    if (rc != 0 || c->closing) {
        free(framed);
        return;
    }
    uv_write_t *w = malloc(sizeof *w);
    if (w == NULL) {
        free(framed);
        return;
    }
    w->data = framed;
    uv_buf_t buf = uv_buf_init((char *)framed, (unsigned)flen);
    if (uv_write(w, (uv_stream_t *)&c->tcp, &buf, 1, on_written) != 0) {
        free(framed);
        free(w);
    }
}

/* Answer the message in c->msg (may be NULL: no usable MSH). code is the
 * original-mode code ("AA", "AE", "AR"); enhanced mode maps it to CA, CE
 * or CR (domain 5.6: CE pairs with AE, CR with AR). */
static void
conn_ack(iconn *c, const char *code, const char *text, const hl7_error *errs,
         size_t nerr, char severity)
{
    char control[37];
    hov_uuid_v4(control);
    /* 20 hex digits, like the ids Handover sends (MSH-10 <= 20). */
    char id[21];
    size_t j = 0;
    for (size_t i = 0; control[i] && j < 20; i++)
        if (control[i] != '-')
            id[j++] = control[i];
    id[j] = '\0';
    char enh[3];
    if (c->enhanced) {
        enh[0] = 'C';
        enh[1] = code[1];
        enh[2] = '\0';
        code = enh;
    }
    hl7_ack_opts o = {
        .code = code,
        .text = text,
        .errs = errs,
        .nerr = nerr,
        .severity = severity,
        .control_id = id,
        .now_ms = hov_now_ms(),
    };
    uint8_t *out = NULL;
    size_t len = 0;
    if (hl7_ack_build(c->msg, &o, &out, &len) != 0) {
        hov_errorf("MLLP %s: out of memory building an ACK; closing, so "
                   "the sender resends",
                   c->peer);
        conn_close(c);
        return;
    }
    conn_send(c, out, len);
}

/* The message's control id, for logs. */
static void
msg_control(const hl7_msg *m, char *out, size_t outsz)
{
    out[0] = '\0';
    if (m == NULL)
        return;
    hl7_str s = hl7_get(m, 0, 10, 0, 0, 0);
    size_t n = s.n < outsz - 1 ? s.n : outsz - 1;
    for (size_t i = 0; i < n; i++)
        out[i] = (s.p[i] >= 0x20 && s.p[i] < 0x7f) ? s.p[i] : '?';
    out[n] = '\0';
}

static void
log_reject(iconn *c, const hl7_error *e, const char *what)
{
    char control[65], loc[32];
    msg_control(c->msg, control, sizeof control);
    hl7_loc_format(&e->loc, loc, sizeof loc);
    hov_warn("%s control_id=%s peer=%s code=A%c %d%s%s reason=\"%s\"", what,
             control[0] ? control : "-", c->peer, e->ack, e->code,
             loc[0] ? " at " : "", loc, e->text);
}

/* Refuse the message with one error. */
static void
conn_refuse(iconn *c, const hl7_error *e)
{
    log_reject(c, e, "refused");
    conn_ack(c, e->ack == 'R' ? "AR" : "AE", e->text, e, 1, 'E');
}

/* ------------------------------------------------------------- frames */

static void
conn_done_with_msg(iconn *c)
{
    hl7_msg_free(c->msg);
    c->msg = NULL;
    c->enhanced = false;
}

/* A frame whose content cannot be trusted or is too big: answer AE 207
 * with the ACK built from its MSH when there is one (domain 5.7). */
static void
frame_refuse(iconn *c, const mllp_event *ev, const char *text)
{
    hl7_parse_opts po = {.accept_lf = true,
                         .default_charset = c->n->cfg.default_charset};
    hl7_error perr;
    hl7_msg *m = NULL;
    (void)hl7_parse(ev->body, ev->len, &po, &m, &perr);
    c->msg = m;
    c->enhanced = false;
    if (m != NULL) {
        hl7_str a = hl7_get(m, 0, 15, 0, 0, 0), b = hl7_get(m, 0, 16, 0, 0, 0);
        c->enhanced = a.n > 0 || b.n > 0;
    }
    hl7_error e = {.ack = 'E', .code = 207};
    snprintf(e.text, sizeof e.text, "%s", text);
    conn_refuse(c, &e);
    conn_done_with_msg(c);
}

static const char *
nak_text_prefix(const hov_msg *msg)
{
    return msg->temporary || msg->code == HOV_EREPLYTOLATER
               ? "temporarily unavailable; resend: "
               : "";
}

/* The hub answered the publish c waits on. */
static void
conn_hub_answer(iconn *c, const hov_msg *msg)
{
    char control[65];
    msg_control(c->msg, control, sizeof control);
    if (msg->kind == HOV_MSG_ACK) {
        if (msg->warning[0] != '\0') {
            char text[256];
            snprintf(text, sizeof text, "accepted; %s", msg->warning);
            hl7_error w = {.ack = 'E', .code = 207};
            snprintf(w.text, sizeof w.text, "%s", text);
            memcpy(w.loc.seg, "PD1", 4);
            w.loc.seq = 1;
            w.loc.field = 3;
            hov_warn("accepted with a warning event=%s control_id=%s "
                     "warning=\"%s\"",
                     msg->event_id, control, msg->warning);
            /* From v2.5 the warning also goes in an ERR with severity W;
             * hl7_ack_build writes ERR only for versions that have ERR-4,
             * and for older ones MSA-3 carries it alone (domain 5.6). */
            conn_ack(c, "AA", text, &w, 1, 'W');
        } else {
            hov_info("accepted event=%s control_id=%s%s peer=%s", msg->event_id,
                     control, msg->duplicate ? " duplicate=true" : "", c->peer);
            conn_ack(c, "AA", NULL, NULL, 0, 0);
        }
        return;
    }
    hl7_error e = {.ack = 'E', .code = 207};
    switch (msg->code) {
    case HOV_ECONFLICT:
        e.code = 205;
        memcpy(e.loc.seg, "MSH", 4);
        e.loc.seq = 1;
        e.loc.field = 10;
        break;
    case HOV_ENHSNUMBER:
        e.code = 102;
        memcpy(e.loc.seg, "PID", 4);
        e.loc.seq = 1;
        e.loc.field = 3;
        break;
    case HOV_ECODE:
        e.code = 103;
        break;
    case HOV_EREPLYTO:
    case HOV_EREPLYTOLATER:
        memcpy(e.loc.seg, "RF1", 4);
        e.loc.seq = 1;
        e.loc.field = 6;
        break;
    default:
        break;
    }
    if (msg->temporary || msg->code == HOV_EREPLYTOLATER)
        e.ack = 'R';
    snprintf(e.text, sizeof e.text, "%s%s", nak_text_prefix(msg), msg->reason);
    hov_warn("hub refused event=%s control_id=%s code=%s peer=%s "
             "reason=\"%s\"",
             msg->event_id, control, hov_errname(msg->code), c->peer,
             msg->reason);
    conn_ack(c, e.ack == 'R' ? "AR" : "AE", e.text, &e, 1, 'E');
}

void
inbound_answer(nursing *n, const hov_msg *msg)
{
    inbound *in = n->in;
    if (in == NULL)
        return;
    waiting **pp = &in->waits;
    while (*pp != NULL && (*pp)->seq != msg->seq)
        pp = &(*pp)->next;
    waiting *w = *pp;
    if (w == NULL)
        return;
    *pp = w->next;
    iconn *c = w->conn;
    if (c == NULL) {
        /* Its sender gave up or went away; it will resend, and the hub
         * will call the resend a duplicate. */
        hov_info("hub answered after the sender left event=%s "
                 "control_id=%s result=%s",
                 w->event_id, w->control,
                 msg->kind == HOV_MSG_ACK ? "ack" : hov_errname(msg->code));
        free(w);
        return;
    }
    c->wait = NULL;
    free(w);
    conn_hub_answer(c, msg);
    conn_done_with_msg(c);
    conn_resume(c);
}

/* Map and publish one message; returns true when it now waits on the hub
 * (the framer must stop), false when it was answered at once. */
static bool
conn_message(iconn *c, const uint8_t *body, size_t len)
{
    nursing *n = c->n;
    hl7_parse_opts po = {.accept_lf = n->cfg.accept_lf,
                         .default_charset = n->cfg.default_charset};
    hl7_error perr = {0};
    hl7_msg *m = NULL;
    int prc = hl7_parse(body, len, &po, &m, &perr);
    c->msg = m;
    if (m != NULL) {
        hl7_str a = hl7_get(m, 0, 15, 0, 0, 0), b = hl7_get(m, 0, 16, 0, 0, 0);
        c->enhanced = a.n > 0 || b.n > 0;
    }
    if (prc != 0) {
        conn_refuse(c, &perr);
        conn_done_with_msg(c);
        return false;
    }
    if (hl7_eq(hl7_get(m, 0, 9, 0, 1, 0), "ACK")) {
        /* Never acknowledge an ACK (domain 5.6): a partner that sends one
         * here has its connections crossed, and an answer would loop. */
        char control[65];
        msg_control(m, control, sizeof control);
        hov_warn("MLLP %s: an ACK (control_id=%s) arrived on the inbound "
                 "listener: ignored, not answered",
                 c->peer, control);
        conn_done_with_msg(c);
        return false;
    }
    if (hl7_msg_warnings(m) & HL7_WARN_LF_TERMINATORS)
        hov_warn("MLLP %s: LF segment terminators accepted "
                 "(hl7.accept_lf_terminators)",
                 c->peer);

    map_in_opts mo = {
        .processing_ids = (const char *const *)n->cfg.processing_ids,
        /* The hub owns the test-range rule (allow_test_nhs_numbers): the
         * adapter checks the digits and leaves that one decision to it. */
        .allow_test_nhs_numbers = true,
    };
    map_in_result r;
    int mrc = map_in(m, &mo, &r);
    for (size_t i = 0; i < r.nwarn; i++)
        hov_warn("MLLP %s: %s", c->peer, r.warnings[i]);
    if (mrc != 0) {
        for (size_t i = 0; i < r.nerr; i++)
            log_reject(c, &r.errs[i], "refused");
        conn_ack(c, r.errs[0].ack == 'R' ? "AR" : "AE", r.errs[0].text, r.errs,
                 r.nerr, 'E');
        map_in_result_free(&r);
        conn_done_with_msg(c);
        return false;
    }
    if (r.ack_only) {
        hov_info("acknowledged, not routed type=%s peer=%s", r.type, c->peer);
        conn_ack(c, "AA", NULL, NULL, 0, 0);
        map_in_result_free(&r);
        conn_done_with_msg(c);
        return false;
    }

    size_t plen = handover__event__get_packed_size(r.event);
    uint8_t *packed = malloc(plen ? plen : 1);
    waiting *w = calloc(1, sizeof *w);
    hov_error err = {0};
    hov_err rc = HOV_ENOMEM;
    if (packed != NULL && w != NULL) {
        handover__event__pack(r.event, packed);
        rc = hublink_publish(n->hub, packed, plen, NULL, &w->seq, &err);
    }
    free(packed);
    if (rc != HOV_OK) {
        free(w);
        hl7_error e = {.ack = 'R', .code = 207};
        snprintf(e.text, sizeof e.text,
                 "temporarily unavailable; resend: %.200s",
                 err.msg[0] ? err.msg : "out of memory");
        conn_refuse(c, &e);
        map_in_result_free(&r);
        conn_done_with_msg(c);
        return false;
    }
    snprintf(w->event_id, sizeof w->event_id, "%s", r.event->event_id);
    msg_control(m, w->control, sizeof w->control);
    w->conn = c;
    w->next = n->in->waits;
    n->in->waits = w;
    c->wait = w;
    c->wait_since_ms = hov_mono_ms();
    hov_debug("published event=%s type=%s control_id=%s", w->event_id, r.type,
              w->control);
    map_in_result_free(&r);
    return true;
}

static int
frame_cb(void *user, const mllp_event *ev)
{
    iconn *c = user;
    char what[96];
    switch (ev->kind) {
    case MLLP_FRAME:
        c->frame_start_ms = 0;
        if (ev->flags & MLLP_F_OVERSIZE) {
            snprintf(what, sizeof what,
                     "message of %zu bytes exceeds the %llu-byte limit",
                     ev->total, (unsigned long long)c->n->cfg.max_frame);
            frame_refuse(c, ev, what);
            return 0;
        }
        if (ev->flags & MLLP_F_BAD_END) {
            snprintf(what, sizeof what,
                     "MLLP end block 0x1C followed by 0x%02X, not 0x0D",
                     ev->bad_byte);
            frame_refuse(c, ev, what);
            return 0;
        }
        if (ev->flags & MLLP_F_NO_CR)
            hov_warn("MLLP %s: end block 0x1C without the CR after it; "
                     "accepted",
                     c->peer);
        return conn_message(c, ev->body, ev->len) ? 1 : 0;
    case MLLP_KEEPALIVE:
        c->frame_start_ms = 0;
        return 0;
    case MLLP_JUNK:
        hov_warn("MLLP %s: discarded %zu bytes outside an MLLP frame", c->peer,
                 ev->len);
        return 0;
    case MLLP_RESTART:
        hov_warn("MLLP %s: a new start block after %zu bytes of a frame: "
                 "the partial frame is dropped",
                 c->peer, ev->len);
        c->frame_start_ms = hov_mono_ms();
        return 0;
    case MLLP_TRUNCATED:
        hov_warn("MLLP %s: connection closed mid-frame after %zu bytes: "
                 "nothing published, no ACK",
                 c->peer, ev->len);
        return 0;
    case MLLP_ERR_CAP:
        hov_warn("MLLP %s: no end block within %llu bytes: closing", c->peer,
                 (unsigned long long)c->n->cfg.hard_cap);
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------- connections */

static void
on_conn_closed(uv_handle_t *h)
{
    iconn *c = h->data;
    /* The timer and the socket share the iconn: the last one frees it. */
    if (--c->handles > 0)
        return;
    mllp_framer_free(c->fr);
    hl7_msg_free(c->msg);
    free(c);
}

static void
on_shutdown(uv_shutdown_t *req, int status)
{
    (void)status;
    iconn *c = req->data;
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

static void
conn_close(iconn *c)
{
    if (c->closing)
        return;
    c->closing = true;
    if (c->wait != NULL)
        c->wait->conn = NULL;
    c->wait = NULL;
    inbound *in = c->n->in;
    for (iconn **pp = &in->conns; *pp; pp = &(*pp)->next)
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    uv_close((uv_handle_t *)&c->timer, on_conn_closed);
    /* Shut down first so an ACK still queued is written before the close
     * (uv_close would cancel it). */
    if (uv_shutdown(&c->shutdown, (uv_stream_t *)&c->tcp, on_shutdown) != 0)
        uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

static void
on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    buf->base = malloc(suggested);
    buf->len = buf->base ? suggested : 0;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void
conn_pause(iconn *c)
{
    if (c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = false;
    }
}

/* Process what the framer holds, then read again (or finish on EOF). */
static void
conn_resume(iconn *c)
{
    if (c->closing)
        return;
    int rc = mllp_feed(c->fr, NULL, 0, frame_cb, c);
    if (rc < 0) {
        conn_close(c);
        return;
    }
    if (c->wait != NULL)
        return;
    if (c->eof) {
        (void)mllp_finish(c->fr, frame_cb, c);
        if (c->wait == NULL)
            conn_close(c);
        return;
    }
    if (!c->reading) {
        if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0)
            c->reading = true;
        else
            conn_close(c);
    }
}

static void
on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    iconn *c = s->data;
    if (nread > 0) {
        c->last_rx_ms = hov_mono_ms();
        int rc = mllp_feed(c->fr, (const uint8_t *)buf->base, (size_t)nread,
                           frame_cb, c);
        /* The 30 s frame timer runs from the read that opened a frame. */
        if (!mllp_in_frame(c->fr))
            c->frame_start_ms = 0;
        else if (c->frame_start_ms == 0)
            c->frame_start_ms = c->last_rx_ms;
        free(buf->base);
        if (rc < 0)
            conn_close(c);
        else if (rc > 0)
            conn_pause(c);
        return;
    }
    free(buf->base);
    if (nread == UV_EOF) {
        c->eof = true;
        conn_pause(c);
        if (c->wait == NULL) {
            (void)mllp_finish(c->fr, frame_cb, c);
            if (c->wait == NULL)
                conn_close(c);
        }
        return;
    }
    if (nread < 0) {
        hov_info("MLLP %s: %s", c->peer, uv_strerror((int)nread));
        conn_close(c);
    }
}

static void
on_conn_timer(uv_timer_t *t)
{
    iconn *c = t->data;
    uint64_t now = hov_mono_ms();
    const nursing_cfg *g = &c->n->cfg;
    if (c->wait != NULL) {
        if (now - c->wait_since_ms >= g->hub_timeout_ms) {
            hl7_error e = {.ack = 'R', .code = 207};
            snprintf(e.text, sizeof e.text,
                     "temporarily unavailable; resend: the hub did not "
                     "answer within %llu ms",
                     (unsigned long long)g->hub_timeout_ms);
            hov_warn("no hub answer event=%s control_id=%s: AR sent; the "
                     "publish is kept and resent to the hub",
                     c->wait->event_id, c->wait->control);
            c->wait->conn = NULL;
            c->wait = NULL;
            conn_refuse(c, &e);
            conn_done_with_msg(c);
            conn_resume(c);
        }
        return;
    }
    if (c->frame_start_ms != 0 &&
        now - c->frame_start_ms >= g->frame_timeout_ms) {
        hov_warn("MLLP %s: frame not completed within %llu s: closing, no "
                 "ACK, nothing published",
                 c->peer, (unsigned long long)g->frame_timeout_ms / 1000);
        conn_close(c);
        return;
    }
    if (now - c->last_rx_ms >= g->idle_timeout_ms) {
        hov_info("MLLP %s: idle for %llu s: closing", c->peer,
                 (unsigned long long)g->idle_timeout_ms / 1000);
        conn_close(c);
    }
}

static void
on_connection(uv_stream_t *server, int status)
{
    nursing *n = server->data;
    if (status < 0) {
        hov_warn("MLLP accept: %s", uv_strerror(status));
        return;
    }
    iconn *c = calloc(1, sizeof *c);
    if (c == NULL ||
        (c->fr = mllp_framer_new(n->cfg.max_frame, n->cfg.hard_cap)) == NULL) {
        hov_errorf("MLLP accept: out of memory");
        free(c);
        uv_tcp_t *tmp = malloc(sizeof *tmp);
        if (tmp != NULL && uv_tcp_init(n->loop, tmp) == 0 &&
            uv_accept(server, (uv_stream_t *)tmp) == 0)
            uv_close((uv_handle_t *)tmp, (uv_close_cb)free);
        else
            free(tmp);
        return;
    }
    c->n = n;
    uv_tcp_init(n->loop, &c->tcp);
    uv_timer_init(n->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->shutdown.data = c;
    c->handles = 2;
    c->next = n->in->conns;
    n->in->conns = c;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        conn_close(c);
        return;
    }
    struct sockaddr_storage ss;
    int sl = sizeof ss;
    snprintf(c->peer, sizeof c->peer, "?");
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &sl) == 0) {
        char ip[48] = "";
        if (ss.ss_family == AF_INET)
            uv_ip4_name((struct sockaddr_in *)&ss, ip, sizeof ip);
        else
            uv_ip6_name((struct sockaddr_in6 *)&ss, ip, sizeof ip);
        int port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        snprintf(c->peer, sizeof c->peer, "%s:%d", ip, port);
    }
    c->last_rx_ms = hov_mono_ms();
    uv_timer_start(&c->timer, on_conn_timer, 250, 250);
    conn_resume(c);
}

hov_err
inbound_start(nursing *n, hov_error *err)
{
    inbound *in = calloc(1, sizeof *in);
    if (in == NULL)
        return hov_fail(err, HOV_ENOMEM, 0, "inbound");
    n->in = in;
    uv_tcp_init(n->loop, &in->server);
    in->server.data = n;
    struct sockaddr_in addr;
    int rc = uv_ip4_addr(n->cfg.listen_host, (int)n->cfg.listen_port, &addr);
    if (rc != 0)
        return hov_fail(err, HOV_ECONFIG, rc,
                        "listen.host '%s' is not an IPv4 address",
                        n->cfg.listen_host);
    rc = uv_tcp_bind(&in->server, (const struct sockaddr *)&addr, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&in->server, 64, on_connection);
    if (rc != 0)
        return hov_fail(err, HOV_ESYS, rc, "listen for MLLP on %s:%llu: %s",
                        n->cfg.listen_host,
                        (unsigned long long)n->cfg.listen_port,
                        uv_strerror(rc));
    return HOV_OK;
}

static void
on_server_closed(uv_handle_t *h)
{
    nursing *n = h->data;
    free(n->in);
    n->in = NULL;
}

void
inbound_stop(nursing *n)
{
    inbound *in = n->in;
    if (in == NULL || in->stopped)
        return;
    in->stopped = true;
    while (in->conns != NULL)
        conn_close(in->conns);
    uv_close((uv_handle_t *)&in->server, on_server_closed);
    /* Publishes still waiting are resent by nobody once the process
     * ends; their senders had no ACK and will resend. */
    while (in->waits != NULL) {
        waiting *w = in->waits;
        in->waits = w->next;
        free(w);
    }
}
