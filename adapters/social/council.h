/* Council files (domain 7): the pure part of handover-social, with no I/O,
 * so the unit tests and the fuzzer can drive it directly.
 *
 * - council_name_check: is an inbox file name well formed (7.1)?
 * - council_csv_*: an RFC 4180 reader that keeps physical line numbers
 *   (7.2, 7.4), and council_outcomes_parse, which turns a whole outcomes
 *   file into events and a list of line errors.
 * - council_json_in: one canonical JSON event file (7.3) to an event.
 * - council_json_out: an event (in the receiving view) to its JSON file.
 *
 * Every error text is one line a person can act on, and never quotes a
 * record's contents beyond the field named (an NHS number at most).
 */
#ifndef HANDOVER_COUNCIL_H
#define HANDOVER_COUNCIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "handover.pb-c.h"
#include "handover/err.h"

#define COUNCIL_CSV_COLUMNS          14
#define COUNCIL_CSV_MAX_ROWS_DEFAULT 10000

/* The outcomes header, in order (domain 7.2). */
extern const char *const council_csv_header[COUNCIL_CSV_COLUMNS];

typedef enum council_kind {
    COUNCIL_KIND_OUTCOMES = 1, /* outcomes_<org>_<time>_<seq>.csv */
    COUNCIL_KIND_EVENT = 2,    /* referral_<org>_<time>_<seq>.json */
} council_kind;

/* Check an inbox file name against 7.1. senders (NULL-terminated) are the
 * codes the social agency may publish as. On success *kind and sender
 * (the code in the name) are filled and true is returned; otherwise why
 * names the part of the name that is wrong. */
bool council_name_check(const char *name, const char *const *senders,
                        council_kind *kind, char sender[40], char *why,
                        size_t whysz);

/* An RFC 4180 reader over a buffer (borrowed until council_csv_fini). */
typedef struct council_csv {
    const char *p, *end;
    size_t line;   /* physical line of the next byte */
    char **fields; /* the current record's fields, NUL-terminated */
    size_t n, cap; /* fields in use, allocated */
    char *buf;     /* storage the fields point into */
    size_t buf_cap;
} council_csv;

void council_csv_init(council_csv *c, const char *data, size_t len);
void council_csv_fini(council_csv *c);

/* Read the next record, skipping empty lines. Returns 1 with c->fields,
 * c->n and *line (the record's first physical line), 0 at the end, or -1
 * for a malformed record (why says how; the reader has moved past it and
 * may be called again); HOV_ENOMEM shows as -1 with "out of memory". */
int council_csv_next(council_csv *c, size_t *line, char *why, size_t whysz);

/* One problem in a file, for <name>.errors.txt. */
typedef struct council_problem {
    size_t line; /* 0: the whole file */
    char text[400];
} council_problem;

/* One event made from one record. */
typedef struct council_record {
    size_t line;
    Handover__Event *event; /* owned; council_event_free */
    char event_id[37];
} council_record;

typedef struct council_file {
    council_record *records; /* good ones, in file order */
    size_t n_records;
    council_problem *problems;
    size_t n_problems;
    bool rejected; /* the whole file is bad: nothing may be published */
} council_file;

void council_file_free(council_file *f);

/* Parse a whole outcomes file (BOM, header, rows) sent by sender. Fills
 * *out (free with council_file_free). HOV_ENOMEM only; bad input is in
 * out->problems. */
HOV_NODISCARD hov_err council_outcomes_parse(const char *data, size_t len,
                                             const char *sender,
                                             size_t max_rows, council_file *out,
                                             hov_error *err);

/* Parse one JSON event file sent by sender (7.3). strict false is for
 * reading Handover's own outbound files (tests): event_id and the hub's
 * fields are then kept, and the sender is not checked. */
HOV_NODISCARD hov_err council_json_in(const char *data, size_t len,
                                      const char *sender, bool strict,
                                      council_file *out, hov_error *err);

/* The JSON file for ev (2-space indent, a final newline). Returns owned
 * (free), or NULL when out of memory. */
char *council_json_out(const Handover__Event *ev);

/* "equipment-order_<event_id>.json" for ev into out. false when the type
 * or id is not fit for a file name. */
bool council_out_name(const Handover__Event *ev, char *out, size_t outsz);

/* Free an event made by this module. NULL is a no-op. */
void council_event_free(Handover__Event *ev);

/* Is data (len bytes, NUL bytes allowed) valid UTF-8 apart from NULs? */
bool council_utf8_valid(const char *data, size_t len);

#endif
