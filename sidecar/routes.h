/* routes.h — what each sidecar route does, as pure functions.
 *
 * Request body in, decision out: either a local reply (status + JSON) or a
 * call to make to the controller (path + JSON body), whose answer is then
 * passed back as it is. No sockets here, so every bad input is unit-tested.
 *
 *   GET  /v1/identity   → {did, key_id, public_key, agent}
 *   POST /v1/challenge  {peer_did} → controller /api/v1/handshake/challenge {agent_did}
 *   POST /v1/respond    {challenge_id, nonce} → {agent_did, key_id, response_nonce,
 *                       signature}: Ed25519 over
 *                       "{challenge_id}:{nonce}:{response_nonce}:{agent_did}"
 *   POST /v1/verify     {challenge_id, agent_did, response_nonce, signature,
 *                       required_score?, required_capabilities?} → controller
 *                       /api/v1/handshake/verify
 *   POST /v1/signals    {agent_did?, dimension, value, weight?, source?} →
 *                       controller /api/v1/signals (agent_did defaults to ours,
 *                       source to "agentmesh-sidecar")
 * Errors: 400 (malformed JSON, missing/mistyped/unknown field, named in the
 * message), 413 (body over SIDECAR_MAX_BODY), 503 (no identity loaded). */
#ifndef AGENTMESH_SIDECAR_ROUTES_H
#define AGENTMESH_SIDECAR_ROUTES_H

#include <jansson.h>
#include <stddef.h>

#include "sidecar/keystore.h"

#define ROUTE_CHALLENGE_PATH "/api/v1/handshake/challenge"
#define ROUTE_VERIFY_PATH "/api/v1/handshake/verify"
#define ROUTE_SIGNALS_PATH "/api/v1/signals"

struct route_result {
    int code;                  /* status of a local reply; 0 when forwarding */
    json_t *body;              /* owned: local reply body, or the body to forward */
    const char *upstream;      /* NULL: reply locally; else the controller path to POST to */
};

/* Each fills *out; the caller owns out->body. */
void route_identity(struct keystore *ks, const char *agent, struct route_result *out);
void route_challenge(const char *body, size_t len, struct route_result *out);
void route_respond(struct keystore *ks, const char *body, size_t len, struct route_result *out);
void route_verify(const char *body, size_t len, struct route_result *out);
void route_signals(struct keystore *ks, const char *body, size_t len, struct route_result *out);

#endif
