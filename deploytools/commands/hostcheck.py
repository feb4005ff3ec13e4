"""The one command that asks a host all that ``hosts.check`` wants to know after the login.

Each remote command costs an SSH exec (an sshd fork, a shell, a round trip): one probe instead
of one command per question keeps a check of many hosts short. The script is fixed text; what
varies (the time limit, the root, the app's interpreter) are its positional arguments.

Its parts run in this order, each for at most ``limit`` seconds (coreutils ``timeout``, which
every command of ``SshHost`` already runs under; exit 124 when it was out of time), each
whatever the others said: the host's time (``start``), the engine (``docker`` and ``compose``,
or ``python``), free space on the root (``df``), a temp file made in the root and removed
(``mktemp``, then ``rm`` if it was made), the host's time again (``end``: what the probe
itself took is no clock skew). A program the host lacks is exit 127, as a shell says it.

The report, on stdout, is one ``=NAME CODE`` line per part, then its output (stderr included),
each line behind a ``|``: whatever a program prints cannot pass for the report's own lines.
"""

from __future__ import annotations

from dataclasses import dataclass

Argv = list[str]
Engine = str  # "docker" (docker and compose v2), "python" (the app's interpreter) or "none"

ENGINES = ("docker", "python", "none")
PARTS = ("start", "docker", "compose", "python", "df", "mktemp", "rm", "end")
TIMED_OUT = 124  # coreutils timeout's exit code when the command ran out of time
NOT_FOUND = 127
KILL_AFTER = 2  # seconds between a part's TERM and its KILL
TEMP_NAME = ".deploytools-check.XXXXXXXX"

SCRIPT = r"""
limit=$1 root=$2 engine=$3 python=$4
part() {
  name=$1; shift
  if command -v "$1" >/dev/null 2>&1; then
    out=$(timeout -k KILL_AFTER "$limit" "$@" 2>&1 </dev/null); code=$?
  else
    out="$1: command not found"; code=127
  fi
  printf '=%s %s\n' "$name" "$code"
  printf '%s\n' "$out" | while IFS= read -r line; do printf '|%s\n' "$line"; done
}
part start date +%s.%N
case $engine in
  docker) part docker docker version --format '{{.Server.Version}}'
          part compose docker compose version --short ;;
  python) part python "$python" --version ;;
esac
part df df -P -k -- "$root"
part mktemp mktemp -p "$root" TEMP_NAME
if [ "$code" = 0 ]; then part rm rm -f -- "$out"; fi
part end date +%s.%N
""".replace("KILL_AFTER", str(KILL_AFTER)).replace("TEMP_NAME", TEMP_NAME)


@dataclass(frozen=True)
class Part:
    """What one part of the probe left: its exit code and its output (stderr included)."""

    code: int
    output: str

    @property
    def timed_out(self) -> bool:
        return self.code == TIMED_OUT


def probe(limit: float, root: str, engine: Engine, python: str = "") -> Argv:
    """The probe of a host whose deploy root is ``root``; ``python`` for the engine "python"."""
    if engine not in ENGINES:
        raise ValueError(f"engine {engine!r} is not one of {ENGINES}")
    return ["sh", "-c", SCRIPT, "sh", f"{limit:g}", root, engine, python]


def budget(limit: float) -> float:
    """How long the whole probe may take: every part at its limit and its kill grace."""
    return len(PARTS) * (limit + KILL_AFTER)


def shown(part: str, python: str = "") -> str:
    """The words that name ``part``'s command in a message (as ``hosts.check`` always said)."""
    words = {
        "start": "date +%s.%N",
        "end": "date +%s.%N",
        "docker": "docker version",
        "compose": "docker compose",
        "python": f"{python} --version",
        "df": "df -P",
        "mktemp": "mktemp -p",
        "rm": "rm -f",
    }
    return words[part]


def parse(report: str) -> dict[str, Part]:
    """The parts a probe's report says, by name; a part it does not name was not run."""
    parts: dict[str, Part] = {}
    name, code, lines = "", 0, list[str]()
    for line in report.splitlines():
        if line.startswith("="):
            if name:
                parts[name] = Part(code, "\n".join(lines))
            said, _, number = line[1:].partition(" ")
            name, code, lines = said, int(number) if number.isdigit() else -1, []
        elif line.startswith("|") and name:
            lines.append(line[1:])
    if name:
        parts[name] = Part(code, "\n".join(lines))
    return parts
