/* NHS numbers (domain 4.1), organisation codes (3.2, 4.2), postcodes (4.3)
 * and UUIDs. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "handover/ident.h"

/* Check s and expect HOV_OK, printing the message if not. */
static void
nhs_ok(const char *s, bool allow_test)
{
    hov_error err = {0};
    hov_err rc = hov_nhs_number_check(s, allow_test, &err);
    cr_assert_eq(rc, HOV_OK, "%s: %s: %s", s, hov_strerror(rc), err.msg);
}

/* Check s and expect HOV_ENHSNUMBER with exactly msg. */
static void
nhs_bad(const char *s, bool allow_test, const char *msg)
{
    hov_error err = {0};
    hov_err rc = hov_nhs_number_check(s, allow_test, &err);
    cr_assert_eq(rc, HOV_ENHSNUMBER, "%s: got %s", s ? s : "(null)",
                 hov_strerror(rc));
    cr_assert_eq(err.code, HOV_ENHSNUMBER);
    if (msg != NULL)
        cr_assert_str_eq(err.msg, msg);
}

Test(nhs_number, worked_examples_are_valid, .timeout = 10)
{
    nhs_ok("9994127357", true); /* r = 4, check 7 */
    nhs_ok("9992468130", true); /* r = 0, 11 -> 0 */
    nhs_ok("9995050501", true); /* r = 10, check 1 */
}

Test(nhs_number, sample_numbers_are_valid, .timeout = 10)
{
    static const char *valid[] = {
        "9992468130", "9994127357", "9993001007", "9995050501", "9996118428",
        "9997345207", "9998765439", "9992024682", "9995319764", "9990000018",
        "9990000026", "9990000034", "9990000042", "9990000050", "9990000069"};
    for (size_t i = 0; i < sizeof valid / sizeof valid[0]; i++)
        nhs_ok(valid[i], true);
}

Test(nhs_number, wrong_check_digit, .timeout = 10)
{
    nhs_bad("9994127358", true,
            "NHS number 9994127358 fails the Modulus 11 check (expected "
            "check digit 7)");
    nhs_bad("9992024683", true,
            "NHS number 9992024683 fails the Modulus 11 check (expected "
            "check digit 2)");
    nhs_bad("9997345208", true,
            "NHS number 9997345208 fails the Modulus 11 check (expected "
            "check digit 7)");
}

Test(nhs_number, no_valid_check_digit_for_any_tenth_digit, .timeout = 10)
{
    for (char x = '0'; x <= '9'; x++) {
        char s[11], msg[128];
        snprintf(s, sizeof s, "999123456%c", x);
        snprintf(msg, sizeof msg,
                 "NHS number %s has no valid check digit (its first nine "
                 "digits give 10)",
                 s);
        nhs_bad(s, true, msg);
    }
}

Test(nhs_number, ten_identical_digits, .timeout = 10)
{
    nhs_bad("1111111111", true,
            "NHS number 1111111111 is ten identical digits");
    nhs_bad("0000000000", true,
            "NHS number 0000000000 is ten identical digits");
    for (char c = '0'; c <= '9'; c++) {
        char s[11];
        memset(s, c, 10);
        s[10] = '\0';
        nhs_bad(s, true, NULL);
    }
}

Test(nhs_number, wrong_length_and_non_digits, .timeout = 10)
{
    nhs_bad("12345", true, "NHS number '12345' is not 10 digits");
    nhs_bad("", true, "NHS number '' is not 10 digits");
    nhs_bad(NULL, true, "NHS number '' is not 10 digits");
    nhs_bad("99924681300", true, "NHS number '99924681300' is not 10 digits");
    nhs_bad("999 246 8130", true, "NHS number '999 246 8130' is not 10 digits");
    nhs_bad("999246813X", true, "NHS number '999246813X' is not 10 digits");
    nhs_bad("-999246813", true, NULL);
    nhs_bad("９９９2468130", true, NULL); /* full-width digits */
}

Test(nhs_number, echo_is_capped_and_printable, .timeout = 10)
{
    hov_error err = {0};
    cr_assert_eq(
        hov_nhs_number_check("12345678901234567890123456789\n\x01", true, &err),
        HOV_ENHSNUMBER);
    cr_assert_str_eq(err.msg,
                     "NHS number '12345678901234567890...' is not 10 digits");
    hov_error_clear(&err);
    cr_assert_eq(hov_nhs_number_check("12\x01\n", true, &err), HOV_ENHSNUMBER);
    cr_assert_str_eq(err.msg, "NHS number '12?\?' is not 10 digits");
}

Test(nhs_number, test_range_switch, .timeout = 10)
{
    nhs_ok("9992468130", true);
    nhs_bad("9992468130", false,
            "NHS number 9992468130 is in the 999 test range, which "
            "allow_test_nhs_numbers forbids");
    /* Outside the 999 range the switch changes nothing. 4010232137 is a
     * well-formed number (check digit 7) used only as a shape example. */
    nhs_ok("4010232137", false);
    nhs_ok("4010232137", true);
    /* A mistyped test number is reported as a typing error first. */
    nhs_bad("9994127358", false, NULL);
}

Test(nhs_number, err_may_be_null_and_first_failure_wins, .timeout = 10)
{
    cr_assert_eq(hov_nhs_number_check("1", true, NULL), HOV_ENHSNUMBER);
    hov_error err = {0};
    hov_fail(&err, HOV_EIO, 0, "earlier");
    cr_assert_eq(hov_nhs_number_check("1", true, &err), HOV_ENHSNUMBER);
    cr_assert_eq(err.code, HOV_EIO);
    cr_assert_str_eq(err.msg, "earlier");
}

Test(ods, codes, .timeout = 10)
{
    static const char *good[] = {"Z99001",   "RZZ",       "RZZ01",
                                 "8ZZ99",    "Z9Z9Z",     "A",
                                 "G9999990", "K81003001", "0"};
    static const char *bad[] = {
        NULL,      "",       "z99001",         "K810030011",
        "RZZ 01",  "RZZ-01", "local:VCS-0001", "Z99001\n",
        "\xc3\x89"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        cr_assert(hov_ods_code_valid(good[i]), "%s", good[i]);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_not(hov_ods_code_valid(bad[i]), "%s",
                      bad[i] ? bad[i] : "(null)");
}

Test(org_code, ods_or_local, .timeout = 10)
{
    static const char *good[] = {
        "Z99001",
        "8ZZ99",
        "local:VCS-0001",
        "local:a",
        "local:-",
        "local:abcdefghijABCDEFGHIJ0123456789ab"}; /* 32 after the colon */
    static const char *bad[] = {
        NULL,
        "",
        "local:",
        "local:VCS_0001",
        "local:VCS 0001",
        "LOCAL:VCS-0001",
        "local:abcdefghijABCDEFGHIJ0123456789abc", /* 33 */
        "locl:VCS-0001",
        "z99001",
        "local:VCS-0001:x"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        cr_assert(hov_org_code_valid(good[i]), "%s", good[i]);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_not(hov_org_code_valid(bad[i]), "%s",
                      bad[i] ? bad[i] : "(null)");
}

Test(postcode, shapes, .timeout = 10)
{
    static const char *good[] = {
        "FE7 8QT",  "FE4 6JD", "FE1 5HX", /* the sample area, AA9 */
        "M1 1AE",                         /* A9 */
        "B33 8TH",                        /* A99 */
        "CR2 6XH",                        /* AA9 */
        "DN55 1PT",                       /* AA99 */
        "W1A 0AX",                        /* A9A */
        "EC1A 1BB",                       /* AA9A */
        "FE78QT",   "EC1A1BB", "M11AE",   /* the space is optional */
    };
    static const char *bad[] = {
        NULL,       "",          "fe7 8qt",  "FE7 8qt",  "FE7  8QT",
        " FE7 8QT", "FE7 8QT ",  "FE7-8QT",  "FEE7 8QT", "F 8QT",
        "FE7 QT",   "FE7 88T",   "FE7 8Q",   "7FE 8QT",  "FE7A8 8QT",
        "FE 8QT",   "FE77A 8QT", "FE7\n8QT", "EC1A 1B",  "A9A9 9AA",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        cr_assert(hov_postcode_valid(good[i]), "%s", good[i]);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_not(hov_postcode_valid(bad[i]), "'%s'",
                      bad[i] ? bad[i] : "(null)");
}

Test(uuid, validity, .timeout = 10)
{
    cr_assert(hov_uuid_valid("e09339b8-a502-5cfc-af76-7873b23f04b6"));
    cr_assert(hov_uuid_valid("a84ff5ac-69cf-4bd6-94c1-e4a8266d95ea"));
    cr_assert(hov_uuid_valid("00000000-0000-0000-0000-000000000000"));
    cr_assert_not(hov_uuid_valid(NULL));
    cr_assert_not(hov_uuid_valid(""));
    cr_assert_not(hov_uuid_valid("E09339B8-A502-5CFC-AF76-7873B23F04B6"));
    cr_assert_not(hov_uuid_valid("e09339b8a5025cfcaf767873b23f04b6"));
    cr_assert_not(hov_uuid_valid("e09339b8-a502-5cfc-af76-7873b23f04b"));
    cr_assert_not(hov_uuid_valid("e09339b8-a502-5cfc-af76-7873b23f04b6a"));
    cr_assert_not(hov_uuid_valid("e09339b8-a502-5cfc-af76_7873b23f04b6"));
    cr_assert_not(hov_uuid_valid("g09339b8-a502-5cfc-af76-7873b23f04b6"));
    cr_assert_not(hov_uuid_valid("{e09339b8-a502-5cfc-af76-7873b23f04b6}"));
    cr_assert_not(hov_uuid_valid("CN-ORD-88120"));
}

Test(uuid, v4_is_valid_versioned_and_fresh, .timeout = 10)
{
    char prev[37] = "";
    for (int i = 0; i < 1000; i++) {
        char u[37];
        hov_uuid_v4(u);
        cr_assert(hov_uuid_valid(u), "%s", u);
        cr_assert_eq(u[14], '4', "%s: version nibble", u);
        cr_assert(strchr("89ab", u[19]) != NULL, "%s: variant", u);
        cr_assert_str_neq(u, prev);
        memcpy(prev, u, sizeof prev);
    }
}

Test(ident, uuid_v5_matches_the_domain_brief)
{
    static const struct {
        const char *name, *id;
    } cases[] = {
        {"hl7v2|RZZ01|FELLGATE-PAS|PAS000187342",
         "e09339b8-a502-5cfc-af76-7873b23f04b6"},
        {"fhir|https://fhir.gp-system.example/Id/referral|Z99001-REF-000318",
         "ae41b2a2-c361-59f0-b094-ae08febec1f6"},
        {"file|Z9Z9Z|ASC-REF-2025-004417",
         "a52d3c69-9fb0-578c-8a16-3f27a0615b26"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[37];
        hov_error err = {0};
        cr_assert_eq(hov_uuid_v5(HOV_EVENT_ID_NS, cases[i].name,
                                 strlen(cases[i].name), out, &err),
                     HOV_OK);
        cr_expect_str_eq(out, cases[i].id, "%s", cases[i].name);
    }
    char out[37];
    hov_error err = {0};
    cr_expect_eq(hov_uuid_v5("not-a-uuid", "x", 1, out, &err), HOV_EINVAL);
}
