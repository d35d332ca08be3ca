/* The hub client: how an adapter, a tool or the benchmark talks to the hub.
 *
 * A client connects as one agency over a ZeroMQ DEALER socket, publishes
 * events and receives their Acks and Naks, and (when it consumes) receives
 * deliveries and settles them. It keeps every unconfirmed publish and sends
 * it again after the hub restarts or stays silent, so a publish that the
 * caller has not yet seen answered is never lost; the hub's deduplication
 * absorbs the resends (an Ack marked duplicate).
 *
 * Threading: a client belongs to one thread. It never blocks except inside
 * hov_client_next and hov_client_publish_wait, for at most the timeout
 * given. For an event loop (libuv), watch hov_client_fd and call
 * hov_client_next with timeout 0 until it returns HOV_MSG_NONE: the
 * descriptor is edge-triggered (ZMQ_FD), so it must be drained. Also call
 * hov_client_next(c, 0, ...) at least every heartbeat interval (a timer),
 * which sends heartbeats and resends.
 */
#ifndef HANDOVER_CLIENT_H
#define HANDOVER_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "handover/err.h"

typedef struct hov_client hov_client;

typedef struct hov_client_opts {
    const char *agency; /* gp | nursing | social | voluntary: required */
    const char *name;   /* stable client name, used as the ZeroMQ routing
                           id; a restarted adapter that keeps its name gets
                           its unsettled deliveries back at once. Default:
                           "<agency>-<pid>" */
    bool consume;       /* receive this agency's deliveries */
    unsigned credit;    /* max unsettled deliveries held; default 64 */
    unsigned resend_ms; /* resend a publish unanswered this long;
                           default 10000 */
    /* CURVE (docs/architecture.md, "Security: CURVE and ZAP"): the hub's
     * public key and this client's key pair, each 40 Z85 characters, set
     * on the socket before it connects. All three or none (NULL: plain
     * TCP). The hub takes the agency from the key: a Hello naming another
     * agency is refused. The strings are copied into ZeroMQ at
     * hov_client_new; the caller may wipe them afterwards. */
    const char *curve_server_key;
    const char *curve_public_key;
    const char *curve_secret_key;
} hov_client_opts;

/* A CURVE key in Z85, with its NUL. */
#define HOV_CURVE_KEY_Z85 41

/* Read a key file written by `handover-ctl keygen` (the same layout as a
 * CZMQ certificate: lines `public-key = "..."` and `secret-key = "..."`,
 * other lines ignored). public_key gets the public key; secret_key, when
 * not NULL, the secret one, which must then be present, must match the
 * public key, and the file must not be readable by others (mode 0600 or
 * 0640). HOV_EIO: unreadable; HOV_ECONFIG: what is wrong, and how to fix
 * it. Never puts a secret key in err. */
HOV_NODISCARD hov_err hov_curve_keyfile_read(const char *path,
                                             char public_key[HOV_CURVE_KEY_Z85],
                                             char secret_key[HOV_CURVE_KEY_Z85],
                                             hov_error *err);

typedef enum hov_msg_kind {
    HOV_MSG_NONE = 0, /* nothing arrived within the timeout */
    HOV_MSG_ACK,      /* a publish is durably accepted */
    HOV_MSG_NAK,      /* a publish is refused */
    HOV_MSG_DELIVER,  /* a delivery to settle */
} hov_msg_kind;

/* One message from the hub. Every pointer is borrowed until the next call
 * of hov_client_next, hov_client_publish_wait or hov_client_free. */
typedef struct hov_msg {
    hov_msg_kind kind;
    /* ACK and NAK */
    uint64_t seq;         /* the publish it answers */
    void *user;           /* the user pointer given to hov_client_publish */
    const char *event_id; /* may be "" on a NAK for an unreadable frame */
    bool duplicate;       /* ACK: the hub already held this event */
    const char *warning;  /* ACK: "" or what part of the routing failed */
    size_t n_routed;      /* ACK: destinations */
    char *const *routed_to;
    hov_err code;       /* NAK: why, as a code */
    const char *reason; /* NAK: a sentence a person can act on */
    bool temporary;     /* NAK: resend later unchanged */
    /* DELIVER */
    uint64_t delivery_id;
    const char *destination;
    uint32_t attempt;
    const uint8_t *event; /* serialised handover.Event, in the view */
    size_t event_len;
    const char *view;
} hov_msg;

/* Create a client. Borrows opts for the call (strings are copied).
 * Returns owned; free with hov_client_free. HOV_EINVAL: bad options;
 * HOV_ENOMEM; HOV_ESYS: ZeroMQ could not create the socket. */
HOV_NODISCARD hov_err hov_client_new(hov_client **out,
                                     const hov_client_opts *opts,
                                     hov_error *err);

/* Connect to the hub's endpoint and say Hello. Does not wait: publishes
 * made before the hub answers are held and sent when it does.
 * HOV_ESYS: a malformed endpoint. */
HOV_NODISCARD hov_err hov_client_connect(hov_client *c, const char *endpoint,
                                         hov_error *err);

/* Publish a serialised handover.Event. Copies data and keeps it until the
 * hub answers; *seq (may be NULL) gets the number the Ack or Nak will carry,
 * and user comes back in that hov_msg. HOV_ENOMEM. */
HOV_NODISCARD hov_err hov_client_publish(hov_client *c, const uint8_t *data,
                                         size_t len, void *user, uint64_t *seq,
                                         hov_error *err);

/* Wait up to timeout_ms (0: poll, -1: for ever) for one message and fill
 * *msg; HOV_OK with msg->kind HOV_MSG_NONE on timeout. Also sends
 * heartbeats, notices a restarted or silent hub, says Hello again and
 * resends what was unanswered. HOV_ESYS on a socket failure. */
HOV_NODISCARD hov_err hov_client_next(hov_client *c, int timeout_ms,
                                      hov_msg *msg, hov_error *err);

/* Publish and wait for this event's answer (ACK or NAK in *msg). Other
 * messages that arrive meanwhile are kept for hov_client_next.
 * HOV_ETIMEDOUT: no answer within timeout_ms (the publish stays pending and
 * will still be resent). */
HOV_NODISCARD hov_err hov_client_publish_wait(hov_client *c,
                                              const uint8_t *data, size_t len,
                                              int timeout_ms, hov_msg *msg,
                                              hov_error *err);

/* Outcome of a delivery, as in proto/handover.proto SettleOutcome. */
typedef enum hov_settle {
    HOV_SETTLE_DONE = 0,     /* the partner accepted it */
    HOV_SETTLE_RETRY = 1,    /* try again later, with back-off */
    HOV_SETTLE_REJECTED = 2, /* the partner refused it: dead letters */
} hov_settle;

/* Settle a delivery; reason (may be NULL) is kept for retries and dead
 * letters. Call only after the partner has answered. HOV_EUNAVAILABLE: the
 * hub is unreachable now; the hub will deliver it again, so the partner
 * must deduplicate (it does, by the event id). */
HOV_NODISCARD hov_err hov_client_settle(hov_client *c, uint64_t delivery_id,
                                        hov_settle outcome, const char *reason,
                                        hov_error *err);

/* Change the number of unsettled deliveries this client will hold. */
HOV_NODISCARD hov_err hov_client_set_credit(hov_client *c, unsigned credit,
                                            hov_error *err);

/* Publishes not yet answered. */
size_t hov_client_pending(const hov_client *c);

/* True once the hub has answered Hello, until it goes silent. */
bool hov_client_hub_up(const hov_client *c);

/* The descriptor to watch for readability (ZMQ_FD): edge-triggered; drain
 * with hov_client_next(c, 0, ...) until HOV_MSG_NONE. */
HOV_NODISCARD hov_err hov_client_fd(hov_client *c, int *fd, hov_error *err);

/* Close the socket (unsent frames get a short linger) and free. Pending
 * publishes are dropped: the caller knows which were never answered. NULL
 * is a no-op. */
void hov_client_free(hov_client *c);

#endif
