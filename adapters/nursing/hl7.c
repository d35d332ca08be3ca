/* HL7 v2 messages: parse, read fields, decode text, convert times, build
 * messages and ACKs. The contract is in hl7.h; the conventions it follows
 * are the domain brief's sections 5.1 to 5.6.
 *
 * A parsed message is one buffer (the bytes with terminators normalised to
 * CR) plus two index arrays: one entry per segment, and the start offset of
 * every field-separator piece of every segment. hl7_get finds a field in
 * constant time and splits repetitions, components and subcomponents by
 * scanning that field only. Escape sequences are never interpreted while
 * splitting: a delimiter is always a delimiter, as the standard requires,
 * and hl7_decode turns a slice into text afterwards.
 */
#include "hl7.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handover/timeutil.h"

#define CR '\r'
#define LF '\n'

static const hl7_delims default_delims = HL7_DELIMS_DEFAULT;

/* Absent parts point here, so a caller may always read p[0..n). */
static const char empty_text[1] = "";

#define DEFAULT_CHARSET "UNICODE UTF-8"

/* ------------------------------------------------------------ table 0357 */

static const struct {
    int code;
    const char *name;
} table_0357[] = {
    {0, "Message accepted"},
    {100, "Segment sequence error"},
    {101, "Required field missing"},
    {102, "Data type error"},
    {103, "Table value not found"},
    {200, "Unsupported message type"},
    {201, "Unsupported event code"},
    {202, "Unsupported processing id"},
    {203, "Unsupported version id"},
    {204, "Unknown key identifier"},
    {205, "Duplicate key identifier"},
    {206, "Application record locked"},
    {207, "Application internal error"},
};

#define N_0357 (sizeof table_0357 / sizeof table_0357[0])

const char *
hl7_code_name(int code)
{
    for (size_t i = 0; i < N_0357; i++)
        if (table_0357[i].code == code)
            return table_0357[i].name;
    return "Application internal error";
}

/* ------------------------------------------------------------- UTF-8 */

/* Length of the well-formed UTF-8 sequence at s (Unicode 15, table 3-7:
 * no overlong forms, no surrogates, nothing above U+10FFFF), or 0. */
static size_t
utf8_len(const unsigned char *s, size_t n, uint32_t *cp)
{
    unsigned char c = s[0];
    size_t need;
    unsigned char lo = 0x80, hi = 0xBF;
    uint32_t v;
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c < 0xC2) {
        return 0;
    } else if (c < 0xE0) {
        need = 2;
        v = c & 0x1F;
    } else if (c < 0xF0) {
        need = 3;
        v = c & 0x0F;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
    } else if (c < 0xF5) {
        need = 4;
        v = c & 0x07;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    } else {
        return 0;
    }
    if (n < need || s[1] < lo || s[1] > hi)
        return 0;
    v = (v << 6) | (s[1] & 0x3F);
    for (size_t i = 2; i < need; i++) {
        if (s[i] < 0x80 || s[i] > 0xBF)
            return 0;
        v = (v << 6) | (s[i] & 0x3F);
    }
    *cp = v;
    return need;
}

/* After vsnprintf cut a message, drop a multi-byte sequence left
 * incomplete at its end, so the text stays valid UTF-8 for the ACK. */
static void
utf8_fix_tail(char *s)
{
    size_t n = strlen(s), i = n, k = 0;
    while (i > 0 && k < 4 && ((unsigned char)s[i - 1] & 0xC0) == 0x80) {
        i--;
        k++;
    }
    if (i == 0)
        return;
    unsigned char lead = (unsigned char)s[i - 1];
    size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
    if (need > 1 && need != k + 1)
        s[i - 1] = '\0';
}

/* --------------------------------------------------------------- errors */

int
hl7_fail(hl7_error *err, char ack, int code, const char *seg, unsigned seq,
         unsigned field, unsigned comp, const char *fmt, ...)
{
    if (err == NULL)
        return -1;
    memset(err, 0, sizeof *err);
    err->ack = ack;
    err->code = code;
    if (seg != NULL && seg[0] != '\0') {
        memcpy(err->loc.seg, seg, strnlen(seg, 3));
        err->loc.seq = seq;
        err->loc.field = field;
        err->loc.comp = comp;
    }
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(err->text, sizeof err->text, fmt, ap);
    va_end(ap);
    if (n < 0)
        err->text[0] = '\0';
    else if ((size_t)n >= sizeof err->text)
        utf8_fix_tail(err->text);
    return -1;
}

void
hl7_loc_format(const hl7_loc *loc, char *out, size_t outsz)
{
    if (out == NULL || outsz == 0)
        return;
    out[0] = '\0';
    if (loc == NULL || loc->seg[0] == '\0')
        return;
    char seg[4] = {0};
    memcpy(seg, loc->seg, strnlen(loc->seg, 3));
    /* The ERL data type (v2.5 ERR-2) puts the repetition before the
     * component; a location never names a repetition, so it stays empty. */
    if (loc->field == 0)
        snprintf(out, outsz, "%s^%u", seg, loc->seq);
    else if (loc->comp == 0)
        snprintf(out, outsz, "%s^%u^%u", seg, loc->seq, loc->field);
    else
        snprintf(out, outsz, "%s^%u^%u^^%u", seg, loc->seq, loc->field,
                 loc->comp);
}

/* ---------------------------------------------------------------- parse */

typedef enum cs_kind {
    CS_UTF8,
    CS_LATIN1,
    CS_ASCII,
    CS_UNSUPPORTED,
} cs_kind;

typedef struct seg_ix {
    size_t off;     /* first byte in buf */
    size_t len;     /* without the terminator */
    size_t piece;   /* index in pieces of the segment id piece */
    size_t npieces; /* pieces split on the field separator, id included */
    unsigned seq;   /* occurrence of id, from 1 */
    bool is_msh;
    char id[4]; /* "" when the segment does not start with a 3-char id */
} seg_ix;

struct hl7_msg {
    char *buf; /* len bytes plus a NUL no slice includes */
    size_t len;
    hl7_delims d;
    unsigned enc_count;
    unsigned warnings;
    seg_ix *segs;
    size_t nsegs;
    size_t *pieces; /* start offset in buf of every piece */
    cs_kind cs;
    char cs_name[64]; /* MSH-18 (first component), else the default */
};

static bool
is_alnum(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') ||
           (c >= 'a' && c <= 'z');
}

static bool
is_upper_or_digit(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z');
}

static int
fail_oom(hl7_error *err)
{
    hl7_fail(err, 'R', 207, NULL, 0, 0, 0, "out of memory");
    return -2;
}

/* Up to three bytes of an unexpected segment start, printable, for a
 * message ("RF1"). */
static void
seg_echo(const uint8_t *p, size_t n, char out[4])
{
    size_t k = 0;
    for (; k < 3 && k < n && p[k] != CR && p[k] != LF; k++)
        out[k] = (p[k] > 0x20 && p[k] < 0x7F) ? (char)p[k] : '?';
    out[k] = '\0';
}

/* Read the delimiters from the MSH at p (the first segment). Everything
 * here answers AR 100 at MSH^1 (domain 5.6, check order step 2). */
static int
read_msh(const uint8_t *p, size_t n, hl7_delims *d, unsigned *enc_count,
         hl7_error *err)
{
    if (n < 3 || memcmp(p, "MSH", 3) != 0) {
        char id[4];
        seg_echo(p, n, id);
        return hl7_fail(err, 'R', 100, "MSH", 1, 0, 0,
                        "the message starts with '%s', not an MSH segment", id);
    }
    if (n < 4 || p[3] == CR || p[3] == LF)
        return hl7_fail(err, 'R', 100, "MSH", 1, 0, 0,
                        "MSH declares no field separator");
    size_t i = 4;
    while (i < n && p[i] != p[3] && p[i] != CR && p[i] != LF)
        i++;
    size_t enc = i - 4;
    if (enc < 4)
        return hl7_fail(err, 'R', 100, "MSH", 1, 2, 0,
                        "MSH-2 declares %zu encoding characters; HL7 "
                        "requires 4 (^~\\&)",
                        enc);
    const unsigned char ch[5] = {p[3], p[4], p[5], p[6], p[7]};
    for (size_t k = 0; k < 5; k++) {
        /* A delimiter must be a printable, non-alphanumeric ASCII
         * character: segment ids, escape sequence names and hex digits are
         * alphanumeric, and a control byte could be a terminator. */
        if (ch[k] <= 0x20 || ch[k] >= 0x7F)
            return hl7_fail(err, 'R', 100, "MSH", 1, k == 0 ? 1 : 2, 0,
                            "MSH declares byte 0x%02X as a delimiter; "
                            "delimiters are printable ASCII",
                            ch[k]);
        if (is_alnum(ch[k]))
            return hl7_fail(err, 'R', 100, "MSH", 1, k == 0 ? 1 : 2, 0,
                            "MSH declares the letter or digit '%c' as a "
                            "delimiter",
                            ch[k]);
        for (size_t j = 0; j < k; j++)
            if (ch[j] == ch[k])
                return hl7_fail(err, 'R', 100, "MSH", 1, 2, 0,
                                "MSH declares '%c' as two different "
                                "delimiters",
                                ch[k]);
    }
    d->field = (char)ch[0];
    d->comp = (char)ch[1];
    d->rep = (char)ch[2];
    d->esc = (char)ch[3];
    d->sub = (char)ch[4];
    *enc_count = enc > 0xFFFF ? 0xFFFF : (unsigned)enc;
    return 0;
}

/* Does p start a segment: three upper-case letters or digits, then the
 * field separator? Used to tell an LF terminator from an LF in text. */
static bool
seg_start_at(const uint8_t *p, size_t n, char fs)
{
    return n >= 4 && is_upper_or_digit(p[0]) && is_upper_or_digit(p[1]) &&
           is_upper_or_digit(p[2]) && p[3] == (uint8_t)fs;
}

typedef struct term_report {
    bool lf_only;     /* LF terminators and no CR anywhere */
    bool mixed;       /* an LF terminator among CR ones */
    size_t mixed_off; /* offset in buf of the segment after it */
    char mixed_id[4];
} term_report;

/* Copy p into m->buf, normalising terminators to CR (domain 5.2). */
static void
normalise(hl7_msg *m, const uint8_t *p, size_t n, bool accept_lf,
          term_report *t)
{
    char fs = m->d.field;
    /* Trailing CR and LF bytes end the message; none of them is text. */
    size_t tail = n;
    while (tail > 0 && (p[tail - 1] == CR || p[tail - 1] == LF))
        tail--;
    bool has_cr = memchr(p, CR, n) != NULL;
    /* Splitting on LF is safe only when no CR appears anywhere: then no
     * LF can be text the sender meant as a line break. */
    t->lf_only = !has_cr && memchr(p, LF, tail) != NULL;
    if (t->lf_only && accept_lf)
        m->warnings |= HL7_WARN_LF_TERMINATORS;
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = p[i];
        if (c != LF) {
            m->buf[j++] = (char)c;
            continue;
        }
        if (t->lf_only) {
            m->buf[j++] = CR;
            continue;
        }
        if (i > 0 && p[i - 1] == CR)
            continue;
        if (i >= tail) {
            m->buf[j++] = CR;
            m->warnings |= HL7_WARN_LF_FINAL;
            continue;
        }
        if (seg_start_at(p + i + 1, n - i - 1, fs)) {
            /* Read as text, this LF would swallow the next segment into
             * the field before it; index it as a terminator so the MSH
             * can still be read for the ACK, and report it. */
            if (!t->mixed) {
                t->mixed = true;
                t->mixed_off = j + 1;
                memcpy(t->mixed_id, p + i + 1, 3);
                t->mixed_id[3] = '\0';
            }
            m->buf[j++] = CR;
            continue;
        }
        m->buf[j++] = LF;
        m->warnings |= HL7_WARN_LF_IN_TEXT;
    }
    m->buf[j] = '\0';
    m->len = j;
}

typedef struct id_at {
    char id[4];
    size_t i;
} id_at;

static int
cmp_id_at(const void *a, const void *b)
{
    const id_at *x = a, *y = b;
    int c = strcmp(x->id, y->id);
    if (c != 0)
        return c;
    return x->i < y->i ? -1 : x->i > y->i;
}

/* Occurrence numbers by sorting (id, index): counting with a scan per
 * segment would be quadratic in a frame of many tiny segments. */
static int
number_segments(hl7_msg *m)
{
    if (m->nsegs == 0)
        return 0;
    id_at *v = calloc(m->nsegs, sizeof *v);
    if (v == NULL)
        return -1;
    for (size_t i = 0; i < m->nsegs; i++) {
        memcpy(v[i].id, m->segs[i].id, sizeof v[i].id);
        v[i].i = i;
    }
    qsort(v, m->nsegs, sizeof *v, cmp_id_at);
    unsigned seq = 0;
    for (size_t k = 0; k < m->nsegs; k++) {
        seq = (k > 0 && strcmp(v[k].id, v[k - 1].id) == 0) ? seq + 1 : 1;
        m->segs[v[k].i].seq = seq;
    }
    free(v);
    return 0;
}

static int
index_segments(hl7_msg *m)
{
    const char *b = m->buf;
    size_t n = m->len;
    char fs = m->d.field;
    size_t nsegs = 0, npieces = 0;
    for (size_t i = 0; i < n;) {
        const char *cr = memchr(b + i, CR, n - i);
        size_t end = cr != NULL ? (size_t)(cr - b) : n;
        if (end > i) {
            nsegs++;
            npieces++;
            for (const char *q = b + i;
                 (q = memchr(q, fs, (size_t)(b + end - q))) != NULL; q++)
                npieces++;
        }
        i = end + 1;
    }
    m->segs = calloc(nsegs > 0 ? nsegs : 1, sizeof *m->segs);
    m->pieces = calloc(npieces > 0 ? npieces : 1, sizeof *m->pieces);
    if (m->segs == NULL || m->pieces == NULL)
        return -1;
    size_t s = 0, pc = 0;
    for (size_t i = 0; i < n;) {
        const char *cr = memchr(b + i, CR, n - i);
        size_t end = cr != NULL ? (size_t)(cr - b) : n;
        if (end > i) {
            seg_ix *g = &m->segs[s++];
            g->off = i;
            g->len = end - i;
            g->piece = pc;
            m->pieces[pc++] = i;
            for (const char *q = b + i;
                 (q = memchr(q, fs, (size_t)(b + end - q))) != NULL; q++)
                m->pieces[pc++] = (size_t)(q - b) + 1;
            g->npieces = pc - g->piece;
            size_t idlen =
                (g->npieces > 1 ? m->pieces[g->piece + 1] - 1 : end) - i;
            bool ok = idlen == 3;
            for (size_t k = 0; ok && k < 3; k++)
                ok = (unsigned char)b[i + k] > 0x20 &&
                     (unsigned char)b[i + k] < 0x7F;
            if (ok)
                memcpy(g->id, b + i, 3);
            g->is_msh = strcmp(g->id, "MSH") == 0;
        }
        i = end + 1;
    }
    m->nsegs = nsegs;
    return number_segments(m);
}

static cs_kind
classify_charset(const char *p, size_t n)
{
    static const struct {
        const char *name;
        cs_kind kind;
    } sets[] = {
        {"UNICODE UTF-8", CS_UTF8},
        {"8859/1", CS_LATIN1},
        {"ASCII", CS_ASCII},
    };
    for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++)
        if (strlen(sets[i].name) == n && memcmp(sets[i].name, p, n) == 0)
            return sets[i].kind;
    return CS_UNSUPPORTED;
}

typedef struct unesc unesc;
static int unescape(const hl7_delims *d, hl7_str raw, unesc *u, bool *warned,
                    char *why, size_t whysz);
static hl7_str unescape_name(const hl7_msg *m, hl7_str v, char *plain);

static void
set_charset(hl7_msg *m, const char *dflt)
{
    hl7_str v = hl7_get(m, 0, 18, 0, 1, 0);
    /* MSH-18 is escaped like any value: where '-' is the escape character
     * "UNICODE UTF-8" travels as "UNICODE UTF-E-8". A value that does not
     * unescape stays raw, and so unknown. */
    char plain[64];
    if (v.n > 0 && v.n < sizeof plain && memchr(v.p, m->d.esc, v.n) != NULL)
        v = unescape_name(m, v, plain);
    if (v.n == 0) {
        v.p = dflt != NULL ? dflt : DEFAULT_CHARSET;
        v.n = strlen(v.p);
    }
    m->cs = classify_charset(v.p, v.n);
    size_t k = v.n < sizeof m->cs_name - 1 ? v.n : sizeof m->cs_name - 1;
    memcpy(m->cs_name, v.p, k);
    m->cs_name[k] = '\0';
}

int
hl7_parse(const uint8_t *data, size_t len, const hl7_parse_opts *opts,
          hl7_msg **out, hl7_error *err)
{
    hl7_msg *unused = NULL;
    if (out == NULL)
        out = &unused;
    *out = NULL;
    if (data == NULL)
        len = 0;
    bool accept_lf = opts != NULL && opts->accept_lf;
    const char *dflt = opts != NULL ? opts->default_charset : NULL;

    /* Blank lines before the MSH are empty segments, which are skipped. */
    size_t start = 0;
    while (start < len && (data[start] == CR || data[start] == LF))
        start++;
    const uint8_t *p = data + start;
    size_t n = len - start;
    if (n == 0)
        return hl7_fail(err, 'R', 100, "MSH", 1, 0, 0,
                        "the message is empty: no MSH segment");
    if (n >= 3 && (memcmp(p, "FHS", 3) == 0 || memcmp(p, "BHS", 3) == 0)) {
        char id[4] = {(char)p[0], 'H', 'S', '\0'};
        return hl7_fail(err, 'R', 200, id, 1, 0, 0,
                        "batches (FHS/BHS) are not supported: send one "
                        "message per MLLP frame");
    }
    hl7_delims d = default_delims;
    unsigned enc = 0;
    if (read_msh(p, n, &d, &enc, err) != 0)
        return -1;

    hl7_msg *m = calloc(1, sizeof *m);
    if (m == NULL || n == SIZE_MAX || (m->buf = malloc(n + 1)) == NULL) {
        free(m);
        return fail_oom(err);
    }
    m->d = d;
    m->enc_count = enc;
    term_report t = {0};
    normalise(m, p, n, accept_lf, &t);
    if (index_segments(m) != 0) {
        hl7_msg_free(m);
        return fail_oom(err);
    }
    set_charset(m, dflt);
    *out = m;

    int rc = 0;
    if (t.lf_only && !accept_lf) {
        /* The segment the first LF terminator precedes. */
        const seg_ix *g = m->nsegs > 1 ? &m->segs[1] : &m->segs[0];
        rc = hl7_fail(err, 'E', 100, g->id, g->seq, 0, 0,
                      "segment terminator is LF; HL7 requires CR");
    } else if (t.mixed) {
        unsigned seq = 1;
        for (size_t i = 0; i < m->nsegs; i++)
            if (m->segs[i].off == t.mixed_off)
                seq = m->segs[i].seq;
        rc = hl7_fail(err, 'E', 100, t.mixed_id, seq, 0, 0,
                      "segment terminator before %s is LF; HL7 requires CR",
                      t.mixed_id);
    }
    if (out == &unused)
        hl7_msg_free(m);
    return rc;
}

void
hl7_msg_free(hl7_msg *m)
{
    if (m == NULL)
        return;
    free(m->buf);
    free(m->segs);
    free(m->pieces);
    free(m);
}

const hl7_delims *
hl7_msg_delims(const hl7_msg *m)
{
    return m != NULL ? &m->d : &default_delims;
}

unsigned
hl7_msg_enc_count(const hl7_msg *m)
{
    return m != NULL ? m->enc_count : 0;
}

unsigned
hl7_msg_warnings(const hl7_msg *m)
{
    return m != NULL ? m->warnings : 0;
}

const uint8_t *
hl7_msg_bytes(const hl7_msg *m, size_t *len)
{
    if (m == NULL) {
        if (len != NULL)
            *len = 0;
        return (const uint8_t *)empty_text;
    }
    if (len != NULL)
        *len = m->len;
    return (const uint8_t *)m->buf;
}

/* ------------------------------------------------------------- segments */

size_t
hl7_nsegs(const hl7_msg *m)
{
    return m != NULL ? m->nsegs : 0;
}

const char *
hl7_seg_id(const hl7_msg *m, size_t i)
{
    if (m == NULL || i >= m->nsegs)
        return empty_text;
    return m->segs[i].id;
}

unsigned
hl7_seg_seq(const hl7_msg *m, size_t i)
{
    if (m == NULL || i >= m->nsegs)
        return 0;
    return m->segs[i].seq;
}

size_t
hl7_find(const hl7_msg *m, size_t from, const char *id)
{
    if (m == NULL || id == NULL)
        return HL7_NPOS;
    for (size_t i = from; i < m->nsegs; i++)
        if (strcmp(m->segs[i].id, id) == 0)
            return i;
    return HL7_NPOS;
}

/* --------------------------------------------------------------- fields */

static hl7_str
absent(void)
{
    hl7_str s = {empty_text, 0};
    return s;
}

/* Piece k of segment g: the id for k == 0, else the text between the k-th
 * field separator and the next one (or the end of the segment). */
static hl7_str
piece(const hl7_msg *m, const seg_ix *g, size_t k)
{
    if (k >= g->npieces)
        return absent();
    size_t start = m->pieces[g->piece + k];
    size_t end =
        k + 1 < g->npieces ? m->pieces[g->piece + k + 1] - 1 : g->off + g->len;
    hl7_str s = {m->buf + start, end - start};
    return s;
}

/* Part k (from 0) of s split on sep, or absent. */
static hl7_str
nth(hl7_str s, char sep, unsigned k)
{
    const char *p = s.p, *end = s.p + s.n;
    for (unsigned i = 0; i < k; i++) {
        const char *q = memchr(p, sep, (size_t)(end - p));
        if (q == NULL)
            return absent();
        p = q + 1;
    }
    const char *q = memchr(p, sep, (size_t)(end - p));
    hl7_str r = {p, (size_t)((q != NULL ? q : end) - p)};
    return r;
}

/* MSH-1 and MSH-2, which are never split. */
static hl7_str
msh_delim_field(const hl7_msg *m, const seg_ix *g, unsigned field, unsigned rep,
                unsigned comp, unsigned sub)
{
    if (rep != 0 || comp > 1 || sub > 1)
        return absent();
    if (field == 1) {
        if (g->len < 4)
            return absent();
        hl7_str s = {m->buf + g->off + 3, 1};
        return s;
    }
    return piece(m, g, 1);
}

hl7_str
hl7_get(const hl7_msg *m, size_t seg, unsigned field, unsigned rep,
        unsigned comp, unsigned sub)
{
    if (m == NULL || seg >= m->nsegs)
        return absent();
    const seg_ix *g = &m->segs[seg];
    if (field == 0)
        return piece(m, g, 0);
    size_t k = field;
    if (g->is_msh) {
        if (field <= 2)
            return msh_delim_field(m, g, field, rep, comp, sub);
        k = field - 1;
    }
    hl7_str s = piece(m, g, k);
    if (s.n == 0)
        return s;
    s = nth(s, m->d.rep, rep);
    if (comp == 0 || s.n == 0)
        return s;
    s = nth(s, m->d.comp, comp - 1);
    if (sub == 0 || s.n == 0)
        return s;
    return nth(s, m->d.sub, sub - 1);
}

hl7_str
hl7_comp(const hl7_msg *m, size_t seg, unsigned field, unsigned comp)
{
    return hl7_get(m, seg, field, 0, comp, 0);
}

unsigned
hl7_nfields(const hl7_msg *m, size_t seg)
{
    if (m == NULL || seg >= m->nsegs)
        return 0;
    const seg_ix *g = &m->segs[seg];
    /* In MSH the field separator itself is MSH-1, so piece k is MSH-(k+1)
     * and the last piece's number is the number of pieces. */
    size_t n = g->is_msh ? g->npieces : g->npieces - 1;
    if (g->is_msh && g->len < 4)
        n = 0;
    return n > 0xFFFFFFFFu ? 0xFFFFFFFFu : (unsigned)n;
}

unsigned
hl7_nreps(const hl7_msg *m, size_t seg, unsigned field)
{
    if (m == NULL || seg >= m->nsegs || field == 0)
        return 0;
    const seg_ix *g = &m->segs[seg];
    if (g->is_msh && field <= 2)
        return msh_delim_field(m, g, field, 0, 0, 0).n > 0 ? 1 : 0;
    hl7_str s = piece(m, g, g->is_msh ? field - 1 : field);
    if (s.n == 0)
        return 0;
    size_t reps = 1;
    for (const char *q = s.p, *end = s.p + s.n;
         (q = memchr(q, m->d.rep, (size_t)(end - q))) != NULL; q++)
        reps++;
    return reps > 0xFFFFFFFFu ? 0xFFFFFFFFu : (unsigned)reps;
}

bool
hl7_is_delete(hl7_str s)
{
    return s.n == 2 && s.p[0] == '"' && s.p[1] == '"';
}

bool
hl7_eq(hl7_str s, const char *lit)
{
    if (lit == NULL)
        return false;
    size_t n = strlen(lit);
    return n == s.n && (n == 0 || memcmp(s.p, lit, n) == 0);
}

/* --------------------------------------------------------------- decode */

static void set_why(char *why, size_t whysz, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
set_why(char *why, size_t whysz, const char *fmt, ...)
{
    if (why == NULL || whysz == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, whysz, fmt, ap);
    va_end(ap);
}

static bool
is_delim(const hl7_delims *d, char c)
{
    return c == d->field || c == d->comp || c == d->rep || c == d->sub;
}

static int
hex_val(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* An escape sequence as a person would type it, for a message: the escape
 * character, at most 16 characters of content (non-printable bytes as
 * '?'), and the closing escape character when there is one. */
static void
esc_echo(char *out, size_t outsz, char esc, const char *q, size_t qn,
         bool closed)
{
    char body[24];
    size_t k = 0;
    for (; k < qn && k < 16; k++)
        body[k] = ((unsigned char)q[k] >= 0x20 && (unsigned char)q[k] < 0x7F)
                      ? q[k]
                      : '?';
    body[k] = '\0';
    snprintf(out, outsz, "%c%s%s%s", esc, body, qn > 16 ? "..." : "",
             closed ? (char[2]){esc, '\0'} : "");
}

/* State of one unescaping pass. With want set, the pass writes nothing and
 * stops at the construct that produces output byte want, recording where
 * it starts in the raw value: the offset a person needs to find a byte
 * that the character set check refused. */
struct unesc {
    char *out;
    size_t j;
    size_t want;
    size_t at;
    bool found;
};

/* Emit k bytes produced by the construct at raw offset raw_at; literal:
 * they are the raw bytes themselves, one for one. */
static bool
emit(unesc *u, size_t raw_at, bool literal, const char *bytes, size_t k)
{
    if (u->want != SIZE_MAX && u->want >= u->j && u->want < u->j + k) {
        u->at = literal ? raw_at + (u->want - u->j) : raw_at;
        u->found = true;
        return false;
    }
    if (u->out != NULL)
        memcpy(u->out + u->j, bytes, k);
    u->j += k;
    return true;
}

/* Replace the escape sequences of raw (domain 5.1). Output is never longer
 * than the input. Returns 0, or -1 with why filled. */
static int
unescape(const hl7_delims *d, hl7_str raw, unesc *u, bool *warned, char *why,
         size_t whysz)
{
    const char *s = raw.p;
    size_t n = raw.n;
    char seq[32];
    for (size_t i = 0; i < n;) {
        if (s[i] != d->esc) {
            size_t k = i + 1;
            while (k < n && s[k] != d->esc)
                k++;
            if (!emit(u, i, true, s + i, k - i))
                return 0;
            i = k;
            continue;
        }
        /* Escape sequences do not nest and end within the component. */
        size_t k = i + 1;
        while (k < n && s[k] != d->esc && !is_delim(d, s[k]))
            k++;
        const char *q = s + i + 1;
        if (k >= n || s[k] != d->esc) {
            size_t qn = 0;
            while (q + qn < s + n && qn < 16 &&
                   (is_alnum((unsigned char)q[qn]) || q[qn] == '.'))
                qn++;
            esc_echo(seq, sizeof seq, d->esc, q, qn, false);
            set_why(why, whysz,
                    "escape sequence %s has no closing escape character", seq);
            return -1;
        }
        size_t qn = k - i - 1;
        bool ok = true;
        if (qn == 1 && (q[0] == 'F' || q[0] == 'S' || q[0] == 'T' ||
                        q[0] == 'R' || q[0] == 'E')) {
            char c = q[0] == 'F'   ? d->field
                     : q[0] == 'S' ? d->comp
                     : q[0] == 'T' ? d->sub
                     : q[0] == 'R' ? d->rep
                                   : d->esc;
            ok = emit(u, i, false, &c, 1);
        } else if (qn == 1 && (q[0] == 'H' || q[0] == 'N')) {
            /* Highlighting: canonical text carries no formatting. */
        } else if (qn == 3 && memcmp(q, ".br", 3) == 0) {
            ok = emit(u, i, false, "\n", 1);
        } else if (qn >= 1 && q[0] == 'X') {
            esc_echo(seq, sizeof seq, d->esc, q, qn, true);
            if (qn == 1) {
                set_why(why, whysz, "escape sequence %s has no hex digits",
                        seq);
                return -1;
            }
            for (size_t h = 1; h < qn; h++) {
                if (hex_val(q[h]) < 0) {
                    unsigned char c = (unsigned char)q[h];
                    if (c >= 0x20 && c < 0x7F)
                        set_why(why, whysz,
                                "escape sequence %s holds '%c', which is "
                                "not a hex digit",
                                seq, c);
                    else
                        set_why(why, whysz,
                                "escape sequence %s holds byte 0x%02X, "
                                "which is not a hex digit",
                                seq, c);
                    return -1;
                }
            }
            if ((qn - 1) % 2 != 0) {
                set_why(why, whysz,
                        "escape sequence %s has an odd number of hex "
                        "digits",
                        seq);
                return -1;
            }
            for (size_t h = 1; ok && h < qn; h += 2) {
                char c = (char)(hex_val(q[h]) * 16 + hex_val(q[h + 1]));
                if (c == '\0') {
                    set_why(why, whysz, "NUL byte (0x00)");
                    return -1;
                }
                ok = emit(u, i, false, &c, 1);
            }
        } else {
            /* Other formatting (\.sp n\ ...), character set switches
             * (\C..\ \M..\), local (\Z..\) and unknown sequences are kept
             * as they are, so nothing the sender wrote is lost. */
            ok = emit(u, i, true, s + i, qn + 2);
            if (ok && warned != NULL)
                *warned = true;
        }
        if (!ok)
            return 0;
        i = k + 1;
    }
    return 0;
}

/* MSH-18 unescaped into plain (at least v.n + 1 bytes), or v itself. */
static hl7_str
unescape_name(const hl7_msg *m, hl7_str v, char *plain)
{
    unesc u = {plain, 0, SIZE_MAX, 0, false};
    if (unescape(&m->d, v, &u, NULL, NULL, 0) != 0)
        return v;
    hl7_str r = {plain, u.j};
    return r;
}

/* Offset in raw of the construct that produced output byte at. */
static size_t
raw_offset(const hl7_delims *d, hl7_str raw, size_t at)
{
    unesc u = {NULL, 0, at, 0, false};
    (void)unescape(d, raw, &u, NULL, NULL, 0);
    return u.found ? u.at : at;
}

char *
hl7_decode(const hl7_msg *m, hl7_str raw, bool *warned, char *why, size_t whysz)
{
    const hl7_delims *d = m != NULL ? &m->d : &default_delims;
    cs_kind cs = m != NULL ? m->cs : CS_UTF8;
    if (raw.p == NULL)
        raw.n = 0;
    if (hl7_is_delete(raw))
        raw.n = 0;
    if (raw.n > 0 && memchr(raw.p, '\0', raw.n) != NULL) {
        set_why(why, whysz, "NUL byte (0x00)");
        return NULL;
    }
    if (raw.n > 0 && cs == CS_UNSUPPORTED) {
        char name[40];
        size_t k = 0;
        for (; m->cs_name[k] != '\0' && k < 32; k++) {
            unsigned char c = (unsigned char)m->cs_name[k];
            name[k] = (c >= 0x20 && c < 0x7F) ? (char)c : '?';
        }
        name[k] = '\0';
        set_why(why, whysz, "unsupported character set '%s'", name);
        return NULL;
    }
    if (raw.n > (SIZE_MAX - 1) / 2) {
        set_why(why, whysz, "out of memory");
        return NULL;
    }
    char *tmp = malloc(raw.n + 1);
    if (tmp == NULL) {
        set_why(why, whysz, "out of memory");
        return NULL;
    }
    unesc u = {tmp, 0, SIZE_MAX, 0, false};
    if (unescape(d, raw, &u, warned, why, whysz) != 0) {
        free(tmp);
        return NULL;
    }
    size_t n = u.j;
    tmp[n] = '\0';
    const unsigned char *b = (const unsigned char *)tmp;

    if (cs == CS_UTF8) {
        for (size_t i = 0; i < n;) {
            uint32_t cp;
            size_t k = utf8_len(b + i, n - i, &cp);
            if (k == 0) {
                set_why(why, whysz, "invalid UTF-8 (byte 0x%02X at offset %zu)",
                        b[i], raw_offset(d, raw, i));
                free(tmp);
                return NULL;
            }
            i += k;
        }
        return tmp;
    }
    if (cs == CS_ASCII) {
        for (size_t i = 0; i < n; i++) {
            if (b[i] >= 0x80) {
                set_why(why, whysz,
                        "byte 0x%02X at offset %zu is not 7-bit ASCII, the "
                        "message's character set",
                        b[i], raw_offset(d, raw, i));
                free(tmp);
                return NULL;
            }
        }
        return tmp;
    }
    /* 8859/1: every byte is one character, U+0000 to U+00FF. 0x80 to 0x9F
     * are C1 control codes, never text: they arrive when a sender declares
     * 8859/1 but writes Windows-1252 (curly quotes, dashes), and passing
     * them on would replace the sender's characters with invisible ones. */
    size_t extra = 0;
    for (size_t i = 0; i < n; i++) {
        if (b[i] >= 0x80 && b[i] <= 0x9F) {
            set_why(why, whysz,
                    "byte 0x%02X at offset %zu is a control code, not a "
                    "character, in 8859/1",
                    b[i], raw_offset(d, raw, i));
            free(tmp);
            return NULL;
        }
        extra += b[i] >= 0x80;
    }
    char *utf = malloc(n + extra + 1);
    if (utf == NULL) {
        free(tmp);
        set_why(why, whysz, "out of memory");
        return NULL;
    }
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        if (b[i] < 0x80) {
            utf[j++] = (char)b[i];
        } else {
            utf[j++] = (char)(0xC0 | (b[i] >> 6));
            utf[j++] = (char)(0x80 | (b[i] & 0x3F));
        }
    }
    utf[j] = '\0';
    free(tmp);
    return utf;
}

/* ---------------------------------------------------------------- times */

typedef struct ts_parts {
    int y, mo, d, h, mi, s, ms;
    size_t ndigits; /* 4, 6, 8, 10, 12 or 14 */
    bool has_off;
    int off_min;
} ts_parts;

static bool
is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int
num(const char *p, size_t n)
{
    int v = 0;
    for (size_t i = 0; i < n; i++)
        v = v * 10 + (p[i] - '0');
    return v;
}

/* Parse and range-check YYYY[MM[DD[HH[MM[SS[.S[S[S[S]]]]]]]]][+/-ZZZZ].
 * Messages describe the shape, never echo the value: it may be a date of
 * birth. */
static bool
ts_parse(hl7_str raw, ts_parts *t, char *why, size_t whysz)
{
    const char *s = raw.p;
    size_t n = raw.p != NULL ? raw.n : 0;
    memset(t, 0, sizeof *t);
    t->mo = 1;
    t->d = 1;
    if (n == 0) {
        set_why(why, whysz, "no date/time given");
        return false;
    }
    size_t i = 0;
    while (i < n && is_digit(s[i]))
        i++;
    size_t nd = i;
    if (nd != 4 && nd != 6 && nd != 8 && nd != 10 && nd != 12 && nd != 14) {
        set_why(why, whysz,
                "not an HL7 date/time: %zu digits where "
                "YYYY[MM[DD[HH[MM[SS]]]]] has 4, 6, 8, 10, 12 or 14",
                nd);
        return false;
    }
    t->ndigits = nd;
    t->y = num(s, 4);
    if (nd >= 6)
        t->mo = num(s + 4, 2);
    if (nd >= 8)
        t->d = num(s + 6, 2);
    if (nd >= 10)
        t->h = num(s + 8, 2);
    if (nd >= 12)
        t->mi = num(s + 10, 2);
    if (nd >= 14)
        t->s = num(s + 12, 2);
    if (i < n && s[i] == '.') {
        if (nd != 14) {
            set_why(why, whysz,
                    "not an HL7 date/time: a fraction of a second needs "
                    "the seconds");
            return false;
        }
        size_t f = ++i;
        while (i < n && is_digit(s[i]))
            i++;
        size_t nf = i - f;
        if (nf == 0 || nf > 4) {
            set_why(why, whysz,
                    "not an HL7 date/time: %zu digits after the decimal "
                    "point, where 1 to 4 are allowed",
                    nf);
            return false;
        }
        int ms = 0;
        for (size_t k = 0; k < 3; k++)
            ms = ms * 10 + (k < nf ? s[f + k] - '0' : 0);
        t->ms = ms;
    }
    if (i < n && (s[i] == '+' || s[i] == '-')) {
        char sign = s[i++];
        size_t f = i;
        while (i < n && is_digit(s[i]))
            i++;
        if (i - f != 4 || i != n) {
            set_why(why, whysz,
                    "not an HL7 date/time: the offset must be %c and 4 "
                    "digits (ZZZZ)",
                    sign);
            return false;
        }
        int oh = num(s + f, 2), om = num(s + f + 2, 2);
        if (oh > 23 || om > 59) {
            set_why(why, whysz,
                    "not a real offset: %c%02d%02d (hours up to 23, minutes "
                    "up to 59)",
                    sign, oh, om);
            return false;
        }
        t->has_off = true;
        t->off_min = (sign == '-' ? -1 : 1) * (oh * 60 + om);
    }
    if (i != n) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7F)
            set_why(why, whysz, "not an HL7 date/time: unexpected '%c'", c);
        else
            set_why(why, whysz, "not an HL7 date/time: unexpected byte 0x%02X",
                    c);
        return false;
    }
    if (t->y == 0) {
        set_why(why, whysz, "not a real date: year 0000");
        return false;
    }
    if (t->mo < 1 || t->mo > 12) {
        set_why(why, whysz, "not a real date: month %d", t->mo);
        return false;
    }
    if (t->d < 1 || t->d > hov_days_in_month(t->y, t->mo)) {
        set_why(why, whysz, "not a real date: day %d of %04d-%02d", t->d, t->y,
                t->mo);
        return false;
    }
    if (t->h > 23) {
        set_why(why, whysz, "not a real time: hour %d", t->h);
        return false;
    }
    if (t->mi > 59) {
        set_why(why, whysz, "not a real time: minute %d", t->mi);
        return false;
    }
    if (t->s > 59) {
        set_why(why, whysz, "not a real time: second %d", t->s);
        return false;
    }
    return true;
}

bool
hl7_ts_to_rfc3339(hl7_str raw, char out[32], bool *ambiguous, char *why,
                  size_t whysz)
{
    if (ambiguous != NULL)
        *ambiguous = false;
    ts_parts t;
    if (!ts_parse(raw, &t, why, whysz))
        return false;
    uint64_t ms;
    if (t.has_off) {
        if (!hov_civil_to_ms(t.y, t.mo, t.d, t.h, t.mi, t.s, t.ms, t.off_min,
                             &ms)) {
            set_why(why, whysz,
                    "a time before 1970-01-01T00:00:00Z cannot be converted");
            return false;
        }
    } else {
        int rc = hov_london_to_ms(t.y, t.mo, t.d, t.h, t.mi, t.s, t.ms, &ms,
                                  ambiguous);
        if (rc == -2) {
            set_why(why, whysz,
                    "local time %02d:%02d on %04d-%02d-%02d does not exist in "
                    "Europe/London (the clocks went forward)",
                    t.h, t.mi, t.y, t.mo, t.d);
            return false;
        }
        if (rc != 0) {
            set_why(why, whysz,
                    "a time before 1970-01-01T00:00:00Z cannot be converted");
            return false;
        }
    }
    hov_rfc3339_format(ms, out);
    return true;
}

/* v as exactly n digits, zero-padded (v is known to fit). */
static void
put_digits(char *p, int v, int n)
{
    for (int i = n - 1; i >= 0; i--, v /= 10)
        p[i] = (char)('0' + v % 10);
}

bool
hl7_dt_to_date(hl7_str raw, char out[11], char *why, size_t whysz)
{
    ts_parts t;
    if (!ts_parse(raw, &t, why, whysz))
        return false;
    if (t.ndigits < 8) {
        set_why(why, whysz, "not a full date: YYYYMMDD needs the %s",
                t.ndigits < 6 ? "month and day" : "day");
        return false;
    }
    put_digits(out, t.y, 4);
    out[4] = '-';
    put_digits(out + 5, t.mo, 2);
    out[7] = '-';
    put_digits(out + 8, t.d, 2);
    out[10] = '\0';
    return true;
}

void
hl7_ts_format(uint64_t unix_ms, char out[20])
{
    char r[32];
    hov_rfc3339_format(unix_ms, r); /* YYYY-MM-DDThh:mm:ss.mmmZ */
    static const int from[14] = {0, 1,  2,  3,  5,  6,  8,
                                 9, 11, 12, 14, 15, 17, 18};
    for (int i = 0; i < 14; i++)
        out[i] = r[from[i]];
    memcpy(out + 14, "+0000", 6);
}

/* -------------------------------------------------------------- builder */

static void
die(const char *what)
{
    fprintf(stderr, "hl7: programming error: %s\n", what);
    abort();
}

void
hl7b_init(hl7_builder *b, const hl7_delims *d)
{
    memset(b, 0, sizeof *b);
    b->d = d != NULL ? *d : default_delims;
}

void
hl7b_free(hl7_builder *b)
{
    if (b == NULL)
        return;
    free(b->buf);
    hl7_delims d = b->d;
    memset(b, 0, sizeof *b);
    b->d = d;
}

static void
b_append(hl7_builder *b, const char *p, size_t n)
{
    if (b->oom || n == 0)
        return;
    if (n > SIZE_MAX / 2 - b->len) {
        b->oom = true;
        return;
    }
    size_t need = b->len + n;
    if (need > b->cap) {
        size_t cap = b->cap > 0 ? b->cap : 256;
        while (cap < need)
            cap *= 2;
        char *nb = realloc(b->buf, cap);
        if (nb == NULL) {
            b->oom = true;
            return;
        }
        b->buf = nb;
        b->cap = cap;
    }
    memcpy(b->buf + b->len, p, n);
    b->len += n;
}

static void
b_put(hl7_builder *b, char c)
{
    b_append(b, &c, 1);
}

void
hl7b_seg(hl7_builder *b, const char *id)
{
    if (b->oom)
        return;
    if (id == NULL || strlen(id) != 3 || !is_upper_or_digit(id[0]) ||
        !is_upper_or_digit(id[1]) || !is_upper_or_digit(id[2]))
        die("hl7b_seg: a segment id is 3 upper-case letters or digits");
    if (b->open)
        b_put(b, CR);
    b_append(b, id, 3);
    b->is_msh = strcmp(id, "MSH") == 0;
    if (b->is_msh) {
        char enc[5] = {b->d.field, b->d.comp, b->d.rep, b->d.esc, b->d.sub};
        b_append(b, enc, 5);
    }
    b->open = true;
    b->field = b->is_msh ? 2 : 0;
    b->rep = 0;
    b->comp = 1;
    b->sub = 1;
}

void
hl7b_at(hl7_builder *b, unsigned field, unsigned rep, unsigned comp,
        unsigned sub)
{
    if (b->oom)
        return;
    if (!b->open)
        die("hl7b_at: no open segment (call hl7b_seg first)");
    if (field == 0)
        die("hl7b_at: fields count from 1");
    comp = comp > 0 ? comp : 1;
    sub = sub > 0 ? sub : 1;
    bool back = field < b->field ||
                (field == b->field &&
                 (rep < b->rep ||
                  (rep == b->rep &&
                   (comp < b->comp || (comp == b->comp && sub < b->sub)))));
    if (back) {
        char msg[160];
        snprintf(msg, sizeof msg,
                 "hl7b_at: the cursor moves only forward (from %u.%u.%u.%u "
                 "back to %u.%u.%u.%u)",
                 b->field, b->rep, b->comp, b->sub, field, rep, comp, sub);
        die(msg);
    }
    for (; b->field < field; b->field++) {
        b_put(b, b->d.field);
        b->rep = 0;
        b->comp = 1;
        b->sub = 1;
    }
    for (; b->rep < rep; b->rep++) {
        b_put(b, b->d.rep);
        b->comp = 1;
        b->sub = 1;
    }
    for (; b->comp < comp; b->comp++) {
        b_put(b, b->d.comp);
        b->sub = 1;
    }
    for (; b->sub < sub; b->sub++)
        b_put(b, b->d.sub);
}

/* Text may go only into a field: not into the segment id, and not into
 * MSH-1 or MSH-2, which would change the delimiters. */
static void
check_text_place(const hl7_builder *b, const char *fn)
{
    char msg[96];
    if (!b->open) {
        snprintf(msg, sizeof msg, "%s: no open segment", fn);
        die(msg);
    }
    if (b->field == 0 || (b->is_msh && b->field <= 2)) {
        snprintf(msg, sizeof msg,
                 "%s: text at %s would change the segment id or delimiters", fn,
                 b->field == 0 ? "field 0" : "MSH-2");
        die(msg);
    }
}

void
hl7b_text(hl7_builder *b, const char *utf8)
{
    if (b->oom || utf8 == NULL || utf8[0] == '\0')
        return;
    check_text_place(b, "hl7b_text");
    const hl7_delims *d = &b->d;
    /* \.br\ holds a '.', which a message may have declared a delimiter;
     * then a line break travels as hex, which every receiver decodes. */
    bool dot_delim = d->field == '.' || d->comp == '.' || d->rep == '.' ||
                     d->sub == '.' || d->esc == '.';
    const char *run = utf8;
    for (const char *p = utf8;; p++) {
        char c = *p;
        char code = 0;
        if (c == d->field)
            code = 'F';
        else if (c == d->comp)
            code = 'S';
        else if (c == d->sub)
            code = 'T';
        else if (c == d->rep)
            code = 'R';
        else if (c == d->esc)
            code = 'E';
        else if (c != '\n' && c != '\r' && c != '\0')
            continue;
        b_append(b, run, (size_t)(p - run));
        run = p + 1;
        if (c == '\0')
            break;
        if (code != 0) {
            char e[3] = {d->esc, code, d->esc};
            b_append(b, e, 3);
        } else if (c == '\n') {
            if (dot_delim) {
                char e[5] = {d->esc, 'X', '0', 'A', d->esc};
                b_append(b, e, 5);
            } else {
                char e[5] = {d->esc, '.', 'b', 'r', d->esc};
                b_append(b, e, 5);
            }
        }
        /* '\r' is dropped: it would end the segment. */
    }
}

void
hl7b_raw_str(hl7_builder *b, hl7_str s)
{
    if (b->oom || s.p == NULL || s.n == 0)
        return;
    if (!b->open)
        die("hl7b_raw: no open segment");
    /* Track the cursor through the separators the bytes hold, so that a
     * later hl7b_at counts from where the raw text left it. */
    for (size_t i = 0; i < s.n; i++) {
        char c = s.p[i];
        if (c == CR)
            die("hl7b_raw: a CR would end the segment; use hl7b_seg");
        if (c == b->d.field) {
            b->field++;
            b->rep = 0;
            b->comp = 1;
            b->sub = 1;
        } else if (c == b->d.rep) {
            b->rep++;
            b->comp = 1;
            b->sub = 1;
        } else if (c == b->d.comp) {
            b->comp++;
            b->sub = 1;
        } else if (c == b->d.sub) {
            b->sub++;
        } else {
            check_text_place(b, "hl7b_raw");
        }
    }
    b_append(b, s.p, s.n);
}

void
hl7b_raw(hl7_builder *b, const char *s)
{
    if (s == NULL)
        return;
    hl7_str v = {s, strlen(s)};
    hl7b_raw_str(b, v);
}

void
hl7b_put(hl7_builder *b, unsigned field, unsigned comp, const char *text)
{
    hl7b_at(b, field, 0, comp, 1);
    hl7b_text(b, text);
}

int
hl7b_finish(hl7_builder *b, uint8_t **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    if (!b->oom && b->open)
        b_put(b, CR);
    if (!b->oom && b->buf == NULL && (b->buf = malloc(1)) == NULL)
        b->oom = true;
    if (b->oom) {
        hl7b_free(b);
        return -1;
    }
    *out = (uint8_t *)b->buf;
    *len = b->len;
    b->buf = NULL;
    hl7b_free(b);
    return 0;
}

/* ------------------------------------------------------------------ ACK */

/* Append UTF-8 text at the cursor in the character set cs: a character cs
 * cannot hold, an invalid byte, or a control character other than tab and
 * line break becomes '?', so the ACK is valid in any set it could declare.
 * At most maxchars characters (0: all). */
static void
put_text_cs(hl7_builder *b, const char *s, cs_kind cs, size_t maxchars)
{
    if (s == NULL)
        return;
    const unsigned char *u = (const unsigned char *)s;
    size_t n = strlen(s), chars = 0;
    for (size_t i = 0; i < n && (maxchars == 0 || chars < maxchars); chars++) {
        uint32_t cp;
        size_t k = utf8_len(u + i, n - i, &cp);
        char tmp[5] = {'?', 0, 0, 0, 0};
        if (k == 0) {
            k = 1;
        } else if ((cp < 0x20 && cp != '\t' && cp != '\n') ||
                   (cp >= 0x7F && cp <= 0x9F)) {
            /* '?' */
        } else if (cp < 0x80) {
            tmp[0] = (char)cp;
        } else if (cs == CS_UTF8) {
            memcpy(tmp, u + i, k);
        } else if (cs == CS_LATIN1 && cp <= 0xFF) {
            tmp[0] = (char)cp;
        }
        hl7b_text(b, tmp);
        i += k;
    }
}

/* Copy a raw value from the original. A raw LF is text there, but in a new
 * position it could stand before something that looks like a segment id
 * and read as a terminator; \X0A\ means the same and cannot. */
static void
put_raw_copy(hl7_builder *b, hl7_str s)
{
    const char *p = s.p, *end = s.p + s.n;
    while (p < end) {
        const char *lf = memchr(p, LF, (size_t)(end - p));
        hl7_str part = {p, (size_t)((lf != NULL ? lf : end) - p)};
        hl7b_raw_str(b, part);
        if (lf == NULL)
            break;
        char e[6] = {b->d.esc, 'X', '0', 'A', b->d.esc, '\0'};
        hl7b_raw(b, e);
        p = lf + 1;
    }
}

static void
put_number(hl7_builder *b, long v)
{
    char tmp[24];
    snprintf(tmp, sizeof tmp, "%ld", v);
    hl7b_text(b, tmp);
}

/* Does the version (MSH-12, first component) use the v2.5 ERR layout? */
static bool
version_25_plus(hl7_str v)
{
    if (v.n < 3 || v.p[0] != '2' || v.p[1] != '.' || !is_digit(v.p[2]))
        return false;
    int minor = 0;
    for (size_t i = 2; i < v.n && is_digit(v.p[i]) && minor < 1000; i++)
        minor = minor * 10 + (v.p[i] - '0');
    return minor >= 5;
}

static bool
ack_code_valid(const char *c)
{
    static const char *codes[] = {"AA", "AE", "AR", "CA", "CE", "CR"};
    if (c == NULL)
        return false;
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
        if (strcmp(c, codes[i]) == 0)
            return true;
    return false;
}

/* The bounded text of an error (hl7_error.text may fill its array). */
static void
err_text(const hl7_error *e, char out[sizeof e->text + 1])
{
    size_t n = strnlen(e->text, sizeof e->text);
    memcpy(out, e->text, n);
    out[n] = '\0';
}

static void
put_err_v24(hl7_builder *b, const hl7_error *errs, size_t nerr, cs_kind cs)
{
    hl7b_seg(b, "ERR");
    for (size_t i = 0; i < nerr; i++) {
        const hl7_error *e = &errs[i];
        unsigned r = (unsigned)i;
        hl7b_at(b, 1, r, 1, 1);
        if (e->loc.seg[0] != '\0') {
            char seg[4] = {0};
            memcpy(seg, e->loc.seg, strnlen(e->loc.seg, 3));
            put_text_cs(b, seg, cs, 0);
            hl7b_at(b, 1, r, 2, 1);
            put_number(b, (long)e->loc.seq);
            if (e->loc.field > 0) {
                hl7b_at(b, 1, r, 3, 1);
                put_number(b, (long)e->loc.field);
            }
        }
        hl7b_at(b, 1, r, 4, 1);
        put_number(b, e->code);
        hl7b_at(b, 1, r, 4, 2);
        hl7b_text(b, hl7_code_name(e->code));
        hl7b_at(b, 1, r, 4, 3);
        hl7b_text(b, "HL70357");
    }
}

static void
put_err_v25(hl7_builder *b, const hl7_error *e, char severity, cs_kind cs)
{
    hl7b_seg(b, "ERR");
    if (e->loc.seg[0] != '\0') {
        char seg[4] = {0};
        memcpy(seg, e->loc.seg, strnlen(e->loc.seg, 3));
        hl7b_at(b, 2, 0, 1, 1);
        put_text_cs(b, seg, cs, 0);
        hl7b_at(b, 2, 0, 2, 1);
        put_number(b, (long)e->loc.seq);
        if (e->loc.field > 0) {
            hl7b_at(b, 2, 0, 3, 1);
            put_number(b, (long)e->loc.field);
            if (e->loc.comp > 0) {
                hl7b_at(b, 2, 0, 5, 1);
                put_number(b, (long)e->loc.comp);
            }
        }
    }
    hl7b_at(b, 3, 0, 1, 1);
    put_number(b, e->code);
    hl7b_put(b, 3, 2, hl7_code_name(e->code));
    hl7b_put(b, 3, 3, "HL70357");
    char sev[2] = {severity, '\0'};
    hl7b_put(b, 4, 1, sev);
    char text[sizeof e->text + 1];
    err_text(e, text);
    if (text[0] != '\0') {
        hl7b_at(b, 7, 0, 1, 1);
        put_text_cs(b, text, cs, 0);
        hl7b_at(b, 8, 0, 1, 1);
        put_text_cs(b, text, cs, 0);
    }
}

/* Build the ACK once. declare_cs: write MSH-18 (see hl7_ack_build). */
static int
ack_emit(const hl7_msg *orig, const hl7_ack_opts *o, bool declare_cs,
         uint8_t **out, size_t *len)
{
    hl7_builder b;
    hl7b_init(&b, orig != NULL ? &orig->d : NULL);
    /* Without a usable MSH nothing is known of the partner's character
     * set: 7-bit text is valid in every set table 0211 lists. */
    cs_kind cs = orig != NULL ? orig->cs : CS_ASCII;
    if (cs == CS_UNSUPPORTED)
        cs = CS_ASCII;
    size_t msh = 0;

    hl7b_seg(&b, "MSH");
    hl7b_at(&b, 3, 0, 1, 1);
    put_text_cs(&b, o->app != NULL ? o->app : "HANDOVER", cs, 0);
    hl7b_at(&b, 4, 0, 1, 1);
    put_text_cs(&b, o->facility != NULL ? o->facility : "HANDOVER", cs, 0);
    if (orig != NULL) {
        hl7b_at(&b, 5, 0, 1, 1);
        put_raw_copy(&b, hl7_get(orig, msh, 3, 0, 0, 0));
        hl7b_at(&b, 6, 0, 1, 1);
        put_raw_copy(&b, hl7_get(orig, msh, 4, 0, 0, 0));
    }
    /* Escaped like all our text: a partner may declare '+' a delimiter. */
    char ts[20];
    hl7_ts_format(o->now_ms, ts);
    hl7b_put(&b, 7, 1, ts);
    hl7b_put(&b, 9, 1, "ACK");
    if (orig != NULL) {
        hl7b_at(&b, 9, 0, 2, 1);
        put_raw_copy(&b, hl7_get(orig, msh, 9, 0, 2, 0));
    }
    hl7b_put(&b, 9, 3, "ACK");
    hl7b_at(&b, 10, 0, 1, 1);
    put_text_cs(&b, o->control_id, cs, 0);
    /* MSH-11 and MSH-12 are required in the ACK; an original that left
     * them empty (refused for it at check order step 4) still receives an ACK
     * that parses. */
    hl7_str pid = hl7_get(orig, msh, 11, 0, 0, 0);
    hl7_str ver = hl7_get(orig, msh, 12, 0, 0, 0);
    hl7b_at(&b, 11, 0, 1, 1);
    if (pid.n > 0)
        put_raw_copy(&b, pid);
    else
        hl7b_text(&b, "P");
    hl7b_at(&b, 12, 0, 1, 1);
    if (ver.n > 0)
        put_raw_copy(&b, ver);
    else
        hl7b_text(&b, "2.4");
    bool enhanced = o->code[0] == 'C';
    if (enhanced) {
        hl7b_put(&b, 15, 1, "NE");
        hl7b_put(&b, 16, 1, "NE");
    }
    if (declare_cs && orig != NULL) {
        /* The first component is what set the original's character set
         * (set_charset); echo it, or name the default used for it. */
        hl7_str decl = hl7_get(orig, msh, 18, 0, 1, 0);
        hl7b_at(&b, 18, 0, 1, 1);
        if (decl.n > 0)
            put_raw_copy(&b, decl);
        else
            put_text_cs(&b, orig->cs_name, CS_ASCII, 0);
    }

    bool v25 = version_25_plus(ver.n > 0 ? hl7_get(orig, msh, 12, 0, 1, 0)
                                         : (hl7_str){"2.4", 3});
    const hl7_error *errs = o->errs;
    size_t nerr = errs != NULL ? o->nerr : 0;
    char sev = o->severity == 'W' || o->severity == 'I' ? o->severity : 'E';
    /* Before v2.5 ERR has no severity: a warning on an AA would read as an
     * error, so it travels in MSA-3 only (domain 5.6). */
    bool old_warning = !v25 && sev != 'E';

    hl7b_seg(&b, "MSA");
    hl7b_put(&b, 1, 1, o->code);
    if (orig != NULL) {
        hl7b_at(&b, 2, 0, 1, 1);
        put_raw_copy(&b, hl7_get(orig, msh, 10, 0, 0, 0));
    }
    if (o->text != NULL && o->text[0] != '\0') {
        hl7b_at(&b, 3, 0, 1, 1);
        put_text_cs(&b, o->text, cs, 80);
    }
    if (!v25 && nerr > 0 && !old_warning) {
        hl7b_at(&b, 6, 0, 1, 1);
        put_number(&b, errs[0].code);
        hl7b_put(&b, 6, 2, hl7_code_name(errs[0].code));
        hl7b_put(&b, 6, 3, "HL70357");
    }
    if (nerr > 0 && !old_warning) {
        if (v25) {
            for (size_t i = 0; i < nerr; i++)
                put_err_v25(&b, &errs[i], sev, cs);
        } else {
            put_err_v24(&b, errs, nerr, cs);
        }
    }
    return hl7b_finish(&b, out, len);
}

/* Character set rule for the ACK (domain 5.6 says the ACK uses the
 * original's set). Our text is written in the original's set (UTF-8 or
 * 8859/1; ASCII, an unsupported set or no MSH: 7-bit), and MSH-18 is
 * written only when the ACK holds a byte outside 7-bit ASCII: an empty
 * MSH-18 means ASCII, and 7-bit text reads the same in every set, so an
 * ordinary ACK, like the golden ones in samples/hl7/responses, carries no
 * MSH-18 (nor MSH-17). When one is needed it echoes the original's MSH-18,
 * or names the partner default the original was read with. */
int
hl7_ack_build(const hl7_msg *orig, const hl7_ack_opts *o, uint8_t **out,
              size_t *len)
{
    if (o == NULL || !ack_code_valid(o->code))
        die("hl7_ack_build: code must be AA, AE, AR, CA, CE or CR");
    *out = NULL;
    *len = 0;
    uint8_t *msg;
    size_t n;
    if (ack_emit(orig, o, false, &msg, &n) != 0)
        return -1;
    bool high = false;
    for (size_t i = 0; i < n && !high; i++)
        high = msg[i] >= 0x80;
    if (high && orig != NULL) {
        free(msg);
        if (ack_emit(orig, o, true, &msg, &n) != 0)
            return -1;
    }
    *out = msg;
    *len = n;
    return 0;
}

/* Is text only the name of a table 0357 code ("Table value not found")?
 * Such text says less than the code it repeats. */
static bool
names_a_code(const char *t)
{
    size_t n = strlen(t);
    while (n > 0 && (t[n - 1] == ' ' || t[n - 1] == '.'))
        n--;
    while (n > 0 && *t == ' ') {
        t++;
        n--;
    }
    for (size_t i = 0; i < N_0357; i++) {
        const char *name = table_0357[i].name;
        if (strlen(name) != n)
            continue;
        size_t k = 0;
        for (; k < n; k++) {
            char a = t[k], c = name[k];
            if (a >= 'A' && a <= 'Z')
                a = (char)(a - 'A' + 'a');
            if (c >= 'A' && c <= 'Z')
                c = (char)(c - 'A' + 'a');
            if (a != c)
                break;
        }
        if (k == n)
            return true;
    }
    return false;
}

static int
parse_code(hl7_str s)
{
    if (s.n == 0 || s.n > 4)
        return 0;
    int v = 0;
    for (size_t i = 0; i < s.n; i++) {
        if (!is_digit(s.p[i]))
            return 0;
        v = v * 10 + (s.p[i] - '0');
    }
    return v;
}

/* Copy decoded text into out (255 bytes at most), cut on a character
 * boundary. */
static void
copy_text(char *out, size_t outsz, const char *s)
{
    size_t n = strlen(s);
    if (n >= outsz) {
        n = outsz - 1;
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
            n--;
    }
    memcpy(out, s, n);
    out[n] = '\0';
}

int
hl7_ack_read(const hl7_msg *m, hl7_ack_info *out, hl7_error *err)
{
    memset(out, 0, sizeof *out);
    size_t msa = hl7_find(m, 0, "MSA");
    if (msa == HL7_NPOS)
        return hl7_fail(err, 'E', 100, "MSA", 1, 0, 0,
                        "not an acknowledgement: no MSA segment");
    hl7_str code = hl7_get(m, msa, 1, 0, 0, 0);
    char c[3] = {0};
    if (code.n == 2)
        memcpy(c, code.p, 2);
    if (!ack_code_valid(c))
        return hl7_fail(err, 'E', 103, "MSA", hl7_seg_seq(m, msa), 1, 0,
                        "MSA-1 is not an acknowledgement code (table 0008: "
                        "AA, AE, AR, CA, CE, CR)");
    memcpy(out->code, c, 3);

    /* MSA-2 identifies the message answered. One that does not decode, or
     * is longer than any id Handover sends, matches nothing: leave it
     * empty rather than cut it into something that might. */
    char *ctl = hl7_decode(m, hl7_get(m, msa, 2, 0, 0, 0), NULL, NULL, 0);
    if (ctl != NULL && strlen(ctl) < sizeof out->control)
        memcpy(out->control, ctl, strlen(ctl) + 1);
    free(ctl);

    size_t e = hl7_find(m, 0, "ERR");
    hl7_str codes[3] = {hl7_get(m, e, 3, 0, 1, 0), hl7_get(m, e, 1, 0, 4, 1),
                        hl7_get(m, msa, 6, 0, 1, 0)};
    for (size_t i = 0; i < 3 && out->err_code == 0; i++)
        out->err_code = parse_code(codes[i]);

    /* The most specific sentence for a person: the user message, the
     * diagnostic, the ERR-1 text, then MSA-3; text that only names a
     * table 0357 code (as ERR-1.4.2 usually does) gives way to a later
     * candidate, and is used only when there is nothing else. */
    hl7_str cand[4] = {hl7_get(m, e, 8, 0, 0, 0), hl7_get(m, e, 7, 0, 0, 0),
                       hl7_get(m, e, 1, 0, 4, 2), hl7_get(m, msa, 3, 0, 0, 0)};
    bool have_generic = false;
    for (size_t i = 0; i < 4; i++) {
        if (cand[i].n == 0)
            continue;
        char *t = hl7_decode(m, cand[i], NULL, NULL, 0);
        if (t == NULL || t[0] == '\0') {
            free(t);
            continue;
        }
        bool generic = names_a_code(t);
        if (!generic) {
            copy_text(out->text, sizeof out->text, t);
            free(t);
            return 0;
        }
        if (!have_generic) {
            copy_text(out->text, sizeof out->text, t);
            have_generic = true;
        }
        free(t);
    }
    return 0;
}
