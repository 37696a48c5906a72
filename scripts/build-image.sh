#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Builds the riskguard-agent container image from this checkout, without a container registry:
#   scripts/build-image.sh              riskguard-agent:<version> and riskguard-agent:<version>-<tree>
#   scripts/build-image.sh --print-tag  the tree tag only (what a build would produce), no build
#   FORCE=1 scripts/build-image.sh      rebuild even if the image of this tree exists
#   EXTRAS=kubernetes,gmp ...           pip extras in the image (default: kubernetes)
#   BASE_IMAGE=... ...                  a local Debian 12 image (default riskguard-test/debian,
#                                       which scripts/setup-host.sh imports from a debootstrap rootfs)
# <tree> is a hash of everything that goes into the image (agent/, probes/, config/, pyproject,
# Dockerfile, this script), so an unchanged tree is not rebuilt. The wheels of the agent and its
# dependencies are built here with the host's pip (its configured index), so the Docker build
# itself only reaches Debian's mirror (apt).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
BASE_IMAGE=${BASE_IMAGE:-riskguard-test/debian}
EXTRAS=${EXTRAS:-kubernetes}
PY=${PY:-/usr/bin/python3}
log() { printf 'build-image: %s\n' "$*" >&2; }

VERSION=$("$PY" -c 'import tomllib; print(tomllib.load(open("pyproject.toml","rb"))["project"]["version"])')
# Tracked and untracked-but-not-ignored files of the image's inputs, hashed by path and content.
TREE=$( { echo "extras=$EXTRAS base=$BASE_IMAGE"
          git ls-files -z -c -o --exclude-standard -- agent probes config pyproject.toml Dockerfile \
            scripts/build-image.sh scripts/setup-host.sh README.md \
            | sort -z | xargs -0 sha256sum; } | sha256sum | cut -c1-12)
TAG="riskguard-agent:$VERSION-$TREE"
if [ "${1:-}" = "--print-tag" ]; then echo "$TAG"; exit 0; fi

if [ "${FORCE:-0}" != 1 ] && docker image inspect "$TAG" >/dev/null 2>&1; then
  docker tag "$TAG" "riskguard-agent:$VERSION"
  log "$TAG exists (same tree): not rebuilt"
  echo "$TAG"; exit 0
fi
if ! docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
  log "$BASE_IMAGE is missing: scripts/setup-host.sh imports it"
  bash scripts/setup-host.sh >&2
fi

ctx=$(mktemp -d /tmp/riskguard-image.XXXXXX)
trap 'rm -rf "$ctx"' EXIT
trap 'exit 143' TERM  # `make test` stops a background build this way: the EXIT trap still cleans up
trap 'exit 130' INT
# The agent's wheel is built from a copy of its (hashed) sources, not in the checkout: pip's
# in-tree build would write build/ and riskguard_agent.egg-info there while the tests run from it
# (`make test` builds the image in the background, scripts/run-tests.sh), and two builds at once
# would share them.
mkdir -p "$ctx/src"
git ls-files -z -c -o --exclude-standard -- agent pyproject.toml README.md | xargs -0 cp --parents -t "$ctx/src"
log "building wheels (agent $VERSION + dependencies) in $ctx/wheels"
"$PY" -m venv "$ctx/pyenv"
"$ctx/pyenv/bin/pip" wheel -q --wheel-dir "$ctx/wheels" "$ctx/src[$EXTRAS]" >&2
rm -rf "$ctx/pyenv" "$ctx/src"
mkdir -p "$ctx/share"
cp -r config probes "$ctx/share/"
cp config/agent.yaml "$ctx/agent.yaml"
cp scripts/setup-host.sh "$ctx/setup-host.sh"
cp Dockerfile "$ctx/Dockerfile"

log "docker build $TAG from $BASE_IMAGE"
DOCKER_BUILDKIT=0 docker build -q --force-rm --network host \
  --build-arg BASE_IMAGE="$BASE_IMAGE" --build-arg VERSION="$VERSION" \
  --build-arg TREE_HASH="$TREE" --build-arg EXTRAS="$EXTRAS" \
  -t "$TAG" -t "riskguard-agent:$VERSION" "$ctx" >&2
log "built $TAG ($(docker image inspect -f '{{.Size}}' "$TAG" | awk '{printf "%.0f MB", $1/1e6}'))"
echo "$TAG"
