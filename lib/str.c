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
