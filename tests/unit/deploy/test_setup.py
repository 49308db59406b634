"""deploy/setup.sh and the Makefile: `make demo` installs what the demo needs, `make test`
adds what only the tests need (read with ``setup.sh --list``, which changes nothing)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
SETUP = ROOT / "deploy" / "setup.sh"
TEST_ONLY = {"apt chromium", "npm openwhisk@3"}


def planned(*flags: str) -> set[str]:
    out = subprocess.run(["bash", str(SETUP), "--list", *flags], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return set(out.stdout.splitlines())


def test_the_demo_setup_leaves_out_the_test_only_parts() -> None:
    demo = planned()
    assert {"apt docker.io", "apt redis-server", "apt debootstrap", "apt npm", "npm pouchdb-server@4"} <= demo
    assert not demo & TEST_ONLY


def test_the_test_setup_adds_chromium_and_the_openwhisk_client() -> None:
    demo, tests = planned(), planned("--test")
    assert tests - demo == TEST_ONLY and demo <= tests


def test_an_unknown_flag_is_refused_before_anything_runs() -> None:
    out = subprocess.run(["bash", str(SETUP), "--tests"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 2 and "usage: deploy/setup.sh" in out.stderr


def _rules(makefile: str) -> dict[str, tuple[list[str], list[str]]]:
    """target -> (prerequisites, recipe lines)."""
    rules: dict[str, tuple[list[str], list[str]]] = {}
    target = ""
    for line in makefile.splitlines():
        if line.startswith("\t") and target:
            rules[target][1].append(line.strip())
        elif m := re.match(r"^([\w-]+):(?!=)(.*)$", line):
            target = m.group(1)
            rules[target] = (m.group(2).split(), [])
        else:
            target = ""
    return rules


def test_make_demo_runs_the_plain_setup_and_make_test_the_test_setup() -> None:
    rules = _rules((ROOT / "Makefile").read_text())
    assert rules["setup"][1] == ["@bash deploy/setup.sh"]
    assert rules["setup-test"][1] == ["@bash deploy/setup.sh --test"]
    assert rules["demo"][0] == ["setup"] and rules["up"][0] == ["setup"]
    assert "setup-test" in rules["test"][0] and "setup" not in rules["test"][0]
    assert "make test" in (ROOT / ".ci" / "run").read_text()  # CI gets the test setup through it
