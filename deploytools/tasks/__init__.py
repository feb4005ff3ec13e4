"""The invoke namespace: a project's ``tasks.py`` imports ``ns`` from here."""

from invoke.collection import Collection

from deploytools.tasks import celery, db, env, stack
from deploytools.tasks._support import INVOKE_DEFAULTS

ns = Collection()
ns.add_collection(Collection.from_module(env, name="env"))
ns.add_collection(Collection.from_module(stack, name="stack"))
ns.add_collection(Collection.from_module(celery, name="celery"))
ns.add_collection(Collection.from_module(db, name="db"))
ns.configure(INVOKE_DEFAULTS)

__all__ = ["ns"]
