/* agent_reconciler.c — converges one AgentIdentity to DESIGN §3.
 *
 * Order of work for an agent: identity Secret (the key comes first: the DID
 * names everything else), ServiceAccount, trust state and enforcement,
 * NetworkPolicy, registry, then status. Children are compared with what the
 * label-scoped informers hold and written only when they differ, so a
 * steady cluster costs no API writes. All writes to children are
 * server-side apply under our field manager; status goes through /status;
 * spec is never written. */
#include "controller/controller.h"

#include "common/identity.h"
#include "common/json.h"
#include "common/log.h"
#include "common/metrics.h"
#include "controller/agent_render.h"
#include "controller/trust_policy.h"

#include <math.h>
#include <stdarg.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LOG "reconciler"

/* What one reconcile learned about the agent, feeding status and the registry. */
struct agent_view {
    const char *ns, *name;
    json_t *agid;
    long long generation;
    struct identity id;             /* secret key zeroed unless rotating */
    int have_identity;
    long long rotated_at;           /* unix s */
    int has_prev;
    unsigned char prev_pub[ID_PUB_LEN];
    char secret_name[300];
    int score;
    enum trust_tier tier;
    double dims[TRUST_DIM_COUNT];
    int have_score;
    struct trust_enforcement enforcement;
    int preexisting_sa;
    long long injected_pods;
    json_t *conditions;
    char now[32];
    /* A new agent's first children are told in one Event ("Provisioned"),
     * not one per child: three Events per new agent were a third of the
     * controller's writes when a thousand agents arrive at once. */
    int provisioning;
    char provisioned[512];
};

/* Tells one step of a transition: folded into the "Provisioned" note while a
 * new agent is being set up, its own Event otherwise. */
static void note_transition(struct controller *c, struct agent_view *v, const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void note_transition(struct controller *c, struct agent_view *v, const char *reason, const char *fmt, ...) {
    char msg[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (!v->provisioning) {
        events_record(c->events, v->agid, "Normal", reason, "%s", msg);
        return;
    }
    size_t used = strlen(v->provisioned);
    snprintf(v->provisioned + used, sizeof v->provisioned - used, "%s%s", used ? "; " : "", msg);
}

static long long now_unix(void) { return (long long)time(NULL); }

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct metric *rotations_metric(void) {
    return metrics_counter("agentmesh_credential_rotations_total",
                           "Ed25519 key rotations of agent identities, by result.", "result");
}

static struct metric *score_metric(void) {
    return metrics_gauge("agentmesh_trust_score", "Current trust score (0-1000) of each agent.",
                         "namespace,agent");
}

/* ---- identity Secret ---------------------------------------------------- */

/* Base64-decodes Secret.data[key] into buf (NUL-terminated). Length or -1. */
static long secret_field(const json_t *secret, const char *key, char *buf, size_t buflen) {
    json_t *v = json_object_get(json_object_get(secret, "data"), key);
    const char *s = json_string_value(v);
    if (!s) return -1;
    size_t len = strlen(s);
    size_t out = len / 4 * 3;
    if (len % 4 || out >= buflen) return -1;
    unsigned char *tmp = (unsigned char *)buf;
    /* decode_exact wants the exact size: derive it from the padding */
    size_t want = out - (len >= 1 && s[len - 1] == '=') - (len >= 2 && s[len - 2] == '=');
    if (b64_decode_exact(s, len, tmp, want) != 0) return -1;
    buf[want] = '\0';
    return (long)want;
}

/* Reads the public half of the identity from a (possibly stripped) Secret. 0 / -1. */
static int identity_public_from_secret(const json_t *secret, struct agent_view *v) {
    char pub_b64[ID_PUB_B64_BUFSZ + 4], did[ID_DID_BUFSZ + 4], key_id[ID_KEYID_BUFSZ + 4];
    if (secret_field(secret, "ed25519.pub", pub_b64, sizeof pub_b64) != ID_PUB_B64_LEN ||
        secret_field(secret, "did", did, sizeof did) != ID_DID_LEN ||
        secret_field(secret, "key-id", key_id, sizeof key_id) != ID_KEYID_LEN)
        return -1;
    if (b64_decode_exact(pub_b64, ID_PUB_B64_LEN, v->id.pk, ID_PUB_LEN) != 0) return -1;
    char derived[ID_KEYID_BUFSZ];
    identity_key_id_from_pub(v->id.pk, derived);
    if (strcmp(derived, key_id) != 0 || !identity_did_valid(did)) return -1;
    memcpy(v->id.did, did, ID_DID_BUFSZ);           /* lengths checked above */
    memcpy(v->id.key_id, key_id, ID_KEYID_BUFSZ);
    memcpy(v->id.pub_b64, pub_b64, ID_PUB_B64_BUFSZ);
    json_t *ann = json_at(secret, "metadata.annotations");
    const char *rotated = json_string_value(json_object_get(ann, ANNOTATION_ROTATED_AT));
    if (!rotated || rfc3339_parse(rotated, &v->rotated_at) != 0)
        v->rotated_at = 0;
    const char *prev = json_string_value(json_object_get(ann, ANNOTATION_PREVIOUS_KEY));
    v->has_prev = prev && strlen(prev) == ID_PUB_B64_LEN &&
                  b64_decode_exact(prev, ID_PUB_B64_LEN, v->prev_pub, ID_PUB_LEN) == 0;
    v->have_identity = 1;
    return 0;
}

/* The agent's pending on-demand rotation request (annotation value), or NULL. */
static const char *rotate_request(const json_t *agid) {
    return json_string_value(json_object_get(json_at(agid, "metadata.annotations"), ANNOTATION_ROTATE_REQUEST));
}

/* The Secret object for an identity, with rotation bookkeeping annotations. */
static json_t *render_identity_secret(const struct agent_view *v, const char *proof_b64,
                                      const char *prev_pub_b64) {
    json_t *data = identity_secret_data(&v->id, proof_b64);
    if (!data) return NULL;
    char rotated[32];
    rfc3339(v->rotated_at, rotated, sizeof rotated);
    json_t *ann = json_pack("{s:s}", ANNOTATION_ROTATED_AT, rotated);
    if (prev_pub_b64) json_object_set_new(ann, ANNOTATION_PREVIOUS_KEY, json_string(prev_pub_b64));
    const char *request = rotate_request(v->agid);
    if (request) json_object_set_new(ann, ANNOTATION_ROTATE_REQUEST, json_string(request));
    return json_pack("{s:s, s:s, s:s, s:{s:s, s:s, s:{s:s, s:s}, s:o, s:o}, s:o}", "apiVersion", "v1",
                     "kind", "Secret", "type", SECRET_TYPE_IDENTITY, "metadata", "name",
                     v->secret_name, "namespace", v->ns, "labels", LABEL_MANAGED_BY,
                     LABEL_MANAGED_BY_VALUE, LABEL_AGENT, v->name, "annotations", ann,
                     "ownerReferences", render_owner_refs(v->agid), "data", data);
}

#define CREATE_EXISTS 1   /* create_identity: the Secret is already there */

/* Creates the identity Secret with a fresh key. The DID is kept from status
 * when the agent had one (its Secret was deleted): the DID names the agent for life.
 * Returns CREATE_EXISTS when the Secret exists after all (the cache lagged). */
static int create_identity(struct controller *c, struct agent_view *v) {
    const char *old_did = json_str_at(v->agid, "status.did");
    if (identity_generate(&v->id) != 0) return -1;
    if (old_did && identity_did_valid(old_did)) snprintf(v->id.did, sizeof v->id.did, "%s", old_did);
    v->rotated_at = now_unix();
    json_t *secret = render_identity_secret(v, NULL, NULL);
    struct kube_result r = {0};
    int rc = secret ? kube_create(c->client, &GVR_SECRETS, v->ns, secret, &r) : -1;
    json_decref(secret);
    sodium_memzero(v->id.sk, sizeof v->id.sk); /* the reconciler keeps only the public half */
    if (rc != 0 && kube_is_reason(&r, "AlreadyExists")) {
        kube_result_free(&r);
        return CREATE_EXISTS;
    }
    if (rc != 0) {
        log_warn(LOG, "%s/%s: cannot create identity Secret: %s %s", v->ns, v->name, r.reason, r.message);
        kube_result_free(&r);
        return -1;
    }
    kube_result_free(&r);
    v->have_identity = 1;
    v->has_prev = 0;
    /* A first key belongs in the new agent's Provisioned Event; an agent that
     * already had a DID lost its Secret, and that is an Event of its own. */
    v->provisioning = old_did == NULL;
    note_transition(c, v, "KeyRecreated", "Ed25519 key %s generated for %s", v->id.key_id, v->id.did);
    return 0;
}

/* Rotates the key: old key signs the new one, old public key stays valid
 * for AGENT_KEY_GRACE_MS unless `revoke`, in which case it is refused at once. */
static int rotate_identity(struct controller *c, struct agent_view *v, int revoke) {
    struct kube_result r = {0};
    if (kube_get(c->client, &GVR_SECRETS, v->ns, v->secret_name, NULL, &r) != 0) {
        kube_result_free(&r);
        return -1;
    }
    struct identity old, next;
    char err[256], proof[ID_SIG_B64_BUFSZ];
    int rc = identity_from_secret_data(json_object_get(r.body, "data"), &old, err, sizeof err);
    if (rc == 0) rc = identity_rotate(&old, &next, proof, sizeof proof);
    if (rc != 0) {
        log_warn(LOG, "%s/%s: cannot rotate key: %s", v->ns, v->name, err);
        identity_wipe(&old);
        kube_result_free(&r);
        metric_add(rotations_metric(), 1, "error");
        return -1;
    }
    char old_pub[ID_PUB_B64_BUFSZ], old_key_id[ID_KEYID_BUFSZ];
    snprintf(old_pub, sizeof old_pub, "%s", old.pub_b64);
    snprintf(old_key_id, sizeof old_key_id, "%s", old.key_id);
    identity_wipe(&old);
    v->id = next;
    identity_wipe(&next);
    v->rotated_at = now_unix();
    json_t *secret = render_identity_secret(v, proof, revoke ? NULL : old_pub);
    sodium_memzero(v->id.sk, sizeof v->id.sk);
    if (secret) {
        json_set_at(secret, "metadata.resourceVersion",
                    json_string(json_str_at(r.body, "metadata.resourceVersion")));
        if (revoke)
            json_object_set_new(json_at(secret, "metadata.annotations"), "agentmesh.io/revoked-key-id",
                                json_string(old_key_id));
    }
    kube_result_free(&r);
    rc = secret ? kube_update(c->client, &GVR_SECRETS, v->ns, v->secret_name, NULL, secret, &r) : -1;
    json_decref(secret);
    if (rc != 0) {
        log_warn(LOG, "%s/%s: cannot store rotated key: %s %s", v->ns, v->name, r.reason, r.message);
        kube_result_free(&r);
        metric_add(rotations_metric(), 1, "error");
        return -1;
    }
    kube_result_free(&r);
    v->has_prev = !revoke;
    if (!revoke && b64_decode_exact(old_pub, ID_PUB_B64_LEN, v->prev_pub, ID_PUB_LEN) != 0) v->has_prev = 0;
    metric_add(rotations_metric(), 1, revoke ? "revoked" : "success");
    events_record(c->events, v->agid, revoke ? "Warning" : "Normal", revoke ? "KeyRevoked" : "KeyRotated",
                  "key %s replaced by %s%s", old_key_id, v->id.key_id,
                  revoke ? "; the old key is refused at once" : "; the old key is accepted for 60 s");
    return 0;
}

/* Labels and ownerReferences of the Secret, restored if edited by hand. */
static int restore_secret_metadata(struct controller *c, struct agent_view *v, const json_t *secret) {
    json_t *want = json_pack("{s:{s:{s:s, s:s}, s:o}}", "metadata", "labels", LABEL_MANAGED_BY,
                             LABEL_MANAGED_BY_VALUE, LABEL_AGENT, v->name, "ownerReferences",
                             render_owner_refs(v->agid));
    int rc = 0;
    if (!json_subset(want, secret)) {
        struct kube_result r = {0};
        rc = kube_patch(c->client, &GVR_SECRETS, v->ns, v->secret_name, NULL, KUBE_PATCH_MERGE, want,
                        NULL, 0, &r);
        if (rc == 0) events_record(c->events, v->agid, "Normal", "SecretRestored",
                                   "restored labels/owner of Secret %s", v->secret_name);
        kube_result_free(&r);
    }
    json_decref(want);
    return rc;
}

static int ensure_identity(struct controller *c, struct agent_view *v, int revoke, double *requeue) {
    if (agent_secret_name(v->name, v->secret_name, sizeof v->secret_name) != 0) return -1;
    json_t *secret = informer_get_by_name(c->secrets, v->ns, v->secret_name);
    int rc = 0;
    /* Not cached: almost always a new agent, so create it straight away; only
     * when the cache lagged a create of ours does that cost a second request. */
    if (!secret && (rc = create_identity(c, v)) == CREATE_EXISTS) {
        struct kube_result r = {0};
        rc = kube_get(c->client, &GVR_SECRETS, v->ns, v->secret_name, NULL, &r);
        if (rc == 0) secret = json_incref(r.body);
        kube_result_free(&r);
    }
    if (secret && identity_public_from_secret(secret, v) != 0) {
        /* Corrupted by hand: replace it, keeping the DID. */
        events_record(c->events, v->agid, "Warning", "KeyInvalid",
                      "Secret %s holds no valid identity; generating a new key", v->secret_name);
        struct kube_result r = {0};
        rc = kube_delete(c->client, &GVR_SECRETS, v->ns, v->secret_name, NULL, &r);
        kube_result_free(&r);
        if (rc == 0 && create_identity(c, v) != 0) rc = -1;
    } else if (secret) {
        rc = restore_secret_metadata(c, v, secret);
        json_t *ann = json_at(secret, "metadata.annotations");
        const char *revoked = json_string_value(json_object_get(ann, "agentmesh.io/revoked-key-id"));
        long long interval = json_int_at(v->agid, "spec.keyRotation.intervalSeconds", 0);
        long long due = interval > 0 ? v->rotated_at + interval : 0;
        const char *asked = rotate_request(v->agid);
        const char *served = json_string_value(json_object_get(ann, ANNOTATION_ROTATE_REQUEST));
        int requested = asked && (!served || strcmp(asked, served) != 0);
        if (rc == 0 && revoke && !(revoked && v->has_prev == 0 && v->rotated_at > 0 && revoked[0])) {
            rc = rotate_identity(c, v, 1);
        } else if (rc == 0 && (requested || (due && now_unix() >= due))) {
            rc = rotate_identity(c, v, 0);
            due = now_unix() + interval;
        }
        if (due && (*requeue <= 0 || due - now_unix() < *requeue)) *requeue = (double)(due - now_unix()) + 0.5;
    }
    json_decref(secret);
    conditions_set(v->conditions, "KeyReady", rc == 0, rc == 0 ? "KeyAvailable" : "KeyError",
                   rc == 0 ? "Ed25519 identity key is stored in the identity Secret"
                           : "the identity Secret could not be created or read",
                   v->generation, v->now);
    return rc;
}

/* ---- ServiceAccount -------------------------------------------------------- */

static int ensure_service_account(struct controller *c, struct agent_view *v) {
    const char *sa_name = agent_sa_name(v->agid);
    json_t *sa = informer_get_by_name(c->sas, v->ns, sa_name);
    int conflict = 0;
    if (sa) {
        json_t *labels = json_at(sa, "metadata.labels");
        const char *owner = json_string_value(json_object_get(labels, LABEL_AGENT));
        conflict = owner && strcmp(owner, v->name) != 0;
        const char *pre = json_string_value(json_object_get(json_at(sa, "metadata.annotations"),
                                                            ANNOTATION_PREEXISTING));
        v->preexisting_sa = (pre && strcmp(pre, "true") == 0) || !owner;
    } else {
        struct kube_result r = {0};
        if (kube_get(c->client, &GVR_SERVICEACCOUNTS, v->ns, sa_name, NULL, &r) == 0) {
            json_t *labels = json_at(r.body, "metadata.labels");
            const char *owner = json_string_value(json_object_get(labels, LABEL_AGENT));
            conflict = owner && strcmp(owner, v->name) != 0;
            /* Not labelled by us: someone else (eksctl, GitOps) made it. */
            v->preexisting_sa = owner == NULL;
            sa = json_incref(r.body);
        } else if (!kube_is_reason(&r, "NotFound")) {
            kube_result_free(&r);
            conditions_set(v->conditions, "ServiceAccountReady", 0, "APIError", "cannot read the ServiceAccount",
                           v->generation, v->now);
            return -1;
        }
        kube_result_free(&r);
    }
    if (conflict) {
        json_decref(sa);
        conditions_set(v->conditions, "ServiceAccountReady", 0, "Conflict",
                       "the ServiceAccount belongs to another AgentIdentity", v->generation, v->now);
        return 0; /* nothing a retry can fix; status says why */
    }
    json_t *want = render_service_account(v->agid, v->preexisting_sa);
    int rc = 0;
    if (!json_subset(want, sa)) {
        struct kube_result r = {0};
        rc = kube_patch(c->client, &GVR_SERVICEACCOUNTS, v->ns, sa_name, NULL, KUBE_PATCH_APPLY, want,
                        AGENTMESH_FIELD_MANAGER, 1, &r);
        if (rc != 0)
            log_warn(LOG, "%s/%s: apply ServiceAccount %s: %s %s", v->ns, v->name, sa_name, r.reason, r.message);
        else
            note_transition(c, v, sa ? "ServiceAccountUpdated" : "ServiceAccountCreated", "ServiceAccount %s %s",
                            sa_name, v->preexisting_sa ? "adopted (pre-existing)" : "applied");
        kube_result_free(&r);
    }
    json_decref(want);
    json_decref(sa);
    conditions_set(v->conditions, "ServiceAccountReady", rc == 0, rc == 0 ? "Applied" : "APIError",
                   rc == 0 ? "ServiceAccount carries the agent's labels and cloud binding"
                           : "server-side apply of the ServiceAccount failed",
                   v->generation, v->now);
    return rc;
}

/* CloudBindingReady: which binding the ServiceAccount carries. */
static void cloud_condition(struct agent_view *v) {
    const json_t *cloud = json_at(v->agid, "spec.cloud");
    size_t n = json_is_object(cloud) ? json_object_size(cloud) : 0;
    const char *which = json_at(cloud, "aws") ? "AWS IRSA" : json_at(cloud, "azure") ? "Azure Workload Identity"
                        : json_at(cloud, "gcp") ? "GKE Workload Identity" : NULL;
    if (n > 1)
        conditions_set(v->conditions, "CloudBindingReady", 0, "MultipleClouds",
                       "spec.cloud: at most one of aws, azure, gcp", v->generation, v->now);
    else if (!which)
        conditions_set(v->conditions, "CloudBindingReady", 1, "NoCloudBinding",
                       "no cloud workload identity requested", v->generation, v->now);
    else {
        char msg[128];
        snprintf(msg, sizeof msg, "%s binding annotated on the ServiceAccount", which);
        conditions_set(v->conditions, "CloudBindingReady", 1, "Bound", msg, v->generation, v->now);
    }
}

/* ---- trust ---------------------------------------------------------------- */

/* Restores a state from status.dimensions (memory backend after a restart). */
static int state_from_status(const json_t *agid, const struct trust_params *params, struct trust_state *st) {
    const json_t *dims = json_at(agid, "status.dimensions");
    if (!json_is_object(dims)) return -1;
    for (int d = 0; d < TRUST_DIM_COUNT; d++) {
        json_t *x = json_object_get(dims, trust_dim_name((enum trust_dim)d));
        if (!json_is_number(x)) return -1;
        st->dims[d] = json_number_value(x);
    }
    st->params = *params;
    st->last_positive_ms = now_ms();
    return 0;
}

static void evaluate_trust(struct controller *c, struct agent_view *v, const struct trust_policy *eff) {
    char err[256];
    struct trust_state st;
    int rc = c->store->get(c->store, v->id.did, &st, err, sizeof err);
    if (rc == TS_NOT_FOUND) {
        int initial = (int)json_int_at(v->agid, "spec.trust.initialScore", TRUST_SCORE_DEFAULT);
        if (state_from_status(v->agid, &eff->scoring, &st) != 0 &&
            trust_state_init(&st, initial, &eff->scoring, now_ms(), err, sizeof err) != 0)
            trust_state_init(&st, TRUST_SCORE_DEFAULT, &eff->scoring, now_ms(), err, sizeof err);
        rc = c->store->create(c->store, v->id.did, &st, err, sizeof err);
        if (rc == TS_EXISTS) rc = c->store->get(c->store, v->id.did, &st, err, sizeof err);
    } else if (rc == TS_OK && memcmp(&st.params, &eff->scoring, sizeof st.params) != 0) {
        st.params = eff->scoring;
        rc = c->store->set_params(c->store, v->id.did, &eff->scoring, err, sizeof err);
    }
    if (rc != TS_OK) {
        log_warn(LOG, "%s/%s: trust store: %s", v->ns, v->name, err);
        v->score = (int)json_int_at(v->agid, "status.trustScore",
                                    json_int_at(v->agid, "spec.trust.initialScore", TRUST_SCORE_DEFAULT));
        v->tier = trust_tier_of(v->score);
        conditions_set(v->conditions, "Trusted", 0, "TrustStoreUnavailable", err, v->generation, v->now);
        return;
    }
    v->have_score = 1;
    memcpy(v->dims, st.dims, sizeof v->dims);
    v->score = trust_score(&st, now_ms());
    v->tier = trust_tier_of(v->score);
}

/* Capabilities as a C array for the policy subject (borrowed strings). */
static size_t capability_list(const json_t *agid, const char **out, size_t max) {
    const json_t *caps = json_at(agid, "spec.capabilities");
    size_t n = 0, i;
    json_t *cap;
    json_array_foreach(caps, i, cap) {
        if (n < max && json_is_string(cap)) out[n++] = json_string_value(cap);
    }
    return n;
}

static void enforce(struct agent_view *v, const struct trust_policy *eff) {
    const char *caps[64];
    size_t ncaps = capability_list(v->agid, caps, 64);
    struct policy_subject subject = {v->score, v->tier, json_str_at(v->agid, "status.phase"), caps, ncaps,
                                     v->have_score ? v->dims : NULL};
    int suspended = json_bool_at(v->agid, "spec.suspended", 0);
    trust_policy_enforce(eff, &subject, suspended, &v->enforcement);
    int active = v->enforcement.phase == TRUST_PHASE_ACTIVE;
    if (v->have_score)
        conditions_set(v->conditions, "Trusted", active, v->enforcement.reason, v->enforcement.message,
                       v->generation, v->now);
}

/* ---- NetworkPolicy ----------------------------------------------------------- */

static int ensure_network_policy(struct controller *c, struct agent_view *v, const struct trust_policy *eff) {
    json_t *allow = eff->has_allow_from ? label_selector_to_json(&eff->allow_from_namespaces) : NULL;
    struct netpol_inputs in = {
        .min_tier = (int)trust_tier_of(eff->min_trust_score),
        .allow_from_namespaces = allow,
        .operator_namespace = c->operator_namespace,
        .quarantined = v->enforcement.phase != TRUST_PHASE_ACTIVE,
        .controller_api_port = c->api_port,
    };
    json_t *want = render_network_policy(v->agid, &in);
    char name[300];
    agent_netpol_name(v->name, name, sizeof name);
    json_t *have = informer_get_by_name(c->netpols, v->ns, name);
    int rc = 0;
    if (!want) rc = -1;
    else if (!json_subset(want, have) || !json_equal(json_at(want, "spec"), json_at(have, "spec"))) {
        struct kube_result r = {0};
        rc = kube_patch(c->client, &GVR_NETWORKPOLICIES, v->ns, name, NULL, KUBE_PATCH_APPLY, want,
                        AGENTMESH_FIELD_MANAGER, 1, &r);
        if (rc != 0)
            log_warn(LOG, "%s/%s: apply NetworkPolicy: %s %s", v->ns, v->name, r.reason, r.message);
        else
            note_transition(c, v, "NetworkPolicyApplied", "NetworkPolicy %s: %s", name,
                            in.quarantined ? "quarantine (ingress none, egress DNS + controller API)"
                                           : "ingress from agents at or above the trust bar");
        kube_result_free(&r);
    }
    conditions_set(v->conditions, "NetworkPolicyReady", rc == 0, rc == 0 ? "Applied" : "APIError",
                   rc == 0 ? (in.quarantined ? "quarantine NetworkPolicy in force" : "NetworkPolicy admits peers meeting the trust bar")
                           : "server-side apply of the NetworkPolicy failed",
                   v->generation, v->now);
    json_decref(have);
    json_decref(want);
    json_decref(allow);
    return rc;
}

/* ---- agent pods ---------------------------------------------------------------- */

/* The tier label this agent's pods should carry. */
static const char *pod_tier_label(const struct agent_view *v) {
    return v->enforcement.phase == TRUST_PHASE_ACTIVE ? trust_tier_name(v->tier) : TIER_LABEL_QUARANTINED;
}

/* Keeps agentmesh.io/tier current on every pod of the agent (the pods the
 * webhook labelled agentmesh.io/agent=X) and counts them for status.injectedPods. */
static int label_agent_pods(struct controller *c, struct agent_view *v, long long *count) {
    char agent_key[AGENT_NS_MAX + AGENT_NAME_MAX + 2];
    snprintf(agent_key, sizeof agent_key, "%s/%s", v->ns, v->name);
    json_t *pods = informer_list_index(c->pods, agent_key);
    const char *want = pod_tier_label(v);
    int rc = 0;
    size_t i;
    json_t *pod;
    *count = 0;
    json_array_foreach(pods, i, pod) {
        json_t *labels = json_at(pod, "metadata.labels");
        if (json_at(pod, "metadata.deletionTimestamp")) continue;
        (*count)++;
        const char *have = json_string_value(json_object_get(labels, LABEL_TIER));
        if (have && strcmp(have, want) == 0) continue;
        json_t *patch = json_pack("{s:{s:{s:s}}}", "metadata", "labels", LABEL_TIER, want);
        struct kube_result r = {0};
        if (kube_patch(c->client, &GVR_PODS, v->ns, json_str_at(pod, "metadata.name"), NULL, KUBE_PATCH_MERGE, patch,
                       NULL, 0, &r) != 0 && !kube_is_reason(&r, "NotFound")) {
            log_warn(LOG, "%s/%s: labelling pod %s: %s", v->ns, v->name, json_str_at(pod, "metadata.name"), r.message);
            rc = -1;
        }
        kube_result_free(&r);
        json_decref(patch);
    }
    json_decref(pods);
    return rc;
}

/* ---- finalizer ------------------------------------------------------------------ */

static int has_finalizer(const json_t *agid) {
    size_t i;
    json_t *f;
    json_array_foreach(json_at(agid, "metadata.finalizers"), i, f) {
        if (json_is_string(f) && strcmp(json_string_value(f), AGENTMESH_FINALIZER) == 0) return 1;
    }
    return 0;
}

/* Adds (add=1) or removes our finalizer, guarded by resourceVersion. */
static int set_finalizer(struct controller *c, const json_t *agid, int add) {
    json_t *list = json_array();
    size_t i;
    json_t *f;
    json_array_foreach(json_at(agid, "metadata.finalizers"), i, f) {
        if (!json_is_string(f) || strcmp(json_string_value(f), AGENTMESH_FINALIZER) != 0)
            json_array_append(list, f);
    }
    if (add) json_array_append_new(list, json_string(AGENTMESH_FINALIZER));
    json_t *patch = json_pack("{s:{s:o, s:s}}", "metadata", "finalizers", list, "resourceVersion",
                              json_str_at(agid, "metadata.resourceVersion"));
    struct kube_result r = {0};
    int rc = kube_patch(c->client, &GVR_AGENTIDENTITIES, json_str_at(agid, "metadata.namespace"),
                        json_str_at(agid, "metadata.name"), NULL, KUBE_PATCH_MERGE, patch, NULL, 0, &r);
    if (rc != 0)
        log_warn(LOG, "%s/%s: cannot %s finalizer: %s %s", json_str_at(agid, "metadata.namespace"),
                 json_str_at(agid, "metadata.name"), add ? "add the" : "remove the", r.reason, r.message);
    json_decref(patch);
    kube_result_free(&r);
    return rc;
}

static int namespace_terminating(struct controller *c, const char *ns) {
    static const struct kube_gvr namespaces = {"", "v1", "namespaces", 0};
    struct kube_result r = {0};
    int terminating = kube_get(c->client, &namespaces, NULL, ns, NULL, &r) == 0 &&
                      json_at(r.body, "metadata.deletionTimestamp") != NULL;
    kube_result_free(&r);
    return terminating;
}

/* Deletion: remove our fields from a pre-existing ServiceAccount, then let go. */
static int finalize(struct controller *c, const json_t *agid) {
    if (!has_finalizer(agid)) return 0;
    const char *ns = json_str_at(agid, "metadata.namespace");
    const char *sa = agent_sa_name(agid);
    /* A ServiceAccount that is gone, or going with its terminating namespace,
     * has nothing left to release; applying to it would only fail forever
     * and wedge the namespace deletion behind our finalizer. */
    struct kube_result r = {0};
    int rc = kube_get(c->client, &GVR_SERVICEACCOUNTS, ns, sa, NULL, &r);
    int gone = rc != 0 && kube_is_reason(&r, "NotFound");
    if (rc == 0) gone = namespace_terminating(c, ns);
    kube_result_free(&r);
    memset(&r, 0, sizeof r);
    if (gone) {
        rc = 0;
    } else if (rc == 0) {
        json_t *release = render_service_account_release(ns, sa);
        rc = kube_patch(c->client, &GVR_SERVICEACCOUNTS, ns, sa, NULL, KUBE_PATCH_APPLY, release,
                        AGENTMESH_FIELD_MANAGER, 1, &r);
        json_decref(release);
    }
    if (rc != 0) log_warn(LOG, "%s/%s: releasing ServiceAccount %s: %s", ns, json_str_at(agid, "metadata.name"), sa, r.message);
    kube_result_free(&r);
    if (rc == 0) {
        rc = set_finalizer(c, agid, 0);
        if (rc == 0) log_info(LOG, "%s/%s: released pre-existing ServiceAccount %s", ns, json_str_at(agid, "metadata.name"), sa);
    }
    return rc;
}

/* ---- status ------------------------------------------------------------------------ */

static json_t *desired_status(const struct agent_view *v) {
    char rotated[32];
    rfc3339(v->rotated_at, rotated, sizeof rotated);
    json_t *st = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:i, s:s, s:s, s:I, s:O}", "did",
                           v->id.did, "publicKey", v->id.pub_b64, "keyId", v->id.key_id, "keyRotatedAt",
                           rotated, "serviceAccountName", agent_sa_name(v->agid), "secretName",
                           v->secret_name, "trustScore", v->score, "tier", trust_tier_name(v->tier),
                           "phase", trust_phase_name(v->enforcement.phase), "observedGeneration",
                           (json_int_t)v->generation, "conditions", v->conditions);
    if (!v->have_identity) {
        json_object_del(st, "did");
        json_object_del(st, "publicKey");
        json_object_del(st, "keyId");
        json_object_del(st, "keyRotatedAt");
    }
    json_t *dims = json_object();
    for (int d = 0; d < TRUST_DIM_COUNT; d++)
        json_object_set_new(dims, trust_dim_name((enum trust_dim)d), json_integer((json_int_t)trust_round(v->dims[d])));
    if (v->have_score) json_object_set_new(st, "dimensions", dims);
    else json_decref(dims);
    json_object_set_new(st, "injectedPods", json_integer(v->injected_pods));
    return st;
}

/* 1 when the two statuses differ only in score/dimensions (same tier): throttled writes. */
static int only_score_changed(const json_t *old, const json_t *want) {
    json_t *a = json_deep_copy(old), *b = json_deep_copy(want);
    json_object_del(a, "trustScore");
    json_object_del(a, "dimensions");
    json_object_del(b, "trustScore");
    json_object_del(b, "dimensions");
    int same = json_equal(a, b);
    json_decref(a);
    json_decref(b);
    return same;
}

static double monotonic(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int write_status(struct controller *c, struct agent_view *v, const char *key, double *requeue) {
    json_t *want = desired_status(v);
    json_t *old = json_at(v->agid, "status");
    const char *rv = json_str_at(v->agid, "metadata.resourceVersion");
    int rc = 0;
    if (json_equal(want, old)) {
        /* nothing to write */
    } else if (status_throttle_cache_behind(c->status_writes, key, rv)) {
        log_debug(LOG, "%s: status write of ours not cached yet; its watch event brings the agent back", key);
        json_decref(want);
        return 0;
    } else {
        double wait = status_throttle_admit(c->status_writes, key, old && only_score_changed(old, want), monotonic());
        if (wait > 0) {
            if (*requeue <= 0 || wait < *requeue) *requeue = wait;
        } else {
            json_t *patch = json_pack("{s:O}", "status", want);
            struct kube_result r = {0};
            rc = kube_patch(c->client, &GVR_AGENTIDENTITIES, v->ns, v->name, "status", KUBE_PATCH_MERGE, patch,
                            NULL, 0, &r);
            if (rc != 0) log_warn(LOG, "%s/%s: status: %s %s", v->ns, v->name, r.reason, r.message);
            else status_throttle_wrote(c->status_writes, key, rv, json_str_at(r.body, "metadata.resourceVersion"));
            kube_result_free(&r);
            json_decref(patch);
        }
    }
    const char *old_phase = json_str_at(old, "phase");
    const char *new_phase = json_str_at(want, "phase");
    if (rc == 0 && old_phase && strcmp(old_phase, new_phase) != 0)
        events_record(c->events, v->agid, strcmp(new_phase, "Active") ? "Warning" : "Normal", "PhaseChanged",
                      "phase %s -> %s: %s", old_phase, new_phase, v->enforcement.message);
    const char *old_tier = json_str_at(old, "tier");
    if (rc == 0 && old_tier && strcmp(old_tier, trust_tier_name(v->tier)) != 0) {
        events_record(c->events, v->agid, "Normal", "TierChanged", "trust tier %s -> %s (score %d)", old_tier,
                      trust_tier_name(v->tier), v->score);
    }
    json_decref(want);
    return rc;
}

/* ---- registry -------------------------------------------------------------------------- */

static void publish(struct controller *c, const struct agent_view *v, const struct trust_policy *eff) {
    struct agent_record rec;
    memset(&rec, 0, sizeof rec);
    snprintf(rec.ns, sizeof rec.ns, "%s", v->ns);
    snprintf(rec.name, sizeof rec.name, "%s", v->name);
    snprintf(rec.did, sizeof rec.did, "%s", v->id.did);
    snprintf(rec.key_id, sizeof rec.key_id, "%s", v->id.key_id);
    memcpy(rec.pub, v->id.pk, ID_PUB_LEN);
    rec.has_prev = v->has_prev;
    memcpy(rec.prev_pub, v->prev_pub, ID_PUB_LEN);
    rec.prev_valid_until_ms = (int64_t)v->rotated_at * 1000 + AGENT_KEY_GRACE_MS;
    snprintf(rec.phase, sizeof rec.phase, "%s", trust_phase_name(v->enforcement.phase));
    rec.initial_score = (int)json_int_at(v->agid, "spec.trust.initialScore", TRUST_SCORE_DEFAULT);
    rec.params = eff->scoring;
    rec.min_trust_score = eff->min_trust_score;
    json_t *caps = json_at(v->agid, "spec.capabilities");
    rec.capabilities = json_is_array(caps) ? json_deep_copy(caps) : json_array();
    if (agent_registry_put(c->registry, &rec) != 0) log_warn(LOG, "%s/%s: registry full", v->ns, v->name);
    agent_record_clear(&rec);
    metric_set(score_metric(), v->score, v->ns, v->name);
}

/* ---- entry point ------------------------------------------------------------------------- */

static void forget_agent(struct controller *c, const char *ns, const char *name, const char *key) {
    char did[ID_DID_BUFSZ];
    if (agent_registry_did_of(c->registry, ns, name, did) == 0) {
        agent_registry_remove(c->registry, did);
        char err[128];
        c->store->remove(c->store, did, err, sizeof err);
    }
    metric_remove(score_metric(), ns, name);
    status_throttle_forget(c->status_writes, key);
}

/* The view both passes start from: the agent (the view takes the reference),
 * its conditions (taken) and its effective TrustPolicy (the default when it
 * cannot be computed). */
static void view_begin(struct controller *c, struct agent_view *v, struct trust_policy *eff, const char *key,
                       char *ns, char *name, json_t *agid, json_t *conditions) {
    memset(v, 0, sizeof *v);
    v->ns = ns;
    v->name = name;
    v->agid = agid;
    v->conditions = conditions;
    char err[256];
    if (controller_effective_policy(c, agid, eff, err, sizeof err) != 0) {
        log_warn(LOG, "%s: effective policy: %s", key, err);
        trust_policy_init_default(eff);
    }
}

/* Releases what view_begin and the pass gathered, the key material wiped. */
static void view_end(struct agent_view *v, struct trust_policy *eff) {
    trust_policy_free(eff);
    identity_wipe(&v->id);
    json_decref(v->conditions);
    json_decref(v->agid);
}

int agent_refresh(struct controller *c, const char *key, double *requeue_after) {
    char ns[AGENT_NS_MAX], name[AGENT_NAME_MAX];
    *requeue_after = 0;
    if (informer_split_key(key, ns, sizeof ns, name, sizeof name) != 0) return 0;
    json_t *agid = informer_get(c->agents, key);
    char did[ID_DID_BUFSZ];
    if (!agid || json_at(agid, "metadata.deletionTimestamp")) {
        /* the leader removes it from the shared store; here only the registry entry goes */
        if (agent_registry_did_of(c->registry, ns, name, did) == 0) agent_registry_remove(c->registry, did);
        json_decref(agid);
        return 0;
    }
    struct agent_view v;
    struct trust_policy eff;
    view_begin(c, &v, &eff, key, ns, name, agid, json_array());
    json_t *secret = agent_secret_name(name, v.secret_name, sizeof v.secret_name) == 0
                         ? informer_get_by_name(c->secrets, ns, v.secret_name)
                         : NULL;
    /* no key yet: the leader makes it, and the Secret's event brings us back */
    if (secret && identity_public_from_secret(secret, &v) == 0) {
        evaluate_trust(c, &v, &eff);
        enforce(&v, &eff);
        publish(c, &v, &eff);
        if (v.have_score) *requeue_after = 3600;   /* decay moves the phase by whole hours */
    }
    json_decref(secret);
    view_end(&v, &eff);
    return 0;
}

int agent_reconcile(struct controller *c, const char *key, double *requeue_after) {
    char ns[AGENT_NS_MAX], name[AGENT_NAME_MAX];
    *requeue_after = 0;
    if (informer_split_key(key, ns, sizeof ns, name, sizeof name) != 0) return 0;
    json_t *agid = informer_get(c->agents, key);
    if (!agid) {
        forget_agent(c, ns, name, key);
        return 0;
    }
    if (json_at(agid, "metadata.deletionTimestamp")) {
        int rc = finalize(c, agid);
        json_decref(agid);
        return rc;
    }
    struct agent_view v;
    struct trust_policy eff;
    json_t *conds = json_at(agid, "status.conditions");
    view_begin(c, &v, &eff, key, ns, name, agid, json_is_array(conds) ? json_deep_copy(conds) : json_array());
    v.generation = json_int_at(agid, "metadata.generation", 0);
    rfc3339(now_unix(), v.now, sizeof v.now);

    /* Revocation needs the score, the score needs the DID: read the key first, revoke after. */
    int rc = ensure_identity(c, &v, 0, requeue_after);
    if (rc == 0) {
        evaluate_trust(c, &v, &eff);
        enforce(&v, &eff);
        if (v.enforcement.phase == TRUST_PHASE_REVOKED) rc = ensure_identity(c, &v, 1, requeue_after);
    } else {
        v.enforcement.phase = TRUST_PHASE_ACTIVE;
        v.enforcement.reason = "Pending";
    }
    int sa_rc = ensure_service_account(c, &v);
    if (sa_rc == 0 && v.preexisting_sa && !has_finalizer(agid)) sa_rc = set_finalizer(c, agid, 1);
    cloud_condition(&v);
    int np_rc = rc == 0 ? ensure_network_policy(c, &v, &eff) : -1;
    int pods_rc = rc == 0 ? label_agent_pods(c, &v, &v.injected_pods) : 0;
    if (rc == 0) publish(c, &v, &eff);

    int ready = rc == 0 && sa_rc == 0 && np_rc == 0;
    conditions_set(v.conditions, "Ready", ready, ready ? "Reconciled" : "Reconciling",
                   ready ? "all children are in their desired state" : "some children are not ready yet; see other conditions",
                   v.generation, v.now);
    int st_rc = v.have_identity ? write_status(c, &v, key, requeue_after) : 0;
    if (v.provisioning) events_record(c->events, agid, "Normal", "Provisioned", "%s", v.provisioned);
    /* Decay moves the score by whole hours: look again at the next hour boundary. */
    if (ready && v.have_score && (*requeue_after <= 0 || *requeue_after > 3600)) *requeue_after = 3600;
    view_end(&v, &eff);
    return rc == 0 && sa_rc == 0 && np_rc == 0 && pods_rc == 0 && st_rc == 0 ? 0 : -1;
}
