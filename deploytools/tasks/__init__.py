"""The invoke namespace: a project's ``tasks.py`` imports ``ns`` from here."""

from invoke.collection import Collection

from deploytools.tasks import db, env
from deploytools.tasks._support import INVOKE_DEFAULTS

ns = Collection()
ns.add_collection(Collection.from_module(env, name="env"))
ns.add_collection(Collection.from_module(db, name="db"))
ns.configure(INVOKE_DEFAULTS)

__all__ = ["ns"]
