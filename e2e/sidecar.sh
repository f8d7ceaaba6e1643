#!/usr/bin/env bash
# e2e/sidecar.sh — agentmesh-sidecar against a real agentmesh-controller and
# kube-apiserver (hack/kube-up.sh).
#
# Two AgentIdentities (alice, bob); each sidecar reads its agent's identity
# Secret laid out exactly as the kubelet mounts a Secret volume (files are
# symlinks through ..data, and an update swaps ..data atomically). Checks:
# /v1/identity matches the AgentIdentity status; a full handshake through the
# two sidecars (alice challenges bob, bob's sidecar signs, alice verifies)
# with the registry's score and tier; a replayed, a tampered and an
# over-demanding verify are refused; a signal moves the score; a key rotation
# is picked up without restart and the controller accepts the new key; the
# exit file and SIGTERM end the sidecar with status 0; no private key in logs.
set -uo pipefail
# shellcheck source=e2e/lib.sh
source "$(dirname "$0")/lib.sh"
BUILD_DIR=${BUILD_DIR:-$E2E_ROOT/build}
CTL=$BUILD_DIR/agentmesh-controller
SC=$BUILD_DIR/agentmesh-sidecar
[ -x "$CTL" ] && [ -x "$SC" ] || fail "build agentmesh-controller and agentmesh-sidecar in $BUILD_DIR first"

WORK=$(mktemp -d)
PIDS=()
OPNS=agentmesh-e2e-sc-$$
stop_all() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  kc delete ns "$OPNS" --wait=false >/dev/null 2>&1
  if [ "$FAILED" -gt 0 ]; then
    mkdir -p "/tmp/e2e-sidecar-logs.$$" && cp "$WORK"/*.log "/tmp/e2e-sidecar-logs.$$/" 2>/dev/null
    echo "logs kept in /tmp/e2e-sidecar-logs.$$"
  fi
  rm -rf "$WORK"
}
trap 'rc=$?; stop_all; (exit $rc); _e2e_exit' EXIT

API=$(free_port) OPS=$(free_port)

kc apply -f "$E2E_ROOT/crds/" >/dev/null || fail "cannot apply CRDs"
kc wait --for condition=established --timeout=30s crd/agentidentities.agentmesh.io >/dev/null
kc create ns "$OPNS" >/dev/null || fail "cannot create $OPNS"
e2e_namespace sidecar

mkdir -p "$WORK/certs"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=127.0.0.1 \
  -addext subjectAltName=IP:127.0.0.1 -keyout "$WORK/certs/tls.key" -out "$WORK/certs/tls.crt" 2>/dev/null
"$CTL" --kubeconfig "$KUBECONFIG" --namespace "$OPNS" --metrics-port "$OPS" --api-port "$API" \
  --webhook-port 0 --bind-address 127.0.0.1 --status-min-interval 1 --webhook-cert-dir "$WORK/certs" --workers 8 \
  >"$WORK/controller.log" 2>&1 &
PIDS+=($!)
wait_for 30 curl -fsS "http://127.0.0.1:$OPS/readyz" || fail "controller not ready (see its log)"

for a in alice bob; do
  kc apply -f - >/dev/null <<YAML
apiVersion: agentmesh.io/v1alpha1
kind: AgentIdentity
metadata: {name: $a, namespace: $NS}
spec: {sponsor: $a@example.com, capabilities: ["read:data"]}
YAML
done
field() { kc -n "$NS" get agid "$1" -o "jsonpath=$2" 2>/dev/null; }
active() { [ "$(field "$1" '{.status.phase}')" = Active ] && [ -n "$(field "$1" '{.status.did}')" ]; }
# The cluster is shared: other tests' agents may be queued ahead of ours.
for a in alice bob; do wait_for 300 active "$a" || fail "$a never became Active"; done

# mount_secret AGENT: writes the Secret's data under $WORK/AGENT the way the
# kubelet does: a timestamped dir, ..data -> it, files -> ..data/<key>.
mount_secret() {
  local dir=$WORK/$1 ts
  ts=..$(date +%s%N)
  mkdir -p "$dir/$ts"
  kc -n "$NS" get secret "$1-agentmesh-identity" -o json |
    jq -r '.data | to_entries[] | "\(.key) \(.value)"' |
    while read -r k v; do printf %s "$v" | base64 -d >"$dir/$ts/$k"; done
  ln -sfn "$ts" "$dir/..data_tmp" && mv -T "$dir/..data_tmp" "$dir/..data"
  for k in ed25519.key ed25519.pub did key-id; do [ -L "$dir/$k" ] || ln -s "..data/$k" "$dir/$k"; done
}

# start_sidecar AGENT PORT MPORT [extra flags]: sets STARTED_PID.
start_sidecar() {
  local a=$1 p=$2 m=$3
  shift 3
  "$SC" --identity-dir "$WORK/$a" --controller-url "http://127.0.0.1:$API" --agent "$a" \
    --listen "127.0.0.1:$p" --metrics-listen "127.0.0.1:$m" --reload-seconds 1 "$@" >>"$WORK/sidecar-$a.log" 2>&1 &
  STARTED_PID=$!
  PIDS+=("$STARTED_PID")
}

mount_secret alice
mount_secret bob
A=$(free_port) AM=$(free_port) B=$(free_port) BM=$(free_port)
start_sidecar alice "$A" "$AM"
ALICE_PID=$STARTED_PID
start_sidecar bob "$B" "$BM"
check "alice's sidecar is healthy" wait_for 10 curl -fsS "http://127.0.0.1:$AM/healthz"
check "bob's sidecar is healthy" wait_for 10 curl -fsS "http://127.0.0.1:$BM/healthz"

# check_reply REPLY MSG CMD...: check, printing REPLY when it fails.
check_reply() {
  local reply=$1
  shift
  local before=$FAILED
  check "$@"
  [ "$FAILED" -eq "$before" ] || echo "     reply: $reply"
}
get() { curl -sS "http://127.0.0.1:$1$2"; }
post() { curl -sS -X POST -H 'Content-Type: application/json' --data-binary "$3" "http://127.0.0.1:$1$2"; }
code() { curl -s -o /dev/null -w '%{http_code}' -X POST --data-binary "$3" "http://127.0.0.1:$1$2"; }

alice_did=$(field alice '{.status.did}')
bob_did=$(field bob '{.status.did}')
id=$(get "$A" /v1/identity)
check "/v1/identity matches the AgentIdentity status (did, key id, public key)" test \
  "$(jq -r '[.did, .key_id, .public_key, .agent]|join(" ")' <<<"$id")" \
  = "$alice_did $(field alice '{.status.keyId}') $(field alice '{.status.publicKey}') alice"

# --- handshake through both sidecars -------------------------------------------------
# The controller's registry learns agents from its informer, a moment after
# their status is written: wait until it knows both.
challenge_bob() {
  ch=$(post "$A" /v1/challenge "{\"peer_did\":\"$bob_did\"}")
  [ -n "$(jq -r '.challenge_id // empty' <<<"$ch" 2>/dev/null)" ]
}
challenge_bob
wait_for 60 challenge_bob
challenge_bob || echo "  last reply: $ch"
cid=$(jq -r '.challenge_id // empty' <<<"$ch")
nonce=$(jq -r '.nonce // empty' <<<"$ch")
check "alice's sidecar gets a challenge for bob from the controller" test -n "$cid" -a -n "$nonce"
resp=$(post "$B" /v1/respond "{\"challenge_id\":\"$cid\",\"nonce\":\"$nonce\"}")
check "bob's sidecar answers as bob" test "$(jq -r .agent_did <<<"$resp")" = "$bob_did"
verify_body=$(jq -c --arg c "$cid" '{challenge_id: $c, agent_did, response_nonce, signature}' <<<"$resp")
v=$(post "$A" /v1/verify "$verify_body")
check "the controller verifies bob with the registry's score and tier" test \
  "$(jq -r '[.verified, .trust_score, .tier]|map(tostring)|join(" ")' <<<"$v")" = "true 500 standard"
v=$(post "$A" /v1/verify "$verify_body")
check "a challenge is single-use (replayed verify refused)" test "$(jq -r .verified <<<"$v")" != true

ch=$(post "$A" /v1/challenge "{\"peer_did\":\"$bob_did\"}")
cid=$(jq -r .challenge_id <<<"$ch")
resp=$(post "$B" /v1/respond "$(jq -c '{challenge_id, nonce}' <<<"$ch")")
forged=$(jq -c --arg c "$cid" '{challenge_id: $c, agent_did, response_nonce: ("00" + .response_nonce[2:]), signature}' <<<"$resp")
v=$(post "$A" /v1/verify "$forged")
check_reply "$ch $resp $v" "a response with a changed nonce is refused" test "$(jq -r .verified <<<"$v")" = false

ch=$(post "$A" /v1/challenge "{\"peer_did\":\"$bob_did\"}")
resp=$(post "$B" /v1/respond "$(jq -c '{challenge_id, nonce}' <<<"$ch")")
high=$(jq -c --arg c "$(jq -r .challenge_id <<<"$ch")" '{challenge_id: $c, agent_did, response_nonce, signature, required_score: 900}' <<<"$resp")
v=$(post "$A" /v1/verify "$high")
check_reply "$ch $resp $v" "required_score above bob's score is refused with a reason" test \
  "$(jq -r '.verified' <<<"$v") $(jq -r '.rejection_reason // "" | length > 0' <<<"$v")" = "false true"

check "bad input to the sidecar is a 400" test "$(code "$A" /v1/challenge '{"peer_did":"nope"}')" = 400

# --- signals ---------------------------------------------------------------------------------
s=$(post "$A" /v1/signals '{"dimension":"policyCompliance","value":1,"weight":10}')
check_reply "$s" "a signal through the sidecar moves alice's own score" test "$(jq -r '[.agent_did, (.trust_score > 500)]|map(tostring)|join(" ")' <<<"$s")" = "$alice_did true"

# --- rotation without restart ------------------------------------------------------------
old_kid=$(field alice '{.status.keyId}')
kc -n "$NS" annotate agid alice --overwrite agentmesh.io/rotate-key=e2e-sidecar >/dev/null
rotated() { local k; k=$(field alice '{.status.keyId}'); [ -n "$k" ] && [ "$k" != "$old_kid" ]; }
wait_for 120 rotated || fail "alice's key did not rotate"
new_kid=$(field alice '{.status.keyId}')
wait_for 60 bash -c "kubectl --kubeconfig $KUBECONFIG -n $NS get secret alice-agentmesh-identity -o jsonpath='{.data.key-id}' | base64 -d | grep -qx $new_kid"
mount_secret alice
sc_kid() { [ "$(get "$A" /v1/identity | jq -r .key_id)" = "$new_kid" ]; }
check "the sidecar picks up the rotated key without restart" wait_for 10 sc_kid
check "same process (no restart)" kill -0 "$ALICE_PID"
check "the DID is unchanged" test "$(get "$A" /v1/identity | jq -r .did)" = "$alice_did"
# Past the 60 s grace nothing but the new key works; within it both do, so
# prove the new key is the one used: the controller's registry has it.
ch=$(post "$A" /v1/challenge "{\"peer_did\":\"$bob_did\"}")
check_reply "$ch" "the controller accepts calls signed with the new key" test \
  "$(jq -r '.challenge_id // empty' <<<"$ch" | cut -c1-10)" = challenge_

# --- ending ----------------------------------------------------------------------------------
E=$(free_port) EM=$(free_port)
start_sidecar bob "$E" "$EM" --exit-when-file-exists "$WORK/exit"
EXIT_PID=$STARTED_PID
wait_for 10 curl -fsS "http://127.0.0.1:$EM/healthz"
touch "$WORK/exit"
check "the exit file ends the sidecar" wait_for 5 bash -c "! kill -0 $EXIT_PID 2>/dev/null"
wait "$EXIT_PID"
check "with status 0" test $? = 0
kill -TERM "$ALICE_PID"
check "SIGTERM ends the sidecar" wait_for 5 bash -c "! kill -0 $ALICE_PID 2>/dev/null"
wait "$ALICE_PID"
check "with status 0" test $? = 0

leaked=0
for a in alice bob; do
  k=$(base64 -w0 <"$WORK/$a/ed25519.key")
  grep -qF -- "${k:0:40}" "$WORK"/sidecar-*.log && leaked=1
done
check "no private key in the sidecar logs" test $leaked = 0
