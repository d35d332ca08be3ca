/* Hub configuration: the hub's settings, the organisations it knows (each
 * belonging to one agency) and the routing rules.
 *
 * Loaded from YAML (libyaml). With no file the hub runs on the built-in
 * default, config_default_yaml, which is parsed by the same code so the
 * default is always a valid example of the format (`handover-hub
 * --print-default-config` prints it). Unknown keys are errors that name the
 * file, line and key: a misspelt setting silently ignored is how an
 * integration ends up routing to nobody.
 */
#ifndef HUB_CONFIG_H
#define HUB_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "handover/err.h"

/* The four agencies. The numbers are stored in LMDB queue keys: frozen. */
typedef enum config_agency {
    AGENCY_GP = 0,
    AGENCY_NURSING = 1,
    AGENCY_SOCIAL = 2,
    AGENCY_VOLUNTARY = 3,
    AGENCY_COUNT = 4,
} config_agency;

#define CONFIG_CODE_MAX 48

typedef struct config_org {
    char code[CONFIG_CODE_MAX];
    char name[96];
    config_agency agency;
    char view[24]; /* minimum-necessary view at delivery (hub/route.c) */
} config_org;

/* Special destinations a route may name besides org codes. */
#define ROUTE_TO_REQUESTED     "requested"       /* the event's destinations */
#define ROUTE_TO_REGISTERED_GP "registered_gp"   /* patient.registered_gp */
#define ROUTE_TO_REPLY         "reply_to_source" /* source of in_reply_to */

typedef struct config_route {
    char name[64];
    char event_type[24]; /* "" matches every type */
    char **services;     /* referral.service in this list; NULL: any */
    size_t n_services;
    unsigned pathways; /* bit p set: discharge pathway p; 0: any */
    char **follow_up;  /* discharge with a follow_up.service in list */
    size_t n_follow_up;
    char **to; /* org codes or ROUTE_TO_* */
    size_t n_to;
} config_route;

/* A CURVE public key in Z85: 40 characters and the NUL. */
#define CONFIG_CURVE_KEY_Z85 41

/* A client the hub's ZAP handler lets in (hub/zap.h): its key decides its
 * agency, whatever its Hello says. */
typedef struct config_curve_client {
    char name[64]; /* for logs: who holds the key */
    char public_key[CONFIG_CURVE_KEY_Z85];
    config_agency agency;
} config_curve_client;

typedef struct config {
    char endpoint[256];
    char data_dir[512];
    size_t map_size;        /* bytes */
    size_t max_event_bytes; /* Publish.event limit */
    bool allow_test_nhs_numbers;
    unsigned heartbeat_ms;
    unsigned settle_timeout_ms;
    /* The status socket warns when the oldest delivery to a connected
     * adapter has waited this long: its partner is failing or slow. */
    unsigned queue_warn_ms;
    unsigned max_attempts; /* deliveries before dead letters */
    unsigned backoff_initial_ms;
    unsigned backoff_max_ms;
    unsigned batch_max;    /* frames per group commit, at most */
    unsigned ids_merge_at; /* new ids gathered before a sorted merge */
    /* Deliveries of one agency's queue held in memory; beyond it they wait
     * in the store only and are read in order as the queue drains, so a
     * long backlog does not grow the hub's memory. */
    unsigned queue_memory_max;
    bool deliver_discharge_outcomes;
    config_org *orgs;
    size_t n_orgs;
    config_route *routes;
    size_t n_routes;
    /* CURVE on the hub socket: on when the configuration has a curve:
     * section. The secret key stays in its file until broker_open. */
    bool curve;
    char curve_secret_key_file[512];
    config_curve_client *curve_clients;
    size_t n_curve_clients;
} config;

/* The built-in default configuration, as YAML. */
extern const char config_default_yaml[];

/* Load configuration from path, or the built-in default when path is NULL.
 * Fills *c (caller storage); release with config_fini even on failure.
 * HOV_ECONFIG: names the file, line and problem. HOV_EIO: unreadable file. */
HOV_NODISCARD hov_err config_load(config *c, const char *path, hov_error *err);

/* As config_load, from a YAML string; name is used in messages. */
HOV_NODISCARD hov_err config_load_string(config *c, const char *yaml,
                                         const char *name, hov_error *err);

/* Set one hub setting by its YAML key ("max_attempts", "data_dir", ...),
 * as given on the command line with --set key=value.
 * HOV_ECONFIG: unknown key or bad value. */
HOV_NODISCARD hov_err config_set(config *c, const char *key, const char *value,
                                 hov_error *err);

/* Release what config_load allocated. Zeroed storage is fine. */
void config_fini(config *c);

/* The organisation with this code, or NULL. Borrowed until config_fini. */
const config_org *config_org_find(const config *c, const char *code);

/* "gp", "nursing", "social", "voluntary". */
const char *config_agency_name(config_agency a);

/* Agency by name, or -1. */
int config_agency_parse(const char *name);

#endif
