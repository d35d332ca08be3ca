#include "handover/map.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Keys up to KEY_INLINE bytes (routing ids are longer, NHS numbers, UUIDs
 * and sequence numbers are not) live in the slot itself: no allocation per
 * insert on the hot path. */
#define KEY_INLINE 24

typedef struct slot {
    union {
        void *ptr;
        unsigned char inl[KEY_INLINE];
    } key;
    size_t klen;
    uint64_t hash;
    void *value; /* NULL: empty (values are never NULL) */
} slot;

static const void *
slot_key(const slot *s)
{
    return s->klen <= KEY_INLINE ? (const void *)s->key.inl : s->key.ptr;
}

static void
slot_free_key(slot *s)
{
    if (s->klen > KEY_INLINE)
        free(s->key.ptr);
}

struct hov_map {
    slot *slots;
    size_t cap; /* power of two */
    size_t count;
};

static uint64_t
map_hash(const void *key, size_t klen)
{
    /* FNV-1a: keys are routing ids and NHS numbers, short and not chosen by
     * an attacker who could also flood the hub with sessions. */
    const unsigned char *p = key;
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < klen; i++) {
        h ^= p[i];
        h *= 1099511628211ULL;
    }
    return h;
}

hov_err
hov_map_new(hov_map **out, hov_error *err)
{
    hov_map *m = calloc(1, sizeof *m);
    if (m == NULL)
        return hov_fail(err, HOV_ENOMEM, 0, "allocate map");
    m->cap = 16;
    m->slots = calloc(m->cap, sizeof *m->slots);
    if (m->slots == NULL) {
        free(m);
        return hov_fail(err, HOV_ENOMEM, 0, "allocate map slots");
    }
    *out = m;
    return HOV_OK;
}

void
hov_map_free(hov_map *m)
{
    if (m == NULL)
        return;
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].value != NULL)
            slot_free_key(&m->slots[i]);
    free(m->slots);
    free(m);
}

static size_t
map_find(const hov_map *m, const void *key, size_t klen, uint64_t h)
{
    size_t mask = m->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        const slot *s = &m->slots[i];
        if (s->value == NULL)
            return i;
        if (s->hash == h && s->klen == klen &&
            memcmp(slot_key(s), key, klen) == 0)
            return i;
    }
}

void *
hov_map_get(const hov_map *m, const void *key, size_t klen)
{
    size_t i = map_find(m, key, klen, map_hash(key, klen));
    return m->slots[i].value;
}

/* Move every entry into a new table of ncap slots (a power of two). */
static int
map_resize(hov_map *m, size_t ncap)
{
    slot *ns = calloc(ncap, sizeof *ns);
    if (ns == NULL)
        return -1;
    for (size_t i = 0; i < m->cap; i++) {
        slot *s = &m->slots[i];
        if (s->value == NULL)
            continue;
        size_t j = s->hash & (ncap - 1);
        while (ns[j].value != NULL)
            j = (j + 1) & (ncap - 1);
        ns[j] = *s;
    }
    free(m->slots);
    m->slots = ns;
    m->cap = ncap;
    return 0;
}

/* Keep the load under 3/4: linear probing slows down sharply above. */
static bool
map_room(size_t cap, size_t n)
{
    return n * 4 <= cap * 3;
}

hov_err
hov_map_reserve(hov_map *m, size_t n, hov_error *err)
{
    size_t ncap = m->cap;
    while (!map_room(ncap, n))
        ncap *= 2;
    if (ncap > m->cap && map_resize(m, ncap) != 0)
        return hov_fail(err, HOV_ENOMEM, 0, "grow map to %zu slots", ncap);
    return HOV_OK;
}

hov_err
hov_map_put(hov_map *m, const void *key, size_t klen, void *value,
            hov_error *err)
{
    if (value == NULL)
        return hov_fail(err, HOV_EINVAL, 0, "map value must not be NULL");
    uint64_t h = map_hash(key, klen);
    size_t i = map_find(m, key, klen, h);
    if (m->slots[i].value != NULL) {
        m->slots[i].value = value;
        return HOV_OK;
    }
    if (!map_room(m->cap, m->count + 1)) {
        if (map_resize(m, m->cap * 2) != 0)
            return hov_fail(err, HOV_ENOMEM, 0, "grow map to %zu slots",
                            m->cap * 2);
        i = map_find(m, key, klen, h);
    }
    slot *s = &m->slots[i];
    if (klen <= KEY_INLINE) {
        memcpy(s->key.inl, key, klen);
    } else {
        void *k = malloc(klen);
        if (k == NULL)
            return hov_fail(err, HOV_ENOMEM, 0, "copy map key");
        memcpy(k, key, klen);
        s->key.ptr = k;
    }
    s->klen = klen;
    s->hash = h;
    s->value = value;
    m->count++;
    return HOV_OK;
}

void *
hov_map_del(hov_map *m, const void *key, size_t klen)
{
    size_t mask = m->cap - 1;
    size_t i = map_find(m, key, klen, map_hash(key, klen));
    if (m->slots[i].value == NULL)
        return NULL;
    void *value = m->slots[i].value;
    slot_free_key(&m->slots[i]);
    m->slots[i].value = NULL;
    m->count--;
    /* Backward-shift: move later members of the probe run into the hole so
     * lookups never stop early at it. */
    for (size_t j = (i + 1) & mask; m->slots[j].value != NULL;
         j = (j + 1) & mask) {
        size_t home = m->slots[j].hash & mask;
        /* Move j into hole i unless its home lies cyclically in (i, j]. */
        int in_range =
            (i <= j) ? (home > i && home <= j) : (home > i || home <= j);
        if (!in_range) {
            m->slots[i] = m->slots[j];
            m->slots[j].value = NULL;
            i = j;
        }
    }
    return value;
}

size_t
hov_map_count(const hov_map *m)
{
    return m->count;
}

int
hov_map_next(const hov_map *m, size_t *pos, const void **key, size_t *klen,
             void **value)
{
    for (; *pos < m->cap; (*pos)++) {
        const slot *s = &m->slots[*pos];
        if (s->value == NULL)
            continue;
        if (key)
            *key = slot_key(s);
        if (klen)
            *klen = s->klen;
        if (value)
            *value = s->value;
        (*pos)++;
        return 1;
    }
    return 0;
}
