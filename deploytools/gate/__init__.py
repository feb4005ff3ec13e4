"""The CI gate: named checks (``registry``), run at once over the project's environments
(``runner``), reported as a table, JSON or JUnit (``report``). ``checks/`` holds the checks;
``cli`` is ``python -m deploytools.gate``, which ``invoke verify`` and ``nox -s verify`` run."""
