#!/usr/bin/env bash
# test.sh — the whole test suite, as CI runs it (.ci/run) and as README says:
# installs the dependencies, builds build/ with sanitizers (ASan + UBSan),
# runs the unit tests, starts the local cluster (kube-apiserver, Redis plain +
# TLS, PostgreSQL; hack/kube-up.sh), runs the e2e tests against it and stops
# the cluster again. Ends with one line "N passed, N failed" over both ctest
# runs (a step that fails before any test can run counts as one failure) and
# exits non-zero when anything failed.
#
#   hack/test.sh [--unit-only | --e2e-only] [-R REGEX]
#
# With the unit tests and no -R, every libFuzzer target also runs briefly
# (hack/fuzz.sh; FUZZ_SECONDS per target, default 10, 0 skips).
# -R is passed to ctest. KEEP_CLUSTER=1 leaves the cluster running; a cluster
# that was already up before the run (someone else's) is never stopped.
# BUILD_DIR overrides build/.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1

usage() { echo "usage: hack/test.sh [--unit-only | --e2e-only] [-R REGEX]"; }
run_unit=1 run_e2e=1 regex=()
while [ $# -gt 0 ]; do
  case $1 in
    --unit-only) run_e2e=0 ;;
    --e2e-only) run_unit=0 ;;
    -R)
      [ $# -ge 2 ] || { usage >&2; exit 2; }
      regex=(-R "$2")
      shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
  shift
done
[ "$run_unit$run_e2e" = 00 ] && { echo "test.sh: --unit-only and --e2e-only exclude each other" >&2; exit 2; }

BUILD=${BUILD_DIR:-$ROOT/build}
export ASAN_OPTIONS=detect_leaks=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
: "${AGENTMESH_CLUSTER_DIR:=/tmp/agentmesh-cluster}"
export AGENTMESH_CLUSTER_DIR

passed=0 failed=0 stop_cluster=0

step() { printf '\n=== test.sh: %s\n' "$*"; }

finish() {
  if [ "$stop_cluster" = 1 ]; then
    step "stopping the cluster"
    bash hack/kube-down.sh || failed=$((failed + 1))
  fi
  echo
  echo "$passed passed, $failed failed"
  [ "$failed" -eq 0 ]
}
trap 'finish; exit $?' EXIT
trap 'exit 130' INT TERM

# A step that fails before its tests could run: one failure, and stop.
abort() {
  echo "test.sh: $*" >&2
  failed=$((failed + 1))
  exit 1
}

# ctest_label <label>: runs one ctest label and adds its counts. ctest's own
# summary line is the source; a run that prints none (crash) is a failure.
ctest_label() {
  local log=$BUILD/ctest-$1.log total nfail
  ctest --test-dir "$BUILD" -L "$1" --output-on-failure "${regex[@]}" 2>&1 | tee "$log"
  if grep -q 'No tests were found' "$log"; then
    echo "test.sh: no $1 tests matched"
    return 0
  fi
  read -r nfail total < <(sed -nE 's/^[0-9]+% tests passed, ([0-9]+) tests? failed out of ([0-9]+).*/\1 \2/p' "$log" | tail -n 1)
  if [ -z "${total:-}" ]; then
    echo "test.sh: ctest -L $1 printed no summary" >&2
    failed=$((failed + 1))
    return 0
  fi
  passed=$((passed + total - nfail))
  failed=$((failed + nfail))
}

step "installing dependencies (hack/install-deps.sh)"
bash hack/install-deps.sh || abort "hack/install-deps.sh failed"

step "configuring $BUILD (Sanitize)"
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Sanitize || abort "cmake configure failed"
step "building"
cmake --build "$BUILD" -j2 || abort "build failed"

if [ "$run_unit" = 1 ]; then
  step "unit tests (ctest -L unit)"
  ctest_label unit
fi

if [ "$run_e2e" = 1 ]; then
  if [ -r "$AGENTMESH_CLUSTER_DIR/env" ] &&
    kubectl --kubeconfig "$AGENTMESH_CLUSTER_DIR/kubeconfig" --request-timeout=5s get --raw /readyz >/dev/null 2>&1; then
    step "reusing the cluster already running in $AGENTMESH_CLUSTER_DIR"
  elif [ "${KEEP_CLUSTER:-0}" != 1 ]; then
    stop_cluster=1
  fi
  step "starting the cluster (hack/kube-up.sh --redis --redis-tls --postgres)"
  bash hack/kube-up.sh --redis --redis-tls --postgres || abort "hack/kube-up.sh failed"
  # Every e2e test sees the cluster's env (KUBECONFIG, ETCDCTL_ENDPOINTS, the
  # Redis/PostgreSQL URLs), whatever ports this cluster runs on.
  set -a
  # shellcheck source=/dev/null
  source "$AGENTMESH_CLUSTER_DIR/env"
  set +a
  step "e2e tests (ctest -L e2e)"
  ctest_label e2e
fi

# Every libFuzzer target briefly over its seed corpus (FUZZ_SECONDS each, default 10;
# 0 skips). Only with the whole suite: -R narrows ctest, not this.
if [ "$run_unit" = 1 ] && [ "${#regex[@]}" = 0 ] && [ "${FUZZ_SECONDS:-10}" != 0 ]; then
  step "fuzzing (hack/fuzz.sh ${FUZZ_SECONDS:-10})"
  log=$BUILD/fuzz.log
  bash hack/fuzz.sh "${FUZZ_SECONDS:-10}" 2>&1 | tee "$log"
  read -r fpass ffail < <(sed -nE 's/^fuzz: ([0-9]+) passed, ([0-9]+) failed$/\1 \2/p' "$log")
  if [ -z "${fpass:-}" ]; then
    echo "test.sh: hack/fuzz.sh printed no summary" >&2
    failed=$((failed + 1))
  else
    passed=$((passed + fpass))
    failed=$((failed + ffail))
  fi
fi
