"""Dependency checks behind GET /health, each bounded by short connect and socket timeouts.

Plain blocking functions (web.py runs them in threads under an overall deadline). Error texts
are scrubbed of passwords before they leave this module.
"""

from __future__ import annotations

from functools import lru_cache

from redis import Redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.engine import Engine

from .settings import Settings

OK = "ok"
DISABLED = "disabled"


@lru_cache(maxsize=4)
def _engine(database_url: str, timeout: float) -> Engine:
    backend = make_url(database_url).get_backend_name()
    connect_args: dict[str, object] = {}
    if backend == "postgresql":
        # libpq counts whole seconds and treats anything below 2 as 2.
        connect_args = {"connect_timeout": max(2, round(timeout))}
    elif backend == "sqlite":
        connect_args = {"timeout": timeout}
    # pre_ping replaces connections that died with a restarted server instead of failing once.
    return create_engine(database_url, connect_args=connect_args, pool_pre_ping=True)


@lru_cache(maxsize=4)
def _redis(redis_url: str, timeout: float) -> Redis:
    return Redis.from_url(
        redis_url,
        socket_connect_timeout=timeout,
        socket_timeout=timeout,
        retry=Retry(NoBackoff(), 0),  # a health check reports; it does not retry
    )


def _describe(exc: BaseException) -> str:
    """One line naming the failure: the driver's own message, not SQLAlchemy's SQL dump."""
    cause = getattr(exc, "orig", None) or exc
    lines = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {lines[0] if lines else 'no message'}"


def check_database(settings: Settings) -> str:
    try:
        with _engine(settings.database_url, settings.health_timeout).connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        return settings.redact(_describe(exc))
    return OK


def check_redis(settings: Settings) -> str:
    if not settings.redis_url:
        return DISABLED
    try:
        _redis(settings.redis_url, settings.health_timeout).ping()
    except Exception as exc:
        return settings.redact(_describe(exc))
    return OK
