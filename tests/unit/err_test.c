/* The error list and the protocol's Nak codes are one list (style R3). */
#include <criterion/criterion.h>
#include <string.h>

#include "handover.pb-c.h"
#include "handover/err.h"

Test(err, nak_codes_match_hov_err, .timeout = 10)
{
    const ProtobufCEnumDescriptor *d = &handover__nak_code__descriptor;
    unsigned n = 0;
#define CHECK(nm, num, text)                                                   \
    do {                                                                       \
        const ProtobufCEnumValue *v =                                          \
            protobuf_c_enum_descriptor_get_value(d, num);                      \
        cr_assert_not_null(v, "NakCode has no value %d (HOV_" #nm ")", num);   \
        cr_assert_str_eq(v->name, "HOV_" #nm,                                  \
                         "NakCode %d is %s, err.h says HOV_" #nm, num,         \
                         v->name);                                             \
        n++;                                                                   \
    } while (0);
    HOV_ERR_MAP(CHECK)
#undef CHECK
    cr_assert_eq(n, d->n_values, "NakCode has %u values, err.h %u", d->n_values,
                 n);
}

Test(err, strerror_and_first_failure_wins, .timeout = 10)
{
    cr_assert_str_eq(hov_strerror(HOV_ESTOREFULL),
                     "HOV_ESTOREFULL: event store is full (LMDB map size "
                     "reached)");
    cr_assert_str_eq(hov_strerror((hov_err)9999),
                     "HOV_EUNKNOWN: unknown error code");
    hov_error e = {0};
    cr_assert_eq(hov_fail(&e, HOV_EIO, 5, "write %s:\nfailed", "x"), HOV_EIO);
    cr_assert_eq(hov_fail(&e, HOV_ENOMEM, 0, "later"), HOV_ENOMEM);
    cr_assert_eq(e.code, HOV_EIO, "the first failure wins");
    cr_assert_eq(e.cause, 5);
    cr_assert_str_eq(e.msg, "write x: failed", "messages are one line");
    cr_assert_eq(hov_fail(NULL, HOV_EIO, 0, "no context"), HOV_EIO);
}
