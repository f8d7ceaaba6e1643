#!/usr/bin/env bash
# bench/sidecar.sh — full handshakes through two agentmesh-sidecars at a
# fixed rate, against a real agentmesh-controller, with and without TLS to
# the controller; the sidecars' RSS idle and at peak under that load.
#
#   flock /tmp/agentmesh-bench.lock bench/sidecar.sh
#
# Needs the local control plane (hack/kube-up.sh; AGENTMESH_CLUSTER_DIR,
# default /tmp/agentmesh-cluster) and a Release build (BUILD_DIR, default
# build-release/) with agentmesh-controller, agentmesh-sidecar and
# bench_sidecar_handshake. RATE (default 500 handshakes/s) and SECONDS_PER_RUN
# (default 20). Two AgentIdentities, alice and bob; each sidecar reads its
# agent's identity Secret; the driver (bench/sidecar_handshake.c) has
# alice's sidecar challenge bob, bob's sidecar respond, alice's sidecar
# verify. Goals (issue 6): p99 < 3 ms at 500/s; RSS < 4 MiB (http) and
# < 8 MiB (https).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$root/build-release}
RATE=${RATE:-500}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-20}
: "${AGENTMESH_CLUSTER_DIR:=/tmp/agentmesh-cluster}"
set -a
# shellcheck source=/dev/null
source "$AGENTMESH_CLUSTER_DIR/env"
set +a
for b in agentmesh-controller agentmesh-sidecar bench_sidecar_handshake; do
  [ -x "$BUILD_DIR/$b" ] || { echo "build $b first: cmake -S $root -B $BUILD_DIR -DCMAKE_BUILD_TYPE=Release && cmake --build $BUILD_DIR"; exit 1; }
done
NS=bench-sc-$$
OPNS=bench-sc-op-$$
WORK=$(mktemp -d)
PIDS=()
kc() { kubectl --kubeconfig "$KUBECONFIG" "$@"; }
stop_pids() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; PIDS=(); }
cleanup() { stop_pids; kc delete ns "$NS" "$OPNS" --wait=false >/dev/null 2>&1 || true; rm -rf "$WORK"; }
trap cleanup EXIT
source "$(dirname "$0")/../e2e/checks.sh"   # free_port
wait_for() { local n=$1; shift; for _ in $(seq 1 $((n * 5))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done; return 1; }
kib() { awk -v f="$2" '$1 == f":" {print $2}' "/proc/$1/status"; }

kc apply -f "$root/crds/" >/dev/null
kc wait --for condition=established --timeout=30s crd/agentidentities.agentmesh.io >/dev/null
kc create ns "$NS" >/dev/null
kc create ns "$OPNS" >/dev/null
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=127.0.0.1 \
  -addext subjectAltName=IP:127.0.0.1 -keyout "$WORK/tls.key" -out "$WORK/tls.crt" 2>/dev/null
for a in alice bob; do
  printf 'apiVersion: agentmesh.io/v1alpha1\nkind: AgentIdentity\nmetadata: {name: %s, namespace: %s}\nspec: {sponsor: %s@example.com, capabilities: ["read:data"]}\n' \
    "$a" "$NS" "$a" | kc apply -f - >/dev/null
done

# start_controller [--api-tls]: sets API (its port).
start_controller() {
  local ops
  API=$(free_port) ops=$(free_port)
  "$BUILD_DIR/agentmesh-controller" --kubeconfig "$KUBECONFIG" --namespace "$OPNS" --api-port "$API" \
    --metrics-port "$ops" --webhook-port 0 --bind-address 127.0.0.1 --webhook-cert-dir "$WORK" \
    --log-level warn "$@" >>"$WORK/controller.log" 2>&1 &
  PIDS+=($!)
  wait_for 30 curl -fsS "http://127.0.0.1:$ops/readyz" || { tail "$WORK/controller.log"; echo "controller not ready"; exit 1; }
}

# The identity Secrets exist once the controller reconciled the agents.
start_controller
active() { [ "$(kc -n "$NS" get agid "$1" -o jsonpath='{.status.phase}')" = Active ]; }
for a in alice bob; do wait_for 120 active "$a" || { echo "$a never became Active"; exit 1; }; done
for a in alice bob; do
  mkdir -p "$WORK/$a"
  kc -n "$NS" get secret "$a-agentmesh-identity" -o json | jq -r '.data | to_entries[] | "\(.key) \(.value)"' |
    while read -r k v; do printf %s "$v" | base64 -d >"$WORK/$a/$k"; done
done
BOB_DID=$(cat "$WORK/bob/did")
stop_pids

# run MODE: one measured run with the controller on http or https.
run() {
  local mode=$1 url a am b bm apid bpid
  if [ "$mode" = https ]; then start_controller --api-tls; else start_controller; fi
  url=$mode://127.0.0.1:$API
  a=$(free_port) am=$(free_port) b=$(free_port) bm=$(free_port)
  "$BUILD_DIR/agentmesh-sidecar" --identity-dir "$WORK/alice" --controller-url "$url" --ca-file "$WORK/tls.crt" \
    --listen "127.0.0.1:$a" --metrics-listen "127.0.0.1:$am" --log-level warn >>"$WORK/sidecar.log" 2>&1 &
  apid=$!
  "$BUILD_DIR/agentmesh-sidecar" --identity-dir "$WORK/bob" --controller-url "$url" --ca-file "$WORK/tls.crt" \
    --listen "127.0.0.1:$b" --metrics-listen "127.0.0.1:$bm" --log-level warn >>"$WORK/sidecar.log" 2>&1 &
  bpid=$!
  PIDS+=("$apid" "$bpid")
  wait_for 10 curl -fsS "http://127.0.0.1:$am/healthz" && wait_for 10 curl -fsS "http://127.0.0.1:$bm/healthz" ||
    { echo "sidecars not healthy"; exit 1; }
  # The registry learns the agents from its informer a moment after start.
  wait_for 60 "$BUILD_DIR/bench_sidecar_handshake" "$a" "$b" "$BOB_DID" 10 1.5 ||
    { echo "no handshake succeeds"; exit 1; }
  sleep 1
  local idle_a idle_b
  idle_a=$(kib "$apid" VmRSS) idle_b=$(kib "$bpid" VmRSS)
  echo "== controller over $mode: $RATE handshakes/s for $SECONDS_PER_RUN s"
  "$BUILD_DIR/bench_sidecar_handshake" "$a" "$b" "$BOB_DID" "$RATE" "$SECONDS_PER_RUN" || echo "(some handshakes failed)"
  printf 'sidecar RSS kB   %-8s %-8s %-8s\n' idle after peak
  printf '  alice (A)      %-8s %-8s %-8s\n' "$idle_a" "$(kib "$apid" VmRSS)" "$(kib "$apid" VmHWM)"
  printf '  bob   (B)      %-8s %-8s %-8s\n' "$idle_b" "$(kib "$bpid" VmRSS)" "$(kib "$bpid" VmHWM)"
  stop_pids
}
run http
run https
