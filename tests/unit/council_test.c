/* The council file formats (domain 7): the CSV reader, the outcomes and
 * JSON mappings, the file name check and the outbound JSON. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "council.h"
#include "handover/ident.h"

#ifndef HANDOVER_SHARED_DIR
#define HANDOVER_SHARED_DIR HANDOVER_SOURCE_DIR "/../shared"
#endif
#define COUNCIL HANDOVER_SHARED_DIR "/samples/council"

static const char *const senders[] = {"Z9Z9Z", "8ZZ99", NULL};

static char *
slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    cr_assert_eq(fread(b, 1, (size_t)n, f), (size_t)n);
    b[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return b;
}

#define HEADER                                                                 \
    "record_id,in_reply_to,nhs_number,outcome,reason_code,reason_text,"        \
    "occurred_at,performed_by,performed_by_role,source_org,item_code,"         \
    "quantity,asset_id,planned_for\r\n"
#define REPLY "d745de58-a690-5946-975d-ed6388248d9c"

Test(council_csv, quoting_line_breaks_and_line_numbers)
{
    const char in[] = "a,\"b,1\",\"say \"\"hi\"\"\"\r\n"
                      "\r\n"
                      "\"two\r\nlines\",x,\r\n"
                      "last,,z";
    council_csv c;
    council_csv_init(&c, in, sizeof in - 1);
    size_t line;
    char why[200];
    cr_assert_eq(council_csv_next(&c, &line, why, sizeof why), 1);
    cr_assert_eq(line, 1);
    cr_assert_eq(c.n, 3);
    cr_assert_str_eq(c.fields[1], "b,1");
    cr_assert_str_eq(c.fields[2], "say \"hi\"");
    cr_assert_eq(council_csv_next(&c, &line, why, sizeof why), 1);
    cr_assert_eq(line, 3, "the empty line 2 still counts");
    cr_assert_str_eq(c.fields[0], "two\r\nlines");
    cr_assert_eq(c.n, 3);
    cr_assert_str_eq(c.fields[2], "");
    cr_assert_eq(council_csv_next(&c, &line, why, sizeof why), 1);
    cr_assert_eq(line, 5, "a quoted line break makes the record span two");
    cr_assert_str_eq(c.fields[2], "z");
    cr_assert_eq(council_csv_next(&c, &line, why, sizeof why), 0);
    council_csv_fini(&c);
}

Test(council_csv, malformed_records_are_reported_and_skipped)
{
    const char in[] = "a\"b,c\nok,1\n\"open";
    council_csv c;
    council_csv_init(&c, in, sizeof in - 1);
    size_t line;
    char why[200];
    cr_assert_eq(council_csv_next(&c, &line, why, sizeof why), -1);
    cr_assert_not_null(strstr(why, "quote in an unquoted field"), "%s", why);
    cr_assert_eq(council_csv_next(&c, &line, why, sizeof why), 1);
    cr_assert_eq(line, 2);
    cr_assert_eq(council_csv_next(&c, &line, why, sizeof why), -1);
    cr_assert_not_null(strstr(why, "not closed"), "%s", why);
    cr_assert_eq(council_csv_next(&c, &line, why, sizeof why), 0);
    council_csv_fini(&c);
}

Test(council_outcomes, ces_sample_maps_to_five_outcomes)
{
    size_t len;
    char *data = slurp(COUNCIL "/outcomes/outcomes_8ZZ99_20250317T163000Z_"
                               "000041.csv",
                       &len);
    council_file f;
    hov_error err = {0};
    cr_assert_eq(council_outcomes_parse(data, len, "8ZZ99", 10000, &f, &err),
                 HOV_OK);
    cr_assert_eq(f.n_problems, 0, "%s", f.n_problems ? f.problems[0].text : "");
    cr_assert_eq(f.n_records, 5);
    const Handover__Event *ev = f.records[2].event;
    cr_assert_eq(f.records[2].line, 4);
    cr_assert_str_eq(ev->event_type, "outcome");
    cr_assert_str_eq(ev->in_reply_to, REPLY);
    cr_assert_str_eq(ev->correlation_id, "", "the hub fills it");
    cr_assert_str_eq(ev->outcome->status, "cannot_deliver");
    cr_assert_str_eq(ev->outcome->reason_code, "item-out-of-stock");
    cr_assert_str_eq(ev->outcome->reason_text,
                     "Static commode out of stock, next van 19/03/2025; depot "
                     "says \"none until Wednesday\"");
    cr_assert_str_eq(ev->outcome->planned_for, "2025-03-19");
    cr_assert_str_eq(ev->source->org->code, "8ZZ99");
    cr_assert_str_eq(ev->source->ref, "CES-DEL-250317-0041-3");
    cr_assert_str_eq(ev->patient->nhs_number, "9993001007");
    cr_assert_eq(ev->outcome->n_items, 1);
    cr_assert_str_eq(ev->outcome->items[0]->item_code, "COMMODE-STD");
    cr_assert_eq(ev->outcome->items[0]->quantity, 1);
    char want[37];
    const char name[] = "file|8ZZ99|CES-DEL-250317-0041-3";
    cr_assert_eq(
        hov_uuid_v5(HOV_EVENT_ID_NS, name, sizeof name - 1, want, &err),
        HOV_OK);
    cr_assert_str_eq(ev->event_id, want);
    cr_assert_eq(f.records[4].event->outcome->items[0]->quantity, 2);
    council_file_free(&f);
    free(data);
}

Test(council_outcomes, bom_and_quoted_line_break)
{
    size_t len;
    char *data = slurp(COUNCIL "/outcomes/outcomes_Z9Z9Z_20250317T170000Z_"
                               "000112.csv",
                       &len);
    council_file f;
    hov_error err = {0};
    cr_assert_eq(council_outcomes_parse(data, len, "Z9Z9Z", 10000, &f, &err),
                 HOV_OK);
    cr_assert_eq(f.n_problems, 0, "%s", f.n_problems ? f.problems[0].text : "");
    cr_assert_eq(f.n_records, 1);
    const Handover__Event *ev = f.records[0].event;
    cr_assert_str_eq(ev->outcome->status, "accepted");
    cr_assert_not_null(strstr(ev->outcome->reason_text, "team.\r\nAssessment"));
    cr_assert_str_eq(ev->source->author->name, "Gareth Lowes");
    council_file_free(&f);
    free(data);
}

Test(council_outcomes, mixed_sample_reports_each_bad_line)
{
    size_t len;
    char *data = slurp(COUNCIL "/invalid/outcomes_8ZZ99_20250318T080000Z_"
                               "000042.csv",
                       &len);
    council_file f;
    hov_error err = {0};
    cr_assert_eq(council_outcomes_parse(data, len, "8ZZ99", 10000, &f, &err),
                 HOV_OK);
    cr_assert_eq(f.n_records, 1);
    cr_assert_eq(f.records[0].line, 2);
    cr_assert_not(f.rejected);
    cr_assert_eq(f.n_problems, 6);
    static const char *const want[] = {
        "nhs_number: 9997345208 fails the Modulus 11 check (expected check "
        "digit 7)",
        "outcome: 'deliverd'",
        "has 7 fields, not 14",
        "occurred_at: '2025-03-18 09:10'",
        "reason_code: missing",
        "in_reply_to: 'CN-ORD-88120' is not an event id",
    };
    for (size_t i = 0; i < 6; i++) {
        cr_assert_eq(f.problems[i].line, i + 3);
        cr_assert_not_null(strstr(f.problems[i].text, want[i]), "%s",
                           f.problems[i].text);
    }
    council_file_free(&f);
    free(data);
}

Test(council_outcomes, whole_file_rejections)
{
    council_file f;
    hov_error err = {0};
    const char bad_header[] = "record_id,order_ref\r\n";
    cr_assert_eq(council_outcomes_parse(bad_header, sizeof bad_header - 1,
                                        "8ZZ99", 10000, &f, &err),
                 HOV_OK);
    cr_assert(f.rejected);
    cr_assert_not_null(
        strstr(f.problems[0].text, "header mismatch at column 2"));
    council_file_free(&f);
    const char latin1[] = HEADER "x,\xe9\r\n";
    cr_assert_eq(council_outcomes_parse(latin1, sizeof latin1 - 1, "8ZZ99",
                                        10000, &f, &err),
                 HOV_OK);
    cr_assert(f.rejected);
    cr_assert_not_null(strstr(f.problems[0].text, "not UTF-8"));
    council_file_free(&f);
    const char only_header[] = "\xEF\xBB\xBF" HEADER "\r\n\r\n";
    cr_assert_eq(council_outcomes_parse(only_header, sizeof only_header - 1,
                                        "8ZZ99", 10000, &f, &err),
                 HOV_OK);
    cr_assert_not(f.rejected);
    cr_assert_eq(f.n_records + f.n_problems, 0);
    council_file_free(&f);
    const char rows[] = HEADER
        "r1," REPLY ",9993001007,accepted,,,2025-03-18T09:10:00+01:00,,,"
        "8ZZ99,,,,\r\n"
        "r2," REPLY ",9993001007,accepted,,,2025-03-18T09:10:00Z,,,8ZZ99,,,,"
        "\r\n";
    cr_assert_eq(
        council_outcomes_parse(rows, sizeof rows - 1, "8ZZ99", 1, &f, &err),
        HOV_OK);
    cr_assert(f.rejected);
    cr_assert_eq(f.n_records, 0, "over the row limit: nothing published");
    council_file_free(&f);
    cr_assert_eq(
        council_outcomes_parse(rows, sizeof rows - 1, "8ZZ99", 10, &f, &err),
        HOV_OK);
    cr_assert_eq(f.n_records, 2);
    cr_assert_str_eq(f.records[0].event->occurred_at, "2025-03-18T08:10:00Z",
                     "an offset is converted to UTC");
    council_file_free(&f);
}

Test(council_outcomes, row_rules)
{
    static const struct {
        const char *row, *want;
    } cases[] = {
        {"r1," REPLY ",9993001007,delivered,,,2025-03-18T09:10:00Z,,,8ZZ99,,"
         ",,",
         "item_code: missing"},
        {"r1," REPLY ",9993001007,collected,,,2025-03-18T09:10:00Z,,,8ZZ99,B,"
         ",,",
         "asset_id: missing"},
        {"r1," REPLY ",9993001007,delivered,,,2025-03-18T09:10:00Z,,,8ZZ99,B,"
         "100,,",
         "quantity"},
        {"r1," REPLY ",9993001007,accepted,,,2025-03-18T09:10:00Z,,,Z9Z9Z,,,,",
         "source_org: 'Z9Z9Z' is not the sender"},
        {"r 1," REPLY ",9993001007,accepted,,,2025-03-18T09:10:00Z,,,8ZZ99,,,,",
         "record_id"},
        {"r1," REPLY ",9993001007,accepted,,,2025-03-18T09:10:00Z,,,8ZZ99,,,,"
         "2025-02-30",
         "planned_for"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char buf[600];
        int n = snprintf(buf, sizeof buf, HEADER "%s\r\n", cases[i].row);
        council_file f;
        hov_error err = {0};
        cr_assert_eq(
            council_outcomes_parse(buf, (size_t)n, "8ZZ99", 100, &f, &err),
            HOV_OK);
        cr_assert_eq(f.n_problems, 1, "case %zu", i);
        cr_assert_not_null(strstr(f.problems[0].text, cases[i].want),
                           "case %zu: %s", i, f.problems[0].text);
        council_file_free(&f);
    }
}

Test(council_json, valid_referral_gets_its_derived_id)
{
    size_t len;
    char *data = slurp(COUNCIL "/valid/referral_Z9Z9Z_20250317T090500Z_"
                               "000007.json",
                       &len);
    council_file f;
    hov_error err = {0};
    cr_assert_eq(council_json_in(data, len, "Z9Z9Z", true, &f, &err), HOV_OK);
    cr_assert_eq(f.n_problems, 0, "%s", f.n_problems ? f.problems[0].text : "");
    cr_assert_eq(f.n_records, 1);
    const Handover__Event *ev = f.records[0].event;
    cr_assert_str_eq(ev->event_id, "a52d3c69-9fb0-578c-8a16-3f27a0615b26");
    cr_assert_str_eq(ev->correlation_id, ev->event_id);
    cr_assert_str_eq(ev->referral->service, "social-prescribing");
    cr_assert_str_eq(ev->consent->basis, "explicit");
    cr_assert_eq(ev->patient->n_given_names, 2);
    cr_assert_str_eq(ev->destinations[0]->code, "local:VCS-0001");
    council_file_free(&f);
    /* From the wrong sender it is a bad record. */
    cr_assert_eq(council_json_in(data, len, "8ZZ99", true, &f, &err), HOV_OK);
    cr_assert_eq(f.n_records, 0);
    cr_assert_not_null(strstr(f.problems[0].text, "source.org.code"));
    council_file_free(&f);
    free(data);
}

Test(council_json, text_and_json_input_rules)
{
    static const struct {
        const char *doc, *want;
    } cases[] = {
        {"{\"a\":1,\"a\":2}", "duplicate"},
        {"{\"reason\":\"x\\u0000y\"}", "line 1"},
        {"{\"event_id\":\"d745de58-a690-5946-975d-ed6388248d9c\"}",
         "event_id is set by Handover (3.8): leave it out"},
        {"{\"occurred_at\":\"2025-03-17T08:55:00\"}", "occurred_at"},
        {"{\"colour\":\"blue\"}", "unknown field 'colour'"},
        {"{\"patient\":{\"given_names\":\"Alan\"}}",
         "patient.given_names: must be an array"},
        {"{\"referral\":{},\"outcome\":{}}", "only one"},
        {"[1]", "not one JSON object"},
        {"{\n  \"schema\": \"handover", "line 2, column"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        council_file f;
        hov_error err = {0};
        cr_assert_eq(council_json_in(cases[i].doc, strlen(cases[i].doc),
                                     "Z9Z9Z", true, &f, &err),
                     HOV_OK);
        cr_assert_eq(f.n_records, 0, "case %zu", i);
        cr_assert_geq(f.n_problems, 1, "case %zu", i);
        cr_assert_not_null(strstr(f.problems[0].text, cases[i].want),
                           "case %zu: %s", i, f.problems[0].text);
        council_file_free(&f);
    }
    /* A BOM is skipped; an offset is converted; received_at is ignored. */
    const char ok[] =
        "\xEF\xBB\xBF{\"occurred_at\":\"2025-03-17T10:55:00+02:00\","
        "\"received_at\":\"x\",\"event_type\":\"referral\","
        "\"source\":{\"org\":{\"code\":\"Z9Z9Z\"},\"ref\":\"R1\","
        "\"agency\":\"gp\"}}";
    council_file f;
    hov_error err = {0};
    cr_assert_eq(council_json_in(ok, sizeof ok - 1, "Z9Z9Z", true, &f, &err),
                 HOV_OK);
    cr_assert_eq(f.n_records, 1, "%s", f.n_problems ? f.problems[0].text : "");
    cr_assert_str_eq(f.records[0].event->occurred_at, "2025-03-17T08:55:00Z");
    cr_assert_str_eq(f.records[0].event->received_at, "");
    cr_assert_str_eq(f.records[0].event->source->agency, "");
    council_file_free(&f);
}

/* The outbound goldens read back and written out again give the same
 * JSON: the writer loses nothing a receiving view carries. */
Test(council_json, outbound_goldens_round_trip)
{
    static const char *const goldens[] = {
        COUNCIL "/outbound/discharge_e09339b8-a502-5cfc-af76-7873b23f04b6.json",
        COUNCIL "/outbound/equipment-order_d745de58-a690-5946-975d-"
                "ed6388248d9c.json",
    };
    for (size_t i = 0; i < 2; i++) {
        size_t len;
        char *data = slurp(goldens[i], &len);
        council_file f;
        hov_error err = {0};
        cr_assert_eq(council_json_in(data, len, NULL, false, &f, &err), HOV_OK);
        cr_assert_eq(f.n_records, 1, "%s",
                     f.n_problems ? f.problems[0].text : "");
        char *out = council_json_out(f.records[0].event);
        cr_assert_not_null(out);
        json_error_t je;
        json_t *a = json_loads(data, 0, &je), *b = json_loads(out, 0, &je);
        cr_assert(json_equal(a, b), "%s\n----\n%s", data, out);
        char name[128];
        cr_assert(council_out_name(f.records[0].event, name, sizeof name));
        cr_assert_str_eq(name, strrchr(goldens[i], '/') + 1);
        json_decref(a);
        json_decref(b);
        free(out);
        council_file_free(&f);
        free(data);
    }
}

Test(council_name, names)
{
    council_kind k;
    char sender[40], why[200];
    cr_assert(council_name_check("outcomes_8ZZ99_20250317T163000Z_000041.csv",
                                 senders, &k, sender, why, sizeof why));
    cr_assert_eq(k, COUNCIL_KIND_OUTCOMES);
    cr_assert_str_eq(sender, "8ZZ99");
    cr_assert(council_name_check("referral_Z9Z9Z_20250317T090500Z_000007.json",
                                 senders, &k, sender, why, sizeof why));
    cr_assert_eq(k, COUNCIL_KIND_EVENT);
    static const struct {
        const char *name, *want;
    } bad[] = {
        {"invoice_8ZZ99_20250317T163000Z_000041.csv", "kind"},
        {"outcomes_RZZ01_20250317T163000Z_000041.csv", "sender code"},
        {"outcomes_8ZZ99_20250317T253000Z_000041.csv", "time"},
        {"outcomes_8ZZ99_20250317T163000Z_41.csv", "sequence"},
        {"outcomes_8ZZ99_20250317T163000Z_000041.json", "extension"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_not(council_name_check(bad[i].name, senders, &k, sender, why,
                                         sizeof why));
        cr_assert_not_null(strstr(why, bad[i].want), "%s: %s", bad[i].name,
                           why);
    }
}
