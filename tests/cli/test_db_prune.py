"""db.prune through the real invoke CLI, on backups and a journal as deploys leave them."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.backups import numbered_backup
from tests.support.cli import TempProject

RETENTION = 7  # database.retention of the local environment in config/deploy.toml


def take_backup(project: TempProject, n: int) -> str:
    """Backup number ``n`` of the local environment (manifest and archive), as db.backup does."""
    manifest = numbered_backup("local", n)
    directory = project.file("backups/local")
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{manifest.id}.json").write_bytes(manifest.to_json())
    (directory / manifest.archive).write_bytes(b"x")
    return manifest.id


def record_releases(project: TempProject, releases: list[tuple[str, str, str]]) -> None:
    """Release records ``(tag, result, backup id)`` in the environment's journal."""
    journal = project.file(".deploytools/local/journal.jsonl")
    journal.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        {"kind": "release", "action": "deploy", "tag": tag, "result": result, "backup": backup}
        for tag, result, backup in releases
    ]
    journal.write_text("".join(json.dumps(line) + "\n" for line in lines))


def test_prune_dry_run_keeps_the_good_releases_backups_and_the_newest_only(
    tmp_path: Path,
) -> None:
    project = TempProject(tmp_path)
    project.write_env("local", "ENVIRONMENT=development\n")
    good = [take_backup(project, n) for n in (1, 2, 3)]
    failed = [take_backup(project, n) for n in range(10, 22)]  # twelve failed deploys
    record_releases(
        project,
        [(f"good{i}", "ok", b) for i, b in enumerate(good)]
        + [(f"bad{i}", "failed", b) for i, b in enumerate(failed)],
    )
    before = project.snapshot()

    run = project.invoke("db.prune", "--env", "local", "--dry-run", "--json")
    assert run.returncode == 0, run.output
    plan = json.loads(run.stdout)
    assert plan["dry_run"] is True
    assert sorted(plan["keep"]) == sorted(good + failed[-RETENTION:])
    assert plan["keep"][good[0]] == "recorded with deploy good0, one of the last 7 good releases"
    assert plan["keep"][failed[-1]] == "newest verified"
    assert plan["delete"] == failed[:-RETENTION]
    assert project.snapshot() == before

    done = project.invoke("db.prune", "--env", "local", "--json")
    assert done.returncode == 0, done.output
    assert json.loads(done.stdout)["delete"] == plan["delete"]
    left = sorted(p.name for p in project.file("backups/local").glob("*.json"))
    assert left == sorted(f"{b}.json" for b in plan["keep"])
