"""Headers a tenant's own Kafka client puts on the events it produces.

A tenant may write to the two entry topics (``invocations``, ``dag.requests``)
with any Kafka client, as long as each event carries the namespace's API key,
the same ``uuid:key`` as REST Basic auth::

    import confluent_kafka, orjson
    from gleaner.kafka_auth import tenant_headers

    producer = confluent_kafka.Producer({"bootstrap.servers": "127.0.0.1:9092"})
    event = {"type": "activation.request", "namespace": "alice", "action": "hello",
             "params": {"name": "Kafka"}}
    producer.produce("invocations", orjson.dumps(event), headers=tenant_headers(credential))
    producer.flush()

The first consumer (placement for ``invocations``, the predictor for
``dag.requests``) checks the key and that the event's ``namespace`` is the
key's; any other event is dead-lettered with the reason. Every other topic
takes only events signed by Gleaner's own components.
"""

from __future__ import annotations

from streams.kafka.signing import AUTH_HEADER, OutHeaders


def tenant_headers(credential: str) -> OutHeaders:
    """Kafka headers that prove an event's namespace: ``[("gleaner-auth", b"uuid:key")]``."""
    if ":" not in credential:
        raise ValueError("a credential is 'uuid:key', as in ~/.wskprops AUTH")
    return [(AUTH_HEADER, credential.encode("ascii"))]
