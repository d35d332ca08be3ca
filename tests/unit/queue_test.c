/* Delivery scheduling: per-patient order, back-off, requeue. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "queue.h"

static queue q;

static void
setup(void)
{
    hov_error err = {0};
    cr_assert(queue_init(&q, 1, &err) == HOV_OK);
}

static void
teardown(void)
{
    queue_fini(&q);
}

TestSuite(queue, .init = setup, .fini = teardown, .timeout = 10);

static queue_item *
add(uint64_t seq, const char *patient, uint64_t not_before)
{
    queue_item *it = queue_item_new();
    cr_assert_not_null(it);
    it->seq = seq;
    it->not_before_ms = not_before;
    snprintf(it->event_id, sizeof it->event_id, "event-%llu",
             (unsigned long long)seq);
    hov_error err = {0};
    cr_assert(queue_add(&q, it, patient, 1000, &err) == HOV_OK);
    return it;
}

Test(queue, one_patient_at_a_time)
{
    queue_item *a = add(1, "9992468130", 0);
    queue_item *b = add(2, "9992468130", 0);
    queue_item *c = add(3, "9994127357", 0);
    cr_assert_eq(q.depth, 3);
    cr_assert_eq(queue_pop_ready(&q), a);
    cr_assert_eq(queue_pop_ready(&q), c);
    cr_assert_null(queue_pop_ready(&q), "b waits behind a, its patient's head");
    cr_assert_eq(b->state, QS_WAITING);
    cr_assert_str_eq(queue_item_patient(b), "9992468130");
    queue_remove(&q, a, 1000);
    cr_assert_eq(queue_pop_ready(&q), b, "settling a releases b");
    cr_assert_eq(q.depth, 2);
    cr_assert_eq(queue_find(&q, 3), c);
    cr_assert_null(queue_find(&q, 1));
}

Test(queue, backoff_holds_the_patient)
{
    queue_item *a = add(1, "9992468130", 0);
    add(2, "9992468130", 0);
    cr_assert_eq(queue_pop_ready(&q), a);
    a->not_before_ms = 5000;
    queue_requeue(&q, a, 1000);
    cr_assert_eq(a->state, QS_BACKOFF);
    cr_assert_null(queue_pop_ready(&q), "nothing of that patient may pass");
    cr_assert_eq(queue_promote(&q, 4999), 5000, "next wake-up is named");
    cr_assert_null(queue_pop_ready(&q));
    cr_assert_eq(queue_promote(&q, 5000), UINT64_MAX);
    cr_assert_eq(queue_pop_ready(&q), a, "the head comes back first");
}

Test(queue, requeue_goes_to_the_front_and_pause_holds)
{
    queue_item *a = add(1, "9992468130", 0);
    queue_item *c = add(2, "9994127357", 0);
    cr_assert_eq(queue_pop_ready(&q), a);
    queue_requeue(&q, a, 1000);
    cr_assert_eq(queue_pop_ready(&q), a, "a redelivery has waited longest");
    q.paused = true;
    cr_assert_null(queue_pop_ready(&q));
    q.paused = false;
    cr_assert_eq(queue_pop_ready(&q), c);
}

Test(queue, a_new_head_in_backoff_waits)
{
    queue_item *a = add(1, "9992468130", 9000); /* loaded from the store */
    cr_assert_eq(a->state, QS_BACKOFF);
    cr_assert_null(queue_pop_ready(&q));
    queue_promote(&q, 9000);
    cr_assert_eq(queue_pop_ready(&q), a);
}
