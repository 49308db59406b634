"""``gleaner replay``, ``gleaner trace`` and ``gleaner eval`` (gleaner/cli/replay.py), in
process: their arguments, the bad ones refused with a reason before any client or store
is built, and ``trace`` end to end on a folder of inputs. Nothing reaches the stack: the
replay's own run is the integration tests' (tests/integration/test_replay.py)."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

import benchmarks.evaluation.placement
import benchmarks.evaluation.run
from gleaner.cli import main as cli
from gleaner.cli import replay
from gleaner.errors import BadRequest
from gleaner.settings import Settings
from streams.replay.trace import read_trace


def parse(*argv: str) -> argparse.Namespace:
    return cli.build_parser().parse_args(list(argv))


@pytest.fixture()
def no_client(monkeypatch: pytest.MonkeyPatch) -> None:
    """Building a client is the first thing a replay does after checking its arguments."""

    def refuse(args: argparse.Namespace) -> None:
        raise AssertionError("a client was built before the arguments were checked")

    monkeypatch.setattr(replay, "_client", refuse)


def test_replay_defaults_replay_a_trace_at_its_own_pace_under_thesis() -> None:
    args = parse("replay", "t.jsonl")
    assert (args.trace, args.topic, args.policy, args.speed, args.limit, args.deadline) == (
        "t.jsonl",
        None,
        "thesis",
        1.0,
        0,
        0,
    )
    assert args.func is replay.cmd_replay and args.apihost is None and args.auth is None


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["t.jsonl", "--speed", "0"], "--speed must be a positive number"),
        (["t.jsonl", "--speed", "-2"], "--speed must be a positive number"),
        (["t.jsonl", "--speed", "nan"], "--speed must be a positive number"),
        (["t.jsonl", "--speed", "inf"], "--speed must be a positive number"),
        (["t.jsonl", "--limit", "-1"], "cannot be negative"),
        (["t.jsonl", "--deadline", "-5"], "cannot be negative"),
        (["t.jsonl", "--topic", "dag.requests"], "one of them"),
        ([], "one of them"),
        (["t.jsonl", "--policy", "off,off"], "names a policy twice"),
        (["t.jsonl", "--policy", "off,bogus"], "unknown harvesting policy 'bogus'"),
        (["t.jsonl", "--policy", " , "], "at least one policy"),
    ],
)
def test_a_bad_replay_is_refused_with_a_reason_before_any_client(
    no_client: None, argv: list[str], says: str
) -> None:
    with pytest.raises(BadRequest, match=says):
        replay.cmd_replay(parse("replay", *argv))


def test_the_replay_folder_is_the_one_given_or_a_time_stamped_one_under_the_state_dir(tmp_path: Path) -> None:
    settings = replace(Settings(), state_dir=tmp_path)
    assert replay._replay_dir(settings, parse("replay", "t", "--out", "here")) == Path("here")
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    stamped = replay._replay_dir(settings, parse("replay", "t"))
    assert stamped.parent == tmp_path / "replays"
    when = dt.datetime.strptime(stamped.name, "%Y%m%d-%H%M%S").replace(tzinfo=dt.UTC)
    assert before <= when <= dt.datetime.now(dt.UTC)


def _inputs(folder: Path, n: int) -> Path:
    folder.mkdir()
    for i in range(n):
        (folder / f"in{i}.json").write_text(json.dumps({"i": i}))
    return folder


def test_trace_writes_seeded_poisson_arrivals_over_the_inputs(tmp_path: Path) -> None:
    inputs = _inputs(tmp_path / "inputs", 3)
    out = tmp_path / "a.jsonl"
    argv = ["trace", "mydag", "--rate", "4", "-n", "7", "--input-dir", str(inputs), "-o", str(out)]
    assert cli.main([*argv, "--policy", "off"]) == 0
    entries = read_trace(out)
    assert len(entries) == 7 and {e.dag for e in entries} == {"mydag"}
    assert {e.policy for e in entries} == {"off"}
    offsets = [e.offset_s for e in entries]
    assert offsets == sorted(offsets) and offsets[0] >= 0
    assert [e.input_path and e.input_path.name for e in entries] == [f"in{i % 3}.json" for i in range(7)]
    assert entries[4].load_input() == {"i": 1}  # round robin over the inputs
    first = out.read_text()
    assert cli.main([*argv, "--policy", "off"]) == 0 and out.read_text() == first  # same seed, same trace
    assert cli.main([*argv, "--policy", "off", "--seed", "8"]) == 0 and out.read_text() != first


@pytest.mark.parametrize("rate", ["0", "-1", "nan", "inf"])
def test_trace_refuses_a_rate_that_is_not_a_positive_number(
    tmp_path: Path, rate: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "a.jsonl"
    argv = ["trace", "d", "--rate", rate, "--input-dir", str(_inputs(tmp_path / "in", 1)), "-o", str(out)]
    assert cli.main(argv) == 1
    assert "--rate must be a positive number" in capsys.readouterr().err
    assert not out.exists()


def test_trace_refuses_an_unknown_policy_with_a_reason_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "a.jsonl"
    argv = ["trace", "d", "--rate", "1", "--input-dir", str(_inputs(tmp_path / "in", 1)), "-o", str(out)]
    assert cli.main([*argv, "--policy", "bogus"]) == 1
    assert "unknown harvesting policy 'bogus'" in capsys.readouterr().err
    assert not out.exists()


def test_trace_needs_a_rate_and_an_output() -> None:
    with pytest.raises(SystemExit) as no_rate:
        parse("trace", "d", "-o", "x")
    with pytest.raises(SystemExit) as no_out:
        parse("trace", "d", "--rate", "1")
    assert no_rate.value.code == no_out.value.code == 2


@pytest.mark.parametrize(("flag", "module"), [([], benchmarks.evaluation.run), (["--placement"], None)])
def test_eval_runs_the_policy_comparison_or_with_placement_the_placement_one(
    monkeypatch: pytest.MonkeyPatch, flag: list[str], module: object
) -> None:
    called: list[str] = []

    def recorder(name: str, code: int) -> Callable[[argparse.Namespace], int]:
        def main(args: argparse.Namespace) -> int:
            called.append(name)
            return code

        return main

    monkeypatch.setattr(benchmarks.evaluation.run, "main", recorder("policies", 3))
    monkeypatch.setattr(benchmarks.evaluation.placement, "main", recorder("placement", 4))
    args = parse("eval", "parallel-aes", *flag)
    assert args.func(args) == (3 if module else 4)
    assert called == (["policies"] if module else ["placement"])


def test_eval_defaults_are_the_thesis_chapter_4_setup() -> None:
    args = parse("eval")
    assert args.dags == [] and args.requests == 180 and args.policy == "off,thesis,libra,gleaner"
    assert args.loads is None and args.placement is False and args.rounds == 2
    assert args.out == "docs/eval" and math.isclose(args.cpu_seconds, 0)
