/* Files from the council and the equipment service (domain 7.1 to 7.4).
 *
 * One file at a time, in name order (which is time order): a scan on the
 * thread pool picks the first complete file (not ".tmp", not a dot file),
 * reads it and parses it; the loop publishes its good records; when the
 * hub has answered every one, a second job moves the file to processed/ or
 * error/ (with <name>.errors.txt) and fsyncs both folders. Nothing is
 * moved before every answer is in, so a crash or kill at any point leaves
 * the file in the inbox; the next start reads it again and the derived
 * event ids make the hub absorb what it already holds. A temporary refusal
 * (the hub's store is full, say) leaves the file where it is until the
 * next rescan.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "council.h"
#include "handover.pb-c.h"
#include "handover/log.h"
#include "social.h"

typedef struct irec {
    uint64_t seq;
    struct ifile *f;
    size_t idx;
} irec;

/* The file in hand. Owned by the inbound state, or by a job while one
 * runs. */
typedef struct ifile {
    uv_work_t req;
    social *s;
    char name[256];
    char *data;
    size_t len;
    bool found; /* the scan found a file */
    bool seen;  /* same name and bytes already in processed/ */
    bool retry; /* a temporary refusal: leave it for the next scan */
    council_file parsed;
    irec *recs;
    size_t pending;
    size_t accepted, duplicates;
    char why[3200]; /* a job's I/O failure */
} ifile;

struct social_inbound {
    uv_fs_event_t watch;
    uv_timer_t timer;
    ifile *cur;
    bool busy;   /* a scan, a publish round or a move is under way */
    bool rescan; /* something changed while busy */
    bool stopped;
    bool watching;
    int refs; /* open handles and jobs; freed at 0 */
    char processed[1100], error[1100];
};

static void kick(social *s);

static void
ifile_free(ifile *f)
{
    if (f == NULL)
        return;
    free(f->data);
    free(f->recs);
    council_file_free(&f->parsed);
    free(f);
}

static void
in_unref(social *s)
{
    social_inbound *in = s->in;
    if (--in->refs == 0) {
        ifile_free(in->cur);
        free(in);
        s->in = NULL;
    }
}

static bool
ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static int
cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Read path whole into *out (owned) when it is no larger than max; -1 with
 * errno otherwise (EFBIG when too large). */
static int
read_file(const char *path, size_t max, char **out, size_t *len)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        errno = EINVAL;
        return -1;
    }
    if ((uint64_t)st.st_size > max) {
        close(fd);
        errno = EFBIG;
        return -1;
    }
    size_t cap = (size_t)st.st_size;
    char *buf = malloc(cap + 1);
    size_t got = 0;
    while (buf != NULL && got < cap) {
        ssize_t n = read(fd, buf + got, cap - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    int e = errno;
    close(fd);
    if (buf == NULL || got != cap) {
        free(buf);
        errno = buf == NULL ? ENOMEM : (e ? e : EIO);
        return -1;
    }
    buf[got] = '\0';
    *out = buf;
    *len = got;
    return 0;
}

/* Thread pool: find the first complete file, read and parse it. */
static void
scan_work(uv_work_t *req)
{
    ifile *f = req->data;
    social *s = f->s;
    const social_cfg *cfg = &s->cfg;
    uv_fs_t sreq;
    if (uv_fs_scandir(NULL, &sreq, cfg->inbox, 0, NULL) < 0) {
        snprintf(f->why, sizeof f->why, "scan inbox %s: %s", cfg->inbox,
                 uv_strerror((int)sreq.result));
        uv_fs_req_cleanup(&sreq);
        return;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    uv_dirent_t ent;
    while (uv_fs_scandir_next(&sreq, &ent) != UV_EOF) {
        /* A partner writes <name>.tmp and renames it: a .tmp file is not
         * complete, and dot files are editors' and tools' own (7.1). */
        if (ent.type != UV_DIRENT_FILE || ent.name[0] == '.' ||
            ends_with(ent.name, ".tmp") || strlen(ent.name) >= sizeof f->name)
            continue;
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 32;
            char **nn = realloc(names, nc * sizeof *nn);
            if (nn == NULL)
                break;
            names = nn;
            cap = nc;
        }
        names[n] = strdup(ent.name);
        if (names[n] != NULL)
            n++;
    }
    uv_fs_req_cleanup(&sreq);
    if (n == 0) {
        free(names);
        return;
    }
    qsort(names, n, sizeof *names, cmp_names);
    snprintf(f->name, sizeof f->name, "%s", names[0]);
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    f->found = true;

    council_kind kind;
    char sender[40], why[300];
    hov_error err = {0};
    if (!council_name_check(f->name, (const char *const *)cfg->senders, &kind,
                            sender, why, sizeof why)) {
        f->parsed.rejected = true;
        council_problem *p = calloc(1, sizeof *p);
        if (p != NULL) {
            snprintf(p->text, sizeof p->text, "%s", why);
            f->parsed.problems = p;
            f->parsed.n_problems = 1;
        }
        return;
    }
    char path[1400];
    snprintf(path, sizeof path, "%s/%s", cfg->inbox, f->name);
    if (read_file(path, cfg->max_file_bytes, &f->data, &f->len) != 0) {
        int e = errno;
        if (e == EFBIG) {
            f->parsed.rejected = true;
            council_problem *p = calloc(1, sizeof *p);
            if (p != NULL) {
                snprintf(p->text, sizeof p->text,
                         "the file is larger than %llu bytes: split it; "
                         "nothing was published",
                         (unsigned long long)cfg->max_file_bytes);
                f->parsed.problems = p;
                f->parsed.n_problems = 1;
            }
            return;
        }
        f->found = false; /* gone or unreadable now: try again later */
        snprintf(f->why, sizeof f->why, "read %s: %s", path, strerror(e));
        return;
    }
    /* Seen before: same name, same bytes (7.1). */
    char *old = NULL;
    size_t oldlen = 0;
    char ppath[1400];
    snprintf(ppath, sizeof ppath, "%s/processed/%s", cfg->inbox, f->name);
    if (read_file(ppath, cfg->max_file_bytes, &old, &oldlen) == 0) {
        f->seen = oldlen == f->len && memcmp(old, f->data, f->len) == 0;
        free(old);
        if (f->seen)
            return;
    }
    hov_err rc =
        kind == COUNCIL_KIND_OUTCOMES
            ? council_outcomes_parse(f->data, f->len, sender,
                                     (size_t)cfg->max_rows, &f->parsed, &err)
            : council_json_in(f->data, f->len, sender, true, &f->parsed, &err);
    if (rc != HOV_OK) {
        council_file_free(&f->parsed);
        f->found = false;
        snprintf(f->why, sizeof f->why, "parse %s: %s", f->name, err.msg);
    }
}

static int
cmp_problems(const void *a, const void *b)
{
    const council_problem *x = a, *y = b;
    if (x->line != y->line)
        return x->line < y->line ? -1 : 1;
    return x < y ? -1 : x > y;
}

static int
fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

/* Write the report atomically: <error>/<name>.errors.txt. */
static int
write_report(const char *dir, ifile *f)
{
    council_problem *ps = f->parsed.problems;
    size_t n = f->parsed.n_problems;
    /* Parser problems come in line order, hub refusals after them. The
     * comparison falls back on position, so equal lines keep their order. */
    qsort(ps, n, sizeof *ps, cmp_problems);
    char tmp[1400], final[1400];
    snprintf(tmp, sizeof tmp, "%s/%s.errors.txt.tmp", dir, f->name);
    snprintf(final, sizeof final, "%s/%s.errors.txt", dir, f->name);
    FILE *fp = fopen(tmp, "w");
    if (fp == NULL)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (ps[i].line > 0)
            fprintf(fp, "line %zu: %s\n", ps[i].line, ps[i].text);
        else
            fprintf(fp, "%s\n", ps[i].text);
    }
    int rc = fflush(fp) == 0 && fsync(fileno(fp)) == 0 ? 0 : -1;
    int e = errno;
    if (fclose(fp) != 0 && rc == 0) {
        rc = -1;
        e = errno;
    }
    if (rc == 0 && rename(tmp, final) != 0) {
        rc = -1;
        e = errno;
    }
    if (rc != 0)
        unlink(tmp);
    errno = e;
    return rc;
}

/* Thread pool: move the answered file to processed/ or error/. */
static void
finish_work(uv_work_t *req)
{
    ifile *f = req->data;
    social_inbound *in = f->s->in;
    const char *inbox = f->s->cfg.inbox;
    bool bad = f->parsed.n_problems > 0;
    const char *dir = bad ? in->error : in->processed;
    if (bad && write_report(dir, f) != 0) {
        snprintf(f->why, sizeof f->why, "write %s/%s.errors.txt: %s", dir,
                 f->name, strerror(errno));
        return;
    }
    char from[1400], to[1400];
    snprintf(from, sizeof from, "%s/%s", inbox, f->name);
    snprintf(to, sizeof to, "%s/%s", dir, f->name);
    /* A file of the same name with other bytes is already there: keep it
     * (it is the record of what was published) and number this one. */
    struct stat st;
    for (int k = 1; !f->seen && stat(to, &st) == 0 && k < 1000; k++)
        snprintf(to, sizeof to, "%s/%s.%d", dir, f->name, k);
    if (rename(from, to) != 0) {
        snprintf(f->why, sizeof f->why, "move %s to %s: %s", from, dir,
                 strerror(errno));
        return;
    }
    if (fsync_dir(dir) != 0 || fsync_dir(inbox) != 0)
        snprintf(f->why, sizeof f->why, "fsync %s: %s", dir, strerror(errno));
}

static void
job_done(social *s, ifile *f)
{
    social_inbound *in = s->in;
    in->cur = NULL;
    ifile_free(f);
    in->busy = false;
    if (in->rescan && !in->stopped) {
        in->rescan = false;
        kick(s);
    }
}

static void
finish_after(uv_work_t *req, int status)
{
    ifile *f = req->data;
    social *s = f->s;
    social_inbound *in = s->in;
    (void)status;
    if (in->stopped) {
        in->cur = NULL;
        ifile_free(f);
        in_unref(s);
        return;
    }
    if (f->why[0] != '\0') {
        hov_errorf("%s; the file stays in the inbox and is tried again at the "
                   "next scan",
                   f->why);
    } else if (f->seen) {
        hov_info("already processed file=%s: moved to processed/, nothing "
                 "published",
                 f->name);
    } else if (f->parsed.n_problems > 0) {
        hov_warn("file error=%s problems=%zu published=%zu duplicates=%zu: "
                 "see error/%s.errors.txt",
                 f->name, f->parsed.n_problems, f->accepted, f->duplicates,
                 f->name);
    } else {
        hov_info("file processed=%s published=%zu duplicates=%zu%s", f->name,
                 f->accepted, f->duplicates,
                 f->parsed.n_records == 0 ? " (no data rows)" : "");
    }
    bool again = f->why[0] == '\0';
    in_unref(s);
    job_done(s, f);
    if (again)
        kick(s); /* the next file, if any */
}

static void
finish(social *s, ifile *f)
{
    social_inbound *in = s->in;
    if (f->retry) {
        hov_warn("file %s: the hub refused a record for now; it stays in "
                 "the inbox and is read again at the next scan",
                 f->name);
        job_done(s, f);
        return;
    }
    f->req.data = f;
    in->refs++;
    int rc = uv_queue_work(s->loop, &f->req, finish_work, finish_after);
    if (rc != 0) {
        in->refs--;
        hov_errorf("move %s: %s; tried again at the next scan", f->name,
                   uv_strerror(rc));
        job_done(s, f);
    }
}

static void
publish_all(social *s, ifile *f)
{
    size_t n = f->parsed.n_records;
    f->recs = calloc(n ? n : 1, sizeof *f->recs);
    if (f->recs == NULL) {
        f->retry = true;
        finish(s, f);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        council_record *r = &f->parsed.records[i];
        size_t plen = handover__event__get_packed_size(r->event);
        uint8_t *packed = malloc(plen ? plen : 1);
        hov_error err = {0};
        hov_err rc = HOV_ENOMEM;
        irec *ir = &f->recs[i];
        ir->f = f;
        ir->idx = i;
        if (packed != NULL) {
            handover__event__pack(r->event, packed);
            rc = hublink_publish(s->hub, packed, plen, ir, &ir->seq, &err);
        }
        free(packed);
        if (rc != HOV_OK) {
            /* Those already published are answered later and ignored
             * (f->retry); the whole file is read again. */
            hov_warn("publish event=%s from %s: %s", r->event_id, f->name,
                     err.msg[0] ? err.msg : "out of memory");
            f->retry = true;
            break;
        }
        f->pending++;
        hov_debug("published event=%s file=%s line=%zu", r->event_id, f->name,
                  r->line);
    }
    if (f->pending == 0)
        finish(s, f);
}

static void
scan_after(uv_work_t *req, int status)
{
    ifile *f = req->data;
    social *s = f->s;
    social_inbound *in = s->in;
    (void)status;
    if (in->stopped) {
        in->cur = NULL;
        ifile_free(f);
        in_unref(s);
        return;
    }
    in_unref(s);
    if (f->why[0] != '\0')
        hov_errorf("%s", f->why);
    if (!f->found) {
        job_done(s, f);
        return;
    }
    if (f->seen || f->parsed.rejected) {
        finish(s, f);
        return;
    }
    hov_info("reading file=%s records=%zu bad=%zu", f->name,
             f->parsed.n_records, f->parsed.n_problems);
    publish_all(s, f);
}

static void
kick(social *s)
{
    social_inbound *in = s->in;
    if (in == NULL || in->stopped)
        return;
    if (in->busy) {
        in->rescan = true;
        return;
    }
    ifile *f = calloc(1, sizeof *f);
    if (f == NULL) {
        hov_errorf("scan: out of memory; tried again at the next scan");
        return;
    }
    f->s = s;
    f->req.data = f;
    in->busy = true;
    in->cur = f;
    in->refs++;
    int rc = uv_queue_work(s->loop, &f->req, scan_work, scan_after);
    if (rc != 0) {
        in->refs--;
        hov_errorf("scan: %s; tried again at the next scan", uv_strerror(rc));
        job_done(s, f);
    }
}

void
social_inbound_answer(social *s, const hov_msg *msg)
{
    social_inbound *in = s->in;
    irec *ir = msg->user;
    if (in == NULL || ir == NULL || in->cur != ir->f)
        return;
    ifile *f = ir->f;
    council_record *r = &f->parsed.records[ir->idx];
    if (msg->kind == HOV_MSG_ACK) {
        if (msg->duplicate)
            f->duplicates++;
        else
            f->accepted++;
        hov_info("%s event=%s file=%s line=%zu",
                 msg->duplicate ? "duplicate" : "accepted", r->event_id,
                 f->name, r->line);
    } else if (msg->temporary && msg->code != HOV_EREPLYTOLATER) {
        hov_warn("hub refused for now event=%s file=%s code=%s reason=\"%s\"",
                 r->event_id, f->name, hov_errname(msg->code), msg->reason);
        f->retry = true;
    } else {
        hov_warn("hub refused event=%s file=%s line=%zu code=%s", r->event_id,
                 f->name, r->line, hov_errname(msg->code));
        council_problem *np = realloc(f->parsed.problems,
                                      (f->parsed.n_problems + 1) * sizeof *np);
        if (np == NULL) {
            f->retry = true;
        } else {
            f->parsed.problems = np;
            council_problem *p = &np[f->parsed.n_problems++];
            p->line = r->line;
            snprintf(p->text, sizeof p->text, "hub refused event %s: %s",
                     r->event_id, msg->reason);
        }
    }
    if (--f->pending == 0)
        finish(s, f);
}

static void
on_fs_event(uv_fs_event_t *h, const char *filename, int events, int status)
{
    (void)filename;
    (void)events;
    if (status < 0)
        hov_warn("inbox watch: %s; the periodic scan carries on",
                 uv_strerror(status));
    kick(h->data);
}

static void
on_timer(uv_timer_t *t)
{
    kick(t->data);
}

static hov_err
make_dir(const char *dir, hov_error *err)
{
    if (mkdir(dir, 0750) != 0 && errno != EEXIST)
        return hov_fail(err, HOV_EIO, errno, "make folder %s: %s", dir,
                        strerror(errno));
    return HOV_OK;
}

hov_err
social_inbound_start(social *s, hov_error *err)
{
    social_inbound *in = calloc(1, sizeof *in);
    if (in == NULL)
        return hov_fail(err, HOV_ENOMEM, 0, "inbound");
    s->in = in;
    snprintf(in->processed, sizeof in->processed, "%s/processed", s->cfg.inbox);
    snprintf(in->error, sizeof in->error, "%s/error", s->cfg.inbox);
    uv_timer_init(s->loop, &in->timer);
    in->timer.data = s;
    in->refs = 1;
    uv_timer_start(&in->timer, on_timer, s->cfg.scan_interval_ms,
                   s->cfg.scan_interval_ms);
    hov_err rc = make_dir(s->cfg.inbox, err);
    if (rc == HOV_OK)
        rc = make_dir(in->processed, err);
    if (rc == HOV_OK)
        rc = make_dir(in->error, err);
    if (rc != HOV_OK)
        return rc;
    uv_fs_event_init(s->loop, &in->watch);
    in->watch.data = s;
    in->refs++;
    in->watching = true;
    int urc = uv_fs_event_start(&in->watch, on_fs_event, s->cfg.inbox, 0);
    if (urc != 0)
        hov_warn("inbox watch %s: %s; relying on the scan every %llu ms",
                 s->cfg.inbox, uv_strerror(urc),
                 (unsigned long long)s->cfg.scan_interval_ms);
    /* Files left from before a restart are read now, not in 30 s. */
    kick(s);
    return HOV_OK;
}

static void
on_closed(uv_handle_t *h)
{
    in_unref(h->data);
}

void
social_inbound_stop(social *s)
{
    social_inbound *in = s->in;
    if (in == NULL || in->stopped)
        return;
    in->stopped = true;
    /* A file waiting for answers stays in the inbox; a job in flight frees
     * its file when it comes back. */
    if (in->cur != NULL && in->busy && in->cur->pending > 0) {
        ifile_free(in->cur);
        in->cur = NULL;
    }
    uv_close((uv_handle_t *)&in->timer, on_closed);
    if (in->watching)
        uv_close((uv_handle_t *)&in->watch, on_closed);
}
