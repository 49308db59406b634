"""Register a workload on Gleaner: its actions, then its DAG, over the REST API.

    python -m workloads.deploy video-analytics parallel-aes   # or --all
    python -m workloads.deploy ml-pipeline --inputs /tmp/ml --n 100 --seed 0

A function kept as a directory becomes a zip action (``binary``): the directory's
files (``__main__.py`` first among them) plus the shared helpers of
``workloads/_shared`` (``cpu_quota.py``), at the top level of the archive, as the
OpenWhisk Python runtime expects. A single ``.py`` file is sent as plain source.
Zips are byte-for-byte reproducible (fixed timestamps, sorted names), so deploying
unchanged code again does not make a new action version.
"""

from __future__ import annotations

import argparse
import base64
import io
import sys
import zipfile
from pathlib import Path
from typing import Any

from composer.jsonio import to_json
from gleaner.gateway_client import OpenWhiskClient, Target
from workloads.catalog import WORKLOADS, FunctionSpec, Workload

SHARED = Path(__file__).resolve().parent / "_shared"
KIND = "python:3"
_EPOCH = (1980, 1, 1, 0, 0, 0)  # zip's earliest date: a fixed time makes zips reproducible


def _skip(path: Path) -> bool:
    return "__pycache__" in path.parts or path.suffix in (".pyc", ".pyo") or path.name.startswith(".")


def zip_function(source: Path) -> bytes:
    """The action zip of a function directory (plus the shared helpers)."""
    files: dict[str, bytes] = {p.name: p.read_bytes() for p in sorted(SHARED.glob("*.py"))}
    for path in sorted(source.rglob("*")):
        if path.is_file() and not _skip(path.relative_to(source)):
            files[path.relative_to(source).as_posix()] = path.read_bytes()
    if "__main__.py" not in files:
        raise ValueError(f"{source} has no __main__.py")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(files, key=lambda n: (n != "__main__.py", n)):
            info = zipfile.ZipInfo(name, _EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, files[name])
    return buf.getvalue()


def exec_of(spec: FunctionSpec) -> dict[str, Any]:
    """The action's ``exec`` document (OpenWhisk shape)."""
    if spec.source.is_dir():
        code = base64.b64encode(zip_function(spec.source)).decode("ascii")
        return {"kind": KIND, "code": code, "binary": True, "main": "main"}
    return {"kind": KIND, "code": spec.source.read_text(), "binary": False, "main": "main"}


def action_body(spec: FunctionSpec) -> dict[str, Any]:
    """The body of ``PUT /actions/<name>`` for one function, with its user allocation."""
    return {
        "exec": exec_of(spec),
        "limits": {"cpu": spec.cpu, "memory": spec.memory_mb, "timeout": spec.timeout_ms},
        "parameters": [{"key": k, "value": v} for k, v in spec.params.items()],
    }


def deploy_workload(client: OpenWhiskClient, workload: Workload) -> None:
    """Create or update every action of ``workload``, then its DAG (``PUT /dags/<name>``)."""
    for spec in workload.functions:
        client.put_action(spec.name, action_body(spec), overwrite=True)
    client.request(
        "PUT",
        f"/dags/{workload.name}",
        json={"composition": to_json(workload.dag)},
        params={"overwrite": "true"},
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workloads.deploy", description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", help=f"workloads to deploy: {', '.join(WORKLOADS)}")
    parser.add_argument("--all", action="store_true", help="deploy every workload")
    parser.add_argument("--apihost", help="default: ~/.wskprops APIHOST")
    parser.add_argument("--auth", help="default: ~/.wskprops AUTH")
    parser.add_argument("--inputs", type=Path, help="also write generated inputs to DIR/<workload>/")
    parser.add_argument("--n", type=int, default=100, help="how many inputs (default 100)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-deploy", action="store_true", help="only generate inputs")
    opts = parser.parse_args(argv)
    names = list(WORKLOADS) if opts.all else opts.names
    unknown = [n for n in names if n not in WORKLOADS]
    if not names or unknown:
        parser.error(f"name one or more of {', '.join(WORKLOADS)} (or --all)")
    client = None if opts.no_deploy else OpenWhiskClient(Target.resolve(opts.apihost, opts.auth))
    try:
        for name in names:
            workload = WORKLOADS[name]
            if client is not None:
                deploy_workload(client, workload)
                print(f"{name}: {len(workload.functions)} actions and the DAG deployed")
            if opts.inputs is not None:
                paths = workload.generate_inputs(opts.n, opts.seed, opts.inputs / name)
                print(f"{name}: {len(paths)} inputs in {opts.inputs / name}")
    finally:
        if client is not None:
            client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
