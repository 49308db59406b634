"""Prometheus metrics on the running stack: every component serves the text
exposition format, and an activation moves the record sink's counter."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gleaner.gateway_client import OpenWhiskClient
from gleaner.metrics import metrics_address
from gleaner.settings import Settings
from tests.integration.conftest import wait_for

pytestmark = pytest.mark.integration

HELLO = """
def main(args):
    return {"ok": True}
"""


def scrape(url: str) -> dict[str, float]:
    """Every sample of an endpoint as ``name{labels}`` -> value (parsing checks the format)."""
    text = httpx.get(url, timeout=5).text
    return {
        f"{s.name}{sorted(s.labels.items())}": s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def successes(samples: dict[str, float]) -> float:
    return sum(v for k, v in samples.items() if k.startswith("gleaner_activations_total") and "success" in k)


@pytest.mark.parametrize(
    "component", ["gateway", "placement", "composition", "predictor", "records", "invoker0"]
)
def test_every_component_serves_the_exposition_format(stack_up: Settings, component: str) -> None:
    url = metrics_address(stack_up, component)
    assert url is not None
    samples = scrape(url)
    assert any(k.startswith("process_") or k.startswith("python_") for k in samples), url


def test_an_activation_moves_the_activation_counter(
    stack_up: Settings, ow: OpenWhiskClient, unique: str
) -> None:
    url = metrics_address(stack_up, "records")
    assert url is not None
    before = successes(scrape(url))
    name = f"metrics-{unique}"
    ow.put_action(name, {"exec": {"kind": "python:3", "code": HELLO}}, overwrite=True)
    status, rec = ow.invoke(name, {}, blocking=True, result=False)
    assert status == 200, rec
    wait_for(lambda: successes(scrape(url)) > before, timeout_s=30, what="gleaner_activations_total to move")
    invoker = scrape(metrics_address(stack_up, "invoker0") or "")
    assert any(k.startswith("gleaner_permits_free_cores") for k in invoker)
    gateway = scrape(metrics_address(stack_up, "gateway") or "")
    assert any(k.startswith("gleaner_http_requests_total") and "'200'" in k for k in gateway)


@pytest.mark.xfail(
    reason="issue 21, open: after the fault tests (placement, invokers and the broker killed), a few "
    "dispatches stay owed past this test's 60 s even with the record look-up; not traced yet. "
    "It passes on a stack without those faults.",
    strict=False,
)
def test_placement_acknowledges_every_dispatch_after_a_burst(
    stack_up: Settings, ow: OpenWhiskClient, unique: str
) -> None:
    """Every activation placement sends is acknowledged once its completion appears: the
    unacknowledged count goes back to 0, and placement counts the invoker healthy."""
    url = metrics_address(stack_up, "placement")
    assert url is not None
    name = f"burst-{unique}"
    ow.put_action(name, {"exec": {"kind": "python:3", "code": HELLO}}, overwrite=True)
    for _ in range(20):
        status, _ = ow.invoke(name, {}, blocking=False, result=False)
        assert status == 202

    def owed() -> float:
        return scrape(url).get("gleaner_placement_unacknowledged[]", -1.0)

    wait_for(lambda: owed() == 0.0, timeout_s=60, what="gleaner_placement_unacknowledged back to 0")
    assert scrape(url).get("gleaner_placement_invokers_healthy[]", 0.0) >= 1
