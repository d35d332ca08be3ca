#include "audit.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *
nz(const char *s)
{
    return (char *)(s ? s : "");
}

hov_err
audit_log(store_txn *txn, uint64_t time_ms, const char *event_id,
          const char *nhs_number, const char *actor, const char *action,
          const char *detail, hov_error *err)
{
    Handover__Store__AuditRecord rec = HANDOVER__STORE__AUDIT_RECORD__INIT;
    rec.time_ms = time_ms;
    rec.event_id = nz(event_id);
    rec.nhs_number = nz(nhs_number);
    rec.actor = nz(actor);
    rec.action = nz(action);
    rec.detail = nz(detail);
    return store_audit_append(txn, &rec, err);
}

typedef struct verify_ctx {
    uint8_t prev[STORE_HASH_BYTES];
    uint64_t expect_seq;
    size_t in_slice; /* records checked in this read transaction */
    audit_verify_report *rep;
} verify_ctx;

/* Records per read transaction: a long chain is checked in slices so no
 * reader pins the live store's old pages for long. */
#define VERIFY_SLICE 4096

static void
note_bad(verify_ctx *v, const Handover__Store__AuditRecord *rec,
         const char *what)
{
    audit_verify_report *r = v->rep;
    r->bad = true;
    r->bad_seq = rec->seq;
    r->bad_time_ms = rec->time_ms;
    snprintf(r->bad_action, sizeof r->bad_action, "%s",
             rec->action ? rec->action : "");
    snprintf(r->bad_what, sizeof r->bad_what, "%s", what);
}

static hov_err
verify_one(void *arg, const Handover__Store__AuditRecord *rec, hov_error *err)
{
    verify_ctx *v = arg;
    if (v->in_slice == VERIFY_SLICE)
        return HOV_ETIMEDOUT; /* resume in a new transaction */
    if (rec->seq != v->expect_seq) {
        char what[160];
        snprintf(what, sizeof what,
                 "sequence mismatch: found %llu where %llu was expected (a "
                 "record is missing or was moved)",
                 (unsigned long long)rec->seq,
                 (unsigned long long)v->expect_seq);
        note_bad(v, rec, what);
        return hov_fail(err, HOV_ESTORE, 0, "audit record %llu: %s",
                        (unsigned long long)rec->seq, what);
    }
    if (rec->prev_hash.len != STORE_HASH_BYTES ||
        memcmp(rec->prev_hash.data, v->prev, STORE_HASH_BYTES) != 0) {
        char what[160];
        snprintf(what, sizeof what,
                 "prev-hash mismatch: its prev_hash is not record %llu's "
                 "hash (the chain was cut or a record replaced)",
                 (unsigned long long)rec->seq - 1);
        note_bad(v, rec, what);
        return hov_fail(err, HOV_ESTORE, 0, "audit record %llu: %s",
                        (unsigned long long)rec->seq, what);
    }
    Handover__Store__AuditRecord copy = *rec;
    copy.hash.data = NULL;
    copy.hash.len = 0;
    size_t len = handover__store__audit_record__get_packed_size(&copy);
    uint8_t *buf = malloc(len ? len : 1);
    if (buf == NULL)
        return hov_fail(err, HOV_ENOMEM, 0, "verify audit record");
    handover__store__audit_record__pack(&copy, buf);
    uint8_t h[STORE_HASH_BYTES];
    crypto_generichash(h, sizeof h, buf, len, NULL, 0);
    free(buf);
    if (rec->hash.len != STORE_HASH_BYTES ||
        sodium_memcmp(h, rec->hash.data, STORE_HASH_BYTES) != 0) {
        const char *what = "hash mismatch: its content does not match its "
                           "hash (the record was altered)";
        note_bad(v, rec, what);
        return hov_fail(err, HOV_ESTORE, 0, "audit record %llu: %s",
                        (unsigned long long)rec->seq, what);
    }
    memcpy(v->prev, h, sizeof h);
    audit_verify_report *r = v->rep;
    if (r->count == 0) {
        r->first_seq = rec->seq;
        r->first_time_ms = rec->time_ms;
    }
    r->last_seq = rec->seq;
    r->last_time_ms = rec->time_ms;
    r->count++;
    v->expect_seq++;
    v->in_slice++;
    return HOV_OK;
}

hov_err
audit_verify_report_get(store *s, audit_verify_report *rep, hov_error *err)
{
    verify_ctx v;
    memset(&v, 0, sizeof v);
    memset(rep, 0, sizeof *rep);
    v.expect_seq = 1;
    v.rep = rep;
    for (;;) {
        store_txn *txn;
        hov_err e = store_begin(s, true, &txn, err);
        if (e != HOV_OK)
            return e;
        v.in_slice = 0;
        e = store_audit_scan(txn, v.expect_seq, verify_one, &v, err);
        store_abort(txn);
        if (e == HOV_ETIMEDOUT)
            continue;
        if (e == HOV_ESTORE && !rep->bad && strstr(err->msg, "unreadable")) {
            /* The record after the last good one does not even parse. */
            rep->bad = true;
            rep->bad_seq = v.expect_seq;
            snprintf(rep->bad_action, sizeof rep->bad_action, "?");
            snprintf(rep->bad_what, sizeof rep->bad_what,
                     "unreadable: its bytes are not an audit record (the "
                     "record was altered)");
        }
        if (rep->bad)
            return HOV_OK; /* an answer, not a failure to check */
        return e;
    }
}

hov_err
audit_verify(store *s, uint64_t *count, uint64_t *bad_seq, hov_error *err)
{
    audit_verify_report rep;
    hov_err e = audit_verify_report_get(s, &rep, err);
    *count = rep.count;
    *bad_seq = rep.bad_seq;
    if (e == HOV_OK && rep.bad)
        return hov_fail(err, HOV_ESTORE, 0, "audit record %llu: %s",
                        (unsigned long long)rep.bad_seq, rep.bad_what);
    return e;
}
