"""Timeline PNG from synthetic OpenWhisk-shaped records, and the skew numbers."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest

from gleaner.allocation import AllocationChange
from gleaner.cli import dag as dag_cli
from monitor.allocation_plot import allocation_series, start_label, usage_series
from monitor.timeline import PNG_DECISIONS, decision_lines, draw_timeline, scheduler_decisions, stage_skew

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
T0 = 1_700_000_000_000


def child(aid: str, name: str, stage: int, index: int, start: int, end: int, **notes: int) -> dict[str, Any]:
    return {
        "activationId": aid,
        "namespace": "guest",
        "name": name,
        "start": T0 + start,
        "end": T0 + end,
        "duration": end - start,
        "annotations": [{"key": "kind", "value": "python:3"}]
        + [{"key": k, "value": v} for k, v in notes.items()],
        "gleaner": {"stage": stage, "index": index},
    }


def video_analytics() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    children = [
        child("a0", "streaming", 0, 0, 5, 805, initTime=450, waitTime=5),
        child("a1", "decoder", 1, 0, 810, 2_010, initTime=400, waitTime=3),
        child("a2", "recognition1", 2, 0, 2_015, 3_015, waitTime=4),
        child("a3", "recognition2", 2, 1, 2_016, 5_416, initTime=500, waitTime=4),
    ]
    stages = [
        {"index": 0, "kind": "action", "start": T0, "end": T0 + 805, "functions": [
            {"activation_id": "a0", "action": "streaming", "index": 0, "input_size": 2048}]},
        {"index": 1, "kind": "action", "start": T0 + 805, "end": T0 + 2_010, "functions": [
            {"activation_id": "a1", "action": "decoder", "index": 0, "input_size": 4096}]},
        {"index": 2, "kind": "parallel", "start": T0 + 2_010, "end": T0 + 5_416, "functions": [
            {"activation_id": "a2", "action": "recognition1", "index": 0, "input_size": 1000},
            {"activation_id": "a3", "action": "recognition2", "index": 1, "input_size": 3000}]},
    ]  # fmt: skip
    dag = {
        "activationId": "9f1c2e",
        "namespace": "guest",
        "name": "vid",
        "start": T0,
        "end": T0 + 5_420,
        "duration": 5_420,
        "logs": [c["activationId"] for c in children],
        "annotations": [],
        "gleaner": {"dag": {"name": "vid", "input_size": 2048, "stages": stages}},
    }
    return dag, children


def test_stage_skew_of_the_parallel_stage_only() -> None:
    dag, children = video_analytics()
    assert stage_skew(dag, children) == {2: pytest.approx(3.4)}


def test_stage_skew_of_a_map_and_of_undescribed_stages() -> None:
    children = [
        child("b0", "split", 0, 0, 0, 100),
        child("b1", "detect", 1, 0, 100, 300),
        child("b2", "detect", 1, 1, 100, 700),
        child("b3", "detect", 1, 2, 100, 500),
    ]
    dag = {"activationId": "r", "start": T0, "end": T0 + 700,
           "gleaner": {"dag": {"name": "m", "stages": [{"index": 1, "kind": "map"}]}}}  # fmt: skip
    assert stage_skew(dag, children) == {1: pytest.approx(3.0)}
    bare = {"activationId": "r", "start": T0, "end": T0 + 700}
    assert stage_skew(bare, children) == {1: pytest.approx(3.0)}


def test_stage_skew_places_children_from_the_dag_record() -> None:
    dag, children = video_analytics()
    for c in children:
        del c["gleaner"]
    assert stage_skew(dag, children) == {2: pytest.approx(3.4)}


def test_zero_duration_keeps_skew_finite() -> None:
    children = [child("c0", "x", 0, 0, 0, 0), child("c1", "y", 0, 1, 0, 50)]
    assert stage_skew({"start": T0}, children) == {0: 50.0}


def test_single_function_stages_have_no_skew() -> None:
    assert stage_skew({"start": T0}, [child("c0", "x", 0, 0, 0, 10)]) == {}


def _assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    assert len(data) > 1000


def test_draw_timeline_writes_a_png(tmp_path: Path) -> None:
    dag, children = video_analytics()
    out = draw_timeline(dag, children, tmp_path / "plots" / "vid.png")
    assert out == tmp_path / "plots" / "vid.png"
    _assert_png(out)


def test_draw_timeline_with_a_title_and_sparse_records(tmp_path: Path) -> None:
    sparse = [{"activationId": "z", "name": "lonely", "start": T0 + 10, "duration": 40}]
    _assert_png(draw_timeline({"activationId": "r", "start": T0}, sparse, tmp_path / "s.png", title="sparse"))


def test_draw_timeline_with_no_children(tmp_path: Path) -> None:
    dag, _ = video_analytics()
    _assert_png(draw_timeline(dag, [], tmp_path / "empty.png"))


def change(at: int, cpu: float, reason: str, memory: int = 512, **extra: Any) -> dict[str, Any]:
    return {"at_ms": T0 + at, "cpu": cpu, "memory": memory, "reason": reason, **extra}


def allocated(
    record: dict[str, Any], cpu: float, origin: str, trajectory: list[Any] | None = None
) -> dict[str, Any]:
    """``record`` with an allocation, its origin and (optionally) its allocation trajectory."""
    mine = record.setdefault("gleaner", {})
    mine.update(allocation={"cpu": cpu, "memory": 512}, origin=origin)
    mine["user_allocation"] = {"cpu": 1.0, "memory": 512}
    if trajectory is not None:
        mine["allocation_trajectory"] = trajectory
    return record


def video_with_changes() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The video DAG with every kind of allocation change somewhere."""
    dag, children = video_analytics()
    a0, a1, a2, a3 = children
    allocated(a0, 1.0, "user")  # an old record: no trajectory
    allocated(
        a1,
        0.5,
        "harvest",
        [
            change(810, 0.5, "start-now"),
            change(1_300, 1.0, "grow"),
            change(1_600, 1.5, "idle-capacity"),
            change(1_800, 1.0, "reclaim"),
        ],
    )
    allocated(
        a2, 0.5, "harvest", [change(2_015, 0.5, "planned"), change(2_500, 0.5, "resize-failed", note="EBUSY")]
    )
    allocated(
        a3,
        2.0,
        "accelerate",
        [
            change(2_016, 2.0, "planned"),
            change(3_015, 3.0, "timely-release"),
            change(4_000, 1.0, "safeguard"),
            change(4_500, 1.0, "rerun"),
        ],
    )
    a3["gleaner"]["trajectory"] = [[0, 0.1, 80], [500, 1.9, 120], [1_500, 2.8, 200], [2_900, 0.9, 210]]
    return dag, children  # fmt: skip


def test_draw_timeline_with_allocation_changes(tmp_path: Path) -> None:
    dag, children = video_with_changes()
    _assert_png(draw_timeline(dag, children, tmp_path / "changes.png"))


def test_series_steps_through_every_change_to_the_end() -> None:
    _, children = video_with_changes()
    series = allocation_series(children[1])
    times = [T0 + t for t in (810, 1_300, 1_600, 1_800, 2_010)]
    assert series.steps == tuple(zip(times, [0.5, 1.0, 1.5, 1.0, 1.0], strict=True))
    assert [c.reason for c in series.changes] == ["start-now", "grow", "idle-capacity", "reclaim"]
    assert [c.reason for c in series.live] == ["grow", "idle-capacity", "reclaim"]
    assert not series.flat
    failed = allocation_series(children[2]).changes[1]
    assert failed == AllocationChange(T0 + 2_500, 0.5, 512, "resize-failed", "EBUSY")


def test_series_skips_bad_entries_and_sorts_by_time() -> None:
    record = child("x", "f", 0, 0, 0, 1_000)
    good = [change(0, 1.0, "planned"), change(600, 0.5, "reclaim"), change(300, 2.0, "idle-capacity")]
    bad = [
        "nope",
        None,
        [T0 + 100, 1.0, 512, "grow"],
        change(100, 0.0, "grow"),
        change(100, -1.0, "grow"),
        change(100, True, "grow"),
        change(100, float("nan"), "grow"),
        change(100, "2", "grow"),
        change(100, 2.0, "sideways"),
        change(100, 2.0, None),
        change(100, 2.0, "grow", memory=0),
        {"cpu": 2.0, "memory": 512, "reason": "grow"},
        {"at_ms": float("inf"), "cpu": 2.0, "memory": 512, "reason": "grow"},
        {"at_ms": 100, "cpu": 2.0, "memory": 512, "reason": "grow"},  # ms since start, not epoch: far outside
        change(5_000, 4.0, "grow"),  # long after the end
    ]
    allocated(record, 1.0, "user", [*bad[:7], good[0], *bad[7:], good[1], good[2]])
    series = allocation_series(record)
    assert [c.reason for c in series.changes] == ["planned", "idle-capacity", "reclaim"]
    assert series.steps == ((T0, 1.0), (T0 + 300, 2.0), (T0 + 600, 0.5), (T0 + 1_000, 0.5))


@pytest.mark.parametrize("trajectory", [None, [], "garbage", [{"at_ms": "soon"}], {"0": {}}])
def test_a_missing_or_unusable_trajectory_gives_a_flat_line(trajectory: Any) -> None:
    record = child("x", "f", 0, 0, 200, 700)
    allocated(record, 0.75, "harvest", trajectory)
    series = allocation_series(record)
    assert series.flat
    assert series.live == ()
    assert series.steps == ((T0 + 200, 0.75), (T0 + 700, 0.75))


def test_a_late_first_entry_starts_the_line_at_the_start_allocation() -> None:
    record = allocated(child("x", "f", 0, 0, 0, 1_000), 0.5, "harvest", [change(400, 1.0, "grow")])
    assert allocation_series(record).steps == ((T0, 0.5), (T0 + 400, 1.0), (T0 + 1_000, 1.0))


def test_no_allocation_at_all_gives_an_empty_series() -> None:
    record = child("x", "f", 0, 0, 0, 1_000)
    assert allocation_series(record).steps == ()
    record["gleaner"]["allocation"] = {"cpu": "lots", "memory": 512}
    assert allocation_series(record).steps == ()
    assert allocation_series({"gleaner": "?"}).steps == ()


def test_usage_series_starts_after_the_cold_start_and_skips_bad_samples() -> None:
    record = child("x", "f", 0, 0, 0, 2_000, initTime=300)
    record["gleaner"]["trajectory"] = [[0, 0.2, 50], [100, None, 50], "x", [50], [200, 1.5, 60], [-5, 1.0, 1]]
    assert usage_series(record) == [(T0 + 300, 0.2), (T0 + 500, 1.5)]
    assert usage_series(child("y", "f", 0, 0, 0, 10)) == []


def test_start_label() -> None:
    _, children = video_with_changes()
    assert [start_label(c) for c in children] == ["1c user", "0.5c harvest", "0.5c harvest", "2c accelerate"]
    bare = child("x", "f", 0, 0, 0, 10)
    assert start_label(bare) == ""
    bare["gleaner"].update(origin="made-up", allocation_trajectory=[change(0, 0.25, "start-now")])
    assert start_label(bare) == "0.25c"


def test_draw_timeline_survives_malformed_records(tmp_path: Path) -> None:
    dag, children = video_with_changes()
    dag["gleaner"]["dag"]["stages"].append({"kind": "parallel", "functions": "?"})  # no index
    dag["gleaner"]["dag"]["stages"].append("not a stage")
    children[0]["gleaner"] = ["not", "an", "object"]
    children[1]["gleaner"]["stage"] = "first"
    children[1]["annotations"] = "none"
    children[2]["gleaner"]["allocation_trajectory"] = [{"at_ms": None}, 7, change(2_200, "x", "grow")]
    children[3]["gleaner"]["trajectory"] = {"t": 1}
    junk: list[Any] = [None, "record", {"name": "no start"}, {"start": float("nan"), "end": 5}]
    _assert_png(draw_timeline(dag, [*children, *junk], tmp_path / "junk.png"))
    assert stage_skew(dag, [*children, *junk]) == {2: pytest.approx(3.4)}


# --- the scheduler's decisions, listed -----------------------------------------------------

WORK_B, WORK_C, OTHER = "b" * 32, "c" * 32, "e" * 32  # the last one: another request's function


def contended() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A request whose parallel stage met the scheduler: one function waited, was backfilled
    ahead of its sibling, lent cores and took them back; the sibling waited behind another
    request's function."""
    dag, children = video_with_changes()
    a2, a3 = children[2], children[3]
    a2["activationId"], a3["activationId"] = WORK_B, WORK_C
    dag["gleaner"]["dag"]["stages"][2]["functions"][0]["activation_id"] = WORK_B
    dag["gleaner"]["dag"]["stages"][2]["functions"][1]["activation_id"] = WORK_C
    a2["gleaner"]["allocation_trajectory"] = [
        change(
            2_015, 0.5, "backfill", note=f"backfilled ahead of {WORK_C}, whose reserved start is in 40 ms"
        ),
        change(2_400, 0.25, "lent", note=f"lent 0.25 cores to {OTHER}"),
        change(2_700, 0.5, "take-back", note="needed them back"),
    ]
    a3["gleaner"]["allocation_trajectory"] = [
        change(2_016, 2.0, "planned", note=f"waited 12 ms behind {OTHER}"),
        change(3_015, 3.0, "timely-release"),
    ]
    return dag, children


def test_decision_lines_list_every_functions_decisions_with_reason_and_note() -> None:
    dag, children = contended()
    lines = decision_lines(dag, children)
    assert lines[0] == "scheduler decisions (seconds since the request started):"
    assert lines[1] == "streaming [0.0], waited 5 ms: no decision recorded"  # an old record
    assert lines[2] == "decoder [1.0], waited 3 ms:"
    assert lines[3].split() == ["0.810", "s", "start-now", "0.5c", "512", "MB"]
    b = lines.index("recognition1 [2.0], waited 4 ms:")
    backfill, lent, take_back = lines[b + 1 : b + 4]
    assert backfill.split()[:5] == ["2.015", "s", "backfill", "0.5c", "512"]
    assert backfill.endswith(
        f"backfilled ahead of {WORK_C} (recognition2 [2.1]), whose reserved start is in 40 ms"
    )
    assert "  lent " in lent and "0.25c" in lent and lent.endswith(f"lent 0.25 cores to {OTHER}")  # not ours
    assert "take-back" in take_back and take_back.endswith("needed them back")
    c = lines.index("recognition2 [2.1], waited 4 ms:")
    assert lines[c + 1].endswith(f"waited 12 ms behind {OTHER}") and "planned" in lines[c + 1]
    assert lines[c + 2].split() == ["3.015", "s", "timely-release", "3c", "512", "MB"]
    assert len(lines) == c + 3
    # the same columns for every decision: times right-aligned, reasons in one column
    rows = [line for line in lines if line.startswith("  ")]
    assert len({row.index(" s  ") for row in rows}) == 1 and len(rows) == 4 + 3 + 2


def test_unknown_reasons_are_listed_as_they_are_and_malformed_entries_skipped() -> None:
    dag, children = contended()
    children[1]["gleaner"]["allocation_trajectory"] = [
        change(1_500, 1.0, "borrowed", note="borrowed\n 0.5 cores   from a lender"),  # a newer invoker's
        {"reason": "sideways", "cpu": 1.0, "memory": 512},  # no time: listed last, at "?"
        change(900, "lots", "grow", memory=-1),  # odd amounts: "?"
        "nope",
        None,
        {"at_ms": T0 + 1_000, "cpu": 1.0, "memory": 512},  # no reason
        change(1_100, 1.0, "   "),
        change(1_200, 1.0, 7),
    ]
    lines = decision_lines(dag, children)
    d = lines.index("decoder [1.0], waited 3 ms:")
    grow, borrowed, sideways = lines[d + 1 : d + 4]
    assert grow.split() == ["0.900", "s", "grow", "?", "?"]
    assert borrowed.split()[:3] == ["1.500", "s", "borrowed"]
    assert borrowed.endswith("borrowed 0.5 cores from a lender")
    assert sideways.split() == ["?", "s", "sideways", "1c", "512", "MB"]
    assert lines[d + 4] == "recognition1 [2.0], waited 4 ms:"
    found = {label: ds for label, _, ds in scheduler_decisions(dag, children)}
    assert [x.reason for x in found["decoder [1.0]"]] == ["grow", "borrowed", "sideways"]


def test_decision_lines_of_a_bare_request() -> None:
    assert decision_lines({"activationId": "r", "start": T0}, [None, {"name": "no start"}]) == [  # type: ignore[list-item]
        "scheduler decisions (seconds since the request started):",
        "no function records",
    ]
    sparse = [{"activationId": "z", "name": "lonely", "start": T0 + 10, "duration": 40}]
    assert decision_lines({"start": T0}, sparse)[1:] == ["lonely [1000000.0]: no decision recorded"]


def test_draw_timeline_lists_the_decisions_under_the_plots(tmp_path: Path) -> None:
    dag, children = contended()
    plain = draw_timeline(dag, [children[0]], tmp_path / "plain.png")
    listed = draw_timeline(dag, children, tmp_path / "listed.png")
    _assert_png(plain)
    _assert_png(listed)
    many = [change(2_015 + k, 0.5, "lent", note=f"decision {k}") for k in range(3 * PNG_DECISIONS)]
    children[2]["gleaner"]["allocation_trajectory"] = many
    _assert_png(draw_timeline(dag, children, tmp_path / "many.png"))


def test_gleaner_dag_timeline_prints_the_decisions_after_the_png(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    dag, children = contended()
    dag["logs"] = [c["activationId"] for c in children]
    by_id = {c["activationId"]: c for c in [dag, *children]}

    class FakeClient:
        def request(self, method: str, path: str) -> tuple[int, dict[str, Any]]:
            assert method == "GET" and path.startswith("/activations/")
            return 200, by_id[path.removeprefix("/activations/")]

    monkeypatch.setattr(dag_cli, "_client", lambda args: FakeClient())
    out = tmp_path / "t.png"
    args = argparse.Namespace(id=dag["activationId"], output=str(out), apihost=None, auth=None)
    assert dag_cli.dag_timeline(args) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == f"ok: wrote {out}"
    assert printed[1:] == decision_lines(dag, children)
    assert any("backfilled ahead of" in line for line in printed)
    _assert_png(out)
