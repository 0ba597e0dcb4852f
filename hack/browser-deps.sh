#!/usr/bin/env bash
# Installs the headless browser the dashboard's browser test drives: Debian's chromium package,
# at /usr/bin/chromium. It does nothing when chromium is already there. Installing needs root
# (apt-get); without root it says what to run and fails, so that `make test` never skips the
# browser test silently.
#
# Usage: hack/browser-deps.sh
set -euo pipefail

CHROMIUM=/usr/bin/chromium

log() { printf 'browser-deps: %s\n' "$*" >&2; }

if [ -x "$CHROMIUM" ]; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  log "$CHROMIUM is missing and installing it needs root: run 'sudo apt-get update && sudo apt-get install -y chromium'"
  exit 1
fi
command -v apt-get >/dev/null || { log "$CHROMIUM is missing and there is no apt-get: install Chromium so that $CHROMIUM exists"; exit 1; }
log "installing Debian's chromium (once per machine)"
start=$SECONDS
# Several test runs may start at once: one apt at a time.
exec 9>/var/lib/apt/lists/.image-cloner-browser-deps.lock
command -v flock >/dev/null && flock 9
if [ ! -x "$CHROMIUM" ]; then
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
[ -x "$CHROMIUM" ] || { log "apt-get installed chromium but $CHROMIUM is not there"; exit 1; }
log "installed $("$CHROMIUM" --version 2>/dev/null || echo chromium) in $((SECONDS - start))s"
