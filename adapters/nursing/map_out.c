/* Outbound mapping for the nursing agency: a canonical event to the HL7 v2.4
 * message the community nursing system takes (domain 5.4 read in reverse,
 * message structures from 5.5).
 *
 * The messages follow what the trust's own systems send us (the samples in
 * samples/hl7/), so the partner reads ours with the mapping it already has:
 * PID-3 "<nhs>^^^NHS^NH", NTE-4 types 1R/CD/SD/AN, OBX ids in the HANDOVER
 * coding system, PRD-4 component 4 holding the organisation code, ZCN for
 * consent.
 *
 * Everything taken from the event goes through text(): hl7b_text escapes
 * the delimiters and turns newlines into \.br\, and text() adds \Xhh\ for
 * control bytes, so no value can break the message or its MLLP frame. A field
 * the event lacks (NULL sub-message, empty string) is left empty: the nursing
 * view is "full", but a minimal event must still map. A value that is present
 * but malformed (a timestamp that does not parse) refuses the event, because
 * sending a wrong time to a clinician is worse than a dead letter an operator
 * sees. The hub validates events before it stores them, so that path means a
 * bug upstream.
 *
 * Failure is sticky, as in the builder: the first problem is recorded in
 * why, the rest of the mapping runs harmlessly, and map_out reports it at
 * the end. That keeps the segment writers free of error plumbing.
 */
#include "map_out.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "handover/ident.h"
#include "handover/timeutil.h"
#include "hl7.h"

/* The community equipment service of domain section 1, when the caller
 * names no codes of its own. */
static const char *const default_equipment_orgs[] = {"8ZZ99", NULL};

/* A canonical code, the HL7 code it becomes, and that code's display text. */
typedef struct code_map {
    const char *canon;
    const char *hl7;
    const char *text;
} code_map;

/* RF1-2, HL7 table 0280 (domain 5.4). */
static const code_map priorities[] = {
    {"two_hour_crisis", "S", "STAT"},
    {"urgent", "A", "ASAP"},
    {"routine", "R", "Routine"},
};

/* RF1-1 of an RRI, table 0283 plus the Handover codes C and X (5.4). Table
 * 0283 is user-defined, so the additions stay in its coding system. */
static const code_map referral_statuses[] = {
    {"accepted", "A", "Accepted"},
    {"rejected", "R", "Rejected"},
    {"completed", "C", "Completed"},
    {"cancelled", "X", "Cancelled"},
};

/* ORC-5 of an ORM^O01 SC, table 0038. The domain fixes CM, CA and HD. The
 * rest is ours: an accepted order is in process (IP); a rejected one will
 * not be done, which 0038 can only say as CA, and ORC-16 carries the
 * rejection reason, whose codes never overlap the cancellation reasons
 * (domain 3.6), so the partner can still tell the two apart. */
static const code_map order_statuses[] = {
    {"delivered", "CM", NULL}, {"collected", "CM", NULL},
    {"completed", "CM", NULL}, {"cannot_deliver", "HD", NULL},
    {"cancelled", "CA", NULL}, {"rejected", "CA", NULL},
    {"accepted", "IP", NULL},
};

/* RF1-3 display texts for the Handover service codes (domain 3.5). */
static const code_map services[] = {
    {"district-nursing", "district-nursing", "District nursing"},
    {"urgent-community-response", "urgent-community-response",
     "Urgent community response"},
    {"community-therapy", "community-therapy", "Community therapy"},
    {"adult-social-care-assessment", "adult-social-care-assessment",
     "Care Act needs assessment"},
    {"carers-assessment", "carers-assessment", "Carer's assessment"},
    {"reablement", "reablement", "Reablement"},
    {"social-prescribing", "social-prescribing", "Social prescribing"},
    {"home-from-hospital", "home-from-hospital", "Home from hospital"},
};

/* OBX D2A-PATHWAY values (domain 2.2), in the words of the trust's ADT. */
static const char *const pathway_texts[] = {
    "Pathway 0 - simple discharge home",
    "Pathway 1 - home with new or additional support",
    "Pathway 2 - bed-based recovery, rehabilitation or assessment",
    "Pathway 3 - bed-based 24-hour care",
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

typedef struct mctx {
    hl7_builder b;
    const Handover__Event *ev;
    const map_out_opts *o;
    char now_ts[20];
    unsigned nte_seq; /* NTE-1 within the message */
    unsigned obx_seq; /* OBX-1 within the message or order group */
    bool failed;      /* why holds the first problem */
    char *why;
    size_t whysz;
} mctx;

static bool
has(const char *s)
{
    return s != NULL && s[0] != '\0';
}

static const code_map *
lookup(const code_map *t, size_t n, const char *canon)
{
    if (canon == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++)
        if (strcmp(t[i].canon, canon) == 0)
            return &t[i];
    return NULL;
}

static void
say(char *why, size_t whysz, const char *fmt, va_list ap)
{
    if (why != NULL && whysz > 0)
        vsnprintf(why, whysz, fmt, ap);
}

/* Fill why and return -1, for refusals found before the builder starts. */
static int __attribute__((format(printf, 3, 4)))
refuse(char *why, size_t whysz, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    say(why, whysz, fmt, ap);
    va_end(ap);
    return -1;
}

/* Record the first problem met while building; later ones are dropped so
 * the message names the earliest field, in message order. The event id
 * leads, because why goes to dead letters and the audit log. */
static void __attribute__((format(printf, 2, 3)))
fail(mctx *c, const char *fmt, ...)
{
    if (c->failed)
        return;
    c->failed = true;
    if (c->why == NULL || c->whysz == 0)
        return;
    char what[200];
    va_list ap;
    va_start(ap, fmt);
    say(what, sizeof what, fmt, ap);
    va_end(ap);
    snprintf(c->why, c->whysz, "event %s: %s", c->ev->event_id, what);
}

/* A C0 control byte that hl7b_text would pass through raw: everything
 * below 0x20 but tab (legal in text) and the line breaks it handles. */
static bool
is_raw_control(unsigned char ch)
{
    return ch != '\0' && ch < 0x20 && ch != '\t' && ch != '\n' && ch != '\r';
}

/* Append text at the cursor. hl7b_text escapes the delimiters and line
 * breaks but copies other control bytes as they are; canonical text may
 * hold them (JSON input allows \u000b), and a raw 0x0B or 0x1C inside the
 * message would restart or end the MLLP frame at the partner. So control
 * bytes travel as \Xhh\, which every receiver decodes back to the byte. */
static void
text(mctx *c, const char *s)
{
    if (s == NULL)
        return;
    const char *p = s;
    while (*p != '\0' && !is_raw_control((unsigned char)*p))
        p++;
    if (*p == '\0') {
        hl7b_text(&c->b, s);
        return;
    }
    char chunk[256];
    size_t n = 0;
    for (p = s;; p++) {
        unsigned char ch = (unsigned char)*p;
        bool ctl = is_raw_control(ch);
        if (ch == '\0' || ctl || n == sizeof chunk - 1) {
            chunk[n] = '\0';
            hl7b_text(&c->b, chunk);
            n = 0;
        }
        if (ch == '\0')
            break;
        if (ctl) {
            char e[8];
            snprintf(e, sizeof e, "%cX%02X%c", c->b.d.esc, ch, c->b.d.esc);
            hl7b_raw(&c->b, e);
        } else {
            chunk[n++] = (char)ch;
        }
    }
}

/* Text at field/comp, or nothing at all when the value is absent, so an
 * absent value leaves no trailing separators. */
static void
put(mctx *c, unsigned field, unsigned comp, const char *s)
{
    if (!has(s))
        return;
    hl7b_at(&c->b, field, 0, comp, 1);
    text(c, s);
}

/* The same for a repetition other than the first. */
static void
put_rep(mctx *c, unsigned field, unsigned rep, unsigned comp, const char *s)
{
    if (!has(s))
        return;
    hl7b_at(&c->b, field, rep, comp, 1);
    text(c, s);
}

/* A CE: code^text^coding system, left out whole when there is no code. */
static void
put_ce(mctx *c, unsigned field, const char *code, const char *display,
       const char *system)
{
    if (!has(code))
        return;
    put(c, field, 1, code);
    put(c, field, 2, display);
    put(c, field, 3, system);
}

static void
put_uint(mctx *c, unsigned field, unsigned comp, unsigned long v)
{
    char n[24];
    snprintf(n, sizeof n, "%lu", v);
    put(c, field, comp, n);
}

/* An RFC 3339 timestamp as an HL7 TS in UTC, "YYYYMMDDhhmmss+0000".
 * name is the canonical field, for why. */
static void
put_ts(mctx *c, unsigned field, unsigned comp, const char *rfc3339,
       const char *name)
{
    if (!has(rfc3339))
        return;
    uint64_t ms = 0;
    if (!hov_rfc3339_to_ms(rfc3339, &ms)) {
        fail(c, "%s is not an RFC 3339 timestamp", name);
        return;
    }
    char ts[20];
    hl7_ts_format(ms, ts);
    put(c, field, comp, ts);
}

/* A calendar date "YYYY-MM-DD" as an HL7 DT, "YYYYMMDD". */
static void
put_date(mctx *c, unsigned field, unsigned comp, const char *date,
         const char *name)
{
    if (!has(date))
        return;
    if (!hov_date_valid(date)) {
        fail(c, "%s is not a YYYY-MM-DD date", name);
        return;
    }
    char dt[9];
    memcpy(dt, date, 4);
    memcpy(dt + 4, date + 5, 2);
    memcpy(dt + 6, date + 8, 2);
    dt[8] = '\0';
    put(c, field, comp, dt);
}

/* The Europe/London calendar date of an RFC 3339 timestamp as a DT: the
 * day a person in the partnership would name. */
static void
put_london_date(mctx *c, unsigned field, const char *rfc3339, const char *name)
{
    if (!has(rfc3339))
        return;
    uint64_t ms = 0;
    if (!hov_rfc3339_to_ms(rfc3339, &ms)) {
        fail(c, "%s is not an RFC 3339 timestamp", name);
        return;
    }
    char d[11];
    hov_date_london_at(ms, d);
    put_date(c, field, 1, d, name);
}

static bool
all_digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

static bool
is_upper(char ch)
{
    return ch >= 'A' && ch <= 'Z';
}

/* The identifier type of a professional's id, from its shape (domain 4.3),
 * for PRD-7 ("99Z1234Z^NMC", "G9999990^GMP"); NULL when the shape is none
 * of them, and the id then goes without a type rather than a wrong one. */
static const char *
professional_id_type(const char *id)
{
    size_t n = strlen(id);
    if (n == 8 && id[0] == 'G' && all_digits(id + 1, 7))
        return "GMP";
    if (n == 8 && id[0] == 'C' && all_digits(id + 1, 7))
        return "GMC";
    if (n == 8 && all_digits(id, 2) && is_upper(id[2]) &&
        all_digits(id + 3, 4) && is_upper(id[7]))
        return "NMC";
    if (n == 8 && is_upper(id[0]) && is_upper(id[1]) && all_digits(id + 2, 6))
        return "HCPC";
    return NULL;
}

/* XTN equipment type: UK mobile numbers start 07 (or +447), as the
 * partners' CP/PH choice in the samples shows. */
static const char *
phone_equipment(const char *phone)
{
    while (*phone == ' ')
        phone++;
    if (strncmp(phone, "07", 2) == 0 || strncmp(phone, "+447", 4) == 0)
        return "CP";
    return "PH";
}

/* An XTN: number^use^equipment. */
static void
put_phone(mctx *c, unsigned field, const char *phone, const char *use)
{
    if (!has(phone))
        return;
    put(c, field, 1, phone);
    put(c, field, 2, use);
    put(c, field, 3, phone_equipment(phone));
}

/* An XCN for a canonical person: id^name. The canonical name is one string
 * ("Dr Hannah Okafor"); splitting it into family and given names would
 * guess wrong for titles and compound names, so it goes whole into the
 * family name component, where a reader shows it as it was written. */
static void
put_xcn(mctx *c, unsigned field, const Handover__Person *p)
{
    if (p == NULL)
        return;
    put(c, field, 1, p->id);
    put(c, field, 2, p->name);
}

/* A UK XAD (domain 5.4, PID-11): street^locality^post town^^postcode^
 * country^type. The canonical form is up to five plain lines, so the last
 * line is taken as the post town (as in every partner sample), the first
 * as the street, and any lines between them are joined with ", " into the
 * locality: no line is dropped, though a reader sees at most three. */
static void
put_xad(mctx *c, unsigned field, unsigned rep, char *const *lines,
        size_t nlines, const char *postcode, const char *type)
{
    size_t first = nlines, last = nlines;
    for (size_t i = 0; i < nlines; i++) {
        if (!has(lines[i]))
            continue;
        if (first == nlines)
            first = i;
        last = i;
    }
    if (first == nlines && !has(postcode))
        return;
    if (first < nlines) {
        put_rep(c, field, rep, 1, lines[first]);
        bool any = false;
        for (size_t i = first + 1; i < last; i++) {
            if (!has(lines[i]))
                continue;
            if (!any)
                hl7b_at(&c->b, field, rep, 2, 1);
            else
                text(c, ", ");
            text(c, lines[i]);
            any = true;
        }
        if (last != first)
            put_rep(c, field, rep, 3, lines[last]);
    }
    put_rep(c, field, rep, 5, postcode);
    /* Canonical postcodes are UK postcodes (domain 4.3). */
    put_rep(c, field, rep, 6, "GBR");
    put_rep(c, field, rep, 7, type);
}

/* ------------------------------------------------------------ segments */

static void
seg_msh(mctx *c, const char *code, const char *trigger, const char *structure,
        bool enhanced)
{
    const map_out_opts *o = c->o;
    char control[21];
    map_out_control_id(c->ev->event_id, control);

    hl7b_seg(&c->b, "MSH");
    put(c, 3, 1, o != NULL && o->app != NULL ? o->app : "HANDOVER");
    put(c, 4, 1, o != NULL && o->facility != NULL ? o->facility : "HANDOVER");
    put(c, 5, 1, o != NULL ? o->recv_app : NULL);
    put(c, 6, 1, o != NULL ? o->recv_facility : NULL);
    put(c, 7, 1, c->now_ts);
    put(c, 9, 1, code);
    put(c, 9, 2, trigger);
    put(c, 9, 3, structure);
    put(c, 10, 1, control);
    put(c, 11, 1, "P");
    put(c, 12, 1, "2.4");
    if (enhanced) {
        put(c, 15, 1, "AL");
        put(c, 16, 1, "NE");
    }
    put(c, 17, 1, "GBR");
    put(c, 18, 1, "UNICODE UTF-8");
}

static void
seg_pid(mctx *c)
{
    const Handover__Patient *p = c->ev->patient;
    hl7b_seg(&c->b, "PID");
    put(c, 1, 1, "1");
    if (p == NULL)
        return;

    if (has(p->nhs_number)) {
        put(c, 3, 1, p->nhs_number);
        put(c, 3, 4, "NHS");
        put(c, 3, 5, "NH");
    }

    /* PID-5: family^given^further given names^^prefix^^L. */
    const char *first = p->n_given_names > 0 ? p->given_names[0] : NULL;
    bool further = false;
    for (size_t i = 1; i < p->n_given_names; i++)
        further = further || has(p->given_names[i]);
    /* Written only when there is a name: a bare "^^^^^^L" would claim a
     * legal name that is empty. */
    if (has(p->family_name) || has(first) || further || has(p->title)) {
        put(c, 5, 1, p->family_name);
        put(c, 5, 2, first);
        bool any = false;
        for (size_t i = 1; i < p->n_given_names; i++) {
            if (!has(p->given_names[i]))
                continue;
            if (!any)
                hl7b_at(&c->b, 5, 0, 3, 1);
            else
                text(c, " ");
            text(c, p->given_names[i]);
            any = true;
        }
        put(c, 5, 5, p->title);
        put(c, 5, 7, "L");
    }

    put_date(c, 7, 1, p->date_of_birth, "patient.date_of_birth");

    /* PID-8, table 0001. */
    static const code_map sexes[] = {
        {"female", "F", NULL},
        {"male", "M", NULL},
        {"other", "O", NULL},
        {"unknown", "U", NULL},
    };
    const code_map *sex = lookup(sexes, NELEM(sexes), p->sex);
    if (sex != NULL)
        put(c, 8, 1, sex->hl7);
    else if (has(p->sex))
        put(c, 8, 1, "U");

    /* PID-11: the home address; a discharge to somewhere else (a care home,
     * a relative's) adds it as the current or temporary address, type C
     * (table 0190), so the visiting nurse finds the patient. */
    unsigned rep = 0;
    bool home = p->n_address_lines > 0 || has(p->postcode);
    if (home) {
        put_xad(c, 11, 0, p->address_lines, p->n_address_lines, p->postcode,
                "H");
        rep = 1;
    }
    const Handover__Discharge *d =
        c->ev->body_case == HANDOVER__EVENT__BODY_DISCHARGE ? c->ev->discharge
                                                            : NULL;
    const Handover__DischargeDestination *dd =
        d != NULL ? d->destination : NULL;
    if (dd != NULL)
        put_xad(c, 11, rep, dd->address_lines, dd->n_address_lines,
                dd->postcode, "C");

    put_phone(c, 13, p->phone, "PRN");

    /* PID-32: the NHS number trace status as UK feeds send it. */
    if (has(p->nhs_number_status)) {
        char nsts[16];
        snprintf(nsts, sizeof nsts, "NSTS%s", p->nhs_number_status);
        put(c, 32, 1, nsts);
    }
}

/* PD1-3: the registered practice, ODS code in component 3. The event has
 * the code only, so the name (component 1) stays empty. */
static void
seg_pd1(mctx *c)
{
    const Handover__Patient *p = c->ev->patient;
    if (p == NULL || !has(p->registered_gp))
        return;
    hl7b_seg(&c->b, "PD1");
    put(c, 3, 3, p->registered_gp);
}

/* One PRD: role (table 0286), name, organisation in PRD-4 component 4,
 * phone, and the professional's identifier with its type. */
static void
seg_prd(mctx *c, const char *role, const char *role_text, const char *name,
        const char *org, const char *phone, const char *id)
{
    hl7b_seg(&c->b, "PRD");
    put_ce(c, 1, role, role_text, "HL70286");
    put(c, 2, 1, name);
    put(c, 4, 4, org);
    put_phone(c, 5, phone, "WPN");
    if (has(id)) {
        put(c, 7, 1, id);
        put(c, 7, 2, professional_id_type(id));
    }
}

static const char *
org_code(const Handover__OrgRef *r)
{
    return r != NULL ? r->code : NULL;
}

static const char *
org_name(const Handover__OrgRef *r)
{
    return r != NULL ? r->name : NULL;
}

/* The name the event gives the destination code, or NULL. */
static const char *
destination_name(const Handover__Event *ev, const char *code)
{
    for (size_t i = 0; i < ev->n_destinations; i++) {
        const Handover__OrgRef *r = ev->destinations[i];
        if (r != NULL && has(r->code) && strcmp(r->code, code) == 0)
            return r->name;
    }
    return NULL;
}

/* PRD PP: the patient's registered practice. REF_I12 and RRI_I12 have no
 * PD1, and the nurse needs to know the GP. */
static void
seg_prd_gp(mctx *c)
{
    const Handover__Patient *p = c->ev->patient;
    if (p != NULL && has(p->registered_gp))
        seg_prd(c, "PP", "Primary care provider", NULL, p->registered_gp, NULL,
                NULL);
}

static void
seg_nte(mctx *c, const char *source, const char *comment, const char *type,
        const char *type_text, const char *system)
{
    if (!has(comment))
        return;
    hl7b_seg(&c->b, "NTE");
    put_uint(c, 1, 1, ++c->nte_seq);
    put(c, 2, 1, source);
    put(c, 3, 1, comment);
    put_ce(c, 4, type, type_text, system);
}

/* The envelope's free texts as NTEs with the domain 5.4 comment types.
 * source is NTE-2 (table 0105): P for the placer's words, L for the
 * filler's. */
static void
seg_notes(mctx *c, const char *source)
{
    const Handover__Event *ev = c->ev;
    seg_nte(c, source, ev->reason, "1R", "Primary reason", "HL70364");
    seg_nte(c, source, ev->clinical_details, "CD", "Clinical details",
            "HANDOVER");
    seg_nte(c, source, ev->social_details, "SD", "Social details", "HANDOVER");
    seg_nte(c, source, ev->access_notes, "AN", "Access notes", "HANDOVER");
}

/* An OBX with one text value (ST or TX) and observation id id^text^
 * HANDOVER; result status F. */
static void
seg_obx_text(mctx *c, const char *type, const char *id, const char *id_text,
             const char *value)
{
    if (!has(value))
        return;
    hl7b_seg(&c->b, "OBX");
    put_uint(c, 1, 1, ++c->obx_seq);
    put(c, 2, 1, type);
    put_ce(c, 3, id, id_text, "HANDOVER");
    put(c, 5, 1, value);
    put(c, 11, 1, "F");
}

/* ZCN, Handover's consent segment (domain 5.4). recorded_by is one string
 * (name and role), so it goes whole into the XCN family name component. */
static void
seg_zcn(mctx *c)
{
    const Handover__Consent *k = c->ev->consent;
    if (k == NULL || (!has(k->basis) && !has(k->recorded_at) &&
                      !has(k->recorded_by) && !has(k->notes)))
        return;
    hl7b_seg(&c->b, "ZCN");
    put(c, 1, 1, "1");
    put(c, 2, 1, k->basis);
    put_ts(c, 3, 1, k->recorded_at, "consent.recorded_at");
    put(c, 4, 2, k->recorded_by);
    put(c, 5, 1, k->notes);
}

/* RF1-2 from the envelope priority; an unknown or absent one stays empty
 * rather than claiming an urgency the event did not state. */
static void
put_priority(mctx *c)
{
    const code_map *pr = lookup(priorities, NELEM(priorities), c->ev->priority);
    if (pr != NULL)
        put_ce(c, 2, pr->hl7, pr->text, "HL70280");
}

/* An EI "<id>^<namespace>": the partner's own identifier, namespaced by
 * its application, else by its organisation. */
static void
put_source_ref(mctx *c, unsigned field)
{
    const Handover__Source *s = c->ev->source;
    if (s == NULL || !has(s->ref))
        return;
    put(c, field, 1, s->ref);
    put(c, field, 2, has(s->system) ? s->system : org_code(s->org));
}

/* ------------------------------------------------------------ messages */

/* REF^I12: MSH RF1 {PRD} PID [NTE...] [ZCN] (domain 5.5). */
static void
build_ref(mctx *c)
{
    const Handover__Event *ev = c->ev;
    const Handover__Referral *r = ev->referral;
    const Handover__Source *s = ev->source;
    const Handover__Person *a = s != NULL ? s->author : NULL;

    seg_msh(c, "REF", "I12", "REF_I12", false);

    hl7b_seg(&c->b, "RF1");
    put_ce(c, 1, "P", "Pending", "HL70283");
    put_priority(c);
    const code_map *svc = lookup(services, NELEM(services), r->service);
    put_ce(c, 3, r->service, svc != NULL ? svc->text : NULL, "HANDOVER");
    /* RF1-6 is the Handover event id, so the nursing system's RRI^I12
     * answer carries it back and the hub routes that outcome by it
     * (in_reply_to, domain 5.4). The referrer's own number goes in RF1-11,
     * the external referral identifier. */
    put(c, 6, 1, ev->event_id);
    put(c, 6, 2, "HANDOVER");
    put_london_date(c, 7, ev->occurred_at, "occurred_at");
    put_ts(c, 9, 1, ev->occurred_at, "occurred_at");
    put_source_ref(c, 11);

    /* PRD RP: the referrer. REF_I12 needs at least one PRD, so it is
     * written even when the event names nobody. */
    seg_prd(c, "RP", "Referring provider",
            a != NULL && has(a->name) ? a->name : org_name(s ? s->org : NULL),
            org_code(s != NULL ? s->org : NULL), a != NULL ? a->phone : NULL,
            a != NULL ? a->id : NULL);
    /* PRD RT: the organisation this copy goes to. */
    const char *dest = c->o != NULL ? c->o->destination : NULL;
    if (has(dest)) {
        seg_prd(c, "RT", "Referred to provider", destination_name(ev, dest),
                dest, NULL, NULL);
    } else {
        for (size_t i = 0; i < ev->n_destinations; i++) {
            const Handover__OrgRef *d = ev->destinations[i];
            if (d != NULL && has(d->code))
                seg_prd(c, "RT", "Referred to provider", d->name, d->code, NULL,
                        NULL);
        }
    }
    seg_prd_gp(c);

    seg_pid(c);
    seg_notes(c, "P");
    /* preferred_contact has no field of its own in HL7 or in 5.4; general
     * instructions (table 0364 GI) is where a visiting nurse looks, and the
     * label keeps it apart from other instructions. */
    if (has(r->preferred_contact)) {
        hl7b_seg(&c->b, "NTE");
        put_uint(c, 1, 1, ++c->nte_seq);
        put(c, 2, 1, "P");
        hl7b_at(&c->b, 3, 0, 1, 1);
        text(c, "Preferred contact: ");
        text(c, r->preferred_contact);
        put_ce(c, 4, "GI", "General instructions", "HL70364");
    }
    seg_zcn(c);
}

/* DG1-3 coding system: HL7 table 0396 names ICD-10 "I10"; canonical events
 * from FHIR may carry the FHIR system URI instead. */
static const char *
diagnosis_system(const char *system)
{
    static const char *const icd10[] = {"ICD-10", "ICD10",
                                        "http://hl7.org/fhir/sid/icd-10",
                                        "http://hl7.org/fhir/sid/icd-10-uk"};
    if (!has(system))
        return NULL;
    for (size_t i = 0; i < NELEM(icd10); i++)
        if (strcmp(system, icd10[i]) == 0)
            return "I10";
    return system;
}

/* ADT^A03: MSH EVN PID [PD1] PV1 [DG1...] [OBX...] (domain 5.5). */
static void
build_adt(mctx *c)
{
    const Handover__Event *ev = c->ev;
    const Handover__Discharge *d = ev->discharge;
    const Handover__Source *s = ev->source;

    seg_msh(c, "ADT", "A03", "ADT_A03", false);

    /* EVN-2 (required) is when the source recorded the discharge; a
     * source that gave no time gets the business time, then ours. */
    hl7b_seg(&c->b, "EVN");
    put(c, 1, 1, "A03");
    if (has(ev->recorded_at))
        put_ts(c, 2, 1, ev->recorded_at, "recorded_at");
    else if (has(ev->occurred_at))
        put_ts(c, 2, 1, ev->occurred_at, "occurred_at");
    else
        put(c, 2, 1, c->now_ts);
    put_xcn(c, 5, s != NULL ? s->author : NULL);
    put_ts(c, 6, 1, ev->occurred_at, "occurred_at");

    seg_pid(c);
    seg_pd1(c);

    hl7b_seg(&c->b, "PV1");
    put(c, 1, 1, "1");
    /* PV1-2 is required and the event has no patient class: a discharge
     * notice follows an admission, so inpatient. */
    put(c, 2, 1, "I");
    put(c, 3, 1, d->ward);
    put(c, 3, 4, d->site);
    put_xcn(c, 7, d->responsible_clinician);
    put(c, 19, 1, s != NULL ? s->ref : NULL);
    /* UK feeds carry the NHS DD discharge method in PV1-36 and destination
     * in PV1-37 (domain 5.4); the destination's address is in PID-11. */
    put(c, 36, 1, d->method);
    put(c, 37, 1, d->destination != NULL ? d->destination->code : NULL);
    put_ts(c, 44, 1, d->admitted_at, "discharge.admitted_at");
    put_ts(c, 45, 1, d->discharged_at, "discharge.discharged_at");

    unsigned dg = 0;
    for (size_t i = 0; i < d->n_diagnoses; i++) {
        const Handover__Coded *dx = d->diagnoses[i];
        if (dx == NULL || (!has(dx->code) && !has(dx->text)))
            continue;
        hl7b_seg(&c->b, "DG1");
        put_uint(c, 1, 1, ++dg);
        put(c, 3, 1, dx->code);
        put(c, 3, 2, dx->text);
        put(c, 3, 3, diagnosis_system(dx->system));
        /* DG1-6 is required; diagnoses on a discharge are final. */
        put(c, 6, 1, "F");
    }

    if (d->pathway_present_case ==
        HANDOVER__DISCHARGE__PATHWAY_PRESENT_PATHWAY) {
        char code[16];
        snprintf(code, sizeof code, "%d", (int)d->pathway);
        hl7b_seg(&c->b, "OBX");
        put_uint(c, 1, 1, ++c->obx_seq);
        put(c, 2, 1, "CE");
        put_ce(c, 3, "D2A-PATHWAY", "Discharge to assess pathway", "HANDOVER");
        put(c, 5, 1, code);
        if (d->pathway >= 0 && (size_t)d->pathway < NELEM(pathway_texts))
            put(c, 5, 2, pathway_texts[d->pathway]);
        put(c, 5, 3, "HANDOVER");
        put(c, 11, 1, "F");
    }

    /* FOLLOW-UP: one repetition per need, "service: text" (domain 5.4).
     * The convention has no place for the dates, so they follow the text
     * in words rather than being dropped. */
    unsigned reps = 0;
    for (size_t i = 0; i < d->n_follow_up; i++) {
        const Handover__FollowUp *f = d->follow_up[i];
        if (f == NULL || (!has(f->service) && !has(f->description) &&
                          !has(f->start) && !has(f->due_by)))
            continue;
        if (reps == 0) {
            hl7b_seg(&c->b, "OBX");
            put_uint(c, 1, 1, ++c->obx_seq);
            put(c, 2, 1, "TX");
            put_ce(c, 3, "FOLLOW-UP", "Follow-up needs", "HANDOVER");
        }
        hl7b_at(&c->b, 5, reps++, 1, 1);
        text(c, has(f->service) ? f->service : "unspecified");
        text(c, ": ");
        text(c, f->description);
        if (has(f->start) || has(f->due_by)) {
            text(c, has(f->description) ? " (" : "(");
            if (has(f->start)) {
                text(c, "start ");
                text(c, f->start);
            }
            if (has(f->due_by)) {
                text(c, has(f->start) ? "; due by " : "due by ");
                text(c, f->due_by);
            }
            text(c, ")");
        }
    }
    if (reps > 0)
        put(c, 11, 1, "F");

    seg_obx_text(c, "TX", "MEDS-SUMMARY", "Medication summary",
                 d->medications_summary);
    /* The envelope's texts: ADT_A03 has no NTE in v2.4, and a strict
     * engine could drop one it does not expect, access notes with it, so
     * they travel as OBX TX in the HANDOVER system beside MEDS-SUMMARY. */
    seg_obx_text(c, "TX", "REASON", "Reason", ev->reason);
    seg_obx_text(c, "TX", "CLINICAL-DETAILS", "Clinical details",
                 ev->clinical_details);
    seg_obx_text(c, "TX", "SOCIAL-DETAILS", "Social details",
                 ev->social_details);
    seg_obx_text(c, "TX", "ACCESS-NOTES", "Access notes", ev->access_notes);
}

/* RRI^I12: MSH RF1 {PRD} PID [NTE...] (domain 5.5), in enhanced mode. */
static void
build_rri(mctx *c, const code_map *status)
{
    const Handover__Event *ev = c->ev;
    const Handover__Outcome *oc = ev->outcome;
    const Handover__Source *s = ev->source;
    const Handover__Person *a = s != NULL ? s->author : NULL;

    seg_msh(c, "RRI", "I12", "RRI_I12", true);

    hl7b_seg(&c->b, "RF1");
    put_ce(c, 1, status->hl7, status->text, "HL70283");
    put_priority(c);
    /* RF1-6: the referral this answers, by its Handover event id, as the
     * partners answer ours (outcomes/rri-i12-...). */
    put(c, 6, 1, ev->in_reply_to);
    if (has(ev->in_reply_to))
        put(c, 6, 2, "HANDOVER");
    /* RF1-7, effective date: the planned first visit or assessment. */
    put_date(c, 7, 1, oc->planned_for, "outcome.planned_for");
    put_ts(c, 9, 1, ev->occurred_at, "occurred_at");
    put_source_ref(c, 11);

    /* RP: the referrer, which is who this copy goes to. */
    const char *dest = c->o != NULL ? c->o->destination : NULL;
    if (has(dest))
        seg_prd(c, "RP", "Referring provider", NULL, dest, NULL, NULL);
    /* RT: the organisation that answers; always written, as RRI_I12 needs
     * a PRD. The professional who decided follows as CP, as in the
     * partner's RRI. */
    seg_prd(c, "RT", "Referred to provider", org_name(s ? s->org : NULL),
            org_code(s ? s->org : NULL), NULL, NULL);
    if (a != NULL && (has(a->name) || has(a->id) || has(a->phone)))
        seg_prd(c, "CP", "Consulting provider", a->name,
                org_code(s ? s->org : NULL), a->phone, a->id);

    seg_pid(c);

    /* The reason as a remark: "code: text", or whichever is present. */
    if (has(oc->reason_code) || has(oc->reason_text)) {
        hl7b_seg(&c->b, "NTE");
        put_uint(c, 1, 1, ++c->nte_seq);
        put(c, 2, 1, "L");
        hl7b_at(&c->b, 3, 0, 1, 1);
        text(c, oc->reason_code);
        if (has(oc->reason_code) && has(oc->reason_text))
            text(c, ": ");
        text(c, oc->reason_text);
        put_ce(c, 4, "RE", "Remark", "HL70364");
    }
    seg_notes(c, "L");
}

/* One ORC of an ORM^O01 status change. */
static void
seg_orc_sc(mctx *c, const char *order_status)
{
    const Handover__Event *ev = c->ev;
    const Handover__Outcome *oc = ev->outcome;
    const Handover__Source *s = ev->source;

    hl7b_seg(&c->b, "ORC");
    put(c, 1, 1, "SC");
    /* ORC-2 and ORC-4 should be the placer's order and group numbers, but
     * an outcome carries only in_reply_to, the Handover event id of the
     * order (the CES answers by it, domain 7.2). So both carry that id in
     * the HANDOVER namespace: the id the nursing system's order became, on
     * which its own ACKs and our RF1-6 convention already agree. */
    if (has(ev->in_reply_to)) {
        put(c, 2, 1, ev->in_reply_to);
        put(c, 2, 2, "HANDOVER");
        put(c, 4, 1, ev->in_reply_to);
        put(c, 4, 2, "HANDOVER");
    }
    put(c, 5, 1, order_status);
    put_ts(c, 9, 1, ev->occurred_at, "occurred_at");
    /* ORC-15, order effective date: the new delivery or visit date. */
    put_date(c, 15, 1, oc->planned_for, "outcome.planned_for");
    /* ORC-16: the reason for the status (domain 5.5). */
    if (has(oc->reason_code) || has(oc->reason_text)) {
        put(c, 16, 1, oc->reason_code);
        put(c, 16, 2, oc->reason_text);
        put(c, 16, 3, "HANDOVER");
    }
    if (s != NULL && s->org != NULL) {
        put(c, 17, 1, s->org->code);
        put(c, 17, 2, s->org->name);
    }
    /* ORC-19, action by: who changed the status. */
    put_xcn(c, 19, s != NULL ? s->author : NULL);
}

/* ORM^O01 SC: MSH PID [PD1] [NTE] {ORC [RQD [OBX]]} (domain 5.5). One
 * ORC/RQD group per item line the outcome covers; an outcome of the whole
 * order (accepted, rejected, cancelled) is one ORC without RQD, which
 * ORM_O01 allows. */
static void
build_orm(mctx *c, const code_map *status)
{
    const Handover__Outcome *oc = c->ev->outcome;

    seg_msh(c, "ORM", "O01", "ORM_O01", false);
    seg_pid(c);
    seg_pd1(c);
    seg_notes(c, "L");

    unsigned line = 0;
    for (size_t i = 0; i < oc->n_items; i++) {
        const Handover__OutcomeItem *it = oc->items[i];
        if (it == NULL)
            continue;
        seg_orc_sc(c, status->hl7);
        hl7b_seg(&c->b, "RQD");
        put_uint(c, 1, 1, ++line);
        if (has(it->item_code)) {
            put(c, 2, 1, it->item_code);
            put(c, 2, 3, "CES-CAT");
        }
        if (it->quantity > 0) {
            put_uint(c, 5, 1, it->quantity);
            put_ce(c, 6, "EA", "each", NULL);
        }
        c->obx_seq = 0;
        seg_obx_text(c, "ST", "ASSET-ID", "Asset identifier", it->asset_id);
    }
    if (line == 0)
        seg_orc_sc(c, status->hl7);
}

/* --------------------------------------------------------------- entry */

void
map_out_control_id(const char *event_id, char out[21])
{
    size_t n = 0;
    for (const char *p = event_id; p != NULL && *p != '\0' && n < 20; p++) {
        char ch = *p;
        if (ch == '-')
            continue;
        if (ch >= 'A' && ch <= 'F')
            ch = (char)(ch - 'A' + 'a');
        out[n++] = ch;
    }
    out[n] = '\0';
}

static bool
in_list(const char *const *list, const char *code)
{
    if (!has(code))
        return false;
    for (; *list != NULL; list++)
        if (strcmp(*list, code) == 0)
            return true;
    return false;
}

/* Which message an outcome becomes, or -1 with why. */
static int
choose_outcome(const Handover__Event *ev, const map_out_opts *o,
               const code_map **status, bool *order, char *why, size_t whysz)
{
    const Handover__Outcome *oc = ev->outcome;
    const char *st = has(oc->status) ? oc->status : "";
    const char *answered = o != NULL ? o->answered_type : NULL;
    const char *const *orgs = o != NULL && o->equipment_orgs != NULL
                                  ? o->equipment_orgs
                                  : default_equipment_orgs;

    /* No HL7 message answers a discharge: the ACK of the trust's ADT is
     * transport, and RRI/ORM answer requests the trust made. Domain 2.1
     * keeps these undelivered until a format is agreed with the trust. */
    if (has(answered) ? strcmp(answered, "discharge") == 0
                      : strcmp(st, "acknowledged") == 0)
        return refuse(why, whysz,
                      "event %s: outcomes of discharges (status '%s') have "
                      "no HL7 message agreed with the trust",
                      ev->event_id, st);

    if (has(answered)) {
        if (strcmp(answered, "equipment_order") == 0)
            *order = true;
        else if (strcmp(answered, "referral") == 0)
            *order = false;
        else
            return refuse(why, whysz,
                          "event %s: outcomes of %s events have no HL7 "
                          "message for the nursing system",
                          ev->event_id, answered);
    } else {
        const Handover__Source *s = ev->source;
        *order = in_list(orgs, org_code(s != NULL ? s->org : NULL)) ||
                 strcmp(st, "delivered") == 0 ||
                 strcmp(st, "cannot_deliver") == 0 ||
                 strcmp(st, "collected") == 0 || oc->n_items > 0;
    }

    *status = *order ? lookup(order_statuses, NELEM(order_statuses), st)
                     : lookup(referral_statuses, NELEM(referral_statuses), st);
    if (*status == NULL)
        return refuse(why, whysz,
                      "event %s: outcome status '%.40s' has no %s value for "
                      "an outcome of %s",
                      ev->event_id, st, *order ? "ORC-5" : "RF1-1",
                      *order ? "an equipment order" : "a referral");
    return 0;
}

int
map_out(const Handover__Event *ev, const map_out_opts *o, uint8_t **out,
        size_t *len, char *why, size_t whysz)
{
    *out = NULL;
    *len = 0;
    if (why != NULL && whysz > 0)
        why[0] = '\0';
    if (ev == NULL)
        return refuse(why, whysz, "no event to map");
    if (!hov_uuid_valid(ev->event_id))
        return refuse(why, whysz,
                      "event_id is not a lowercase UUID, so there is no "
                      "message control id (MSH-10) to give it");

    const char *type = has(ev->event_type) ? ev->event_type : "";
    Handover__Event__BodyCase want = HANDOVER__EVENT__BODY__NOT_SET;
    const void *body = NULL;
    if (strcmp(type, "referral") == 0) {
        want = HANDOVER__EVENT__BODY_REFERRAL;
        body = ev->referral;
    } else if (strcmp(type, "discharge") == 0) {
        want = HANDOVER__EVENT__BODY_DISCHARGE;
        body = ev->discharge;
    } else if (strcmp(type, "outcome") == 0) {
        want = HANDOVER__EVENT__BODY_OUTCOME;
        body = ev->outcome;
    } else if (strcmp(type, "equipment_order") == 0) {
        /* Orders go to the equipment service through `social`; the
         * nursing system places them and takes only their outcomes. */
        return refuse(why, whysz,
                      "event %s: equipment_order events are not sent to the "
                      "nursing system (no HL7 message agreed)",
                      ev->event_id);
    } else {
        return refuse(why, whysz,
                      "event %s: event type '%.40s' has no HL7 message for "
                      "the nursing system",
                      ev->event_id, type);
    }
    /* The body is a oneof, so a body of another type shares the pointer:
     * the case must match before the pointer means anything. */
    if (ev->body_case != want || body == NULL)
        return refuse(why, whysz, "event %s: %s event has no %s body",
                      ev->event_id, type, type);

    const code_map *status = NULL;
    bool order = false;
    if (want == HANDOVER__EVENT__BODY_OUTCOME &&
        choose_outcome(ev, o, &status, &order, why, whysz) != 0)
        return -1;

    mctx c = {.ev = ev, .o = o, .why = why, .whysz = whysz};
    hl7_ts_format(o != NULL && o->now_ms != 0 ? o->now_ms : hov_now_ms(),
                  c.now_ts);
    hl7b_init(&c.b, NULL);
    switch (want) {
    case HANDOVER__EVENT__BODY_REFERRAL:
        build_ref(&c);
        break;
    case HANDOVER__EVENT__BODY_DISCHARGE:
        build_adt(&c);
        break;
    default:
        if (order)
            build_orm(&c, status);
        else
            build_rri(&c, status);
        break;
    }
    if (c.failed) {
        hl7b_free(&c.b);
        return -1;
    }
    if (hl7b_finish(&c.b, out, len) != 0) {
        hl7b_free(&c.b);
        *out = NULL;
        *len = 0;
        return -2;
    }
    return 0;
}
