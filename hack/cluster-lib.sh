# shellcheck shell=bash disable=SC2034  # the CL_* settings are used by the sourcing scripts
# cluster-lib.sh — what kube-up.sh, kube-down.sh and kube-restart-apiserver.sh
# share: where the local cluster's state lives, the lock that makes them safe to
# run concurrently, and starting / checking / stopping the processes they own.
# Sourced, never run.
#
# Every process is started detached (own session, stdin /dev/null, output to
# $CL_DIR/logs/<name>.log) and recorded as "<pid> <start time>" in
# $CL_DIR/pids/<name>.pid; the start time (field 22 of /proc/<pid>/stat) makes
# sure a recycled pid is never mistaken for ours. Its argv is saved NUL-separated
# in $CL_DIR/cmd/<name>, so it can be started again exactly as before.

CL_DIR=${AGENTMESH_CLUSTER_DIR:-/tmp/agentmesh-cluster}
case $CL_DIR in /*) ;; *) CL_DIR=$PWD/$CL_DIR ;; esac
CL_DIR=${CL_DIR%/}
CL_LOCK=$CL_DIR.lock

# cl_set_ports <offset>: every port is its default plus the offset, so a
# private cluster can run beside the shared one (with its own state dir).
cl_set_ports() {
  if ! [[ $1 =~ ^[0-9]{1,5}$ ]] || [ "$1" -gt 50000 ]; then
    echo "AGENTMESH_CLUSTER_PORT_OFFSET must be a number from 0 to 50000, not '$1'" >&2
    exit 2
  fi
  CL_PORT_OFFSET=$1
  CL_ETCD_PORT=$((2379 + $1))
  CL_ETCD_PEER_PORT=$((2380 + $1))
  CL_API_PORT=$((6443 + $1))
  CL_REDIS_PORT=$((6379 + $1))
  CL_REDIS_TLS_PORT=$((6380 + $1))
  CL_PG_PORT=$((5432 + $1))
  CL_API_URL=https://127.0.0.1:$CL_API_PORT
}
# The offset of an existing cluster is the one kube-up.sh recorded in its
# state dir; AGENTMESH_CLUSTER_PORT_OFFSET (default 0) picks it for a new one.
if [ -r "$CL_DIR/port-offset" ]; then
  cl_set_ports "$(cat "$CL_DIR/port-offset")"
else
  cl_set_ports "${AGENTMESH_CLUSTER_PORT_OFFSET:-0}"
fi

cl_log() { echo "$(basename "$0" .sh): $*" >&2; }
cl_die() { cl_log "error: $*"; exit 1; }

# Serialises every script that changes the cluster. The lock file lives beside
# the state dir, so kube-down.sh can remove the dir while holding it.
cl_lock() {
  mkdir -p "$(dirname "$CL_LOCK")"
  exec 8>"$CL_LOCK"
  flock 8
}

# The start time of a live process (a zombie counts as gone).
cl_starttime() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }          # the command name may hold spaces: cut after it
  # shellcheck disable=SC2086
  set -- $stat
  case $1 in Z | X) return 1 ;; esac
  echo "${20}"
}

# The recorded pid of <name>, printed only when that very process still runs.
cl_pid() {
  local f=$CL_DIR/pids/$1.pid pid start now
  [ -r "$f" ] || return 1
  read -r pid start <"$f" || return 1
  now=$(cl_starttime "$pid") || return 1
  [ "$now" = "$start" ] || return 1
  echo "$pid"
}

cl_alive() { cl_pid "$1" >/dev/null; }

# Closes every descriptor above 2 of the calling (sub)shell.
cl_close_inherited() {
  local fd
  for fd in /proc/self/fd/*; do
    fd=${fd##*/}
    [ "$fd" -gt 2 ] && eval "exec $fd>&-" 2>/dev/null
  done
  return 0
}

# cl_start <name> <argv...>: starts argv detached from the caller's session (so
# a job-control kill of the caller's process group leaves the cluster alone).
cl_start() {
  local name=$1 pid start
  shift
  mkdir -p "$CL_DIR/pids" "$CL_DIR/logs" "$CL_DIR/cmd"
  printf '%s\0' "$@" >"$CL_DIR/cmd/$name"
  # A background subshell is not a process-group leader, so setsid execs in
  # place: $! is the pid of the server itself. It inherits no descriptor but
  # 0-2: an open lock (ours on fd 8, or a caller's flock, e.g. a test run
  # under `flock` that restarts the API server) would otherwise be held for
  # the server's whole life.
  (cd / && cl_close_inherited && exec setsid "$@") </dev/null >>"$CL_DIR/logs/$name.log" 2>&1 &
  pid=$!
  start=$(cl_starttime "$pid") || cl_die "$name exited at once; see $CL_DIR/logs/$name.log"
  echo "$pid $start" >"$CL_DIR/pids/$name.pid"
  cl_log "started $name (pid $pid)"
}

# Starts <name> again with the argv saved at its first start.
cl_restart_saved() {
  local name=$1 argv=()
  [ -r "$CL_DIR/cmd/$name" ] || cl_die "no saved command line for $name in $CL_DIR/cmd"
  mapfile -d '' argv <"$CL_DIR/cmd/$name"
  cl_start "$name" "${argv[@]}"
}

# cl_stop <name> [signal] [grace_s]: signal (default TERM), wait up to grace_s
# (default 15), then KILL.
cl_stop() {
  local name=$1 sig=${2:-TERM} grace=${3:-15} pid i
  pid=$(cl_pid "$name") || { rm -f "$CL_DIR/pids/$name.pid"; return 0; }
  kill -s "$sig" "$pid" 2>/dev/null || true
  for ((i = 0; i < grace * 10; i++)); do
    cl_alive "$name" || break
    sleep 0.1
  done
  if cl_alive "$name"; then
    cl_log "$name (pid $pid) still running $grace s after SIG$sig: sending KILL"
    kill -s KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do cl_alive "$name" || break; sleep 0.1; done
  fi
  cl_alive "$name" && cl_die "could not stop $name (pid $pid)"
  rm -f "$CL_DIR/pids/$name.pid"
  cl_log "stopped $name (pid $pid)"
}

# kube-apiserver stops listening at once on SIGTERM but then waits for open
# watch streams to end, up to a minute: past a few seconds, KILL is harmless.
cl_stop_apiserver() { cl_stop kube-apiserver TERM 5; }

# cl_wait <timeout_s> <cmd...>: polls cmd every 0.2 s until it succeeds.
cl_wait() {
  local timeout=$1 deadline
  shift
  deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.2
  done
}

cl_port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# /readyz is readable without credentials (system:public-info-viewer).
cl_apiserver_ready() {
  [ "$(curl -sS --max-time 3 --cacert "$CL_DIR/pki/ca.crt" "$CL_API_URL/readyz" 2>/dev/null)" = ok ]
}

cl_wait_apiserver() {
  cl_wait "${1:-90}" cl_apiserver_ready ||
    cl_die "kube-apiserver not ready after ${1:-90} s; see $CL_DIR/logs/kube-apiserver.log"
}
