"""The profiling dataset (thesis §3.5.1 "DAG Profile"): one row per function
activation of a successful DAG request, built from activation records, stored as CSV.

Columns (in file order; the CSV has this header):

==================  =======  ===================================================
column              type     meaning
==================  =======  ===================================================
request_id          str      activation id of the DAG request (DAG-level record)
dag                 str      DAG name
dag_input_size      int      size in bytes of the whole DAG's input (ML1 feature)
stage               int      stage of the function in the normalized DAG, from 0
index               int      position of the function within its stage, from 0
action              str      action name of the function
parallel            bool     the function ran in a *parallel* stage (``true``/``false``);
                             only these rows train the models, only they are harvested
input_size          int      size in bytes of the function's own input (ML1 label,
                             ML2 feature)
peak_cpu            float    measured peak CPU, cores (ML2-CPU label)
peak_memory_mb      float    measured peak memory without page cache, MB
                             (ML2-memory label)
alloc_cpu           float    CPU cores the function ran with
alloc_memory_mb     float    memory MB the function ran with
duration_ms         int      activation end - start, milliseconds
success             bool     the function's activation succeeded
init_ms             int      of ``duration_ms``, the container start (its ``initTime``;
                             0 when warm); files written before it lack the column
==================  =======  ===================================================

Profiling runs every function at the maximum allocation (§3.5.1), so peaks are
true demands; a peak equal to ``alloc_cpu`` means the function was CPU-bound.
A CPU sweep (:mod:`predictor.profiler`) adds rows of a few inputs at lower
allocations: they fit the scaling curves (:mod:`predictor.scaling`), and only the
rows at a function's largest allocation train the models (:func:`at_profile_allocation`).
"""

from __future__ import annotations

import csv
import logging
import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import astuple, dataclass, field, fields
from pathlib import Path
from typing import Any

from gleaner.errors import GleanerError

log = logging.getLogger(__name__)


class DatasetError(GleanerError):
    """A dataset file or record that cannot be read."""


@dataclass(frozen=True, slots=True)
class ProfileRow:
    request_id: str
    dag: str
    dag_input_size: int
    stage: int
    index: int
    action: str
    parallel: bool
    input_size: int
    peak_cpu: float
    peak_memory_mb: float
    alloc_cpu: float
    alloc_memory_mb: float
    duration_ms: int
    success: bool
    init_ms: int = 0


COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(ProfileRow))
# Columns added later, at the end: a file without them still reads, with their defaults.
OPTIONAL_COLUMNS: tuple[str, ...] = ("init_ms",)
_TYPES: dict[str, type] = {
    "request_id": str,
    "dag": str,
    "action": str,
    "dag_input_size": int,
    "stage": int,
    "index": int,
    "input_size": int,
    "duration_ms": int,
    "init_ms": int,
    "peak_cpu": float,
    "peak_memory_mb": float,
    "alloc_cpu": float,
    "alloc_memory_mb": float,
    "parallel": bool,
    "success": bool,
}


@dataclass(slots=True)
class Skipped:
    """What :func:`rows_from_records` left out, and why."""

    requests: int = 0
    children: int = 0
    reasons: Counter[str] = field(default_factory=Counter)

    def add(self, reason: str, *, request: bool = False) -> None:
        if request:
            self.requests += 1
        else:
            self.children += 1
        self.reasons[reason] += 1

    def summary(self) -> str:
        if not self.reasons:
            return "nothing skipped"
        detail = ", ".join(f"{n} {why}" for why, n in sorted(self.reasons.items()))
        return f"skipped {self.requests} requests and {self.children} functions ({detail})"


def _index_children(
    children: Iterable[Mapping[str, Any]] | Mapping[str, Mapping[str, Any]],
) -> dict[str, Any]:
    items = children.values() if isinstance(children, Mapping) else children
    return {c["activationId"]: c for c in items if isinstance(c, Mapping) and "activationId" in c}


def rows_from_records(
    dag_record: Mapping[str, Any],
    children: Iterable[Mapping[str, Any]] | Mapping[str, Mapping[str, Any]],
    *,
    skipped: Skipped | None = None,
) -> list[ProfileRow]:
    """The rows of one DAG request: its DAG-level record and its children's
    records (a list, or a dict by activation id). Failed requests give no rows;
    children without a record or without measurements are left out. Pass
    ``skipped`` to learn how many were left out and why."""
    skipped = skipped if skipped is not None else Skipped()
    try:
        request_id = str(dag_record["activationId"])
        dag = dag_record["gleaner"]["dag"]
        name, dag_input, stages = str(dag["name"]), int(dag["input_size"]), dag["stages"]
    except (KeyError, TypeError, ValueError) as exc:
        raise DatasetError(f"not a DAG-level record: missing or bad {exc}") from exc
    if dag.get("status") != "success" or not dag_record.get("response", {}).get("success", True):
        skipped.add("failed requests", request=True)
        log.debug("request %s skipped: status %s", request_id, dag.get("status"))
        return []
    by_id = _index_children(children)
    rows: list[ProfileRow] = []
    for stage in stages:
        for fn in stage.get("functions", []):
            child = by_id.get(fn.get("activation_id"))
            if child is None:
                skipped.add("without a record")
                continue
            g = child.get("gleaner") or {}
            measured, alloc = g.get("measured"), g.get("allocation") or {}
            if not measured or "peak_cpu" not in measured or "peak_memory" not in measured:
                skipped.add("without measurements")
                continue
            try:
                rows.append(
                    ProfileRow(
                        request_id=request_id,
                        dag=name,
                        dag_input_size=dag_input,
                        stage=int(stage["index"]),
                        index=int(fn.get("index", g.get("index", 0))),
                        action=str(fn.get("action") or child.get("name", "")),
                        parallel=stage.get("kind") == "parallel",
                        input_size=int(g.get("input_size", fn.get("input_size", 0))),
                        peak_cpu=float(measured["peak_cpu"]),
                        peak_memory_mb=float(measured["peak_memory"]),
                        alloc_cpu=float(alloc.get("cpu", 0.0)),
                        alloc_memory_mb=float(alloc.get("memory", 0.0)),
                        duration_ms=int(child.get("end", 0)) - int(child.get("start", 0)),
                        success=bool((child.get("response") or {}).get("success", False)),
                        init_ms=int(_annotation(child, "initTime") or 0),
                    )
                )
            except (KeyError, TypeError, ValueError):
                skipped.add("with malformed fields")
    return rows


def _annotation(record: Mapping[str, Any], key: str) -> Any:
    for a in record.get("annotations") or []:
        if isinstance(a, Mapping) and a.get("key") == key:
            return a.get("value")
    return None


def at_profile_allocation(rows: Iterable[ProfileRow]) -> list[ProfileRow]:
    """The rows at their function's largest CPU allocation in ``rows`` (the profile's
    maximum): what the models learn from. A CPU sweep's lower allocations are left out."""
    rows = list(rows)
    top: dict[tuple[str, int, int], float] = {}
    for r in rows:
        key = (r.dag, r.stage, r.index)
        top[key] = max(top.get(key, r.alloc_cpu), r.alloc_cpu)
    return [r for r in rows if math.isclose(r.alloc_cpu, top[(r.dag, r.stage, r.index)], abs_tol=1e-9)]


def collect_rows(
    requests: Iterable[
        tuple[Mapping[str, Any], Iterable[Mapping[str, Any]] | Mapping[str, Mapping[str, Any]]]
    ],
) -> tuple[list[ProfileRow], Skipped]:
    """Rows of many requests, each given as ``(dag_record, children)``."""
    skipped = Skipped()
    rows = [
        row
        for dag_record, children in requests
        for row in rows_from_records(dag_record, children, skipped=skipped)
    ]
    if skipped.reasons:
        log.info("dataset: %s", skipped.summary())
    return rows, skipped


def _cell(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, float) else str(value)


def dataset_path(state_dir: Path, namespace: str, dag: str) -> Path:
    """Where ``gleaner profile`` writes a DAG's dataset and ``gleaner train`` reads it."""
    return state_dir / "profiles" / namespace / f"{dag}.csv"


def write_csv(rows: Iterable[ProfileRow], path: Path) -> int:
    """Write ``rows`` with a header; returns how many rows were written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        for row in rows:
            writer.writerow([_cell(v) for v in astuple(row)])
            n += 1
    return n


def _parse(column: str, raw: str) -> object:
    kind = _TYPES[column]
    if kind is bool:
        if raw not in ("true", "false"):
            raise ValueError(f"expected true or false, got {raw!r}")
        return raw == "true"
    return kind(raw)


def read_csv(path: Path) -> list[ProfileRow]:
    """Read a dataset written by :func:`write_csv`; DatasetError names the bad line."""
    try:
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            older = COLUMNS[: len(COLUMNS) - len(OPTIONAL_COLUMNS)]
            if header is None or tuple(header) not in (COLUMNS, older):
                raise DatasetError(f"{path}: header {header} is not {list(COLUMNS)}")
            columns = tuple(header)
            rows = []
            for line, cells in enumerate(reader, start=2):
                if len(cells) != len(columns):
                    raise DatasetError(f"{path}:{line}: {len(cells)} cells, expected {len(columns)}")
                try:
                    values = {c: _parse(c, raw) for c, raw in zip(columns, cells, strict=True)}
                except ValueError as exc:
                    raise DatasetError(f"{path}:{line}: {exc}") from exc
                rows.append(ProfileRow(**values))  # type: ignore[arg-type]
            return rows
    except OSError as exc:
        raise DatasetError(f"cannot read dataset {path}: {exc}") from exc
