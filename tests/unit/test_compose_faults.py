"""ComposeRuntime when the engine goes away or its disk is full, against a scripted docker CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from deploytools.errors import CommandError, DeployFailure
from tests.unit.test_compose_runtime import FakeDocker, runtime

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
