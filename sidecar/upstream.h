/* upstream.h — the sidecar's client for the controller's trust API.
 *
 * libevent's evhttp client on the caller's event loop (no libcurl: the
 * sidecar runs in every agent pod, so it stays a few MiB). Each call takes a
 * kept-alive connection of that loop or opens one (plain, or TLS through
 * bufferevent_openssl verifying the controller against --ca-file and its
 * host name), signs the request with the keystore's Ed25519-Timestamp
 * header, and reports the answer through a callback on the same loop. Host names are resolved with getaddrinfo on the
 * loop thread (in-cluster Service names resolve from the node-local cache). */
#ifndef AGENTMESH_SIDECAR_UPSTREAM_H
#define AGENTMESH_SIDECAR_UPSTREAM_H

#include <stddef.h>

#include "sidecar/keystore.h"

struct upstream;
struct event_base;

struct upstream_url {
    int tls;
    char host[256];
    int port;
    char prefix[256];   /* path before the API paths, "" or "/x" (no trailing '/') */
};

/* http[s]://host[:port][/prefix]. 0, or -1 with the problem in err. */
int upstream_parse_url(const char *url, struct upstream_url *out, char *err, size_t errlen);

/* ca_file NULL or "" = system store (only used for https). NULL + err on failure. */
struct upstream *upstream_new(const char *url, const char *ca_file, int timeout_seconds,
                              struct keystore *ks, char *err, size_t errlen);
/* Closes the idle kept-alive connections, each from its own loop, and waits
 * (at most 2 s) until they are gone; connections of later calls are closed
 * when those calls end. Call while the loops still run, before they stop. */
void upstream_close_idle(struct upstream *u);
/* After upstream_close_idle and once the loops have stopped. */
void upstream_free(struct upstream *u);

/* status: the controller's HTTP status, or 0 when there was no answer
 * (then `error` says why and `timed_out` tells 504 from 502). body is the
 * answer's body (NUL-terminated, may be empty); both valid only during the call. */
typedef void (*upstream_done)(void *arg, int status, const char *body, size_t len,
                              const char *error, int timed_out);

/* POSTs body to prefix+path on `base`'s loop; `done` runs exactly once,
 * on that loop, unless this returns -1 (then it never runs). */
int upstream_post(struct upstream *u, struct event_base *base, const char *path, const char *body,
                  size_t len, upstream_done done, void *arg);

#endif
