/* Outbound mapping for the gp agency: a canonical event to the FHIR R4
 * document the practice's clinical system takes (domain 6.2 to 6.4, read
 * in reverse).
 *
 * The shapes follow what GP systems send us (samples/fhir/) and the golden
 * discharge Bundle (samples/fhir/outbound/), so a practice reads ours with
 * the mapping it already has. Elements are written in the order of their
 * R4 definitions.
 *
 * Failure is sticky, as in adapters/nursing/map_out.c: the first problem is
 * kept in why, the rest of the build runs harmlessly on NULL values, and
 * fhir_out reports it at the end. That keeps the resource builders free of
 * error plumbing.
 *
 * Conventions this file settles where the brief leaves a choice (each is
 * also in docs/architecture.md):
 *  - Entry fullUrls are urn:uuid: version 5 UUIDs in the namespace of the
 *    event id, named "MessageHeader", "Encounter", "Patient", "CarePlan",
 *    "MedicationStatement/<n>", "DeviceRequest/<n>": stable across
 *    redeliveries, unique per event.
 *  - The event does not carry the trust's own identifier systems, so the
 *    Encounter's identifier is source.ref under <base>/Id/source-ref with
 *    the source organisation as assigner; a DeviceRequest carries line_ref
 *    the same way and order_ref under <base>/Id/order-ref.
 *  - serviceProvider is the NHS trust of the discharging site: the first
 *    three characters of a trust site code (R + 4, domain 4.2), else the
 *    site itself.
 *  - Diagnoses become Encounter.reasonCode; ICD-10 codes (system I10) are
 *    written with the dot (J189 gives J18.9; the UK filler X of I10X is
 *    dropped).
 *  - medications_summary becomes one MedicationStatement per line: the
 *    NEW:, CHANGED:, STOPPED: or UNCHANGED: prefix is the note (STOPPED
 *    gives status stopped, the others active), the rest of the line the
 *    medication's text; a line without a prefix has status unknown. The
 *    event does not separate the medicine from its dose.
 *  - A follow-up is a CarePlan activity, scheduled when it has a start,
 *    not-started otherwise. reason, clinical_details, social_details and
 *    access_notes of a discharge are CarePlan notes prefixed "Reason:",
 *    "Clinical:", "Social:" and "Access:", the prefixes inbound
 *    ServiceRequest notes use.
 *  - discharge.method is an extension <base>/StructureDefinition/
 *    discharge-method with code system <base>/CodeSystem/
 *    nhs-dd-discharge-method: R4 Encounter has no element for it.
 *  - The patient's address is written with use home and its last line as
 *    city when there are two or more (canonical lines run from street to
 *    town, as HL7 XAD and the inbound mapping build them); the phone
 *    without a use, which the event does not record.
 *  - Task: planned_for is restriction.period.start; item lines are
 *    output[], type the catalogue item, value the asset (valueReference by
 *    identifier <base>/Id/ces-asset) or else the quantity.
 *  - A referral's author is a contained PractitionerRole (#requester) of
 *    the source organisation; explicit or best-interests consent is a
 *    contained Consent in the shape fhir_in reads.
 */
#include "fhir_out.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handover/ident.h"
#include "handover/str.h"
#include "handover/timeutil.h"

#define DEFAULT_BASE    "https://handover.example/fhir"
#define DEFAULT_VERSION "0.1"
#define BASE_MAX        200

#define SYS_NHS "https://fhir.nhs.uk/Id/nhs-number"
#define SYS_ODS "https://fhir.nhs.uk/Id/ods-organization-code"
#define EXT_NHS_STATUS                                                         \
    "https://fhir.hl7.org.uk/StructureDefinition/"                             \
    "Extension-UKCore-NHSNumberVerificationStatus"
#define SYS_NHS_STATUS                                                         \
    "https://fhir.hl7.org.uk/CodeSystem/"                                      \
    "UKCore-NHSNumberVerificationStatusEngland"
#define UKCORE_PATIENT                                                         \
    "https://fhir.hl7.org.uk/StructureDefinition/UKCore-Patient"
#define SYS_ACT_CODE "http://terminology.hl7.org/CodeSystem/v3-ActCode"
#define SYS_PARTICIPATION                                                      \
    "http://terminology.hl7.org/CodeSystem/"                                   \
    "v3-ParticipationType"
#define SYS_CONSENT_SCOPE "http://terminology.hl7.org/CodeSystem/consentscope"
#define SYS_ICD10         "http://hl7.org/fhir/sid/icd-10"
#define SYS_URI           "urn:ietf:rfc:3986"

#define LOCAL_PREFIX    "local:"
#define LOCAL_PREFIX_SZ 6

/* A canonical code and its display text. */
typedef struct code_text {
    const char *code, *text;
} code_text;

/* Domain 3.5 services, displayed as GP systems send them. */
static const code_text services[] = {
    {"district-nursing", "District nursing"},
    {"urgent-community-response", "Urgent community response"},
    {"community-therapy", "Community therapy"},
    {"adult-social-care-assessment", "Care Act needs assessment"},
    {"carers-assessment", "Carer's assessment"},
    {"reablement", "Reablement"},
    {"social-prescribing", "Social prescribing"},
    {"home-from-hospital", "Home from hospital"},
};

/* Domain 2.2, in the words of the trust's ADT (and the golden Bundle). */
static const char *const pathway_texts[] = {
    "Pathway 0 - simple discharge home",
    "Pathway 1 - home with new or additional support",
    "Pathway 2 - bed-based recovery, rehabilitation or assessment",
    "Pathway 3 - bed-based 24-hour care",
};

/* UK Core NHSNumberVerificationStatusEngland. */
static const code_text nhs_statuses[] = {
    {"01", "Number present and verified"},
    {"02", "Number present but not traced"},
    {"03", "Trace required"},
    {"04", "Trace attempted - No match or multiple match found"},
    {"05", "Trace needs to be resolved - (NHS number or patient detail "
           "conflict)"},
    {"06", "Trace in progress"},
    {"07", "Number not present and trace not required"},
    {"08", "Trace postponed (baby under six weeks old)"},
};

/* Canonical priority to FHIR request-priority (domain 6.3). */
static const code_text priorities[] = {
    {"two_hour_crisis", "stat"},
    {"urgent", "urgent"},
    {"routine", "routine"},
};

/* Domain 6.3: canonical outcome status, Task.status, businessStatus and
 * its display. fhir_in.c holds the same table for the other direction. */
typedef struct task_map {
    const char *canon, *task, *business, *display;
} task_map;

static const task_map task_statuses[] = {
    {"acknowledged", "completed", "acknowledged", "Acknowledged"},
    {"accepted", "accepted", "accepted", "Accepted"},
    {"rejected", "rejected", "rejected", "Rejected"},
    {"completed", "completed", "completed", "Completed"},
    {"cancelled", "cancelled", "cancelled", "Cancelled"},
    {"delivered", "completed", "delivered", "Delivered"},
    {"collected", "completed", "collected", "Collected"},
    {"cannot_deliver", "failed", "cannot-deliver", "Cannot deliver"},
};

/* Professional registers by identifier shape (domain 4.3). */
typedef struct reg {
    const char *shape; /* A letter, 9 digit, * either; exact length */
    const char *system;
} reg;

static const reg registers[] = {
    {"G9999999", "https://fhir.hl7.org.uk/Id/gmp-number"},
    {"C9999999", "https://fhir.hl7.org.uk/Id/gmc-number"},
    {"99A9999A", "https://fhir.hl7.org.uk/Id/nmc-number"},
    {"AA999999", "https://fhir.hl7.org.uk/Id/hcpc-number"},
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

typedef struct octx {
    const Handover__Event *ev;
    const fhir_out_opts *o;
    const char *base;
    bool failed; /* why holds the first problem */
    bool oom;
    char *why;
    size_t whysz;
} octx;

/* ----------------------------------------------------------- helpers */

static bool
has(const char *s)
{
    return s != NULL && s[0] != '\0';
}

static const char *
lookup(const code_text *t, size_t n, const char *code)
{
    if (code == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++)
        if (strcmp(t[i].code, code) == 0)
            return t[i].text;
    return NULL;
}

/* Record the first problem met while building; the event id leads,
 * because why goes to dead letters and the audit log. Never a value from
 * the event other than codes: the message must not carry patient data. */
static void __attribute__((format(printf, 2, 3)))
fail(octx *c, const char *fmt, ...)
{
    if (c->failed)
        return;
    c->failed = true;
    if (c->why == NULL || c->whysz == 0)
        return;
    char what[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    char id[48];
    hov_echo(id, sizeof id, c->ev->event_id, 40);
    snprintf(c->why, c->whysz, "event %s: %s", id, what);
}

/* ------------------------------------------------------- JSON builders */

static json_t *
new_obj(octx *c)
{
    json_t *v = json_object();
    if (v == NULL)
        c->oom = true;
    return v;
}

static json_t *
new_arr(octx *c)
{
    json_t *v = json_array();
    if (v == NULL)
        c->oom = true;
    return v;
}

/* A JSON string of s, the value of field (named in a refusal). */
static json_t *
jstr(octx *c, const char *s, const char *field)
{
    if (s == NULL)
        return NULL;
    if (!hov_utf8_valid(s)) {
        fail(c, "%s is not valid UTF-8", field);
        return NULL;
    }
    json_t *v = json_string(s);
    if (v == NULL)
        c->oom = true;
    return v;
}

/* Set key of obj to v, taking v; NULL v (a failure already recorded, or
 * nothing to write) sets nothing. */
static void
put(octx *c, json_t *obj, const char *key, json_t *v)
{
    if (v == NULL)
        return;
    if (obj == NULL || json_object_set_new(obj, key, v) != 0) {
        if (obj != NULL)
            c->oom = true;
        else
            json_decref(v);
    }
}

/* Set key of obj to the string s when s is not empty. */
static void
put_s(octx *c, json_t *obj, const char *key, const char *s, const char *field)
{
    if (has(s))
        put(c, obj, key, jstr(c, s, field));
}

static void
push(octx *c, json_t *arr, json_t *v)
{
    if (v == NULL)
        return;
    if (arr == NULL || json_array_append_new(arr, v) != 0) {
        if (arr != NULL)
            c->oom = true;
        else
            json_decref(v);
    }
}

/* Put arr under key unless it is empty (R4 has no empty arrays). */
static void
put_arr(octx *c, json_t *obj, const char *key, json_t *arr)
{
    if (arr != NULL && json_array_size(arr) == 0) {
        json_decref(arr);
        return;
    }
    put(c, obj, key, arr);
}

/* <base><suffix> as a JSON string. */
static json_t *
hsys(octx *c, const char *suffix)
{
    char s[BASE_MAX + 64];
    snprintf(s, sizeof s, "%s%s", c->base, suffix);
    return jstr(c, s, "base");
}

static json_t *
coding(octx *c, json_t *sys, const char *code, const char *display,
       const char *field)
{
    json_t *cd = new_obj(c);
    put(c, cd, "system", sys);
    put_s(c, cd, "code", code, field);
    put_s(c, cd, "display", display, field);
    return cd;
}

/* A CodeableConcept of one coding. */
static json_t *concept(octx *c, json_t *sys, const char *code,
                       const char *display, const char *field)
{
    json_t *cc = new_obj(c);
    json_t *arr = new_arr(c);
    push(c, arr, coding(c, sys, code, display, field));
    put(c, cc, "coding", arr);
    return cc;
}

static json_t *
text_concept(octx *c, const char *text, const char *field)
{
    json_t *cc = new_obj(c);
    put_s(c, cc, "text", text, field);
    return cc;
}

static json_t *
identifier(octx *c, json_t *sys, const char *value, const char *field)
{
    json_t *id = new_obj(c);
    put(c, id, "system", sys);
    put_s(c, id, "value", value, field);
    return id;
}

static json_t *
ref(octx *c, const char *url)
{
    json_t *r = new_obj(c);
    put_s(c, r, "reference", url, "reference");
    return r;
}

/* A Reference to an organisation by identifier: an ODS code, or a local:
 * code under Handover's local-organisation system. */
static json_t *
org_ref(octx *c, const char *code, const char *name, const char *field)
{
    if (!has(code))
        return NULL;
    json_t *r = new_obj(c);
    json_t *id;
    if (strncmp(code, LOCAL_PREFIX, LOCAL_PREFIX_SZ) == 0)
        id = identifier(c, hsys(c, "/Id/local-organisation"),
                        code + LOCAL_PREFIX_SZ, field);
    else
        id = identifier(c, jstr(c, SYS_ODS, field), code, field);
    put(c, r, "identifier", id);
    put_s(c, r, "display", name, field);
    return r;
}

/* s must be an RFC 3339 timestamp (or, with date_ok, a date) to be
 * written; a malformed one refuses the event (see the header). */
static bool
stamp_ok(octx *c, const char *s, bool date_ok, const char *field)
{
    if (!has(s))
        return false;
    if (hov_rfc3339_valid(s) || (date_ok && hov_date_valid(s)))
        return true;
    fail(c, "%s is not %s", field,
         date_ok ? "a date or an RFC 3339 timestamp" : "an RFC 3339 timestamp");
    return false;
}

static void
put_stamp(octx *c, json_t *obj, const char *key, const char *s, bool date_ok,
          const char *field)
{
    if (stamp_ok(c, s, date_ok, field))
        put(c, obj, key, jstr(c, s, field));
}

/* The urn:uuid: of an entry: a version 5 UUID named name in the event
 * id's namespace. */
static void
entry_url(octx *c, const char *name, char out[46])
{
    char id[37];
    hov_error err = {0};
    if (hov_uuid_v5(c->ev->event_id, name, strlen(name), id, &err) != HOV_OK) {
        fail(c, "cannot derive an entry id: %s", err.msg);
        id[0] = '\0';
    }
    snprintf(out, 46, "urn:uuid:%s", id);
}

/* Add {fullUrl, resource} to entries. */
static void
add_entry(octx *c, json_t *entries, const char *url, json_t *resource)
{
    json_t *e = new_obj(c);
    put_s(c, e, "fullUrl", url, "fullUrl");
    put(c, e, "resource", resource);
    push(c, entries, e);
}

static json_t *
resource(octx *c, const char *type, const char *id)
{
    json_t *r = new_obj(c);
    put(c, r, "resourceType", jstr(c, type, "resourceType"));
    put_s(c, r, "id", id, "id");
    return r;
}

/* The identifier of the event itself: <base>/Id/event-id|<event id>. */
static json_t *
event_identifier(octx *c)
{
    return identifier(c, hsys(c, "/Id/event-id"), c->ev->event_id, "event_id");
}

/* Does id match shape (A a letter, 9 a digit)? */
static bool
shape_is(const char *id, const char *shape)
{
    size_t i = 0;
    for (; shape[i] != '\0'; i++) {
        char ch = id[i];
        if (ch == '\0')
            return false;
        bool digit = ch >= '0' && ch <= '9';
        bool letter = ch >= 'A' && ch <= 'Z';
        if ((shape[i] == '9' && !digit) || (shape[i] == 'A' && !letter) ||
            (shape[i] != '9' && shape[i] != 'A' && shape[i] != ch))
            return false;
    }
    return id[i] == '\0';
}

/* A Reference to a person: identifier by register when its shape is
 * known, and the name as display. NULL when p names nobody. */
static json_t *
person_ref(octx *c, const Handover__Person *p, const char *field)
{
    if (p == NULL || (!has(p->name) && !has(p->id)))
        return NULL;
    json_t *r = new_obj(c);
    for (size_t i = 0; has(p->id) && i < NELEM(registers); i++) {
        if (shape_is(p->id, registers[i].shape)) {
            put(c, r, "identifier",
                identifier(c, jstr(c, registers[i].system, field), p->id,
                           field));
            break;
        }
    }
    put_s(c, r, "display", p->name, field);
    return r;
}

/* ------------------------------------------------------------- patient */

/* The patient as a UK Core Patient with id (a contained "pat", or the
 * entry's uuid). */
static json_t *
patient(octx *c, const char *id)
{
    const Handover__Patient *pt = c->ev->patient;
    json_t *r = resource(c, "Patient", id);
    json_t *meta = new_obj(c);
    json_t *prof = new_arr(c);
    push(c, prof, jstr(c, UKCORE_PATIENT, "profile"));
    put(c, meta, "profile", prof);
    put(c, r, "meta", meta);
    if (pt == NULL)
        return r;

    if (has(pt->nhs_number)) {
        json_t *ids = new_arr(c);
        json_t *nhs = new_obj(c);
        const char *st =
            lookup(nhs_statuses, NELEM(nhs_statuses), pt->nhs_number_status);
        if (st != NULL) {
            json_t *exts = new_arr(c);
            json_t *x = new_obj(c);
            put(c, x, "url", jstr(c, EXT_NHS_STATUS, "extension"));
            put(c, x, "valueCodeableConcept",
                concept(c, jstr(c, SYS_NHS_STATUS, "extension"),
                        pt->nhs_number_status, st,
                        "patient.nhs_number_status"));
            push(c, exts, x);
            put(c, nhs, "extension", exts);
        }
        put(c, nhs, "system", jstr(c, SYS_NHS, "system"));
        put_s(c, nhs, "value", pt->nhs_number, "patient.nhs_number");
        push(c, ids, nhs);
        put(c, r, "identifier", ids);
    }

    if (has(pt->family_name) || pt->n_given_names > 0 || has(pt->title)) {
        json_t *names = new_arr(c);
        json_t *nm = new_obj(c);
        put(c, nm, "use", jstr(c, "official", "use"));
        put_s(c, nm, "family", pt->family_name, "patient.family_name");
        json_t *given = new_arr(c);
        for (size_t i = 0; i < pt->n_given_names; i++)
            if (has(pt->given_names[i]))
                push(c, given,
                     jstr(c, pt->given_names[i], "patient.given_names"));
        put_arr(c, nm, "given", given);
        if (has(pt->title)) {
            json_t *prefix = new_arr(c);
            push(c, prefix, jstr(c, pt->title, "patient.title"));
            put(c, nm, "prefix", prefix);
        }
        push(c, names, nm);
        put(c, r, "name", names);
    }
    if (has(pt->phone)) {
        json_t *tel = new_arr(c);
        json_t *cp = new_obj(c);
        put(c, cp, "system", jstr(c, "phone", "system"));
        put_s(c, cp, "value", pt->phone, "patient.phone");
        push(c, tel, cp);
        put(c, r, "telecom", tel);
    }
    put_s(c, r, "gender", pt->sex, "patient.sex");
    if (has(pt->date_of_birth)) {
        if (hov_date_valid(pt->date_of_birth))
            put_s(c, r, "birthDate", pt->date_of_birth,
                  "patient.date_of_birth");
        else
            fail(c, "patient.date_of_birth is not a date (YYYY-MM-DD)");
    }
    if (pt->n_address_lines > 0 || has(pt->postcode)) {
        json_t *addrs = new_arr(c);
        json_t *ad = new_obj(c);
        put(c, ad, "use", jstr(c, "home", "use"));
        size_t n = pt->n_address_lines;
        /* The last of two or more lines is the town (file comment). */
        size_t nlines = n >= 2 ? n - 1 : n;
        json_t *lines = new_arr(c);
        for (size_t i = 0; i < nlines; i++)
            if (has(pt->address_lines[i]))
                push(c, lines,
                     jstr(c, pt->address_lines[i], "patient.address_lines"));
        put_arr(c, ad, "line", lines);
        if (n >= 2)
            put_s(c, ad, "city", pt->address_lines[n - 1],
                  "patient.address_lines");
        put_s(c, ad, "postalCode", pt->postcode, "patient.postcode");
        push(c, addrs, ad);
        put(c, r, "address", addrs);
    }
    if (has(pt->registered_gp)) {
        json_t *gps = new_arr(c);
        const char *name = NULL;
        if (c->o->destination != NULL &&
            strcmp(c->o->destination, pt->registered_gp) == 0)
            name = c->o->destination_name;
        push(c, gps,
             org_ref(c, pt->registered_gp, name, "patient.registered_gp"));
        put(c, r, "generalPractitioner", gps);
    }
    return r;
}

/* ------------------------------------------------------ message header */

/* MessageHeader for event code (Handover event-type), focused on the
 * entries focus[0..n). */
static json_t *
message_header(octx *c, const char *id, const char *code, const char *display,
               char (*focus)[46], size_t n)
{
    const Handover__Event *ev = c->ev;
    json_t *r = resource(c, "MessageHeader", id);
    put(c, r, "eventCoding",
        coding(c, hsys(c, "/CodeSystem/event-type"), code, display,
               "event_type"));
    const fhir_out_opts *o = c->o;
    if (has(o->destination_endpoint)) {
        json_t *dests = new_arr(c);
        json_t *d = new_obj(c);
        put_s(c, d, "name", o->destination_name, "destination_name");
        put_s(c, d, "endpoint", o->destination_endpoint,
              "destination_endpoint");
        put(c, d, "receiver",
            org_ref(c, o->destination, o->destination_name, "destination"));
        push(c, dests, d);
        put(c, r, "destination", dests);
    }
    if (ev->source != NULL && ev->source->org != NULL)
        put(c, r, "sender",
            org_ref(c, ev->source->org->code, ev->source->org->name,
                    "source.org"));
    if (ev->source != NULL)
        put(c, r, "author", person_ref(c, ev->source->author, "source.author"));
    json_t *src = new_obj(c);
    put(c, src, "name", jstr(c, "Handover", "source"));
    put(c, src, "software", jstr(c, "handover-gp", "source"));
    put(c, src, "version",
        jstr(c,
             o->software_version != NULL ? o->software_version
                                         : DEFAULT_VERSION,
             "software_version"));
    put(c, src, "endpoint", jstr(c, c->base, "base"));
    put(c, r, "source", src);
    json_t *arr = new_arr(c);
    for (size_t i = 0; i < n; i++)
        push(c, arr, ref(c, focus[i]));
    put(c, r, "focus", arr);
    return r;
}

/* A message Bundle: identifier the event id, timestamp received_at. */
static json_t *
message_bundle(octx *c, json_t *entries)
{
    const Handover__Event *ev = c->ev;
    json_t *b = resource(c, "Bundle", ev->event_id);
    put(c, b, "identifier", event_identifier(c));
    put(c, b, "type", jstr(c, "message", "type"));
    if (has(ev->received_at)) {
        put_stamp(c, b, "timestamp", ev->received_at, false, "received_at");
    } else {
        char now[32];
        hov_rfc3339_format(c->o->now_ms != 0 ? c->o->now_ms : hov_now_ms(),
                           now);
        put(c, b, "timestamp", jstr(c, now, "timestamp"));
    }
    put(c, b, "entry", entries);
    return b;
}

/* ---------------------------------------------------------- discharge */

/* "J189" as "J18.9"; the UK filler in "I10X" dropped. */
static void
icd10_dotted(const char *code, char *out, size_t outsz)
{
    size_t n = strlen(code);
    if (strchr(code, '.') != NULL || n < 4 || n + 2 > outsz ||
        !(code[0] >= 'A' && code[0] <= 'Z')) {
        hov_strlcpy(out, outsz, code);
        return;
    }
    if (n == 4 && code[3] == 'X') {
        memcpy(out, code, 3);
        out[3] = '\0';
        return;
    }
    memcpy(out, code, 3);
    out[3] = '.';
    memcpy(out + 4, code + 3, n - 2);
}

static json_t *
diagnosis(octx *c, const Handover__Coded *d)
{
    if (d == NULL || (!has(d->code) && !has(d->text)))
        return NULL;
    json_t *cc = new_obj(c);
    if (has(d->code)) {
        bool icd = has(d->system) && (strcmp(d->system, "I10") == 0 ||
                                      strcmp(d->system, "ICD10") == 0 ||
                                      strcmp(d->system, "ICD-10") == 0);
        char code[40];
        if (icd)
            icd10_dotted(d->code, code, sizeof code);
        else
            hov_strlcpy(code, sizeof code, d->code);
        json_t *arr = new_arr(c);
        json_t *cd = new_obj(c);
        if (icd)
            put(c, cd, "system", jstr(c, SYS_ICD10, "diagnoses"));
        put_s(c, cd, "code", code, "discharge.diagnoses.code");
        push(c, arr, cd);
        put(c, cc, "coding", arr);
    }
    put_s(c, cc, "text", d->text, "discharge.diagnoses.text");
    return cc;
}

/* The NHS trust of a site code (domain 4.2: trust + 2 characters). */
static void
trust_of(const char *site, char out[10])
{
    size_t n = strlen(site);
    bool trust_site = n == 5 && site[0] == 'R';
    hov_strlcpy(out, 10, site);
    if (trust_site)
        out[3] = '\0';
}

static json_t *
encounter(octx *c, const char *id, const char *patient_url)
{
    const Handover__Event *ev = c->ev;
    const Handover__Discharge *d = ev->discharge;
    const Handover__OrgRef *src = ev->source != NULL ? ev->source->org : NULL;
    json_t *r = resource(c, "Encounter", id);

    json_t *exts = new_arr(c);
    if (d->pathway_present_case ==
        HANDOVER__DISCHARGE__PATHWAY_PRESENT_PATHWAY) {
        if (d->pathway < 0 || d->pathway > 3) {
            fail(c, "discharge.pathway %d is not 0 to 3", (int)d->pathway);
        } else {
            char code[2] = {(char)('0' + d->pathway), '\0'};
            json_t *x = new_obj(c);
            put(c, x, "url", hsys(c, "/StructureDefinition/discharge-pathway"));
            put(c, x, "valueCodeableConcept",
                concept(c, hsys(c, "/CodeSystem/discharge-pathway"), code,
                        pathway_texts[d->pathway], "discharge.pathway"));
            push(c, exts, x);
        }
    }
    if (has(d->method)) {
        json_t *x = new_obj(c);
        put(c, x, "url", hsys(c, "/StructureDefinition/discharge-method"));
        put(c, x, "valueCodeableConcept",
            concept(c, hsys(c, "/CodeSystem/nhs-dd-discharge-method"),
                    d->method, NULL, "discharge.method"));
        push(c, exts, x);
    }
    put_arr(c, r, "extension", exts);

    if (ev->source != NULL && has(ev->source->ref)) {
        json_t *ids = new_arr(c);
        json_t *idf = identifier(c, hsys(c, "/Id/source-ref"), ev->source->ref,
                                 "source.ref");
        if (src != NULL)
            put(c, idf, "assigner",
                org_ref(c, src->code, src->name, "source.org"));
        push(c, ids, idf);
        put(c, r, "identifier", ids);
    }
    put(c, r, "status", jstr(c, "finished", "status"));
    put(c, r, "class",
        coding(c, jstr(c, SYS_ACT_CODE, "class"), "IMP", "inpatient encounter",
               "class"));
    put(c, r, "subject", ref(c, patient_url));

    json_t *who = person_ref(c, d->responsible_clinician,
                             "discharge.responsible_clinician");
    if (who != NULL) {
        json_t *parts = new_arr(c);
        json_t *p = new_obj(c);
        json_t *types = new_arr(c);
        push(c, types,
             concept(c, jstr(c, SYS_PARTICIPATION, "participant"), "ATND",
                     "attender", "participant"));
        put(c, p, "type", types);
        put(c, p, "individual", who);
        push(c, parts, p);
        put(c, r, "participant", parts);
    }

    json_t *period = new_obj(c);
    put_stamp(c, period, "start", d->admitted_at, false,
              "discharge.admitted_at");
    put_stamp(c, period, "end", d->discharged_at, false,
              "discharge.discharged_at");
    put(c, r, "period", period);

    json_t *reasons = new_arr(c);
    for (size_t i = 0; i < d->n_diagnoses; i++)
        push(c, reasons, diagnosis(c, d->diagnoses[i]));
    put_arr(c, r, "reasonCode", reasons);

    const Handover__DischargeDestination *dest = d->destination;
    if (dest != NULL &&
        (has(dest->code) || dest->n_address_lines > 0 || has(dest->postcode))) {
        json_t *hosp = new_obj(c);
        if (has(dest->code))
            put(c, hosp, "dischargeDisposition",
                concept(c, hsys(c, "/CodeSystem/nhs-dd-discharge-destination"),
                        dest->code, dest->description,
                        "discharge.destination"));
        if (dest->n_address_lines > 0 || has(dest->postcode)) {
            /* The place, as a person reads it: R4 wants a Location here. */
            size_t cap = 16;
            for (size_t i = 0; i < dest->n_address_lines; i++)
                cap += strlen(dest->address_lines[i]) + 2;
            cap += has(dest->postcode) ? strlen(dest->postcode) : 0;
            char *text = malloc(cap);
            if (text == NULL) {
                c->oom = true;
            } else {
                size_t k = 0;
                text[0] = '\0';
                for (size_t i = 0; i < dest->n_address_lines; i++)
                    k += (size_t)snprintf(text + k, cap - k, "%s%s",
                                          k > 0 ? ", " : "",
                                          dest->address_lines[i]);
                if (has(dest->postcode))
                    snprintf(text + k, cap - k, "%s%s", k > 0 ? ", " : "",
                             dest->postcode);
                json_t *loc = new_obj(c);
                put_s(c, loc, "display", text, "discharge.destination");
                put(c, hosp, "destination", loc);
                free(text);
            }
        }
        put(c, r, "hospitalization", hosp);
    }

    if (has(d->ward) || has(d->site)) {
        const char *site_name =
            src != NULL && has(d->site) && strcmp(src->code, d->site) == 0
                ? src->name
                : NULL;
        char display[160];
        snprintf(display, sizeof display, "%s%s%s", has(d->ward) ? d->ward : "",
                 has(d->ward) && has(site_name) ? ", " : "",
                 has(site_name) ? site_name : "");
        json_t *locs = new_arr(c);
        json_t *l = new_obj(c);
        json_t *lr = new_obj(c);
        if (has(d->site))
            put(c, lr, "identifier",
                identifier(c, jstr(c, SYS_ODS, "site"), d->site,
                           "discharge.site"));
        put_s(c, lr, "display", display, "discharge.ward");
        put(c, l, "location", lr);
        push(c, locs, l);
        put(c, r, "location", locs);
    }
    if (has(d->site)) {
        char trust[10];
        trust_of(d->site, trust);
        const char *name =
            src != NULL && strcmp(src->code, trust) == 0 ? src->name : NULL;
        put(c, r, "serviceProvider", org_ref(c, trust, name, "discharge.site"));
    }
    return r;
}

static void
add_note(octx *c, json_t *notes, const char *prefix, const char *text,
         const char *field)
{
    if (!has(text))
        return;
    size_t n = strlen(prefix) + strlen(text) + 1;
    char *s = malloc(n);
    if (s == NULL) {
        c->oom = true;
        return;
    }
    snprintf(s, n, "%s%s", prefix, text);
    json_t *a = new_obj(c);
    put_s(c, a, "text", s, field);
    push(c, notes, a);
    free(s);
}

static json_t *
care_plan(octx *c, const char *id, const char *patient_url,
          const char *encounter_url)
{
    const Handover__Event *ev = c->ev;
    const Handover__Discharge *d = ev->discharge;
    json_t *acts = new_arr(c);
    for (size_t i = 0; i < d->n_follow_up; i++) {
        const Handover__FollowUp *f = d->follow_up[i];
        if (f == NULL)
            continue;
        json_t *det = new_obj(c);
        put(c, det, "kind", jstr(c, "ServiceRequest", "kind"));
        if (has(f->service))
            put(c, det, "code",
                concept(c, hsys(c, "/CodeSystem/service"), f->service,
                        lookup(services, NELEM(services), f->service),
                        "discharge.follow_up.service"));
        put(c, det, "status",
            jstr(c, has(f->start) ? "scheduled" : "not-started", "status"));
        if (has(f->start) || has(f->due_by)) {
            json_t *per = new_obj(c);
            put_stamp(c, per, "start", f->start, true,
                      "discharge.follow_up.start");
            put_stamp(c, per, "end", f->due_by, true,
                      "discharge.follow_up.due_by");
            put(c, det, "scheduledPeriod", per);
        }
        put_s(c, det, "description", f->description,
              "discharge.follow_up.description");
        json_t *a = new_obj(c);
        put(c, a, "detail", det);
        push(c, acts, a);
    }
    json_t *notes = new_arr(c);
    add_note(c, notes, "Reason: ", ev->reason, "reason");
    add_note(c, notes, "Clinical: ", ev->clinical_details, "clinical_details");
    add_note(c, notes, "Social: ", ev->social_details, "social_details");
    add_note(c, notes, "Access: ", ev->access_notes, "access_notes");
    if ((acts == NULL || json_array_size(acts) == 0) &&
        (notes == NULL || json_array_size(notes) == 0)) {
        json_decref(acts);
        json_decref(notes);
        return NULL;
    }
    json_t *r = resource(c, "CarePlan", id);
    put(c, r, "status", jstr(c, "active", "status"));
    put(c, r, "intent", jstr(c, "plan", "intent"));
    put(c, r, "title", jstr(c, "Follow-up needs after discharge", "title"));
    put(c, r, "subject", ref(c, patient_url));
    put(c, r, "encounter", ref(c, encounter_url));
    put_arr(c, r, "activity", acts);
    put_arr(c, r, "note", notes);
    return r;
}

/* One line of medications_summary as a MedicationStatement. */
static json_t *
medication(octx *c, const char *id, const char *line, size_t len,
           const char *patient_url, const char *encounter_url)
{
    static const struct {
        const char *prefix, *note, *status;
    } kinds[] = {
        {"NEW:", "NEW", "active"},
        {"CHANGED:", "CHANGED", "active"},
        {"STOPPED:", "STOPPED", "stopped"},
        {"UNCHANGED:", "UNCHANGED", "active"},
    };
    const char *note = NULL, *status = "unknown";
    const char *text = line;
    size_t tl = len;
    for (size_t i = 0; i < NELEM(kinds); i++) {
        size_t pl = strlen(kinds[i].prefix);
        if (len >= pl && memcmp(line, kinds[i].prefix, pl) == 0) {
            note = kinds[i].note;
            status = kinds[i].status;
            text = line + pl;
            tl = len - pl;
            while (tl > 0 && (*text == ' ' || *text == '\t')) {
                text++;
                tl--;
            }
            if (tl == 0) { /* "NEW:" alone: say what was sent */
                text = line;
                tl = len;
            }
            break;
        }
    }
    char *s = malloc(tl + 1);
    if (s == NULL) {
        c->oom = true;
        return NULL;
    }
    memcpy(s, text, tl);
    s[tl] = '\0';
    json_t *r = resource(c, "MedicationStatement", id);
    put(c, r, "status", jstr(c, status, "status"));
    put(c, r, "medicationCodeableConcept",
        text_concept(c, s, "discharge.medications_summary"));
    put(c, r, "subject", ref(c, patient_url));
    put(c, r, "context", ref(c, encounter_url));
    if (note != NULL) {
        json_t *notes = new_arr(c);
        json_t *a = new_obj(c);
        put(c, a, "text", jstr(c, note, "note"));
        push(c, notes, a);
        put(c, r, "note", notes);
    }
    free(s);
    return r;
}

static json_t *
discharge_bundle(octx *c)
{
    const Handover__Discharge *d = c->ev->discharge;
    char mh[46], enc[46], pat[46], cp[46];
    entry_url(c, "MessageHeader", mh);
    entry_url(c, "Encounter", enc);
    entry_url(c, "Patient", pat);
    entry_url(c, "CarePlan", cp);
    /* "urn:uuid:" is 9 characters: the id is the rest. */
    json_t *entries = new_arr(c);
    add_entry(c, entries, mh,
              message_header(c, mh + 9, "discharge", "Discharge", &enc, 1));
    add_entry(c, entries, enc, encounter(c, enc + 9, pat));
    add_entry(c, entries, pat, patient(c, pat + 9));
    json_t *plan = care_plan(c, cp + 9, pat, enc);
    if (plan != NULL)
        add_entry(c, entries, cp, plan);
    const char *m = d->medications_summary;
    size_t n = 0;
    for (const char *p = m; has(p);) {
        const char *nl = strchr(p, '\n');
        size_t len = nl != NULL ? (size_t)(nl - p) : strlen(p);
        const char *s = p;
        while (len > 0 && (*s == ' ' || *s == '\t' || *s == '\r')) {
            s++;
            len--;
        }
        while (len > 0 &&
               (s[len - 1] == ' ' || s[len - 1] == '\t' || s[len - 1] == '\r'))
            len--;
        if (len > 0) {
            char name[48], url[46];
            snprintf(name, sizeof name, "MedicationStatement/%zu", ++n);
            entry_url(c, name, url);
            add_entry(c, entries, url,
                      medication(c, url + 9, s, len, pat, enc));
        }
        if (nl == NULL)
            break;
        p = nl + 1;
    }
    return message_bundle(c, entries);
}

/* ------------------------------------------------------------ outcome */

static json_t *
task(octx *c)
{
    const Handover__Event *ev = c->ev;
    const Handover__Outcome *o = ev->outcome;
    const task_map *tm = NULL;
    for (size_t i = 0; has(o->status) && i < NELEM(task_statuses); i++)
        if (strcmp(task_statuses[i].canon, o->status) == 0)
            tm = &task_statuses[i];
    if (tm == NULL) {
        char e[48];
        hov_echo(e, sizeof e, o->status, 24);
        fail(c, "outcome status '%s' has no Task mapping (domain 6.3)", e);
        return NULL;
    }
    if (!hov_uuid_valid(ev->in_reply_to)) {
        fail(c, "in_reply_to is not a UUID: a Task names the event it "
                "answers");
        return NULL;
    }
    json_t *r = resource(c, "Task", NULL);
    json_t *ids = new_arr(c);
    push(c, ids, event_identifier(c));
    put(c, r, "identifier", ids);
    put(c, r, "status", jstr(c, tm->task, "status"));
    if (has(o->reason_code) || has(o->reason_text)) {
        json_t *sr = has(o->reason_code)
                         ? concept(c, hsys(c, "/CodeSystem/outcome-reason"),
                                   o->reason_code, NULL, "outcome.reason_code")
                         : new_obj(c);
        put_s(c, sr, "text", o->reason_text, "outcome.reason_text");
        put(c, r, "statusReason", sr);
    }
    put(c, r, "businessStatus",
        concept(c, hsys(c, "/CodeSystem/outcome-status"), tm->business,
                tm->display, "outcome.status"));
    put(c, r, "intent", jstr(c, "order", "intent"));
    json_t *focus = new_obj(c);
    put(c, focus, "identifier",
        identifier(c, hsys(c, "/Id/event-id"), ev->in_reply_to, "in_reply_to"));
    put(c, r, "focus", focus);
    if (ev->patient != NULL && has(ev->patient->nhs_number)) {
        json_t *f = new_obj(c);
        put(c, f, "identifier",
            identifier(c, jstr(c, SYS_NHS, "system"), ev->patient->nhs_number,
                       "patient.nhs_number"));
        put(c, r, "for", f);
    }
    put_stamp(c, r, "authoredOn", ev->occurred_at, false, "occurred_at");
    put_stamp(c, r, "lastModified", ev->occurred_at, false, "occurred_at");
    if (ev->source != NULL && ev->source->org != NULL)
        put(c, r, "owner",
            org_ref(c, ev->source->org->code, ev->source->org->name,
                    "source.org"));
    if (has(o->planned_for)) {
        if (hov_date_valid(o->planned_for)) {
            json_t *res = new_obj(c);
            json_t *per = new_obj(c);
            put_s(c, per, "start", o->planned_for, "outcome.planned_for");
            put(c, res, "period", per);
            put(c, r, "restriction", res);
        } else {
            fail(c, "outcome.planned_for is not a date (YYYY-MM-DD)");
        }
    }
    json_t *outs = new_arr(c);
    for (size_t i = 0; i < o->n_items; i++) {
        const Handover__OutcomeItem *it = o->items[i];
        if (it == NULL || !has(it->item_code))
            continue;
        json_t *out = new_obj(c);
        put(c, out, "type",
            concept(c, hsys(c, "/CodeSystem/ces-catalogue"), it->item_code,
                    NULL, "outcome.items.item_code"));
        if (has(it->asset_id)) {
            json_t *vr = new_obj(c);
            put(c, vr, "identifier",
                identifier(c, hsys(c, "/Id/ces-asset"), it->asset_id,
                           "outcome.items.asset_id"));
            put(c, out, "valueReference", vr);
        } else {
            json_t *q = new_obj(c);
            put(c, q, "value",
                json_integer(it->quantity > 0 ? it->quantity : 1));
            put(c, out, "valueQuantity", q);
        }
        push(c, outs, out);
    }
    put_arr(c, r, "output", outs);
    return r;
}

/* ----------------------------------------------------------- referral */

static const char *
fhir_priority(octx *c)
{
    const char *p = c->ev->priority;
    if (!has(p))
        return NULL;
    const char *f = lookup(priorities, NELEM(priorities), p);
    if (f == NULL) {
        char e[48];
        hov_echo(e, sizeof e, p, 24);
        fail(c, "priority '%s' is not routine, urgent or two_hour_crisis", e);
    }
    return f;
}

/* The referral's consent as a contained Consent in the shape fhir_in
 * reads: the patient as performer for explicit consent, a practitioner
 * and the Mental Capacity Act for a best-interests decision. Implied
 * consent needs no resource (domain 3.4). */
static json_t *
consent(octx *c, json_t *contained)
{
    const Handover__Event *ev = c->ev;
    const Handover__Consent *k = ev->consent;
    if (k == NULL || !has(k->basis) ||
        strcmp(k->basis, "implied_direct_care") == 0)
        return NULL;
    const char *rule;
    bool explicit = strcmp(k->basis, "explicit") == 0;
    bool best = strcmp(k->basis, "best_interests") == 0;
    if (explicit)
        rule = "Explicit consent under the common law duty of "
               "confidentiality";
    else if (best)
        rule = "Best-interests decision under the Mental Capacity Act 2005 "
               "s.4";
    else if (strcmp(k->basis, "legal_obligation") == 0)
        rule = "Statutory duty to share (legal obligation)";
    else {
        fail(c, "consent.basis is not a known basis");
        return NULL;
    }
    json_t *r = resource(c, "Consent", "consent");
    put(c, r, "status", jstr(c, "active", "status"));
    put(c, r, "scope",
        concept(c, jstr(c, SYS_CONSENT_SCOPE, "scope"), "patient-privacy",
                "Privacy Consent", "scope"));
    json_t *cats = new_arr(c);
    push(c, cats,
         text_concept(c,
                      has(k->notes) ? k->notes
                                    : "Consent to share information for "
                                      "this referral",
                      "consent.notes"));
    put(c, r, "category", cats);
    put(c, r, "patient", ref(c, "#pat"));
    put_stamp(c, r, "dateTime", k->recorded_at, false, "consent.recorded_at");
    json_t *perf = new_arr(c);
    if (explicit) {
        push(c, perf, ref(c, "#pat"));
    } else if (best) {
        json_t *pr = resource(c, "Practitioner", "consent-by");
        if (has(k->recorded_by)) {
            json_t *names = new_arr(c);
            push(c, names,
                 text_concept(c, k->recorded_by, "consent.recorded_by"));
            put(c, pr, "name", names);
        }
        push(c, contained, pr);
        json_t *pref = ref(c, "#consent-by");
        put_s(c, pref, "display", k->recorded_by, "consent.recorded_by");
        push(c, perf, pref);
    }
    put_arr(c, r, "performer", perf);
    put(c, r, "policyRule", text_concept(c, rule, "policyRule"));
    json_t *prov = new_obj(c);
    put(c, prov, "type", jstr(c, "permit", "type"));
    json_t *actors = new_arr(c);
    for (size_t i = 0; i < ev->n_destinations; i++) {
        const Handover__OrgRef *d = ev->destinations[i];
        if (d == NULL)
            continue;
        json_t *a = new_obj(c);
        put(c, a, "role",
            concept(c, jstr(c, SYS_PARTICIPATION, "role"), "IRCP",
                    "information recipient", "role"));
        put(c, a, "reference", org_ref(c, d->code, d->name, "destinations"));
        push(c, actors, a);
    }
    put_arr(c, prov, "actor", actors);
    put(c, r, "provision", prov);
    return r;
}

static json_t *
service_request(octx *c)
{
    const Handover__Event *ev = c->ev;
    const Handover__Referral *rf = ev->referral;
    json_t *r = resource(c, "ServiceRequest", NULL);
    json_t *contained = new_arr(c);
    push(c, contained, patient(c, "pat"));
    const Handover__Person *a = ev->source != NULL ? ev->source->author : NULL;
    const Handover__OrgRef *src = ev->source != NULL ? ev->source->org : NULL;
    bool role = a != NULL && (has(a->name) || has(a->id));
    if (role) {
        json_t *pr = resource(c, "PractitionerRole", "requester");
        put(c, pr, "practitioner", person_ref(c, a, "source.author"));
        if (src != NULL)
            put(c, pr, "organization",
                org_ref(c, src->code, src->name, "source.org"));
        if (has(a->role)) {
            json_t *codes = new_arr(c);
            push(c, codes, text_concept(c, a->role, "source.author.role"));
            put(c, pr, "code", codes);
        }
        if (has(a->phone)) {
            json_t *tel = new_arr(c);
            json_t *cp = new_obj(c);
            put(c, cp, "system", jstr(c, "phone", "system"));
            put_s(c, cp, "value", a->phone, "source.author.phone");
            push(c, tel, cp);
            put(c, pr, "telecom", tel);
        }
        push(c, contained, pr);
    }
    json_t *cs = consent(c, contained);
    push(c, contained, cs);
    put(c, r, "contained", contained);

    json_t *ids = new_arr(c);
    push(c, ids, event_identifier(c));
    put(c, r, "identifier", ids);
    put(c, r, "status", jstr(c, "active", "status"));
    put(c, r, "intent", jstr(c, "order", "intent"));
    const char *prio = fhir_priority(c);
    if (has(rf->service))
        put(c, r, "code",
            concept(c, hsys(c, "/CodeSystem/service"), rf->service,
                    lookup(services, NELEM(services), rf->service),
                    "referral.service"));
    put_s(c, r, "priority", prio, "priority");
    put(c, r, "subject", ref(c, "#pat"));
    put_stamp(c, r, "authoredOn", ev->occurred_at, false, "occurred_at");
    if (role)
        put(c, r, "requester", ref(c, "#requester"));
    else if (src != NULL)
        put(c, r, "requester", org_ref(c, src->code, src->name, "source.org"));
    json_t *perf = new_arr(c);
    for (size_t i = 0; i < ev->n_destinations; i++)
        if (ev->destinations[i] != NULL)
            push(c, perf,
                 org_ref(c, ev->destinations[i]->code,
                         ev->destinations[i]->name, "destinations"));
    put_arr(c, r, "performer", perf);
    if (has(ev->reason)) {
        json_t *reasons = new_arr(c);
        push(c, reasons, text_concept(c, ev->reason, "reason"));
        put(c, r, "reasonCode", reasons);
    }
    if (cs != NULL) {
        json_t *sup = new_arr(c);
        push(c, sup, ref(c, "#consent"));
        put(c, r, "supportingInfo", sup);
    }
    json_t *notes = new_arr(c);
    add_note(c, notes, "Clinical: ", ev->clinical_details, "clinical_details");
    add_note(c, notes, "Social: ", ev->social_details, "social_details");
    add_note(c, notes, "Access: ", ev->access_notes, "access_notes");
    add_note(c, notes, "Preferred contact: ", rf->preferred_contact,
             "referral.preferred_contact");
    put_arr(c, r, "note", notes);
    return r;
}

/* ---------------------------------------------------- equipment order */

static json_t *
quantity_param(octx *c, uint32_t q)
{
    json_t *pm = new_obj(c);
    put(c, pm, "code",
        concept(c, hsys(c, "/CodeSystem/device-parameter"), "quantity",
                "Quantity", "parameter"));
    json_t *vq = new_obj(c);
    put(c, vq, "value", json_integer(q > 0 ? q : 1));
    put(c, vq, "unit", jstr(c, "each", "unit"));
    put(c, pm, "valueQuantity", vq);
    return pm;
}

/* Is the delivery address the patient's own (then no parameter is
 * needed, domain 6.3)? */
static bool
address_is_patients(const Handover__Address *a, const Handover__Patient *pt)
{
    if (a == NULL)
        return true;
    if (pt == NULL || a->n_lines != pt->n_address_lines ||
        strcmp(a->postcode, pt->postcode) != 0)
        return false;
    for (size_t i = 0; i < a->n_lines; i++)
        if (strcmp(a->lines[i], pt->address_lines[i]) != 0)
            return false;
    return true;
}

/* The delivery-address parameter: lines then postcode, one per line, as
 * fhir_in reads it. */
static json_t *
address_param(octx *c, const Handover__Address *a)
{
    size_t cap = strlen(a->postcode) + 1;
    for (size_t i = 0; i < a->n_lines; i++)
        cap += strlen(a->lines[i]) + 1;
    char *text = malloc(cap);
    if (text == NULL) {
        c->oom = true;
        return NULL;
    }
    size_t k = 0;
    for (size_t i = 0; i < a->n_lines; i++)
        k += (size_t)snprintf(text + k, cap - k, "%s\n", a->lines[i]);
    snprintf(text + k, cap - k, "%s", a->postcode);
    json_t *pm = new_obj(c);
    put(c, pm, "code",
        concept(c, hsys(c, "/CodeSystem/device-parameter"), "delivery-address",
                "Delivery address", "parameter"));
    put(c, pm, "valueCodeableConcept",
        text_concept(c, text, "equipment_order.delivery_address"));
    free(text);
    return pm;
}

static json_t *
device_request(octx *c, const Handover__EquipmentItem *it, const char *id,
               const char *patient_url, bool first)
{
    const Handover__Event *ev = c->ev;
    const Handover__EquipmentOrder *o = ev->equipment_order;
    const Handover__OrgRef *src = ev->source != NULL ? ev->source->org : NULL;
    json_t *r = resource(c, "DeviceRequest", id);
    json_t *ids = new_arr(c);
    char urn[46];
    snprintf(urn, sizeof urn, "urn:uuid:%s", id);
    push(c, ids, identifier(c, jstr(c, SYS_URI, "system"), urn, "id"));
    if (has(it->line_ref)) {
        json_t *lr = identifier(c, hsys(c, "/Id/source-ref"), it->line_ref,
                                "equipment_order.items.line_ref");
        if (src != NULL)
            put(c, lr, "assigner",
                org_ref(c, src->code, src->name, "source.org"));
        push(c, ids, lr);
    }
    if (has(o->order_ref)) {
        json_t *orf = identifier(c, hsys(c, "/Id/order-ref"), o->order_ref,
                                 "equipment_order.order_ref");
        if (src != NULL)
            put(c, orf, "assigner",
                org_ref(c, src->code, src->name, "source.org"));
        push(c, ids, orf);
    }
    put(c, r, "identifier", ids);
    put(c, r, "groupIdentifier", event_identifier(c));
    put(c, r, "status", jstr(c, "active", "status"));
    put(c, r, "intent", jstr(c, "order", "intent"));
    put_s(c, r, "priority", fhir_priority(c), "priority");
    put(c, r, "codeCodeableConcept",
        concept(c, hsys(c, "/CodeSystem/ces-catalogue"), it->item_code,
                it->description, "equipment_order.items"));
    json_t *params = new_arr(c);
    push(c, params, quantity_param(c, it->quantity));
    if (!address_is_patients(o->delivery_address, ev->patient))
        push(c, params, address_param(c, o->delivery_address));
    put(c, r, "parameter", params);
    put(c, r, "subject", ref(c, patient_url));
    if (has(o->required_by)) {
        if (hov_date_valid(o->required_by)) {
            json_t *per = new_obj(c);
            put_s(c, per, "end", o->required_by, "required_by");
            put(c, r, "occurrencePeriod", per);
        } else {
            fail(c, "equipment_order.required_by is not a date");
        }
    }
    put_stamp(c, r, "authoredOn", ev->occurred_at, false, "occurred_at");
    put(c, r, "requester",
        person_ref(c, o->prescriber, "equipment_order.prescriber"));
    if (ev->n_destinations > 0 && ev->destinations[0] != NULL)
        put(c, r, "performer",
            org_ref(c, ev->destinations[0]->code, ev->destinations[0]->name,
                    "destinations"));
    if (first && has(ev->reason)) {
        json_t *reasons = new_arr(c);
        push(c, reasons, text_concept(c, ev->reason, "reason"));
        put(c, r, "reasonCode", reasons);
    }
    json_t *notes = new_arr(c);
    if (first)
        add_note(c, notes, "", ev->access_notes, "access_notes");
    add_note(c, notes, "", it->notes, "equipment_order.items.notes");
    put_arr(c, r, "note", notes);
    return r;
}

static json_t *
order_bundle(octx *c)
{
    const Handover__EquipmentOrder *o = c->ev->equipment_order;
    if (has(o->action) && strcmp(o->action, "deliver") != 0) {
        fail(c,
             "equipment_order.action %s has no FHIR form agreed with GP "
             "systems: only deliveries are sent",
             strcmp(o->action, "collect") == 0 ? "collect" : "(unknown)");
        return NULL;
    }
    if (o->n_items == 0 || o->n_items > 50) {
        fail(c, "equipment_order has %zu item lines, not 1 to 50", o->n_items);
        return NULL;
    }
    char mh[46], pat[46];
    char(*lines)[46] = calloc(o->n_items, sizeof *lines);
    if (lines == NULL) {
        c->oom = true;
        return NULL;
    }
    entry_url(c, "MessageHeader", mh);
    entry_url(c, "Patient", pat);
    for (size_t i = 0; i < o->n_items; i++) {
        char name[48];
        snprintf(name, sizeof name, "DeviceRequest/%zu", i + 1);
        entry_url(c, name, lines[i]);
    }
    json_t *entries = new_arr(c);
    add_entry(c, entries, mh,
              message_header(c, mh + 9, "equipment-order", "Equipment order",
                             lines, o->n_items));
    add_entry(c, entries, pat, patient(c, pat + 9));
    for (size_t i = 0; i < o->n_items; i++) {
        if (o->items[i] == NULL) {
            fail(c, "equipment_order.items[%zu] is missing", i);
            continue;
        }
        add_entry(c, entries, lines[i],
                  device_request(c, o->items[i], lines[i] + 9, pat, i == 0));
    }
    free(lines);
    return message_bundle(c, entries);
}

/* ------------------------------------------------------------- the map */

int
fhir_out(const Handover__Event *ev, const fhir_out_opts *o, fhir_out_result *r,
         char *why, size_t whysz)
{
    static const fhir_out_opts no_opts = {0};
    memset(r, 0, sizeof *r);
    if (why != NULL && whysz > 0)
        why[0] = '\0';
    octx c = {
        .ev = ev, .o = o != NULL ? o : &no_opts, .why = why, .whysz = whysz};
    c.base = c.o->base != NULL ? c.o->base : DEFAULT_BASE;
    if (ev == NULL || !hov_uuid_valid(ev->event_id)) {
        if (why != NULL && whysz > 0)
            snprintf(why, whysz, "event has no valid event_id");
        return -1;
    }
    if (strlen(c.base) > BASE_MAX) {
        fail(&c, "the configured base is longer than %d characters", BASE_MAX);
        return -1;
    }

    json_t *doc = NULL;
    const char *path = NULL;
    switch (ev->body_case) {
    case HANDOVER__EVENT__BODY_DISCHARGE:
        if (ev->discharge != NULL) {
            doc = discharge_bundle(&c);
            path = "Bundle";
        }
        break;
    case HANDOVER__EVENT__BODY_OUTCOME:
        if (ev->outcome != NULL) {
            doc = task(&c);
            path = "Task";
        }
        break;
    case HANDOVER__EVENT__BODY_REFERRAL:
        if (ev->referral != NULL) {
            doc = service_request(&c);
            path = "ServiceRequest";
        }
        break;
    case HANDOVER__EVENT__BODY_EQUIPMENT_ORDER:
        if (ev->equipment_order != NULL) {
            doc = order_bundle(&c);
            path = "Bundle";
        }
        break;
    default:
        break;
    }
    if (path == NULL && !c.failed)
        fail(&c, "the event has no body the GP interface carries");
    if (doc == NULL && !c.failed && !c.oom)
        c.oom = true; /* every NULL document without a reason is memory */
    char *body = NULL;
    if (!c.failed && !c.oom) {
        body = json_dumps(doc, JSON_COMPACT);
        if (body == NULL)
            c.oom = true;
    }
    json_decref(doc);
    if (c.oom && !c.failed) {
        free(body);
        if (why != NULL && whysz > 0)
            snprintf(why, whysz, "out of memory");
        return -2;
    }
    if (c.failed) {
        free(body);
        return -1;
    }
    r->body = body;
    r->len = strlen(body);
    hov_strlcpy(r->path, sizeof r->path, path);
    snprintf(r->if_none_exist, sizeof r->if_none_exist,
             "identifier=%s/Id/event-id|%s", c.base, ev->event_id);
    return 0;
}

void
fhir_out_result_free(fhir_out_result *r)
{
    if (r == NULL)
        return;
    free(r->body);
    r->body = NULL;
    r->len = 0;
}
