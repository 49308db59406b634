"""DAG workflows through the real event path: gateway / Kafka -> dag.requests ->
composition stream -> invocations -> placement -> invoker -> completions."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest

from composer import dag_document, parallel, sequence
from gleaner.gateway_client import ApiError, OpenWhiskClient
from gleaner.records import annotation
from tests.integration import kafka_clients
from tests.integration.conftest import TEST_AUTH, TEST_NAMESPACE, stored_record
from tests.integration.test_kafka_path import _read_to_end, read_topic

pytestmark = pytest.mark.integration
FIXTURES = Path(__file__).parents[1] / "unit" / "composer" / "fixtures"

FUNCTIONS = {
    "inc": "def main(args):\n    return {'n': args.get('n', 0) + 1}\n",
    "double": "def main(args):\n    return {'n': args.get('n', 0) * 2}\n",
    "total": (
        "def main(args):\n    return {'n': sum(v['n'] for v in args['value']), 'parts': len(args['value'])}\n"
    ),
    "fail": "def main(args):\n    raise RuntimeError('broken on purpose')\n",
    "nap": (
        "import time\n"
        "def main(args):\n    time.sleep(args.get('nap', 1))\n    return {'n': args.get('n', 0)}\n"
    ),
    "big": "def main(args):\n    return {'blob': 'x' * args.get('size', 200000), 'n': args.get('n', 0)}\n",
    "blobsize": "def main(args):\n    return {'n': len(args['blob'])}\n",
}


@pytest.fixture(scope="module")
def fns(ow: OpenWhiskClient) -> dict[str, str]:
    for name, code in FUNCTIONS.items():
        limits = {"timeout": 1500} if name == "nap" else {}
        ow.put_action(name, {"exec": {"kind": "python:3", "code": code}, "limits": limits}, overwrite=True)
    return FUNCTIONS


def put_dag(ow: OpenWhiskClient, name: str, body: Any) -> dict[str, Any]:
    return ow.request("PUT", f"/dags/{name}", json=body, params={"overwrite": "true"})[1]  # type: ignore[no-any-return]


def run_dag(ow: OpenWhiskClient, name: str, value: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    return ow.request(
        "POST", f"/dags/{name}", json=value, params={"blocking": "true"}, ok=(200, 202, 500, 502)
    )


def test_fan_out_fan_in_and_records(ow, fns, couch, unique):
    dag = sequence("inc", parallel("inc", "double", sequence("double", "inc")), "total")
    doc = put_dag(ow, f"calc-{unique}", dag_document(dag))
    assert doc["analysis"]["depth"] == 3 and doc["analysis"]["width"] == 3
    status, rec = run_dag(ow, f"calc-{unique}", {"n": 1})
    assert status == 200, rec
    assert rec["response"]["result"] == {"n": 12, "parts": 3}  # inc(1)=2; 3 + 4 + 5
    assert annotation(rec, "conductor") is True and len(rec["logs"]) == 6
    stages = rec["gleaner"]["dag"]["stages"]
    assert [s["kind"] for s in stages] == ["action", "parallel", "action"]
    assert [len(s["functions"]) for s in stages] == [1, 4, 1]
    assert all(s["start"] <= s["end"] for s in stages) and stages[0]["end"] <= stages[1]["start"]
    assert rec["gleaner"]["dag"]["input_size"] == len(b'{"n":1}')
    stored = stored_record(couch, rec["activationId"])
    assert stored["logs"] == rec["logs"]
    child = stored_record(couch, rec["logs"][1])
    assert child["gleaner"]["dag_request"] == rec["activationId"] and child["gleaner"]["stage"] == 1
    assert annotation(child, "causedBy") == rec["activationId"]
    assert child["gleaner"]["input_size"] > 0


def test_composer_json_from_compose_deploys_and_runs(ow, fns, unique):
    body = {
        "composition": {
            "type": "sequence",
            "components": [
                {"type": "action", "name": "/_/inc", "path": ".components[0]"},
                {
                    "type": "parallel",
                    "components": [
                        {"type": "action", "name": "/_/double"},
                        {"type": "action", "name": "/_/inc"},
                    ],
                },
                {"type": "action", "name": "/_/total"},
            ],
        },
        "ast": {"type": "sequence", "components": []},
        "version": "0.12.0",
    }
    put_dag(ow, f"composer-{unique}", body)
    # and invoked like an action, as `wsk action invoke` would
    status, result = ow.invoke(f"composer-{unique}", {"n": 2}, blocking=True, result=True)
    assert status == 200 and result == {"n": 10, "parts": 2}  # inc(2)=3; 6 + 4


@pytest.mark.parametrize(
    "fixture", sorted(p.name for p in FIXTURES.glob("*.json")) if FIXTURES.exists() else []
)
def test_every_composer_fixture_is_accepted_or_refused_clearly(ow, fixture):
    body = json.loads((FIXTURES / fixture).read_text())
    try:
        put_dag(ow, "fixture-check", body)
    except ApiError as err:
        assert err.status == 400 and err.body["error"]  # unknown actions or unsupported combinators


def test_a_plain_kafka_producer_can_request_a_dag(stack_up, ow, fns, couch, unique):
    put_dag(ow, f"kcalc-{unique}", dag_document(sequence("inc", "double")))
    producer = kafka_clients.tenant(stack_up, TEST_AUTH)
    with_id = uuid.uuid4().hex
    for request_id in (with_id, None):  # with an id and key, and with neither
        event: dict[str, Any] = {
            "type": "dag.request",
            "version": 1,
            "namespace": TEST_NAMESPACE,
            "dag": f"kcalc-{unique}",
            "input": {"n": 4},
        }
        if request_id:
            event["request_id"] = request_id
        producer.produce(stack_up.dag_requests_topic, orjson.dumps(event), key=request_id)
    producer.flush(10)
    assert stored_record(couch, with_id)["response"]["result"] == {"n": 10}
    results = read_topic(stack_up, stack_up.dag_results_topic, f'"dag":"kcalc-{unique}"'.encode(), want=2)
    assert len(results) == 2 and all(r["result"] == {"n": 10} and r["success"] for r in results)


def test_a_2mb_inline_request_from_kafka_runs_through_every_stream(stack_up, ow, fns, couch, unique):
    """Every client agrees on one event limit (aiokafka's 1 MB default once dropped this)."""
    put_dag(ow, f"kbig-{unique}", dag_document(sequence("blobsize")))
    producer = kafka_clients.tenant(stack_up, TEST_AUTH, **{"message.max.bytes": 4 * 2**20})
    request_id = uuid.uuid4().hex
    event = {
        "type": "dag.request",
        "version": 1,
        "request_id": request_id,
        "namespace": TEST_NAMESPACE,
        "dag": f"kbig-{unique}",
        "input": {"blob": "x" * 2_000_000},
    }
    producer.produce(stack_up.dag_requests_topic, orjson.dumps(event), key=request_id)
    producer.flush(10)
    assert stored_record(couch, request_id, timeout_s=90)["response"]["result"] == {"n": 2_000_000}


def test_a_failing_function_fails_the_request_and_later_stages_do_not_run(ow, fns, couch, unique):
    put_dag(ow, f"broken-{unique}", dag_document(sequence("inc", "fail", "double")))
    status, rec = run_dag(ow, f"broken-{unique}", {"n": 1})
    assert status == 502 and rec["response"]["statusCode"] == 2
    assert "broken on purpose" in rec["response"]["result"]["error"]
    assert rec["response"]["result"]["action"] == "fail"
    assert len(rec["logs"]) == 2  # inc and fail; double never ran
    assert stored_record(couch, rec["activationId"])["gleaner"]["dag"]["status"] == "failed"


def test_a_function_timeout_mid_dag_fails_the_request(ow, fns, unique):
    put_dag(ow, f"slow-{unique}", dag_document(sequence("nap", "double")))
    status, rec = run_dag(ow, f"slow-{unique}", {"n": 1, "nap": 5})
    assert status == 502 and "time limits" in rec["response"]["result"]["error"]
    assert len(rec["logs"]) == 1


def test_large_values_travel_by_reference(stack_up, ow, fns, unique):
    put_dag(ow, f"bigdata-{unique}", dag_document(sequence("big", "blobsize")))
    status, rec = run_dag(ow, f"bigdata-{unique}", {"size": 300_000})
    assert status == 200 and rec["response"]["result"] == {"n": 300_000}
    second = rec["logs"][1]
    [invocation] = read_topic(stack_up, stack_up.invocations_topic, second.encode())
    assert len(orjson.dumps(invocation)) < stack_up.inline_payload_bytes
    assert invocation["params"]["$gleaner_ref"]


def test_a_duplicate_completion_does_not_advance_twice(stack_up, ow, fns, couch, unique):
    put_dag(ow, f"dupc-{unique}", dag_document(sequence("inc", "nap", "double")))
    _, body = ow.request("POST", f"/dags/dupc-{unique}", json={"n": 1, "nap": 1}, ok=(202,))
    request_id = body["activationId"]
    first = None
    deadline = time.monotonic() + 30
    while first is None and time.monotonic() < deadline:
        found = _read_to_end(stack_up, stack_up.completed_topic, f'"caused_by":"{request_id}"'.encode())
        first = found[0] if found else None
    assert first is not None, "the first function never completed"
    # Standing in for an invoker that delivers twice (only invokers write completions).
    producer = kafka_clients.platform(stack_up, partitioner="murmur2_random")
    for _ in range(2):  # replay the first completion while the second function naps
        producer.produce(stack_up.completed_topic, orjson.dumps(first), key=request_id)
    producer.flush(10)
    rec = stored_record(couch, request_id)
    assert rec["response"]["result"] == {"n": 4}
    invocations = _read_to_end(stack_up, stack_up.invocations_topic, f'"caused_by":"{request_id}"'.encode())
    assert sorted(i["action"] for i in invocations) == ["double", "inc", "nap"]


def test_bad_dags_and_requests_get_clear_errors(ow, fns, unique):
    with pytest.raises(ApiError) as err:
        put_dag(ow, f"bad-{unique}", dag_document(sequence("inc", "no-such-action")))
    assert err.value.status == 400 and "no-such-action" in err.value.body["error"]
    with pytest.raises(ApiError) as err:
        put_dag(ow, f"bad-{unique}", {"composition": {"type": "if", "test": {}}})
    assert err.value.status == 400 and "if" in err.value.body["error"]
    with pytest.raises(ApiError) as err:
        put_dag(ow, f"bad-{unique}", {"composition": {"type": "parallel", "components": []}})
    assert err.value.status == 400
    with pytest.raises(ApiError) as err:
        ow.request("POST", "/dags/no-such-dag", json={}, params={"blocking": "true"})
    assert err.value.status == 404
    with pytest.raises(ApiError) as err:  # a DAG that names itself (stored DAGs are expanded snapshots)
        put_dag(ow, f"cyc-{unique}", dag_document(sequence("inc", f"cyc-{unique}")))
    assert err.value.status == 400 and "acyclic" in err.value.body["error"]
    put_dag(ow, f"inner-{unique}", dag_document(sequence("inc", "double")))
    outer = put_dag(ow, f"outer-{unique}", dag_document(sequence(f"inner-{unique}", "inc")))
    assert outer["analysis"]["depth"] == 3  # the inner DAG was inlined


def test_bad_dag_requests_on_kafka_are_dead_lettered(stack_up, couch, unique):
    producer = kafka_clients.tenant(stack_up, TEST_AUTH)
    marker = uuid.uuid4().hex
    producer.produce(stack_up.dag_requests_topic, f"garbage {marker}".encode())
    missing = uuid.uuid4().hex
    producer.produce(
        stack_up.dag_requests_topic,
        orjson.dumps(
            {
                "type": "dag.request",
                "version": 1,
                "request_id": missing,
                "namespace": TEST_NAMESPACE,
                "dag": f"missing-{unique}",
                "input": {},
            }
        ),
        key=missing,
    )
    producer.flush(10)
    letters = read_topic(stack_up, stack_up.deadletter_topic, marker.encode())
    assert letters and "not valid JSON" in letters[0]["reason"]
    failed = stored_record(couch, missing)
    assert (
        failed["response"]["success"] is False and "does not exist" in failed["response"]["result"]["error"]
    )


def test_no_request_hangs_forever(stack_up, ow, fns, couch, unique):
    """A composition stream with a short DAG-level timeout fails a request whose
    function outlives it, with a record saying so."""
    import dataclasses

    from deploy import procs

    ow.put_action(
        f"longnap-{unique}",
        {"exec": {"kind": "python:3", "code": FUNCTIONS["nap"]}, "limits": {"timeout": 30000}},
        overwrite=True,
    )
    put_dag(ow, f"hang-{unique}", dag_document(sequence(f"longnap-{unique}", "inc")))
    procs.stop_components(stack_up, ("composition",))
    procs.start_components(dataclasses.replace(stack_up, dag_timeout_s=2.0), ("composition",))
    try:
        status, rec = run_dag(ow, f"hang-{unique}", {"nap": 8})
    finally:
        procs.stop_components(stack_up, ("composition",))  # stops the supervisor too, so it cannot interfere
        procs.start_components(stack_up, ("composition",))
        procs.start_supervisor(stack_up)
    assert status == 502 and "time limit" in rec["response"]["result"]["error"]
    assert rec["gleaner"]["dag"]["status"] == "timeout" and annotation(rec, "timeout") is True
    assert rec["response"]["result"]["pending"] == [f"longnap-{unique}"]
    assert rec["duration"] < 7000


def test_a_dags_slo_sets_its_invocations_deadline(stack_up, ow, fns, unique):
    name = f"slo-{unique}"
    body = dag_document(sequence("inc", "double"))
    doc = ow.request("PUT", f"/dags/{name}", json=body, params={"overwrite": "true", "slo_ms": "5000"})[1]
    assert doc["slo_ms"] == 5000
    assert put_dag(ow, name, body)["slo_ms"] == 5000  # an update that names none keeps it
    with pytest.raises(ApiError) as err:
        ow.request("PUT", f"/dags/{name}", json=body, params={"overwrite": "true", "slo_ms": "-1"})
    assert err.value.status == 400 and "slo_ms" in err.value.body["error"]
    status, rec = run_dag(ow, name, {"n": 1})
    assert status == 200 and rec["response"]["result"] == {"n": 4}
    invocations = _read_to_end(
        stack_up, stack_up.invocations_topic, f'"caused_by":"{rec["activationId"]}"'.encode()
    )
    assert len(invocations) == 2
    for event in invocations:  # the invoker's least-slack order reads these
        assert event["deadline_ms"] - event["request_ms"] == 5000
        assert event["remaining_ms"] >= 0
    no_slo = ow.request("PUT", f"/dags/{name}", json=body, params={"overwrite": "true", "slo_ms": "0"})[1]
    assert "slo_ms" not in no_slo
