"""Kafka producers for tests, each writing as someone the platform trusts:
``tenant`` carries a namespace's ``uuid:key`` (what any tenant's client may
do on the entry topics), ``platform`` signs as Gleaner's own components do
(what a test standing in for a component needs, e.g. a fuzzed event that
must reach the parser behind the signature check)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import confluent_kafka

from gleaner.settings import Settings
from streams.kafka.signing import OutHeaders, Signer, tenant_headers

HeadersFor = Callable[[str, str | bytes | None, bytes], OutHeaders]


class HeaderProducer:
    """A confluent-kafka producer whose every event gets ``headers_for(topic, key, value)``."""

    def __init__(self, settings: Settings, headers_for: HeadersFor, **config: Any) -> None:
        self._producer = confluent_kafka.Producer({"bootstrap.servers": settings.kafka_bootstrap, **config})
        self._headers_for = headers_for

    def produce(self, topic: str, value: bytes, key: str | bytes | None = None, **kwargs: Any) -> None:
        self._producer.produce(topic, value, key=key, headers=self._headers_for(topic, key, value), **kwargs)

    def poll(self, timeout: float = 0) -> int:
        return int(self._producer.poll(timeout))

    def flush(self, timeout: float = 10) -> int:
        return int(self._producer.flush(timeout))


def tenant(settings: Settings, credential: str, **config: Any) -> HeaderProducer:
    headers = tenant_headers(credential)
    return HeaderProducer(settings, lambda _t, _k, _v: headers, **config)


def platform(settings: Settings, **config: Any) -> HeaderProducer:
    return HeaderProducer(settings, Signer.for_settings(settings).headers, **config)


def bare(settings: Settings, **config: Any) -> HeaderProducer:
    """No credential, no signature: what an attacker's client sends."""
    return HeaderProducer(settings, lambda _t, _k, _v: [], **config)
