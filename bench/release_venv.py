"""A process deploy that makes its release's virtualenv against one that reuses it, with uv and
with pip (``releases.venv``).

The project is tests/support/venvshop.py's (SQLite, one HTTP service, alembic + SQLAlchemy +
a tiny package from local wheels, no index). Per installer, in turn: a deploy whose requirements
file is new (a comment line with a fresh nonce: another digest, so a virtualenv is made) and a
deploy of other code with the same file (reused); each ``--runs`` times, interleaved. Prints
the median wall time of ``invoke deploy`` for each. Run after ``pip install -e '.[test]'``
(uv is in the test extra) and ``python tests/provision.py`` (the example's wheelhouse):
``.venv/bin/python bench/release_venv.py [--runs 3]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.rootproject import ENV  # noqa: E402
from tests.support.venvshop import Shop, made_by, make_shop  # noqa: E402


def timed_deploy(shop: Shop, extra: str) -> float:
    shop.commit("shopdep==1", extra)
    started = time.monotonic()
    run = shop.run("deploy", "--env", ENV)
    took = time.monotonic() - started
    if run.returncode != 0:
        raise SystemExit(run.output)
    return took


def measure(installer: str, runs: int, where: Path) -> dict[str, list[float]]:
    shop = make_shop(where / installer, installer, keep=2, venv_timeout=900)
    times: dict[str, list[float]] = {"makes": [], "reuses": []}
    try:
        timed_deploy(shop, "")  # the first deploy also makes the SQLite schema: not counted
        for _ in range(runs):
            nonce = f"# {uuid.uuid4().hex}\n"
            times["makes"].append(timed_deploy(shop, nonce))
            tag = str(shop.releases()[-1]["tag"])
            assert made_by(shop.venv_of(tag)) == installer
            times["reuses"].append(timed_deploy(shop, nonce))
    finally:
        shop.run("stack.down", "--env", ENV)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-venv-") as scratch:
        for installer in ("uv", "pip"):
            times = measure(installer, args.runs, Path(scratch))
            made, reused = (statistics.median(times[k]) for k in ("makes", "reuses"))
            print(
                f"{installer:>3}: deploy that makes the virtualenv {made:5.2f} s, that reuses it "
                f"{reused:5.2f} s (median of {args.runs}; all: "
                + ", ".join(f"{k} {[round(t, 2) for t in v]}" for k, v in times.items())
                + ")"
            )


if __name__ == "__main__":
    main()
