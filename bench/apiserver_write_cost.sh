#!/usr/bin/env bash
# bench/apiserver_write_cost.sh — what one write costs the API server, in CPU.
#
# The controller's throughput goal is relative to the API server's ceiling
# for creating each agent's three children. This measures, on the local
# control plane (hack/kube-up.sh), the API server's own CPU (utime+stime
# from /proc) per write for:
#   1. creating a Secret (what the ceiling's clients do, three times per agent);
#   2. writing an AgentIdentity's status with a JSON merge patch through
#      /status — what the controller does once per agent — on objects made
#      by `kubectl apply`, as users make them;
#   3. the same status written with a PUT of the object (client-go's
#      UpdateStatus), for comparison.
# Each request set is sent by one curl process over one kept-alive
# connection, so client cost and TLS handshakes stay out of the figure.
#
# Usage: bench/apiserver_write_cost.sh     Env: N (writes per kind, default 300)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
N=${N:-300}
: "${AGENTMESH_CLUSTER_DIR:=/tmp/agentmesh-cluster}"
source "$AGENTMESH_CLUSTER_DIR/env"
NS=bench-wcost-$$
W=$(mktemp -d)
kc() { kubectl --kubeconfig "$KUBECONFIG" "$@"; }
cleanup() { kc delete ns "$NS" --wait=false >/dev/null 2>&1 || true; rm -rf "$W"; }
trap cleanup EXIT

port=${KUBE_APISERVER_URL##*:}
APID=$(ss -tlnpH "sport = :$port" | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2)
[ -n "$APID" ] || { echo "apiserver_write_cost.sh: no kube-apiserver listening on :$port" >&2; exit 1; }
TOKEN=$(awk '/token:/{print $2; exit}' "$KUBECONFIG")
[ -n "$TOKEN" ] || { echo "apiserver_write_cost.sh: $KUBECONFIG has no bearer token" >&2; exit 1; }
ticks() { awk '{print $14 + $15}' "/proc/$APID/stat"; }
hz=$(getconf CLK_TCK)

kc apply -f "$root/crds/" >/dev/null
kc create ns "$NS" >/dev/null
for i in $(seq 1 "$N"); do
  printf -- '---\napiVersion: agentmesh.io/v1alpha1\nkind: AgentIdentity\nmetadata: {name: a%d, namespace: %s}\nspec: {sponsor: a%d@example.com, capabilities: ["read:data"], cloud: {aws: {roleArn: "arn:aws:iam::123456789012:role/a%d"}}}\n' \
    "$i" "$NS" "$i" "$i"
done >"$W/agents.yaml"
kc apply -f "$W/agents.yaml" >/dev/null

# status i score: a status of the shape the controller writes
status() {
  local t=2026-01-01T00:00:00Z
  printf '{"did":"did:mesh:%032x","publicKey":"q1w2e3r4t5y6u7i8o9p0a1s2d3f4g5h6j7k8l9z0x1c=","keyId":"key-%016x",' "$1" "$1"
  printf '"serviceAccountName":"a%d","secretName":"a%d-agentmesh-identity","trustScore":%d,"tier":"standard","phase":"Active","observedGeneration":1,"conditions":[' "$1" "$1" "$2"
  local first=1 c
  for c in Ready KeyReady ServiceAccountReady NetworkPolicyReady CloudBindingReady; do
    [ $first = 1 ] || printf ','
    first=0
    printf '{"type":"%s","status":"True","reason":"Reconciled","message":"the %s condition holds","lastTransitionTime":"%s","observedGeneration":1}' "$c" "$c" "$t"
  done
  printf ']}'
}
# entry method url content-type body-file: one request of a curl config
entry() {
  printf 'url = "%s"\nrequest = "%s"\ncacert = "%s"\nheader = "Authorization: Bearer %s"\nheader = "Content-Type: %s"\ndata-binary = "@%s"\noutput = "/dev/null"\nwrite-out = "%%{http_code}\\n"\n' \
    "$2" "$1" "$AGENTMESH_TEST_KUBE_CA" "$TOKEN" "$3" "$4"
}
# run label config: sends the requests, prints the API server's CPU per write
run() {
  local t0 t1 codes
  t0=$(ticks)
  codes=$(curl -sS -K "$2" | sort | uniq -c | awk '{printf "%s×%s ", $1, $2}')
  t1=$(ticks)
  printf '%-44s %6.2f ms of API-server CPU per write (HTTP %s)\n' "$1" \
    "$(awk -v d=$((t1 - t0)) -v hz="$hz" -v n="$N" 'BEGIN{print d * 1000 / hz / n}')" "$codes"
}

api=$KUBE_APISERVER_URL/api/v1/namespaces/$NS
crs=$KUBE_APISERVER_URL/apis/agentmesh.io/v1alpha1/namespaces/$NS/agentidentities
for round in 1 2; do
  : >"$W/secrets.cfg"; : >"$W/patch.cfg"; : >"$W/put.cfg"
  for i in $(seq 1 "$N"); do
    printf '{"apiVersion":"v1","kind":"Secret","metadata":{"name":"s%d-%d"},"data":{"did":"%s","public.key":"%s"}}' \
      "$round" "$i" "$(printf 'did:mesh:%032x' "$i" | base64 -w0)" "$(head -c 32 /dev/urandom | base64 -w0)" >"$W/s$i.json"
    [ "$i" = 1 ] || echo next >>"$W/secrets.cfg"
    entry POST "$api/secrets" application/json "$W/s$i.json" >>"$W/secrets.cfg"
    printf '{"status":%s}' "$(status "$i" $((500 + round)))" >"$W/p$i.json"
    [ "$i" = 1 ] || echo next >>"$W/patch.cfg"
    entry PATCH "$crs/a$i/status" application/merge-patch+json "$W/p$i.json" >>"$W/patch.cfg"
  done
  run "round $round: create a Secret" "$W/secrets.cfg"
  run "round $round: AgentIdentity status, merge patch" "$W/patch.cfg"
  kc get --raw "/apis/agentmesh.io/v1alpha1/namespaces/$NS/agentidentities" >"$W/list.json"
  for i in $(seq 1 "$N"); do
    jq -c --argjson st "$(status "$i" $((600 + round)))" --arg n "a$i" \
      '.items[] | select(.metadata.name == $n) | .status = $st | .apiVersion = "agentmesh.io/v1alpha1" | .kind = "AgentIdentity"' \
      "$W/list.json" >"$W/u$i.json"
    [ "$i" = 1 ] || echo next >>"$W/put.cfg"
    entry PUT "$crs/a$i/status" application/json "$W/u$i.json" >>"$W/put.cfg"
  done
  run "round $round: AgentIdentity status, PUT" "$W/put.cfg"
done
