"""What every task shares: the error boundary, settings from invoke config, the Ui.

``task`` wraps invoke's decorator: the body receives a fresh ``Ui`` after the context, and a
``DeployToolsError`` becomes one redacted message and its exit code instead of a traceback.
"""

from __future__ import annotations

import atexit
import functools
import gc
import inspect
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from invoke.context import Context
from invoke.exceptions import Exit
from invoke.tasks import task as invoke_task

from deploytools.errors import DeployToolsError, OperatorError

if TYPE_CHECKING:  # pydantic models and rich cost ~0.3 s to import: not for `invoke --list`
    from deploytools.config import EnvironmentSettings

ENV_HELP = "environment name from config/deploy.toml (local, staging, prod, ...)"
JSON_HELP = "print machine-readable JSON on stdout instead of a table"
DRY_RUN_HELP = "print what would be done and change nothing"

TaskBody = Callable[..., Any]

# What invoke.yaml / INVOKE_DEPLOYTOOLS_* may set. None means "not set": the config file wins.
INVOKE_DEFAULTS: dict[str, Any] = {
    "deploytools": {
        "config": "config/deploy.toml",
        "env": "local",
        "parallelism": None,
        "timeouts": {
            "command": None,
            "connect": None,
            "health": None,
            "stop": None,
            "lock_ttl": None,
        },
        "overrides": {},
    }
}


def task(help: Mapping[str, str], **options: Any) -> Callable[[TaskBody], Any]:
    """``@task`` for deploytools: help for every argument, a Ui, operator errors without traces."""

    def decorate(body: TaskBody) -> Any:
        signature = inspect.signature(body)
        params = list(signature.parameters.values())
        visible = [params[0], *params[2:]]  # drop ``ui``: we inject it
        missing = {p.name for p in visible[1:]} - set(help)
        if missing:
            raise TypeError(f"task {body.__name__}: no help for {sorted(missing)}")

        @functools.wraps(body)
        def wrapper(c: Context, *args: Any, **kwargs: Any) -> Any:
            from deploytools.interrupts import INTERRUPTS
            from deploytools.ui import Ui

            _quick_exit()
            ui = Ui(json_mode=bool(kwargs.get("json")))
            try:
                # SIGTERM and SIGHUP too end in the code's `finally` blocks (lock, temp files)
                with INTERRUPTS.installed() as guard:
                    guard.warn = ui.warn
                    return body(c, ui, *args, **kwargs)
            except DeployToolsError as exc:
                ui.error(exc.problem, exc.fix)
                raise Exit(code=exc.exit_code) from None
            except KeyboardInterrupt as exc:
                ui.error(f"interrupted ({exc})" if str(exc) else "interrupted")
                raise Exit(code=130) from None

        # inspect.signature (used by invoke) stops at __signature__: the public arguments.
        wrapper.__signature__ = signature.replace(parameters=visible)  # type: ignore[attr-defined]
        return invoke_task(help=dict(help), **options)(wrapper)

    return decorate


@functools.cache
def _quick_exit() -> None:
    """Skip the garbage collector's last passes over every object when the process exits.

    A deploy has alembic, SQLAlchemy, Celery and httpx loaded; the interpreter's final
    collections over them took 0.3-0.4 s after the summary was printed (bench/deploy_rollback.py).
    Frozen objects are still freed by reference counting: only cycles are left to the OS. The
    lock is released and every journal line written and synced before a task returns; SSH
    connections are closed by paramiko's own exit hook, as before.
    """
    atexit.register(gc.freeze)


def env_name(c: Context, env: str | None) -> str:
    """The ``--env`` flag, else ``deploytools.env`` from invoke config.

    An empty ``--env ''`` (a CI variable that was not set) is refused, never the default.
    """
    name = env if env is not None else c.config.get("deploytools", {}).get("env")
    if not name:
        raise OperatorError("no environment given (--env is empty)", "pass --env NAME")
    return str(name)


def settings(
    c: Context, env: str | None, cli: Mapping[str, Any] | None = None
) -> EnvironmentSettings:
    """Load the environment with invoke config layered over the file and ``cli`` over both."""
    from deploytools.config import deep_merge, load_settings

    conf = _plain(c.config.get("deploytools", {}))
    tunables = {"parallelism": conf.get("parallelism"), "timeouts": conf.get("timeouts") or {}}
    overrides = deep_merge(conf.get("overrides") or {}, tunables)
    return load_settings(
        env_name(c, env),
        config_path=conf.get("config") or "config/deploy.toml",
        overrides=overrides,
        cli=cli,
    )


def _plain(value: Any) -> Any:
    """invoke's DataProxy -> plain dicts, so pydantic and deep_merge see ordinary mappings."""
    if isinstance(value, Mapping) or hasattr(value, "items"):
        return {k: _plain(v) for k, v in value.items()}
    return value
