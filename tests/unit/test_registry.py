"""Compose releases through a registry, on the in-memory host: the setting refused when docker
would refuse it, the references pushed and pulled, the exact commands, and a registry that
serves another image than the one built."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from deploytools.commands import compose
from deploytools.errors import DeployFailure, OperatorError
from deploytools.hosts.base import Result
from deploytools.runtime.registry import Login, logged_in, pull_images, push_images, reference
from deploytools.testing import MemoryHost
from tests.unit.test_host_config import load

REG = "127.0.0.1:5000/team"
DIGEST = "sha256:" + "d" * 64
IDS = {"shop/web:r1": "sha256:aaa", "shop/worker:r1": "sha256:bbb"}


def compose_table(registry: str) -> str:
    return (
        f'\n[environments.prod.compose]\nproject_name = "shop"\nregistry = {registry!r}\n'
    ).replace("'", '"')


@pytest.mark.parametrize(
    "value", ["127.0.0.1:5000", "registry.example.com/team/apps", "localhost/x", "reg.io:443/a_b"]
)
def test_a_registry_docker_accepts_is_taken(tmp_path: Path, value: str) -> None:
    settings = load(tmp_path, compose_table(value))
    assert settings.compose is not None and settings.compose.registry is not None
    assert settings.compose.registry.url == value
    assert settings.compose.registry.user_key is None


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ("https://registry.example.com/team", "without a scheme"),
        ("team/apps", "'team' is not a registry host"),
        ("registry.example.com/Team", "may only hold lower-case"),
        ("registry.example.com/team:v1", "may only hold lower-case"),
        ("reg istry.example.com", "is not a registry host"),
        ("registry.example.com/a//b", "may only hold lower-case"),
    ],
)
def test_a_registry_docker_would_refuse_is_an_error_naming_the_key(
    tmp_path: Path, value: str, said: str
) -> None:
    with pytest.raises(OperatorError) as caught:
        load(tmp_path, compose_table(value))
    assert caught.value.exit_code == 2
    problem = caught.value.problem
    assert "compose.registry" in problem and said in problem, problem


def test_an_image_is_pushed_under_the_registry_without_a_registry_host_of_its_own() -> None:
    assert reference(REG, "shop/web:r1") == f"{REG}/shop/web:r1"
    assert reference(REG, "ghcr.io/acme/web:r1") == f"{REG}/acme/web:r1"
    assert reference(REG, "localhost:5000/web:r1") == f"{REG}/web:r1"
    assert reference(REG, "exampleapp:release-prod-1") == f"{REG}/exampleapp:release-prod-1"


def test_docker_argv() -> None:
    assert compose.push_image("r/a:1") == ["docker", "image", "push", "--quiet", "r/a:1"]
    assert compose.pull_image("r/a@" + DIGEST) == [
        "docker", "image", "pull", "--quiet", "r/a@" + DIGEST,
    ]  # fmt: skip
    assert compose.repo_digests("r/a:1", "/bin/docker") == [
        "/bin/docker", "image", "inspect", "--format",
        "{{range .RepoDigests}}{{println .}}{{end}}", "r/a:1",
    ]  # fmt: skip


def registry_answer(argv: list[str], fail: str = "") -> tuple[int, str]:
    """A primary's engine: a push fails saying ``fail`` (if any), or reports its digest."""
    if argv[1:3] == ["image", "push"] and fail:
        return 1, f"The push refers to repository\n{fail}\n"
    if argv[1:3] == ["image", "inspect"]:
        repo = argv[-1].rpartition(":")[0]
        return 0, f"other.io/x@sha256:{'e' * 64}\n{repo}@{DIGEST}\n"
    return 0, ""


def pusher(fail: str = "") -> MemoryHost:
    return MemoryHost("web-1", lambda argv: registry_answer(argv, fail))


def test_push_tags_pushes_reads_the_digest_and_untags() -> None:
    host = pusher()
    pushed = push_images(host, ["shop/web:r1"], REG, timeout=60)
    ref = f"{REG}/shop/web:r1"
    assert pushed == {"shop/web:r1": f"{REG}/shop/web@{DIGEST}"}
    assert host.commands == [
        compose.tag_image("shop/web:r1", ref),
        compose.push_image(ref),
        compose.repo_digests(ref),
        compose.remove_images([ref]),
    ]


def test_a_registry_that_does_not_answer_fails_the_push_saying_so() -> None:
    down = 'Get "http://127.0.0.1:5000/v2/": dial tcp 127.0.0.1:5000: connect: connection refused'
    with pytest.raises(DeployFailure) as caught:
        push_images(pusher(fail=down), ["shop/web:r1"], REG, timeout=60)
    said = str(caught.value)
    assert f"cannot push shop/web:r1 to registry {REG} from web-1" in said
    assert "connection refused" in said and "nothing was started" in said


def engine(images: dict[str, str], serves: dict[str, str]) -> MemoryHost:
    """An engine with ``images`` (name or id -> id) that pulls what ``serves`` maps."""

    def answer(argv: list[str]) -> tuple[int, str]:
        if argv[1:3] == ["image", "inspect"]:
            name = argv[-1]
            found = images.get(name) or (name if name in images.values() else None)
            return (0, f"{found}\n") if found else (1, f"No such image: {name}")
        if argv[1:3] == ["image", "pull"]:
            images[argv[-1]] = serves[argv[-1]]
        if argv[1:3] == ["image", "tag"]:
            images[argv[-1]] = argv[-2]
        return 0, ""

    return MemoryHost("web-2", answer)


PUSHED = {name: f"{REG}/{name.split(':')[0]}@{DIGEST}" for name in IDS}


def test_a_host_pulls_by_digest_only_what_it_lacks_by_id() -> None:
    # web: the same id under another name (tagged, not pulled); worker: absent (pulled).
    host = engine({"shop/web:r0": "sha256:aaa"}, {PUSHED["shop/worker:r1"]: "sha256:bbb"})
    got = pull_images(host, IDS, PUSHED, timeout=60)
    assert (got.sent, got.present) == (["shop/worker:r1"], ["shop/web:r1"])
    pulls = [argv for argv in host.commands if argv[1:3] == ["image", "pull"]]
    assert pulls == [compose.pull_image(PUSHED["shop/worker:r1"])]
    assert compose.tag_image("sha256:aaa", "shop/web:r1") in host.commands
    tag = host.commands.index(compose.tag_image("sha256:bbb", "shop/worker:r1"))
    # The registry's name goes only once the release's own name holds the image: removing
    # an image's last name would delete it.
    assert host.commands.index(compose.remove_images([PUSHED["shop/worker:r1"]])) == tag + 1

    again = pull_images(host, IDS, PUSHED, timeout=60)
    assert (again.sent, again.present) == ([], list(IDS))


def test_a_registry_serving_another_image_fails_the_deploy() -> None:
    host = engine({}, {ref: "sha256:evil" for ref in PUSHED.values()})
    with pytest.raises(DeployFailure, match="served web-2 another image for shop/web:r1"):
        pull_images(host, IDS, PUSHED, timeout=60)
    assert compose.tag_image("sha256:evil", "shop/web:r1") not in host.commands


def test_an_image_without_a_recorded_reference_is_said_not_guessed() -> None:
    host = engine({}, {})
    with pytest.raises(DeployFailure, match="names no registry reference"):
        pull_images(host, IDS, {}, timeout=60)
    assert not [argv for argv in host.commands if argv[1:3] == ["image", "pull"]]


def test_credentials_are_the_env_file_keys_that_hold_them(tmp_path: Path) -> None:
    table = (
        '\n[environments.prod.compose]\nproject_name = "shop"\n'
        '[environments.prod.compose.registry]\nurl = "reg.example.com:5000/team"\n'
        'user_key = "REGISTRY_USER"\npassword_key = "REGISTRY_PASSWORD"\n'
    )
    settings = load(tmp_path, table)
    assert settings.compose is not None and settings.compose.registry is not None
    conf = settings.compose.registry
    assert (conf.server, conf.user_key, conf.password_key) == (
        "reg.example.com:5000", "REGISTRY_USER", "REGISTRY_PASSWORD",
    )  # fmt: skip
    for bad, said in (
        ('user_key = "REGISTRY_USER"', "give both user_key and password_key"),
        ('user_key = "U"\npassword_key = "hunter2!"', "name a key of the env file"),
    ):
        text = table.split("user_key")[0] + bad + "\n"
        with pytest.raises(OperatorError) as caught:
            load(tmp_path, text)
        assert "compose.registry" in caught.value.problem and said in caught.value.problem


class Recording(MemoryHost):
    """Keeps each command's environment and standard input beside it."""

    def __init__(self) -> None:
        super().__init__("web-1", registry_answer)
        self.given: list[tuple[list[str], Mapping[str, str] | None, str | None]] = []

    def run(self, argv: Sequence[str], **kw: Any) -> Result:
        self.given.append((list(argv), kw.get("env"), kw.get("stdin")))
        return super().run(argv, **kw)


def test_a_login_goes_to_a_config_of_the_runs_own_password_on_stdin_removed_after() -> None:
    host = Recording()
    login = Login("reg.example.com:5000", "deploy", "s3cret-pass")
    with logged_in(host, login, "/srv/state/prod", timeout=30) as env:
        directory = env["DOCKER_CONFIG"]
        assert directory.startswith("/srv/state/prod/.docker-config.")
        assert host.exists(directory)
        push_images(host, ["shop/web:r1"], REG, timeout=30, env=env)
    (argv, used, stdin), *rest = host.given
    assert argv == ["docker", "login", "--username", "deploy", "--password-stdin",
                    "reg.example.com:5000"]  # fmt: skip
    assert used == env and stdin == "s3cret-pass\n"
    assert all("s3cret-pass" not in " ".join(a) for a, _, _ in host.given)
    assert [u for a, u, _ in rest if a[1:3] == ["image", "push"]] == [env]
    assert not host.exists(directory)  # nothing of the login stays on the host
    assert "s3cret-pass" not in repr(login)


def test_no_credentials_no_login() -> None:
    host = MemoryHost("web-1", lambda argv: (0, ""))
    with logged_in(host, None, "/srv/state/prod", timeout=30) as env:
        assert env == {}
    assert host.commands == []


def test_with_a_registry_the_primary_pushes_and_the_others_pull() -> None:
    from deploytools.pipelines import deploy, stages
    from deploytools.site.lock import DeployLock
    from tests.unit.test_ship_step import names

    lock = DeployLock(MemoryHost(), "/s", 60.0, env="t")
    steps = deploy.deploy_steps(
        lock, "deploy", 0.0, False, remote=True, ship_images=True, registry=True
    )

    made = names(steps)[names(steps).index("snapshot") + 1 : names(steps).index("lint migrations")]
    assert made == [
        "build", "push images", "pull images: pull images", "pull images: place compose files",
    ]  # fmt: skip
    back = names(stages.pulled_back())
    assert back == [
        "pull images: pull images", "prepare release", "place compose files: place compose files",
    ]  # fmt: skip


def test_a_dry_run_plans_one_push_and_a_pull_by_digest_on_each_other_host(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from deploytools.pipelines import stages
    from deploytools.steps.ship import PushImages
    from tests.unit import test_ship_step

    monkeypatch.setattr(test_ship_step, "COMPOSE", {**test_ship_step.COMPOSE, "registry": REG})
    primary, other = MemoryHost("web-1"), MemoryHost("web-2")
    ctx = test_ship_step.site_ctx(tmp_path, primary, other)
    push, pull = stages.pushed()[1:]

    assert isinstance(push, PushImages)
    [pushing] = push.plan(ctx)
    assert pushing.startswith(f"on web-1: docker image push {REG}/<image>:release-t-")
    lines = pull.plan(ctx)
    assert lines[0] == "on web-2 at once"
    assert lines[1] == (
        f"web-2: on web-2: docker image pull {REG}/<image>@<pushed digest>, only for images"
        " whose id it lacks, checked by id after pulling"
    )
    assert primary.commands == [] and other.commands == []  # a plan changes nothing
