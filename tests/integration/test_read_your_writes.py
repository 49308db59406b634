"""Read-your-writes: an activation a blocking invoke (or a DAG request) has just
answered is listed by the very next ``GET /activations``, before the record sink has
written it to CouchDB. Driven by the official npm client, as a user would, and by HTTP."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from composer import dag_document, sequence
from gleaner.gateway_client import OpenWhiskClient
from tests.integration.conftest import TEST_AUTH

pytestmark = pytest.mark.integration
SCRIPT = Path(__file__).parent / "js" / "openwhisk_read_your_writes.js"
INC = "def main(args):\n    return {'n': args.get('n', 0) + 1}\n"


@pytest.fixture()
def action_and_dag(ow: OpenWhiskClient, unique: str) -> tuple[str, str]:
    action, dag = f"ryw-{unique}", f"ryw-dag-{unique}"
    ow.put_action(action, {"exec": {"kind": "python:3", "code": INC}}, overwrite=True)
    body = dag_document(sequence(action, action))
    ow.request("PUT", f"/dags/{dag}", json=body, params={"overwrite": "true"})
    return action, dag


def test_npm_client_lists_the_activation_it_just_got(stack_up, action_and_dag, tmp_path):
    modules = stack_up.state_dir / "npm" / "node_modules"
    assert (modules / "openwhisk").exists(), "deploy/setup.sh installs the openwhisk npm client"
    node = shutil.which("node")
    assert node, "node is needed for this test"
    # The test namespace's key (the fixtures made its actions), not the user's ~/.wskprops.
    props = tmp_path / "wskprops"
    props.write_text(f"APIHOST={stack_up.api_host}\nAUTH={TEST_AUTH}\n")
    action, dag = action_and_dag
    out = subprocess.run(
        [node, str(SCRIPT), action, dag],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "NODE_PATH": str(modules), "WSK_CONFIG_FILE": str(props)},
        check=False,
    )
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout)
    assert seen["action"]["result"] == {"n": 2} and seen["dag"]["result"] == {"n": 3}
    for key in ("action", "dag"):
        assert seen[key]["id"] in seen[key]["listed"], (key, seen[key])
        assert seen[key]["id"] in seen[key]["named"], (key, seen[key])
    # The DAG's own record, and not its children's under its name.
    assert seen["action"]["id"] not in seen["dag"]["named"]


def test_http_dag_request_is_listed_at_once(ow: OpenWhiskClient, action_and_dag):
    _, dag = action_and_dag
    status, record = ow.request("POST", f"/dags/{dag}", json={"n": 5}, params={"blocking": "true"})
    assert status == 200 and record["response"]["result"] == {"n": 7}
    _, listed = ow.request("GET", "/activations", params={"limit": "50"})
    _, named = ow.request("GET", "/activations", params={"name": dag, "limit": "50"})
    _, docs = ow.request("GET", "/activations", params={"name": dag, "limit": "1", "docs": "true"})
    assert record["activationId"] in [a["activationId"] for a in listed]
    assert record["activationId"] in [a["activationId"] for a in named]
    (newest,) = docs
    assert newest["activationId"] == record["activationId"] and newest["response"]["result"] == {"n": 7}
