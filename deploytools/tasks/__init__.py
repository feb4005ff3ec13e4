"""The invoke namespace: a project's ``tasks.py`` imports ``ns`` from here."""

from invoke.collection import Collection

from deploytools.tasks import celery, db, env, lock, stack
from deploytools.tasks._support import INVOKE_DEFAULTS
from deploytools.tasks.deploy import deploy, rollback
from deploytools.tasks.releases import history, releases

ns = Collection()
for task in (deploy, rollback, releases, history):
    ns.add_task(task)
ns.add_collection(Collection.from_module(env, name="env"))
ns.add_collection(Collection.from_module(db, name="db"))
ns.add_collection(Collection.from_module(stack, name="stack"))
ns.add_collection(Collection.from_module(celery, name="celery"))
ns.add_collection(Collection.from_module(lock, name="lock"))
ns.configure(INVOKE_DEFAULTS)

__all__ = ["ns"]
