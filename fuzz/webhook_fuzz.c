/* libFuzzer target for the voluntary adapter's signed webhooks
 * (adapters/voluntary/webhook.h).
 *
 * Input layout: four length bytes, then the parts they measure, then the
 * body (whatever is left):
 *   data[0]  length of the Handover-Timestamp value
 *   data[1]  length of the Handover-Signature value
 *   data[2]  length of the Content-Type value
 *   data[3]  bits 0-5: length of the Idempotency-Key; bits 6-7: the sender
 * A part longer than what is left is cut short; each part stops at its
 * first NUL, as a header value would. The same bytes serve as a webhook
 * body for webhook_outcome_parse, the signed bytes for webhook_sign and
 * webhook_verify, and the headers for the parsers of their own.
 * Beyond the sanitisers, the target checks properties that must hold for
 * any input, and traps when one does not:
 *  - webhook_timestamp_parse agrees with a reference (1 to 12 digits);
 *  - webhook_content_type_ok accepts only values that start with
 *    application/json, and always accepts the bare type in any case;
 *  - a body signed with webhook_sign verifies, also as one element of a
 *    list and in uppercase hex; changing one byte of the body, one byte of
 *    the timestamp, one bit of the key or one digit of the signature makes
 *    it fail; an empty or NULL header never verifies;
 *  - webhook_outcome_parse: 0, 400, 422 or 503, a reason on failure; on
 *    success a valid event id equal to the version 5 UUID over
 *    webhook|sender|key (domain 3.8), the sender as source org, no
 *    correlation id, an event that packs and unpacks, and canonical JSON
 *    (webhook_event_json) that parses and is the same bytes twice.
 *
 * Build: see fuzz/CMakeLists.txt (links voluntary_core); runs and figures
 * are in docs/fuzzing.md.
 */
#include <ctype.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "handover/ident.h"
#include "webhook.h"

#define CHECK(cond)                                                            \
    do {                                                                       \
        if (!(cond))                                                           \
            __builtin_trap();                                                  \
    } while (0)

static const char *const senders[4] = {"local:VCS-0002", "local:VCS-0003",
                                       "8ZZ99", ""};

static const uint8_t key[32] = "handover-fuzz-shared-secret-0001";

/* The next part of the input, n bytes at most, up to its first NUL, as a
 * fresh string. */
static char *
take(const uint8_t **p, size_t *left, size_t n)
{
    if (n > *left)
        n = *left;
    const uint8_t *nul = memchr(*p, '\0', n);
    size_t used = nul != NULL ? (size_t)(nul - *p) : n;
    char *s = malloc(used + 1);
    if (s != NULL) {
        memcpy(s, *p, used);
        s[used] = '\0';
    }
    *p += n;
    *left -= n;
    return s;
}

static void
check_timestamp(const char *ts)
{
    size_t n = strlen(ts);
    bool digits = n >= 1 && n <= 12;
    int64_t want = 0;
    for (size_t i = 0; digits && i < n; i++) {
        if (ts[i] < '0' || ts[i] > '9')
            digits = false;
        else
            want = want * 10 + (ts[i] - '0');
    }
    int64_t got = -1;
    bool ok = webhook_timestamp_parse(ts, &got);
    CHECK(ok == digits);
    if (ok) {
        CHECK(got == want && got >= 0);
        CHECK(webhook_timestamp_fresh(got, got, 0));
    }
}

static void
check_content_type(const char *ct)
{
    bool ok = webhook_content_type_ok(ct);
    if (ok)
        CHECK(strncasecmp(ct, "application/json", 16) == 0);
    if (strcasecmp(ct, "application/json") == 0)
        CHECK(ok);
    CHECK(!webhook_content_type_ok(NULL));
}

/* Does header hold hex (lowercase, 64 digits) in either case? */
static bool
holds_hex(const char *header, const char *hex)
{
    size_t n = strlen(header);
    for (size_t i = 0; i + 64 <= n; i++)
        if (strncasecmp(header + i, hex, 64) == 0)
            return true;
    return false;
}

/* Sign and verify; every one-place change must break the signature. */
static void
check_signature(const char *ts, const uint8_t *body, size_t len,
                const char *header, uint8_t salt)
{
    char sig[WEBHOOK_SIG_CAP];
    CHECK(webhook_sign(key, sizeof key, ts, body, len, sig));
    CHECK(strlen(sig) == 67 && strncmp(sig, "v1=", 3) == 0);
    CHECK(webhook_verify(key, sizeof key, ts, body, len, sig));
    CHECK(!webhook_verify(key, sizeof key, ts, body, len, NULL));
    CHECK(!webhook_verify(key, sizeof key, ts, body, len, ""));

    /* As one element of a list, with blanks, after a foreign element. */
    char list[WEBHOOK_SIG_CAP + 32];
    snprintf(list, sizeof list, "v0=abc, \t%s ,v2=x", sig);
    CHECK(webhook_verify(key, sizeof key, ts, body, len, list));
    char upper[WEBHOOK_SIG_CAP];
    memcpy(upper, sig, sizeof upper);
    for (size_t i = 3; upper[i] != '\0'; i++)
        upper[i] = (char)toupper((unsigned char)upper[i]);
    CHECK(webhook_verify(key, sizeof key, ts, body, len, upper));

    /* One digit of the signature changed (to another hex digit). */
    char bad[WEBHOOK_SIG_CAP];
    memcpy(bad, sig, sizeof bad);
    size_t at = 3 + salt % 64;
    bad[at] = bad[at] == '0' ? '1' : '0';
    CHECK(!webhook_verify(key, sizeof key, ts, body, len, bad));
    /* Cut short by one digit: not 64 hex digits, matches nothing. */
    bad[at] = sig[at];
    bad[66] = '\0';
    CHECK(!webhook_verify(key, sizeof key, ts, body, len, bad));

    /* One byte of the body changed. */
    if (len > 0) {
        uint8_t *copy = malloc(len);
        if (copy != NULL) {
            memcpy(copy, body, len);
            copy[salt % len] ^= (uint8_t)(1u << (salt % 8));
            CHECK(!webhook_verify(key, sizeof key, ts, copy, len, sig));
            free(copy);
        }
    }
    /* One byte more or less of the body. */
    if (len > 0)
        CHECK(!webhook_verify(key, sizeof key, ts, body, len - 1, sig));
    /* One byte of the timestamp changed (to a non-NUL byte). */
    size_t tn = strlen(ts);
    if (tn > 0) {
        char *t2 = strdup(ts);
        if (t2 != NULL) {
            size_t i = salt % tn;
            t2[i] = t2[i] == 'x' ? 'y' : 'x';
            CHECK(!webhook_verify(key, sizeof key, t2, body, len, sig));
            free(t2);
        }
    }
    /* One bit of the key changed. */
    uint8_t k2[sizeof key];
    memcpy(k2, key, sizeof key);
    k2[salt % sizeof k2] ^= 1;
    CHECK(!webhook_verify(k2, sizeof k2, ts, body, len, sig));

    /* Whatever header the input carries: no crash, and a match only when
     * it holds the right MAC (checked by re-signing: a chance match on
     * fuzzed bytes is 2^-256). */
    if (webhook_verify(key, sizeof key, ts, body, len, header))
        CHECK(holds_hex(header, sig + 3));
}

static void
check_outcome(const uint8_t *body, size_t len, const char *sender,
              const char *idem, int64_t ts_s)
{
    webhook_in in;
    char why[256] = "";
    int rc = webhook_outcome_parse(body, len, sender, idem, ts_s, &in, why,
                                   sizeof why);
    CHECK(rc == 0 || rc == WEBHOOK_BAD_JSON || rc == WEBHOOK_BAD_SCHEMA ||
          rc == 503);
    if (rc != 0) {
        CHECK(why[0] != '\0' && memchr(why, '\0', sizeof why) != NULL);
        return;
    }
    const Handover__Event *ev = &in.ev;
    CHECK(hov_uuid_valid(ev->event_id));
    CHECK(ev->correlation_id == NULL || ev->correlation_id[0] == '\0');
    CHECK(ev->source != NULL && ev->source->org != NULL);
    CHECK(strcmp(ev->source->org->code, sender) == 0);

    char name[256], id[37];
    int nl = snprintf(name, sizeof name, "webhook|%s|%s", sender, idem);
    hov_error err = {0};
    if (nl > 0 && (size_t)nl < sizeof name &&
        hov_uuid_v5(HOV_EVENT_ID_NS, name, (size_t)nl, id, &err) == HOV_OK)
        CHECK(strcmp(id, ev->event_id) == 0);

    size_t plen = handover__event__get_packed_size(ev);
    uint8_t *packed = malloc(plen > 0 ? plen : 1);
    if (packed != NULL) {
        CHECK(handover__event__pack(ev, packed) == plen);
        Handover__Event *back = handover__event__unpack(NULL, plen, packed);
        CHECK(back != NULL);
        CHECK(strcmp(back->event_id, ev->event_id) == 0);
        handover__event__free_unpacked(back, NULL);
        free(packed);
    }

    char *a = NULL, *b = NULL;
    size_t alen = 0, blen = 0;
    int ja = webhook_event_json(ev, &a, &alen, why, sizeof why);
    int jb = webhook_event_json(ev, &b, &blen, why, sizeof why);
    CHECK(ja == 0 || ja == -2);
    if (ja == 0 && jb == 0) {
        CHECK(alen == blen && memcmp(a, b, alen) == 0);
        json_error_t je;
        json_t *doc = json_loadb(a, alen, JSON_REJECT_DUPLICATES, &je);
        CHECK(doc != NULL && json_is_object(doc));
        json_decref(doc);
    }
    free(a);
    free(b);
    webhook_in_free(&in);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4)
        return 0;
    const uint8_t *p = data + 4;
    size_t left = size - 4;
    char *ts = take(&p, &left, data[0]);
    char *sig = take(&p, &left, data[1]);
    char *ct = take(&p, &left, data[2]);
    char *idem = take(&p, &left, data[3] & 0x3f);
    const char *sender = senders[data[3] >> 6];
    if (ts != NULL && sig != NULL && ct != NULL && idem != NULL) {
        int64_t ts_s = 1742211067;
        check_timestamp(ts);
        (void)webhook_timestamp_parse(ts, &ts_s);
        check_content_type(ct);
        check_signature(ts, p, left, sig, data[1] ^ data[0]);
        check_outcome(p, left, sender, idem, ts_s);
    }
    free(ts);
    free(sig);
    free(ct);
    free(idem);
    return 0;
}
