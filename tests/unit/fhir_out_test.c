/* adapters/gp/fhir_out: Edith's discharge becomes the message Bundle of the
 * golden file samples/fhir/outbound/discharge-message-bundle-to-gp.json,
 * value for value where the event carries the value (the golden was written
 * by hand; what the event cannot supply is listed and asserted below); each
 * canonical outcome status becomes the Task of domain 6.3's table; a
 * referral and an equipment order become documents that fhir_in reads back
 * into the same event; every document parses; malformed events are refused
 * with a reason and no patient data. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fhir_in.h"
#include "fhir_out.h"
#include "handover/ident.h"
#include "handover/sample.h"
#include "validate.h"

#ifndef HANDOVER_SHARED_DIR
#define HANDOVER_SHARED_DIR HANDOVER_SOURCE_DIR "/../shared"
#endif

#define GOLDEN                                                                 \
    HANDOVER_SHARED_DIR "/samples/fhir/outbound/"                              \
                        "discharge-message-bundle-to-gp.json"
#define EDITH_ID "e09339b8-a502-5cfc-af76-7873b23f04b6"
#define CT       "application/fhir+json; charset=utf-8"

static const fhir_out_opts gp_opts = {
    .destination = "Z99001",
    .destination_name = "Aldercote Surgery",
    .destination_endpoint = "https://gp-system.example/Z99001/fhir",
};

/* ------------------------------------------------------------ helpers */

/* s with every occurrence of from replaced by to (at least one). */
static char *
subst_all(const char *s, const char *from, const char *to)
{
    size_t fl = strlen(from), tl = strlen(to), count = 0;
    for (const char *p = strstr(s, from); p != NULL; p = strstr(p + fl, from))
        count++;
    cr_assert_gt(count, 0, "'%s' not found", from);
    char *out = malloc(strlen(s) + count * tl + 1);
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

/* Map ev (which must map) and parse the document. Returns it, owned. */
static json_t *
build(const Handover__Event *ev, const fhir_out_opts *o, fhir_out_result *r)
{
    char why[256] = "";
    int rc = fhir_out(ev, o, r, why, sizeof why);
    cr_assert_eq(rc, 0, "fhir_out returned %d: %s", rc, why);
    cr_assert_not_null(r->body);
    cr_assert_eq(strlen(r->body), r->len);
    json_error_t je;
    json_t *doc = json_loadb(r->body, r->len, JSON_REJECT_DUPLICATES, &je);
    cr_assert_not_null(doc, "the document does not parse: %s", je.text);
    return doc;
}

/* Map ev expecting a refusal; returns why (a static buffer). */
static const char *
refused(const Handover__Event *ev, const fhir_out_opts *o)
{
    static char why[256];
    fhir_out_result r;
    why[0] = '\0';
    int rc = fhir_out(ev, o, &r, why, sizeof why);
    cr_assert_eq(rc, -1, "fhir_out returned %d", rc);
    cr_assert_null(r.body);
    cr_assert_neq(why[0], '\0', "why is filled");
    return why;
}

/* The value at path ("entry[2].resource.name[0].given[1]") or NULL. */
static json_t *
at(json_t *doc, const char *path)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    json_t *v = doc;
    for (char *p = buf; v != NULL && *p != '\0';) {
        char *end = p + strcspn(p, ".[");
        char sep = *end;
        *end = '\0';
        if (*p != '\0')
            v = json_object_get(v, p);
        p = sep == '\0' ? end : end + 1;
        if (sep == '[') {
            char *close = strchr(p, ']');
            cr_assert_not_null(close);
            *close = '\0';
            v = json_array_get(v, (size_t)strtoul(p, NULL, 10));
            p = close + 1;
            if (*p == '.')
                p++;
        }
    }
    return v;
}

static const char *
str_at(json_t *doc, const char *path)
{
    return json_string_value(at(doc, path));
}

static void
expect_str(json_t *doc, const char *path, const char *want)
{
    const char *got = str_at(doc, path);
    cr_assert_not_null(got, "%s is missing", path);
    cr_assert_str_eq(got, want, "%s is '%s', want '%s'", path, got, want);
}

/* Every reference of the form urn:uuid: in doc names an entry. */
static void
expect_references_resolve(json_t *bundle, json_t *v)
{
    if (json_is_object(v)) {
        const char *key;
        json_t *child;
        json_object_foreach(v, key, child)
        {
            if (strcmp(key, "reference") == 0 && json_is_string(child) &&
                strncmp(json_string_value(child), "urn:uuid:", 9) == 0) {
                bool found = false;
                json_t *entries = json_object_get(bundle, "entry");
                for (size_t i = 0; i < json_array_size(entries); i++)
                    found = found || strcmp(str_at(json_array_get(entries, i),
                                                   "fullUrl"),
                                            json_string_value(child)) == 0;
                cr_assert(found, "reference %s names no entry",
                          json_string_value(child));
            }
            expect_references_resolve(bundle, child);
        }
    } else if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++)
            expect_references_resolve(bundle, json_array_get(v, i));
    }
}

/* ------------------------------------------------------ Edith's event */

/* Edith's discharge as the hub holds it after handover-nursing mapped
 * samples/hl7/valid/adt-a03-discharge-pathway1.hl7 (the council outbound
 * sample shows the same event): the sample helper's Edith, with the
 * sample's times, ids and diagnoses. Strings are literals and the
 * structs live in s, so nothing is freed. */
typedef struct edith {
    hov_sample s;
    Handover__Coded dx[2];
    Handover__Coded *dx_ptrs[2];
} edith;

static void
edith_init(edith *e)
{
    hov_sample *s = &e->s;
    hov_sample_init(s, "discharge", "9992468130");
    s->ev.event_id = EDITH_ID;
    s->ev.correlation_id = EDITH_ID;
    s->ev.occurred_at = "2025-03-14T10:05:00Z";
    s->ev.recorded_at = "2025-03-14T10:15:00Z";
    s->ev.received_at = "2025-03-14T10:15:00.944Z";
    s->source.ref = "V250301042";
    s->discharge.admitted_at = "2025-03-01T09:30:00Z";
    s->discharge.discharged_at = "2025-03-14T10:05:00Z";
    for (size_t i = 0; i < 2; i++) {
        handover__coded__init(&e->dx[i]);
        e->dx_ptrs[i] = &e->dx[i];
    }
    e->dx[0].code = "J189";
    e->dx[0].system = "I10";
    e->dx[0].text = "Pneumonia, unspecified";
    e->dx[1].code = "L891";
    e->dx[1].system = "I10";
    e->dx[1].text = "Stage II decubitus ulcer and pressure area";
    s->discharge.n_diagnoses = 2;
    s->discharge.diagnoses = e->dx_ptrs;
}

/* Key paths whose values the event carries: the same as the golden's. */
static const char *const same_paths[] = {
    "resourceType",
    "id",
    "identifier.system",
    "identifier.value",
    "type",
    "entry[0].resource.resourceType",
    "entry[0].resource.eventCoding.system",
    "entry[0].resource.eventCoding.code",
    "entry[0].resource.eventCoding.display",
    "entry[0].resource.destination[0].name",
    "entry[0].resource.destination[0].endpoint",
    "entry[0].resource.destination[0].receiver.identifier.system",
    "entry[0].resource.destination[0].receiver.identifier.value",
    "entry[0].resource.destination[0].receiver.display",
    "entry[0].resource.sender.identifier.system",
    "entry[0].resource.sender.identifier.value",
    "entry[0].resource.sender.display",
    "entry[0].resource.source.name",
    "entry[0].resource.source.software",
    "entry[0].resource.source.version",
    "entry[0].resource.source.endpoint",
    "entry[1].resource.resourceType",
    "entry[1].resource.extension[0].url",
    "entry[1].resource.extension[0].valueCodeableConcept.coding[0].system",
    "entry[1].resource.extension[0].valueCodeableConcept.coding[0].code",
    "entry[1].resource.extension[0].valueCodeableConcept.coding[0].display",
    "entry[1].resource.identifier[0].value",
    "entry[1].resource.status",
    "entry[1].resource.class.system",
    "entry[1].resource.class.code",
    "entry[1].resource.class.display",
    "entry[1].resource.period.start",
    "entry[1].resource.period.end",
    "entry[1].resource.hospitalization.dischargeDisposition.coding[0].system",
    "entry[1].resource.hospitalization.dischargeDisposition.coding[0].code",
    "entry[1].resource.hospitalization.dischargeDisposition.coding[0]."
    "display",
    "entry[1].resource.serviceProvider.identifier.system",
    "entry[1].resource.serviceProvider.identifier.value",
    "entry[2].resource.resourceType",
    "entry[2].resource.meta.profile[0]",
    "entry[2].resource.identifier[0].extension[0].url",
    "entry[2].resource.identifier[0].extension[0].valueCodeableConcept."
    "coding[0].system",
    "entry[2].resource.identifier[0].extension[0].valueCodeableConcept."
    "coding[0].code",
    "entry[2].resource.identifier[0].extension[0].valueCodeableConcept."
    "coding[0].display",
    "entry[2].resource.identifier[0].system",
    "entry[2].resource.identifier[0].value",
    "entry[2].resource.name[0].use",
    "entry[2].resource.name[0].family",
    "entry[2].resource.name[0].given[0]",
    "entry[2].resource.name[0].given[1]",
    "entry[2].resource.name[0].prefix[0]",
    "entry[2].resource.telecom[0].system",
    "entry[2].resource.telecom[0].value",
    "entry[2].resource.gender",
    "entry[2].resource.birthDate",
    "entry[2].resource.address[0].use",
    "entry[2].resource.address[0].line[0]",
    "entry[2].resource.address[0].line[1]",
    "entry[2].resource.address[0].city",
    "entry[2].resource.address[0].postalCode",
    "entry[2].resource.generalPractitioner[0].identifier.system",
    "entry[2].resource.generalPractitioner[0].identifier.value",
    "entry[2].resource.generalPractitioner[0].display",
    "entry[3].resource.resourceType",
    "entry[3].resource.status",
    "entry[3].resource.intent",
    "entry[3].resource.title",
    "entry[3].resource.activity[0].detail.kind",
    "entry[3].resource.activity[0].detail.code.coding[0].system",
    "entry[3].resource.activity[0].detail.code.coding[0].code",
    "entry[3].resource.activity[0].detail.code.coding[0].display",
    "entry[3].resource.activity[0].detail.status",
    "entry[3].resource.activity[0].detail.description",
    "entry[3].resource.activity[1].detail.kind",
    "entry[3].resource.activity[1].detail.code.coding[0].code",
    "entry[3].resource.activity[1].detail.code.coding[0].display",
    "entry[3].resource.activity[1].detail.description",
    "entry[4].resource.resourceType",
    "entry[4].resource.status",
    "entry[4].resource.note[0].text",
    "entry[5].resource.resourceType",
    "entry[5].resource.status",
    "entry[6].resource.resourceType",
    "entry[6].resource.status",
    "entry[6].resource.note[0].text",
    NULL};

static json_t *
golden(void)
{
    json_error_t je;
    json_t *g = json_load_file(GOLDEN, JSON_REJECT_DUPLICATES, &je);
    cr_assert_not_null(g, "golden file: %s", je.text);
    return g;
}

Test(fhir_out, discharge_matches_golden, .timeout = 10)
{
    edith e;
    edith_init(&e);
    fhir_out_result r;
    json_t *doc = build(&e.s.ev, &gp_opts, &r);
    json_t *g = golden();

    cr_assert_str_eq(r.path, "Bundle");
    cr_assert_str_eq(r.if_none_exist, "identifier=https://handover.example/"
                                      "fhir/Id/event-id|" EDITH_ID);
    cr_assert_eq(json_array_size(at(doc, "entry")),
                 json_array_size(at(g, "entry")), "same entries");
    for (size_t i = 0; same_paths[i] != NULL; i++) {
        const char *want = str_at(g, same_paths[i]);
        cr_assert_not_null(want, "golden lacks %s", same_paths[i]);
        expect_str(doc, same_paths[i], want);
    }
    /* References between entries have the golden's shape. */
    static const char *const links[][2] = {
        {"entry[0].resource.focus[0].reference", "entry[1].fullUrl"},
        {"entry[1].resource.subject.reference", "entry[2].fullUrl"},
        {"entry[3].resource.subject.reference", "entry[2].fullUrl"},
        {"entry[3].resource.encounter.reference", "entry[1].fullUrl"},
        {"entry[4].resource.subject.reference", "entry[2].fullUrl"},
        {"entry[5].resource.context.reference", "entry[1].fullUrl"},
    };
    for (size_t i = 0; i < sizeof links / sizeof links[0]; i++) {
        cr_assert_str_eq(str_at(g, links[i][0]), str_at(g, links[i][1]));
        cr_assert_str_eq(str_at(doc, links[i][0]), str_at(doc, links[i][1]),
                         "%s names %s", links[i][0], links[i][1]);
    }
    expect_references_resolve(doc, doc);
    for (size_t i = 0; i < json_array_size(at(doc, "entry")); i++) {
        char p[64], q[64];
        snprintf(p, sizeof p, "entry[%zu].fullUrl", i);
        snprintf(q, sizeof q, "entry[%zu].resource.id", i);
        cr_assert_str_eq(str_at(doc, p) + 9, str_at(doc, q),
                         "an entry's id is its fullUrl's uuid");
    }

    /* What the event cannot supply: the golden was written by hand.
     *  - Bundle.timestamp: the golden's is the send time; ours is the
     *    hub's received_at, so a redelivery is the same document. */
    expect_str(doc, "timestamp", "2025-03-14T10:15:00.944Z");
    cr_assert_str_eq(str_at(g, "timestamp"), "2025-03-14T10:15:02Z");
    /*  - fullUrls: the golden's are random; ours are version 5 UUIDs in
     *    the event id's namespace (stable across redeliveries). */
    char want[37];
    hov_error err = {0};
    cr_assert_eq(hov_uuid_v5(EDITH_ID, "Encounter", 9, want, &err), HOV_OK);
    cr_assert_str_eq(str_at(doc, "entry[1].resource.id"), want);
    /*  - The trust's visit-number system is not in the event: source.ref
     *    travels under Handover's source-ref system with its assigner. */
    cr_assert_str_eq(str_at(g, "entry[1].resource.identifier[0].system"),
                     "https://fhir.north-fell.example/Id/visit-number");
    expect_str(doc, "entry[1].resource.identifier[0].system",
               "https://handover.example/fhir/Id/source-ref");
    expect_str(doc, "entry[1].resource.identifier[0].assigner.identifier.value",
               "RZZ01");
    /*  - The golden's reasonCode is a hand-written summary; ours are the
     *    event's coded diagnoses. */
    expect_str(doc, "entry[1].resource.reasonCode[0].coding[0].system",
               "http://hl7.org/fhir/sid/icd-10");
    expect_str(doc, "entry[1].resource.reasonCode[0].coding[0].code", "J18.9");
    expect_str(doc, "entry[1].resource.reasonCode[0].text",
               "Pneumonia, unspecified");
    expect_str(doc, "entry[1].resource.reasonCode[1].coding[0].code", "L89.1");
    /*  - The ward is written as the PAS sent it (WARD 12, not re-cased). */
    expect_str(doc, "entry[1].resource.location[0].location.display",
               "WARD 12, Fellgate University Hospital");
    cr_assert_str_eq(str_at(g, "entry[1].resource.location[0].location."
                               "display"),
                     "Ward 12, Fellgate University Hospital");
    /*  - The trust's name is not in the event: serviceProvider has its
     *    code only. */
    cr_assert_null(at(doc, "entry[1].resource.serviceProvider.display"));
    /*  - The event does not say what kind of phone it is. */
    cr_assert_null(at(doc, "entry[2].resource.telecom[0].use"));
    /*  - HL7 follow-ups carry no dates: no scheduledPeriod, and so both
     *    activities are not-started (see discharge_follow_up_dates). */
    cr_assert_null(at(doc, "entry[3].resource.activity[0].detail."
                           "scheduledPeriod"));
    expect_str(doc, "entry[3].resource.activity[1].detail.status",
               "not-started");
    /*  - medications_summary does not separate medicine and dose: each
     *    line after its prefix is the medication text, the prefix the
     *    note. */
    for (size_t i = 4; i <= 6; i++) {
        char p[96];
        snprintf(p, sizeof p,
                 "entry[%zu].resource.medicationCodeableConcept.text", i);
        const char *ours = str_at(doc, p), *theirs = str_at(g, p);
        size_t word = strcspn(theirs, " ");
        cr_assert(strncmp(ours, theirs, word) == 0,
                  "%s: '%s' names the golden's medicine '%.*s'", p, ours,
                  (int)word, theirs);
    }
    expect_str(doc, "entry[5].resource.note[0].text", "CHANGED");
    cr_assert(strncmp(str_at(g, "entry[5].resource.note[0].text"), "CHANGED",
                      7) == 0);
    /*  - Beyond the golden: the author, the attending clinician and the
     *    discharge method. */
    expect_str(doc, "entry[0].resource.author.display", "Emeka Okonjo");
    expect_str(doc,
               "entry[1].resource.participant[0].individual.identifier."
               "value",
               "C9999998");
    expect_str(doc,
               "entry[1].resource.extension[1].valueCodeableConcept."
               "coding[0].code",
               "1");

    json_decref(g);
    json_decref(doc);
    fhir_out_result_free(&r);
}

/* With the dates the golden shows, the activities match it too. */
Test(fhir_out, discharge_follow_up_dates, .timeout = 10)
{
    edith e;
    edith_init(&e);
    e.s.follow_up[0].due_by = "2025-03-16T10:05:00Z";
    e.s.follow_up[1].start = "2025-03-14T10:05:00Z";
    fhir_out_result r;
    json_t *doc = build(&e.s.ev, &gp_opts, &r);
    json_t *g = golden();
    static const char *const paths[] = {
        "entry[3].resource.activity[0].detail.status",
        "entry[3].resource.activity[0].detail.scheduledPeriod.end",
        "entry[3].resource.activity[1].detail.status",
        "entry[3].resource.activity[1].detail.scheduledPeriod.start", NULL};
    for (size_t i = 0; paths[i] != NULL; i++)
        expect_str(doc, paths[i], str_at(g, paths[i]));
    json_decref(g);
    json_decref(doc);
    fhir_out_result_free(&r);
}

Test(fhir_out, redelivery_is_byte_identical, .timeout = 10)
{
    edith e;
    edith_init(&e);
    fhir_out_result a, b;
    char why[256];
    cr_assert_eq(fhir_out(&e.s.ev, &gp_opts, &a, why, sizeof why), 0);
    cr_assert_eq(fhir_out(&e.s.ev, &gp_opts, &b, why, sizeof why), 0);
    cr_assert_eq(a.len, b.len);
    cr_assert_eq(memcmp(a.body, b.body, a.len), 0);
    fhir_out_result_free(&a);
    fhir_out_result_free(&b);
}

Test(fhir_out, discharge_pathway_zero_and_minimal, .timeout = 10)
{
    edith e;
    edith_init(&e);
    hov_sample_set_pathway(&e.s, 0);
    e.s.discharge.n_follow_up = 0;
    e.s.discharge.medications_summary = "";
    e.s.discharge.responsible_clinician = NULL;
    e.s.discharge.destination = NULL;
    e.s.ev.received_at = "";
    fhir_out_opts o = gp_opts;
    o.now_ms = 1742000000000ULL; /* 2025-03-15T00:53:20Z */
    o.destination_endpoint = NULL;
    fhir_out_result r;
    json_t *doc = build(&e.s.ev, &o, &r);
    expect_str(doc, "timestamp", "2025-03-15T00:53:20.000Z");
    expect_str(doc,
               "entry[1].resource.extension[0].valueCodeableConcept.coding[0]."
               "code",
               "0");
    cr_assert_null(at(doc, "entry[0].resource.destination"));
    cr_assert_null(at(doc, "entry[1].resource.hospitalization"));
    cr_assert_null(at(doc, "entry[1].resource.participant"));
    /* Nothing to plan and no medicines: MessageHeader, Encounter,
     * Patient. */
    cr_assert_eq(json_array_size(at(doc, "entry")), 3);
    json_decref(doc);
    fhir_out_result_free(&r);

    /* Notes of a discharge go on the CarePlan with the inbound prefixes. */
    edith_init(&e);
    e.s.ev.clinical_details = "Sacral dressing changed on 13 March.";
    e.s.discharge.n_follow_up = 0;
    doc = build(&e.s.ev, &gp_opts, &r);
    expect_str(doc, "entry[3].resource.resourceType", "CarePlan");
    expect_str(doc, "entry[3].resource.note[0].text",
               "Clinical: Sacral dressing changed on 13 March.");
    json_decref(doc);
    fhir_out_result_free(&r);
}

/* --------------------------------------------------------- outcomes */

/* Domain 6.3: canonical status, Task.status, businessStatus. */
static const char *const task_table[][3] = {
    {"acknowledged", "completed", "acknowledged"},
    {"accepted", "accepted", "accepted"},
    {"rejected", "rejected", "rejected"},
    {"completed", "completed", "completed"},
    {"cancelled", "cancelled", "cancelled"},
    {"delivered", "completed", "delivered"},
    {"collected", "completed", "collected"},
    {"cannot_deliver", "failed", "cannot-deliver"},
};

Test(fhir_out, task_for_each_outcome_status, .timeout = 10)
{
    for (size_t i = 0; i < sizeof task_table / sizeof task_table[0]; i++) {
        hov_sample s;
        hov_sample_init(&s, "outcome", "9996118428");
        hov_sample_set_reply(&s, "ae41b2a2-c361-59f0-b094-ae08febec1f6",
                             task_table[i][0]);
        hov_error err = {0};
        validate_opts vo = {.allow_test_nhs_numbers = true};
        cr_assert_eq(validate_event(&s.ev, &vo, &err), HOV_OK, "%s", err.msg);
        fhir_out_result r;
        json_t *doc = build(&s.ev, &gp_opts, &r);
        cr_assert_str_eq(r.path, "Task");
        char ine[128];
        snprintf(ine, sizeof ine,
                 "identifier=https://handover.example/fhir/Id/event-id|%s",
                 s.event_id);
        cr_assert_str_eq(r.if_none_exist, ine);
        expect_str(doc, "resourceType", "Task");
        expect_str(doc, "identifier[0].system",
                   "https://handover.example/fhir/Id/event-id");
        expect_str(doc, "identifier[0].value", s.event_id);
        expect_str(doc, "status", task_table[i][1]);
        expect_str(doc, "businessStatus.coding[0].system",
                   "https://handover.example/fhir/CodeSystem/outcome-status");
        expect_str(doc, "businessStatus.coding[0].code", task_table[i][2]);
        expect_str(doc, "intent", "order");
        expect_str(doc, "focus.identifier.system",
                   "https://handover.example/fhir/Id/event-id");
        expect_str(doc, "focus.identifier.value",
                   "ae41b2a2-c361-59f0-b094-ae08febec1f6");
        expect_str(doc, "for.identifier.value", "9996118428");
        expect_str(doc, "owner.identifier.value", "RZZ40");
        expect_str(doc, "lastModified", s.occurred_at);
        const char *reason = s.outcome.reason_code;
        if (reason[0] != '\0') {
            expect_str(doc, "statusReason.coding[0].system",
                       "https://handover.example/fhir/CodeSystem/"
                       "outcome-reason");
            expect_str(doc, "statusReason.coding[0].code", reason);
        } else {
            cr_assert_null(at(doc, "statusReason"));
        }
        if (s.outcome.n_items > 0) {
            expect_str(doc, "output[0].type.coding[0].code", "BED-PROF-01");
            if (s.outcome_item.asset_id[0] != '\0')
                expect_str(doc, "output[0].valueReference.identifier.value",
                           "CES-A-004512");
            else
                cr_assert_eq(json_integer_value(
                                 at(doc, "output[0].valueQuantity.value")),
                             1);
        } else {
            cr_assert_null(at(doc, "output"));
        }
        json_decref(doc);
        fhir_out_result_free(&r);
    }
}

/* A Task from fhir_out, given the GP's own identifier, reads back through
 * fhir_in into the same outcome. */
Test(fhir_out, task_round_trip, .timeout = 10)
{
    static const char *const statuses[] = {
        "acknowledged", "accepted", "rejected", "completed", "cancelled", NULL};
    for (size_t i = 0; statuses[i] != NULL; i++) {
        hov_sample s;
        hov_sample_init(&s, "outcome", "9996118428");
        hov_sample_set_reply(&s, "ae41b2a2-c361-59f0-b094-ae08febec1f6",
                             statuses[i]);
        hov_sample_set_source(&s, "Z99001");
        s.outcome.reason_text = "Seen at home; plan agreed.";
        s.outcome.planned_for = "2025-03-20";
        fhir_out_result r;
        json_t *doc = build(&s.ev, &gp_opts, &r);
        json_object_set_new(
            json_array_get(json_object_get(doc, "identifier"), 0), "system",
            json_string("https://fhir.gp-system.example/Id/task"));
        char *text = json_dumps(doc, JSON_COMPACT);
        fhir_in_result in;
        int rc = fhir_in(FHIR_IN_TASK, text, strlen(text), CT, NULL, &in);
        cr_assert_eq(rc, 0, "%s: fhir_in %d: %s", statuses[i], rc,
                     in.oo.issues[0].diagnostics);
        const Handover__Event *ev = in.event;
        cr_assert_str_eq(ev->outcome->status, statuses[i]);
        cr_assert_str_eq(ev->outcome->reason_code, s.outcome.reason_code);
        cr_assert_str_eq(ev->outcome->reason_text, s.outcome.reason_text);
        cr_assert_str_eq(ev->in_reply_to, s.in_reply_to);
        cr_assert_str_eq(ev->occurred_at, s.occurred_at);
        cr_assert_str_eq(ev->source->org->code, "Z99001");
        cr_assert_str_eq(ev->patient->nhs_number, "9996118428");
        fhir_in_result_free(&in);
        free(text);
        json_decref(doc);
        fhir_out_result_free(&r);
    }
}

/* ---------------------------------------------- referral and order */

/* A copy of a voluntary referral routed to the practice: a ServiceRequest
 * that fhir_in reads back into the same referral. */
Test(fhir_out, referral_service_request_round_trip, .timeout = 10)
{
    hov_sample s;
    hov_sample_init(&s, "referral", "9992024682");
    hov_sample_set_source(&s, "Z99003");
    hov_sample_set_service(&s, "social-prescribing");
    hov_sample_add_destination(&s, "local:VCS-0001");
    hov_sample_set_consent(&s, "explicit", "2025-03-14T10:05:00Z");
    s.ev.priority = "urgent";
    s.ev.clinical_details = "Type 2 diabetes.";
    fhir_out_result r;
    json_t *doc = build(&s.ev, &gp_opts, &r);
    cr_assert_str_eq(r.path, "ServiceRequest");
    expect_str(doc, "resourceType", "ServiceRequest");
    expect_str(doc, "contained[0].resourceType", "Patient");
    expect_str(doc, "contained[0].id", "pat");
    expect_str(doc, "contained[1].resourceType", "PractitionerRole");
    expect_str(doc, "contained[2].resourceType", "Consent");
    expect_str(doc, "identifier[0].value", s.event_id);
    expect_str(doc, "code.coding[0].code", "social-prescribing");
    expect_str(doc, "priority", "urgent");
    expect_str(doc, "subject.reference", "#pat");
    expect_str(doc, "requester.reference", "#requester");
    expect_str(doc, "performer[0].identifier.system",
               "https://handover.example/fhir/Id/local-organisation");
    expect_str(doc, "performer[0].identifier.value", "VCS-0001");
    expect_str(doc, "supportingInfo[0].reference", "#consent");
    expect_str(doc, "note[0].text", "Clinical: Type 2 diabetes.");

    /* Back in, with the practice's own identifier system. */
    json_object_set_new(json_array_get(json_object_get(doc, "identifier"), 0),
                        "system",
                        json_string("https://fhir.gp-system.example/Id/"
                                    "referral"));
    char *text = json_dumps(doc, JSON_COMPACT);
    fhir_in_result in;
    int rc =
        fhir_in(FHIR_IN_SERVICE_REQUEST, text, strlen(text), CT, NULL, &in);
    cr_assert_eq(rc, 0, "fhir_in %d: %s", rc, in.oo.issues[0].diagnostics);
    const Handover__Event *ev = in.event;
    cr_assert_str_eq(ev->referral->service, "social-prescribing");
    cr_assert_str_eq(ev->priority, "urgent");
    cr_assert_str_eq(ev->reason, s.ev.reason);
    cr_assert_str_eq(ev->clinical_details, "Type 2 diabetes.");
    cr_assert_str_eq(ev->social_details, s.ev.social_details);
    cr_assert_str_eq(ev->source->org->code, "Z99003");
    cr_assert_str_eq(ev->source->author->name, s.author.name);
    cr_assert_str_eq(ev->source->author->role, s.author.role);
    cr_assert_str_eq(ev->source->author->id, s.author.id);
    cr_assert_eq(ev->n_destinations, 1);
    cr_assert_str_eq(ev->destinations[0]->code, "local:VCS-0001");
    cr_assert_str_eq(ev->consent->basis, "explicit");
    cr_assert_str_eq(ev->consent->recorded_at, "2025-03-14T10:05:00Z");
    const Handover__Patient *p = ev->patient, *q = &s.patient;
    cr_assert_str_eq(p->nhs_number, q->nhs_number);
    cr_assert_str_eq(p->family_name, q->family_name);
    cr_assert_str_eq(p->date_of_birth, q->date_of_birth);
    cr_assert_str_eq(p->postcode, q->postcode);
    cr_assert_eq(p->n_address_lines, q->n_address_lines);
    for (size_t i = 0; i < p->n_address_lines; i++)
        cr_assert_str_eq(p->address_lines[i], q->address_lines[i]);
    validate_opts vo = {.allow_test_nhs_numbers = true};
    hov_error err = {0};
    cr_assert_eq(validate_event(ev, &vo, &err), HOV_OK, "%s", err.msg);
    fhir_in_result_free(&in);
    free(text);
    json_decref(doc);
    fhir_out_result_free(&r);
}

Test(fhir_out, equipment_order_bundle_round_trip, .timeout = 10)
{
    hov_sample s;
    hov_sample_init(&s, "equipment_order", "9993001007");
    hov_sample_set_source(&s, "Z99002");
    fhir_out_result r;
    json_t *doc = build(&s.ev, &gp_opts, &r);
    cr_assert_str_eq(r.path, "Bundle");
    expect_str(doc, "type", "message");
    expect_str(doc, "entry[0].resource.eventCoding.code", "equipment-order");
    cr_assert_eq(json_array_size(at(doc, "entry[0].resource.focus")), 3);
    expect_str(doc, "entry[1].resource.resourceType", "Patient");
    expect_str(doc, "entry[2].resource.resourceType", "DeviceRequest");
    expect_str(doc, "entry[4].resource.codeCodeableConcept.coding[0].code",
               "COMMODE-STD");
    expect_str(doc, "entry[2].resource.groupIdentifier.value", s.event_id);
    expect_str(doc, "entry[2].resource.occurrencePeriod.end", s.required_by);
    expect_references_resolve(doc, doc);

    /* Back in, as the practice's own order. */
    char *dumped = json_dumps(doc, JSON_COMPACT);
    char *text = subst_all(dumped, "https://handover.example/fhir/Id/event-id",
                           "https://fhir.gp-system.example/Id/order");
    free(dumped);
    fhir_in_result in;
    int rc = fhir_in(FHIR_IN_MESSAGE, text, strlen(text), CT, NULL, &in);
    cr_assert_eq(rc, 0, "fhir_in %d: %s %s", rc, in.oo.issues[0].diagnostics,
                 in.oo.issues[0].expression[1]);
    const Handover__EquipmentOrder *o = in.event->equipment_order;
    cr_assert_eq(o->n_items, 3);
    for (size_t i = 0; i < 3; i++) {
        cr_assert_str_eq(o->items[i]->item_code, s.items[i].item_code);
        cr_assert_str_eq(o->items[i]->description, s.items[i].description);
        cr_assert_eq(o->items[i]->quantity, s.items[i].quantity);
    }
    cr_assert_str_eq(o->required_by, s.required_by);
    cr_assert_str_eq(o->prescriber->name, s.prescriber.name);
    cr_assert_str_eq(in.event->access_notes, s.ev.access_notes);
    cr_assert_str_eq(in.event->priority, "urgent");
    cr_assert_str_eq(in.event->destinations[0]->code, "8ZZ99");
    cr_assert_eq(o->delivery_address->n_lines, s.patient.n_address_lines);
    fhir_in_result_free(&in);
    free(text);
    json_decref(doc);
    fhir_out_result_free(&r);

    /* A delivery elsewhere travels as the delivery-address parameter. */
    static char *lines[] = {"Brackenby Day Centre", "Station Road"};
    s.delivery_address.lines = lines;
    s.delivery_address.n_lines = 2;
    s.delivery_address.postcode = "FE7 2QS";
    doc = build(&s.ev, &gp_opts, &r);
    expect_str(doc, "entry[2].resource.parameter[1].valueCodeableConcept.text",
               "Brackenby Day Centre\nStation Road\nFE7 2QS");
    json_decref(doc);
    fhir_out_result_free(&r);
}

/* ------------------------------------------------------------ refusals */

Test(fhir_out, refusals, .timeout = 10)
{
    hov_sample s;
    /* A collection has no agreed FHIR form. */
    hov_sample_init(&s, "equipment_order", "9993001007");
    s.order.action = "collect";
    cr_assert_not_null(strstr(refused(&s.ev, &gp_opts), "collect"));
    /* An unknown outcome status. */
    hov_sample_init(&s, "outcome", "9996118428");
    hov_sample_set_reply(&s, "ae41b2a2-c361-59f0-b094-ae08febec1f6", "lost");
    cr_assert_not_null(strstr(refused(&s.ev, &gp_opts), "lost"));
    /* An outcome that answers nothing. */
    hov_sample_init(&s, "outcome", "9996118428");
    cr_assert_not_null(strstr(refused(&s.ev, &gp_opts), "in_reply_to"));
    /* A malformed time is refused, naming the field, never its value;
     * the event id leads. */
    edith e;
    edith_init(&e);
    e.s.discharge.admitted_at = "01/03/2025 09:30";
    const char *why = refused(&e.s.ev, &gp_opts);
    cr_assert_not_null(strstr(why, "discharge.admitted_at"), "%s", why);
    cr_assert(strncmp(why, "event " EDITH_ID, 42) == 0, "%s", why);
    cr_assert_null(strstr(why, "01/03/2025"));
    /* Text that is not UTF-8. */
    edith_init(&e);
    e.s.patient.family_name = "Harr\xf6gate";
    why = refused(&e.s.ev, &gp_opts);
    cr_assert_not_null(strstr(why, "patient.family_name"), "%s", why);
    cr_assert_null(strstr(why, "Harr"));
    /* A date of birth that is not a date. */
    edith_init(&e);
    e.s.patient.date_of_birth = "17/04/1938";
    why = refused(&e.s.ev, &gp_opts);
    cr_assert_null(strstr(why, "1938"), "%s", why);
    /* No body, and no event id. */
    hov_sample_init(&s, "referral", NULL);
    s.ev.body_case = HANDOVER__EVENT__BODY__NOT_SET;
    refused(&s.ev, &gp_opts);
    hov_sample_init(&s, "referral", NULL);
    s.ev.event_id = "";
    refused(&s.ev, &gp_opts);
}

/* Whatever is missing, a document still builds (the view may have left
 * it out) and parses. */
Test(fhir_out, sparse_events_map, .timeout = 10)
{
    static const char *const types[] = {"referral", "discharge",
                                        "equipment_order", "outcome", NULL};
    for (size_t i = 0; types[i] != NULL; i++) {
        hov_sample s;
        hov_sample_init(&s, types[i], NULL);
        hov_sample_set_reply(&s, EDITH_ID, "acknowledged");
        s.ev.source = NULL;
        s.ev.patient = NULL;
        s.ev.consent = NULL;
        s.ev.n_destinations = 0;
        s.discharge.destination = NULL;
        s.discharge.responsible_clinician = NULL;
        s.order.delivery_address = NULL;
        s.order.prescriber = NULL;
        fhir_out_result r;
        json_t *doc = build(&s.ev, NULL, &r);
        cr_assert(json_is_object(doc));
        json_decref(doc);
        fhir_out_result_free(&r);
    }
}
