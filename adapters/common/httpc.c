#include "httpc.h"

#include <curl/curl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "handover/log.h"
#include "handover/str.h"

#define DEFAULT_MAX_RESPONSE (1024u * 1024)
#define DEFAULT_CONNECT_MS   10000
#define DEFAULT_TIMEOUT_MS   30000
#define DEFAULT_USER_AGENT   "handover"
#define CANCELLED_TEXT       "cancelled: the HTTP client was closed"

typedef struct xfer xfer;
typedef struct sockw sockw;

struct httpc {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer; /* libcurl's timeout (CURLMOPT_TIMERFUNCTION) */
    xfer *xfers;      /* in flight, each owned here until its callback */
    size_t nxfers;
    sockw *socks; /* watched sockets */
    int handles;  /* open libuv handles: the last close frees hc */
    size_t max_response;
    long connect_ms;
    uint64_t default_ms;
    long max_host_conns;
    char *ca_file;
    char *user_agent;
    bool freeing;
};

/* One post in flight. */
struct xfer {
    httpc *hc;
    CURL *easy;
    struct curl_slist *hdrs;
    httpc_cb cb;
    void *user;
    uint8_t *resp; /* the response body so far, at most max_response */
    size_t rlen, rcap;
    bool too_big;
    bool oom; /* the body could not be kept */
    char errbuf[CURL_ERROR_SIZE];
    xfer *prev, *next;
};

/* One socket libcurl asked us to watch. */
struct sockw {
    uv_poll_t poll;
    httpc *hc;
    curl_socket_t fd;
    bool closing;
    sockw *prev, *next;
};

static void
hc_maybe_free(httpc *hc)
{
    if (hc->freeing && hc->handles == 0) {
        free(hc->ca_file);
        free(hc->user_agent);
        free(hc);
    }
}

static void
on_handle_closed(uv_handle_t *h)
{
    httpc *hc;
    if (h->type == UV_POLL) {
        sockw *w = h->data;
        hc = w->hc;
        free(w);
    } else {
        hc = h->data;
    }
    hc->handles--;
    hc_maybe_free(hc);
}

/* Stop watching w's socket. uv_close unregisters the descriptor at once,
 * so libcurl may close it, and the number may come back for a new socket,
 * before the close callback runs. */
static void
sockw_close(sockw *w)
{
    if (w->closing)
        return;
    w->closing = true;
    httpc *hc = w->hc;
    if (w->prev != NULL)
        w->prev->next = w->next;
    else
        hc->socks = w->next;
    if (w->next != NULL)
        w->next->prev = w->prev;
    uv_close((uv_handle_t *)&w->poll, on_handle_closed);
}

/* --------------------------------------------------------- completion */

static void
xfer_unlink(xfer *x)
{
    httpc *hc = x->hc;
    if (x->prev != NULL)
        x->prev->next = x->next;
    else
        hc->xfers = x->next;
    if (x->next != NULL)
        x->next->prev = x->prev;
    x->prev = x->next = NULL;
    hc->nxfers--;
}

static void
xfer_free(xfer *x)
{
    if (x == NULL)
        return;
    curl_easy_cleanup(x->easy);
    curl_slist_free_all(x->hdrs);
    free(x->resp);
    free(x);
}

/* Report x's outcome and free it. x must be unlinked and out of the multi
 * handle: the callback may free the client. */
static void
xfer_report(xfer *x, CURLcode code, bool cancelled)
{
    httpc_result r = {0};
    long status = 0;
    char *ct = NULL;
    if (!cancelled) {
        curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_getinfo(x->easy, CURLINFO_CONTENT_TYPE, &ct);
    }
    r.status = status;
    r.curl_code = (int)code;
    r.cancelled = cancelled;
    r.timed_out = code == CURLE_OPERATION_TIMEDOUT;
    r.content_type = ct != NULL ? ct : "";
    r.body = x->resp != NULL ? x->resp : (const uint8_t *)"";
    r.len = x->rlen;
    if (cancelled) {
        r.error = CANCELLED_TEXT;
    } else if (code == CURLE_OK) {
        r.error = "";
    } else if (x->oom) {
        r.error = "out of memory reading the response";
    } else if (x->too_big || code == CURLE_FILESIZE_EXCEEDED) {
        snprintf(x->errbuf, sizeof x->errbuf,
                 "response body over the %zu-byte limit", x->hc->max_response);
        r.error = x->errbuf;
    } else {
        /* libcurl's own text names the host and the cause; the generic
         * one only the category. */
        r.error = x->errbuf[0] != '\0' ? x->errbuf : curl_easy_strerror(code);
    }
    x->cb(x->user, &r);
    xfer_free(x);
}

/* Report every finished transfer. Stops if a callback frees the client:
 * its memory lives until the loop closes its handles, after this. */
static void
hc_check_done(httpc *hc)
{
    CURLMsg *m;
    int left;
    while (!hc->freeing &&
           (m = curl_multi_info_read(hc->multi, &left)) != NULL) {
        if (m->msg != CURLMSG_DONE)
            continue;
        /* m is invalid once its handle is removed: copy first. */
        CURL *easy = m->easy_handle;
        CURLcode code = m->data.result;
        char *priv = NULL;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv);
        xfer *x = (xfer *)priv;
        xfer_unlink(x);
        curl_multi_remove_handle(hc->multi, easy);
        xfer_report(x, code, false);
    }
}

/* ------------------------------------------- libcurl on the libuv loop */

static void
on_poll(uv_poll_t *p, int status, int events)
{
    sockw *w = p->data;
    httpc *hc = w->hc;
    int flags = 0;
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    if (events & UV_READABLE)
        flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE)
        flags |= CURL_CSELECT_OUT;
    int running;
    /* w may be closed inside; only hc is used after. */
    curl_multi_socket_action(hc->multi, w->fd, flags, &running);
    hc_check_done(hc);
}

static void
on_timer(uv_timer_t *t)
{
    httpc *hc = t->data;
    int running;
    curl_multi_socket_action(hc->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    hc_check_done(hc);
}

/* CURLMOPT_SOCKETFUNCTION: watch, rewatch or forget one socket. */
static int
on_curl_socket(CURL *easy, curl_socket_t fd, int what, void *userp,
               void *socketp)
{
    (void)easy;
    httpc *hc = userp;
    sockw *w = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (w != NULL) {
            sockw_close(w);
            curl_multi_assign(hc->multi, fd, NULL);
        }
        return 0;
    }
    /* A watch closed by on_curl_closesocket cannot be restarted (libuv
     * asserts on a closing handle): watch afresh. */
    if (w == NULL || w->closing) {
        w = calloc(1, sizeof *w);
        if (w == NULL) {
            hov_errorf("HTTP client: out of memory watching a socket");
            return -1;
        }
        int rc = uv_poll_init_socket(hc->loop, &w->poll, fd);
        if (rc != 0) {
            hov_errorf("HTTP client: cannot watch a socket: %s",
                       uv_strerror(rc));
            free(w);
            return -1;
        }
        w->hc = hc;
        w->fd = fd;
        w->poll.data = w;
        w->next = hc->socks;
        if (hc->socks != NULL)
            hc->socks->prev = w;
        hc->socks = w;
        hc->handles++;
        curl_multi_assign(hc->multi, fd, w);
    }
    int events = 0;
    if (what & CURL_POLL_IN)
        events |= UV_READABLE;
    if (what & CURL_POLL_OUT)
        events |= UV_WRITABLE;
    int rc = uv_poll_start(&w->poll, events, on_poll);
    if (rc != 0) {
        hov_errorf("HTTP client: cannot watch a socket: %s", uv_strerror(rc));
        return -1;
    }
    return 0;
}

/* CURLMOPT_TIMERFUNCTION: libcurl's next deadline; -1 cancels it. It must
 * not call back into libcurl, hence a timer even for 0. */
static int
on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    httpc *hc = userp;
    if (hc->freeing)
        return 0;
    if (timeout_ms < 0)
        uv_timer_stop(&hc->timer);
    else
        uv_timer_start(&hc->timer, on_timer, (uint64_t)timeout_ms, 0);
    return 0;
}

/* CURLOPT_CLOSESOCKETFUNCTION: libcurl says CURL_POLL_REMOVE before it
 * closes a socket, but should a watch remain, it must go before the close:
 * a stale epoll registration would watch whatever reuses the number. */
static int
on_curl_closesocket(void *clientp, curl_socket_t fd)
{
    httpc *hc = clientp;
    for (sockw *w = hc->socks; w != NULL; w = w->next)
        if (w->fd == fd) {
            sockw_close(w);
            break;
        }
    return close(fd);
}

static size_t
on_curl_write(char *p, size_t size, size_t n, void *userp)
{
    xfer *x = userp;
    size_t len = size * n;
    size_t max = x->hc->max_response;
    if (len > max - x->rlen) {
        /* Returning short fails the transfer (CURLE_WRITE_ERROR). */
        x->too_big = true;
        return 0;
    }
    if (x->rcap - x->rlen < len) {
        size_t cap = x->rcap ? x->rcap : 4096;
        while (cap - x->rlen < len)
            cap *= 2;
        if (cap > max)
            cap = max;
        uint8_t *nr = realloc(x->resp, cap);
        if (nr == NULL) {
            x->oom = true;
            return 0;
        }
        x->resp = nr;
        x->rcap = cap;
    }
    memcpy(x->resp + x->rlen, p, len);
    x->rlen += len;
    return len;
}

/* ------------------------------------------------------------ the API */

hov_err
httpc_global_init(hov_error *err)
{
    CURLcode rc = curl_global_init(CURL_GLOBAL_DEFAULT);
    if (rc != CURLE_OK)
        return hov_fail(err, HOV_ESYS, (int)rc, "initialise libcurl: %s",
                        curl_easy_strerror(rc));
    return HOV_OK;
}

void
httpc_global_cleanup(void)
{
    curl_global_cleanup();
}

hov_err
httpc_new(uv_loop_t *loop, const httpc_opts *opts, httpc **out, hov_error *err)
{
    httpc_opts o = opts != NULL ? *opts : (httpc_opts){0};
    httpc *hc = calloc(1, sizeof *hc);
    if (hc == NULL)
        return hov_fail(err, HOV_ENOMEM, 0, "HTTP client");
    hc->loop = loop;
    hc->max_response =
        o.max_response_bytes ? o.max_response_bytes : DEFAULT_MAX_RESPONSE;
    uint64_t cms =
        o.connect_timeout_ms ? o.connect_timeout_ms : DEFAULT_CONNECT_MS;
    hc->connect_ms = cms > LONG_MAX ? LONG_MAX : (long)cms;
    hc->default_ms =
        o.default_timeout_ms ? o.default_timeout_ms : DEFAULT_TIMEOUT_MS;
    hc->max_host_conns = o.max_host_conns;
    hc->user_agent =
        strdup(o.user_agent != NULL ? o.user_agent : DEFAULT_USER_AGENT);
    hc->ca_file = o.ca_file != NULL ? strdup(o.ca_file) : NULL;
    if (hc->user_agent == NULL || (o.ca_file != NULL && hc->ca_file == NULL)) {
        free(hc->user_agent);
        free(hc->ca_file);
        free(hc);
        return hov_fail(err, HOV_ENOMEM, 0, "HTTP client");
    }
    hc->multi = curl_multi_init();
    if (hc->multi == NULL) {
        free(hc->user_agent);
        free(hc->ca_file);
        free(hc);
        return hov_fail(err, HOV_ESYS, 0,
                        "HTTP client: libcurl could not make a multi handle "
                        "(was httpc_global_init called?)");
    }
    CURLMcode mc =
        curl_multi_setopt(hc->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
    if (mc == CURLM_OK)
        mc = curl_multi_setopt(hc->multi, CURLMOPT_SOCKETDATA, hc);
    if (mc == CURLM_OK)
        mc =
            curl_multi_setopt(hc->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    if (mc == CURLM_OK)
        mc = curl_multi_setopt(hc->multi, CURLMOPT_TIMERDATA, hc);
    if (mc == CURLM_OK && hc->max_host_conns > 0)
        mc = curl_multi_setopt(hc->multi, CURLMOPT_MAX_HOST_CONNECTIONS,
                               hc->max_host_conns);
    int uv = mc == CURLM_OK ? uv_timer_init(loop, &hc->timer) : 0;
    if (mc != CURLM_OK || uv != 0) {
        curl_multi_cleanup(hc->multi);
        free(hc->user_agent);
        free(hc->ca_file);
        free(hc);
        return hov_fail(err, HOV_ESYS, uv, "HTTP client: %s",
                        mc != CURLM_OK ? curl_multi_strerror(mc)
                                       : uv_strerror(uv));
    }
    hc->timer.data = hc;
    hc->handles = 1;
    *out = hc;
    return HOV_OK;
}

/* A header the server reads as one "Name: value" line. */
static bool
header_ok(const char *h)
{
    const char *colon = strchr(h, ':');
    return colon != NULL && colon != h && strpbrk(h, "\r\n") == NULL &&
           strcspn(h, " \t") >= (size_t)(colon - h);
}

static bool
header_named(const char *h, const char *name)
{
    size_t n = strlen(name);
    return strncasecmp(h, name, n) == 0 && h[n] == ':';
}

hov_err
httpc_post(httpc *hc, const char *url, const char *const *headers,
           const void *body, size_t len, uint64_t timeout_ms, httpc_cb cb,
           void *user, hov_error *err)
{
    if (hc->freeing)
        return hov_fail(err, HOV_ESTATE, 0,
                        "HTTP post: the client is being closed");
    if (cb == NULL || url == NULL ||
        (strncasecmp(url, "http://", 7) != 0 &&
         strncasecmp(url, "https://", 8) != 0) ||
        strpbrk(url, "\r\n") != NULL)
        return hov_fail(err, HOV_EINVAL, 0,
                        "HTTP post: a callback and an http:// or https:// "
                        "URL are required");
    bool has_ctype = false, has_expect = false;
    for (size_t i = 0; headers != NULL && headers[i] != NULL; i++) {
        if (!header_ok(headers[i]))
            return hov_fail(err, HOV_EINVAL, 0,
                            "HTTP post: header %zu is not \"Name: value\" on "
                            "one line",
                            i);
        has_ctype = has_ctype || header_named(headers[i], "Content-Type");
        has_expect = has_expect || header_named(headers[i], "Expect");
    }
    xfer *x = calloc(1, sizeof *x);
    if (x == NULL)
        return hov_fail(err, HOV_ENOMEM, 0, "HTTP post");
    x->hc = hc;
    x->cb = cb;
    x->user = user;
    x->easy = curl_easy_init();
    if (x->easy == NULL) {
        free(x);
        return hov_fail(err, HOV_ENOMEM, 0, "HTTP post: libcurl handle");
    }
    /* libcurl copies each header; a failed append leaves the list as it
     * was, so one NULL check per append is enough. */
    bool oom = false;
    for (size_t i = 0; !oom && headers != NULL && headers[i] != NULL; i++) {
        struct curl_slist *l = curl_slist_append(x->hdrs, headers[i]);
        oom = l == NULL;
        x->hdrs = l != NULL ? l : x->hdrs;
    }
    /* "Name:" with nothing after removes a header libcurl would add. */
    if (!oom && !has_ctype) {
        struct curl_slist *l = curl_slist_append(x->hdrs, "Content-Type:");
        oom = l == NULL;
        x->hdrs = l != NULL ? l : x->hdrs;
    }
    if (!oom && !has_expect) {
        struct curl_slist *l = curl_slist_append(x->hdrs, "Expect:");
        oom = l == NULL;
        x->hdrs = l != NULL ? l : x->hdrs;
    }
    if (oom) {
        xfer_free(x);
        return hov_fail(err, HOV_ENOMEM, 0, "HTTP post: headers");
    }
    uint64_t tms = timeout_ms ? timeout_ms : hc->default_ms;
    long total_ms = tms > LONG_MAX ? LONG_MAX : (long)tms;
    CURL *e = x->easy;
    CURLcode c = CURLE_OK;
#define SET(opt, val)                                                          \
    do {                                                                       \
        if (c == CURLE_OK)                                                     \
            c = curl_easy_setopt(e, opt, val);                                 \
    } while (0)
    SET(CURLOPT_URL, url);
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_FOLLOWLOCATION, 0L);
    SET(CURLOPT_PRIVATE, (char *)x);
    SET(CURLOPT_ERRORBUFFER, x->errbuf);
    SET(CURLOPT_WRITEFUNCTION, on_curl_write);
    SET(CURLOPT_WRITEDATA, x);
    SET(CURLOPT_CLOSESOCKETFUNCTION, on_curl_closesocket);
    SET(CURLOPT_CLOSESOCKETDATA, hc);
    SET(CURLOPT_HTTPHEADER, x->hdrs);
    SET(CURLOPT_USERAGENT, hc->user_agent);
    SET(CURLOPT_TIMEOUT_MS, total_ms);
    SET(CURLOPT_CONNECTTIMEOUT_MS,
        hc->connect_ms < total_ms ? hc->connect_ms : total_ms);
    SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)hc->max_response);
    SET(CURLOPT_POST, 1L);
    /* The size first: COPYPOSTFIELDS copies that many bytes, so a body
     * may hold NULs. */
    SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    SET(CURLOPT_COPYPOSTFIELDS, len > 0 ? (const char *)body : "");
    if (hc->ca_file != NULL)
        SET(CURLOPT_CAINFO, hc->ca_file);
#undef SET
    if (c != CURLE_OK) {
        xfer_free(x);
        return hov_fail(err, c == CURLE_OUT_OF_MEMORY ? HOV_ENOMEM : HOV_ESYS,
                        (int)c, "HTTP post: libcurl refused an option: %s",
                        curl_easy_strerror(c));
    }
    x->next = hc->xfers;
    if (hc->xfers != NULL)
        hc->xfers->prev = x;
    hc->xfers = x;
    hc->nxfers++;
    /* Adding only arms the timer (on_curl_timer); the transfer starts from
     * the loop, so cb can never run inside this call. */
    CURLMcode mc = curl_multi_add_handle(hc->multi, e);
    if (mc != CURLM_OK) {
        xfer_unlink(x);
        xfer_free(x);
        return hov_fail(err, mc == CURLM_OUT_OF_MEMORY ? HOV_ENOMEM : HOV_ESYS,
                        (int)mc, "HTTP post: %s", curl_multi_strerror(mc));
    }
    return HOV_OK;
}

size_t
httpc_pending(const httpc *hc)
{
    return hc->nxfers;
}

void
httpc_free(httpc *hc)
{
    if (hc == NULL || hc->freeing)
        return;
    hc->freeing = true;
    while (hc->xfers != NULL) {
        xfer *x = hc->xfers;
        xfer_unlink(x);
        curl_multi_remove_handle(hc->multi, x->easy);
        xfer_report(x, CURLE_ABORTED_BY_CALLBACK, true);
    }
    /* Closes the cached connections; each socket is forgotten
     * (CURL_POLL_REMOVE, on_curl_closesocket) as it goes. */
    curl_multi_cleanup(hc->multi);
    hc->multi = NULL;
    while (hc->socks != NULL)
        sockw_close(hc->socks);
    uv_close((uv_handle_t *)&hc->timer, on_handle_closed);
}
