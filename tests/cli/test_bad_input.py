"""Bad input: one clear message naming the problem and the fix, exit code 2, no traceback,
nothing changed. Each case runs the real CLI in a throw-away copy of the project."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest
from invoke.exceptions import Exit
from invoke.parser import Argument

from deploytools.config import load_settings
from deploytools.errors import OperatorError
from deploytools.tasks import ns
from tests.support.cli import Run, TempProject
from tests.support.rootproject import ENV, JOURNAL_FILES, root_project

GOOD_LOCAL = "ENVIRONMENT=development\n"


@pytest.fixture
def project(tmp_path: Path) -> TempProject:
    p = TempProject(tmp_path)
    p.write_env("local", GOOD_LOCAL)
    return p


def refused(project: TempProject, *args: str, env: dict[str, str] | None = None) -> Run:
    """Run a command that must be refused; check the common promises and return the run."""
    before = project.snapshot()
    run = project.invoke(*args, env=env)
    assert run.returncode == 2, run.output
    assert "Traceback" not in run.stderr, run.stderr
    assert run.stderr.startswith("error: "), run.stderr
    assert "\n  fix: " in run.stderr, run.stderr
    assert project.snapshot() == before
    return run


def test_missing_config_file(tmp_path: Path) -> None:
    project = TempProject(tmp_path)
    project.file("config/deploy.toml").unlink()
    run = refused(project, "env.validate", "--env", "local")
    assert "config file config/deploy.toml not found" in run.stderr
    assert "INVOKE_DEPLOYTOOLS_CONFIG" in run.stderr


def test_config_file_named_by_env_var_is_missing(project: TempProject) -> None:
    run = refused(
        project,
        "env.validate",
        "--env",
        "local",
        env={"INVOKE_DEPLOYTOOLS_CONFIG": "/nonexistent/deploy.toml"},
    )
    assert "/nonexistent/deploy.toml not found" in run.stderr


def test_config_file_that_is_not_text(project: TempProject) -> None:
    project.file("config/deploy.toml").write_bytes(b"\xff\xfe\x00garbage")
    run = refused(project, "env.validate", "--env", "local")
    assert "deploy.toml: not UTF-8 text" in run.stderr


def test_config_file_without_read_permission(
    project: TempProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    # In-process: CI runs as root, which reads any file whatever its mode.
    def denied(self: Path, *args: object, **kwargs: object) -> str:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_text", denied)
    with pytest.raises(OperatorError) as caught:
        load_settings("local", config_path=project.file("config/deploy.toml"))
    assert "cannot read" in caught.value.problem and "Permission denied" in caught.value.problem
    assert "deploy.toml" in caught.value.problem


def test_config_file_with_a_syntax_error(project: TempProject) -> None:
    project.file("config/deploy.toml").write_text("[project\nname = 1\n")
    run = refused(project, "env.validate", "--env", "local")
    assert "deploy.toml: not valid TOML" in run.stderr


def test_unknown_environment(project: TempProject) -> None:
    run = refused(project, "env.validate", "--env", "qa")
    assert "unknown environment 'qa'" in run.stderr
    assert "use one of: local, prod, staging" in run.stderr


@pytest.mark.parametrize(
    "name", ["prod;rm -rf /", "$(x)", "`id`", "prod\nrm -rf /", "../prod", "Prod"]
)
def test_environment_name_with_shell_metacharacters(project: TempProject, name: str) -> None:
    run = refused(project, "env.validate", "--env", name)
    assert f"environment name {name!r} is not allowed" in run.stderr


@pytest.mark.parametrize("path", ["config/local.env;rm -rf /", "$(x).env", "`id`.env", "a.env\nb"])
def test_file_path_with_shell_metacharacters(project: TempProject, path: str) -> None:
    run = refused(project, "env.validate", "--env", "local", "--file", path)
    assert f"--file {path!r} is not allowed" in run.stderr


def test_env_file_missing(tmp_path: Path) -> None:
    project = TempProject(tmp_path)
    run = refused(project, "env.validate", "--env", "staging")
    assert "env file" in run.stderr and "staging.env not found" in run.stderr
    assert "invoke env.init --env NAME" in run.stderr


def test_malformed_env_file_lists_the_lines(project: TempProject) -> None:
    project.write_env("local", '\ufeffA="open\nB=1\nB=2\nnonsense\nD= # c\n')
    refused(project, "env.validate", "--env", "local")
    run = refused(project, "env.validate", "--env", "local", "--json")
    found = {(f["rule"], f["line"]) for f in json.loads(run.stdout)["findings"]}
    expected = {("bom", 1), ("unterminated-quote", 1), ("duplicate", 3), ("syntax", 4)}
    assert expected | {("empty-comment", 5)} <= found


def test_config_with_unknown_key_names_file_and_key_path(project: TempProject) -> None:
    deploy = project.file("config/deploy.toml")
    deploy.write_text(
        deploy.read_text().replace('runtime = "process"', 'runtime = "process"\nrutnime = 1')
    )
    run = refused(project, "env.validate", "--env", "local")
    assert "deploy.toml" in run.stderr and "environments.local.rutnime: unknown key" in run.stderr


def test_rules_file_with_a_wrong_type_names_file_and_key_path(project: TempProject) -> None:
    rules = project.file("config/env.rules.toml")
    rules.write_text(rules.read_text().replace("min = 1\nmax = 65535", 'min = "one"\nmax = 65535'))
    run = refused(project, "env.validate", "--env", "local")
    assert "env.rules.toml" in run.stderr and "keys.PORT.min" in run.stderr


@pytest.mark.parametrize(
    ("override", "where", "what"),
    [
        ("[placeholders.patterns]\nelipsis = false\n", "placeholders.patterns.elipsis",
         "no built-in placeholder pattern 'elipsis'"),
        ("[severity]\nfile-mod = 'off'\n", "severity", "unknown rule(s) ['file-mod']"),
        ("[severity]\nfile-mode = false\n", "severity.file-mode", "'error', 'warning' or 'off'"),
        ("[placeholders.patterns]\nellipsis = true\n", "placeholders.patterns.ellipsis",
         "expected a regular expression, or false to switch a built-in one off"),
    ],
)  # fmt: skip
def test_a_rules_override_naming_no_built_in_rule_or_of_a_wrong_type(
    tmp_path: Path, override: str, where: str, what: str
) -> None:
    project = root_project(tmp_path)
    project.file("config/env.rules.toml").write_text(override)
    project.write_env(ENV, "SHOP_API_TOKEN=tok_Zq8vN3rLk5wT1yXb7mP0sJ4h\n")
    run = refused(project, "env.validate", "--env", ENV)
    assert "config/env.rules.toml" in run.stderr and f"{where}: " in run.stderr, run.stderr
    assert what in run.stderr, run.stderr
    assert "fix: " in run.stderr and "default.env.rules.toml" in run.stderr, run.stderr


GOOD_ROOT_ENV = "SHOP_API_TOKEN=tok_Zq8vN3rLk5wT1yXb7mP0sJ4h\nDATABASE_URL=sqlite:///shop.db\n"


@pytest.mark.parametrize(
    ("ini", "problem"),
    [
        ("[alembic]\nprepend_sys_path = .\n", "[alembic] script_location is missing"),
        ("[alembic]\nscript_location = %(here)s/../elsewhere\n", "outside the project"),
    ],
)
def test_an_alembic_ini_that_does_not_lead_into_the_project(
    tmp_path: Path, ini: str, problem: str
) -> None:
    project = root_project(tmp_path / "shop")
    project.file("alembic.ini").write_text(ini)
    project.write_env(ENV, GOOD_ROOT_ENV)
    for task in ("db.history", "db.current", "db.lint"):
        run = refused(project, task, "--env", ENV)
        assert f"{project.file('alembic.ini')}: [alembic] script_location " in run.stderr
        assert problem in run.stderr


def test_a_deploy_stops_at_validate_env_on_a_broken_alembic_ini(tmp_path: Path) -> None:
    project = root_project(tmp_path)
    project.file("alembic.ini").write_text("[alembic]\n")
    project.write_env(ENV, GOOD_ROOT_ENV)
    before = project.snapshot()
    run = project.invoke("deploy", "--env", ENV)
    assert run.returncode == 2 and "Traceback" not in run.output, run.output
    assert "deploy failed at step 'validate env': " in run.stderr
    assert "[alembic] script_location is missing" in run.stdout + run.stderr
    after = project.snapshot()
    # what was refused, journaled; the state directory's mark for git beside it
    assert set(after) - set(before) == {f".deploytools/{ENV}/{n}" for n in JOURNAL_FILES}
    assert {k: v for k, v in after.items() if k in before} == before


def test_init_for_an_unknown_environment_changes_nothing(project: TempProject) -> None:
    run = refused(project, "env.init", "--env", "qa;touch x")
    assert "is not allowed" in run.stderr


def _arguments(name: str) -> list[Argument]:
    """The parser's arguments of task ``name``, without using up the task's help."""
    task = copy.copy(ns[name])
    task.help = dict(task.help)  # get_arguments() pops the help it uses
    return task.get_arguments()


def _numeric_options() -> list[tuple[str, str]]:
    """``(task, --flag)`` of every option of every task that takes a number: found from the
    parser's arguments and the task's signature, so an option added later is covered too."""
    found = []
    for name in sorted(ns.task_names):
        signature = ns[name].argspec(ns[name].body)
        annotations = {p.name: str(p.annotation) for p in signature.parameters.values()}
        for arg in _arguments(name):
            if arg.kind in (int, float) or NUMBER.search(annotations.get(arg.name or "", "")):
                found.append((name, f"--{arg.names[0]}"))
    return found


NUMBER = re.compile(r"\b(int|float)\b")
NUMERIC_OPTIONS = _numeric_options()


def test_the_numeric_options_are_found() -> None:
    assert {("deploy", "--lock-wait"), ("stack.logs", "--lines"), ("history", "--limit")} <= set(
        NUMERIC_OPTIONS
    ), NUMERIC_OPTIONS
    assert ("stack.wait", "--timeout") in NUMERIC_OPTIONS  # default None: cast by the parser too


@pytest.mark.parametrize("value", ["abc", "-1", "nan", "inf"])
@pytest.mark.parametrize(("task", "flag"), NUMERIC_OPTIONS)
def test_a_bad_number_names_the_option(
    project: TempProject, task: str, flag: str, value: str
) -> None:
    run = refused(project, task, flag, value)
    first, fix = run.stderr.splitlines()[:2]
    assert flag in first and repr(value) in first, run.stderr
    assert fix.startswith(f"  fix: pass {flag} a ") and "number" in fix, run.stderr


@pytest.mark.parametrize(("task", "flag"), NUMERIC_OPTIONS)
def test_a_good_number_reaches_the_task_as_a_number(task: str, flag: str) -> None:
    (arg,) = [a for a in _arguments(task) if f"--{a.names[0]}" == flag]
    arg.value = "7"
    assert arg.value == 7 and type(arg.value) in (int, float)
    if arg.kind.__name__ == "int":
        with pytest.raises(Exit) as caught:
            arg.value = "1.5"
        assert caught.value.code == 2 and "is not a whole number" in str(caught.value.message)
    else:
        arg.value = "0.5"
        assert arg.value == 0.5


def test_help_shows_that_a_numeric_option_takes_a_value(project: TempProject) -> None:
    run = project.invoke("--help", "deploy")
    assert "-l INT, --lock-wait=INT" in run.stdout, run.stdout
    assert "[a number of at least 0]" in " ".join(run.stdout.split())  # help text is wrapped


PROD_HOST_2 = 'name = "web-2"\naddress = "web-2.example.internal"\n'


@pytest.mark.parametrize(
    ("old", "new", "said"),
    [
        ('name = "web-2"', 'name = "web 2;id"',
         "environments.prod.hosts.1.name: Value error, a name may only hold letters"),
        ('address = "web-2.example.internal"', 'address = "deploy@web-2"',
         "environments.prod.hosts.1.address: Value error, not a DNS name or IP address"),
        (PROD_HOST_2, PROD_HOST_2 + "port = 70000\n",
         "environments.prod.hosts.1.port: Input should be less than or equal to 65535"),
        (PROD_HOST_2, PROD_HOST_2 + "primary = true\n",
         "exactly one host must be primary = true (web-1, web-2 are all; hosts: web-1, web-2)"),
        ("primary = true\n", "",
         "exactly one host must be primary = true (none of them is; hosts: web-1, web-2)"),
        ('roles = ["worker"]', 'roles = ["queue"]',
         "service 'celery-worker' runs on role(s) queue that no host has"),
        ("max_fail = 0 ", 'max_fail = "0%" ', "environments.prod.rollout.max_fail: Value error"),
        ('batch_size = "100%"', 'batch_size = "101%"',
         "environments.prod.rollout.batch_size: Value error"),
    ],
)  # fmt: skip
def test_bad_hosts_and_rollout_names_the_key_and_changes_nothing(
    project: TempProject, old: str, new: str, said: str
) -> None:
    deploy = project.file("config/deploy.toml")
    text = deploy.read_text()
    assert old in text
    deploy.write_text(text.replace(old, new, 1))
    run = refused(project, "hosts.check", "--env", "prod")
    assert "config/deploy.toml: " in run.stderr and said in run.stderr, run.stderr


def test_a_missing_key_file_names_the_host_and_the_key(project: TempProject) -> None:
    deploy = project.file("config/deploy.toml")
    deploy.write_text(deploy.read_text().replace(PROD_HOST_2, PROD_HOST_2 + 'key_file = "nope"\n'))
    for args in (["hosts.check", "--trust-new-hosts"], ["lock.status"]):
        run = refused(project, *args, "--env", "prod")
        assert "SSH key file missing for host web-2 (environments.prod.hosts[1].key_file): " in (
            run.stderr
        )
        assert f"{project.path.resolve()}/nope does not exist" in run.stderr
    # Nothing else needs the key: listing the tasks, a task on another environment.
    assert project.invoke("--list").returncode == 0
    other = project.invoke("lock.status", "--env", "local")
    assert other.returncode == 0 and "unlocked" in other.stdout, other.output


def test_hosts_check_on_an_environment_without_hosts(project: TempProject) -> None:
    run = refused(project, "hosts.check", "--env", "local")
    assert "environment local has no hosts: it runs on this machine" in run.stderr
