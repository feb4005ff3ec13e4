"""The invoke namespace: a project's ``tasks.py`` imports ``ns`` from here."""

from types import ModuleType

from invoke.collection import Collection
from invoke.tasks import Task

from deploytools.tasks import celery, db, env, flags, hosts, lock, stack
from deploytools.tasks._support import INVOKE_DEFAULTS
from deploytools.tasks.deploy import deploy, rollback
from deploytools.tasks.releases import history, releases
from deploytools.tasks.setup import init
from deploytools.tasks.verify import verify


def _collection(module: ModuleType, name: str) -> Collection:
    """Like ``Collection.from_module``, but by ``type()``: an ``isinstance`` check would read
    ``__class__`` of the module's lazy imports (``deploytools.lazy``) and load them."""
    tasks = [obj for obj in vars(module).values() if issubclass(type(obj), Task)]
    return Collection(name, *tasks)


ns = Collection()
for task in (init, deploy, rollback, releases, history, verify):
    ns.add_task(task)
for module in (env, db, stack, celery, lock, hosts, flags):
    ns.add_collection(_collection(module, module.__name__.rsplit(".", 1)[-1]))
ns.configure(INVOKE_DEFAULTS)

__all__ = ["ns"]
