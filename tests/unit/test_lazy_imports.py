"""`invoke --list` must stay fast: loading the namespace imports none of the heavy libraries."""

import json
import subprocess
import sys

HEAVY = ["pydantic", "rich", "fabric", "paramiko", "docker", "alembic", "sqlalchemy", "celery",
         "httpx", "dotenv", "psycopg", "stamina", "prometheus_client"]  # fmt: skip


def test_the_task_namespace_loads_no_heavy_library() -> None:
    code = (
        "import json, sys; import deploytools.tasks; "
        f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def test_a_lazy_module_loads_on_first_use() -> None:
    code = (
        "import sys; from deploytools.lazy import lazy; m = lazy('sqlalchemy'); "
        "a = 'sqlalchemy.engine' in sys.modules; m.create_engine; "
        "print(a, 'sqlalchemy.engine' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]
