#!/usr/bin/env bash
# valgrind.sh — runs every unit test executable of a plain build (no
# sanitizers: valgrind and ASan do not mix; -O1 -g so reports have lines)
# under `valgrind --leak-check=full --error-exitcode=1`, with CK_FORK=no so
# valgrind follows each test in one process. A second net under the
# ASan+UBSan suite: it also sees uninitialised reads, which ASan does not.
#   hack/valgrind.sh [REGEX]    only the tests whose name matches REGEX
# VALGRIND_BUILD_DIR picks the build directory (default build-valgrind).
# A failing test's valgrind report is kept in <build>/valgrind/<test>.log.
# Ends with "N passed, N failed". Slow (minutes): not part of CI.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${VALGRIND_BUILD_DIR:-$ROOT/build-valgrind}
FILTER=${1:-.}
command -v valgrind >/dev/null || { echo "valgrind.sh: valgrind is not installed (hack/install-deps.sh)"; exit 1; }
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_FLAGS_DEBUG="-O1 -g" >/dev/null || exit 1
tests=$(cd "$ROOT" && ls {common,controller,webhook,sidecar}/test/test_*.c 2>/dev/null |
  sed -E 's#^([a-z]+)/test/(test_[a-z0-9_]+)\.c$#\1_\2#' | grep -E -- "$FILTER")
[ -n "$tests" ] || { echo "valgrind.sh: no unit test matches $FILTER"; exit 1; }
# shellcheck disable=SC2086
cmake --build "$BUILD" -j2 --target $tests >"$BUILD/build.log" 2>&1 || { tail -20 "$BUILD/build.log"; echo "valgrind.sh: build failed"; exit 1; }
mkdir -p "$BUILD/valgrind"
passed=0 failed=0
for t in $tests; do
  log=$BUILD/valgrind/$t.log
  # Tests find their data through TESTDATA_DIR/SOURCE_DIR (compiled in); run from the build dir as ctest does.
  if (cd "$BUILD" && CK_FORK=no CK_DEFAULT_TIMEOUT=600 valgrind --leak-check=full --show-leak-kinds=definite,indirect \
        --errors-for-leak-kinds=definite,indirect --error-exitcode=1 --track-origins=yes --quiet \
        "./$t" >"$log" 2>&1); then
    echo "ok   - $t"
    passed=$((passed + 1))
    rm -f "$log"
    continue
  fi
  failed=$((failed + 1))
  # Valgrind slows code 20-50x, so a test's own time limits can trip; a check
  # that fails in no-fork mode also leaks what it held when it stopped. Say
  # which of the two happened first, so a real memory error stands out.
  if grep -qE ':[FE]:' "$log"; then
    echo "FAIL - $t: a check failed under valgrind (report: $log)"
    grep -E ':[FE]:' "$log" | head -3
  else
    echo "FAIL - $t: valgrind found memory errors or leaks (report: $log)"
  fi
  grep -E '^==[0-9]+== (Invalid|Conditional|Use of|Syscall|[0-9,]+ .*bytes in .* definitely)' "$log" | head -5
done
echo "valgrind: $passed passed, $failed failed"
[ "$failed" = 0 ]
