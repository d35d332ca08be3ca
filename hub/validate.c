#include "validate.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "handover/ident.h"
#include "handover/str.h"
#include "handover/timeutil.h"

/* How much of a bad value a message repeats: enough to recognise a code or
 * a timestamp, never a whole free-text field. */
#define ECHO_MAX 40

/* Room for the longest dotted field name plus an index, such as
 * "equipment_order.delivery_address.lines[4]". */
#define FIELD_CAP 96

#define TRY(expr)                                                              \
    do {                                                                       \
        hov_err rc_ = (expr);                                                  \
        if (rc_ != HOV_OK)                                                     \
            return rc_;                                                        \
    } while (0)

/* ---------------------------------------------------------------- tables */

static const char *const event_types[] = {"referral", "discharge",
                                          "equipment_order", "outcome", NULL};

/* Domain 3.5: the first three go to nursing, the next three to social, the
 * last two to voluntary (routing is configuration, not this table). */
static const char *const services[] = {"district-nursing",
                                       "urgent-community-response",
                                       "community-therapy",
                                       "adult-social-care-assessment",
                                       "carers-assessment",
                                       "reablement",
                                       "social-prescribing",
                                       "home-from-hospital",
                                       NULL};

static const char *const priorities[] = {"routine", "urgent", "two_hour_crisis",
                                         NULL};

static const char *const sexes[] = {"male", "female", "other", "unknown", NULL};

static const char *const consent_bases[] = {"implied_direct_care", "explicit",
                                            "best_interests",
                                            "legal_obligation", NULL};

static const char *const actions[] = {"deliver", "collect", NULL};

static const char *const rejected_reasons[] = {"not-eligible",
                                               "out-of-area",
                                               "not-registered",
                                               "duplicate",
                                               "insufficient-information",
                                               "declined-by-person",
                                               "redirected",
                                               NULL};

static const char *const cannot_deliver_reasons[] = {
    "no-access",          "person-not-home",
    "address-not-found",  "item-out-of-stock",
    "unsafe-environment", "refused-by-person",
    "person-in-hospital", NULL};

static const char *const cancelled_reasons[] = {
    "no-longer-required", "person-deceased", "raised-in-error", NULL};

/* Domain 3.6, one row per status. */
typedef struct status_row {
    const char *name;
    const char *allowed_for[4]; /* answered event types, NULL-terminated */
    bool terminal;              /* for delivered/collected: the item line */
    bool needs_items;
    const char *const *reasons; /* NULL: the status takes no reason code */
} status_row;

static const status_row statuses[] = {
    {"acknowledged", {"discharge", NULL}, true, false, NULL},
    {"accepted",
     {"referral", "discharge", "equipment_order", NULL},
     false,
     false,
     NULL},
    {"rejected",
     {"referral", "discharge", "equipment_order", NULL},
     true,
     false,
     rejected_reasons},
    {"completed", {"referral", NULL}, true, false, NULL},
    {"cancelled",
     {"referral", "equipment_order", NULL},
     true,
     false,
     cancelled_reasons},
    {"delivered", {"equipment_order", NULL}, true, true, NULL},
    {"cannot_deliver",
     {"equipment_order", NULL},
     false,
     true,
     cannot_deliver_reasons},
    {"collected", {"equipment_order", NULL}, true, true, NULL},
};

#define N_STATUSES (sizeof statuses / sizeof statuses[0])

/* -------------------------------------------------------------- helpers */

static bool
empty(const char *s)
{
    return s == NULL || s[0] == '\0';
}

static bool
in_table(const char *s, const char *const *table)
{
    if (s == NULL)
        return false;
    for (; *table != NULL; table++)
        if (strcmp(s, *table) == 0)
            return true;
    return false;
}

/* "a, b, c" from a table, cut to fit out. */
static void
join(const char *const *table, char *out, size_t outsz)
{
    size_t n = 0;
    out[0] = '\0';
    for (const char *const *t = table; *t != NULL && n < outsz; t++) {
        int w =
            snprintf(out + n, outsz - n, "%s%s", t == table ? "" : ", ", *t);
        if (w < 0)
            break;
        n += (size_t)w;
    }
}

static void
echo(const char *s, char *out, size_t outsz)
{
    hov_echo(out, outsz, s, ECHO_MAX);
}

static hov_err
missing(const char *field, hov_error *err)
{
    return hov_fail(err, HOV_EMISSING, 0, "%s is missing", field);
}

/* Free text: required or not, at most max characters. Never echoed. */
static hov_err
text(const char *field, const char *s, size_t max, bool required,
     hov_error *err)
{
    if (empty(s))
        return required ? missing(field, err) : HOV_OK;
    size_t n = hov_utf8_chars(s);
    if (n > max)
        return hov_fail(err, HOV_EINVAL, 0,
                        "%s is %zu characters long, more than the %zu "
                        "allowed",
                        field, n, max);
    return HOV_OK;
}

/* A code that must be in table; what is allowed is listed in the message,
 * so the sender can correct it without reading the brief. */
static hov_err
code(const char *field, const char *s, const char *const *table, bool required,
     hov_error *err)
{
    if (empty(s))
        return required ? missing(field, err) : HOV_OK;
    if (in_table(s, table))
        return HOV_OK;
    char e[ECHO_MAX + 4], list[160];
    echo(s, e, sizeof e);
    join(table, list, sizeof list);
    return hov_fail(err, HOV_ECODE, 0, "%s '%s' is not one of %s", field, e,
                    list);
}

static hov_err
uuid(const char *field, const char *s, hov_error *err)
{
    if (empty(s))
        return missing(field, err);
    if (hov_uuid_valid(s))
        return HOV_OK;
    char e[ECHO_MAX + 4];
    echo(s, e, sizeof e);
    return hov_fail(err, HOV_EINVAL, 0,
                    "%s '%s' is not a lowercase UUID (8-4-4-4-12 hex digits)",
                    field, e);
}

/* "<field> '<value>' is not <what>", with the value echoed safely. */
static hov_err
bad_value(const char *field, const char *s, hov_err code, const char *what,
          hov_error *err)
{
    char e[ECHO_MAX + 4];
    echo(s, e, sizeof e);
    return hov_fail(err, code, 0, "%s '%s' is not %s", field, e, what);
}

/* An RFC 3339 timestamp; utc_only demands the canonical 'Z' form. */
static hov_err
stamp(const char *field, const char *s, bool utc_only, bool required,
      hov_error *err)
{
    if (empty(s))
        return required ? missing(field, err) : HOV_OK;
    if (utc_only ? hov_rfc3339_utc_valid(s) : hov_rfc3339_valid(s))
        return HOV_OK;
    return bad_value(field, s, HOV_EINVAL,
                     utc_only ? "an RFC 3339 UTC timestamp "
                                "(YYYY-MM-DDThh:mm:ss[.fff]Z)"
                              : "an RFC 3339 timestamp "
                                "(YYYY-MM-DDThh:mm:ss[.fff] then Z or +hh:mm)",
                     err);
}

static hov_err
date(const char *field, const char *s, bool required, hov_error *err)
{
    if (empty(s))
        return required ? missing(field, err) : HOV_OK;
    if (hov_date_valid(s))
        return HOV_OK;
    return bad_value(field, s, HOV_EINVAL, "a calendar date (YYYY-MM-DD)", err);
}

/* An organisation code: an ODS code, or with local_ok also local:... */
static hov_err
org(const char *field, const char *s, bool local_ok, bool required,
    hov_error *err)
{
    if (empty(s))
        return required ? missing(field, err) : HOV_OK;
    if (local_ok ? hov_org_code_valid(s) : hov_ods_code_valid(s))
        return HOV_OK;
    return bad_value(field, s, HOV_EORGCODE,
                     local_ok ? "an ODS code (1 to 9 of A-Z, 0-9) or local: "
                                "code"
                              : "an ODS code (1 to 9 of A-Z, 0-9)",
                     err);
}

static hov_err
postcode(const char *field, const char *s, bool required, hov_error *err)
{
    if (empty(s))
        return required ? missing(field, err) : HOV_OK;
    if (hov_postcode_valid(s))
        return HOV_OK;
    return bad_value(field, s, HOV_EINVAL,
                     "a UK postcode in upper case (such as FE7 8QT)", err);
}

/* Address lines: at most max_lines lines of at most max_len characters. */
static hov_err
lines(const char *field, char *const *v, size_t n, size_t max_lines,
      size_t max_len, hov_error *err)
{
    if (n > max_lines)
        return hov_fail(err, HOV_EINVAL, 0, "%s has %zu lines, more than %zu",
                        field, n, max_lines);
    char f[FIELD_CAP];
    for (size_t i = 0; i < n; i++) {
        snprintf(f, sizeof f, "%s[%zu]", field, i);
        TRY(text(f, v[i], max_len, false, err));
    }
    return HOV_OK;
}

/* A professional (domain 3.1 source.author, prescriber, clinician). The
 * common case, all well, is checked first without building field names:
 * formatting them for every event cost more than the checks. */
static hov_err
person(const char *field, const Handover__Person *p, bool need_name,
       hov_error *err)
{
    if ((!need_name || !empty(p->name)) && hov_utf8_chars(p->name) <= 100 &&
        hov_utf8_chars(p->role) <= 70 && hov_utf8_chars(p->id) <= 32 &&
        hov_utf8_chars(p->phone) <= 35 &&
        (empty(p->org) || org("", p->org, true, false, NULL) == HOV_OK))
        return HOV_OK;
    char f[FIELD_CAP];
    snprintf(f, sizeof f, "%s.name", field);
    TRY(text(f, p->name, 100, need_name, err));
    snprintf(f, sizeof f, "%s.role", field);
    TRY(text(f, p->role, 70, false, err));
    snprintf(f, sizeof f, "%s.id", field);
    TRY(text(f, p->id, 32, false, err));
    snprintf(f, sizeof f, "%s.phone", field);
    TRY(text(f, p->phone, 35, false, err));
    snprintf(f, sizeof f, "%s.org", field);
    return org(f, p->org, true, false, err);
}

/* Every string in the event, at any depth, must be valid UTF-8 (domain 3):
 * partners' JSON and HL7 encoders would otherwise fail at delivery time,
 * long after the sender was told the event was accepted. protobuf-c does
 * not check this when decoding, so walk the message by its descriptor, in
 * field order, naming each field by its JSON path.
 *
 * The same walk refuses fields the schema does not have. protobuf-c keeps
 * them as unknown fields, and would pack them again into a view (hub/route.c)
 * that must carry only what its receiver may see; one numbered 0 (a
 * non-canonical tag such as 0x82 0x00, which protobuf-c reads but never
 * writes back readable) would make every view of the event undecodable
 * after it was accepted. Found by fuzz/frame_fuzz.c. */
static bool
encoding_ok(const ProtobufCMessage *m)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    const char *base = (const char *)m;
    if (m->n_unknown_fields > 0)
        return false;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (f->type != PROTOBUF_C_TYPE_STRING &&
            f->type != PROTOBUF_C_TYPE_MESSAGE)
            continue;
        if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
            *(const uint32_t *)(base + f->quantifier_offset) != f->id)
            continue;
        size_t count = 1;
        void *const *values = (void *const *)(base + f->offset);
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            count = *(const size_t *)(base + f->quantifier_offset);
            values = *(void *const *const *)(base + f->offset);
        }
        for (size_t k = 0; k < count; k++) {
            const void *v = values[k];
            if (v == NULL)
                continue;
            if (f->type == PROTOBUF_C_TYPE_STRING) {
                if (!hov_utf8_valid(v))
                    return false;
            } else if (((const ProtobufCMessage *)v)->descriptor != NULL &&
                       !encoding_ok(v)) {
                return false;
            }
        }
    }
    return true;
}

/* As encoding_ok, naming the first bad field; only run once the quick
 * walk has found one, because building every path costs more than the
 * check. */
static hov_err
encoding_walk(const ProtobufCMessage *m, char *path, size_t plen,
              hov_error *err)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    const char *base = (const char *)m;
    if (m->n_unknown_fields > 0)
        return hov_fail(err, HOV_EINVAL, 0,
                        "%s%s has a field numbered %u, which is not in "
                        "this hub's schema (an adapter newer than the hub, "
                        "or a corrupt encoder)",
                        plen > 0 ? "" : "the event", path,
                        (unsigned)m->unknown_fields[0].tag);
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (f->type != PROTOBUF_C_TYPE_STRING &&
            f->type != PROTOBUF_C_TYPE_MESSAGE)
            continue;
        if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
            *(const uint32_t *)(base + f->quantifier_offset) != f->id)
            continue;
        int w = snprintf(path + plen, FIELD_CAP - plen, "%s%s",
                         plen > 0 ? "." : "", f->name);
        size_t flen = plen + (w < 0 ? 0 : (size_t)w);
        if (flen >= FIELD_CAP)
            flen = FIELD_CAP - 1;
        size_t count = 1;
        void *const *values = (void *const *)(base + f->offset);
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            count = *(const size_t *)(base + f->quantifier_offset);
            values = *(void *const *const *)(base + f->offset);
        }
        for (size_t k = 0; k < count; k++) {
            size_t elen = flen;
            if (f->label == PROTOBUF_C_LABEL_REPEATED) {
                w = snprintf(path + flen, FIELD_CAP - flen, "[%zu]", k);
                elen = flen + (w < 0 ? 0 : (size_t)w);
                if (elen >= FIELD_CAP)
                    elen = FIELD_CAP - 1;
            }
            const void *v = values[k];
            if (v == NULL)
                continue;
            if (f->type == PROTOBUF_C_TYPE_STRING) {
                if (!hov_utf8_valid(v))
                    return hov_fail(err, HOV_EINVAL, 0, "%s is not valid UTF-8",
                                    path);
            } else if (((const ProtobufCMessage *)v)->descriptor != NULL) {
                TRY(encoding_walk(v, path, elen, err));
            }
        }
        path[plen] = '\0';
    }
    return HOV_OK;
}

/* --------------------------------------------------------- event parts */

static const char *
body_name(Handover__Event__BodyCase c)
{
    switch (c) {
    case HANDOVER__EVENT__BODY_REFERRAL:
        return "referral";
    case HANDOVER__EVENT__BODY_DISCHARGE:
        return "discharge";
    case HANDOVER__EVENT__BODY_EQUIPMENT_ORDER:
        return "equipment_order";
    case HANDOVER__EVENT__BODY_OUTCOME:
        return "outcome";
    default:
        return NULL;
    }
}

/* schema to received_at (fields 1 to 8). */
static hov_err
check_envelope(const Handover__Event *ev, bool outcome, hov_error *err)
{
    if (empty(ev->schema))
        return missing("schema", err);
    if (strcmp(ev->schema, "handover.event.v1") != 0) {
        char e[ECHO_MAX + 4];
        echo(ev->schema, e, sizeof e);
        return hov_fail(err, HOV_EINVAL, 0,
                        "schema '%s' is not handover.event.v1", e);
    }
    TRY(uuid("event_id", ev->event_id, err));
    TRY(code("event_type", ev->event_type, event_types, true, err));
    /* A partner answering an event rarely knows the journey's id (HL7 has
     * no field for it), so an outcome may leave correlation_id empty and
     * the hub copies it from the answered event (hub/commit.c). */
    if (!(outcome && empty(ev->correlation_id)))
        TRY(uuid("correlation_id", ev->correlation_id, err));
    if (outcome) {
        if (empty(ev->in_reply_to))
            return hov_fail(err, HOV_EMISSING, 0,
                            "in_reply_to is missing: an outcome names the "
                            "event_id it answers");
        TRY(uuid("in_reply_to", ev->in_reply_to, err));
    } else if (!empty(ev->in_reply_to)) {
        return hov_fail(err, HOV_EINVAL, 0,
                        "in_reply_to is set on a %s; only an outcome answers "
                        "an event",
                        ev->event_type);
    }
    TRY(stamp("occurred_at", ev->occurred_at, true, true, err));
    return stamp("recorded_at", ev->recorded_at, false, false, err);
}

static hov_err
check_source(const Handover__Source *src, hov_error *err)
{
    if (src == NULL)
        return missing("source", err);
    if (src->org == NULL)
        return missing("source.org", err);
    TRY(org("source.org.code", src->org->code, true, true, err));
    TRY(text("source.system", src->system, 64, false, err));
    TRY(text("source.ref", src->ref, 64, false, err));
    if (src->author != NULL)
        TRY(person("source.author", src->author, false, err));
    return HOV_OK;
}

static hov_err
check_destinations(const Handover__Event *ev, bool outcome, hov_error *err)
{
    if (outcome && ev->n_destinations > 0)
        return hov_fail(err, HOV_EINVAL, 0,
                        "destinations must be empty on an outcome: it goes "
                        "back to the source of in_reply_to");
    char f[FIELD_CAP];
    for (size_t i = 0; i < ev->n_destinations; i++) {
        snprintf(f, sizeof f, "destinations[%zu].code", i);
        const Handover__OrgRef *d = ev->destinations[i];
        TRY(org(f, d != NULL ? d->code : NULL, true, true, err));
    }
    return HOV_OK;
}

static hov_err
check_patient(const Handover__Patient *p, bool outcome, bool allow_test,
              hov_error *err)
{
    if (p == NULL)
        return missing("patient", err);
    /* An outcome may leave the NHS number out: the hub copies it from the
     * answered event (domain 3.3). */
    if (empty(p->nhs_number)) {
        if (!outcome)
            return missing("patient.nhs_number", err);
    } else {
        hov_error nerr = {0};
        if (hov_nhs_number_check(p->nhs_number, allow_test, &nerr) != HOV_OK)
            return hov_fail(err, nerr.code, 0, "patient.nhs_number: %s",
                            nerr.msg);
    }
    bool request = !outcome;
    TRY(text("patient.family_name", p->family_name, 35, request, err));
    if (request && (p->n_given_names == 0 || empty(p->given_names[0])))
        return missing("patient.given_names", err);
    char f[FIELD_CAP];
    for (size_t i = 0; i < p->n_given_names; i++) {
        snprintf(f, sizeof f, "patient.given_names[%zu]", i);
        TRY(text(f, p->given_names[i], 35, false, err));
    }
    TRY(text("patient.title", p->title, 35, false, err));
    TRY(date("patient.date_of_birth", p->date_of_birth, request, err));
    if (!empty(p->date_of_birth)) {
        /* "Not later than today (Europe/London) when received" (3.3);
         * YYYY-MM-DD strings compare as dates. */
        char today[11];
        hov_today_london(today);
        if (strcmp(p->date_of_birth, today) > 0)
            return hov_fail(err, HOV_EINVAL, 0,
                            "patient.date_of_birth %s is in the future",
                            p->date_of_birth);
    }
    TRY(code("patient.sex", p->sex, sexes, false, err));
    TRY(lines("patient.address_lines", p->address_lines, p->n_address_lines, 5,
              35, err));
    TRY(postcode("patient.postcode", p->postcode, request, err));
    TRY(text("patient.phone", p->phone, 35, false, err));
    return org("patient.registered_gp", p->registered_gp, false, false, err);
}

/* priority to access_notes (fields 12 to 16). */
static hov_err
check_request_text(const Handover__Event *ev, bool outcome, bool referral,
                   hov_error *err)
{
    TRY(code("priority", ev->priority, priorities, !outcome, err));
    TRY(text("reason", ev->reason, 2000, referral, err));
    TRY(text("clinical_details", ev->clinical_details, 8000, false, err));
    TRY(text("social_details", ev->social_details, 8000, false, err));
    return text("access_notes", ev->access_notes, 2000, false, err);
}

static hov_err
check_consent(const Handover__Consent *c, hov_error *err)
{
    if (c == NULL)
        return HOV_OK;
    TRY(code("consent.basis", c->basis, consent_bases, true, err));
    bool implied = strcmp(c->basis, "implied_direct_care") == 0;
    TRY(stamp("consent.recorded_at", c->recorded_at, false, !implied, err));
    TRY(text("consent.recorded_by", c->recorded_by, 100, false, err));
    return text("consent.notes", c->notes, 500, false, err);
}

static hov_err
check_referral(const Handover__Referral *r, hov_error *err)
{
    if (empty(r->service))
        return missing("referral.service", err);
    if (!validate_service_known(r->service)) {
        char e[ECHO_MAX + 4];
        echo(r->service, e, sizeof e);
        return hov_fail(err, HOV_ECODE, 0,
                        "referral.service '%s' is not a known service", e);
    }
    return text("referral.preferred_contact", r->preferred_contact, 200, false,
                err);
}

static hov_err
check_discharge(const Handover__Discharge *d, hov_error *err)
{
    TRY(stamp("discharge.admitted_at", d->admitted_at, false, true, err));
    TRY(stamp("discharge.discharged_at", d->discharged_at, false, true, err));
    uint64_t in_ms, out_ms;
    if (hov_rfc3339_to_ms(d->admitted_at, &in_ms) &&
        hov_rfc3339_to_ms(d->discharged_at, &out_ms) && out_ms < in_ms)
        return hov_fail(err, HOV_EINVAL, 0,
                        "discharge.discharged_at %s is before "
                        "discharge.admitted_at %s",
                        d->discharged_at, d->admitted_at);
    if (d->pathway_present_case != HANDOVER__DISCHARGE__PATHWAY_PRESENT_PATHWAY)
        return missing("discharge.pathway", err);
    if (d->pathway < 0 || d->pathway > 3)
        return hov_fail(err, HOV_EINVAL, 0,
                        "discharge.pathway %d is not 0, 1, 2 or 3",
                        (int)d->pathway);
    if (d->destination == NULL)
        return missing("discharge.destination", err);
    if (empty(d->destination->code))
        return missing("discharge.destination.code", err);
    TRY(org("discharge.site", d->site, false, true, err));
    TRY(text("discharge.ward", d->ward, 35, false, err));
    if (d->responsible_clinician != NULL)
        TRY(person("discharge.responsible_clinician", d->responsible_clinician,
                   false, err));
    char f[FIELD_CAP];
    for (size_t i = 0; i < d->n_follow_up; i++) {
        if (d->follow_up[i] == NULL)
            continue;
        snprintf(f, sizeof f, "discharge.follow_up[%zu].description", i);
        TRY(text(f, d->follow_up[i]->description, 500, false, err));
    }
    return text("discharge.medications_summary", d->medications_summary, 8000,
                false, err);
}

static hov_err
check_equipment_order(const Handover__EquipmentOrder *o, hov_error *err)
{
    TRY(code("equipment_order.action", o->action, actions, true, err));
    TRY(text("equipment_order.order_ref", o->order_ref, 64, true, err));
    if (o->n_items == 0)
        return missing("equipment_order.items", err);
    if (o->n_items > 50)
        return hov_fail(err, HOV_EINVAL, 0,
                        "equipment_order.items has %zu lines, more than 50",
                        o->n_items);
    char f[FIELD_CAP];
    for (size_t i = 0; i < o->n_items; i++) {
        const Handover__EquipmentItem *it = o->items[i];
        snprintf(f, sizeof f, "equipment_order.items[%zu].item_code", i);
        if (it == NULL || empty(it->item_code))
            return missing(f, err);
        if (it->quantity < 1 || it->quantity > 99)
            return hov_fail(err, HOV_EINVAL, 0,
                            "equipment_order.items[%zu].quantity %u is not "
                            "1 to 99",
                            i, (unsigned)it->quantity);
    }
    const Handover__Address *a = o->delivery_address;
    if (a == NULL)
        return missing("equipment_order.delivery_address", err);
    TRY(lines("equipment_order.delivery_address.lines", a->lines, a->n_lines, 5,
              35, err));
    TRY(postcode("equipment_order.delivery_address.postcode", a->postcode, true,
                 err));
    TRY(date("equipment_order.required_by", o->required_by, true, err));
    if (o->prescriber == NULL)
        return missing("equipment_order.prescriber", err);
    TRY(person("equipment_order.prescriber", o->prescriber, true, err));
    if (strcmp(o->action, "collect") == 0 && o->n_collect_assets == 0)
        return hov_fail(err, HOV_EMISSING, 0,
                        "equipment_order.collect_assets is missing: a "
                        "collection names the assets to collect");
    for (size_t i = 0; i < o->n_collect_assets; i++) {
        if (empty(o->collect_assets[i]))
            return hov_fail(err, HOV_EINVAL, 0,
                            "equipment_order.collect_assets[%zu] is empty", i);
    }
    return HOV_OK;
}

static const status_row *
status_find(const char *status)
{
    if (status == NULL)
        return NULL;
    for (size_t i = 0; i < N_STATUSES; i++)
        if (strcmp(status, statuses[i].name) == 0)
            return &statuses[i];
    return NULL;
}

static hov_err
check_outcome(const Handover__Outcome *o, hov_error *err)
{
    if (empty(o->status))
        return missing("outcome.status", err);
    const status_row *row = status_find(o->status);
    if (row == NULL) {
        char e[ECHO_MAX + 4];
        echo(o->status, e, sizeof e);
        return hov_fail(err, HOV_ECODE, 0,
                        "outcome.status '%s' is not one of acknowledged, "
                        "accepted, rejected, completed, cancelled, "
                        "delivered, cannot_deliver, collected",
                        e);
    }
    /* A reason code on another status is ignored, not refused: it carries
     * no meaning there and must not block the outcome. */
    if (row->reasons != NULL) {
        if (empty(o->reason_code))
            return hov_fail(err, HOV_EMISSING, 0,
                            "outcome.reason_code is missing: a %s outcome "
                            "needs one",
                            row->name);
        if (!in_table(o->reason_code, row->reasons)) {
            char e[ECHO_MAX + 4], list[160];
            echo(o->reason_code, e, sizeof e);
            join(row->reasons, list, sizeof list);
            return hov_fail(err, HOV_ECODE, 0,
                            "outcome.reason_code '%s' is not a reason for %s "
                            "(%s)",
                            e, row->name, list);
        }
    }
    TRY(text("outcome.reason_text", o->reason_text, 500, false, err));
    TRY(date("outcome.planned_for", o->planned_for, false, err));
    if (row->needs_items && o->n_items == 0)
        return hov_fail(err, HOV_EMISSING, 0,
                        "outcome.items is missing: a %s outcome names the "
                        "item lines it covers",
                        row->name);
    if (o->n_items > 50)
        return hov_fail(err, HOV_EINVAL, 0,
                        "outcome.items has %zu lines, more than an order's 50",
                        o->n_items);
    char f[FIELD_CAP];
    for (size_t i = 0; i < o->n_items; i++) {
        const Handover__OutcomeItem *it = o->items[i];
        snprintf(f, sizeof f, "outcome.items[%zu].item_code", i);
        if (it == NULL || empty(it->item_code))
            return missing(f, err);
        /* 0 means "not stated": the whole line (CSV: 1 if empty, 7.2). */
        if (it->quantity > 99)
            return hov_fail(err, HOV_EINVAL, 0,
                            "outcome.items[%zu].quantity %u is not 1 to 99", i,
                            (unsigned)it->quantity);
    }
    return HOV_OK;
}

static hov_err
check_body(const Handover__Event *ev, hov_error *err)
{
    const char *body = body_name(ev->body_case);
    if (body == NULL)
        return hov_fail(err, HOV_EMISSING, 0,
                        "body is missing: an event of type %s needs a %s body",
                        ev->event_type, ev->event_type);
    if (strcmp(body, ev->event_type) != 0)
        return hov_fail(err, HOV_EINVAL, 0,
                        "body %s does not match event_type %s", body,
                        ev->event_type);
    switch (ev->body_case) {
    case HANDOVER__EVENT__BODY_REFERRAL:
        if (ev->referral == NULL)
            return missing("referral", err);
        return check_referral(ev->referral, err);
    case HANDOVER__EVENT__BODY_DISCHARGE:
        if (ev->discharge == NULL)
            return missing("discharge", err);
        return check_discharge(ev->discharge, err);
    case HANDOVER__EVENT__BODY_EQUIPMENT_ORDER:
        if (ev->equipment_order == NULL)
            return missing("equipment_order", err);
        return check_equipment_order(ev->equipment_order, err);
    case HANDOVER__EVENT__BODY_OUTCOME:
        if (ev->outcome == NULL)
            return missing("outcome", err);
        return check_outcome(ev->outcome, err);
    default:
        return HOV_OK; /* unreachable: body_name returned NULL above */
    }
}

/* ------------------------------------------------------------ public */

hov_err
validate_event(const Handover__Event *ev, const validate_opts *opts,
               hov_error *err)
{
    if (ev == NULL)
        return hov_fail(err, HOV_EMISSING, 0, "event is missing");
    /* Encoding first: every later message may echo a value, and lengths
     * are counted in characters. */
    char path[FIELD_CAP] = "";
    if (ev->base.descriptor != NULL && !encoding_ok(&ev->base))
        TRY(encoding_walk(&ev->base, path, 0, err));
    /* event_type is checked inside check_envelope before anything depends
     * on it; outcome and referral are only meaningful once it has passed. */
    bool outcome =
        ev->event_type != NULL && strcmp(ev->event_type, "outcome") == 0;
    bool referral =
        ev->event_type != NULL && strcmp(ev->event_type, "referral") == 0;
    bool allow_test = opts != NULL && opts->allow_test_nhs_numbers;
    TRY(check_envelope(ev, outcome, err));
    TRY(check_source(ev->source, err));
    TRY(check_destinations(ev, outcome, err));
    TRY(check_patient(ev->patient, outcome, allow_test, err));
    TRY(check_request_text(ev, outcome, referral, err));
    TRY(check_consent(ev->consent, err));
    return check_body(ev, err);
}

bool
validate_service_known(const char *service)
{
    return in_table(service, services);
}

bool
validate_outcome_status_known(const char *status)
{
    return status_find(status) != NULL;
}

bool
validate_outcome_status_allowed(const char *status, const char *answered_type)
{
    const status_row *row = status_find(status);
    if (row == NULL || answered_type == NULL)
        return false;
    return in_table(answered_type, row->allowed_for);
}

bool
validate_outcome_is_terminal(const char *status)
{
    const status_row *row = status_find(status);
    return row != NULL && row->terminal;
}
