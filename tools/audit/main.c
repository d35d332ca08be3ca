/* handover-audit: the information-governance tool over the hub's store.
 *
 *   trace   every step of an event, a correlation or a patient
 *   verify  walk the audit hash chain and name the first bad record
 *   export  the audit records of a date range as JSON lines
 *   replay  send events again to a destination that received them
 *           (tools/audit/replay.h)
 *   what-if route a date range again with another configuration
 *           (tools/audit/whatif.h)
 *
 * Reading: the store is opened read-only (MDB_RDONLY), in short read
 * transactions (slices of a few thousand records), so it works on a copy
 * or on the live store without pinning the hub's pages.
 *
 * Every trace and export is itself audited, before anything is shown: the
 * hub keeps the chain's head in memory, so while it runs (its hub.lock is
 * held) the tool asks it, through the status socket, to append the record
 * ("audit-read"); when no hub runs, the tool takes hub.lock itself and
 * appends directly. If the read cannot be recorded, nothing is shown.
 *
 * Exit: 0 done (the chain is intact, for verify), 1 the chain is broken
 * (verify), nothing matched (trace), some were not replayed (replay) or
 * some would go differently (what-if), 2 bad usage, 3 the store cannot be
 * read, the hub cannot be reached (replay) or the read cannot be recorded.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <poll.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "access.h"
#include "audit.h"
#include "handover.pb-c.h"
#include "handover/str.h"
#include "handover/timeutil.h"
#include "replay.h"
#include "store.h"
#include "whatif.h"

#define DEFAULT_DATA "./handover-data"
#define SLICE        4096 /* records per read transaction */

static void
usage(FILE *f)
{
    fprintf(f,
            "usage: handover-audit COMMAND --data DIR [options]\n"
            "\n"
            "  trace EVENT_ID               every step of one event\n"
            "  trace --correlation ID       every event of a correlation\n"
            "  trace --nhs NUMBER           every event of a patient, every "
            "recipient\n"
            "  verify                       check the audit hash chain\n"
            "  export --from YYYY-MM-DD --to YYYY-MM-DD\n"
            "                               audit records of those days "
            "(Europe/London) as JSON lines\n"
            "  replay EVENT_ID --dest ORG   send an event again to a "
            "destination that received it\n"
            "  replay --from D --to D --dest ORG\n"
            "                               ... every event of those days it "
            "received (needs the hub running; audited; the partner keeps one "
            "copy by the event id)\n"
            "  what-if --routes FILE --from D --to D\n"
            "                               route those days again with "
            "another configuration and show what would differ\n"
            "\n"
            "  -d, --data DIR        the hub's data folder (default %s)\n"
            "  -j, --json            JSON lines instead of text\n"
            "  -a, --auditor NAME    who reads (default: your login name); "
            "trace and export are recorded in the audit log as "
            "auditor:NAME; for replay, the operator (--operator NAME "
            "says the same)\n"
            "\n"
            "exit: 0 done (chain intact), 1 chain broken, nothing found, "
            "some not replayed or some would differ, 2 bad usage, 3 store "
            "unreadable, hub unreachable or the read not recorded\n",
            DEFAULT_DATA);
}

static int
fail(int code, const char *msg)
{
    fprintf(stderr, "handover-audit: %s\n", msg);
    return code;
}

static const char *
login_name(void)
{
    const char *n = getlogin();
    if (n && *n)
        return n;
    n = getenv("USER");
    if (n && *n)
        return n;
    struct passwd *pw = getpwuid(geteuid());
    return pw && pw->pw_name && *pw->pw_name ? pw->pw_name : NULL;
}

/* The status protocol's rule for names (hub/status.c). */
static bool
name_valid(const char *s)
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

static void
fmt_time(uint64_t ms, char out[32])
{
    if (ms == 0)
        hov_strlcpy(out, 32, "-");
    else
        hov_rfc3339_format(ms, out);
}

static json_t *
jtime(uint64_t ms)
{
    char t[32];
    if (ms == 0)
        return json_null();
    hov_rfc3339_format(ms, t);
    return json_string(t);
}

/* json_string of text that may not be UTF-8 (a damaged record). */
static json_t *
jstr(const char *s)
{
    json_t *v = json_string(s ? s : "");
    return v ? v : json_stringn_nocheck(s, strlen(s));
}

static void
hex(const ProtobufCBinaryData *b, char *out, size_t cap)
{
    size_t i = 0;
    for (; i < b->len && 2 * i + 2 < cap; i++)
        snprintf(out + 2 * i, 3, "%02x", b->data[i]);
    out[2 * i] = '\0';
}

/* A copy of an audit record (the scan's copy is borrowed). */
typedef struct rec {
    uint64_t seq, time_ms;
    char *event_id, *nhs, *actor, *action, *detail;
    char hash[2 * STORE_HASH_BYTES + 1], prev[2 * STORE_HASH_BYTES + 1];
} rec;

typedef struct rec_list {
    rec *r;
    size_t n, cap;
    bool oom;
} rec_list;

static void
rec_list_free(rec_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->r[i].event_id);
        free(l->r[i].nhs);
        free(l->r[i].actor);
        free(l->r[i].action);
        free(l->r[i].detail);
    }
    free(l->r);
    memset(l, 0, sizeof *l);
}

static hov_err
rec_list_add(rec_list *l, const Handover__Store__AuditRecord *a, hov_error *err)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        rec *nr = realloc(l->r, cap * sizeof *nr);
        if (nr == NULL)
            return hov_fail(err, HOV_ENOMEM, 0, "out of memory");
        l->r = nr;
        l->cap = cap;
    }
    rec *r = &l->r[l->n];
    memset(r, 0, sizeof *r);
    r->seq = a->seq;
    r->time_ms = a->time_ms;
    r->event_id = strdup(a->event_id ? a->event_id : "");
    r->nhs = strdup(a->nhs_number ? a->nhs_number : "");
    r->actor = strdup(a->actor ? a->actor : "");
    r->action = strdup(a->action ? a->action : "");
    r->detail = strdup(a->detail ? a->detail : "");
    hex(&a->hash, r->hash, sizeof r->hash);
    hex(&a->prev_hash, r->prev, sizeof r->prev);
    l->n++;
    if (!r->event_id || !r->nhs || !r->actor || !r->action || !r->detail)
        return hov_fail(err, HOV_ENOMEM, 0, "out of memory");
    return HOV_OK;
}

/* The audit scan, in slices: fn decides what to keep. */
typedef struct scan_ctx {
    uint64_t next_seq;
    size_t in_slice;
    bool (*want)(void *arg, const Handover__Store__AuditRecord *a);
    void *arg;
    rec_list *out;
} scan_ctx;

static hov_err
scan_one(void *arg, const Handover__Store__AuditRecord *a, hov_error *err)
{
    scan_ctx *c = arg;
    if (c->in_slice++ == SLICE)
        return HOV_ETIMEDOUT; /* resume in a new transaction */
    c->next_seq = a->seq + 1;
    if (c->want(c->arg, a))
        return rec_list_add(c->out, a, err);
    return HOV_OK;
}

static hov_err
audit_collect(store *st,
              bool (*want)(void *, const Handover__Store__AuditRecord *),
              void *arg, rec_list *out, hov_error *err)
{
    scan_ctx c = {1, 0, want, arg, out};
    for (;;) {
        store_txn *txn;
        hov_err e = store_begin(st, true, &txn, err);
        if (e != HOV_OK)
            return e;
        c.in_slice = 0;
        e = store_audit_scan(txn, c.next_seq, scan_one, &c, err);
        store_abort(txn);
        if (e != HOV_ETIMEDOUT)
            return e;
    }
}

/* ---------------------------------------------------------------- trace */

/* One event of the trace, and what the store says of it. */
typedef struct recipient {
    char dest[64], agency[16], state[16], last_outcome[32], view[64];
    uint32_t attempts;
    uint64_t changed_ms;
} recipient;

typedef struct outcome {
    char event_id[64], status[32], from[64];
    uint64_t received_ms;
} outcome;

typedef struct tev {
    char id[64];
    bool stored; /* accepted: in the events database */
    uint64_t seq;
    char type[32], correlation[80], nhs[16], from[64], in_reply_to[64];
    uint64_t received_ms;
    recipient *rcp;
    size_t n_rcp;
    outcome *out;
    size_t n_out;
} tev;

typedef struct trace {
    const char *by_event, *by_correlation, *by_nhs;
    tev *ev;
    size_t n, cap;
    uint64_t next_seq; /* event scan resume point */
    size_t in_slice;
} trace;

static tev *
trace_find(trace *t, const char *id)
{
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->ev[i].id, id) == 0)
            return &t->ev[i];
    return NULL;
}

static tev *
trace_add(trace *t, const char *id)
{
    tev *e = trace_find(t, id);
    if (e != NULL)
        return e;
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 16;
        tev *ne = realloc(t->ev, cap * sizeof *ne);
        if (ne == NULL)
            return NULL;
        t->ev = ne;
        t->cap = cap;
    }
    e = &t->ev[t->n++];
    memset(e, 0, sizeof *e);
    hov_strlcpy(e->id, sizeof e->id, id);
    return e;
}

static void
trace_free(trace *t)
{
    for (size_t i = 0; i < t->n; i++) {
        free(t->ev[i].rcp);
        free(t->ev[i].out);
    }
    free(t->ev);
}

static void
fill_event(tev *e, uint64_t seq, const Handover__Event *ev)
{
    e->stored = true;
    e->seq = seq;
    hov_strlcpy(e->type, sizeof e->type, ev->event_type);
    hov_strlcpy(e->correlation, sizeof e->correlation, ev->correlation_id);
    hov_strlcpy(e->in_reply_to, sizeof e->in_reply_to, ev->in_reply_to);
    if (ev->patient)
        hov_strlcpy(e->nhs, sizeof e->nhs, ev->patient->nhs_number);
    if (ev->source && ev->source->org)
        hov_strlcpy(e->from, sizeof e->from, ev->source->org->code);
    if (!hov_rfc3339_to_ms(ev->received_at, &e->received_ms))
        e->received_ms = 0;
}

/* Event scan for --correlation and --nhs: the stored events that match. */
static hov_err
match_event(void *arg, uint64_t seq, const uint8_t *data, size_t len,
            hov_error *err)
{
    trace *t = arg;
    if (t->in_slice++ == SLICE)
        return HOV_ETIMEDOUT;
    t->next_seq = seq + 1;
    Handover__Event *ev = handover__event__unpack(NULL, len, data);
    if (ev == NULL)
        return HOV_OK; /* verify is the tool for damage */
    bool hit = (t->by_correlation &&
                strcmp(ev->correlation_id, t->by_correlation) == 0) ||
               (t->by_nhs && ev->patient &&
                strcmp(ev->patient->nhs_number, t->by_nhs) == 0);
    hov_err e = HOV_OK;
    if (hit) {
        tev *te = trace_add(t, ev->event_id);
        if (te == NULL)
            e = hov_fail(err, HOV_ENOMEM, 0, "out of memory");
        else
            fill_event(te, seq, ev);
    }
    handover__event__free_unpacked(ev, NULL);
    return e;
}

static const char *
state_name(Handover__Store__Delivery__State s)
{
    switch (s) {
    case HANDOVER__STORE__DELIVERY__STATE__ROUTED:
        return "routed";
    case HANDOVER__STORE__DELIVERY__STATE__DELIVERED:
        return "delivered";
    case HANDOVER__STORE__DELIVERY__STATE__REJECTED:
        return "rejected";
    case HANDOVER__STORE__DELIVERY__STATE__DEAD:
        return "dead-lettered";
    default:
        return "unknown";
    }
}

static hov_err
add_recipient(void *arg, const char *dest, const Handover__Store__Delivery *d,
              hov_error *err)
{
    tev *e = arg;
    recipient *nr = realloc(e->rcp, (e->n_rcp + 1) * sizeof *nr);
    if (nr == NULL)
        return hov_fail(err, HOV_ENOMEM, 0, "out of memory");
    e->rcp = nr;
    recipient *r = &e->rcp[e->n_rcp++];
    memset(r, 0, sizeof *r);
    hov_strlcpy(r->dest, sizeof r->dest, dest);
    hov_strlcpy(r->agency, sizeof r->agency, d->agency);
    hov_strlcpy(r->state, sizeof r->state, state_name(d->state));
    hov_strlcpy(r->last_outcome, sizeof r->last_outcome, d->last_outcome);
    r->attempts = d->attempts;
    r->changed_ms = d->changed_ms;
    return HOV_OK;
}

typedef struct reply_ctx {
    store_txn *txn;
    tev *e;
} reply_ctx;

static hov_err
add_outcome(void *arg, uint64_t reply_seq, hov_error *err)
{
    reply_ctx *c = arg;
    Handover__Event *ev = NULL;
    hov_err e = access_event_load(c->txn, reply_seq, &ev, err);
    if (e == HOV_ENOTFOUND)
        return HOV_OK;
    if (e != HOV_OK)
        return e;
    outcome *no = realloc(c->e->out, (c->e->n_out + 1) * sizeof *no);
    if (no == NULL) {
        handover__event__free_unpacked(ev, NULL);
        return hov_fail(err, HOV_ENOMEM, 0, "out of memory");
    }
    c->e->out = no;
    outcome *o = &no[c->e->n_out++];
    memset(o, 0, sizeof *o);
    hov_strlcpy(o->event_id, sizeof o->event_id, ev->event_id);
    if (ev->body_case == HANDOVER__EVENT__BODY_OUTCOME && ev->outcome)
        hov_strlcpy(o->status, sizeof o->status, ev->outcome->status);
    if (ev->source && ev->source->org)
        hov_strlcpy(o->from, sizeof o->from, ev->source->org->code);
    if (!hov_rfc3339_to_ms(ev->received_at, &o->received_ms))
        o->received_ms = 0;
    handover__event__free_unpacked(ev, NULL);
    return HOV_OK;
}

/* Where a pending or dead delivery stands: its view. */
static hov_err
view_from_queue(void *arg, unsigned q, uint64_t seq,
                const Handover__Store__QueueEntry *qe, hov_error *err)
{
    (void)q;
    (void)seq;
    (void)err;
    trace *t = arg;
    tev *e = trace_find(t, qe->event_id);
    for (size_t i = 0; e && i < e->n_rcp; i++)
        if (strcmp(e->rcp[i].dest, qe->destination) == 0)
            hov_strlcpy(e->rcp[i].view, sizeof e->rcp[i].view, qe->view);
    return HOV_OK;
}

static hov_err
view_from_dead(void *arg, uint64_t seq, const Handover__Store__DeadLetter *d,
               hov_error *err)
{
    (void)seq;
    (void)err;
    trace *t = arg;
    tev *e = trace_find(t, d->event_id);
    for (size_t i = 0; e && i < e->n_rcp; i++)
        if (strcmp(e->rcp[i].dest, d->destination) == 0 && d->view)
            hov_strlcpy(e->rcp[i].view, sizeof e->rcp[i].view, d->view);
    return HOV_OK;
}

/* Audit records of the traced events (and of the patient, for --nhs). */
static bool
want_traced(void *arg, const Handover__Store__AuditRecord *a)
{
    trace *t = arg;
    if (a->event_id[0] && trace_find(t, a->event_id))
        return true;
    if (t->by_nhs && strcmp(a->nhs_number, t->by_nhs) == 0)
        return true;
    return false;
}

/* Gather everything the trace shows, in short read transactions. */
static hov_err
trace_gather(store *st, trace *t, rec_list *recs, hov_error *err)
{
    store_txn *txn;
    hov_err e;
    if (t->by_event && trace_add(t, t->by_event) == NULL)
        return hov_fail(err, HOV_ENOMEM, 0, "out of memory");
    if (t->by_correlation || t->by_nhs) {
        t->next_seq = 1;
        do {
            if ((e = store_begin(st, true, &txn, err)) != HOV_OK)
                return e;
            t->in_slice = 0;
            e = store_event_scan(txn, t->next_seq, match_event, t, err);
            store_abort(txn);
        } while (e == HOV_ETIMEDOUT);
        if (e != HOV_OK)
            return e;
    }
    /* Rejected events are not stored; the audit log still names them. An
     * NHS trace takes every event id its patient's records name. */
    if ((e = audit_collect(st, want_traced, t, recs, err)) != HOV_OK)
        return e;
    size_t known = t->n;
    for (size_t i = 0; i < recs->n; i++)
        if (recs->r[i].event_id[0] && trace_add(t, recs->r[i].event_id) == NULL)
            return hov_fail(err, HOV_ENOMEM, 0, "out of memory");
    if (t->n != known) {
        /* Events found only by their records (rejected ones): their later
         * records (delivered, retry) carry no NHS number, so read again. */
        rec_list_free(recs);
        if ((e = audit_collect(st, want_traced, t, recs, err)) != HOV_OK)
            return e;
    }
    /* One short transaction per event for its own records. */
    for (size_t i = 0; i < t->n; i++) {
        tev *te = &t->ev[i];
        if ((e = store_begin(st, true, &txn, err)) != HOV_OK)
            return e;
        uint64_t seq;
        uint8_t dg[STORE_DIGEST_BYTES];
        e = te->stored ? HOV_OK : store_event_find(txn, te->id, &seq, dg, err);
        if (e == HOV_OK && !te->stored) {
            Handover__Event *ev = NULL;
            e = access_event_load(txn, seq, &ev, err);
            if (e == HOV_OK) {
                fill_event(te, seq, ev);
                handover__event__free_unpacked(ev, NULL);
            }
        }
        if (e == HOV_ENOTFOUND)
            e = HOV_OK; /* rejected: only the audit log has it */
        if (e == HOV_OK && te->stored)
            e = store_delivery_scan(txn, te->seq, add_recipient, te, err);
        if (e == HOV_OK && te->stored) {
            reply_ctx rc = {txn, te};
            e = store_reply_scan(txn, te->seq, add_outcome, &rc, err);
        }
        store_abort(txn);
        if (e != HOV_OK)
            return e;
    }
    if ((e = store_begin(st, true, &txn, err)) != HOV_OK)
        return e;
    e = store_queue_scan(txn, view_from_queue, t, err);
    if (e == HOV_OK)
        e = store_dead_scan(txn, view_from_dead, t, err);
    store_abort(txn);
    return e;
}

static void
print_trace_text(const trace *t, const rec_list *recs)
{
    for (size_t i = 0; i < t->n; i++) {
        const tev *e = &t->ev[i];
        char when[32];
        if (e->stored) {
            fmt_time(e->received_ms, when);
            printf("event %s: %s from %s, patient %s, correlation %s, "
                   "received %s\n",
                   e->id, e->type, e->from, e->nhs[0] ? e->nhs : "-",
                   e->correlation[0] ? e->correlation : "-", when);
            if (e->in_reply_to[0])
                printf("  answers event %s\n", e->in_reply_to);
        } else {
            printf("event %s: not in the store (rejected, or not accepted "
                   "yet)\n",
                   e->id);
        }
        for (size_t j = 0; j < recs->n; j++) {
            const rec *r = &recs->r[j];
            if (strcmp(r->event_id, e->id) != 0)
                continue;
            fmt_time(r->time_ms, when);
            printf("  %s  %-15s %-22s %s\n", when, r->action, r->actor,
                   r->detail);
        }
        if (e->n_rcp > 0)
            printf("  recipients:\n");
        for (size_t j = 0; j < e->n_rcp; j++) {
            const recipient *r = &e->rcp[j];
            fmt_time(r->changed_ms, when);
            printf(
                "    %-10s %-9s %-13s attempts %u, %s %s%s%s%s%s\n", r->dest,
                r->agency, r->state, r->attempts,
                strcmp(r->state, "delivered") == 0 ? "acknowledged" : "since",
                when, r->view[0] ? ", view " : "", r->view,
                r->last_outcome[0] ? ", last outcome " : "", r->last_outcome);
        }
        if (e->n_out > 0)
            printf("  outcomes received:\n");
        for (size_t j = 0; j < e->n_out; j++) {
            const outcome *o = &e->out[j];
            fmt_time(o->received_ms, when);
            printf("    %s  %s from %s (event %s)\n", when,
                   o->status[0] ? o->status : "?", o->from, o->event_id);
        }
        printf("\n");
    }
    /* Records of the patient that name no event (none today; kept so a
     * patient-level record is never hidden). */
    for (size_t j = 0; j < recs->n; j++) {
        const rec *r = &recs->r[j];
        if (r->event_id[0])
            continue;
        char when[32];
        fmt_time(r->time_ms, when);
        printf("patient %s  %s  %-15s %-22s %s\n", r->nhs, when, r->action,
               r->actor, r->detail);
    }
}

static json_t *
rec_json(const rec *r)
{
    json_t *o = json_object();
    if (o == NULL)
        return NULL;
    json_object_set_new(o, "seq", json_integer((json_int_t)r->seq));
    json_object_set_new(o, "time", jtime(r->time_ms));
    json_object_set_new(o, "event_id", jstr(r->event_id));
    json_object_set_new(o, "nhs_number", jstr(r->nhs));
    json_object_set_new(o, "actor", jstr(r->actor));
    json_object_set_new(o, "action", jstr(r->action));
    json_object_set_new(o, "detail", jstr(r->detail));
    json_object_set_new(o, "hash", json_string(r->hash));
    json_object_set_new(o, "prev_hash", json_string(r->prev));
    return o;
}

/* One JSON object a line: "event", then its "step"s (audit records),
 * "recipient"s and "outcome"s. */
static bool
print_trace_json(const trace *t, const rec_list *recs)
{
    bool ok = true;
    for (size_t i = 0; i < t->n; i++) {
        const tev *e = &t->ev[i];
        json_t *o = json_object();
        json_object_set_new(o, "type", json_string("event"));
        json_object_set_new(o, "event_id", jstr(e->id));
        json_object_set_new(o, "stored", json_boolean(e->stored));
        if (e->stored) {
            json_object_set_new(o, "event_type", jstr(e->type));
            json_object_set_new(o, "from", jstr(e->from));
            json_object_set_new(o, "nhs_number", jstr(e->nhs));
            json_object_set_new(o, "correlation_id", jstr(e->correlation));
            json_object_set_new(o, "in_reply_to", jstr(e->in_reply_to));
            json_object_set_new(o, "received", jtime(e->received_ms));
        }
        ok = access_emit(o) && ok;
        for (size_t j = 0; j < recs->n; j++) {
            if (strcmp(recs->r[j].event_id, e->id) != 0)
                continue;
            json_t *s = rec_json(&recs->r[j]);
            json_object_set_new(s, "type", json_string("step"));
            ok = access_emit(s) && ok;
        }
        for (size_t j = 0; j < e->n_rcp; j++) {
            const recipient *r = &e->rcp[j];
            json_t *s = json_object();
            json_object_set_new(s, "type", json_string("recipient"));
            json_object_set_new(s, "event_id", jstr(e->id));
            json_object_set_new(s, "destination", jstr(r->dest));
            json_object_set_new(s, "agency", jstr(r->agency));
            json_object_set_new(s, "state", jstr(r->state));
            json_object_set_new(s, "attempts", json_integer(r->attempts));
            json_object_set_new(s, "changed", jtime(r->changed_ms));
            json_object_set_new(s, "acknowledged",
                                strcmp(r->state, "delivered") == 0
                                    ? jtime(r->changed_ms)
                                    : json_null());
            json_object_set_new(s, "view",
                                r->view[0] ? jstr(r->view) : json_null());
            json_object_set_new(s, "last_outcome", jstr(r->last_outcome));
            ok = access_emit(s) && ok;
        }
        for (size_t j = 0; j < e->n_out; j++) {
            const outcome *r = &e->out[j];
            json_t *s = json_object();
            json_object_set_new(s, "type", json_string("outcome"));
            json_object_set_new(s, "event_id", jstr(e->id));
            json_object_set_new(s, "outcome_event_id", jstr(r->event_id));
            json_object_set_new(s, "status", jstr(r->status));
            json_object_set_new(s, "from", jstr(r->from));
            json_object_set_new(s, "received", jtime(r->received_ms));
            ok = access_emit(s) && ok;
        }
    }
    for (size_t j = 0; j < recs->n; j++) {
        if (recs->r[j].event_id[0])
            continue;
        json_t *s = rec_json(&recs->r[j]);
        json_object_set_new(s, "type", json_string("step"));
        ok = access_emit(s) && ok;
    }
    return ok;
}

static int
cmd_trace(const char *dir, const char *auditor, bool json, const char *id,
          const char *corr, const char *nhs)
{
    if ((id != NULL) + (corr != NULL) + (nhs != NULL) != 1)
        return fail(EXIT_USAGE, "trace wants one of EVENT_ID, --correlation "
                                "ID or --nhs NUMBER");
    const char *subj = id ? id : corr ? corr : nhs;
    if (!access_word_valid(subj, 80))
        return fail(EXIT_USAGE, "the event id, correlation id or NHS number "
                                "is one word of at most 80 characters");
    if (nhs && (strlen(nhs) != 10 || strspn(nhs, "0123456789") != 10))
        return fail(EXIT_USAGE, "an NHS number is 10 digits");
    store *st;
    if (access_open_store(dir, &st) != 0)
        return EXIT_STORE;
    trace t;
    memset(&t, 0, sizeof t);
    t.by_event = id;
    t.by_correlation = corr;
    t.by_nhs = nhs;
    rec_list recs = {0};
    hov_error err = {0};
    hov_err e = trace_gather(st, &t, &recs, &err);
    store_free(st); /* closed before a second environment may be opened */
    int rc = EXIT_DONE;
    if (e != HOV_OK) {
        fprintf(stderr, "handover-audit: cannot read the store: %s\n", err.msg);
        rc = EXIT_STORE;
    } else {
        const char *kind = id     ? "trace-event"
                           : corr ? "trace-correlation"
                                  : "trace-nhs";
        const char *ev_nhs = "";
        if (id && t.n > 0 && t.ev[0].nhs[0])
            ev_nhs = t.ev[0].nhs;
        else if (nhs)
            ev_nhs = nhs;
        if (access_record_read(dir, auditor, kind, subj, id ? id : "",
                               ev_nhs) != 0)
            rc = EXIT_STORE;
    }
    if (rc == EXIT_DONE) {
        bool found = recs.n > 0 || (t.n > 0 && t.ev[0].stored);
        if (!found) {
            fprintf(stderr, "handover-audit: nothing in %s matches %s\n", dir,
                    subj);
            rc = EXIT_FOUND_BAD;
        } else if (json) {
            if (!print_trace_json(&t, &recs))
                rc = fail(EXIT_STORE, "out of memory writing JSON");
        } else {
            print_trace_text(&t, &recs);
        }
    }
    rec_list_free(&recs);
    trace_free(&t);
    return rc;
}

/* --------------------------------------------------------------- verify */

static int
cmd_verify(const char *dir, bool json)
{
    store *st;
    if (access_open_store(dir, &st) != 0)
        return EXIT_STORE;
    audit_verify_report rep;
    hov_error err = {0};
    hov_err e = audit_verify_report_get(st, &rep, &err);
    store_free(st);
    if (e != HOV_OK) {
        fprintf(stderr, "handover-audit: cannot read the audit log: %s\n",
                err.msg);
        return EXIT_STORE;
    }
    char t1[32], t2[32];
    if (json) {
        json_t *o = json_object();
        json_object_set_new(o, "intact", json_boolean(!rep.bad));
        json_object_set_new(o, "records", json_integer((json_int_t)rep.count));
        json_object_set_new(o, "first_seq",
                            json_integer((json_int_t)rep.first_seq));
        json_object_set_new(o, "first_time", jtime(rep.first_time_ms));
        json_object_set_new(o, "last_seq",
                            json_integer((json_int_t)rep.last_seq));
        json_object_set_new(o, "last_time", jtime(rep.last_time_ms));
        if (rep.bad) {
            json_t *b = json_object();
            json_object_set_new(b, "seq",
                                json_integer((json_int_t)rep.bad_seq));
            json_object_set_new(b, "time", jtime(rep.bad_time_ms));
            json_object_set_new(b, "action", jstr(rep.bad_action));
            json_object_set_new(b, "problem", jstr(rep.bad_what));
            json_object_set_new(o, "first_bad", b);
        }
        if (!access_emit(o))
            return fail(EXIT_STORE, "out of memory writing JSON");
    } else if (!rep.bad) {
        fmt_time(rep.first_time_ms, t1);
        fmt_time(rep.last_time_ms, t2);
        if (rep.count == 0)
            printf("audit chain intact: 0 records (the log is empty)\n");
        else
            printf("audit chain intact: %llu records, first %llu at %s, last "
                   "%llu at %s\n",
                   (unsigned long long)rep.count,
                   (unsigned long long)rep.first_seq, t1,
                   (unsigned long long)rep.last_seq, t2);
    } else {
        fmt_time(rep.bad_time_ms, t1);
        printf("audit chain BROKEN at record %llu (time %s, action %s): %s\n",
               (unsigned long long)rep.bad_seq, t1,
               rep.bad_action[0] ? rep.bad_action : "-", rep.bad_what);
        printf("records 1 to %llu are intact; nothing from record %llu on "
               "can be trusted until the cause is found\n",
               (unsigned long long)rep.count, (unsigned long long)rep.bad_seq);
    }
    return rep.bad ? EXIT_FOUND_BAD : EXIT_DONE;
}

/* --------------------------------------------------------------- export */

typedef struct range {
    uint64_t from_ms, to_ms; /* [from, to) */
} range;

static bool
want_in_range(void *arg, const Handover__Store__AuditRecord *a)
{
    const range *r = arg;
    return a->time_ms >= r->from_ms && a->time_ms < r->to_ms;
}

static int
cmd_export(const char *dir, const char *auditor, const char *from,
           const char *to)
{
    range r;
    if (!access_day_range(from, to, &r.from_ms, &r.to_ms))
        return fail(EXIT_USAGE, "export wants --from YYYY-MM-DD and --to "
                                "YYYY-MM-DD (days in Europe/London, both "
                                "included)");
    store *st;
    if (access_open_store(dir, &st) != 0)
        return EXIT_STORE;
    rec_list recs = {0};
    hov_error err = {0};
    hov_err e = audit_collect(st, want_in_range, &r, &recs, &err);
    store_free(st);
    int rc = EXIT_DONE;
    char subj[32];
    snprintf(subj, sizeof subj, "%s..%s", from, to);
    if (e != HOV_OK) {
        fprintf(stderr, "handover-audit: cannot read the audit log: %s\n",
                err.msg);
        rc = EXIT_STORE;
    } else if (access_record_read(dir, auditor, "export", subj, "", "") != 0) {
        rc = EXIT_STORE;
    }
    for (size_t i = 0; rc == EXIT_DONE && i < recs.n; i++)
        if (!access_emit(rec_json(&recs.r[i])))
            rc = fail(EXIT_STORE, "out of memory writing JSON");
    rec_list_free(&recs);
    return rc;
}

int
main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"data", required_argument, 0, 'd'},
        {"json", no_argument, 0, 'j'},
        {"auditor", required_argument, 0, 'a'},
        {"correlation", required_argument, 0, 'c'},
        {"nhs", required_argument, 0, 'n'},
        {"from", required_argument, 0, 'f'},
        {"to", required_argument, 0, 't'},
        {"dest", required_argument, 0, 'D'},
        {"routes", required_argument, 0, 'r'},
        {"operator", required_argument, 0, 'a'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    const char *data = DEFAULT_DATA, *auditor = NULL, *corr = NULL, *nhs = NULL,
               *from = NULL, *to = NULL, *dest = NULL, *routes = NULL;
    bool json = false;
    int c;
    while ((c = getopt_long(argc, argv, "d:ja:c:n:f:t:D:r:h", opts, NULL)) !=
           -1) {
        switch (c) {
        case 'd':
            data = optarg;
            break;
        case 'j':
            json = true;
            break;
        case 'a':
            auditor = optarg;
            break;
        case 'c':
            corr = optarg;
            break;
        case 'n':
            nhs = optarg;
            break;
        case 'f':
            from = optarg;
            break;
        case 't':
            to = optarg;
            break;
        case 'D':
            dest = optarg;
            break;
        case 'r':
            routes = optarg;
            break;
        case 'h':
            usage(stdout);
            return EXIT_DONE;
        default:
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[optind];
    int nargs = argc - optind - 1;
    char *const *args = argv + optind + 1;
    if (strcmp(cmd, "verify") == 0) {
        if (nargs != 0)
            return fail(EXIT_USAGE, "verify takes no arguments");
        return cmd_verify(data, json);
    }
    if (strcmp(cmd, "trace") != 0 && strcmp(cmd, "export") != 0 &&
        strcmp(cmd, "replay") != 0 && strcmp(cmd, "what-if") != 0) {
        usage(stderr);
        return EXIT_USAGE;
    }
    if (auditor == NULL)
        auditor = login_name();
    if (auditor == NULL)
        return fail(EXIT_USAGE, "cannot tell who you are: give --auditor "
                                "NAME (every read is recorded in the audit "
                                "log)");
    if (!name_valid(auditor))
        return fail(EXIT_USAGE, "--auditor wants 1 to 64 letters, digits or "
                                ". _ - @ +");
    if (strcmp(cmd, "trace") == 0) {
        if (nargs > 1)
            return fail(EXIT_USAGE, "trace takes one EVENT_ID");
        return cmd_trace(data, auditor, json, nargs == 1 ? args[0] : NULL, corr,
                         nhs);
    }
    if (strcmp(cmd, "replay") == 0) {
        if (nargs > 1)
            return fail(EXIT_USAGE, "replay takes one EVENT_ID");
        return replay_run(data, auditor, nargs == 1 ? args[0] : NULL, from, to,
                          dest, json);
    }
    if (strcmp(cmd, "what-if") == 0) {
        if (nargs != 0)
            return fail(EXIT_USAGE, "what-if takes --routes, --from and --to, "
                                    "no arguments");
        return whatif_run(data, auditor, routes, from, to, json);
    }
    if (nargs != 0)
        return fail(EXIT_USAGE, "export takes --from and --to, no arguments");
    return cmd_export(data, auditor, from, to);
}
