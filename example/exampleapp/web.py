"""The HTTP backend: run with ``uvicorn exampleapp.web:app --host 127.0.0.1 --port 8000``."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from .health import DISABLED, OK, check_database, check_redis
from .settings import Settings, get_settings

log = logging.getLogger("exampleapp")


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    """Read the settings at startup so a misconfigured release fails fast, before serving."""
    settings = get_settings()
    logging.basicConfig(level=settings.log_level, format="%(levelname)s %(name)s: %(message)s")
    log.info(
        "release %s starting (database: %s, redis: %s)",
        settings.release_id,
        settings.database_url.split(":", 1)[0],  # the scheme only: the URL holds the password
        "enabled" if settings.redis_url else DISABLED,
    )
    yield


app = FastAPI(title="exampleapp", lifespan=lifespan)


async def _bounded(check: Callable[[Settings], str], timeout: float) -> str:
    """Run a blocking check in a thread; a server that hangs mid-answer still times out here."""
    try:
        result: str = await asyncio.wait_for(asyncio.to_thread(check, get_settings()), timeout)
    except TimeoutError:
        return f"timeout after {timeout:g}s"
    return result


@app.get("/health")
async def health() -> JSONResponse:
    """200 when every configured dependency answers, 503 naming the ones that do not."""
    settings = get_settings()
    budget = settings.health_timeout + 1.0
    database, redis = await asyncio.gather(
        _bounded(check_database, budget), _bounded(check_redis, budget)
    )
    healthy = database == OK and redis in (OK, DISABLED)
    if not healthy:
        log.warning("unhealthy: database=%s redis=%s", database, redis)
    body = {
        "status": "healthy" if healthy else "unhealthy",
        "release": settings.release_id,
        "database": database,
        "redis": redis,
    }
    return JSONResponse(body, status_code=200 if healthy else 503)


@app.get("/")
async def index() -> dict[str, object]:
    """Which release serves, and the feature flags it sees (a staged rollout shows up here)."""
    settings = get_settings()
    return {"app": "exampleapp", "release": settings.release_id, "flags": settings.flags}
