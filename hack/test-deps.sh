#!/usr/bin/env bash
# Installs the real components the tests run: kube-apiserver and kubectl (built from
# k8s.io/kubernetes), etcd (built from go.etcd.io/etcd/server/v3) and the CNCF distribution
# registry. Each is cached by version outside the clone, so a fresh clone on the same machine
# reuses it and a second run takes seconds. Prints what it builds and how long it took.
#
# Usage: hack/test-deps.sh            (prints the asset directory on its last line)
set -euo pipefail

KUBE_VERSION="${KUBE_VERSION:-v1.36.3}"
ETCD_VERSION="${ETCD_VERSION:-v3.6.8}"
REGISTRY_VERSION="${REGISTRY_VERSION:-v3.1.2}"
GO_MIN="1.26"
# Every Kubernetes binary the project runs: the first two for envtest, the rest for kind nodes.
KUBE_BINARIES="kube-apiserver kubectl kubelet kubeadm kube-controller-manager kube-scheduler kube-proxy"

CACHE="${IMAGE_CLONER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/image-cloner}"
ASSETS="$CACHE/assets/k8s-${KUBE_VERSION}-etcd-${ETCD_VERSION}-registry-${REGISTRY_VERSION}"

log() { printf 'test-deps: %s\n' "$*" >&2; }
die() { printf 'test-deps: error: %s\n' "$*" >&2; exit 1; }

command -v go >/dev/null || die "go is not on PATH: install Go ${GO_MIN} or newer (https://go.dev/dl)"
have=$(go env GOVERSION | sed 's/^go//')
if [ "$(printf '%s\n%s\n' "$GO_MIN" "$have" | sort -V | head -1)" != "$GO_MIN" ]; then
  die "Go $have is too old: the control planes need Go ${GO_MIN} or newer"
fi

mkdir -p "$ASSETS" || die "cannot create $ASSETS"
# One build at a time: test packages run in parallel and may each ask for the assets.
exec 9>"$CACHE/.lock"
command -v flock >/dev/null && flock 9
avail_kb=$(df -Pk "$CACHE" | awk 'NR==2 {print $4}')
need_kb=$((6 * 1024 * 1024))

# build NAME CHECK_FILE FUNC: runs FUNC (which writes into $ASSETS) unless CHECK_FILE exists.
build() {
  local name=$1 out=$2 fn=$3
  if [ -x "$ASSETS/$out" ]; then
    log "$name: cached at $ASSETS/$out"
    return
  fi
  if [ "${avail_kb:-0}" -lt "$need_kb" ]; then
    die "less than 6 GiB free under $CACHE: building $name needs room for Go's module and build caches"
  fi
  log "$name: building (first run only; this takes minutes on a 2-core machine)..."
  local start=$SECONDS
  "$fn"
  [ -x "$ASSETS/$out" ] || die "$name: build finished but $ASSETS/$out is missing"
  log "$name: built in $((SECONDS - start))s"
}

# A throwaway module that requires MODULE@VERSION. k8s.io/kubernetes and etcd's server module
# carry replace directives pointing into their own repositories, so `go install m@v` refuses
# them; requiring them from another module and pinning each replaced module to its published
# version builds the same code.
scratch_module() {
  local dir=$1 module=$2 version=$3
  mkdir -p "$dir"
  (cd "$dir" && cat > go.mod <<MOD
module image-cloner.io/test-deps

go ${GO_MIN}
MOD
  )
  echo "$dir"
}

build_kube() (
  dir=$(mktemp -d)
  trap 'rm -rf "$dir"' EXIT
  scratch_module "$dir" k8s.io/kubernetes "$KUBE_VERSION" >/dev/null
  minor=$(echo "$KUBE_VERSION" | cut -d. -f2); patch=$(echo "$KUBE_VERSION" | cut -d. -f3)
  gomod=$(cd "$dir" && go mod download -json "k8s.io/kubernetes@${KUBE_VERSION}" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  [ -f "$gomod" ] || die "could not download k8s.io/kubernetes@${KUBE_VERSION} from the module proxy"
  staging=$(sed -n 's#^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => ./staging/.*#\1#p' "$gomod")
  (
    cd "$dir"
    go mod edit -require="k8s.io/kubernetes@${KUBE_VERSION}"
    for m in $staging; do go mod edit -replace="$m=$m@v0.${minor}.${patch}"; done
    cat > tools.go <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO
    local pkg=k8s.io/component-base/version
    local ld="-s -w -X ${pkg}.gitVersion=${KUBE_VERSION} -X ${pkg}.gitMajor=1 -X ${pkg}.gitMinor=${minor} -X ${pkg}.gitTreeState=clean"
    ld="$ld -X k8s.io/client-go/pkg/version.gitVersion=${KUBE_VERSION} -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=${minor}"
    # One go build for every binary: they share most of k8s.io/kubernetes/pkg, which then
    # compiles once. kube-apiserver and kubectl serve the envtest control planes; the others
    # go into the kind node image (hack/kind/).
    local pkgs=()
    for b in $KUBE_BINARIES; do pkgs+=("k8s.io/kubernetes/cmd/$b"); done
    CGO_ENABLED=0 go build -mod=mod -trimpath -ldflags "$ld" -o "$ASSETS/" "${pkgs[@]}"
  )
)

build_etcd() (
  dir=$(mktemp -d)
  trap 'rm -rf "$dir"' EXIT
  scratch_module "$dir" go.etcd.io/etcd/server/v3 "$ETCD_VERSION" >/dev/null
  (
    cd "$dir"
    go mod edit -require="go.etcd.io/etcd/server/v3@${ETCD_VERSION}"
    cat > tools.go <<'GO'
//go:build tools

package tools

import _ "go.etcd.io/etcd/server/v3"
GO
    CGO_ENABLED=0 go build -mod=mod -trimpath -ldflags "-s -w" -o "$ASSETS/etcd" go.etcd.io/etcd/server/v3
  )
)

build_registry() (
  dir=$(mktemp -d)
  trap 'rm -rf "$dir"' EXIT
  scratch_module "$dir" github.com/distribution/distribution/v3 "$REGISTRY_VERSION" >/dev/null
  (
    cd "$dir"
    go mod edit -require="github.com/distribution/distribution/v3@${REGISTRY_VERSION}"
    cat > tools.go <<'GO'
//go:build tools

package tools

import _ "github.com/distribution/distribution/v3/cmd/registry"
GO
    CGO_ENABLED=0 go build -mod=mod -trimpath -ldflags "-s -w" -o "$ASSETS/registry" github.com/distribution/distribution/v3/cmd/registry
  )
)

build registry registry build_registry
build etcd etcd build_etcd
missing_kube() { for b in $KUBE_BINARIES; do [ -x "$ASSETS/$b" ] || return 0; done; return 1; }
if missing_kube; then
  rm -f "$ASSETS/kube-apiserver"  # build() skips what is there: rebuild the whole set in one go
  build "kubernetes ($KUBE_BINARIES)" kube-apiserver build_kube
else
  log "kubernetes: cached at $ASSETS ($KUBE_BINARIES)"
fi

"$ASSETS/kube-apiserver" --version >&2
"$ASSETS/etcd" --version | sed -n 1p >&2  # sed reads all: head would SIGPIPE etcd under pipefail
echo "$ASSETS"
