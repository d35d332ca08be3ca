/* handover-social: the council social care adapter, which also serves the
 * jointly commissioned community equipment service (domain 7).
 *
 * Both partners exchange files. Inbound (inbound.c): the inbox is watched
 * with uv_fs_event and rescanned on a timer, because file events are lost
 * across restarts and on network file systems. Files are taken one at a
 * time in name order; every good record is published, and the file moves
 * to processed/ or error/ (with <name>.errors.txt) only once the hub has
 * answered each one, so a crash at any point leaves the file in the inbox
 * to be read again, and the derived event ids make the re-read harmless.
 * Outbound (outbound.c): each delivered event is written to the outbox as
 * one JSON file (temporary name, fsync, rename, directory fsync) before it
 * is settled. File work runs on libuv's thread pool, never on the loop.
 */
#ifndef HANDOVER_SOCIAL_H
#define HANDOVER_SOCIAL_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "conf.h"
#include "hublink.h"

typedef struct social_cfg {
    char *hub_endpoint;
    char *client_name;
    uint64_t credit;
    hublink_curve curve; /* hub.curve_server_key, hub.curve_key_file */
    char *inbox;         /* processed/ and error/ inside it */
    char *outbox;
    bool outbox_per_org; /* outbox/<destination code>/ */
    uint64_t scan_interval_ms;
    uint64_t max_file_bytes;
    uint64_t max_rows;
    char **senders; /* codes the partners publish as, NULL-terminated */
} social_cfg;

typedef struct social_inbound social_inbound;
typedef struct social_outbound social_outbound;

typedef struct social {
    uv_loop_t *loop;
    social_cfg cfg;
    hublink *hub;
    social_inbound *in;
    social_outbound *out;
    bool stopping;
} social;

extern const char social_default_config[];
extern const char *const social_config_keys[];
HOV_NODISCARD hov_err social_cfg_load(social_cfg *cfg, const conf *c,
                                      hov_error *err);
void social_cfg_free(social_cfg *cfg);

/* inbound.c */
HOV_NODISCARD hov_err social_inbound_start(social *s, hov_error *err);
void social_inbound_answer(social *s, const hov_msg *msg);
/* Stop watching; a file whose records are still waiting for the hub stays
 * in the inbox and is read again on the next start. */
void social_inbound_stop(social *s);

/* outbound.c */
HOV_NODISCARD hov_err social_outbound_start(social *s, hov_error *err);
void social_outbound_deliver(social *s, const hov_msg *msg);
/* Writes in progress finish on the thread pool but are not settled: the
 * hub delivers them again and the file is rewritten under the same name. */
void social_outbound_stop(social *s);

#endif
