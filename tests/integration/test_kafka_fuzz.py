"""Fuzz every topic the platform consumes, on the real stack: each bad event is
dead-lettered with its reason, and the streams keep going.

Hypothesis builds the events (derandomised, so CI sees the same ones): bytes
that are not JSON, JSON that is not an object, a required field missing or of
the wrong type, a wrong event type, a bad id, an unknown action or namespace,
an event nested deeper than JSON writers allow, and one above the size limit.
Every event carries a marker, so its dead letter can be found in the topic.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import confluent_kafka
import orjson
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from tests.integration import kafka_clients
from tests.integration.conftest import TEST_NAMESPACE, stored_record

pytestmark = pytest.mark.integration
EXAMPLES_PER_TOPIC = 18
ECHO = "kafka-fuzz-echo"
ID = "f" * 32  # replaced by a fresh id per event: the same id twice is a duplicate, run once


def activation_request(marker: str) -> dict[str, Any]:
    return {
        "type": "activation.request",
        "version": 1,
        "activation_id": ID,
        "namespace": TEST_NAMESPACE,
        "action": ECHO,
        "params": {"fuzz": marker},  # params travel on to the invoker, which finds unknown actions
        "fuzz": marker,
    }


def dag_request(marker: str) -> dict[str, Any]:
    return {
        "type": "dag.request",
        "version": 1,
        "request_id": ID,
        "namespace": TEST_NAMESPACE,
        "dag": "fuzz-dag",
        "input": {},
        "fuzz": marker,
    }


def completion(marker: str) -> dict[str, Any]:
    return {
        "type": "activation.completed",
        "version": 1,
        "activation_id": ID,
        "namespace": TEST_NAMESPACE,
        "action": ECHO,
        "invoker": "invoker0",
        "record": {"response": {"statusCode": 0, "success": True, "result": {}}},
        "fuzz": marker,
    }


def heartbeat(marker: str) -> dict[str, Any]:
    return {
        "type": "invoker.health",
        "version": 1,
        "invoker": "fuzz-invoker",
        "incarnation": "fuzz",
        "ts_ms": 1,
        "cpu_capacity": 1.0,
        "memory_capacity_mb": 1024,
        "cpu_free": 1.0,
        "memory_free_mb": 1024,
        "queue_length": 0,
        "running": 0,
        "fuzz": marker,
    }


def plan(marker: str) -> dict[str, Any]:
    return {
        "type": "dag.plan",
        "version": 1,
        "request": dag_request(marker),
        "harvest": False,
        "fuzz": marker,
    }


def prewarm_hint(marker: str) -> dict[str, Any]:
    return {
        "type": "prewarm.hint",
        "version": 1,
        "hint_id": ID,
        "namespace": TEST_NAMESPACE,
        "functions": [{"action": ECHO, "count": 1, "stage": 1, "allocation": None}],
        "fuzz": marker,
    }


TEXT, INT, NUM, DICT, BOOL, LIST = "text", "int", "num", "dict", "bool", "list"
# topic attribute -> (a good event, its required fields and their types, the id a consumer checks)
SHAPES: dict[str, tuple[Callable[[str], dict[str, Any]], dict[str, str], str | None]] = {
    "invocations_topic": (activation_request, {"namespace": TEXT, "action": TEXT}, "activation_id"),
    "dag_requests_topic": (dag_request, {"namespace": TEXT, "dag": TEXT}, "request_id"),
    "dag_plans_topic": (plan, {"request": DICT, "harvest": BOOL}, None),
    "completed_topic": (
        completion,
        {"activation_id": TEXT, "namespace": TEXT, "action": TEXT, "invoker": TEXT, "record": DICT},
        None,
    ),
    "prewarm_topic": (prewarm_hint, {"namespace": TEXT, "functions": LIST}, "hint_id"),
    "health_topic": (
        heartbeat,
        {"invoker": TEXT, "incarnation": TEXT, "ts_ms": INT, "cpu_capacity": NUM, "queue_length": INT},
        None,
    ),
}
LISTS = st.lists(st.integers(), max_size=3)
WRONG: dict[str, st.SearchStrategy[Any]] = {
    TEXT: st.one_of(st.integers(), LISTS, st.booleans()),
    INT: st.one_of(st.text(max_size=8), LISTS, st.floats(allow_nan=False).filter(lambda f: f != int(f))),
    NUM: st.one_of(st.text(max_size=8), LISTS, st.booleans()),
    DICT: st.one_of(st.text(max_size=8), st.integers(), LISTS),
    BOOL: st.one_of(st.integers(), st.text(max_size=8), LISTS),
    LIST: st.one_of(st.text(max_size=8), st.integers(), st.just([]), st.just([1]), st.just([{}])),
}
NOT_AN_ID = st.text(min_size=1, max_size=40).filter(
    lambda s: len(s) != 32 or any(c not in "0123456789abcdef" for c in s)
)
MARK = "{m}"  # replaced by each event's marker


def bad_events(topic_key: str) -> st.SearchStrategy[tuple[str, bytes]]:
    """(what was done, the event's bytes with MARK where its marker goes)."""
    good, required, id_field = SHAPES[topic_key]
    base = good(MARK)
    kinds = [
        st.binary(max_size=64).map(lambda b: ("not JSON", b"\xff" + b + b" " + MARK.encode())),
        LISTS.map(lambda v: ("not an object", orjson.dumps([MARK, *v]))),
        st.sampled_from(sorted(required)).map(
            lambda f: (f"missing {f}", orjson.dumps({k: v for k, v in base.items() if k != f}))
        ),
        st.sampled_from(sorted(required)).flatmap(
            lambda f: WRONG[required[f]].map(lambda v: (f"{f} retyped", orjson.dumps({**base, f: v})))
        ),
        st.text(max_size=20)
        .filter(lambda t: t != base["type"])
        .map(lambda t: ("wrong type", orjson.dumps({**base, "type": t}))),
    ]
    if id_field is not None:
        kinds.append(NOT_AN_ID.map(lambda i: ("bad id", orjson.dumps({**base, id_field: i}))))
    if topic_key == "invocations_topic":
        kinds.append(
            st.tuples(
                st.sampled_from(["action", "namespace"]), st.from_regex(r"\Anosuch[a-z0-9]{1,12}\Z")
            ).map(lambda fv: (f"unknown {fv[0]}", orjson.dumps({**base, fv[0]: fv[1]})))
        )
    return st.one_of(*kinds)


def generated(topic_key: str) -> list[tuple[str, bytes]]:
    found: list[tuple[str, bytes]] = []

    @hsettings(
        max_examples=EXAMPLES_PER_TOPIC,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(bad_events(topic_key))
    def collect(example: tuple[str, bytes]) -> None:
        found.append(example)

    collect()
    return found


def deep(good: dict[str, Any]) -> bytes:
    """Nested 300 levels where the stream writes it on: orjson reads it but writes at most 254."""
    nested = b"[" * 300 + b"1" + b"]" * 300
    return orjson.dumps({**good, "params": {"x": 0}, "input": {"x": 0}}).replace(
        b'{"x":0}', b'{"x":' + nested + b"}"
    )


def the_events(settings: Any) -> list[tuple[str, str, bytes]]:
    """(topic, what was done, bytes with MARK) for every topic."""
    out: list[tuple[str, str, bytes]] = []
    for key, (good, _required, _id) in SHAPES.items():
        topic = getattr(settings, key)
        out += [(topic, what, raw) for what, raw in generated(key)]
        pad = "x" * (settings.kafka_message_max_bytes + 1024)
        out.append((topic, "above the size limit", orjson.dumps({**good(MARK), "pad": pad})))
        if key in ("invocations_topic", "dag_requests_topic"):  # where a stream writes the value on
            out.append((topic, "nested 300 levels", deep(good(MARK))))
    return out


@pytest.fixture(scope="module")
def echo(ow):
    ow.put_action(
        ECHO, {"exec": {"kind": "python:3", "code": "def main(a):\n    return a\n"}}, overwrite=True
    )
    return ECHO


def read_letters(settings, markers: set[str], seconds: float = 90.0) -> dict[str, list[dict]]:
    """Dead letters whose payload holds one of ``markers``, read until all are seen."""
    c = confluent_kafka.Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": uuid.uuid4().hex,
            "enable.auto.commit": False,
            "fetch.max.bytes": 64 * 2**20,
        }
    )
    topic = settings.deadletter_topic
    parts = c.list_topics(topic, timeout=10).topics[topic].partitions
    c.assign([confluent_kafka.TopicPartition(topic, p, confluent_kafka.OFFSET_BEGINNING) for p in parts])
    found: dict[str, list[dict]] = {}
    deadline = time.monotonic() + seconds
    while set(found) != markers and time.monotonic() < deadline:
        msg = c.poll(0.2)
        if msg is None or msg.error():
            continue
        letter = orjson.loads(msg.value())
        for marker in markers:
            if marker in letter.get("payload", ""):
                found.setdefault(marker, []).append(letter)
    c.close()
    return found


def test_every_bad_event_on_every_topic_is_dead_lettered_with_its_reason(stack_up, couch, echo):
    # Signed as a component would: the events must reach the parsers behind the signature
    # check (unsigned and forged events are test_security_kafka's).
    producer = kafka_clients.platform(stack_up, **{"message.max.bytes": 32 * 2**20})
    sent: dict[str, tuple[str, str]] = {}  # marker -> (topic, what was done)
    for topic, what, raw in the_events(stack_up):
        marker = uuid.uuid4().hex
        sent[marker] = (topic, what)
        raw = raw.replace(MARK.encode(), marker.encode()).replace(ID.encode(), uuid.uuid4().hex.encode())
        producer.produce(topic, raw)
        producer.poll(0)
    # The streams keep going: a good invocation behind all of that still runs.
    after = uuid.uuid4().hex
    producer.produce(
        stack_up.invocations_topic, orjson.dumps({**activation_request("after"), "activation_id": after})
    )
    assert producer.flush(30) == 0
    assert stored_record(couch, after, timeout_s=90)["response"]["success"] is True

    letters = read_letters(stack_up, set(sent))
    missing = {m: sent[m] for m in sent if m not in letters}
    assert not missing, f"{len(missing)} of {len(sent)} bad events were not dead-lettered: {missing}"
    for marker, found in letters.items():
        topic, what = sent[marker]
        # An unknown action is found where the action is fetched: on the invoker's topic.
        sources = {topic, stack_up.invoker_topic("invoker0")} if what.startswith("unknown") else {topic}
        assert any(letter["source_topic"] in sources for letter in found), (what, found)
        assert all(letter["reason"] for letter in found), (what, found)
        if what.startswith("unknown"):
            assert any("does not exist" in letter["reason"] for letter in found), (what, found)
        if what == "above the size limit":
            assert any("above the limit" in letter["reason"] for letter in found), (what, found)
        if what == "nested 300 levels":
            assert any("cannot be written as JSON" in letter["reason"] for letter in found), (what, found)
