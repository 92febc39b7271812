#!/usr/bin/env bash
# Build kube-apiserver (+ optionally kube-controller-manager, kube-scheduler), etcd and kwok
# from the Go module proxy only (no dl.k8s.io / GitHub releases needed).
# Idempotent: binaries already in $K8S_BIN_DIR are kept.
#
#   K8S_VERSION   (default 1.34.2)  k8s.io/kubernetes version; staging modules are v0.<minor>.<patch>
#   ETCD_VERSION  (default 3.6.16)  go.etcd.io/etcd/server/v3 version ("apt" = use Debian's etcd-server 3.4)
#   KWOK_VERSION  (default 0.8.0)   sigs.k8s.io/kwok version ("" = skip)
#   K8S_CMDS      (default: all three) "kube-apiserver kube-controller-manager kube-scheduler"
#   K8S_CACHE_DIR (default ~/.cache/lookout/k8s)
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-1.34.2}"
ETCD_VERSION="${ETCD_VERSION:-3.6.16}"
KWOK_VERSION="${KWOK_VERSION-0.8.0}"
K8S_CMDS="${K8S_CMDS:-kube-apiserver kube-controller-manager kube-scheduler}"
K8S_CACHE_DIR="${K8S_CACHE_DIR:-$HOME/.cache/lookout/k8s}"
K8S_BIN_DIR="$K8S_CACHE_DIR/bin-v$K8S_VERSION"
NICE="${NICE:-nice -n 19}"
mkdir -p "$K8S_BIN_DIR"
export GOFLAGS="${GOFLAGS:-} -mod=mod"

MINOR="$(echo "$K8S_VERSION" | cut -d. -f2)"
STAGING_VERSION="v0.${K8S_VERSION#1.}"

# ---------- kubernetes components ----------
need_k8s=0
for c in $K8S_CMDS; do [ -x "$K8S_BIN_DIR/$c" ] || need_k8s=1; done
if [ "$need_k8s" = 1 ]; then
  MODDIR="$K8S_CACHE_DIR/mod-kubernetes-v$K8S_VERSION"
  mkdir -p "$MODDIR"
  cd "$MODDIR"
  # 1) fetch kubernetes' own go.mod to learn its staging modules (replace ... => ./staging/src/...)
  KMOD="$(go mod download -json "k8s.io/kubernetes@v$K8S_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')"
  [ -f "$KMOD" ] || { echo "could not download k8s.io/kubernetes@v$K8S_VERSION"; exit 1; }
  GOVER="$(awk '/^go /{print $2; exit}' "$KMOD")"
  GODEBUG_LINE="$(grep -m1 '^godebug ' "$KMOD" || true)"
  # 2) our own module: require kubernetes, replace every staging module with its published v0.x version
  {
    echo "module local/k8s-test-bins"
    echo
    echo "go $GOVER"
    [ -n "$GODEBUG_LINE" ] && { echo; echo "$GODEBUG_LINE"; }
    echo
    echo "require k8s.io/kubernetes v$K8S_VERSION"
    echo
    echo "replace ("
    sed -n '/^replace (/,/^)/p' "$KMOD" | grep '=> ./staging/' \
      | awk -v v="$STAGING_VERSION" '{print "\t" $1 " => " $1 " " v}'
    echo ")"
  } > go.mod
  {
    echo "//go:build tools"
    echo
    echo "package tools"
    echo
    echo "import ("
    for c in $K8S_CMDS; do echo "	_ \"k8s.io/kubernetes/cmd/$c\""; done
    echo ")"
  } > tools.go
  $NICE go mod tidy
  LDF="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    LDF="$LDF -X $p.gitVersion=v$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$MINOR -X $p.gitTreeState=clean"
  done
  for c in $K8S_CMDS; do
    [ -x "$K8S_BIN_DIR/$c" ] && continue
    t0=$(date +%s)
    $NICE go build -trimpath -ldflags "$LDF" -o "$K8S_BIN_DIR/$c.tmp" "k8s.io/kubernetes/cmd/$c"
    mv "$K8S_BIN_DIR/$c.tmp" "$K8S_BIN_DIR/$c"
    echo "built $c v$K8S_VERSION in $(( $(date +%s) - t0 ))s"
  done
fi

# ---------- etcd ----------
if [ "$ETCD_VERSION" = apt ]; then
  command -v etcd >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends etcd-server
  ln -sf "$(command -v etcd)" "$K8S_BIN_DIR/etcd"
elif [ ! -x "$K8S_BIN_DIR/etcd" ]; then
  MODDIR="$K8S_CACHE_DIR/mod-etcd-v$ETCD_VERSION"
  mkdir -p "$MODDIR"
  cd "$MODDIR"
  printf 'module local/etcd-bin\n\ngo 1.24.0\n' > go.mod
  # go.etcd.io/etcd/server/v3 has replace directives too (so `go install` is refused);
  # a `tool` directive in our own module works (Go >= 1.24).
  $NICE go get -tool "go.etcd.io/etcd/server/v3@v$ETCD_VERSION"
  t0=$(date +%s)
  $NICE go build -trimpath -ldflags "-s -w" -o "$K8S_BIN_DIR/etcd.tmp" go.etcd.io/etcd/server/v3
  mv "$K8S_BIN_DIR/etcd.tmp" "$K8S_BIN_DIR/etcd"
  echo "built etcd v$ETCD_VERSION in $(( $(date +%s) - t0 ))s"
fi

# ---------- kwok (optional) ----------
if [ -n "$KWOK_VERSION" ] && [ ! -x "$K8S_BIN_DIR/kwok" ]; then
  t0=$(date +%s)
  GOBIN="$K8S_BIN_DIR" $NICE go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@v$KWOK_VERSION"
  # kwok standalone needs Stage objects in its config (kwokctl normally supplies them): take the defaults
  # that ship inside the module.
  S="$(go env GOMODCACHE)/sigs.k8s.io/kwok@v$KWOK_VERSION/kustomize/stage"
  {
    for f in "$S/node/fast/node-initialize.yaml" "$S/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml" \
             "$S/pod/fast/pod-ready.yaml" "$S/pod/fast/pod-complete.yaml" "$S/pod/fast/pod-delete.yaml"; do
      echo "---"; cat "$f"
    done
  } > "$K8S_BIN_DIR/kwok-stages.yaml"
  echo "built kwok v$KWOK_VERSION in $(( $(date +%s) - t0 ))s"
fi

echo "binaries in $K8S_BIN_DIR:"
ls -la "$K8S_BIN_DIR"
