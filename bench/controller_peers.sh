#!/usr/bin/env bash
# bench/controller_peers.sh — agentmesh-controller against its peers, in ONE run
# against ONE local API server (hack/kube-up.sh):
#
#  1. ceiling: the API server's own throughput for what the controller writes
#     per agent — a ServiceAccount (IRSA annotations), a Secret (the 4 data keys
#     of the identity Secret) and a NetworkPolicy (the controller's shape) — for
#     N agents, created directly by CLIENTS (8) parallel long-lived clients
#     (one `kubectl create -f chunk` each on N/CLIENTS triples, so process start
#     is paid 8 times, not 3N times). Wall time for all 3N objects. Measured
#     before AND after the controller run, so the noise of a shared machine shows.
#  2. controller: N AgentIdentities in a fresh namespace with one `kubectl
#     apply`; time from the start of that apply until every one is Ready
#     (status.phase Active, observedGeneration == generation; seen on a watch,
#     not a 1 s poll). controller time / ceiling time is the throughput ratio the
#     issue wants >= 80 % (i.e. ceiling_time / controller_time >= 0.8). Also API
#     requests per agent (the controller's rest_client_requests_total).
#  3. memory side by side, both from /proc/<pid>/status: our controller idle,
#     with N agents (+3N children) cached, peak (VmHWM); Kubernetes'
#     client-go sample-controller idle (Foo CRD, no Foos) and with N Foos and
#     their N Deployments cached.
#  4. with N2 set (e.g. N=1000 N2=5000): N2-N more agents into the same
#     controller process, RSS again, and growth (RSS_N2 - RSS_N)/(N2-N)
#     in KiB per agent; also of its anonymous part alone (RssAnon: the heap,
#     without library pages that fault in as more code runs).
#
# Why: the issue's goals are relative — the API server, not the controller,
# must be the bottleneck, and memory is judged next to client-go — so the
# reference figures have to come from the same machine at the same moment.
#
# The sample-controller talks to the API server at client-go's default 5 QPS
# and has no flag to change it: letting it create 1,000 Deployments itself
# would take minutes. So this script creates the Foos and, for each, exactly
# the Deployment the sample-controller would (name, labels, controller
# ownerReference, nginx template) before starting it; its informers then cache
# the same 2N objects. It still writes every Foo's status (at 5 QPS) while we
# measure; that is its normal steady work.
#
# Our controller runs with GNUTLS_NO_IMPLICIT_INIT=1, as the Deployment in
# manifests/base sets it (GnuTLS comes in only with libcurl's and libpq's
# LDAP/RTMP support; its load-time initialisation is ~0.85 MiB of RSS).
#
# Prerequisites: hack/kube-up.sh (cluster env in $AGENTMESH_CLUSTER_DIR, default
# /tmp/agentmesh-cluster); a Release build of agentmesh-controller (BIN);
# hack/kube-build.sh --with-peers for the sample-controller (SAMPLE_CONTROLLER,
# or SKIP_SAMPLE=1); kubectl, jq, curl, openssl, awk.
#
#   N=1000 bench/controller_peers.sh
#   N=1000 N2=5000 SKIP_CEILING=1 SKIP_SAMPLE=1 SKIP_BACKLOG=1 bench/controller_peers.sh   # growth
#
# Knobs: N (1000), N2 (unset), CLIENTS (8), BIN, SAMPLE_CONTROLLER,
# METRICS_PORT (19391), WORKERS (4), TIMEOUT per wait in s (300),
# SKIP_CEILING=1, SKIP_SAMPLE=1, SKIP_BACKLOG=1 (phase 2b, below),
# CLEANUP_WAIT s to wait for namespace deletion (90).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
N=${N:-1000}
N2=${N2:-}
CLIENTS=${CLIENTS:-8}
BIN=${BIN:-$root/build-release/agentmesh-controller}
SAMPLE_CONTROLLER=${SAMPLE_CONTROLLER:-$HOME/.cache/agentmesh/kube-1.20.2/bin/sample-controller}
METRICS_PORT=${METRICS_PORT:-19391}
WORKERS=${WORKERS:-4}
TIMEOUT=${TIMEOUT:-300}
SKIP_CEILING=${SKIP_CEILING:-0}
SKIP_SAMPLE=${SKIP_SAMPLE:-0}
CLEANUP_WAIT=${CLEANUP_WAIT:-90}
: "${AGENTMESH_CLUSTER_DIR:=/tmp/agentmesh-cluster}"

die() { echo "controller_peers: $*" >&2; exit 1; }
for t in kubectl jq curl openssl awk timeout; do
  command -v "$t" >/dev/null || die "missing tool: $t"
done
[ -r "$AGENTMESH_CLUSTER_DIR/env" ] ||
  die "no cluster env in $AGENTMESH_CLUSTER_DIR: run hack/kube-up.sh first (or set AGENTMESH_CLUSTER_DIR)"
# shellcheck disable=SC1091
source "$AGENTMESH_CLUSTER_DIR/env"
[ -x "$BIN" ] || die "no controller at $BIN: cmake -S $root -B $root/build-release -DCMAKE_BUILD_TYPE=Release && cmake --build $root/build-release --target agentmesh-controller (or set BIN)"
if [ "$SKIP_SAMPLE" != 1 ] && [ ! -x "$SAMPLE_CONTROLLER" ]; then
  die "no sample-controller at $SAMPLE_CONTROLLER: run hack/kube-build.sh --with-peers first (or SKIP_SAMPLE=1)"
fi
{ [[ $N =~ ^[0-9]+$ ]] && [ "$N" -ge "$CLIENTS" ]; } || die "N must be a number >= CLIENTS ($CLIENTS)"
[ -z "$N2" ] || { [[ $N2 =~ ^[0-9]+$ ]] && [ "$N2" -gt "$N" ]; } || die "N2 must be a number > N"
if (exec 3<>"/dev/tcp/127.0.0.1/$METRICS_PORT") 2>/dev/null; then
  die "port $METRICS_PORT is in use: set METRICS_PORT"
fi

kc() { kubectl --kubeconfig "$KUBECONFIG" "$@"; }
kc get --raw /readyz >/dev/null 2>&1 || die "API server of $AGENTMESH_CLUSTER_DIR not ready: hack/kube-up.sh"

tag=$$
NS=bench-peer-agents-$tag
OPNS=bench-peer-op-$tag
FOONS=bench-peer-foos-$tag

WORK=$(mktemp -d)
PID="" SPID="" WPID=""
NAMESPACES=()
FOO_CRD_CREATED=0

cleanup() {
  set +e
  for p in $WPID $PID $SPID; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  if [ ${#NAMESPACES[@]} -gt 0 ]; then
    kc delete ns "${NAMESPACES[@]}" --wait=false >/dev/null 2>&1
    # Deleting 4N+ objects loads the API server; wait (bounded) so it is done
    # inside the caller's bench lock rather than under someone else's run.
    timeout "$CLEANUP_WAIT" kubectl --kubeconfig "$KUBECONFIG" wait --for=delete ns "${NAMESPACES[@]}" \
      --timeout="${CLEANUP_WAIT}s" >/dev/null 2>&1 ||
      echo "note: namespaces ${NAMESPACES[*]} still terminating after ${CLEANUP_WAIT}s (left to the namespace controller)" >&2
  fi
  [ "$FOO_CRD_CREATED" = 1 ] && kc delete -f "$root/bench/sample-controller-crd.yaml" --wait=false >/dev/null 2>&1
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now() { date +%s.%N; }
sub() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", a - b}'; }
kib() { awk -v k="$2" '$1 == k":" {print $2}' "/proc/$1/status"; }   # kib <pid> VmRSS|VmHWM
mib() { awk -v k="$1" 'BEGIN{printf "%.1f", k / 1024}'; }
requests_total() {  # every request the controller made, all methods and codes
  curl -fsS "http://127.0.0.1:$METRICS_PORT/metrics" | awk '/^rest_client_requests_total/{s+=$NF} END{print s+0}'
}

# create_parallel <file prefix>: `kubectl create` of <prefix>.0 .. .CLIENTS-1
# at once, one long-lived client each; fails if any object fails.
create_parallel() {
  local i pids=() rc=0
  for ((i = 0; i < CLIENTS; i++)); do
    kc create --validate=false -f "$1.$i" >/dev/null 2>"$1.$i.err" &
    pids+=($!)
  done
  for i in "${!pids[@]}"; do wait "${pids[$i]}" || { rc=1; head -3 "$1.$i.err" >&2; }; done
  return $rc
}

# chunk_bounds <i>: first and last 1-based index of chunk i of N.
chunk_bounds() { echo $(($1 * N / CLIENTS + 1)) $((($1 + 1) * N / CLIENTS)); }

# The per-agent triple as the controller writes it (controller/agent_render.c,
# agent_reconciler.c), minus the ownerReference (there is no owner here) and
# with a bench label instead of app.kubernetes.io/managed-by, so the
# controller's label-scoped informers never see these objects.
gen_triples() {  # gen_triples <ns> <from> <to>
  awk -v ns="$1" -v from="$2" -v to="$3" -v opns="$OPNS" 'BEGIN {
    for (i = from; i <= to; i++) {
      a = "a" i
      printf "---\napiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: %s\n  namespace: %s\n", a, ns
      printf "  labels: {agentmesh.io/agent: %s, bench.agentmesh.io/ceiling: \"1\"}\n", a
      printf "  annotations: {eks.amazonaws.com/audience: sts.amazonaws.com, eks.amazonaws.com/role-arn: \"arn:aws:iam::123456789012:role/%s\", eks.amazonaws.com/sts-regional-endpoints: \"true\", eks.amazonaws.com/token-expiration: \"86400\"}\n", a
      printf "---\napiVersion: v1\nkind: Secret\ntype: agentmesh.io/identity\nmetadata:\n  name: %s-agentmesh-identity\n  namespace: %s\n", a, ns
      printf "  labels: {agentmesh.io/agent: %s, bench.agentmesh.io/ceiling: \"1\"}\n", a
      printf "  annotations: {agentmesh.io/key-rotated-at: \"2026-01-01T00:00:00Z\"}\n"
      printf "data:\n  did: ZGlkOm1lc2g6Nzg5MjFhZTdkNDNkMDE3MjRiNTgzYTA0ZDRkYWI0OTc=\n"
      printf "  ed25519.key: mxDMJtG3s/LtA15f/0DM0wVeREeqBUgB8y8aDQlTe2Y1s3uyWsc4+eL1NECf/6i9J5yEEyNvL/25hNXAeafxnw==\n"
      printf "  ed25519.pub: TmJON3NsckhPUG5pOVRSQW4vK292U2VjaEJNamJ5Lzl1WVRWd0htbjhaOD0=\n"
      printf "  key-id: a2V5LTc4OTIxYWU3ZDQzZDAxNzI=\n"
      printf "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: %s-agentmesh\n  namespace: %s\n", a, ns
      printf "  labels: {agentmesh.io/agent: %s, bench.agentmesh.io/ceiling: \"1\"}\n", a
      printf "spec:\n  podSelector: {matchLabels: {agentmesh.io/agent: %s}}\n  policyTypes: [Ingress]\n  ingress:\n  - from:\n", a
      printf "    - namespaceSelector: {}\n      podSelector:\n        matchExpressions:\n"
      printf "        - {key: agentmesh.io/agent, operator: Exists}\n"
      printf "        - {key: agentmesh.io/tier, operator: In, values: [untrusted, probationary, standard, trusted, verified_partner]}\n"
      printf "    - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: %s}}\n", opns
      printf "      podSelector: {matchLabels: {app.kubernetes.io/name: agentmesh-controller}}\n"
    }
  }'
}

CEIL_TIMES=()
ceiling() {  # ceiling <run number>: prints nothing, appends the wall time to CEIL_TIMES
  local ns=bench-peer-ceil-$tag-$1 i b t0 t1 got
  kc create ns "$ns" >/dev/null
  NAMESPACES+=("$ns")
  for ((i = 0; i < CLIENTS; i++)); do
    read -r -a b <<<"$(chunk_bounds $i)"
    gen_triples "$ns" "${b[0]}" "${b[1]}" >"$WORK/ceil$1.$i"
  done
  t0=$(now)
  create_parallel "$WORK/ceil$1" || die "ceiling run $1: creates failed"
  t1=$(now)
  got=$(kc -n "$ns" get sa,secret,networkpolicy -l bench.agentmesh.io/ceiling -o name | wc -l)
  [ "$got" = $((3 * N)) ] || die "ceiling run $1: $got objects, want $((3 * N))"
  CEIL_TIMES+=("$(sub "$t1" "$t0")")
  echo "ceiling run $1: $((3 * N)) objects by $CLIENTS clients in ${CEIL_TIMES[-1]} s ($(awk -v n=$((3 * N)) -v t="${CEIL_TIMES[-1]}" 'BEGIN{printf "%.0f", n / t}') objects/s)"
}

gen_agents() {  # gen_agents <from> <to>: the AgentIdentities of bench/controller.sh
  awk -v ns="$NS" -v from="$1" -v to="$2" 'BEGIN {
    for (i = from; i <= to; i++)
      printf "---\napiVersion: agentmesh.io/v1alpha1\nkind: AgentIdentity\nmetadata: {name: a%d, namespace: %s, labels: {team: t%d}}\nspec: {sponsor: a%d@example.com, capabilities: [\"read:data\"], cloud: {aws: {roleArn: \"arn:aws:iam::123456789012:role/a%d\"}}}\n", i, ns, i % 10, i, i
  }'
}

# wait_ready <count>: returns once <count> AgentIdentities in $NS are Active
# with observedGeneration == generation, as seen on one watch (started before
# the apply: its initial list plus events cover every object's latest state).
start_watch() {
  : >"$WORK/watch.log"
  exec 5< <(exec kubectl --kubeconfig "$KUBECONFIG" -n "$NS" get agentidentities.agentmesh.io -w \
    -o jsonpath='{.metadata.name}|{.status.phase}|{.status.observedGeneration}|{.metadata.generation}{"\n"}' 2>"$WORK/watch.err")
  WPID=$!
}
stop_watch() { kill "$WPID" 2>/dev/null || true; exec 5<&-; WPID=""; }
# A bash read loop, not awk: mawk buffers a pipe's input and would sit on
# lines it has already read.
wait_ready() {
  local want=$1 c=0 line name phase og gen left rc deadline=$((SECONDS + TIMEOUT))
  local -A ready=()
  while [ "$c" -lt "$want" ]; do
    left=$((deadline - SECONDS)) rc=0
    [ "$left" -gt 0 ] && { IFS= read -r -t "$left" line <&5 || rc=$?; } || rc=142
    if [ "$rc" = 1 ]; then   # end of the watch, not a timeout
      # The API server closes a watch that falls behind (thousands of updates in
      # a burst): count from the watch cache once a second from here on (±1 s).
      echo "note: the watch ended after $c Ready; polling the list from here" >&2
      until [ "$(ready_of_all)" = yes ]; do
        [ $SECONDS -lt $deadline ] || break
        sleep 1
      done
      [ "$(ready_of_all)" = yes ] && return 0
    fi
    [ "$rc" = 0 ] || die "fewer than $want AgentIdentities Ready after ${TIMEOUT}s ($c on the watch, $(count_ready) by a list)
watch: $(tail -n 3 "$WORK/watch.log" "$WORK/watch.err" 2>&1)
controller log: $(tail -n 20 "$WORK/ctl.log")"
    echo "$line" >>"$WORK/watch.log"
    IFS='|' read -r name phase og gen <<<"$line"
    [ -n "$name" ] || continue   # blank line (e.g. the initial list's own record)
    if [ "$phase" = Active ] && [ -n "$og" ] && [ "$og" = "$gen" ]; then
      [ -n "${ready[$name]:-}" ] || { ready[$name]=1; c=$((c + 1)); }
    elif [ -n "${ready[$name]:-}" ]; then
      unset "ready[$name]"; c=$((c - 1))
    fi
  done
}
# "yes" when every AgentIdentity in $NS is Ready (read from the watch cache).
ready_of_all() {
  kc get --raw "/apis/agentmesh.io/v1alpha1/namespaces/$NS/agentidentities?resourceVersion=0" |
    jq -r '.items | if all(.status.phase == "Active" and .status.observedGeneration == .metadata.generation) then "yes" else "no" end'
}
count_ready() {
  kc -n "$NS" get agentidentities.agentmesh.io -o json |
    jq '[.items[] | select(.status.phase == "Active" and .status.observedGeneration == .metadata.generation)] | length'
}

echo "# controller_peers: N=$N${N2:+ N2=$N2} CLIENTS=$CLIENTS API=$KUBE_APISERVER_URL $(date -u +%FT%TZ)"
echo "# load average at start: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores (shared machine)"
kc api-resources >/dev/null  # warm kubectl's discovery cache so no client pays for it in a timing
kc apply -f "$root/crds/" >/dev/null
kc wait --for condition=established --timeout=60s crd/agentidentities.agentmesh.io >/dev/null

# --- our controller, idle -----------------------------------------------------
kc create ns "$NS" >/dev/null; NAMESPACES+=("$NS")
kc create ns "$OPNS" >/dev/null; NAMESPACES+=("$OPNS")
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=127.0.0.1 \
  -keyout "$WORK/tls.key" -out "$WORK/tls.crt" 2>/dev/null
start_controller() {  # sets PID; returns once /readyz answers
  GNUTLS_NO_IMPLICIT_INIT=1 "$BIN" --kubeconfig "$KUBECONFIG" --namespace "$OPNS" --metrics-port "$METRICS_PORT" --api-port 0 --webhook-port 0 \
    --bind-address 127.0.0.1 --webhook-cert-dir "$WORK" --workers "$WORKERS" --log-level warn >>"$WORK/ctl.log" 2>&1 &
  PID=$!
  local deadline=$((SECONDS + 60))
  until curl -fsS "http://127.0.0.1:$METRICS_PORT/readyz" >/dev/null 2>&1; do
    kill -0 "$PID" 2>/dev/null || die "controller exited: $(tail -5 "$WORK/ctl.log")"
    [ $SECONDS -lt $deadline ] || die "controller not ready after 60 s"
    sleep 0.2
  done
}
start_controller
sleep 2
CTL_IDLE=$(kib $PID VmRSS)
echo "controller idle RSS: $(mib "$CTL_IDLE") MiB"

# --- 1. ceiling, first run ---------------------------------------------------------
[ "$SKIP_CEILING" = 1 ] || ceiling 1

# --- 2. controller: N agents -------------------------------------------------------
gen_agents 1 "$N" >"$WORK/agents.yaml"
start_watch
sleep 1
req0=$(requests_total)
t0=$(now)
kc apply -f "$WORK/agents.yaml" >/dev/null
t1=$(now)
wait_ready "$N"
t2=$(now)
req1=$(requests_total)
CTL_APPLY=$(sub "$t1" "$t0")
CTL_TIME=$(sub "$t2" "$t0")
[ "$(count_ready)" = "$N" ] || die "the watch saw $N Ready but a list disagrees"
REQ_PER=$(awk -v a="$req0" -v b="$req1" -v n="$N" 'BEGIN{printf "%.2f", (b - a) / n}')
echo "controller: kubectl apply of $N AgentIdentities ${CTL_APPLY} s; all Ready ${CTL_TIME} s after it started; $REQ_PER API requests per agent"
sleep 3
CTL_RSS=$(kib $PID VmRSS)
CTL_ANON=$(kib $PID RssAnon)
echo "controller RSS with $N agents + $((3 * N)) children: $(mib "$CTL_RSS") MiB (peak so far $(mib "$(kib $PID VmHWM)") MiB)"

# --- 4. growth N -> N2 in the same process ------------------------------------------
if [ -n "$N2" ]; then
  gen_agents $((N + 1)) "$N2" >"$WORK/agents2.yaml"
  stop_watch; start_watch
  sleep 1
  t0=$(now)
  kc apply -f "$WORK/agents2.yaml" >/dev/null
  # kubectl's -w prints its initial list as one List record (blank with this
  # template), so this watch reports only the N2-N new agents; the list after
  # it checks all N2.
  wait_ready $((N2 - N))
  t2=$(now)
  CTL_TIME2=$(sub "$t2" "$t0")
  [ "$(count_ready)" = "$N2" ] || die "the watch saw $N2 Ready but a list disagrees"
  echo "controller: $((N2 - N)) more agents Ready in $CTL_TIME2 s"
  sleep 3
  CTL_RSS2=$(kib $PID VmRSS)
  CTL_ANON2=$(kib $PID RssAnon)
  GROWTH=$(awk -v a="$CTL_RSS" -v b="$CTL_RSS2" -v n=$((N2 - N)) 'BEGIN{printf "%.2f", (b - a) / n}')
  ANON_GROWTH=$(awk -v a="$CTL_ANON" -v b="$CTL_ANON2" -v n=$((N2 - N)) 'BEGIN{printf "%.2f", (b - a) / n}')
  echo "controller RSS with $N2 agents: $(mib "$CTL_RSS2") MiB; growth ($N -> $N2): $GROWTH KiB per agent (anonymous memory, i.e. heap: $ANON_GROWTH KiB)"
fi
stop_watch

# --- 1. ceiling, second run (controller idle, it never sees these objects) ---------
[ "$SKIP_CEILING" = 1 ] || ceiling 2
CTL_HWM=$(kib $PID VmHWM)
kill "$PID"; wait "$PID" 2>/dev/null || true; PID=

# --- 2b. backlog: N new agents already there when a controller starts -------------
# In phase 2 the clock includes kubectl creating the agents one at a time,
# competing with the controller for the API server. Here the N agents exist
# before the controller starts, so the clock runs on the controller's own
# work only: start, initial lists (the N Ready agents of phase 2 included, a
# read-only reconcile each), and for each new agent key + 3 children + status.
# That is the figure to hold against the ceiling (same 3N objects).
if [ "${SKIP_BACKLOG:-0}" != 1 ]; then
  MAIN_NS=$NS; NS=bench-backlog-$$
  kc create ns "$NS" >/dev/null; NAMESPACES+=("$NS")
  gen_agents 1 "$N" >"$WORK/backlog.yaml"
  kc apply -f "$WORK/backlog.yaml" >/dev/null
  start_watch
  sleep 1
  t0=$(now)
  start_controller
  wait_ready "$N"
  BACKLOG_TIME=$(sub "$(now)" "$t0")
  stop_watch
  [ "$(count_ready)" = "$N" ] || die "backlog: the watch saw $N Ready but a list disagrees"
  echo "controller: started with $N new agents waiting (+$N Ready); all Ready ${BACKLOG_TIME} s after its start"
  kill "$PID"; wait "$PID" 2>/dev/null || true; PID=
  NS=$MAIN_NS
fi

# --- 3. sample-controller --------------------------------------------------------------
# run_sample <name>: starts it, waits until its caches synced ("Started workers").
run_sample() {
  "$SAMPLE_CONTROLLER" --kubeconfig "$KUBECONFIG" >"$WORK/$1.log" 2>&1 &
  SPID=$!
  local deadline=$((SECONDS + 120))
  until grep -q "Started workers" "$WORK/$1.log"; do
    kill -0 "$SPID" 2>/dev/null || die "sample-controller exited: $(tail -5 "$WORK/$1.log")"
    [ $SECONDS -lt $deadline ] || die "sample-controller caches not synced after 120 s: $(tail -5 "$WORK/$1.log")"
    sleep 0.2
  done
}
if [ "$SKIP_SAMPLE" != 1 ]; then
  kc get crd foos.samplecontroller.k8s.io >/dev/null 2>&1 || FOO_CRD_CREATED=1
  kc apply -f "$root/bench/sample-controller-crd.yaml" >/dev/null
  kc wait --for condition=established --timeout=60s crd/foos.samplecontroller.k8s.io >/dev/null
  [ "$(kc get foos.samplecontroller.k8s.io -A -o name | wc -l)" = 0 ] || die "Foos exist already; the idle figure would not be idle"
  run_sample sample-idle
  sleep 3
  SC_IDLE=$(kib $SPID VmRSS)
  kill "$SPID"; wait "$SPID" 2>/dev/null || true; SPID=
  echo "sample-controller idle RSS: $(mib "$SC_IDLE") MiB"

  kc create ns "$FOONS" >/dev/null; NAMESPACES+=("$FOONS")
  for ((i = 0; i < CLIENTS; i++)); do
    read -r -a b <<<"$(chunk_bounds $i)"
    awk -v ns="$FOONS" -v from="${b[0]}" -v to="${b[1]}" 'BEGIN { for (i = from; i <= to; i++)
      printf "---\napiVersion: samplecontroller.k8s.io/v1alpha1\nkind: Foo\nmetadata: {name: foo%d, namespace: %s}\nspec: {deploymentName: foo%d-nginx, replicas: 1}\n", i, ns, i }' >"$WORK/foos.$i"
  done
  create_parallel "$WORK/foos" || die "Foo creates failed"
  # The Deployment sample-controller's newDeployment() makes for each Foo.
  kc -n "$FOONS" get foos.samplecontroller.k8s.io -o jsonpath='{range .items[*]}{.metadata.name} {.metadata.uid}{"\n"}{end}' >"$WORK/foo-uids"
  [ "$(wc -l <"$WORK/foo-uids")" = "$N" ] || die "expected $N Foos"
  awk -v ns="$FOONS" -v k="$CLIENTS" -v w="$WORK/deps" '{
    f = w "." ((NR - 1) % k)
    printf "---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: %s-nginx\n  namespace: %s\n", $1, ns > f
    printf "  ownerReferences: [{apiVersion: samplecontroller.k8s.io/v1alpha1, kind: Foo, name: %s, uid: %s, controller: true, blockOwnerDeletion: true}]\n", $1, $2 > f
    printf "spec:\n  replicas: 1\n  selector: {matchLabels: {app: nginx, controller: %s}}\n", $1 > f
    printf "  template:\n    metadata: {labels: {app: nginx, controller: %s}}\n    spec: {containers: [{name: nginx, image: \"nginx:latest\"}]}\n", $1 > f
  }' "$WORK/foo-uids"
  create_parallel "$WORK/deps" || die "Deployment creates failed"
  run_sample sample-loaded
  sleep 5
  SC_RSS=$(kib $SPID VmRSS)
  SC_HWM=$(kib $SPID VmHWM)
  ndep=$(kc -n "$FOONS" get deployments -o name | wc -l)
  kill "$SPID"; wait "$SPID" 2>/dev/null || true; SPID=
  [ "$ndep" = "$N" ] || echo "warning: $ndep Deployments in $FOONS, expected $N (did sample-controller create or miss any?)" >&2
  echo "sample-controller RSS with $N Foos + $N Deployments cached: $(mib "$SC_RSS") MiB (peak $(mib "$SC_HWM") MiB)"
fi

# --- table ------------------------------------------------------------------------------
echo
echo "# load average at end: $(cut -d' ' -f1-3 /proc/loadavg) (shared machine: figures are noisy)"
printf '%-58s %s\n' "measure (N=$N)" "value"
if [ "$SKIP_CEILING" != 1 ]; then
  CEIL_BEST=$(printf '%s\n' "${CEIL_TIMES[@]}" | sort -g | head -1)
  printf '%-58s %s\n' "ceiling: $((3 * N)) objects, $CLIENTS clients (runs)" "$(printf '%s s  ' "${CEIL_TIMES[@]}")"
fi
printf '%-58s %s s (apply itself %s s)\n' "controller: apply -> all $N Ready" "$CTL_TIME" "$CTL_APPLY"
printf '%-58s %s\n' "controller: API requests per agent" "$REQ_PER"
[ -z "${BACKLOG_TIME:-}" ] || printf '%-58s %s s\n' "controller: start with $N new agents -> all Ready" "$BACKLOG_TIME"
if [ "$SKIP_CEILING" != 1 ]; then
  printf '%-58s %s\n' "ratio, best ceiling / (apply -> all Ready)" \
    "$(awk -v c="$CEIL_BEST" -v t="$CTL_TIME" 'BEGIN{printf "%.2f", c / t}')"
  [ -z "${BACKLOG_TIME:-}" ] || printf '%-58s %s\n' "throughput ratio, best ceiling / backlog (goal >= 0.80)" \
    "$(awk -v c="$CEIL_BEST" -v t="$BACKLOG_TIME" 'BEGIN{printf "%.2f", c / t}')"
fi
printf '%-58s %s MiB\n' "controller idle RSS" "$(mib "$CTL_IDLE")"
printf '%-58s %s MiB\n' "controller RSS, $N agents + $((3 * N)) children" "$(mib "$CTL_RSS")"
[ -z "$N2" ] || printf '%-58s %s MiB\n' "controller RSS, $N2 agents" "$(mib "$CTL_RSS2")"
printf '%-58s %s MiB\n' "controller peak RSS (VmHWM)" "$(mib "$CTL_HWM")"
[ -z "$N2" ] || printf '%-58s %s KiB\n' "controller growth per agent ($N -> $N2)" "$GROWTH"
[ -z "$N2" ] || printf '%-58s %s KiB\n' "  of it anonymous memory (heap; RssAnon)" "$ANON_GROWTH"
if [ "$SKIP_SAMPLE" != 1 ]; then
  printf '%-58s %s MiB\n' "sample-controller idle RSS" "$(mib "$SC_IDLE")"
  printf '%-58s %s MiB\n' "sample-controller RSS, $N Foos + $N Deployments" "$(mib "$SC_RSS")"
  printf '%-58s %s MiB\n' "sample-controller peak RSS (VmHWM)" "$(mib "$SC_HWM")"
  printf '%-58s %s\n' "controller peak / sample-controller loaded RSS" \
    "$(awk -v a="$CTL_HWM" -v b="$SC_RSS" 'BEGIN{printf "%.2f", a / b}')"
fi
