#include "handover/client.h"

#include <ctype.h>
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "handover.pb-c.h"
#include "handover/frame.h"
#include "handover/log.h"
#include "handover/map.h"
#include "handover/timeutil.h"

/* A publish the hub has not answered yet. */
typedef struct pending {
    uint64_t seq;
    void *user;
    uint64_t sent_ms; /* 0: not sent yet */
    struct pending *prev, *next;
    size_t len;
    uint8_t data[];
} pending;

/* Frames returned by hov_client_next are decoded into this region, which
 * is reset at the next call: the hov_msg borrows it until then anyway, and
 * a busy adapter then allocates nothing per frame. What does not fit goes
 * to malloc and is freed at the reset. */
typedef struct bump {
    uint8_t *buf;
    size_t cap, used;
    void **big;
    size_t nbig, capbig;
} bump;

static void *
bump_alloc(void *data, size_t n)
{
    bump *b = data;
    n = (n + 15) & ~(size_t)15;
    if (b->buf != NULL && b->cap - b->used >= n) {
        void *p = b->buf + b->used;
        b->used += n;
        return p;
    }
    if (b->nbig == b->capbig) {
        size_t cap = b->capbig ? b->capbig * 2 : 16;
        void **nb = realloc(b->big, cap * sizeof *nb);
        if (nb == NULL)
            return NULL;
        b->big = nb;
        b->capbig = cap;
    }
    void *p = malloc(n);
    if (p != NULL)
        b->big[b->nbig++] = p;
    return p;
}

static void
bump_free(void *data, void *p)
{
    (void)data; /* all at once, in bump_reset */
    (void)p;
}

static void
bump_reset(bump *b)
{
    for (size_t i = 0; i < b->nbig; i++)
        free(b->big[i]);
    b->nbig = 0;
    b->used = 0;
}

/* A frame kept for hov_client_next while hov_client_publish_wait waited. */
typedef struct stash {
    Handover__Frame *f;
    void *user;
    struct stash *next;
} stash;

struct hov_client {
    void *ctx;
    void *sock;
    char agency[16];
    char name[128];
    bool consume;
    unsigned credit;
    unsigned resend_ms;
    unsigned heartbeat_ms;
    char hub_instance[40];
    bool hub_up;       /* the hub answered our latest Hello */
    bool hello_unsent; /* the last Hello could not be sent (no link) */
    uint64_t hello_sent_ms;
    uint64_t last_rx_ms; /* monotonic */
    uint64_t last_tx_ms;
    uint64_t next_seq;
    pending *head, *tail; /* in order of (re)sending */
    hov_map *by_seq;      /* seq -> pending */
    size_t n_pending;
    stash *stash_head, *stash_tail;
    Handover__Frame *cur; /* backs the hov_msg last returned */
    bool cur_in_bump;     /* cur lives in the bump region */
    bump region;
    ProtobufCAllocator region_alloc;
};

static hov_err
zfail(hov_error *err, const char *what)
{
    int e = zmq_errno();
    return hov_fail(err, HOV_ESYS, e, "%s: %s", what, zmq_strerror(e));
}

static bool
z85_key_ok(const char *k)
{
    uint8_t bin[32];
    return k != NULL && strlen(k) == HOV_CURVE_KEY_Z85 - 1 &&
           zmq_z85_decode(bin, k) != NULL;
}

/* CURVE client: the hub's public key and ours, before connect. The keys
 * are checked here because a bad one only shows later as a handshake that
 * never completes, which looks like a hub that is down. */
static hov_err
client_curve(hov_client *c, const hov_client_opts *o, hov_error *err)
{
    if (o->curve_server_key == NULL || o->curve_public_key == NULL ||
        o->curve_secret_key == NULL)
        return hov_fail(err, HOV_EINVAL, 0,
                        "client: CURVE needs curve_server_key, "
                        "curve_public_key and curve_secret_key together");
    if (!z85_key_ok(o->curve_server_key))
        return hov_fail(err, HOV_EINVAL, 0,
                        "client: curve_server_key is not 40 Z85 characters "
                        "(the hub's public key, from its .pub file)");
    if (!z85_key_ok(o->curve_public_key) || !z85_key_ok(o->curve_secret_key))
        return hov_fail(err, HOV_EINVAL, 0,
                        "client: curve_public_key and curve_secret_key must "
                        "be 40 Z85 characters each (handover-ctl keygen)");
    /* Z85 text with its NUL: ZeroMQ takes 41 bytes as Z85. */
    if (zmq_setsockopt(c->sock, ZMQ_CURVE_SERVERKEY, o->curve_server_key,
                       HOV_CURVE_KEY_Z85) ||
        zmq_setsockopt(c->sock, ZMQ_CURVE_PUBLICKEY, o->curve_public_key,
                       HOV_CURVE_KEY_Z85) ||
        zmq_setsockopt(c->sock, ZMQ_CURVE_SECRETKEY, o->curve_secret_key,
                       HOV_CURVE_KEY_Z85))
        return zfail(err, "client CURVE keys");
    return HOV_OK;
}

/* `NAME = "VALUE"` with NAME given; VALUE (40 chars) into out. */
static bool
keyfile_field(const char *line, const char *name, char out[HOV_CURVE_KEY_Z85])
{
    while (isspace((unsigned char)*line))
        line++;
    size_t n = strlen(name);
    if (strncmp(line, name, n) != 0)
        return false;
    line += n;
    while (*line == ' ' || *line == '\t')
        line++;
    if (*line++ != '=')
        return false;
    while (*line == ' ' || *line == '\t')
        line++;
    if (*line++ != '"')
        return false;
    const char *end = strchr(line, '"');
    if (end == NULL || end - line != HOV_CURVE_KEY_Z85 - 1)
        return false;
    memcpy(out, line, HOV_CURVE_KEY_Z85 - 1);
    out[HOV_CURVE_KEY_Z85 - 1] = '\0';
    return true;
}

hov_err
hov_curve_keyfile_read(const char *path, char public_key[HOV_CURVE_KEY_Z85],
                       char secret_key[HOV_CURVE_KEY_Z85], hov_error *err)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return hov_fail(err, HOV_EIO, errno, "open key file %s: %s", path,
                        strerror(errno));
    struct stat st;
    if (secret_key != NULL &&
        (fstat(fileno(f), &st) != 0 || (st.st_mode & 0007) != 0)) {
        fclose(f);
        return hov_fail(err, HOV_ECONFIG, 0,
                        "key file %s holds a secret key and is readable by "
                        "others: chmod 600 %s",
                        path, path);
    }
    char line[512];
    bool have_pub = false, have_sec = false;
    public_key[0] = '\0';
    if (secret_key != NULL)
        secret_key[0] = '\0';
    while (fgets(line, sizeof line, f) != NULL) {
        if (keyfile_field(line, "public-key", public_key))
            have_pub = true;
        else if (secret_key != NULL &&
                 keyfile_field(line, "secret-key", secret_key))
            have_sec = true;
    }
    sodium_memzero(line, sizeof line);
    fclose(f);
    if (!have_pub || !z85_key_ok(public_key))
        return hov_fail(err, HOV_ECONFIG, 0,
                        "key file %s has no public-key = \"<40 Z85 "
                        "characters>\" line (write one with handover-ctl "
                        "keygen)",
                        path);
    if (secret_key == NULL)
        return HOV_OK;
    char derived[HOV_CURVE_KEY_Z85];
    bool ok = have_sec && z85_key_ok(secret_key) &&
              zmq_curve_public(derived, secret_key) == 0 &&
              strcmp(derived, public_key) == 0;
    if (!ok) {
        sodium_memzero(secret_key, HOV_CURVE_KEY_Z85);
        return hov_fail(err, HOV_ECONFIG, 0,
                        "key file %s has no valid secret-key matching its "
                        "public-key: give the NAME.key file that handover-ctl "
                        "keygen wrote, not NAME.pub",
                        path);
    }
    return HOV_OK;
}

hov_err
hov_client_new(hov_client **out, const hov_client_opts *o, hov_error *err)
{
    if (o == NULL || o->agency == NULL || o->agency[0] == '\0')
        return hov_fail(err, HOV_EINVAL, 0, "client: agency is required");
    hov_client *c = calloc(1, sizeof *c);
    if (c == NULL)
        return hov_fail(err, HOV_ENOMEM, 0, "allocate client");
    snprintf(c->agency, sizeof c->agency, "%s", o->agency);
    if (o->name && o->name[0])
        snprintf(c->name, sizeof c->name, "%s", o->name);
    else
        snprintf(c->name, sizeof c->name, "%s-%ld", o->agency, (long)getpid());
    c->consume = o->consume;
    c->credit = o->credit ? o->credit : 64;
    c->resend_ms = o->resend_ms ? o->resend_ms : 10000;
    c->heartbeat_ms = 1000;
    c->next_seq = 1;
    c->region.cap = 64 * 1024;
    c->region.buf = malloc(c->region.cap); /* NULL: everything mallocs */
    c->region_alloc.alloc = bump_alloc;
    c->region_alloc.free = bump_free;
    c->region_alloc.allocator_data = &c->region;
    hov_err e = hov_map_new(&c->by_seq, err);
    if (e != HOV_OK) {
        free(c);
        return e;
    }
    c->ctx = zmq_ctx_new();
    if (c->ctx == NULL || (c->sock = zmq_socket(c->ctx, ZMQ_DEALER)) == NULL) {
        e = zfail(err, "client socket");
        hov_client_free(c);
        return e;
    }
    int linger = 1000, one = 1, hwm = 100000, ivl = 100;
    /* IMMEDIATE: while the hub is down, sends fail at once instead of
     * queueing frames that would reach a restarted hub before our Hello. */
    if (zmq_setsockopt(c->sock, ZMQ_ROUTING_ID, c->name, strlen(c->name)) ||
        zmq_setsockopt(c->sock, ZMQ_LINGER, &linger, sizeof linger) ||
        zmq_setsockopt(c->sock, ZMQ_IMMEDIATE, &one, sizeof one) ||
        zmq_setsockopt(c->sock, ZMQ_SNDHWM, &hwm, sizeof hwm) ||
        zmq_setsockopt(c->sock, ZMQ_RCVHWM, &hwm, sizeof hwm) ||
        zmq_setsockopt(c->sock, ZMQ_RECONNECT_IVL, &ivl, sizeof ivl)) {
        e = zfail(err, "client setsockopt");
        hov_client_free(c);
        return e;
    }
    if (o->curve_server_key || o->curve_public_key || o->curve_secret_key) {
        e = client_curve(c, o, err);
        if (e != HOV_OK) {
            hov_client_free(c);
            return e;
        }
    }
    *out = c;
    return HOV_OK;
}

static hov_err
client_send(hov_client *c, const Handover__Frame *f, hov_error *err)
{
    hov_err e = hov_frame_send(c->sock, NULL, 0, f, err);
    if (e == HOV_OK)
        c->last_tx_ms = hov_mono_ms();
    return e;
}

static void
client_hello(hov_client *c)
{
    Handover__Hello h = HANDOVER__HELLO__INIT;
    h.protocol = HOV_PROTOCOL;
    h.agency = c->agency;
    h.client = c->name;
    h.consume = c->consume;
    h.credit = c->credit;
    Handover__Frame f = HANDOVER__FRAME__INIT;
    f.kind_case = HANDOVER__FRAME__KIND_HELLO;
    f.hello = &h;
    hov_error err = {0};
    c->hello_sent_ms = hov_mono_ms();
    /* EAGAIN while the connection is not up yet: the next tick says it
     * again, soon, so a reconnecting consumer gets its deliveries back at
     * once rather than a heartbeat later. */
    c->hello_unsent = client_send(c, &f, &err) != HOV_OK;
    if (c->hello_unsent)
        hov_debug("hello not sent: %s", err.msg);
}

hov_err
hov_client_connect(hov_client *c, const char *endpoint, hov_error *err)
{
    if (zmq_connect(c->sock, endpoint) != 0)
        return zfail(err, endpoint);
    c->last_rx_ms = hov_mono_ms();
    client_hello(c);
    return HOV_OK;
}

static void
list_remove(hov_client *c, pending *p)
{
    if (p->prev)
        p->prev->next = p->next;
    else
        c->head = p->next;
    if (p->next)
        p->next->prev = p->prev;
    else
        c->tail = p->prev;
    p->prev = p->next = NULL;
}

static void
list_append(hov_client *c, pending *p)
{
    p->next = NULL;
    p->prev = c->tail;
    if (c->tail)
        c->tail->next = p;
    else
        c->head = p;
    c->tail = p;
}

/* Send one pending publish; it moves to the tail (latest sent). */
static void
send_pending(hov_client *c, pending *p)
{
    Handover__Publish pub = HANDOVER__PUBLISH__INIT;
    pub.seq = p->seq;
    pub.event.data = p->data;
    pub.event.len = p->len;
    Handover__Frame f = HANDOVER__FRAME__INIT;
    f.kind_case = HANDOVER__FRAME__KIND_PUBLISH;
    f.publish = &pub;
    hov_error err = {0};
    if (client_send(c, &f, &err) != HOV_OK) {
        p->sent_ms = 0; /* the hub is unreachable: resent after Hello */
        return;
    }
    p->sent_ms = hov_mono_ms();
    list_remove(c, p);
    list_append(c, p);
}

hov_err
hov_client_publish(hov_client *c, const uint8_t *data, size_t len, void *user,
                   uint64_t *seq, hov_error *err)
{
    pending *p = malloc(sizeof *p + len);
    if (p == NULL)
        return hov_fail(err, HOV_ENOMEM, 0, "hold publish of %zu bytes", len);
    p->seq = c->next_seq++;
    p->user = user;
    p->sent_ms = 0;
    p->len = len;
    memcpy(p->data, data, len);
    hov_err e = hov_map_put(c->by_seq, &p->seq, sizeof p->seq, p, err);
    if (e != HOV_OK) {
        free(p);
        return e;
    }
    list_append(c, p);
    c->n_pending++;
    if (seq)
        *seq = p->seq;
    if (c->hub_up)
        send_pending(c, p);
    return HOV_OK;
}

/* The hub (re)answered Hello: send everything still unanswered, in order. */
static void
resend_all(hov_client *c)
{
    size_t n = c->n_pending;
    for (size_t i = 0; i < n && c->head; i++) {
        pending *p = c->head;
        send_pending(c, p);
        if (p->sent_ms == 0)
            break;
    }
}

static void
hub_lost(hov_client *c, const char *why)
{
    if (c->hub_up)
        hov_warn("hub lost client=%s: %s; saying Hello again", c->name, why);
    c->hub_up = false;
    client_hello(c);
}

static void
note_instance(hov_client *c, const char *instance)
{
    if (instance == NULL || instance[0] == '\0')
        return;
    if (c->hub_instance[0] && strcmp(c->hub_instance, instance) != 0)
        hub_lost(c, "the hub restarted");
    snprintf(c->hub_instance, sizeof c->hub_instance, "%s", instance);
}

/* Heartbeats, silence, stalled Hello, and publishes left unanswered. */
static void
tick(hov_client *c)
{
    uint64_t now = hov_mono_ms();
    uint64_t hb = c->heartbeat_ms;
    if (c->hub_up && now - c->last_rx_ms > 3 * hb + hb / 2) {
        /* Frames waiting unread mean the caller was busy, not the hub. */
        int events = 0;
        size_t len = sizeof events;
        if (zmq_getsockopt(c->sock, ZMQ_EVENTS, &events, &len) == 0 &&
            (events & ZMQ_POLLIN))
            c->last_rx_ms = now;
        else
            hub_lost(c, "no frame from the hub for 3 heartbeats");
    }
    if (!c->hub_up && now - c->hello_sent_ms >= (c->hello_unsent ? 20 : hb))
        client_hello(c);
    if (c->hub_up && now - c->last_tx_ms >= hb) {
        Handover__Heartbeat h = HANDOVER__HEARTBEAT__INIT;
        h.time_ms = hov_now_ms();
        Handover__Frame f = HANDOVER__FRAME__INIT;
        f.kind_case = HANDOVER__FRAME__KIND_HEARTBEAT;
        f.heartbeat = &h;
        hov_error err = {0};
        if (client_send(c, &f, &err) != HOV_OK)
            hov_debug("heartbeat not sent: %s", err.msg);
    }
    if (!c->hub_up)
        return;
    /* The head is the publish sent longest ago. */
    size_t n = c->n_pending;
    for (size_t i = 0; i < n && c->head; i++) {
        pending *p = c->head;
        if (p->sent_ms != 0 && now - p->sent_ms < c->resend_ms)
            break;
        send_pending(c, p);
        if (p->sent_ms == 0)
            break;
    }
}

/* Handle protocol frames; returns true when f is for the caller, with
 * *user set for an Ack or Nak (and its pending publish released). */
static bool
absorb(hov_client *c, Handover__Frame *f, void **user)
{
    c->last_rx_ms = hov_mono_ms();
    *user = NULL;
    switch (f->kind_case) {
    case HANDOVER__FRAME__KIND_HELLO:
        /* The answer to our Hello opens the session, whichever instance
         * it names: remember it, without the "restarted" path, which
         * would say Hello again and resend everything a second time. */
        if (f->hello->hub_instance && f->hello->hub_instance[0])
            snprintf(c->hub_instance, sizeof c->hub_instance, "%s",
                     f->hello->hub_instance);
        if (f->hello->heartbeat_ms)
            c->heartbeat_ms = f->hello->heartbeat_ms;
        c->hub_up = true;
        resend_all(c);
        return false;
    case HANDOVER__FRAME__KIND_HEARTBEAT:
        note_instance(c, f->heartbeat->hub_instance);
        return false;
    case HANDOVER__FRAME__KIND_ACK:
    case HANDOVER__FRAME__KIND_NAK: {
        uint64_t seq = f->kind_case == HANDOVER__FRAME__KIND_ACK ? f->ack->seq
                                                                 : f->nak->seq;
        if (f->kind_case == HANDOVER__FRAME__KIND_NAK &&
            f->nak->code == HANDOVER__NAK_CODE__HOV_ESESSION) {
            /* The hub does not know us (it restarted): the publish stays
             * pending and goes again after Hello. */
            if (c->hub_up || hov_mono_ms() - c->hello_sent_ms > 200)
                hub_lost(c, "the hub has no session for this client");
            return false;
        }
        pending *p = seq ? hov_map_del(c->by_seq, &seq, sizeof seq) : NULL;
        if (seq && p == NULL)
            return false; /* an answer to a resend already answered */
        if (p) {
            list_remove(c, p);
            c->n_pending--;
            *user = p->user;
            free(p);
        }
        return true;
    }
    case HANDOVER__FRAME__KIND_DELIVER:
        return true;
    default:
        return false;
    }
}

static void
fill_msg(hov_msg *m, const Handover__Frame *f, void *user)
{
    memset(m, 0, sizeof *m);
    m->user = user;
    m->event_id = "";
    m->warning = "";
    m->reason = "";
    switch (f->kind_case) {
    case HANDOVER__FRAME__KIND_ACK:
        m->kind = HOV_MSG_ACK;
        m->seq = f->ack->seq;
        m->event_id = f->ack->event_id;
        m->duplicate = f->ack->duplicate;
        m->warning = f->ack->warning;
        m->n_routed = f->ack->n_routed_to;
        m->routed_to = f->ack->routed_to;
        break;
    case HANDOVER__FRAME__KIND_NAK:
        m->kind = HOV_MSG_NAK;
        m->seq = f->nak->seq;
        m->event_id = f->nak->event_id;
        m->code = (hov_err)f->nak->code;
        m->reason = f->nak->reason;
        m->temporary = f->nak->temporary;
        break;
    case HANDOVER__FRAME__KIND_DELIVER:
        m->kind = HOV_MSG_DELIVER;
        m->delivery_id = f->deliver->delivery_id;
        m->event_id = f->deliver->event_id;
        m->destination = f->deliver->destination;
        m->attempt = f->deliver->attempt;
        m->event = f->deliver->event.data;
        m->event_len = f->deliver->event.len;
        m->view = f->deliver->view;
        break;
    default:
        break;
    }
}

/* Receive one frame without waiting. 1: got one for the caller; 0: none
 * waiting; -1: socket failure. */
static int
recv_one(hov_client *c, ProtobufCAllocator *alloc, Handover__Frame **out,
         void **user, hov_error *err)
{
    for (;;) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, c->sock, ZMQ_DONTWAIT) < 0) {
            int e = zmq_errno();
            zmq_msg_close(&m);
            if (e == EAGAIN || e == EINTR)
                return 0;
            zfail(err, "client receive");
            return -1;
        }
        Handover__Frame *f = NULL;
        hov_error derr = {0};
        hov_err d = hov_frame_decode(zmq_msg_data(&m), zmq_msg_size(&m), alloc,
                                     &f, &derr);
        zmq_msg_close(&m);
        if (d != HOV_OK) {
            hov_warn("client=%s: unreadable frame from the hub: %s", c->name,
                     derr.msg);
            continue;
        }
        if (absorb(c, f, user)) {
            *out = f;
            return 1;
        }
        handover__frame__free_unpacked(f, alloc);
    }
}

static void
release_cur(hov_client *c)
{
    if (c->cur && !c->cur_in_bump)
        handover__frame__free_unpacked(c->cur, NULL);
    c->cur = NULL;
    c->cur_in_bump = false;
    bump_reset(&c->region); /* nothing else lives there */
}

/* Wait until deadline (monotonic ms) for one frame for the caller, doing
 * the protocol's chores meanwhile. 1: *f set; 0: deadline passed; -1: a
 * socket failure (err set). */
static int
pump(hov_client *c, uint64_t deadline, ProtobufCAllocator *alloc,
     Handover__Frame **f, void **user, hov_error *err)
{
    for (;;) {
        tick(c);
        int r = recv_one(c, alloc, f, user, err);
        if (r != 0)
            return r;
        uint64_t now = hov_mono_ms();
        if (now >= deadline)
            return 0;
        uint64_t wait = deadline - now;
        uint64_t cap = c->heartbeat_ms / 2 ? c->heartbeat_ms / 2 : 1;
        if (!c->hub_up && c->hello_unsent && cap > 20)
            cap = 20;
        if (wait > cap)
            wait = cap;
        zmq_pollitem_t it = {c->sock, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, (long)wait) < 0 && zmq_errno() != EINTR) {
            zfail(err, "client poll");
            return -1;
        }
    }
}

hov_err
hov_client_next(hov_client *c, int timeout_ms, hov_msg *msg, hov_error *err)
{
    release_cur(c);
    memset(msg, 0, sizeof *msg);
    if (c->stash_head) {
        stash *s = c->stash_head;
        c->stash_head = s->next;
        if (c->stash_head == NULL)
            c->stash_tail = NULL;
        c->cur = s->f;
        fill_msg(msg, s->f, s->user);
        free(s);
        return HOV_OK;
    }
    uint64_t deadline =
        timeout_ms < 0 ? UINT64_MAX : hov_mono_ms() + (uint64_t)timeout_ms;
    Handover__Frame *f = NULL;
    void *user = NULL;
    int r = pump(c, deadline, &c->region_alloc, &f, &user, err);
    if (r < 0)
        return err ? err->code : HOV_ESYS;
    if (r > 0) {
        c->cur = f;
        c->cur_in_bump = true;
        fill_msg(msg, f, user);
    }
    return HOV_OK;
}

hov_err
hov_client_publish_wait(hov_client *c, const uint8_t *data, size_t len,
                        int timeout_ms, hov_msg *msg, hov_error *err)
{
    uint64_t seq;
    hov_err e = hov_client_publish(c, data, len, NULL, &seq, err);
    if (e != HOV_OK)
        return e;
    release_cur(c);
    memset(msg, 0, sizeof *msg);
    uint64_t deadline = hov_mono_ms() + (uint64_t)timeout_ms;
    for (;;) {
        Handover__Frame *f = NULL;
        void *user = NULL;
        /* malloc, not the region: frames for later are stashed. */
        int r = pump(c, deadline, NULL, &f, &user, err);
        if (r < 0)
            return err ? err->code : HOV_ESYS;
        if (r == 0)
            return hov_fail(err, HOV_ETIMEDOUT, 0,
                            "no answer from the hub within %d ms (publish "
                            "%llu stays pending)",
                            timeout_ms, (unsigned long long)seq);
        bool mine =
            (f->kind_case == HANDOVER__FRAME__KIND_ACK && f->ack->seq == seq) ||
            (f->kind_case == HANDOVER__FRAME__KIND_NAK && f->nak->seq == seq);
        if (mine) {
            c->cur = f;
            fill_msg(msg, f, user);
            return HOV_OK;
        }
        stash *st = malloc(sizeof *st);
        if (st == NULL) {
            handover__frame__free_unpacked(f, NULL);
            return hov_fail(err, HOV_ENOMEM, 0, "keep a frame");
        }
        st->f = f;
        st->user = user;
        st->next = NULL;
        if (c->stash_tail)
            c->stash_tail->next = st;
        else
            c->stash_head = st;
        c->stash_tail = st;
    }
}

hov_err
hov_client_settle(hov_client *c, uint64_t delivery_id, hov_settle outcome,
                  const char *reason, hov_error *err)
{
    Handover__Settle s = HANDOVER__SETTLE__INIT;
    s.delivery_id = delivery_id;
    s.outcome = (Handover__SettleOutcome)outcome;
    s.reason = (char *)(reason ? reason : "");
    Handover__Frame f = HANDOVER__FRAME__INIT;
    f.kind_case = HANDOVER__FRAME__KIND_SETTLE;
    f.settle = &s;
    return client_send(c, &f, err);
}

hov_err
hov_client_set_credit(hov_client *c, unsigned credit, hov_error *err)
{
    c->credit = credit;
    Handover__Credit cr = HANDOVER__CREDIT__INIT;
    cr.credit = credit;
    Handover__Frame f = HANDOVER__FRAME__INIT;
    f.kind_case = HANDOVER__FRAME__KIND_CREDIT;
    f.credit = &cr;
    return client_send(c, &f, err);
}

size_t
hov_client_pending(const hov_client *c)
{
    return c->n_pending;
}

bool
hov_client_hub_up(const hov_client *c)
{
    return c->hub_up;
}

hov_err
hov_client_fd(hov_client *c, int *fd, hov_error *err)
{
    size_t len = sizeof *fd;
    if (zmq_getsockopt(c->sock, ZMQ_FD, fd, &len) != 0)
        return zfail(err, "client ZMQ_FD");
    return HOV_OK;
}

void
hov_client_free(hov_client *c)
{
    if (c == NULL)
        return;
    release_cur(c);
    while (c->stash_head) {
        stash *s = c->stash_head;
        c->stash_head = s->next;
        handover__frame__free_unpacked(s->f, NULL);
        free(s);
    }
    while (c->head) {
        pending *p = c->head;
        c->head = p->next;
        free(p);
    }
    hov_map_free(c->by_seq);
    bump_reset(&c->region);
    free(c->region.buf);
    free(c->region.big);
    if (c->sock)
        zmq_close(c->sock);
    if (c->ctx)
        zmq_ctx_term(c->ctx);
    free(c);
}
