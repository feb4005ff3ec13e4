"""ComposeRuntime against a scripted docker CLI: preflight messages, images, status parsing,
the env file copy compose reads, the environment's label and another environment's containers."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from deploytools.errors import CommandError, DeployFailure, OperatorError
from deploytools.hosts.base import Result
from deploytools.runtime.base import ImageCheck
from deploytools.runtime.compose import ComposeRuntime, parse_ps
from deploytools.testing import MemoryHost
from tests.support.stackenv import make_settings

ENV_FILE = "/srv/app/config/prod.env"
STATE = "/srv/app/.deploytools/t"
PS_ROWS = [
    {"Service": "backend", "State": "running", "Health": "healthy", "ExitCode": 0,
     "Image": "exampleapp:r1", "Name": "p-backend-1", "ID": "b0000000000a"},
    {"Service": "celery-worker", "State": "restarting", "Health": "", "ExitCode": 0,
     "Image": "exampleapp:r1", "Name": "p-celery-worker-1", "ID": "c0000000000a"},
]  # fmt: skip


class FakeDocker(MemoryHost):
    """Answers docker CLI calls like an engine holding ``images``; records env per command."""

    def __init__(self, **answers: tuple[int, str]) -> None:
        super().__init__("web-1", self._answer)
        self.files[ENV_FILE] = b"PORT=8000\n"
        self.images = {"exampleapp:r1": "sha256:aaa"}
        self.restarts = {"b0000000000a": 0, "c0000000000a": 4}  # container id -> RestartCount
        self.untagged: set[str] = set()  # image ids still there under no tag
        self.answers = answers
        self.envs: list[dict[str, str]] = []
        self.ps = json.dumps(PS_ROWS)
        self.dead: dict[str, str] = {}  # container id -> service, as the engine holds them dead
        self.config: dict[str, Any] = {
            "services": {
                "backend": {"image": "exampleapp:${RELEASE_ID}"},
                "celery-worker": {"image": "exampleapp:${RELEASE_ID}"},
            }
        }

    def run(
        self, argv: Sequence[str], *, env: Mapping[str, str] | None = None, **kw: Any
    ) -> Result:
        self.envs.append(dict(env or {}))
        done = super().run(argv, **kw)
        if done.ok or argv[1] == "inspect":  # inspect prints what it found, even failing
            return done
        return Result(done.argv, done.returncode, "", done.stdout, done.duration)  # as stderr

    def _answer(self, argv: list[str]) -> tuple[int, str]:
        words = [a for a in argv if not a.startswith("/")]
        if "docker" in self.answers:  # no docker CLI at all
            return self.answers["docker"]
        if argv[1] == "compose" and "compose" in self.answers:  # no (v2) compose plugin
            return self.answers["compose"]
        if argv[1:3] == ["compose", "version"]:
            return 0, "2.40.3\n"
        if argv[1] == "version":
            return self.answers.get("server", (0, "26.1.5\n"))
        if argv[1] == "inspect":  # restart counts: full ids, the gone ones left out
            found = [f"{i}{'0' * 52} {self.restarts[i]}" for i in argv[6:] if i in self.restarts]
            return 0 if len(found) == len(argv[6:]) else 1, "".join(f"{f}\n" for f in found)
        if "logs" in words:
            tail = int(argv[argv.index("--tail") + 1])
            return 0, "".join(f"{argv[-1]} line {i}\n" for i in range(30)[-tail:])
        if "up" in words and "up" in self.answers:
            return self.answers["up"]
        if argv[1:3] == ["image", "inspect"]:
            image = argv[-1]
            if image in self.images:
                return 0, self.images[image] + "\n"
            known = image in self.images.values() or image in self.untagged
            return (0, image + "\n") if known else (1, "No such image")
        if argv[1:3] == ["image", "tag"]:
            self.images[argv[4]] = argv[3]
            return 0, ""
        if "config" in words and "json" in words:  # interpolated as compose does
            release = self.envs[-1].get("RELEASE_ID", "dev")
            config = json.dumps(self.config).replace("${RELEASE_ID}", release)
            return self.answers.get("config", (0, config))
        if "status=dead" in argv:  # docker ps of the dead (or removing): "<id> <service>"
            return 0, "".join(f"{i} {service}\n" for i, service in self.dead.items())
        if argv[1] == "ps":  # docker ps: the project's containers by label, "Names"
            rows = [{**r, "Names": r.get("Name")} for r in parse_ps(self.ps)]
            return 0, "\n".join(json.dumps(r) for r in rows)
        if "ps" in words:
            return 0, self.ps
        return 0, ""


def runtime(
    tmp_path: Path,
    host: FakeDocker,
    services: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
) -> ComposeRuntime:
    settings = make_settings(
        tmp_path,
        runtime="compose",
        env_file="config/prod.env",
        state_dir=".deploytools",
        compose={"project_name": "p", "directory": "example", "files": ["a.yml", "/abs/b.yml"]},
        hosts=[{"name": "web-1", "address": "10.0.0.1", "root": "/srv/app", "env": env or {}}],
        services=services or {},
    )
    return ComposeRuntime(settings, host)


def test_remote_paths_project_and_compose_variables(tmp_path: Path) -> None:
    host = FakeDocker()
    rt = runtime(tmp_path, host)
    rt.up("r1")
    up = host.commands[-1]
    assert rt.labels_file.startswith(f"{STATE}/compose.labels-")
    assert up[:14] == [
        "docker", "compose", "-p", "p", "-f", "/srv/app/example/a.yml", "-f", "/abs/b.yml",
        "-f", rt.labels_file,
        "--env-file", f"{STATE}/compose.env", "--project-directory", "/srv/app/example",
    ]  # fmt: skip
    assert up[14:] == ["up", "--detach", "--pull", "never", "--no-build", "--remove-orphans"]
    assert host.envs[-1] == {
        "IMAGE_NAME": "exampleapp",
        "ENV_FILE": f"{STATE}/compose.env",
        "FLAGS_DIR": f"{STATE}/flags",  # the services mount it read-only
        "RELEASE_ID": "r1",
    }


def test_images_of_a_release_are_only_those_tagged_with_it(tmp_path: Path) -> None:
    host = FakeDocker()
    host.config["services"]["redis"] = {"image": "redis:7-alpine"}
    rt = runtime(tmp_path, host)
    assert rt.images("r1") == ["exampleapp:r1"]
    assert rt.images("r2") == ["exampleapp:r2"]
    assert sum("config" in c for c in host.commands) == 1  # read once, whatever the release
    assert rt.has_release("r1")
    assert not rt.has_release("r2")
    assert rt.remove_release("r1") == ["exampleapp:r1"]
    assert host.commands[-1] == ["docker", "image", "rm", "exampleapp:r1"]


def test_up_refuses_a_release_whose_images_are_gone(tmp_path: Path) -> None:
    host = FakeDocker()
    with pytest.raises(DeployFailure) as failure:
        runtime(tmp_path, host).up("r2")
    assert "exampleapp:r2" in failure.value.problem
    assert "stack.build" in failure.value.fix
    assert not any("up" in c for c in host.commands)


def test_release_id_that_cannot_be_an_image_tag_is_refused(tmp_path: Path) -> None:
    with pytest.raises(OperatorError, match="cannot name an image tag"):
        runtime(tmp_path, FakeDocker()).up("feature/x")


@pytest.mark.parametrize(
    ("answers", "problem", "fix"),
    [
        (
            {"docker": (127, "docker: not found")},
            "docker CLI is not installed on web-1",
            "docker.io",
        ),
        (
            {"compose": (1, "docker: 'compose' is not a docker command.")},
            "`docker compose` (v2) is not available on web-1",
            "cli-plugins",
        ),
        (
            {"server": (1, "Cannot connect to the Docker daemon at unix:///var/run/docker.sock.")},
            "Docker engine on web-1 is unreachable",
            "start the Docker daemon",
        ),
    ],
)
def test_preflight_names_what_is_missing_and_the_fix(
    tmp_path: Path, answers: dict[str, tuple[int, str]], problem: str, fix: str
) -> None:
    host = FakeDocker(**answers)
    with pytest.raises(DeployFailure) as failure:
        runtime(tmp_path, host).up("r1")
    assert problem in failure.value.problem
    assert fix in failure.value.fix
    assert [c[1:3] for c in host.commands if c[2] in ("up", "down", "stop")] == []
    assert len(host.commands) <= 3  # the preflight's own questions only


def test_a_healthy_preflight_asks_docker_three_times_and_only_once_per_run(tmp_path: Path) -> None:
    host = FakeDocker()
    rt = runtime(tmp_path, host)
    rt.check()
    assert rt.services() == ["backend", "celery-worker"]
    assert rt.healthchecked() == set()
    rt.check()
    assert [c[1:] for c in host.commands if "compose" not in c] == [
        ["version", "--format", "{{.Server.Version}}"],
        [
            "ps", "--all", "--filter", "label=com.docker.compose.project=p",
            "--format", "{{json .}}",
        ],  # no other environment's containers in the project
    ]  # fmt: skip
    assert [c[-3:] for c in host.commands if "compose" in c] == [["config", "--format", "json"]]


def test_a_broken_compose_file_surfaces_composes_own_message(tmp_path: Path) -> None:
    message = "yaml: line 7: mapping values are not allowed in this context"
    host = FakeDocker(config=(15, message))
    with pytest.raises(OperatorError) as failure:
        runtime(tmp_path, host).down()
    assert message in failure.value.problem
    assert "/srv/app/example/a.yml" in failure.value.problem
    assert not any("down" in c for c in host.commands)


def test_unknown_service_lists_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(OperatorError) as failure:
        runtime(tmp_path, FakeDocker()).logs("worker")
    assert "worker" in failure.value.problem
    assert failure.value.fix == "use one of: backend, celery-worker"


def test_status_from_json_array(tmp_path: Path) -> None:
    status = runtime(tmp_path, FakeDocker()).status()
    assert status["backend"].state == "running"
    assert status["backend"].health == "healthy"
    assert status["backend"].release == "r1"
    assert status["celery-worker"].crashed
    assert status["celery-worker"].describe() == "restarting"


def test_status_from_json_lines_and_missing_services(tmp_path: Path) -> None:
    host = FakeDocker()
    host.ps = json.dumps(PS_ROWS[0]) + "\n"
    status = runtime(tmp_path, host).status()
    assert status["backend"].health == "healthy"
    assert status["celery-worker"].state == "missing"


def test_the_worst_replica_speaks_for_its_service(tmp_path: Path) -> None:
    host = FakeDocker()
    exited = {**PS_ROWS[0], "State": "exited", "ExitCode": 3, "Name": "p-backend-2"}
    host.ps = "\n".join(json.dumps(r) for r in (PS_ROWS[0], exited))
    backend = runtime(tmp_path, host).status()["backend"]
    assert (backend.state, backend.exit_code, backend.detail) == ("exited", 3, "p-backend-2")
    assert backend.describe() == "exited, healthy, exit code 3"


def test_parse_ps_forms() -> None:
    assert parse_ps("") == []
    assert parse_ps("[]\n") == []
    assert parse_ps('[{"Service": "a"}]') == [{"Service": "a"}]
    assert parse_ps('{"Service": "a"}\n{"Service": "b"}\n') == [{"Service": "a"}, {"Service": "b"}]


def test_plans_show_the_commands_and_run_nothing(tmp_path: Path) -> None:
    host = FakeDocker()
    rt = runtime(tmp_path, host)
    assert rt.plan_build("r2") == [
        f"IMAGE_NAME=exampleapp ENV_FILE={STATE}/compose.env FLAGS_DIR={STATE}/flags "
        "RELEASE_ID=r2 docker compose "
        f"-p p -f /srv/app/example/a.yml -f /abs/b.yml --env-file {STATE}/compose.env "
        "--project-directory /srv/app/example build"
    ]
    assert rt.plan_up("<release>", ["backend"])[0].endswith(
        "up --detach --pull never --no-build --no-deps backend"
    )
    assert host.commands == []


def test_a_running_service_with_a_healthcheck_but_no_health_yet_is_starting(
    tmp_path: Path,
) -> None:
    docker = FakeDocker()
    docker.config["services"]["celery-worker"] = {"healthcheck": {"test": ["CMD", "true"]}}
    docker.config["services"]["backend"] = {"healthcheck": {"test": ["NONE"], "disable": True}}
    rows = [dict(row, State="running", Health="") for row in PS_ROWS]
    docker.ps = json.dumps(rows)
    status = runtime(tmp_path, docker).status()
    assert status["celery-worker"].health == "starting"  # Docker has not said yet: not a pass
    assert status["backend"].health == ""  # no (enabled) healthcheck: running is enough


def test_compose_reads_a_private_copy_of_the_env_file_that_keeps_its_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    host = FakeDocker()
    source = b'A=abc$def\nB="it\'s $$"\nC="x\\"y"\nD\n'
    host.files[ENV_FILE] = source
    rt = runtime(tmp_path, host)
    rt.check()
    copy = b"A='abc$def'\nB=\"it's $$$$\"\nC='x\"y'\nD=''\n"
    assert host.files[f"{STATE}/compose.env"] == copy
    assert host.modes[f"{STATE}/compose.env"] == 0o600
    assert host.files[ENV_FILE] == source  # the operator's file is left as it is
    config = next(c for c in host.commands if "config" in c)
    assert config[config.index("--env-file") + 1] == f"{STATE}/compose.env"
    assert host.envs[host.commands.index(config)]["ENV_FILE"] == f"{STATE}/compose.env"

    written = dict(host.files)
    unchanged = "an unchanged copy was written again"
    monkeypatch.setattr(host, "write_file", lambda *a, **k: pytest.fail(unchanged))
    runtime(tmp_path, host).check()  # the next run, the env file as it was
    assert host.files == written
    monkeypatch.undo()
    host.files[ENV_FILE] = source + b"E=x$y\n"
    runtime(tmp_path, host).check()
    assert host.files[f"{STATE}/compose.env"] == copy + b"E='x$y'\n"


def test_the_hosts_own_env_is_over_the_env_files_values_in_what_compose_reads(
    tmp_path: Path,
) -> None:
    host = FakeDocker()
    host.files[ENV_FILE] = b"PORT=8000\nTOKEN=t0k\n"

    runtime(tmp_path, host, env={"PORT": "8001", "WORKERS": "2"}).check()

    assert host.files[f"{STATE}/compose.env"] == b"PORT='8001'\nTOKEN='t0k'\nWORKERS='2'\n"
    assert host.files[ENV_FILE] == b"PORT=8000\nTOKEN=t0k\n"


def test_an_env_file_missing_on_the_host_stops_before_compose_runs(tmp_path: Path) -> None:
    host = FakeDocker()
    del host.files[ENV_FILE]
    with pytest.raises(OperatorError) as refused:
        runtime(tmp_path, host).up("r1")
    assert f"cannot read the env file {ENV_FILE} on web-1" in refused.value.problem
    assert "mode 600" in refused.value.fix
    assert [c for c in host.commands if "compose" in c] == []


def test_up_labels_every_service_with_the_environment(tmp_path: Path) -> None:
    host = FakeDocker()
    rt = runtime(tmp_path, host)
    rt.up("r1")
    labels = json.loads(host.files[rt.labels_file])
    assert labels == {
        "services": {
            "backend": {"labels": {"io.deploytools.environment": "t"}},
            "celery-worker": {"labels": {"io.deploytools.environment": "t"}},
        }
    }
    config = next(c for c in host.commands if "config" in c)
    assert not any("compose.labels" in word for word in config)  # written from what it says


def test_each_set_of_compose_files_gets_the_labels_of_its_own_services(tmp_path: Path) -> None:
    """Another file set (the previous release's, with fewer services) must not meet a labels
    file naming a service it lacks: compose would refuse the whole project."""
    host = FakeDocker()
    full = runtime(tmp_path, host)
    full.check()
    del host.config["services"]["celery-worker"]  # the previous release's files: one service
    fewer = runtime(tmp_path, host)
    fewer.check()
    assert fewer.labels_file != full.labels_file
    assert list(json.loads(host.files[fewer.labels_file])["services"]) == ["backend"]
    assert len(json.loads(host.files[full.labels_file])["services"]) == 2


@pytest.mark.parametrize(
    ("mark", "other"),
    [
        ({"Labels": "a=b,io.deploytools.environment=staging,c=d"}, "staging"),
        ({"Image": "exampleapp:release-pre-prod-20250101T120000Z-1a2b3c4"}, "pre-prod"),
    ],
)
def test_containers_of_another_environment_are_never_acted_on(
    tmp_path: Path, mark: dict[str, str], other: str
) -> None:
    host = FakeDocker()
    host.ps = json.dumps([PS_ROWS[0], {**PS_ROWS[1], **mark}])
    rt = runtime(tmp_path, host)
    for act in (lambda: rt.up("r1"), rt.down, rt.status, lambda: rt.stop(["backend"])):
        with pytest.raises(OperatorError) as refused:
            act()
        assert (
            f"compose project p on web-1 holds containers of environment {other} "
            "(p-celery-worker-1): t does not act on them"
        ) in refused.value.problem
        assert "environments.t.compose.project_name" in refused.value.fix
    assert [c for c in host.commands if {"up", "down", "stop"} & set(c)] == []


def test_own_unlabelled_and_hand_tagged_containers_are_ours(tmp_path: Path) -> None:
    host = FakeDocker()
    rows = [
        {**PS_ROWS[0], "Labels": "io.deploytools.environment=t"},
        {**PS_ROWS[1], "Image": "exampleapp:release-t-20250101T120000Z-1a2b3c4"},
        {**PS_ROWS[1], "Image": "exampleapp:dev", "Name": "p-celery-worker-2"},
    ]
    host.ps = json.dumps(rows)
    runtime(tmp_path, host).up("r1")
    assert any("up" in c for c in host.commands)


def test_status_counts_restarts_with_one_inspect_of_every_container(tmp_path: Path) -> None:
    host = FakeDocker()
    replica = {**PS_ROWS[0], "Name": "p-backend-2", "ID": "b0000000000b"}
    host.ps = json.dumps([*PS_ROWS, replica, {**PS_ROWS[0], "ID": "gone0000000a"}])
    host.restarts["b0000000000b"] = 2
    rt = runtime(tmp_path, host)
    rt.check()
    before = len(host.commands)
    status = rt.status()
    inspects = [c for c in host.commands[before:] if c[1] == "inspect"]
    assert inspects == [
        ["docker", "inspect", "--type", "container", "--format", "{{.Id}} {{.RestartCount}}",
         "b0000000000a", "b0000000000b", "gone0000000a", "c0000000000a"],
    ]  # fmt: skip
    assert len(host.commands) - before == 2  # ps, then that inspect
    assert status["backend"].restarts == 2  # its replicas' restarts add up
    assert status["backend"].instance == "b0000000000a,b0000000000b,gone0000000a"
    assert status["celery-worker"].restarts == 4


def test_one_shots_are_declared_awaited_or_unrestarted_services_with_no_check(
    tmp_path: Path,
) -> None:
    host = FakeDocker()
    host.config["services"] = {
        "backend": {"restart": "unless-stopped", "healthcheck": {"test": ["CMD", "true"]}},
        "migrate": {"restart": "no"},
        "collectstatic": {},  # compose's default policy: "no"
        "web": {},  # no policy either, but an HTTP probe (below): it serves
        "worker": {"healthcheck": {"test": ["CMD", "true"]}},  # ... or a healthcheck
        "setup": {"restart": "on-failure:3"},
        "app": {"restart": "always", "depends_on": {
            "setup": {"condition": "service_completed_successfully", "required": True},
            "migrate": {"condition": "service_started", "required": True}}},
        "seed": {"restart": "on-failure"},  # declared below
        "swarmish": {"deploy": {"restart_policy": {"condition": "any"}}},  # compose honours it
        "tail": {},  # declared long-running below
    }  # fmt: skip
    services = {
        "web": {"probe": {"url": "http://127.0.0.1:8000/"}},
        "seed": {"oneshot": True},
        "tail": {"oneshot": False},
    }
    found = runtime(tmp_path, host, services).one_shots()
    assert found == {"migrate", "collectstatic", "setup", "seed"}


@pytest.mark.parametrize(("policy", "declared"), [("always", True), ("unless-stopped", None)])
def test_a_one_shot_that_docker_would_restart_is_an_operator_error(
    tmp_path: Path, policy: str, declared: bool | None
) -> None:
    host = FakeDocker()
    host.config["services"] = {
        "migrate": {"restart": policy},
        "backend": {"depends_on": {"migrate": {"condition": "service_completed_successfully"}}},
    }
    with pytest.raises(OperatorError) as failure:
        runtime(tmp_path, host, {"migrate": {"oneshot": declared}}).one_shots()
    assert "service migrate is a one-shot" in failure.value.problem
    assert f"restart policy is {policy!r}" in failure.value.problem
    assert 'restart: "no"' in failure.value.fix and "services.migrate.oneshot" in failure.value.fix


def test_up_that_a_failed_one_shot_stopped_names_it_with_its_log(tmp_path: Path) -> None:
    said = 'service "backend" didn\'t complete successfully: exit 3'
    host = FakeDocker(up=(1, f" Container p-backend-1  Waiting\n{said}\n"))
    with pytest.raises(DeployFailure) as failure:
        runtime(tmp_path, host).up("r1")
    text = failure.value.problem
    assert text.startswith("one-shot backend failed (exit code 3): the services that wait")
    assert "last 20 log lines of backend:\n    backend line 10\n" in text
    assert text.endswith("backend line 29")
    assert "invoke stack.logs --env t --service backend" in failure.value.fix


def test_dead_containers_of_the_services_to_start_are_removed_before_compose_runs(
    tmp_path: Path,
) -> None:
    """An engine stopped during a replace leaves the old container dead: compose cannot start,
    stop or replace it, so ``up`` removes it first (volumes kept), and only for its services."""
    host = FakeDocker()
    host.dead = {"d0000000000a": "backend", "d0000000000b": "celery-worker"}
    rt = runtime(tmp_path, host)
    rt.up("r1", ["backend"])
    removed = [c for c in host.commands if c[1] == "rm"]
    assert removed == [["docker", "rm", "--force", "d0000000000a"]]
    assert host.commands.index(removed[0]) < next(
        i for i, c in enumerate(host.commands) if "up" in c
    )
    rt.up("r1")
    assert [c for c in host.commands if c[1] == "rm"][1:] == [
        ["docker", "rm", "--force", "d0000000000a", "d0000000000b"]
    ]


def test_up_with_no_dead_container_removes_nothing(tmp_path: Path) -> None:
    host = FakeDocker()
    runtime(tmp_path, host).up("r1")
    assert not [c for c in host.commands if c[1] == "rm"]


def test_up_that_fails_otherwise_keeps_composes_words(tmp_path: Path) -> None:
    host = FakeDocker(up=(1, "Error response from daemon: no space left on device"))
    with pytest.raises(CommandError) as failure:
        runtime(tmp_path, host).up("r1")
    assert "no space left on device" in failure.value.output


def test_images_that_are_the_recorded_ones_are_used_as_they_are(tmp_path: Path) -> None:
    host = FakeDocker()
    check = runtime(tmp_path, host).image_check("r1", {"exampleapp:r1": "sha256:aaa"})
    assert check.ready and check == ImageCheck()
    assert not any(c[1:3] == ["image", "tag"] for c in host.commands)


def test_a_removed_tag_whose_image_is_still_there_is_given_back(tmp_path: Path) -> None:
    host = FakeDocker()
    host.untagged.add("sha256:old")
    rt = runtime(tmp_path, host)
    check = rt.image_check("r0", {"exampleapp:r0": "sha256:old"})
    assert check == ImageCheck(retag={"exampleapp:r0": "sha256:old"})
    rt.retag(check.retag)
    assert host.commands[-1] == ["docker", "image", "tag", "sha256:old", "exampleapp:r0"]
    assert rt.image_check("r0", {"exampleapp:r0": "sha256:old"}).ready


def test_a_tag_that_names_another_image_is_never_used(tmp_path: Path) -> None:
    host = FakeDocker()  # exampleapp:r1 names sha256:aaa; r1 was recorded with sha256:bbb
    rt = runtime(tmp_path, host)
    host.untagged.add("sha256:bbb")
    assert rt.image_check("r1", {"exampleapp:r1": "sha256:bbb"}) == ImageCheck(
        retag={"exampleapp:r1": "sha256:bbb"}, moved=["exampleapp:r1"]
    )
    host.untagged.clear()  # and once the recorded image is gone too: a build, not a re-tag
    assert rt.image_check("r1", {"exampleapp:r1": "sha256:bbb"}) == ImageCheck(
        missing=["exampleapp:r1"], moved=["exampleapp:r1"]
    )


def test_with_no_recorded_ids_the_tag_is_all_there_is(tmp_path: Path) -> None:
    rt = runtime(tmp_path, FakeDocker())
    assert rt.image_check("r1", {}).ready
    assert rt.image_check("r2", {}) == ImageCheck(missing=["exampleapp:r2"])
