"""Profile rows from activation records, and the CSV round trip."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

import predictor.dataset as dataset
from gleaner.records import DEVELOPER_ERROR, SUCCESS, RecordDraft, build_record
from predictor.dataset import (
    COLUMNS,
    DatasetError,
    ProfileRow,
    Skipped,
    at_profile_allocation,
    collect_rows,
    read_csv,
    rows_from_records,
    write_csv,
)
from tests.unit.predictor import synthetic_rows


def child(
    aid: str, stage: int, index: int, size: int, *, measured: bool = True, ok: bool = True
) -> dict[str, Any]:
    g: dict[str, Any] = {
        "allocation": {"cpu": 2.0, "memory": 1024},
        "origin": "user",
        "input_size": size,
        "stage": stage,
        "index": index,
    }
    if measured:
        g["measured"] = {"peak_cpu": 0.5 + index, "peak_cpu_raw": 0.6, "peak_memory": 100.0 + size / 1000}
    draft = RecordDraft(
        activation_id=aid,
        namespace="guest",
        name=f"fn{stage}{index}",
        version="0.0.1",
        kind="python:3",
        start_ms=1000,
        end_ms=1250 + index,
        status_code=SUCCESS if ok else DEVELOPER_ERROR,
        result={},
        gleaner=g,
    )
    return build_record(draft)


def dag_record(status: str = "success", *, missing: bool = False) -> dict[str, Any]:
    def fn(aid: str, action: str, index: int, size: int) -> dict[str, Any]:
        return {"activation_id": aid, "action": action, "index": index, "input_size": size}

    stages = [
        {"index": 0, "kind": "action", "start": 0, "end": 1, "functions": [fn("a0", "split", 0, 9000)]},
        {
            "index": 1,
            "kind": "parallel",
            "start": 1,
            "end": 2,
            "functions": [fn("b0", "aes1", 0, 6000), fn("b1", "aes2", 1, 3000)]
            + ([fn("zz", "aes3", 2, 1)] if missing else []),
        },
    ]
    return {
        "activationId": "req1",
        "name": "aes",
        "response": {"success": status == "success"},
        "gleaner": {"dag": {"name": "aes", "input_size": 9000, "status": status, "stages": stages}},
    }


def test_rows_from_one_request() -> None:
    children = [child("a0", 0, 0, 9000), child("b0", 1, 0, 6000), child("b1", 1, 1, 3000)]
    rows = rows_from_records(dag_record(), children)
    assert [(r.stage, r.index, r.action, r.parallel) for r in rows] == [
        (0, 0, "split", False),
        (1, 0, "aes1", True),
        (1, 1, "aes2", True),
    ]
    r = rows[2]
    assert r == ProfileRow(
        request_id="req1",
        dag="aes",
        dag_input_size=9000,
        stage=1,
        index=1,
        action="aes2",
        parallel=True,
        input_size=3000,
        peak_cpu=1.5,
        peak_memory_mb=103.0,
        alloc_cpu=2.0,
        alloc_memory_mb=1024.0,
        duration_ms=251,
        success=True,
    )
    # Children may also come as a dict by activation id.
    assert rows_from_records(dag_record(), {c["activationId"]: c for c in children}) == rows


def test_skips_are_counted_with_reasons() -> None:
    skipped = Skipped()
    children = [child("a0", 0, 0, 9000, measured=False), child("b0", 1, 0, 6000), child("b1", 1, 1, 3000)]
    rows = rows_from_records(dag_record(missing=True), children, skipped=skipped)
    assert len(rows) == 2
    assert skipped.children == 2 and skipped.requests == 0
    assert skipped.reasons == {"without measurements": 1, "without a record": 1}
    assert rows_from_records(dag_record("error"), children, skipped=skipped) == []
    assert skipped.requests == 1
    assert "skipped 1 requests and 2 functions" in skipped.summary()


def test_collect_rows_over_requests() -> None:
    children = [child("a0", 0, 0, 9000), child("b0", 1, 0, 6000), child("b1", 1, 1, 3000, ok=False)]
    rows, skipped = collect_rows([(dag_record(), children), (dag_record("timeout"), [])])
    assert len(rows) == 3 and rows[2].success is False  # a failed function is kept, flagged
    assert skipped.requests == 1


def test_not_a_dag_record() -> None:
    with pytest.raises(DatasetError, match="not a DAG-level record"):
        rows_from_records({"activationId": "x", "gleaner": {}}, [])


def test_csv_round_trip(tmp_path: Path) -> None:
    rows = synthetic_rows(n_requests=5)
    path = tmp_path / "sub" / "profile.csv"
    assert write_csv(rows, path) == len(rows)
    assert path.read_text().splitlines()[0] == ",".join(COLUMNS)
    assert read_csv(path) == rows


def test_every_column_is_documented() -> None:
    doc = dataset.__doc__ or ""
    for column in COLUMNS:
        assert f"\n{column} " in doc, column


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("a,b\n", "header"),
        ("", "header"),
        (",".join(COLUMNS) + "\nx,aes,1\n", "profile.csv:2: 3 cells"),
        (
            ",".join(COLUMNS) + "\nr,aes,big,1,0,f,true,1,1.0,1.0,1.0,1.0,1,true,0\n",
            "profile.csv:2: invalid literal",
        ),
        (",".join(COLUMNS) + "\nr,aes,1,1,0,f,yes,1,1.0,1.0,1.0,1.0,1,true,0\n", "expected true or false"),
    ],
)
def test_bad_csv_names_the_problem(tmp_path: Path, content: str, match: str) -> None:
    path = tmp_path / "profile.csv"
    path.write_text(content)
    with pytest.raises(DatasetError, match=match):
        read_csv(path)


def test_missing_csv(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="cannot read dataset"):
        read_csv(tmp_path / "nope.csv")


def test_the_container_start_is_recorded() -> None:
    cold = child("b0", 1, 0, 6000)
    cold["annotations"].append({"key": "initTime", "value": 180})
    children = [child("a0", 0, 0, 9000), cold, child("b1", 1, 1, 3000)]
    rows = rows_from_records(dag_record(), children)
    assert [r.init_ms for r in rows] == [0, 180, 0]
    assert rows[1].duration_ms == 250  # the duration still includes it


def test_a_file_written_before_init_ms_still_reads(tmp_path: Path) -> None:
    rows = synthetic_rows(n_requests=2)
    path = tmp_path / "old.csv"
    write_csv(rows, path)
    lines = path.read_text().splitlines()
    assert lines[0].endswith(",init_ms")
    path.write_text("\n".join(line.rsplit(",", 1)[0] for line in lines) + "\n")  # drop the last column
    assert read_csv(path) == rows  # init_ms defaults to 0


def test_rows_at_the_profile_allocation() -> None:
    rows = synthetic_rows(n_requests=3)
    lower = [replace(r, alloc_cpu=0.5) for r in rows]
    other_dag = [replace(r, dag="other", alloc_cpu=1.0) for r in rows[:2]]  # its own maximum
    assert at_profile_allocation(rows + lower + other_dag) == rows + other_dag


def test_a_dags_dataset_lives_under_the_state_directory_by_namespace(tmp_path: Path) -> None:
    assert dataset.dataset_path(tmp_path, "guest", "skewed") == tmp_path / "profiles" / "guest" / "skewed.csv"
