/* adapters/nursing/map_in: every HL7 partner sample gives the answer
 * samples/README.md claims (an event the hub's validate_event accepts, or
 * the AE/AR code and location), field by field for the samples the other
 * adapters' golden files describe; then each check of steps 4 to 7 on a
 * sample changed in one place. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handover/ident.h"
#include "hl7.h"
#include "map_in.h"
#include "validate.h"

#ifndef HANDOVER_SHARED_DIR
#define HANDOVER_SHARED_DIR HANDOVER_SOURCE_DIR "/../shared"
#endif

#define SAMPLES HANDOVER_SHARED_DIR "/samples/hl7"

/* Today is injected so that the date-of-birth check does not depend on
 * the day the suite runs (the samples are from March 2025). */
static const map_in_opts test_opts = {.allow_test_nhs_numbers = true,
                                      .today = "2025-03-20"};
static const validate_opts vopts = {.allow_test_nhs_numbers = true};

/* ------------------------------------------------------------ helpers */

/* The file's bytes, malloc'd; *len gets the length. */
static char *
read_sample(const char *rel, size_t *len)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", SAMPLES, rel);
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    cr_assert_eq(fseek(f, 0, SEEK_END), 0);
    long n = ftell(f);
    cr_assert_geq(n, 0);
    rewind(f);
    char *buf = malloc((size_t)n + 1);
    cr_assert_not_null(buf);
    cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return buf;
}

/* s with every occurrence of from replaced by to (at least one must be
 * there, so a test cannot silently change nothing). */
static char *
subst_all(const char *s, const char *from, const char *to)
{
    size_t fl = strlen(from), tl = strlen(to), count = 0;
    for (const char *p = strstr(s, from); p != NULL; p = strstr(p + fl, from))
        count++;
    cr_assert_gt(count, 0, "'%s' not found in the message", from);
    size_t n = strlen(s) + count * tl + 1;
    char *out = malloc(n);
    cr_assert_not_null(out);
    char *o = out;
    for (const char *p = s;;) {
        const char *q = strstr(p, from);
        if (q == NULL) {
            memcpy(o, p, strlen(p) + 1);
            break;
        }
        memcpy(o, p, (size_t)(q - p));
        o += q - p;
        memcpy(o, to, tl);
        o += tl;
        p = q + fl;
    }
    return out;
}

/* As subst_all, freeing s: for chains of edits. */
static char *
edit(char *s, const char *from, const char *to)
{
    char *out = subst_all(s, from, to);
    free(s);
    return out;
}

/* Parse data (which must parse) and map it. */
static int
map_bytes(const char *data, size_t len, const map_in_opts *o, map_in_result *r)
{
    hl7_msg *m = NULL;
    hl7_error perr = {0};
    int prc = hl7_parse((const uint8_t *)data, len, NULL, &m, &perr);
    cr_assert_eq(prc, 0, "hl7_parse: %c %d %s", perr.ack, perr.code, perr.text);
    int rc = map_in(m, o, r);
    /* The event owns copies: it must outlive the message. */
    hl7_msg_free(m);
    return rc;
}

static int
map_text(const char *text, map_in_result *r)
{
    return map_bytes(text, strlen(text), &test_opts, r);
}

static int
map_sample(const char *rel, map_in_result *r)
{
    size_t len;
    char *data = read_sample(rel, &len);
    int rc = map_bytes(data, len, &test_opts, r);
    free(data);
    return rc;
}

static void
expect_event(int rc, const map_in_result *r, const char *what)
{
    cr_assert_eq(rc, 0, "%s: map_in %d, first error %c %d %s: %s", what, rc,
                 r->nerr ? r->errs[0].ack : '-', r->nerr ? r->errs[0].code : 0,
                 r->nerr ? r->errs[0].loc.seg : "",
                 r->nerr ? r->errs[0].text : "");
    cr_assert_not_null(r->event, "%s: no event", what);
    hov_error err = {0};
    hov_err vrc = validate_event(r->event, &vopts, &err);
    cr_assert_eq(vrc, HOV_OK, "%s: validate_event: %s: %s", what,
                 hov_errname(vrc), err.msg);
}

static void
expect_loc(const hl7_error *e, const char *seg, unsigned seq, unsigned field)
{
    cr_assert_str_eq(e->loc.seg, seg, "location %s^%u^%u, want %s^%u^%u",
                     e->loc.seg, e->loc.seq, e->loc.field, seg, seq, field);
    cr_assert_eq(e->loc.seq, seq, "%s: seq %u, want %u", e->text, e->loc.seq,
                 seq);
    cr_assert_eq(e->loc.field, field, "%s: field %u, want %u", e->text,
                 e->loc.field, field);
}

/* map_in refused with one first error ack/code at seg^seq^field. */
static void
expect_error(int rc, const map_in_result *r, char ack, int code,
             const char *seg, unsigned seq, unsigned field)
{
    cr_assert_eq(rc, -1, "map_in %d, want -1", rc);
    cr_assert_null(r->event);
    cr_assert_geq(r->nerr, 1);
    const hl7_error *e = &r->errs[0];
    cr_assert_eq(e->ack, ack, "ack %c, want %c (%s)", e->ack, ack, e->text);
    cr_assert_eq(e->code, code, "code %d, want %d (%s)", e->code, code,
                 e->text);
    if (seg != NULL)
        expect_loc(e, seg, seq, field);
}

/* Map text and expect the one error. */
static void
text_error(const char *text, char ack, int code, const char *seg, unsigned seq,
           unsigned field, const char *needle)
{
    map_in_result r;
    int rc = map_text(text, &r);
    expect_error(rc, &r, ack, code, seg, seq, field);
    if (needle != NULL)
        cr_assert(strstr(r.errs[0].text, needle) != NULL,
                  "'%s' does not contain '%s'", r.errs[0].text, needle);
    map_in_result_free(&r);
}

/* A sample edited in place, mapped to an event. */
static char *
sample_text(const char *rel)
{
    size_t len;
    return read_sample(rel, &len);
}

#define REF_CARE "valid/ref-i12-social-care-assessment.hl7"
#define REF_VCS  "valid/ref-i12-social-prescribing-utf8-zsegments.hl7"
#define ADT_P1   "valid/adt-a03-discharge-pathway1.hl7"
#define ADT_P0   "valid/adt-a03-pathway0-no-final-cr.hl7"
#define ORM      "valid/orm-o01-equipment-order.hl7"
#define OMG      "valid/omg-o19-equipment-order-v251.hl7"
#define RRI      "outcomes/rri-i12-referral-accepted-enhanced-mode.hl7"

/* Is s the generated default, as an unset field must stay? */
static void
expect_unset(const char *s, const char *field)
{
    cr_assert_eq(s, protobuf_c_empty_string, "%s is set: '%s'", field, s);
}

/* The packed event without recorded_at: what the hub's dedupe digest
 * covers (domain 3.8). */
static uint8_t *
pack_for_digest(Handover__Event *ev, size_t *len)
{
    char *rec = ev->recorded_at;
    ev->recorded_at = (char *)protobuf_c_empty_string;
    *len = handover__event__get_packed_size(ev);
    uint8_t *buf = malloc(*len + 1);
    cr_assert_not_null(buf);
    handover__event__pack(ev, buf);
    ev->recorded_at = rec;
    return buf;
}

/* ------------------------------------------------------ valid samples */

Test(map_in, every_valid_sample_maps_and_validates, .timeout = 30)
{
    static const char *const files[] = {ADT_P1,   ADT_P0,  OMG, ORM,
                                        REF_CARE, REF_VCS, RRI};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        map_in_result r;
        int rc = map_sample(files[i], &r);
        expect_event(rc, &r, files[i]);
        cr_assert_eq(r.nerr, 0);
        cr_assert(!r.ack_only);
        map_in_result_free(&r);
        cr_assert_null(r.event);
    }
}

Test(map_in, discharge_pathway1_every_field, .timeout = 10)
{
    map_in_result r;
    int rc = map_sample(ADT_P1, &r);
    expect_event(rc, &r, ADT_P1);
    const Handover__Event *ev = r.event;
    cr_assert_str_eq(r.type, "ADT^A03");
    cr_assert(!r.enhanced);

    cr_assert_str_eq(ev->schema, "handover.event.v1");
    cr_assert_str_eq(ev->event_id, "e09339b8-a502-5cfc-af76-7873b23f04b6");
    cr_assert_str_eq(ev->event_type, "discharge");
    cr_assert_str_eq(ev->correlation_id, ev->event_id);
    expect_unset(ev->in_reply_to, "in_reply_to");
    /* EVN-6, not MSH-7 (10:15). */
    cr_assert_str_eq(ev->occurred_at, "2025-03-14T10:05:00.000Z");
    cr_assert_str_eq(ev->recorded_at, "2025-03-14T10:15:00.000Z");
    expect_unset(ev->received_at, "received_at");

    const Handover__Source *src = ev->source;
    cr_assert_str_eq(src->org->code, "RZZ01");
    expect_unset(src->org->name, "source.org.name");
    expect_unset(src->agency, "source.agency");
    cr_assert_str_eq(src->system, "FELLGATE-PAS");
    cr_assert_str_eq(src->ref, "V250301042");
    cr_assert_not_null(src->author);
    cr_assert_str_eq(src->author->name, "JANICE BELL");
    cr_assert_str_eq(src->author->id, "WC0412");
    expect_unset(src->author->role, "author.role");
    expect_unset(src->author->phone, "author.phone");
    expect_unset(src->author->org, "author.org");
    cr_assert_eq(ev->n_destinations, 0);

    const Handover__Patient *p = ev->patient;
    cr_assert_str_eq(p->nhs_number, "9992468130");
    cr_assert_str_eq(p->nhs_number_status, "01");
    cr_assert_str_eq(p->family_name, "HARROWGATE");
    cr_assert_eq(p->n_given_names, 2);
    cr_assert_str_eq(p->given_names[0], "EDITH");
    cr_assert_str_eq(p->given_names[1], "MAY");
    cr_assert_str_eq(p->title, "MRS");
    cr_assert_str_eq(p->date_of_birth, "1938-04-17");
    cr_assert_str_eq(p->sex, "female");
    cr_assert_eq(p->n_address_lines, 3);
    cr_assert_str_eq(p->address_lines[0], "14 Cragside Terrace");
    cr_assert_str_eq(p->address_lines[1], "Brackenby");
    cr_assert_str_eq(p->address_lines[2], "Fellgate");
    cr_assert_str_eq(p->postcode, "FE7 8QT");
    cr_assert_str_eq(p->phone, "01632 960412");
    cr_assert_str_eq(p->registered_gp, "Z99001");
    cr_assert_eq(p->age_case, HANDOVER__PATIENT__AGE__NOT_SET);

    cr_assert_str_eq(ev->priority, "urgent"); /* pathway 1 (domain 3.5) */
    expect_unset(ev->reason, "reason");
    expect_unset(ev->clinical_details, "clinical_details");
    expect_unset(ev->social_details, "social_details");
    expect_unset(ev->access_notes, "access_notes");
    cr_assert_null(ev->consent);

    cr_assert_eq(ev->body_case, HANDOVER__EVENT__BODY_DISCHARGE);
    const Handover__Discharge *d = ev->discharge;
    cr_assert_str_eq(d->admitted_at, "2025-03-01T09:30:00.000Z");
    cr_assert_str_eq(d->discharged_at, "2025-03-14T10:05:00.000Z");
    cr_assert_eq(d->pathway_present_case,
                 HANDOVER__DISCHARGE__PATHWAY_PRESENT_PATHWAY);
    cr_assert_eq(d->pathway, 1);
    cr_assert_str_eq(d->method, "1");
    cr_assert_not_null(d->destination);
    cr_assert_str_eq(d->destination->code, "19");
    cr_assert_str_eq(d->destination->description, "Usual place of residence");
    cr_assert_eq(d->destination->n_address_lines, 0);
    expect_unset(d->destination->postcode, "destination.postcode");
    cr_assert_str_eq(d->site, "RZZ01");
    cr_assert_str_eq(d->ward, "WARD 12");
    cr_assert_not_null(d->responsible_clinician);
    cr_assert_str_eq(d->responsible_clinician->name, "EMEKA OKONJO");
    cr_assert_str_eq(d->responsible_clinician->id, "C9999998");
    cr_assert_eq(d->n_diagnoses, 2);
    cr_assert_str_eq(d->diagnoses[0]->code, "J189");
    cr_assert_str_eq(d->diagnoses[0]->system, "I10");
    cr_assert_str_eq(d->diagnoses[0]->text, "Pneumonia, unspecified");
    cr_assert_str_eq(d->diagnoses[1]->code, "L891");
    cr_assert_str_eq(d->diagnoses[1]->text,
                     "Stage II decubitus ulcer and pressure area");
    cr_assert_eq(d->n_follow_up, 2);
    cr_assert_str_eq(d->follow_up[0]->service, "district-nursing");
    cr_assert_str_eq(d->follow_up[0]->description,
                     "review stage 2 sacral pressure ulcer within 48 hours "
                     "of discharge; dressing every 3 days");
    expect_unset(d->follow_up[0]->due_by, "follow_up.due_by");
    expect_unset(d->follow_up[0]->start, "follow_up.start");
    cr_assert_str_eq(d->follow_up[1]->service, "reablement");
    cr_assert_str_eq(d->follow_up[1]->description,
                     "4 calls a day (washing & dressing, meals, medication "
                     "prompts) from the day of discharge");
    cr_assert_str_eq(d->medications_summary,
                     "NEW: Amoxicillin 500 mg three times a day for 2 more "
                     "days\nCHANGED: Furosemide 40 mg once a day (was 20 "
                     "mg)\nUNCHANGED: Bisoprolol 2.5 mg once a day");
    cr_assert_eq(r.nwarn, 0);
    map_in_result_free(&r);
}

Test(map_in, discharge_pathway0_is_routine, .timeout = 10)
{
    map_in_result r;
    int rc = map_sample(ADT_P0, &r);
    expect_event(rc, &r, ADT_P0);
    const Handover__Event *ev = r.event;
    cr_assert_str_eq(ev->event_id, "1f77db6f-8a5d-514f-9a74-16a2aae1843f");
    cr_assert_eq(ev->discharge->pathway, 0);
    cr_assert_str_eq(ev->priority, "routine");
    cr_assert_str_eq(ev->patient->registered_gp, "Z99002");
    /* No EVN-5: no author; PV1-7 empty: no clinician. */
    cr_assert_null(ev->source->author);
    cr_assert_null(ev->discharge->responsible_clinician);
    cr_assert_str_eq(ev->patient->phone, "07700 900916");
    cr_assert_str_eq(ev->patient->address_lines[0], "Flat 2, 41 Tanners Court");
    cr_assert_str_eq(ev->patient->address_lines[1], "Fellgate");
    map_in_result_free(&r);
}

Test(map_in, referral_to_social_care, .timeout = 10)
{
    map_in_result r;
    int rc = map_sample(REF_CARE, &r);
    expect_event(rc, &r, REF_CARE);
    const Handover__Event *ev = r.event;
    cr_assert_str_eq(ev->event_id, "bc5c22e3-bee9-5bb0-b1fa-eb92255781e0");
    cr_assert_str_eq(ev->event_type, "referral");
    cr_assert_str_eq(ev->correlation_id, ev->event_id);
    /* RF1-7 is a date alone: 00:00 Europe/London (GMT in March). */
    cr_assert_str_eq(ev->occurred_at, "2025-03-14T00:00:00.000Z");
    cr_assert_str_eq(ev->source->ref, "CN-REF-20250314-0031");
    cr_assert_str_eq(ev->source->author->name, "SARAH KNOWLES");
    cr_assert_str_eq(ev->source->author->id, "99Z1234Z");
    cr_assert_str_eq(ev->source->author->phone, "01632 960118");
    cr_assert_eq(ev->n_destinations, 1);
    cr_assert_str_eq(ev->destinations[0]->code, "Z9Z9Z");
    cr_assert_str_eq(ev->destinations[0]->name, "ADULT SOCIAL CARE FRONT DOOR");
    cr_assert_str_eq(ev->priority, "routine");
    cr_assert_str_eq(ev->referral->service, "adult-social-care-assessment");
    cr_assert_str_eq(ev->reason,
                     "Lives alone and struggling with personal care since "
                     "his stroke in November. Asks for help with bathing & "
                     "dressing; his daughter lives 40 miles away and helps "
                     "at weekends.");
    cr_assert_str_eq(ev->clinical_details,
                     "Left-sided weakness; walks indoors with a frame. Two "
                     "falls in the past month, no injury. Uses pads at "
                     "night.");
    cr_assert_str_eq(ev->access_notes,
                     "Ring the bell and wait: he is slow to reach the door. "
                     "No pets.");
    expect_unset(ev->social_details, "social_details");
    /* Repeated PID-13: the first PRN. */
    cr_assert_str_eq(ev->patient->phone, "01632 960733");
    cr_assert_str_eq(ev->patient->sex, "male");
    cr_assert_null(ev->consent);
    map_in_result_free(&r);
}

Test(map_in, social_prescribing_utf8_consent_and_zsegment, .timeout = 10)
{
    map_in_result r;
    int rc = map_sample(REF_VCS, &r);
    expect_event(rc, &r, REF_VCS);
    const Handover__Event *ev = r.event;
    cr_assert_str_eq(ev->event_id, "25e14237-735f-51b9-b0fb-c87ec41a3aae");
    cr_assert_str_eq(ev->patient->family_name, "\xc3\x93 BRIAIN"); /* Ó */
    cr_assert_eq(ev->patient->n_given_names, 1);
    cr_assert_str_eq(ev->patient->given_names[0], "ZO\xc3\x8b"); /* ZOË */
    cr_assert_str_eq(ev->patient->title, "MS");
    cr_assert_eq(ev->patient->n_address_lines, 3);
    cr_assert_str_eq(ev->patient->address_lines[0], "Flat 3, Wansbeck House");
    cr_assert_str_eq(ev->patient->postcode, "FE7 2QS");
    cr_assert_eq(ev->n_destinations, 1);
    cr_assert_str_eq(ev->destinations[0]->code, "local:VCS-0002");
    cr_assert_str_eq(ev->destinations[0]->name, "BRACKENBY BEFRIENDERS");
    cr_assert_str_eq(ev->referral->service, "social-prescribing");
    cr_assert_str_eq(ev->source->author->name, "FUNMI ADEBAYO");
    cr_assert_str_eq(ev->reason,
                     "Feels isolated since moving to Brackenby to be near "
                     "her son. Would like a weekly befriending visit and "
                     "details of the Thursday coffee & chat group.");
    cr_assert_str_eq(ev->social_details, "Prefers a phone call after 10:00. "
                                         "Speaks English and Irish.");
    cr_assert_not_null(ev->consent);
    cr_assert_str_eq(ev->consent->basis, "explicit");
    cr_assert_str_eq(ev->consent->recorded_at, "2025-03-14T13:30:00.000Z");
    cr_assert_str_eq(ev->consent->recorded_by, "FUNMI ADEBAYO");
    cr_assert_str_eq(ev->consent->notes,
                     "Agreed at home visit to share name, contact details "
                     "and reason for referral with Brackenby Befrienders");
    /* ZU1 is ignored, with a warning for the log. */
    cr_assert_eq(r.nwarn, 1);
    cr_assert(strstr(r.warnings[0], "ZU1") != NULL, "%s", r.warnings[0]);
    map_in_result_free(&r);
}

Test(map_in, orm_equipment_order_three_items, .timeout = 10)
{
    map_in_result r;
    int rc = map_sample(ORM, &r);
    expect_event(rc, &r, ORM);
    const Handover__Event *ev = r.event;
    cr_assert_str_eq(ev->event_id, "d745de58-a690-5946-975d-ed6388248d9c");
    cr_assert_str_eq(ev->event_type, "equipment_order");
    cr_assert_str_eq(ev->occurred_at, "2025-03-14T15:15:00.000Z"); /* ORC-9 */
    cr_assert_str_eq(ev->source->ref, "CN-ORD-88120");
    cr_assert_str_eq(ev->source->author->name, "SARAH KNOWLES");
    cr_assert_str_eq(ev->source->author->id, "99Z1234Z");
    cr_assert_str_eq(ev->access_notes,
                     "Key safe fitted: the code will be given by phone to the "
                     "driver on the day. Small dog, shut in the kitchen for "
                     "deliveries. Ground-floor bedroom; bedroom doorway 72 cm "
                     "wide.");
    /* Friday 14 March, needed Monday 17th: the next working day. */
    cr_assert_str_eq(ev->priority, "urgent");
    const Handover__EquipmentOrder *o = ev->equipment_order;
    cr_assert_str_eq(o->action, "deliver");
    cr_assert_str_eq(o->order_ref, "CN-ORD-88120");
    cr_assert_str_eq(o->required_by, "2025-03-17");
    cr_assert_eq(o->n_items, 3);
    static const char *const codes[] = {"BED-PROF-01", "MATT-DYN-AIR",
                                        "COMMODE-STD"};
    static const char *const descs[] = {
        "Profiling bed, electric, with side rails",
        "Dynamic air mattress replacement system, high risk",
        "Commode, static, padded seat"};
    for (size_t i = 0; i < 3; i++) {
        const Handover__EquipmentItem *it = o->items[i];
        char ref[32];
        snprintf(ref, sizeof ref, "CN-ORD-88120-%zu", i + 1);
        cr_assert_eq(it->line, i + 1);
        cr_assert_str_eq(it->item_code, codes[i]);
        cr_assert_str_eq(it->description, descs[i]);
        cr_assert_eq(it->quantity, 1);
        cr_assert_str_eq(it->line_ref, ref);
    }
    /* The GI note after RQD^2 belongs to that line. */
    expect_unset(o->items[0]->notes, "items[0].notes");
    cr_assert_str_eq(o->items[1]->notes,
                     "Waterlow score 22; category 2 pressure ulcer to "
                     "sacrum. Deliver with the bed if possible.");
    expect_unset(o->items[2]->notes, "items[2].notes");
    cr_assert_eq(o->delivery_address->n_lines, 2);
    cr_assert_str_eq(o->delivery_address->lines[0], "22 Beech Grove");
    cr_assert_str_eq(o->delivery_address->lines[1], "Croxwell");
    cr_assert_str_eq(o->delivery_address->postcode, "FE4 3LW");
    cr_assert_str_eq(o->prescriber->name, "SARAH KNOWLES");
    cr_assert_str_eq(o->prescriber->org, "RZZ40");
    cr_assert_str_eq(o->prescriber->phone, "01632 960118");
    cr_assert_eq(o->n_collect_assets, 0);
    map_in_result_free(&r);
}

Test(map_in, omg_equipment_order_two_items, .timeout = 10)
{
    map_in_result r;
    int rc = map_sample(OMG, &r);
    expect_event(rc, &r, OMG);
    const Handover__Event *ev = r.event;
    cr_assert_str_eq(ev->event_id, "6b2714c6-a11e-5010-9314-a3e0c972992f");
    cr_assert_str_eq(ev->occurred_at, "2025-03-13T09:40:00.000Z");
    cr_assert_str_eq(ev->priority, "routine"); /* TQ1-9 R */
    const Handover__EquipmentOrder *o = ev->equipment_order;
    cr_assert_str_eq(o->order_ref, "EPR-ORD-5531");
    cr_assert_str_eq(o->required_by, "2025-03-18");
    cr_assert_eq(o->n_items, 2);
    cr_assert_str_eq(o->items[0]->item_code, "HOIST-MOB-180");
    cr_assert_str_eq(o->items[0]->description,
                     "Mobile hoist, 180 kg safe working load");
    cr_assert_eq(o->items[0]->quantity, 1);
    cr_assert_eq(o->items[0]->line, 1);
    cr_assert_str_eq(o->items[0]->line_ref, "EPR-ORD-5531-1");
    cr_assert(
        strncmp(o->items[0]->notes, "Bed-bound after spinal surgery", 30) == 0,
        "%s", o->items[0]->notes);
    cr_assert_str_eq(o->items[1]->item_code, "SLING-FB-L");
    cr_assert_eq(o->items[1]->quantity, 2);
    cr_assert_eq(o->items[1]->line, 2);
    cr_assert_str_eq(o->items[1]->line_ref, "EPR-ORD-5531-2");
    cr_assert_str_eq(o->prescriber->name, "PRIYA NAIR");
    cr_assert_str_eq(o->prescriber->id, "OT999999");
    cr_assert_str_eq(o->prescriber->org, "RZZ01");
    expect_unset(ev->clinical_details, "clinical_details");
    map_in_result_free(&r);
}

Test(map_in, rri_outcome_accepted, .timeout = 10)
{
    map_in_result r;
    int rc = map_sample(RRI, &r);
    expect_event(rc, &r, RRI);
    cr_assert(r.enhanced, "MSH-15 AL, MSH-16 NE: enhanced mode");
    const Handover__Event *ev = r.event;
    cr_assert_str_eq(ev->event_type, "outcome");
    cr_assert_str_eq(ev->in_reply_to, "ae41b2a2-c361-59f0-b094-ae08febec1f6");
    /* The hub copies it from the answered event. */
    expect_unset(ev->correlation_id, "correlation_id");
    cr_assert(hov_uuid_valid(ev->event_id));
    cr_assert_str_eq(ev->occurred_at, "2025-03-15T09:10:00.000Z"); /* RF1-9 */
    cr_assert_str_eq(ev->source->org->code, "RZZ40");
    cr_assert_str_eq(ev->source->ref, "CN-REF-20250315-0007");
    /* CP: the nurse who accepted it, not the referring GP. */
    cr_assert_str_eq(ev->source->author->name, "CLAIRE DOBBIN");
    cr_assert_str_eq(ev->source->author->id, "99Z5555Z");
    cr_assert_eq(ev->n_destinations, 0);
    expect_unset(ev->priority, "priority");
    cr_assert_str_eq(ev->patient->nhs_number, "9996118428");
    cr_assert_eq(ev->body_case, HANDOVER__EVENT__BODY_OUTCOME);
    cr_assert_str_eq(ev->outcome->status, "accepted");
    expect_unset(ev->outcome->reason_code, "reason_code");
    /* The planned date is only in free text: not guessed. */
    expect_unset(ev->outcome->planned_for, "planned_for");
    cr_assert(strncmp(ev->outcome->reason_text, "Accepted by the Aldercote",
                      25) == 0);
    map_in_result_free(&r);
}

/* --------------------------------------------------------------- pairs */

Test(map_in, duplicate_control_id_pairs, .timeout = 10)
{
    static const char *const files[] = {
        "pairs/duplicate-control-id/1-original.hl7",
        "pairs/duplicate-control-id/2-resend-identical.hl7",
        "pairs/duplicate-control-id/3-resend-new-msh7.hl7",
        "pairs/duplicate-control-id/4-conflict.hl7"};
    map_in_result r[4];
    uint8_t *packed[4];
    size_t len[4];
    for (size_t i = 0; i < 4; i++) {
        int rc = map_sample(files[i], &r[i]);
        expect_event(rc, &r[i], files[i]);
        packed[i] = pack_for_digest(r[i].event, &len[i]);
        cr_assert_str_eq(r[i].event->event_id, r[0].event->event_id);
    }
    for (size_t i = 1; i < 3; i++) {
        cr_assert_eq(len[i], len[0], "%s", files[i]);
        cr_assert_eq(memcmp(packed[i], packed[0], len[0]), 0, "%s", files[i]);
    }
    cr_assert_str_neq(r[2].event->recorded_at, r[0].event->recorded_at);
    cr_assert(len[3] != len[0] || memcmp(packed[3], packed[0], len[0]) != 0,
              "the conflict must give another digest");
    cr_assert_str_eq(r[3].event->priority, "two_hour_crisis");
    for (size_t i = 0; i < 4; i++) {
        free(packed[i]);
        map_in_result_free(&r[i]);
    }
}

Test(map_in, discharge_resend_with_new_msh7_is_the_same_event, .timeout = 10)
{
    char *a = sample_text(ADT_P1);
    char *b =
        subst_all(a, "|20250314101500+0000||ADT", "|20250314120000+0000||ADT");
    map_in_result ra, rb;
    expect_event(map_text(a, &ra), &ra, "original");
    expect_event(map_text(b, &rb), &rb, "resend");
    size_t la, lb;
    uint8_t *pa = pack_for_digest(ra.event, &la);
    uint8_t *pb = pack_for_digest(rb.event, &lb);
    cr_assert_eq(la, lb);
    cr_assert_eq(memcmp(pa, pb, la), 0);
    free(pa);
    free(pb);
    free(a);
    free(b);
    map_in_result_free(&ra);
    map_in_result_free(&rb);
}

/* -------------------------------------------------------------- broken */

typedef struct broken_case {
    const char *file;
    char ack;
    int code;
    const char *seg;
    unsigned seq, field;
    const char *text; /* exact, or NULL */
    const char *needle;
} broken_case;

Test(map_in, broken_samples_give_their_ack, .timeout = 30)
{
    static const broken_case cases[] = {
        {"broken/bad-nhs-checkdigit.hl7", 'E', 102, "PID", 1, 3,
         "PID-3: NHS number 9994127358 fails the Modulus 11 check", NULL},
        {"broken/missing-nhs-number.hl7", 'E', 101, "PID", 1, 3, NULL,
         "NHS number"},
        {"broken/truncated.hl7", 'E', 100, "PV1", 1, 0,
         "PV1 required for ADT^A03; message appears truncated", NULL},
        {"broken/bad-escape.hl7", 'E', 102, "NTE", 1, 3, NULL,
         "NTE-3: escape sequence"},
        {"broken/wrong-version.hl7", 'R', 203, "MSH", 1, 12, NULL, "2.1"},
        {"broken/unsupported-message-type.hl7", 'R', 200, "MSH", 1, 9, NULL,
         "SIU^S12"},
        {"broken/bad-date.hl7", 'E', 102, "PID", 1, 7, NULL, "PID-7"},
        {"broken/invalid-utf8.hl7", 'E', 102, "PID", 1, 5, NULL,
         "PID-5: invalid UTF-8"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const broken_case *k = &cases[i];
        map_in_result r;
        int rc = map_sample(k->file, &r);
        cr_assert_eq(rc, -1, "%s: map_in %d", k->file, rc);
        expect_error(rc, &r, k->ack, k->code, k->seg, k->seq, k->field);
        if (k->text != NULL)
            cr_assert_str_eq(r.errs[0].text, k->text, "%s", k->file);
        if (k->needle != NULL)
            cr_assert(strstr(r.errs[0].text, k->needle) != NULL,
                      "%s: '%s' lacks '%s'", k->file, r.errs[0].text,
                      k->needle);
        cr_assert_eq(r.nerr, 1, "%s: %zu errors, second: %s", k->file, r.nerr,
                     r.nerr > 1 ? r.errs[1].text : "");
        map_in_result_free(&r);
    }
}

/* Steps 1 to 3 belong to the framer and the parser: these never reach
 * map_in, and the test pins where they are answered. */
Test(map_in, broken_samples_refused_before_map_in, .timeout = 30)
{
    size_t len;
    char *data = read_sample("broken/missing-msh.hl7", &len);
    hl7_msg *m = NULL;
    hl7_error err = {0};
    cr_assert_eq(hl7_parse((const uint8_t *)data, len, NULL, &m, &err), -1);
    cr_assert_eq(err.ack, 'R');
    cr_assert_eq(err.code, 100);
    expect_loc(&err, "MSH", 1, 0);
    hl7_msg_free(m);
    free(data);

    data = read_sample("broken/lf-terminators.hl7", &len);
    m = NULL;
    memset(&err, 0, sizeof err);
    cr_assert_eq(hl7_parse((const uint8_t *)data, len, NULL, &m, &err), -1);
    cr_assert_eq(err.ack, 'E');
    cr_assert_eq(err.code, 100);
    hl7_msg_free(m);
    /* With the partner setting the same message maps. */
    hl7_parse_opts lf = {.accept_lf = true};
    m = NULL;
    cr_assert_eq(hl7_parse((const uint8_t *)data, len, &lf, &m, &err), 0);
    map_in_result r;
    int rc = map_in(m, &test_opts, &r);
    expect_event(rc, &r, "lf-terminators with accept_lf");
    map_in_result_free(&r);
    hl7_msg_free(m);
    free(data);

    /* Over the 1 MiB frame limit: the framer's AE 207 (step 1). map_in
     * has no size limit of its own and ignores the ED letter. */
    data = read_sample("broken/oversize-message.hl7", &len);
    cr_assert_gt(len, 1048576);
    rc = map_bytes(data, len, &test_opts, &r);
    expect_event(rc, &r, "oversize-message (content)");
    map_in_result_free(&r);
    free(data);
}

/* ------------------------------------------------------ step 4: header */

Test(map_in, version_first_then_type_then_processing_id, .timeout = 10)
{
    char *t = sample_text(REF_CARE);
    /* Version and type both bad: the version decides (it decides which
     * types exist). */
    char *u = subst_all(t, "|REF^I12^REF_I12|", "|SIU^S12^SIU_S12|");
    u = edit(u, "|P|2.4|", "|T|2.1|");
    text_error(u, 'R', 203, "MSH", 1, 12, "2.1");
    free(u);
    u = subst_all(t, "|REF^I12^REF_I12|", "|SIU^S12^SIU_S12|");
    u = edit(u, "|P|2.4|", "|T|2.4|");
    text_error(u, 'R', 200, "MSH", 1, 9, NULL);
    free(u);
    u = subst_all(t, "|P|2.4|", "|P|2.2|");
    text_error(u, 'R', 203, "MSH", 1, 12, NULL);
    free(u);
    u = subst_all(t, "|P|2.4|", "|P||");
    text_error(u, 'R', 203, "MSH", 1, 12, "empty");
    free(u);
    free(t);
}

Test(map_in, every_accepted_version, .timeout = 10)
{
    static const char *const v[] = {"|P|2.3|", "|P|2.3.1|", "|P|2.4|",
                                    "|P|2.5|", "|P|2.5.1|"};
    char *t = sample_text(REF_CARE);
    for (size_t i = 0; i < 5; i++) {
        char *u = subst_all(t, "|P|2.4|", v[i]);
        map_in_result r;
        expect_event(map_text(u, &r), &r, v[i]);
        map_in_result_free(&r);
        free(u);
    }
    free(t);
}

Test(map_in, unsupported_triggers, .timeout = 10)
{
    char *t = sample_text(ADT_P1);
    char *u = subst_all(t, "ADT^A03^ADT_A03", "ADT^A08^ADT_A01");
    text_error(u, 'R', 201, "MSH", 1, 9, "ADT^A01, ADT^A03 and ADT^A04");
    free(u);
    free(t);
    t = sample_text(REF_CARE);
    u = subst_all(t, "REF^I12^REF_I12", "REF^I13");
    text_error(u, 'R', 201, "MSH", 1, 9, "I13");
    free(u);
    free(t);
}

Test(map_in, omg_needs_v25, .timeout = 10)
{
    char *t = sample_text(OMG);
    char *u = subst_all(t, "|P|2.5.1|", "|P|2.4|");
    text_error(u, 'R', 200, "MSH", 1, 9, NULL);
    map_in_result r;
    map_text(u, &r);
    cr_assert_str_eq(r.errs[0].text, "OMG^O19 is accepted from v2.5; send "
                                     "v2.5 or v2.5.1, or ORM^O01");
    map_in_result_free(&r);
    free(u);
    u = subst_all(t, "|P|2.5.1|", "|P|2.5|");
    expect_event(map_text(u, &r), &r, "OMG v2.5");
    map_in_result_free(&r);
    free(u);
    free(t);
    /* ORM^O01 in every accepted version, v2.5.1 included. */
    t = sample_text(ORM);
    u = subst_all(t, "|P|2.4|", "|P|2.5.1|");
    expect_event(map_text(u, &r), &r, "ORM v2.5.1");
    map_in_result_free(&r);
    free(u);
    free(t);
}

Test(map_in, type_without_structure_component, .timeout = 10)
{
    char *t = sample_text(ADT_P1);
    char *u = subst_all(t, "ADT^A03^ADT_A03", "ADT^A03");
    map_in_result r;
    expect_event(map_text(u, &r), &r, "MSH-9 without its structure");
    map_in_result_free(&r);
    free(u);
    free(t);
}

Test(map_in, processing_id, .timeout = 10)
{
    char *t = sample_text(REF_CARE);
    char *u = subst_all(t, "|P|2.4|", "|T|2.4|");
    text_error(u, 'R', 202, "MSH", 1, 11, "takes P");
    /* A training instance lists T. */
    static const char *const ids[] = {"P", "T", NULL};
    map_in_opts o = test_opts;
    o.processing_ids = ids;
    map_in_result r;
    expect_event(map_bytes(u, strlen(u), &o, &r), &r, "T on a training hub");
    map_in_result_free(&r);
    free(u);
    /* P^T means the same as P; archive, restore and initial load never
     * become new events. */
    u = subst_all(t, "|P|2.4|", "|P^T|2.4|");
    expect_event(map_text(u, &r), &r, "P^T");
    map_in_result_free(&r);
    free(u);
    static const char *const modes[] = {"|P^A|2.4|", "|P^R|2.4|", "|P^I|2.4|"};
    for (size_t i = 0; i < 3; i++) {
        u = subst_all(t, "|P|2.4|", modes[i]);
        text_error(u, 'R', 202, "MSH", 1, 11, "mode");
        free(u);
    }
    free(t);
}

Test(map_in, admit_and_register_are_acknowledged_not_routed, .timeout = 10)
{
    static const char *const types[] = {"ADT^A01^ADT_A01", "ADT^A04^ADT_A01"};
    char *t = sample_text(ADT_P1);
    for (size_t i = 0; i < 2; i++) {
        char *u = subst_all(t, "ADT^A03^ADT_A03", types[i]);
        map_in_result r;
        cr_assert_eq(map_text(u, &r), 0, "%s", types[i]);
        cr_assert(r.ack_only);
        cr_assert_null(r.event);
        cr_assert_eq(r.nerr, 0);
        map_in_result_free(&r);
        free(u);
    }
    /* Still checked as far as the ACK needs: MSH-10. */
    char *u =
        subst_all(t, "ADT^A03^ADT_A03|PAS000187342|", "ADT^A01^ADT_A01||");
    text_error(u, 'E', 101, "MSH", 1, 10, NULL);
    free(u);
    free(t);
}

/* --------------------------------------------------- step 5: MSH-2 */

Test(map_in, five_encoding_characters, .timeout = 10)
{
    char *t = sample_text(REF_CARE);
    char *u = subst_all(t, "MSH|^~\\&|", "MSH|^~\\&#|");
    text_error(u, 'E', 102, "MSH", 1, 2, NULL);
    map_in_result r;
    map_text(u, &r);
    cr_assert_str_eq(r.errs[0].text,
                     "MSH-2 declares 5 encoding characters; the truncation "
                     "character exists only from v2.7: declare ^~\\&");
    map_in_result_free(&r);
    free(u);
    /* Step 4 comes first. */
    u = subst_all(t, "MSH|^~\\&|", "MSH|^~\\&#|");
    u = edit(u, "|P|2.4|", "|P|2.1|");
    text_error(u, 'R', 203, "MSH", 1, 12, NULL);
    free(u);
    free(t);
}

Test(map_in, control_id, .timeout = 10)
{
    char *t = sample_text(REF_CARE);
    char *u = subst_all(t, "|CN00004521|", "||");
    text_error(u, 'E', 101, "MSH", 1, 10, NULL);
    free(u);
    char id[80];
    memset(id, 'A', 65);
    id[65] = '\0';
    char bar[84];
    snprintf(bar, sizeof bar, "|%s|", id);
    u = subst_all(t, "|CN00004521|", bar);
    text_error(u, 'E', 102, "MSH", 1, 10, "65 characters");
    free(u);
    /* 64 is accepted (domain 5.3). */
    id[64] = '\0';
    snprintf(bar, sizeof bar, "|%s|", id);
    u = subst_all(t, "|CN00004521|", bar);
    map_in_result r;
    expect_event(map_text(u, &r), &r, "64-character MSH-10");
    map_in_result_free(&r);
    free(u);
    free(t);
}

/* ----------------------------------------------- step 6: structure */

Test(map_in, structure, .timeout = 10)
{
    char *t = sample_text(REF_CARE);
    /* PRD is required before PID. */
    char *u = subst_all(t, "\rPRD|", "\rZXX|");
    text_error(u, 'E', 100, "PRD", 1, 0, "PRD required for REF^I12");
    free(u);
    /* A second patient is never silently dropped. */
    char *pid = strstr(t, "\rPID|");
    char *end = strchr(pid + 1, '\r');
    size_t plen = (size_t)(end - pid);
    char line[512];
    cr_assert_lt(plen, sizeof line);
    memcpy(line, pid, plen);
    line[plen] = '\0';
    char twice[1024];
    snprintf(twice, sizeof twice, "%s%s", line, line);
    u = subst_all(t, line, twice);
    text_error(u, 'E', 100, "PID", 2, 0, "more than once");
    free(u);
    free(t);

    /* ORM: every ORC needs its RQD. */
    t = sample_text(ORM);
    char *last = strstr(t, "\rRQD|3|");
    cr_assert_not_null(last);
    *last = '\0';
    text_error(t, 'E', 100, "RQD", 3, 0, "message appears truncated");
    free(t);
    t = sample_text(ORM);
    u = subst_all(t, "\rRQD|2|", "\rZZZ|2|");
    text_error(u, 'E', 100, "RQD", 2, 0, "after ORC^2");
    free(u);
    free(t);

    /* OMG: TQ1 before OBR. */
    t = sample_text(OMG);
    u = subst_all(t, "\rTQ1|1|2^EA", "\rZTQ|1|2^EA");
    text_error(u, 'E', 100, "TQ1", 2, 0, NULL);
    free(u);
    free(t);
}

/* ---------------------------------------------------- step 7: fields */

Test(map_in, nhs_number_rules, .timeout = 10)
{
    char *t = sample_text(REF_CARE);
    char *u = subst_all(t, "9994127357^^^NHS^NH",
                        "9994127357^^^NHS^NH~9992468130^^^NHS^NH");
    text_error(u, 'E', 207, "PID", 1, 3, NULL);
    map_in_result r;
    map_text(u, &r);
    cr_assert_str_eq(r.errs[0].text,
                     "PID-3 holds two different NHS numbers (9994127357, "
                     "9992468130)");
    map_in_result_free(&r);
    free(u);

    /* The same number twice counts once; MR repetitions are not NHS
     * numbers; the OID may stand for NHS; spaces are stripped. */
    static const char *const ok[] = {
        "F0012345^^^RZZ^MR~9994127357^^^NHS^NH~9994127357^^^NHS^NH",
        "9994127357^^^&2.16.840.1.113883.2.1.4.1&ISO^NH",
        "9994127357^^^2.16.840.1.113883.2.1.4.1^NH", "999 412 7357^^^NHS^NH"};
    for (size_t i = 0; i < 4; i++) {
        u = subst_all(t, "9994127357^^^NHS^NH", ok[i]);
        expect_event(map_text(u, &r), &r, ok[i]);
        cr_assert_str_eq(r.event->patient->nhs_number, "9994127357");
        map_in_result_free(&r);
        free(u);
    }
    /* NH with another authority is not the NHS number. */
    u = subst_all(t, "9994127357^^^NHS^NH", "9994127357^^^RZZ^NH");
    text_error(u, 'E', 101, "PID", 1, 3, NULL);
    free(u);
    u = subst_all(t, "9994127357^^^NHS^NH", "1111111111^^^NHS^NH");
    text_error(u, 'E', 102, "PID", 1, 3,
               "PID-3: NHS number 1111111111 is ten identical digits");
    free(u);
    /* In production the 999 range is refused. */
    map_in_opts prod = test_opts;
    prod.allow_test_nhs_numbers = false;
    cr_assert_eq(map_bytes(t, strlen(t), &prod, &r), -1);
    expect_loc(&r.errs[0], "PID", 1, 3);
    cr_assert(strstr(r.errs[0].text, "999 test range") != NULL);
    map_in_result_free(&r);
    free(t);
}

Test(map_in, date_of_birth, .timeout = 10)
{
    char *t = sample_text(REF_CARE);
    char *u = subst_all(t, "|19511102|", "|20250321|"); /* tomorrow */
    text_error(u, 'E', 102, "PID", 1, 7, "future");
    free(u);
    u = subst_all(t, "|19511102|", "|20250320|"); /* today is fine */
    map_in_result r;
    expect_event(map_text(u, &r), &r, "born today");
    map_in_result_free(&r);
    free(u);
    u = subst_all(t, "|19511102|", "|19510229|"); /* not a leap year */
    text_error(u, 'E', 102, "PID", 1, 7, NULL);
    free(u);
    u = subst_all(t, "|19511102|", "||");
    text_error(u, 'E', 101, "PID", 1, 7, NULL);
    free(u);
    free(t);
}

Test(map_in, codes_in_tables, .timeout = 10)
{
    char *t = sample_text(REF_CARE);
    char *u = subst_all(t, "adult-social-care-assessment^Care Act",
                        "podiatry^Care Act");
    text_error(u, 'E', 103, "RF1", 1, 3, "podiatry");
    free(u);
    u = subst_all(t, "|R^Routine^HL70280|", "|Z^Whenever^HL70280|");
    text_error(u, 'E', 103, "RF1", 1, 2, NULL);
    free(u);
    u = subst_all(t, "|R^Routine^HL70280|", "|S^STAT^HL70280|");
    map_in_result r;
    expect_event(map_text(u, &r), &r, "STAT");
    cr_assert_str_eq(r.event->priority, "two_hour_crisis");
    map_in_result_free(&r);
    free(u);
    u = subst_all(t, "|19511102|M|", "|19511102|X|");
    text_error(u, 'E', 103, "PID", 1, 8, NULL);
    free(u);
    free(t);

    t = sample_text(ADT_P1);
    u = subst_all(t, "|1|19|", "|1|77|");
    text_error(u, 'E', 103, "PV1", 1, 37, NULL);
    free(u);
    u = subst_all(t, "||1^Pathway 1", "||5^Pathway 5");
    text_error(u, 'E', 103, "OBX", 1, 5, NULL);
    free(u);
    u = subst_all(t, "district-nursing: review", "podiatry: review");
    text_error(u, 'E', 103, "OBX", 2, 5, "podiatry");
    free(u);
    free(t);
}

Test(map_in, postcode_normalised_and_checked, .timeout = 10)
{
    char *t = sample_text(REF_CARE);
    char *u = subst_all(t, "^FE4 6JD^GBR^H", "^ fe46jd ^GBR^H");
    map_in_result r;
    expect_event(map_text(u, &r), &r, "lower-case postcode");
    cr_assert_str_eq(r.event->patient->postcode, "FE4 6JD");
    map_in_result_free(&r);
    free(u);
    u = subst_all(t, "^FE4 6JD^GBR^H", "^NOT A POSTCODE^GBR^H");
    text_error(u, 'E', 102, "PID", 1, 11, "postcode");
    free(u);
    /* "" deletes the value: a referral then has none. */
    u = subst_all(t, "^FE4 6JD^GBR^H", "^\"\"^GBR^H");
    text_error(u, 'E', 101, "PID", 1, 11, "postcode is missing");
    free(u);
    free(t);
}

Test(map_in, nte_joining_and_limits, .timeout = 10)
{
    char *t = sample_text(REF_CARE);
    /* Two 1R notes, the second with two repetitions, join with \n. */
    char *u = subst_all(t, "|CD^Clinical details^HANDOVER",
                        "|1R^Primary reason^HL70364");
    u = edit(u, "Uses pads at night.", "Uses pads~at night.");
    map_in_result r;
    expect_event(map_text(u, &r), &r, "joined notes");
    cr_assert(strstr(r.event->reason,
                     "at weekends.\nLeft-sided weakness; walks indoors with a "
                     "frame. Two falls in the past month, no injury. Uses "
                     "pads\nat night.") != NULL,
              "%s", r.event->reason);
    expect_unset(r.event->clinical_details, "clinical_details");
    map_in_result_free(&r);
    free(u);

    /* The note that crosses the limit is named, not the first. */
    char big[1600];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    char nte[1700];
    snprintf(nte, sizeof nte, "|%s|1R^Primary reason^HL70364", big);
    u = subst_all(t,
                  "|Lives alone and struggling with personal care since his "
                  "stroke in November. Asks for help with bathing \\T\\ "
                  "dressing; his daughter lives 40 miles away and helps at "
                  "weekends.|1R^Primary reason^HL70364",
                  nte);
    u = edit(u,
             "|Left-sided weakness; walks indoors with a frame. Two falls in "
             "the past month, no injury. Uses pads at night.|CD^Clinical "
             "details^HANDOVER",
             nte);
    text_error(u, 'E', 102, "NTE", 2, 3, "reason reaches 3199 characters");
    free(u);
    free(t);
}

Test(map_in, errors_in_message_order_up_to_ten, .timeout = 10)
{
    char *t = sample_text(REF_CARE);
    /* A bad date of birth, then twelve notes with broken escapes, and no
     * 1R: thirteen errors in the message, plus the missing reason found
     * after the walk. The first ten in message order are kept. */
    char notes[4096] = "";
    size_t n = 0;
    for (int i = 1; i <= 12; i++)
        n += (size_t)snprintf(notes + n, sizeof notes - n,
                              "\rNTE|%d|P|bad \\T escape|CD^Clinical "
                              "details^HANDOVER",
                              i);
    char *u = subst_all(t, "|19511102|", "|19511302|");
    char *nte1 = strstr(u, "\rNTE|1|");
    cr_assert_not_null(nte1);
    *nte1 = '\0';
    size_t need = strlen(u) + strlen(notes) + 1;
    char *msg = malloc(need);
    cr_assert_not_null(msg);
    snprintf(msg, need, "%s%s", u, notes);
    map_in_result r;
    cr_assert_eq(map_text(msg, &r), -1);
    cr_assert_eq(r.nerr, MAP_IN_MAX_ERRS);
    expect_loc(&r.errs[0], "PID", 1, 7);
    for (unsigned i = 1; i < MAP_IN_MAX_ERRS; i++) {
        expect_loc(&r.errs[i], "NTE", i, 3);
        cr_assert_eq(r.errs[i].code, 102);
    }
    map_in_result_free(&r);
    free(msg);

    /* With room, the missing reason comes last. */
    *strstr(notes, "\rNTE|3|") = '\0';
    need = strlen(u) + strlen(notes) + 1;
    msg = malloc(need);
    cr_assert_not_null(msg);
    snprintf(msg, need, "%s%s", u, notes);
    cr_assert_eq(map_text(msg, &r), -1);
    cr_assert_eq(r.nerr, 4);
    expect_loc(&r.errs[0], "PID", 1, 7);
    expect_loc(&r.errs[1], "NTE", 1, 3);
    expect_loc(&r.errs[2], "NTE", 2, 3);
    cr_assert_eq(r.errs[3].code, 101);
    cr_assert(strstr(r.errs[3].text, "reason is missing") != NULL);
    map_in_result_free(&r);
    free(msg);
    free(u);
    free(t);
}

Test(map_in, sending_facility_must_be_an_org_code, .timeout = 10)
{
    char *t = sample_text(REF_CARE);
    char *u = subst_all(t, "|CN-EPR|RZZ40|HANDOVER", "|CN-EPR|rzz 40|HANDOVER");
    text_error(u, 'E', 102, "MSH", 1, 4, NULL);
    free(u);
    u = subst_all(t, "|CN-EPR|RZZ40|HANDOVER", "|CN-EPR||HANDOVER");
    text_error(u, 'E', 101, "MSH", 1, 4, NULL);
    free(u);
    free(t);
}

Test(map_in, discharge_requirements, .timeout = 10)
{
    char *t = sample_text(ADT_P1);
    /* No pathway OBX. */
    char *u = subst_all(t, "D2A-PATHWAY^Discharge", "OTHER^Discharge");
    text_error(u, 'E', 101, "OBX", 4, 3, "pathway is missing");
    free(u);
    /* PV1-45 missing: EVN-6 gives the discharge time. */
    u = subst_all(t, "|20250301093000+0000|20250314100500+0000",
                  "|20250301093000+0000|");
    map_in_result r;
    expect_event(map_text(u, &r), &r, "EVN-6 only");
    cr_assert_str_eq(r.event->discharge->discharged_at,
                     "2025-03-14T10:05:00.000Z");
    map_in_result_free(&r);
    free(u);
    /* A wrong observation (W) is never mapped. */
    u = subst_all(t, "HANDOVER||||||F\rOBX|2", "HANDOVER||||||W\rOBX|2");
    text_error(u, 'E', 101, "OBX", 4, 3, NULL);
    free(u);
    free(t);
}

Test(map_in, outcome_rules, .timeout = 10)
{
    char *t = sample_text(RRI);
    char *u = subst_all(t, "|ae41b2a2-c361-59f0-b094-ae08febec1f6^HANDOVER|",
                        "|CN-REF-20250314-0031^CN-EPR|");
    text_error(u, 'E', 102, "RF1", 1, 6, "not a Handover event id");
    free(u);
    u = subst_all(t, "RF1|A^Accepted", "RF1|P^Pending");
    text_error(u, 'E', 103, "RF1", 1, 1, NULL);
    free(u);
    /* Upper case still names the event. */
    u = subst_all(t, "ae41b2a2-c361-59f0-b094-ae08febec1f6",
                  "AE41B2A2-C361-59F0-B094-AE08FEBEC1F6");
    map_in_result r;
    expect_event(map_text(u, &r), &r, "upper-case id");
    cr_assert_str_eq(r.event->in_reply_to,
                     "ae41b2a2-c361-59f0-b094-ae08febec1f6");
    map_in_result_free(&r);
    free(u);
    /* A rejection carries its reason code in RF1-10. */
    u = subst_all(t, "RF1|A^Accepted", "RF1|R^Rejected");
    text_error(u, 'E', 101, "RF1", 1, 10, "reason code");
    char *v = subst_all(u, "|20250315091000+0000||CN-REF",
                        "|20250315091000+0000|out-of-area^Out of "
                        "area^HANDOVER|CN-REF");
    expect_event(map_text(v, &r), &r, "rejected with a reason");
    cr_assert_str_eq(r.event->outcome->status, "rejected");
    cr_assert_str_eq(r.event->outcome->reason_code, "out-of-area");
    map_in_result_free(&r);
    free(v);
    v = subst_all(u, "|20250315091000+0000||CN-REF",
                  "|20250315091000+0000|no-access^No access^HANDOVER|CN-REF");
    text_error(v, 'E', 103, "RF1", 1, 10, NULL);
    free(v);
    free(u);
    free(t);
}

Test(map_in, equipment_collection, .timeout = 10)
{
    char *t = sample_text(ORM);
    char *collect =
        subst_all(t, "01632 960118^WPN^PH",
                  "01632 960118^WPN^PH||COLLECT^Collect equipment^HANDOVER");
    /* No ASSET-ID: each group refuses at its ORC. */
    map_in_result r;
    cr_assert_eq(map_text(collect, &r), -1);
    cr_assert_eq(r.nerr, 3);
    for (unsigned i = 0; i < 3; i++) {
        expect_loc(&r.errs[i], "ORC", i + 1, 0);
        cr_assert_eq(r.errs[i].code, 101);
    }
    map_in_result_free(&r);
    char *u = subst_all(collect, "|20250317\r",
                        "|20250317\rOBX|1|ST|ASSET-ID^Asset "
                        "id^HANDOVER||CES-A-0001||||||F\r");
    expect_event(map_text(u, &r), &r, "collection");
    const Handover__EquipmentOrder *o = r.event->equipment_order;
    cr_assert_str_eq(o->action, "collect");
    cr_assert_eq(o->n_collect_assets, 3);
    cr_assert_str_eq(o->collect_assets[0], "CES-A-0001");
    map_in_result_free(&r);
    free(u);
    free(collect);

    /* One message is one action: the first group that differs. */
    char *orc2 = strstr(t, "ORC|NW|CN-ORD-88120-2");
    cr_assert_not_null(orc2);
    u = subst_all(t,
                  "ORC|NW|CN-ORD-88120-2^CN-EPR||CN-ORD-88120^CN-EPR|||||"
                  "20250314151500+0000|||99Z1234Z^KNOWLES^SARAH|^^^RZZ40|"
                  "01632 960118^WPN^PH",
                  "ORC|NW|CN-ORD-88120-2^CN-EPR||CN-ORD-88120^CN-EPR|||||"
                  "20250314151500+0000|||99Z1234Z^KNOWLES^SARAH|^^^RZZ40|"
                  "01632 960118^WPN^PH||COLLECT^Collect equipment^HANDOVER");
    cr_assert_eq(map_text(u, &r), -1);
    cr_assert_eq(r.errs[0].code, 207, "%s", r.errs[0].text);
    expect_loc(&r.errs[0], "ORC", 2, 16);
    /* That group's missing asset is its own defect, filed after it. */
    cr_assert_eq(r.nerr, 2);
    cr_assert_eq(r.errs[1].code, 101);
    expect_loc(&r.errs[1], "ORC", 2, 0);
    map_in_result_free(&r);
    free(u);
    free(t);
}

Test(map_in, equipment_priority_and_quantities, .timeout = 10)
{
    char *t = sample_text(ORM);
    /* Needed on the Tuesday after a Friday order: routine. */
    char *u = subst_all(t, "|20250317", "|20250318");
    map_in_result r;
    expect_event(map_text(u, &r), &r, "Tuesday");
    cr_assert_str_eq(r.event->priority, "routine");
    cr_assert_str_eq(r.event->equipment_order->required_by, "2025-03-18");
    map_in_result_free(&r);
    free(u);
    u = subst_all(t, "^CES-CAT|||1|", "^CES-CAT|||100|");
    text_error(u, 'E', 102, "RQD", 1, 5, "1 to 99");
    free(u);
    u = subst_all(t, "^CES-CAT|||1|", "^CES-CAT||||");
    text_error(u, 'E', 101, "RQD", 1, 5, NULL);
    free(u);
    free(t);

    t = sample_text(OMG);
    u = subst_all(t, "R^Routine^HL70485", "S^Stat^HL70485");
    expect_event(map_text(u, &r), &r, "TQ1-9 S");
    cr_assert_str_eq(r.event->priority, "urgent");
    map_in_result_free(&r);
    free(u);
    free(t);
}

Test(map_in, result_free_is_idempotent, .timeout = 10)
{
    map_in_result r;
    memset(&r, 0, sizeof r);
    map_in_result_free(&r);
    map_in_result_free(NULL);
    cr_assert_eq(map_sample(ORM, &r), 0);
    map_in_result_free(&r);
    map_in_result_free(&r);
    cr_assert_null(r.event);
}

/* The golden ACK (samples/hl7/responses) is built from map_in's error as
 * it stands: text, code and location. */
Test(map_in, golden_ack_for_bad_nhs_number, .timeout = 10)
{
    size_t len, glen;
    char *data = read_sample("broken/bad-nhs-checkdigit.hl7", &len);
    char *golden =
        read_sample("responses/ack-ae-from-handover-bad-nhs-number.hl7", &glen);
    hl7_msg *m = NULL;
    hl7_error perr = {0};
    cr_assert_eq(hl7_parse((const uint8_t *)data, len, NULL, &m, &perr), 0);
    map_in_result r;
    cr_assert_eq(map_in(m, &test_opts, &r), -1);
    hl7_ack_opts ao = {.code = "AE",
                       .text = r.errs[0].text,
                       .errs = r.errs,
                       .nerr = r.nerr,
                       .control_id = "7d2f9e40b1c84c5e9a33",
                       .now_ms = 1741951861000ull}; /* 11:31:01Z */
    uint8_t *ack = NULL;
    size_t alen = 0;
    cr_assert_eq(hl7_ack_build(m, &ao, &ack, &alen), 0);
    /* The golden file ends each segment with CR, the last one too. */
    cr_assert_eq(alen, glen, "ACK:\n%.*s", (int)alen, (const char *)ack);
    cr_assert_eq(memcmp(ack, golden, glen), 0, "ACK:\n%.*s", (int)alen,
                 (const char *)ack);
    free(ack);
    map_in_result_free(&r);
    hl7_msg_free(m);
    free(golden);
    free(data);
}

Test(map_in, character_sets, .timeout = 10)
{
    /* Latin-1 declared: the byte 0xC9 is É, carried as UTF-8. */
    char *t = sample_text("broken/invalid-utf8.hl7");
    char *u = subst_all(t, "|GBR|UNICODE UTF-8", "|GBR|8859/1");
    map_in_result r;
    expect_event(map_text(u, &r), &r, "8859/1");
    /* "\xc3\x89" "E": a hex escape would swallow the E. */
    cr_assert_str_eq(r.event->patient->given_names[0], "REN\xc3\x89"
                                                       "E");
    map_in_result_free(&r);
    free(u);
    /* A set Handover cannot read: one error, at MSH-18, not one per
     * field. */
    u = subst_all(t, "|GBR|UNICODE UTF-8", "|GBR|ISO IR100");
    cr_assert_eq(map_text(u, &r), -1);
    cr_assert_eq(r.nerr, 1, "%s", r.errs[r.nerr - 1].text);
    expect_loc(&r.errs[0], "MSH", 1, 18);
    cr_assert_eq(r.errs[0].code, 102);
    map_in_result_free(&r);
    free(u);
    free(t);
    /* NUL, raw or escaped, is an error at its field (domain 3). */
    t = sample_text(REF_CARE);
    u = subst_all(t, "No pets.", "No pets\\X00\\.");
    text_error(u, 'E', 102, "NTE", 3, 3, "NUL");
    free(u);
    free(t);
}

Test(map_in, escapes_decoded_everywhere, .timeout = 10)
{
    char *t = sample_text(REF_CARE);
    /* \F\ \S\ \E\ and \.br\ in a name and a note; \H\ \N\ removed. */
    char *u = subst_all(t, "WETHERALL^ALAN", "WETHER\\S\\ALL^ALAN");
    u = edit(u, "Ring the bell and wait:",
             "Ring the \\H\\bell\\N\\ and wait\\F\\\\E\\\\.br\\");
    map_in_result r;
    expect_event(map_text(u, &r), &r, "escapes");
    cr_assert_str_eq(r.event->patient->family_name, "WETHER^ALL");
    cr_assert_str_eq(r.event->access_notes,
                     "Ring the bell and wait|\\\n he is slow to reach the "
                     "door. No pets.");
    map_in_result_free(&r);
    free(u);
    free(t);
}
