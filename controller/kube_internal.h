/* kube_internal.h — helpers shared by kube_config.c and kube_client.c only.
 * Not part of the client's interface (that is kube_client.h). */
#ifndef AGENTMESH_KUBE_INTERNAL_H
#define AGENTMESH_KUBE_INTERNAL_H

#include <stddef.h>

/* Reads a whole file of at most `max` bytes into a NUL-terminated buffer
 * (caller frees). With `trim`, trailing whitespace is dropped (token and
 * namespace files end in a newline). On error returns NULL and writes
 * "cannot read <path>: <reason>" into err. Never prints the content. */
char *kube_read_file(const char *path, size_t max, int trim, size_t *len, char *err, size_t errlen);

#endif
