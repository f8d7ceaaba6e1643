/* trust_api.h — the trust REST API on port 8080 (DESIGN §5).
 *
 *   POST /api/v1/handshake/challenge {agent_did}
 *        → {challenge_id: "challenge_<16 hex>", nonce: <64 hex>, expires_in_seconds: 30}
 *   POST /api/v1/handshake/verify    {challenge_id, agent_did, response_nonce, signature,
 *                                     required_score?, required_capabilities?}
 *        → {verified, trust_score, tier, capabilities, rejection_reason}
 *   POST /api/v1/signals             {agent_did, dimension, value, weight?, source}
 *        → {agent_did, trust_score, tier, dimensions}
 *   GET  /api/v1/agents              → {agents: [view, ...]} (sorted by namespace/name)
 *   GET  /api/v1/agents/{did}        → view: {did, name, namespace, public_key, key_id,
 *                                     trust_score, tier, dimensions, capabilities, phase}
 *   GET  /api/v1/audit/verify        → {chain_valid, entries[, first_bad_seq, first_bad_id]}
 *   GET  /healthz                    → {status: "ok"}, the one unauthenticated route
 *
 * Authentication (every route but /healthz): "Authorization: Ed25519-Timestamp
 * <did> <RFC3339> <b64 sig>" (common/auth.h) over "<METHOD> <path> <time>
 * <hex sha256(body)>", <path> being the request target exactly as sent
 * (query string included). The DID must be in the registry and not
 * Revoked; the signature must verify under its current key, or its previous
 * key during the rotation grace; the time must be within ±300 s; and each
 * signature is accepted once, recorded with trust_store->remember for 600 s
 * so every replica sharing a Redis store refuses a replay. Failures: 401.
 * Quarantined callers are served (their egress still reaches this API).
 * Signers should put a fraction in the time (".123456789Z"): Ed25519 is
 * deterministic, so two identical requests signed in the same whole second
 * are one signature, and the second is refused as a replay.
 *
 * Request bodies are JSON objects with only the route's fields (an unknown
 * field is refused, so a typo fails loudly). Every error is 4xx/5xx with
 * {"error": reason, "message": "..."} naming the problem: 400 BadRequest
 * (malformed JSON, missing / mistyped / out-of-range field), 401
 * Unauthorized, 404 NotFound (no such agent), 413 (body over max_body, sent
 * by httpd before the body is read), 429 (rate limit), 503 StoreUnavailable
 * (the trust store answered TS_UNAVAILABLE, e.g. Redis down) or
 * AuditUnavailable (no audit log configured, or PostgreSQL down).
 *
 * Handshake decisions. A verify consumes its challenge first (single use,
 * even when the rest fails), then rejects — 200 with verified:false and a
 * rejection_reason — when: the challenge is unknown, expired or already
 * used; it was issued for another DID; agent_did is not in the registry;
 * the signature over "{challenge_id}:{nonce}:{response_nonce}:{agent_did}"
 * (nonce as issued) verifies under neither the registry's current key nor
 * its previous key within the grace; the agent is Quarantined or Revoked;
 * its score is under the bar; or it lacks a required capability. The bar is
 * max(required_score, the CALLER's effective minTrustScore): the caller's
 * TrustPolicies say how trusted its peers must be, and a request can only
 * raise that bar, never lower it. Score, tier and capabilities come from the
 * registry and the trust store (decay applied at the time of the verify),
 * never from the request. A challenge is bound to the agent it was issued
 * for, not to the caller who asked for it. When agent_did is unknown, trust_score and tier
 * are null and capabilities []; otherwise they are the agent's, verified or not.
 *
 * Signals: any authenticated agent may report a signal about any agent
 * (the sidecar reports about its own agent by default); the reporter's DID
 * goes into the audit event. An agent the store has no state for yet starts
 * from its record (initial score, scoring parameters), as the reconciler
 * would create it. The store applies the signal atomically; the reconciler
 * learns of the change through the store's listener.
 *
 * Store steps. A signal, a challenge and a verify each make one store step
 * that also records the request's replay key (signal: remember + apply;
 * challenge: remember + store the challenge; verify: remember + take the
 * challenge + read the agent's state). With a store that has asynchronous
 * steps (Redis: trust_store->loop_open) the event loop does not wait for
 * them: each loop has one pipelined connection, the reply goes out when the
 * store answers, and the loop serves other requests meanwhile. Requests
 * still in flight when the API stops are ended on their loop. (A request
 * refused before its step — bad body, unknown agent — records its replay
 * key with a synchronous call first, and the GET routes read synchronously.)
 *
 * Metrics: agentmesh_handshake_duration_seconds (verify handling, buckets
 * from 100 µs), agentmesh_handshakes_total{result=verified|rejected|error},
 * agentmesh_policy_violations_total (rejections for phase, score or
 * capability), agentmesh_api_requests_total{route,code} and
 * agentmesh_api_errors_total{route,reason} (route = the route template).
 * agentmesh_audit_events_total is the audit pipeline's, counted on delivery.
 *
 * Audit events (through the callback, when set): "handshake.verified" and
 * "handshake.failed" (agent_did = the verified agent; data {challenge_id,
 * verifier, trust_score, tier, reason?}) and "trust.signal" (data
 * {dimension, value, weight, source, reporter, trust_score, tier}). */
#ifndef AGENTMESH_TRUST_API_H
#define AGENTMESH_TRUST_API_H

#include <jansson.h>
#include <openssl/ssl.h>
#include <stddef.h>
#include <stdint.h>

#include "common/identity.h"
#include "controller/agent_registry.h"
#include "controller/audit_log.h"
#include "controller/trust_engine.h"
#include "controller/trust_store.h"

#define TRUST_API_MAX_BODY (64 * 1024)
#define TRUST_API_CHALLENGE_TTL_MS 30000
#define TRUST_API_REPLAY_TTL_MS 600000     /* twice the ±300 s auth window */

/* One audit event. Called on an API thread right after the decision; must
 * not block for long (queue it). `data` (an object) is STOLEN: the callback
 * owns the reference, as audit_event_init expects. */
typedef void (*trust_api_audit_fn)(void *arg, const char *type, const char *agent_did,
                                   int64_t ts_ms, json_t *data);
/* Walks the audit chain for GET /api/v1/audit/verify (audit_log_verify).
 * 0 with *out filled, or -1 with err when the log is unavailable (→ 503). */
typedef int (*trust_api_audit_verify_fn)(void *arg, struct audit_verify_result *out, char *err,
                                         size_t errlen);

struct trust_api_options {
    const char *address;             /* NULL = "0.0.0.0" */
    int port;                        /* 8080 in production; 0 = any free port (tests) */
    int threads;                     /* event loops; 0 = 1 */
    SSL_CTX *tls;                    /* NULL = plain HTTP; else HTTPS (a reference is taken) */
    struct agent_registry *registry; /* required; outlives the API */
    struct trust_store *store;       /* required; outlives the API */
    size_t max_body;                 /* 0 = TRUST_API_MAX_BODY; larger bodies get 413 */
    int max_requests_per_second;     /* 0 = unlimited; over → 429 */
    int sched_slice_us;              /* the loops' scheduler slice (common/sched_slice.h); 0 = kernel's */
    int64_t challenge_ttl_ms;        /* 0 = TRUST_API_CHALLENGE_TTL_MS (tests shorten it) */
    trust_api_audit_fn audit;        /* NULL = no audit events */
    void *audit_arg;
    trust_api_audit_verify_fn audit_verify; /* NULL = /api/v1/audit/verify answers 503 */
    void *audit_verify_arg;
};

struct trust_api;

/* Builds the listener and its routes (nothing is bound yet). NULL with a
 * message in err on bad options or OOM. */
struct trust_api *trust_api_new(const struct trust_api_options *o, char *err, size_t errlen);
/* Binds and starts the event loops. 0, or -1 with err. */
int trust_api_start(struct trust_api *api, char *err, size_t errlen);
/* The bound port (after start). */
int trust_api_port(const struct trust_api *api);
/* Swaps the TLS context for new connections (certificate reload). 0 / -1. */
int trust_api_set_tls(struct trust_api *api, SSL_CTX *ctx);
/* Stops the loops and frees everything (the registry and store stay). */
void trust_api_free(struct trust_api *api);

/* ---- request bodies (trust_api.c), exposed for the fuzzer -------------------- */

enum trust_api_body { TRUST_API_BODY_CHALLENGE, TRUST_API_BODY_VERIFY, TRUST_API_BODY_SIGNAL };

/* Parses and checks one route's body: a JSON object with only that route's
 * fields, each present when required and well-formed. The object (new
 * reference), or NULL with a message naming the field in err. */
json_t *trust_api_parse_body(enum trust_api_body which, const char *body, size_t len, char *err,
                             size_t errlen);

/* The reply to an applied signal, {agent_did, dimensions, tier, trust_score},
 * into out: byte for byte what json_compact makes of the same object (sorted
 * keys, reals as jansson writes them), formatted in place because building
 * and dumping jansson objects was a tenth of a signal's CPU besides its
 * Ed25519 verify. did and tier need no escaping (a DID, a tier name). Its
 * length, or -1 when out is too small. */
int trust_api_signal_reply(char *out, size_t outlen, const char *did, int score, const char *tier,
                           const struct trust_state *st);

struct handshake_challenge;
struct handshake_result;

/* The challenge reply, {challenge_id, expires_in_seconds, nonce}, into
 * out, byte for byte json_compact's (the id and nonce are hex). Its
 * length, or -1 when out is too small. */
int trust_api_challenge_reply(char *out, size_t outlen, const struct handshake_challenge *ch, long long expires_s);

/* The verify reply, {capabilities, rejection_reason, tier, trust_score,
 * verified}, byte for byte json_compact's (jansson escapes the
 * capabilities and the reason). Malloc'ed, with its length in *len; NULL
 * on OOM or a reason that is not UTF-8. */
char *trust_api_verify_reply(const struct handshake_result *res, size_t *len);

/* ---- handshake core (handshake.c): no HTTP, so it is tested directly ---------- */

#define HANDSHAKE_ID_PREFIX "challenge_"
#define HANDSHAKE_ID_LEN 26                /* "challenge_" + 16 hex */
#define HANDSHAKE_NONCE_LEN 64
#define HANDSHAKE_RNONCE_MIN 16            /* response nonce: 16..128 hex digits */
#define HANDSHAKE_RNONCE_MAX 128

struct handshake_challenge {
    char id[HANDSHAKE_ID_LEN + 1];
    char nonce[HANDSHAKE_NONCE_LEN + 1];
};

/* What the store keeps for a challenge: "<agent_did> <nonce>". */
#define HANDSHAKE_VALUE_BUFSZ (ID_DID_LEN + 1 + HANDSHAKE_NONCE_LEN + 1)

/* Draws a fresh challenge for agent_did: out gets its id and nonce, value
 * the text to store under the id. 0, or -1 with err when agent_did is not a DID. */
int handshake_draw(const char *agent_did, struct handshake_challenge *out, char value[HANDSHAKE_VALUE_BUFSZ],
                   char *err, size_t errlen);

/* Issues a fresh challenge for agent_did and stores it for ttl_ms.
 * TS_OK, or TS_UNAVAILABLE / TS_INVALID with err. */
int handshake_issue(struct trust_store *s, const char *agent_did, int64_t ttl_ms,
                    struct handshake_challenge *out, char *err, size_t errlen);

struct handshake_request {
    const char *challenge_id;
    const char *agent_did;
    const char *response_nonce;
    unsigned char signature[ID_SIG_LEN];
    int bar;                           /* least acceptable score (see above) */
    const json_t *required_capabilities; /* array of strings, or NULL */
};

struct handshake_result {
    int verified;
    int known;                         /* agent_did in the registry: the fields below are set */
    int score;
    enum trust_tier tier;
    json_t *capabilities;              /* the registry's (owned reference) or NULL */
    int policy;                        /* rejected by phase, score or capability */
    char reason[256];                  /* why not verified; "" when verified */
};

/* Decides one verify from what the store gave: the challenge's stored value
 * (NULL: unknown, expired or already used) and the agent's stored state
 * (NULL: none yet, so the one its record starts from). The order of checks
 * is the list above. 0 with *out filled, verified or not; -1 with err when
 * the agent's record has bad scoring parameters. Release *out with
 * handshake_result_clear. */
int handshake_decide(struct agent_registry *reg, const struct handshake_request *req, const char *challenge,
                     const struct trust_state *stored, int64_t now_ms, struct handshake_result *out, char *err,
                     size_t errlen);
/* Takes the challenge and reads the agent's state from the store
 * (synchronously), then handshake_decide. 0 with *out filled; -1 with err
 * when the store is unavailable (→ 503; the challenge may be consumed). */
int handshake_verify(struct trust_store *s, struct agent_registry *reg,
                     const struct handshake_request *req, int64_t now_ms,
                     struct handshake_result *out, char *err, size_t errlen);
void handshake_result_clear(struct handshake_result *r);

/* The agent's trust state: the store's, or when the store has none yet, the
 * one its record starts from. TS_OK, or TS_UNAVAILABLE / TS_INVALID with err. */
int trust_api_state_of(struct trust_store *s, const struct agent_record *rec, int64_t now_ms,
                       struct trust_state *out, char *err, size_t errlen);

#endif
