/* CURVE on the hub socket, with the real hub process: the ZAP handler
 * lets in only configured keys, and the key, never the Hello, decides the
 * agency (docs/architecture.md, "Security: CURVE and ZAP"). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "config.h"
#include "handover/frame.h"
#include "handover/timeutil.h"
#include "harness.h"

#define T 40 /* seconds per test */

typedef struct keypair {
    char pub[HOV_CURVE_KEY_Z85];
    char sec[HOV_CURVE_KEY_Z85];
} keypair;

static th_hub hub;
static keypair hub_key, nursing_key, gp_key, social_key, stranger_key;
static keypair social_adapter_key, voluntary_key;
static char config_path[300];

/* A key pair made by the real handover-ctl keygen, read back the way the
 * hub and the adapters read it. */
static void
ctl_keygen(const char *name, keypair *k)
{
    const char *argv[] = {HANDOVER_CTL_BIN, "keygen", name,
                          "--dir",          hub.dir,  NULL};
    th_proc p;
    th_proc_init(&p, hub.dir, "keygen", NULL, argv);
    cr_assert_eq(th_proc_run(&p, 10000), 0, "handover-ctl keygen %s", name);
    char path[400];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s.key", hub.dir, name);
    cr_assert(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600,
              "%s must be mode 0600", path);
    hov_error err = {0};
    cr_assert(hov_curve_keyfile_read(path, k->pub, k->sec, &err) == HOV_OK,
              "%s", err.msg);
    char pub[HOV_CURVE_KEY_Z85];
    snprintf(path, sizeof path, "%s/%s.pub", hub.dir, name);
    cr_assert(hov_curve_keyfile_read(path, pub, NULL, &err) == HOV_OK, "%s",
              err.msg);
    cr_assert_str_eq(pub, k->pub, "the .pub file holds the same key");
}

static void
setup(void)
{
    th_hub_init(&hub, NULL);
    ctl_keygen("hub", &hub_key);
    ctl_keygen("nursing", &nursing_key);
    ctl_keygen("social-adapter", &social_adapter_key);
    ctl_keygen("voluntary", &voluntary_key);
    /* The others straight from libzmq. */
    cr_assert(zmq_curve_keypair(gp_key.pub, gp_key.sec) == 0);
    cr_assert(zmq_curve_keypair(social_key.pub, social_key.sec) == 0);
    cr_assert(zmq_curve_keypair(stranger_key.pub, stranger_key.sec) == 0);

    snprintf(config_path, sizeof config_path, "%s/hub.yaml", hub.dir);
    FILE *f = fopen(config_path, "w");
    cr_assert_not_null(f);
    fputs(config_default_yaml, f);
    fprintf(f,
            "curve:\n"
            "  secret_key_file: %s/hub.key\n"
            "  clients:\n"
            "    - {name: nursing, agency: nursing, public_key: '%s'}\n"
            "    - {name: gp, agency: gp, public_key: '%s'}\n"
            "    - {name: council, agency: social, public_key: '%s'}\n"
            "    - {name: social-adapter, agency: social, public_key: '%s'}\n"
            "    - {name: voluntary, agency: voluntary, public_key: '%s'}\n",
            hub.dir, nursing_key.pub, gp_key.pub, social_key.pub,
            social_adapter_key.pub, voluntary_key.pub);
    cr_assert(fclose(f) == 0);
    hub.args[hub.nargs++] = "--config";
    hub.args[hub.nargs++] = config_path;
    hub.args[hub.nargs] = NULL;
    th_hub_start(&hub);
}

static void
teardown(void)
{
    th_hub_fini(&hub);
}

TestSuite(curve, .init = setup, .fini = teardown, .timeout = T);

static hov_client *
curve_client(const char *agency, const char *name, const keypair *k,
             bool consume)
{
    hov_client_opts o = {
        .agency = agency,
        .name = name,
        .consume = consume,
        .credit = consume ? 8 : 0,
        .curve_server_key = hub_key.pub,
        .curve_public_key = k->pub,
        .curve_secret_key = k->sec,
    };
    hov_client *c = NULL;
    hov_error err = {0};
    cr_assert(hov_client_new(&c, &o, &err) == HOV_OK, "client: %s", err.msg);
    cr_assert(hov_client_connect(c, hub.endpoint, &err) == HOV_OK,
              "connect: %s", err.msg);
    return c;
}

/* Publish and expect no answer at all within ms. */
static void
publish_unanswered(hov_client *c, const hov_sample *s, int ms)
{
    size_t len;
    uint8_t *buf = hov_sample_pack(s, &len);
    cr_assert_not_null(buf);
    hov_msg m;
    hov_error err = {0};
    hov_err e = hov_client_publish_wait(c, buf, len, ms, &m, &err);
    free(buf);
    cr_assert_eq(e, HOV_ETIMEDOUT, "expected no answer, got %s (%s)",
                 hov_errname(e), e == HOV_OK ? hov_errname(m.code) : err.msg);
    cr_assert_not(hov_client_hub_up(c), "the hub must not answer Hello");
}

static bool
wait_log(const char *needle, int ms)
{
    uint64_t deadline = hov_mono_ms() + (uint64_t)th_ms(ms);
    while (hov_mono_ms() < deadline) {
        if (th_log_contains(&hub, needle))
            return true;
        usleep(20000);
    }
    return false;
}

Test(curve, known_key_publishes_and_gets_ack)
{
    cr_assert(th_log_contains(&hub, "curve on: 5 client keys"));
    cr_assert_not(th_log_contains(&hub, "curve off"));
    hov_client *n = curve_client("nursing", "t-nursing", &nursing_key, false);
    hov_sample s;
    hov_sample_init(&s, "discharge", NULL); /* from RZZ01, a nursing org */
    th_publish_ok(n, &s);
    char line[80];
    snprintf(line, sizeof line, "curve accepted client key=%.8s",
             nursing_key.pub);
    cr_assert(th_log_contains(&hub, line), "the hub logs the accepted key");
    cr_assert(
        th_log_contains(&hub, "adapter up client=t-nursing agency=nursing"));
    hov_client_free(n);
    th_hub_stop(&hub);
}

Test(curve, unknown_key_is_refused_and_logged)
{
    hov_client *c = curve_client("gp", "t-stranger", &stranger_key, false);
    hov_sample s;
    hov_sample_init(&s, "referral", NULL);
    publish_unanswered(c, &s, th_ms(1500));
    char line[80];
    snprintf(line, sizeof line, "curve refused unknown client key=%.8s...",
             stranger_key.pub);
    cr_assert(wait_log(line, 2000), "the refusal names the key: %s", line);
    cr_assert(th_log_contains(&hub, "address=127.0.0.1"),
              "the refusal names the peer address");
    cr_assert_not(th_log_contains(&hub, "client=t-stranger"),
                  "no session for an unknown key");
    cr_assert_not(th_log_contains(&hub, stranger_key.sec),
                  "never log a secret key");
    hov_client_free(c);

    /* A plain client (no CURVE) gets nothing either. */
    hov_client *plain = th_client(&hub, "gp", "t-plain", false, 0);
    hov_sample_new_id(&s);
    publish_unanswered(plain, &s, th_ms(1000));
    hov_client_free(plain);
    cr_assert_not(th_log_contains(&hub, "accepted="), "nothing accepted");
    th_hub_stop(&hub);
}

/* A raw DEALER with gp's key, so the test controls every frame. */
static void *
raw_dealer(void *ctx, const char *name, const keypair *k)
{
    void *d = zmq_socket(ctx, ZMQ_DEALER);
    int linger = 0, tmo = th_ms(3000);
    cr_assert(zmq_setsockopt(d, ZMQ_ROUTING_ID, name, strlen(name)) == 0);
    cr_assert(zmq_setsockopt(d, ZMQ_LINGER, &linger, sizeof linger) == 0);
    cr_assert(zmq_setsockopt(d, ZMQ_RCVTIMEO, &tmo, sizeof tmo) == 0);
    cr_assert(zmq_setsockopt(d, ZMQ_CURVE_SERVERKEY, hub_key.pub, 41) == 0);
    cr_assert(zmq_setsockopt(d, ZMQ_CURVE_PUBLICKEY, k->pub, 41) == 0);
    cr_assert(zmq_setsockopt(d, ZMQ_CURVE_SECRETKEY, k->sec, 41) == 0);
    cr_assert(zmq_connect(d, hub.endpoint) == 0);
    return d;
}

static void
raw_send(void *d, Handover__Frame *f)
{
    hov_error err = {0};
    uint64_t deadline = hov_mono_ms() + (uint64_t)th_ms(3000);
    hov_err e;
    /* EAGAIN until the handshake is done. */
    while ((e = hov_frame_send(d, NULL, 0, f, &err)) == HOV_EUNAVAILABLE &&
           hov_mono_ms() < deadline)
        usleep(10000);
    cr_assert_eq(e, HOV_OK, "send: %s", err.msg);
}

/* The next Nak, skipping heartbeats; asserts one comes. */
static void
raw_expect_nak(void *d, hov_err code, uint64_t seq)
{
    for (;;) {
        uint8_t buf[4096];
        int n = zmq_recv(d, buf, sizeof buf, 0);
        cr_assert(n > 0, "no answer from the hub");
        Handover__Frame *f = NULL;
        hov_error err = {0};
        cr_assert(hov_frame_decode(buf, (size_t)n, NULL, &f, &err) == HOV_OK);
        Handover__Frame__KindCase kind = f->kind_case;
        cr_assert(kind != HANDOVER__FRAME__KIND_ACK &&
                      kind != HANDOVER__FRAME__KIND_HELLO &&
                      kind != HANDOVER__FRAME__KIND_DELIVER,
                  "the hub answered with a %s", hov_frame_kind_name(kind));
        if (kind == HANDOVER__FRAME__KIND_NAK) {
            cr_assert_eq((hov_err)f->nak->code, code, "Nak %s: %s",
                         hov_errname((hov_err)f->nak->code), f->nak->reason);
            cr_assert_eq(f->nak->seq, seq);
            handover__frame__free_unpacked(f, NULL);
            return;
        }
        handover__frame__free_unpacked(f, NULL);
    }
}

Test(curve, gp_key_cannot_say_hello_as_nursing)
{
    void *ctx = zmq_ctx_new();
    void *d = raw_dealer(ctx, "t-impostor", &gp_key);
    Handover__Hello h = HANDOVER__HELLO__INIT;
    h.protocol = HOV_PROTOCOL;
    h.agency = (char *)"nursing";
    h.client = (char *)"t-impostor";
    h.consume = true;
    h.credit = 8;
    Handover__Frame f = HANDOVER__FRAME__INIT;
    f.kind_case = HANDOVER__FRAME__KIND_HELLO;
    f.hello = &h;
    raw_send(d, &f);
    raw_expect_nak(d, HOV_EPERM, 0);
    cr_assert(th_log_contains(&hub, "refused hello client=t-impostor: its "
                                    "CURVE key belongs to agency gp but it "
                                    "says nursing"));

    /* Its publish, of a nursing organisation's event, is never accepted. */
    hov_sample s;
    hov_sample_init(&s, "discharge", NULL); /* RZZ01 */
    size_t len;
    uint8_t *ev = hov_sample_pack(&s, &len);
    Handover__Publish pub = HANDOVER__PUBLISH__INIT;
    pub.seq = 7;
    pub.event.data = ev;
    pub.event.len = len;
    f.kind_case = HANDOVER__FRAME__KIND_PUBLISH;
    f.publish = &pub;
    raw_send(d, &f);
    raw_expect_nak(d, HOV_ESESSION, 7);
    free(ev);
    zmq_close(d);
    zmq_ctx_term(ctx);

    /* The client library sees the same: Hello refused, publish unsent. */
    hov_client *c = curve_client("nursing", "t-impostor2", &gp_key, false);
    hov_sample_new_id(&s);
    hov_msg m;
    size_t l2;
    uint8_t *ev2 = hov_sample_pack(&s, &l2);
    hov_error err = {0};
    hov_err e = hov_client_publish_wait(c, ev2, l2, th_ms(1500), &m, &err);
    free(ev2);
    cr_assert(e == HOV_ETIMEDOUT || (e == HOV_OK && m.kind == HOV_MSG_NAK),
              "an impostor's publish must not be Acked");
    hov_client_free(c);
    cr_assert_not(th_log_contains(&hub, "accepted=1"));
    cr_assert_not(th_log_contains(&hub, "agency=nursing consume"),
                  "no nursing session was opened");
    th_hub_stop(&hub);
}

Test(curve, social_key_never_receives_gp_or_nursing_deliveries)
{
    hov_client *nursing =
        curve_client("nursing", "t-nursing", &nursing_key, true);
    hov_client *social = curve_client("social", "t-council", &social_key, true);
    /* A social key that says it is nursing, to read the nursing queue. */
    hov_client *thief = curve_client("nursing", "t-thief", &social_key, true);
    hov_client *gp = curve_client("gp", "t-gp", &gp_key, false);
    hov_sample s;
    hov_sample_init(&s, "referral", NULL); /* gp Z99001 -> RZZ40 nursing */
    th_publish_ok(gp, &s);
    hov_msg m;
    th_next_delivery(nursing, 5000, &m, NULL);
    cr_assert_str_eq(m.destination, "RZZ40");
    hov_error err = {0};
    cr_assert(hov_client_settle(nursing, m.delivery_id, HOV_SETTLE_DONE, NULL,
                                &err) == HOV_OK);
    th_no_delivery(social, 600);
    th_no_delivery(thief, 600);

    /* The thief takes the nursing adapter's routing id (ZeroMQ hands it
     * over): its first frame shows its key is social, and the hub drops
     * the session instead of serving it as nursing. */
    hov_client *thief2 =
        curve_client("nursing", "t-nursing", &social_key, true);
    hov_sample_init(&s, "referral", NULL);
    th_publish(gp, &s, &m);
    cr_assert_eq(m.kind, HOV_MSG_ACK);
    th_no_delivery(thief2, 1500);
    cr_assert(wait_log("refused frame client=t-nursing", 3000) ||
                  wait_log("refused hello client=t-nursing", 1),
              "the takeover is refused and logged");
    hov_client_free(thief2);
    /* The real nursing adapter gets its delivery once it is back. */
    th_next_delivery(nursing, 8000, &m, NULL);
    cr_assert_str_eq(m.event_id, s.event_id);
    hov_client_free(gp);
    hov_client_free(thief);
    hov_client_free(social);
    hov_client_free(nursing);
    th_hub_stop(&hub);
}

/* Every adapter process takes hub.curve_server_key and hub.curve_key_file
 * and reaches the CURVE hub with its own key. */
Test(curve, every_adapter_connects_with_its_key)
{
    char server[80], nkey[400], skey[400], vkey[400], inbox[400], outbox[400],
        port[16], port2[16];
    snprintf(server, sizeof server, "hub.curve_server_key=%s", hub_key.pub);
    snprintf(nkey, sizeof nkey, "hub.curve_key_file=%s/nursing.key", hub.dir);
    snprintf(skey, sizeof skey, "hub.curve_key_file=%s/social-adapter.key",
             hub.dir);
    snprintf(vkey, sizeof vkey, "hub.curve_key_file=%s/voluntary.key", hub.dir);
    snprintf(inbox, sizeof inbox, "files.inbox=%s/inbox", hub.dir);
    snprintf(outbox, sizeof outbox, "files.outbox=%s/outbox", hub.dir);
    snprintf(port, sizeof port, "listen.port=%d", th_free_port());
    snprintf(port2, sizeof port2, "listen.port=%d", th_free_port());
    char ep[128];
    snprintf(ep, sizeof ep, "hub.endpoint=%s", hub.endpoint);
    const char *nursing[] = {HANDOVER_NURSING_BIN,
                             "--set",
                             ep,
                             "--set",
                             server,
                             "--set",
                             nkey,
                             "--set",
                             port,
                             NULL};
    const char *social[] = {HANDOVER_SOCIAL_BIN,
                            "--set",
                            ep,
                            "--set",
                            server,
                            "--set",
                            skey,
                            "--set",
                            inbox,
                            "--set",
                            outbox,
                            NULL};
    const char *vol[] = {HANDOVER_VOLUNTARY_BIN,
                         "--set",
                         ep,
                         "--set",
                         server,
                         "--set",
                         vkey,
                         "--set",
                         port2,
                         NULL};
    th_proc p[3];
    th_proc_init(&p[0], hub.dir, "nursing", "hub up", nursing);
    th_proc_init(&p[1], hub.dir, "social", "hub up", social);
    th_proc_init(&p[2], hub.dir, "voluntary", "hub up", vol);
    for (int i = 0; i < 3; i++)
        th_proc_start(&p[i]);
    for (int i = 0; i < 3; i++)
        th_proc_stop(&p[i]);
}
