/* agent_registry.h — the live view of every agent, by DID.
 *
 * The reconciler writes it (from AgentIdentity + identity Secret); the trust
 * API reads it to authenticate callers (public key, previous key during its
 * grace period, revoked keys) and to answer handshakes with the registry's
 * own capabilities and phase — never self-reported ones (DESIGN §5).
 * Thread-safe; readers get copies, so a record never changes under them. */
#ifndef AGENTMESH_AGENT_REGISTRY_H
#define AGENTMESH_AGENT_REGISTRY_H

#include "common/identity.h"
#include "controller/trust_engine.h"

#include <jansson.h>
#include <stdint.h>

#define AGENT_NS_MAX 64
#define AGENT_NAME_MAX 254
#define AGENT_PHASE_MAX 16
/* Verifiers accept the previous key for this long after a rotation (DESIGN §3). */
#define AGENT_KEY_GRACE_MS 60000

/* The registry stores a record as its fixed part (every field before `ns`,
 * copied as is) and the strings from `ns` on at their real length: new
 * fixed-size fields go before `ns`, new strings get a line in
 * agent_registry.c's string_fields. */
struct agent_record {
    unsigned char pub[ID_PUB_LEN];
    int has_prev;                     /* previous key still in its grace period */
    unsigned char prev_pub[ID_PUB_LEN];
    int64_t prev_valid_until_ms;
    int initial_score;
    struct trust_params params;       /* effective scoring of its TrustPolicies */
    int min_trust_score;              /* effective handshake bar for its peers */
    json_t *capabilities;             /* array of strings; shared, read-only */
    char ns[AGENT_NS_MAX];
    char name[AGENT_NAME_MAX];
    char did[ID_DID_BUFSZ];
    char key_id[ID_KEYID_BUFSZ];
    char phase[AGENT_PHASE_MAX];      /* Active, Quarantined, Revoked, ... */
};

struct agent_registry;

struct agent_registry *agent_registry_new(void);
void agent_registry_free(struct agent_registry *r);

/* Inserts or replaces by DID (the record is copied; capabilities increfed). 0 / -1. */
int agent_registry_put(struct agent_registry *r, const struct agent_record *rec);
/* Copies the record into *out (release with agent_record_clear). 0, or -1 when unknown. */
int agent_registry_get(struct agent_registry *r, const char *did, struct agent_record *out);
/* DID of the agent namespace/name, copied into did (ID_DID_BUFSZ). 0 / -1. */
int agent_registry_did_of(struct agent_registry *r, const char *ns, const char *name,
                          char did[ID_DID_BUFSZ]);
int agent_registry_remove(struct agent_registry *r, const char *did);
/* Calls fn for a copy of every record (sorted by namespace/name), outside the lock. */
void agent_registry_foreach(struct agent_registry *r,
                            void (*fn)(const struct agent_record *rec, void *arg), void *arg);

void agent_record_clear(struct agent_record *rec);

/* The previous key while it is still in its grace period at `now_ms`, else
 * NULL: verifiers accept it besides rec->pub (DESIGN §3). */
const unsigned char *agent_record_grace_key(const struct agent_record *rec, int64_t now_ms);

#endif
