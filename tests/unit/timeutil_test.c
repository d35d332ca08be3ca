/* Clocks, RFC 3339, calendar dates, Europe/London dates and ages. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "handover/timeutil.h"

/* Milliseconds since the epoch of an RFC 3339 timestamp, asserted valid. */
static uint64_t
ms(const char *s)
{
    uint64_t v = 0;
    cr_assert(hov_rfc3339_to_ms(s, &v), "%s", s);
    return v;
}

static void
london_is(const char *utc, const char *want)
{
    char out[11];
    hov_date_london_at(ms(utc), out);
    cr_assert_str_eq(out, want, "%s in London", utc);
}

Test(clock, now_and_monotonic, .timeout = 10)
{
    uint64_t now = hov_now_ms();
    /* After 2025-01-01 and before 2100-01-01. */
    cr_assert_gt(now, 1735689600000ULL);
    cr_assert_lt(now, 4102444800000ULL);
    uint64_t a = hov_mono_ms();
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL);
    uint64_t b = hov_mono_ms();
    cr_assert_geq(b - a, 19);
    cr_assert_lt(b - a, 5000);
}

Test(rfc3339, utc_forms, .timeout = 10)
{
    static const char *good[] = {
        "2025-03-18T08:00:00Z",     "2025-03-18T08:00:00.1Z",
        "2025-03-18T08:00:00.123Z", "2025-03-18T08:00:00.123456789Z",
        "2024-02-29T23:59:59Z",     "2000-02-29T00:00:00Z",
        "1970-01-01T00:00:00Z",     "2025-12-31T23:59:59.999Z",
    };
    static const char *bad[] = {
        NULL,
        "",
        "2025-03-18",
        "2025-03-18T08:00:00",             /* no zone */
        "2025-03-18 08:00:00Z",            /* space for T */
        "2025-03-18t08:00:00Z",            /* lower-case t */
        "2025-03-18T08:00:00z",            /* lower-case z */
        "2025-03-18T08:00Z",               /* no seconds */
        "2025-03-18T08:00:00.Z",           /* empty fraction */
        "2025-03-18T08:00:00.1234567890Z", /* 10 fraction digits */
        "2025-03-18T08:00:00+00:00",       /* offset: not the UTC form */
        "2025-02-29T08:00:00Z",            /* not a leap year */
        "1900-02-29T08:00:00Z",            /* century, not a leap year */
        "2025-13-01T08:00:00Z",            /* month 13 */
        "2025-00-01T08:00:00Z",            /* month 0 */
        "2025-04-31T08:00:00Z",            /* April has 30 days */
        "2025-03-00T08:00:00Z",            /* day 0 */
        "2025-03-18T24:00:00Z",            /* hour 24 */
        "2025-03-18T08:60:00Z",            /* minute 60 */
        "2025-03-18T08:00:60Z",            /* no leap seconds */
        "2025-03-18T08:00:00ZZ",           /* trailing text */
        "2025-03-18T08:00:00Z ",           /* trailing space */
        "25-03-18T08:00:00Z",              /* two-digit year */
        "2025-3-18T08:00:00Z",             /* one-digit month */
        "+2025-03-18T08:00:00Z",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        cr_assert(hov_rfc3339_utc_valid(good[i]), "%s", good[i]);
        cr_assert(hov_rfc3339_valid(good[i]), "%s", good[i]);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_not(hov_rfc3339_utc_valid(bad[i]), "%s",
                      bad[i] ? bad[i] : "(null)");
}

Test(rfc3339, offset_forms, .timeout = 10)
{
    static const char *good[] = {
        "2025-03-18T08:00:00+00:00", "2025-03-18T08:00:00-00:00",
        "2025-03-18T08:00:00+01:00", "2025-03-18T08:00:00.5-05:30",
        "2025-03-18T08:00:00+23:59", "2025-03-18T08:00:00Z",
    };
    static const char *bad[] = {
        "2025-03-18T08:00:00+0100", /* basic format offset */
        "2025-03-18T08:00:00+01",   /* no minutes */
        "2025-03-18T08:00:00+1:00",
        "2025-03-18T08:00:00+24:00", /* hour 24 */
        "2025-03-18T08:00:00+01:60", /* minute 60 */
        "2025-03-18T08:00:00+01:00Z",
        "2025-03-18T08:00:00 +01:00",
        "2025-03-18T08:00:00+01:00 ",
        "2025-02-29T08:00:00+01:00", /* the date is checked too */
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        cr_assert(hov_rfc3339_valid(good[i]), "%s", good[i]);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_not(hov_rfc3339_valid(bad[i]), "%s", bad[i]);
    cr_assert_not(hov_rfc3339_utc_valid("2025-03-18T08:00:00+01:00"));
}

Test(rfc3339, to_ms_applies_offsets, .timeout = 10)
{
    cr_assert_eq(ms("1970-01-01T00:00:00Z"), 0);
    cr_assert_eq(ms("2025-03-14T14:05:02Z"), 1741961102000ULL);
    cr_assert_eq(ms("2025-03-17T11:31:07Z"), 1742211067000ULL);
    cr_assert_eq(ms("2025-03-17T12:31:07+01:00"), 1742211067000ULL);
    cr_assert_eq(ms("2025-03-17T06:01:07.25-05:30"), 1742211067250ULL);
    cr_assert_eq(ms("2025-03-17T11:31:07.123999Z"), 1742211067123ULL);
    uint64_t v = 42;
    cr_assert_not(hov_rfc3339_to_ms("1970-01-01T00:30:00+01:00", &v));
    cr_assert_not(hov_rfc3339_to_ms("2025-02-29T00:00:00Z", &v));
    cr_assert_eq(v, 42);
}

Test(rfc3339, format, .timeout = 10)
{
    char out[32];
    hov_rfc3339_format(1742284800123ULL, out);
    cr_assert_str_eq(out, "2025-03-18T08:00:00.123Z");
    hov_rfc3339_format(0, out);
    cr_assert_str_eq(out, "1970-01-01T00:00:00.000Z");
    hov_rfc3339_format(ms("2024-02-29T23:59:59.999Z"), out);
    cr_assert_str_eq(out, "2024-02-29T23:59:59.999Z");
    hov_rfc3339_format(hov_now_ms(), out);
    cr_assert(hov_rfc3339_utc_valid(out), "%s", out);
    cr_assert_eq(strlen(out), 24);
}

Test(date, validity, .timeout = 10)
{
    static const char *good[] = {"2024-02-29", "2000-02-29", "1938-04-17",
                                 "2025-12-31", "2025-01-01"};
    static const char *bad[] = {
        NULL,         "",           "2025-02-29",           "1900-02-29",
        "2025-13-01", "2025-00-10", "2025-04-31",           "2025-01-32",
        "2025-1-01",  "20250101",   "2025-01-01T00:00:00Z", "2025-01-01 ",
        "2025/01/01"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        cr_assert(hov_date_valid(good[i]), "%s", good[i]);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_not(hov_date_valid(bad[i]), "%s", bad[i] ? bad[i] : "(null)");
}

Test(london, winter_is_utc, .timeout = 10)
{
    london_is("2025-01-15T23:59:59Z", "2025-01-15");
    london_is("2025-12-31T23:30:00Z", "2025-12-31");
    london_is("2026-01-01T00:00:00Z", "2026-01-01");
}

Test(london, summer_time_starts_at_0100_utc_last_sunday_of_march, .timeout = 10)
{
    /* 2025: clocks go forward on Sunday 30 March. */
    london_is("2025-03-29T23:30:00Z", "2025-03-29"); /* 23:30 GMT */
    london_is("2025-03-30T00:59:59Z", "2025-03-30"); /* 00:59 GMT */
    london_is("2025-03-30T01:00:00Z", "2025-03-30"); /* 02:00 BST */
    london_is("2025-03-30T22:59:59Z", "2025-03-30"); /* 23:59 BST */
    london_is("2025-03-30T23:00:00Z", "2025-03-31"); /* 00:00 BST */
    /* Before the change, 23:30Z is still the same day. */
    london_is("2025-03-29T23:00:00Z", "2025-03-29");
    /* 2024: forward on 31 March, back on 27 October. */
    london_is("2024-03-30T23:30:00Z", "2024-03-30");
    london_is("2024-03-31T23:30:00Z", "2024-04-01");
}

Test(london, summer_evening_is_next_day, .timeout = 10)
{
    london_is("2025-07-01T23:30:00Z", "2025-07-02");
    london_is("2025-07-01T22:59:59Z", "2025-07-01");
    london_is("2025-06-30T23:00:00Z", "2025-07-01");
    london_is("2025-08-31T23:15:00Z", "2025-09-01"); /* month end */
}

Test(london, summer_time_ends_at_0100_utc_last_sunday_of_october, .timeout = 10)
{
    /* 2025: clocks go back on Sunday 26 October. */
    london_is("2025-10-25T23:30:00Z", "2025-10-26"); /* 00:30 BST */
    london_is("2025-10-26T00:59:59Z", "2025-10-26"); /* 01:59 BST */
    london_is("2025-10-26T01:00:00Z", "2025-10-26"); /* 01:00 GMT */
    london_is("2025-10-26T23:30:00Z", "2025-10-26"); /* 23:30 GMT */
    london_is("2025-10-26T23:59:59Z", "2025-10-26");
    london_is("2024-10-26T23:30:00Z", "2024-10-27"); /* the day before */
    london_is("2024-10-27T23:30:00Z", "2024-10-27");
}

Test(london, today_is_a_date_near_utc_today, .timeout = 10)
{
    char today[11], utc[32];
    hov_today_london(today);
    cr_assert(hov_date_valid(today), "%s", today);
    uint64_t now = hov_now_ms();
    hov_rfc3339_format(now, utc);
    char utc_date[11];
    memcpy(utc_date, utc, 10);
    utc_date[10] = '\0';
    /* London is UTC or one hour ahead, so the date is UTC's or the next. */
    char next[11];
    hov_date_london_at(now + 3600000ULL, next);
    cr_assert(strcmp(today, utc_date) == 0 || strcmp(today, next) == 0,
              "today %s, utc %s", today, utc);
}

Test(age, completed_years, .timeout = 10)
{
    cr_assert_eq(hov_age_years("1938-04-17", "2025-03-14"), 86);
    cr_assert_eq(hov_age_years("1938-04-17", "2025-04-16"), 86);
    cr_assert_eq(hov_age_years("1938-04-17", "2025-04-17"), 87);
    cr_assert_eq(hov_age_years("1962-02-14", "2025-03-14"), 63);
    cr_assert_eq(hov_age_years("2025-03-14", "2025-03-14"), 0);
    /* Born on 29 February: the year completes on 1 March. */
    cr_assert_eq(hov_age_years("2000-02-29", "2001-02-28"), 0);
    cr_assert_eq(hov_age_years("2000-02-29", "2001-03-01"), 1);
    cr_assert_eq(hov_age_years("2000-02-29", "2004-02-29"), 4);
}

Test(age, bad_input, .timeout = 10)
{
    cr_assert_eq(hov_age_years("2025-03-15", "2025-03-14"), -1);
    cr_assert_eq(hov_age_years("2025-02-29", "2025-03-14"), -1);
    cr_assert_eq(hov_age_years("1938-04-17", "2025-13-01"), -1);
    cr_assert_eq(hov_age_years(NULL, "2025-03-14"), -1);
    cr_assert_eq(hov_age_years("1938-04-17", NULL), -1);
    cr_assert_eq(hov_age_years("", ""), -1);
}

Test(timeutil, london_local_time_to_utc)
{
    uint64_t ms = 0;
    bool amb = false;
    char out[32];
    /* winter: GMT */
    cr_assert_eq(hov_london_to_ms(2025, 3, 14, 10, 5, 0, 0, &ms, &amb), 0);
    hov_rfc3339_format(ms, out);
    cr_expect_str_eq(out, "2025-03-14T10:05:00.000Z");
    cr_expect_not(amb);
    /* summer: BST, one hour ahead */
    cr_assert_eq(hov_london_to_ms(2025, 7, 1, 12, 0, 0, 0, &ms, &amb), 0);
    hov_rfc3339_format(ms, out);
    cr_expect_str_eq(out, "2025-07-01T11:00:00.000Z");
    /* the skipped hour on 30 March 2025 does not exist */
    cr_expect_eq(hov_london_to_ms(2025, 3, 30, 1, 30, 0, 0, &ms, &amb), -2);
    cr_assert_eq(hov_london_to_ms(2025, 3, 30, 2, 0, 0, 0, &ms, &amb), 0);
    hov_rfc3339_format(ms, out);
    cr_expect_str_eq(out, "2025-03-30T01:00:00.000Z");
    /* the repeated hour on 26 October 2025: the first (BST) occurrence */
    cr_assert_eq(hov_london_to_ms(2025, 10, 26, 1, 30, 0, 0, &ms, &amb), 0);
    hov_rfc3339_format(ms, out);
    cr_expect_str_eq(out, "2025-10-26T00:30:00.000Z");
    cr_expect(amb);
    cr_assert_eq(hov_london_to_ms(2025, 10, 26, 2, 0, 0, 0, &ms, &amb), 0);
    hov_rfc3339_format(ms, out);
    cr_expect_str_eq(out, "2025-10-26T02:00:00.000Z");
    cr_expect_not(amb);
    cr_expect_eq(hov_london_to_ms(2025, 2, 29, 0, 0, 0, 0, &ms, &amb), -1);
    cr_expect_eq(hov_london_to_ms(2025, 13, 1, 0, 0, 0, 0, &ms, &amb), -1);
}
