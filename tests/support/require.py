"""Skip a test whose real part is missing, or fail it when CI says every part must be there."""

from __future__ import annotations

import os

import pytest

REQUIRE_ENV = "DEPLOYTOOLS_REQUIRE_INTEGRATION"


def require(condition: bool, what: str, hint: str) -> None:
    """Skip (or fail under ``DEPLOYTOOLS_REQUIRE_INTEGRATION=1``) unless ``condition`` holds."""
    if condition:
        return
    message = f"{what} missing: {hint}"
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)
