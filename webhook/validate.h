/* validate.h — the validating webhook's rules for AgentIdentity and
 * TrustPolicy (DESIGN §2, §7).
 *
 * The CRD schemas already check types, ranges and patterns on API servers
 * that enforce them; these checks repeat the patterns (so a bad spec is
 * refused with a clear message even where the schema was loosened or
 * predates them) and add what a 1.20 schema cannot express: the immutable
 * serviceAccountName, at most one cloud, and — through the controller's own
 * TrustPolicy parser, so what is admitted is exactly what the controller can
 * use — weights summing to 1, rule operators fitting their values, regexes
 * that compile. Every message starts with the offending field's path. */
#ifndef AGENTMESH_WEBHOOK_VALIDATE_H
#define AGENTMESH_WEBHOOK_VALIDATE_H

#include <jansson.h>
#include <stddef.h>

/* 1 when allowed; 0 when denied with the reason in msg. `old` is the
 * previous object on UPDATE, else NULL. */
int validate_agent_identity(const json_t *obj, const json_t *old, char *msg, size_t msglen);
int validate_trust_policy(const json_t *obj, char *msg, size_t msglen);

/* Dispatch on the admission request's kind and operation: DELETE and
 * CONNECT are allowed, an unknown kind is denied (the webhook is
 * registered for the two kinds only, so that is a misconfiguration). */
int validate_request(const char *kind, const char *operation, const json_t *obj,
                     const json_t *old, char *msg, size_t msglen);

#endif
