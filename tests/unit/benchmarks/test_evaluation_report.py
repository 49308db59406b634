"""The evaluation report of one DAG, from a hand-built evaluation: tables with hand-computed
figures, the requests where harvesting lost or that did not succeed, and the five figures."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from benchmarks.evaluation.calibrate import Calibration
from benchmarks.evaluation.report import render, speedups_of, write_report
from benchmarks.evaluation.results import DagEvaluation, LoadResult, PolicyRun
from monitor.utilisation import UtilisationSummary
from streams.replay.arrivals import LoadRow
from streams.replay.outcomes import FAILED, SUCCESS, UNFINISHED, RequestOutcome
from streams.replay.runner import ReplayRun

DAG = "demo"
PLOT_KEYS = ["latency", "speedup", "stage", "utilisation", "percentiles"]
PNGS = ["latency-cdf", "speedup-cdf", "parallel-stage", "utilisation", "percentiles"]


def outcome(
    policy: str,
    seq: int,
    latency_ms: float | None,
    *,
    status: str = SUCCESS,
    error: str = "",
    wait_ms: float = 100.0,
) -> RequestOutcome:
    """``latency_ms`` None: the request never finished."""
    o = RequestOutcome(
        seq=seq,
        request_id=f"{policy}{seq:031d}",
        dag=DAG,
        policy=policy,
        input=f"in{seq}.json",
        input_size=2048 * (seq + 1),
        scheduled_s=30.0 * seq,
        sent_s=30.0 * seq,
    )
    if latency_ms is not None:
        o.status = status
        o.status_code = 0 if status == SUCCESS else 2
        o.latency_ms = latency_ms
        o.parallel_stage_ms = latency_ms / 2
        o.wait_ms_total = wait_ms
        o.cold_starts = 1 if seq == 0 else 0
    o.error = error
    return o


def run(policy: str, outcomes: list[RequestOutcome]) -> ReplayRun:
    return ReplayRun(policy=policy, outcomes=outcomes)


def utilisation(scale: float) -> UtilisationSummary:
    timeline = [(0.1, 1.0 * scale, 2000.0), (0.2, 2.5 * scale, 2100.0), (0.3, 0.5 * scale, 2048.0)]
    return UtilisationSummary(90.0, 1.0 * scale, 2048.0, 2.5 * scale, 4.0, 8192.0, timeline)


def row(load: str, rate_per_s: float, fraction: float, thesis: float) -> LoadRow:
    return LoadRow(load, rate_per_s, rate_per_s * 60, fraction, thesis, 3 / rate_per_s)


def evaluation(calibration: Calibration | None = None) -> DagEvaluation:
    # low: speedups (1-0.5)/1 = 0.5, (2-2.5)/2 = -0.25, (4-1)/4 = 0.75 -> max 0.75, min -0.25,
    # mean 1/3, median 0.5; one request slower. The thesis run lists its outcomes out of order:
    # pairs are by trace position, not by list position.
    low_off = [outcome("off", 0, 1000), outcome("off", 1, 2000), outcome("off", 2, 4000)]
    low_thesis = [
        outcome("thesis", 2, 1000),
        outcome("thesis", 0, 500),
        outcome("thesis", 1, 2500, wait_ms=900),
    ]
    low = LoadResult(
        row("low", 0.5, 0.25, 15),
        [
            PolicyRun("off", run("off", low_off), utilisation(1.0)),
            PolicyRun("thesis", run("thesis", low_thesis), utilisation(2.0)),
        ],
    )
    # medium: seq 2 never finished with off and failed with thesis, so only 0 and 1 pair:
    # speedups 0.2 and 0.4 -> mean and median 0.30
    medium_off = [outcome("off", 0, 1000), outcome("off", 1, 1000), outcome("off", 2, None)]
    medium_thesis = [
        outcome("thesis", 0, 800),
        outcome("thesis", 1, 600),
        outcome("thesis", 2, 700, status=FAILED, error="boom"),
    ]
    medium = LoadResult(
        row("medium", 1.0, 0.5, 30),
        [
            PolicyRun("off", run("off", medium_off), utilisation(1.0)),
            PolicyRun("thesis", run("thesis", medium_thesis), utilisation(1.5)),
        ],
    )
    return dag_evaluation([low, medium], ["off", "thesis"], calibration, notes=["A note for the reader."])


def dag_evaluation(
    loads: list[LoadResult],
    policies: list[str],
    calibration: Calibration | None = None,
    notes: list[str] | None = None,
) -> DagEvaluation:
    """An evaluation of three requests per load on a 4-core invoker (the figures the report checks)."""
    return DagEvaluation(
        dag=DAG,
        namespace="guest",
        policies=policies,
        requests=3,
        distinct_inputs=3,
        seed=7,
        cpu_seconds=2.0,
        calibration=calibration,
        capacity_cores=4.0,
        memory_capacity_mb=8192,
        model_note="model v3 (already trained)",
        deadline_s=60.0,
        loads=loads,
        started_wall=1_700_000_000.0,
        seconds=600.0,
        notes=notes or [],
    )


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("eval")
    path = write_report(evaluation(), out)
    return out, path.read_text()


def rendered(ev: DagEvaluation, base: Path) -> str:
    """The markdown alone: drawing the figures is what takes time, and is tested once above."""
    return render(ev, {key: base / "img" / f"{key}.png" for key in PLOT_KEYS}, base)


def table_row(text: str, *cells: str) -> str:
    """The one table row starting with these cells."""
    prefix = "| " + " | ".join(cells) + " |"
    rows = [line for line in text.splitlines() if line.startswith(prefix)]
    assert len(rows) == 1, f"{len(rows)} rows start with {prefix!r}"
    return rows[0]


def section(text: str, title: str) -> str:
    body = text.split(f"## {title}\n", 1)[1]
    return body.split("\n## ", 1)[0]


def test_the_report_is_written_and_says_the_arrivals_are_synthesised(written):
    out, text = written
    assert (out / f"{DAG}.md").exists()
    assert text.startswith(f"# Evaluation under load: {DAG}")
    assert "**The arrival patterns are synthesised**" in text
    assert "`off` is the baseline" in text
    assert "- Model: model v3 (already trained)." in text
    assert "- A note for the reader." in text
    assert "**2.00**" in text  # CPU-s per request, given rather than calibrated


def test_the_five_figures_exist_and_are_linked(written):
    out, text = written
    for name in PNGS:
        png = out / "img" / f"{DAG}-{name}.png"
        assert png.exists() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"](img/{DAG}-{name}.png)" in text  # relative to the report


def test_arrival_rates_table(written):
    _, text = written
    assert table_row(text, "low", "25%", "30.00", "0.500", "15").endswith("| 1.0 min |")  # last arrival 60 s
    assert table_row(text, "medium", "50%", "60.00", "1.000", "30")


def test_speedup_rows_have_hand_computed_figures_next_to_the_thesis(written):
    _, text = written
    speedup = section(text, "Speedup per load (Table 4.2)")
    low = table_row(speedup, "low", "thesis", "3")
    assert low == (
        "| low | thesis | 3 | 0.75 | -0.25 | 0.33 | 0.50 | 1 (33 %) | 0.59 / -0.13 / 0.44 / 0.46 |"
    )
    medium = table_row(speedup, "medium", "thesis", "2")
    assert (
        medium == "| medium | thesis | 2 | 0.40 | 0.20 | 0.30 | 0.30 | 0 (0 %) | 0.78 / 0.07 / 0.50 / 0.50 |"
    )


def test_latency_rows(written):
    _, text = written
    lat = section(text, "Latency per load and policy")
    # low, off: 1, 2, 4 s -> P50 2.00, P99 2 + 2 * 0.98 = 3.96; thesis: 0.5, 1, 2.5 s -> 1.00, 2.47
    assert table_row(lat, "low", "off", "3", "0", "0", "2.00", "3.96", "1.00", "1.00")
    assert table_row(lat, "low", "thesis", "3", "0", "0", "1.00", "2.47", "0.50", "0.62")
    # medium: off has one unfinished, thesis one failed; cold starts: seq 0 of each run
    assert table_row(lat, "medium", "off", "2", "0", "1").endswith("| 0.10 | 1 |")
    assert table_row(lat, "medium", "thesis", "2", "1", "0")


def test_utilisation_rows(written):
    _, text = written
    util = section(text, "Utilisation (Table 4.3, Fig 4.8)")
    assert table_row(util, "low", "off") == "| low | off | 25.0% | 25.0% | 2.50 | 1.5 min |"
    assert table_row(util, "low", "thesis") == "| low | thesis | 50.0% | 25.0% | 5.00 | 1.5 min |"


def test_a_request_slower_with_thesis_is_listed_where_harvesting_loses(written):
    _, text = written
    loses = section(text, "Where harvesting loses")
    assert "1 request-runs were slower than the baseline" in loses
    assert table_row(loses, "low", "thesis", "#1", "in1.json (4 KB)", "2.00", "2.50", "-0.25", "0.10 / 0.90")
    assert "#0" not in loses and "#2" not in loses


def test_requests_that_did_not_succeed_are_listed(written):
    _, text = written
    bad = section(text, "Requests that did not succeed").strip().splitlines()
    items = [line for line in bad if line.startswith("- ")]
    assert items == [
        f"- medium / off: #2 off{2:031d} (in2.json): never finished",
        f"- medium / thesis: #2 thesis{2:031d} (in2.json): failed: boom",
    ]


def test_a_calibrated_report_lists_the_samples(tmp_path: Path):
    cal = Calibration(
        samples=2,
        sample_cpu_seconds=(2.5, 1.5),
        sample_sizes=(2048, 1024),
        sample_latency_s=(1.0, 2.0),
        cpu_seconds=2.0,
        seconds=30.0,
    )
    text = rendered(evaluation(cal), tmp_path)
    assert "1 KB: 1.50, 2 KB: 2.50" in text  # by input size
    assert "**2.00 CPU-s per request**" in text
    assert "calibration took 30 s" in text


def test_every_request_succeeding_says_so(tmp_path: Path):
    ev = evaluation()
    ev.loads = ev.loads[:1]
    ev.loads[0].runs[1].run.outcomes[2].latency_ms = 1500.0  # #1 now faster than its 2 s
    text = rendered(ev, tmp_path)
    assert "No request was slower than its baseline." in text
    assert "None: every request of every run succeeded." in text


# --- speedups_of -------------------------------------------------------------------------------


def test_speedups_pair_requests_by_trace_position():
    base = run("off", [outcome("off", 0, 1000), outcome("off", 1, 2000), outcome("off", 2, 4000)])
    other = run("thesis", [outcome("thesis", 1, 1000), outcome("thesis", 2, 4000), outcome("thesis", 0, 750)])
    assert speedups_of(base, other) == {"0": 0.25, "1": 0.5, "2": 0.0}


def test_speedups_leave_out_requests_that_did_not_succeed_in_either_run():
    base = run("off", [outcome("off", 0, 1000), outcome("off", 1, None), outcome("off", 2, 1000)])
    other = run(
        "thesis",
        [outcome("thesis", 0, 500), outcome("thesis", 1, 500), outcome("thesis", 2, 500, status=FAILED)],
    )
    assert speedups_of(base, other) == {"0": 0.5}
    assert base.outcomes[1].status == UNFINISHED and math.isnan(base.outcomes[1].latency_ms)
