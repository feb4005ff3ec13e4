"""``python -m deploytools.gate`` (and ``invoke verify``, ``nox -s verify``): the CI gate.

Exit 0 when nothing failed; 1 when a check failed (or, with ``--strict``, warned or could not
run); 2 for bad input (no config file, an unknown environment, an env file that cannot be read,
a ``--junit`` path in a directory that does not exist), before any check runs.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

from deploytools.configpath import DEFAULT_CONFIG
from deploytools.errors import OperatorError
from deploytools.gate import report
from deploytools.gate.checks import ordered
from deploytools.gate.project import open_project
from deploytools.gate.registry import CHECKS, Result
from deploytools.gate.runner import run_checks
from deploytools.ui import Ui


def parser() -> argparse.ArgumentParser:
    described = "\n".join(f"  {c.name}: {c.description}" for c in ordered())
    p = argparse.ArgumentParser(
        prog="python -m deploytools.gate",
        description=f"{__doc__}\nchecks:\n{described}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", default=DEFAULT_CONFIG, help="the deploy.toml to check")
    p.add_argument("--env", action="append", default=[], help="only this environment (repeat)")
    p.add_argument("--only", action="append", default=[], help="only this check (repeat)")
    p.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    p.add_argument("--junit", help="also write the results to this JUnit (xunit2) file")
    p.add_argument("--strict", action="store_true", help="warnings and checks that could not "
                   "run fail the gate too")  # fmt: skip
    return p


def main(argv: Sequence[str] | None = None, ui: Ui | None = None) -> int:
    args = parser().parse_args(argv)
    ui = ui or Ui(json_mode=args.json)
    try:
        code = _gate(args, ui)
    except OperatorError as exc:
        ui.error(exc.problem, exc.fix)
        return 2
    return code


def _gate(args: argparse.Namespace, ui: Ui) -> int:
    start = time.perf_counter()
    unknown = [name for name in args.only if name not in CHECKS]
    if unknown:
        raise OperatorError(
            f"no check {', '.join(map(repr, unknown))}",
            f"pass --only with one of: {', '.join(CHECKS)}",
        )
    junit = Path(args.junit) if args.junit else None
    if junit is not None and not junit.parent.is_dir():
        raise OperatorError(
            f"--junit {args.junit}: directory {junit.parent} does not exist",
            f"create it first (mkdir -p {junit.parent}) or pass a path in an existing one",
        )
    project = open_project(args.config, args.env, ui.redact)
    chosen = [c for c in ordered() if not args.only or c.name in args.only]
    results = run_checks(project, chosen)
    seconds = time.perf_counter() - start
    if junit is not None:
        report.write_junit(junit, results, ui.redact, strict=args.strict, seconds=seconds)
    if ui.json_mode:
        ui.emit_json(report.as_json(results, strict=args.strict, seconds=seconds))
    else:
        report.table(ui, f"verify {project.shown(project.config)}", results)
    return _summary(ui, results, args.strict, seconds)


def _summary(ui: Ui, results: Sequence[Result], strict: bool, seconds: float) -> int:
    counts = {s: sum(1 for r in results if r.status == s) for s in report.SHOWN}
    said = ", ".join(f"{n} {report.SHOWN[s]}" for s, n in counts.items() if n)
    failing = [r for r in results if r.fails(strict)]
    if failing:
        why = " (--strict: warnings fail)" if strict and not counts["fail"] else ""
        ui.error(
            f"{len(failing)} of {len(results)} check(s) failed{why}: {said} in {seconds:.1f} s",
            "correct what the rows above say (their 'where to look' column names the place)",
        )
        return 1
    ui.success(f"all {len(results)} checks passed ({said}) in {seconds:.1f} s")
    return 0
