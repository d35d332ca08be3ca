#include "access.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "audit.h"
#include "handover/io.h"
#include "handover/timeutil.h"

int
access_open_store(const char *dir, store **out)
{
    hov_error err = {0};
    store *st = NULL;
    if (store_new(&st, &err) != HOV_OK ||
        store_open_rdonly(st, dir, &err) != HOV_OK) {
        store_free(st);
        fprintf(stderr, "handover-audit: cannot read the store: %s\n", err.msg);
        return -1;
    }
    *out = st;
    return 0;
}

int
access_hub_request(const char *dir, const char *line, char *answer, size_t cap,
                   char *why, size_t whycap)
{
    struct sockaddr_un a;
    memset(&a, 0, sizeof a);
    a.sun_family = AF_UNIX;
    int n = snprintf(a.sun_path, sizeof a.sun_path, "%s/hub.sock", dir);
    if (n < 0 || (size_t)n >= sizeof a.sun_path) {
        snprintf(why, whycap, "the status socket path under %s is too long",
                 dir);
        return -1;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        snprintf(why, whycap,
                 "the hub's status socket %s cannot be reached: %s", a.sun_path,
                 strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    if (hov_write_all(fd, line, strlen(line)) != 0) {
        snprintf(why, whycap, "send to %s: %s", a.sun_path, strerror(errno));
        close(fd);
        return -1;
    }
    /* The hub answers one command per connection and closes. */
    char ans[8192];
    size_t got = 0;
    while (got + 1 < sizeof ans) {
        struct pollfd p = {fd, POLLIN, 0};
        int r = poll(&p, 1, 10000);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        ssize_t k = recv(fd, ans + got, sizeof ans - 1 - got, 0);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        got += (size_t)k;
    }
    close(fd);
    ans[got] = '\0';
    if (got == 0) {
        snprintf(why, whycap, "the hub gave no answer within 10 s");
        return -1;
    }
    char *nl = strchr(ans, '\n');
    const char *rest = nl ? nl + 1 : "";
    int ok = strncmp(ans, "OK\n", 3) == 0;
    snprintf(answer, cap, "%s", rest);
    if (!ok) {
        /* "ERROR\nerror: <reason>\n": the reason, on one line. */
        if (strncmp(rest, "error: ", 7) == 0)
            snprintf(answer, cap, "%s", rest + 7);
        size_t l = strlen(answer);
        while (l > 0 && answer[l - 1] == '\n')
            answer[--l] = '\0';
        if (l == 0)
            snprintf(answer, cap, "%.200s", ans);
    }
    return ok ? 0 : 1;
}

int
access_hub_running(const char *dir, char *why, size_t cap)
{
    char path[600];
    snprintf(path, sizeof path, "%s/hub.lock", dir);
    int lk = open(path, O_RDONLY | O_CLOEXEC);
    if (lk < 0) {
        if (errno == ENOENT)
            return 0;
        snprintf(why, cap, "open %s: %s", path, strerror(errno));
        return -1;
    }
    int rc;
    if (flock(lk, LOCK_SH | LOCK_NB) == 0) {
        flock(lk, LOCK_UN);
        rc = 0;
    } else if (errno == EWOULDBLOCK) {
        rc = 1;
    } else {
        snprintf(why, cap, "lock %s: %s", path, strerror(errno));
        rc = -1;
    }
    close(lk);
    return rc;
}

/* No hub runs (we hold hub.lock): append the record ourselves. */
static int
record_direct(const char *dir, const char *actor, const char *event_id,
              const char *nhs, const char *detail, char *why, size_t cap)
{
    store *st = NULL;
    store_txn *txn = NULL;
    hov_error err = {0};
    hov_err e = store_new(&st, &err);
    if (e == HOV_OK)
        e = store_open(st, dir, &err);
    if (e == HOV_OK)
        e = store_begin(st, false, &txn, &err);
    if (e == HOV_OK) {
        e = audit_log(txn, hov_now_ms(), event_id, nhs, actor, AUDIT_READ,
                      detail, &err);
        if (e == HOV_OK)
            e = store_commit(txn, &err);
        else
            store_abort(txn);
    }
    store_free(st);
    if (e != HOV_OK) {
        snprintf(why, cap, "cannot record the read in %s: %s", dir, err.msg);
        return -1;
    }
    return 0;
}

/* The hub's wording of a read (hub/status.c, read_kinds). */
static void
read_says(const char *kind, const char *subject, char *out, size_t cap)
{
    if (strcmp(kind, "export") == 0 || strcmp(kind, "what-if") == 0)
        snprintf(out, cap, "%s of %s", kind, subject);
    else
        snprintf(out, cap, "trace of %s %s",
                 strcmp(kind, "trace-event") == 0         ? "event"
                 : strcmp(kind, "trace-correlation") == 0 ? "correlation"
                                                          : "NHS number",
                 subject);
}

/* As access_record_read, saying why not in why. */
static int
record_read(const char *dir, const char *auditor, const char *kind,
            const char *subject, const char *event_id, const char *nhs,
            char *why, size_t cap)
{
    char path[600];
    snprintf(path, sizeof path, "%s/hub.lock", dir);
    int lk = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (lk < 0) {
        snprintf(why, cap, "open %s: %s", path, strerror(errno));
        return -1;
    }
    int rc;
    if (flock(lk, LOCK_EX | LOCK_NB) == 0) {
        /* Held while we write, so no hub starts meanwhile (a hub started
         * now exits, saying the folder is in use). */
        char actor[80], detail[300], what[160];
        snprintf(actor, sizeof actor, "auditor:%s", auditor);
        read_says(kind, subject, what, sizeof what);
        snprintf(detail, sizeof detail,
                 "read by handover-audit: %s (directly: no hub running, uid "
                 "%lu pid %ld)",
                 what, (unsigned long)getuid(), (long)getpid());
        rc = record_direct(dir, actor, event_id, nhs, detail, why, cap);
        flock(lk, LOCK_UN);
    } else if (errno == EWOULDBLOCK) {
        char line[400], answer[600], reason[600];
        int n =
            snprintf(line, sizeof line, "audit-read %s %s%s%s --operator %s\n",
                     kind, subject, nhs[0] ? " " : "", nhs, auditor);
        if (n < 0 || (size_t)n >= sizeof line) {
            snprintf(why, cap, "the request is too long");
            rc = -1;
        } else {
            rc = access_hub_request(dir, line, answer, sizeof answer, reason,
                                    sizeof reason);
            if (rc == 1)
                snprintf(why, cap, "the hub did not record the read: %.400s",
                         answer);
            else if (rc < 0)
                snprintf(why, cap, "the hub runs (hub.lock is held) but %s",
                         reason);
            rc = rc == 0 ? 0 : -1;
        }
    } else {
        snprintf(why, cap, "lock %.500s: %s", path, strerror(errno));
        rc = -1;
    }
    close(lk);
    return rc;
}

int
access_record_read(const char *dir, const char *auditor, const char *kind,
                   const char *subject, const char *event_id, const char *nhs)
{
    char why[700];
    if (record_read(dir, auditor, kind, subject, event_id, nhs, why,
                    sizeof why) == 0)
        return 0;
    fprintf(stderr,
            "handover-audit: cannot record this read, so nothing is shown "
            "(every read is audited): %s\n",
            why);
    return -1;
}

bool
access_word_valid(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n > max)
        return false;
    for (; *s; s++)
        if ((unsigned char)*s <= ' ' || (unsigned char)*s >= 0x7f)
            return false;
    return true;
}

bool
access_emit(json_t *o)
{
    if (o == NULL)
        return false;
    char *s = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(o);
    if (s == NULL)
        return false;
    puts(s);
    free(s);
    return true;
}

hov_err
access_event_load(store_txn *txn, uint64_t seq, Handover__Event **out,
                  hov_error *err)
{
    const uint8_t *data;
    size_t len;
    hov_err e = store_event_read(txn, seq, &data, &len, err);
    if (e != HOV_OK)
        return e;
    *out = handover__event__unpack(NULL, len, data);
    return *out != NULL ? HOV_OK : HOV_ENOTFOUND;
}

/* Midnight Europe/London starting day s (YYYY-MM-DD), plus days (0 or 1). */
static bool
day_start(const char *s, int days, uint64_t *out)
{
    if (s == NULL || !hov_date_valid(s))
        return false;
    int y = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 +
            (s[3] - '0');
    int m = (s[5] - '0') * 10 + (s[6] - '0');
    int d = (s[8] - '0') * 10 + (s[9] - '0') + days;
    if (d > hov_days_in_month(y, m)) {
        d = 1;
        if (++m > 12) {
            m = 1;
            y++;
        }
    }
    bool amb;
    return hov_london_to_ms(y, m, d, 0, 0, 0, 0, out, &amb) == 0;
}

bool
access_day_range(const char *from, const char *to, uint64_t *from_ms,
                 uint64_t *to_ms)
{
    return day_start(from, 0, from_ms) && day_start(to, 1, to_ms) &&
           *to_ms > *from_ms;
}

#define RANGE_SLICE 4096 /* events per read transaction */

typedef struct range_scan {
    uint64_t from_ms, to_ms;
    access_event_fn fn;
    void *arg;
    store_txn *txn;
    uint64_t next_seq;
    size_t in_slice;
} range_scan;

static hov_err
range_one(void *arg, uint64_t seq, const uint8_t *data, size_t len,
          hov_error *err)
{
    range_scan *r = arg;
    if (r->in_slice++ == RANGE_SLICE)
        return HOV_ETIMEDOUT; /* resume from seq in a new transaction */
    r->next_seq = seq + 1;
    Handover__Event *ev = handover__event__unpack(NULL, len, data);
    if (ev == NULL)
        return HOV_OK; /* damage is verify's business */
    uint64_t at = 0;
    hov_err e = HOV_OK;
    if (hov_rfc3339_to_ms(ev->received_at, &at) && at >= r->from_ms &&
        at < r->to_ms)
        e = r->fn(r->arg, r->txn, seq, ev, err);
    handover__event__free_unpacked(ev, NULL);
    return e;
}

hov_err
access_events_in_range(store *st, uint64_t from_ms, uint64_t to_ms,
                       access_event_fn fn, void *arg, hov_error *err)
{
    range_scan r = {from_ms, to_ms, fn, arg, NULL, 1, 0};
    hov_err e;
    do {
        if ((e = store_begin(st, true, &r.txn, err)) != HOV_OK)
            return e;
        r.in_slice = 0;
        e = store_event_scan(r.txn, r.next_seq, range_one, &r, err);
        store_abort(r.txn);
    } while (e == HOV_ETIMEDOUT && r.in_slice > RANGE_SLICE);
    return e;
}
