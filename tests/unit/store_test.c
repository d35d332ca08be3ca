/* The LMDB store on a real folder: durability flags, events and the ids
 * index across reopening and merging, counters, a poisoned transaction
 * after a full map, and the audit chain catching an altered record. */
#include <criterion/criterion.h>
#include <lmdb.h>
#include <stdio.h>
#include <string.h>

#include "audit.h"
#include "harness.h"
#include "store.h"

static char dir[256];
static store *st;

static void
open_store(size_t map_size)
{
    hov_error err = {0};
    cr_assert(store_new(&st, &err) == HOV_OK);
    cr_assert(store_set_map_size(st, map_size, &err) == HOV_OK);
    cr_assert(store_set_merge_at(st, 1000000, &err) == HOV_OK);
    cr_assert(store_open(st, dir, &err) == HOV_OK, "%s", err.msg);
}

static void
setup(void)
{
    th_tmpdir(dir, sizeof dir);
    open_store((size_t)64 << 20);
}

static void
teardown(void)
{
    store_free(st);
    th_rm_rf(dir);
}

TestSuite(store, .init = setup, .fini = teardown, .timeout = 20);

static const uint8_t digest[STORE_DIGEST_BYTES] = {1, 2, 3};

static uint64_t
add_event(store_txn *t, const char *id)
{
    uint64_t seq;
    uint8_t *buf;
    hov_error err = {0};
    cr_assert(store_event_add(t, id, digest, 5, &seq, &buf, &err) == HOV_OK,
              "%s", err.msg);
    memcpy(buf, "hello", 5);
    return seq;
}

Test(store, durable_flags)
{
    cr_assert_eq(
        store_env_flags(st) & (MDB_NOSYNC | MDB_NOMETASYNC | MDB_MAPASYNC), 0);
}

Test(store, events_found_before_and_after_merge_and_reopen)
{
    const char *a = "0d6f5a48-6a3c-4bd6-9a52-1f1de86bb8a5";
    const char *b = "1f77db6f-8a5d-514f-9a74-16a2aae1843f";
    store_txn *t;
    hov_error err = {0};
    cr_assert(store_begin(st, false, &t, &err) == HOV_OK);
    uint64_t sa = add_event(t, a);
    cr_assert(store_commit(t, &err) == HOV_OK);

    /* An aborted add leaves nothing behind, not even in memory. */
    cr_assert(store_begin(st, false, &t, &err) == HOV_OK);
    add_event(t, b);
    store_abort(t);

    uint64_t seq;
    uint8_t d[STORE_DIGEST_BYTES];
    cr_assert(store_begin(st, true, &t, &err) == HOV_OK);
    cr_assert(store_event_find(t, a, &seq, d, &err) == HOV_OK);
    cr_assert_eq(seq, sa);
    cr_assert(memcmp(d, digest, sizeof d) == 0);
    cr_assert_eq(store_event_find(t, b, &seq, d, &err), HOV_ENOTFOUND);
    const uint8_t *data;
    size_t len;
    cr_assert(store_event_read(t, sa, &data, &len, &err) == HOV_OK);
    cr_assert(len == 5 && memcmp(data, "hello", 5) == 0);
    store_abort(t);

    /* Reopened: the id comes back from the recent log. */
    store_free(st);
    open_store((size_t)64 << 20);
    cr_assert_eq(store_recent_count(st), 1);
    cr_assert(store_begin(st, true, &t, &err) == HOV_OK);
    cr_assert(store_event_find(t, a, &seq, d, &err) == HOV_OK);
    store_abort(t);

    /* Merged: found in the ids tree, and the sequence continues. */
    size_t merged;
    cr_assert(store_merge_ids(st, true, &merged, &err) == HOV_OK);
    cr_assert_eq(merged, 1);
    cr_assert_eq(store_recent_count(st), 0);
    store_free(st);
    open_store((size_t)64 << 20);
    cr_assert_eq(store_recent_count(st), 0, "the recent log was emptied");
    cr_assert(store_begin(st, false, &t, &err) == HOV_OK);
    cr_assert(store_event_find(t, a, &seq, d, &err) == HOV_OK);
    cr_assert_eq(seq, sa);
    cr_assert_eq(add_event(t, b), sa + 1, "event numbers continue");
    cr_assert(store_commit(t, &err) == HOV_OK);
}

Test(store, full_map_poisons_the_transaction)
{
    store_free(st);
    th_rm_rf(dir);
    th_tmpdir(dir, sizeof dir);
    open_store((size_t)256 << 10);
    store_txn *t;
    hov_error err = {0};
    cr_assert(store_begin(st, false, &t, &err) == HOV_OK);
    hov_err e = HOV_OK;
    char id[40];
    for (int i = 0; i < 100000 && e == HOV_OK; i++) {
        snprintf(id, sizeof id, "0d6f5a48-6a3c-4bd6-9a52-%012d", i);
        uint64_t seq;
        uint8_t *buf;
        e = store_event_add(t, id, digest, 2000, &seq, &buf, &err);
        if (e == HOV_OK)
            memset(buf, 'x', 2000);
    }
    cr_assert_eq(e, HOV_ESTOREFULL, "%s", err.msg);
    cr_assert(strstr(err.msg, "map_size_mb"), "says what to do: %s", err.msg);
    hov_error err2 = {0};
    cr_assert_eq(store_commit(t, &err2), HOV_ESTATE,
                 "a failed transaction cannot be committed");
    cr_assert_eq(store_recent_count(st), 0, "its ids were taken back");
    /* The store is still usable. */
    cr_assert(store_begin(st, false, &t, &err2) == HOV_OK);
    store_abort(t);
}

Test(store, audit_chain_detects_an_altered_record)
{
    store_txn *t;
    hov_error err = {0};
    cr_assert(store_begin(st, false, &t, &err) == HOV_OK);
    for (int i = 0; i < 5; i++)
        cr_assert(audit_log(t, 1000 + i, "0d6f5a48-6a3c-4bd6-9a52-1f1de86bb8a5",
                            "9992468130", "gp", AUDIT_ACCEPTED, "detail",
                            &err) == HOV_OK);
    cr_assert(store_commit(t, &err) == HOV_OK);
    uint64_t n, bad;
    cr_assert(audit_verify(st, &n, &bad, &err) == HOV_OK, "%s", err.msg);
    cr_assert_eq(n, 5);
    store_free(st);
    st = NULL;

    /* Alter record 3 with a raw LMDB write, as an intruder would. */
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    cr_assert(mdb_env_create(&env) == 0);
    cr_assert(mdb_env_set_maxdbs(env, 16) == 0);
    cr_assert(mdb_env_set_mapsize(env, (size_t)64 << 20) == 0);
    cr_assert(mdb_env_open(env, dir, 0, 0640) == 0);
    cr_assert(mdb_txn_begin(env, NULL, 0, &txn) == 0);
    cr_assert(mdb_dbi_open(txn, "audit", 0, &dbi) == 0);
    uint8_t k[8] = {0, 0, 0, 0, 0, 0, 0, 3};
    MDB_val key = {8, k}, val;
    cr_assert(mdb_get(txn, dbi, &key, &val) == 0);
    Handover__Store__AuditRecord *r =
        handover__store__audit_record__unpack(NULL, val.mv_size, val.mv_data);
    cr_assert_not_null(r);
    char *orig = r->detail;
    r->detail = (char *)"nothing happened here";
    size_t len = handover__store__audit_record__get_packed_size(r);
    uint8_t buf[1024];
    handover__store__audit_record__pack(r, buf);
    r->detail = orig; /* freed with r */
    MDB_val nv = {len, buf};
    cr_assert(mdb_put(txn, dbi, &key, &nv, 0) == 0);
    cr_assert(mdb_txn_commit(txn) == 0);
    mdb_env_close(env);
    handover__store__audit_record__free_unpacked(r, NULL);

    open_store((size_t)64 << 20);
    hov_error_clear(&err);
    cr_assert_eq(audit_verify(st, &n, &bad, &err), HOV_ESTORE);
    cr_assert_eq(bad, 3, "the altered record is named: %s", err.msg);
    cr_assert(strstr(err.msg, "record 3"), "%s", err.msg);
}
