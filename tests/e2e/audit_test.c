/* handover-audit: the real hub, real clients, the real LMDB store and the
 * real handover-audit binary run as a process. A trace must show every
 * step and every recipient; verify must pass on a clean chain and name the
 * record a raw LMDB write altered; export must give parseable JSON lines;
 * and every trace and export must itself be audited, through the running
 * hub's status socket or, with the hub stopped, directly. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <lmdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "handover/timeutil.h"
#include "harness.h"
#include "store.pb-c.h"

#define T 40 /* seconds per test */

static th_hub hub;
static char data_dir[300];

static const char *fast[] = {
    "--set", "heartbeat_ms=200",   "--set", "backoff_initial_ms=100",
    "--set", "backoff_max_ms=400", NULL,
};

static void
teardown(void)
{
    th_hub_fini(&hub);
}

TestSuite(audit, .fini = teardown, .timeout = T);

typedef struct run_result {
    int status;
    char out[1 << 18];
    char err[8192];
} run_result;

static void
drain_pipes(int fo, int fe, run_result *r)
{
    size_t no = 0, ne = 0;
    struct pollfd p[2] = {{fo, POLLIN, 0}, {fe, POLLIN, 0}};
    int open = 2;
    while (open > 0) {
        cr_assert(poll(p, 2, th_ms(20000)) > 0, "handover-audit hangs");
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

/* handover-audit CMD --data <the hub's folder> --auditor tester words...
 * (NULL-terminated). No LMDB environment may be open here: it forks. */
static run_result *
audit_run(const char *cmd, ...)
{
    static run_result r;
    memset(&r, 0, sizeof r);
    const char *argv[40] = {HANDOVER_AUDIT_BIN, cmd, "--data", data_dir};
    int n = 4;
    if (strcmp(cmd, "verify") != 0) {
        argv[n++] = "--auditor";
        argv[n++] = "tester";
    }
    va_list ap;
    va_start(ap, cmd);
    for (const char *w = va_arg(ap, const char *); w && n < 39;
         w = va_arg(ap, const char *))
        argv[n++] = w;
    va_end(ap);
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
    drain_pipes(po[0], pe[0], &r);
    int st;
    cr_assert(waitpid(pid, &st, 0) == pid);
    cr_assert(WIFEXITED(st), "handover-audit died (signal %d): %s",
              WIFSIGNALED(st) ? WTERMSIG(st) : 0, r.err);
    r.status = WEXITSTATUS(st);
    if (getenv("HANDOVER_TEST_SHOW")) /* the output, for documentation */
        fprintf(stderr, "$ handover-audit %s ... (exit %d)\n%s%s\n", cmd,
                r.status, r.out, r.err);
    return &r;
}

/* Parse JSON lines into an array (json_decref it). */
static json_t *
json_lines(const char *text)
{
    json_t *all = json_array();
    const char *p = text;
    while (*p) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        if (len > 0) {
            json_error_t je;
            json_t *o = json_loadb(p, len, JSON_REJECT_DUPLICATES, &je);
            cr_assert_not_null(o, "not a JSON line (%s): %.*s", je.text,
                               (int)len, p);
            cr_assert(json_is_object(o));
            json_array_append_new(all, o);
        }
        p += len + (nl ? 1 : 0);
    }
    return all;
}

static const char *
jget(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

static void
settle_done(hov_client *c, const hov_msg *m)
{
    hov_error err = {0};
    cr_assert(hov_client_settle(c, m->delivery_id, HOV_SETTLE_DONE, NULL,
                                &err) == HOV_OK,
              "settle: %s", err.msg);
}

/* Change one byte of the detail text of audit record seq, as an attacker
 * with write access to the file would: a raw LMDB write, no hub. */
static void
tamper(uint64_t seq)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    cr_assert_eq(mdb_env_create(&env), 0);
    cr_assert_eq(mdb_env_set_maxdbs(env, 16), 0);
    cr_assert_eq(mdb_env_set_mapsize(env, 0), 0);
    int rc = mdb_env_open(env, data_dir, MDB_NOTLS, 0640);
    cr_assert_eq(rc, 0, "open %s: %s", data_dir, mdb_strerror(rc));
    cr_assert_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
    cr_assert_eq(mdb_dbi_open(txn, "audit", 0, &dbi), 0);
    uint8_t kb[8];
    for (int i = 7; i >= 0; i--)
        kb[7 - i] = (uint8_t)(seq >> (8 * i));
    MDB_val k = {8, kb}, v;
    cr_assert_eq(mdb_get(txn, dbi, &k, &v), 0, "no audit record %llu",
                 (unsigned long long)seq);
    uint8_t *copy = malloc(v.mv_size);
    memcpy(copy, v.mv_data, v.mv_size);
    Handover__Store__AuditRecord *r =
        handover__store__audit_record__unpack(NULL, v.mv_size, copy);
    cr_assert_not_null(r);
    size_t dl = strlen(r->detail);
    cr_assert(dl > 0, "record %llu has no detail to alter",
              (unsigned long long)seq);
    uint8_t *at = NULL;
    for (size_t j = 0; at == NULL && j + dl <= v.mv_size; j++)
        if (memcmp(copy + j, r->detail, dl) == 0)
            at = copy + j;
    cr_assert_not_null(at);
    at[0] = at[0] == 'X' ? 'Y' : 'X';
    handover__store__audit_record__free_unpacked(r, NULL);
    MDB_val nv = {v.mv_size, copy};
    cr_assert_eq(mdb_put(txn, dbi, &k, &nv, 0), 0);
    cr_assert_eq(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
    free(copy);
}

static size_t
count_substr(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

Test(audit, trace_verify_export_and_tamper)
{
    th_hub_init(&hub, fast);
    snprintf(data_dir, sizeof data_dir, "%s/data", hub.dir);
    th_hub_start(&hub);
    hov_client *gp = th_client(&hub, "gp", "t-gp", true, 8);
    hov_client *nursing = th_client(&hub, "nursing", "t-nursing", true, 8);
    const char *nhs = "9996118428";

    /* Referral A: delivered to RZZ40 and answered with an outcome, which
     * goes back to the GP practice. Referral B: delivered too. */
    hov_sample a, b, o;
    hov_sample_init(&a, "referral", nhs);
    th_publish_ok(gp, &a);
    hov_msg m;
    th_next_delivery(nursing, th_ms(5000), &m, NULL);
    cr_assert_str_eq(m.event_id, a.event_id);
    settle_done(nursing, &m);
    hov_sample_init(&b, "referral", nhs);
    th_publish_ok(gp, &b);
    th_next_delivery(nursing, th_ms(5000), &m, NULL);
    settle_done(nursing, &m);
    hov_sample_init(&o, "outcome", nhs);
    hov_sample_set_reply(&o, a.event_id, "accepted");
    th_publish_ok(nursing, &o);
    th_next_delivery(gp, th_ms(5000), &m, NULL);
    cr_assert_str_eq(m.event_id, o.event_id);
    settle_done(gp, &m);
    /* A settle is committed with the next batch: give it a moment. */
    th_no_delivery(nursing, 300);

    /* trace of A, for a person: accepted, delivered to RZZ40 and
     * acknowledged, the outcome. The hub is running: the read is recorded
     * through its status socket. */
    run_result *r = audit_run("trace", a.event_id, NULL);
    cr_assert_eq(r->status, 0, "exit %d: %s", r->status, r->err);
    cr_assert(strstr(r->out, "accepted"), "%s", r->out);
    cr_assert(strstr(r->out, "routed to RZZ40"), "%s", r->out);
    cr_assert(strstr(r->out, "delivered"), "%s", r->out);
    cr_assert(strstr(r->out, "RZZ40"), "%s", r->out);
    cr_assert(strstr(r->out, "acknowledged"), "%s", r->out);
    cr_assert(strstr(r->out, "outcomes received"), "%s", r->out);
    cr_assert(strstr(r->out, o.event_id), "%s", r->out);

    /* trace of the patient, for a machine: every event and recipient. */
    r = audit_run("trace", "--nhs", nhs, "--json", NULL);
    cr_assert_eq(r->status, 0, "exit %d: %s", r->status, r->err);
    json_t *lines = json_lines(r->out);
    size_t i;
    json_t *l;
    bool seen_a = false, seen_b = false, seen_o = false, to_nursing = false,
         to_gp = false;
    json_array_foreach(lines, i, l)
    {
        const char *type = jget(l, "type");
        const char *id = jget(l, "event_id");
        if (strcmp(type, "event") == 0) {
            seen_a |= strcmp(id, a.event_id) == 0;
            seen_b |= strcmp(id, b.event_id) == 0;
            seen_o |= strcmp(id, o.event_id) == 0;
        }
        if (strcmp(type, "recipient") == 0) {
            cr_assert_str_eq(jget(l, "state"), "delivered", "%s", r->out);
            cr_assert(json_is_string(json_object_get(l, "acknowledged")));
            to_nursing |= strcmp(jget(l, "destination"), "RZZ40") == 0;
            to_gp |= strcmp(jget(l, "destination"), "Z99001") == 0;
        }
    }
    cr_assert(seen_a && seen_b && seen_o, "every event of the patient: %s",
              r->out);
    cr_assert(to_nursing && to_gp, "every recipient of the patient: %s",
              r->out);
    json_decref(lines);

    r = audit_run("verify", NULL);
    cr_assert_eq(r->status, 0, "exit %d: %s %s", r->status, r->out, r->err);
    cr_assert(strstr(r->out, "audit chain intact: "), "%s", r->out);

    hov_client_free(gp);
    hov_client_free(nursing);
    th_hub_stop(&hub);

    /* Hub stopped: export writes its read record directly. */
    char today[11];
    hov_today_london(today);
    r = audit_run("verify", "--json", NULL);
    cr_assert_eq(r->status, 0, "%s", r->err);
    json_t *v = json_loads(r->out, 0, NULL);
    cr_assert_not_null(v, "%s", r->out);
    long long total = json_integer_value(json_object_get(v, "records"));
    json_decref(v);
    r = audit_run("export", "--from", today, "--to", today, NULL);
    cr_assert_eq(r->status, 0, "exit %d: %s", r->status, r->err);
    lines = json_lines(r->out);
    cr_assert_eq((long long)json_array_size(lines), total,
                 "export of today gives every record (%lld): %s", total,
                 r->out);
    size_t reads = 0;
    json_array_foreach(lines, i, l)
    {
        cr_assert_str_neq(jget(l, "hash"), "");
        cr_assert_str_neq(jget(l, "time"), "");
        cr_assert(json_is_string(json_object_get(l, "prev_hash")));
        cr_assert(json_is_string(json_object_get(l, "nhs_number")));
        if (strcmp(jget(l, "action"), "read") == 0) {
            reads++;
            cr_assert_str_eq(jget(l, "actor"), "auditor:tester");
            cr_assert(strstr(jget(l, "detail"), "peer uid"),
                      "a read through the hub names the peer: %s",
                      jget(l, "detail"));
        }
    }
    cr_assert_eq(reads, 2, "both traces were audited: %s", r->out);
    cr_assert(strstr(r->out, "trace of event "), "%s", r->out);
    cr_assert(strstr(r->out, "trace of NHS number 9996118428"), "%s", r->out);
    json_decref(lines);

    /* The export was audited too (directly, the hub being stopped). */
    r = audit_run("export", "--from", today, "--to", today, NULL);
    cr_assert_eq(r->status, 0, "%s", r->err);
    cr_assert(strstr(r->out, "export of "), "%s", r->out);
    cr_assert(strstr(r->out, "no hub running"), "%s", r->out);
    cr_assert_eq(count_substr(r->out, "\n"), (size_t)total + 1);

    /* The direct appends kept the chain intact; then alter a record in
     * the middle and verify names it. */
    r = audit_run("verify", NULL);
    cr_assert_eq(r->status, 0, "%s %s", r->out, r->err);
    uint64_t bad = (uint64_t)total / 2;
    tamper(bad);
    r = audit_run("verify", NULL);
    cr_assert_eq(r->status, 1, "exit %d: %s %s", r->status, r->out, r->err);
    char want[64];
    snprintf(want, sizeof want, "BROKEN at record %llu ",
             (unsigned long long)bad);
    cr_assert(strstr(r->out, want), "names record %llu: %s",
              (unsigned long long)bad, r->out);
    cr_assert(strstr(r->out, "hash mismatch"), "%s", r->out);
    r = audit_run("verify", "--json", NULL);
    cr_assert_eq(r->status, 1);
    v = json_loads(r->out, 0, NULL);
    cr_assert_not_null(v, "%s", r->out);
    cr_assert_eq(json_integer_value(
                     json_object_get(json_object_get(v, "first_bad"), "seq")),
                 (json_int_t)bad);
    json_decref(v);
}

Test(audit, usage_and_unknown_event)
{
    th_hub_init(&hub, fast);
    snprintf(data_dir, sizeof data_dir, "%s/data", hub.dir);
    th_hub_start(&hub);
    run_result *r = audit_run("trace", NULL);
    cr_assert_eq(r->status, 2, "%s", r->err);
    r = audit_run("export", "--from", "2024-13-01", "--to", "2024-01-02", NULL);
    cr_assert_eq(r->status, 2, "%s", r->err);
    r = audit_run("trace", "00000000-0000-4000-8000-000000000000", NULL);
    cr_assert_eq(r->status, 1, "nothing matches: %s %s", r->out, r->err);
    r = audit_run("verify", NULL);
    cr_assert_eq(r->status, 0, "%s %s", r->out, r->err);
    th_hub_stop(&hub);
}

/* Replace the first occurrence of from in text (a malloc'd copy). */
static char *
replaced(const char *text, const char *from, const char *to)
{
    const char *at = strstr(text, from);
    cr_assert_not_null(at, "the default configuration has no '%s'", from);
    size_t n = strlen(text) - strlen(from) + strlen(to) + 1;
    char *out = malloc(n);
    snprintf(out, n, "%.*s%s%s", (int)(at - text), text, to, at + strlen(from));
    return out;
}

static void
write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "%s", path);
    fputs(text, f);
    cr_assert_eq(fclose(f), 0);
}

/* what-if: a day's events routed again with another configuration. The
 * same configuration changes nothing; one that sends pathway 1-3
 * discharges to nursing only, orders to the council too and no
 * district-nursing referrals shows exactly those three events, each with
 * what it lost, gained or why it would be refused; the read is audited. */
Test(audit, what_if_shows_where_events_would_have_gone)
{
    th_hub_init(&hub, fast);
    snprintf(data_dir, sizeof data_dir, "%s/data", hub.dir);
    th_hub_start(&hub);
    hov_client *gp = th_client(&hub, "gp", "t-gp", false, 0);
    hov_client *nursing = th_client(&hub, "nursing", "t-nursing", true, 8);
    hov_sample ref, dis, ord, out;
    hov_sample_init(&ref, "referral", "9996118428"); /* district-nursing */
    th_publish_ok(gp, &ref);
    hov_msg m;
    th_next_delivery(nursing, th_ms(5000), &m, NULL);
    cr_assert_str_eq(m.event_id, ref.event_id);
    settle_done(nursing, &m);
    hov_sample_init(&dis, "discharge", "9996118428"); /* pathway 1 */
    th_publish_ok(nursing, &dis);
    hov_sample_init(&ord, "equipment_order", "9996118428");
    th_publish_ok(nursing, &ord);
    hov_sample_init(&out, "outcome", "9996118428");
    hov_sample_set_reply(&out, ref.event_id, "accepted");
    th_publish_ok(nursing, &out);

    char same[400], other[400], today[11];
    snprintf(same, sizeof same, "%s/same.yaml", hub.dir);
    snprintf(other, sizeof other, "%s/other.yaml", hub.dir);
    write_file(same, config_default_yaml);
    char *a = replaced(config_default_yaml, "    to: [RZZ40, Z9Z9Z]\n",
                       "    to: [RZZ40]\n");
    char *b = replaced(a, "    to: [8ZZ99]\n", "    to: [Z9Z9Z]\n");
    char *c = replaced(b, "service: [district-nursing, urgent-community",
                       "service: [urgent-community");
    write_file(other, c);
    free(a);
    free(b);
    free(c);
    hov_today_london(today);

    run_result *r = audit_run("what-if", "--routes", same, "--from", today,
                              "--to", today, NULL);
    cr_assert_eq(r->status, 0, "exit %d: %s%s", r->status, r->out, r->err);
    cr_assert(strstr(r->out, "4 events received, 0 would go differently"), "%s",
              r->out);

    r = audit_run("what-if", "--routes", other, "--from", today, "--to", today,
                  NULL);
    cr_assert_eq(r->status, 1, "exit %d: %s%s", r->status, r->out, r->err);
    cr_assert(strstr(r->out, "4 events received, 3 would go differently"), "%s",
              r->out);
    cr_assert(strstr(r->out, "(-Z9Z9Z)"), "%s", r->out);
    cr_assert(strstr(r->out, "(+Z9Z9Z)"), "%s", r->out);
    cr_assert(strstr(r->out, "would be refused: no route"), "%s", r->out);
    cr_assert(strstr(r->out, out.event_id) == NULL,
              "the outcome goes where it went: %s", r->out);
    cr_assert(strstr(r->out, "9996118428") == NULL,
              "what-if names no patient: %s", r->out);

    r = audit_run("what-if", "--routes", other, "--from", today, "--to", today,
                  "--json", NULL);
    cr_assert_eq(r->status, 1);
    json_t *lines = json_lines(r->out);
    cr_assert_eq(json_array_size(lines), 3, "%s", r->out);
    size_t i;
    json_t *l;
    json_array_foreach(lines, i, l)
    {
        const char *id = jget(l, "event_id");
        json_t *to = json_object_get(l, "would_go_to");
        if (strcmp(id, ref.event_id) == 0) {
            cr_expect(strstr(jget(l, "would_be_refused"), "no route"));
        } else if (strcmp(id, dis.event_id) == 0) {
            cr_expect_eq(json_array_size(to), 2); /* practice, nursing */
        } else {
            /* The order names the equipment service itself. */
            cr_expect_str_eq(id, ord.event_id);
            cr_expect_eq(json_array_size(to), 2);
            cr_expect_str_eq(json_string_value(json_array_get(to, 1)), "Z9Z9Z");
        }
    }
    json_decref(lines);

    /* A configuration that does not load: usage, and why. */
    write_file(other, "routes: [\n");
    r = audit_run("what-if", "--routes", other, "--from", today, "--to", today,
                  NULL);
    cr_assert_eq(r->status, 2, "%s", r->err);
    cr_assert(strstr(r->err, "other.yaml"), "%s", r->err);

    /* Each what-if was recorded as a read by the auditor. */
    r = audit_run("export", "--from", today, "--to", today, NULL);
    cr_assert_eq(r->status, 0);
    cr_assert_eq(count_substr(r->out, "what-if of"), 3, "%s", r->out);
    cr_assert(strstr(r->out, "auditor:tester"), "%s", r->out);
    hov_client_free(gp);
    hov_client_free(nursing);
}
