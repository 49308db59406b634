"""One function through the real path: HTTP or Kafka -> Kafka -> placement ->
invoker agent -> cgroup-limited Docker container -> completion + CouchDB record."""

from __future__ import annotations

import textwrap
from typing import Any

import pytest

from gleaner.couchdb import CouchDB
from gleaner.gateway_client import ApiError, OpenWhiskClient
from gleaner.records import annotation
from tests.integration.conftest import TEST_NAMESPACE, stored_record, wait_for

pytestmark = pytest.mark.integration


def create(ow: OpenWhiskClient, name: str, code: str, **limits: Any) -> dict[str, Any]:
    body = {"exec": {"kind": "python:3", "code": textwrap.dedent(code)}, "limits": limits}
    return ow.put_action(name, body, overwrite=True)  # type: ignore[no-any-return]


def invoke(
    ow: OpenWhiskClient, name: str, params: dict[str, Any] | None = None
) -> tuple[int, dict[str, Any]]:
    return ow.invoke(name, params or {}, blocking=True, result=False)


HELLO = """
def main(args):
    print("hello from", args.get("name"))
    return {"greeting": "Hello " + args.get("name", "stranger")}
"""


def test_blocking_invoke_runs_in_a_limited_container_and_leaves_a_record(ow, couch: CouchDB, unique):
    name = f"hello-{unique}"
    create(ow, name, HELLO, cpu=0.5, memory=256)
    status, rec = invoke(ow, name, {"name": "Ada"})
    assert status == 200, rec
    assert rec["response"] == {
        "status": "success",
        "statusCode": 0,
        "success": True,
        "result": {"greeting": "Hello Ada"},
    }
    g = rec["gleaner"]
    assert g["allocation"] == {"cpu": 0.5, "memory": 256} and g["origin"] == "user"
    assert g["measured"]["samples"] >= 1 and g["measured"]["peak_memory"] > 0
    assert any("hello from Ada" in line and "stdout:" in line for line in rec["logs"])
    assert annotation(rec, "limits")["cpu"] == 0.5
    stored = stored_record(couch, rec["activationId"])
    assert stored["response"]["result"] == {"greeting": "Hello Ada"}
    assert ow.request("GET", f"/activations/{rec['activationId']}/result")[1]["result"] == {
        "greeting": "Hello Ada"
    }
    logs = ow.request("GET", f"/activations/{rec['activationId']}/logs")[1]["logs"]
    assert logs == rec["logs"]


def test_cold_then_warm(ow, unique):
    name = f"warm-{unique}"
    create(ow, name, HELLO)
    _, first = invoke(ow, name)
    _, second = invoke(ow, name)
    assert annotation(first, "initTime") is not None and first["gleaner"]["cold"] is True
    assert annotation(second, "initTime") is None and second["gleaner"]["cold"] is False
    assert second["gleaner"]["container"] == first["gleaner"]["container"]


def test_warm_container_is_resized_when_the_allocation_changes(ow, unique):
    name = f"resize-{unique}"
    create(ow, name, HELLO, cpu=0.5)
    _, first = invoke(ow, name)
    ow.put_action(name, {"limits": {"cpu": 1.0}}, overwrite=True)
    _, second = invoke(ow, name)
    assert second["gleaner"]["allocation"]["cpu"] == 1.0
    assert first["response"]["success"] and second["response"]["success"]


def test_non_blocking_invoke_and_listing(ow, couch, unique):
    name = f"async-{unique}"
    create(ow, name, HELLO)
    status, body = ow.invoke(name, {"name": "Bo"}, blocking=False, result=False)
    assert status == 202 and len(body["activationId"]) == 32
    stored = stored_record(couch, body["activationId"])
    assert stored["response"]["result"] == {"greeting": "Hello Bo"}
    listed = wait_for(lambda: ow.request("GET", "/activations", params={"name": name})[1], what="listing")
    assert body["activationId"] in [a["activationId"] for a in listed]
    assert all(a["name"] == name for a in listed) and "response" not in listed[0]
    _, result_only = ow.invoke(name, {"name": "Cy"}, blocking=True, result=True)
    assert result_only == {"greeting": "Hello Cy"}


CPU_HOG = """
import time
def main(args):
    end = time.time() + args.get("seconds", 1.5)
    n = 0
    while time.time() < end:
        n += 1
    return {"loops": n}
"""


def test_cpu_peak_respects_a_half_core_limit(ow, unique):
    name = f"hog-{unique}"
    create(ow, name, CPU_HOG, cpu=0.5, memory=128)
    status, rec = invoke(ow, name, {"seconds": 1.5})
    assert status == 200, rec
    measured = rec["gleaner"]["measured"]
    assert measured["cpu_limit"] == pytest.approx(0.5)  # the quota really landed in the cgroup
    assert 0.3 <= measured["peak_cpu"] <= 0.5 + 1e-6, measured
    # Unclamped, a window straddling two CFS periods can read above the quota,
    # but never a whole core.
    assert measured["peak_cpu_raw"] < 1.0, measured
    assert len(rec["gleaner"]["trajectory"]) > 5


MEMORY_HOG = """
def main(args):
    blocks = []
    for _ in range(args.get("mb", 600)):
        blocks.append(bytearray(1024 * 1024))
    return {"held": len(blocks)}
"""


def test_memory_limit_is_enforced_and_the_oom_kill_recorded(ow, unique):
    name = f"oom-{unique}"
    create(ow, name, MEMORY_HOG, memory=128)
    status, rec = invoke(ow, name, {"mb": 600})
    assert status == 502
    assert rec["response"]["statusCode"] == 2
    assert rec["gleaner"]["oom_killed"] is True
    assert "memory" in rec["response"]["result"]["error"]
    status, ok = invoke(ow, name, {"mb": 10})  # a new container serves the next call
    assert status == 200 and ok["response"]["result"] == {"held": 10}


CHILD_HOG = """
import subprocess, sys
def main(args):
    if not args.get("hog", True):
        return {"child_exit": None}
    child = subprocess.run([sys.executable, "-c", "b = bytearray(600 * 2**20)"])
    return {"child_exit": child.returncode}
"""


def test_a_child_process_killed_for_memory_is_recorded_as_an_oom(ow, unique):
    """The proxy survives a child's OOM kill and the function returns normally; the
    container's OOM counter grew during the run, so the record says what happened."""
    name = f"childoom-{unique}"
    create(ow, name, CHILD_HOG, memory=128)
    status, rec = invoke(ow, name)
    assert status == 502, rec
    assert rec["response"]["statusCode"] == 2
    assert rec["gleaner"]["oom_killed"] is True and rec["gleaner"]["oom_kills"] >= 1
    assert "killed for memory" in rec["response"]["result"]["error"]
    status, ok = invoke(ow, name, {"hog": False})  # a kill of an earlier run is not counted again
    assert status == 200 and ok["response"]["result"] == {"child_exit": None}
    assert ok["gleaner"]["oom_killed"] is False


def test_timeout_is_a_developer_error_with_the_annotation(ow, unique):
    name = f"slow-{unique}"
    create(ow, name, "import time\ndef main(args):\n    time.sleep(10)\n    return {}\n", timeout=1000)
    status, rec = invoke(ow, name)
    assert status == 502 and rec["response"]["statusCode"] == 2
    assert annotation(rec, "timeout") is True
    assert "time limits of 1000 milliseconds" in rec["response"]["result"]["error"]
    assert rec["duration"] < 5000


def test_a_raised_error_is_recorded_with_its_traceback(ow, unique):
    name = f"raise-{unique}"
    create(ow, name, "def main(args):\n    print('about to fail')\n    raise ValueError('bad input')\n")
    status, rec = invoke(ow, name)
    assert status == 502 and rec["response"]["statusCode"] == 2
    assert "ValueError" in rec["response"]["result"]["error"]
    assert any("about to fail" in line for line in rec["logs"])
    assert any("Traceback" in line for line in rec["logs"])


def test_returned_error_is_an_application_error(ow, unique):
    name = f"apperr-{unique}"
    create(ow, name, "def main(args):\n    return {'error': 'no such user'}\n")
    status, rec = invoke(ow, name)
    assert status == 502 and rec["response"]["statusCode"] == 1
    assert rec["response"]["status"] == "application error"


def test_zip_action_with_helper_module(ow, unique, tmp_path):
    import base64
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(
            "__main__.py", "from helper import double\ndef main(args):\n    return {'v': double(21)}\n"
        )
        z.writestr("helper.py", "def double(x):\n    return 2 * x\n")
    name = f"zip-{unique}"
    ow.put_action(
        name,
        {"exec": {"kind": "python:3", "code": base64.b64encode(buf.getvalue()).decode(), "binary": True}},
        overwrite=True,
    )
    status, rec = invoke(ow, name)
    assert status == 200 and rec["response"]["result"] == {"v": 42}


def test_action_crud(ow, unique):
    name = f"crud-{unique}"
    created = create(ow, name, HELLO, cpu=1.0, memory=512)
    assert created["version"] == "0.0.1" and created["limits"]["memory"] == 512
    with pytest.raises(ApiError) as err:
        ow.put_action(name, {"exec": {"kind": "python:3", "code": HELLO}}, overwrite=False)
    assert err.value.status == 409
    got = ow.request("GET", f"/actions/{name}")[1]
    assert got["exec"]["code"].strip() == HELLO.strip() and got["namespace"] == TEST_NAMESPACE
    assert name in [a["name"] for a in ow.request("GET", "/actions", params={"limit": 200})[1]]
    ow.request("DELETE", f"/actions/{name}")
    with pytest.raises(ApiError) as err:
        ow.request("GET", f"/actions/{name}")
    assert err.value.status == 404
