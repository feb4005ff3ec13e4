"""The trial's project as it arrives, before deploytools: ``rootproject``'s code and alembic,
a ``docker-compose.yml`` + ``docker-compose.prod.yml`` (web on uvicorn, a Celery worker, db,
redis) and a ``.env.example``, and no ``tasks.py`` nor ``config/``: ``invoke init``'s input."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.support.cli import TempProject
from tests.support.rootproject import ENV_PY, root_project

COMPOSE = """\
services:
  web:
    build: .
    command: uvicorn shop.main:app --host 0.0.0.0 --port 8000
    env_file: .env
    ports:
      - "${PORT:-8000}:8000"
    depends_on:
      db:
        condition: service_healthy
  worker:
    build: .
    command: ["celery", "-A", "app.worker", "worker", "--loglevel", "INFO"]
    env_file: .env
    environment:
      CELERY_BROKER_URL: ${CELERY_BROKER_URL}
  db:
    image: postgres:16
    environment:
      POSTGRES_PASSWORD: ${POSTGRES_PASSWORD}
    healthcheck:
      test: ["CMD", "pg_isready"]
  redis:
    image: redis:7
"""
COMPOSE_PROD = """\
services:
  web:
    restart: unless-stopped
    healthcheck:
      test: ["CMD", "curl", "-fsS", "http://127.0.0.1:8000/healthz"]
  worker:
    restart: unless-stopped
"""
ENV_EXAMPLE = """\
DATABASE_URL=postgresql+asyncpg://shop:shop@db:5432/shop
SECRET_KEY=dev-secret
PORT=8000
"""


def compose_project(path: Path) -> TempProject:
    """The project in ``path``, with no deploytools file; ``TempProject.invoke`` still runs
    invoke there (its ``tasks.py`` is removed: the test writes it or ``init`` does)."""
    project = root_project(path)
    shutil.rmtree(path / "config")
    (path / "tasks.py").unlink()
    for name, text in {
        "docker-compose.yml": COMPOSE,
        "docker-compose.prod.yml": COMPOSE_PROD,
        ".env.example": ENV_EXAMPLE,
        ".gitignore": ".env\nvar/\n",
        "alembic/env.py": ENV_PY,
        ".env": "DATABASE_URL=postgresql://shop:RealPassw0rd-9xq@db/shop\nSECRET_KEY=s3-real\n",
    }.items():
        (path / name).write_text(text)
    return project
