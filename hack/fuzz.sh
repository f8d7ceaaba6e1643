#!/usr/bin/env bash
# fuzz.sh — builds the libFuzzer targets (clang, ASan + UBSan) and runs each
# one for SECONDS (default 20) over its seed corpus in fuzz/corpus/<name>/.
# CI runs it briefly (hack/test.sh); a hardening run is `hack/fuzz.sh 600`.
# FUZZ_JOBS=N runs N targets at a time (default 1); FUZZ_BUILD_DIR picks the
# build directory (default build-fuzz).
# New inputs go to a scratch copy, so the committed corpus only changes by
# hand; a crash leaves its input in fuzz/crash-* (turn it into a regression
# seed in fuzz/corpus/ once fixed). Ends with "N passed, N failed".
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SECONDS_EACH=${1:-20}
JOBS=${FUZZ_JOBS:-1}
BUILD=${FUZZ_BUILD_DIR:-$ROOT/build-fuzz}
CC=clang cmake -S "$ROOT" -B "$BUILD" -DAGENTMESH_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null || exit 1
targets=$(cd "$ROOT/fuzz" && ls fuzz_*.c | sed 's/\.c$//')
# shellcheck disable=SC2086
cmake --build "$BUILD" -j2 --target $targets >"$BUILD/build.log" 2>&1 || { tail -20 "$BUILD/build.log"; echo "fuzz.sh: build failed"; exit 1; }
results=$(mktemp -d)
trap 'rm -rf "$results"' EXIT

# Runs one target over a scratch copy of its corpus; writes its verdict line
# (and the log's tail on failure) to $results/<name>.
run_one() {
  local name=$1 work
  work=$(mktemp -d)
  [ -d "$ROOT/fuzz/corpus/$name" ] && cp -r "$ROOT/fuzz/corpus/$name/." "$work/"
  if (cd "$ROOT/fuzz" && "$BUILD/fuzz_$name" -max_total_time="$SECONDS_EACH" -max_len=65536 -timeout=10 \
        -artifact_prefix="$ROOT/fuzz/crash-$name-" "$work" >"$work.log" 2>&1); then
    echo "ok   - fuzz_$name: $(grep -oE '#[0-9]+' "$work.log" | tail -1 | tr -d '#') runs in ${SECONDS_EACH}s, no crash" >"$results/$name"
  else
    { echo "FAIL - fuzz_$name:"; tail -30 "$work.log"; } >"$results/$name"
  fi
  rm -rf "$work" "$work.log"
}

for target in $targets; do
  [ -x "$BUILD/$target" ] || continue
  while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n; done
  run_one "${target#fuzz_}" &
done
wait
cat "$results"/*
passed=$(grep -l '^ok' "$results"/* | wc -l)
failed=$(grep -L '^ok' "$results"/* | wc -l)
echo "fuzz: $passed passed, $failed failed"
[ "$failed" = 0 ]
