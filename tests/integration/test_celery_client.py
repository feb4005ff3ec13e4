"""celery.verify's client against a real Redis: control replies are read with a short BRPOP."""

from __future__ import annotations

import pytest

from deploytools.celery_check import REDIS_POLL, BrokerUrls, _client
from tests.support.procs import free_port
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.integration


def test_a_redis_broker_is_polled_briefly_and_accepts_it(redis_server: RedisServer) -> None:
    with _client(BrokerUrls(redis_server.url(12), redis_server.url(13), {})) as app:
        assert app.conf.broker_transport_options == {"polling_interval": REDIS_POLL}
        # A fractional BRPOP timeout that the server refused would raise here.
        assert app.control.ping(timeout=0.2) == []


def test_a_broker_that_does_not_answer_keeps_kombus_default() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    with _client(BrokerUrls(url, url, {})) as app:
        assert app.conf.broker_transport_options == {}
