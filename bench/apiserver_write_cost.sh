#!/usr/bin/env bash
# bench/apiserver_write_cost.sh — what each write costs the API server, in
# CPU, and so the best throughput ratio any controller doing our writes can
# reach against the issue's ceiling.
#
# The controller's throughput goal is relative to the API server's ceiling:
# 8 clients creating each agent's three children (ServiceAccount, Secret,
# NetworkPolicy). The controller has to do more per agent than that, and
# some of it is dearer. This prices, on the local control plane
# (hack/kube-up.sh), the API server's own CPU (utime+stime from /proc) per
# request for every request of both:
#   ceiling:    POST ServiceAccount, POST Secret, POST NetworkPolicy
#   controller: GET ServiceAccount (404: is one there that someone else made?),
#               POST Secret (create-only: a key is never overwritten),
#               server-side apply of the ServiceAccount and of the
#               NetworkPolicy (field manager, ownerReference), the
#               AgentIdentity's status (merge patch through /status, on
#               objects made by `kubectl apply` as users make them), and the
#               "Provisioned" Event
#   and, for comparison, the status written with a PUT (client-go's UpdateStatus).
# Bodies have the controller's shapes (controller/agent_render.c, events.c).
# Each kind is sent by one curl process over one kept-alive connection, so
# client cost and TLS handshakes stay out of the figure. The API server is
# the only thing it measures, so the figures hold for any controller.
#
# Usage: bench/apiserver_write_cost.sh     Env: N (requests per kind, default 300), ROUNDS (2)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
N=${N:-300}
ROUNDS=${ROUNDS:-2}
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
kc -n "$NS" get agentidentities.agentmesh.io -o jsonpath='{range .items[*]}{.metadata.name} {.metadata.uid}{"\n"}{end}' >"$W/uids"
declare -A UID_OF=()
while read -r name uid; do UID_OF[$name]=$uid; done <"$W/uids"

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
# meta name agent round owned: a child's metadata (labels; ownerReference when owned)
meta() {
  printf '{"name":"%s","namespace":"%s","labels":{"agentmesh.io/agent":"%s","app.kubernetes.io/managed-by":"agentmesh"}' "$1" "$NS" "$2"
  [ "$3" = 1 ] && printf ',"ownerReferences":[{"apiVersion":"agentmesh.io/v1alpha1","kind":"AgentIdentity","name":"%s","uid":"%s","controller":true,"blockOwnerDeletion":true}]' "$2" "${UID_OF[$2]}"
  return 0
}
sa() {  # sa name agent owned
  printf '{"apiVersion":"v1","kind":"ServiceAccount","metadata":%s,"annotations":{"eks.amazonaws.com/audience":"sts.amazonaws.com","eks.amazonaws.com/role-arn":"arn:aws:iam::123456789012:role/%s","eks.amazonaws.com/sts-regional-endpoints":"true","eks.amazonaws.com/token-expiration":"86400"}}}' \
    "$(meta "$1" "$2" "$3")" "$2"
}
secret() {  # secret name agent
  printf '{"apiVersion":"v1","kind":"Secret","type":"agentmesh.io/identity","metadata":%s,"annotations":{"agentmesh.io/key-rotated-at":"2026-01-01T00:00:00Z"}},' "$(meta "$1" "$2" 1)"
  printf '"data":{"did":"%s","ed25519.key":"%s","ed25519.pub":"%s","key-id":"%s"}}' \
    "$(printf 'did:mesh:%032x' "${#1}" | base64 -w0)" "$(head -c 64 /dev/urandom | base64 -w0)" \
    "$(head -c 32 /dev/urandom | base64 -w0 | base64 -w0)" "$(printf 'key-%016x' "${#1}" | base64 -w0)"
}
netpol() {  # netpol name agent owned
  printf '{"apiVersion":"networking.k8s.io/v1","kind":"NetworkPolicy","metadata":%s},"spec":{"podSelector":{"matchLabels":{"agentmesh.io/agent":"%s"}},"policyTypes":["Ingress"],' \
    "$(meta "$1" "$2" "$3")" "$2"
  printf '"ingress":[{"from":[{"namespaceSelector":{},"podSelector":{"matchExpressions":[{"key":"agentmesh.io/agent","operator":"Exists"},{"key":"agentmesh.io/tier","operator":"In","values":["untrusted","probationary","standard","trusted","verified_partner"]}]}},'
  printf '{"namespaceSelector":{"matchLabels":{"kubernetes.io/metadata.name":"agentmesh-system"}},"podSelector":{"matchLabels":{"app.kubernetes.io/name":"agentmesh-controller"}}}]}]}}'
}
event() {  # event agent
  printf '{"apiVersion":"v1","kind":"Event","metadata":{"name":"%s.%s","namespace":"%s"},"involvedObject":{"apiVersion":"agentmesh.io/v1alpha1","kind":"AgentIdentity","name":"%s","namespace":"%s","uid":"%s"},' \
    "$1" "$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')" "$NS" "$1" "$NS" "${UID_OF[$1]}"
  printf '"type":"Normal","reason":"Provisioned","message":"identity key, ServiceAccount %s and NetworkPolicy %s-agentmesh are in place","count":1,"firstTimestamp":"2026-01-01T00:00:00Z","lastTimestamp":"2026-01-01T00:00:00Z","source":{"component":"agentmesh-controller"},"reportingComponent":"agentmesh-controller"}' "$1" "$1"
}
# add kind method url content-type [body]: appends one request to the kind's curl config
add() {
  local cfg=$W/$1.cfg n
  [ -s "$cfg" ] && echo next >>"$cfg"
  printf 'url = "%s"\nrequest = "%s"\ncacert = "%s"\nheader = "Authorization: Bearer %s"\nheader = "Content-Type: %s"\noutput = "/dev/null"\nwrite-out = "%%{http_code}\\n"\n' \
    "$3" "$2" "$AGENTMESH_TEST_KUBE_CA" "$TOKEN" "$4" >>"$cfg"
  if [ $# -ge 5 ]; then
    n=$W/body.$1.$((++BODIES))
    printf '%s' "$5" >"$n"
    printf 'data-binary = "@%s"\n' "$n" >>"$cfg"
  fi
}
declare -A MS=()
# run kind: sends the kind's requests, records and prints the API server's CPU per request
run() {
  local t0 t1 codes
  t0=$(ticks)
  codes=$(curl -sS -K "$W/$1.cfg" | sort | uniq -c | awk '{printf "%s×%s ", $1, $2}')
  t1=$(ticks)
  MS[$1]=$(awk -v d=$((t1 - t0)) -v hz="$hz" -v n="$N" 'BEGIN{printf "%.2f", d * 1000 / hz / n}')
  printf '  %-44s %6s ms of API-server CPU per request (HTTP %s)\n' "$1" "${MS[$1]}" "$codes"
}

api=$KUBE_APISERVER_URL/api/v1/namespaces/$NS
net=$KUBE_APISERVER_URL/apis/networking.k8s.io/v1/namespaces/$NS
crs=$KUBE_APISERVER_URL/apis/agentmesh.io/v1alpha1/namespaces/$NS/agentidentities
apply='fieldManager=agentmesh-controller&force=true'
BODIES=0
for round in $(seq 1 "$ROUNDS"); do
  echo "round $round (N=$N per kind):"
  rm -f "$W"/*.cfg "$W"/body.*
  for i in $(seq 1 "$N"); do
    a=a$i c=c$round-$i o=o$round-$i
    add ceiling-sa-create POST "$api/serviceaccounts" application/json "$(sa "$c" "$a" 0)"
    add ceiling-secret-create POST "$api/secrets" application/json "$(secret "$c" "$a")"
    add ceiling-netpol-create POST "$net/networkpolicies" application/json "$(netpol "$c" "$a" 0)"
    add ours-sa-get-404 GET "$api/serviceaccounts/$o" application/json
    add ours-secret-create POST "$api/secrets?fieldManager=agentmesh-controller" application/json "$(secret "$o-agentmesh-identity" "$a")"
    add ours-sa-apply PATCH "$api/serviceaccounts/$o?$apply" application/apply-patch+yaml "$(sa "$o" "$a" 1)"
    add ours-netpol-apply PATCH "$net/networkpolicies/$o-agentmesh?$apply" application/apply-patch+yaml "$(netpol "$o-agentmesh" "$a" 1)"
    add ours-status-merge-patch PATCH "$crs/$a/status" application/merge-patch+json "{\"status\":$(status "$i" $((500 + round)))}"
    add ours-event-create POST "$api/events" application/json "$(event "$a")"
  done
  for k in ceiling-sa-create ceiling-secret-create ceiling-netpol-create ours-sa-get-404 ours-secret-create \
    ours-sa-apply ours-netpol-apply ours-status-merge-patch ours-event-create; do run "$k"; done
  kc get --raw "/apis/agentmesh.io/v1alpha1/namespaces/$NS/agentidentities" >"$W/list.json"
  for i in $(seq 1 "$N"); do
    add status-put-for-comparison PUT "$crs/a$i/status" application/json "$(jq -c --argjson st "$(status "$i" $((600 + round)))" --arg n "a$i" \
      '.items[] | select(.metadata.name == $n) | .status = $st | .apiVersion = "agentmesh.io/v1alpha1" | .kind = "AgentIdentity"' "$W/list.json")"
  done
  run status-put-for-comparison
  awk -v s1="${MS[ceiling-sa-create]}" -v s2="${MS[ceiling-secret-create]}" -v s3="${MS[ceiling-netpol-create]}" \
    -v o1="${MS[ours-sa-get-404]}" -v o2="${MS[ours-secret-create]}" -v o3="${MS[ours-sa-apply]}" \
    -v o4="${MS[ours-netpol-apply]}" -v o5="${MS[ours-status-merge-patch]}" -v o6="${MS[ours-event-create]}" 'BEGIN {
      c = s1 + s2 + s3; o = o1 + o2 + o3 + o4 + o5 + o6
      printf "  per agent: ceiling %.1f ms, controller %.1f ms (status write %.1f) -> best reachable ratio %.2f\n", c, o, o5, c / o
    }'
done
