#include "handover/timeutil.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

uint64_t
hov_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t
hov_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static bool
is_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

int
hov_days_in_month(int y, int m)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30,
                                 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : days[m - 1];
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar
 * (Howard Hinnant's days_from_civil). Exact integer arithmetic, with no
 * dependence on the C library's time zone or time_t range. */
static int64_t
days_from_civil(int y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* The inverse of days_from_civil. */
static void
civil_from_days(int64_t z, int *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = (int)(era * 400 + yoe + (*m <= 2));
}

/* Read exactly n ASCII digits at s into *v. */
static bool
digits(const char *s, int n, int *v)
{
    int x = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        x = x * 10 + (s[i] - '0');
    }
    *v = x;
    return true;
}

/* Parse "YYYY-MM-DD" at the start of s (10 characters, nothing checked
 * after them). */
static bool
parse_date(const char *s, int *y, int *m, int *d)
{
    if (!digits(s, 4, y) || s[4] != '-' || !digits(s + 5, 2, m) ||
        s[7] != '-' || !digits(s + 8, 2, d))
        return false;
    return *m >= 1 && *m <= 12 && *d >= 1 && *d <= hov_days_in_month(*y, *m);
}

typedef struct stamp {
    int y, mo, d, h, mi, sec;
    int ms;         /* first three fraction digits, zero-padded */
    int offset_min; /* local minus UTC, in minutes */
} stamp;

/* Parse a whole RFC 3339 date-time; with utc_only, the zone must be 'Z'. */
static bool
parse_stamp(const char *s, bool utc_only, stamp *t)
{
    if (s == NULL)
        return false;
    /* Bound every read: the shortest form is 20 characters, and the parser
     * below never looks past the terminating NUL. */
    if (strnlen(s, 20) < 20)
        return false;
    if (!parse_date(s, &t->y, &t->mo, &t->d) || s[10] != 'T')
        return false;
    if (!digits(s + 11, 2, &t->h) || s[13] != ':' ||
        !digits(s + 14, 2, &t->mi) || s[16] != ':' ||
        !digits(s + 17, 2, &t->sec))
        return false;
    if (t->h > 23 || t->mi > 59 || t->sec > 59)
        return false;
    const char *p = s + 19;
    t->ms = 0;
    if (*p == '.') {
        int n = 0;
        for (p++; *p >= '0' && *p <= '9'; p++, n++)
            if (n < 3)
                t->ms = t->ms * 10 + (*p - '0');
        if (n < 1 || n > 9)
            return false;
        for (; n < 3; n++)
            t->ms *= 10;
    }
    t->offset_min = 0;
    if (p[0] == 'Z')
        return p[1] == '\0';
    if (utc_only || (p[0] != '+' && p[0] != '-'))
        return false;
    int oh, om;
    if (!digits(p + 1, 2, &oh) || p[3] != ':' || !digits(p + 4, 2, &om) ||
        p[6] != '\0')
        return false;
    if (oh > 23 || om > 59)
        return false;
    t->offset_min = (p[0] == '-' ? -1 : 1) * (oh * 60 + om);
    return true;
}

bool
hov_rfc3339_utc_valid(const char *s)
{
    stamp t;
    return parse_stamp(s, true, &t);
}

bool
hov_rfc3339_valid(const char *s)
{
    stamp t;
    return parse_stamp(s, false, &t);
}

bool
hov_rfc3339_to_ms(const char *s, uint64_t *out_ms)
{
    stamp t;
    if (!parse_stamp(s, false, &t))
        return false;
    int64_t secs = days_from_civil(t.y, t.mo, t.d) * 86400 +
                   (int64_t)t.h * 3600 + (int64_t)t.mi * 60 + t.sec -
                   (int64_t)t.offset_min * 60;
    if (secs < 0)
        return false;
    *out_ms = (uint64_t)secs * 1000u + (uint64_t)t.ms;
    return true;
}

/* Parse s when it is exactly "YYYY-MM-DD" and a real date. */
static bool
parse_whole_date(const char *s, int *y, int *m, int *d)
{
    return s != NULL && strnlen(s, 11) == 10 && parse_date(s, y, m, d);
}

bool
hov_date_valid(const char *s)
{
    int y, m, d;
    return parse_whole_date(s, &y, &m, &d);
}

/* Write v as exactly n decimal digits, zero-padded (v is known to fit; this
 * spares snprintf's truncation analysis, which cannot see the ranges). */
static void
put_digits(char *p, int v, int n)
{
    for (int i = n - 1; i >= 0; i--, v /= 10)
        p[i] = (char)('0' + v % 10);
}

/* The day number (days since 1970-01-01) of the last Sunday of month m. */
static int64_t
last_sunday(int y, int m)
{
    int64_t last = days_from_civil(y, m, hov_days_in_month(y, m));
    /* 1970-01-01 was a Thursday: weekday 4 counting Sunday as 0. */
    int64_t wd = ((last + 4) % 7 + 7) % 7;
    return last - wd;
}

void
hov_date_london_at(uint64_t unix_ms, char out[11])
{
    int64_t secs = (int64_t)(unix_ms / 1000u);
    int y, m, d;
    civil_from_days(secs / 86400, &y, &m, &d);
    /* UK summer time (the Summer Time Order 2002, aligned with EU practice)
     * starts and ends at 01:00 UTC on the last Sundays of March and October.
     * The year from the UTC date is the right one: both changes are far from
     * the new year. */
    int64_t start = last_sunday(y, 3) * 86400 + 3600;
    int64_t end = last_sunday(y, 10) * 86400 + 3600;
    if (secs >= start && secs < end)
        secs += 3600;
    civil_from_days(secs / 86400, &y, &m, &d);
    put_digits(out, y % 10000, 4);
    out[4] = '-';
    put_digits(out + 5, m, 2);
    out[7] = '-';
    put_digits(out + 8, d, 2);
    out[10] = '\0';
}

bool
hov_civil_to_ms(int y, int mo, int d, int h, int mi, int s, int ms,
                int64_t offset_min, uint64_t *out)
{
    if (y < 1970 || y > 9999 || mo < 1 || mo > 12 || d < 1 ||
        d > hov_days_in_month(y, mo) || h < 0 || h > 23 || mi < 0 || mi > 59 ||
        s < 0 || s > 59 || ms < 0 || ms > 999)
        return false;
    int64_t secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s -
                   offset_min * 60;
    if (secs < 0)
        return false;
    *out = (uint64_t)secs * 1000u + (uint64_t)ms;
    return true;
}

int
hov_london_to_ms(int y, int mo, int d, int h, int mi, int s, int ms,
                 uint64_t *out, bool *ambiguous)
{
    uint64_t as_utc;
    if (ambiguous != NULL)
        *ambiguous = false;
    if (!hov_civil_to_ms(y, mo, d, h, mi, s, ms, 0, &as_utc))
        return -1;
    /* Local wall time L maps to UTC L-1h in summer time and L in winter.
     * Summer time runs [start, end) in UTC, 01:00 UTC on the last Sundays
     * of March and October: so local 01:00-01:59 on the March Sunday does
     * not exist, and local 01:00-01:59 on the October Sunday happens twice
     * (the first time in summer time). */
    int64_t start = (last_sunday(y, 3) * 86400 + 3600) * 1000;
    int64_t end = (last_sunday(y, 10) * 86400 + 3600) * 1000;
    int64_t local = (int64_t)as_utc;
    int64_t bst = local - 3600 * 1000; /* the UTC instant if in summer time */
    bool bst_ok = bst >= start && bst < end;
    bool gmt_ok = !(local >= start && local < end);
    if (bst_ok && gmt_ok) {
        if (ambiguous != NULL)
            *ambiguous = true;
        *out = (uint64_t)bst; /* the first occurrence */
        return 0;
    }
    if (bst_ok) {
        *out = (uint64_t)bst;
        return 0;
    }
    if (gmt_ok) {
        *out = (uint64_t)local;
        return 0;
    }
    return -2;
}

void
hov_today_london(char out[11])
{
    hov_date_london_at(hov_now_ms(), out);
}

void
hov_rfc3339_format(uint64_t unix_ms, char out[32])
{
    int64_t secs = (int64_t)(unix_ms / 1000u);
    int ms = (int)(unix_ms % 1000u);
    int64_t days = secs / 86400;
    int sod = (int)(secs % 86400);
    int y, m, d;
    civil_from_days(days, &y, &m, &d);
    snprintf(out, 32, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", y % 10000, m, d,
             sod / 3600, sod / 60 % 60, sod % 60, ms);
}

int
hov_age_years(const char *dob, const char *today)
{
    int by, bm, bd, ty, tm, td;
    if (!parse_whole_date(dob, &by, &bm, &bd) ||
        !parse_whole_date(today, &ty, &tm, &td) || strcmp(dob, today) > 0)
        return -1;
    int age = ty - by;
    /* Before this year's birthday (month, then day) a year is not yet
     * complete; 29 February compares as after 28 February, so the year
     * completes on 1 March in a common year. */
    if (tm < bm || (tm == bm && td < bd))
        age--;
    return age;
}

uint64_t
hov_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}
