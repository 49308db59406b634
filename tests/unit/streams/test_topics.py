"""The topic table: the names the settings spell, what start-up creates, with how many partitions."""

from __future__ import annotations

import dataclasses

import pytest

from gleaner.settings import Settings
from streams.topics import TOPICS, Topic, all_topics, topic, topics_by_partitions

PREFIXED = Settings(topic_prefix="p.")


def test_the_table_names_each_topic_as_the_settings_do() -> None:
    s = PREFIXED
    shortcuts = {
        "invocations": s.invocations_topic,
        "prewarm": s.prewarm_topic,
        "dag.requests": s.dag_requests_topic,
        "dag.plans": s.dag_plans_topic,
        "dag.results": s.dag_results_topic,
        "activations.completed": s.completed_topic,
        "invokers.health": s.health_topic,
        "deadletter": s.deadletter_topic,
    }
    for base, name in shortcuts.items():
        assert topic(base).names(s) == [name]
    assert topic("invoker").names(s, ("invoker0", "invoker2")) == [
        s.invoker_topic("invoker0"),
        s.invoker_topic("invoker2"),
    ]
    assert {t.base for t in TOPICS} == {*shortcuts, "invoker"} and len(TOPICS) == len(shortcuts) + 1


def test_start_up_creates_what_it_always_created_in_the_same_order() -> None:
    assert all_topics(PREFIXED) == [
        "p.invocations", "p.prewarm", "p.dag.requests", "p.dag.plans", "p.dag.results",
        "p.activations.completed", "p.invokers.health", "p.deadletter", "p.invoker.invoker0",
    ]  # fmt: skip
    three = dataclasses.replace(PREFIXED, invokers=3)
    assert all_topics(three, ("invoker7",))[-4:] == [
        "p.invoker.invoker0", "p.invoker.invoker1", "p.invoker.invoker2", "p.invoker.invoker7",
    ]  # fmt: skip


def test_topics_are_grouped_by_their_partition_count() -> None:
    s = dataclasses.replace(PREFIXED, topic_partitions=6)
    assert topics_by_partitions(s) == {6: all_topics(s)}  # today every topic has the setting's count
    assert Topic("x", (), (), partitions=1).partitions_for(s) == 1
    assert Topic("x", (), ()).partitions_for(s) == 6


def test_an_unknown_topic_names_the_known_ones() -> None:
    with pytest.raises(KeyError, match="known: invocations, prewarm"):
        topic("nope")
