/* The status socket and handover-ctl: the real hub, its real Unix socket
 * and the real handover-ctl binary run as a process. What the test pushes
 * through the hub must show up in the figures; pause, resume and redrive
 * must work, survive restarts and be audited with the operator's name. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <regex.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "audit.h"
#include "config.h"
#include "handover/timeutil.h"
#include "harness.h"
#include "store.h"

#define T 40 /* seconds per test */

static th_hub hub;
static char cfg_dir[200]; /* a test's own configuration folder, or "" */
static char data_dir[300];
static char sock_path[320];

/* Short heartbeats and back-off. The test's clients answer heartbeats
 * only while the test waits on them: under the sanitizers, beside other
 * tests, one step between waits (handover-ctl run as a process) can take
 * longer than the hub waits for a frame, so the heartbeat scales with the
 * timeout multiplier. */
static const char *const *
fast(void)
{
    static char hb[40];
    static const char *args[] = {
        "--set", hb,
        "--set", "backoff_initial_ms=100",
        "--set", "backoff_max_ms=400",
        NULL,
    };
    snprintf(hb, sizeof hb, "heartbeat_ms=%d", th_ms(200));
    return args;
}

static void
use_hub(const char *const *extra)
{
    th_hub_init(&hub, extra);
    snprintf(data_dir, sizeof data_dir, "%s/data", hub.dir);
    snprintf(sock_path, sizeof sock_path, "%s/hub.sock", data_dir);
    th_hub_start(&hub);
}

static void
teardown(void)
{
    th_hub_fini(&hub);
    th_rm_rf(cfg_dir);
    cfg_dir[0] = '\0';
}

TestSuite(status, .fini = teardown, .timeout = T);

/* ------------------------------------------------------------ helpers */

typedef struct ctl_result {
    int status;
    char out[1 << 17];
    char err[8192];
} ctl_result;

/* Read both pipes to the end (the child may fill either first). */
static void
drain_pipes(int fo, int fe, ctl_result *r)
{
    size_t no = 0, ne = 0;
    struct pollfd p[2] = {{fo, POLLIN, 0}, {fe, POLLIN, 0}};
    int open = 2;
    while (open > 0) {
        cr_assert(poll(p, 2, th_ms(20000)) > 0, "handover-ctl hangs");
        for (int i = 0; i < 2; i++) {
            if (p[i].fd < 0 || !(p[i].revents & (POLLIN | POLLHUP)))
                continue;
            char *buf = i == 0 ? r->out + no : r->err + ne;
            size_t room =
                i == 0 ? sizeof r->out - 1 - no : sizeof r->err - 1 - ne;
            char sink[4096];
            ssize_t k =
                read(p[i].fd, room ? buf : sink, room ? room : sizeof sink);
            if (k <= 0) {
                close(p[i].fd);
                p[i].fd = -1;
                open--;
            } else if (room) {
                *(i == 0 ? &no : &ne) += (size_t)k;
            }
        }
    }
    r->out[no] = '\0';
    r->err[ne] = '\0';
}

/* Run handover-ctl with the words given (NULL-terminated) and capture. */
static void
ctl_argv(ctl_result *r, const char *const *words)
{
    const char *argv[40];
    int n = 0;
    argv[n++] = HANDOVER_CTL_BIN;
    for (; *words && n < 39; words++)
        argv[n++] = *words;
    argv[n] = NULL;
    int po[2], pe[2];
    cr_assert(pipe(po) == 0 && pipe(pe) == 0);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        dup2(po[1], 1);
        dup2(pe[1], 2);
        close(po[0]);
        close(pe[0]);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(po[1]);
    close(pe[1]);
    drain_pipes(po[0], pe[0], r);
    int st;
    cr_assert(waitpid(pid, &st, 0) == pid);
    cr_assert(WIFEXITED(st), "handover-ctl died");
    r->status = WEXITSTATUS(st);
}

/* handover-ctl --data <hub's data folder> words... */
static void
ctl(ctl_result *r, ...)
{
    const char *words[36] = {"--data", data_dir};
    int n = 2;
    va_list ap;
    va_start(ap, r);
    for (const char *w = va_arg(ap, const char *); w && n < 35;
         w = va_arg(ap, const char *))
        words[n++] = w;
    va_end(ap);
    words[n] = NULL;
    ctl_argv(r, words);
}

static ctl_result *
result(void)
{
    static ctl_result r;
    memset(&r, 0, sizeof r);
    return &r;
}

/* handover-ctl --json CMD...; asserts the exit status; returns the parsed
 * object (json_decref it). */
static json_t *
ctl_json(int expect, const char *cmd, const char *arg)
{
    ctl_result *r = result();
    ctl(r, "--json", cmd, arg, NULL);
    cr_assert_eq(r->status, expect, "%s %s: exit %d, not %d; out: %s err: %s",
                 cmd, arg ? arg : "", r->status, expect, r->out, r->err);
    json_error_t je;
    json_t *j = json_loads(r->out, JSON_REJECT_DUPLICATES, &je);
    cr_assert_not_null(j, "%s: not one JSON object (%s): %s", cmd, je.text,
                       r->out);
    cr_assert(json_is_object(j));
    return j;
}

static json_t *
queue_of(json_t *queues, const char *agency)
{
    size_t i;
    json_t *q;
    json_array_foreach(json_object_get(queues, "queues"), i, q)
    {
        if (strcmp(json_string_value(json_object_get(q, "agency")), agency) ==
            0)
            return q;
    }
    cr_assert_fail("no queue %s", agency);
    return NULL;
}

static long long
jint(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    cr_assert(json_is_integer(v), "%s is not an integer", key);
    return json_integer_value(v);
}

/* Poll `queues --json` until the agency's key has value (or fail). */
static void
wait_queue(const char *agency, const char *key, long long want)
{
    uint64_t deadline = hov_mono_ms() + (uint64_t)th_ms(8000);
    long long got = -1;
    while (hov_mono_ms() < deadline) {
        json_t *j = ctl_json(0, "queues", NULL);
        got = jint(queue_of(j, agency), key);
        json_decref(j);
        if (got == want)
            return;
        usleep(50000);
    }
    cr_assert_fail("queue %s: %s is %lld, expected %lld", agency, key, got,
                   want);
}

static json_t *
status_json(int *health_exit)
{
    ctl_result *r = result();
    ctl(r, "--json", "status", NULL);
    cr_assert(r->status <= 2, "status exit %d: %s %s", r->status, r->out,
              r->err);
    *health_exit = r->status;
    json_t *j = json_loads(r->out, 0, NULL);
    cr_assert_not_null(j, "status --json: %s", r->out);
    return j;
}

static bool
has_reason(json_t *st, const char *what)
{
    size_t i;
    json_t *r;
    json_array_foreach(json_object_get(st, "reasons"), i, r)
    {
        if (strcmp(json_string_value(json_object_get(r, "what")), what) == 0)
            return true;
    }
    return false;
}

static void
sock_addr(struct sockaddr_un *a)
{
    memset(a, 0, sizeof *a);
    a->sun_family = AF_UNIX;
    size_t n = strlen(sock_path);
    cr_assert_lt(n, sizeof a->sun_path, "socket path too long: %s", sock_path);
    memcpy(a->sun_path, sock_path, n + 1);
}

/* One raw exchange on the socket, as a script with nc would do it. */
static void
raw_cmd(const char *line, char *out, size_t cap)
{
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un a;
    sock_addr(&a);
    cr_assert(connect(fd, (struct sockaddr *)&a, sizeof a) == 0, "%s: %s",
              sock_path, strerror(errno));
    cr_assert_eq(write(fd, line, strlen(line)), (ssize_t)strlen(line));
    size_t n = 0;
    ssize_t k;
    while (n + 1 < cap && (k = read(fd, out + n, cap - 1 - n)) > 0)
        n += (size_t)k;
    out[n] = '\0';
    close(fd);
}

static void
settle(hov_client *c, const hov_msg *m, hov_settle how, const char *reason)
{
    hov_error err = {0};
    cr_assert(hov_client_settle(c, m->delivery_id, how, reason, &err) == HOV_OK,
              "settle: %s", err.msg);
}

typedef struct audit_find {
    const char *action, *actor, *event_id;
    int found;
    char detail[512];
} audit_find;

static hov_err
audit_match(void *arg, const Handover__Store__AuditRecord *rec, hov_error *err)
{
    (void)err;
    audit_find *f = arg;
    if (strcmp(rec->action, f->action) == 0 &&
        strcmp(rec->actor, f->actor) == 0 &&
        (f->event_id == NULL || strcmp(rec->event_id, f->event_id) == 0)) {
        f->found++;
        snprintf(f->detail, sizeof f->detail, "%s", rec->detail);
    }
    return HOV_OK;
}

/* With the hub stopped: how many audit records have this action and actor
 * (and event id), and does the chain verify? */
static int
audit_count(const char *action, const char *actor, const char *event_id,
            char *detail, size_t cap)
{
    store *st;
    store_txn *txn;
    hov_error err = {0};
    cr_assert(store_new(&st, &err) == HOV_OK);
    cr_assert(store_open(st, data_dir, &err) == HOV_OK, "%s", err.msg);
    uint64_t count = 0, bad = 0;
    cr_assert(audit_verify(st, &count, &bad, &err) == HOV_OK,
              "the audit chain must verify: %s", err.msg);
    audit_find f = {action, actor, event_id, 0, ""};
    cr_assert(store_begin(st, true, &txn, &err) == HOV_OK);
    cr_assert(store_audit_scan(txn, 1, audit_match, &f, &err) == HOV_OK);
    store_abort(txn);
    store_free(st);
    if (detail)
        snprintf(detail, cap, "%s", f.detail);
    return f.found;
}

/* --------------------------------------------------------------- tests */

Test(status, socket_mode_exit_codes_and_a_silent_client)
{
    use_hub(fast());
    struct stat st;
    cr_assert(lstat(sock_path, &st) == 0, "%s: %s", sock_path, strerror(errno));
    cr_assert(S_ISSOCK(st.st_mode));
    cr_assert_eq(st.st_mode & 0777, 0660, "owner and group only, got %o",
                 st.st_mode & 0777);

    ctl_result *r = result();
    ctl(r, "status", NULL);
    cr_assert_eq(r->status, 0, "a quiet hub is OK: %s", r->out);
    cr_assert(strncmp(r->out, "HANDOVER OK", 11) == 0, "%s", r->out);

    /* A client that never sends its command does not hold the loop up,
     * and is closed after about 2 s. */
    int idle = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un a;
    sock_addr(&a);
    cr_assert(connect(idle, (struct sockaddr *)&a, sizeof a) == 0);
    uint64_t t0 = hov_mono_ms();
    ctl(r, "queues", NULL);
    cr_assert_eq(r->status, 0, "served while another client is silent");
    cr_assert_lt(hov_mono_ms() - t0, 1500u);
    char buf[16];
    struct pollfd p = {idle, POLLIN, 0};
    cr_assert_eq(poll(&p, 1, th_ms(5000)), 1, "the silent client is closed");
    cr_assert_eq(read(idle, buf, sizeof buf), 0);
    uint64_t waited = hov_mono_ms() - t0;
    cr_assert(waited >= 1800 && waited < (uint64_t)th_ms(4000),
              "closed after %llu ms", (unsigned long long)waited);
    close(idle);

    /* A dead letter: WARNING (exit 1) with the reason first in line. */
    hov_client *nurse = th_client(&hub, "nursing", "t-np", false, 0);
    hov_sample s;
    hov_sample_init(&s, "discharge", "9998765439");
    hov_sample_set_pathway(&s, 0);
    hov_sample_set_registered_gp(&s, "Z99009");
    th_publish_ok(nurse, &s);
    ctl(r, "status", NULL);
    cr_assert_eq(r->status, 1, "a dead letter is a warning: %s", r->out);
    cr_assert(strncmp(r->out, "HANDOVER WARNING", 16) == 0, "%s", r->out);
    cr_assert(strstr(r->out, "dead letter"), "%s", r->out);
    int health;
    json_t *j = status_json(&health);
    cr_assert_eq(health, 1);
    cr_assert_str_eq(json_string_value(json_object_get(j, "health")),
                     "warning");
    cr_assert(has_reason(j, "dead_letters"));
    cr_assert_eq(jint(j, "dead_letters"), 1);
    json_decref(j);
    hov_client_free(nurse);

    /* A clean stop removes the socket; then nobody answers: UNKNOWN. */
    th_hub_stop(&hub);
    cr_assert(lstat(sock_path, &st) != 0 && errno == ENOENT,
              "the socket is removed on a clean shutdown");
    ctl(r, "status", NULL);
    cr_assert_eq(r->status, 3, "no hub: UNKNOWN");
    cr_assert(strstr(r->out, sock_path) && strstr(r->out, "not running"),
              "the message names the socket and the likely cause: %s", r->out);

    /* A socket file nobody listens on (a hub killed with -9). */
    int dead = socket(AF_UNIX, SOCK_STREAM, 0);
    cr_assert(bind(dead, (struct sockaddr *)&a, sizeof a) == 0);
    close(dead);
    ctl(r, "queues", NULL);
    cr_assert_eq(r->status, 3);
    cr_assert(strstr(r->err, "nobody listens"), "%s", r->err);

    /* The stale file is replaced when the hub starts again. */
    th_hub_start(&hub);
    ctl(r, "status", NULL);
    cr_assert_eq(r->status, 1, "the dead letter is still there: %s", r->out);
    cr_assert(lstat(sock_path, &st) == 0 && (st.st_mode & 0777) == 0660);
    th_hub_stop(&hub);
}

Test(status, store_nearly_full_is_critical)
{
    static const char *args[] = {"--set", "map_size_kb=512", NULL};
    use_hub(args);
    hov_client *gp = th_client(&hub, "gp", "t-gp", false, 0);
    hov_msg m;
    bool full = false;
    for (int i = 0; i < 600 && !full; i++) {
        hov_sample s;
        hov_sample_init(&s, "referral", NULL);
        hov_sample_set_size(&s, 3000);
        th_publish(gp, &s, &m);
        full = m.kind == HOV_MSG_NAK && m.code == HOV_ESTOREFULL;
    }
    cr_assert(full, "the store filled up");
    ctl_result *r = result();
    ctl(r, "status", NULL);
    cr_assert_eq(r->status, 2, "a full store is CRITICAL: %s", r->out);
    cr_assert(strncmp(r->out, "HANDOVER CRITICAL - store nearly full", 37) == 0,
              "the worst reason comes first: %s", r->out);
    int health;
    json_t *j = status_json(&health);
    cr_assert_eq(health, 2);
    cr_assert(json_is_true(
        json_object_get(json_object_get(j, "store"), "near_full")));
    json_t *first = json_array_get(json_object_get(j, "reasons"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(first, "what")),
                     "store_full");
    json_decref(j);
    hov_client_free(gp);
    th_hub_stop(&hub);
}

Test(status, figures_match_what_was_pushed)
{
    use_hub(fast());
    hov_client *gp = th_client(&hub, "gp", "t-gp", false, 0);
    enum { N = 6, K = 4 };
    for (int i = 0; i < N; i++) {
        hov_sample s;
        hov_sample_init(&s, "referral", "9996118428");
        th_publish_ok(gp, &s);
    }
    /* Nobody consumes nursing yet: all N wait. */
    json_t *j = ctl_json(0, "queues", NULL);
    json_t *q = queue_of(j, "nursing");
    cr_assert_eq(jint(q, "depth"), N);
    cr_assert_eq(jint(q, "in_flight"), 0);
    cr_assert_eq(jint(q, "in_total"), N);
    cr_assert_eq(jint(q, "in_per_min_1m"), N);
    cr_assert(json_real_value(json_object_get(q, "oldest_undelivered_age_s")) >=
              0.0);
    cr_assert_eq(jint(queue_of(j, "gp"), "depth"), 0);
    json_decref(j);
    int health;
    j = status_json(&health);
    cr_assert_eq(jint(json_object_get(j, "counters"), "accepted"), N);
    cr_assert(has_reason(j, "adapter_missing"),
              "deliveries wait for an adapter that never came");
    json_decref(j);

    /* A consumer takes K of them, one at a time (one patient). */
    hov_client *n = th_client(&hub, "nursing", "t-n", true, 8);
    for (int i = 0; i < K; i++) {
        hov_msg m;
        th_next_delivery(n, 5000, &m, NULL);
        settle(n, &m, HOV_SETTLE_DONE, NULL);
    }
    wait_queue("nursing", "out_total", K);
    wait_queue("nursing", "depth", N - K);
    wait_queue("nursing", "in_flight", 1); /* the next one is out */
    j = status_json(&health);
    cr_assert_eq(jint(json_object_get(j, "counters"), "delivered"), K);
    cr_assert_eq(health, 0, "a consumer is connected again: OK");
    json_decref(j);

    /* The adapter is listed connected, with its credit and in flight. */
    j = ctl_json(0, "adapters", NULL);
    json_t *a, *found = NULL;
    size_t i;
    json_array_foreach(json_object_get(j, "adapters"), i, a)
    {
        if (strcmp(json_string_value(json_object_get(a, "client")), "t-n") == 0)
            found = a;
    }
    cr_assert_not_null(found, "the consumer is listed");
    cr_assert(json_is_true(json_object_get(found, "connected")));
    cr_assert_eq(jint(found, "credit"), 8);
    cr_assert_eq(jint(found, "in_flight"), 1);
    cr_assert(json_real_value(json_object_get(found, "last_heard_age_s")) <
              5.0);
    json_decref(j);

    /* Once its client is gone it shows as down, since when, and the
     * deliveries waiting for it are a warning. */
    hov_client_free(n);
    uint64_t deadline = hov_mono_ms() + (uint64_t)th_ms(5000);
    bool down = false;
    while (!down && hov_mono_ms() < deadline) {
        j = ctl_json(0, "adapters", NULL);
        json_array_foreach(json_object_get(j, "adapters"), i, a)
        {
            if (strcmp(json_string_value(json_object_get(a, "client")),
                       "t-n") == 0 &&
                json_is_false(json_object_get(a, "connected"))) {
                down = true;
                cr_assert(json_is_string(json_object_get(a, "since")));
                cr_assert(json_is_null(json_object_get(a, "credit")));
            }
        }
        json_decref(j);
        if (!down)
            usleep(50000);
    }
    cr_assert(down, "the freed adapter is shown as down");
    j = status_json(&health);
    cr_assert_eq(health, 1);
    cr_assert(has_reason(j, "adapter_down"));
    json_decref(j);
    ctl_result *r = result();
    ctl(r, "adapters", NULL);
    cr_assert(strstr(r->out, "t-n") && strstr(r->out, "DOWN"), "%s", r->out);
    /* The one it held is back in the queue. */
    wait_queue("nursing", "in_flight", 0);
    wait_queue("nursing", "depth", N - K);
    hov_client_free(gp);
    th_hub_stop(&hub);
}

static char config_path[320];

static void
write_config(bool with_z99009)
{
    FILE *f = fopen(config_path, "w");
    cr_assert_not_null(f);
    const char *yaml = config_default_yaml;
    const char *orgs = strstr(yaml, "organisations:\n");
    cr_assert_not_null(orgs);
    size_t head = (size_t)(orgs - yaml) + strlen("organisations:\n");
    fwrite(yaml, 1, head, f);
    if (with_z99009)
        fputs("  - {code: Z99009, agency: gp, name: Dalesend Practice}\n", f);
    fputs(yaml + head, f);
    cr_assert(fclose(f) == 0);
}

Test(status, dead_letters_redrive_needs_an_operator_and_is_audited)
{
    static char cfg_arg[320];
    static const char *args[] = {"--set", "heartbeat_ms=200", "--config",
                                 cfg_arg, NULL};
    th_tmpdir(cfg_dir, sizeof cfg_dir);
    snprintf(config_path, sizeof config_path, "%s/hub.yaml", cfg_dir);
    snprintf(cfg_arg, sizeof cfg_arg, "%s", config_path);
    write_config(false);
    use_hub(args);

    /* Two dead letters: a practice the hub does not know, and a delivery
     * the partner rejected. */
    hov_client *pub = th_client(&hub, "nursing", "t-np", false, 0);
    hov_client *gp = th_client(&hub, "gp", "t-gp", true, 8);
    hov_client *nurse = th_client(&hub, "nursing", "t-n", true, 8);
    hov_sample dis, ref;
    hov_sample_init(&dis, "discharge", "9998765439");
    hov_sample_set_pathway(&dis, 0);
    hov_sample_set_registered_gp(&dis, "Z99009");
    th_publish_ok(pub, &dis);
    hov_msg m;
    th_next_delivery(nurse, 5000, &m, NULL); /* its district nursing copy */
    settle(nurse, &m, HOV_SETTLE_DONE, NULL);
    hov_sample_init(&ref, "referral", "9996118428");
    th_publish_ok(gp, &ref);
    th_next_delivery(nurse, 5000, &m, NULL);
    cr_assert_str_eq(m.event_id, ref.event_id);
    settle(nurse, &m, HOV_SETTLE_REJECTED, "AE: unknown patient");

    uint64_t deadline = hov_mono_ms() + (uint64_t)th_ms(5000);
    json_t *j = NULL;
    while (hov_mono_ms() < deadline) {
        j = ctl_json(0, "dead-letters", NULL);
        if (jint(j, "total") == 2)
            break;
        json_decref(j);
        j = NULL;
        usleep(50000);
    }
    cr_assert_not_null(j, "both dead letters are listed");
    bool saw_dis = false, saw_ref = false;
    size_t i;
    json_t *d;
    json_array_foreach(json_object_get(j, "dead_letters"), i, d)
    {
        const char *id = json_string_value(json_object_get(d, "event_id"));
        const char *why = json_string_value(json_object_get(d, "reason"));
        if (strcmp(id, dis.event_id) == 0) {
            saw_dis = true;
            cr_assert_str_eq(
                json_string_value(json_object_get(d, "destination")), "Z99009");
            cr_assert(strstr(why, "Z99009 is not configured"), "%s", why);
        } else if (strcmp(id, ref.event_id) == 0) {
            saw_ref = true;
            cr_assert(strstr(why, "AE: unknown patient"), "%s", why);
            cr_assert_eq(jint(d, "attempts"), 1);
        }
        cr_assert(json_is_string(json_object_get(d, "dead_at")));
    }
    cr_assert(saw_dis && saw_ref);
    json_decref(j);

    /* show: the dead letter and the event's whole lifecycle. */
    ctl_result *r = result();
    ctl(r, "dead-letters", "show", NULL);
    cr_assert_eq(r->status, 4, "show wants an event id");
    ctl(r, "--json", "dead-letters", "show", dis.event_id, NULL);
    cr_assert_eq(r->status, 0, "%s", r->err);
    j = json_loads(r->out, 0, NULL);
    cr_assert_not_null(j);
    cr_assert_eq(json_array_size(json_object_get(j, "deliveries")), 2,
                 "the GP copy (dead) and the nursing copy (delivered)");
    cr_assert_str_eq(json_string_value(json_object_get(
                         json_object_get(j, "event"), "event_type")),
                     "discharge");
    json_decref(j);

    /* The hub refuses a redrive without an operator name. */
    char raw[4096], line[128];
    snprintf(line, sizeof line, "redrive %s\n", ref.event_id);
    raw_cmd(line, raw, sizeof raw);
    cr_assert(strncmp(raw, "ERROR\n", 6) == 0, "%s", raw);
    cr_assert(strstr(raw, "--operator"), "%s", raw);
    ctl(r, "--operator", "", "dead-letters", "redrive", ref.event_id, NULL);
    cr_assert_eq(r->status, 4, "an empty operator name is refused");

    /* A practice that is still not configured cannot be redriven. */
    ctl(r, "--operator", "alice", "dead-letters", "redrive", dis.event_id,
        NULL);
    cr_assert_eq(r->status, 4, "%s", r->out);
    cr_assert(strstr(r->err, "not a configured organisation"), "%s", r->err);

    /* The rejected one goes out again, as a first attempt. */
    ctl(r, "--operator", "alice", "dead-letters", "redrive", ref.event_id,
        NULL);
    cr_assert_eq(r->status, 0, "%s %s", r->out, r->err);
    cr_assert(strstr(r->out, "queued again"), "%s", r->out);
    th_next_delivery(nurse, 5000, &m, NULL);
    cr_assert_str_eq(m.event_id, ref.event_id);
    cr_assert_eq(m.attempt, 1);
    settle(nurse, &m, HOV_SETTLE_DONE, NULL);
    j = ctl_json(0, "dead-letters", NULL);
    cr_assert_eq(jint(j, "total"), 1);
    json_decref(j);

    /* Once the practice is configured, "redrive all" sends it. */
    hov_client_free(pub);
    hov_client_free(gp);
    hov_client_free(nurse);
    th_hub_stop(&hub);
    write_config(true);
    th_hub_start(&hub);
    gp = th_client(&hub, "gp", "t-gp", true, 8);
    ctl(r, "--operator", "bob", "--json", "redrive", "all", NULL);
    cr_assert_eq(r->status, 0, "%s %s", r->out, r->err);
    j = json_loads(r->out, 0, NULL);
    cr_assert_eq(json_array_size(json_object_get(j, "redriven")), 1);
    json_decref(j);
    th_next_delivery(gp, 5000, &m, NULL);
    cr_assert_str_eq(m.event_id, dis.event_id);
    cr_assert_str_eq(m.destination, "Z99009");
    settle(gp, &m, HOV_SETTLE_DONE, NULL);
    wait_queue("gp", "out_total", 1);
    ctl(r, "status", NULL);
    cr_assert_eq(r->status, 0, "no dead letters left: %s", r->out);
    hov_client_free(gp);
    th_hub_stop(&hub);

    /* Each redrive is in the audit log under the operator's name, and the
     * chain still verifies. */
    char detail[512];
    cr_assert_eq(audit_count(AUDIT_REDRIVEN, "operator:alice", ref.event_id,
                             detail, sizeof detail),
                 1);
    cr_assert(strstr(detail, "RZZ40") && strstr(detail, "peer uid"), "%s",
              detail);
    cr_assert_eq(
        audit_count(AUDIT_REDRIVEN, "operator:bob", dis.event_id, NULL, 0), 1);
    cr_assert_eq(
        audit_count(AUDIT_REDRIVEN, "operator:alice", dis.event_id, NULL, 0), 0,
        "the refused redrive changed nothing");
}

Test(status, pause_holds_deliveries_across_restarts)
{
    use_hub(fast());
    ctl_result *r = result();
    ctl(r, "pause", "nursing", "--operator", "carol", NULL);
    cr_assert_eq(r->status, 0, "%s %s", r->out, r->err);
    ctl(r, "pause", "district", "--operator", "carol", NULL);
    cr_assert_eq(r->status, 4, "not an agency");

    hov_client *gp = th_client(&hub, "gp", "t-gp", false, 0);
    hov_client *n = th_client(&hub, "nursing", "t-n", true, 8);
    hov_sample s;
    hov_sample_init(&s, "referral", NULL);
    th_publish_ok(gp, &s); /* still accepted and queued */
    th_no_delivery(n, 800);
    json_t *j = ctl_json(0, "queues", NULL);
    json_t *q = queue_of(j, "nursing");
    cr_assert(json_is_true(json_object_get(q, "paused")));
    cr_assert_str_eq(json_string_value(json_object_get(q, "paused_by")),
                     "carol");
    cr_assert_eq(jint(q, "depth"), 1);
    json_decref(j);
    int health;
    j = status_json(&health);
    cr_assert_eq(health, 1, "a paused destination is a warning");
    cr_assert(has_reason(j, "paused"));
    json_decref(j);

    /* Stopped cleanly, and killed: the pause is in the store. */
    hov_client_free(n);
    hov_client_free(gp);
    th_hub_stop(&hub);
    th_hub_start(&hub);
    th_hub_kill(&hub, SIGKILL);
    th_hub_start(&hub);
    n = th_client(&hub, "nursing", "t-n", true, 8);
    th_no_delivery(n, 800);
    j = ctl_json(0, "queues", NULL);
    cr_assert(json_is_true(json_object_get(queue_of(j, "nursing"), "paused")));
    json_decref(j);

    ctl(r, "resume", "nursing", "--operator", "carol", NULL);
    cr_assert_eq(r->status, 0, "%s %s", r->out, r->err);
    hov_msg m;
    th_next_delivery(n, 5000, &m, NULL);
    cr_assert_str_eq(m.event_id, s.event_id);
    settle(n, &m, HOV_SETTLE_DONE, NULL);
    ctl(r, "resume", "nursing", "--operator", "carol", NULL);
    cr_assert_eq(r->status, 0);
    cr_assert(strstr(r->out, "nothing changed"), "%s", r->out);
    hov_client_free(n);
    th_hub_stop(&hub);

    char detail[512];
    cr_assert_eq(audit_count(AUDIT_PAUSED, "operator:carol", NULL, detail,
                             sizeof detail),
                 1, "one pause, audited once");
    cr_assert(strstr(detail, "nursing"), "%s", detail);
    cr_assert_eq(audit_count(AUDIT_RESUMED, "operator:carol", NULL, NULL, 0), 1,
                 "resuming twice changes (and audits) once");
}

Test(status, overdue_outcomes)
{
    use_hub(fast());
    hov_client *gp = th_client(&hub, "gp", "t-gp", false, 0);
    hov_client *n = th_client(&hub, "nursing", "t-n", true, 8);
    uint64_t now = hov_now_ms();

    /* A two-hour crisis referral made an hour ago: its 30 minutes are up. */
    hov_sample late;
    hov_sample_init(&late, "referral", "9996118428");
    late.ev.priority = (char *)"two_hour_crisis";
    hov_rfc3339_format(now - 3600 * 1000, late.occurred_at);
    th_publish_ok(gp, &late);
    /* A routine one made now is not due for a week. */
    hov_sample fresh;
    hov_sample_init(&fresh, "referral", "9993001007");
    th_publish_ok(gp, &fresh);

    json_t *j = ctl_json(0, "overdue", NULL);
    cr_assert_eq(jint(j, "count"), 1);
    json_t *o = json_array_get(json_object_get(j, "overdue"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(o, "event_id")),
                     late.event_id);
    cr_assert_str_eq(json_string_value(json_object_get(o, "receiver")),
                     "RZZ40");
    cr_assert_str_eq(json_string_value(json_object_get(o, "agency")),
                     "nursing");
    double by = json_real_value(json_object_get(o, "overdue_s"));
    cr_assert(by > 1700 && by < 1900, "30 minutes late, not %f", by);
    json_decref(j);
    int health;
    j = status_json(&health);
    cr_assert_eq(health, 1);
    cr_assert(has_reason(j, "overdue"));
    cr_assert_eq(jint(json_object_get(j, "overdue"), "count"), 1);
    json_decref(j);

    /* Nursing receives it and answers: no longer overdue. */
    hov_msg m;
    for (int i = 0; i < 2; i++) {
        th_next_delivery(n, 5000, &m, NULL);
        settle(n, &m, HOV_SETTLE_DONE, NULL);
    }
    hov_sample out;
    hov_sample_init(&out, "outcome", "9996118428");
    hov_sample_set_reply(&out, late.event_id, "accepted");
    th_publish_ok(n, &out);
    j = ctl_json(0, "overdue", NULL);
    cr_assert_eq(jint(j, "count"), 0, "answered by its receiver");
    json_decref(j);

    /* A discharge two days ago that nobody answered: overdue for each of
     * its three receivers, also after a restart (kept in the store). */
    hov_sample dis;
    hov_sample_init(&dis, "discharge", "9992468130");
    hov_rfc3339_format(now - 2 * 86400 * 1000ull, dis.occurred_at);
    hov_client *trust = th_client(&hub, "nursing", "t-trust", false, 0);
    th_publish_ok(trust, &dis);
    j = ctl_json(0, "overdue", NULL);
    cr_assert_eq(jint(j, "count"), 3, "gp, nursing and social");
    json_decref(j);
    hov_client_free(trust);
    hov_client_free(gp);
    hov_client_free(n);
    th_hub_stop(&hub);
    th_hub_start(&hub);
    j = ctl_json(0, "overdue", NULL);
    cr_assert_eq(jint(j, "waiting_for_outcomes"), 4,
                 "the fresh referral and the discharge's three receivers, "
                 "from the store's waiting index at once after the start");
    cr_assert_eq(jint(j, "count"), 3,
                 "the discharge is still overdue; the answered referral is "
                 "not");
    size_t i;
    json_array_foreach(json_object_get(j, "overdue"), i, o)
    {
        cr_assert_str_eq(json_string_value(json_object_get(o, "event_id")),
                         dis.event_id);
    }
    json_decref(j);
    ctl_result *r = result();
    ctl(r, "overdue", NULL);
    cr_assert(strstr(r->out, "3 overdue outcomes") &&
                  strstr(r->out, dis.event_id),
              "%s", r->out);
    th_hub_stop(&hub);
}

/* Prometheus text exposition: comments, then `name{labels} value`. */
Test(status, metrics_are_prometheus_text)
{
    use_hub(fast());
    hov_client *gp = th_client(&hub, "gp", "t-gp", false, 0);
    for (int i = 0; i < 2; i++) {
        hov_sample s;
        hov_sample_init(&s, "referral", NULL);
        th_publish_ok(gp, &s);
    }
    ctl_result *r = result();
    ctl(r, "metrics", NULL);
    cr_assert_eq(r->status, 0, "%s", r->err);
    regex_t sample, help, type;
    cr_assert(regcomp(&sample,
                      "^([a-zA-Z_:][a-zA-Z0-9_:]*)"
                      "(\\{[a-zA-Z_][a-zA-Z0-9_]*=\"[^\"]*\""
                      "(,[a-zA-Z_][a-zA-Z0-9_]*=\"[^\"]*\")*\\})? "
                      "[-+]?([0-9]+(\\.[0-9]*)?|\\.[0-9]+)([eE][-+]?[0-9]+)?$",
                      REG_EXTENDED) == 0);
    cr_assert(regcomp(&help, "^# HELP [a-zA-Z_:][a-zA-Z0-9_:]* .+$",
                      REG_EXTENDED) == 0);
    cr_assert(regcomp(&type,
                      "^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (gauge|counter)$",
                      REG_EXTENDED) == 0);
    char typed[64][64];
    int ntyped = 0, nsamples = 0;
    bool depth_ok = false, up_ok = false, accepted_ok = false, dead_ok = false;
    for (char *line = r->out, *next; *line; line = next) {
        next = strchr(line, '\n');
        cr_assert_not_null(next, "every line ends with a newline");
        *next++ = '\0';
        regmatch_t mt[3];
        if (strncmp(line, "# HELP ", 7) == 0) {
            cr_assert(regexec(&help, line, 0, NULL, 0) == 0, "%s", line);
            continue;
        }
        if (strncmp(line, "# TYPE ", 7) == 0) {
            cr_assert(regexec(&type, line, 2, mt, 0) == 0, "%s", line);
            cr_assert_lt(ntyped, 64);
            snprintf(typed[ntyped++], 64, "%.*s",
                     (int)(mt[1].rm_eo - mt[1].rm_so), line + mt[1].rm_so);
            continue;
        }
        cr_assert(regexec(&sample, line, 2, mt, 0) == 0,
                  "not a Prometheus sample line: '%s'", line);
        char name[64];
        snprintf(name, sizeof name, "%.*s", (int)(mt[1].rm_eo - mt[1].rm_so),
                 line + mt[1].rm_so);
        bool declared = false;
        for (int k = 0; k < ntyped; k++)
            declared = declared || strcmp(typed[k], name) == 0;
        cr_assert(declared, "%s has no # TYPE before it", name);
        nsamples++;
        if (strcmp(line, "handover_queue_depth{agency=\"nursing\"} 2") == 0)
            depth_ok = true;
        if (strcmp(line, "handover_adapter_up{agency=\"gp\"} 1") == 0)
            up_ok = true;
        if (strcmp(line, "handover_events_accepted_total 2") == 0)
            accepted_ok = true;
        if (strcmp(line, "handover_dead_letters 0") == 0)
            dead_ok = true;
    }
    regfree(&sample);
    regfree(&help);
    regfree(&type);
    cr_assert_gt(nsamples, 30);
    cr_assert(depth_ok && up_ok && accepted_ok && dead_ok,
              "the figures are the ones pushed (depth %d, up %d, accepted "
              "%d, dead letters %d)",
              depth_ok, up_ok, accepted_ok, dead_ok);
    hov_client_free(gp);
    th_hub_stop(&hub);
}

/* A backlog longer than queue_memory_max waits in the store: the first
 * deliveries are held in memory, the rest read back in order as the queue
 * drains, also after a crash and a restart. Each is delivered once, each
 * patient's in the order sent, and the figures say where they wait. */
Test(status, backlog_beyond_memory_waits_in_the_store)
{
    static const char *args[] = {"--set", "queue_memory_max=8", NULL};
    use_hub(args);
    hov_client *gp = th_client(&hub, "gp", "t-gp", false, 0);
    enum { N = 60, M = 12, P = 3 };
    static const char *nhs[P] = {"9996118428", "9993001007", "9992468130"};
    static char ids[N + M][40];
    for (int i = 0; i < N; i++) {
        if (i == N / 2) {
            /* Killed with a spilled backlog: a restart holds the first 8
             * again and counts the rest. */
            hov_client_free(gp);
            th_hub_kill(&hub, SIGKILL);
            th_hub_start(&hub);
            gp = th_client(&hub, "gp", "t-gp", false, 0);
        }
        hov_sample s;
        hov_sample_init(&s, "referral", nhs[i % P]);
        th_publish_ok(gp, &s);
        snprintf(ids[i], sizeof ids[i], "%s", s.event_id);
    }
    json_t *j = ctl_json(0, "queues", NULL);
    json_t *q = queue_of(j, "nursing");
    cr_assert_eq(jint(q, "depth"), N);
    cr_assert_eq(jint(q, "in_memory"), 8);
    cr_assert_eq(jint(q, "in_store_only"), N - 8);
    json_decref(j);

    hov_client *n = th_client(&hub, "nursing", "t-n", true, 4);
    static bool seen[N + M];
    for (int k = 0; k < N + M; k++) {
        if (k == 1) {
            /* One settled: the memory has room again while older ones
             * still wait in the store. Those sent now must queue behind
             * them, not in the room. */
            wait_queue("nursing", "depth", N - 1);
            json_t *dj = ctl_json(0, "queues", NULL);
            cr_assert_lt(jint(queue_of(dj, "nursing"), "in_memory"), 8);
            cr_assert_gt(jint(queue_of(dj, "nursing"), "in_store_only"), 0);
            json_decref(dj);
            for (int i = N; i < N + M; i++) {
                hov_sample s;
                hov_sample_init(&s, "referral", nhs[i % P]);
                th_publish_ok(gp, &s);
                snprintf(ids[i], sizeof ids[i], "%s", s.event_id);
            }
        }
        hov_msg m;
        th_next_delivery(n, 5000, &m, NULL);
        int i = 0;
        while (i < N + M && strcmp(ids[i], m.event_id) != 0)
            i++;
        cr_assert_lt(i, N + M, "delivery %d is an event that was sent", k);
        cr_assert_not(seen[i], "event %d delivered twice", i);
        for (int e = i % P; e < i; e += P)
            cr_assert(seen[e], "event %d of its patient overtook event %d", i,
                      e);
        seen[i] = true;
        settle(n, &m, HOV_SETTLE_DONE, NULL);
    }
    th_no_delivery(n, 500);
    j = ctl_json(0, "queues", NULL);
    q = queue_of(j, "nursing");
    cr_assert_eq(jint(q, "depth"), 0);
    cr_assert_eq(jint(q, "in_memory"), 0);
    cr_assert_eq(jint(q, "in_store_only"), 0);
    json_decref(j);
    hov_client_free(gp);
    hov_client_free(n);
    th_hub_stop(&hub);
}
