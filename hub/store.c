#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "handover/log.h"
#include "handover/map.h"

enum {
    DB_EVENTS,
    DB_IDS,
    DB_RECENT,
    DB_QUEUE,
    DB_DEAD,
    DB_DELIVERIES,
    DB_REPLIES,
    DB_AUDIT,
    DB_META,
    DB_WAITING,
    DB_N
};
static const char *db_names[DB_N] = {"events", "ids",        "recent",  "queue",
                                     "dead",   "deliveries", "replies", "audit",
                                     "meta",   "waiting"};

/* Counters and chain head: committed copies live in store, staged copies in
 * the write transaction, so an aborted batch leaves no gap or fork. */
typedef struct counters {
    uint64_t event_next;
    uint64_t queue_next[STORE_QUEUES];
    uint64_t dead_next;
    uint64_t audit_next;
    uint8_t audit_head[STORE_HASH_BYTES];
} counters;

/* An id accepted but not yet merged into the ids database: kept in memory
 * and, for durability, in the recent log (sequential appends). */
typedef struct recent_id {
    uint8_t id[16];
    uint64_t seq;
    uint8_t digest[STORE_DIGEST_BYTES];
} recent_id;

struct store {
    MDB_env *env;
    MDB_dbi dbi[DB_N];
    size_t map_size;
    bool open;
    bool in_write;         /* a write txn is open */
    bool broken;           /* LMDB said MDB_PANIC */
    uint64_t prealloc_end; /* the data file is allocated up to here */
    bool prealloc_warned;
    bool no_waiting; /* read-only store without the waiting index */
    hov_map *recent; /* 16-byte id -> recent_id, not yet in ids */
    size_t merge_at; /* merge recent into ids at this many */
    counters c;
};

struct store_txn {
    store *s;
    MDB_txn *txn;
    bool rdonly;
    bool poisoned;
    recent_id **added; /* recent ids this txn added: undone on abort */
    size_t n_added, cap_added;
    counters c;
    /* The audit hashes of the records appended in this txn; rec->hash and
     * rec->prev_hash point here. */
    uint8_t hashbuf[2][STORE_HASH_BYTES];
};

static void store_prealloc(store *s);

static hov_err
store_mdb_err(hov_error *err, int rc, const char *what, const char *obj)
{
    if (rc == MDB_PANIC)
        return hov_fail(err, HOV_ESTORE, rc,
                        "%s %s: %s: the environment is unusable after an "
                        "earlier failure",
                        what, obj, mdb_strerror(rc));
    if (rc == MDB_MAP_FULL)
        return hov_fail(err, HOV_ESTOREFULL, rc,
                        "%s %s: %s: raise map_size_mb, or drain queues", what,
                        obj, mdb_strerror(rc));
    /* The errno alone does not tell the on-call engineer where to look:
     * LMDB reports a short write (a disk filling up) as EIO too. */
    if (rc == ENOSPC || rc == EDQUOT)
        return hov_fail(err, HOV_EIO, rc,
                        "%s %s: %s (free space on the data folder's disk)",
                        what, obj, mdb_strerror(rc));
    if (rc == EIO)
        return hov_fail(err, HOV_EIO, rc,
                        "%s %s: %s (the data folder's disk failed a write or "
                        "sync: is it full? see the kernel log)",
                        what, obj, mdb_strerror(rc));
    if (rc == EROFS)
        return hov_fail(err, HOV_EIO, rc,
                        "%s %s: %s (the data folder is on a read-only file "
                        "system)",
                        what, obj, mdb_strerror(rc));
    if (rc == ENOMEM)
        return hov_fail(err, HOV_ENOMEM, rc, "%s %s: %s", what, obj,
                        mdb_strerror(rc));
    return hov_fail(err, HOV_ESTORE, rc, "%s %s: %s", what, obj,
                    mdb_strerror(rc));
}

/* A failure inside a write txn poisons it (R7). */
static hov_err
txn_fail(store_txn *t, hov_error *err, int rc, const char *what,
         const char *obj)
{
    if (!t->rdonly)
        t->poisoned = true;
    return store_mdb_err(err, rc, what, obj);
}

static void
be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static uint64_t
rd_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

hov_err
store_new(store **out, hov_error *err)
{
    store *s = calloc(1, sizeof *s);
    if (s == NULL)
        return hov_fail(err, HOV_ENOMEM, 0, "allocate store");
    int rc = mdb_env_create(&s->env);
    if (rc != 0) {
        free(s);
        return store_mdb_err(err, rc, "create", "LMDB environment");
    }
    s->map_size = (size_t)1 << 30;
    s->merge_at = 65536;
    hov_err e = hov_map_new(&s->recent, err);
    if (e != HOV_OK) {
        mdb_env_close(s->env);
        free(s);
        return e;
    }
    *out = s;
    return HOV_OK;
}

hov_err
store_set_merge_at(store *s, size_t n, hov_error *err)
{
    if (s->open)
        return hov_fail(err, HOV_ESTATE, 0,
                        "store_set_merge_at after store_open");
    s->merge_at = n ? n : 1;
    return HOV_OK;
}

static void
recent_clear(store *s)
{
    size_t pos = 0;
    void *v;
    while (hov_map_next(s->recent, &pos, NULL, NULL, &v))
        free(v);
    hov_map_free(s->recent);
    s->recent = NULL;
}

/* The recent log into memory, at start-up. */
static hov_err
load_recent(store *s, MDB_txn *txn, hov_error *err)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, s->dbi[DB_RECENT], &cur);
    if (rc != 0)
        return store_mdb_err(err, rc, "open cursor", "recent ids");
    MDB_val k, v;
    hov_err e = HOV_OK;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0 && e == HOV_OK;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size != 8 || v.mv_size != 16 + STORE_DIGEST_BYTES) {
            e = hov_fail(err, HOV_ESTORE, 0, "recent id entry is damaged");
            break;
        }
        recent_id *r = malloc(sizeof *r);
        if (r == NULL) {
            e = hov_fail(err, HOV_ENOMEM, 0, "load recent ids");
            break;
        }
        r->seq = rd_be64(k.mv_data);
        memcpy(r->id, v.mv_data, 16);
        memcpy(r->digest, (uint8_t *)v.mv_data + 16, STORE_DIGEST_BYTES);
        if ((e = hov_map_put(s->recent, r->id, 16, r, err)) != HOV_OK)
            free(r);
    }
    mdb_cursor_close(cur);
    return e;
}

hov_err
store_set_map_size(store *s, size_t bytes, hov_error *err)
{
    if (s->open)
        return hov_fail(err, HOV_ESTATE, 0,
                        "store_set_map_size after store_open");
    s->map_size = bytes;
    return HOV_OK;
}

/* Largest key below (prefix + 0xff..): the last sequence number in use. */
static hov_err
load_last_seq(store *s, MDB_txn *txn, MDB_dbi dbi, const uint8_t *prefix,
              size_t plen, uint64_t *next, hov_error *err)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, dbi, &cur);
    if (rc != 0)
        return store_mdb_err(err, rc, "open cursor", "counters");
    uint8_t kb[16];
    if (plen)
        memcpy(kb, prefix, plen);
    memset(kb + plen, 0xff, 8);
    MDB_val k = {plen + 8, kb}, v;
    *next = 1;
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    if (rc == 0)
        rc = mdb_cursor_get(cur, &k, &v, MDB_PREV);
    else if (rc == MDB_NOTFOUND)
        rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
    if (rc == 0 && k.mv_size == plen + 8 &&
        (plen == 0 || memcmp(k.mv_data, prefix, plen) == 0))
        *next = rd_be64((uint8_t *)k.mv_data + plen) + 1;
    mdb_cursor_close(cur);
    (void)s;
    return HOV_OK;
}

static hov_err
load_counters(store *s, MDB_txn *txn, hov_error *err)
{
    hov_err e;
    for (unsigned q = 0; q < STORE_QUEUES; q++) {
        uint8_t p = (uint8_t)q;
        if ((e = load_last_seq(s, txn, s->dbi[DB_QUEUE], &p, 1,
                               &s->c.queue_next[q], err)) != HOV_OK)
            return e;
    }
    if ((e = load_last_seq(s, txn, s->dbi[DB_EVENTS], NULL, 0, &s->c.event_next,
                           err)) != HOV_OK)
        return e;
    if ((e = load_last_seq(s, txn, s->dbi[DB_DEAD], NULL, 0, &s->c.dead_next,
                           err)) != HOV_OK)
        return e;
    if ((e = load_last_seq(s, txn, s->dbi[DB_AUDIT], NULL, 0, &s->c.audit_next,
                           err)) != HOV_OK)
        return e;
    /* An empty queue restarts at 1 after a restart. That is safe: a Settle
     * is honoured only for a delivery in flight to the settling session, and
     * every session starts empty when the hub starts. */
    memset(s->c.audit_head, 0, sizeof s->c.audit_head);
    if (s->c.audit_next > 1) {
        uint8_t kb[8];
        be64(kb, s->c.audit_next - 1);
        MDB_val k = {8, kb}, v;
        int rc = mdb_get(txn, s->dbi[DB_AUDIT], &k, &v);
        if (rc != 0)
            return store_mdb_err(err, rc, "read", "audit chain head");
        Handover__Store__AuditRecord *r =
            handover__store__audit_record__unpack(NULL, v.mv_size, v.mv_data);
        if (r == NULL || r->hash.len != STORE_HASH_BYTES) {
            if (r)
                handover__store__audit_record__free_unpacked(r, NULL);
            return hov_fail(err, HOV_ESTORE, 0,
                            "audit record %llu is unreadable: the audit log "
                            "is damaged; run handover-audit verify",
                            (unsigned long long)(s->c.audit_next - 1));
        }
        memcpy(s->c.audit_head, r->hash.data, STORE_HASH_BYTES);
        handover__store__audit_record__free_unpacked(r, NULL);
    }
    return HOV_OK;
}

hov_err
store_open(store *s, const char *dir, hov_error *err)
{
    if (s->open)
        return hov_fail(err, HOV_ESTATE, 0, "store already open");
    if (sodium_init() < 0)
        return hov_fail(err, HOV_ESYS, 0, "libsodium failed to initialise");
    if (mkdir(dir, 0750) != 0 && errno != EEXIST)
        return hov_fail(err, HOV_EIO, errno, "create data folder %s: %s", dir,
                        strerror(errno));
    int rc;
    if ((rc = mdb_env_set_mapsize(s->env, s->map_size)) != 0 ||
        (rc = mdb_env_set_maxdbs(s->env, DB_N + 2)) != 0)
        return store_mdb_err(err, rc, "configure", dir);
    /* MDB_NOTLS: read transactions are not tied to thread-local slots, so a
     * tool thread may use one. No sync-weakening flag, ever: see store.h. */
    rc = mdb_env_open(s->env, dir, MDB_NOTLS, 0640);
    if (rc != 0)
        return store_mdb_err(err, rc, "open LMDB environment in", dir);
    MDB_txn *txn;
    if ((rc = mdb_txn_begin(s->env, NULL, 0, &txn)) != 0)
        return store_mdb_err(err, rc, "begin", "open transaction");
    for (int i = 0; i < DB_N; i++) {
        if ((rc = mdb_dbi_open(txn, db_names[i], MDB_CREATE, &s->dbi[i])) !=
            0) {
            mdb_txn_abort(txn);
            return store_mdb_err(err, rc, "open database", db_names[i]);
        }
    }
    hov_err e = load_counters(s, txn, err);
    if (e == HOV_OK)
        e = load_recent(s, txn, err);
    if (e != HOV_OK) {
        mdb_txn_abort(txn);
        return e;
    }
    if ((rc = mdb_txn_commit(txn)) != 0)
        return store_mdb_err(err, rc, "commit", "open transaction");
    s->open = true;
    store_prealloc(s);
    /* The recent ids fill up to merge_at between merges: room for them now
     * rather than copying the map at every doubling on the hot path. A
     * failure only costs those copies. */
    hov_error rerr = {0};
    if (hov_map_reserve(s->recent,
                        s->merge_at < 1u << 20 ? s->merge_at : 1u << 20,
                        &rerr) != HOV_OK)
        hov_warn("recent ids: %s", rerr.msg);
    return HOV_OK;
}

hov_err
store_open_rdonly(store *s, const char *dir, hov_error *err)
{
    if (s->open)
        return hov_fail(err, HOV_ESTATE, 0, "store already open");
    if (sodium_init() < 0)
        return hov_fail(err, HOV_ESYS, 0, "libsodium failed to initialise");
    struct stat st;
    if (stat(dir, &st) != 0)
        return hov_fail(err, HOV_EIO, errno, "data folder %s: %s", dir,
                        strerror(errno));
    int rc;
    /* Map size 0: adopt the size the hub recorded, so a store bigger than
     * our default still opens. */
    if ((rc = mdb_env_set_mapsize(s->env, 0)) != 0 ||
        (rc = mdb_env_set_maxdbs(s->env, DB_N + 2)) != 0)
        return store_mdb_err(err, rc, "configure", dir);
    rc = mdb_env_open(s->env, dir, MDB_NOTLS | MDB_RDONLY, 0640);
    if (rc != 0)
        return store_mdb_err(err, rc, "open LMDB environment (read-only) in",
                             dir);
    MDB_txn *txn;
    if ((rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn)) != 0)
        return store_mdb_err(err, rc, "begin", "open transaction");
    for (int i = 0; i < DB_N; i++) {
        if ((rc = mdb_dbi_open(txn, db_names[i], 0, &s->dbi[i])) != 0) {
            if (rc == MDB_NOTFOUND && i == DB_WAITING) {
                /* A store from before the index (the hub builds it at its
                 * next start): the audit tools do not need it. */
                s->no_waiting = true;
                continue;
            }
            mdb_txn_abort(txn);
            if (rc == MDB_NOTFOUND)
                return hov_fail(err, HOV_ESTORE, rc,
                                "%s has no '%s' database: is it a Handover "
                                "data folder?",
                                dir, db_names[i]);
            return store_mdb_err(err, rc, "open database", db_names[i]);
        }
    }
    hov_err e = load_counters(s, txn, err);
    if (e == HOV_OK)
        e = load_recent(s, txn, err);
    if (e != HOV_OK) {
        mdb_txn_abort(txn);
        return e;
    }
    /* Committing a read-only txn keeps the database handles it opened. */
    if ((rc = mdb_txn_commit(txn)) != 0)
        return store_mdb_err(err, rc, "commit", "open transaction");
    s->open = true;
    return HOV_OK;
}

void
store_free(store *s)
{
    if (s == NULL)
        return;
    mdb_env_close(s->env);
    if (s->recent)
        recent_clear(s);
    free(s);
}

bool
store_broken(const store *s)
{
    return s->broken;
}

unsigned
store_env_flags(const store *s)
{
    unsigned f = 0;
    mdb_env_get_flags(s->env, &f);
    return f;
}

/* Pages on LMDB's free list (FREE_DBI, database 0): each record is an ID
 * list whose first word is its length. */
static size_t
free_pages(const store *s)
{
    MDB_txn *txn;
    MDB_cursor *cur;
    size_t n = 0;
    if (mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn) != 0)
        return 0;
    if (mdb_cursor_open(txn, 0, &cur) == 0) {
        MDB_val k, v;
        while (mdb_cursor_get(cur, &k, &v, MDB_NEXT) == 0)
            if (v.mv_size >= sizeof(size_t))
                n += *(const size_t *)v.mv_data;
        mdb_cursor_close(cur);
    }
    mdb_txn_abort(txn);
    return n;
}

void
store_usage(const store *s, size_t *used, size_t *map_size)
{
    MDB_envinfo info;
    MDB_stat st;
    mdb_env_info(s->env, &info);
    mdb_env_stat(s->env, &st);
    size_t pages = info.me_last_pgno + 1;
    size_t fp = free_pages(s);
    *used = (pages > fp ? pages - fp : 0) * (size_t)st.ms_psize;
    *map_size = info.me_mapsize;
}

bool
store_near_full(const store *s)
{
    MDB_envinfo info;
    MDB_stat st;
    mdb_env_info(s->env, &info);
    mdb_env_stat(s->env, &st);
    size_t psize = (size_t)st.ms_psize;
    size_t map_pages = info.me_mapsize / psize;
    size_t reserve = map_pages / 10 > 32 ? map_pages / 10 : 32;
    size_t high = info.me_last_pgno + 1;
    if (high + reserve <= map_pages)
        return false; /* the common case: no need to count free pages */
    size_t fp = free_pages(s);
    return (high > fp ? high - fp : 0) + reserve > map_pages;
}

hov_err
store_begin(store *s, bool rdonly, store_txn **out, hov_error *err)
{
    if (!s->open)
        return hov_fail(err, HOV_ESTATE, 0, "store is not open");
    if (!rdonly && s->in_write)
        return hov_fail(err, HOV_ESTATE, 0,
                        "a write transaction is already open");
    store_txn *t = calloc(1, sizeof *t);
    if (t == NULL)
        return hov_fail(err, HOV_ENOMEM, 0, "allocate transaction");
    int rc = mdb_txn_begin(s->env, NULL, rdonly ? MDB_RDONLY : 0, &t->txn);
    if (rc != 0) {
        if (rc == MDB_PANIC)
            s->broken = true;
        free(t);
        return store_mdb_err(err, rc, "begin",
                             rdonly ? "read transaction" : "write transaction");
    }
    t->s = s;
    t->rdonly = rdonly;
    t->c = s->c;
    if (!rdonly)
        s->in_write = true;
    *out = t;
    return HOV_OK;
}

/* Allocate the data file ahead of LMDB's last page, in steps. LMDB grows
 * the file page by page as it appends; every commit that grows it makes
 * the file system journal a new size and new blocks before fdatasync can
 * return. Allocated ahead, a commit writes data only: about a quarter more
 * commits per second on ext4 (docs/benchmarks.md). A failure here (a disk
 * nearly full) is not an error yet: LMDB's own write will say so. */
#define PREALLOC_STEP ((uint64_t)64 << 20)

static void
store_prealloc(store *s)
{
    MDB_envinfo info;
    MDB_stat st;
    int fd;
    if (mdb_env_info(s->env, &info) != 0 || mdb_env_stat(s->env, &st) != 0 ||
        mdb_env_get_fd(s->env, &fd) != 0)
        return;
    uint64_t used = ((uint64_t)info.me_last_pgno + 1) * st.ms_psize;
    if (used + PREALLOC_STEP / 2 <= s->prealloc_end)
        return;
    uint64_t end = used + PREALLOC_STEP;
    if (end > info.me_mapsize)
        end = info.me_mapsize;
    if (end <= used)
        return;
    int rc = posix_fallocate(fd, (off_t)used, (off_t)(end - used));
    if (rc == 0) {
        s->prealloc_end = end;
    } else if (!s->prealloc_warned) {
        s->prealloc_warned = true;
        hov_warn("store: cannot allocate %llu MiB ahead in the data file: %s "
                 "(is the disk nearly full?)",
                 (unsigned long long)((end - used) >> 20), strerror(rc));
    }
}

/* A transaction that did not commit takes back the ids it added. */
static void
txn_undo_recent(store_txn *t)
{
    for (size_t i = 0; i < t->n_added; i++) {
        hov_map_del(t->s->recent, t->added[i]->id, 16);
        free(t->added[i]);
    }
    t->n_added = 0;
}

static void
txn_free(store_txn *t)
{
    free(t->added);
    free(t);
}

hov_err
store_commit(store_txn *t, hov_error *err)
{
    store *s = t->s;
    hov_err e = HOV_OK;
    if (t->rdonly) {
        mdb_txn_abort(t->txn);
    } else if (t->poisoned) {
        mdb_txn_abort(t->txn);
        e = hov_fail(err, HOV_ESTATE, 0,
                     "commit refused: the transaction failed earlier and was "
                     "aborted");
    } else {
        int rc = mdb_txn_commit(t->txn);
        if (rc == 0) {
            s->c = t->c;
            store_prealloc(s);
        } else {
            e = store_mdb_err(err, rc, "commit", "write transaction");
            /* A failed commit may have left the environment fatal; LMDB
             * says so on the next begin. Probe now, so the caller knows. */
            MDB_txn *probe;
            int prc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &probe);
            if (prc == MDB_PANIC)
                s->broken = true;
            else if (prc == 0)
                mdb_txn_abort(probe);
        }
    }
    if (e != HOV_OK)
        txn_undo_recent(t);
    if (!t->rdonly)
        s->in_write = false;
    txn_free(t);
    return e;
}

void
store_abort(store_txn *t)
{
    if (t == NULL)
        return;
    mdb_txn_abort(t->txn);
    txn_undo_recent(t);
    if (!t->rdonly)
        t->s->in_write = false;
    txn_free(t);
}

/* Pack a protobuf record straight into LMDB's page (MDB_RESERVE): one copy
 * fewer on the hot path. */
static hov_err
put_msg(store_txn *t, int db, const void *kd, size_t klen,
        const ProtobufCMessage *m, const char *what, hov_error *err)
{
    if (t->rdonly)
        return hov_fail(err, HOV_ESTATE, 0, "write in a read transaction");
    if (t->poisoned)
        return hov_fail(err, HOV_ESTATE, 0, "transaction already failed");
    size_t len = protobuf_c_message_get_packed_size(m);
    MDB_val k = {klen, (void *)kd}, v = {len, NULL};
    int rc = mdb_put(t->txn, t->s->dbi[db], &k, &v, MDB_RESERVE);
    if (rc != 0)
        return txn_fail(t, err, rc, "store", what);
    protobuf_c_message_pack(m, v.mv_data);
    return HOV_OK;
}

static hov_err
get_raw(store_txn *t, int db, const void *kd, size_t klen, MDB_val *v,
        const char *what, hov_error *err)
{
    MDB_val k = {klen, (void *)kd};
    int rc = mdb_get(t->txn, t->s->dbi[db], &k, v);
    if (rc == MDB_NOTFOUND)
        return HOV_ENOTFOUND; /* an answer, not a failure: err untouched */
    if (rc != 0)
        return txn_fail(t, err, rc, "read", what);
    return HOV_OK;
}

/* The 16 bytes of a UUID in text form; false if it is not one. Ids are
 * keyed in binary: 16 bytes instead of 36 make the index a third smaller. */
static bool
uuid_bin(const char *id, uint8_t out[16])
{
    int n = 0;
    for (const char *p = id; *p; p++) {
        if (*p == '-')
            continue;
        int v = (*p >= '0' && *p <= '9')   ? *p - '0'
                : (*p >= 'a' && *p <= 'f') ? *p - 'a' + 10
                : (*p >= 'A' && *p <= 'F') ? *p - 'A' + 10
                                           : -1;
        if (v < 0 || n >= 32)
            return false;
        out[n / 2] = (uint8_t)(n % 2 ? out[n / 2] | v : v << 4);
        n++;
    }
    return n == 32;
}

hov_err
store_event_find(store_txn *t, const char *id, uint64_t *seq,
                 uint8_t digest[STORE_DIGEST_BYTES], hov_error *err)
{
    MDB_val v;
    uint8_t key[16];
    if (!uuid_bin(id, key))
        return hov_fail(err, HOV_EINVAL, 0, "event id %.40s is not a UUID", id);
    const recent_id *r = hov_map_get(t->s->recent, key, sizeof key);
    if (r != NULL) {
        *seq = r->seq;
        memcpy(digest, r->digest, STORE_DIGEST_BYTES);
        return HOV_OK;
    }
    hov_err e = get_raw(t, DB_IDS, key, sizeof key, &v, id, err);
    if (e != HOV_OK)
        return e;
    if (v.mv_size != 8 + STORE_DIGEST_BYTES)
        return hov_fail(err, HOV_ESTORE, 0,
                        "index entry of event %s is damaged (%zu bytes)", id,
                        v.mv_size);
    *seq = rd_be64(v.mv_data);
    memcpy(digest, (uint8_t *)v.mv_data + 8, STORE_DIGEST_BYTES);
    return HOV_OK;
}

hov_err
store_event_add(store_txn *t, const char *id,
                const uint8_t digest[STORE_DIGEST_BYTES], size_t len,
                uint64_t *seq, uint8_t **buf, hov_error *err)
{
    if (t->rdonly || t->poisoned)
        return hov_fail(err, HOV_ESTATE, 0, "cannot add event %s now", id);
    uint8_t key[16];
    if (!uuid_bin(id, key))
        return hov_fail(err, HOV_EINVAL, 0, "event id %.40s is not a UUID", id);
    uint8_t kb[8];
    uint64_t n = t->c.event_next;
    be64(kb, n);
    MDB_val k = {8, kb}, v = {len, NULL};
    /* MDB_APPEND: the key is the largest so far, so LMDB fills the last
     * page instead of searching. */
    int rc =
        mdb_put(t->txn, t->s->dbi[DB_EVENTS], &k, &v, MDB_RESERVE | MDB_APPEND);
    if (rc != 0)
        return txn_fail(t, err, rc, "store event", id);
    uint8_t *dst = v.mv_data;
    /* The id goes to the recent log, appended like the event, and to
     * memory; store_merge_ids moves it into the ids tree later, in sorted
     * bulk. One random insert per event into a large tree would copy a
     * page per event on every commit. */
    uint8_t rv[16 + STORE_DIGEST_BYTES];
    memcpy(rv, key, 16);
    memcpy(rv + 16, digest, STORE_DIGEST_BYTES);
    MDB_val rk = {8, kb}, rval = {sizeof rv, rv};
    rc = mdb_put(t->txn, t->s->dbi[DB_RECENT], &rk, &rval, MDB_APPEND);
    if (rc != 0)
        return txn_fail(t, err, rc, "index event", id);
    if (t->n_added == t->cap_added) {
        size_t cap = t->cap_added ? t->cap_added * 2 : 256;
        recent_id **na = realloc(t->added, cap * sizeof *na);
        if (na == NULL) {
            t->poisoned = true;
            return hov_fail(err, HOV_ENOMEM, 0, "index event %s", id);
        }
        t->added = na;
        t->cap_added = cap;
    }
    recent_id *r = malloc(sizeof *r);
    if (r == NULL || hov_map_put(t->s->recent, key, 16, r, err) != HOV_OK) {
        free(r);
        t->poisoned = true;
        return hov_fail(err, HOV_ENOMEM, 0, "index event %s", id);
    }
    memcpy(r->id, key, 16);
    r->seq = n;
    memcpy(r->digest, digest, STORE_DIGEST_BYTES);
    t->added[t->n_added++] = r;
    t->c.event_next++;
    *seq = n;
    *buf = dst;
    return HOV_OK;
}

hov_err
store_event_read(store_txn *t, uint64_t seq, const uint8_t **data, size_t *len,
                 hov_error *err)
{
    uint8_t kb[8];
    be64(kb, seq);
    MDB_val v;
    hov_err e = get_raw(t, DB_EVENTS, kb, 8, &v, "event", err);
    if (e != HOV_OK)
        return e;
    *data = v.mv_data;
    *len = v.mv_size;
    return HOV_OK;
}

uint64_t
store_event_next_seq(const store *s)
{
    return s->c.event_next;
}

hov_err
store_event_scan(store_txn *t, uint64_t from_seq, store_event_fn fn, void *arg,
                 hov_error *err)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(t->txn, t->s->dbi[DB_EVENTS], &cur);
    if (rc != 0)
        return txn_fail(t, err, rc, "open cursor", "events");
    uint8_t kb[8];
    be64(kb, from_seq);
    MDB_val k = {8, kb}, v;
    hov_err e = HOV_OK;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
         rc == 0 && e == HOV_OK; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size != 8)
            continue;
        e = fn(arg, rd_be64(k.mv_data), v.mv_data, v.mv_size, err);
    }
    mdb_cursor_close(cur);
    if (e == HOV_OK && rc != 0 && rc != MDB_NOTFOUND)
        e = txn_fail(t, err, rc, "scan", "events");
    return e;
}

uint64_t
store_queue_next_seq(store_txn *t, unsigned q)
{
    return t->c.queue_next[q]++;
}

hov_err
store_queue_put(store_txn *t, unsigned q, uint64_t seq,
                const Handover__Store__QueueEntry *e, hov_error *err)
{
    uint8_t kb[9];
    kb[0] = (uint8_t)q;
    be64(kb + 1, seq);
    return put_msg(t, DB_QUEUE, kb, sizeof kb, &e->base, e->event_id, err);
}

hov_err
store_queue_del(store_txn *t, unsigned q, uint64_t seq, hov_error *err)
{
    uint8_t kb[9];
    kb[0] = (uint8_t)q;
    be64(kb + 1, seq);
    MDB_val k = {sizeof kb, kb};
    int rc = mdb_del(t->txn, t->s->dbi[DB_QUEUE], &k, NULL);
    if (rc == MDB_NOTFOUND)
        return HOV_ENOTFOUND;
    if (rc != 0)
        return txn_fail(t, err, rc, "delete", "queue entry");
    return HOV_OK;
}

/* Entries from key (queue, from_seq) on; only that queue's when one is
 * true. */
static hov_err
queue_scan(store_txn *t, unsigned queue, uint64_t from_seq, bool one,
           store_queue_fn fn, void *arg, hov_error *err)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(t->txn, t->s->dbi[DB_QUEUE], &cur);
    if (rc != 0)
        return txn_fail(t, err, rc, "open cursor", "queue");
    uint8_t start[9];
    start[0] = (uint8_t)queue;
    be64(start + 1, from_seq);
    MDB_val k = {sizeof start, start}, v;
    hov_err e = HOV_OK;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
         rc == 0 && e == HOV_OK; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size != 9)
            continue;
        const uint8_t *kb = k.mv_data;
        if (one && kb[0] != queue)
            break;
        Handover__Store__QueueEntry *qe =
            handover__store__queue_entry__unpack(NULL, v.mv_size, v.mv_data);
        if (qe == NULL) {
            e = hov_fail(err, HOV_ESTORE, 0,
                         "queue %u entry %llu is unreadable", kb[0],
                         (unsigned long long)rd_be64(kb + 1));
            break;
        }
        e = fn(arg, kb[0], rd_be64(kb + 1), qe, err);
        handover__store__queue_entry__free_unpacked(qe, NULL);
    }
    mdb_cursor_close(cur);
    if (e == HOV_OK && rc != 0 && rc != MDB_NOTFOUND)
        e = txn_fail(t, err, rc, "scan", "queue");
    return e;
}

hov_err
store_queue_scan(store_txn *t, store_queue_fn fn, void *arg, hov_error *err)
{
    return queue_scan(t, 0, 0, false, fn, arg, err);
}

hov_err
store_queue_scan_from(store_txn *t, unsigned queue, uint64_t from_seq,
                      store_queue_fn fn, void *arg, hov_error *err)
{
    return queue_scan(t, queue, from_seq, true, fn, arg, err);
}

hov_err
store_dead_put(store_txn *t, const Handover__Store__DeadLetter *d,
               uint64_t *seq, hov_error *err)
{
    uint8_t kb[8];
    *seq = t->c.dead_next++;
    be64(kb, *seq);
    return put_msg(t, DB_DEAD, kb, sizeof kb, &d->base, d->event_id, err);
}

hov_err
store_dead_scan(store_txn *t, store_dead_fn fn, void *arg, hov_error *err)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(t->txn, t->s->dbi[DB_DEAD], &cur);
    if (rc != 0)
        return txn_fail(t, err, rc, "open cursor", "dead letters");
    MDB_val k, v;
    hov_err e = HOV_OK;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0 && e == HOV_OK;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        Handover__Store__DeadLetter *d =
            handover__store__dead_letter__unpack(NULL, v.mv_size, v.mv_data);
        if (d == NULL || k.mv_size != 8) {
            if (d)
                handover__store__dead_letter__free_unpacked(d, NULL);
            e = hov_fail(err, HOV_ESTORE, 0, "dead letter is unreadable");
            break;
        }
        e = fn(arg, rd_be64(k.mv_data), d, err);
        handover__store__dead_letter__free_unpacked(d, NULL);
    }
    mdb_cursor_close(cur);
    if (e == HOV_OK && rc != 0 && rc != MDB_NOTFOUND)
        e = txn_fail(t, err, rc, "scan", "dead letters");
    return e;
}

hov_err
store_dead_del(store_txn *t, uint64_t seq, hov_error *err)
{
    if (t->rdonly || t->poisoned)
        return hov_fail(err, HOV_ESTATE, 0, "cannot delete dead letter now");
    uint8_t kb[8];
    be64(kb, seq);
    MDB_val k = {sizeof kb, kb};
    int rc = mdb_del(t->txn, t->s->dbi[DB_DEAD], &k, NULL);
    if (rc == MDB_NOTFOUND)
        return HOV_ENOTFOUND;
    if (rc != 0)
        return txn_fail(t, err, rc, "delete", "dead letter");
    return HOV_OK;
}

size_t
store_dead_count(store_txn *t)
{
    MDB_stat st;
    if (mdb_stat(t->txn, t->s->dbi[DB_DEAD], &st) != 0)
        return 0;
    return st.ms_entries;
}

/* seq (8, BE) followed by dest: one event's destinations sort together. */
static size_t
seq_key(uint8_t *buf, size_t cap, uint64_t seq, const char *dest)
{
    size_t dl = strlen(dest);
    if (dl > cap - 8)
        dl = cap - 8;
    be64(buf, seq);
    memcpy(buf + 8, dest, dl);
    return 8 + dl;
}

hov_err
store_delivery_get(store_txn *t, uint64_t event_seq, const char *dest,
                   Handover__Store__Delivery **out, hov_error *err)
{
    uint8_t kb[80];
    size_t kl = seq_key(kb, sizeof kb, event_seq, dest);
    MDB_val v;
    hov_err e = get_raw(t, DB_DELIVERIES, kb, kl, &v, dest, err);
    if (e != HOV_OK)
        return e;
    *out = handover__store__delivery__unpack(NULL, v.mv_size, v.mv_data);
    if (*out == NULL)
        return hov_fail(err, HOV_ESTORE, 0,
                        "delivery record of event %llu to %s is unreadable",
                        (unsigned long long)event_seq, dest);
    return HOV_OK;
}

hov_err
store_delivery_put(store_txn *t, uint64_t event_seq, const char *dest,
                   const Handover__Store__Delivery *d, hov_error *err)
{
    uint8_t kb[80];
    size_t kl = seq_key(kb, sizeof kb, event_seq, dest);
    return put_msg(t, DB_DELIVERIES, kb, kl, &d->base, dest, err);
}

hov_err
store_delivery_scan(store_txn *t, uint64_t event_seq, store_delivery_fn fn,
                    void *arg, hov_error *err)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(t->txn, t->s->dbi[DB_DELIVERIES], &cur);
    if (rc != 0)
        return txn_fail(t, err, rc, "open cursor", "deliveries");
    uint8_t kb[8];
    be64(kb, event_seq);
    MDB_val k = {sizeof kb, kb}, v;
    hov_err e = HOV_OK;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
         rc == 0 && e == HOV_OK; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size < 8 || rd_be64(k.mv_data) != event_seq)
            break; /* past this event's destinations */
        char dest[80];
        size_t dl =
            k.mv_size - 8 < sizeof dest - 1 ? k.mv_size - 8 : sizeof dest - 1;
        memcpy(dest, (const uint8_t *)k.mv_data + 8, dl);
        dest[dl] = '\0';
        Handover__Store__Delivery *d =
            handover__store__delivery__unpack(NULL, v.mv_size, v.mv_data);
        if (d == NULL) {
            e = hov_fail(err, HOV_ESTORE, 0,
                         "delivery record of event %llu to %s is unreadable",
                         (unsigned long long)event_seq, dest);
            break;
        }
        e = fn(arg, dest, d, err);
        handover__store__delivery__free_unpacked(d, NULL);
    }
    mdb_cursor_close(cur);
    if (e == HOV_OK && rc != 0 && rc != MDB_NOTFOUND)
        e = txn_fail(t, err, rc, "scan", "deliveries");
    return e;
}

hov_err
store_reply_put(store_txn *t, uint64_t event_seq, uint64_t reply_seq,
                hov_error *err)
{
    uint8_t kb[16];
    be64(kb, event_seq);
    be64(kb + 8, reply_seq);
    if (t->poisoned)
        return hov_fail(err, HOV_ESTATE, 0, "transaction already failed");
    MDB_val k = {sizeof kb, kb}, v = {0, ""};
    int rc = mdb_put(t->txn, t->s->dbi[DB_REPLIES], &k, &v, 0);
    if (rc != 0)
        return txn_fail(t, err, rc, "store", "reply index");
    return HOV_OK;
}

hov_err
store_reply_scan(store_txn *t, uint64_t event_seq, store_reply_fn fn, void *arg,
                 hov_error *err)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(t->txn, t->s->dbi[DB_REPLIES], &cur);
    if (rc != 0)
        return txn_fail(t, err, rc, "open cursor", "reply index");
    uint8_t kb[16];
    be64(kb, event_seq);
    be64(kb + 8, 0);
    MDB_val k = {sizeof kb, kb}, v;
    hov_err e = HOV_OK;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
         rc == 0 && e == HOV_OK; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size != 16 || rd_be64(k.mv_data) != event_seq)
            break;
        e = fn(arg, rd_be64((const uint8_t *)k.mv_data + 8), err);
    }
    mdb_cursor_close(cur);
    if (e == HOV_OK && rc != 0 && rc != MDB_NOTFOUND)
        e = txn_fail(t, err, rc, "scan", "reply index");
    return e;
}

hov_err
store_audit_append(store_txn *t, Handover__Store__AuditRecord *rec,
                   hov_error *err)
{
    rec->seq = t->c.audit_next;
    uint8_t *prev = t->hashbuf[0], *hash = t->hashbuf[1];
    memcpy(prev, t->c.audit_head, STORE_HASH_BYTES);
    rec->prev_hash.data = prev;
    rec->prev_hash.len = STORE_HASH_BYTES;
    rec->hash.data = NULL;
    rec->hash.len = 0;

    /* hash = BLAKE2b-256 over the record packed without its hash; the
     * packed record contains prev_hash, which chains it. What is stored is
     * those same bytes followed by the hash as a field of its own: protobuf
     * parsers merge the two, so it reads as the whole record, and the
     * record is packed once, not once to hash it and again to store it. */
    size_t len = handover__store__audit_record__get_packed_size(rec);
    Handover__Store__AuditRecord tail = HANDOVER__STORE__AUDIT_RECORD__INIT;
    tail.hash.data = hash;
    tail.hash.len = STORE_HASH_BYTES;
    size_t tlen = handover__store__audit_record__get_packed_size(&tail);
    if (t->rdonly || t->poisoned)
        return hov_fail(err, HOV_ESTATE, 0, "cannot append audit record");
    uint8_t kb[8];
    be64(kb, rec->seq);
    MDB_val k = {sizeof kb, kb}, v = {len + tlen, NULL};
    int rc =
        mdb_put(t->txn, t->s->dbi[DB_AUDIT], &k, &v, MDB_RESERVE | MDB_APPEND);
    if (rc != 0)
        return txn_fail(t, err, rc, "store", "audit record");
    uint8_t *dst = v.mv_data;
    handover__store__audit_record__pack(rec, dst);
    crypto_generichash(hash, STORE_HASH_BYTES, dst, len, NULL, 0);
    handover__store__audit_record__pack(&tail, dst + len);
    rec->hash.data = hash;
    rec->hash.len = STORE_HASH_BYTES;
    t->c.audit_next++;
    memcpy(t->c.audit_head, hash, STORE_HASH_BYTES);
    return HOV_OK;
}

hov_err
store_audit_scan(store_txn *t, uint64_t from_seq, store_audit_fn fn, void *arg,
                 hov_error *err)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(t->txn, t->s->dbi[DB_AUDIT], &cur);
    if (rc != 0)
        return txn_fail(t, err, rc, "open cursor", "audit");
    uint8_t kb[8];
    be64(kb, from_seq);
    MDB_val k = {8, kb}, v;
    hov_err e = HOV_OK;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
         rc == 0 && e == HOV_OK; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        Handover__Store__AuditRecord *r =
            handover__store__audit_record__unpack(NULL, v.mv_size, v.mv_data);
        if (r == NULL) {
            e = hov_fail(err, HOV_ESTORE, 0, "audit record %llu is unreadable",
                         (unsigned long long)rd_be64(k.mv_data));
            break;
        }
        e = fn(arg, r, err);
        handover__store__audit_record__free_unpacked(r, NULL);
    }
    mdb_cursor_close(cur);
    if (e == HOV_OK && rc != 0 && rc != MDB_NOTFOUND)
        e = txn_fail(t, err, rc, "scan", "audit");
    return e;
}

hov_err
store_meta_get(store_txn *t, const char *key, const uint8_t **data, size_t *len,
               hov_error *err)
{
    MDB_val v;
    hov_err e = get_raw(t, DB_META, key, strlen(key), &v, key, err);
    if (e != HOV_OK)
        return e;
    *data = v.mv_data;
    *len = v.mv_size;
    return HOV_OK;
}

hov_err
store_meta_put(store_txn *t, const char *key, const uint8_t *data, size_t len,
               hov_error *err)
{
    if (t->rdonly || t->poisoned)
        return hov_fail(err, HOV_ESTATE, 0, "cannot write %s now", key);
    MDB_val k = {strlen(key), (void *)key}, v = {len, (void *)data};
    int rc = mdb_put(t->txn, t->s->dbi[DB_META], &k, &v, 0);
    if (rc != 0)
        return txn_fail(t, err, rc, "store", key);
    return HOV_OK;
}

hov_err
store_meta_del(store_txn *t, const char *key, hov_error *err)
{
    if (t->rdonly || t->poisoned)
        return hov_fail(err, HOV_ESTATE, 0, "cannot delete %s now", key);
    MDB_val k = {strlen(key), (void *)key};
    int rc = mdb_del(t->txn, t->s->dbi[DB_META], &k, NULL);
    if (rc == MDB_NOTFOUND)
        return HOV_ENOTFOUND;
    if (rc != 0)
        return txn_fail(t, err, rc, "delete", key);
    return HOV_OK;
}

/* ------------------------------------------------------------- waiting */

/* due (8, BE) + event seq (8, BE) + dest: deadlines sort first, so the
 * overdue are a prefix of the tree. */
static size_t
waiting_key(uint8_t *buf, size_t cap, uint64_t due_ms, uint64_t seq,
            const char *dest)
{
    be64(buf, due_ms);
    return 8 + seq_key(buf + 8, cap - 8, seq, dest);
}

hov_err
store_waiting_put(store_txn *t, uint64_t due_ms, uint64_t event_seq,
                  const char *dest, unsigned agency, hov_error *err)
{
    if (t->rdonly || t->poisoned)
        return hov_fail(err, HOV_ESTATE, 0, "cannot write waiting now");
    uint8_t kb[96], ab = (uint8_t)agency;
    size_t kl = waiting_key(kb, sizeof kb, due_ms, event_seq, dest);
    MDB_val k = {kl, kb}, v = {1, &ab};
    int rc = mdb_put(t->txn, t->s->dbi[DB_WAITING], &k, &v, 0);
    if (rc != 0)
        return txn_fail(t, err, rc, "store", "waiting index");
    return HOV_OK;
}

hov_err
store_waiting_del(store_txn *t, uint64_t due_ms, uint64_t event_seq,
                  const char *dest, hov_error *err)
{
    if (t->rdonly || t->poisoned)
        return hov_fail(err, HOV_ESTATE, 0, "cannot write waiting now");
    uint8_t kb[96];
    size_t kl = waiting_key(kb, sizeof kb, due_ms, event_seq, dest);
    MDB_val k = {kl, kb};
    int rc = mdb_del(t->txn, t->s->dbi[DB_WAITING], &k, NULL);
    if (rc == MDB_NOTFOUND)
        return HOV_ENOTFOUND;
    if (rc != 0)
        return txn_fail(t, err, rc, "delete", "waiting index");
    return HOV_OK;
}

hov_err
store_waiting_scan(store_txn *t, store_waiting_fn fn, void *arg, hov_error *err)
{
    if (t->s->no_waiting)
        return HOV_OK;
    MDB_cursor *cur;
    int rc = mdb_cursor_open(t->txn, t->s->dbi[DB_WAITING], &cur);
    if (rc != 0)
        return txn_fail(t, err, rc, "open cursor", "waiting index");
    MDB_val k, v;
    hov_err e = HOV_OK;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0 && e == HOV_OK;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size < 16 || v.mv_size != 1)
            continue; /* not ours: nothing else writes here */
        const uint8_t *kp = k.mv_data;
        char dest[80];
        size_t dl =
            k.mv_size - 16 < sizeof dest - 1 ? k.mv_size - 16 : sizeof dest - 1;
        memcpy(dest, kp + 16, dl);
        dest[dl] = '\0';
        e = fn(arg, rd_be64(kp), rd_be64(kp + 8), dest,
               *(const uint8_t *)v.mv_data, err);
    }
    mdb_cursor_close(cur);
    if (e == HOV_OK && rc != 0 && rc != MDB_NOTFOUND)
        e = txn_fail(t, err, rc, "scan", "waiting index");
    return e;
}

size_t
store_waiting_count(store_txn *t)
{
    MDB_stat st;
    if (t->s->no_waiting || mdb_stat(t->txn, t->s->dbi[DB_WAITING], &st) != 0)
        return 0;
    return st.ms_entries;
}

#define MERGE_CHUNK 4096

static int
recent_cmp(const void *a, const void *b)
{
    const recent_id *x = *(recent_id *const *)a, *y = *(recent_id *const *)b;
    return memcmp(x->id, y->id, 16);
}

hov_err
store_merge_ids(store *s, bool force, size_t *merged, hov_error *err)
{
    size_t n = hov_map_count(s->recent);
    *merged = 0;
    if (n == 0 || (!force && n < s->merge_at))
        return HOV_OK;
    recent_id **v = malloc(n * sizeof *v);
    if (v == NULL)
        return hov_fail(err, HOV_ENOMEM, 0, "merge %zu ids", n);
    size_t pos = 0, i = 0;
    void *val;
    uint64_t last = 0;
    while (hov_map_next(s->recent, &pos, NULL, NULL, &val)) {
        v[i++] = val;
        if (v[i - 1]->seq > last)
            last = v[i - 1]->seq;
    }
    /* Sorted, so the inserts walk the tree once, page after page; in
     * chunks, because LMDB keeps every page a transaction dirtied for
     * reuse (its memory would grow with the tree) and caps a transaction's
     * dirty pages. Chunks cover disjoint key ranges, so together they write
     * each page no more than one big transaction would. */
    qsort(v, n, sizeof *v, recent_cmp);
    hov_err e = HOV_OK;
    for (size_t from = 0; e == HOV_OK && from < n; from += MERGE_CHUNK) {
        size_t to = from + MERGE_CHUNK < n ? from + MERGE_CHUNK : n;
        store_txn *t;
        if ((e = store_begin(s, false, &t, err)) != HOV_OK)
            break;
        for (size_t k = from; e == HOV_OK && k < to; k++) {
            uint8_t iv[8 + STORE_DIGEST_BYTES];
            be64(iv, v[k]->seq);
            memcpy(iv + 8, v[k]->digest, STORE_DIGEST_BYTES);
            MDB_val ik = {16, v[k]->id}, ival = {sizeof iv, iv};
            int rc = mdb_put(t->txn, s->dbi[DB_IDS], &ik, &ival, 0);
            if (rc != 0)
                e = txn_fail(t, err, rc, "merge", "ids");
        }
        if (e == HOV_OK)
            e = store_commit(t, err);
        else
            store_abort(t);
    }
    /* Only then empty the recent log up to the last merged event. A crash
     * before this leaves ids in both places; the next start loads them
     * again and merging them again writes the same values. */
    store_txn *t = NULL;
    if (e == HOV_OK)
        e = store_begin(s, false, &t, err);
    MDB_cursor *cur = NULL;
    if (e == HOV_OK) {
        int rc = mdb_cursor_open(t->txn, s->dbi[DB_RECENT], &cur);
        if (rc != 0) {
            cur = NULL;
            e = txn_fail(t, err, rc, "open cursor", "recent ids");
        }
        MDB_val k, d;
        while (e == HOV_OK) {
            rc = mdb_cursor_get(cur, &k, &d, MDB_FIRST);
            if (rc == MDB_NOTFOUND || (rc == 0 && rd_be64(k.mv_data) > last))
                break;
            if (rc == 0)
                rc = mdb_cursor_del(cur, 0);
            if (rc != 0)
                e = txn_fail(t, err, rc, "trim", "recent ids");
        }
    }
    if (cur != NULL)
        mdb_cursor_close(cur);
    if (t != NULL) {
        if (e == HOV_OK)
            e = store_commit(t, err);
        else
            store_abort(t);
    }
    if (e == HOV_OK) {
        for (size_t k = 0; k < n; k++) {
            hov_map_del(s->recent, v[k]->id, 16);
            free(v[k]);
        }
        *merged = n;
    }
    free(v);
    return e;
}

size_t
store_recent_count(const store *s)
{
    return hov_map_count(s->recent);
}
