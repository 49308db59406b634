"""``make demo`` in a reduced form on the running stack: deploy the skewed DAG,
profile 5 inputs, train, run one request harvesting off and on, and draw the
timeline. Asserts the table and the PNG, never the speedup's value."""

from __future__ import annotations

import math

import pytest

from gleaner.cli.demo import demo_flow

pytestmark = pytest.mark.integration


def test_the_demo_profiles_trains_and_shows_one_request_off_and_on(stack_up, ow, tmp_path):
    said: list[str] = []
    result = demo_flow(
        ow, stack_up, profile_inputs=5, run_inputs=1, out_dir=tmp_path, progress=False, say=said.append
    )
    assert [d[0] for d in result.durations] == ["deploy", "profile", "train", "off", "on", "timeline"]
    assert any("== profile it on 5 inputs" in line for line in said)
    [pair] = result.pairs
    assert math.isfinite(pair.off_ms) and math.isfinite(pair.on_ms), pair
    assert result.applied and result.policy == stack_up.harvest_policy, said[-1]
    header, _, row, *_ = result.table.splitlines()
    assert header.split()[0] == "request" and row.split()[0] == "1" and row.split()[-1] != "-"
    assert result.timeline.parent == tmp_path and result.timeline.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
