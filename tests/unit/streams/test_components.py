"""The component registry: every entry resolves and takes what the CLI passes it, its
topics are the topic table's, and a consumer builds on in-memory Kafka reading those topics."""

from __future__ import annotations

import inspect
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from gleaner.metrics import metrics_port
from gleaner.settings import Settings
from gleaner.settings_sections import KafkaSettings
from streams import record_sink
from streams.components import COMPONENTS, NAMES, Component, component
from streams.kafka.runner import ConsumeRunner
from streams.kafka.testing import MemorySink, MemorySource
from streams.topics import TOPICS, topic
from tests.unit.fakes import MemoryCouch, MemoryRedis

# Every option `gleaner run` has; a component's entry takes those it names.
CLI_OPTIONS = {"policy": "greedy-jsq", "log_level": "info"}


def test_names_are_unique_and_looked_up() -> None:
    assert len(set(NAMES)) == len(NAMES) == len(COMPONENTS)
    assert component("records").entry == "streams.record_sink:build"
    with pytest.raises(KeyError, match="known: records, placement"):
        component("nobody")


@pytest.mark.parametrize("part", COMPONENTS, ids=NAMES)
def test_every_entry_resolves_and_takes_the_settings_and_its_options(part: Component) -> None:
    entry = part.resolve()
    assert callable(entry)
    assert set(part.options) <= set(CLI_OPTIONS)
    # Binds as the CLI calls it: entry(settings, **options); a missing or extra keyword fails here.
    inspect.signature(entry).bind(Settings(), **part.arguments(CLI_OPTIONS))
    returns = inspect.signature(entry).return_annotation
    # A runner's entry returns the ConsumeRunner the CLI runs; a blocking one runs and returns nothing.
    assert returns == ("ConsumeRunner" if part.kind == "runner" else "None")


def test_arguments_pick_only_the_options_a_component_names() -> None:
    assert component("placement").arguments(CLI_OPTIONS) == {"policy": "greedy-jsq"}
    assert component("predictor").arguments(CLI_OPTIONS) == {"log_level": "info"}
    assert component("records").arguments(CLI_OPTIONS) == {}


def test_every_topic_a_component_consumes_is_in_the_topic_table() -> None:
    bases = {t.base for t in TOPICS}
    for part in COMPONENTS:
        assert part.consumes, part.name  # each component reads something
        assert set(part.consumes) <= bases, part.name


def test_the_topic_table_and_the_registry_agree_on_who_reads_and_writes() -> None:
    for t in TOPICS:
        assert set(t.producers) | set(t.consumers) <= set(NAMES), t.base
        readers = {p.name for p in COMPONENTS if t.base in p.consumes}
        assert set(t.consumers) == readers, t.base
    assert topic("invoker").consumers == ("invoker",) and component("invoker").per_invoker


def test_every_component_has_its_own_metrics_port() -> None:
    s = Settings(metrics_port_base=9400)
    ports = [metrics_port(s, name) for name in (*NAMES, "supervisor", "invoker1")]
    assert None not in ports and len(set(ports)) == len(ports)


def test_importing_the_registry_imports_no_component() -> None:
    modules = sorted({p.entry.partition(":")[0] for p in COMPONENTS})
    code = (
        "import sys, streams.components; "
        f"print(','.join(m for m in {modules!r} if m in sys.modules) or 'none')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "none"


class Subscriptions:
    """Stands in for EventConsumer: notes the topics each consumer reads."""

    def __init__(self) -> None:
        self.topics: list[str] = []
        self.given: list[object] = []  # what each consumer was configured with

    def __call__(self, settings: KafkaSettings, _group: str, topics: list[str], **_kw: Any) -> MemorySource:
        self.topics.extend(topics)
        self.given.append(settings)
        return MemorySource()


@pytest.fixture
def in_memory(monkeypatch: pytest.MonkeyPatch) -> Iterator[Subscriptions]:
    subs = Subscriptions()
    monkeypatch.setattr(record_sink, "EventConsumer", subs)
    monkeypatch.setattr(record_sink, "EventProducer", lambda *_a, **_k: MemorySink())
    monkeypatch.setattr(record_sink, "RedisStore", lambda _s: MemoryRedis())
    monkeypatch.setattr(record_sink, "CouchDB", lambda _s: MemoryCouch())
    monkeypatch.setattr(record_sink, "process_bell", lambda _kafka, _stores: None)
    yield subs


def test_the_record_sink_builds_from_its_entry_on_in_memory_kafka(in_memory: Subscriptions) -> None:
    part = component("records")
    settings = Settings(topic_prefix="t.")
    runner = part.resolve()(settings, **part.arguments(CLI_OPTIONS))
    assert isinstance(runner, ConsumeRunner) and isinstance(runner.source, MemorySource)
    assert isinstance(runner.sink, MemorySink) and runner.name == "record-sink"
    # It reads what the registry says, by the names the topic table gives.
    expected = [n for base in part.consumes for n in topic(base).names(settings)]
    assert in_memory.topics == expected == ["t.activations.completed"]
    # Its consumer gets the Kafka section, not the whole settings.
    assert in_memory.given == [settings.kafka]
