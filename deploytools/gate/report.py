"""The gate's results as people and CI systems read them: a table, JSON, and a JUnit file.

JUnit is xunit2 (pytest's default family): one ``testcase`` per check and target, a failure
as ``<failure>``, a check that could not run as ``<skipped>`` (a failure with ``--strict``),
a warning in the case's ``system-out`` (a failure with ``--strict``): GitHub's and GitLab's
test reports show each of them as such. Every string goes through the redactor first.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from deploytools.gate.registry import CHECKS, Result
from deploytools.hosts.local import LocalHost
from deploytools.redact import Redactor
from deploytools.ui import Ui

SHOWN = {"pass": "ok", "warn": "warning", "fail": "FAILED", "could-not-run": "could not run"}


def table(ui: Ui, title: str, results: Sequence[Result]) -> None:
    """One row per item; a check's time on the first row of its target."""
    rows = []
    for result in results:
        for n, item in enumerate(result.items):
            time = f"{result.seconds:.2f} s" if n == 0 else ""
            rows.append(
                (result.check, result.target, SHOWN[item.status], time, item.where, item.message)
            )
    ui.table(
        title,
        ["check", "target", "result", "time", "where to look", "message"],
        rows,
        styles=["bold", "cyan", "", "", "magenta", ""],
        ids=["check", "result"],
    )


def as_json(results: Sequence[Result], *, strict: bool, seconds: float) -> dict[str, Any]:
    return {
        "ok": not any(r.fails(strict) for r in results),
        "strict": strict,
        "seconds": round(seconds, 3),
        "results": [
            {
                "check": r.check,
                "target": r.target,
                "status": r.status,
                # what the check uses beyond the project's files, when it is there
                "needs": sorted(CHECKS[r.check].needs) if r.check in CHECKS else [],
                "seconds": round(r.seconds, 3),
                "items": [
                    {"status": i.status, "message": i.message, "where": i.where} for i in r.items
                ],
            }
            for r in results
        ],
    }


def write_junit(
    path: Path, results: Sequence[Result], redact: Redactor, *, strict: bool, seconds: float
) -> None:
    """Write the JUnit file atomically (a CI step that uploads it never reads half of one)."""
    import xml.etree.ElementTree as ET

    failed = [r for r in results if r.fails(strict)]
    skipped = [r for r in results if not strict and r.status == "could-not-run"]
    counts = {
        "tests": str(len(results)),
        "failures": str(len(failed)),
        "errors": "0",
        "skipped": str(len(skipped)),
        "time": f"{seconds:.3f}",
    }
    suites = ET.Element("testsuites", {"name": "deploytools verify", **counts})
    when = datetime.now(UTC).replace(microsecond=0).isoformat()
    suite = ET.SubElement(
        suites,
        "testsuite",
        {"name": "deploytools.verify", "timestamp": when, "hostname": socket.gethostname(),
         **counts},
    )  # fmt: skip
    for result in results:
        case = ET.SubElement(
            suite,
            "testcase",
            classname=f"verify.{result.check}",
            name=redact(result.target),
            time=f"{result.seconds:.3f}",
        )
        text = "\n".join(
            redact(f"{SHOWN[i.status]}: {i.message}" + (f" [{i.where}]" if i.where else ""))
            for i in result.items
        )
        worst = [redact(i.message) for i in result.items if i.status == result.status]
        if result in failed:
            failure = ET.SubElement(case, "failure", message=worst[0], type=result.status)
            failure.text = text
        elif result in skipped:
            ET.SubElement(case, "skipped", message=worst[0])
            ET.SubElement(case, "system-out").text = text
        else:
            ET.SubElement(case, "system-out").text = text
    ET.indent(suites)
    data = ET.tostring(suites, encoding="utf-8", xml_declaration=True)
    LocalHost().write_file(str(path), data + b"\n", mode=0o644)
