#!/usr/bin/env bash
# The deploy script many teams have today: the baseline that bench/deploy_rollback.py times
# against `invoke deploy`. It does the same work (dump, migrate, build, restart) but waits by
# sleeping fixed intervals instead of watching health: SLEEP_APP seconds for the backend, one
# curl of /health, then SLEEP_WORKER seconds for the Celery worker, which it never checks. No
# lock, no verified backup, no undo, no release record.
#
# Run from the project root, with compose's own variables naming the stack:
#   ENV_FILE=$PWD/config/prod.env COMPOSE_PROJECT_NAME=exampleapp \
#   COMPOSE_FILE=example/docker-compose.prod.yml bash bench/baseline_deploy.sh
# ENV_FILE holds DATABASE_URL and PORT (it is sourced, as such scripts do); the release id is
# the commit's short sha.
set -euo pipefail

: "${ENV_FILE:?set ENV_FILE to the env file (DATABASE_URL, PORT)}"
: "${COMPOSE_PROJECT_NAME:?set COMPOSE_PROJECT_NAME to the compose project}"
: "${COMPOSE_FILE:?set COMPOSE_FILE to the compose file(s), separated by ':'}"
SLEEP_APP=${SLEEP_APP:-20}
SLEEP_WORKER=${SLEEP_WORKER:-10}

set -a
# shellcheck disable=SC1090
. "$ENV_FILE"
set +a
RELEASE_ID=$(git rev-parse --short HEAD)
export RELEASE_ID

echo "[1/5] backup"
mkdir -p backups/baseline
pg_dump --format=custom --file="backups/baseline/$(date -u +%Y%m%dT%H%M%SZ)-$RELEASE_ID.dump" \
    --dbname="${DATABASE_URL/+psycopg/}"

echo "[2/5] migrate"
alembic -c example/alembic.ini upgrade head

echo "[3/5] build"
docker compose build

echo "[4/5] start"
docker compose up -d

echo "[5/5] wait ${SLEEP_APP}s for the app, ${SLEEP_WORKER}s for the worker"
sleep "$SLEEP_APP"
curl -fsS --max-time 5 "http://127.0.0.1:${PORT}/health" >/dev/null
sleep "$SLEEP_WORKER"
echo "deployed $RELEASE_ID"
