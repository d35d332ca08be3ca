/* adapters/nursing/map_out: each event type becomes its HL7 v2.4 message,
 * which parses back (hl7_parse) with the event's values in the fields of
 * domain 5.4; text survives the escaping; minimal events map without a
 * crash; what the nursing system cannot take is refused with a reason. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handover/ident.h"
#include "handover/sample.h"
#include "handover/timeutil.h"
#include "hl7.h"
#include "map_out.h"

/* 2025-03-15T00:53:20Z */
#define NOW_MS 1742000000000ULL

static const map_out_opts base_opts = {
    .recv_app = "CN-EPR",
    .recv_facility = "RZZ40",
    .now_ms = NOW_MS,
    .destination = "RZZ40",
};

/* Map ev, check the bytes are plain HL7 (CR terminators, no LF), parse
 * them. Returns the message, owned: free with hl7_msg_free. */
static hl7_msg *
build(const Handover__Event *ev, const map_out_opts *o)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    char why[256] = "";
    int rc = map_out(ev, o, &buf, &len, why, sizeof why);
    cr_assert_eq(rc, 0, "map_out returned %d: %s", rc, why);
    cr_assert_not_null(buf);
    cr_assert_gt(len, 8);
    cr_assert(memcmp(buf, "MSH|^~\\&|", 9) == 0, "starts with MSH");
    cr_assert_null(memchr(buf, '\n', len), "no LF in the message");
    cr_assert_eq(buf[len - 1], '\r', "ends with CR");

    hl7_parse_opts po = {0};
    hl7_msg *m = NULL;
    hl7_error err = {0};
    rc = hl7_parse(buf, len, &po, &m, &err);
    free(buf);
    cr_assert_eq(rc, 0, "hl7_parse: %d %s", err.code, err.text);
    cr_assert_not_null(m);
    return m;
}

/* Map ev expecting a refusal; returns why (a static buffer). */
static const char *
refused(const Handover__Event *ev, const map_out_opts *o)
{
    static char why[256];
    uint8_t *buf = (uint8_t *)"x";
    size_t len = 99;
    why[0] = '\0';
    int rc = map_out(ev, o, &buf, &len, why, sizeof why);
    cr_assert_eq(rc, -1, "map_out returned %d", rc);
    cr_assert_null(buf);
    cr_assert_eq(len, 0);
    cr_assert_neq(why[0], '\0', "why is filled");
    return why;
}

/* Index of the nth (from 1) segment with this id. */
static size_t
seg(const hl7_msg *m, const char *id, unsigned nth)
{
    size_t i = 0;
    for (unsigned k = 0; k < nth; k++, i++) {
        i = hl7_find(m, i, id);
        cr_assert_neq(i, HL7_NPOS, "%s #%u is missing", id, nth);
    }
    return i - 1;
}

/* The decoded value of id#nth-field[rep].comp (comp 0: the repetition). */
static char *
val(const hl7_msg *m, const char *id, unsigned nth, unsigned field,
    unsigned rep, unsigned comp)
{
    hl7_str raw = hl7_get(m, seg(m, id, nth), field, rep, comp, 0);
    char why[160] = "";
    bool warned = false;
    char *s = hl7_decode(m, raw, &warned, why, sizeof why);
    cr_assert_not_null(s, "%s-%u decode: %s", id, field, why);
    cr_expect_not(warned, "%s-%u decoded with a warning", id, field);
    return s;
}

static void
expect_at(const hl7_msg *m, const char *id, unsigned nth, unsigned field,
          unsigned rep, unsigned comp, const char *want)
{
    char *got = val(m, id, nth, field, rep, comp);
    cr_expect_str_eq(got, want, "%s#%u-%u[%u].%u: got '%s', want '%s'", id, nth,
                     field, rep, comp, got, want);
    free(got);
}

/* The first occurrence, first repetition. */
static void
expect(const hl7_msg *m, const char *id, unsigned field, unsigned comp,
       const char *want)
{
    expect_at(m, id, 1, field, 0, comp, want);
}

/* The segment ids in order, joined with spaces. */
static void
expect_layout(const hl7_msg *m, const char *want)
{
    char got[512] = "";
    size_t n = 0;
    for (size_t i = 0; i < hl7_nsegs(m) && n + 5 < sizeof got; i++)
        n += (size_t)snprintf(got + n, sizeof got - n, "%s%s", i > 0 ? " " : "",
                              hl7_seg_id(m, i));
    cr_expect_str_eq(got, want, "segments: %s", got);
}

static void
ts_of(const char *rfc3339, char out[20])
{
    uint64_t ms = 0;
    cr_assert(hov_rfc3339_to_ms(rfc3339, &ms), "%s", rfc3339);
    hl7_ts_format(ms, out);
}

/* An outcome answering a fresh id with status, from org. */
static void
outcome(hov_sample *s, const char *status, const char *org)
{
    char id[37];
    hov_sample_init(s, "outcome", NULL);
    hov_uuid_v4(id);
    hov_sample_set_reply(s, id, status);
    hov_sample_set_source(s, org);
}

/* ------------------------------------------------------------ control */

Test(map_out, control_id, .timeout = 10)
{
    char c[21];
    map_out_control_id("e09339b8-a502-5cfc-af76-7873b23f04b6", c);
    cr_assert_str_eq(c, "e09339b8a5025cfcaf76");
    map_out_control_id("E09339B8-A502-5CFC-AF76-7873B23F04B6", c);
    cr_assert_str_eq(c, "e09339b8a5025cfcaf76", "lower-cased");
    map_out_control_id("", c);
    cr_assert_str_eq(c, "");
}

/* ------------------------------------------------------------ referral */

Test(map_out, referral_ref_i12, .timeout = 10)
{
    hov_sample s;
    hov_sample_init(&s, "referral", "9995050501"); /* Zoë Ó Briain */
    cr_assert(hov_sample_add_destination(&s, "RZZ40"));
    s.dest[0].name = "North Fell community nursing";
    hov_sample_set_consent(&s, "explicit", "2025-03-14T13:30:00Z");
    s.consent.notes = "Agreed to share with the district nurses";
    const char *reason = "Pain | score ^ 7 & rising ~ see \\ notes\n"
                         "Second line: dressing \\T\\ review";
    s.ev.reason = (char *)reason;
    s.ev.clinical_details = "Leg ulcer\nDoppler due";
    s.ev.access_notes = "Code by phone.";

    hl7_msg *m = build(&s.ev, &base_opts);
    expect_layout(m, "MSH RF1 PRD PRD PRD PID NTE NTE NTE NTE NTE ZCN");

    char control[21];
    map_out_control_id(s.ev.event_id, control);
    expect(m, "MSH", 3, 1, "HANDOVER");
    expect(m, "MSH", 4, 1, "HANDOVER");
    expect(m, "MSH", 5, 1, "CN-EPR");
    expect(m, "MSH", 6, 1, "RZZ40");
    expect(m, "MSH", 7, 1, "20250315005320+0000");
    expect(m, "MSH", 9, 1, "REF");
    expect(m, "MSH", 9, 2, "I12");
    expect(m, "MSH", 9, 3, "REF_I12");
    expect(m, "MSH", 10, 1, control);
    cr_expect_eq(strlen(control), 20);
    expect(m, "MSH", 11, 1, "P");
    expect(m, "MSH", 12, 1, "2.4");
    expect(m, "MSH", 15, 1, "");
    expect(m, "MSH", 16, 1, "");
    expect(m, "MSH", 17, 1, "GBR");
    expect(m, "MSH", 18, 1, "UNICODE UTF-8");

    char ts[20];
    ts_of(s.ev.occurred_at, ts);
    expect(m, "RF1", 1, 1, "P");
    expect(m, "RF1", 2, 1, "R");
    expect(m, "RF1", 2, 3, "HL70280");
    expect(m, "RF1", 3, 1, "district-nursing");
    expect(m, "RF1", 3, 2, "District nursing");
    expect(m, "RF1", 3, 3, "HANDOVER");
    expect(m, "RF1", 6, 1, s.ev.event_id);
    expect(m, "RF1", 6, 2, "HANDOVER");
    expect(m, "RF1", 9, 1, ts);
    expect(m, "RF1", 11, 1, s.ev.source->ref);
    expect(m, "RF1", 11, 2, "GP-SYSTEM");

    expect_at(m, "PRD", 1, 1, 0, 1, "RP");
    expect_at(m, "PRD", 1, 2, 0, 1, "Dr Hannah Okafor");
    expect_at(m, "PRD", 1, 4, 0, 4, "Z99001");
    expect_at(m, "PRD", 1, 7, 0, 1, "G9999990");
    expect_at(m, "PRD", 1, 7, 0, 2, "GMP");
    expect_at(m, "PRD", 2, 1, 0, 1, "RT");
    expect_at(m, "PRD", 2, 2, 0, 1, "North Fell community nursing");
    expect_at(m, "PRD", 2, 4, 0, 4, "RZZ40");
    expect_at(m, "PRD", 3, 1, 0, 1, "PP");
    expect_at(m, "PRD", 3, 4, 0, 4, "Z99002");

    expect(m, "PID", 3, 1, "9995050501");
    expect(m, "PID", 3, 4, "NHS");
    expect(m, "PID", 3, 5, "NH");
    expect(m, "PID", 5, 1, "\u00d3 Briain");
    expect(m, "PID", 5, 2, "Zo\u00eb");
    expect(m, "PID", 5, 5, "Ms");
    expect(m, "PID", 5, 7, "L");
    expect(m, "PID", 7, 1, "19620214");
    expect(m, "PID", 8, 1, "F");
    expect(m, "PID", 11, 1, "Flat 3, Wansbeck House");
    expect(m, "PID", 11, 2, "Station Road");
    expect(m, "PID", 11, 3, "Brackenby");
    expect(m, "PID", 11, 5, "FE7 2QS");
    expect(m, "PID", 11, 6, "GBR");
    expect(m, "PID", 11, 7, "H");
    expect(m, "PID", 13, 1, "07700 900481");
    expect(m, "PID", 13, 2, "PRN");
    expect(m, "PID", 13, 3, "CP");
    expect(m, "PID", 32, 1, "NSTS01");

    /* NTEs in order: reason, clinical, social, access, preferred contact. */
    expect_at(m, "NTE", 1, 1, 0, 1, "1");
    expect_at(m, "NTE", 1, 2, 0, 1, "P");
    expect_at(m, "NTE", 1, 3, 0, 0, reason);
    expect_at(m, "NTE", 1, 4, 0, 1, "1R");
    expect_at(m, "NTE", 1, 4, 0, 3, "HL70364");
    expect_at(m, "NTE", 2, 3, 0, 0, "Leg ulcer\nDoppler due");
    expect_at(m, "NTE", 2, 4, 0, 1, "CD");
    expect_at(m, "NTE", 2, 4, 0, 3, "HANDOVER");
    expect_at(m, "NTE", 3, 3, 0, 0, s.ev.social_details);
    expect_at(m, "NTE", 3, 4, 0, 1, "SD");
    expect_at(m, "NTE", 4, 3, 0, 0, "Code by phone.");
    expect_at(m, "NTE", 4, 4, 0, 1, "AN");
    char pc[300];
    snprintf(pc, sizeof pc, "Preferred contact: %s",
             s.referral.preferred_contact);
    expect_at(m, "NTE", 5, 1, 0, 1, "5");
    expect_at(m, "NTE", 5, 3, 0, 0, pc);
    expect_at(m, "NTE", 5, 4, 0, 1, "GI");

    expect(m, "ZCN", 1, 1, "1");
    expect(m, "ZCN", 2, 1, "explicit");
    expect(m, "ZCN", 3, 1, "20250314133000+0000");
    expect(m, "ZCN", 4, 2, s.consent.recorded_by);
    expect(m, "ZCN", 5, 1, "Agreed to share with the district nurses");
    hl7_msg_free(m);
}

Test(map_out, referral_priorities, .timeout = 10)
{
    static const struct {
        const char *canon, *hl7;
    } cases[] = {
        {"two_hour_crisis", "S"}, {"urgent", "A"}, {"routine", "R"}, {"", ""},
        {"someday", ""}, /* unknown: left empty, never guessed */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        hov_sample s;
        hov_sample_init(&s, "referral", NULL);
        s.ev.priority = (char *)cases[i].canon;
        hl7_msg *m = build(&s.ev, &base_opts);
        expect(m, "RF1", 2, 1, cases[i].hl7);
        hl7_msg_free(m);
    }
}

/* Delimiters and the escape character in every kind of field come back
 * unchanged, and never add fields or segments. */
Test(map_out, referral_escapes_round_trip, .timeout = 10)
{
    hov_sample s;
    hov_sample_init(&s, "referral", NULL);
    const char *nasty = "O'Brien|Smith^Jr&Co~x\\y";
    s.patient.family_name = (char *)nasty;
    s.given_names[0] = "Ren\u00e9e|\n";
    s.patient.title = "^";
    s.author.name = "A~B";
    s.referral.service = "district-nursing|x";
    s.ev.reason = "\\.br\\ is literal here, | too";
    hl7_msg *m = build(&s.ev, NULL);
    expect_layout(m, "MSH RF1 PRD PRD PID NTE NTE NTE");
    expect(m, "PID", 5, 1, nasty);
    expect(m, "PID", 5, 2, "Ren\u00e9e|\n");
    expect(m, "PID", 5, 5, "^");
    cr_expect_eq(hl7_nreps(m, seg(m, "PRD", 1), 2), 1);
    expect_at(m, "PRD", 1, 2, 0, 1, "A~B");
    expect(m, "RF1", 3, 1, "district-nursing|x");
    expect_at(m, "NTE", 1, 3, 0, 0, "\\.br\\ is literal here, | too");
    cr_expect_eq(hl7_nfields(m, seg(m, "PID", 1)), 32);
    /* NULL options: defaults, MSH-5 and MSH-6 empty. */
    expect(m, "MSH", 3, 1, "HANDOVER");
    expect(m, "MSH", 5, 1, "");
    hl7_msg_free(m);
}

/* Control bytes, among them MLLP's 0x0B and 0x1C, never appear raw: a raw
 * one would restart or end the frame at the partner. They come back. */
Test(map_out, control_bytes_escaped, .timeout = 10)
{
    hov_sample s;
    hov_sample_init(&s, "referral", NULL);
    char big[700];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    big[300] = '\x1c'; /* past the first 256-byte chunk */
    const char *reason = "start\x0b mid\x1c\x0d end\ttab \x01|";
    s.ev.reason = (char *)reason;
    s.ev.clinical_details = big;

    uint8_t *buf = NULL;
    size_t len = 0;
    char why[256] = "";
    cr_assert_eq(map_out(&s.ev, &base_opts, &buf, &len, why, sizeof why), 0,
                 "%s", why);
    cr_expect_null(memchr(buf, 0x0b, len));
    cr_expect_null(memchr(buf, 0x1c, len));
    cr_expect_null(memchr(buf, 0x01, len));
    free(buf);

    hl7_msg *m = build(&s.ev, &base_opts);
    /* CR is dropped by hl7b_text (it would end the segment). */
    expect_at(m, "NTE", 1, 3, 0, 0, "start\x0b mid\x1c end\ttab \x01|");
    expect_at(m, "NTE", 2, 3, 0, 0, big);
    hl7_msg_free(m);
}

Test(map_out, referral_destinations_without_option, .timeout = 10)
{
    hov_sample s;
    hov_sample_init(&s, "referral", NULL);
    cr_assert(hov_sample_add_destination(&s, "RZZ40"));
    cr_assert(hov_sample_add_destination(&s, "local:VCS-0002"));
    map_out_opts o = base_opts;
    o.destination = NULL;
    hl7_msg *m = build(&s.ev, &o);
    expect_layout(m, "MSH RF1 PRD PRD PRD PRD PID NTE NTE NTE");
    expect_at(m, "PRD", 2, 4, 0, 4, "RZZ40");
    expect_at(m, "PRD", 3, 1, 0, 1, "RT");
    expect_at(m, "PRD", 3, 4, 0, 4, "local:VCS-0002");
    hl7_msg_free(m);
}

/* PID-11: the last line is the post town; lines between the first and the
 * last are joined into the locality, so none is lost. */
Test(map_out, address_layouts, .timeout = 10)
{
    static char *five[] = {"Flat 2", "41 Tanners Court", "Low Street",
                           "Brackenby", "Fellgate"};
    static char *two[] = {"7 Low Row", "Croxwell"};
    static char *one[] = {"7 Low Row"};
    hov_sample s;
    hov_sample_init(&s, "referral", NULL);

    s.patient.address_lines = five;
    s.patient.n_address_lines = 5;
    hl7_msg *m = build(&s.ev, &base_opts);
    expect(m, "PID", 11, 1, "Flat 2");
    expect(m, "PID", 11, 2, "41 Tanners Court, Low Street, Brackenby");
    expect(m, "PID", 11, 3, "Fellgate");
    hl7_msg_free(m);

    s.patient.address_lines = two;
    s.patient.n_address_lines = 2;
    m = build(&s.ev, &base_opts);
    expect(m, "PID", 11, 1, "7 Low Row");
    expect(m, "PID", 11, 2, "");
    expect(m, "PID", 11, 3, "Croxwell");
    hl7_msg_free(m);

    s.patient.address_lines = one;
    s.patient.n_address_lines = 1;
    s.patient.postcode = "";
    m = build(&s.ev, &base_opts);
    expect(m, "PID", 11, 1, "7 Low Row");
    expect(m, "PID", 11, 3, "");
    expect(m, "PID", 11, 5, "");
    hl7_msg_free(m);
}

Test(map_out, professional_identifier_types, .timeout = 10)
{
    static const struct {
        const char *id, *type;
    } cases[] = {
        {"G9999990", "GMP"},  {"C9999998", "GMC"}, {"99Z1234Z", "NMC"},
        {"OT999999", "HCPC"}, {"LOCAL-42", ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        hov_sample s;
        hov_sample_init(&s, "referral", NULL);
        s.author.id = (char *)cases[i].id;
        hl7_msg *m = build(&s.ev, &base_opts);
        expect_at(m, "PRD", 1, 7, 0, 1, cases[i].id);
        expect_at(m, "PRD", 1, 7, 0, 2, cases[i].type);
        hl7_msg_free(m);
    }
}

/* ----------------------------------------------------------- discharge */

Test(map_out, discharge_adt_a03, .timeout = 10)
{
    hov_sample s;
    hov_sample_init(&s, "discharge", NULL); /* Edith, pathway 1 */
    Handover__Coded dx[2];
    Handover__Coded *dxp[2] = {&dx[0], &dx[1]};
    handover__coded__init(&dx[0]);
    handover__coded__init(&dx[1]);
    dx[0].code = "J189";
    dx[0].text = "Pneumonia, unspecified";
    dx[0].system = "http://hl7.org/fhir/sid/icd-10";
    dx[1].code = "L891";
    dx[1].text = "Stage II decubitus ulcer & pressure area";
    dx[1].system = "I10";
    s.discharge.diagnoses = dxp;
    s.discharge.n_diagnoses = 2;
    s.ev.access_notes = "Key safe: code by phone.\nDog in kitchen.";
    s.ev.recorded_at = "2025-03-14T10:15:00Z";

    hl7_msg *m = build(&s.ev, &base_opts);
    expect_layout(m, "MSH EVN PID PD1 PV1 DG1 DG1 OBX OBX OBX OBX");
    expect(m, "MSH", 9, 1, "ADT");
    expect(m, "MSH", 9, 2, "A03");
    expect(m, "MSH", 9, 3, "ADT_A03");

    char occurred[20], admitted[20], discharged[20];
    ts_of(s.ev.occurred_at, occurred);
    ts_of(s.discharge.admitted_at, admitted);
    ts_of(s.discharge.discharged_at, discharged);
    expect(m, "EVN", 1, 1, "A03");
    expect(m, "EVN", 2, 1, "20250314101500+0000");
    expect(m, "EVN", 5, 1, "C9999998");
    expect(m, "EVN", 5, 2, "Emeka Okonjo");
    expect(m, "EVN", 6, 1, occurred);

    expect(m, "PID", 3, 1, "9992468130");
    expect(m, "PID", 5, 1, "Harrowgate");
    expect(m, "PID", 5, 2, "Edith");
    expect(m, "PID", 5, 3, "May");
    expect(m, "PID", 5, 5, "Mrs");
    expect(m, "PID", 7, 1, "19380417");
    expect(m, "PID", 11, 1, "14 Cragside Terrace");
    expect(m, "PID", 11, 3, "Fellgate");
    expect(m, "PID", 13, 3, "PH");
    expect(m, "PD1", 3, 3, "Z99001");

    expect(m, "PV1", 1, 1, "1");
    expect(m, "PV1", 2, 1, "I");
    expect(m, "PV1", 3, 1, "WARD 12");
    expect(m, "PV1", 3, 4, "RZZ01");
    expect(m, "PV1", 7, 1, "C9999998");
    expect(m, "PV1", 19, 1, s.ev.source->ref);
    expect(m, "PV1", 36, 1, "1");
    expect(m, "PV1", 37, 1, "19");
    expect(m, "PV1", 44, 1, admitted);
    expect(m, "PV1", 45, 1, discharged);

    expect_at(m, "DG1", 1, 1, 0, 1, "1");
    expect_at(m, "DG1", 1, 3, 0, 1, "J189");
    expect_at(m, "DG1", 1, 3, 0, 3, "I10");
    expect_at(m, "DG1", 1, 6, 0, 1, "F");
    expect_at(m, "DG1", 2, 3, 0, 2, "Stage II decubitus ulcer & pressure area");

    expect_at(m, "OBX", 1, 2, 0, 1, "CE");
    expect_at(m, "OBX", 1, 3, 0, 1, "D2A-PATHWAY");
    expect_at(m, "OBX", 1, 3, 0, 3, "HANDOVER");
    expect_at(m, "OBX", 1, 5, 0, 1, "1");
    expect_at(m, "OBX", 1, 5, 0, 3, "HANDOVER");
    expect_at(m, "OBX", 1, 11, 0, 1, "F");

    expect_at(m, "OBX", 2, 1, 0, 1, "2");
    expect_at(m, "OBX", 2, 2, 0, 1, "TX");
    expect_at(m, "OBX", 2, 3, 0, 1, "FOLLOW-UP");
    cr_expect_eq(hl7_nreps(m, seg(m, "OBX", 2), 5), 2);
    char fu[700];
    snprintf(fu, sizeof fu, "district-nursing: %s", s.follow_up[0].description);
    expect_at(m, "OBX", 2, 5, 0, 0, fu);
    snprintf(fu, sizeof fu, "reablement: %s", s.follow_up[1].description);
    expect_at(m, "OBX", 2, 5, 1, 0, fu);

    expect_at(m, "OBX", 3, 3, 0, 1, "MEDS-SUMMARY");
    expect_at(m, "OBX", 3, 5, 0, 0, s.discharge.medications_summary);
    expect_at(m, "OBX", 4, 3, 0, 1, "ACCESS-NOTES");
    expect_at(m, "OBX", 4, 5, 0, 0,
              "Key safe: code by phone.\nDog in kitchen.");
    hl7_msg_free(m);
}

Test(map_out, discharge_pathway_presence_and_destination, .timeout = 10)
{
    hov_sample s;
    hov_sample_init(&s, "discharge", "9998765439"); /* Ruby */
    hov_sample_set_pathway(&s, 0);
    static char *home[] = {"Fell View Care Home", "Moor Road", "Aldercote"};
    s.discharge_dest.code = "56";
    s.discharge_dest.address_lines = home;
    s.discharge_dest.n_address_lines = 3;
    s.discharge_dest.postcode = "FE2 9AA";
    s.follow_up[0].start = "2025-03-15";
    s.follow_up[0].due_by = "2025-03-16";
    s.follow_up[1].service = "";
    s.follow_up[1].description = "";

    hl7_msg *m = build(&s.ev, &base_opts);
    expect_at(m, "OBX", 1, 3, 0, 1, "D2A-PATHWAY");
    expect_at(m, "OBX", 1, 5, 0, 1, "0");
    expect(m, "PV1", 37, 1, "56");
    cr_expect_eq(hl7_nreps(m, seg(m, "PID", 1), 11), 2);
    expect_at(m, "PID", 1, 11, 0, 7, "H");
    expect_at(m, "PID", 1, 11, 1, 1, "Fell View Care Home");
    expect_at(m, "PID", 1, 11, 1, 2, "Moor Road");
    expect_at(m, "PID", 1, 11, 1, 3, "Aldercote");
    expect_at(m, "PID", 1, 11, 1, 5, "FE2 9AA");
    expect_at(m, "PID", 1, 11, 1, 7, "C");
    /* Dates kept in words; the empty need is left out. */
    cr_expect_eq(hl7_nreps(m, seg(m, "OBX", 2), 5), 1);
    char fu[700];
    snprintf(fu, sizeof fu,
             "district-nursing: %s (start 2025-03-15; due by 2025-03-16)",
             s.follow_up[0].description);
    expect_at(m, "OBX", 2, 5, 0, 0, fu);
    hl7_msg_free(m);

    /* No pathway at all: no D2A-PATHWAY OBX (0 is not "absent"). */
    s.discharge.pathway_present_case =
        HANDOVER__DISCHARGE__PATHWAY_PRESENT__NOT_SET;
    m = build(&s.ev, &base_opts);
    expect_at(m, "OBX", 1, 3, 0, 1, "FOLLOW-UP");
    hl7_msg_free(m);
}

/* ------------------------------------------------------------- RRI^I12 */

Test(map_out, referral_outcome_rri_i12, .timeout = 10)
{
    hov_sample s;
    outcome(&s, "accepted", "Z9Z9Z");
    s.source_org.name = "Fellshire County Council Adult Social Care";
    s.author.id = "SW123";
    s.author.phone = "01632 960200";
    s.outcome.planned_for = "2025-03-20";

    hl7_msg *m = build(&s.ev, &base_opts);
    expect_layout(m, "MSH RF1 PRD PRD PRD PID");
    expect(m, "MSH", 9, 1, "RRI");
    expect(m, "MSH", 9, 2, "I12");
    expect(m, "MSH", 9, 3, "RRI_I12");
    expect(m, "MSH", 15, 1, "AL");
    expect(m, "MSH", 16, 1, "NE");
    char ts[20];
    ts_of(s.ev.occurred_at, ts);
    expect(m, "RF1", 1, 1, "A");
    expect(m, "RF1", 1, 3, "HL70283");
    expect(m, "RF1", 6, 1, s.ev.in_reply_to);
    expect(m, "RF1", 6, 2, "HANDOVER");
    expect(m, "RF1", 7, 1, "20250320");
    expect(m, "RF1", 9, 1, ts);
    expect(m, "RF1", 11, 1, s.ev.source->ref);
    expect_at(m, "PRD", 1, 1, 0, 1, "RP");
    expect_at(m, "PRD", 1, 4, 0, 4, "RZZ40");
    expect_at(m, "PRD", 2, 1, 0, 1, "RT");
    expect_at(m, "PRD", 2, 2, 0, 1,
              "Fellshire County Council Adult Social Care");
    expect_at(m, "PRD", 2, 4, 0, 4, "Z9Z9Z");
    expect_at(m, "PRD", 3, 1, 0, 1, "CP");
    expect_at(m, "PRD", 3, 2, 0, 1, "Sarah Knowles");
    expect_at(m, "PRD", 3, 5, 0, 1, "01632 960200");
    expect(m, "PID", 3, 1, "9992468130");
    hl7_msg_free(m);
}

Test(map_out, referral_outcome_statuses, .timeout = 10)
{
    static const struct {
        const char *status, *rf1;
    } cases[] = {
        {"accepted", "A"},
        {"rejected", "R"},
        {"completed", "C"},
        {"cancelled", "X"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        hov_sample s;
        outcome(&s, cases[i].status, "Z9Z9Z");
        hl7_msg *m = build(&s.ev, &base_opts);
        expect(m, "RF1", 1, 1, cases[i].rf1);
        hl7_msg_free(m);
    }
}

Test(map_out, referral_outcome_reason_remark, .timeout = 10)
{
    hov_sample s;
    outcome(&s, "rejected", "Z9Z9Z");
    s.outcome.reason_text = "Lives outside Fellshire | see ^ notes\nRing us";
    hl7_msg *m = build(&s.ev, &base_opts);
    expect_layout(m, "MSH RF1 PRD PRD PRD PID NTE");
    expect(m, "NTE", 2, 1, "L");
    expect(m, "NTE", 3, 0,
           "not-eligible: Lives outside Fellshire | see ^ notes\nRing us");
    expect(m, "NTE", 4, 1, "RE");
    expect(m, "NTE", 4, 3, "HL70364");
    hl7_msg_free(m);
}

/* ---------------------------------------------------------- ORM^O01 SC */

Test(map_out, equipment_outcome_delivered, .timeout = 10)
{
    hov_sample s;
    outcome(&s, "delivered", "8ZZ99");
    s.source_org.name = "Fellshire Community Equipment Service";
    hl7_msg *m = build(&s.ev, &base_opts);
    expect_layout(m, "MSH PID ORC RQD OBX");
    expect(m, "MSH", 9, 1, "ORM");
    expect(m, "MSH", 9, 2, "O01");
    expect(m, "MSH", 9, 3, "ORM_O01");
    expect(m, "MSH", 15, 1, "");
    char ts[20];
    ts_of(s.ev.occurred_at, ts);
    expect(m, "ORC", 1, 1, "SC");
    expect(m, "ORC", 2, 1, s.ev.in_reply_to);
    expect(m, "ORC", 2, 2, "HANDOVER");
    expect(m, "ORC", 4, 1, s.ev.in_reply_to);
    expect(m, "ORC", 4, 2, "HANDOVER");
    expect(m, "ORC", 5, 1, "CM");
    expect(m, "ORC", 9, 1, ts);
    expect(m, "ORC", 16, 0, "");
    expect(m, "ORC", 17, 1, "8ZZ99");
    expect(m, "ORC", 17, 2, "Fellshire Community Equipment Service");
    expect(m, "ORC", 19, 2, "Sarah Knowles");
    expect(m, "RQD", 1, 1, "1");
    expect(m, "RQD", 2, 1, "BED-PROF-01");
    expect(m, "RQD", 2, 3, "CES-CAT");
    expect(m, "RQD", 5, 1, "1");
    expect(m, "RQD", 6, 1, "EA");
    expect(m, "OBX", 1, 1, "1");
    expect(m, "OBX", 2, 1, "ST");
    expect(m, "OBX", 3, 1, "ASSET-ID");
    expect(m, "OBX", 3, 3, "HANDOVER");
    expect(m, "OBX", 5, 1, "CES-A-004512");
    hl7_msg_free(m);
}

Test(map_out, equipment_outcome_items_and_statuses, .timeout = 10)
{
    hov_sample s;
    outcome(&s, "collected", "8ZZ99");
    Handover__OutcomeItem it[3];
    Handover__OutcomeItem *itp[3] = {&it[0], &it[1], &it[2]};
    for (size_t i = 0; i < 3; i++)
        handover__outcome_item__init(&it[i]);
    it[0].item_code = "HOIST-MOB-180";
    it[0].quantity = 1;
    it[0].asset_id = "CES-H-000101";
    it[1].item_code = "SLING-FB-L";
    it[1].quantity = 2;
    it[2].item_code = "COMMODE-STD";
    it[2].asset_id = "CES-C-000777";
    s.outcome.items = itp;
    s.outcome.n_items = 3;
    hl7_msg *m = build(&s.ev, &base_opts);
    expect_layout(m, "MSH PID ORC RQD OBX ORC RQD ORC RQD OBX");
    for (unsigned g = 1; g <= 3; g++) {
        expect_at(m, "ORC", g, 1, 0, 1, "SC");
        expect_at(m, "ORC", g, 5, 0, 1, "CM");
        expect_at(m, "ORC", g, 2, 0, 1, s.ev.in_reply_to);
    }
    expect_at(m, "RQD", 2, 1, 0, 1, "2");
    expect_at(m, "RQD", 2, 2, 0, 1, "SLING-FB-L");
    expect_at(m, "RQD", 2, 5, 0, 1, "2");
    expect_at(m, "RQD", 3, 5, 0, 1, ""); /* quantity not given */
    expect_at(m, "OBX", 2, 1, 0, 1, "1");
    expect_at(m, "OBX", 2, 5, 0, 1, "CES-C-000777");
    hl7_msg_free(m);

    outcome(&s, "cannot_deliver", "8ZZ99");
    s.outcome.reason_text = "Out of stock; \"new\" date, 19 March";
    s.outcome.planned_for = "2025-03-19";
    m = build(&s.ev, &base_opts);
    expect_layout(m, "MSH PID ORC RQD");
    expect(m, "ORC", 5, 1, "HD");
    expect(m, "ORC", 15, 1, "20250319");
    expect(m, "ORC", 16, 1, "item-out-of-stock");
    expect(m, "ORC", 16, 2, "Out of stock; \"new\" date, 19 March");
    expect(m, "ORC", 16, 3, "HANDOVER");
    hl7_msg_free(m);

    /* A whole-order outcome: one ORC, no detail. */
    outcome(&s, "cancelled", "8ZZ99");
    m = build(&s.ev, &base_opts);
    expect_layout(m, "MSH PID ORC");
    expect(m, "ORC", 1, 1, "SC");
    expect(m, "ORC", 5, 1, "CA");
    expect(m, "ORC", 16, 1, "no-longer-required");
    hl7_msg_free(m);

    outcome(&s, "accepted", "8ZZ99");
    m = build(&s.ev, &base_opts);
    expect(m, "ORC", 5, 1, "IP");
    hl7_msg_free(m);
}

/* Which message an outcome becomes (the event does not say what it
 * answers): the rule in map_out.h, and answered_type when given. */
Test(map_out, outcome_message_choice, .timeout = 10)
{
    static const char *const ces[] = {"8ZZ98", NULL};
    static const struct {
        const char *status, *org;
        const char *const *orgs;
        const char *answered;
        const char *type; /* MSH-9.1 */
    } cases[] = {
        {"accepted", "8ZZ99", NULL, NULL, "ORM"},
        {"accepted", "Z9Z9Z", NULL, NULL, "RRI"},
        {"rejected", "local:VCS-0002", NULL, NULL, "RRI"},
        {"cannot_deliver", "Z9Z9Z", NULL, NULL, "ORM"},
        {"collected", "Z9Z9Z", NULL, NULL, "ORM"},
        {"accepted", "8ZZ98", ces, NULL, "ORM"},
        {"accepted", "8ZZ99", ces, NULL, "RRI"},
        {"accepted", "8ZZ99", NULL, "referral", "RRI"},
        {"accepted", "Z9Z9Z", NULL, "equipment_order", "ORM"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        hov_sample s;
        outcome(&s, cases[i].status, cases[i].org);
        map_out_opts o = base_opts;
        o.equipment_orgs = cases[i].orgs;
        o.answered_type = cases[i].answered;
        hl7_msg *m = build(&s.ev, &o);
        expect(m, "MSH", 9, 1, cases[i].type);
        hl7_msg_free(m);
    }

    /* Items make an equipment outcome, even from an organisation that is
     * not in the list and with a status both messages know. */
    hov_sample s;
    outcome(&s, "accepted", "Z9Z9Z");
    s.outcome.n_items = 1;
    hl7_msg *m = build(&s.ev, &base_opts);
    expect(m, "MSH", 9, 1, "ORM");
    expect(m, "ORC", 5, 1, "IP");
    hl7_msg_free(m);
}

Test(map_out, discharge_outcomes_refused, .timeout = 10)
{
    hov_sample s;
    outcome(&s, "acknowledged", "Z99001");
    const char *why = refused(&s.ev, &base_opts);
    cr_expect(strstr(why, "discharge") != NULL, "%s", why);
    cr_expect(strstr(why, s.ev.event_id) != NULL, "%s", why);

    outcome(&s, "accepted", "Z9Z9Z");
    map_out_opts o = base_opts;
    o.answered_type = "discharge";
    why = refused(&s.ev, &o);
    cr_expect(strstr(why, "discharge") != NULL, "%s", why);
}

/* ---------------------------------------------------------- refusals */

Test(map_out, unsupported_events_refused, .timeout = 10)
{
    hov_sample s;
    hov_sample_init(&s, "equipment_order", NULL);
    const char *why = refused(&s.ev, &base_opts);
    cr_expect(strstr(why, "equipment_order") != NULL, "%s", why);

    hov_sample_init(&s, "referral", NULL);
    s.ev.event_type = "admission";
    why = refused(&s.ev, &base_opts);
    cr_expect(strstr(why, "'admission'") != NULL, "%s", why);

    s.ev.event_type = NULL;
    refused(&s.ev, &base_opts);

    /* A type without its body, and a body of another type. */
    hov_sample_init(&s, "referral", NULL);
    s.ev.body_case = HANDOVER__EVENT__BODY__NOT_SET;
    s.ev.referral = NULL;
    why = refused(&s.ev, &base_opts);
    cr_expect(strstr(why, "no referral body") != NULL, "%s", why);
    hov_sample_init(&s, "discharge", NULL);
    s.ev.event_type = "referral";
    refused(&s.ev, &base_opts);

    /* An outcome status with no HL7 value. */
    outcome(&s, "accepted", "Z9Z9Z");
    s.outcome.status = "pending";
    why = refused(&s.ev, &base_opts);
    cr_expect(strstr(why, "'pending'") != NULL, "%s", why);

    /* No control id can be made from a non-UUID. */
    hov_sample_init(&s, "referral", NULL);
    s.ev.event_id = "not-a-uuid";
    why = refused(&s.ev, &base_opts);
    cr_expect(strstr(why, "MSH-10") != NULL, "%s", why);

    why = refused(NULL, &base_opts);
    cr_expect(strstr(why, "no event") != NULL, "%s", why);

    /* why may be NULL. */
    uint8_t *buf = NULL;
    size_t len = 0;
    cr_expect_eq(map_out(NULL, NULL, &buf, &len, NULL, 0), -1);
}

/* A malformed time or date refuses the event, naming the field and not
 * echoing its value (a date of birth is patient data). */
Test(map_out, malformed_times_refused, .timeout = 10)
{
    hov_sample s;
    hov_sample_init(&s, "discharge", NULL);
    s.discharge.admitted_at = "yesterday";
    const char *why = refused(&s.ev, &base_opts);
    cr_expect(strstr(why, "discharge.admitted_at") != NULL, "%s", why);
    cr_expect(strstr(why, s.ev.event_id) != NULL, "%s", why);

    hov_sample_init(&s, "referral", NULL);
    s.patient.date_of_birth = "1938-02-30";
    why = refused(&s.ev, &base_opts);
    cr_expect(strstr(why, "patient.date_of_birth") != NULL, "%s", why);
    cr_expect(strstr(why, "1938") == NULL, "%s", why);

    outcome(&s, "accepted", "Z9Z9Z");
    s.outcome.planned_for = "20/03/2025";
    why = refused(&s.ev, &base_opts);
    cr_expect(strstr(why, "outcome.planned_for") != NULL, "%s", why);
}

/* --------------------------------------------------------- minimal */

/* Only what map_out needs: an id, a type, a body. Everything else NULL or
 * empty; every message still builds and parses. */
Test(map_out, minimal_events, .timeout = 10)
{
    char id[37];
    hov_uuid_v4(id);

    Handover__Referral r = HANDOVER__REFERRAL__INIT;
    Handover__Discharge d = HANDOVER__DISCHARGE__INIT;
    Handover__Outcome oc = HANDOVER__OUTCOME__INIT;
    Handover__Event ev = HANDOVER__EVENT__INIT;
    ev.event_id = id;

    ev.event_type = "referral";
    ev.body_case = HANDOVER__EVENT__BODY_REFERRAL;
    ev.referral = &r;
    hl7_msg *m = build(&ev, NULL);
    expect_layout(m, "MSH RF1 PRD PID");
    expect(m, "RF1", 6, 1, id);
    expect(m, "PID", 1, 1, "1");
    expect(m, "PID", 3, 0, "");
    hl7_msg_free(m);

    ev.event_type = "discharge";
    ev.body_case = HANDOVER__EVENT__BODY_DISCHARGE;
    ev.discharge = &d;
    m = build(&ev, NULL);
    expect_layout(m, "MSH EVN PID PV1");
    /* EVN-2 is required: with no time in the event it is the send time. */
    char *evn2 = val(m, "EVN", 1, 2, 0, 0);
    char *msh7 = val(m, "MSH", 1, 7, 0, 0);
    cr_expect_str_eq(evn2, msh7);
    cr_expect_eq(strlen(evn2), 19);
    free(evn2);
    free(msh7);
    expect(m, "PV1", 44, 0, "");
    hl7_msg_free(m);

    ev.event_type = "outcome";
    ev.body_case = HANDOVER__EVENT__BODY_OUTCOME;
    ev.outcome = &oc;
    oc.status = "accepted";
    m = build(&ev, NULL);
    expect_layout(m, "MSH RF1 PRD PID");
    expect(m, "RF1", 6, 0, "");
    hl7_msg_free(m);

    oc.status = "delivered";
    m = build(&ev, NULL);
    expect_layout(m, "MSH PID ORC");
    expect(m, "ORC", 2, 0, "");
    hl7_msg_free(m);
}

/* Sub-messages present but empty, and empty entries in repeated fields. */
Test(map_out, empty_parts, .timeout = 10)
{
    char id[37];
    hov_uuid_v4(id);
    Handover__Patient p = HANDOVER__PATIENT__INIT;
    Handover__Source src = HANDOVER__SOURCE__INIT;
    Handover__OrgRef org = HANDOVER__ORG_REF__INIT;
    Handover__Person who = HANDOVER__PERSON__INIT;
    Handover__Consent k = HANDOVER__CONSENT__INIT;
    Handover__DischargeDestination dd = HANDOVER__DISCHARGE_DESTINATION__INIT;
    Handover__FollowUp fu = HANDOVER__FOLLOW_UP__INIT;
    Handover__FollowUp *fup[1] = {&fu};
    Handover__Coded dx = HANDOVER__CODED__INIT;
    Handover__Coded *dxp[1] = {&dx};
    Handover__OrgRef dest = HANDOVER__ORG_REF__INIT;
    Handover__OrgRef *destp[1] = {&dest};
    Handover__Discharge d = HANDOVER__DISCHARGE__INIT;
    Handover__Referral r = HANDOVER__REFERRAL__INIT;
    static char *blank[] = {"", "", ""};
    src.org = &org;
    src.author = &who;
    p.given_names = blank;
    p.n_given_names = 3;
    p.address_lines = blank;
    p.n_address_lines = 3;
    d.destination = &dd;
    d.follow_up = fup;
    d.n_follow_up = 1;
    d.diagnoses = dxp;
    d.n_diagnoses = 1;
    d.responsible_clinician = &who;

    Handover__Event ev = HANDOVER__EVENT__INIT;
    ev.event_id = id;
    ev.patient = &p;
    ev.source = &src;
    ev.consent = &k;
    ev.destinations = destp;
    ev.n_destinations = 1;

    ev.event_type = "referral";
    ev.body_case = HANDOVER__EVENT__BODY_REFERRAL;
    ev.referral = &r;
    map_out_opts o = base_opts;
    o.destination = NULL;
    hl7_msg *m = build(&ev, &o);
    expect_layout(m, "MSH RF1 PRD PID");
    expect(m, "PID", 5, 0, "");
    expect(m, "PID", 11, 0, "");
    hl7_msg_free(m);

    ev.event_type = "discharge";
    ev.body_case = HANDOVER__EVENT__BODY_DISCHARGE;
    ev.discharge = &d;
    m = build(&ev, &o);
    expect_layout(m, "MSH EVN PID PV1");
    hl7_msg_free(m);
}

/* Every sample type the nursing system takes, for every member of the
 * cast: builds, parses, and carries the patient's NHS number. */
Test(map_out, cast_round_trip, .timeout = 30)
{
    static const char *const cast[] = {
        "9992468130", "9994127357", "9993001007", "9995050501", "9996118428",
        "9997345207", "9998765439", "9992024682", "9995319764",
    };
    static const char *const types[] = {"referral", "discharge"};
    for (size_t i = 0; i < sizeof cast / sizeof cast[0]; i++) {
        for (size_t t = 0; t < 2; t++) {
            hov_sample s;
            hov_sample_init(&s, types[t], cast[i]);
            hl7_msg *m = build(&s.ev, &base_opts);
            expect(m, "PID", 3, 1, cast[i]);
            expect(m, "PID", 5, 1, s.patient.family_name);
            expect(m, "PID", 5, 2, s.patient.given_names[0]);
            hl7_msg_free(m);
        }
    }
}
