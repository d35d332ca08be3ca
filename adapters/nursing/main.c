/* handover-nursing: see nursing.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handover.pb-c.h"
#include "handover/log.h"
#include "nursing.h"
#include "runtime.h"

const char nursing_default_config[] =
    "# handover-nursing built-in default configuration\n"
    "hub:\n"
    "  endpoint: tcp://127.0.0.1:7400\n"
    "  client_name: nursing      # stable: a restart gets its deliveries "
    "back at once\n"
    "  credit: 16                # deliveries held at once\n"
    "  # CURVE (both or neither; the hub's curve: section lists our key):\n"
    "  # curve_server_key: '<the hub's public key, 40 chars>'\n"
    "  # curve_key_file: keys/ADAPTER.key   # handover-ctl keygen ADAPTER\n"
    "listen:                     # MLLP from the trust PAS and the nursing "
    "system\n"
    "  host: 127.0.0.1\n"
    "  port: 7420\n"
    "  max_frame_bytes: 1048576\n"
    "  hard_cap_bytes: 16777216  # no end block within this: close\n"
    "  idle_timeout_ms: 300000\n"
    "  frame_timeout_ms: 30000   # a started frame must end within this\n"
    "  hub_timeout_ms: 10000     # no hub answer: AR temporarily "
    "unavailable\n"
    "partner:                    # the community nursing system's MLLP "
    "listener\n"
    "  host: 127.0.0.1\n"
    "  port: 7421\n"
    "  application: CN-EPR       # MSH-5\n"
    "  facility: RZZ40           # MSH-6\n"
    "  ack_timeout_ms: 30000\n"
    "  connect_timeout_ms: 5000\n"
    "hl7:\n"
    "  accept_lf_terminators: false\n"
    "  processing_ids: [P]\n"
    "  default_charset: UNICODE UTF-8   # when MSH-18 is empty\n";

const char *const nursing_config_keys[] = {
    "hub.endpoint",
    "hub.client_name",
    "hub.credit",
    "hub.curve_server_key",
    "hub.curve_key_file",
    "listen.host",
    "listen.port",
    "listen.max_frame_bytes",
    "listen.hard_cap_bytes",
    "listen.idle_timeout_ms",
    "listen.frame_timeout_ms",
    "listen.hub_timeout_ms",
    "partner.host",
    "partner.port",
    "partner.application",
    "partner.facility",
    "partner.ack_timeout_ms",
    "partner.connect_timeout_ms",
    "hl7.accept_lf_terminators",
    "hl7.processing_ids",
    "hl7.default_charset",
    "log.level",
    NULL,
};

#define TRY(x)                                                                 \
    do {                                                                       \
        hov_err rc_ = (x);                                                     \
        if (rc_ != HOV_OK)                                                     \
            return rc_;                                                        \
    } while (0)

hov_err
nursing_cfg_load(nursing_cfg *g, const conf *c, hov_error *err)
{
    TRY(conf_strdup(c, "hub.endpoint", "tcp://127.0.0.1:7400", &g->hub_endpoint,
                    err));
    TRY(conf_strdup(c, "hub.client_name", "nursing", &g->client_name, err));
    TRY(conf_uint(c, "hub.credit", 16, 1, 1024, &g->credit, err));
    TRY(hublink_curve_load(&g->curve, conf_str(c, "hub.curve_server_key", ""),
                           conf_str(c, "hub.curve_key_file", ""), err));
    TRY(conf_strdup(c, "listen.host", "127.0.0.1", &g->listen_host, err));
    TRY(conf_uint(c, "listen.port", 7420, 0, 65535, &g->listen_port, err));
    TRY(conf_uint(c, "listen.max_frame_bytes", 1 << 20, 1024, 64u << 20,
                  &g->max_frame, err));
    TRY(conf_uint(c, "listen.hard_cap_bytes", 16u << 20, 1024, 1u << 30,
                  &g->hard_cap, err));
    TRY(conf_uint(c, "listen.idle_timeout_ms", 300000, 100, 86400000,
                  &g->idle_timeout_ms, err));
    TRY(conf_uint(c, "listen.frame_timeout_ms", 30000, 100, 3600000,
                  &g->frame_timeout_ms, err));
    TRY(conf_uint(c, "listen.hub_timeout_ms", 10000, 100, 3600000,
                  &g->hub_timeout_ms, err));
    TRY(conf_strdup(c, "partner.host", "127.0.0.1", &g->partner_host, err));
    TRY(conf_uint(c, "partner.port", 7421, 1, 65535, &g->partner_port, err));
    TRY(conf_strdup(c, "partner.application", "CN-EPR", &g->partner_app, err));
    TRY(conf_strdup(c, "partner.facility", "RZZ40", &g->partner_facility, err));
    TRY(conf_uint(c, "partner.ack_timeout_ms", 30000, 100, 3600000,
                  &g->ack_timeout_ms, err));
    TRY(conf_uint(c, "partner.connect_timeout_ms", 5000, 100, 600000,
                  &g->connect_timeout_ms, err));
    TRY(conf_bool(c, "hl7.accept_lf_terminators", false, &g->accept_lf, err));
    TRY(conf_strdup(c, "hl7.default_charset", "UNICODE UTF-8",
                    &g->default_charset, err));
    g->processing_ids = conf_list(c, "hl7.processing_ids", "P");
    if (g->processing_ids == NULL)
        return hov_fail(err, HOV_ENOMEM, 0, "configuration");
    if (g->max_frame > g->hard_cap)
        return hov_fail(err, HOV_ECONFIG, 0,
                        "listen.max_frame_bytes (%llu) is above "
                        "listen.hard_cap_bytes (%llu)",
                        (unsigned long long)g->max_frame,
                        (unsigned long long)g->hard_cap);
    return HOV_OK;
}

void
nursing_cfg_free(nursing_cfg *g)
{
    free(g->hub_endpoint);
    free(g->client_name);
    hublink_curve_wipe(&g->curve);
    free(g->listen_host);
    free(g->partner_host);
    free(g->partner_app);
    free(g->partner_facility);
    free(g->default_charset);
    conf_list_free(g->processing_ids);
    memset(g, 0, sizeof *g);
}

static void
on_answer(void *user, const hov_msg *msg)
{
    inbound_answer(user, msg);
}

static void
on_deliver(void *user, const hov_msg *msg)
{
    outbound_deliver(user, msg);
}

static hov_err
nursing_configure(void *ctx, const conf *c, hov_error *err)
{
    return nursing_cfg_load(&((nursing *)ctx)->cfg, c, err);
}

static hov_err
nursing_start(void *ctx, uv_loop_t *loop, hov_error *err)
{
    nursing *n = ctx;
    n->loop = loop;
    hov_client_opts co = {
        .agency = "nursing",
        .name = n->cfg.client_name,
        .consume = true,
        .credit = (unsigned)n->cfg.credit,
    };
    hublink_curve_apply(&n->cfg.curve, &co);
    hublink_cbs cbs = {.answer = on_answer, .deliver = on_deliver};
    hov_err rc =
        hublink_open(loop, &co, n->cfg.hub_endpoint, &cbs, n, &n->hub, err);
    if (rc == HOV_OK)
        rc = outbound_start(n, err);
    if (rc == HOV_OK)
        rc = inbound_start(n, err);
    if (rc == HOV_OK)
        hov_info("started: MLLP on %s:%llu, partner %s:%llu (%s/%s), hub %s",
                 n->cfg.listen_host, (unsigned long long)n->cfg.listen_port,
                 n->cfg.partner_host, (unsigned long long)n->cfg.partner_port,
                 n->cfg.partner_app, n->cfg.partner_facility,
                 n->cfg.hub_endpoint);
    return rc;
}

static void
nursing_stop(void *ctx, const char *why)
{
    nursing *n = ctx;
    (void)why;
    n->stopping = true;
    inbound_stop(n);
    outbound_stop(n);
    hublink_close(n->hub);
    n->hub = NULL;
}

static void
nursing_cleanup(void *ctx)
{
    nursing_cfg_free(&((nursing *)ctx)->cfg);
}

int
main(int argc, char **argv)
{
    static const runtime_prog prog = {
        .name = "handover-nursing",
        .summary = "The community nursing adapter: HL7 v2 over MLLP on one "
                   "side, the Handover hub on the other.",
        .default_config = nursing_default_config,
        .keys = nursing_config_keys,
    };
    static nursing n;
    static const runtime_adapter a = {
        .prog = &prog,
        .ctx = &n,
        .configure = nursing_configure,
        .start = nursing_start,
        .stop = nursing_stop,
        .cleanup = nursing_cleanup,
    };
    return runtime_main(&a, argc, argv);
}
