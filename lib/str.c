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

size_t
hov_utf8_chars(const char *s)
{
    size_t n = 0;
    for (; *s != '\0'; s++)
        if (((unsigned char)*s & 0xc0) != 0x80)
            n++;
    return n;
}

bool
hov_utf8_valid(const char *str)
{
    const unsigned char *s = (const unsigned char *)str;
    while (*s != 0) {
        if (*s < 0x80) {
            s++;
            continue;
        }
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
