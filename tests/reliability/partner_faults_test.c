/* Partner faults (issue 8, item 3): the real hub, the four real adapters
 * and their partners' simulators as processes. Each partner is made to
 * fail in turn: down (not running), answering errors, hanging (no
 * answer), accepting slowly. While it lasts, `handover-ctl queues --json`
 * and `status --json` must show that agency's queue growing; once the
 * partner recovers, the queue must drain to 0 with every event accepted by
 * the partner (at least once) and no dead letter. A partner that never
 * recovers must see its deliveries dead-lettered only after max_attempts,
 * one dead letter per event, with the reason.
 *
 * The four partners are faulted at the same time, one kind of fault after
 * another: the queues are per agency, so the figures stay per partner and
 * the suite takes a quarter of the time. While a partner is down,
 * refusing or hanging, status must warn (partner_failing, queue_slow).
 * Each case prints a line
 *   PARTNER <agency> mode=<fault> for=<s> events=... peak_depth=...
 * which scripts/reliability.sh collects.
 *
 * Short form (default): a few seconds per fault. Long form
 * (HANDOVER_RELIABILITY_LONG=1): minutes per fault, to show the queues
 * grow and drain at that scale.
 *
 * The council's partner is a file drop: the adapter's delivery is the
 * fsync'd outbox file, so a council that does not take files piles them up
 * in the outbox while the hub's queue stays empty; what makes the hub's
 * queue grow is an outbox the adapter cannot write. Its hang is a share
 * that blocks: each delivery's temporary file is a FIFO nobody reads, so
 * the adapter's open() blocks as on a stuck network file system.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "handover.pb-c.h"
#include "handover/timeutil.h"
#include "harness.h"
#include "map_out.h"

/* Brackenby Befrienders' test secret (samples/README.md). */
#define SECRET_0002                                                            \
    "handover-test-secret-brackenby-befrienders-NOT-FOR-PRODUCTION"

enum { AG_GP, AG_NURSING, AG_SOCIAL, AG_VOLUNTARY, AG_COUNT };
static const char *const ag_name[AG_COUNT] = {"gp", "nursing", "social",
                                              "voluntary"};
/* Where each partner's events are routed (the built-in configuration). */
static const char *const ag_dest[AG_COUNT] = {"Z99001", "RZZ40", "8ZZ99",
                                              "local:VCS-0002"};

typedef enum { F_DOWN, F_ERROR, F_HANG, F_SLOW, F_COUNT } fault;
static const char *const fault_name[F_COUNT] = {"down", "error", "hang",
                                                "slow"};

/* The durations of one form. */
typedef struct form {
    bool long_form;
    int fault_s[F_COUNT];    /* how long each fault lasts */
    int publish_every_ms;    /* one event per partner this often... */
    int publish_max;         /* ...up to this many per case (0: no cap) */
    int publish_stop_s;      /* ...and none in the last seconds of a fault */
    int drain_ms;            /* how long a drain may take (scaled) */
    const char *timeout_ms;  /* the adapters' partner timeouts */
    const char *backoff_max; /* the hub's backoff_max_ms */
    const char *slow[AG_COUNT];
    const char *slow_interval; /* council-sim: one file per interval */
    int status_every_ms;
} form;

static const form short_form = {
    .fault_s = {4, 4, 4, 4},
    .publish_every_ms = 125,
    .publish_max = 16,
    .publish_stop_s = 1,
    .drain_ms = 30000,
    .timeout_ms = "1500",
    .backoff_max = "1000",
    /* 2 in flight at once (partner.concurrency) x 1 s: 2 a second, against
     * a burst of 16; nursing takes one at a time. */
    .slow = {"delay:1000", "delay:300", NULL, "delay:1000"},
    .slow_interval = "400",
    .status_every_ms = 1000,
};

static const form long_form = {
    .long_form = true,
    .fault_s = {150, 90, 60, 60},
    .publish_every_ms = 1000,
    .publish_max = 0,
    .publish_stop_s = 10,
    .drain_ms = 180000,
    .timeout_ms = "5000",
    .backoff_max = "10000",
    /* About 0.67 a second against 1 a second published. */
    .slow = {"delay:3000", "delay:1500", NULL, "delay:3000"},
    .slow_interval = "1500",
    .status_every_ms = 10000,
};

/* One partner: its adapter, its simulator and the figures of a case. */
typedef struct partner {
    int ag;
    th_proc adapter, sim;
    char mode_file[300], sim_log[300];
    char listen_port[16], sim_port[16];
    char sets[6][400];
    const char *aargv[24], *sargv[24], *slow_argv[24];
    /* this case */
    const char *mode;
    bool active;
    char (*ids)[37];
    size_t n, cap;
    long long out0;
    size_t peak_depth, peak_flight, peak_outbox, depth_end, outbox_end;
    size_t status_depth_end;
    double oldest_first, oldest_max, oldest_end;
    double drained_s;
    bool drained;
} partner;

typedef struct rig {
    th_hub hub;
    const form *fm;
    char dir[256], data[300];
    char inbox[300], outbox[300], away[320], taken[300], orgs[300];
    partner p[AG_COUNT];
    hov_client *trust, *practice; /* publishers: nursing and gp agencies */
    bool share_hangs;             /* social hang: FIFOs in the outbox */
    int fifo_fd[512];             /* their read ends, opened to recover */
    size_t nfifo;
    char health[16];   /* the worst health seen in a case */
    char reasons[256]; /* the reasons seen in a case */
} rig;

static rig R;

/* ------------------------------------------------------------ helpers */

static double
secs_since(uint64_t t0)
{
    return (double)(hov_mono_ms() - t0) / 1000.0;
}

static bool
proc_alive(th_proc *p)
{
    if (p->pid <= 0)
        return false;
    int st;
    if (waitpid(p->pid, &st, WNOHANG) == p->pid) {
        p->pid = 0;
        return false;
    }
    return true;
}

/* A valid NHS number in the 999 test range, a different one each call, so
 * every event has its own patient FIFO and nothing waits behind another. */
static void
nhs_next(char out[11])
{
    static unsigned k = 200000;
    for (;;) {
        char d[10];
        snprintf(d, sizeof d, "999%06u", k++ % 1000000);
        int sum = 0;
        for (int i = 0; i < 9; i++)
            sum += (d[i] - '0') * (10 - i);
        int c = 11 - sum % 11;
        if (c == 11)
            c = 0;
        if (c == 10)
            continue;
        memcpy(out, d, 9);
        out[9] = (char)('0' + c);
        out[10] = '\0';
        return;
    }
}

static void
write_mode(const partner *p, const char *mode)
{
    FILE *f = fopen(p->mode_file, "w");
    cr_assert_not_null(f);
    fprintf(f, "%s\n", mode);
    fclose(f);
}

static size_t
count_json(const char *dir)
{
    DIR *d = opendir(dir);
    size_t n = 0;
    struct dirent *e;
    while (d != NULL && (e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name);
        if (l > 5 && strcmp(e->d_name + l - 5, ".json") == 0)
            n++;
    }
    if (d != NULL)
        closedir(d);
    return n;
}

/* ---------------------------------------------------------- handover-ctl */

/* handover-ctl --data DIR --json CMD [ARG]: the parsed answer. */
static json_t *
ctl_json(const char *cmd, const char *arg, int *exit_status)
{
    const char *argv[8];
    int n = 0;
    argv[n++] = HANDOVER_CTL_BIN;
    argv[n++] = "--data";
    argv[n++] = R.data;
    argv[n++] = "--json";
    argv[n++] = cmd;
    if (arg != NULL)
        argv[n++] = arg;
    argv[n] = NULL;
    int po[2];
    cr_assert(pipe(po) == 0);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        dup2(po[1], 1);
        int dn = open("/dev/null", O_WRONLY);
        if (dn >= 0)
            dup2(dn, 2);
        close(po[0]);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(po[1]);
    size_t len = 0, cap = 1 << 16;
    char *buf = malloc(cap);
    cr_assert_not_null(buf);
    for (;;) {
        if (cap - len < 4096) {
            cap *= 2;
            buf = realloc(buf, cap);
            cr_assert_not_null(buf);
        }
        ssize_t k = read(po[0], buf + len, cap - len - 1);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        len += (size_t)k;
    }
    buf[len] = '\0';
    close(po[0]);
    int st;
    cr_assert(waitpid(pid, &st, 0) == pid);
    cr_assert(WIFEXITED(st), "handover-ctl died");
    int code = WEXITSTATUS(st);
    if (exit_status != NULL)
        *exit_status = code;
    else
        cr_assert_eq(code, 0, "handover-ctl %s: exit %d: %s", cmd, code, buf);
    cr_assert(code <= 2, "handover-ctl %s: exit %d (hub unreachable?): %s", cmd,
              code, buf);
    json_error_t je;
    json_t *j = json_loads(buf, 0, &je);
    cr_assert_not_null(j, "handover-ctl %s: not JSON (%s): %s", cmd, je.text,
                       buf);
    free(buf);
    return j;
}

static long long
jint(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    cr_assert(json_is_integer(v), "%s is not an integer", key);
    return json_integer_value(v);
}

typedef struct qfig {
    size_t depth, in_flight;
    double oldest; /* 0 when empty */
    long long out_total;
} qfig;

static int
agency_index(const char *name)
{
    for (int a = 0; a < AG_COUNT; a++)
        if (name != NULL && strcmp(name, ag_name[a]) == 0)
            return a;
    return -1;
}

static void
queues_read(qfig q[AG_COUNT])
{
    json_t *j = ctl_json("queues", NULL, NULL);
    memset(q, 0, sizeof(qfig) * AG_COUNT);
    size_t i;
    json_t *o;
    json_array_foreach(json_object_get(j, "queues"), i, o)
    {
        int a = agency_index(json_string_value(json_object_get(o, "agency")));
        if (a < 0)
            continue;
        q[a].depth = (size_t)jint(o, "depth");
        q[a].in_flight = (size_t)jint(o, "in_flight");
        q[a].out_total = jint(o, "out_total");
        json_t *age = json_object_get(o, "oldest_undelivered_age_s");
        q[a].oldest = json_is_number(age) ? json_number_value(age) : 0.0;
    }
    json_decref(j);
}

/* status --json: remembers the worst health and the reasons seen in this
 * case, and gives each queue's depth as status shows it. */
static void
status_read(size_t depth[AG_COUNT])
{
    int code;
    json_t *j = ctl_json("status", NULL, &code);
    const char *h = json_string_value(json_object_get(j, "health"));
    cr_assert_not_null(h);
    if (strcmp(R.health, "warning") != 0 && strcmp(R.health, "critical") != 0)
        snprintf(R.health, sizeof R.health, "%s", h);
    size_t i;
    json_t *o;
    json_array_foreach(json_object_get(j, "reasons"), i, o)
    {
        const char *what = json_string_value(json_object_get(o, "what"));
        if (what != NULL && strstr(R.reasons, what) == NULL &&
            strlen(R.reasons) + strlen(what) + 2 < sizeof R.reasons) {
            size_t used = strlen(R.reasons);
            snprintf(R.reasons + used, sizeof R.reasons - used, "%s%s",
                     used ? "," : "", what);
            /* Once per reason and case: what an operator would read. */
            printf("STATUS %s: %s\n", what,
                   json_string_value(json_object_get(o, "message")));
            fflush(stdout);
        }
    }
    if (depth != NULL) {
        memset(depth, 0, sizeof(size_t) * AG_COUNT);
        json_array_foreach(json_object_get(j, "queues"), i, o)
        {
            int a =
                agency_index(json_string_value(json_object_get(o, "agency")));
            if (a >= 0)
                depth[a] = (size_t)jint(o, "depth");
        }
    }
    json_decref(j);
}

/* Dead letters per agency, and the whole answer (json_decref it). */
static json_t *
dead_read(size_t per[AG_COUNT])
{
    json_t *j = ctl_json("dead-letters", NULL, NULL);
    memset(per, 0, sizeof(size_t) * AG_COUNT);
    size_t i;
    json_t *o;
    json_array_foreach(json_object_get(j, "dead_letters"), i, o)
    {
        int a = agency_index(json_string_value(json_object_get(o, "agency")));
        if (a >= 0)
            per[a]++;
    }
    cr_assert(json_is_false(json_object_get(j, "truncated")));
    return j;
}

/* ------------------------------------------------------------ the rig */

static void
partner_args(rig *r, partner *p)
{
    const form *fm = r->fm;
    const char **a = p->aargv, **s = p->sargv;
    int n = 0, m = 0;
    snprintf(p->listen_port, sizeof p->listen_port, "%d", th_free_port());
    snprintf(p->sim_port, sizeof p->sim_port, "%d", th_free_port());
    snprintf(p->mode_file, sizeof p->mode_file, "%s/%s-sim.mode", r->dir,
             ag_name[p->ag]);
    snprintf(p->sim_log, sizeof p->sim_log, "%s/%s-sim.received", r->dir,
             ag_name[p->ag]);
    snprintf(p->sets[0], sizeof p->sets[0], "hub.endpoint=%s", r->hub.endpoint);
    snprintf(p->sets[1], sizeof p->sets[1], "listen.port=%s", p->listen_port);
    switch (p->ag) {
    case AG_GP:
        snprintf(p->sets[2], sizeof p->sets[2],
                 "partner.url=http://127.0.0.1:%s/fhir", p->sim_port);
        snprintf(p->sets[3], sizeof p->sets[3], "partner.timeout_ms=%s",
                 fm->timeout_ms);
        a[n++] = HANDOVER_GP_BIN;
        for (int i = 0; i < 4; i++) {
            a[n++] = "--set";
            a[n++] = p->sets[i];
        }
        a[n++] = "--set";
        a[n++] = "partner.concurrency=2";
        s[m++] = HANDOVER_GP_SIM_BIN;
        s[m++] = "serve";
        write_mode(p, "201");
        break;
    case AG_NURSING:
        snprintf(p->sets[2], sizeof p->sets[2], "partner.port=%s", p->sim_port);
        snprintf(p->sets[3], sizeof p->sets[3], "partner.ack_timeout_ms=%s",
                 fm->timeout_ms);
        snprintf(p->sets[4], sizeof p->sets[4], "partner.connect_timeout_ms=%s",
                 fm->timeout_ms);
        a[n++] = HANDOVER_NURSING_BIN;
        for (int i = 0; i < 5; i++) {
            a[n++] = "--set";
            a[n++] = p->sets[i];
        }
        s[m++] = HANDOVER_NURSING_SIM_BIN;
        s[m++] = "serve";
        write_mode(p, "aa");
        break;
    case AG_VOLUNTARY: {
        FILE *f = fopen(r->orgs, "w");
        cr_assert_not_null(f);
        fprintf(f, "local:VCS-0002   -    vcs-0002-2025-01  " SECRET_0002 "\n");
        fclose(f);
        chmod(r->orgs, 0600);
        snprintf(p->sets[2], sizeof p->sets[2], "partner.orgs_file=%s",
                 r->orgs);
        snprintf(p->sets[3], sizeof p->sets[3],
                 "partner.default_url=http://127.0.0.1:%s/handover/v1/"
                 "referrals",
                 p->sim_port);
        snprintf(p->sets[4], sizeof p->sets[4], "partner.timeout_ms=%s",
                 fm->timeout_ms);
        a[n++] = HANDOVER_VOLUNTARY_BIN;
        for (int i = 0; i < 5; i++) {
            a[n++] = "--set";
            a[n++] = p->sets[i];
        }
        a[n++] = "--set";
        a[n++] = "partner.concurrency=2";
        s[m++] = HANDOVER_VOLUNTARY_SIM_BIN;
        s[m++] = "serve";
        s[m++] = "--secret";
        s[m++] = SECRET_0002;
        write_mode(p, "200");
        break;
    }
    case AG_SOCIAL:
        snprintf(p->sets[1], sizeof p->sets[1], "files.inbox=%s", r->inbox);
        snprintf(p->sets[2], sizeof p->sets[2], "files.outbox=%s", r->outbox);
        a[n++] = HANDOVER_SOCIAL_BIN;
        for (int i = 0; i < 3; i++) {
            a[n++] = "--set";
            a[n++] = p->sets[i];
        }
        s[m++] = HANDOVER_COUNCIL_SIM_BIN;
        s[m++] = "take";
        s[m++] = "--outbox";
        s[m++] = r->outbox;
        s[m++] = "--taken";
        s[m++] = r->taken;
        /* The slow council: the same, taking one file per interval. */
        memcpy(p->slow_argv, s, sizeof(char *) * (size_t)m);
        int k = m;
        p->slow_argv[k++] = "--max-per-pass";
        p->slow_argv[k++] = "1";
        p->slow_argv[k++] = "--interval-ms";
        p->slow_argv[k++] = fm->slow_interval;
        p->slow_argv[k] = NULL;
        s[m++] = "--interval-ms";
        s[m++] = "100";
        break;
    }
    a[n] = NULL;
    if (p->ag != AG_SOCIAL) {
        s[m++] = "--port";
        s[m++] = p->sim_port;
        s[m++] = "--mode-file";
        s[m++] = p->mode_file;
        s[m++] = "--log";
        s[m++] = p->sim_log;
    }
    s[m] = NULL;
    th_proc_init(&p->adapter, r->dir, ag_name[p->ag], "started:", p->aargv);
    th_proc_init(&p->sim, r->dir,
                 p->ag == AG_GP          ? "gp-sim"
                 : p->ag == AG_NURSING   ? "nursing-sim"
                 : p->ag == AG_VOLUNTARY ? "voluntary-sim"
                                         : "council-sim",
                 p->ag == AG_SOCIAL ? "council-sim watching" : "listens on",
                 p->sargv);
}

static const char *hub_extra[16];

static void
rig_start(const form *fm, const char *max_attempts)
{
    memset(&R, 0, sizeof R);
    R.fm = fm;
    static char ma[40], bmax[40];
    snprintf(ma, sizeof ma, "max_attempts=%s", max_attempts);
    snprintf(bmax, sizeof bmax, "backoff_max_ms=%s", fm->backoff_max);
    /* The status socket warns once the oldest delivery has waited
     * queue_warn_ms: a second here, so that a fault of a few seconds
     * shows as the warning an operator would see after a minute. */
    const char *extra[] = {"--set", ma,   "--set", "backoff_initial_ms=100",
                           "--set", bmax, "--set", "queue_warn_ms=1000",
                           NULL};
    memcpy(hub_extra, extra, sizeof extra);
    th_hub_init(&R.hub, hub_extra);
    snprintf(R.dir, sizeof R.dir, "%s", R.hub.dir);
    snprintf(R.data, sizeof R.data, "%s/data", R.dir);
    snprintf(R.inbox, sizeof R.inbox, "%s/inbox", R.dir);
    snprintf(R.outbox, sizeof R.outbox, "%s/outbox", R.dir);
    snprintf(R.away, sizeof R.away, "%s/outbox.away", R.dir);
    snprintf(R.taken, sizeof R.taken, "%s/taken", R.dir);
    snprintf(R.orgs, sizeof R.orgs, "%s/voluntary-orgs", R.dir);
    th_hub_start(&R.hub);
    for (int a = 0; a < AG_COUNT; a++) {
        partner *p = &R.p[a];
        p->ag = a;
        partner_args(&R, p);
        th_proc_start(&p->sim);
        th_proc_start(&p->adapter);
    }
    R.trust = th_client(&R.hub, "nursing", "pf-trust", false, 0);
    R.practice = th_client(&R.hub, "gp", "pf-practice", false, 0);
    /* An adapter logs "started" before the hub has its Hello: until every
     * agency has its consumer, status would call it missing. */
    uint64_t deadline = hov_mono_ms() + (uint64_t)th_ms(10000);
    for (;;) {
        json_t *j = ctl_json("queues", NULL, NULL);
        size_t i, up = 0;
        json_t *o;
        json_array_foreach(json_object_get(j, "queues"), i, o)
        {
            up += jint(o, "consumers") > 0;
        }
        json_decref(j);
        if (up == AG_COUNT)
            break;
        cr_assert(hov_mono_ms() < deadline, "only %zu adapters connected", up);
        usleep(50000);
    }
}

static void
rig_fini(void)
{
    if (R.trust != NULL)
        hov_client_free(R.trust);
    if (R.practice != NULL)
        hov_client_free(R.practice);
    while (R.nfifo > 0)
        close(R.fifo_fd[--R.nfifo]);
    for (int a = 0; a < AG_COUNT; a++) {
        th_proc_kill(&R.p[a].adapter, SIGKILL);
        th_proc_kill(&R.p[a].sim, SIGKILL);
        free(R.p[a].ids);
    }
    th_hub_fini(&R.hub);
    memset(&R, 0, sizeof R);
}

/* One event routed to partner p only, published and Acked. */
static void
publish_one(partner *p)
{
    char nhs[11];
    nhs_next(nhs);
    hov_sample s;
    hov_client *c = R.trust;
    switch (p->ag) {
    case AG_GP: /* a discharge on pathway 0 goes to the practice only */
        hov_sample_init(&s, "discharge", nhs);
        hov_sample_set_pathway(&s, 0);
        hov_sample_set_registered_gp(&s, "Z99001");
        s.discharge.n_follow_up = 0; /* a nursing follow-up routes there */
        break;
    case AG_NURSING: /* a district nursing referral from the practice */
        hov_sample_init(&s, "referral", nhs);
        c = R.practice;
        break;
    case AG_SOCIAL: /* an equipment order to the equipment service */
        hov_sample_init(&s, "equipment_order", nhs);
        if (R.share_hangs) {
            char fifo[400];
            snprintf(fifo, sizeof fifo, "%s/equipment-order_%s.json.tmp",
                     R.outbox, s.event_id);
            cr_assert_eq(mkfifo(fifo, 0600), 0, "mkfifo: %s", strerror(errno));
        }
        break;
    default: /* a social prescribing referral to one organisation */
        hov_sample_init(&s, "referral", nhs);
        hov_sample_set_source(&s, "Z99001");
        hov_sample_set_service(&s, "social-prescribing");
        hov_sample_clear_destinations(&s);
        cr_assert(hov_sample_add_destination(&s, "local:VCS-0002"));
        hov_sample_set_consent(&s, "explicit", "2025-03-14T13:30:00Z");
        c = R.practice;
        break;
    }
    hov_msg m;
    th_publish(c, &s, &m);
    cr_assert(m.kind == HOV_MSG_ACK, "%s event refused: %s: %s", ag_name[p->ag],
              hov_errname(m.code), m.reason);
    cr_assert_eq(m.n_routed, 1,
                 "the %s event must go to one destination only (%zu: %s)",
                 ag_name[p->ag], m.n_routed,
                 m.n_routed ? m.routed_to[m.n_routed - 1] : "-");
    if (p->n == p->cap) {
        p->cap = p->cap ? p->cap * 2 : 64;
        p->ids = realloc(p->ids, p->cap * sizeof *p->ids);
        cr_assert_not_null(p->ids);
    }
    snprintf(p->ids[p->n++], sizeof p->ids[0], "%s", s.event_id);
}

/* How many messages with this control id nursing-sim answered AA: its
 * console line "... control_id=<id> ... -> <mode>" names the mode each was
 * answered in. Should that line ever change shape, every reception
 * counts, and the hub's done count still proves each one was taken. */
static size_t
nursing_acked(const partner *p, const char *control, size_t received)
{
    FILE *f = fopen(p->sim.log, "r");
    if (f == NULL)
        return received;
    char line[1024], want[40];
    snprintf(want, sizeof want, "control_id=%s ", control);
    size_t acked = 0;
    bool shaped = false;
    while (fgets(line, sizeof line, f)) {
        const char *arrow = strstr(line, " -> ");
        if (strstr(line, "control_id=") == NULL || arrow == NULL)
            continue;
        shaped = true;
        if (strstr(line, want) != NULL &&
            (strncmp(arrow + 4, "aa", 2) == 0 ||
             strncmp(arrow + 4, "delay:", 6) == 0))
            acked++;
    }
    fclose(f);
    return shaped ? acked : received;
}

/* How many times the partner accepted (took) the event, and how many
 * times it received it at all. */
static void
partner_count(const partner *p, const char *id, size_t *accepted,
              size_t *received)
{
    *accepted = *received = 0;
    char control[21];
    if (p->ag == AG_NURSING)
        map_out_control_id(id, control);
    FILE *f = fopen(p->ag == AG_SOCIAL ? p->sim.log : p->sim_log, "r");
    if (f == NULL)
        return;
    char line[1024];
    while (fgets(line, sizeof line, f)) {
        char a[512], b[128], c[128];
        int st = 0;
        switch (p->ag) {
        case AG_GP: /* "<system>|<event id> type digest status" */
            if (sscanf(line, "%511s %127s %127s %d", a, b, c, &st) == 4) {
                const char *bar = strrchr(a, '|');
                if (bar != NULL && strcmp(bar + 1, id) == 0) {
                    ++*received;
                    *accepted += st == 200 || st == 201;
                }
            }
            break;
        case AG_NURSING: /* "control type digest": the ACK is not logged */
            if (sscanf(line, "%511s", a) == 1 && strcmp(a, control) == 0)
                ++*received;
            break;
        case AG_VOLUNTARY: /* "<Idempotency-Key> digest status" */
            if (sscanf(line, "%511s %127s %d", a, b, &st) == 3 &&
                strcmp(a, id) == 0) {
                ++*received;
                *accepted += st == 200;
            }
            break;
        default: /* council-sim: "taken event=<id> file=<name>" */
            if (sscanf(line, "taken event=%36s", a) == 1 &&
                strcmp(a, id) == 0) {
                ++*received;
                ++*accepted;
            }
            break;
        }
    }
    fclose(f);
    if (p->ag == AG_NURSING)
        *accepted = nursing_acked(p, control, *received);
}

/* ---------------------------------------------------------- the faults */

static void
sim_restart(partner *p, const char *const *argv)
{
    th_proc_kill(&p->sim, SIGKILL);
    th_proc_init(&p->sim, R.dir, p->sim.name, p->sim.ready, argv);
    th_proc_start(&p->sim);
}

/* The mode shown in the summary line; NULL when the fault does not apply. */
static const char *
fault_mode(const partner *p, fault f)
{
    static const char *const modes[AG_COUNT][F_COUNT] = {
        [AG_GP] = {"down", "503", "hang", NULL},
        [AG_NURSING] = {"down", "ar", "silent", NULL},
        [AG_SOCIAL] = {"down", "outbox-unwritable", "share-hangs", NULL},
        [AG_VOLUNTARY] = {"down", "500", "hang", NULL},
    };
    if (f == F_SLOW) {
        if (p->ag == AG_SOCIAL) {
            static char slow[48];
            snprintf(slow, sizeof slow, "slow:1/%sms", R.fm->slow_interval);
            return slow;
        }
        return R.fm->slow[p->ag];
    }
    return modes[p->ag][f];
}

static void
fault_apply(partner *p, fault f)
{
    switch (f) {
    case F_DOWN:
        th_proc_kill(&p->sim, SIGKILL);
        break;
    case F_SLOW:
        if (p->ag == AG_SOCIAL)
            sim_restart(p, p->slow_argv);
        else
            write_mode(p, p->mode);
        break;
    case F_HANG:
        if (p->ag == AG_SOCIAL)
            R.share_hangs = true;
        else
            write_mode(p, p->mode);
        break;
    default:
        if (p->ag != AG_SOCIAL) {
            write_mode(p, p->mode);
            break;
        }
        /* The share the council reads is gone and a file stands in its
         * place: every write fails (ENOTDIR) and is settled retry. */
        cr_assert_eq(rename(R.outbox, R.away), 0, "%s", strerror(errno));
        FILE *f2 = fopen(R.outbox, "w");
        cr_assert_not_null(f2);
        fclose(f2);
        break;
    }
}

static void
fault_recover(partner *p, fault f)
{
    static const char *const ok[AG_COUNT] = {"201", "aa", NULL, "200"};
    switch (f) {
    case F_DOWN:
        th_proc_start(&p->sim);
        break;
    case F_SLOW:
        if (p->ag == AG_SOCIAL)
            sim_restart(p, p->sargv);
        else
            write_mode(p, ok[p->ag]);
        break;
    case F_HANG:
        if (p->ag != AG_SOCIAL) {
            write_mode(p, ok[p->ag]);
            break;
        }
        /* The share answers again: a reader on each FIFO lets the blocked
         * open() return; the write then fails (fsync on a FIFO), the
         * adapter removes the FIFO and settles retry, and the redelivery
         * writes a real file. The read ends stay open until the drain is
         * over, so no write meets a pipe without a reader. */
        R.share_hangs = false;
        for (size_t i = 0; i < p->n && R.nfifo < 512; i++) {
            char fifo[400];
            snprintf(fifo, sizeof fifo, "%s/equipment-order_%s.json.tmp",
                     R.outbox, p->ids[i]);
            int fd = open(fifo, O_RDONLY | O_NONBLOCK);
            cr_assert(fd >= 0, "open %s: %s", fifo, strerror(errno));
            R.fifo_fd[R.nfifo++] = fd;
        }
        break;
    default:
        if (p->ag != AG_SOCIAL) {
            write_mode(p, ok[p->ag]);
            break;
        }
        cr_assert_eq(unlink(R.outbox), 0);
        cr_assert_eq(rename(R.away, R.outbox), 0, "%s", strerror(errno));
        break;
    }
}

/* ------------------------------------------------------------ one case */

/* Every partner that has this fault, at once: fault, publish, watch the
 * queues grow, recover, watch them drain, check what the partners got. */
static void
run_case(fault f)
{
    const form *fm = R.fm;
    uint64_t fault_ms = (uint64_t)fm->fault_s[f] * 1000;
    qfig q[AG_COUNT];
    queues_read(q);
    size_t dead0[AG_COUNT];
    json_decref(dead_read(dead0));
    R.health[0] = R.reasons[0] = '\0';
    for (int a = 0; a < AG_COUNT; a++) {
        partner *p = &R.p[a];
        char(*ids)[37] = p->ids;
        size_t cap = p->cap;
        memset(&p->mode, 0, sizeof *p - offsetof(partner, mode));
        p->ids = ids;
        p->cap = cap;
        p->mode = fault_mode(p, f);
        p->active = p->mode != NULL;
        p->out0 = q[a].out_total;
        cr_assert_eq(q[a].depth, 0, "%s queue not empty before the case",
                     ag_name[a]);
        if (p->active)
            fault_apply(p, f);
    }

    /* The fault lasts fault_ms; events are published through most of it. */
    uint64_t t0 = hov_mono_ms(), next_pub = t0, next_status = t0;
    uint64_t stop_pub = t0 + fault_ms - (uint64_t)fm->publish_stop_s * 1000;
    while (hov_mono_ms() < t0 + fault_ms) {
        uint64_t now = hov_mono_ms();
        /* A slow partner in the short form gets the whole batch at once:
         * spread out, a loaded machine may publish no faster than the
         * partner takes, and no backlog would form. */
        bool burst = f == F_SLOW && fm->publish_max > 0;
        while (now >= next_pub && now < stop_pub) {
            bool more = false;
            for (int a = 0; a < AG_COUNT; a++)
                if (R.p[a].active && (fm->publish_max == 0 ||
                                      R.p[a].n < (size_t)fm->publish_max)) {
                    publish_one(&R.p[a]);
                    more = true;
                }
            next_pub += (uint64_t)fm->publish_every_ms;
            if (!burst || !more)
                break;
        }
        queues_read(q);
        for (int a = 0; a < AG_COUNT; a++) {
            partner *p = &R.p[a];
            if (!p->active)
                continue;
            if (q[a].depth > p->peak_depth)
                p->peak_depth = q[a].depth;
            if (q[a].in_flight > p->peak_flight)
                p->peak_flight = q[a].in_flight;
            if (p->oldest_first == 0)
                p->oldest_first = q[a].oldest;
            if (q[a].oldest > p->oldest_max)
                p->oldest_max = q[a].oldest;
            if (a == AG_SOCIAL) {
                size_t pile = count_json(R.outbox);
                if (pile > p->peak_outbox)
                    p->peak_outbox = pile;
            }
        }
        if (hov_mono_ms() >= next_status) {
            status_read(NULL);
            next_status += (uint64_t)fm->status_every_ms;
        }
        usleep(fm->long_form ? 500000 : 100000);
    }

    /* The end of the fault: the queues are at their fullest. */
    size_t sdepth[AG_COUNT];
    queues_read(q);
    status_read(sdepth);
    for (int a = 0; a < AG_COUNT; a++) {
        partner *p = &R.p[a];
        if (!p->active)
            continue;
        p->depth_end = q[a].depth;
        p->oldest_end = q[a].oldest;
        p->status_depth_end = sdepth[a];
        if (a == AG_SOCIAL)
            p->outbox_end = count_json(R.outbox);
        cr_assert(proc_alive(&p->adapter),
                  "the %s adapter died during the %s fault", ag_name[a],
                  fault_name[f]);
        cr_assert_gt(p->n, 0);
        /* A file drop that nobody takes: the adapter has delivered (the
         * file is written), so the pile is in the outbox, not the hub. */
        if (a == AG_SOCIAL && f == F_DOWN) {
            cr_assert_eq(p->outbox_end, p->n,
                         "social down: %zu of %zu files wait in the outbox",
                         p->outbox_end, p->n);
            continue;
        }
        if (f == F_SLOW) {
            size_t peak = a == AG_SOCIAL ? p->peak_outbox : p->peak_depth;
            cr_assert_geq(peak, 4,
                          "%s slow: the backlog never grew (peak %zu of %zu)",
                          ag_name[a], peak, p->n);
            continue;
        }
        /* Nothing can be accepted: every event published is still queued,
         * status shows the same depth, and the oldest has waited about as
         * long as the fault. */
        cr_assert_eq(p->depth_end, p->n, "%s %s: depth %zu, published %zu",
                     ag_name[a], fault_name[f], p->depth_end, p->n);
        cr_assert_geq(p->peak_depth, p->n);
        cr_assert_eq(p->status_depth_end, p->n,
                     "%s %s: status shows depth %zu, queues %zu", ag_name[a],
                     fault_name[f], p->status_depth_end, p->depth_end);
        cr_assert_geq(p->oldest_end, (double)fm->fault_s[f] * 0.5,
                      "%s %s: the oldest waited %.1f s of a %d s fault",
                      ag_name[a], fault_name[f], p->oldest_end, fm->fault_s[f]);
        cr_assert_gt(p->oldest_end, p->oldest_first,
                     "%s %s: the oldest age did not grow", ag_name[a],
                     fault_name[f]);
        if (f == F_HANG)
            cr_assert_gt(p->peak_flight, 0,
                         "%s hang: nothing was ever in flight", ag_name[a]);
    }

    /* Recovery: the queues must drain to 0 (and the outbox be taken). */
    for (int a = 0; a < AG_COUNT; a++)
        if (R.p[a].active)
            fault_recover(&R.p[a], f);
    uint64_t t1 = hov_mono_ms();
    uint64_t deadline = t1 + (uint64_t)th_ms(fm->drain_ms);
    for (;;) {
        queues_read(q);
        bool all = true;
        for (int a = 0; a < AG_COUNT; a++) {
            partner *p = &R.p[a];
            if (!p->active || p->drained)
                continue;
            bool empty = q[a].depth == 0 &&
                         (a != AG_SOCIAL || count_json(R.outbox) == 0);
            if (empty) {
                p->drained = true;
                p->drained_s = secs_since(t1);
            } else {
                all = false;
            }
        }
        if (all)
            break;
        if (hov_mono_ms() >= deadline) {
            for (int a = 0; a < AG_COUNT; a++)
                if (R.p[a].active && !R.p[a].drained)
                    cr_log_error("%s: depth %zu in flight %zu outbox %zu",
                                 ag_name[a], q[a].depth, q[a].in_flight,
                                 a == AG_SOCIAL ? count_json(R.outbox) : 0);
            cr_assert_fail("the queues did not drain within %d ms of the "
                           "partners' recovery (%s)",
                           th_ms(fm->drain_ms), fault_name[f]);
        }
        usleep(fm->long_form ? 500000 : 100000);
    }

    while (R.nfifo > 0)
        close(R.fifo_fd[--R.nfifo]);

    /* What the partners got: every event, at least once. */
    queues_read(q);
    size_t dead[AG_COUNT];
    json_decref(dead_read(dead));
    for (int a = 0; a < AG_COUNT; a++) {
        partner *p = &R.p[a];
        if (!p->active)
            continue;
        size_t lost = 0, dup = 0, received = 0;
        /* council-sim logs each take just after the rename the drain
         * loop saw: give the last line a moment. */
        uint64_t until = hov_mono_ms() + (uint64_t)th_ms(3000);
        do {
            lost = dup = received = 0;
            for (size_t i = 0; i < p->n; i++) {
                size_t acc, rec;
                partner_count(p, p->ids[i], &acc, &rec);
                received += rec;
                if (acc == 0)
                    lost++;
                else
                    dup += acc - 1;
            }
            if (lost == 0)
                break;
            usleep(50000);
        } while (hov_mono_ms() < until);
        long long done = q[a].out_total - p->out0;
        size_t ndead = dead[a] - dead0[a];
        printf("PARTNER %s mode=%s for=%ds events=%zu peak_depth=%zu "
               "peak_in_flight=%zu oldest_max=%.1fs",
               ag_name[a], p->mode, fm->fault_s[f], p->n, p->peak_depth,
               p->peak_flight, p->oldest_max);
        if (a == AG_SOCIAL)
            printf(" peak_outbox=%zu", p->peak_outbox);
        printf(" drained_in=%.1fs dead=%zu lost=%zu dup=%zu sent=%zu "
               "health=%s reasons=%s\n",
               p->drained_s, ndead, lost, dup, received,
               R.health[0] ? R.health : "-", R.reasons[0] ? R.reasons : "none");
        fflush(stdout);
        cr_assert_eq(ndead, 0, "%s %s: %zu dead letters in a transient fault",
                     ag_name[a], fault_name[f], ndead);
        cr_assert_eq(lost, 0,
                     "%s %s: %zu of %zu events never reached the "
                     "partner",
                     ag_name[a], fault_name[f], lost, p->n);
        cr_assert_eq(done, (long long)p->n,
                     "%s %s: the hub settled %lld done, %zu were published",
                     ag_name[a], fault_name[f], done, p->n);
        cr_assert(proc_alive(&p->adapter));
    }
    /* While it lasted, the status socket said so: deliveries in back-off
     * after failed attempts for a partner down or refusing, deliveries in
     * flight and unanswered for one that hangs. */
    if (f == F_DOWN || f == F_ERROR)
        cr_expect(strstr(R.reasons, "partner_failing") != NULL,
                  "%s: status never warned partner_failing (reasons: %s)",
                  fault_name[f], R.reasons[0] ? R.reasons : "none");
    if (f == F_HANG)
        cr_expect(strstr(R.reasons, "queue_slow") != NULL,
                  "hang: status never warned queue_slow (reasons: %s)",
                  R.reasons[0] ? R.reasons : "none");
    if (f != F_SLOW)
        cr_expect_str_eq(R.health, "warning", "%s", fault_name[f]);
}

static const form *
form_get(void)
{
    const char *l = getenv("HANDOVER_RELIABILITY_LONG");
    return l != NULL && l[0] != '\0' && strcmp(l, "0") != 0 ? &long_form
                                                            : &short_form;
}

TestSuite(partner_faults, .fini = rig_fini);

/* Every partner down, then erroring, then hanging, then slow; every time
 * the queue grows, drains after the recovery, loses nothing and dead-
 * letters nothing. max_attempts is set well above what the longest fault
 * needs at the back-off in use, as a partnership would size it. */
Test(partner_faults, queues_grow_and_drain_without_loss, .timeout = 3600)
{
    rig_start(form_get(), "50");
    for (int f = 0; f < F_COUNT; f++)
        run_case((fault)f);
}

/* Partners that never recover: with max_attempts=3 each event becomes one
 * dead letter, after exactly three attempts, with the partner's reason;
 * and an HL7 AE (a permanent refusal) is a dead letter at once. */
Test(partner_faults, permanent_failure_dead_letters_after_max_attempts,
     .timeout = 600)
{
    const form *fm = &short_form;
    rig_start(fm, "3");
    enum { N = 6 };
    static const char *const mode[AG_COUNT] = {"500", "ar", NULL, "500"};
    for (int a = 0; a < AG_COUNT; a++) {
        partner *p = &R.p[a];
        p->mode = a == AG_SOCIAL ? "outbox-unwritable" : mode[a];
        fault_apply(p, F_ERROR);
    }
    uint64_t t0 = hov_mono_ms();
    for (int i = 0; i < N; i++)
        for (int a = 0; a < AG_COUNT; a++)
            publish_one(&R.p[a]);
    /* Until every event is a dead letter; no dead letter may ever show
     * fewer attempts than max_attempts. */
    uint64_t deadline = t0 + (uint64_t)th_ms(30000);
    size_t dead[AG_COUNT];
    json_t *j = NULL;
    for (;;) {
        qfig q[AG_COUNT];
        queues_read(q);
        for (int a = 0; a < AG_COUNT; a++)
            if (q[a].depth > R.p[a].peak_depth)
                R.p[a].peak_depth = q[a].depth;
        j = dead_read(dead);
        size_t i;
        json_t *o;
        json_array_foreach(json_object_get(j, "dead_letters"), i, o)
        {
            cr_assert_eq(jint(o, "attempts"), 3,
                         "a dead letter after %lld attempts, not 3: %s",
                         jint(o, "attempts"),
                         json_string_value(json_object_get(o, "reason")));
        }
        bool all = true;
        for (int a = 0; a < AG_COUNT; a++)
            all = all && dead[a] == N && q[a].depth == 0;
        if (all)
            break;
        json_decref(j);
        j = NULL;
        cr_assert(hov_mono_ms() < deadline,
                  "dead letters gp %zu nursing %zu social %zu voluntary %zu, "
                  "%d each expected",
                  dead[0], dead[1], dead[2], dead[3], N);
        usleep(100000);
    }
    double dead_s = secs_since(t0);
    /* One per event, for the right destination, with the partner's reason
     * in the hub's words. */
    static const char *const why[AG_COUNT] = {"500", "locked", "outbox", "500"};
    for (int a = 0; a < AG_COUNT; a++) {
        partner *p = &R.p[a];
        for (size_t k = 0; k < p->n; k++) {
            size_t i, hits = 0;
            json_t *o;
            json_array_foreach(json_object_get(j, "dead_letters"), i, o)
            {
                if (strcmp(json_string_value(json_object_get(o, "event_id")),
                           p->ids[k]) != 0)
                    continue;
                hits++;
                cr_assert_str_eq(
                    json_string_value(json_object_get(o, "destination")),
                    ag_dest[a]);
                const char *reason =
                    json_string_value(json_object_get(o, "reason"));
                cr_assert(strstr(reason, "max_attempts") != NULL &&
                              strstr(reason, why[a]) != NULL,
                          "%s: dead-letter reason without the cause: %s",
                          ag_name[a], reason);
            }
            cr_assert_eq(hits, 1, "%s event %s: %zu dead letters", ag_name[a],
                         p->ids[k], hits);
            /* The partner saw it exactly max_attempts times. */
            if (a != AG_SOCIAL) {
                size_t acc, rec;
                partner_count(p, p->ids[k], &acc, &rec);
                cr_assert_eq(rec, 3,
                             "%s event %s reached the partner %zu "
                             "times, not 3",
                             ag_name[a], p->ids[k], rec);
            }
        }
        printf("PARTNER %s mode=%s(permanent) max_attempts=3 events=%zu "
               "peak_depth=%zu dead=%zu dead_within=%.1fs lost=0\n",
               ag_name[a], p->mode, p->n, p->peak_depth, dead[a], dead_s);
        fflush(stdout);
    }
    json_decref(j);
    R.health[0] = R.reasons[0] = '\0';
    status_read(NULL);
    cr_assert_str_eq(R.health, "warning");
    cr_assert(strstr(R.reasons, "dead_letters") != NULL, "reasons: %s",
              R.reasons);

    /* AE is the nursing system refusing the message for good: a dead
     * letter at the first attempt, with its text. */
    partner *nu = &R.p[AG_NURSING];
    write_mode(nu, "ae");
    size_t before = nu->n;
    for (int i = 0; i < 3; i++)
        publish_one(nu);
    t0 = hov_mono_ms();
    deadline = t0 + (uint64_t)th_ms(15000);
    for (;;) {
        j = dead_read(dead);
        if (dead[AG_NURSING] == N + 3)
            break;
        json_decref(j);
        cr_assert(hov_mono_ms() < deadline, "AE: %zu dead letters",
                  dead[AG_NURSING] - N);
        usleep(100000);
    }
    for (size_t k = before; k < nu->n; k++) {
        size_t i;
        json_t *o;
        bool found = false;
        json_array_foreach(json_object_get(j, "dead_letters"), i, o)
        {
            if (strcmp(json_string_value(json_object_get(o, "event_id")),
                       nu->ids[k]) != 0)
                continue;
            found = true;
            cr_assert_eq(jint(o, "attempts"), 1);
            cr_assert(strstr(json_string_value(json_object_get(o, "reason")),
                             "service is not accepted") != NULL);
        }
        cr_assert(found);
    }
    json_decref(j);
    printf("PARTNER nursing mode=ae(rejected) events=3 dead=3 attempts=1 "
           "dead_within=%.1fs lost=0\n",
           secs_since(t0));
    fflush(stdout);
    for (int a = 0; a < AG_COUNT; a++)
        cr_assert(proc_alive(&R.p[a].adapter), "the %s adapter died",
                  ag_name[a]);
}
