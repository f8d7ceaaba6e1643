/* server.h — the running sidecar: identity, controller client and the two
 * listeners (API on loopback 8081, metrics + /healthz on 9091), wired to the
 * routes of routes.h.
 *
 * main.c owns the process concerns (flags, signals, the exit file, the poll
 * timer); everything else is here so tests can run a whole sidecar in
 * process on ephemeral ports. */
#ifndef AGENTMESH_SIDECAR_SERVER_H
#define AGENTMESH_SIDECAR_SERVER_H

#include <stddef.h>

#include "sidecar/config.h"

struct sidecar;

/* Loads the identity (a missing or bad one is logged, not fatal: /healthz
 * stays 503 and the routes answer 503 until it appears) and starts both
 * listeners. Ports 0 pick free ports. NULL + err when a listener cannot start. */
struct sidecar *sidecar_start(const struct sidecar_config *cfg, char *err, size_t errlen);

/* Periodic work from the main thread: re-reads the identity if its files
 * changed. Returns 1 when a new key was loaded, 0 otherwise. */
int sidecar_poll_identity(struct sidecar *s);

int sidecar_api_port(const struct sidecar *s);
int sidecar_metrics_port(const struct sidecar *s);

/* Stops the listeners and frees everything (the key is wiped). */
void sidecar_stop(struct sidecar *s);

#endif
