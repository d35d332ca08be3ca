/* hub/validate: every sample passes; each single-field breakage gives its
 * code and a message naming the field. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handover/ident.h"
#include "handover/sample.h"
#include "handover/timeutil.h"
#include "validate.h"

static const validate_opts test_opts = {.allow_test_nhs_numbers = true};

static const char *const types[] = {"referral", "discharge", "equipment_order",
                                    "outcome"};

/* A string of n characters, borrowed from a static buffer for the life of
 * the test process. */
static const char *
str_of(size_t n)
{
    static char big[9000];
    if (big[0] == '\0') {
        memset(big, 'a', sizeof big - 1);
        big[sizeof big - 1] = '\0';
    }
    cr_assert_lt(n, sizeof big);
    return big + (sizeof big - 1 - n);
}

/* Fill s with a valid sample of type; an outcome answers a fresh id. */
static void
sample(hov_sample *s, const char *type)
{
    hov_sample_init(s, type, NULL);
    if (strcmp(type, "outcome") == 0) {
        char id[37];
        hov_uuid_v4(id);
        hov_sample_set_reply(s, id, "accepted");
    }
}

static void
expect_ok(const hov_sample *s, const char *what)
{
    hov_error err = {0};
    hov_err rc = validate_event(&s->ev, &test_opts, &err);
    cr_assert_eq(rc, HOV_OK, "%s: %s: %s", what, hov_strerror(rc), err.msg);
}

static void
expect_fail(const hov_sample *s, const validate_opts *opts, hov_err code,
            const char *needle, const char *what)
{
    hov_error err = {0};
    hov_err rc = validate_event(&s->ev, opts, &err);
    cr_assert_eq(rc, code, "%s: expected %s, got %s: %s", what,
                 hov_errname(code), hov_errname(rc), err.msg);
    cr_assert_eq(err.code, code, "%s", what);
    cr_assert(strstr(err.msg, needle) != NULL,
              "%s: message '%s' does not contain '%s'", what, err.msg, needle);
}

/* ------------------------------------------------------------ passing */

Test(validate, every_sample_type_passes, .timeout = 10)
{
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        hov_sample s;
        sample(&s, types[i]);
        expect_ok(&s, types[i]);
    }
}

Test(validate, every_cast_member_passes, .timeout = 10)
{
    static const char *cast[] = {"9992468130", "9994127357", "9993001007",
                                 "9995050501", "9996118428", "9997345207",
                                 "9998765439", "9992024682", "9995319764"};
    for (size_t i = 0; i < sizeof cast / sizeof cast[0]; i++) {
        for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
            hov_sample s;
            hov_sample_init(&s, types[t], cast[i]);
            if (t == 3)
                hov_sample_set_reply(&s, s.event_id, "accepted");
            char what[64];
            snprintf(what, sizeof what, "%s %s", types[t], cast[i]);
            cr_assert_str_eq(s.ev.patient->nhs_number, cast[i]);
            expect_ok(&s, what);
        }
    }
}

Test(validate, every_outcome_status_passes, .timeout = 10)
{
    static const char *statuses[] = {"acknowledged",   "accepted",  "rejected",
                                     "completed",      "cancelled", "delivered",
                                     "cannot_deliver", "collected"};
    for (size_t i = 0; i < sizeof statuses / sizeof statuses[0]; i++) {
        hov_sample s;
        hov_sample_init(&s, "outcome", NULL);
        hov_sample_set_reply(&s, "e09339b8-a502-5cfc-af76-7873b23f04b6",
                             statuses[i]);
        cr_assert_str_eq(s.ev.in_reply_to,
                         "e09339b8-a502-5cfc-af76-7873b23f04b6");
        cr_assert_str_eq(s.ev.correlation_id, s.ev.in_reply_to);
        expect_ok(&s, statuses[i]);
    }
}

Test(validate, sample_variants_pass, .timeout = 10)
{
    hov_sample s;

    sample(&s, "referral");
    hov_sample_set_service(&s, "social-prescribing");
    cr_assert(hov_sample_add_destination(&s, "local:VCS-0002"));
    hov_sample_set_consent(&s, "explicit", "2025-03-17T10:00:00Z");
    expect_ok(&s, "social prescribing to local:VCS-0002");

    sample(&s, "referral");
    hov_sample_set_consent(&s, "best_interests", "2025-03-17T10:00:00+00:00");
    expect_ok(&s, "consent recorded_at with an offset");

    sample(&s, "referral");
    hov_sample_set_source(&s, "Z9Z9Z");
    for (int i = 0; i < HOV_SAMPLE_MAX_DEST; i++)
        cr_assert(hov_sample_add_destination(&s, "RZZ40"));
    cr_assert_not(hov_sample_add_destination(&s, "RZZ40"));
    expect_ok(&s, "four destinations");

    sample(&s, "discharge");
    hov_sample_set_pathway(&s, 0);
    cr_assert_str_eq(s.ev.priority, "routine");
    expect_ok(&s, "pathway 0");
    hov_sample_set_registered_gp(&s, NULL);
    expect_ok(&s, "no registered GP");

    sample(&s, "equipment_order");
    s.order.action = "collect";
    static char *assets[] = {"CES-A-004512", "CES-A-004513"};
    s.order.n_collect_assets = 2;
    s.order.collect_assets = assets;
    expect_ok(&s, "collection with assets");

    sample(&s, "outcome");
    s.patient.nhs_number = "";
    expect_ok(&s, "outcome without an NHS number");

    sample(&s, "referral");
    s.ev.recorded_at = "2025-03-17T09:04:12+01:00";
    expect_ok(&s, "recorded_at with an offset");
    s.ev.recorded_at = "";
    expect_ok(&s, "no recorded_at");

    sample(&s, "referral");
    /* 35 characters of two bytes each: the limit counts characters. */
    static char e_acute[71];
    for (int i = 0; i < 35; i++)
        memcpy(e_acute + 2 * i, "\xc3\xa9", 2);
    s.patient.family_name = e_acute;
    expect_ok(&s, "35 two-byte characters");
    s.ev.reason = (char *)str_of(2000);
    s.ev.clinical_details = (char *)str_of(8000);
    expect_ok(&s, "text at its limits");

    sample(&s, "referral");
    char today[11];
    hov_today_london(today);
    s.patient.date_of_birth = today;
    expect_ok(&s, "born today");
}

Test(validate, new_id_changes_event_and_correlation_id, .timeout = 10)
{
    hov_sample s;
    sample(&s, "referral");
    char before[37];
    memcpy(before, s.event_id, sizeof before);
    hov_sample_new_id(&s);
    cr_assert_str_neq(s.ev.event_id, before);
    cr_assert_str_eq(s.ev.correlation_id, s.ev.event_id);
    expect_ok(&s, "after new_id");

    sample(&s, "outcome");
    char corr[37];
    memcpy(corr, s.correlation_id, sizeof corr);
    hov_sample_new_id(&s);
    cr_assert_str_eq(s.ev.correlation_id, corr);
    expect_ok(&s, "outcome after new_id");
}

Test(validate, test_range_needs_the_option, .timeout = 10)
{
    hov_sample s;
    sample(&s, "referral");
    validate_opts off = {.allow_test_nhs_numbers = false};
    expect_fail(&s, &off, HOV_ENHSNUMBER,
                "patient.nhs_number: NHS number "
                "9992468130 is in the 999 test range",
                "option off");
    expect_fail(&s, NULL, HOV_ENHSNUMBER, "999 test range", "NULL opts");
}

Test(validate, packed_round_trip_and_size, .timeout = 10)
{
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
        hov_sample s;
        sample(&s, types[t]);
        hov_sample_set_size(&s, 1024);
        size_t len = 0;
        uint8_t *buf = hov_sample_pack(&s, &len);
        cr_assert_not_null(buf);
        cr_assert_eq(len, 1024, "%s packs to %zu bytes", types[t], len);
        Handover__Event *ev = handover__event__unpack(NULL, len, buf);
        cr_assert_not_null(ev);
        hov_error err = {0};
        hov_err rc = validate_event(ev, &test_opts, &err);
        cr_assert_eq(rc, HOV_OK, "%s: %s", types[t], err.msg);
        cr_assert_str_eq(ev->event_id, s.event_id);
        handover__event__free_unpacked(ev, NULL);
        free(buf);
    }
    /* Smaller than the event: clinical_details stays empty. */
    hov_sample s;
    sample(&s, "referral");
    hov_sample_set_size(&s, 10);
    cr_assert_str_eq(s.ev.clinical_details, "");
    /* Larger than the field allows: capped at 8000 characters. */
    hov_sample_set_size(&s, 100000);
    cr_assert_eq(strlen(s.ev.clinical_details), HOV_SAMPLE_PAD_MAX);
    expect_ok(&s, "padded to the limit");
    /* A size needing a two-byte length. */
    hov_sample_set_size(&s, 4096);
    size_t len = 0;
    uint8_t *buf = hov_sample_pack(&s, &len);
    cr_assert_not_null(buf);
    cr_assert_eq(len, 4096);
    free(buf);
}

/* ----------------------------------------------------------- breakages */

static char *six_lines[] = {"1", "2", "3", "4", "5", "6"};
static char *long_given[] = {"Edith", NULL};
static char *bad_utf8_given[] = {"Edith", "\xc0\xaf"};

/* One field broken per case: the sample type, the change, the code and a
 * part of the message (always the field's name). */
#define BREAKAGES(X)                                                           \
    X(schema_missing, "referral", HOV_EMISSING, "schema is missing",           \
      s->ev.schema = "")                                                       \
    X(schema_wrong, "referral", HOV_EINVAL, "schema 'handover.event.v2'",      \
      s->ev.schema = "handover.event.v2")                                      \
    X(event_id_missing, "referral", HOV_EMISSING, "event_id is missing",       \
      s->ev.event_id = "")                                                     \
    X(event_id_upper, "referral", HOV_EINVAL, "event_id 'E09339B8",            \
      s->ev.event_id = "E09339B8-A502-5CFC-AF76-7873B23F04B6")                 \
    X(event_type_missing, "referral", HOV_EMISSING, "event_type",              \
      s->ev.event_type = "")                                                   \
    X(event_type_unknown, "referral", HOV_ECODE,                               \
      "event_type 'x' is not one of referral, discharge, equipment_order, "    \
      "outcome",                                                               \
      s->ev.event_type = "x")                                                  \
    X(correlation_id_bad, "referral", HOV_EINVAL, "correlation_id 'nope'",     \
      s->ev.correlation_id = "nope")                                           \
    X(in_reply_to_on_request, "discharge", HOV_EINVAL, "in_reply_to",          \
      s->ev.in_reply_to = "e09339b8-a502-5cfc-af76-7873b23f04b6")              \
    X(in_reply_to_missing, "outcome", HOV_EMISSING, "in_reply_to is missing",  \
      s->ev.in_reply_to = "")                                                  \
    X(in_reply_to_bad, "outcome", HOV_EINVAL, "in_reply_to 'CN-ORD-88120'",    \
      s->ev.in_reply_to = "CN-ORD-88120")                                      \
    X(occurred_at_missing, "referral", HOV_EMISSING, "occurred_at",            \
      s->ev.occurred_at = "")                                                  \
    X(occurred_at_offset, "referral", HOV_EINVAL, "occurred_at",               \
      s->ev.occurred_at = "2025-03-17T09:00:00+01:00")                         \
    X(occurred_at_no_zone, "outcome", HOV_EINVAL, "occurred_at",               \
      s->ev.occurred_at = "2025-03-18 09:10")                                  \
    X(recorded_at_bad, "referral", HOV_EINVAL, "recorded_at",                  \
      s->ev.recorded_at = "2025-03-17T09:04:12")                               \
    X(source_missing, "referral", HOV_EMISSING, "source is missing",           \
      s->ev.source = NULL)                                                     \
    X(source_org_missing, "referral", HOV_EMISSING, "source.org is missing",   \
      s->source.org = NULL)                                                    \
    X(source_org_code_missing, "referral", HOV_EMISSING,                       \
      "source.org.code is missing", hov_sample_set_source(s, ""))              \
    X(source_org_code_bad, "referral", HOV_EORGCODE,                           \
      "source.org.code 'z99001'", hov_sample_set_source(s, "z99001"))          \
    X(source_local_bad, "referral", HOV_EORGCODE, "source.org.code",           \
      hov_sample_set_source(s, "local:VCS_0001"))                              \
    X(source_system_long, "referral", HOV_EINVAL, "source.system",             \
      s->source.system = (char *)str_of(65))                                   \
    X(source_ref_long, "discharge", HOV_EINVAL, "source.ref",                  \
      s->source.ref = (char *)str_of(65))                                      \
    X(source_author_name_long, "referral", HOV_EINVAL, "source.author.name",   \
      s->author.name = (char *)str_of(101))                                    \
    X(source_author_id_long, "referral", HOV_EINVAL, "source.author.id",       \
      s->author.id = (char *)str_of(33))                                       \
    X(destination_bad, "referral", HOV_EORGCODE,                               \
      "destinations[1].code 'VCS-0002'",                                       \
      (hov_sample_add_destination(s, "RZZ40"),                                 \
       hov_sample_add_destination(s, "VCS-0002")))                             \
    X(destination_empty, "referral", HOV_EMISSING,                             \
      "destinations[0].code is missing", hov_sample_add_destination(s, ""))    \
    X(destination_on_outcome, "outcome", HOV_EINVAL, "destinations",           \
      hov_sample_add_destination(s, "Z99001"))                                 \
    X(patient_missing, "referral", HOV_EMISSING, "patient is missing",         \
      s->ev.patient = NULL)                                                    \
    X(patient_missing_outcome, "outcome", HOV_EMISSING, "patient",             \
      s->ev.patient = NULL)                                                    \
    X(nhs_missing, "discharge", HOV_EMISSING, "patient.nhs_number",            \
      s->patient.nhs_number = "")                                              \
    X(nhs_check_digit, "referral", HOV_ENHSNUMBER,                             \
      "patient.nhs_number: NHS number 9994127358 fails the Modulus 11",        \
      s->patient.nhs_number = "9994127358")                                    \
    X(nhs_identical, "outcome", HOV_ENHSNUMBER,                                \
      "patient.nhs_number: NHS number 1111111111 is ten identical digits",     \
      s->patient.nhs_number = "1111111111")                                    \
    X(nhs_short, "equipment_order", HOV_ENHSNUMBER,                            \
      "patient.nhs_number: NHS number '12345' is not 10 digits",               \
      s->patient.nhs_number = "12345")                                         \
    X(family_name_missing, "referral", HOV_EMISSING,                           \
      "patient.family_name is missing", s->patient.family_name = "")           \
    X(family_name_long, "discharge", HOV_EINVAL,                               \
      "patient.family_name is 36 characters long",                             \
      s->patient.family_name = (char *)str_of(36))                             \
    X(given_names_missing, "referral", HOV_EMISSING,                           \
      "patient.given_names is missing", s->patient.n_given_names = 0)          \
    X(given_name_empty, "referral", HOV_EMISSING,                              \
      "patient.given_names is missing", s->given_names[0] = "")                \
    X(given_name_long, "referral", HOV_EINVAL, "patient.given_names[1]",       \
      (long_given[1] = (char *)str_of(36),                                     \
       s->patient.given_names = long_given))                                   \
    X(dob_missing, "referral", HOV_EMISSING, "patient.date_of_birth",          \
      s->patient.date_of_birth = "")                                           \
    X(dob_bad, "equipment_order", HOV_EINVAL,                                  \
      "patient.date_of_birth '1938-02-30'",                                    \
      s->patient.date_of_birth = "1938-02-30")                                 \
    X(dob_future, "referral", HOV_EINVAL,                                      \
      "patient.date_of_birth 2099-01-01 is in the future",                     \
      s->patient.date_of_birth = "2099-01-01")                                 \
    X(sex_unknown_code, "referral", HOV_ECODE, "patient.sex 'F'",              \
      s->patient.sex = "F")                                                    \
    X(address_too_many_lines, "referral", HOV_EINVAL,                          \
      "patient.address_lines has 6 lines",                                     \
      (s->patient.n_address_lines = 6, s->patient.address_lines = six_lines))  \
    X(address_line_long, "referral", HOV_EINVAL, "patient.address_lines[0]",   \
      s->address_lines[0] = (char *)str_of(36))                                \
    X(postcode_missing, "referral", HOV_EMISSING, "patient.postcode",          \
      s->patient.postcode = "")                                                \
    X(postcode_lower, "discharge", HOV_EINVAL, "patient.postcode 'fe7 8qt'",   \
      s->patient.postcode = "fe7 8qt")                                         \
    X(postcode_shape, "referral", HOV_EINVAL, "patient.postcode",              \
      s->patient.postcode = "FE7 8Q")                                          \
    X(phone_long, "referral", HOV_EINVAL, "patient.phone",                     \
      s->patient.phone = (char *)str_of(36))                                   \
    X(registered_gp_local, "discharge", HOV_EORGCODE,                          \
      "patient.registered_gp 'local:VCS-0001'",                                \
      hov_sample_set_registered_gp(s, "local:VCS-0001"))                       \
    X(priority_missing, "referral", HOV_EMISSING, "priority is missing",       \
      s->ev.priority = "")                                                     \
    X(priority_missing_order, "equipment_order", HOV_EMISSING, "priority",     \
      s->ev.priority = "")                                                     \
    X(priority_unknown, "discharge", HOV_ECODE, "priority 'asap'",             \
      s->ev.priority = "asap")                                                 \
    X(reason_missing, "referral", HOV_EMISSING, "reason is missing",           \
      s->ev.reason = "")                                                       \
    X(reason_long, "referral", HOV_EINVAL, "reason is 2001 characters",        \
      s->ev.reason = (char *)str_of(2001))                                     \
    X(clinical_details_long, "discharge", HOV_EINVAL, "clinical_details",      \
      s->ev.clinical_details = (char *)str_of(8001))                           \
    X(social_details_long, "referral", HOV_EINVAL, "social_details",           \
      s->ev.social_details = (char *)str_of(8001))                             \
    X(access_notes_long, "equipment_order", HOV_EINVAL, "access_notes",        \
      s->ev.access_notes = (char *)str_of(2001))                               \
    X(consent_basis_missing, "discharge", HOV_EMISSING, "consent.basis",       \
      s->consent.basis = "")                                                   \
    X(consent_basis_unknown, "referral", HOV_ECODE, "consent.basis 'verbal'",  \
      hov_sample_set_consent(s, "verbal", NULL))                               \
    X(consent_recorded_at_missing, "referral", HOV_EMISSING,                   \
      "consent.recorded_at is missing",                                        \
      hov_sample_set_consent(s, "explicit", NULL))                             \
    X(consent_recorded_at_bad, "referral", HOV_EINVAL, "consent.recorded_at",  \
      hov_sample_set_consent(s, "explicit", "today"))                          \
    X(consent_notes_long, "discharge", HOV_EINVAL, "consent.notes",            \
      s->consent.notes = (char *)str_of(501))                                  \
    X(body_missing, "referral", HOV_EMISSING, "body is missing",               \
      s->ev.body_case = HANDOVER__EVENT__BODY__NOT_SET)                        \
    X(body_mismatch, "referral", HOV_EINVAL,                                   \
      "body equipment_order does not match event_type referral",               \
      (s->ev.body_case = HANDOVER__EVENT__BODY_EQUIPMENT_ORDER,                \
       s->ev.equipment_order = &s->order))                                     \
    X(body_mismatch_outcome, "discharge", HOV_EINVAL,                          \
      "body discharge does not match event_type outcome",                      \
      (s->ev.event_type = "outcome",                                           \
       s->ev.in_reply_to = "e09339b8-a502-5cfc-af76-7873b23f04b6"))            \
    X(service_missing, "referral", HOV_EMISSING,                               \
      "referral.service is missing", hov_sample_set_service(s, ""))            \
    X(service_unknown, "referral", HOV_ECODE,                                  \
      "referral.service 'foo' is not a known service",                         \
      hov_sample_set_service(s, "foo"))                                        \
    X(preferred_contact_long, "referral", HOV_EINVAL,                          \
      "referral.preferred_contact",                                            \
      s->referral.preferred_contact = (char *)str_of(201))                     \
    X(admitted_at_missing, "discharge", HOV_EMISSING,                          \
      "discharge.admitted_at is missing", s->discharge.admitted_at = "")       \
    X(discharged_at_bad, "discharge", HOV_EINVAL, "discharge.discharged_at",   \
      s->discharge.discharged_at = "20250314100500")                           \
    X(discharged_before_admitted, "discharge", HOV_EINVAL,                     \
      "discharge.discharged_at 2000-01-01T00:00:00Z is before",                \
      s->discharge.discharged_at = "2000-01-01T00:00:00Z")                     \
    X(pathway_missing, "discharge", HOV_EMISSING,                              \
      "discharge.pathway is missing",                                          \
      s->discharge.pathway_present_case =                                      \
          HANDOVER__DISCHARGE__PATHWAY_PRESENT__NOT_SET)                       \
    X(pathway_4, "discharge", HOV_EINVAL, "discharge.pathway 4",               \
      hov_sample_set_pathway(s, 4))                                            \
    X(pathway_negative, "discharge", HOV_EINVAL, "discharge.pathway -1",       \
      hov_sample_set_pathway(s, -1))                                           \
    X(discharge_destination_missing, "discharge", HOV_EMISSING,                \
      "discharge.destination is missing", s->discharge.destination = NULL)     \
    X(discharge_destination_code_missing, "discharge", HOV_EMISSING,           \
      "discharge.destination.code is missing", s->discharge_dest.code = "")    \
    X(site_missing, "discharge", HOV_EMISSING, "discharge.site is missing",    \
      s->discharge.site = "")                                                  \
    X(site_local, "discharge", HOV_EORGCODE, "discharge.site 'local:RZZ01'",   \
      s->discharge.site = "local:RZZ01")                                       \
    X(ward_long, "discharge", HOV_EINVAL, "discharge.ward",                    \
      s->discharge.ward = (char *)str_of(36))                                  \
    X(clinician_phone_long, "discharge", HOV_EINVAL,                           \
      "discharge.responsible_clinician.phone",                                 \
      s->clinician.phone = (char *)str_of(36))                                 \
    X(follow_up_long, "discharge", HOV_EINVAL,                                 \
      "discharge.follow_up[1].description",                                    \
      s->follow_up[1].description = (char *)str_of(501))                       \
    X(medications_long, "discharge", HOV_EINVAL,                               \
      "discharge.medications_summary",                                         \
      s->discharge.medications_summary = (char *)str_of(8001))                 \
    X(action_missing, "equipment_order", HOV_EMISSING,                         \
      "equipment_order.action is missing", s->order.action = "")               \
    X(action_unknown, "equipment_order", HOV_ECODE,                            \
      "equipment_order.action 'lend' is not one of deliver, collect",          \
      s->order.action = "lend")                                                \
    X(order_ref_missing, "equipment_order", HOV_EMISSING,                      \
      "equipment_order.order_ref is missing", s->order.order_ref = "")         \
    X(order_ref_long, "equipment_order", HOV_EINVAL,                           \
      "equipment_order.order_ref", s->order.order_ref = (char *)str_of(65))    \
    X(items_missing, "equipment_order", HOV_EMISSING,                          \
      "equipment_order.items is missing", s->order.n_items = 0)                \
    X(item_code_missing, "equipment_order", HOV_EMISSING,                      \
      "equipment_order.items[1].item_code is missing",                         \
      s->items[1].item_code = "")                                              \
    X(item_quantity_0, "equipment_order", HOV_EINVAL,                          \
      "equipment_order.items[0].quantity 0", s->items[0].quantity = 0)         \
    X(item_quantity_100, "equipment_order", HOV_EINVAL,                        \
      "equipment_order.items[2].quantity 100", s->items[2].quantity = 100)     \
    X(delivery_address_missing, "equipment_order", HOV_EMISSING,               \
      "equipment_order.delivery_address is missing",                           \
      s->order.delivery_address = NULL)                                        \
    X(delivery_postcode_missing, "equipment_order", HOV_EMISSING,              \
      "equipment_order.delivery_address.postcode is missing",                  \
      s->delivery_address.postcode = "")                                       \
    X(delivery_postcode_bad, "equipment_order", HOV_EINVAL,                    \
      "equipment_order.delivery_address.postcode",                             \
      s->delivery_address.postcode = "FE4 3L")                                 \
    X(required_by_missing, "equipment_order", HOV_EMISSING,                    \
      "equipment_order.required_by is missing", s->order.required_by = "")     \
    X(required_by_bad, "equipment_order", HOV_EINVAL,                          \
      "equipment_order.required_by '2025-03-32'",                              \
      s->order.required_by = "2025-03-32")                                     \
    X(prescriber_missing, "equipment_order", HOV_EMISSING,                     \
      "equipment_order.prescriber is missing", s->order.prescriber = NULL)     \
    X(prescriber_name_missing, "equipment_order", HOV_EMISSING,                \
      "equipment_order.prescriber.name is missing", s->prescriber.name = "")   \
    X(prescriber_org_bad, "equipment_order", HOV_EORGCODE,                     \
      "equipment_order.prescriber.org 'rzz40'", s->prescriber.org = "rzz40")   \
    X(collect_without_assets, "equipment_order", HOV_EMISSING,                 \
      "equipment_order.collect_assets", s->order.action = "collect")           \
    X(status_missing, "outcome", HOV_EMISSING, "outcome.status is missing",    \
      hov_sample_set_reply(s, s->in_reply_to, ""))                             \
    X(status_unknown, "outcome", HOV_ECODE, "outcome.status 'done'",           \
      hov_sample_set_reply(s, s->in_reply_to, "done"))                         \
    X(reason_code_missing, "outcome", HOV_EMISSING,                            \
      "outcome.reason_code is missing",                                        \
      (hov_sample_set_reply(s, s->in_reply_to, "rejected"),                    \
       s->outcome.reason_code = ""))                                           \
    X(reason_code_wrong_status, "outcome", HOV_ECODE,                          \
      "outcome.reason_code 'no-access' is not a reason for rejected",          \
      (hov_sample_set_reply(s, s->in_reply_to, "rejected"),                    \
       s->outcome.reason_code = "no-access"))                                  \
    X(reason_code_cancelled, "outcome", HOV_ECODE,                             \
      "outcome.reason_code 'not-eligible' is not a reason for cancelled",      \
      (hov_sample_set_reply(s, s->in_reply_to, "cancelled"),                   \
       s->outcome.reason_code = "not-eligible"))                               \
    X(cannot_deliver_no_reason, "outcome", HOV_EMISSING,                       \
      "outcome.reason_code",                                                   \
      (hov_sample_set_reply(s, s->in_reply_to, "cannot_deliver"),              \
       s->outcome.reason_code = ""))                                           \
    X(delivered_no_items, "outcome", HOV_EMISSING, "outcome.items is missing", \
      (hov_sample_set_reply(s, s->in_reply_to, "delivered"),                   \
       s->outcome.n_items = 0))                                                \
    X(outcome_item_code_missing, "outcome", HOV_EMISSING,                      \
      "outcome.items[0].item_code is missing",                                 \
      (hov_sample_set_reply(s, s->in_reply_to, "collected"),                   \
       s->outcome_item.item_code = ""))                                        \
    X(outcome_item_quantity, "outcome", HOV_EINVAL,                            \
      "outcome.items[0].quantity 100",                                         \
      (hov_sample_set_reply(s, s->in_reply_to, "delivered"),                   \
       s->outcome_item.quantity = 100))                                        \
    X(reason_text_long, "outcome", HOV_EINVAL, "outcome.reason_text",          \
      s->outcome.reason_text = (char *)str_of(501))                            \
    X(planned_for_bad, "outcome", HOV_EINVAL, "outcome.planned_for 'soon'",    \
      s->outcome.planned_for = "soon")                                         \
    X(utf8_family_name, "referral", HOV_EINVAL,                                \
      "patient.family_name is not valid UTF-8",                                \
      s->patient.family_name = "Harrow\xff gate")                              \
    X(utf8_overlong, "referral", HOV_EINVAL,                                   \
      "patient.given_names[1] is not valid UTF-8",                             \
      s->patient.given_names = bad_utf8_given)                                 \
    X(utf8_surrogate, "referral", HOV_EINVAL, "reason is not valid UTF-8",     \
      s->ev.reason = "a\xed\xa0\x80z")                                         \
    X(utf8_truncated, "discharge", HOV_EINVAL,                                 \
      "discharge.follow_up[1].service is not valid UTF-8",                     \
      s->follow_up[1].service = "reablement\xc3")                              \
    X(utf8_org_name, "referral", HOV_EINVAL,                                   \
      "source.org.name is not valid UTF-8",                                    \
      s->source_org.name = "\xf5\x80\x80\x80")

#define BREAK_FN(name, type, code, needle, change)                             \
    static void break_##name(hov_sample *s)                                    \
    {                                                                          \
        change;                                                                \
    }
BREAKAGES(BREAK_FN)
#undef BREAK_FN

typedef struct breakage {
    const char *name;
    const char *type;
    hov_err code;
    const char *needle;
    void (*apply)(hov_sample *s);
} breakage;

static const breakage breakages[] = {
#define BREAK_ROW(name, type, code, needle, change)                            \
    {#name, type, code, needle, break_##name},
    BREAKAGES(BREAK_ROW)
#undef BREAK_ROW
};

Test(validate, single_field_breakages, .timeout = 10)
{
    for (size_t i = 0; i < sizeof breakages / sizeof breakages[0]; i++) {
        const breakage *b = &breakages[i];
        hov_sample s;
        sample(&s, b->type);
        expect_ok(&s, b->name); /* the breakage is the only cause */
        b->apply(&s);
        expect_fail(&s, &test_opts, b->code, b->needle, b->name);
    }
}

Test(validate, first_failure_wins_in_field_order, .timeout = 10)
{
    hov_sample s;
    sample(&s, "referral");
    s.patient.postcode = "bad";
    s.ev.occurred_at = "";
    hov_sample_set_service(&s, "foo");
    expect_fail(&s, &test_opts, HOV_EMISSING, "occurred_at",
                "occurred_at first");

    hov_error err = {0};
    hov_fail(&err, HOV_EIO, 0, "earlier");
    cr_assert_eq(validate_event(&s.ev, &test_opts, &err), HOV_EMISSING);
    cr_assert_eq(err.code, HOV_EIO, "an earlier failure is kept");
    cr_assert_eq(validate_event(&s.ev, &test_opts, NULL), HOV_EMISSING);
    cr_assert_eq(validate_event(NULL, &test_opts, NULL), HOV_EMISSING);
}

Test(validate, too_many_items, .timeout = 10)
{
    hov_sample s;
    sample(&s, "equipment_order");
    static Handover__EquipmentItem item;
    static Handover__EquipmentItem *items[51];
    handover__equipment_item__init(&item);
    item.item_code = "COMMODE-STD";
    item.quantity = 1;
    for (size_t i = 0; i < 51; i++)
        items[i] = &item;
    s.order.items = items;
    s.order.n_items = 50;
    expect_ok(&s, "50 items");
    s.order.n_items = 51;
    expect_fail(&s, &test_opts, HOV_EINVAL,
                "equipment_order.items has 51 lines, more than 50", "51 items");
}

Test(validate, echoed_values_are_capped, .timeout = 10)
{
    hov_sample s;
    sample(&s, "referral");
    /* Pointed at directly: the setter would cut it to fit its buffer. */
    s.referral.service = "0123456789012345678901234567890123456789"
                         "-and-a-lot-more";
    hov_error err = {0};
    cr_assert_eq(validate_event(&s.ev, &test_opts, &err), HOV_ECODE);
    cr_assert(strstr(err.msg, "-and-a-lot-more") == NULL, "%s", err.msg);
    cr_assert(strstr(err.msg, "...") != NULL, "%s", err.msg);
}

/* ------------------------------------------------------- status tables */

Test(validate, services, .timeout = 10)
{
    static const char *known[] = {
        "district-nursing",   "urgent-community-response",
        "community-therapy",  "adult-social-care-assessment",
        "carers-assessment",  "reablement",
        "social-prescribing", "home-from-hospital"};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        cr_assert(validate_service_known(known[i]), "%s", known[i]);
    cr_assert_not(validate_service_known("podiatry"));
    cr_assert_not(validate_service_known("District-Nursing"));
    cr_assert_not(validate_service_known(""));
    cr_assert_not(validate_service_known(NULL));
}

Test(validate, outcome_status_table, .timeout = 10)
{
    /* Domain 3.6, row by row: status, allowed for referral, discharge,
     * equipment_order, terminal. */
    static const struct {
        const char *status;
        bool referral, discharge, order, terminal;
    } rows[] = {
        {"acknowledged", false, true, false, true},
        {"accepted", true, true, true, false},
        {"rejected", true, true, true, true},
        {"completed", true, false, false, true},
        {"cancelled", true, false, true, true},
        {"delivered", false, false, true, true},
        {"cannot_deliver", false, false, true, false},
        {"collected", false, false, true, true},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        const char *st = rows[i].status;
        cr_assert(validate_outcome_status_known(st), "%s", st);
        cr_assert_eq(validate_outcome_status_allowed(st, "referral"),
                     rows[i].referral, "%s for referral", st);
        cr_assert_eq(validate_outcome_status_allowed(st, "discharge"),
                     rows[i].discharge, "%s for discharge", st);
        cr_assert_eq(validate_outcome_status_allowed(st, "equipment_order"),
                     rows[i].order, "%s for equipment_order", st);
        cr_assert_not(validate_outcome_status_allowed(st, "outcome"), "%s", st);
        cr_assert_not(validate_outcome_status_allowed(st, NULL), "%s", st);
        cr_assert_eq(validate_outcome_is_terminal(st), rows[i].terminal,
                     "%s terminal", st);
    }
    cr_assert_not(validate_outcome_status_known("deliverd"));
    cr_assert_not(validate_outcome_status_known(NULL));
    cr_assert_not(
        validate_outcome_status_allowed("deliverd", "equipment_order"));
    cr_assert_not(validate_outcome_status_allowed(NULL, "referral"));
    cr_assert_not(validate_outcome_is_terminal("deliverd"));
    cr_assert_not(validate_outcome_is_terminal(NULL));
}

/* Fields the schema does not have are refused: a view (hub/route.c) would
 * otherwise pass them to a receiver that may not see them, and one numbered
 * 0 (a non-canonical tag protobuf-c reads but cannot write back readable)
 * made every view of an accepted event undecodable (fuzz/frame_fuzz.c). */
Test(validate, unknown_fields_refused, .timeout = 10)
{
    static const uint8_t extra[][4] = {
        {0xfa, 0x07, 0x01, 'x'}, /* field 127, one byte */
        {0x82, 0x00, 0x01, 'x'}, /* field 0, tag written in two bytes */
    };
    static const unsigned numbers[] = {127, 0};
    for (size_t i = 0; i < 2; i++) {
        hov_sample s;
        sample(&s, "referral");
        size_t len = 0;
        uint8_t *buf = hov_sample_pack(&s, &len);
        cr_assert_not_null(buf);
        uint8_t *more = realloc(buf, len + sizeof extra[i]);
        cr_assert_not_null(more);
        memcpy(more + len, extra[i], sizeof extra[i]);
        Handover__Event *ev =
            handover__event__unpack(NULL, len + sizeof extra[i], more);
        cr_assert_not_null(ev, "protobuf-c reads field %u", numbers[i]);
        hov_error err = {0};
        cr_assert_eq(validate_event(ev, &test_opts, &err), HOV_EINVAL);
        char want[64];
        snprintf(want, sizeof want, "the event has a field numbered %u",
                 numbers[i]);
        cr_assert(strstr(err.msg, want) != NULL, "%s", err.msg);
        handover__event__free_unpacked(ev, NULL);
        free(more);
    }
    /* Inside a nested message, named by its path. */
    hov_sample s;
    sample(&s, "referral");
    ProtobufCMessageUnknownField u = {.tag = 40,
                                      .wire_type =
                                          PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED,
                                      .len = 1,
                                      .data = (uint8_t *)"x"};
    s.ev.patient->base.n_unknown_fields = 1;
    s.ev.patient->base.unknown_fields = &u;
    expect_fail(&s, &test_opts, HOV_EINVAL, "patient has a field numbered 40",
                "nested unknown field");
    s.ev.patient->base.n_unknown_fields = 0;
    s.ev.patient->base.unknown_fields = NULL;
    expect_ok(&s, "after removing it");
}
