/* handover-voluntary's webhook module: signing and verification against
 * the samples' published signatures, the replay window, and the JSON
 * mappings both ways. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handover.pb-c.h"
#include "webhook.h"

#ifndef HANDOVER_SHARED_DIR
#define HANDOVER_SHARED_DIR HANDOVER_SOURCE_DIR "/../shared"
#endif
#define WEBHOOK HANDOVER_SHARED_DIR "/samples/webhook"

static const char SECRET[] =
    "handover-test-secret-brackenby-befrienders-NOT-FOR-PRODUCTION";
#define KEY    ((const uint8_t *)SECRET)
#define KEYLEN (sizeof SECRET - 1)

/* The whole file in a buffer from malloc (free it). */
static char *
slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    cr_assert_not_null(b);
    cr_assert_eq(fread(b, 1, (size_t)n, f), (size_t)n);
    b[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return b;
}

Test(webhook, signs_the_outgoing_sample_as_published)
{
    size_t len;
    char *body = slurp(WEBHOOK "/outgoing-referral.body.json", &len);
    cr_assert_eq(len, 1219);
    char sig[WEBHOOK_SIG_CAP];
    cr_assert(webhook_sign(KEY, KEYLEN, "1741961102", body, len, sig));
    cr_expect_str_eq(
        sig,
        "v1=8a902e294d193f224b40007372197c5b3ff37f6917b1d7a9165e1949557ba1f9");
    free(body);
}

Test(webhook, verifies_the_incoming_samples)
{
    size_t len;
    char *body = slurp(WEBHOOK "/incoming-outcome.body.json", &len);
    const char *good = "v1=ada834751896370f466f12161ed3e6663e95fd9d6cd21b7c4082"
                       "30f7f6e680e7";
    const char *bad = "v1=ada834751896370f466f12161ed3e6663e95fd9d6cd21b7c40823"
                      "0f7f6e680e0";
    cr_expect(webhook_verify(KEY, KEYLEN, "1742211067", body, len, good));
    cr_expect_not(webhook_verify(KEY, KEYLEN, "1742211067", body, len, bad));
    /* The same signature under another timestamp is not valid. */
    cr_expect_not(webhook_verify(KEY, KEYLEN, "1742211068", body, len, good));
    /* The stale sample is correctly signed: only the clock refuses it. */
    cr_expect(webhook_verify(KEY, KEYLEN, "1742210400", body, len,
                             "v1=11e4fd3277d7d6e3243107b2ac1b4dae25deddb3cc8f5"
                             "3261c7f0533f7f86902"));
    /* Another secret does not verify. */
    static const char other[] = "another-secret-of-at-least-32-bytes-xxxxxx";
    cr_expect_not(webhook_verify((const uint8_t *)other, sizeof other - 1,
                                 "1742211067", body, len, good));
    /* One changed byte of the body does not verify. */
    body[10] ^= 1;
    cr_expect_not(webhook_verify(KEY, KEYLEN, "1742211067", body, len, good));
    free(body);
}

Test(webhook, reads_the_signature_header_as_an_http_list)
{
    const char *b = "{}";
    char sig[WEBHOOK_SIG_CAP];
    cr_assert(webhook_sign(KEY, KEYLEN, "100", b, 2, sig));
    char h[300];
    /* Rotation: one of several matches. */
    snprintf(h, sizeof h, "v1=%064d , \t%s", 0, sig);
    cr_expect(webhook_verify(KEY, KEYLEN, "100", b, 2, h));
    /* Empty elements and other schemes are ignored. */
    snprintf(h, sizeof h, ",, v0=abc,%s,", sig);
    cr_expect(webhook_verify(KEY, KEYLEN, "100", b, 2, h));
    /* Hex in upper case is accepted (RFC 4648 section 8). */
    snprintf(h, sizeof h, "%s", sig);
    for (char *p = h + 3; *p; p++)
        if (*p >= 'a' && *p <= 'f')
            *p = (char)(*p - 'a' + 'A');
    cr_expect(webhook_verify(KEY, KEYLEN, "100", b, 2, h));
    /* Not 64 hex digits: matches nothing. */
    snprintf(h, sizeof h, "%.*s", 66, sig);
    cr_expect_not(webhook_verify(KEY, KEYLEN, "100", b, 2, h));
    snprintf(h, sizeof h, "%sa", sig);
    cr_expect_not(webhook_verify(KEY, KEYLEN, "100", b, 2, h));
    snprintf(h, sizeof h, "V1=%s", sig + 3);
    cr_expect_not(webhook_verify(KEY, KEYLEN, "100", b, 2, h));
    cr_expect_not(webhook_verify(KEY, KEYLEN, "100", b, 2, ""));
    cr_expect_not(webhook_verify(KEY, KEYLEN, "100", b, 2, NULL));
}

Test(webhook, timestamps_and_the_replay_window)
{
    int64_t t = 0;
    cr_expect(webhook_timestamp_parse("1742211067", &t));
    cr_expect_eq(t, 1742211067);
    cr_expect_not(webhook_timestamp_parse("", &t));
    cr_expect_not(webhook_timestamp_parse(NULL, &t));
    cr_expect_not(webhook_timestamp_parse("-5", &t));
    cr_expect_not(webhook_timestamp_parse(" 17", &t));
    cr_expect_not(webhook_timestamp_parse("17.5", &t));
    cr_expect_not(webhook_timestamp_parse("1234567890123", &t));
    /* The samples against the test clock 1742211070. */
    cr_expect(webhook_timestamp_fresh(1742211067, 1742211070, 300));
    cr_expect_not(webhook_timestamp_fresh(1742210400, 1742211070, 300));
    cr_expect(webhook_timestamp_fresh(1742211370, 1742211070, 300));
    cr_expect_not(webhook_timestamp_fresh(1742211371, 1742211070, 300));
}

Test(webhook, content_type)
{
    cr_expect(webhook_content_type_ok("application/json"));
    cr_expect(webhook_content_type_ok("Application/JSON; charset=UTF-8"));
    cr_expect(webhook_content_type_ok("application/json;charset=\"utf-8\""));
    cr_expect_not(webhook_content_type_ok("application/json; charset=latin1"));
    cr_expect_not(webhook_content_type_ok("text/plain"));
    cr_expect_not(webhook_content_type_ok("application/jsonx"));
    cr_expect_not(webhook_content_type_ok(NULL));
}

/* Zoë's referral as the hub delivers it to Brackenby Befrienders in the
 * voluntary view, with the fields the sample body shows. */
typedef struct zoe {
    Handover__Event ev;
    Handover__Source src;
    Handover__OrgRef org, dest;
    Handover__OrgRef *dests[1];
    Handover__Person author;
    Handover__Patient p;
    Handover__Consent consent;
    Handover__Referral ref;
    char *given[1], *addr[3];
} zoe;

static void
zoe_init(zoe *z)
{
    handover__event__init(&z->ev);
    handover__source__init(&z->src);
    handover__org_ref__init(&z->org);
    handover__org_ref__init(&z->dest);
    handover__person__init(&z->author);
    handover__patient__init(&z->p);
    handover__consent__init(&z->consent);
    handover__referral__init(&z->ref);
    Handover__Event *e = &z->ev;
    e->schema = "handover.event.v1";
    e->event_id = "25e14237-735f-51b9-b0fb-c87ec41a3aae";
    e->event_type = "referral";
    e->correlation_id = "25e14237-735f-51b9-b0fb-c87ec41a3aae";
    e->occurred_at = "2025-03-14T00:00:00Z";
    e->recorded_at = "2025-03-14T14:05:00Z";
    z->org.code = "RZZ40";
    z->org.name = "North Fell NHS Foundation Trust community nursing";
    z->author.name = "Funmi Adebayo";
    z->author.role = "Community matron";
    z->author.phone = "01632 960119";
    z->src.org = &z->org;
    z->src.author = &z->author;
    e->source = &z->src;
    z->dest.code = "local:VCS-0002";
    z->dest.name = "Brackenby Befrienders";
    z->dests[0] = &z->dest;
    e->destinations = z->dests;
    e->n_destinations = 1;
    z->p.title = "Ms";
    z->given[0] = "Zo\xc3\xab";
    z->p.given_names = z->given;
    z->p.n_given_names = 1;
    z->p.family_name = "\xc3\x93 Briain";
    z->p.age_case = HANDOVER__PATIENT__AGE_AGE_YEARS;
    z->p.age_years = 63;
    z->addr[0] = "Flat 3, Wansbeck House";
    z->addr[1] = "Station Road";
    z->addr[2] = "Brackenby";
    z->p.address_lines = z->addr;
    z->p.n_address_lines = 3;
    z->p.postcode = "FE7 2QS";
    z->p.phone = "07700 900481";
    e->patient = &z->p;
    e->priority = "routine";
    e->reason = "Feels isolated since moving to Brackenby to be near her son. "
                "Would like a weekly befriending visit and details of the "
                "Thursday coffee & chat group.";
    e->social_details =
        "Prefers a phone call after 10:00. Speaks English and Irish.";
    z->consent.basis = "explicit";
    z->consent.recorded_at = "2025-03-14T13:30:00Z";
    z->consent.recorded_by = "Funmi Adebayo, community matron";
    z->consent.notes = "Agreed at home visit to share name, contact details "
                       "and reason for referral with Brackenby Befrienders";
    e->consent = &z->consent;
    z->ref.service = "social-prescribing";
    e->body_case = HANDOVER__EVENT__BODY_REFERRAL;
    e->referral = &z->ref;
}

Test(webhook, maps_zoes_referral_to_the_sample_body_byte_for_byte)
{
    zoe z;
    zoe_init(&z);
    char *out = NULL, why[256];
    size_t len = 0;
    cr_assert_eq(webhook_event_json(&z.ev, &out, &len, why, sizeof why), 0,
                 "%s", why);
    size_t slen;
    char *sample = slurp(WEBHOOK "/outgoing-referral.body.json", &slen);
    cr_expect_eq(len, slen, "length %zu, sample %zu", len, slen);
    cr_expect_str_eq(out, sample);
    /* And so the signature is the sample's. */
    char sig[WEBHOOK_SIG_CAP];
    cr_assert(webhook_sign(KEY, KEYLEN, "1741961102", out, len, sig));
    cr_expect_str_eq(
        sig,
        "v1=8a902e294d193f224b40007372197c5b3ff37f6917b1d7a9165e1949557ba1f9");
    free(out);
    free(sample);
}

Test(webhook, hub_set_fields_are_written_and_empty_ones_left_out)
{
    zoe z;
    zoe_init(&z);
    /* What the live delivery adds beyond the sample: the hub's
     * received_at and source.agency, and the partner's system and ref. */
    z.ev.received_at = "2025-03-14T14:05:01.250Z";
    z.src.agency = "nursing";
    z.src.system = "CN-EPR";
    z.src.ref = "CN-REF-20250314-0032";
    z.p.sex = "female";
    z.ev.clinical_details = ""; /* the view empties it: left out */
    char *out = NULL, why[256];
    size_t len = 0;
    cr_assert_eq(webhook_event_json(&z.ev, &out, &len, why, sizeof why), 0);
    cr_expect_not_null(strstr(out, "\"recorded_at\":\"2025-03-14T14:05:00Z\","
                                   "\"received_at\":\"2025-03-14T14:05:01."
                                   "250Z\",\"source\":{\"org\":"));
    cr_expect_not_null(strstr(out, "\"agency\":\"nursing\",\"system\":\"CN-EPR"
                                   "\",\"ref\":\"CN-REF-20250314-0032\","
                                   "\"author\""));
    cr_expect_not_null(strstr(out, "\"age_years\":63,\"sex\":\"female\","));
    cr_expect_null(strstr(out, "clinical_details"));
    cr_expect_null(strstr(out, "nhs_number"));
    cr_expect_null(strstr(out, "date_of_birth"));
    /* Deterministic: the same event gives the same bytes. */
    char *again = NULL;
    size_t len2 = 0;
    cr_assert_eq(webhook_event_json(&z.ev, &again, &len2, why, sizeof why), 0);
    cr_expect_eq(len, len2);
    cr_expect_str_eq(out, again);
    free(out);
    free(again);
    /* Text that is not UTF-8 is refused, naming the field. */
    z.ev.reason = "bad \xff byte";
    cr_expect_eq(webhook_event_json(&z.ev, &out, &len, why, sizeof why), -1);
    cr_expect_not_null(strstr(why, "reason"), "%s", why);
    cr_expect_null(out);
}

static int
parse(const char *body, webhook_in *in, char *why, size_t whysz)
{
    return webhook_outcome_parse(
        (const uint8_t *)body, strlen(body), "local:VCS-0002",
        "a84ff5ac-69cf-4bd6-94c1-e4a8266d95ea", 1742211067, in, why, whysz);
}

Test(webhook, maps_the_incoming_outcome_sample)
{
    size_t len;
    char *body = slurp(WEBHOOK "/incoming-outcome.body.json", &len);
    webhook_in in;
    char why[300] = "";
    cr_assert_eq(parse(body, &in, why, sizeof why), 0, "%s", why);
    const Handover__Event *e = &in.ev;
    /* Derived as the samples README says. */
    cr_expect_str_eq(e->event_id, "73c49e42-a681-548f-851f-58bd3074d520");
    cr_expect_str_eq(e->event_type, "outcome");
    cr_expect_str_eq(e->schema, "handover.event.v1");
    cr_expect_str_eq(e->in_reply_to, "25e14237-735f-51b9-b0fb-c87ec41a3aae");
    cr_expect_str_eq(e->correlation_id, "");
    cr_expect_str_eq(e->occurred_at, "2025-03-17T11:30:00Z");
    cr_expect_str_eq(e->recorded_at, "2025-03-17T11:31:07.000Z");
    cr_expect_str_eq(e->source->org->code, "local:VCS-0002");
    cr_expect_str_eq(e->source->ref, "BB-2025-0193");
    cr_expect_str_eq(e->source->author->name, "Bev Armstrong");
    cr_expect_str_eq(e->source->author->role, "Volunteer coordinator");
    cr_assert_eq(e->body_case, HANDOVER__EVENT__BODY_OUTCOME);
    cr_expect_str_eq(e->outcome->status, "accepted");
    cr_expect_str_eq(e->outcome->planned_for, "2025-03-20");
    cr_expect_not_null(strstr(e->outcome->reason_text, "befriender"));
    cr_assert_not_null(e->patient);
    cr_expect_str_eq(e->patient->nhs_number, "");
    /* It packs (the adapter publishes exactly this). */
    size_t n = handover__event__get_packed_size(e);
    uint8_t *buf = malloc(n);
    handover__event__pack(e, buf);
    Handover__Event *back = handover__event__unpack(NULL, n, buf);
    cr_assert_not_null(back);
    cr_expect_str_eq(back->outcome->status, "accepted");
    handover__event__free_unpacked(back, NULL);
    free(buf);
    webhook_in_free(&in);

    /* One leading BOM is skipped. */
    char *bom = malloc(len + 4);
    memcpy(bom, "\xef\xbb\xbf", 3);
    memcpy(bom + 3, body, len + 1);
    cr_expect_eq(parse(bom, &in, why, sizeof why), 0, "%s", why);
    webhook_in_free(&in);
    free(bom);
    free(body);
}

Test(webhook, refuses_bodies_by_domain_rules)
{
    webhook_in in;
    char why[300];
    static const struct {
        const char *body;
        int status;
        const char *why;
    } cases[] = {
        {"not json", 400, "not valid JSON"},
        {"[1]", 400, "object"},
        {"{\"in_reply_to\":\"25e14237-735f-51b9-b0fb-c87ec41a3aae\","
         "\"in_reply_to\":\"25e14237-735f-51b9-b0fb-c87ec41a3aae\"}",
         400, "duplicate"},
        {"{\"outcome\":{\"status\":\"acc\\u0000epted\"}}", 400, "JSON"},
        {"\xef\xbb\xbf\xef\xbb\xbf{}", 400, "JSON"},
        {"{\"outcome\":{\"status\":\"accepted\"}}", 422, "in_reply_to"},
        {"{\"in_reply_to\":\"25E14237-735F-51B9-B0FB-C87EC41A3AAE\","
         "\"outcome\":{\"status\":\"accepted\"}}",
         422, "UUID"},
        {"{\"in_reply_to\":\"25e14237-735f-51b9-b0fb-c87ec41a3aae\"}", 422,
         "outcome is missing"},
        {"{\"in_reply_to\":\"25e14237-735f-51b9-b0fb-c87ec41a3aae\","
         "\"event_type\":\"referral\",\"outcome\":{}}",
         422, "event_type"},
        {"{\"in_reply_to\":\"25e14237-735f-51b9-b0fb-c87ec41a3aae\","
         "\"source\":{\"org\":{\"code\":\"local:VCS-0001\"}},"
         "\"outcome\":{\"status\":\"accepted\"}}",
         422, "Handover-Sender"},
        {"{\"in_reply_to\":\"25e14237-735f-51b9-b0fb-c87ec41a3aae\","
         "\"outcome\":{\"status\":7}}",
         422, "outcome.status must be a string"},
        {"{\"in_reply_to\":\"25e14237-735f-51b9-b0fb-c87ec41a3aae\","
         "\"outcome\":{\"status\":\"delivered\",\"items\":[{\"quantity\":"
         "100}]}}",
         422, "quantity"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        why[0] = '\0';
        int st = parse(cases[i].body, &in, why, sizeof why);
        cr_expect_eq(st, cases[i].status, "case %zu: %d (%s)", i, st, why);
        cr_expect_not_null(strstr(why, cases[i].why), "case %zu: '%s'", i, why);
    }
}
