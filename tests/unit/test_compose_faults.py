"""ComposeRuntime when the engine goes away or its disk is full, against a scripted docker CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deploytools.commands import compose
from deploytools.errors import CommandError, DeployFailure
from tests.unit.test_compose_runtime import PS_ROWS, FakeDocker, runtime

GONE = "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is it running?"
# What compose v2.40 printed when dockerd was stopped during `up` (seen on a real engine).
BROKEN_OFF = (
    "Error response from daemon: failed to update store for object type *libnetwork.endpoint: "
    "open : no such file or directory"
)
DF = (
    "Filesystem 1024-blocks Used Available Capacity Mounted on\n"
    "/dev/vdb 2097152 {used} {free} 90% /var/lib/docker\n"
)
MB = 1024 * 1024


class Engine(FakeDocker):
    """A FakeDocker whose engine can stop, with a data root, image sizes and logs."""

    def __init__(self, **answers: tuple[int, str]) -> None:
        super().__init__(**answers)
        self.stops_during_up = False
        self.free_kb = 10 * 1024 * 1024
        self.images["exampleapp:r2"] = "sha256:bbb"
        self.sizes = {"exampleapp:r1": 100 * MB, "exampleapp:r2": 150 * MB}
        self.logs = {"backend": "started\n", "celery-worker": "started\n"}

    def _answer(self, argv: list[str]) -> tuple[int, str]:
        if argv[0] == "df":
            if argv[-1] != "/var/lib/docker":
                return 1, f"df: {argv[-1]}: No such file or directory"
            return 0, DF.format(used=2097152 - self.free_kb, free=self.free_kb)
        if argv[1] == "info":
            return self.answers.get("info", (0, "/var/lib/docker\n"))
        if argv[1:5] == ["image", "inspect", "--format", "{{.Size}}"]:
            found = [str(self.sizes[i]) for i in argv[5:] if i in self.sizes]
            return (0 if len(found) == len(argv[5:]) else 1), "\n".join(found)
        if argv[1] == "compose" and "up" in argv:
            self.commands[-1].append("# up ran")
            if self.stops_during_up:
                self.answers["server"] = (1, GONE)
                self.answers["image"] = (1, GONE)
                return 1, f" Container p-backend-1  Recreate\n{BROKEN_OFF}\n"
        if argv[1] == "compose" and "logs" in argv:
            return 0, self.logs[argv[-1]]
        if argv[1:3] == ["image", "inspect"] and "image" in self.answers:
            return self.answers["image"]
        return super()._answer(argv)

    def ups(self) -> int:
        return sum("# up ran" in c for c in self.commands)


def test_an_engine_that_stops_during_up_is_said_to_be_unreachable(tmp_path: Path) -> None:
    """dockerd stopped mid-`up`: compose fails with whatever broke first; `docker version`
    then tells that the engine went away, and the message says so with both answers."""
    host = Engine()
    host.stops_during_up = True
    with pytest.raises(DeployFailure) as failure:
        runtime(tmp_path, host).up("r1")
    problem = failure.value.problem
    assert problem.startswith("the Docker engine on web-1 is unreachable: `docker compose up`")
    assert BROKEN_OFF in problem and GONE in problem
    assert "start the Docker daemon" in failure.value.fix
    assert not isinstance(failure.value, CommandError)


def test_an_image_asked_of_a_gone_engine_is_not_a_missing_image(tmp_path: Path) -> None:
    """Today's words were "images of release 'r1' are not on web-1": the engine was gone."""
    host = Engine(image=(1, GONE))
    rt = runtime(tmp_path, host)
    rt.check()
    with pytest.raises(DeployFailure) as failure:
        rt.up("r1")
    assert failure.value.problem == (
        "the Docker engine on web-1 is unreachable: `docker image inspect` failed with "
        f"{GONE!r}"
    )
    assert "are not on" not in str(failure.value)
    assert host.ups() == 0


def test_a_failing_up_with_the_engine_answering_keeps_composes_words(tmp_path: Path) -> None:
    class PortTaken(Engine):
        def _answer(self, argv: list[str]) -> tuple[int, str]:
            if argv[1] == "compose" and "up" in argv:
                return 1, "Bind for 127.0.0.1:8000 failed: port is already allocated"
            return super()._answer(argv)

    with pytest.raises(CommandError) as failure:
        runtime(tmp_path, PortTaken()).up("r1")
    assert "port is already allocated" in failure.value.problem


def test_unreachable_names_the_engine_only_when_it_does_not_answer(tmp_path: Path) -> None:
    host = Engine()
    rt = runtime(tmp_path, host)
    assert rt.unreachable(5.0) is None
    host.answers["server"] = (1, GONE)
    assert rt.unreachable(5.0) == "the Docker engine on web-1"


def test_up_refuses_before_anything_stops_when_the_data_root_lacks_room(tmp_path: Path) -> None:
    host = Engine()
    host.free_kb = 300 * 1024  # 300 MB: not r2's 150 MB image + the 256 MB margin
    with pytest.raises(DeployFailure) as failure:
        runtime(tmp_path, host).up("r2")
    assert failure.value.problem == (
        "not enough room to start release r2 on web-1: Docker's data root /var/lib/docker has "
        "300.0 MB free, 406.0 MB needed (images 150.0 MB + compose.min_free_mb 256 MB); "
        "nothing was stopped"
    )
    assert "docker image prune" in failure.value.fix
    assert "environments.t.compose.min_free_mb" in failure.value.fix
    assert host.ups() == 0
    assert ["docker", "info", "--format", "{{.DockerRootDir}}"] in host.commands
    assert ["df", "-P", "-k", "--", "/var/lib/docker"] in host.commands
    host.free_kb = 410 * 1024
    runtime(tmp_path, host).up("r2")
    assert host.ups() == 1


def test_what_already_runs_needs_no_room(tmp_path: Path) -> None:
    """An undo returning to the release that still runs is never refused for room."""
    host = Engine()
    host.ps = json.dumps([dict(row, State="running") for row in PS_ROWS])
    host.free_kb = 0
    runtime(tmp_path, host).up("r1")
    assert host.ups() == 1
    assert not [c for c in host.commands if c[0] == "df"]


def test_only_the_services_to_create_count(tmp_path: Path) -> None:
    """backend runs r1; the worker (restarting) is re-created: its image is what it needs."""
    host = Engine()
    host.config["services"]["celery-worker"] = {"image": "worker:${RELEASE_ID}"}
    host.images["worker:r1"] = "sha256:ccc"
    host.sizes["worker:r1"] = 10 * MB
    host.free_kb = 265 * 1024  # 10 MB + 256 MB would not fit; 100 MB more (backend) even less
    with pytest.raises(DeployFailure, match=r"266\.0 MB needed \(images 10\.0 MB"):
        runtime(tmp_path, host).up("r1")


def test_a_data_root_this_host_cannot_see_is_not_checked(tmp_path: Path) -> None:
    """A remote DOCKER_HOST or Docker Desktop: df here knows nothing of that disk."""
    host = Engine(info=(0, "/mnt/elsewhere/docker\n"))
    host.free_kb = 0
    runtime(tmp_path, host).up("r2")
    assert host.ups() == 1


def test_the_room_questions_argv() -> None:
    assert compose.data_root() == ["docker", "info", "--format", "{{.DockerRootDir}}"]
    assert compose.image_sizes(["a:1", "b:1"], "/usr/bin/docker") == [
        "/usr/bin/docker", "image", "inspect", "--format", "{{.Size}}", "a:1", "b:1"
    ]  # fmt: skip


def test_the_plan_of_up_says_the_room_check(tmp_path: Path) -> None:
    plan = runtime(tmp_path, Engine()).plan_up("r2")
    assert plan[1] == "first: free space on Docker's data root >= the images + 256 MB"


def test_a_service_that_died_of_a_full_disk_is_named_with_where(tmp_path: Path) -> None:
    host = Engine()  # the worker is restarting (PS_ROWS)
    rt = runtime(tmp_path, host)
    assert rt.out_of_space() is None  # its log says nothing of the disk
    host.logs["celery-worker"] = "OSError: [Errno 28] No space left on device: '/app/x'\n"
    host.free_kb = 512
    assert rt.out_of_space() == (
        "a disk is full on web-1: celery-worker stopped with 'No space left on device' "
        "(Docker's data root /var/lib/docker: 0.5 MB free)"
    )
    host.free_kb = 300 * 1024  # more than compose.min_free_mb: not the data root, then
    assert rt.out_of_space() == (
        "a disk is full on web-1: celery-worker stopped with 'No space left on device' "
        "(Docker's data root /var/lib/docker: 300.0 MB free; the full one is a volume or tmpfs "
        "the service writes to)"
    )
    host.logs["backend"] = "No space left on device\n"  # running: it did not stop of it
    assert "backend" not in (rt.out_of_space() or "")
