#!/usr/bin/env bash
# Installs the peer tools `make bench-copy` compares image-cloner's copy engine with: crane (built
# from the go-containerregistry version in go.mod, the library image-cloner itself uses), regctl
# (a pinned regclient release, from the Go module proxy) and skopeo (the Debian package). Go tools
# are cached by version outside the clone, like hack/test-deps.sh, so a second run takes seconds.
#
# Usage: hack/bench-tools.sh   (prints the tools directory on its last line; skopeo is wherever
#                               apt puts it, or missing, which the benchmark reports)
set -euo pipefail

REGCTL_VERSION="${REGCTL_VERSION:-v0.11.7}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CRANE_VERSION="${CRANE_VERSION:-$(cd "$ROOT" && go list -m -f '{{.Version}}' github.com/google/go-containerregistry)}"

CACHE="${IMAGE_CLONER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/image-cloner}"
TOOLS="$CACHE/tools"

log() { printf 'bench-tools: %s\n' "$*" >&2; }
die() { printf 'bench-tools: error: %s\n' "$*" >&2; exit 1; }

command -v go >/dev/null || die "go is not on PATH"
mkdir -p "$TOOLS" || die "cannot create $TOOLS"
exec 9>"$CACHE/.tools.lock"
command -v flock >/dev/null && flock 9

# go_tool NAME VERSION PACKAGE: installs PACKAGE@VERSION as $TOOLS/NAME-VERSION and links
# $TOOLS/NAME to it. `go install pkg@version` builds the module with its own go.mod and go.sum
# (neither module has replace directives), so the build is the published one.
go_tool() {
  local name=$1 version=$2 pkg=$3
  local out="$TOOLS/$name-$version"
  if [ -x "$out" ]; then
    log "$name $version: cached at $out"
  else
    log "$name $version: building $pkg@$version (first run only)..."
    local start=$SECONDS tmp
    tmp=$(mktemp -d)
    GOBIN="$tmp" CGO_ENABLED=0 GOFLAGS=-trimpath go install -ldflags "-s -w" "$pkg@$version" \
      || { rm -rf "$tmp"; die "could not build $pkg@$version"; }
    mv "$tmp/$name" "$out"
    rm -rf "$tmp"
    log "$name $version: built in $((SECONDS - start))s"
  fi
  ln -sf "$(basename "$out")" "$TOOLS/$name"
}

go_tool crane "$CRANE_VERSION" github.com/google/go-containerregistry/cmd/crane
go_tool regctl "$REGCTL_VERSION" github.com/regclient/regclient/cmd/regctl

# skopeo has no Go module release one can `go install` (it needs cgo and libraries for
# signatures and storage); Debian packages it. Install it only where we may (root, apt), and
# otherwise say why it is missing: the benchmark prints that skopeo was skipped and why.
if command -v skopeo >/dev/null; then
  log "skopeo: $(skopeo --version)"
elif [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  log "skopeo: installing the Debian package..."
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q skopeo >&2; then
    DEBIAN_FRONTEND=noninteractive apt-get update -q >&2 || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q skopeo >&2 || log "skopeo: apt-get install failed"
  fi
  command -v skopeo >/dev/null && log "skopeo: $(skopeo --version)"
else
  log "skopeo: not installed, and not root with apt-get to install it (apt-get install skopeo)"
fi

echo "$TOOLS"
