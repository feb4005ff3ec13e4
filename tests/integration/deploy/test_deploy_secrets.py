"""A secret echoed by a failing release never reaches an output, the journal or a run file.

The reported leak: a secret holding ``"`` or ``\\`` came back JSON-escaped in an HTTP body, and
that body went into the deploy's error, the journal and ``history --json``. Here the release's
``/health`` answers 503 with the env file's SECRET_KEY in its JSON body; the key holds ``"``,
``\\``, ``'`` and ``${`` (an env file's secret must be ASCII: the non-ASCII forms are tested in
tests/unit/test_redact_encodings.py). Every form of the key is looked for in everything the
deploy and the reading tasks print, the journal, and the process runtime's log and PID files.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.deployproject import PROCESS_ENV, DeployProject, health, process_env
from tests.support.procs import free_port
from tests.support.secretforms import leaked

pytestmark = pytest.mark.integration

ENV = PROCESS_ENV
WEB = "example/exampleapp/web.py"
HEALTH_ANCHOR = "    budget = settings.health_timeout + 1.0\n"
ECHO = (
    "    import os  # test: the release echoes its secret key in the error body\n"
    '    return JSONResponse({"status": "broken", "detail": os.environ["SECRET_KEY"]}, 503)\n'
)


@pytest.fixture(scope="module")
def secret() -> str:
    return f"Qw7\"Rt\\9'Zx${{Hm4}}-{secrets.token_hex(8)}-Kp2"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, secret: str) -> Iterator[DeployProject]:
    proj = DeployProject(tmp_path_factory.mktemp("deploy-secrets") / "app")
    proj.configure({ENV: process_env(probe_timeout=5)})
    proj.init_env(ENV, {"PORT": str(free_port()), "SECRET_KEY": secret})
    assert proj.env_values(ENV)["SECRET_KEY"] == secret
    try:
        yield proj
    finally:
        proj.invoke("stack.down", "--env", ENV)


def test_a_secret_in_a_failing_health_body_is_masked_everywhere(
    project: DeployProject, secret: str
) -> None:
    first = project.deploy(ENV)
    assert first.returncode == 0, first.output
    web = project.file(WEB).read_text()
    assert web.count(HEALTH_ANCHOR) == 1
    project.commit("a release that echoes its key", {WEB: web.replace(HEALTH_ANCHOR, ECHO)})

    run = project.deploy(ENV)

    assert run.returncode == 1, run.output
    assert "deploy failed at step 'wait healthy'" in run.stderr
    readers = {
        " ".join(args): project.invoke(*args, "--env", ENV, "--json")
        for args in (["history", "--limit", "1000"], ["releases"])
    }
    state = project.state_dir(ENV)
    texts = {"deploy stdout": run.stdout, "deploy stderr": run.stderr}
    texts.update({f"{name} --json": r.stdout + r.stderr for name, r in readers.items()})
    files = [state / "journal.jsonl", *sorted((state / "run").iterdir())]
    texts.update({str(p.relative_to(state)): p.read_text(errors="replace") for p in files})
    assert {p.suffix for p in files} == {".jsonl", ".log", ".pid"}

    leaks = {name: found for name, text in texts.items() if (found := leaked(secret, text))}
    assert leaks == {}
    assert all(r.returncode == 0 for r in readers.values())
    assert '"detail":"***"' in run.stderr  # the body was shown, masked
    errors = [e["error"] for e in project.journal(ENV) if e.get("kind") == "step.failed"]
    assert any('"detail":"***"' in error for error in errors), errors
    history = json.loads(readers["history --limit 1000"].stdout)
    assert any('"detail":"***"' in str(e.get("error")) for e in history)
    assert health(project.env_values(ENV)["PORT"])[0] == 200  # the first release serves again
    assert not Path(state / "deploy.lock").exists()
