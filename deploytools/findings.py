"""A problem found by a check: what it is, where, and how to fix it, never the secret itself.

Env validation and the verify gate (``deploytools.gate``) report lists of these, so every
check can show all of its problems at once as one table or as JSON.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Finding:
    rule: str
    problem: str
    fix: str = ""
    key: str = ""
    line: int | None = None
    severity: Severity = "error"

    def with_severity(self, severity: Severity) -> Finding:
        return replace(self, severity=severity)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def count(findings: list[Finding], severity: Severity) -> int:
    return sum(1 for f in findings if f.severity == severity)
