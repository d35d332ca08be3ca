/* adapters/gp/fhir_in: every FHIR partner sample gives the answer
 * samples/README.md claims (an event the hub's validate_event accepts, with
 * the event id of domain 3.8, or the status, issue code and expression of
 * the README's table); then the media-type rules, the JSON rules of domain
 * 3, and each Handover rule of domain 6.3 to 6.5 on a sample changed in one
 * place. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fhir_in.h"
#include "handover/ident.h"
#include "validate.h"

#ifndef HANDOVER_SHARED_DIR
#define HANDOVER_SHARED_DIR HANDOVER_SOURCE_DIR "/../shared"
#endif

#define SAMPLES HANDOVER_SHARED_DIR "/samples/fhir"
#define CT      "application/fhir+json; charset=utf-8"

/* Today is injected so that the date-of-birth check does not depend on
 * the day the suite runs (the samples are from March 2025). */
static const fhir_in_opts test_opts = {.today = "2025-03-20"};
static const validate_opts vopts = {.allow_test_nhs_numbers = true};

/* ------------------------------------------------------------ helpers */

/* The file's bytes, malloc'd and NUL-terminated; *len gets the length. */
static char *
read_file(const char *path, size_t *len)
{
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

static char *
read_sample(const char *rel, size_t *len)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", SAMPLES, rel);
    return read_file(path, len);
}

/* s with every occurrence of from replaced by to (at least one must be
 * there, so a test cannot silently change nothing). */
static char *
subst_all(const char *s, const char *from, const char *to)
{
    size_t fl = strlen(from), tl = strlen(to), count = 0;
    for (const char *p = strstr(s, from); p != NULL; p = strstr(p + fl, from))
        count++;
    cr_assert_gt(count, 0, "'%s' not found in the request", from);
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

static int
map_text(fhir_in_endpoint ep, const char *text, fhir_in_result *r)
{
    return fhir_in(ep, text, strlen(text), CT, &test_opts, r);
}

static int
map_sample(fhir_in_endpoint ep, const char *rel, fhir_in_result *r)
{
    size_t len;
    char *data = read_sample(rel, &len);
    int rc = fhir_in(ep, data, len, CT, &test_opts, r);
    free(data);
    return rc;
}

/* The OperationOutcome as JSON: rendered, parsed back, checked for shape.
 * Returns the parsed document (owned). */
static json_t *
outcome_doc(const fhir_in_result *r)
{
    char *text = fhir_in_outcome_json(&r->oo);
    cr_assert_not_null(text);
    json_error_t je;
    json_t *doc = json_loads(text, JSON_REJECT_DUPLICATES, &je);
    cr_assert_not_null(doc, "OperationOutcome does not parse: %s: %s", je.text,
                       text);
    free(text);
    cr_assert_str_eq(json_string_value(json_object_get(doc, "resourceType")),
                     "OperationOutcome");
    json_t *issues = json_object_get(doc, "issue");
    cr_assert(json_is_array(issues) && json_array_size(issues) > 0);
    for (size_t i = 0; i < json_array_size(issues); i++) {
        json_t *is = json_array_get(issues, i);
        cr_assert(json_is_string(json_object_get(is, "severity")));
        cr_assert(json_is_string(json_object_get(is, "code")));
    }
    return doc;
}

/* Every issue's text, for checks that no patient data leaks into them. */
static void
expect_no_leak(const fhir_in_result *r, const char *const *words)
{
    char *text = fhir_in_outcome_json(&r->oo);
    cr_assert_not_null(text);
    for (size_t i = 0; words[i] != NULL; i++)
        cr_assert_null(strstr(text, words[i]),
                       "OperationOutcome repeats patient data '%s': %s",
                       words[i], text);
    free(text);
}

/* Irene's (and Patrick's) details, which no diagnostic may repeat. */
static const char *const irene_words[] = {
    "Calvert",  "Irene",  "1946-05-28", "FE4 5NW",  "FE45NW", "Orchard",
    "Croxwell", "960845", "Bereaved",   "daughter", NULL};
static const char *const patrick_words[] = {
    "O'Driscoll", "Patrick", "1949-07-21", "FE2 8NR", "Mill Lane",
    "960587",     "ulcer",   "dementia",   NULL};

static void
expect_event(int rc, const fhir_in_result *r, const char *what)
{
    if (rc != 0) {
        char *oo = fhir_in_outcome_json(&r->oo);
        cr_assert_eq(rc, 0, "%s: status %d: %s", what, rc, oo);
        free(oo);
    }
    cr_assert_not_null(r->event, "%s: no event", what);
    cr_assert_eq(r->oo.n, 0);
    hov_error err = {0};
    hov_err vrc = validate_event(r->event, &vopts, &err);
    cr_assert_eq(vrc, HOV_OK, "%s: validate_event: %s: %s", what,
                 hov_errname(vrc), err.msg);
}

/* The refusal has status and, as its issue number i, code (and, when not
 * NULL, expression[0] expr and a diagnostic containing diag). */
static void
expect_issue(int rc, const fhir_in_result *r, int status, size_t i,
             const char *code, const char *expr, const char *diag)
{
    char *oo = fhir_in_outcome_json(&r->oo);
    cr_assert_eq(rc, status, "status %d, want %d: %s", rc, status, oo);
    cr_assert_eq(r->status, status);
    cr_assert_null(r->event);
    cr_assert_gt(r->oo.n, i, "want issue %zu: %s", i, oo);
    const fhir_in_issue *is = &r->oo.issues[i];
    cr_assert_str_eq(is->severity, "error");
    cr_assert_str_eq(is->code, code, "issue %zu code %s, want %s: %s", i,
                     is->code, code, oo);
    if (expr != NULL)
        cr_assert_str_eq(is->expression[0], expr,
                         "issue %zu expression %s, want %s: %s", i,
                         is->expression[0], expr, oo);
    if (diag != NULL)
        cr_assert_not_null(strstr(is->diagnostics, diag),
                           "issue %zu diagnostics lack '%s': %s", i, diag, oo);
    json_decref(outcome_doc(r));
    free(oo);
}

/* The version 5 event id of domain 3.8 for a FHIR business identifier,
 * computed independently of fhir_in. */
static void
expected_id(const char *system, const char *value, char out[37])
{
    char name[512];
    int n = snprintf(name, sizeof name, "fhir|%s|%s", system, value);
    hov_error err = {0};
    cr_assert_eq(hov_uuid_v5(HOV_EVENT_ID_NS, name, (size_t)n, out, &err),
                 HOV_OK);
}

static uint8_t *
pack(const Handover__Event *ev, size_t *len)
{
    *len = handover__event__get_packed_size(ev);
    uint8_t *buf = malloc(*len > 0 ? *len : 1);
    cr_assert_not_null(buf);
    cr_assert_eq(handover__event__pack(ev, buf), *len);
    return buf;
}

/* The endpoint a sample is posted to, from its resourceType. */
static fhir_in_endpoint
endpoint_of(const char *data, size_t len)
{
    json_error_t je;
    json_t *doc = json_loadb(data, len, 0, &je);
    cr_assert_not_null(doc);
    const char *t = json_string_value(json_object_get(doc, "resourceType"));
    cr_assert_not_null(t);
    fhir_in_endpoint ep = FHIR_IN_MESSAGE;
    if (strcmp(t, "ServiceRequest") == 0)
        ep = FHIR_IN_SERVICE_REQUEST;
    else if (strcmp(t, "DeviceRequest") == 0)
        ep = FHIR_IN_DEVICE_REQUEST;
    else if (strcmp(t, "Task") == 0)
        ep = FHIR_IN_TASK;
    json_decref(doc);
    return ep;
}

/* ------------------------------------------------------- valid samples */

Test(fhir_in, every_valid_sample_maps_to_a_valid_event, .timeout = 10)
{
    DIR *d = opendir(SAMPLES "/valid");
    cr_assert_not_null(d);
    size_t files = 0;
    for (struct dirent *de = readdir(d); de != NULL; de = readdir(d)) {
        if (strstr(de->d_name, ".json") == NULL)
            continue;
        char path[512];
        snprintf(path, sizeof path, "%s/valid/%s", SAMPLES, de->d_name);
        size_t len;
        char *data = read_file(path, &len);
        fhir_in_result r;
        int rc = fhir_in(endpoint_of(data, len), data, len, CT, &test_opts, &r);
        expect_event(rc, &r, de->d_name);
        cr_assert_neq(r.identifier[0], '\0');
        fhir_in_result_free(&r);
        free(data);
        files++;
    }
    closedir(d);
    cr_assert_geq(files, 3);
}

Test(fhir_in, referral_message_bundle, .timeout = 10)
{
    fhir_in_result r;
    int rc =
        map_sample(FHIR_IN_MESSAGE, "valid/referral-message-bundle.json", &r);
    expect_event(rc, &r, "referral bundle");
    const Handover__Event *ev = r.event;
    /* samples/README.md: Patrick's referral. */
    cr_assert_str_eq(ev->event_id, "ae41b2a2-c361-59f0-b094-ae08febec1f6");
    cr_assert_str_eq(ev->correlation_id, ev->event_id);
    cr_assert_str_eq(ev->in_reply_to, "");
    cr_assert_str_eq(ev->schema, "handover.event.v1");
    cr_assert_str_eq(ev->event_type, "referral");
    cr_assert_str_eq(r.resource_type, "ServiceRequest");
    cr_assert_str_eq(r.identifier, "https://fhir.gp-system.example/Id/"
                                   "referral|Z99001-REF-000318");
    cr_assert_str_eq(ev->occurred_at, "2025-03-14T16:40:00Z");
    cr_assert_str_eq(ev->recorded_at, "2025-03-14T16:42:10Z");
    cr_assert_str_eq(ev->received_at, "");
    cr_assert_str_eq(ev->source->org->code, "Z99001");
    cr_assert_str_eq(ev->source->org->name, "Aldercote Surgery");
    cr_assert_str_eq(ev->source->agency, "", "the hub sets the agency");
    cr_assert_str_eq(ev->source->system, "Aldercote Surgery clinical system");
    cr_assert_str_eq(ev->source->ref, "Z99001-REF-000318");
    cr_assert_not_null(ev->source->author);
    cr_assert_str_eq(ev->source->author->name, "Ruth Morland");
    cr_assert_str_eq(ev->source->author->id, "G9999990");
    cr_assert_str_eq(ev->priority, "urgent");
    cr_assert_eq(ev->body_case, HANDOVER__EVENT__BODY_REFERRAL);
    cr_assert_str_eq(ev->referral->service, "district-nursing");
    cr_assert_str_eq(ev->reason,
                     "Non-healing venous leg ulcer, left gaiter area, 8 weeks");
    /* The Clinical: and Social: prefixes choose the field (6.3). */
    cr_assert(strncmp(ev->clinical_details, "ulcer 4 cm x 3 cm", 17) == 0);
    cr_assert(strncmp(ev->social_details, "lives with his wife", 19) == 0);
    cr_assert_eq(ev->n_destinations, 0);
    cr_assert_null(ev->consent);
    const Handover__Patient *p = ev->patient;
    cr_assert_str_eq(p->nhs_number, "9996118428");
    cr_assert_str_eq(p->nhs_number_status, "01");
    cr_assert_str_eq(p->family_name, "O'Driscoll");
    cr_assert_eq(p->n_given_names, 1);
    cr_assert_str_eq(p->given_names[0], "Patrick");
    cr_assert_str_eq(p->title, "Mr");
    cr_assert_str_eq(p->date_of_birth, "1949-07-21");
    cr_assert_str_eq(p->sex, "male");
    cr_assert_eq(p->n_address_lines, 2);
    cr_assert_str_eq(p->address_lines[0], "9 Mill Lane");
    cr_assert_str_eq(p->address_lines[1], "Aldercote");
    cr_assert_str_eq(p->postcode, "FE2 8NR");
    cr_assert_str_eq(p->phone, "01632 960587");
    cr_assert_str_eq(p->registered_gp, "Z99001");
    fhir_in_result_free(&r);
}

Test(fhir_in, social_prescribing_with_consent, .timeout = 10)
{
    fhir_in_result r;
    int rc = map_sample(FHIR_IN_SERVICE_REQUEST,
                        "valid/servicerequest-social-prescribing.json", &r);
    expect_event(rc, &r, "social prescribing");
    const Handover__Event *ev = r.event;
    /* samples/README.md: Irene's referral. */
    cr_assert_str_eq(ev->event_id, "d7f579b8-3e33-5390-9c69-e48402254949");
    cr_assert_str_eq(ev->occurred_at, "2025-03-14T10:20:00Z");
    cr_assert_str_eq(ev->recorded_at, "", "no meta.lastUpdated sent");
    /* Posted on its own with a display-only requester: the patient's
     * practice is the source (6.3). */
    cr_assert_str_eq(ev->source->org->code, "Z99003");
    cr_assert_str_eq(ev->source->org->name, "Croxwell Health Centre");
    cr_assert_str_eq(ev->source->author->name,
                     "Hannah Storey, social prescribing link worker, "
                     "Croxwell Health Centre");
    cr_assert_str_eq(ev->referral->service, "social-prescribing");
    cr_assert_str_eq(ev->priority, "routine");
    cr_assert_eq(ev->n_destinations, 1);
    cr_assert_str_eq(ev->destinations[0]->code, "local:VCS-0001");
    cr_assert_str_eq(ev->destinations[0]->name, "Aldercote Age Well");
    cr_assert_not_null(ev->consent);
    cr_assert_str_eq(ev->consent->basis, "explicit");
    cr_assert_str_eq(ev->consent->recorded_at, "2025-03-14T10:05:00Z");
    cr_assert_str_eq(ev->consent->notes, "Consent to share information for "
                                         "a social prescribing referral");
    cr_assert_str_eq(ev->clinical_details, "");
    cr_assert(strncmp(ev->social_details, "hard of hearing", 15) == 0);
    cr_assert_str_eq(ev->patient->registered_gp, "Z99003");
    fhir_in_result_free(&r);
}

Test(fhir_in, device_request_equipment_order, .timeout = 10)
{
    fhir_in_result r;
    int rc = map_sample(FHIR_IN_DEVICE_REQUEST,
                        "valid/devicerequest-equipment-order.json", &r);
    expect_event(rc, &r, "device request");
    const Handover__Event *ev = r.event;
    char id[37];
    expected_id("https://fhir.gp-system.example/Id/equipment-order",
                "Z99002-EQ-000051", id);
    cr_assert_str_eq(ev->event_id, id);
    cr_assert_str_eq(r.resource_type, "DeviceRequest");
    cr_assert_str_eq(ev->event_type, "equipment_order");
    cr_assert_str_eq(ev->source->org->code, "Z99002");
    cr_assert_str_eq(ev->source->ref, "Z99002-EQ-000051");
    cr_assert_str_eq(ev->priority, "urgent");
    cr_assert_str_eq(ev->occurred_at, "2025-03-17T11:20:00Z");
    cr_assert_eq(ev->n_destinations, 1);
    cr_assert_str_eq(ev->destinations[0]->code, "8ZZ99");
    cr_assert(strncmp(ev->access_notes, "Second-floor flat", 17) == 0);
    cr_assert(strncmp(ev->reason, "Relapse of multiple sclerosis", 29) == 0);
    const Handover__EquipmentOrder *o = ev->equipment_order;
    cr_assert_str_eq(o->action, "deliver");
    cr_assert_str_eq(o->order_ref, "Z99002-EQ-000051");
    cr_assert_str_eq(o->required_by, "2025-03-19");
    cr_assert_eq(o->n_items, 1);
    cr_assert_eq(o->items[0]->line, 1);
    cr_assert_str_eq(o->items[0]->item_code, "TOILET-RAISE-FR");
    cr_assert_str_eq(o->items[0]->description, "Raised toilet seat with frame");
    cr_assert_eq(o->items[0]->quantity, 1);
    cr_assert_str_eq(o->items[0]->line_ref, "Z99002-EQ-000051");
    /* No delivery-address parameter: the patient's address (6.3). */
    cr_assert_eq(o->delivery_address->n_lines, 3);
    cr_assert_str_eq(o->delivery_address->lines[2], "Fellgate");
    cr_assert_str_eq(o->delivery_address->postcode, "FE1 4DX");
    cr_assert_str_eq(o->prescriber->name,
                     "Tom Reilly, community physiotherapist, Brackenby "
                     "Medical Group TAP");
    cr_assert_str_eq(o->prescriber->org, "Z99002");
    fhir_in_result_free(&r);
}

/* ------------------------------------------------------ invalid samples */

typedef struct invalid_case {
    const char *file;
    fhir_in_endpoint ep;
    int status;
    const char *code;
    const char *expr;
    const char *diag;
} invalid_case;

/* samples/README.md, fhir/invalid/. */
static const invalid_case invalid_cases[] = {
    {"malformed-json.json", FHIR_IN_SERVICE_REQUEST, 400, "structure", NULL,
     "line 7, column 5"},
    {"wrong-resourcetype.json", FHIR_IN_SERVICE_REQUEST, 400, "invalid", NULL,
     "resourceType Observation does not match endpoint ServiceRequest"},
    {"servicerequest-missing-nhs-number.json", FHIR_IN_SERVICE_REQUEST, 422,
     "required", "Patient.identifier", "NHS number"},
    {"servicerequest-bad-nhs-checkdigit.json", FHIR_IN_SERVICE_REQUEST, 422,
     "value", "Patient.identifier", "9992024683 fails the Modulus 11 check"},
    {"servicerequest-unknown-service.json", FHIR_IN_SERVICE_REQUEST, 422,
     "code-invalid", "ServiceRequest.code", "podiatry"},
    {"servicerequest-voluntary-no-consent.json", FHIR_IN_SERVICE_REQUEST, 422,
     "business-rule", "ServiceRequest.supportingInfo",
     "consent required: no explicit consent recorded for referral to "
     "local:VCS-0001"},
    {"bundle-messageheader-not-first.json", FHIR_IN_MESSAGE, 422, "invariant",
     "Bundle.entry[0]", "bdl-12"},
};
#define N_INVALID (sizeof invalid_cases / sizeof invalid_cases[0])

Test(fhir_in, invalid_samples, .timeout = 10)
{
    for (size_t i = 0; i < N_INVALID; i++) {
        const invalid_case *t = &invalid_cases[i];
        char rel[256];
        snprintf(rel, sizeof rel, "invalid/%s", t->file);
        fhir_in_result r;
        int rc = map_sample(t->ep, rel, &r);
        expect_issue(rc, &r, t->status, 0, t->code, t->expr, t->diag);
        cr_assert_eq(r.oo.n, 1, "%s: exactly one problem", t->file);
        expect_no_leak(&r, irene_words);
        expect_no_leak(&r, patrick_words);
        fhir_in_result_free(&r);
    }
}

/* A file added to invalid/ must be added to the table above. */
Test(fhir_in, every_invalid_sample_is_listed, .timeout = 10)
{
    DIR *d = opendir(SAMPLES "/invalid");
    cr_assert_not_null(d);
    for (struct dirent *de = readdir(d); de != NULL; de = readdir(d)) {
        if (de->d_name[0] == '.')
            continue;
        bool listed = false;
        for (size_t i = 0; i < N_INVALID; i++)
            listed = listed || strcmp(invalid_cases[i].file, de->d_name) == 0;
        cr_assert(listed, "invalid/%s is not in invalid_cases", de->d_name);
    }
    closedir(d);
}

/* ------------------------------------------------------------ pairs */

Test(fhir_in, identifier_conflict_pair, .timeout = 10)
{
    fhir_in_result r1, r2, r3;
    const char *dir = "pairs/identifier-conflict/";
    char rel[256];
    snprintf(rel, sizeof rel, "%s1-original.json", dir);
    expect_event(map_sample(FHIR_IN_SERVICE_REQUEST, rel, &r1), &r1, "1");
    snprintf(rel, sizeof rel, "%s2-resend-identical.json", dir);
    expect_event(map_sample(FHIR_IN_SERVICE_REQUEST, rel, &r2), &r2, "2");
    snprintf(rel, sizeof rel, "%s3-conflict.json", dir);
    expect_event(map_sample(FHIR_IN_SERVICE_REQUEST, rel, &r3), &r3, "3");

    char id[37];
    expected_id("https://fhir.gp-system.example/Id/referral",
                "Z99003-REF-000117", id);
    cr_assert_str_eq(r1.event->event_id, id);
    size_t l1, l2, l3;
    uint8_t *b1 = pack(r1.event, &l1), *b2 = pack(r2.event, &l2),
            *b3 = pack(r3.event, &l3);
    /* The resend is the same event byte for byte: a duplicate. */
    cr_assert_eq(l1, l2);
    cr_assert_eq(memcmp(b1, b2, l1), 0);
    /* The conflict keeps the id and changes the content: the hub's 409. */
    cr_assert_str_eq(r3.event->event_id, id);
    cr_assert(l1 != l3 || memcmp(b1, b3, l1) != 0);
    cr_assert_str_eq(r3.event->priority, "urgent");
    cr_assert_str_neq(r3.event->reason, r1.event->reason);
    free(b1);
    free(b2);
    free(b3);
    fhir_in_result_free(&r1);
    fhir_in_result_free(&r2);
    fhir_in_result_free(&r3);
}

/* ------------------------------------------------------------ outcomes */

Test(fhir_in, task_outcome_acknowledged, .timeout = 10)
{
    fhir_in_result r;
    int rc = map_sample(
        FHIR_IN_TASK, "outcomes/task-outcome-discharge-acknowledged.json", &r);
    expect_event(rc, &r, "acknowledged");
    const Handover__Event *ev = r.event;
    char id[37];
    expected_id("https://fhir.gp-system.example/Id/task", "Z99001-TASK-007781",
                id);
    cr_assert_str_eq(ev->event_id, id);
    cr_assert_str_eq(r.resource_type, "Task");
    cr_assert_str_eq(ev->event_type, "outcome");
    /* Edith's discharge; the hub fills correlation_id from it. */
    cr_assert_str_eq(ev->in_reply_to, "e09339b8-a502-5cfc-af76-7873b23f04b6");
    cr_assert_str_eq(ev->correlation_id, "");
    cr_assert_str_eq(ev->occurred_at, "2025-03-14T14:05:00Z");
    cr_assert_str_eq(ev->source->org->code, "Z99001");
    cr_assert_str_eq(ev->source->author->name, "Dr R Morland");
    cr_assert_str_eq(ev->patient->nhs_number, "9992468130");
    cr_assert_str_eq(ev->patient->family_name, "");
    cr_assert_eq(ev->n_destinations, 0);
    cr_assert_str_eq(ev->outcome->status, "acknowledged");
    cr_assert_str_eq(ev->outcome->reason_code, "");
    /* No statusReason: the note is the reason text (6.3). */
    cr_assert(strncmp(ev->outcome->reason_text, "Discharge reviewed", 18) == 0);
    fhir_in_result_free(&r);
}

Test(fhir_in, task_outcome_rejected, .timeout = 10)
{
    fhir_in_result r;
    int rc = map_sample(FHIR_IN_TASK,
                        "outcomes/task-outcome-discharge-rejected.json", &r);
    expect_event(rc, &r, "rejected");
    const Handover__Event *ev = r.event;
    cr_assert_str_eq(ev->in_reply_to, "1f77db6f-8a5d-514f-9a74-16a2aae1843f");
    cr_assert_str_eq(ev->correlation_id, "");
    cr_assert_str_eq(ev->source->org->code, "Z99002");
    cr_assert_str_eq(ev->outcome->status, "rejected");
    cr_assert_str_eq(ev->outcome->reason_code, "not-registered");
    cr_assert(strncmp(ev->outcome->reason_text, "Miss Fenwick left", 17) == 0);
    cr_assert_str_eq(ev->occurred_at, "2025-03-14T12:10:00Z");
    fhir_in_result_free(&r);
}

/* A Task edited in one place from the acknowledged sample. */
static int
map_task_edit(const char *from, const char *to, fhir_in_result *r)
{
    size_t len;
    char *data =
        read_sample("outcomes/task-outcome-discharge-acknowledged.json", &len);
    char *t = edit(data, from, to);
    int rc = map_text(FHIR_IN_TASK, t, r);
    free(t);
    return rc;
}

Test(fhir_in, task_rules, .timeout = 10)
{
    fhir_in_result r;
    /* Task.status must be the one 6.3 pairs with the businessStatus. */
    expect_issue(map_task_edit("\"status\": \"completed\"",
                               "\"status\": \"rejected\"", &r),
                 &r, 422, 0, "value", "Task.status", "acknowledged");
    fhir_in_result_free(&r);
    expect_issue(
        map_task_edit("\"code\": \"acknowledged\"", "\"code\": \"filed\"", &r),
        &r, 422, 0, "code-invalid", "Task.businessStatus", "filed");
    fhir_in_result_free(&r);
    /* Rejected needs its reason (3.6). */
    char *t = NULL;
    size_t len;
    char *data =
        read_sample("outcomes/task-outcome-discharge-acknowledged.json", &len);
    t = edit(data, "\"status\": \"completed\"", "\"status\": \"rejected\"");
    t = edit(t, "\"code\": \"acknowledged\"", "\"code\": \"rejected\"");
    expect_issue(map_text(FHIR_IN_TASK, t, &r), &r, 422, 0, "required",
                 "Task.statusReason", NULL);
    fhir_in_result_free(&r);
    free(t);
    /* The answered event is named by the event-id system only. */
    expect_issue(map_task_edit("https://handover.example/fhir/Id/event-id",
                               "https://example.org/other", &r),
                 &r, 422, 0, "required", "Task.focus", NULL);
    fhir_in_result_free(&r);
    expect_issue(
        map_task_edit("e09339b8-a502-5cfc-af76-7873b23f04b6", "not-a-uuid", &r),
        &r, 422, 0, "value", "Task.focus.identifier.value", "not-a-uuid");
    fhir_in_result_free(&r);
    /* An upper-case UUID is the same UUID. */
    int rc = map_task_edit("e09339b8-a502-5cfc-af76-7873b23f04b6",
                           "E09339B8-A502-5CFC-AF76-7873B23F04B6", &r);
    expect_event(rc, &r, "upper-case focus");
    cr_assert_str_eq(r.event->in_reply_to,
                     "e09339b8-a502-5cfc-af76-7873b23f04b6");
    fhir_in_result_free(&r);
    /* Item statuses need item lines, which this interface lacks. */
    data =
        read_sample("outcomes/task-outcome-discharge-acknowledged.json", &len);
    t = edit(data, "\"code\": \"acknowledged\"", "\"code\": \"delivered\"");
    expect_issue(map_text(FHIR_IN_TASK, t, &r), &r, 422, 0, "business-rule",
                 "Task.businessStatus", "item lines");
    fhir_in_result_free(&r);
    free(t);
    /* A bad NHS number in Task.for. */
    expect_issue(map_task_edit("9992468130", "9992468131", &r), &r, 422, 0,
                 "value", "Task.for.identifier.value", "Modulus 11");
    fhir_in_result_free(&r);
    /* An owner the gp agency may not publish as. */
    expect_issue(
        map_task_edit("\"value\": \"Z99001\"", "\"value\": \"RZZ01\"", &r), &r,
        422, 0, "business-rule", "Task.owner", "RZZ01");
    fhir_in_result_free(&r);
}

/* ------------------------------------------------------- media types */

Test(fhir_in, content_types, .timeout = 10)
{
    static const char *const ok[] = {
        "application/fhir+json",
        "application/fhir+json; charset=utf-8",
        "application/fhir+json;charset=UTF-8",
        "application/fhir+json; fhirVersion=4.0",
        "application/fhir+json; fhirVersion=4.0; charset=utf-8",
        "application/fhir+json; charset=utf-8; fhirVersion=4.0",
        "APPLICATION/FHIR+JSON; CHARSET=UTF-8",
        "Application/Fhir+Json; Charset=\"utf-8\"",
        "application/json",
        "application/json; charset=utf-8",
        " application/fhir+json ;",
        NULL};
    static const char *const refused[] = {"",
                                          "text/plain",
                                          "text/plain; charset=utf-8",
                                          "application/xml",
                                          "application/fhir+xml",
                                          "application/fhir+json; "
                                          "charset=latin1",
                                          "application/fhir+json; "
                                          "charset=iso-8859-1",
                                          "application/json; charset=utf-16",
                                          "application/fhir+json; "
                                          "fhirVersion=3.0",
                                          "application/fhir+json garbage",
                                          "application/",
                                          "application/fhir+json; charset=",
                                          "application/fhir+json; "
                                          "charset=\"utf-8",
                                          NULL};
    size_t len;
    char *data =
        read_sample("valid/servicerequest-social-prescribing.json", &len);
    fhir_in_result r;
    for (size_t i = 0; ok[i] != NULL; i++) {
        cr_assert(fhir_in_media_type_ok(ok[i]), "'%s' refused", ok[i]);
        int rc =
            fhir_in(FHIR_IN_SERVICE_REQUEST, data, len, ok[i], &test_opts, &r);
        expect_event(rc, &r, ok[i]);
        fhir_in_result_free(&r);
    }
    for (size_t i = 0; refused[i] != NULL; i++) {
        cr_assert(!fhir_in_media_type_ok(refused[i]), "'%s' accepted",
                  refused[i]);
        int rc = fhir_in(FHIR_IN_SERVICE_REQUEST, data, len, refused[i],
                         &test_opts, &r);
        expect_issue(rc, &r, 415, 0, "not-supported", NULL, NULL);
        fhir_in_result_free(&r);
    }
    /* No Content-Type at all. */
    cr_assert(!fhir_in_media_type_ok(NULL));
    int rc = fhir_in(FHIR_IN_SERVICE_REQUEST, data, len, NULL, &test_opts, &r);
    expect_issue(rc, &r, 415, 0, "not-supported", NULL, "missing");
    fhir_in_result_free(&r);
    /* Content-Type is checked before the body is read. */
    rc = fhir_in(FHIR_IN_SERVICE_REQUEST, "{", 1, "text/plain", &test_opts, &r);
    expect_issue(rc, &r, 415, 0, "not-supported", NULL, "text/plain");
    fhir_in_result_free(&r);
    free(data);
}

/* ----------------------------------------------------- JSON (domain 3) */

Test(fhir_in, byte_order_mark_is_skipped, .timeout = 10)
{
    size_t len;
    char *data =
        read_sample("valid/servicerequest-social-prescribing.json", &len);
    char *bom = malloc(len + 3);
    cr_assert_not_null(bom);
    memcpy(bom, "\xef\xbb\xbf", 3);
    memcpy(bom + 3, data, len);
    fhir_in_result a, b;
    expect_event(
        fhir_in(FHIR_IN_SERVICE_REQUEST, data, len, CT, &test_opts, &a), &a,
        "no BOM");
    expect_event(
        fhir_in(FHIR_IN_SERVICE_REQUEST, bom, len + 3, CT, &test_opts, &b), &b,
        "BOM");
    size_t la, lb;
    uint8_t *pa = pack(a.event, &la), *pb = pack(b.event, &lb);
    cr_assert_eq(la, lb);
    cr_assert_eq(memcmp(pa, pb, la), 0);
    free(pa);
    free(pb);
    fhir_in_result_free(&a);
    fhir_in_result_free(&b);
    /* Only one: a second is not JSON. */
    char *two = malloc(len + 6);
    cr_assert_not_null(two);
    memcpy(two, "\xef\xbb\xbf\xef\xbb\xbf", 6);
    memcpy(two + 6, data, len);
    expect_issue(
        fhir_in(FHIR_IN_SERVICE_REQUEST, two, len + 6, CT, &test_opts, &a), &a,
        400, 0, "structure", NULL, "line 1");
    fhir_in_result_free(&a);
    free(two);
    free(bom);
    free(data);
}

Test(fhir_in, duplicate_keys_and_nul, .timeout = 10)
{
    size_t len;
    char *data =
        read_sample("valid/servicerequest-social-prescribing.json", &len);
    fhir_in_result r;
    /* A key twice in one object, however deep. */
    char *t = subst_all(data, "\"priority\": \"routine\",",
                        "\"priority\": \"routine\", \"priority\": \"stat\",");
    expect_issue(map_text(FHIR_IN_SERVICE_REQUEST, t, &r), &r, 400, 0,
                 "structure", NULL, "duplicate object key");
    fhir_in_result_free(&r);
    free(t);
    t = subst_all(data, "\"family\": \"Calvert\",",
                  "\"family\": \"Calvert\", \"family\": \"Other\",");
    expect_issue(map_text(FHIR_IN_SERVICE_REQUEST, t, &r), &r, 400, 0,
                 "structure", NULL, "line ");
    expect_no_leak(&r, irene_words);
    fhir_in_result_free(&r);
    free(t);
    /* \u0000 in a string. */
    t = subst_all(data, "\"Calvert\"", "\"Cal\\u0000vert\"");
    expect_issue(map_text(FHIR_IN_SERVICE_REQUEST, t, &r), &r, 400, 0,
                 "structure", NULL, "\\u0000");
    expect_no_leak(&r, irene_words);
    fhir_in_result_free(&r);
    free(t);
    /* A raw NUL byte is never the end of the document. */
    char *raw = malloc(len);
    cr_assert_not_null(raw);
    memcpy(raw, data, len);
    char *at = strstr(raw, "Calvert");
    cr_assert_not_null(at);
    at[3] = '\0';
    expect_issue(fhir_in(FHIR_IN_SERVICE_REQUEST, raw, len, CT, &test_opts, &r),
                 &r, 400, 0, "structure", NULL, "control character");
    expect_no_leak(&r, irene_words);
    fhir_in_result_free(&r);
    free(raw);
    /* Invalid UTF-8. */
    t = subst_all(data, "\"Calvert\"", "\"Calv\xe9rt\"");
    expect_issue(map_text(FHIR_IN_SERVICE_REQUEST, t, &r), &r, 400, 0,
                 "structure", NULL, NULL);
    fhir_in_result_free(&r);
    free(t);
    free(data);
}

Test(fhir_in, wrong_json_types, .timeout = 10)
{
    static const struct {
        const char *from, *to, *expr;
    } cases[] = {
        /* A number where FHIR has a string. */
        {"\"priority\": \"routine\"", "\"priority\": 3",
         "ServiceRequest.priority"},
        /* An object where it has an array. */
        {"\"reasonCode\": [", "\"reasonCode\": {\"x\": [", NULL},
        /* Deep inside the contained Patient. */
        {"\"family\": \"Calvert\"", "\"family\": [\"Calvert\"]",
         "Patient.name[0].family"},
        {"\"value\": \"9992024682\"", "\"value\": 9992024682",
         "Patient.identifier[0].value"},
        /* null is no FHIR value for an element. */
        {"\"authoredOn\": \"2025-03-14T10:20:00Z\"", "\"authoredOn\": null",
         "ServiceRequest.authoredOn"},
        {"\"resourceType\": \"ServiceRequest\"", "\"resourceType\": 1",
         "ServiceRequest.resourceType"},
    };
    size_t len;
    char *data =
        read_sample("valid/servicerequest-social-prescribing.json", &len);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *t = subst_all(data, cases[i].from, cases[i].to);
        if (strstr(cases[i].to, "{\"x\"") != NULL) {
            /* Close the object opened above: ...] becomes ...]}. */
            t = edit(t, "transport.\"\n    }\n  ],",
                     "transport.\"\n    }\n  ]},");
        }
        fhir_in_result r;
        expect_issue(map_text(FHIR_IN_SERVICE_REQUEST, t, &r), &r, 400, 0,
                     "structure", cases[i].expr, "must be");
        cr_assert_eq(r.oo.n, 1, "a 400 stands alone");
        expect_no_leak(&r, irene_words);
        fhir_in_result_free(&r);
        free(t);
    }
    free(data);
    /* Not an object at all. */
    fhir_in_result r;
    expect_issue(map_text(FHIR_IN_SERVICE_REQUEST, "[1, 2]", &r), &r, 400, 0,
                 "structure", NULL, "not a JSON object");
    fhir_in_result_free(&r);
    expect_issue(map_text(FHIR_IN_SERVICE_REQUEST, "{}", &r), &r, 400, 0,
                 "invalid", NULL, "resourceType is missing");
    fhir_in_result_free(&r);
    expect_issue(map_text(FHIR_IN_SERVICE_REQUEST, "", &r), &r, 400, 0,
                 "structure", NULL, "line");
    fhir_in_result_free(&r);
}

/* A 400 found after 422 problems still wins: nothing can be trusted. */
Test(fhir_in, structure_error_replaces_earlier_problems, .timeout = 10)
{
    size_t len;
    char *data =
        read_sample("valid/servicerequest-social-prescribing.json", &len);
    data = edit(data, "9992024682", "9992024683");
    data = edit(data, "\"text\": \"Social: hard", "\"text\": 7, \"x\": \"");
    fhir_in_result r;
    expect_issue(map_text(FHIR_IN_SERVICE_REQUEST, data, &r), &r, 400, 0,
                 "structure", "ServiceRequest.note[0].text", NULL);
    cr_assert_eq(r.oo.n, 1);
    fhir_in_result_free(&r);
    free(data);
}

Test(fhir_in, body_size_limit, .timeout = 10)
{
    size_t len;
    char *data =
        read_sample("valid/servicerequest-social-prescribing.json", &len);
    fhir_in_opts o = test_opts;
    o.max_body = len - 1;
    fhir_in_result r;
    expect_issue(fhir_in(FHIR_IN_SERVICE_REQUEST, data, len, CT, &o, &r), &r,
                 413, 0, "too-long", NULL, "limit");
    fhir_in_result_free(&r);
    o.max_body = len;
    expect_event(fhir_in(FHIR_IN_SERVICE_REQUEST, data, len, CT, &o, &r), &r,
                 "at the limit");
    fhir_in_result_free(&r);
    free(data);
}

/* --------------------------------------------------- Handover rules */

/* Every 422 problem is reported, in document order: the contained Patient
 * comes before the ServiceRequest's own elements. */
Test(fhir_in, several_problems_in_document_order, .timeout = 10)
{
    size_t len;
    char *data =
        read_sample("valid/servicerequest-social-prescribing.json", &len);
    data = edit(data, "\"code\": \"social-prescribing\"",
                "\"code\": \"chiropody\"");
    data = edit(data, "9992024682", "9992024683");
    data = edit(data, "\"birthDate\": \"1946-05-28\"",
                "\"birthDate\": \"2046-05-28\"");
    data = edit(data, "\"priority\": \"routine\"", "\"priority\": \"soon\"");
    data = edit(data, "\"postalCode\": \"FE4 5NW\"",
                "\"postalCode\": \"NOT A POSTCODE\"");
    fhir_in_result r;
    int rc = map_text(FHIR_IN_SERVICE_REQUEST, data, &r);
    expect_issue(rc, &r, 422, 0, "value", "Patient.identifier", "9992024683");
    expect_issue(rc, &r, 422, 1, "value", "Patient.birthDate", "future");
    expect_issue(rc, &r, 422, 2, "value", "Patient.address[0].postalCode",
                 NULL);
    expect_issue(rc, &r, 422, 3, "code-invalid", "ServiceRequest.priority",
                 "soon");
    expect_issue(rc, &r, 422, 4, "code-invalid", "ServiceRequest.code",
                 "chiropody");
    cr_assert_eq(r.oo.n, 5);
    /* The contained Patient is also named from the root. */
    cr_assert_str_eq(r.oo.issues[0].expression[1],
                     "ServiceRequest.contained[0].identifier");
    cr_assert_str_eq(r.oo.issues[4].expression[1], "");
    expect_no_leak(&r, irene_words);
    const char *const dob[] = {"2046-05-28", "NOT A POSTCODE", NULL};
    expect_no_leak(&r, dob);
    fhir_in_result_free(&r);
    free(data);
}

Test(fhir_in, patient_rules, .timeout = 10)
{
    size_t len;
    char *data =
        read_sample("valid/servicerequest-social-prescribing.json", &len);
    fhir_in_result r;
    /* Two different NHS numbers: never pick one (6.3). */
    char *t = subst_all(
        data, "\"value\": \"9992024682\"\n        }",
        "\"value\": \"9992024682\"\n        }, {\"system\": "
        "\"https://fhir.nhs.uk/Id/nhs-number\", \"value\": \"9994127357\"}");
    expect_issue(map_text(FHIR_IN_SERVICE_REQUEST, t, &r), &r, 422, 0,
                 "business-rule", "Patient.identifier",
                 "two different NHS numbers");
    fhir_in_result_free(&r);
    free(t);
    /* The same number twice, once written with spaces, counts once. */
    t = subst_all(data, "\"value\": \"9992024682\"\n        }",
                  "\"value\": \"9992024682\"\n        }, {\"system\": "
                  "\"https://fhir.nhs.uk/Id/nhs-number\", \"value\": "
                  "\"999 202 4682\"}");
    expect_event(map_text(FHIR_IN_SERVICE_REQUEST, t, &r), &r, "twice");
    cr_assert_str_eq(r.event->patient->nhs_number, "9992024682");
    fhir_in_result_free(&r);
    free(t);
    /* Ten identical digits (4.1). */
    t = subst_all(data, "9992024682", "1111111111");
    expect_issue(map_text(FHIR_IN_SERVICE_REQUEST, t, &r), &r, 422, 0, "value",
                 "Patient.identifier", "ten identical digits");
    fhir_in_result_free(&r);
    free(t);
    /* The 999 range is the hub's decision: accepted here. */
    t = subst_all(data, "9992024682", "9990000018");
    expect_event(map_text(FHIR_IN_SERVICE_REQUEST, t, &r), &r, "999");
    fhir_in_result_free(&r);
    free(t);
    /* A postcode is normalised (4.3). */
    t = subst_all(data, "\"FE4 5NW\"", "\" fe45nw\"");
    expect_event(map_text(FHIR_IN_SERVICE_REQUEST, t, &r), &r, "postcode");
    cr_assert_str_eq(r.event->patient->postcode, "FE4 5NW");
    fhir_in_result_free(&r);
    free(t);
    /* A partial date of birth. */
    t = subst_all(data, "\"1946-05-28\"", "\"1946-05\"");
    expect_issue(map_text(FHIR_IN_SERVICE_REQUEST, t, &r), &r, 422, 0, "value",
                 "Patient.birthDate", "full date");
    fhir_in_result_free(&r);
    free(t);
    /* A family name over 35 characters; never repeated. */
    t = subst_all(data, "\"Calvert\"",
                  "\"Calvert-Montgomery-Fotheringham-Smythe\"");
    expect_issue(map_text(FHIR_IN_SERVICE_REQUEST, t, &r), &r, 422, 0, "value",
                 "Patient.name[0].family", "more than the 35");
    const char *const long_name[] = {"Montgomery", NULL};
    expect_no_leak(&r, long_name);
    fhir_in_result_free(&r);
    free(t);
    /* An unknown gender code. */
    t = subst_all(data, "\"gender\": \"female\"", "\"gender\": \"f\"");
    expect_issue(map_text(FHIR_IN_SERVICE_REQUEST, t, &r), &r, 422, 0,
                 "code-invalid", "Patient.gender", NULL);
    fhir_in_result_free(&r);
    free(t);
    /* A subject that resolves to nothing. */
    t = subst_all(data, "\"subject\": {\n    \"reference\": \"#pat\"",
                  "\"subject\": {\n    \"reference\": \"#nobody\"");
    expect_issue(map_text(FHIR_IN_SERVICE_REQUEST, t, &r), &r, 422, 0,
                 "required", "ServiceRequest.subject", "#nobody");
    fhir_in_result_free(&r);
    free(t);
    free(data);
}

Test(fhir_in, source_organisation_rules, .timeout = 10)
{
    fhir_in_result r;
    /* The sender must be one the gp agency may publish as (3.1). */
    static const char *const only_z99002[] = {"Z99002", NULL};
    fhir_in_opts o = test_opts;
    o.gp_orgs = only_z99002;
    size_t len;
    char *data = read_sample("valid/referral-message-bundle.json", &len);
    expect_issue(fhir_in(FHIR_IN_MESSAGE, data, len, CT, &o, &r), &r, 422, 0,
                 "business-rule", "MessageHeader.sender", "Z99001");
    fhir_in_result_free(&r);
    free(data);

    /* On its own, with neither a requesting organisation nor a registered
     * practice: 422 required at the requester (6.3). */
    data = read_sample("valid/servicerequest-social-prescribing.json", &len);
    data = edit(data, "\"value\": \"Z99003\"", "\"value\": \"local:x\"");
    data = edit(data, "https://fhir.nhs.uk/Id/ods-organization-code",
                "https://example.org/not-ods");
    expect_issue(map_text(FHIR_IN_SERVICE_REQUEST, data, &r), &r, 422, 0,
                 "required", "ServiceRequest.requester", "requesting");
    fhir_in_result_free(&r);
    free(data);

    /* A PractitionerRole requester gives the organisation and the role. */
    data = read_sample("valid/servicerequest-social-prescribing.json", &len);
    data = edit(data,
                "\"requester\": {\n    \"display\": \"Hannah Storey, "
                "social prescribing link worker, Croxwell Health "
                "Centre\"\n  }",
                "\"requester\": {\"reference\": \"#role\"}");
    data = edit(data,
                "  \"identifier\": [\n    {\n      \"system\": "
                "\"https://fhir.gp-system.example/Id/referral\"",
                "  \"identifier\": [\n    {\n      \"system\": "
                "\"https://fhir.gp-system.example/Id/referral\"");
    data = edit(data, "\"contained\": [\n",
                "\"contained\": [\n{\"resourceType\": \"PractitionerRole\", "
                "\"id\": \"role\", \"practitioner\": {\"reference\": "
                "\"#doc\"}, \"organization\": {\"identifier\": {\"system\": "
                "\"https://fhir.nhs.uk/Id/ods-organization-code\", "
                "\"value\": \"Z99002\"}, \"display\": \"Brackenby Medical "
                "Group\"}, \"code\": [{\"text\": \"Link worker\"}], "
                "\"telecom\": [{\"system\": \"phone\", \"value\": \"01632 "
                "960999\"}]},\n{\"resourceType\": \"Practitioner\", \"id\": "
                "\"doc\", \"identifier\": [{\"system\": "
                "\"https://fhir.hl7.org.uk/Id/hcpc-number\", \"value\": "
                "\"OT999999\"}], \"name\": [{\"family\": \"Storey\", "
                "\"given\": [\"Hannah\"]}]},\n");
    int rc = map_text(FHIR_IN_SERVICE_REQUEST, data, &r);
    expect_event(rc, &r, "PractitionerRole");
    const Handover__Event *ev = r.event;
    cr_assert_str_eq(ev->source->org->code, "Z99002");
    cr_assert_str_eq(ev->source->org->name, "Brackenby Medical Group");
    cr_assert_str_eq(ev->source->author->name, "Hannah Storey");
    cr_assert_str_eq(ev->source->author->role, "Link worker");
    cr_assert_str_eq(ev->source->author->id, "OT999999");
    cr_assert_str_eq(ev->source->author->phone, "01632 960999");
    fhir_in_result_free(&r);
    free(data);
}

Test(fhir_in, consent_rules, .timeout = 10)
{
    size_t len;
    char *data =
        read_sample("valid/servicerequest-social-prescribing.json", &len);
    fhir_in_result r;
    /* A withdrawn consent is no consent. */
    char *t = subst_all(data,
                        "\"id\": \"consent\",\n      \"status\": "
                        "\"active\"",
                        "\"id\": \"consent\",\n      \"status\": "
                        "\"inactive\"");
    expect_issue(map_text(FHIR_IN_SERVICE_REQUEST, t, &r), &r, 422, 0,
                 "business-rule", "ServiceRequest.supportingInfo",
                 "consent required");
    fhir_in_result_free(&r);
    free(t);
    /* A practitioner decision names the Mental Capacity Act: best
     * interests. */
    t = subst_all(data,
                  "\"performer\": [\n        {\n          "
                  "\"reference\": \"#pat\"",
                  "\"performer\": [\n        {\n          \"display\": "
                  "\"Dr R Morland\", \"reference\": \"Practitioner/G1\"");
    t = edit(t,
             "Explicit consent under the common law duty of "
             "confidentiality",
             "Best-interests decision under the Mental Capacity Act 2005");
    expect_event(map_text(FHIR_IN_SERVICE_REQUEST, t, &r), &r, "best");
    cr_assert_str_eq(r.event->consent->basis, "best_interests");
    cr_assert_str_eq(r.event->consent->recorded_by, "Dr R Morland");
    fhir_in_result_free(&r);
    free(t);
    /* A practitioner without that policy: refused, not guessed. */
    t = subst_all(data,
                  "\"performer\": [\n        {\n          "
                  "\"reference\": \"#pat\"",
                  "\"performer\": [\n        {\n          \"reference\": "
                  "\"Practitioner/G1\"");
    expect_issue(map_text(FHIR_IN_SERVICE_REQUEST, t, &r), &r, 422, 0,
                 "business-rule", "Consent.performer", NULL);
    fhir_in_result_free(&r);
    free(t);
    /* The consent names another organisation than the performer. */
    t = subst_all(data, "\"value\": \"VCS-0001\"\n              }",
                  "\"value\": \"VCS-0002\"\n              }");
    expect_issue(map_text(FHIR_IN_SERVICE_REQUEST, t, &r), &r, 422, 0,
                 "business-rule", "Consent.provision.actor", "VCS-0001");
    fhir_in_result_free(&r);
    free(t);
    /* ppc-1: policy or policyRule. */
    t = subst_all(data, "\"policyRule\"", "\"policyRuleX\"");
    expect_issue(map_text(FHIR_IN_SERVICE_REQUEST, t, &r), &r, 422, 0,
                 "invariant", "Consent.policyRule", "ppc-1");
    fhir_in_result_free(&r);
    free(t);
    /* A voluntary referral names its organisation. */
    t = subst_all(data, "\"performer\": [\n    {", "\"performerX\": [\n    {");
    expect_issue(map_text(FHIR_IN_SERVICE_REQUEST, t, &r), &r, 422, 0,
                 "required", "ServiceRequest.performer", "voluntary");
    fhir_in_result_free(&r);
    free(t);
    free(data);
}

/* The outbound golden discharge posted by a GP system. */
Test(fhir_in, discharge_from_gp_refused, .timeout = 10)
{
    fhir_in_result r;
    int rc = map_sample(FHIR_IN_MESSAGE,
                        "outbound/discharge-message-bundle-to-gp.json", &r);
    expect_issue(rc, &r, 422, 0, "business-rule", "MessageHeader.eventCoding",
                 "agency gp may not publish discharge events");
    cr_assert_eq(r.oo.n, 1);
    fhir_in_result_free(&r);
}

Test(fhir_in, message_bundle_rules, .timeout = 10)
{
    size_t len;
    char *data = read_sample("valid/referral-message-bundle.json", &len);
    fhir_in_result r;
    /* Bundle.type must be message at this endpoint. */
    char *t =
        subst_all(data, "\"type\": \"message\"", "\"type\": \"transaction\"");
    expect_issue(map_text(FHIR_IN_MESSAGE, t, &r), &r, 400, 0, "invalid",
                 "Bundle.type", "transaction");
    fhir_in_result_free(&r);
    free(t);
    /* Bundle.timestamp is required (6.4). */
    t = subst_all(data, "\"timestamp\"", "\"timestampX\"");
    expect_issue(map_text(FHIR_IN_MESSAGE, t, &r), &r, 422, 0, "required",
                 "Bundle.timestamp", NULL);
    fhir_in_result_free(&r);
    free(t);
    /* fullUrl unique (bdl-7). */
    t = subst_all(data, "urn:uuid:2b5ffc47-fc41-41a9-ac42-d836eee950e3",
                  "urn:uuid:9b924985-c6bc-43ec-be0e-dc5ad0106a44");
    expect_issue(map_text(FHIR_IN_MESSAGE, t, &r), &r, 422, 0, "invariant",
                 "Bundle.entry[3].fullUrl", "bdl-7");
    fhir_in_result_free(&r);
    free(t);
    /* An unknown event code. */
    t = subst_all(data, "\"code\": \"referral\"", "\"code\": \"admission\"");
    expect_issue(map_text(FHIR_IN_MESSAGE, t, &r), &r, 422, 0, "code-invalid",
                 "MessageHeader.eventCoding.code", "admission");
    fhir_in_result_free(&r);
    free(t);
    /* A focus that names no entry. */
    t = subst_all(data, "\"reference\": \"urn:uuid:800255d7",
                  "\"reference\": \"urn:uuid:000255d7");
    expect_issue(map_text(FHIR_IN_MESSAGE, t, &r), &r, 422, 0, "required",
                 "MessageHeader.focus[0]", NULL);
    fhir_in_result_free(&r);
    free(t);
    /* source.endpoint is required by R4. */
    t = subst_all(data, "\"endpoint\": \"https://gp-system.example",
                  "\"endpointX\": \"https://gp-system.example");
    expect_issue(map_text(FHIR_IN_MESSAGE, t, &r), &r, 422, 0, "required",
                 "MessageHeader.source.endpoint", NULL);
    fhir_in_result_free(&r);
    free(t);
    free(data);
}

/* An order of two lines in one message Bundle: one event, two items. */
static char *
order_bundle(const char *group2, const char *id2)
{
    static const char head[] =
        "{\"resourceType\": \"Bundle\", \"identifier\": {\"system\": "
        "\"urn:ietf:rfc:3986\", \"value\": \"urn:uuid:1\"}, \"type\": "
        "\"message\", \"timestamp\": \"2025-03-17T11:25:00+00:00\", "
        "\"entry\": [{\"fullUrl\": \"urn:uuid:mh\", \"resource\": "
        "{\"resourceType\": \"MessageHeader\", \"eventCoding\": {\"system\": "
        "\"https://handover.example/fhir/CodeSystem/event-type\", \"code\": "
        "\"equipment-order\"}, \"sender\": {\"identifier\": {\"system\": "
        "\"https://fhir.nhs.uk/Id/ods-organization-code\", \"value\": "
        "\"Z99002\"}}, \"source\": {\"endpoint\": \"https://gp.example\"}, "
        "\"focus\": [{\"reference\": \"urn:uuid:d1\"}, {\"reference\": "
        "\"urn:uuid:d2\"}]}}, {\"fullUrl\": \"urn:uuid:p\", \"resource\": "
        "{\"resourceType\": \"Patient\", \"identifier\": [{\"system\": "
        "\"https://fhir.nhs.uk/Id/nhs-number\", \"value\": \"9998765439\"}], "
        "\"name\": [{\"family\": \"Fenwick\", \"given\": [\"Ruby\"]}], "
        "\"birthDate\": \"1989-12-05\", \"address\": [{\"line\": [\"Flat "
        "2\"], \"postalCode\": \"FE1 4DX\"}]}}";
    static const char line[] =
        ", {\"fullUrl\": \"urn:uuid:d%d\", \"resource\": {\"resourceType\": "
        "\"DeviceRequest\", \"identifier\": [{\"system\": "
        "\"https://gp.example/Id/line\", \"value\": \"%s\"}], "
        "\"groupIdentifier\": {\"system\": \"https://gp.example/Id/order\", "
        "\"value\": \"%s\"}, \"intent\": \"order\", \"codeCodeableConcept\": "
        "{\"coding\": [{\"system\": "
        "\"https://handover.example/fhir/CodeSystem/ces-catalogue\", "
        "\"code\": \"%s\"}]}, \"parameter\": [{\"code\": {\"coding\": "
        "[{\"system\": "
        "\"https://handover.example/fhir/CodeSystem/device-parameter\", "
        "\"code\": \"quantity\"}]}, \"valueQuantity\": {\"value\": %d}}%s], "
        "\"subject\": {\"reference\": \"urn:uuid:p\"}, \"occurrencePeriod\": "
        "{\"end\": \"%s\"}, \"authoredOn\": \"2025-03-17T11:20:00Z\", "
        "\"requester\": {\"display\": \"Tom Reilly\"}, \"performer\": "
        "{\"identifier\": {\"system\": "
        "\"https://fhir.nhs.uk/Id/ods-organization-code\", \"value\": "
        "\"8ZZ99\"}}}}";
    static const char address[] =
        ", {\"code\": {\"coding\": [{\"system\": "
        "\"https://handover.example/fhir/CodeSystem/device-parameter\", "
        "\"code\": \"delivery-address\"}]}, \"valueCodeableConcept\": "
        "{\"text\": \"Brackenby Day Centre\\nStation Road\\nfe72qs\"}}";
    size_t cap = sizeof head + 2 * (sizeof line + sizeof address + 64) + 8;
    char *out = malloc(cap);
    cr_assert_not_null(out);
    int n = snprintf(out, cap, "%s", head);
    n += snprintf(out + n, cap - (size_t)n, line, 1, "L-1", "ORD-7",
                  "COMMODE-STD", 1, "", "2025-03-21");
    n += snprintf(out + n, cap - (size_t)n, line, 2, id2, group2, "BED-PROF-01",
                  2, address, "2025-03-18");
    snprintf(out + n, cap - (size_t)n, "]}");
    return out;
}

Test(fhir_in, device_requests_in_a_message, .timeout = 10)
{
    fhir_in_result r;
    char *t = order_bundle("ORD-7", "L-2");
    int rc = map_text(FHIR_IN_MESSAGE, t, &r);
    expect_event(rc, &r, "two lines");
    const Handover__Event *ev = r.event;
    char id[37];
    expected_id("https://gp.example/Id/order", "ORD-7", id);
    cr_assert_str_eq(ev->event_id, id, "the group names the order (3.8)");
    cr_assert_str_eq(r.identifier, "https://gp.example/Id/order|ORD-7");
    cr_assert_str_eq(ev->recorded_at, "2025-03-17T11:25:00Z");
    const Handover__EquipmentOrder *o = ev->equipment_order;
    cr_assert_str_eq(o->order_ref, "ORD-7");
    cr_assert_eq(o->n_items, 2);
    cr_assert_str_eq(o->items[0]->line_ref, "L-1");
    cr_assert_str_eq(o->items[1]->item_code, "BED-PROF-01");
    cr_assert_eq(o->items[1]->quantity, 2);
    cr_assert_eq(o->items[1]->line, 2);
    /* The earliest date of the lines. */
    cr_assert_str_eq(o->required_by, "2025-03-18");
    /* No priority sent: needed the next working day after Monday's order,
     * so urgent (3.5). */
    cr_assert_str_eq(ev->priority, "urgent");
    cr_assert_eq(ev->n_destinations, 1, "8ZZ99 once");
    cr_assert_eq(o->delivery_address->n_lines, 2);
    cr_assert_str_eq(o->delivery_address->lines[1], "Station Road");
    cr_assert_str_eq(o->delivery_address->postcode, "FE7 2QS");
    fhir_in_result_free(&r);
    free(t);

    /* Lines of different groups: 422 business-rule (6.3). */
    t = order_bundle("ORD-8", "L-2");
    expect_issue(map_text(FHIR_IN_MESSAGE, t, &r), &r, 422, 0, "business-rule",
                 "DeviceRequest.groupIdentifier", NULL);
    cr_assert_str_eq(r.oo.issues[0].expression[1],
                     "Bundle.entry[3].resource.groupIdentifier");
    fhir_in_result_free(&r);
    free(t);
    /* Two lines with one identifier: 422 duplicate. */
    t = order_bundle("ORD-7", "L-1");
    expect_issue(map_text(FHIR_IN_MESSAGE, t, &r), &r, 422, 0, "duplicate",
                 "DeviceRequest.identifier", "L-1");
    fhir_in_result_free(&r);
    free(t);
}

Test(fhir_in, device_request_rules, .timeout = 10)
{
    size_t len;
    char *data = read_sample("valid/devicerequest-equipment-order.json", &len);
    fhir_in_result r;
    char *t = subst_all(data, "\"value\": 1,", "\"value\": 100,");
    expect_issue(map_text(FHIR_IN_DEVICE_REQUEST, t, &r), &r, 422, 0, "value",
                 "DeviceRequest.parameter[0].valueQuantity.value", "1 to 99");
    fhir_in_result_free(&r);
    free(t);
    t = subst_all(data, "\"value\": 1,", "\"value\": 1.5,");
    expect_issue(map_text(FHIR_IN_DEVICE_REQUEST, t, &r), &r, 422, 0, "value",
                 NULL, "whole number");
    fhir_in_result_free(&r);
    free(t);
    /* A configured catalogue refuses an unknown item (3.5). */
    static const char *const catalogue[] = {"BED-PROF-01", NULL};
    fhir_in_opts o = test_opts;
    o.catalogue = catalogue;
    expect_issue(fhir_in(FHIR_IN_DEVICE_REQUEST, data, len, CT, &o, &r), &r,
                 422, 0, "code-invalid", "DeviceRequest.codeCodeableConcept",
                 "TOILET-RAISE-FR");
    fhir_in_result_free(&r);
    /* No date needed by. */
    t = subst_all(data, "\"occurrencePeriod\"", "\"occurrencePeriodX\"");
    expect_issue(map_text(FHIR_IN_DEVICE_REQUEST, t, &r), &r, 422, 0,
                 "required", "DeviceRequest.occurrencePeriod", NULL);
    fhir_in_result_free(&r);
    free(t);
    /* A routine order: priority stated wins over the derivation. */
    t = subst_all(data, "\"priority\": \"urgent\"",
                  "\"priority\": \"routine\"");
    expect_event(map_text(FHIR_IN_DEVICE_REQUEST, t, &r), &r, "routine");
    cr_assert_str_eq(r.event->priority, "routine");
    fhir_in_result_free(&r);
    free(t);
    /* meta.lastUpdated gives recorded_at, converted to UTC. */
    t = subst_all(data, "\"resourceType\": \"DeviceRequest\",",
                  "\"resourceType\": \"DeviceRequest\", \"meta\": "
                  "{\"lastUpdated\": \"2025-03-17T12:21:00+01:00\"},");
    expect_event(map_text(FHIR_IN_DEVICE_REQUEST, t, &r), &r, "lastUpdated");
    cr_assert_str_eq(r.event->recorded_at, "2025-03-17T11:21:00Z");
    fhir_in_result_free(&r);
    free(t);
    free(data);
}

/* ------------------------------------------------- OperationOutcome */

Test(fhir_in, operation_outcome_json, .timeout = 10)
{
    fhir_in_outcome oo = {0};
    char *text = fhir_in_outcome_json(&oo);
    cr_assert_not_null(text);
    cr_assert_str_eq(text, "{\"resourceType\":\"OperationOutcome\",\"issue\":"
                           "[{\"severity\":\"information\",\"code\":"
                           "\"informational\",\"diagnostics\":\"all checks "
                           "passed\"}]}");
    free(text);
    fhir_in_outcome_add(&oo, "error", "value", "Patient.identifier",
                        "NHS number %s fails the Modulus 11 check",
                        "9992024683");
    text = fhir_in_outcome_json(&oo);
    cr_assert_str_eq(text, "{\"resourceType\":\"OperationOutcome\",\"issue\":"
                           "[{\"severity\":\"error\",\"code\":\"value\","
                           "\"diagnostics\":\"NHS number 9992024683 fails "
                           "the Modulus 11 check\",\"expression\":["
                           "\"Patient.identifier\"]}]}");
    free(text);
    /* Past the limit, a count of what was left out. */
    for (int i = 0; i < FHIR_IN_MAX_ISSUES + 5; i++)
        fhir_in_outcome_add(&oo, "error", "value", NULL, "problem %d", i);
    cr_assert_eq(oo.n, FHIR_IN_MAX_ISSUES);
    cr_assert_eq(oo.more, 6);
    text = fhir_in_outcome_json(&oo);
    json_error_t je;
    json_t *doc = json_loads(text, 0, &je);
    cr_assert_not_null(doc);
    json_t *issues = json_object_get(doc, "issue");
    cr_assert_eq(json_array_size(issues), FHIR_IN_MAX_ISSUES + 1);
    cr_assert_str_eq(
        json_string_value(json_object_get(
            json_array_get(issues, FHIR_IN_MAX_ISSUES), "diagnostics")),
        "6 further problems were found and are not listed");
    json_decref(doc);
    free(text);
}

/* More problems than an OperationOutcome keeps: the first in document
 * order are kept. */
Test(fhir_in, many_problems_are_counted, .timeout = 10)
{
    size_t len;
    char *data =
        read_sample("valid/servicerequest-social-prescribing.json", &len);
    char perf[8192];
    size_t n = (size_t)snprintf(perf, sizeof perf, "\"performer\": [");
    for (int i = 0; i < 30 && n < sizeof perf; i++)
        n += (size_t)snprintf(
            perf + n, sizeof perf - n,
            "%s{\"identifier\": {\"system\": "
            "\"https://fhir.nhs.uk/Id/ods-organization-code\", "
            "\"value\": \"bad%d\"}}",
            i > 0 ? ", " : "", i);
    cr_assert_lt(n + 3, sizeof perf);
    snprintf(perf + n, sizeof perf - n, ", ");
    char *t = subst_all(data, "\"performer\": [", perf);
    fhir_in_result r;
    int rc = map_text(FHIR_IN_SERVICE_REQUEST, t, &r);
    expect_issue(rc, &r, 422, 0, "value",
                 "ServiceRequest.performer[0].identifier.value", "bad0");
    cr_assert_eq(r.oo.n, FHIR_IN_MAX_ISSUES);
    cr_assert_gt(r.oo.more, 0);
    cr_assert_not_null(
        strstr(r.oo.issues[FHIR_IN_MAX_ISSUES - 1].diagnostics, "bad19"));
    fhir_in_result_free(&r);
    free(t);
    free(data);
}
