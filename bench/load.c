/* handover-load: drives a running Handover (hub, four adapters, four
 * partner simulators) through the partners' own protocols and checks, at
 * the simulators, that every accepted event reached every partner it was
 * routed to. Used by bench/soak.sh and bench/peak.sh; see bench/README.md.
 *
 *   handover-load soak --rate R --duration S [--drain S] [--workers N] ...
 *   handover-load peak --case hl7|fhir|files|webhook -n N [-c C] ...
 *
 * Messages are the partner samples in samples/ with their identities
 * replaced (control ids, business identifiers, NHS numbers), so each one
 * is new to the hub and as valid as the samples the tests send. Event ids
 * are derived here exactly as the adapters derive them (domain 3.8), which
 * lets a delivery seen at a simulator be matched to what was sent.
 */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "council.h"
#include "handover/ident.h"
#include "handover/io.h"
#include "handover/timeutil.h"
#include "hl7.h"
#include "mllp.h"
#include "webhook.h"

/* ------------------------------------------------------------ settings */

static struct {
    const char *samples;
    int mllp_port, fhir_port, hook_port;
    const char *inbox;
    const char *secret;
    const char *nursing_log, *gp_log, *vol_log, *council_log;
    const char *events_out;
    double rate;
    double duration_s;
    double drain_s;
    int workers;
    const char *pcase;
    long n;
    int conc;
    unsigned seed;
} cfg = {
    .samples = "samples",
    .mllp_port = 7420,
    .fhir_port = 7410,
    .hook_port = 7440,
    .rate = 5,
    .duration_s = 600,
    .drain_s = 120,
    .workers = 6,
    .n = 1000,
    .conc = 4,
};

static void
die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "handover-load: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(1);
}

static void
sleep_ms(uint64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Copy with truncation: reasons and names are shown, never parsed. */
static void
copy_text(char *dst, size_t dstsz, const char *src)
{
    size_t n = strlen(src);
    if (n >= dstsz)
        n = dstsz - 1;
    memmove(dst, src, n);
    dst[n] = '\0';
}

/* ----------------------------------------------------------- templates */

static char *
read_file(const char *rel, size_t *len)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", cfg.samples, rel);
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        die("open %s: %s", path, strerror(errno));
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (b == NULL || fread(b, 1, (size_t)n, f) != (size_t)n)
        die("read %s", path);
    b[n] = '\0';
    fclose(f);
    if (len)
        *len = (size_t)n;
    return b;
}

/* Replace every occurrence of each from[i] with to[i]; a sample token that
 * is missing means the sample changed under us, which must not pass
 * silently (the event would repeat an id). */
static char *
subst(const char *tpl, const char *const *from, const char *const *to, size_t n)
{
    size_t cap = strlen(tpl) * 2 + 4096, len = 0;
    char *out = malloc(cap);
    if (out == NULL)
        die("out of memory");
    bool seen[16] = {0};
    const char *p = tpl;
    while (*p) {
        size_t k;
        for (k = 0; k < n; k++) {
            size_t fl = strlen(from[k]);
            if (strncmp(p, from[k], fl) == 0)
                break;
        }
        if (k < n) {
            size_t tl = strlen(to[k]);
            if (len + tl + 1 >= cap) {
                cap = (cap + tl) * 2;
                out = realloc(out, cap);
                if (out == NULL)
                    die("out of memory");
            }
            memcpy(out + len, to[k], tl);
            len += tl;
            p += strlen(from[k]);
            seen[k] = true;
            continue;
        }
        if (len + 2 >= cap) {
            cap *= 2;
            out = realloc(out, cap);
            if (out == NULL)
                die("out of memory");
        }
        out[len++] = *p++;
    }
    out[len] = '\0';
    for (size_t k = 0; k < n; k++)
        if (!seen[k])
            die("sample token '%s' not found: samples changed?", from[k]);
    return out;
}

enum {
    T_ADT1,
    T_ADT0,
    T_REF_ASC,
    T_REF_SP,
    T_ORM,
    T_RRI,
    T_FHIR_REF,
    T_TASK,
    T_COUNCIL_REF,
    T_N
};
static char *tpl[T_N];

static void
load_templates(void)
{
    tpl[T_ADT1] = read_file("hl7/valid/adt-a03-discharge-pathway1.hl7", NULL);
    tpl[T_ADT0] = read_file("hl7/valid/adt-a03-pathway0-no-final-cr.hl7", NULL);
    tpl[T_REF_ASC] =
        read_file("hl7/valid/ref-i12-social-care-assessment.hl7", NULL);
    tpl[T_REF_SP] = read_file(
        "hl7/valid/ref-i12-social-prescribing-utf8-zsegments.hl7", NULL);
    tpl[T_ORM] = read_file("hl7/valid/orm-o01-equipment-order.hl7", NULL);
    tpl[T_RRI] = read_file(
        "hl7/outcomes/rri-i12-referral-accepted-enhanced-mode.hl7", NULL);
    tpl[T_FHIR_REF] =
        read_file("fhir/valid/referral-message-bundle.json", NULL);
    tpl[T_TASK] = read_file(
        "fhir/outcomes/task-outcome-discharge-acknowledged.json", NULL);
    tpl[T_COUNCIL_REF] = read_file(
        "council/valid/referral_Z9Z9Z_20250317T090500Z_000007.json", NULL);
}

/* ------------------------------------------------------------ identity */

static pthread_mutex_t id_mu = PTHREAD_MUTEX_INITIALIZER;
static uint64_t nhs_next, ctl_next;
static unsigned run_tag;

/* The next unused 999-range NHS number with a valid Modulus 11 check
 * digit: each request is a new patient, so no event waits behind another
 * of the same patient (the hub keeps a patient's deliveries in order). */
static void
next_nhs(char out[11])
{
    pthread_mutex_lock(&id_mu);
    for (;;) {
        uint64_t v = nhs_next++ % 1000000u;
        char d[24];
        snprintf(d, sizeof d, "999%06llu", (unsigned long long)v);
        int sum = 0;
        for (int i = 0; i < 9; i++)
            sum += (d[i] - '0') * (10 - i);
        int chk = 11 - sum % 11;
        if (chk == 11)
            chk = 0;
        if (chk == 10)
            continue;
        memcpy(out, d, 9);
        out[9] = (char)('0' + chk);
        out[10] = '\0';
        break;
    }
    pthread_mutex_unlock(&id_mu);
    hov_error err;
    if (hov_nhs_number_check(out, true, &err) != HOV_OK)
        die("generated a bad NHS number %s: %s", out, err.msg);
}

/* A fresh identifier, unique in this run and across runs (run_tag). */
static void
next_ctl(const char *prefix, char *out, size_t outsz)
{
    pthread_mutex_lock(&id_mu);
    uint64_t v = ctl_next++;
    pthread_mutex_unlock(&id_mu);
    snprintf(out, outsz, "%s%05x%09llu", prefix, run_tag & 0xfffffu,
             (unsigned long long)v);
}

static void
uuid5(const char *name, char out[37])
{
    hov_error err;
    if (hov_uuid_v5(HOV_EVENT_ID_NS, name, strlen(name), out, &err) != HOV_OK)
        die("uuid v5: %s", err.msg);
}

/* What the simulators log: nursing-sim the HL7 control id (the first 20
 * hex digits of the event id), the others the event id. One form for
 * all: a simulator letter and those 20 digits. */
static void
dkey(char sim, const char *eid, char out[22])
{
    out[0] = sim;
    size_t j = 1;
    for (const char *p = eid; *p && j < 21; p++)
        if (*p != '-')
            out[j++] = *p;
    out[j] = '\0';
}

/* ------------------------------------------------- seen deliveries set */

#define SET_CAP (1u << 19)
typedef struct slot {
    char key[22];
    uint32_t count;
    uint64_t first_ms;
} slot;
static slot *set;
static size_t set_n;
static pthread_mutex_t set_mu = PTHREAD_MUTEX_INITIALIZER;

static uint32_t
hash_key(const char *k)
{
    uint32_t h = 2166136261u;
    for (; *k; k++)
        h = (h ^ (uint8_t)*k) * 16777619u;
    return h;
}

static slot *
set_find(const char *k, bool add)
{
    uint32_t i = hash_key(k) & (SET_CAP - 1);
    for (;;) {
        slot *s = &set[i];
        if (s->key[0] == '\0') {
            if (!add)
                return NULL;
            if (set_n + 1 >= SET_CAP * 3 / 4)
                die("too many deliveries for the seen set");
            copy_text(s->key, sizeof s->key, k);
            set_n++;
            return s;
        }
        if (strcmp(s->key, k) == 0)
            return s;
        i = (i + 1) & (SET_CAP - 1);
    }
}

static bool
delivered(const char *k, uint64_t *at)
{
    pthread_mutex_lock(&set_mu);
    slot *s = set_find(k, false);
    bool r = s != NULL;
    if (r && at)
        *at = s->first_ms;
    pthread_mutex_unlock(&set_mu);
    return r;
}

/* ------------------------------------------------------------- records */

enum kind {
    K_ADT1,    /* HL7 ADT^A03 pathway 1 -> GP, nursing, council */
    K_ADT0,    /* HL7 ADT^A03 pathway 0 -> GP */
    K_REF_ASC, /* HL7 REF^I12 social care -> council */
    K_REF_SP,  /* HL7 REF^I12 social prescribing -> voluntary */
    K_ORM,     /* HL7 ORM^O01 equipment -> CES (council files) */
    K_FHIR_DN, /* FHIR ServiceRequest district nursing -> nursing */
    K_FILE_SP, /* council referral file, social prescribing -> voluntary */
    O_TASK,    /* FHIR Task acknowledged (discharge): recorded only */
    O_RRI,     /* HL7 RRI^I12 answering K_FHIR_DN -> GP Task */
    O_CSV_ASC, /* council outcome answering K_REF_ASC -> nursing RRI */
    O_CSV_CES, /* CES outcome answering K_ORM -> nursing ORM SC */
    O_HOOK_N,  /* webhook outcome answering K_REF_SP -> nursing RRI */
    O_HOOK_C,  /* webhook outcome answering K_FILE_SP -> council file */
    K_N
};
static const char *const kind_name[K_N] = {
    "discharge-hl7-pw1", "discharge-hl7-pw0", "referral-asc-hl7",
    "referral-sp-hl7",   "equipment-hl7",     "referral-dn-fhir",
    "referral-sp-file",  "outcome-task-fhir", "outcome-rri-hl7",
    "outcome-asc-csv",   "outcome-ces-csv",   "outcome-webhook-n",
    "outcome-webhook-c",
};
/* Where each kind is delivered: simulator letters (g gp-sim, n
 * nursing-sim, c council-sim, v voluntary-sim). */
static const char *const kind_dest[K_N] = {
    "gnc", "g", "c", "v", "c", "n", "v", "", "g", "n", "n", "n", "c",
};

enum st { ST_NEW, ST_PENDING, ST_ACCEPTED, ST_REFUSED, ST_ERROR };

typedef struct rec {
    enum kind kind;
    _Atomic int status;
    char eid[37];
    char nhs[11];
    char ident[64]; /* control id / business id / file name */
    uint64_t t_sent, t_acc;
    int reply_to; /* outcomes: the request answered, else -1 */
    int n_out;    /* requests: outcomes sent (or being sent) */
    int attempts;
    char why[200];
} rec;

static rec *recs;
static _Atomic int n_recs;
static int cap_recs;

static int
rec_new(enum kind k)
{
    int i = atomic_fetch_add(&n_recs, 1);
    if (i >= cap_recs)
        die("too many events for the record table (%d)", cap_recs);
    rec *r = &recs[i];
    memset(r, 0, sizeof *r);
    r->kind = k;
    r->reply_to = -1;
    return i;
}

/* ---------------------------------------------------------- transports */

typedef struct worker {
    int mllp_fd;
    CURL *curl;
    mllp_framer *fr;
} worker;

typedef struct ack_st {
    bool got;
    hl7_ack_info ai;
    bool bad;
} ack_st;

static int
on_ack(void *user, const mllp_event *ev)
{
    ack_st *a = user;
    if (ev->kind != MLLP_FRAME)
        return 0;
    hl7_parse_opts po = {0};
    hl7_error perr;
    hl7_msg *m = NULL;
    int rc = hl7_parse(ev->body, ev->len, &po, &m, &perr);
    if (rc == 0)
        rc = hl7_ack_read(m, &a->ai, &perr);
    hl7_msg_free(m);
    a->got = true;
    a->bad = rc != 0;
    return 1;
}

static int
mllp_connect(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)cfg.mllp_port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int one = 1;
    if (fd < 0)
        return -1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct timeval tv = {60, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Send one HL7 message on the worker's connection and read its ACK.
 * Returns 0 with the ACK code in ai, -1 on a transport failure. */
static int
hl7_send(worker *w, const char *msg, hl7_ack_info *ai)
{
    uint8_t *framed = NULL;
    size_t flen = 0;
    if (mllp_wrap((const uint8_t *)msg, strlen(msg), &framed, &flen) != 0)
        die("mllp_wrap");
    for (int attempt = 0; attempt < 2; attempt++) {
        if (w->mllp_fd < 0)
            w->mllp_fd = mllp_connect();
        if (w->mllp_fd < 0)
            break;
        if (hov_write_all(w->mllp_fd, framed, flen) != 0) {
            close(w->mllp_fd);
            w->mllp_fd = -1;
            continue;
        }
        ack_st st = {0};
        mllp_framer_reset(w->fr);
        uint8_t buf[16384];
        ssize_t n;
        while (!st.got && (n = read(w->mllp_fd, buf, sizeof buf)) > 0)
            if (mllp_feed(w->fr, buf, (size_t)n, on_ack, &st) != 0)
                break;
        if (!st.got || st.bad) {
            close(w->mllp_fd);
            w->mllp_fd = -1;
            /* Sent but unanswered: resending is safe (same control id,
             * the hub deduplicates), so try once more. */
            continue;
        }
        *ai = st.ai;
        free(framed);
        return 0;
    }
    free(framed);
    return -1;
}

typedef struct resp {
    char body[512];
    size_t len;
} resp;

static size_t
on_body(char *p, size_t sz, size_t n, void *user)
{
    resp *r = user;
    size_t k = sz * n, room = sizeof r->body - 1 - r->len;
    memcpy(r->body + r->len, p, k < room ? k : room);
    r->len += k < room ? k : room;
    r->body[r->len] = '\0';
    return sz * n;
}

static long
http_post(worker *w, const char *url, struct curl_slist *hdr, const char *body,
          size_t len, resp *r)
{
    memset(r, 0, sizeof *r);
    if (w->curl == NULL)
        w->curl = curl_easy_init();
    CURL *c = w->curl;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)len);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    long code = 0;
    for (int attempt = 0; attempt < 2; attempt++) {
        CURLcode rc = curl_easy_perform(c);
        if (rc == CURLE_OK) {
            curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
            return code;
        }
        snprintf(r->body, sizeof r->body, "curl: %s", curl_easy_strerror(rc));
    }
    return 0;
}

static int
fhir_post(worker *w, const char *path, const char *body, resp *r)
{
    char url[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", cfg.fhir_port, path);
    struct curl_slist *h =
        curl_slist_append(NULL, "Content-Type: application/fhir+json");
    h = curl_slist_append(h, "Expect:");
    long code = http_post(w, url, h, body, strlen(body), r);
    curl_slist_free_all(h);
    return (int)code;
}

static int
hook_post(worker *w, const char *sender, const char *idem, const char *body,
          resp *r)
{
    char url[256], ts[24], sig[WEBHOOK_SIG_CAP];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/webhooks/v1/outcome",
             cfg.hook_port);
    snprintf(ts, sizeof ts, "%llu", (unsigned long long)(hov_now_ms() / 1000));
    if (!webhook_sign((const uint8_t *)cfg.secret, strlen(cfg.secret), ts, body,
                      strlen(body), sig))
        die("webhook_sign");
    char h_ts[64], h_sig[96], h_sender[96], h_kid[96], h_idem[96];
    snprintf(h_ts, sizeof h_ts, "Handover-Timestamp: %s", ts);
    snprintf(h_sig, sizeof h_sig, "Handover-Signature: %s", sig);
    snprintf(h_sender, sizeof h_sender, "Handover-Sender: %s", sender);
    snprintf(h_kid, sizeof h_kid, "Handover-Key-Id: %s-load", sender + 6);
    snprintf(h_idem, sizeof h_idem, "Idempotency-Key: %s", idem);
    const char *hs[] = {"Content-Type: application/json",
                        h_ts,
                        h_sig,
                        h_sender,
                        h_kid,
                        h_idem,
                        "Expect:"};
    struct curl_slist *h = NULL;
    for (size_t i = 0; i < sizeof hs / sizeof hs[0]; i++)
        h = curl_slist_append(h, hs[i]);
    long code = http_post(w, url, h, body, strlen(body), r);
    curl_slist_free_all(h);
    return (int)code;
}

/* A partner writes the whole file as .tmp, fsyncs it and renames it, so
 * the adapter never reads half a file (domain 7.1). */
static int
drop_file(const char *name, const char *body)
{
    char tmp[1300], final[1200];
    snprintf(final, sizeof final, "%s/%s", cfg.inbox, name);
    snprintf(tmp, sizeof tmp, "%s.tmp", final);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0640);
    if (fd < 0)
        return -1;
    int rc = hov_write_all(fd, body, strlen(body));
    if (rc == 0)
        rc = fsync(fd);
    close(fd);
    if (rc == 0)
        rc = rename(tmp, final);
    return rc;
}

static void
file_name(const char *kind, const char *org, const char *ext, char *out,
          size_t outsz)
{
    static _Atomic unsigned seq;
    char ts[32];
    hov_rfc3339_format(hov_now_ms(), ts);
    unsigned s = atomic_fetch_add(&seq, 1) % 1000000u;
    snprintf(out, outsz, "%s_%s_%.4s%.2s%.2sT%.2s%.2s%.2sZ_%06u%s", kind, org,
             ts, ts + 5, ts + 8, ts + 11, ts + 14, ts + 17, s, ext);
}

/* ------------------------------------------------------------ messages */

/* Is a refusal one that goes away once the answered event has been
 * delivered (the hub's HOV_EREPLYTOLATER), or a temporary hub trouble? */
static bool
temporary(const char *text)
{
    return strstr(text, "temporarily") != NULL ||
           strstr(text, "resend") != NULL || strstr(text, "later") != NULL ||
           strstr(text, "not yet") != NULL;
}

static void
finish(rec *r, int st, const char *why)
{
    r->t_acc = hov_mono_ms();
    if (why)
        copy_text(r->why, sizeof r->why, why);
    atomic_store(&r->status, st);
}

/* HL7 answers: AA/CA accepted; a temporary CR/AR is retried by the caller. */
static int
do_hl7(worker *w, rec *r, const char *msg)
{
    hl7_ack_info ai;
    if (hl7_send(w, msg, &ai) != 0) {
        finish(r, ST_ERROR, "MLLP: no answer");
        return ST_ERROR;
    }
    if (strcmp(ai.code, "AA") == 0 || strcmp(ai.code, "CA") == 0) {
        finish(r, ST_ACCEPTED, NULL);
        return ST_ACCEPTED;
    }
    char why[400];
    snprintf(why, sizeof why, "%s %d %s", ai.code, ai.err_code, ai.text);
    copy_text(r->why, sizeof r->why, why);
    return temporary(ai.text) ? -1 : (finish(r, ST_REFUSED, why), ST_REFUSED);
}

static int
do_http(rec *r, int code, const resp *rs)
{
    if (code == 200 || code == 201) {
        finish(r, ST_ACCEPTED, NULL);
        return ST_ACCEPTED;
    }
    char why[600];
    snprintf(why, sizeof why, "HTTP %d %.500s", code, rs->body);
    copy_text(r->why, sizeof r->why, why);
    if (code == 0) {
        finish(r, ST_ERROR, why);
        return ST_ERROR;
    }
    /* 422 is what an outcome gets before its request was delivered; 503
     * is the hub not reachable. Both say: send the same again later. */
    if (code == 503 || (code == 422 && r->reply_to >= 0))
        return -1;
    finish(r, ST_REFUSED, why);
    return ST_REFUSED;
}

static void
set_eid(rec *r, const char *name)
{
    uuid5(name, r->eid);
}

/* Build and send one event; -1: temporary, try again later. */
static int
send_rec(worker *w, int idx)
{
    rec *r = &recs[idx];
    rec *q = r->reply_to >= 0 ? &recs[r->reply_to] : NULL;
    char name[256], ts[32], body[4096];
    resp rs;
    r->t_sent = r->t_sent ? r->t_sent : hov_mono_ms();
    r->attempts++;
    atomic_store(&r->status, ST_PENDING);
    switch (r->kind) {
    case K_ADT1:
    case K_ADT0: {
        bool one = r->kind == K_ADT1;
        const char *from[] = {one ? "PAS000187342" : "PAS000187355",
                              one ? "9992468130" : "9998765439"};
        const char *to[] = {r->ident, r->nhs};
        char *m = subst(tpl[one ? T_ADT1 : T_ADT0], from, to, 2);
        int rc = do_hl7(w, r, m);
        free(m);
        return rc;
    }
    case K_REF_ASC:
    case K_REF_SP:
    case K_ORM: {
        int t = r->kind == K_REF_ASC  ? T_REF_ASC
                : r->kind == K_REF_SP ? T_REF_SP
                                      : T_ORM;
        const char *from[] = {r->kind == K_REF_ASC  ? "CN00004521"
                              : r->kind == K_REF_SP ? "CN00004522"
                                                    : "CN00004530",
                              r->kind == K_REF_ASC  ? "9994127357"
                              : r->kind == K_REF_SP ? "9995050501"
                                                    : "9993001007"};
        const char *to[] = {r->ident, r->nhs};
        char *m = subst(tpl[t], from, to, 2);
        int rc = do_hl7(w, r, m);
        free(m);
        return rc;
    }
    case O_RRI: {
        const char *from[] = {"CN00004540", "9996118428",
                              "ae41b2a2-c361-59f0-b094-ae08febec1f6",
                              "RF1|A^Accepted^HL70283"};
        const char *to[] = {r->ident, r->nhs, q->eid,
                            q->n_out > 1 ? "RF1|C^Completed^HL70283"
                                         : "RF1|A^Accepted^HL70283"};
        char *m = subst(tpl[T_RRI], from, to, 4);
        int rc = do_hl7(w, r, m);
        free(m);
        return rc;
    }
    case K_FHIR_DN: {
        char bid[37];
        hov_uuid_v4(bid);
        const char *from[] = {"Z99001-REF-000318", "9996118428",
                              "fcdcc247-9f75-467a-89f4-3bb97bee2645"};
        const char *to[] = {r->ident, r->nhs, bid};
        char *m = subst(tpl[T_FHIR_REF], from, to, 3);
        int code = fhir_post(w, "/fhir", m, &rs);
        free(m);
        return do_http(r, code, &rs);
    }
    case O_TASK: {
        /* The practice that received the discharge answers it. */
        bool pw0 = q->kind == K_ADT0;
        const char *from[] = {"Z99001-TASK-007781", "9992468130",
                              "e09339b8-a502-5cfc-af76-7873b23f04b6", "Z99001",
                              "Aldercote Surgery"};
        const char *to[] = {r->ident, r->nhs, q->eid, pw0 ? "Z99002" : "Z99001",
                            pw0 ? "Brackenby Medical Group"
                                : "Aldercote Surgery"};
        char *m = subst(tpl[T_TASK], from, to, 5);
        int code = fhir_post(w, "/fhir/Task", m, &rs);
        free(m);
        return do_http(r, code, &rs);
    }
    case O_HOOK_N:
    case O_HOOK_C: {
        const char *sender =
            r->kind == O_HOOK_N ? "local:VCS-0002" : "local:VCS-0001";
        hov_rfc3339_format(hov_now_ms(), ts);
        snprintf(body, sizeof body,
                 "{\"schema\":\"handover.event.v1\",\"event_type\":"
                 "\"outcome\",\"in_reply_to\":\"%s\",\"occurred_at\":\"%s\","
                 "\"source\":{\"org\":{\"code\":\"%s\"},\"ref\":\"LOAD-%s\","
                 "\"author\":{\"name\":\"Load Generator\",\"role\":"
                 "\"Volunteer coordinator\"}},\"outcome\":{\"status\":\"%s\","
                 "\"reason_text\":\"Matched with a volunteer.\"}}",
                 q->eid, ts, sender, r->ident,
                 q->n_out > 1 ? "completed" : "accepted");
        int code = hook_post(w, sender, r->ident, body, &rs);
        return do_http(r, code, &rs);
    }
    case K_FILE_SP: {
        const char *from[] = {"ASC-REF-2025-004417", "9994127357"};
        const char *to[] = {r->ident, r->nhs};
        char *m = subst(tpl[T_COUNCIL_REF], from, to, 2);
        file_name("referral", "Z9Z9Z", ".json", name, sizeof name);
        copy_text(r->why, sizeof r->why, name);
        int rc = drop_file(name, m);
        free(m);
        if (rc != 0) {
            finish(r, ST_ERROR, "cannot write the inbox file");
            return ST_ERROR;
        }
        return ST_PENDING; /* accepted once the adapter moves it */
    }
    case O_CSV_ASC:
    case O_CSV_CES: {
        bool ces = r->kind == O_CSV_CES;
        const char *org = ces ? "8ZZ99" : "Z9Z9Z";
        bool second = q->n_out > 1;
        const char *status = ces ? (second ? "delivered" : "accepted")
                                 : (second ? "completed" : "accepted");
        hov_rfc3339_format(hov_now_ms(), ts);
        size_t n = 0;
        for (int i = 0; i < COUNCIL_CSV_COLUMNS; i++)
            n += (size_t)snprintf(body + n, sizeof body - n, "%s%s",
                                  council_csv_header[i],
                                  i == COUNCIL_CSV_COLUMNS - 1 ? "\r\n" : ",");
        snprintf(body + n, sizeof body - n,
                 "%s,%s,%s,%s,,,%s,Load Generator,%s,%s,%s,%s,%s,\r\n",
                 r->ident, q->eid, q->nhs, status, ts,
                 ces ? "Technician" : "Social worker", org,
                 ces && second ? "BED-PROF-01" : "", ces && second ? "1" : "",
                 ces && second ? "FCES-BED-LOAD" : "");
        file_name("outcomes", org, ".csv", name, sizeof name);
        copy_text(r->why, sizeof r->why, name);
        if (drop_file(name, body) != 0) {
            finish(r, ST_ERROR, "cannot write the inbox file");
            return ST_ERROR;
        }
        return ST_PENDING;
    }
    default:
        die("bad kind");
    }
    return ST_ERROR;
}

/* Fill a new record's identity (everything the event id depends on). */
static int
make_req(enum kind k)
{
    int i = rec_new(k);
    rec *r = &recs[i];
    next_nhs(r->nhs);
    char name[256];
    switch (k) {
    case K_ADT1:
    case K_ADT0:
        next_ctl("LP", r->ident, 21);
        snprintf(name, sizeof name, "hl7v2|RZZ01|FELLGATE-PAS|%s", r->ident);
        break;
    case K_REF_ASC:
    case K_REF_SP:
    case K_ORM:
        next_ctl("LC", r->ident, 21);
        snprintf(name, sizeof name, "hl7v2|RZZ40|CN-EPR|%s", r->ident);
        break;
    case K_FHIR_DN:
        next_ctl("Z99001-LREF-", r->ident, sizeof r->ident);
        snprintf(name, sizeof name,
                 "fhir|https://fhir.gp-system.example/Id/referral|%s",
                 r->ident);
        break;
    case K_FILE_SP:
        next_ctl("LASC-", r->ident, sizeof r->ident);
        snprintf(name, sizeof name, "file|Z9Z9Z|%s", r->ident);
        break;
    default:
        die("not a request kind");
    }
    set_eid(r, name);
    return i;
}

static enum kind
outcome_kind(enum kind req)
{
    switch (req) {
    case K_ADT1:
    case K_ADT0:
        return O_TASK;
    case K_FHIR_DN:
        return O_RRI;
    case K_REF_ASC:
        return O_CSV_ASC;
    case K_ORM:
        return O_CSV_CES;
    case K_REF_SP:
        return O_HOOK_N;
    case K_FILE_SP:
        return O_HOOK_C;
    default:
        die("not a request kind");
    }
    return K_N;
}

/* How many outcomes each receiver sends back: a discharge is
 * acknowledged once; a referral accepted then completed; an equipment
 * order accepted then delivered (domain 2.4: about 2 per request per
 * receiver). */
static int
outcomes_for(enum kind req)
{
    return req == K_ADT1 || req == K_ADT0 ? 1 : 2;
}

/* The receiver whose delivery must be seen before it may answer. */
static char
answering_sim(enum kind req)
{
    return kind_dest[req][0];
}

static int
make_outcome(int req_idx)
{
    rec *q = &recs[req_idx];
    enum kind k = outcome_kind(q->kind);
    int i = rec_new(k);
    rec *r = &recs[i];
    r->reply_to = req_idx;
    copy_text(r->nhs, sizeof r->nhs, q->nhs);
    q->n_out++;
    char name[256];
    switch (k) {
    case O_TASK:
        next_ctl("Z99001-LTASK-", r->ident, sizeof r->ident);
        snprintf(name, sizeof name,
                 "fhir|https://fhir.gp-system.example/Id/task|%s", r->ident);
        break;
    case O_RRI:
        next_ctl("LR", r->ident, 21);
        snprintf(name, sizeof name, "hl7v2|RZZ40|CN-EPR|%s", r->ident);
        break;
    case O_CSV_ASC:
    case O_CSV_CES:
        next_ctl("LOUT-", r->ident, sizeof r->ident);
        snprintf(name, sizeof name, "file|%s|%s",
                 k == O_CSV_CES ? "8ZZ99" : "Z9Z9Z", r->ident);
        break;
    case O_HOOK_N:
    case O_HOOK_C:
        hov_uuid_v4(r->ident);
        snprintf(name, sizeof name, "webhook|%s|%s",
                 k == O_HOOK_N ? "local:VCS-0002" : "local:VCS-0001", r->ident);
        break;
    default:
        die("bad outcome kind");
    }
    set_eid(r, name);
    return i;
}

/* ------------------------------------------------------------- watcher */

typedef struct tail {
    const char *path;
    char sim;
    int fd;
    char buf[8192];
    size_t len;
} tail;

static tail tails[4];
static size_t n_tails;
static atomic_bool watcher_stop;
static uint64_t watch_poll_ms = 100;
static _Atomic uint64_t last_new_delivery_ms;

static void
tail_line(tail *t, char *line)
{
    char a[512] = "", b[128] = "", c[128] = "", d[32] = "";
    int n = sscanf(line, "%511s %127s %127s %31s", a, b, c, d);
    const char *eid = NULL;
    switch (t->sim) {
    case 'n': /* control type digest */
        if (n >= 2)
            eid = a;
        break;
    case 'g': { /* identifier=...|<eid> type digest status */
        const char *bar = strrchr(a, '|');
        if (n == 4 && bar && (strcmp(d, "200") == 0 || strcmp(d, "201") == 0))
            eid = bar + 1;
        break;
    }
    case 'v': /* idem digest status */
        if (n == 3 && strcmp(c, "200") == 0)
            eid = a;
        break;
    case 'c': /* taken event=<id> file=... */
        if (n >= 2 && strcmp(a, "taken") == 0 && strncmp(b, "event=", 6) == 0)
            eid = b + 6;
        break;
    }
    if (eid == NULL || strlen(eid) < 20)
        return;
    char k[22];
    dkey(t->sim, eid, k);
    uint64_t now = hov_mono_ms();
    pthread_mutex_lock(&set_mu);
    slot *s = set_find(k, true);
    if (s->count++ == 0) {
        s->first_ms = now;
        atomic_store(&last_new_delivery_ms, now);
    }
    pthread_mutex_unlock(&set_mu);
}

static void
tail_poll(tail *t)
{
    if (t->fd < 0)
        t->fd = open(t->path, O_RDONLY);
    if (t->fd < 0)
        return;
    for (;;) {
        ssize_t n = read(t->fd, t->buf + t->len, sizeof t->buf - 1 - t->len);
        if (n <= 0)
            return;
        t->len += (size_t)n;
        size_t start = 0;
        for (size_t i = 0; i < t->len; i++)
            if (t->buf[i] == '\n') {
                t->buf[i] = '\0';
                tail_line(t, t->buf + start);
                start = i + 1;
            }
        memmove(t->buf, t->buf + start, t->len - start);
        t->len -= start;
        if (t->len == sizeof t->buf - 1)
            t->len = 0; /* a line that long is not ours */
    }
}

/* Files are accepted when the adapter moves them to processed/, after the
 * hub answered every record; error/ means refused. */
static _Atomic int files_lo;
static void
files_poll(void)
{
    int n = atomic_load(&n_recs), lo = atomic_load(&files_lo);
    bool prefix = true;
    /* The adapter takes files in name order, which is the order they were
     * written, so only the oldest few pending ones need a look: stat-ing
     * every pending file each pass would take the CPU being measured. */
    int looked = 0;
    for (int i = lo; i < n && looked < 32; i++) {
        rec *r = &recs[i];
        bool file = r->kind == K_FILE_SP || r->kind == O_CSV_ASC ||
                    r->kind == O_CSV_CES;
        int st = atomic_load(&r->status);
        if (!file || st != ST_PENDING || r->why[0] == '\0') {
            if (prefix && (!file || st >= ST_ACCEPTED))
                lo = i + 1;
            else
                prefix = false;
            continue;
        }
        prefix = false;
        looked++;
        char p[1400];
        struct stat sb;
        snprintf(p, sizeof p, "%s/processed/%s", cfg.inbox, r->why);
        if (stat(p, &sb) == 0) {
            r->t_acc = hov_mono_ms();
            atomic_store(&r->status, ST_ACCEPTED);
            continue;
        }
        snprintf(p, sizeof p, "%s/error/%s", cfg.inbox, r->why);
        if (stat(p, &sb) == 0) {
            r->t_acc = hov_mono_ms();
            char why[260];
            snprintf(why, sizeof why, "moved to error/: %s", r->why);
            copy_text(r->why, sizeof r->why, why);
            atomic_store(&r->status, ST_REFUSED);
        }
    }
    atomic_store(&files_lo, lo);
}

static void *
watcher(void *arg)
{
    (void)arg;
    while (!atomic_load(&watcher_stop)) {
        for (size_t i = 0; i < n_tails; i++)
            tail_poll(&tails[i]);
        files_poll();
        sleep_ms(watch_poll_ms);
    }
    for (size_t i = 0; i < n_tails; i++)
        tail_poll(&tails[i]);
    files_poll();
    return NULL;
}

static void
add_tail(const char *path, char sim)
{
    if (path == NULL)
        return;
    tails[n_tails++] = (tail){.path = path, .sim = sim, .fd = -1};
}

/* --------------------------------------------------------- job queue */

#define QCAP 65536
static int jobs[QCAP];
static size_t q_head, q_tail;
static bool q_closed;
static pthread_mutex_t q_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t q_cv = PTHREAD_COND_INITIALIZER;
static _Atomic int in_flight;

static void
q_push(int idx)
{
    pthread_mutex_lock(&q_mu);
    if (q_tail - q_head >= QCAP)
        die("job queue full");
    jobs[q_tail++ % QCAP] = idx;
    atomic_fetch_add(&in_flight, 1);
    pthread_cond_signal(&q_cv);
    pthread_mutex_unlock(&q_mu);
}

static int
q_pop(void)
{
    pthread_mutex_lock(&q_mu);
    while (q_head == q_tail && !q_closed)
        pthread_cond_wait(&q_cv, &q_mu);
    int idx = q_head == q_tail ? -1 : jobs[q_head++ % QCAP];
    pthread_mutex_unlock(&q_mu);
    return idx;
}

static size_t
q_len(void)
{
    pthread_mutex_lock(&q_mu);
    size_t n = q_tail - q_head;
    pthread_mutex_unlock(&q_mu);
    return n;
}

static void
q_close(void)
{
    pthread_mutex_lock(&q_mu);
    q_closed = true;
    pthread_cond_broadcast(&q_cv);
    pthread_mutex_unlock(&q_mu);
}

static void
worker_init(worker *w)
{
    memset(w, 0, sizeof *w);
    w->mllp_fd = -1;
    w->fr = mllp_framer_new(0, 0);
    if (w->fr == NULL)
        die("out of memory");
}

static void
worker_fini(worker *w)
{
    if (w->mllp_fd >= 0)
        close(w->mllp_fd);
    if (w->curl)
        curl_easy_cleanup(w->curl);
    mllp_framer_free(w->fr);
}

/* Send with retries for temporary refusals (an outcome racing its
 * request's settle, a hub restarting): 30 tries a second apart. */
static void
run_job(worker *w, int idx)
{
    for (int i = 0; i < 30; i++) {
        int rc = send_rec(w, idx);
        if (rc != -1)
            return;
        sleep_ms(1000);
    }
    rec *r = &recs[idx];
    char why[260];
    snprintf(why, sizeof why, "still temporary after 30 tries: %s", r->why);
    finish(r, ST_REFUSED, why);
}

static void *
worker_main(void *arg)
{
    (void)arg;
    worker w;
    worker_init(&w);
    int idx;
    while ((idx = q_pop()) >= 0) {
        run_job(&w, idx);
        atomic_fetch_sub(&in_flight, 1);
    }
    worker_fini(&w);
    return NULL;
}

/* ------------------------------------------------------------- report */

typedef struct tally {
    long sent, accepted, refused, errors, pending;
    long expected, got, lost, dup;
} tally;

static int
expected_deliveries(const rec *r)
{
    return (int)strlen(kind_dest[r->kind]);
}

/* lost: expected deliveries of accepted events not seen at a simulator. */
static tally
count(int from, int to, tally per_kind[K_N], bool print_lost)
{
    tally t = {0};
    int shown = 0;
    for (int i = from; i < to; i++) {
        rec *r = &recs[i];
        tally *k = &per_kind[r->kind];
        int st = atomic_load(&r->status);
        if (st == ST_NEW)
            continue;
        t.sent++, k->sent++;
        if (st == ST_ACCEPTED)
            t.accepted++, k->accepted++;
        else if (st == ST_REFUSED)
            t.refused++, k->refused++;
        else if (st == ST_ERROR)
            t.errors++, k->errors++;
        else
            t.pending++, k->pending++;
        if (st != ST_ACCEPTED)
            continue;
        for (const char *d = kind_dest[r->kind]; *d; d++) {
            char key[22];
            dkey(*d, r->eid, key);
            t.expected++, k->expected++;
            pthread_mutex_lock(&set_mu);
            slot *s = set_find(key, false);
            uint32_t c = s ? s->count : 0;
            pthread_mutex_unlock(&set_mu);
            if (c > 0)
                t.got++, k->got++;
            else {
                t.lost++, k->lost++;
                if (print_lost && shown++ < 10)
                    printf("  missing: %s event=%s at %c-sim\n",
                           kind_name[r->kind], r->eid, *d);
            }
            if (c > 1)
                t.dup += c - 1, k->dup += c - 1;
        }
    }
    return t;
}

static long
missing_now(int from, int to)
{
    tally pk[K_N];
    memset(pk, 0, sizeof pk);
    tally t = count(from, to, pk, false);
    return t.lost + t.pending;
}

static void
print_refusals(int from, int to)
{
    int shown = 0;
    for (int i = from; i < to && shown < 10; i++) {
        rec *r = &recs[i];
        int st = atomic_load(&r->status);
        if (st == ST_REFUSED || st == ST_ERROR) {
            printf("  refused: %s event=%s: %s\n", kind_name[r->kind], r->eid,
                   r->why);
            shown++;
        }
    }
}

static void
write_events(void)
{
    if (cfg.events_out == NULL)
        return;
    FILE *f = fopen(cfg.events_out, "w");
    if (f == NULL)
        die("open %s: %s", cfg.events_out, strerror(errno));
    fprintf(f, "kind\tevent_id\tstatus\tsent_ms\taccepted_ms\treply_to\t"
               "deliveries_expected\tdeliveries_seen\twhy\n");
    static const char *const stn[] = {"new", "pending", "accepted", "refused",
                                      "error"};
    int n = atomic_load(&n_recs);
    uint64_t t0 = n > 0 ? recs[0].t_sent : 0;
    for (int i = 0; i < n; i++) {
        rec *r = &recs[i];
        int seen = 0;
        for (const char *d = kind_dest[r->kind]; *d; d++) {
            char key[22];
            dkey(*d, r->eid, key);
            seen += delivered(key, NULL);
        }
        fprintf(f, "%s\t%s\t%s\t%llu\t%llu\t%s\t%d\t%d\t%s\n",
                kind_name[r->kind], r->eid, stn[atomic_load(&r->status)],
                (unsigned long long)(r->t_sent - t0),
                (unsigned long long)(r->t_acc ? r->t_acc - t0 : 0),
                r->reply_to >= 0 ? recs[r->reply_to].eid : "-",
                expected_deliveries(r), seen, r->why[0] ? r->why : "-");
    }
    fclose(f);
}

/* ---------------------------------------------------------------- soak */

/* Requests per day from domain 2.4 (a county of 530,000); outcomes are
 * drawn from requests whose delivery has been seen, so they always answer
 * something a partner really received. */
typedef struct stream {
    enum kind k;
    int per_day;
} stream;
static const stream streams[] = {
    {K_ADT1, 131},   /* discharges: 3/4 pathway 1-3 (GP, nursing, council) */
    {K_ADT0, 44},    /*             1/4 pathway 0 (GP only): ~2.5 receivers */
    {K_FHIR_DN, 50}, /* referrals to district nursing and UCR (from GPs) */
    {K_REF_ASC, 50}, /* referrals to adult social care (from nursing) */
    {K_REF_SP, 12},  /* social prescribing (from nursing) */
    {K_FILE_SP, 13}, /* social prescribing (from the council) */
    {K_ORM, 100},    /* equipment orders */
};
#define OUTCOMES_PER_DAY 1000

static int
pick_request(void)
{
    int total = 0;
    for (size_t i = 0; i < sizeof streams / sizeof streams[0]; i++)
        total += streams[i].per_day;
    int r = (int)randombytes_uniform((uint32_t)total);
    for (size_t i = 0; i < sizeof streams / sizeof streams[0]; i++) {
        if (r < streams[i].per_day)
            return make_req(streams[i].k);
        r -= streams[i].per_day;
    }
    return make_req(K_ADT1);
}

/* The oldest accepted request seen at its answering partner with
 * outcomes still to come, and whose previous outcome was accepted. */
static int ans_lo;
static int
pick_answerable(uint64_t now)
{
    int n = atomic_load(&n_recs);
    bool prefix = true;
    for (int i = ans_lo; i < n; i++) {
        rec *q = &recs[i];
        if (q->kind >= O_TASK) {
            if (prefix)
                ans_lo = i + 1;
            continue;
        }
        int st = atomic_load(&q->status);
        if (st == ST_REFUSED || st == ST_ERROR ||
            q->n_out >= outcomes_for(q->kind)) {
            if (prefix)
                ans_lo = i + 1;
            continue;
        }
        prefix = false;
        if (st != ST_ACCEPTED)
            continue;
        char key[22];
        uint64_t at = 0;
        dkey(answering_sim(q->kind), q->eid, key);
        /* A partner answers a little after it received the request; the
         * second outcome waits for the first to be accepted. */
        if (!delivered(key, &at) || now < at + 1000)
            continue;
        if (q->n_out > 0) {
            bool prev_ok = false;
            for (int j = n - 1; j > i; j--)
                if (recs[j].reply_to == i) {
                    prev_ok = atomic_load(&recs[j].status) == ST_ACCEPTED &&
                              now > recs[j].t_acc + 1000;
                    break;
                }
            if (!prev_ok)
                continue;
        }
        return make_outcome(i);
    }
    return -1;
}

static volatile sig_atomic_t interrupted;
static void
on_sig(int s)
{
    (void)s;
    interrupted = 1;
}

static int
cmd_soak(void)
{
    cap_recs = (int)(cfg.rate * cfg.duration_s * 1.5) + 1000;
    recs = calloc((size_t)cap_recs, sizeof *recs);
    if (recs == NULL)
        die("out of memory");
    pthread_t wt, *ws = calloc((size_t)cfg.workers, sizeof *ws);
    pthread_create(&wt, NULL, watcher, NULL);
    for (int i = 0; i < cfg.workers; i++)
        pthread_create(&ws[i], NULL, worker_main, NULL);

    uint64_t start = hov_mono_ms(), period_us = (uint64_t)(1e6 / cfg.rate);
    uint64_t end = start + (uint64_t)(cfg.duration_s * 1000);
    long ticks = 0, n_out = 0, n_req = 0, behind_max = 0;
    int total_req = 0;
    for (size_t i = 0; i < sizeof streams / sizeof streams[0]; i++)
        total_req += streams[i].per_day;
    uint64_t last_print = start;
    printf("soak: %.2f events/s for %.0f s (mix of domain 2.4: %d requests "
           "and %d outcomes a day)\n",
           cfg.rate, cfg.duration_s, total_req, OUTCOMES_PER_DAY);
    fflush(stdout);
    while (!interrupted) {
        uint64_t due = start + (uint64_t)ticks * period_us / 1000;
        uint64_t now = hov_mono_ms();
        if (due >= end)
            break;
        if (now < due) {
            sleep_ms(due - now);
            now = hov_mono_ms();
        }
        ticks++;
        int idx = -1;
        uint32_t r =
            randombytes_uniform((uint32_t)(total_req + OUTCOMES_PER_DAY));
        if (r < OUTCOMES_PER_DAY)
            idx = pick_answerable(now);
        if (idx >= 0)
            n_out++;
        else {
            idx = pick_request();
            n_req++;
        }
        q_push(idx);
        long backlog = (long)q_len();
        if (backlog > behind_max)
            behind_max = backlog;
        if (now - last_print >= 30000) {
            last_print = now;
            printf("soak: t=%llus sent=%ld (requests %ld, outcomes %ld) "
                   "generator backlog=%zu\n",
                   (unsigned long long)((now - start) / 1000), ticks, n_req,
                   n_out, q_len());
            fflush(stdout);
        }
    }
    uint64_t send_end = hov_mono_ms();
    q_close();
    for (int i = 0; i < cfg.workers; i++)
        pthread_join(ws[i], NULL);
    int n = atomic_load(&n_recs);
    printf("soak: sending done after %.1f s; waiting up to %.0f s for every "
           "delivery\n",
           (double)(send_end - start) / 1000, cfg.drain_s);
    fflush(stdout);
    uint64_t drain_end = hov_mono_ms() + (uint64_t)(cfg.drain_s * 1000);
    while (missing_now(0, n) > 0 && hov_mono_ms() < drain_end && !interrupted)
        sleep_ms(500);
    uint64_t drained = hov_mono_ms();
    sleep_ms(300);
    atomic_store(&watcher_stop, true);
    pthread_join(wt, NULL);

    tally pk[K_N];
    memset(pk, 0, sizeof pk);
    tally t = count(0, n, pk, true);
    print_refusals(0, n);
    printf("\n%-20s %7s %8s %7s %7s %8s %9s %5s %5s\n", "stream", "sent",
           "accepted", "refused", "pending", "expected", "delivered", "lost",
           "dup");
    for (int k = 0; k < K_N; k++)
        if (pk[k].sent)
            printf("%-20s %7ld %8ld %7ld %7ld %8ld %9ld %5ld %5ld\n",
                   kind_name[k], pk[k].sent, pk[k].accepted,
                   pk[k].refused + pk[k].errors, pk[k].pending, pk[k].expected,
                   pk[k].got, pk[k].lost, pk[k].dup);
    printf("%-20s %7ld %8ld %7ld %7ld %8ld %9ld %5ld %5ld\n", "total", t.sent,
           t.accepted, t.refused + t.errors, t.pending, t.expected, t.got,
           t.lost, t.dup);
    double secs = (double)(send_end - start) / 1000;
    printf("\nSOAK sent=%ld requests=%ld outcomes=%ld accepted=%ld "
           "refused=%ld pending=%ld deliveries_expected=%ld delivered=%ld "
           "lost=%ld redelivered=%ld achieved_rate=%.2f/s "
           "generator_backlog_max=%ld drain_s=%.1f\n",
           t.sent, n_req, n_out, t.accepted, t.refused + t.errors, t.pending,
           t.expected, t.got, t.lost, t.dup, (double)t.sent / secs, behind_max,
           (double)(drained - send_end) / 1000);
    write_events();
    return t.lost == 0 && t.refused + t.errors == 0 && t.pending == 0 ? 0 : 1;
}

/* ---------------------------------------------------------------- peak */

static _Atomic int peak_next;
static int peak_from, peak_to;

static void *
peak_worker(void *arg)
{
    (void)arg;
    worker w;
    worker_init(&w);
    int i;
    while ((i = atomic_fetch_add(&peak_next, 1)) < peak_to)
        run_job(&w, peak_from + i);
    worker_fini(&w);
    return NULL;
}

/* Send records [from, from + n) with conc parallel senders; returns when
 * every one is answered (files: moved by the adapter). */
static void
peak_send(int from, int n, uint64_t *t_first, uint64_t *t_acc_last)
{
    peak_from = from;
    peak_to = n;
    atomic_store(&peak_next, 0);
    pthread_t *ts = calloc((size_t)cfg.conc, sizeof *ts);
    *t_first = hov_mono_ms();
    for (int i = 0; i < cfg.conc; i++)
        pthread_create(&ts[i], NULL, peak_worker, NULL);
    for (int i = 0; i < cfg.conc; i++)
        pthread_join(ts[i], NULL);
    free(ts);
    for (;;) { /* files: wait until the adapter moved each one */
        bool done = true;
        for (int i = from; i < from + n; i++)
            if (atomic_load(&recs[i].status) == ST_PENDING)
                done = false;
        if (done || interrupted)
            break;
        sleep_ms(5);
    }
    *t_acc_last = 0;
    for (int i = from; i < from + n; i++)
        if (recs[i].t_acc > *t_acc_last)
            *t_acc_last = recs[i].t_acc;
}

static bool
wait_delivered(int from, int to, double timeout_s)
{
    uint64_t end = hov_mono_ms() + (uint64_t)(timeout_s * 1000);
    while (!interrupted && hov_mono_ms() < end) {
        if (missing_now(from, to) == 0)
            return true;
        sleep_ms(20);
    }
    return false;
}

/* The generator's own CPU, so the report can tell the system's share of
 * the machine from everyone else's. */
static double
self_cpu_s(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return 0;
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static int
cmd_peak(void)
{
    enum kind k;
    const char *route;
    bool seed = false;
    if (strcmp(cfg.pcase, "hl7") == 0) {
        k = K_ADT0;
        route = "HL7 ADT^A03 (MLLP) -> nursing -> hub -> gp -> FHIR Bundle";
    } else if (strcmp(cfg.pcase, "fhir") == 0) {
        k = K_FHIR_DN;
        route = "FHIR ServiceRequest (POST /fhir) -> gp -> hub -> nursing -> "
                "HL7 REF^I12";
    } else if (strcmp(cfg.pcase, "files") == 0) {
        k = K_FILE_SP;
        route = "council referral file -> social -> hub -> voluntary -> "
                "signed webhook";
    } else if (strcmp(cfg.pcase, "webhook") == 0) {
        k = O_HOOK_N;
        seed = true;
        route = "signed outcome webhook -> voluntary -> hub -> nursing -> "
                "HL7 RRI^I12";
    } else {
        die("--case must be hl7, fhir, files or webhook");
    }
    cap_recs = (int)cfg.n * 2 + 16;
    recs = calloc((size_t)cap_recs, sizeof *recs);
    if (recs == NULL)
        die("out of memory");
    watch_poll_ms = 2;
    pthread_t wt;
    pthread_create(&wt, NULL, watcher, NULL);
    int n = (int)cfg.n, from = 0;
    if (seed) {
        /* The outcomes need requests their sender really received. */
        for (int i = 0; i < n; i++)
            make_req(K_REF_SP);
        uint64_t a, b;
        peak_send(0, n, &a, &b);
        if (!wait_delivered(0, n, 300))
            die("seed referrals were not all delivered to voluntary-sim");
        from = n;
        for (int i = 0; i < n; i++)
            make_outcome(i);
    } else {
        for (int i = 0; i < n; i++)
            make_req(k);
    }
    uint64_t t0, t_acc;
    peak_send(from, n, &t0, &t_acc);
    bool all = wait_delivered(from, from + n, 600);
    uint64_t t_last = 0;
    for (int i = from; i < from + n; i++)
        for (const char *d = kind_dest[recs[i].kind]; *d; d++) {
            char key[22];
            uint64_t at = 0;
            dkey(*d, recs[i].eid, key);
            if (delivered(key, &at) && at > t_last)
                t_last = at;
        }
    atomic_store(&watcher_stop, true);
    pthread_join(wt, NULL);
    tally pk[K_N];
    memset(pk, 0, sizeof pk);
    tally t = count(from, from + n, pk, true);
    print_refusals(from, from + n);
    double in_s = (double)(t_acc - t0) / 1000;
    double e2e_s = (double)(t_last - t0) / 1000;
    printf("PEAK case=%s n=%d conc=%d sent=%ld accepted=%ld refused=%ld "
           "delivered=%ld lost=%ld inbound_s=%.3f inbound_rate=%.1f "
           "e2e_s=%.3f e2e_rate=%.1f cpu_s=%.2f route=\"%s\"\n",
           cfg.pcase, n, cfg.conc, t.sent, t.accepted, t.refused + t.errors,
           t.got, t.lost, in_s, in_s > 0 ? (double)t.accepted / in_s : 0, e2e_s,
           e2e_s > 0 && all ? (double)t.got / e2e_s : 0, self_cpu_s(), route);
    write_events();
    return all && t.lost == 0 && t.refused + t.errors == 0 ? 0 : 1;
}

/* ---------------------------------------------------------------- main */

static void
usage(void)
{
    fprintf(stderr,
            "usage: handover-load soak|peak [options]\n"
            "  --samples DIR          partner samples (samples/)\n"
            "  --mllp-port N --fhir-port N --webhook-port N --inbox DIR\n"
            "  --secret S             the voluntary organisations' secret\n"
            "  --nursing-log F --gp-log F --voluntary-log F --council-log F\n"
            "                         the simulators' logs (deliveries)\n"
            "  --events F             one line per event sent (TSV)\n"
            "  soak: --rate R (5) --duration S (600) --drain S (120) "
            "--workers N (6)\n"
            "  peak: --case hl7|fhir|files|webhook -n N (1000) -c C (4)\n");
    exit(2);
}

/* A whole number in [lo, hi], or the usage message: a typo in an option
 * must not silently become 0. */
static long
opt_long(const char *name, const char *v, long lo, long hi)
{
    char *end = NULL;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno != 0 || end == v || *end != '\0' || x < lo || x > hi)
        die("%s: '%s' is not a whole number from %ld to %ld", name, v, lo, hi);
    return x;
}

static double
opt_double(const char *name, const char *v, double lo, double hi)
{
    char *end = NULL;
    errno = 0;
    double x = strtod(v, &end);
    if (errno != 0 || end == v || *end != '\0' || !(x >= lo && x <= hi))
        die("%s: '%s' is not a number from %g to %g", name, v, lo, hi);
    return x;
}

int
main(int argc, char **argv)
{
    if (argc < 2)
        usage();
    const char *cmd = argv[1];
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v == NULL)
            usage();
        i++;
        if (strcmp(a, "--samples") == 0)
            cfg.samples = v;
        else if (strcmp(a, "--mllp-port") == 0)
            cfg.mllp_port = (int)opt_long(a, v, 1, 65535);
        else if (strcmp(a, "--fhir-port") == 0)
            cfg.fhir_port = (int)opt_long(a, v, 1, 65535);
        else if (strcmp(a, "--webhook-port") == 0)
            cfg.hook_port = (int)opt_long(a, v, 1, 65535);
        else if (strcmp(a, "--inbox") == 0)
            cfg.inbox = v;
        else if (strcmp(a, "--secret") == 0)
            cfg.secret = v;
        else if (strcmp(a, "--nursing-log") == 0)
            cfg.nursing_log = v;
        else if (strcmp(a, "--gp-log") == 0)
            cfg.gp_log = v;
        else if (strcmp(a, "--voluntary-log") == 0)
            cfg.vol_log = v;
        else if (strcmp(a, "--council-log") == 0)
            cfg.council_log = v;
        else if (strcmp(a, "--events") == 0)
            cfg.events_out = v;
        else if (strcmp(a, "--rate") == 0)
            cfg.rate = opt_double(a, v, 0.01, 100000);
        else if (strcmp(a, "--duration") == 0)
            cfg.duration_s = opt_double(a, v, 1, 1e7);
        else if (strcmp(a, "--drain") == 0)
            cfg.drain_s = opt_double(a, v, 0, 1e6);
        else if (strcmp(a, "--workers") == 0)
            cfg.workers = (int)opt_long(a, v, 1, 64);
        else if (strcmp(a, "--case") == 0)
            cfg.pcase = v;
        else if (strcmp(a, "-n") == 0)
            cfg.n = opt_long(a, v, 1, 1000000);
        else if (strcmp(a, "-c") == 0)
            cfg.conc = (int)opt_long(a, v, 1, 256);
        else
            usage();
    }
    if (cfg.inbox == NULL || cfg.secret == NULL || cfg.nursing_log == NULL ||
        cfg.gp_log == NULL || cfg.vol_log == NULL || cfg.council_log == NULL)
        die("--inbox, --secret and the four simulator logs are required");
    if (cfg.rate <= 0 || cfg.duration_s <= 0 || cfg.workers < 1 ||
        cfg.workers > 64 || cfg.n < 1 || cfg.conc < 1 || cfg.conc > 256)
        die("bad numeric option");
    if (sodium_init() < 0)
        die("sodium_init");
    curl_global_init(CURL_GLOBAL_DEFAULT);
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {.sa_handler = on_sig};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    run_tag = randombytes_random();
    nhs_next = randombytes_uniform(500000);
    set = calloc(SET_CAP, sizeof *set);
    if (set == NULL)
        die("out of memory");

    /* The derivation must match the adapters', or nothing would match. */
    char id[37];
    uuid5("hl7v2|RZZ01|FELLGATE-PAS|PAS000187342", id);
    if (strcmp(id, "e09339b8-a502-5cfc-af76-7873b23f04b6") != 0)
        die("event id derivation does not match samples/README.md");

    load_templates();
    add_tail(cfg.nursing_log, 'n');
    add_tail(cfg.gp_log, 'g');
    add_tail(cfg.vol_log, 'v');
    add_tail(cfg.council_log, 'c');
    int rc;
    if (strcmp(cmd, "soak") == 0)
        rc = cmd_soak();
    else if (strcmp(cmd, "peak") == 0) {
        if (cfg.pcase == NULL)
            usage();
        rc = cmd_peak();
    } else
        usage();
    curl_global_cleanup();
    return rc;
}
