#include "handover/pb.h"

#include <protobuf-c/protobuf-c.h>
#include <stdlib.h>

void
hov_pb_take(char **field, char *owned)
{
    if (owned == NULL)
        return;
    if (*field != NULL && (const char *)*field != protobuf_c_empty_string)
        free(*field);
    *field = owned;
}
