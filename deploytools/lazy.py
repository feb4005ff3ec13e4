"""Modules loaded on first attribute access, so that ``invoke --list`` imports almost nothing.

Task modules bind their heavy dependencies (pydantic settings, alembic, httpx, celery, ...) with
``lazy()`` under ``if not TYPE_CHECKING`` and import them normally for the type checker.
"""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType


def lazy(name: str) -> ModuleType:
    """``import name``, deferred until an attribute of the module is first used."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ModuleNotFoundError(name)
    loader = importlib.util.LazyLoader(spec.loader)
    spec.loader = loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    loader.exec_module(module)
    return module
