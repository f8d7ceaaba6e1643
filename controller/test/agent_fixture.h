/* agent_fixture.h — a test identity registered as an agent, for the trust
 * API's unit test, the e2e tests and the benchmark that drive the API
 * directly (no reconciler fills the registry there).
 *
 * Header-only: CMake builds every test and bench .c as a program of its own. */
#ifndef AGENTMESH_AGENT_FIXTURE_H
#define AGENTMESH_AGENT_FIXTURE_H

#include <stdio.h>
#include <string.h>

#include "common/identity.h"
#include "controller/agent_registry.h"

/* Puts `id` into `reg` as agent ns/name with this phase, initial score,
 * handshake bar and capabilities (a JSON array). 0, or -1 on bad JSON or
 * out of memory. */
static inline int fixture_put_agent(struct agent_registry *reg, const struct identity *id, const char *ns,
                                    const char *name, const char *phase, int initial_score, int min_trust_score,
                                    const char *capabilities_json)
{
    struct agent_record rec;
    memset(&rec, 0, sizeof rec);
    snprintf(rec.ns, sizeof rec.ns, "%s", ns);
    snprintf(rec.name, sizeof rec.name, "%s", name);
    snprintf(rec.did, sizeof rec.did, "%s", id->did);
    snprintf(rec.key_id, sizeof rec.key_id, "%s", id->key_id);
    memcpy(rec.pub, id->pk, ID_PUB_LEN);
    snprintf(rec.phase, sizeof rec.phase, "%s", phase);
    rec.initial_score = initial_score;
    rec.min_trust_score = min_trust_score;
    trust_params_default(&rec.params);
    rec.capabilities = json_loads(capabilities_json, 0, NULL);
    int rc = rec.capabilities && json_is_array(rec.capabilities) ? agent_registry_put(reg, &rec) : -1;
    agent_record_clear(&rec);
    return rc;
}

#endif
