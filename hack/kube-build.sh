#!/usr/bin/env bash
# kube-build.sh — builds kube-apiserver and kube-controller-manager 1.20.2 from
# Debian's `kubernetes` source package, once. The binaries are cached outside
# the checkout (AGENTMESH_KUBE_CACHE, default ~/.cache/agentmesh/kube-1.20.2) so
# every later call returns at once. See ../shared/LOCAL-CLUSTER.md for why the
# reflect2 swap is needed (the vendored 1.0.1 crashes under Go >= 1.18).
set -euo pipefail
CACHE=${AGENTMESH_KUBE_CACHE:-$HOME/.cache/agentmesh/kube-1.20.2}
WANT=(kube-apiserver kube-controller-manager)
[ "${1:-}" = "--with-peers" ] && WANT+=(sample-controller agnhost)

have_all() { for b in "${WANT[@]}"; do [ -x "$CACHE/bin/$b" ] || return 1; done; }
if have_all; then echo "$CACHE/bin"; exit 0; fi

mkdir -p "$CACHE/bin"
exec 9>"$CACHE/.lock"
flock 9
if have_all; then echo "$CACHE/bin"; exit 0; fi

work=$(mktemp -d "$CACHE/src.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"
echo "kube-build: fetching Debian source package kubernetes" >&2
apt-get source -qq --download-only kubernetes >&2
dpkg-source -x --skip-debianization kubernetes_*.dsc src >/dev/null 2>&1 || dpkg-source -x kubernetes_*.dsc src >&2
cd src
r2=vendor/github.com/modern-go/reflect2
rm -f "$r2"/*.go "$r2"/*.s
cp /usr/share/gocode/src/github.com/modern-go/reflect2/*.go "$r2"/
cp /usr/share/gocode/src/github.com/modern-go/reflect2/*.s "$r2"/ 2>/dev/null || true
rm -f "$r2"/*_test.go
mkdir -p .go/src/k8s.io
ln -sfn ../../.. .go/src/k8s.io/kubernetes
what="cmd/kube-apiserver cmd/kube-controller-manager"
[ "${1:-}" = "--with-peers" ] && what="$what vendor/k8s.io/sample-controller test/images/agnhost"
echo "kube-build: building $what (a few minutes)" >&2
gohome=$(mktemp -d)
env GOPATH="$PWD/.go" CGO_ENABLED=0 HOME="$gohome" GOFLAGS=-mod=vendor GO111MODULE=on \
  make WHAT="$what" >&2
for b in "${WANT[@]}"; do
  install -m 0755 "_output/bin/$b" "$CACHE/bin/$b"
done
rm -rf "$gohome"
echo "$CACHE/bin"
