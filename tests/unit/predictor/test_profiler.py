"""The profiler against a fake gateway: every input at the maximum, the CPU sweep's
inputs at the lower allocations as profile requests that ask for them
(``profile_cpu``); the actions' own limits are never read nor changed."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import orjson
import pytest

from gleaner.errors import GleanerError
from predictor.dataset import at_profile_allocation, read_csv
from predictor.profiler import profile_dag
from predictor.scaling import ScalingCurve, fit_curves
from predictor.sweep import CpuSweep
from tests.unit.predictor import OURS

SERIAL = 0.3  # the fake functions' Amdahl serial fraction
USER = {"split": 0.5, "f1": 1.25, "f2": 0.75, "merge": 0.25}
STAGES = [("action", ["split"]), ("parallel", ["f1", "f2"]), ("action", ["merge"])]


class FakeGateway:
    """Just the routes the profiler calls; each function's run time follows Amdahl's law."""

    def __init__(self, stages: list[tuple[str, list[str]]] = STAGES, fail_on: int | None = None) -> None:
        self.stages = stages
        self.limits = dict(USER)
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        self.records: dict[str, dict[str, Any]] = {}
        self.ids = itertools.count()
        self.fail_on = fail_on  # the POST that raises, counting from 0
        self.posts = 0

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        ok: tuple[int, ...] = (200,),
    ) -> tuple[int, Any]:
        self.calls.append((method, path, dict(params or {})))
        if method == "GET" and path.startswith("/dags/"):
            stages = [{"index": i, "kind": k, "functions": fs} for i, (k, fs) in enumerate(self.stages)]
            return 200, {"name": path[6:], "analysis": {"stages": stages}}
        if method == "GET" and path.startswith("/actions/"):
            return 200, {"name": path[9:], "limits": {"cpu": self.limits[path[9:]], "memory": 256}}
        if method == "POST":
            if self.posts == self.fail_on:
                raise GleanerError("cannot reach the gateway")
            self.posts += 1
            query = params or {}
            cpu = query.get("profile_cpu")
            return 200, self._run(
                path[6:], json, query.get("profile") == "true", None if cpu is None else float(cpu)
            )
        raise AssertionError(f"unexpected {method} {path}")

    def put_action(self, name: str, body: dict[str, Any], overwrite: bool) -> Any:
        self.calls.append(("PUT", f"/actions/{name}", body))
        self.limits[name] = body["limits"]["cpu"]
        return {}

    def record(self, activation_id: str, timeout_s: float = 30.0) -> dict[str, Any]:
        return self.records[activation_id]

    def _run(
        self, dag: str, value: dict[str, Any], profile: bool, profile_cpu: float | None
    ) -> dict[str, Any]:
        size = int(value["size"])
        stages, logs = [], []
        for index, (kind, names) in enumerate(self.stages):
            functions = []
            for i, name in enumerate(names):
                aid = f"a{next(self.ids)}"
                # As the planner: a profile request at its profile_cpu, or the maximum.
                cores = (profile_cpu or 2.0) if profile else self.limits[name]
                seconds = ScalingCurve(SERIAL, size / 1000).time_at(cores)
                self.records[aid] = {
                    "activationId": aid,
                    "name": name,
                    "start": 0,
                    "end": round(seconds * 1000),
                    "response": {"success": True},
                    "annotations": [],
                    "gleaner": {
                        "measured": {"peak_cpu": cores, "peak_memory": 100.0},
                        "allocation": {"cpu": cores, "memory": 256},
                        "input_size": size,
                    },
                }
                functions.append({"activation_id": aid, "action": name, "index": i, "input_size": size})
                logs.append(aid)
            stages.append({"index": index, "kind": kind, "functions": functions})
        dag_record = {
            "activationId": f"d{next(self.ids)}",
            "response": {"success": True},
            "logs": logs,
            "gleaner": {"dag": {"name": dag, "input_size": size, "status": "success", "stages": stages}},
        }
        return dag_record


def inputs(tmp_path: Path, n: int) -> list[Path]:
    paths = []
    for i in range(n):
        path = tmp_path / "inputs" / f"input-{i:03d}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(orjson.dumps({"size": 1000 * (i + 1), "pad": "x" * (100 * i)}))
        paths.append(path)
    return paths


def profile(gw: FakeGateway, tmp_path: Path, sweep: CpuSweep | None, n: int = 10) -> Any:
    return profile_dag(
        gw,  # type: ignore[arg-type]
        "d",
        inputs(tmp_path, n),
        tmp_path / "profile.csv",
        progress=False,
        sweep=sweep,
    )


def touched_actions(gw: FakeGateway) -> list[tuple[str, str]]:
    """Every call that read or changed an action (the profiler has no business there)."""
    return [(m, p) for m, p, _ in gw.calls if m == "PUT" or p.startswith("/actions/")]


def test_the_sweep_asks_for_each_lower_allocation_per_request_and_leaves_the_actions_alone(
    tmp_path: Path,
) -> None:
    gw = FakeGateway()
    result = profile(gw, tmp_path, CpuSweep((1.0, 0.5), 2))
    assert result.requests == 10 + 2 * 2 and result.failed == 0
    assert result.sweep == "CPU sweep at 1, 0.5 cores, 2 inputs each (4 requests) of f1, f2"
    assert touched_actions(gw) == [] and gw.limits == USER
    # Every request is a profile request with harvesting off; the sweep's name their cores.
    posts = [params for method, _, params in gw.calls if method == "POST"]
    assert all(p["profile"] == "true" and p["harvest"] == "false" for p in posts)
    assert [p.get("profile_cpu") for p in posts] == [None] * 10 + ["1.0"] * 2 + ["0.5"] * 2
    rows = read_csv(result.dataset)
    # The swept inputs ran with every function at the sweep's cores (the planner's answer).
    swept = {(r.action, r.alloc_cpu) for r in rows if r.alloc_cpu < 2.0}
    assert swept == {(a, c) for a in USER for c in (1.0, 0.5)}
    assert {r.alloc_cpu for r in at_profile_allocation(rows)} == {2.0}  # the models see the maximum only
    # The swept inputs are the larger ones, each also run at the maximum: one curve per function.
    fits = fit_curves(rows, OURS.cpu)
    assert set(fits.curves) == {(1, 0), (1, 1)}
    assert fits.curves[(1, 0)].serial_fraction == pytest.approx(SERIAL, abs=0.01)


def test_without_a_sweep_every_input_runs_once_at_the_maximum(tmp_path: Path) -> None:
    gw = FakeGateway()
    result = profile(gw, tmp_path, None, n=4)
    assert result.requests == 4 and result.sweep == "no CPU sweep"
    assert [m for m, _, _ in gw.calls] == ["POST"] * 4  # not even a look at the DAG
    assert not any("profile_cpu" in params for _, _, params in gw.calls)
    assert all(r.alloc_cpu == 2.0 for r in read_csv(result.dataset))


def test_a_dag_without_a_parallel_stage_has_nothing_to_sweep(tmp_path: Path) -> None:
    gw = FakeGateway(stages=[("action", ["split"]), ("action", ["merge"])])
    result = profile(gw, tmp_path, CpuSweep((1.0, 0.5), 2), n=3)
    assert result.requests == 3 and result.sweep == "no CPU sweep"
    assert touched_actions(gw) == []
    assert not any("profile_cpu" in params for _, _, params in gw.calls)


def test_an_error_mid_sweep_leaves_nothing_to_undo(tmp_path: Path) -> None:
    gw = FakeGateway(fail_on=11)  # the second request of the first sweep pass
    with pytest.raises(GleanerError, match="cannot reach"):
        profile(gw, tmp_path, CpuSweep((1.0, 0.5), 2))
    assert touched_actions(gw) == [] and gw.limits == USER


# ---- the command line ---------------------------------------------------------------


def test_the_profile_command_reads_the_sweep_flags() -> None:
    from gleaner.cli.main import build_parser
    from gleaner.cli.predict import cpu_sweep
    from gleaner.settings import load_settings

    settings = load_settings(env={}, cpu_max=2.0, invoker_cpu_capacity=2.0, action_cache_ttl_s=2.0)
    parse = build_parser().parse_args
    default = cpu_sweep(parse(["profile", "d"]), settings, 20)
    assert default == CpuSweep((1.0, 0.5), 2)
    chosen = cpu_sweep(
        parse(["profile", "d", "--cpu-sweep", "2,1.5,0.75,0.25", "--sweep-inputs", "3"]), settings, 20
    )
    assert (chosen.cpus, chosen.inputs) == ((1.5, 0.75, 0.25), 3)
    assert cpu_sweep(parse(["profile", "d", "--cpu-sweep", "off"]), settings, 20).requests == 0
    with pytest.raises(GleanerError, match=r"0\.3 is not an allowed allocation"):
        cpu_sweep(parse(["profile", "d", "--cpu-sweep", "0.3"]), settings, 20)
    with pytest.raises(GleanerError, match="--sweep-inputs must be >= 0"):
        cpu_sweep(parse(["profile", "d", "--sweep-inputs", "-1"]), settings, 20)
