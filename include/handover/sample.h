/* Valid sample events for the demo, the benchmark and the tests.
 *
 * A hov_sample holds one Handover__Event together with every sub-message,
 * array and string buffer the event points into, so filling one allocates
 * nothing and there is nothing to free. The values follow the cast of
 * samples/README.md (Edith Harrowgate 9992468130, 1938-04-17, FE7 8QT, and
 * the others), with timestamps taken from the clock so that deadlines and
 * "today" checks behave as for live traffic.
 *
 * Caveats:
 * - The event points into its own struct. Do not copy a hov_sample by value
 *   (the copy's event would still point into the original); fill another
 *   one with hov_sample_init instead.
 * - Tests may point any field of s->ev (or its sub-messages) at their own
 *   strings to break it on purpose; those strings must then outlive every
 *   use of s. The setters below copy what they are given.
 * - A hov_sample is about 10 KiB (the padding buffer): fine on a thread
 *   stack, not in a deeply recursive one.
 * Not thread-safe per object; separate objects may be used from separate
 * threads.
 */
#ifndef HANDOVER_SAMPLE_H
#define HANDOVER_SAMPLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "handover.pb-c.h"

#define HOV_SAMPLE_MAX_DEST  4
#define HOV_SAMPLE_MAX_ITEMS 3
#define HOV_SAMPLE_PAD_MAX   8000 /* clinical_details' limit (domain 3.1) */

/* Copied codes: "local:" plus 32 characters fits in 40 with the NUL. */
#define HOV_SAMPLE_CODE_CAP 40

typedef struct hov_sample {
    Handover__Event ev;

    Handover__Source source;
    Handover__OrgRef source_org;
    Handover__Person author;

    Handover__OrgRef dest[HOV_SAMPLE_MAX_DEST];
    Handover__OrgRef *dest_ptrs[HOV_SAMPLE_MAX_DEST];

    Handover__Patient patient;
    char *given_names[2];
    char *address_lines[3];

    Handover__Consent consent;

    Handover__Referral referral;

    Handover__Discharge discharge;
    Handover__DischargeDestination discharge_dest;
    Handover__FollowUp follow_up[2];
    Handover__FollowUp *follow_up_ptrs[2];
    Handover__Person clinician;

    Handover__EquipmentOrder order;
    Handover__EquipmentItem items[HOV_SAMPLE_MAX_ITEMS];
    Handover__EquipmentItem *item_ptrs[HOV_SAMPLE_MAX_ITEMS];
    Handover__Address delivery_address;
    Handover__Person prescriber;

    Handover__Outcome outcome;
    Handover__OutcomeItem outcome_item;
    Handover__OutcomeItem *outcome_item_ptrs[1];

    /* String storage the event points into. */
    char event_id[37];
    char correlation_id[37];
    char in_reply_to[37];
    char nhs_number[16];
    char occurred_at[32];
    char admitted_at[32];
    char consent_recorded_at[40];
    char required_by[11];
    char source_ref[HOV_SAMPLE_CODE_CAP];
    char source_code[HOV_SAMPLE_CODE_CAP];
    char dest_codes[HOV_SAMPLE_MAX_DEST][HOV_SAMPLE_CODE_CAP];
    char registered_gp[HOV_SAMPLE_CODE_CAP];
    char order_ref[HOV_SAMPLE_CODE_CAP];
    char service[HOV_SAMPLE_CODE_CAP];
    char consent_basis[HOV_SAMPLE_CODE_CAP];
    char status[HOV_SAMPLE_CODE_CAP];
    char pad[HOV_SAMPLE_PAD_MAX + 1]; /* clinical_details filler */
} hov_sample;

/* Fill s with a valid event of type "referral", "discharge",
 * "equipment_order" or "outcome" (any other type gives a referral) for the
 * patient with NHS number nhs: a cast member's details when nhs is in the
 * cast, Edith Harrowgate's with nhs otherwise; NULL picks 9992468130. Borrows
 * type and nhs for the call (nhs is copied, at most 15 characters).
 * event_id is a fresh random UUID and correlation_id equals it.
 * Defaults: referral from Z99001 (gp) for service district-nursing;
 * discharge from RZZ01, pathway 1, registered_gp Z99001; equipment_order
 * from RZZ40 to 8ZZ99, three items; outcome from RZZ40, status accepted,
 * whose in_reply_to the caller must set with hov_sample_set_reply before it
 * validates. occurred_at is now. */
void hov_sample_init(hov_sample *s, const char *type, const char *nhs);

/* Give s a fresh random event_id (and correlation_id, except on an outcome,
 * whose correlation_id belongs to the journey it answers). For sending the
 * same content many times, as the benchmark does. */
void hov_sample_new_id(hov_sample *s);

/* Make s's outcome answer the event in_reply_to (copied; a lowercase UUID)
 * with status (NULL keeps the current one). correlation_id is set to
 * in_reply_to, which is right when the answered event began its journey,
 * as every sample request does. A status that needs a reason code gets a
 * typical one (rejected: not-eligible, cannot_deliver: item-out-of-stock,
 * cancelled: no-longer-required), one that needs items gets one bed line,
 * and others get neither. No effect unless s is an outcome. */
void hov_sample_set_reply(hov_sample *s, const char *in_reply_to,
                          const char *status);

/* Set the referral's service code (copied). No effect unless s is a
 * referral. A voluntary service also needs a destination and explicit
 * consent to pass the hub's consent rule. */
void hov_sample_set_service(hov_sample *s, const char *service);

/* Set source.org.code (copied; the name is cleared). */
void hov_sample_set_source(hov_sample *s, const char *org_code);

/* Set the discharge pathway (any value, to test refusals) and the priority
 * the convention gives it: routine on pathway 0, urgent otherwise. No
 * effect unless s is a discharge. */
void hov_sample_set_pathway(hov_sample *s, int pathway);

/* Set patient.registered_gp (copied); NULL or "" removes it. */
void hov_sample_set_registered_gp(hov_sample *s, const char *ods_code);

/* Append a destination (copied). Returns false, changing nothing, when
 * HOV_SAMPLE_MAX_DEST are already set. */
bool hov_sample_add_destination(hov_sample *s, const char *org_code);

/* Remove every destination. */
void hov_sample_clear_destinations(hov_sample *s);

/* Attach consent with basis and recorded_at (both copied; recorded_at may
 * be NULL for implied_direct_care). basis NULL removes the consent block. */
void hov_sample_set_consent(hov_sample *s, const char *basis,
                            const char *recorded_at);

/* Fill clinical_details so that the packed event is target_packed_bytes
 * long, or as near as the field allows: it stays empty when the event is
 * already that big and holds at most HOV_SAMPLE_PAD_MAX characters. Call it
 * after the other setters, which change the size. */
void hov_sample_set_size(hov_sample *s, size_t target_packed_bytes);

/* Serialise s->ev into a buffer from malloc; the caller frees it with
 * free(). Stores the length in *len. Returns NULL if out of memory. */
uint8_t *hov_sample_pack(const hov_sample *s, size_t *len);

#endif
