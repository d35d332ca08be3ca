/* Handover error codes and error context.
 *
 * One list, HOV_ERR_MAP, generates the hov_err enum and hov_strerror, so the
 * numbers and texts cannot drift apart. Numbers are frozen: a retired code
 * keeps its number under an _OBSOLETE name. The Nak codes in
 * proto/handover.proto (enum NakCode) use the same names and numbers, and
 * tests/unit/err_test.c checks that the two lists agree.
 *
 * Fallible functions return hov_err and take a hov_error *err last. The first
 * failure wins: hov_fail() fills err only while it is empty, so cleanup errors
 * never hide the cause. Messages are one line, name the action and the object
 * (event id, queue, file, peer) and carry no patient identifiers other than
 * what the caller deliberately puts there.
 */
#ifndef HANDOVER_ERR_H
#define HANDOVER_ERR_H

#include <stdarg.h>
#include <stddef.h>

#define HOV_ERR_MAP(X)                                                         \
    X(OK, 0, "success")                                                        \
    X(ENOMEM, 1, "out of memory")                                              \
    X(ETOOBIG, 2, "message exceeds the configured size limit")                 \
    X(ESTOREFULL, 3, "event store is full (LMDB map size reached)")            \
    X(EMALFORMED, 4, "message could not be decoded")                           \
    X(EFRAME, 5, "unknown or unexpected frame type")                           \
    X(EINVAL, 6, "a field holds an invalid value")                             \
    X(EMISSING, 7, "a required field is missing")                              \
    X(ENHSNUMBER, 8, "invalid NHS number")                                     \
    X(EORGCODE, 9, "invalid organisation code")                                \
    X(EIMPERSONATE, 10, "agency may not publish as this organisation")         \
    X(ECONFLICT, 11, "event id already held with different content")           \
    X(EDUPLICATE, 12, "event id already held with the same content")           \
    X(ENOROUTE, 13, "no route for this event")                                 \
    X(EUNKNOWNDEST, 14, "destination is not a configured organisation")        \
    X(ECONSENT, 15, "consent required for this destination")                   \
    X(EREPLYTO, 16, "in_reply_to does not name an event delivered to sender")  \
    X(EREPLYTOLATER, 17, "in_reply_to not yet delivered: resend later")        \
    X(ESTORE, 18, "event store failure")                                       \
    X(ESTATE, 19, "operation not allowed in the current state")                \
    X(ECONFIG, 20, "invalid configuration")                                    \
    X(ESESSION, 21, "no session: send Hello first")                            \
    X(EUNAVAILABLE, 22, "temporarily unavailable: resend later")               \
    X(ETIMEDOUT, 23, "timed out")                                              \
    X(EIO, 24, "input/output error")                                           \
    X(ENOTFOUND, 25, "not found")                                              \
    X(ESYS, 26, "system call failed")                                          \
    X(ECODE, 27, "code not in its table")                                      \
    X(EPERM, 28, "not permitted")                                              \
    X(EPROTO, 29, "hub protocol violation")

typedef enum hov_err {
#define HOV_ERR_ENUM(name, num, text) HOV_##name = num,
    HOV_ERR_MAP(HOV_ERR_ENUM)
#undef HOV_ERR_ENUM
} hov_err;

/* Results that must not be dropped: with -Werror a dropped result fails the
 * build (GCC does not accept a (void) cast as handling it). */
#define HOV_NODISCARD __attribute__((warn_unused_result))

#define HOV_PRINTF(f, a) __attribute__((format(printf, f, a)))

/* Context for a person: category, foreign cause and one line of text. */
typedef struct hov_error {
    hov_err code;  /* category: decides what the program does next */
    int cause;     /* errno, MDB_*, zmq errno or uv code; 0 if none */
    char msg[256]; /* "fsync outbox/7f3c.tmp: No space left on device" */
} hov_error;

/* "HOV_ENAME: sentence" for code. Never NULL, needs no buffer; an unknown
 * code gives "HOV_EUNKNOWN: unknown error code". */
const char *hov_strerror(hov_err code);

/* "HOV_ENAME" alone, or "HOV_EUNKNOWN". Never NULL. */
const char *hov_errname(hov_err code);

/* Record a failure in err (which may be NULL) and return code. Only the first
 * failure is kept: when err->code is already set, err is left unchanged and
 * code is still returned. cause is the foreign error number or 0. */
hov_err hov_fail(hov_error *err, hov_err code, int cause, const char *fmt, ...)
    HOV_PRINTF(4, 5);

/* As hov_fail with a va_list. */
hov_err hov_vfail(hov_error *err, hov_err code, int cause, const char *fmt,
                  va_list ap);

/* Reset err to "no error". */
void hov_error_clear(hov_error *err);

#endif
