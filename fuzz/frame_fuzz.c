/* libFuzzer target for what the hub reads from an adapter: a hub protocol
 * Frame, and inside a Publish the Event, through the same steps as
 * hub/broker.c takes them before anything touches the store:
 * hov_frame_decode, validate_event, route_match against the built-in
 * default configuration, and route_view_pack for every destination's view.
 *
 * The first byte chooses what the rest is:
 *   bit 0 clear  a whole Frame, as it arrives on the socket;
 *   bit 0 set    an Event, wrapped here into a Publish frame (so the
 *                seeds can be the serialised events of fuzz/corpus/fhir);
 *   bits 1-2     for an outcome, the type of the answered event
 *                (referral, discharge, equipment_order, outcome).
 * Beyond the sanitisers, the target traps when one of these fails:
 *  - hov_frame_decode returns HOV_OK, HOV_EMALFORMED or HOV_EFRAME, and
 *    a Frame only with HOV_OK;
 *  - every error message is one non-empty NUL-terminated line;
 *  - validate_event and route_match return a code from their contracts;
 *  - a routed event has 1..ROUTE_MAX_DESTS destinations (none only for an
 *    outcome to a discharge, which is recorded, not sent back), each a
 * configured organisation of the agency routing gave it, or a dead copy with a
 *    reason;
 *  - every view of a valid event unpacks again as an Event with the same
 *    event_id, and the "full" view is the stored bytes themselves.
 *
 * Build: see fuzz/CMakeLists.txt (links hub_core); runs and figures are
 * in docs/fuzzing.md.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "handover.pb-c.h"
#include "handover/frame.h"
#include "route.h"
#include "validate.h"

#define CHECK(cond)                                                            \
    do {                                                                       \
        if (!(cond))                                                           \
            __builtin_trap();                                                  \
    } while (0)

static config cfg;
static int cfg_ready;

static const char *const answered[4] = {"referral", "discharge",
                                        "equipment_order", "outcome"};

static void
check_message(const hov_error *err)
{
    size_t n = strnlen(err->msg, sizeof err->msg);
    CHECK(n > 0 && n < sizeof err->msg);
    CHECK(memchr(err->msg, '\n', n) == NULL);
}

static void
check_views(const route_result *r, const uint8_t *stored, size_t len,
            const char *event_id)
{
    for (size_t i = 0; i < r->n; i++) {
        const route_dest *d = &r->dest[i];
        if (d->dead) {
            CHECK(d->reason[0] != '\0');
            continue;
        }
        const config_org *org = config_org_find(&cfg, d->code);
        CHECK(org != NULL && org->agency == d->agency);
        const uint8_t *out = NULL;
        size_t outlen = 0;
        bool owned = false;
        hov_error err = {0};
        hov_err rc = route_view_pack(d->view, stored, len, "2026-11-24", &out,
                                     &outlen, &owned, &err);
        if (rc == HOV_ENOMEM)
            continue;
        CHECK(rc == HOV_OK);
        if (strcmp(d->view, "full") == 0)
            CHECK(!owned && out == stored && outlen == len);
        Handover__Event *v = handover__event__unpack(NULL, outlen, out);
        CHECK(v != NULL);
        CHECK(strcmp(v->event_id, event_id) == 0);
        handover__event__free_unpacked(v, NULL);
        if (owned)
            free((void *)out);
    }
}

static void
check_event(const uint8_t *data, size_t len, const char *answered_type)
{
    Handover__Event *ev = handover__event__unpack(NULL, len, data);
    if (ev == NULL)
        return;
    static const validate_opts vopts = {.allow_test_nhs_numbers = true};
    hov_error err = {0};
    hov_err rc = validate_event(ev, &vopts, &err);
    CHECK(rc == HOV_OK || rc == HOV_EMISSING || rc == HOV_EINVAL ||
          rc == HOV_ECODE || rc == HOV_ENHSNUMBER || rc == HOV_EORGCODE);
    if (rc != HOV_OK) {
        check_message(&err);
        handover__event__free_unpacked(ev, NULL);
        return;
    }
    route_reply reply = {.source_org = "Z99001", .event_type = answered_type};
    route_result r;
    memset(&r, 0, sizeof r);
    rc = route_match(&cfg, ev, &reply, &r, &err);
    CHECK(rc == HOV_OK || rc == HOV_EUNKNOWNDEST || rc == HOV_ENOROUTE ||
          rc == HOV_EMISSING || rc == HOV_ECONSENT);
    if (rc != HOV_OK) {
        check_message(&err);
    } else {
        /* An outcome to a discharge is recorded, not sent back (route.h):
         * the only accepted event with no destination. */
        bool recorded_only = strcmp(ev->event_type, "outcome") == 0 &&
                             strcmp(answered_type, "discharge") == 0;
        CHECK(r.n <= ROUTE_MAX_DESTS && (r.n >= 1 || recorded_only));
        check_views(&r, data, len, ev->event_id);
    }
    handover__event__free_unpacked(ev, NULL);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!cfg_ready) {
        hov_error err = {0};
        CHECK(config_load(&cfg, NULL, &err) == HOV_OK);
        cfg.allow_test_nhs_numbers = true;
        cfg_ready = 1;
    }
    if (size < 1)
        return 0;
    uint8_t mode = data[0];
    const char *answered_type = answered[(mode >> 1) & 3];
    data++;
    size--;

    uint8_t *wrapped = NULL;
    if (mode & 1) {
        /* Wrap the event in a Publish frame, as the client library does. */
        Handover__Publish pub = HANDOVER__PUBLISH__INIT;
        pub.seq = 7;
        pub.event.data = (uint8_t *)data;
        pub.event.len = size;
        Handover__Frame f = HANDOVER__FRAME__INIT;
        f.kind_case = HANDOVER__FRAME__KIND_PUBLISH;
        f.publish = &pub;
        size_t n = handover__frame__get_packed_size(&f);
        wrapped = malloc(n > 0 ? n : 1);
        if (wrapped == NULL)
            return 0;
        CHECK(handover__frame__pack(&f, wrapped) == n);
        data = wrapped;
        size = n;
    }

    Handover__Frame *f = NULL;
    hov_error err = {0};
    hov_err rc = hov_frame_decode(data, size, NULL, &f, &err);
    CHECK(rc == HOV_OK || rc == HOV_EMALFORMED || rc == HOV_EFRAME ||
          rc == HOV_ENOMEM);
    CHECK((rc == HOV_OK) == (f != NULL));
    if (rc != HOV_OK) {
        if (rc != HOV_ENOMEM)
            check_message(&err);
    } else {
        if (f->kind_case == HANDOVER__FRAME__KIND_PUBLISH)
            check_event(f->publish->event.data, f->publish->event.len,
                        answered_type);
        handover__frame__free_unpacked(f, NULL);
    }
    free(wrapped);
    return 0;
}
