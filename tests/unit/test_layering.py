"""The import floors (docs/architecture.md, ``[tool.importlinter]`` in pyproject.toml) hold on
the project, every module stands on a floor, and the same kinds of contract do break: on a
tiny package with an import that runs up a floor, across independent siblings, or from the
pure domain to an adapter."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# lint-imports, run by this very interpreter (the venv's), so it needs nothing on PATH.
LINT = "from importlinter.cli import lint_imports_command; lint_imports_command()"

TOY_CONTRACTS = """
[tool.importlinter]
root_packages = ["house"]

[[tool.importlinter.contracts]]
name = "Floors only go down"
type = "layers"
layers = ["house.cli", "house.gateway | house.invoker", "house.domain", "house.kernel"]

[[tool.importlinter.contracts]]
name = "The pure domain does no platform I/O"
type = "forbidden"
source_modules = ["house.domain"]
forbidden_modules = ["house.kernel.store"]

[[tool.importlinter.contracts]]
name = "No import cycles"
type = "acyclic_siblings"
ancestors = ["house"]
"""

# What each module of the toy house imports when it keeps to its floor.
TOY_HOUSE = {
    "cli": "from house import gateway, invoker",
    "gateway": "from house import domain",
    "invoker": "from house import domain",
    "domain": "from house.kernel import settings",
    "kernel/settings": "",
    "kernel/store": "from house.kernel import settings",
}


def lint(cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", LINT, "--no-cache", "--no-logo"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def build_house(root: Path, **wrong: str) -> Path:
    """The toy house under ``root``, with ``wrong`` imports added to the modules named."""
    (root / "pyproject.toml").write_text(TOY_CONTRACTS)
    for package in ("house", "house/kernel"):
        (root / package).mkdir(parents=True, exist_ok=True)
        (root / package / "__init__.py").write_text("")
    for module, imports in TOY_HOUSE.items():
        extra = wrong.get(module.replace("/", "_"), "")
        (root / "house" / f"{module}.py").write_text(f"{imports}\n{extra}\n")
    return root


def test_the_toy_house_that_keeps_to_its_floors_is_kept(tmp_path: Path) -> None:
    result = lint(build_house(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 kept, 0 broken" in result.stdout


# A wrong import -> what the broken contract says.
WRONG = {
    "kernel-imports-the-roof": ({"kernel_settings": "from house import cli"}, "house.kernel", "house.cli"),
    "domain-imports-a-service": ({"domain": "import house.gateway"}, "house.domain", "house.gateway"),
    "independent-siblings": ({"gateway": "from house import invoker"}, "house.gateway", "house.invoker"),
    "domain-imports-a-store": (
        {"domain": "from house.kernel import store"},
        "house.domain",
        "house.kernel.store",
    ),
}


@pytest.mark.parametrize("case", list(WRONG))
def test_an_import_against_the_floors_breaks_a_contract(tmp_path: Path, case: str) -> None:
    wrong, importer, imported = WRONG[case]
    broken = f"{importer} is not allowed to import {imported}"
    result = lint(build_house(tmp_path, **wrong))
    assert result.returncode != 0
    assert broken in result.stdout, result.stdout + result.stderr


def test_the_projects_floors_are_kept() -> None:
    result = lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 kept, 0 broken" in result.stdout


def floors() -> list[str]:
    """Every module named on a floor of the project's layers contract."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (layers,) = [c["layers"] for c in config["contracts"] if c["type"] == "layers"]
    return [name.strip() for layer in layers for name in layer.replace("|", ":").split(":")]


def test_every_module_stands_on_a_floor() -> None:
    """A module on no floor would be free to import anything: a new one must be placed."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    placed = floors()
    unplaced = []
    for package in config["root_packages"]:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            on_a_floor = any(module == f or module.startswith(f + ".") for f in placed)
            if module != package and not on_a_floor:
                unplaced.append(module)
    assert unplaced == [], f"modules on no floor of [tool.importlinter] in pyproject.toml: {unplaced}"
