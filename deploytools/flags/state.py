"""The state that apps read: a flagd flag-definition JSON file, one per environment and host.

Each flag has boolean variants ``on``/``off``; "off" and "on" are the default variant with no
targeting, a percentage is the ``fractional`` rule of flags/bucketing.py. Our metadata (stage,
who, when) travels inside the same file, in flagd's ``metadata`` objects (the file's and each
flag's), so that one atomic rename changes both and any flagd reader ignores it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from deploytools.errors import OperatorError
from deploytools.flags.bucketing import targeting
from deploytools.hosts.base import Host

SCHEMA = "https://flagd.dev/schema/v0/flags.json"
FLAG_SET_ID = "deploytools"
VARIANTS = {"on": True, "off": False}
NEW_FILE_MODE = 0o644  # the app's user reads it; it holds no secret
FIX = (
    "repair it by hand (git has no copy: it is state), or remove it and set the flags again "
    "with `invoke flags.set NAME on|off|PERCENT`"
)


@dataclass(frozen=True)
class FlagValue:
    percent: int  # 0 is off, 100 on
    changed_by: str = ""
    changed_at: str = ""  # ISO 8601, UTC


@dataclass(frozen=True)
class FlagState:
    flags: Mapping[str, FlagValue] = field(default_factory=dict)
    stage: str | None = None  # the last stage applied (a change by hand keeps it)
    changed_by: str = ""
    changed_at: str = ""

    def changed(
        self, settings: Mapping[str, int], *, by: str, at: str, stage: str | None
    ) -> FlagState:
        """The state with ``settings`` applied (by a stage, or by hand: ``stage`` is then the
        current one); a flag whose percentage is unchanged keeps who changed it and when."""
        flags = dict(self.flags)
        for name, percent in settings.items():
            if name not in flags or flags[name].percent != percent:
                flags[name] = FlagValue(percent, by, at)
        return replace(self, flags=flags, stage=stage, changed_by=by, changed_at=at)


def shown(percent: int) -> str:
    """A setting as the operator writes it."""
    return {0: "off", 100: "on"}.get(percent, f"{percent} %")


def render(state: FlagState) -> bytes:
    """The flagd JSON document of ``state``."""
    top: dict[str, Any] = {"flagSetId": FLAG_SET_ID}
    if state.stage is not None:
        top["stage"] = state.stage
    top |= _who(state.changed_by, state.changed_at)
    doc = {
        "$schema": SCHEMA,
        "metadata": top,
        "flags": {name: _flag(value) for name, value in sorted(state.flags.items())},
    }
    return (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def _flag(value: FlagValue) -> dict[str, Any]:
    out: dict[str, Any] = {
        "state": "ENABLED",
        "variants": VARIANTS,
        "defaultVariant": "on" if value.percent == 100 else "off",
    }
    if 0 < value.percent < 100:
        out["targeting"] = targeting(value.percent)
    out["metadata"] = _who(value.changed_by, value.changed_at)
    return out


def _who(by: str, at: str) -> dict[str, str]:
    return {"changedBy": by, "changedAt": at}


def parse(data: bytes, path: str) -> FlagState:
    """Read back a state file that deploytools wrote; anything else (invalid JSON, a flag
    edited into a shape it does not write) is an operator error naming the file and flag."""
    try:
        doc = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise OperatorError(f"flag state {path}: not UTF-8 text", FIX) from None
    except json.JSONDecodeError as exc:
        raise OperatorError(
            f"flag state {path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})",
            FIX,
        ) from None
    flags = doc.get("flags") if isinstance(doc, dict) else None
    if not isinstance(flags, dict):
        raise OperatorError(f'flag state {path}: no "flags" object: not a flagd file', FIX)
    top = _metadata(doc)
    stage = top.get("stage")
    return FlagState(
        flags={name: _value(name, flag, path) for name, flag in flags.items()},
        stage=stage if isinstance(stage, str) else None,
        changed_by=str(top.get("changedBy", "")),
        changed_at=str(top.get("changedAt", "")),
    )


def _metadata(node: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = node.get("metadata")
    return meta if isinstance(meta, dict) else {}


def _value(name: str, flag: Any, path: str) -> FlagValue:
    percent = _percent(flag) if isinstance(flag, dict) else None
    if percent is None:
        raise OperatorError(
            f"flag state {path}: flags.{name} is not on, off or a percentage as deploytools "
            "writes them (edited by hand?)",
            FIX,
        )
    meta = _metadata(flag)
    return FlagValue(percent, str(meta.get("changedBy", "")), str(meta.get("changedAt", "")))


def _percent(flag: Mapping[str, Any]) -> int | None:
    """The percentage a flag's definition says, or None for a shape we do not write."""
    if flag.get("state") != "ENABLED" or flag.get("variants") != VARIANTS:
        return None
    rule, default = flag.get("targeting"), flag.get("defaultVariant")
    if rule in (None, {}):
        return {"on": 100, "off": 0}.get(default) if isinstance(default, str) else None
    try:
        percent = rule["fractional"][0][1]
    except (KeyError, IndexError, TypeError):
        return None
    ours = type(percent) is int and 0 < percent < 100 and rule == targeting(percent)
    return percent if ours and default == "off" else None


def read(host: Host, path: str) -> FlagState | None:
    """The state file on ``host``, None if there is none yet."""
    try:
        data = host.read_file(path)
    except FileNotFoundError:
        return None
    return parse(data, path)


def write(host: Host, path: str, state: FlagState) -> None:
    """Replace the state file atomically (temp file + rename): a reader sees the old file or
    the new one, never half of one. An existing file keeps its mode; a new one is 0644.
    The directory is the caller's (the environment's state directory)."""
    mode = None if host.exists(path) else NEW_FILE_MODE
    host.write_file(path, render(state), mode=mode)
