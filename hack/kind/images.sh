#!/usr/bin/env bash
# make images: the hub and agent images without Docker or a base image to pull, and the registry
# image make e2e-kind runs its registries from. Built with hack/kind/imagetool (go-containerregistry):
#
#   hub, agent  the static binary (CGO_ENABLED=0, -trimpath -s -w as in hub/ and agent/Dockerfile)
#               at /hub or /agent on a minimal nonroot base (passwd/group with nonroot 65532,
#               /home/nonroot, /tmp, CA bundle; no shell), USER 65532:65532, ENTRYPOINT the
#               binary, for every platform of IMAGE_PLATFORMS (default linux/amd64,linux/arm64),
#               written as OCI layouts to artifacts/images/{hub,agent}, and as docker-archive
#               tarballs for this machine's platform (artifacts/images/{hub,agent}.tar, for
#               `kind load image-archive`);
#   registry    the distribution registry of hack/test-deps.sh's assets, /bin/registry serve
#               /etc/distribution/config.yml like the official registry:3 image (OpenTelemetry
#               off: it would only try localhost:4318), loaded into the
#               Docker engine when one answers (artifacts/images/registry.tar otherwise).
#
# IMAGE_REPO (default image-cloner) and IMAGE_TAG (default dev) name them; IMAGE_PUSH=1 also
# pushes the hub and agent (an index of every platform) to IMAGE_REPO, e.g.
# IMAGE_REPO=localhost:5001/image-cloner. Prints the references it made, one a line.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
IMAGE_REPO=${IMAGE_REPO:-image-cloner}
IMAGE_TAG=${IMAGE_TAG:-dev}
IMAGE_PLATFORMS=${IMAGE_PLATFORMS:-linux/amd64,linux/arm64}
CACHE="${IMAGE_CLONER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/image-cloner}"
out="$root/artifacts/images"
log() { printf 'images: %s\n' "$*" >&2; }
die() { printf 'images: error: %s\n' "$*" >&2; exit 1; }
mkdir -p "$out" "$CACHE/kind/bin"

what=${*:-hub agent registry}
t=$SECONDS
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$CACHE/kind/bin/" ./hack/kind/imagetool
it="$CACHE/kind/bin/imagetool"
host="linux/$(go env GOARCH)"

if [[ " $what " == *" hub "* || " $what " == *" agent "* ]]; then
  args_hub=() args_agent=()
  for p in ${IMAGE_PLATFORMS//,/ }; do
    d="$root/bin/${p//\//_}"
    mkdir -p "$d"
    # One go build per platform for both binaries, as the Dockerfiles build them.
    log "go build ./hub ./agent for $p"
    GOOS=${p%/*} GOARCH=${p#*/} CGO_ENABLED=0 go build -trimpath -buildvcs=false -ldflags "-s -w" -o "$d/" ./hub ./agent
    args_hub+=(-platform-binary "$p=$d/hub")
    args_agent+=(-platform-binary "$p=$d/agent")
  done
  for b in hub agent; do
    [[ " $what " == *" $b "* ]] || continue
    ref="$IMAGE_REPO/$b:$IMAGE_TAG"
    var="args_$b[@]"
    common=(-tag "$ref" -binary-path "/$b" -nonroot -user 65532:65532 -entrypoint "/$b")
    rm -rf "$out/$b"
    "$it" image "${common[@]}" "${!var}" -oci-layout "$out/$b"
    "$it" image "${common[@]}" -platform-binary "$host=$root/bin/${host//\//_}/$b" -tarball "$out/$b.tar" 2>/dev/null ||
      log "$b: no $host binary in IMAGE_PLATFORMS, no tarball"
    if [ "${IMAGE_PUSH:-0}" = 1 ]; then
      "$it" image "${common[@]}" "${!var}" -push
      log "$ref: pushed ($IMAGE_PLATFORMS)"
    fi
    echo "$ref"
  done
fi

if [[ " $what " == *" registry "* ]]; then
  assets=$(hack/test-deps.sh 2>/dev/null | tail -1)
  [ -x "$assets/registry" ] || die "hack/test-deps.sh gave no registry binary: run it to see why"
  v=$("$assets/registry" --version | grep -o 'v[0-9][0-9.]*' | head -1)
  ref="image-cloner/registry:${v:-dev}"
  "$it" image -tag "$ref" -platform-binary "$host=$assets/registry" -binary-path /bin/registry \
    -file "hack/kind/registry/config.yml=/etc/distribution/config.yml:0644" \
    -env OTEL_TRACES_EXPORTER=none -env OTEL_METRICS_EXPORTER=none -env OTEL_SDK_DISABLED=true \
    -entrypoint /bin/registry -cmd serve,/etc/distribution/config.yml -tarball "$out/registry.tar"
  if command -v docker >/dev/null && docker info >/dev/null 2>&1; then
    docker load -i "$out/registry.tar" >/dev/null
    log "$ref: loaded into the Docker engine"
  fi
  echo "$ref"
fi
log "done in $((SECONDS - t))s"
