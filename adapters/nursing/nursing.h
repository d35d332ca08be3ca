/* handover-nursing: the community nursing adapter (HL7 v2 over MLLP).
 *
 * Inbound (inbound.c): an MLLP listener takes messages from the trust's
 * PAS and the community nursing system, maps each to an event, publishes
 * it, and answers AA/CA only after the hub's Ack (domain 5.6).
 * Outbound (outbound.c): deliveries from the hub become HL7 messages sent
 * to the nursing system over one MLLP connection, one at a time; a
 * delivery is settled only after the partner's ACK.
 *
 * Everything runs on one libuv loop; this header is the state the two
 * halves and main.c share.
 */
#ifndef HANDOVER_NURSING_H
#define HANDOVER_NURSING_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "conf.h"
#include "hublink.h"

typedef struct nursing_cfg {
    char *hub_endpoint;
    char *client_name;
    hublink_curve curve; /* hub.curve_server_key, hub.curve_key_file */
    uint64_t credit;
    char *listen_host;
    uint64_t listen_port;
    uint64_t max_frame;
    uint64_t hard_cap;
    uint64_t idle_timeout_ms;
    uint64_t frame_timeout_ms;
    uint64_t hub_timeout_ms;
    char *partner_host;
    uint64_t partner_port;
    char *partner_app;
    char *partner_facility;
    uint64_t ack_timeout_ms;
    uint64_t connect_timeout_ms;
    bool accept_lf;
    char **processing_ids; /* NULL-terminated */
    char *default_charset;
} nursing_cfg;

typedef struct inbound inbound;
typedef struct outbound outbound;

typedef struct nursing {
    uv_loop_t *loop;
    nursing_cfg cfg;
    hublink *hub;
    inbound *in;
    outbound *out;
    bool stopping;
} nursing;

/* Read the configuration (file may be NULL) and --set overrides into
 * cfg. HOV_ECONFIG naming the setting. Free with nursing_cfg_free. */
HOV_NODISCARD hov_err nursing_cfg_load(nursing_cfg *cfg, const conf *c,
                                       hov_error *err);
void nursing_cfg_free(nursing_cfg *cfg);
/* The built-in default configuration, as YAML, for --print-default-config. */
extern const char nursing_default_config[];
extern const char *const nursing_config_keys[];

/* inbound.c: start listening. HOV_ESYS when the address cannot be bound. */
HOV_NODISCARD hov_err inbound_start(nursing *n, hov_error *err);
/* The hub answered publish seq (an Ack or a Nak). */
void inbound_answer(nursing *n, const hov_msg *msg);
/* Stop listening and close every connection; an unanswered message is
 * left unanswered, so its sender resends it (deduplicated by the hub). */
void inbound_stop(nursing *n);

/* outbound.c */
HOV_NODISCARD hov_err outbound_start(nursing *n, hov_error *err);
void outbound_deliver(nursing *n, const hov_msg *msg);
/* Close the partner connection; deliveries not yet acknowledged by the
 * partner stay unsettled, so the hub delivers them again. */
void outbound_stop(nursing *n);

#endif
