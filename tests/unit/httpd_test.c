/* The HTTP server (adapters/common/httpd.c) against real clients: raw
 * sockets for exact bytes and timing, and the curl command-line tool.
 *
 * Each test starts its own server on an ephemeral 127.0.0.1 port, on a
 * libuv loop running in a second thread; the test's thread is the client
 * and the only one that asserts. Everything the loop thread records is
 * read under the fixture's mutex. Timeouts are short so the file runs in
 * a few seconds. Responses are read with http-parser in response mode.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <http_parser.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "handover/log.h"
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

/* ---------------------------------------------------------- clock */

static uint64_t
now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void
sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* ------------------------------------------------- server fixture */

typedef struct fx fx;
typedef void (*fx_job)(fx *f, void *arg);

struct fx {
    uv_loop_t loop;
    uv_async_t wake;
    pthread_t thr;
    httpd *d;
    int port;
    /* Loop thread only. */
    httpd_req *held[8];
    int nheld;
    /* Shared, under mu. */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    fx_job job;
    void *job_arg;
    bool job_done;
    int handled; /* requests the handler saw */
    int held_count;
    bool gone_after_stop;
    bool gone_seen;
    char last_peer[64];
};

/* A response sent after a delay, from a timer: the asynchronous case. */
typedef struct delayed {
    uv_timer_t t;
    httpd_req *req;
    char body[64];
} delayed;

static void
on_delay_closed(uv_handle_t *h)
{
    free(h->data);
}

static void
on_delay(uv_timer_t *t)
{
    delayed *dl = t->data;
    static const char *const hdrs[] = {"Content-Type: text/plain", NULL};
    httpd_respond(dl->req, 200, hdrs, dl->body, strlen(dl->body));
    uv_close((uv_handle_t *)t, on_delay_closed);
}

/* Echo the request as "method path query x-test headers len\n" + body. */
static void
respond_echo(httpd_req *req)
{
    size_t blen = 0;
    const uint8_t *body = httpd_req_body(req, &blen);
    const char *xt = httpd_req_header(req, "x-test");
    char line[512];
    int n = snprintf(
        line, sizeof line, "%s %s [%s] x-test=%s headers=%zu %zu\n",
        httpd_req_method(req), httpd_req_path(req), httpd_req_query(req),
        xt ? xt : "-", httpd_req_header_count(req), blen);
    size_t total = (size_t)n + blen;
    char *out = malloc(total);
    if (out == NULL) {
        httpd_respond(req, 500, NULL, NULL, 0);
        return;
    }
    memcpy(out, line, (size_t)n);
    memcpy(out + n, body, blen);
    static const char *const hdrs[] = {"Content-Type: text/plain", NULL};
    httpd_respond(req, 200, hdrs, out, total);
    free(out);
}

/* The handler: the path chooses the behaviour. */
static void
handler(void *user, httpd_req *req)
{
    fx *f = user;
    const char *path = httpd_req_path(req);
    pthread_mutex_lock(&f->mu);
    f->handled++;
    snprintf(f->last_peer, sizeof f->last_peer, "%s", httpd_req_peer(req));
    pthread_mutex_unlock(&f->mu);
    if (strncmp(path, "/delay/", 7) == 0) {
        delayed *dl = calloc(1, sizeof *dl);
        if (dl == NULL) {
            httpd_respond(req, 500, NULL, NULL, 0);
            return;
        }
        dl->req = req;
        snprintf(dl->body, sizeof dl->body, "delayed %s", path + 7);
        uv_timer_init(&f->loop, &dl->t);
        dl->t.data = dl;
        uv_timer_start(&dl->t, on_delay, strtoull(path + 7, NULL, 10), 0);
        return;
    }
    if (strcmp(path, "/hold") == 0 && f->nheld < 8) {
        f->held[f->nheld++] = req;
        pthread_mutex_lock(&f->mu);
        f->held_count++;
        pthread_cond_broadcast(&f->cv);
        pthread_mutex_unlock(&f->mu);
        return;
    }
    if (strncmp(path, "/status/", 8) == 0) {
        httpd_respond(req, (int)strtol(path + 8, NULL, 10), NULL, "x", 1);
        return;
    }
    if (strcmp(path, "/close") == 0) {
        static const char *const hdrs[] = {"Connection: close", NULL};
        httpd_respond(req, 200, hdrs, "bye", 3);
        return;
    }
    if (strcmp(path, "/inject") == 0) {
        static const char *const hdrs[] = {
            "X-Good: yes", "X-Bad: a\r\nInjected: 1", "no colon here",
            "Content-Length: 999", NULL};
        httpd_respond(req, 200, hdrs, "ok", 2);
        return;
    }
    if (strcmp(path, "/stop") == 0) {
        /* Stop from inside the handler, then answer: the answer is
         * dropped (the connection is closing) and only frees req. */
        httpd_stop(f->d);
        f->d = NULL;
        pthread_mutex_lock(&f->mu);
        f->gone_seen = httpd_req_gone(req);
        pthread_mutex_unlock(&f->mu);
        httpd_respond(req, 200, NULL, "never sent", 10);
        return;
    }
    if (strcmp(path, "/nocontent") == 0) {
        httpd_respond(req, 204, NULL, "ignored", 7);
        return;
    }
    respond_echo(req);
}

static void
on_wake(uv_async_t *a)
{
    fx *f = a->data;
    pthread_mutex_lock(&f->mu);
    fx_job job = f->job;
    void *arg = f->job_arg;
    f->job = NULL;
    pthread_mutex_unlock(&f->mu);
    if (job != NULL)
        job(f, arg);
    pthread_mutex_lock(&f->mu);
    f->job_done = true;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
}

static void *
loop_main(void *arg)
{
    fx *f = arg;
    uv_run(&f->loop, UV_RUN_DEFAULT);
    return NULL;
}

static fx *
fx_start(const httpd_opts *o)
{
    fx *f = calloc(1, sizeof *f);
    cr_assert_not_null(f);
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->cv, NULL);
    cr_assert_eq(uv_loop_init(&f->loop), 0);
    httpd_opts opts = o ? *o : (httpd_opts){0};
    opts.host = "127.0.0.1";
    opts.port = 0;
    opts.name = "test-http";
    hov_error err = {0};
    hov_err rc = httpd_start(&f->loop, &opts, handler, f, &f->d, &err);
    cr_assert_eq(rc, HOV_OK, "httpd_start: %s", err.msg);
    f->port = httpd_port(f->d);
    cr_assert_gt(f->port, 0);
    uv_async_init(&f->loop, &f->wake, on_wake);
    f->wake.data = f;
    cr_assert_eq(pthread_create(&f->thr, NULL, loop_main, f), 0);
    return f;
}

/* Run job on the loop thread and wait for it. */
static void
fx_call(fx *f, fx_job job, void *arg)
{
    pthread_mutex_lock(&f->mu);
    f->job = job;
    f->job_arg = arg;
    f->job_done = false;
    pthread_mutex_unlock(&f->mu);
    uv_async_send(&f->wake);
    pthread_mutex_lock(&f->mu);
    while (!f->job_done)
        pthread_cond_wait(&f->cv, &f->mu);
    pthread_mutex_unlock(&f->mu);
}

static void
on_respond_held_later(uv_timer_t *t)
{
    fx *f = t->data;
    for (int i = 0; i < f->nheld; i++)
        httpd_respond(f->held[i], 200, NULL, "late", 4);
    f->nheld = 0;
    uv_close((uv_handle_t *)t, (uv_close_cb)free);
}

static void
job_stop(fx *f, void *arg)
{
    (void)arg;
    httpd_stop(f->d);
    pthread_mutex_lock(&f->mu);
    f->gone_after_stop = f->nheld > 0;
    for (int i = 0; i < f->nheld; i++)
        f->gone_after_stop = f->gone_after_stop && httpd_req_gone(f->held[i]);
    pthread_mutex_unlock(&f->mu);
    /* Requests still held are answered after the stop, from a timer: the
     * server's memory must outlive the stop until then. */
    if (f->nheld > 0) {
        uv_timer_t *t = malloc(sizeof *t);
        uv_timer_init(&f->loop, t);
        t->data = f;
        uv_timer_start(t, on_respond_held_later, 50, 0);
    }
    uv_close((uv_handle_t *)&f->wake, NULL);
}

/* Stop the server, let the loop finish and check that it closed every
 * handle (uv_loop_close fails otherwise). */
static void
fx_stop(fx *f)
{
    fx_call(f, job_stop, NULL);
    cr_assert_eq(pthread_join(f->thr, NULL), 0);
    cr_assert_eq(uv_loop_close(&f->loop), 0,
                 "the loop still has handles open after httpd_stop");
    pthread_mutex_destroy(&f->mu);
    pthread_cond_destroy(&f->cv);
    free(f);
    assert_no_leaks();
}

static int
fx_handled(fx *f)
{
    pthread_mutex_lock(&f->mu);
    int n = f->handled;
    pthread_mutex_unlock(&f->mu);
    return n;
}

/* Wait until n requests are held by the handler. */
static void
fx_wait_held(fx *f, int n)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 5;
    pthread_mutex_lock(&f->mu);
    while (f->held_count < n)
        if (pthread_cond_timedwait(&f->cv, &f->mu, &dl) != 0)
            break;
    int got = f->held_count;
    pthread_mutex_unlock(&f->mu);
    cr_assert_eq(got, n, "the handler held %d requests, expected %d", got, n);
}

/* ------------------------------------------------------ raw clients */

static int
cli_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0, "connect: %s",
                 strerror(errno));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static void
cli_send_n(int fd, const void *p, size_t n)
{
    const char *s = p;
    while (n > 0) {
        ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
        cr_assert_gt(w, 0, "send: %s", strerror(errno));
        s += w;
        n -= (size_t)w;
    }
}

static void
cli_send(int fd, const char *s)
{
    cli_send_n(fd, s, strlen(s));
}

/* Wait up to ms for fd to be readable; false on timeout. */
static bool
cli_wait(int fd, int ms)
{
    fd_set rs;
    FD_ZERO(&rs);
    FD_SET(fd, &rs);
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    return select(fd + 1, &rs, NULL, NULL, &tv) > 0;
}

/* Does the server close fd (EOF or reset) within ms, sending nothing? */
static bool
cli_closed_within(int fd, int ms)
{
    if (!cli_wait(fd, ms))
        return false;
    char c;
    ssize_t r = recv(fd, &c, 1, 0);
    return r == 0 || (r < 0 && errno == ECONNRESET);
}

/* Everything until EOF (or ms without data); NUL-terminated. */
static size_t
cli_read_all(int fd, char *out, size_t cap, int ms)
{
    size_t len = 0;
    while (len + 1 < cap && cli_wait(fd, ms)) {
        ssize_t r = recv(fd, out + len, cap - 1 - len, 0);
        if (r <= 0)
            break;
        len += (size_t)r;
    }
    out[len] = '\0';
    return len;
}

typedef struct cresp {
    int status;
    char headers[2048]; /* "name: value\n" each */
    char body[8192];
    size_t blen;
    bool complete;
} cresp;

typedef struct creader {
    http_parser p;
    cresp *r;
    int cap, got;
    bool head;
    bool in_value;
} creader;

static cresp *
cr_cur(creader *c)
{
    return c->got < c->cap ? &c->r[c->got] : NULL;
}

static void
cr_append(char *dst, size_t cap, const char *at, size_t n)
{
    size_t l = strlen(dst);
    if (n > cap - 1 - l)
        n = cap - 1 - l;
    memcpy(dst + l, at, n);
    dst[l + n] = '\0';
}

static int
crb_field(http_parser *p, const char *at, size_t n)
{
    creader *c = p->data;
    cresp *r = cr_cur(c);
    if (r != NULL) {
        if (c->in_value)
            cr_append(r->headers, sizeof r->headers, "\n", 1);
        cr_append(r->headers, sizeof r->headers, at, n);
    }
    c->in_value = false;
    return 0;
}

static int
crb_value(http_parser *p, const char *at, size_t n)
{
    creader *c = p->data;
    cresp *r = cr_cur(c);
    if (r != NULL) {
        if (!c->in_value)
            cr_append(r->headers, sizeof r->headers, ": ", 2);
        cr_append(r->headers, sizeof r->headers, at, n);
    }
    c->in_value = true;
    return 0;
}

static int
crb_headers_done(http_parser *p)
{
    creader *c = p->data;
    cresp *r = cr_cur(c);
    if (r != NULL) {
        r->status = (int)p->status_code;
        cr_append(r->headers, sizeof r->headers, "\n", 1);
    }
    c->in_value = false;
    return c->head ? 1 : 0;
}

static int
crb_body(http_parser *p, const char *at, size_t n)
{
    creader *c = p->data;
    cresp *r = cr_cur(c);
    if (r != NULL && n <= sizeof r->body - r->blen) {
        memcpy(r->body + r->blen, at, n);
        r->blen += n;
    }
    return 0;
}

static int
crb_done(http_parser *p)
{
    creader *c = p->data;
    cresp *r = cr_cur(c);
    if (r != NULL)
        r->complete = true;
    c->got++;
    return 0;
}

static const http_parser_settings cr_settings = {
    .on_header_field = crb_field,
    .on_header_value = crb_value,
    .on_headers_complete = crb_headers_done,
    .on_body = crb_body,
    .on_message_complete = crb_done,
};

/* Read until n responses are complete (or ms without data); returns how
 * many were. head: the responses answer HEAD requests (no body). */
static int
cli_read_responses(int fd, cresp *out, int n, int ms, bool head)
{
    creader c = {.r = out, .cap = n, .head = head};
    memset(out, 0, sizeof *out * (size_t)n);
    http_parser_init(&c.p, HTTP_RESPONSE);
    c.p.data = &c;
    char buf[4096];
    while (c.got < n && cli_wait(fd, ms)) {
        ssize_t r = recv(fd, buf, sizeof buf, 0);
        if (r <= 0) {
            http_parser_execute(&c.p, &cr_settings, buf, 0);
            break;
        }
        size_t k = http_parser_execute(&c.p, &cr_settings, buf, (size_t)r);
        cr_assert_eq(k, (size_t)r, "response does not parse: %s",
                     http_errno_description(HTTP_PARSER_ERRNO(&c.p)));
    }
    return c.got;
}

static void
cli_one(int fd, cresp *r)
{
    cr_assert_eq(cli_read_responses(fd, r, 1, 3000, false), 1,
                 "no complete response");
}

/* --------------------------------------------------- the curl tool */

/* Run the curl tool with args; its output (body, then "\n" and the status
 * code from -w) into out. Returns the exit status. */
static int
run_curl(const char *args, char *out, size_t cap)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "curl -sS --noproxy '*' --max-time 5 -w '\\n%%{http_code}' %s "
             "2>&1",
             args);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p, "popen curl");
    size_t len = fread(out, 1, cap - 1, p);
    out[len] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* A temporary file holding n bytes of a repeating pattern. */
static void
make_file(char *path, size_t cap, size_t n)
{
    snprintf(path, cap, "/tmp/httpd_test_XXXXXX");
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    char chunk[4096];
    for (size_t i = 0; i < sizeof chunk; i++)
        chunk[i] = (char)('a' + i % 26);
    while (n > 0) {
        size_t k = n < sizeof chunk ? n : sizeof chunk;
        cr_assert_eq(write(fd, chunk, k), (ssize_t)k);
        n -= k;
    }
    close(fd);
}

static void
quiet(void)
{
    hov_log_set_name("httpd_test");
    hov_log_set_level(HOV_LOG_ERROR);
}

TestSuite(httpd, .init = quiet, .timeout = 20);

/* ------------------------------------------------------------ tests */

Test(httpd, get_and_post_with_body)
{
    fx *f = fx_start(NULL);
    int fd = cli_connect(f->port);
    cresp r;
    cli_send(fd, "GET /a/b?x=1&y=2 HTTP/1.1\r\nHost: t\r\nX-TeSt: hello  \r\n"
                 "\r\n");
    cli_one(fd, &r);
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(r.body, "GET /a/b [x=1&y=2] x-test=hello headers=2 0\n");
    cr_assert(strstr(r.headers, "Content-Type: text/plain\n") != NULL);
    cr_assert(strstr(r.headers, "Date: ") != NULL);
    cr_assert(strstr(r.headers, "Connection") == NULL,
              "an HTTP/1.1 keep-alive response needs no Connection header");

    cli_send(fd, "POST /submit HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n"
                 "Content-Type: application/fhir+json\r\n\r\nhello world");
    cli_one(fd, &r);
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(r.body,
                     "POST /submit [] x-test=- headers=3 11\nhello world");
    close(fd);
    fx_stop(f);
}

Test(httpd, headers_are_a_case_insensitive_list)
{
    fx *f = fx_start(NULL);
    int fd = cli_connect(f->port);
    cli_send(fd, "GET / HTTP/1.1\r\nhost: t\r\nX-Test: one\r\nx-test: two\r\n"
                 "Empty:\r\n\r\n");
    cresp r;
    cli_one(fd, &r);
    /* The first of two is returned; all four are listed. */
    cr_assert_str_eq(r.body, "GET / [] x-test=one headers=4 0\n");
    close(fd);
    fx_stop(f);
}

Test(httpd, curl_get_and_post)
{
    fx *f = fx_start(NULL);
    char args[512], out[4096];
    snprintf(args, sizeof args,
             "-H 'X-Test: from-curl' 'http://127.0.0.1:%d/p?q=%%20'", f->port);
    cr_assert_eq(run_curl(args, out, sizeof out), 0, "curl: %s", out);
    cr_assert(strstr(out, "GET /p [q=%20] x-test=from-curl") != NULL, "%s",
              out);
    cr_assert(strstr(out, "\n200") != NULL, "%s", out);

    snprintf(args, sizeof args,
             "--data-binary 'a=1&b=2' 'http://127.0.0.1:%d/form'", f->port);
    cr_assert_eq(run_curl(args, out, sizeof out), 0, "curl: %s", out);
    cr_assert(strstr(out, "POST /form [] x-test=- headers=") != NULL, "%s",
              out);
    cr_assert(strstr(out, " 7\na=1&b=2\n200") != NULL, "%s", out);
    fx_stop(f);
}

Test(httpd, keep_alive_two_requests_on_one_connection)
{
    fx *f = fx_start(NULL);
    int fd = cli_connect(f->port);
    cresp r;
    cli_send(fd, "GET /one HTTP/1.1\r\nHost: t\r\n\r\n");
    cli_one(fd, &r);
    cr_assert_str_eq(r.body, "GET /one [] x-test=- headers=1 0\n");
    cli_send(fd, "GET /two HTTP/1.1\r\nHost: t\r\n\r\n");
    cli_one(fd, &r);
    cr_assert_str_eq(r.body, "GET /two [] x-test=- headers=1 0\n");
    cr_assert_not(cli_closed_within(fd, 100), "keep-alive connection closed");
    close(fd);
    cr_assert_eq(fx_handled(f), 2);
    fx_stop(f);
}

Test(httpd, pipelined_requests_are_answered_in_order)
{
    fx *f = fx_start(NULL);
    int fd = cli_connect(f->port);
    /* The first is answered 200 ms later from a timer, the second at
     * once: in order only if the second waits for the first. */
    cli_send(fd, "GET /delay/200 HTTP/1.1\r\nHost: t\r\n\r\n"
                 "POST /second HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n"
                 "\r\nabc"
                 "GET /third?z HTTP/1.1\r\nHost: t\r\n\r\n");
    cresp r[3];
    cr_assert_eq(cli_read_responses(fd, r, 3, 3000, false), 3);
    cr_assert_str_eq(r[0].body, "delayed 200");
    cr_assert_str_eq(r[1].body, "POST /second [] x-test=- headers=2 3\nabc");
    cr_assert_str_eq(r[2].body, "GET /third [z] x-test=- headers=1 0\n");
    close(fd);
    fx_stop(f);
}

Test(httpd, asynchronous_response_after_a_timer)
{
    fx *f = fx_start(NULL);
    int fd = cli_connect(f->port);
    uint64_t t0 = now_ms();
    cli_send(fd, "GET /delay/300 HTTP/1.1\r\nHost: t\r\n\r\n");
    cresp r;
    cli_one(fd, &r);
    uint64_t took = now_ms() - t0;
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(r.body, "delayed 300");
    cr_assert_geq(took, 290, "answered after %llu ms",
                  (unsigned long long)took);
    /* Meanwhile other connections are served. */
    close(fd);
    fx_stop(f);
}

Test(httpd, other_clients_are_served_while_one_waits)
{
    fx *f = fx_start(NULL);
    int slow = cli_connect(f->port);
    cli_send(slow, "GET /delay/500 HTTP/1.1\r\nHost: t\r\n\r\n");
    int fast = cli_connect(f->port);
    uint64_t t0 = now_ms();
    cli_send(fast, "GET /quick HTTP/1.1\r\nHost: t\r\n\r\n");
    cresp r;
    cli_one(fast, &r);
    cr_assert_lt(now_ms() - t0, 400);
    cr_assert_str_eq(r.body, "GET /quick [] x-test=- headers=1 0\n");
    cli_one(slow, &r);
    cr_assert_str_eq(r.body, "delayed 500");
    close(fast);
    close(slow);
    fx_stop(f);
}

Test(httpd, body_over_the_limit_is_413_and_closes)
{
    httpd_opts o = {.max_body_bytes = 1000};
    fx *f = fx_start(&o);
    /* Declared length over the limit: refused before the body is read. */
    int fd = cli_connect(f->port);
    cli_send(fd, "POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n\r\n");
    char big[5000];
    memset(big, 'z', sizeof big);
    cli_send_n(fd, big, sizeof big);
    cresp r;
    cli_one(fd, &r);
    cr_assert_eq(r.status, 413);
    cr_assert(strstr(r.headers, "Connection: close") != NULL);
    cr_assert(cli_closed_within(fd, 3000));
    close(fd);

    /* At the limit exactly: accepted. */
    fd = cli_connect(f->port);
    cli_send(fd, "POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n");
    cli_send_n(fd, big, 1000);
    cli_one(fd, &r);
    cr_assert_eq(r.status, 200);
    close(fd);

    /* Chunked: refused when the decoded body passes the limit. */
    fd = cli_connect(f->port);
    cli_send(fd, "POST /x HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
                 "\r\n");
    for (int i = 0; i < 3; i++) {
        cli_send(fd, "1f4\r\n"); /* 500 */
        cli_send_n(fd, big, 500);
        cli_send(fd, "\r\n");
    }
    cli_one(fd, &r);
    cr_assert_eq(r.status, 413);
    cr_assert(cli_closed_within(fd, 3000));
    close(fd);

    /* The curl tool, which sends the body without waiting. */
    char path[64], args[256], out[4096];
    make_file(path, sizeof path, 200000);
    snprintf(args, sizeof args, "--data-binary @%s 'http://127.0.0.1:%d/big'",
             path, f->port);
    run_curl(args, out, sizeof out);
    unlink(path);
    cr_assert(strstr(out, "payload too large\n\n413") != NULL, "%s", out);
    cr_assert_eq(fx_handled(f), 1, "only the request within the limit");
    fx_stop(f);
}

Test(httpd, garbage_is_400_and_closes)
{
    fx *f = fx_start(NULL);
    const char *bad[] = {
        "HELLO WORLD\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: t\r\nBad Header Name: x\r\n\r\n",
        "GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", /* a TLS hello */
        ("GET /x HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: "
         "chunked\r\n\r\n0\r\n\r\n"),
        "GET http://[bad HTTP/1.1\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int fd = cli_connect(f->port);
        cli_send(fd, bad[i]);
        char out[2048];
        cli_read_all(fd, out, sizeof out, 3000);
        cr_assert(strncmp(out, "HTTP/1.1 400 Bad Request\r\n", 26) == 0,
                  "case %zu: %s", i, out);
        cr_assert(strstr(out, "\r\n\r\nbad request: ") != NULL, "case %zu: %s",
                  i, out);
        cr_assert(strstr(out, "Connection: close\r\n") != NULL);
        close(fd);
    }
    cr_assert_eq(fx_handled(f), 0);
    fx_stop(f);
}

Test(httpd, connect_is_405)
{
    fx *f = fx_start(NULL);
    int fd = cli_connect(f->port);
    cli_send(fd, "CONNECT example.org:443 HTTP/1.1\r\nHost: e\r\n\r\n");
    char out[2048];
    cli_read_all(fd, out, sizeof out, 3000);
    cr_assert(strncmp(out, "HTTP/1.1 405 ", 13) == 0, "%s", out);
    close(fd);
    cr_assert_eq(fx_handled(f), 0);
    fx_stop(f);
}

Test(httpd, headers_over_the_limit_are_431)
{
    httpd_opts o = {.max_header_bytes = 1024};
    fx *f = fx_start(&o);
    int fd = cli_connect(f->port);
    char req[4096];
    char pad[2000];
    memset(pad, 'v', sizeof pad - 1);
    pad[sizeof pad - 1] = '\0';
    snprintf(req, sizeof req, "GET / HTTP/1.1\r\nHost: t\r\nX-Pad: %s\r\n\r\n",
             pad);
    cli_send(fd, req);
    cresp r;
    cli_one(fd, &r);
    cr_assert_eq(r.status, 431);
    close(fd);
    /* Just under the limit passes. */
    fd = cli_connect(f->port);
    pad[900] = '\0';
    snprintf(req, sizeof req, "GET / HTTP/1.1\r\nHost: t\r\nX-Pad: %s\r\n\r\n",
             pad);
    cli_send(fd, req);
    cli_one(fd, &r);
    cr_assert_eq(r.status, 200);
    close(fd);
    fx_stop(f);
}

/* Slowloris: one header byte every 300 ms never completes the headers;
 * the header deadline (1 s) is not extended by each byte, so the client
 * is cut off at about 1 s, with 408, while another client is served. */
Test(httpd, slow_headers_are_cut_off_at_the_header_timeout)
{
    httpd_opts o = {.header_timeout_ms = 1000};
    fx *f = fx_start(&o);
    const char *req = "GET /echo HTTP/1.1\r\nHost: t\r\nX-Slow: "
                      "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    uint64_t t0 = now_ms();
    int slow = cli_connect(f->port);
    bool cut = false, served = false;
    for (size_t i = 0; req[i] != '\0' && now_ms() - t0 < 5000; i++) {
        if (send(slow, req + i, 1, MSG_NOSIGNAL) != 1) {
            cut = true;
            break;
        }
        if (i == 2) {
            /* Another client, served while the slow one trickles. */
            int fd = cli_connect(f->port);
            uint64_t t1 = now_ms();
            cli_send(fd, "GET /meanwhile HTTP/1.1\r\nHost: t\r\n\r\n");
            cresp r;
            cli_one(fd, &r);
            cr_assert_eq(r.status, 200);
            cr_assert_lt(now_ms() - t1, 250);
            close(fd);
            served = true;
        }
        if (cli_wait(slow, 300)) {
            cut = true;
            break;
        }
    }
    uint64_t took = now_ms() - t0;
    cr_assert(cut, "the slow client was never cut off");
    cr_assert(served);
    char out[2048];
    cli_read_all(slow, out, sizeof out, 3000);
    cr_assert(strncmp(out, "HTTP/1.1 408 ", 13) == 0, "%s", out);
    cr_assert_geq(took, 900, "cut off after %llu ms", (unsigned long long)took);
    cr_assert_lt(took, 2000, "cut off after %llu ms", (unsigned long long)took);
    close(slow);
    cr_assert_eq(fx_handled(f), 1);
    fx_stop(f);
}

Test(httpd, a_connection_that_sends_nothing_gets_408)
{
    httpd_opts o = {.header_timeout_ms = 300};
    fx *f = fx_start(&o);
    int fd = cli_connect(f->port);
    char out[1024];
    uint64_t t0 = now_ms();
    cli_read_all(fd, out, sizeof out, 3000);
    cr_assert(strncmp(out, "HTTP/1.1 408 ", 13) == 0, "%s", out);
    cr_assert_geq(now_ms() - t0, 250);
    close(fd);
    fx_stop(f);
}

Test(httpd, slow_body_is_cut_off_at_the_body_timeout)
{
    httpd_opts o = {.body_timeout_ms = 500};
    fx *f = fx_start(&o);
    int fd = cli_connect(f->port);
    uint64_t t0 = now_ms();
    cli_send(fd,
             "POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc");
    char out[1024];
    cli_read_all(fd, out, sizeof out, 3000);
    uint64_t took = now_ms() - t0;
    cr_assert(strncmp(out, "HTTP/1.1 408 ", 13) == 0, "%s", out);
    cr_assert(strstr(out, "the body took too long") != NULL, "%s", out);
    cr_assert_geq(took, 450);
    cr_assert_lt(took, 1500);
    close(fd);
    cr_assert_eq(fx_handled(f), 0);
    fx_stop(f);
}

Test(httpd, idle_keep_alive_connection_is_closed_quietly)
{
    httpd_opts o = {.idle_timeout_ms = 300};
    fx *f = fx_start(&o);
    int fd = cli_connect(f->port);
    cli_send(fd, "GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    cresp r;
    cli_one(fd, &r);
    uint64_t t0 = now_ms();
    char out[256];
    size_t n = cli_read_all(fd, out, sizeof out, 3000);
    uint64_t took = now_ms() - t0;
    cr_assert_eq(n, 0, "idle close sent bytes: %s", out);
    cr_assert_geq(took, 250);
    cr_assert_lt(took, 1500);
    close(fd);
    fx_stop(f);
}

Test(httpd, chunked_upload)
{
    fx *f = fx_start(NULL);
    int fd = cli_connect(f->port);
    cli_send(fd, "POST /c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
                 "\r\n5\r\nhel");
    sleep_ms(20);
    cli_send(fd, "lo\r\n7;ext=1\r\n, world\r\n0\r\nTrailer-A: x\r\n\r\n");
    cresp r;
    cli_one(fd, &r);
    cr_assert_eq(r.status, 200);
    /* Trailers are not headers. */
    cr_assert_str_eq(r.body, "POST /c [] x-test=- headers=2 12\nhello, world");
    close(fd);

    char path[64], args[256], out[70000];
    make_file(path, sizeof path, 50000);
    snprintf(args, sizeof args,
             "-H 'Transfer-Encoding: chunked' --data-binary @%s "
             "'http://127.0.0.1:%d/curl-chunked'",
             path, f->port);
    int rc = run_curl(args, out, sizeof out);
    unlink(path);
    cr_assert_eq(rc, 0, "%.300s", out);
    cr_assert(strstr(out, " 50000\nabcdefghijklmnopqrstuvwxyzabc") != NULL,
              "%.300s", out);
    cr_assert(strstr(out, "\n200") != NULL);
    fx_stop(f);
}

Test(httpd, expect_100_continue)
{
    fx *f = fx_start(NULL);
    int fd = cli_connect(f->port);
    cli_send(fd, "POST /e HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n"
                 "Content-Length: 4\r\n\r\n");
    char out[64];
    const char want[] = "HTTP/1.1 100 Continue\r\n\r\n";
    size_t got = 0;
    while (got < sizeof want - 1 && cli_wait(fd, 3000)) {
        ssize_t k = recv(fd, out + got, sizeof want - 1 - got, 0);
        cr_assert_gt(k, 0);
        got += (size_t)k;
    }
    out[got] = '\0';
    cr_assert_str_eq(out, want);
    cli_send(fd, "body");
    cresp r;
    cli_one(fd, &r);
    cr_assert_eq(r.status, 200);
    cr_assert(strstr(r.body, "\nbody") != NULL);
    close(fd);

    /* Over the limit: 413 instead of 100. */
    fd = cli_connect(f->port);
    cli_send(fd, "POST /e HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n"
                 "Content-Length: 99999999\r\n\r\n");
    cli_one(fd, &r);
    cr_assert_eq(r.status, 413);
    close(fd);
    fx_stop(f);
}

Test(httpd, connection_close_and_http10)
{
    fx *f = fx_start(NULL);
    cresp r;
    /* HTTP/1.1 with Connection: close. */
    int fd = cli_connect(f->port);
    cli_send(fd, "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    cli_one(fd, &r);
    cr_assert(strstr(r.headers, "Connection: close\n") != NULL, "%s",
              r.headers);
    cr_assert(cli_closed_within(fd, 2000));
    close(fd);
    /* HTTP/1.0 closes by default. */
    fd = cli_connect(f->port);
    cli_send(fd, "GET / HTTP/1.0\r\n\r\n");
    cli_one(fd, &r);
    cr_assert_eq(r.status, 200);
    cr_assert(cli_closed_within(fd, 2000));
    close(fd);
    /* HTTP/1.0 that asks for keep-alive is kept, and told so. */
    fd = cli_connect(f->port);
    cli_send(fd, "GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    cli_one(fd, &r);
    cr_assert(strstr(r.headers, "Connection: keep-alive\n") != NULL, "%s",
              r.headers);
    cli_send(fd, "GET /b HTTP/1.0\r\n\r\n");
    cli_one(fd, &r);
    cr_assert_str_eq(r.body, "GET /b [] x-test=- headers=0 0\n");
    cr_assert(cli_closed_within(fd, 2000));
    close(fd);
    /* The handler asks to close. */
    fd = cli_connect(f->port);
    cli_send(fd, "GET /close HTTP/1.1\r\nHost: t\r\n\r\n");
    cli_one(fd, &r);
    cr_assert_str_eq(r.body, "bye");
    cr_assert(strstr(r.headers, "Connection: close\n") != NULL);
    cr_assert(cli_closed_within(fd, 2000));
    close(fd);
    fx_stop(f);
}

Test(httpd, response_headers_cannot_break_the_framing)
{
    fx *f = fx_start(NULL);
    int fd = cli_connect(f->port);
    /* One at a time: each read below starts a fresh response parser. */
    cli_send(fd, "GET /inject HTTP/1.1\r\nHost: t\r\n\r\n");
    cresp r;
    cli_one(fd, &r);
    cr_assert_str_eq(r.body, "ok");
    cr_assert(strstr(r.headers, "X-Good: yes\n") != NULL);
    cr_assert(strstr(r.headers, "Injected") == NULL, "%s", r.headers);
    cr_assert(strstr(r.headers, "X-Bad") == NULL, "%s", r.headers);
    cr_assert(strstr(r.headers, "Content-Length: 2\n") != NULL, "%s",
              r.headers);
    /* HEAD: the length of the body that is not sent. */
    cli_send(fd, "HEAD /x HTTP/1.1\r\nHost: t\r\n\r\n");
    cr_assert_eq(cli_read_responses(fd, &r, 1, 3000, true), 1);
    cr_assert(strstr(r.headers, "Content-Length: 32\n") != NULL, "%s",
              r.headers);
    cli_send(fd, "GET /nocontent HTTP/1.1\r\nHost: t\r\n\r\n"
                 "GET /status/42 HTTP/1.1\r\nHost: t\r\n\r\n");
    cresp rr[2];
    cr_assert_eq(cli_read_responses(fd, rr, 2, 3000, false), 2);
    cr_assert_eq(rr[0].status, 204);
    cr_assert_eq(rr[0].blen, 0);
    cr_assert(strstr(rr[0].headers, "Content-Length") == NULL);
    cr_assert_eq(rr[1].status, 500, "status 42 is not a final status");
    close(fd);
    fx_stop(f);
}

Test(httpd, connections_beyond_the_limit_get_503)
{
    httpd_opts o = {.max_conns = 2};
    fx *f = fx_start(&o);
    cresp r;
    int a = cli_connect(f->port), b = cli_connect(f->port);
    cli_send(a, "GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    cli_one(a, &r);
    cli_send(b, "GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    cli_one(b, &r);
    int c = cli_connect(f->port);
    char out[1024];
    cli_read_all(c, out, sizeof out, 3000);
    cr_assert(strncmp(out, "HTTP/1.1 503 ", 13) == 0, "%s", out);
    close(c);
    /* A slot frees when a client leaves. */
    close(a);
    bool ok = false;
    for (int i = 0; i < 50 && !ok; i++) {
        sleep_ms(20);
        int d = cli_connect(f->port);
        cli_send(d, "GET / HTTP/1.1\r\nHost: t\r\n\r\n");
        ok = cli_read_responses(d, &r, 1, 3000, false) == 1 && r.status == 200;
        close(d);
    }
    cr_assert(ok, "no slot after a client left");
    close(b);
    fx_stop(f);
}

static void
job_check_gone(fx *f, void *arg)
{
    bool *out = arg;
    *out = f->nheld == 1 && httpd_req_gone(f->held[0]);
    /* Still valid: read it, then answer (which only frees). */
    if (f->nheld == 1) {
        *out = *out && strcmp(httpd_req_path(f->held[0]), "/hold") == 0;
        httpd_respond(f->held[0], 200, NULL, "x", 1);
        f->nheld = 0;
    }
}

Test(httpd, a_client_reset_makes_its_request_gone)
{
    fx *f = fx_start(NULL);
    int fd = cli_connect(f->port);
    cli_send(fd, "GET /hold HTTP/1.1\r\nHost: t\r\n\r\n");
    fx_wait_held(f, 1);
    bool gone = false;
    fx_call(f, job_check_gone, &gone);
    cr_assert_not(gone, "gone while the client is still there");
    /* Hold a second one and reset the connection. */
    cli_send(fd, "GET /hold HTTP/1.1\r\nHost: t\r\n\r\n");
    fx_wait_held(f, 2);
    struct linger lg = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fd);
    for (int i = 0; i < 100 && !gone; i++) {
        sleep_ms(10);
        fx_call(f, job_check_gone, &gone);
    }
    cr_assert(gone, "a reset client's request never became gone");
    fx_stop(f);
}

Test(httpd, stop_with_a_request_pending)
{
    fx *f = fx_start(NULL);
    int held = cli_connect(f->port);
    cli_send(held, "GET /hold HTTP/1.1\r\nHost: t\r\n\r\n");
    fx_wait_held(f, 1);
    int idle = cli_connect(f->port);
    cli_send(idle, "GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    cresp r;
    cli_one(idle, &r);
    /* Stop: both connections close, the held request becomes gone and is
     * answered 50 ms later (which only frees it); the loop then ends with
     * every handle closed. */
    fx_stop(f);
    char out[256];
    cr_assert_eq(cli_read_all(held, out, sizeof out, 2000), 0,
                 "a response after stop: %s", out);
    cr_assert(cli_closed_within(idle, 2000));
    close(held);
    close(idle);
}

Test(httpd, stop_reports_gone)
{
    fx *f = fx_start(NULL);
    int fd = cli_connect(f->port);
    cli_send(fd,
             "POST /hold HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nhi");
    fx_wait_held(f, 1);
    fx_call(f, job_stop, NULL);
    pthread_mutex_lock(&f->mu);
    bool gone = f->gone_after_stop;
    pthread_mutex_unlock(&f->mu);
    cr_assert(gone, "the held request is not gone after httpd_stop");
    cr_assert_eq(pthread_join(f->thr, NULL), 0);
    cr_assert_eq(uv_loop_close(&f->loop), 0);
    pthread_mutex_destroy(&f->mu);
    pthread_cond_destroy(&f->cv);
    free(f);
    close(fd);
    assert_no_leaks();
}

Test(httpd, bad_listen_address_is_a_config_error)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    httpd *d = NULL;
    hov_error err = {0};
    httpd_opts o = {.host = "localhost.example", .port = 0};
    cr_assert_eq(httpd_start(&loop, &o, handler, NULL, &d, &err), HOV_ECONFIG);
    cr_assert(strstr(err.msg, "localhost.example") != NULL, "%s", err.msg);
    cr_assert_null(d);

    /* A port in use: HOV_ESYS naming it; the failed start leaves nothing
     * open once the loop has run. */
    httpd_opts o1 = {.host = "127.0.0.1"};
    hov_error e1 = {0};
    cr_assert_eq(httpd_start(&loop, &o1, handler, NULL, &d, &e1), HOV_OK);
    httpd_opts o2 = {.host = "127.0.0.1", .port = httpd_port(d)};
    httpd *d2 = NULL;
    hov_error e2 = {0};
    cr_assert_eq(httpd_start(&loop, &o2, handler, NULL, &d2, &e2), HOV_ESYS);
    cr_assert(strstr(e2.msg, "address already in use") != NULL, "%s", e2.msg);
    httpd_stop(d);
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_assert_eq(uv_loop_close(&loop), 0);
    assert_no_leaks();
}

Test(httpd, upgrade_requests_are_answered_then_closed)
{
    fx *f = fx_start(NULL);
    int fd = cli_connect(f->port);
    cli_send(fd, "GET /ws HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\n"
                 "Upgrade: websocket\r\n\r\n"
                 "GET /after HTTP/1.1\r\nHost: t\r\n\r\n");
    cresp r;
    cli_one(fd, &r);
    cr_assert_eq(r.status, 200);
    cr_assert(strstr(r.headers, "Connection: close\n") != NULL, "%s",
              r.headers);
    cr_assert(cli_closed_within(fd, 2000));
    close(fd);
    cr_assert_eq(fx_handled(f), 1, "bytes after an upgrade are not HTTP");
    fx_stop(f);
}

Test(httpd, stop_from_inside_the_handler)
{
    fx *f = fx_start(NULL);
    int other = cli_connect(f->port);
    cli_send(other, "GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    cresp r;
    cli_one(other, &r);
    int fd = cli_connect(f->port);
    cli_send(fd, "GET /stop HTTP/1.1\r\nHost: t\r\n\r\n");
    char out[256];
    cr_assert_eq(cli_read_all(fd, out, sizeof out, 2000), 0, "%s", out);
    cr_assert(cli_closed_within(other, 2000));
    pthread_mutex_lock(&f->mu);
    bool gone = f->gone_seen;
    pthread_mutex_unlock(&f->mu);
    cr_assert(gone, "the request is not gone after httpd_stop");
    /* The listener is closed too. */
    int probe = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)f->port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_neq(connect(probe, (struct sockaddr *)&a, sizeof a), 0);
    close(probe);
    close(fd);
    close(other);
    fx_stop(f);
}
