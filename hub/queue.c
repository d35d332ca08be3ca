#include "queue.h"

#include <stdlib.h>
#include <string.h>

struct queue_patient {
    queue_item *head, *tail;
    size_t keylen;
    char key[];
};

void
queue_list_push_back(queue_list *l, queue_item *it)
{
    it->next = NULL;
    it->prev = l->tail;
    if (l->tail)
        l->tail->next = it;
    else
        l->head = it;
    l->tail = it;
    l->count++;
}

void
queue_list_push_front(queue_list *l, queue_item *it)
{
    it->prev = NULL;
    it->next = l->head;
    if (l->head)
        l->head->prev = it;
    else
        l->tail = it;
    l->head = it;
    l->count++;
}

void
queue_list_remove(queue_list *l, queue_item *it)
{
    if (it->prev)
        it->prev->next = it->next;
    else
        l->head = it->next;
    if (it->next)
        it->next->prev = it->prev;
    else
        l->tail = it->prev;
    it->prev = it->next = NULL;
    l->count--;
}

hov_err
queue_init(queue *q, unsigned id, hov_error *err)
{
    memset(q, 0, sizeof *q);
    q->id = id;
    hov_err e = hov_map_new(&q->patients, err);
    if (e != HOV_OK)
        return e;
    if ((e = hov_map_new(&q->items, err)) != HOV_OK) {
        hov_map_free(q->patients);
        q->patients = NULL;
    }
    return e;
}

void
queue_fini(queue *q)
{
    if (q->items) {
        size_t pos = 0;
        void *v;
        while (hov_map_next(q->items, &pos, NULL, NULL, &v))
            free(v);
    }
    if (q->patients) {
        size_t pos = 0;
        void *v;
        while (hov_map_next(q->patients, &pos, NULL, NULL, &v))
            free(v);
    }
    hov_map_free(q->items);
    hov_map_free(q->patients);
    memset(q, 0, sizeof *q);
}

queue_item *
queue_item_new(void)
{
    return calloc(1, sizeof(queue_item));
}

void
queue_item_free(queue_item *it)
{
    free(it);
}

static void
make_head_ready(queue *q, queue_item *it, uint64_t now_ms)
{
    if (it->not_before_ms > now_ms) {
        it->state = QS_BACKOFF;
        queue_list_push_back(&q->backoff, it);
    } else {
        it->state = QS_READY;
        queue_list_push_back(&q->ready, it);
    }
}

static bool queue_must_spill(const queue *q);
static void queue_spill(queue *q, uint64_t seq);

/* Into memory: the patient's FIFO, and ready or backing off at its head. */
static hov_err
queue_hold(queue *q, queue_item *it, const char *patient, uint64_t now_ms,
           hov_error *err)
{
    size_t klen = strlen(patient);
    uint8_t skey[8];
    memcpy(skey, &it->seq, 8);
    queue_patient *p = hov_map_get(q->patients, patient, klen);
    bool new_patient = p == NULL;
    if (new_patient) {
        p = calloc(1, sizeof *p + klen + 1);
        if (p == NULL)
            return hov_fail(err, HOV_ENOMEM, 0, "allocate patient queue");
        p->keylen = klen;
        memcpy(p->key, patient, klen);
        hov_err e = hov_map_put(q->patients, p->key, klen, p, err);
        if (e != HOV_OK) {
            free(p);
            return e;
        }
    }
    hov_err e = hov_map_put(q->items, skey, 8, it, err);
    if (e != HOV_OK) {
        if (new_patient) {
            hov_map_del(q->patients, p->key, klen);
            free(p);
        }
        return e;
    }
    it->patient = p;
    it->queue = q->id;
    it->pnext = NULL;
    q->depth++;
    if (p->tail) {
        p->tail->pnext = it;
        p->tail = it;
        it->state = QS_WAITING;
        return HOV_OK;
    }
    p->head = p->tail = it;
    make_head_ready(q, it, now_ms);
    return HOV_OK;
}

hov_err
queue_add(queue *q, queue_item *it, const char *patient, uint64_t now_ms,
          hov_error *err)
{
    if (queue_must_spill(q)) {
        /* Durable in the store; read back in order as q drains. */
        queue_spill(q, it->seq);
        queue_item_free(it);
        return HOV_OK;
    }
    return queue_hold(q, it, patient, now_ms, err);
}

queue_item *
queue_pop_ready(queue *q)
{
    queue_item *it = q->ready.head;
    if (it == NULL || q->paused)
        return NULL;
    queue_list_remove(&q->ready, it);
    return it;
}

void
queue_requeue(queue *q, queue_item *it, uint64_t now_ms)
{
    if (it->not_before_ms > now_ms) {
        it->state = QS_BACKOFF;
        queue_list_push_back(&q->backoff, it);
    } else {
        /* Front: a redelivery has waited longest. */
        it->state = QS_READY;
        queue_list_push_front(&q->ready, it);
    }
}

void
queue_remove(queue *q, queue_item *it, uint64_t now_ms)
{
    queue_patient *p = it->patient;
    uint8_t skey[8];
    memcpy(skey, &it->seq, 8);
    hov_map_del(q->items, skey, 8);
    q->depth--;
    if (it->state == QS_READY)
        queue_list_remove(&q->ready, it);
    else if (it->state == QS_BACKOFF)
        queue_list_remove(&q->backoff, it);
    /* Only heads leave (settled or dead-lettered); a waiting item removed
     * out of turn (operator action) is unlinked from the FIFO. */
    if (p->head == it) {
        p->head = it->pnext;
        if (p->head == NULL)
            p->tail = NULL;
        else
            make_head_ready(q, p->head, now_ms);
    } else {
        queue_item *x = p->head;
        while (x && x->pnext != it)
            x = x->pnext;
        if (x) {
            x->pnext = it->pnext;
            if (p->tail == it)
                p->tail = x;
        }
    }
    if (p->head == NULL) {
        hov_map_del(q->patients, p->key, p->keylen);
        free(p);
    }
    free(it);
}

uint64_t
queue_promote(queue *q, uint64_t now_ms)
{
    uint64_t next = UINT64_MAX;
    queue_item *it = q->backoff.head;
    while (it) {
        queue_item *nx = it->next;
        if (it->not_before_ms <= now_ms) {
            queue_list_remove(&q->backoff, it);
            it->state = QS_READY;
            queue_list_push_back(&q->ready, it);
        } else if (it->not_before_ms < next) {
            next = it->not_before_ms;
        }
        it = nx;
    }
    return next;
}

queue_item *
queue_find(queue *q, uint64_t seq)
{
    uint8_t skey[8];
    memcpy(skey, &seq, 8);
    return hov_map_get(q->items, skey, 8);
}

const char *
queue_item_patient(const queue_item *it)
{
    return it->patient ? it->patient->key : "";
}

size_t
queue_held(const queue *q)
{
    return hov_map_count(q->items);
}

/* Must the delivery with the next queue sequence number stay in the store
 * only? Once mem_max items are held, and for as long as any are spilled
 * (so that none overtakes them). */
static bool
queue_must_spill(const queue *q)
{
    return q->spilling || (q->mem_max > 0 && queue_held(q) >= q->mem_max);
}

/* Count the delivery with sequence number seq as queued in the store
 * only. */
static void
queue_spill(queue *q, uint64_t seq)
{
    if (!q->spilling)
        q->spill_from = seq;
    q->spilling = true;
    q->spilled++;
    q->depth++;
}

bool
queue_wants_refill(const queue *q)
{
    return q->spilling && queue_held(q) <= q->mem_max / 2;
}

hov_err
queue_unspill(queue *q, queue_item *it, const char *patient, uint64_t now_ms,
              hov_error *err)
{
    hov_err e = queue_hold(q, it, patient, now_ms, err);
    if (e != HOV_OK)
        return e;
    q->depth--; /* counted when it was spilled */
    if (q->spilled > 0)
        q->spilled--;
    q->spill_from = it->seq + 1;
    return HOV_OK;
}

size_t
queue_spill_done(queue *q)
{
    size_t left = q->spilled;
    q->depth -= left < q->depth ? left : q->depth;
    q->spilled = 0;
    q->spilling = false;
    return left;
}
