/* handover-audit replay: send events again to a destination that received
 * them, through the running hub (its status command "replay").
 *
 * For a partner that lost what it received: a restore from backup, a
 * fault on their side. Each event goes back on the destination's queue
 * with its own event id, which the adapter gives the partner as the
 * idempotency key, so a partner that still has it keeps one copy. The hub
 * records each replay in the audit log with the operator's name, and
 * refuses a destination the event was never routed to, one it is still on
 * its way to, and a dead letter (redrive is for those).
 */
#ifndef HANDOVER_AUDIT_REPLAY_H
#define HANDOVER_AUDIT_REPLAY_H

#include <stdbool.h>

/* Replay event_id, or every event received on the days from..to
 * (YYYY-MM-DD, Europe/London) that was delivered to dest, to dest, as
 * operator. One answer line per event (JSON lines with json), then a
 * summary on stderr. Returns the exit code: EXIT_DONE all replayed,
 * EXIT_FOUND_BAD some refused or none found, EXIT_USAGE, EXIT_STORE no
 * hub runs or the store cannot be read. */
int replay_run(const char *dir, const char *operator, const char * event_id,
               const char *from, const char *to, const char *dest, bool json);

#endif
