"""What a plain install (``pip install -e .``, no extras) must be able to do: import the
``gleaner eval``/``replay``/``profile``/``train``/``dag`` paths, read a user's own input
folder, and load a built-in workload only when it is named.

Run as ``python -m tests.plain_install --state-dir DIR [--block m1,m2]`` from the repo's
root; it prints one JSON report that the tests check:

- tests/unit/gleaner/test_plain_install.py runs it in this venv with the extras' modules
  blocked (``--block``: a ``sys.meta_path`` finder that says they are not installed);
- tests/integration/test_plain_install.py runs it in a fresh venv with a plain install.

Only the standard library and the project at module level: the probe itself must import
where the extras (pytest among them) are missing. :func:`extras_only_modules` is for the
test side, which has the dev extra.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.metadata as metadata
import importlib.util
import io
import json
import pkgutil
import re
import sys
import tomllib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

# The packages the commands' code lives in, imported whole (their function-level imports
# too: every module of these packages is imported, not only the commands' own).
PACKAGES = ("gleaner", "benchmarks.evaluation", "streams.replay", "predictor", "monitor", "composer")
# The commands a user runs on their own DAG; `--help` builds each one's parser.
COMMANDS = ("eval", "replay", "trace", "profile", "train", "dag")
OWN_DAG = "my-dag"  # not a built-in workload


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _closure(requirements: Iterable[str]) -> set[str]:
    """The installed distributions these requirements pull in, transitively (normalised names)."""
    from packaging.requirements import Requirement  # test side only

    seen: set[str] = set()
    todo = list(requirements)
    while todo:
        req = Requirement(todo.pop())
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue  # an optional extra of that dependency, or another platform's
        name = _normal(req.name)
        if name in seen:
            continue
        try:
            dist = metadata.distribution(req.name)
        except metadata.PackageNotFoundError:
            continue
        seen.add(name)
        todo.extend(dist.requires or [])
    return seen


def extras_only_modules(pyproject: Path) -> set[str]:
    """Top-level modules installed only because of pyproject.toml's extras (cv2, lightgbm,
    pyaes, pytest, hypothesis...): what a plain install lacks, from this venv's metadata."""
    project = tomllib.loads(pyproject.read_text())["project"]
    base = _closure(project["dependencies"])
    extras = _closure(r for reqs in project["optional-dependencies"].values() for r in reqs)
    modules = set()
    for module, dists in metadata.packages_distributions().items():
        names = {_normal(d) for d in dists}
        if names & extras and not names & base and module.isidentifier():
            modules.add(module)
    return modules


class Blocker:
    """A meta-path finder that makes these top-level modules unimportable, as if not installed."""

    def __init__(self, names: Iterable[str]) -> None:
        self.names = frozenset(names)

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if name.partition(".")[0] in self.names:
            raise ModuleNotFoundError(
                f"No module named {name!r} (blocked: not in a plain install)", name=name
            )
        return None


def _import_all(packages: Sequence[str]) -> list[str]:
    imported = []
    for name in packages:
        package = importlib.import_module(name)
        imported.append(name)
        for info in pkgutil.walk_packages(package.__path__, f"{name}."):
            if info.name.rpartition(".")[2] == "__main__":
                continue  # `python -m` entry points run the CLI when imported
            importlib.import_module(info.name)
            imported.append(info.name)
    return imported


def _help_exit(argv: list[str]) -> tuple[int, str]:
    from gleaner.cli.main import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            code: int | str | None = main(argv)
        except SystemExit as exc:
            code = exc.code
    return int(code or 0), out.getvalue()


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # blocked
        return False


def _workload_modules() -> list[str]:
    return sorted(m for m in sys.modules if re.fullmatch(r"workloads\.\w+\.(workload|inputs)", m))


def probe(state_dir: Path, extras: Iterable[str]) -> dict[str, Any]:
    """Import the commands' code and run their input steps on a user's own DAG, then name
    built-in workloads; report what was imported along the way."""
    extras = sorted(extras)
    report: dict[str, Any] = {"importable_extras": [m for m in extras if _importable(m)]}
    report["imported"] = _import_all(PACKAGES)
    helps = {command: _help_exit([command, "--help"]) for command in COMMANDS}
    report["help_exit"] = {command: code for command, (code, _) in helps.items()}
    report["eval_help_has_input_dir"] = "--input-dir" in helps["eval"][1]

    from benchmarks.evaluation.run import _inputs
    from gleaner.cli.main import build_parser
    from gleaner.settings import load_settings
    from workloads.catalog import input_files

    settings = load_settings(state_dir=state_dir)
    folder = state_dir / "my-inputs"
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(3):
        (folder / f"input-{i:03d}.json").write_text(json.dumps({"n": i}))
    args = build_parser().parse_args(["eval", OWN_DAG, "--input-dir", str(folder)])
    files, builtin = _inputs(args, OWN_DAG, settings, args.requests, args.seed)
    report["eval_inputs"] = [p.name for p in files]
    report["eval_builtin"] = builtin
    args = build_parser().parse_args(["profile", OWN_DAG, "--input-dir", str(folder)])
    report["profile_inputs"] = [p.name for p in input_files(args, OWN_DAG, settings.state_dir)]
    report["workloads_before_naming"] = _workload_modules()

    from workloads.catalog import WORKLOADS

    report["catalog_names"] = list(WORKLOADS)
    report["catalog_loaded_by_names"] = WORKLOADS.loaded()
    aes = WORKLOADS["parallel-aes"]
    report["named_aes"] = {"functions": len(aes.functions), "modules": _workload_modules()}
    video = WORKLOADS["video-analytics"]
    report["named_video"] = {"functions": len(video.functions), "modules": _workload_modules()}
    try:
        video.generate_inputs(1, 1, state_dir / "video")
        report["video_inputs_error"] = None
    except Exception as exc:  # the error a user sees; an installed OpenCV makes it None
        report["video_inputs_error"] = f"{type(exc).__name__}: {exc}"
    report["extras_imported"] = sorted(m for m in extras if m in sys.modules)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--block", default="", help="comma-separated top-level modules to make unimportable")
    parser.add_argument("--extras", default="", help="comma-separated modules only the extras install")
    opts = parser.parse_args(argv)
    blocked = [m for m in opts.block.split(",") if m]
    if blocked:
        sys.meta_path.insert(0, Blocker(blocked))
    extras = {m for m in (opts.extras or opts.block).split(",") if m}
    print(json.dumps(probe(opts.state_dir, extras)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
