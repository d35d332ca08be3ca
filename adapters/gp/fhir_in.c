/* Inbound mapping: FHIR R4 JSON from a GP system to handover.Event (domain
 * brief 6.1 to 6.5).
 *
 * The walk reads each resource in the element order of its R4 definition,
 * the order FHIR JSON writers emit, and files every 422 problem under a key:
 * the position of the resource that holds the element in the request, then
 * the order found. So the OperationOutcome lists problems in document order
 * even when one resource is read while another is being mapped (a
 * ServiceRequest's subject is a Patient further down the Bundle). A 400 (a
 * value of the wrong JSON type) replaces everything filed so far and stops
 * the walk: every accessor returns "absent" from then on.
 *
 * Conventions this file settles where the brief leaves a choice (each is
 * also in docs/architecture.md):
 *  - Diagnostics repeat codes, identifiers, references and the NHS number,
 *    never a name, date of birth, address, phone number or free text.
 *  - The business identifier is the first identifier whose system is not
 *    one of Handover's (<base>/Id/...) and that has a system and a value.
 *    Its system may not contain '|' (not a URI character; it separates the
 *    parts of the event id's name) and is at most 200 characters.
 *  - A dateTime with a date alone (authoredOn) is 00:00 Europe/London, as
 *    HL7 dates are (domain 5.4 RF1-7). A time needs an offset (R4).
 *  - occurred_at: ServiceRequest and DeviceRequest authoredOn; Task
 *    lastModified, else executionPeriod.end, else authoredOn; failing
 *    those, recorded_at (Bundle.timestamp or meta.lastUpdated).
 *  - Patient: the official name (else the first not marked old); the home
 *    address (else the first not marked old), its lines then city then
 *    district as address_lines; the first phone used for home, else mobile,
 *    else work, else any; the first generalPractitioner with an ODS code.
 *  - source.author: the requester. A Practitioner (or PractitionerRole's
 *    practitioner) in the request gives "given family", its GMP, GMC, NMC
 *    or HCPC number and phone; a PractitionerRole adds its role text and
 *    organisation; otherwise the reference's display is the name and a
 *    register identifier on the reference the id.
 *  - ServiceRequest.note: "Clinical:" and "Social:" (6.3), and "Access:"
 *    and "Preferred contact:" (what fhir_out writes for access_notes and
 *    preferred_contact) choose the field, in any case, and are dropped;
 *    other notes are clinical_details. Several notes of one kind are
 *    joined with a line break.
 *  - An NHS number that fails its check is reported in the words of
 *    hov_nhs_number_check, expected check digit included, as domain 6.5's
 *    example does (adapters/nursing leaves the digit out of its ACKs).
 *  - Consent basis: performer = the patient gives explicit; a practitioner
 *    performer with a policyRule naming the Mental Capacity Act gives
 *    best_interests; anything else is refused (422 business-rule) rather
 *    than guessed. A Consent that is not active counts as none. When its
 *    provision names organisations, every performer of the referral must
 *    be among them. Its notes are the category text.
 *  - A referral needs consent (explicit or best_interests, with dateTime)
 *    when its service goes to voluntary organisations (social-prescribing,
 *    home-from-hospital) or a performer has a local: code; such a referral
 *    also needs a performer (domain 3.1).
 *  - ServiceRequest.intent order (or its specialisation original-order);
 *    status active. DeviceRequest status active when sent.
 *  - DeviceRequest: quantity 1 when no quantity parameter is sent (as in
 *    council files, 7.2); a delivery-address parameter is lines then a
 *    postcode, separated by line breaks (or commas when there is no line
 *    break). Several lines: required_by is the earliest date, the priority
 *    the most urgent stated, else derived (3.5); the order's reason and
 *    access notes are the distinct texts of the lines joined. Every line
 *    must name the same patient. Every DeviceRequest entry of a message
 *    Bundle is a line of the order (a line left out of focus is never
 *    dropped). FHIR has no collection form: action is deliver.
 *  - Task: businessStatus decides the status; Task.status must be the one
 *    domain 6.3 pairs with it (in-progress is also accepted with
 *    accepted). Without businessStatus, Task.status accepted, rejected or
 *    cancelled is taken as the same outcome status. Outcome statuses that
 *    name item lines (delivered, cannot-deliver, collected) are refused:
 *    this interface has no element for item lines. The first note's
 *    author is source.author.
 */
#include "fhir_in.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handover/ident.h"
#include "handover/map.h"
#include "handover/pb.h"
#include "handover/str.h"
#include "handover/timeutil.h"

/* How much of a bad code or identifier a diagnostic repeats. */
#define ECHO_MAX 40

/* Domain 3.1, 3.3, 3.4, 3.5: limits in characters. */
#define NAME_MAX_CHARS    35
#define ADDRESS_MAX_LINES 5
#define PHONE_MAX         35
#define PERSON_NAME_MAX   100
#define PERSON_ROLE_MAX   70
#define PERSON_ID_MAX     32
#define SYSTEM_NAME_MAX   64
#define REASON_MAX        2000
#define DETAILS_MAX       8000
#define ACCESS_MAX        2000
#define PREFERRED_MAX     200
#define OUTCOME_TEXT_MAX  500
#define CONSENT_BY_MAX    100
#define CONSENT_NOTES_MAX 500
/* Organisation display names have no limit in the brief; a person's name
 * limit keeps them printable on every partner's screen. */
#define ORG_NAME_MAX 100
/* Catalogue codes: as long as any identifier Handover carries. */
#define ITEM_CODE_MAX FHIR_IN_VALUE_MAX
#define MAX_ITEMS     50

/* Bounds that keep one request's work linear in its size: a message
 * carries a handful of resources, and every reference resolved is a
 * lookup. */
#define MAX_ENTRIES   1000
#define MAX_CONTAINED 100
#define MAX_REFS      50

/* Content-Type values longer than this are not read. */
#define MEDIA_TYPE_MAX 256

#define SYS_NHS "https://fhir.nhs.uk/Id/nhs-number"
#define SYS_ODS "https://fhir.nhs.uk/Id/ods-organization-code"
#define EXT_NHS_STATUS                                                         \
    "https://fhir.hl7.org.uk/StructureDefinition/"                             \
    "Extension-UKCore-NHSNumberVerificationStatus"
#define SYS_NHS_STATUS                                                         \
    "https://fhir.hl7.org.uk/CodeSystem/"                                      \
    "UKCore-NHSNumberVerificationStatusEngland"

/* Handover's own systems, under the configured base (domain 6.2). */
#define H_ID_PREFIX     "/Id/"
#define H_EVENT_ID      "/Id/event-id"
#define H_LOCAL_ORG     "/Id/local-organisation"
#define H_EVENT_TYPE    "/CodeSystem/event-type"
#define H_SERVICE       "/CodeSystem/service"
#define H_OUTCOME       "/CodeSystem/outcome-status"
#define H_REASON        "/CodeSystem/outcome-reason"
#define H_CATALOGUE     "/CodeSystem/ces-catalogue"
#define H_DEVICE_PARAM  "/CodeSystem/device-parameter"
#define H_LOCAL_PREFIX  "local:"
#define LOCAL_PREFIX_SZ 6

static const char *const default_gp_orgs[] = {"Z99001", "Z99002", "Z99003",
                                              NULL};

/* Professional registers (domain 4.3, 6.2): an author's id. */
static const char *const professional_systems[] = {
    "https://fhir.hl7.org.uk/Id/gmp-number",
    "https://fhir.hl7.org.uk/Id/gmc-number",
    "https://fhir.hl7.org.uk/Id/nmc-number",
    "https://fhir.hl7.org.uk/Id/hcpc-number", NULL};

/* Domain 3.5. The hub checks the same list (hub/validate.c); fhir_in
 * checks it too so the sender learns the element (ServiceRequest.code). */
static const char *const services[] = {"district-nursing",
                                       "urgent-community-response",
                                       "community-therapy",
                                       "adult-social-care-assessment",
                                       "carers-assessment",
                                       "reablement",
                                       "social-prescribing",
                                       "home-from-hospital",
                                       NULL};

/* Services that go to voluntary organisations (domain 3.5 routing). */
static const char *const voluntary_services[] = {"social-prescribing",
                                                 "home-from-hospital", NULL};

static const char *const sexes[] = {"male", "female", "other", "unknown", NULL};

static const char *const nhs_statuses[] = {"01", "02", "03", "04", "05",
                                           "06", "07", "08", NULL};

/* FHIR request-priority to canonical priority (domain 6.3). */
typedef struct code_pair {
    const char *fhir, *canon;
} code_pair;

static const code_pair priorities[] = {
    {"stat", "two_hour_crisis"},
    {"urgent", "urgent"},
    {"asap", "urgent"},
    {"routine", "routine"},
};
#define N_PRIORITIES (sizeof priorities / sizeof priorities[0])

/* Domain 3.6 reason codes. */
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

/* Domain 6.3: canonical outcome status, businessStatus code, the
 * Task.status values that fit it. fhir_out.c holds the same table for the
 * other direction. */
typedef struct task_status {
    const char *canon;
    const char *business;
    const char *task[3];
    const char *const *reasons; /* NULL: the status takes no reason */
    bool items;                 /* names item lines */
} task_status;

static const task_status task_statuses[] = {
    {"acknowledged", "acknowledged", {"completed", NULL}, NULL, false},
    {"accepted", "accepted", {"accepted", "in-progress", NULL}, NULL, false},
    {"rejected", "rejected", {"rejected", NULL}, rejected_reasons, false},
    {"completed", "completed", {"completed", NULL}, NULL, false},
    {"cancelled", "cancelled", {"cancelled", NULL}, cancelled_reasons, false},
    {"delivered", "delivered", {"completed", NULL}, NULL, true},
    {"collected", "collected", {"completed", NULL}, NULL, true},
    {"cannot_deliver",
     "cannot-deliver",
     {"failed", NULL},
     cannot_deliver_reasons,
     true},
};
#define N_TASK_STATUSES (sizeof task_statuses / sizeof task_statuses[0])

/* ------------------------------------------------------------- types */

typedef enum ev_kind {
    KIND_NONE,
    KIND_REFERRAL,
    KIND_ORDER,
    KIND_OUTCOME,
    KIND_DISCHARGE,
} ev_kind;

/* A resource in the request: the posted one, a Bundle entry's, or one
 * contained in either. */
typedef struct res {
    json_t *obj;
    const char *type;            /* resourceType, borrowed from obj */
    const char *id;              /* Resource.id, or NULL */
    const struct res *container; /* NULL: not a contained resource */
    size_t contained_at;         /* its contained resources: res[at..] */
    size_t ncontained;
    uint32_t ord; /* position in the request, for document order */
    char abs[64]; /* FHIRPath from the root of the request */
} res;

/* Where an element is, as a chain of steps up to the resource that holds
 * it. Built on the stack as the walk descends; turned into text only when
 * an issue is filed. */
typedef struct loc {
    const struct loc *up;
    const char *key; /* element name; NULL: idx is an array index */
    size_t idx;
    const res *rs; /* the root step only */
} loc;

#define ROOT(r)                                                                \
    {                                                                          \
        NULL, NULL, 0, (r)                                                     \
    }
#define AT(u, k)                                                               \
    {                                                                          \
        (u), (k), 0, NULL                                                      \
    }
#define AT_I(u, i)                                                             \
    {                                                                          \
        (u), NULL, (i), NULL                                                   \
    }

/* Free text joined from several elements (notes, reasons), one line break
 * between parts. */
typedef struct acc {
    char *p;
    size_t len, cap;
} acc;

typedef struct ctx {
    const fhir_in_opts *o;
    fhir_in_result *r;
    const char *base;
    size_t base_len;
    const char *const *gp_orgs;
    char today[11];
    int status; /* 400, 413 or 415 once the walk has stopped */
    bool oom;
    uint32_t seq;
    uint64_t keys[FHIR_IN_MAX_ISSUES];

    res *res;
    size_t nres;
    const res **entries; /* Bundle.entry[i].resource, or NULL */
    size_t nentries;
    res bundle;    /* holder of Bundle-level issues */
    hov_map *refs; /* Bundle: fullUrl and "Type/id" to res */
    bool in_bundle;

    Handover__Event *ev;
    ev_kind kind;
    const res *patient;   /* the subject, once mapped */
    const char *gp_name;  /* the registered practice's display */
    bool org_from_header; /* source.org came from MessageHeader.sender */
    bool order_group;     /* the order's first line has a groupIdentifier */
    char recorded_at[40];
    char ident[FHIR_IN_IDENT_CAP]; /* "system|value" for the event id */
    const char *focal_type;
} ctx;

/* ---------------------------------------------------------- helpers */

static bool
is_empty(const char *s)
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

static char
lower(char ch)
{
    return ch >= 'A' && ch <= 'Z' ? (char)(ch - 'A' + 'a') : ch;
}

/* ASCII case-insensitive comparison of s[0..n) with the C string lit. */
static bool
ieq_n(const char *s, size_t n, const char *lit)
{
    size_t i = 0;
    for (; i < n && lit[i] != '\0'; i++)
        if (lower(s[i]) != lower(lit[i]))
            return false;
    return i == n && lit[i] == '\0';
}

/* Does s contain needle, ignoring ASCII case? */
static bool
icontains(const char *s, const char *needle)
{
    size_t nl = strlen(needle);
    for (; *s != '\0'; s++)
        if (strlen(s) >= nl && ieq_n(s, nl, needle))
            return true;
    return false;
}

static void
echo(const char *s, char *out, size_t outsz)
{
    hov_echo(out, outsz, s, ECHO_MAX);
}

/* Is s <base><suffix>, one of Handover's systems? */
static bool
is_hsys(const ctx *c, const char *s, const char *suffix)
{
    return s != NULL && strncmp(s, c->base, c->base_len) == 0 &&
           strcmp(s + c->base_len, suffix) == 0;
}

/* Is s under <base>/Id/, an identifier system Handover issues? */
static bool
is_handover_id_system(const ctx *c, const char *s)
{
    return s != NULL && strncmp(s, c->base, c->base_len) == 0 &&
           strncmp(s + c->base_len, H_ID_PREFIX, strlen(H_ID_PREFIX)) == 0;
}

/* ------------------------------------------------------------ memory */

static char *
xstrdup(ctx *c, const char *s)
{
    if (s == NULL)
        return NULL;
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p == NULL) {
        c->oom = true;
        return NULL;
    }
    memcpy(p, s, n);
    return p;
}

static void
set(ctx *c, char **field, const char *s)
{
    hov_pb_take(field, xstrdup(c, s));
}

/* Allocate a sub-message and run its generated init, which points every
 * string at protobuf_c_empty_string (never freed by free_unpacked). */
#define NEW_MSG(c, type, init_fn) ((type *)new_msg((c), sizeof(type), init_fn))

static void *
new_msg(ctx *c, size_t size, void (*init)(void *))
{
    void *p = malloc(size);
    if (p == NULL) {
        c->oom = true;
        return NULL;
    }
    init(p);
    return p;
}

static void
init_event(void *p)
{
    handover__event__init(p);
}

static void
init_source(void *p)
{
    handover__source__init(p);
}

static void
init_org_ref(void *p)
{
    handover__org_ref__init(p);
}

static void
init_person(void *p)
{
    handover__person__init(p);
}

static void
init_patient(void *p)
{
    handover__patient__init(p);
}

static void
init_consent(void *p)
{
    handover__consent__init(p);
}

static void
init_referral(void *p)
{
    handover__referral__init(p);
}

static void
init_order(void *p)
{
    handover__equipment_order__init(p);
}

static void
init_item(void *p)
{
    handover__equipment_item__init(p);
}

static void
init_address(void *p)
{
    handover__address__init(p);
}

static void
init_outcome(void *p)
{
    handover__outcome__init(p);
}

/* Arrays are sized up front from the JSON array they come from (an upper
 * bound), so filling a typed array needs no pointer casts. */
static void *
new_array(ctx *c, size_t n, size_t elsz)
{
    void *p = calloc(n > 0 ? n : 1, elsz);
    if (p == NULL)
        c->oom = true;
    return p;
}

static void
acc_add(ctx *c, acc *a, const char *t)
{
    size_t tl = strlen(t);
    size_t need = a->len + (a->len > 0 ? 1 : 0) + tl + 1;
    if (need > a->cap) {
        size_t cap = a->cap > 0 ? a->cap : 256;
        while (cap < need)
            cap *= 2;
        char *p = realloc(a->p, cap);
        if (p == NULL) {
            c->oom = true;
            return;
        }
        a->p = p;
        a->cap = cap;
    }
    if (a->len > 0)
        a->p[a->len++] = '\n';
    memcpy(a->p + a->len, t, tl + 1);
    a->len += tl;
}

/* Is t already one of the parts of a (for distinct joins)? */
static bool
acc_has(const acc *a, const char *t)
{
    size_t tl = strlen(t);
    for (size_t i = 0; i < a->len;) {
        const char *nl = memchr(a->p + i, '\n', a->len - i);
        size_t end = nl != NULL ? (size_t)(nl - a->p) : a->len;
        if (end - i == tl && memcmp(a->p + i, t, tl) == 0)
            return true;
        i = end + 1;
    }
    return false;
}

/* Move the text into *field; an empty accumulator changes nothing. */
static void
acc_take(acc *a, char **field)
{
    if (a->p != NULL && a->len > 0) {
        hov_pb_take(field, a->p);
        a->p = NULL;
    }
    free(a->p);
    memset(a, 0, sizeof *a);
}

/* ------------------------------------------------------------ issues */

static const res *
loc_root(const loc *at)
{
    while (at->up != NULL)
        at = at->up;
    return at->rs;
}

/* The path of at, from its resource (absolute false: "Patient.name[0]")
 * or from the root of the request. Returns the length written. */
static size_t
loc_fmt(const loc *at, bool absolute, char *out, size_t cap)
{
    size_t n;
    if (at->up == NULL) {
        const res *r = at->rs;
        n = hov_strlcpy(out, cap, absolute ? r->abs : r->type);
    } else {
        n = loc_fmt(at->up, absolute, out, cap);
        if (n >= cap)
            n = cap - 1;
        int w = at->key != NULL ? snprintf(out + n, cap - n, ".%s", at->key)
                                : snprintf(out + n, cap - n, "[%zu]", at->idx);
        n += w > 0 ? (size_t)w : 0;
    }
    return n < cap ? n : cap - 1;
}

/* Fill issue is from the message and the location at (NULL: the request
 * as a whole), extended by key when key is not NULL. */
static void
fill_issue(fhir_in_issue *is, const char *code, const loc *at, const char *key,
           const char *fmt, va_list ap)
{
    memset(is, 0, sizeof *is);
    is->severity = "error";
    is->code = code;
    vsnprintf(is->diagnostics, sizeof is->diagnostics, fmt, ap);
    if (at == NULL)
        return;
    loc leaf = AT(at, key);
    const loc *l = key != NULL ? &leaf : at;
    loc_fmt(l, false, is->expression[0], sizeof is->expression[0]);
    loc_fmt(l, true, is->expression[1], sizeof is->expression[1]);
    if (strcmp(is->expression[0], is->expression[1]) == 0)
        is->expression[1][0] = '\0';
}

/* File a 422 problem in document order: by the position of the resource
 * that holds the element, then the order found. Keeps the first
 * FHIR_IN_MAX_ISSUES in that order and counts the rest. */
static void issue(ctx *c, const char *code, const loc *at, const char *key,
                  const char *fmt, ...) HOV_PRINTF(5, 6);

static void
issue(ctx *c, const char *code, const loc *at, const char *key, const char *fmt,
      ...)
{
    if (c->status != 0)
        return;
    fhir_in_outcome *oo = &c->r->oo;
    uint32_t ord = at != NULL ? loc_root(at)->ord : 0;
    uint64_t k = (uint64_t)ord << 32 | c->seq++;
    size_t pos = oo->n;
    while (pos > 0 && c->keys[pos - 1] > k)
        pos--;
    if (pos >= FHIR_IN_MAX_ISSUES) {
        oo->more++;
        return;
    }
    if (oo->n == FHIR_IN_MAX_ISSUES)
        oo->more++; /* the last one kept drops out */
    size_t n = oo->n < FHIR_IN_MAX_ISSUES ? oo->n : FHIR_IN_MAX_ISSUES - 1;
    memmove(&oo->issues[pos + 1], &oo->issues[pos],
            (n - pos) * sizeof oo->issues[0]);
    memmove(&c->keys[pos + 1], &c->keys[pos], (n - pos) * sizeof c->keys[0]);
    va_list ap;
    va_start(ap, fmt);
    fill_issue(&oo->issues[pos], code, at, key, fmt, ap);
    va_end(ap);
    c->keys[pos] = k;
    oo->n = n + 1;
}

/* A problem that stops everything (400, 413, 415): it replaces what was
 * filed, because nothing found before it can be trusted either. */
static void stop(ctx *c, int status, const char *code, const loc *at,
                 const char *key, const char *fmt, ...) HOV_PRINTF(6, 7);

static void
stop(ctx *c, int status, const char *code, const loc *at, const char *key,
     const char *fmt, ...)
{
    if (c->status != 0)
        return;
    c->status = status;
    fhir_in_outcome *oo = &c->r->oo;
    va_list ap;
    va_start(ap, fmt);
    fill_issue(&oo->issues[0], code, at, key, fmt, ap);
    va_end(ap);
    oo->n = 1;
    oo->more = 0;
}

/* ------------------------------------------------------- JSON access */

typedef enum jkind { J_OBJ, J_ARR, J_STR, J_NUM } jkind;

static bool
kind_ok(const json_t *v, jkind k)
{
    switch (k) {
    case J_OBJ:
        return json_is_object(v);
    case J_ARR:
        return json_is_array(v);
    case J_STR:
        return json_is_string(v);
    case J_NUM:
        return json_is_number(v);
    }
    return false;
}

static const char *
kind_name(jkind k)
{
    static const char *const names[] = {"an object", "an array", "a string",
                                        "a number"};
    return names[k];
}

static const char *
json_kind(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    default:
        return "null";
    }
}

/* R4: a value that cannot be parsed into its element fails basic
 * validation, 400 (domain 6.5). */
static void
wrong_type(ctx *c, const loc *at, jkind want, const json_t *v)
{
    char path[FHIR_IN_EXPR_CAP];
    loc_fmt(at, false, path, sizeof path);
    stop(c, 400, "structure", at, NULL, "%s must be %s, not %s", path,
         kind_name(want), json_kind(v));
}

/* Member key of obj, of JSON kind k; NULL when obj is NULL, the member is
 * absent, or the walk has stopped. Another kind (null included) stops the
 * walk with 400 structure. */
static json_t *
get(ctx *c, json_t *obj, const loc *at, const char *key, jkind k)
{
    if (c->status != 0 || obj == NULL)
        return NULL;
    json_t *v = json_object_get(obj, key);
    if (v == NULL)
        return NULL;
    if (!kind_ok(v, k)) {
        loc l = AT(at, key);
        wrong_type(c, &l, k, v);
        return NULL;
    }
    return v;
}

/* The string member key; NULL when absent or empty (R4 strings are never
 * empty, and an empty one carries nothing). */
static const char *
get_str(ctx *c, json_t *obj, const loc *at, const char *key)
{
    json_t *v = get(c, obj, at, key, J_STR);
    if (v == NULL)
        return NULL;
    const char *s = json_string_value(v);
    return s[0] != '\0' ? s : NULL;
}

/* The array member key into *out; returns its length (0 when absent). */
static size_t
get_arr(ctx *c, json_t *obj, const loc *at, const char *key, json_t **out)
{
    *out = get(c, obj, at, key, J_ARR);
    return *out != NULL ? json_array_size(*out) : 0;
}

/* Element i of the array at arr_at, of kind k. A null element is absent:
 * R4 JSON pads primitive arrays with null where only an extension is
 * sent. */
static json_t *
elem(ctx *c, json_t *arr, size_t i, const loc *arr_at, jkind k)
{
    if (c->status != 0 || arr == NULL)
        return NULL;
    json_t *v = json_array_get(arr, i);
    if (v == NULL || json_is_null(v))
        return NULL;
    if (!kind_ok(v, k)) {
        loc l = AT_I(arr_at, i);
        wrong_type(c, &l, k, v);
        return NULL;
    }
    return v;
}

static const char *
elem_str(ctx *c, json_t *arr, size_t i, const loc *arr_at)
{
    json_t *v = elem(c, arr, i, arr_at, J_STR);
    if (v == NULL)
        return NULL;
    const char *s = json_string_value(v);
    return s[0] != '\0' ? s : NULL;
}

/* The code of the first coding of the CodeableConcept cc (at) whose
 * system is sys (a full URI). *display gets its display, or cc.text.
 * Returns 1 found, 0 codings but none in sys, -1 no coding at all. */
static int
coding_in(ctx *c, json_t *cc, const loc *at, const char *sys, const char **code,
          const char **display)
{
    *code = NULL;
    if (display != NULL)
        *display = NULL;
    json_t *arr;
    size_t n = get_arr(c, cc, at, "coding", &arr);
    loc l_arr = AT(at, "coding");
    int found = -1;
    for (size_t i = 0; i < n && c->status == 0; i++) {
        json_t *cd = elem(c, arr, i, &l_arr, J_OBJ);
        if (cd == NULL)
            continue;
        loc l = AT_I(&l_arr, i);
        const char *s = get_str(c, cd, &l, "system");
        const char *v = get_str(c, cd, &l, "code");
        const char *d = get_str(c, cd, &l, "display");
        if (found < 0)
            found = 0;
        if (s != NULL && v != NULL && strcmp(s, sys) == 0 && *code == NULL) {
            *code = v;
            if (display != NULL)
                *display = d;
            found = 1;
        }
    }
    if (display != NULL && *display == NULL)
        *display = get_str(c, cc, at, "text");
    return found;
}

/* ------------------------------------------------------------ values */

/* Is s (a value for field at) longer than max characters? Files the
 * problem when it is; never repeats the text. */
static bool
too_long(ctx *c, const loc *at, const char *key, const char *s, size_t max)
{
    size_t n = hov_utf8_chars(s);
    if (n <= max)
        return false;
    char path[FHIR_IN_EXPR_CAP];
    loc leaf = AT(at, key);
    loc_fmt(key != NULL ? &leaf : at, false, path, sizeof path);
    issue(c, "value", at, key,
          "%s is %zu characters long, more than the %zu allowed", path, n, max);
    return true;
}

/* A copy of s, or NULL (filed) when longer than max characters. */
static char *
text_max(ctx *c, const loc *at, const char *key, const char *s, size_t max)
{
    if (s == NULL || too_long(c, at, key, s, max))
        return NULL;
    return xstrdup(c, s);
}

static int
digits(const char *s, size_t n)
{
    int v = 0;
    for (size_t i = 0; i < n; i++)
        v = v * 10 + (s[i] - '0');
    return v;
}

/* Canonical UTC text for unix_ms: milliseconds only when there are some,
 * so "2025-03-14T16:40:00+00:00" gives "2025-03-14T16:40:00Z". */
static void
format_utc(uint64_t ms, char out[40])
{
    char tmp[32];
    hov_rfc3339_format(ms, tmp);
    if (ms % 1000 == 0) {
        tmp[19] = 'Z';
        tmp[20] = '\0';
    }
    hov_strlcpy(out, 40, tmp);
}

/* A FHIR dateTime or instant as a canonical RFC 3339 UTC timestamp. A
 * date alone is 00:00 Europe/London (see the file comment); a year or a
 * year and month alone, or a time without an offset, cannot be placed in
 * time. Returns false when s is not usable. */
static bool
datetime_utc(const char *s, char out[40])
{
    size_t n = strlen(s);
    uint64_t ms;
    if (n == 10 && hov_date_valid(s)) {
        if (hov_london_to_ms(digits(s, 4), digits(s + 5, 2), digits(s + 8, 2),
                             0, 0, 0, 0, &ms, NULL) != 0)
            return false;
        format_utc(ms, out);
        return true;
    }
    if (n < 40 && hov_rfc3339_utc_valid(s)) {
        memcpy(out, s, n + 1);
        return true;
    }
    if (!hov_rfc3339_to_ms(s, &ms))
        return false;
    format_utc(ms, out);
    return true;
}

/* A FHIR date, or the Europe/London date of a dateTime. */
static bool
date_london(const char *s, char out[11])
{
    uint64_t ms;
    if (strlen(s) == 10 && hov_date_valid(s)) {
        memcpy(out, s, 11);
        return true;
    }
    if (!hov_rfc3339_to_ms(s, &ms))
        return false;
    hov_date_london_at(ms, out);
    return true;
}

/* The next working day (Monday to Friday) after date, as YYYY-MM-DD;
 * bank holidays are not known here. */
static bool
next_working_day(const char *date, char out[11])
{
    uint64_t ms;
    if (!hov_civil_to_ms(digits(date, 4), digits(date + 5, 2),
                         digits(date + 8, 2), 12, 0, 0, 0, 0, &ms))
        return false;
    /* 1970-01-01 was a Thursday: day 0 is weekday 4 (Sunday 0). */
    unsigned dow = (unsigned)((ms / 86400000u + 4) % 7);
    unsigned add = dow == 5 ? 3 : dow == 6 ? 2 : 1;
    char stamp[32];
    hov_rfc3339_format(ms + (uint64_t)add * 86400000u, stamp);
    memcpy(out, stamp, 10);
    out[10] = '\0';
    return true;
}

/* ---------------------------------------------------------- resources */

/* The resource a reference names, seen from the resource that holds the
 * reference: "#id" a resource contained in the same container ("#" the
 * container itself), otherwise a Bundle entry by fullUrl, or by
 * "Type/id". NULL when it resolves to nothing in the request. */
static const res *
resolve(const ctx *c, const res *from, const char *ref)
{
    if (ref == NULL)
        return NULL;
    if (ref[0] == '#') {
        const res *box = from->container != NULL ? from->container : from;
        if (ref[1] == '\0')
            return box;
        for (size_t k = 0; k < box->ncontained; k++) {
            const res *r = &c->res[box->contained_at + k];
            if (r->id != NULL && strcmp(r->id, ref + 1) == 0)
                return r;
        }
        return NULL;
    }
    if (c->refs == NULL)
        return NULL;
    return hov_map_get(c->refs, ref, strlen(ref));
}

static bool
is_type(const res *r, const char *type)
{
    return r != NULL && strcmp(r->type, type) == 0;
}

/* Record resource obj (at, whose resourceType is already read) as r. */
static void
res_init(res *r, json_t *obj, const char *type, const res *container,
         uint32_t ord, const char *abs)
{
    memset(r, 0, sizeof *r);
    r->obj = obj;
    r->type = type;
    r->container = container;
    r->ord = ord;
    hov_strlcpy(r->abs, sizeof r->abs, abs);
}

/* The resourceType of obj (at), which must be there: a resource without
 * one is not a FHIR resource (400 invalid). */
static const char *
resource_type(ctx *c, json_t *obj, const loc *at)
{
    const char *t = get_str(c, obj, at, "resourceType");
    if (t == NULL && c->status == 0)
        stop(c, 400, "invalid", at, "resourceType",
             "resourceType is missing: every resource names its type");
    return t;
}

/* Upper bound of the resources held by one top-level resource obj. */
static size_t
count_contained(json_t *obj)
{
    json_t *arr = json_object_get(obj, "contained");
    return json_is_array(arr) ? json_array_size(arr) : 0;
}

/* Index the resources contained in top (c->res[*next...]), assigning
 * their positions before top's own, as R4 JSON writes contained first. */
static void
index_contained(ctx *c, res *top, uint32_t *ord)
{
    loc at = ROOT(top);
    json_t *arr;
    size_t n = get_arr(c, top->obj, &at, "contained", &arr);
    loc l_arr = AT(&at, "contained");
    top->contained_at = c->nres;
    if (n > MAX_CONTAINED) {
        issue(c, "value", &at, "contained",
              "%s.contained holds %zu resources, more than the %d Handover "
              "reads",
              top->type, n, MAX_CONTAINED);
        n = MAX_CONTAINED;
    }
    for (size_t i = 0; i < n && c->status == 0; i++) {
        json_t *obj = elem(c, arr, i, &l_arr, J_OBJ);
        if (obj == NULL)
            continue;
        loc l = AT_I(&l_arr, i);
        const char *type = resource_type(c, obj, &l);
        if (type == NULL)
            return;
        /* i < MAX_CONTAINED and top->abs fits 48: the path fits. */
        char abs[96];
        snprintf(abs, sizeof abs, "%s.contained[%u]", top->abs, (unsigned)i);
        res *r = &c->res[c->nres++];
        res_init(r, obj, type, top, (*ord)++, abs);
        r->id = get_str(c, obj, &l, "id");
    }
    top->ncontained = c->nres - top->contained_at;
}

/* The request is one resource (ServiceRequest, DeviceRequest, Task). */
static const res *
index_single(ctx *c, json_t *root, const char *type)
{
    size_t cap = 1 + count_contained(root);
    c->res = new_array(c, cap, sizeof *c->res);
    if (c->res == NULL)
        return NULL;
    res *top = &c->res[c->nres++];
    res_init(top, root, type, NULL, 0, type);
    uint32_t ord = 0;
    index_contained(c, top, &ord);
    top->ord = ord; /* after its contained resources */
    return c->status == 0 ? top : NULL;
}

static void
map_put(ctx *c, const char *key, size_t klen, const res *r)
{
    hov_error err = {0};
    /* The map stores void *; resolution hands res back as const. */
    if (hov_map_put(c->refs, key, klen, (void *)(uintptr_t)r, &err) != HOV_OK)
        c->oom = true;
}

/* Index Bundle.entry: each entry's resource and its contained ones, by
 * fullUrl and by Type/id. Convention (domain 6.4): every entry has a
 * fullUrl, unique in the Bundle (R4 bdl-7). */
static void
index_bundle(ctx *c, json_t *root)
{
    loc at = ROOT(&c->bundle);
    json_t *arr;
    size_t n = get_arr(c, root, &at, "entry", &arr);
    loc l_arr = AT(&at, "entry");
    if (n > MAX_ENTRIES) {
        issue(c, "value", &at, "entry",
              "Bundle.entry holds %zu entries, more than the %d Handover "
              "reads",
              n, MAX_ENTRIES);
        n = MAX_ENTRIES;
    }
    size_t cap = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(arr, i);
        json_t *r = json_is_object(e) ? json_object_get(e, "resource") : NULL;
        cap += 1 + (json_is_object(r) ? count_contained(r) : 0);
    }
    hov_error err = {0};
    c->res = new_array(c, cap, sizeof *c->res);
    c->entries = new_array(c, n, sizeof *c->entries);
    if (c->oom || hov_map_new(&c->refs, &err) != HOV_OK) {
        c->oom = true;
        return;
    }
    c->nentries = n;
    uint32_t ord = 1; /* 0 is the Bundle's own elements */
    for (size_t i = 0; i < n && c->status == 0 && !c->oom; i++) {
        json_t *e = elem(c, arr, i, &l_arr, J_OBJ);
        loc l = AT_I(&l_arr, i);
        const char *url = get_str(c, e, &l, "fullUrl");
        json_t *obj = get(c, e, &l, "resource", J_OBJ);
        if (e == NULL || c->status != 0)
            continue;
        if (obj == NULL) {
            issue(c, "required", &l, "resource",
                  "Bundle.entry[%zu] has no resource", i);
            continue;
        }
        loc l_res = AT(&l, "resource");
        const char *type = resource_type(c, obj, &l_res);
        if (type == NULL)
            return;
        char abs[48];
        snprintf(abs, sizeof abs, "Bundle.entry[%u].resource", (unsigned)i);
        res *r = &c->res[c->nres++];
        res_init(r, obj, type, NULL, 0, abs);
        r->id = get_str(c, obj, &l_res, "id");
        index_contained(c, r, &ord);
        r->ord = ord++;
        c->entries[i] = r;
        if (url == NULL) {
            issue(c, "required", &l, "fullUrl",
                  "Bundle.entry[%zu] has no fullUrl: references between "
                  "entries use them (domain 6.4)",
                  i);
        } else if (hov_map_get(c->refs, url, strlen(url)) != NULL) {
            char e1[ECHO_MAX + 4];
            echo(url, e1, sizeof e1);
            issue(c, "invariant", &l, "fullUrl",
                  "bdl-7: fullUrl %s appears in more than one entry", e1);
        } else {
            map_put(c, url, strlen(url), r);
        }
        if (r->id != NULL) {
            char key[160];
            int w = snprintf(key, sizeof key, "%s/%s", type, r->id);
            if (w > 0 && (size_t)w < sizeof key &&
                hov_map_get(c->refs, key, (size_t)w) == NULL)
                map_put(c, key, (size_t)w, r);
        }
    }
}

/* ------------------------------------------------------ organisations */

/* The canonical organisation code of an Identifier (at): an ODS code, or
 * local: and the Handover local-organisation value. Returns a new string;
 * NULL when the identifier is of another system (*other set) or its value
 * is malformed (filed). */
static char *
org_code_of(ctx *c, json_t *id, const loc *at, bool *other)
{
    *other = false;
    const char *sys = get_str(c, id, at, "system");
    const char *val = get_str(c, id, at, "value");
    char e[ECHO_MAX + 4];
    if (sys != NULL && strcmp(sys, SYS_ODS) == 0) {
        if (val == NULL) {
            issue(c, "required", at, "value",
                  "an ODS identifier needs a value");
            return NULL;
        }
        if (!hov_ods_code_valid(val)) {
            echo(val, e, sizeof e);
            issue(c, "value", at, "value",
                  "'%s' is not an ODS code (1 to 9 of A-Z, 0-9)", e);
            return NULL;
        }
        return xstrdup(c, val);
    }
    if (is_hsys(c, sys, H_LOCAL_ORG)) {
        if (val == NULL) {
            issue(c, "required", at, "value",
                  "a local-organisation identifier needs a value");
            return NULL;
        }
        size_t n = strlen(val);
        char *code = malloc(LOCAL_PREFIX_SZ + n + 1);
        if (code == NULL) {
            c->oom = true;
            return NULL;
        }
        memcpy(code, H_LOCAL_PREFIX, LOCAL_PREFIX_SZ);
        memcpy(code + LOCAL_PREFIX_SZ, val, n + 1);
        if (!hov_org_code_valid(code)) {
            free(code);
            echo(val, e, sizeof e);
            issue(c, "value", at, "value",
                  "'%s' is not a local organisation code (1 to 32 of "
                  "A-Z, a-z, 0-9, -)",
                  e);
            return NULL;
        }
        return code;
    }
    *other = true;
    return NULL;
}

/* The first organisation code in the Identifier array key of obj. */
static char *
org_code_in(ctx *c, json_t *obj, const loc *at, const char *key, bool *bad)
{
    json_t *arr;
    size_t n = get_arr(c, obj, at, key, &arr);
    loc l_arr = AT(at, key);
    for (size_t i = 0; i < n && c->status == 0; i++) {
        json_t *id = elem(c, arr, i, &l_arr, J_OBJ);
        if (id == NULL)
            continue;
        loc l = AT_I(&l_arr, i);
        bool other;
        char *code = org_code_of(c, id, &l, &other);
        if (code != NULL)
            return code;
        if (!other)
            *bad = true;
    }
    return NULL;
}

/* The organisation a Reference (ref, at, held by from) names: its own
 * identifier, else the Organization it resolves to in the request, else a
 * PractitionerRole's organization. *display gets the reference's display
 * (or the Organization's name). Returns a new code, or NULL: none named,
 * or malformed (then *bad is set and the problem filed). */
static char *
org_of_ref(ctx *c, const res *from, json_t *ref, const loc *at,
           const char **display, bool *bad, int depth)
{
    if (ref == NULL)
        return NULL;
    const char *disp = get_str(c, ref, at, "display");
    if (display != NULL && disp != NULL)
        *display = disp;
    json_t *id = get(c, ref, at, "identifier", J_OBJ);
    if (id != NULL) {
        loc l = AT(at, "identifier");
        bool other;
        char *code = org_code_of(c, id, &l, &other);
        if (code != NULL || !other) {
            *bad = *bad || code == NULL;
            return code;
        }
    }
    const res *r = resolve(c, from, get_str(c, ref, at, "reference"));
    if (is_type(r, "Organization")) {
        loc l = ROOT(r);
        if (display != NULL && *display == NULL)
            *display = get_str(c, r->obj, &l, "name");
        return org_code_in(c, r->obj, &l, "identifier", bad);
    }
    if (is_type(r, "PractitionerRole") && depth == 0) {
        loc l = ROOT(r);
        json_t *org = get(c, r->obj, &l, "organization", J_OBJ);
        loc l_org = AT(&l, "organization");
        return org_of_ref(c, r, org, &l_org, display, bad, 1);
    }
    return NULL;
}

/* Is code one the gp agency may publish as? */
static bool
gp_org_allowed(const ctx *c, const char *code)
{
    return in_table(code, c->gp_orgs);
}

/* Set source.org to code (owned) and name; the code must be one of the
 * gp agency's (domain 3.1), which is a Handover rule (422 business-rule)
 * filed at the element that named it. */
static void
set_source_org(ctx *c, char *code, const char *name, const loc *at,
               const char *key)
{
    Handover__OrgRef *org = c->ev->source->org;
    if (!gp_org_allowed(c, code)) {
        char e[ECHO_MAX + 4];
        echo(code, e, sizeof e);
        issue(c, "business-rule", at, key,
              "organisation %s is not one the gp agency may publish as", e);
    }
    hov_pb_take(&org->code, code);
    if (name != NULL)
        hov_pb_take(&org->name, text_max(c, at, key, name, ORG_NAME_MAX));
}

/* ------------------------------------------------------------ persons */

/* "given family" from a HumanName (at), or NULL. */
static char *
human_name(ctx *c, json_t *nm, const loc *at)
{
    if (nm == NULL)
        return NULL;
    const char *family = get_str(c, nm, at, "family");
    json_t *given;
    size_t ng = get_arr(c, nm, at, "given", &given);
    loc l_given = AT(at, "given");
    const char *first = NULL;
    for (size_t i = 0; i < ng && first == NULL; i++)
        first = elem_str(c, given, i, &l_given);
    const char *text = get_str(c, nm, at, "text");
    if (family == NULL && first == NULL)
        return xstrdup(c, text);
    size_t fl = family != NULL ? strlen(family) : 0;
    size_t gl = first != NULL ? strlen(first) : 0;
    char *out = malloc(fl + gl + 2);
    if (out == NULL) {
        c->oom = true;
        return NULL;
    }
    out[0] = '\0';
    if (first != NULL)
        memcpy(out, first, gl + 1);
    if (first != NULL && family != NULL)
        out[gl++] = ' ';
    if (family != NULL)
        memcpy(out + gl, family, fl + 1);
    return out;
}

/* The first phone ContactPoint value in telecom of obj, preferring uses
 * in the order given. NULL when there is none. */
static const char *
phone_in(ctx *c, json_t *obj, const loc *at, const char *const *uses,
         size_t *which)
{
    json_t *arr;
    size_t n = get_arr(c, obj, at, "telecom", &arr);
    loc l_arr = AT(at, "telecom");
    const char *best = NULL;
    size_t best_rank = SIZE_MAX;
    for (size_t i = 0; i < n && c->status == 0; i++) {
        json_t *cp = elem(c, arr, i, &l_arr, J_OBJ);
        if (cp == NULL)
            continue;
        loc l = AT_I(&l_arr, i);
        const char *sys = get_str(c, cp, &l, "system");
        const char *val = get_str(c, cp, &l, "value");
        const char *use = get_str(c, cp, &l, "use");
        if (sys == NULL || strcmp(sys, "phone") != 0 || val == NULL)
            continue;
        if (use != NULL && strcmp(use, "old") == 0)
            continue;
        size_t rank = 0;
        while (uses[rank] != NULL && (use == NULL || strcmp(use, uses[rank])))
            rank++;
        if (rank < best_rank) {
            best = val;
            best_rank = rank;
            if (which != NULL)
                *which = i;
        }
    }
    return best;
}

static const char *const person_phone_uses[] = {"work", "mobile", NULL};

/* A Practitioner (p) into person: name, professional id, phone. */
static void
practitioner(ctx *c, const res *p, Handover__Person *person)
{
    loc at = ROOT(p);
    json_t *ids;
    size_t n = get_arr(c, p->obj, &at, "identifier", &ids);
    loc l_ids = AT(&at, "identifier");
    for (size_t i = 0; i < n && c->status == 0; i++) {
        json_t *id = elem(c, ids, i, &l_ids, J_OBJ);
        if (id == NULL)
            continue;
        loc l = AT_I(&l_ids, i);
        const char *sys = get_str(c, id, &l, "system");
        const char *val = get_str(c, id, &l, "value");
        if (val != NULL && in_table(sys, professional_systems) &&
            is_empty(person->id)) {
            hov_pb_take(&person->id,
                        text_max(c, &l, "value", val, PERSON_ID_MAX));
        }
    }
    json_t *names;
    size_t nn = get_arr(c, p->obj, &at, "name", &names);
    loc l_names = AT(&at, "name");
    for (size_t i = 0; i < nn && is_empty(person->name) && c->status == 0;
         i++) {
        loc l = AT_I(&l_names, i);
        char *name = human_name(c, elem(c, names, i, &l_names, J_OBJ), &l);
        if (name != NULL && too_long(c, &l, NULL, name, PERSON_NAME_MAX)) {
            free(name);
            name = NULL;
        }
        hov_pb_take(&person->name, name);
    }
    size_t which = 0;
    const char *phone = phone_in(c, p->obj, &at, person_phone_uses, &which);
    if (phone != NULL && is_empty(person->phone)) {
        loc l_tel = AT(&at, "telecom");
        loc l = AT_I(&l_tel, which);
        hov_pb_take(&person->phone, text_max(c, &l, "value", phone, PHONE_MAX));
    }
}

/* The text of a CodeableConcept (at), else its first coding's display. */
static const char *
cc_text(ctx *c, json_t *cc, const loc *at)
{
    const char *t = get_str(c, cc, at, "text");
    if (t != NULL)
        return t;
    json_t *cds;
    size_t nc = get_arr(c, cc, at, "coding", &cds);
    loc l_cds = AT(at, "coding");
    for (size_t k = 0; k < nc && c->status == 0; k++) {
        loc lk = AT_I(&l_cds, k);
        const char *d =
            get_str(c, elem(c, cds, k, &l_cds, J_OBJ), &lk, "display");
        if (d != NULL)
            return d;
    }
    return NULL;
}

/* The first text of the CodeableConcept array key of obj
 * (PractitionerRole.code). */
static const char *
concept_text(ctx *c, json_t *obj, const loc *at, const char *key)
{
    json_t *arr;
    size_t n = get_arr(c, obj, at, key, &arr);
    loc l_arr = AT(at, key);
    for (size_t i = 0; i < n && c->status == 0; i++) {
        loc l = AT_I(&l_arr, i);
        const char *t = cc_text(c, elem(c, arr, i, &l_arr, J_OBJ), &l);
        if (t != NULL)
            return t;
    }
    return NULL;
}

/* A professional number given as the Reference's identifier (a logical
 * reference, R4 References 2.3.4), when its system is a register's. */
static void
ref_professional_id(ctx *c, json_t *ref, const loc *at, Handover__Person *p)
{
    json_t *id = get(c, ref, at, "identifier", J_OBJ);
    loc l = AT(at, "identifier");
    const char *sys = get_str(c, id, &l, "system");
    const char *val = get_str(c, id, &l, "value");
    if (val != NULL && in_table(sys, professional_systems) && is_empty(p->id))
        hov_pb_take(&p->id, text_max(c, &l, "value", val, PERSON_ID_MAX));
}

/* The person a requester Reference (ref, at, held by from) names, and
 * the organisation it acts for (*org, new; NULL when none is named). The
 * person is NULL when the reference names nobody. */
static Handover__Person *
person_of_ref(ctx *c, const res *from, json_t *ref, const loc *at, char **org,
              const char **org_name, bool *org_bad)
{
    *org = NULL;
    if (ref == NULL)
        return NULL;
    Handover__Person *p = NEW_MSG(c, Handover__Person, init_person);
    if (p == NULL)
        return NULL;
    const res *r = resolve(c, from, get_str(c, ref, at, "reference"));
    if (is_type(r, "PractitionerRole")) {
        loc l = ROOT(r);
        json_t *prac = get(c, r->obj, &l, "practitioner", J_OBJ);
        loc l_prac = AT(&l, "practitioner");
        const res *pr = resolve(c, r, get_str(c, prac, &l_prac, "reference"));
        if (is_type(pr, "Practitioner"))
            practitioner(c, pr, p);
        ref_professional_id(c, prac, &l_prac, p);
        const char *dn = get_str(c, prac, &l_prac, "display");
        if (is_empty(p->name) && dn != NULL)
            hov_pb_take(&p->name,
                        text_max(c, &l_prac, "display", dn, PERSON_NAME_MAX));
        const char *role = concept_text(c, r->obj, &l, "code");
        if (role != NULL)
            hov_pb_take(&p->role,
                        text_max(c, &l, "code", role, PERSON_ROLE_MAX));
        size_t which = 0;
        const char *phone = phone_in(c, r->obj, &l, person_phone_uses, &which);
        if (phone != NULL && is_empty(p->phone)) {
            loc l_tel = AT(&l, "telecom");
            loc lw = AT_I(&l_tel, which);
            hov_pb_take(&p->phone, text_max(c, &lw, "value", phone, PHONE_MAX));
        }
        json_t *o = get(c, r->obj, &l, "organization", J_OBJ);
        loc l_o = AT(&l, "organization");
        *org = org_of_ref(c, r, o, &l_o, org_name, org_bad, 1);
    } else if (is_type(r, "Practitioner")) {
        practitioner(c, r, p);
    } else if (is_type(r, "Organization")) {
        *org = org_of_ref(c, from, ref, at, org_name, org_bad, 0);
    } else {
        /* No resource: perhaps an Organization named by identifier. */
        bool bad = false;
        *org = org_of_ref(c, from, ref, at, org_name, &bad, 0);
        *org_bad = *org_bad || bad;
    }
    if (r == NULL && *org == NULL)
        ref_professional_id(c, ref, at, p);
    const char *disp = get_str(c, ref, at, "display");
    if (is_empty(p->name) && disp != NULL && !is_type(r, "Organization") &&
        *org == NULL)
        hov_pb_take(&p->name,
                    text_max(c, at, "display", disp, PERSON_NAME_MAX));
    if (is_empty(p->name) && is_empty(p->id) && is_empty(p->role) &&
        is_empty(p->phone)) {
        handover__person__free_unpacked(p, NULL);
        return NULL;
    }
    return p;
}

/* ------------------------------------------------------------- patient */

static const char *const patient_phone_uses[] = {"home", "mobile", "work",
                                                 NULL};

/* The NHS number's verification status, from the UK Core extension on
 * the identifier id (at). */
static void
nhs_status(ctx *c, json_t *id, const loc *at)
{
    json_t *exts;
    size_t n = get_arr(c, id, at, "extension", &exts);
    loc l_exts = AT(at, "extension");
    for (size_t i = 0; i < n && c->status == 0; i++) {
        json_t *x = elem(c, exts, i, &l_exts, J_OBJ);
        loc l = AT_I(&l_exts, i);
        const char *url = get_str(c, x, &l, "url");
        if (url == NULL || strcmp(url, EXT_NHS_STATUS) != 0)
            continue;
        json_t *cc = get(c, x, &l, "valueCodeableConcept", J_OBJ);
        loc l_cc = AT(&l, "valueCodeableConcept");
        const char *code;
        if (cc == NULL ||
            coding_in(c, cc, &l_cc, SYS_NHS_STATUS, &code, NULL) != 1)
            continue;
        if (!in_table(code, nhs_statuses)) {
            char e[ECHO_MAX + 4];
            echo(code, e, sizeof e);
            issue(c, "code-invalid", &l_cc, NULL,
                  "NHS number verification status '%s' is not 01 to 08", e);
            return;
        }
        set(c, &c->ev->patient->nhs_number_status, code);
        return;
    }
}

/* The NHS number of Patient p: identifiers with the NHS number system,
 * spaces and hyphens stripped (domain 3.3). Two different numbers are
 * never resolved by picking one (6.3). Returns a new string or NULL. With
 * file set, the problems are filed and the verification status read. */
static char *
patient_nhs_number(ctx *c, const res *p, bool file, bool *bad)
{
    loc at = ROOT(p);
    json_t *ids;
    size_t n = get_arr(c, p->obj, &at, "identifier", &ids);
    loc l_ids = AT(&at, "identifier");
    char *first = NULL;
    for (size_t i = 0; i < n && c->status == 0; i++) {
        json_t *id = elem(c, ids, i, &l_ids, J_OBJ);
        if (id == NULL)
            continue;
        loc l = AT_I(&l_ids, i);
        const char *sys = get_str(c, id, &l, "system");
        if (sys == NULL || strcmp(sys, SYS_NHS) != 0)
            continue;
        const char *val = get_str(c, id, &l, "value");
        if (val == NULL) {
            if (file)
                issue(c, "required", &l, "value",
                      "the NHS number identifier has no value");
            *bad = true;
            continue;
        }
        char *v = xstrdup(c, val);
        if (v == NULL)
            break;
        size_t k = 0;
        for (size_t j = 0; v[j] != '\0'; j++)
            if (v[j] != ' ' && v[j] != '-')
                v[k++] = v[j];
        v[k] = '\0';
        if (first == NULL) {
            first = v;
            if (file)
                nhs_status(c, id, &l);
            continue;
        }
        if (strcmp(first, v) != 0) {
            if (file) {
                char a[ECHO_MAX + 4], b[ECHO_MAX + 4];
                echo(first, a, sizeof a);
                echo(v, b, sizeof b);
                issue(c, "business-rule", &at, "identifier",
                      "Patient.identifier holds two different NHS numbers "
                      "(%s, %s)",
                      a, b);
            }
            *bad = true;
            free(v);
            free(first);
            return NULL;
        }
        free(v);
    }
    return first;
}

/* Check an NHS number (held at at); files the problem. The 999 test
 * range is the hub's decision (allow_test_nhs_numbers). */
static void
check_nhs_number(ctx *c, const char *nhs, const loc *at, const char *key)
{
    hov_error e = {0};
    if (hov_nhs_number_check(nhs, true, &e) != HOV_OK)
        issue(c, "value", at, key, "%s", e.msg);
}

/* The index of the element of array key in obj whose use is not "old",
 * preferring pref; -1 when there is none. */
static long
pick_by_use(ctx *c, json_t *obj, const loc *at, const char *key,
            const char *pref, json_t **arr_out)
{
    json_t *arr;
    size_t n = get_arr(c, obj, at, key, &arr);
    loc l_arr = AT(at, key);
    long pick = -1;
    for (size_t i = 0; i < n && c->status == 0; i++) {
        json_t *v = elem(c, arr, i, &l_arr, J_OBJ);
        if (v == NULL)
            continue;
        loc l = AT_I(&l_arr, i);
        const char *use = get_str(c, v, &l, "use");
        if (use != NULL && strcmp(use, pref) == 0) {
            pick = (long)i;
            break;
        }
        if (pick < 0 && (use == NULL || strcmp(use, "old") != 0))
            pick = (long)i;
    }
    *arr_out = arr;
    return pick;
}

static void
patient_name(ctx *c, const res *p, const loc *at, bool request)
{
    Handover__Patient *pt = c->ev->patient;
    json_t *arr;
    long i = pick_by_use(c, p->obj, at, "name", "official", &arr);
    if (i < 0) {
        if (request && c->status == 0)
            issue(c, "required", at, "name",
                  "Patient.name is missing: a request needs the patient's "
                  "family and given names");
        return;
    }
    loc l_arr = AT(at, "name");
    loc l = AT_I(&l_arr, (size_t)i);
    json_t *nm = json_array_get(arr, (size_t)i);
    const char *family = get_str(c, nm, &l, "family");
    if (family == NULL && request)
        issue(c, "required", &l, "family", "Patient.name has no family name");
    hov_pb_take(&pt->family_name,
                text_max(c, &l, "family", family, NAME_MAX_CHARS));

    json_t *given;
    size_t ng = get_arr(c, nm, &l, "given", &given);
    loc l_given = AT(&l, "given");
    pt->given_names = new_array(c, ng, sizeof *pt->given_names);
    for (size_t k = 0; k < ng && pt->given_names != NULL; k++) {
        const char *g = elem_str(c, given, k, &l_given);
        loc lk = AT_I(&l_given, k);
        char *s = text_max(c, &lk, NULL, g, NAME_MAX_CHARS);
        if (s != NULL)
            pt->given_names[pt->n_given_names++] = s;
    }
    if (pt->n_given_names == 0 && request && c->status == 0 &&
        (ng == 0 || !c->oom))
        issue(c, "required", &l, "given", "Patient.name has no given name");

    json_t *prefix;
    size_t np = get_arr(c, nm, &l, "prefix", &prefix);
    loc l_prefix = AT(&l, "prefix");
    for (size_t k = 0; k < np && is_empty(pt->title); k++) {
        loc lk = AT_I(&l_prefix, k);
        hov_pb_take(&pt->title,
                    text_max(c, &lk, NULL, elem_str(c, prefix, k, &l_prefix),
                             NAME_MAX_CHARS));
    }
}

static void
patient_birth_date(ctx *c, const res *p, const loc *at, bool request)
{
    const char *dob = get_str(c, p->obj, at, "birthDate");
    if (dob == NULL) {
        if (request)
            issue(c, "required", at, "birthDate",
                  "Patient.birthDate is missing");
        return;
    }
    /* The value is never repeated: a date of birth identifies a person. */
    if (strlen(dob) != 10 || !hov_date_valid(dob)) {
        issue(c, "value", at, "birthDate",
              "Patient.birthDate is not a full date (YYYY-MM-DD)");
        return;
    }
    if (strcmp(dob, c->today) > 0) {
        issue(c, "value", at, "birthDate",
              "Patient.birthDate is in the future");
        return;
    }
    set(c, &c->ev->patient->date_of_birth, dob);
}

/* hov_postcode_normalise, noting a failed allocation in c. */
static char *
postcode_norm(ctx *c, const char *s)
{
    char *out = hov_postcode_normalise(s);
    if (out == NULL)
        c->oom = true;
    return out;
}

static void
patient_address(ctx *c, const res *p, const loc *at, bool request)
{
    Handover__Patient *pt = c->ev->patient;
    json_t *arr;
    long i = pick_by_use(c, p->obj, at, "address", "home", &arr);
    if (i < 0) {
        if (request && c->status == 0)
            issue(c, "required", at, "address",
                  "Patient.address is missing: a request needs the "
                  "patient's postcode");
        return;
    }
    loc l_arr = AT(at, "address");
    loc l = AT_I(&l_arr, (size_t)i);
    json_t *ad = json_array_get(arr, (size_t)i);
    json_t *lines;
    size_t nl = get_arr(c, ad, &l, "line", &lines);
    loc l_lines = AT(&l, "line");
    const char *city = get_str(c, ad, &l, "city");
    const char *district = get_str(c, ad, &l, "district");
    pt->address_lines = new_array(c, nl + 2, sizeof *pt->address_lines);
    if (pt->address_lines == NULL)
        return;
    size_t total = 0;
    for (size_t k = 0; k < nl; k++)
        total += elem_str(c, lines, k, &l_lines) != NULL ? 1u : 0u;
    total += (city != NULL ? 1u : 0u) + (district != NULL ? 1u : 0u);
    if (total > ADDRESS_MAX_LINES) {
        issue(c, "value", &l, NULL,
              "Patient.address gives %zu lines with city and district, "
              "more than the %d Handover carries",
              total, ADDRESS_MAX_LINES);
        return;
    }
    for (size_t k = 0; k < nl + 2; k++) {
        const char *s = k < nl    ? elem_str(c, lines, k, &l_lines)
                        : k == nl ? city
                                  : district;
        loc lk = AT_I(&l_lines, k);
        loc lc = AT(&l, k == nl ? "city" : "district");
        char *line = text_max(c, k < nl ? &lk : &lc, NULL, s, NAME_MAX_CHARS);
        if (line != NULL)
            pt->address_lines[pt->n_address_lines++] = line;
    }
    const char *pc = get_str(c, ad, &l, "postalCode");
    if (pc == NULL) {
        if (request)
            issue(c, "required", &l, "postalCode",
                  "Patient.address has no postalCode");
        return;
    }
    char *norm = postcode_norm(c, pc);
    if (norm == NULL)
        return;
    /* Part of an address: never repeated in the message. */
    if (!hov_postcode_valid(norm)) {
        issue(c, "value", &l, "postalCode",
              "Patient.address.postalCode is not a UK postcode (such as "
              "FE7 8QT)");
        free(norm);
        return;
    }
    hov_pb_take(&pt->postcode, norm);
}

static void
patient_gp(ctx *c, const res *p, const loc *at)
{
    json_t *arr;
    size_t n = get_arr(c, p->obj, at, "generalPractitioner", &arr);
    loc l_arr = AT(at, "generalPractitioner");
    if (n > MAX_REFS)
        n = MAX_REFS;
    for (size_t i = 0; i < n && c->status == 0; i++) {
        json_t *ref = elem(c, arr, i, &l_arr, J_OBJ);
        loc l = AT_I(&l_arr, i);
        bool bad = false;
        const char *display = NULL;
        char *code = org_of_ref(c, p, ref, &l, &display, &bad, 0);
        if (code == NULL)
            continue;
        /* A practice's ODS code; a local: code names no practice. */
        if (hov_ods_code_valid(code)) {
            hov_pb_take(&c->ev->patient->registered_gp, code);
            c->gp_name = display;
            return;
        }
        free(code);
    }
}

/* Map Patient p into ev->patient. request: a referral or an order, which
 * needs the demographics (domain 3.3); an outcome needs only the NHS
 * number, and may leave even that out. */
static void
map_patient(ctx *c, const res *p, bool request)
{
    Handover__Patient *pt = c->ev->patient;
    loc at = ROOT(p);
    c->patient = p;
    bool bad = false;
    char *nhs = patient_nhs_number(c, p, true, &bad);
    if (nhs == NULL && !bad && c->status == 0 && request)
        issue(c, "required", &at, "identifier",
              "NHS number missing: send an identifier with system "
              "https://fhir.nhs.uk/Id/nhs-number");
    if (nhs != NULL)
        check_nhs_number(c, nhs, &at, "identifier");
    hov_pb_take(&pt->nhs_number, nhs);
    if (!request)
        return;

    patient_name(c, p, &at, request);
    size_t which = 0;
    const char *phone = phone_in(c, p->obj, &at, patient_phone_uses, &which);
    if (phone != NULL) {
        loc l_tel = AT(&at, "telecom");
        loc l = AT_I(&l_tel, which);
        hov_pb_take(&pt->phone, text_max(c, &l, "value", phone, PHONE_MAX));
    }
    const char *gender = get_str(c, p->obj, &at, "gender");
    if (gender != NULL && !in_table(gender, sexes)) {
        char e[ECHO_MAX + 4];
        echo(gender, e, sizeof e);
        issue(c, "code-invalid", &at, "gender",
              "Patient.gender '%s' is not male, female, other or unknown", e);
    } else if (gender != NULL) {
        set(c, &pt->sex, gender);
    }
    patient_birth_date(c, p, &at, request);
    patient_address(c, p, &at, request);
    patient_gp(c, p, &at);
}

/* The request's subject (key of holder, at): it must resolve to a Patient
 * in the request (domain 6.3). Returns it, or NULL (filed). */
static const res *
subject_of(ctx *c, const res *holder, const loc *at, const char *key)
{
    json_t *ref = get(c, holder->obj, at, key, J_OBJ);
    if (c->status != 0)
        return NULL;
    if (ref == NULL) {
        issue(c, "required", at, key,
              "%s.%s is missing: a request names its Patient", holder->type,
              key);
        return NULL;
    }
    loc l = AT(at, key);
    const char *r = get_str(c, ref, &l, "reference");
    const res *p = resolve(c, holder, r);
    if (c->status != 0)
        return NULL;
    if (!is_type(p, "Patient")) {
        char e[ECHO_MAX + 4];
        echo(r != NULL ? r : "(none)", e, sizeof e);
        issue(c, "required", at, key,
              "%s.%s reference %s does not resolve to a Patient in the "
              "request: use #id for a contained Patient or the fullUrl of a "
              "Bundle entry",
              holder->type, key, e);
        return NULL;
    }
    return p;
}

/* ------------------------------------------------------ common request */

typedef enum id_state {
    ID_OK,     /* usable: *val and out are set */
    ID_ABSENT, /* no system or value, or one of Handover's systems */
    ID_BAD,    /* malformed: filed */
} id_state;

/* An Identifier (at) as a business identifier: a system that is not
 * Handover's, and a value. Writes "system|value" into out (when not NULL,
 * FHIR_IN_IDENT_CAP bytes) and the value (borrowed) into *val. */
static id_state
identifier_value(ctx *c, json_t *id, const loc *at, const char **val, char *out)
{
    const char *sys = get_str(c, id, at, "system");
    const char *v = get_str(c, id, at, "value");
    *val = NULL;
    if (sys == NULL || v == NULL || is_handover_id_system(c, sys))
        return ID_ABSENT;
    char e[ECHO_MAX + 4];
    if (strlen(sys) > FHIR_IN_SYSTEM_MAX || strchr(sys, '|') != NULL) {
        echo(sys, e, sizeof e);
        issue(c, "value", at, "system",
              "identifier system %s is not a URI of at most %d characters "
              "without '|'",
              e, FHIR_IN_SYSTEM_MAX);
        return ID_BAD;
    }
    if (hov_utf8_chars(v) > FHIR_IN_VALUE_MAX) {
        echo(v, e, sizeof e);
        issue(c, "value", at, "value",
              "identifier value %s is longer than %d characters", e,
              FHIR_IN_VALUE_MAX);
        return ID_BAD;
    }
    if (out != NULL)
        snprintf(out, FHIR_IN_IDENT_CAP, "%s|%s", sys, v);
    *val = v;
    return ID_OK;
}

/* Resource.identifier: the first usable business identifier, which names
 * the event (domain 3.8). Returns its value (borrowed) and fills out; NULL
 * when there is none (filed, as it is required) or it is malformed. */
static const char *
business_identifier(ctx *c, const res *r, const loc *at, char *out)
{
    json_t *arr;
    size_t n = get_arr(c, r->obj, at, "identifier", &arr);
    loc l_arr = AT(at, "identifier");
    for (size_t i = 0; i < n && c->status == 0; i++) {
        json_t *id = elem(c, arr, i, &l_arr, J_OBJ);
        if (id == NULL)
            continue;
        loc l = AT_I(&l_arr, i);
        const char *val;
        id_state st = identifier_value(c, id, &l, &val, out);
        if (st == ID_OK)
            return val;
        if (st == ID_BAD)
            return NULL;
    }
    if (c->status == 0)
        issue(c, "required", at, "identifier",
              "%s.identifier is missing: a business identifier (system and "
              "value) names the request and makes a resend harmless",
              r->type);
    return NULL;
}

/* The source organisation of a request posted on its own (domain 6.3):
 * the requester's organisation, else the patient's registered practice.
 * Filed at the requester when neither names one. */
static void
source_org_fallback(ctx *c, char *req_org, const char *req_name, bool bad,
                    const loc *at)
{
    if (c->org_from_header) {
        free(req_org);
        return;
    }
    if (req_org != NULL) {
        set_source_org(c, req_org, req_name, at, "requester");
        return;
    }
    const char *gp = c->ev->patient->registered_gp;
    if (!is_empty(gp)) {
        set_source_org(c, xstrdup(c, gp), c->gp_name, at, "requester");
        return;
    }
    /* Without a patient (already filed) the practice is unknown too. */
    if (!bad && c->status == 0 && c->patient != NULL)
        issue(c, "required", at, "requester",
              "no requesting organisation: send requester as an "
              "Organization, or a PractitionerRole with an organization, "
              "with an ODS code, or the patient's generalPractitioner");
}

static const char *
priority_of(const char *fhir)
{
    for (size_t i = 0; i < N_PRIORITIES; i++)
        if (strcmp(priorities[i].fhir, fhir) == 0)
            return priorities[i].canon;
    return NULL;
}

static const char *
read_priority(ctx *c, json_t *o, const loc *at, bool required)
{
    const char *p = get_str(c, o, at, "priority");
    if (p == NULL) {
        if (required && c->status == 0)
            issue(c, "required", at, "priority",
                  "priority is missing: send routine, urgent, asap or stat");
        return NULL;
    }
    const char *canon = priority_of(p);
    if (canon == NULL) {
        char e[ECHO_MAX + 4];
        echo(p, e, sizeof e);
        issue(c, "code-invalid", at, "priority",
              "priority '%s' is not routine, urgent, asap or stat", e);
    }
    return canon;
}

/* authoredOn (or key) as occurred_at; recorded_at when absent. */
static void
read_occurred(ctx *c, json_t *o, const loc *at, const char *key)
{
    const char *s = get_str(c, o, at, key);
    char out[40];
    if (s != NULL) {
        if (!datetime_utc(s, out)) {
            char e[ECHO_MAX + 4];
            echo(s, e, sizeof e);
            issue(c, "value", at, key,
                  "%s '%s' is not a FHIR dateTime Handover can place in time "
                  "(a date, or a time with Z or an offset)",
                  key, e);
            return;
        }
        set(c, &c->ev->occurred_at, out);
        return;
    }
    if (c->recorded_at[0] != '\0') {
        set(c, &c->ev->occurred_at, c->recorded_at);
        return;
    }
    if (c->status == 0)
        issue(c, "required", at, key,
              "%s is missing: it gives the time the request was made", key);
}

/* reasonCode[].text (else a coding's display) joined into reason. */
static void
read_reasons(ctx *c, json_t *o, const loc *at, bool required, acc *out)
{
    json_t *arr;
    size_t n = get_arr(c, o, at, "reasonCode", &arr);
    loc l_arr = AT(at, "reasonCode");
    for (size_t i = 0; i < n && c->status == 0; i++) {
        json_t *cc = elem(c, arr, i, &l_arr, J_OBJ);
        if (cc == NULL)
            continue;
        loc l = AT_I(&l_arr, i);
        const char *t = cc_text(c, cc, &l);
        if (t != NULL && !acc_has(out, t))
            acc_add(c, out, t);
    }
    if (out->len == 0 && required && c->status == 0)
        issue(c, "required", at, "reasonCode",
              "reasonCode is missing: a referral gives its reason in "
              "reasonCode.text");
}

/* Does t start with prefix, in any case? Returns the text after it and
 * the blanks that follow, or NULL. */
static const char *
after_prefix(const char *t, const char *prefix)
{
    size_t n = strlen(prefix);
    if (strlen(t) < n || !ieq_n(t, n, prefix))
        return NULL;
    for (t += n; *t == ' ' || *t == '\t';)
        t++;
    return t;
}

/* note[] of a ServiceRequest: a "Clinical:" or "Social:" prefix (any case)
 * chooses the field and is dropped (6.3), as do "Access:" and "Preferred
 * contact:", the prefixes fhir_out writes for access_notes and
 * preferred_contact; anything else is clinical detail, the field with the
 * fewest readers (domain 3.9). */
static void
read_sr_notes(ctx *c, json_t *o, const loc *at)
{
    static const char *const prefixes[] = {
        "clinical:", "social:", "access:", "preferred contact:"};
    json_t *arr;
    size_t n = get_arr(c, o, at, "note", &arr);
    loc l_arr = AT(at, "note");
    acc parts[4] = {{0}};
    for (size_t i = 0; i < n && c->status == 0 && !c->oom; i++) {
        json_t *a = elem(c, arr, i, &l_arr, J_OBJ);
        loc l = AT_I(&l_arr, i);
        const char *t = get_str(c, a, &l, "text");
        if (t == NULL)
            continue;
        size_t k = 0;
        const char *rest = NULL;
        for (; k < 4 && rest == NULL; k++)
            rest = after_prefix(t, prefixes[k]);
        if (rest != NULL)
            k--;
        else
            k = 0, rest = t;
        if (*rest != '\0')
            acc_add(c, &parts[k], rest);
    }
    static const size_t max[] = {DETAILS_MAX, DETAILS_MAX, ACCESS_MAX,
                                 PREFERRED_MAX};
    Handover__Event *ev = c->ev;
    char **fields[] = {&ev->clinical_details, &ev->social_details,
                       &ev->access_notes, &ev->referral->preferred_contact};
    for (size_t k = 0; k < 4; k++) {
        if (parts[k].len > 0)
            too_long(c, at, "note", parts[k].p, max[k]);
        acc_take(&parts[k], fields[k]);
    }
}

/* The note[] texts of obj joined (distinct) into out. */
static void
read_notes(ctx *c, json_t *o, const loc *at, acc *out)
{
    json_t *arr;
    size_t n = get_arr(c, o, at, "note", &arr);
    loc l_arr = AT(at, "note");
    for (size_t i = 0; i < n && c->status == 0 && !c->oom; i++) {
        loc l = AT_I(&l_arr, i);
        const char *t = get_str(c, elem(c, arr, i, &l_arr, J_OBJ), &l, "text");
        if (t != NULL && !acc_has(out, t))
            acc_add(c, out, t);
    }
}

/* -------------------------------------------------------------- consent */

/* Is the Reference ref (held by from) the patient p? */
static bool
refers_to_patient(const ctx *c, const res *from, const char *ref, const res *p)
{
    const res *r = resolve(c, from, ref);
    return r != NULL && r == p;
}

/* Does the Consent's provision name code among its actors? Returns -1
 * when it names no organisation at all (nothing to compare). */
static int
consent_names_org(ctx *c, const res *cs, const char *code)
{
    loc at = ROOT(cs);
    json_t *prov = get(c, cs->obj, &at, "provision", J_OBJ);
    loc l_prov = AT(&at, "provision");
    json_t *arr;
    size_t n = get_arr(c, prov, &l_prov, "actor", &arr);
    loc l_arr = AT(&l_prov, "actor");
    int named = -1;
    for (size_t i = 0; i < n && i < MAX_REFS && c->status == 0; i++) {
        json_t *a = elem(c, arr, i, &l_arr, J_OBJ);
        loc l = AT_I(&l_arr, i);
        json_t *ref = get(c, a, &l, "reference", J_OBJ);
        loc l_ref = AT(&l, "reference");
        bool bad = false;
        char *org = org_of_ref(c, cs, ref, &l_ref, NULL, &bad, 0);
        if (org == NULL)
            continue;
        if (named < 0)
            named = 0;
        if (strcmp(org, code) == 0)
            named = 1;
        free(org);
    }
    return named;
}

/* Map the Consent cs (a referral's supportingInfo) into ev->consent.
 * Returns true when it records explicit consent or a best-interests
 * decision with its time, which a voluntary referral needs. */
static bool
map_consent(ctx *c, const res *cs)
{
    loc at = ROOT(cs);
    json_t *o = cs->obj;
    const char *status = get_str(c, o, &at, "status");
    /* A proposed, rejected or withdrawn consent is no consent. */
    if (status == NULL || strcmp(status, "active") != 0)
        return false;
    const char *cat = concept_text(c, o, &at, "category");
    json_t *pref = get(c, o, &at, "patient", J_OBJ);
    loc l_pat = AT(&at, "patient");
    const char *pat = get_str(c, pref, &l_pat, "reference");
    if (pat != NULL && c->patient != NULL &&
        !refers_to_patient(c, cs, pat, c->patient))
        issue(c, "business-rule", &at, "patient",
              "Consent.patient is not the referral's subject");
    const char *when = get_str(c, o, &at, "dateTime");
    char recorded[40] = "";
    if (when != NULL && !datetime_utc(when, recorded)) {
        char e[ECHO_MAX + 4];
        echo(when, e, sizeof e);
        issue(c, "value", &at, "dateTime",
              "Consent.dateTime '%s' is not a FHIR dateTime with Z or an "
              "offset",
              e);
        recorded[0] = '\0';
    }

    /* performer: the patient agreed (explicit), or a practitioner decided
     * in the person's best interests. */
    json_t *perf;
    size_t np = get_arr(c, o, &at, "performer", &perf);
    loc l_perf = AT(&at, "performer");
    bool by_patient = false, by_practitioner = false;
    char *recorder = NULL;
    for (size_t i = 0; i < np && i < MAX_REFS && c->status == 0; i++) {
        json_t *ref = elem(c, perf, i, &l_perf, J_OBJ);
        loc l = AT_I(&l_perf, i);
        const char *r = get_str(c, ref, &l, "reference");
        const res *who = resolve(c, cs, r);
        /* When the subject did not resolve (already filed), any Patient
         * of the request stands for it rather than adding a second,
         * misleading problem. */
        if (who != NULL && (who == c->patient ||
                            (c->patient == NULL && is_type(who, "Patient")))) {
            by_patient = true;
        } else if (is_type(who, "Practitioner") ||
                   is_type(who, "PractitionerRole") ||
                   (r != NULL && (strncmp(r, "Practitioner", 12) == 0))) {
            by_practitioner = true;
            if (recorder == NULL)
                recorder = xstrdup(c, get_str(c, ref, &l, "display"));
            if (recorder == NULL && is_type(who, "Practitioner")) {
                loc lw = ROOT(who);
                json_t *names;
                get_arr(c, who->obj, &lw, "name", &names);
                loc l_names = AT(&lw, "name");
                loc l0 = AT_I(&l_names, 0);
                recorder =
                    human_name(c, elem(c, names, 0, &l_names, J_OBJ), &l0);
            }
        }
    }
    json_t *rule = get(c, o, &at, "policyRule", J_OBJ);
    loc l_rule = AT(&at, "policyRule");
    json_t *policy = get(c, o, &at, "policy", J_ARR);
    const char *rule_text = rule != NULL ? cc_text(c, rule, &l_rule) : NULL;
    if (rule == NULL && (policy == NULL || json_array_size(policy) == 0) &&
        c->status == 0)
        issue(c, "invariant", &at, "policyRule",
              "ppc-1: a Consent needs a policy or a policyRule");
    const char *basis = NULL;
    if (by_patient)
        basis = "explicit";
    else if (by_practitioner && rule_text != NULL &&
             icontains(rule_text, "Mental Capacity Act"))
        basis = "best_interests";
    if (c->status != 0) {
        free(recorder);
        return false;
    }
    if (basis == NULL) {
        free(recorder);
        issue(c, "business-rule", &at, "performer",
              "Consent.performer must be the patient (explicit consent), or "
              "a practitioner with a policyRule naming the Mental Capacity "
              "Act (a best-interests decision)");
        return false;
    }
    if (recorded[0] == '\0' && when == NULL)
        issue(c, "required", &at, "dateTime",
              "Consent.dateTime is missing: %s consent needs the time it "
              "was recorded",
              basis);

    /* The consent covers the organisations it names, and no others. */
    for (size_t i = 0; i < c->ev->n_destinations; i++) {
        const char *code = c->ev->destinations[i]->code;
        if (consent_names_org(c, cs, code) == 0) {
            char e[ECHO_MAX + 4];
            echo(code, e, sizeof e);
            loc l_prov = AT(&at, "provision");
            issue(c, "business-rule", &l_prov, "actor",
                  "consent does not name %s, a performer of the referral", e);
        }
    }

    Handover__Consent *k = NEW_MSG(c, Handover__Consent, init_consent);
    if (k == NULL) {
        free(recorder);
        return false;
    }
    if (c->ev->consent != NULL)
        handover__consent__free_unpacked(c->ev->consent, NULL);
    c->ev->consent = k;
    set(c, &k->basis, basis);
    if (recorded[0] != '\0')
        set(c, &k->recorded_at, recorded);
    if (recorder != NULL)
        hov_pb_take(&k->recorded_by,
                    text_max(c, &l_perf, NULL, recorder, CONSENT_BY_MAX));
    free(recorder);
    if (cat != NULL)
        hov_pb_take(&k->notes,
                    text_max(c, &at, "category", cat, CONSENT_NOTES_MAX));
    return recorded[0] != '\0';
}

/* supportingInfo: the first Consent it references. */
static bool
read_consent(ctx *c, const res *sr, const loc *at)
{
    json_t *arr;
    size_t n = get_arr(c, sr->obj, at, "supportingInfo", &arr);
    loc l_arr = AT(at, "supportingInfo");
    if (n > MAX_REFS) {
        issue(c, "value", at, "supportingInfo",
              "supportingInfo holds %zu references, more than the %d "
              "Handover reads",
              n, MAX_REFS);
        n = MAX_REFS;
    }
    for (size_t i = 0; i < n && c->status == 0; i++) {
        json_t *ref = elem(c, arr, i, &l_arr, J_OBJ);
        loc l = AT_I(&l_arr, i);
        const res *r = resolve(c, sr, get_str(c, ref, &l, "reference"));
        if (is_type(r, "Consent"))
            return map_consent(c, r);
    }
    return false;
}

/* ---------------------------------------------------------- referral */

/* performer[] (or the single performer of a DeviceRequest) as
 * destinations. */
static void
add_destination(ctx *c, const res *holder, json_t *ref, const loc *at)
{
    Handover__Event *ev = c->ev;
    const char *display = NULL;
    bool bad = false;
    char *code = org_of_ref(c, holder, ref, at, &display, &bad, 0);
    if (code == NULL) {
        if (!bad && c->status == 0)
            issue(c, "required", at, NULL,
                  "performer names no organisation: give an identifier "
                  "with system https://fhir.nhs.uk/Id/ods-organization-code "
                  "or %s%s",
                  c->base, H_LOCAL_ORG);
        return;
    }
    for (size_t i = 0; i < ev->n_destinations; i++) {
        if (strcmp(ev->destinations[i]->code, code) == 0) {
            free(code);
            return;
        }
    }
    Handover__OrgRef *d = NEW_MSG(c, Handover__OrgRef, init_org_ref);
    if (d == NULL) {
        free(code);
        return;
    }
    hov_pb_take(&d->code, code);
    if (display != NULL)
        hov_pb_take(&d->name,
                    text_max(c, at, "display", display, ORG_NAME_MAX));
    ev->destinations[ev->n_destinations++] = d;
}

static void
read_performers(ctx *c, const res *sr, const loc *at)
{
    json_t *arr;
    size_t n = get_arr(c, sr->obj, at, "performer", &arr);
    loc l_arr = AT(at, "performer");
    if (n > MAX_REFS) {
        issue(c, "value", at, "performer",
              "performer holds %zu references, more than the %d Handover "
              "reads",
              n, MAX_REFS);
        return;
    }
    c->ev->destinations = new_array(c, n, sizeof *c->ev->destinations);
    for (size_t i = 0; i < n && c->status == 0 && c->ev->destinations; i++) {
        json_t *ref = elem(c, arr, i, &l_arr, J_OBJ);
        loc l = AT_I(&l_arr, i);
        if (ref != NULL)
            add_destination(c, sr, ref, &l);
    }
}

/* status and intent of a request; active and order (domain 6.3). */
static void
read_status_intent(ctx *c, const res *r, const loc *at, bool status_required)
{
    char e[ECHO_MAX + 4];
    const char *st = get_str(c, r->obj, at, "status");
    if (st == NULL && status_required && c->status == 0)
        issue(c, "required", at, "status", "%s.status is missing: send active",
              r->type);
    else if (st != NULL && strcmp(st, "active") != 0) {
        echo(st, e, sizeof e);
        issue(c, "value", at, "status",
              "%s.status %s is not active: Handover carries new requests "
              "only",
              r->type, e);
    }
    const char *in = get_str(c, r->obj, at, "intent");
    if (in == NULL && c->status == 0)
        issue(c, "required", at, "intent", "%s.intent is missing: send order",
              r->type);
    else if (in != NULL && strcmp(in, "order") != 0 &&
             strcmp(in, "original-order") != 0) {
        echo(in, e, sizeof e);
        issue(c, "value", at, "intent", "%s.intent %s is not order", r->type,
              e);
    }
}

static bool
voluntary_referral(const ctx *c)
{
    const Handover__Event *ev = c->ev;
    if (in_table(ev->referral->service, voluntary_services))
        return true;
    for (size_t i = 0; i < ev->n_destinations; i++)
        if (strncmp(ev->destinations[i]->code, H_LOCAL_PREFIX,
                    LOCAL_PREFIX_SZ) == 0)
            return true;
    return false;
}

static void
map_service_request(ctx *c, const res *sr)
{
    Handover__Event *ev = c->ev;
    loc at = ROOT(sr);
    json_t *o = sr->obj;
    c->focal_type = "ServiceRequest";

    const char *ref = business_identifier(c, sr, &at, c->ident);
    if (ref != NULL)
        set(c, &ev->source->ref, ref);
    read_status_intent(c, sr, &at, true);
    const char *prio = read_priority(c, o, &at, true);
    if (prio != NULL)
        set(c, &ev->priority, prio);

    json_t *code = get(c, o, &at, "code", J_OBJ);
    loc l_code = AT(&at, "code");
    char sys[FHIR_IN_SYSTEM_MAX + 64];
    snprintf(sys, sizeof sys, "%s%s", c->base, H_SERVICE);
    const char *svc = NULL;
    int found =
        code != NULL ? coding_in(c, code, &l_code, sys, &svc, NULL) : -1;
    char e[ECHO_MAX + 4];
    if (c->status == 0 && found < 0) {
        issue(c, "required", &at, "code",
              "ServiceRequest.code is missing: send the Handover service "
              "code (system %s)",
              sys);
    } else if (c->status == 0 && found == 0) {
        issue(c, "code-invalid", &at, "code",
              "ServiceRequest.code has no coding in %s", sys);
    } else if (svc != NULL && !in_table(svc, services)) {
        echo(svc, e, sizeof e);
        issue(c, "code-invalid", &at, "code",
              "service '%s' is not a Handover service (district-nursing, "
              "urgent-community-response, community-therapy, "
              "adult-social-care-assessment, carers-assessment, "
              "reablement, social-prescribing, home-from-hospital)",
              e);
    } else if (svc != NULL) {
        set(c, &ev->referral->service, svc);
    }

    const res *p = subject_of(c, sr, &at, "subject");
    if (p != NULL)
        map_patient(c, p, true);
    read_occurred(c, o, &at, "authoredOn");

    json_t *rq = get(c, o, &at, "requester", J_OBJ);
    loc l_rq = AT(&at, "requester");
    char *org = NULL;
    const char *org_name = NULL;
    bool org_bad = false;
    ev->source->author =
        person_of_ref(c, sr, rq, &l_rq, &org, &org_name, &org_bad);
    source_org_fallback(c, org, org_name, org_bad, &at);

    read_performers(c, sr, &at);
    acc reason = {0};
    read_reasons(c, o, &at, true, &reason);
    if (reason.len > 0)
        too_long(c, &at, "reasonCode", reason.p, REASON_MAX);
    acc_take(&reason, &ev->reason);

    bool consented = read_consent(c, sr, &at);
    if (c->status == 0 && !is_empty(ev->referral->service) &&
        voluntary_referral(c)) {
        if (ev->n_destinations == 0)
            issue(c, "required", &at, "performer",
                  "a referral to a voluntary organisation names it in "
                  "performer");
        if (!consented) {
            const char *to = "a voluntary organisation";
            for (size_t i = 0; i < ev->n_destinations; i++)
                if (strncmp(ev->destinations[i]->code, H_LOCAL_PREFIX,
                            LOCAL_PREFIX_SZ) == 0 ||
                    i + 1 == ev->n_destinations) {
                    to = ev->destinations[i]->code;
                    break;
                }
            echo(to, e, sizeof e);
            issue(c, "business-rule", &at, "supportingInfo",
                  "consent required: no explicit consent recorded for "
                  "referral to %s",
                  e);
        }
    }
    read_sr_notes(c, o, &at);
}

/* -------------------------------------------------------- equipment order */

/* parameter[]: quantity (valueQuantity, 1 to 99) and delivery-address
 * (valueCodeableConcept.text). */
static void parse_address(ctx *c, const char *text, const loc *at,
                          Handover__Address *a);

static void
read_parameters(ctx *c, const res *dr, const loc *at,
                Handover__EquipmentItem *item)
{
    Handover__EquipmentOrder *o = c->ev->equipment_order;
    json_t *arr;
    size_t n = get_arr(c, dr->obj, at, "parameter", &arr);
    loc l_arr = AT(at, "parameter");
    char sys[FHIR_IN_SYSTEM_MAX + 64];
    snprintf(sys, sizeof sys, "%s%s", c->base, H_DEVICE_PARAM);
    item->quantity = 1; /* as council files do when none is given (7.2) */
    for (size_t i = 0; i < n && c->status == 0; i++) {
        json_t *pm = elem(c, arr, i, &l_arr, J_OBJ);
        loc l = AT_I(&l_arr, i);
        json_t *cc = get(c, pm, &l, "code", J_OBJ);
        loc l_cc = AT(&l, "code");
        const char *code;
        if (cc == NULL || coding_in(c, cc, &l_cc, sys, &code, NULL) != 1)
            continue;
        if (strcmp(code, "quantity") == 0) {
            json_t *q = get(c, pm, &l, "valueQuantity", J_OBJ);
            loc l_q = AT(&l, "valueQuantity");
            json_t *v = get(c, q, &l_q, "value", J_NUM);
            if (c->status != 0)
                return;
            double d = v != NULL ? json_number_value(v) : 0;
            if (v == NULL) {
                issue(c, "required", &l, "valueQuantity",
                      "the quantity parameter needs valueQuantity.value");
            } else if (!(d >= 1 && d <= 99) || d != (double)(int)d) {
                issue(c, "value", &l_q, "value",
                      "quantity must be a whole number from 1 to 99");
            } else {
                item->quantity = (uint32_t)d;
            }
        } else if (strcmp(code, "delivery-address") == 0) {
            json_t *vc = get(c, pm, &l, "valueCodeableConcept", J_OBJ);
            loc l_vc = AT(&l, "valueCodeableConcept");
            const char *text = get_str(c, vc, &l_vc, "text");
            if (text == NULL && c->status == 0) {
                issue(c, "required", &l, "valueCodeableConcept",
                      "the delivery-address parameter needs "
                      "valueCodeableConcept.text");
            } else if (text != NULL && o->delivery_address == NULL) {
                /* The first line that gives one speaks for the order. */
                o->delivery_address =
                    NEW_MSG(c, Handover__Address, init_address);
                if (o->delivery_address != NULL)
                    parse_address(c, text, &l, o->delivery_address);
            }
        }
    }
}

/* A delivery address given as text: lines, then a postcode, separated by
 * line breaks (or by commas when there is none). */
static void
parse_address(ctx *c, const char *text, const loc *at, Handover__Address *a)
{
    char sep = strchr(text, '\n') != NULL ? '\n' : ',';
    size_t nparts = 1;
    for (const char *p = text; *p != '\0'; p++)
        nparts += *p == sep;
    char **parts = new_array(c, nparts, sizeof *parts);
    if (parts == NULL)
        return;
    size_t k = 0;
    for (const char *p = text;;) {
        const char *q = strchr(p, sep);
        size_t len = q != NULL ? (size_t)(q - p) : strlen(p);
        while (len > 0 && (*p == ' ' || *p == '\t' || *p == '\r')) {
            p++;
            len--;
        }
        while (len > 0 &&
               (p[len - 1] == ' ' || p[len - 1] == '\t' || p[len - 1] == '\r'))
            len--;
        if (len > 0) {
            parts[k] = malloc(len + 1);
            if (parts[k] == NULL) {
                c->oom = true;
                break;
            }
            memcpy(parts[k], p, len);
            parts[k++][len] = '\0';
        }
        if (q == NULL)
            break;
        p = q + 1;
    }
    char *pc = k > 0 && !c->oom ? postcode_norm(c, parts[k - 1]) : NULL;
    if (pc == NULL || !hov_postcode_valid(pc)) {
        if (!c->oom)
            issue(c, "value", at, "valueCodeableConcept",
                  "delivery-address must end with a UK postcode (such as "
                  "FE7 8QT)");
        free(pc);
    } else if (k - 1 > ADDRESS_MAX_LINES) {
        issue(c, "value", at, "valueCodeableConcept",
              "delivery-address has %zu lines before the postcode, more "
              "than %d",
              k - 1, ADDRESS_MAX_LINES);
        free(pc);
    } else {
        hov_pb_take(&a->postcode, pc);
        a->lines = new_array(c, k, sizeof *a->lines);
        for (size_t i = 0; i + 1 < k && a->lines != NULL; i++) {
            if (too_long(c, at, "valueCodeableConcept", parts[i],
                         NAME_MAX_CHARS))
                break;
            a->lines[a->n_lines++] = parts[i];
            parts[i] = NULL;
        }
    }
    for (size_t i = 0; i < k; i++)
        free(parts[i]);
    free(parts);
}

/* Copy the patient's address as the delivery address (domain 3.5). */
static void
address_from_patient(ctx *c, Handover__Address *a)
{
    const Handover__Patient *pt = c->ev->patient;
    a->lines = new_array(c, pt->n_address_lines, sizeof *a->lines);
    for (size_t i = 0; a->lines != NULL && i < pt->n_address_lines; i++) {
        a->lines[i] = xstrdup(c, pt->address_lines[i]);
        if (a->lines[i] == NULL)
            break;
        a->n_lines++;
    }
    if (!is_empty(pt->postcode))
        set(c, &a->postcode, pt->postcode);
}

static const char *
more_urgent(const char *a, const char *b)
{
    static const char *const order[] = {"two_hour_crisis", "urgent", "routine"};
    for (size_t i = 0; i < 3; i++)
        if ((a != NULL && strcmp(a, order[i]) == 0) ||
            (b != NULL && strcmp(b, order[i]) == 0))
            return order[i];
    return NULL;
}

/* One DeviceRequest: one item line. first: the line whose subject,
 * requester and authoredOn speak for the order. */
static void
map_device_line(ctx *c, const res *dr, size_t line, bool first,
                const char **prio, char required_by[11], acc *reason,
                acc *notes)
{
    Handover__Event *ev = c->ev;
    Handover__EquipmentOrder *o = ev->equipment_order;
    loc at = ROOT(dr);
    json_t *obj = dr->obj;
    char e[ECHO_MAX + 4];

    Handover__EquipmentItem *item =
        NEW_MSG(c, Handover__EquipmentItem, init_item);
    if (item == NULL)
        return;
    o->items[o->n_items++] = item;
    item->line = (uint32_t)line;

    /* identifier: the line's own (line_ref); no two lines the same. */
    char line_ident[FHIR_IN_IDENT_CAP] = "";
    const char *id = business_identifier(c, dr, &at, line_ident);
    if (id != NULL) {
        set(c, &item->line_ref, id);
        for (size_t i = 0; i + 1 < o->n_items; i++) {
            if (strcmp(o->items[i]->line_ref, id) == 0) {
                echo(id, e, sizeof e);
                issue(c, "duplicate", &at, "identifier",
                      "DeviceRequest identifier %s names two lines of the "
                      "order",
                      e);
                break;
            }
        }
    }

    /* groupIdentifier names the order (domain 3.8); without one, the only
     * line's own identifier does. */
    json_t *gid = get(c, obj, &at, "groupIdentifier", J_OBJ);
    loc l_gid = AT(&at, "groupIdentifier");
    const char *group = NULL;
    char group_ident[FHIR_IN_IDENT_CAP] = "";
    if (gid != NULL &&
        identifier_value(c, gid, &l_gid, &group, group_ident) == ID_ABSENT &&
        c->status == 0)
        issue(c, "required", &at, "groupIdentifier",
              "groupIdentifier needs a system and a value");
    if (first) {
        c->order_group = group != NULL;
        if (group != NULL) {
            memcpy(c->ident, group_ident, sizeof c->ident);
            set(c, &o->order_ref, group);
        } else if (id != NULL) {
            memcpy(c->ident, line_ident, sizeof c->ident);
            set(c, &o->order_ref, id);
        }
    } else if (c->status == 0 && !(c->order_group && group != NULL &&
                                   strcmp(group_ident, c->ident) == 0)) {
        /* Domain 6.3: the lines of one Bundle share one group. */
        issue(c, "business-rule", &at, "groupIdentifier",
              "the DeviceRequests of one Bundle must share one "
              "groupIdentifier: send one order per message");
    }

    read_status_intent(c, dr, &at, false);
    const char *p = read_priority(c, obj, &at, false);
    *prio = more_urgent(*prio, p);

    /* code[x]: the CES catalogue item. */
    json_t *cc = get(c, obj, &at, "codeCodeableConcept", J_OBJ);
    loc l_cc = AT(&at, "codeCodeableConcept");
    char sys[FHIR_IN_SYSTEM_MAX + 64];
    snprintf(sys, sizeof sys, "%s%s", c->base, H_CATALOGUE);
    const char *code = NULL, *display = NULL;
    int found = cc != NULL ? coding_in(c, cc, &l_cc, sys, &code, &display) : -1;
    if (c->status == 0 && cc == NULL) {
        if (get(c, obj, &at, "codeReference", J_OBJ) != NULL)
            issue(c, "code-invalid", &at, "codeReference",
                  "send the item as codeCodeableConcept with a coding in %s",
                  sys);
        else if (c->status == 0)
            issue(c, "required", &at, "code[x]",
                  "DeviceRequest.code[x] is missing: send "
                  "codeCodeableConcept with the CES catalogue item (%s)",
                  sys);
    } else if (c->status == 0 && found != 1) {
        issue(c, "code-invalid", &at, "codeCodeableConcept",
              "DeviceRequest.codeCodeableConcept has no coding in %s", sys);
    } else if (code != NULL) {
        echo(code, e, sizeof e);
        if (c->o->catalogue != NULL && !in_table(code, c->o->catalogue))
            issue(c, "code-invalid", &at, "codeCodeableConcept",
                  "item '%s' is not in the CES catalogue", e);
        else if (strlen(code) > ITEM_CODE_MAX)
            issue(c, "value", &at, "codeCodeableConcept",
                  "item code %s is longer than %d characters", e,
                  ITEM_CODE_MAX);
        else
            set(c, &item->item_code, code);
        if (display != NULL)
            set(c, &item->description, display);
    }

    read_parameters(c, dr, &at, item);

    const res *pt = subject_of(c, dr, &at, "subject");
    if (pt != NULL && first) {
        map_patient(c, pt, true);
    } else if (pt != NULL && pt != c->patient) {
        bool bad = false;
        char *nhs = patient_nhs_number(c, pt, false, &bad);
        if (nhs == NULL || strcmp(nhs, ev->patient->nhs_number) != 0)
            issue(c, "business-rule", &at, "subject",
                  "the DeviceRequests of one order name different patients");
        free(nhs);
    }

    /* occurrence[x]: the date needed by; the order's is the earliest. */
    json_t *period = get(c, obj, &at, "occurrencePeriod", J_OBJ);
    loc l_per = AT(&at, "occurrencePeriod");
    const char *when = get_str(c, period, &l_per, "end");
    const char *when_key = "end";
    const loc *when_at = &l_per;
    if (when == NULL) {
        when = get_str(c, obj, &at, "occurrenceDateTime");
        when_key = "occurrenceDateTime";
        when_at = &at;
    }
    char date[11];
    if (when != NULL && !date_london(when, date)) {
        echo(when, e, sizeof e);
        issue(c, "value", when_at, when_key,
              "'%s' is not a date (YYYY-MM-DD) or a dateTime with an offset",
              e);
    } else if (when != NULL &&
               (required_by[0] == '\0' || strcmp(date, required_by) < 0)) {
        memcpy(required_by, date, 11);
    }

    if (first)
        read_occurred(c, obj, &at, "authoredOn");

    json_t *rq = get(c, obj, &at, "requester", J_OBJ);
    loc l_rq = AT(&at, "requester");
    if (first) {
        char *org = NULL;
        const char *org_name = NULL;
        bool org_bad = false;
        Handover__Person *author =
            person_of_ref(c, dr, rq, &l_rq, &org, &org_name, &org_bad);
        source_org_fallback(c, org, org_name, org_bad, &at);
        ev->source->author = author;
        Handover__Person *pres = NEW_MSG(c, Handover__Person, init_person);
        o->prescriber = pres;
        if (pres != NULL && author != NULL) {
            set(c, &pres->name, author->name);
            set(c, &pres->role, author->role);
            set(c, &pres->phone, author->phone);
        }
        if (pres != NULL)
            set(c, &pres->org, ev->source->org->code);
        if (c->status == 0 && (pres == NULL || is_empty(pres->name)) && !c->oom)
            issue(c, "required", &at, "requester",
                  "the prescriber's name is missing: give requester.display "
                  "or a Practitioner with a name");
    }

    json_t *perf = get(c, obj, &at, "performer", J_OBJ);
    loc l_perf = AT(&at, "performer");
    if (perf != NULL)
        add_destination(c, dr, perf, &l_perf);

    read_reasons(c, obj, &at, false, reason);
    read_notes(c, obj, &at, notes);
}

/* The lines of one equipment order (domain 6.3): one DeviceRequest each,
 * in document order. */
static void
map_device_requests(ctx *c, const res *const *lines, size_t n)
{
    Handover__Event *ev = c->ev;
    Handover__EquipmentOrder *o = ev->equipment_order;
    c->focal_type = "DeviceRequest";
    if (n == 0) {
        loc at = ROOT(&c->bundle);
        issue(c, "required", &at, "entry",
              "an equipment-order message needs at least one DeviceRequest");
        return;
    }
    if (n > MAX_ITEMS) {
        loc at = ROOT(&c->bundle);
        issue(c, "value", &at, "entry",
              "the Bundle holds %zu DeviceRequests, more than an order's "
              "%d lines",
              n, MAX_ITEMS);
        return;
    }
    o->items = new_array(c, n, sizeof *o->items);
    ev->destinations = new_array(c, n, sizeof *ev->destinations);
    if (c->oom)
        return;
    const char *prio = NULL;
    char required_by[11] = "";
    acc reason = {0}, notes = {0};
    for (size_t i = 0; i < n && c->status == 0 && !c->oom; i++)
        map_device_line(c, lines[i], i + 1, i == 0, &prio, required_by, &reason,
                        &notes);
    set(c, &o->action, "deliver");
    const res *first = lines[0];
    loc at = ROOT(first);
    if (ev->source->ref == protobuf_c_empty_string && !is_empty(o->order_ref))
        set(c, &ev->source->ref, o->order_ref);
    if (required_by[0] != '\0')
        set(c, &o->required_by, required_by);
    else if (c->status == 0)
        issue(c, "required", &at, "occurrencePeriod",
              "the date the equipment is needed by is missing: send "
              "occurrencePeriod.end");

    if (o->delivery_address == NULL) {
        o->delivery_address = NEW_MSG(c, Handover__Address, init_address);
        if (o->delivery_address != NULL)
            address_from_patient(c, o->delivery_address);
    }

    /* Domain 3.5: no stated priority, urgent when needed by the next
     * working day after the order date, routine otherwise. The order date,
     * not today, so a resend gives the same event. */
    if (prio == NULL && !is_empty(ev->occurred_at) && required_by[0] != '\0') {
        uint64_t ms;
        char placed[11], next[11];
        if (hov_rfc3339_to_ms(ev->occurred_at, &ms)) {
            hov_date_london_at(ms, placed);
            if (next_working_day(placed, next))
                prio = strcmp(required_by, next) <= 0 ? "urgent" : "routine";
        }
    }
    if (prio != NULL)
        set(c, &ev->priority, prio);
    if (reason.len > 0)
        too_long(c, &at, "reasonCode", reason.p, REASON_MAX);
    acc_take(&reason, &ev->reason);
    if (notes.len > 0)
        too_long(c, &at, "note", notes.p, ACCESS_MAX);
    acc_take(&notes, &ev->access_notes);
}

/* ------------------------------------------------------------- outcome */

static const task_status *
status_by_business(const char *code)
{
    for (size_t i = 0; i < N_TASK_STATUSES; i++)
        if (strcmp(task_statuses[i].business, code) == 0 ||
            strcmp(task_statuses[i].canon, code) == 0)
            return &task_statuses[i];
    return NULL;
}

static bool
task_status_fits(const task_status *ts, const char *task)
{
    for (size_t i = 0; i < 3 && ts->task[i] != NULL; i++)
        if (strcmp(ts->task[i], task) == 0)
            return true;
    return false;
}

static void
map_task(ctx *c, const res *t)
{
    Handover__Event *ev = c->ev;
    Handover__Outcome *out = ev->outcome;
    loc at = ROOT(t);
    json_t *o = t->obj;
    char e[ECHO_MAX + 4], e2[ECHO_MAX + 4];
    c->focal_type = "Task";

    const char *ref = business_identifier(c, t, &at, c->ident);
    if (ref != NULL)
        set(c, &ev->source->ref, ref);

    /* Read status, statusReason and businessStatus first: each is judged
     * by the others, and problems are filed in that order. */
    const char *tstatus = get_str(c, o, &at, "status");
    json_t *sreason = get(c, o, &at, "statusReason", J_OBJ);
    loc l_sr = AT(&at, "statusReason");
    char rsys[FHIR_IN_SYSTEM_MAX + 64], bsys[FHIR_IN_SYSTEM_MAX + 64];
    snprintf(rsys, sizeof rsys, "%s%s", c->base, H_REASON);
    snprintf(bsys, sizeof bsys, "%s%s", c->base, H_OUTCOME);
    const char *rcode = NULL, *rtext = NULL;
    if (sreason != NULL) {
        coding_in(c, sreason, &l_sr, rsys, &rcode, NULL);
        rtext = get_str(c, sreason, &l_sr, "text");
    }
    json_t *bstat = get(c, o, &at, "businessStatus", J_OBJ);
    loc l_bs = AT(&at, "businessStatus");
    const char *bcode = NULL;
    int bfound =
        bstat != NULL ? coding_in(c, bstat, &l_bs, bsys, &bcode, NULL) : -1;
    if (c->status != 0)
        return;

    const task_status *ts = NULL;
    if (bcode != NULL)
        ts = status_by_business(bcode);
    else if (tstatus != NULL && (strcmp(tstatus, "accepted") == 0 ||
                                 strcmp(tstatus, "rejected") == 0 ||
                                 strcmp(tstatus, "cancelled") == 0))
        ts = status_by_business(tstatus);

    if (tstatus == NULL)
        issue(c, "required", &at, "status", "Task.status is missing");
    else if (ts != NULL && !task_status_fits(ts, tstatus)) {
        echo(tstatus, e, sizeof e);
        issue(c, "value", &at, "status",
              "Task.status %s does not fit businessStatus %s: send %s", e,
              ts->business, ts->task[0]);
    }
    if (ts != NULL && ts->reasons != NULL) {
        if (rcode == NULL)
            issue(c, "required", &at, "statusReason",
                  "a %s outcome needs statusReason with a coding in %s",
                  ts->business, rsys);
        else if (!in_table(rcode, ts->reasons)) {
            echo(rcode, e, sizeof e);
            issue(c, "code-invalid", &l_sr, NULL,
                  "reason '%s' is not a reason for %s", e, ts->business);
        } else {
            set(c, &out->reason_code, rcode);
        }
    }
    if (bcode != NULL && ts == NULL) {
        echo(bcode, e, sizeof e);
        issue(c, "code-invalid", &at, "businessStatus",
              "businessStatus '%s' is not an outcome status (acknowledged, "
              "accepted, rejected, completed, cancelled, delivered, "
              "cannot-deliver, collected)",
              e);
    } else if (bstat != NULL && bfound != 1) {
        issue(c, "code-invalid", &at, "businessStatus",
              "Task.businessStatus has no coding in %s", bsys);
    } else if (ts == NULL && tstatus != NULL) {
        echo(tstatus, e, sizeof e);
        issue(c, "required", &at, "businessStatus",
              "Task.businessStatus is missing, and Task.status %s does not "
              "say which outcome this is",
              e);
    } else if (ts != NULL && ts->items) {
        issue(c, "business-rule", &at, "businessStatus",
              "a %s outcome names item lines, which the GP interface does "
              "not carry",
              ts->business);
    }
    if (ts != NULL)
        set(c, &out->status, ts->canon);

    /* focus: the event answered. */
    json_t *focus = get(c, o, &at, "focus", J_OBJ);
    loc l_f = AT(&at, "focus");
    json_t *fid = get(c, focus, &l_f, "identifier", J_OBJ);
    loc l_fid = AT(&l_f, "identifier");
    const char *fsys = get_str(c, fid, &l_fid, "system");
    const char *fval = get_str(c, fid, &l_fid, "value");
    if (c->status != 0)
        return;
    if (fval == NULL || !is_hsys(c, fsys, H_EVENT_ID)) {
        issue(c, "required", &at, "focus",
              "Task.focus.identifier with system %s%s is missing: it names "
              "the event this outcome answers",
              c->base, H_EVENT_ID);
    } else {
        char id[37];
        size_t n = strlen(fval);
        for (size_t i = 0; i < n && i < sizeof id - 1; i++)
            id[i] = lower(fval[i]);
        id[n < sizeof id - 1 ? n : sizeof id - 1] = '\0';
        if (n != 36 || !hov_uuid_valid(id)) {
            echo(fval, e, sizeof e);
            issue(c, "value", &l_fid, "value",
                  "Task.focus.identifier.value %s is not a Handover event id "
                  "(a UUID)",
                  e);
        } else {
            set(c, &ev->in_reply_to, id);
        }
    }

    /* for: the patient, by NHS number; optional on an outcome (3.3). */
    json_t *pfor = get(c, o, &at, "for", J_OBJ);
    loc l_for = AT(&at, "for");
    json_t *pid = get(c, pfor, &l_for, "identifier", J_OBJ);
    loc l_pid = AT(&l_for, "identifier");
    const char *psys = get_str(c, pid, &l_pid, "system");
    const char *pval = get_str(c, pid, &l_pid, "value");
    if (psys != NULL && strcmp(psys, SYS_NHS) == 0 && pval != NULL) {
        char *nhs = xstrdup(c, pval);
        if (nhs != NULL) {
            size_t k = 0;
            for (size_t j = 0; nhs[j] != '\0'; j++)
                if (nhs[j] != ' ' && nhs[j] != '-')
                    nhs[k++] = nhs[j];
            nhs[k] = '\0';
            check_nhs_number(c, nhs, &l_pid, "value");
            hov_pb_take(&ev->patient->nhs_number, nhs);
        }
    } else if (pfor != NULL) {
        const res *p = resolve(c, t, get_str(c, pfor, &l_for, "reference"));
        if (is_type(p, "Patient"))
            map_patient(c, p, false);
    }

    /* occurred_at: lastModified, else executionPeriod.end, else
     * authoredOn (domain 6.3). */
    json_t *ep = get(c, o, &at, "executionPeriod", J_OBJ);
    loc l_ep = AT(&at, "executionPeriod");
    const char *end = get_str(c, ep, &l_ep, "end");
    const char *authored = get_str(c, o, &at, "authoredOn");
    const char *modified = get_str(c, o, &at, "lastModified");
    const char *when = modified != NULL ? modified
                       : end != NULL    ? end
                                        : authored;
    const char *key = modified != NULL ? "lastModified"
                      : end != NULL    ? "executionPeriod"
                                       : "authoredOn";
    char stamp[40];
    if (when != NULL && !datetime_utc(when, stamp)) {
        echo(when, e2, sizeof e2);
        issue(c, "value", &at, key,
              "'%s' is not a FHIR dateTime with Z or an offset", e2);
    } else if (when != NULL) {
        set(c, &ev->occurred_at, stamp);
    } else if (c->recorded_at[0] != '\0') {
        set(c, &ev->occurred_at, c->recorded_at);
    } else if (c->status == 0) {
        issue(c, "required", &at, "lastModified",
              "Task.lastModified is missing: it gives the time of the "
              "outcome");
    }

    /* owner: the organisation answering. */
    json_t *owner = get(c, o, &at, "owner", J_OBJ);
    loc l_own = AT(&at, "owner");
    const char *owner_name = NULL;
    bool bad = false;
    char *org = org_of_ref(c, t, owner, &l_own, &owner_name, &bad, 0);
    if (c->org_from_header) {
        free(org);
    } else if (org != NULL) {
        set_source_org(c, org, owner_name, &at, "owner");
    } else if (!bad && c->status == 0) {
        issue(c, "required", &at, "owner",
              "Task.owner is missing: give the answering organisation's ODS "
              "code");
    }

    /* note: the reason's text when statusReason gives none; its author
     * is the person who acted. */
    json_t *notes;
    size_t nn = get_arr(c, o, &at, "note", &notes);
    loc l_notes = AT(&at, "note");
    acc text = {0};
    const char *author = NULL;
    for (size_t i = 0; i < nn && c->status == 0 && !c->oom; i++) {
        json_t *a = elem(c, notes, i, &l_notes, J_OBJ);
        loc l = AT_I(&l_notes, i);
        const char *s = get_str(c, a, &l, "text");
        if (author == NULL)
            author = get_str(c, a, &l, "authorString");
        if (author == NULL) {
            json_t *ar = get(c, a, &l, "authorReference", J_OBJ);
            loc l_ar = AT(&l, "authorReference");
            author = get_str(c, ar, &l_ar, "display");
        }
        if (s != NULL && rtext == NULL)
            acc_add(c, &text, s);
    }
    if (rtext != NULL) {
        hov_pb_take(&out->reason_text,
                    text_max(c, &l_sr, "text", rtext, OUTCOME_TEXT_MAX));
    } else if (text.len > 0) {
        too_long(c, &at, "note", text.p, OUTCOME_TEXT_MAX);
    }
    acc_take(&text, &out->reason_text);
    if (author != NULL) {
        Handover__Person *p = NEW_MSG(c, Handover__Person, init_person);
        ev->source->author = p;
        if (p != NULL)
            hov_pb_take(&p->name,
                        text_max(c, &l_notes, NULL, author, PERSON_NAME_MAX));
    }
}

/* ------------------------------------------------------------ message */

static ev_kind
event_kind(const char *code)
{
    if (strcmp(code, "referral") == 0)
        return KIND_REFERRAL;
    if (strcmp(code, "equipment-order") == 0)
        return KIND_ORDER;
    if (strcmp(code, "outcome") == 0)
        return KIND_OUTCOME;
    if (strcmp(code, "discharge") == 0)
        return KIND_DISCHARGE;
    return KIND_NONE;
}

static const char *
kind_resource(ev_kind k)
{
    switch (k) {
    case KIND_REFERRAL:
        return "ServiceRequest";
    case KIND_ORDER:
        return "DeviceRequest";
    case KIND_OUTCOME:
        return "Task";
    default:
        return NULL;
    }
}

static bool attach_body(ctx *c, ev_kind k);

/* MessageHeader mh: event, sender, source, focus; then the focal
 * resources. */
static void
map_header(ctx *c, const res *mh)
{
    loc at = ROOT(mh);
    json_t *o = mh->obj;
    char e[ECHO_MAX + 4];
    char sys[FHIR_IN_SYSTEM_MAX + 64];
    snprintf(sys, sizeof sys, "%s%s", c->base, H_EVENT_TYPE);

    ev_kind k = KIND_NONE;
    json_t *ec = get(c, o, &at, "eventCoding", J_OBJ);
    loc l_ec = AT(&at, "eventCoding");
    const char *esys = get_str(c, ec, &l_ec, "system");
    const char *ecode = get_str(c, ec, &l_ec, "code");
    if (c->status != 0)
        return;
    if (ec == NULL) {
        if (get(c, o, &at, "eventUri", J_STR) != NULL)
            issue(c, "code-invalid", &at, "eventUri",
                  "send MessageHeader.eventCoding with system %s", sys);
        else if (c->status == 0)
            issue(c, "required", &at, "eventCoding",
                  "MessageHeader.eventCoding is missing (system %s)", sys);
    } else if (esys == NULL || strcmp(esys, sys) != 0 || ecode == NULL) {
        issue(c, "code-invalid", &at, "eventCoding",
              "MessageHeader.eventCoding must have system %s and a code", sys);
    } else {
        k = event_kind(ecode);
        if (k == KIND_NONE) {
            echo(ecode, e, sizeof e);
            issue(c, "code-invalid", &l_ec, "code",
                  "event '%s' is not referral, equipment-order or outcome", e);
        }
    }
    if (k == KIND_DISCHARGE) {
        /* Discharges flow from the trust to the GP only (domain 6.3). */
        issue(c, "business-rule", &at, "eventCoding",
              "agency gp may not publish discharge events");
        return;
    }
    if (k != KIND_NONE && !attach_body(c, k))
        return;

    json_t *sender = get(c, o, &at, "sender", J_OBJ);
    loc l_snd = AT(&at, "sender");
    const char *sname = NULL;
    bool bad = false;
    char *org = org_of_ref(c, mh, sender, &l_snd, &sname, &bad, 0);
    if (org != NULL) {
        set_source_org(c, org, sname, &at, "sender");
        c->org_from_header = true;
    } else if (!bad && c->status == 0) {
        issue(c, "required", &at, "sender",
              "MessageHeader.sender is missing: give the sending "
              "organisation's ODS code");
    }
    /* Without a usable sender the focal resources must not supply one: the
     * sender is the organisation the message speaks for (6.4). */
    c->org_from_header = true;

    json_t *src = get(c, o, &at, "source", J_OBJ);
    loc l_src = AT(&at, "source");
    const char *endpoint = get_str(c, src, &l_src, "endpoint");
    const char *name = get_str(c, src, &l_src, "name");
    if (c->status == 0 && src == NULL)
        issue(c, "required", &at, "source",
              "MessageHeader.source is missing (R4 requires "
              "source.endpoint)");
    else if (c->status == 0 && endpoint == NULL)
        issue(c, "required", &l_src, "endpoint",
              "MessageHeader.source.endpoint is missing (R4 requires it)");
    if (name != NULL)
        hov_pb_take(&c->ev->source->system,
                    text_max(c, &l_src, "name", name, SYSTEM_NAME_MAX));

    /* focus: the resources the event is about. */
    json_t *arr;
    size_t n = get_arr(c, o, &at, "focus", &arr);
    loc l_arr = AT(&at, "focus");
    const char *want = kind_resource(k);
    const res *focal = NULL;
    bool several = false;
    if (n == 0 && c->status == 0)
        issue(c, "required", &at, "focus",
              "MessageHeader.focus is missing: it names the %s",
              want != NULL ? want : "request");
    if (n > MAX_REFS)
        n = MAX_REFS;
    for (size_t i = 0; i < n && c->status == 0; i++) {
        json_t *ref = elem(c, arr, i, &l_arr, J_OBJ);
        loc l = AT_I(&l_arr, i);
        const char *r = get_str(c, ref, &l, "reference");
        const res *fr = resolve(c, mh, r);
        if (fr == NULL || fr->container != NULL) {
            echo(r != NULL ? r : "(none)", e, sizeof e);
            issue(c, "required", &l, NULL,
                  "MessageHeader.focus reference %s is not an entry of the "
                  "Bundle",
                  e);
            continue;
        }
        if (want != NULL && strcmp(fr->type, want) != 0) {
            issue(c, "value", &l, NULL,
                  "MessageHeader.focus names a %s; a %s message is about a "
                  "%s",
                  fr->type, ecode, want);
            continue;
        }
        if (focal == NULL)
            focal = fr;
        else if (fr != focal)
            several = true;
    }
    if (k == KIND_NONE || c->status != 0)
        return;
    if (several && k != KIND_ORDER) {
        issue(c, "business-rule", &at, "focus",
              "a message carries one %s: send one message each", want);
        return;
    }
    if (focal == NULL)
        return;

    switch (k) {
    case KIND_REFERRAL:
        map_service_request(c, focal);
        break;
    case KIND_OUTCOME:
        map_task(c, focal);
        break;
    case KIND_ORDER: {
        /* Every DeviceRequest entry is a line: one left out of focus must
         * not vanish from the order. */
        const res **lines = new_array(c, c->nentries, sizeof *lines);
        size_t nl = 0;
        for (size_t i = 0; lines != NULL && i < c->nentries; i++)
            if (is_type(c->entries[i], "DeviceRequest"))
                lines[nl++] = c->entries[i];
        if (lines != NULL)
            map_device_requests(c, lines, nl);
        free(lines);
        break;
    }
    default:
        break;
    }
}

/* A message Bundle (domain 6.4). */
static void
map_message(ctx *c, json_t *root)
{
    res *b = &c->bundle;
    loc at = ROOT(b);
    json_t *bid = get(c, root, &at, "identifier", J_OBJ);
    loc l_bid = AT(&at, "identifier");
    if (c->status == 0 && bid == NULL)
        issue(c, "required", &at, "identifier",
              "Bundle.identifier is missing (system urn:ietf:rfc:3986, value "
              "urn:uuid:...)");
    else if (bid != NULL && get_str(c, bid, &l_bid, "value") == NULL &&
             c->status == 0)
        issue(c, "required", &l_bid, "value", "Bundle.identifier has no value");

    const char *type = get_str(c, root, &at, "type");
    if (c->status == 0 && (type == NULL || strcmp(type, "message") != 0)) {
        char e[ECHO_MAX + 4];
        echo(type != NULL ? type : "(none)", e, sizeof e);
        stop(c, 400, "invalid", &at, "type",
             "Bundle.type %s is not message: this endpoint takes message "
             "Bundles only",
             e);
        return;
    }
    const char *ts = get_str(c, root, &at, "timestamp");
    if (c->status == 0 && ts == NULL) {
        issue(c, "required", &at, "timestamp",
              "Bundle.timestamp is missing: it is the time the message was "
              "sent");
    } else if (ts != NULL && !datetime_utc(ts, c->recorded_at)) {
        c->recorded_at[0] = '\0';
        char e[ECHO_MAX + 4];
        echo(ts, e, sizeof e);
        issue(c, "value", &at, "timestamp",
              "Bundle.timestamp '%s' is not a FHIR instant (with Z or an "
              "offset)",
              e);
    }
    if (c->recorded_at[0] != '\0')
        set(c, &c->ev->recorded_at, c->recorded_at);

    index_bundle(c, root);
    if (c->status != 0 || c->oom)
        return;
    const res *mh = c->nentries > 0 ? c->entries[0] : NULL;
    if (!is_type(mh, "MessageHeader")) {
        loc l_e = AT(&at, "entry");
        loc l0 = AT_I(&l_e, 0);
        issue(c, "invariant", c->nentries > 0 ? &l0 : &at,
              c->nentries > 0 ? NULL : "entry",
              "bdl-12: the first entry of a message Bundle must be a "
              "MessageHeader");
        /* Read on from the header where it is, so the sender learns
         * every other problem too. */
        mh = NULL;
        for (size_t i = 0; i < c->nentries && mh == NULL; i++)
            if (is_type(c->entries[i], "MessageHeader"))
                mh = c->entries[i];
        if (mh == NULL)
            return;
    }
    map_header(c, mh);
}

/* ------------------------------------------------------------ the map */

/* The event's skeleton: envelope, source, patient. Every part is
 * initialised as soon as it is allocated, so free_unpacked can take a
 * half-built event apart. */
static bool
new_event(ctx *c)
{
    Handover__Event *ev = NEW_MSG(c, Handover__Event, init_event);
    if (ev == NULL)
        return false;
    c->ev = ev;
    ev->source = NEW_MSG(c, Handover__Source, init_source);
    if (ev->source != NULL)
        ev->source->org = NEW_MSG(c, Handover__OrgRef, init_org_ref);
    ev->patient = NEW_MSG(c, Handover__Patient, init_patient);
    set(c, &ev->schema, "handover.event.v1");
    return !c->oom;
}

static bool
attach_body(ctx *c, ev_kind k)
{
    Handover__Event *ev = c->ev;
    c->kind = k;
    switch (k) {
    case KIND_REFERRAL:
        ev->referral = NEW_MSG(c, Handover__Referral, init_referral);
        if (ev->referral != NULL)
            ev->body_case = HANDOVER__EVENT__BODY_REFERRAL;
        set(c, &ev->event_type, "referral");
        break;
    case KIND_ORDER:
        ev->equipment_order = NEW_MSG(c, Handover__EquipmentOrder, init_order);
        if (ev->equipment_order != NULL)
            ev->body_case = HANDOVER__EVENT__BODY_EQUIPMENT_ORDER;
        set(c, &ev->event_type, "equipment_order");
        break;
    case KIND_OUTCOME:
        ev->outcome = NEW_MSG(c, Handover__Outcome, init_outcome);
        if (ev->outcome != NULL)
            ev->body_case = HANDOVER__EVENT__BODY_OUTCOME;
        set(c, &ev->event_type, "outcome");
        break;
    default:
        break;
    }
    return !c->oom;
}

/* Domain 3.8: the event id is a version 5 UUID over
 * fhir|<system>|<value> of the focal resource's business identifier. */
static void
finish_event(ctx *c)
{
    Handover__Event *ev = c->ev;
    size_t len = strlen("fhir|") + strlen(c->ident);
    char *name = malloc(len + 1);
    if (name == NULL) {
        c->oom = true;
        return;
    }
    snprintf(name, len + 1, "fhir|%s", c->ident);
    char id[37];
    hov_error err = {0};
    hov_err rc = hov_uuid_v5(HOV_EVENT_ID_NS, name, len, id, &err);
    free(name);
    if (rc != HOV_OK) {
        c->oom = true; /* the hash failed: temporary, like memory */
        return;
    }
    set(c, &ev->event_id, id);
    /* A new request starts its journey; an outcome's correlation_id is
     * the answered event's, which the hub copies (hub/commit.c). */
    if (c->kind != KIND_OUTCOME)
        set(c, &ev->correlation_id, id);
    hov_strlcpy(c->r->resource_type, sizeof c->r->resource_type, c->focal_type);
    hov_strlcpy(c->r->identifier, sizeof c->r->identifier, c->ident);
}

static const char *
endpoint_type(fhir_in_endpoint ep)
{
    switch (ep) {
    case FHIR_IN_SERVICE_REQUEST:
        return "ServiceRequest";
    case FHIR_IN_DEVICE_REQUEST:
        return "DeviceRequest";
    case FHIR_IN_TASK:
        return "Task";
    case FHIR_IN_MESSAGE:
        return "Bundle";
    }
    return "";
}

/* Why content_type is refused (domain 6.1), into why; true when it is
 * accepted. */
static bool media_type_check(const char *ct, char *why, size_t whysz);

/* The request as one resource or a message Bundle. */
static void
map_request(ctx *c, fhir_in_endpoint ep, json_t *root)
{
    res top_holder;
    res_init(&top_holder, root, endpoint_type(ep), NULL, 0, endpoint_type(ep));
    loc at = ROOT(&top_holder);
    const char *want = endpoint_type(ep);
    const char *type = get_str(c, root, &at, "resourceType");
    if (c->status != 0)
        return;
    if (type == NULL) {
        stop(c, 400, "invalid", NULL, NULL,
             "resourceType is missing: the body must be a FHIR %s", want);
        return;
    }
    if (strcmp(type, want) != 0) {
        char e[ECHO_MAX + 4];
        echo(type, e, sizeof e);
        stop(c, 400, "invalid", NULL, NULL,
             "resourceType %s does not match endpoint %s", e, want);
        return;
    }
    if (!new_event(c))
        return;

    if (ep == FHIR_IN_MESSAGE) {
        c->in_bundle = true;
        res_init(&c->bundle, root, "Bundle", NULL, 0, "Bundle");
        map_message(c, root);
        return;
    }
    const res *top = index_single(c, root, want);
    if (top == NULL)
        return;
    /* Posted on its own: recorded_at is meta.lastUpdated when sent. */
    loc l_top = ROOT(top);
    json_t *meta = get(c, root, &l_top, "meta", J_OBJ);
    loc l_meta = AT(&l_top, "meta");
    const char *lu = get_str(c, meta, &l_meta, "lastUpdated");
    if (lu != NULL && !datetime_utc(lu, c->recorded_at)) {
        c->recorded_at[0] = '\0';
        char e[ECHO_MAX + 4];
        echo(lu, e, sizeof e);
        issue(c, "value", &l_meta, "lastUpdated",
              "meta.lastUpdated '%s' is not a FHIR instant", e);
    }
    if (c->recorded_at[0] != '\0')
        set(c, &c->ev->recorded_at, c->recorded_at);

    switch (ep) {
    case FHIR_IN_SERVICE_REQUEST:
        if (attach_body(c, KIND_REFERRAL))
            map_service_request(c, top);
        break;
    case FHIR_IN_DEVICE_REQUEST:
        if (attach_body(c, KIND_ORDER))
            map_device_requests(c, &top, 1);
        break;
    case FHIR_IN_TASK:
        if (attach_body(c, KIND_OUTCOME))
            map_task(c, top);
        break;
    case FHIR_IN_MESSAGE:
        break;
    }
}

/* The jansson error text without its "near '...'" part, which quotes the
 * input and so may quote a patient's name or notes. */
static void
parse_error_text(const json_error_t *je, char *out, size_t outsz)
{
    hov_strlcpy(out, outsz, je->text);
    char *near = strstr(out, " near ");
    if (near != NULL)
        *near = '\0';
    for (char *p = out; *p != '\0'; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
            *p = '?';
}

int
fhir_in(fhir_in_endpoint ep, const void *body, size_t len,
        const char *content_type, const fhir_in_opts *o, fhir_in_result *r)
{
    static const fhir_in_opts no_opts = {0};
    memset(r, 0, sizeof *r);
    ctx c = {.o = o != NULL ? o : &no_opts, .r = r};
    c.base = c.o->base != NULL ? c.o->base : FHIR_IN_DEFAULT_BASE;
    c.base_len = strlen(c.base);
    c.gp_orgs = c.o->gp_orgs != NULL ? c.o->gp_orgs : default_gp_orgs;
    if (c.o->today != NULL)
        hov_strlcpy(c.today, sizeof c.today, c.o->today);
    else
        hov_today_london(c.today);
    size_t max = c.o->max_body > 0 ? c.o->max_body : FHIR_IN_DEFAULT_MAX_BODY;

    char why[FHIR_IN_DIAG_CAP];
    json_t *root = NULL;
    if (!media_type_check(content_type, why, sizeof why)) {
        stop(&c, 415, "not-supported", NULL, NULL, "%s", why);
    } else if (len > max) {
        stop(&c, 413, "too-long", NULL, NULL,
             "request body of %zu bytes exceeds the %zu-byte limit", len, max);
    } else {
        const char *p = body != NULL ? body : "";
        /* RFC 8259 8.1 lets a parser ignore one byte-order mark (domain
         * 3); Handover never sends one. */
        if (len >= 3 && memcmp(p, "\xef\xbb\xbf", 3) == 0) {
            p += 3;
            len -= 3;
        }
        json_error_t je;
        /* Duplicate keys are refused: clinical content must not depend on
         * which value a parser keeps. JSON_ALLOW_NUL is never passed, so
         * \u0000 is refused too. */
        root = json_loadb(p, len, JSON_REJECT_DUPLICATES, &je);
        if (root == NULL) {
            char text[128];
            parse_error_text(&je, text, sizeof text);
            stop(&c, 400, "structure", NULL, NULL,
                 "JSON parse error at line %d, column %d: %s", je.line,
                 je.column, text);
        } else if (!json_is_object(root)) {
            stop(&c, 400, "structure", NULL, NULL,
                 "the body is %s, not a JSON object (a FHIR resource)",
                 json_kind(root));
        } else {
            map_request(&c, ep, root);
        }
    }
    if (!c.oom && c.status == 0 && r->oo.n == 0 && c.ev != NULL &&
        (c.kind == KIND_NONE || c.ident[0] == '\0'))
        /* Every path that leaves these unset files its reason; this keeps
         * a half-mapped event from ever being published. */
        fhir_in_outcome_add(&r->oo, "error", "exception", NULL,
                            "the request could not be mapped to an event");
    if (!c.oom && c.status == 0 && r->oo.n == 0 && c.ev != NULL)
        finish_event(&c);

    if (c.ev != NULL && (c.oom || c.status != 0 || r->oo.n > 0)) {
        handover__event__free_unpacked(c.ev, NULL);
        c.ev = NULL;
    }
    hov_map_free(c.refs);
    free(c.entries);
    free(c.res);
    json_decref(root);

    if (c.oom) {
        memset(&r->oo, 0, sizeof r->oo);
        fhir_in_outcome_add(&r->oo, "error", "transient", NULL,
                            "out of memory: resend later");
        r->status = 503;
    } else if (c.status != 0) {
        r->status = c.status;
    } else if (r->oo.n > 0) {
        r->status = 422;
    } else {
        r->event = c.ev;
        r->status = 0;
    }
    if (r->status != 0) {
        r->resource_type[0] = '\0';
        r->identifier[0] = '\0';
    }
    return r->status;
}

void
fhir_in_result_free(fhir_in_result *r)
{
    if (r == NULL)
        return;
    if (r->event != NULL)
        handover__event__free_unpacked(r->event, NULL);
    r->event = NULL;
}

/* ------------------------------------------------------- media type */

/* RFC 9110 5.6.2 token characters. */
static bool
is_tchar(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
           (ch >= '0' && ch <= '9') || strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

static const char *
skip_ows(const char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

static const char *
token_end(const char *p)
{
    while (*p != '\0' && is_tchar(*p))
        p++;
    return p;
}

/* Content-Type per RFC 9110 8.3 and 5.6.6: type "/" subtype, then
 * parameters separated by ";" with optional whitespace; a parameter value
 * is a token or a quoted string. Type, subtype and parameter names are
 * case-insensitive, and so is the charset value. */
static bool
media_type_check(const char *ct, char *why, size_t whysz)
{
    static const char send[] = "send application/fhir+json; charset=utf-8";
    char e[ECHO_MAX + 4];
    if (ct == NULL || *skip_ows(ct) == '\0') {
        snprintf(why, whysz, "Content-Type is missing: %s", send);
        return false;
    }
    echo(ct, e, sizeof e);
    if (strlen(ct) > MEDIA_TYPE_MAX) {
        snprintf(why, whysz, "Content-Type %s is too long: %s", e, send);
        return false;
    }
    const char *p = skip_ows(ct);
    const char *t = p;
    p = token_end(p);
    size_t tl = (size_t)(p - t);
    const char *st = NULL;
    size_t sl = 0;
    if (*p == '/') {
        st = ++p;
        p = token_end(p);
        sl = (size_t)(p - st);
    }
    if (st == NULL || tl == 0 || sl == 0) {
        snprintf(why, whysz, "Content-Type %s is not a media type: %s", e,
                 send);
        return false;
    }
    if (!ieq_n(t, tl, "application") ||
        !(ieq_n(st, sl, "fhir+json") || ieq_n(st, sl, "json"))) {
        char mt[ECHO_MAX + 4], tmp[ECHO_MAX + 4];
        size_t n = tl + 1 + sl < sizeof tmp ? tl + 1 + sl : sizeof tmp - 1;
        memcpy(tmp, t, n);
        tmp[n] = '\0';
        echo(tmp, mt, sizeof mt);
        snprintf(why, whysz, "Content-Type %s is not supported: %s", mt, send);
        return false;
    }
    for (;;) {
        p = skip_ows(p);
        if (*p == '\0')
            return true;
        if (*p != ';')
            break;
        p = skip_ows(p + 1);
        if (*p == ';' || *p == '\0')
            continue; /* an empty parameter (RFC 9110 5.6.6) */
        const char *name = p;
        p = token_end(p);
        size_t nl = (size_t)(p - name);
        if (nl == 0 || *p != '=')
            break;
        p++;
        char val[64];
        size_t vl = 0;
        if (*p == '"') {
            for (p++; *p != '"'; p++) {
                if (*p == '\0')
                    goto bad;
                if (*p == '\\' && p[1] != '\0')
                    p++;
                if (vl + 1 < sizeof val)
                    val[vl++] = *p;
            }
            p++;
        } else {
            const char *v = p;
            p = token_end(p);
            vl = (size_t)(p - v) < sizeof val - 1 ? (size_t)(p - v)
                                                  : sizeof val - 1;
            memcpy(val, v, vl);
            if (p == v)
                break;
        }
        val[vl] = '\0';
        char ev[ECHO_MAX + 4];
        echo(val, ev, sizeof ev);
        if (ieq_n(name, nl, "charset") && !ieq_n(val, vl, "utf-8")) {
            snprintf(why, whysz,
                     "charset %s is not supported: FHIR JSON is UTF-8; %s", ev,
                     send);
            return false;
        }
        if (ieq_n(name, nl, "fhirVersion") && strcmp(val, "4.0") != 0 &&
            strcmp(val, "4.0.1") != 0) {
            snprintf(why, whysz,
                     "fhirVersion %s is not supported: Handover speaks FHIR "
                     "R4 (4.0)",
                     ev);
            return false;
        }
    }
bad:
    snprintf(why, whysz, "Content-Type %s cannot be read: %s", e, send);
    return false;
}

bool
fhir_in_media_type_ok(const char *content_type)
{
    char why[FHIR_IN_DIAG_CAP];
    return media_type_check(content_type, why, sizeof why);
}

/* ---------------------------------------------------- OperationOutcome */

void
fhir_in_outcome_add(fhir_in_outcome *oo, const char *severity, const char *code,
                    const char *expression, const char *fmt, ...)
{
    if (oo->n >= FHIR_IN_MAX_ISSUES) {
        oo->more++;
        return;
    }
    fhir_in_issue *is = &oo->issues[oo->n++];
    memset(is, 0, sizeof *is);
    is->severity = severity;
    is->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(is->diagnostics, sizeof is->diagnostics, fmt, ap);
    va_end(ap);
    if (expression != NULL)
        hov_strlcpy(is->expression[0], sizeof is->expression[0], expression);
}

/* A JSON string of s, which should be UTF-8; bytes that are not are
 * replaced rather than the issue dropped. */
static json_t *
jtext(const char *s)
{
    json_t *v = json_string(s);
    if (v != NULL)
        return v;
    char safe[FHIR_IN_DIAG_CAP];
    hov_echo(safe, sizeof safe, s, sizeof safe - 4);
    return json_string(safe);
}

static int
add_issue_json(json_t *arr, const char *severity, const char *code,
               const char *diagnostics, const char (*expr)[FHIR_IN_EXPR_CAP])
{
    json_t *is = json_object();
    if (is == NULL || json_array_append_new(arr, is) != 0)
        return -1;
    if (json_object_set_new(is, "severity", json_string(severity)) != 0 ||
        json_object_set_new(is, "code", json_string(code)) != 0)
        return -1;
    if (diagnostics != NULL && diagnostics[0] != '\0' &&
        json_object_set_new(is, "diagnostics", jtext(diagnostics)) != 0)
        return -1;
    if (expr != NULL && expr[0][0] != '\0') {
        json_t *ex = json_array();
        if (ex == NULL || json_object_set_new(is, "expression", ex) != 0)
            return -1;
        for (size_t k = 0; k < 2; k++)
            if (expr[k][0] != '\0' &&
                json_array_append_new(ex, jtext(expr[k])) != 0)
                return -1;
    }
    return 0;
}

char *
fhir_in_outcome_json(const fhir_in_outcome *oo)
{
    json_t *root = json_object();
    json_t *arr = json_array();
    char *out = NULL;
    if (root == NULL || arr == NULL) {
        json_decref(root);
        json_decref(arr);
        return NULL;
    }
    if (json_object_set_new(root, "resourceType",
                            json_string("OperationOutcome")) != 0 ||
        json_object_set_new(root, "issue", arr) != 0)
        goto done;
    for (size_t i = 0; i < oo->n && i < FHIR_IN_MAX_ISSUES; i++) {
        const fhir_in_issue *is = &oo->issues[i];
        if (add_issue_json(arr, is->severity != NULL ? is->severity : "error",
                           is->code != NULL ? is->code : "exception",
                           is->diagnostics, is->expression) != 0)
            goto done;
    }
    char more[96];
    if (oo->more > 0) {
        snprintf(more, sizeof more,
                 "%zu further problems were found and are not listed",
                 oo->more);
        if (add_issue_json(arr, "information", "informational", more, NULL) !=
            0)
            goto done;
    }
    /* R4 requires at least one issue. */
    if (json_array_size(arr) == 0 &&
        add_issue_json(arr, "information", "informational", "all checks passed",
                       NULL) != 0)
        goto done;
    out = json_dumps(root, JSON_COMPACT);
done:
    json_decref(root);
    return out;
}
