"""The HTTP backend: run with ``uvicorn exampleapp.web:app --host 127.0.0.1 --port 8000``."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

from . import metrics
from .features import LLM_SUMMARIES, NEW_CHECKOUT, checkout_for, summary_for
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


@app.middleware("http")
async def measure(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    """Count and time every answer but the scrapes; the route's template is the label (never
    the raw path: one series per route, whatever the ids in it)."""
    started = time.perf_counter()
    status = 500  # an exception escaping the app is answered 500 by the server
    try:
        response = await call_next(request)
        status = response.status_code
        return response
    finally:
        route = getattr(request.scope.get("route"), "path", "unmatched")
        if route != "/metrics":
            metrics.observe(request.method, route, status, time.perf_counter() - started)


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
    """Which release serves, the flag file it reads, and the FEATURE_* values it falls back to
    for a flag that file lacks."""
    settings = get_settings()
    return {
        "app": "exampleapp",
        "release": settings.release_id,
        "flags_file": settings.flags_file or None,
        "flags": settings.flags,
    }


@app.get("/checkout")
async def checkout(user: str | None = None) -> dict[str, object]:
    """Which checkout ``user`` gets (the ``new_checkout`` flag, bucketed by the user id);
    without a user, the flag's default."""
    return {"user": user, "flag": NEW_CHECKOUT, "checkout": checkout_for(user)}


@app.get("/summary")
async def summary(user: str | None = None) -> dict[str, object]:
    """How ``user`` gets long threads summed up (the ``llm_summaries`` flag)."""
    return {"user": user, "flag": LLM_SUMMARIES, "summary": summary_for(user)}


@app.get("/metrics")
async def prometheus_metrics() -> Response:
    """Prometheus' text format (see metrics.py for what a stage guard reads)."""
    return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
