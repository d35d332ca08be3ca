/* The commit: applies a batch of staged operations (hub/batch.h) in one
 * LMDB write transaction and commits it durably: dedupe, the checks of an
 * outcome against the event it answers, routing, and every write (event,
 * index, queue entries, lifecycle, dead letters, audit records).
 *
 * It touches the store, the configuration (read only) and the batch, and
 * never the broker's sessions or queues: what it needs of them was copied
 * into the ops when they were staged. So it could run on a thread of its
 * own; measured on two cores it did not pay for itself (docs/benchmarks.md),
 * and the broker calls it between reading and answering.
 */
#ifndef HUB_COMMIT_H
#define HUB_COMMIT_H

#include "batch.h"
#include "config.h"
#include "handover/err.h"
#include "store.h"

typedef struct commit_ctx {
    const config *cfg;
    store *st;
} commit_ctx;

/* Apply and commit bt on the calling thread. Results go into bt's ops;
 * bt->fatal is set when the store can no longer be written. */
void commit_batch(const commit_ctx *c, batch *bt);

#endif
