"""Two environments never share a compose project on one Docker engine: a config error.

Compose knows a project by its name on an engine; two environments with one project name took
over each other's containers, and each journal named a release the other had replaced.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from deploytools.config import load_settings
from deploytools.errors import OperatorError

HEAD = """
[project]
name = "p"

[defaults]
runtime = "compose"
env_example = "config/example.env"
"""


def environment(name: str, project: str, *hosts: str, runtime: str = "compose") -> str:
    text = (
        f'\n[environments.{name}]\nenv_file = "config/{name}.env"\nruntime = "{runtime}"\n'
        f'compose = {{ project_name = "{project}" }}\n'
    )
    for host in hosts:
        address, _, port = host.partition(":")
        text += (
            f"\n[[environments.{name}.hosts]]\n"
            f'name = "{address}-{port}"\naddress = "{address}"\nport = {port or 22}\n'
            f"primary = {str(host == hosts[0]).lower()}\n"
        )
    return text


def write(tmp_path: Path, *environments: str) -> Path:
    path = tmp_path / "deploy.toml"
    path.write_text(HEAD + "".join(environments))
    return path


@pytest.mark.parametrize(
    ("first", "second", "engine"),
    [
        ((), (), "this machine"),
        (("web-1", "web-2"), ("WEB-2",), "web-2:22"),
        (("10.0.0.5:2222",), ("10.0.0.5:2222", "10.0.0.6"), "10.0.0.5:2222"),
    ],
)
def test_one_project_name_on_one_engine_is_refused_for_both_environments(
    tmp_path: Path, first: tuple[str, ...], second: tuple[str, ...], engine: str
) -> None:
    path = write(
        tmp_path, environment("staging", "shop", *first), environment("qa", "shop", *second)
    )
    for env, other in (("staging", "qa"), ("qa", "staging")):
        with pytest.raises(OperatorError) as refused:
            load_settings(env, config_path=path)
        problem = refused.value.problem
        assert problem.startswith(
            f"{path}: environments.{env}.compose.project_name and "
            f"environments.{other}.compose.project_name are both 'shop' on the same Docker "
            f"engine ({engine})"
        )
        assert refused.value.exit_code == 2
        assert f"give environments.{env}.compose.project_name" in refused.value.fix


@pytest.mark.parametrize(
    "environments",
    [
        (environment("staging", "shop"), environment("qa", "shop-qa")),
        (environment("staging", "shop", "web-1"), environment("qa", "shop", "web-2")),
        (environment("staging", "shop", "web-1:22"), environment("qa", "shop", "web-1:2222")),
        (environment("staging", "shop"), environment("qa", "shop", "web-1")),
        (environment("staging", "shop"), environment("qa", "shop", runtime="process")),
    ],
)
def test_distinct_names_or_engines_load(tmp_path: Path, environments: tuple[str, ...]) -> None:
    path = write(tmp_path, *environments)
    assert load_settings("staging", config_path=path).name == "staging"
    assert load_settings("qa", config_path=path).name == "qa"


def test_a_third_environment_loads_and_a_broken_one_does_not_stop_the_others(
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path,
        environment("staging", "shop"),
        environment("qa", "shop"),
        environment("prod", "shop-prod"),
        '\n[environments.broken]\nruntime = "podman"\n',
    )
    assert load_settings("prod", config_path=path).compose is not None
    with pytest.raises(OperatorError) as refused:
        load_settings("staging", config_path=path)
    assert "environments.qa.compose.project_name" in refused.value.problem
