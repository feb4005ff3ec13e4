"""A runtime whose services are in states a unit test sets (and may change as its clock runs):
for the health probes and the checks built on them, without processes or containers."""

from __future__ import annotations

from collections.abc import Sequence

from deploytools.errors import OperatorError
from deploytools.hosts.base import Result
from deploytools.runtime.base import ServiceStatus


class FakeRuntime:
    """Services in a state that a test may change as the clock runs."""

    kind = "process"

    def __init__(self, states: dict[str, ServiceStatus], oneshot: Sequence[str] = ()) -> None:
        self.states = states
        self.oneshot = set(oneshot)
        self.status_calls = 0

    def services(self) -> list[str]:
        return list(self.states)

    def require_services(self, names: Sequence[str]) -> list[str]:
        unknown = [n for n in names if n not in self.states]
        if unknown:
            raise OperatorError(f"unknown service(s) {', '.join(unknown)}")
        return list(names) or self.services()

    def status(self) -> dict[str, ServiceStatus]:
        self.status_calls += 1
        return dict(self.states)

    def one_shots(self) -> set[str]:
        return set(self.oneshot)

    def logs(self, service: str, lines: int = 50) -> str:
        return "".join(f"{service} line {i}\n" for i in range(30)[-lines:])

    def exec(self, service: str, command: Sequence[str]) -> Result:
        raise NotImplementedError


def running(name: str, health: str = "") -> ServiceStatus:
    return ServiceStatus(name, "running", health=health, release="r1", detail=f"{name}-1")
