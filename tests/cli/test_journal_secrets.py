"""``history`` and ``releases`` mask the env file's secrets in a journal that holds one.

A journal written before secrets were masked in all their forms may hold one JSON-escaped (an
HTTP body quoted in an error): shown again, with ``--json`` or as a table, it is masked.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.cli import TempProject
from tests.support.secretforms import forms, leaked

SECRET = "Qw7\"Rt\\9'Zx${Hm4}-Kp2-Vb8nLc5_Jd3Fg6Yh0"


@pytest.fixture
def project(tmp_path: Path) -> TempProject:
    project = TempProject(tmp_path)
    project.write_env("local", f"SECRET_KEY={json.dumps(SECRET)}\nPORT=8000\n")
    body = json.dumps({"detail": SECRET})
    records = [
        {"at": "2025-05-01T12:00:00.000000Z", "kind": "step.failed", "step": "wait healthy",
         "error": f"backend not healthy: HTTP 503 (expected 200): {body}"},
        {"at": "2025-05-01T12:00:01.000000Z", "kind": "release", "tag": "release-local-1",
         "result": "failed", "error": f"HTTP 503: {body}"},
    ]  # fmt: skip
    journal = project.file(".deploytools/local/journal.jsonl")
    journal.parent.mkdir(parents=True)
    journal.write_text("".join(json.dumps(r) + "\n" for r in records))
    assert forms(SECRET)["json inside json"] in journal.read_text()  # as an older version did
    return project


@pytest.mark.parametrize("args", [["history", "--json"], ["history"], ["releases", "--json"]])
def test_a_secret_in_an_old_journal_is_shown_masked(project: TempProject, args: list[str]) -> None:
    run = project.invoke(*args, "--env", "local")
    assert run.returncode == 0, run.output
    assert "release-local-1" in run.stdout
    assert leaked(SECRET, run.output) == []
    if "--json" in args:
        assert "***" in run.stdout and json.loads(run.stdout)
