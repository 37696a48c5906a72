#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# `make test` after setup: lint, then the unit, privileged and e2e tiers, stopping at the first
# that fails (its exit status is this script's).
#
# The agent's container image (scripts/build-image.sh: pip wheels, then apt in `docker build`,
# minutes on a fresh host and mostly waiting on the network and dpkg) builds in the background
# from the start, overlapping lint, unit and privileged. tests/e2e/test_image.py waits for it
# through RISKGUARD_IMAGE_BUILD, a directory of this run under the checkout:
#   lock  held by the build while it runs (flock), so a waiter never outlives a dead build
#   rc    the build's exit status, written before the lock is released
#   tag   the image tag it printed;  log  its stderr (what test_image shows when it failed)
# A run of its own per `make test` (.test-runs/image.XXXXXX), so a concurrent run, here or in
# another checkout, never reads this one's build. The build never outlives this script: it is
# stopped when a tier fails, on Ctrl-C or SIGTERM, and waited for before the e2e tier (whose
# daemons watch every container on the host, the build's included).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv
PYTEST=("$VENV/bin/pytest" -q -p no:cacheprovider)
IMAGE_BUILD_TIMEOUT=${IMAGE_BUILD_TIMEOUT:-1500}  # s from the start: a fresh host builds in minutes
log() { printf 'run-tests: %s\n' "$*" >&2; }

mkdir -p .test-runs
find .test-runs -mindepth 1 -maxdepth 1 -name 'image.*' -mtime +2 -exec rm -rf {} + 2>/dev/null || true
build=$(mktemp -d "$PWD/.test-runs/image.XXXXXX")
bg=

# TERM to the build and everything it started (pip, docker; dockerd cancels a build whose client
# goes away), children first so none is re-parented out of reach.
kill_tree() {
  local child
  for child in $(pgrep -P "$1" 2>/dev/null); do kill_tree "$child"; done
  kill -TERM "$1" 2>/dev/null || true
}
stop_build() {
  if [ -n "$bg" ] && [ ! -e "$build/rc" ]; then
    log "stopping the background image build"
    kill_tree "$bg"
  fi
  if [ -n "$bg" ]; then wait "$bg" 2>/dev/null || true; fi
  bg=  # reaped: its pid may be reused
}
trap stop_build EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

exec 9>"$build/lock"
flock 9  # taken before the build starts, so a waiter can never find it unlocked too early
# nice: the tiers it overlaps come first (the apt steps run under dockerd, at its priority).
nice -n 10 bash -c '
  rc=0
  bash scripts/build-image.sh >"$1/tag" 2>"$1/log" 9>&- || rc=$?
  echo "$rc" >"$1/rc.part" && mv "$1/rc.part" "$1/rc"
' build-image "$build" &
bg=$!
exec 9>&-  # the background job holds the lock alone now; it is released when that job ends
export RISKGUARD_IMAGE_BUILD=$build
log "building the agent image in the background (log: $build/log)"

step() { printf '%s\n' "$*"; "$@"; }  # each tier's command, as make would echo it
step "$VENV/bin/ruff" check agent tests scripts
step "$VENV/bin/mypy"
step "${PYTEST[@]}" -n 2 tests/unit  # pytest-xdist: the tier mostly waits (threads, children, sockets)
step "${PYTEST[@]}" tests/privileged
# The e2e tier starts once the build is over (its result is test_image's to report); a build
# that still runs IMAGE_BUILD_TIMEOUT s after it started is stopped, and test_image says so.
[ -e "$build/rc" ] || log "waiting for the background image build before the e2e tier"
while [ ! -e "$build/rc" ] && kill -0 "$bg" 2>/dev/null && [ "$SECONDS" -lt "$IMAGE_BUILD_TIMEOUT" ]; do sleep 1; done
if [ ! -e "$build/rc" ] && kill -0 "$bg" 2>/dev/null; then
  echo "run-tests: still building ${SECONDS}s after it started: stopped (IMAGE_BUILD_TIMEOUT)" >>"$build/log"
fi
stop_build
# Two lanes (tests/e2e/conftest.py): the five-minute benign corpus beside everything else.
step "${PYTEST[@]}" -n 2 --dist loadgroup tests/e2e
