#include "handover/str.h"

#include <stdint.h>

#include <string.h>

size_t
hov_strlcpy(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(src);
    size_t k = n < cap ? n : cap - 1;
    memcpy(dst, src, k);
    dst[k] = '\0';
    return n;
}

size_t
hov_stradd(char *dst, size_t cap, size_t len, const char *src)
{
    size_t n = hov_strlcpy(dst + len, cap - len, src);
    return n < cap - len ? len + n : cap - 1;
}

size_t
hov_stradd_u(char *dst, size_t cap, size_t len, unsigned long long v)
{
    char digits[24];
    size_t n = sizeof digits - 1;
    digits[n] = '\0';
    do {
        digits[--n] = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0);
    return hov_stradd(dst, cap, len, digits + n);
}

void
hov_echo(char *out, size_t outsz, const char *s, size_t max)
{
    size_t n = 0;
    size_t i = 0;
    if (s == NULL)
        s = "";
    for (; s[i] != '\0' && i < max && n + 1 < outsz; i++) {
        unsigned char c = (unsigned char)s[i];
        out[n++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    if (s[i] != '\0' && n + 4 <= outsz) {
        memcpy(out + n, "...", 3);
        n += 3;
    }
    out[n] = '\0';
}

#define HIGH_BITS 0x8080808080808080ULL

/* Most text is ASCII: take it eight bytes at a time. Returns the first
 * byte at or after s, before end, that is not ASCII (or end). */
static const unsigned char *
ascii_run(const unsigned char *s, const unsigned char *end)
{
    for (; end - s >= 8; s += 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        if (w & HIGH_BITS)
            break;
    }
    while (s < end && *s < 0x80)
        s++;
    return s;
}

size_t
hov_utf8_chars(const char *str)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t n = strlen(str), cont = 0;
    const unsigned char *end = s + n;
    for (; end - s >= 8; s += 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        /* Continuation bytes (10xxxxxx): bit 7 set, bit 6 clear. */
        uint64_t c = (w & ~(w << 1) & HIGH_BITS) >> 7;       /* 0 or 1 a byte */
        cont += (size_t)((c * 0x0101010101010101ULL) >> 56); /* their sum */
    }
    for (; s < end; s++)
        cont += (*s & 0xc0) == 0x80;
    return n - cont;
}

bool
hov_utf8_valid(const char *str)
{
    const unsigned char *s = (const unsigned char *)str;
    const unsigned char *end = s + strlen(str);
    while ((s = ascii_run(s, end)) < end) {
        int more;
        uint32_t cp, min;
        if ((*s & 0xe0) == 0xc0) {
            more = 1, cp = *s & 0x1fu, min = 0x80;
        } else if ((*s & 0xf0) == 0xe0) {
            more = 2, cp = *s & 0x0fu, min = 0x800;
        } else if ((*s & 0xf8) == 0xf0) {
            more = 3, cp = *s & 0x07u, min = 0x10000;
        } else {
            return false;
        }
        s++;
        for (int i = 0; i < more; i++, s++) {
            if ((*s & 0xc0) != 0x80) /* also stops at the NUL */
                return false;
            cp = cp << 6 | (*s & 0x3fu);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
    }
    return true;
}
