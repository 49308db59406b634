"""Pre-warm along the DAG on the running stack (issue 11 item 2).

A DAG whose functions have no container at all (fresh actions: the state the
keep-alive leaves behind once it reaped them) is requested once. With
pre-warm on (the default), each later stage's containers start just in time,
while the stage before it runs (nothing is known yet of this DAG's stage
times, so each stage is hinted when the one before it starts: the
lookahead), so the request sees at most one cold start: its first stage's.
Cold starts are counted as child records with an ``initTime`` annotation
(events, not timings; a run that waited for its container still pre-warming
carries one too, so a late pre-warm fails this test rather than hide).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from composer import dag_document, sequence
from deploy.common import read_pid
from deploy.procs import marker
from gleaner.gateway_client import OpenWhiskClient
from gleaner.metrics import metrics_address
from gleaner.records import annotation
from gleaner.settings import Settings, load_settings
from tests.integration.conftest import wait_for

pytestmark = pytest.mark.integration

# The first two stages work a while, as real stages do; each next stage's pre-warm runs meanwhile
# (3 s: a container start finishes on a loaded box).
WORK = "import time\ndef main(args):\n    time.sleep(3.0)\n    return {'n': args.get('n', 0) + 1}\n"
STEP = "def main(args):\n    return {'n': args.get('n', 0) + 1}\n"


def prewarms_started(settings: Settings) -> float:
    url = metrics_address(settings, "invoker0")
    if url is None:
        return 0.0
    text = httpx.get(url, timeout=5).text
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "gleaner_prewarms_total" and s.labels.get("outcome") == "started"
    )


def stack_prewarm(settings: Settings) -> bool:
    """Pre-warm as the running composition stream has it (its hints start the containers),
    read from that process's environment: the stack may have been started (``gleaner up``)
    with another environment than this test's."""
    pid = read_pid(settings, "composition", marker("composition"))
    assert pid is not None, "the composition stream is not running"
    items = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace").split("\0")
    return load_settings(env=dict(item.split("=", 1) for item in items if "=" in item)).prewarm


def cold_starts(ow: OpenWhiskClient, rec: dict[str, Any]) -> list[str]:
    children = [ow.request("GET", f"/activations/{aid}")[1] for aid in rec["logs"]]
    return [c["name"] for c in children if annotation(c, "initTime") is not None]


def test_a_dag_whose_containers_are_gone_sees_at_most_one_cold_start(
    stack_up: Settings, ow: OpenWhiskClient, unique: str
) -> None:
    if not stack_prewarm(stack_up):
        pytest.skip("GLEANER_PREWARM is off on the running stack")
    names = [f"pw-first-{unique}", f"pw-second-{unique}", f"pw-third-{unique}"]
    for name, code in zip(names, (WORK, WORK, STEP), strict=True):
        ow.put_action(name, {"exec": {"kind": "python:3", "code": code}}, overwrite=True)
    dag = f"pw-{unique}"
    ow.request("PUT", f"/dags/{dag}", json=dag_document(sequence(*names)), params={"overwrite": "true"})
    before = prewarms_started(stack_up)

    status, rec = ow.request("POST", f"/dags/{dag}", json={}, params={"blocking": "true"})
    assert status == 200, rec
    assert rec["response"]["result"] == {"n": 3} and len(rec["logs"]) == 3
    cold = cold_starts(ow, rec)
    assert len(cold) <= 1, f"cold starts: {cold}"  # without pre-warm: all three, one per stage
    if metrics_address(stack_up, "invoker0") is not None:
        # The later stages ran warm because they were pre-warmed, not by chance.
        wait_for(lambda: prewarms_started(stack_up) >= before + 2, 10, "two pre-warm starts")

    status, again = ow.request("POST", f"/dags/{dag}", json={}, params={"blocking": "true"})
    assert status == 200 and cold_starts(ow, again) == []  # and a second request reuses them
