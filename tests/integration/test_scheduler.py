"""The invoker's scheduler across requests, on the real stack (default settings: least
slack, backfill, lending): small work is not stuck behind a large head, idle cores of a
running function start a waiter of another request, and a lender wrongly taken for idle
gets its cores back. Each case is read from the records' allocation trajectories and
start times (which claim started before which), never from a timing threshold."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.integration.conftest import stored_record

pytestmark = pytest.mark.integration


def _burn(seconds: float, after_sleep: float = 0.0) -> str:
    return (
        "import time\n"
        "def main(args):\n"
        f"    time.sleep({after_sleep})\n"
        f"    end, n = time.time() + {seconds}, 0\n"
        "    while time.time() < end:\n"
        "        n += 1\n"
        "    return {'n': n}\n"
    )


def _nap(seconds: float) -> str:
    return f"import time\ndef main(args):\n    time.sleep({seconds})\n    return {{'slept': {seconds}}}\n"


def _deploy(ow: Any, name: str, code: str, cpu: float) -> None:
    limits = {"cpu": cpu, "memory": 256, "timeout": 60_000}
    ow.put_action(name, {"exec": {"kind": "python:3", "code": code}, "limits": limits}, overwrite=True)


def _submit(ow: Any, name: str) -> str:
    status, body = ow.invoke(name, {}, blocking=False, result=False)
    assert status == 202, body
    time.sleep(0.6)  # arrives at the invoker after the previous one
    return str(body["activationId"])


def _warm(ow: Any, *names: str) -> None:
    for name in names:  # a container per action, so cold starts do not reorder the scenario
        status, body = ow.invoke(name, {}, blocking=True, result=False)
        assert status == 200, body


def _trajectory(rec: dict[str, Any]) -> list[dict[str, Any]]:
    return list(rec["gleaner"].get("allocation_trajectory") or [])


def test_small_requests_backfill_ahead_of_a_large_head(ow, couch, unique):
    large, small = f"sched-large-{unique}", f"sched-small-{unique}"
    _deploy(ow, large, _burn(3.0), 1.5)
    _deploy(ow, small, _burn(0.2), 0.25)
    _warm(ow, large, small)
    first = _submit(ow, large)  # holds 1.5 of 2 cores
    head = _submit(ow, large)  # waits for 1.5: the head of the queue
    smalls = [_submit(ow, small) for _ in range(2)]  # 0.25 each: fit the 0.5 left over
    head_rec = stored_record(couch, head)
    first_rec = stored_record(couch, first)
    for sid in smalls:
        rec = stored_record(couch, sid)
        assert rec["response"]["success"], rec["response"]
        start = _trajectory(rec)[0]
        assert start["reason"] == "backfill", _trajectory(rec)
        assert head in (start.get("note") or "")
        assert rec["start"] < head_rec["start"]  # not queued behind the large head
    assert head_rec["start"] >= first_rec["end"] - 50  # the head waited for the first, not for them


def test_idle_cores_of_a_running_function_start_a_waiter_of_another_request(ow, couch, unique):
    idle, burner = f"sched-idle-{unique}", f"sched-burn-{unique}"
    _deploy(ow, idle, _nap(4.0), 1.75)
    _deploy(ow, burner, _burn(0.5), 1.0)
    _warm(ow, burner)
    lender = _submit(ow, idle)  # holds 1.75 cores and sleeps
    waiter = _submit(ow, burner)  # 0.25 free: it must wait, or borrow the sleeper's cores
    lender_rec, waiter_rec = stored_record(couch, lender), stored_record(couch, waiter)
    lent = [c for c in _trajectory(lender_rec) if c["reason"] == "lent"]
    assert lent and waiter in lent[0]["note"], _trajectory(lender_rec)
    assert waiter_rec["start"] < lender_rec["end"]  # it ran while the lender still held its claim
    assert waiter_rec["response"]["success"] and lender_rec["response"]["success"]


def test_a_lender_wrongly_taken_for_idle_takes_its_cores_back(ow, couch, unique):
    sleeper, burner = f"sched-wakes-{unique}", f"sched-borrow-{unique}"
    # Idle 1.5 s, then one busy thread: with 0.5 of its 1.0 lent, it runs at the cap it kept.
    _deploy(ow, sleeper, _burn(2.0, after_sleep=1.5), 1.0)
    _deploy(ow, burner, _burn(4.0), 1.5)
    _warm(ow, burner)
    lender = _submit(ow, sleeper)
    borrower = _submit(ow, burner)  # starts on the sleeper's lent cores
    lender_rec, borrower_rec = stored_record(couch, lender), stored_record(couch, borrower)
    reasons = [c["reason"] for c in _trajectory(lender_rec)]
    assert "lent" in reasons and "take-back" in reasons, _trajectory(lender_rec)
    back = next(c for c in _trajectory(lender_rec) if c["reason"] == "take-back")
    assert "cores it kept" in back["note"] and back["cpu"] == 1.0  # the safeguard's why, all returned
    cut = [c for c in _trajectory(borrower_rec) if c["reason"] == "reclaim"]
    assert cut and lender in cut[0]["note"], _trajectory(borrower_rec)
