/* auth.h — the Ed25519-Timestamp request authentication of DESIGN §5.
 *
 *   Authorization: Ed25519-Timestamp <did> <time> <b64 signature>
 *
 * The signature is Ed25519 over the string
 *   "<METHOD> <path> <time> <hex sha256(body)>"
 * where <path> is the request target exactly as on the request line (path
 * plus query string, if any), <time> is the header's time text byte for byte,
 * and the body hash is of the raw body (sha256 of nothing for no body).
 *
 * Time: RFC 3339, "YYYY-MM-DDTHH:MM:SS", optional fraction of 1..9 digits,
 * then "Z" or "+hh:mm"/"-hh:mm". Builders emit "YYYY-MM-DDTHH:MM:SSZ".
 * Accepted when |now - time| <= AUTH_WINDOW_SECONDS.
 *
 * Server flow: auth_parse_header → look up header.did (unknown/revoked: 401)
 * → auth_verify with the current key (and the previous one during its grace
 * period) → replay_cache_add(header.sig, header.ts) so each signature is
 * accepted once. Verify before recording, so forgeries cannot fill the cache. */
#ifndef AGENTMESH_AUTH_H
#define AGENTMESH_AUTH_H

#include <stddef.h>
#include <time.h>

#include "common/identity.h"

#define AUTH_SCHEME "Ed25519-Timestamp"
#define AUTH_WINDOW_SECONDS 300
#define AUTH_TIME_MAX 35          /* longest accepted time text */
#define AUTH_TIME_BUFSZ 36
#define AUTH_HEADER_MAX 256       /* longest accepted header value */
#define AUTH_METHOD_MAX 16
#define AUTH_PATH_MAX 2048

struct auth_header {
    char did[ID_DID_BUFSZ];
    char time[AUTH_TIME_BUFSZ];   /* as sent: it is part of the signed string */
    time_t ts;                    /* the same instant, UTC seconds */
    unsigned char sig[ID_SIG_LEN];
    /* The signature as sent: canonical base64 (the decoder refuses stray
     * trailing bits), so one signature has one text, usable as its replay key. */
    char sig_b64[ID_SIG_B64_BUFSZ];
};

/* Builds the header value (without "Authorization: ") into out (at least
 * AUTH_HEADER_MAX). body may be NULL when body_len is 0. 0 / -1 (bad method,
 * path or did, or out too small).
 * Ed25519 is deterministic: the same request signed in the same second gives
 * the same signature, which the server's replay cache refuses. A client that
 * may repeat a request (the sidecar) uses auth_build_header_us, whose time
 * carries microseconds ("...:SS.uuuuuuZ"), and never reuses a microsecond. */
int auth_build_header(const unsigned char sk[ID_SK_LEN], const char *did, const char *method,
                      const char *path, const void *body, size_t body_len, time_t now,
                      char *out, size_t outlen);
/* The same with the time in microseconds since the epoch. */
int auth_build_header_us(const unsigned char sk[ID_SK_LEN], const char *did, const char *method,
                         const char *path, const void *body, size_t body_len, long long now_us,
                         char *out, size_t outlen);

/* Parses a header value strictly: exactly "Ed25519-Timestamp" SP did SP time
 * SP sig, single spaces, no leading/trailing space, len <= AUTH_HEADER_MAX,
 * a valid DID, a valid RFC 3339 time, a base64 64-byte signature. `value`
 * need not be NUL-terminated. 0, or -1 with *reason set to a static string. */
int auth_parse_header(const char *value, size_t len, struct auth_header *out,
                      const char **reason);

/* Checks a parsed header against the request: time window around `now`, then
 * the signature under pk, or else under prev_pk when non-NULL (the caller
 * passes the previous key only during its rotation grace period).
 * 0 ok, -1 with *reason static. When used_prev is non-NULL it is set to 1 if
 * the previous key verified. */
int auth_verify(const struct auth_header *h, const unsigned char pk[ID_PUB_LEN],
                const unsigned char *prev_pk, const char *method, const char *path,
                const void *body, size_t body_len, time_t now, int *used_prev,
                const char **reason);

/* RFC 3339 helpers (used by the scheme; handy for status timestamps too).
 * format: "YYYY-MM-DDTHH:MM:SSZ" into out (>= 21 bytes), 0 / -1.
 * parse: the grammar above over exactly len chars, 0 / -1. */
int auth_time_format(time_t t, char *out, size_t outlen);
int auth_time_parse(const char *s, size_t len, time_t *out);

#endif
