/* Delivery scheduling in memory: one queue per agency, mirroring the
 * durable queue in LMDB (hub/store.c), which is the truth. At start-up the
 * hub rebuilds these from the store; afterwards it changes them only after
 * the transaction that made the same change durable has committed.
 *
 * Order: deliveries of one patient (NHS number) to one agency leave in the
 * order the hub accepted them. Each patient has a FIFO; only its head may be
 * sent, and the next is released only when the head is settled done or
 * dead-lettered. A head waiting out a back-off holds the patient's later
 * events back with it: a discharge never overtakes the referral it follows.
 *
 * An item is in at most one list at a time (ready, back-off, or a session's
 * in-flight list), through the same link pair. Not thread-safe.
 */
#ifndef HUB_QUEUE_H
#define HUB_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "handover/err.h"
#include "handover/map.h"

typedef enum queue_state {
    QS_WAITING = 0, /* behind an earlier event of the same patient */
    QS_READY,       /* head of its patient, may be sent now */
    QS_BACKOFF,     /* head, waiting until not_before_ms */
    QS_INFLIGHT,    /* sent, waiting for Settle */
    QS_SETTLING,    /* Settle staged in the open batch */
} queue_state;

typedef struct queue_patient queue_patient;
struct session;

typedef struct queue_item {
    uint64_t seq;       /* key in the store's queue database */
    unsigned queue;     /* agency number */
    uint64_t event_seq; /* the event's key in the store */
    char event_id[40];
    char dest[48];
    char view[24];
    uint32_t attempts;
    uint64_t not_before_ms; /* wall clock, as stored */
    uint64_t sent_ms;       /* monotonic, when last sent */
    uint64_t enqueued_ms;
    queue_state state;
    struct session *owner; /* in flight to */
    queue_patient *patient;
    struct queue_item *pnext;       /* patient FIFO */
    struct queue_item *prev, *next; /* the one list the item is in */
} queue_item;

typedef struct queue_list {
    queue_item *head, *tail;
    size_t count;
} queue_list;

void queue_list_push_back(queue_list *l, queue_item *it);
void queue_list_push_front(queue_list *l, queue_item *it);
void queue_list_remove(queue_list *l, queue_item *it);

/* The deliveries of one agency, in memory up to mem_max of them. Beyond
 * that they wait in the store only ("spilled"): every delivery with a
 * queue sequence number from spill_from on, read back in order as the
 * queue drains (queue_wants_refill). Since nothing later is held in
 * memory while some are spilled, a patient's deliveries keep their order. */
typedef struct queue {
    unsigned id;
    hov_map *patients; /* patient key -> queue_patient */
    hov_map *items;    /* seq (8 bytes) -> queue_item */
    queue_list ready;
    queue_list backoff;
    size_t depth; /* deliveries not yet settled: in memory and spilled */
    size_t inflight;
    bool paused;
    size_t mem_max;      /* items held in memory, at most (0: no limit) */
    bool spilling;       /* some deliveries wait in the store only */
    size_t spilled;      /* how many (for depth) */
    uint64_t spill_from; /* the first of them, while spilling */
} queue;

/* Initialise q in caller storage. HOV_ENOMEM: nothing to undo. */
HOV_NODISCARD hov_err queue_init(queue *q, unsigned id, hov_error *err);

/* Free every item and index. Zeroed storage is fine. */
void queue_fini(queue *q);

/* Allocate an item (zeroed). Returns owned; it becomes the queue's on a
 * successful queue_add, else free it with queue_item_free. */
queue_item *queue_item_new(void);
void queue_item_free(queue_item *it);

/* Append it to its patient's FIFO (patient key: NHS number or event id).
 * A new head becomes ready, or backs off until it->not_before_ms if that
 * is later than now_ms. When mem_max items are held, or any are spilled
 * (so that none is overtaken), it is instead counted as spilled (waiting
 * in the store only, read back by queue_unspill) and freed. Takes it on
 * success either way. HOV_ENOMEM: not taken. */
HOV_NODISCARD hov_err queue_add(queue *q, queue_item *it, const char *patient,
                                uint64_t now_ms, hov_error *err);

/* The next ready head, removed from the ready list (the caller marks it
 * in flight and puts it in a session's list), or NULL. */
queue_item *queue_pop_ready(queue *q);

/* Put a head back: ready at the front, or into back-off until
 * not_before_ms when that is later than now_ms. */
void queue_requeue(queue *q, queue_item *it, uint64_t now_ms);

/* The head has been settled done or dead-lettered: remove and free it, and
 * release the patient's next item. */
void queue_remove(queue *q, queue_item *it, uint64_t now_ms);

/* Move back-off heads whose time has come to the ready list. Returns the
 * earliest remaining not_before_ms, or UINT64_MAX. */
uint64_t queue_promote(queue *q, uint64_t now_ms);

/* The item's ordering key (NHS number or event id). Borrowed while the item
 * is queued. */
const char *queue_item_patient(const queue_item *it);

/* Items held in memory. */
size_t queue_held(const queue *q);

/* True when spilled deliveries wait and there is room for at least half
 * of mem_max: time to read them back (queue_unspill for each, in order). */
bool queue_wants_refill(const queue *q);

/* Take spilled delivery it (sequence number it->seq, read from the store)
 * back into memory, as queue_add does when nothing is spilled.
 * HOV_ENOMEM: not taken. */
HOV_NODISCARD hov_err queue_unspill(queue *q, queue_item *it,
                                    const char *patient, uint64_t now_ms,
                                    hov_error *err);

/* The store holds no spilled delivery after the last one read back: the
 * queue is whole in memory again. Returns the count left over (for a
 * warning; 0 when consistent), which is taken off depth. */
size_t queue_spill_done(queue *q);

/* The item with this sequence number, or NULL. */
queue_item *queue_find(queue *q, uint64_t seq);

#endif
