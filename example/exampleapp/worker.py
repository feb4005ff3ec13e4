"""The Celery worker and its tasks: ``celery -A exampleapp.worker worker --loglevel INFO``."""

from __future__ import annotations

import socket
from typing import Any

from celery import Task

from .celeryconf import make_celery
from .features import checkout_for
from .settings import get_settings

app = make_celery(get_settings())


@app.task(name="exampleapp.add")  # type: ignore[untyped-decorator]  # celery has no types
def add(x: int, y: int) -> int:
    """A real task to prove that work round-trips through the broker and result backend."""
    return x + y


@app.task(name="exampleapp.checkout_variant")  # type: ignore[untyped-decorator]
def checkout_variant(user: str | None) -> str:
    """The checkout ``user`` gets, decided in the worker process (its own flag client, the same
    file): "new" or "classic", as GET /checkout answers."""
    return checkout_for(user)


@app.task(name="deploytools.canary", bind=True)  # type: ignore[untyped-decorator]
def canary(self: Task[Any, Any]) -> dict[str, str]:
    """Say which release this worker runs; deploytools sends it to catch a stale worker.

    What ``deploytools_canary.register_canary(app)`` registers, written out: the image has
    deploytools' flag client only, installed without its dependencies."""
    return {
        "release": get_settings().release_id,
        "hostname": self.request.hostname or socket.gethostname(),
    }
