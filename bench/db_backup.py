"""What a deploytools backup costs next to a bare ``pg_dump -Fc`` (issue 3).

Generates a database of at least --size-mb (default 500) with generate_series, then in each
round, interleaved: raw ``pg_dump -Fc``, ``db.backup`` without verification (custom format),
``db.backup`` in directory format with ``-j 2``, then verification alone (bare
``pg_restore -f /dev/null``, and ``db.verify_backup``: checksum + full read). Prints medians;
the toolkit's overhead is the ratio to raw pg_dump (target <= 1.05).

Rerun (as root after provisioning: a throwaway cluster is started and removed):
    python bench/db_backup.py [--runs 3] [--size-mb 500]
or against an existing server:  python bench/db_backup.py --url postgresql://u:p@127.0.0.1/db
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg
from rich.console import Console

from deploytools import db, dburl
from deploytools.commands import postgres as pg
from deploytools.config import DatabaseSettings, EnvironmentSettings
from deploytools.hosts.local import LocalHost
from deploytools.ui import Ui
from tests.support.backups import journal_for

MB = 1024 * 1024
ROW_BYTES = 200  # what one generated row takes on disk, heap and index, roughly
TABLES = ("bench_events_a", "bench_events_b")  # two tables, so that -j 2 has two to share


def generate(url: str, size_mb: int) -> int:
    """Fill the database until pg_database_size >= size_mb; returns the size in bytes."""
    with psycopg.connect(url, autocommit=True) as conn:
        size = int(conn.execute("SELECT pg_database_size(current_database())").fetchone()[0])
        batch = 0
        while size < size_mb * MB:
            rows = max((size_mb * MB - size) // ROW_BYTES // len(TABLES), 10_000)
            for table in TABLES:
                conn.execute(
                    f"CREATE TABLE IF NOT EXISTS {table} (id bigint, at timestamptz, "
                    "kind int, a text, b text, payload text)"
                )
                conn.execute(
                    f"INSERT INTO {table} SELECT {batch} * 100000000 + i, "
                    "now() - i * interval '1 second', i % 17, md5(i::text), md5((i * 7)::text), "
                    "repeat(md5((i % 1000)::text), 2) "
                    f"FROM generate_series(1, {rows}) i"
                )
            batch += 1
            size = int(conn.execute("SELECT pg_database_size(current_database())").fetchone()[0])
        conn.execute("VACUUM ANALYZE")
        return size


def timed(action: Callable[[], object]) -> tuple[float, float]:
    """Wall seconds, and CPU seconds of the client processes it ran (pg_dump, psql, openssl):
    the CPU figure is the steadier one on a busy machine."""
    started, before = time.perf_counter(), _children_cpu()
    action()
    return time.perf_counter() - started, _children_cpu() - before


def _children_cpu() -> float:
    times = os.times()
    return times.children_user + times.children_system


def settings_for(root: Path, url: str, **database: object) -> EnvironmentSettings:
    (root / "bench.env").write_text(f"DATABASE_URL={url}\n")
    return EnvironmentSettings(
        name="bench",
        env_file="bench.env",
        env_example="bench.env.example",
        runtime="process",
        root=root,
        database=DatabaseSettings(min_free_mb=0, **database),  # type: ignore[arg-type]
    )


def one_round(url: str, root: Path) -> tuple[dict[str, tuple[float, float]], int]:
    """(wall, client CPU) seconds for each contender, and the custom archive's size."""
    conn = dburl.normalise(url).conn
    host = LocalHost()
    ui = Ui(err=Console(file=io.StringIO()), out=Console(file=io.StringIO()))
    custom = settings_for(root, url)
    directory = settings_for(root, url, format="directory", jobs=2)
    raw_file = str(root / "raw.dump")
    made: list[db.Manifest] = []
    seconds = {
        "raw": timed(lambda: subprocess.run(pg.dump(conn, raw_file), env=conn.env(), check=True)),
        "toolkit": timed(
            lambda: made.append(
                db.backup(custom, host, ui, journal_for(custom, host), verify=False)
            )
        ),
        "raw_verify": timed(lambda: subprocess.run(pg.read_archive(raw_file), check=True)),
        "toolkit_verify": timed(lambda: db.verify_backup(custom, host, ui, made[0].id)),
    }
    shutil.rmtree(root / "backups")
    Path(raw_file).unlink()
    seconds["directory"] = timed(
        lambda: db.backup(directory, host, ui, journal_for(directory, host), verify=False)
    )
    shutil.rmtree(root / "backups")
    return seconds, made[0].size


def run(url: str, runs: int, size_mb: int) -> None:
    started = time.perf_counter()
    size = generate(url, size_mb)
    print(f"database: {size / MB:.0f} MB (ready in {time.perf_counter() - started:.0f} s)")
    wall: dict[str, list[float]] = {}
    cpu: dict[str, list[float]] = {}
    archive = 0
    with tempfile.TemporaryDirectory(prefix="db-bench-") as tmp:
        for n in range(1, runs + 1):
            seconds, archive = one_round(url, Path(tmp))
            for key, (w, c) in seconds.items():
                wall.setdefault(key, []).append(w)
                cpu.setdefault(key, []).append(c)
            shown = ", ".join(f"{k} {w:.2f}s (cpu {c:.2f}s)" for k, (w, c) in seconds.items())
            print(f"round {n}/{runs}: {shown}", flush=True)
    med = {k: statistics.median(v) for k, v in wall.items()}
    cpu_med = {k: statistics.median(v) for k, v in cpu.items()}
    paired = statistics.median(t / r for t, r in zip(wall["toolkit"], wall["raw"], strict=True))
    print(f"\nmedians of {runs} run(s); database {size / MB:.0f} MB, archive {archive / MB:.0f} MB")
    print(f"  {'':<42} {'wall':>8}  {'ratio':>6}  {'client cpu':>10}")
    rows = [
        ("raw pg_dump -Fc", "raw"),
        ("db.backup custom, no verification", "toolkit"),
        ("db.backup directory -j 2, no verification", "directory"),
        ("verify: pg_restore -f /dev/null", "raw_verify"),
        ("verify: db.verify_backup (sha256 + read)", "toolkit_verify"),
    ]
    for label, key in rows:
        ratio = f"{med[key] / med['raw']:6.3f}" if key in ("raw", "toolkit", "directory") else ""
        print(f"  {label:<42} {med[key]:7.2f}s  {ratio:>6}  {cpu_med[key]:9.2f}s")
    print(
        f"overhead without verification: ratio of medians {med['toolkit'] / med['raw']:.3f},"
        f" median of per-round ratios {paired:.3f} (target <= 1.05)"
    )
    print("rerun: python bench/db_backup.py [--runs N] [--size-mb M] [--url URL]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--size-mb", type=int, default=500)
    parser.add_argument("--url", help="an existing database (default: a throwaway cluster)")
    args = parser.parse_args()
    with ExitStack() as stack:
        url = args.url
        if url is None:
            from tests.support.postgres_server import PostgresServer

            server = stack.enter_context(PostgresServer())
            url = server.create_database("bench_backup")
        run(url, args.runs, args.size_mb)


if __name__ == "__main__":
    main()
