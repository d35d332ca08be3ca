/* An HTTP/1.1 server on a libuv loop, for the adapters' inbound partners
 * (the GP system's FHIR requests, the voluntary sector's outcome webhooks).
 *
 * Requests are parsed by http-parser 2.9 (Debian's libhttp-parser); this
 * module owns the connections, limits and timeouts around it. A handler
 * receives each complete request (headers and body in memory) and answers
 * it with httpd_respond, at once or later: the GP adapter answers only
 * after the hub has acknowledged the event, possibly seconds later.
 *
 * Connections. Keep-alive is the HTTP/1.1 default; "Connection: close" is
 * honoured, and HTTP/1.0 closes after each response unless the client
 * asked for keep-alive. Pipelined requests are answered in order: while a
 * request is with the handler (and until its response has been written)
 * the next one is not parsed; up to 16 KiB sent ahead is held unparsed,
 * then reading stops until the response is out. Reading ahead is what lets
 * a reset from the client mark the request gone (httpd_req_gone).
 *
 * Limits, each answered with a short text/plain response and a close:
 *   - malformed request (http-parser error, bad request target, a blank
 *     in a header name, which Debian's non-strict http-parser lets
 *     through but RFC 9112 requires refusing): 400;
 *   - request target and headers over max_header_bytes: 431;
 *   - body over max_body_bytes (from Content-Length before the body is
 *     read, or while a chunked body arrives): 413;
 *   - CONNECT: 405 (this is an origin server, not a proxy);
 *   - headers not complete within header_timeout_ms of the connection
 *     opening or of the request's first byte, or a body not complete
 *     within body_timeout_ms of its headers: 408. The deadlines are fixed
 *     when the phase starts and are not extended by each byte received,
 *     so a client trickling one byte a second (slowloris) is cut off;
 *   - a keep-alive connection with no new request within idle_timeout_ms,
 *     or a response the client does not take within write_timeout_ms:
 *     closed without a response;
 *   - more than max_conns connections: the extra one gets 503 and a close.
 * Closing is graceful: uv_shutdown first, so queued response bytes are
 * written. After a response that ends the connection (an error, a
 * "Connection: close"), what the client still sends is then read and
 * dropped until it closes (at most 2 s), so a client still sending a
 * refused body receives the error response rather than a reset.
 *
 * "Expect: 100-continue" on an HTTP/1.1 request with a body is answered
 * with "HTTP/1.1 100 Continue" once its headers have passed the limits, so
 * curl and other clients do not wait before sending the body; a body over
 * the limit is refused with 413 instead. Other expectations are ignored.
 * Chunked request bodies are decoded (trailers are read and dropped).
 * Upgrade requests are treated as ordinary requests and the connection
 * closes after the response.
 *
 * Caveats. Everything runs on the loop's thread: no function here may be
 * called from another thread. Header lookups compare names without regard
 * to case; path and query are as sent (not percent-decoded). The server
 * logs one line per refused or cut-off connection, naming the peer; it
 * never logs request targets or bodies, which may hold patient data.
 * http-parser has its own compile-time header limit (80 KiB): a
 * max_header_bytes above it is reached there first, still as a 431.
 */
#ifndef HANDOVER_HTTPD_H
#define HANDOVER_HTTPD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "handover/err.h"

typedef struct httpd httpd;
typedef struct httpd_req httpd_req;

/* Called on the loop thread with each complete request, in order per
 * connection, never from inside httpd_respond or httpd_stop. The handler
 * takes responsibility for req: it must call httpd_respond(req, ...)
 * exactly once, during the call or at any later time from any callback on
 * the same loop. Until then req and every string it returns stay valid,
 * even if the client disconnects or the server is stopped. The handler may
 * call httpd_stop. user is the pointer given to httpd_start, never
 * touched by the server. */
typedef void (*httpd_handler)(void *user, httpd_req *req);

/* Server settings. A zero field takes the default given beside it; there
 * is no way to turn a timeout off, because each one is what stops a
 * client holding a connection for ever. */
typedef struct httpd_opts {
    const char *host;           /* IPv4 or IPv6 literal; NULL: "127.0.0.1" */
    int port;                   /* 0: an ephemeral port (see httpd_port) */
    size_t max_header_bytes;    /* target + names + values (+4 per header
                                 * line); 0: 16 KiB */
    size_t max_body_bytes;      /* decoded body; 0: 1 MiB */
    uint64_t header_timeout_ms; /* 0: 10 s */
    uint64_t body_timeout_ms;   /* 0: 30 s */
    uint64_t idle_timeout_ms;   /* keep-alive wait for a request; 0: 60 s */
    uint64_t write_timeout_ms;  /* a response taken by the client; 0: 30 s */
    unsigned max_conns;         /* open connections; 0: 256 */
    const char *name;           /* start of each log line; NULL: "HTTP" */
} httpd_opts;

/* Listen on opts->host:opts->port and serve requests to handler (with
 * user) on loop. Borrows opts and the strings in it for the call. On
 * success *out gets the server, owned by the caller until httpd_stop.
 * On failure nothing is left for the caller to undo (a handle already
 * made is released on the loop's next turn) and handler is never called.
 * HOV_EINVAL: no handler or a port outside 0..65535.
 * HOV_ECONFIG: host is not an IP address literal; fix the setting.
 * HOV_ESYS: the socket could not be bound or listened on (in use,
 * permission); err names the address and the system's reason.
 * HOV_ENOMEM: out of memory. */
HOV_NODISCARD hov_err httpd_start(uv_loop_t *loop, const httpd_opts *opts,
                                  httpd_handler handler, void *user,
                                  httpd **out, hov_error *err);

/* The port the server listens on (the ephemeral one when opts->port was
 * 0). Valid until httpd_stop. */
int httpd_port(const httpd *d);

/* Stop serving: close the listener and every connection (gracefully: a
 * response being written is finished first; a request with the handler
 * becomes gone, httpd_req_gone). The handler is not called again.
 * Requests not yet responded stay valid until their httpd_respond, which
 * then only frees them. The server's memory is released once every libuv
 * handle it opened has closed (the loop must keep running: at most
 * write_timeout_ms plus 2 s for clients that neither read nor close) and
 * every request handed out has been responded; so the loop ends on its
 * own even while requests are outstanding, but d's memory is held until
 * the last of them is responded. d must not be used after this call; its
 * requests may. May be called from the handler. NULL is a no-op. */
void httpd_stop(httpd *d);

/* Answer req and release it. status is the HTTP status, 200..599 (any
 * other value is a programming error, logged and sent as 500). headers is
 * a NULL-terminated array of "Name: value" strings (may be NULL); body of
 * len bytes (may be NULL when len is 0). Borrows everything for the call:
 * the response is copied. The server adds Date (unless given),
 * Content-Length (except for 204 and 304), and "Connection: close" when
 * the connection will close or "Connection: keep-alive" for an HTTP/1.0
 * client that asked to keep it. A "Connection: close" in headers closes
 * the connection after this response; Content-Length, Transfer-Encoding
 * and Connection given in headers are otherwise dropped, as is any header
 * holding CR or LF or no colon (each logged): they would corrupt the
 * framing. The body is not sent for HEAD, 204 or 304. When the client has
 * gone (httpd_req_gone) or the server was stopped, the response is
 * dropped and req is only freed. Exactly once per request; req must not
 * be used afterwards. Loop thread only; never calls the handler. */
void httpd_respond(httpd_req *req, int status, const char *const *headers,
                   const void *body, size_t len);

/* True when req's connection has closed (client reset, server stopped):
 * a response can no longer be delivered, though httpd_respond must still
 * be called to free req. A client that disconnects quietly while its
 * request is with the handler may only be noticed when the response is
 * written. */
bool httpd_req_gone(const httpd_req *req);

/* Request accessors. Every string returned is NUL-terminated and borrowed
 * from req until httpd_respond. */

/* "GET", "POST", ... (a static string). */
const char *httpd_req_method(const httpd_req *req);

/* The request target's path without the query, as sent ("/Patient/1");
 * "/" when an absolute-form target has none; "*" for "OPTIONS *". */
const char *httpd_req_path(const httpd_req *req);

/* The query without the '?' ("a=1&b=2"); "" when there is none. */
const char *httpd_req_query(const httpd_req *req);

/* The value of the first header named name (compared without regard to
 * case), with surrounding blanks removed; NULL when absent. */
const char *httpd_req_header(const httpd_req *req, const char *name);

/* Number of request headers (trailers of a chunked body excluded). */
size_t httpd_req_header_count(const httpd_req *req);

/* The i-th header, in the order received; false when i is out of range
 * (then *name and *value are left unchanged). */
bool httpd_req_header_at(const httpd_req *req, size_t i, const char **name,
                         const char **value);

/* The body (dechunked) and its length in *len (len may be NULL). Never
 * NULL: an empty body is a pointer to zero bytes. */
const uint8_t *httpd_req_body(const httpd_req *req, size_t *len);

/* The client's address, "192.0.2.7:53412" or "[2001:db8::1]:53412", for
 * logs. */
const char *httpd_req_peer(const httpd_req *req);

#endif
