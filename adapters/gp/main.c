/* handover-gp: see gp.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gp.h"
#include "handover/log.h"
#include "httpc.h"
#include "runtime.h"

const char gp_default_config[] =
    "# handover-gp built-in default configuration\n"
    "hub:\n"
    "  endpoint: tcp://127.0.0.1:7400\n"
    "  client_name: gp            # stable: a restart gets its deliveries "
    "back at once\n"
    "  credit: 16                 # deliveries held at once\n"
    "  # CURVE (both or neither; the hub's curve: section lists our key):\n"
    "  # curve_server_key: '<the hub's public key, 40 chars>'\n"
    "  # curve_key_file: keys/ADAPTER.key   # handover-ctl keygen ADAPTER\n"
    "listen:                      # FHIR requests from the GP system\n"
    "  host: 127.0.0.1\n"
    "  port: 7410\n"
    "  max_body_bytes: 1048576\n"
    "  header_timeout_ms: 10000   # headers must be complete by then\n"
    "  body_timeout_ms: 30000\n"
    "  idle_timeout_ms: 60000     # keep-alive\n"
    "  max_connections: 256\n"
    "  hub_timeout_ms: 10000      # no hub answer: 503 and Retry-After\n"
    "fhir:\n"
    "  base: https://handover.example/fhir   # Handover's canonical base\n"
    "  gp_orgs: [Z99001, Z99002, Z99003]     # practices gp may publish as\n"
    "partner:                     # the GP system's FHIR endpoint\n"
    "  url: http://127.0.0.1:7411/fhir\n"
    "  timeout_ms: 30000\n"
    "  concurrency: 8             # requests in flight at once\n"
    "  ca_file: \"\"                # empty: the system's CA store\n";

const char *const gp_config_keys[] = {
    "hub.endpoint",
    "hub.client_name",
    "hub.credit",
    "hub.curve_server_key",
    "hub.curve_key_file",
    "listen.host",
    "listen.port",
    "listen.max_body_bytes",
    "listen.header_timeout_ms",
    "listen.body_timeout_ms",
    "listen.idle_timeout_ms",
    "listen.max_connections",
    "listen.hub_timeout_ms",
    "fhir.base",
    "fhir.gp_orgs",
    "partner.url",
    "partner.timeout_ms",
    "partner.concurrency",
    "partner.ca_file",
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
gp_cfg_load(gp_cfg *g, const conf *c, hov_error *err)
{
    TRY(conf_strdup(c, "hub.endpoint", "tcp://127.0.0.1:7400", &g->hub_endpoint,
                    err));
    TRY(conf_strdup(c, "hub.client_name", "gp", &g->client_name, err));
    TRY(conf_uint(c, "hub.credit", 16, 1, 1024, &g->credit, err));
    TRY(hublink_curve_load(&g->curve, conf_str(c, "hub.curve_server_key", ""),
                           conf_str(c, "hub.curve_key_file", ""), err));
    TRY(conf_strdup(c, "listen.host", "127.0.0.1", &g->listen_host, err));
    TRY(conf_uint(c, "listen.port", 7410, 0, 65535, &g->listen_port, err));
    TRY(conf_uint(c, "listen.max_body_bytes", 1 << 20, 1024, 64u << 20,
                  &g->max_body, err));
    TRY(conf_uint(c, "listen.header_timeout_ms", 10000, 100, 600000,
                  &g->header_timeout_ms, err));
    TRY(conf_uint(c, "listen.body_timeout_ms", 30000, 100, 600000,
                  &g->body_timeout_ms, err));
    TRY(conf_uint(c, "listen.idle_timeout_ms", 60000, 100, 3600000,
                  &g->idle_timeout_ms, err));
    TRY(conf_uint(c, "listen.max_connections", 256, 1, 65536, &g->max_conns,
                  err));
    TRY(conf_uint(c, "listen.hub_timeout_ms", 10000, 100, 3600000,
                  &g->hub_timeout_ms, err));
    TRY(conf_strdup(c, "fhir.base", "https://handover.example/fhir", &g->base,
                    err));
    TRY(conf_strdup(c, "partner.url", "http://127.0.0.1:7411/fhir",
                    &g->partner_url, err));
    TRY(conf_uint(c, "partner.timeout_ms", 30000, 100, 600000,
                  &g->partner_timeout_ms, err));
    TRY(conf_uint(c, "partner.concurrency", 8, 1, 256, &g->partner_concurrency,
                  err));
    TRY(conf_strdup(c, "partner.ca_file", "", &g->partner_ca_file, err));
    g->gp_orgs = conf_list(c, "fhir.gp_orgs", "Z99001,Z99002,Z99003");
    if (g->gp_orgs == NULL)
        return hov_fail(err, HOV_ENOMEM, 0, "configuration");
    size_t bl = strlen(g->base);
    if (bl > 0 && g->base[bl - 1] == '/')
        g->base[bl - 1] = '\0';
    bl = strlen(g->partner_url);
    if (bl > 0 && g->partner_url[bl - 1] == '/')
        g->partner_url[bl - 1] = '\0';
    if (strncmp(g->partner_url, "http://", 7) != 0 &&
        strncmp(g->partner_url, "https://", 8) != 0)
        return hov_fail(err, HOV_ECONFIG, 0,
                        "partner.url '%s' is not an http:// or https:// URL",
                        g->partner_url);
    return HOV_OK;
}

void
gp_cfg_free(gp_cfg *g)
{
    free(g->hub_endpoint);
    free(g->client_name);
    hublink_curve_wipe(&g->curve);
    free(g->listen_host);
    free(g->base);
    free(g->partner_url);
    free(g->partner_ca_file);
    conf_list_free(g->gp_orgs);
    memset(g, 0, sizeof *g);
}

static void
on_answer(void *user, const hov_msg *msg)
{
    gp_inbound_answer(user, msg);
}

static void
on_deliver(void *user, const hov_msg *msg)
{
    gp_outbound_deliver(user, msg);
}

static hov_err
gp_configure(void *ctx, const conf *c, hov_error *err)
{
    return gp_cfg_load(&((gp *)ctx)->cfg, c, err);
}

static hov_err
gp_start(void *ctx, uv_loop_t *loop, hov_error *err)
{
    gp *g = ctx;
    g->loop = loop;
    hov_err rc = httpc_global_init(err);
    if (rc != HOV_OK)
        return rc;
    g->curl_ready = true;
    hov_client_opts co = {
        .agency = "gp",
        .name = g->cfg.client_name,
        .consume = true,
        .credit = (unsigned)g->cfg.credit,
    };
    hublink_curve_apply(&g->cfg.curve, &co);
    hublink_cbs cbs = {.answer = on_answer, .deliver = on_deliver};
    rc = hublink_open(loop, &co, g->cfg.hub_endpoint, &cbs, g, &g->hub, err);
    if (rc == HOV_OK)
        rc = gp_outbound_start(g, err);
    if (rc == HOV_OK)
        rc = gp_inbound_start(g, err);
    if (rc == HOV_OK)
        hov_info("started: FHIR on http://%s:%llu/fhir, partner %s, hub %s",
                 g->cfg.listen_host, (unsigned long long)g->cfg.listen_port,
                 g->cfg.partner_url, g->cfg.hub_endpoint);
    return rc;
}

static void
gp_stop(void *ctx, const char *why)
{
    gp *g = ctx;
    (void)why;
    g->stopping = true;
    gp_inbound_stop(g);
    gp_outbound_stop(g);
    hublink_close(g->hub);
    g->hub = NULL;
}

static void
gp_cleanup(void *ctx)
{
    gp *g = ctx;
    gp_cfg_free(&g->cfg);
    if (g->curl_ready)
        httpc_global_cleanup();
}

int
main(int argc, char **argv)
{
    static const runtime_prog prog = {
        .name = "handover-gp",
        .summary = "The GP system adapter: FHIR R4 over HTTP on one side, "
                   "the Handover hub on the other.",
        .default_config = gp_default_config,
        .keys = gp_config_keys,
    };
    static gp g;
    static const runtime_adapter a = {
        .prog = &prog,
        .ctx = &g,
        .configure = gp_configure,
        .start = gp_start,
        .stop = gp_stop,
        .cleanup = gp_cleanup,
    };
    return runtime_main(&a, argc, argv);
}
