/* inject.h — sidecar injection: pod + AgentIdentity → JSON Patch (RFC 6902).
 *
 * Pure functions, no I/O: the server looks the identity up and hands it in,
 * so every rule of DESIGN §7 is testable with golden fixtures. What is added:
 *   - container `agentmesh-sidecar`: first initContainer with restartPolicy
 *     Always on API servers >= 1.29 (native sidecar), else the last container;
 *     non-root, read-only root, no capabilities, small resources; the only
 *     container that mounts the identity Secret (`<agent>-agentmesh-identity`,
 *     read-only, at /var/run/agentmesh/identity);
 *   - in every app container AND app initContainer (they run after a native
 *     sidecar, and the EKS webhook treats them alike): env AGENTMESH_PROXY_URL,
 *     AGENTMESH_DID (from status.did), AGENTMESH_AGENT, and for AWS with
 *     injectToken the EKS pod-identity webhook's env and token mount;
 *     a variable the container already defines is left as it is;
 *   - pod label agentmesh.io/agent, Azure's azure.workload.identity/use, and
 *     annotation agentmesh.io/injected: a JSON record of what was added.
 * A pod that already has the sidecar (or the record) gets an empty patch, so
 * reinvocation and re-submission never add a second copy of anything. */
#ifndef AGENTMESH_WEBHOOK_INJECT_H
#define AGENTMESH_WEBHOOK_INJECT_H

#include <jansson.h>

#include "webhook/json_text.h"

#define INJECT_SIDECAR_NAME "agentmesh-sidecar"
#define INJECT_IDENTITY_VOLUME "agentmesh-identity"
#define INJECT_IDENTITY_DIR "/var/run/agentmesh/identity"
#define INJECT_PROXY_URL "http://127.0.0.1:8081"
#define INJECT_AWS_VOLUME "aws-iam-token"
#define INJECT_AWS_TOKEN_DIR "/var/run/secrets/eks.amazonaws.com/serviceaccount"
#define INJECT_LABEL_AGENT "agentmesh.io/agent"
#define INJECT_LABEL_OPT "agentmesh.io/inject"
#define INJECT_LABEL_AZURE "azure.workload.identity/use"
#define INJECT_ANNOTATION_AGENT "agentmesh.io/agent"
#define INJECT_ANNOTATION_RECORD "agentmesh.io/injected"

/* Process-wide settings. */
struct inject_options {
    int api_minor;                   /* API server is 1.<api_minor>; >= 29: native sidecar */
    const char *operator_namespace;  /* never injected */
    const char *sidecar_image;
    const char *controller_url;      /* the trust API the sidecar talks to */
};

/* One pod to decide on. */
struct inject_input {
    const json_t *pod;
    const char *namespace;           /* request.namespace (the pod's may be unset on CREATE) */
    const json_t *namespace_labels;  /* labels of that namespace, or NULL */
    const json_t *identity;          /* the matching AgentIdentity, or NULL */
};

/* Zero it before the first inject_pod; passing it again reuses its buffers
 * (a loop thread keeps one for all its pods), and the previous patch and
 * warnings are gone. inject_result_free releases it. */
struct inject_result {
    const char *patch;   /* the JSON Patch as compact JSON text, in `text`; "[]" when skipped */
    size_t patch_len;    /* strlen(patch) */
    size_t ops;          /* operations in it; 0 when skipped */
    json_t *warnings;    /* array of strings for the admission reply */
    const char *skip;    /* NULL when injected, else a static reason (metric label) */
    struct json_text text, plan, record;   /* the buffers: patch, what is added, the record */
};

/* Skip reasons, used as the `reason` label of agentmesh_sidecar_injections_total. */
#define INJECT_SKIP_SYSTEM_NS "system-namespace"
#define INJECT_SKIP_HOST_NETWORK "host-network"
#define INJECT_SKIP_OPTED_OUT "opted-out"
#define INJECT_SKIP_NOT_OPTED_IN "not-opted-in"
#define INJECT_SKIP_ALREADY "already-injected"
#define INJECT_SKIP_NO_IDENTITY "no-identity"
#define INJECT_SKIP_INVALID_POD "invalid-pod"

/* The reason to skip this pod that needs no identity lookup, or NULL when
 * it is opted in and eligible. The server calls this before any lookup. */
const char *inject_precheck(const struct inject_input *in, const struct inject_options *o);

/* The AgentIdentity the pod asks for: the agentmesh.io/agent annotation
 * (*by_service_account = 0), else the pod's service account name, "default"
 * when unset (*by_service_account = 1: match spec.serviceAccountName, which
 * defaults to the AgentIdentity's own name). Borrowed from the pod. */
const char *inject_agent_key(const json_t *pod, int *by_service_account);

/* The service account an AgentIdentity binds: spec.serviceAccountName, else
 * metadata.name. NULL when neither is a string. */
const char *inject_identity_sa(const json_t *identity);

/* Decides and builds the patch into `out`. 0, or -1 on allocation failure. */
int inject_pod(const struct inject_input *in, const struct inject_options *o,
               struct inject_result *out);
void inject_result_free(struct inject_result *r);

#endif
