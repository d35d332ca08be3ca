/* Small string helpers shared by every program. */
#ifndef HANDOVER_STR_H
#define HANDOVER_STR_H

#include <stdbool.h>
#include <stddef.h>

/* Copy the C string src into dst of cap bytes (cap > 0), cut to fit and
 * always terminated. Returns the length of src, as strlcpy does, so a
 * caller can tell that it was cut (result >= cap). The hot path's
 * replacement for snprintf("%s"), which is slow for plain copies. */
size_t hov_strlcpy(char *dst, size_t cap, const char *src);

/* Append src, or the decimal digits of v, to the string of len bytes in
 * dst (cap > len), cut to fit and always terminated; returns the new
 * length. For building messages on the hot path without snprintf. */
size_t hov_stradd(char *dst, size_t cap, size_t len, const char *src);
size_t hov_stradd_u(char *dst, size_t cap, size_t len, unsigned long long v);

/* At most max characters of s (NULL reads as "") into out for a message:
 * bytes other than printable ASCII become '?', so a message stays one
 * readable line whatever arrived, and a cut is marked "...". A bad input
 * is echoed so a person can find it, but only its start: it may be a
 * whole record pasted into the wrong field. */
void hov_echo(char *out, size_t outsz, const char *s, size_t max);

/* Characters (code points) in the valid UTF-8 string s: every byte that
 * does not continue a sequence starts one. Length limits in the domain
 * brief count characters, not bytes. */
size_t hov_utf8_chars(const char *s);

/* Is s valid UTF-8 under RFC 3629: no overlong forms, no surrogates,
 * nothing past U+10FFFF? */
bool hov_utf8_valid(const char *s);

#endif
