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
#      p99 can be read against what the machine gives any request.
# When agnhost is available (AGNHOST=path, or the kube-build.sh cache after
# `hack/kube-build.sh --with-peers`), `agnhost webhook` (/mutating-pods-sidecar)
# is measured the same way in the same run, side by side.
#
# Usage: bench/webhook.sh [seconds per run, default 10]
# Env: BUILD_DIR (default build-bench, RelWithDebInfo, built here),
#      THREADS (webhook event loops, default 2: the controller's
#      --webhook-threads default, what a deployment runs; agnhost uses both
#      cores too), PORT (19443; agnhost gets PORT+1),
#      SERVER (a bench_webhook_server binary to measure instead, e.g. an older
#      build for a before/after; then nothing is built).
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$SRC/build-bench}
DURATION=${1:-10}
THREADS=${THREADS:-2}
PORT=${PORT:-19443}
AGNHOST=${AGNHOST:-$HOME/.cache/agentmesh/kube-1.20.2/bin/agnhost}
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
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

# run <label> <url> <pid>: saturation and fixed-rate runs, then a summary line.
run() {
  local label=$1 url=$2 pid=$3 sat fixed rps p50 p99 hwm
  export REVIEW_FILE=$WORK/review.json
  # Warm-up (TLS sessions, allocator) so both servers are measured alike.
  PAUSE_MS=0 wrk -t1 -c8 -d2s -s "$WORK/post.lua" "$url" >/dev/null
  local ticks0 ticks1 cpu
  ticks0=$(cpu_ticks "$pid")
  sat=$(PAUSE_MS=0 wrk -t1 -c8 -d"${DURATION}s" --latency -s "$WORK/post.lua" "$url")
  ticks1=$(cpu_ticks "$pid")
  cpu=$(awk -v t=$((ticks1 - ticks0)) -v hz="$(getconf CLK_TCK)" '/ requests in /{printf "%.0f", t / hz * 1e6 / $1}' <<<"$sat")
  fixed=$(PAUSE_MS=10 wrk -t1 -c10 -d"${DURATION}s" --latency -s "$WORK/post.lua" "$url")
  rps=$(awk '/^Requests\/sec/{print $2}' <<<"$sat")
  local fixed_rps; fixed_rps=$(awk '/^Requests\/sec/{print $2}' <<<"$fixed")
  p50=$(awk '$1=="50%"{print $2}' <<<"$fixed")
  p99=$(awk '$1=="99%"{print $2}' <<<"$fixed")
  hwm=$(awk '/^VmHWM/{printf "%.1f MiB", $2/1024}' "/proc/$pid/status")
  local non200; non200=$(awk '/^non200/{s+=$2} END{print s+0}' <<<"$sat$fixed")
  printf '%-10s saturation %10s req/s (p50 %s, p99 %s) | CPU %s us/req | at %s req/s: p50 %s p99 %s | peak RSS %s | non-200 %s\n' \
    "$label" "$rps" "$(awk '$1=="50%"{print $2}' <<<"$sat")" "$(awk '$1=="99%"{print $2}' <<<"$sat")" \
    "$cpu" "$fixed_rps" "$p50" "$p99" "$hwm" "$non200"
}

# floor <url>: latency at the same fixed rate of a request that does no
# webhook work (a 404 from the same listener).
floor() {
  local out
  out=$(PAUSE_MS=10 wrk -t1 -c10 -d"${DURATION}s" --latency -s "$WORK/post.lua" "$1")
  printf '%-10s at %s req/s: p50 %s p99 %s (404 on an unknown path: TLS + HTTP + wrk, no webhook work)\n' \
    floor "$(awk '/^Requests\/sec/{print $2}' <<<"$out")" "$(awk '$1=="50%"{print $2}' <<<"$out")" \
    "$(awk '$1=="99%"{print $2}' <<<"$out")"
}

"$SERVER" --port "$PORT" --threads "$THREADS" --ca-out "$WORK/ca.pem" \
  >"$WORK/agentmesh.log" 2>&1 &
PIDS+=($!)
am_pid=$!
am_port=$(wait_ready "$WORK/agentmesh.log")
# The reply must carry a patch, or we would be measuring a no-op.
curl -sf --cacert "$WORK/ca.pem" -H 'Content-Type: application/json' --data-binary @"$WORK/review.json" \
  "https://127.0.0.1:$am_port/mutate-pods" | jq -e '.response.allowed and (.response.patch | length > 100)' >/dev/null \
  || { echo "webhook.sh: /mutate-pods did not return a patch" >&2; exit 1; }
echo "webhook benchmark: ${DURATION}s per run, wrk 1 thread, webhook threads $THREADS, $(nproc) cores"
run agentmesh "https://127.0.0.1:$am_port/mutate-pods" "$am_pid"
floor "https://127.0.0.1:$am_port/no-such-path"

if [ -x "$AGNHOST" ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=localhost \
    -addext subjectAltName=IP:127.0.0.1 -keyout "$WORK/agn.key" -out "$WORK/agn.crt" 2>/dev/null
  "$AGNHOST" webhook --tls-cert-file "$WORK/agn.crt" --tls-private-key-file "$WORK/agn.key" \
    --port $((PORT + 1)) --sidecar-image busybox >"$WORK/agnhost.log" 2>&1 &
  PIDS+=($!)
  agn_pid=$!
  for _ in $(seq 50); do curl -sk "https://127.0.0.1:$((PORT + 1))/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
  run agnhost "https://127.0.0.1:$((PORT + 1))/mutating-pods-sidecar" "$agn_pid"
else
  echo "agnhost    not built (hack/kube-build.sh --with-peers, or AGNHOST=path): skipped"
fi
