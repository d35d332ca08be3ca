#include "digest.h"

#include <sodium.h>

/* Protobuf wire format, as far as the digest needs it. */
enum {
    EV_RECORDED_AT =
        7, /* handover.Event field numbers (proto/handover.proto) */
    EV_RECEIVED_AT = 8,
    EV_SOURCE = 9,
    SRC_AGENCY = 2, /* handover.Source.agency */
};

static bool
wire_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    uint64_t x = 0;
    for (unsigned shift = 0; shift < 64 && *p < end; shift += 7) {
        uint8_t b = *(*p)++;
        x |= (uint64_t)(b & 0x7f) << shift;
        if ((b & 0x80) == 0) {
            *v = x;
            return true;
        }
    }
    return false;
}

/* One field on the wire: [start, tag_end) is its tag, [payload, next) its
 * value (without the length of a length-delimited one). */
typedef struct wire_field {
    uint32_t num;
    const uint8_t *tag_end, *payload, *next;
} wire_field;

/* Read the field at p; false on anything but a complete field of wire
 * type 0, 1, 2 or 5 (the only ones the schema uses). */
static bool
wire_next(const uint8_t *p, const uint8_t *end, wire_field *f)
{
    uint64_t tag, n;
    if (!wire_varint(&p, end, &tag) || (tag >> 3) == 0 || (tag >> 3) > 0xffff)
        return false;
    f->num = (uint32_t)(tag >> 3);
    f->tag_end = p;
    switch (tag & 7) {
    case 0:
        f->payload = p;
        if (!wire_varint(&p, end, &n))
            return false;
        f->next = p;
        return true;
    case 1:
        n = 8;
        break;
    case 2:
        if (!wire_varint(&p, end, &n))
            return false;
        break;
    case 5:
        n = 4;
        break;
    default:
        return false;
    }
    if (n > (uint64_t)(end - p))
        return false;
    f->payload = p;
    f->next = p + n;
    return true;
}

/* Does the source submessage in [p, end) hold its agency alone (or
 * nothing)? Malformed bytes answer false, and digest_fields reports them. */
static bool
source_only_agency(const uint8_t *p, const uint8_t *end)
{
    while (p < end) {
        wire_field f;
        if (!wire_next(p, end, &f) || f.num != SRC_AGENCY)
            return false;
        p = f.next;
    }
    return true;
}

/* Hash the fields of [p, end), in runs of consecutive bytes, leaving out
 * at the top level (in_source false) recorded_at and received_at, and in
 * source its agency. */
static bool
digest_fields(crypto_generichash_state *st, const uint8_t *p,
              const uint8_t *end, bool in_source)
{
    const uint8_t *run = p;
    while (p < end) {
        wire_field f;
        if (!wire_next(p, end, &f))
            return false;
        bool source = !in_source && f.num == EV_SOURCE;
        bool skip = in_source
                        ? f.num == SRC_AGENCY
                        : f.num == EV_RECORDED_AT || f.num == EV_RECEIVED_AT;
        if (skip || source) {
            crypto_generichash_update(st, run, (size_t)(p - run));
            run = f.next;
        }
        if (source && !source_only_agency(f.payload, f.next)) {
            /* The tag, the fields without the agency, then a 0 byte: never
             * the first byte of a field (none is numbered 0), so where
             * source ends stays unambiguous without its length. A source
             * with nothing but the agency (the hub's own fields, appended
             * to the stored bytes) counts as none. */
            static const uint8_t end_mark = 0;
            crypto_generichash_update(st, p, (size_t)(f.tag_end - p));
            if (!digest_fields(st, f.payload, f.next, true))
                return false;
            crypto_generichash_update(st, &end_mark, 1);
        }
        p = f.next;
    }
    crypto_generichash_update(st, run, (size_t)(p - run));
    return true;
}

bool
digest_event(const uint8_t *data, size_t len, uint8_t out[STORE_DIGEST_BYTES])
{
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, STORE_DIGEST_BYTES);
    bool ok = digest_fields(&st, data, data + len, false);
    crypto_generichash_final(&st, out, STORE_DIGEST_BYTES);
    return ok;
}

bool
digest_is_lazy(const uint8_t d[STORE_DIGEST_BYTES])
{
    uint8_t any = 0;
    for (size_t i = 0; i < STORE_DIGEST_BYTES; i++)
        any |= d[i];
    return any == 0;
}
