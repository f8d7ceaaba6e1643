#!/usr/bin/env bash
# install-deps.sh — installs every Debian package the build, the tests, the
# benchmarks and the local control plane need. Idempotent: packages already
# present are skipped, and apt is only touched when something is missing.
set -euo pipefail

PKGS=(
  # build
  build-essential cmake pkg-config clang libclang-rt-14-dev
  # libraries
  libcurl4-openssl-dev libjansson-dev libyaml-dev libssl-dev libsodium-dev
  libpq-dev libhiredis-dev libevent-dev check libzstd-dev
  # local control plane (kube-apiserver built from Debian's source package)
  golang-go rsync etcd-server etcd-client golang-github-modern-go-reflect2-dev
  dpkg-dev openssl curl
  # storage back ends for tests
  redis-server postgresql
  # tests, benchmarks, images
  valgrind wrk jq buildah umoci
  # ss and ip (port checks in kube-up, demo and image tests)
  iproute2
  # e2e/manifests.sh: YAML to JSON for checks of rendered manifests
  yq
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

need_src=0
if ! grep -rqs '^Types:.*deb-src' /etc/apt/sources.list.d/ && ! grep -qs '^deb-src' /etc/apt/sources.list; then
  need_src=1
fi

if [ "${#missing[@]}" -eq 0 ] && [ "$need_src" -eq 0 ]; then
  echo "install-deps: all packages present"
  exit 0
fi

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

if [ "$need_src" -eq 1 ]; then
  # kube-up.sh builds kube-apiserver from Debian's `kubernetes` source package.
  mirror=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  [ -n "$mirror" ] || mirror=http://deb.debian.org/debian
  printf 'Types: deb-src\nURIs: %s\nSuites: bookworm\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
    "$mirror" | $SUDO tee /etc/apt/sources.list.d/agentmesh-src.sources >/dev/null
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
if [ "${#missing[@]}" -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# Debian starts the packaged servers; tests run their own on loopback ports.
for svc in redis-server postgresql; do
  $SUDO systemctl disable --now "$svc" >/dev/null 2>&1 || true
  $SUDO service "$svc" stop >/dev/null 2>&1 || true
done
echo "install-deps: done"
