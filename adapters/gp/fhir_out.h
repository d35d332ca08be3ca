/* Outbound mapping for handover-gp: a canonical handover.Event delivered to
 * the gp agency to the FHIR R4 JSON that handover-gp POSTs to the
 * practice's clinical system (domain brief 6.2 to 6.4).
 *
 *   discharge        message Bundle (MessageHeader, Encounter, Patient,
 *                    CarePlan, MedicationStatement...), POST Bundle
 *   outcome          Task (table of domain 6.3), POST Task
 *   referral         ServiceRequest with a contained Patient, POST
 *                    ServiceRequest (a copy routed to the practice)
 *   equipment_order  message Bundle (MessageHeader, Patient, one
 *                    DeviceRequest per item line sharing one
 *                    groupIdentifier), POST Bundle; a collection (action
 *                    collect) is refused: FHIR has no agreed form for it
 *
 * Every resource is identified by the event id, so a redelivery is the same
 * document byte for byte: the Bundle, Task or ServiceRequest identifier is
 * <base>/Id/event-id|<event id>, If-None-Exist names it (conditional create,
 * domain 3.8), and the fullUrls and ids of a Bundle's entries are version 5
 * UUIDs in the event id's namespace. Bundle.timestamp is the hub's
 * received_at for the same reason.
 *
 * fhir_out is pure: no I/O, and no clock unless the event has no
 * received_at and the caller passes now_ms 0. A field the event lacks (NULL
 * sub-message, empty string) is left out; a value that is present but
 * malformed (a timestamp that does not parse, text that is not UTF-8)
 * refuses the event, because a wrong time shown to a clinician is worse
 * than a dead letter an operator sees. The hub validates events before it
 * stores them, so that path means a bug upstream.
 */
#ifndef HANDOVER_GP_FHIR_OUT_H
#define HANDOVER_GP_FHIR_OUT_H

#include <stddef.h>
#include <stdint.h>

#include "handover.pb-c.h"

/* "identifier=" + base (at most 200) + "/Id/event-id|" + a UUID. */
#define FHIR_OUT_INE_CAP 280

typedef struct fhir_out_opts {
    /* The hub's canonical base, without a trailing '/', at most 200
     * characters; NULL: https://handover.example/fhir. */
    const char *base;
    /* The practice this copy is for (Deliver.destination), its display
     * name and its system's FHIR endpoint: MessageHeader.destination. NULL
     * endpoint: no destination element (R4 requires its endpoint). */
    const char *destination;
    const char *destination_name;
    const char *destination_endpoint;
    /* MessageHeader.source.version; NULL: "0.1". */
    const char *software_version;
    /* Bundle.timestamp when the event has no received_at; 0: the clock. */
    uint64_t now_ms;
} fhir_out_opts;

typedef struct fhir_out_result {
    /* The document: compact JSON, UTF-8, owned (fhir_out_result_free). */
    char *body;
    size_t len;
    /* Where to POST it, relative to the practice's FHIR base: "Bundle",
     * "Task" or "ServiceRequest". */
    char path[16];
    /* The If-None-Exist header value:
     * identifier=<base>/Id/event-id|<event id>. */
    char if_none_exist[FHIR_OUT_INE_CAP];
} fhir_out_result;

/* Build the document for ev. Borrows ev and o (NULL: defaults) for the
 * call; fills r, which fhir_out clears first. Returns 0; -1 with why
 * filled ("event <id>: ...") when the event cannot be expressed (an event
 * type or value this interface does not carry, or a malformed value),
 * which the caller settles rejected; -2 out of memory (settle retry).
 * Thread-safe. */
int fhir_out(const Handover__Event *ev, const fhir_out_opts *o,
             fhir_out_result *r, char *why, size_t whysz);

/* Free r->body. NULL is a no-op. */
void fhir_out_result_free(fhir_out_result *r);

#endif
