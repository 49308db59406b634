"""Faults during a replay of DAG requests, on the real stack, healed by the
supervisor with no manual ``gleaner up``: every request completes with the
right output, every activation has exactly one record, and no function
finishes twice (counted by the functions themselves, not by records)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from benchmarks import chaos
from deploy import procs
from gleaner.couchdb import ACTIVATIONS
from gleaner.settings import Settings
from tests.integration.conftest import TEST_AUTH, TEST_NAMESPACE, wait_for

pytestmark = pytest.mark.integration

REQUESTS = 30


@pytest.fixture(scope="module")
def counter(stack_up: Settings, couch) -> Iterator[chaos.RunCounter]:
    chaos.deploy(stack_up, TEST_NAMESPACE, TEST_AUTH)
    runs = chaos.RunCounter()
    yield runs
    runs.close()


def _replay(settings: Settings, fault: chaos.Fault | None, counter: chaos.RunCounter) -> chaos.ChaosResult:
    result = chaos.run_fault(
        settings, fault, namespace=TEST_NAMESPACE, auth=TEST_AUTH, requests=REQUESTS, counter=counter
    )
    print(chaos.summary([result]))
    return result


def _all_up(settings: Settings) -> bool:
    return all(procs.component_status(settings, name).pid for name in procs.component_names(settings))


def _assert_clean(result: chaos.ChaosResult) -> None:
    assert result.lost == 0, f"{result.lost} requests never completed"
    assert result.correct == REQUESTS, result.wrong
    assert result.missing_records == 0, "an activation has no record"
    assert result.duplicates == 0, "a function finished twice"
    assert result.uncounted == 0, "a finished activation was never seen running"


def test_without_a_fault_the_harness_sees_every_run_once(stack_up, counter):
    _assert_clean(_replay(stack_up, None, counter))


@pytest.mark.parametrize("part", ["invoker", "composition", "placement", "predictor", "gateway", "records"])
def test_a_killed_component_is_restarted_and_loses_nothing(stack_up, counter, part):
    before = procs.component_status(stack_up, part).pid
    result = _replay(stack_up, chaos.kill(part), counter)
    _assert_clean(result)
    after = wait_for(lambda: procs.component_status(stack_up, part).pid, 30, f"{part} back")
    assert after != before  # it really died, and the supervisor (not the test) restarted it
    wait_for(lambda: _all_up(stack_up), 30, "every component up")


@pytest.mark.parametrize(("part", "seconds"), [("redis", 20), ("couchdb", 30)])
def test_a_stopped_store_delays_requests_but_loses_none(stack_up, counter, part, seconds):
    _assert_clean(_replay(stack_up, chaos.freeze(part, seconds), counter))
    wait_for(lambda: _all_up(stack_up), 30, "every component up")


@pytest.mark.xfail(
    reason="issue 21, open: intermittent. It passed in the whole fault file and in `gleaner bench chaos` "
    "(100/100), but standalone runs lost 2 of 30 requests or stalled; the cause is not traced yet",
    strict=False,
)
def test_a_killed_broker_is_restarted_and_loses_no_accepted_request(stack_up, counter):
    """The memory broker loses its log: topics come back, every part finds the broker again
    by itself, and what the gateway accepted is produced again from its outbox."""
    before = chaos._pid(stack_up, "kafka")
    _assert_clean(_replay(stack_up, chaos.kill("kafka"), counter))
    assert chaos._pid(stack_up, "kafka") != before
    wait_for(lambda: _all_up(stack_up), 30, "every component up")


def test_a_frozen_broker_delays_requests_but_loses_none(stack_up, counter):
    _assert_clean(_replay(stack_up, chaos.freeze("kafka", 20), counter))


def test_placement_and_an_invoker_killed_together_lose_nothing(stack_up, counter):
    _assert_clean(_replay(stack_up, chaos.kill_together("placement", "invoker"), counter))
    wait_for(lambda: _all_up(stack_up), 30, "every component up")


def test_an_invoker_killed_for_good_hands_its_work_to_another(stack_up, counter, couch):
    """A second invoker the supervisor does not know of: killed, it stays dead, and
    placement sends what it owed to invoker0 once it has been silent for 10 s."""
    since = int(time.time() * 1000)
    result = _replay(stack_up, chaos.second_invoker_killed_for_good(), counter)
    _assert_clean(result)
    assert procs.component_status(stack_up, "invoker1").pid is None  # it stayed dead
    # On the by-namespace-start index: a long-lived store holds too many records to scan.
    selector = {"namespace": TEST_NAMESPACE, "start": {"$gte": since}, "gleaner.invoker": "invoker1"}
    sort = [{"namespace": "asc"}, {"start": "asc"}]
    served = couch.find_docs(ACTIVATIONS, selector, sort=sort, limit=5)
    assert served, "invoker1 never got work: the test did not exercise a hand-over"
