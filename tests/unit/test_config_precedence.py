"""Configuration precedence, each layer beating the one below, through real invoke ``Config``s:
model defaults < config file ([defaults] < [environments.NAME]) < invoke.yaml < INVOKE_* env
vars < command-line flags. And config errors that name the file and the key path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from invoke import Config, Context

from deploytools.config import load_settings
from deploytools.errors import OperatorError
from deploytools.tasks import ns
from deploytools.tasks._support import settings

BASE = """
[project]
name = "p"

[environments.prod]
env_file = "config/prod.env"
env_example = "config/prod.env.example"
runtime = "process"
"""


def project(tmp_path: Path, toml: str = BASE, invoke_yaml: str | None = None) -> Context:
    (tmp_path / "config").mkdir(exist_ok=True)
    (tmp_path / "config/deploy.toml").write_text(toml)
    if invoke_yaml is not None:
        (tmp_path / "invoke.yaml").write_text(invoke_yaml)
    config = Config(project_location=str(tmp_path), lazy=True)
    config.load_collection(ns.configuration())
    config.load_project()
    config.load_shell_env()
    return Context(config)


def health(c: Context, cli: dict[str, Any] | None = None) -> float:
    return settings(c, "prod", cli).timeouts.health


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Run in the temp project (the config path is relative) with no INVOKE_* leftovers."""
    monkeypatch.chdir(tmp_path)
    for name in ("INVOKE_DEPLOYTOOLS_TIMEOUTS_HEALTH", "INVOKE_DEPLOYTOOLS_ENV"):
        monkeypatch.delenv(name, raising=False)


def test_model_default_when_nothing_sets_it(tmp_path: Path) -> None:
    assert health(project(tmp_path)) == 120.0


def test_file_defaults_beat_model_defaults_and_environment_beats_file_defaults(
    tmp_path: Path,
) -> None:
    toml = BASE + "\n[defaults.timeouts]\nhealth = 100\n"
    assert health(project(tmp_path, toml)) == 100.0
    toml += "\n[environments.prod.timeouts]\nhealth = 90\n"
    assert health(project(tmp_path, toml)) == 90.0


def test_invoke_yaml_beats_the_config_file(tmp_path: Path) -> None:
    toml = BASE + "\n[environments.prod.timeouts]\nhealth = 90\n"
    c = project(tmp_path, toml, "deploytools:\n  timeouts:\n    health: 77\n")
    assert health(c) == 77.0


def test_env_var_beats_invoke_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INVOKE_DEPLOYTOOLS_TIMEOUTS_HEALTH", "42")
    c = project(tmp_path, BASE, "deploytools:\n  timeouts:\n    health: 77\n")
    assert health(c) == 42.0


def test_command_line_beats_env_var(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INVOKE_DEPLOYTOOLS_TIMEOUTS_HEALTH", "42")
    assert health(project(tmp_path), {"timeouts": {"health": 7}}) == 7.0


def test_a_layer_that_does_not_set_a_key_keeps_the_one_below(tmp_path: Path) -> None:
    toml = BASE + "\n[environments.prod.timeouts]\nhealth = 90\nstop = 5\n"
    c = project(tmp_path, toml, "deploytools:\n  timeouts:\n    health: 77\n")
    conf = settings(c, "prod", {"rollout": {"max_parallel": 3}})
    assert (conf.timeouts.health, conf.timeouts.stop, conf.rollout.max_parallel) == (77.0, 5.0, 3)


def test_env_vars_set_max_parallel_and_trust_new_hosts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    toml = BASE + "\n[environments.prod.rollout]\nmax_parallel = 2\nbatch_size = 1\n"
    assert settings(project(tmp_path, toml), "prod").rollout.max_parallel == 2
    assert not settings(project(tmp_path, toml), "prod").trust_new_hosts
    monkeypatch.setenv("INVOKE_DEPLOYTOOLS_ROLLOUT_MAX_PARALLEL", "5")
    monkeypatch.setenv("INVOKE_DEPLOYTOOLS_TRUST_NEW_HOSTS", "1")
    conf = settings(project(tmp_path, toml), "prod")
    assert (conf.rollout.max_parallel, conf.rollout.batch_size, conf.trust_new_hosts) == (
        5, 1, True,
    )  # fmt: skip


def test_env_var_with_a_wrong_type_is_an_operator_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INVOKE_DEPLOYTOOLS_TIMEOUTS_HEALTH", "soon")
    with pytest.raises(OperatorError) as caught:
        health(project(tmp_path))
    assert "environments.prod.timeouts.health" in caught.value.problem
    assert "'soon'" in caught.value.problem


def write(tmp_path: Path, toml: str) -> Path:
    path = tmp_path / "deploy.toml"
    path.write_text(toml)
    return path


PROD = "environments.prod"
MISSING = "required key is missing"


@pytest.mark.parametrize(
    ("toml", "where", "expected"),
    [
        (BASE + "colour = 'blue'\n", f"{PROD}.colour", "unknown key"),
        (BASE + "[environments.prod.timeouts]\nhelth = 1\n", f"{PROD}.timeouts.helth", "unknown"),
        (BASE + "[environments.prod.rollout]\nmax_parallel = 'lots'\n",
         f"{PROD}.rollout.max_parallel", "valid integer"),
        (BASE + "[environments.prod.timeouts]\nhealth = -1\n", f"{PROD}.timeouts.health", "than 0"),
        (BASE.replace('"process"', '"podman"'), f"{PROD}.runtime", "'compose' or 'process'"),
        (BASE.replace('env_file = "config/prod.env"\n', ""), f"{PROD}.env_file", MISSING),
        (BASE.replace('[project]\nname = "p"\n', ""), "project", MISSING),
        (BASE + "[[environments.prod.hosts]]\nname = 'h'\n", f"{PROD}.hosts.0.address", MISSING),
    ],
)  # fmt: skip
def test_config_errors_name_the_file_and_the_key_path(
    tmp_path: Path, toml: str, where: str, expected: str
) -> None:
    path = write(tmp_path, toml)
    with pytest.raises(OperatorError) as caught:
        load_settings("prod", config_path=path)
    problem = caught.value.problem
    assert str(path) in problem
    assert f"{where}: " in problem and expected in problem


WITH_DEFAULT = BASE.replace('name = "p"', 'name = "p"\ndefault_environment = "prod"') + (
    '\n[environments.qa]\nenv_file = "q"\nenv_example = "q"\nruntime = "process"\n'
)


def test_no_environment_is_implied_unless_the_config_names_one(tmp_path: Path) -> None:
    with pytest.raises(OperatorError) as caught:
        settings(project(tmp_path), None)
    assert "no environment given" in caught.value.problem
    assert "(environments: prod)" in caught.value.problem
    assert "--env NAME" in caught.value.fix and "default_environment" in caught.value.fix


def test_the_config_files_default_environment_is_below_invoke_config_and_the_flag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert settings(project(tmp_path, WITH_DEFAULT), None).name == "prod"
    assert settings(project(tmp_path, WITH_DEFAULT, "deploytools:\n  env: qa\n"), None).name == "qa"
    monkeypatch.setenv("INVOKE_DEPLOYTOOLS_ENV", "qa")
    assert settings(project(tmp_path, WITH_DEFAULT), None).name == "qa"
    assert settings(project(tmp_path, WITH_DEFAULT), "prod").name == "prod"


def test_a_default_environment_the_file_does_not_have_names_the_key(tmp_path: Path) -> None:
    toml = BASE.replace('name = "p"', 'name = "p"\ndefault_environment = "local"')
    with pytest.raises(OperatorError) as caught:
        settings(project(tmp_path, toml), None)
    assert "project.default_environment 'local' is not an environment" in caught.value.problem
    assert "deploy.toml" in caught.value.problem and caught.value.fix == "set it to one of: prod"
