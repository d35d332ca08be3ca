/* libFuzzer target for the HL7 v2 module (adapters/nursing/hl7.h).
 *
 * Each input is one MLLP frame body. It is parsed twice (strict, and with
 * accept_lf and an 8859/1 default), and every part of every segment is
 * read, decoded and tried as a date and time. Then the ACK is built and
 * read back, and decoded text is rebuilt into a message of its own. Beyond
 * the sanitisers, the target checks properties that must hold for any
 * input, and traps when one does not:
 *  - hl7_parse: 0 gives a message; -1 gives one exactly when the MSH was
 *    readable (an AE), none for an AR; the error is always filled;
 *  - every ACK parses cleanly, reads as an ACK with the code it was built
 *    with, and echoes MSH-10 when that decodes;
 *  - decoded text written with the builder decodes to the same text
 *    (CR aside, which the builder drops).
 *
 * Build (see the report in the commit): clang -g -O1
 * -fsanitize=fuzzer,address,undefined -Iinclude -Ilib -Iadapters/nursing
 * fuzz/hl7_fuzz.c adapters/nursing/hl7.c lib/timeutil.c
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hl7.h"

/* Bounds that keep one input's walk linear in its size: a field of
 * thousands of repetitions is still read, but not every one decoded. */
#define MAX_REPS        16
#define MAX_COMPS       24
#define MAX_SUBS        8
#define MAX_ROUND_TRIPS 32

#define CHECK(cond)                                                            \
    do {                                                                       \
        if (!(cond))                                                           \
            __builtin_trap();                                                  \
    } while (0)

typedef struct walk_state {
    unsigned round_trips;
} walk_state;

/* Write text into NTE-3 of a new message with m's delimiters, parse it
 * and decode it again: the builder's escaping and the decoder must agree. */
static void
round_trip(const hl7_msg *m, const char *text)
{
    hl7_builder b;
    hl7b_init(&b, hl7_msg_delims(m));
    hl7b_seg(&b, "MSH");
    hl7b_put(&b, 3, 1, "FUZZ");
    hl7b_put(&b, 12, 1, "2.4");
    hl7b_put(&b, 18, 1, "UNICODE UTF-8");
    hl7b_seg(&b, "NTE");
    hl7b_put(&b, 1, 1, "1");
    hl7b_put(&b, 3, 1, text);
    uint8_t *out;
    size_t n;
    if (hl7b_finish(&b, &out, &n) != 0)
        return;
    hl7_msg *r = NULL;
    hl7_error err;
    CHECK(hl7_parse(out, n, NULL, &r, &err) == 0);
    CHECK(hl7_nsegs(r) == 2);
    size_t nte = hl7_find(r, 0, "NTE");
    CHECK(nte == 1);
    char why[128];
    char *back =
        hl7_decode(r, hl7_get(r, nte, 3, 0, 0, 0), NULL, why, sizeof why);
    CHECK(back != NULL);
    const char *p = text, *q = back;
    for (;; p++) {
        if (*p == '\r')
            continue;
        CHECK(*p == *q);
        if (*p == '\0')
            break;
        q++;
    }
    free(back);
    hl7_msg_free(r);
    free(out);
}

static void
try_value(const hl7_msg *m, hl7_str s, walk_state *w)
{
    char why[256];
    bool warned = false;
    char *t = hl7_decode(m, s, &warned, why, sizeof why);
    if (t != NULL) {
        CHECK(memchr(t, '\0', strlen(t) + 1) == t + strlen(t));
        if (w->round_trips < MAX_ROUND_TRIPS && strlen(t) < 4096) {
            w->round_trips++;
            round_trip(m, t);
        }
        free(t);
    } else {
        CHECK(why[0] != '\0');
    }
    (void)hl7_is_delete(s);
    (void)hl7_eq(s, "NH");
    if (s.n > 0 && s.n <= 24) {
        char out[32], date[11];
        bool amb;
        if (hl7_ts_to_rfc3339(s, out, &amb, why, sizeof why))
            CHECK(strlen(out) == 24 && out[23] == 'Z');
        if (hl7_dt_to_date(s, date, why, sizeof why))
            CHECK(strlen(date) == 10);
    }
}

static void
walk(const hl7_msg *m)
{
    walk_state w = {0};
    size_t nsegs = hl7_nsegs(m);
    for (size_t i = 0; i < nsegs; i++) {
        const char *id = hl7_seg_id(m, i);
        CHECK(strlen(id) == 0 || strlen(id) == 3);
        CHECK(hl7_seg_seq(m, i) >= 1);
        CHECK(hl7_find(m, i, id) <= i);
        unsigned nf = hl7_nfields(m, i);
        for (unsigned f = 0; f <= nf + 1; f++) {
            unsigned nr = hl7_nreps(m, i, f);
            hl7_str whole = hl7_get(m, i, f, 0, 0, 0);
            CHECK(whole.p != NULL);
            try_value(m, whole, &w);
            for (unsigned r = 0; r < nr && r < MAX_REPS; r++) {
                hl7_str rep = hl7_get(m, i, f, r, 0, 0);
                for (unsigned c = 1; c <= MAX_COMPS; c++) {
                    hl7_str comp = hl7_get(m, i, f, r, c, 0);
                    CHECK(comp.p != NULL && comp.n <= rep.n);
                    if (comp.n == 0 && c > 1 &&
                        (c > 8 || hl7_get(m, i, f, r, c + 1, 0).n == 0))
                        break;
                    try_value(m, comp, &w);
                    for (unsigned s = 1; s <= MAX_SUBS; s++) {
                        hl7_str sub = hl7_get(m, i, f, r, c, s);
                        CHECK(sub.n <= comp.n);
                        if (sub.n == 0)
                            break;
                        if (sub.n != comp.n)
                            try_value(m, sub, &w);
                    }
                }
            }
        }
    }
    size_t len;
    const uint8_t *b = hl7_msg_bytes(m, &len);
    CHECK(b != NULL);
    (void)hl7_msg_warnings(m);
    CHECK(hl7_msg_enc_count(m) >= 4);
}

/* Build the ACK for m (or for no MSH), parse it, read it back. */
static void
ack_round_trip(const hl7_msg *m, const hl7_error *err, int rc)
{
    static const char *codes[] = {"AA", "AE", "AR", "CA", "CE", "CR"};
    size_t pick = ((rc != 0 ? (size_t)err->code : 0) + hl7_nsegs(m)) % 6;
    hl7_error errs[2];
    size_t nerr = 0;
    if (rc != 0)
        errs[nerr++] = *err;
    hl7_fail(&errs[nerr++], 'E', 102, "PID", 1, 5, 2,
             "PID-5: test | text ^ with ~ delimiters \\ & \xC3\xA9");
    hl7_ack_opts o = {
        .code = codes[pick],
        .text = rc != 0 ? err->text : "accepted\nwith a second line",
        .errs = errs,
        .nerr = nerr,
        .severity = pick == 0 ? 'W' : 0,
        .control_id = "0123456789abcdef0123",
        .now_ms = 1741951861000ULL,
    };
    uint8_t *ack;
    size_t n;
    if (hl7_ack_build(m, &o, &ack, &n) != 0)
        return;
    hl7_msg *a = NULL;
    hl7_error aerr;
    CHECK(hl7_parse(ack, n, NULL, &a, &aerr) == 0);
    CHECK(hl7_msg_warnings(a) == 0);
    hl7_ack_info info;
    CHECK(hl7_ack_read(a, &info, &aerr) == 0);
    CHECK(strcmp(info.code, codes[pick]) == 0);
    /* Whatever the delimiters, what Handover wrote reads back intact;
     * unless the ACK had to echo a character set this module cannot
     * decode (the original's bytes, copied into MSH-5 or MSA-2, are in
     * it), and then decoding refuses every value. */
    char why[128] = "";
    char *ts = hl7_decode(a, hl7_get(a, 0, 7, 0, 0, 0), NULL, why, sizeof why);
    bool unsupported = strncmp(why, "unsupported character set", 25) == 0;
    CHECK(unsupported ||
          (ts != NULL && strcmp(ts, "20250314113101+0000") == 0));
    free(ts);
    CHECK(hl7_eq(hl7_comp(a, 0, 9, 1), "ACK"));
    char *id = hl7_decode(a, hl7_get(a, 0, 10, 0, 0, 0), NULL, NULL, 0);
    CHECK(unsupported || (id != NULL && strcmp(id, o.control_id) == 0));
    free(id);
    if (m != NULL) {
        /* MSA-2 is MSH-10's raw bytes. An escape sequence in it (\XE9\)
         * means what the partner's character set says, which an all-ASCII
         * ACK does not declare: compare only ids without one. */
        hl7_str raw = hl7_get(m, 0, 10, 0, 0, 0);
        char *want = hl7_decode(m, raw, NULL, NULL, 0);
        if (want != NULL && strlen(want) < sizeof info.control &&
            memchr(raw.p, hl7_msg_delims(m)->esc, raw.n) == NULL)
            CHECK(strcmp(info.control, want) == 0);
        free(want);
    } else {
        CHECK(info.control[0] == '\0');
    }
    hl7_msg_free(a);
    free(ack);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    for (int pass = 0; pass < 2; pass++) {
        hl7_parse_opts opts = {
            .accept_lf = pass == 1,
            .default_charset = pass == 1 ? "8859/1" : NULL,
        };
        hl7_msg *m = (hl7_msg *)&opts; /* must be overwritten */
        hl7_error err;
        memset(&err, 0x5A, sizeof err);
        int rc = hl7_parse(data, size, &opts, &m, &err);
        CHECK(rc == 0 || rc == -1 || rc == -2);
        if (rc == 0) {
            CHECK(m != NULL);
        } else {
            CHECK(memchr(err.text, '\0', sizeof err.text) != NULL);
            CHECK(err.ack == 'E' || err.ack == 'R');
            CHECK(rc != -2 || m == NULL);
            /* An AR (no usable MSH or a batch) leaves nothing to echo;
             * an AE (terminators) always has its MSH. */
            CHECK((err.ack == 'R') == (m == NULL));
        }
        if (m != NULL)
            walk(m);
        ack_round_trip(m, &err, rc);
        if (m != NULL) {
            hl7_ack_info info;
            hl7_error aerr;
            if (hl7_ack_read(m, &info, &aerr) == 0)
                CHECK(strlen(info.code) == 2);
        }
        hl7_msg_free(m);
    }
    return 0;
}
