#!/usr/bin/env bash
# Installs the helm CLI, which make e2e-kind uses to install member-2's agent from
# charts/image-cloner. It is built from the Go module proxy at the helm.sh/helm/v4 version in
# go.mod (the library the chart's tests use), and cached by version outside the clone, like
# hack/test-deps.sh and hack/promtool.sh, so a second run takes milliseconds.
#
# Usage: hack/helm.sh   (prints the path of the helm binary on its last line)
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
HELM_VERSION="${HELM_VERSION:-$(cd "$ROOT" && go list -m -f '{{.Version}}' helm.sh/helm/v4)}"
CACHE="${IMAGE_CLONER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/image-cloner}"
TOOLS="$CACHE/tools"
OUT="$TOOLS/helm-$HELM_VERSION"

log() { printf 'helm: %s\n' "$*" >&2; }
die() { printf 'helm: error: %s\n' "$*" >&2; exit 1; }

command -v go >/dev/null || die "go is not on PATH"
mkdir -p "$TOOLS" || die "cannot create $TOOLS"
exec 9>"$CACHE/.helm.lock"
command -v flock >/dev/null && flock 9

if [ -x "$OUT" ]; then
  log "$HELM_VERSION: cached at $OUT"
else
  log "$HELM_VERSION: building helm.sh/helm/v4/cmd/helm (first run only)..."
  start=$SECONDS
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  # `go install pkg@version` builds with helm's own go.mod and go.sum (no replace directives):
  # the published build, whatever this module's go.sum holds.
  GOBIN="$tmp" CGO_ENABLED=0 GOFLAGS=-trimpath go install -ldflags "-s -w" "helm.sh/helm/v4/cmd/helm@$HELM_VERSION" \
    || die "could not build helm $HELM_VERSION"
  "$tmp/helm" version >/dev/null 2>&1 || die "the helm just built does not run"
  mv "$tmp/helm" "$OUT"
  log "$HELM_VERSION: built in $((SECONDS - start))s"
fi
echo "$OUT"
