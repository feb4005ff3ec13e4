"""Hosts, roles, the primary and the rollout table: validated when the file is loaded, every
error naming the file and the key; the rollout's counts exact at their boundaries."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from deploytools.config import (
    EnvironmentSettings,
    RolloutSettings,
    check_key_files,
    environment,
    parse_deploy_file,
)
from deploytools.errors import OperatorError
from deploytools.pipeline.rollout import plan_batches
from tests.unit.test_config_precedence import BASE  # a project with one environment, prod


def host(name: str, **keys: Any) -> str:
    lines = [f"name = {_toml(name)}", f"address = {_toml(keys.pop('address', name + '.internal'))}"]
    lines += [f"{key} = {_toml(value)}" for key, value in keys.items()]
    return "\n[[environments.prod.hosts]]\n" + "\n".join(lines) + "\n"


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(value) if isinstance(value, str) else str(value)  # TOML takes its escapes


def load(tmp_path: Path, extra: str) -> EnvironmentSettings:
    deploy_file = parse_deploy_file(BASE + extra, "deploy.toml")
    return environment(deploy_file, "prod", "deploy.toml", tmp_path)


def refused(tmp_path: Path, extra: str) -> str:
    with pytest.raises(OperatorError) as caught:
        load(tmp_path, extra)
    assert caught.value.problem.startswith("deploy.toml: "), caught.value.problem
    assert caught.value.exit_code == 2
    return caught.value.problem


def test_a_single_host_is_the_primary_and_has_the_web_role(tmp_path: Path) -> None:
    settings = load(tmp_path, host("a"))
    assert settings.primary_host.name == "a"
    assert settings.hosts[0].roles == ["web"]
    assert [h.name for h in settings.hosts_with("web")] == ["a"]
    assert settings.hosts_with("worker") == []


def test_roles_primary_and_the_hosts_of_a_service(tmp_path: Path) -> None:
    extra = (
        host("a", roles=["web"])
        + host("b", roles=["web", "worker"], primary=True)
        + host("c", roles=["worker"])
        + '\n[environments.prod.services.worker]\nroles = ["worker"]\n'
        + "\n[environments.prod.services.backend]\n"
    )
    settings = load(tmp_path, extra)
    assert settings.primary_host.name == "b"
    assert [h.name for h in settings.hosts_with("worker")] == ["b", "c"]
    assert [h.name for h in settings.service_hosts("worker")] == ["b", "c"]
    assert [h.name for h in settings.service_hosts("backend")] == ["a", "b", "c"]


def test_a_local_environment_has_no_primary_host(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="runs on this machine"):
        _ = load(tmp_path, "").primary_host


@pytest.mark.parametrize(
    ("flags", "said"),
    [
        ((False, False), "exactly one host must be primary = true (none of them is; hosts: a, b)"),
        ((True, True), "exactly one host must be primary = true (a, b are all; hosts: a, b)"),
    ],
)
def test_two_hosts_need_exactly_one_primary(
    tmp_path: Path, flags: tuple[bool, bool], said: str
) -> None:
    problem = refused(tmp_path, host("a", primary=flags[0]) + host("b", primary=flags[1]))
    assert f"environments.prod: Value error, {said}" in problem


@pytest.mark.parametrize(
    "name", ["web\n", "web 1", "web;rm", "$(id)", "`id`", "-web", "web\n1", "a/b", "w" * 64, ""]
)
def test_a_host_name_with_spaces_or_metacharacters(tmp_path: Path, name: str) -> None:
    problem = refused(tmp_path, host(name))
    assert "environments.prod.hosts.0.name: Value error, a name may only hold" in problem


@pytest.mark.parametrize(
    "address",
    ["web-1\n", "web 1.internal", "deploy@web-1", "web-1:22", "[::1]", "web;id", "$(id)",
     "999.1.1.1", "1.2.3", "-web.internal", "a..b", "fe80::1::2"],
)  # fmt: skip
def test_an_address_that_is_no_dns_name_or_ip(tmp_path: Path, address: str) -> None:
    problem = refused(tmp_path, host("a", address=address))
    assert "environments.prod.hosts.0.address: Value error, " in problem, problem


@pytest.mark.parametrize(
    "address", ["web-1.example.internal", "web-1.", "10.0.0.7", "::1", "fe80::1%eth0", "a_b.c"]
)
def test_good_addresses(tmp_path: Path, address: str) -> None:
    assert load(tmp_path, host("a", address=address)).hosts[0].address == address


@pytest.mark.parametrize("user", ["deploy\n", "de ploy", "root;id", "-x", "a@b", ""])
def test_a_user_with_spaces_or_metacharacters(tmp_path: Path, user: str) -> None:
    problem = refused(tmp_path, host("a", user=user))
    assert "environments.prod.hosts.0.user: Value error, a user may only hold" in problem


@pytest.mark.parametrize("port", [0, 65536, -1])
def test_a_port_outside_1_to_65535(tmp_path: Path, port: int) -> None:
    problem = refused(tmp_path, host("a", port=port))
    assert "environments.prod.hosts.0.port: " in problem


def test_duplicate_host_names_and_one_machine_twice(tmp_path: Path) -> None:
    problem = refused(tmp_path, host("a", primary=True) + host("a", address="b.internal"))
    assert "host name(s) a used twice" in problem
    problem = refused(tmp_path, host("a", primary=True) + host("b", address="A.internal"))
    assert "two hosts are the same machine (a.internal:22)" in problem


def test_a_role_no_host_has_names_the_service_and_the_role(tmp_path: Path) -> None:
    extra = host("a") + '\n[environments.prod.services.worker]\nroles = ["worker", "web"]\n'
    problem = refused(tmp_path, extra)
    assert "service 'worker' runs on role(s) worker that no host has (the hosts' roles: web)" in (
        problem
    )


@pytest.mark.parametrize("roles", [[], ["Web"], ["web", "web"], ["a b"]])
def test_bad_role_lists(tmp_path: Path, roles: list[str]) -> None:
    assert "environments.prod.hosts.0.roles" in refused(tmp_path, host("a", roles=roles))


def test_trust_new_hosts_is_no_config_key(tmp_path: Path) -> None:
    problem = refused(tmp_path, "trust_new_hosts = true\n")
    assert "environments.prod.trust_new_hosts: not a config key" in problem


def test_the_retired_parallelism_says_what_replaces_it(tmp_path: Path) -> None:
    problem = refused(tmp_path, "parallelism = 4\n")
    assert "environments.prod.parallelism: no longer a key: rollout.max_parallel replaces it" in (
        problem
    )


def test_a_missing_key_file_names_the_host_and_the_file(tmp_path: Path) -> None:
    (tmp_path / "id_ok").write_text("key")
    settings = load(
        tmp_path, host("a", key_file="id_ok", primary=True) + host("b", key_file="keys/nope")
    )
    with pytest.raises(OperatorError) as caught:
        check_key_files(settings)
    problem = caught.value.problem
    assert problem.startswith("config/deploy.toml: SSH key file missing for host b ")
    assert f"(environments.prod.hosts[1].key_file): {tmp_path}/keys/nope does not exist" in problem
    assert "host a" not in problem


# -- the rollout table -------------------------------------------------------------------------


def test_the_rollout_defaults_one_batch_of_every_host_no_failure_tolerated() -> None:
    rollout = RolloutSettings()
    assert (rollout.max_parallel, rollout.on_failure, rollout.pause) == (8, "rollback", 0)
    assert plan_batches(list("abcde"), rollout.policy(5)) == [list("abcde")]
    assert rollout.policy(5).max_fail == 0


@pytest.mark.parametrize(
    ("batch_size", "hosts", "count"),
    [
        ("10%", 10, 1), ("10%", 19, 1), ("10%", 20, 2), ("10%", 9, 1),  # floored, at least 1
        ("1%", 3, 1), ("50%", 3, 1), ("50%", 4, 2), ("100%", 7, 7),
        (1, 5, 1), (3, 5, 3), (5, 5, 5), (6, 5, 5),  # never more than there are hosts
    ],
)  # fmt: skip
def test_batch_count(batch_size: int | str, hosts: int, count: int) -> None:
    policy = RolloutSettings(batch_size=batch_size).policy(hosts)
    assert len(plan_batches(list(range(hosts)), policy)[0]) == count


@pytest.mark.parametrize(
    ("max_fail", "hosts", "budget"),
    [
        ("20%", 5, 1), ("20%", 4, 0), ("20%", 10, 2), ("25%", 4, 1), ("100%", 3, 3),
        ("1%", 99, 0), ("1%", 100, 1), (0, 5, 0), (2, 5, 2), (9, 5, 5),
    ],
)  # fmt: skip
def test_fail_budget(max_fail: int | str, hosts: int, budget: int) -> None:
    # A budget over the hosts' number tolerates every host failing: as much as all of them.
    assert min(RolloutSettings(max_fail=max_fail).policy(hosts).max_fail, hosts) == budget


def test_batches_with_and_without_a_canary() -> None:
    hosts = list("abcdefg")
    assert plan_batches(hosts, RolloutSettings(batch_size=3).policy(7)) == [
        list("abc"), list("def"), ["g"],
    ]  # fmt: skip
    assert plan_batches(hosts, RolloutSettings(batch_size="30%", canary=True).policy(7)) == [
        ["a"], list("bc"), list("de"), list("fg"),
    ]  # fmt: skip
    assert plan_batches(["a"], RolloutSettings(canary=True).policy(1)) == [["a"]]
    assert RolloutSettings().policy(7).max_parallel == 8


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("batch_size", '"0%"'), ("batch_size", '"101%"'), ("batch_size", "0"),
        ("batch_size", '"x"'), ("batch_size", "true"), ("batch_size", "2.5"),
        ("max_fail", '"0%"'), ("max_fail", '"101%"'), ("max_fail", "-1"), ("max_fail", "1.5"),
        ("max_parallel", "0"), ("pause", "-1"), ("on_failure", '"ignore"'),
    ],
)  # fmt: skip
def test_bad_rollout_values(tmp_path: Path, key: str, value: str) -> None:
    problem = refused(tmp_path, f"\n[environments.prod.rollout]\n{key} = {value}\n")
    assert f"environments.prod.rollout.{key}" in problem, problem


def test_a_percentage_is_explained(tmp_path: Path) -> None:
    problem = refused(tmp_path, '\n[environments.prod.rollout]\nmax_fail = "0%"\n')
    assert "rollout.max_fail = '0%': a percentage must be above 0 % and at most 100 %" in problem
