/* Stateless checks of an event published to the hub (domain brief 3, 4).
 *
 * validate_event looks at one decoded event and nothing else: the schema,
 * identifiers (NHS number check digit, ODS and local: codes, UUIDs),
 * timestamps and dates, code tables, required fields and length limits.
 * What needs configuration or the store is the hub's next step, not this
 * module's: agency permissions (source.org in the sender's list), whether
 * destinations are configured, consent for voluntary destinations, whether
 * in_reply_to names an event delivered to the sender, and whether an outcome
 * status fits the answered event's type (validate_outcome_status_allowed
 * gives the table for that check).
 *
 * Lengths are counted in Unicode characters (code points), and every string
 * field must be valid UTF-8. A string that protobuf-c decoded with an
 * embedded NUL arrives here already cut short; that cannot be seen from the
 * decoded event.
 *
 * All functions are pure and thread-safe, except that validate_event reads
 * the wall clock (a date of birth may not be after today in Europe/London).
 */
#ifndef HANDOVER_HUB_VALIDATE_H
#define HANDOVER_HUB_VALIDATE_H

#include <stdbool.h>

#include "handover.pb-c.h"
#include "handover/err.h"

typedef struct validate_opts {
    /* Accept NHS numbers in the 999 test range (demo and tests); off in
     * production, where they are refused. */
    bool allow_test_nhs_numbers;
} validate_opts;

/* Check ev field by field in the order of proto/handover.proto; the first
 * failure wins. Borrows ev and opts for the call; opts may be NULL, which
 * means all options off (the production setting). Fields the hub sets
 * (received_at, source.agency, patient.age_years) are ignored.
 * On failure err holds one sentence naming the field by its JSON dotted
 * name, for example "patient.date_of_birth 2099-01-01 is in the future".
 * Echoed values are cut to a few dozen characters; free text is never
 * echoed. The caller Naks the event with the returned code:
 *   HOV_EMISSING    a required field is missing or empty
 *   HOV_EINVAL      bad format, length, range or combination
 *   HOV_ECODE       a code that is not in its table (service, status, ...)
 *   HOV_ENHSNUMBER  patient.nhs_number fails hov_nhs_number_check
 *   HOV_EORGCODE    an organisation code with the wrong shape */
HOV_NODISCARD hov_err validate_event(const Handover__Event *ev,
                                     const validate_opts *opts, hov_error *err);

/* Is service one of the referral service codes (domain 3.5)? */
bool validate_service_known(const char *service);

/* Is status one of the outcome statuses of domain 3.6? */
bool validate_outcome_status_known(const char *status);

/* Is status allowed as an outcome of an event of type answered_type
 * (domain 3.6)? False for an unknown status or type, and for answered type
 * "outcome" (outcomes are never answered). */
bool validate_outcome_status_allowed(const char *status,
                                     const char *answered_type);

/* Does status end the request for its receiver (domain 3.6)? True for
 * acknowledged, rejected, completed and cancelled; also for delivered and
 * collected, which end only the item line they name (an equipment order
 * closes when every line has one). False for accepted, cannot_deliver and
 * unknown statuses. */
bool validate_outcome_is_terminal(const char *status);

#endif
