"""``python -m gleaner`` (gleaner/__main__.py, how deploy/procs.py starts every component)
runs the CLI's main and exits with its code."""

from __future__ import annotations

import runpy

import pytest

import gleaner.cli.main


@pytest.mark.parametrize("code", [0, 3])
def test_python_m_gleaner_exits_with_the_clis_code(monkeypatch: pytest.MonkeyPatch, code: int) -> None:
    calls: list[None] = []

    def main() -> int:
        calls.append(None)
        return code

    monkeypatch.setattr(gleaner.cli.main, "main", main)
    with pytest.raises(SystemExit) as exc:
        runpy.run_module("gleaner", run_name="__main__")
    assert exc.value.code == code and len(calls) == 1
