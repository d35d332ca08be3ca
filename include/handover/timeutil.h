/* Clocks, RFC 3339 timestamps, calendar dates and Europe/London dates.
 *
 * Canonical timestamps are RFC 3339 in UTC with 'Z'; dates are YYYY-MM-DD
 * with no time zone (domain brief 4.3). Europe/London's civil date is
 * computed from the UK summer time rule (01:00 UTC on the last Sunday of
 * March to 01:00 UTC on the last Sunday of October) rather than from the
 * C library's time zone, so no function here reads or changes TZ and every
 * function is thread-safe. Leap seconds are not accepted (second 60 is an
 * error), matching what the partner systems send.
 */
#ifndef HANDOVER_TIMEUTIL_H
#define HANDOVER_TIMEUTIL_H

#include <stdbool.h>
#include <stdint.h>

/* Wall-clock time (CLOCK_REALTIME) in milliseconds since the Unix epoch.
 * For timestamps people read; it can jump. */
uint64_t hov_now_ms(void);

/* Monotonic time (CLOCK_MONOTONIC) in milliseconds from an arbitrary start.
 * For timeouts, heartbeats and durations; never jumps. */
uint64_t hov_mono_ms(void);

/* Monotonic clock in microseconds, for measuring phases. */
uint64_t hov_mono_us(void);

/* Is s "YYYY-MM-DDThh:mm:ss[.f]Z", with 1 to 9 fraction digits, a real
 * calendar date (leap years included) and a time of day up to 23:59:59?
 * Upper-case 'T' and 'Z' only: this is the canonical form. */
bool hov_rfc3339_utc_valid(const char *s);

/* As hov_rfc3339_utc_valid, but the zone may also be a numeric offset
 * "+hh:mm" or "-hh:mm" (hh up to 23, mm up to 59). */
bool hov_rfc3339_valid(const char *s);

/* Convert an RFC 3339 timestamp accepted by hov_rfc3339_valid to
 * milliseconds since the Unix epoch in UTC (the offset applied, fraction
 * digits past milliseconds dropped). Returns false, leaving *out_ms
 * unchanged, if s is not valid or lies before 1970-01-01T00:00:00Z. */
bool hov_rfc3339_to_ms(const char *s, uint64_t *out_ms);

/* Is s "YYYY-MM-DD", a real calendar date? */
bool hov_date_valid(const char *s);

/* The Europe/London calendar date at unix_ms, as "YYYY-MM-DD". */
void hov_date_london_at(uint64_t unix_ms, char out[11]);

/* Days in month m (1 to 12) of year y, leap years included. */
int hov_days_in_month(int y, int m);

/* Milliseconds since the Unix epoch for the civil time y-mo-d h:mi:s.ms at
 * a UTC offset of offset_min minutes (local = UTC + offset). Returns false,
 * leaving *out unchanged, when a part is out of range (month 13, 30
 * February, hour 24, second 60) or the instant is before 1970. */
bool hov_civil_to_ms(int y, int mo, int d, int h, int mi, int s, int ms,
                     int64_t offset_min, uint64_t *out);

/* Milliseconds since the Unix epoch for a Europe/London wall-clock time
 * (domain 4.3: HL7 times without an offset). Returns 0; -1 when a part is
 * out of range; -2 when the time does not exist (01:00-01:59 on the last
 * Sunday of March, skipped when the clocks go forward). In the hour that
 * happens twice (01:00-01:59 on the last Sunday of October) the first
 * occurrence (summer time) is taken and *ambiguous (may be NULL) is set. */
int hov_london_to_ms(int y, int mo, int d, int h, int mi, int s, int ms,
                     uint64_t *out, bool *ambiguous);

/* Today's date in Europe/London (hov_date_london_at(hov_now_ms())). */
void hov_today_london(char out[11]);

/* Format unix_ms as "YYYY-MM-DDThh:mm:ss.mmmZ" (always 24 characters). */
void hov_rfc3339_format(uint64_t unix_ms, char out[32]);

/* Completed years between the dates dob and today (both "YYYY-MM-DD").
 * Someone born on 29 February completes a year on 1 March in common years.
 * Returns -1 if either date is invalid or dob is after today. */
int hov_age_years(const char *dob, const char *today);

#endif
