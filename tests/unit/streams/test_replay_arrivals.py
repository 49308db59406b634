import math
from pathlib import Path

import pytest

from streams.replay.arrivals import (
    LOAD_FRACTIONS,
    THESIS_RATES_PER_MIN,
    LoadRow,
    poisson_offsets,
    rate_table,
    rates_for_load,
    synthesise,
    unit_gaps,
)
from streams.replay.trace import read_trace, write_trace


def test_unit_gaps_are_seeded_and_positive():
    gaps = unit_gaps(50, seed=7)
    assert gaps == unit_gaps(50, seed=7)
    assert gaps != unit_gaps(50, seed=8)
    assert len(gaps) == 50 and all(g > 0 for g in gaps)
    assert unit_gaps(10, seed=7) == gaps[:10]  # a longer run extends a shorter one


def test_unit_gaps_have_mean_one():
    gaps = unit_gaps(20000, seed=1)
    assert sum(gaps) / len(gaps) == pytest.approx(1.0, rel=0.03)


def test_offsets_are_reproducible_and_start_at_once():
    offsets = poisson_offsets(100, rate_per_s=2.0, seed=42)
    assert offsets == poisson_offsets(100, rate_per_s=2.0, seed=42)
    assert offsets != poisson_offsets(100, rate_per_s=2.0, seed=43)
    assert offsets[0] == 0.0
    assert len(offsets) == 100
    assert offsets == sorted(offsets)
    assert all(round(o, 3) == o for o in offsets)  # millisecond resolution


def test_single_arrival_is_at_zero():
    assert poisson_offsets(1, rate_per_s=0.1, seed=0) == [0.0]


@pytest.mark.parametrize("rate", [0.25, 4.0])
def test_mean_gap_is_one_over_the_rate(rate):
    offsets = poisson_offsets(20000, rate_per_s=rate, seed=3)
    mean_gap = offsets[-1] / (len(offsets) - 1)
    assert mean_gap == pytest.approx(1 / rate, rel=0.03)


def test_offsets_are_the_unit_gaps_scaled():
    gaps = unit_gaps(5, seed=9)
    offsets = poisson_offsets(5, rate_per_s=0.5, seed=9)
    expected = [sum(gaps[1 : i + 1]) / 0.5 for i in range(5)]
    assert offsets == pytest.approx(expected, abs=5e-4)


def test_medium_is_low_compressed_two_times():
    low_rate, medium_rate, high_rate = rates_for_load(4.0, 2.0).values()
    low = poisson_offsets(500, low_rate, seed=11)
    medium = poisson_offsets(500, medium_rate, seed=11)
    high = poisson_offsets(500, high_rate, seed=11)
    assert all(abs(m - lo / 2) <= 1e-3 for lo, m in zip(low, medium, strict=True))
    assert all(abs(h - lo / 4) <= 1e-3 for lo, h in zip(low, high, strict=True))


@pytest.mark.parametrize(
    ("n", "rate"), [(0, 1.0), (-3, 1.0), (5, 0.0), (5, -1.0), (5, math.inf), (5, math.nan)]
)
def test_offsets_reject_bad_arguments(n, rate):
    with pytest.raises(ValueError):
        poisson_offsets(n, rate, seed=0)


def test_unit_gaps_reject_no_arrivals():
    with pytest.raises(ValueError, match="n must be >= 1"):
        unit_gaps(0, seed=0)


def test_rates_for_load_by_hand():
    # 4 CPU-s per request on 2 cores: full capacity is 0.5 requests/s
    assert rates_for_load(4.0, 2.0) == {"low": 0.125, "medium": 0.25, "high": 0.5}
    # 1.6 CPU-s on 16 cores (the thesis's 2 x 8): 10/s at full load
    rates = rates_for_load(1.6, 16.0)
    assert rates == pytest.approx({"low": 2.5, "medium": 5.0, "high": 10.0})
    for load, rate in rates.items():
        assert rate * 1.6 == pytest.approx(LOAD_FRACTIONS[load] * 16.0)


def test_rates_keep_the_thesis_ratios():
    rates = rates_for_load(3.7, 5.0)
    assert list(rates) == ["low", "medium", "high"]
    assert rates["medium"] / rates["low"] == pytest.approx(2.0)
    assert rates["high"] / rates["low"] == pytest.approx(4.0)
    thesis = THESIS_RATES_PER_MIN
    assert thesis["medium"] / thesis["low"] == 2.0 and thesis["high"] / thesis["low"] == 4.0


def test_rates_for_custom_fractions():
    assert rates_for_load(2.0, 4.0, {"idle": 0.1, "over": 1.5}) == pytest.approx({"idle": 0.2, "over": 3.0})


@pytest.mark.parametrize(
    ("cpu", "cores", "fractions"),
    [
        (0.0, 2.0, LOAD_FRACTIONS),
        (-1.0, 2.0, LOAD_FRACTIONS),
        (1.0, 0.0, LOAD_FRACTIONS),
        (math.inf, 2.0, LOAD_FRACTIONS),
        (1.0, 2.0, {"low": 0.0}),
        (1.0, 2.0, {"low": -0.5}),
    ],
)
def test_rates_reject_non_positive_inputs(cpu, cores, fractions):
    with pytest.raises(ValueError, match="positive"):
        rates_for_load(cpu, cores, fractions)


def test_synthesise_cycles_inputs_in_order():
    inputs = [Path("a.json"), Path("b.json"), Path("c.json")]
    entries = synthesise("video", inputs, n=7, rate_per_s=0.5, seed=5, policy="thesis")
    assert [e.input_path for e in entries] == [inputs[i % 3] for i in range(7)]
    assert [e.offset_s for e in entries] == poisson_offsets(7, 0.5, seed=5)
    assert all(e.dag == "video" and e.policy == "thesis" and e.line == 0 and e.input is None for e in entries)


def test_synthesise_fewer_requests_than_inputs_and_default_policy():
    entries = synthesise("d", [Path("a.json"), Path("b.json"), Path("c.json")], n=2, rate_per_s=1.0, seed=0)
    assert [e.input_path for e in entries] == [Path("a.json"), Path("b.json")]
    assert all(e.policy is None for e in entries)


def test_synthesised_trace_round_trips_through_a_file(tmp_path):
    (tmp_path / "in").mkdir()
    inputs = []
    for name in ("x", "y"):
        file = tmp_path / "in" / f"{name}.json"
        file.write_text(f'{{"name": "{name}"}}')
        inputs.append(file)
    entries = synthesise("video", inputs, n=5, rate_per_s=2.0, seed=1, policy="off")
    write_trace(tmp_path / "t.jsonl", entries)
    again = read_trace(tmp_path / "t.jsonl", known_dags={"video"})
    assert [e.offset_s for e in again] == [e.offset_s for e in entries]
    assert [e.load_input()["name"] for e in again] == ["x", "y", "x", "y", "x"]


def test_synthesise_rejects_bad_arguments():
    with pytest.raises(ValueError, match="at least one input"):
        synthesise("d", [], n=3, rate_per_s=1.0, seed=0)
    with pytest.raises(ValueError, match="not a valid name"):
        synthesise("bad/dag", [Path("a.json")], n=3, rate_per_s=1.0, seed=0)
    with pytest.raises(ValueError):
        synthesise("d", [Path("a.json")], n=0, rate_per_s=1.0, seed=0)
    with pytest.raises(ValueError):
        synthesise("d", [Path("a.json")], n=3, rate_per_s=0.0, seed=0)


def test_rate_table_is_table_4_1_for_this_cluster():
    rows = rate_table(4.0, 2.0, n=100)
    assert rows == [
        LoadRow("low", 0.125, 7.5, 0.25, 15.0, 800.0),
        LoadRow("medium", 0.25, 15.0, 0.5, 30.0, 400.0),
        LoadRow("high", 0.5, 30.0, 1.0, 60.0, 200.0),
    ]


def test_rate_table_rejects_no_requests():
    with pytest.raises(ValueError, match="n must be >= 1"):
        rate_table(4.0, 2.0, n=0)
