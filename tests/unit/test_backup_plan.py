"""The dry run names the backup method the run would pick for the environment's database."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from deploytools.config import ComposeSettings
from deploytools.hosts.local import LocalHost
from deploytools.steps.deploy import Backup
from deploytools.testing import run_context
from tests.support.dbenv import CapturedUi, make_settings

PASSWORD = "Sup3r-s3cret"


@pytest.mark.parametrize(
    ("database", "said"),
    [
        ({}, "by pg_dump custom format into"),
        ({"format": "directory", "jobs": 4}, "by pg_dump directory format with -j 4 into"),
        ({"dump_via_service": "db"}, "by pg_dump custom format in compose service db into"),
    ],
)
def test_the_plan_names_the_backup_method_the_run_picks(
    tmp_path: Path, database: dict[str, Any], said: str
) -> None:
    conf = make_settings(tmp_path, f"postgresql://app:{PASSWORD}@127.0.0.1:5432/app", **database)
    compose = ComposeSettings(project_name="shop", files=["docker-compose.yml"])
    conf = conf.model_copy(update={"runtime": "compose", "compose": compose})
    host = LocalHost()  # nothing runs: the plan only names what the run would do
    ctx = run_context(conf, host, CapturedUi(), journal_dir=str(tmp_path / "state"))
    [line] = Backup().plan(ctx)
    assert said in line and PASSWORD not in line, line
