"""A scenario class (``incremental = True``) stops at its first failing step.

Its tests are the steps of one story on one stack (deploy, deploy again, roll back, ...): once a
step fails, the later ones would only report the same failure again, so they are xfailed with
the name of the step that broke.
"""

from __future__ import annotations

from typing import Any

import pytest


def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> None:
    cls = getattr(item, "cls", None)
    if getattr(cls, "incremental", False) and call.excinfo is not None and cls is not None:
        if not call.excinfo.errisinstance(pytest.xfail.Exception):
            cls.failed_step = item.name


def pytest_runtest_setup(item: pytest.Item) -> None:
    cls = getattr(item, "cls", None)
    failed = getattr(cls, "failed_step", None) if getattr(cls, "incremental", False) else None
    if failed:
        pytest.xfail(f"an earlier step of the scenario failed: {failed}")
