"""Compose files read in Python, for checks that must run where no Docker client is: the
services of several files merged as compose merges them (later files win, mappings merged,
``!reset`` and ``!override`` honoured), and the ``${VAR}`` references compose would fill in."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deploytools.errors import OperatorError
from deploytools.projectscan import VARIABLE, yaml_module

HAS_DEFAULT = {"-", ":-", "+", ":+"}


@dataclass(frozen=True)
class Reset:
    """``!reset``: the key is dropped from what the files before set."""


def _loader() -> Any:
    """A safe loader that also knows compose's ``!reset`` and ``!override`` tags."""
    yaml = yaml_module()

    class Loader(yaml.SafeLoader):  # type: ignore[misc,name-defined]
        pass

    def override(loader: Any, node: Any) -> Any:
        if isinstance(node, yaml.MappingNode):
            return loader.construct_mapping(node, deep=True)
        if isinstance(node, yaml.SequenceNode):
            return loader.construct_sequence(node, deep=True)
        return loader.construct_scalar(node)

    Loader.add_constructor("!reset", lambda loader, node: Reset())
    Loader.add_constructor("!override", override)
    return Loader


def read(path: Path, shown: str) -> dict[str, Any]:
    """One compose file's mapping; a missing, unreadable or malformed one is an operator
    error naming it (and the line, for YAML)."""
    yaml = yaml_module()
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_loader())
    except FileNotFoundError:
        raise OperatorError(f"{shown} not found", "check compose.files in config") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise OperatorError(f"cannot read {shown}: {exc}", "check the file") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise OperatorError(f"{shown} is not valid YAML{at}", "fix the syntax there") from None
    if not isinstance(data, dict) or not isinstance(data.get("services", {}), dict):
        raise OperatorError(f"{shown}: no `services:` mapping", "see the compose file reference")
    return data


def merge(base: Mapping[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    """``top`` over ``base`` as compose merges files: mappings key by key, anything else
    replaced, ``!reset`` removing the key."""
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, Reset):
            merged.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def services(data: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    found = data.get("services") or {}
    return {str(name): dict(spec or {}) for name, spec in found.items()}


def depends_on(spec: Mapping[str, Any]) -> list[str]:
    """The services named by ``depends_on``, in its short (list) or long (mapping) form."""
    value = spec.get("depends_on") or []
    return [str(name) for name in value]


def required_variables(data: Any) -> Iterator[str]:
    """The variables compose must be given a value for: ``${NAME}``, ``$NAME``, ``${NAME?}``
    and ``${NAME:?}`` anywhere in the file (a default or ``+`` alternative needs none)."""
    if isinstance(data, str):
        for match in VARIABLE.finditer(data):
            name = match["braced"] or match["bare"]
            if name and match["op"] not in HAS_DEFAULT:
                yield name
    elif isinstance(data, Mapping):
        for value in data.values():
            yield from required_variables(value)
    elif isinstance(data, list):
        for value in data:
            yield from required_variables(value)
