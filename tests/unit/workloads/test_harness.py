"""workloads/harness.py, which runs one action the way the runtime does, in process with a
stand-in action proxy: a failed init runs nothing, the runs answer in order with their
timings, and the output file appears whole. (tests/unit/workloads/test_functions.py runs
it for real, in a subprocess, through workloads.local.)"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from workloads import harness

PROXY = """
import json

class Action:
    def init(self, message):
        code = message["value"]["code"]
        if code == "bad":
            return 502, json.dumps({"error": "cannot init"})
        self.code = code
        return 200, json.dumps({"ok": True})

    def run(self, message):
        value = message["value"]
        if "fail" in value:
            return 502, json.dumps({"error": "failed"})
        return 200, json.dumps({"code": self.code, "value": value, "name": message["action_name"]})
"""


@pytest.fixture()
def proxy(tmp_path: Path) -> str:
    path = tmp_path / "actionproxy.py"
    path.write_text(PROXY)
    return str(path)


def test_a_failed_init_is_answered_and_nothing_runs(proxy: str) -> None:
    out = harness.run(proxy, {"init": {"code": "bad"}, "runs": [{"n": 1}]})  # type: ignore[no-untyped-call]
    assert out["init"]["status"] == 502 and out["init"]["body"] == {"error": "cannot init"}
    assert out["runs"] == [] and "peak_rss_mb" not in out


def test_each_run_answers_in_order_with_its_status_body_and_times(proxy: str) -> None:
    out = harness.run(proxy, {"name": "f", "init": {"code": "c"}, "runs": [{"n": 1}, {"fail": 1}, {"n": 2}]})  # type: ignore[no-untyped-call]
    assert out["init"]["status"] == 200
    assert [(r["status"], r["body"]) for r in out["runs"]] == [
        (200, {"code": "c", "value": {"n": 1}, "name": "f"}),
        (502, {"error": "failed"}),
        (200, {"code": "c", "value": {"n": 2}, "name": "f"}),
    ]
    assert all(r["seconds"] >= 0 and r["cpu_seconds"] >= 0 for r in out["runs"])
    assert out["peak_rss_mb"] > 0


def test_main_reads_the_request_and_writes_the_answer_whole(
    proxy: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    request, out = tmp_path / "req.json", tmp_path / "out.json"
    request.write_text(json.dumps({"init": {"code": "c"}, "runs": [{"n": 3}]}))
    argv = ["harness.py", "--proxy", proxy, "--request", str(request), "--out", str(out)]
    monkeypatch.setattr(sys, "argv", argv)
    harness.main()  # type: ignore[no-untyped-call]
    assert json.loads(out.read_text())["runs"][0]["body"]["value"] == {"n": 3}
    assert not (tmp_path / "out.json.part").exists()


def test_main_needs_the_proxy_the_request_and_the_output(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["harness.py", "--proxy", "p", "--request", "r"])
    with pytest.raises(SystemExit) as exc:
        harness.main()  # type: ignore[no-untyped-call]
    assert exc.value.code == 2
