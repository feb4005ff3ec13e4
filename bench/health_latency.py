"""Health-detection latency: how long after a service turns healthy does ``stack.wait`` return?

A probe target runs as a real process under the process runtime (so each poll also pays for a
real ``status()``); its ``/health`` answers 503 until a moment the benchmark sets, then 200
``{"status": "healthy"}``. For each trial the moment is set 0.3-1.0 s ahead and
``wait_healthy`` is started; the delay is the time from that moment to the wait's return.
Prints median, p95 and max for the configured probe (interval 0.1 s, 2 consecutive passes).
Target: p95 <= 0.3 s. Run: ``python bench/health_latency.py [TRIALS]``.
"""

from __future__ import annotations

import io
import json
import random
import statistics
import sys
import tempfile
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def serve(port: int, flip_file: str) -> None:
    """The probe target: healthy from the epoch time written in ``flip_file`` on."""

    class Health(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            healthy = time.time() >= float(Path(flip_file).read_text() or "inf")
            body = json.dumps({"status": "healthy" if healthy else "starting"}).encode()
            self.send_response(200 if healthy else 503)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    ThreadingHTTPServer(("127.0.0.1", port), Health).serve_forever()


def main(trials: int) -> None:
    from deploytools.config import EnvironmentSettings
    from deploytools.hosts.local import LocalHost
    from deploytools.probes.health import wait_healthy
    from deploytools.runtime.process import ProcessRuntime
    from deploytools.ui import Ui
    from tests.support.procs import free_port

    with tempfile.TemporaryDirectory(prefix="health-bench-") as tmp:
        flip = Path(tmp, "flip")
        flip.write_text("")
        settings = EnvironmentSettings.model_validate(
            {
                "name": "bench",
                "env_file": f"{tmp}/bench.env",
                "env_example": f"{tmp}/bench.env",
                "runtime": "process",
                "app_dir": str(ROOT),
                "state_dir": tmp,
                "services": {
                    "backend": {
                        "command": ["{python}", __file__, "--serve", "{PORT}", str(flip)],
                        "probe": {
                            "url": "http://127.0.0.1:{PORT}/health",
                            "json_fields": {"status": "healthy"},
                            "timeout": 10,
                            "min_healthy": 0,  # the detection alone, not the hold after it
                        },
                    }
                },
            }
        )
        probe = settings.services["backend"].probe
        values = {"PORT": str(free_port())}
        runtime = ProcessRuntime(settings, LocalHost(), values)
        ui = Ui(stderr=io.StringIO(), stdout=io.StringIO())
        runtime.up("bench")
        try:
            flip.write_text("0")  # healthy: wait for the server to listen
            wait_healthy(settings, runtime, ui, host=LocalHost(), env_values=values)
            delays = []
            for _ in range(trials):
                moment = time.time() + random.uniform(0.3, 1.0)
                flip.write_text(repr(moment))
                wait_healthy(settings, runtime, ui, host=LocalHost(), env_values=values)
                delays.append(time.time() - moment)
        finally:
            runtime.down()
    delays.sort()
    p95 = delays[max(0, round(0.95 * len(delays)) - 1)]
    print(
        f"health latency over {trials} trials (interval {probe.interval:g}s, "
        f"{probe.consecutive} consecutive passes, process runtime + HTTP probe):"
    )
    print(
        f"  median {statistics.median(delays):.3f}s  p95 {p95:.3f}s  max {delays[-1]:.3f}s"
        f"  min {delays[0]:.3f}s   (target p95 <= 0.300s)"
    )


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        serve(int(sys.argv[2]), sys.argv[3])
    else:
        main(int(sys.argv[1]) if len(sys.argv) > 1 else 40)
