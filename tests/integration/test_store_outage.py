"""A tenant's DAG request that arrives over Kafka while CouchDB (the key store) is away
waits for it instead of being dead-lettered (issue 21): the predictor cannot tell a good
key from a bad one without the store, so it holds the request and plans it once the
store answers again. Tried on the real stack: CouchDB is stopped (SIGSTOP) with a request
from a key the predictor has never seen, so no cached credential can let it through."""

from __future__ import annotations

import os
import signal
import time
import uuid

import orjson
import pytest

from benchmarks import chaos
from composer import dag_document, sequence
from gleaner.couchdb import ACTIVATIONS, CouchDB
from gleaner.gateway_client import OpenWhiskClient, Target
from gleaner.settings import Settings
from gleaner.subjects import ensure_subject
from tests.integration import kafka_clients
from tests.integration.conftest import wait_for
from tests.integration.test_kafka_path import _read_to_end

pytestmark = pytest.mark.integration

OUTAGE_S = 20.0  # well past the predictor's first retries, well under platform_retry_s (120 s)
ECHO = "def main(args):\n    return {'echo': args.get('n')}\n"


def test_a_tenant_kafka_request_during_a_key_store_outage_waits_and_runs(stack_up: Settings, couch: CouchDB):
    namespace = f"gleaner-test-hold-{uuid.uuid4().hex[:6]}"
    auth = f"{uuid.uuid4()}:{uuid.uuid4().hex * 2}"
    ensure_subject(couch, namespace, auth)
    client = OpenWhiskClient(Target(stack_up.api_host, auth))
    try:
        client.put_action("hold-echo", {"exec": {"kind": "python:3", "code": ECHO}}, overwrite=True)
        client.request(
            "PUT", "/dags/hold-dag", json=dag_document(sequence("hold-echo")), params={"overwrite": "true"}
        )
    finally:
        client.close()
    request_id = uuid.uuid4().hex
    event = {
        "type": "dag.request",
        "version": 1,
        "request_id": request_id,
        "namespace": namespace,
        "dag": "hold-dag",
        "input": {"n": 7},
    }
    producer = kafka_clients.tenant(stack_up, auth)
    couchdb = chaos._pid(stack_up, "couchdb")
    os.kill(couchdb, signal.SIGSTOP)
    try:
        producer.produce(stack_up.dag_requests_topic, orjson.dumps(event), key=request_id)
        assert producer.flush(10) == 0
        time.sleep(OUTAGE_S)
    finally:
        os.kill(couchdb, signal.SIGCONT)
    rec = wait_for(
        lambda: couch.get_doc(ACTIVATIONS, f"{namespace}/{request_id}"), 120, "the held request's record"
    )
    assert rec["response"]["success"] and rec["response"]["result"] == {"echo": 7}, rec
    assert _read_to_end(stack_up, stack_up.deadletter_topic, request_id.encode()) == []  # held, never refused
