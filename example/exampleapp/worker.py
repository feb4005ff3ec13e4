"""The Celery worker and its tasks: ``celery -A exampleapp.worker worker --loglevel INFO``."""

from __future__ import annotations

import socket
from typing import Any

from celery import Task

from .celeryconf import make_celery
from .settings import get_settings

app = make_celery(get_settings())


@app.task(name="exampleapp.add")  # type: ignore[untyped-decorator]  # celery has no types
def add(x: int, y: int) -> int:
    """A real task to prove that work round-trips through the broker and result backend."""
    return x + y


@app.task(name="deploytools.canary", bind=True)  # type: ignore[untyped-decorator]
def canary(self: Task[Any, Any]) -> dict[str, str]:
    """Say which release this worker runs; deploytools sends it to catch a stale worker.

    What ``deploytools_canary.register_canary(app)`` registers, written out so that the
    example's image needs nothing of deploytools."""
    return {
        "release": get_settings().release_id,
        "hostname": self.request.hostname or socket.gethostname(),
    }
