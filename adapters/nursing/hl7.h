/* HL7 v2 messages: parse with the delimiters each message declares, read
 * fields, decode text, convert HL7 times, build messages and ACKs.
 *
 * Ours to write (no Debian library does HL7 v2). Follows HL7 v2.x chapter 2
 * and the Handover conventions in the domain brief, sections 5.1 to 5.6.
 *
 * Model. hl7_parse copies the bytes once and indexes the segments; every
 * accessor returns raw (still escaped) slices borrowed from the message,
 * and hl7_decode turns a slice into canonical UTF-8 text. Nothing here knows
 * about events: the mapping to handover.Event lives in map_in.c/map_out.c.
 *
 * Numbering follows the standard: fields, components and subcomponents
 * count from 1; repetitions from 0 (the first repetition is 0). In MSH,
 * field 1 is the field separator itself and field 2 the encoding
 * characters, so MSH-3 is the first value after "MSH|^~\&|".
 *
 * Every function is thread-safe on distinct objects. No function keeps a
 * pointer to its arguments beyond the call unless it says so.
 */
#ifndef HANDOVER_HL7_H
#define HANDOVER_HL7_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Delimiters, as declared in MSH-1 and MSH-2. */
typedef struct hl7_delims {
    char field; /* | */
    char comp;  /* ^ */
    char rep;   /* ~ */
    char esc;   /* \ */
    char sub;   /* & */
} hl7_delims;

#define HL7_DELIMS_DEFAULT                                                     \
    {                                                                          \
        '|', '^', '~', '\\', '&'                                               \
    }

/* A place in a message, as an ERR segment names it: "PID^1^3" is segment
 * PID, its first occurrence, field 3. field 0 names the segment alone
 * ("MSH^1"); comp 0 leaves the component out. seg[0] == 0: no location. */
typedef struct hl7_loc {
    char seg[4];
    unsigned seq;   /* occurrence of this segment id, from 1 */
    unsigned field; /* from 1; 0: the segment */
    unsigned comp;  /* from 1; 0: not named */
} hl7_loc;

/* A defect in a message, in the terms of an HL7 ACK (domain 5.6). */
typedef struct hl7_error {
    char ack;       /* 'E': AE/CE, content error; 'R': AR/CR, refusal */
    int code;       /* HL7 table 0357: 100, 101, 102, 103, 200..207 */
    hl7_loc loc;    /* where; loc.seg[0] == 0 when there is no place */
    char text[256]; /* one sentence for MSA-3 and ERR, e.g.
                       "PID-3: NHS number 9994127358 fails the Modulus 11
                        check" */
} hl7_error;

/* Table 0357 name of code, e.g. 102 -> "Data type error". Never NULL
 * ("Application internal error" for codes it does not know). */
const char *hl7_code_name(int code);

/* Fill err (ack, code, loc from seg/seq/field/comp, printf text) and return
 * -1, so a checker can write `return hl7_fail(err, 'E', 102, "PID", 1, 7,
 * 0, "PID-7: ...")`. seg may be NULL (no location). */
int hl7_fail(hl7_error *err, char ack, int code, const char *seg, unsigned seq,
             unsigned field, unsigned comp, const char *fmt, ...)
    __attribute__((format(printf, 8, 9)));

/* Render loc as "PID^1^3" (or "MSH^1", or "" when empty) into out. */
void hl7_loc_format(const hl7_loc *loc, char *out, size_t outsz);

/* ---------------------------------------------------------------- parse */

typedef struct hl7_msg hl7_msg;

typedef struct hl7_parse_opts {
    /* Domain 5.2: treat LF as the segment terminator when the message holds
     * no CR at all (a partner setting). Default false: such a message is an
     * error, AE 100. */
    bool accept_lf;
    /* Character set to use when MSH-18 is empty: "UNICODE UTF-8" (the
     * default when NULL), "8859/1" or "ASCII". */
    const char *default_charset;
} hl7_parse_opts;

/* Warnings a parse may raise (hl7_msg_warnings). */
enum {
    HL7_WARN_LF_TERMINATORS = 1 << 0, /* LF-only accepted (accept_lf) */
    HL7_WARN_LF_IN_TEXT = 1 << 1,     /* raw LF kept as data in a field */
    /* Added: LF (not after a CR) ending the message, in a message that
     * otherwise uses CR. Read as data it would end the last field with a
     * newline ("F\n" in OBX-11), so it is taken as the final terminator,
     * like a missing final CR (domain 5.2). */
    HL7_WARN_LF_FINAL = 1 << 2,
};

/* Parse one message (the bytes inside one MLLP frame). Copies data.
 *
 * Checks, in the order of domain 5.6 "Check order" steps 2, 3:
 *  - a batch (starts with FHS or BHS): AR 200 at FHS^1/BHS^1, text
 *    "batches (FHS/BHS) are not supported: send one message per MLLP frame";
 *  - no MSH first, or an unreadable one (shorter than "MSH|^~\&", MSH-2
 *    shorter than 4 characters, a delimiter repeated or alphanumeric):
 *    AR 100 at MSH^1;
 *  - terminators (domain 5.2): CR is the terminator; an LF right after a CR
 *    is dropped; a missing final CR is fine; LF only with no CR anywhere is
 *    AE 100 "segment terminator is LF; HL7 requires CR" unless
 *    opts->accept_lf; an LF not after a CR and followed at once by a segment
 *    id (3 upper-case letters or digits) and the field separator is AE 100
 *    "segment terminator before PV1 is LF; HL7 requires CR" whatever
 *    accept_lf says; any other LF is data (HL7_WARN_LF_IN_TEXT).
 *  - empty segments (two CRs in a row) are skipped.
 * The MSH-2 length (4, or 5 with the v2.7 truncation character) is not
 * checked here: see hl7_msg_enc_count, because domain 5.6 checks it after
 * the version and type.
 *
 * Returns 0 and *out (owned; free with hl7_msg_free) on success.
 * Returns -1 with err filled on a defect; then *out is still set (owned)
 * whenever the MSH could be read, so the ACK can echo MSH-10 and copy the
 * header, and is NULL otherwise. Returns -2 (*out NULL, err filled with AR
 * 207 "out of memory") when memory runs out. */
int hl7_parse(const uint8_t *data, size_t len, const hl7_parse_opts *opts,
              hl7_msg **out, hl7_error *err);

void hl7_msg_free(hl7_msg *m); /* NULL is a no-op */

const hl7_delims *hl7_msg_delims(const hl7_msg *m);
/* Number of encoding characters MSH-2 declared (4, or 5 and more). */
unsigned hl7_msg_enc_count(const hl7_msg *m);
unsigned hl7_msg_warnings(const hl7_msg *m); /* HL7_WARN_* bits */
/* The bytes as parsed (terminators normalised to CR). */
const uint8_t *hl7_msg_bytes(const hl7_msg *m, size_t *len);

/* ------------------------------------------------------------- segments */

size_t hl7_nsegs(const hl7_msg *m);
/* Segment id of segment i ("PID"), NUL-terminated, 3 characters. */
const char *hl7_seg_id(const hl7_msg *m, size_t i);
/* Occurrence number of segment i among segments with its id, from 1. */
unsigned hl7_seg_seq(const hl7_msg *m, size_t i);
/* First segment with this id at index >= from, or HL7_NPOS. */
size_t hl7_find(const hl7_msg *m, size_t from, const char *id);
#define HL7_NPOS ((size_t)-1)

/* --------------------------------------------------------------- fields */

/* A raw slice of the message: still escaped, not NUL-terminated. */
typedef struct hl7_str {
    const char *p;
    size_t n;
} hl7_str;

/* The raw value at segment seg, field, repetition rep (from 0), component
 * comp (from 1; 0: the whole repetition), subcomponent sub (from 1; 0: the
 * whole component). Absent parts give {p, 0}. MSH-1 gives the field
 * separator and MSH-2 the encoding characters, verbatim. */
hl7_str hl7_get(const hl7_msg *m, size_t seg, unsigned field, unsigned rep,
                unsigned comp, unsigned sub);
/* hl7_get(m, seg, field, 0, comp, 0). */
hl7_str hl7_comp(const hl7_msg *m, size_t seg, unsigned field, unsigned comp);
/* Number of fields in segment seg (the highest field number present). */
unsigned hl7_nfields(const hl7_msg *m, size_t seg);
/* Repetitions in a field: 0 if the field is empty, else 1 + count of
 * repetition separators (MSH-2 is never split). */
unsigned hl7_nreps(const hl7_msg *m, size_t seg, unsigned field);
/* Is the raw value exactly "" (two double quotes): "delete the value"? */
bool hl7_is_delete(hl7_str s);
/* Does s equal the C string lit, byte for byte (raw, undecoded)? */
bool hl7_eq(hl7_str s, const char *lit);

/* Decode a raw value to canonical text (domain 5.1): escape sequences
 * (\F\ \S\ \T\ \R\ \E\, \Xhh..\, \.br\ to "\n", \H\ and \N\ removed, other
 * formatting and \C..\ \M..\ \Z..\ kept verbatim with *warned set), then
 * the message's character set (MSH-18, else opts->default_charset):
 * "UNICODE UTF-8" must be valid UTF-8; "8859/1" is converted to UTF-8;
 * "ASCII" must be 7-bit. A NUL byte, raw or from \X00\, is an error.
 * A raw value of exactly "" decodes to "" (callers test hl7_is_delete).
 *
 * Returns a malloc'd NUL-terminated UTF-8 string (caller frees), or NULL
 * with why filled with a phrase to put after the field name, such as
 * "escape sequence \T has no closing escape character",
 * "invalid UTF-8 (byte 0xC9 at offset 6)",
 * "NUL byte (0x00)", or "out of memory".
 * warned (may be NULL) is set true when something was kept verbatim. */
char *hl7_decode(const hl7_msg *m, hl7_str raw, bool *warned, char *why,
                 size_t whysz);

/* ---------------------------------------------------------------- times */

/* Convert an HL7 TS/DTM, YYYY[MM[DD[HH[MM[SS[.S[S[S[S]]]]]]]]][+/-ZZZZ],
 * to canonical RFC 3339 UTC "YYYY-MM-DDThh:mm:ss.mmmZ" (hov_rfc3339_format)
 * in out (>= 32 bytes). A value without an offset is Europe/London local
 * time (domain 4.3); in the repeated hour when the clocks go back the first
 * occurrence is taken and *ambiguous (may be NULL) set true; a local time
 * that does not exist (the skipped spring hour) is an error. Missing parts
 * default to the earliest (month 01, day 01, 00:00:00). Returns false with
 * why filled ("not a real date: month 13") when raw is not a valid TS. */
bool hl7_ts_to_rfc3339(hl7_str raw, char out[32], bool *ambiguous, char *why,
                       size_t whysz);
/* Convert an HL7 DT (YYYYMMDD; a TS is accepted and its date part used) to
 * "YYYY-MM-DD" in out (>= 11 bytes). Returns false with why filled when it
 * is not a real calendar date. */
bool hl7_dt_to_date(hl7_str raw, char out[11], char *why, size_t whysz);
/* Format unix_ms as an HL7 TS in UTC: "YYYYMMDDhhmmss+0000" (out >= 20). */
void hl7_ts_format(uint64_t unix_ms, char out[20]);

/* -------------------------------------------------------------- builder */

/* Builds one message segment by segment, escaping text with the builder's
 * delimiters. The cursor only moves forward; hl7b_at appends whatever
 * separators are needed to reach a position. Errors (out of memory) are
 * sticky: every later call is a no-op and hl7b_finish reports it. */
typedef struct hl7_builder {
    hl7_delims d;
    char *buf;
    size_t len, cap;
    bool oom;
    /* cursor within the open segment */
    bool open;
    bool is_msh;
    unsigned field, rep, comp, sub;
} hl7_builder;

void hl7b_init(hl7_builder *b, const hl7_delims *d); /* d NULL: default */
void hl7b_free(hl7_builder *b);
/* Start a segment (ending the one open with CR). For "MSH" writes
 * "MSH|^~\&" and leaves the cursor at MSH-2, so the next hl7b_at(b, 3...)
 * writes MSH-3. */
void hl7b_seg(hl7_builder *b, const char *id);
/* Move the cursor to field (from 1), rep (from 0), comp (from 1), sub
 * (from 1). Must not move backwards (a programming error: abort). */
void hl7b_at(hl7_builder *b, unsigned field, unsigned rep, unsigned comp,
             unsigned sub);
/* Append text at the cursor, escaping the delimiters (\F\ \S\ \T\ \R\ \E\)
 * and turning "\n" into \.br\ ; "\r" is dropped. NULL appends nothing. */
void hl7b_text(hl7_builder *b, const char *utf8);
/* Append bytes verbatim (already HL7: may hold separators). */
void hl7b_raw(hl7_builder *b, const char *s);
/* Added: as hl7b_raw, for a slice that is not NUL-terminated (such as an
 * hl7_get result copied from another message); NUL bytes are kept. */
void hl7b_raw_str(hl7_builder *b, hl7_str s);
/* hl7b_at(b, field, 0, comp, 1) then hl7b_text(b, text). */
void hl7b_put(hl7_builder *b, unsigned field, unsigned comp, const char *text);
/* End the open segment with CR and hand the message over: *out (owned,
 * malloc'd, not NUL-terminated) and *len. Returns 0, or -1 out of memory.
 * The builder is empty afterwards and may be reused after hl7b_init. */
int hl7b_finish(hl7_builder *b, uint8_t **out, size_t *len);

/* ------------------------------------------------------------------ ACK */

typedef struct hl7_ack_opts {
    /* "AA", "AE", "AR", or "CA", "CE", "CR" in enhanced mode. */
    const char *code;
    /* MSA-3 text (cut to 80 characters), NULL for none. */
    const char *text;
    /* ERR entries: errs[0..nerr-1]; MSA-6 carries errs[0] (v2.3-2.4). In
     * v2.3 to v2.4 one ERR segment with one ERR-1 repetition per entry
     * (seg^seq^field^code&name&HL70357); from v2.5 one ERR segment per
     * entry: ERR-2 location, ERR-3 code^name^HL70357, ERR-4 severity,
     * ERR-7 and ERR-8 the text. */
    const hl7_error *errs;
    size_t nerr;
    /* From v2.5, severity for ERR-4: 'E' (default when 0) or 'W' (a
     * warning on an AA, domain 2.1). */
    char severity;
    /* MSH-3/MSH-4 of the acknowledger; NULL: "HANDOVER". */
    const char *app, *facility;
    /* MSH-10 of the ACK: a new unique id (caller makes it). */
    const char *control_id;
    uint64_t now_ms; /* MSH-7 */
} hl7_ack_opts;

/* Build the ACK answering orig (domain 5.6): the original's delimiters
 * (the first four encoding characters) and character set; MSH-5/MSH-6 copy
 * the original MSH-3/MSH-4; MSH-9 "ACK^<trigger>^ACK"; MSH-11 and MSH-12
 * copied; MSH-15/16 "NE" in enhanced mode; MSA-2 echoes MSH-10 in full.
 * orig NULL (no usable MSH): "|^~\&", MSH-12 "2.4", MSH-5, MSH-6 and
 * MSA-2 empty, trigger empty. Returns 0 and *out and *len (owned, malloc'd),
 * or -1 out of memory. */
int hl7_ack_build(const hl7_msg *orig, const hl7_ack_opts *o, uint8_t **out,
                  size_t *len);

/* A parsed ACK received from a partner (outbound side, domain 5.6). */
typedef struct hl7_ack_info {
    char code[3];     /* "AA", "AE", "AR", "CA", "CE", "CR" */
    char control[65]; /* MSA-2 */
    int err_code;     /* ERR-3 (v2.5+), else ERR-1.4 or MSA-6; 0: none */
    char text[256];   /* ERR-8/ERR-7, else ERR-1.4.2, else MSA-3 */
} hl7_ack_info;

/* Read an ACK message (already parsed). Returns 0, or -1 with err filled
 * when it is not an ACK (no MSA, MSA-1 not in table 0008). */
int hl7_ack_read(const hl7_msg *m, hl7_ack_info *out, hl7_error *err);

#endif
