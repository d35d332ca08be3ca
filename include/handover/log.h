/* Logging for every Handover program: one line per record on stderr,
 *
 *   2026-11-23T22:55:01.123Z handover-hub WARN nak event=<id> code=...
 * reason="..."
 *
 * time (UTC), program name, level, then the message. Messages follow the
 * convention "what key=value ...", naming the event id where there is one.
 * Patient data never goes into a log line beyond an NHS number, and only
 * where an operator needs it (the audit log is where patient trails live).
 *
 * Process-wide state (program name, level) is set once at start-up from the
 * main thread, before any other thread logs.
 */
#ifndef HANDOVER_LOG_H
#define HANDOVER_LOG_H

#include "handover/err.h"

typedef enum hov_log_level {
    HOV_LOG_DEBUG = 0,
    HOV_LOG_INFO = 1,
    HOV_LOG_WARN = 2,
    HOV_LOG_ERROR = 3,
} hov_log_level;

/* Program name shown in every line. Borrows name: pass a string literal. */
void hov_log_set_name(const char *name);

/* Records below level are dropped. Default HOV_LOG_INFO. */
void hov_log_set_level(hov_log_level level);

/* Parse "debug", "info", "warn" or "error". Returns -1 if unknown. */
int hov_log_level_parse(const char *s);

/* Write one record. Safe from any thread: one write(2) per line. */
void hov_log(hov_log_level level, const char *fmt, ...) HOV_PRINTF(2, 3);

#define hov_debug(...)  hov_log(HOV_LOG_DEBUG, __VA_ARGS__)
#define hov_info(...)   hov_log(HOV_LOG_INFO, __VA_ARGS__)
#define hov_warn(...)   hov_log(HOV_LOG_WARN, __VA_ARGS__)
#define hov_errorf(...) hov_log(HOV_LOG_ERROR, __VA_ARGS__)

#endif
