#!/usr/bin/env bash
# demo.sh — the quickstart (issue 7): brings AgentMesh up on this machine and
# shows it working, then leaves it all running.
#
#   hack/demo.sh          install deps, build (Release, build-demo/), start the
#                         local cluster with Redis and PostgreSQL, install the
#                         CRDs and both webhook configurations, run the
#                         controller, apply the samples, create an injected
#                         agent pod, run two sidecars and a handshake between
#                         them, print a summary
#   hack/demo.sh --down   stop what the demo started (by pid file) and delete
#                         what it created; the cluster itself keeps running
#
# Idempotent: a second run reuses the running cluster and restarts the demo's
# controller and sidecars. There is no Service networking here, so the webhook
# configurations are the manifests' own (same rules and selectors) with
# clientConfig.url https://127.0.0.1:9443/... instead of the Service. The
# controller runs in self-managed certificate mode: its CA lives in Secret
# agentmesh-system/agentmesh-webhook-tls, and it keeps caBundle patched into
# both configurations by name.
#
# Demo state: $AGENTMESH_CLUSTER_DIR/demo/ (pids/, logs/, cmd/ as
# hack/cluster-lib.sh keeps them; identity/ holds the two agents' keys for the
# sidecars, mode 700; created-namespaces lists what --down may delete).
# AGENTMESH_DEMO_BUILD_DIR overrides build-demo/.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
: "${AGENTMESH_CLUSTER_DIR:=/tmp/agentmesh-cluster}"
export AGENTMESH_CLUSTER_DIR
# shellcheck source=hack/cluster-lib.sh
. "$ROOT/hack/cluster-lib.sh"

BUILD=${AGENTMESH_DEMO_BUILD_DIR:-$ROOT/build-demo}
DEMO=$CL_DIR/demo
OPNS=agentmesh-system
AGNS=agents-demo
API_PORT=8080 METRICS_PORT=9090 WEBHOOK_PORT=9443
API_URL=http://127.0.0.1:$API_PORT
METRICS_URL=http://127.0.0.1:$METRICS_PORT
MUTATING=agentmesh-sidecar-injector
VALIDATING=agentmesh-validator
RENDERED_BY=agentmesh.io/rendered-by   # annotation marking our webhook configurations
POD=agent-alpha-demo
# The handshake: agent-beta (only the default policy, peers need 500)
# challenges agent-alpha; then agent-alpha (strict policy, peers need 700)
# challenges agent-beta (600) and is refused.
SIDECARS=(agent-alpha agent-beta)
declare -A SC_PORT=([agent-alpha]=18081 [agent-beta]=18082)
declare -A SC_METRICS=([agent-alpha]=19091 [agent-beta]=19092)

step() { printf '\n==> %s\n' "$*"; }
die() { echo "demo.sh: error: $*" >&2; exit 1; }
kc() { kubectl --request-timeout=20s "$@"; }
# The cluster-lib process helpers, pointed at the demo's state dir.
demo_cl() { local CL_DIR=$DEMO; "$@"; }

# wait_until <seconds> <cmd...>: polls cmd every 0.5 s.
wait_until() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.5
  done
}

# One demo at a time. The lock sits beside the cluster's own lock file, on fd
# 8, which cl_start closes in the processes it starts (so they never hold it).
take_lock() {
  mkdir -p "$(dirname "$CL_DIR")"
  exec 8>"$CL_DIR.demo.lock"
  flock -n 8 || die "another hack/demo.sh is running (lock $CL_DIR.demo.lock)"
}

load_env() {
  [ -r "$CL_DIR/env" ] || die "no local cluster in $CL_DIR (hack/kube-up.sh --redis --postgres)"
  # shellcheck source=/dev/null
  source "$CL_DIR/env"
}

# ---------------------------------------------------------------- bringing up

install_deps() {
  step "installing dependencies (hack/install-deps.sh)"
  bash hack/install-deps.sh
}

build() {
  step "building agentmesh-controller and agentmesh-sidecar (Release) in $BUILD"
  cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$BUILD" -j2 --target agentmesh-controller agentmesh-sidecar
}

start_cluster() {
  step "starting the local cluster (hack/kube-up.sh --redis --postgres)"
  bash hack/kube-up.sh --redis --postgres
  load_env
  [ -n "${KUBECONFIG:-}" ] || die "the cluster in $CL_DIR runs no kube-apiserver"
  [ -n "${AGENTMESH_TEST_REDIS_URL:-}" ] || die "no Redis in $CL_DIR/env"
  [ -n "${AGENTMESH_TEST_POSTGRES_URL:-}" ] || die "no PostgreSQL in $CL_DIR/env"
}

install_crds() {
  step "installing the CRDs (crds/)"
  kc apply -f crds/
  kc wait --for condition=established --timeout=60s \
    crd/agentidentities.agentmesh.io crd/trustpolicies.agentmesh.io
}

# ensure_namespace <name> <manifest>: applies it, remembering whether the demo
# created it (then --down deletes it; a namespace that was there stays).
ns_phase() { kc get namespace "$1" -o 'jsonpath={.status.phase}' 2>/dev/null; }
ns_not_terminating() { [ "$(ns_phase "$1")" != Terminating ]; }
ensure_namespace() {
  # Right after --down it may still be going: wait, then make it anew.
  if [ "$(ns_phase "$1")" = Terminating ]; then
    echo "namespace $1 is being deleted; waiting for it to go"
    wait_until 120 ns_not_terminating "$1" || die "namespace $1 still terminating after 120 s"
  fi
  if [ -z "$(ns_phase "$1")" ]; then
    mkdir -p "$DEMO"
    grep -qx "$1" "$DEMO/created-namespaces" 2>/dev/null || echo "$1" >>"$DEMO/created-namespaces"
  fi
  kc apply -f "$2"
}

# ensure_free <port...>: the demo's own processes are stopped by now, so
# anything still listening belongs to someone else.
ensure_free() {
  local p
  for p; do
    cl_port_busy "$p" &&
      die "127.0.0.1:$p is in use by a process the demo did not start (see: ss -ltnp 'sport = :$p')"
  done
  return 0
}

# Restarting cleanly: the previous run's sidecars and controller go first.
stop_processes() {
  local a
  for a in "${SIDECARS[@]}"; do demo_cl cl_stop "sidecar-$a"; done
  demo_cl cl_stop controller
}

# The Postgres URL carries a password: it goes in the environment
# (AGENTMESH_POSTGRES_URL), never on a command line that ps shows.
start_controller() {
  step "starting agentmesh-controller (self-managed certificates, namespace $OPNS)"
  ensure_free "$API_PORT" "$METRICS_PORT" "$WEBHOOK_PORT"
  mkdir -p "$DEMO/spool"
  (
    export AGENTMESH_POSTGRES_URL=$AGENTMESH_TEST_POSTGRES_URL
    export GNUTLS_NO_IMPLICIT_INIT=1   # as the Deployment in manifests/base runs it
    demo_cl cl_start controller "$BUILD/agentmesh-controller" --kubeconfig "$KUBECONFIG" \
      --namespace "$OPNS" --bind-address 127.0.0.1 --api-port "$API_PORT" \
      --metrics-port "$METRICS_PORT" --webhook-port "$WEBHOOK_PORT" \
      --redis-url "$AGENTMESH_TEST_REDIS_URL" --audit-spool-dir "$DEMO/spool" \
      --status-min-interval 2
  )
}

controller_failed() {
  echo "--- last lines of $DEMO/logs/controller.log ---" >&2
  tail -n 20 "$DEMO/logs/controller.log" >&2 || true
  die "$*"
}

# The CA the controller keeps in its Secret (base64, as caBundle wants it).
secret_ca() { kc -n "$OPNS" get secret agentmesh-webhook-tls -o 'jsonpath={.data.ca\.crt}'; }
have_secret_ca() { [ -n "$(secret_ca)" ]; }

# The manifests' two webhook configurations, each clientConfig.service turned
# into a URL on 127.0.0.1:9443 with the same path, caBundle = $1.
render_webhooks() {
  kubectl kustomize manifests/base |
    yq -c 'select(.kind == "MutatingWebhookConfiguration" or .kind == "ValidatingWebhookConfiguration")' |
    jq -s --arg base "https://127.0.0.1:$WEBHOOK_PORT" --arg ca "$1" --arg ann "$RENDERED_BY" '
      {apiVersion: "v1", kind: "List", items: map(
        .metadata.annotations[$ann] = "hack/demo.sh"
        | .webhooks |= map(.clientConfig = {url: ($base + .clientConfig.service.path), caBundle: $ca}))}'
}

readyz_ok() { [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$METRICS_URL/readyz")" = 200 ]; }

# Every webhook of both configurations carries the Secret's CA.
ca_bundles_set() {
  local ca kind
  ca=$(secret_ca) && [ -n "$ca" ] || return 1
  for kind in "mutatingwebhookconfiguration/$MUTATING" "validatingwebhookconfiguration/$VALIDATING"; do
    kc get "$kind" -o json | jq -e --arg ca "$ca" '[.webhooks[].clientConfig.caBundle == $ca] | all' >/dev/null ||
      return 1
  done
}

# Registered only once the controller has made its CA, with that CA: the
# validator fails closed, so it must never point at a server the API server
# cannot verify. Later the controller keeps caBundle patched by name.
install_webhooks() {
  local ca
  step "registering the webhooks ($MUTATING, $VALIDATING) at https://127.0.0.1:$WEBHOOK_PORT"
  wait_until 30 have_secret_ca ||
    controller_failed "the controller did not create Secret $OPNS/agentmesh-webhook-tls in 30 s"
  ca=$(secret_ca)
  render_webhooks "$ca" | kc apply -f -
  wait_until 60 readyz_ok ||
    controller_failed "controller not ready after 60 s: $(curl -s --max-time 2 "$METRICS_URL/readyz" || true)"
  wait_until 60 ca_bundles_set || controller_failed "caBundle not set on both webhook configurations after 60 s"
  echo "controller ready ($METRICS_URL/readyz is 200); caBundle set from Secret $OPNS/agentmesh-webhook-tls"
}

sample_names() { yq -r "select(.kind == \"$1\") | .metadata.name" "${@:2}"; }

apply_samples() {
  local ids=(samples/agentidentity-*.yaml) policies=(samples/trustpolicy-*.yaml) names=() n
  step "applying the samples"
  ensure_namespace "$AGNS" samples/namespace.yaml
  for n in "${ids[@]}" "${policies[@]}"; do kc apply -f "$n"; done
  kc apply -f samples/agent-deployment.yaml
  mapfile -t names < <(sample_names AgentIdentity "${ids[@]}")
  echo "waiting for the AgentIdentities to be Ready: ${names[*]}"
  kc -n "$AGNS" wait --for condition=Ready --timeout=120s "${names[@]/#/agentidentity/}" >/dev/null ||
    controller_failed "AgentIdentities not Ready after 120 s"
}

sa_has_token() { [ -n "$(kc -n "$AGNS" get serviceaccount "$1" -o 'jsonpath={.secrets[0].name}')" ]; }
pod_json() { kc -n "$AGNS" get pod "$POD" -o json; }
pod_has_tier() { [ -n "$(pod_json | jq -r '.metadata.labels["agentmesh.io/tier"] // empty')" ]; }

# No kubelet and no deployment controller here: the Deployment makes no pods.
# The pod it would make (its template) is created directly instead; a pod
# spec is immutable, so a second run replaces it and it is injected afresh.
create_agent_pod() {
  local sa
  step "creating pod $AGNS/$POD from the agent-alpha Deployment's template"
  sa=$(kc -n "$AGNS" get deployment agent-alpha -o 'jsonpath={.spec.template.spec.serviceAccountName}')
  # 1.20's ServiceAccount admission wants the ServiceAccount's token Secret.
  wait_until 60 sa_has_token "$sa" || die "ServiceAccount $AGNS/$sa has no token Secret after 60 s"
  kc -n "$AGNS" delete pod "$POD" --ignore-not-found --wait=true >/dev/null
  kc -n "$AGNS" get deployment agent-alpha -o json |
    jq --arg name "$POD" '{apiVersion: "v1", kind: "Pod",
      metadata: {name: $name, namespace: .metadata.namespace, labels: .spec.template.metadata.labels},
      spec: .spec.template.spec}' |
    kc create -f -
  [ -n "$(pod_json | jq -r '.metadata.annotations["agentmesh.io/injected"] // empty')" ] ||
    controller_failed "pod $POD was admitted without injection (failurePolicy Ignore hides webhook errors)"
  wait_until 20 pod_has_tier || true   # the controller labels agent pods with their tier
}

# write_identity <agent>: the agent's identity Secret as the sidecar reads it
# (common/identity.h): ed25519.key raw bytes, the others text. Mode 600.
write_identity() {
  local dir=$DEMO/identity/$1 secret key
  secret=$(kc -n "$AGNS" get secret "$1-agentmesh-identity" -o json)
  rm -rf "$dir"
  (
    umask 077
    mkdir -p "$dir"
    for key in ed25519.key ed25519.pub did key-id; do
      jq -er --arg k "$key" '.data[$k]' <<<"$secret" | base64 -d >"$dir/$key"
    done
  ) || die "Secret $AGNS/$1-agentmesh-identity lacks a key"
}

sidecar_healthy() { curl -fsS --max-time 2 "http://127.0.0.1:${SC_METRICS[$1]}/healthz"; }

start_sidecars() {
  local a
  step "starting two agentmesh-sidecar processes (${SIDECARS[*]})"
  mkdir -p "$DEMO/identity"
  chmod 700 "$DEMO/identity"
  for a in "${SIDECARS[@]}"; do
    ensure_free "${SC_PORT[$a]}" "${SC_METRICS[$a]}"
    write_identity "$a"
    demo_cl cl_start "sidecar-$a" "$BUILD/agentmesh-sidecar" --identity-dir "$DEMO/identity/$a" \
      --controller-url "$API_URL" --agent "$a" --listen "127.0.0.1:${SC_PORT[$a]}" \
      --metrics-listen "127.0.0.1:${SC_METRICS[$a]}"
  done
  for a in "${SIDECARS[@]}"; do
    wait_until 15 sidecar_healthy "$a" || die "sidecar of $a not healthy; see $DEMO/logs/sidecar-$a.log"
  done
}

post() {
  curl -sS --max-time 10 -X POST -H 'Content-Type: application/json' --data-binary "$2" \
    "http://127.0.0.1:${SC_PORT[$3]}$1"
}
did_of() { kc -n "$AGNS" get agentidentity "$1" -o 'jsonpath={.status.did}'; }

# The controller's registry learns agents from its informer a moment after
# their status is written; a challenge succeeds once it knows both.
challenge() {
  CHALLENGE=$(post /v1/challenge "$(jq -nc --arg d "$2" '{peer_did: $d}')" "$1") &&
    [ -n "$(jq -r '.challenge_id // empty' <<<"$CHALLENGE" 2>/dev/null)" ]
}

# handshake <verifier> <peer>: verifier's sidecar asks the controller for a
# challenge, peer's sidecar signs it, verifier's sidecar has it verified.
# Prints each step; the verify reply is left in VERIFIED.
handshake() {
  local me=$1 peer=$2 peer_did resp body
  peer_did=$(did_of "$peer")
  wait_until 30 challenge "$me" "$peer_did" || challenge "$me" "$peer_did" ||
    die "no challenge from the controller for $peer: $CHALLENGE"
  resp=$(post /v1/respond "$(jq -c '{challenge_id, nonce}' <<<"$CHALLENGE")" "$peer")
  jq -e .signature <<<"$resp" >/dev/null 2>&1 || die "$peer's sidecar did not sign: $resp"
  body=$(jq -c --arg c "$(jq -r .challenge_id <<<"$CHALLENGE")" \
    '{challenge_id: $c, agent_did, response_nonce, signature}' <<<"$resp")
  VERIFIED=$(post /v1/verify "$body" "$me")
  jq -e 'has("verified")' <<<"$VERIFIED" >/dev/null 2>&1 || die "verify failed: $VERIFIED"
  jq -r --arg me "$me" --arg peer "$peer" --argjson ch "$CHALLENGE" --argjson resp "$resp" '
    def pad: . + " " * ([1, 12 - length] | max);
    "  \($me) checks \($peer) (\($resp.agent_did))",
    "    challenge  sidecar of \($me | pad)-> \($ch.challenge_id), nonce \($ch.nonce[0:16])..., \($ch.expires_in_seconds) s to answer",
    "    respond    sidecar of \($peer | pad)-> signed with \($resp.key_id): \($resp.signature[0:16])...",
    "    verify     sidecar of \($me | pad)-> verified: \(.verified)",
    "               trust score \(.trust_score // "-"), tier \(.tier // "-"), capabilities \((.capabilities // []) | join(", "))",
    (if (.rejection_reason // "") != "" then "               rejected: \(.rejection_reason)" else empty end)' \
    <<<"$VERIFIED"
}

do_handshakes() {
  step "handshakes between two agents, through their sidecars"
  handshake agent-beta agent-alpha >"$DEMO/handshake.txt"
  [ "$(jq -r .verified <<<"$VERIFIED")" = true ] ||
    die "agent-beta could not verify agent-alpha: $VERIFIED"
  echo "  agent-alpha is under the strict policy too: its peers need 700" >>"$DEMO/handshake.txt"
  handshake agent-alpha agent-beta >>"$DEMO/handshake.txt"
  echo "agent-beta verified agent-alpha; agent-alpha refused agent-beta (strict policy)"
}

# What the CRD schema cannot refuse on 1.20 (weights summing to 0.9) comes
# back from /validate-agentmesh, through the API server.
validator_says() {
  kc apply --dry-run=server -f - 2>&1 <<EOF || true
apiVersion: agentmesh.io/v1alpha1
kind: TrustPolicy
metadata: {name: demo-bad-weights, namespace: $AGNS}
spec:
  minTrustScore: 500
  scoring:
    weights: {policyCompliance: 0.3, securityPosture: 0.2, outputQuality: 0.2, resourceEfficiency: 0.1, collaborationHealth: 0.1}
EOF
}

print_pod() {
  pod_json | jq -r '
    def env_names: [.env[]? | .name | select(startswith("AGENTMESH_"))] | join(" ");
    def show: "      \(.name)  image \(.image)" +
      (if (env_names) != "" then "\n        env: \(env_names)" else "" end) +
      (if .volumeMounts then "\n        mounts: " + ([.volumeMounts[] | "\(.mountPath)\(if .readOnly then " (ro)" else "" end)"] | join(", ")) else "" end);
    "  pod \(.metadata.namespace)/\(.metadata.name), phase \(.status.phase) (no kubelet here: it is never scheduled or run)",
    "    annotation agentmesh.io/injected: \(.metadata.annotations["agentmesh.io/injected"] // "(absent)")",
    "    labels: \(.metadata.labels | to_entries | map("\(.key)=\(.value)") | join(", "))",
    "    initContainers:" + (if (.spec.initContainers // []) == [] then " none" else "" end),
    (.spec.initContainers // [] | .[] | show),
    "    containers:",
    (.spec.containers[] | show)'
}

print_agents() {
  local total
  total=$(kc get agentidentities -A --no-headers 2>/dev/null | wc -l)
  if [ "$total" -le 20 ]; then
    echo "\$ kubectl get agentidentities -A"
    kc get agentidentities -A
  else
    echo "\$ kubectl get agentidentities -n $AGNS    ($total in the cluster: kubectl get agid -A)"
    kc -n "$AGNS" get agentidentities
  fi
}

hint() { printf '  %-66s %s\n' "$1" "$2"; }

print_summary() {
  local down=hack/demo.sh kdown=hack/kube-down.sh
  if [ "$CL_DIR" != /tmp/agentmesh-cluster ]; then
    down="AGENTMESH_CLUSTER_DIR=$CL_DIR hack/demo.sh"
    kdown="AGENTMESH_CLUSTER_DIR=$CL_DIR hack/kube-down.sh"
  fi
  step "AgentMesh is running"
  echo
  echo "Agents (DID, tier, trust score, phase):"
  print_agents
  echo
  echo "Trust policies:"
  kc -n "$AGNS" get trustpolicies -o custom-columns='NAME:.metadata.name,MIN SCORE:.spec.minTrustScore,QUARANTINE BELOW:.spec.quarantineBelow,MATCHED:.status.matchedAgents'
  echo
  echo "Sidecar injection (the Deployment agent-alpha makes no pods: no kubelet, no deployment controller here):"
  print_pod
  echo
  echo "Handshakes:"
  cat "$DEMO/handshake.txt"
  echo
  echo "The validator, asked through the API server about a TrustPolicy whose weights sum to 0.9:"
  validator_says | sed 's/^/  /'
  echo
  echo "Metrics (curl -s $METRICS_URL/metrics | grep ^agentmesh_):"
  curl -s --max-time 5 "$METRICS_URL/metrics" |
    awk -v ns="namespace=\"$AGNS\"" '/^agentmesh_/ && !/_bucket\{/ && (!/namespace="/ || index($0, ns)) { print "  " $0 }'
  cat <<EOF

What runs (all on 127.0.0.1):
  agentmesh-controller  pid $(demo_cl cl_pid controller)   trust API :$API_PORT, metrics/probes :$METRICS_PORT, webhooks :$WEBHOOK_PORT
  agentmesh-sidecar     pid $(demo_cl cl_pid sidecar-agent-alpha)   agent-alpha on :${SC_PORT[agent-alpha]} (metrics :${SC_METRICS[agent-alpha]})
  agentmesh-sidecar     pid $(demo_cl cl_pid sidecar-agent-beta)   agent-beta  on :${SC_PORT[agent-beta]} (metrics :${SC_METRICS[agent-beta]})
  the local cluster (kube-apiserver, etcd, Redis, PostgreSQL): state and logs in $CL_DIR
EOF
  echo
  echo "Where to look next (after: source $CL_DIR/env):"
  hint "kubectl -n $AGNS describe agentidentity agent-alpha" "status, conditions, events"
  hint "kubectl -n $AGNS get serviceaccounts,secrets,networkpolicies" "what the controller made"
  hint "kubectl -n $AGNS get pod $POD -o yaml" "the injected pod as stored"
  hint "kubectl -n $AGNS annotate agid agent-alpha agentmesh.io/rotate-key=now --overwrite" "a new key"
  hint "curl -s 127.0.0.1:${SC_PORT[agent-alpha]}/v1/identity" "agent-alpha's sidecar"
  hint "curl -s $METRICS_URL/readyz" "the controller's checks"
  hint "logs: $DEMO/logs/" "controller, sidecars"
  hint "      $CL_DIR/logs/" "the cluster"
  cat <<EOF
  README.md: "What the controller does", "Admission webhooks", "Trust API (8080)",
             "Metrics (9090)", "Security model", "Failure behaviour"

Stop the controller and sidecars (by pid file), delete the samples, the pod, the
webhook configurations and the copied keys:
  $down --down
then the local cluster, if nothing else uses it:
  $kdown
EOF
}

up() {
  take_lock
  install_deps
  build
  start_cluster
  stop_processes
  install_crds
  step "namespace $OPNS"
  ensure_namespace "$OPNS" manifests/base/namespace.yaml
  start_controller
  install_webhooks
  apply_samples
  create_agent_pod
  start_sidecars
  do_handshakes
  print_summary
}

# ------------------------------------------------------------------- --down

down() {
  local a f ns kind
  take_lock
  [ -d "$DEMO" ] || { echo "demo.sh: nothing to stop ($DEMO does not exist)"; return 0; }
  load_env
  for a in "${SIDECARS[@]}"; do demo_cl cl_stop "sidecar-$a"; done
  if [ -n "${KUBECONFIG:-}" ] && cl_apiserver_ready; then
    # Deleted while the controller still runs, so any finalizer is honoured.
    kc -n "$AGNS" delete pod "$POD" --ignore-not-found
    kc -n "$AGNS" delete deployment agent-alpha --ignore-not-found
    for f in samples/agentidentity-*.yaml samples/trustpolicy-*.yaml; do
      kc delete --ignore-not-found --wait=true --timeout=60s -f "$f" || true
    done
    # Only configurations the demo rendered: the validator fails closed, so
    # it must not outlive the controller it points at.
    for kind in "mutatingwebhookconfiguration/$MUTATING" "validatingwebhookconfiguration/$VALIDATING"; do
      if [ "$(kc get "$kind" -o json 2>/dev/null | jq -r --arg a "$RENDERED_BY" '.metadata.annotations[$a] // empty')" = hack/demo.sh ]; then
        kc delete "$kind"
      fi
    done
  else
    echo "demo.sh: the kube-apiserver is not running; only stopping processes"
  fi
  demo_cl cl_stop controller
  if [ -n "${KUBECONFIG:-}" ] && cl_apiserver_ready && [ -r "$DEMO/created-namespaces" ]; then
    while read -r ns; do kc delete namespace "$ns" --ignore-not-found --wait=false; done <"$DEMO/created-namespaces"
  fi
  rm -rf "$DEMO/identity" "$DEMO/pids" "$DEMO/cmd" "$DEMO/spool" "$DEMO/handshake.txt" "$DEMO/created-namespaces"
  echo "demo.sh: stopped; logs kept in $DEMO/logs"
  echo "demo.sh: the local cluster still runs (state in $CL_DIR); hack/kube-down.sh stops it"
}

case ${1:-} in
  "") up ;;
  --down) down ;;
  -h | --help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//' ;;
  *) echo "usage: hack/demo.sh [--down]" >&2; exit 2 ;;
esac
