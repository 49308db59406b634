"""The placement comparison's checks of the stack and its record of which invoker ran what."""

from __future__ import annotations

from dataclasses import dataclass

import orjson
import pytest

from benchmarks.evaluation.placement_stack import InvokerLog, check_invokers, ran_on
from gleaner.errors import BadRequest

COMPLETED = "activations.completed"


def test_two_invokers_of_equal_capacity_pass():
    check_invokers({"invoker0": 1.0, "invoker1": 1.0})


@pytest.mark.parametrize(
    ("capacities", "why"),
    [
        ({"invoker0": 2.0}, "healthy now: invoker0 (2 cores)"),
        ({}, "healthy now: none"),
        ({"invoker0": 2.0, "invoker1": 1.0}, "capacities differ"),
    ],
)
def test_anything_else_is_refused_with_the_command_that_fixes_it(capacities, why):
    with pytest.raises(BadRequest) as err:
        check_invokers(capacities)
    assert why in str(err.value) and "gleaner up --invokers 2" in str(err.value)


def completion(aid: str, invoker: str | None) -> dict:
    gleaner = {"invoker": invoker} if invoker else {}
    return {"type": "activation.completed", "activation_id": aid, "record": {"gleaner": gleaner}}


def test_ran_on_reads_the_invoker_off_the_record():
    assert ran_on(completion("a1", "invoker1")) == ("a1", "invoker1")
    assert ran_on(completion("a1", None)) is None
    assert ran_on({"activation_id": "a1"}) is None


@dataclass
class Msg:
    topic: str
    value: bytes | None


class FakeListener:
    def __init__(self, msgs):
        self.msgs = list(msgs)
        self.closed = False

    def poll(self, timeout_s):
        return self.msgs.pop(0) if self.msgs else None

    def close(self):
        self.closed = True


def test_the_log_sees_what_the_replay_sees_and_passes_every_message_on():
    msgs = [
        Msg(COMPLETED, orjson.dumps(completion("a1", "invoker0"))),
        Msg("dag.results", orjson.dumps(completion("r1", "invoker1"))),  # not a completion
        Msg(COMPLETED, b"not json"),
        Msg(COMPLETED, orjson.dumps(completion("a2", "invoker1"))),
    ]
    inner = FakeListener(msgs)
    log = InvokerLog(COMPLETED)
    listener = log.listening(lambda: inner)()
    assert [listener.poll(0.1) for _ in range(5)] == [*msgs, None]
    listener.close()
    assert inner.closed
    assert log.take(["a2", "a3"]) == {"a2": "invoker1"}
    assert log.by_activation == {}  # taken: forgotten
