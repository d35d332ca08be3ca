/* Outcome deadlines: which receivers of requests (referrals, discharges,
 * equipment orders) still owe an outcome, and which of those are overdue
 * (domain brief 2.1 and 2.3).
 *
 * Kept in the store, not in memory: the `waiting` index (store.h) holds one
 * entry per receiver that owes an answer, keyed by its deadline, written in
 * the same transaction as the event, the outcome or the dead letter that
 * changes it. So the hub's memory does not grow with the requests nobody
 * answers (a store's worth of them), nothing needs reading at start, and the
 * overdue are the front of the index: counting them reads only them.
 *
 * A receiver is answered when any organisation of its agency sends an
 * outcome for the request (the hub accepts an outcome only from the agency
 * that received it). For an equipment order, `accepted` alone does not
 * answer the delivery deadline: any later status does (delivered,
 * cannot_deliver, collected, cancelled, rejected). A receiver whose copy is
 * in dead letters is not waited for (the dead letter is the alert); a
 * redrive waits for it again.
 *
 * Default deadlines (domain brief 2.1; per-route overrides are not yet
 * configurable): referral from occurred_at: two_hour_crisis 30 minutes,
 * urgent 24 hours, routine 7 days; a voluntary-sector receiver 7 days.
 * Discharge: 24 hours after discharge.discharged_at. Equipment order: the
 * end (23:59:59 Europe/London) of its required_by day.
 *
 * Limits: per-item tracking of equipment orders (each line delivered or
 * collected) is not done: the first outcome past `accepted` answers the
 * order. A request that is never answered stays waiting (and overdue)
 * until it is; closing one without an outcome is future work.
 *
 * Writers take the hub's write transaction; errors poison it (store.h R7).
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

/* The default outcome deadline of request ev for a receiver of agency
 * receiver, in ms since the epoch. False when ev is not a request or its
 * times cannot be read (validated events always can). */
bool overdue_due_ms(const Handover__Event *ev, config_agency receiver,
                    uint64_t *due_ms);

/* Request ev, stored as event_seq, was routed as routes says: each live
 * receiver now owes an outcome. Anything but a request is ignored. */
HOV_NODISCARD hov_err overdue_on_publish(store_txn *txn,
                                         const Handover__Event *ev,
                                         uint64_t event_seq,
                                         const route_result *routes,
                                         hov_error *err);

/* Agency from answered request req (stored as req_seq) with an outcome of
 * this status: its receivers of that agency no longer owe one (for an
 * equipment order, unless the status is only `accepted`). */
HOV_NODISCARD hov_err overdue_on_outcome(store_txn *txn,
                                         const Handover__Event *req,
                                         uint64_t req_seq, config_agency from,
                                         const char *status, hov_error *err);

/* The copy of the event stored as event_seq for dest (of agency) went to
 * dead letters (dead true), or was redriven from them (false): it is not
 * waited for while dead, and is again after a redrive unless that agency
 * has answered already. Reads the event; one that is not a request is
 * ignored. */
HOV_NODISCARD hov_err overdue_on_dead(store_txn *txn, uint64_t event_seq,
                                      const char *dest, config_agency agency,
                                      bool dead, hov_error *err);

/* Receivers overdue at now_ms (wall clock); *oldest_due (may be NULL) gets
 * the earliest deadline among them (0 when none). Reads only the overdue
 * entries. HOV_ESTORE. */
HOV_NODISCARD hov_err overdue_count(store_txn *txn, uint64_t now_ms,
                                    size_t *count, uint64_t *oldest_due,
                                    hov_error *err);

/* One receiver that has not answered by its deadline. */
typedef struct overdue_item {
    char event_id[40];
    char event_type[16];
    char priority[16];
    char dest[CONFIG_CODE_MAX];
    config_agency agency;
    uint64_t event_seq;
    uint64_t due_ms;
} overdue_item;

/* Fill out with up to max overdue receivers, earliest deadline first;
 * *n gets how many were written and *total how many are overdue.
 * HOV_ESTORE. */
HOV_NODISCARD hov_err overdue_list(store_txn *txn, uint64_t now_ms,
                                   overdue_item *out, size_t max, size_t *n,
                                   size_t *total, hov_error *err);

/* Receivers waiting for an outcome (overdue or not). */
size_t overdue_waiting(store_txn *txn);

/* Build the waiting index from the stored events, for a store written
 * before it existed, in one write transaction; marks the store so it runs
 * once. *requests gets how many requests were read. No-op (0) when the
 * store is marked already. HOV_ESTORE, HOV_ESTOREFULL, HOV_EIO. */
HOV_NODISCARD hov_err overdue_build(store *st, uint64_t *requests,
                                    hov_error *err);

#endif
