/* A batch: the operations the broker staged in one loop pass, applied in
 * one LMDB write transaction by commit_batch (hub/commit.c), then answered
 * by the broker (group commit, design brief).
 *
 * What an op points to is either in the batch's arena or owned by the
 * broker; the commit reads only the op itself (a settle carries a copy of
 * its delivery, never a pointer the commit follows), so the commit needs
 * nothing of the broker's state.
 */
#ifndef HUB_BATCH_H
#define HUB_BATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "handover.pb-c.h"
#include "handover/err.h"
#include "queue.h"
#include "route.h"
#include "store.h"

#define BATCH_PEER_MAX 255

/* A bump allocator: protobuf-c unpacks an event into dozens of small
 * allocations, and they all die together when the batch is answered. */
typedef struct arena_chunk arena_chunk;
typedef struct arena {
    arena_chunk *head;
    size_t total; /* bytes handed out since the last reset */
} arena;

/* NULL when out of memory. */
void *arena_alloc(arena *a, size_t n);

/* A copy of the NUL-terminated s in the arena; NULL when out of memory. */
char *arena_strdup(arena *a, const char *s);

typedef enum op_kind { OP_PUBLISH, OP_SETTLE, OP_AUDIT_REJECT } op_kind;

/* What the commit needs of a delivery being settled: a copy, so that it
 * never reads the broker's queue item. */
typedef struct settle_snap {
    unsigned queue;
    uint64_t seq;
    uint64_t event_seq;
    uint32_t attempts;
    uint64_t enqueued_ms;
    char event_id[40];
    char dest[48];
    char view[24];
    char patient[40];
} settle_snap;

/* One staged operation. Inputs are set by the broker when staging; results
 * are set by the commit; the broker acts on them after the commit. */
typedef struct op {
    op_kind kind;
    /* publish: inputs */
    uint8_t sid[BATCH_PEER_MAX];
    size_t sidlen;
    config_agency agency;
    uint64_t seq;
    Handover__Event *ev; /* in the batch arena */
    const uint8_t *raw;  /* the event as the sender packed it (arena) */
    size_t raw_len;
    bool ev_changed;        /* the hub filled a field in: store a fresh pack */
    bool answered_inflight; /* an outcome whose event is in flight to the
                               sender's agency right now */
    /* publish: results */
    hov_err result;
    char reason[256];
    bool duplicate;
    bool refused_full; /* left out after the store filled up */
    route_result routes;
    queue_item *items[ROUTE_MAX_DESTS]; /* new deliveries, owned until the
                                           broker queues them */
    size_t n_items;
    /* settle (also settle timeouts, which have no session): inputs */
    queue_item *item; /* the broker's; the commit reads snap instead */
    settle_snap snap;
    Handover__SettleOutcome outcome;
    bool timeout;
    /* settle: results */
    bool to_dead;
    uint64_t not_before_ms;
    bool failed; /* could not be written: put it back */
    /* audit of a publish refused before staging */
    char event_id[40];
    char nhs[16];
} op;

typedef struct batch {
    op *ops;
    size_t nops, cap;
    arena arena;
    ProtobufCAllocator pb_alloc; /* protobuf-c allocating from arena */
    /* set by the commit */
    char received_at[32];
    hov_err fatal; /* the store can no longer be written */
    hov_error fatal_err;
    uint64_t commit_us; /* time spent in store_commit */
} batch;

/* Initialise bt for up to cap ops. HOV_ENOMEM: nothing to undo. */
HOV_NODISCARD hov_err batch_init(batch *bt, size_t cap, hov_error *err);

/* Free everything, including unanswered ops' items. Zeroed storage is
 * fine. */
void batch_fini(batch *bt);

/* Forget the ops (their items must have been taken or released) and reset
 * the arena, keeping one chunk big enough for a batch like the last. */
void batch_reset(batch *bt);

/* A zeroed op of kind, or NULL when the batch is full. */
op *batch_op_new(batch *bt, op_kind kind);

static inline bool
batch_full(const batch *bt)
{
    return bt->nops >= bt->cap;
}

/* Free an op's new deliveries (a refused or failed publish). */
void op_release_items(op *o);

#endif
