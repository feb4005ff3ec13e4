#!/usr/bin/env bash
# Rolling back as many teams do today: check the old tag out beside the working tree, rebuild
# its image, restart, and let compose wait for the healthchecks. The baseline that
# bench/deploy_rollback.py times against `invoke rollback` (which reuses the tag's image).
#
# Run from the project root, with compose's own variables naming the stack:
#   ENV_FILE=$PWD/config/prod.env COMPOSE_PROJECT_NAME=exampleapp \
#   COMPOSE_FILE=example/docker-compose.prod.yml bash bench/baseline_rollback.sh TAG
# ENV_FILE must be absolute (the checkout has no env file); the image is tagged with TAG.
# NO_CACHE=1 builds without the layer cache: a host whose cache no longer holds the tag's layers.
set -euo pipefail

: "${ENV_FILE:?set ENV_FILE to the absolute path of the env file}"
: "${COMPOSE_PROJECT_NAME:?set COMPOSE_PROJECT_NAME to the compose project}"
: "${COMPOSE_FILE:?set COMPOSE_FILE to the compose file(s), separated by ':'}"
tag=${1:?usage: baseline_rollback.sh TAG}
WAIT_TIMEOUT=${WAIT_TIMEOUT:-180}
NO_CACHE=${NO_CACHE:-}

scratch=$(mktemp -d)
tree=$scratch/src
cleanup() {
    git worktree remove --force "$tree" 2>/dev/null || true
    rmdir "$scratch"
}
trap cleanup EXIT

echo "[1/3] checkout $tag"
git worktree add --quiet --detach "$tree" "$tag"
export RELEASE_ID=$tag
(
    cd "$tree"  # COMPOSE_FILE is relative: the checkout's compose files and build context
    echo "[2/3] build"
    docker compose build ${NO_CACHE:+--no-cache}
    echo "[3/3] start and wait for the healthchecks"
    docker compose up -d --wait --wait-timeout "$WAIT_TIMEOUT"
)
echo "rolled back to $tag"
