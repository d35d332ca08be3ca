/* Inbound mapping: an HL7 v2 message from the trust's PAS or the community
 * nursing system to a canonical handover.Event (domain brief 5.3 to 5.6).
 *
 * map_in runs steps 4 to 7 of the domain's check order on a message that
 * hl7_parse accepted (steps 1 to 3 belong to the framer and the parser):
 * header (MSH-12 version, MSH-9 type for that version, MSH-11 processing
 * id), MSH-2, structure, then every field in message order. Step 8 (the
 * hub's rules and deduplication) is the hub's: map_in checks only what the
 * message itself can tell, so the hub's sentence stays the one authority
 * for routing, consent and conflicts.
 */
#ifndef HANDOVER_MAP_IN_H
#define HANDOVER_MAP_IN_H

#include <stdbool.h>
#include <stddef.h>

#include "handover.pb-c.h"
#include "hl7.h"

#define MAP_IN_MAX_ERRS 10

typedef struct map_in_opts {
    /* MSH-11 processing ids accepted (domain 5.3); NULL-terminated.
     * NULL: {"P", NULL}. */
    const char *const *processing_ids;
    /* Accept NHS numbers in the 999 test range (demo and tests). */
    bool allow_test_nhs_numbers;
    /* Today's Europe/London date "YYYY-MM-DD" for the date-of-birth check;
     * NULL: the real date (tests inject one). */
    const char *today;
} map_in_opts;

typedef struct map_in_result {
    /* The event, owned: every string and sub-message is malloc'd, so
     * handover__event__free_unpacked(event, NULL) frees it all (done by
     * map_in_result_free). NULL when nothing is to be published. */
    Handover__Event *event;
    /* MSH-15 or MSH-16 valued: answer CA/CE/CR, not AA/AE/AR. */
    bool enhanced;
    /* A message Handover acknowledges but does not route (ADT^A01 and
     * ADT^A04, domain 5.5): answer AA, publish nothing. */
    bool ack_only;
    /* Errors (ack 'E' or 'R'), in message order; errs[0] decides MSA-1
     * and MSA-3. Steps 4 to 6 stop at the first; step 7 collects up to
     * MAP_IN_MAX_ERRS. */
    hl7_error errs[MAP_IN_MAX_ERRS];
    size_t nerr;
    /* Things accepted with a warning (an unknown Z-segment, a verbatim
     * escape, an ambiguous local time), each a short line for the log. */
    char warnings[4][160];
    size_t nwarn;
    /* MSH-9 as "ADT^A03", for logs. */
    char type[16];
} map_in_result;

/* Map m (parsed with hl7_parse) into r (which map_in clears first).
 * Returns 0 with r->event set (or r->ack_only); -1 with r->errs when the
 * message is refused; -2 out of memory (r->errs[0] is AR 207
 * "temporarily unavailable; resend: out of memory"). Always call
 * map_in_result_free afterwards. */
int map_in(const hl7_msg *m, const map_in_opts *o, map_in_result *r);

void map_in_result_free(map_in_result *r);

#endif
