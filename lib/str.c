#include "handover/str.h"

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
