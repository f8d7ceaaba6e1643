#!/usr/bin/env bash
# shellcheck disable=SC2016  # jq programs are single-quoted on purpose
# e2e/images.sh — the container images hack/images.sh builds, checked from
# the outside as a runtime would see them. Needs no cluster and no container
# engine: umoci unpacks each OCI archive and the binaries run in a chroot of
# the unpacked rootfs (same network namespace, so curl reaches them).
#
# Builds the images itself (hack/images.sh with its own Release build in
# $BUILD_DIR/e2e-images/, so it never races anyone's build-release/), or
# checks the archives already in $IMAGES_DIR when that is set (e.g.
# IMAGES_DIR=build/images after hack/images.sh). For each image:
#   - the archive is an OCI layout whose blobs match their digests, tagged
#     with the deployment's version (also the controller's default sidecar tag);
#   - config: user 65532:65532, entrypoint the binary, working dir /, the
#     exposed ports, the OCI labels;
#   - rootfs: only the files hack/images.sh promises (no shell, no package
#     manager, nothing else), the binary stripped, root-owned, /tmp 1777,
#     nonroot in /etc/passwd and /etc/group, the CA store where libcurl and
#     OpenSSL look;
#   - the loader in the rootfs resolves every library of the binary;
#   - `--help` runs in the chroot as root and as 65532:65532, exits 0 and
#     prints the flags;
#   - the server itself runs as 65532:65532 in the chroot: the controller
#     (no API server reachable, webhook certificate from a directory) answers
#     /healthz, serves TLS on the webhook port and creates its audit spool in
#     /tmp; the sidecar answers /metrics; /proc says uid/gid 65532; SIGTERM
#     ends each with status 0.
# Prints the sizes; ends with "images: N passed, N failed", non-zero on failure.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=${SOURCE_DIR:-$(cd "$here/.." && pwd)}
build=${BUILD_DIR:-$root/build}

# shellcheck source=e2e/checks.sh
source "$root/e2e/checks.sh"

work=$(mktemp -d /tmp/e2e-images.XXXXXX)
server_pid=
finish() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null
  rm -rf "$work"
  echo "images: $PASSED passed, $FAILED failed"
  [ "$FAILED" -eq 0 ]
}
trap 'finish; exit $?' EXIT
trap 'exit 130' INT TERM

for tool in umoci jq curl openssl readelf chroot ss sha256sum; do
  command -v "$tool" >/dev/null || fail "$tool not installed (hack/install-deps.sh)"
done

version=$(sed -nE 's|^ *image: agentmesh/agentmesh-controller:([^ ]+)$|\1|p' "$root/manifests/base/deployment.yaml")
[ -n "$version" ] || fail "no controller image tag in manifests/base/deployment.yaml"

if [ -n "${IMAGES_DIR:-}" ]; then
  images=$IMAGES_DIR
  echo "# checking the archives in $images"
else
  images=$build/e2e-images/out
  if ! bash "$root/hack/images.sh" --build-dir "$build/e2e-images/release" --out-dir "$images" >"$work/images.log" 2>&1; then
    cat "$work/images.log"
    fail "hack/images.sh failed"
  fi
  ok "hack/images.sh built both images"
  grep -E '^(agentmesh-|  archive)' "$work/images.log" | sed 's/^/# /'
fi


# blobs_match LAYOUT: every blob's sha256 is its file name.
blobs_match() {
  local blob
  for blob in "$1"/blobs/sha256/*; do
    [ "$(sha256sum "$blob" | cut -d' ' -f1)" = "$(basename "$blob")" ] || { echo "corrupt blob $blob"; return 1; }
  done
}

# unexpected ROOTFS NAME: paths that hack/images.sh does not promise.
unexpected() {
  (cd "$1" && find . -mindepth 1 ! -type d) | sed 's|^\.||' | grep -vxE \
    "/$2|/lib/x86_64-linux-gnu/lib[A-Za-z0-9_+.-]+\.so[.0-9]*|/lib64/ld-linux-x86-64\.so\.2|/etc/(passwd|group|nsswitch\.conf)|/etc/ssl/certs/ca-certificates\.crt|/usr/lib/ssl/cert\.pem"
}

shells() { (cd "$1" && find . -name sh -o -name bash -o -name dash -o -name ash -o -name zsh -o -name ksh -o -name mksh \
  -o -name busybox -o -name toybox -o -name apt -o -name dpkg -o -name apk -o -name rpm) | sed 's|^\.||'; }

# owners ROOTFS: every path not owned by root, except nonroot's home.
not_root_owned() { (cd "$1" && find . ! -user 0 -o ! -group 0) | grep -vx './home/nonroot'; }

has_symtab() { readelf -S "$1" | grep -q '\.symtab'; }

proc_ids() { awk '$1 == "Uid:" || $1 == "Gid:" { printf "%s %s %s %s %s\n", $1, $2, $3, $4, $5 }' "/proc/$1/status"; }

# stop PID: SIGTERM and its exit status (124 when it had to be killed).
stop() {
  local pid=$1
  kill -TERM "$pid" 2>/dev/null
  for _ in $(seq 1 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid"; wait "$pid" 2>/dev/null; return 124; fi
  wait "$pid"
}

# check_image NAME "PORTS" FLAG...: the archive, config and rootfs checks, and
# --help (which must print every FLAG). Leaves the rootfs in $rootfs.
check_image() {
  local name=$1 ports=$2 archive=$images/$1-$version.oci.tar
  shift 2
  local layout=$work/$name/layout bundle=$work/$name/bundle
  echo "# $name"
  [ -s "$archive" ] || fail "$archive missing"
  mkdir -p "$layout"
  tar -xf "$archive" -C "$layout" || fail "$archive: not a tar"
  check "$name: archive is an OCI layout tagged $version" test "$(umoci ls --layout "$layout")" = "$version"
  check "$name: every blob matches its digest" blobs_match "$layout"

  local manifest config
  manifest=$layout/blobs/$(jq -r '.manifests[0].digest | sub(":"; "/")' "$layout/index.json")
  config=$layout/blobs/$(jq -r '.config.digest | sub(":"; "/")' "$manifest")
  check "$name: one gzip layer" test "$(jq -r '[.layers[].mediaType] | join(" ")' "$manifest")" = \
    application/vnd.oci.image.layer.v1.tar+gzip
  check "$name: linux/amd64" test "$(jq -r '"\(.os)/\(.architecture)"' "$config")" = linux/amd64
  check "$name: user 65532:65532" test "$(jq -r .config.User "$config")" = 65532:65532
  check "$name: entrypoint /$name, no cmd" test "$(jq -c '[.config.Entrypoint, .config.Cmd]' "$config")" = "[[\"/$name\"],null]"
  check "$name: working dir /" test "$(jq -r .config.WorkingDir "$config")" = /
  check "$name: exposes $ports" test "$(jq -r '.config.ExposedPorts | keys | join(" ")' "$config")" = "$ports"
  check "$name: labels title, version, source" test \
    "$(jq -r '.config.Labels | "\(.["org.opencontainers.image.title"]) \(.["org.opencontainers.image.version"]) \(.["org.opencontainers.image.source"] != "")"' "$config")" \
    = "$name $version true"

  umoci unpack --image "$layout:$version" "$bundle" || fail "$name: umoci unpack failed"
  rootfs=$bundle/rootfs
  local extra found
  extra=$(unexpected "$rootfs" "$name")
  check "$name: rootfs holds only the promised files${extra:+ (also: ${extra//$'\n'/ })}" test -z "$extra"
  found=$(shells "$rootfs")
  check "$name: no /bin/sh, no shell or package manager anywhere${found:+ (found: ${found//$'\n'/ })}" \
    test -z "$found" -a ! -e "$rootfs/bin/sh" -a ! -L "$rootfs/bin/sh"
  check "$name: binary is executable and stripped" eval "test -x '$rootfs/$name' && ! has_symtab '$rootfs/$name'"
  found=$(not_root_owned "$rootfs")
  check "$name: everything root-owned but /home/nonroot${found:+ (not: ${found//$'\n'/ })}" test -z "$found"
  check "$name: /home/nonroot is 65532's, 0700" test "$(stat -c '%u:%g %a' "$rootfs/home/nonroot")" = "65532:65532 700"
  check "$name: /tmp is 1777" test "$(stat -c %a "$rootfs/tmp")" = 1777
  check "$name: nonroot is 65532 in /etc/passwd and /etc/group" eval \
    "grep -qx 'nonroot:x:65532:65532:[^:]*:[^:]*:[^:]*' '$rootfs/etc/passwd' && grep -qx 'nonroot:x:65532:' '$rootfs/etc/group'"
  local certs
  certs=$(grep -c 'BEGIN CERTIFICATE' "$rootfs/etc/ssl/certs/ca-certificates.crt" 2>/dev/null)
  check "$name: CA store with ${certs:-0} certificates, the first one parses" eval \
    "[ '${certs:-0}' -gt 50 ] && openssl x509 -noout -in '$rootfs/etc/ssl/certs/ca-certificates.crt'"
  check "$name: OpenSSL's default cert.pem points at it" \
    test "$(readlink "$rootfs/usr/lib/ssl/cert.pem")" = /etc/ssl/certs/ca-certificates.crt

  local libs rc
  libs=$(chroot "$rootfs" /lib64/ld-linux-x86-64.so.2 --list "/$name" 2>&1); rc=$?
  check "$name: the image's loader resolves all $(grep -c '=>' <<<"$libs") libraries (exit $rc)" \
    eval "[ $rc -eq 0 ] && ! grep -q 'not found' <<<\"\$libs\" && grep -q libc.so.6 <<<\"\$libs\""

  local who help flag missing
  for who in root 65532:65532; do
    if [ "$who" = root ]; then
      help=$(chroot "$rootfs" "/$name" --help 2>&1); rc=$?
    else
      help=$(chroot --userspec="$who" "$rootfs" "/$name" --help 2>&1); rc=$?
    fi
    missing=
    for flag in "$@"; do grep -q -- "$flag" <<<"$help" || missing+=" $flag"; done
    check "$name --help as $who in the rootfs: exit $rc, prints $*${missing:+ (missing:$missing)}" \
      test "$rc" = 0 -a -z "$missing"
  done
}

run_controller() {
  local rootfs=$1 api metrics webhook body
  api=$(free_port) metrics=$(free_port) webhook=$(free_port)
  # No API server and no audit sink are reachable: the controller still
  # serves its probes and webhooks (its readiness says why it is not ready)
  # and opens the sink's spool under the default /tmp/agentmesh-spool.
  cat >"$rootfs/tmp/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters: [{name: none, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: none, user: {token: none}}]
contexts: [{name: none, context: {cluster: none, user: none}}]
current-context: none
EOF
  mkdir -p "$rootfs/tmp/certs"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=localhost \
    -keyout "$rootfs/tmp/certs/tls.key" -out "$rootfs/tmp/certs/tls.crt" 2>/dev/null || fail "openssl req failed"
  chown -R 65532:65532 "$rootfs/tmp/certs" "$rootfs/tmp/kubeconfig"
  chroot --userspec=65532:65532 "$rootfs" /agentmesh-controller --kubeconfig /tmp/kubeconfig \
    --namespace e2e-images --bind-address 127.0.0.1 --api-port "$api" --metrics-port "$metrics" \
    --webhook-port "$webhook" --webhook-cert-dir /tmp/certs --leader-elect=false \
    --audit-sink-url http://127.0.0.1:1/events \
    >"$work/controller.log" 2>&1 &
  server_pid=$!
  if wait_for 10 curl -sf "http://127.0.0.1:$metrics/healthz"; then
    ok "agentmesh-controller as 65532 in the rootfs: /healthz 200"
  else
    tail -20 "$work/controller.log"
    bad "agentmesh-controller as 65532 in the rootfs: no /healthz within 10 s"
  fi
  check "agentmesh-controller runs as uid/gid 65532" \
    test "$(proc_ids "$server_pid" | tr '\n' ' ')" = "Uid: 65532 65532 65532 65532 Gid: 65532 65532 65532 65532 "
  body=$(curl -s "http://127.0.0.1:$metrics/readyz")
  check "agentmesh-controller loads its webhook certificate (readyz: webhook-certificate ok)" \
    grep -q '\[+\] webhook-certificate ok' <<<"$body"
  check "agentmesh-controller serves TLS 1.2+ on the webhook port" eval \
    "curl -sk --tlsv1.2 -o /dev/null -w '%{http_code}' https://127.0.0.1:$webhook/healthz | grep -qE '^[1-5][0-9][0-9]$'"
  check "agentmesh-controller (nonroot) created its audit spool in /tmp" \
    test "$(stat -c %u "$rootfs/tmp/agentmesh-spool/sink" 2>/dev/null)" = 65532
  stop "$server_pid"
  check "agentmesh-controller exits 0 on SIGTERM (got $?)" test "$?" = 0
  server_pid=
}

run_sidecar() {
  local rootfs=$1 listen metrics
  listen=$(free_port) metrics=$(free_port)
  chroot --userspec=65532:65532 "$rootfs" /agentmesh-sidecar --listen "127.0.0.1:$listen" \
    --metrics-listen "127.0.0.1:$metrics" --identity-dir /tmp/no-identity \
    --controller-url http://127.0.0.1:1 >"$work/sidecar.log" 2>&1 &
  server_pid=$!
  if wait_for 10 curl -sf "http://127.0.0.1:$metrics/metrics"; then
    ok "agentmesh-sidecar as 65532 in the rootfs: /metrics 200"
  else
    tail -20 "$work/sidecar.log"
    bad "agentmesh-sidecar as 65532 in the rootfs: no /metrics within 10 s"
  fi
  check "agentmesh-sidecar metrics name agentmesh_sidecar_*" eval \
    "curl -s http://127.0.0.1:$metrics/metrics | grep -q '^# TYPE agentmesh_sidecar_'"
  check "agentmesh-sidecar runs as uid/gid 65532" \
    test "$(proc_ids "$server_pid" | tr '\n' ' ')" = "Uid: 65532 65532 65532 65532 Gid: 65532 65532 65532 65532 "
  stop "$server_pid"
  check "agentmesh-sidecar exits 0 on SIGTERM (got $?)" test "$?" = 0
  server_pid=
}

rootfs=
check_image agentmesh-controller "8080/tcp 9090/tcp 9443/tcp" --kubeconfig --api-port --webhook-port --sidecar-image
sidecar_default=$(chroot "$rootfs" /agentmesh-controller --help 2>&1 | grep -oE 'agentmesh/agentmesh-sidecar:[^ )]+' | head -1)
check "controller's default --sidecar-image ($sidecar_default) is the sidecar image built here" \
  test "$sidecar_default" = "agentmesh/agentmesh-sidecar:$version"
run_controller "$rootfs"

check_image agentmesh-sidecar "8081/tcp 9091/tcp" --listen --metrics-listen --identity-dir --controller-url
run_sidecar "$rootfs"
