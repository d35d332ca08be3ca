#include "handover/err.h"

#include <stdio.h>
#include <string.h>

const char *
hov_strerror(hov_err code)
{
    switch (code) {
#define HOV_ERR_STR(name, num, text)                                           \
    case HOV_##name:                                                           \
        return "HOV_" #name ": " text;
        HOV_ERR_MAP(HOV_ERR_STR)
#undef HOV_ERR_STR
    }
    return "HOV_EUNKNOWN: unknown error code";
}

const char *
hov_errname(hov_err code)
{
    switch (code) {
#define HOV_ERR_NAME(name, num, text)                                          \
    case HOV_##name:                                                           \
        return "HOV_" #name;
        HOV_ERR_MAP(HOV_ERR_NAME)
#undef HOV_ERR_NAME
    }
    return "HOV_EUNKNOWN";
}

hov_err
hov_vfail(hov_error *err, hov_err code, int cause, const char *fmt, va_list ap)
{
    if (err == NULL || err->code != HOV_OK)
        return code;
    err->code = code;
    err->cause = cause;
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    /* One line, always: a message is a log field and a Nak sentence. */
    for (char *p = err->msg; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    return code;
}

hov_err
hov_fail(hov_error *err, hov_err code, int cause, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    hov_vfail(err, code, cause, fmt, ap);
    va_end(ap);
    return code;
}

void
hov_error_clear(hov_error *err)
{
    if (err == NULL)
        return;
    err->code = HOV_OK;
    err->cause = 0;
    err->msg[0] = '\0';
}
