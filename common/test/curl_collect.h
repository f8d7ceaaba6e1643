/* curl_collect.h — a libcurl write callback that gathers a reply body into
 * a growing buffer, for the unit and e2e tests that use libcurl as their
 * HTTP client.
 *
 * Header-only: CMake builds every test .c as a program of its own. It sits
 * in common/test so unit tests of any directory and e2e tests can include
 * it alike. */
#ifndef AGENTMESH_CURL_COLLECT_H
#define AGENTMESH_CURL_COLLECT_H

#include <stdlib.h>
#include <string.h>

/* A reply body: p is NUL-terminated once anything arrived (NULL before),
 * n bytes long; the caller frees p. Start from {0}. */
struct buf {
    char *p;
    size_t n;
};

/* CURLOPT_WRITEFUNCTION with CURLOPT_WRITEDATA a struct buf *. Returns
 * what it took, 0 (which fails the transfer) when out of memory. */
static inline size_t collect(char *data, size_t size, size_t nmemb, void *arg) {
    struct buf *b = arg;
    size_t len = size * nmemb;
    char *p = realloc(b->p, b->n + len + 1);
    if (!p) return 0;
    memcpy(p + b->n, data, len);
    b->p = p;
    b->n += len;
    b->p[b->n] = '\0';
    return len;
}

#endif
