#!/usr/bin/env bash
# Installs promtool, which `make test` runs on the shipped alerting rules (deploy/monitoring):
# `promtool check rules` and `promtool test rules`. It is built from the Go module proxy
# (github.com/prometheus/prometheus, whose Go module versions v0.3XX.Y are Prometheus 3.XX.Y)
# and cached by version outside the clone, like hack/test-deps.sh and hack/bench-tools.sh, so
# a second run takes milliseconds.
#
# Built with -tags remove_all_sd: promtool's rule commands need none of Prometheus's service
# discovery plugins (AWS, Azure, GCE, Kubernetes ...), which are most of a full build.
#
# Usage: hack/promtool.sh   (prints the path of the promtool binary on its last line)
set -euo pipefail

PROMETHEUS_VERSION="${PROMETHEUS_VERSION:-v0.316.0}"
CACHE="${IMAGE_CLONER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/image-cloner}"
TOOLS="$CACHE/tools"
OUT="$TOOLS/promtool-$PROMETHEUS_VERSION"

log() { printf 'promtool: %s\n' "$*" >&2; }
die() { printf 'promtool: error: %s\n' "$*" >&2; exit 1; }

command -v go >/dev/null || die "go is not on PATH"
mkdir -p "$TOOLS" || die "cannot create $TOOLS"
# One build at a time: make test and a developer's make test-rules may both ask.
exec 9>"$CACHE/.promtool.lock"
command -v flock >/dev/null && flock 9

if [ -x "$OUT" ]; then
  log "$PROMETHEUS_VERSION: cached at $OUT"
else
  log "$PROMETHEUS_VERSION: building github.com/prometheus/prometheus/cmd/promtool (first run only)..."
  start=$SECONDS
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  # `go install pkg@version` builds with the module's own go.mod and go.sum (it has no replace
  # directives), outside this module, so nothing of Prometheus enters image-cloner's go.mod.
  GOBIN="$tmp" CGO_ENABLED=0 GOFLAGS=-trimpath go install -tags remove_all_sd -ldflags "-s -w" \
    "github.com/prometheus/prometheus/cmd/promtool@$PROMETHEUS_VERSION" \
    || die "could not build promtool $PROMETHEUS_VERSION"
  "$tmp/promtool" --version >/dev/null 2>&1 || die "the promtool just built does not run"
  mv "$tmp/promtool" "$OUT"
  log "$PROMETHEUS_VERSION: built in $((SECONDS - start))s"
fi
echo "$OUT"
