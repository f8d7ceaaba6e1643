#!/usr/bin/env bash
# images.sh — the agentmesh-controller and agentmesh-sidecar container images,
# built without a Docker engine: umoci on a plain OCI layout directory, from
# the Release binaries built here.
#
#   hack/images.sh [--build-dir DIR] [--out-dir DIR]
#
# --build-dir: the Release CMake build (default build-release/); --out-dir:
# where the archives go (default build/images/). Writes
#   <out>/agentmesh-controller-<version>.oci.tar
#   <out>/agentmesh-sidecar-<version>.oci.tar
# each an OCI image layout in a tar (an "oci-archive", as podman, skopeo and
# buildah read it; e.g. `skopeo copy oci-archive:<file>:<version>
# docker://registry/agentmesh/agentmesh-controller:<version>`), tagged
# <version>, the tag of manifests/base/deployment.yaml's controller image
# (0.1.0; the controller's default --sidecar-image uses the same).
#
# Why each file is in the image (nothing else is; no shell, no package manager):
#   /agentmesh-<name>            the stripped binary, the entrypoint
#   /lib/x86_64-linux-gnu/*, /lib64/ld-linux-x86-64.so.2
#                                the shared libraries ldd resolves, each real file
#                                under its own name plus the soname link the loader opens
#   /etc/ssl/certs/ca-certificates.crt, /usr/lib/ssl/cert.pem (link to it)
#                                the system CA store: libcurl reads the first,
#                                OpenSSL's default verify path (rediss:// without
#                                --redis-ca-file) the second
#   /etc/passwd, /etc/group      root and nonroot (uid/gid 65532, the user the image runs as)
#   /etc/nsswitch.conf           hosts: files, then DNS (glibc's default without it is DNS first)
#   /home/nonroot                nonroot's home (0700, its own)
#   /tmp (1777)                  scratch, e.g. the default audit spool
# The config: user 65532:65532, entrypoint the binary, working dir /, the
# ports (controller 8080 9090 9443, sidecar 8081 9091) and the
# org.opencontainers.image.{title,version,revision,source,created} labels.
# source is $IMAGE_SOURCE, else the git remote "origin", else the repository's
# name. Every timestamp (files, config, history) is SOURCE_DATE_EPOCH, default
# the time of the HEAD commit, so a rebuild of the same binaries gives the
# same archives. Rerunning replaces the archives; nothing outside the build
# and output directories is written.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$ROOT/build-release
OUT=$ROOT/build/images
usage() { echo "usage: hack/images.sh [--build-dir DIR] [--out-dir DIR]"; }
while [ $# -gt 0 ]; do
  case $1 in
    --build-dir | --out-dir)
      [ $# -ge 2 ] || { usage >&2; exit 2; }
      if [ "$1" = --build-dir ]; then BUILD=$2; else OUT=$2; fi
      shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
  shift
done

die() { echo "images.sh: $*" >&2; exit 1; }
for tool in umoci cmake ldd strip tar gzip jq; do
  command -v "$tool" >/dev/null || die "$tool not installed (hack/install-deps.sh)"
done
CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
[ -s "$CA_BUNDLE" ] || die "$CA_BUNDLE missing (Debian package ca-certificates)"

# The version is the deployment's image tag, so the two cannot drift apart.
VERSION=$(sed -nE 's|^ *image: agentmesh/agentmesh-controller:([^ ]+)$|\1|p' "$ROOT/manifests/base/deployment.yaml")
[ -n "$VERSION" ] || die "no agentmesh/agentmesh-controller:<tag> image in manifests/base/deployment.yaml"
REVISION=$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git -C "$ROOT" log -1 --format=%ct 2>/dev/null || date +%s)}
CREATED=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)
SOURCE=${IMAGE_SOURCE:-$(git -C "$ROOT" remote get-url origin 2>/dev/null || echo agentmesh-operator)}

echo "images.sh: building Release binaries in $BUILD"
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD" -j2 --target agentmesh-controller agentmesh-sidecar >"$BUILD/images-build.log" 2>&1 ||
  { tail -30 "$BUILD/images-build.log" >&2; die "build failed (log: $BUILD/images-build.log)"; }

# copy_libs BINARY ROOTFS: every library ldd resolves for BINARY, at the path
# ldd names (the loader's search path), as the real file plus a soname link.
copy_libs() {
  local bin=$1 rootfs=$2 line path real dir
  if ldd "$bin" | grep -q 'not found'; then
    ldd "$bin" >&2
    die "$bin: unresolved libraries"
  fi
  while read -r line; do
    case $line in
      *' => '*) path=${line#* => }; path=${path%% (*} ;;
      /*) path=${line%% (*} ;;
      *) continue ;;                    # linux-vdso.so.1: provided by the kernel
    esac
    real=$(readlink -f "$path")
    dir=$(dirname "$path")
    mkdir -p "$rootfs$dir"
    cp -L "$real" "$rootfs$dir/$(basename "$real")"
    [ "$(basename "$real")" = "$(basename "$path")" ] || ln -sfn "$(basename "$real")" "$rootfs$path"
  done < <(ldd "$bin")
}

# populate NAME ROOTFS: everything the image holds (see the list above).
populate() {
  local name=$1 rootfs=$2
  strip --strip-all -o "$rootfs/$name" "$BUILD/$name"
  chmod 0755 "$rootfs/$name"
  copy_libs "$BUILD/$name" "$rootfs"
  mkdir -p "$rootfs/etc/ssl/certs" "$rootfs/usr/lib/ssl" "$rootfs/home/nonroot" "$rootfs/tmp"
  install -m 0644 "$CA_BUNDLE" "$rootfs/etc/ssl/certs/ca-certificates.crt"
  ln -sfn /etc/ssl/certs/ca-certificates.crt "$rootfs/usr/lib/ssl/cert.pem"
  printf '%s\n' 'root:x:0:0:root:/root:/sbin/nologin' \
    'nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin' >"$rootfs/etc/passwd"
  printf '%s\n' 'root:x:0:' 'nonroot:x:65532:' >"$rootfs/etc/group"
  printf '%s\n' 'passwd: files' 'group: files' 'hosts: files dns' >"$rootfs/etc/nsswitch.conf"
  chmod 0644 "$rootfs/etc/passwd" "$rootfs/etc/group" "$rootfs/etc/nsswitch.conf"
  chown 65532:65532 "$rootfs/home/nonroot"
  chmod 0700 "$rootfs/home/nonroot"
  chmod 1777 "$rootfs/tmp"
  find "$rootfs" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
}

# image NAME PORT...: builds NAME's layout and writes its archive.
image() {
  local name=$1 work=$OUT/.work/$1 port
  shift
  local layout=$work/layout bundle=$work/bundle ref="$work/layout:$VERSION"
  rm -rf "$work"
  mkdir -p "$work"
  umoci init --layout "$layout"
  umoci new --image "$ref"
  umoci unpack --image "$ref" "$bundle"
  populate "$name" "$bundle/rootfs"
  umoci repack --image "$ref" --history.created "$CREATED" \
    --history.created_by "hack/images.sh: $name $VERSION ($REVISION)" "$bundle"
  local config=(--config.user 65532:65532 --config.entrypoint "/$name" --config.workingdir /
    --config.label "org.opencontainers.image.title=$name"
    --config.label "org.opencontainers.image.version=$VERSION"
    --config.label "org.opencontainers.image.revision=$REVISION"
    --config.label "org.opencontainers.image.source=$SOURCE"
    --config.label "org.opencontainers.image.created=$CREATED")
  for port in "$@"; do config+=(--config.exposedports "$port/tcp"); done
  umoci config --image "$ref" "${config[@]}" --created "$CREATED" --history.created "$CREATED" \
    --history.created_by "hack/images.sh: config"
  umoci gc --layout "$layout"
  local archive=$OUT/$name-$VERSION.oci.tar
  tar --sort=name --mtime="@$SOURCE_DATE_EPOCH" --owner=0 --group=0 --numeric-owner \
    -C "$layout" -cf "$archive.new" oci-layout index.json blobs
  mv "$archive.new" "$archive"
  report "$name" "$archive" "$layout"
  rm -rf "$work"
}

# report NAME ARCHIVE LAYOUT: the sizes a user pulls and unpacks.
report() {
  local name=$1 archive=$2 layout=$3 manifest layer
  manifest=$(jq -r '.manifests[0].digest | sub(":"; "/")' "$layout/index.json")
  layer=$(jq -r '.layers[0].digest | sub(":"; "/")' "$layout/blobs/$manifest")
  printf '%-22s %s\n' "$name" "$archive"
  printf '  archive %s, layer %s compressed, %s uncompressed\n' \
    "$(size "$(stat -c %s "$archive")")" "$(size "$(stat -c %s "$layout/blobs/$layer")")" \
    "$(size "$(gzip -dc "$layout/blobs/$layer" | wc -c)")"
}
size() { echo "$1 B ($(numfmt --to=iec-i --suffix=B --format=%.1f "$1"))"; }

mkdir -p "$OUT"
image agentmesh-controller 8080 9090 9443
image agentmesh-sidecar 8081 9091
rmdir "$OUT/.work" 2>/dev/null || true
echo "images.sh: tag $VERSION, revision $REVISION, created $CREATED"
