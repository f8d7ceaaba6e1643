#!/usr/bin/env bash
# e2e/demo.sh — the quickstart, hack/demo.sh, end to end on the local cluster.
#
# Runs the demo and checks what it printed against the cluster (the agents'
# DID / tier / score / phase, the injected pod, the handshakes, the validator,
# metrics, how to stop) and what it left running: the controller and both
# sidecars by their pid files, /readyz, the two webhook configurations (the
# manifests' rules and selectors, URLs on 127.0.0.1:9443, caBundle = the
# controller's CA), the pod as the API server stored it, a handshake of our
# own through the sidecars, key files private and no key or password leaked.
# Runs it again (idempotent: same agents, fresh processes), then
# `hack/demo.sh --down` and checks that exactly what the demo started is gone
# while the cluster still runs. A demo that was already up before the test is
# left up (the test only restarts it).
set -uo pipefail
# shellcheck source=e2e/lib.sh
source "$(dirname "$0")/lib.sh"
# shellcheck source=hack/cluster-lib.sh
source "$E2E_ROOT/hack/cluster-lib.sh"
unset BUILD_DIR   # ctest's (Sanitize) build dir: the demo builds its own Release one

DEMO_SH=$E2E_ROOT/hack/demo.sh
DEMO=$AGENTMESH_CLUSTER_DIR/demo
AGNS=agents-demo OPNS=agentmesh-system
AGENTS=(agent-alpha agent-beta agent-gamma)
PORTS=(8080 9090 9443 18081 18082 19091 19092)
OUT=$(mktemp -d)
demo_pid() { local CL_DIR=$DEMO; cl_pid "$1"; }
# A live process (an exited one not yet reaped by init counts as gone).
alive() { [ -n "$1" ] && cl_starttime "$1" >/dev/null; }

was_running=0
demo_pid controller >/dev/null && was_running=1
started=0 down_done=0
finish() {
  local rc=$?
  if [ "$was_running" = 0 ] && [ "$started" = 1 ] && [ "$down_done" = 0 ]; then
    bash "$DEMO_SH" --down >"$OUT/down-on-exit.log" 2>&1 || cat "$OUT/down-on-exit.log"
  fi
  if [ "$FAILED" -gt 0 ]; then
    mkdir -p "/tmp/e2e-demo-logs.$$" && cp -r "$OUT"/. "$DEMO/logs" "/tmp/e2e-demo-logs.$$/" 2>/dev/null
    echo "demo output and logs kept in /tmp/e2e-demo-logs.$$"
  fi
  rm -rf "$OUT"
  (exit "$rc")
  _e2e_exit
}
trap finish EXIT

if [ "$was_running" = 0 ]; then
  for p in "${PORTS[@]}"; do
    cl_port_busy "$p" && fail "127.0.0.1:$p is in use by something other than the demo; the demo needs it"
  done
fi

field() { kc -n "$AGNS" get agentidentity "$1" -o "jsonpath=$2" 2>/dev/null; }
secret_ca() { kc -n "$OPNS" get secret agentmesh-webhook-tls -o 'jsonpath={.data.ca\.crt}'; }
in_output() { grep -qE -- "$2" "$OUT/$1.log"; }

# ------------------------------------------------------------------ first run
started=1
bash "$DEMO_SH" >"$OUT/run1.log" 2>&1
rc=$?
check "hack/demo.sh exits 0" test "$rc" = 0
[ "$rc" = 0 ] || { tail -n 40 "$OUT/run1.log"; exit 1; }

# What it printed, against what the cluster holds.
for a in "${AGENTS[@]}"; do
  row="$AGNS +$a +$(field "$a" '{.status.did}') +$(field "$a" '{.status.tier}') +$(field "$a" '{.status.trustScore}') +Active "
  check "prints $a with its DID, tier, score and phase as in its status" in_output run1 "$row"
  check "$a is Ready" test "$(field "$a" '{.status.conditions[?(@.type=="Ready")].status}')" = True
done
check "prints the pod's injected sidecar container" in_output run1 '^      agentmesh-sidecar  image '
check "prints the pod's agentmesh.io/injected annotation" in_output run1 '^    annotation agentmesh.io/injected: \{"agent":"agent-alpha"'
check "says the pod stays Pending and why" in_output run1 'phase Pending \(no kubelet'
alpha_line="trust score $(field agent-alpha '{.status.trustScore}'), tier $(field agent-alpha '{.status.tier}'), capabilities read:data, write:reports, invoke:tool:ledger-search"
check "prints the verified handshake with agent-alpha's registry score, tier and capabilities" \
  bash -c "grep -A1 -- '-> verified: true' '$OUT/run1.log' | grep -qF -- '$alpha_line'"
check "prints the handshake the strict policy refuses, with the reason" \
  in_output run1 'rejected: trust score [0-9]+ is below the required 700'
check "prints the validator's refusal, through the API server" \
  in_output run1 'admission webhook "validate.agentmesh.io" denied the request: spec.scoring.weights'
check "prints a metrics sample" in_output run1 '^  agentmesh_handshakes_total\{result="verified"\} [1-9]'
check "says where to look next" in_output run1 'logs: .*/demo/logs/ +controller, sidecars'
check "says how to stop it" in_output run1 'hack/demo.sh --down'

# What it left running.
ctl1=$(demo_pid controller)
check "the controller runs (pid file $DEMO/pids/controller.pid)" test -n "$ctl1"
check "its /readyz is 200" test "$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:9090/readyz)" = 200
check "it is the process serving 8080, 9090 and 9443" \
  test "$(ss -Hltnp 'sport = :8080 or sport = :9090 or sport = :9443' | grep -c "pid=$ctl1,")" -ge 3
pg_pw=$(sed -nE 's|.*postgresql://[^:]*:([^@]*)@.*|\1|p' <<<"${AGENTMESH_TEST_POSTGRES_URL:-}")
check "the PostgreSQL password is on no command line and not in the output" \
  bash -c "[ -n '$pg_pw' ] && ! tr '\0' ' ' </proc/$ctl1/cmdline | grep -qF -- '$pg_pw' && ! grep -qF -- '$pg_pw' '$OUT/run1.log'"
check "the controller got both storage URLs" \
  bash -c "tr '\0' '\n' </proc/$ctl1/cmdline | grep -qx -- '$AGENTMESH_TEST_REDIS_URL' && tr '\0' '\n' </proc/$ctl1/environ | grep -q '^AGENTMESH_POSTGRES_URL=postgresql://'"

# The webhook configurations: the manifests' own, but by URL.
rendered=$(kubectl kustomize "$E2E_ROOT/manifests/base" |
  yq -c 'select(.kind | test("WebhookConfiguration$"))' | jq -s 'map({(.kind): .webhooks}) | add')
ca=$(secret_ca)
for kind in MutatingWebhookConfiguration ValidatingWebhookConfiguration; do
  case $kind in Mutating*) name=agentmesh-sidecar-injector path=/mutate-pods ;; *) name=agentmesh-validator path=/validate-agentmesh ;; esac
  stored=$(kc get "${kind,,}" "$name" -o json 2>/dev/null | jq -c .webhooks)
  check "$name: every webhook calls https://127.0.0.1:9443$path" test \
    "$(jq -r --arg u "https://127.0.0.1:9443$path" '[.[].clientConfig | .url == $u and (has("service") | not)] | all' <<<"$stored")" = true
  check "$name: caBundle is the controller's CA (Secret $OPNS/agentmesh-webhook-tls)" test \
    "$(jq -r --arg ca "$ca" '[.[].clientConfig.caBundle == $ca] | all and length > 0' <<<"$stored")" = true
  check "$name: same webhooks, rules and selectors as manifests/base" test "$(jq -n --argjson s "$stored" \
    --argjson m "$(jq -c --arg k "$kind" '.[$k]' <<<"$rendered")" '
    ($m | length) == ($s | length) and
    ([range($m | length)] | all(. as $i | ($m[$i] | del(.clientConfig)) as $w |
      ($s[$i] | with_entries(select(.key as $x | $w | has($x))))  == $w))')" = true
done

# The pod, as the API server stored it.
pod=$(kc -n "$AGNS" get pod agent-alpha-demo -o json 2>/dev/null)
check "the pod is stored injected (annotation, sidecar container, identity Secret volume)" test \
  "$(jq -r '[(.metadata.annotations["agentmesh.io/injected"] != null),
            ([.spec.containers[].name] | index("agentmesh-sidecar") != null),
            ([.spec.volumes[]? | .secret.secretName] | index("agent-alpha-agentmesh-identity") != null)] | all' <<<"$pod")" = true
check "the app container gets AGENTMESH_DID = agent-alpha's DID" test \
  "$(jq -r '.spec.containers[] | select(.name == "agent") | .env[] | select(.name == "AGENTMESH_DID") | .value' <<<"$pod")" \
  = "$(field agent-alpha '{.status.did}')"
check "the pod stays Pending (no kubelet)" test "$(jq -r .status.phase <<<"$pod")" = Pending

# The sidecars: their identity, their key files, a handshake of our own.
post() { curl -sS --max-time 10 -X POST -H 'Content-Type: application/json' --data-binary "$2" "http://127.0.0.1:$1"; }
declare -A SC=([agent-alpha]=18081 [agent-beta]=18082)
for a in agent-alpha agent-beta; do
  check "sidecar of $a runs (pid file) and serves its agent's DID" test \
    "$(demo_pid "sidecar-$a" >/dev/null && curl -s "http://127.0.0.1:${SC[$a]}/v1/identity" | jq -r .did)" = "$(field "$a" '{.status.did}')"
  check "$a's key files are private (dir 700, files 600)" test \
    "$(stat -c %a "$DEMO/identity/$a" "$DEMO/identity/$a"/* | sort -u | tr '\n' ' ')" = "600 700 "
done
ch=$(post 18082/v1/challenge "{\"peer_did\":\"$(field agent-alpha '{.status.did}')\"}")
resp=$(post 18081/v1/respond "$(jq -c '{challenge_id, nonce}' <<<"$ch" 2>/dev/null)")
v=$(post 18082/v1/verify "$(jq -c --arg c "$(jq -r .challenge_id <<<"$ch" 2>/dev/null)" \
  '{challenge_id: $c, agent_did, response_nonce, signature}' <<<"$resp" 2>/dev/null)")
check "a handshake of our own through the demo's sidecars verifies with alpha's status score" test \
  "$(jq -r '[.verified, .trust_score] | map(tostring) | join(" ")' <<<"$v" 2>/dev/null)" = "true $(field agent-alpha '{.status.trustScore}')"

leaked=0
for a in agent-alpha agent-beta; do
  k=$(base64 -w0 <"$DEMO/identity/$a/ed25519.key")
  grep -rqF -- "${k:0:40}" "$OUT/run1.log" "$DEMO/logs" && leaked=1
done
check "no private key in the demo's output or logs" test "$leaked" = 0

# ----------------------------------------------------------------- second run
dids1=$(for a in "${AGENTS[@]}"; do field "$a" '{.status.did}'; done)
sc1=$(demo_pid sidecar-agent-alpha)
bash "$DEMO_SH" >"$OUT/run2.log" 2>&1
rc=$?
check "a second run exits 0" test "$rc" = 0
[ "$rc" = 0 ] || tail -n 40 "$OUT/run2.log"
ctl2=$(demo_pid controller)
check "it restarted the controller (new pid, the old one gone)" \
  eval "[ -n '$ctl2' ] && [ '$ctl2' != '$ctl1' ] && ! alive $ctl1"
check "it restarted the sidecars" bash -c "[ -n '$(demo_pid sidecar-agent-alpha)' ] && [ '$(demo_pid sidecar-agent-alpha)' != '$sc1' ]"
check "the agents kept their DIDs" test "$(for a in "${AGENTS[@]}"; do field "$a" '{.status.did}'; done)" = "$dids1"
check "the second run verifies the handshake too" in_output run2 '-> verified: true'
check "the second run's pod is injected again" test -n \
  "$(kc -n "$AGNS" get pod agent-alpha-demo -o jsonpath='{.metadata.annotations.agentmesh\.io/injected}')"

if [ "$was_running" = 1 ]; then
  echo "# the demo was running before this test: left running (hack/demo.sh --down stops it)"
  exit 0
fi

# ---------------------------------------------------------------------- --down
created=$(cat "$DEMO/created-namespaces" 2>/dev/null)
sc2=$(demo_pid sidecar-agent-beta)
bash "$DEMO_SH" --down >"$OUT/down.log" 2>&1
rc=$?
down_done=1
check "hack/demo.sh --down exits 0" test "$rc" = 0
check "it stopped the controller and the sidecars" \
  eval "! alive $ctl2 && ! alive $sc2 && [ ! -e '$DEMO/pids/controller.pid' ]"
busy=()
for p in "${PORTS[@]}"; do cl_port_busy "$p" && busy+=("$p"); done
check "ports ${PORTS[*]} are free again" test "${#busy[@]}" = 0
check "it deleted both webhook configurations" bash -c \
  "! kubectl get mutatingwebhookconfiguration agentmesh-sidecar-injector 2>/dev/null && ! kubectl get validatingwebhookconfiguration agentmesh-validator 2>/dev/null"
check "it deleted the samples and the pod" test \
  "$(kc -n "$AGNS" get agentidentities,trustpolicies,deployments,pods -o name 2>/dev/null | wc -l)" = 0
gone() { local s; s=$(kc get namespace "$1" -o jsonpath='{.status.phase}' 2>/dev/null); [ -z "$s" ] || [ "$s" = Terminating ]; }
for ns in $created; do check "it deletes namespace $ns, which the demo created" gone "$ns"; done
check "it removed the copied keys" test ! -e "$DEMO/identity"
check "the cluster still runs" eval "kc get --raw /readyz >/dev/null"
