/* A hash map from byte-string keys to pointers, for the hub's in-memory
 * indexes (sessions by ZeroMQ routing id, waiting deliveries by patient).
 *
 * Open addressing with linear probing and backward-shift deletion, so there
 * are no tombstones and a long-running hub's map never degrades. The map owns
 * copies of its keys; it never owns values. Not thread-safe.
 */
#ifndef HANDOVER_MAP_H
#define HANDOVER_MAP_H

#include <stddef.h>

#include "handover/err.h"

typedef struct hov_map hov_map;

/* Create an empty map. Returns owned, free with hov_map_free.
 * HOV_ENOMEM: nothing was created. */
HOV_NODISCARD hov_err hov_map_new(hov_map **out, hov_error *err);

/* Free the map and its key copies (not the values). NULL is a no-op. */
void hov_map_free(hov_map *m);

/* Value for key, or NULL. Borrows key. */
void *hov_map_get(const hov_map *m, const void *key, size_t klen);

/* Insert or replace. Borrows key (a copy is kept); value must not be NULL.
 * HOV_ENOMEM: the map is unchanged. */
HOV_NODISCARD hov_err hov_map_put(hov_map *m, const void *key, size_t klen,
                                  void *value, hov_error *err);

/* Make room for n entries in all, so that the map does not grow (and
 * copy itself) while it fills up to n. HOV_ENOMEM: the map is unchanged. */
HOV_NODISCARD hov_err hov_map_reserve(hov_map *m, size_t n, hov_error *err);

/* Remove key; returns its value, or NULL when absent. */
void *hov_map_del(hov_map *m, const void *key, size_t klen);

size_t hov_map_count(const hov_map *m);

/* Iterate: start with *pos = 0; returns 0 at the end. The map must not be
 * changed during the iteration. */
int hov_map_next(const hov_map *m, size_t *pos, const void **key, size_t *klen,
                 void **value);

#endif
