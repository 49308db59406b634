"""Harvesting through the real path: a trained model, the Faust predictor stream,
the allocation carried on each invocation, applied by the invoker and recorded side by side."""

from __future__ import annotations

import pytest

from composer import dag_document
from gleaner.records import annotation
from predictor.store import save_models
from tests.integration.conftest import TEST_NAMESPACE, stored_record
from tests.unit.predictor import AES, synthetic_comparison

pytestmark = pytest.mark.integration
CODE = "def main(args):\n    return {'size': len(str(args))}\n"


@pytest.fixture(scope="module")
def harvest_dag(stack_up, ow, tmp_path_factory):
    for name in ("split", "aes1", "aes2", "aes3", "aes4", "merge"):
        ow.put_action(
            name,
            {"exec": {"kind": "python:3", "code": CODE}, "limits": {"cpu": 0.5, "memory": 512}},
            overwrite=True,
        )
    ow.request("PUT", "/dags/aes", json=dag_document(AES), params={"overwrite": "true"})
    dataset = tmp_path_factory.mktemp("data") / "aes.csv"
    dataset.write_text("request_id\n")
    save_models(
        stack_up.models_root,
        TEST_NAMESPACE,
        "aes",
        synthetic_comparison().to_trained(TEST_NAMESPACE),
        dataset,
        {},
    )
    return "aes"


def run(ow, dag: str, harvest: bool) -> dict:
    status, rec = ow.request(
        "POST",
        f"/dags/{dag}",
        json={"text": "x" * 30_000_000},
        params={"blocking": "true", "harvest": str(harvest).lower()},
    )
    assert status == 200, rec
    return rec


def test_a_harvested_request_runs_its_parallel_stage_at_the_planned_allocations(ow, couch, harvest_dag):
    rec = run(ow, harvest_dag, True)
    plan = rec["gleaner"]["harvest"]
    assert plan["applied"] is True and plan["model_version"].startswith("v"), plan
    planned = plan["allocations"]
    assert sum(a["cpu"] for a in planned.values()) <= 4 * 0.5 + 1e-9  # never beyond the stage budget
    stage = next(s for s in rec["gleaner"]["dag"]["stages"] if s["kind"] == "parallel")
    origins = set()
    for fn in stage["functions"]:
        child = stored_record(couch, fn["activation_id"])
        g = child["gleaner"]
        want = planned[f"{stage['index']}.{fn['index']}"]
        assert g["allocation"] == {"cpu": want["cpu"], "memory": want["memory"]}
        assert g["origin"] == want["origin"] and g["user_allocation"] == {"cpu": 0.5, "memory": 512}
        assert g["predicted"]["cpu"] > 0 and g["measured"]["peak_cpu"] >= 0  # side by side
        origins.add(g["origin"])
    assert origins & {"harvest", "accelerate"}, origins
    assert annotation(stored_record(couch, rec["logs"][0]), "causedBy") == rec["activationId"]


def test_the_same_request_with_harvesting_off_runs_at_user_allocations(ow, couch, harvest_dag):
    rec = run(ow, harvest_dag, False)
    plan = rec["gleaner"]["harvest"]
    assert plan["applied"] is False and any("off for this request" in r for r in plan["reasons"])
    for child_id in rec["logs"]:
        g = stored_record(couch, child_id)["gleaner"]
        assert g["origin"] == "user" and g["allocation"] == {"cpu": 0.5, "memory": 512}
