/* handover-social: see social.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handover/log.h"
#include "runtime.h"
#include "social.h"

const char social_default_config[] =
    "# handover-social built-in default configuration\n"
    "hub:\n"
    "  endpoint: tcp://127.0.0.1:7400\n"
    "  client_name: social        # stable: a restart gets its deliveries "
    "back at once\n"
    "  credit: 16                 # deliveries held at once\n"
    "  # CURVE (both or neither; the hub's curve: section lists our key):\n"
    "  # curve_server_key: '<the hub's public key, 40 chars>'\n"
    "  # curve_key_file: keys/ADAPTER.key   # handover-ctl keygen ADAPTER\n"
    "files:                       # domain 7.1\n"
    "  inbox: var/council/inbox   # processed/ and error/ are made inside\n"
    "  outbox: var/council/outbox\n"
    "  outbox_per_org: false      # true: outbox/<destination code>/\n"
    "  scan_interval_ms: 30000    # rescan: file events can be missed\n"
    "  max_file_bytes: 16777216   # larger files go to error/ unread\n"
    "  max_rows: 10000\n"
    "  senders: [Z9Z9Z, 8ZZ99]    # codes the partners may publish as\n";

const char *const social_config_keys[] = {
    "hub.endpoint",
    "hub.client_name",
    "hub.credit",
    "hub.curve_server_key",
    "hub.curve_key_file",
    "files.inbox",
    "files.outbox",
    "files.outbox_per_org",
    "files.scan_interval_ms",
    "files.max_file_bytes",
    "files.max_rows",
    "files.senders",
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
social_cfg_load(social_cfg *g, const conf *c, hov_error *err)
{
    TRY(conf_strdup(c, "hub.endpoint", "tcp://127.0.0.1:7400", &g->hub_endpoint,
                    err));
    TRY(conf_strdup(c, "hub.client_name", "social", &g->client_name, err));
    TRY(conf_uint(c, "hub.credit", 16, 1, 1024, &g->credit, err));
    TRY(hublink_curve_load(&g->curve, conf_str(c, "hub.curve_server_key", ""),
                           conf_str(c, "hub.curve_key_file", ""), err));
    TRY(conf_strdup(c, "files.inbox", "var/council/inbox", &g->inbox, err));
    TRY(conf_strdup(c, "files.outbox", "var/council/outbox", &g->outbox, err));
    TRY(conf_bool(c, "files.outbox_per_org", false, &g->outbox_per_org, err));
    TRY(conf_uint(c, "files.scan_interval_ms", 30000, 50, 3600000,
                  &g->scan_interval_ms, err));
    TRY(conf_uint(c, "files.max_file_bytes", 16u << 20, 1024, 1u << 30,
                  &g->max_file_bytes, err));
    TRY(conf_uint(c, "files.max_rows", 10000, 1, 1000000, &g->max_rows, err));
    g->senders = conf_list(c, "files.senders", "Z9Z9Z,8ZZ99");
    if (g->senders == NULL)
        return hov_fail(err, HOV_ENOMEM, 0, "configuration");
    if (g->inbox[0] == '\0' || g->outbox[0] == '\0')
        return hov_fail(err, HOV_ECONFIG, 0,
                        "files.inbox and files.outbox must name folders");
    if (strcmp(g->inbox, g->outbox) == 0)
        return hov_fail(err, HOV_ECONFIG, 0,
                        "files.inbox and files.outbox are the same folder "
                        "'%s': the partner would read back its own files",
                        g->inbox);
    return HOV_OK;
}

void
social_cfg_free(social_cfg *g)
{
    free(g->hub_endpoint);
    free(g->client_name);
    hublink_curve_wipe(&g->curve);
    free(g->inbox);
    free(g->outbox);
    conf_list_free(g->senders);
    memset(g, 0, sizeof *g);
}

static void
on_answer(void *user, const hov_msg *msg)
{
    social_inbound_answer(user, msg);
}

static void
on_deliver(void *user, const hov_msg *msg)
{
    social_outbound_deliver(user, msg);
}

static hov_err
social_configure(void *ctx, const conf *c, hov_error *err)
{
    return social_cfg_load(&((social *)ctx)->cfg, c, err);
}

static hov_err
social_start(void *ctx, uv_loop_t *loop, hov_error *err)
{
    social *s = ctx;
    s->loop = loop;
    hov_client_opts co = {
        .agency = "social",
        .name = s->cfg.client_name,
        .consume = true,
        .credit = (unsigned)s->cfg.credit,
    };
    hublink_curve_apply(&s->cfg.curve, &co);
    hublink_cbs cbs = {.answer = on_answer, .deliver = on_deliver};
    hov_err rc =
        hublink_open(loop, &co, s->cfg.hub_endpoint, &cbs, s, &s->hub, err);
    if (rc == HOV_OK)
        rc = social_outbound_start(s, err);
    if (rc == HOV_OK)
        rc = social_inbound_start(s, err);
    if (rc == HOV_OK)
        hov_info("started: inbox %s, outbox %s, hub %s", s->cfg.inbox,
                 s->cfg.outbox, s->cfg.hub_endpoint);
    return rc;
}

static void
social_stop(void *ctx, const char *why)
{
    social *s = ctx;
    (void)why;
    s->stopping = true;
    social_inbound_stop(s);
    social_outbound_stop(s);
    hublink_close(s->hub);
    s->hub = NULL;
}

static void
social_cleanup(void *ctx)
{
    social_cfg_free(&((social *)ctx)->cfg);
}

int
main(int argc, char **argv)
{
    static const runtime_prog prog = {
        .name = "handover-social",
        .summary = "The council social care and equipment service adapter: "
                   "file drop folders on one side, the Handover hub on the "
                   "other.",
        .default_config = social_default_config,
        .keys = social_config_keys,
    };
    static social s;
    static const runtime_adapter a = {
        .prog = &prog,
        .ctx = &s,
        .configure = social_configure,
        .start = social_start,
        .stop = social_stop,
        .cleanup = social_cleanup,
    };
    return runtime_main(&a, argc, argv);
}
