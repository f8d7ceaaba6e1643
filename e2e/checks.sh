# shellcheck shell=bash
# e2e/checks.sh — the check helpers every bash e2e test counts with, needing
# no cluster (e2e/lib.sh adds the cluster on top). Sourced, never run; sets no
# shell options.
#   ok MSG / bad MSG        count a passed / failed check and print it
#   check MSG CMD...        runs CMD: ok MSG if it succeeds, else bad MSG
#   fail MSG                bad MSG, then exit (the test cannot go on)
#   wait_for SECS CMD...    polls CMD every 0.5 s; 0 once it succeeds, 1 on timeout
#   free_port               prints a free TCP port on 127.0.0.1

PASSED=0
FAILED=0

ok() { PASSED=$((PASSED + 1)); echo "ok   - $*"; }
bad() { FAILED=$((FAILED + 1)); echo "FAIL - $*"; }
check() {
  local what=$1
  shift
  if "$@"; then ok "$what"; else bad "$what"; fi
}
fail() {
  bad "$*"
  exit 1
}

wait_for() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.5
  done
}

# free_port: a TCP port on 127.0.0.1 nobody listens on now (the kernel picks it).
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
