"""``GET /metrics`` in Prometheus' text format: what a Prometheus server scrapes, and what
deploytools' stage guards read (config/flags.toml).

Counters and a histogram for a Prometheus server (rates and quantiles over any window are its
job), and two gauges the app computes over its last ``WINDOW`` seconds for a guard that reads
one sample: ``http_request_errors_ratio`` (5xx answers / answers) and
``http_request_duration_p95_seconds`` (nearest rank; 0 without requests, as is the ratio: see
``http_requests_recent`` for how many there were). Figures are per process: the image runs one
uvicorn worker (WEB_CONCURRENCY=1). Scrapes of /metrics are not counted.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

WINDOW = 60.0  # seconds of requests behind the gauges
MAX_RECENT = 10_000  # requests kept for them (older ones drop out first)

REGISTRY = CollectorRegistry()
REQUESTS = Counter(
    "http_requests", "HTTP requests answered", ["method", "route", "status"], registry=REGISTRY
)
ERRORS = Counter("http_request_errors", "HTTP requests answered with a 5xx", registry=REGISTRY)
DURATION = Histogram(
    "http_request_duration_seconds", "time to answer an HTTP request", ["route"], registry=REGISTRY
)


class Recent(Collector):
    """The last WINDOW seconds of requests, as the gauges a guard compares with a threshold."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._seen: deque[tuple[float, float, bool]] = deque(maxlen=MAX_RECENT)

    def add(self, seconds: float, error: bool) -> None:
        with self._lock:
            self._seen.append((self._clock(), seconds, error))

    def collect(self) -> Iterator[Metric]:
        since = self._clock() - WINDOW
        with self._lock:
            while self._seen and self._seen[0][0] < since:
                self._seen.popleft()
            durations = sorted(seconds for _, seconds, _ in self._seen)
            errors = sum(error for _, _, error in self._seen)
        count = len(durations)
        p95 = durations[math.ceil(0.95 * count) - 1] if count else 0.0
        yield GaugeMetricFamily(
            "http_requests_recent", f"requests answered in the last {WINDOW:g} s", value=count
        )
        yield GaugeMetricFamily(
            "http_request_errors_ratio",
            f"5xx answers / answers in the last {WINDOW:g} s (0 without requests)",
            value=errors / count if count else 0.0,
        )
        yield GaugeMetricFamily(
            "http_request_duration_p95_seconds",
            f"95th percentile of the time to answer in the last {WINDOW:g} s (0 without requests)",
            value=p95,
        )


RECENT = Recent()
REGISTRY.register(RECENT)


def observe(method: str, route: str, status: int, seconds: float) -> None:
    """Count one answered request."""
    error = status >= 500
    REQUESTS.labels(method, route, str(status)).inc()
    DURATION.labels(route).observe(seconds)
    if error:
        ERRORS.inc()
    RECENT.add(seconds, error)


def exposition() -> bytes:
    return generate_latest(REGISTRY)
