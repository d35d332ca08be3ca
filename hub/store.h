/* The hub's durable state: one LMDB environment in the data folder.
 *
 * Named databases (keys; values are protobuf records from proto/store.proto):
 *   events      event seq (8 bytes, BE)         -> serialised Event
 *   ids         event_id (16 bytes, binary)     -> event seq + content digest
 *   recent      event seq (8, BE)               -> event_id + digest, not
 *                                                  yet merged into ids
 *   queue       agency (1 byte) + seq (8, BE)   -> QueueEntry
 *   dead        seq (8, BE)                     -> DeadLetter
 *   deliveries  event seq + destination         -> Delivery (lifecycle)
 *   replies     answered seq + outcome seq      -> "" (outcomes of an event)
 *   audit       seq (8, BE)                     -> AuditRecord (hash chain)
 *   meta        short text key                  -> operational settings
 *                                                  that outlive a restart
 *                                                  ("pause/<agency>": Pause)
 *   waiting     due (8, BE) + event seq + dest  -> agency (1 byte): each
 *                                                  receiver that still owes
 *                                                  an outcome (overdue.h)
 *
 * Events are keyed by arrival order, not by their (random) id: a batch of
 * a thousand inserts then fills the end of the tree, where keyed by id it
 * would copy a thousand scattered pages on every commit. Only the small
 * ids index takes random inserts, and those in sorted bulk: a new id is
 * appended to the recent log and kept in memory, and store_merge_ids moves
 * many at once into ids (LSM style), so a commit writes no random page for
 * it. Lookups by id look in memory first, then in ids.
 *
 * Durability: the environment is opened with LMDB's default sync behaviour
 * (no MDB_NOSYNC, MDB_NOMETASYNC or MDB_MAPASYNC), so store_commit returns
 * only after the transaction is on disk. The hub Acks nothing before that.
 *
 * Caveats (as LMDB's own): one write transaction at a time; keep read
 * transactions short, because a reader pins old pages and the file grows;
 * never fork with the store open. Only this module sees MDB_* codes (R5):
 * MDB_MAP_FULL becomes HOV_ESTOREFULL, other failures HOV_ESTORE or HOV_EIO,
 * with mdb_strerror's text in the message.
 *
 * A write transaction is poisoned by its first failure (R7): after any
 * error, only store_abort is allowed; store_commit refuses and aborts.
 * Sequence counters (queue, dead letters, audit) are staged in the
 * transaction and become the store's only when store_commit succeeds.
 */
#ifndef HUB_STORE_H
#define HUB_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "handover/err.h"
#include "store.pb-c.h"

typedef struct store store;
typedef struct store_txn store_txn;

#define STORE_QUEUES     4 /* one per agency, config_agency numbers */
#define STORE_HASH_BYTES 32

/* Create a closed store. Returns owned; free with store_free. */
HOV_NODISCARD hov_err store_new(store **out, hov_error *err);

/* Map size in bytes (the largest the file may grow to). Before store_open
 * only, else HOV_ESTATE. */
HOV_NODISCARD hov_err store_set_map_size(store *s, size_t bytes,
                                         hov_error *err);

/* Merge recent ids into the ids tree once this many have gathered (default
 * 65536; each costs about 60 bytes of memory until merged). Before
 * store_open only, else HOV_ESTATE. */
HOV_NODISCARD hov_err store_set_merge_at(store *s, size_t n, hov_error *err);

/* Open or create the environment in dir (created if missing) and load the
 * sequence counters and the audit chain head.
 * HOV_EIO: the folder or files cannot be created or read; HOV_ESTORE. */
HOV_NODISCARD hov_err store_open(store *s, const char *dir, hov_error *err);

/* Open an existing environment read-only (MDB_RDONLY), for the audit
 * tools: a live store (the hub keeps writing) or a copy. Nothing is created
 * and every write transaction fails. The lock file must be writable (LMDB
 * registers readers there). HOV_EIO: no such folder; HOV_ESTORE. */
HOV_NODISCARD hov_err store_open_rdonly(store *s, const char *dir,
                                        hov_error *err);

/* Close and free. NULL is a no-op. No transaction may be open. */
void store_free(store *s);

/* LMDB environment flags in force (tests check no sync flag is set). */
unsigned store_env_flags(const store *s);

/* True once LMDB has reported the environment unusable (MDB_PANIC, after a
 * failed sync): every later write would fail, and the process must stop and
 * be restarted once the cause (a full disk, an I/O error) is fixed. */
bool store_broken(const store *s);

/* Bytes in use (pages in use, free-listed pages excluded) and the map
 * size. Opens a short read transaction. */
void store_usage(const store *s, size_t *used, size_t *map_size);

/* True when less than a tenth of the map (at least 32 pages) is left. The
 * hub then refuses new events, so that settles, dead letters and audit
 * records, which need a few pages each, still fit and queues can drain. */
bool store_near_full(const store *s);

/* ---------------------------------------------------------- transactions */

/* Begin a write transaction (rdonly false) or a read transaction. Hub loop
 * thread only. HOV_ESTORE, HOV_ESTOREFULL. */
HOV_NODISCARD hov_err store_begin(store *s, bool rdonly, store_txn **out,
                                  hov_error *err);

/* Commit and free txn, on every path (like mdb_txn_commit). Returns only
 * after the data is durable. A poisoned txn is aborted: HOV_ESTATE.
 * HOV_ESTOREFULL, HOV_EIO (disk full or I/O error while syncing), HOV_ESTORE.
 */
HOV_NODISCARD hov_err store_commit(store_txn *txn, hov_error *err);

/* Abort and free txn. NULL is a no-op. */
void store_abort(store_txn *txn);

/* ---------------------------------------------------------------- events */

/* 128 bits: a content digest compared for equality, never a signature.
 * Short entries keep the randomly-inserted ids index small, and its pages
 * are most of what a commit writes. */
#define STORE_DIGEST_BYTES 16

/* Find an event by id: its sequence number and content digest.
 * HOV_ENOTFOUND: no such event (an answer, not a failure: err untouched). */
HOV_NODISCARD hov_err store_event_find(store_txn *txn, const char *event_id,
                                       uint64_t *seq,
                                       uint8_t digest[STORE_DIGEST_BYTES],
                                       hov_error *err);

/* Add an event: reserves len bytes at the next event sequence number and
 * returns them in *buf for the caller to fill before the txn ends (the
 * serialised Event is packed straight into LMDB's page), and indexes
 * event_id with digest. *seq gets the event's sequence number. */
HOV_NODISCARD hov_err store_event_add(store_txn *txn, const char *event_id,
                                      const uint8_t digest[STORE_DIGEST_BYTES],
                                      size_t len, uint64_t *seq, uint8_t **buf,
                                      hov_error *err);

/* The serialised Event with this sequence number, borrowed from the map
 * until the txn ends (or, in a write txn, until the next write).
 * HOV_ENOTFOUND: no such event. */
HOV_NODISCARD hov_err store_event_read(store_txn *txn, uint64_t seq,
                                       const uint8_t **data, size_t *len,
                                       hov_error *err);

/* The sequence number the next committed event will get: every event
 * below it is in the store. */
uint64_t store_event_next_seq(const store *s);

/* Call fn for every event with sequence number from_seq or higher, in
 * order; data is the serialised Event, borrowed for the call. Stops at the
 * first non-OK return and returns it: a long scan may return a code of its
 * own (HOV_ETIMEDOUT, err untouched) to pause, and resume later from the
 * next sequence number in a new transaction. */
typedef hov_err (*store_event_fn)(void *arg, uint64_t seq, const uint8_t *data,
                                  size_t len, hov_error *err);
HOV_NODISCARD hov_err store_event_scan(store_txn *txn, uint64_t from_seq,
                                       store_event_fn fn, void *arg,
                                       hov_error *err);

/* Move the recent ids into the ids tree in one transaction of sorted
 * inserts, when at least merge_at have gathered (or any, with force).
 * *merged gets how many. On failure nothing changes (they stay recent and
 * durable in the recent log). Hub loop thread; no write txn may be open. */
HOV_NODISCARD hov_err store_merge_ids(store *s, bool force, size_t *merged,
                                      hov_error *err);

/* Ids accepted but not yet merged. */
size_t store_recent_count(const store *s);

/* ----------------------------------------------------------------- queue */

/* Next sequence number of a queue, reserved in this txn. */
uint64_t store_queue_next_seq(store_txn *txn, unsigned queue);

HOV_NODISCARD hov_err store_queue_put(store_txn *txn, unsigned queue,
                                      uint64_t seq,
                                      const Handover__Store__QueueEntry *e,
                                      hov_error *err);

/* HOV_ENOTFOUND when the entry is gone (not a poisoning failure). */
HOV_NODISCARD hov_err store_queue_del(store_txn *txn, unsigned queue,
                                      uint64_t seq, hov_error *err);

/* Call fn for every queue entry in key order. The entry is borrowed for
 * the call. Stops at the first non-OK return, which is returned. */
typedef hov_err (*store_queue_fn)(void *arg, unsigned queue, uint64_t seq,
                                  const Handover__Store__QueueEntry *e,
                                  hov_error *err);
HOV_NODISCARD hov_err store_queue_scan(store_txn *txn, store_queue_fn fn,
                                       void *arg, hov_error *err);

/* As store_queue_scan, for one queue's entries from sequence number
 * from_seq on. */
HOV_NODISCARD hov_err store_queue_scan_from(store_txn *txn, unsigned queue,
                                            uint64_t from_seq,
                                            store_queue_fn fn, void *arg,
                                            hov_error *err);

/* ---------------------------------------------------------- dead letters */

/* Append a dead letter; its sequence number is returned in *seq. */
HOV_NODISCARD hov_err store_dead_put(store_txn *txn,
                                     const Handover__Store__DeadLetter *d,
                                     uint64_t *seq, hov_error *err);

typedef hov_err (*store_dead_fn)(void *arg, uint64_t seq,
                                 const Handover__Store__DeadLetter *d,
                                 hov_error *err);
HOV_NODISCARD hov_err store_dead_scan(store_txn *txn, store_dead_fn fn,
                                      void *arg, hov_error *err);

/* Remove the dead letter with this sequence number (an operator's
 * redrive). HOV_ENOTFOUND when it is gone (not a poisoning failure). */
HOV_NODISCARD hov_err store_dead_del(store_txn *txn, uint64_t seq,
                                     hov_error *err);

/* Dead letters held now (LMDB's entry count: no scan). */
size_t store_dead_count(store_txn *txn);

/* ------------------------------------------------------------ lifecycle */

/* The lifecycle of an event at one destination. *out is owned, free with
 * handover__store__delivery__free_unpacked. HOV_ENOTFOUND: never routed
 * there (not a poisoning failure). */
HOV_NODISCARD hov_err store_delivery_get(store_txn *txn, uint64_t event_seq,
                                         const char *dest,
                                         Handover__Store__Delivery **out,
                                         hov_error *err);
HOV_NODISCARD hov_err store_delivery_put(store_txn *txn, uint64_t event_seq,
                                         const char *dest,
                                         const Handover__Store__Delivery *d,
                                         hov_error *err);

/* Call fn for each destination the event with this sequence number was
 * routed to (its lifecycle records, in destination order). dest and d are
 * borrowed for the call. Stops at the first non-OK return, returned. */
typedef hov_err (*store_delivery_fn)(void *arg, const char *dest,
                                     const Handover__Store__Delivery *d,
                                     hov_error *err);
HOV_NODISCARD hov_err store_delivery_scan(store_txn *txn, uint64_t event_seq,
                                          store_delivery_fn fn, void *arg,
                                          hov_error *err);

/* Record that the outcome with sequence reply_seq answers event_seq. */
HOV_NODISCARD hov_err store_reply_put(store_txn *txn, uint64_t event_seq,
                                      uint64_t reply_seq, hov_error *err);

/* Call fn with the sequence number of each outcome recorded as answering
 * the event with sequence event_seq, in order. Stops at the first non-OK
 * return, which is returned. */
typedef hov_err (*store_reply_fn)(void *arg, uint64_t reply_seq,
                                  hov_error *err);
HOV_NODISCARD hov_err store_reply_scan(store_txn *txn, uint64_t event_seq,
                                       store_reply_fn fn, void *arg,
                                       hov_error *err);

/* ----------------------------------------------------------------- audit */

/* Append an audit record: sets rec->seq, rec->prev_hash and rec->hash
 * (BLAKE2b-256 over prev_hash and the record packed without its hash).
 * rec's byte fields point into txn-owned memory until the txn ends. */
HOV_NODISCARD hov_err store_audit_append(store_txn *txn,
                                         Handover__Store__AuditRecord *rec,
                                         hov_error *err);

typedef hov_err (*store_audit_fn)(void *arg,
                                  const Handover__Store__AuditRecord *rec,
                                  hov_error *err);
HOV_NODISCARD hov_err store_audit_scan(store_txn *txn, uint64_t from_seq,
                                       store_audit_fn fn, void *arg,
                                       hov_error *err);

/* --------------------------------------------------------------- waiting */

/* The receivers that owe an outcome, by deadline (hub/overdue.h keeps it).
 * put: insert or replace; del: HOV_ENOTFOUND when absent (not a poisoning
 * failure). Errors of either poison txn (R7). */
HOV_NODISCARD hov_err store_waiting_put(store_txn *txn, uint64_t due_ms,
                                        uint64_t event_seq, const char *dest,
                                        unsigned agency, hov_error *err);
HOV_NODISCARD hov_err store_waiting_del(store_txn *txn, uint64_t due_ms,
                                        uint64_t event_seq, const char *dest,
                                        hov_error *err);

/* Call fn for each waiting receiver, earliest deadline first. dest is
 * borrowed for the call. Stops at the first non-OK return, which is
 * returned (a caller may return a code of its own to stop early). */
typedef hov_err (*store_waiting_fn)(void *arg, uint64_t due_ms,
                                    uint64_t event_seq, const char *dest,
                                    unsigned agency, hov_error *err);
HOV_NODISCARD hov_err store_waiting_scan(store_txn *txn, store_waiting_fn fn,
                                         void *arg, hov_error *err);

/* Receivers waiting (LMDB's entry count: no scan). */
size_t store_waiting_count(store_txn *txn);

/* ------------------------------------------------------------------ meta */

/* Small operational records that must outlive a restart (a paused
 * destination): key is a short text such as "pause/gp". The value is
 * borrowed from the map until the txn ends (or the next write).
 * HOV_ENOTFOUND: no such record (an answer: err untouched). */
HOV_NODISCARD hov_err store_meta_get(store_txn *txn, const char *key,
                                     const uint8_t **data, size_t *len,
                                     hov_error *err);

/* Insert or replace a meta record; copies data. Errors poison txn (R7). */
HOV_NODISCARD hov_err store_meta_put(store_txn *txn, const char *key,
                                     const uint8_t *data, size_t len,
                                     hov_error *err);

/* Remove a meta record. HOV_ENOTFOUND when absent (not a poisoning
 * failure). */
HOV_NODISCARD hov_err store_meta_del(store_txn *txn, const char *key,
                                     hov_error *err);

#endif
