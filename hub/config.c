#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>
#include <zmq.h>

/* Fellshire, the fictional county of the samples (domain brief §1). A real
 * partnership replaces the organisations and keeps the routes. */
const char config_default_yaml[] =
    "# Handover hub: built-in default configuration.\n"
    "hub:\n"
    "  endpoint: tcp://127.0.0.1:7400\n"
    "  data_dir: ./handover-data\n"
    "  map_size_mb: 4096\n"
    "  max_event_bytes: 1048576\n"
    "  allow_test_nhs_numbers: true   # switch off in production\n"
    "  heartbeat_ms: 1000\n"
    "  settle_timeout_ms: 120000\n"
    "  queue_warn_ms: 60000        # status warns when a delivery waits this "
    "long\n"
    "  max_attempts: 12\n"
    "  backoff_initial_ms: 1000\n"
    "  backoff_max_ms: 300000\n"
    "  batch_max: 2048\n"
    "  ids_merge_at: 65536\n"
    "  queue_memory_max: 10000     # deliveries per agency held in memory; "
    "the rest wait in the store\n"
    "  deliver_discharge_outcomes: false\n"
    "\n"
    "organisations:\n"
    "  - {code: Z99001, agency: gp, name: Aldercote Surgery}\n"
    "  - {code: Z99002, agency: gp, name: Brackenby Medical Group}\n"
    "  - {code: Z99003, agency: gp, name: Croxwell Health Centre}\n"
    "  - {code: RZZ, agency: nursing, name: North Fell NHS Foundation Trust}\n"
    "  - {code: RZZ01, agency: nursing, name: Fellgate University Hospital}\n"
    "  - {code: RZZ02, agency: nursing, name: Brackenby Community Hospital}\n"
    "  - {code: RZZ40, agency: nursing, name: North Fell community nursing}\n"
    "  - {code: Z9Z9Z, agency: social, view: council,\n"
    "     name: Fellshire County Council Adult Social Care}\n"
    "  - {code: 8ZZ99, agency: social, view: ces,\n"
    "     name: Fellshire Community Equipment Service}\n"
    "  - {code: 'local:VCS-0001', agency: voluntary, name: Aldercote Age "
    "Well}\n"
    "  - {code: 'local:VCS-0002', agency: voluntary, name: Brackenby "
    "Befrienders}\n"
    "  - {code: 'local:VCS-0003', agency: voluntary, name: Croxwell Carers "
    "Centre}\n"
    "\n"
    "# Every matching route adds its destinations; an event's own\n"
    "# destinations are always added too (unknown codes are refused).\n"
    "routes:\n"
    "  - name: referral-community-nursing\n"
    "    match: {event_type: referral,\n"
    "            service: [district-nursing, urgent-community-response,\n"
    "                      community-therapy]}\n"
    "    to: [RZZ40]\n"
    "  - name: referral-social-care\n"
    "    match: {event_type: referral,\n"
    "            service: [adult-social-care-assessment, carers-assessment,\n"
    "                      reablement]}\n"
    "    to: [Z9Z9Z]\n"
    "  - name: referral-voluntary\n"
    "    match: {event_type: referral,\n"
    "            service: [social-prescribing, home-from-hospital]}\n"
    "    to: [requested]\n"
    "  - name: discharge-gp\n"
    "    match: {event_type: discharge}\n"
    "    to: [registered_gp]\n"
    "  - name: discharge-pathways-1-3\n"
    "    match: {event_type: discharge, pathway: [1, 2, 3]}\n"
    "    to: [RZZ40, Z9Z9Z]\n"
    "  - name: discharge-follow-up-nursing\n"
    "    match: {event_type: discharge, follow_up_service: "
    "[district-nursing]}\n"
    "    to: [RZZ40]\n"
    "  - name: equipment-service\n"
    "    match: {event_type: equipment_order}\n"
    "    to: [8ZZ99]\n"
    "  - name: outcome-to-source\n"
    "    match: {event_type: outcome}\n"
    "    to: [reply_to_source]\n"
    "\n"
    "# CURVE on the hub socket (off when this section is absent: plain TCP,\n"
    "# and any process that reaches the endpoint may say it is any agency).\n"
    "# Keys come from `handover-ctl keygen NAME`; each client's public key\n"
    "# (its NAME.pub) decides its agency, whatever its Hello says.\n"
    "# curve:\n"
    "#   secret_key_file: keys/hub.key\n"
    "#   clients:\n"
    "#     - {name: nursing, agency: nursing, public_key: '<40 chars>'}\n"
    "#     - {name: gp, agency: gp, public_key: '<40 chars>'}\n";

static const char *agency_names[AGENCY_COUNT] = {"gp", "nursing", "social",
                                                 "voluntary"};

const char *
config_agency_name(config_agency a)
{
    return (unsigned)a < AGENCY_COUNT ? agency_names[a] : "unknown";
}

int
config_agency_parse(const char *name)
{
    for (int i = 0; i < AGENCY_COUNT; i++)
        if (strcmp(name, agency_names[i]) == 0)
            return i;
    return -1;
}

static void
config_defaults(config *c)
{
    memset(c, 0, sizeof *c);
    snprintf(c->endpoint, sizeof c->endpoint, "tcp://127.0.0.1:7400");
    snprintf(c->data_dir, sizeof c->data_dir, "./handover-data");
    c->map_size = (size_t)4096 << 20;
    c->max_event_bytes = 1 << 20;
    c->allow_test_nhs_numbers = true;
    c->heartbeat_ms = 1000;
    c->settle_timeout_ms = 120000;
    c->queue_warn_ms = 60000;
    c->max_attempts = 12;
    c->backoff_initial_ms = 1000;
    c->backoff_max_ms = 300000;
    c->batch_max = 2048;
    c->ids_merge_at = 65536;
    c->queue_memory_max = 10000;
}

/* ------------------------------------------------------------ parsing --- */

typedef struct parse_ctx {
    yaml_document_t *doc;
    const char *name;
    hov_error *err;
} parse_ctx;

static hov_err
cfg_bad(parse_ctx *p, const yaml_node_t *n, const char *fmt, const char *a,
        const char *b)
{
    char what[200];
    snprintf(what, sizeof what, fmt, a, b ? b : "");
    return hov_fail(p->err, HOV_ECONFIG, 0, "%s:%lu: %s", p->name,
                    n ? (unsigned long)n->start_mark.line + 1 : 0UL, what);
}

static const char *
scalar(const yaml_node_t *n)
{
    return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value
                                            : NULL;
}

static hov_err
parse_uint(parse_ctx *p, const yaml_node_t *n, const char *key,
           unsigned long long max, unsigned long long *out)
{
    const char *s = scalar(n);
    char *end;
    if (s == NULL || *s == '\0' || *s == '-')
        return cfg_bad(p, n, "%s must be a non-negative integer", key, NULL);
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end != '\0' || v > max)
        return cfg_bad(p, n, "%s: '%s' is not a valid number in range", key, s);
    *out = v;
    return HOV_OK;
}

static hov_err
parse_bool(parse_ctx *p, const yaml_node_t *n, const char *key, bool *out)
{
    const char *s = scalar(n);
    if (s && (strcmp(s, "true") == 0 || strcmp(s, "yes") == 0)) {
        *out = true;
        return HOV_OK;
    }
    if (s && (strcmp(s, "false") == 0 || strcmp(s, "no") == 0)) {
        *out = false;
        return HOV_OK;
    }
    return cfg_bad(p, n, "%s must be true or false", key, NULL);
}

static hov_err
copy_str(parse_ctx *p, const yaml_node_t *n, const char *key, char *dst,
         size_t cap)
{
    const char *s = scalar(n);
    if (s == NULL)
        return cfg_bad(p, n, "%s must be a string", key, NULL);
    if (strlen(s) >= cap)
        return cfg_bad(p, n, "%s is too long: '%s'", key, s);
    memcpy(dst, s, strlen(s) + 1);
    return HOV_OK;
}

/* One hub setting by key, from a string; shared by YAML and --set. */
static hov_err
setting_apply(config *c, parse_ctx *p, const yaml_node_t *n, const char *key)
{
    unsigned long long v;
    hov_err rc;
#define U(name, field, max)                                                    \
    if (strcmp(key, name) == 0) {                                              \
        if ((rc = parse_uint(p, n, key, max, &v)) != HOV_OK)                   \
            return rc;                                                         \
        c->field = v;                                                          \
        return HOV_OK;                                                         \
    }
    U("max_event_bytes", max_event_bytes, 64ULL << 20)
    U("heartbeat_ms", heartbeat_ms, 600000)
    U("settle_timeout_ms", settle_timeout_ms, 86400000)
    U("queue_warn_ms", queue_warn_ms, 86400000)
    U("max_attempts", max_attempts, 1000000)
    U("backoff_initial_ms", backoff_initial_ms, 86400000)
    U("backoff_max_ms", backoff_max_ms, 86400000)
    U("batch_max", batch_max, 1000000)
    U("ids_merge_at", ids_merge_at, 10000000)
    U("queue_memory_max", queue_memory_max, 10000000)
#undef U
    if (strcmp(key, "map_size_mb") == 0) {
        if ((rc = parse_uint(p, n, key, 1ULL << 30, &v)) != HOV_OK)
            return rc;
        c->map_size = (size_t)v << 20;
        return HOV_OK;
    }
    if (strcmp(key, "map_size_kb") == 0) { /* tests: a tiny map */
        if ((rc = parse_uint(p, n, key, 1ULL << 40, &v)) != HOV_OK)
            return rc;
        c->map_size = (size_t)v << 10;
        return HOV_OK;
    }
    if (strcmp(key, "endpoint") == 0)
        return copy_str(p, n, key, c->endpoint, sizeof c->endpoint);
    if (strcmp(key, "data_dir") == 0)
        return copy_str(p, n, key, c->data_dir, sizeof c->data_dir);
    if (strcmp(key, "allow_test_nhs_numbers") == 0)
        return parse_bool(p, n, key, &c->allow_test_nhs_numbers);
    if (strcmp(key, "deliver_discharge_outcomes") == 0)
        return parse_bool(p, n, key, &c->deliver_discharge_outcomes);
    return cfg_bad(p, n, "unknown hub setting '%s'", key, NULL);
}

static yaml_node_t *
node(parse_ctx *p, int id)
{
    return yaml_document_get_node(p->doc, id);
}

static hov_err
parse_hub(config *c, parse_ctx *p, yaml_node_t *m)
{
    if (m->type != YAML_MAPPING_NODE)
        return cfg_bad(p, m, "hub must be a mapping", NULL, NULL);
    for (yaml_node_pair_t *kv = m->data.mapping.pairs.start;
         kv < m->data.mapping.pairs.top; kv++) {
        const char *key = scalar(node(p, kv->key));
        if (key == NULL)
            return cfg_bad(p, m, "hub keys must be strings", NULL, NULL);
        hov_err rc = setting_apply(c, p, node(p, kv->value), key);
        if (rc != HOV_OK)
            return rc;
    }
    return HOV_OK;
}

/* A scalar or a sequence of scalars, as a malloc'd array of strings. */
static hov_err
parse_list(parse_ctx *p, yaml_node_t *n, const char *key, char ***out,
           size_t *count)
{
    size_t cap = n->type == YAML_SEQUENCE_NODE
                     ? (size_t)(n->data.sequence.items.top -
                                n->data.sequence.items.start)
                     : 1;
    char **v = calloc(cap ? cap : 1, sizeof *v);
    if (v == NULL)
        return hov_fail(p->err, HOV_ENOMEM, 0, "config: allocate %s", key);
    *out = v;
    *count = 0;
    for (size_t i = 0; i < cap; i++) {
        yaml_node_t *it = n->type == YAML_SEQUENCE_NODE
                              ? node(p, n->data.sequence.items.start[i])
                              : n;
        const char *s = scalar(it);
        if (s == NULL || *s == '\0')
            return cfg_bad(p, it, "%s must hold non-empty strings", key, NULL);
        if ((v[i] = strdup(s)) == NULL)
            return hov_fail(p->err, HOV_ENOMEM, 0, "config: copy %s", key);
        (*count)++;
    }
    return HOV_OK;
}

/* A YAML list of what: its length, and a zeroed array of as many elements
 * of size bytes in *out (owned by the config, freed by config_fini). */
static hov_err
list_alloc(parse_ctx *p, yaml_node_t *seq, const char *what, size_t size,
           void **out, size_t *n)
{
    if (seq->type != YAML_SEQUENCE_NODE)
        return cfg_bad(p, seq, "%s must be a list", what, NULL);
    *n =
        (size_t)(seq->data.sequence.items.top - seq->data.sequence.items.start);
    *out = calloc(*n ? *n : 1, size);
    if (*out == NULL)
        return hov_fail(p->err, HOV_ENOMEM, 0, "config: allocate %s", what);
    return HOV_OK;
}

static hov_err
parse_orgs(config *c, parse_ctx *p, yaml_node_t *seq)
{
    size_t n;
    void *arr;
    hov_err e = list_alloc(p, seq, "organisations", sizeof *c->orgs, &arr, &n);
    if (e != HOV_OK)
        return e;
    c->orgs = arr;
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *m = node(p, seq->data.sequence.items.start[i]);
        config_org *o = &c->orgs[c->n_orgs];
        int agency = -1;
        hov_err rc;
        if (m->type != YAML_MAPPING_NODE)
            return cfg_bad(p, m, "each organisation must be a mapping", NULL,
                           NULL);
        for (yaml_node_pair_t *kv = m->data.mapping.pairs.start;
             kv < m->data.mapping.pairs.top; kv++) {
            const char *key = scalar(node(p, kv->key));
            yaml_node_t *val = node(p, kv->value);
            if (key && strcmp(key, "code") == 0)
                rc = copy_str(p, val, key, o->code, sizeof o->code);
            else if (key && strcmp(key, "name") == 0)
                rc = copy_str(p, val, key, o->name, sizeof o->name);
            else if (key && strcmp(key, "view") == 0)
                rc = copy_str(p, val, key, o->view, sizeof o->view);
            else if (key && strcmp(key, "agency") == 0) {
                const char *s = scalar(val);
                agency = s ? config_agency_parse(s) : -1;
                rc = agency < 0
                         ? cfg_bad(p, val,
                                   "agency '%s' is not gp, nursing, social "
                                   "or voluntary",
                                   s ? s : "", NULL)
                         : HOV_OK;
            } else
                rc = cfg_bad(p, m, "unknown organisation key '%s'",
                             key ? key : "?", NULL);
            if (rc != HOV_OK)
                return rc;
        }
        if (o->code[0] == '\0' || agency < 0)
            return cfg_bad(p, m, "an organisation needs a code and an agency",
                           NULL, NULL);
        if (config_org_find(c, o->code) != NULL)
            return cfg_bad(p, m, "organisation %s is listed twice", o->code,
                           NULL);
        o->agency = (config_agency)agency;
        c->n_orgs++;
    }
    return HOV_OK;
}

static hov_err
parse_match(config_route *r, parse_ctx *p, yaml_node_t *m)
{
    if (m->type != YAML_MAPPING_NODE)
        return cfg_bad(p, m, "route %s: match must be a mapping", r->name,
                       NULL);
    for (yaml_node_pair_t *kv = m->data.mapping.pairs.start;
         kv < m->data.mapping.pairs.top; kv++) {
        const char *key = scalar(node(p, kv->key));
        yaml_node_t *val = node(p, kv->value);
        hov_err rc;
        if (key && strcmp(key, "event_type") == 0)
            rc = copy_str(p, val, key, r->event_type, sizeof r->event_type);
        else if (key && strcmp(key, "service") == 0)
            rc = parse_list(p, val, key, &r->services, &r->n_services);
        else if (key && strcmp(key, "follow_up_service") == 0)
            rc = parse_list(p, val, key, &r->follow_up, &r->n_follow_up);
        else if (key && strcmp(key, "pathway") == 0) {
            char **v = NULL;
            size_t n = 0;
            rc = parse_list(p, val, key, &v, &n);
            for (size_t i = 0; rc == HOV_OK && i < n; i++) {
                if (strlen(v[i]) != 1 || v[i][0] < '0' || v[i][0] > '3')
                    rc = cfg_bad(p, val, "pathway '%s' is not 0 to 3", v[i],
                                 NULL);
                else
                    r->pathways |= 1u << (v[i][0] - '0');
            }
            for (size_t i = 0; i < n; i++)
                free(v[i]);
            free(v);
        } else
            rc = cfg_bad(p, m, "route %s: unknown match key '%s'", r->name,
                         key ? key : "?");
        if (rc != HOV_OK)
            return rc;
    }
    return HOV_OK;
}

static hov_err
parse_routes(config *c, parse_ctx *p, yaml_node_t *seq)
{
    size_t n;
    void *arr;
    hov_err e = list_alloc(p, seq, "routes", sizeof *c->routes, &arr, &n);
    if (e != HOV_OK)
        return e;
    c->routes = arr;
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *m = node(p, seq->data.sequence.items.start[i]);
        config_route *r = &c->routes[c->n_routes++];
        hov_err rc;
        if (m->type != YAML_MAPPING_NODE)
            return cfg_bad(p, m, "each route must be a mapping", NULL, NULL);
        snprintf(r->name, sizeof r->name, "route-%zu", i + 1);
        for (yaml_node_pair_t *kv = m->data.mapping.pairs.start;
             kv < m->data.mapping.pairs.top; kv++) {
            const char *key = scalar(node(p, kv->key));
            yaml_node_t *val = node(p, kv->value);
            if (key && strcmp(key, "name") == 0)
                rc = copy_str(p, val, key, r->name, sizeof r->name);
            else if (key && strcmp(key, "match") == 0)
                rc = parse_match(r, p, val);
            else if (key && strcmp(key, "to") == 0)
                rc = parse_list(p, val, key, &r->to, &r->n_to);
            else
                rc = cfg_bad(p, m, "unknown route key '%s'", key ? key : "?",
                             NULL);
            if (rc != HOV_OK)
                return rc;
        }
        if (r->n_to == 0)
            return cfg_bad(p, m, "route %s has no 'to'", r->name, NULL);
    }
    return HOV_OK;
}

/* curve: {secret_key_file: PATH, clients: [{name, agency, public_key}]} */
static hov_err
parse_curve_client(config *c, parse_ctx *p, yaml_node_t *m)
{
    config_curve_client *k = &c->curve_clients[c->n_curve_clients];
    int agency = -1;
    if (m->type != YAML_MAPPING_NODE)
        return cfg_bad(p, m,
                       "each curve client must be a mapping {name, agency, "
                       "public_key}",
                       NULL, NULL);
    for (yaml_node_pair_t *kv = m->data.mapping.pairs.start;
         kv < m->data.mapping.pairs.top; kv++) {
        const char *key = scalar(node(p, kv->key));
        yaml_node_t *val = node(p, kv->value);
        hov_err rc;
        if (key && strcmp(key, "name") == 0)
            rc = copy_str(p, val, key, k->name, sizeof k->name);
        else if (key && strcmp(key, "public_key") == 0)
            rc = copy_str(p, val, key, k->public_key, sizeof k->public_key);
        else if (key && strcmp(key, "agency") == 0) {
            const char *s = scalar(val);
            agency = s ? config_agency_parse(s) : -1;
            rc = agency < 0 ? cfg_bad(p, val,
                                      "curve client agency '%s' is not gp, "
                                      "nursing, social or voluntary",
                                      s ? s : "", NULL)
                            : HOV_OK;
        } else
            rc = cfg_bad(p, m, "unknown curve client key '%s'", key ? key : "?",
                         NULL);
        if (rc != HOV_OK)
            return rc;
    }
    uint8_t bin[32];
    if (k->name[0] == '\0' || agency < 0)
        return cfg_bad(p, m, "a curve client needs a name and an agency", NULL,
                       NULL);
    /* A key that does not decode would never match: say so now rather
     * than refuse the client at its first connection. */
    if (strlen(k->public_key) != 40 ||
        zmq_z85_decode(bin, k->public_key) == NULL)
        return cfg_bad(p, m,
                       "curve client %s: public_key must be 40 Z85 "
                       "characters (the key in its .pub file, in single "
                       "quotes)",
                       k->name, NULL);
    for (size_t i = 0; i < c->n_curve_clients; i++)
        if (strcmp(c->curve_clients[i].public_key, k->public_key) == 0)
            return cfg_bad(p, m,
                           "curve client %s has the same public_key as %s: "
                           "one key, one agency",
                           k->name, c->curve_clients[i].name);
    k->agency = (config_agency)agency;
    c->n_curve_clients++;
    return HOV_OK;
}

static hov_err
parse_curve(config *c, parse_ctx *p, yaml_node_t *m)
{
    if (m->type != YAML_MAPPING_NODE)
        return cfg_bad(p, m, "curve must be a mapping", NULL, NULL);
    yaml_node_t *clients = NULL;
    for (yaml_node_pair_t *kv = m->data.mapping.pairs.start;
         kv < m->data.mapping.pairs.top; kv++) {
        const char *key = scalar(node(p, kv->key));
        yaml_node_t *val = node(p, kv->value);
        hov_err rc = HOV_OK;
        if (key && strcmp(key, "secret_key_file") == 0)
            rc = copy_str(p, val, key, c->curve_secret_key_file,
                          sizeof c->curve_secret_key_file);
        else if (key && strcmp(key, "clients") == 0)
            clients = val;
        else
            rc = cfg_bad(p, m,
                         "unknown curve key '%s' (expected secret_key_file, "
                         "clients)",
                         key ? key : "?", NULL);
        if (rc != HOV_OK)
            return rc;
    }
    if (c->curve_secret_key_file[0] == '\0' || clients == NULL)
        return cfg_bad(p, m,
                       "curve needs secret_key_file (the hub's key pair, "
                       "from handover-ctl keygen hub) and clients",
                       NULL, NULL);
    size_t n;
    void *arr;
    hov_err e = list_alloc(p, clients, "curve clients",
                           sizeof *c->curve_clients, &arr, &n);
    if (e != HOV_OK)
        return e;
    free(c->curve_clients); /* a second curve: section replaces the first */
    c->curve_clients = arr;
    c->n_curve_clients = 0;
    if (n == 0)
        return cfg_bad(p, clients,
                       "curve clients is empty: every adapter would be "
                       "refused",
                       NULL, NULL);
    for (size_t i = 0; i < n; i++) {
        e = parse_curve_client(c, p,
                               node(p, clients->data.sequence.items.start[i]));
        if (e != HOV_OK)
            return e;
    }
    c->curve = true;
    return HOV_OK;
}

/* Destinations must be known organisations or special names. */
static hov_err
config_check(config *c, parse_ctx *p)
{
    for (size_t i = 0; i < c->n_routes; i++) {
        config_route *r = &c->routes[i];
        for (size_t j = 0; j < r->n_to; j++) {
            const char *t = r->to[j];
            if (strcmp(t, ROUTE_TO_REQUESTED) &&
                strcmp(t, ROUTE_TO_REGISTERED_GP) &&
                strcmp(t, ROUTE_TO_REPLY) && config_org_find(c, t) == NULL)
                return hov_fail(p->err, HOV_ECONFIG, 0,
                                "%s: route %s sends to %s, which is not in "
                                "organisations",
                                p->name, r->name, t);
        }
    }
    if (c->heartbeat_ms == 0 || c->max_attempts == 0 || c->batch_max == 0)
        return hov_fail(p->err, HOV_ECONFIG, 0,
                        "%s: heartbeat_ms, max_attempts and batch_max must be "
                        "at least 1",
                        p->name);
    return HOV_OK;
}

hov_err
config_load_string(config *c, const char *yaml, const char *name,
                   hov_error *err)
{
    config_defaults(c);
    yaml_parser_t parser;
    yaml_document_t doc;
    parse_ctx p = {&doc, name, err};
    hov_err rc = HOV_OK;

    if (!yaml_parser_initialize(&parser))
        return hov_fail(err, HOV_ENOMEM, 0, "config: yaml parser");
    yaml_parser_set_input_string(&parser, (const unsigned char *)yaml,
                                 strlen(yaml));
    if (!yaml_parser_load(&parser, &doc)) {
        rc = hov_fail(err, HOV_ECONFIG, 0, "%s:%lu: YAML error: %s", name,
                      (unsigned long)parser.problem_mark.line + 1,
                      parser.problem ? parser.problem : "unknown");
        yaml_parser_delete(&parser);
        return rc;
    }
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (root == NULL || root->type != YAML_MAPPING_NODE) {
        rc = hov_fail(err, HOV_ECONFIG, 0,
                      "%s: the configuration must be a YAML mapping", name);
        goto out;
    }
    for (yaml_node_pair_t *kv = root->data.mapping.pairs.start;
         rc == HOV_OK && kv < root->data.mapping.pairs.top; kv++) {
        const char *key = scalar(node(&p, kv->key));
        yaml_node_t *val = node(&p, kv->value);
        if (key && strcmp(key, "hub") == 0)
            rc = parse_hub(c, &p, val);
        else if (key && strcmp(key, "organisations") == 0)
            rc = parse_orgs(c, &p, val);
        else if (key && strcmp(key, "routes") == 0)
            rc = parse_routes(c, &p, val);
        else if (key && strcmp(key, "curve") == 0)
            rc = parse_curve(c, &p, val);
        else
            rc = cfg_bad(&p, val,
                         "unknown top-level key '%s' (expected hub, "
                         "organisations, routes, curve)",
                         key ? key : "?", NULL);
    }
    if (rc == HOV_OK)
        rc = config_check(c, &p);
out:
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    return rc;
}

hov_err
config_load(config *c, const char *path, hov_error *err)
{
    if (path == NULL)
        return config_load_string(c, config_default_yaml, "built-in default",
                                  err);
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        config_defaults(c);
        return hov_fail(err, HOV_EIO, errno, "open configuration %s: %s", path,
                        strerror(errno));
    }
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 16384;
            char *nb = realloc(buf, cap);
            if (nb == NULL) {
                free(buf);
                fclose(f);
                config_defaults(c);
                return hov_fail(err, HOV_ENOMEM, 0, "read %s", path);
            }
            buf = nb;
        }
        size_t n = fread(buf + len, 1, 4096, f);
        len += n;
        if (n < 4096)
            break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        config_defaults(c);
        return hov_fail(err, HOV_EIO, 0, "read configuration %s", path);
    }
    buf[len] = '\0';
    hov_err rc = config_load_string(c, buf, path, err);
    free(buf);
    return rc;
}

hov_err
config_set(config *c, const char *key, const char *value, hov_error *err)
{
    yaml_node_t n;
    memset(&n, 0, sizeof n);
    n.type = YAML_SCALAR_NODE;
    n.data.scalar.value = (yaml_char_t *)value;
    n.data.scalar.length = strlen(value);
    parse_ctx p = {NULL, "--set", err};
    return setting_apply(c, &p, &n, key);
}

static void
free_list(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

void
config_fini(config *c)
{
    for (size_t i = 0; i < c->n_routes; i++) {
        free_list(c->routes[i].services, c->routes[i].n_services);
        free_list(c->routes[i].follow_up, c->routes[i].n_follow_up);
        free_list(c->routes[i].to, c->routes[i].n_to);
    }
    free(c->routes);
    free(c->orgs);
    free(c->curve_clients);
    c->routes = NULL;
    c->orgs = NULL;
    c->curve_clients = NULL;
    c->n_routes = c->n_orgs = c->n_curve_clients = 0;
    c->curve = false;
}

const config_org *
config_org_find(const config *c, const char *code)
{
    for (size_t i = 0; i < c->n_orgs; i++)
        if (strcmp(c->orgs[i].code, code) == 0)
            return &c->orgs[i];
    return NULL;
}
