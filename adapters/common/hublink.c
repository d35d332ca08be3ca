#include "hublink.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "handover/log.h"

/* How often the client is driven when nothing arrives: well inside the
 * hub's heartbeat interval (1 s by default), so heartbeats and resends
 * are never late by more than this. */
#define TICK_MS 200

struct hublink {
    hov_client *client;
    uv_poll_t poll;
    uv_timer_t tick; /* heartbeats and resends */
    uv_timer_t kick; /* a drain on the next loop turn, after a send */
    hublink_cbs cbs;
    void *user;
    bool was_up;
    bool closing;
    bool draining;
    int open_handles;
};

static void
link_drain(hublink *h)
{
    /* A callback that publishes schedules a kick rather than recursing:
     * the drain below then simply runs again on the next turn. */
    if (h->closing || h->draining)
        return;
    h->draining = true;
    for (;;) {
        hov_msg msg;
        hov_error err = {0};
        if (hov_client_next(h->client, 0, &msg, &err) != HOV_OK) {
            hov_errorf("hub link: %s", err.msg);
            break;
        }
        bool up = hov_client_hub_up(h->client);
        if (up != h->was_up) {
            h->was_up = up;
            if (up)
                hov_info("hub up");
            else
                hov_warn("hub down: deliveries wait, publishes are kept "
                         "and resent");
            if (h->cbs.hub_state != NULL)
                h->cbs.hub_state(h->user, up);
            if (h->closing)
                break;
        }
        if (msg.kind == HOV_MSG_NONE)
            break;
        if (msg.kind == HOV_MSG_DELIVER) {
            if (h->cbs.deliver != NULL)
                h->cbs.deliver(h->user, &msg);
        } else if (h->cbs.answer != NULL) {
            h->cbs.answer(h->user, &msg);
        }
        if (h->closing)
            break;
    }
    h->draining = false;
}

static void
on_poll(uv_poll_t *p, int status, int events)
{
    (void)events;
    hublink *h = p->data;
    if (status < 0)
        hov_warn("hub link: poll: %s", uv_strerror(status));
    link_drain(h);
}

static void
on_timer(uv_timer_t *t)
{
    link_drain(t->data);
}

/* Sends happen inside hov_client calls; ZMQ_FD may then have consumed
 * the edge that announced a frame, so drain again soon. */
static void
link_kick(hublink *h)
{
    if (!h->closing)
        uv_timer_start(&h->kick, on_timer, 0, 0);
}

hov_err
hublink_open(uv_loop_t *loop, const hov_client_opts *opts, const char *endpoint,
             const hublink_cbs *cbs, void *user, hublink **out, hov_error *err)
{
    hublink *h = calloc(1, sizeof *h);
    if (h == NULL)
        return hov_fail(err, HOV_ENOMEM, 0, "hub link");
    h->cbs = *cbs;
    h->user = user;
    hov_err rc = hov_client_new(&h->client, opts, err);
    if (rc == HOV_OK)
        rc = hov_client_connect(h->client, endpoint, err);
    int fd = -1;
    if (rc == HOV_OK)
        rc = hov_client_fd(h->client, &fd, err);
    if (rc != HOV_OK) {
        hov_client_free(h->client);
        free(h);
        return rc;
    }
    int uv = uv_poll_init(loop, &h->poll, fd);
    if (uv == 0) {
        uv_timer_init(loop, &h->tick);
        uv_timer_init(loop, &h->kick);
        h->poll.data = h->tick.data = h->kick.data = h;
        uv = uv_poll_start(&h->poll, UV_READABLE, on_poll);
    }
    if (uv != 0) {
        hov_client_free(h->client);
        free(h);
        return hov_fail(err, HOV_ESYS, uv, "watch the hub socket: %s",
                        uv_strerror(uv));
    }
    h->open_handles = 3;
    uv_timer_start(&h->tick, on_timer, TICK_MS, TICK_MS);
    link_kick(h);
    *out = h;
    return HOV_OK;
}

hov_err
hublink_publish(hublink *h, const uint8_t *data, size_t len, void *user,
                uint64_t *seq, hov_error *err)
{
    hov_err rc = hov_client_publish(h->client, data, len, user, seq, err);
    link_kick(h);
    return rc;
}

hov_err
hublink_settle(hublink *h, uint64_t delivery_id, hov_settle outcome,
               const char *reason, hov_error *err)
{
    hov_err rc =
        hov_client_settle(h->client, delivery_id, outcome, reason, err);
    link_kick(h);
    return rc;
}

void
hublink_settle_log(hublink *h, uint64_t delivery_id, const char *event_id,
                   uint32_t attempt, hov_settle how, const char *reason,
                   const char *extra)
{
    static const char *const names[] = {"done", "retry", "rejected"};
    if (extra == NULL)
        extra = "";
    if (how == HOV_SETTLE_DONE)
        hov_info("delivered event=%s attempt=%u%s", event_id, attempt, extra);
    else
        hov_warn("settled %s event=%s attempt=%u%s reason=\"%s\"", names[how],
                 event_id, attempt, extra, reason ? reason : "");
    hov_error err = {0};
    if (h != NULL &&
        hublink_settle(h, delivery_id, how, reason, &err) != HOV_OK)
        hov_warn("settle event=%s: %s; the hub will deliver it again", event_id,
                 err.msg);
}

hov_err
hublink_curve_load(hublink_curve *k, const char *server_key,
                   const char *key_file, hov_error *err)
{
    memset(k, 0, sizeof *k);
    bool have_server = server_key != NULL && server_key[0] != '\0';
    bool have_file = key_file != NULL && key_file[0] != '\0';
    if (!have_server && !have_file)
        return HOV_OK;
    if (!have_server || !have_file)
        return hov_fail(err, HOV_ECONFIG, 0,
                        "hub.curve_server_key and hub.curve_key_file go "
                        "together: set both (CURVE) or neither (plain TCP)");
    if (strlen(server_key) != HOV_CURVE_KEY_Z85 - 1)
        return hov_fail(err, HOV_ECONFIG, 0,
                        "hub.curve_server_key must be the hub's public key, "
                        "40 Z85 characters (from its hub.pub)");
    memcpy(k->server_key, server_key, HOV_CURVE_KEY_Z85);
    hov_err rc =
        hov_curve_keyfile_read(key_file, k->public_key, k->secret_key, err);
    if (rc != HOV_OK) {
        hublink_curve_wipe(k);
        return rc == HOV_EIO ? rc : HOV_ECONFIG;
    }
    k->on = true;
    return HOV_OK;
}

void
hublink_curve_apply(const hublink_curve *k, hov_client_opts *opts)
{
    if (!k->on)
        return;
    opts->curve_server_key = k->server_key;
    opts->curve_public_key = k->public_key;
    opts->curve_secret_key = k->secret_key;
}

void
hublink_curve_wipe(hublink_curve *k)
{
    sodium_memzero(k, sizeof *k);
}

bool
hublink_up(const hublink *h)
{
    return hov_client_hub_up(h->client);
}

size_t
hublink_pending(const hublink *h)
{
    return hov_client_pending(h->client);
}

static void
on_closed(uv_handle_t *handle)
{
    hublink *h = handle->data;
    if (--h->open_handles == 0) {
        hov_client_free(h->client);
        free(h);
    }
}

void
hublink_close(hublink *h)
{
    if (h == NULL || h->closing)
        return;
    h->closing = true;
    uv_close((uv_handle_t *)&h->poll, on_closed);
    uv_close((uv_handle_t *)&h->tick, on_closed);
    uv_close((uv_handle_t *)&h->kick, on_closed);
}
