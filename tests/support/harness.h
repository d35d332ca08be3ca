/* Test harness: the real handover-hub as a child process on a temporary
 * data folder and a free loopback port, and real hub clients.
 *
 * Every helper asserts with Criterion, so a failure names what went wrong
 * (the hub's log tail is printed when it fails to start or dies).
 */
#ifndef TEST_HARNESS_H
#define TEST_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "handover/client.h"
#include "handover/sample.h"

/* Scaled by HANDOVER_TEST_TIMEOUT_MULTIPLIER (sanitizer builds are slow). */
int th_ms(int ms);

typedef struct th_hub {
    pid_t pid;
    char dir[256]; /* data folder */
    char endpoint[64];
    char log[300]; /* the hub's stderr */
    int port;
    const char *args[32];
    int nargs;
    /* Extra environment of the hub process ("NAME=VALUE", borrowed),
     * added with th_hub_setenv; none by default. */
    const char *env[16];
    int nenv;
} th_hub;

/* A fresh temporary folder (mkdtemp). */
void th_tmpdir(char *out, size_t cap);

/* Remove a folder tree (tests' own temporary folders only). */
void th_rm_rf(const char *dir);

/* Prepare h: temporary data folder, free port. extra is a NULL-terminated
 * list of extra hub arguments ("--set", "max_attempts=3", ...), copied by
 * pointer (keep them alive). */
void th_hub_init(th_hub *h, const char *const *extra);

/* Start (or restart, same folder and port) and wait for "ready". */
void th_hub_start(th_hub *h);

/* Start and expect the hub to exit by itself; returns its exit status. */
int th_hub_run_expect_exit(th_hub *h, int timeout_ms);

/* Send sig and reap. */
void th_hub_kill(th_hub *h, int sig);

/* SIGTERM, wait, and assert a clean exit (status 0, "stopped cleanly"). */
void th_hub_stop(th_hub *h);

/* Stop if running and remove the folder. */
void th_hub_fini(th_hub *h);

/* Is the hub process still alive? */
bool th_hub_alive(th_hub *h);

/* Does the hub's log contain needle? */
bool th_log_contains(const th_hub *h, const char *needle);

/* How many lines of the hub's log (over all its starts) contain needle. */
size_t th_log_count(const th_hub *h, const char *needle);

/* Add "NAME=VALUE" to the environment of the hub's later starts (kv is
 * borrowed: keep it alive); NULL clears them all. For an LD_PRELOAD
 * library such as tests/faults/faultfs.c. */
void th_hub_setenv(th_hub *h, const char *kv);

/* A connected client. */
hov_client *th_client(const th_hub *h, const char *agency, const char *name,
                      bool consume, unsigned credit);

/* Publish a sample and wait for its Ack or Nak (asserts an answer came). */
void th_publish(hov_client *c, const hov_sample *s, hov_msg *out);

/* Publish and assert an Ack. */
void th_publish_ok(hov_client *c, const hov_sample *s);

/* Publish and assert a Nak with code; returns its reason (static copy). */
const char *th_publish_nak(hov_client *c, const hov_sample *s, int code);

/* Wait for the next delivery (asserts one comes within timeout_ms), and
 * decode its event into *ev (free with handover__event__free_unpacked). */
void th_next_delivery(hov_client *c, int timeout_ms, hov_msg *out,
                      Handover__Event **ev);

/* Assert that no delivery arrives within ms. */
void th_no_delivery(hov_client *c, int ms);

/* A free loopback TCP port (bound, read and released). */
int th_free_port(void);

/* Any other Handover program (an adapter, a simulator) as a child process,
 * its stdout and stderr in <dir>/<name>.log. */
typedef struct th_proc {
    pid_t pid;
    const char *name;
    const char *ready; /* the log text that says it is ready */
    char log[300];
    const char *args[48];
    int nargs;
} th_proc;

/* Prepare p; argv (NULL-terminated, argv[0] the program) is copied by
 * pointer: keep the strings alive. */
void th_proc_init(th_proc *p, const char *dir, const char *name,
                  const char *ready, const char *const *argv);
/* Start and wait until the log shows p->ready once more. */
void th_proc_start(th_proc *p);
/* Start and wait for the process to exit; returns its status. */
int th_proc_run(th_proc *p, int timeout_ms);
void th_proc_kill(th_proc *p, int sig);
/* SIGTERM and assert a clean exit (status 0). */
void th_proc_stop(th_proc *p);
size_t th_proc_log_count(const th_proc *p, const char *needle);
/* Wait until needle appears count times; false (log printed) on timeout. */
bool th_proc_wait_log(const th_proc *p, const char *needle, size_t count,
                      int timeout_ms);

#endif
