/* Hub protocol framing over ZeroMQ: one protobuf Frame per ZeroMQ message,
 * preceded on the hub's ROUTER socket by the peer's routing id.
 *
 * Only this module, lib/client.c and hub/broker.c see zmq errno values
 * (style R5); they are translated into hov_err here with zmq_strerror's text.
 */
#ifndef HANDOVER_FRAME_H
#define HANDOVER_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "handover.pb-c.h"
#include "handover/err.h"

/* Protocol version carried in Hello.protocol. */
#define HOV_PROTOCOL 1

/* Serialise f and send it on sock without blocking. When id is not NULL the
 * routing id is sent first (ROUTER). Borrows f and id.
 * HOV_EUNAVAILABLE: the peer's queue is full (EAGAIN) or the peer is gone
 *   (EHOSTUNREACH with ZMQ_ROUTER_MANDATORY); nothing was sent.
 * HOV_ENOMEM, HOV_ESYS: nothing was sent. */
HOV_NODISCARD hov_err hov_frame_send(void *sock, const void *id, size_t idlen,
                                     const Handover__Frame *f, hov_error *err);

/* Decode one Frame from bytes, allocating with alloc (NULL: malloc).
 * Returns owned, free with handover__frame__free_unpacked(f, alloc).
 * HOV_EMALFORMED: the bytes are not a Frame.
 * HOV_EFRAME: a Frame whose kind this version does not know. */
HOV_NODISCARD hov_err hov_frame_decode(const uint8_t *data, size_t len,
                                       ProtobufCAllocator *alloc,
                                       Handover__Frame **out, hov_error *err);

/* Name of a frame kind for logs ("publish", "ack", ...). */
const char *hov_frame_kind_name(Handover__Frame__KindCase kind);

#endif
