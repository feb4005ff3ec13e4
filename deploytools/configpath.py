"""Where the config file is: apart from config.py, so that finding it needs no pydantic (the
kill card, flags/killcard.py, hashes the file before anything is validated)."""

from __future__ import annotations

from pathlib import Path

from deploytools.errors import OperatorError

DEFAULT_CONFIG = "config/deploy.toml"


def find_config(path: str | Path = DEFAULT_CONFIG, start: Path | None = None) -> Path:
    """Resolve the config file: absolute, or relative to the cwd or any of its parents."""
    candidate = Path(path).expanduser()
    if candidate.is_absolute():
        bases = [Path("/")]
    else:
        here = (start or Path.cwd()).resolve()
        bases = [here, *here.parents]
    for base in bases:
        if (base / candidate).is_file():
            return (base / candidate).resolve()
    raise OperatorError(
        f"config file {path} not found (looked in {(start or Path.cwd())} and its parents)",
        "run from the project directory or pass --config / set INVOKE_DEPLOYTOOLS_CONFIG",
    )
