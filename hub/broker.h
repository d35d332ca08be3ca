/* The broker: the hub's ROUTER socket, sessions, the group commit and
 * delivery.
 *
 * One thread runs everything, in a loop with named phases (style R17):
 *
 *   1. poll   wait for frames or the next timer (never longer than 100 ms)
 *   2. read   drain every frame that is waiting, up to batch_max; stateless
 *             checks answer at once (Nak); publishes and settles are staged
 *   3. commit apply every staged operation in ONE LMDB write transaction and
 *             commit it durably: one fsync serves the whole batch
 *   4. reply  only now send the Acks and Naks of the batch, and make the
 *             committed changes visible in memory
 *   5. timers heartbeats, dead sessions, settle timeouts, back-off wake-ups
 *   6. deliver send ready deliveries within each consumer's credit
 *
 * Frames that arrive while phase 3 syncs wait in ZeroMQ's queue and form the
 * next batch, so the batch grows with the load and no timer adds latency at
 * low load. Nothing is Acked before the commit that contains it is durable.
 */
#ifndef HUB_BROKER_H
#define HUB_BROKER_H

#include <signal.h>

#include "config.h"
#include "handover/err.h"

typedef struct broker broker;

/* Create a broker for cfg. Borrows cfg until broker_free. */
HOV_NODISCARD hov_err broker_new(broker **out, const config *cfg,
                                 hov_error *err);

/* Open the store in cfg->data_dir, rebuild the delivery queues from it and
 * bind cfg->endpoint. HOV_ESTORE, HOV_EIO, HOV_ESYS (bind failed: the
 * message names the endpoint and the reason). */
HOV_NODISCARD hov_err broker_open(broker *b, hov_error *err);

/* Serve until *stop becomes non-zero (set it from a signal handler), then
 * finish the open batch (commit and reply) and return HOV_OK. Returns an
 * error only when the store can no longer be written safely (the process
 * should exit non-zero with the message). */
HOV_NODISCARD hov_err broker_run(broker *b, volatile sig_atomic_t *stop,
                                 hov_error *err);

/* Close the socket and the store, and free. NULL is a no-op. */
void broker_free(broker *b);

#endif
