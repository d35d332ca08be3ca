/* handover-voluntary: the voluntary-sector adapter (signed JSON webhooks).
 *
 * Outbound (outbound.c): referrals the hub delivers to the voluntary
 * agency (already in the voluntary view: no NHS number, no date of birth,
 * age_years instead) are POSTed as the canonical event in JSON to the
 * organisation's webhook URL, signed with HMAC-SHA256 over timestamp and
 * body (domain 8.1, 8.2), with Idempotency-Key = event id; settled by the
 * answer (domain 8.4): 2xx done; 408, 425, 429, 5xx and transport failures
 * retry; 3xx and other 4xx rejected with the status and the body's start.
 *
 * Inbound (inbound.c): outcome webhooks on POST /webhooks/v1/outcome
 * (domain 8.5), verified before anything is published: a known sender, a
 * timestamp inside the replay window, the signature; then Content-Type,
 * JSON and schema. 200 only after the hub's Ack.
 *
 * Organisations and their secrets live in a table file of their own
 * (partner.orgs_file), never in the YAML configuration (domain 8.6): one
 * line per organisation, "<org code> <url or -> <key id> <secret>", where
 * "-" stands for partner.default_url. The file must not be readable by
 * group or others.
 */
#ifndef HANDOVER_VOLUNTARY_H
#define HANDOVER_VOLUNTARY_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "conf.h"
#include "hublink.h"

typedef struct vol_org {
    char *code;   /* local:VCS-0002 */
    char *url;    /* its webhook URL */
    char *key_id; /* Handover-Key-Id: which secret signs */
    uint8_t *secret;
    size_t secret_len;
} vol_org;

typedef struct vol_cfg {
    char *hub_endpoint;
    char *client_name;
    uint64_t credit;
    hublink_curve curve; /* hub.curve_server_key, hub.curve_key_file */
    char *listen_host;
    uint64_t listen_port;
    uint64_t max_body;
    uint64_t header_timeout_ms;
    uint64_t body_timeout_ms;
    uint64_t idle_timeout_ms;
    uint64_t max_conns;
    uint64_t hub_timeout_ms;
    uint64_t replay_window_s;
    uint64_t clock_override; /* test only: "now" for the replay window */
    char *orgs_file;
    char *default_url;
    uint64_t partner_timeout_ms;
    uint64_t partner_concurrency;
    char *partner_ca_file; /* "" : the system's CA store */
    vol_org *orgs;
    size_t n_orgs;
} vol_cfg;

typedef struct vol_inbound vol_inbound;
typedef struct vol_outbound vol_outbound;

typedef struct vol {
    uv_loop_t *loop;
    vol_cfg cfg;
    hublink *hub;
    vol_inbound *in;
    vol_outbound *out;
    bool stopping;
    bool curl_ready; /* httpc_global_init done */
} vol;

extern const char vol_default_config[];
extern const char *const vol_config_keys[];
HOV_NODISCARD hov_err vol_cfg_load(vol_cfg *cfg, const conf *c, hov_error *err);
void vol_cfg_free(vol_cfg *cfg);

/* The organisation with code, borrowed from cfg; NULL when not in the
 * table. */
const vol_org *vol_org_find(const vol_cfg *cfg, const char *code);

/* inbound.c */
HOV_NODISCARD hov_err vol_inbound_start(vol *v, hov_error *err);
void vol_inbound_answer(vol *v, const hov_msg *msg);
/* Stop serving; webhooks still waiting for the hub get 503 and a
 * Retry-After, so the organisation resends them (the Idempotency-Key makes
 * the resend the same event). */
void vol_inbound_stop(vol *v);

/* outbound.c */
HOV_NODISCARD hov_err vol_outbound_start(vol *v, hov_error *err);
void vol_outbound_deliver(vol *v, const hov_msg *msg);
/* Cancel posts in flight without settling them: the hub delivers them
 * again, and the Idempotency-Key lets the organisation drop the resend. */
void vol_outbound_stop(vol *v);

#endif
