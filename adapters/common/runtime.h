/* What every adapter's main() does the same way: the command line, the
 * configuration it names, the log level, and stopping on SIGTERM/SIGINT.
 *
 *   <prog> [--config FILE] [--set KEY=VALUE]... [--log-level LEVEL]
 *   <prog> --print-default-config | --help
 *
 * --set applies on top of the file whatever the order given, and the
 * setting log.level (or --log-level) sets the level.
 */
#ifndef HANDOVER_RUNTIME_H
#define HANDOVER_RUNTIME_H

#include <stdbool.h>
#include <uv.h>

#include "conf.h"

typedef struct runtime_prog {
    const char *name;           /* "handover-nursing": logs and messages */
    const char *summary;        /* one line for --help */
    const char *default_config; /* YAML, printed by --print-default-config */
    const char *const *keys;    /* known settings, NULL-terminated */
} runtime_prog;

/* Parse argv for p: set the log name and level, load the configuration.
 * Returns -1 with *out the configuration (owned; conf_free) to run with,
 * or an exit status (0 after --help or --print-default-config; 2 for a
 * usage or configuration error, already reported on stderr). Unknown
 * settings are refused here (conf_check_known against p->keys). */
int runtime_args(const runtime_prog *p, int argc, char **argv, conf **out);

typedef struct runtime_signals {
    uv_signal_t term, intr;
    void (*stop)(void *user, const char *signame);
    void *user;
    bool fired;
} runtime_signals;

/* Watch SIGTERM and SIGINT on loop: the first one calls stop(user,
 * "SIGTERM") once and closes both handles, so the loop can end when the
 * adapter has closed its own. SIGPIPE is ignored (a partner that hangs up
 * is an error code, not a death). rs must live until the loop ends. */
void runtime_signals_start(runtime_signals *rs, uv_loop_t *loop,
                           void (*stop)(void *user, const char *signame),
                           void *user);

/* Close the handles without calling stop (start-up failed). */
void runtime_signals_close(runtime_signals *rs);

#endif
