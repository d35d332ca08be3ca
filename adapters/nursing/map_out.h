/* Outbound mapping: a canonical handover.Event delivered to the `nursing`
 * agency to the HL7 v2 message its partner system takes (domain 5.4, 5.5).
 *
 * The message control id (MSH-10) is the first 20 hex digits of the event
 * id without hyphens (domain 3.8), so a redelivery is the same message and
 * the partner recognises it; an ACK is matched to its message the same way
 * (MSA-2).
 */
#ifndef HANDOVER_MAP_OUT_H
#define HANDOVER_MAP_OUT_H

#include <stddef.h>
#include <stdint.h>

#include "handover.pb-c.h"

typedef struct map_out_opts {
    const char *app;           /* MSH-3; NULL: "HANDOVER" */
    const char *facility;      /* MSH-4; NULL: "HANDOVER" */
    const char *recv_app;      /* MSH-5: the partner's application */
    const char *recv_facility; /* MSH-6: the partner's facility code */
    uint64_t now_ms;           /* MSH-7 */
    /* Added with map_out.c. 0 above means "read the clock". */
    /* Organisation codes of the community equipment service, NULL-
     * terminated: an outcome from one of them answers an equipment order
     * (ORM^O01 SC). NULL: {"8ZZ99", NULL}. */
    const char *const *equipment_orgs;
    /* The organisation this copy is delivered to (Deliver.destination).
     * REF^I12 names it in PRD RT; RRI^I12 names it in PRD RP, as the
     * referrer the outcome answers. NULL: REF^I12 names every one of
     * ev->destinations, RRI^I12 has no PRD RP. */
    const char *destination;
    /* The event_type of the event an outcome answers ("referral",
     * "discharge", "equipment_order") when the caller knows it; it then
     * decides the message. NULL: inferred as map_out says. */
    const char *answered_type;
} map_out_opts;

/* The control id for event_id: 20 lowercase hex digits, into out. */
void map_out_control_id(const char *event_id, char out[21]);

/* Build the message for ev: a referral as REF^I12, a discharge as ADT^A03,
 * an outcome of a referral as RRI^I12, an outcome of an equipment order as
 * ORM^O01 with ORC-1 SC; all v2.4, UTF-8, original mode. Returns 0 with
 * *out and *len (owned, malloc'd); -1 with why filled when the event cannot be
 * expressed (an event type the nursing system does not take), which the
 * caller settles rejected; -2 out of memory.
 *
 * Added with map_out.c: o may be NULL (defaults, the clock for MSH-7).
 * RRI^I12 is the exception to original mode: domain 5.5 sends it in
 * enhanced mode (MSH-15 AL, MSH-16 NE), so its answer is a commit ACK (CA).
 * The outcome event does not say what it answers; unless o->answered_type
 * does, an outcome from an equipment_orgs code, or with status delivered,
 * cannot_deliver or collected, or with items, answers an equipment order
 * (ORM^O01 SC); status acknowledged answers a discharge and gives -1 (no
 * message agreed with the trust); any other answers a referral (RRI^I12).
 * A present timestamp or date that does not parse gives -1 naming the
 * field (never its value: it may be the date of birth). */
int map_out(const Handover__Event *ev, const map_out_opts *o, uint8_t **out,
            size_t *len, char *why, size_t whysz);

#endif
