/* MLLP framing (HL7 MLLP transport, Release 1; domain brief 5.7).
 *
 * A frame is 0x0B, the message bytes, then 0x1C 0x0D. The framer is a pure
 * state machine: feed it whatever a read returned, in pieces of any size,
 * and it reports events in stream order. It never does I/O, so the MLLP
 * listener, the outbound client, the simulator, the tests and the fuzzer
 * share it.
 *
 * Rules (domain 5.7, each covered by a file in samples/hl7/mllp/):
 *  - bytes before 0x0B are junk: discarded and reported (MLLP_JUNK);
 *  - 0x0B inside a frame: the sender restarted; the partial frame is
 *    dropped (MLLP_RESTART) and a new one begins;
 *  - 0x1C 0x0D ends a frame (MLLP_FRAME);
 *  - 0x1C then 0x0B, or 0x1C then the end of the stream: the frame is
 *    accepted with a warning (MLLP_FRAME, flags MLLP_F_NO_CR);
 *  - 0x1C then any other byte: the frame ends at 0x1C but is not trusted
 *    (MLLP_FRAME with MLLP_F_BAD_END and bad_byte), and the following bytes
 *    up to the next 0x0B are junk;
 *  - an empty frame (nothing, or only CR and LF, between 0x0B and 0x1C) is
 *    a keep-alive (MLLP_KEEPALIVE): no ACK, nothing published;
 *  - a body over max_frame: the first max_frame bytes are kept and the rest
 *    read and discarded to the end block, then MLLP_FRAME with
 *    MLLP_F_OVERSIZE and total = the whole body's length; no end block
 *    within hard_cap bytes: MLLP_ERR_CAP (the caller closes the connection);
 *  - the end of the stream in the middle of a frame: MLLP_TRUNCATED from
 *    mllp_finish.
 */
#ifndef HANDOVER_MLLP_H
#define HANDOVER_MLLP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MLLP_SB 0x0B
#define MLLP_EB 0x1C
#define MLLP_CR 0x0D

typedef enum mllp_kind {
    MLLP_FRAME = 1, /* a complete frame: body, len, flags */
    MLLP_KEEPALIVE, /* an empty frame */
    MLLP_JUNK,      /* len bytes outside a frame were discarded */
    MLLP_RESTART,   /* a partial frame of len bytes was dropped */
    MLLP_TRUNCATED, /* stream ended mid-frame after len body bytes */
    MLLP_ERR_CAP,   /* no end block within hard_cap: close */
} mllp_kind;

enum {
    MLLP_F_NO_CR = 1 << 0,    /* 0x1C not followed by 0x0D (EOF or 0x0B) */
    MLLP_F_BAD_END = 1 << 1,  /* 0x1C followed by bad_byte: not trusted */
    MLLP_F_OVERSIZE = 1 << 2, /* body over max_frame: truncated to it */
};

typedef struct mllp_event {
    mllp_kind kind;
    const uint8_t *body; /* MLLP_FRAME: borrowed until the next call */
    size_t len;          /* bytes kept (FRAME), or discarded/dropped */
    size_t total;        /* MLLP_FRAME: the whole body's length */
    unsigned flags;      /* MLLP_F_* */
    uint8_t bad_byte;    /* with MLLP_F_BAD_END */
} mllp_event;

/* Called for each event, in stream order. Return 0 to go on, non-zero to
 * stop mllp_feed at once (it returns that value; the bytes not yet
 * consumed are kept and processed by the next mllp_feed call). */
typedef int (*mllp_cb)(void *user, const mllp_event *ev);

typedef struct mllp_framer mllp_framer;

/* max_frame: body limit (default 1 MiB when 0); hard_cap: bytes read for
 * one frame before giving up (default 16 MiB when 0). Returns owned, or
 * NULL when out of memory. Free with mllp_framer_free. */
mllp_framer *mllp_framer_new(size_t max_frame, size_t hard_cap);
void mllp_framer_free(mllp_framer *f); /* NULL is a no-op */

/* Feed n bytes. Calls cb for every event they complete. Returns 0, the
 * callback's non-zero value, or -1 out of memory. After MLLP_ERR_CAP the
 * framer discards everything until mllp_framer_reset. */
int mllp_feed(mllp_framer *f, const uint8_t *data, size_t n, mllp_cb cb,
              void *user);

/* The stream ended: report a frame that was pending its CR (0x1C seen,
 * accepted with MLLP_F_NO_CR) or MLLP_TRUNCATED for a frame cut off.
 * Returns as mllp_feed. The framer is reset afterwards. */
int mllp_finish(mllp_framer *f, mllp_cb cb, void *user);

/* Is a frame in progress (0x0B seen, end block not yet)? For the 30 s
 * frame-completion timer. */
bool mllp_in_frame(const mllp_framer *f);

void mllp_framer_reset(mllp_framer *f);

/* Wrap body in a frame: *out (owned, malloc'd) = 0x0B body 0x1C 0x0D.
 * Returns 0, or -1 out of memory. */
int mllp_wrap(const uint8_t *body, size_t len, uint8_t **out, size_t *outlen);

/* Added with the implementation; the contract above is unchanged.
 *
 * Lifetimes and callbacks. ev and ev->body are valid while the callback
 * runs; when it stops mllp_feed (or mllp_finish), ev->body stays valid
 * until the next call into the framer. For MLLP_FRAME and MLLP_KEEPALIVE,
 * body is never NULL, even when len is 0. The callback runs on the
 * caller's thread, inside mllp_feed or mllp_finish. It may call
 * mllp_in_frame and mllp_pending; mllp_feed and mllp_finish called from it
 * return -1 and do nothing; mllp_framer_reset called from it takes effect
 * when it returns, and the rest of the input is dropped with the old
 * stream. It must not call mllp_framer_free.
 *
 * Events. MLLP_KEEPALIVE may carry MLLP_F_NO_CR. A body of only CR and LF
 * that ended with MLLP_F_BAD_END or MLLP_F_OVERSIZE is an MLLP_FRAME, so
 * it is answered. MLLP_RESTART and MLLP_TRUNCATED: len counts every body
 * byte read, kept or not. MLLP_ERR_CAP: len and total are hard_cap. A
 * run of junk is reported once, when 0x0B or mllp_finish ends it.
 *
 * Failure. After -1 (out of memory) input has been lost, so the framer
 * discards everything until mllp_framer_reset, as after MLLP_ERR_CAP, and
 * mllp_finish reports nothing: close the connection. A callback that
 * returns -1 is indistinguishable from this, so callbacks should stop
 * with a positive value. mllp_feed and mllp_finish also return -1, doing
 * nothing, for a NULL framer or callback, or data NULL with n > 0;
 * mllp_wrap for NULL out or outlen, or body NULL with len > 0.
 *
 * mllp_finish. If its callback stops it while bytes kept by an earlier
 * stop are still being processed, the rest, the end of the stream
 * included, is kept for the next mllp_finish; the framer is reset once
 * the end of the stream has been reported. */

/* Bytes kept by a callback that stopped and not processed yet. While this
 * is non-zero, resume with mllp_feed(f, NULL, 0, ...) before reading more
 * from the peer: bytes fed meanwhile are queued behind them, and a peer
 * that pipelines could otherwise grow the queue without limit. */
size_t mllp_pending(const mllp_framer *f);

/* Can body be framed as it is? MLLP content never holds 0x0B or 0x1C: a
 * receiver would cut the message at such a byte, so check a body before
 * mllp_wrap, which frames whatever it is given. NULL with len 0 is an
 * empty body, which is fine. */
bool mllp_body_ok(const uint8_t *body, size_t len);

#endif
