"""The placement comparison's schedule: which policies, in which order per round, over which
part of the trace, and how many requests fit the budget."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from benchmarks.evaluation import placement
from benchmarks.evaluation.placement import (
    DEFAULT_POLICIES,
    placements_from,
    requests_for_budget,
    round_orders,
    rounds_of,
)
from benchmarks.evaluation.placement_stack import InvokerLog
from benchmarks.evaluation.run import EvalTarget
from gleaner.errors import BadRequest
from gleaner.settings import Settings
from streams.replay.outcomes import SUCCESS, FunctionOutcome, RequestOutcome
from streams.replay.runner import ReplayRun
from streams.replay.trace import TraceEntry

FIVE = placements_from(DEFAULT_POLICIES)


def test_the_default_compares_the_thesis_five_against_greedy_jsq():
    assert FIVE[0] == "greedy-jsq"
    assert sorted(FIVE) == ["greedy-jsq", "greedy-round-robin", "hash", "jsq", "round-robin"]


@pytest.mark.parametrize("raw", ["greedy-jsq", "greedy-jsq,random", "hash,hash", ""])
def test_unknown_repeated_or_lonely_policies_are_refused(raw):
    with pytest.raises(BadRequest):
        placements_from(raw)


def test_rounds_go_forward_then_reversed_then_shift():
    a, b, c = "abc"
    assert round_orders([a, b, c], 4) == [[a, b, c], [c, b, a], [b, c, a], [a, c, b]]


def test_over_two_rounds_every_policy_has_the_same_mean_position_and_none_is_always_last():
    for rounds in (2, 4, 6):
        orders = round_orders(FIVE, rounds)
        positions = {p: sum(order.index(p) for order in orders) for p in FIVE}
        assert len(set(positions.values())) == 1
        assert len({order[-1] for order in orders}) > 1
        assert all(sorted(order) == sorted(FIVE) for order in orders)


def test_one_round_keeps_the_order_given():
    assert round_orders(FIVE, 1) == [FIVE]


def _trace(n: int) -> list[TraceEntry]:
    return [TraceEntry(offset_s=2.0 * i + 1, dag="d", input_path=Path(f"{i}.json")) for i in range(n)]


def test_rounds_cut_the_trace_in_order_each_starting_at_zero():
    parts = rounds_of(_trace(7), 3)
    assert [start for start, _ in parts] == [0, 2, 5]
    assert [len(p) for _, p in parts] == [2, 3, 2]
    assert all(p[0].offset_s == 0.0 for _, p in parts)
    assert [e.offset_s for e in parts[1][1]] == [0.0, 2.0, 4.0]  # spacing kept
    assert [e.input_path.name for _, p in parts for e in p] == [f"{i}.json" for i in range(7)]


def test_never_more_rounds_than_requests():
    assert len(rounds_of(_trace(2), 5)) == 2


def test_the_budget_only_cuts_and_keeps_at_least_one_request():
    # 5 policies, 2.5 s per request: 8 min of arrivals hold 38 requests per policy.
    assert requests_for_budget(180, 2.5, 5, 8) == 38
    assert requests_for_budget(6, 2.5, 5, 8) == 6
    assert requests_for_budget(180, 600, 5, 1) == 1


# -- the comparison loop, against fakes (no stack) ------------------------------------


class FakeSwitch:
    def __init__(self):
        self.policy = None
        self.restarts: list[str] = []
        self.log = "placement.log"

    def use(self, policy):
        self.policy = policy
        self.restarts.append(policy)

    def still_ours(self):
        return True


class FakeReplayer:
    """Every request succeeds in 1 s; its one function runs on invoker0 or invoker1 by turns."""

    def __init__(self, log):
        self.log = log
        self.runs: list[tuple[int, str]] = []  # (entries, label)
        self.count = 0

    def run(self, entries, *, policy, deadline_s, progress=False, label="replay"):
        outcomes = []
        for seq, e in enumerate(entries):
            self.count += 1
            aid = f"a{self.count}"
            o = RequestOutcome(seq, f"r{self.count}", e.dag, policy, "in", 1, e.offset_s, sent_s=e.offset_s)
            o.status, o.latency_ms = SUCCESS, 1000.0
            nan = float("nan")
            o.functions = [
                FunctionOutcome(
                    o.request_id, aid, "f", 0, None, 0, 0, 0, False, 1, 128, 1, 128, "", nan, nan, nan
                )
            ]
            self.log.by_activation[aid] = f"invoker{self.count % 2}"
            outcomes.append(o)
        self.runs.append((len(entries), label))
        return ReplayRun(policy, outcomes)


def test_the_comparison_runs_every_policy_every_round_restarting_only_on_a_change(tmp_path, monkeypatch):
    monkeypatch.setattr(placement, "ensure_model", lambda *a: "model v1 (already trained)")
    inputs = []
    for i in range(3):
        path = tmp_path / f"in{i}.json"
        path.write_text(f'{{"n": {10**i}}}')
        inputs.append(path)
    args = argparse.Namespace(
        requests=6,
        cpu_seconds=1.0,
        calibrate=1,
        quiet=True,
        budget_min=0,
        rounds=2,
        deadline=0,
        warmup=1,
        seed=7,
    )
    log = InvokerLog("activations.completed")
    replayer, switch = FakeReplayer(log), FakeSwitch()
    comparison = placement._Comparison(Settings(), replayer, log, switch, args, idle_s=0)
    ev = comparison.compare(
        None, "guest", EvalTarget("d", inputs, True), FIVE, ["medium"], {"invoker0": 1.0, "invoker1": 1.0}
    )
    # One restart before calibration, then one per change of policy: the reversed round
    # starts with the policy the first round ended with.
    assert switch.restarts == [*FIVE, *FIVE[-2::-1]]
    assert len(ev.slots) == 10 and ev.rounds == 2
    for policy in FIVE:
        mine = [s for s in ev.slots if s.policy == policy]
        assert sorted(o.seq for s in mine for o in s.outcomes) == list(range(6))  # the whole trace
        assert all(s.invoker_of for s in mine)
    assert ev.orders == [f"medium 1: {', '.join(FIVE)}", f"medium 2: {', '.join(reversed(FIVE))}"]
    measured = [label for _, label in replayer.runs if label != "replay"]
    assert measured[0] == "d medium greedy-jsq (1/10)" and len(measured) == 10

    text = placement.write_outputs(ev, tmp_path / "docs" / "eval")
    bench = (tmp_path / "docs" / "benchmarks.md").read_text()
    assert "<!-- bench:placement-d -->" in bench and text.splitlines()[0] in bench
    assert "](eval/img/d-placement.png)" in text
    assert (tmp_path / "docs" / "eval" / "img" / "d-placement.png").exists()
    data = tmp_path / "docs" / "eval" / "data" / "d"
    assert (data / "placement-medium-hash-requests.csv").exists()
    assert "invoker" in (data / "placement-medium-hash-activations.csv").read_text().splitlines()[0]
