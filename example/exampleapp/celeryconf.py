"""The Celery application factory, apart from the tasks so a client can build one from any env.

With Redis configured the broker and result backend are Redis; without it they are the
filesystem broker and file result backend under CELERY_FS_ROOT, so local mode needs no server.
"""

from __future__ import annotations

from celery import Celery

from .settings import Settings


def make_celery(settings: Settings) -> Celery:
    """The app the worker runs; a client (a test, a script) builds its own from the same env."""
    celery = Celery("exampleapp", broker=settings.broker_url, backend=settings.result_backend)
    celery.conf.update(
        # Production defaults: a task is acknowledged only once done, so a worker killed by a
        # deploy hands its task to the next worker instead of losing it.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_soft_time_limit=240,
        task_time_limit=300,
        worker_concurrency=settings.worker_concurrency,  # `--concurrency` on the command line wins
        result_expires=3600,
        broker_connection_retry_on_startup=True,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
    )
    if settings.uses_filesystem_broker:
        root = settings.celery_fs_root
        folders = {
            "data_folder_in": root / "queue",
            "data_folder_out": root / "queue",  # one folder: producers and consumers share it
            "control_folder": root / "control",  # needed by ping/inspect (broadcast)
        }
        for folder in (*folders.values(), root / "results"):
            folder.mkdir(parents=True, exist_ok=True)
        celery.conf.broker_transport_options = {k: str(v) for k, v in folders.items()}
    return celery
