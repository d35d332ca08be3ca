/* The audit trail: one append-only, hash-chained record per state change of
 * an event (accepted, rejected, delivered, retried, dead-lettered ...),
 * written in the same LMDB transaction as the change it records, so the
 * trail and the state can never disagree.
 *
 * Each record's hash is BLAKE2b-256 over the record packed with its
 * predecessor's hash (hub/store.c, store_audit_append): altering, removing
 * or inserting a record breaks the chain at that point.
 */
#ifndef HUB_AUDIT_H
#define HUB_AUDIT_H

#include <stdbool.h>
#include <stdint.h>

#include "handover/err.h"
#include "store.h"

/* Actions, as written in AuditRecord.action. */
#define AUDIT_ACCEPTED        "accepted"
#define AUDIT_DUPLICATE       "duplicate"
#define AUDIT_REJECTED        "rejected"
#define AUDIT_DELIVERED       "delivered"
#define AUDIT_RETRY           "retry"
#define AUDIT_DEAD            "dead-lettered"
#define AUDIT_CONSENT_IMPLIED "consent-implied"
/* Operator actions (hub/status.c); the actor is "operator:<name>". */
#define AUDIT_REDRIVEN "redriven"
#define AUDIT_REPLAYED "replayed"
#define AUDIT_PAUSED   "paused"
#define AUDIT_RESUMED  "resumed"

/* Append one record in txn. Borrows all strings (NULL reads as "").
 * Errors are those of store_audit_append; they poison txn. */
HOV_NODISCARD hov_err audit_log(store_txn *txn, uint64_t time_ms,
                                const char *event_id, const char *nhs_number,
                                const char *actor, const char *action,
                                const char *detail, hov_error *err);

/* Read by handover-audit (trace, export); the actor is
 * "auditor:<name>", the detail says what was read. */
#define AUDIT_READ "read"

/* What a walk of the chain found. */
typedef struct audit_verify_report {
    uint64_t count; /* intact records, from the first */
    uint64_t first_seq, first_time_ms;
    uint64_t last_seq, last_time_ms; /* the last intact record */
    bool bad;                        /* the fields below are set */
    uint64_t bad_seq, bad_time_ms;   /* the first bad record */
    char bad_action[40];
    char bad_what[200]; /* "hash mismatch: ...", "prev-hash mismatch: ..." */
} audit_verify_report;

/* Recompute the chain from the first record, in read transactions of a
 * few thousand records each (a long walk never pins the live store).
 * HOV_OK when the walk finished: rep->bad says whether it found a bad
 * record, and which. An error only when the store could not be read. */
HOV_NODISCARD hov_err audit_verify_report_get(store *s,
                                              audit_verify_report *rep,
                                              hov_error *err);

/* Recompute the chain from the first record. *count gets the number of
 * records checked. HOV_OK when intact; HOV_ESTORE naming the first bad
 * record (its seq in *bad_seq) otherwise. Uses one read transaction. */
HOV_NODISCARD hov_err audit_verify(store *s, uint64_t *count, uint64_t *bad_seq,
                                   hov_error *err);

#endif
