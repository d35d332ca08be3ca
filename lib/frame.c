#include "handover/frame.h"

#include <errno.h>
#include <string.h>
#include <zmq.h>

const char *
hov_frame_kind_name(Handover__Frame__KindCase kind)
{
    switch (kind) {
    case HANDOVER__FRAME__KIND_HELLO:
        return "hello";
    case HANDOVER__FRAME__KIND_PUBLISH:
        return "publish";
    case HANDOVER__FRAME__KIND_ACK:
        return "ack";
    case HANDOVER__FRAME__KIND_NAK:
        return "nak";
    case HANDOVER__FRAME__KIND_DELIVER:
        return "deliver";
    case HANDOVER__FRAME__KIND_SETTLE:
        return "settle";
    case HANDOVER__FRAME__KIND_CREDIT:
        return "credit";
    case HANDOVER__FRAME__KIND_HEARTBEAT:
        return "heartbeat";
    default:
        return "unknown";
    }
}

static hov_err
frame_zmq_err(hov_error *err, int e, const char *what)
{
    if (e == EAGAIN || e == EHOSTUNREACH)
        return hov_fail(err, HOV_EUNAVAILABLE, e, "%s: %s", what,
                        zmq_strerror(e));
    if (e == ENOMEM)
        return hov_fail(err, HOV_ENOMEM, e, "%s: %s", what, zmq_strerror(e));
    return hov_fail(err, HOV_ESYS, e, "%s: %s", what, zmq_strerror(e));
}

hov_err
hov_frame_send(void *sock, const void *id, size_t idlen,
               const Handover__Frame *f, hov_error *err)
{
    size_t len = handover__frame__get_packed_size(f);
    zmq_msg_t msg;
    if (zmq_msg_init_size(&msg, len) != 0)
        return frame_zmq_err(err, zmq_errno(), "allocate frame");
    handover__frame__pack(f, zmq_msg_data(&msg));
    if (id != NULL) {
        /* With ZMQ_ROUTER_MANDATORY an unknown id fails here, on the id
         * part, so no half-sent message is left behind. */
        if (zmq_send(sock, id, idlen, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
            int e = zmq_errno();
            zmq_msg_close(&msg);
            return frame_zmq_err(err, e, "send routing id");
        }
    }
    if (zmq_msg_send(&msg, sock, ZMQ_DONTWAIT) < 0) {
        int e = zmq_errno();
        zmq_msg_close(&msg); /* still ours after a failed send */
        return frame_zmq_err(err, e, "send frame");
    }
    return HOV_OK;
}

hov_err
hov_frame_decode(const uint8_t *data, size_t len, ProtobufCAllocator *alloc,
                 Handover__Frame **out, hov_error *err)
{
    Handover__Frame *f = handover__frame__unpack(alloc, len, data);
    if (f == NULL)
        return hov_fail(err, HOV_EMALFORMED, 0,
                        "frame of %zu bytes is not a valid protobuf Frame",
                        len);
    if (f->kind_case == HANDOVER__FRAME__KIND__NOT_SET) {
        unsigned field = 0;
        if (f->base.n_unknown_fields > 0)
            field = f->base.unknown_fields[0].tag;
        handover__frame__free_unpacked(f, alloc);
        if (field)
            return hov_fail(err, HOV_EFRAME, 0,
                            "unknown frame type (Frame field %u); this hub "
                            "speaks protocol %d",
                            field, HOV_PROTOCOL);
        return hov_fail(err, HOV_EFRAME, 0, "empty frame: no frame type set");
    }
    *out = f;
    return HOV_OK;
}
