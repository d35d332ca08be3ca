/* handover-audit's access to a hub's data folder: opening the store to
 * read it, asking the running hub to do something through its status
 * socket, and recording in the audit log that somebody read it.
 *
 * access_open_store and access_record_read say on stderr why they failed
 * (prefixed "handover-audit: "); the others give the reason back.
 */
#ifndef HANDOVER_AUDIT_ACCESS_H
#define HANDOVER_AUDIT_ACCESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "handover.pb-c.h"
#include "store.h"

/* handover-audit's exit codes. */
enum {
    EXIT_DONE = 0,      /* done; the chain is intact (verify) */
    EXIT_FOUND_BAD = 1, /* chain broken, nothing matched, or some refused */
    EXIT_USAGE = 2,
    EXIT_STORE = 3, /* store unreadable, hub unreachable, read not recorded */
};

/* Open the store in dir read-only (MDB_RDONLY): safe on the live store
 * and on a copy. 0 with *out owned (store_free), or -1. */
int access_open_store(const char *dir, store **out);

/* Is a hub running on dir (holding dir/hub.lock)? 1 yes, 0 no, -1 the
 * lock cannot be tested (why says so). */
int access_hub_running(const char *dir, char *why, size_t cap);

/* Send one command line (ending in '\n') to the hub's status socket
 * dir/hub.sock and read the whole answer into answer (NUL-terminated,
 * cut at cap - 1). 0 when the hub answered OK (answer holds what follows
 * the "OK" line), 1 when it refused (answer holds its reason, one line),
 * -1 when it could not be asked (why says so). Waits at most 10 s. */
int access_hub_request(const char *dir, const char *line, char *answer,
                       size_t cap, char *why, size_t whycap);

/* Record in the audit log that auditor read subject (kind: trace-event,
 * trace-correlation, trace-nhs, export, what-if), before anything read is
 * shown. Through the running hub, which holds the chain's head; when no hub
 * runs, directly, holding hub.lock so none starts meanwhile. 0 recorded;
 * -1 not, and nothing may be shown. The store must not be open in this
 * process (one LMDB environment per process at a time). */
int access_record_read(const char *dir, const char *auditor, const char *kind,
                       const char *subject, const char *event_id,
                       const char *nhs);

/* Is s one word of 1 to max printable ASCII characters, safe on the
 * status socket's one-line protocol and in an audit record? */
bool access_word_valid(const char *s, size_t max);

/* Print o as one compact JSON line on stdout and release it (o may be
 * NULL: a failed build). False when o is NULL or cannot be serialised. */
bool access_emit(json_t *o);

/* The stored event with sequence number seq, decoded (free with
 * handover__event__free_unpacked(*out, NULL)). HOV_ENOTFOUND when there is
 * none or it does not decode (damage is verify's business). */
HOV_NODISCARD hov_err access_event_load(store_txn *txn, uint64_t seq,
                                        Handover__Event **out, hov_error *err);

/* The days from..to (YYYY-MM-DD, Europe/London, both included) as
 * [*from_ms, *to_ms). False when either is not a date or to is before
 * from. */
bool access_day_range(const char *from, const char *to, uint64_t *from_ms,
                      uint64_t *to_ms);

/* Call fn for every stored event received in [from_ms, to_ms), in the
 * order they were accepted, with the read transaction it was found in (for
 * lookups) and the event decoded (both borrowed for the call). The scan
 * runs in slices of a few thousand events, one read transaction each, so
 * a long range never pins the live store's pages. Stops at fn's first
 * non-OK return, returned. */
typedef hov_err (*access_event_fn)(void *arg, store_txn *txn, uint64_t seq,
                                   const Handover__Event *ev, hov_error *err);
HOV_NODISCARD hov_err access_events_in_range(store *st, uint64_t from_ms,
                                             uint64_t to_ms, access_event_fn fn,
                                             void *arg, hov_error *err);

#endif
