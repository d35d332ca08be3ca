/* handover-voluntary: see voluntary.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "handover/ident.h"
#include "handover/log.h"
#include "httpc.h"
#include "runtime.h"
#include "voluntary.h"

const char vol_default_config[] =
    "# handover-voluntary built-in default configuration\n"
    "hub:\n"
    "  endpoint: tcp://127.0.0.1:7400\n"
    "  client_name: voluntary     # stable: a restart gets its deliveries "
    "back at once\n"
    "  credit: 16                 # deliveries held at once\n"
    "  # CURVE (both or neither; the hub's curve: section lists our key):\n"
    "  # curve_server_key: '<the hub's public key, 40 chars>'\n"
    "  # curve_key_file: keys/ADAPTER.key   # handover-ctl keygen ADAPTER\n"
    "listen:                      # outcome webhooks from the organisations\n"
    "  host: 127.0.0.1\n"
    "  port: 7440\n"
    "  max_body_bytes: 65536      # domain 8.5: 64 KiB, more is 413\n"
    "  header_timeout_ms: 10000\n"
    "  body_timeout_ms: 30000\n"
    "  idle_timeout_ms: 60000\n"
    "  max_connections: 256\n"
    "  hub_timeout_ms: 10000      # no hub answer: 503 and Retry-After\n"
    "inbound:\n"
    "  replay_window_s: 300       # |now - Handover-Timestamp| allowed\n"
    "  clock_override: 0          # TEST ONLY: Unix seconds taken as now\n"
    "                             # for the replay window; 0: the clock\n"
    "partner:                     # the organisations' webhook endpoints\n"
    "  # One line per organisation, \"<org code> <url or -> <key id> "
    "<secret>\";\n"
    "  # '-' means default_url. Secrets stay out of this file (domain 8.6);\n"
    "  # the table must be mode 0600 or stricter.\n"
    "  orgs_file: \"\"\n"
    "  default_url: http://127.0.0.1:7441/handover/v1/referrals\n"
    "  timeout_ms: 30000          # domain 8.4: 30 s in total\n"
    "  concurrency: 8             # posts in flight at once\n"
    "  ca_file: \"\"                # empty: the system's CA store\n";

const char *const vol_config_keys[] = {
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
    "inbound.replay_window_s",
    "inbound.clock_override",
    "partner.orgs_file",
    "partner.default_url",
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

static bool
http_url(const char *u)
{
    return strncmp(u, "http://", 7) == 0 || strncmp(u, "https://", 8) == 0;
}

static void
org_fini(vol_org *o)
{
    free(o->code);
    free(o->url);
    free(o->key_id);
    if (o->secret != NULL)
        memset(o->secret, 0, o->secret_len);
    free(o->secret);
}

/* Read the organisation table (see voluntary.h). Secrets are never put in
 * an error message: a line is named by its number and organisation. */
static hov_err
orgs_load(vol_cfg *cfg, hov_error *err)
{
    const char *path = cfg->orgs_file;
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return hov_fail(err, HOV_ECONFIG, errno, "partner.orgs_file %s: %s",
                        path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || (st.st_mode & 077) != 0) {
        fclose(f);
        return hov_fail(err, HOV_ECONFIG, 0,
                        "partner.orgs_file %s holds secrets but is readable "
                        "by group or others: chmod 600 it",
                        path);
    }
    char line[1024];
    unsigned lineno = 0;
    hov_err rc = HOV_OK;
    while (rc == HOV_OK && fgets(line, sizeof line, f) != NULL) {
        lineno++;
        line[strcspn(line, "\r\n")] = '\0';
        char *save = NULL;
        char *code = strtok_r(line, " \t", &save);
        if (code == NULL || code[0] == '#')
            continue;
        char *url = strtok_r(NULL, " \t", &save);
        char *kid = strtok_r(NULL, " \t", &save);
        char *sec = strtok_r(NULL, " \t", &save);
        if (sec == NULL || strtok_r(NULL, " \t", &save) != NULL) {
            rc = hov_fail(err, HOV_ECONFIG, 0,
                          "%s:%u: expected \"<org code> <url or -> <key id> "
                          "<secret>\"",
                          path, lineno);
            break;
        }
        if (!hov_org_code_valid(code)) {
            rc = hov_fail(err, HOV_ECONFIG, 0,
                          "%s:%u: '%.40s' is not an organisation code", path,
                          lineno, code);
            break;
        }
        if (strcmp(url, "-") == 0)
            url = cfg->default_url;
        if (!http_url(url)) {
            rc = hov_fail(err, HOV_ECONFIG, 0,
                          "%s:%u: the URL for %s is not http:// or https://",
                          path, lineno, code);
            break;
        }
        /* Domain 8.6 asks for at least 32 random bytes. */
        if (strlen(sec) < 32) {
            rc = hov_fail(err, HOV_ECONFIG, 0,
                          "%s:%u: the secret for %s is shorter than 32 bytes",
                          path, lineno, code);
            break;
        }
        if (vol_org_find(cfg, code) != NULL) {
            rc = hov_fail(err, HOV_ECONFIG, 0, "%s:%u: %s is listed twice",
                          path, lineno, code);
            break;
        }
        vol_org *n = realloc(cfg->orgs, (cfg->n_orgs + 1) * sizeof *n);
        if (n == NULL) {
            rc = hov_fail(err, HOV_ENOMEM, 0, "configuration");
            break;
        }
        cfg->orgs = n;
        vol_org *o = &cfg->orgs[cfg->n_orgs];
        memset(o, 0, sizeof *o);
        o->code = strdup(code);
        o->url = strdup(url);
        o->key_id = strdup(kid);
        o->secret_len = strlen(sec);
        o->secret = malloc(o->secret_len);
        if (o->secret != NULL)
            memcpy(o->secret, sec, o->secret_len);
        cfg->n_orgs++;
        if (!o->code || !o->url || !o->key_id || !o->secret)
            rc = hov_fail(err, HOV_ENOMEM, 0, "configuration");
    }
    memset(line, 0, sizeof line);
    fclose(f);
    return rc;
}

const vol_org *
vol_org_find(const vol_cfg *cfg, const char *code)
{
    for (size_t i = 0; code != NULL && i < cfg->n_orgs; i++)
        if (strcmp(cfg->orgs[i].code, code) == 0)
            return &cfg->orgs[i];
    return NULL;
}

hov_err
vol_cfg_load(vol_cfg *g, const conf *c, hov_error *err)
{
    TRY(conf_strdup(c, "hub.endpoint", "tcp://127.0.0.1:7400", &g->hub_endpoint,
                    err));
    TRY(conf_strdup(c, "hub.client_name", "voluntary", &g->client_name, err));
    TRY(conf_uint(c, "hub.credit", 16, 1, 1024, &g->credit, err));
    TRY(hublink_curve_load(&g->curve, conf_str(c, "hub.curve_server_key", ""),
                           conf_str(c, "hub.curve_key_file", ""), err));
    TRY(conf_strdup(c, "listen.host", "127.0.0.1", &g->listen_host, err));
    TRY(conf_uint(c, "listen.port", 7440, 0, 65535, &g->listen_port, err));
    TRY(conf_uint(c, "listen.max_body_bytes", 65536, 1024, 64u << 20,
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
    TRY(conf_uint(c, "inbound.replay_window_s", 300, 1, 3600,
                  &g->replay_window_s, err));
    TRY(conf_uint(c, "inbound.clock_override", 0, 0, UINT32_MAX,
                  &g->clock_override, err));
    TRY(conf_strdup(c, "partner.orgs_file", "", &g->orgs_file, err));
    TRY(conf_strdup(c, "partner.default_url",
                    "http://127.0.0.1:7441/handover/v1/referrals",
                    &g->default_url, err));
    TRY(conf_uint(c, "partner.timeout_ms", 30000, 100, 600000,
                  &g->partner_timeout_ms, err));
    TRY(conf_uint(c, "partner.concurrency", 8, 1, 256, &g->partner_concurrency,
                  err));
    TRY(conf_strdup(c, "partner.ca_file", "", &g->partner_ca_file, err));
    if (!http_url(g->default_url))
        return hov_fail(err, HOV_ECONFIG, 0,
                        "partner.default_url '%s' is not an http:// or "
                        "https:// URL",
                        g->default_url);
    if (g->orgs_file[0] != '\0')
        TRY(orgs_load(g, err));
    return HOV_OK;
}

void
vol_cfg_free(vol_cfg *g)
{
    free(g->hub_endpoint);
    free(g->client_name);
    hublink_curve_wipe(&g->curve);
    free(g->listen_host);
    free(g->orgs_file);
    free(g->default_url);
    free(g->partner_ca_file);
    for (size_t i = 0; i < g->n_orgs; i++)
        org_fini(&g->orgs[i]);
    free(g->orgs);
    memset(g, 0, sizeof *g);
}

static void
on_answer(void *user, const hov_msg *msg)
{
    vol_inbound_answer(user, msg);
}

static void
on_deliver(void *user, const hov_msg *msg)
{
    vol_outbound_deliver(user, msg);
}

static hov_err
vol_configure(void *ctx, const conf *c, hov_error *err)
{
    return vol_cfg_load(&((vol *)ctx)->cfg, c, err);
}

static hov_err
vol_start(void *ctx, uv_loop_t *loop, hov_error *err)
{
    vol *v = ctx;
    v->loop = loop;
    if (v->cfg.n_orgs == 0)
        hov_warn("no organisations configured (partner.orgs_file): "
                 "deliveries will be retried and every webhook refused");
    if (v->cfg.clock_override != 0)
        hov_warn("inbound.clock_override is set: the replay window uses a "
                 "fixed clock; this setting is for tests only");
    hov_err rc = httpc_global_init(err);
    if (rc != HOV_OK)
        return rc;
    v->curl_ready = true;
    hov_client_opts co = {
        .agency = "voluntary",
        .name = v->cfg.client_name,
        .consume = true,
        .credit = (unsigned)v->cfg.credit,
    };
    hublink_curve_apply(&v->cfg.curve, &co);
    hublink_cbs cbs = {.answer = on_answer, .deliver = on_deliver};
    rc = hublink_open(loop, &co, v->cfg.hub_endpoint, &cbs, v, &v->hub, err);
    if (rc == HOV_OK)
        rc = vol_outbound_start(v, err);
    if (rc == HOV_OK)
        rc = vol_inbound_start(v, err);
    if (rc == HOV_OK)
        hov_info("started: outcome webhooks on http://%s:%llu/webhooks/v1/"
                 "outcome, %zu organisations, hub %s",
                 v->cfg.listen_host, (unsigned long long)v->cfg.listen_port,
                 v->cfg.n_orgs, v->cfg.hub_endpoint);
    return rc;
}

static void
vol_stop(void *ctx, const char *why)
{
    vol *v = ctx;
    (void)why;
    v->stopping = true;
    vol_inbound_stop(v);
    vol_outbound_stop(v);
    hublink_close(v->hub);
    v->hub = NULL;
}

static void
vol_cleanup(void *ctx)
{
    vol *v = ctx;
    vol_cfg_free(&v->cfg);
    if (v->curl_ready)
        httpc_global_cleanup();
}

int
main(int argc, char **argv)
{
    static const runtime_prog prog = {
        .name = "handover-voluntary",
        .summary = "The voluntary-sector adapter: signed JSON webhooks on "
                   "one side, the Handover hub on the other.",
        .default_config = vol_default_config,
        .keys = vol_config_keys,
    };
    static vol v;
    static const runtime_adapter a = {
        .prog = &prog,
        .ctx = &v,
        .configure = vol_configure,
        .start = vol_start,
        .stop = vol_stop,
        .cleanup = vol_cleanup,
    };
    return runtime_main(&a, argc, argv);
}
