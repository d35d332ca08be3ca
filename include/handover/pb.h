/* Helpers for building events with protobuf-c, shared by the mappings
 * that turn partner messages into handover.Event (HL7, FHIR).
 *
 * Such events are built field by field with malloc'd strings, so that
 * handover__event__free_unpacked(ev, NULL) frees them; unset proto3
 * string fields point at protobuf-c's shared empty string, which is not
 * ours to free.
 */
#ifndef HANDOVER_PB_H
#define HANDOVER_PB_H

/* Give owned (malloc'd) to the string field *field, freeing the value it
 * held unless that is the shared empty default. NULL owned changes
 * nothing, so an absent value leaves the field as it was. */
void hov_pb_take(char **field, char *owned);

#endif
