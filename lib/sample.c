#include "handover/sample.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handover/ident.h"
#include "handover/timeutil.h"

#define MS_PER_DAY 86400000ULL

/* The people of samples/README.md. Addresses and phone numbers are those of
 * the HL7 and FHIR samples where they give them; where they do not, they
 * are invented in the same fictional ranges (FE postcodes, Ofcom drama
 * numbers). */
typedef struct cast_member {
    const char *nhs;
    const char *title;
    const char *given[2];
    const char *family;
    const char *dob;
    const char *sex;
    const char *lines[3];
    const char *postcode;
    const char *phone;
    const char *gp;
} cast_member;

static const cast_member cast[] = {
    {"9992468130",
     "Mrs",
     {"Edith", "May"},
     "Harrowgate",
     "1938-04-17",
     "female",
     {"14 Cragside Terrace", "Brackenby", "Fellgate"},
     "FE7 8QT",
     "01632 960412",
     "Z99001"},
    {"9994127357",
     "Mr",
     {"Alan", "John"},
     "Wetherall",
     "1951-11-02",
     "male",
     {"7 Low Row", "Croxwell", NULL},
     "FE4 6JD",
     "01632 960733",
     "Z99003"},
    {"9993001007",
     "Mrs",
     {"Joan", "Elsie"},
     "Pickering",
     "1944-09-30",
     "female",
     {"22 Beech Grove", "Croxwell", NULL},
     "FE4 3LW",
     "01632 960377",
     "Z99003"},
    {"9995050501",
     "Ms",
     {"Zo\u00eb", NULL},
     "\u00d3 Briain",
     "1962-02-14",
     "female",
     {"Flat 3, Wansbeck House", "Station Road", "Brackenby"},
     "FE7 2QS",
     "07700 900481",
     "Z99002"},
    {"9996118428",
     "Mr",
     {"Patrick", NULL},
     "O'Driscoll",
     "1949-07-21",
     "male",
     {"9 Mill Lane", "Aldercote", NULL},
     "FE2 8NR",
     "01632 960318",
     "Z99001"},
    {"9997345207",
     "Mr",
     {"Derek", NULL},
     "Ashby-Knowles",
     "1957-03-09",
     "male",
     {"3 Tanners Yard", "Fellgate", NULL},
     "FE1 5HX",
     "01632 960264",
     "Z99001"},
    {"9998765439",
     "Miss",
     {"Ruby", NULL},
     "Fenwick",
     "1989-12-05",
     "female",
     {"Flat 2, 41 Tanners Court", "Fellgate", NULL},
     "FE1 4DX",
     "07700 900916",
     "Z99002"},
    {"9992024682",
     "Mrs",
     {"Irene", NULL},
     "Calvert",
     "1946-05-28",
     "female",
     {"11 Orchard Close", "Croxwell", NULL},
     "FE4 5NW",
     "01632 960551",
     "Z99003"},
    {"9995319764",
     "Mrs",
     {"Ren\u00e9e", NULL},
     "Beaumont",
     "1946-05-28",
     "female",
     {"5 Chapel Row", "Croxwell", NULL},
     "FE4 2RB",
     "01632 960590",
     "Z99003"},
};

#define N_CAST (sizeof cast / sizeof cast[0])

/* Copy src into a fixed buffer, cut to fit: the sample's strings live in
 * its own arrays, so the caller's may be temporary. */
static void
copy(char *dst, size_t cap, const char *src)
{
    if (src == dst)
        return; /* hov_sample_set_reply(s, s->in_reply_to, ...) */
    snprintf(dst, cap, "%s", src != NULL ? src : "");
}

/* protobuf-c declares every string member char *, though it never writes
 * through them; the samples point them at literals. */
static char *
lit(const char *s)
{
    return (char *)s;
}

static bool
is(const hov_sample *s, Handover__Event__BodyCase c)
{
    return s->ev.body_case == c;
}

static void
fill_patient(hov_sample *s, const char *nhs, bool full)
{
    const cast_member *c = &cast[0];
    for (size_t i = 0; i < N_CAST; i++)
        if (strcmp(cast[i].nhs, nhs) == 0)
            c = &cast[i];
    copy(s->nhs_number, sizeof s->nhs_number, nhs);
    Handover__Patient *p = &s->patient;
    p->nhs_number = s->nhs_number;
    s->ev.patient = p;
    /* An outcome identifies the patient by NHS number alone, as the CES and
     * council files do (domain 7.2). */
    if (!full)
        return;
    p->nhs_number_status = lit("01");
    p->title = lit(c->title);
    p->family_name = lit(c->family);
    for (size_t i = 0; i < 2 && c->given[i] != NULL; i++)
        s->given_names[p->n_given_names++] = lit(c->given[i]);
    p->given_names = s->given_names;
    p->date_of_birth = lit(c->dob);
    p->sex = lit(c->sex);
    for (size_t i = 0; i < 3 && c->lines[i] != NULL; i++)
        s->address_lines[p->n_address_lines++] = lit(c->lines[i]);
    p->address_lines = s->address_lines;
    p->postcode = lit(c->postcode);
    p->phone = lit(c->phone);
    hov_sample_set_registered_gp(s, c->gp);
}

static void
set_source(hov_sample *s, const char *code, const char *name,
           const char *system, const char *ref_prefix)
{
    copy(s->source_code, sizeof s->source_code, code);
    s->source_org.code = s->source_code;
    s->source_org.name = lit(name);
    s->source.org = &s->source_org;
    s->source.system = lit(system);
    /* A partner's own identifier, unique enough per sample. */
    snprintf(s->source_ref, sizeof s->source_ref, "%s-%.8s", ref_prefix,
             s->event_id);
    s->source.ref = s->source_ref;
    s->source.author = &s->author;
    s->ev.source = &s->source;
}

static void
init_referral(hov_sample *s)
{
    set_source(s, "Z99001", "Aldercote Surgery", "GP-SYSTEM", "Z99001-REF");
    s->author.name = lit("Dr Hannah Okafor");
    s->author.role = lit("General practitioner");
    s->author.id = lit("G9999990");
    s->ev.priority = lit("routine");
    s->ev.reason = lit("Venous leg ulcer on the left shin needs dressing "
                       "twice a week; cannot get to the surgery.");
    s->ev.social_details = lit("Lives alone; daughter visits most days.");
    copy(s->service, sizeof s->service, "district-nursing");
    s->referral.service = s->service;
    s->referral.preferred_contact = lit("Phone before visiting: hard of "
                                        "hearing, answers slowly.");
    s->ev.body_case = HANDOVER__EVENT__BODY_REFERRAL;
    s->ev.referral = &s->referral;
}

static void
init_discharge(hov_sample *s, uint64_t now)
{
    set_source(s, "RZZ01", "Fellgate University Hospital", "FELLGATE-PAS", "V");
    s->author.name = lit("Emeka Okonjo");
    s->author.role = lit("Consultant physician");
    s->author.id = lit("C9999998");
    s->clinician = s->author;
    s->ev.priority = lit("urgent");
    hov_sample_set_consent(s, "implied_direct_care", NULL);

    Handover__Discharge *d = &s->discharge;
    hov_rfc3339_format(now - 13 * MS_PER_DAY, s->admitted_at);
    d->admitted_at = s->admitted_at;
    d->discharged_at = s->occurred_at;
    d->pathway_present_case = HANDOVER__DISCHARGE__PATHWAY_PRESENT_PATHWAY;
    d->pathway = 1;
    d->method = lit("1");
    s->discharge_dest.code = lit("19");
    s->discharge_dest.description = lit("Usual place of residence");
    d->destination = &s->discharge_dest;
    d->site = lit("RZZ01");
    d->ward = lit("WARD 12");
    d->responsible_clinician = &s->clinician;
    s->follow_up[0].service = lit("district-nursing");
    s->follow_up[0].description = lit("Review stage 2 sacral pressure ulcer "
                                      "within 48 hours of discharge; "
                                      "dressing every 3 days");
    s->follow_up[1].service = lit("reablement");
    s->follow_up[1].description = lit("4 calls a day (washing & dressing, "
                                      "meals, medication prompts) from the "
                                      "day of discharge");
    s->follow_up_ptrs[0] = &s->follow_up[0];
    s->follow_up_ptrs[1] = &s->follow_up[1];
    d->n_follow_up = 2;
    d->follow_up = s->follow_up_ptrs;
    d->medications_summary =
        lit("NEW: Amoxicillin 500 mg three times a day for 2 more days\n"
            "CHANGED: Furosemide 40 mg once a day (was 20 mg)\n"
            "UNCHANGED: Bisoprolol 2.5 mg once a day");
    s->ev.body_case = HANDOVER__EVENT__BODY_DISCHARGE;
    s->ev.discharge = d;
}

static void
init_equipment_order(hov_sample *s, uint64_t now)
{
    set_source(s, "RZZ40", "North Fell NHS Foundation Trust community nursing",
               "CN-EPR", "CN-ORD");
    s->author.name = lit("Sarah Knowles");
    s->author.role = lit("District nurse");
    s->author.id = lit("99Z1234Z");
    hov_sample_add_destination(s, "8ZZ99");
    s->dest[0].name = lit("Fellshire Community Equipment Service");
    s->ev.priority = lit("urgent");
    s->ev.access_notes = lit("Key safe fitted: the code will be given by "
                             "phone to the driver on the day. Small dog, "
                             "shut in the kitchen for deliveries.");
    hov_sample_set_consent(s, "implied_direct_care", NULL);

    Handover__EquipmentOrder *o = &s->order;
    o->action = lit("deliver");
    copy(s->order_ref, sizeof s->order_ref, s->source_ref);
    o->order_ref = s->order_ref;
    static const struct {
        const char *code, *description;
    } lines[HOV_SAMPLE_MAX_ITEMS] = {
        {"BED-PROF-01", "Profiling bed, electric, with side rails"},
        {"MATT-DYN-AIR", "Dynamic air mattress replacement system, high "
                         "risk"},
        {"COMMODE-STD", "Commode, static, padded seat"},
    };
    for (size_t i = 0; i < HOV_SAMPLE_MAX_ITEMS; i++) {
        s->items[i].line = (uint32_t)i + 1;
        s->items[i].item_code = lit(lines[i].code);
        s->items[i].description = lit(lines[i].description);
        s->items[i].quantity = 1;
        s->item_ptrs[i] = &s->items[i];
    }
    o->n_items = HOV_SAMPLE_MAX_ITEMS;
    o->items = s->item_ptrs;
    /* Delivered to the patient's home, the default (domain 3.5). */
    s->delivery_address.n_lines = s->patient.n_address_lines;
    s->delivery_address.lines = s->address_lines;
    s->delivery_address.postcode = s->patient.postcode;
    o->delivery_address = &s->delivery_address;
    hov_date_london_at(now + 3 * MS_PER_DAY, s->required_by);
    o->required_by = s->required_by;
    s->prescriber.name = lit("Sarah Knowles");
    s->prescriber.role = lit("District nurse");
    s->prescriber.org = lit("RZZ40");
    s->prescriber.phone = lit("01632 960118");
    o->prescriber = &s->prescriber;
    s->ev.body_case = HANDOVER__EVENT__BODY_EQUIPMENT_ORDER;
    s->ev.equipment_order = o;
}

static void
init_outcome(hov_sample *s)
{
    set_source(s, "RZZ40", "North Fell NHS Foundation Trust community nursing",
               "CN-EPR", "CN-OUT");
    s->author.name = lit("Sarah Knowles");
    s->author.role = lit("District nurse");
    copy(s->status, sizeof s->status, "accepted");
    s->outcome.status = s->status;
    s->outcome_item_ptrs[0] = &s->outcome_item;
    s->ev.body_case = HANDOVER__EVENT__BODY_OUTCOME;
    s->ev.outcome = &s->outcome;
}

void
hov_sample_init(hov_sample *s, const char *type, const char *nhs)
{
    memset(s, 0, sizeof *s);
    handover__event__init(&s->ev);
    handover__source__init(&s->source);
    handover__org_ref__init(&s->source_org);
    handover__person__init(&s->author);
    for (size_t i = 0; i < HOV_SAMPLE_MAX_DEST; i++)
        handover__org_ref__init(&s->dest[i]);
    handover__patient__init(&s->patient);
    handover__consent__init(&s->consent);
    handover__referral__init(&s->referral);
    handover__discharge__init(&s->discharge);
    handover__discharge_destination__init(&s->discharge_dest);
    for (size_t i = 0; i < 2; i++)
        handover__follow_up__init(&s->follow_up[i]);
    handover__person__init(&s->clinician);
    handover__equipment_order__init(&s->order);
    for (size_t i = 0; i < HOV_SAMPLE_MAX_ITEMS; i++)
        handover__equipment_item__init(&s->items[i]);
    handover__address__init(&s->delivery_address);
    handover__person__init(&s->prescriber);
    handover__outcome__init(&s->outcome);
    handover__outcome_item__init(&s->outcome_item);

    if (type == NULL)
        type = "referral";
    bool outcome = strcmp(type, "outcome") == 0;
    uint64_t now = hov_now_ms();

    s->ev.schema = lit("handover.event.v1");
    hov_uuid_v4(s->event_id);
    copy(s->correlation_id, sizeof s->correlation_id, s->event_id);
    s->ev.event_id = s->event_id;
    s->ev.correlation_id = s->correlation_id;
    s->ev.in_reply_to = s->in_reply_to;
    hov_rfc3339_format(now, s->occurred_at);
    s->ev.occurred_at = s->occurred_at;
    s->ev.recorded_at = s->occurred_at;
    s->ev.destinations = s->dest_ptrs;
    fill_patient(s, nhs != NULL ? nhs : "9992468130", !outcome);

    if (strcmp(type, "discharge") == 0) {
        s->ev.event_type = lit("discharge");
        init_discharge(s, now);
    } else if (strcmp(type, "equipment_order") == 0) {
        s->ev.event_type = lit("equipment_order");
        init_equipment_order(s, now);
    } else if (outcome) {
        s->ev.event_type = lit("outcome");
        init_outcome(s);
    } else {
        s->ev.event_type = lit("referral");
        init_referral(s);
    }
}

void
hov_sample_new_id(hov_sample *s)
{
    hov_uuid_v4(s->event_id);
    if (!is(s, HANDOVER__EVENT__BODY_OUTCOME))
        copy(s->correlation_id, sizeof s->correlation_id, s->event_id);
}

void
hov_sample_set_reply(hov_sample *s, const char *in_reply_to, const char *status)
{
    if (!is(s, HANDOVER__EVENT__BODY_OUTCOME))
        return;
    copy(s->in_reply_to, sizeof s->in_reply_to, in_reply_to);
    copy(s->correlation_id, sizeof s->correlation_id, in_reply_to);
    if (status != NULL)
        copy(s->status, sizeof s->status, status);

    Handover__Outcome *o = &s->outcome;
    o->reason_code = lit("");
    if (strcmp(s->status, "rejected") == 0)
        o->reason_code = lit("not-eligible");
    else if (strcmp(s->status, "cannot_deliver") == 0)
        o->reason_code = lit("item-out-of-stock");
    else if (strcmp(s->status, "cancelled") == 0)
        o->reason_code = lit("no-longer-required");

    bool items = strcmp(s->status, "delivered") == 0 ||
                 strcmp(s->status, "cannot_deliver") == 0 ||
                 strcmp(s->status, "collected") == 0;
    o->n_items = items ? 1 : 0;
    o->items = s->outcome_item_ptrs;
    s->outcome_item.item_code = lit("BED-PROF-01");
    s->outcome_item.quantity = 1;
    s->outcome_item.asset_id =
        lit(strcmp(s->status, "cannot_deliver") == 0 ? "" : "CES-A-004512");
}

void
hov_sample_set_service(hov_sample *s, const char *service)
{
    if (is(s, HANDOVER__EVENT__BODY_REFERRAL))
        copy(s->service, sizeof s->service, service);
}

void
hov_sample_set_source(hov_sample *s, const char *org_code)
{
    copy(s->source_code, sizeof s->source_code, org_code);
    s->source_org.name = lit("");
}

void
hov_sample_set_pathway(hov_sample *s, int pathway)
{
    if (!is(s, HANDOVER__EVENT__BODY_DISCHARGE))
        return;
    s->discharge.pathway = pathway;
    s->ev.priority = lit(pathway == 0 ? "routine" : "urgent");
}

void
hov_sample_set_registered_gp(hov_sample *s, const char *ods_code)
{
    copy(s->registered_gp, sizeof s->registered_gp, ods_code);
    s->patient.registered_gp = s->registered_gp;
}

bool
hov_sample_add_destination(hov_sample *s, const char *org_code)
{
    size_t n = s->ev.n_destinations;
    if (n >= HOV_SAMPLE_MAX_DEST)
        return false;
    copy(s->dest_codes[n], sizeof s->dest_codes[n], org_code);
    s->dest[n].code = s->dest_codes[n];
    s->dest[n].name = lit("");
    s->dest_ptrs[n] = &s->dest[n];
    s->ev.n_destinations = n + 1;
    return true;
}

void
hov_sample_clear_destinations(hov_sample *s)
{
    s->ev.n_destinations = 0;
}

void
hov_sample_set_consent(hov_sample *s, const char *basis,
                       const char *recorded_at)
{
    if (basis == NULL) {
        s->ev.consent = NULL;
        return;
    }
    copy(s->consent_basis, sizeof s->consent_basis, basis);
    copy(s->consent_recorded_at, sizeof s->consent_recorded_at, recorded_at);
    s->consent.basis = s->consent_basis;
    s->consent.recorded_at = s->consent_recorded_at;
    s->consent.recorded_by = lit(s->author.name);
    s->ev.consent = &s->consent;
}

void
hov_sample_set_size(hov_sample *s, size_t target_packed_bytes)
{
    s->pad[0] = '\0';
    s->ev.clinical_details = s->pad;
    size_t base = handover__event__get_packed_size(&s->ev);
    /* clinical_details is field 14: a one-byte tag, then the length as a
     * varint (one byte below 128, two below 16384), then the text. */
    if (target_packed_bytes <= base + 2)
        return;
    size_t n = target_packed_bytes - base - 1;
    n -= n - 1 < 128 ? 1 : 2;
    if (n > HOV_SAMPLE_PAD_MAX)
        n = HOV_SAMPLE_PAD_MAX;
    static const char filler[] = "Observations stable; wound bed granulating; "
                                 "continue current plan. ";
    for (size_t i = 0; i < n; i++)
        s->pad[i] = filler[i % (sizeof filler - 1)];
    s->pad[n] = '\0';
}

uint8_t *
hov_sample_pack(const hov_sample *s, size_t *len)
{
    size_t n = handover__event__get_packed_size(&s->ev);
    /* malloc(0) may return NULL, which would read as out of memory. */
    uint8_t *buf = malloc(n > 0 ? n : 1);
    if (buf == NULL)
        return NULL;
    *len = handover__event__pack(&s->ev, buf);
    return buf;
}
