"""Each component's section is a true part of the flat settings: same names, same types,
the same values once built."""

from __future__ import annotations

import dataclasses
import typing

import pytest

from gleaner import settings_sections
from gleaner.settings import Settings, load_settings
from gleaner.settings_sections import SECTIONS, KafkaSettings, Section, StoreSettings

FLAT = {f.name: f for f in dataclasses.fields(Settings)}
FLAT_TYPES = typing.get_type_hints(Settings)


def test_every_section_is_listed_once() -> None:
    declared = {
        obj
        for obj in vars(settings_sections).values()
        if isinstance(obj, type) and issubclass(obj, Section) and dataclasses.is_dataclass(obj)
    }
    assert declared == set(SECTIONS)
    assert len(SECTIONS) == len(set(SECTIONS))


@pytest.mark.parametrize("section", SECTIONS, ids=lambda s: s.__name__)
def test_a_sections_fields_are_flat_fields_of_the_same_type(section: type[Section]) -> None:
    hints = typing.get_type_hints(section)
    fields = dataclasses.fields(section)  # type: ignore[arg-type]
    assert fields, f"{section.__name__} has no fields"
    for f in fields:
        assert f.name in FLAT, f"{section.__name__}.{f.name} is no field of Settings"
        assert hints[f.name] == FLAT_TYPES[f.name], f"{section.__name__}.{f.name}"
        # No default of its own: the value always comes from the flat settings.
        assert f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


@pytest.mark.parametrize("section", SECTIONS, ids=lambda s: s.__name__)
def test_a_section_carries_the_flat_values(section: type[Section]) -> None:
    flat = load_settings(
        {"GLEANER_TOPIC_PREFIX": "t-", "GLEANER_DB_PREFIX": "d_", "GLEANER_PREWARM_LOOKAHEAD": "3"}
    )
    part = section.of(flat)
    for f in dataclasses.fields(part):  # type: ignore[arg-type]
        assert getattr(part, f.name) == getattr(flat, f.name)
    assert section.of(dataclasses.replace(flat)) == part  # frozen values: equal when built twice


def test_the_flat_settings_hand_out_their_sections() -> None:
    flat = dataclasses.replace(Settings(), topic_prefix="p-", db_prefix="q_", kafka_bootstrap="k:1")
    assert flat.kafka == KafkaSettings.of(flat)
    assert flat.kafka.kafka_bootstrap == "k:1"
    assert flat.stores == StoreSettings.of(flat)
    assert flat.composition.prewarm_lookahead == flat.prewarm_lookahead


def test_topic_and_database_names_are_the_same_from_a_section() -> None:
    flat = dataclasses.replace(Settings(), topic_prefix="p-", db_prefix="q_")
    kafka = flat.kafka
    for name in (
        "invocations_topic",
        "completed_topic",
        "prewarm_topic",
        "health_topic",
        "dag_requests_topic",
        "dag_results_topic",
        "dag_plans_topic",
        "deadletter_topic",
    ):
        assert getattr(kafka, name) == getattr(flat, name)
        assert getattr(flat, name).startswith("p-")
    assert kafka.invoker_topic("invoker3") == flat.invoker_topic("invoker3") == "p-invoker.invoker3"
    assert flat.composition.dag_results_topic == flat.dag_results_topic == "p-dag.results"
    assert flat.stores.db("activations") == flat.db("activations") == "q_activations"


def test_a_section_is_frozen() -> None:
    kafka = Settings().kafka
    with pytest.raises(dataclasses.FrozenInstanceError):
        kafka.kafka_bootstrap = "elsewhere:9092"  # type: ignore[misc]
    assert dataclasses.replace(kafka, kafka_bootstrap="elsewhere:9092").kafka_bootstrap == "elsewhere:9092"
