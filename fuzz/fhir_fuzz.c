/* libFuzzer target for the GP adapter's FHIR mapping (adapters/gp/fhir_in.h
 * and fhir_out.h).
 *
 * The first byte chooses what the rest is:
 *   bit 7 clear  a request body for fhir_in. Bits 0-1 pick the endpoint
 *                (ServiceRequest, DeviceRequest, Task, message), bits 2-4
 *                the Content-Type (six accepted forms, none, latin1), bit 5
 *                a 512-byte body limit, bit 6 a configured CES catalogue.
 *                An event that results is packed, unpacked and given to
 *                fhir_out.
 *   bit 7 set    a serialised handover.Event, as the hub delivers it, given
 *                to fhir_out directly (discharges included, which fhir_in
 *                never produces).
 * Beyond the sanitisers, the target checks properties that must hold for
 * any input, and traps when one does not:
 *  - fhir_in: status 0 exactly when an event is returned, with no issue, a
 *    lowercase UUID event id, correlation_id equal to it for a request and
 *    empty for an outcome, and the identifier it was named by; otherwise
 *    400, 413, 415, 422 or 503 with at least one issue and no event;
 *  - every OperationOutcome renders and parses back as JSON;
 *  - mapping the same input twice gives the same event, byte for byte
 *    (event ids must be reproducible for deduplication, domain 3.8);
 *  - a packed event unpacks and packs again to the same bytes;
 *  - fhir_out: 0 gives a JSON object that parses, with the If-None-Exist
 *    value naming the event id; -1 gives a reason; mapping twice gives the
 *    same bytes.
 *
 * Build (runs and figures: docs/fuzzing.md, once the row is added):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude -Ilib
 *   -Iadapters/gp -Ibuild/proto -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE
 *   fuzz/fhir_fuzz.c adapters/gp/fhir_in.c adapters/gp/fhir_out.c
 *   lib/err.c lib/ident.c lib/map.c lib/str.c lib/timeutil.c
 *   build/proto/handover.pb-c.c -ljansson -lsodium -lprotobuf-c -lcrypto
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fhir_in.h"
#include "fhir_out.h"
#include "handover/ident.h"

#define CHECK(cond)                                                            \
    do {                                                                       \
        if (!(cond))                                                           \
            __builtin_trap();                                                  \
    } while (0)

static const char *const content_types[8] = {
    "application/fhir+json",
    "application/fhir+json; charset=utf-8",
    "application/json",
    "application/fhir+json; fhirVersion=4.0; charset=UTF-8",
    "Application/JSON;charset=\"utf-8\"",
    "application/fhir+json;",
    NULL,
    "application/fhir+json; charset=latin1",
};

static const char *const catalogue[] = {"BED-PROF-01", "COMMODE-STD",
                                        "TOILET-RAISE-FR", NULL};

static const fhir_out_opts out_opts = {
    .destination = "Z99001",
    .destination_name = "Aldercote Surgery",
    .destination_endpoint = "https://gp-system.example/Z99001/fhir",
    .now_ms = 1742000000000ULL,
};

static bool
parses(const char *text, size_t len, bool object)
{
    json_error_t je;
    json_t *doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    bool ok = doc != NULL && (!object || json_is_object(doc));
    json_decref(doc);
    return ok;
}

static void
check_outcome(const fhir_in_outcome *oo)
{
    char *text = fhir_in_outcome_json(oo);
    if (text == NULL)
        return; /* out of memory */
    CHECK(parses(text, strlen(text), true));
    free(text);
}

static uint8_t *
pack(const Handover__Event *ev, size_t *len)
{
    *len = handover__event__get_packed_size(ev);
    uint8_t *buf = malloc(*len > 0 ? *len : 1);
    if (buf != NULL)
        CHECK(handover__event__pack(ev, buf) == *len);
    return buf;
}

/* fhir_out on ev, twice: same answer, and a document that parses. */
static void
map_out(const Handover__Event *ev)
{
    fhir_out_result a, b;
    char why[256], why2[256];
    int rc = fhir_out(ev, &out_opts, &a, why, sizeof why);
    int rc2 = fhir_out(ev, &out_opts, &b, why2, sizeof why2);
    CHECK(rc == rc2);
    if (rc == 0) {
        CHECK(a.body != NULL && a.len == strlen(a.body));
        CHECK(a.len == b.len && memcmp(a.body, b.body, a.len) == 0);
        CHECK(parses(a.body, a.len, true));
        CHECK(strstr(a.if_none_exist, ev->event_id) != NULL);
        CHECK(a.path[0] != '\0');
    } else if (rc == -1) {
        CHECK(a.body == NULL && why[0] != '\0');
    }
    fhir_out_result_free(&a);
    fhir_out_result_free(&b);
}

static void
check_event(const fhir_in_result *r)
{
    const Handover__Event *ev = r->event;
    CHECK(r->oo.n == 0 && r->oo.more == 0);
    CHECK(hov_uuid_valid(ev->event_id));
    CHECK(strcmp(ev->schema, "handover.event.v1") == 0);
    CHECK(r->identifier[0] != '\0' && r->resource_type[0] != '\0');
    if (ev->body_case == HANDOVER__EVENT__BODY_OUTCOME) {
        CHECK(ev->correlation_id[0] == '\0');
        CHECK(hov_uuid_valid(ev->in_reply_to));
        CHECK(strcmp(r->resource_type, "Task") == 0);
    } else {
        CHECK(strcmp(ev->correlation_id, ev->event_id) == 0);
        CHECK(ev->in_reply_to[0] == '\0');
        CHECK(ev->body_case == HANDOVER__EVENT__BODY_REFERRAL ||
              ev->body_case == HANDOVER__EVENT__BODY_EQUIPMENT_ORDER);
    }
    /* The id is the version 5 UUID over fhir|<identifier> (3.8). */
    char name[FHIR_IN_IDENT_CAP + 8], id[37];
    size_t n = strlen(r->identifier);
    memcpy(name, "fhir|", 5);
    memcpy(name + 5, r->identifier, n);
    hov_error err = {0};
    if (hov_uuid_v5(HOV_EVENT_ID_NS, name, n + 5, id, &err) == HOV_OK)
        CHECK(strcmp(id, ev->event_id) == 0);
}

static void
fuzz_request(uint8_t mode, const uint8_t *data, size_t size)
{
    fhir_in_opts o = {.today = "2025-03-20"};
    if (mode & 0x20)
        o.max_body = 512;
    if (mode & 0x40)
        o.catalogue = catalogue;
    fhir_in_endpoint ep = (fhir_in_endpoint)(mode & 3);
    const char *ct = content_types[(mode >> 2) & 7];

    fhir_in_result r;
    int status = fhir_in(ep, data, size, ct, &o, &r);
    CHECK(status == r.status);
    check_outcome(&r.oo);
    if (status != 0) {
        CHECK(r.event == NULL);
        CHECK(r.oo.n >= 1);
        CHECK(status == 400 || status == 413 || status == 415 ||
              status == 422 || status == 503);
        fhir_in_result_free(&r);
        return;
    }
    CHECK(r.event != NULL);
    check_event(&r);

    size_t len;
    uint8_t *packed = pack(r.event, &len);
    fhir_in_result again;
    if (fhir_in(ep, data, size, ct, &o, &again) == 0 && packed != NULL) {
        size_t len2;
        uint8_t *packed2 = pack(again.event, &len2);
        if (packed2 != NULL)
            CHECK(len == len2 && memcmp(packed, packed2, len) == 0);
        free(packed2);
    }
    fhir_in_result_free(&again);
    if (packed != NULL) {
        /* As the hub would deliver it: through the wire format. */
        Handover__Event *ev = handover__event__unpack(NULL, len, packed);
        CHECK(ev != NULL);
        size_t len3;
        uint8_t *packed3 = pack(ev, &len3);
        if (packed3 != NULL)
            CHECK(len3 == len && memcmp(packed3, packed, len) == 0);
        free(packed3);
        map_out(ev);
        handover__event__free_unpacked(ev, NULL);
    }
    free(packed);
    fhir_in_result_free(&r);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t mode = data[0];
    if (mode & 0x80) {
        Handover__Event *ev = handover__event__unpack(NULL, size - 1, data + 1);
        if (ev != NULL) {
            map_out(ev);
            handover__event__free_unpacked(ev, NULL);
        }
        return 0;
    }
    fuzz_request(mode, data + 1, size - 1);
    return 0;
}
