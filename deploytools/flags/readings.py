"""The number a guard reads in an answer of the app, and whether it is within the guard's bounds.

A JSON field is found by its dotted path; a Prometheus sample by its name (a counter also by
its family's name, as ``prometheus_client`` exposes ``requests`` as ``requests_total``) and the
labels it must have, in a text exposition parsed by ``prometheus_client``'s own parser. An
answer that does not hold exactly one number there is ``Unreadable``, saying what it held: a
guard that cannot read its number fails, it never passes by default.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from deploytools.flags.plan import Guard

SHOWN = 12  # names or samples listed when the one asked for is not there


class Unreadable(Exception):
    """No number for the guard in the answer; the message says what was there instead."""


def number(guard: Guard, body: str) -> float:
    """The guard's number in ``body`` (its ``field`` or its ``metric``)."""
    if guard.field is not None:
        return json_number(body, guard.field)
    assert guard.metric is not None  # the plan insists on one of them
    return metric_number(body, guard.metric, guard.labels)


def name(guard: Guard) -> str:
    """The number as the guard names it: ``errors.rate`` or ``latency{quantile="0.95"}``."""
    if guard.field is not None:
        return guard.field
    return f"{guard.metric}{_labels(guard.labels)}"


def bounds(guard: Guard) -> str:
    if guard.min is not None and guard.max is not None:
        return f"between {guard.min:g} and {guard.max:g}"
    return f"<= {guard.max:g}" if guard.max is not None else f">= {guard.min:g}"


def outside(guard: Guard, value: float) -> str | None:
    """How ``value`` breaks the guard's bounds (``above its max 0.01``), or None."""
    if guard.max is not None and value > guard.max:
        return f"above its max {guard.max:g}"
    if guard.min is not None and value < guard.min:
        return f"below its min {guard.min:g}"
    return None


def margin(guard: Guard, value: float) -> float:
    """How far ``value`` is inside its bounds (the least of both): the nearest to failing is
    the one worth showing while a stage soaks."""
    room = [guard.max - value] if guard.max is not None else []
    room += [value - guard.min] if guard.min is not None else []
    return min(room)


def json_number(body: str, dotted: str) -> float:
    try:
        data: Any = json.loads(body)
    except ValueError:
        raise Unreadable("the answer is not JSON") from None
    where = "the answer"
    for part in dotted.split("."):
        if isinstance(data, dict) and part in data:
            data = data[part]
        elif isinstance(data, list) and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        else:
            raise Unreadable(f"no field {dotted} in the JSON answer ({where} {_has(data)})")
        where = part
    if isinstance(data, bool) or not isinstance(data, int | float):
        raise Unreadable(f"{dotted} is {json.dumps(data)[:60]}, not a number")
    return _not_nan(float(data), dotted)


def metric_number(body: str, metric: str, labels: Mapping[str, str]) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    try:
        families = list(text_string_to_metric_families(body))
    except ValueError as exc:
        raise Unreadable(f"the answer is not Prometheus text ({exc})") from None
    named = [
        sample
        for family in families
        for sample in family.samples
        if sample.name == metric
        or (family.type == "counter" and family.name == metric and sample.name == f"{metric}_total")
    ]
    picked = [s for s in named if labels.items() <= s.labels.items()]
    wanted = f"{metric}{_labels(labels)}"
    if len(picked) == 1:
        return _not_nan(picked[0].value, wanted)
    if not named:
        there = sorted({s.name for f in families for s in f.samples})
        raise Unreadable(f"no metric {metric} in the answer (its metrics: {_listed(there)})")
    samples = [f"{s.name}{_labels(s.labels)} {s.value:g}" for s in named]
    if not picked:
        raise Unreadable(f"no sample {wanted} in the answer (its samples: {_listed(samples)})")
    raise Unreadable(
        f"{len(picked)} samples match {wanted} ({_listed(samples)}): add labels to pick one"
    )


def _not_nan(value: float, what: str) -> float:
    """NaN compares false with every bound, so it would pass them all: refused."""
    if math.isnan(value):
        raise Unreadable(f"{what} is NaN, not a number")
    return value


def _labels(labels: Mapping[str, str]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f"{k}={json.dumps(v)}" for k, v in sorted(labels.items())) + "}"


def _has(data: Any) -> str:
    if isinstance(data, dict):
        return f"has {_listed(sorted(map(str, data)))}" if data else "is an empty object"
    if isinstance(data, list):
        return f"is a list of {len(data)}"
    return f"is {json.dumps(data)[:60]}"


def _listed(items: list[str]) -> str:
    if not items:
        return "none"
    more = f" and {len(items) - SHOWN} more" if len(items) > SHOWN else ""
    return ", ".join(items[:SHOWN]) + more
