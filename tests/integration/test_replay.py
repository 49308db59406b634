"""Stream replay and `gleaner eval` on the real stack: a short trace replayed
open-loop under two policies, recorded requests replayed from the topic, the
one-replay-at-a-time lease, and a tiny three-part evaluation report."""

from __future__ import annotations

import csv
from pathlib import Path

import orjson
import pytest

from composer import dag_document
from gleaner.cli.main import main
from gleaner.redis_store import RedisStore
from predictor.store import save_models
from streams.kafka.client import EventProducer
from streams.replay.lock import ReplayLock
from streams.replay.stack import replayer_for
from streams.replay.trace import TraceEntry
from tests.integration.conftest import TEST_AUTH, TEST_NAMESPACE
from tests.unit.predictor import AES, synthetic_comparison

pytestmark = pytest.mark.integration
DAG = "replay-aes"
# Every function reports the size of what it got, so the final output is a pure function of the input.
CODE = "def main(args):\n    return {'size': len(str(args))}\n"
SIZES = (20_000, 90_000, 150_000)  # two of them above the inline limit: they travel by reference


@pytest.fixture(scope="module")
def replay_dag(stack_up, ow, tmp_path_factory) -> str:
    for name in ("split", "aes1", "aes2", "aes3", "aes4", "merge"):
        ow.put_action(
            name,
            {"exec": {"kind": "python:3", "code": CODE}, "limits": {"cpu": 0.5, "memory": 256}},
            overwrite=True,
        )
    ow.request("PUT", f"/dags/{DAG}", json=dag_document(AES), params={"overwrite": "true"})
    dataset = tmp_path_factory.mktemp("data") / "aes.csv"
    dataset.write_text("request_id\n")
    comparison = synthetic_comparison().to_trained(TEST_NAMESPACE)
    save_models(stack_up.models_root, TEST_NAMESPACE, DAG, comparison, dataset, {})
    return DAG


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("inputs")
    files = []
    for i, size in enumerate(SIZES):
        path = folder / f"input-{i:03d}.json"
        path.write_bytes(orjson.dumps({"text": "x" * size, "i": i}))
        files.append(path)
    return files


def expected_output(ow, dag: str, path: Path) -> dict:
    status, body = ow.request(
        "POST",
        f"/dags/{dag}",
        json=orjson.loads(path.read_bytes()),
        params={"blocking": "true", "result": "true"},
    )
    assert status == 200, body
    return body


def cli(*argv: str, apihost: str) -> int:
    return main([*argv, "--apihost", apihost, "-u", TEST_AUTH])


def rows(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def test_a_replayed_trace_gives_every_request_its_right_output_under_both_policies(
    stack_up, ow, replay_dag, inputs
):
    expected = {p.name: expected_output(ow, replay_dag, p) for p in inputs}
    entries = [TraceEntry(offset_s=0.1 * i, dag=replay_dag, input_path=p) for i, p in enumerate(inputs)]
    redis = RedisStore(stack_up)
    producer = EventProducer(stack_up)
    try:
        replayer = replayer_for(stack_up.replay, stack_up.kafka, TEST_NAMESPACE, producer, redis)
        for policy in ("off", "thesis"):
            run = replayer.run(entries, policy=policy, deadline_s=120, progress=False, keep_results=True)
            assert not run.unfinished and not run.failed, [o.error for o in run.outcomes]
            for o in run.outcomes:
                assert run.results[o.request_id] == expected[o.input], o
                assert o.policy == policy and o.latency_ms > 0 and o.parallel_stage_ms > 0
                assert len(o.functions) == 6 and all(f.status_code == 0 for f in o.functions)
                stage = [f for f in o.functions if f.stage == 1]
                if policy == "off":
                    assert not o.harvest_applied and {f.origin for f in stage} == {"user"}
                else:  # the synthetic model plans every request of this DAG
                    assert o.harvest_applied and {f.origin for f in stage} & {"harvest", "accelerate"}
    finally:
        producer.close()
        redis.close()


def test_gleaner_replay_writes_per_request_csvs_for_each_policy(stack_up, replay_dag, inputs, tmp_path):
    trace = tmp_path / "trace.csv"
    trace.write_text(
        "offset_s,dag,input\n" + "".join(f"{0.2 * i},{replay_dag},{p}\n" for i, p in enumerate(inputs))
    )
    out = tmp_path / "out"
    assert (
        cli(
            "replay", str(trace), "--policy", "off,thesis", "--out", str(out), "-q", apihost=stack_up.api_host
        )
        == 0
    )
    for policy in ("off", "thesis"):
        got = rows(out / f"{policy}-requests.csv")
        assert [r["status"] for r in got] == ["success"] * len(inputs)
        assert {r["policy"] for r in got} == {policy}
        assert len(rows(out / f"{policy}-functions.csv")) == 6 * len(inputs)


def test_recorded_requests_replay_from_the_topic(stack_up, ow, replay_dag, inputs, tmp_path):
    for path in inputs[:2]:  # at least two requests of this DAG are on the topic, whatever ran before
        expected_output(ow, replay_dag, path)
    out = tmp_path / "out"
    code = cli(
        "replay",
        "--topic",
        stack_up.dag_requests_topic,
        "--dag",
        replay_dag,
        "--limit",
        "2",
        "--policy",
        "off",
        "--out",
        str(out),
        "-q",
        apihost=stack_up.api_host,
    )
    assert code == 0
    assert [r["status"] for r in rows(out / "off-requests.csv")] == ["success", "success"]


def test_a_malformed_trace_is_refused_with_its_line_before_anything_is_sent(
    stack_up, replay_dag, tmp_path, capsys
):
    trace = tmp_path / "bad.jsonl"
    good = orjson.dumps({"offset_s": 0, "dag": replay_dag, "input": {}}).decode()
    bad = orjson.dumps({"offset_s": 1, "dag": "no-such-dag", "input": {}}).decode()
    trace.write_text(f"{good}\n{bad}\n")
    assert cli("replay", str(trace), "-q", apihost=stack_up.api_host) == 1
    err = capsys.readouterr().err
    assert "line 2" in err and "no-such-dag" in err


def test_a_second_replay_is_refused_while_one_runs(stack_up, replay_dag, inputs, tmp_path, capsys):
    trace = tmp_path / "t.jsonl"
    trace.write_text(
        orjson.dumps({"offset_s": 0, "dag": replay_dag, "input": str(inputs[0])}).decode() + "\n"
    )
    redis = RedisStore(stack_up)
    try:
        with ReplayLock(redis, "a replay held by the test"):
            assert cli("replay", str(trace), "-q", apihost=stack_up.api_host) == 1
    finally:
        redis.close()
    assert "another replay is running (a replay held by the test" in capsys.readouterr().err


def test_gleaner_eval_writes_the_report_and_the_csvs(stack_up, replay_dag, inputs, tmp_path):
    out = tmp_path / "eval"
    code = cli(
        "eval",
        replay_dag,
        "--input-dir",
        str(inputs[0].parent),
        "--requests",
        "3",
        "--loads",
        "low,high",
        "--cpu-seconds",
        "0.5",
        "--warmup",
        "1",
        "--deadline",
        "120",
        "--out",
        str(out),
        "-q",
        apihost=stack_up.api_host,
    )
    assert code == 0
    report = (out / f"{replay_dag}.md").read_text()
    assert "arrival patterns are synthesised" in report
    assert "| low | thesis | 3 |" in report and "| high | thesis | 3 |" in report  # all paired
    for load in ("low", "high"):
        for policy in ("off", "thesis"):
            got = rows(out / "data" / replay_dag / f"{load}-{policy}-requests.csv")
            assert [r["status"] for r in got] == ["success"] * 3
    assert len(list((out / "img").glob(f"{replay_dag}-*.png"))) == 5


@pytest.mark.parametrize(
    ("params", "why"),
    [
        ({"policy": "bogus"}, "unknown harvesting policy 'bogus'"),
        ({"policy": "off", "harvest": "true"}, "contradict"),
    ],
)
def test_the_gateway_refuses_a_bad_policy_with_openwhisk_error_json(ow, replay_dag, params, why):
    status, body = ow.request("POST", f"/dags/{replay_dag}", json={"text": "x"}, params=params, ok=(400,))
    assert status == 400 and why in body["error"] and body["code"]


def test_a_request_asked_to_run_under_a_policy_records_it(ow, replay_dag):
    status, rec = ow.request(
        "POST", f"/dags/{replay_dag}", json={"text": "x" * 5000}, params={"blocking": "true", "policy": "off"}
    )
    assert status == 200, rec
    plan = rec["gleaner"]["harvest"]
    assert plan["applied"] is False and any("off for this request" in r for r in plan["reasons"])
