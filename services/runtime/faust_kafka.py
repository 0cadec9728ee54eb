"""Faust's Kafka transport with one change: a configurable fetch long-poll.

faust-streaming hard-codes ``fetch_max_wait_ms=1500`` for its consumer. Apache Kafka
answers a fetch as soon as data arrives, so there the value only bounds idle polls; the
embedded Tansu broker does not always answer early, which put up to 1.5 s on every hop of
the payment -> restore chain. A short wait costs one idle fetch per interval and keeps the
reconnect under a second on both brokers (BILLING_FETCH_MAX_WAIT_MS).
"""

from __future__ import annotations

from typing import Any

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka

FETCH_MAX_WAIT_MS = 25


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS  # read by start() to build its Fetcher
        return consumer


class _Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class _Transport(faust_aiokafka.Transport):
    Consumer = _Consumer


class App(faust.App):
    def _new_transport(self) -> Any:
        return _Transport(self.conf.broker_consumer, self)
