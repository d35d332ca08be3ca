#include "audit.h"

#include <sodium.h>
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
    uint64_t count;
    uint64_t expect_seq;
    uint64_t *bad_seq;
} verify_ctx;

static hov_err
verify_one(void *arg, const Handover__Store__AuditRecord *rec, hov_error *err)
{
    verify_ctx *v = arg;
    if (rec->seq != v->expect_seq) {
        *v->bad_seq = rec->seq;
        return hov_fail(err, HOV_ESTORE, 0,
                        "audit record %llu: expected sequence %llu (a record "
                        "is missing)",
                        (unsigned long long)rec->seq,
                        (unsigned long long)v->expect_seq);
    }
    if (rec->prev_hash.len != STORE_HASH_BYTES ||
        memcmp(rec->prev_hash.data, v->prev, STORE_HASH_BYTES) != 0) {
        *v->bad_seq = rec->seq;
        return hov_fail(err, HOV_ESTORE, 0,
                        "audit record %llu: prev_hash does not match record "
                        "%llu's hash",
                        (unsigned long long)rec->seq,
                        (unsigned long long)rec->seq - 1);
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
        *v->bad_seq = rec->seq;
        return hov_fail(err, HOV_ESTORE, 0,
                        "audit record %llu: content does not match its hash "
                        "(altered)",
                        (unsigned long long)rec->seq);
    }
    memcpy(v->prev, h, sizeof h);
    v->count++;
    v->expect_seq++;
    return HOV_OK;
}

hov_err
audit_verify(store *s, uint64_t *count, uint64_t *bad_seq, hov_error *err)
{
    store_txn *txn;
    hov_err e = store_begin(s, true, &txn, err);
    if (e != HOV_OK)
        return e;
    verify_ctx v;
    memset(&v, 0, sizeof v);
    v.expect_seq = 1;
    v.bad_seq = bad_seq;
    *bad_seq = 0;
    e = store_audit_scan(txn, 1, verify_one, &v, err);
    store_abort(txn);
    *count = v.count;
    return e;
}
