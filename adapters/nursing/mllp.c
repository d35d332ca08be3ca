#include "mllp.h"

#include <stdlib.h>
#include <string.h>

#define MLLP_LF 0x0A

#define DEFAULT_MAX_FRAME ((size_t)1 << 20)
#define DEFAULT_HARD_CAP  ((size_t)16 << 20)

/* Most HL7 messages are one to a few KiB: start there and double, so a
 * typical frame costs two or three allocations and a 1 MiB one about
 * twelve. */
#define BODY_MIN 512

/* Buffers above this are released between frames. One large message must
 * not pin a megabyte for the rest of a long-lived connection, while the
 * usual sizes keep their buffer and allocate nothing per frame. */
#define RETAIN_MAX ((size_t)64 << 10)

enum framer_state {
    ST_OUTSIDE, /* between frames: bytes are junk until 0x0B */
    ST_FRAME,   /* after 0x0B: body bytes */
    ST_END,     /* after 0x1C: the next byte decides how the frame ended */
    ST_DEAD,    /* after MLLP_ERR_CAP or a failed allocation */
};

struct mllp_framer {
    size_t max_frame;
    size_t hard_cap;
    enum framer_state state;

    /* The frame in progress. len <= max_frame bytes are kept; total counts
     * every body byte, kept or not, and never exceeds hard_cap. */
    uint8_t *body;
    size_t cap;
    size_t len;
    size_t total;
    bool blank; /* every body byte so far is CR or LF */

    /* The current run of discarded bytes outside a frame. */
    size_t junk;

    /* Input a stopping callback left unconsumed: pend[off..plen) is
     * processed before anything the next call brings. */
    uint8_t *pend;
    size_t pcap;
    size_t off;
    size_t plen;

    /* In a callback: re-entrant feeds are refused and a reset waits until
     * the callback returns, so no loop runs over freed or reset state. */
    bool busy;
    bool reset_asked;
};

/* The body of an empty frame: callers may pass ev->body to memcpy. */
static const uint8_t empty_body[1];

static size_t
add_sat(size_t a, size_t b)
{
    return a > SIZE_MAX - b ? SIZE_MAX : a + b;
}

static bool
is_blank(uint8_t c)
{
    return c == MLLP_CR || c == MLLP_LF;
}

/* The length of the run at p that holds neither a start nor an end block:
 * in a frame these are plain body bytes. */
static size_t
body_span(const uint8_t *p, size_t n)
{
    size_t k = 0;
    while (k < n && p[k] != MLLP_SB && p[k] != MLLP_EB)
        k++;
    return k;
}

static void
frame_clear(mllp_framer *f)
{
    f->len = 0;
    f->total = 0;
    f->blank = true;
}

/* Make room for need <= max_frame bytes of body. Fails with -1, the kept
 * bytes unchanged, when memory runs out. */
static int
body_reserve(mllp_framer *f, size_t need)
{
    /* Released here rather than at the end of the previous frame: that
     * frame's body may still be borrowed by a callback that stopped. */
    if (f->len == 0 && f->cap > RETAIN_MAX) {
        free(f->body);
        f->body = NULL;
        f->cap = 0;
    }

    if (need <= f->cap)
        return 0;
    size_t ncap = f->cap > 0 ? f->cap : BODY_MIN;
    while (ncap < need)
        ncap = ncap > SIZE_MAX / 2 ? SIZE_MAX : ncap * 2;
    if (ncap > f->max_frame)
        ncap = f->max_frame;
    uint8_t *nb = realloc(f->body, ncap);
    if (nb == NULL)
        return -1;
    f->body = nb;
    f->cap = ncap;
    return 0;
}

/* Keep up to max_frame bytes of the body and count the rest. Fails with
 * -1, the frame unchanged, when memory runs out. */
static int
body_append(mllp_framer *f, const uint8_t *p, size_t k)
{
    size_t room = f->max_frame - f->len;
    size_t keep = k < room ? k : room;
    if (keep > 0) {
        if (body_reserve(f, f->len + keep) != 0)
            return -1;
        memcpy(f->body + f->len, p, keep);
        f->len += keep;
    }
    f->total += k;
    for (size_t i = 0; f->blank && i < k; i++)
        f->blank = is_blank(p[i]);
    return 0;
}

static void
pend_drop(mllp_framer *f)
{
    f->off = 0;
    f->plen = 0;
    if (f->pcap > RETAIN_MAX) {
        free(f->pend);
        f->pend = NULL;
        f->pcap = 0;
    }
}

/* Append n bytes to the unconsumed input, moving what is left to the
 * front first. Fails with -1, the pending bytes unchanged. */
static int
pend_append(mllp_framer *f, const uint8_t *p, size_t n)
{
    if (f->off > 0) {
        memmove(f->pend, f->pend + f->off, f->plen - f->off);
        f->plen -= f->off;
        f->off = 0;
    }
    if (n > SIZE_MAX - f->plen)
        return -1;
    size_t need = f->plen + n;
    if (need > f->pcap) {
        size_t ncap = f->pcap > 0 ? f->pcap : BODY_MIN;
        while (ncap < need)
            ncap = ncap > SIZE_MAX / 2 ? SIZE_MAX : ncap * 2;
        uint8_t *np = realloc(f->pend, ncap);
        if (np == NULL)
            return -1;
        f->pend = np;
        f->pcap = ncap;
    }
    memcpy(f->pend + f->plen, p, n);
    f->plen = need;
    return 0;
}

/* Clear the stream state. Buffers are kept unless large: a reset framer
 * usually serves the next connection at once. */
static void
framer_clear(mllp_framer *f)
{
    f->state = ST_OUTSIDE;
    frame_clear(f);
    f->junk = 0;
    if (f->cap > RETAIN_MAX) {
        free(f->body);
        f->body = NULL;
        f->cap = 0;
    }
    pend_drop(f);
    f->reset_asked = false;
}

/* A failed allocation has lost input, so no later frame of this stream
 * can be trusted: stop framing until reset. The caller closes the
 * connection and the sender resends on a new one. framer_run sets the
 * same state itself, as it may be reading the pending bytes. */
static int
framer_oom(mllp_framer *f)
{
    f->state = ST_DEAD;
    pend_drop(f);
    return -1;
}

static int
emit(mllp_framer *f, mllp_cb cb, void *user, const mllp_event *ev)
{
    f->busy = true;
    int rc = cb(user, ev);
    f->busy = false;
    return rc;
}

/* The event for the frame that just ended. The body stays in the buffer,
 * which nothing touches until the callback has returned. */
static mllp_event
frame_event(const mllp_framer *f, unsigned flags, uint8_t bad)
{
    mllp_event ev = {.kind = MLLP_FRAME};
    ev.body = f->body != NULL ? f->body : empty_body;
    ev.len = f->len;
    ev.total = f->total;
    ev.flags = flags;
    if (f->total > f->max_frame)
        ev.flags |= MLLP_F_OVERSIZE;
    ev.bad_byte = bad;
    /* An untrusted end is answered AE 207 even for an empty body: the bytes
     * after it, which may be the sender's real message, are discarded, and
     * the sender must learn why it gets no AA. */
    bool keepalive =
        f->blank && (ev.flags & (MLLP_F_BAD_END | MLLP_F_OVERSIZE)) == 0;
    ev.kind = keepalive ? MLLP_KEEPALIVE : MLLP_FRAME;
    return ev;
}

/* The byte after 0x1C. */
static int
end_byte(mllp_framer *f, uint8_t c, mllp_cb cb, void *user)
{
    mllp_event ev;
    if (c == MLLP_CR) {
        ev = frame_event(f, 0, 0);
        f->state = ST_OUTSIDE;
    } else if (c == MLLP_SB) {
        ev = frame_event(f, MLLP_F_NO_CR, 0);
        f->state = ST_FRAME;
    } else {
        /* The frame ends at 0x1C, since content never holds one; the bad
         * byte opens a run of junk up to the next start block. */
        ev = frame_event(f, MLLP_F_BAD_END, c);
        f->state = ST_OUTSIDE;
        f->junk = 1;
    }
    frame_clear(f);
    return emit(f, cb, user, &ev);
}

/* Run the state machine over p[0..n). Stops after the event whose callback
 * returns non-zero; *used says how many bytes were consumed. */
static int
framer_run(mllp_framer *f, const uint8_t *p, size_t n, mllp_cb cb, void *user,
           size_t *used)
{
    size_t i = 0;
    int rc = 0;
    while (i < n && rc == 0 && !f->reset_asked) {
        switch (f->state) {
        case ST_OUTSIDE: {
            const uint8_t *sb = memchr(p + i, MLLP_SB, n - i);
            if (sb == NULL) {
                f->junk = add_sat(f->junk, n - i);
                i = n;
                break;
            }
            size_t k = (size_t)(sb - (p + i));
            f->junk = add_sat(f->junk, k);
            i += k + 1;
            f->state = ST_FRAME;
            frame_clear(f);
            if (f->junk > 0) {
                mllp_event ev = {.kind = MLLP_JUNK, .len = f->junk};
                f->junk = 0;
                rc = emit(f, cb, user, &ev);
            }
            break;
        }
        case ST_FRAME: {
            size_t k = body_span(p + i, n - i);
            size_t room = f->hard_cap - f->total;
            if (k > room) {
                /* A body byte past the cap: the sender is not speaking
                 * MLLP, or is flooding us. Nothing after it is read. */
                mllp_event ev = {.kind = MLLP_ERR_CAP,
                                 .len = f->hard_cap,
                                 .total = f->hard_cap};
                f->state = ST_DEAD;
                frame_clear(f);
                i = n;
                rc = emit(f, cb, user, &ev);
                break;
            }
            if (body_append(f, p + i, k) != 0) {
                /* p may point into the pending bytes: mllp_feed drops
                 * them once this loop has left them. */
                f->state = ST_DEAD;
                i = n;
                rc = -1;
                break;
            }
            i += k;
            if (i == n)
                break;
            if (p[i++] == MLLP_EB) {
                f->state = ST_END;
                break;
            }
            mllp_event ev = {.kind = MLLP_RESTART, .len = f->total};
            frame_clear(f);
            rc = emit(f, cb, user, &ev);
            break;
        }
        case ST_END:
            rc = end_byte(f, p[i++], cb, user);
            break;
        case ST_DEAD:
            i = n;
            break;
        }
    }
    /* A reset asked for from a callback drops the rest of this input: it
     * belongs to the stream the caller has just abandoned. */
    if (f->reset_asked)
        i = n;
    *used = i;
    return rc;
}

mllp_framer *
mllp_framer_new(size_t max_frame, size_t hard_cap)
{
    mllp_framer *f = calloc(1, sizeof *f);
    if (f == NULL)
        return NULL;
    f->max_frame = max_frame > 0 ? max_frame : DEFAULT_MAX_FRAME;
    f->hard_cap = hard_cap > 0 ? hard_cap : DEFAULT_HARD_CAP;
    f->state = ST_OUTSIDE;
    f->blank = true;
    return f;
}

void
mllp_framer_free(mllp_framer *f)
{
    if (f == NULL)
        return;
    free(f->body);
    free(f->pend);
    free(f);
}

void
mllp_framer_reset(mllp_framer *f)
{
    if (f == NULL)
        return;
    /* From inside a callback, the loop that called it still reads the
     * framer's buffers: it performs the reset once the callback returns. */
    if (f->busy) {
        f->reset_asked = true;
        return;
    }
    framer_clear(f);
}

bool
mllp_in_frame(const mllp_framer *f)
{
    return f != NULL && (f->state == ST_FRAME || f->state == ST_END);
}

size_t
mllp_pending(const mllp_framer *f)
{
    return f != NULL ? f->plen - f->off : 0;
}

int
mllp_feed(mllp_framer *f, const uint8_t *data, size_t n, mllp_cb cb, void *user)
{
    if (f == NULL || cb == NULL || (data == NULL && n > 0) || f->busy)
        return -1;
    if (f->state == ST_DEAD) {
        pend_drop(f);
        return 0;
    }

    size_t used = 0;
    int rc;
    if (f->off < f->plen) {
        /* Bytes left by a stopped callback come first. New data goes
         * behind them, never around them, so events stay in stream
         * order. */
        if (n > 0 && pend_append(f, data, n) != 0)
            return framer_oom(f);
        rc = framer_run(f, f->pend + f->off, f->plen - f->off, cb, user, &used);
        f->off += used;
        if (f->off == f->plen || f->state == ST_DEAD)
            pend_drop(f);
    } else {
        rc = framer_run(f, data, n, cb, user, &used);
        if (used < n && pend_append(f, data + used, n - used) != 0)
            return framer_oom(f);
    }
    if (f->reset_asked)
        framer_clear(f);
    return rc;
}

int
mllp_finish(mllp_framer *f, mllp_cb cb, void *user)
{
    if (f == NULL || cb == NULL || f->busy)
        return -1;

    if (f->off < f->plen) {
        /* A callback that stops here keeps the rest, the end of the stream
         * included, for the next mllp_finish. */
        int rc = mllp_feed(f, NULL, 0, cb, user);
        if (rc != 0) {
            if (f->state == ST_DEAD)
                framer_clear(f);
            return rc;
        }
    }

    mllp_event ev = {.kind = MLLP_JUNK};
    bool report = true;
    switch (f->state) {
    case ST_END:
        ev = frame_event(f, MLLP_F_NO_CR, 0);
        break;
    case ST_FRAME:
        ev.kind = MLLP_TRUNCATED;
        ev.len = f->total;
        ev.total = f->total;
        break;
    case ST_OUTSIDE:
        ev.kind = MLLP_JUNK;
        ev.len = f->junk;
        report = f->junk > 0;
        break;
    case ST_DEAD:
        report = false;
        break;
    }
    /* Reset before the callback, so it sees a framer that is no longer in
     * a frame; the buffers, and so ev.body, survive until after it. */
    f->state = ST_OUTSIDE;
    f->junk = 0;
    frame_clear(f);
    int rc = report ? emit(f, cb, user, &ev) : 0;
    framer_clear(f);
    return rc;
}

bool
mllp_body_ok(const uint8_t *body, size_t len)
{
    if (len == 0)
        return true;
    if (body == NULL)
        return false;
    return memchr(body, MLLP_SB, len) == NULL &&
           memchr(body, MLLP_EB, len) == NULL;
}

int
mllp_wrap(const uint8_t *body, size_t len, uint8_t **out, size_t *outlen)
{
    if (out == NULL || outlen == NULL || (body == NULL && len > 0) ||
        len > SIZE_MAX - 3)
        return -1;
    uint8_t *p = malloc(len + 3);
    if (p == NULL)
        return -1;
    p[0] = MLLP_SB;
    if (len > 0)
        memcpy(p + 1, body, len);
    p[len + 1] = MLLP_EB;
    p[len + 2] = MLLP_CR;
    *out = p;
    *outlen = len + 3;
    return 0;
}
