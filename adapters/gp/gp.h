/* handover-gp: the GP system adapter (FHIR R4 over HTTP, JSON).
 *
 * Inbound (inbound.c): an HTTP server takes referrals (ServiceRequest),
 * equipment orders (DeviceRequest), outcomes (Task) and message Bundles
 * from the GP clinical system, maps each to an event and answers 201 only
 * after the hub's Ack (domain 6.5). Outbound (outbound.c): discharges and
 * outcomes the hub delivers are POSTed to the GP system's FHIR endpoint
 * with a conditional create keyed on the event id, and settled by the
 * answer: 2xx done, 4xx rejected, 5xx and transport failures retry.
 */
#ifndef HANDOVER_GP_H
#define HANDOVER_GP_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "conf.h"
#include "hublink.h"

typedef struct gp_cfg {
    char *hub_endpoint;
    char *client_name;
    hublink_curve curve; /* hub.curve_server_key, hub.curve_key_file */
    uint64_t credit;
    char *listen_host;
    uint64_t listen_port;
    uint64_t max_body;
    uint64_t header_timeout_ms;
    uint64_t body_timeout_ms;
    uint64_t idle_timeout_ms;
    uint64_t max_conns;
    uint64_t hub_timeout_ms;
    char *base;        /* Handover's canonical FHIR base */
    char *partner_url; /* the GP system's FHIR base URL */
    uint64_t partner_timeout_ms;
    uint64_t partner_concurrency;
    char *partner_ca_file; /* "" : the system's CA store */
    char **gp_orgs;        /* NULL-terminated */
} gp_cfg;

typedef struct gp_inbound gp_inbound;
typedef struct gp_outbound gp_outbound;

typedef struct gp {
    uv_loop_t *loop;
    gp_cfg cfg;
    hublink *hub;
    gp_inbound *in;
    gp_outbound *out;
    bool stopping;
    bool curl_ready; /* httpc_global_init done */
} gp;

extern const char gp_default_config[];
extern const char *const gp_config_keys[];
HOV_NODISCARD hov_err gp_cfg_load(gp_cfg *cfg, const conf *c, hov_error *err);
void gp_cfg_free(gp_cfg *cfg);

/* inbound.c */
HOV_NODISCARD hov_err gp_inbound_start(gp *g, hov_error *err);
void gp_inbound_answer(gp *g, const hov_msg *msg);
/* Stop serving; requests still waiting for the hub get 503 and a
 * Retry-After, so the GP system resends them (the event id makes the
 * resend harmless). */
void gp_inbound_stop(gp *g);

/* outbound.c */
HOV_NODISCARD hov_err gp_outbound_start(gp *g, hov_error *err);
void gp_outbound_deliver(gp *g, const hov_msg *msg);
/* Cancel transfers in flight without settling them: the hub delivers them
 * again, and the conditional create makes the resend harmless. */
void gp_outbound_stop(gp *g);

#endif
