/* The hash map against a plain array, through growth, a reserve and
 * deletions. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>

#include "handover/map.h"

#define N 5000

Test(map, matches_a_reference_through_deletes, .timeout = 10)
{
    hov_map *m;
    hov_error err = {0};
    cr_assert(hov_map_new(&m, &err) == HOV_OK);
    static int present[N];
    char key[32];
    srand(7);
    for (int round = 0; round < 20 * N; round++) {
        if (round == N) /* made bigger while full of entries */
            cr_assert(hov_map_reserve(m, 4 * N, &err) == HOV_OK);
        int k = rand() % N;
        int n = snprintf(key, sizeof key, "key-%d", k);
        if (rand() % 3 == 0) {
            void *v = hov_map_del(m, key, (size_t)n);
            cr_assert_eq(v != NULL, present[k] != 0, "delete %d", k);
            present[k] = 0;
        } else {
            cr_assert(hov_map_put(m, key, (size_t)n, &present[k], &err) ==
                      HOV_OK);
            present[k] = 1;
        }
    }
    size_t count = 0;
    for (int k = 0; k < N; k++) {
        int n = snprintf(key, sizeof key, "key-%d", k);
        void *v = hov_map_get(m, key, (size_t)n);
        cr_assert_eq(v != NULL, present[k] != 0, "lookup %d", k);
        if (v)
            cr_assert_eq(v, &present[k]);
        count += present[k];
    }
    cr_assert_eq(hov_map_count(m), count);
    size_t pos = 0, seen = 0;
    while (hov_map_next(m, &pos, NULL, NULL, NULL))
        seen++;
    cr_assert_eq(seen, count);
    hov_map_free(m);
}
