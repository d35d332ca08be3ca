/* handover-audit what-if: route the events of a date range again with
 * another configuration (its orgs and routes) and show every event that
 * would have gone to different destinations, or been refused.
 *
 * For an integration team about to change the routing: run last month
 * through the new file and read what would have changed before the hub
 * uses it. Nothing is sent and the store is only read; the read is
 * recorded in the audit log like a trace, because it reads patients'
 * events (what it prints names no patient: event ids, types, services and
 * organisation codes only).
 */
#ifndef HANDOVER_AUDIT_WHATIF_H
#define HANDOVER_AUDIT_WHATIF_H

#include <stdbool.h>

/* Route the events received on the days from..to (YYYY-MM-DD,
 * Europe/London) with the configuration in routes_path and compare with
 * where each went. Text, or JSON lines with json. Returns the exit code:
 * EXIT_DONE none would differ, EXIT_FOUND_BAD some would, EXIT_USAGE
 * (also a configuration that does not load), EXIT_STORE. */
int whatif_run(const char *dir, const char *auditor, const char *routes_path,
               const char *from, const char *to, bool json);

#endif
