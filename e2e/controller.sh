#!/usr/bin/env bash
# e2e/controller.sh — agentmesh-controller against the real kube-apiserver.
#
# Applies the CRDs and the AWS/Azure/GCP samples, and checks every child has
# exactly the documented content (DESIGN §3) and status converges with the
# right observedGeneration; then: spec update, child deleted, child edited by
# hand, pre-existing ServiceAccount (kept, only our fields removed), deletion
# (garbage collection), key rotation (DID stable, proof present), the private
# key never in the log, metrics names, and leader election across two replicas.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
: "${AGENTMESH_CLUSTER_DIR:=/tmp/agentmesh-cluster}"
# shellcheck disable=SC1091
source "$AGENTMESH_CLUSTER_DIR/env"
BUILD_DIR=${BUILD_DIR:-$root/build}
BIN=$BUILD_DIR/agentmesh-controller
[ -x "$BIN" ] || { echo "FAIL: $BIN not built"; exit 1; }

# shellcheck source=e2e/checks.sh
source "$root/e2e/checks.sh"
NS=e2e-ctl-$$
OPNS=agentmesh-e2e-$$
WORK=$(mktemp -d)
PIDS=()
kc() { kubectl --kubeconfig "$KUBECONFIG" "$@"; }
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  kc delete ns "$NS" "$OPNS" --wait=false >/dev/null 2>&1
  if [ "$FAILED" != 0 ]; then echo "--- controller logs (warnings) ---"; grep -h -E "level=(warn|error)" "$WORK"/*.log | tail -40; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

mkdir -p "$WORK/certs"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=127.0.0.1 \
  -addext subjectAltName=IP:127.0.0.1 -keyout "$WORK/certs/tls.key" -out "$WORK/certs/tls.crt" 2>/dev/null
# start_controller NAME METRICS_PORT: sets STARTED_PID (no subshell, so cleanup sees every pid).
start_controller() {
  "$BIN" --kubeconfig "$OPERATOR_KUBECONFIG" --namespace "$OPNS" --metrics-port "$2" --api-port 0 \
    --webhook-port 0 --bind-address 127.0.0.1 --status-min-interval 1 --webhook-cert-dir "$WORK/certs" --log-level debug >"$WORK/$1.log" 2>&1 &
  STARTED_PID=$!
  PIDS+=("$STARTED_PID")
}
jp() { kc get "$@" 2>/dev/null; }   # jp KIND NAME -n NS -o jsonpath=...
field() { kc -n "$NS" get "$1" "$2" -o "jsonpath=$3" 2>/dev/null; }
has_condition() { [ "$(field agid "$1" "{.status.conditions[?(@.type==\"$2\")].status}")" = True ]; }
converged() {
  local gen obs
  gen=$(field agid "$1" '{.metadata.generation}')
  obs=$(field agid "$1" '{.status.observedGeneration}')
  [ -n "$gen" ] && [ "$gen" = "$obs" ] && has_condition "$1" Ready
}

kc apply -f "$root/crds/" >/dev/null || { echo "FAIL: cannot apply CRDs"; exit 1; }
# Least privilege: the controller runs as user agentmesh-operator, bound by
# hack/kube-up.sh to the shipped ClusterRole, plus the shipped namespaced Role
# (Lease, webhook Secret) bound here in the test's operator namespace.
OPERATOR_KUBECONFIG=${AGENTMESH_TEST_KUBECONFIG_OPERATOR:-$AGENTMESH_CLUSTER_DIR/kubeconfig-operator}
kc apply -f "$root/manifests/base/clusterrole.yaml" >/dev/null
kc wait --for condition=established --timeout=30s crd/agentidentities.agentmesh.io crd/trustpolicies.agentmesh.io >/dev/null
kc create ns "$NS" >/dev/null
kc create ns "$OPNS" >/dev/null
sed "s/namespace: agentmesh-system/namespace: $OPNS/" "$root/manifests/base/role.yaml" | kc apply -f - >/dev/null
kc -n "$OPNS" create rolebinding agentmesh-operator-e2e --role agentmesh-controller --user agentmesh-operator >/dev/null
check "the operator user is not cluster-admin" test "$(kubectl --kubeconfig "$OPERATOR_KUBECONFIG" auth can-i delete nodes)" = no

start_controller a 19190
LEADER_PID=$STARTED_PID
check "controller becomes ready (/readyz)" wait_for 30 curl -fsS http://127.0.0.1:19190/readyz

for f in aws azure gcp; do
  sed "s/namespace: agents-demo/namespace: $NS/" "$root/samples/agentidentity-$f.yaml" | kc apply -f - >/dev/null
done
for a in agent-alpha agent-beta agent-gamma; do
  check "$a converges to Ready with observedGeneration" wait_for 60 converged "$a"
done

# --- exact children -----------------------------------------------------------------
check "AWS ServiceAccount carries IRSA annotations" test \
  "$(field sa agent-alpha '{.metadata.annotations.eks\.amazonaws\.com/role-arn} {.metadata.annotations.eks\.amazonaws\.com/audience} {.metadata.annotations.eks\.amazonaws\.com/sts-regional-endpoints} {.metadata.annotations.eks\.amazonaws\.com/token-expiration}')" \
  = "arn:aws:iam::123456789012:role/agentmesh/agent-alpha sts.amazonaws.com true 86400"
check "Azure ServiceAccount carries Workload Identity annotations and label" test \
  "$(field sa agent-beta '{.metadata.annotations.azure\.workload\.identity/client-id} {.metadata.annotations.azure\.workload\.identity/tenant-id} {.metadata.labels.azure\.workload\.identity/use}')" \
  = "3f2b8c1e-7d4a-4e6b-9a0c-5d1e2f3a4b5c 72f988bf-86f1-41af-91ab-2d7cd011db47 true"
check "GCP ServiceAccount (default name = metadata.name) carries the GKE annotation" test \
  "$(field sa agent-gamma '{.metadata.annotations.iam\.gke\.io/gcp-service-account}')" = "agent-gamma@my-project.iam.gserviceaccount.com"
check "children carry managed-by and agent labels and an ownerReference" test \
  "$(field sa agent-alpha '{.metadata.labels.app\.kubernetes\.io/managed-by} {.metadata.labels.agentmesh\.io/agent} {.metadata.ownerReferences[0].kind} {.metadata.ownerReferences[0].name}')" \
  = "agentmesh-operator agent-alpha AgentIdentity agent-alpha"
check "identity Secret has type agentmesh.io/identity and the five keys" test \
  "$(kc -n "$NS" get secret agent-alpha-agentmesh-identity -o json | jq -r '[.type, (.data|keys|sort|join(","))]|join(" ")')" \
  = "agentmesh.io/identity did,ed25519.key,ed25519.pub,key-id"

# DID and key id recomputed independently with openssl from the public key.
pub_b64=$(field agid agent-alpha '{.status.publicKey}')
did=$(field agid agent-alpha '{.status.did}')
keyid=$(field agid agent-alpha '{.status.keyId}')
want_did="did:mesh:$(printf %s "$pub_b64" | base64 -d | openssl dgst -sha256 | awk '{print substr($NF,1,32)}')"
want_keyid="key-$(printf %s "$pub_b64" | base64 -d | openssl dgst -sha256 | awk '{print substr($NF,1,16)}')"
check "status.did = did:mesh:hex(sha256(pub)[:16])" test "$did" = "$want_did"
check "status.keyId = key-hex(sha256(pub)[:8])" test "$keyid" = "$want_keyid"
check "Secret did matches status" test "$(kc -n "$NS" get secret agent-alpha-agentmesh-identity -o jsonpath='{.data.did}' | base64 -d)" = "$did"
check "status has tier, score, phase, serviceAccountName, secretName" test \
  "$(field agid agent-alpha '{.status.tier} {.status.trustScore} {.status.phase} {.status.serviceAccountName} {.status.secretName}')" \
  = "standard 500 Active agent-alpha agent-alpha-agentmesh-identity"
check "all six conditions are True" test \
  "$(kc -n "$NS" get agid agent-alpha -o json | jq -r '[.status.conditions[]|select(.status=="True")|.type]|sort|join(",")')" \
  = "CloudBindingReady,KeyReady,NetworkPolicyReady,Ready,ServiceAccountReady,Trusted"
# A new agent's key, ServiceAccount and NetworkPolicy are told in one Event,
# naming all three (one write to the API server instead of three).
provisioned() { kc -n "$NS" get events --field-selector involvedObject.name=agent-alpha -o json |
  jq -r '[.items[]|select(.reason=="Provisioned")] | [length, (.[0].message|test("Ed25519 key key-[0-9a-f]+ generated for did:mesh:.*; ServiceAccount agent-alpha applied; NetworkPolicy agent-alpha-agentmesh: "))]|map(tostring)|join(" ")'; }
check "a new agent is one Provisioned Event naming key, ServiceAccount and NetworkPolicy" test "$(provisioned)" = "1 true"
# Reconciles that run before our own status write is back on the watch see
# the old status: they must not write it again.
check "a new agent's status is written once" test \
  "$(grep -c "PATCH /apis/agentmesh.io/v1alpha1/namespaces/$NS/agentidentities/agent-alpha/status" "$WORK/a.log")" = 1
kc apply -f - >/dev/null <<YAML
apiVersion: agentmesh.io/v1alpha1
kind: TrustPolicy
metadata: {name: payments-bar, namespace: $NS}
spec:
  agentSelector: {matchLabels: {team: payments}}
  minTrustScore: 500
  quarantineBelow: 300
  network: {allowFromNamespaces: {matchLabels: {agentmesh-access: "true"}}}
YAML
np_tiers() { kc -n "$NS" get networkpolicy "$1-agentmesh" -o json | jq -c '[.spec.podSelector.matchLabels["agentmesh.io/agent"], (.spec.ingress[0].from[0].podSelector.matchExpressions[]|select(.key=="agentmesh.io/tier")|.values)]'; }
alpha_np_bar() { [ "$(np_tiers agent-alpha)" = '["agent-alpha",["standard","trusted","verified_partner"]]' ]; }
check "NetworkPolicy selects the agent's pods and admits agents at or above the policy's tier" wait_for 30 alpha_np_bar
check "an agent no policy selects admits every tier" test "$(np_tiers agent-beta)" \
  = '["agent-beta",["untrusted","probationary","standard","trusted","verified_partner"]]'
check "allowFromNamespaces reaches the NetworkPolicy" test \
  "$(kc -n "$NS" get networkpolicy agent-alpha-agentmesh -o json | jq -c '.spec.ingress[0].from[1].namespaceSelector')" \
  = '{"matchExpressions":[{"key":"agentmesh-access","operator":"In","values":["true"]}]}'
tp_counts() { [ "$(kc -n "$NS" get tp payments-bar -o jsonpath='{.status.matchedAgents} {.status.conditions[0].status}')" = "2 True" ]; }
check "TrustPolicy status counts matched agents" wait_for 30 tp_counts

# --- agent pods: tier label and injectedPods --------------------------------------------
kc apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Pod
metadata: {name: alpha-0, namespace: $NS, labels: {agentmesh.io/agent: agent-alpha}}
spec: {serviceAccountName: agent-alpha, containers: [{name: app, image: registry.k8s.io/pause:3.9}]}
YAML
pod_tier() { [ "$(kc -n "$NS" get pod alpha-0 -o jsonpath='{.metadata.labels.agentmesh\.io/tier}')" = "$1" ]; }
check "agent pods get their agent's tier label" wait_for 30 pod_tier standard
injected() { [ "$(field agid agent-alpha '{.status.injectedPods}')" = 1 ]; }
check "status.injectedPods counts the agent's pods" wait_for 30 injected
kc -n "$NS" label pod alpha-0 agentmesh.io/tier=verified_partner --overwrite >/dev/null
check "a forged tier label on a pod is corrected" wait_for 30 pod_tier standard

# --- suspend: quarantine regardless of score, then recovery --------------------------
kc -n "$NS" patch agid agent-alpha --type merge -p '{"spec":{"suspended":true}}' >/dev/null
quarantined() { [ "$(field agid agent-alpha '{.status.phase}')" = Quarantined ] && \
  [ "$(kc -n "$NS" get networkpolicy agent-alpha-agentmesh -o json | jq -c '[.spec.policyTypes, .spec.ingress, (.spec.egress|length)]')" = '[["Ingress","Egress"],null,2]' ]; }
check "suspended: true quarantines (phase, ingress none, egress DNS + controller only)" wait_for 30 quarantined
check "a quarantined agent's pods are labelled quarantined" wait_for 30 pod_tier quarantined
check "the quarantine is an Event" wait_for 10 bash -c "kubectl --kubeconfig $KUBECONFIG -n $NS get events --field-selector reason=PhaseChanged -o name | grep -q ."
kc -n "$NS" patch agid agent-alpha --type merge -p '{"spec":{"suspended":false}}' >/dev/null
active_again() { [ "$(field agid agent-alpha '{.status.phase}')" = Active ] && alpha_np_bar; }
check "lifting the suspension restores phase Active and the normal NetworkPolicy" wait_for 30 active_again
check "and the pod's tier label" wait_for 30 pod_tier standard
check "printer columns show DID, Tier, Score, Phase" bash -c "kubectl --kubeconfig $KUBECONFIG -n $NS get agid agent-alpha | grep -q 'did:mesh:.*standard.*500.*Active'"

# --- spec update converges --------------------------------------------------------------
kc -n "$NS" patch agid agent-alpha --type merge -p '{"spec":{"cloud":{"aws":{"roleArn":"arn:aws:iam::123456789012:role/agentmesh/alpha-v2"}}}}' >/dev/null
sa_has_v2() { [ "$(field sa agent-alpha '{.metadata.annotations.eks\.amazonaws\.com/role-arn}')" = arn:aws:iam::123456789012:role/agentmesh/alpha-v2 ]; }
check "spec update reaches the ServiceAccount" wait_for 30 sa_has_v2
check "observedGeneration follows the new generation" wait_for 30 converged agent-alpha

# --- children deleted / edited by hand are restored ------------------------------------
kc -n "$NS" delete networkpolicy agent-beta-agentmesh >/dev/null
check "deleted NetworkPolicy is restored" wait_for 30 kc -n "$NS" get networkpolicy agent-beta-agentmesh
kc -n "$NS" annotate sa agent-beta --overwrite azure.workload.identity/client-id=00000000-0000-0000-0000-000000000000 >/dev/null
beta_restored() { [ "$(field sa agent-beta '{.metadata.annotations.azure\.workload\.identity/client-id}')" = 3f2b8c1e-7d4a-4e6b-9a0c-5d1e2f3a4b5c ]; }
check "hand-edited ServiceAccount annotation is restored" wait_for 30 beta_restored
kc -n "$NS" delete secret agent-gamma-agentmesh-identity >/dev/null
gamma_did=$(field agid agent-gamma '{.status.did}')
gamma_rekeyed() { kc -n "$NS" get secret agent-gamma-agentmesh-identity >/dev/null && [ "$(kc -n "$NS" get secret agent-gamma-agentmesh-identity -o jsonpath='{.data.did}' | base64 -d)" = "$gamma_did" ]; }
check "deleted identity Secret is recreated, keeping the DID" wait_for 30 gamma_rekeyed

# --- pre-existing ServiceAccount ---------------------------------------------------------
kc -n "$NS" create sa legacy >/dev/null
kc -n "$NS" annotate sa legacy team.example.com/owner=gitops >/dev/null
kc apply -f - >/dev/null <<YAML
apiVersion: agentmesh.io/v1alpha1
kind: AgentIdentity
metadata: {name: agent-legacy, namespace: $NS}
spec:
  sponsor: dora@example.com
  serviceAccountName: legacy
  cloud: {gcp: {serviceAccount: legacy@my-project.iam.gserviceaccount.com}}
YAML
legacy_bound() { [ "$(field sa legacy '{.metadata.annotations.iam\.gke\.io/gcp-service-account}')" = legacy@my-project.iam.gserviceaccount.com ]; }
check "pre-existing ServiceAccount gets the binding" wait_for 30 legacy_bound
check "pre-existing ServiceAccount keeps its own annotation" test "$(field sa legacy '{.metadata.annotations.team\.example\.com/owner}')" = gitops
check "pre-existing ServiceAccount gets no ownerReference" test -z "$(field sa legacy '{.metadata.ownerReferences}')"
check "finalizer set on an agent with a pre-existing ServiceAccount" test "$(field agid agent-legacy '{.metadata.finalizers[0]}')" = agentmesh.io/cleanup
kc -n "$NS" delete agid agent-legacy --wait=false >/dev/null
legacy_released() { ! kc -n "$NS" get agid agent-legacy >/dev/null 2>&1 && [ -z "$(field sa legacy '{.metadata.annotations.iam\.gke\.io/gcp-service-account}')" ]; }
check "deleting the agent removes only our fields from the pre-existing ServiceAccount" wait_for 30 legacy_released
check "pre-existing ServiceAccount survives with its own annotation" test "$(field sa legacy '{.metadata.annotations.team\.example\.com/owner}')" = gitops

# --- deletion garbage-collects children ------------------------------------------------
kc -n "$NS" delete agid agent-gamma >/dev/null
gamma_gone() { ! kc -n "$NS" get sa agent-gamma && ! kc -n "$NS" get secret agent-gamma-agentmesh-identity && ! kc -n "$NS" get networkpolicy agent-gamma-agentmesh; }
check "deleting an AgentIdentity garbage-collects its ServiceAccount, Secret and NetworkPolicy" wait_for 60 gamma_gone

# --- key rotation -----------------------------------------------------------------------------
old_key=$(field agid agent-beta '{.status.keyId}')
beta_did=$(field agid agent-beta '{.status.did}')
check "the CRD refuses a rotation interval under 300 s" bash -c "! kubectl --kubeconfig $KUBECONFIG -n $NS patch agid agent-beta --type merge -p '{\"spec\":{\"keyRotation\":{\"intervalSeconds\":3}}}' 2>/dev/null"
kc -n "$NS" annotate agid agent-beta --overwrite agentmesh.io/rotate-key=e2e-1 >/dev/null
rotated() { local k; k=$(field agid agent-beta '{.status.keyId}'); [ -n "$k" ] && [ "$k" != "$old_key" ]; }
check "key rotates on request (agentmesh.io/rotate-key annotation)" wait_for 30 rotated
check "DID is stable across rotation" test "$(field agid agent-beta '{.status.did}')" = "$beta_did"
check "Secret carries the rotation proof" test -n "$(kc -n "$NS" get secret agent-beta-agentmesh-identity -o jsonpath='{.data.rotation-proof}')"
check "rotation is an Event" wait_for 10 bash -c "kubectl --kubeconfig $KUBECONFIG -n $NS get events --field-selector reason=KeyRotated -o name | grep -q ."
sleep 2
check "one request rotates once" test "$(kc -n "$NS" get events --field-selector reason=KeyRotated -o json | jq '[.items[]|select(.involvedObject.name=="agent-beta")|.count]|add')" = 1

# --- steady state: a reconcile of an agent that is already right writes nothing ------------
# Counted from the debug log, for this test's namespace only (Events are courtesy, not state).
# writes [replica]: its log's writes (replica a unless named).
writes() { grep -E "(POST|PUT|PATCH|DELETE) /[^ ]*/namespaces/$NS/" "$WORK/${1:-a}.log" | grep -cv '/events'; }
sleep 3
w0=$(writes)
kc -n "$NS" annotate agid --all e2e/poke=1 --overwrite >/dev/null   # every agent reconciles again
sleep 5
w1=$(writes)
check "no-op reconciles write nothing (writes before/after: $w0/$w1)" test "$w0" = "$w1"
[ "$w0" = "$w1" ] || grep -E "(POST|PUT|PATCH|DELETE) /[^ ]*/namespaces/$NS/" "$WORK/a.log" | grep -v '/events' |
  tail -n +"$((w0 + 1))" | sed -E 's/.*msg="([A-Z]+ [^ ?]+).*/  \1/' | sort | uniq -c | head

# --- a flood: 1,000 updates of one AgentIdentity in a few seconds ----------------------------
# Sent straight to the API with curl (16 in parallel): kubectl would be the bottleneck.
token=$(kc config view --raw -o jsonpath='{.users[0].user.token}')
url="$KUBE_APISERVER_URL/apis/agentmesh.io/v1alpha1/namespaces/$NS/agentidentities/agent-gamma2"
kc apply -f - >/dev/null <<YAML
apiVersion: agentmesh.io/v1alpha1
kind: AgentIdentity
metadata: {name: agent-gamma2, namespace: $NS}
spec: {sponsor: flood@example.com}
YAML
wait_for 30 converged agent-gamma2
reconciles() { curl -fsS http://127.0.0.1:19190/metrics | awk '/^controller_runtime_reconcile_total\{controller="agentidentity"/{s+=$NF} END{print s+0}'; }
r0=$(reconciles)
t0=$SECONDS
seq 1 1000 | xargs -P 16 -I{} curl -sk -o /dev/null -H "Authorization: Bearer $token" \
  -H 'Content-Type: application/merge-patch+json' -X PATCH --data '{"spec":{"description":"update {}"}}' "$url"
echo "     (1,000 updates sent in $((SECONDS - t0)) s)"
flood_done() { converged agent-gamma2 && [ "$(field agid agent-gamma2 '{.metadata.generation}')" -ge 1001 ]; }
check "after 1,000 updates status converges to the final generation" wait_for 60 flood_done
r1=$(reconciles)
check "the work queue folds the flood ($((r1 - r0)) reconciles for 1,000 updates)" test $((r1 - r0)) -lt 1000

# --- metrics, secrets hygiene ---------------------------------------------------------------
metrics=$(curl -fsS http://127.0.0.1:19190/metrics)
for m in controller_runtime_reconcile_total controller_runtime_reconcile_time_seconds_bucket workqueue_depth \
         workqueue_adds_total rest_client_requests_total leader_election_master_status agentmesh_trust_score \
         agentmesh_credential_rotations_total; do
  check "metric $m exported" grep -q "^$m" <<<"$metrics"
done
check "rotations counted" grep -q '^agentmesh_credential_rotations_total{result="success"} [1-9]' <<<"$metrics"
leaked=0
for a in agent-alpha agent-beta; do
  sk=$(kc -n "$NS" get secret "$a-agentmesh-identity" -o jsonpath='{.data.ed25519\.key}')
  raw_b64=$(printf %s "$sk" | base64 -d | base64 -w0)
  for needle in "$sk" "$raw_b64" "${raw_b64:0:40}"; do
    grep -qF -- "$needle" "$WORK"/*.log && leaked=1
    grep -qF -- "$needle" <<<"$metrics" && leaked=1
    kc -n "$NS" get agid "$a" -o json | grep -qF -- "$needle" && leaked=1
    kc -n "$NS" get events -o json | grep -qF -- "$needle" && leaked=1
  done
done
check "private keys appear in no log, metric, status or event" test $leaked = 0

# --- leader election ----------------------------------------------------------------------------
start_controller b 19191
wait_for 30 curl -fsS http://127.0.0.1:19191/readyz
sleep 3
is_leader() { curl -fsS "http://127.0.0.1:$1/metrics" | grep -q '^leader_election_master_status{name="agentmesh-controller"} 1'; }
check "exactly one replica leads" bash -c "! curl -fsS http://127.0.0.1:19191/metrics | grep -q '^leader_election_master_status{name=\"agentmesh-controller\"} 1'"
check "the first replica holds the Lease" test "$(kc -n "$OPNS" get lease agentmesh-controller -o jsonpath='{.spec.holderIdentity}' | cut -c1-3)" != ""
kill -TERM "$LEADER_PID"
check "leader exits cleanly on SIGTERM" wait_for 15 bash -c "! kill -0 $LEADER_PID 2>/dev/null"
check "the leader released the Lease on shutdown" grep -q "released lease" "$WORK/a.log"
check "the standby takes over within 5 s" wait_for 5 is_leader 19191
kc -n "$NS" annotate sa agent-alpha --overwrite eks.amazonaws.com/role-arn=tampered >/dev/null
alpha_restored() { [ "$(field sa agent-alpha '{.metadata.annotations.eks\.amazonaws\.com/role-arn}')" = arn:aws:iam::123456789012:role/agentmesh/alpha-v2 ]; }
check "the new leader reconciles" wait_for 30 alpha_restored
# its caches came from a list (items carry no kind), the first replica's from watch events
sleep 3
w0=$(writes b)
kc -n "$NS" annotate agid --all e2e/poke=2 --overwrite >/dev/null
sleep 5
w1=$(writes b)
check "the new leader's no-op reconciles write nothing either (writes before/after: $w0/$w1)" test "$w0" = "$w1"

# --- kill -9: no release, the standby waits out the lease (15 s) -----------------------------
start_controller c 19192
wait_for 30 curl -fsS http://127.0.0.1:19192/readyz
sleep 2
{ kill -9 "${PIDS[1]}"; wait "${PIDS[1]}"; } 2>/dev/null   # b, the leader now
t0=$SECONDS
check "after kill -9 of the leader the standby takes over within 20 s" wait_for 20 is_leader 19192
echo "     (took $((SECONDS - t0)) s)"

# --- the API server restarts mid-run: watches resume, nothing is lost ------------------------
bash "$root/hack/kube-restart-apiserver.sh" --down-for 3 >/dev/null 2>&1
# An outage longer than the 10 s renew deadline makes the leader give up the
# Lease and exit (as controller-runtime does); its Deployment would restart it.
# That can come after the API server is back (its RBAC answers 403 for a few
# seconds while it warms up), but no later than 12 s after the last renewal
# before the outage: watch the leader that long. Then do what kubelet would,
# so the test holds whichever way the restart went.
for _ in $(seq 24); do kill -0 "${PIDS[2]}" 2>/dev/null || break; sleep 0.5; done
if ! kill -0 "${PIDS[2]}" 2>/dev/null; then
  echo "     (the leader exited during the outage, as designed; restarting it like kubelet would)"
  start_controller d 19193
fi
kc -n "$NS" annotate sa agent-alpha --overwrite eks.amazonaws.com/role-arn=tampered-again >/dev/null
kc -n "$NS" patch agid agent-beta --type merge -p '{"spec":{"capabilities":["read:documents"]}}' >/dev/null
check "after an API-server restart a hand edit is still reverted" wait_for 60 alpha_restored
beta_gen() { converged agent-beta && [ "$(field agid agent-beta '{.metadata.generation}')" -ge 2 ]; }
check "and a spec change made right after it converges" wait_for 60 beta_gen

echo
echo "e2e/controller.sh: $PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ]
