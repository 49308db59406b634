"""A crashed process loses nothing that Kafka still holds."""

from __future__ import annotations

import os
import signal
import time

import pytest

from deploy import procs
from tests.integration.conftest import stored_record, wait_for

pytestmark = pytest.mark.integration

SLOW = (
    "import time\ndef main(args):\n    time.sleep(args.get('s', 2))\n    return {'slept': args.get('s', 2)}\n"
)


def _kill(settings, name: str) -> None:
    pid = procs.component_status(settings, name).pid
    assert pid, f"{name} is not running"
    os.kill(pid, signal.SIGKILL)
    # The supervisor restarts it; no manual `gleaner up` here.
    wait_for(lambda: procs.component_status(settings, name).pid not in (None, pid), 30, f"{name} back")


def test_invoker_killed_mid_activation_finishes_it_after_restart(stack_up, ow, couch, unique):
    name = f"crash-{unique}"
    ow.put_action(name, {"exec": {"kind": "python:3", "code": SLOW}}, overwrite=True)
    _, first = ow.invoke(name, {"s": 0.1}, blocking=True, result=False)  # warm up: container ready
    _, body = ow.invoke(name, {"s": 3}, blocking=False, result=False)
    time.sleep(1.0)  # the activation is now running in its container
    _kill(stack_up, "invoker")
    rec = stored_record(couch, body["activationId"], timeout_s=90)
    assert rec["response"]["result"] == {"slept": 3}
    assert first["response"]["success"]


def test_record_sink_killed_loses_no_records(stack_up, ow, couch, unique):
    name = f"sink-{unique}"
    ow.put_action(name, {"exec": {"kind": "python:3", "code": SLOW}}, overwrite=True)
    _kill(stack_up, "records")
    ids = [ow.invoke(name, {"s": 0}, blocking=True, result=False)[1]["activationId"] for _ in range(3)]
    for activation_id in ids:
        assert stored_record(couch, activation_id, timeout_s=90)["response"]["result"] == {"slept": 0}
