/* Signed webhooks: see webhook.h. */
#include "webhook.h"

#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "handover/ident.h"
#include "handover/timeutil.h"

/* ------------------------------------------------------------ signature */

static bool
webhook_mac(const uint8_t *key, size_t keylen, const char *ts, const void *body,
            size_t len, uint8_t mac[32])
{
    if (sodium_init() < 0)
        return false;
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, key, keylen);
    crypto_auth_hmacsha256_update(&st, (const uint8_t *)ts, strlen(ts));
    crypto_auth_hmacsha256_update(&st, (const uint8_t *)".", 1);
    if (len > 0)
        crypto_auth_hmacsha256_update(&st, body, len);
    crypto_auth_hmacsha256_final(&st, mac);
    sodium_memzero(&st, sizeof st);
    return true;
}

bool
webhook_sign(const uint8_t *key, size_t keylen, const char *ts,
             const void *body, size_t len, char out[WEBHOOK_SIG_CAP])
{
    uint8_t mac[crypto_auth_hmacsha256_BYTES];
    out[0] = '\0';
    if (!webhook_mac(key, keylen, ts, body, len, mac))
        return false;
    memcpy(out, "v1=", 3);
    sodium_bin2hex(out + 3, WEBHOOK_SIG_CAP - 3, mac, sizeof mac);
    return true;
}

static int
hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decode exactly 64 hex digits (either case) into 32 bytes. */
static bool
hex32(const char *s, size_t n, uint8_t out[32])
{
    if (n != 64)
        return false;
    for (size_t i = 0; i < 32; i++) {
        int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return true;
}

bool
webhook_verify(const uint8_t *key, size_t keylen, const char *ts,
               const void *body, size_t len, const char *header)
{
    uint8_t mac[32], got[32];
    if (header == NULL || ts == NULL ||
        !webhook_mac(key, keylen, ts, body, len, mac))
        return false;
    bool match = false;
    const char *p = header;
    while (*p != '\0') {
        /* One list element: up to the next comma, blanks trimmed. */
        const char *end = strchr(p, ',');
        if (end == NULL)
            end = p + strlen(p);
        const char *a = p, *b = end;
        while (a < b && (*a == ' ' || *a == '\t'))
            a++;
        while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
            b--;
        /* Check every candidate, so the time taken does not say which
         * element matched. */
        if (b - a > 3 && strncmp(a, "v1=", 3) == 0 &&
            hex32(a + 3, (size_t)(b - a - 3), got) &&
            sodium_memcmp(got, mac, sizeof mac) == 0)
            match = true;
        p = *end == ',' ? end + 1 : end;
    }
    sodium_memzero(mac, sizeof mac);
    return match;
}

bool
webhook_timestamp_parse(const char *s, int64_t *out)
{
    if (s == NULL)
        return false;
    size_t n = strlen(s);
    if (n == 0 || n > 12)
        return false;
    int64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

bool
webhook_timestamp_fresh(int64_t ts, int64_t now_s, int64_t window_s)
{
    int64_t d = ts > now_s ? ts - now_s : now_s - ts;
    return d <= window_s;
}

bool
webhook_content_type_ok(const char *ct)
{
    if (ct == NULL)
        return false;
    static const char type[] = "application/json";
    if (strncasecmp(ct, type, sizeof type - 1) != 0)
        return false;
    const char *p = ct + sizeof type - 1;
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p == '\0')
        return true;
    if (*p++ != ';')
        return false;
    while (*p == ' ' || *p == '\t')
        p++;
    static const char cs[] = "charset=";
    if (strncasecmp(p, cs, sizeof cs - 1) != 0)
        return false;
    p += sizeof cs - 1;
    bool quoted = *p == '"';
    if (quoted)
        p++;
    if (strncasecmp(p, "utf-8", 5) != 0)
        return false;
    p += 5;
    if (quoted && *p++ != '"')
        return false;
    while (*p == ' ' || *p == '\t')
        p++;
    return *p == '\0';
}

/* ------------------------------------------------- event to JSON (out) */

typedef struct jout {
    bool failed; /* a string jansson refused, or out of memory */
    bool oom;
    char field[64];
} jout;

static bool
nonempty(const char *s)
{
    return s != NULL && s[0] != '\0';
}

static void
put(jout *j, json_t *obj, const char *key, json_t *v)
{
    if (v == NULL) {
        if (!j->failed)
            snprintf(j->field, sizeof j->field, "%s", key);
        j->failed = true;
        return;
    }
    if (json_object_set_new(obj, key, v) != 0) {
        j->failed = true;
        j->oom = true;
    }
}

static void
put_str(jout *j, json_t *obj, const char *key, const char *s)
{
    if (nonempty(s))
        put(j, obj, key, json_string(s));
}

/* Add obj under key when it has members; drop it otherwise. */
static void
put_obj(jout *j, json_t *parent, const char *key, json_t *obj)
{
    if (obj == NULL) {
        j->failed = j->oom = true;
        return;
    }
    if (json_object_size(obj) == 0) {
        json_decref(obj);
        return;
    }
    put(j, parent, key, obj);
}

static json_t *
str_list(jout *j, char **v, size_t n)
{
    json_t *a = json_array();
    if (a == NULL) {
        j->failed = j->oom = true;
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *s = json_string(v[i] ? v[i] : "");
        if (s == NULL || json_array_append_new(a, s) != 0)
            j->failed = true;
    }
    return a;
}

static void
put_list(jout *j, json_t *obj, const char *key, char **v, size_t n)
{
    if (n > 0)
        put(j, obj, key, str_list(j, v, n));
}

static json_t *
org_json(jout *j, const Handover__OrgRef *o)
{
    json_t *r = json_object();
    if (r != NULL && o != NULL) {
        put_str(j, r, "code", o->code);
        put_str(j, r, "name", o->name);
    }
    return r;
}

static json_t *
person_json(jout *j, const Handover__Person *p)
{
    json_t *r = json_object();
    if (r != NULL && p != NULL) {
        put_str(j, r, "name", p->name);
        put_str(j, r, "role", p->role);
        put_str(j, r, "id", p->id);
        put_str(j, r, "phone", p->phone);
        put_str(j, r, "org", p->org);
    }
    return r;
}

static json_t *
patient_json(jout *j, const Handover__Patient *p)
{
    json_t *r = json_object();
    if (r == NULL || p == NULL)
        return r;
    put_str(j, r, "nhs_number", p->nhs_number);
    put_str(j, r, "nhs_number_status", p->nhs_number_status);
    put_str(j, r, "title", p->title);
    put_list(j, r, "given_names", p->given_names, p->n_given_names);
    put_str(j, r, "family_name", p->family_name);
    put_str(j, r, "date_of_birth", p->date_of_birth);
    if (p->age_case == HANDOVER__PATIENT__AGE_AGE_YEARS)
        put(j, r, "age_years", json_integer(p->age_years));
    put_str(j, r, "sex", p->sex);
    put_list(j, r, "address_lines", p->address_lines, p->n_address_lines);
    put_str(j, r, "postcode", p->postcode);
    put_str(j, r, "phone", p->phone);
    put_str(j, r, "registered_gp", p->registered_gp);
    return r;
}

static json_t *
discharge_json(jout *j, const Handover__Discharge *d)
{
    json_t *r = json_object();
    if (r == NULL)
        return r;
    put_str(j, r, "admitted_at", d->admitted_at);
    put_str(j, r, "discharged_at", d->discharged_at);
    if (d->pathway_present_case == HANDOVER__DISCHARGE__PATHWAY_PRESENT_PATHWAY)
        put(j, r, "pathway", json_integer(d->pathway));
    put_str(j, r, "method", d->method);
    if (d->destination != NULL) {
        const Handover__DischargeDestination *ds = d->destination;
        json_t *o = json_object();
        if (o != NULL) {
            put_str(j, o, "code", ds->code);
            put_str(j, o, "description", ds->description);
            put_list(j, o, "address_lines", ds->address_lines,
                     ds->n_address_lines);
            put_str(j, o, "postcode", ds->postcode);
        }
        put_obj(j, r, "destination", o);
    }
    put_str(j, r, "site", d->site);
    put_str(j, r, "ward", d->ward);
    if (d->responsible_clinician != NULL)
        put_obj(j, r, "responsible_clinician",
                person_json(j, d->responsible_clinician));
    if (d->n_diagnoses > 0) {
        json_t *a = json_array();
        for (size_t i = 0; a != NULL && i < d->n_diagnoses; i++) {
            json_t *o = json_object();
            if (o != NULL) {
                put_str(j, o, "code", d->diagnoses[i]->code);
                put_str(j, o, "system", d->diagnoses[i]->system);
                put_str(j, o, "text", d->diagnoses[i]->text);
            }
            if (o == NULL || json_array_append_new(a, o) != 0)
                j->failed = j->oom = true;
        }
        put(j, r, "diagnoses", a);
    }
    if (d->n_follow_up > 0) {
        json_t *a = json_array();
        for (size_t i = 0; a != NULL && i < d->n_follow_up; i++) {
            const Handover__FollowUp *f = d->follow_up[i];
            json_t *o = json_object();
            if (o != NULL) {
                put_str(j, o, "service", f->service);
                put_str(j, o, "description", f->description);
                put_str(j, o, "due_by", f->due_by);
                put_str(j, o, "start", f->start);
            }
            if (o == NULL || json_array_append_new(a, o) != 0)
                j->failed = j->oom = true;
        }
        put(j, r, "follow_up", a);
    }
    put_str(j, r, "medications_summary", d->medications_summary);
    return r;
}

static json_t *
order_json(jout *j, const Handover__EquipmentOrder *e)
{
    json_t *r = json_object();
    if (r == NULL)
        return r;
    put_str(j, r, "action", e->action);
    put_str(j, r, "order_ref", e->order_ref);
    if (e->n_items > 0) {
        json_t *a = json_array();
        for (size_t i = 0; a != NULL && i < e->n_items; i++) {
            const Handover__EquipmentItem *it = e->items[i];
            json_t *o = json_object();
            if (o != NULL) {
                put(j, o, "line", json_integer(it->line));
                put_str(j, o, "item_code", it->item_code);
                put_str(j, o, "description", it->description);
                put(j, o, "quantity", json_integer(it->quantity));
                put_str(j, o, "line_ref", it->line_ref);
                put_str(j, o, "notes", it->notes);
            }
            if (o == NULL || json_array_append_new(a, o) != 0)
                j->failed = j->oom = true;
        }
        put(j, r, "items", a);
    }
    if (e->delivery_address != NULL) {
        json_t *o = json_object();
        if (o != NULL) {
            put_list(j, o, "lines", e->delivery_address->lines,
                     e->delivery_address->n_lines);
            put_str(j, o, "postcode", e->delivery_address->postcode);
        }
        put_obj(j, r, "delivery_address", o);
    }
    put_str(j, r, "required_by", e->required_by);
    if (e->prescriber != NULL)
        put_obj(j, r, "prescriber", person_json(j, e->prescriber));
    put_list(j, r, "collect_assets", e->collect_assets, e->n_collect_assets);
    return r;
}

static json_t *
outcome_json(jout *j, const Handover__Outcome *o)
{
    json_t *r = json_object();
    if (r == NULL)
        return r;
    put_str(j, r, "status", o->status);
    put_str(j, r, "reason_code", o->reason_code);
    put_str(j, r, "reason_text", o->reason_text);
    put_str(j, r, "planned_for", o->planned_for);
    if (o->n_items > 0) {
        json_t *a = json_array();
        for (size_t i = 0; a != NULL && i < o->n_items; i++) {
            json_t *it = json_object();
            if (it != NULL) {
                put_str(j, it, "item_code", o->items[i]->item_code);
                if (o->items[i]->quantity > 0)
                    put(j, it, "quantity", json_integer(o->items[i]->quantity));
                put_str(j, it, "asset_id", o->items[i]->asset_id);
            }
            if (it == NULL || json_array_append_new(a, it) != 0)
                j->failed = j->oom = true;
        }
        put(j, r, "items", a);
    }
    return r;
}

int
webhook_event_json(const Handover__Event *ev, char **out, size_t *len,
                   char *why, size_t whysz)
{
    *out = NULL;
    *len = 0;
    jout j = {0};
    json_t *r = json_object();
    if (r == NULL)
        return -2;
    put_str(&j, r, "schema", ev->schema);
    put_str(&j, r, "event_id", ev->event_id);
    put_str(&j, r, "event_type", ev->event_type);
    put_str(&j, r, "correlation_id", ev->correlation_id);
    put_str(&j, r, "in_reply_to", ev->in_reply_to);
    put_str(&j, r, "occurred_at", ev->occurred_at);
    put_str(&j, r, "recorded_at", ev->recorded_at);
    put_str(&j, r, "received_at", ev->received_at);
    if (ev->source != NULL) {
        const Handover__Source *s = ev->source;
        json_t *o = json_object();
        if (o != NULL) {
            if (s->org != NULL)
                put_obj(&j, o, "org", org_json(&j, s->org));
            put_str(&j, o, "agency", s->agency);
            put_str(&j, o, "system", s->system);
            put_str(&j, o, "ref", s->ref);
            if (s->author != NULL)
                put_obj(&j, o, "author", person_json(&j, s->author));
        }
        put_obj(&j, r, "source", o);
    }
    if (ev->n_destinations > 0) {
        json_t *a = json_array();
        for (size_t i = 0; a != NULL && i < ev->n_destinations; i++) {
            json_t *o = org_json(&j, ev->destinations[i]);
            if (o == NULL || json_array_append_new(a, o) != 0)
                j.failed = j.oom = true;
        }
        put(&j, r, "destinations", a);
    }
    if (ev->patient != NULL)
        put_obj(&j, r, "patient", patient_json(&j, ev->patient));
    put_str(&j, r, "priority", ev->priority);
    put_str(&j, r, "reason", ev->reason);
    put_str(&j, r, "clinical_details", ev->clinical_details);
    put_str(&j, r, "social_details", ev->social_details);
    put_str(&j, r, "access_notes", ev->access_notes);
    if (ev->consent != NULL) {
        json_t *o = json_object();
        if (o != NULL) {
            put_str(&j, o, "basis", ev->consent->basis);
            put_str(&j, o, "recorded_at", ev->consent->recorded_at);
            put_str(&j, o, "recorded_by", ev->consent->recorded_by);
            put_str(&j, o, "notes", ev->consent->notes);
        }
        put_obj(&j, r, "consent", o);
    }
    switch (ev->body_case) {
    case HANDOVER__EVENT__BODY_REFERRAL: {
        json_t *o = json_object();
        if (o != NULL) {
            put_str(&j, o, "service", ev->referral->service);
            put_str(&j, o, "preferred_contact",
                    ev->referral->preferred_contact);
        }
        put_obj(&j, r, "referral", o);
        break;
    }
    case HANDOVER__EVENT__BODY_DISCHARGE:
        put_obj(&j, r, "discharge", discharge_json(&j, ev->discharge));
        break;
    case HANDOVER__EVENT__BODY_EQUIPMENT_ORDER:
        put_obj(&j, r, "equipment_order", order_json(&j, ev->equipment_order));
        break;
    case HANDOVER__EVENT__BODY_OUTCOME:
        put_obj(&j, r, "outcome", outcome_json(&j, ev->outcome));
        break;
    default:
        break;
    }
    if (j.failed) {
        json_decref(r);
        if (j.oom)
            return -2;
        snprintf(why, whysz,
                 "the event's field %s is not valid UTF-8 text: cannot be "
                 "sent as JSON",
                 j.field[0] ? j.field : "(unknown)");
        return -1;
    }
    char *s = json_dumps(r, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(r);
    if (s == NULL)
        return -2;
    *out = s;
    *len = strlen(s);
    return 0;
}

/* ------------------------------------------------ outcome webhook (in) */

/* Read the string member key of obj into *out (left as the empty string
 * when absent). false, with why naming path, when present but not a
 * string. */
static bool
get_str(json_t *obj, const char *key, const char *path, char **out, char *why,
        size_t whysz)
{
    json_t *v = json_object_get(obj, key);
    if (v == NULL || json_is_null(v))
        return true;
    if (!json_is_string(v)) {
        snprintf(why, whysz, "%s must be a string", path);
        return false;
    }
    *out = (char *)json_string_value(v);
    return true;
}

/* obj's member key as an object, NULL when absent; false when present but
 * not an object. */
static bool
get_obj(json_t *obj, const char *key, const char *path, json_t **out, char *why,
        size_t whysz)
{
    json_t *v = json_object_get(obj, key);
    *out = NULL;
    if (v == NULL || json_is_null(v))
        return true;
    if (!json_is_object(v)) {
        snprintf(why, whysz, "%s must be an object", path);
        return false;
    }
    *out = v;
    return true;
}

void
webhook_in_free(webhook_in *in)
{
    if (in == NULL)
        return;
    json_decref(in->json);
    free(in->items);
    free(in->item_ptrs);
    memset(in, 0, sizeof *in);
}

#define TRYF(x)                                                                \
    do {                                                                       \
        if (!(x)) {                                                            \
            webhook_in_free(in);                                               \
            return WEBHOOK_BAD_SCHEMA;                                         \
        }                                                                      \
    } while (0)

int
webhook_outcome_parse(const uint8_t *body, size_t len, const char *sender,
                      const char *idempotency_key, int64_t ts_s, webhook_in *in,
                      char *why, size_t whysz)
{
    memset(in, 0, sizeof *in);
    if (len >= 3 && body[0] == 0xEF && body[1] == 0xBB && body[2] == 0xBF) {
        body += 3;
        len -= 3;
    }
    /* Duplicate keys refuse the document (domain 3); \u0000 is refused by
     * jansson's default (never JSON_ALLOW_NUL). */
    json_error_t je;
    json_t *root =
        json_loadb((const char *)body, len, JSON_REJECT_DUPLICATES, &je);
    if (root == NULL) {
        snprintf(why, whysz, "body is not valid JSON: %s (line %d column %d)",
                 je.text, je.line, je.column);
        return WEBHOOK_BAD_JSON;
    }
    in->json = root;
    if (!json_is_object(root)) {
        snprintf(why, whysz, "body must be a JSON object");
        webhook_in_free(in);
        return WEBHOOK_BAD_JSON;
    }

    Handover__Event *ev = &in->ev;
    handover__event__init(ev);
    handover__source__init(&in->source);
    handover__org_ref__init(&in->org);
    handover__person__init(&in->author);
    handover__patient__init(&in->patient);
    handover__outcome__init(&in->outcome);

    char *schema = "", *type = "";
    TRYF(get_str(root, "schema", "schema", &schema, why, whysz));
    TRYF(get_str(root, "event_type", "event_type", &type, why, whysz));
    if (schema[0] != '\0' && strcmp(schema, "handover.event.v1") != 0) {
        snprintf(why, whysz, "schema must be handover.event.v1");
        TRYF(false);
    }
    if (type[0] != '\0' && strcmp(type, "outcome") != 0) {
        snprintf(why, whysz,
                 "event_type must be outcome: this endpoint takes outcomes "
                 "only");
        TRYF(false);
    }
    TRYF(get_str(root, "in_reply_to", "in_reply_to", &ev->in_reply_to, why,
                 whysz));
    if (!hov_uuid_valid(ev->in_reply_to)) {
        snprintf(why, whysz,
                 ev->in_reply_to[0] ? "in_reply_to is not a lowercase UUID"
                                    : "in_reply_to is missing: an outcome "
                                      "names the event it answers");
        TRYF(false);
    }
    TRYF(get_str(root, "occurred_at", "occurred_at", &ev->occurred_at, why,
                 whysz));

    json_t *src, *org, *author, *out;
    TRYF(get_obj(root, "source", "source", &src, why, whysz));
    TRYF(get_obj(src, "org", "source.org", &org, why, whysz));
    TRYF(get_obj(src, "author", "source.author", &author, why, whysz));
    TRYF(get_str(org, "code", "source.org.code", &in->org.code, why, whysz));
    TRYF(get_str(org, "name", "source.org.name", &in->org.name, why, whysz));
    if (in->org.code[0] != '\0' && strcmp(in->org.code, sender) != 0) {
        snprintf(why, whysz,
                 "source.org.code does not match Handover-Sender: a sender "
                 "may only send its own outcomes");
        TRYF(false);
    }
    snprintf(in->sender, sizeof in->sender, "%s", sender);
    in->org.code = in->sender;
    TRYF(get_str(src, "system", "source.system", &in->source.system, why,
                 whysz));
    TRYF(get_str(src, "ref", "source.ref", &in->source.ref, why, whysz));
    TRYF(get_str(author, "name", "source.author.name", &in->author.name, why,
                 whysz));
    TRYF(get_str(author, "role", "source.author.role", &in->author.role, why,
                 whysz));
    TRYF(get_str(author, "id", "source.author.id", &in->author.id, why, whysz));
    TRYF(get_str(author, "phone", "source.author.phone", &in->author.phone, why,
                 whysz));

    TRYF(get_obj(root, "outcome", "outcome", &out, why, whysz));
    if (out == NULL) {
        snprintf(why, whysz, "outcome is missing");
        TRYF(false);
    }
    Handover__Outcome *o = &in->outcome;
    TRYF(get_str(out, "status", "outcome.status", &o->status, why, whysz));
    TRYF(get_str(out, "reason_code", "outcome.reason_code", &o->reason_code,
                 why, whysz));
    TRYF(get_str(out, "reason_text", "outcome.reason_text", &o->reason_text,
                 why, whysz));
    TRYF(get_str(out, "planned_for", "outcome.planned_for", &o->planned_for,
                 why, whysz));
    json_t *items = json_object_get(out, "items");
    if (items != NULL && !json_is_null(items)) {
        if (!json_is_array(items) || json_array_size(items) > 50) {
            snprintf(why, whysz, "outcome.items must be a list of at most 50");
            TRYF(false);
        }
        size_t n = json_array_size(items);
        in->items = calloc(n ? n : 1, sizeof *in->items);
        in->item_ptrs = calloc(n ? n : 1, sizeof *in->item_ptrs);
        if (in->items == NULL || in->item_ptrs == NULL) {
            snprintf(why, whysz, "out of memory; resend later");
            webhook_in_free(in);
            return 503;
        }
        for (size_t i = 0; i < n; i++) {
            json_t *it = json_array_get(items, i);
            Handover__OutcomeItem *oi = &in->items[i];
            handover__outcome_item__init(oi);
            in->item_ptrs[i] = oi;
            char path[48];
            snprintf(path, sizeof path, "outcome.items[%zu]", i);
            if (!json_is_object(it)) {
                snprintf(why, whysz, "%s must be an object", path);
                TRYF(false);
            }
            TRYF(get_str(it, "item_code", "outcome.items[].item_code",
                         &oi->item_code, why, whysz));
            TRYF(get_str(it, "asset_id", "outcome.items[].asset_id",
                         &oi->asset_id, why, whysz));
            json_t *q = json_object_get(it, "quantity");
            if (q != NULL) {
                if (!json_is_integer(q) || json_integer_value(q) < 0 ||
                    json_integer_value(q) > 99) {
                    snprintf(why, whysz, "%s.quantity must be 0 to 99", path);
                    TRYF(false);
                }
                oi->quantity = (uint32_t)json_integer_value(q);
            }
        }
        o->n_items = n;
        o->items = in->item_ptrs;
    }

    char name[512];
    int nl =
        snprintf(name, sizeof name, "webhook|%s|%s", sender, idempotency_key);
    hov_error err = {0};
    if (nl < 0 || (size_t)nl >= sizeof name ||
        hov_uuid_v5(HOV_EVENT_ID_NS, name, (size_t)nl, in->event_id, &err) !=
            HOV_OK) {
        snprintf(why, whysz, "Idempotency-Key is too long (at most 400)");
        TRYF(false);
    }
    hov_rfc3339_format((uint64_t)ts_s * 1000, in->recorded_at);

    ev->schema = "handover.event.v1";
    ev->event_id = in->event_id;
    ev->event_type = "outcome";
    ev->recorded_at = in->recorded_at;
    in->source.org = &in->org;
    if (author != NULL)
        in->source.author = &in->author;
    ev->source = &in->source;
    /* The hub copies the NHS number from the answered event (domain 3.3);
     * an empty patient says this outcome carries none of its own. */
    ev->patient = &in->patient;
    ev->body_case = HANDOVER__EVENT__BODY_OUTCOME;
    ev->outcome = o;
    return 0;
}
