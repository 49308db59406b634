"""``gleaner bench ...`` (gleaner/cli/bench.py): each verb parses its options and runs its
own benchmark's entry point, found lazily. The entry points are swapped for recorders:
nothing is measured and nothing reaches the stack."""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable

import pytest

from gleaner.cli import bench

# verb and the arguments it needs -> the module and the function it runs
VERBS = [
    (["invoke"], "benchmarks.invoke", "main"),
    (["invoke", "--durability"], "benchmarks.invoke", "durability"),
    (["invoke", "--hardening"], "benchmarks.invoke", "hardening"),
    (["invoke", "--outbox"], "benchmarks.invoke", "outbox"),
    (["invoke", "--broker-storage"], "benchmarks.invoke", "broker_storage"),
    (["orchestration"], "benchmarks.orchestration", "main"),
    (["idle"], "benchmarks.idle", "main"),
    (["prewarm"], "benchmarks.prewarm", "main"),
    (["skew"], "benchmarks.skew", "main"),
    (["resize"], "benchmarks.resize", "main"),
    (["chaos"], "benchmarks.chaos", "main"),
    (["broker"], "benchmarks.broker_hop", "main"),
    (["harvest", "parallel-aes"], "benchmarks.harvest", "main"),
    (["inference", "parallel-aes"], "benchmarks.inference", "main"),
]
ENTRY_POINTS = sorted({(module, name) for _, module, name in VERBS})


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="gleaner")
    bench.register(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["bench", *argv])


@pytest.fixture()
def ran(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, argparse.Namespace]]:
    """Every entry point of every benchmark, swapped for one that records its call."""
    calls: list[tuple[str, argparse.Namespace]] = []

    def recorder(where: str) -> Callable[[argparse.Namespace], int]:
        def entry(args: argparse.Namespace) -> int:
            calls.append((where, args))
            return 7

        return entry

    for module, name in ENTRY_POINTS:
        monkeypatch.setattr(importlib.import_module(module), name, recorder(f"{module}.{name}"))
    return calls


@pytest.mark.parametrize(("argv", "module", "name"), VERBS)
def test_each_verb_runs_its_own_benchmark_and_returns_its_exit_code(
    ran: list[tuple[str, argparse.Namespace]], argv: list[str], module: str, name: str
) -> None:
    args = parse(*argv)
    assert args.func(args) == 7
    assert [where for where, _ in ran] == [f"{module}.{name}"]
    assert ran[0][1] is args


def test_harvest_and_inference_do_not_share_one_entry_point(
    ran: list[tuple[str, argparse.Namespace]],
) -> None:
    # Both are registered in one loop: each must keep its own module, not the loop's last.
    for verb in ("harvest", "inference"):
        args = parse(verb, "d")
        args.func(args)
    assert [where for where, _ in ran] == ["benchmarks.harvest.main", "benchmarks.inference.main"]


def test_a_verb_is_required_and_an_unknown_one_refused() -> None:
    for argv in ([], ["nope"]):
        with pytest.raises(SystemExit) as exc:
            parse(*argv)
        assert exc.value.code == 2


def test_the_defaults_write_to_docs_benchmarks_md() -> None:
    for argv, _, _ in VERBS:
        if argv[0] != "broker":  # its own options (benchmarks.broker_hop.add_arguments)
            assert parse(*argv).out == "docs/benchmarks.md", argv
    invoke = parse("invoke")
    assert (invoke.invocations, invoke.cold, invoke.throughput_seconds) == (300, 10, 15.0)
    assert not (invoke.durability or invoke.hardening or invoke.outbox or invoke.broker_storage)
    harvest = parse("harvest", "video-analytics", "--inputs", "6", "-q")
    assert (harvest.dag, harvest.inputs, harvest.seed, harvest.quiet, harvest.input_dir) == (
        "video-analytics",
        6,
        7,
        True,
        None,
    )
    assert (parse("resize").resizes, parse("skew").inputs, parse("chaos").rate) == (200, 5, 3.0)


@pytest.mark.parametrize(
    "argv",
    [["invoke", "-n", "many"], ["resize", "-n", "1.5"], ["prewarm", "--keepalive", "x"], ["harvest"]],
)
def test_an_option_of_the_wrong_type_or_a_missing_dag_is_a_usage_error(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        parse(*argv)
    assert exc.value.code == 2
