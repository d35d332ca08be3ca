/* MLLP framing (domain 5.7): the sample byte streams in every split, and
 * each framer rule on crafted input. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mllp.h"

#ifndef HANDOVER_SHARED_DIR
#define HANDOVER_SHARED_DIR HANDOVER_SOURCE_DIR "/../shared"
#endif

#define SAMPLES HANDOVER_SHARED_DIR "/samples/hl7"

/* Random splits per sample: enough to put a cut at every special byte of
 * the small crafted streams, and cheap under the sanitisers. */
#define SEEDS 40

/* ---------- recording events ---------- */

typedef struct rec_event {
    mllp_kind kind;
    uint8_t *body; /* a copy; NULL unless FRAME or KEEPALIVE */
    size_t len;
    size_t total;
    unsigned flags;
    uint8_t bad_byte;
} rec_event;

typedef struct recorder {
    rec_event *ev;
    size_t n;
    size_t cap;
    mllp_framer *f;     /* for checks made from inside the callback */
    int stop_rc;        /* returned for the kinds in stop_mask */
    unsigned stop_mask; /* 1u << kind */
} recorder;

static void
rec_init(recorder *r, mllp_framer *f)
{
    memset(r, 0, sizeof *r);
    r->f = f;
}

static void
rec_fini(recorder *r)
{
    for (size_t i = 0; i < r->n; i++)
        free(r->ev[i].body);
    free(r->ev);
    memset(r, 0, sizeof *r);
}

static int
rec_cb(void *user, const mllp_event *ev)
{
    recorder *r = user;
    if (r->n == r->cap) {
        size_t ncap = r->cap > 0 ? r->cap * 2 : 8;
        rec_event *ne = realloc(r->ev, ncap * sizeof *ne);
        cr_assert_not_null(ne, "out of memory recording events");
        r->ev = ne;
        r->cap = ncap;
    }
    rec_event *e = &r->ev[r->n++];
    memset(e, 0, sizeof *e);
    e->kind = ev->kind;
    e->len = ev->len;
    e->total = ev->total;
    e->flags = ev->flags;
    e->bad_byte = ev->bad_byte;
    if (ev->kind == MLLP_FRAME || ev->kind == MLLP_KEEPALIVE) {
        cr_assert_not_null(ev->body, "frame event without a body");
        e->body = malloc(ev->len > 0 ? ev->len : 1);
        cr_assert_not_null(e->body, "out of memory copying a body");
        memcpy(e->body, ev->body, ev->len);
    }
    if (r->stop_mask & (1u << ev->kind))
        return r->stop_rc;
    return 0;
}

/* ---------- feeding ---------- */

typedef enum feed_mode {
    FEED_WHOLE,    /* one mllp_feed */
    FEED_BYTES,    /* one byte per mllp_feed */
    FEED_RANDOM,   /* chunks of random size, empty ones included */
    FEED_STOPPING, /* random chunks; the callback stops on every event */
} feed_mode;

static const char *const mode_names[] = {"whole", "byte by byte", "random",
                                         "stopping"};

static uint32_t
xorshift32(uint32_t *s)
{
    uint32_t x = *s;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *s = x;
}

/* Feed d[0..n) to f as mode says, recording into r. A stopping callback
 * is resumed with mllp_feed(f, NULL, 0) until everything is consumed, as a
 * server does once its ACK is written. */
static void
feed_stream(mllp_framer *f, recorder *r, const uint8_t *d, size_t n,
            feed_mode mode, uint32_t seed)
{
    uint32_t s = seed * 2654435761u + 1;
    if (mode == FEED_STOPPING) {
        r->stop_rc = 3;
        r->stop_mask = ~0u;
    }
    size_t i = 0;
    while (i < n) {
        size_t k = n - i;
        if (mode == FEED_BYTES)
            k = 1;
        else if (mode != FEED_WHOLE)
            k = xorshift32(&s) % 300; /* 0 sometimes: a no-op feed */
        if (k > n - i)
            k = n - i;
        int rc = mllp_feed(f, d + i, k, rec_cb, r);
        i += k;
        if (mode != FEED_STOPPING) {
            cr_assert_eq(rc, 0, "mllp_feed returned %d (%s)", rc,
                         mode_names[mode]);
            cr_assert_eq(mllp_pending(f), 0);
            continue;
        }
        /* Each resume makes progress, so this ends. */
        while (rc == 3)
            rc = mllp_feed(f, NULL, 0, rec_cb, r);
        cr_assert_eq(rc, 0, "resume returned %d", rc);
        cr_assert_eq(mllp_pending(f), 0);
    }
}

static void
finish_stream(mllp_framer *f, recorder *r)
{
    int rc = mllp_finish(f, rec_cb, r);
    if (r->stop_mask != 0 && rc == r->stop_rc)
        rc = 0; /* the last event of the stream stopped it: nothing left */
    cr_assert_eq(rc, 0, "mllp_finish returned %d", rc);
    cr_assert_not(mllp_in_frame(f));
    cr_assert_eq(mllp_pending(f), 0);
}

/* ---------- expectations ---------- */

typedef struct expect {
    mllp_kind kind;
    const uint8_t *body; /* NULL: do not compare (non-frame events) */
    size_t len;
    size_t total; /* FRAME: whole body length */
    unsigned flags;
    uint8_t bad_byte;
} expect;

static const char *
kind_name(mllp_kind k)
{
    switch (k) {
    case MLLP_FRAME:
        return "FRAME";
    case MLLP_KEEPALIVE:
        return "KEEPALIVE";
    case MLLP_JUNK:
        return "JUNK";
    case MLLP_RESTART:
        return "RESTART";
    case MLLP_TRUNCATED:
        return "TRUNCATED";
    case MLLP_ERR_CAP:
        return "ERR_CAP";
    }
    return "?";
}

static void
check_events(const recorder *r, size_t from, const expect *e, size_t ne,
             const char *what)
{
    cr_assert_eq(r->n - from, ne, "%s: %zu events, expected %zu", what,
                 r->n - from, ne);
    for (size_t i = 0; i < ne; i++) {
        const rec_event *g = &r->ev[from + i];
        cr_assert_eq(g->kind, e[i].kind, "%s: event %zu is %s, expected %s",
                     what, i, kind_name(g->kind), kind_name(e[i].kind));
        cr_assert_eq(g->len, e[i].len, "%s: event %zu (%s) len %zu, not %zu",
                     what, i, kind_name(g->kind), g->len, e[i].len);
        cr_assert_eq(g->flags, e[i].flags, "%s: event %zu flags %#x, not %#x",
                     what, i, g->flags, e[i].flags);
        if (e[i].kind == MLLP_FRAME || e[i].kind == MLLP_KEEPALIVE) {
            cr_assert_eq(g->total, e[i].total,
                         "%s: event %zu total %zu, not %zu", what, i, g->total,
                         e[i].total);
            cr_assert_eq(g->bad_byte, e[i].bad_byte,
                         "%s: event %zu bad byte %#x", what, i, g->bad_byte);
        }
        if (e[i].body != NULL)
            cr_assert(memcmp(g->body, e[i].body, e[i].len) == 0,
                      "%s: event %zu body differs", what, i);
    }
}

/* Run d through a fresh framer in every mode and compare the events from
 * mllp_feed with fe and those from mllp_finish with xe. */
static void
check_stream(const uint8_t *d, size_t n, size_t max_frame, size_t hard_cap,
             const expect *fe, size_t nfe, const expect *xe, size_t nxe,
             bool in_frame_at_end, const char *name)
{
    for (int mode = FEED_WHOLE; mode <= FEED_STOPPING; mode++) {
        int runs = mode == FEED_RANDOM || mode == FEED_STOPPING ? SEEDS : 1;
        for (int seed = 1; seed <= runs; seed++) {
            char what[160];
            snprintf(what, sizeof what, "%s, %s, seed %d", name,
                     mode_names[mode], seed);
            mllp_framer *f = mllp_framer_new(max_frame, hard_cap);
            cr_assert_not_null(f);
            recorder r;
            rec_init(&r, f);
            feed_stream(f, &r, d, n, (feed_mode)mode, (uint32_t)seed);
            check_events(&r, 0, fe, nfe, what);
            cr_assert_eq(mllp_in_frame(f), in_frame_at_end, "%s: in frame",
                         what);
            size_t before = r.n;
            finish_stream(f, &r);
            check_events(&r, before, xe, nxe, what);
            rec_fini(&r);
            mllp_framer_free(f);
        }
    }
}

/* ---------- files ---------- */

static uint8_t *
slurp(const char *rel, size_t *len)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", SAMPLES, rel);
    FILE *fp = fopen(path, "rb");
    cr_assert_not_null(fp, "cannot open %s", path);
    cr_assert_eq(fseek(fp, 0, SEEK_END), 0);
    long sz = ftell(fp);
    cr_assert_geq(sz, 0);
    rewind(fp);
    uint8_t *buf = malloc((size_t)sz + 1);
    cr_assert_not_null(buf);
    cr_assert_eq(fread(buf, 1, (size_t)sz, fp), (size_t)sz, "read %s", path);
    fclose(fp);
    *len = (size_t)sz;
    return buf;
}

/* ---------- the sample streams ---------- */

Test(mllp_samples, two_frames_back_to_back, .timeout = 30)
{
    size_t n, l1, l2;
    uint8_t *d = slurp("mllp/two-frames-back-to-back.mllp", &n);
    uint8_t *m1 = slurp("valid/ref-i12-social-care-assessment.hl7", &l1);
    uint8_t *m2 = slurp("valid/adt-a03-discharge-pathway1.hl7", &l2);
    const expect fe[] = {{MLLP_FRAME, m1, l1, l1, 0, 0},
                         {MLLP_FRAME, m2, l2, l2, 0, 0}};
    check_stream(d, n, 0, 0, fe, 2, NULL, 0, false, "two frames");
    free(d);
    free(m1);
    free(m2);
}

Test(mllp_samples, junk_before_start_block, .timeout = 30)
{
    size_t n, lm;
    uint8_t *d = slurp("mllp/junk-before-start-block.mllp", &n);
    uint8_t *m = slurp("valid/orm-o01-equipment-order.hl7", &lm);
    /* "GET / HTTP/1.1\r\nHost: handover\r\n\r\n": one run, reported once
     * however it arrives. */
    const size_t junk = strlen("GET / HTTP/1.1\r\nHost: handover\r\n\r\n");
    cr_assert_eq(junk, 34);
    const expect fe[] = {{MLLP_JUNK, NULL, junk, 0, 0, 0},
                         {MLLP_FRAME, m, lm, lm, 0, 0}};
    check_stream(d, n, 0, 0, fe, 2, NULL, 0, false, "junk");
    free(d);
    free(m);
}

Test(mllp_samples, no_end_block, .timeout = 30)
{
    size_t n, lm;
    uint8_t *d = slurp("mllp/no-end-block.mllp", &n);
    uint8_t *m =
        slurp("valid/ref-i12-social-prescribing-utf8-zsegments.hl7", &lm);
    cr_assert_eq(n, lm + 1);
    const expect xe[] = {{MLLP_TRUNCATED, NULL, lm, 0, 0, 0}};
    check_stream(d, n, 0, 0, NULL, 0, xe, 1, true, "no end block");
    free(d);
    free(m);
}

Test(mllp_samples, restart_mid_frame, .timeout = 30)
{
    size_t n, lm;
    uint8_t *d = slurp("mllp/restart-mid-frame.mllp", &n);
    uint8_t *m = slurp("valid/adt-a03-discharge-pathway1.hl7", &lm);
    /* The file holds 0x0B, the first 120 bytes of the ADT, then the whole
     * frame: the dropped partial body is those 120 bytes. */
    cr_assert_eq(d[0], MLLP_SB);
    cr_assert_eq(d[121], MLLP_SB);
    cr_assert(memcmp(d + 1, m, 120) == 0);
    const expect fe[] = {{MLLP_RESTART, NULL, 120, 0, 0, 0},
                         {MLLP_FRAME, m, lm, lm, 0, 0}};
    check_stream(d, n, 0, 0, fe, 2, NULL, 0, false, "restart");
    free(d);
    free(m);
}

Test(mllp_samples, end_block_without_cr, .timeout = 30)
{
    size_t n, lm;
    uint8_t *d = slurp("mllp/end-block-without-cr.mllp", &n);
    uint8_t *m = slurp("valid/omg-o19-equipment-order-v251.hl7", &lm);
    /* Nothing until the end of the stream says the CR is not coming. */
    const expect xe[] = {{MLLP_FRAME, m, lm, lm, MLLP_F_NO_CR, 0}};
    check_stream(d, n, 0, 0, NULL, 0, xe, 1, true, "no CR");
    free(d);
    free(m);
}

Test(mllp_samples, oversize_message_default_limit, .timeout = 60)
{
    size_t lm;
    uint8_t *m = slurp("broken/oversize-message.hl7", &lm);
    cr_assert_eq(lm, 1200645);
    uint8_t *d;
    size_t n;
    cr_assert_eq(mllp_wrap(m, lm, &d, &n), 0);

    /* Defaults: 1 MiB kept, read to the end block, whole length reported;
     * the kept bytes start with the MSH the AE is built from. */
    const size_t mib = (size_t)1 << 20;
    mllp_framer *f = mllp_framer_new(0, 0);
    cr_assert_not_null(f);
    recorder r;
    rec_init(&r, f);
    feed_stream(f, &r, d, n, FEED_RANDOM, 7);
    const expect fe[] = {{MLLP_FRAME, m, mib, lm, MLLP_F_OVERSIZE, 0}};
    check_events(&r, 0, fe, 1, "oversize sample");
    cr_assert(memcmp(r.ev[0].body, "MSH|", 4) == 0);
    rec_fini(&r);
    mllp_framer_free(f);
    free(d);
    free(m);
}

/* ---------- crafted streams ---------- */

#define S(lit) ((const uint8_t *)(lit)), (sizeof(lit) - 1)
#define B(lit) ((const uint8_t *)(lit))

Test(mllp_rules, bad_end_byte, .timeout = 30)
{
    /* The frame ends at 0x1C but is not trusted; 'X' and what follows up
     * to the next 0x0B are one run of junk. */
    const char in[] = "\x0bMSH|A\r\x1cXyz\x0bMSH|B\r\x1c\r";
    const expect fe[] = {{MLLP_FRAME, B("MSH|A\r"), 6, 6, MLLP_F_BAD_END, 'X'},
                         {MLLP_JUNK, NULL, 3, 0, 0, 0},
                         {MLLP_FRAME, B("MSH|B\r"), 6, 6, 0, 0}};
    check_stream(S(in), 0, 0, fe, 3, NULL, 0, false, "bad end");
}

Test(mllp_rules, bad_end_byte_then_end_of_stream, .timeout = 30)
{
    /* The junk after a bad end is reported by mllp_finish. */
    const char in[] = "\x0bMSH|A\r\x1c\x1c\x1c";
    const expect fe[] = {
        {MLLP_FRAME, B("MSH|A\r"), 6, 6, MLLP_F_BAD_END, MLLP_EB}};
    const expect xe[] = {{MLLP_JUNK, NULL, 2, 0, 0, 0}};
    check_stream(S(in), 0, 0, fe, 1, xe, 1, false, "bad end at eof");
}

Test(mllp_rules, empty_frame_with_bad_end_is_a_frame, .timeout = 30)
{
    const char in[] = "\x0b\r\x1cQ";
    const expect fe[] = {{MLLP_FRAME, B("\r"), 1, 1, MLLP_F_BAD_END, 'Q'}};
    const expect xe[] = {{MLLP_JUNK, NULL, 1, 0, 0, 0}};
    check_stream(S(in), 0, 0, fe, 1, xe, 1, false, "empty bad end");
}

Test(mllp_rules, end_block_then_start_block, .timeout = 30)
{
    const char in[] = "\x0bMSH|A\r\x1c\x0bMSH|B\r\x1c\r";
    const expect fe[] = {{MLLP_FRAME, B("MSH|A\r"), 6, 6, MLLP_F_NO_CR, 0},
                         {MLLP_FRAME, B("MSH|B\r"), 6, 6, 0, 0}};
    check_stream(S(in), 0, 0, fe, 2, NULL, 0, false, "0x1C 0x0B");
}

Test(mllp_rules, keepalives, .timeout = 30)
{
    const char in[] = "\x0b\x1c\r"
                      "\x0b\r\n\r\x1c\r"
                      "\x0b\x1c\x0b\x1c";
    const expect fe[] = {{MLLP_KEEPALIVE, B(""), 0, 0, 0, 0},
                         {MLLP_KEEPALIVE, B("\r\n\r"), 3, 3, 0, 0},
                         {MLLP_KEEPALIVE, B(""), 0, 0, MLLP_F_NO_CR, 0}};
    const expect xe[] = {{MLLP_KEEPALIVE, B(""), 0, 0, MLLP_F_NO_CR, 0}};
    check_stream(S(in), 0, 0, fe, 3, xe, 1, true, "keep-alive");
}

Test(mllp_rules, cr_and_lf_inside_a_body_are_kept, .timeout = 30)
{
    /* CR and LF are ordinary body bytes; a body with anything else is a
     * message even if it starts or ends with them. */
    const char in[] = "\x0b\r\nMSH|A\r\n\rPID|1\n\x1c\r"
                      "\x0b\n\r.\x1c\r";
    const expect fe[] = {
        {MLLP_FRAME, B("\r\nMSH|A\r\n\rPID|1\n"), 16, 16, 0, 0},
        {MLLP_FRAME, B("\n\r."), 3, 3, 0, 0}};
    check_stream(S(in), 0, 0, fe, 2, NULL, 0, false, "CR LF body");
}

Test(mllp_rules, junk_between_frames_and_at_the_end, .timeout = 30)
{
    const char in[] = "\x0b"
                      "A\x1c\r"
                      "\r\n\x1c\r junk"
                      "\x0b"
                      "B\x1c\r"
                      "tail";
    const expect fe[] = {{MLLP_FRAME, B("A"), 1, 1, 0, 0},
                         {MLLP_JUNK, NULL, 9, 0, 0, 0},
                         {MLLP_FRAME, B("B"), 1, 1, 0, 0}};
    const expect xe[] = {{MLLP_JUNK, NULL, 4, 0, 0, 0}};
    check_stream(S(in), 0, 0, fe, 3, xe, 1, false, "junk");
}

static void
fill_body(uint8_t *buf, size_t n)
{
    for (size_t i = 0; i < n; i++)
        buf[i] = (uint8_t)('A' + i % 26);
}

Test(mllp_rules, oversize_keeps_max_frame_and_counts_all, .timeout = 30)
{
    /* 250 body bytes against a limit of 100, then a normal frame that must
     * not inherit anything from the big one. */
    uint8_t body[250];
    fill_body(body, sizeof body);
    uint8_t in[sizeof body + 10];
    size_t n = 0;
    in[n++] = MLLP_SB;
    memcpy(in + n, body, sizeof body);
    n += sizeof body;
    memcpy(in + n, "\x1c\r\x0bok\x1c\r", 7);
    n += 7;
    const expect fe[] = {{MLLP_FRAME, body, 100, 250, MLLP_F_OVERSIZE, 0},
                         {MLLP_FRAME, B("ok"), 2, 2, 0, 0}};
    check_stream(in, n, 100, 0, fe, 2, NULL, 0, false, "oversize");

    /* Exactly max_frame is not oversize; one more is. */
    const expect at[] = {{MLLP_FRAME, body, 100, 100, 0, 0}};
    uint8_t in2[104];
    in2[0] = MLLP_SB;
    memcpy(in2 + 1, body, 100);
    in2[101] = MLLP_EB;
    in2[102] = MLLP_CR;
    check_stream(in2, 103, 100, 0, at, 1, NULL, 0, false, "at the limit");
}

Test(mllp_rules, oversize_with_bad_end_and_truncation, .timeout = 30)
{
    uint8_t body[150];
    fill_body(body, sizeof body);
    uint8_t in[160];
    in[0] = MLLP_SB;
    memcpy(in + 1, body, sizeof body);
    in[151] = MLLP_EB;
    in[152] = '!';
    const expect fe[] = {
        {MLLP_FRAME, body, 100, 150, MLLP_F_OVERSIZE | MLLP_F_BAD_END, '!'}};
    const expect xe[] = {{MLLP_JUNK, NULL, 1, 0, 0, 0}};
    check_stream(in, 153, 100, 0, fe, 1, xe, 1, false, "oversize bad end");

    /* Cut off mid-frame: TRUNCATED counts every byte read. */
    const expect te[] = {{MLLP_TRUNCATED, NULL, 150, 0, 0, 0}};
    check_stream(in, 151, 100, 0, NULL, 0, te, 1, true, "oversize cut");
}

Test(mllp_rules, hard_cap_stops_the_stream, .timeout = 30)
{
    /* 300 body bytes against a cap of 200: one ERR_CAP, and the valid
     * frame after it is not read, nor is anything at the end. */
    uint8_t in[400];
    size_t n = 0;
    in[n++] = MLLP_SB;
    fill_body(in + n, 300);
    n += 300;
    memcpy(in + n, "\x1c\r\x0bok\x1c\r", 7);
    n += 7;
    const expect fe[] = {{MLLP_ERR_CAP, NULL, 200, 0, 0, 0}};
    check_stream(in, n, 100, 200, fe, 1, NULL, 0, false, "hard cap");

    /* After ERR_CAP everything is discarded until a reset. */
    mllp_framer *f = mllp_framer_new(100, 200);
    cr_assert_not_null(f);
    recorder r;
    rec_init(&r, f);
    cr_assert_eq(mllp_feed(f, in, n, rec_cb, &r), 0);
    cr_assert_eq(mllp_feed(f, S("\x0bmore\x1c\r"), rec_cb, &r), 0);
    cr_assert_eq(r.n, 1);
    cr_assert_not(mllp_in_frame(f));
    mllp_framer_reset(f);
    cr_assert_eq(mllp_feed(f, S("\x0bmore\x1c\r"), rec_cb, &r), 0);
    const expect after[] = {{MLLP_FRAME, B("more"), 4, 4, 0, 0}};
    check_events(&r, 1, after, 1, "after reset");
    rec_fini(&r);
    mllp_framer_free(f);
}

Test(mllp_rules, hard_cap_is_inclusive, .timeout = 30)
{
    /* A body of exactly hard_cap bytes still ends normally. */
    uint8_t in[210];
    in[0] = MLLP_SB;
    fill_body(in + 1, 200);
    in[201] = MLLP_EB;
    in[202] = MLLP_CR;
    const expect fe[] = {{MLLP_FRAME, in + 1, 100, 200, MLLP_F_OVERSIZE, 0}};
    check_stream(in, 203, 100, 200, fe, 1, NULL, 0, false, "cap exact");

    /* One byte more, even right before the end block, is over it. */
    in[201] = 'x';
    in[202] = MLLP_EB;
    in[203] = MLLP_CR;
    const expect over[] = {{MLLP_ERR_CAP, NULL, 200, 0, 0, 0}};
    check_stream(in, 204, 100, 200, over, 1, NULL, 0, false, "cap + 1");
}

Test(mllp_rules, hard_cap_counts_per_frame, .timeout = 30)
{
    /* Restarts and completed frames start the count again. */
    uint8_t in[800];
    size_t n = 0;
    for (int i = 0; i < 3; i++) {
        in[n++] = MLLP_SB;
        fill_body(in + n, 150);
        n += 150;
    }
    in[n++] = MLLP_EB;
    in[n++] = MLLP_CR;
    const expect fe[] = {{MLLP_RESTART, NULL, 150, 0, 0, 0},
                         {MLLP_RESTART, NULL, 150, 0, 0, 0},
                         {MLLP_FRAME, in + 1, 100, 150, MLLP_F_OVERSIZE, 0}};
    check_stream(in, n, 100, 200, fe, 3, NULL, 0, false, "cap per frame");
}

/* ---------- stopping and resuming ---------- */

Test(mllp_stop, callback_stops_and_feed_resumes, .timeout = 30)
{
    size_t n, l1, l2;
    uint8_t *d = slurp("mllp/two-frames-back-to-back.mllp", &n);
    uint8_t *m1 = slurp("valid/ref-i12-social-care-assessment.hl7", &l1);
    uint8_t *m2 = slurp("valid/adt-a03-discharge-pathway1.hl7", &l2);

    mllp_framer *f = mllp_framer_new(0, 0);
    cr_assert_not_null(f);
    recorder r;
    rec_init(&r, f);
    r.stop_rc = 42;
    r.stop_mask = 1u << MLLP_FRAME;

    /* One read holds both frames: the server answers the first before it
     * sees the second. */
    cr_assert_eq(mllp_feed(f, d, n, rec_cb, &r), 42);
    cr_assert_eq(r.n, 1);
    cr_assert_eq(mllp_pending(f), n - (l1 + 3));
    cr_assert_not(mllp_in_frame(f));
    cr_assert_eq(mllp_feed(f, NULL, 0, rec_cb, &r), 42);
    cr_assert_eq(r.n, 2);
    cr_assert_eq(mllp_pending(f), 0);
    cr_assert_eq(mllp_feed(f, NULL, 0, rec_cb, &r), 0);
    const expect fe[] = {{MLLP_FRAME, m1, l1, l1, 0, 0},
                         {MLLP_FRAME, m2, l2, l2, 0, 0}};
    check_events(&r, 0, fe, 2, "stop");
    rec_fini(&r);
    mllp_framer_free(f);
    free(d);
    free(m1);
    free(m2);
}

typedef struct holder {
    const uint8_t *body;
    size_t len;
} holder;

static int
hold_cb(void *user, const mllp_event *ev)
{
    holder *h = user;
    if (ev->kind != MLLP_FRAME)
        return 0;
    h->body = ev->body;
    h->len = ev->len;
    return 1;
}

Test(mllp_stop, body_stays_valid_until_the_next_call, .timeout = 30)
{
    mllp_framer *f = mllp_framer_new(0, 0);
    cr_assert_not_null(f);
    holder h = {0};
    /* The second frame follows at once; stopping must leave the first
     * body intact although the framer has already started the next. */
    cr_assert_eq(mllp_feed(f, S("\x0bMSH|1\x1c\x0bMSH|2\x1c\r"), hold_cb, &h),
                 1);
    cr_assert(mllp_in_frame(f));
    cr_assert_eq(h.len, 5);
    cr_assert(memcmp(h.body, "MSH|1", 5) == 0);
    cr_assert_eq(mllp_feed(f, NULL, 0, hold_cb, &h), 1);
    cr_assert_eq(h.len, 5);
    cr_assert(memcmp(h.body, "MSH|2", 5) == 0);
    cr_assert_eq(mllp_pending(f), 0);
    mllp_framer_free(f);
}

Test(mllp_stop, data_fed_while_pending_is_queued_behind, .timeout = 30)
{
    mllp_framer *f = mllp_framer_new(0, 0);
    cr_assert_not_null(f);
    recorder r;
    rec_init(&r, f);
    r.stop_rc = 5;
    r.stop_mask = 1u << MLLP_FRAME;
    cr_assert_eq(mllp_feed(f,
                           S("\x0b"
                             "A\x1c\r\x0b"
                             "B\x1c\r\x0b"
                             "C"),
                           rec_cb, &r),
                 5);
    /* A caller that reads on regardless: its bytes wait their turn, both
     * behind untouched pending bytes and behind partly consumed ones. */
    cr_assert_eq(mllp_feed(f, S("\x1c\r"), rec_cb, &r), 5);
    cr_assert_eq(r.n, 2);
    cr_assert_eq(mllp_feed(f,
                           S("\x0b"
                             "D\x1c\r"),
                           rec_cb, &r),
                 5);
    cr_assert_eq(r.n, 3);
    while (mllp_pending(f) > 0)
        cr_assert_eq(mllp_feed(f, NULL, 0, rec_cb, &r), 5);
    cr_assert_eq(mllp_feed(f, NULL, 0, rec_cb, &r), 0);
    const expect fe[] = {{MLLP_FRAME, B("A"), 1, 1, 0, 0},
                         {MLLP_FRAME, B("B"), 1, 1, 0, 0},
                         {MLLP_FRAME, B("C"), 1, 1, 0, 0},
                         {MLLP_FRAME, B("D"), 1, 1, 0, 0}};
    check_events(&r, 0, fe, 4, "queued");
    rec_fini(&r);
    mllp_framer_free(f);
}

Test(mllp_stop, large_pending_input, .timeout = 30)
{
    /* Two 100 kB frames in one read: the second waits, more than the
     * framer keeps between frames, while the first is answered. */
    const size_t big = 100000;
    uint8_t *in = malloc(2 * (big + 3));
    cr_assert_not_null(in);
    size_t n = 0;
    for (int i = 0; i < 2; i++) {
        in[n++] = MLLP_SB;
        fill_body(in + n, big);
        n += big;
        in[n++] = MLLP_EB;
        in[n++] = MLLP_CR;
    }
    mllp_framer *f = mllp_framer_new(0, 0);
    cr_assert_not_null(f);
    recorder r;
    rec_init(&r, f);
    r.stop_rc = 1;
    r.stop_mask = 1u << MLLP_FRAME;
    cr_assert_eq(mllp_feed(f, in, n, rec_cb, &r), 1);
    cr_assert_eq(mllp_pending(f), big + 3);
    cr_assert_eq(mllp_feed(f, NULL, 0, rec_cb, &r), 1);
    cr_assert_eq(mllp_pending(f), 0);
    cr_assert_eq(mllp_feed(f, S("\x0bok\x1c\r"), rec_cb, &r), 1);
    const expect fe[] = {{MLLP_FRAME, in + 1, big, big, 0, 0},
                         {MLLP_FRAME, in + 1, big, big, 0, 0},
                         {MLLP_FRAME, B("ok"), 2, 2, 0, 0}};
    check_events(&r, 0, fe, 3, "large pending");
    rec_fini(&r);
    mllp_framer_free(f);
    free(in);
}

Test(mllp_stop, finish_resumes_pending_then_reports_the_end, .timeout = 30)
{
    mllp_framer *f = mllp_framer_new(0, 0);
    cr_assert_not_null(f);
    recorder r;
    rec_init(&r, f);
    r.stop_rc = 9;
    r.stop_mask = ~0u;
    cr_assert_eq(mllp_feed(f,
                           S("\x0b"
                             "A\x1c\r\x0b"
                             "B\x1c\r\x0b"
                             "C"),
                           rec_cb, &r),
                 9);
    /* The peer closed after pipelining: frames still owed an answer come
     * out one by one, then the end of the stream. */
    cr_assert_eq(mllp_finish(f, rec_cb, &r), 9);
    cr_assert_eq(r.n, 2);
    cr_assert_eq(mllp_pending(f), 2);
    cr_assert_eq(mllp_finish(f, rec_cb, &r), 9);
    cr_assert_eq(r.n, 3);
    cr_assert_not(mllp_in_frame(f));
    cr_assert_eq(mllp_pending(f), 0);
    cr_assert_eq(mllp_finish(f, rec_cb, &r), 0);
    cr_assert_eq(r.n, 3);
    const expect fe[] = {{MLLP_FRAME, B("A"), 1, 1, 0, 0},
                         {MLLP_FRAME, B("B"), 1, 1, 0, 0},
                         {MLLP_TRUNCATED, NULL, 1, 0, 0, 0}};
    check_events(&r, 0, fe, 3, "finish");
    rec_fini(&r);
    mllp_framer_free(f);
}

Test(mllp_stop, stop_on_err_cap_drops_the_rest, .timeout = 30)
{
    mllp_framer *f = mllp_framer_new(16, 32);
    cr_assert_not_null(f);
    recorder r;
    rec_init(&r, f);
    r.stop_rc = 2;
    r.stop_mask = ~0u;
    uint8_t in[64];
    in[0] = MLLP_SB;
    fill_body(in + 1, 40);
    memcpy(in + 41, "\x1c\r\x0bX\x1c\r", 6);
    cr_assert_eq(mllp_feed(f, in, 47, rec_cb, &r), 2);
    cr_assert_eq(mllp_pending(f), 0);
    cr_assert_eq(mllp_feed(f, NULL, 0, rec_cb, &r), 0);
    cr_assert_eq(mllp_finish(f, rec_cb, &r), 0);
    const expect fe[] = {{MLLP_ERR_CAP, NULL, 32, 0, 0, 0}};
    check_events(&r, 0, fe, 1, "cap stop");

    /* The cap is reached while mllp_finish works through bytes a stop
     * left: it reports ERR_CAP, and the framer is reset all the same. */
    uint8_t in2[80];
    memcpy(in2, "\x0bok\x1c\r", 5);
    memcpy(in2 + 5, in, 47);
    cr_assert_eq(mllp_feed(f, in2, 52, rec_cb, &r), 2);
    cr_assert_gt(mllp_pending(f), 0);
    cr_assert_eq(mllp_finish(f, rec_cb, &r), 2);
    cr_assert_eq(mllp_pending(f), 0);
    cr_assert_not(mllp_in_frame(f));
    r.stop_mask = 0;
    cr_assert_eq(mllp_feed(f, S("\x0bnew\x1c\r"), rec_cb, &r), 0);
    const expect fe2[] = {{MLLP_FRAME, B("ok"), 2, 2, 0, 0},
                          {MLLP_ERR_CAP, NULL, 32, 0, 0, 0},
                          {MLLP_FRAME, B("new"), 3, 3, 0, 0}};
    check_events(&r, 1, fe2, 3, "cap in finish");
    rec_fini(&r);
    mllp_framer_free(f);
}

/* ---------- calls from inside the callback ---------- */

static int
reset_cb(void *user, const mllp_event *ev)
{
    recorder *r = user;
    rec_cb(r, ev);
    cr_assert_eq(mllp_feed(r->f, S("\x0bx\x1c\r"), rec_cb, r), -1,
                 "re-entrant feed must be refused");
    cr_assert_eq(mllp_finish(r->f, rec_cb, r), -1);
    mllp_framer_reset(r->f);
    return 0;
}

Test(mllp_callback, reset_from_a_callback_drops_the_rest, .timeout = 30)
{
    mllp_framer *f = mllp_framer_new(0, 0);
    cr_assert_not_null(f);
    recorder r;
    rec_init(&r, f);
    cr_assert_eq(mllp_feed(f,
                           S("\x0b"
                             "A\x1c\r\x0b"
                             "B\x1c\r\x0b"
                             "C"),
                           reset_cb, &r),
                 0);
    cr_assert_eq(r.n, 1);
    cr_assert_not(mllp_in_frame(f));
    cr_assert_eq(mllp_pending(f), 0);
    /* The framer is usable for a new stream. */
    cr_assert_eq(mllp_feed(f,
                           S("\x0b"
                             "D\x1c\r"),
                           rec_cb, &r),
                 0);
    const expect fe[] = {{MLLP_FRAME, B("A"), 1, 1, 0, 0},
                         {MLLP_FRAME, B("D"), 1, 1, 0, 0}};
    check_events(&r, 0, fe, 2, "reset in callback");
    rec_fini(&r);
    mllp_framer_free(f);
}

static int
reset_in_finish_cb(void *user, const mllp_event *ev)
{
    recorder *r = user;
    rec_cb(r, ev);
    mllp_framer_reset(r->f);
    return 0;
}

Test(mllp_callback, reset_from_a_finish_callback, .timeout = 30)
{
    mllp_framer *f = mllp_framer_new(0, 0);
    cr_assert_not_null(f);
    recorder r;
    rec_init(&r, f);
    cr_assert_eq(mllp_feed(f, S("\x0bMSH|A"), rec_cb, &r), 0);
    cr_assert_eq(mllp_finish(f, reset_in_finish_cb, &r), 0);
    /* The reset asked for has been done; it must not eat the next
     * stream. */
    cr_assert_eq(mllp_feed(f, S("\x0bMSH|B\x1c\r"), rec_cb, &r), 0);
    const expect fe[] = {{MLLP_TRUNCATED, NULL, 5, 0, 0, 0},
                         {MLLP_FRAME, B("MSH|B"), 5, 5, 0, 0}};
    check_events(&r, 0, fe, 2, "reset in finish");
    rec_fini(&r);
    mllp_framer_free(f);
}

/* ---------- state and lifecycle ---------- */

Test(mllp_state, in_frame_follows_the_blocks, .timeout = 30)
{
    mllp_framer *f = mllp_framer_new(0, 0);
    cr_assert_not_null(f);
    recorder r;
    rec_init(&r, f);
    cr_assert_not(mllp_in_frame(f));
    cr_assert_eq(mllp_feed(f, S("junk"), rec_cb, &r), 0);
    cr_assert_not(mllp_in_frame(f));
    cr_assert_eq(mllp_feed(f, S("\x0b"), rec_cb, &r), 0);
    cr_assert(mllp_in_frame(f));
    cr_assert_eq(mllp_feed(f, S("MSH|"), rec_cb, &r), 0);
    cr_assert(mllp_in_frame(f));
    cr_assert_eq(mllp_feed(f, S("\x1c"), rec_cb, &r), 0);
    cr_assert(mllp_in_frame(f)); /* the end block is not complete */
    cr_assert_eq(mllp_feed(f, S("\r"), rec_cb, &r), 0);
    cr_assert_not(mllp_in_frame(f));
    cr_assert_eq(r.n, 2);

    /* Reset drops a frame in progress without an event, large or not. */
    cr_assert_eq(mllp_feed(f, S("\x0bhalf"), rec_cb, &r), 0);
    cr_assert(mllp_in_frame(f));
    mllp_framer_reset(f);
    cr_assert_not(mllp_in_frame(f));
    cr_assert_eq(mllp_finish(f, rec_cb, &r), 0);
    cr_assert_eq(r.n, 2);
    uint8_t *big = malloc(100001);
    cr_assert_not_null(big);
    big[0] = MLLP_SB;
    fill_body(big + 1, 100000);
    cr_assert_eq(mllp_feed(f, big, 100001, rec_cb, &r), 0);
    cr_assert(mllp_in_frame(f));
    mllp_framer_reset(f);
    free(big);
    cr_assert_eq(mllp_finish(f, rec_cb, &r), 0);
    cr_assert_eq(mllp_feed(f, S("\x0bsmall\x1c\r"), rec_cb, &r), 0);
    cr_assert_eq(r.n, 3);
    cr_assert(memcmp(r.ev[2].body, "small", 5) == 0);
    rec_fini(&r);
    mllp_framer_free(f);
}

Test(mllp_state, finish_resets_the_framer, .timeout = 30)
{
    mllp_framer *f = mllp_framer_new(0, 0);
    cr_assert_not_null(f);
    recorder r;
    rec_init(&r, f);
    cr_assert_eq(mllp_feed(f, S("\x0bMSH|A"), rec_cb, &r), 0);
    cr_assert_eq(mllp_finish(f, rec_cb, &r), 0);
    cr_assert_eq(mllp_feed(f, S("\x0bMSH|B\x1c\r"), rec_cb, &r), 0);
    const expect fe[] = {{MLLP_TRUNCATED, NULL, 5, 0, 0, 0},
                         {MLLP_FRAME, B("MSH|B"), 5, 5, 0, 0}};
    check_events(&r, 0, fe, 2, "after finish");
    rec_fini(&r);
    mllp_framer_free(f);
}

Test(mllp_state, bad_arguments, .timeout = 30)
{
    mllp_framer *f = mllp_framer_new(0, 0);
    cr_assert_not_null(f);
    recorder r;
    rec_init(&r, f);
    cr_assert_eq(mllp_feed(NULL, S("x"), rec_cb, &r), -1);
    cr_assert_eq(mllp_feed(f, S("x"), NULL, &r), -1);
    cr_assert_eq(mllp_feed(f, NULL, 3, rec_cb, &r), -1);
    cr_assert_eq(mllp_feed(f, NULL, 0, rec_cb, &r), 0);
    cr_assert_eq(mllp_finish(NULL, rec_cb, &r), -1);
    cr_assert_not(mllp_in_frame(NULL));
    cr_assert_eq(mllp_pending(NULL), 0);
    mllp_framer_reset(NULL);
    mllp_framer_free(NULL);
    cr_assert_eq(r.n, 0);
    rec_fini(&r);
    mllp_framer_free(f);
}

Test(mllp_state, a_large_frame_then_small_ones, .timeout = 30)
{
    /* The buffer grows to the large frame and is released afterwards;
     * later frames must come out whole. */
    const size_t big = 300000;
    uint8_t *in = malloc(big + 20);
    cr_assert_not_null(in);
    size_t n = 0;
    in[n++] = MLLP_SB;
    fill_body(in + n, big);
    n += big;
    memcpy(in + n, "\x1c\r\x0bsmall\x1c\r", 10);
    n += 10;
    const expect fe[] = {{MLLP_FRAME, in + 1, big, big, 0, 0},
                         {MLLP_FRAME, B("small"), 5, 5, 0, 0}};
    mllp_framer *f = mllp_framer_new(0, 0);
    cr_assert_not_null(f);
    recorder r;
    rec_init(&r, f);
    feed_stream(f, &r, in, n, FEED_RANDOM, 3);
    check_events(&r, 0, fe, 2, "big then small");
    feed_stream(f, &r, in, n, FEED_WHOLE, 0);
    check_events(&r, 2, fe, 2, "again");
    rec_fini(&r);
    mllp_framer_free(f);
    free(in);
}

/* ---------- mllp_wrap ---------- */

Test(mllp_wrap, round_trip, .timeout = 30)
{
    size_t lm;
    uint8_t *m =
        slurp("valid/ref-i12-social-prescribing-utf8-zsegments.hl7", &lm);
    cr_assert(mllp_body_ok(m, lm));
    uint8_t *d;
    size_t n;
    cr_assert_eq(mllp_wrap(m, lm, &d, &n), 0);
    cr_assert_eq(n, lm + 3);
    cr_assert_eq(d[0], MLLP_SB);
    cr_assert_eq(d[n - 2], MLLP_EB);
    cr_assert_eq(d[n - 1], MLLP_CR);
    const expect fe[] = {{MLLP_FRAME, m, lm, lm, 0, 0}};
    check_stream(d, n, 0, 0, fe, 1, NULL, 0, false, "wrap");
    free(d);
    free(m);
}

Test(mllp_wrap, empty_body_is_a_keepalive, .timeout = 30)
{
    uint8_t *d;
    size_t n;
    cr_assert_eq(mllp_wrap(NULL, 0, &d, &n), 0);
    cr_assert_eq(n, 3);
    cr_assert(memcmp(d, "\x0b\x1c\r", 3) == 0);
    const expect fe[] = {{MLLP_KEEPALIVE, B(""), 0, 0, 0, 0}};
    check_stream(d, n, 0, 0, fe, 1, NULL, 0, false, "empty wrap");
    free(d);
}

Test(mllp_wrap, body_with_cr_lf_round_trips, .timeout = 30)
{
    const uint8_t body[] = "MSH|^~\\&|A\r\nPID|1\n\r";
    const size_t len = sizeof body - 1;
    uint8_t *d;
    size_t n;
    cr_assert_eq(mllp_wrap(body, len, &d, &n), 0);
    const expect fe[] = {{MLLP_FRAME, body, len, len, 0, 0}};
    check_stream(d, n, 0, 0, fe, 1, NULL, 0, false, "CR LF wrap");
    free(d);
}

Test(mllp_wrap, bodies_that_cannot_be_framed, .timeout = 30)
{
    cr_assert(mllp_body_ok(NULL, 0));
    cr_assert_not(mllp_body_ok(NULL, 1));
    cr_assert_not(mllp_body_ok(B("MSH|\x1c"), 5));
    cr_assert_not(mllp_body_ok(B("\x0bMSH|"), 5));

    /* Framed anyway, such a body is cut where the receiver sees 0x1C. */
    uint8_t *d;
    size_t n;
    cr_assert_eq(mllp_wrap(B("AB\x1cZ"), 4, &d, &n), 0);
    const expect fe[] = {{MLLP_FRAME, B("AB"), 2, 2, MLLP_F_BAD_END, 'Z'}};
    const expect xe[] = {{MLLP_JUNK, NULL, 3, 0, 0, 0}};
    check_stream(d, n, 0, 0, fe, 1, xe, 1, false, "stray 0x1C");
    free(d);

    cr_assert_eq(mllp_wrap(NULL, 1, &d, &n), -1);
    cr_assert_eq(mllp_wrap(B("x"), SIZE_MAX - 1, &d, &n), -1);
}
