#!/usr/bin/env bash
# demo.sh — brings AgentMesh up on this machine for a person to try: installs
# the dependencies, builds the release binaries (build-demo/), starts the local
# cluster with Redis and PostgreSQL (hack/kube-up.sh), installs the CRDs and
# prints how to use it. Each step is one function, run in order by main.
#
#   hack/demo.sh        (BUILD_DIR overrides build-demo/)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
BUILD=${BUILD_DIR:-$ROOT/build-demo}
: "${AGENTMESH_CLUSTER_DIR:=/tmp/agentmesh-cluster}"
export AGENTMESH_CLUSTER_DIR

step() { printf '\n==> %s\n' "$*"; }

install_deps() {
  step "installing dependencies (hack/install-deps.sh)"
  bash hack/install-deps.sh
}

build() {
  step "building the release binaries in $BUILD"
  cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$BUILD" -j2 --target agentmesh-controller agentmesh-sidecar
}

start_cluster() {
  step "starting the local cluster (hack/kube-up.sh --redis --postgres)"
  bash hack/kube-up.sh --redis --postgres
  # shellcheck source=/dev/null
  source "$AGENTMESH_CLUSTER_DIR/env"
}

install_crds() {
  compgen -G "crds/*.yaml" >/dev/null || { echo "no CRDs in crds/ yet"; return 0; }
  step "installing the CRDs (kubectl apply -f crds/)"
  kubectl apply -f crds/
  kubectl wait --for condition=established --timeout=60s \
    crd/agentidentities.agentmesh.io crd/trustpolicies.agentmesh.io
}

print_usage() {
  local down=hack/kube-down.sh
  [ "$AGENTMESH_CLUSTER_DIR" = /tmp/agentmesh-cluster ] ||
    down="AGENTMESH_CLUSTER_DIR=$AGENTMESH_CLUSTER_DIR hack/kube-down.sh"
  step "ready"
  cat <<EOF
The cluster runs on this machine (state in $AGENTMESH_CLUSTER_DIR).

  source $AGENTMESH_CLUSTER_DIR/env      # KUBECONFIG and the Redis / Postgres URLs
  kubectl get namespaces
  kubectl get crd
  kubectl apply -f samples/namespace.yaml -f samples/agentidentity-aws.yaml
  kubectl get agentidentities -A

Binaries: $BUILD/agentmesh-controller, $BUILD/agentmesh-sidecar
Logs of the control plane: $AGENTMESH_CLUSTER_DIR/logs/
Stop everything:  $down
EOF
}

main() {
  install_deps
  build
  start_cluster
  install_crds
  print_usage
}

main "$@"
