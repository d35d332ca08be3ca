/* Inbound mapping: HL7 v2 to handover.Event (domain brief 5.3 to 5.6).
 *
 * map_in runs the domain's check order steps 4 to 7 on a parsed message.
 * Steps 4 to 6 (header, MSH-2, structure) stop at the first failure. Step
 * 7 walks the segments in message order, decoding and checking every field
 * Handover reads straight into the event under construction, and collects
 * up to MAP_IN_MAX_ERRS errors; a few checks need the whole message (the
 * occurred_at fallbacks, a required NTE or OBX that never came) and run
 * after the walk, but their errors are filed by location, so the list the
 * sender sees is still in message order. The event is handed over only
 * when no error was found.
 *
 * Conventions this file settles where the brief leaves a choice (each is
 * also in docs/architecture.md):
 *  - Text is carried as sent: names are not re-cased (HARROWGATE stays
 *    HARROWGATE; re-casing loses McDONALD and DE LA CRUZ).
 *  - Error texts never repeat a name, date of birth, address, phone or
 *    free text: they go to logs and the audit trail. Codes, identifiers and
 *    the NHS number are echoed so the sender can find the value.
 *  - An NHS number check digit error does not say which digit was expected:
 *    a clerk told the expected digit may just change it, giving the number
 *    of another person.
 *  - NTE-4 routing: 1R reason, CD clinical_details, SD social_details, AN
 *    access_notes; GI inside an order group is that item's notes (it
 *    instructs whoever fulfils the order); GI elsewhere, RE, an empty type
 *    and any other type go to clinical_details, the field with the fewest
 *    readers (3.9), because their content is unknown. In an RRI^I12 every
 *    NTE is the outcome's reason_text.
 *  - An RRI^I12 outcome's author is its first CP (consulting provider: the
 *    professional who acted) PRD, else its first RT; the RP is the original
 *    referrer. Its source.ref is RF1-11 (the responder's own referral id).
 *    A rejected or cancelled outcome carries its reason code (3.6) in
 *    RF1-10 as code^text^HANDOVER. planned_for is left empty: no field of
 *    RRI^I12 carries that date, and free text is not parsed.
 *  - ADT^A03: source.author is EVN-5 (who recorded the discharge) and
 *    discharge.responsible_clinician is PV1-7 (the attending doctor).
 *  - Equipment orders: required_by is the earliest date of the item lines;
 *    TQ1-9 S or A gives urgent and R routine; without a stated priority an
 *    order is urgent when required_by is no later than the next working day
 *    (Monday to Friday; bank holidays are not known here) after the order
 *    date in Europe/London. occurred_at is ORC-9 of the first group that
 *    has one, else MSH-7, because ORM/OMG carry no other order time.
 *  - A segment Handover reads once (MSH, EVN, PID, PD1, PV1, RF1, ZCN)
 *    appearing twice is a structure error (AE 100): a second PID is a second
 *    patient, and mapping only the first would misfile the message.
 *  - ADT^A01/A04 are checked through step 6 and MSH-10 (the ACK echoes it),
 *    not field by field: Handover acknowledges them and reads nothing else.
 *  - Unknown non-Z segments are ignored silently (standard segments
 *    Handover does not read); unknown Z-segments with a warning.
 */
#include "map_in.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handover/ident.h"
#include "handover/pb.h"
#include "handover/str.h"
#include "handover/timeutil.h"

/* How much of a bad code or identifier an error text repeats. */
#define ECHO_MAX 24

/* Identifiers (MSH-10, EI values, references): domain 5.8 accepts 64. */
#define ID_MAX 64

/* Domain 3.1, 3.3, 3.4, 3.5: limits in characters. */
#define NAME_MAX_CHARS    35
#define PERSON_NAME_MAX   100
#define PERSON_ID_MAX     32
#define PHONE_MAX         35
#define REASON_MAX        2000
#define DETAILS_MAX       8000
#define ACCESS_MAX        2000
#define OUTCOME_TEXT_MAX  500
#define CONSENT_NOTES_MAX 500
#define FOLLOW_UP_MAX     500
#define MEDS_MAX          8000
/* Item notes have no limit in the brief; they are instructions like access
 * notes, so they get access notes' limit. */
#define ITEM_NOTES_MAX 2000
#define MAX_ITEMS      50

/* The NHS number's OID, which some senders put in the assigning authority
 * instead of "NHS" (domain 5.4). */
#define NHS_OID "2.16.840.1.113883.2.1.4.1"

typedef enum msg_kind {
    KIND_DISCHARGE, /* ADT^A03 */
    KIND_ADMISSION, /* ADT^A01, ADT^A04: acknowledged, not routed */
    KIND_REFERRAL,  /* REF^I12 */
    KIND_OUTCOME,   /* RRI^I12 */
    KIND_ORM,       /* ORM^O01 */
    KIND_OMG,       /* OMG^O19 */
} msg_kind;

typedef enum action {
    ACT_NONE,
    ACT_DELIVER,
    ACT_COLLECT,
} action;

/* A text field built from several NTEs (or OBX repetitions), grown
 * geometrically: a message of many small notes must not cost a copy of
 * the whole text per note. */
typedef struct acc {
    char *p;
    size_t len, cap;
    size_t chars; /* code points, as the limits count them */
} acc;

typedef struct ctx {
    const hl7_msg *m;
    const map_in_opts *o;
    map_in_result *r;
    size_t nsegs;
    msg_kind kind;
    bool v25; /* MSH-12 is 2.5 or 2.5.1 */
    bool request;
    char today[11];
    bool oom;
    bool unreadable; /* the character set cannot be read: stop step 7 */
    /* Sort keys of r->errs, so errors found after the walk still land in
     * message order. */
    uint64_t keys[MAP_IN_MAX_ERRS];

    Handover__Event *ev;
    char *control_id; /* MSH-10, for the event id */

    /* Times read during the walk, resolved into occurred_at after it. */
    char msh7[32], evn2[32], evn6[32], pv1_45[32], rf1_7[32], rf1_9[32];
    char orc9[32];
    bool rf1_9_time;
    size_t seg_evn, seg_pv1, seg_rf1;

    /* Free-text accumulators (NTE, OBX). */
    acc reason, clinical, social, access, outcome_text, meds, notes;

    size_t author_prd; /* the PRD that gives source.author, or HL7_NPOS */
    size_t reason_nte; /* the first 1R NTE, or HL7_NPOS */
    bool reason_bad;   /* a 1R note could not be decoded (already filed) */

    /* ADT^A03 */
    bool have_pathway;
    int pathway;
    size_t nobx;

    /* Orders: the group (ORC ...) being read. */
    unsigned ngroups;
    size_t group_seg;
    action group_action;
    size_t group_assets;
    Handover__EquipmentItem *item;
    action order_action;
    bool action_mixed;
    bool first_had_group; /* ORC^1 carried ORC-4 */
    char required_by[11];
    int stated_priority;   /* 0 none, 1 routine, 2 urgent (TQ1-9) */
    size_t seg_first_date; /* first RQD or TQ1, for a missing date */
} ctx;

/* -------------------------------------------------------------- tables */

static const char *const versions[] = {"2.3", "2.3.1", "2.4",
                                       "2.5", "2.5.1", NULL};
#define FIRST_V25 3 /* index of "2.5" above */

typedef struct msg_type {
    const char *code, *trigger;
    msg_kind kind;
    bool from_v25;
} msg_type;

static const msg_type msg_types[] = {
    {"ADT", "A01", KIND_ADMISSION, false},
    {"ADT", "A03", KIND_DISCHARGE, false},
    {"ADT", "A04", KIND_ADMISSION, false},
    {"REF", "I12", KIND_REFERRAL, false},
    {"RRI", "I12", KIND_OUTCOME, false},
    {"ORM", "O01", KIND_ORM, false},
    /* The mapping reads TQ1, which v2.5 introduced (domain 5.5). */
    {"OMG", "O19", KIND_OMG, true},
};
#define N_MSG_TYPES (sizeof msg_types / sizeof msg_types[0])

static const char *const default_processing_ids[] = {"P", NULL};

/* Domain 3.5. The hub checks the same list (hub/validate.c); map_in checks
 * it too so the sender learns the field (AE 103 at RF1^1^3) rather than a
 * hub sentence. */
static const char *const services[] = {"district-nursing",
                                       "urgent-community-response",
                                       "community-therapy",
                                       "adult-social-care-assessment",
                                       "carers-assessment",
                                       "reablement",
                                       "social-prescribing",
                                       "home-from-hospital",
                                       NULL};

static const char *const consent_bases[] = {"implied_direct_care", "explicit",
                                            "best_interests",
                                            "legal_obligation", NULL};

/* Domain 3.6 reason codes. */
static const char *const rejected_reasons[] = {"not-eligible",
                                               "out-of-area",
                                               "not-registered",
                                               "duplicate",
                                               "insufficient-information",
                                               "declined-by-person",
                                               "redirected",
                                               NULL};

static const char *const cancelled_reasons[] = {
    "no-longer-required", "person-deceased", "raised-in-error", NULL};

/* NHS Data Dictionary DISCHARGE METHOD. */
static const char *const discharge_methods[] = {"1", "2", "3", "4",
                                                "5", "8", "9", NULL};

/* NHS Data Dictionary DISCHARGE DESTINATION CODE (HOSPITAL PROVIDER SPELL),
 * with the retired care-home codes 54, 65 and 85 that older feeds still
 * send (domain 3.5: kept as sent, never guessed into 55 or 56). */
typedef struct dest_code {
    const char *code, *description;
} dest_code;

static const dest_code discharge_destinations[] = {
    {"19", "Usual place of residence"},
    {"29", "Temporary place of residence"},
    {"30", "Repatriation from high security psychiatric hospital"},
    {"37", "Court"},
    {"38", "Penal establishment or police station"},
    {"48", "High security psychiatric hospital, Scotland"},
    {"49", "NHS other hospital provider: high security psychiatric "
           "accommodation"},
    {"50", "NHS other hospital provider: medium secure unit"},
    {"51", "NHS other hospital provider: ward for general patients or the "
           "younger physically disabled"},
    {"52", "NHS other hospital provider: ward for maternity patients or "
           "neonates"},
    {"53", "NHS other hospital provider: ward for patients who are mentally "
           "ill or have learning disabilities"},
    {"54", "NHS run care home (retired code)"},
    {"55", "Care home with nursing"},
    {"56", "Care home without nursing"},
    {"65", "Local authority residential accommodation (retired code)"},
    {"66", "Local authority foster care"},
    {"79", "Not applicable: patient died or stillbirth"},
    {"84", "Non-NHS run hospital: medium secure unit"},
    {"85", "Non-NHS (other than local authority) run care home (retired "
           "code)"},
    {"87", "Non-NHS run hospital"},
    {"88", "Non-NHS (other than local authority) run hospice"},
    {"89", "Organisation responsible for forced repatriation"},
    {"98", "Not applicable: hospital provider spell not finished"},
    {"99", "Not known"},
};
#define N_DESTINATIONS                                                         \
    (sizeof discharge_destinations / sizeof discharge_destinations[0])

/* Segments Handover reads once per message (see the file comment). */
static const char *const singletons[] = {"MSH", "EVN", "PID", "PD1",
                                         "PV1", "RF1", "ZCN", NULL};

/* Required segments in order after MSH (domain 5.5). ORC groups are
 * checked separately. */
static const char *const req_adt[] = {"EVN", "PID", "PV1", NULL};
static const char *const req_ref[] = {"RF1", "PRD", "PID", NULL};
static const char *const req_order[] = {"PID", "ORC", NULL};

/* ------------------------------------------------------------- helpers */

static bool
in_table(const char *s, const char *const *table)
{
    for (; *table != NULL; table++)
        if (strcmp(s, *table) == 0)
            return true;
    return false;
}

static bool
raw_empty(hl7_str s)
{
    return s.n == 0 || hl7_is_delete(s);
}

static bool
raw_in_table(hl7_str s, const char *const *table)
{
    for (; *table != NULL; table++)
        if (hl7_eq(s, *table))
            return true;
    return false;
}

static bool
is_digit(char ch)
{
    return ch >= '0' && ch <= '9';
}

/* A raw slice as safe text for an error message: printable ASCII, cut at
 * ECHO_MAX with "...". */
static void
echo_raw(hl7_str s, char *out, size_t outsz)
{
    char tmp[ECHO_MAX + 2];
    size_t n = s.n < ECHO_MAX + 1 ? s.n : ECHO_MAX + 1;
    memcpy(tmp, s.p, n);
    tmp[n] = '\0';
    hov_echo(out, outsz, tmp, ECHO_MAX);
}

static void
echo_str(const char *s, char *out, size_t outsz)
{
    hov_echo(out, outsz, s, ECHO_MAX);
}

static hl7_str
get(const ctx *c, size_t seg, unsigned field, unsigned rep, unsigned comp,
    unsigned sub)
{
    return hl7_get(c->m, seg, field, rep, comp, sub);
}

static bool
is_empty_str(const char *s)
{
    return s == NULL || s[0] == '\0';
}

/* ------------------------------------------------------------- errors */

static uint64_t
err_key(size_t seg, unsigned field, unsigned comp)
{
    if (field > 0xffff)
        field = 0xffff;
    if (comp > 0xffff)
        comp = 0xffff;
    return (uint64_t)seg << 32 | (uint64_t)field << 16 | comp;
}

/* File one error by key, keeping r->errs sorted and the first
 * MAP_IN_MAX_ERRS in message order. */
static void
add_error(ctx *c, uint64_t key, char ack, int code, const char *seg,
          unsigned seq, unsigned field, unsigned comp, const char *text)
{
    map_in_result *r = c->r;
    size_t pos = r->nerr;
    while (pos > 0 && c->keys[pos - 1] > key)
        pos--;
    if (pos >= MAP_IN_MAX_ERRS)
        return;
    size_t n = r->nerr < MAP_IN_MAX_ERRS ? r->nerr : MAP_IN_MAX_ERRS - 1;
    memmove(&r->errs[pos + 1], &r->errs[pos], (n - pos) * sizeof r->errs[0]);
    memmove(&c->keys[pos + 1], &c->keys[pos], (n - pos) * sizeof c->keys[0]);
    hl7_error *e = &r->errs[pos];
    memset(e, 0, sizeof *e);
    e->ack = ack;
    e->code = code;
    if (seg != NULL) {
        hov_strlcpy(e->loc.seg, sizeof e->loc.seg, seg);
        e->loc.seq = seq;
        e->loc.field = field;
        e->loc.comp = comp;
    }
    hov_strlcpy(e->text, sizeof e->text, text);
    c->keys[pos] = key;
    r->nerr = n + 1;
}

/* An error at field (and component) of segment seg, its text prefixed with
 * the field's name ("PID-7: ..."), or the segment's ("ORC^2: ...") when
 * field is 0. */
static void ferr(ctx *c, size_t seg, unsigned field, unsigned comp, int code,
                 const char *fmt, ...) HOV_PRINTF(6, 7);

static void
vferr(ctx *c, uint64_t key, size_t seg, unsigned field, unsigned comp, int code,
      const char *fmt, va_list ap)
{
    char text[sizeof c->r->errs[0].text];
    const char *id = hl7_seg_id(c->m, seg);
    unsigned seq = hl7_seg_seq(c->m, seg);
    int n = field > 0 ? snprintf(text, sizeof text, "%s-%u: ", id, field)
                      : snprintf(text, sizeof text, "%s^%u: ", id, seq);
    if (n < 0)
        n = 0;
    vsnprintf(text + n, sizeof text - (size_t)n, fmt, ap);
    add_error(c, key, 'E', code, id, seq, field, comp, text);
}

static void
ferr(ctx *c, size_t seg, unsigned field, unsigned comp, int code,
     const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vferr(c, err_key(seg, field, comp), seg, field, comp, code, fmt, ap);
    va_end(ap);
}

/* As ferr, filed in message order at the segment before `at` rather than
 * at seg: for what is found missing only when a group ends. */
static void ferr_at(ctx *c, size_t at, size_t seg, unsigned field, int code,
                    const char *fmt, ...) HOV_PRINTF(6, 7);

static void
ferr_at(ctx *c, size_t at, size_t seg, unsigned field, int code,
        const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vferr(c, err_key(at - 1, 0xffff, 0xffff), seg, field, 0, code, fmt, ap);
    va_end(ap);
}

/* As ferr, without the prefix: for sentences the brief words itself. */
static void serr(ctx *c, size_t seg, unsigned field, int code, const char *fmt,
                 ...) HOV_PRINTF(5, 6);

static void
serr(ctx *c, size_t seg, unsigned field, int code, const char *fmt, ...)
{
    char text[sizeof c->r->errs[0].text];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    add_error(c, err_key(seg, field, 0), 'E', code, hl7_seg_id(c->m, seg),
              hl7_seg_seq(c->m, seg), field, 0, text);
}

/* An error at a segment that is not there (a required NTE or OBX that
 * never came): filed after everything the message does hold. */
static void aerr(ctx *c, const char *id, unsigned seq, unsigned field, int code,
                 const char *fmt, ...) HOV_PRINTF(6, 7);

static void
aerr(ctx *c, const char *id, unsigned seq, unsigned field, int code,
     const char *fmt, ...)
{
    char text[sizeof c->r->errs[0].text];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    add_error(c, err_key(c->nsegs, field, 0), 'E', code, id, seq, field, 0,
              text);
}

/* Steps 4 to 6: the first failure decides; returns -1 for the caller to
 * pass on. */
static int stop(ctx *c, char ack, int code, const char *seg, unsigned seq,
                unsigned field, const char *fmt, ...) HOV_PRINTF(7, 8);

static int
stop(ctx *c, char ack, int code, const char *seg, unsigned seq, unsigned field,
     const char *fmt, ...)
{
    char text[sizeof c->r->errs[0].text];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    add_error(c, 0, ack, code, seg, seq, field, 0, text);
    return -1;
}

static void warn(ctx *c, const char *fmt, ...) HOV_PRINTF(2, 3);

static void
warn(ctx *c, const char *fmt, ...)
{
    map_in_result *r = c->r;
    char line[sizeof r->warnings[0]];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    /* The same warning once: an unknown Z-segment may repeat many times. */
    for (size_t i = 0; i < r->nwarn; i++)
        if (strcmp(r->warnings[i], line) == 0)
            return;
    size_t cap = sizeof r->warnings / sizeof r->warnings[0];
    if (r->nwarn < cap)
        memcpy(r->warnings[r->nwarn++], line, sizeof line);
}

/* ----------------------------------------------------------- memory */

static char *
xstrdup(ctx *c, const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p == NULL) {
        c->oom = true;
        return NULL;
    }
    memcpy(p, s, n);
    return p;
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
init_person(void *p)
{
    handover__person__init(p);
}

static void
init_org_ref(void *p)
{
    handover__org_ref__init(p);
}

static void
init_coded(void *p)
{
    handover__coded__init(p);
}

static void
init_follow_up(void *p)
{
    handover__follow_up__init(p);
}

static void
init_item(void *p)
{
    handover__equipment_item__init(p);
}

static void
init_destination(void *p)
{
    handover__discharge_destination__init(p);
}

static void
init_consent(void *p)
{
    handover__consent__init(p);
}

/* Arrays sized up front from segment counts: the counts are an upper
 * bound, and filling a typed array needs no pointer casts. */
static void *
new_array(ctx *c, size_t n, size_t elsz)
{
    void *p = calloc(n > 0 ? n : 1, elsz);
    if (p == NULL)
        c->oom = true;
    return p;
}

static size_t
count_segs(const ctx *c, const char *id)
{
    size_t n = 0;
    for (size_t i = hl7_find(c->m, 0, id); i != HL7_NPOS;
         i = hl7_find(c->m, i + 1, id))
        n++;
    return n;
}

static bool
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
            return false;
        }
        a->p = p;
        a->cap = cap;
    }
    if (a->len > 0) {
        a->p[a->len++] = '\n';
        a->chars++;
    }
    memcpy(a->p + a->len, t, tl + 1);
    a->len += tl;
    a->chars += hov_utf8_chars(t);
    return true;
}

/* Move the accumulated text into *field. */
static void
acc_take(acc *a, char **field)
{
    if (a->p == NULL || a->len == 0)
        return;
    hov_pb_take(field, a->p);
    a->p = NULL;
    a->len = a->cap = a->chars = 0;
}

static void
acc_free(acc *a)
{
    free(a->p);
    memset(a, 0, sizeof *a);
}

/* ------------------------------------------------------- field readers */

/* Decode the value at seg, field, rep, comp, sub into canonical text.
 * Returns a malloc'd non-empty string; NULL when the value is empty or
 * "" (delete), and NULL with *bad set when it cannot be decoded (the error
 * is filed at comp) or memory ran out (c->oom). */
static char *
dec(ctx *c, size_t seg, unsigned field, unsigned rep, unsigned comp,
    unsigned sub, bool *bad)
{
    hl7_str raw = get(c, seg, field, rep, comp, sub);
    if (raw_empty(raw))
        return NULL;
    char why[160] = "";
    bool warned = false;
    char *s = hl7_decode(c->m, raw, &warned, why, sizeof why);
    if (s == NULL) {
        if (strcmp(why, "out of memory") == 0)
            c->oom = true;
        else
            ferr(c, seg, field, comp, 102, "%s",
                 why[0] != '\0' ? why : "cannot be decoded");
        if (bad != NULL)
            *bad = true;
        return NULL;
    }
    if (warned)
        warn(c, "%s-%u: unrecognised escape sequence kept verbatim",
             hl7_seg_id(c->m, seg), field);
    if (s[0] == '\0') {
        free(s);
        return NULL;
    }
    return s;
}

/* Is s longer than max characters? Files the error when it is. */
static bool
too_long(ctx *c, size_t seg, unsigned field, unsigned comp, const char *s,
         size_t max, const char *what)
{
    size_t n = hov_utf8_chars(s);
    if (n <= max)
        return false;
    ferr(c, seg, field, comp, 102,
         "%s is %zu characters long, more than the %zu allowed", what, n, max);
    return true;
}

/* Decode and length-check in one step; the value is kept even when too
 * long (the event is dropped anyway once an error is filed). */
static char *
dec_max(ctx *c, size_t seg, unsigned field, unsigned rep, unsigned comp,
        unsigned sub, size_t max, const char *what, bool *bad)
{
    char *s = dec(c, seg, field, rep, comp, sub, bad);
    if (s != NULL && too_long(c, seg, field, comp, s, max, what) && bad != NULL)
        *bad = true;
    return s;
}

/* Does the raw TS carry an hour (more than YYYYMMDD)? */
static bool
ts_has_time(hl7_str s)
{
    return s.n >= 10 && is_digit(s.p[8]) && is_digit(s.p[9]);
}

/* Component 1 of a TS field as RFC 3339 UTC in out ("" when empty).
 * Returns false when empty or bad (the error filed). */
static bool
ts_at(ctx *c, size_t seg, unsigned field, const char *what, char out[32],
      bool *has_time)
{
    out[0] = '\0';
    hl7_str s = get(c, seg, field, 0, 1, 0);
    if (raw_empty(s))
        return false;
    char why[128] = "";
    bool ambiguous = false;
    if (!hl7_ts_to_rfc3339(s, out, &ambiguous, why, sizeof why)) {
        out[0] = '\0';
        ferr(c, seg, field, 0, 102, "%s: %s", what,
             why[0] != '\0' ? why : "not a valid HL7 timestamp");
        return false;
    }
    if (ambiguous)
        warn(c,
             "%s-%u: local time in the hour repeated when the clocks go "
             "back; the first occurrence (BST) was taken",
             hl7_seg_id(c->m, seg), field);
    if (has_time != NULL)
        *has_time = ts_has_time(s);
    return true;
}

/* A calendar date (DT, or the Europe/London date of a TS with a time) into
 * out. Returns false when empty or bad (the error filed). */
static bool
date_at(ctx *c, size_t seg, unsigned field, const char *what, char out[11])
{
    out[0] = '\0';
    hl7_str s = get(c, seg, field, 0, 1, 0);
    if (raw_empty(s))
        return false;
    char why[128] = "";
    if (ts_has_time(s)) {
        /* A time, perhaps with an offset: the date is the one in Fellshire
         * at that instant, not the digits the sender's zone shows. */
        char stamp[32];
        uint64_t ms;
        if (hl7_ts_to_rfc3339(s, stamp, NULL, why, sizeof why) &&
            hov_rfc3339_to_ms(stamp, &ms)) {
            hov_date_london_at(ms, out);
            return true;
        }
    } else if (hl7_dt_to_date(s, out, why, sizeof why)) {
        return true;
    }
    out[0] = '\0';
    ferr(c, seg, field, 0, 102, "%s: %s", what,
         why[0] != '\0' ? why : "not a valid HL7 date");
    return false;
}

/* "given family" from a name in field: the family name at family_comp
 * (its subcomponent 1, the surname), the given name in the next component
 * (XPN: 1 and 2; XCN: 2 and 3). NULL when both are empty. */
static char *
name_at(ctx *c, size_t seg, unsigned field, unsigned rep, unsigned family_comp,
        bool *bad)
{
    char *family = dec(c, seg, field, rep, family_comp, 1, bad);
    char *given = dec(c, seg, field, rep, family_comp + 1, 0, bad);
    char *name = NULL;
    if (family != NULL && given != NULL) {
        size_t fl = strlen(family), gl = strlen(given);
        name = malloc(gl + 1 + fl + 1);
        if (name == NULL) {
            c->oom = true;
        } else {
            memcpy(name, given, gl);
            name[gl] = ' ';
            memcpy(name + gl + 1, family, fl + 1);
        }
        free(family);
        free(given);
    } else {
        name = family != NULL ? family : given;
    }
    return name;
}

/* A phone number: component 1 of the first repetition of an XTN field
 * whose use (component 2) is use, else of the first repetition that has a
 * number and is not an e-mail address. */
static char *
phone_at(ctx *c, size_t seg, unsigned field, const char *use, bool *bad)
{
    unsigned n = hl7_nreps(c->m, seg, field);
    unsigned pick = n;
    for (unsigned i = 0; i < n && pick == n && use != NULL; i++)
        if (hl7_eq(get(c, seg, field, i, 2, 0), use) &&
            !raw_empty(get(c, seg, field, i, 1, 0)))
            pick = i;
    for (unsigned i = 0; i < n && pick == n; i++)
        if (!hl7_eq(get(c, seg, field, i, 2, 0), "NET") &&
            !raw_empty(get(c, seg, field, i, 1, 0)))
            pick = i;
    if (pick == n)
        return NULL;
    return dec_max(c, seg, field, pick, 1, 0, PHONE_MAX, "phone number", bad);
}

/* A person from an XCN field: id in component 1, name in 2 and 3. */
static Handover__Person *
person_xcn(ctx *c, size_t seg, unsigned field, const char *what)
{
    Handover__Person *p = NEW_MSG(c, Handover__Person, init_person);
    if (p == NULL)
        return NULL;
    bool bad = false;
    char label[48];
    snprintf(label, sizeof label, "%s identifier", what);
    hov_pb_take(&p->id,
                dec_max(c, seg, field, 0, 1, 0, PERSON_ID_MAX, label, &bad));
    char *name = name_at(c, seg, field, 0, 2, &bad);
    snprintf(label, sizeof label, "%s name", what);
    if (name != NULL)
        too_long(c, seg, field, 2, name, PERSON_NAME_MAX, label);
    hov_pb_take(&p->name, name);
    return p;
}

/* Is this OBX the Handover observation id (OBX-3 id^text^HANDOVER; an
 * empty coding system is accepted, another one means another code)? */
static bool
obx_is(const ctx *c, size_t seg, const char *id)
{
    hl7_str sys = get(c, seg, 3, 0, 3, 0);
    return hl7_eq(get(c, seg, 3, 0, 1, 0), id) &&
           (sys.n == 0 || hl7_eq(sys, "HANDOVER"));
}

static char *
trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        s[--n] = '\0';
    return s;
}

/* --------------------------------------------------- step 4: header */

static int
check_header(ctx *c)
{
    char e[ECHO_MAX + 4];
    hl7_str ver = get(c, 0, 12, 0, 1, 0);
    int v = -1;
    for (int i = 0; versions[i] != NULL; i++)
        if (hl7_eq(ver, versions[i]))
            v = i;
    if (v < 0) {
        if (ver.n == 0)
            return stop(c, 'R', 203, "MSH", 1, 12,
                        "MSH-12 version id is empty: Handover accepts 2.3, "
                        "2.3.1, 2.4, 2.5 and 2.5.1");
        echo_raw(ver, e, sizeof e);
        return stop(c, 'R', 203, "MSH", 1, 12,
                    "MSH-12 version %s is not supported: Handover accepts "
                    "2.3, 2.3.1, 2.4, 2.5 and 2.5.1",
                    e);
    }
    c->v25 = v >= FIRST_V25;

    /* The version first: it decides which message types exist. */
    hl7_str code = get(c, 0, 9, 0, 1, 0), trig = get(c, 0, 9, 0, 2, 0);
    const msg_type *found = NULL;
    bool code_known = false;
    for (size_t i = 0; i < N_MSG_TYPES; i++) {
        if (!hl7_eq(code, msg_types[i].code))
            continue;
        code_known = true;
        if (hl7_eq(trig, msg_types[i].trigger))
            found = &msg_types[i];
    }
    if (!code_known)
        return stop(c, 'R', 200, "MSH", 1, 9,
                    "MSH-9 message type %s is not supported: Handover takes "
                    "ADT^A01, ADT^A03, ADT^A04, REF^I12, RRI^I12, ORM^O01 and "
                    "OMG^O19",
                    c->r->type);
    if (found == NULL) {
        size_t total = 0, k = 0;
        for (size_t i = 0; i < N_MSG_TYPES; i++)
            total += hl7_eq(code, msg_types[i].code);
        char list[96] = "";
        size_t n = 0;
        for (size_t i = 0; i < N_MSG_TYPES && n < sizeof list; i++) {
            if (!hl7_eq(code, msg_types[i].code))
                continue;
            const char *sep = k == 0 ? "" : k + 1 == total ? " and " : ", ";
            int w = snprintf(list + n, sizeof list - n, "%s%s^%s", sep,
                             msg_types[i].code, msg_types[i].trigger);
            if (w < 0)
                break;
            n += (size_t)w;
            k++;
        }
        echo_raw(trig, e, sizeof e);
        return stop(c, 'R', 201, "MSH", 1, 9,
                    "MSH-9 trigger event %s is not supported: Handover takes "
                    "%s",
                    trig.n > 0 ? e : "(empty)", list);
    }
    if (found->from_v25 && !c->v25)
        return stop(c, 'R', 200, "MSH", 1, 9,
                    "OMG^O19 is accepted from v2.5; send v2.5 or v2.5.1, or "
                    "ORM^O01");
    c->kind = found->kind;

    /* A training or archive message must never become a real event on a
     * production instance (domain 5.3). */
    const char *const *ids = c->o->processing_ids != NULL
                                 ? c->o->processing_ids
                                 : default_processing_ids;
    hl7_str pid = get(c, 0, 11, 0, 1, 0), mode = get(c, 0, 11, 0, 2, 0);
    if (!raw_in_table(pid, ids)) {
        char list[64] = "";
        size_t n = 0;
        for (const char *const *p = ids; *p != NULL && n < sizeof list; p++) {
            int w = snprintf(list + n, sizeof list - n, "%s%s",
                             p == ids ? "" : ", ", *p);
            if (w < 0)
                break;
            n += (size_t)w;
        }
        echo_raw(pid, e, sizeof e);
        return stop(c, 'R', 202, "MSH", 1, 11,
                    "MSH-11 processing id %s is not accepted by this "
                    "Handover instance, which takes %s",
                    pid.n > 0 ? e : "(empty)", list);
    }
    if (!(mode.n == 0 || hl7_eq(mode, "T"))) {
        echo_raw(mode, e, sizeof e);
        return stop(c, 'R', 202, "MSH", 1, 11,
                    "MSH-11 processing mode %s is not accepted: archive, "
                    "restore and initial load replay history; send current "
                    "processing (mode empty or T)",
                    e);
    }
    return 0;
}

/* ------------------------------------------------- step 5: MSH-2 */

static int
check_encoding(ctx *c)
{
    unsigned n = hl7_msg_enc_count(c->m);
    if (n == 4)
        return 0;
    const hl7_delims *d = hl7_msg_delims(c->m);
    char four[5] = {d->comp, d->rep, d->esc, d->sub, '\0'};
    /* Read as data, a trailing truncation character would pass a cut-off
     * value on as whole (domain 5.1). */
    if (n == 5)
        return stop(c, 'E', 102, "MSH", 1, 2,
                    "MSH-2 declares 5 encoding characters; the truncation "
                    "character exists only from v2.7: declare %s",
                    four);
    return stop(c, 'E', 102, "MSH", 1, 2,
                "MSH-2 declares %u encoding characters; versions up to v2.6 "
                "declare exactly four: declare %s",
                n, four);
}

/* ----------------------------------------------- step 6: structure */

static const char *
type_name(const ctx *c)
{
    return c->r->type;
}

static int
check_required(ctx *c, const char *const *req)
{
    size_t cursor = 1; /* after MSH */
    const char *prev = "MSH";
    for (size_t k = 0; req[k] != NULL; k++) {
        size_t first = hl7_find(c->m, 0, req[k]);
        if (first == HL7_NPOS) {
            bool rest_absent = true;
            for (size_t j = k + 1; req[j] != NULL; j++)
                if (hl7_find(c->m, 0, req[j]) != HL7_NPOS)
                    rest_absent = false;
            return stop(c, 'E', 100, req[k], 1, 0, "%s required for %s%s",
                        req[k], type_name(c),
                        rest_absent ? "; message appears truncated" : "");
        }
        if (first < cursor)
            return stop(c, 'E', 100, req[k], 1, 0,
                        "%s out of order in %s: it must follow %s", req[k],
                        type_name(c), prev);
        cursor = first + 1;
        prev = req[k];
    }
    return 0;
}

/* ORM^O01 {ORC RQD [NTE] [OBX...]} and OMG^O19 {ORC TQ1 OBR [NTE]
 * [OBX...]}: every group complete, nothing of a group outside one. */
static int
check_groups(ctx *c)
{
    bool omg = c->kind == KIND_OMG;
    size_t pid = hl7_find(c->m, 0, "PID");
    unsigned groups = 0, nrqd = 0, ntq1 = 0, nobr = 0;
    bool rqd = false, tq1 = false, obr = false;
    size_t orc = 0;
    for (size_t i = pid + 1; i <= c->nsegs; i++) {
        const char *id = i < c->nsegs ? hl7_seg_id(c->m, i) : "";
        bool end = i == c->nsegs;
        if (end || strcmp(id, "ORC") == 0) {
            if (groups > 0) {
                const char *miss = NULL;
                unsigned seq = 0;
                if (!omg && !rqd) {
                    miss = "RQD";
                    seq = nrqd + 1;
                } else if (omg && !tq1) {
                    miss = "TQ1";
                    seq = ntq1 + 1;
                } else if (omg && !obr) {
                    miss = "OBR";
                    seq = nobr + 1;
                }
                if (miss != NULL)
                    return stop(c, 'E', 100, miss, seq, 0,
                                "%s required after ORC^%u in %s%s", miss,
                                hl7_seg_seq(c->m, orc), type_name(c),
                                end ? "; message appears truncated" : "");
            }
            if (end)
                break;
            groups++;
            orc = i;
            rqd = tq1 = obr = false;
        } else if (!omg && strcmp(id, "RQD") == 0) {
            nrqd++;
            if (groups == 0 || rqd)
                return stop(c, 'E', 100, "RQD", nrqd, 0,
                            "RQD^%u is outside an order group: %s takes one "
                            "RQD after each ORC",
                            nrqd, type_name(c));
            rqd = true;
        } else if (omg && strcmp(id, "TQ1") == 0) {
            ntq1++;
            if (groups == 0 || tq1 || obr)
                return stop(c, 'E', 100, "TQ1", ntq1, 0,
                            "TQ1^%u is outside its place: %s takes one TQ1 "
                            "after each ORC, before the OBR",
                            ntq1, type_name(c));
            tq1 = true;
        } else if (omg && strcmp(id, "OBR") == 0) {
            nobr++;
            if (groups == 0 || obr)
                return stop(c, 'E', 100, "OBR", nobr, 0,
                            "OBR^%u is outside an order group: %s takes one "
                            "OBR in each ORC group",
                            nobr, type_name(c));
            if (!tq1)
                return stop(c, 'E', 100, "TQ1", ntq1 + 1, 0,
                            "TQ1 required after ORC^%u in %s, before the OBR",
                            hl7_seg_seq(c->m, orc), type_name(c));
            obr = true;
        }
    }
    return 0;
}

static int
check_structure(ctx *c)
{
    const char *const *req;
    switch (c->kind) {
    case KIND_DISCHARGE:
    case KIND_ADMISSION:
        req = req_adt;
        break;
    case KIND_REFERRAL:
    case KIND_OUTCOME:
        req = req_ref;
        break;
    default:
        req = req_order;
        break;
    }
    if (check_required(c, req) != 0)
        return -1;
    if ((c->kind == KIND_ORM || c->kind == KIND_OMG) && check_groups(c) != 0)
        return -1;
    for (size_t k = 0; singletons[k] != NULL; k++) {
        size_t first = hl7_find(c->m, 0, singletons[k]);
        if (first == HL7_NPOS ||
            hl7_find(c->m, first + 1, singletons[k]) == HL7_NPOS)
            continue;
        if (strcmp(singletons[k], "MSH") == 0)
            return stop(c, 'E', 100, "MSH", 2, 0,
                        "MSH appears more than once: send one message per "
                        "MLLP frame");
        return stop(c, 'E', 100, singletons[k], 2, 0,
                    "%s appears more than once; %s carries one", singletons[k],
                    type_name(c));
    }
    return 0;
}

/* ------------------------------------------------------- step 7: MSH */

/* MSH-10: the idempotency key (domain 5.3). Kept in c->control_id. */
static void
map_control_id(ctx *c)
{
    bool bad = false;
    char *id = dec(c, 0, 10, 0, 0, 0, &bad);
    if (id == NULL) {
        if (!bad && !c->oom)
            ferr(c, 0, 10, 0, 101,
                 "message control id is empty: a message without one "
                 "cannot be deduplicated");
        return;
    }
    if (too_long(c, 0, 10, 0, id, ID_MAX, "message control id")) {
        free(id);
        return;
    }
    c->control_id = id;
}

/* The character set comes first in step 7 (domain 5.6). hl7_decode fails
 * every value alike when it cannot read the declared set, so MSH-18 (or
 * the partner's default when it is empty) is tried once, on MSH-18
 * itself, and one error there replaces a copy at every text field. */
static bool
charset_readable(ctx *c)
{
    char why[160] = "";
    char *cs = hl7_decode(c->m, get(c, 0, 18, 0, 1, 0), NULL, why, sizeof why);
    if (cs != NULL) {
        free(cs);
        return true;
    }
    if (strcmp(why, "out of memory") == 0)
        c->oom = true;
    else
        ferr(c, 0, 18, 0, 102, "%s; send UNICODE UTF-8, 8859/1 or ASCII",
             why[0] != '\0' ? why : "character set cannot be read");
    c->unreadable = true;
    return false;
}

static void
map_msh(ctx *c)
{
    Handover__Source *src = c->ev->source;
    bool bad = false;
    if (!charset_readable(c))
        return;
    hov_pb_take(&src->system,
                dec_max(c, 0, 3, 0, 1, 0, ID_MAX, "sending application", &bad));
    bad = false;
    char *org = dec(c, 0, 4, 0, 1, 0, &bad);
    char e[ECHO_MAX + 4];
    if (org == NULL && !bad) {
        ferr(c, 0, 4, 1, 101,
             "sending facility is missing: send the ODS code of the sending "
             "organisation or site");
    } else if (org != NULL && !hov_org_code_valid(org)) {
        echo_str(org, e, sizeof e);
        ferr(c, 0, 4, 1, 102,
             "sending facility '%s' is not an ODS code (1 to 9 of A-Z, 0-9) "
             "or local: code",
             e);
    }
    hov_pb_take(&src->org->code, org);
    if (ts_at(c, 0, 7, "date/time of message", c->msh7, NULL))
        hov_pb_take(&c->ev->recorded_at, xstrdup(c, c->msh7));
    map_control_id(c);
}

/* --------------------------------------------------------- step 7: PID */

static void
pid_nhs_number(ctx *c, size_t seg)
{
    Handover__Patient *pt = c->ev->patient;
    unsigned n = hl7_nreps(c->m, seg, 3);
    char *first = NULL;
    bool bad = false;
    for (unsigned rep = 0; rep < n; rep++) {
        hl7_str aa1 = get(c, seg, 3, rep, 4, 1);
        hl7_str aa2 = get(c, seg, 3, rep, 4, 2);
        bool nhs =
            hl7_eq(aa1, "NHS") || hl7_eq(aa1, NHS_OID) || hl7_eq(aa2, NHS_OID);
        if (!nhs || !hl7_eq(get(c, seg, 3, rep, 5, 0), "NH"))
            continue;
        char *v = dec(c, seg, 3, rep, 1, 0, &bad);
        if (v == NULL)
            continue;
        /* People write 999 246 8130; adapters strip spaces and hyphens
         * (domain 3.3). */
        size_t k = 0;
        for (size_t i = 0; v[i] != '\0'; i++)
            if (v[i] != ' ' && v[i] != '-')
                v[k++] = v[i];
        v[k] = '\0';
        if (first == NULL) {
            first = v;
            continue;
        }
        if (strcmp(first, v) != 0) {
            /* Never pick one: the wrong choice files one person's care
             * under another (domain 5.4). */
            char a[ECHO_MAX + 4], b[ECHO_MAX + 4];
            echo_str(first, a, sizeof a);
            echo_str(v, b, sizeof b);
            serr(c, seg, 3, 207,
                 "PID-3 holds two different NHS numbers (%s, %s)", a, b);
            free(v);
            free(first);
            return;
        }
        free(v);
    }
    if (first == NULL) {
        /* An outcome may leave it out: the hub copies it from the answered
         * event (domain 3.3). */
        if (!bad && !c->oom && c->request)
            ferr(c, seg, 3, 0, 101,
                 "NHS number missing: send it as <number>^^^NHS^NH");
        return;
    }
    hov_error e = {0};
    if (hov_nhs_number_check(first, c->o->allow_test_nhs_numbers, &e) !=
        HOV_OK) {
        /* The golden ACK (samples/hl7/responses) leaves the expected digit
         * out; see the file comment for why. */
        char *cut = strstr(e.msg, " (expected check digit ");
        if (cut != NULL)
            *cut = '\0';
        ferr(c, seg, 3, 0, 102, "%s", e.msg);
    }
    hov_pb_take(&pt->nhs_number, first);
}

/* The repetition of an XPN or XAD field whose type (component 7) is type,
 * when several are sent; else the first. */
static unsigned
rep_of_type(ctx *c, size_t seg, unsigned field, const char *type)
{
    unsigned n = hl7_nreps(c->m, seg, field);
    for (unsigned i = 0; i < n; i++)
        if (hl7_eq(get(c, seg, field, i, 7, 0), type))
            return i;
    return 0;
}

static void
pid_name(ctx *c, size_t seg)
{
    Handover__Patient *pt = c->ev->patient;
    unsigned rep = rep_of_type(c, seg, 5, "L"); /* the legal name */
    bool bad = false;
    char *family =
        dec_max(c, seg, 5, rep, 1, 1, NAME_MAX_CHARS, "family name", &bad);
    if (family == NULL && !bad && c->request)
        ferr(c, seg, 5, 1, 101, "family name is missing");
    hov_pb_take(&pt->family_name, family);
    bad = false;
    char *given =
        dec_max(c, seg, 5, rep, 2, 0, NAME_MAX_CHARS, "given name", &bad);
    if (given == NULL && !bad && c->request)
        ferr(c, seg, 5, 2, 101, "given name is missing");
    char *further = dec_max(c, seg, 5, rep, 3, 0, NAME_MAX_CHARS,
                            "further given names", &bad);
    /* The first element is the first given name (domain 3.3): a middle
     * name alone is never promoted to it. */
    if (given != NULL)
        pt->given_names = new_array(c, 2, sizeof *pt->given_names);
    if (pt->given_names == NULL) {
        free(given);
        free(further);
    } else {
        pt->given_names[pt->n_given_names++] = given;
        if (further != NULL)
            pt->given_names[pt->n_given_names++] = further;
    }
    hov_pb_take(&pt->title,
                dec_max(c, seg, 5, rep, 5, 0, NAME_MAX_CHARS, "title", &bad));
}

static void
pid_birth_date(ctx *c, size_t seg)
{
    char dob[11];
    if (!date_at(c, seg, 7, "date of birth", dob)) {
        if (c->request && raw_empty(get(c, seg, 7, 0, 1, 0)))
            ferr(c, seg, 7, 0, 101, "date of birth is missing");
        return;
    }
    /* YYYY-MM-DD strings compare as dates. */
    if (strcmp(dob, c->today) > 0) {
        ferr(c, seg, 7, 0, 102,
             "date of birth is in the future (today is %s in Europe/London)",
             c->today);
        return;
    }
    hov_pb_take(&c->ev->patient->date_of_birth, xstrdup(c, dob));
}

static void
pid_sex(ctx *c, size_t seg)
{
    hl7_str s = get(c, seg, 8, 0, 1, 0);
    if (raw_empty(s))
        return;
    /* Table 0001; A (ambiguous) and N (not applicable) have no
     * FHIR AdministrativeGender of their own. */
    const char *sex = hl7_eq(s, "F")   ? "female"
                      : hl7_eq(s, "M") ? "male"
                      : hl7_eq(s, "O") ? "other"
                      : hl7_eq(s, "U") || hl7_eq(s, "A") || hl7_eq(s, "N")
                          ? "unknown"
                          : NULL;
    if (sex == NULL) {
        char e[ECHO_MAX + 4];
        echo_raw(s, e, sizeof e);
        ferr(c, seg, 8, 0, 103,
             "administrative sex %s is not in table 0001 (F, M, O, U, A, N)",
             e);
        return;
    }
    hov_pb_take(&c->ev->patient->sex, xstrdup(c, sex));
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
pid_address(ctx *c, size_t seg)
{
    Handover__Patient *pt = c->ev->patient;
    unsigned rep = rep_of_type(c, seg, 11, "H"); /* the home address */
    /* street (its subcomponent 1 from v2.5), other designation, city,
     * county; the country is not an address line in the UK. */
    static const unsigned comps[] = {1, 2, 3, 4};
    static const unsigned subs[] = {1, 0, 0, 0};
    bool bad = false;
    for (size_t k = 0; k < 4; k++) {
        char what[32];
        snprintf(what, sizeof what, "address line %zu",
                 (size_t)pt->n_address_lines + 1);
        char *line = dec_max(c, seg, 11, rep, comps[k], subs[k], NAME_MAX_CHARS,
                             what, &bad);
        if (line == NULL)
            continue;
        if (pt->address_lines == NULL)
            pt->address_lines = new_array(c, 4, sizeof *pt->address_lines);
        if (pt->address_lines == NULL) {
            free(line);
            return;
        }
        pt->address_lines[pt->n_address_lines++] = line;
    }
    bad = false;
    char *raw = dec(c, seg, 11, rep, 5, 0, &bad);
    if (raw == NULL) {
        /* "" means the sender deleted it: for a request that is missing. */
        if (!bad && !c->oom && c->request)
            ferr(c, seg, 11, 5, 101, "postcode is missing");
        return;
    }
    char *pc = postcode_norm(c, raw);
    free(raw);
    if (pc == NULL)
        return;
    if (!hov_postcode_valid(pc))
        ferr(c, seg, 11, 5, 102,
             "postcode is not a UK postcode (such as FE7 8QT)");
    hov_pb_take(&pt->postcode, pc);
}

static void
pid_status(ctx *c, size_t seg)
{
    unsigned n = hl7_nreps(c->m, seg, 32);
    for (unsigned rep = 0; rep < n; rep++) {
        hl7_str s = get(c, seg, 32, rep, 1, 0);
        if (s.n < 4 || memcmp(s.p, "NSTS", 4) != 0)
            continue; /* another identity reliability code */
        if (s.n == 6 && s.p[4] == '0' && s.p[5] >= '1' && s.p[5] <= '8') {
            char st[3] = {s.p[4], s.p[5], '\0'};
            hov_pb_take(&c->ev->patient->nhs_number_status, xstrdup(c, st));
            return;
        }
        char e[ECHO_MAX + 4];
        echo_raw(s, e, sizeof e);
        ferr(c, seg, 32, 0, 103, "NHS number status %s is not NSTS01 to NSTS08",
             e);
        return;
    }
}

static void
map_pid(ctx *c, size_t seg)
{
    bool bad = false;
    pid_nhs_number(c, seg);
    pid_name(c, seg);
    pid_birth_date(c, seg);
    pid_sex(c, seg);
    pid_address(c, seg);
    hov_pb_take(&c->ev->patient->phone, phone_at(c, seg, 13, "PRN", &bad));
    pid_status(c, seg);
}

static void
map_pd1(ctx *c, size_t seg)
{
    /* XON: the ODS code is component 3, which v2.4 calls numeric but UK
     * feeds fill with letters; v2.5 adds component 10. */
    bool bad = false;
    unsigned comp = 3;
    char *gp = dec(c, seg, 3, 0, comp, 0, &bad);
    if (gp == NULL && !bad) {
        comp = 10;
        gp = dec(c, seg, 3, 0, comp, 0, &bad);
    }
    if (gp == NULL)
        return;
    if (!hov_ods_code_valid(gp)) {
        char e[ECHO_MAX + 4];
        echo_str(gp, e, sizeof e);
        ferr(c, seg, 3, comp, 102,
             "registered practice '%s' is not an ODS code", e);
        free(gp);
        return;
    }
    hov_pb_take(&c->ev->patient->registered_gp, gp);
}

/* ------------------------------------------------- step 7: ADT^A03 */

static void
map_evn(ctx *c, size_t seg)
{
    c->seg_evn = seg;
    ts_at(c, seg, 2, "recorded date/time", c->evn2, NULL);
    if (c->kind == KIND_DISCHARGE && !raw_empty(get(c, seg, 5, 0, 0, 0)) &&
        c->ev->source->author == NULL)
        c->ev->source->author = person_xcn(c, seg, 5, "operator");
    ts_at(c, seg, 6, "event occurred", c->evn6, NULL);
}

static void
map_pv1(ctx *c, size_t seg)
{
    Handover__Discharge *d = c->ev->discharge;
    c->seg_pv1 = seg;
    bool bad = false;
    char e[ECHO_MAX + 4];

    hov_pb_take(&d->ward,
                dec_max(c, seg, 3, 0, 1, 0, NAME_MAX_CHARS, "ward", &bad));
    bad = false;
    char *site = dec(c, seg, 3, 0, 4, 1, &bad);
    if (site == NULL && !bad) {
        ferr(c, seg, 3, 4, 101,
             "discharging site is missing: send its ODS code in component 4");
    } else if (site != NULL && !hov_ods_code_valid(site)) {
        echo_str(site, e, sizeof e);
        ferr(c, seg, 3, 4, 102, "site '%s' is not an ODS code", e);
    }
    hov_pb_take(&d->site, site);

    if (!raw_empty(get(c, seg, 7, 0, 0, 0)))
        d->responsible_clinician = person_xcn(c, seg, 7, "attending doctor");

    hov_pb_take(&c->ev->source->ref,
                dec_max(c, seg, 19, 0, 1, 0, ID_MAX, "visit number", &bad));

    hl7_str method = get(c, seg, 36, 0, 1, 0);
    if (!raw_empty(method)) {
        if (raw_in_table(method, discharge_methods)) {
            hov_pb_take(&d->method, dec(c, seg, 36, 0, 1, 0, &bad));
        } else {
            echo_raw(method, e, sizeof e);
            ferr(c, seg, 36, 0, 103,
                 "discharge method %s is not an NHS DD DISCHARGE METHOD "
                 "code (1 to 5, 8, 9)",
                 e);
        }
    }

    hl7_str dest = get(c, seg, 37, 0, 1, 0);
    const dest_code *dc = NULL;
    for (size_t i = 0; i < N_DESTINATIONS && !raw_empty(dest); i++)
        if (hl7_eq(dest, discharge_destinations[i].code))
            dc = &discharge_destinations[i];
    if (raw_empty(dest)) {
        ferr(c, seg, 37, 0, 101, "discharge destination is missing");
    } else if (dc == NULL) {
        echo_raw(dest, e, sizeof e);
        ferr(c, seg, 37, 0, 103,
             "discharge destination %s is not an NHS DD DISCHARGE "
             "DESTINATION code",
             e);
    } else {
        d->destination =
            NEW_MSG(c, Handover__DischargeDestination, init_destination);
        if (d->destination != NULL) {
            hov_pb_take(&d->destination->code, xstrdup(c, dc->code));
            hov_pb_take(&d->destination->description,
                        xstrdup(c, dc->description));
        }
    }

    char stamp[32];
    if (ts_at(c, seg, 44, "admit date/time", stamp, NULL))
        hov_pb_take(&d->admitted_at, xstrdup(c, stamp));
    else if (raw_empty(get(c, seg, 44, 0, 1, 0)))
        ferr(c, seg, 44, 0, 101, "admit date/time is missing");
    ts_at(c, seg, 45, "discharge date/time", c->pv1_45, NULL);
}

static void
map_dg1(ctx *c, size_t seg)
{
    Handover__Discharge *d = c->ev->discharge;
    bool bad = false;
    char *code = dec(c, seg, 3, 0, 1, 0, &bad);
    char *text = dec(c, seg, 3, 0, 2, 0, &bad);
    char *sys = dec(c, seg, 3, 0, 3, 0, &bad);
    if (text == NULL && !bad)
        text = dec(c, seg, 4, 0, 0, 0, &bad); /* the older description */
    Handover__Coded *dx = NULL;
    if (!bad && (code != NULL || text != NULL))
        dx = NEW_MSG(c, Handover__Coded, init_coded);
    if (dx == NULL) {
        free(code);
        free(text);
        free(sys);
        return;
    }
    hov_pb_take(&dx->code, code);
    hov_pb_take(&dx->text, text);
    hov_pb_take(&dx->system, sys);
    d->diagnoses[d->n_diagnoses++] = dx;
}

static bool
service_known(const char *s)
{
    return in_table(s, services);
}

static void
obx_follow_up(ctx *c, size_t seg)
{
    Handover__Discharge *d = c->ev->discharge;
    unsigned n = hl7_nreps(c->m, seg, 5);
    if (n == 0)
        return;
    Handover__FollowUp **arr =
        realloc(d->follow_up, (d->n_follow_up + n) * sizeof *arr);
    if (arr == NULL) {
        c->oom = true;
        return;
    }
    d->follow_up = arr;
    for (unsigned rep = 0; rep < n; rep++) {
        bool bad = false;
        char *t = dec(c, seg, 5, rep, 0, 0, &bad);
        if (t == NULL)
            continue;
        char *colon = strchr(t, ':');
        if (colon == NULL) {
            ferr(c, seg, 5, 0, 102,
                 "follow-up %u is not 'service: description'", rep + 1);
            free(t);
            continue;
        }
        *colon = '\0';
        char *service = trim(t), *desc = trim(colon + 1);
        if (!service_known(service)) {
            char e[ECHO_MAX + 4];
            echo_str(service, e, sizeof e);
            ferr(c, seg, 5, 0, 103,
                 "follow-up service '%s' is not a Handover service", e);
            free(t);
            continue;
        }
        char what[40];
        snprintf(what, sizeof what, "follow-up %u", rep + 1);
        too_long(c, seg, 5, 0, desc, FOLLOW_UP_MAX, what);
        Handover__FollowUp *f = NEW_MSG(c, Handover__FollowUp, init_follow_up);
        if (f != NULL) {
            hov_pb_take(&f->service, xstrdup(c, service));
            if (desc[0] != '\0')
                hov_pb_take(&f->description, xstrdup(c, desc));
            d->follow_up[d->n_follow_up++] = f;
        }
        free(t);
    }
}

static void
obx_pathway(ctx *c, size_t seg)
{
    hl7_str v = get(c, seg, 5, 0, 1, 0);
    if (raw_empty(v)) {
        ferr(c, seg, 5, 1, 101, "discharge to assess pathway is missing");
        return;
    }
    if (v.n != 1 || v.p[0] < '0' || v.p[0] > '3') {
        char e[ECHO_MAX + 4];
        echo_raw(v, e, sizeof e);
        ferr(c, seg, 5, 1, 103, "pathway %s is not 0, 1, 2 or 3", e);
        return;
    }
    int p = v.p[0] - '0';
    if (c->have_pathway && p != c->pathway) {
        ferr(c, seg, 5, 1, 207,
             "a second D2A-PATHWAY gives pathway %d, an earlier one %d: send "
             "one",
             p, c->pathway);
        return;
    }
    c->have_pathway = true;
    c->pathway = p;
}

static void
obx_text(ctx *c, size_t seg, acc *a, size_t max, const char *what)
{
    unsigned n = hl7_nreps(c->m, seg, 5);
    for (unsigned rep = 0; rep < n; rep++) {
        bool bad = false;
        char *t = dec(c, seg, 5, rep, 0, 0, &bad);
        if (t == NULL)
            continue;
        size_t before = a->chars;
        if (acc_add(c, a, t) && before <= max && a->chars > max)
            ferr(c, seg, 5, 0, 102,
                 "%s reaches %zu characters, more than the %zu allowed", what,
                 a->chars, max);
        free(t);
    }
}

static void
obx_asset(ctx *c, size_t seg)
{
    Handover__EquipmentOrder *o = c->ev->equipment_order;
    if (c->item == NULL)
        return; /* before any order group: not an item's asset */
    bool bad = false;
    char *id = dec_max(c, seg, 5, 0, 0, 0, ID_MAX, "asset id", &bad);
    if (id == NULL) {
        if (!bad && !c->oom)
            ferr(c, seg, 5, 0, 101, "asset id is missing");
        return;
    }
    if (c->group_action == ACT_DELIVER) {
        warn(c, "OBX^%u: ASSET-ID in a delivery group ignored",
             hl7_seg_seq(c->m, seg));
        free(id);
        return;
    }
    o->collect_assets[o->n_collect_assets++] = id;
    c->group_assets++;
}

static void
map_obx(ctx *c, size_t seg)
{
    c->nobx++;
    hl7_str status = get(c, seg, 11, 0, 1, 0);
    if (hl7_eq(status, "W") || hl7_eq(status, "D") || hl7_eq(status, "X")) {
        /* Wrong (for instance another patient's), deleted, or not
         * obtained: never map it. */
        warn(c, "OBX^%u: result status %.*s, observation ignored",
             hl7_seg_seq(c->m, seg), 1, status.p);
        return;
    }
    if (c->kind == KIND_DISCHARGE) {
        if (obx_is(c, seg, "D2A-PATHWAY"))
            obx_pathway(c, seg);
        else if (obx_is(c, seg, "FOLLOW-UP"))
            obx_follow_up(c, seg);
        else if (obx_is(c, seg, "MEDS-SUMMARY"))
            obx_text(c, seg, &c->meds, MEDS_MAX, "medication summary");
    } else if (c->kind == KIND_ORM || c->kind == KIND_OMG) {
        if (obx_is(c, seg, "ASSET-ID"))
            obx_asset(c, seg);
    }
}

/* --------------------------------------------- step 7: REF and RRI */

static void
rf1_outcome_status(ctx *c, size_t seg)
{
    Handover__Outcome *out = c->ev->outcome;
    hl7_str s = get(c, seg, 1, 0, 1, 0);
    const char *status = hl7_eq(s, "A")   ? "accepted"
                         : hl7_eq(s, "R") ? "rejected"
                         : hl7_eq(s, "C") ? "completed"
                         : hl7_eq(s, "X") ? "cancelled"
                                          : NULL;
    if (raw_empty(s)) {
        ferr(c, seg, 1, 0, 101, "referral status is missing");
        return;
    }
    if (status == NULL) {
        char e[ECHO_MAX + 4];
        echo_raw(s, e, sizeof e);
        ferr(c, seg, 1, 0, 103,
             "referral status %s is not an outcome: send A (accepted), R "
             "(rejected), C (completed) or X (cancelled)",
             e);
        return;
    }
    hov_pb_take(&out->status, xstrdup(c, status));
}

static void
rf1_priority(ctx *c, size_t seg)
{
    hl7_str s = get(c, seg, 2, 0, 1, 0);
    const char *p = hl7_eq(s, "S")   ? "two_hour_crisis"
                    : hl7_eq(s, "A") ? "urgent"
                    : hl7_eq(s, "R") ? "routine"
                                     : NULL;
    if (raw_empty(s)) {
        ferr(c, seg, 2, 0, 101, "referral priority is missing");
    } else if (p == NULL) {
        char e[ECHO_MAX + 4];
        echo_raw(s, e, sizeof e);
        ferr(c, seg, 2, 0, 103,
             "referral priority %s is not S (STAT), A (ASAP) or R (routine)",
             e);
    } else {
        hov_pb_take(&c->ev->priority, xstrdup(c, p));
    }
}

static void
rf1_service(ctx *c, size_t seg)
{
    bool bad = false;
    char *svc = dec(c, seg, 3, 0, 1, 0, &bad);
    if (svc == NULL) {
        if (!bad && !c->oom)
            ferr(c, seg, 3, 0, 101, "referral type (service) is missing");
        return;
    }
    if (!service_known(svc)) {
        char e[ECHO_MAX + 4];
        echo_str(svc, e, sizeof e);
        ferr(c, seg, 3, 0, 103, "service '%s' is not a Handover service", e);
        free(svc);
        return;
    }
    hov_pb_take(&c->ev->referral->service, svc);
}

/* RF1-6 of an RRI: the Handover event id the outcome answers. */
static void
rf1_in_reply_to(ctx *c, size_t seg)
{
    bool bad = false;
    char *id = dec(c, seg, 6, 0, 1, 0, &bad);
    if (id == NULL) {
        if (!bad && !c->oom)
            ferr(c, seg, 6, 0, 101,
                 "originating referral id is missing: an outcome names the "
                 "Handover event id it answers");
        return;
    }
    /* RFC 9562 UUIDs compare case-insensitively; Handover's are lower
     * case, so an upper-cased echo still names the event. */
    for (char *p = id; *p != '\0'; p++)
        if (*p >= 'A' && *p <= 'F')
            *p = (char)(*p - 'A' + 'a');
    if (!hov_uuid_valid(id) || strlen(id) != 36) {
        char e[ECHO_MAX + 4];
        echo_str(id, e, sizeof e);
        ferr(c, seg, 6, 0, 102,
             "originating referral id '%s' is not a Handover event id (a "
             "UUID)",
             e);
        free(id);
        return;
    }
    hov_pb_take(&c->ev->in_reply_to, id);
}

static void
rf1_reason_code(ctx *c, size_t seg)
{
    Handover__Outcome *out = c->ev->outcome;
    const char *const *table =
        strcmp(out->status, "rejected") == 0    ? rejected_reasons
        : strcmp(out->status, "cancelled") == 0 ? cancelled_reasons
                                                : NULL;
    if (table == NULL)
        return; /* accepted and completed take no reason code (3.6) */
    unsigned n = hl7_nreps(c->m, seg, 10);
    for (unsigned rep = 0; rep < n; rep++) {
        if (!hl7_eq(get(c, seg, 10, rep, 3, 0), "HANDOVER"))
            continue; /* a table 0336 referral reason, not ours */
        bool bad = false;
        char *code = dec(c, seg, 10, rep, 1, 0, &bad);
        if (code == NULL) {
            if (!bad && !c->oom)
                ferr(c, seg, 10, 1, 101, "reason code is empty");
            return;
        }
        if (!in_table(code, table)) {
            char e[ECHO_MAX + 4];
            echo_str(code, e, sizeof e);
            ferr(c, seg, 10, 1, 103, "'%s' is not a reason code for %s", e,
                 out->status);
            free(code);
            return;
        }
        hov_pb_take(&out->reason_code, code);
        return;
    }
    ferr(c, seg, 10, 0, 101,
         "a %s outcome needs its reason code as <code>^<text>^HANDOVER",
         out->status);
}

static void
map_rf1(ctx *c, size_t seg)
{
    bool outcome = c->kind == KIND_OUTCOME;
    c->seg_rf1 = seg;
    if (outcome) {
        rf1_outcome_status(c, seg);
    } else {
        rf1_priority(c, seg);
        rf1_service(c, seg);
    }
    if (outcome) {
        rf1_in_reply_to(c, seg);
    } else {
        bool bad = false;
        char *ref = dec_max(c, seg, 6, 0, 1, 0, ID_MAX,
                            "originating referral id", &bad);
        if (ref == NULL && !bad && !c->oom)
            ferr(c, seg, 6, 0, 101, "originating referral id is missing");
        hov_pb_take(&c->ev->source->ref, ref);
    }
    ts_at(c, seg, 7, "effective date", c->rf1_7, NULL);
    ts_at(c, seg, 9, "process date", c->rf1_9, &c->rf1_9_time);
    if (outcome) {
        if (!is_empty_str(c->ev->outcome->status))
            rf1_reason_code(c, seg);
        bool bad = false;
        hov_pb_take(&c->ev->source->ref, dec_max(c, seg, 11, 0, 1, 0, ID_MAX,
                                                 "external referral id", &bad));
    }
}

static void
prd_destination(ctx *c, size_t seg)
{
    Handover__Event *ev = c->ev;
    bool bad = false;
    char *code = dec(c, seg, 4, 0, 4, 1, &bad);
    if (code == NULL) {
        if (!bad && !c->oom)
            ferr(c, seg, 4, 4, 101,
                 "referred-to provider has no organisation code: send its "
                 "ODS or local: code in component 4");
        return;
    }
    if (!hov_org_code_valid(code)) {
        char e[ECHO_MAX + 4];
        echo_str(code, e, sizeof e);
        ferr(c, seg, 4, 4, 102,
             "'%s' is not an ODS code (1 to 9 of A-Z, 0-9) or local: code", e);
        free(code);
        return;
    }
    for (size_t i = 0; i < ev->n_destinations; i++)
        if (strcmp(ev->destinations[i]->code, code) == 0) {
            free(code);
            return;
        }
    Handover__OrgRef *d = NEW_MSG(c, Handover__OrgRef, init_org_ref);
    if (d == NULL) {
        free(code);
        return;
    }
    hov_pb_take(&d->code, code);
    hov_pb_take(&d->name, name_at(c, seg, 2, 0, 1, &bad));
    ev->destinations[ev->n_destinations++] = d;
}

static void
prd_author(ctx *c, size_t seg)
{
    Handover__Person *p = NEW_MSG(c, Handover__Person, init_person);
    if (p == NULL)
        return;
    c->ev->source->author = p;
    bool bad = false;
    char *name = name_at(c, seg, 2, 0, 1, &bad);
    if (name != NULL)
        too_long(c, seg, 2, 0, name, PERSON_NAME_MAX, "provider name");
    hov_pb_take(&p->name, name);
    hov_pb_take(&p->phone, phone_at(c, seg, 5, NULL, &bad));
    hov_pb_take(&p->id, dec_max(c, seg, 7, 0, 1, 0, PERSON_ID_MAX,
                                "provider identifier", &bad));
}

static void
map_prd(ctx *c, size_t seg)
{
    if (c->kind == KIND_REFERRAL && hl7_eq(get(c, seg, 1, 0, 1, 0), "RT"))
        prd_destination(c, seg);
    if (seg == c->author_prd)
        prd_author(c, seg);
}

/* The PRD that gives source.author (see the file comment). */
static size_t
find_author_prd(const ctx *c)
{
    static const char *const ref_roles[] = {"RP", NULL};
    static const char *const rri_roles[] = {"CP", "RT", NULL};
    const char *const *roles = c->kind == KIND_REFERRAL  ? ref_roles
                               : c->kind == KIND_OUTCOME ? rri_roles
                                                         : NULL;
    for (size_t k = 0; roles != NULL && roles[k] != NULL; k++)
        for (size_t i = hl7_find(c->m, 0, "PRD"); i != HL7_NPOS;
             i = hl7_find(c->m, i + 1, "PRD"))
            if (hl7_eq(get(c, i, 1, 0, 1, 0), roles[k]))
                return i;
    return HL7_NPOS;
}

static void
map_nte(ctx *c, size_t seg)
{
    hl7_str type = get(c, seg, 4, 0, 1, 0);
    /* See the file comment for where each type goes and why. */
    acc *a = &c->clinical;
    size_t max = DETAILS_MAX;
    const char *what = "clinical details";
    if (c->kind == KIND_OUTCOME) {
        a = &c->outcome_text;
        max = OUTCOME_TEXT_MAX;
        what = "outcome text";
    } else if (hl7_eq(type, "1R")) {
        a = &c->reason;
        max = REASON_MAX;
        what = "reason";
    } else if (hl7_eq(type, "SD")) {
        a = &c->social;
        what = "social details";
    } else if (hl7_eq(type, "AN")) {
        a = &c->access;
        max = ACCESS_MAX;
        what = "access notes";
    } else if (hl7_eq(type, "GI") && c->item != NULL) {
        a = &c->notes;
        max = ITEM_NOTES_MAX;
        what = "item notes";
    }
    if (a == &c->reason && c->reason_nte == HL7_NPOS)
        c->reason_nte = seg;
    unsigned n = hl7_nreps(c->m, seg, 3);
    for (unsigned rep = 0; rep < n; rep++) {
        bool bad = false;
        char *t = dec(c, seg, 3, rep, 0, 0, &bad);
        if (bad && a == &c->reason)
            c->reason_bad = true;
        if (t == NULL)
            continue;
        size_t before = a->chars;
        /* Report only the note that crosses the limit (domain 5.4). */
        if (acc_add(c, a, t) && before <= max && a->chars > max)
            ferr(c, seg, 3, 0, 102,
                 "%s reaches %zu characters with this note, more than the "
                 "%zu allowed",
                 what, a->chars, max);
        free(t);
    }
}

static void
map_zcn(ctx *c, size_t seg)
{
    Handover__Consent *k = NEW_MSG(c, Handover__Consent, init_consent);
    if (k == NULL)
        return;
    c->ev->consent = k;
    bool bad = false;
    char *basis = dec(c, seg, 2, 0, 1, 0, &bad);
    if (basis == NULL) {
        if (!bad && !c->oom)
            ferr(c, seg, 2, 0, 101, "consent basis is missing");
    } else if (!in_table(basis, consent_bases)) {
        char e[ECHO_MAX + 4];
        echo_str(basis, e, sizeof e);
        ferr(c, seg, 2, 0, 103,
             "consent basis '%s' is not implied_direct_care, explicit, "
             "best_interests or legal_obligation",
             e);
        free(basis);
        basis = NULL;
    }
    bool implied = basis != NULL && strcmp(basis, "implied_direct_care") == 0;
    hov_pb_take(&k->basis, basis);
    char stamp[32];
    if (ts_at(c, seg, 3, "consent recorded at", stamp, NULL))
        hov_pb_take(&k->recorded_at, xstrdup(c, stamp));
    else if (basis != NULL && !implied && raw_empty(get(c, seg, 3, 0, 1, 0)))
        ferr(c, seg, 3, 0, 101,
             "consent recorded at is missing: required unless the basis is "
             "implied_direct_care");
    char *by = name_at(c, seg, 4, 0, 2, &bad);
    if (by != NULL)
        too_long(c, seg, 4, 0, by, PERSON_NAME_MAX, "consent recorded by");
    hov_pb_take(&k->recorded_by, by);
    hov_pb_take(&k->notes, dec_max(c, seg, 5, 0, 0, 0, CONSENT_NOTES_MAX,
                                   "consent notes", &bad));
}

/* ---------------------------------------------- step 7: orders */

/* Quantity (NM) 1 to 99; a zero fraction ("2.0") is still whole. */
static void
item_quantity(ctx *c, size_t seg, unsigned field, unsigned comp,
              Handover__EquipmentItem *it)
{
    hl7_str q = get(c, seg, field, 0, comp, 0);
    if (raw_empty(q)) {
        ferr(c, seg, field, comp, 101, "quantity is missing");
        return;
    }
    unsigned long v = 0;
    size_t i = 0;
    bool ok = true;
    for (; i < q.n && is_digit(q.p[i]); i++)
        v = v < 1000 ? v * 10 + (unsigned long)(q.p[i] - '0') : v;
    ok = i > 0;
    if (i < q.n && q.p[i] == '.') {
        for (i++; i < q.n && q.p[i] == '0'; i++)
            ;
    }
    if (!ok || i != q.n || v < 1 || v > 99) {
        char e[ECHO_MAX + 4];
        echo_raw(q, e, sizeof e);
        ferr(c, seg, field, comp, 102,
             "quantity %s is not a whole number from 1 to 99", e);
        return;
    }
    it->quantity = (uint32_t)v;
}

static void
item_code_description(ctx *c, size_t seg, unsigned field,
                      Handover__EquipmentItem *it)
{
    bool bad = false;
    char *code = dec_max(c, seg, field, 0, 1, 0, ID_MAX, "item code", &bad);
    if (code == NULL && !bad && !c->oom)
        ferr(c, seg, field, 1, 101, "item code is missing");
    hov_pb_take(&it->item_code, code);
    hov_pb_take(&it->description, dec(c, seg, field, 0, 2, 0, &bad));
}

static void
item_required_by(ctx *c, size_t seg, unsigned field, const char *what)
{
    char date[11];
    if (c->seg_first_date == HL7_NPOS)
        c->seg_first_date = seg;
    if (!date_at(c, seg, field, what, date))
        return;
    /* One date per order: the earliest line decides, so nothing arrives
     * later than its line asked for. */
    if (c->required_by[0] == '\0' || strcmp(date, c->required_by) < 0)
        memcpy(c->required_by, date, sizeof date);
}

/* End the open order group at segment end (the next ORC, or the end of
 * the message): a collection must name its assets. The error names the
 * group's ORC (domain 5.4) but is filed where the OBX was due, so an
 * earlier defect in the group, such as a mixed action, comes first. */
static void
group_close(ctx *c, size_t end)
{
    if (c->item == NULL)
        return;
    acc_take(&c->notes, &c->item->notes);
    if (c->group_action == ACT_COLLECT && c->group_assets == 0)
        ferr_at(c, end, c->group_seg, 0, 101,
                "a collection names its assets: add an OBX ASSET-ID^Asset "
                "id^HANDOVER after the %s",
                c->kind == KIND_ORM ? "RQD" : "OBR");
    c->item = NULL;
}

static void
orc_action(ctx *c, size_t seg)
{
    hl7_str a = get(c, seg, 16, 0, 1, 0);
    action act;
    if (raw_empty(a)) {
        act = ACT_DELIVER;
    } else if (hl7_eq(a, "COLLECT")) {
        act = ACT_COLLECT;
    } else {
        char e[ECHO_MAX + 4];
        echo_raw(a, e, sizeof e);
        ferr(c, seg, 16, 1, 103,
             "order control code reason %s is not COLLECT (leave it empty "
             "for a delivery)",
             e);
        act = ACT_NONE;
    }
    c->group_action = act;
    if (act == ACT_NONE)
        return;
    if (c->order_action == ACT_NONE) {
        c->order_action = act;
    } else if (act != c->order_action && !c->action_mixed) {
        c->action_mixed = true;
        ferr(c, seg, 16, 0, 207,
             "this group asks to %s but an earlier one to %s: one message is "
             "one action; send them separately",
             act == ACT_COLLECT ? "collect" : "deliver",
             act == ACT_COLLECT ? "deliver" : "collect");
    }
}

/* ORC-12, ORC-13, ORC-14 of the first group: the prescriber and author. */
static void
orc_prescriber(ctx *c, size_t seg)
{
    Handover__EquipmentOrder *o = c->ev->equipment_order;
    if (raw_empty(get(c, seg, 12, 0, 0, 0))) {
        ferr(c, seg, 12, 0, 101, "ordering provider (prescriber) is missing");
        return;
    }
    Handover__Person *p = person_xcn(c, seg, 12, "ordering provider");
    if (p == NULL)
        return;
    o->prescriber = p;
    if (is_empty_str(p->name))
        ferr(c, seg, 12, 2, 101, "ordering provider name is missing");
    bool bad = false;
    char *org = dec(c, seg, 13, 0, 4, 1, &bad);
    if (org != NULL && !hov_org_code_valid(org)) {
        char e[ECHO_MAX + 4];
        echo_str(org, e, sizeof e);
        ferr(c, seg, 13, 4, 102,
             "enterer's location '%s' is not an ODS code or local: code", e);
    }
    hov_pb_take(&p->org, org);
    hov_pb_take(&p->phone, phone_at(c, seg, 14, NULL, &bad));

    Handover__Person *a = NEW_MSG(c, Handover__Person, init_person);
    if (a == NULL)
        return;
    c->ev->source->author = a;
    if (!is_empty_str(p->name))
        hov_pb_take(&a->name, xstrdup(c, p->name));
    if (!is_empty_str(p->id))
        hov_pb_take(&a->id, xstrdup(c, p->id));
    if (!is_empty_str(p->phone))
        hov_pb_take(&a->phone, xstrdup(c, p->phone));
}

static void
map_orc(ctx *c, size_t seg)
{
    Handover__EquipmentOrder *o = c->ev->equipment_order;
    group_close(c, seg);
    c->ngroups++;
    if (c->ngroups == MAX_ITEMS + 1)
        ferr(c, seg, 0, 0, 102, "an order holds at most %d item lines",
             MAX_ITEMS);
    Handover__EquipmentItem *it =
        NEW_MSG(c, Handover__EquipmentItem, init_item);
    if (it == NULL)
        return;
    o->items[o->n_items++] = it;
    it->line = c->ngroups;
    c->item = it;
    c->group_seg = seg;
    c->group_assets = 0;
    c->group_action = ACT_NONE;

    hl7_str ctl = get(c, seg, 1, 0, 1, 0);
    if (raw_empty(ctl)) {
        ferr(c, seg, 1, 0, 101, "order control is missing");
    } else if (!hl7_eq(ctl, "NW")) {
        char e[ECHO_MAX + 4];
        echo_raw(ctl, e, sizeof e);
        ferr(c, seg, 1, 0, 103,
             "order control %s is not taken inbound: send new orders (NW)", e);
    }

    bool bad = false;
    char *line_ref =
        dec_max(c, seg, 2, 0, 1, 0, ID_MAX, "placer order number", &bad);
    hov_pb_take(&it->line_ref, line_ref);
    bool gbad = false;
    char *group =
        dec_max(c, seg, 4, 0, 1, 0, ID_MAX, "placer group number", &gbad);
    if (c->ngroups == 1) {
        c->first_had_group = group != NULL;
        if (group != NULL)
            hov_pb_take(&o->order_ref, group);
        else if (line_ref != NULL)
            hov_pb_take(&o->order_ref, xstrdup(c, line_ref));
    } else {
        const char *want = c->first_had_group ? o->order_ref : NULL;
        if (!gbad && ((group == NULL) != (want == NULL) ||
                      (group != NULL && strcmp(group, want) != 0)))
            ferr(c, seg, 4, 1, 207,
                 "placer group number differs from ORC^1's: one message "
                 "carries one order");
        free(group);
    }

    if (c->orc9[0] == '\0')
        ts_at(c, seg, 9, "date/time of transaction", c->orc9, NULL);
    if (c->ngroups == 1)
        orc_prescriber(c, seg);
    orc_action(c, seg);
}

static void
map_rqd(ctx *c, size_t seg)
{
    Handover__EquipmentOrder *o = c->ev->equipment_order;
    Handover__EquipmentItem *it = c->item;
    if (it == NULL)
        return;
    hl7_str ln = get(c, seg, 1, 0, 1, 0);
    if (!raw_empty(ln)) {
        unsigned long v = 0;
        size_t i = 0;
        for (; i < ln.n && is_digit(ln.p[i]) && v < 100000; i++)
            v = v * 10 + (unsigned long)(ln.p[i] - '0');
        bool dup = false;
        for (size_t k = 0; k + 1 < o->n_items; k++)
            dup = dup || o->items[k]->line == v;
        char e[ECHO_MAX + 4];
        echo_raw(ln, e, sizeof e);
        if (i != ln.n || v < 1 || v > 9999)
            ferr(c, seg, 1, 0, 102,
                 "line number %s is not a whole number "
                 "from 1 to 9999",
                 e);
        else if (dup)
            ferr(c, seg, 1, 0, 102, "line number %s appears twice", e);
        else
            it->line = (uint32_t)v;
    }
    item_code_description(c, seg, 2, it);
    item_quantity(c, seg, 5, 0, it);
    item_required_by(c, seg, 10, "date needed");
}

static void
map_tq1(ctx *c, size_t seg)
{
    if (c->item == NULL)
        return;
    item_quantity(c, seg, 2, 1, c->item);
    item_required_by(c, seg, 8, "end date/time");
    /* Table 0485: S stat and A ASAP are urgent; R routine. Others (P, C,
     * T, TS<n>, ...) state no priority the canonical event can carry. */
    hl7_str p = get(c, seg, 9, 0, 1, 0);
    int rank = hl7_eq(p, "S") || hl7_eq(p, "A") ? 2 : hl7_eq(p, "R") ? 1 : 0;
    if (rank > c->stated_priority)
        c->stated_priority = rank;
}

static void
map_obr(ctx *c, size_t seg)
{
    if (c->item != NULL)
        item_code_description(c, seg, 4, c->item);
}

/* ------------------------------------------------------ step 7: walk */

static bool
is_z_segment(const char *id)
{
    return id[0] == 'Z';
}

static void
map_segment(ctx *c, size_t seg)
{
    const char *id = hl7_seg_id(c->m, seg);
    bool adt = c->kind == KIND_DISCHARGE;
    bool ref = c->kind == KIND_REFERRAL || c->kind == KIND_OUTCOME;
    bool order = c->kind == KIND_ORM || c->kind == KIND_OMG;
    if (strcmp(id, "MSH") == 0)
        map_msh(c);
    else if (strcmp(id, "PID") == 0)
        map_pid(c, seg);
    else if (strcmp(id, "PD1") == 0)
        map_pd1(c, seg);
    else if (strcmp(id, "NTE") == 0)
        map_nte(c, seg);
    else if (strcmp(id, "ZCN") == 0)
        map_zcn(c, seg);
    else if (strcmp(id, "OBX") == 0)
        map_obx(c, seg);
    else if (adt && strcmp(id, "EVN") == 0)
        map_evn(c, seg);
    else if (adt && strcmp(id, "PV1") == 0)
        map_pv1(c, seg);
    else if (adt && strcmp(id, "DG1") == 0)
        map_dg1(c, seg);
    else if (ref && strcmp(id, "RF1") == 0)
        map_rf1(c, seg);
    else if (ref && strcmp(id, "PRD") == 0)
        map_prd(c, seg);
    else if (order && strcmp(id, "ORC") == 0)
        map_orc(c, seg);
    else if (c->kind == KIND_ORM && strcmp(id, "RQD") == 0)
        map_rqd(c, seg);
    else if (c->kind == KIND_OMG && strcmp(id, "TQ1") == 0)
        map_tq1(c, seg);
    else if (c->kind == KIND_OMG && strcmp(id, "OBR") == 0)
        map_obr(c, seg);
    else if (is_z_segment(id))
        warn(c, "ignored vendor segment %s", id);
}

/* ---------------------------------------------------- after the walk */

static void
finish_discharge(ctx *c)
{
    Handover__Event *ev = c->ev;
    Handover__Discharge *d = ev->discharge;
    /* EVN-6, else PV1-45, else EVN-2 (domain 5.4): never MSH-7, so a
     * resend with a new send time is the same event. */
    const char *occ = c->evn6[0] ? c->evn6 : c->pv1_45[0] ? c->pv1_45 : c->evn2;
    if (occ[0] != '\0')
        hov_pb_take(&ev->occurred_at, xstrdup(c, occ));
    else if (raw_empty(get(c, c->seg_evn, 2, 0, 1, 0)))
        ferr(c, c->seg_evn, 2, 0, 101,
             "recorded date/time is missing, and neither EVN-6 nor PV1-45 "
             "gives the time of the discharge");
    const char *out = c->pv1_45[0] ? c->pv1_45 : c->evn6;
    if (out[0] != '\0')
        hov_pb_take(&d->discharged_at, xstrdup(c, out));
    else if (raw_empty(get(c, c->seg_pv1, 45, 0, 1, 0)) &&
             raw_empty(get(c, c->seg_evn, 6, 0, 1, 0)))
        ferr(c, c->seg_pv1, 45, 0, 101,
             "discharge date/time is missing (PV1-45, or EVN-6)");
    if (c->have_pathway) {
        d->pathway_present_case = HANDOVER__DISCHARGE__PATHWAY_PRESENT_PATHWAY;
        d->pathway = c->pathway;
        /* Domain 3.5: urgent on pathways 1 to 3, routine on pathway 0. */
        hov_pb_take(&ev->priority,
                    xstrdup(c, c->pathway == 0 ? "routine" : "urgent"));
    } else {
        aerr(c, "OBX", (unsigned)c->nobx + 1, 3, 101,
             "discharge to assess pathway is missing: send an OBX with "
             "OBX-3 D2A-PATHWAY^Discharge to assess pathway^HANDOVER");
    }
    acc_take(&c->meds, &d->medications_summary);
}

static void
finish_request_time(ctx *c)
{
    /* RF1-9 when it has a time, else RF1-7 (a date alone is 00:00 in
     * Europe/London), else a date-only RF1-9, and MSH-7 only when the
     * message holds nothing better: it changes on a resend. */
    const char *occ = c->rf1_9_time ? c->rf1_9
                      : c->rf1_7[0] ? c->rf1_7
                      : c->rf1_9[0] ? c->rf1_9
                                    : c->msh7;
    if (occ[0] != '\0')
        hov_pb_take(&c->ev->occurred_at, xstrdup(c, occ));
    else if (raw_empty(get(c, c->seg_rf1, 7, 0, 1, 0)) &&
             raw_empty(get(c, c->seg_rf1, 9, 0, 1, 0)) &&
             raw_empty(get(c, 0, 7, 0, 1, 0)))
        ferr(c, c->seg_rf1, 7, 0, 101,
             "effective date is missing, and neither RF1-9 nor MSH-7 gives "
             "a time");
}

static void
finish_referral(ctx *c)
{
    finish_request_time(c);
    acc_take(&c->reason, &c->ev->reason);
    /* A 1R note that could not be decoded has its own error already. */
    if (!is_empty_str(c->ev->reason) || c->reason_bad)
        return;
    if (c->reason_nte != HL7_NPOS)
        ferr(c, c->reason_nte, 3, 0, 101,
             "reason is empty: the 1R note holds no text");
    else
        aerr(c, "NTE", (unsigned)count_segs(c, "NTE") + 1, 3, 101,
             "reason is missing: a referral needs an NTE with NTE-4 1R "
             "(primary reason)");
}

/* The next working day (Monday to Friday) after date, as YYYY-MM-DD. */
static bool
next_working_day(const char *date, char out[11])
{
    int y = 0, mo = 0, d = 0;
    for (int i = 0; i < 4; i++)
        y = y * 10 + (date[i] - '0');
    mo = (date[5] - '0') * 10 + (date[6] - '0');
    d = (date[8] - '0') * 10 + (date[9] - '0');
    uint64_t ms;
    if (!hov_civil_to_ms(y, mo, d, 12, 0, 0, 0, 0, &ms))
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

static void
finish_order(ctx *c)
{
    Handover__Event *ev = c->ev;
    Handover__EquipmentOrder *o = ev->equipment_order;
    group_close(c, c->nsegs);
    size_t first_orc = hl7_find(c->m, 0, "ORC");
    const char *occ = c->orc9[0] ? c->orc9 : c->msh7;
    if (occ[0] != '\0')
        hov_pb_take(&ev->occurred_at, xstrdup(c, occ));
    else if (raw_empty(get(c, first_orc, 9, 0, 1, 0)) &&
             raw_empty(get(c, 0, 7, 0, 1, 0)))
        ferr(c, first_orc, 9, 0, 101,
             "date/time of transaction is missing, and MSH-7 gives none");

    hov_pb_take(
        &o->action,
        xstrdup(c, c->order_action == ACT_COLLECT ? "collect" : "deliver"));
    if (is_empty_str(o->order_ref) &&
        raw_empty(get(c, first_orc, 4, 0, 1, 0)) &&
        raw_empty(get(c, first_orc, 2, 0, 1, 0)))
        ferr(c, first_orc, 4, 1, 101,
             "placer group number (or ORC-2 placer order number) is "
             "missing");
    if (!is_empty_str(o->order_ref))
        hov_pb_take(&ev->source->ref, xstrdup(c, o->order_ref));

    if (c->required_by[0] != '\0') {
        hov_pb_take(&o->required_by, xstrdup(c, c->required_by));
    } else if (c->seg_first_date != HL7_NPOS) {
        unsigned field = c->kind == KIND_ORM ? 10 : 8;
        bool any = false;
        for (size_t i = c->seg_first_date; i < c->nsegs; i++)
            if (strcmp(hl7_seg_id(c->m, i),
                       hl7_seg_id(c->m, c->seg_first_date)) == 0 &&
                !raw_empty(get(c, i, field, 0, 1, 0)))
                any = true;
        if (!any)
            ferr(c, c->seg_first_date, field, 0, 101,
                 "the date the equipment is needed by is missing");
    }

    /* Delivered to where the patient lives unless the order says
     * otherwise (domain 3.5); HL7 orders here carry no other address. */
    Handover__Patient *pt = ev->patient;
    Handover__Address *a = malloc(sizeof *a);
    if (a == NULL) {
        c->oom = true;
        return;
    }
    handover__address__init(a);
    o->delivery_address = a;
    if (pt->n_address_lines > 0) {
        a->lines = new_array(c, pt->n_address_lines, sizeof *a->lines);
        for (size_t i = 0; a->lines != NULL && i < pt->n_address_lines; i++) {
            a->lines[i] = xstrdup(c, pt->address_lines[i]);
            if (a->lines[i] == NULL)
                break;
            a->n_lines++;
        }
    }
    if (!is_empty_str(pt->postcode))
        hov_pb_take(&a->postcode, xstrdup(c, pt->postcode));

    const char *prio = NULL;
    if (c->stated_priority == 2) {
        prio = "urgent";
    } else if (c->stated_priority == 1) {
        prio = "routine";
    } else if (!is_empty_str(ev->occurred_at) && c->required_by[0] != '\0') {
        /* Domain 3.5: urgent when needed by the next working day after the
         * order was placed. The order date, not today, so a resend gives
         * the same event. */
        uint64_t ms;
        char placed[11], next[11];
        if (hov_rfc3339_to_ms(ev->occurred_at, &ms)) {
            hov_date_london_at(ms, placed);
            if (next_working_day(placed, next))
                prio = strcmp(c->required_by, next) <= 0 ? "urgent" : "routine";
        }
    }
    if (prio != NULL)
        hov_pb_take(&ev->priority, xstrdup(c, prio));
}

static void
finish_outcome(ctx *c)
{
    finish_request_time(c);
    acc_take(&c->outcome_text, &c->ev->outcome->reason_text);
}

/* Envelope fields that need the whole message: the id, the type. */
static void
finish_envelope(ctx *c)
{
    Handover__Event *ev = c->ev;
    static const char *const type_names[] = {
        [KIND_DISCHARGE] = "discharge", [KIND_ADMISSION] = "",
        [KIND_REFERRAL] = "referral",   [KIND_OUTCOME] = "outcome",
        [KIND_ORM] = "equipment_order", [KIND_OMG] = "equipment_order",
    };
    hov_pb_take(&ev->schema, xstrdup(c, "handover.event.v1"));
    hov_pb_take(&ev->event_type, xstrdup(c, type_names[c->kind]));
    if (c->r->nerr > 0 || c->oom || c->control_id == NULL)
        return;
    /* Domain 3.8: a name a resend reproduces, so the id is the same. */
    const char *org = ev->source->org->code, *app = ev->source->system;
    size_t len =
        strlen("hl7v2|||") + strlen(org) + strlen(app) + strlen(c->control_id);
    char *name = malloc(len + 1);
    if (name == NULL) {
        c->oom = true;
        return;
    }
    snprintf(name, len + 1, "hl7v2|%s|%s|%s", org, app, c->control_id);
    char id[37];
    hov_error err = {0};
    hov_err rc = hov_uuid_v5(HOV_EVENT_ID_NS, name, len, id, &err);
    free(name);
    if (rc != HOV_OK) {
        add_error(c, 0, 'R', 207, NULL, 0, 0, 0,
                  "temporarily unavailable; resend: cannot derive the event "
                  "id");
        return;
    }
    hov_pb_take(&ev->event_id, xstrdup(c, id));
    /* A new request starts its journey; an outcome's correlation_id is
     * the answered event's, which the hub copies (hub/commit.c). */
    if (c->kind != KIND_OUTCOME)
        hov_pb_take(&ev->correlation_id, xstrdup(c, id));
}

/* ------------------------------------------------------------ the map */

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
init_patient(void *p)
{
    handover__patient__init(p);
}

static void
init_discharge(void *p)
{
    handover__discharge__init(p);
}

static void
init_referral(void *p)
{
    handover__referral__init(p);
}

static void
init_outcome(void *p)
{
    handover__outcome__init(p);
}

static void
init_order(void *p)
{
    handover__equipment_order__init(p);
}

/* The event's skeleton. Every part is initialised as soon as it is
 * allocated, so free_unpacked can take a half-built event apart. */
static int
build_event(ctx *c)
{
    Handover__Event *ev = NEW_MSG(c, Handover__Event, init_event);
    if (ev == NULL)
        return -1;
    c->ev = ev;
    ev->source = NEW_MSG(c, Handover__Source, init_source);
    if (ev->source == NULL)
        return -1;
    ev->source->org = NEW_MSG(c, Handover__OrgRef, init_org_ref);
    ev->patient = NEW_MSG(c, Handover__Patient, init_patient);
    switch (c->kind) {
    case KIND_DISCHARGE:
        ev->discharge = NEW_MSG(c, Handover__Discharge, init_discharge);
        if (ev->discharge == NULL)
            break;
        ev->body_case = HANDOVER__EVENT__BODY_DISCHARGE;
        ev->discharge->diagnoses = new_array(c, count_segs(c, "DG1"),
                                             sizeof *ev->discharge->diagnoses);
        break;
    case KIND_REFERRAL:
        ev->referral = NEW_MSG(c, Handover__Referral, init_referral);
        if (ev->referral == NULL)
            break;
        ev->body_case = HANDOVER__EVENT__BODY_REFERRAL;
        ev->destinations =
            new_array(c, count_segs(c, "PRD"), sizeof *ev->destinations);
        break;
    case KIND_OUTCOME:
        ev->outcome = NEW_MSG(c, Handover__Outcome, init_outcome);
        if (ev->outcome != NULL)
            ev->body_case = HANDOVER__EVENT__BODY_OUTCOME;
        break;
    case KIND_ORM:
    case KIND_OMG:
        ev->equipment_order = NEW_MSG(c, Handover__EquipmentOrder, init_order);
        if (ev->equipment_order == NULL)
            break;
        ev->body_case = HANDOVER__EVENT__BODY_EQUIPMENT_ORDER;
        ev->equipment_order->items = new_array(
            c, count_segs(c, "ORC"), sizeof *ev->equipment_order->items);
        ev->equipment_order->collect_assets =
            new_array(c, count_segs(c, "OBX"),
                      sizeof *ev->equipment_order->collect_assets);
        break;
    case KIND_ADMISSION:
        break;
    }
    return c->oom ? -1 : 0;
}

static void
ctx_fini(ctx *c)
{
    acc_free(&c->reason);
    acc_free(&c->clinical);
    acc_free(&c->social);
    acc_free(&c->access);
    acc_free(&c->outcome_text);
    acc_free(&c->meds);
    acc_free(&c->notes);
    free(c->control_id);
    c->control_id = NULL;
    if (c->ev != NULL)
        handover__event__free_unpacked(c->ev, NULL);
    c->ev = NULL;
}

static int
out_of_memory(ctx *c)
{
    map_in_result *r = c->r;
    ctx_fini(c);
    r->nerr = 1;
    memset(&r->errs[0], 0, sizeof r->errs[0]);
    r->errs[0].ack = 'R';
    r->errs[0].code = 207;
    hov_strlcpy(r->errs[0].text, sizeof r->errs[0].text,
                "temporarily unavailable; resend: out of memory");
    return -2;
}

/* "ADT^A03" for logs, whatever MSH-9 holds. */
static void
set_type(ctx *c)
{
    char a[ECHO_MAX + 4], b[ECHO_MAX + 4];
    echo_raw(get(c, 0, 9, 0, 1, 0), a, sizeof a);
    echo_raw(get(c, 0, 9, 0, 2, 0), b, sizeof b);
    snprintf(c->r->type, sizeof c->r->type, "%.7s^%.7s", a, b);
}

int
map_in(const hl7_msg *m, const map_in_opts *o, map_in_result *r)
{
    static const map_in_opts no_opts = {0};
    memset(r, 0, sizeof *r);
    ctx c = {.m = m, .o = o != NULL ? o : &no_opts, .r = r};
    c.nsegs = hl7_nsegs(m);
    c.author_prd = HL7_NPOS;
    c.reason_nte = HL7_NPOS;
    c.seg_first_date = HL7_NPOS;
    hl7_str ack_accept = get(&c, 0, 15, 0, 0, 0);
    hl7_str ack_app = get(&c, 0, 16, 0, 0, 0);
    r->enhanced = ack_accept.n > 0 || ack_app.n > 0;
    set_type(&c);

    if (check_header(&c) != 0 || check_encoding(&c) != 0 ||
        check_structure(&c) != 0)
        return -1;

    if (c.kind == KIND_ADMISSION) {
        map_control_id(&c);
        free(c.control_id);
        if (c.oom)
            return out_of_memory(&c);
        if (r->nerr > 0)
            return -1;
        r->ack_only = true;
        return 0;
    }

    c.request = c.kind != KIND_OUTCOME;
    if (c.o->today != NULL)
        hov_strlcpy(c.today, sizeof c.today, c.o->today);
    else
        hov_today_london(c.today);
    c.author_prd = find_author_prd(&c);
    if (build_event(&c) != 0)
        return out_of_memory(&c);

    for (size_t i = 0; i < c.nsegs && !c.oom && !c.unreadable; i++)
        map_segment(&c, i);
    if (!c.oom && !c.unreadable) {
        switch (c.kind) {
        case KIND_DISCHARGE:
            finish_discharge(&c);
            break;
        case KIND_REFERRAL:
            finish_referral(&c);
            break;
        case KIND_OUTCOME:
            finish_outcome(&c);
            break;
        default:
            finish_order(&c);
            break;
        }
    }
    if (!c.oom && !c.unreadable) {
        acc_take(&c.reason, &c.ev->reason);
        acc_take(&c.clinical, &c.ev->clinical_details);
        acc_take(&c.social, &c.ev->social_details);
        acc_take(&c.access, &c.ev->access_notes);
        finish_envelope(&c);
    }
    if (c.oom)
        return out_of_memory(&c);
    if (r->nerr > 0) {
        ctx_fini(&c);
        return -1;
    }
    r->event = c.ev;
    c.ev = NULL;
    ctx_fini(&c);
    return 0;
}

void
map_in_result_free(map_in_result *r)
{
    if (r == NULL)
        return;
    if (r->event != NULL)
        handover__event__free_unpacked(r->event, NULL);
    r->event = NULL;
}
