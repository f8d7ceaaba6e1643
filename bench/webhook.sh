#!/usr/bin/env bash
# webhook.sh — AdmissionReviews/s and latency of /mutate-pods over TLS keep-alive.
#
# Runs bench_webhook_server (the real webhook: parse the pod, look the
# identity up, build the patch; AWS injectToken identity so the patch is the
# largest one) on 127.0.0.1 and drives it with Debian's wrk and a Lua script
# posting a fixed AdmissionReview:
#   1. saturation: wrk -t1 -c8 (the issue's reference setup) → req/s;
#   2. fixed rate ≈ 1,000 req/s (10 connections, each pausing 10 ms between
#      requests with wrk's delay()) → p50 / p99 latency;
#   3. peak RSS (VmHWM) of the webhook process over both runs;
#   4. CPU per request at saturation (the server's utime+stime over the
#      requests served): unlike req/s it barely moves when other work
#      shares the cores, so it compares runs made at different times;
#   5. the floor at the same fixed rate: the same server answering a 404
#      on an unknown path (same TLS, HTTP and wrk, no webhook work), so a
#      p99 can be read against what the machine gives any request;
#   6. the machine itself, before and after: how late a 1 ms sleep wakes
#      up (wake_probe), and the cores' busy and steal time per run;
#   7. the server's CPU per request at the fixed rate too (cold caches and a
#      wake-up per request make it dearer than at saturation).
# With AWAKE=1 every round runs the fixed-rate runs twice: as they are, and
# "awake", with one `nice -n 19` busy loop per core running meanwhile, so
# the vCPUs never halt and a wake-up costs no VM exit (this VM idles in
# HLT: a halted vCPU takes the hypervisor ~1 ms or more to wake at p99).
# The busy loops only get what nobody else wants, but they keep the cores
# busy, so "cores busy" reads ~100% there. The medians close the output for
# each condition, so the machine's halt/wake latency and ours separate in
# one run (a wake probe is taken awake as well). It only separates them on
# an otherwise idle host: when other work already keeps the cores busy, or
# the hypervisor is short of CPU (steal in the lines), the busy loops add
# nothing but competition and "awake" reads worse, not better.
# One server per scheduler slice in SLICES (the server's --sched-slice-us:
# 100 is the controller's default, 0 the kernel's), all up at once; the
# fixed-rate runs and their floors alternate between them for ROUNDS rounds
# and the medians close the output, so the gain of short slices shows in
# one run. With CONTROLLER=<agentmesh-controller binary> and KUBECONFIG of
# a private cluster, one whole controller replica per slice is measured the
# same way, in the same rounds (the script creates namespace team-a opted
# in, AgentIdentity alpha and the operator namespace OPNS; the replicas
# share its Lease, so one reconciles and both serve the webhook).
# When agnhost is available (AGNHOST=path, or the kube-build.sh cache after
# `hack/kube-build.sh --with-peers`), `agnhost webhook` (/mutating-pods-sidecar)
# is measured the same way in the same run, side by side.
#
# Usage: bench/webhook.sh [seconds per run, default 10]
# Env: BUILD_DIR (default build-bench, RelWithDebInfo, built here),
#      THREADS (webhook event loops, default 2: the controller's
#      --webhook-threads default, what a deployment runs; agnhost uses both
#      cores too), PORT (19443; agnhost gets PORT+1, the webhooks PORT+2...),
#      SLICES (default "100 0"), ROUNDS (default 1), SERVER (a
#      bench_webhook_server binary to measure instead, e.g. an older build
#      for a before/after; then nothing is built; it must know
#      --sched-slice-us), BASELINE (another bench_webhook_server binary,
#      e.g. a copy of the build before a change: one server of it per slice
#      too, labelled "baseline", on PORT+10..., measured in the same
#      alternating rounds, so a before/after shares the machine's moments),
#      CONTROLLER and KUBECONFIG (above; the controllers
#      listen on PORT+20..., metrics PORT+30...), OPNS (default
#      agentmesh-bench-webhook), AWAKE (0, or 1: above).
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$SRC/build-bench}
DURATION=${1:-10}
THREADS=${THREADS:-2}
PORT=${PORT:-19443}
SLICES=${SLICES:-100 0}
ROUNDS=${ROUNDS:-1}
CONTROLLER=${CONTROLLER:-}
OPNS=${OPNS:-agentmesh-bench-webhook}
AWAKE=${AWAKE:-0}
AGNHOST=${AGNHOST:-$HOME/.cache/agentmesh/kube-1.20.2/bin/agnhost}
WORK=$(mktemp -d)
PIDS=()
SPINNERS=()
# The servers are started from $(...) subshells, so they are not our
# children to wait for: poll until they are gone (a controller takes a few
# seconds to stop) before their files go.
cleanup() {
  awake_off
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do
    for _ in $(seq 300); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

command -v wrk >/dev/null || { echo "webhook.sh: wrk not installed (apt-get install wrk)" >&2; exit 1; }
# Always (re)build: an up-to-date binary is a no-op, a stale one would measure old code.
if [ -z "${SERVER:-}" ]; then
  cmake -S "$SRC" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$BUILD_DIR" -j2 --target bench_webhook_server >/dev/null
  SERVER=$BUILD_DIR/bench_webhook_server
fi

# The review: a two-container pod with an init container, in an opted-in namespace.
cat >"$WORK/review.json" <<'EOF'
{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"0df28fbd-5f5f-11e8-bc74-36e6bb280816","kind":{"group":"","version":"v1","kind":"Pod"},"resource":{"group":"","version":"v1","resource":"pods"},"requestKind":{"group":"","version":"v1","kind":"Pod"},"requestResource":{"group":"","version":"v1","resource":"pods"},"namespace":"team-a","operation":"CREATE","userInfo":{"username":"system:serviceaccount:kube-system:replicaset-controller","uid":"a7e0ab33-5f29-11e8-8a3c-36e6bb280816","groups":["system:serviceaccounts","system:serviceaccounts:kube-system","system:authenticated"]},"object":{"kind":"Pod","apiVersion":"v1","metadata":{"generateName":"agent-alpha-7d4b9c8f6-","namespace":"team-a","creationTimestamp":null,"labels":{"app":"agent-alpha","pod-template-hash":"7d4b9c8f6"},"annotations":{"kubectl.kubernetes.io/restartedAt":"2024-01-01T00:00:00Z"},"ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"agent-alpha-7d4b9c8f6","uid":"1e0b2d44-5f5f-11e8-bc74-36e6bb280816","controller":true,"blockOwnerDeletion":true}]},"spec":{"volumes":[{"name":"kube-api-access-x2k9p","projected":{"sources":[{"serviceAccountToken":{"expirationSeconds":3607,"path":"token"}},{"configMap":{"name":"kube-root-ca.crt","items":[{"key":"ca.crt","path":"ca.crt"}]}}],"defaultMode":420}}],"initContainers":[{"name":"migrate","image":"registry.example.com/agent-alpha:1.4.2","command":["/app/migrate"],"resources":{},"volumeMounts":[{"name":"kube-api-access-x2k9p","readOnly":true,"mountPath":"/var/run/secrets/kubernetes.io/serviceaccount"}],"terminationMessagePath":"/dev/termination-log","terminationMessagePolicy":"File","imagePullPolicy":"IfNotPresent"}],"containers":[{"name":"agent","image":"registry.example.com/agent-alpha:1.4.2","ports":[{"name":"http","containerPort":8000,"protocol":"TCP"}],"env":[{"name":"LOG_LEVEL","value":"info"},{"name":"MODEL","value":"gpt-4o"}],"resources":{"limits":{"cpu":"1","memory":"1Gi"},"requests":{"cpu":"250m","memory":"512Mi"}},"volumeMounts":[{"name":"kube-api-access-x2k9p","readOnly":true,"mountPath":"/var/run/secrets/kubernetes.io/serviceaccount"}],"terminationMessagePath":"/dev/termination-log","terminationMessagePolicy":"File","imagePullPolicy":"IfNotPresent"},{"name":"tools","image":"registry.example.com/agent-tools:0.9.0","resources":{},"volumeMounts":[{"name":"kube-api-access-x2k9p","readOnly":true,"mountPath":"/var/run/secrets/kubernetes.io/serviceaccount"}],"terminationMessagePath":"/dev/termination-log","terminationMessagePolicy":"File","imagePullPolicy":"IfNotPresent"}],"restartPolicy":"Always","terminationGracePeriodSeconds":30,"dnsPolicy":"ClusterFirst","serviceAccountName":"alpha","serviceAccount":"alpha","securityContext":{},"schedulerName":"default-scheduler","tolerations":[{"key":"node.kubernetes.io/not-ready","operator":"Exists","effect":"NoExecute","tolerationSeconds":300}],"priority":0,"enableServiceLinks":true,"preemptionPolicy":"PreemptLowerPriority"},"status":{}},"oldObject":null,"dryRun":false,"options":{"kind":"CreateOptions","apiVersion":"meta.k8s.io/v1"}}}
EOF

cat >"$WORK/post.lua" <<'EOF'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = assert(io.open(os.getenv("REVIEW_FILE"), "rb"))
wrk.body = f:read("*a")
f:close()
local pause = tonumber(os.getenv("PAUSE_MS") or "0")
if pause > 0 then
  function delay() return pause end
end
local bad = 0
function response(status, headers, body)
  if status ~= 200 then bad = bad + 1 end
end
function done(summary, latency, requests)
  io.write(string.format("non200 %d\n", bad))
end
EOF

# wait_ready <logfile>: the port once the server printed "ready <port>".
wait_ready() {
  for _ in $(seq 100); do
    if grep -q '^ready ' "$1" 2>/dev/null; then awk '/^ready /{print $2; exit}' "$1"; return 0; fi
    sleep 0.1
  done
  echo "webhook.sh: server did not start:" >&2; cat "$1" >&2; return 1
}

# cpu_ticks <pid>: user + system CPU of the process, in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# us <wrk latency>: the value in microseconds ("812.00us", "4.03ms", "1.20s").
us() { awk -v v="$1" 'BEGIN{n=v+0; if (v ~ /ms$/) n*=1e3; else if (v ~ /[0-9]s$/) n*=1e6; printf "%.0f", n}'; }

# saturation <label> <url> <pid>: warm-up, then wrk -t1 -c8 → req/s, latency and CPU per request.
saturation() {
  local label=$1 url=$2 pid=$3 out ticks0 ticks1 cpu
  export REVIEW_FILE=$WORK/review.json
  # Warm-up (TLS sessions, allocator) so every server is measured alike.
  PAUSE_MS=0 wrk -t1 -c8 -d2s -s "$WORK/post.lua" "$url" >/dev/null
  ticks0=$(cpu_ticks "$pid")
  out=$(PAUSE_MS=0 wrk -t1 -c8 -d"${DURATION}s" --latency -s "$WORK/post.lua" "$url")
  ticks1=$(cpu_ticks "$pid")
  cpu=$(awk -v t=$((ticks1 - ticks0)) -v hz="$(getconf CLK_TCK)" '/ requests in /{printf "%.0f", t / hz * 1e6 / $1}' <<<"$out")
  printf '%-26s saturation %10s req/s (p50 %s, p99 %s) | CPU %s us/req | non-200 %s\n' "$label" \
    "$(awk '/^Requests\/sec/{print $2}' <<<"$out")" "$(awk '$1=="50%"{print $2}' <<<"$out")" \
    "$(awk '$1=="99%"{print $2}' <<<"$out")" "$cpu" "$(awk '/^non200/{print $2}' <<<"$out")"
}

# fixed <url>: "<req/s> <p50> <p99> <non-200> <requests>" at ≈ 1,000 req/s
# (10 connections, 10 ms pause each).
fixed() {
  local out
  export REVIEW_FILE=$WORK/review.json
  out=$(PAUSE_MS=10 wrk -t1 -c10 -d"${DURATION}s" --latency -s "$WORK/post.lua" "$1")
  awk '/^Requests\/sec/{r=$2} $1=="50%"{p50=$2} $1=="99%"{p99=$2} /^non200/{n=$2} / requests in /{q=$1}
    END{print r, p50, p99, n, q}' <<<"$out"
}

# awake_on / awake_off: one nice-19 busy loop per core (AWAKE=1), so the
# vCPUs never halt while they run.
awake_on() {
  for _ in $(seq "$(nproc)"); do
    nice -n 19 sh -c 'while :; do :; done' &
    SPINNERS+=($!)
  done
}
awake_off() {
  [ "${#SPINNERS[@]}" -gt 0 ] || return 0
  kill "${SPINNERS[@]}" 2>/dev/null || true
  wait "${SPINNERS[@]}" 2>/dev/null || true
  SPINNERS=()
}

# peak_rss <pid>: VmHWM of the process.
peak_rss() { awk '/^VmHWM/{printf "%.1f MiB", $2/1024}' "/proc/$1/status"; }

# start_server <binary> <slice us> <port>: a webhook server with that
# --sched-slice-us; prints its pid once it answers /mutate-pods with a patch.
start_server() {
  local tag=$2-$3 pid port
  "$1" --port "$3" --threads "$THREADS" --sched-slice-us "$2" --ca-out "$WORK/ca-$tag.pem" \
    >"$WORK/agentmesh-$tag.log" 2>&1 &
  pid=$!
  port=$(wait_ready "$WORK/agentmesh-$tag.log")
  # The reply must carry a patch, or we would be measuring a no-op.
  curl -sf --cacert "$WORK/ca-$tag.pem" -H 'Content-Type: application/json' --data-binary @"$WORK/review.json" \
    "https://127.0.0.1:$port/mutate-pods" | jq -e '.response.allowed and (.response.patch | length > 100)' >/dev/null \
    || { echo "webhook.sh: /mutate-pods did not return a patch" >&2; kill "$pid"; return 1; }
  echo "$pid"
}

# median_range ms|us <values in us...>: "median (min-max)" in that unit.
median_range() {
  local unit=$1
  shift
  [ "$#" -gt 0 ] || { printf 'n/a'; return; }
  printf '%s\n' "$@" | sort -n | awk -v unit="$unit" '{v[NR]=$1} END{m=(NR%2)?v[(NR+1)/2]:(v[NR/2]+v[NR/2+1])/2;
    if (unit == "ms") printf "%.2f ms (%.2f-%.2f)", m/1e3, v[1]/1e3, v[NR]/1e3;
    else printf "%.0f us (%.0f-%.0f)", m, v[1], v[NR]}'
}

# start_controller <slice us> <webhook port> <metrics port>: an
# agentmesh-controller replica on $KUBECONFIG with that --sched-slice-us;
# prints its pid once its webhook injects from its informer cache. The
# replicas share a Lease (one reconciles, all serve the webhook, as in a
# deployment).
start_controller() {
  local log=$WORK/controller-$1.log pid
  "$CONTROLLER" --kubeconfig "$KUBECONFIG" --namespace "$OPNS" --bind-address 127.0.0.1 --api-port 0 \
    --metrics-port "$3" --webhook-port "$2" --webhook-cert-dir "$WORK/certs" --audit-spool-dir "$WORK/spool-$1" \
    --webhook-threads "$THREADS" --sched-slice-us "$1" >"$log" 2>&1 &
  pid=$!
  for _ in $(seq 300); do
    if curl -sf --cacert "$WORK/certs/tls.crt" -H 'Content-Type: application/json' --data-binary @"$WORK/review.json" \
      "https://127.0.0.1:$2/mutate-pods" 2>/dev/null | jq -e '.response.patch | length > 100' >/dev/null 2>&1; then
      echo "$pid"; return 0
    fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "webhook.sh: controller (slice $1) does not inject:" >&2; tail -n 20 "$log" >&2; kill "$pid" 2>/dev/null; return 1
}

# cluster_setup: what the controller's webhook needs to inject the review's
# pod: the CRDs, namespace team-a opted in, AgentIdentity alpha (AWS with
# injectToken: the largest patch), the operator namespace and a serving
# certificate for 127.0.0.1.
cluster_setup() {
  local kc=(kubectl --kubeconfig "$KUBECONFIG" --request-timeout=20s)
  "${kc[@]}" apply -f "$SRC/crds/" >/dev/null
  "${kc[@]}" create namespace team-a --dry-run=client -o yaml | "${kc[@]}" apply -f - >/dev/null
  "${kc[@]}" label --overwrite namespace team-a agentmesh.io/inject=enabled >/dev/null
  "${kc[@]}" create namespace "$OPNS" --dry-run=client -o yaml | "${kc[@]}" apply -f - >/dev/null
  "${kc[@]}" apply -f - >/dev/null <<EOF
apiVersion: agentmesh.io/v1alpha1
kind: AgentIdentity
metadata: {name: alpha, namespace: team-a}
spec:
  sponsor: alice@example.com
  serviceAccountName: alpha
  cloud:
    aws: {roleArn: "arn:aws:iam::123456789012:role/agent-alpha", stsRegionalEndpoints: true, injectToken: true}
EOF
  mkdir -p "$WORK/certs"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=localhost \
    -addext subjectAltName=IP:127.0.0.1 -keyout "$WORK/certs/tls.key" -out "$WORK/certs/tls.crt" 2>/dev/null
}

# cpu_sample: "<busy> <steal> <total>" jiffies of all cores from /proc/stat.
cpu_sample() { awk '/^cpu /{print $2+$3+$4+$7+$8, $9, $2+$3+$4+$5+$6+$7+$8+$9; exit}' /proc/stat; }

# wake_probe <label>: how late a thread that sleeps 1 ms wakes up, 3,000
# times (no network, TLS or webhook: the machine alone), as a normal thread
# and, where allowed, as SCHED_FIFO (ahead of every normal thread in this
# VM, so what is left of its lateness is the hypervisor: steal). Printed
# before and after the runs: a p99 over 1 ms here means no request served
# at that moment gets a p99 under 1 ms either.
wake_probe() {
  # shellcheck disable=SC2016 # perl code, expanded by perl
  local perl_probe='use Time::HiRes qw(clock_gettime clock_nanosleep CLOCK_MONOTONIC); my @l;
    for (1..3000) { my $t = clock_gettime(CLOCK_MONOTONIC); clock_nanosleep(CLOCK_MONOTONIC, 1e6);
      push @l, (clock_gettime(CLOCK_MONOTONIC) - $t) * 1e6 - 1000 }
    @l = sort { $a <=> $b } @l; printf "p50 %.0f us, p99 %.0f us", $l[1500], $l[2970];'
  local normal fifo
  normal=$(perl -e "$perl_probe")
  fifo=$(chrt -f 1 perl -e "$perl_probe" 2>/dev/null || echo "not allowed")
  printf '%-26s a 1 ms sleep wakes late by %s (SCHED_FIFO: %s)\n' "machine $1" "$normal" "$fifo"
}

# Targets: one bench server per slice, and with CONTROLLER one controller
# replica per slice. Each has a label, a port and a pid.
declare -A pid port label
targets=()
add_target() { targets+=("$1"); label[$1]=$2; port[$1]=$3; pid[$1]=$4; PIDS+=("$4"); }
slice_name() { if [ "$1" = 0 ]; then echo "kernel slice"; else echo "slice ${1}us"; fi; }
i=0
for s in $SLICES; do
  p=$(start_server "$SERVER" "$s" $((PORT + 2 + i)))
  add_target "server-$s" "server $(slice_name "$s")" $((PORT + 2 + i)) "$p"
  if [ -n "${BASELINE:-}" ]; then
    p=$(start_server "$BASELINE" "$s" $((PORT + 10 + i)))
    add_target "baseline-$s" "baseline $(slice_name "$s")" $((PORT + 10 + i)) "$p"
  fi
  i=$((i + 1))
done
if [ -n "$CONTROLLER" ]; then
  [ -n "${KUBECONFIG:-}" ] || { echo "webhook.sh: CONTROLLER needs KUBECONFIG (a private cluster)" >&2; exit 1; }
  cluster_setup
  i=0
  for s in $SLICES; do
    p=$(start_controller "$s" $((PORT + 20 + i)) $((PORT + 30 + i)))
    add_target "controller-$s" "controller $(slice_name "$s")" $((PORT + 20 + i)) "$p"
    i=$((i + 1))
  done
fi

conditions=(normal)
if [ "$AWAKE" = 1 ]; then conditions+=(awake); fi
echo "webhook benchmark: ${DURATION}s per run, wrk 1 thread, webhook threads $THREADS, $(nproc) cores," \
  "slices (us, 0 = kernel's): $SLICES, $ROUNDS round(s) at the fixed rate, conditions: ${conditions[*]}"
echo "server: $SERVER${BASELINE:+, baseline: $BASELINE}"
wake_probe before
if [ "$AWAKE" = 1 ]; then awake_on; wake_probe awake; awake_off; fi
for t in "${targets[@]}"; do saturation "${label[$t]}" "https://127.0.0.1:${port[$t]}/mutate-pods" "${pid[$t]}"; done
# The fixed-rate runs alternate between the targets, round after round, so a
# neighbour's burst on the shared machine does not land on one side only;
# with AWAKE=1 each round runs every target as is and then awake.
# Each webhook run is followed by the floor from the same listener: a 404 on
# an unknown path (same TLS, HTTP and wrk, no webhook work), what the
# machine gives any request at that moment. The cores' busy and steal time
# (the hypervisor running someone else on our vCPUs) over the webhook run
# say what that moment was like; the server's CPU over it, per request, what
# a request cost at this rate.
# run_name <target> <condition>: the target's label, marked when awake.
run_name() { if [ "$2" = awake ]; then echo "${label[$1]} (awake)"; else echo "${label[$1]}"; fi; }
declare -A p50s p99s fp50s fp99s cpus
hz=$(getconf CLK_TCK)
for _ in $(seq "$ROUNDS"); do
  for c in "${conditions[@]}"; do
    if [ "$c" = awake ]; then awake_on; fi
    for t in "${targets[@]}"; do
      k="$t $c"
      name=$(run_name "$t" "$c")
      read -r b0 st0 tot0 < <(cpu_sample)
      ticks0=$(cpu_ticks "${pid[$t]}")
      read -r rps p50 p99 bad nreq < <(fixed "https://127.0.0.1:${port[$t]}/mutate-pods")
      ticks1=$(cpu_ticks "${pid[$t]}")
      read -r b1 st1 tot1 < <(cpu_sample)
      read -r frps fp50 fp99 _ _ < <(fixed "https://127.0.0.1:${port[$t]}/no-such-path")
      cpu=$(awk -v t=$((ticks1 - ticks0)) -v hz="$hz" -v n="$nreq" 'BEGIN{printf "%.0f", t / hz * 1e6 / n}')
      printf '%-34s at %s req/s: p50 %s p99 %s (non-200 %s) CPU %s us/req | floor (404) at %s req/s: p50 %s p99 %s | cores busy %s%%, steal %s%%\n' \
        "$name" "$rps" "$p50" "$p99" "$bad" "$cpu" "$frps" "$fp50" "$fp99" \
        $((100 * (b1 - b0) / (tot1 - tot0))) $((100 * (st1 - st0) / (tot1 - tot0)))
      p50s[$k]+=" $(us "$p50")"
      p99s[$k]+=" $(us "$p99")"
      fp50s[$k]+=" $(us "$fp50")"
      fp99s[$k]+=" $(us "$fp99")"
      cpus[$k]+=" $cpu"
    done
    awake_off
  done
done
wake_probe after
for c in "${conditions[@]}"; do
  for t in "${targets[@]}"; do
    k="$t $c"
    name=$(run_name "$t" "$c")
    # shellcheck disable=SC2086 # word splitting wanted: the list of runs
    printf '%-34s p50 median %s, p99 median %s | floor p50 %s, p99 %s | CPU at the fixed rate %s/req | peak RSS %s\n' \
      "$name" "$(median_range ms ${p50s[$k]})" "$(median_range ms ${p99s[$k]})" \
      "$(median_range ms ${fp50s[$k]})" "$(median_range ms ${fp99s[$k]})" "$(median_range us ${cpus[$k]})" \
      "$(peak_rss "${pid[$t]}")"
  done
done

if [ -x "$AGNHOST" ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=localhost \
    -addext subjectAltName=IP:127.0.0.1 -keyout "$WORK/agn.key" -out "$WORK/agn.crt" 2>/dev/null
  "$AGNHOST" webhook --tls-cert-file "$WORK/agn.crt" --tls-private-key-file "$WORK/agn.key" \
    --port $((PORT + 1)) --sidecar-image busybox >"$WORK/agnhost.log" 2>&1 &
  PIDS+=($!)
  agn_pid=$!
  for _ in $(seq 50); do curl -sk "https://127.0.0.1:$((PORT + 1))/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
  saturation agnhost "https://127.0.0.1:$((PORT + 1))/mutating-pods-sidecar" "$agn_pid"
  read -r rps p50 p99 bad _ < <(fixed "https://127.0.0.1:$((PORT + 1))/mutating-pods-sidecar")
  printf '%-26s at %s req/s: p50 %s p99 %s (non-200 %s) | peak RSS %s\n' agnhost "$rps" "$p50" "$p99" "$bad" \
    "$(peak_rss "$agn_pid")"
else
  echo "agnhost                    not built (hack/kube-build.sh --with-peers, or AGNHOST=path): skipped"
fi
