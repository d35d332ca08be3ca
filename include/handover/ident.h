/* Identifiers: NHS numbers, organisation codes, postcodes and UUIDs.
 *
 * Shape checks only. A well-formed NHS number may still belong to nobody, and
 * a well-formed ODS code may not be configured: knowing the code is the real
 * check (the hub's configuration), the shape check only catches garbage
 * early (domain brief 4.1, 4.2).
 *
 * Every function here is pure and thread-safe, except hov_uuid_v4, which
 * draws from libsodium's generator (itself thread-safe). A NULL string is
 * treated as empty, which no check accepts.
 */
#ifndef HANDOVER_IDENT_H
#define HANDOVER_IDENT_H

#include <stdbool.h>
#include <stddef.h>

#include "handover/err.h"

/* Check an NHS number: exactly 10 ASCII digits, not ten identical digits,
 * a valid Modulus 11 check digit (domain 4.1), and, when allow_test is
 * false, not in the 999 test range. Borrows s for the call.
 * Returns HOV_OK, or HOV_ENHSNUMBER with a sentence in err such as
 *   "NHS number '12345' is not 10 digits"
 *   "NHS number 1111111111 is ten identical digits"
 *   "NHS number 9991234560 has no valid check digit (its first nine digits
 *    give 10)"
 *   "NHS number 9992024683 fails the Modulus 11 check (expected check digit
 *    2)"
 *   "NHS number 9992468130 is in the 999 test range, which
 *    allow_test_nhs_numbers forbids"
 * A malformed input is echoed with at most 20 characters, non-printable
 * bytes shown as '?'. Callers that report a field prefix the field name. */
HOV_NODISCARD hov_err hov_nhs_number_check(const char *s, bool allow_test,
                                           hov_error *err);

/* Is s an ODS code: 1 to 9 of [A-Z0-9]? */
bool hov_ods_code_valid(const char *s);

/* Is s an organisation reference code (domain 3.2): an ODS code, or "local:"
 * followed by 1 to 32 of [A-Za-z0-9-]? */
bool hov_org_code_valid(const char *s);

/* Is s a UK postcode in canonical form: outward code A9, A99, AA9, AA99, A9A
 * or AA9A, then an optional single space, then inward code 9AA; upper case
 * only (domain 4.3)? Input normalisation (trim, upper-case, insert the space)
 * is the adapters' job. */
bool hov_postcode_valid(const char *s);

/* Normalise a postcode as partners write it (domain 4.3): drop blanks,
 * upper-case, one space before the inward code ("fe78qt " gives
 * "FE7 8QT"). The result still needs hov_postcode_valid. Returns a new
 * string (free it), or NULL when out of memory. */
char *hov_postcode_normalise(const char *s);

/* Is s a UUID in lowercase 8-4-4-4-12 hex form? Any version is accepted
 * (partner events carry version 5 ids, Handover's own are version 4). */
bool hov_uuid_valid(const char *s);

/* Write a random version 4 UUID, lowercase, NUL-terminated, into out.
 * Aborts the process if libsodium cannot be initialised: without a random
 * source no event id can be made, and nothing useful can continue. */
void hov_uuid_v4(char out[37]);

/* The namespace of partner event ids (domain 3.8). */
#define HOV_EVENT_ID_NS "81cc65e4-1b28-468f-9c7f-dbdf6ac1cee7"

/* Write the version 5 UUID (RFC 9562: SHA-1 over the namespace and name)
 * for name_len bytes of name in namespace ns (8-4-4-4-12 form) into out,
 * lowercase. Partner event ids are made this way so a resend carries the
 * same id: hov_uuid_v5(HOV_EVENT_ID_NS, "hl7v2|RZZ01|FELLGATE-PAS|
 * PAS000187342", ...) gives e09339b8-a502-5cfc-af76-7873b23f04b6.
 * HOV_EINVAL: ns is not a UUID; HOV_ESYS: the hash failed. */
HOV_NODISCARD hov_err hov_uuid_v5(const char *ns, const void *name,
                                  size_t name_len, char out[37],
                                  hov_error *err);

#endif
