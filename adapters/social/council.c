/* Council files: see council.h. */
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "council.h"
#include "handover/ident.h"
#include "handover/str.h"
#include "handover/timeutil.h"

const char *const council_csv_header[COUNCIL_CSV_COLUMNS] = {
    "record_id",         "in_reply_to", "nhs_number",  "outcome",
    "reason_code",       "reason_text", "occurred_at", "performed_by",
    "performed_by_role", "source_org",  "item_code",   "quantity",
    "asset_id",          "planned_for",
};

enum {
    COL_RECORD_ID,
    COL_IN_REPLY_TO,
    COL_NHS,
    COL_OUTCOME,
    COL_REASON_CODE,
    COL_REASON_TEXT,
    COL_OCCURRED_AT,
    COL_PERFORMED_BY,
    COL_PERFORMED_ROLE,
    COL_SOURCE_ORG,
    COL_ITEM_CODE,
    COL_QUANTITY,
    COL_ASSET_ID,
    COL_PLANNED_FOR,
};

/* ---- names ------------------------------------------------------------ */

static bool
all_digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

bool
council_name_check(const char *name, const char *const *senders,
                   council_kind *kind, char sender[40], char *why, size_t whysz)
{
    const char *p = name;
    const char *ext_want;
    if (strncmp(p, "outcomes_", 9) == 0) {
        *kind = COUNCIL_KIND_OUTCOMES;
        ext_want = ".csv";
        p += 9;
    } else if (strncmp(p, "referral_", 9) == 0) {
        *kind = COUNCIL_KIND_EVENT;
        ext_want = ".json";
        p += 9;
    } else {
        snprintf(why, whysz,
                 "file name: the kind (before the first '_') is not "
                 "'outcomes' or 'referral'");
        return false;
    }
    const char *us = strchr(p, '_');
    if (us == NULL || us == p || (size_t)(us - p) >= 40) {
        snprintf(why, whysz, "file name: no sender code after the kind");
        return false;
    }
    memcpy(sender, p, (size_t)(us - p));
    sender[us - p] = '\0';
    bool known = false;
    for (size_t i = 0; senders != NULL && senders[i] != NULL; i++)
        if (strcmp(senders[i], sender) == 0)
            known = true;
    if (!known) {
        char e[48];
        hov_echo(e, sizeof e, sender, 20);
        snprintf(why, whysz,
                 "file name: sender code '%s' is not one the social agency "
                 "may publish as",
                 e);
        return false;
    }
    p = us + 1;
    /* yyyymmddThhmmssZ */
    if (strlen(p) < 17 || !all_digits(p, 8) || p[8] != 'T' ||
        !all_digits(p + 9, 6) || p[15] != 'Z' || p[16] != '_') {
        snprintf(why, whysz, "file name: the time is not UTC yyyymmddThhmmssZ");
        return false;
    }
    char date[11] = {p[0], p[1], p[2], p[3], '-', p[4], p[5], '-', p[6], p[7]};
    int hh = (p[9] - '0') * 10 + (p[10] - '0');
    int mi = (p[11] - '0') * 10 + (p[12] - '0');
    int ss = (p[13] - '0') * 10 + (p[14] - '0');
    if (!hov_date_valid(date) || hh > 23 || mi > 59 || ss > 59) {
        snprintf(why, whysz, "file name: the time is not a real UTC time");
        return false;
    }
    p += 17;
    if (strlen(p) < 6 || !all_digits(p, 6)) {
        snprintf(why, whysz, "file name: the sequence is not 6 digits");
        return false;
    }
    p += 6;
    if (strcmp(p, ext_want) != 0) {
        snprintf(why, whysz,
                 "file name: the extension must be '%s' for this kind",
                 ext_want);
        return false;
    }
    return true;
}

/* ---- UTF-8 ------------------------------------------------------------ */

bool
council_utf8_valid(const char *data, size_t len)
{
    const unsigned char *s = (const unsigned char *)data;
    size_t i = 0;
    while (i < len) {
        unsigned c = s[i];
        size_t n;
        unsigned min;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            n = 1, min = 0x80, c &= 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            n = 2, min = 0x800, c &= 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            n = 3, min = 0x10000, c &= 0x07;
        } else {
            return false;
        }
        for (size_t k = 1; k <= n; k++) {
            if (i + k >= len || (s[i + k] & 0xC0) != 0x80)
                return false;
            c = (c << 6) | (s[i + k] & 0x3F);
        }
        if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
            return false;
        i += n + 1;
    }
    return true;
}

/* ---- CSV -------------------------------------------------------------- */

void
council_csv_init(council_csv *c, const char *data, size_t len)
{
    memset(c, 0, sizeof *c);
    c->p = data;
    c->end = data + len;
    c->line = 1;
}

void
council_csv_fini(council_csv *c)
{
    free(c->fields);
    free(c->buf);
    memset(c, 0, sizeof *c);
}

/* Skip to just past the next line end (a bad record is abandoned there). */
static void
csv_skip_line(council_csv *c)
{
    while (c->p < c->end && *c->p != '\n')
        c->p++;
    if (c->p < c->end) {
        c->p++;
        c->line++;
    }
}

int
council_csv_next(council_csv *c, size_t *line, char *why, size_t whysz)
{
    /* Empty lines are skipped but still counted (7.2). */
    for (;;) {
        if (c->p >= c->end)
            return 0;
        if (*c->p == '\n') {
            c->p++;
            c->line++;
        } else if (*c->p == '\r' && c->p + 1 < c->end && c->p[1] == '\n') {
            c->p += 2;
            c->line++;
        } else {
            break;
        }
    }
    *line = c->line;
    /* A record is never longer than what is left of the input. */
    size_t need = (size_t)(c->end - c->p) + 1;
    if (need > c->buf_cap) {
        char *nb = realloc(c->buf, need);
        if (nb == NULL) {
            snprintf(why, whysz, "out of memory");
            return -1;
        }
        c->buf = nb;
        c->buf_cap = need;
    }
    char *w = c->buf;
    c->n = 0;
    bool bad = false;
    for (;;) {
        if (c->n == c->cap) {
            size_t nc = c->cap ? c->cap * 2 : 16;
            char **nf = realloc(c->fields, nc * sizeof *nf);
            if (nf == NULL) {
                snprintf(why, whysz, "out of memory");
                return -1;
            }
            c->fields = nf;
            c->cap = nc;
        }
        c->fields[c->n++] = w;
        if (c->p < c->end && *c->p == '"') {
            c->p++;
            for (;;) {
                if (c->p >= c->end) {
                    snprintf(why, whysz,
                             "field %zu: a quoted field is not closed before "
                             "the end of the file",
                             c->n);
                    *w = '\0';
                    return -1;
                }
                char ch = *c->p++;
                if (ch == '"') {
                    if (c->p < c->end && *c->p == '"') {
                        *w++ = '"';
                        c->p++;
                        continue;
                    }
                    break;
                }
                if (ch == '\n')
                    c->line++;
                if (ch == '\0')
                    bad = true;
                *w++ = ch;
            }
            *w++ = '\0';
            if (c->p < c->end && *c->p != ',' && *c->p != '\n' &&
                !(*c->p == '\r' && c->p + 1 < c->end && c->p[1] == '\n')) {
                snprintf(why, whysz,
                         "field %zu: text after the closing quote (a quote "
                         "inside a field must be doubled)",
                         c->n);
                csv_skip_line(c);
                return -1;
            }
        } else {
            while (c->p < c->end && *c->p != ',' && *c->p != '\n' &&
                   !(*c->p == '\r' && c->p + 1 < c->end && c->p[1] == '\n')) {
                if (*c->p == '"') {
                    snprintf(why, whysz,
                             "field %zu: a quote in an unquoted field (quote "
                             "the whole field and double the quote)",
                             c->n);
                    csv_skip_line(c);
                    return -1;
                }
                if (*c->p == '\0')
                    bad = true;
                *w++ = *c->p++;
            }
            *w++ = '\0';
        }
        if (c->p < c->end && *c->p == ',') {
            c->p++;
            continue;
        }
        if (c->p < c->end) {
            c->p += *c->p == '\r' ? 2 : 1;
            c->line++;
        }
        break;
    }
    if (bad) {
        snprintf(why, whysz, "the record contains a NUL byte");
        return -1;
    }
    return 1;
}

/* ---- events from JSON ------------------------------------------------- */

void
council_event_free(Handover__Event *ev)
{
    if (ev != NULL)
        protobuf_c_message_free_unpacked(&ev->base, NULL);
}

void
council_file_free(council_file *f)
{
    for (size_t i = 0; i < f->n_records; i++)
        council_event_free(f->records[i].event);
    free(f->records);
    free(f->problems);
    memset(f, 0, sizeof *f);
}

static hov_err add_problem(council_file *f, size_t line, hov_error *err,
                           const char *fmt, ...) HOV_PRINTF(4, 5);

static hov_err
add_problem(council_file *f, size_t line, hov_error *err, const char *fmt, ...)
{
    council_problem *np =
        realloc(f->problems, (f->n_problems + 1) * sizeof *np);
    if (np == NULL)
        return hov_fail(err, HOV_ENOMEM, 0, "council file report");
    f->problems = np;
    council_problem *p = &np[f->n_problems++];
    p->line = line;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->text, sizeof p->text, fmt, ap);
    va_end(ap);
    for (char *q = p->text; *q; q++)
        if (*q == '\r' || *q == '\n')
            *q = ' ';
    return HOV_OK;
}

static bool
is_time_field(const char *name)
{
    static const char *const names[] = {"occurred_at", "recorded_at",
                                        "received_at", "admitted_at",
                                        "discharged_at"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(name, names[i]) == 0)
            return true;
    return false;
}

/* An RFC 3339 time with Z or an offset, as UTC "...Z" (7.2, 7.3). */
static bool
time_to_utc(const char *s, char out[32])
{
    if (hov_rfc3339_utc_valid(s)) {
        hov_strlcpy(out, 32, s);
        return true;
    }
    uint64_t ms;
    if (!hov_rfc3339_valid(s) || !hov_rfc3339_to_ms(s, &ms))
        return false;
    hov_rfc3339_format(ms, out);
    char *dot = strstr(out, ".000Z");
    if (dot != NULL)
        memcpy(dot, "Z", 2);
    return true;
}

typedef struct walk {
    char why[400];
    bool strict;
    int depth;
} walk;

static ProtobufCMessage *json_to_msg(json_t *obj,
                                     const ProtobufCMessageDescriptor *d,
                                     const char *path, walk *w);

/* One scalar or message value into the storage at slot. */
static bool
json_to_value(json_t *v, const ProtobufCFieldDescriptor *f, void *slot,
              const char *path, walk *w)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_STRING: {
        if (!json_is_string(v)) {
            snprintf(w->why, sizeof w->why, "%s: must be a string", path);
            return false;
        }
        const char *s = json_string_value(v);
        char t[32];
        if (is_time_field(f->name)) {
            if (!time_to_utc(s, t)) {
                snprintf(w->why, sizeof w->why,
                         "%s: not an RFC 3339 time with Z or an offset "
                         "(yyyy-mm-ddThh:mm:ssZ)",
                         path);
                return false;
            }
            s = t;
        }
        char *dup = strdup(s);
        if (dup == NULL) {
            snprintf(w->why, sizeof w->why, "out of memory");
            return false;
        }
        *(char **)slot = dup;
        return true;
    }
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_UINT32: {
        json_int_t n = json_integer_value(v);
        bool u = f->type == PROTOBUF_C_TYPE_UINT32;
        if (!json_is_integer(v) || n < (u ? 0 : INT32_MIN) ||
            n > (u ? (json_int_t)UINT32_MAX : INT32_MAX)) {
            snprintf(w->why, sizeof w->why, "%s: must be an integer%s", path,
                     u ? " from 0" : "");
            return false;
        }
        if (u)
            *(uint32_t *)slot = (uint32_t)n;
        else
            *(int32_t *)slot = (int32_t)n;
        return true;
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        if (!json_is_object(v)) {
            snprintf(w->why, sizeof w->why, "%s: must be an object", path);
            return false;
        }
        ProtobufCMessage *m = json_to_msg(v, f->descriptor, path, w);
        if (m == NULL)
            return false;
        *(ProtobufCMessage **)slot = m;
        return true;
    }
    default:
        snprintf(w->why, sizeof w->why, "%s: unsupported field type", path);
        return false;
    }
}

static size_t
type_size(const ProtobufCFieldDescriptor *f)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_UINT32:
        return 4;
    default:
        return sizeof(void *);
    }
}

static ProtobufCMessage *
json_to_msg(json_t *obj, const ProtobufCMessageDescriptor *d, const char *path,
            walk *w)
{
    if (++w->depth > 8) {
        snprintf(w->why, sizeof w->why, "%s: nested too deeply", path);
        return NULL;
    }
    ProtobufCMessage *m = calloc(1, d->sizeof_message);
    if (m == NULL) {
        snprintf(w->why, sizeof w->why, "out of memory");
        return NULL;
    }
    d->message_init(m);
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v)
    {
        char sub[200];
        snprintf(sub, sizeof sub, "%s%s%s", path, path[0] ? "." : "", key);
        bool top = w->depth == 1, in_source = strcmp(path, "source") == 0;
        if (w->strict && top && strcmp(key, "event_id") == 0) {
            snprintf(w->why, sizeof w->why,
                     "event_id is set by Handover (3.8): leave it out");
            goto fail;
        }
        /* Set by the hub, never trusted from a payload (3.1). */
        if (w->strict && ((top && strcmp(key, "received_at") == 0) ||
                          (in_source && strcmp(key, "agency") == 0)))
            continue;
        if (json_is_null(v))
            continue;
        const ProtobufCFieldDescriptor *f =
            protobuf_c_message_descriptor_get_field_by_name(d, key);
        if (f == NULL || (top && strcmp(key, "age_years") == 0)) {
            char e[48];
            hov_echo(e, sizeof e, key, 32);
            snprintf(w->why, sizeof w->why, "%s: unknown field '%s'",
                     path[0] ? path : "event", e);
            goto fail;
        }
        char *base = (char *)m;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            if (!json_is_array(v)) {
                snprintf(w->why, sizeof w->why, "%s: must be an array", sub);
                goto fail;
            }
            size_t n = json_array_size(v);
            if (n > 1000) {
                snprintf(w->why, sizeof w->why, "%s: more than 1000 entries",
                         sub);
                goto fail;
            }
            void *arr = calloc(n ? n : 1, type_size(f));
            if (arr == NULL) {
                snprintf(w->why, sizeof w->why, "out of memory");
                goto fail;
            }
            *(void **)(base + f->offset) = arr;
            size_t *count = (size_t *)(base + f->quantifier_offset);
            for (size_t i = 0; i < n; i++) {
                char el[220];
                snprintf(el, sizeof el, "%s[%zu]", sub, i);
                if (!json_to_value(json_array_get(v, i), f,
                                   (char *)arr + i * type_size(f), el, w))
                    goto fail;
                (*count)++;
            }
            continue;
        }
        if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
            uint32_t *cs = (uint32_t *)(base + f->quantifier_offset);
            if (*cs != 0) {
                snprintf(w->why, sizeof w->why,
                         "%s: only one of the alternatives may be given", sub);
                goto fail;
            }
            if (!json_to_value(v, f, base + f->offset, sub, w))
                goto fail;
            *cs = f->id;
            continue;
        }
        /* proto3 strings start as the shared empty string, which must not
         * be freed; replace it only with a value we own. */
        if (!json_to_value(v, f, base + f->offset, sub, w))
            goto fail;
    }
    w->depth--;
    return m;
fail:
    protobuf_c_message_free_unpacked(m, NULL);
    return NULL;
}

/* "line 47, column 12: ..." for a document jansson could not read. */
static hov_err
json_problem(council_file *f, const json_error_t *je, hov_error *err)
{
    f->rejected = true;
    return add_problem(f, 0, err, "line %d, column %d: %s", je->line,
                       je->column, je->text);
}

/* Replace a string field; proto3 fields start as the shared empty string,
 * which is not ours to free. Leaves NULL when out of memory. */
static void
set_str(char **field, const char *v)
{
    if (*field != NULL && *field != protobuf_c_empty_string)
        free(*field);
    *field = strdup(v);
}

static hov_err
finish_event(council_file *f, size_t line, Handover__Event *ev,
             const char *sender, bool strict, hov_error *err)
{
    const char *org =
        ev->source && ev->source->org ? ev->source->org->code : "";
    if (strict && strcmp(org, sender) != 0) {
        char e[48];
        hov_echo(e, sizeof e, org, 20);
        council_event_free(ev); /* org points into it */
        return add_problem(f, line, err,
                           "source.org.code: '%s' is not the sender in the "
                           "file name (%s)",
                           e, sender);
    }
    if (strict) {
        const char *ref = ev->source ? ev->source->ref : NULL;
        if (ref == NULL || ref[0] == '\0') {
            council_event_free(ev);
            return add_problem(f, line, err,
                               "source.ref is missing: the partner's own "
                               "identifier gives the event id (3.8)");
        }
        char name[160];
        int n = snprintf(name, sizeof name, "file|%s|%s", org, ref);
        char id[37];
        if (n < 0 || (size_t)n >= sizeof name ||
            hov_uuid_v5(HOV_EVENT_ID_NS, name, (size_t)n, id, err) != HOV_OK) {
            council_event_free(ev);
            return add_problem(f, line, err,
                               "source.ref: too long to derive an event id");
        }
        set_str(&ev->event_id, id);
        bool request = strcmp(ev->event_type, "outcome") != 0;
        /* A new request begins its journey; an outcome's journey is the
         * answered event's, which the hub fills in. */
        if (ev->event_id != NULL && request &&
            (ev->correlation_id == NULL || ev->correlation_id[0] == '\0')) {
            set_str(&ev->correlation_id, id);
        }
        if (ev->event_id == NULL || ev->correlation_id == NULL) {
            council_event_free(ev);
            return hov_fail(err, HOV_ENOMEM, 0, "council event");
        }
    }
    council_record *nr = realloc(f->records, (f->n_records + 1) * sizeof *nr);
    if (nr == NULL) {
        council_event_free(ev);
        return hov_fail(err, HOV_ENOMEM, 0, "council records");
    }
    f->records = nr;
    council_record *r = &nr[f->n_records++];
    r->line = line;
    r->event = ev;
    hov_strlcpy(r->event_id, sizeof r->event_id, ev->event_id);
    return HOV_OK;
}

/* Map one parsed JSON object; a bad one becomes a problem at line. */
static hov_err
event_from_json(council_file *f, size_t line, json_t *j, const char *sender,
                bool strict, hov_error *err)
{
    walk w = {.strict = strict};
    ProtobufCMessage *m = json_to_msg(j, &handover__event__descriptor, "", &w);
    if (m == NULL) {
        if (strcmp(w.why, "out of memory") == 0)
            return hov_fail(err, HOV_ENOMEM, 0, "council event");
        return add_problem(f, line, err, "%s", w.why);
    }
    return finish_event(f, line, (Handover__Event *)m, sender, strict, err);
}

static size_t
skip_bom(const char *data, size_t len)
{
    return len >= 3 && memcmp(data, "\xEF\xBB\xBF", 3) == 0 ? 3 : 0;
}

hov_err
council_json_in(const char *data, size_t len, const char *sender, bool strict,
                council_file *out, hov_error *err)
{
    memset(out, 0, sizeof *out);
    size_t off = skip_bom(data, len);
    json_error_t je;
    json_t *j = json_loadb(data + off, len - off, JSON_REJECT_DUPLICATES, &je);
    if (j == NULL)
        return json_problem(out, &je, err);
    hov_err rc;
    if (!json_is_object(j)) {
        out->rejected = true;
        rc = add_problem(out, 0, err, "the file is not one JSON object");
    } else {
        rc = event_from_json(out, 0, j, sender, strict, err);
    }
    json_decref(j);
    return rc;
}

/* ---- outcomes --------------------------------------------------------- */

static const struct {
    const char *name;
    bool needs_reason, needs_item, needs_asset;
} statuses[] = {
    {"acknowledged", false, false, false}, {"accepted", false, false, false},
    {"rejected", true, false, false},      {"completed", false, false, false},
    {"cancelled", true, false, false},     {"delivered", false, true, false},
    {"cannot_deliver", true, true, false}, {"collected", false, true, true},
};

static bool
record_id_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
              (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

static json_t *
jstr(const char *s)
{
    return json_string(s);
}

/* Check one data row; on success *j is the event as canonical JSON (so it
 * takes the same road as a JSON file), else why says what is wrong. */
static bool
row_to_json(char **c, size_t n, const char *sender, json_t **j, char *why,
            size_t whysz)
{
    *j = NULL;
    if (n != COUNCIL_CSV_COLUMNS) {
        snprintf(why, whysz, "has %zu fields, not %d", n, COUNCIL_CSV_COLUMNS);
        return false;
    }
    if (!record_id_ok(c[COL_RECORD_ID])) {
        snprintf(why, whysz, "record_id: must be 1 to 64 of A-Z a-z 0-9 . _ -");
        return false;
    }
    if (!hov_uuid_valid(c[COL_IN_REPLY_TO])) {
        char e[48];
        hov_echo(e, sizeof e, c[COL_IN_REPLY_TO], 40);
        snprintf(why, whysz,
                 "in_reply_to: '%s' is not an event id (a lowercase UUID)", e);
        return false;
    }
    /* Partners write NHS numbers with spaces or hyphens (3.3). */
    char nhs[16];
    size_t k = 0;
    for (const char *p = c[COL_NHS]; *p && k < sizeof nhs - 1; p++)
        if (*p != ' ' && *p != '-')
            nhs[k++] = *p;
    nhs[k] = '\0';
    hov_error ne = {0};
    if (hov_nhs_number_check(nhs, true, &ne) != HOV_OK) {
        const char *m = ne.msg;
        if (strncmp(m, "NHS number ", 11) == 0)
            m += 11;
        snprintf(why, whysz, "nhs_number: %s", m);
        return false;
    }
    size_t si = 0;
    while (si < sizeof statuses / sizeof statuses[0] &&
           strcmp(statuses[si].name, c[COL_OUTCOME]) != 0)
        si++;
    if (si == sizeof statuses / sizeof statuses[0]) {
        char e[48];
        hov_echo(e, sizeof e, c[COL_OUTCOME], 30);
        snprintf(why, whysz,
                 "outcome: '%s' is not one of acknowledged, accepted, "
                 "rejected, completed, cancelled, delivered, cannot_deliver, "
                 "collected",
                 e);
        return false;
    }
    if (statuses[si].needs_reason && c[COL_REASON_CODE][0] == '\0') {
        snprintf(why, whysz, "reason_code: missing; a %s outcome needs one",
                 statuses[si].name);
        return false;
    }
    if (hov_utf8_chars(c[COL_REASON_TEXT]) > 500) {
        snprintf(why, whysz, "reason_text: longer than 500 characters");
        return false;
    }
    char when[32];
    if (!time_to_utc(c[COL_OCCURRED_AT], when)) {
        char e[48];
        hov_echo(e, sizeof e, c[COL_OCCURRED_AT], 30);
        snprintf(why, whysz,
                 "occurred_at: '%s' is not an RFC 3339 time with Z or an "
                 "offset (yyyy-mm-ddThh:mm:ssZ)",
                 e);
        return false;
    }
    if (hov_utf8_chars(c[COL_PERFORMED_BY]) > 100 ||
        hov_utf8_chars(c[COL_PERFORMED_ROLE]) > 70) {
        snprintf(why, whysz,
                 "performed_by: longer than 100 characters, or its role "
                 "longer than 70");
        return false;
    }
    if (strcmp(c[COL_SOURCE_ORG], sender) != 0) {
        char e[48];
        hov_echo(e, sizeof e, c[COL_SOURCE_ORG], 20);
        snprintf(why, whysz,
                 "source_org: '%s' is not the sender in the file name (%s)", e,
                 sender);
        return false;
    }
    if (statuses[si].needs_item && c[COL_ITEM_CODE][0] == '\0') {
        snprintf(why, whysz, "item_code: missing; a %s outcome names its item",
                 statuses[si].name);
        return false;
    }
    if (statuses[si].needs_asset && c[COL_ASSET_ID][0] == '\0') {
        snprintf(why, whysz,
                 "asset_id: missing; a collected outcome names the asset");
        return false;
    }
    long qty = 1;
    if (c[COL_QUANTITY][0] != '\0') {
        const char *q = c[COL_QUANTITY];
        size_t ql = strlen(q);
        qty = ql >= 1 && ql <= 2 && all_digits(q, ql) ? strtol(q, NULL, 10) : 0;
        if (qty < 1 || qty > 99) {
            snprintf(why, whysz,
                     "quantity: must be a whole number from 1 to "
                     "99");
            return false;
        }
    }
    if (c[COL_PLANNED_FOR][0] != '\0' && !hov_date_valid(c[COL_PLANNED_FOR])) {
        snprintf(why, whysz, "planned_for: not a date yyyy-mm-dd");
        return false;
    }
    json_t *o = json_object();
    json_t *src = json_object(), *org = json_object(), *pat = json_object(),
           *out = json_object();
    if (o == NULL || src == NULL || org == NULL || pat == NULL || out == NULL) {
        json_decref(o);
        json_decref(src);
        json_decref(org);
        json_decref(pat);
        json_decref(out);
        snprintf(why, whysz, "out of memory");
        return false;
    }
    json_object_set_new(o, "schema", jstr("handover.event.v1"));
    json_object_set_new(o, "event_type", jstr("outcome"));
    json_object_set_new(o, "in_reply_to", jstr(c[COL_IN_REPLY_TO]));
    json_object_set_new(o, "occurred_at", jstr(when));
    json_object_set_new(org, "code", jstr(c[COL_SOURCE_ORG]));
    json_object_set_new(src, "org", org);
    json_object_set_new(src, "ref", jstr(c[COL_RECORD_ID]));
    if (c[COL_PERFORMED_BY][0] || c[COL_PERFORMED_ROLE][0]) {
        json_t *a = json_object();
        if (a != NULL) {
            if (c[COL_PERFORMED_BY][0])
                json_object_set_new(a, "name", jstr(c[COL_PERFORMED_BY]));
            if (c[COL_PERFORMED_ROLE][0])
                json_object_set_new(a, "role", jstr(c[COL_PERFORMED_ROLE]));
            json_object_set_new(src, "author", a);
        }
    }
    json_object_set_new(o, "source", src);
    json_object_set_new(pat, "nhs_number", jstr(nhs));
    json_object_set_new(o, "patient", pat);
    json_object_set_new(out, "status", jstr(c[COL_OUTCOME]));
    if (c[COL_REASON_CODE][0])
        json_object_set_new(out, "reason_code", jstr(c[COL_REASON_CODE]));
    if (c[COL_REASON_TEXT][0])
        json_object_set_new(out, "reason_text", jstr(c[COL_REASON_TEXT]));
    if (c[COL_PLANNED_FOR][0])
        json_object_set_new(out, "planned_for", jstr(c[COL_PLANNED_FOR]));
    if (c[COL_ITEM_CODE][0]) {
        json_t *it = json_object(), *arr = json_array();
        if (it != NULL && arr != NULL) {
            json_object_set_new(it, "item_code", jstr(c[COL_ITEM_CODE]));
            json_object_set_new(it, "quantity", json_integer(qty));
            if (c[COL_ASSET_ID][0])
                json_object_set_new(it, "asset_id", jstr(c[COL_ASSET_ID]));
            json_array_append_new(arr, it);
            json_object_set_new(out, "items", arr);
        } else {
            json_decref(it);
            json_decref(arr);
        }
    }
    json_object_set_new(o, "outcome", out);
    *j = o;
    return true;
}

hov_err
council_outcomes_parse(const char *data, size_t len, const char *sender,
                       size_t max_rows, council_file *out, hov_error *err)
{
    memset(out, 0, sizeof *out);
    size_t off = skip_bom(data, len);
    if (!council_utf8_valid(data + off, len - off)) {
        out->rejected = true;
        return add_problem(out, 0, err,
                           "the file is not UTF-8: nothing was published");
    }
    council_csv c;
    council_csv_init(&c, data + off, len - off);
    char why[300];
    size_t line = 0, rows = 0;
    int r = council_csv_next(&c, &line, why, sizeof why);
    hov_err rc = HOV_OK;
    if (r <= 0) {
        out->rejected = true;
        rc = add_problem(out, 0, err, "header row: %s",
                         r == 0 ? "missing (the file is empty)" : why);
        goto done;
    }
    for (size_t i = 0; i < COUNCIL_CSV_COLUMNS; i++) {
        const char *got = i < c.n ? c.fields[i] : NULL;
        if (got == NULL || strcmp(got, council_csv_header[i]) != 0) {
            char e[48];
            hov_echo(e, sizeof e, got ? got : "", 30);
            out->rejected = true;
            rc = add_problem(out, 1, err,
                             "header mismatch at column %zu: expected '%s', "
                             "found %s%s%s",
                             i + 1, council_csv_header[i], got ? "'" : "",
                             got ? e : "nothing", got ? "'" : "");
            goto done;
        }
    }
    if (c.n != COUNCIL_CSV_COLUMNS) {
        out->rejected = true;
        rc = add_problem(out, 1, err,
                         "header mismatch at column %d: expected the end of "
                         "the header, found more columns",
                         COUNCIL_CSV_COLUMNS + 1);
        goto done;
    }
    while ((r = council_csv_next(&c, &line, why, sizeof why)) != 0) {
        if (++rows > max_rows) {
            council_file_free(out);
            out->rejected = true;
            rc = add_problem(out, 0, err,
                             "more than %zu data rows: split the file; "
                             "nothing was published",
                             max_rows);
            goto done;
        }
        if (r < 0) {
            if (strcmp(why, "out of memory") == 0) {
                rc = hov_fail(err, HOV_ENOMEM, 0, "council CSV");
                goto done;
            }
            rc = add_problem(out, line, err, "%s", why);
        } else {
            json_t *j;
            if (!row_to_json(c.fields, c.n, sender, &j, why, sizeof why))
                rc = strcmp(why, "out of memory") == 0
                         ? hov_fail(err, HOV_ENOMEM, 0, "council CSV")
                         : add_problem(out, line, err, "%s", why);
            else
                rc = event_from_json(out, line, j, sender, true, err);
            json_decref(j);
        }
        if (rc != HOV_OK)
            goto done;
    }
done:
    council_csv_fini(&c);
    return rc;
}

/* ---- events to JSON --------------------------------------------------- */

static json_t *msg_to_json(const ProtobufCMessage *m);

static json_t *
value_to_json(const ProtobufCFieldDescriptor *f, const void *slot)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *)slot;
        return s != NULL && s[0] != '\0' ? json_string(s) : NULL;
    }
    case PROTOBUF_C_TYPE_INT32:
        return json_integer(*(const int32_t *)slot);
    case PROTOBUF_C_TYPE_UINT32:
        return json_integer(*(const uint32_t *)slot);
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessage *sub = *(ProtobufCMessage *const *)slot;
        return sub != NULL ? msg_to_json(sub) : NULL;
    }
    default:
        return NULL;
    }
}

static json_t *
msg_to_json(const ProtobufCMessage *m)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    json_t *o = json_object();
    if (o == NULL)
        return NULL;
    const char *base = (const char *)m;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        json_t *v = NULL;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *)(base + f->quantifier_offset);
            const char *arr = *(char *const *)(base + f->offset);
            if (n == 0)
                continue;
            v = json_array();
            for (size_t k = 0; v != NULL && k < n; k++) {
                json_t *e = value_to_json(f, arr + k * type_size(f));
                if (e == NULL)
                    e = f->type == PROTOBUF_C_TYPE_MESSAGE ? json_object()
                                                           : json_string("");
                json_array_append_new(v, e);
            }
        } else if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
            if (*(const uint32_t *)(base + f->quantifier_offset) != f->id)
                continue;
            v = value_to_json(f, base + f->offset);
        } else if (f->type == PROTOBUF_C_TYPE_INT32 ||
                   f->type == PROTOBUF_C_TYPE_UINT32) {
            /* proto3 has no presence for plain numbers: 0 is "not set"
             * (line numbers and quantities start at 1). */
            if (*(const uint32_t *)(base + f->offset) == 0)
                continue;
            v = value_to_json(f, base + f->offset);
        } else {
            v = value_to_json(f, base + f->offset);
        }
        if (v == NULL)
            continue;
        if (json_is_object(v) && json_object_size(v) == 0) {
            json_decref(v);
            continue;
        }
        json_object_set_new(o, f->name, v);
    }
    return o;
}

char *
council_json_out(const Handover__Event *ev)
{
    json_t *j = msg_to_json(&ev->base);
    if (j == NULL)
        return NULL;
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(j);
    if (s == NULL)
        return NULL;
    size_t n = strlen(s);
    char *withnl = realloc(s, n + 2);
    if (withnl == NULL) {
        free(s);
        return NULL;
    }
    withnl[n] = '\n';
    withnl[n + 1] = '\0';
    return withnl;
}

bool
council_out_name(const Handover__Event *ev, char *out, size_t outsz)
{
    static const char *const types[][2] = {
        {"referral", "referral"},
        {"discharge", "discharge"},
        {"equipment_order", "equipment-order"},
        {"outcome", "outcome"},
    };
    if (ev->event_id == NULL || !hov_uuid_valid(ev->event_id))
        return false;
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (ev->event_type != NULL &&
            strcmp(ev->event_type, types[i][0]) == 0) {
            int n =
                snprintf(out, outsz, "%s_%s.json", types[i][1], ev->event_id);
            return n > 0 && (size_t)n < outsz;
        }
    return false;
}
