/* libFuzzer target for the MLLP framer (adapters/nursing/mllp.c).
 *
 * Input: four control bytes, then the stream.
 *   [0..1] max_frame = 16 + (little-endian u16 % 4081): 16 to 4096
 *   [2]    bits 0-1 hard_cap (default, = max_frame, 2 * max_frame + 3,
 *          max_frame / 2 + 1); bits 2-3 split (whole, byte by byte, random
 *          chunks up to 512, random chunks up to 8); bits 4-6 stop on every
 *          k-th event (0: never); bit 7 keep feeding while stopped
 *   [3]    bits 0-6 seed of the split sizes; bit 7 reset the framer now
 *          and then between two feeds
 *
 * Each input is framed twice: by a per-byte reference model written here
 * from the rules in mllp.h, and by the framer, in the chosen pieces with
 * the chosen stops and resets (the model resets at the byte the framer had
 * consumed). Both must report the same events (kind,
 * lengths, flags, bad byte, body bytes), and every event must satisfy the
 * header's invariants. Then the stream, cleaned of block bytes, must
 * survive mllp_wrap and framing unchanged.
 *
 * Build (libFuzzer):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Iadapters/nursing \
 *       fuzz/mllp_fuzz.c adapters/nursing/mllp.c -o mllp_fuzz
 *   ./mllp_fuzz fuzz/corpus/mllp/
 * With -DHANDOVER_FUZZ_REPLAY and no fuzzing engine, the file gets a main
 * that runs every file named on the command line (directories included)
 * once, so an ordinary build can replay the corpus as a test.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mllp.h"

#define STOP_RC 77
#define HEADER  4

/* Any failed check aborts with the reason, which libFuzzer reports as a
 * crash and saves the input. */
#define CHECK(cond)                                                            \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "mllp_fuzz: check failed at line %d: %s\n",        \
                    __LINE__, #cond);                                          \
            abort();                                                           \
        }                                                                      \
    } while (0)

typedef struct rec {
    mllp_kind kind;
    size_t len;
    size_t total;
    unsigned flags;
    uint8_t bad;
    uint64_t hash; /* of the kept body bytes; 0 for other events */
} rec;

typedef struct evlog {
    rec *ev;
    size_t n;
    size_t cap;
    size_t max_frame;
    size_t hard_cap;
    mllp_framer *f; /* NULL for the reference model */
    bool finishing; /* events now come from mllp_finish */
    bool dead;      /* ERR_CAP seen: nothing may follow */
    unsigned stop_every;
    unsigned count;
} evlog;

static uint64_t
fnv1a(const uint8_t *p, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 1099511628211ULL;
    }
    return h;
}

static void
log_add(evlog *l, mllp_kind kind, const uint8_t *body, size_t len, size_t total,
        unsigned flags, uint8_t bad)
{
    /* Every event consumes at least one input byte, and mllp_finish adds
     * at most one: cap is sized for that. */
    CHECK(l->n < l->cap);
    rec *r = &l->ev[l->n++];
    r->kind = kind;
    r->len = len;
    r->total = total;
    r->flags = flags;
    r->bad = bad;
    r->hash = body != NULL ? fnv1a(body, len) : 0;
}

/* ---------- the framer under test ---------- */

static void
check_event(const evlog *l, const mllp_event *ev)
{
    CHECK(!l->dead);
    CHECK(ev->kind >= MLLP_FRAME && ev->kind <= MLLP_ERR_CAP);
    CHECK((ev->flags &
           ~(unsigned)(MLLP_F_NO_CR | MLLP_F_BAD_END | MLLP_F_OVERSIZE)) == 0);
    bool in_frame = mllp_in_frame(l->f);
    switch (ev->kind) {
    case MLLP_FRAME:
    case MLLP_KEEPALIVE:
        CHECK(ev->body != NULL);
        CHECK(ev->len <= l->max_frame);
        CHECK(ev->total >= ev->len);
        CHECK(ev->total <= l->hard_cap);
        CHECK(ev->len == (ev->total < l->max_frame ? ev->total : l->max_frame));
        CHECK(((ev->flags & MLLP_F_OVERSIZE) != 0) ==
              (ev->total > l->max_frame));
        CHECK((ev->flags & (MLLP_F_NO_CR | MLLP_F_BAD_END)) !=
              (MLLP_F_NO_CR | MLLP_F_BAD_END));
        if (ev->flags & MLLP_F_BAD_END)
            CHECK(ev->bad_byte != MLLP_CR && ev->bad_byte != MLLP_SB);
        else
            CHECK(ev->bad_byte == 0);
        for (size_t i = 0; i < ev->len; i++)
            CHECK(ev->body[i] != MLLP_SB && ev->body[i] != MLLP_EB);
        if (ev->kind == MLLP_KEEPALIVE) {
            CHECK((ev->flags & (MLLP_F_BAD_END | MLLP_F_OVERSIZE)) == 0);
            for (size_t i = 0; i < ev->len; i++)
                CHECK(ev->body[i] == MLLP_CR || ev->body[i] == '\n');
        }
        /* Only 0x1C 0x0B leaves the framer in the next frame. */
        if (l->finishing || !(ev->flags & MLLP_F_NO_CR))
            CHECK(!in_frame);
        else
            CHECK(in_frame);
        break;
    case MLLP_JUNK:
        CHECK(ev->len > 0);
        CHECK(in_frame == !l->finishing);
        break;
    case MLLP_RESTART:
        CHECK(!l->finishing);
        CHECK(ev->len <= l->hard_cap);
        CHECK(in_frame);
        break;
    case MLLP_TRUNCATED:
        CHECK(l->finishing);
        CHECK(ev->len <= l->hard_cap);
        CHECK(!in_frame);
        break;
    case MLLP_ERR_CAP:
        CHECK(!l->finishing);
        CHECK(ev->len == l->hard_cap);
        CHECK(!in_frame);
        break;
    }
}

static int
fuzz_cb(void *user, const mllp_event *ev)
{
    evlog *l = user;
    check_event(l, ev);
    bool body = ev->kind == MLLP_FRAME || ev->kind == MLLP_KEEPALIVE;
    log_add(l, ev->kind, body ? ev->body : NULL, ev->len, body ? ev->total : 0,
            ev->flags, ev->bad_byte);
    if (ev->kind == MLLP_ERR_CAP)
        l->dead = true;
    /* Re-entrant calls are refused, whatever the state. */
    CHECK(mllp_feed(l->f, NULL, 0, fuzz_cb, l) == -1);
    l->count++;
    if (l->stop_every != 0 && l->count % l->stop_every == 0)
        return STOP_RC;
    return 0;
}

/* ---------- the reference model: one byte at a time ---------- */

enum { R_OUT, R_FRAME, R_END, R_DEAD };

typedef struct model {
    evlog *l;
    int st;
    uint8_t *body; /* max_frame bytes */
    size_t len;
    size_t total;
    bool blank;
    size_t junk;
} model;

static void
model_frame(model *m, unsigned flags, uint8_t bad)
{
    if (m->total > m->l->max_frame)
        flags |= MLLP_F_OVERSIZE;
    bool blank = m->blank && !(flags & (MLLP_F_BAD_END | MLLP_F_OVERSIZE));
    log_add(m->l, blank ? MLLP_KEEPALIVE : MLLP_FRAME, m->body, m->len,
            m->total, flags, bad);
}

static void
model_start(model *m)
{
    m->st = R_FRAME;
    m->len = 0;
    m->total = 0;
    m->blank = true;
}

static void
model_byte(model *m, uint8_t c)
{
    switch (m->st) {
    case R_OUT:
        if (c != MLLP_SB) {
            m->junk++;
            return;
        }
        if (m->junk > 0)
            log_add(m->l, MLLP_JUNK, NULL, m->junk, 0, 0, 0);
        m->junk = 0;
        model_start(m);
        return;
    case R_FRAME:
        if (c == MLLP_SB) {
            log_add(m->l, MLLP_RESTART, NULL, m->total, 0, 0, 0);
            model_start(m);
        } else if (c == MLLP_EB) {
            m->st = R_END;
        } else if (m->total == m->l->hard_cap) {
            log_add(m->l, MLLP_ERR_CAP, NULL, m->l->hard_cap, 0, 0, 0);
            m->st = R_DEAD;
        } else {
            if (m->len < m->l->max_frame)
                m->body[m->len++] = c;
            m->total++;
            m->blank = m->blank && (c == MLLP_CR || c == '\n');
        }
        return;
    case R_END:
        if (c == MLLP_CR) {
            model_frame(m, 0, 0);
            m->st = R_OUT;
        } else if (c == MLLP_SB) {
            model_frame(m, MLLP_F_NO_CR, 0);
            model_start(m);
        } else {
            model_frame(m, MLLP_F_BAD_END, c);
            m->st = R_OUT;
            m->junk = 1;
        }
        return;
    default:
        return;
    }
}

static void
model_reset(model *m)
{
    m->st = R_OUT;
    m->len = 0;
    m->total = 0;
    m->blank = true;
    m->junk = 0;
}

static void
model_finish(model *m)
{
    if (m->st == R_END)
        model_frame(m, MLLP_F_NO_CR, 0);
    else if (m->st == R_FRAME)
        log_add(m->l, MLLP_TRUNCATED, NULL, m->total, 0, 0, 0);
    else if (m->st == R_OUT && m->junk > 0)
        log_add(m->l, MLLP_JUNK, NULL, m->junk, 0, 0, 0);
}

/* ---------- driving ---------- */

static uint32_t
xorshift32(uint32_t *s)
{
    uint32_t x = *s;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *s = x;
}

static void
compare(const evlog *want, const evlog *got)
{
    CHECK(want->n == got->n);
    for (size_t i = 0; i < want->n; i++) {
        const rec *a = &want->ev[i], *b = &got->ev[i];
        CHECK(a->kind == b->kind);
        CHECK(a->len == b->len);
        CHECK(a->total == b->total);
        CHECK(a->flags == b->flags);
        CHECK(a->bad == b->bad);
        CHECK(a->hash == b->hash);
    }
}

/* Resume a stopped framer until it has consumed everything it holds. */
static void
drain(mllp_framer *f, evlog *l, int rc, size_t guard)
{
    while (rc == STOP_RC) {
        CHECK(guard-- > 0);
        rc = mllp_feed(f, NULL, 0, fuzz_cb, l);
    }
    CHECK(rc == 0);
    CHECK(mllp_pending(f) == 0);
}

/* Feed the model up to byte upto of the stream. */
static void
model_advance(model *m, const uint8_t *p, size_t upto, size_t *pos)
{
    for (; *pos < upto; (*pos)++)
        model_byte(m, p[*pos]);
}

static void
run_framer(const uint8_t *p, size_t n, uint8_t mode, uint8_t seed, evlog *l,
           model *m)
{
    mllp_framer *f = mllp_framer_new(l->max_frame, l->hard_cap);
    CHECK(f != NULL);
    l->f = f;
    unsigned split = (mode >> 2) & 3;
    bool queue = (mode & 0x80) != 0;
    size_t guard = 2 * n + 8;
    bool resets = (seed & 0x80) != 0;
    size_t mpos = 0;
    uint32_t s = (seed & 0x7fu) * 2654435761u + 0x9e3779b9u;
    if (s == 0)
        s = 1;

    size_t i = 0;
    while (i < n) {
        size_t k = n - i;
        if (split == 1)
            k = 1;
        else if (split == 2)
            k = xorshift32(&s) % 513;
        else if (split == 3)
            k = xorshift32(&s) % 9;
        if (k > n - i)
            k = n - i;
        int rc = mllp_feed(f, p + i, k, fuzz_cb, l);
        i += k;
        CHECK(rc == 0 || rc == STOP_RC);
        if (rc == 0)
            CHECK(mllp_pending(f) == 0);
        else if (!queue)
            drain(f, l, rc, guard);
        if (resets && xorshift32(&s) % 8 == 0) {
            /* Everything the framer has not consumed goes with it. */
            model_advance(m, p, i - mllp_pending(f), &mpos);
            model_reset(m);
            mllp_framer_reset(f);
            CHECK(!mllp_in_frame(f));
            CHECK(mllp_pending(f) == 0);
            l->dead = false;
            mpos = i;
        }
    }
    drain(f, l, mllp_feed(f, NULL, 0, fuzz_cb, l), guard);
    model_advance(m, p, n, &mpos);
    model_finish(m);

    /* A stop inside mllp_finish keeps the end of the stream for the next
     * call; once it has been reported the framer is reset. */
    l->finishing = true;
    int rc;
    while ((rc = mllp_finish(f, fuzz_cb, l)) == STOP_RC)
        CHECK(guard-- > 0);
    CHECK(rc == 0);
    CHECK(!mllp_in_frame(f));
    CHECK(mllp_pending(f) == 0);
    mllp_framer_free(f);
    l->f = NULL;
}

/* The stream without its block bytes is a legal body: framed by mllp_wrap
 * it must come back as exactly one event with the same bytes. */
static void
check_wrap(const uint8_t *p, size_t n, size_t max_frame, size_t hard_cap)
{
    uint8_t *body = malloc(n + 1);
    CHECK(body != NULL);
    size_t len = 0;
    bool blank = true;
    for (size_t i = 0; i < n; i++) {
        if (p[i] == MLLP_SB || p[i] == MLLP_EB)
            continue;
        blank = blank && (p[i] == MLLP_CR || p[i] == '\n');
        body[len++] = p[i];
    }
    CHECK(mllp_body_ok(body, len));

    uint8_t *framed;
    size_t flen;
    CHECK(mllp_wrap(body, len, &framed, &flen) == 0);
    CHECK(flen == len + 3);
    mllp_framer *f = mllp_framer_new(max_frame, hard_cap);
    CHECK(f != NULL);
    rec ev[2];
    evlog l = {.ev = ev,
               .cap = 2,
               .max_frame = max_frame,
               .hard_cap = hard_cap,
               .f = f};
    CHECK(mllp_feed(f, framed, flen, fuzz_cb, &l) == 0);
    l.finishing = true;
    CHECK(mllp_finish(f, fuzz_cb, &l) == 0);
    CHECK(l.n == 1);
    if (len > hard_cap) {
        CHECK(ev[0].kind == MLLP_ERR_CAP);
    } else {
        size_t kept = len < max_frame ? len : max_frame;
        bool over = len > max_frame;
        CHECK(ev[0].kind == (blank && !over ? MLLP_KEEPALIVE : MLLP_FRAME));
        CHECK(ev[0].len == kept);
        CHECK(ev[0].total == len);
        CHECK(ev[0].flags == (over ? (unsigned)MLLP_F_OVERSIZE : 0u));
        CHECK(ev[0].hash == fnv1a(body, kept));
    }
    mllp_framer_free(f);
    free(framed);
    free(body);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < HEADER)
        return 0;
    size_t max_frame = 16 + (size_t)((data[0] | data[1] << 8) % 4081);
    uint8_t mode = data[2];
    uint8_t seed = data[3];
    size_t hard_cap = 0; /* the default, 16 MiB */
    switch (mode & 3) {
    case 1:
        hard_cap = max_frame;
        break;
    case 2:
        hard_cap = 2 * max_frame + 3;
        break;
    case 3:
        hard_cap = max_frame / 2 + 1;
        break;
    }
    const uint8_t *p = data + HEADER;
    size_t n = size - HEADER;
    size_t eff_cap = hard_cap > 0 ? hard_cap : (size_t)16 << 20;

    rec *want_ev = calloc(n + 2, sizeof *want_ev);
    rec *got_ev = calloc(n + 2, sizeof *got_ev);
    uint8_t *mbody = malloc(max_frame);
    CHECK(want_ev != NULL && got_ev != NULL && mbody != NULL);

    evlog want = {.ev = want_ev,
                  .cap = n + 2,
                  .max_frame = max_frame,
                  .hard_cap = eff_cap};
    model m = {.l = &want, .st = R_OUT, .body = mbody, .blank = true};

    evlog got = {.ev = got_ev,
                 .cap = n + 2,
                 .max_frame = max_frame,
                 .hard_cap = eff_cap,
                 .stop_every = (mode >> 4) & 7};
    run_framer(p, n, mode, seed, &got, &m);
    compare(&want, &got);

    check_wrap(p, n, max_frame, eff_cap);

    free(mbody);
    free(got_ev);
    free(want_ev);
    return 0;
}

#ifdef HANDOVER_FUZZ_REPLAY
#include <dirent.h>
#include <sys/stat.h>

static int
replay_file(const char *path)
{
    FILE *fp = fopen(path, "rb");
    if (fp == NULL) {
        perror(path);
        return 1;
    }
    uint8_t *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len == cap) {
            size_t ncap = cap > 0 ? cap * 2 : 4096;
            uint8_t *nb = realloc(buf, ncap);
            if (nb == NULL) {
                free(buf);
                fclose(fp);
                fprintf(stderr, "%s: out of memory\n", path);
                return 1;
            }
            buf = nb;
            cap = ncap;
        }
        size_t got = fread(buf + len, 1, cap - len, fp);
        len += got;
        if (got == 0)
            break;
    }
    bool bad = ferror(fp) != 0;
    fclose(fp);
    if (bad) {
        free(buf);
        fprintf(stderr, "%s: read error\n", path);
        return 1;
    }
    LLVMFuzzerTestOneInput(buf, len);
    free(buf);
    return 0;
}

static int
replay(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        perror(path);
        return 1;
    }
    if (!S_ISDIR(st.st_mode))
        return replay_file(path);
    DIR *d = opendir(path);
    if (d == NULL) {
        perror(path);
        return 1;
    }
    int fails = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char sub[4096];
        int w = snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
        if (w < 0 || (size_t)w >= sizeof sub) {
            fprintf(stderr, "%s/%s: path too long\n", path, e->d_name);
            fails++;
            continue;
        }
        fails += replay(sub);
    }
    closedir(d);
    return fails;
}

int
main(int argc, char **argv)
{
    int fails = 0;
    for (int i = 1; i < argc; i++)
        fails += replay(argv[i]);
    return fails > 0 ? 1 : 0;
}
#endif
