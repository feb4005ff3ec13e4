"""Feature flags for the app, from a flagd flag-definition file: standard library only.

    from deploytools.flagclient import is_enabled
    if is_enabled("new-checkout", key=user_id): ...

An app imports this module and nothing else of deploytools (``pip install --no-deps
deploytools`` in the app's environment, or copy this file). It reads any flagd JSON file whose
flags have boolean variants, with no targeting or a ``fractional`` rule (shorthand or with a
bucketing expression of ``var``/``cat``), and answers as flagd's own evaluators do
(flagd's ``fractional`` before its CBOR-based "v3"): murmur3 x86_32 (seed 0, unsigned) of flag
key + targeting key, ``bucket = (hash * total) >> 32``, the first variant whose cumulative
weight is above the bucket. Without a key the shorthand rule (the one deploytools writes) gives
the flag's default variant, never a random one; an explicit expression is evaluated as flagd
does (a missing value reads "null"). A rule this module cannot evaluate gives the default too.

The file is checked at most every ``interval`` seconds (200 ms) when a flag is asked for, and
read again only when it changed (its inode, size or mtime: an atomic rename is always seen).
There is no background thread, so the client is safe across gunicorn and Celery forks. A file
that cannot be parsed keeps the last good flags. A flag the file does not have (or no file)
falls back to the environment variable ``FEATURE_<NAME>`` ("on"/"off" or a percentage 0-100,
bucketed by the same rule), then to off.

``FlagClient.resolve`` says how an answer was reached in OpenFeature's words (reason, error
code, variant, the flag's metadata): ``deploytools.flagprovider`` reports it as an OpenFeature
provider, so both forms give the same answer from one evaluator.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

FLAGS_FILE_VAR = "DEPLOYTOOLS_FLAGS_FILE"
CHECK_INTERVAL = 0.2  # seconds between two looks at the file
MAX_WEIGHT_SUM = 2**31 - 1  # flagd refuses a larger total weight
_MASK = 0xFFFFFFFF
_ON_WORDS = {"on", "true", "yes"}
_OFF_WORDS = {"off", "false", "no", ""}
# OpenFeature's reasons and error codes, as strings: this module imports no SDK.
STATIC, TARGETING_MATCH, DEFAULT, DISABLED, ERROR = (
    "STATIC", "TARGETING_MATCH", "DEFAULT", "DISABLED", "ERROR"
)  # fmt: skip
FLAG_NOT_FOUND, TYPE_MISMATCH, GENERAL = "FLAG_NOT_FOUND", "TYPE_MISMATCH", "GENERAL"


@dataclass(frozen=True)
class Resolution:
    """One flag's answer and how it was reached. ``value`` None: neither the file nor the
    environment variable gives one, and ``reason``/``error`` say why (the caller's default,
    off for ``is_enabled``, applies)."""

    value: bool | None
    variant: str | None = None
    reason: str = DEFAULT
    source: str = ""  # "file", "env" (FEATURE_<NAME>), or "" when none answered
    error: str | None = None  # FLAG_NOT_FOUND, TYPE_MISMATCH, GENERAL
    message: str = ""
    metadata: Mapping[str, Any] = field(default_factory=dict)  # the file's and the flag's


def murmur3_32(data: bytes, seed: int = 0) -> int:
    """MurmurHash3 x86_32 of ``data`` as an unsigned 32-bit integer (``mmh3.hash(data,
    seed, signed=False)``)."""
    h = seed & _MASK
    end = len(data) - len(data) % 4
    for i in range(0, end, 4):
        h ^= _scramble(int.from_bytes(data[i : i + 4], "little"))
        h = ((h << 13 | h >> 19) * 5 + 0xE6546B64) & _MASK
    if len(data) > end:
        h ^= _scramble(int.from_bytes(data[end:], "little"))
    h ^= len(data)
    h = ((h ^ h >> 16) * 0x85EBCA6B) & _MASK
    h = ((h ^ h >> 13) * 0xC2B2AE35) & _MASK
    return h ^ h >> 16


def _scramble(k: int) -> int:
    k = (k * 0xCC9E2D51) & _MASK
    k = (k << 15 | k >> 17) & _MASK
    return (k * 0x1B873593) & _MASK


def bucket(value: str, total: int = 100) -> int:
    """flagd's ``fractional`` bucket of ``value`` (UTF-8) among ``total`` weights: 0..total-1."""
    return (murmur3_32(value.encode("utf-8")) * total) >> 32


def env_name(flag: str) -> str:
    """The environment variable a flag falls back to: ``new-checkout`` -> FEATURE_NEW_CHECKOUT."""
    return "FEATURE_" + re.sub(r"[^A-Z0-9]", "_", flag.upper())


def fractional(bucket_by: str, weights: list[tuple[str, int]]) -> str | None:
    """The variant ``bucket_by`` falls in, weights taken in order (the "on" variant first makes
    a 10 % rollout a subset of 50 %); None where flagd gives none (total too large or zero)."""
    total = sum(w for _, w in weights)
    if not 0 < total <= MAX_WEIGHT_SUM:
        return None
    point, end = bucket(bucket_by, total), 0
    for variant, weight in weights:
        end += weight
        if point < end:
            return variant
    return None


class FlagClient:
    """The flags of one flagd file, re-read when it changes (checked lazily, no thread)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        environ: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
        interval: float = CHECK_INTERVAL,
    ) -> None:
        self.path = os.fspath(path)
        self._environ = os.environ if environ is None else environ
        self._clock = clock
        self._interval = interval
        self._checked: float | None = None
        self._identity: tuple[int, int, int] | None = None
        self._flags: dict[str, Any] = {}
        self.error: str | None = None  # why the last read was refused (the last good flags stay)

    def is_enabled(self, name: str, key: str | None = None) -> bool:
        """Whether flag ``name`` is on for targeting key ``key`` (a user id, a request's key)."""
        return self.resolve(name, key).value is True

    def resolve(
        self, name: str, key: str | None = None, attributes: Mapping[str, Any] | None = None
    ) -> Resolution:
        """Flag ``name`` for ``key`` (``attributes``: more of the evaluation context, which a
        bucketing expression may name): the file's answer, else the environment variable's."""
        self._refresh()
        flag = self._flags.get(name)
        if isinstance(flag, dict):
            found = evaluate(name, flag, key, attributes or {})
        else:
            where = f"{self.path} ({self.error})" if self.error else self.path or "no file"
            missing = f"no flag {name!r} in {where}"
            found = Resolution(None, None, ERROR, "", FLAG_NOT_FOUND, missing)
        return found if found.value is not None else from_env(name, key, self._environ) or found

    def _refresh(self) -> None:
        now = self._clock()
        if self._checked is not None and now - self._checked < self._interval:
            return
        self._checked = now
        try:
            st = os.stat(self.path)
        except OSError:
            self._identity, self._flags = None, {}
            return
        identity = (st.st_ino, st.st_size, st.st_mtime_ns)
        if identity == self._identity:
            return
        try:
            with open(self.path, "rb") as fh:
                self._flags = parse_flags(fh.read())
            self.error = None
        except (OSError, ValueError) as exc:
            self.error = f"{self.path}: {exc}"
        self._identity = identity


def parse_flags(data: bytes) -> dict[str, Any]:
    """The ``flags`` of a flagd JSON document, ``$ref``s to ``$evaluators`` resolved."""
    doc = json.loads(data)
    if not isinstance(doc, dict) or not isinstance(doc.get("flags"), dict):
        raise ValueError('not a flagd flag-definition file: no "flags" object')
    evaluators = doc.get("$evaluators") or {}
    flags = {k: _resolve(v, evaluators) for k, v in doc["flags"].items()}
    top = doc["metadata"] if isinstance(doc.get("metadata"), dict) else {}
    for flag in flags.values():  # flagd's rule: the flag's own metadata over the file's
        if isinstance(flag, dict):
            own = flag.get("metadata")
            flag["metadata"] = {**top, **(own if isinstance(own, dict) else {})}
    return flags


def _resolve(node: Any, evaluators: Mapping[str, Any]) -> Any:
    if isinstance(node, dict):
        if set(node) == {"$ref"} and node["$ref"] in evaluators:
            return _resolve(evaluators[node["$ref"]], evaluators)
        return {k: _resolve(v, evaluators) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve(v, evaluators) for v in node]
    return node


def evaluate(
    name: str, flag: Mapping[str, Any], key: str | None, attributes: Mapping[str, Any]
) -> Resolution:
    """The file's answer for one flag as flagd gives it; value None where flagd gives no
    boolean (disabled, not boolean, a variant that is not there): the caller falls back."""
    meta = flag.get("metadata") or {}
    if flag.get("state") != "ENABLED":
        return Resolution(None, None, DISABLED, "file", metadata=meta)
    variants = flag.get("variants")
    if not isinstance(variants, dict):
        return Resolution(None, None, ERROR, "file", GENERAL, f"flag {name!r} has no variants")
    rule = flag.get("targeting")
    variant = _target(rule, name, key, attributes)
    chosen = flag.get("defaultVariant") if variant is None else variant
    value = variants.get(chosen) if isinstance(chosen, str) else None
    if not isinstance(value, bool):
        error, what = (
            (TYPE_MISMATCH, f"variant {chosen!r} is {value!r}, not a boolean")
            if isinstance(chosen, str) and chosen in variants
            else (GENERAL, f"variant {chosen!r} is not among its variants")
        )
        return Resolution(None, None, ERROR, "file", error, f"flag {name!r}: {what}", meta)
    reason = TARGETING_MATCH if variant is not None else DEFAULT if rule else STATIC
    return Resolution(value, chosen, reason, "file", metadata=meta)


def _target(rule: Any, name: str, key: str | None, attributes: Mapping[str, Any]) -> str | None:
    if not isinstance(rule, dict) or list(rule) != ["fractional"]:
        return None  # no targeting, or a rule this client does not evaluate: the default
    args = rule["fractional"]
    if not isinstance(args, list) or not args:
        return None
    data = {
        **attributes,
        "targetingKey": key,
        "$flagd": {"flagKey": name, "timestamp": int(time.time())},
    }
    if isinstance(args[0], list):
        bucket_by = name + key if key else None
    else:
        bucket_by, args = _logic(args[0], data), args[1:]
    weights = [_weight(arg) for arg in args]
    if not isinstance(bucket_by, str) or not bucket_by or None in weights:
        return None
    return fractional(bucket_by, [w for w in weights if w is not None])


def _weight(arg: Any) -> tuple[str, int] | None:
    """A ``[variant, weight]`` pair (weight 1 when left out, negative as 0, as flagd)."""
    if not isinstance(arg, list) or not 1 <= len(arg) <= 2 or not isinstance(arg[0], str):
        return None
    weight = arg[1] if len(arg) == 2 else 1
    if isinstance(weight, bool) or not isinstance(weight, int):
        return None
    return arg[0], max(0, weight)


def _logic(expr: Any, data: Mapping[str, Any]) -> Any:
    """The JSONLogic a bucketing expression uses: literals, ``var`` (dotted) and ``cat``."""
    if not isinstance(expr, dict):
        return expr
    if list(expr) == ["var"]:
        path = expr["var"][0] if isinstance(expr["var"], list) else expr["var"]
        node: Any = data
        for part in str(path).split("."):
            node = node.get(part) if isinstance(node, Mapping) else None
        return node
    if list(expr) == ["cat"] and isinstance(expr["cat"], list):
        return "".join(_text(_logic(part, data)) for part in expr["cat"])
    return None


def _text(value: Any) -> str:
    """A value as JSONLogic's ``cat`` writes it (JavaScript's way): a missing one is "null"."""
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def from_env(name: str, key: str | None, environ: Mapping[str, str]) -> Resolution | None:
    """The fallback: ``FEATURE_<NAME>`` as on/off or a percentage (the same bucketing); None
    when it is not set or not such a value (then off). A percentage below 100 is off without
    a key, as a file's rule would be."""
    raw = environ.get(env_name(name))
    word = "" if raw is None else raw.strip().lower()
    if raw is None or not (word in _ON_WORDS or word in _OFF_WORDS or _percent(word)):
        return None
    if word in _ON_WORDS or word in _OFF_WORDS:
        return Resolution(word in _ON_WORDS, _variant(word in _ON_WORDS), STATIC, "env")
    percent = int(word)
    value = in_rollout(name, key, percent)
    partial = 0 < percent < 100
    reason = (TARGETING_MATCH if key else DEFAULT) if partial else STATIC
    return Resolution(value, _variant(value), reason, "env")


def _percent(word: str) -> bool:
    return word.isascii() and word.isdigit() and int(word) <= 100


def _variant(value: bool) -> str:
    return "on" if value else "off"


def in_rollout(flag: str, key: str | None, percent: int) -> bool:
    """Whether ``key`` is in a ``percent`` rollout of ``flag``: 100 is everyone, 0 no one, and
    in between the keys whose bucket is below ``percent`` (none without a key)."""
    if percent >= 100 or percent <= 0:
        return percent >= 100
    split = [("on", percent), ("off", 100 - percent)]
    return bool(key) and fractional(f"{flag}{key}", split) == "on"


_clients: dict[str, FlagClient] = {}


def is_enabled(name: str, key: str | None = None) -> bool:
    """``FlagClient(path).is_enabled`` for the file named by ``DEPLOYTOOLS_FLAGS_FILE`` (one
    client per path in this process); without it, the environment variable, then off."""
    path = os.environ.get(FLAGS_FILE_VAR, "")
    if not path:
        found = from_env(name, key, os.environ)
        return found is not None and found.value is True
    client = _clients.get(path)
    if client is None:
        client = _clients[path] = FlagClient(path)
    return client.is_enabled(name, key)
