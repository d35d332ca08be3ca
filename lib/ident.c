#include "handover/ident.h"

#include <openssl/evp.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handover/str.h"

/* A bad input is echoed in messages so a person can find it, but only its
 * start: the input may be a whole record pasted into the wrong field. */
#define ECHO_MAX 20

static bool
is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool
is_upper(char c)
{
    return c >= 'A' && c <= 'Z';
}

static bool
is_hex_lower(char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f');
}

static void
echo_copy(char *out, size_t outsz, const char *s)
{
    hov_echo(out, outsz, s, ECHO_MAX);
}

hov_err
hov_nhs_number_check(const char *s, bool allow_test, hov_error *err)
{
    if (s == NULL)
        s = "";
    size_t len = strlen(s);
    bool digits = len == 10;
    for (size_t i = 0; digits && i < 10; i++)
        digits = is_digit(s[i]);
    if (!digits) {
        char echo[ECHO_MAX + 4];
        echo_copy(echo, sizeof echo, s);
        return hov_fail(err, HOV_ENHSNUMBER, 0,
                        "NHS number '%s' is not 10 digits", echo);
    }

    /* Ten identical digits pass Modulus 11 but are placeholders, never
     * issued numbers (domain 4.1, Convention). */
    bool same = true;
    for (size_t i = 1; i < 10; i++)
        same = same && s[i] == s[0];
    if (same)
        return hov_fail(err, HOV_ENHSNUMBER, 0,
                        "NHS number %s is ten identical digits", s);

    int sum = 0;
    for (int i = 0; i < 9; i++)
        sum += (s[i] - '0') * (10 - i);
    int check = 11 - sum % 11;
    if (check == 11)
        check = 0;
    if (check == 10)
        return hov_fail(err, HOV_ENHSNUMBER, 0,
                        "NHS number %s has no valid check digit (its first "
                        "nine digits give 10)",
                        s);
    if (check != s[9] - '0')
        return hov_fail(err, HOV_ENHSNUMBER, 0,
                        "NHS number %s fails the Modulus 11 check (expected "
                        "check digit %d)",
                        s, check);

    /* Checked last, so a mistyped test number is still reported as a typing
     * error, which is what the person needs to fix. */
    if (!allow_test && strncmp(s, "999", 3) == 0)
        return hov_fail(err, HOV_ENHSNUMBER, 0,
                        "NHS number %s is in the 999 test range, which "
                        "allow_test_nhs_numbers forbids",
                        s);
    return HOV_OK;
}

bool
hov_ods_code_valid(const char *s)
{
    if (s == NULL)
        return false;
    size_t n = 0;
    for (; s[n] != '\0'; n++)
        if (n >= 9 || !(is_upper(s[n]) || is_digit(s[n])))
            return false;
    return n >= 1;
}

bool
hov_org_code_valid(const char *s)
{
    if (s == NULL)
        return false;
    if (strncmp(s, "local:", 6) != 0)
        return hov_ods_code_valid(s);
    const char *p = s + 6;
    size_t n = 0;
    for (; p[n] != '\0'; n++) {
        char c = p[n];
        bool ok =
            is_upper(c) || (c >= 'a' && c <= 'z') || is_digit(c) || c == '-';
        if (n >= 32 || !ok)
            return false;
    }
    return n >= 1;
}

bool
hov_postcode_valid(const char *s)
{
    if (s == NULL)
        return false;
    size_t len = strlen(s);
    /* The inward code is always the last three characters, digit letter
     * letter; what precedes it (less an optional space) is the outward
     * code. */
    if (len < 5 || len > 8)
        return false;
    const char *in = s + len - 3;
    if (!is_digit(in[0]) || !is_upper(in[1]) || !is_upper(in[2]))
        return false;
    size_t out_len = len - 3;
    if (s[out_len - 1] == ' ')
        out_len--;
    if (out_len < 2 || out_len > 4)
        return false;
    /* Outward shapes: A9, A99, A9A, AA9, AA99, AA9A. */
    size_t i = 0;
    if (!is_upper(s[i++]))
        return false;
    if (is_upper(s[i]))
        i++;
    if (i >= out_len || !is_digit(s[i++]))
        return false;
    if (i < out_len && (is_digit(s[i]) || is_upper(s[i])))
        i++;
    return i == out_len;
}

bool
hov_uuid_valid(const char *s)
{
    if (s == NULL)
        return false;
    for (int i = 0; i < 36; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !is_hex_lower(s[i]))
            return false; /* also stops at a NUL before 36 */
    }
    return s[36] == '\0';
}

void
hov_uuid_v4(char out[37])
{
    /* sodium_init is idempotent and thread-safe; 1 means "already done". */
    if (sodium_init() < 0) {
        fprintf(stderr, "handover: libsodium initialisation failed; "
                        "no random source for event ids\n");
        abort();
    }
    unsigned char b[16];
    randombytes_buf(b, sizeof b);
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 */
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* RFC 9562 variant */
    static const char hex[] = "0123456789abcdef";
    size_t n = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[n++] = '-';
        out[n++] = hex[b[i] >> 4];
        out[n++] = hex[b[i] & 0x0f];
    }
    out[n] = '\0';
}

static int
hex_val(char c)
{
    if (is_digit(c))
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static void
uuid_format(const unsigned char u[16], char out[37])
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (size_t i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[u[i] >> 4];
        out[o++] = hex[u[i] & 15];
    }
    out[o] = '\0';
}

hov_err
hov_uuid_v5(const char *ns, const void *name, size_t name_len, char out[37],
            hov_error *err)
{
    unsigned char nsb[16];
    size_t n = 0;
    for (const char *p = ns; p != NULL && *p != '\0' && n < 32; p++) {
        if (*p == '-')
            continue;
        int v = hex_val(*p);
        if (v < 0)
            break;
        if (n % 2 == 0)
            nsb[n / 2] = (unsigned char)(v << 4);
        else
            nsb[n / 2] |= (unsigned char)v;
        n++;
    }
    if (n != 32 || strlen(ns) != 36)
        return hov_fail(err, HOV_EINVAL, 0,
                        "UUID namespace is not a UUID in 8-4-4-4-12 form");

    /* RFC 9562 5.5: SHA-1 over namespace then name; SHA-1 is what the
     * standard names, not a security choice here (ids are not secrets).
     * libsodium has no SHA-1, so this one hash comes from libcrypto. */
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx != NULL && EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) == 1 &&
             EVP_DigestUpdate(ctx, nsb, sizeof nsb) == 1 &&
             EVP_DigestUpdate(ctx, name, name_len) == 1 &&
             EVP_DigestFinal_ex(ctx, md, &mdlen) == 1 && mdlen >= 16;
    EVP_MD_CTX_free(ctx);
    if (!ok)
        return hov_fail(err, HOV_ESYS, 0, "SHA-1 for a version 5 UUID failed");
    md[6] = (unsigned char)((md[6] & 0x0f) | 0x50);
    md[8] = (unsigned char)((md[8] & 0x3f) | 0x80);
    uuid_format(md, out);
    return HOV_OK;
}

char *
hov_postcode_normalise(const char *s)
{
    size_t n = strlen(s);
    char *out = malloc(n + 2);
    if (out == NULL)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (ch == ' ' || ch == '\t')
            continue;
        out[k++] = ch >= 'a' && ch <= 'z' ? (char)(ch - 'a' + 'A') : ch;
    }
    out[k] = '\0';
    /* The inward code is always the last three characters. */
    if (k >= 5) {
        memmove(out + k - 2, out + k - 3, 4);
        out[k - 3] = ' ';
    }
    return out;
}
