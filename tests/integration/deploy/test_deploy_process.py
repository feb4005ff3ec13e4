"""``invoke deploy`` and ``invoke rollback`` on the process runtime, as an operator runs them.

One project (a temp git repository, SQLite, Celery's filesystem broker) serves the module: each
test starts from "a healthy release is running" (``site.running()``), commits what its scenario
needs, and takes its commit back at the end, so that the tests do not depend on their order.
The failure scenarios live here because a process deploy takes seconds. Each release runs its
own copy of the code (``.deploytools/<env>/releases/<tag>``), so a rollback or an undo brings
back the old code too, which the tests see through the backend's answers.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import signal
import time
import tomllib
from typing import Any

import pytest

from tests.support.deployproject import (
    DeployProject,
    assert_undone_after_dying,
    dies_after_healthy,
    health,
    migration,
    stop_process,
    toml_text,
)
from tests.support.processdeploy import ENV, NEW_REVISION, WEB, ProcessSite, wait_for

pytestmark = pytest.mark.integration


def app_name(site: ProcessSite) -> str:
    """What GET / says the app is: changes with the code, not with the release id."""
    import httpx

    return str(httpx.get(f"http://127.0.0.1:{site.port}/", timeout=5.0).json()["app"])


def test_deploy_records_tags_and_serves_the_new_release(site: ProcessSite) -> None:
    project = site.project
    site.running()
    sha = project.commit("v2", {"example/exampleapp/__init__.py": '"""exampleapp v2."""\n'})

    run = project.deploy(ENV)

    assert run.returncode == 0, run.output
    record = project.releases(ENV)[-1]
    tag = record["tag"]
    assert record["action"] == "deploy" and record["result"] == "ok"
    assert tag.startswith(f"release-{ENV}-") and tag.endswith(f"-{sha[:7]}")
    assert record["sha"] == sha and record["dirty"] is False
    code = project.state_dir(ENV) / "releases" / tag
    assert record["images"] == {"code": str(code)}  # the release's own copy of the code
    assert (code / "exampleapp/__init__.py").read_text() == '"""exampleapp v2."""\n'
    assert record["revision"] == "0003"
    env_file = project.file(f"config/{ENV}.env").read_bytes()
    assert record["env_hash"] == hashlib.sha256(env_file).hexdigest()
    backups = list(project.file(f"backups/{ENV}").glob(f"{record['backup']}*"))
    assert record["backup"] and backups, "the deploy's backup is on disk"
    assert project.git("rev-list", "-n", "1", tag).strip() == sha
    assert site.serves(tag)
    assert f"release {tag}, db revision 0003" in run.stderr
    journal = project.file(f".deploytools/{ENV}/journal.jsonl").read_text()
    assert project.env_values(ENV)["SECRET_KEY"] not in run.output + journal
    site.no_leftovers()


def test_dry_run_changes_nothing(site: ProcessSite) -> None:
    project = site.project
    tag = site.running()
    if all(r["tag"] == tag for r in site.good()):  # a release to plan a rollback to
        assert project.deploy(ENV).returncode == 0
        tag = site.running()
    others = [r["tag"] for r in site.good() if r["tag"] != tag]
    column = 'op.add_column("users", sa.Column("nick", sa.Text))'
    sha = project.commit("0004", {NEW_REVISION: migration("0004", column)})
    try:
        before = _world(site)
        deploy = project.deploy(ENV, "--dry-run")
        plan = project.deploy(ENV, "--dry-run", "--json")
        rollbacks = [project.rollback(ENV, other, "--dry-run") for other in others[-1:]]
        after = _world(site)
    finally:
        site.take_back(sha)
    assert deploy.returncode == 0, deploy.output
    assert "dry run: nothing is changed" in deploy.output
    assert "alembic upgrade head: 0004" in deploy.output
    assert f"release-{ENV}-" in deploy.output and sha[:7] in deploy.output
    assert "uvicorn" in deploy.output  # the exact command the runtime would start
    actions = {s["step"]: s["actions"] for s in json.loads(plan.stdout)["plan"]}
    assert [a.split(":")[0] for a in actions["wait healthy"]] == ["backend", "celery-worker"]
    assert all(a.endswith(", then stay healthy for 5 s (same process, no restart)")
               for a in actions["wait healthy"])  # fmt: skip
    for other, plan in zip(others[-1:], rollbacks, strict=True):
        assert plan.returncode == 0, plan.output
        assert f"images of {other} are present: no build" in plan.output
    assert after == before
    assert health(site.port)[1]["release"] == tag


def _world(site: ProcessSite) -> dict[str, Any]:
    """Everything a deploy could change, minus what the running processes write by themselves."""
    project = site.project
    files = {
        name: content
        for name, content in project.snapshot().items()
        if not name.startswith((f".deploytools/{ENV}/run/", "example/var/celery/"))
    }
    return {
        "files": files,
        "database": project.database(ENV),
        "tags": project.git("tag", "--list"),
        "head": project.git("rev-parse", "HEAD"),
        "pid": site.pid(),
    }


def test_failed_migration_leaves_database_and_running_release_alone(site: ProcessSite) -> None:
    project = site.project
    tag = site.running()
    pid, state = site.pid(), project.database(ENV)
    bad = migration(
        "0004",
        'op.create_table("half_done", sa.Column("id", sa.Integer, primary_key=True))\n'
        'op.execute("UPDATE no_such_table SET x = 1")',
    )
    sha = project.commit("a broken migration", {NEW_REVISION: bad})
    try:
        run = project.deploy(ENV)
    finally:
        site.take_back(sha)

    assert run.returncode == 1, run.output
    assert "failed at step 'migrate'" in run.stderr
    assert "0004" in run.stderr and "no_such_table" in run.stderr
    assert "Traceback" not in run.output
    assert project.database(ENV) == state  # 0003, no half_done table, same rows
    assert state[0] == "0003"
    assert site.pid() == pid  # not restarted
    assert site.serves(tag)
    failed = project.releases(ENV)[-1]
    assert failed["result"] == "failed" and failed["failed_step"] == "migrate"
    assert failed["tag"] not in project.release_tags()  # only good releases are tagged
    site.no_leftovers()


def test_unhealthy_release_is_undone_and_the_previous_one_serves_again(site: ProcessSite) -> None:
    project = site.project
    previous = site.running()
    sha = project.commit(
        "a release that never becomes healthy, with a new column",
        {
            WEB: site.broken_health(),
            NEW_REVISION: migration(
                "0004",
                'op.add_column("users", sa.Column("nick", sa.Text))',
                'op.drop_column("users", "nick")',
            ),
        },
    )
    try:
        run = project.deploy(ENV)
    finally:
        site.take_back(sha)

    assert run.returncode == 1, run.output
    failed = project.releases(ENV)[-1]
    assert failed["result"] == "failed" and failed["failed_step"] == "wait healthy"
    assert failed["sha"] == sha
    # What failed, what was undone, where the logs are.
    err = run.stderr
    assert "deploy failed at step 'wait healthy'" in err
    assert "backend not healthy after" in err and "503" in err
    assert "database downgraded 0004 -> 0003" in err
    assert f"release {previous} started again" in err
    assert f"release {previous} verified healthy again" in err
    assert f"invoke history --env {ENV}" in err and f"invoke stack.logs --env {ENV}" in err
    assert site.serves(previous)
    assert project.database(ENV)[0] == "0003"
    assert "nick" not in _user_columns(project)
    releases = project.invoke("releases", "--env", ENV, "--json")
    assert releases.returncode == 0
    site.no_leftovers()


def _user_columns(project: DeployProject) -> list[str]:
    import sqlite3

    path = project.database_url(ENV).removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:
        return [row[1] for row in conn.execute("PRAGMA table_info(users)")]


def test_sigint_during_the_migration_keeps_the_old_release(site: ProcessSite) -> None:
    project = site.project
    tag = site.running()
    pid, state = site.pid(), project.database(ENV)
    marker = project.file("example/var/in-0004")
    slow = migration(
        "0004",
        'op.create_table("half_done", sa.Column("id", sa.Integer, primary_key=True))\n'
        "from alembic import context\n"
        "if not context.is_offline_mode():  # the lint step renders the revision offline first\n"
        "    from pathlib import Path\n"
        f"    Path({str(marker)!r}).touch()\n"
        "    import time\n"
        "    time.sleep(120)",
    )
    sha = project.commit("a migration that takes long", {NEW_REVISION: slow})
    count = len(project.journal(ENV))
    try:
        proc = project.start("deploy", "--env", ENV)
        try:
            wait_for("migration 0004 running", marker.exists, proc)
            proc.send_signal(signal.SIGINT)
        finally:
            out, err = stop_process(proc)
    finally:
        marker.unlink(missing_ok=True)
        site.take_back(sha)

    assert proc.returncode == 130, out + err  # as a shell reports Ctrl-C
    assert "interrupted at migrate" in err
    assert "Traceback" not in out + err
    events = site.journal_since(count)
    interrupted = [e for e in events if e["kind"] == "step.interrupted"]
    assert [(e["step"], e["error"]) for e in interrupted] == [("migrate", "interrupted at migrate")]
    assert events[-1]["kind"] == "release" and events[-1]["result"] == "failed"
    assert project.database(ENV) == state  # still 0003, no half_done table
    assert site.pid() == pid
    assert site.serves(tag)
    lock = project.invoke("lock.status", "--env", ENV, "--json")
    assert '"locked": false' in lock.stdout
    site.no_leftovers()


def test_sigterm_while_waiting_for_health_undoes_the_start(site: ProcessSite) -> None:
    project = site.project
    previous = site.running()
    sha = project.commit("never healthy", {WEB: site.broken_health()})
    count = len(project.journal(ENV))

    def waiting() -> bool:
        return any(
            e["kind"] == "step.start" and e["step"] == "wait healthy"
            for e in site.journal_since(count)
        )

    try:
        proc = project.start("deploy", "--env", ENV)
        try:
            wait_for("the wait healthy step", waiting, proc)
            time.sleep(0.5)  # inside the wait: the new release is up and failing its probe
            proc.send_signal(signal.SIGTERM)
        finally:
            out, err = stop_process(proc)
    finally:
        site.take_back(sha)

    assert proc.returncode == 130, out + err  # as a shell reports Ctrl-C
    assert "interrupted at wait healthy" in err
    assert f"release {previous} started again" in err
    events = site.journal_since(count)
    assert any(e["kind"] == "undo.done" and e["step"] == "start" for e in events)
    assert events[-1]["kind"] == "release" and events[-1]["failed_step"] == "wait healthy"
    assert site.serves(previous)
    site.no_leftovers()


def test_two_concurrent_deploys_exactly_one_proceeds(site: ProcessSite) -> None:
    project = site.project
    site.running()
    count = len(project.releases(ENV))
    first, second = project.start("deploy", "--env", ENV), project.start("deploy", "--env", ENV)
    outputs = {}
    for proc in (first, second):
        outputs[proc.pid] = stop_process(proc, timeout=180)
    codes = sorted((first.returncode, second.returncode))
    assert codes == [0, 1], outputs
    winner, loser = (first, second) if first.returncode == 0 else (second, first)
    message = outputs[loser.pid][1]
    assert f"the deploy lock of environment {ENV} (" in message and "is held by" in message
    assert message.count("is held by") == 1, message  # said once, not in a summary too
    assert f"pid {winner.pid} since" in message
    assert "--lock-wait" in message
    assert f"invoke lock.release --force --env {ENV}" in message
    new = project.releases(ENV)[count:]
    assert [r["result"] for r in new] == ["ok"]  # the loser records no release at all
    assert health(site.port)[1]["release"] == new[0]["tag"]
    site.no_leftovers()


def test_rollback_returns_release_and_database_revision(site: ProcessSite) -> None:
    project = site.project
    target = site.running()
    name = app_name(site)
    web = project.file(WEB).read_text()
    sha = project.commit(
        "v3: a new column, and the index names the version",
        {
            WEB: web.replace('"app": "exampleapp"', '"app": "exampleapp-v3"', 1),
            NEW_REVISION: migration(
                "0004",
                'op.add_column("users", sa.Column("nick", sa.Text))',
                'op.drop_column("users", "nick")',
            ),
        },
    )
    try:
        deployed = project.deploy(ENV)
        assert deployed.returncode == 0, deployed.output
        assert project.database(ENV)[0] == "0004"
        assert app_name(site) == "exampleapp-v3"
        run = project.rollback(ENV, target)
        again = project.rollback(ENV, target)
    finally:
        site.take_back(sha)

    assert run.returncode == 0, run.output
    record = project.releases(ENV)[-1]
    assert (record["action"], record["result"], record["tag"]) == ("rollback", "ok", target)
    assert record["revision"] == "0003"
    assert project.database(ENV)[0] == "0003"
    assert "nick" not in _user_columns(project)
    assert site.serves(target)
    done = [e for e in project.journal(ENV) if e["kind"] == "step.done"]
    assert [e["built"] for e in done if e["step"] == "prepare release"][-1] is False
    safety = [e for e in done if e["step"] == "backup"][-1]["backup"]  # safety backup first
    assert safety and record["safety_backup"] == safety  # recorded: retention keeps it
    assert app_name(site) == name  # the old code runs, not the working tree's

    assert again.returncode == 2
    assert f"release {target} is already running in {ENV}" in again.stderr
    assert "Traceback" not in again.output
    assert project.releases(ENV)[-1] == record  # nothing recorded


def test_rollback_rebuilds_removed_release_code_from_a_worktree(site: ProcessSite) -> None:
    project = site.project
    target = site.running()
    name = app_name(site)
    web = project.file(WEB).read_text()
    sha = project.commit("next", {WEB: web.replace('"app": "exampleapp"', '"app": "next"')})
    readme = project.file("example/README.md")
    try:
        deployed = project.deploy(ENV)
        assert deployed.returncode == 0, deployed.output
        assert app_name(site) == "next"
        # The operator's tree moves on: an uncommitted edit and an untracked file.
        readme.write_text(readme.read_text() + "\nlocal notes\n")
        project.file("notes.txt").write_text("untracked\n")
        status, tree = project.git("status", "--porcelain"), _tree(project)
        shutil.rmtree(project.state_dir(ENV) / "releases" / target)

        run = project.rollback(ENV, target)

        assert project.git("status", "--porcelain") == status and _tree(project) == tree
    finally:
        project.git("checkout", "--", "example/README.md")
        project.file("notes.txt").unlink(missing_ok=True)
        site.take_back(sha)
    assert run.returncode == 0, run.output
    done = [e for e in project.journal(ENV) if e["kind"] == "step.done"]
    assert [e["built"] for e in done if e["step"] == "prepare release"][-1] is True
    code = project.state_dir(ENV) / "releases" / target
    assert (code / "exampleapp/web.py").read_text() == project.git(
        "show", f"{target}:example/exampleapp/web.py"
    )
    assert app_name(site) == name  # the tag's code, not the working tree's
    assert site.serves(target)
    assert len(project.git("worktree", "list").splitlines()) == 1


def _tree(project: DeployProject) -> dict[str, Any]:
    """The operator's files: everything but the deploy's own state, backups and data."""
    skip = (".deploytools/", "backups/", "example/var/")
    return {k: v for k, v in project.snapshot().items() if not k.startswith(skip)}


def test_a_backend_that_dies_after_its_first_healthy_answer_is_undone(site: ProcessSite) -> None:
    """Healthy twice in a row, then gone 3 s later: within min_healthy (5 s), so the release
    is not recorded good; the one before serves again."""
    project = site.project
    previous = site.running()
    dying = dies_after_healthy(project.file(WEB).read_text(), 3.0)
    sha = project.commit("a release that dies 3 s after its first healthy answer", {WEB: dying})
    try:
        run = project.deploy(ENV)
    finally:
        site.take_back(sha)

    # Its death is seen by whichever look comes first: its process's status, or a probe that
    # the dying process answers with a closed connection.
    died = r"(stopped \(exited, exit code 1\)|its health check failed: RemoteProtocolError: .*)"
    assert_undone_after_dying(project, ENV, run, previous, died)
    assert site.serves(previous)
    site.no_leftovers()


def test_an_app_without_a_canary_task_deploys_its_workers_proved_by_their_start(
    site: ProcessSite,
) -> None:
    """No code added to the app: its workers are of the new release because they started
    after the deploy's start step began (Celery's stats), and an app task round-trips."""
    project = site.project
    site.running()
    worker = project.file("example/exampleapp/worker.py").read_text()
    canary = worker.index('@app.task(name="deploytools.canary"')
    config = tomllib.loads(project.file("config/deploy.toml").read_text())
    celery = config["defaults"]["celery"]
    assert "deploytools.canary" in celery["required_tasks"]
    celery.update(
        required_tasks=["exampleapp.add"], roundtrip_task="exampleapp.add", roundtrip_args=[2, 3]
    )
    plain = toml_text(config)
    sha = project.commit(
        "no canary", {"example/exampleapp/worker.py": worker[:canary], "config/deploy.toml": plain}
    )
    try:
        run = project.deploy(ENV)

        assert run.returncode == 0, run.output
        tag = project.releases(ENV)[-1]["tag"]
        said = " ".join(run.stderr.split())
        assert f"1 worker(s) answered, tasks registered, all on release {tag}, round trip" in said
        assert "release not proved" not in said
        assert site.serves(tag)
    finally:
        site.take_back(sha)
