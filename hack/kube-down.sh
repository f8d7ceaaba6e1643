#!/usr/bin/env bash
# kube-down.sh — stops what hack/kube-up.sh started and removes its state dir
# (${AGENTMESH_CLUSTER_DIR:-/tmp/agentmesh-cluster}). It signals only the pids
# kube-up.sh recorded (and only while they are still those very processes),
# never anything found by name: TERM, up to 15 s (the API server 5 s), then
# KILL. Controllers go first, etcd after the API server, PostgreSQL with SIGINT
# (its fast shutdown: SIGTERM would wait for every client to leave).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=hack/cluster-lib.sh
. "$ROOT/hack/cluster-lib.sh"

[ $# -eq 0 ] || { echo "usage: hack/kube-down.sh" >&2; exit 2; }
cl_lock
if [ ! -d "$CL_DIR" ]; then
  cl_log "nothing to stop ($CL_DIR does not exist)"
  exit 0
fi
[ -e "$CL_DIR/.agentmesh-cluster" ] || cl_die "$CL_DIR was not made by kube-up.sh; refusing to touch it"

cl_stop kube-controller-manager
cl_stop_apiserver
cl_stop etcd
cl_stop redis
cl_stop postgres INT
[ -L "$CL_DIR/etcd" ] && rm -rf "$(readlink "$CL_DIR/etcd")"
rm -rf "$CL_DIR"
cl_log "removed $CL_DIR"
