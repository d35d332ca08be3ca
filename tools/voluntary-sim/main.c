/* voluntary-sim: stands in for a voluntary organisation in tests and in
 * the demo.
 *
 *   voluntary-sim serve --secret S [--port 7441] [--mode MODE]
 *                       [--mode-file FILE] [--log FILE]
 *   voluntary-sim post-outcome --url URL --secret S --sender ORG
 *                       --in-reply-to ID --status STATUS [--key-id K]
 *                       [--idempotency-key K] [--reason-code C]
 *                       [--reason-text T] [--planned-for YYYY-MM-DD]
 *                       [--timestamp UNIX] [--occurred-at RFC3339]
 *
 * serve receives Handover's signed referrals (domain 8.1). The signature
 * is checked here with libsodium directly, not with handover-voluntary's
 * own code, so a test compares two implementations: a bad one, or a
 * timestamp more than 300 s from the clock, gets 401. Otherwise each POST
 * is answered as MODE says: 200, 400, 500, hang (never answers) or
 * delay:MS (200 after MS milliseconds); --mode-file is read again for every
 * request. Every request is appended to --log as
 * "<Idempotency-Key> <body digest> <status>", one line each (status 0 for
 * hang), so a test can check that a resend carried the same body.
 *
 * post-outcome posts a signed outcome webhook (domain 8.5) and prints
 * "status=<code>" and the answer; it exits 0 on 2xx, 1 otherwise.
 */
#include <curl/curl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handover/log.h"
#include "handover/timeutil.h"
#include "httpd.h"
#include "runtime.h"

typedef struct held {
    httpd_req *req;
    struct held *next;
} held;

typedef struct sim {
    uv_loop_t *loop;
    httpd *server;
    const char *secret;
    const char *mode;
    const char *mode_file;
    FILE *log;
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

/* "v1=<hex>" over ts "." body, the way a partner would write it. */
static void
sim_sign(const char *secret, const char *ts, const void *body, size_t len,
         char out[68])
{
    crypto_auth_hmacsha256_state st;
    unsigned char mac[crypto_auth_hmacsha256_BYTES];
    crypto_auth_hmacsha256_init(&st, (const unsigned char *)secret,
                                strlen(secret));
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)ts, strlen(ts));
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)".", 1);
    crypto_auth_hmacsha256_update(&st, body, len);
    crypto_auth_hmacsha256_final(&st, mac);
    memcpy(out, "v1=", 3);
    sodium_bin2hex(out + 3, 65, mac, sizeof mac);
}

static void
answer(httpd_req *req, int status, const char *text)
{
    char body[256];
    int n = snprintf(body, sizeof body,
                     "{\"status\":%d,\"message\":\"voluntary-sim answered "
                     "%d: %s\"}",
                     status, status, text);
    static const char *const hdr[] = {"Content-Type: application/json", NULL};
    httpd_respond(req, status, hdr, body, (size_t)n);
}

typedef struct delayed {
    uv_timer_t t;
    httpd_req *req;
} delayed;

static void
on_delay_closed(uv_handle_t *h)
{
    free(h->data);
}

static void
on_delay(uv_timer_t *t)
{
    delayed *d = t->data;
    answer(d->req, 200, "received");
    uv_close((uv_handle_t *)&d->t, on_delay_closed);
}

static void
on_request(void *user, httpd_req *req)
{
    sim *s = user;
    if (strcmp(httpd_req_method(req), "POST") != 0) {
        answer(req, 405, "POST only");
        return;
    }
    size_t len = 0;
    const uint8_t *body = httpd_req_body(req, &len);
    const char *idem = httpd_req_header(req, "Idempotency-Key");
    const char *ts = httpd_req_header(req, "Handover-Timestamp");
    const char *got = httpd_req_header(req, "Handover-Signature");
    unsigned char h[16];
    crypto_generichash(h, sizeof h, body, len, NULL, 0);
    char hex[33];
    sodium_bin2hex(hex, sizeof hex, h, sizeof h);
    char mode[64];
    sim_mode(s, mode, sizeof mode);

    char want[68] = "";
    long long t = ts ? strtoll(ts, NULL, 10) : 0;
    long long now = (long long)(hov_now_ms() / 1000);
    bool fresh = ts != NULL && llabs(now - t) <= 300;
    if (ts != NULL)
        sim_sign(s->secret, ts, body, len, want);
    bool verified = fresh && got != NULL && strlen(got) == strlen(want) &&
                    sodium_memcmp(got, want, strlen(want)) == 0;
    int status = 200;
    bool hang = false;
    if (!verified)
        status = 401;
    else if (strcmp(mode, "400") == 0 || strcmp(mode, "500") == 0)
        status = (int)strtol(mode, NULL, 10);
    else
        hang = strcmp(mode, "hang") == 0;
    printf("voluntary-sim: referral in POST %s %s -> %s\n", httpd_req_path(req),
           idem ? idem : "-",
           !verified ? "401 signature verification failed"
           : hang    ? "hang"
                     : mode);
    fflush(stdout);
    if (s->log != NULL) {
        fprintf(s->log, "%s %s %d\n", idem && idem[0] ? idem : "-", hex,
                hang ? 0 : status);
        fflush(s->log);
    }
    if (status == 401) {
        answer(req, 401, "signature verification failed");
        return;
    }
    if (status != 200) {
        answer(req, status,
               status == 400 ? "referral refused by test mode"
                             : "temporary failure by test mode");
        return;
    }
    if (hang) {
        held *hd = malloc(sizeof *hd);
        if (hd == NULL) {
            answer(req, 500, "out of memory");
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
            uv_timer_init(s->loop, &d->t);
            d->t.data = d;
            uv_timer_start(&d->t, on_delay,
                           (uint64_t)strtoul(mode + 6, NULL, 10), 0);
            return;
        }
    }
    answer(req, 200, "received");
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

static int
serve(int argc, char **argv)
{
    sim s = {.mode = "200", .loop = uv_default_loop()};
    int port = 7441;
    const char *log = NULL;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--port") == 0 && i + 1 < argc)
            port = (int)strtol(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--secret") == 0 && i + 1 < argc)
            s.secret = argv[++i];
        else if (strcmp(argv[i], "--mode") == 0 && i + 1 < argc)
            s.mode = argv[++i];
        else if (strcmp(argv[i], "--mode-file") == 0 && i + 1 < argc)
            s.mode_file = argv[++i];
        else if (strcmp(argv[i], "--log") == 0 && i + 1 < argc)
            log = argv[++i];
        else {
            fprintf(stderr, "voluntary-sim: unknown argument %s\n", argv[i]);
            return 2;
        }
    }
    if (s.secret == NULL) {
        fprintf(stderr, "voluntary-sim: serve needs --secret\n");
        return 2;
    }
    if (log != NULL && (s.log = fopen(log, "a")) == NULL) {
        fprintf(stderr, "voluntary-sim: open %s\n", log);
        return 1;
    }
    httpd_opts o = {.port = port, .name = "voluntary-sim"};
    hov_error err = {0};
    if (httpd_start(s.loop, &o, on_request, &s, &s.server, &err) != HOV_OK) {
        fprintf(stderr, "voluntary-sim: %s\n", err.msg);
        return 1;
    }
    runtime_signals_start(&s.sig, s.loop, on_stop, &s);
    printf("voluntary-sim: the organisation's webhook listens on "
           "http://127.0.0.1:%d/handover/v1/referrals (mode %s)\n",
           httpd_port(s.server), s.mode);
    fflush(stdout);
    uv_run(s.loop, UV_RUN_DEFAULT);
    (void)uv_loop_close(s.loop);
    if (s.log != NULL)
        fclose(s.log);
    return 0;
}

static size_t
on_body(char *p, size_t sz, size_t n, void *user)
{
    (void)user;
    fwrite(p, sz, n, stdout);
    return sz * n;
}

static int
post_outcome(int argc, char **argv)
{
    const char *url = NULL, *secret = NULL, *sender = NULL, *reply = NULL;
    const char *status = NULL, *key_id = "", *idem = NULL, *rcode = "";
    const char *rtext = "", *planned = "", *ts = NULL, *occ = NULL;
    for (int i = 2; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (strcmp(k, "--url") == 0)
            url = v;
        else if (strcmp(k, "--secret") == 0)
            secret = v;
        else if (strcmp(k, "--sender") == 0)
            sender = v;
        else if (strcmp(k, "--in-reply-to") == 0)
            reply = v;
        else if (strcmp(k, "--status") == 0)
            status = v;
        else if (strcmp(k, "--key-id") == 0)
            key_id = v;
        else if (strcmp(k, "--idempotency-key") == 0)
            idem = v;
        else if (strcmp(k, "--reason-code") == 0)
            rcode = v;
        else if (strcmp(k, "--reason-text") == 0)
            rtext = v;
        else if (strcmp(k, "--planned-for") == 0)
            planned = v;
        else if (strcmp(k, "--timestamp") == 0)
            ts = v;
        else if (strcmp(k, "--occurred-at") == 0)
            occ = v;
        else {
            fprintf(stderr, "voluntary-sim: unknown argument %s\n", k);
            return 2;
        }
    }
    if (!url || !secret || !sender || !reply || !status) {
        fprintf(stderr, "usage: voluntary-sim post-outcome --url URL --secret "
                        "S --sender ORG --in-reply-to ID --status STATUS\n");
        return 2;
    }
    char idbuf[37], tsbuf[24], occurred[32];
    if (idem == NULL) {
        /* A fresh key for each outcome, as a partner system would. */
        unsigned char r[16];
        randombytes_buf(r, sizeof r);
        r[6] = (unsigned char)((r[6] & 0x0f) | 0x40);
        r[8] = (unsigned char)((r[8] & 0x3f) | 0x80);
        char h[33];
        sodium_bin2hex(h, sizeof h, r, sizeof r);
        snprintf(idbuf, sizeof idbuf, "%.8s-%.4s-%.4s-%.4s-%.12s", h, h + 8,
                 h + 12, h + 16, h + 20);
        idem = idbuf;
    }
    if (ts == NULL) {
        snprintf(tsbuf, sizeof tsbuf, "%llu",
                 (unsigned long long)(hov_now_ms() / 1000));
        ts = tsbuf;
    }
    /* A partner resending an outcome sends the same body; with a fresh
     * occurred_at each time, a resend after a lost answer would be a
     * conflict rather than a duplicate. */
    if (occ != NULL)
        snprintf(occurred, sizeof occurred, "%s", occ);
    else
        hov_rfc3339_format(hov_now_ms(), occurred);
    /* The codes and dates are the operator's own: no escaping needed for
     * what a test passes; reason_text is kept to plain characters. */
    char body[2048];
    int n = snprintf(
        body, sizeof body,
        "{\"schema\":\"handover.event.v1\",\"event_type\":\"outcome\","
        "\"in_reply_to\":\"%s\",\"occurred_at\":\"%s\",\"source\":{\"org\":{"
        "\"code\":\"%s\"},\"ref\":\"SIM-%.8s\"},\"outcome\":{\"status\":\"%s\""
        "%s%s%s%s%s%s%s%s%s}}",
        reply, occurred, sender, idem, status,
        rcode[0] ? ",\"reason_code\":\"" : "", rcode, rcode[0] ? "\"" : "",
        rtext[0] ? ",\"reason_text\":\"" : "", rtext, rtext[0] ? "\"" : "",
        planned[0] ? ",\"planned_for\":\"" : "", planned,
        planned[0] ? "\"" : "");
    if (n < 0 || (size_t)n >= sizeof body) {
        fprintf(stderr, "voluntary-sim: outcome too long\n");
        return 2;
    }
    char sig[68];
    sim_sign(secret, ts, body, (size_t)n, sig);
    char h_ts[64], h_sig[96], h_sender[96], h_kid[96], h_idem[96];
    snprintf(h_ts, sizeof h_ts, "Handover-Timestamp: %s", ts);
    snprintf(h_sig, sizeof h_sig, "Handover-Signature: %s", sig);
    snprintf(h_sender, sizeof h_sender, "Handover-Sender: %s", sender);
    snprintf(h_kid, sizeof h_kid, "Handover-Key-Id: %s", key_id);
    snprintf(h_idem, sizeof h_idem, "Idempotency-Key: %s", idem);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    CURL *c = curl_easy_init();
    struct curl_slist *hl = NULL;
    const char *hs[] = {"Content-Type: application/json",
                        h_ts,
                        h_sig,
                        h_sender,
                        h_kid,
                        h_idem,
                        "Expect:"};
    for (size_t i = 0; i < sizeof hs / sizeof hs[0]; i++)
        hl = curl_slist_append(hl, hs[i]);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)n);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    CURLcode rc = curl_easy_perform(c);
    long code = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    printf("\nstatus=%ld idempotency_key=%s\n", code, idem);
    if (rc != CURLE_OK)
        fprintf(stderr, "voluntary-sim: %s\n", curl_easy_strerror(rc));
    curl_slist_free_all(hl);
    curl_easy_cleanup(c);
    curl_global_cleanup();
    return code >= 200 && code < 300 ? 0 : 1;
}

int
main(int argc, char **argv)
{
    hov_log_set_name("voluntary-sim");
    if (sodium_init() < 0)
        return 1;
    if (argc >= 2 && strcmp(argv[1], "serve") == 0)
        return serve(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "post-outcome") == 0)
        return post_outcome(argc, argv);
    fprintf(stderr,
            "usage: voluntary-sim serve --secret S [--port N] [--mode MODE] "
            "[--mode-file F] [--log F]\n"
            "       voluntary-sim post-outcome --url URL --secret S --sender "
            "ORG --in-reply-to ID --status STATUS [...]\n");
    return 2;
}
