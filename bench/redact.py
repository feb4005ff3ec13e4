"""Redactor cost per line: every line a task prints, logs or journals passes through it.

The redactor learns the secrets of a production env file (random keys, a database password in
two URLs, an API key, one password with quotes, backslashes and a non-ASCII letter), then masks
a realistic mix of lines: progress, uvicorn and celery log lines, journal records, lines with
URLs, and one line in 25 holding a secret in some encoding. A second run adds 30 more secrets
with quotes, backslashes and a non-ASCII letter (many forms each). Prints the median (and the
best) microseconds per line over the repeats. Run: ``python bench/redact.py [REPEATS]``.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PASSWORD = "Pg7_Rt2-Wx9kLm4nBv6cZs1d"
ODD = "Zq8\"vN3\\r'Lk${T1}ö-yXb7"
ENV = {
    "ENVIRONMENT": "production",
    "SECRET_KEY": "Zq8-vN3r_Lk5wT1yXb7mP0sJ4hG6dF2aQ-9sd8f7g6h5j4k3",
    "POSTGRES_PASSWORD": PASSWORD,
    "DATABASE_URL": f"postgresql+psycopg://app:{PASSWORD}@db.example.internal:5432/app",
    "REDIS_URL": "redis://:Rd5-Tq8wLp2xNz7cVb3m@redis.example.internal:6379/0",
    "OPENAI_API_KEY": "sk-proj-AbCdEf0123456789_-AbCdEf",
    "ADMIN_PASSWORD": ODD,
    "PORT": "8000",
}
PLAIN = [
    "[4/9] migrate: alembic upgrade head 0003 -> 0004 on prod-web-1 (1.21 s)",
    'INFO:     127.0.0.1:54321 - "GET /health HTTP/1.1" 200 OK',
    "[2025-05-01 12:00:01,532: INFO/MainProcess] Task exampleapp.worker.add[8f3e] succeeded",
    "waiting for backend on prod-web-2: HTTP 503 (expected 200): {\"status\": \"starting\"}",
    "  last 20 log lines of celery-worker:",
    "release release-prod-20250501T120000Z-1a2b3c4 verified healthy on 2 hosts",
    "database postgresql+psycopg://app:hidden@db.example.internal:5432/app reachable",
]


def lines() -> list[str]:
    record = {
        "at": "2025-05-01T12:00:01.532000Z",
        "kind": "step.done",
        "step": "wait healthy",
        "host": "prod-web-1",
        "duration": 3.21,
        "release": "release-prod-20250501T120000Z-1a2b3c4",
        "detail": "backend healthy after 3 polls; celery-worker answered ping in 0.41 s",
    }
    journal = json.dumps(record, sort_keys=True)
    leaks = [
        f"HTTP 503 (expected 200): {json.dumps({'detail': ODD})}",
        f"error: connect to {ENV['DATABASE_URL']} refused",
        f"argv: ['app', '--key', {ENV['SECRET_KEY']!r}]",
    ]
    mix = [*PLAIN, journal, *PLAIN, journal, *PLAIN, journal]
    out: list[str] = []
    for i in range(2000):
        out.append(leaks[i % len(leaks)] if i % 25 == 0 else mix[i % len(mix)])
    return out


def main(repeats: int) -> None:
    from deploytools.redact import Redactor

    sample = lines()
    for extra in (0, 30):
        redact = Redactor(f"Odd\"{i:02d}\\Sec'ret-ö-{i * 7919:08d}" for i in range(extra))
        redact.learn_env(ENV)
        for line in sample[::25]:
            assert PASSWORD not in redact(line), line
        timings = []
        for _ in range(repeats):
            started = time.perf_counter()
            for line in sample:
                redact(line)
            timings.append((time.perf_counter() - started) / len(sample) * 1e6)
        print(
            f"redact, env secrets + {extra:2d} more: median {statistics.median(timings):.2f} us "
            f"per line, best {min(timings):.2f} ({len(sample)} lines x {repeats} repeats)"
        )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 30)
