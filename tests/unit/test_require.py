"""A missing server part skips a test on a laptop and fails it in CI."""

from __future__ import annotations

import pytest

from tests.support.require import REQUIRE_ENV, require


def test_present_part_does_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(REQUIRE_ENV, "1")
    require(True, "redis-server", "apt-get install -y redis-server")


def test_missing_part_skips_with_the_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(REQUIRE_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception, match="redis-server missing: apt-get install"):
        require(False, "redis-server", "apt-get install -y redis-server")


def test_missing_part_fails_when_integration_is_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(REQUIRE_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match="redis-server missing: apt-get install"):
        require(False, "redis-server", "apt-get install -y redis-server")
