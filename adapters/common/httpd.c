#include "httpd.h"

#include <http_parser.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "handover/log.h"
#include "handover/str.h"

#define DEFAULT_MAX_HEADER        (16u * 1024)
#define DEFAULT_MAX_BODY          (1024u * 1024)
#define DEFAULT_HEADER_TIMEOUT_MS 10000
#define DEFAULT_BODY_TIMEOUT_MS   30000
#define DEFAULT_IDLE_TIMEOUT_MS   60000
#define DEFAULT_WRITE_TIMEOUT_MS  30000
#define DEFAULT_MAX_CONNS         256

/* Each connection reads into one buffer of this size. The request being
 * parsed never needs more (its pieces are copied out as they arrive);
 * while a request is with the handler, what the client sends ahead waits
 * here unparsed, and reading stops when it is full, so a pipelining client
 * costs at most this much before TCP pushes back. */
#define CONN_BUF 16384

/* After our FIN, how long to go on reading and dropping what a client
 * still sends (its refused body, say) before closing: closing with unread
 * data sends a reset, which can destroy the error response in the client's
 * receive buffer before it reads it. */
#define LINGER_MS 2000

#define LISTEN_BACKLOG 128

typedef struct conn conn;

typedef enum conn_state {
    ST_HEAD,     /* waiting for, or reading, a request line and headers */
    ST_BODY,     /* reading a body */
    ST_HANDLING, /* the request is with the handler */
    ST_WRITING,  /* a response is queued; the next request waits for it */
    ST_IDLE,     /* keep-alive: waiting for the next request's first byte */
    ST_CLOSING,  /* shut down (or shutting down); draining, then closed */
} conn_state;

/* Where the last parser callback wrote, so split pieces join up. */
typedef enum piece {
    P_URL,
    P_FIELD,
    P_VALUE,
    P_DONE,
} piece;

typedef struct hdr {
    size_t name; /* offsets into req->hb */
    size_t value;
} hdr;

struct httpd_req {
    httpd *srv;
    conn *c; /* NULL once the connection has gone */
    /* The target, header names and values, path and query, each
     * NUL-terminated, at the offsets recorded; fixed once the headers are
     * complete, so the pointers handed out stay put. */
    char *hb;
    size_t hlen, hcap;
    size_t url_len;
    hdr *hdrs;
    size_t nhdrs, hdrs_cap;
    size_t path, query;
    size_t head_bytes; /* counted against max_header_bytes */
    piece last;
    uint8_t *body;
    size_t blen, bcap;
    const char *method;
    bool is_head;
    bool http10;
    bool keep_alive;
    char peer[64];
};

struct conn {
    httpd *srv;
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_shutdown_t shutdown;
    http_parser parser;
    conn_state state;
    char *buf; /* CONN_BUF bytes: [rpos, len) not yet parsed */
    size_t rpos, len;
    httpd_req *parsing; /* the request being read, owned here */
    httpd_req *req;     /* the request with the handler (owned there) */
    int fail_status;    /* set by a parser callback that refuses */
    const char *fail_text;
    char peer[64];
    int handles;  /* open libuv handles: the last close frees the conn */
    bool counted; /* in srv->nconns (false: refused beyond max_conns) */
    bool reading;
    bool eof;
    bool close_after; /* the response being written is the last */
    bool closing;
    bool linger; /* after our FIN, drain before closing */
    bool shut;   /* our FIN has gone */
    bool destroying;
    conn *prev, *next;
};

struct httpd {
    uv_loop_t *loop;
    uv_tcp_t listener;
    httpd_handler handler;
    void *user;
    size_t max_header, max_body;
    uint64_t header_ms, body_ms, idle_ms, write_ms;
    unsigned max_conns;
    char name[32];
    int port;
    conn *conns;
    unsigned nconns;    /* counted connections */
    unsigned nrefusing; /* connections being refused with 503 */
    size_t live;        /* requests handed to the handler, not responded */
    bool stopped;
    bool listener_closed;
};

/* A queued write; the bytes are freed with it. */
typedef struct wreq {
    uv_write_t w;
    conn *c;
    char *data;
    bool response; /* its completion ends ST_WRITING */
} wreq;

static void conn_process(conn *c);
static void conn_close(conn *c, bool linger);
static void conn_destroy(conn *c);
static void on_conn_timer(uv_timer_t *t);

/* The one timer of a connection always holds the deadline of its current
 * state; on_conn_timer reads the state to know which one passed. */
static void
conn_deadline(conn *c, uint64_t ms)
{
    uv_timer_start(&c->timer, on_conn_timer, ms, 0);
}

/* ------------------------------------------------------- byte buffers */

/* A growing byte string for building responses; oom is sticky so a
 * sequence of appends needs one check at the end. */
typedef struct dbuf {
    char *p;
    size_t len, cap;
    bool oom;
} dbuf;

static void
dbuf_add(dbuf *b, const void *p, size_t n)
{
    if (b->oom)
        return;
    if (b->cap - b->len < n) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap - b->len < n) {
            if (cap > SIZE_MAX / 2) {
                b->oom = true;
                return;
            }
            cap *= 2;
        }
        char *np = realloc(b->p, cap);
        if (np == NULL) {
            b->oom = true;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
    if (n > 0)
        memcpy(b->p + b->len, p, n);
    b->len += n;
}

static void dbuf_addf(dbuf *b, const char *fmt, ...) HOV_PRINTF(2, 3);

static void
dbuf_addf(dbuf *b, const char *fmt, ...)
{
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->oom = true;
        return;
    }
    if ((size_t)n < sizeof small) {
        dbuf_add(b, small, (size_t)n);
        return;
    }
    char *big = malloc((size_t)n + 1);
    if (big == NULL) {
        b->oom = true;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    dbuf_add(b, big, (size_t)n);
    free(big);
}

/* ------------------------------------------------------------ requests */

static httpd_req *
req_new(conn *c)
{
    httpd_req *r = calloc(1, sizeof *r);
    if (r == NULL)
        return NULL;
    r->srv = c->srv;
    r->last = P_URL;
    hov_strlcpy(r->peer, sizeof r->peer, c->peer);
    return r;
}

static void
req_free(httpd_req *r)
{
    if (r == NULL)
        return;
    free(r->hb);
    free(r->hdrs);
    free(r->body);
    free(r);
}

static bool
req_hb_add(httpd_req *r, const char *p, size_t n)
{
    if (r->hcap - r->hlen < n + 1) {
        size_t cap = r->hcap ? r->hcap : 512;
        while (cap - r->hlen < n + 1)
            cap *= 2;
        char *np = realloc(r->hb, cap);
        if (np == NULL)
            return false;
        r->hb = np;
        r->hcap = cap;
    }
    memcpy(r->hb + r->hlen, p, n);
    r->hlen += n;
    return true;
}

/* Terminate the piece being written; values lose trailing blanks (the
 * parser drops only the leading ones). */
static bool
req_end_piece(httpd_req *r)
{
    if (r->last == P_VALUE) {
        size_t start = r->hdrs[r->nhdrs - 1].value;
        while (r->hlen > start &&
               (r->hb[r->hlen - 1] == ' ' || r->hb[r->hlen - 1] == '\t'))
            r->hlen--;
    }
    return req_hb_add(r, "", 1);
}

/* ---------------------------------------------------- writing, closing */

static void
srv_maybe_free(httpd *srv)
{
    if (srv->stopped && srv->listener_closed && srv->conns == NULL &&
        srv->live == 0)
        free(srv);
}

static void
on_write(uv_write_t *w, int status)
{
    wreq *wr = w->data;
    conn *c = wr->c;
    bool response = wr->response;
    free(wr->data);
    free(wr);
    if (status < 0) {
        if (!c->destroying) {
            hov_info("%s %s: writing failed: %s; closing", c->srv->name,
                     c->peer, uv_strerror(status));
            conn_destroy(c);
        }
        return;
    }
    if (!response || c->closing)
        return;
    if (c->close_after) {
        conn_close(c, true);
        return;
    }
    /* The next request is parsed only now: a client that does not read
     * its responses cannot make the server build more of them. */
    c->state = ST_IDLE;
    conn_deadline(c, c->srv->idle_ms);
    conn_process(c);
}

/* Queue len bytes of data (taken: freed once written) on c. */
static void
conn_write(conn *c, char *data, size_t len, bool response)
{
    wreq *wr = malloc(sizeof *wr);
    if (wr == NULL) {
        free(data);
        hov_errorf("%s %s: out of memory queueing a response; closing",
                   c->srv->name, c->peer);
        conn_destroy(c);
        return;
    }
    wr->c = c;
    wr->data = data;
    wr->response = response;
    wr->w.data = wr;
    uv_buf_t b = uv_buf_init(data, (unsigned)len);
    int rc = uv_write(&wr->w, (uv_stream_t *)&c->tcp, &b, 1, on_write);
    if (rc != 0) {
        free(data);
        free(wr);
        hov_info("%s %s: writing failed: %s; closing", c->srv->name, c->peer,
                 uv_strerror(rc));
        conn_destroy(c);
    }
}

static const char *const day_names[] = {"Sun", "Mon", "Tue", "Wed",
                                        "Thu", "Fri", "Sat"};
static const char *const month_names[] = {"Jan", "Feb", "Mar", "Apr",
                                          "May", "Jun", "Jul", "Aug",
                                          "Sep", "Oct", "Nov", "Dec"};

/* IMF-fixdate (RFC 9110 5.6.7), built by hand because strftime's day and
 * month names follow the locale. */
static void
http_date(char *out, size_t outsz)
{
    time_t now = time(NULL);
    struct tm tm;
    if (gmtime_r(&now, &tm) == NULL) {
        hov_strlcpy(out, outsz, "Thu, 01 Jan 1970 00:00:00 GMT");
        return;
    }
    snprintf(out, outsz, "%s, %02d %s %04d %02d:%02d:%02d GMT",
             day_names[tm.tm_wday % 7], tm.tm_mday, month_names[tm.tm_mon % 12],
             tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

static bool
header_is(const char *h, size_t namelen, const char *name)
{
    return namelen == strlen(name) && strncasecmp(h, name, namelen) == 0;
}

/* Build a complete response in one buffer (one write, so a pipelining
 * client never sees half of one response interleaved with another).
 * *close is in: the connection will close after it; out: also true when
 * the given headers ask for that. NULL when out of memory. */
static char *
build_response(conn *c, int status, const char *const *headers,
               const void *body, size_t len, bool head_only,
               bool keepalive_header, bool *close, size_t *outlen)
{
    const char *reason = http_status_str((enum http_status)status);
    if (reason == NULL || reason[0] == '<')
        reason = "";
    dbuf b = {0};
    dbuf_addf(&b, "HTTP/1.1 %d %s\r\n", status, reason);
    bool has_date = false;
    for (size_t i = 0; headers != NULL && headers[i] != NULL; i++) {
        const char *h = headers[i];
        const char *colon = strchr(h, ':');
        size_t nlen = colon != NULL ? (size_t)(colon - h) : 0;
        if (nlen == 0 || strpbrk(h, "\r\n") != NULL ||
            strcspn(h, " \t") < nlen) {
            hov_errorf("%s %s: response header %zu is not \"Name: value\" "
                       "on one line; dropped",
                       c->srv->name, c->peer, i);
            continue;
        }
        if (header_is(h, nlen, "Connection")) {
            const char *v = colon + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            if (strncasecmp(v, "close", 5) == 0)
                *close = true;
            continue;
        }
        if (header_is(h, nlen, "Content-Length") ||
            header_is(h, nlen, "Transfer-Encoding")) {
            hov_errorf("%s %s: response header %.*s is the server's to set; "
                       "dropped",
                       c->srv->name, c->peer, (int)nlen, h);
            continue;
        }
        if (header_is(h, nlen, "Date"))
            has_date = true;
        dbuf_add(&b, h, strlen(h));
        dbuf_add(&b, "\r\n", 2);
    }
    if (!has_date) {
        char date[40];
        http_date(date, sizeof date);
        dbuf_addf(&b, "Date: %s\r\n", date);
    }
    bool no_body = status == 204 || status == 304;
    if (!no_body)
        dbuf_addf(&b, "Content-Length: %zu\r\n", len);
    if (*close)
        dbuf_add(&b, "Connection: close\r\n", 19);
    else if (keepalive_header)
        dbuf_add(&b, "Connection: keep-alive\r\n", 24);
    dbuf_add(&b, "\r\n", 2);
    if (!no_body && !head_only && len > 0)
        dbuf_add(&b, body, len);
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    *outlen = b.len;
    return b.p;
}

static void
on_conn_closed(uv_handle_t *h)
{
    conn *c = h->data;
    /* The socket and the timer share the conn: the last one frees it. */
    if (--c->handles > 0)
        return;
    httpd *srv = c->srv;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        srv->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    if (c->counted)
        srv->nconns--;
    else
        srv->nrefusing--;
    req_free(c->parsing);
    free(c->buf);
    free(c);
    srv_maybe_free(srv);
}

/* Close now, dropping anything queued; a request with the handler becomes
 * gone. */
static void
conn_destroy(conn *c)
{
    if (c->destroying)
        return;
    c->destroying = true;
    c->closing = true;
    c->state = ST_CLOSING;
    if (c->req != NULL) {
        c->req->c = NULL;
        c->req = NULL;
    }
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
    uv_close((uv_handle_t *)&c->timer, on_conn_closed);
}

static void conn_update_reading(conn *c);

static void
on_shutdown(uv_shutdown_t *req, int status)
{
    conn *c = req->data;
    /* Cancelled when the conn was destroyed meanwhile. */
    if (c->destroying)
        return;
    if (status < 0 || c->eof || !c->linger) {
        conn_destroy(c);
        return;
    }
    httpd *srv = c->srv;
    c->shut = true;
    conn_deadline(c, srv->write_ms < LINGER_MS ? srv->write_ms : LINGER_MS);
}

/* Close gracefully: what is queued is written (within write_timeout_ms),
 * then our FIN goes; with linger (a response was just sent, which a reset
 * could destroy), what the client still sends is then read and dropped
 * until it closes or LINGER_MS passes. A request with the handler becomes
 * gone. */
static void
conn_close(conn *c, bool linger)
{
    if (c->closing)
        return;
    c->closing = true;
    c->linger = linger;
    c->state = ST_CLOSING;
    if (c->req != NULL) {
        c->req->c = NULL;
        c->req = NULL;
    }
    c->rpos = c->len = 0;
    c->shutdown.data = c;
    if (uv_shutdown(&c->shutdown, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
        conn_destroy(c);
        return;
    }
    conn_deadline(c, c->srv->write_ms);
    conn_update_reading(c);
}

/* Refuse the request being read with status and a one-line text, then
 * close. Only while reading a request: parsing stops while one is with the
 * handler, so a response can never be sent out of turn. */
static void
conn_fail(conn *c, int status, const char *text)
{
    static const char *const hdrs[] = {
        "Content-Type: text/plain; charset=utf-8", NULL};
    char body[200];
    int n = snprintf(body, sizeof body, "%s\n", text);
    size_t blen = n < 0                     ? 0
                  : (size_t)n < sizeof body ? (size_t)n
                                            : sizeof body - 1;
    bool close = true;
    size_t len = 0;
    char *resp =
        build_response(c, status, hdrs, body, blen, false, false, &close, &len);
    if (resp == NULL) {
        hov_errorf("%s %s: out of memory building a %d response; closing",
                   c->srv->name, c->peer, status);
        conn_destroy(c);
        return;
    }
    conn_write(c, resp, len, false);
    conn_close(c, true);
}

/* ------------------------------------------------------------- timers */

static void
on_conn_timer(uv_timer_t *t)
{
    conn *c = t->data;
    httpd *srv = c->srv;
    switch (c->state) {
    case ST_HEAD:
        hov_warn("%s %s: request headers not complete within %llu ms: 408, "
                 "closing",
                 srv->name, c->peer, (unsigned long long)srv->header_ms);
        conn_fail(c, 408, "request timeout: the headers took too long");
        break;
    case ST_BODY:
        hov_warn("%s %s: request body not complete within %llu ms: 408, "
                 "closing",
                 srv->name, c->peer, (unsigned long long)srv->body_ms);
        conn_fail(c, 408, "request timeout: the body took too long");
        break;
    case ST_IDLE:
        hov_debug("%s %s: no request for %llu ms: closing", srv->name, c->peer,
                  (unsigned long long)srv->idle_ms);
        conn_close(c, false);
        break;
    case ST_WRITING:
        hov_warn("%s %s: response not taken within %llu ms: closing", srv->name,
                 c->peer, (unsigned long long)srv->write_ms);
        conn_destroy(c);
        break;
    case ST_CLOSING:
        conn_destroy(c);
        break;
    case ST_HANDLING:
        /* The handler owns the wait; no deadline runs. */
        break;
    }
}

/* ------------------------------------------------------------ reading */

static void
on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    conn *c = h->data;
    /* While closing, what arrives is dropped: reuse the whole buffer. */
    size_t off = c->closing ? 0 : c->len;
    buf->base = c->buf + off;
    buf->len = CONN_BUF - off;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

/* Read while there is room (and, closing, to drain), until EOF. */
static void
conn_update_reading(conn *c)
{
    if (c->destroying)
        return;
    bool want = !c->eof && (c->closing || c->len < CONN_BUF);
    if (want && !c->reading) {
        int rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
        if (rc != 0) {
            hov_info("%s %s: cannot read: %s; closing", c->srv->name, c->peer,
                     uv_strerror(rc));
            conn_destroy(c);
            return;
        }
        c->reading = true;
    } else if (!want && c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = false;
    }
}

static void
on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    conn *c = s->data;
    if (nread == 0 || c->destroying)
        return;
    /* The buffer is full (reading should have stopped): wait for room. */
    if (nread == UV_ENOBUFS) {
        conn_update_reading(c);
        return;
    }
    if (nread > 0) {
        if (c->closing)
            return;
        c->len += (size_t)nread;
        conn_process(c);
        return;
    }
    if (nread == UV_EOF) {
        c->eof = true;
        conn_update_reading(c);
        if (c->closing) {
            /* Before our FIN has gone (a response still queued),
             * on_shutdown finishes the close. */
            if (c->shut)
                conn_destroy(c);
            return;
        }
        /* A half-closed client may still read: a request with the handler
         * is answered, then the connection closes. */
        if (c->state == ST_HEAD || c->state == ST_BODY || c->state == ST_IDLE)
            conn_process(c);
        return;
    }
    if (c->closing)
        hov_debug("%s %s: %s while closing", c->srv->name, c->peer,
                  uv_strerror((int)nread));
    else
        hov_info("%s %s: %s; closing", c->srv->name, c->peer,
                 uv_strerror((int)nread));
    conn_destroy(c);
}

/* -------------------------------------------------- parser callbacks */

/* The parser callbacks refuse a request by recording the response and
 * returning nonzero, which stops http_parser_execute with an error;
 * conn_process then sends the recorded response rather than a 400. */
static int
refuse(conn *c, int status, const char *text)
{
    if (c->fail_status == 0) {
        c->fail_status = status;
        c->fail_text = text;
    }
    return -1;
}

static int
count_head(conn *c, size_t n)
{
    httpd_req *r = c->parsing;
    r->head_bytes += n;
    if (r->head_bytes > c->srv->max_header)
        return refuse(c, 431, "request header fields too large");
    return 0;
}

static int
on_message_begin(http_parser *p)
{
    conn *c = p->data;
    /* The header deadline of a new connection runs from its opening; on a
     * kept-alive one, from the first byte of the next request. */
    if (c->state == ST_IDLE) {
        c->state = ST_HEAD;
        conn_deadline(c, c->srv->header_ms);
    }
    req_free(c->parsing);
    c->parsing = req_new(c);
    if (c->parsing == NULL)
        return refuse(c, 503, "out of memory; try again later");
    return 0;
}

static int
on_url(http_parser *p, const char *at, size_t n)
{
    conn *c = p->data;
    httpd_req *r = c->parsing;
    if (count_head(c, n) != 0)
        return -1;
    r->url_len += n;
    if (!req_hb_add(r, at, n))
        return refuse(c, 503, "out of memory; try again later");
    return 0;
}

static int
on_header_field(http_parser *p, const char *at, size_t n)
{
    conn *c = p->data;
    httpd_req *r = c->parsing;
    if (count_head(c, n) != 0)
        return -1;
    /* http-parser, built non-strict as Debian ships it, lets blanks into
     * names; RFC 9112 5.1 says reject, since "Transfer-Encoding : chunked"
     * is read differently by different parsers (request smuggling). */
    if (memchr(at, ' ', n) != NULL || memchr(at, '\t', n) != NULL)
        return refuse(c, 400, "bad request: blank in a header name");
    /* Trailers of a chunked body: counted, not kept. */
    if (r->last == P_DONE)
        return 0;
    if (r->last != P_FIELD) {
        if (count_head(c, 4) != 0)
            return -1;
        if (!req_end_piece(r))
            return refuse(c, 503, "out of memory; try again later");
        if (r->nhdrs == r->hdrs_cap) {
            size_t cap = r->hdrs_cap ? r->hdrs_cap * 2 : 16;
            hdr *nh = realloc(r->hdrs, cap * sizeof *nh);
            if (nh == NULL)
                return refuse(c, 503, "out of memory; try again later");
            r->hdrs = nh;
            r->hdrs_cap = cap;
        }
        r->hdrs[r->nhdrs++] = (hdr){.name = r->hlen, .value = r->hlen};
        r->last = P_FIELD;
    }
    if (!req_hb_add(r, at, n))
        return refuse(c, 503, "out of memory; try again later");
    return 0;
}

static int
on_header_value(http_parser *p, const char *at, size_t n)
{
    conn *c = p->data;
    httpd_req *r = c->parsing;
    if (count_head(c, n) != 0)
        return -1;
    if (r->last == P_DONE)
        return 0;
    if (r->last == P_FIELD) {
        if (!req_end_piece(r))
            return refuse(c, 503, "out of memory; try again later");
        r->hdrs[r->nhdrs - 1].value = r->hlen;
        r->last = P_VALUE;
    }
    if (!req_hb_add(r, at, n))
        return refuse(c, 503, "out of memory; try again later");
    return 0;
}

/* Split the target into path and query, each copied into hb. */
static int
req_split_target(conn *c, httpd_req *r)
{
    /* Offsets into the target, or a fixed text when it has no path. */
    const char *fixed = NULL;
    size_t poff = 0, plen = 0, qoff = 0, qlen = 0;
    if (r->url_len == 1 && r->hb[0] == '*') {
        fixed = "*";
    } else {
        /* The parser's offsets are 16-bit. */
        if (r->url_len > UINT16_MAX)
            return refuse(c, 414, "request target too long");
        struct http_parser_url u;
        http_parser_url_init(&u);
        if (http_parser_parse_url(r->hb, r->url_len, 0, &u) != 0)
            return refuse(c, 400, "bad request: malformed request target");
        if (u.field_set & (1u << UF_PATH)) {
            poff = u.field_data[UF_PATH].off;
            plen = u.field_data[UF_PATH].len;
        } else {
            fixed = "/";
        }
        if (u.field_set & (1u << UF_QUERY)) {
            qoff = u.field_data[UF_QUERY].off;
            qlen = u.field_data[UF_QUERY].len;
        }
    }
    if (fixed != NULL)
        plen = strlen(fixed);
    /* Through a copy: hb may move as it grows. */
    char *tmp = malloc(plen + qlen + 2);
    if (tmp == NULL)
        return refuse(c, 503, "out of memory; try again later");
    memcpy(tmp, fixed != NULL ? fixed : r->hb + poff, plen);
    tmp[plen] = '\0';
    memcpy(tmp + plen + 1, r->hb + qoff, qlen);
    tmp[plen + 1 + qlen] = '\0';
    r->path = r->hlen;
    r->query = r->hlen + plen + 1;
    bool ok = req_hb_add(r, tmp, plen + qlen + 2);
    free(tmp);
    if (!ok)
        return refuse(c, 503, "out of memory; try again later");
    return 0;
}

static int
on_headers_complete(http_parser *p)
{
    conn *c = p->data;
    httpd *srv = c->srv;
    httpd_req *r = c->parsing;
    if (r->last == P_FIELD) { /* a name with no value: an empty value */
        if (!req_end_piece(r))
            return refuse(c, 503, "out of memory; try again later");
        r->hdrs[r->nhdrs - 1].value = r->hlen;
        r->last = P_VALUE;
    }
    if (!req_end_piece(r))
        return refuse(c, 503, "out of memory; try again later");
    r->last = P_DONE;
    r->method = http_method_str((enum http_method)p->method);
    r->is_head = p->method == HTTP_HEAD;
    r->http10 = p->http_major == 1 && p->http_minor == 0;
    if (p->method == HTTP_CONNECT)
        return refuse(c, 405, "method not allowed: CONNECT");
    if (req_split_target(c, r) != 0)
        return -1;
    c->state = ST_BODY;
    conn_deadline(c, srv->body_ms);
    bool chunked = (p->flags & F_CHUNKED) != 0;
    bool has_len = !chunked && p->content_length != ULLONG_MAX;
    if (has_len && p->content_length > srv->max_body) {
        hov_warn("%s %s: request body of %llu bytes over the %zu-byte limit: "
                 "413, closing",
                 srv->name, c->peer, (unsigned long long)p->content_length,
                 srv->max_body);
        return refuse(c, 413, "payload too large");
    }
    if (has_len && p->content_length > 0) {
        r->body = malloc((size_t)p->content_length);
        if (r->body == NULL)
            return refuse(c, 503, "out of memory; try again later");
        r->bcap = (size_t)p->content_length;
    }
    const char *expect = httpd_req_header(r, "Expect");
    if (expect != NULL && strcasecmp(expect, "100-continue") == 0 &&
        p->http_major == 1 && p->http_minor >= 1 &&
        (chunked || (has_len && p->content_length > 0))) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        char *msg = malloc(sizeof cont - 1);
        if (msg == NULL)
            return refuse(c, 503, "out of memory; try again later");
        memcpy(msg, cont, sizeof cont - 1);
        conn_write(c, msg, sizeof cont - 1, false);
        if (c->closing)
            return -1;
    }
    return 0;
}

static int
on_body(http_parser *p, const char *at, size_t n)
{
    conn *c = p->data;
    httpd *srv = c->srv;
    httpd_req *r = c->parsing;
    if (n > srv->max_body - r->blen) {
        hov_warn("%s %s: chunked request body over the %zu-byte limit: 413, "
                 "closing",
                 srv->name, c->peer, srv->max_body);
        return refuse(c, 413, "payload too large");
    }
    if (r->bcap - r->blen < n) {
        size_t cap = r->bcap ? r->bcap : 4096;
        while (cap - r->blen < n)
            cap *= 2;
        if (cap > srv->max_body)
            cap = srv->max_body;
        uint8_t *nb = realloc(r->body, cap);
        if (nb == NULL)
            return refuse(c, 503, "out of memory; try again later");
        r->body = nb;
        r->bcap = cap;
    }
    memcpy(r->body + r->blen, at, n);
    r->blen += n;
    return 0;
}

static int
on_message_complete(http_parser *p)
{
    conn *c = p->data;
    /* An upgrade (or anything after it) is not HTTP we speak: close after
     * answering. */
    c->parsing->keep_alive = http_should_keep_alive(p) && !p->upgrade;
    /* Stop here, even mid-buffer: the next pipelined request waits until
     * this one has been answered. */
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings parser_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* --------------------------------------------------------- processing */

static void
conn_dispatch(conn *c)
{
    httpd *srv = c->srv;
    httpd_req *r = c->parsing;
    c->parsing = NULL;
    c->req = r;
    r->c = c;
    c->state = ST_HANDLING;
    uv_timer_stop(&c->timer);
    srv->live++;
    srv->handler(srv->user, r);
}

static void
conn_parse_error(conn *c, enum http_errno e)
{
    httpd *srv = c->srv;
    if (c->fail_status != 0) {
        /* 413 is logged where the size is known. */
        if (c->fail_status != 413)
            hov_warn("%s %s: %s: %d, closing", srv->name, c->peer, c->fail_text,
                     c->fail_status);
        conn_fail(c, c->fail_status, c->fail_text);
        return;
    }
    if (e == HPE_HEADER_OVERFLOW) {
        hov_warn("%s %s: request header fields too large: 431, closing",
                 srv->name, c->peer);
        conn_fail(c, 431, "request header fields too large");
        return;
    }
    char text[160];
    snprintf(text, sizeof text, "bad request: %s", http_errno_description(e));
    hov_warn("%s %s: malformed request (%s): 400, closing", srv->name, c->peer,
             http_errno_name(e));
    conn_fail(c, 400, text);
}

/* Parse what is buffered, handing each complete request to the handler;
 * stop while one is with it or its response is being written. */
static void
conn_process(conn *c)
{
    while (
        !c->closing && c->rpos < c->len &&
        (c->state == ST_HEAD || c->state == ST_BODY || c->state == ST_IDLE)) {
        size_t avail = c->len - c->rpos;
        size_t n = http_parser_execute(&c->parser, &parser_settings,
                                       c->buf + c->rpos, avail);
        c->rpos += n;
        enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
        if (c->closing)
            return;
        if (e == HPE_PAUSED) {
            http_parser_pause(&c->parser, 0);
            conn_dispatch(c);
            continue;
        }
        if (e != HPE_OK) {
            conn_parse_error(c, e);
            return;
        }
        if (n < avail) {
            /* Only after an upgrade, which on_message_complete pauses
             * before; never spin on bytes the parser will not take. */
            conn_parse_error(c, HPE_UNKNOWN);
            return;
        }
    }
    if (c->closing)
        return;
    if (c->rpos > 0) {
        memmove(c->buf, c->buf + c->rpos, c->len - c->rpos);
        c->len -= c->rpos;
        c->rpos = 0;
    }
    if (c->eof && c->len == 0 &&
        (c->state == ST_HEAD || c->state == ST_BODY || c->state == ST_IDLE)) {
        if (c->state != ST_IDLE && c->parsing != NULL)
            hov_info("%s %s: connection closed mid-request; dropped",
                     c->srv->name, c->peer);
        conn_close(c, false);
        return;
    }
    conn_update_reading(c);
}

/* ----------------------------------------------------------- accepting */

static void
peer_name(uv_tcp_t *tcp, char *out, size_t outsz)
{
    struct sockaddr_storage ss;
    int sl = sizeof ss;
    hov_strlcpy(out, outsz, "?");
    if (uv_tcp_getpeername(tcp, (struct sockaddr *)&ss, &sl) != 0)
        return;
    char ip[64] = "";
    if (ss.ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
        uv_ip4_name(a, ip, sizeof ip);
        snprintf(out, outsz, "%s:%d", ip, ntohs(a->sin_port));
    } else if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
        uv_ip6_name(a, ip, sizeof ip);
        snprintf(out, outsz, "[%s]:%d", ip, ntohs(a->sin6_port));
    }
}

static void
on_connection(uv_stream_t *server, int status)
{
    httpd *srv = server->data;
    if (status < 0) {
        hov_warn("%s: accept: %s", srv->name, uv_strerror(status));
        return;
    }
    conn *c = calloc(1, sizeof *c);
    char *buf = c != NULL ? malloc(CONN_BUF) : NULL;
    if (buf == NULL) {
        free(c);
        hov_errorf("%s: out of memory accepting a connection; closing it",
                   srv->name);
        uv_tcp_t *tmp = malloc(sizeof *tmp);
        if (tmp != NULL && uv_tcp_init(srv->loop, tmp) == 0) {
            if (uv_accept(server, (uv_stream_t *)tmp) != 0)
                hov_warn("%s: accept failed", srv->name);
            uv_close((uv_handle_t *)tmp, (uv_close_cb)free);
        } else {
            free(tmp);
        }
        return;
    }
    c->srv = srv;
    c->buf = buf;
    uv_tcp_init(srv->loop, &c->tcp);
    uv_timer_init(srv->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->handles = 2;
    c->next = srv->conns;
    if (srv->conns != NULL)
        srv->conns->prev = c;
    srv->conns = c;
    c->counted = srv->nconns < srv->max_conns;
    if (c->counted)
        srv->nconns++;
    else
        srv->nrefusing++;
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    c->state = ST_HEAD;
    int rc = uv_accept(server, (uv_stream_t *)&c->tcp);
    if (rc != 0) {
        hov_warn("%s: accept: %s", srv->name, uv_strerror(rc));
        conn_destroy(c);
        return;
    }
    peer_name(&c->tcp, c->peer, sizeof c->peer);
    uv_tcp_nodelay(&c->tcp, 1);
    if (!c->counted) {
        /* Refusing costs a little too: past as many again, just close. */
        if (srv->nrefusing > srv->max_conns) {
            conn_destroy(c);
            return;
        }
        hov_warn("%s %s: %u connections open, the limit: 503, closing",
                 srv->name, c->peer, srv->nconns);
        conn_fail(c, 503, "service unavailable: too many connections");
        return;
    }
    conn_deadline(c, srv->header_ms);
    conn_update_reading(c);
}

/* ------------------------------------------------------------ the API */

static void
on_listener_closed(uv_handle_t *h)
{
    httpd *srv = h->data;
    srv->listener_closed = true;
    srv_maybe_free(srv);
}

hov_err
httpd_start(uv_loop_t *loop, const httpd_opts *opts, httpd_handler handler,
            void *user, httpd **out, hov_error *err)
{
    if (handler == NULL || opts == NULL || opts->port < 0 || opts->port > 65535)
        return hov_fail(err, HOV_EINVAL, 0,
                        "HTTP server: a handler and a port in 0..65535 are "
                        "required");
    const char *host = opts->host != NULL ? opts->host : "127.0.0.1";
    const char *name = opts->name != NULL ? opts->name : "HTTP";
    union {
        struct sockaddr sa;
        struct sockaddr_in in4;
        struct sockaddr_in6 in6;
    } addr;
    if (uv_ip4_addr(host, opts->port, &addr.in4) != 0 &&
        uv_ip6_addr(host, opts->port, &addr.in6) != 0)
        return hov_fail(err, HOV_ECONFIG, 0,
                        "%s: listen host '%s' is not an IPv4 or IPv6 address",
                        name, host);
    httpd *srv = calloc(1, sizeof *srv);
    if (srv == NULL)
        return hov_fail(err, HOV_ENOMEM, 0, "%s: starting the server", name);
    srv->loop = loop;
    srv->handler = handler;
    srv->user = user;
    hov_strlcpy(srv->name, sizeof srv->name, name);
    srv->max_header =
        opts->max_header_bytes ? opts->max_header_bytes : DEFAULT_MAX_HEADER;
    srv->max_body =
        opts->max_body_bytes ? opts->max_body_bytes : DEFAULT_MAX_BODY;
    srv->header_ms = opts->header_timeout_ms ? opts->header_timeout_ms
                                             : DEFAULT_HEADER_TIMEOUT_MS;
    srv->body_ms =
        opts->body_timeout_ms ? opts->body_timeout_ms : DEFAULT_BODY_TIMEOUT_MS;
    srv->idle_ms =
        opts->idle_timeout_ms ? opts->idle_timeout_ms : DEFAULT_IDLE_TIMEOUT_MS;
    srv->write_ms = opts->write_timeout_ms ? opts->write_timeout_ms
                                           : DEFAULT_WRITE_TIMEOUT_MS;
    srv->max_conns = opts->max_conns ? opts->max_conns : DEFAULT_MAX_CONNS;
    int rc = uv_tcp_init(loop, &srv->listener);
    if (rc != 0) {
        free(srv);
        return hov_fail(err, HOV_ESYS, rc, "%s: listen on %s:%d: %s", name,
                        host, opts->port, uv_strerror(rc));
    }
    srv->listener.data = srv;
    rc = uv_tcp_bind(&srv->listener, &addr.sa, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&srv->listener, LISTEN_BACKLOG,
                       on_connection);
    struct sockaddr_storage ss;
    int sl = sizeof ss;
    if (rc == 0)
        rc = uv_tcp_getsockname(&srv->listener, (struct sockaddr *)&ss, &sl);
    if (rc != 0) {
        srv->stopped = true;
        uv_close((uv_handle_t *)&srv->listener, on_listener_closed);
        return hov_fail(err, HOV_ESYS, rc, "%s: listen on %s:%d: %s", name,
                        host, opts->port, uv_strerror(rc));
    }
    srv->port = ss.ss_family == AF_INET6
                    ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                    : ntohs(((struct sockaddr_in *)&ss)->sin_port);
    hov_info("%s: listening on %s:%d", name, host, srv->port);
    *out = srv;
    return HOV_OK;
}

int
httpd_port(const httpd *d)
{
    return d->port;
}

void
httpd_stop(httpd *d)
{
    if (d == NULL || d->stopped)
        return;
    d->stopped = true;
    uv_close((uv_handle_t *)&d->listener, on_listener_closed);
    /* Only a response on its way needs the linger. */
    for (conn *c = d->conns; c != NULL; c = c->next)
        conn_close(c, c->state == ST_WRITING);
}

void
httpd_respond(httpd_req *req, int status, const char *const *headers,
              const void *body, size_t len)
{
    if (req == NULL)
        return;
    httpd *srv = req->srv;
    conn *c = req->c;
    if (c != NULL) {
        c->req = NULL;
        req->c = NULL;
        if (status < 200 || status > 599) {
            hov_errorf("%s %s: the handler answered with status %d; sent as "
                       "500",
                       srv->name, c->peer, status);
            status = 500;
            headers = NULL;
            body = NULL;
            len = 0;
        }
        bool close = !req->keep_alive || c->eof || srv->stopped;
        size_t n = 0;
        char *resp = build_response(c, status, headers, body, len, req->is_head,
                                    req->http10, &close, &n);
        if (resp == NULL) {
            hov_errorf("%s %s: out of memory building a %d response; closing "
                       "so the client retries",
                       srv->name, c->peer, status);
            conn_destroy(c);
        } else {
            hov_debug("%s %s: %s answered %d", srv->name, c->peer, req->method,
                      status);
            c->close_after = close;
            c->state = ST_WRITING;
            conn_deadline(c, srv->write_ms);
            conn_write(c, resp, n, true);
        }
    }
    req_free(req);
    srv->live--;
    srv_maybe_free(srv);
}

bool
httpd_req_gone(const httpd_req *req)
{
    return req->c == NULL;
}

const char *
httpd_req_method(const httpd_req *req)
{
    return req->method;
}

const char *
httpd_req_path(const httpd_req *req)
{
    return req->hb + req->path;
}

const char *
httpd_req_query(const httpd_req *req)
{
    return req->hb + req->query;
}

const char *
httpd_req_header(const httpd_req *req, const char *name)
{
    for (size_t i = 0; i < req->nhdrs; i++)
        if (strcasecmp(req->hb + req->hdrs[i].name, name) == 0)
            return req->hb + req->hdrs[i].value;
    return NULL;
}

size_t
httpd_req_header_count(const httpd_req *req)
{
    return req->nhdrs;
}

bool
httpd_req_header_at(const httpd_req *req, size_t i, const char **name,
                    const char **value)
{
    if (i >= req->nhdrs)
        return false;
    *name = req->hb + req->hdrs[i].name;
    *value = req->hb + req->hdrs[i].value;
    return true;
}

const uint8_t *
httpd_req_body(const httpd_req *req, size_t *len)
{
    if (len != NULL)
        *len = req->blen;
    return req->body != NULL ? req->body : (const uint8_t *)"";
}

const char *
httpd_req_peer(const httpd_req *req)
{
    return req->peer;
}
