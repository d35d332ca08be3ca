/* The status socket: what an on-call engineer and a monitoring check see
 * of a running hub, and the few things an operator may change.
 *
 * A Unix stream socket, <data_dir>/hub.sock, mode 0660 (owner and group
 * only: the file mode is the access control). It is created at start with
 * a umask that never leaves it world-accessible, replaces a stale socket
 * left by a hub that did not stop cleanly (hub.lock already guarantees no
 * other hub uses the folder), and is removed on a clean shutdown.
 *
 * Protocol: the client sends ONE line, a command and its arguments
 * separated by spaces, "--json" anywhere for JSON; the hub answers and
 * closes. The answer's first line is the result, OK, WARNING or CRITICAL
 * (the hub's health, for `status`; OK for every other command that
 * succeeds) or ERROR (the command was refused; the body says why); then
 * the body: text for a person, or one JSON object. Commands: status,
 * adapters, queues, dead-letters [show ID], redrive ID|all, pause AGENCY,
 * resume AGENCY, overdue, metrics (Prometheus text), help. pause, resume
 * and redrive need "--operator NAME" and are audited as operator:NAME,
 * with the peer's uid and pid as the kernel reports them.
 *
 * Everything runs on the broker's loop thread, from the same zmq_poll as
 * the hub socket: the broker adds status_poll_items to its poll set and
 * calls status_serve after the poll. Client sockets are non-blocking; a
 * client that has not sent its line within 2 s, or does not read its answer
 * within 10 s, is closed; at most STATUS_CLIENTS_MAX are served at once
 * (others wait in the listen backlog). Write commands use their own short
 * LMDB write transaction between the broker's commits.
 *
 * The broker reports what happens through the status_on_* hooks, after the
 * commit that made it durable; status reads the broker's sessions and
 * counters through the callbacks in status_hub, and the queues directly.
 */
#ifndef HUB_STATUS_H
#define HUB_STATUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

#include "config.h"
#include "handover.pb-c.h"
#include "handover/err.h"
#include "queue.h"
#include "route.h"
#include "store.h"

#define STATUS_SOCKET_NAME "hub.sock"
#define STATUS_CLIENTS_MAX 8
/* Poll items status_poll_items may fill: the listener and the clients. */
#define STATUS_POLL_MAX (1 + STATUS_CLIENTS_MAX)

typedef struct status status;

/* The broker's counters since start. */
typedef struct status_counters {
    uint64_t accepted, duplicates, naks, delivered, retried, dead;
} status_counters;

/* One session as the broker holds it; strings borrowed for the call. */
typedef struct status_session {
    const char *client;
    config_agency agency;
    bool consume;
    bool gone; /* its connection is gone; dropped at the next timers */
    unsigned credit;
    size_t in_flight;
    uint64_t last_rx_mono_ms; /* when it last sent a frame (monotonic) */
} status_session;

typedef void (*status_session_fn)(void *arg, const status_session *s);

/* What status needs of the hub. Everything is borrowed until status_free;
 * the callbacks run on the loop thread, synchronously, and must not call
 * back into status. */
typedef struct status_hub {
    const config *cfg;
    store *st;     /* opened before status_open */
    queue *queues; /* AGENCY_COUNT queues, indexed by config_agency */
    const char *instance;
    void *broker; /* passed to the callbacks */
    void (*counters)(void *broker, status_counters *out);
    void (*sessions)(void *broker, status_session_fn fn, void *arg);
} status_hub;

/* Create a closed status service for hub (copied; what it points to is
 * borrowed). Returns owned; free with status_free. HOV_ENOMEM. */
HOV_NODISCARD hov_err status_new(status **out, const status_hub *hub,
                                 hov_error *err);

/* Once the store is open: bind <data_dir>/hub.sock, load the paused
 * destinations (the queues are paused before the first dispatch) and start
 * the catch-up of outcome deadlines.
 * HOV_ECONFIG: the socket path is too long for a Unix socket (shorten
 * data_dir). HOV_EIO: the path is taken by something that is not a
 * socket, or bind/chmod/listen failed (the message names the path and the
 * reason). HOV_ESTORE: the pause records cannot be read. */
HOV_NODISCARD hov_err status_open(status *s, hov_error *err);

/* Close every client and the listener, remove the socket file, free.
 * NULL is a no-op. */
void status_free(status *s);

/* Fill up to cap poll items (cap >= STATUS_POLL_MAX to serve everyone) and
 * lower *timeout_ms to the next client deadline. Returns the number
 * filled; pass the same items, with revents, to status_serve. */
size_t status_poll_items(status *s, zmq_pollitem_t *items, size_t cap,
                         long *timeout_ms);

/* Accept, read, answer and write as the poll results allow; close clients
 * past their deadline; continue the outcome catch-up for a few ms. Never
 * blocks. No LMDB write transaction may be open. */
void status_serve(status *s, const zmq_pollitem_t *items, size_t n);

/* A session said Hello (up) or was dropped. Borrows client. */
void status_on_adapter(status *s, const char *client, config_agency agency,
                       bool consume, bool up);

/* An accepted, committed, non-duplicate event, routed as routes says
 * (rates per destination). Borrows routes for the call. */
void status_on_publish(status *s, const route_result *routes);

typedef enum status_settled {
    STATUS_SETTLED_DONE, /* the partner accepted it */
    STATUS_SETTLED_DEAD, /* it went to dead letters */
} status_settled;

/* A delivery (queue: its agency) left the queue. */
void status_on_settle(status *s, unsigned queue, status_settled how);

#endif
