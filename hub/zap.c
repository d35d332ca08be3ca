#include "zap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "handover/log.h"
#include "handover/map.h"

#define ZAP_ENDPOINT "inproc://zeromq.zap.01"
/* version, request id, domain, address, identity, mechanism, credentials */
#define ZAP_FRAMES    7
#define ZAP_FRAME_MAX 256

struct zap {
    void *sock;
    hov_map *keys; /* 32-byte public key -> const config_curve_client */
};

typedef struct zap_request {
    char part[ZAP_FRAMES][ZAP_FRAME_MAX];
    size_t len[ZAP_FRAMES];
    size_t n;      /* frames read */
    bool overlong; /* a frame or the message was longer than we keep */
} zap_request;

hov_err
zap_open(zap **out, void *ctx, const config *cfg, hov_error *err)
{
    zap *z = calloc(1, sizeof *z);
    if (z == NULL)
        return hov_fail(err, HOV_ENOMEM, 0, "allocate the ZAP handler");
    hov_err e = hov_map_new(&z->keys, err);
    for (size_t i = 0; e == HOV_OK && i < cfg->n_curve_clients; i++) {
        const config_curve_client *k = &cfg->curve_clients[i];
        uint8_t bin[32];
        if (zmq_z85_decode(bin, k->public_key) == NULL)
            e = hov_fail(err, HOV_ECONFIG, 0,
                         "curve client %s: public_key is not Z85", k->name);
        else
            e = hov_map_put(z->keys, bin, sizeof bin, (void *)k, err);
    }
    if (e != HOV_OK) {
        zap_free(z);
        return e;
    }
    int linger = 0;
    z->sock = zmq_socket(ctx, ZMQ_REP);
    if (z->sock == NULL ||
        zmq_setsockopt(z->sock, ZMQ_LINGER, &linger, sizeof linger) != 0 ||
        zmq_bind(z->sock, ZAP_ENDPOINT) != 0) {
        int ze = zmq_errno();
        zap_free(z);
        return hov_fail(err, HOV_ESYS, ze, "ZAP handler %s: %s", ZAP_ENDPOINT,
                        zmq_strerror(ze));
    }
    hov_info("curve on: %zu client keys; unknown keys are refused",
             cfg->n_curve_clients);
    *out = z;
    return HOV_OK;
}

void *
zap_socket(zap *z)
{
    return z->sock;
}

int
zap_agency(const char *user_id)
{
    return user_id ? config_agency_parse(user_id) : -1;
}

/* Read one whole request (all its parts), without blocking. */
static bool
read_request(zap *z, zap_request *r)
{
    memset(r, 0, sizeof *r);
    int more = 1;
    while (more) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        /* The first part decides whether a request is waiting; the rest of
         * a message is there as soon as its first part is. */
        if (zmq_msg_recv(&m, z->sock, r->n == 0 ? ZMQ_DONTWAIT : 0) < 0) {
            zmq_msg_close(&m);
            return r->n > 0;
        }
        if (r->n < ZAP_FRAMES && zmq_msg_size(&m) < ZAP_FRAME_MAX) {
            memcpy(r->part[r->n], zmq_msg_data(&m), zmq_msg_size(&m));
            r->len[r->n] = zmq_msg_size(&m);
        } else {
            r->overlong = true;
        }
        r->n++;
        more = zmq_msg_more(&m);
        zmq_msg_close(&m);
    }
    return true;
}

static void
send_reply(zap *z, const zap_request *r, const char *code, const char *text,
           const char *user_id)
{
    /* RFC 27: version, request id (echoed), status code, status text,
     * user id, metadata (none). */
    const char *version = "1.0";
    bool ok = zmq_send(z->sock, version, strlen(version), ZMQ_SNDMORE) >= 0 &&
              zmq_send(z->sock, r->part[1], r->n > 1 ? r->len[1] : 0,
                       ZMQ_SNDMORE) >= 0 &&
              zmq_send(z->sock, code, strlen(code), ZMQ_SNDMORE) >= 0 &&
              zmq_send(z->sock, text, strlen(text), ZMQ_SNDMORE) >= 0 &&
              zmq_send(z->sock, user_id, strlen(user_id), ZMQ_SNDMORE) >= 0 &&
              zmq_send(z->sock, "", 0, 0) >= 0;
    if (!ok)
        hov_warn("ZAP reply failed: %s; the connection waits for its "
                 "handshake timeout",
                 zmq_strerror(zmq_errno()));
}

static void
answer(zap *z, const zap_request *r)
{
    char address[64];
    snprintf(address, sizeof address, "%.*s", (int)(r->n > 3 ? r->len[3] : 0),
             r->part[3]);
    if (r->overlong || r->n != ZAP_FRAMES || r->len[0] != 3 ||
        memcmp(r->part[0], "1.0", 3) != 0) {
        hov_warn("curve refused a malformed ZAP request (%zu parts) "
                 "address=%s",
                 r->n, address);
        send_reply(z, r, "400", "malformed ZAP request", "");
        return;
    }
    if (r->len[5] != 5 || memcmp(r->part[5], "CURVE", 5) != 0 ||
        r->len[6] != 32) {
        hov_warn("curve refused a client without a CURVE key "
                 "mechanism=%.*s address=%s",
                 (int)r->len[5], r->part[5], address);
        send_reply(z, r, "400", "CURVE required", "");
        return;
    }
    const config_curve_client *k = hov_map_get(z->keys, r->part[6], 32);
    if (k == NULL) {
        /* A public key is not a secret, but the first characters are
         * enough to find it in a keys folder. */
        char z85[41];
        if (zmq_z85_encode(z85, (const uint8_t *)r->part[6], 32) == NULL)
            snprintf(z85, sizeof z85, "?");
        hov_warn("curve refused unknown client key=%.8s... address=%s: add "
                 "its public key to curve.clients to let it in",
                 z85, address);
        send_reply(z, r, "400", "unknown client key", "");
        return;
    }
    hov_info("curve accepted client key=%.8s... name=%s agency=%s address=%s",
             k->public_key, k->name, config_agency_name(k->agency), address);
    send_reply(z, r, "200", "OK", config_agency_name(k->agency));
}

void
zap_serve(zap *z)
{
    zap_request r;
    while (read_request(z, &r))
        answer(z, &r);
}

void
zap_free(zap *z)
{
    if (z == NULL)
        return;
    if (z->sock)
        zmq_close(z->sock);
    hov_map_free(z->keys);
    free(z);
}
