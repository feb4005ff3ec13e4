"""A fake host that answers the commands of a database backup like psql, pg_dump and coreutils.

For unit tests of the backup flow: every failure point can be hit on purpose (``fail=``).
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Mapping, Sequence

from deploytools.config import DatabaseSettings, EnvironmentSettings, HostSettings
from deploytools.errors import CommandError
from deploytools.gitignore import IGNORE_FILE
from deploytools.hosts.base import Result
from deploytools.testing import MemoryHost
from deploytools.ui import Ui

PASSWORD = "Sup3r-s3cret"
URL = f"postgresql://app:{PASSWORD}@127.0.0.1:5432/appdb"
BACKUPS = "/srv/app/backups/test"
FREE_KB = 10_000_000
DB_SIZE = 50 * 1024 * 1024
DF_HEADER = "Filesystem 1024-blocks Used Available Capacity Mounted on"
DIRECTORY_ARCHIVE = {"toc.dat": b"toc", "3001.dat.gz": b"rows"}


class FakeDbHost(MemoryHost):
    """Answers the commands of a backup; ``fail`` names a program that exits 1, ``missing``
    one that is not installed."""

    def __init__(self, fail: str = "", free_kb: int = FREE_KB, missing: str = "") -> None:
        super().__init__("mem")
        self.fail = fail
        self.missing = missing
        self.free_kb = free_kb
        self.envs: list[dict[str, str]] = []
        self.secret_envs: list[dict[str, str]] = []
        self.stdins: list[str | None] = []

    def run(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        secret_env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        timeout: float | None = None,
        check: bool = True,
        stdin: str | None = None,
    ) -> Result:
        args = list(argv)
        self.commands.append(args)
        self.envs.append(dict(env or {}))
        self.secret_envs.append(dict(secret_env or {}))
        self.stdins.append(stdin)
        program = args[0]
        if program == "docker" and "exec" in args:  # dump_via_service: run in the container
            words = args[args.index("exec") + 2 :]  # after -T: [-e NAME]... SERVICE PROGRAM
            while words[0] == "-e":
                words = words[2:]
            program = words[1]
        if program == self.fail:
            raise CommandError(args, 1, f"{program}: error: boom", self.name)
        out = ""
        if program == "psql":
            out = f"appdb|15.4|{DB_SIZE}\n0003\n"  # the facts row, then alembic_version
        elif program == "df":
            out = f"{DF_HEADER}\nx 1 1 {self.free_kb} 1% /\n"
        elif program == "pg_dump":
            target = next(a for a in args if a.startswith("--file=")).split("=", 1)[1]
            if "--format=directory" in args:
                self.files.update({f"{target}/{n}": data for n, data in DIRECTORY_ARCHIVE.items()})
            else:
                self.files[target] = b"PGDMP archive bytes"
        elif program == "openssl" and self.missing == "openssl":
            raise CommandError(args, 127, "openssl: command not found", self.name)
        elif program in ("openssl", "sha256sum"):
            files, sep = (args[4:], " *") if program == "openssl" else (args[2:], "  ")
            out = "".join(f"{hashlib.sha256(self.files[p]).hexdigest()}{sep}{p}\n" for p in files)
        elif program == "wc":
            out = "".join(f"{len(self.files[p])} {p}\n" for p in args[3:])
        elif program == "mv":
            for key in [k for k in self.files if k == args[2] or k.startswith(args[2] + "/")]:
                self.files[args[3] + key[len(args[2]) :]] = self.files.pop(key)
        return Result(args, 0, out, "", 0.0)


def settings(**database: object) -> EnvironmentSettings:
    return EnvironmentSettings(
        name="test",
        env_file="config/test.env",
        env_example="config/test.env.example",
        runtime="process",
        hosts=[HostSettings(name="mem", address="127.0.0.1", root="/srv/app")],
        database=DatabaseSettings(min_free_mb=10, **database),  # type: ignore[arg-type]
    )


def quiet_ui() -> Ui:
    return Ui(stderr=io.StringIO(), stdout=io.StringIO())


def names(host: MemoryHost) -> list[str]:
    """What the backup directory holds, but its mark for git (``deploytools.gitignore``)."""
    return [n for n in host.listdir(BACKUPS) if n != IGNORE_FILE]


def journal(host: MemoryHost) -> list[dict[str, object]]:
    return [
        json.loads(line)
        for line in host.files["/srv/app/.deploytools/test/journal.jsonl"].splitlines()
    ]
