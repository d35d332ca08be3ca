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

/* An adapter's life, for runtime_main. Every callback gets ctx. */
typedef struct runtime_adapter {
    const runtime_prog *prog;
    void *ctx;
    /* Read the settings (already checked against prog->keys). HOV_ECONFIG
     * with the setting named: the process exits 2. */
    hov_err (*configure)(void *ctx, const conf *c, hov_error *err);
    /* Open the hub link, the partner side and the listener on loop, and
     * log what it serves. An error exits 1 after stop. */
    hov_err (*start)(void *ctx, uv_loop_t *loop, hov_error *err);
    /* Close everything start opened (some of it may not be open), leaving
     * unfinished work unsettled and unacknowledged so it is sent again.
     * Called once, on SIGTERM/SIGINT or after a failed start. */
    void (*stop)(void *ctx, const char *why);
    /* Free what configure made. */
    void (*cleanup)(void *ctx);
} runtime_adapter;

/* The whole main(): arguments, configuration, signals, start, the loop
 * until stop has closed everything, cleanup. Returns the exit status. */
int runtime_main(const runtime_adapter *a, int argc, char **argv);

#endif
