/* The content digest that tells a resent event from a changed one (domain
 * brief 3.8): BLAKE2b-128 over the event's protobuf bytes as the sender
 * packed them, read field by field on the wire, leaving out recorded_at
 * (transmission metadata) and the fields the hub sets itself (received_at,
 * source.agency).
 *
 * Computed only when it is needed: when an event id arrives that the hub
 * holds already, the digests of the new bytes and of the stored ones are
 * compared (the stored bytes are the sender's with the hub's fields
 * appended, which the digest leaves out). Hashing every event on arrival
 * instead cost about a twelfth of the hub's CPU for a comparison that
 * resends alone need.
 */
#ifndef HUB_DIGEST_H
#define HUB_DIGEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

/* The digest of the serialised Event in [data, data + len). False when the
 * bytes are not protobuf wire format (a decoded event's never are). */
bool digest_event(const uint8_t *data, size_t len,
                  uint8_t out[STORE_DIGEST_BYTES]);

/* True when d is the "not computed" digest (all zero) kept in the ids
 * index for an event whose stored bytes are its own reference. */
bool digest_is_lazy(const uint8_t d[STORE_DIGEST_BYTES]);

#endif
