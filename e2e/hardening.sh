#!/usr/bin/env bash
# e2e/hardening.sh — fault injection and a security scan against one running
# controller (least-privilege user, the shipped ClusterRole), issue 8:
#   - TLS scan of the trust API and the webhook listeners with openssl
#     s_client: TLS 1.0/1.1 refused, 1.2/1.3 accepted, and every TLS 1.2
#     suite this OpenSSL can offer tried one by one: only forward-secret AEAD
#     ones accepted (no NULL, anonymous, PSK, static RSA, CBC; RC4, 3DES and
#     EXPORT are not even built into Debian's OpenSSL 3). A permissive
#     `openssl s_server` is probed first to prove the probe can see a weak
#     listener;
#   - a 10 MiB body sent to the API server (refused), the trust API and the
#     webhook (413), and a large (~200 KiB) AgentIdentity the API server
#     accepts: the controller stays healthy and keeps reconciling;
#   - a flood of 1,000 updates of one AgentIdentity from one curl running 16
#     transfers in parallel: status converges to the final generation;
#   - clock skew: a correctly signed trust API call is accepted at the right
#     time and refused (401, reason named) at now-301 s and now+301 s.
# The disk-full spool case is controller/test/test_spool_disk_full.c.
set -uo pipefail
# shellcheck source=e2e/lib.sh
source "$(dirname "$0")/lib.sh"
BIN=${BUILD_DIR:-$E2E_ROOT/build}/agentmesh-controller
[ -x "$BIN" ] || fail "$BIN not built"
WORK=$(mktemp -d)
chmod 700 "$WORK"
CTL_PID='' CONTROL_PID=''
finish() {
  local rc=$?
  for p in $CTL_PID $CONTROL_PID; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  if [ "$FAILED" != 0 ] && [ -f "$WORK/controller.log" ]; then
    kill -0 "$CTL_PID" 2>/dev/null || echo "--- the controller exited ---"
    echo "--- controller log (warnings, then the last lines) ---"
    grep -E "level=(warn|error)" "$WORK/controller.log" | tail -20
    tail -40 "$WORK/controller.log" | grep -vE "level=(warn|error)"
    cp "$WORK/controller.log" "${TMPDIR:-/tmp}/e2e-hardening-controller-$$.log" && echo "(whole log: ${TMPDIR:-/tmp}/e2e-hardening-controller-$$.log)"
  fi
  rm -rf "$WORK"
  (exit "$rc")
  _e2e_exit
}
trap finish EXIT

API=$(free_port) HOOK=$(free_port) OPS=$(free_port)

# --- the controller, as in production: least privilege, TLS on both listeners ----------
kc apply -f "$E2E_ROOT/crds/" >/dev/null || fail "cannot apply CRDs"
kc apply -f "$E2E_ROOT/manifests/base/clusterrole.yaml" >/dev/null || fail "cannot apply the ClusterRole"
kc wait --for condition=established --timeout=30s crd/agentidentities.agentmesh.io >/dev/null
e2e_namespace hardening-op
OPNS=$NS
e2e_namespace hardening
sed "s/namespace: agentmesh-system/namespace: $OPNS/" "$E2E_ROOT/manifests/base/role.yaml" | kc apply -f - >/dev/null
kc -n "$OPNS" create rolebinding agentmesh-operator-e2e --role agentmesh-controller --user agentmesh-operator >/dev/null
mkdir -p "$WORK/certs"
# RSA, so that static-RSA and ECDHE-RSA suites are both possible and the scan means something.
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
  -keyout "$WORK/certs/tls.key" -out "$WORK/certs/tls.crt" 2>/dev/null || fail "openssl cannot make a certificate"
"$BIN" --kubeconfig "$AGENTMESH_TEST_KUBECONFIG_OPERATOR" --namespace "$OPNS" --bind-address 127.0.0.1 \
  --api-port "$API" --webhook-port "$HOOK" --metrics-port "$OPS" --api-tls --webhook-cert-dir "$WORK/certs" \
  --audit-spool-dir "$WORK/spool" --status-min-interval 1 >"$WORK/controller.log" 2>&1 &
CTL_PID=$!
check "controller becomes ready (/readyz)" wait_for 30 curl -fsS "http://127.0.0.1:$OPS/readyz"
healthy() { kill -0 "$CTL_PID" 2>/dev/null && curl -fsS "http://127.0.0.1:$OPS/readyz" >/dev/null; }

field() { kc -n "$NS" get agid "$1" -o "jsonpath=$2" 2>/dev/null; }
converged() {
  local gen obs
  gen=$(field "$1" '{.metadata.generation}')
  obs=$(field "$1" '{.status.observedGeneration}')
  [ -n "$gen" ] && [ "$gen" = "$obs" ] && [ "$(field "$1" '{.status.phase}')" = Active ]
}
new_agent() {
  kc apply -f - >/dev/null <<YAML
apiVersion: agentmesh.io/v1alpha1
kind: AgentIdentity
metadata: {name: $1, namespace: $NS}
spec: {sponsor: hardening@example.com}
YAML
}
new_agent base
check "an agent converges before any fault" wait_for 60 converged base

# --- TLS scan -----------------------------------------------------------------------
# probe PORT ARGS...: 0 when a handshake with s_client ARGS completes.
probe() {
  local port=$1
  shift
  timeout 10 openssl s_client -connect "127.0.0.1:$port" "$@" </dev/null 2>/dev/null | grep -qE '^New, TLSv[0-9.]+, Cipher is [A-Z0-9]'
}
weak='ALL:COMPLEMENTOFALL:@SECLEVEL=0'
# Control: a listener that allows everything, so a refusal below is the server's doing.
CONTROL=$(free_port)
openssl s_server -accept "$CONTROL" -cert "$WORK/certs/tls.crt" -key "$WORK/certs/tls.key" -cipher "$weak" \
  -min_protocol TLSv1 -quiet >/dev/null 2>&1 &
CONTROL_PID=$!
wait_for 10 probe "$CONTROL" -tls1_2
check "control: the probe completes TLS 1.0 with a permissive server" probe "$CONTROL" -tls1 -cipher "$weak"
check "control: the probe completes a NULL-cipher TLS 1.2 handshake with it" probe "$CONTROL" -tls1_2 -cipher "eNULL:$weak"
kill "$CONTROL_PID" 2>/dev/null
refused() { ! probe "$@"; }
strong_tls12() { [[ $1 =~ ^ECDHE-(RSA|ECDSA)-(AES(128|256)-GCM-SHA(256|384)|CHACHA20-POLY1305)$ ]]; }
tls12_suites=$(openssl ciphers -tls1_2 -s "$weak" | tr ':' '\n' | grep -v '^TLS_')
for listener in "trust API:$API" "webhook:$HOOK"; do
  name=${listener%%:*} port=${listener##*:}
  check "$name: TLS 1.0 refused" refused "$port" -tls1 -cipher "$weak"
  check "$name: TLS 1.1 refused" refused "$port" -tls1_1 -cipher "$weak"
  check "$name: TLS 1.2 accepted" probe "$port" -tls1_2
  check "$name: TLS 1.3 accepted" probe "$port" -tls1_3
  accepted=() weak_ok=()
  for c in $tls12_suites; do
    probe "$port" -tls1_2 -cipher "$c:@SECLEVEL=0" || continue
    accepted+=("$c")
    strong_tls12 "$c" || weak_ok+=("$c")
  done
  echo "     ($name accepts $(echo "${accepted[@]}" | tr ' ' ',') of $(wc -w <<<"$tls12_suites") TLS 1.2 suites tried)"
  check "$name: only forward-secret AEAD TLS 1.2 suites accepted (weak ones accepted: ${weak_ok[*]:-none})" \
    test "${#accepted[@]}" -gt 0 -a "${#weak_ok[@]}" -eq 0
  for s in TLS_AES_128_GCM_SHA256 TLS_AES_256_GCM_SHA384 TLS_CHACHA20_POLY1305_SHA256; do
    check "$name: TLS 1.3 suite $s accepted" probe "$port" -tls1_3 -ciphersuites "$s"
  done
done

# --- 10 MiB bodies ------------------------------------------------------------------------
token=$(kc config view --raw -o jsonpath='{.users[0].user.token}')
python3 - "$NS" >"$WORK/huge.json" <<'PY'
import json, sys
print(json.dumps({"apiVersion": "agentmesh.io/v1alpha1", "kind": "AgentIdentity",
                  "metadata": {"name": "huge", "namespace": sys.argv[1]},
                  "spec": {"sponsor": "huge@example.com", "description": "x" * (10 << 20)}}))
PY
code=$(curl -sk -o "$WORK/huge.reply" -w '%{http_code}' -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
  --data-binary @"$WORK/huge.json" "$KUBE_APISERVER_URL/apis/agentmesh.io/v1alpha1/namespaces/$NS/agentidentities")
check "the API server refuses a 10 MiB AgentIdentity (HTTP $code)" test "${code:0:1}" = 4
check "so no such object exists" bash -c "! kubectl --kubeconfig $KUBECONFIG -n $NS get agid huge >/dev/null 2>&1"
for target in "trust API:https://127.0.0.1:$API/api/v1/signals" "webhook:https://127.0.0.1:$HOOK/mutate-pods"; do
  code=$(curl -sk -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' --data-binary @"$WORK/huge.json" "${target#*:}")
  check "${target%%:*} answers a 10 MiB body with 413 (got $code)" test "$code" = 413
done
# The largest object the API server takes: annotations up to their 256 KiB limit.
big=$(head -c $((200 * 1024)) /dev/zero | tr '\0' 'y')
# (create, not apply: apply would copy it all into last-applied-configuration too)
kc create -f - >/dev/null <<YAML || bad "the API server refused a 200 KiB AgentIdentity"
apiVersion: agentmesh.io/v1alpha1
kind: AgentIdentity
metadata: {name: large, namespace: $NS, annotations: {e2e/filler: "$big"}}
spec: {sponsor: large@example.com}
YAML
check "a 200 KiB AgentIdentity converges" wait_for 60 converged large
check "the controller is healthy after the oversized requests" healthy
new_agent after-huge
check "and keeps reconciling other agents" wait_for 60 converged after-huge

# --- a flood of 1,000 updates, 16 in flight ---------------------------------------------------
new_agent flood
wait_for 60 converged flood || bad "agent flood never converged before the flood"
url="$KUBE_APISERVER_URL/apis/agentmesh.io/v1alpha1/namespaces/$NS/agentidentities/flood"
# One curl config of 1,000 transfers ("next" between them, none after the last:
# an empty trailing transfer aborts the others). HTTP/1.1 over 16 connections:
# the API server serves them in parallel, unlike 16 streams of one HTTP/2 one.
for i in $(seq 1 1000); do
  [ "$i" = 1 ] || echo next
  printf 'url = "%s"\nrequest = "PATCH"\ninsecure\noutput = "/dev/null"\nwrite-out = "%%{http_code}\\n"\n' "$url"
  printf 'header = "Authorization: Bearer %s"\nheader = "Content-Type: application/merge-patch+json"\n' "$token"
  printf 'data = "{\\"spec\\":{\\"description\\":\\"update %d\\"}}"\n' "$i"
done >"$WORK/flood.curl"
t0=$(date +%s.%N)
curl -s --http1.1 --parallel --parallel-max 16 -K "$WORK/flood.curl" >"$WORK/flood.codes" 2>/dev/null
t1=$(date +%s.%N)
ok_count=$(grep -c '^200$' "$WORK/flood.codes")
echo "     (1,000 updates sent in $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}') s; $ok_count answered 200)"
sort "$WORK/flood.codes" | uniq -c | awk '$2 != 200 {printf "     (%d answered HTTP %s)\n", $1, $2}'
# Each accepted update changes the spec, so the final generation is at least
# 1 + the 200s (a request that timed out may still have been applied).
check "the API server took at least 900 of the 1,000 updates" test "$ok_count" -ge 900
flood_done() { converged flood && [ "$(field flood '{.metadata.generation}')" -ge $((1 + ok_count)) ]; }
check "status converges to the final generation" wait_for 120 flood_done
echo "     (generation $(field flood '{.metadata.generation}'), observedGeneration $(field flood '{.status.observedGeneration}'))"
check "the controller is healthy after the flood" healthy

# --- clock skew: the auth window is ±300 s ---------------------------------------------------------
did=$(field base '{.status.did}')
kc -n "$NS" get secret base-agentmesh-identity -o jsonpath='{.data.ed25519\.key}' | base64 -d >"$WORK/sk.raw"
# libsodium's secret key is seed || public key; the seed as a PKCS#8 DER key for openssl.
{ printf '\x30\x2e\x02\x01\x00\x30\x05\x06\x03\x2b\x65\x70\x04\x22\x04\x20'; head -c 32 "$WORK/sk.raw"; } |
  openssl pkey -inform DER -out "$WORK/sk.pem" 2>/dev/null || bad "cannot convert the agent's key for openssl"
# call_at OFFSET: GET /api/v1/agents signed with a time OFFSET seconds from now; prints "code body".
call_at() {
  local t sig path=/api/v1/agents
  t=$(date -u -d "@$(($(date +%s) + $1))" +%Y-%m-%dT%H:%M:%SZ)
  printf 'GET %s %s %s' "$path" "$t" "$(printf '' | sha256sum | cut -d' ' -f1)" >"$WORK/msg"
  sig=$(openssl pkeyutl -sign -inkey "$WORK/sk.pem" -rawin -in "$WORK/msg" | base64 -w0)
  curl -sk -w ' %{http_code}' -H "Authorization: Ed25519-Timestamp $did $t $sig" "https://127.0.0.1:$API$path"
}
accepted_now() { [[ $(call_at 0) == *' 200' ]]; }
check "a correctly signed call at the right time is accepted (the signer is right)" wait_for 30 accepted_now
# The time signed is whole seconds, taken from `date +%s` (the fraction dropped)
# a moment before the server reads its clock: signed N s ahead is N - fraction
# - latency ahead when checked, so the future case signs 302 to stay over 300
# whatever the fraction (301 was accepted once on a loaded host, at 299.9).
past=$(call_at -301) future=$(call_at 302)
replied() { [[ $1 == *" $2" && $1 == *"$3"* ]]; }   # replied REPLY CODE TEXT
check "signed 301 s in the past: 401 naming the reason" replied "$past" 401 "more than 300 s in the past"
check "signed 302 s in the future (over 300 s whatever the clock fraction): 401 naming the reason" replied "$future" 401 "more than 300 s in the future"
check "signed 290 s in the past: still accepted" replied "$(call_at -290)" 200 ""
rm -f "$WORK/sk.raw" "$WORK/sk.pem"
check "the controller stays healthy to the end" healthy
