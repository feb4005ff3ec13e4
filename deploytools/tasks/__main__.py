"""``python -m deploytools.tasks TASK``: the namespace without a ``tasks.py``, so that a project
that has none yet can run ``init`` to write one (and any task, e.g. from a CI image)."""

from invoke.program import Program

from deploytools.tasks import ns

Program(namespace=ns, name="deploytools", binary="python -m deploytools.tasks").run()
