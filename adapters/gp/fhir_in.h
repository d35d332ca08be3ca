/* Inbound mapping for handover-gp: a FHIR R4 request from a GP clinical
 * system to a canonical handover.Event (domain brief 3, 4.1, 4.3, 6.1 to
 * 6.5).
 *
 * fhir_in is pure: it reads the endpoint, the Content-Type value and the
 * body bytes, and gives back either an event or an HTTP status with an
 * OperationOutcome. It does no I/O and reads no clock, except for today's
 * date when the caller does not inject one.
 *
 * Check order (domain 6.5, Convention):
 *  1. Content-Type (415 not-supported); 2. size (413 too-long);
 *  3. JSON: one leading UTF-8 byte-order mark is skipped; a parse error, a
 *     duplicate key or \u0000 is 400 structure naming the line and column;
 *  4. resourceType: missing or not the endpoint's, 400 invalid;
 *  5. the walk over the resource(s). A value of the wrong JSON type for an
 *     element Handover reads stops everything at once (400 structure):
 *     nothing after it can be trusted. Every Handover rule that fails is
 *     reported (422), one issue each, in document order, up to
 *     FHIR_IN_MAX_ISSUES.
 * Elements Handover does not read are not checked: Handover checks its
 * rules, not the full UK Core profiles (domain 6.1).
 *
 * What the hub decides stays the hub's: the 999 test range of NHS numbers,
 * whether destinations are configured, whether in_reply_to names an event
 * delivered to the sender, and deduplication (200/409). fhir_in does check
 * that the source organisation is one the gp agency may publish as, so the
 * sender learns it at the element that named it.
 *
 * Diagnostics never repeat a name, date of birth, address, phone number or
 * free text; codes, identifiers and the NHS number are echoed (cut to a few
 * dozen characters) so the sender can find the value.
 */
#ifndef HANDOVER_GP_FHIR_IN_H
#define HANDOVER_GP_FHIR_IN_H

#include <stdbool.h>
#include <stddef.h>

#include "handover.pb-c.h"
#include "handover/err.h"

/* Issues kept in one OperationOutcome; more are counted in `more`. */
#define FHIR_IN_MAX_ISSUES 20
#define FHIR_IN_DIAG_CAP   256
#define FHIR_IN_EXPR_CAP   160

/* Identifier systems longer than this are refused (422 value): the system
 * is part of the event id's name and of the If-None-Exist search. */
#define FHIR_IN_SYSTEM_MAX 200
/* Business identifier values (domain 3.1 source.ref). */
#define FHIR_IN_VALUE_MAX 64
/* "system|value" */
#define FHIR_IN_IDENT_CAP (FHIR_IN_SYSTEM_MAX + 1 + FHIR_IN_VALUE_MAX + 1)

/* The hub's canonical base (domain 6.2: a placeholder, configurable). */
#define FHIR_IN_DEFAULT_BASE "https://handover.example/fhir"
/* Request bodies over this are 413 (domain 6.5). */
#define FHIR_IN_DEFAULT_MAX_BODY (1024u * 1024u)

/* The four POST endpoints of domain 6.1. */
typedef enum fhir_in_endpoint {
    FHIR_IN_SERVICE_REQUEST, /* POST [base]/ServiceRequest */
    FHIR_IN_DEVICE_REQUEST,  /* POST [base]/DeviceRequest */
    FHIR_IN_TASK,            /* POST [base]/Task */
    FHIR_IN_MESSAGE,         /* POST [base] or [base]/$process-message */
} fhir_in_endpoint;

/* One OperationOutcome.issue. */
typedef struct fhir_in_issue {
    const char *severity; /* static: "fatal", "error", "warning", ... */
    const char *code;     /* static: R4 issue-type ("value", "structure") */
    char diagnostics[FHIR_IN_DIAG_CAP];
    /* FHIRPath. expression[0] is relative to the resource that holds the
     * element ("Patient.identifier"), which is how a sender reads it;
     * expression[1], when not empty, is the same element from the root of
     * the request ("ServiceRequest.contained[0].identifier",
     * "Bundle.entry[2].resource.identifier"), which says which of several
     * resources of one type it is. Both empty: the request as a whole. */
    char expression[2][FHIR_IN_EXPR_CAP];
} fhir_in_issue;

/* An OperationOutcome under construction: issues in document order. */
typedef struct fhir_in_outcome {
    fhir_in_issue issues[FHIR_IN_MAX_ISSUES];
    size_t n;
    size_t more; /* further problems found and not kept */
} fhir_in_outcome;

typedef struct fhir_in_opts {
    /* ODS codes the gp agency may publish as (domain 3.1), NULL-
     * terminated. NULL: Z99001, Z99002, Z99003. */
    const char *const *gp_orgs;
    /* Today's Europe/London date "YYYY-MM-DD" for the date-of-birth check;
     * NULL: the real date (tests inject one). */
    const char *today;
    /* The hub's canonical base, without a trailing '/'; NULL:
     * FHIR_IN_DEFAULT_BASE. Handover's code and identifier systems are
     * <base>/CodeSystem/... and <base>/Id/... */
    const char *base;
    /* Body limit in bytes; 0: FHIR_IN_DEFAULT_MAX_BODY. */
    size_t max_body;
    /* CES catalogue item codes, NULL-terminated. NULL: item codes are not
     * checked (domain 3.5: the CES answers an unknown one). */
    const char *const *catalogue;
} fhir_in_opts;

typedef struct fhir_in_result {
    /* 0: event is set. Otherwise the HTTP status to answer with oo:
     * 400, 413, 415, 422, or 503 (out of memory; issue transient, the
     * sender resends and the event id makes the resend harmless). */
    int status;
    /* The event, owned: every string and sub-message is malloc'd, so
     * handover__event__free_unpacked(event, NULL) frees it all (done by
     * fhir_in_result_free). Unset strings are protobuf_c_empty_string. */
    Handover__Event *event;
    /* The focal resource's type ("ServiceRequest", "DeviceRequest",
     * "Task"), for Location: /fhir/<Type>/<event id>. */
    char resource_type[16];
    /* "system|value" of the business identifier the event id was derived
     * from (DeviceRequest: groupIdentifier when present), to compare with
     * an If-None-Exist header. */
    char identifier[FHIR_IN_IDENT_CAP];
    fhir_in_outcome oo;
} fhir_in_result;

/* Map one request. Borrows body (len bytes, need not be NUL-terminated),
 * content_type (the header's value; NULL when the request had none) and o
 * (NULL: every default) for the call. Fills r, which fhir_in clears first.
 * Returns r->status. Always call fhir_in_result_free afterwards. Thread-
 * safe: no state outside r. */
int fhir_in(fhir_in_endpoint ep, const void *body, size_t len,
            const char *content_type, const fhir_in_opts *o, fhir_in_result *r);

/* Free r->event (r itself is the caller's). NULL is a no-op. */
void fhir_in_result_free(fhir_in_result *r);

/* Is content_type a media type the FHIR endpoints accept (domain 6.1):
 * application/fhir+json or application/json, with charset=utf-8 and
 * fhirVersion=4.0 optional in any order; type, parameter names and the
 * charset value case-insensitive? NULL is not. For an HTTP layer that
 * wants to refuse before it reads the body; fhir_in checks it again. */
bool fhir_in_media_type_ok(const char *content_type);

/* Append an issue to oo (for the HTTP layer's own answers: the hub's Nak,
 * 409 conflict, 503 transient). severity and code must be static strings;
 * expression may be NULL. Past FHIR_IN_MAX_ISSUES only oo->more grows. */
void fhir_in_outcome_add(fhir_in_outcome *oo, const char *severity,
                         const char *code, const char *expression,
                         const char *fmt, ...) HOV_PRINTF(5, 6);

/* oo as a compact OperationOutcome JSON document, UTF-8, no trailing
 * newline. An empty oo gives one issue of severity information ("all
 * checks passed"); oo->more adds an information issue saying how many
 * were left out. Returns owned text, free with free(); NULL out of
 * memory. */
char *fhir_in_outcome_json(const fhir_in_outcome *oo);

#endif
