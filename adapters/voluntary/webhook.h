/* Signed webhooks for handover-voluntary (domain 8): the signature, the
 * replay window, the canonical event as JSON for an outgoing referral, and
 * an incoming outcome webhook as an event.
 *
 * Signature (domain 8.2): lowercase hex HMAC-SHA256 keyed with the shared
 * secret's bytes over "<Handover-Timestamp as sent>." followed by the raw
 * body bytes, sent as "Handover-Signature: v1=<hex>". Verification works on
 * the raw bytes received, never on re-serialised JSON, and compares the
 * decoded 32 bytes in constant time (sodium_memcmp).
 *
 * Everything here is pure (no I/O, no clock: callers pass "now") and
 * thread-safe once libsodium is initialised (sodium_init, which
 * webhook_sign and webhook_verify call; it is idempotent).
 *
 * Caveat: the secrets handed in are borrowed and never logged or copied
 * into error messages; nor are bodies, which hold patient data.
 */
#ifndef HANDOVER_VOLUNTARY_WEBHOOK_H
#define HANDOVER_VOLUNTARY_WEBHOOK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "handover.pb-c.h"

/* "v1=" + 64 hex digits + NUL. */
#define WEBHOOK_SIG_CAP 68

/* The replay window of domain 8.3, in seconds. */
#define WEBHOOK_REPLAY_WINDOW_S 300

/* Sign: write "v1=<64 lowercase hex>" into out for key (keylen bytes), the
 * timestamp text ts exactly as it will be sent, and body (len bytes).
 * Borrows everything for the call. Returns false only when libsodium
 * cannot be initialised. */
bool webhook_sign(const uint8_t *key, size_t keylen, const char *ts,
                  const void *body, size_t len, char out[WEBHOOK_SIG_CAP]);

/* Does header (one Handover-Signature value, an HTTP list such as
 * "v1=<a>, v1=<b>") hold a v1 signature of ts "." body under key? Elements
 * other than v1= are ignored, hex is accepted in either case, and a value
 * that is not 64 hex digits matches nothing (domain 8.2). Each candidate is
 * compared in constant time on the decoded bytes. NULL header: false. */
bool webhook_verify(const uint8_t *key, size_t keylen, const char *ts,
                    const void *body, size_t len, const char *header);

/* Parse a Handover-Timestamp: 1 to 12 decimal digits, nothing else (no
 * sign, no blanks, no fraction). false when malformed. */
bool webhook_timestamp_parse(const char *s, int64_t *out);

/* Is the timestamp ts within window_s seconds of now_s, either way? */
bool webhook_timestamp_fresh(int64_t ts, int64_t now_s, int64_t window_s);

/* Is a Content-Type acceptable for an incoming webhook: application/json,
 * optionally with charset=utf-8, any case (domain 8.5)? NULL: false. */
bool webhook_content_type_ok(const char *ct);

/* The canonical event ev as compact JSON (snake_case keys, the field order
 * of samples/webhook/outgoing-referral.body.json), UTF-8 without a BOM or
 * a trailing newline. Every non-empty field is written; empty strings,
 * absent sub-messages and empty lists are left out. The output depends on
 * ev alone, so a redelivery of the same event is the same bytes.
 * Returns 0 with *out owned (free with free()) and its length in *len;
 * -1 with a reason in why when ev holds text jansson refuses (not UTF-8),
 * which a hub-validated event never does; -2 when out of memory. */
int webhook_event_json(const Handover__Event *ev, char **out, size_t *len,
                       char *why, size_t whysz);

/* An incoming outcome webhook as an event, ready to pack. Holds the parsed
 * JSON that the event's strings point into. */
typedef struct webhook_in {
    Handover__Event ev;
    Handover__Source source;
    Handover__OrgRef org;
    Handover__Person author;
    Handover__Patient patient;
    Handover__Outcome outcome;
    Handover__OutcomeItem *items; /* owned array */
    Handover__OutcomeItem **item_ptrs;
    char event_id[37];
    char sender[48];
    char recorded_at[32];
    void *json; /* json_t *, owned */
} webhook_in;

/* The HTTP status for a body refused by webhook_outcome_parse. */
#define WEBHOOK_BAD_JSON   400
#define WEBHOOK_BAD_SCHEMA 422

/* Map an outcome body (the raw bytes; one leading UTF-8 BOM is skipped)
 * sent by sender (Handover-Sender, already authenticated) with
 * idempotency_key (Idempotency-Key) at timestamp ts_s into *in. The event
 * id is the version 5 UUID of "webhook|<sender>|<idempotency_key>" (domain
 * 3.8); correlation_id is left empty for the hub to fill; recorded_at is
 * ts_s. source.org.code is the sender: a body naming another organisation
 * is refused. Returns 0 (free in with webhook_in_free), or an HTTP status
 * with a sentence in why: 400 (not JSON by domain section 3's rules:
 * duplicate keys, \u0000, malformed), 422 (a field missing or of the wrong
 * type, another sender), 503 (out of memory). On failure nothing needs
 * freeing. Borrows body, sender and idempotency_key for the call. */
int webhook_outcome_parse(const uint8_t *body, size_t len, const char *sender,
                          const char *idempotency_key, int64_t ts_s,
                          webhook_in *in, char *why, size_t whysz);

void webhook_in_free(webhook_in *in);

#endif
