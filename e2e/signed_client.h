/* signed_client.h — signed requests to the trust API over plain keep-alive
 * sockets, for e2e tests and benchmarks.
 *
 * Header-only on purpose: CMake builds every e2e test_*.c and every bench .c file as a
 * program of its own, so a shared .c would need a CMake line per user.
 *
 * Requests carry Ed25519-Timestamp authorization (common/auth.h) with a
 * microsecond time that is unique within the process (never two requests
 * in one microsecond), so each request is a distinct signature the server's
 * replay cache accepts once — also when a batch is signed ahead of a timed
 * run. The client is deliberately small (one request, one reply, no
 * chunked encoding): it costs little next to the server it measures. */
#ifndef AGENTMESH_SIGNED_CLIENT_H
#define AGENTMESH_SIGNED_CLIENT_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/auth.h"

/* A TCP connection to 127.0.0.1:port with Nagle off, or -1. */
static inline int sc_dial(int port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (fd < 0) return -1;
    if (inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr) != 1 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Now in microseconds, but always after the previous call's (any thread). */
static inline long long sc_unique_us(void) {
    static long long last;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    long long now = (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
    long long prev = __atomic_load_n(&last, __ATOMIC_RELAXED), t;
    do {
        t = now > prev ? now : prev + 1;
    } while (!__atomic_compare_exchange_n(&last, &prev, t, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED));
    return t;
}

/* A whole HTTP/1.1 request (JSON body may be NULL) signed with sk as did,
 * into out. Its length, or -1 when signing fails or out is too small. */
static inline int sc_build(char *out, size_t outlen, const unsigned char sk[ID_SK_LEN], const char *did,
                           const char *method, const char *path, const char *body) {
    char auth[AUTH_HEADER_MAX];
    size_t blen = body ? strlen(body) : 0;
    if (auth_build_header_us(sk, did, method, path, body, blen, sc_unique_us(), auth, sizeof auth) != 0) return -1;
    int n = snprintf(out, outlen,
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: %s\r\n"
                     "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                     method, path, auth, blen, body ? body : "");
    return n < 0 || (size_t)n >= outlen ? -1 : n;
}

/* Sends a prepared request and reads one reply (Content-Length framed).
 * The HTTP status, with the reply body NUL-terminated in body (truncated to
 * bodylen; body may be NULL), or -1 when the connection fails or the reply
 * is malformed or over 16 KiB. */
static inline int sc_roundtrip(int fd, const char *req, size_t len, char *body, size_t bodylen) {
    static __thread char buf[16384];
    for (size_t off = 0; off < len;) {
        ssize_t n = write(fd, req + off, len - off);
        if (n <= 0) return -1;
        off += (size_t)n;
    }
    size_t have = 0;
    char *end = NULL;
    long clen = -1;
    for (;;) {
        ssize_t n = read(fd, buf + have, sizeof buf - 1 - have);
        if (n <= 0) return -1;
        have += (size_t)n;
        buf[have] = '\0';
        if (!end && (end = strstr(buf, "\r\n\r\n"))) {
            char *cl = strcasestr(buf, "Content-Length:");
            clen = cl && cl < end ? strtol(cl + 15, NULL, 10) : 0;
            if (clen < 0) return -1;
        }
        if (end && have >= (size_t)(end + 4 - buf) + (size_t)clen) break;
        if (have == sizeof buf - 1) return -1;
    }
    if (body && bodylen) snprintf(body, bodylen, "%.*s", (int)clen, end + 4);
    return strncmp(buf, "HTTP/1.", 7) == 0 ? (int)strtol(buf + 9, NULL, 10) : -1;
}

#endif
