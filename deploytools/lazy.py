"""Modules imported on first attribute access, so that ``invoke --list`` imports almost nothing.

Task modules bind their heavy dependencies (pydantic settings, alembic, httpx, celery, ...) with
``lazy()`` under ``if not TYPE_CHECKING`` and import them normally for the type checker.

Not ``importlib.util.LazyLoader``: it marks a module loaded before running it, so an import cut
short by Ctrl-C leaves a half-made module behind for good, and the undo that follows meets
``AttributeError``s. Here the first use is an ordinary import, which Python forgets when it
fails, so the next use simply imports again.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType
from typing import Any


class _Lazy(ModuleType):
    """Stands for the module ``__name__`` until an attribute of it is read."""

    def __getattr__(self, attr: str) -> Any:
        return getattr(importlib.import_module(self.__name__), attr)


def lazy(name: str) -> ModuleType:
    """``import name``, deferred until an attribute of the module is first used."""
    if importlib.util.find_spec(name) is None:
        raise ModuleNotFoundError(name)
    return _Lazy(name)
