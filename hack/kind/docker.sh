#!/usr/bin/env bash
# A Docker engine for kind: uses the one that answers, or starts one.
#
#   hack/kind/docker.sh [start]   make sure `docker info` answers; prints how on its last line
#   hack/kind/docker.sh stop      stop the dockerd this script started (nothing else)
#
# When no engine answers and we are root, it installs Debian's docker.io with apt if dockerd is
# missing and starts dockerd with:
#   - its data root under the cache (${IMAGE_CLONER_CACHE:-~/.cache/image-cloner}/docker), so
#     built images (the node image above all) survive between runs and into CI's cache;
#   - a default OCI runtime, capfilter (hack/kind/capfilter), that wraps runc and drops the
#     capabilities this machine's bounding set lacks, only when it lacks some: otherwise
#     `docker run --privileged` (which kind needs) fails with "unable to apply caps".
# A laptop with Docker Desktop or a running dockerd never gets here: its engine answers.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
CACHE="${IMAGE_CLONER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/image-cloner}"
dir="$CACHE/docker"
pidfile=/run/image-cloner-dockerd.pid

log() { printf 'docker.sh: %s\n' "$*" >&2; }
die() { printf 'docker.sh: error: %s\n' "$*" >&2; exit 1; }

ours() { # the pid of the dockerd we started, if it still runs
  local pid
  pid=$(cat "$pidfile" 2>/dev/null) || return 1
  [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = dockerd ] && echo "$pid"
}

stop() {
  local pid
  if ! pid=$(ours); then
    log "no dockerd started by this script runs: nothing to stop"
    rm -f "$pidfile"
    return 0
  fi
  log "stopping dockerd (pid $pid, started by this script)"
  kill -TERM "$pid"
  for _ in $(seq 1 60); do
    [ -d "/proc/$pid" ] || break
    sleep 0.5
  done
  if [ -d "/proc/$pid" ]; then
    log "dockerd $pid did not stop in 30s: killing it"
    kill -KILL "$pid" || true
  fi
  rm -f "$pidfile"
}

start() {
  if command -v docker >/dev/null && docker info >/dev/null 2>&1; then
    log "using the Docker engine that answers ($(docker info -f '{{.ServerVersion}}' 2>/dev/null))"
    echo "docker: running"
    return 0
  fi
  local is_root=
  [ "$(id -u 2>/dev/null)" = 0 ] && is_root=1
  if ! command -v docker >/dev/null && { [ -z "$is_root" ] || ! command -v apt-get >/dev/null; }; then
    die "docker not found: install Docker (https://docs.docker.com/engine/install/), or run make e2e, which needs none"
  fi
  if [ -z "$is_root" ]; then
    die "no Docker engine answers (docker info failed) and this is not root: start Docker, or run make e2e, which needs none"
  fi
  if ! command -v dockerd >/dev/null || ! command -v docker >/dev/null; then
    command -v apt-get >/dev/null || die "no Docker engine answers, dockerd is not installed and there is no apt-get to install Debian's docker.io: install Docker"
    log "installing Debian's docker.io with apt-get..."
    local t=$SECONDS
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends docker.io >/dev/null ||
      { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends docker.io >/dev/null; } ||
      die "apt-get install docker.io failed"
    log "docker.io installed in $((SECONDS - t))s"
  fi
  mkdir -p "$dir/data" "$dir/bin"

  # capfilter: rebuilt when its source changes.
  local sum
  sum=$(sha256sum "$root/hack/kind/capfilter/main.go" | cut -c1-16)
  local capfilter="$dir/bin/capfilter-$sum"
  if [ ! -x "$capfilter" ]; then
    log "building capfilter (hack/kind/capfilter)"
    (cd "$root" && CGO_ENABLED=0 go build -trimpath -o "$capfilter" ./hack/kind/capfilter)
  fi
  local runc
  runc=$(command -v runc) || die "runc not found (Debian's docker.io depends on it)"
  cat > "$dir/daemon.json" <<JSON
{
  "data-root": "$dir/data",
  "exec-root": "/run/image-cloner-docker",
  "pidfile": "$pidfile",
  "runtimes": {"capfilter": {"path": "$capfilter"}},
  "default-runtime": "capfilter",
  "log-driver": "json-file",
  "log-opts": {"max-size": "20m", "max-file": "2"}
}
JSON
  log "starting dockerd (data root $dir/data, log $dir/dockerd.log)"
  local t=$SECONDS
  CAPFILTER_RUNC=$runc setsid dockerd --config-file "$dir/daemon.json" >"$dir/dockerd.log" 2>&1 </dev/null &
  for _ in $(seq 1 120); do
    if docker info >/dev/null 2>&1; then
      log "dockerd $(docker info -f '{{.ServerVersion}}') answers after $((SECONDS - t))s (pid $(cat "$pidfile"))"
      echo "docker: started"
      return 0
    fi
    if ! kill -0 $! 2>/dev/null; then
      tail -20 "$dir/dockerd.log" >&2
      die "dockerd exited (log above, all of it in $dir/dockerd.log)"
    fi
    sleep 0.5
  done
  die "dockerd did not answer in 60s: see $dir/dockerd.log"
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  *) die "usage: $0 [start|stop]" ;;
esac
