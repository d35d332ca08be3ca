/* The HTTP client (adapters/common/httpc.c) end to end: httpc against the
 * real httpd on the same libuv loop, against listeners that never answer
 * or refuse, against a raw server whose response has no length, and
 * against openssl s_server for TLS verification.
 *
 * The loop runs in the test's own thread (run_until), so callbacks run
 * there too and may record freely; assertions are made after the loop
 * step that produced the result. Timeouts are short: the file runs in a
 * few seconds.
 */
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "handover/log.h"
#include "httpc.h"
#include "httpd.h"

/* Under AddressSanitizer a leak fails the test itself: LeakSanitizer's
 * report at exit comes after Criterion has counted the test as passed. */
#if defined(__SANITIZE_ADDRESS__)
#define HAVE_LSAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HAVE_LSAN 1
#endif
#endif
#ifdef HAVE_LSAN
#include <sanitizer/lsan_interface.h>
#define assert_no_leaks()                                                      \
    cr_assert_eq(__lsan_do_recoverable_leak_check(), 0,                        \
                 "memory leaked: see the LeakSanitizer report")
#else
#define assert_no_leaks() ((void)0)
#endif

static uint64_t
now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------- the fixture */

typedef struct ctx {
    uv_loop_t loop;
    uv_timer_t guard; /* wakes uv_run(UV_RUN_ONCE) so deadlines are seen */
    httpd *d;
    int port;
    httpc *hc;
    httpd_req *held[4];
    int nheld;
    int served;
    char peers[8][64]; /* the peer of each of the first requests */
} ctx;

/* What one callback saw (copied: the result is borrowed). */
typedef struct got {
    ctx *c;
    int calls;
    bool during_post; /* called from inside httpc_post: must never be */
    long status;
    char error[CURL_ERROR_SIZE];
    int curl_code;
    char *body;
    size_t len;
    char ctype[128];
    bool timed_out, cancelled;
    int id;
    /* What to do from inside the callback. */
    bool free_client;
    bool post_again; /* and record httpc_post's result */
    hov_err post_again_rc;
} got;

static bool in_post;

static void
record(void *user, const httpc_result *r)
{
    got *g = user;
    g->calls++;
    g->during_post = g->during_post || in_post;
    g->status = r->status;
    snprintf(g->error, sizeof g->error, "%s", r->error);
    g->curl_code = r->curl_code;
    free(g->body);
    g->body = malloc(r->len + 1);
    cr_assert_not_null(g->body);
    memcpy(g->body, r->body, r->len);
    g->body[r->len] = '\0';
    g->len = r->len;
    snprintf(g->ctype, sizeof g->ctype, "%s", r->content_type);
    g->timed_out = r->timed_out;
    g->cancelled = r->cancelled;
    if (g->post_again) {
        hov_error err = {0};
        g->post_again_rc = httpc_post(g->c->hc, "http://127.0.0.1:1/", NULL,
                                      NULL, 0, 100, record, g, &err);
    }
    if (g->free_client)
        httpc_free(g->c->hc);
}

static void
got_fini(got *g, int n)
{
    for (int i = 0; i < n; i++)
        free(g[i].body);
}

static void
post(ctx *c, const char *url, const char *const *hdrs, const void *body,
     size_t len, uint64_t timeout_ms, got *g)
{
    hov_error err = {0};
    g->c = c;
    in_post = true;
    hov_err rc =
        httpc_post(c->hc, url, hdrs, body, len, timeout_ms, record, g, &err);
    in_post = false;
    cr_assert_eq(rc, HOV_OK, "httpc_post: %s", err.msg);
    cr_assert_eq(g->calls, 0, "the callback ran inside httpc_post");
}

/* ---------------------------------------------- the server's handler */

typedef struct delayed {
    uv_timer_t t;
    httpd_req *req;
} delayed;

static void
on_delay(uv_timer_t *t)
{
    delayed *dl = t->data;
    httpd_respond(dl->req, 200, NULL, "late", 4);
    uv_close((uv_handle_t *)t, (uv_close_cb)free);
}

static void
handler(void *user, httpd_req *req)
{
    ctx *c = user;
    const char *path = httpd_req_path(req);
    if (c->served < 8)
        snprintf(c->peers[c->served], sizeof c->peers[0], "%s",
                 httpd_req_peer(req));
    c->served++;
    if (strcmp(path, "/echo") == 0) {
        size_t blen;
        const uint8_t *b = httpd_req_body(req, &blen);
        const char *idem = httpd_req_header(req, "Idempotency-Key");
        const char *ct = httpd_req_header(req, "Content-Type");
        const char *ex = httpd_req_header(req, "Expect");
        char head[256];
        int n = snprintf(head, sizeof head, "%s|%s|%s|", idem ? idem : "-",
                         ct ? ct : "-", ex ? ex : "-");
        char *out = malloc((size_t)n + blen);
        memcpy(out, head, (size_t)n);
        memcpy(out + n, b, blen);
        static const char *const hdrs[] = {
            "Content-Type: application/fhir+json", NULL};
        httpd_respond(req, 200, hdrs, out, (size_t)n + blen);
        free(out);
    } else if (strncmp(path, "/status/", 8) == 0) {
        httpd_respond(req, (int)strtol(path + 8, NULL, 10), NULL, "unavailable",
                      11);
    } else if (strcmp(path, "/hold") == 0 && c->nheld < 4) {
        c->held[c->nheld++] = req;
    } else if (strncmp(path, "/big/", 5) == 0) {
        size_t n = strtoul(path + 5, NULL, 10);
        char *out = malloc(n);
        memset(out, 'b', n);
        httpd_respond(req, 200, NULL, out, n);
        free(out);
    } else if (strncmp(path, "/delay/", 7) == 0) {
        delayed *dl = malloc(sizeof *dl);
        dl->req = req;
        uv_timer_init(&c->loop, &dl->t);
        dl->t.data = dl;
        uv_timer_start(&dl->t, on_delay, strtoul(path + 7, NULL, 10), 0);
    } else {
        httpd_respond(req, 404, NULL, NULL, 0);
    }
}

static void
on_guard(uv_timer_t *t)
{
    (void)t;
}

static void
ctx_init(ctx *c, const httpc_opts *co)
{
    memset(c, 0, sizeof *c);
    cr_assert_eq(uv_loop_init(&c->loop), 0);
    uv_timer_init(&c->loop, &c->guard);
    uv_timer_start(&c->guard, on_guard, 10, 10);
    httpd_opts o = {.host = "127.0.0.1", .max_body_bytes = 4 << 20};
    hov_error err = {0};
    cr_assert_eq(httpd_start(&c->loop, &o, handler, c, &c->d, &err), HOV_OK,
                 "%s", err.msg);
    c->port = httpd_port(c->d);
    cr_assert_eq(httpc_new(&c->loop, co, &c->hc, &err), HOV_OK, "%s", err.msg);
}

/* Run the loop until *count reaches want or ms pass. */
static void
run_until(ctx *c, const int *count, int want, int ms)
{
    uint64_t end = now_ms() + (uint64_t)ms;
    while (*count < want && now_ms() < end)
        uv_run(&c->loop, UV_RUN_ONCE);
}

static void
run_for(ctx *c, int ms)
{
    uint64_t end = now_ms() + (uint64_t)ms;
    while (now_ms() < end)
        uv_run(&c->loop, UV_RUN_ONCE);
}

/* Free the client (unless a test did), stop the server, answer what it
 * holds, and check that the loop ends with every handle closed. */
static void
ctx_fini(ctx *c, bool free_client)
{
    if (free_client)
        httpc_free(c->hc);
    httpd_stop(c->d);
    for (int i = 0; i < c->nheld; i++)
        httpd_respond(c->held[i], 200, NULL, NULL, 0);
    uv_close((uv_handle_t *)&c->guard, NULL);
    uv_run(&c->loop, UV_RUN_DEFAULT);
    cr_assert_eq(uv_loop_close(&c->loop), 0,
                 "handles left open after httpc_free and httpd_stop");
}

static void
suite_init(void)
{
    hov_log_set_name("httpc_test");
    hov_log_set_level(HOV_LOG_ERROR);
    hov_error err = {0};
    cr_assert_eq(httpc_global_init(&err), HOV_OK, "%s", err.msg);
    /* Loopback only: no proxy from the environment. */
    unsetenv("http_proxy");
    unsetenv("https_proxy");
    unsetenv("HTTPS_PROXY");
    unsetenv("all_proxy");
    unsetenv("ALL_PROXY");
}

static void
suite_fini(void)
{
    httpc_global_cleanup();
}

TestSuite(httpc, .init = suite_init, .fini = suite_fini, .timeout = 20);

/* A loopback port with nothing listening (bound, read, released). */
static int
closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t l = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &l);
    close(fd);
    return ntohs(a.sin_port);
}

/* ------------------------------------------------------------ tests */

Test(httpc, post_end_to_end)
{
    ctx c;
    ctx_init(&c, NULL);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/echo", c.port);
    static const char *const hdrs[] = {"Content-Type: application/fhir+json",
                                       "Idempotency-Key: ev-123", NULL};
    static const char body[] = "{\"a\":1}\0tail"; /* a NUL inside */
    got g = {0};
    post(&c, url, hdrs, body, sizeof body - 1, 2000, &g);
    cr_assert_eq(httpc_pending(c.hc), 1);
    run_until(&c, &g.calls, 1, 3000);
    cr_assert_eq(g.calls, 1);
    cr_assert_not(g.during_post);
    cr_assert_str_eq(g.error, "");
    cr_assert_eq(g.curl_code, 0);
    cr_assert_eq(g.status, 200);
    cr_assert_str_eq(g.ctype, "application/fhir+json");
    static const char want[] = "ev-123|application/fhir+json|-|{\"a\":1}\0tail";
    cr_assert_eq(g.len, sizeof want - 1);
    cr_assert_eq(memcmp(g.body, want, g.len), 0);
    cr_assert_not(g.timed_out);
    cr_assert_not(g.cancelled);
    cr_assert_eq(httpc_pending(c.hc), 0);

    /* A second post reuses the kept connection. */
    got g2 = {0};
    post(&c, url, NULL, "x", 1, 2000, &g2);
    run_until(&c, &g2.calls, 1, 3000);
    cr_assert_eq(g2.status, 200);
    /* No Content-Type given: none sent (not libcurl's form default). */
    cr_assert_str_eq(g2.body, "-|-|-|x");
    cr_assert_eq(c.served, 2);
    cr_assert_str_eq(c.peers[0], c.peers[1], "the connection was not reused");
    ctx_fini(&c, true);
    got_fini(&g, 1);
    got_fini(&g2, 1);
    assert_no_leaks();
}

Test(httpc, large_body_is_sent_without_waiting_for_continue)
{
    ctx c;
    ctx_init(&c, NULL);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/echo", c.port);
    size_t n = 2u << 20;
    char *body = malloc(n);
    cr_assert_not_null(body);
    for (size_t i = 0; i < n; i++)
        body[i] = (char)('A' + i % 23);
    static const char *const hdrs[] = {"Content-Type: text/plain", NULL};
    httpc_opts big = {.max_response_bytes = 4u << 20};
    httpc_free(c.hc);
    hov_error err = {0};
    cr_assert_eq(httpc_new(&c.loop, &big, &c.hc, &err), HOV_OK);
    got g = {0};
    uint64_t t0 = now_ms();
    post(&c, url, hdrs, body, n, 5000, &g);
    /* httpc_post copied the body. */
    memset(body, 0, n);
    run_until(&c, &g.calls, 1, 5000);
    uint64_t took = now_ms() - t0;
    cr_assert_eq(g.status, 200, "%ld %s", g.status, g.error);
    static const char head[] = "-|text/plain|-|";
    cr_assert_eq(g.len, sizeof head - 1 + n);
    cr_assert_eq(memcmp(g.body, head, sizeof head - 1), 0);
    for (size_t i = 0; i < n; i++)
        if (g.body[sizeof head - 1 + i] != (char)('A' + i % 23))
            cr_assert_fail("body differs at byte %zu", i);
    /* libcurl would wait up to 1 s for "100 Continue" had it sent Expect. */
    cr_assert_lt(took, 900, "took %llu ms", (unsigned long long)took);
    free(body);
    ctx_fini(&c, true);
    got_fini(&g, 1);
    assert_no_leaks();
}

Test(httpc, server_error_status_is_reported_as_an_answer)
{
    ctx c;
    ctx_init(&c, NULL);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/status/503", c.port);
    got g = {0};
    post(&c, url, NULL, "x", 1, 2000, &g);
    run_until(&c, &g.calls, 1, 3000);
    cr_assert_eq(g.calls, 1);
    cr_assert_eq(g.status, 503);
    cr_assert_str_eq(g.error, "");
    cr_assert_eq(g.curl_code, 0);
    cr_assert_str_eq(g.body, "unavailable");
    ctx_fini(&c, true);
    got_fini(&g, 1);
    assert_no_leaks();
}

Test(httpc, timeout_against_a_server_that_never_answers)
{
    ctx c;
    ctx_init(&c, NULL);
    /* A listener that never accepts: the kernel completes the handshake,
     * takes the request, and nothing ever comes back. */
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(lfd, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(listen(lfd, 8), 0);
    socklen_t l = sizeof a;
    getsockname(lfd, (struct sockaddr *)&a, &l);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/x", ntohs(a.sin_port));
    got g[2] = {{0}};
    uint64_t t0 = now_ms();
    post(&c, url, NULL, "x", 1, 300, &g[0]);
    /* And httpd holding a request: it reads it and never responds. */
    snprintf(url, sizeof url, "http://127.0.0.1:%d/hold", c.port);
    post(&c, url, NULL, "y", 1, 300, &g[1]);
    run_until(&c, &g[0].calls, 1, 3000);
    run_until(&c, &g[1].calls, 1, 3000);
    uint64_t took = now_ms() - t0;
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(g[i].calls, 1);
        cr_assert(g[i].timed_out, "post %d: %s", i, g[i].error);
        cr_assert_eq(g[i].curl_code, CURLE_OPERATION_TIMEDOUT);
        cr_assert_eq(g[i].status, 0);
        cr_assert(strstr(g[i].error, "imed out") != NULL, "%s", g[i].error);
    }
    cr_assert_geq(took, 290);
    cr_assert_lt(took, 1500);
    cr_assert_eq(c.nheld, 1);
    close(lfd);
    ctx_fini(&c, true);
    got_fini(g, 2);
    assert_no_leaks();
}

Test(httpc, connection_refused)
{
    ctx c;
    ctx_init(&c, NULL);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/x", closed_port());
    got g = {0};
    post(&c, url, NULL, NULL, 0, 2000, &g);
    run_until(&c, &g.calls, 1, 3000);
    cr_assert_eq(g.calls, 1);
    cr_assert_not(g.during_post);
    cr_assert_eq(g.status, 0);
    cr_assert_eq(g.curl_code, CURLE_COULDNT_CONNECT, "%d %s", g.curl_code,
                 g.error);
    cr_assert_neq(g.error[0], '\0');
    cr_assert(strstr(g.error, "127.0.0.1") != NULL,
              "the error should name the host: %s", g.error);
    cr_assert_not(g.timed_out);
    ctx_fini(&c, true);
    got_fini(&g, 1);
    assert_no_leaks();
}

#define MANY 100

Test(httpc, many_concurrent_posts)
{
    ctx c;
    ctx_init(&c, NULL);
    char url[128], durl[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/echo", c.port);
    snprintf(durl, sizeof durl, "http://127.0.0.1:%d/delay/50", c.port);
    got *g = calloc(MANY, sizeof *g);
    int done = 0;
    for (int i = 0; i < MANY; i++) {
        char body[32];
        int n = snprintf(body, sizeof body, "post-%d", i);
        g[i].id = i;
        /* Every fifth waits on the server, so many are in flight at once. */
        post(&c, i % 5 == 0 ? durl : url, NULL, body, (size_t)n, 5000, &g[i]);
    }
    cr_assert_eq(httpc_pending(c.hc), MANY);
    uint64_t end = now_ms() + 10000;
    while (done < MANY && now_ms() < end) {
        uv_run(&c.loop, UV_RUN_ONCE);
        done = 0;
        for (int i = 0; i < MANY; i++)
            done += g[i].calls;
    }
    cr_assert_eq(done, MANY);
    for (int i = 0; i < MANY; i++) {
        cr_assert_eq(g[i].calls, 1);
        cr_assert_eq(g[i].status, 200, "post %d: %s", i, g[i].error);
        char want[64];
        if (i % 5 == 0)
            snprintf(want, sizeof want, "late");
        else
            snprintf(want, sizeof want, "-|-|-|post-%d", i);
        cr_assert_str_eq(g[i].body, want);
    }
    cr_assert_eq(httpc_pending(c.hc), 0);
    cr_assert_eq(c.served, MANY);
    ctx_fini(&c, true);
    got_fini(g, MANY);
    free(g);
    assert_no_leaks();
}

/* A raw server for one connection: reads a request, answers with a body
 * of n bytes and no length (the end is the close), then closes. */
typedef struct raw_srv {
    int lfd;
    int port;
    size_t n;
    pthread_t thr;
} raw_srv;

static void *
raw_main(void *arg)
{
    raw_srv *s = arg;
    int fd = accept(s->lfd, NULL, NULL);
    if (fd < 0)
        return NULL;
    char buf[4096];
    size_t have = 0;
    while (have < sizeof buf - 1) {
        ssize_t r = recv(fd, buf + have, sizeof buf - 1 - have, 0);
        if (r <= 0)
            break;
        have += (size_t)r;
        buf[have] = '\0';
        if (strstr(buf, "\r\n\r\n") != NULL)
            break;
    }
    const char head[] = "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n";
    send(fd, head, sizeof head - 1, MSG_NOSIGNAL);
    char chunk[1000];
    memset(chunk, 'r', sizeof chunk);
    for (size_t left = s->n; left > 0;) {
        size_t k = left < sizeof chunk ? left : sizeof chunk;
        if (send(fd, chunk, k, MSG_NOSIGNAL) <= 0)
            break;
        left -= k;
    }
    close(fd);
    return NULL;
}

static void
raw_start(raw_srv *s, size_t n)
{
    s->n = n;
    s->lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(s->lfd, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(listen(s->lfd, 4), 0);
    socklen_t l = sizeof a;
    getsockname(s->lfd, (struct sockaddr *)&a, &l);
    s->port = ntohs(a.sin_port);
    cr_assert_eq(pthread_create(&s->thr, NULL, raw_main, s), 0);
}

static void
raw_stop(raw_srv *s)
{
    pthread_join(s->thr, NULL);
    close(s->lfd);
}

Test(httpc, response_over_the_limit_fails_the_post)
{
    ctx c;
    httpc_opts o = {.max_response_bytes = 1000};
    ctx_init(&c, &o);
    char url[128];
    /* With a Content-Length: refused as soon as the headers arrive. */
    snprintf(url, sizeof url, "http://127.0.0.1:%d/big/5000", c.port);
    got g[3] = {{0}};
    post(&c, url, NULL, NULL, 0, 2000, &g[0]);
    run_until(&c, &g[0].calls, 1, 3000);
    cr_assert_eq(g[0].status, 200);
    cr_assert_neq(g[0].curl_code, 0);
    cr_assert(strstr(g[0].error, "over the 1000-byte limit") != NULL, "%s",
              g[0].error);
    /* At the limit: fine. */
    snprintf(url, sizeof url, "http://127.0.0.1:%d/big/1000", c.port);
    post(&c, url, NULL, NULL, 0, 2000, &g[1]);
    run_until(&c, &g[1].calls, 1, 3000);
    cr_assert_eq(g[1].curl_code, 0, "%s", g[1].error);
    cr_assert_eq(g[1].len, 1000);
    /* Without a length: counted as it arrives. */
    raw_srv rs;
    raw_start(&rs, 50000);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/raw", rs.port);
    post(&c, url, NULL, NULL, 0, 2000, &g[2]);
    run_until(&c, &g[2].calls, 1, 3000);
    raw_stop(&rs);
    cr_assert_eq(g[2].status, 200);
    cr_assert_eq(g[2].curl_code, CURLE_WRITE_ERROR, "%d %s", g[2].curl_code,
                 g[2].error);
    cr_assert(strstr(g[2].error, "over the 1000-byte limit") != NULL, "%s",
              g[2].error);
    cr_assert_leq(g[2].len, 1000);
    ctx_fini(&c, true);
    got_fini(g, 3);
    assert_no_leaks();
}

Test(httpc, free_cancels_posts_in_flight)
{
    ctx c;
    ctx_init(&c, NULL);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/hold", c.port);
    got g[2] = {{0}};
    g[0].post_again = true; /* must be refused while closing */
    post(&c, url, NULL, "a", 1, 5000, &g[0]);
    post(&c, url, NULL, "b", 1, 5000, &g[1]);
    run_until(&c, &c.nheld, 2, 3000);
    cr_assert_eq(c.nheld, 2);
    httpc_free(c.hc);
    /* Both called before httpc_free returned. */
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(g[i].calls, 1);
        cr_assert(g[i].cancelled);
        cr_assert_eq(g[i].status, 0);
        cr_assert_str_eq(g[i].error, "cancelled: the HTTP client was closed");
    }
    cr_assert_eq(g[0].post_again_rc, HOV_ESTATE);
    ctx_fini(&c, false);
    got_fini(g, 2);
    assert_no_leaks();
}

Test(httpc, free_from_inside_a_callback)
{
    ctx c;
    ctx_init(&c, NULL);
    char url[128];
    got g[2] = {{0}};
    snprintf(url, sizeof url, "http://127.0.0.1:%d/hold", c.port);
    post(&c, url, NULL, "held", 4, 5000, &g[1]);
    run_until(&c, &c.nheld, 1, 3000);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/echo", c.port);
    g[0].free_client = true;
    post(&c, url, NULL, "x", 1, 5000, &g[0]);
    run_until(&c, &g[0].calls, 1, 3000);
    cr_assert_eq(g[0].calls, 1);
    cr_assert_eq(g[0].status, 200);
    cr_assert_eq(g[1].calls, 1);
    cr_assert(g[1].cancelled);
    /* The loop keeps running normally and the client's memory goes with
     * its handles (checked by ctx_fini and the leak check). */
    run_for(&c, 50);
    cr_assert_eq(g[0].calls, 1);
    cr_assert_eq(g[1].calls, 1);
    ctx_fini(&c, false);
    got_fini(g, 2);
    assert_no_leaks();
}

Test(httpc, bad_arguments_are_refused_without_a_callback)
{
    ctx c;
    ctx_init(&c, NULL);
    got g = {0};
    hov_error err = {0};
    static const char *const bad_hdr[] = {"X-A: 1\r\nX-Injected: 2", NULL};
    static const char *const no_colon[] = {"just text", NULL};
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/echo", c.port);
    cr_assert_eq(
        httpc_post(c.hc, url, bad_hdr, NULL, 0, 1000, record, &g, &err),
        HOV_EINVAL);
    cr_assert(strstr(err.msg, "header 0") != NULL, "%s", err.msg);
    hov_error_clear(&err);
    cr_assert_eq(
        httpc_post(c.hc, url, no_colon, NULL, 0, 1000, record, &g, &err),
        HOV_EINVAL);
    hov_error_clear(&err);
    cr_assert_eq(httpc_post(c.hc, "file:///etc/passwd", NULL, NULL, 0, 1000,
                            record, &g, &err),
                 HOV_EINVAL);
    hov_error_clear(&err);
    cr_assert_eq(httpc_post(c.hc, url, NULL, NULL, 0, 1000, NULL, &g, &err),
                 HOV_EINVAL);
    run_for(&c, 50);
    cr_assert_eq(g.calls, 0);
    cr_assert_eq(httpc_pending(c.hc), 0);
    cr_assert_eq(c.served, 0);
    ctx_fini(&c, true);
    assert_no_leaks();
}

/* ------------------------------------------------------------- TLS */

typedef struct tls_srv {
    pid_t pid;
    int port;
} tls_srv;

/* Servers still running, stopped by tls_fini even when an assertion ends
 * the test early. */
static pid_t tls_pids[4];
static char tls_dir[64];

static void
tls_start(tls_srv *t, const char *dir, const char *cert, const char *key)
{
    t->port = closed_port();
    char port[16];
    snprintf(port, sizeof port, "%d", t->port);
    t->pid = fork();
    cr_assert_geq(t->pid, 0);
    if (t->pid == 0) {
        /* Should the test process die first, the server goes too. */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (chdir(dir) != 0)
            _exit(127);
        FILE *nul = freopen("/dev/null", "w", stdout);
        nul = freopen("/dev/null", "w", stderr);
        (void)nul;
        execlp("openssl", "openssl", "s_server", "-quiet", "-www", "-accept",
               port, "-cert", cert, "-key", key, (char *)NULL);
        _exit(127);
    }
    for (size_t i = 0; i < sizeof tls_pids / sizeof tls_pids[0]; i++)
        if (tls_pids[i] == 0) {
            tls_pids[i] = t->pid;
            break;
        }
    /* Wait until it listens. */
    for (int i = 0; i < 200; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET,
                                .sin_port = htons((uint16_t)t->port),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        int rc = connect(fd, (struct sockaddr *)&a, sizeof a);
        close(fd);
        if (rc == 0)
            return;
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
    }
    cr_assert_fail("openssl s_server did not start");
}

static void
tls_stop(tls_srv *t)
{
    kill(t->pid, SIGTERM);
    waitpid(t->pid, NULL, 0);
    for (size_t i = 0; i < sizeof tls_pids / sizeof tls_pids[0]; i++)
        if (tls_pids[i] == t->pid)
            tls_pids[i] = 0;
}

static void
tls_fini(void)
{
    for (size_t i = 0; i < sizeof tls_pids / sizeof tls_pids[0]; i++)
        if (tls_pids[i] > 0) {
            kill(tls_pids[i], SIGTERM);
            waitpid(tls_pids[i], NULL, 0);
            tls_pids[i] = 0;
        }
    if (tls_dir[0] != '\0') {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf %s", tls_dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", tls_dir);
        tls_dir[0] = '\0';
    }
    suite_fini();
}

static int
sh(const char *cmd)
{
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Verification is on: a self-signed certificate fails (60) unless its CA
 * file is given, and with the CA file a certificate for another name
 * still fails. With the right CA and name the handshake succeeds; the
 * post then times out because s_server -www does not answer POSTs, which
 * is still proof that the request went through TLS. */
Test(httpc, tls_peer_and_host_are_verified, .fini = tls_fini)
{
    if (sh("command -v openssl >/dev/null 2>&1") != 0)
        cr_skip_test("openssl command not installed");
    char dir[] = "/tmp/httpc_tls_XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    snprintf(tls_dir, sizeof tls_dir, "%s", dir);
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "cd %s && openssl req -x509 -newkey rsa:2048 -nodes -days 1 "
             "-keyout good.key -out good.pem -subj /CN=localhost "
             "-addext subjectAltName=IP:127.0.0.1 >/dev/null 2>&1 && "
             "openssl req -x509 -newkey rsa:2048 -nodes -days 1 "
             "-keyout other.key -out other.pem -subj /CN=other.example "
             "-addext subjectAltName=DNS:other.example >/dev/null 2>&1",
             dir);
    cr_assert_eq(sh(cmd), 0, "making test certificates");
    char good[300], other[300];
    snprintf(good, sizeof good, "%s/good.pem", dir);
    snprintf(other, sizeof other, "%s/other.pem", dir);

    ctx c;
    ctx_init(&c, NULL);
    tls_srv t1, t2;
    tls_start(&t1, dir, "good.pem", "good.key");
    tls_start(&t2, dir, "other.pem", "other.key");
    char url1[128], url2[128];
    snprintf(url1, sizeof url1, "https://127.0.0.1:%d/", t1.port);
    snprintf(url2, sizeof url2, "https://127.0.0.1:%d/", t2.port);

    /* The system store does not know the self-signed certificate. */
    got g[3] = {{0}};
    post(&c, url1, NULL, "x", 1, 3000, &g[0]);
    run_until(&c, &g[0].calls, 1, 4000);
    cr_assert_eq(g[0].curl_code, CURLE_PEER_FAILED_VERIFICATION, "%d %s",
                 g[0].curl_code, g[0].error);
    cr_assert_eq(g[0].status, 0);

    httpc_free(c.hc);
    hov_error err = {0};
    httpc_opts o = {.ca_file = good};
    cr_assert_eq(httpc_new(&c.loop, &o, &c.hc, &err), HOV_OK, "%s", err.msg);
    /* Trusted CA, right address: the handshake succeeds. */
    post(&c, url1, NULL, "x", 1, 700, &g[1]);
    run_until(&c, &g[1].calls, 1, 4000);
    cr_assert(g[1].curl_code == 0 || g[1].timed_out, "%d %s", g[1].curl_code,
              g[1].error);
    httpc_free(c.hc);
    /* Trusted CA (its own), wrong name: refused. */
    o.ca_file = other;
    cr_assert_eq(httpc_new(&c.loop, &o, &c.hc, &err), HOV_OK, "%s", err.msg);
    post(&c, url2, NULL, "x", 1, 3000, &g[2]);
    run_until(&c, &g[2].calls, 1, 4000);
    cr_assert_eq(g[2].curl_code, CURLE_PEER_FAILED_VERIFICATION, "%d %s",
                 g[2].curl_code, g[2].error);

    tls_stop(&t1);
    tls_stop(&t2);
    ctx_fini(&c, true);
    got_fini(g, 3);
    assert_no_leaks();
}
