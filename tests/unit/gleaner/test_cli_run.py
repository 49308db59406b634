"""``gleaner run <component>``: the choices are the registry's (plus deploy's supervisor),
and a component starts from its registry entry with the arguments it always had. Entries
are swapped for recorders: nothing here touches Kafka, a port or a signal handler."""

from __future__ import annotations

import dataclasses
import signal
from collections.abc import Callable
from typing import Any

import pytest

import deploy.supervisor
import gleaner.metrics
from gleaner.cli import main as cli
from gleaner.settings import Settings
from streams import components
from streams.components import NAMES, component

CALLS: list[tuple[str, dict[str, Any]]] = []


class FakeRunner:
    def __init__(self) -> None:
        self.ran = self.stopped = False

    def run(self) -> None:
        self.ran = True

    def stop(self) -> None:
        self.stopped = True


RUNNER = FakeRunner()


def fake_build(settings: Settings, **options: Any) -> FakeRunner:
    CALLS.append((settings.invoker_id, options))
    return RUNNER


def fake_blocking(settings: Settings, **options: Any) -> None:
    CALLS.append((settings.invoker_id, options))


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[Any]]:
    """Every entry replaced by a recorder of the same kind; metrics ports and signal
    handlers noted, not opened or installed."""
    CALLS.clear()
    global RUNNER
    RUNNER = FakeRunner()
    seen: dict[str, list[Any]] = {"metrics": [], "signals": [], "supervised": []}
    fakes = tuple(
        dataclasses.replace(c, entry=f"{__name__}:{'fake_build' if c.kind == 'runner' else 'fake_blocking'}")
        for c in components.COMPONENTS
    )
    monkeypatch.setattr(components, "COMPONENTS", fakes)
    monkeypatch.setattr(gleaner.metrics, "serve_metrics", lambda _s, name: seen["metrics"].append(name))
    monkeypatch.setattr(signal, "signal", lambda sig, handler: seen["signals"].append((sig, handler)))
    monkeypatch.setattr(deploy.supervisor, "run", lambda s: seen["supervised"].append(s))
    for var in ("GLEANER_PLACEMENT_POLICY", "GLEANER_INVOKER_ID"):
        monkeypatch.delenv(var, raising=False)
    return seen


def _run(*argv: str) -> int:
    return cli.main(["run", *argv])


def test_the_run_choices_are_the_registry_and_the_supervisor() -> None:
    registered = (*NAMES, deploy.supervisor.NAME)
    assert registered == cli.COMPONENTS
    parser = cli.build_parser()
    assert [parser.parse_args(["run", name]).component for name in cli.COMPONENTS] == list(cli.COMPONENTS)
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["run", "nobody"])


def test_a_consumer_is_built_from_its_entry_then_run_until_a_signal(started: dict[str, list[Any]]) -> None:
    assert _run("records") == 0
    assert CALLS == [("invoker0", {})] and RUNNER.ran and started["metrics"] == ["records"]
    sigs = [sig for sig, _ in started["signals"]]
    assert sigs == [signal.SIGTERM, signal.SIGINT]
    handler: Callable[..., None] = started["signals"][0][1]
    handler(signal.SIGTERM, None)
    assert RUNNER.stopped


def test_placement_gets_the_setting_policy_unless_the_flag_names_one(
    started: dict[str, list[Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GLEANER_PLACEMENT_POLICY", "hash")
    assert _run("placement") == 0 and _run("placement", "--policy", "jsq") == 0
    assert [options for _, options in CALLS] == [{"policy": "hash"}, {"policy": "jsq"}]


def test_an_invoker_serves_metrics_under_its_own_id(
    started: dict[str, list[Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GLEANER_INVOKER_ID", "invoker2")
    assert _run("invoker") == 0
    assert started["metrics"] == ["invoker2"] and CALLS == [("invoker2", {})]
    assert component("invoker").per_invoker


def test_a_blocking_component_runs_in_its_entry_with_no_runner(started: dict[str, list[Any]]) -> None:
    assert _run("predictor", "--log-level", "warning") == 0 and _run("gateway") == 0
    assert CALLS == [("invoker0", {"log_level": "warning"}), ("invoker0", {})]
    assert started["signals"] == [] and not RUNNER.ran
    assert started["metrics"] == ["predictor", "gateway"]


def test_the_supervisor_is_deploys_own_process(started: dict[str, list[Any]]) -> None:
    assert _run("supervisor") == 0
    assert len(started["supervised"]) == 1 and CALLS == [] and started["metrics"] == ["supervisor"]
