"""Configuration from environment variables, read once per process.

Everything comes from the environment so the same image runs in every environment; the
deploy tool writes the env file and passes RELEASE_ID. Local mode needs no server at all:
SQLite for the database and Celery's filesystem broker and file result backend.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from urllib.parse import unquote, urlsplit


@dataclass(frozen=True)
class Settings:
    database_url: str
    redis_url: str  # empty: Redis is not used, health reports it "disabled"
    broker_url: str
    result_backend: str
    celery_fs_root: Path  # state directory of the filesystem broker and result backend
    release_id: str
    host: str  # where `python -m exampleapp` listens; the image sets 0.0.0.0
    port: int
    web_concurrency: int  # uvicorn worker processes of `python -m exampleapp`
    worker_concurrency: int  # Celery pool size (not one per host CPU: containers get a share)
    log_level: str
    health_timeout: float  # seconds; bounds each health check so /health answers quickly
    # FEATURE_X=percent|on|off -> {"x": percent}: what the flag client falls back to for a
    # flag the state file (flags_file) lacks; deploytools' flags.* tasks write that file.
    flags: dict[str, int]
    flags_file: str  # DEPLOYTOOLS_FLAGS_FILE: the flagd state file the app's client reads

    @property
    def uses_filesystem_broker(self) -> bool:
        return self.broker_url.startswith("filesystem://")

    @property
    def secrets(self) -> tuple[str, ...]:
        """Passwords inside the configured URLs, to be scrubbed from any text we emit."""
        urls = (self.database_url, self.redis_url, self.broker_url, self.result_backend)
        found: set[str] = set().union(*map(_passwords, urls))
        return tuple(sorted(found, key=len, reverse=True))  # longest first: no partial scrubs

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text


def _passwords(url: str) -> set[str]:
    """The password in ``url`` as written and decoded (an error text may show either)."""
    try:
        password = urlsplit(url).password
    except ValueError:  # not a URL: nothing to scrub
        return set()
    return {password, unquote(password)} if password else set()


def _with_driver(database_url: str) -> str:
    """Plain ``postgres://`` and ``postgresql://`` URLs use psycopg 3, the driver installed."""
    scheme, sep, rest = database_url.partition("://")
    return (
        f"postgresql+psycopg://{rest}"
        if sep and scheme in ("postgres", "postgresql")
        else database_url
    )


def _number(env: dict[str, str], name: str, default: str) -> float:
    raw = env.get(name, "").strip() or default
    try:
        return float(raw)
    except ValueError:
        raise RuntimeError(f"{name} must be a number, not {raw!r}") from None


_WORDS = {"on": 100, "true": 100, "yes": 100, "off": 0, "false": 0, "no": 0}  # as the client


# The FEATURE_* values, shown by GET /: what the flag client falls back to (features.py), and
# what a flag read at start (`start = [...]` in config/flags.toml) reaches the app as.
def _flags(env: dict[str, str]) -> dict[str, int]:
    return {
        name.removeprefix("FEATURE_").lower(): _percent(env, name)
        for name in sorted(env)
        if name.startswith("FEATURE_")
    }


def _percent(env: dict[str, str], name: str) -> int:
    word = env[name].strip().lower()
    return _WORDS[word] if word in _WORDS else int(_number(env, name, "0"))


def load(env: dict[str, str] | None = None) -> Settings:
    """Build Settings from ``env`` (default: os.environ); raise if a required value is missing."""
    env = dict(os.environ) if env is None else env
    database_url = env.get("DATABASE_URL", "").strip()
    if not database_url:
        raise RuntimeError("DATABASE_URL is not set (local mode: sqlite:///var/app.sqlite3)")
    redis_url = env.get("REDIS_URL", "").strip()
    fs_root = Path(env.get("CELERY_FS_ROOT", "") or "var/celery").resolve()
    # Without Redis the worker falls back to the filesystem broker, so local mode needs no server.
    broker_url = env.get("CELERY_BROKER_URL", "").strip() or redis_url or "filesystem://"
    result_backend = (
        env.get("CELERY_RESULT_BACKEND", "").strip() or redis_url or (fs_root / "results").as_uri()
    )
    return Settings(
        database_url=_with_driver(database_url),
        redis_url=redis_url,
        broker_url=broker_url,
        result_backend=result_backend,
        celery_fs_root=fs_root,
        release_id=env.get("RELEASE_ID", "").strip() or "dev",
        host=env.get("HOST", "").strip() or "127.0.0.1",
        port=int(_number(env, "PORT", "8000")),
        web_concurrency=int(_number(env, "WEB_CONCURRENCY", "1")),
        worker_concurrency=int(_number(env, "CELERY_CONCURRENCY", "2")),
        log_level=(env.get("LOG_LEVEL", "") or "INFO").upper(),
        health_timeout=_number(env, "HEALTH_TIMEOUT", "2"),
        flags=_flags(env),
        flags_file=env.get("DEPLOYTOOLS_FLAGS_FILE", "").strip(),
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (environment variables are read once, at first use)."""
    return load()
