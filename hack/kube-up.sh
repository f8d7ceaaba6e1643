#!/usr/bin/env bash
# kube-up.sh — starts the local test environment: a real Kubernetes 1.20
# control plane (etcd, kube-apiserver, kube-controller-manager; see
# ../shared/LOCAL-CLUSTER.md) and, on request, Redis (plain and TLS) and
# PostgreSQL, all on 127.0.0.1.
#
#   hack/kube-up.sh [--redis] [--redis-tls] [--postgres] [--no-kube]
#
# State lives in ${AGENTMESH_CLUSTER_DIR:-/tmp/agentmesh-cluster}: kubeconfig
# (admin, system:masters), kubeconfig-operator (user agentmesh-operator, group
# agentmesh:operators, bound to ClusterRole agentmesh-controller when
# manifests/base/clusterrole.yaml exists), pki/, tls/, logs/, pids/ and `env`,
# a sourceable file exporting KUBECONFIG and the AGENTMESH_TEST_* URLs of what
# runs. Idempotent and safe to run concurrently: what already runs is reused,
# only what is missing is started. hack/kube-down.sh stops it all.
# AGENTMESH_CLUSTER_PORT_OFFSET=N (with another AGENTMESH_CLUSTER_DIR) shifts
# every port by N, for a private cluster beside the shared one.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=hack/cluster-lib.sh
. "$ROOT/hack/cluster-lib.sh"

COMPONENTS=(etcd kube-apiserver kube-controller-manager redis postgres)
PKI=$CL_DIR/pki
TLS=$CL_DIR/tls

usage() {
  cat <<EOF
usage: hack/kube-up.sh [--redis] [--redis-tls] [--postgres] [--no-kube]
  --redis      redis-server on 127.0.0.1:$CL_REDIS_PORT (no persistence)
  --redis-tls  --redis plus a TLS port $CL_REDIS_TLS_PORT (CA in $TLS/ca.crt)
  --postgres   PostgreSQL on 127.0.0.1:$CL_PG_PORT, database and user agentmesh
  --no-kube    do not start etcd / kube-apiserver / kube-controller-manager
state dir: \$AGENTMESH_CLUSTER_DIR (now $CL_DIR)
ports: etcd $CL_ETCD_PORT, kube-apiserver $CL_API_PORT; \$AGENTMESH_CLUSTER_PORT_OFFSET shifts them all
EOF
}

kc() { kubectl --kubeconfig "$CL_DIR/kubeconfig" --request-timeout=10s "$@"; }

# A state dir in which nothing of ours runs is left over from an earlier
# cluster (or a reboot): start from scratch rather than from stale data.
prepare_state_dir() {
  local c
  for c in "${COMPONENTS[@]}"; do
    cl_alive "$c" || continue
    [ "${AGENTMESH_CLUSTER_PORT_OFFSET:-$CL_PORT_OFFSET}" = "$CL_PORT_OFFSET" ] ||
      cl_log "note: reusing the running cluster in $CL_DIR with its port offset $CL_PORT_OFFSET"
    return 0
  done
  if [ -d "$CL_DIR" ] && [ -n "$(ls -A "$CL_DIR")" ]; then
    [ -e "$CL_DIR/.agentmesh-cluster" ] ||
      cl_die "$CL_DIR exists and was not made by kube-up.sh; refusing to touch it"
    [ -L "$CL_DIR/etcd" ] && rm -rf "$(readlink "$CL_DIR/etcd")"
    rm -rf "$CL_DIR"
  fi
  mkdir -p "$CL_DIR"
  chmod 755 "$CL_DIR"      # postgres (another uid) must traverse it
  touch "$CL_DIR/.agentmesh-cluster"
  cl_set_ports "${AGENTMESH_CLUSTER_PORT_OFFSET:-0}"
  echo "$CL_PORT_OFFSET" >"$CL_DIR/port-offset"
}

# make_ca <dir> <common name>: a 10-year CA in <dir>/ca.crt, ca.key, once.
make_ca() {
  mkdir -p "$1"
  chmod 700 "$1"
  [ -s "$1/ca.crt" ] && return 0
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=$2" \
    -keyout "$1/ca.key" -out "$1/ca.crt" \
    -addext basicConstraints=critical,CA:TRUE \
    -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
  chmod 644 "$1/ca.crt"
}

# issue_cert <ca dir> <out prefix> <common name> <subjectAltName>: a 1-year
# serving certificate <out prefix>.crt / .key signed by the CA, once.
issue_cert() {
  local ca=$1 out=$2
  [ -s "$out.crt" ] && return 0
  mkdir -p "$(dirname "$out")"
  openssl req -new -newkey rsa:2048 -nodes -subj "/CN=$3" -keyout "$out.key" \
    -out "$out.csr" 2>/dev/null
  openssl x509 -req -in "$out.csr" -CA "$ca/ca.crt" -CAkey "$ca/ca.key" -days 365 \
    -set_serial "0x$(openssl rand -hex 16)" -out "$out.crt" -extfile <(printf '%s\n' \
      "subjectAltName=$4" "basicConstraints=CA:FALSE" \
      "keyUsage=critical,digitalSignature,keyEncipherment" "extendedKeyUsage=serverAuth") \
    2>/dev/null
  rm -f "$out.csr"
  chmod 600 "$out.key"
}

# Keys, serving certificate, static tokens and the two kubeconfigs, once.
make_kube_credentials() {
  make_ca "$PKI" agentmesh-local-kube-ca
  issue_cert "$PKI" "$CL_DIR/apiserver-certs/apiserver" kube-apiserver \
    "DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:127.0.0.1,IP:10.0.0.1"
  if [ ! -s "$PKI/sa.key" ]; then
    openssl genrsa -out "$PKI/sa.key" 2048 2>/dev/null
    openssl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
  fi
  if [ ! -s "$PKI/tokens.csv" ]; then
    openssl rand -hex 24 >"$PKI/admin.token"
    openssl rand -hex 24 >"$PKI/operator.token"
    {
      echo "$(cat "$PKI/admin.token"),admin,uid-admin,\"system:masters\""
      echo "$(cat "$PKI/operator.token"),agentmesh-operator,uid-agentmesh-operator,\"agentmesh:operators\""
    } >"$PKI/tokens.csv"
    chmod 600 "$PKI"/*.token "$PKI/tokens.csv"
  fi
  write_kubeconfig "$CL_DIR/kubeconfig" admin "$PKI/admin.token"
  write_kubeconfig "$CL_DIR/kubeconfig-operator" agentmesh-operator "$PKI/operator.token"
}

# write_kubeconfig <path> <user> <token file>: verifies the server against our CA.
write_kubeconfig() {
  [ -s "$1" ] && return 0
  (
    umask 077
    cat >"$1.tmp" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: agentmesh-local
  cluster:
    server: $CL_API_URL
    certificate-authority: $PKI/ca.crt
users:
- name: $2
  user:
    token: $(cat "$3")
contexts:
- name: $2@agentmesh-local
  context:
    cluster: agentmesh-local
    user: $2
    namespace: default
current-context: $2@agentmesh-local
EOF
  )
  mv "$1.tmp" "$1"
}

# ensure_free <name> <port...>: a port held by a process that is not ours is a
# conflict we must not paper over.
ensure_free() {
  local name=$1 port
  shift
  for port; do
    cl_port_busy "$port" && cl_die "cannot start $name: 127.0.0.1:$port is in use by a process kube-up.sh did not start"
  done
  return 0
}

start_etcd() {
  cl_alive etcd && return 0
  ensure_free etcd "$CL_ETCD_PORT" "$CL_ETCD_PEER_PORT"
  if [ ! -e "$CL_DIR/etcd" ]; then
    # tmpfs when there is one: the data is thrown away anyway and fsync on
    # disk would slow every API write.
    local data
    if data=$(mktemp -d /dev/shm/agentmesh-etcd.XXXXXX 2>/dev/null); then
      ln -s "$data" "$CL_DIR/etcd"
    else
      mkdir -p "$CL_DIR/etcd"
    fi
  fi
  local client=http://127.0.0.1:$CL_ETCD_PORT peer=http://127.0.0.1:$CL_ETCD_PEER_PORT
  cl_start etcd etcd --name agentmesh --data-dir "$CL_DIR/etcd/" \
    --listen-client-urls "$client" --advertise-client-urls "$client" \
    --listen-peer-urls "$peer" --initial-advertise-peer-urls "$peer" \
    --initial-cluster "agentmesh=$peer"
  cl_wait 30 curl -fsS --max-time 2 "$client/health" ||
    cl_die "etcd not healthy after 30 s; see $CL_DIR/logs/etcd.log"
}

# --watch-cache-sizes=events#0: Events are watched straight from etcd (a common
# production setting: Events churn), so a watch from a compacted resourceVersion
# gets the real 410 from etcd; e2e_test_watch relies on it. Other resources keep
# the watch cache, as on any cluster.
start_apiserver() {
  cl_alive kube-apiserver && return 0
  ensure_free kube-apiserver "$CL_API_PORT"
  cl_start kube-apiserver "$KUBE_BIN/kube-apiserver" \
    --bind-address=127.0.0.1 --secure-port="$CL_API_PORT" --insecure-port=0 \
    --etcd-servers="http://127.0.0.1:$CL_ETCD_PORT" \
    --cert-dir="$CL_DIR/apiserver-certs" \
    --token-auth-file="$PKI/tokens.csv" \
    --authorization-mode=RBAC \
    --service-account-key-file="$PKI/sa.pub" \
    --service-account-signing-key-file="$PKI/sa.key" \
    --service-account-issuer=https://kubernetes.default.svc \
    --service-cluster-ip-range=10.0.0.0/24 \
    --enable-admission-plugins=MutatingAdmissionWebhook,ValidatingAdmissionWebhook \
    --watch-cache-sizes=events#0 \
    --allow-privileged=true
}

start_controller_manager() {
  cl_alive kube-controller-manager && return 0
  cl_start kube-controller-manager "$KUBE_BIN/kube-controller-manager" \
    --kubeconfig="$CL_DIR/kubeconfig" \
    --controllers=serviceaccount,serviceaccount-token,garbagecollector,namespace \
    --service-account-private-key-file="$PKI/sa.key" \
    --root-ca-file="$PKI/ca.crt" \
    --leader-elect=false --secure-port=0 --port=0
}

# 1.20's ServiceAccount admission refuses pods until the namespace's default
# ServiceAccount has its token Secret: that is "ready" for our tests.
default_sa_token_ready() {
  local secret
  secret=$(kc -n default get serviceaccount default -o 'jsonpath={.secrets[0].name}') &&
    [ -n "$secret" ] && kc -n default get secret "$secret" >/dev/null
}

# The least-privilege test user gets exactly the controller's ClusterRole.
apply_rbac() {
  local role=$ROOT/manifests/base/clusterrole.yaml
  [ -f "$role" ] || return 0
  if kc apply -f "$role" >/dev/null &&
    kc create clusterrolebinding agentmesh-operator-test --clusterrole=agentmesh-controller \
      --user=agentmesh-operator --dry-run=client -o yaml | kc apply -f - >/dev/null; then
    cl_log "applied $role, bound to user agentmesh-operator"
  else
    cl_log "WARNING: could not apply $role (see above): RBAC tests will fail"
  fi
}

kube_up() {
  command -v kubectl >/dev/null || cl_die "kubectl not found"
  if [ ! -x "${AGENTMESH_KUBE_CACHE:-$HOME/.cache/agentmesh/kube-1.20.2}/bin/kube-apiserver" ]; then
    cl_log "building kube-apiserver 1.20.2 (first time only, a few minutes)"
  fi
  KUBE_BIN=$("$ROOT/hack/kube-build.sh")
  make_kube_credentials
  start_etcd
  start_apiserver
  cl_wait_apiserver 90
  start_controller_manager
  cl_wait 90 default_sa_token_ready ||
    cl_die "no token for ServiceAccount default/default after 90 s; see $CL_DIR/logs/kube-controller-manager.log"
  apply_rbac
}

redis_ping() { [ "$(redis-cli -h 127.0.0.1 -p "$CL_REDIS_PORT" ping 2>/dev/null)" = PONG ]; }
redis_tls_ping() {
  [ "$(redis-cli -h 127.0.0.1 -p "$CL_REDIS_TLS_PORT" --tls --cacert "$TLS/ca.crt" ping 2>/dev/null)" = PONG ]
}

redis_up() {
  local tls_args=()
  if [ "$want_tls" = 1 ]; then
    make_ca "$TLS" agentmesh-local-redis-ca
    issue_cert "$TLS" "$TLS/redis" redis "DNS:localhost,IP:127.0.0.1"
    tls_args=(--tls-port "$CL_REDIS_TLS_PORT" --tls-cert-file "$TLS/redis.crt" --tls-key-file "$TLS/redis.key"
      --tls-ca-cert-file "$TLS/ca.crt" --tls-auth-clients no)
  fi
  if cl_alive redis; then
    # Already serving (maybe to others): add the TLS port in place, keep the data.
    if [ "$want_tls" = 1 ] && ! redis_tls_ping; then
      ensure_free redis-tls "$CL_REDIS_TLS_PORT"
      local i
      for ((i = 2; i < ${#tls_args[@]}; i += 2)); do
        redis-cli -h 127.0.0.1 -p "$CL_REDIS_PORT" config set "${tls_args[i]#--}" "${tls_args[i + 1]}" >/dev/null
      done
      redis-cli -h 127.0.0.1 -p "$CL_REDIS_PORT" config set tls-port "$CL_REDIS_TLS_PORT" >/dev/null
    fi
  else
    ensure_free redis "$CL_REDIS_PORT"
    [ "$want_tls" = 1 ] && ensure_free redis-tls "$CL_REDIS_TLS_PORT"
    mkdir -p "$CL_DIR/redis"
    cl_start redis redis-server --bind 127.0.0.1 --port "$CL_REDIS_PORT" --protected-mode no \
      --save '' --appendonly no --dir "$CL_DIR/redis" --daemonize no "${tls_args[@]}"
  fi
  cl_wait 20 redis_ping || cl_die "redis not answering on $CL_REDIS_PORT; see $CL_DIR/logs/redis.log"
  if [ "$want_tls" = 1 ]; then
    cl_wait 20 redis_tls_ping || cl_die "redis not answering TLS on $CL_REDIS_TLS_PORT; see $CL_DIR/logs/redis.log"
  fi
}

# Runs a command as the postgres user (PostgreSQL refuses to run as root).
as_postgres() {
  (cd / && env HOME=/var/lib/postgresql setpriv --reuid=postgres --regid=postgres --init-groups -- "$@")
}

postgres_up() {
  local bin pg=$CL_DIR/pg sock=$CL_DIR/pgsock pw
  bin=$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
  [ -x "$bin/postgres" ] || cl_die "PostgreSQL server not installed (run hack/install-deps.sh)"
  id postgres >/dev/null 2>&1 || cl_die "no postgres user (run hack/install-deps.sh)"
  if ! cl_alive postgres; then
    ensure_free postgres "$CL_PG_PORT"
    mkdir -p "$pg" "$sock" "$CL_DIR/logs"
    chown postgres:postgres "$pg" "$sock"
    chmod 700 "$pg"
    if [ ! -s "$pg/PG_VERSION" ]; then
      as_postgres "$bin/initdb" -D "$pg" -U postgres -E UTF8 --no-locale --no-sync \
        --auth-local=peer --auth-host=scram-sha-256 >"$CL_DIR/logs/postgres-initdb.log" 2>&1 ||
        cl_die "initdb failed; see $CL_DIR/logs/postgres-initdb.log"
    fi
    cl_start postgres env HOME=/var/lib/postgresql \
      setpriv --reuid=postgres --regid=postgres --init-groups -- \
      "$bin/postgres" -D "$pg" -k "$sock" -p "$CL_PG_PORT" -c listen_addresses=127.0.0.1 \
      -c fsync=off -c synchronous_commit=off -c full_page_writes=off
  fi
  cl_wait 30 as_postgres "$bin/pg_isready" -q -h "$sock" -p "$CL_PG_PORT" ||
    cl_die "postgres not ready after 30 s; see $CL_DIR/logs/postgres.log"
  [ -s "$CL_DIR/pg-password" ] && return 0
  pw=$(openssl rand -hex 16)
  # SQL on stdin, so the password never shows in a process list.
  as_postgres "$bin/psql" -X -q -v ON_ERROR_STOP=1 -h "$sock" -p "$CL_PG_PORT" -U postgres -d postgres \
    >/dev/null <<EOF || cl_die "could not create the agentmesh database"
SET client_min_messages = warning;
DROP DATABASE IF EXISTS agentmesh;
DROP ROLE IF EXISTS agentmesh;
CREATE ROLE agentmesh LOGIN PASSWORD '$pw';
CREATE DATABASE agentmesh OWNER agentmesh;
EOF
  (umask 077 && echo "$pw" >"$CL_DIR/pg-password")
}

# Values are single-quoted: paths, URLs and hex never hold a quote.
env_line() { printf "export %s='%s'\n" "$1" "$2"; }

# Rewrites $CL_DIR/env from what runs now (atomically: others may source it).
write_env() {
  local out=$CL_DIR/env.tmp.$$
  {
    echo "# written by hack/kube-up.sh; source it"
    env_line AGENTMESH_CLUSTER_DIR "$CL_DIR"
    if cl_alive kube-apiserver; then
      env_line KUBECONFIG "$CL_DIR/kubeconfig"
      env_line AGENTMESH_TEST_KUBECONFIG_OPERATOR "$CL_DIR/kubeconfig-operator"
      env_line KUBE_APISERVER_URL "$CL_API_URL"
      env_line AGENTMESH_TEST_KUBE_CA "$PKI/ca.crt"
    fi
    if cl_alive etcd; then
      env_line ETCDCTL_API 3
      env_line ETCDCTL_ENDPOINTS "http://127.0.0.1:$CL_ETCD_PORT"
    fi
    if cl_alive redis; then
      env_line AGENTMESH_TEST_REDIS_URL "redis://127.0.0.1:$CL_REDIS_PORT"
      if redis_tls_ping; then
        env_line AGENTMESH_TEST_REDIS_TLS_URL "rediss://127.0.0.1:$CL_REDIS_TLS_PORT"
        env_line AGENTMESH_TEST_REDIS_CA "$TLS/ca.crt"
      fi
    fi
    if cl_alive postgres && [ -s "$CL_DIR/pg-password" ]; then
      env_line AGENTMESH_TEST_POSTGRES_URL \
        "postgresql://agentmesh:$(cat "$CL_DIR/pg-password")@127.0.0.1:$CL_PG_PORT/agentmesh?sslmode=disable"
    fi
  } >"$out"
  mv "$out" "$CL_DIR/env"
}

want_kube=1 want_redis=0 want_tls=0 want_pg=0
for arg; do
  case $arg in
    --redis) want_redis=1 ;;
    --redis-tls) want_redis=1 want_tls=1 ;;
    --postgres) want_pg=1 ;;
    --no-kube) want_kube=0 ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; cl_die "unknown argument: $arg" ;;
  esac
done

cl_lock
prepare_state_dir
[ "$want_kube" = 1 ] && kube_up
[ "$want_redis" = 1 ] && redis_up
[ "$want_pg" = 1 ] && postgres_up
write_env
running=()
for c in "${COMPONENTS[@]}"; do cl_alive "$c" && running+=("$c"); done
cl_log "running: ${running[*]:-nothing}"
cl_log "use it with:  source $CL_DIR/env   (stop: hack/kube-down.sh)"
