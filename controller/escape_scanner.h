/* escape_scanner.h — finds opted-in pods that escaped sidecar injection.
 *
 * A pod escapes when the injection rules (webhook/inject.h) say it should
 * carry the agentmesh sidecar but it does not: it was admitted while the
 * webhook was down (failurePolicy Ignore), or before its namespace was
 * labelled. Every `interval_seconds` the leader lists, page by page, the
 * pods of each opted-in namespace that has AgentIdentities, plus the pods
 * labelled agentmesh.io/inject=true anywhere — no informer over all pods,
 * so memory stays at one page. For each escaped pod it records a Warning
 * Event `InjectionEscaped` on the pod's AgentIdentity, once per pod uid,
 * and it exports agentmesh_escaped_pods{namespace,agent}: the current
 * count, the series dropped when none are left (and on stop). */
#ifndef AGENTMESH_ESCAPE_SCANNER_H
#define AGENTMESH_ESCAPE_SCANNER_H

#include "controller/events.h"
#include "controller/informer.h"
#include "controller/kube_client.h"

#include <jansson.h>

/* Why a pod that passes the injection rules still does not count. */
#define ESCAPE_SKIP_TERMINATING "terminating"   /* deletionTimestamp set: going away */
#define ESCAPE_SKIP_FINISHED "finished"         /* phase Succeeded/Failed: runs no more */

/* 1 when `pod` escaped injection (*reason = NULL), else 0 with *reason (may
 * be NULL) set to why not: an INJECT_SKIP_* reason from the injection rules
 * (INJECT_SKIP_ALREADY for an injected pod, INJECT_SKIP_NO_IDENTITY when
 * `agent` is NULL: there is nothing to inject) or an ESCAPE_SKIP_* one.
 * `ns_labels` are the labels of the pod's namespace (NULL: none); `agent`
 * is the AgentIdentity the pod asks for (inject_agent_key), or NULL. Pure. */
int escape_check_pod(const json_t *pod, const json_t *ns_labels, const json_t *agent,
                     const char *operator_ns, const char **reason);

struct escape_scanner_options {
    struct kube_client *client;      /* lists pods */
    struct events *events;           /* records InjectionEscaped */
    struct informer *agents;         /* AgentIdentities, all namespaces, indexed by agent_sa_index_key */
    struct informer *namespaces;     /* Namespaces with their labels */
    const char *operator_namespace;  /* never injected, so never scanned (copied) */
    double interval_seconds;         /* <= 0: 60 */
};

struct escape_scanner;

/* Starts the scanning thread; the first pass runs at once (skipped while
 * the informers have not synced). The client, events and informers must
 * outlive the scanner. NULL on error. */
struct escape_scanner *escape_scanner_start(const struct escape_scanner_options *o);
/* Stops the thread (within one API call), drops the gauge series and frees.
 * NULL is a no-op. */
void escape_scanner_stop(struct escape_scanner *s);

#endif
