"""The official OpenWhisk npm client works against Gleaner, configured from ~/.wskprops."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
SCRIPT = Path(__file__).parent / "js" / "openwhisk_client.js"


def test_openwhisk_npm_client_creates_invokes_and_reads(stack_up):
    modules = stack_up.state_dir / "npm" / "node_modules"
    assert (modules / "openwhisk").exists(), "make test (deploy/setup.sh --test) installs it"
    node = shutil.which("node")
    assert node, "node is needed for this test"
    name = f"npm-{uuid.uuid4().hex[:8]}"
    out = subprocess.run(
        [node, str(SCRIPT), name],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "NODE_PATH": str(modules)},
        check=False,
    )
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout)
    assert seen["created"]["name"] == name and seen["created"]["exec"]["kind"] == "python:3"
    assert seen["activation"]["response"]["result"] == {"greeting": "hello npm"}
    assert seen["result"] == {"greeting": "hello again"}
    assert seen["fetched"]["activationId"] == seen["activation"]["activationId"]
    assert any("npm says hi" in line for line in seen["logs"]["logs"])
    assert name in seen["listed"]
