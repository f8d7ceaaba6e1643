# shellcheck shell=bash
# e2e/lib.sh — what every bash e2e test shares. Sourced (CMake does not run it
# as a test); it sets no shell options, so each test keeps its own.
#
# Sourcing it loads the local cluster's environment ($AGENTMESH_CLUSTER_DIR/env,
# written by hack/kube-up.sh: KUBECONFIG, AGENTMESH_TEST_*), or fails at once
# when no cluster is up. Then:
#   kc ARGS...              kubectl as the admin (system:masters)
#   kc_operator ARGS...     kubectl as agentmesh-operator (least privilege)
#   ok, bad, check, fail, wait_for   from e2e/checks.sh
#   e2e_namespace [PREFIX]  creates a fresh namespace, sets NS to its name; it
#                           is deleted when the test exits
#   summary                 prints "<test>: N passed, N failed"
# On exit the namespaces go, the summary is printed and the exit status is 1
# when any check failed (or the script died on its own). A test that sets its
# own EXIT trap replaces this one: it should then call e2e_cleanup itself.

: "${AGENTMESH_CLUSTER_DIR:=/tmp/agentmesh-cluster}"
E2E_NAME=$(basename "$0" .sh)
# shellcheck disable=SC2034  # for the tests
E2E_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [ ! -r "$AGENTMESH_CLUSTER_DIR/env" ]; then
  echo "FAIL - $E2E_NAME: no local cluster ($AGENTMESH_CLUSTER_DIR/env is missing): run hack/kube-up.sh first" >&2
  exit 1
fi
# shellcheck source=/dev/null
source "$AGENTMESH_CLUSTER_DIR/env"
if [ -z "${KUBECONFIG:-}" ]; then
  echo "FAIL - $E2E_NAME: the cluster in $AGENTMESH_CLUSTER_DIR runs no kube-apiserver (hack/kube-up.sh without --no-kube)" >&2
  exit 1
fi

# shellcheck source=e2e/checks.sh
source "$E2E_ROOT/e2e/checks.sh"
E2E_NAMESPACES=()

kc() { kubectl --kubeconfig "$KUBECONFIG" "$@"; }
kc_operator() { kubectl --kubeconfig "$AGENTMESH_TEST_KUBECONFIG_OPERATOR" "$@"; }

# Namespace names carry the test's name and pid, so parallel runs never meet
# and a leftover says where it came from.
e2e_namespace() {
  local prefix=${1:-$E2E_NAME}
  prefix=$(tr -c 'a-z0-9-\n' '-' <<<"${prefix,,}")
  NS=e2e-$prefix-$$-${#E2E_NAMESPACES[@]}
  kc create namespace "$NS" >/dev/null || fail "cannot create namespace $NS"
  E2E_NAMESPACES+=("$NS")
}

e2e_cleanup() {
  [ "${#E2E_NAMESPACES[@]}" -eq 0 ] && return 0
  kc delete namespace "${E2E_NAMESPACES[@]}" --wait=false --ignore-not-found >/dev/null 2>&1
  E2E_NAMESPACES=()
}

summary() { echo "$E2E_NAME: $PASSED passed, $FAILED failed"; }

_e2e_exit() {
  local rc=$?
  e2e_cleanup
  [ "$rc" -ne 0 ] && [ "$FAILED" -eq 0 ] && bad "$E2E_NAME exited with status $rc"
  summary
  [ "$FAILED" -eq 0 ] && exit 0
  exit 1
}
trap _e2e_exit EXIT
