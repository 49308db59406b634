"""What one replayed request came to, read off its DAG-level record and its
functions' records, and the CSV files a replay writes. Pure (no I/O but the
CSV writers).

Latency is measured on the replay's own clock, from the moment the request
was produced to the moment its ``dag.result`` arrived: it counts the planner
and every Kafka hop, so queueing anywhere under load is part of it. The DAG
record's own duration (composition start to last completion) is kept beside
it.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from gleaner.records import annotation

SUCCESS, FAILED, TIMEOUT, UNFINISHED = "success", "failed", "timeout", "unfinished"
PARALLEL_KINDS = ("parallel", "map")


@dataclass(frozen=True, slots=True)
class FunctionOutcome:
    """One function of one replayed request, from its activation record."""

    request_id: str
    activation_id: str
    action: str
    stage: int | None
    index: int | None
    status_code: int
    wait_ms: float  # from submission by the composition stream to container start
    duration_ms: float
    cold: bool
    cpu: float  # the allocation applied
    memory_mb: float
    user_cpu: float
    user_memory_mb: float
    origin: str  # user | harvest | accelerate | profile | safeguard
    predicted_cpu: float  # NaN when nothing was predicted
    peak_cpu: float
    peak_memory_mb: float
    planned_cpu: float = math.nan  # what the plan asked for (start-now may start lower)
    max_cpu: float = math.nan  # the most it held while running (live changes)
    changes: str = ""  # its live allocation changes, "reason;reason", in order
    rerun: bool = False  # re-run at the user allocation after an OOM kill while harvested


@dataclass(slots=True)
class RequestOutcome:
    """One replayed request. Times are seconds since the replay started."""

    seq: int  # position in the trace
    request_id: str
    dag: str
    policy: str
    input: str  # the input file's name, or "inline"
    input_size: int
    scheduled_s: float
    sent_s: float = math.nan
    status: str = UNFINISHED
    status_code: int = -1
    latency_ms: float = math.nan  # produced -> dag.result received (replay clock)
    dag_duration_ms: float = math.nan  # the DAG-level record's duration
    parallel_stage_ms: float = math.nan  # sum of the parallel stages' spans
    wait_ms_total: float = math.nan  # sum of the functions' waitTime
    wait_ms_max: float = math.nan
    cold_starts: int = 0
    harvest_applied: bool = False
    allocations: str = ""  # "action=cpu/MB/origin;..." for a glance in the CSV
    error: str = ""
    functions: list[FunctionOutcome] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return self.status != UNFINISHED

    @property
    def succeeded(self) -> bool:
        return self.status == SUCCESS


def _num(value: Any, default: float = math.nan) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else default


def function_outcome(request_id: str, rec: dict[str, Any]) -> FunctionOutcome:
    g = rec.get("gleaner") or {}
    alloc = g.get("allocation") or {}
    user = g.get("user_allocation") or {}
    predicted = g.get("predicted") or {}
    measured = g.get("measured") or {}
    return FunctionOutcome(
        request_id=request_id,
        activation_id=str(rec.get("activationId", "")),
        action=str(rec.get("name", "")),
        stage=g.get("stage"),
        index=g.get("index"),
        status_code=int(_num(rec.get("statusCode"), 3)),
        wait_ms=_num(annotation(rec, "waitTime")),
        duration_ms=_num(rec.get("duration")),
        cold=bool(g.get("cold")),
        cpu=_num(alloc.get("cpu")),
        memory_mb=_num(alloc.get("memory")),
        user_cpu=_num(user.get("cpu")),
        user_memory_mb=_num(user.get("memory")),
        origin=str(g.get("origin") or ""),
        predicted_cpu=_num(predicted.get("cpu")),
        peak_cpu=_num(measured.get("peak_cpu")),
        peak_memory_mb=_num(measured.get("peak_memory")),
        planned_cpu=_num((g.get("planned") or {}).get("cpu")),
        max_cpu=_num(g.get("allocation_peak"), _num(alloc.get("cpu"))),
        changes=";".join(
            str(c.get("reason"))
            for i, c in enumerate(g.get("allocation_trajectory") or [])
            # The first entry is how it started: counted only when the scheduler backfilled it.
            if isinstance(c, dict) and c.get("reason") and (i > 0 or c.get("reason") == "backfill")
        ),
        rerun=bool(g.get("rerun")),
    )


def parallel_stage_ms(dag_record: dict[str, Any]) -> float:
    """Sum of the spans of the request's parallel stages (thesis Appendix C)."""
    stages = ((dag_record.get("gleaner") or {}).get("dag") or {}).get("stages") or []
    spans = [
        _num(s.get("end")) - _num(s.get("start"))
        for s in stages
        if s.get("kind") in PARALLEL_KINDS and s.get("end") is not None and s.get("start") is not None
    ]
    return float(sum(spans)) if spans else math.nan


def settle(
    out: RequestOutcome,
    dag_record: dict[str, Any],
    children: Iterable[dict[str, Any]],
    *,
    received_s: float,
    result_success: bool | None,
) -> RequestOutcome:
    """Fill ``out`` from the request's records; ``received_s`` is when its result arrived."""
    g = dag_record.get("gleaner") or {}
    dag = g.get("dag") or {}
    code = int(_num(dag_record.get("statusCode"), 3))
    status = str(dag.get("status") or "")
    if status == TIMEOUT:
        out.status = TIMEOUT
    elif result_success if result_success is not None else code == 0:
        out.status = SUCCESS
    else:
        out.status = FAILED
    out.status_code = code
    if out.status != SUCCESS:
        result = (dag_record.get("response") or {}).get("result") or {}
        out.error = str(result.get("error", status or "failed"))[:200] if isinstance(result, dict) else ""
    out.latency_ms = round((received_s - out.sent_s) * 1000, 3)
    out.dag_duration_ms = _num(dag_record.get("duration"))
    out.parallel_stage_ms = parallel_stage_ms(dag_record)
    out.harvest_applied = bool((g.get("harvest") or {}).get("applied"))
    out.functions = sorted(
        (function_outcome(out.request_id, c) for c in children),
        key=lambda f: (f.stage if f.stage is not None else -1, f.index if f.index is not None else -1),
    )
    waits = [f.wait_ms for f in out.functions if not math.isnan(f.wait_ms)]
    out.wait_ms_total = float(sum(waits)) if waits else math.nan
    out.wait_ms_max = max(waits) if waits else math.nan
    out.cold_starts = sum(f.cold for f in out.functions)
    out.allocations = ";".join(f"{f.action}={f.cpu:g}/{f.memory_mb:g}/{f.origin}" for f in out.functions)
    return out


REQUEST_COLUMNS = [f.name for f in fields(RequestOutcome) if f.name != "functions"]
FUNCTION_COLUMNS = [f.name for f in fields(FunctionOutcome)]


def _cell(value: Any) -> Any:
    if isinstance(value, float):
        return "" if math.isnan(value) else round(value, 4)
    return value


def _write_csv(path: Path, columns: list[str], rows: Iterable[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(columns)
        w.writerows([_cell(row[c]) for c in columns] for row in rows)
    return path


def write_requests_csv(path: Path, outcomes: Sequence[RequestOutcome]) -> Path:
    return _write_csv(path, REQUEST_COLUMNS, (asdict(o) for o in outcomes))


def write_functions_csv(path: Path, outcomes: Sequence[RequestOutcome]) -> Path:
    return _write_csv(path, FUNCTION_COLUMNS, (asdict(fn) for o in outcomes for fn in o.functions))


def read_requests_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))
