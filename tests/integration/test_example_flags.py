"""The example app's flags as real processes read them: GET /checkout (uvicorn) and the
``exampleapp.checkout_variant`` task (a Celery worker on Redis) answer from the flagd state
file deploytools writes, follow an atomic rewrite without a restart, and bucket 10,000 keys as
the client computes over the same file; GET /metrics parses with prometheus_client's parser.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from deploytools.flagclient import FlagClient
from deploytools.flags.bucketing import flag_bucket
from deploytools.flags.plan import load_plan
from tests.support.example import ROOT, app_env, running_web, running_worker
from tests.support.exampleflags import FLAG, SEEN_WITHIN, checkout, set_flag, wait_for
from tests.support.procs import free_port

pytestmark = pytest.mark.integration

KEYS = [f"user-{i}" for i in range(10_000)]


def witness(percent: int, *, inside: bool) -> str:
    """A key whose answer at ``percent`` is ``inside``."""
    return next(k for k in KEYS if (flag_bucket(FLAG, k) < percent) is inside)


def settled(web: str, percent: int) -> None:
    """Wait until the app answers as at ``percent``, whatever it answered before (the module's
    tests share one app): a key of bucket ``percent - 1`` gets the new checkout and one of
    bucket ``percent`` the classic, as at no other percentage. Waiting for one key inside
    returned at once when an earlier test had left the flag higher (a CI run failed on it)."""
    below = [k for k in KEYS if flag_bucket(FLAG, k) == percent - 1][:1]  # none at 0
    at = [k for k in KEYS if flag_bucket(FLAG, k) == percent][:1]  # none at 100
    expected = " ".join(["new"] * len(below) + ["classic"] * len(at))
    wait_for(lambda: " ".join(checkout(web, k) for k in below + at), expected)


def samples(base_url: str) -> dict[str, list[Any]]:
    """/metrics through prometheus_client's parser: sample name -> samples."""
    response = httpx.get(f"{base_url}/metrics", timeout=10.0)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    found: dict[str, list[Any]] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append(sample)
    return found


def total(found: dict[str, list[Any]], name: str, **labels: str) -> float:
    return sum(s.value for s in found.get(name, []) if labels.items() <= s.labels.items())


@pytest.fixture(scope="module")
def flags_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("flags")
    return directory / "flags.json"


@pytest.fixture(scope="module")
def web(flags_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The backend in local mode, reading ``flags_file``; yields its base URL."""
    workdir = tmp_path_factory.mktemp("flags-web")
    set_flag(flags_file, 0)
    env = app_env(
        workdir,
        DATABASE_URL=f"sqlite:///{workdir / 'app.sqlite3'}",
        DEPLOYTOOLS_FLAGS_FILE=str(flags_file),
        FEATURE_NEW_CHECKOUT="on",  # the fallback: never used while the file has the flag
    )
    with running_web(env, workdir) as (base_url, _log):
        yield base_url


def test_checkout_follows_a_rewrite_without_a_restart(web: str, flags_file: Path) -> None:
    set_flag(flags_file, 10)
    inside, outside = witness(10, inside=True), witness(10, inside=False)
    settled(web, 10)
    assert (checkout(web, inside), checkout(web, outside)) == ("new", "classic")
    before = total(samples(web), "http_requests_total", route="/checkout")

    set_flag(flags_file, 0)  # off: the kill switch
    seconds = wait_for(lambda: checkout(web, inside), "classic")
    assert seconds < SEEN_WITHIN
    set_flag(flags_file, 100)
    wait_for(lambda: checkout(web, outside), "new")
    # The same process answered throughout: its request counter went on from where it was.
    assert total(samples(web), "http_requests_total", route="/checkout") > before
    index = httpx.get(web, timeout=10.0).json()
    assert index["flags_file"] == str(flags_file) and index["flags"] == {FLAG: 100}


def test_ten_percent_of_ten_thousand_keys_nested_in_fifty(web: str, flags_file: Path) -> None:
    set_flag(flags_file, 10)
    client = FlagClient(flags_file, environ={})
    at_ten = {k for k in KEYS if client.is_enabled(FLAG, k)}
    assert 0.08 <= len(at_ten) / len(KEYS) <= 0.12, len(at_ten)
    settled(web, 10)
    sample = KEYS[::100]  # 100 keys through the endpoint
    assert [checkout(web, k) for k in sample] == [
        "new" if k in at_ten else "classic" for k in sample
    ]

    set_flag(flags_file, 50)
    client = FlagClient(flags_file, environ={})
    at_fifty = {k for k in KEYS if client.is_enabled(FLAG, k)}
    assert 0.48 <= len(at_fifty) / len(KEYS) <= 0.52, len(at_fifty)
    assert at_ten <= at_fifty  # nobody who had it loses it
    grown = next(k for k in KEYS if k in at_fifty and k not in at_ten)
    wait_for(lambda: checkout(web, grown), "new")
    assert [checkout(web, k) for k in sample] == [
        "new" if k in at_fifty else "classic" for k in sample
    ]


def test_worker_task_follows_a_rewrite(
    flags_file: Path, redis_server: Any, tmp_path: Path
) -> None:
    set_flag(flags_file, 10)
    env = app_env(
        tmp_path,
        DATABASE_URL=f"sqlite:///{tmp_path / 'app.sqlite3'}",
        REDIS_URL=redis_server.url(7),
        DEPLOYTOOLS_FLAGS_FILE=str(flags_file),
    )
    inside, outside = witness(10, inside=True), witness(10, inside=False)
    with running_worker(env, tmp_path, "flags") as client:

        def variant(user: str) -> str:
            return str(client.send_task("exampleapp.checkout_variant", args=(user,)).get(20))

        assert (variant(inside), variant(outside)) == ("new", "classic")
        set_flag(flags_file, 0)
        wait_for(lambda: variant(inside), "classic")
        set_flag(flags_file, 100)
        wait_for(lambda: variant(outside), "new")


def test_metrics_parse_and_count_errors(tmp_path: Path) -> None:
    """A backend whose database is down answers /health 503: the error counter and ratio say
    so; the latency histogram and its p95 gauge are there for a stage's guards."""
    url = f"postgresql://app:pw@127.0.0.1:{free_port()}/app"  # nothing listens there
    env = app_env(tmp_path, DATABASE_URL=url, HEALTH_TIMEOUT="1")
    with running_web(env, tmp_path) as (base_url, _log):
        for _ in range(3):
            assert httpx.get(f"{base_url}/health", timeout=10.0).status_code == 503
        assert checkout(base_url, "user-1") == "classic"  # no file, no variable: off
        found = samples(base_url)
        again = samples(base_url)  # a scrape is not counted

    assert total(found, "http_requests_total", route="/health", status="503") == 3
    assert total(found, "http_requests_total", route="/checkout", status="200") == 1
    assert total(found, "http_request_errors_total") == 3
    assert total(found, "http_requests_recent") == 4
    assert total(found, "http_request_errors_ratio") == pytest.approx(0.75)
    assert total(found, "http_request_duration_seconds_count", route="/health") == 3
    assert total(found, "http_request_duration_seconds_bucket", route="/health", le="+Inf") == 3
    assert 0 < total(found, "http_request_duration_p95_seconds") < SEEN_WITHIN
    assert total(again, "http_requests_total") == total(found, "http_requests_total")
    # Every metric the example plan's guards read is one the app exposes.
    plan = load_plan(ROOT / "config" / "flags.toml")
    guarded = {g.metric for stage in plan.stages.values() for g in stage.guards if g.metric}
    assert guarded and guarded <= set(found)
