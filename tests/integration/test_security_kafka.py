"""Issue 10, items 2 and 3, tried as an attacker would on the real stack.

Tenant A is the test namespace; tenant B has a key of its own. B tries to
read A's large value by naming A's payload reference (over REST, as a DAG or
action input, and through Kafka), and anyone who can reach the broker tries
to run functions as A without A's key, to write a completion that becomes
A's record, and to feed the internal topics. Every attempt fails with a
reason (403, a developer-error record, or a dead letter), nothing of A's is
read, and the platform keeps serving A.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from composer import dag_document, sequence
from gleaner.couchdb import ACTIVATIONS, CouchDB
from gleaner.gateway_client import ApiError, OpenWhiskClient, Target
from gleaner.settings import Settings
from gleaner.subjects import ensure_subject
from streams.events import InvokerHealth
from streams.kafka.signing import SIGNATURE_HEADER
from tests.integration import kafka_clients
from tests.integration.conftest import TEST_AUTH, TEST_NAMESPACE, stored_record, wait_for
from tests.integration.test_kafka_path import _read_to_end, read_topic

pytestmark = pytest.mark.integration
OTHER_NAMESPACE = "gleaner-test-other"
OTHER_AUTH = f"{uuid.UUID(int=2)}:{'o' * 64}"
SECRET_MARK = "A-SECRET-" + "7" * 16  # what A's large value holds; B must never see it
BLOB = 200_000  # above inline_payload_bytes: travels by reference
PEEK = "def main(args):\n    return {'got': args}\n"
BLOB_CODE = f"def main(args):\n    return {{'blob': {SECRET_MARK!r} + 'x' * {BLOB}}}\n"
LENGTH = "def main(args):\n    return {'n': len(args.get('blob', ''))}\n"


@pytest.fixture(scope="module")
def other(stack_up: Settings, couch: CouchDB) -> Iterator[OpenWhiskClient]:
    ensure_subject(couch, OTHER_NAMESPACE, OTHER_AUTH)
    client = OpenWhiskClient(Target(stack_up.api_host, OTHER_AUTH))
    client.put_action("sk-peek", {"exec": {"kind": "python:3", "code": PEEK}}, overwrite=True)
    client.request(
        "PUT", "/dags/sk-peek-dag", json=dag_document(sequence("sk-peek")), params={"overwrite": "true"}
    )
    yield client
    client.close()


@pytest.fixture(scope="module")
def victim_ref(ow: OpenWhiskClient, couch: CouchDB) -> dict[str, Any]:
    """A's large result, held in the data store by reference, with the activation that made it."""
    ow.put_action("sk-blob", {"exec": {"kind": "python:3", "code": BLOB_CODE}}, overwrite=True)
    ow.put_action("sk-length", {"exec": {"kind": "python:3", "code": LENGTH}}, overwrite=True)
    ow.request(
        "PUT", "/dags/sk-length-dag", json=dag_document(sequence("sk-length")), params={"overwrite": "true"}
    )
    _, rec = ow.invoke("sk-blob", {}, blocking=True, result=False)
    stored = stored_record(couch, rec["activationId"])
    ref = stored["response"]["result"]
    assert "$gleaner_ref" in ref, ref
    return {"ref": ref, "activation_id": rec["activationId"]}


def refused(fn: Any) -> ApiError:
    with pytest.raises(ApiError) as err:
        fn()
    return err.value


# --- item 2: payload references belong to their namespace -----------------------------------------


def test_a_reference_id_is_unguessable_not_the_activation_id(victim_ref):
    ref_id = victim_ref["ref"]["$gleaner_ref"]
    assert ref_id != victim_ref["activation_id"] and len(ref_id) >= 32


def test_the_owner_can_use_its_own_reference(ow, victim_ref):
    _, rec = ow.request("POST", "/dags/sk-length-dag", json=victim_ref["ref"], params={"blocking": "true"})
    assert rec["response"]["result"] == {"n": len(SECRET_MARK) + BLOB}


def test_another_namespaces_dag_input_naming_the_reference_is_refused_403(other, victim_ref):
    for named in (victim_ref["ref"], {"$gleaner_ref": victim_ref["activation_id"]}):
        err = refused(
            lambda n=named: other.request("POST", "/dags/sk-peek-dag", json=n, params={"blocking": "true"})
        )
        assert err.status == 403 and "is not a value of namespace gleaner-test-other" in err.body["error"]
        assert SECRET_MARK not in orjson.dumps(err.body).decode()
    fan_in = {"value": [victim_ref["ref"], {"n": 1}]}  # hidden inside a fan-in's list
    err = refused(lambda: other.request("POST", "/dags/sk-peek-dag", json=fan_in))
    assert err.status == 403


def test_another_namespaces_action_input_naming_the_reference_is_refused_403(other, victim_ref):
    err = refused(lambda: other.invoke("sk-peek", victim_ref["ref"], blocking=True, result=False))
    assert err.status == 403 and SECRET_MARK not in str(err.body), err.body


def test_another_namespaces_kafka_invocation_naming_the_reference_fails_and_reads_nothing(
    stack_up, couch, victim_ref
):
    """Past the gateway (B's own key on Kafka), the invoker still refuses to read A's value."""
    activation_id = uuid.uuid4().hex
    event = {
        "type": "activation.request",
        "version": 1,
        "activation_id": activation_id,
        "namespace": OTHER_NAMESPACE,
        "action": "sk-peek",
        "params": victim_ref["ref"],
    }
    producer = kafka_clients.tenant(stack_up, OTHER_AUTH)
    producer.produce(stack_up.invocations_topic, orjson.dumps(event), key=activation_id)
    assert producer.flush(10) == 0
    rec = wait_for(lambda: couch.get_doc(ACTIVATIONS, f"{OTHER_NAMESPACE}/{activation_id}"), 90, "record")
    assert rec["response"]["statusCode"] == 2, rec
    assert "is not a value of namespace gleaner-test-other" in rec["response"]["result"]["error"]
    assert SECRET_MARK not in orjson.dumps(rec).decode()


def test_another_namespaces_kafka_dag_request_naming_the_reference_fails_cleanly(stack_up, couch, victim_ref):
    request_id = uuid.uuid4().hex
    event = {
        "type": "dag.request",
        "version": 1,
        "request_id": request_id,
        "namespace": OTHER_NAMESPACE,
        "dag": "sk-peek-dag",
        "input": victim_ref["ref"],
    }
    producer = kafka_clients.tenant(stack_up, OTHER_AUTH)  # B's own, valid key
    producer.produce(stack_up.dag_requests_topic, orjson.dumps(event), key=request_id)
    assert producer.flush(10) == 0
    rec = wait_for(lambda: couch.get_doc(ACTIVATIONS, f"{OTHER_NAMESPACE}/{request_id}"), 90, "DAG record")
    assert rec["response"]["statusCode"] == 2 and not rec["response"]["success"], rec
    assert SECRET_MARK not in orjson.dumps(rec).decode()


def test_a_guessed_reference_fails_even_in_its_own_namespace(ow):
    err = refused(
        lambda: ow.request("POST", "/dags/sk-length-dag", json={"$gleaner_ref": secrets.token_hex(16)})
    )
    assert err.status == 403 and "never existed" in err.body["error"]


# --- item 3: Kafka is not a back door --------------------------------------------------------------


def invocation(activation_id: str, marker: str, namespace: str = TEST_NAMESPACE) -> bytes:
    return orjson.dumps(
        {
            "type": "activation.request",
            "version": 1,
            "activation_id": activation_id,
            "namespace": namespace,
            "action": "sk-blob",
            "params": {"marker": marker},
        }
    )


def dead_letter(settings: Settings, marker: str, want: int = 1) -> list[dict[str, Any]]:
    letters = read_topic(settings, settings.deadletter_topic, marker.encode(), want=want, seconds=60)
    assert len(letters) >= want, f"no dead letter for {marker}"
    return letters


def assert_never_ran(settings: Settings, couch: CouchDB, activation_id: str) -> None:
    assert couch.get_doc(ACTIVATIONS, f"{TEST_NAMESPACE}/{activation_id}") is None
    assert _read_to_end(settings, settings.completed_topic, activation_id.encode()) == []


@pytest.mark.parametrize(
    ("who", "why"),
    [
        ("nobody", "namespace gleaner-test not proven: no credential"),
        (
            "another tenant",
            "namespace gleaner-test not proven: the credential does not belong to namespace gleaner-test",
        ),
        ("a made-up key", "namespace gleaner-test not proven: the credential is not a valid key"),
        ("a forged signature", "forged event on"),
    ],
)
def test_an_invocation_that_cannot_prove_its_namespace_is_dead_lettered_and_never_runs(
    stack_up, couch, victim_ref, who, why
):
    producers = {
        "nobody": lambda: kafka_clients.bare(stack_up),
        "another tenant": lambda: kafka_clients.tenant(stack_up, OTHER_AUTH),
        "a made-up key": lambda: kafka_clients.tenant(stack_up, f"{uuid.UUID(int=1)}:{'z' * 64}"),
        "a forged signature": lambda: kafka_clients.HeaderProducer(
            stack_up, lambda _t, _k, _v: [(SIGNATURE_HEADER, secrets.token_hex(32).encode())]
        ),
    }
    activation_id, marker = uuid.uuid4().hex, uuid.uuid4().hex
    producer = producers[who]()
    producer.produce(stack_up.invocations_topic, invocation(activation_id, marker))
    assert producer.flush(10) == 0
    (letter,) = dead_letter(stack_up, marker)
    assert why in letter["reason"] and letter["source_topic"] == stack_up.invocations_topic
    assert_never_ran(stack_up, couch, activation_id)


def test_events_straight_to_internal_topics_are_dead_lettered(stack_up, couch):
    producer = kafka_clients.tenant(stack_up, TEST_AUTH)  # even with a valid key: these are not entry topics
    activation_id, marker = uuid.uuid4().hex, uuid.uuid4().hex
    invoker_topic = stack_up.invoker_topic("invoker0")
    producer.produce(invoker_topic, invocation(activation_id, marker))
    # A well-formed heartbeat of a made-up invoker: only its missing signature stops it.
    heartbeat = InvokerHealth(f"ghost-{marker}", "x", 0, 64.0, 65536, 64.0, 65536, 0, 0).to_bytes()
    producer.produce(stack_up.health_topic, heartbeat)
    assert producer.flush(10) == 0
    letters = dead_letter(stack_up, marker, want=2)
    reasons = {letter["source_topic"]: letter["reason"] for letter in letters}
    assert reasons[invoker_topic].startswith(f"unsigned event on {invoker_topic}")
    assert reasons[stack_up.health_topic].startswith(f"unsigned event on {stack_up.health_topic}")
    assert_never_ran(stack_up, couch, activation_id)


def test_a_dag_request_that_cannot_prove_its_namespace_is_dead_lettered(stack_up, couch):
    request_id, marker = uuid.uuid4().hex, uuid.uuid4().hex
    event = {
        "type": "dag.request",
        "version": 1,
        "request_id": request_id,
        "namespace": TEST_NAMESPACE,
        "dag": "sk-length-dag",
        "input": {"blob": marker},
    }
    producer = kafka_clients.tenant(stack_up, OTHER_AUTH)
    producer.produce(stack_up.dag_requests_topic, orjson.dumps(event), key=request_id)
    assert producer.flush(10) == 0
    (letter,) = dead_letter(stack_up, marker)
    assert "credential does not belong to namespace gleaner-test" in letter["reason"]
    assert couch.get_doc(ACTIVATIONS, f"{TEST_NAMESPACE}/{request_id}") is None


def test_a_forged_completion_never_becomes_a_record_a_tenant_reads(stack_up, ow, couch):
    activation_id, marker = uuid.uuid4().hex, uuid.uuid4().hex
    record = {
        "activationId": activation_id,
        "namespace": TEST_NAMESPACE,
        "name": "sk-blob",
        "response": {"statusCode": 0, "success": True, "result": {"forged": marker}},
        "start": 1,
        "end": 2,
        "duration": 1,
        "logs": [],
        "annotations": [],
    }
    event = {
        "type": "activation.completed",
        "version": 1,
        "activation_id": activation_id,
        "namespace": TEST_NAMESPACE,
        "action": "sk-blob",
        "invoker": "invoker0",
        "record": record,
    }
    producer = kafka_clients.bare(stack_up)
    producer.produce(stack_up.completed_topic, orjson.dumps(event), key=activation_id)
    assert producer.flush(10) == 0
    # The record sink and the composition stream each refuse it.
    letters = dead_letter(stack_up, marker, want=2)
    assert all(
        letter["reason"].startswith(f"unsigned event on {stack_up.completed_topic}") for letter in letters
    )
    assert couch.get_doc(ACTIVATIONS, f"{TEST_NAMESPACE}/{activation_id}") is None
    err = refused(lambda: ow.request("GET", f"/activations/{activation_id}"))
    assert err.status == 404
    _, listed = ow.request("GET", "/activations", params={"limit": 200})
    assert activation_id not in orjson.dumps(listed).decode()


def test_the_platform_kept_serving_the_victim(stack_up, ow, couch):
    activation_id = uuid.uuid4().hex
    producer = kafka_clients.tenant(stack_up, TEST_AUTH)  # A's own key: a legitimate Kafka client
    producer.produce(
        stack_up.invocations_topic,
        orjson.dumps(
            {
                "type": "activation.request",
                "activation_id": activation_id,
                "namespace": TEST_NAMESPACE,
                "action": "sk-length",
                "params": {"blob": "abc"},
            }
        ),
    )
    assert producer.flush(10) == 0
    assert stored_record(couch, activation_id)["response"]["result"] == {"n": 3}
    _, result = ow.invoke("sk-length", {"blob": "abcd"}, blocking=True, result=True)
    assert result == {"n": 4}
