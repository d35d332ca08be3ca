#define _GNU_SOURCE /* struct ucred: audit who ran a write command */
#include "status.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "audit.h"
#include "handover/ident.h"
#include "handover/log.h"
#include "handover/str.h"
#include "handover/timeutil.h"
#include "overdue.h"

#define STATUS_LINE_MAX  1024
#define STATUS_READ_MS   2000  /* to send the command line */
#define STATUS_WRITE_MS  10000 /* to read the answer */
#define STATUS_REPLY_MAX ((size_t)8 << 20)
#define STATUS_LIST_MAX  1000 /* rows in one list answer */
#define STATUS_ARGS_MAX  16
#define SEEN_DOWN_MAX    64  /* disconnected clients remembered */
#define RATE_SECS        300 /* the 5-minute window, in 1 s buckets */
#define STUCK_MS         ((uint64_t)15 * 60 * 1000)
#define USED_WARN_PCT    75

enum { H_OK, H_WARNING, H_CRITICAL, H_ERROR };
static const char *const health_word[] = {"ok", "warning", "critical", "error"};
static const char *const header_word[] = {"OK", "WARNING", "CRITICAL", "ERROR"};

/* Events per second over the last RATE_SECS seconds (monotonic). */
typedef struct rate {
    uint32_t sec[RATE_SECS];
    uint64_t last; /* second of the newest bucket */
    uint64_t total;
} rate;

typedef struct seen_client {
    char client[64];
    config_agency agency;
    bool consume;
    bool up;
    uint64_t since_ms; /* wall clock: connected, or went down */
} seen_client;

typedef struct pause_info {
    char operator[72];
    uint64_t since_ms;
} pause_info;

typedef struct client {
    int fd; /* -1: closed, removed at the end of status_serve */
    uint64_t deadline_ms;
    char in[STATUS_LINE_MAX + 1];
    size_t in_len;
    bool answered;
    char *out; /* the whole answer, owned */
    size_t out_len, out_off;
    bool cred;
    pid_t pid;
    uid_t uid;
} client;

struct status {
    status_hub hub;
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    int lfd;
    dev_t dev; /* of the socket file we bound: only that one is removed */
    ino_t ino;
    client clients[STATUS_CLIENTS_MAX];
    size_t nclients;
    int poll_map[STATUS_POLL_MAX]; /* poll item -> client, -1 listener */
    size_t npoll;
    rate in[AGENCY_COUNT], out[AGENCY_COUNT];
    seen_client *seen;
    size_t nseen, seen_cap;
    pause_info pause[AGENCY_COUNT];
    bool load_warned;
    uint64_t started_ms, started_mono;
};

/* ------------------------------------------------------------- helpers */

static void
rate_advance(rate *r, uint64_t now_s)
{
    if (now_s <= r->last)
        return;
    if (now_s - r->last >= RATE_SECS)
        memset(r->sec, 0, sizeof r->sec);
    else
        for (uint64_t t = r->last + 1; t <= now_s; t++)
            r->sec[t % RATE_SECS] = 0;
    r->last = now_s;
}

static void
rate_add(rate *r)
{
    uint64_t now_s = hov_mono_ms() / 1000;
    rate_advance(r, now_s);
    r->sec[now_s % RATE_SECS]++;
    r->total++;
}

/* Events in the last secs seconds (secs <= RATE_SECS). */
static uint64_t
rate_sum(rate *r, unsigned secs)
{
    uint64_t now_s = hov_mono_ms() / 1000, n = 0;
    rate_advance(r, now_s);
    for (unsigned i = 0; i < secs; i++)
        n += r->sec[(now_s - i) % RATE_SECS];
    return n;
}

/* "2025-11-24T03:12:44Z": to the second, for people. */
static void
fmt_time(uint64_t ms, char out[32])
{
    hov_rfc3339_format(ms, out);
    out[19] = 'Z';
    out[20] = '\0';
}

/* "4m 10s", "2h 13m", "3d 4h": a duration a person takes in at a glance. */
static void
fmt_age(uint64_t ms, char *out, size_t cap)
{
    uint64_t s = ms / 1000;
    if (s < 60)
        snprintf(out, cap, "%llus", (unsigned long long)s);
    else if (s < 3600)
        snprintf(out, cap, "%llum %02llus", (unsigned long long)s / 60,
                 (unsigned long long)s % 60);
    else if (s < 86400)
        snprintf(out, cap, "%lluh %02llum", (unsigned long long)s / 3600,
                 (unsigned long long)(s % 3600) / 60);
    else
        snprintf(out, cap, "%llud %lluh", (unsigned long long)s / 86400,
                 (unsigned long long)(s % 86400) / 3600);
}

/* Refuse a command: err says why. Returns H_ERROR, so that a command
 * function can `return refuse(err, ...)`. */
static int refuse(hov_error *err, hov_err code, const char *fmt, ...)
    HOV_PRINTF(3, 4);

static int
refuse(hov_error *err, hov_err code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    hov_vfail(err, code, 0, fmt, ap);
    va_end(ap);
    return H_ERROR;
}

static uint64_t
age_ms(uint64_t now, uint64_t then)
{
    return now > then ? now - then : 0;
}

/* A growable answer with a hard limit (R13): past STATUS_REPLY_MAX, or out
 * of memory, it is marked failed and the client gets an error instead. */
typedef struct sbuf {
    char *p;
    size_t len, cap;
    bool failed;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) HOV_PRINTF(2, 3);

static void
sb_printf(sbuf *b, const char *fmt, ...)
{
    if (b->failed)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0,
                      fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->failed = true;
        return;
    }
    size_t need = b->len + (size_t)n + 1;
    if (need > b->cap) {
        if (need > STATUS_REPLY_MAX) {
            b->failed = true;
            return;
        }
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < need)
            cap *= 2;
        char *np = realloc(b->p, cap);
        if (np == NULL) {
            b->failed = true;
            return;
        }
        b->p = np;
        b->cap = cap;
        va_start(ap, fmt);
        vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
    }
    b->len += (size_t)n;
}

/* Text from partners (a rejection reason) shown on one line. */
static void
echo(char *out, size_t cap, const char *s)
{
    hov_echo(out, cap, s, cap > 4 ? cap - 4 : 0);
}

/* ---------------------------------------------------------------- JSON */

/* Builders that record a failure (out of memory) in *ok rather than
 * silently dropping a field: an answer with a field missing would be
 * read as zero by a monitoring system. */
static void
jset(json_t *o, const char *key, json_t *v, bool *ok)
{
    if (json_object_set_new(o, key, v) != 0) /* decrefs v on failure */
        *ok = false;
}

static void
japp(json_t *a, json_t *v, bool *ok)
{
    if (json_array_append_new(a, v) != 0)
        *ok = false;
}

/* A JSON string of s; text that is not UTF-8 (partner text) is shown with
 * '?' for the bytes that are not printable ASCII. */
static json_t *
jstr(const char *s)
{
    json_t *v = json_string(s ? s : "");
    if (v == NULL) {
        char safe[512];
        echo(safe, sizeof safe, s);
        v = json_string(safe);
    }
    return v;
}

static json_t *
jtime(uint64_t ms)
{
    if (ms == 0)
        return json_null();
    char t[32];
    hov_rfc3339_format(ms, t);
    return json_string(t);
}

static json_t *
jsecs(uint64_t ms)
{
    return json_real((double)ms / 1000.0);
}

static json_t *
juint(uint64_t v)
{
    return json_integer((json_int_t)v);
}

static void
json_out(sbuf *out, json_t *root, bool *ok)
{
    /* Twelve significant digits: 0.511 rather than 0.51100000000000001. */
    char *txt = *ok && root
                    ? json_dumps(root, JSON_COMPACT | JSON_REAL_PRECISION(12))
                    : NULL;
    json_decref(root);
    if (txt == NULL) {
        *ok = false;
        return;
    }
    sb_printf(out, "%s\n", txt);
    free(txt);
}

/* ----------------------------------------------------------- lifecycle */

hov_err
status_new(status **out, const status_hub *hub, hov_error *err)
{
    status *s = calloc(1, sizeof *s);
    if (s == NULL)
        return hov_fail(err, HOV_ENOMEM, 0, "allocate the status service");
    s->hub = *hub;
    s->lfd = -1;
    s->started_ms = hov_now_ms();
    s->started_mono = hov_mono_ms();
    *out = s;
    return HOV_OK;
}

static hov_err
listen_open(status *s, hov_error *err)
{
    const char *dir = s->hub.cfg->data_dir;
    struct sockaddr_un a;
    memset(&a, 0, sizeof a);
    a.sun_family = AF_UNIX;
    int n = snprintf(s->path, sizeof s->path, "%s/%s", dir, STATUS_SOCKET_NAME);
    if (n < 0 || (size_t)n >= sizeof s->path)
        return hov_fail(err, HOV_ECONFIG, 0,
                        "status socket %s/%s: the path is longer than the "
                        "%zu bytes a Unix socket allows; use a shorter "
                        "data_dir",
                        dir, STATUS_SOCKET_NAME, sizeof s->path - 1);
    memcpy(a.sun_path, s->path, (size_t)n + 1);
    struct stat st;
    if (lstat(s->path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode))
            return hov_fail(err, HOV_EIO, 0,
                            "status socket %s: the path exists and is not a "
                            "socket; move it away",
                            s->path);
        /* hub.lock is ours, so no running hub owns this socket: it was
         * left by one that did not stop cleanly. */
        if (unlink(s->path) != 0)
            return hov_fail(err, HOV_EIO, errno,
                            "remove stale status socket %s: %s", s->path,
                            strerror(errno));
        hov_info("status socket: replaced a stale %s", s->path);
    } else if (errno != ENOENT) {
        return hov_fail(err, HOV_EIO, errno, "status socket %s: %s", s->path,
                        strerror(errno));
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return hov_fail(err, HOV_EIO, errno, "status socket: %s",
                        strerror(errno));
    /* bind creates the file with 0777 less the umask. 0117 makes it 0660
     * from the start, so it is never world-accessible, not even until the
     * chmod below. umask is per process; nothing else creates files while
     * the hub starts. */
    mode_t old = umask(0117);
    int rc = bind(fd, (struct sockaddr *)&a, sizeof a);
    int bind_errno = errno;
    umask(old);
    if (rc != 0) {
        close(fd);
        return hov_fail(err, HOV_EIO, bind_errno, "bind status socket %s: %s",
                        s->path, strerror(bind_errno));
    }
    /* Explicitly, whatever umask and file system did: owner and group. */
    if (chmod(s->path, 0660) != 0 || lstat(s->path, &st) != 0 ||
        listen(fd, 16) != 0) {
        int e = errno;
        close(fd);
        unlink(s->path);
        return hov_fail(err, HOV_EIO, e, "status socket %s: %s", s->path,
                        strerror(e));
    }
    s->dev = st.st_dev;
    s->ino = st.st_ino;
    s->lfd = fd;
    return HOV_OK;
}

static void
pause_key(char *k, size_t cap, unsigned agency)
{
    snprintf(k, cap, "pause/%s", config_agency_name((config_agency)agency));
}

static hov_err
pause_load(status *s, hov_error *err)
{
    store_txn *txn = NULL;
    hov_err e = store_begin(s->hub.st, true, &txn, err);
    for (unsigned a = 0; e == HOV_OK && a < AGENCY_COUNT; a++) {
        char key[32];
        const uint8_t *data;
        size_t len;
        pause_key(key, sizeof key, a);
        hov_err g = store_meta_get(txn, key, &data, &len, err);
        if (g == HOV_ENOTFOUND)
            continue;
        if (g != HOV_OK) {
            e = g;
            break;
        }
        Handover__Store__Pause *p =
            handover__store__pause__unpack(NULL, len, data);
        if (p == NULL) {
            e = hov_fail(err, HOV_ESTORE, 0,
                         "pause record %s is unreadable; resume the "
                         "destination to rewrite it",
                         key);
            break;
        }
        hov_strlcpy(s->pause[a].operator, sizeof s->pause[a].operator,
                    p->operator_);
        s->pause[a].since_ms = p->since_ms;
        s->hub.queues[a].paused = true;
        hov_warn("dispatch to %s is paused (by operator %s): events are "
                 "queued, not delivered, until handover-ctl resume %s",
                 config_agency_name((config_agency)a), s->pause[a].operator,
                 config_agency_name((config_agency)a));
        handover__store__pause__free_unpacked(p, NULL);
    }
    store_abort(txn);
    return e;
}

hov_err
status_open(status *s, hov_error *err)
{
    hov_err e = pause_load(s, err);
    if (e == HOV_OK)
        e = listen_open(s, err);
    return e;
}

static void
client_close(client *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    free(c->out);
    c->out = NULL;
}

void
status_free(status *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->nclients; i++)
        client_close(&s->clients[i]);
    if (s->lfd >= 0) {
        close(s->lfd);
        /* Only the socket we bound: never a file someone put there since. */
        struct stat st;
        if (lstat(s->path, &st) == 0 && st.st_dev == s->dev &&
            st.st_ino == s->ino)
            unlink(s->path);
    }
    free(s->seen);
    free(s);
}

/* --------------------------------------------------------------- hooks */

static seen_client *
seen_find(status *s, const char *client)
{
    for (size_t i = 0; i < s->nseen; i++)
        if (strcmp(s->seen[i].client, client) == 0)
            return &s->seen[i];
    return NULL;
}

/* A slot for a new client: evicts the longest-down one when too many
 * down clients are remembered (default client names carry a pid, so each
 * adapter restart brings a new name). */
static seen_client *
seen_add(status *s)
{
    size_t down = 0, oldest = SIZE_MAX;
    for (size_t i = 0; i < s->nseen; i++) {
        if (s->seen[i].up)
            continue;
        down++;
        if (oldest == SIZE_MAX ||
            s->seen[i].since_ms < s->seen[oldest].since_ms)
            oldest = i;
    }
    if (down >= SEEN_DOWN_MAX && oldest != SIZE_MAX) {
        s->seen[oldest] = s->seen[--s->nseen];
    }
    if (s->nseen == s->seen_cap) {
        size_t cap = s->seen_cap ? s->seen_cap * 2 : 16;
        seen_client *n = realloc(s->seen, cap * sizeof *n);
        if (n == NULL)
            return NULL;
        s->seen = n;
        s->seen_cap = cap;
    }
    seen_client *c = &s->seen[s->nseen++];
    memset(c, 0, sizeof *c);
    return c;
}

void
status_on_adapter(status *s, const char *client, config_agency agency,
                  bool consume, bool up)
{
    if (s == NULL)
        return;
    seen_client *c = seen_find(s, client);
    if (c == NULL) {
        if (!up)
            return;
        c = seen_add(s);
        if (c == NULL) {
            hov_warn("status: out of memory; client %s not listed", client);
            return;
        }
        hov_strlcpy(c->client, sizeof c->client, client);
    }
    c->agency = agency;
    c->consume = consume;
    c->up = up;
    c->since_ms = hov_now_ms();
}

void
status_on_publish(status *s, const route_result *routes)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < routes->n; i++)
        if (!routes->dest[i].dead && routes->dest[i].agency < AGENCY_COUNT)
            rate_add(&s->in[routes->dest[i].agency]);
}

void
status_on_settle(status *s, unsigned queue, status_settled how)
{
    if (s == NULL || queue >= AGENCY_COUNT)
        return;
    if (how == STATUS_SETTLED_DONE)
        rate_add(&s->out[queue]);
}

/* ------------------------------------------------------------ snapshot */

typedef struct reason {
    int level;
    char what[24];
    char msg[240];
} reason;

typedef struct queue_info {
    size_t depth, in_flight, ready, backoff, waiting, held, spilled;
    uint64_t oldest_ms; /* enqueued_ms of the oldest item; 0 when empty */
    uint64_t in_1m, in_5m, out_1m, out_5m, in_total, out_total;
    size_t sessions, consumers;
    const seen_client *down; /* the consumer that went down last */
} queue_info;

typedef struct snap {
    uint64_t now, mono;
    status_counters cnt;
    size_t used, map;
    bool near_full, broken;
    bool dead_known;
    size_t dead;
    char store_error[200];
    size_t overdue;
    uint64_t overdue_oldest;
    char overdue_error[200];
    queue_info q[AGENCY_COUNT];
    int level;
    reason r[16];
    size_t nr;
} snap;

static void add_reason(snap *sn, int level, const char *what, const char *fmt,
                       ...) HOV_PRINTF(4, 5);

static void
add_reason(snap *sn, int level, const char *what, const char *fmt, ...)
{
    if (level > sn->level)
        sn->level = level;
    if (sn->nr == sizeof sn->r / sizeof sn->r[0])
        return;
    reason *r = &sn->r[sn->nr++];
    r->level = level;
    hov_strlcpy(r->what, sizeof r->what, what);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->msg, sizeof r->msg, fmt, ap);
    va_end(ap);
}

static void
count_session(void *arg, const status_session *ss)
{
    snap *sn = arg;
    if (ss->gone || ss->agency >= AGENCY_COUNT)
        return;
    sn->q[ss->agency].sessions++;
    if (ss->consume)
        sn->q[ss->agency].consumers++;
}

/* Everything the read commands show, and the health with its reasons in
 * the order an engineer should look at them. Never fails: what cannot be
 * read becomes a reason. */
static void
snap_take(status *s, snap *sn)
{
    memset(sn, 0, sizeof *sn);
    sn->now = hov_now_ms();
    sn->mono = hov_mono_ms();
    s->hub.counters(s->hub.broker, &sn->cnt);
    store_usage(s->hub.st, &sn->used, &sn->map);
    sn->near_full = store_near_full(s->hub.st);
    sn->broken = store_broken(s->hub.st);
    store_txn *txn;
    hov_error err = {0};
    if (store_begin(s->hub.st, true, &txn, &err) == HOV_OK) {
        sn->dead = store_dead_count(txn);
        sn->dead_known = true;
        if (overdue_count(txn, sn->now, &sn->overdue, &sn->overdue_oldest,
                          &err) != HOV_OK)
            hov_strlcpy(sn->overdue_error, sizeof sn->overdue_error, err.msg);
        store_abort(txn);
    } else {
        hov_strlcpy(sn->store_error, sizeof sn->store_error, err.msg);
    }
    for (unsigned a = 0; a < AGENCY_COUNT; a++) {
        queue *q = &s->hub.queues[a];
        queue_info *qi = &sn->q[a];
        qi->depth = q->depth;
        qi->in_flight = q->inflight;
        qi->ready = q->ready.count;
        qi->backoff = q->backoff.count;
        qi->held = queue_held(q);
        qi->spilled = q->spilled;
        size_t busy = qi->in_flight + qi->ready + qi->backoff;
        qi->waiting = qi->held > busy ? qi->held - busy : 0;
        size_t pos = 0;
        void *v;
        while (hov_map_next(q->items, &pos, NULL, NULL, &v)) {
            const queue_item *it = v;
            if (qi->oldest_ms == 0 || it->enqueued_ms < qi->oldest_ms)
                qi->oldest_ms = it->enqueued_ms;
        }
        qi->in_1m = rate_sum(&s->in[a], 60);
        qi->in_5m = rate_sum(&s->in[a], RATE_SECS);
        qi->out_1m = rate_sum(&s->out[a], 60);
        qi->out_5m = rate_sum(&s->out[a], RATE_SECS);
        qi->in_total = s->in[a].total;
        qi->out_total = s->out[a].total;
    }
    s->hub.sessions(s->hub.broker, count_session, sn);
    for (size_t i = 0; i < s->nseen; i++) {
        const seen_client *c = &s->seen[i];
        if (!c->consume || c->agency >= AGENCY_COUNT)
            continue;
        queue_info *qi = &sn->q[c->agency];
        if (!c->up && (qi->down == NULL || c->since_ms > qi->down->since_ms))
            qi->down = c;
    }

    /* Health: what stops the hub or loses time first. */
    char a1[32], a2[32];
    if (sn->broken)
        add_reason(sn, H_CRITICAL, "store_broken",
                   "the store can no longer be written (LMDB reported it "
                   "unusable): restart the hub once the disk is fixed");
    if (!sn->dead_known)
        add_reason(sn, H_CRITICAL, "store_unreadable",
                   "the store cannot be read: %s", sn->store_error);
    unsigned pct = sn->map ? (unsigned)(sn->used * 100 / sn->map) : 0;
    if (sn->near_full)
        add_reason(sn, H_CRITICAL, "store_full",
                   "store nearly full: %zu of %zu MiB used (%u%%); new "
                   "events are refused: raise map_size_mb and restart, or "
                   "drain the queues",
                   sn->used >> 20, sn->map >> 20, pct);
    else if (pct >= USED_WARN_PCT)
        add_reason(sn, H_WARNING, "store_filling",
                   "store %u%% full (%zu of %zu MiB): plan to raise "
                   "map_size_mb",
                   pct, sn->used >> 20, sn->map >> 20);
    for (unsigned a = 0; a < AGENCY_COUNT; a++) {
        queue_info *qi = &sn->q[a];
        const char *name = config_agency_name((config_agency)a);
        if (qi->consumers == 0 && qi->down != NULL) {
            fmt_time(qi->down->since_ms, a1);
            fmt_age(age_ms(sn->now, qi->down->since_ms), a2, sizeof a2);
            char waiting[64] = "nothing waits for it yet";
            if (qi->depth > 0)
                snprintf(waiting, sizeof waiting, "%zu deliver%s wait for it",
                         qi->depth, qi->depth == 1 ? "y" : "ies");
            add_reason(sn, H_WARNING, "adapter_down",
                       "adapter down: %s (client %s) since %s (%s ago); %s",
                       name, qi->down->client, a1, a2, waiting);
        } else if (qi->consumers == 0 && qi->depth > 0) {
            add_reason(sn, H_WARNING, "adapter_missing",
                       "no %s adapter has connected since the hub started; "
                       "%zu deliver%s wait for it",
                       name, qi->depth, qi->depth == 1 ? "y" : "ies");
        }
    }
    for (unsigned a = 0; a < AGENCY_COUNT; a++) {
        if (!s->hub.queues[a].paused)
            continue;
        fmt_time(s->pause[a].since_ms, a1);
        add_reason(sn, H_WARNING, "paused",
                   "dispatch to %s paused by operator %s since %s; %zu "
                   "deliver%s held (handover-ctl resume %s)",
                   config_agency_name((config_agency)a), s->pause[a].operator,
                   a1, sn->q[a].depth, sn->q[a].depth == 1 ? "y" : "ies",
                   config_agency_name((config_agency)a));
    }
    if (sn->dead > 0)
        add_reason(sn, H_WARNING, "dead_letters",
                   "%zu dead letter%s for an operator "
                   "(handover-ctl dead-letters)",
                   sn->dead, sn->dead == 1 ? " waits" : "s wait");
    if (sn->overdue > 0) {
        fmt_age(age_ms(sn->now, sn->overdue_oldest), a2, sizeof a2);
        add_reason(sn, H_WARNING, "overdue",
                   "%zu outcome%s overdue, the oldest by %s "
                   "(handover-ctl overdue)",
                   sn->overdue, sn->overdue == 1 ? " is" : "s are", a2);
    }
    if (sn->overdue_error[0])
        add_reason(sn, H_WARNING, "overdue_unknown",
                   "overdue outcomes could not be counted: %s",
                   sn->overdue_error);
    /* A connected adapter whose queue does not move: its partner is down,
     * refusing or hanging (the adapter settles retry, or not at all). The
     * operator should hear of it long before max_attempts turns the queue
     * into dead letters (about 18 minutes at the default back-off). */
    for (unsigned a = 0; a < AGENCY_COUNT; a++) {
        queue_info *qi = &sn->q[a];
        uint64_t age = qi->oldest_ms ? age_ms(sn->now, qi->oldest_ms) : 0;
        if (qi->consumers == 0 || s->hub.queues[a].paused ||
            qi->oldest_ms == 0 || age < s->hub.cfg->queue_warn_ms)
            continue;
        const char *name = config_agency_name((config_agency)a);
        fmt_age(age, a2, sizeof a2);
        if (age >= STUCK_MS)
            add_reason(sn, H_CRITICAL, "queue_stuck",
                       "the oldest delivery to %s has waited %s (%zu in "
                       "back-off after failed attempts, %zu in flight): the "
                       "partner has not taken anything for that long; check "
                       "it and the %s adapter's log",
                       name, a2, qi->backoff, qi->in_flight, name);
        else if (qi->backoff > 0)
            add_reason(sn, H_WARNING, "partner_failing",
                       "deliveries to %s are failing: %zu in back-off after "
                       "failed attempts, the oldest waiting %s; the %s "
                       "adapter's log names each error (at max_attempts "
                       "they become dead letters)",
                       name, qi->backoff, a2, name);
        else
            add_reason(sn, H_WARNING, "queue_slow",
                       "the oldest delivery to %s has waited %s (%zu in "
                       "flight, %zu queued): the partner is slow or not "
                       "answering",
                       name, a2, qi->in_flight, qi->waiting + qi->ready);
    }
    /* Critical first. Within a level the order above stands, so the sort
     * must be stable: an insertion sort of at most 16. */
    for (size_t i = 1; i < sn->nr; i++)
        for (size_t j = i; j > 0 && sn->r[j - 1].level < sn->r[j].level; j--) {
            reason t = sn->r[j];
            sn->r[j] = sn->r[j - 1];
            sn->r[j - 1] = t;
        }
}

/* ------------------------------------------------------------ requests */

typedef struct req {
    bool json;
    const char *operator; /* NULL when not given */
    const char *argv[STATUS_ARGS_MAX];
    size_t argc;
    const client *peer;
} req;

static bool
operator_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64)
        return false;
    for (; *s; s++) {
        char c = *s;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-' ||
              c == '@' || c == '+'))
            return false;
    }
    return true;
}

static hov_err
need_operator(const req *r, const char *what, hov_error *err)
{
    if (r->operator== NULL)
        return hov_fail(err, HOV_EMISSING, 0,
                        "%s needs --operator NAME: every operator action is "
                        "audited with the name of the person who took it",
                        what);
    if (!operator_valid(r->operator))
        return hov_fail(err, HOV_EINVAL, 0,
                        "operator name '%.64s' is not 1 to 64 letters, "
                        "digits or . _ - @ +",
                        r->operator);
    return HOV_OK;
}

/* "operator:alice" and the audit detail's witness: who the kernel says is
 * on the other end of the socket (the name alone is only asserted). */
static void
peer_note(const req *r, char *out, size_t cap)
{
    if (r->peer->cred)
        snprintf(out, cap, "via the status socket, peer uid %lu pid %ld",
                 (unsigned long)r->peer->uid, (long)r->peer->pid);
    else
        snprintf(out, cap, "via the status socket, peer unknown");
}

static int
parse_agency(const char *s, hov_error *err)
{
    int a = s ? config_agency_parse(s) : -1;
    if (a < 0)
        hov_fail(err, HOV_EINVAL, 0,
                 "'%.40s' is not an agency: give gp, nursing, social or "
                 "voluntary",
                 s ? s : "");
    return a;
}

/* --------------------------------------------------------------- status */

static int
cmd_status(status *s, req *r, sbuf *out, hov_error *err)
{
    (void)err;
    snap sn;
    snap_take(s, &sn);
    char t[32], age[32];
    if (r->json) {
        bool ok = true;
        json_t *root = json_object(), *rs = json_array();
        jset(root, "health", json_string(health_word[sn.level]), &ok);
        for (size_t i = 0; i < sn.nr; i++) {
            json_t *o = json_object();
            jset(o, "severity", json_string(health_word[sn.r[i].level]), &ok);
            jset(o, "what", json_string(sn.r[i].what), &ok);
            jset(o, "message", jstr(sn.r[i].msg), &ok);
            japp(rs, o, &ok);
        }
        jset(root, "reasons", rs, &ok);
        jset(root, "instance", json_string(s->hub.instance), &ok);
        jset(root, "started_at", jtime(s->started_ms), &ok);
        jset(root, "uptime_s", jsecs(sn.mono - s->started_mono), &ok);
        json_t *st = json_object();
        jset(st, "used_bytes", juint(sn.used), &ok);
        jset(st, "map_bytes", juint(sn.map), &ok);
        jset(st, "near_full", json_boolean(sn.near_full), &ok);
        jset(st, "broken", json_boolean(sn.broken), &ok);
        jset(root, "store", st, &ok);
        json_t *c = json_object();
        jset(c, "accepted", juint(sn.cnt.accepted), &ok);
        jset(c, "duplicates", juint(sn.cnt.duplicates), &ok);
        jset(c, "naks", juint(sn.cnt.naks), &ok);
        jset(c, "delivered", juint(sn.cnt.delivered), &ok);
        jset(c, "retried", juint(sn.cnt.retried), &ok);
        jset(c, "dead", juint(sn.cnt.dead), &ok);
        jset(root, "counters", c, &ok);
        jset(root, "dead_letters", sn.dead_known ? juint(sn.dead) : json_null(),
             &ok);
        json_t *od = json_object();
        jset(od, "count", juint(sn.overdue), &ok);
        jset(od, "oldest_due_at", jtime(sn.overdue_oldest), &ok);
        jset(root, "overdue", od, &ok);
        json_t *qs = json_array();
        for (unsigned a = 0; a < AGENCY_COUNT; a++) {
            json_t *q = json_object();
            jset(q, "agency", json_string(config_agency_name(a)), &ok);
            jset(q, "depth", juint(sn.q[a].depth), &ok);
            jset(q, "in_flight", juint(sn.q[a].in_flight), &ok);
            jset(q, "paused", json_boolean(s->hub.queues[a].paused), &ok);
            jset(q, "adapter_up", json_boolean(sn.q[a].sessions > 0), &ok);
            jset(q, "consumers", juint(sn.q[a].consumers), &ok);
            japp(qs, q, &ok);
        }
        jset(root, "queues", qs, &ok);
        json_out(out, root, &ok);
        if (!ok)
            out->failed = true;
        return sn.level;
    }
    /* The first line is what a monitoring check shows: the worst reason
     * in words. */
    sb_printf(out, "HANDOVER %s", header_word[sn.level]);
    if (sn.nr > 0)
        sb_printf(out, " - %s", sn.r[0].msg);
    if (sn.nr > 1)
        sb_printf(out, " (+%zu more)", sn.nr - 1);
    fmt_time(s->started_ms, t);
    fmt_age(sn.mono - s->started_mono, age, sizeof age);
    sb_printf(out, "\nhub %s, up %s (since %s)\n", s->hub.instance, age, t);
    sb_printf(out, "store %.1f of %.1f MiB used (%.1f%%)%s\n",
              (double)sn.used / 1048576.0, (double)sn.map / 1048576.0,
              sn.map ? 100.0 * (double)sn.used / (double)sn.map : 0.0,
              sn.near_full ? ", NEARLY FULL: new events are refused" : "");
    sb_printf(out, "\nNeeds attention:%s\n", sn.nr ? "" : " nothing");
    for (size_t i = 0; i < sn.nr; i++)
        sb_printf(out, "  %-8s %s\n", header_word[sn.r[i].level], sn.r[i].msg);
    sb_printf(out, "\n%-10s %7s %9s %9s %8s %8s  %s\n", "queue", "depth",
              "in flight", "oldest", "in/min", "out/min", "adapter");
    for (unsigned a = 0; a < AGENCY_COUNT; a++) {
        queue_info *qi = &sn.q[a];
        if (qi->oldest_ms)
            fmt_age(age_ms(sn.now, qi->oldest_ms), age, sizeof age);
        else
            hov_strlcpy(age, sizeof age, "-");
        char ad[48];
        if (qi->consumers)
            snprintf(ad, sizeof ad, "up (%zu consumer%s)", qi->consumers,
                     qi->consumers == 1 ? "" : "s");
        else if (qi->down)
            snprintf(ad, sizeof ad, "DOWN");
        else if (qi->sessions)
            snprintf(ad, sizeof ad, "up (publishing only)");
        else
            snprintf(ad, sizeof ad, "-");
        sb_printf(out, "%-10s %7zu %9zu %9s %8llu %8llu  %s%s\n",
                  config_agency_name(a), qi->depth, qi->in_flight, age,
                  (unsigned long long)qi->in_1m, (unsigned long long)qi->out_1m,
                  ad, s->hub.queues[a].paused ? "  PAUSED" : "");
    }
    sb_printf(
        out,
        "\nevents: accepted %llu, duplicates %llu, naks %llu, "
        "delivered %llu, retried %llu, dead-lettered %llu\n",
        (unsigned long long)sn.cnt.accepted,
        (unsigned long long)sn.cnt.duplicates, (unsigned long long)sn.cnt.naks,
        (unsigned long long)sn.cnt.delivered,
        (unsigned long long)sn.cnt.retried, (unsigned long long)sn.cnt.dead);
    sb_printf(out, "dead letters: %zu   overdue outcomes: %zu\n", sn.dead,
              sn.overdue);
    return sn.level;
}

/* ------------------------------------------------------------- adapters */

typedef struct live {
    char client[64];
    config_agency agency;
    bool consume;
    unsigned credit;
    size_t in_flight;
    uint64_t last_rx_mono_ms;
} live;

typedef struct live_set {
    live *v;
    size_t n, cap;
    bool oom;
} live_set;

static void
collect_live(void *arg, const status_session *ss)
{
    live_set *ls = arg;
    if (ss->gone)
        return;
    if (ls->n == ls->cap) {
        size_t cap = ls->cap ? ls->cap * 2 : 16;
        live *n = realloc(ls->v, cap * sizeof *n);
        if (n == NULL) {
            ls->oom = true;
            return;
        }
        ls->v = n;
        ls->cap = cap;
    }
    live *l = &ls->v[ls->n++];
    hov_strlcpy(l->client, sizeof l->client, ss->client);
    l->agency = ss->agency;
    l->consume = ss->consume;
    l->credit = ss->credit;
    l->in_flight = ss->in_flight;
    l->last_rx_mono_ms = ss->last_rx_mono_ms;
}

static const live *
live_find(const live_set *ls, const char *client)
{
    for (size_t i = 0; i < ls->n; i++)
        if (strcmp(ls->v[i].client, client) == 0)
            return &ls->v[i];
    return NULL;
}

static int
cmd_adapters(status *s, req *r, sbuf *out, hov_error *err)
{
    live_set ls = {0};
    s->hub.sessions(s->hub.broker, collect_live, &ls);
    if (ls.oom) {
        free(ls.v);
        return refuse(err, HOV_ENOMEM, "list adapters: out of memory");
    }
    uint64_t now = hov_now_ms(), mono = hov_mono_ms();
    bool ok = true;
    json_t *root = NULL, *arr = NULL;
    if (r->json) {
        root = json_object();
        arr = json_array();
    } else {
        sb_printf(out, "%-24s %-9s %-7s %-5s %-20s %8s %9s %6s %9s\n", "client",
                  "agency", "role", "state", "since", "for", "heard", "credit",
                  "in flight");
    }
    /* Every client seen since start: the connected ones with their live
     * figures, then those that went down. */
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < s->nseen; i++) {
            const seen_client *c = &s->seen[i];
            const live *l = live_find(&ls, c->client);
            bool up = c->up && l != NULL;
            if (up != (pass == 0))
                continue;
            char t[32], age[32], heard[32] = "-";
            fmt_time(c->since_ms, t);
            fmt_age(age_ms(now, c->since_ms), age, sizeof age);
            uint64_t rx = up ? age_ms(mono, l->last_rx_mono_ms) : 0;
            if (up)
                snprintf(heard, sizeof heard, "%.1fs ago", (double)rx / 1000.0);
            if (r->json) {
                json_t *o = json_object();
                jset(o, "client", jstr(c->client), &ok);
                jset(o, "agency", json_string(config_agency_name(c->agency)),
                     &ok);
                jset(o, "consume", json_boolean(c->consume), &ok);
                jset(o, "connected", json_boolean(up), &ok);
                jset(o, "since", jtime(c->since_ms), &ok);
                jset(o, "since_age_s", jsecs(age_ms(now, c->since_ms)), &ok);
                jset(o, "last_heard_age_s", up ? jsecs(rx) : json_null(), &ok);
                jset(o, "credit", up ? juint(l->credit) : json_null(), &ok);
                jset(o, "in_flight", up ? juint(l->in_flight) : json_null(),
                     &ok);
                japp(arr, o, &ok);
            } else {
                char cl[40];
                echo(cl, sizeof cl, c->client);
                char credit[16] = "-", infl[16] = "-";
                if (up) {
                    snprintf(credit, sizeof credit, "%u", l->credit);
                    snprintf(infl, sizeof infl, "%zu", l->in_flight);
                }
                sb_printf(out, "%-24s %-9s %-7s %-5s %-20s %8s %9s %6s %9s\n",
                          cl, config_agency_name(c->agency),
                          c->consume ? "consume" : "publish",
                          up ? "up" : "DOWN", t, age, heard, credit, infl);
            }
        }
    }
    if (s->nseen == 0 && !r->json)
        sb_printf(out, "(no adapter has connected since the hub started)\n");
    free(ls.v);
    if (r->json) {
        jset(root, "adapters", arr, &ok);
        json_out(out, root, &ok);
        if (!ok)
            out->failed = true;
    }
    return H_OK;
}

/* --------------------------------------------------------------- queues */

static int
cmd_queues(status *s, req *r, sbuf *out, hov_error *err)
{
    (void)err;
    snap sn;
    snap_take(s, &sn);
    bool ok = true;
    json_t *root = NULL, *arr = NULL;
    if (r->json) {
        root = json_object();
        arr = json_array();
    } else {
        sb_printf(out, "%-10s %6s %6s %6s %6s %6s %9s %13s %13s  %s\n", "queue",
                  "depth", "flight", "ready", "retry", "behind", "oldest",
                  "in/min 1m 5m", "out/min 1m 5m", "dispatch");
    }
    for (unsigned a = 0; a < AGENCY_COUNT; a++) {
        queue_info *qi = &sn.q[a];
        const pause_info *p = &s->pause[a];
        bool paused = s->hub.queues[a].paused;
        uint64_t oldest = qi->oldest_ms ? age_ms(sn.now, qi->oldest_ms) : 0;
        if (r->json) {
            json_t *o = json_object();
            jset(o, "agency", json_string(config_agency_name(a)), &ok);
            jset(o, "depth", juint(qi->depth), &ok);
            jset(o, "in_flight", juint(qi->in_flight), &ok);
            jset(o, "ready", juint(qi->ready), &ok);
            jset(o, "backoff", juint(qi->backoff), &ok);
            jset(o, "waiting_behind_patient", juint(qi->waiting), &ok);
            jset(o, "in_memory", juint(qi->held), &ok);
            jset(o, "in_store_only", juint(qi->spilled), &ok);
            jset(o, "oldest_undelivered_age_s",
                 qi->oldest_ms ? jsecs(oldest) : json_null(), &ok);
            jset(o, "in_per_min_1m", juint(qi->in_1m), &ok);
            jset(o, "in_per_min_5m", json_real((double)qi->in_5m / 5.0), &ok);
            jset(o, "out_per_min_1m", juint(qi->out_1m), &ok);
            jset(o, "out_per_min_5m", json_real((double)qi->out_5m / 5.0), &ok);
            jset(o, "in_total", juint(qi->in_total), &ok);
            jset(o, "out_total", juint(qi->out_total), &ok);
            jset(o, "consumers", juint(qi->consumers), &ok);
            jset(o, "paused", json_boolean(paused), &ok);
            jset(o, "paused_by", paused ? jstr(p->operator) : json_null(), &ok);
            jset(o, "paused_since", paused ? jtime(p->since_ms) : json_null(),
                 &ok);
            japp(arr, o, &ok);
            continue;
        }
        char age[32] = "-", disp[128];
        if (qi->oldest_ms)
            fmt_age(oldest, age, sizeof age);
        if (paused) {
            char t[32];
            fmt_time(p->since_ms, t);
            snprintf(disp, sizeof disp, "PAUSED by %s since %s", p->operator,
                     t);
        } else if (qi->consumers == 0) {
            snprintf(disp, sizeof disp, "no adapter: waiting");
        } else {
            snprintf(disp, sizeof disp, "running");
        }
        sb_printf(out,
                  "%-10s %6zu %6zu %6zu %6zu %6zu %9s %6llu %6.1f %6llu "
                  "%6.1f  %s\n",
                  config_agency_name(a), qi->depth, qi->in_flight, qi->ready,
                  qi->backoff, qi->waiting, age, (unsigned long long)qi->in_1m,
                  (double)qi->in_5m / 5.0, (unsigned long long)qi->out_1m,
                  (double)qi->out_5m / 5.0, disp);
    }
    if (r->json) {
        jset(root, "queues", arr, &ok);
        json_out(out, root, &ok);
        if (!ok)
            out->failed = true;
    } else {
        sb_printf(out, "\ndepth: not yet delivered (in flight included); "
                       "retry: waiting out a back-off; behind: held behind "
                       "the same patient's earlier event\n");
    }
    return H_OK;
}

/* --------------------------------------------------------- dead letters */

typedef struct dead_row {
    uint64_t seq, event_seq, dead_ms;
    uint32_t attempts;
    char event_id[40];
    char agency[16];
    char dest[CONFIG_CODE_MAX];
    char reason[400];
    char patient[40];
    char view[24];
} dead_row;

typedef struct dead_set {
    const char *only; /* event id, or NULL for all */
    size_t limit;
    dead_row *v;
    size_t n, cap, total;
} dead_set;

static hov_err
collect_dead(void *arg, uint64_t seq, const Handover__Store__DeadLetter *d,
             hov_error *err)
{
    dead_set *ds = arg;
    if (ds->only && strcmp(ds->only, d->event_id) != 0)
        return HOV_OK;
    ds->total++;
    if (ds->n >= ds->limit)
        return HOV_OK;
    if (ds->n == ds->cap) {
        size_t cap = ds->cap ? ds->cap * 2 : 32;
        dead_row *n = realloc(ds->v, cap * sizeof *n);
        if (n == NULL)
            return hov_fail(err, HOV_ENOMEM, 0, "list dead letters");
        ds->v = n;
        ds->cap = cap;
    }
    dead_row *row = &ds->v[ds->n++];
    memset(row, 0, sizeof *row);
    row->seq = seq;
    row->event_seq = d->event_seq;
    row->dead_ms = d->dead_ms;
    row->attempts = d->attempts;
    hov_strlcpy(row->event_id, sizeof row->event_id, d->event_id);
    hov_strlcpy(row->agency, sizeof row->agency, d->agency);
    hov_strlcpy(row->dest, sizeof row->dest, d->destination);
    hov_strlcpy(row->reason, sizeof row->reason, d->reason);
    hov_strlcpy(row->patient, sizeof row->patient, d->patient);
    hov_strlcpy(row->view, sizeof row->view, d->view);
    return HOV_OK;
}

static json_t *
dead_json(const dead_row *d, uint64_t now, bool *ok)
{
    json_t *o = json_object();
    jset(o, "seq", juint(d->seq), ok);
    jset(o, "event_id", json_string(d->event_id), ok);
    jset(o, "agency", jstr(d->agency), ok);
    jset(o, "destination", jstr(d->dest), ok);
    jset(o, "reason", jstr(d->reason), ok);
    jset(o, "dead_at", jtime(d->dead_ms), ok);
    jset(o, "dead_age_s", jsecs(age_ms(now, d->dead_ms)), ok);
    jset(o, "attempts", juint(d->attempts), ok);
    return o;
}

static int
cmd_dead_list(status *s, req *r, sbuf *out, hov_error *err)
{
    store_txn *txn;
    dead_set ds = {NULL, STATUS_LIST_MAX, NULL, 0, 0, 0};
    if (store_begin(s->hub.st, true, &txn, err) != HOV_OK)
        return H_ERROR;
    hov_err e = store_dead_scan(txn, collect_dead, &ds, err);
    store_abort(txn);
    if (e != HOV_OK) {
        free(ds.v);
        return H_ERROR;
    }
    uint64_t now = hov_now_ms();
    if (r->json) {
        bool ok = true;
        json_t *root = json_object(), *arr = json_array();
        for (size_t i = 0; i < ds.n; i++)
            japp(arr, dead_json(&ds.v[i], now, &ok), &ok);
        jset(root, "total", juint(ds.total), &ok);
        jset(root, "truncated", json_boolean(ds.n < ds.total), &ok);
        jset(root, "dead_letters", arr, &ok);
        json_out(out, root, &ok);
        if (!ok)
            out->failed = true;
    } else if (ds.total == 0) {
        sb_printf(out, "no dead letters\n");
    } else {
        sb_printf(out, "%zu dead letter%s, oldest first%s\n", ds.total,
                  ds.total == 1 ? "" : "s",
                  ds.n < ds.total ? " (the first ones only)" : "");
        sb_printf(out, "%-36s %-14s %-9s %4s %-20s %s\n", "event id",
                  "destination", "agency", "try", "dead since", "reason");
        for (size_t i = 0; i < ds.n; i++) {
            const dead_row *d = &ds.v[i];
            char t[32], why[200], dest[CONFIG_CODE_MAX];
            fmt_time(d->dead_ms, t);
            echo(why, sizeof why, d->reason);
            echo(dest, sizeof dest, d->dest);
            sb_printf(out, "%-36s %-14s %-9s %4u %-20s %s\n", d->event_id, dest,
                      d->agency, d->attempts, t, why);
        }
        sb_printf(out,
                  "\nshow one: handover-ctl dead-letters show EVENT_ID\n"
                  "redrive:  handover-ctl dead-letters redrive EVENT_ID|all "
                  "--operator NAME\n");
    }
    free(ds.v);
    return H_OK;
}

static const char *
delivery_state_name(Handover__Store__Delivery__State st)
{
    switch (st) {
    case HANDOVER__STORE__DELIVERY__STATE__ROUTED:
        return "queued";
    case HANDOVER__STORE__DELIVERY__STATE__DELIVERED:
        return "delivered";
    case HANDOVER__STORE__DELIVERY__STATE__REJECTED:
        return "rejected";
    case HANDOVER__STORE__DELIVERY__STATE__DEAD:
        return "dead";
    default:
        return "unknown";
    }
}

typedef struct show_ctx {
    json_t *arr;
    sbuf *out;
    bool json;
    bool *ok;
} show_ctx;

static hov_err
show_delivery(void *arg, const char *dest, const Handover__Store__Delivery *d,
              hov_error *err)
{
    (void)err;
    show_ctx *c = arg;
    if (c->json) {
        json_t *o = json_object();
        jset(o, "destination", jstr(dest), c->ok);
        jset(o, "agency", jstr(d->agency), c->ok);
        jset(o, "state", json_string(delivery_state_name(d->state)), c->ok);
        jset(o, "attempts", juint(d->attempts), c->ok);
        jset(o, "changed_at", jtime(d->changed_ms), c->ok);
        japp(c->arr, o, c->ok);
    } else {
        char t[32], ds[CONFIG_CODE_MAX];
        fmt_time(d->changed_ms, t);
        echo(ds, sizeof ds, dest);
        sb_printf(c->out, "  %-14s %-9s %-10s attempts %-3u since %s\n", ds,
                  d->agency, delivery_state_name(d->state), d->attempts, t);
    }
    return HOV_OK;
}

static int
cmd_dead_show(status *s, const req *r, const char *id, sbuf *out,
              hov_error *err)
{
    if (!hov_uuid_valid(id))
        return refuse(err, HOV_EINVAL, "'%.40s' is not an event id (a UUID)",
                      id);
    store_txn *txn;
    dead_set ds = {id, STATUS_LIST_MAX, NULL, 0, 0, 0};
    if (store_begin(s->hub.st, true, &txn, err) != HOV_OK)
        return H_ERROR;
    hov_err e = store_dead_scan(txn, collect_dead, &ds, err);
    if (e == HOV_OK && ds.total == 0)
        e = hov_fail(err, HOV_ENOTFOUND, 0,
                     "no dead letter for event %s (handover-ctl dead-letters "
                     "lists them)",
                     id);
    uint64_t seq = 0;
    uint8_t digest[STORE_DIGEST_BYTES];
    Handover__Event *ev = NULL;
    if (e == HOV_OK) {
        const uint8_t *bytes;
        size_t len;
        hov_err f = store_event_find(txn, id, &seq, digest, err);
        if (f == HOV_OK)
            f = store_event_read(txn, seq, &bytes, &len, err);
        if (f == HOV_OK)
            ev = handover__event__unpack(NULL, len, bytes);
        else if (f != HOV_ENOTFOUND)
            e = f;
    }
    bool ok = true;
    uint64_t now = hov_now_ms();
    json_t *root = NULL, *deliv = NULL;
    const char *type = ev && ev->event_type ? ev->event_type : "?";
    const char *src =
        ev && ev->source && ev->source->org && ev->source->org->code
            ? ev->source->org->code
            : "?";
    const char *nhs = ev && ev->patient && ev->patient->nhs_number
                          ? ev->patient->nhs_number
                          : "";
    if (e == HOV_OK && r->json) {
        root = json_object();
        json_t *arr = json_array();
        for (size_t i = 0; i < ds.n; i++)
            japp(arr, dead_json(&ds.v[i], now, &ok), &ok);
        jset(root, "event_id", json_string(id), &ok);
        jset(root, "dead_letters", arr, &ok);
        if (ev) {
            json_t *o = json_object();
            jset(o, "event_type", jstr(type), &ok);
            jset(o, "source", jstr(src), &ok);
            jset(o, "source_agency", jstr(ev->source ? ev->source->agency : ""),
                 &ok);
            jset(o, "priority", jstr(ev->priority), &ok);
            jset(o, "occurred_at", jstr(ev->occurred_at), &ok);
            jset(o, "received_at", jstr(ev->received_at), &ok);
            jset(o, "correlation_id", jstr(ev->correlation_id), &ok);
            jset(o, "nhs_number", jstr(nhs), &ok);
            jset(root, "event", o, &ok);
        }
        deliv = json_array();
    } else if (e == HOV_OK) {
        sb_printf(out, "event %s", id);
        if (ev)
            sb_printf(out,
                      ": %s from %s, received %s, priority %s, NHS "
                      "number %s\n  correlation %s\n",
                      type, src, ev->received_at ? ev->received_at : "?",
                      ev->priority && ev->priority[0] ? ev->priority : "-",
                      nhs[0] ? nhs : "-",
                      ev->correlation_id ? ev->correlation_id : "-");
        else
            sb_printf(out, " (the event itself is not in the store)\n");
        sb_printf(out, "\ndead letter%s:\n", ds.n == 1 ? "" : "s");
        for (size_t i = 0; i < ds.n; i++) {
            const dead_row *d = &ds.v[i];
            char t[32], age[32], why[400], dest[CONFIG_CODE_MAX];
            fmt_time(d->dead_ms, t);
            fmt_age(age_ms(now, d->dead_ms), age, sizeof age);
            echo(why, sizeof why, d->reason);
            echo(dest, sizeof dest, d->dest);
            sb_printf(out,
                      "  to %s (%s), view %s, after %u attempt%s, dead since "
                      "%s (%s ago)\n  reason: %s\n",
                      dest, d->agency, d->view[0] ? d->view : "-", d->attempts,
                      d->attempts == 1 ? "" : "s", t, age, why);
        }
        sb_printf(out, "\nlifecycle:\n");
    }
    if (e == HOV_OK && ev) {
        show_ctx c = {deliv, out, r->json, &ok};
        e = store_delivery_scan(txn, seq, show_delivery, &c, err);
    }
    store_abort(txn);
    if (ev)
        handover__event__free_unpacked(ev, NULL);
    free(ds.v);
    if (e != HOV_OK) {
        json_decref(root);
        json_decref(deliv);
        return H_ERROR;
    }
    if (r->json) {
        jset(root, "deliveries", deliv, &ok);
        json_out(out, root, &ok);
        if (!ok)
            out->failed = true;
    } else {
        sb_printf(out,
                  "\nredrive: handover-ctl dead-letters redrive %s "
                  "--operator NAME\n",
                  id);
    }
    return H_OK;
}

/* --------------------------------------------------------------- redrive */

typedef struct redriven {
    dead_row d;
    config_agency agency;
    char view[24];
    uint64_t queue_seq;
    const char *refused; /* why not, or NULL */
} redriven;

static bool
looks_like_nhs(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++)
        if (s[n] < '0' || s[n] > '9')
            return false;
    return n == 10;
}

/* One event going back into a destination's queue: a redrive from dead
 * letters or a replay of a delivery that was settled. */
typedef struct requeue {
    uint64_t event_seq;
    const char *event_id, *dest, *patient; /* patient: NHS number or "" */
    uint32_t attempts;                     /* the history, kept */
    config_agency agency;
    const char *view;
    uint64_t queue_seq; /* set by requeue_stage */
} requeue;

/* Stage q in txn: a fresh queue entry and the lifecycle back to routed.
 * The caller adds the audit record and what else the action changes. */
static hov_err
requeue_stage(store_txn *txn, requeue *q, uint64_t now, hov_error *err)
{
    q->queue_seq = store_queue_next_seq(txn, q->agency);
    Handover__Store__QueueEntry qe = HANDOVER__STORE__QUEUE_ENTRY__INIT;
    qe.event_id = (char *)q->event_id;
    qe.destination = (char *)q->dest;
    qe.patient = (char *)(q->patient[0] ? q->patient : q->event_id);
    qe.enqueued_ms = now;
    qe.view = (char *)q->view;
    qe.event_seq = q->event_seq;
    Handover__Store__Delivery dv = HANDOVER__STORE__DELIVERY__INIT;
    dv.state = HANDOVER__STORE__DELIVERY__STATE__ROUTED;
    dv.agency = (char *)config_agency_name(q->agency);
    dv.queue_seq = q->queue_seq;
    dv.changed_ms = now;
    dv.attempts = q->attempts;
    hov_err e = store_queue_put(txn, q->agency, q->queue_seq, &qe, err);
    if (e == HOV_OK)
        e = store_delivery_put(txn, q->event_seq, q->dest, &dv, err);
    return e;
}

/* After the commit: the delivery joins its queue in memory. Staged and
 * committed, it is safe whatever happens here: a restart loads it. */
static bool
requeue_apply(status *s, const requeue *q, uint64_t now, const char *action)
{
    queue_item *it = queue_item_new();
    hov_error err = {0};
    if (it == NULL) {
        hov_errorf("%s event=%s dest=%s: out of memory (it is queued in the "
                   "store and goes out after a restart)",
                   action, q->event_id, q->dest);
        return false;
    }
    it->seq = q->queue_seq;
    it->event_seq = q->event_seq;
    it->enqueued_ms = now;
    hov_strlcpy(it->event_id, sizeof it->event_id, q->event_id);
    hov_strlcpy(it->dest, sizeof it->dest, q->dest);
    hov_strlcpy(it->view, sizeof it->view, q->view);
    const char *patient = q->patient[0] ? q->patient : q->event_id;
    if (queue_add(&s->hub.queues[q->agency], it, patient, now, &err) !=
        HOV_OK) {
        hov_errorf("%s event=%s dest=%s: %s (it is queued in the store and "
                   "goes out after a restart)",
                   action, q->event_id, q->dest, err.msg);
        queue_item_free(it);
        return false;
    }
    rate_add(&s->in[q->agency]);
    return true;
}

static void
redrive_requeue(const redriven *rd, requeue *q)
{
    const dead_row *d = &rd->d;
    *q = (requeue){.event_seq = d->event_seq,
                   .event_id = d->event_id,
                   .dest = d->dest,
                   .patient = d->patient,
                   .attempts = d->attempts,
                   .agency = rd->agency,
                   .view = rd->view,
                   .queue_seq = rd->queue_seq};
}

/* Stage one redrive in txn: requeued (attempts start again, the history
 * kept), the dead letter removed, and the audit record naming the
 * operator. */
static hov_err
redrive_one(store_txn *txn, redriven *rd, const char *actor, const char *note,
            uint64_t now, hov_error *err)
{
    const dead_row *d = &rd->d;
    requeue q;
    redrive_requeue(rd, &q);
    char detail[600];
    snprintf(detail, sizeof detail,
             "redriven from dead letters to %s (%s) after %u attempt%s; it "
             "was dead because: %.300s (%s)",
             d->dest, config_agency_name(rd->agency), d->attempts,
             d->attempts == 1 ? "" : "s", d->reason, note);
    hov_err e = requeue_stage(txn, &q, now, err);
    rd->queue_seq = q.queue_seq;
    if (e == HOV_OK)
        e = store_dead_del(txn, d->seq, err);
    if (e == HOV_OK)
        e = overdue_on_dead(txn, d->event_seq, d->dest, rd->agency, false, err);
    if (e != HOV_OK)
        return e == HOV_ENOTFOUND
                   ? hov_fail(err, HOV_ESTATE, 0,
                              "dead letter %llu of event %s vanished "
                              "during the redrive",
                              (unsigned long long)d->seq, d->event_id)
                   : e;
    return audit_log(txn, now, d->event_id,
                     looks_like_nhs(d->patient) ? d->patient : "", actor,
                     AUDIT_REDRIVEN, detail, err);
}

/* After the commit: the deliveries join their queues in memory. */
static void
redrive_apply(status *s, redriven *rd, uint64_t now)
{
    requeue q;
    redrive_requeue(rd, &q);
    (void)requeue_apply(s, &q, now, "redrive");
}

static int
cmd_redrive(status *s, const req *r, const char *target, sbuf *out,
            hov_error *err)
{
    if (need_operator(r, "redrive", err) != HOV_OK)
        return H_ERROR;
    bool all = target && strcmp(target, "all") == 0;
    if (!all && (target == NULL || !hov_uuid_valid(target)))
        return refuse(err, HOV_EINVAL,
                      "redrive wants an event id or 'all', not '%.40s'",
                      target ? target : "");
    store_txn *txn;
    if (store_begin(s->hub.st, false, &txn, err) != HOV_OK)
        return H_ERROR;
    /* Every dead letter asked for, in one transaction with the redrive. */
    dead_set ds = {all ? NULL : target, SIZE_MAX, NULL, 0, 0, 0};
    hov_err e = store_dead_scan(txn, collect_dead, &ds, err);
    if (e == HOV_OK && ds.total == 0 && all)
        e = hov_fail(err, HOV_ENOTFOUND, 0,
                     "there are no dead letters to redrive");
    else if (e == HOV_OK && ds.total == 0)
        e = hov_fail(err, HOV_ENOTFOUND, 0,
                     "no dead letter for event %s (handover-ctl dead-letters "
                     "lists them)",
                     target);
    redriven *rd = NULL;
    if (e == HOV_OK && (rd = calloc(ds.n, sizeof *rd)) == NULL)
        e = hov_fail(err, HOV_ENOMEM, 0, "redrive %zu dead letters", ds.n);
    char actor[80], note[96];
    snprintf(actor, sizeof actor, "operator:%s", r->operator);
    peer_note(r, note, sizeof note);
    uint64_t now = hov_now_ms();
    size_t n_ok = 0;
    for (size_t i = 0; e == HOV_OK && i < ds.n; i++) {
        rd[i].d = ds.v[i];
        const config_org *org = config_org_find(s->hub.cfg, ds.v[i].dest);
        if (org == NULL) {
            /* Sent again it would fail the same way, or reach an adapter
             * that has no endpoint for it. */
            rd[i].refused = strcmp(ds.v[i].dest, ROUTE_TO_REGISTERED_GP) == 0
                                ? "the patient has no registered GP "
                                  "practice: there is nobody to send it to"
                                : "the destination is not a configured "
                                  "organisation: add it to the "
                                  "configuration, restart the hub, then "
                                  "redrive";
            continue;
        }
        rd[i].agency = org->agency;
        hov_strlcpy(rd[i].view, sizeof rd[i].view, route_view_of(org));
        e = redrive_one(txn, &rd[i], actor, note, now, err);
        n_ok++;
    }
    if (e == HOV_OK && n_ok == 0) {
        char dest[CONFIG_CODE_MAX];
        echo(dest, sizeof dest, rd[0].d.dest);
        e = hov_fail(err, HOV_EINVAL, 0, "nothing redriven: destination %s: %s",
                     dest, rd[0].refused);
        store_abort(txn);
    } else if (e == HOV_OK) {
        e = store_commit(txn, err);
    } else {
        store_abort(txn);
    }
    if (e != HOV_OK) {
        free(rd);
        free(ds.v);
        return H_ERROR;
    }
    for (size_t i = 0; i < ds.n; i++) {
        if (rd[i].refused)
            continue;
        redrive_apply(s, &rd[i], now);
        hov_info("redriven event=%s dest=%s agency=%s operator=%s (%s)",
                 rd[i].d.event_id, rd[i].d.dest,
                 config_agency_name(rd[i].agency), r->operator, note);
    }
    bool ok = true;
    if (r->json) {
        json_t *root = json_object(), *done = json_array(),
               *refused = json_array();
        for (size_t i = 0; i < ds.n; i++) {
            json_t *o = json_object();
            jset(o, "event_id", json_string(rd[i].d.event_id), &ok);
            jset(o, "destination", jstr(rd[i].d.dest), &ok);
            if (rd[i].refused) {
                jset(o, "reason", json_string(rd[i].refused), &ok);
                japp(refused, o, &ok);
            } else {
                jset(o, "agency", json_string(config_agency_name(rd[i].agency)),
                     &ok);
                japp(done, o, &ok);
            }
        }
        jset(root, "operator", json_string(r->operator), &ok);
        jset(root, "redriven", done, &ok);
        jset(root, "refused", refused, &ok);
        json_out(out, root, &ok);
    } else {
        sb_printf(out, "redriven by operator %s: %zu of %zu dead letter%s\n",
                  r->operator, n_ok, ds.n, ds.n == 1 ? "" : "s");
        for (size_t i = 0; i < ds.n; i++) {
            char dest[CONFIG_CODE_MAX];
            echo(dest, sizeof dest, rd[i].d.dest);
            if (rd[i].refused)
                sb_printf(out, "  not redriven %s to %s: %s\n",
                          rd[i].d.event_id, dest, rd[i].refused);
            else
                sb_printf(out, "  queued again %s to %s (%s)\n",
                          rd[i].d.event_id, dest,
                          config_agency_name(rd[i].agency));
        }
    }
    if (!ok)
        out->failed = true;
    free(rd);
    free(ds.v);
    return H_OK;
}

/* ---------------------------------------------------------------- replay */

/* replay EVENT_ID DEST --operator NAME sends an event again to a recipient
 * that routing chose for it and that took it (delivered): for a partner
 * that lost what it received (a restore from backup, a fault on their
 * side). The delivery carries the same event id, which every adapter gives
 * its partner as the idempotency key (FHIR conditional create, webhook
 * Idempotency-Key, the outbox file name, the HL7 control id), so a partner
 * that still has the event keeps one copy. Never to a destination routing
 * did not choose: that would share a patient's record with somebody the
 * rules did not allow (handover-audit what-if shows where other rules
 * would have sent it). */
static int
cmd_replay(status *s, req *r, sbuf *out, hov_error *err)
{
    if (need_operator(r, "replay", err) != HOV_OK)
        return H_ERROR;
    const char *id = r->argv[1], *dest = r->argv[2];
    char shown[CONFIG_CODE_MAX];
    echo(shown, sizeof shown, dest);
    if (!hov_uuid_valid(id)) {
        char e[48];
        echo(e, sizeof e, id);
        return refuse(err, HOV_EINVAL, "replay wants an event id, not '%s'", e);
    }
    const config_org *org = config_org_find(s->hub.cfg, dest);
    if (org == NULL)
        return refuse(err, HOV_EUNKNOWNDEST,
                      "replay: %s is not a configured organisation", shown);
    store_txn *txn;
    if (store_begin(s->hub.st, false, &txn, err) != HOV_OK)
        return H_ERROR;
    uint64_t seq = 0;
    uint8_t dg[STORE_DIGEST_BYTES];
    Handover__Store__Delivery *dv = NULL;
    Handover__Event *ev = NULL;
    const char *why = NULL;
    hov_err e = store_event_find(txn, id, &seq, dg, err);
    if (e == HOV_ENOTFOUND)
        why = "no such event in the store (a refused event is never "
              "stored; handover-audit trace shows why it was refused)";
    if (e == HOV_OK) {
        e = store_delivery_get(txn, seq, dest, &dv, err);
        if (e == HOV_ENOTFOUND)
            why = "the event was never routed there: replay sends again "
                  "only to a recipient its routing chose";
    }
    if (e == HOV_OK && dv->state == HANDOVER__STORE__DELIVERY__STATE__ROUTED)
        why = "it is still queued or in flight there: it will be "
              "delivered, there is nothing to replay";
    else if (e == HOV_OK &&
             dv->state != HANDOVER__STORE__DELIVERY__STATE__DELIVERED)
        why = "it is a dead letter there: redrive it (handover-ctl "
              "dead-letters redrive EVENT_ID)";
    const uint8_t *data = NULL;
    size_t len = 0;
    if (e == HOV_OK && why == NULL &&
        (e = store_event_read(txn, seq, &data, &len, err)) == HOV_OK &&
        (ev = handover__event__unpack(NULL, len, data)) == NULL)
        e = hov_fail(err, HOV_ESTORE, 0,
                     "replay: the stored event %s does not decode "
                     "(handover-audit verify checks the store)",
                     id);
    if (e != HOV_OK || why != NULL) {
        store_abort(txn);
        if (dv)
            handover__store__delivery__free_unpacked(dv, NULL);
        if (why != NULL)
            return refuse(err, e == HOV_ENOTFOUND ? HOV_ENOTFOUND : HOV_ESTATE,
                          "not replayed: event %s to %s: %s", id, shown, why);
        return H_ERROR;
    }
    const char *nhs = ev->patient && looks_like_nhs(ev->patient->nhs_number)
                          ? ev->patient->nhs_number
                          : "";
    uint64_t now = hov_now_ms();
    requeue q = {.event_seq = seq,
                 .event_id = id,
                 .dest = org->code,
                 .patient = nhs,
                 .attempts = dv->attempts,
                 .agency = org->agency,
                 .view = route_view_of(org)};
    char actor[80], note[96], when[32], detail[600];
    snprintf(actor, sizeof actor, "operator:%s", r->operator);
    peer_note(r, note, sizeof note);
    fmt_time(dv->changed_ms, when);
    snprintf(detail, sizeof detail,
             "replayed to %s (%s): it was delivered there at %s after %u "
             "attempt%s; the partner keeps one copy by its idempotency key, "
             "the event id (%s)",
             org->code, config_agency_name(org->agency), when, dv->attempts,
             dv->attempts == 1 ? "" : "s", note);
    e = requeue_stage(txn, &q, now, err);
    if (e == HOV_OK)
        e = audit_log(txn, now, id, nhs, actor, AUDIT_REPLAYED, detail, err);
    if (e == HOV_OK)
        e = store_commit(txn, err);
    else
        store_abort(txn);
    handover__store__delivery__free_unpacked(dv, NULL);
    if (e != HOV_OK) {
        handover__event__free_unpacked(ev, NULL);
        return H_ERROR;
    }
    requeue_apply(s, &q, now, "replay");
    hov_info("replayed event=%s dest=%s agency=%s operator=%s (%s)", id,
             org->code, config_agency_name(org->agency), r->operator, note);
    handover__event__free_unpacked(ev, NULL);
    if (r->json) {
        bool ok = true;
        json_t *root = json_object();
        jset(root, "replayed", json_true(), &ok);
        jset(root, "event_id", json_string(id), &ok);
        jset(root, "destination", json_string(org->code), &ok);
        jset(root, "agency", json_string(config_agency_name(org->agency)), &ok);
        jset(root, "operator", json_string(r->operator), &ok);
        jset(root, "delivered_before", json_string(when), &ok);
        json_out(out, root, &ok);
        if (!ok)
            out->failed = true;
    } else {
        sb_printf(out,
                  "replayed by operator %s: event %s queued again to %s "
                  "(%s); it was delivered there at %s\n",
                  r->operator, id, org->code, config_agency_name(org->agency),
                  when);
    }
    return H_OK;
}

/* ---------------------------------------------------------- pause/resume */

static int
cmd_pause(status *s, const req *r, bool pause, sbuf *out, hov_error *err)
{
    const char *verb = pause ? "pause" : "resume";
    if (need_operator(r, verb, err) != HOV_OK)
        return H_ERROR;
    int a = parse_agency(r->argc > 1 ? r->argv[1] : NULL, err);
    if (a < 0)
        return H_ERROR;
    const char *name = config_agency_name((config_agency)a);
    queue *q = &s->hub.queues[a];
    pause_info *p = &s->pause[a];
    bool changed = q->paused != pause;
    uint64_t now = hov_now_ms();
    if (changed) {
        char key[32], note[96], actor[80], detail[300];
        pause_key(key, sizeof key, (unsigned)a);
        peer_note(r, note, sizeof note);
        snprintf(actor, sizeof actor, "operator:%s", r->operator);
        if (pause)
            snprintf(detail, sizeof detail,
                     "dispatch to %s paused: events are still accepted and "
                     "queued (%s)",
                     name, note);
        else
            snprintf(detail, sizeof detail,
                     "dispatch to %s resumed; it had been paused by %s (%s)",
                     name, p->operator, note);
        Handover__Store__Pause rec = HANDOVER__STORE__PAUSE__INIT;
        rec.operator_ = (char *)r->operator;
        rec.since_ms = now;
        uint8_t buf[160];
        size_t len = handover__store__pause__get_packed_size(&rec);
        store_txn *txn;
        hov_err e = len <= sizeof buf
                        ? store_begin(s->hub.st, false, &txn, err)
                        : hov_fail(err, HOV_EINVAL, 0, "pause record too big");
        if (e == HOV_OK) {
            handover__store__pause__pack(&rec, buf);
            e = pause ? store_meta_put(txn, key, buf, len, err)
                      : store_meta_del(txn, key, err);
            if (e == HOV_ENOTFOUND)
                e = HOV_OK;
            if (e == HOV_OK)
                e = audit_log(txn, now, "", "", actor,
                              pause ? AUDIT_PAUSED : AUDIT_RESUMED, detail,
                              err);
            if (e == HOV_OK)
                e = store_commit(txn, err);
            else
                store_abort(txn);
        }
        if (e != HOV_OK) {
            return H_ERROR;
        }
        /* Only now, with the change durable: dispatch reads this flag. */
        q->paused = pause;
        if (pause) {
            hov_strlcpy(p->operator, sizeof p->operator, r->operator);
            p->since_ms = now;
        } else {
            memset(p, 0, sizeof *p);
        }
        hov_warn("dispatch to %s %s by operator %s (%s)", name,
                 pause ? "paused" : "resumed", r->operator, note);
    }
    if (r->json) {
        bool ok = true;
        json_t *root = json_object();
        jset(root, "agency", json_string(name), &ok);
        jset(root, "paused", json_boolean(q->paused), &ok);
        jset(root, "changed", json_boolean(changed), &ok);
        jset(root, "paused_by", q->paused ? jstr(p->operator) : json_null(),
             &ok);
        jset(root, "paused_since", q->paused ? jtime(p->since_ms) : json_null(),
             &ok);
        jset(root, "depth", juint(q->depth), &ok);
        json_out(out, root, &ok);
        if (!ok)
            out->failed = true;
    } else if (changed) {
        sb_printf(out,
                  pause ? "dispatch to %s paused by operator %s: events are "
                          "still accepted and queued (%zu held now)\n"
                        : "dispatch to %s resumed by operator %s (%zu "
                          "queued)\n",
                  name, r->operator, q->depth);
    } else {
        char t[32];
        fmt_time(p->since_ms, t);
        if (q->paused)
            sb_printf(out,
                      "dispatch to %s was already paused (by %s since "
                      "%s): nothing changed\n",
                      name, p->operator, t);
        else
            sb_printf(out, "dispatch to %s was not paused: nothing changed\n",
                      name);
    }
    return H_OK;
}

/* ----------------------------------------------------------- audit-read */

/* What handover-audit read, for the audit log. */
static const struct read_kind {
    const char *kind;
    const char *says; /* "trace of event %s" */
} read_kinds[] = {
    {"trace-event", "trace of event %s"},
    {"trace-correlation", "trace of correlation %s"},
    {"trace-nhs", "trace of NHS number %s"},
    {"export", "export of %s"},
    {"what-if", "what-if of %s"},
};

/* handover-audit asks the hub to record a read (trace, export), because
 * the hub holds the audit chain's head in memory: a record appended by
 * another process would be overwritten by the hub's next append and the
 * chain would fork. The auditor's name is asserted; the peer's uid and pid
 * are what the kernel says. */
static int
cmd_audit_read(status *s, req *r, sbuf *out, hov_error *err)
{
    if (need_operator(r, "audit-read", err) != HOV_OK)
        return H_ERROR;
    const struct read_kind *k = NULL;
    for (size_t i = 0; i < sizeof read_kinds / sizeof read_kinds[0]; i++)
        if (strcmp(read_kinds[i].kind, r->argv[1]) == 0)
            k = &read_kinds[i];
    if (k == NULL)
        return refuse(err, HOV_EINVAL,
                      "audit-read: the kind is trace-event, "
                      "trace-correlation, trace-nhs, export or what-if");
    const char *subject = r->argv[2];
    const char *nhs = r->argc > 3 ? r->argv[3] : "";
    if (strlen(subject) > 80 || (nhs[0] && !looks_like_nhs(nhs)))
        return refuse(err, HOV_EINVAL,
                      "audit-read: the subject is at most 80 characters "
                      "and the NHS number 10 digits");
    char actor[80], note[96], what[120], detail[300];
    snprintf(actor, sizeof actor, "auditor:%s", r->operator);
    peer_note(r, note, sizeof note);
    snprintf(what, sizeof what, k->says, subject);
    snprintf(detail, sizeof detail, "read by handover-audit: %s (%s)", what,
             note);
    const char *event_id = strcmp(k->kind, "trace-event") == 0 ? subject : "";
    if (strcmp(k->kind, "trace-nhs") == 0 && looks_like_nhs(subject))
        nhs = subject;
    uint64_t now = hov_now_ms();
    store_txn *txn;
    hov_err e = store_begin(s->hub.st, false, &txn, err);
    if (e != HOV_OK)
        return H_ERROR;
    e = audit_log(txn, now, event_id, nhs, actor, AUDIT_READ, detail, err);
    if (e == HOV_OK)
        e = store_commit(txn, err);
    else
        store_abort(txn);
    if (e != HOV_OK)
        return H_ERROR;
    hov_info("audit read recorded: %s by %s (%s)", what, actor, note);
    if (r->json) {
        bool ok = true;
        json_t *root = json_object();
        jset(root, "recorded", json_true(), &ok);
        jset(root, "actor", json_string(actor), &ok);
        jset(root, "detail", jstr(detail), &ok);
        json_out(out, root, &ok);
        if (!ok)
            out->failed = true;
    } else {
        sb_printf(out, "recorded: %s by %s\n", what, actor);
    }
    return H_OK;
}

/* -------------------------------------------------------------- overdue */

static int
cmd_overdue(status *s, req *r, sbuf *out, hov_error *err)
{
    uint64_t now = hov_now_ms();
    overdue_item *v = malloc(STATUS_LIST_MAX * sizeof *v);
    size_t n = 0, total = 0;
    if (v == NULL)
        return refuse(err, HOV_ENOMEM, "list overdue outcomes: out of memory");
    /* Where each one is in its delivery: an outcome is often late because
     * the request never reached the partner. */
    store_txn *txn = NULL;
    if (store_begin(s->hub.st, true, &txn, err) != HOV_OK) {
        free(v);
        return H_ERROR;
    }
    if (overdue_list(txn, now, v, STATUS_LIST_MAX, &n, &total, err) != HOV_OK) {
        store_abort(txn);
        free(v);
        return H_ERROR;
    }
    bool ok = true;
    json_t *root = NULL, *arr = NULL;
    if (r->json) {
        root = json_object();
        arr = json_array();
    } else {
        sb_printf(out, "%zu overdue outcome%s, oldest first\n", total,
                  total == 1 ? "" : "s");
        if (n > 0)
            sb_printf(out, "%-36s %-15s %-15s %-14s %-9s %-20s %10s  %s\n",
                      "event id", "type", "priority", "receiver", "agency",
                      "due", "late by", "delivery");
    }
    for (size_t i = 0; i < n; i++) {
        const overdue_item *it = &v[i];
        const char *state = "unknown";
        hov_error lerr = {0};
        Handover__Store__Delivery *d = NULL;
        if (store_delivery_get(txn, it->event_seq, it->dest, &d, &lerr) ==
            HOV_OK) {
            state = delivery_state_name(d->state);
            if (d->state == HANDOVER__STORE__DELIVERY__STATE__ROUTED &&
                d->attempts > 0)
                state = "sent, not settled";
        }
        if (d)
            handover__store__delivery__free_unpacked(d, NULL);
        if (r->json) {
            json_t *o = json_object();
            jset(o, "event_id", json_string(it->event_id), &ok);
            jset(o, "event_type", json_string(it->event_type), &ok);
            jset(o, "priority", jstr(it->priority), &ok);
            jset(o, "receiver", jstr(it->dest), &ok);
            jset(o, "agency", json_string(config_agency_name(it->agency)), &ok);
            jset(o, "due_at", jtime(it->due_ms), &ok);
            jset(o, "overdue_s", jsecs(age_ms(now, it->due_ms)), &ok);
            jset(o, "delivery", json_string(state), &ok);
            japp(arr, o, &ok);
        } else {
            char t[32], late[32], dest[CONFIG_CODE_MAX];
            fmt_time(it->due_ms, t);
            fmt_age(age_ms(now, it->due_ms), late, sizeof late);
            echo(dest, sizeof dest, it->dest);
            sb_printf(out, "%-36s %-15s %-15s %-14s %-9s %-20s %10s  %s\n",
                      it->event_id, it->event_type,
                      it->priority[0] ? it->priority : "-", dest,
                      config_agency_name(it->agency), t, late, state);
        }
    }
    size_t waiting = overdue_waiting(txn);
    store_abort(txn);
    free(v);
    if (r->json) {
        jset(root, "count", juint(total), &ok);
        jset(root, "truncated", json_boolean(n < total), &ok);
        jset(root, "waiting_for_outcomes", juint(waiting), &ok);
        jset(root, "overdue", arr, &ok);
        json_out(out, root, &ok);
        if (!ok)
            out->failed = true;
    } else if (n < total) {
        sb_printf(out, "(%zu more not shown)\n", total - n);
    }
    return H_OK;
}

/* -------------------------------------------------------------- metrics */

static void
metric(sbuf *out, const char *name, const char *type, const char *help)
{
    sb_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static int
cmd_metrics(status *s, req *r, sbuf *out, hov_error *err)
{
    (void)r;
    (void)err;
    snap sn;
    snap_take(s, &sn);
    const char *ag[AGENCY_COUNT];
    for (unsigned a = 0; a < AGENCY_COUNT; a++)
        ag[a] = config_agency_name(a);
    metric(out, "handover_health", "gauge",
           "Overall health: 0 ok, 1 warning, 2 critical.");
    sb_printf(out, "handover_health %d\n", sn.level);
    metric(out, "handover_uptime_seconds", "gauge",
           "Seconds since the hub started.");
    sb_printf(out, "handover_uptime_seconds %.3f\n",
              (double)(sn.mono - s->started_mono) / 1000.0);
    metric(out, "handover_store_used_bytes", "gauge",
           "Bytes of the LMDB map in use (free pages excluded).");
    sb_printf(out, "handover_store_used_bytes %zu\n", sn.used);
    metric(out, "handover_store_map_bytes", "gauge",
           "LMDB map size: the most the store may grow to.");
    sb_printf(out, "handover_store_map_bytes %zu\n", sn.map);
    metric(out, "handover_store_near_full", "gauge",
           "1 while the store refuses new events for lack of room.");
    sb_printf(out, "handover_store_near_full %d\n", sn.near_full ? 1 : 0);
    metric(out, "handover_dead_letters", "gauge",
           "Dead letters waiting for an operator.");
    sb_printf(out, "handover_dead_letters %zu\n", sn.dead);
    metric(out, "handover_overdue_outcomes", "gauge",
           "Receivers whose outcome deadline passed with no outcome.");
    sb_printf(out, "handover_overdue_outcomes %zu\n", sn.overdue);
    struct {
        const char *name, *help;
        uint64_t v;
    } counters[] = {
        {"handover_events_accepted_total", "Events accepted.", sn.cnt.accepted},
        {"handover_events_duplicate_total",
         "Resent events acknowledged as duplicates.", sn.cnt.duplicates},
        {"handover_naks_total", "Frames refused with a Nak.", sn.cnt.naks},
        {"handover_deliveries_delivered_total",
         "Deliveries settled done by the partner.", sn.cnt.delivered},
        {"handover_deliveries_retried_total",
         "Deliveries to be retried (retry settles and timeouts).",
         sn.cnt.retried},
        {"handover_deliveries_dead_total", "Deliveries sent to dead letters.",
         sn.cnt.dead},
    };
    for (size_t i = 0; i < sizeof counters / sizeof counters[0]; i++) {
        metric(out, counters[i].name, "counter", counters[i].help);
        sb_printf(out, "%s %llu\n", counters[i].name,
                  (unsigned long long)counters[i].v);
    }
    struct {
        const char *name, *type, *help;
    } per[] = {
        {"handover_queue_depth", "gauge",
         "Deliveries not yet delivered (in flight included)."},
        {"handover_queue_in_flight", "gauge",
         "Deliveries sent and not yet settled."},
        {"handover_queue_oldest_undelivered_seconds", "gauge",
         "Age of the oldest undelivered delivery (0 when empty)."},
        {"handover_queue_paused", "gauge",
         "1 while an operator has paused dispatch."},
        {"handover_queue_in_total", "counter",
         "Deliveries queued since start."},
        {"handover_queue_out_total", "counter",
         "Deliveries settled done since start."},
        {"handover_adapter_up", "gauge",
         "1 while at least one adapter session of the agency is connected."},
        {"handover_adapter_consumers", "gauge",
         "Connected adapter sessions that consume the agency's queue."},
    };
    for (size_t m = 0; m < sizeof per / sizeof per[0]; m++) {
        metric(out, per[m].name, per[m].type, per[m].help);
        for (unsigned a = 0; a < AGENCY_COUNT; a++) {
            const queue_info *qi = &sn.q[a];
            sb_printf(out, "%s{agency=\"%s\"} ", per[m].name, ag[a]);
            switch (m) {
            case 0:
                sb_printf(out, "%zu\n", qi->depth);
                break;
            case 1:
                sb_printf(out, "%zu\n", qi->in_flight);
                break;
            case 2:
                sb_printf(out, "%.3f\n",
                          qi->oldest_ms
                              ? (double)age_ms(sn.now, qi->oldest_ms) / 1000.0
                              : 0.0);
                break;
            case 3:
                sb_printf(out, "%d\n", s->hub.queues[a].paused ? 1 : 0);
                break;
            case 4:
                sb_printf(out, "%llu\n", (unsigned long long)qi->in_total);
                break;
            case 5:
                sb_printf(out, "%llu\n", (unsigned long long)qi->out_total);
                break;
            case 6:
                sb_printf(out, "%d\n", qi->sessions > 0 ? 1 : 0);
                break;
            default:
                sb_printf(out, "%zu\n", qi->consumers);
                break;
            }
        }
    }
    return H_OK;
}

/* ----------------------------------------------------------------- help */

static const char help_text[] =
    "commands (add --json for JSON):\n"
    "  status                      health, what needs attention first\n"
    "  adapters                    sessions: connected or down, heartbeat, "
    "credit\n"
    "  queues                      depth, in flight, oldest, rates, paused\n"
    "  dead-letters [show ID]      dead letters\n"
    "  redrive ID|all --operator NAME\n"
    "  replay ID DESTINATION --operator NAME  (handover-audit replay)\n"
    "  pause AGENCY --operator NAME\n"
    "  resume AGENCY --operator NAME\n"
    "  audit-read KIND SUBJECT [NHS] --operator NAME  (handover-audit)\n"
    "  overdue                     outcomes past their deadline\n"
    "  metrics                     Prometheus text\n";

static int
cmd_help(status *s, req *r, sbuf *out, hov_error *err)
{
    (void)s;
    (void)err;
    if (r->json) {
        bool ok = true;
        json_t *root = json_object();
        jset(root, "help", json_string(help_text), &ok);
        json_out(out, root, &ok);
        if (!ok)
            out->failed = true;
    } else {
        sb_printf(out, "%s", help_text);
    }
    return H_OK;
}

/* ------------------------------------------------------------- dispatch */

/* The next space-separated word of *p (NUL-terminated in place), or NULL
 * at the end of the line. */
static char *
next_word(char **p)
{
    char *w = *p;
    while (*w == ' ' || *w == '\t')
        w++;
    if (*w == '\0')
        return NULL;
    char *e = w;
    while (*e && *e != ' ' && *e != '\t')
        e++;
    *p = *e ? e + 1 : e;
    *e = '\0';
    return w;
}

/* Split line into r (in place). HOV_EINVAL with a message on bad input. */
static hov_err
parse_line(char *line, req *r, hov_error *err)
{
    for (const char *p = line; *p; p++) {
        unsigned char ch = (unsigned char)*p;
        if ((ch < 0x20 && ch != '\t') || ch >= 0x7f)
            return hov_fail(err, HOV_EINVAL, 0,
                            "the command is not one line of printable "
                            "ASCII");
    }
    char *p = line;
    for (char *w = next_word(&p); w != NULL; w = next_word(&p)) {
        if (strcmp(w, "--json") == 0) {
            r->json = true;
        } else if (strcmp(w, "--operator") == 0) {
            r->operator= next_word(&p);
            if (r->operator== NULL)
                return hov_fail(err, HOV_EMISSING, 0,
                                "--operator wants a name");
        } else if (r->argc == STATUS_ARGS_MAX) {
            return hov_fail(err, HOV_EINVAL, 0, "too many arguments");
        } else {
            r->argv[r->argc++] = w;
        }
    }
    if (r->argc == 0)
        return hov_fail(err, HOV_EINVAL, 0,
                        "empty command: send one line such as 'status' or "
                        "'help'");
    return HOV_OK;
}

static int
cmd_pause_on(status *s, req *r, sbuf *out, hov_error *err)
{
    return cmd_pause(s, r, true, out, err);
}

static int
cmd_resume(status *s, req *r, sbuf *out, hov_error *err)
{
    return cmd_pause(s, r, false, out, err);
}

static int
cmd_redrive_top(status *s, req *r, sbuf *out, hov_error *err)
{
    return cmd_redrive(s, r, r->argv[1], out, err);
}

static int
cmd_dead(status *s, req *r, sbuf *out, hov_error *err)
{
    const char *sub = r->argc > 1 ? r->argv[1] : "list";
    if (strcmp(sub, "list") == 0 && r->argc <= 2)
        return cmd_dead_list(s, r, out, err);
    if (strcmp(sub, "show") == 0 && r->argc == 3)
        return cmd_dead_show(s, r, r->argv[2], out, err);
    if (strcmp(sub, "redrive") == 0 && r->argc == 3)
        return cmd_redrive(s, r, r->argv[2], out, err);
    return refuse(err, HOV_EINVAL,
                  "usage: dead-letters [show EVENT_ID | redrive "
                  "EVENT_ID|all --operator NAME]");
}

typedef int (*cmd_fn)(status *s, req *r, sbuf *out, hov_error *err);

static int
cmd_status_fn(status *s, req *r, sbuf *out, hov_error *err)
{
    return cmd_status(s, r, out, err);
}

static const struct command {
    const char *name;
    size_t min_args, max_args; /* the name included */
    bool write;
    cmd_fn fn;
    const char *usage;
} commands[] = {
    {"status", 1, 1, false, cmd_status_fn, "status"},
    {"adapters", 1, 1, false, cmd_adapters, "adapters"},
    {"queues", 1, 1, false, cmd_queues, "queues"},
    {"overdue", 1, 1, false, cmd_overdue, "overdue"},
    {"metrics", 1, 1, false, cmd_metrics, "metrics"},
    {"help", 1, 1, false, cmd_help, "help"},
    {"dead-letters", 1, 3, false, cmd_dead,
     "dead-letters [show EVENT_ID | redrive EVENT_ID|all --operator NAME]"},
    {"redrive", 2, 2, true, cmd_redrive_top,
     "redrive EVENT_ID|all --operator NAME"},
    {"pause", 2, 2, true, cmd_pause_on,
     "pause gp|nursing|social|voluntary --operator NAME"},
    {"resume", 2, 2, true, cmd_resume,
     "resume gp|nursing|social|voluntary --operator NAME"},
    {"replay", 3, 3, true, cmd_replay,
     "replay EVENT_ID DESTINATION --operator NAME"},
    {"audit-read", 3, 4, true, cmd_audit_read,
     "audit-read trace-event|trace-correlation|trace-nhs|export|what-if "
     "SUBJECT "
     "[NHS_NUMBER] --operator NAME"},
};

static const struct command *
command_find(const char *name)
{
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

static bool
is_write(const req *r)
{
    const struct command *c = command_find(r->argv[0]);
    return (c && c->write) ||
           (strcmp(r->argv[0], "dead-letters") == 0 && r->argc > 1 &&
            strcmp(r->argv[1], "redrive") == 0);
}

static int
run(status *s, req *r, sbuf *out, hov_error *err)
{
    const struct command *c = command_find(r->argv[0]);
    if (c == NULL) {
        char e[48];
        echo(e, sizeof e, r->argv[0]);
        return refuse(err, HOV_EINVAL,
                      "unknown command '%s' (send 'help' for the list)", e);
    }
    if (r->argc < c->min_args || r->argc > c->max_args)
        return refuse(err, HOV_EINVAL, "usage: %s", c->usage);
    int level = c->fn(s, r, out, err);
    if (level == H_ERROR && err->code == HOV_OK)
        hov_fail(err, HOV_ESTORE, 0, "%s failed", c->name);
    return level;
}

/* Build c's whole answer from its command line. */
static void
answer(status *s, client *c)
{
    req r;
    memset(&r, 0, sizeof r);
    r.peer = c;
    hov_error err = {0};
    sbuf body = {0};
    char *nl = memchr(c->in, '\n', c->in_len);
    size_t len = nl ? (size_t)(nl - c->in) : c->in_len;
    if (len > 0 && c->in[len - 1] == '\r')
        len--;
    c->in[len] = '\0';
    char logged[80];
    echo(logged, sizeof logged, c->in);
    /* --json anywhere makes even a refusal JSON. */
    r.json = strstr(c->in, "--json") != NULL;
    int level = parse_line(c->in, &r, &err) == HOV_OK ? run(s, &r, &body, &err)
                                                      : H_ERROR;
    if (level != H_ERROR && body.failed) {
        level = H_ERROR;
        hov_fail(&err, HOV_ENOMEM, 0,
                 "the answer is larger than %zu MiB or the hub is out of "
                 "memory",
                 STATUS_REPLY_MAX >> 20);
    }
    sbuf all = {0};
    sb_printf(&all, "%s\n", header_word[level]);
    if (level == H_ERROR) {
        if (r.json) {
            bool ok = true;
            json_t *root = json_object(), *e = json_object();
            jset(e, "code", json_string(hov_errname(err.code)), &ok);
            jset(e, "message", jstr(err.msg), &ok);
            jset(root, "error", e, &ok);
            json_out(&all, root, &ok);
        } else {
            sb_printf(&all, "error: %s\n", err.msg);
        }
    } else if (body.len > 0) {
        sb_printf(&all, "%s", body.p);
    }
    free(body.p);
    if (r.argc > 0 && is_write(&r))
        hov_info("status command \"%s\" peer_uid=%ld result=%s%s%s", logged,
                 c->cred ? (long)c->uid : -1L, health_word[level],
                 level == H_ERROR ? ": " : "", level == H_ERROR ? err.msg : "");
    else
        hov_debug("status command \"%s\" result=%s", logged,
                  health_word[level]);
    if (all.failed) {
        free(all.p);
        static const char oom[] = "ERROR\nerror: the hub is out of memory\n";
        all.p = strdup(oom);
        all.len = all.p ? sizeof oom - 1 : 0;
    }
    c->out = all.p;
    c->out_len = all.len;
    c->out_off = 0;
    c->answered = true;
    c->deadline_ms = hov_mono_ms() + STATUS_WRITE_MS;
}

/* ------------------------------------------------------------ client I/O */

static void
accept_all(status *s)
{
    while (s->nclients < STATUS_CLIENTS_MAX) {
        int fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
                errno != ECONNABORTED)
                hov_warn("status socket %s: accept: %s", s->path,
                         strerror(errno));
            return;
        }
        client *c = &s->clients[s->nclients++];
        memset(c, 0, sizeof *c);
        c->fd = fd;
        c->deadline_ms = hov_mono_ms() + STATUS_READ_MS;
        struct ucred uc;
        socklen_t ul = sizeof uc;
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &ul) == 0) {
            c->cred = true;
            c->pid = uc.pid;
            c->uid = uc.uid;
        }
    }
}

/* Read what has arrived; answer once the line is complete. */
static void
client_read(status *s, client *c)
{
    for (;;) {
        ssize_t n =
            recv(c->fd, c->in + c->in_len, STATUS_LINE_MAX - c->in_len, 0);
        if (n > 0) {
            c->in_len += (size_t)n;
            if (memchr(c->in + c->in_len - (size_t)n, '\n', (size_t)n)) {
                answer(s, c);
                return;
            }
            if (c->in_len == STATUS_LINE_MAX) {
                /* No newline in the limit: answer the error, not a cut
                 * command. */
                c->in_len = 0;
                static const char msg[] =
                    "ERROR\nerror: the command line is longer than 1024 "
                    "bytes\n";
                c->out = strdup(msg);
                c->out_len = c->out ? sizeof msg - 1 : 0;
                c->answered = true;
                c->deadline_ms = hov_mono_ms() + STATUS_WRITE_MS;
                if (c->out == NULL)
                    client_close(c);
                return;
            }
            continue;
        }
        if (n == 0) {
            /* The client closed its side: a line without a newline is a
             * command too (echo -n status | nc -U). */
            if (!c->answered && c->in_len > 0)
                answer(s, c);
            else if (!c->answered)
                client_close(c);
            return;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            client_close(c);
        return;
    }
}

static void
client_write(client *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            c->out_off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;      /* POLLOUT will say when there is room */
        client_close(c); /* the client went away: nothing to tell it */
        return;
    }
    /* All written. Input left unread at close would make the kernel
     * reset the connection, and the client could lose the end of its
     * answer: drop it first. */
    char sink[512];
    while (recv(c->fd, sink, sizeof sink, MSG_DONTWAIT) > 0)
        ;
    shutdown(c->fd, SHUT_WR);
    client_close(c);
}

size_t
status_poll_items(status *s, zmq_pollitem_t *items, size_t cap,
                  long *timeout_ms)
{
    size_t k = 0;
    uint64_t now = hov_mono_ms();
    /* When every slot is busy the listener is left out of the poll set:
     * new clients wait in the backlog instead of waking the loop. */
    if (s->lfd >= 0 && s->nclients < STATUS_CLIENTS_MAX && k < cap) {
        items[k] = (zmq_pollitem_t){NULL, s->lfd, ZMQ_POLLIN, 0};
        s->poll_map[k++] = -1;
    }
    for (size_t i = 0; i < s->nclients && k < cap; i++) {
        client *c = &s->clients[i];
        short ev = c->answered ? ZMQ_POLLOUT : ZMQ_POLLIN;
        items[k] = (zmq_pollitem_t){NULL, c->fd, ev, 0};
        s->poll_map[k++] = (int)i;
        long left = c->deadline_ms > now ? (long)(c->deadline_ms - now) : 0;
        if (left < *timeout_ms)
            *timeout_ms = left;
    }
    s->npoll = k;
    return k;
}

void
status_serve(status *s, const zmq_pollitem_t *items, size_t n)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < n && i < s->npoll; i++) {
        if (items[i].revents == 0)
            continue;
        int who = s->poll_map[i];
        if (who < 0) {
            accept_all(s);
            continue;
        }
        client *c = &s->clients[who];
        if (c->fd < 0)
            continue;
        if (!c->answered && (items[i].revents & (ZMQ_POLLIN | ZMQ_POLLERR)))
            client_read(s, c);
        if (c->fd >= 0 && c->answered)
            client_write(c); /* at once: most answers fit the buffer */
    }
    uint64_t now = hov_mono_ms();
    size_t k = 0;
    for (size_t i = 0; i < s->nclients; i++) {
        client *c = &s->clients[i];
        if (c->fd >= 0 && now >= c->deadline_ms) {
            hov_debug("status client closed: %s within %d ms",
                      c->answered ? "did not read its answer"
                                  : "sent no command",
                      c->answered ? STATUS_WRITE_MS : STATUS_READ_MS);
            client_close(c);
        }
        if (c->fd >= 0)
            s->clients[k++] = *c;
    }
    s->nclients = k;
    s->npoll = 0;
}
