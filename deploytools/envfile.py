"""Env files: read through python-dotenv; every value read is a candidate secret for redaction."""

from __future__ import annotations

from pathlib import Path

from deploytools.errors import OperatorError


def load_values(path: Path) -> dict[str, str]:
    """The env file's values (``None`` values, i.e. bare keys, become empty strings)."""
    from dotenv import dotenv_values

    if not path.is_file():
        raise OperatorError(
            f"env file {path} not found",
            f"create it from {path.name}.example: invoke env.init --env NAME",
        )
    try:
        raw = dotenv_values(path, interpolate=False)
    except (OSError, UnicodeDecodeError) as exc:
        raise OperatorError(
            f"cannot read env file {path}: {exc}", "check its permissions and encoding"
        ) from None
    return {k: v or "" for k, v in raw.items()}
