/* UTF-8 checks of lib/str.c: the word-at-a-time fast paths against a plain
 * byte-at-a-time reading, on fixed cases and on many random strings whose
 * multi-byte sequences fall across every 8-byte boundary. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "handover/str.h"

/* The reference: RFC 3629 read one byte at a time. */
static bool
ref_valid(const unsigned char *s, size_t *chars)
{
    size_t n = 0;
    while (*s) {
        n++;
        if (*s < 0x80) {
            s++;
            continue;
        }
        int more;
        uint32_t cp, min;
        if ((*s & 0xe0) == 0xc0)
            more = 1, cp = *s & 0x1fu, min = 0x80;
        else if ((*s & 0xf0) == 0xe0)
            more = 2, cp = *s & 0x0fu, min = 0x800;
        else if ((*s & 0xf8) == 0xf0)
            more = 3, cp = *s & 0x07u, min = 0x10000;
        else
            return false;
        s++;
        for (int i = 0; i < more; i++, s++) {
            if ((*s & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (*s & 0x3fu);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
    }
    *chars = n;
    return true;
}

static size_t
ref_chars(const unsigned char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += (*s & 0xc0) != 0x80;
    return n;
}

TestSuite(str, .timeout = 20);

Test(str, utf8_fixed_cases)
{
    struct {
        const char *s;
        bool valid;
        size_t chars;
    } cases[] = {
        {"", true, 0},
        {"plain ASCII, longer than eight bytes", true, 36},
        {"Bj\xc3\xb6rk", true, 5},
        {"\xe2\x82\xac 12", true, 4},
        {"1234567\xc3\xa9", true, 8},            /* straddles the boundary */
        {"12345678\xf0\x9f\x98\x80x", true, 10}, /* 4 bytes after a word */
        {"1234567\xc3", false, 0},               /* truncated at the end */
        {"\xc0\xaf", false, 0},                  /* overlong '/' */
        {"\xed\xa0\x80", false, 0},              /* a surrogate */
        {"\xf4\x90\x80\x80", false, 0},          /* above U+10FFFF */
        {"abcdefgh\x80", false, 0},              /* a lone continuation */
        {"\xff", false, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cr_assert_eq(hov_utf8_valid(cases[i].s), cases[i].valid, "case %zu", i);
        if (cases[i].valid)
            cr_assert_eq(hov_utf8_chars(cases[i].s), cases[i].chars, "case %zu",
                         i);
    }
}

Test(str, utf8_agrees_with_the_byte_reading)
{
    static const char *pieces[] = {
        "a",    "bcdefgh", "\xc3\xa9",     "\xe2\x82\xac", "\xf0\x9f\x98\x80",
        "\x80", "\xc3",    "\xed\xa0\x80", "\xff",         " "};
    unsigned seed = 12345;
    char buf[128];
    size_t valid = 0;
    for (int round = 0; round < 20000; round++) {
        size_t n = 0;
        int parts = (int)(rand_r(&seed) % 12);
        buf[0] = '\0';
        for (int k = 0; k < parts; k++) {
            /* Mostly valid pieces, so most strings are valid. */
            size_t which = (size_t)rand_r(&seed) % 100;
            const char *p = pieces[which < 90 ? which % 5 : 5 + which % 5];
            size_t l = strlen(p);
            if (n + l + 1 > sizeof buf)
                break;
            memcpy(buf + n, p, l + 1);
            n += l;
        }
        size_t chars = 0;
        bool ok = ref_valid((const unsigned char *)buf, &chars);
        cr_assert_eq(hov_utf8_valid(buf), ok, "round %d", round);
        cr_assert_eq(hov_utf8_chars(buf), ref_chars((const unsigned char *)buf),
                     "round %d", round);
        if (ok) {
            cr_assert_eq(hov_utf8_chars(buf), chars, "round %d", round);
            valid++;
        }
    }
    cr_assert_gt(valid, 1000, "the valid strings were tried too");
    cr_assert_lt(valid, 19000, "and the invalid ones");
}

Test(str, stradd_cuts_and_terminates)
{
    char b[12];
    size_t n = hov_stradd(b, sizeof b, 0, "to ");
    n = hov_stradd(b, sizeof b, n, "RZZ40");
    n = hov_stradd_u(b, sizeof b, n, 0);
    cr_assert_str_eq(b, "to RZZ400");
    cr_assert_eq(n, 9);
    n = hov_stradd_u(b, sizeof b, n, 18446744073709551615ULL);
    cr_assert_eq(n, sizeof b - 1, "cut to fit");
    cr_assert_str_eq(b, "to RZZ40018");
    n = hov_stradd(b, sizeof b, n, "more");
    cr_assert_eq(n, sizeof b - 1, "a full buffer stays full");
    cr_assert_str_eq(b, "to RZZ40018");
}
