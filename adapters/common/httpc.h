/* An HTTP client on a libuv loop, for the adapters' outbound partners
 * (FHIR to the GP system, signed webhooks to the voluntary sector).
 *
 * libcurl's multi interface does the HTTP and TLS; this module drives it
 * from the loop as curl's multi-uv.c example does: libcurl names the
 * sockets to watch (CURLMOPT_SOCKETFUNCTION, one uv_poll per socket) and
 * when to wake it (CURLMOPT_TIMERFUNCTION, one uv_timer), and the loop
 * calls curl_multi_socket_action. Nothing blocks the loop, not even name
 * resolution (libcurl's threaded resolver in Debian's build). Connections
 * are kept and reused between posts to the same host.
 *
 * Each post's callback runs exactly once, on the loop thread, and never
 * from inside httpc_post: on completion, on failure (connection refused,
 * timeout, TLS error, a response over the size limit), or with cancelled
 * set when httpc_free runs first. A callback may call httpc_post and
 * httpc_free.
 *
 * Security: TLS peer and host-name verification stay on (libcurl's
 * defaults, never changed here); only http and https URLs are accepted;
 * redirects are not followed; no signals are used (CURLOPT_NOSIGNAL). The
 * proxy environment variables (https_proxy, no_proxy, ...) are honoured,
 * as libcurl does by default, for sites that must go through a proxy.
 *
 * Caveats. Loop thread only. Call httpc_global_init once from main before
 * any thread starts (libcurl's global initialisation is not thread-safe
 * in every build), and httpc_global_cleanup at exit. This module does not
 * log bodies or URLs (a query may hold patient identifiers): the caller
 * logs the outcome with its own context (event id, partner).
 */
#ifndef HANDOVER_HTTPC_H
#define HANDOVER_HTTPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "handover/err.h"

typedef struct httpc httpc;

/* The outcome of one post, borrowed by the callback for the call: copy
 * what must outlive it.
 *
 * Success is error[0] == '\0' (curl_code 0) with status in 200..299. When
 * error is set, status may still hold the status line's code if one
 * arrived before the failure (a body over the limit, a timeout while the
 * body came): a 2xx there means the partner accepted the request even
 * though its answer was not read in full. */
typedef struct httpc_result {
    long status;         /* HTTP status; 0 when none arrived */
    const char *error;   /* "" on success, else one line for a person
                          * (libcurl's detail when it gave one) */
    int curl_code;       /* CURLcode; 0 on success */
    const uint8_t *body; /* the response body, never NULL; may be
                          * partial when error is set */
    size_t len;
    const char *content_type; /* "" when none */
    bool timed_out;           /* the post's timeout passed */
    bool cancelled;           /* httpc_free ran before it finished */
} httpc_result;

/* Called once per post on the loop thread; user is the post's pointer,
 * never touched by the client. May call httpc_post and httpc_free. */
typedef void (*httpc_cb)(void *user, const httpc_result *r);

/* Client settings. A zero field takes the default given beside it. */
typedef struct httpc_opts {
    const char *ca_file;         /* CA bundle (PEM) to verify TLS peers
                                  * with; NULL: the system's store */
    size_t max_response_bytes;   /* body kept; more fails the post; 0: 1 MiB */
    uint64_t connect_timeout_ms; /* 0: 10 s (each post's own timeout also
                                  * bounds it) */
    uint64_t default_timeout_ms; /* a post's timeout when it passes 0;
                                  * 0: 30 s */
    long max_host_conns;         /* parallel connections per host;
                                  * 0: no limit (posts beyond it wait) */
    const char *user_agent;      /* NULL: "handover" */
} httpc_opts;

/* Initialise libcurl for the process (curl_global_init). Call once from
 * main, before any thread starts and before httpc_new.
 * HOV_ESYS when libcurl cannot initialise (its TLS library failed). */
HOV_NODISCARD hov_err httpc_global_init(hov_error *err);

/* Release libcurl's global state at exit, after every httpc_free and
 * after the loop has run their closes. */
void httpc_global_cleanup(void);

/* A client on loop. Borrows opts (may be NULL: all defaults) and its
 * strings for the call. Returns owned in *out, released with httpc_free.
 * On failure there is nothing to undo.
 * HOV_ENOMEM: out of memory; HOV_ESYS: libcurl or libuv refused (err says
 * which). */
HOV_NODISCARD hov_err httpc_new(uv_loop_t *loop, const httpc_opts *opts,
                                httpc **out, hov_error *err);

/* POST body (len bytes; NULL when len is 0) to url with headers (a
 * NULL-terminated array of "Name: value" strings, may be NULL). Without a
 * Content-Type header none is sent (libcurl's form default is
 * suppressed), and "Expect: 100-continue" is not used unless given, so a
 * large body does not wait a second for a "100 Continue". Everything is
 * copied. timeout_ms bounds the whole exchange (0: the client's default).
 * cb(user, result) is called exactly once, later, on the loop thread.
 * HOV_EINVAL: url is not http:// or https://, a header is not
 * "Name: value" on one line, or cb is NULL. HOV_ESTATE: httpc_free has
 * been called. HOV_ENOMEM, HOV_ESYS (libcurl refused an option or the
 * transfer). On any error cb is never called. */
HOV_NODISCARD hov_err httpc_post(httpc *hc, const char *url,
                                 const char *const *headers, const void *body,
                                 size_t len, uint64_t timeout_ms, httpc_cb cb,
                                 void *user, hov_error *err);

/* Posts whose callback has not run yet. */
size_t httpc_pending(const httpc *hc);

/* Cancel every post in flight, calling each one's callback before this
 * returns (status 0, cancelled set, error "cancelled: the HTTP client was
 * closed"), close the connections, and free the client once libuv has
 * closed its handles (the loop must run for that). During those callbacks
 * httpc_post on hc fails with HOV_ESTATE. hc must not be used after this
 * call. May be called from a callback. NULL is a no-op. */
void httpc_free(httpc *hc);

#endif
