/* Storage fault injection (issue 8, reliability suite, item 1), in the
 * spirit of SQLite's I/O-error tests.
 *
 * The real hub runs with tests/faults/faultfs.c preloaded: write, pwrite,
 * writev, fdatasync, posix_fallocate, ftruncate... on files of its data
 * folder fail with EIO or ENOSPC when the test says so (a control file the
 * library re-reads, so faults go on and off while the hub runs). Each case
 * checks that
 *   - every publish hit by a fault gets a temporary Nak whose reason names
 *     the errno ("Input/output error", "No space left on device"), and the
 *     hub logs the failed commit; the publisher resends it;
 *   - the hub keeps serving, or exits by itself with status 1 and a line
 *     saying why (never a signal, never a hang);
 *   - after a restart on the same folder without faults every Acked event
 *     is delivered, with the content it was published with, exactly once
 *     when no consumer ran during the faults (at least once otherwise, the
 *     copies identical).
 * Each case prints one line for docs/reliability.md:
 *   FAULT <case> rules="..." injected=N acked=N lost=0 naks=N (...) ...
 * HANDOVER_RELIABILITY_LONG=1 runs more events and more seeds;
 * HANDOVER_FAULT_SEED replays the placement of the faults.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "handover/map.h"
#include "handover/timeutil.h"
#include "harness.h"

static bool
long_form(void)
{
    const char *v = getenv("HANDOVER_RELIABILITY_LONG");
    return v != NULL && *v != '\0' && strcmp(v, "0") != 0;
}

static unsigned
seed_for(unsigned round)
{
    const char *s = getenv("HANDOVER_FAULT_SEED");
    if (s)
        return (unsigned)strtoul(s, NULL, 10) + round;
    return (unsigned)hov_now_ms() + round * 7919u;
}

typedef struct rec {
    char id[40];
    uint8_t *bytes; /* as published */
    size_t len;
    bool acked;
    int inflight;  /* publishes of it not yet answered */
    int delivered; /* deliveries seen */
} rec;

typedef struct fx {
    const char *name;
    th_hub hub;
    char ctl[320];
    char rules[512]; /* for the summary: every rule the case armed */
    char env_preload[400], env_dir[400], env_ctl[400], env_asan[600];
    hov_map *ids;
    rec **all;
    size_t n, cap;
    rec **resend; /* Nak'd, to publish again */
    size_t nresend, capresend;
    int acked, duplicates, naks, nak_eio, nak_store, nak_full;
    int deliveries, redeliveries, hub_exits, start_refusals;
    int exit_status; /* of the last exit the test saw, -1 none */
    uint64_t t0;
    hov_client *pub, *cons;
} fx;

static const char *patients[] = {"9992468130", "9994127357", "9993001007",
                                 "9995050501", "9996118428", "9997345207",
                                 "9998765439", "9992024682"};

/* The faults in force, replaced atomically (a rename, so the library sees
 * a new file, never half of one). */
static void
set_faults(fx *f, const char *spec)
{
    char tmp[340];
    snprintf(tmp, sizeof tmp, "%s.tmp", f->ctl);
    FILE *fp = fopen(tmp, "w");
    cr_assert_not_null(fp, "write %s: %s", tmp, strerror(errno));
    fputs(spec, fp);
    fclose(fp);
    cr_assert(rename(tmp, f->ctl) == 0, "rename %s: %s", tmp, strerror(errno));
    if (spec[0] && strlen(f->rules) + strlen(spec) + 3 < sizeof f->rules)
        snprintf(f->rules + strlen(f->rules),
                 sizeof f->rules - strlen(f->rules), "%s%s",
                 f->rules[0] ? "; " : "", spec);
}

static void
fx_init_args(fx *f, const char *name, const char *const *args)
{
    memset(f, 0, sizeof *f);
    f->name = name;
    f->exit_status = -1;
    f->t0 = hov_mono_ms();
    th_hub_init(&f->hub, args);
    snprintf(f->ctl, sizeof f->ctl, "%s/faults.ctl", f->hub.dir);
    snprintf(f->env_preload, sizeof f->env_preload, "LD_PRELOAD=%s",
             HANDOVER_FAULTFS_LIB);
    /* args[2] is the data folder (th_hub_init). */
    snprintf(f->env_dir, sizeof f->env_dir, "HANDOVER_FAULT_DIR=%s",
             f->hub.args[2]);
    snprintf(f->env_ctl, sizeof f->env_ctl, "HANDOVER_FAULT_CTL=%s", f->ctl);
    /* A sanitized hub refuses a preloaded library ahead of its runtime
     * unless told not to check. */
    const char *asan = getenv("ASAN_OPTIONS");
    snprintf(f->env_asan, sizeof f->env_asan,
             "ASAN_OPTIONS=%s%sverify_asan_link_order=0", asan ? asan : "",
             asan && *asan ? ":" : "");
    th_hub_setenv(&f->hub, f->env_preload);
    th_hub_setenv(&f->hub, f->env_dir);
    th_hub_setenv(&f->hub, f->env_ctl);
    th_hub_setenv(&f->hub, f->env_asan);
    set_faults(f, "");
    hov_error err = {0};
    cr_assert(hov_map_new(&f->ids, &err) == HOV_OK);
}

static void
fx_init(fx *f, const char *name)
{
    static const char *args[] = {"--set", "heartbeat_ms=200", NULL};
    fx_init_args(f, name, args);
}

static void
clients_connect(fx *f, bool consumer)
{
    hov_error err = {0};
    hov_client_opts po = {
        .agency = "gp", .name = "faults-pub", .resend_ms = 1000};
    cr_assert(hov_client_new(&f->pub, &po, &err) == HOV_OK, "%s", err.msg);
    cr_assert(hov_client_connect(f->pub, f->hub.endpoint, &err) == HOV_OK);
    if (consumer) {
        hov_client_opts co = {.agency = "nursing",
                              .name = "faults-cons",
                              .consume = true,
                              .credit = 64};
        cr_assert(hov_client_new(&f->cons, &co, &err) == HOV_OK, "%s", err.msg);
        cr_assert(hov_client_connect(f->cons, f->hub.endpoint, &err) == HOV_OK);
    }
}

static void
fx_fini(fx *f)
{
    hov_client_free(f->pub);
    hov_client_free(f->cons);
    for (size_t i = 0; i < f->n; i++) {
        free(f->all[i]->bytes);
        free(f->all[i]);
    }
    free(f->all);
    free(f->resend);
    hov_map_free(f->ids);
    th_hub_fini(&f->hub);
}

static void
publish_rec(fx *f, rec *r)
{
    hov_error err = {0};
    cr_assert(hov_client_publish(f->pub, r->bytes, r->len, r, NULL, &err) ==
                  HOV_OK,
              "publish: %s", err.msg);
    r->inflight++;
}

static void
publish_new(fx *f)
{
    hov_sample s;
    hov_sample_init(&s, "referral", patients[f->n % 8]);
    rec *r = calloc(1, sizeof *r);
    cr_assert_not_null(r);
    snprintf(r->id, sizeof r->id, "%s", s.ev.event_id);
    r->bytes = hov_sample_pack(&s, &r->len);
    cr_assert_not_null(r->bytes);
    if (f->n == f->cap) {
        f->cap = f->cap ? f->cap * 2 : 1024;
        f->all = realloc(f->all, f->cap * sizeof *f->all);
        cr_assert_not_null(f->all);
    }
    f->all[f->n++] = r;
    hov_error err = {0};
    cr_assert(hov_map_put(f->ids, r->id, strlen(r->id), r, &err) == HOV_OK);
    publish_rec(f, r);
}

/* A Nak caused by a storage fault must be temporary and say which. */
static void
on_nak(fx *f, const hov_msg *m)
{
    rec *r = m->user;
    f->naks++;
    if (m->code == HOV_EIO)
        f->nak_eio++;
    else if (m->code == HOV_ESTORE)
        f->nak_store++;
    else if (m->code == HOV_ESTOREFULL)
        f->nak_full++;
    else
        cr_assert_fail("[%s] unexpected Nak %s for event %s: %s", f->name,
                       hov_errname(m->code), m->event_id, m->reason);
    cr_assert(m->temporary, "[%s] a storage Nak must be temporary: %s", f->name,
              m->reason);
    cr_assert(strstr(m->reason, "resend") != NULL,
              "[%s] a storage Nak must tell the sender to resend: %s", f->name,
              m->reason);
    cr_assert(
        m->code == HOV_ESTOREFULL || strstr(m->reason, "Input/output error") ||
            strstr(m->reason, "No space left on device") ||
            strstr(m->reason, "environment is unusable"),
        "[%s] a storage Nak must name the failure: %s", f->name, m->reason);
    if (f->nresend == f->capresend) {
        f->capresend = f->capresend ? f->capresend * 2 : 256;
        f->resend = realloc(f->resend, f->capresend * sizeof *f->resend);
        cr_assert_not_null(f->resend);
    }
    if (!r->acked)
        f->resend[f->nresend++] = r;
}

static void
on_delivery(fx *f, const hov_msg *m)
{
    rec *r = hov_map_get(f->ids, m->event_id, strlen(m->event_id));
    cr_assert_not_null(r, "[%s] delivery of event %s, never published", f->name,
                       m->event_id);
    /* The full view sends the stored bytes: what was published, then the
     * hub's own fields. */
    cr_assert(m->event_len >= r->len && memcmp(m->event, r->bytes, r->len) == 0,
              "[%s] event %s was delivered with other content than it was "
              "published with",
              f->name, r->id);
    if (r->delivered++)
        f->redeliveries++;
    f->deliveries++;
    hov_error err = {0};
    /* A settle lost to a failed commit is delivered again: at least once. */
    if (hov_client_settle(f->cons, m->delivery_id, HOV_SETTLE_DONE, NULL,
                          &err) != HOV_OK)
        err.code = HOV_OK; /* the hub delivers it again */
}

/* Read what has arrived, waiting up to wait_ms for the first message. */
static void
pump(fx *f, int wait_ms)
{
    hov_msg m;
    hov_error err = {0};
    for (int first = 1;; first = 0) {
        cr_assert(hov_client_next(f->pub, first ? wait_ms : 0, &m, &err) ==
                      HOV_OK,
                  "%s", err.msg);
        if (m.kind == HOV_MSG_NONE)
            break;
        rec *r = m.user;
        if (m.kind == HOV_MSG_ACK) {
            r->inflight--;
            if (m.duplicate)
                f->duplicates++;
            if (!r->acked)
                f->acked++;
            r->acked = true;
        } else if (m.kind == HOV_MSG_NAK) {
            r->inflight--;
            on_nak(f, &m);
        }
    }
    while (f->cons) {
        cr_assert(hov_client_next(f->cons, 0, &m, &err) == HOV_OK, "%s",
                  err.msg);
        if (m.kind == HOV_MSG_NONE)
            break;
        if (m.kind == HOV_MSG_DELIVER)
            on_delivery(f, &m);
    }
}

/* Has the hub exited by itself? Then its status must be a clean 1 with a
 * line saying why: never a signal (a crash, an abort, a sanitizer). */
static bool
hub_exited(fx *f)
{
    if (f->hub.pid <= 0)
        return true;
    int st;
    if (waitpid(f->hub.pid, &st, WNOHANG) != f->hub.pid)
        return false;
    f->hub.pid = 0;
    f->hub_exits++;
    cr_assert(WIFEXITED(st), "[%s] the hub died of signal %d", f->name,
              WIFSIGNALED(st) ? WTERMSIG(st) : -1);
    f->exit_status = WEXITSTATUS(st);
    cr_assert_eq(f->exit_status, 1,
                 "[%s] the hub exited with status %d (want 1 and a message)",
                 f->name, f->exit_status);
    return true;
}

static size_t
unacked(const fx *f)
{
    size_t n = 0;
    for (size_t i = 0; i < f->n; i++)
        n += !f->all[i]->acked;
    return n;
}

/* Publish n_new new events (window at most in flight) and resend every
 * Nak'd one, until all are Acked, or the hub exits by itself (returns
 * false), or max_ms pass (a failure: the hub hangs). Resends after a Nak
 * wait a little, as a sender that was told "resend later" would. */
static bool
stream(fx *f, int n_new, int window, int max_ms)
{
    uint64_t deadline = hov_mono_ms() + (uint64_t)th_ms(max_ms);
    uint64_t resend_at = 0;
    int published = 0;
    for (;;) {
        if (hub_exited(f))
            return false;
        size_t pend = hov_client_pending(f->pub);
        while (published < n_new && pend < (size_t)window) {
            publish_new(f);
            published++;
            pend++;
        }
        if (f->nresend && hov_mono_ms() >= resend_at) {
            for (size_t i = 0; i < f->nresend; i++)
                if (!f->resend[i]->acked && f->resend[i]->inflight == 0)
                    publish_rec(f, f->resend[i]);
            f->nresend = 0;
            resend_at = hov_mono_ms() + 20;
        }
        pump(f, 5);
        if (published == n_new && f->nresend == 0 &&
            hov_client_pending(f->pub) == 0 && unacked(f) == 0)
            return true;
        cr_assert(hov_mono_ms() < deadline,
                  "[%s] stuck for %d ms: published %d, acked %d, pending "
                  "%zu, naks %d: does the hub hang?",
                  f->name, max_ms, published, f->acked,
                  hov_client_pending(f->pub), f->naks);
    }
}

/* Start the hub and tell whether it became ready (true) or refused to
 * start (false: exited by itself with status 1). */
static bool
start_or_refuse(fx *f)
{
    size_t before = th_log_count(&f->hub, " ready endpoint=");
    size_t refused = th_log_count(&f->hub, "cannot start:");
    int64_t deadline = (int64_t)hov_mono_ms() + th_ms(15000);
    /* th_hub_start asserts readiness; this one accepts a refusal. */
    f->hub.pid = 0;
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        int fd = open(f->hub.log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 2);
            dup2(fd, 1);
        }
        for (int i = 0; i < f->hub.nenv; i++)
            putenv((char *)f->hub.env[i]);
        execv(f->hub.args[0], (char *const *)f->hub.args);
        _exit(127);
    }
    f->hub.pid = pid;
    while ((int64_t)hov_mono_ms() < deadline) {
        if (th_log_count(&f->hub, " ready endpoint=") > before)
            return true;
        if (hub_exited(f)) {
            cr_assert(th_log_count(&f->hub, "cannot start:") > refused,
                      "[%s] the hub exited at start without saying why",
                      f->name);
            f->start_refusals++;
            return false;
        }
        usleep(10000);
    }
    th_hub_kill(&f->hub, SIGKILL);
    cr_assert_fail("[%s] the hub neither started nor exited within 15 s",
                   f->name);
    return false;
}

/* Restart without faults and check that nothing Acked was lost: every
 * Acked event is delivered, as published, exactly once (at least once
 * when a consumer ran during the faults, which may lose settles). The
 * events still un-Acked are resent first, so every event ends Acked. */
static void
recover_and_check(fx *f, bool exactly_once)
{
    if (f->hub.pid > 0 && !hub_exited(f))
        th_hub_stop(&f->hub); /* a clean stop, faults or not */
    size_t acked_before = (size_t)f->acked;
    set_faults(f, "");
    th_hub_start(&f->hub);
    if (f->pub == NULL)
        clients_connect(f, false);
    cr_assert(stream(f, 0, 1, 60000), "[%s] the hub exited after recovery",
              f->name);
    if (f->cons == NULL) {
        hov_error err = {0};
        hov_client_opts co = {.agency = "nursing",
                              .name = "faults-cons",
                              .consume = true,
                              .credit = 64};
        cr_assert(hov_client_new(&f->cons, &co, &err) == HOV_OK);
        cr_assert(hov_client_connect(f->cons, f->hub.endpoint, &err) == HOV_OK);
    }
    uint64_t deadline = hov_mono_ms() + (uint64_t)th_ms(60000);
    size_t missing;
    for (;;) {
        missing = 0;
        for (size_t i = 0; i < f->n; i++)
            missing += f->all[i]->acked && f->all[i]->delivered == 0;
        if (missing == 0 || hov_mono_ms() > deadline)
            break;
        pump(f, 10);
    }
    /* Anything more that comes would be a duplicate. */
    uint64_t quiet = hov_mono_ms() + 300;
    while (hov_mono_ms() < quiet)
        pump(f, 10);
    size_t lost = 0;
    for (size_t i = 0; i < f->n; i++)
        lost += f->all[i]->delivered == 0 && f->all[i]->acked;
    double secs = (double)(hov_mono_ms() - f->t0) / 1000.0;
    printf("FAULT %s rules=\"%s\" injected=%zu acked=%zu lost=%zu naks=%d "
           "(EIO=%d ESTORE=%d ESTOREFULL=%d) resent_dup=%d hub_exits=%d "
           "start_refusals=%d events=%zu deliveries=%d redeliveries=%d "
           "time=%.1fs\n",
           f->name, f->rules, th_log_count(&f->hub, "faultfs: injected"),
           acked_before, lost, f->naks, f->nak_eio, f->nak_store, f->nak_full,
           f->duplicates, f->hub_exits, f->start_refusals, f->n, f->deliveries,
           f->redeliveries, secs);
    fflush(stdout);
    cr_assert_eq(lost, 0, "[%s] %zu Acked events were lost", f->name, lost);
    cr_assert_eq(missing, 0);
    if (exactly_once)
        cr_assert_eq(f->redeliveries, 0,
                     "[%s] %d events were delivered more than once", f->name,
                     f->redeliveries);
    cr_assert_eq((size_t)f->acked, f->n);
    th_hub_stop(&f->hub);
}

/* Every injected fault left a trace the on-call engineer can act on: a
 * failed commit in the log, with the errno's text. */
static void
assert_logged(fx *f, const char *errtext)
{
    if (th_log_count(&f->hub, "faultfs: injected") == 0)
        return;
    cr_assert(th_log_count(&f->hub, errtext) > 0,
              "[%s] faults were injected but the hub never logged '%s'",
              f->name, errtext);
}

/* ----------------------------------------------------------------- cases */

/* fdatasync fails now and then during a stream of publishes, with a
 * consumer settling at the same time (settles in a failed batch are put
 * back and delivered again). */
static void
case_fdatasync_stream(unsigned seed, int n_events)
{
    srand(seed);
    fx f;
    fx_init(&f, "fdatasync-eio-stream");
    cr_log_info("%s seed=%u (HANDOVER_FAULT_SEED to replay)", f.name, seed);
    th_hub_start(&f.hub);
    clients_connect(&f, true);
    cr_assert(stream(&f, 50, 50, 20000)); /* a store with something in it */
    char spec[200];
    snprintf(spec, sizeof spec,
             "fdatasync:EIO:file=data.mdb:after=%d:every=%d:count=%d",
             2 + rand() % 10, 2 + rand() % 4, 3 + n_events / 400);
    set_faults(&f, spec);
    /* A small window: batches stay small, so there are many commits for
     * the faults to hit. */
    cr_assert(stream(&f, n_events, 16, 60000),
              "[%s] the hub exited on a failed fdatasync", f.name);
    cr_assert(f.naks > 0 || th_log_count(&f.hub, "faultfs: injected") == 0);
    assert_logged(&f, "commit failed");
    assert_logged(&f, "Input/output error");
    recover_and_check(&f, false);
    fx_fini(&f);
}

/* The disk fills up during commits: data page writes fail with ENOSPC,
 * some after writing half (a short write), and preallocation fails too. */
static void
case_write_enospc(unsigned seed, int n_events)
{
    srand(seed);
    fx f;
    fx_init(&f, "write-enospc-commit");
    cr_log_info("%s seed=%u", f.name, seed);
    th_hub_start(&f.hub);
    clients_connect(&f, false);
    cr_assert(stream(&f, 50, 50, 20000));
    char spec[400];
    snprintf(spec, sizeof spec,
             "writev:ENOSPC:file=data.mdb:after=%d:every=%d:count=%d;"
             "pwrite:ENOSPC:fd=plain:file=data.mdb:after=%d:every=%d:count=%d:"
             "short=1;"
             "fallocate:ENOSPC:count=0",
             2 + rand() % 8, 2 + rand() % 4, 2 + n_events / 500, 2 + rand() % 8,
             2 + rand() % 4, 2 + n_events / 500);
    set_faults(&f, spec);
    cr_assert(stream(&f, n_events, 16, 60000),
              "[%s] the hub exited on a full disk", f.name);
    assert_logged(&f, "commit failed");
    recover_and_check(&f, true);
    fx_fini(&f);
}

/* fdatasync fails on every commit for a while: the store cannot make
 * anything durable. The hub must Ack nothing meanwhile, Nak every publish
 * with the reason, stay up, and serve again as soon as the disk recovers,
 * without a restart. */
static void
case_eio_repeated(int hold_ms)
{
    fx f;
    fx_init(&f, "fdatasync-eio-repeated");
    th_hub_start(&f.hub);
    clients_connect(&f, false);
    cr_assert(stream(&f, 100, 50, 20000));
    int acked0 = f.acked;
    set_faults(&f, "fdatasync:EIO:file=data.mdb:count=0");
    uint64_t until = hov_mono_ms() + (uint64_t)hold_ms;
    int published = 0;
    uint64_t resend_at = 0;
    while (hov_mono_ms() < until) {
        cr_assert(!hub_exited(&f),
                  "[%s] the hub exited while fdatasync failed, but LMDB "
                  "stays usable after a failed sync",
                  f.name);
        if (hov_client_pending(f.pub) < 20 && published < 2000) {
            publish_new(&f);
            published++;
        }
        if (f.nresend && hov_mono_ms() >= resend_at) {
            for (size_t i = 0; i < f.nresend; i++)
                if (f.resend[i]->inflight == 0)
                    publish_rec(&f, f.resend[i]);
            f.nresend = 0;
            resend_at = hov_mono_ms() + 50;
        }
        pump(&f, 5);
    }
    /* Let what was committed before the switch be answered. */
    cr_assert_eq(f.acked, acked0,
                 "[%s] %d publishes were Acked while no commit could reach "
                 "the disk",
                 f.name, f.acked - acked0);
    cr_assert(f.naks > 0, "[%s] no Nak while every commit failed", f.name);
    assert_logged(&f, "commit failed");
    assert_logged(&f, "Input/output error");
    set_faults(&f, "");
    cr_assert(stream(&f, 100, 50, 30000),
              "[%s] the hub did not serve again once the disk recovered",
              f.name);
    recover_and_check(&f, true);
    fx_fini(&f);
}

/* The meta page write fails: LMDB declares the environment unusable
 * (MDB_PANIC). The hub must Nak the batch, then stop by itself with
 * status 1 and a line naming the cause; a restart without faults finds
 * every Acked event. */
static void
case_meta_eio_exits(unsigned seed, int n_events, bool merge_often)
{
    srand(seed);
    fx f;
    /* Merging the ids index every 200 events puts merge transactions
     * among the batches, so the failed meta write may hit one of them. */
    static const char *merge_args[] = {"--set", "heartbeat_ms=200", "--set",
                                       "ids_merge_at=200", NULL};
    if (merge_often)
        fx_init_args(&f, "meta-write-eio-merge-often", merge_args);
    else
        fx_init(&f, "meta-write-eio-store-broken");
    cr_log_info("%s seed=%u", f.name, seed);
    th_hub_start(&f.hub);
    clients_connect(&f, false);
    cr_assert(stream(&f, 50, 50, 20000));
    char spec[200];
    snprintf(spec, sizeof spec, "pwrite:EIO:fd=sync:file=data.mdb:after=%d",
             3 + rand() % 30);
    set_faults(&f, spec);
    bool done = stream(&f, n_events, 16, 30000);
    cr_assert(!done,
              "[%s] the hub went on after LMDB declared the "
              "environment unusable",
              f.name);
    cr_assert(th_log_count(&f.hub, "the store can no longer be written "
                                   "safely") > 0,
              "[%s] the hub stopped without saying why", f.name);
    cr_assert(th_log_count(&f.hub, "Input/output error") > 0);
    int acked_at_exit = f.acked;
    /* Restart twice: the first time still with the disk failing (it must
     * start, since a start on an existing store writes nothing, or refuse
     * with a message), then healthy. */
    set_faults(&f, "pwrite:EIO:fd=sync:file=data.mdb:count=0");
    if (start_or_refuse(&f)) {
        cr_assert(stream(&f, 0, 1, 30000) || f.hub_exits == 2,
                  "[%s] no answer after the restart", f.name);
    }
    cr_log_info("%s acked before the exit %d", f.name, acked_at_exit);
    recover_and_check(&f, true);
    fx_fini(&f);
}

/* Faults while the hub opens its store: on a fresh folder (creating the
 * environment writes and syncs) and on a store with events in it. The hub
 * either starts or refuses with "cannot start: ..." and status 1. */
static void
case_start(void)
{
    fx f;
    fx_init(&f, "faults-at-start");
    static const char *fresh[] = {
        "pwrite:EIO:file=data.mdb",            /* the first meta pages */
        "fdatasync:EIO:file=data.mdb",         /* the open transaction */
        "pwrite:ENOSPC:fd=sync:file=data.mdb", /* its meta page */
        "writev:ENOSPC:file=data.mdb;pwrite:ENOSPC:fd=plain:file=data.mdb",
        "ftruncate:EIO:file=lock.mdb", /* the reader table */
    };
    for (size_t i = 0; i < sizeof fresh / sizeof fresh[0]; i++) {
        th_rm_rf(f.hub.args[2]); /* what a failed start left behind */
        set_faults(&f, fresh[i]);
        size_t inj = th_log_count(&f.hub, "faultfs: injected");
        bool up = start_or_refuse(&f);
        cr_assert(th_log_count(&f.hub, "faultfs: injected") > inj,
                  "[%s] rule '%s' injected nothing at start", f.name, fresh[i]);
        if (up) {
            /* It started: whatever failed was not needed, or it must serve
             * with Naks. A store created after a failure must work. */
            if (f.pub == NULL)
                clients_connect(&f, false);
            set_faults(&f, "");
            cr_assert(stream(&f, 20, 20, 20000));
            th_hub_stop(&f.hub);
        }
    }
    /* A store with events in it. */
    set_faults(&f, "");
    th_hub_start(&f.hub);
    if (f.pub == NULL)
        clients_connect(&f, false);
    cr_assert(stream(&f, 300, 100, 20000));
    th_hub_stop(&f.hub);
    static const char *existing[] = {
        "ftruncate:EIO:file=lock.mdb",
        "fallocate:ENOSPC:count=0",
        "any:EIO:count=0",
        "fdatasync:EIO:count=0;pwrite:EIO:fd=sync:count=0",
    };
    for (size_t i = 0; i < sizeof existing / sizeof existing[0]; i++) {
        set_faults(&f, existing[i]);
        if (start_or_refuse(&f)) {
            /* Serving on a failing disk: Naks with the reason, or Acks
             * when the failing call is not on the commit path. */
            int before = f.acked;
            for (int k = 0; k < 20 && !hub_exited(&f); k++) {
                publish_new(&f);
                pump(&f, 20);
            }
            uint64_t until = hov_mono_ms() + 500;
            while (hov_mono_ms() < until && !hub_exited(&f))
                pump(&f, 10);
            if (strstr(existing[i], "fallocate"))
                cr_assert(th_log_count(&f.hub, "cannot allocate") > 0,
                          "[%s] no warning when preallocation fails", f.name);
            cr_log_info("%s rule '%s': started, %d more Acked", f.name,
                        existing[i], f.acked - before);
            if (f.hub.pid > 0)
                th_hub_stop(&f.hub);
        }
    }
    recover_and_check(&f, true);
    fx_fini(&f);
}

/* The store breaks in a quiet moment, while the hub merges the ids index
 * on its own (no publish to Nak): the hub must notice and stop with a
 * message, not sit there broken, logging the same failure ten times a
 * second, until the next publish. */
static void
case_idle_merge_broken(void)
{
    fx f;
    fx_init(&f, "idle-merge-meta-eio");
    th_hub_start(&f.hub);
    clients_connect(&f, false);
    cr_assert(stream(&f, 1200, 200, 20000)); /* over 1024: an idle merge */
    hov_client_free(f.pub);
    f.pub = NULL;
    /* First a disk that fails every sync: the merge fails, the store stays
     * usable, and the hub must not retry it on every pass of its loop. */
    set_faults(&f, "fdatasync:EIO:file=data.mdb:count=0");
    uint64_t until = hov_mono_ms() + 3000;
    while (hov_mono_ms() < until && !hub_exited(&f))
        usleep(20000);
    cr_assert(f.hub.pid > 0, "[%s] a failed sync made the hub stop", f.name);
    size_t warned = th_log_count(&f.hub, "merge of the ids index postponed");
    cr_assert(warned >= 1 && warned <= 2,
              "[%s] %zu failed idle merges in 2 s: it should wait between "
              "tries",
              f.name, warned);
    /* Then a failed meta page write, which breaks the store. */
    set_faults(&f, "pwrite:EIO:fd=sync:file=data.mdb:count=0");
    uint64_t deadline = hov_mono_ms() + (uint64_t)th_ms(10000);
    while (!hub_exited(&f) && hov_mono_ms() < deadline)
        usleep(20000);
    cr_assert(th_log_count(&f.hub, "faultfs: injected") > 0,
              "[%s] the idle merge never wrote", f.name);
    cr_assert_eq(f.hub_exits, 1,
                 "[%s] the store broke during an idle merge and the hub "
                 "stayed up (%zu merge warnings)",
                 f.name, th_log_count(&f.hub, "merge of the ids index"));
    cr_assert(th_log_count(&f.hub, "can no longer be written safely") > 0,
              "[%s] the hub stopped without saying why", f.name);
    recover_and_check(&f, true);
    fx_fini(&f);
}

/* ----------------------------------------------------------------- tests */

Test(storage_faults, fdatasync_eio_during_stream, .timeout = 900)
{
    int rounds = long_form() ? 4 : 1;
    for (int i = 0; i < rounds; i++)
        case_fdatasync_stream(seed_for((unsigned)i), long_form() ? 6000 : 1500);
}

Test(storage_faults, write_enospc_during_commit, .timeout = 900)
{
    int rounds = long_form() ? 4 : 1;
    for (int i = 0; i < rounds; i++)
        case_write_enospc(seed_for(100 + (unsigned)i),
                          long_form() ? 6000 : 1500);
}

Test(storage_faults, eio_on_every_commit_naks_then_recovers, .timeout = 900)
{
    case_eio_repeated(long_form() ? 5000 : 1500);
}

Test(storage_faults, meta_write_eio_stops_the_hub, .timeout = 900)
{
    int rounds = long_form() ? 4 : 1;
    for (int i = 0; i < rounds; i++)
        case_meta_eio_exits(seed_for(200 + (unsigned)i),
                            long_form() ? 4000 : 1000, i % 2 == 1);
}

Test(storage_faults, faults_at_start, .timeout = 900)
{
    case_start();
}

Test(storage_faults, store_breaks_during_idle_merge, .timeout = 900)
{
    case_idle_merge_broken();
}
