#!/usr/bin/env bash
# kube-restart-apiserver.sh — stops the local kube-apiserver (by its recorded
# pid) and starts it again with exactly the arguments kube-up.sh gave it, then
# waits for /readyz. For tests of "a watch survives an API-server restart".
#
#   hack/kube-restart-apiserver.sh [--down-for N]   keep it down N seconds first
#
# Holds the cluster lock while it works, so a concurrent kube-up.sh waits
# instead of starting the API server in the middle of the outage.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=hack/cluster-lib.sh
. "$ROOT/hack/cluster-lib.sh"

down_for=0
while [ $# -gt 0 ]; do
  case $1 in
    --down-for)
      [[ ${2:-} =~ ^[0-9]+$ ]] || cl_die "--down-for needs a whole number of seconds"
      down_for=$2
      shift 2 ;;
    *) echo "usage: hack/kube-restart-apiserver.sh [--down-for N]" >&2; exit 2 ;;
  esac
done

cl_lock
cl_alive kube-apiserver || cl_die "kube-apiserver is not running (start it with hack/kube-up.sh)"
cl_stop_apiserver
sleep "$down_for"
cl_restart_saved kube-apiserver
cl_wait_apiserver 90
cl_log "kube-apiserver ready again"
