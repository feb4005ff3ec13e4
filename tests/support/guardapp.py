"""A tiny app for the guard tests, run as a real process (standard library only, so that the
python3 of a simulated SSH host runs it too): ``/health``, ``/stats`` (JSON) and ``/metrics``
(Prometheus text), whose numbers it reads from a JSON file at every request, so that a test
changes them while a watch runs (``Numbers.set``).

    python3 guardapp.py PORT NUMBERS_FILE

The file's keys: ``errors_ratio``, ``p50``, ``p95`` (the numbers served), ``missing`` (names
of numbers left out of the answers) and ``hang`` (paths that answer nothing for ``HANG``
seconds: a server that hangs, while /health still answers).
"""

from __future__ import annotations

import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

HANG = 120.0  # longer than any test waits: the guard's own timeout must end the request
DEFAULTS: dict[str, Any] = {
    "errors_ratio": 0.004,
    "p50": 0.08,
    "p95": 0.31,
    "missing": [],
    "hang": [],
}

# Guards (as config/flags.toml writes them) on the numbers this app serves.
ERRORS: dict[str, Any] = {"path": "/metrics", "metric": "http_request_errors_ratio", "max": 0.01}
P95: dict[str, Any] = {
    "path": "/metrics",
    "metric": "http_request_duration_seconds",
    "labels": {"quantile": "0.95"},
    "max": 0.5,
}


def metrics(n: dict[str, Any]) -> str:
    lines = [
        "# HELP http_requests_total Requests answered.",
        "# TYPE http_requests_total counter",
        'http_requests_total{code="200"} 990.0',
        'http_requests_total{code="500"} 10.0',
        "# TYPE http_request_duration_seconds summary",
        f'http_request_duration_seconds{{quantile="0.5"}} {n["p50"]}',
        f'http_request_duration_seconds{{quantile="0.95"}} {n["p95"]}',
        "http_request_duration_seconds_sum 93.0",
        "http_request_duration_seconds_count 1000.0",
    ]
    if "errors_ratio" not in n["missing"]:
        lines += [
            "# TYPE http_request_errors_ratio gauge",
            f"http_request_errors_ratio {n['errors_ratio']}",
        ]
    return "\n".join(lines) + "\n"


def stats(n: dict[str, Any]) -> str:
    errors: dict[str, Any] = {"count": 10}
    if "errors_ratio" not in n["missing"]:
        errors["rate"] = n["errors_ratio"]
    return json.dumps({"errors": errors, "latency": {"p95": n["p95"]}})


class Handler(BaseHTTPRequestHandler):
    numbers_file = ""

    def do_GET(self) -> None:
        n = {**DEFAULTS, **json.loads(Path(self.numbers_file).read_text())}
        if self.path in n["hang"]:
            time.sleep(HANG)
        pages = {
            "/health": ("application/json", json.dumps({"status": "healthy"})),
            "/stats": ("application/json", stats(n)),
            "/metrics": ("text/plain; version=0.0.4", metrics(n)),
        }
        kind, body = pages.get(self.path, ("text/plain", "not found"))
        data = body.encode()
        self.send_response(200 if self.path in pages else 404)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class Numbers:
    """The numbers file of a running guard app, rewritten whole (atomically) by a test."""

    def __init__(self, path: str) -> None:
        self.path = path

    def set(self, **numbers: Any) -> None:
        """Serve the defaults with ``numbers`` over them, from the next request on."""
        tmp = f"{self.path}.tmp"
        Path(tmp).write_text(json.dumps({**DEFAULTS, **numbers}))
        os.replace(tmp, self.path)


def main() -> None:
    port, Handler.numbers_file = int(sys.argv[1]), sys.argv[2]
    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


if __name__ == "__main__":
    main()
