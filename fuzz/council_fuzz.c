/* libFuzzer target for the social adapter's council files
 * (adapters/social/council.h).
 *
 * The first byte chooses what the rest is:
 *   bit 0 clear  an outcomes CSV for council_outcomes_parse; bit 4 sets a
 *                max_rows of 3, so the "too many rows" path is reachable;
 *   bit 0 set    a JSON event file for council_json_in; bit 1 clears
 *                strict (the mode used to read Handover's own files);
 *   bits 2-3     the sender: 8ZZ99 and Z9Z9Z (the sample councils), a
 *                local: code, or an empty string.
 * Beyond the sanitisers, the target checks properties that must hold for
 * any input, and traps when one does not:
 *  - the parsers return HOV_OK or HOV_ENOMEM, nothing else;
 *  - a rejected file has no records (nothing may be published, 7.2);
 *  - every problem text is one NUL-terminated line;
 *  - every record has an event whose id is the record's id; for a
 *    partner's file (strict) it is the version 5 UUID over
 *    file|<sender>|<source.ref> and source.org is the sender; the event packs,
 * unpacks and packs again to the same bytes; the unpacked copy and the original
 * are freed with council_event_free (the allocator must match protobuf-c's);
 *  - council_json_out of each event gives a JSON object that parses, and
 *    council_json_in (non-strict) reads it back to an event with the same
 *    id.
 *
 * Build: see fuzz/CMakeLists.txt (links social_core); runs and figures
 * are in docs/fuzzing.md.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "council.h"
#include "handover/ident.h"

#define CHECK(cond)                                                            \
    do {                                                                       \
        if (!(cond))                                                           \
            __builtin_trap();                                                  \
    } while (0)

static const char *const senders[4] = {"8ZZ99", "Z9Z9Z", "local:VCS-0002", ""};

static uint8_t *
pack(const Handover__Event *ev, size_t *len)
{
    *len = handover__event__get_packed_size(ev);
    uint8_t *buf = malloc(*len > 0 ? *len : 1);
    if (buf != NULL)
        CHECK(handover__event__pack(ev, buf) == *len);
    return buf;
}

/* The event's JSON file parses, and reads back (as the tests read
 * Handover's own outbound files) to the same event id. */
static void
check_json_out(const Handover__Event *ev)
{
    char *text = council_json_out(ev);
    if (text == NULL)
        return; /* out of memory, or an event the writer refuses */
    size_t n = strlen(text);
    json_error_t je;
    json_t *doc = json_loadb(text, n, JSON_REJECT_DUPLICATES, &je);
    CHECK(doc != NULL && json_is_object(doc));
    json_decref(doc);
    council_file back;
    hov_error err = {0};
    if (council_json_in(text, n, "", false, &back, &err) == HOV_OK &&
        back.n_records == 1)
        CHECK(strcmp(back.records[0].event->event_id, ev->event_id) == 0);
    council_file_free(&back);
    free(text);
}

static void
check_event(const council_record *r, const char *sender, bool strict)
{
    const Handover__Event *ev = r->event;
    CHECK(ev != NULL && ev->event_id != NULL);
    /* The record's copy of the id, cut to 36 characters at most. */
    CHECK(strncmp(ev->event_id, r->event_id, 36) == 0);
    if (strict) {
        /* A partner's event: its id is the version 5 UUID over
         * file|<sender>|<source.ref> (3.8), and it is the sender's. */
        CHECK(hov_uuid_valid(r->event_id));
        CHECK(ev->source != NULL && ev->source->org != NULL);
        CHECK(strcmp(ev->source->org->code, sender) == 0);
        char name[200], id[37];
        int n =
            snprintf(name, sizeof name, "file|%s|%s", sender, ev->source->ref);
        hov_error err = {0};
        CHECK(n > 0 && (size_t)n < sizeof name);
        if (hov_uuid_v5(HOV_EVENT_ID_NS, name, (size_t)n, id, &err) == HOV_OK)
            CHECK(strcmp(id, r->event_id) == 0);
    }

    size_t len;
    uint8_t *packed = pack(ev, &len);
    if (packed == NULL)
        return;
    Handover__Event *copy = handover__event__unpack(NULL, len, packed);
    CHECK(copy != NULL);
    size_t len2;
    uint8_t *packed2 = pack(copy, &len2);
    if (packed2 != NULL)
        CHECK(len2 == len && memcmp(packed2, packed, len) == 0);
    free(packed2);
    council_event_free(copy);
    free(packed);
    check_json_out(ev);
}

static void
check_file(hov_err rc, council_file *f, const char *sender, bool strict)
{
    CHECK(rc == HOV_OK || rc == HOV_ENOMEM);
    if (rc != HOV_OK) {
        council_file_free(f);
        return;
    }
    if (f->rejected)
        CHECK(f->n_records == 0);
    for (size_t i = 0; i < f->n_problems; i++) {
        const char *t = f->problems[i].text;
        size_t n = strnlen(t, sizeof f->problems[i].text);
        CHECK(n < sizeof f->problems[i].text && n > 0);
        CHECK(memchr(t, '\n', n) == NULL);
    }
    for (size_t i = 0; i < f->n_records; i++)
        check_event(&f->records[i], sender, strict);
    /* Free the first event by hand, as a caller taking ownership of one
     * would, then the rest through council_file_free. */
    if (f->n_records > 0) {
        council_event_free(f->records[0].event);
        f->records[0].event = NULL;
    }
    council_file_free(f);
    CHECK(f->records == NULL && f->n_records == 0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t mode = data[0];
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    const char *sender = senders[(mode >> 2) & 3];
    council_file f;
    hov_error err = {0};
    hov_err rc;
    /* Outcomes rows are always a partner's: held to the strict rules. */
    bool strict = (mode & 1) == 0 || (mode & 2) == 0;
    if (mode & 1) {
        rc = council_json_in(text, len, sender, strict, &f, &err);
    } else {
        size_t max_rows = (mode & 0x10) ? 3 : COUNCIL_CSV_MAX_ROWS_DEFAULT;
        rc = council_outcomes_parse(text, len, sender, max_rows, &f, &err);
    }
    check_file(rc, &f, sender, strict);
    return 0;
}
