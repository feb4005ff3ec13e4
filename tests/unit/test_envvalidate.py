"""env.validate's file-level checks (git through a fake Host, the example) and its rendering."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from deploytools.env import file as envfile
from deploytools.env.check import learn_secrets
from deploytools.env.validate import Report, check_git, compare_with_example, show, validate
from deploytools.errors import CommandError, OperatorError
from deploytools.findings import Finding
from deploytools.testing import MemoryHost
from deploytools.ui import Ui
from tests.support.project_rules import rules
from tests.support.stackenv import make_settings

ENV_PATH = Path("/project/config/prod.env")


def git_host(ls_files: int, check_ignore: int = 0) -> MemoryHost:
    def respond(argv: list[str]) -> tuple[int, str]:
        return (ls_files, "") if argv[1] == "ls-files" else (check_ignore, "")

    return MemoryHost(responder=respond)


def test_tracked_env_file_is_an_error_naming_the_fix() -> None:
    host = git_host(ls_files=0)
    [found] = check_git(ENV_PATH, host, rules("prod"))
    assert (found.rule, found.severity) == ("git-tracked", "error")
    assert "git rm --cached /project/config/prod.env" in found.fix
    assert host.commands == [["git", "ls-files", "--error-unmatch", "--", str(ENV_PATH)]]


def test_untracked_and_ignored_is_fine_untracked_and_not_ignored_is_a_warning() -> None:
    assert check_git(ENV_PATH, git_host(ls_files=1, check_ignore=0), rules("prod")) == []
    [found] = check_git(ENV_PATH, git_host(ls_files=1, check_ignore=1), rules("prod"))
    assert (found.rule, found.severity) == ("git-ignore", "warning")


def test_outside_a_git_work_tree_nothing_is_reported() -> None:
    host = git_host(ls_files=128)
    assert check_git(ENV_PATH, host, rules("prod")) == []
    assert len(host.commands) == 1


def test_git_missing_is_a_warning_not_a_crash() -> None:
    def respond(argv: list[str]) -> tuple[int, str]:
        raise CommandError(argv, 127, "git: command not found")

    [found] = check_git(ENV_PATH, MemoryHost(responder=respond), rules("prod"))
    assert (found.rule, found.severity) == ("git-unavailable", "warning")


def test_keys_unknown_to_or_missing_from_the_example() -> None:
    doc = envfile.parse(b"DATABASE_URL=x\nDATABSE_URL=typo\nRELEASE_ID=1\n")
    example = envfile.parse(b"DATABASE_URL=\nDB_POOL_SIZE=5\nSECRET_KEY=\n")
    found = compare_with_example(doc, example, "config/prod.env.example", rules("prod"))
    assert [(f.rule, f.key, f.line, f.severity) for f in found] == [
        ("example-unknown", "DATABSE_URL", 2, "warning"),
        ("example-missing", "DB_POOL_SIZE", None, "warning"),
    ]  # RELEASE_ID is reported as managed elsewhere; SECRET_KEY as required elsewhere


def test_no_example_is_a_warning() -> None:
    [found] = compare_with_example(envfile.parse(b""), None, "x.env.example", rules("prod"))
    assert (found.rule, found.severity) == ("no-example", "warning")


def capture_ui(json_mode: bool = False) -> tuple[Ui, io.StringIO, io.StringIO]:
    out, err = io.StringIO(), io.StringIO()
    ui = Ui(
        json_mode=json_mode,
        out=Console(file=out, width=200, force_terminal=False),
        err=Console(file=err, width=200, force_terminal=False),
    )
    return ui, out, err


def test_show_renders_a_table_and_raises_with_exit_code_2_on_errors() -> None:
    ui, out, _err = capture_ui()
    report = Report(
        "prod",
        "config/prod.env",
        3,
        [Finding("format", "PORT is out of range", "1-65535", "PORT", 4)],
    )
    with pytest.raises(OperatorError) as caught:
        show(ui, report)
    assert caught.value.exit_code == 2
    table = out.getvalue()
    assert "PORT is out of range" in table and "config/prod.env (prod): 1 error(s)" in table


def test_the_table_keeps_square_brackets_of_a_message() -> None:
    ui, out, _err = capture_ui()
    fix = "add [keys.SURPRISE] to env.rules.toml; see [alembic] script_location"
    report = Report("prod", "[x].env", 1, [Finding("unknown-key", "no rule", fix, "SURPRISE")])
    with pytest.raises(OperatorError):
        show(ui, report)
    table = " ".join(out.getvalue().split())
    assert "[keys.SURPRISE]" in table and "[alembic]" in table and "[x].env (prod)" in table


def test_warnings_alone_succeed() -> None:
    ui, _out, err = capture_ui()
    show(
        ui,
        Report(
            "local",
            "config/local.env",
            3,
            [Finding("git-ignore", "not ignored", severity="warning")],
        ),
    )
    assert "3 keys valid for local, 1 warning(s)" in err.getvalue()


def test_json_output_is_on_stdout_and_redacted() -> None:
    ui, out, err = capture_ui(json_mode=True)
    doc = envfile.parse(b"SECRET_KEY=MARKER-Zq8vN3rLk5wT1yXb\n")
    learn_secrets(ui.redact, doc, rules("prod"))
    report = Report(
        "prod", "f", 1, [Finding("x", "leaked MARKER-Zq8vN3rLk5wT1yXb here", severity="warning")]
    )
    show(ui, report)
    data = json.loads(out.getvalue())
    assert data["ok"] is True and data["warnings"] == 1
    assert "MARKER" not in out.getvalue() + err.getvalue()


@pytest.mark.parametrize(
    ("runtime", "warned"), [("compose", ["DOLLAR", "ESCAPED"]), ("process", [])]
)
def test_values_compose_would_change_are_warnings_of_compose_environments(
    tmp_path: Path, runtime: str, warned: list[str]
) -> None:
    settings = make_settings(tmp_path, runtime=runtime, compose={"project_name": "p"})
    doc = envfile.parse(b"DOLLAR=Zx9$Qw8Er7Ty6\nESCAPED='c:\\\\dir'\nQUOTED='a$b'\n")
    report = validate(doc, tmp_path / "t.env", settings, rules("staging"), git_host(1), None)
    found = [f for f in report.findings if f.rule == "compose-value"]
    assert [(f.key, f.severity) for f in found] == [(key, "warning") for key in warned]
