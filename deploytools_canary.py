"""The one line an app adds so that deploytools can ask each Celery worker which release it runs:

    from deploytools_canary import register_canary; register_canary(app)

The app imports this module and nothing else of deploytools: it uses the standard library and
the app's own celery only, so it pulls none of deploytools' dependencies into the app (install
the distribution with ``pip install --no-deps deploytools`` in the app's environment, or copy
this file). Without it, deploytools still checks the workers: by when they started.
"""

from __future__ import annotations

import os
import socket
from typing import Any

CANARY_TASK = "deploytools.canary"  # what deploytools sends (celery.canary_task)


def register_canary(app: Any, name: str = CANARY_TASK) -> Any:
    """Register the canary task on ``app`` (a ``celery.Celery``) and return it.

    The task answers with the ``RELEASE_ID`` that deploytools put in the worker's environment.
    """

    @app.task(name=name, bind=True)  # type: ignore[untyped-decorator]  # celery has no types
    def canary(self: Any) -> dict[str, str]:
        return {
            "release": os.environ.get("RELEASE_ID", ""),
            "hostname": self.request.hostname or socket.gethostname(),
        }

    return canary
