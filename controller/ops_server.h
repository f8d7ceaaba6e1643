/* ops_server.h — the 9090 listener: /metrics, /healthz, /readyz.
 *
 * Readiness is the AND of named checks registered by the parts that can be
 * not-ready (caches not synced, no webhook certificate, Redis down, audit
 * spool full). /readyz lists each check, so `curl :9090/readyz?verbose`
 * says why a replica is out of rotation, as kube-apiserver's own does. */
#ifndef AGENTMESH_OPS_SERVER_H
#define AGENTMESH_OPS_SERVER_H

#include <stddef.h>

struct ops_server;

/* Returns 1 when ready; otherwise 0 with a reason in why. */
typedef int (*ops_check_fn)(void *arg, char *why, size_t whylen);

struct ops_server *ops_server_new(const char *address, int port);
int ops_server_add_check(struct ops_server *s, const char *name, ops_check_fn fn, void *arg);
/* Called before every /metrics render (e.g. to refresh workqueue gauges). */
void ops_server_on_scrape(struct ops_server *s, void (*fn)(void *arg), void *arg);
int ops_server_start(struct ops_server *s, char *err, size_t errlen);
int ops_server_port(struct ops_server *s);
void ops_server_free(struct ops_server *s);

#endif
