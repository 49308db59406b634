"""The request planner falls back to user allocations, with the reason, on
every fault; and never plans an allocation outside a stage's budget."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from composer import normalize, to_json
from gleaner.allocation import Allocation
from gleaner.settings import Settings
from predictor.inference import Prediction, Predictor
from predictor.store import save_models
from streams.events import DagPlan, DagRequest
from streams.predictor_stream.planner import RequestPlanner
from tests.unit.predictor import AES, synthetic_comparison

USER = {"cpu": 0.5, "memory": 512}


class FakeDB:
    def __init__(self) -> None:
        self.docs: dict[str, dict[str, Any]] = {
            "dags/guest/aes": {"_rev": "1-a", "composition": to_json(normalize(AES))},
            **{f"whisks/guest/aes{i}": {"limits": USER} for i in range(1, 5)},
        }

        self.reads: list[str] = []

    def get_doc(self, db: str, doc_id: str, rev: str | None = None) -> dict[str, Any] | None:
        self.reads.append(f"{db}/{doc_id}")
        return self.docs.get(f"{db}/{doc_id}")


@pytest.fixture()
def settings(tmp_path: Path) -> Settings:
    return Settings(
        cpu_max=2.0, invoker_cpu_capacity=2.0, models_dir=str(tmp_path / "models"), state_dir=tmp_path
    )


@pytest.fixture()
def trained(settings: Settings, tmp_path: Path) -> Path:
    dataset = tmp_path / "aes.csv"
    dataset.write_text("request_id\n")
    return save_models(
        settings.models_root, "guest", "aes", synthetic_comparison().to_trained("guest"), dataset, {}
    )


def request(**kw: Any) -> DagRequest:
    base: dict[str, Any] = {
        "request_id": "a" * 32,
        "namespace": "guest",
        "dag": "aes",
        "input": {"text": "x" * 20_000_000},
    }
    base.update(kw)
    return DagRequest(**base)


def planner(settings: Settings) -> RequestPlanner:
    return RequestPlanner(settings, FakeDB())  # type: ignore[arg-type]


@pytest.mark.parametrize("policy", ["thesis", "gleaner"])
def test_a_plan_moves_cpu_to_the_straggler_within_the_stage_budget(settings, trained, policy):
    plan = planner(settings).plan(request(policy=policy))
    assert plan.harvest and plan.model_version is not None and plan.policy == policy
    written = plan.allocations  # typed, as the composition stream reads them
    assert set(written) == {(1, 0), (1, 1), (1, 2), (1, 3)}
    assert all(isinstance(a, Allocation) for a in written.values())
    cpus = [written[(1, i)].cpu for i in range(4)]
    assert sum(cpus) <= 4 * USER["cpu"] + 1e-9
    assert cpus[0] == max(cpus) and written[(1, 0)].origin == "accelerate"
    assert written[(1, 3)].origin == "harvest"
    assert all(w.predicted is not None and w.predicted.cpu > 0 for w in written.values())
    assert plan.inference_ms > 0


def test_the_setting_names_the_default_policy(settings, trained):
    import dataclasses

    plan = planner(dataclasses.replace(settings, harvest_policy="libra")).plan(request())
    assert plan.policy == "libra" and any("policy libra" in r for r in plan.reasons)
    assert planner(settings).plan(request(harvest=False)).policy == "off"


@pytest.mark.parametrize(
    ("settings_change", "req", "reason"),
    [
        ({"harvest_enabled": False}, {}, "harvesting is off (setting)"),
        ({}, {"harvest": False}, "off for this request"),
        ({}, {"input": {}}, "no measurable input size"),
        ({}, {"dag": "unknown"}, "does not exist"),
    ],
)
def test_fallbacks_keep_user_allocations_with_the_reason(settings, trained, settings_change, req, reason):
    import dataclasses

    plan = planner(dataclasses.replace(settings, **settings_change)).plan(request(**req))
    assert not plan.harvest and not plan.allocations
    assert any(reason in r for r in plan.reasons), plan.reasons


def test_no_trained_model(settings):
    plan = planner(settings).plan(request())
    assert not plan.harvest and any("no trained model" in r for r in plan.reasons)


def test_a_model_file_that_fails_to_load(settings, trained):
    for model in trained.glob("*.joblib"):
        model.write_bytes(b"not a model")
    plan = planner(settings).plan(request())
    assert not plan.harvest and any("failed to load" in r for r in plan.reasons)


class StubPredictor:
    def __init__(self, cpu: float, memory: float) -> None:
        self.cpu, self.memory = cpu, memory

    def predict(self, dag_input_size: float, slots: Any) -> list[Prediction]:
        return [Prediction(1000.0, self.cpu, self.memory) for _ in slots]


@pytest.mark.parametrize(
    ("cpu", "memory", "reason"), [(50.0, 1e9, "stage 1"), (float("nan"), 100.0, "not finite")]
)
def test_predictions_outside_the_allowed_range(settings, trained, cpu, memory, reason):
    p = planner(settings)
    p.models.get = lambda ns, dag: (StubPredictor(cpu, memory), None, 1)  # type: ignore[method-assign]
    plan = p.plan(request(policy="thesis"))
    assert any(reason in r for r in plan.reasons), plan.reasons
    written = list(plan.allocations.values())
    for allocation in written:
        assert 0.25 <= allocation.cpu <= 2.0 and allocation.memory_mb <= 8192
    assert sum(a.cpu for a in written) <= 2.0 + 1e-9


def test_profile_requests_get_the_maximum_for_every_function(settings):
    plan = planner(settings).plan(request(profile=True))
    written = list(plan.allocations.values())
    assert len(written) == 6  # split, 4 parallel, merge
    assert all(a.cpu == 2.0 and a.origin == "profile" for a in written)
    assert not plan.harvest


def test_a_profile_request_with_profile_cpu_gets_those_cores_for_every_function(settings: Settings) -> None:
    top = planner(settings).plan(request(profile=True))
    plan = planner(settings).plan(request(profile=True, profile_cpu=1.0))
    written = list(plan.allocations.values())
    assert len(written) == 6 and not plan.harvest
    assert all(a.cpu == 1.0 and a.origin == "profile" for a in written)
    # Memory as for any profile request: the maximum.
    assert {a.memory_mb for a in written} == {a.memory_mb for a in top.allocations.values()}
    assert any("every function at 1.0 cores" in r for r in plan.reasons), plan.reasons
    assert not any("asked" in r for r in plan.reasons)  # on the grid, within the capacity: as asked


@pytest.mark.parametrize(
    ("capacity", "asked", "given"),
    [
        (2.0, 5.0, 2.0),  # above the maximum: the maximum
        (2.0, 0.6, 0.75),  # between grid values: A(asked), as the normalizer rounds
        (2.0, 0.1, 0.25),  # below the grid: its minimum
        (1.9, 1.8, 1.75),  # A(1.8) = 2 is above the invoker's 1.9: the grid's largest within it
        (1.9, 1.95, 1.9),  # at or above the capacity: the profile maximum, as without profile_cpu
    ],
)
def test_profile_cpu_is_clamped_to_the_capacity_and_the_grid(
    settings: Settings, capacity: float, asked: float, given: float
) -> None:
    import dataclasses

    changed = dataclasses.replace(settings, invoker_cpu_capacity=capacity)
    plan = planner(changed).plan(request(profile=True, profile_cpu=asked))
    assert {a.cpu for a in plan.allocations.values()} == {given}
    assert any(f"{asked:g} cores asked, {given:g} given" in r for r in plan.reasons), plan.reasons


def test_each_plan_counts_as_a_harvest_decision_by_mode(settings, trained):
    from prometheus_client import REGISTRY

    def count(mode: str, harvest: str) -> float:
        labels = {"mode": mode, "harvest": harvest}
        return REGISTRY.get_sample_value("gleaner_harvest_decisions_total", labels) or 0.0

    before = count("off", "no")
    plan = planner(settings).plan(request(harvest=False))
    assert plan.policy == "off" and not plan.harvest
    assert count("off", "no") == before + 1


# --- a batch of requests --------------------------------------------------------------------------


def comparable(plan: DagPlan) -> dict[str, Any]:
    out = plan.to_dict()
    out.pop("inference_ms")  # timing
    return out


def test_a_batch_plans_each_request_as_it_would_be_planned_alone(settings, trained):
    reqs = [
        request(request_id=f"{i:032x}", input={"text": "x" * (1_000_000 * i)}, policy=policy)
        for i, policy in enumerate(["thesis", "gleaner", "libra", "thesis"], start=1)
    ]
    reqs += [request(request_id="e" * 32, harvest=False), request(request_id="f" * 32, dag="unknown")]
    batch = planner(settings).plan_batch(reqs)
    alone = [planner(settings).plan(r) for r in reqs]
    assert all(isinstance(p, DagPlan) for p in batch)
    assert [comparable(p) for p in batch if isinstance(p, DagPlan)] == [comparable(p) for p in alone]
    assert [p.harvest for p in alone] == [True, True, True, True, False, False]
    assert all(p.inference_ms > 0 for p in batch if isinstance(p, DagPlan))


class CountingPredictor:
    def __init__(self, inner: Predictor) -> None:
        self.inner = inner
        self.batches: list[int] = []

    def predict_many(self, requests: Any) -> list[list[Prediction]]:
        self.batches.append(len(requests))
        return self.inner.predict_many(requests)

    def predict(self, size: float, slots: Any) -> list[Prediction]:
        raise AssertionError("a batch that predicts does not predict request by request")


def test_a_batch_predicts_once_per_dag(settings, trained):
    p = planner(settings)
    real, _error, version = p.models.get("guest", "aes")
    assert real is not None
    counting = CountingPredictor(real)
    p.models.get = lambda ns, dag: (counting, None, version)  # type: ignore[method-assign,assignment]
    plans = p.plan_batch([request(request_id=f"{i:032x}") for i in range(5)])
    assert counting.batches == [5] and all(isinstance(x, DagPlan) and x.harvest for x in plans)


class BrokenPredictor:
    """Cannot predict a batch, nor a request alone."""

    def predict_many(self, requests: Any) -> list[list[Prediction]]:
        raise ValueError("Input contains NaN")

    def predict(self, size: float, slots: Any) -> list[Prediction]:
        raise ValueError("Input contains NaN")


def test_a_model_that_fails_for_one_dag_does_not_sink_the_others(settings, trained):
    p = planner(settings)
    p.db.docs["dags/guest/broken"] = p.db.docs["dags/guest/aes"]  # type: ignore[attr-defined]
    get = p.models.get
    p.models.get = lambda ns, dag: (BrokenPredictor(), None, 1) if dag == "broken" else get(ns, dag)  # type: ignore[method-assign,assignment]
    plans = p.plan_batch(
        [request(request_id=f"{i:032x}", dag="broken" if i % 2 else "aes") for i in range(4)]
    )
    assert all(isinstance(x, DagPlan) for x in plans)
    harvested = [x.harvest for x in plans if isinstance(x, DagPlan)]
    assert harvested == [True, False, True, False]
    kept = plans[1]
    assert isinstance(kept, DagPlan) and any(
        r == "user allocations kept: prediction failed: ValueError: Input contains NaN" for r in kept.reasons
    )


def test_a_bug_in_one_request_is_its_exception_alone(settings, trained):
    p = planner(settings)
    get = p.models.get

    def models(ns: str, dag: str) -> Any:
        if dag == "buggy":
            raise RuntimeError("a bug")
        return get(ns, dag)

    p.db.docs["dags/guest/buggy"] = p.db.docs["dags/guest/aes"]  # type: ignore[attr-defined]
    p.models.get = models  # type: ignore[method-assign]
    plans = p.plan_batch([request(request_id="1" * 32), request(request_id="2" * 32, dag="buggy")])
    assert isinstance(plans[0], DagPlan) and plans[0].harvest
    assert isinstance(plans[1], RuntimeError) and str(plans[1]) == "a bug"
    with pytest.raises(RuntimeError, match="a bug"):
        p.plan(request(dag="buggy"))


def test_the_batch_normalizer_gives_the_plans_of_the_per_request_one(settings, trained, monkeypatch):
    from streams.payloads import REF

    policies = ["thesis", "gleaner", "gleaner-idle", "libra"]
    reqs = [
        request(request_id=f"{i:032x}", input={REF: "size-only", "size": 600_000 * i}, policy=policies[i % 4])
        for i in range(1, 25)
    ]
    batched = planner(settings).plan_batch(reqs)
    calls: list[int] = []

    def per_request(predictions: Any, *args: Any, **kw: Any) -> Any:
        calls.append(len(predictions))
        raise RuntimeError("each request normalizes alone")

    monkeypatch.setattr("streams.predictor_stream.planner.normalize_batch", per_request)
    alone = planner(settings).plan_batch(reqs)
    assert calls == [18]  # the libra requests size their own peaks
    assert all(isinstance(p, DagPlan) and p.harvest for p in batched + alone)
    assert [comparable(p) for p in batched if isinstance(p, DagPlan)] == [
        comparable(p) for p in alone if isinstance(p, DagPlan)
    ]


def test_a_batch_looks_up_each_dags_model_and_documents_once(settings, trained):
    p = planner(settings)
    get = p.models.get
    asked: list[str] = []

    def models(ns: str, dag: str) -> Any:
        asked.append(dag)
        return get(ns, dag)

    p.models.get = models  # type: ignore[method-assign]
    del p.db.docs["whisks/guest/aes3"]  # type: ignore[attr-defined]
    p.db.docs["dags/guest/other"] = p.db.docs["dags/guest/aes"]  # type: ignore[attr-defined]
    reqs = [request(request_id=f"{i:032x}", dag="other" if i % 2 else "aes") for i in range(6)]
    plans = p.plan_batch(reqs)
    assert asked == ["aes", "other"]
    why = {
        "aes": "user allocations kept: action aes3 does not exist",
        "other": "user allocations kept: no trained model for guest/other (run: gleaner train other)",
    }
    for req, plan in zip(reqs, plans, strict=True):
        assert isinstance(plan, DagPlan) and not plan.harvest
        assert plan.reasons[-1] == why[req.dag]


def counting_sizes(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every input the planner measures (streams.payloads.size_of, as the planner calls it)."""
    import streams.predictor_stream.planner as planner_module

    measured: list[Any] = []
    real = planner_module.size_of

    def size_of(value: Any) -> int:
        measured.append(value)
        return real(value)

    monkeypatch.setattr(planner_module, "size_of", size_of)
    return measured


def test_a_request_that_carries_its_input_size_is_not_measured_again(settings, trained, monkeypatch):
    measured = counting_sizes(monkeypatch)
    carried = request(policy="thesis", input_size=20_000_011, submitted_ms=5)
    plan = planner(settings).plan(carried)
    assert plan.harvest and measured == []
    assert plan.request["input_size"] == 20_000_011
    # The request goes on as it came, with the DAG version it was planned with.
    assert DagRequest.from_dict(plan.request) == dataclasses.replace(carried, dag_rev="1-a")


def test_a_kafka_request_without_its_size_is_measured_once_and_the_size_carried_on(
    settings, trained, monkeypatch
):
    measured = counting_sizes(monkeypatch)
    bare = request(policy="thesis")
    plan = planner(settings).plan(bare)
    assert plan.harvest and measured == [bare.input]
    assert plan.request["input_size"] == len('{"text":""}') + 20_000_000  # the composition measures no more
    assert DagRequest.from_dict(plan.request).input_size == plan.request["input_size"]


def test_a_request_the_predictor_does_not_plan_is_left_unmeasured(settings, trained, monkeypatch):
    measured = counting_sizes(monkeypatch)
    plan = planner(settings).plan(request(harvest=False))
    assert measured == [] and "input_size" not in plan.request  # the composition stream measures it
    assert not plan.harvest


def test_a_kafka_request_carries_on_the_dag_version_read_for_it(settings, trained):
    plan = planner(settings).plan(request(policy="thesis"))  # no dag_rev: nobody read the DAG yet
    assert plan.harvest and plan.request["dag_rev"] == "1-a"
    assert DagRequest.from_dict(plan.request).dag_rev == "1-a"
    profiled = planner(settings).plan(request(profile=True))
    assert profiled.request["dag_rev"] == "1-a"  # the version profiled is the version run
    off = planner(settings).plan(request(harvest=False))
    assert "dag_rev" not in off.request  # not read here: the composition stream reads it


def test_a_dag_version_seen_once_is_not_read_again_for_the_requests_that_carry_it(settings, trained):
    fresh = dataclasses.replace(settings, action_cache_ttl_s=0.0)  # no time-based cache: every read shows
    db = FakeDB()
    p = RequestPlanner(fresh, db)  # type: ignore[arg-type]
    first = p.plan(request(policy="thesis"))
    assert first.harvest and db.reads.count("dags/guest/aes") == 1
    db.docs["dags/guest/aes"] = {**db.docs["dags/guest/aes"], "_rev": "2-b"}  # the DAG changes meanwhile
    again = p.plan(request(policy="thesis", dag_rev="1-a"))  # accepted when 1-a was current
    assert again.harvest and again.request["dag_rev"] == "1-a"
    assert db.reads.count("dags/guest/aes") == 1  # its version was known: not read again
    unknown = p.plan(request(policy="thesis", dag_rev="0-z"))  # a version this process never saw
    assert unknown.request["dag_rev"] == "2-b"  # the current one, read and carried on
    assert db.reads.count("dags/guest/aes") == 2
