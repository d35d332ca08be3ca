/* gp-sim: stands in for the GP clinical system's FHIR endpoint in tests
 * and in the demo, on the adapters' own HTTP server module.
 *
 *   gp-sim serve [--port 7411] [--mode MODE] [--mode-file FILE] [--log F]
 *
 * Answers each POST as MODE says: 201 (a conditional create: 200 when the
 * If-None-Exist identifier was seen before, as a FHIR server answers one
 * match), 400, 422, 500, 503, hang (never answers) or delay:MS (201 after
 * MS milliseconds). --mode-file is read again for every request, so a test
 * can change the behaviour while it runs. Every request is appended to
 * --log as "identifier resourceType digest status", one line each, so a
 * test can check that a resend is the same resource and was not created
 * twice.
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handover/log.h"
#include "httpd.h"
#include "runtime.h"

typedef struct held {
    httpd_req *req;
    struct held *next;
} held;

typedef struct sim {
    uv_loop_t *loop;
    httpd *server;
    const char *mode;
    const char *mode_file;
    FILE *log;
    char **seen; /* identifiers created */
    size_t nseen, capseen;
    held *hung; /* requests never answered (mode hang), until the end */
    runtime_signals sig;
} sim;

static void
sim_mode(const sim *s, char *out, size_t outsz)
{
    snprintf(out, outsz, "%s", s->mode);
    if (s->mode_file == NULL)
        return;
    FILE *f = fopen(s->mode_file, "r");
    if (f == NULL)
        return;
    if (fgets(out, (int)outsz, f) == NULL)
        snprintf(out, outsz, "%s", s->mode);
    fclose(f);
    out[strcspn(out, "\r\n ")] = '\0';
}

static bool
sim_seen(sim *s, const char *id, bool add)
{
    for (size_t i = 0; i < s->nseen; i++)
        if (strcmp(s->seen[i], id) == 0)
            return true;
    if (add && id[0] != '\0') {
        if (s->nseen == s->capseen) {
            size_t cap = s->capseen ? s->capseen * 2 : 64;
            char **n = realloc(s->seen, cap * sizeof *n);
            if (n == NULL)
                return false;
            s->seen = n;
            s->capseen = cap;
        }
        char *copy = strdup(id);
        if (copy != NULL)
            s->seen[s->nseen++] = copy;
    }
    return false;
}

typedef struct delayed {
    uv_timer_t t;
    httpd_req *req;
    int status;
} delayed;

static const char *const json_hdr[] = {
    "Content-Type: application/fhir+json; charset=utf-8", NULL};

static void
answer(httpd_req *req, int status)
{
    char body[256];
    const char *sev = status < 300 ? "information" : "error";
    const char *code = status < 300   ? "informational"
                       : status < 500 ? "business-rule"
                                      : "transient";
    int n = snprintf(body, sizeof body,
                     "{\"resourceType\":\"OperationOutcome\",\"issue\":[{"
                     "\"severity\":\"%s\",\"code\":\"%s\",\"diagnostics\":"
                     "\"gp-sim answered %d\"}]}",
                     sev, code, status);
    httpd_respond(req, status, json_hdr, body, (size_t)n);
}

static void
on_delay_closed(uv_handle_t *h)
{
    free(h->data);
}

static void
on_delay(uv_timer_t *t)
{
    delayed *d = t->data;
    answer(d->req, d->status);
    uv_close((uv_handle_t *)&d->t, on_delay_closed);
}

static void
on_request(void *user, httpd_req *req)
{
    sim *s = user;
    if (strcmp(httpd_req_method(req), "POST") != 0) {
        answer(req, 405);
        return;
    }
    const char *ine = httpd_req_header(req, "If-None-Exist");
    const char *id = ine ? strchr(ine, '=') : NULL;
    id = id ? id + 1 : "";
    size_t len = 0;
    const uint8_t *body = httpd_req_body(req, &len);
    unsigned char h[16];
    crypto_generichash(h, sizeof h, body, len, NULL, 0);
    char hex[33];
    sodium_bin2hex(hex, sizeof hex, h, sizeof h);
    const char *path = httpd_req_path(req);
    const char *type = strrchr(path, '/');
    type = type ? type + 1 : path;
    char mode[64];
    sim_mode(s, mode, sizeof mode);

    int status = 201;
    if (strcmp(mode, "400") == 0 || strcmp(mode, "422") == 0 ||
        strcmp(mode, "500") == 0 || strcmp(mode, "503") == 0)
        status = (int)strtol(mode, NULL, 10);
    bool hang = strcmp(mode, "hang") == 0;
    if (status == 201 && !hang && sim_seen(s, id, true))
        status = 200;
    printf("gp-sim: FHIR in  POST %s %s -> %s\n", path, id,
           hang ? "hang"
                : (status == 201   ? "201 created"
                   : status == 200 ? "200 already held"
                                   : mode));
    fflush(stdout);
    if (s->log != NULL) {
        fprintf(s->log, "%s %s %s %d\n", id[0] ? id : "-", type, hex,
                hang ? 0 : status);
        fflush(s->log);
    }
    if (hang) {
        held *hd = malloc(sizeof *hd);
        if (hd == NULL) {
            answer(req, 500);
            return;
        }
        hd->req = req;
        hd->next = s->hung;
        s->hung = hd;
        return;
    }
    if (strncmp(mode, "delay:", 6) == 0) {
        delayed *d = malloc(sizeof *d);
        if (d != NULL) {
            d->req = req;
            d->status = status;
            uv_timer_init(s->loop, &d->t);
            d->t.data = d;
            uv_timer_start(&d->t, on_delay,
                           (uint64_t)strtoul(mode + 6, NULL, 10), 0);
            return;
        }
    }
    answer(req, status);
}

static void
on_stop(void *user, const char *signame)
{
    sim *s = user;
    (void)signame;
    httpd_stop(s->server);
    while (s->hung != NULL) {
        held *h = s->hung;
        s->hung = h->next;
        httpd_respond(h->req, 503, NULL, NULL, 0);
        free(h);
    }
}

int
main(int argc, char **argv)
{
    hov_log_set_name("gp-sim");
    if (sodium_init() < 0)
        return 1;
    sim s = {.mode = "201", .loop = uv_default_loop()};
    int port = 7411;
    const char *log = NULL;
    if (argc < 2 || strcmp(argv[1], "serve") != 0) {
        fprintf(stderr, "usage: gp-sim serve [--port N] [--mode MODE] "
                        "[--mode-file F] [--log F]\n");
        return 2;
    }
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--port") == 0 && i + 1 < argc)
            port = (int)strtol(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--mode") == 0 && i + 1 < argc)
            s.mode = argv[++i];
        else if (strcmp(argv[i], "--mode-file") == 0 && i + 1 < argc)
            s.mode_file = argv[++i];
        else if (strcmp(argv[i], "--log") == 0 && i + 1 < argc)
            log = argv[++i];
        else {
            fprintf(stderr, "gp-sim: unknown argument %s\n", argv[i]);
            return 2;
        }
    }
    if (log != NULL) {
        /* Identifiers created before a restart stay created. */
        FILE *f = fopen(log, "r");
        char line[512];
        while (f != NULL && fgets(line, sizeof line, f)) {
            char id[400];
            int st = 0;
            if (sscanf(line, "%399s %*s %*s %d", id, &st) == 2 &&
                (st == 200 || st == 201))
                (void)sim_seen(&s, id, true);
        }
        if (f != NULL)
            fclose(f);
        if ((s.log = fopen(log, "a")) == NULL) {
            fprintf(stderr, "gp-sim: open %s\n", log);
            return 1;
        }
    }
    httpd_opts o = {.port = port, .name = "gp-sim"};
    hov_error err = {0};
    if (httpd_start(s.loop, &o, on_request, &s, &s.server, &err) != HOV_OK) {
        fprintf(stderr, "gp-sim: %s\n", err.msg);
        return 1;
    }
    runtime_signals_start(&s.sig, s.loop, on_stop, &s);
    printf("gp-sim: the GP system's FHIR endpoint listens on "
           "http://127.0.0.1:%d/fhir (mode %s)\n",
           httpd_port(s.server), s.mode);
    fflush(stdout);
    uv_run(s.loop, UV_RUN_DEFAULT);
    (void)uv_loop_close(s.loop);
    for (size_t i = 0; i < s.nseen; i++)
        free(s.seen[i]);
    free(s.seen);
    if (s.log != NULL)
        fclose(s.log);
    return 0;
}
