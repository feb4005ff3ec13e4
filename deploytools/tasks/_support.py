"""What every task shares: the error boundary, settings from invoke config, the Ui.

``task`` wraps invoke's decorator: the body receives a fresh ``Ui`` after the context, a
``DeployToolsError`` becomes one redacted message and its exit code instead of a traceback, and
every numeric option is checked while the command line is parsed (``NumberOption``).
"""

from __future__ import annotations

import atexit
import functools
import gc
import inspect
import math
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from invoke.context import Context
from invoke.exceptions import Exit
from invoke.parser.argument import Argument
from invoke.tasks import Task

from deploytools.configpath import DEFAULT_CONFIG
from deploytools.errors import DeployToolsError, OperatorError

if TYPE_CHECKING:  # pydantic models and rich cost ~0.3 s to import: not for `invoke --list`
    from deploytools.config import EnvironmentSettings
    from deploytools.site import Site
    from deploytools.ui import Ui

ENV_HELP = "environment name from config/deploy.toml (default: its project.default_environment)"
JSON_HELP = "print machine-readable JSON on stdout instead of a table"
DRY_RUN_HELP = "print what would be done and change nothing"
TRUST_NEW_HOSTS_HELP = (
    "record the SSH key of a host seen for the first time in its known_hosts (a changed key"
    " is still refused)"
)
HOSTS_HELP = "only these hosts (comma-separated names) for the per-host stages; default: all"
LOCK_WAIT_HELP = (
    "if another run holds the deploy lock, wait up to this many seconds (default: fail at once)"
)

TaskBody = Callable[..., Any]

# What invoke.yaml / INVOKE_DEPLOYTOOLS_* may set. None means "not set": the config file wins.
INVOKE_DEFAULTS: dict[str, Any] = {
    "deploytools": {
        "config": "config/deploy.toml",
        "env": None,  # None: the config file's project.default_environment
        "trust_new_hosts": None,  # INVOKE_DEPLOYTOOLS_TRUST_NEW_HOSTS=1: --trust-new-hosts
        "rollout": {"max_parallel": None},
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


def task(
    help: Mapping[str, str],
    *,
    positive: Collection[str] = (),
    spared: Mapping[str, str] | None = None,
    **options: Any,
) -> Callable[[TaskBody], Any]:
    """``@task`` for deploytools: help for every argument, a Ui, operator errors without traces.

    An option annotated ``int`` or ``float`` (or with such a default) must be a finite number,
    0 or more; those named in ``positive`` must be more than 0. ``spared`` maps a positional
    argument to the flag that makes it unnecessary (``flags.kill NAME`` or ``--all``).
    """

    def decorate(body: TaskBody) -> Any:
        signature = inspect.signature(body)
        params = list(signature.parameters.values())
        visible = [params[0], *params[2:]]  # drop ``ui``: we inject it
        missing = {p.name for p in visible[1:]} - set(help)
        if missing:
            raise TypeError(f"task {body.__name__}: no help for {sorted(missing)}")
        numbers = {
            p.name: NumberOption(p.name, integer=kind is int, positive=p.name in positive)
            for p in visible[1:]
            if (kind := _number_type(p))
        }
        if set(positive) - set(numbers):
            raise TypeError(f"task {body.__name__}: positive names no numeric option")
        helps = {k: f"{v} [{numbers[k].expected}]" if k in numbers else v for k, v in help.items()}

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
        return CheckedTask(wrapper, numbers=numbers, spared=spared or {}, help=helps, **options)

    return decorate


class CheckedTask(Task[TaskBody]):
    """A task whose numeric options are read by a ``NumberOption`` instead of ``type(default)``
    (whose ValueError escapes invoke's parser as a traceback; a None default is not cast)."""

    def __init__(
        self,
        body: TaskBody,
        *,
        numbers: Mapping[str, NumberOption],
        spared: Mapping[str, str],
        **options: Any,
    ) -> None:
        super().__init__(body, **options)
        self.numbers = dict(numbers)
        self.spared = dict(spared)
        self.positional = [
            *self.positional,
            *(name for name in spared if name not in self.positional),
        ]

    def get_arguments(self, ignore_unknown_help: bool | None = None) -> list[Argument]:
        arguments = super().get_arguments(ignore_unknown_help)
        by_name = {argument.name: argument for argument in arguments}
        for positional, flag in self.spared.items():
            by_name[positional].__class__ = SparedPositional
            by_name[positional].spared_by = by_name[flag]  # type: ignore[attr-defined]
        return arguments

    def arg_opts(self, name: str, default: str, taken_names: set[str]) -> dict[str, Any]:
        opts = super().arg_opts(name, default, taken_names)
        if name in self.numbers:
            opts["kind"] = self.numbers[name]
        return opts


class SparedPositional(Argument):
    """A positional argument that a flag makes unnecessary: invoke's parser insists on every
    positional argument whose value is None, so once the flag is given it reads as ""."""

    spared_by: Argument

    @property
    def value(self) -> Any:
        if self._value is None and self.spared_by.value:
            return ""
        return super().value

    @value.setter
    def value(self, arg: str) -> None:
        self.set_value(arg, cast=True)


class NumberOption:
    """The parser's cast for one numeric option: a finite number in range, or exit 2 naming
    the option, at parse time, before any task runs."""

    def __init__(self, name: str, *, integer: bool, positive: bool) -> None:
        self.flag = "--" + name.replace("_", "-")
        self.integer = integer
        self.positive = positive
        self.__name__ = "int" if integer else "float"  # Argument.__repr__ shows kind.__name__
        what = "a whole number" if integer else "a number"
        self.expected = f"{what} {'greater than' if positive else 'of at least'} 0"

    def __call__(self, raw: str) -> float:
        try:
            number = int(raw) if self.integer else float(raw)
        except ValueError:
            raise self._refuse(raw, f"is not {'a whole' if self.integer else 'a'} number") from None
        if not math.isfinite(number):
            raise self._refuse(raw, "is not a finite number")
        if number < 0 or (self.positive and number == 0):
            raise self._refuse(raw, f"is not {self.expected}")
        return number

    def _refuse(self, raw: str, why: str) -> Exit:
        # Program.run prints an Exit's message to stderr and exits with its code: no traceback.
        fix = f"pass {self.flag} {self.expected}"
        return Exit(f"error: {self.flag} {raw[:40]!r} {why}\n  fix: {fix}", code=2)

    # invoke's --help shows a value placeholder only for a kind equal to str or int
    # (ParserContext.help_for); without one, the option would look like a flag that takes none.
    def __eq__(self, other: object) -> bool:
        return other is int or other is self

    def __hash__(self) -> int:
        return hash(int)


def _number_type(param: inspect.Parameter) -> type | None:
    """``int`` or ``float`` for an option annotated so (``| None`` allowed) or defaulting so."""
    annotation = param.annotation
    text = annotation if isinstance(annotation, str) else inspect.formatannotation(annotation)
    names = {part.strip() for part in text.split("|")} - {"None"}
    if names in ({"int"}, {"float"}):
        return int if names == {"int"} else float
    default = param.default
    if isinstance(default, int | float) and not isinstance(default, bool):
        return type(default)
    return None


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


def env_name(c: Context, env: str | None) -> str | None:
    """The ``--env`` flag, else ``deploytools.env`` from invoke config; None when neither is
    set (the config file's default then, if it has one).

    An empty ``--env ''`` (a CI variable that was not set) is refused, never the default.
    """
    name = env if env is not None else c.config.get("deploytools", {}).get("env")
    if name is None:
        return None
    if not name:
        raise OperatorError("no environment given (--env is empty)", "pass --env NAME")
    return str(name)


def settings(
    c: Context, env: str | None, cli: Mapping[str, Any] | None = None
) -> EnvironmentSettings:
    """Load the environment with invoke config layered over the file and ``cli`` over both."""
    from deploytools.config import deep_merge, load_settings

    conf = invoke_settings(c)
    tunables = {key: conf.get(key) for key in ("trust_new_hosts", "rollout", "timeouts")}
    overrides = deep_merge(conf.get("overrides") or {}, tunables)
    return load_settings(
        env_name(c, env),
        config_path=conf.get("config") or DEFAULT_CONFIG,
        overrides=overrides,
        cli=cli,
    )


def invoke_settings(c: Context) -> dict[str, Any]:
    """``deploytools.*`` of invoke config (invoke.yaml, INVOKE_DEPLOYTOOLS_*), as plain dicts."""
    conf: dict[str, Any] = _plain(c.config.get("deploytools", {}))
    return conf


def trusting(trust_new_hosts: bool) -> dict[str, Any]:
    """The ``cli`` layer of ``--trust-new-hosts`` for ``settings``: unset unless given, so
    that invoke config's ``deploytools.trust_new_hosts`` still counts."""
    return {"trust_new_hosts": True} if trust_new_hosts else {}


def open_site(
    c: Context,
    env: str | None,
    ui: Ui,
    cli: Mapping[str, Any] | None = None,
    hosts: str | None = None,
) -> Site:
    """The run's ``Site`` for the environment (use it in a ``with``: it closes connections);
    ``hosts``: the ``--hosts a,b`` that narrows the per-host stages."""
    from deploytools.site import Site

    only = [name.strip() for name in (hosts or "").split(",") if name.strip()]
    if hosts is not None and not only:
        raise OperatorError("--hosts names no host", "pass --hosts NAME[,NAME...]")
    site = Site(settings(c, env, cli), ui, only=only)
    site.targets  # noqa: B018  # an unknown name is refused before anything connects
    return site


def _plain(value: Any) -> Any:
    """invoke's DataProxy -> plain dicts, so pydantic and deep_merge see ordinary mappings."""
    if isinstance(value, Mapping) or hasattr(value, "items"):
        return {k: _plain(v) for k, v in value.items()}
    return value


@contextmanager
def locked(site: Site, command: str, wait: float) -> Iterator[None]:
    """Hold the deploy lock, waiting up to ``wait`` seconds for another run (``--lock-wait``)."""
    from deploytools.site.lock import Holder

    lock = site.lock()
    try:  # acquire inside: a signal right after it must find the lock released here too
        lock.acquire(Holder.me(command), wait=wait)
        yield
    finally:
        lock.release()
