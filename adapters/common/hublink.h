/* The hub client on a libuv loop: every adapter's link to the hub.
 *
 * Wraps hov_client (include/handover/client.h). The ZeroMQ socket's
 * descriptor (ZMQ_FD) is watched with uv_poll; it is edge-triggered and
 * only says "look at ZMQ_EVENTS", so after every wake-up, and after every
 * send (publish, settle), the link drains the socket until it is empty. A
 * timer drives heartbeats and resends even when nothing arrives, which is
 * also how a restarted or silent hub is noticed.
 *
 * Callbacks run on the loop thread, never from inside hublink_publish or
 * hublink_settle, so a callback may publish and settle freely. Every
 * pointer in the hov_msg a callback receives is borrowed for the call.
 */
#ifndef HANDOVER_HUBLINK_H
#define HANDOVER_HUBLINK_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "handover/client.h"

typedef struct hublink hublink;

typedef struct hublink_cbs {
    /* An Ack or a Nak for a publish; msg->seq is what hublink_publish
     * returned and msg->user its user pointer. */
    void (*answer)(void *user, const hov_msg *msg);
    /* A delivery (only when the client consumes). */
    void (*deliver)(void *user, const hov_msg *msg);
    /* The hub came up (answered Hello) or went away; may be NULL. */
    void (*hub_state)(void *user, bool up);
} hublink_cbs;

/* CURVE for the hub link, from an adapter's settings hub.curve_server_key
 * (the hub's public key, Z85) and hub.curve_key_file (this adapter's key
 * pair, from handover-ctl keygen). Both empty: plain TCP. */
typedef struct hublink_curve {
    bool on;
    char server_key[HOV_CURVE_KEY_Z85];
    char public_key[HOV_CURVE_KEY_Z85];
    char secret_key[HOV_CURVE_KEY_Z85];
} hublink_curve;

/* Fill k from the two settings (borrowed; "" or NULL: unset), reading
 * the key file now so a bad key stops the adapter at start with the
 * file named. HOV_ECONFIG: one setting without the other, or a bad key;
 * HOV_EIO: unreadable file. */
HOV_NODISCARD hov_err hublink_curve_load(hublink_curve *k,
                                         const char *server_key,
                                         const char *key_file, hov_error *err);

/* Point opts at k's keys when k is on (k must outlive hublink_open). */
void hublink_curve_apply(const hublink_curve *k, hov_client_opts *opts);

/* Forget the secret key. */
void hublink_curve_wipe(hublink_curve *k);

/* Create the link on loop and connect to endpoint. Borrows opts, endpoint
 * and cbs for the call; user is passed to every callback. Returns owned in
 * *out, released with hublink_close. HOV_ESYS when the socket or the
 * loop handles cannot be made. */
HOV_NODISCARD hov_err hublink_open(uv_loop_t *loop, const hov_client_opts *opts,
                                   const char *endpoint, const hublink_cbs *cbs,
                                   void *user, hublink **out, hov_error *err);

/* Publish a serialised handover.Event (copied); *seq (may be NULL) gets
 * the number its answer will carry. The client keeps it and resends it
 * until the hub answers. */
HOV_NODISCARD hov_err hublink_publish(hublink *h, const uint8_t *data,
                                      size_t len, void *user, uint64_t *seq,
                                      hov_error *err);

/* Settle a delivery (only after the partner has answered). */
HOV_NODISCARD hov_err hublink_settle(hublink *h, uint64_t delivery_id,
                                     hov_settle outcome, const char *reason,
                                     hov_error *err);

/* Settle and say so in the log, the same way in every adapter: done at
 * INFO as "delivered event=<id> attempt=<n><extra>", retry and rejected
 * at WARN with the reason. extra (may be NULL) is appended as is, e.g.
 * " control_id=e09339b8a5025cfcaf76". A settle the hub cannot take now is
 * logged too: the hub delivers the event again and the partner's
 * idempotency key absorbs it. h NULL (stopping): logged only. */
void hublink_settle_log(hublink *h, uint64_t delivery_id, const char *event_id,
                        uint32_t attempt, hov_settle how, const char *reason,
                        const char *extra);

/* True while the hub answers. */
bool hublink_up(const hublink *h);

/* Publishes not yet answered. */
size_t hublink_pending(const hublink *h);

/* Stop watching, close the handles and free the link once libuv has
 * closed them (the loop must run for that). No callback runs after this
 * call. NULL is a no-op. */
void hublink_close(hublink *h);

#endif
