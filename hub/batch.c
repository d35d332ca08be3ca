#include "batch.h"

#include <stdlib.h>
#include <string.h>

struct arena_chunk {
    struct arena_chunk *next;
    size_t cap, used;
    max_align_t data[];
};

void *
arena_alloc(arena *a, size_t n)
{
    n = (n + sizeof(max_align_t) - 1) & ~(sizeof(max_align_t) - 1);
    arena_chunk *c = a->head;
    if (c == NULL || c->cap - c->used < n) {
        size_t cap = n > (256u << 10) ? n : (256u << 10);
        c = malloc(sizeof *c + cap);
        if (c == NULL)
            return NULL;
        c->cap = cap;
        c->used = 0;
        c->next = a->head;
        a->head = c;
    }
    void *p = (char *)c->data + c->used;
    c->used += n;
    a->total += n;
    return p;
}

char *
arena_strdup(arena *a, const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = arena_alloc(a, n);
    if (p != NULL)
        memcpy(p, s, n);
    return p;
}

static void
arena_free_all(arena *a)
{
    while (a->head) {
        arena_chunk *c = a->head;
        a->head = c->next;
        free(c);
    }
    a->total = 0;
}

/* Keep one chunk, big enough for the last batch (up to 64 MiB), so a
 * steady load allocates nothing. */
static void
arena_reset(arena *a)
{
    size_t want = a->total;
    if (a->head && a->head->next == NULL) {
        a->head->used = 0;
        a->total = 0;
        return;
    }
    arena_free_all(a);
    if (want > (64u << 20))
        want = 64u << 20;
    if (want > 0 && arena_alloc(a, want) != NULL) {
        a->head->used = 0;
        a->total = 0;
    }
}

static void *
pb_arena_alloc(void *data, size_t n)
{
    return arena_alloc(data, n);
}

static void
pb_arena_free(void *data, void *p)
{
    (void)data; /* freed all at once by arena_reset */
    (void)p;
}

hov_err
batch_init(batch *bt, size_t cap, hov_error *err)
{
    memset(bt, 0, sizeof *bt);
    bt->ops = calloc(cap ? cap : 1, sizeof *bt->ops);
    if (bt->ops == NULL)
        return hov_fail(err, HOV_ENOMEM, 0, "allocate a batch of %zu", cap);
    bt->cap = cap;
    bt->pb_alloc.alloc = pb_arena_alloc;
    bt->pb_alloc.free = pb_arena_free;
    bt->pb_alloc.allocator_data = &bt->arena;
    return HOV_OK;
}

void
op_release_items(op *o)
{
    for (size_t i = 0; i < o->n_items; i++)
        queue_item_free(o->items[i]);
    o->n_items = 0;
}

void
batch_fini(batch *bt)
{
    for (size_t i = 0; bt->ops && i < bt->nops; i++)
        op_release_items(&bt->ops[i]);
    free(bt->ops);
    arena_free_all(&bt->arena);
    memset(bt, 0, sizeof *bt);
}

void
batch_reset(batch *bt)
{
    bt->nops = 0;
    bt->fatal = HOV_OK;
    hov_error_clear(&bt->fatal_err);
    bt->commit_us = 0;
    arena_reset(&bt->arena);
}

op *
batch_op_new(batch *bt, op_kind kind)
{
    if (batch_full(bt))
        return NULL;
    op *o = &bt->ops[bt->nops++];
    /* Everything but the big route table, which is reset by its count. */
    memset(o, 0, offsetof(op, routes));
    o->routes.n = 0;
    o->routes.warning[0] = '\0';
    memset(&o->n_items, 0, sizeof *o - offsetof(op, n_items));
    o->kind = kind;
    return o;
}
