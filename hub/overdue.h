/* Outcome deadlines: which requests (referrals, discharges, equipment
 * orders) are still waiting for a receiver's outcome, and which of those
 * are overdue (domain brief 2.1 and 2.3).
 *
 * One entry per request that has at least one receiver still to answer,
 * kept in memory and fed from two sides:
 *   - live: the broker reports every accepted publish (a new request and
 *     its receivers, or an outcome that answers one) and every delivery
 *     that went to dead letters, after the commit that made it durable;
 *   - catch-up: at start the events already in the store are read in
 *     slices, a few milliseconds per loop pass (overdue_load_step), so a
 *     large store never holds the loop up. Until it is done the figures
 *     are marked incomplete.
 * Outcomes that answer a request the catch-up has not reached yet are kept
 * aside and applied when it gets there.
 *
 * A receiver is answered when any organisation of its agency sends an
 * outcome for the request (the hub accepts an outcome only from the agency
 * that received it). For an equipment order, `accepted` alone does not
 * answer the delivery deadline: any later status does (delivered,
 * cannot_deliver, collected, cancelled, rejected). A receiver whose copy is
 * in dead letters is not counted as overdue (the dead letter is the alert);
 * a redrive counts it again.
 *
 * Default deadlines (domain brief 2.1; per-route overrides are not yet
 * configurable): referral from occurred_at: two_hour_crisis 30 minutes,
 * urgent 24 hours, routine 7 days; a voluntary-sector receiver 7 days.
 * Discharge: 24 hours after discharge.discharged_at. Equipment order: the
 * end (23:59:59 Europe/London) of its required_by day.
 *
 * Limits: per-item tracking of equipment orders (each line delivered or
 * collected) is not done: the first outcome past `accepted` answers the
 * order. A request that is never answered stays in memory (and overdue)
 * until it is; closing one without an outcome is future work.
 *
 * Hub loop thread only. Not thread-safe.
 */
#ifndef HUB_OVERDUE_H
#define HUB_OVERDUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "handover.pb-c.h"
#include "handover/err.h"
#include "route.h"
#include "store.h"

typedef struct overdue overdue;

/* Create an empty tracker that will catch up with the events below
 * load_end (store_event_next_seq at start; 1 for none). Returns owned; free
 * with overdue_free. HOV_ENOMEM. */
HOV_NODISCARD hov_err overdue_new(overdue **out, uint64_t load_end,
                                  hov_error *err);

/* Free everything. NULL is a no-op. */
void overdue_free(overdue *o);

/* Read stored events for up to budget_us microseconds, in one short read
 * transaction. HOV_OK (also when the catch-up is complete); HOV_ESTORE,
 * HOV_ENOMEM: the step failed and may be retried. An event that cannot be
 * decoded is skipped with a log line. No write transaction may be open. */
HOV_NODISCARD hov_err overdue_load_step(overdue *o, store *st,
                                        uint64_t budget_us, hov_error *err);

/* True while the catch-up is not complete; *done and *total (may be NULL)
 * get the events read so far and the number to read. */
bool overdue_loading(const overdue *o, uint64_t *done, uint64_t *total);

/* An accepted, committed, non-duplicate event ev from agency from, routed
 * as routes says. Borrows everything for the call. */
void overdue_on_publish(overdue *o, const Handover__Event *ev,
                        config_agency from, const route_result *routes);

/* The copy of event_id for dest went to dead letters, or (redriven) came
 * back from them. Borrows the strings. */
void overdue_on_dead(overdue *o, const char *event_id, const char *dest,
                     bool dead);

/* The default outcome deadline of request ev for a receiver of agency
 * receiver, in ms since the epoch. False when ev is not a request or its
 * times cannot be read (validated events always can). */
bool overdue_due_ms(const Handover__Event *ev, config_agency receiver,
                    uint64_t *due_ms);

/* One receiver that has not answered by its deadline. Strings are borrowed
 * until the next change of the tracker. */
typedef struct overdue_item {
    const char *event_id;
    const char *event_type;
    const char *priority;
    const char *dest;
    config_agency agency;
    uint64_t due_ms;
} overdue_item;

/* Receivers overdue at now_ms (wall clock); *oldest_due (may be NULL) gets
 * the earliest deadline among them (0 when none). */
size_t overdue_count(const overdue *o, uint64_t now_ms, uint64_t *oldest_due);

/* Fill out with up to max overdue receivers, earliest deadline first;
 * *n gets how many were written and *total how many are overdue.
 * HOV_ENOMEM (nothing written). */
HOV_NODISCARD hov_err overdue_list(const overdue *o, uint64_t now_ms,
                                   overdue_item *out, size_t max, size_t *n,
                                   size_t *total, hov_error *err);

/* Requests tracked (waiting for at least one receiver). */
size_t overdue_tracked(const overdue *o);

#endif
