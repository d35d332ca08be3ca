/* The hub's ZAP handler (ZeroMQ RFC 27): which CURVE client keys may
 * connect, and as which agency.
 *
 * libzmq asks the socket bound to inproc://zeromq.zap.01 in the hub's
 * context about every CURVE handshake on the hub socket. This module owns
 * that REP socket and answers from the configuration's curve clients: a
 * known key gets "200" with its agency as the User-Id, which libzmq then
 * attaches to every message of that connection (the broker reads it with
 * zmq_msg_gets(msg, "User-Id")); an unknown key gets "400" and a log line
 * naming the key's first characters and the peer address.
 *
 * Served from the broker's single-threaded zmq_poll loop: the handshake
 * waits in libzmq's I/O thread until zap_serve answers, and the loop
 * never waits longer than 100 ms, so a connection waits at most that.
 */
#ifndef HUB_ZAP_H
#define HUB_ZAP_H

#include "config.h"
#include "handover/err.h"

typedef struct zap zap;

/* The ZAP domain the hub socket sets (ZMQ_ZAP_DOMAIN). */
#define ZAP_DOMAIN "handover"

/* Bind the handler in ctx for cfg's curve clients (borrowed until
 * zap_free). Call before the hub socket binds, so no handshake can find
 * the handler missing (libzmq would then let every key in). Returns owned
 * in *out. HOV_ESYS: the inproc endpoint is taken or the socket failed;
 * HOV_ENOMEM. */
HOV_NODISCARD hov_err zap_open(zap **out, void *ctx, const config *cfg,
                               hov_error *err);

/* The REP socket, for the caller's zmq_poll (ZMQ_POLLIN). */
void *zap_socket(zap *z);

/* Answer every request waiting, without blocking. */
void zap_serve(zap *z);

/* The agency a frame's User-Id names, or -1 (no User-Id: the frame did
 * not come through CURVE and ZAP). */
int zap_agency(const char *user_id);

/* Close the socket and free. NULL is a no-op. */
void zap_free(zap *z);

#endif
