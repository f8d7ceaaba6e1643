#!/usr/bin/env bash
# e2e/webhook.sh — the admission webhooks called by the real kube-apiserver.
#
# Runs bench_webhook_server (the webhook alone, lookups against the API
# server) on 127.0.0.1 and registers it by URL with its CA as caBundle
# (LOCAL-CLUSTER.md §5). Both configurations select only this run's
# namespace (a unique label), so other tests sharing the cluster are never
# affected. Then: pods created with kubectl come back injected exactly as
# DESIGN §7 says (sidecar, env, AWS token, labels, record), opted-out pods
# and pods without an identity come back unchanged (the latter with the
# warning kubectl prints), and CRs only the webhook can judge are refused
# with the expected message. A malformed review gets HTTP 400.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
: "${AGENTMESH_CLUSTER_DIR:=/tmp/agentmesh-cluster}"
# shellcheck disable=SC1091
source "$AGENTMESH_CLUSTER_DIR/env"
BUILD_DIR=${BUILD_DIR:-$root/build}
BIN=$BUILD_DIR/bench_webhook_server
[ -x "$BIN" ] || cmake --build "$BUILD_DIR" --target bench_webhook_server >/dev/null || { echo "FAIL: $BIN not built"; exit 1; }

# shellcheck source=e2e/checks.sh
source "$root/e2e/checks.sh"
NS=e2e-webhook-$$
CFG=agentmesh-e2e-webhook-$$
PORT=${WEBHOOK_E2E_PORT:-$((20000 + $$ % 10000))}
WORK=$(mktemp -d)
SERVER_PID=
kc() { kubectl --kubeconfig "$KUBECONFIG" "$@"; }
# This test's checks are quiet: the commands' own output would only be noise.
check() { local what=$1; shift; if "$@" >/dev/null 2>&1; then ok "$what"; else bad "$what"; fi; }
cleanup() {
  kc delete mutatingwebhookconfiguration "$CFG" >/dev/null 2>&1
  kc delete validatingwebhookconfiguration "$CFG" >/dev/null 2>&1
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
  kc delete ns "$NS" --wait=false >/dev/null 2>&1
  rm -rf "$WORK"
}
trap cleanup EXIT

kc apply -f "$root/crds/" >/dev/null || { echo "FAIL: cannot apply CRDs"; exit 1; }
"$BIN" --port "$PORT" --ca-out "$WORK/ca.pem" --api-minor 20 --kubeconfig "$KUBECONFIG" \
  >"$WORK/server.out" 2>"$WORK/server.log" &
SERVER_PID=$!
wait_for 10 grep -q '^ready' "$WORK/server.out" || { echo "FAIL: webhook did not start"; cat "$WORK/server.log"; exit 1; }
CA=$(base64 -w0 <"$WORK/ca.pem")
URL=https://127.0.0.1:$PORT

kc create ns "$NS" >/dev/null
kc label ns "$NS" agentmesh.io/inject=enabled e2e-webhook="$CFG" >/dev/null
kc apply -f - >/dev/null <<EOF
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata: {name: $CFG}
webhooks:
- name: inject.agentmesh.io
  admissionReviewVersions: [v1]
  sideEffects: None
  timeoutSeconds: 5
  failurePolicy: Fail
  reinvocationPolicy: IfNeeded
  clientConfig: {url: "$URL/mutate-pods", caBundle: "$CA"}
  namespaceSelector: {matchLabels: {e2e-webhook: "$CFG"}}
  rules: [{apiGroups: [""], apiVersions: [v1], operations: [CREATE], resources: [pods]}]
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {name: $CFG}
webhooks:
- name: validate.agentmesh.io
  admissionReviewVersions: [v1]
  sideEffects: None
  timeoutSeconds: 5
  failurePolicy: Fail
  clientConfig: {url: "$URL/validate-agentmesh", caBundle: "$CA"}
  namespaceSelector: {matchLabels: {e2e-webhook: "$CFG"}}
  rules: [{apiGroups: [agentmesh.io], apiVersions: [v1alpha1], operations: [CREATE, UPDATE],
           resources: [agentidentities, trustpolicies]}]
EOF
[ $? -eq 0 ] || { echo "FAIL: cannot register the webhooks"; exit 1; }

# Pods need their ServiceAccounts (1.20's ServiceAccount admission).
kc -n "$NS" create sa alpha >/dev/null 2>&1   # a running controller may create it too
wait_for 30 kc -n "$NS" get sa default || bad "default ServiceAccount never appeared"
kc -n "$NS" apply -f - >/dev/null <<'EOF'
apiVersion: agentmesh.io/v1alpha1
kind: AgentIdentity
metadata: {name: alpha}
spec:
  sponsor: alice@example.com
  capabilities: ["read:data"]
  cloud:
    aws: {roleArn: "arn:aws:iam::123456789012:role/agent-alpha", stsRegionalEndpoints: true, injectToken: true}
EOF
check "valid AgentIdentity admitted by the validator" kc -n "$NS" get agid alpha
# A running agentmesh-controller writes status.did; without one, set it here.
did() { kc -n "$NS" get agid alpha -o jsonpath='{.status.did}'; }
if ! wait_for 5 test -n "$(did)"; then
  kc -n "$NS" patch agid alpha --subresource=status --type=merge \
    -p '{"status":{"did":"did:mesh:00112233445566778899aabbccddeeff"}}' >/dev/null 2>&1
fi
DID=$(did)
check "AgentIdentity has a DID" test -n "$DID"

pod() {  # pod <name> <serviceAccount> [extra label]
  local labels=""
  [ -n "${3:-}" ] && labels="labels: {$3}"
  cat <<EOF
apiVersion: v1
kind: Pod
metadata: {name: $1, $labels}
spec:
  serviceAccountName: $2
  initContainers: [{name: migrate, image: busybox}]
  containers:
  - {name: app, image: busybox, env: [{name: AGENTMESH_AGENT, value: mine}]}
  - {name: tools, image: busybox}
EOF
}

# Injected pod: read back what the API server stored.
pod injected alpha | kc -n "$NS" apply -f - >/dev/null 2>"$WORK/injected.err"
kc -n "$NS" get pod injected -o json >"$WORK/injected.json" 2>/dev/null
j() { jq -e "$1" "$WORK/injected.json" >/dev/null; }
check "sidecar is a regular container on 1.20" j '[.spec.containers[].name] == ["app","tools","agentmesh-sidecar"]'
check "sidecar non-root, read-only root, no capabilities" \
  j '.spec.containers[2].securityContext | .runAsNonRoot and .readOnlyRootFilesystem and (.allowPrivilegeEscalation|not) and .capabilities.drop == ["ALL"]'
check "identity Secret mounted read-only in the sidecar only" \
  j '([.spec.containers[], .spec.initContainers[]] | map(select(any(.volumeMounts[]?; .name == "agentmesh-identity"))) | map(.name)) == ["agentmesh-sidecar"] and (.spec.volumes[] | select(.name=="agentmesh-identity") | .secret.secretName) == "alpha-agentmesh-identity"'
check "app env set, existing AGENTMESH_AGENT kept" \
  j '(.spec.containers[0].env | map({(.name): .value}) | add) as $e | $e.AGENTMESH_AGENT == "mine" and $e.AGENTMESH_PROXY_URL == "http://127.0.0.1:8081"'
check "init container gets the env too" j '[.spec.initContainers[0].env[].name] | index("AGENTMESH_PROXY_URL") != null'
check "AGENTMESH_DID from status.did" j "[.spec.containers[1].env[] | select(.name==\"AGENTMESH_DID\") | .value] == [\"$DID\"]"
check "AWS projected token as the EKS webhook adds it" \
  j '(.spec.volumes[] | select(.name=="aws-iam-token") | .projected.sources[0].serviceAccountToken) == {"audience":"sts.amazonaws.com","expirationSeconds":86400,"path":"token"} and (.spec.containers[1].volumeMounts[] | select(.name=="aws-iam-token") | .mountPath) == "/var/run/secrets/eks.amazonaws.com/serviceaccount"'
check "AWS env" j '(.spec.containers[1].env | map({(.name): .value}) | add) as $e | $e.AWS_ROLE_ARN == "arn:aws:iam::123456789012:role/agent-alpha" and $e.AWS_WEB_IDENTITY_TOKEN_FILE == "/var/run/secrets/eks.amazonaws.com/serviceaccount/token" and $e.AWS_STS_REGIONAL_ENDPOINTS == "regional"'
check "pod label and injection record" \
  j '.metadata.labels["agentmesh.io/agent"] == "alpha" and (.metadata.annotations["agentmesh.io/injected"] | fromjson | .sidecar == "container")'
check "exactly one sidecar after reinvocation" j '[.spec.containers[], .spec.initContainers[] | select(.name=="agentmesh-sidecar")] | length == 1'

pod optout alpha '"agentmesh.io/inject": "false"' | kc -n "$NS" apply -f - >/dev/null 2>&1
check "opted-out pod unchanged" test "$(kc -n "$NS" get pod optout -o jsonpath='{.spec.containers[*].name}')" = "app tools"

pod orphan default | kc -n "$NS" apply -f - >"$WORK/orphan.out" 2>&1
check "pod without identity admitted" kc -n "$NS" get pod orphan
check "... with the admission warning" grep -q "no AgentIdentity uses service account default" "$WORK/orphan.out"
check "... and no sidecar" test "$(kc -n "$NS" get pod orphan -o jsonpath='{.spec.containers[*].name}')" = "app tools"

# Validation the schema cannot do.
reject() {  # reject <what> <expected message> (manifest on stdin)
  if kc -n "$NS" apply -f - >"$WORK/reject.out" 2>&1; then bad "$1: admitted"; return; fi
  if grep -qF "$2" "$WORK/reject.out"; then ok "$1 rejected"; else bad "$1: $(cat "$WORK/reject.out")"; fi
}
reject "changed serviceAccountName" 'spec.serviceAccountName: immutable once set' <<'EOF'
apiVersion: agentmesh.io/v1alpha1
kind: AgentIdentity
metadata: {name: alpha}
spec:
  sponsor: alice@example.com
  serviceAccountName: someone-else
  cloud:
    aws: {roleArn: "arn:aws:iam::123456789012:role/agent-alpha", stsRegionalEndpoints: true, injectToken: true}
EOF
reject "weights not summing to 1" 'spec.scoring.weights' <<'EOF'
apiVersion: agentmesh.io/v1alpha1
kind: TrustPolicy
metadata: {name: bad-weights}
spec:
  scoring:
    weights: {policyCompliance: 0.5, securityPosture: 0.25, outputQuality: 0.2, resourceEfficiency: 0.15, collaborationHealth: 0.15}
EOF
reject "operator not fitting its value" 'spec.rules[0].condition.value' <<'EOF'
apiVersion: agentmesh.io/v1alpha1
kind: TrustPolicy
metadata: {name: bad-rule}
spec:
  rules:
  - name: r
    condition: {field: trust_score, operator: in, value: 200}
    action: deny
EOF
reject "revokeBelow above quarantineBelow" 'spec.revokeBelow: 400 is above spec.quarantineBelow (300)' <<'EOF'
apiVersion: agentmesh.io/v1alpha1
kind: TrustPolicy
metadata: {name: bad-thresholds}
spec: {quarantineBelow: 300, revokeBelow: 400}
EOF

code=$(curl -s -o "$WORK/400.json" -w '%{http_code}' --cacert "$WORK/ca.pem" -H 'Content-Type: application/json' \
  --data-binary '{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}' "$URL/mutate-pods")
check "malformed review: HTTP 400 with the reason" test "$code" = 400 -a -n "$(grep -o 'request: missing' "$WORK/400.json")"

echo "webhook e2e: $PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
