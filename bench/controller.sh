#!/usr/bin/env bash
# bench/controller.sh — agentmesh-controller resource use and convergence.
#
# Against the local control plane (hack/kube-up.sh): RSS of an idle
# controller, time for N AgentIdentities (default 1000) to all reach Ready
# (each one = key generation, Secret create, ServiceAccount + NetworkPolicy
# server-side apply, status write), RSS with those N objects (and their
# 3N children) cached, and the API writes a steady-state resync costs (0 is
# the goal: children are compared with the cache before any write).
# Reference (../shared/LOCAL-CLUSTER.md): the client-go sample controller
# idles at ~29 MiB RSS and holds ~43 MiB with 1,000 objects cached.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
N=${N:-1000}
BIN=${BIN:-$root/build-release/agentmesh-controller}
: "${AGENTMESH_CLUSTER_DIR:=/tmp/agentmesh-cluster}"
source "$AGENTMESH_CLUSTER_DIR/env"
[ -x "$BIN" ] || { echo "build first: cmake -S $root -B $root/build-release -DCMAKE_BUILD_TYPE=Release && cmake --build $root/build-release"; exit 1; }
NS=bench-ctl-$$
OPNS=bench-op-$$
WORK=$(mktemp -d)
kc() { kubectl --kubeconfig "$KUBECONFIG" "$@"; }
rss_mib() { awk '/VmRSS/{printf "%.1f", $2/1024}' "/proc/$1/status"; }
# The agents carry our finalizer: delete them while the controller still runs
# (or the namespace stays Terminating and the next run's "idle" controller
# starts by cleaning up this run's agents).
cleanup() {
  set +e   # a slow delete must not abort the rest of the cleanup
  kc -n "$NS" delete agid --all --timeout=300s >/dev/null 2>&1
  [ -n "${PID:-}" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null
  kc delete ns "$NS" "$OPNS" --wait=false >/dev/null 2>&1; rm -rf "$WORK"
}
trap cleanup EXIT

kc apply -f "$root/crds/" >/dev/null
# An earlier run's namespaces still being deleted would load the API server
# during this one: wait (up to 2 min) until they are gone.
for _ in $(seq 120); do kc get ns -o name | grep -q '/bench-\(ctl\|op\)-' || break; sleep 1; done
kc create ns "$NS" >/dev/null; kc create ns "$OPNS" >/dev/null
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=127.0.0.1 \
  -keyout "$WORK/tls.key" -out "$WORK/tls.crt" 2>/dev/null
GNUTLS_NO_IMPLICIT_INIT=1 "$BIN" --kubeconfig "$KUBECONFIG" --namespace "$OPNS" --metrics-port 19390 --api-port 0 --webhook-port 0 \
  --bind-address 127.0.0.1 --webhook-cert-dir "$WORK" --workers 4 --log-level warn >"$WORK/log" 2>&1 &
PID=$!
until curl -fsS http://127.0.0.1:19390/readyz >/dev/null 2>&1; do sleep 0.2; done
sleep 2
echo "idle RSS: $(rss_mib $PID) MiB"

for i in $(seq 1 "$N"); do
  printf -- '---\napiVersion: agentmesh.io/v1alpha1\nkind: AgentIdentity\nmetadata: {name: a%d, namespace: %s, labels: {team: t%d}}\nspec: {sponsor: a%d@example.com, capabilities: ["read:data"], cloud: {aws: {roleArn: "arn:aws:iam::123456789012:role/a%d"}}}\n' \
    "$i" "$NS" $((i % 10)) "$i" "$i"
done >"$WORK/agents.yaml"
# requests [method regex]: the controller's API requests so far (client-go's metric).
requests() { curl -fsS http://127.0.0.1:19390/metrics | awk -v m="${1:-.}" '/^rest_client_requests_total/ && $0 ~ "method=\"" m {s+=$NF} END{print s+0}'; }
r0=$(requests)
t0=$(date +%s.%N)
kc apply -f "$WORK/agents.yaml" >/dev/null
t1=$(date +%s.%N)
# resourceVersion=0: served from the API server's watch cache, so polling a
# thousand objects does not load etcd and slow down what it measures.
ready() { [ "$(kc get --raw "/apis/agentmesh.io/v1alpha1/namespaces/$NS/agentidentities?resourceVersion=0" | jq '[.items[]|select(.status.phase=="Active" and .status.observedGeneration==.metadata.generation)]|length')" = "$N" ]; }
until ready; do sleep 1; done
t2=$(date +%s.%N)
r1=$(requests)
echo "kubectl apply of $N AgentIdentities: $(awk "BEGIN{printf \"%.1f\", $t1 - $t0}") s"
echo "all $N Ready (3 children + status each): $(awk "BEGIN{printf \"%.1f\", $t2 - $t0}") s after the apply started"
echo "controller API requests per new agent: $(awk "BEGIN{printf \"%.2f\", ($r1 - $r0) / $N}")"
sleep 3
echo "RSS with $N agents + $((3 * N)) children cached: $(rss_mib $PID) MiB"
before=$(requests '(POST|PUT|PATCH|DELETE)')
kc -n "$NS" annotate agid --all bench/poke="$(date +%s)" --overwrite >/dev/null  # every agent reconciles again
sleep 10
after=$(requests '(POST|PUT|PATCH|DELETE)')
echo "API writes for $N no-op reconciles: $((after - before))"
echo "peak RSS: $(awk '/VmHWM/{printf "%.1f", $2/1024}' /proc/$PID/status) MiB"
