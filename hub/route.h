/* Routing: which organisations receive an event, and what each may see.
 *
 * route_match applies the configuration's rules (hub/config.h) to a
 * validated event. Every matching rule adds its destinations, and the
 * event's own `destinations` are always added (an unknown code is refused).
 * A destination that routing derives from the content but cannot reach (a
 * discharge's registered practice that is missing or not configured) is not
 * a refusal: the event goes to its other receivers, that copy goes straight
 * to dead letters with the reason, and the Ack carries a warning (domain
 * brief §2.1): failing to share harms people too.
 *
 * Views (domain brief §3.9) are applied at delivery by route_view_pack; the
 * stored event keeps every field.
 */
#ifndef HUB_ROUTE_H
#define HUB_ROUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "handover.pb-c.h"
#include "handover/err.h"

#define ROUTE_MAX_DESTS 16

typedef struct route_dest {
    char code[CONFIG_CODE_MAX]; /* organisation code */
    config_agency agency;
    char view[24];
    bool dead;        /* unreachable: straight to dead letters */
    char reason[160]; /* why, when dead */
} route_dest;

typedef struct route_result {
    route_dest dest[ROUTE_MAX_DESTS];
    size_t n;
    char warning[256]; /* for the Ack; empty when all copies go */
} route_result;

/* The answered event, for outcomes (looked up by the caller in the store). */
typedef struct route_reply {
    const char *source_org; /* organisation that published it */
    const char *event_type; /* its type */
} route_reply;

/* Destinations of ev. reply is required for outcomes, ignored otherwise.
 * Borrows everything; fills *out.
 * HOV_EUNKNOWNDEST: a requested destination is not configured.
 * HOV_ENOROUTE: no rule gives any destination.
 * HOV_EMISSING: a voluntary-sector referral names no organisation.
 * HOV_ECONSENT: a referral to a voluntary organisation without explicit (or
 *   best-interests) consent recorded. */
HOV_NODISCARD hov_err route_match(const config *c, const Handover__Event *ev,
                                  const route_reply *reply, route_result *out,
                                  hov_error *err);

/* The view an organisation receives (its own setting, else its agency's
 * default: gp and nursing "full", social "council", voluntary "voluntary"). */
const char *route_view_of(const config_org *org);

/* Serialise the stored event bytes in view. For "full" *out points at
 * stored itself and *owned is false; otherwise *out is malloc'd, *owned is
 * true and the caller frees it. today (YYYY-MM-DD) is used for age_years.
 * HOV_EMALFORMED: stored is not an Event. HOV_ENOMEM. HOV_ECONFIG: unknown
 * view name. */
HOV_NODISCARD hov_err route_view_pack(const char *view, const uint8_t *stored,
                                      size_t len, const char *today,
                                      const uint8_t **out, size_t *outlen,
                                      bool *owned, hov_error *err);

#endif
