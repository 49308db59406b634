"""Run workload functions, or a whole DAG, on this machine without the platform.

Each call starts a fresh interpreter running ``workloads/harness.py``, which loads the
function's deployable code (the same zip ``workloads/deploy.py`` uploads) through the
real action proxy's ``Action.init``/``Action.run``: the function runs exactly as in a
Gleaner container (as ``__main__``, from the extracted zip, logs captured), only
without HTTP. :func:`run_in_container` does the same inside a container of a runtime
image with a CPU and memory limit, to time a function at an allocation.

Used by the unit tests (on the host's copies of the libraries, the ``workloads``
extra) and by measurements; the DAG runner follows Composer's semantics (a parallel
stage's output is ``{"value": [branch outputs in order]}``).
"""

from __future__ import annotations

import importlib.resources
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from composer.model import Action, Map, Node, Parallel, Sequence
from gleaner.settings import Settings
from workloads.catalog import FunctionSpec, Workload
from workloads.deploy import exec_of

HARNESS = Path(__file__).resolve().with_name("harness.py")
CONTAINER_PROXY = "/action/actionproxy.py"  # where the runtime image keeps it


class FunctionFailed(RuntimeError):
    def __init__(self, name: str, detail: Any, logs: list[str]) -> None:
        tail = "\n".join(logs[-20:])
        super().__init__(f"{name} failed: {detail}\n{tail}")
        self.detail = detail
        self.logs = logs


@dataclass(frozen=True)
class Run:
    name: str
    result: dict[str, Any]
    seconds: float  # the /run call, as the proxy serves it
    init_seconds: float  # loading the code (imports included), once per process
    logs: list[str] = field(default_factory=list)
    cpu_seconds: float = 0.0  # CPU time of the run, the action's worker processes included
    peak_rss_mb: float = 0.0  # of the whole process (every run), or of its largest worker


def proxy_path() -> Path:
    return Path(str(importlib.resources.files("invoker_agent.runtime") / "actionproxy.py"))


def _request(spec: FunctionSpec, args_list: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "name": spec.name,
        "init": exec_of(spec),
        # OpenWhisk merges the action's default parameters under the invocation's.
        "runs": [{**spec.params, **args} for args in args_list],
    }


def _parse(spec: FunctionSpec, out: dict[str, Any]) -> list[Run]:
    init = out["init"]
    if init["status"] != 200:
        raise FunctionFailed(spec.name, init["body"].get("error"), init["body"].get("logs", []))
    runs = []
    for r in out["runs"]:
        body = r["body"]
        if r["status"] != 200:
            raise FunctionFailed(spec.name, body.get("error"), body.get("logs", []))
        result = body["result"]
        if isinstance(result, dict) and "error" in result:
            raise FunctionFailed(spec.name, result["error"], body.get("logs", []))
        logs = body.get("logs", [])
        cpu, rss = r.get("cpu_seconds", 0.0), out.get("peak_rss_mb", 0.0)
        runs.append(Run(spec.name, result, r["seconds"], init["seconds"], logs, cpu, rss))
    return runs


def run_function(
    spec: FunctionSpec,
    args: dict[str, Any],
    *,
    repeat: int = 1,
    python: str = sys.executable,
    timeout_s: float = 900.0,
) -> list[Run]:
    """Run ``spec``'s ``main`` on ``args`` ``repeat`` times in one fresh process (the
    first run is the cold one, the others warm)."""
    with tempfile.TemporaryDirectory(prefix="gleaner-fn-") as tmp:
        req, out = Path(tmp) / "request.json", Path(tmp) / "out.json"
        req.write_text(json.dumps(_request(spec, [args] * repeat)))
        cmd = [python, str(HARNESS), "--proxy", str(proxy_path()), "--request", str(req), "--out", str(out)]
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, env=env)
        if proc.returncode != 0 or not out.exists():
            raise FunctionFailed(spec.name, f"harness exited {proc.returncode}", proc.stderr.splitlines())
        return _parse(spec, json.loads(out.read_text()))


def call(spec: FunctionSpec, args: dict[str, Any]) -> dict[str, Any]:
    """``spec``'s result for ``args`` (one cold run)."""
    return run_function(spec, args)[0].result


def run_dag(workload: Workload, args: dict[str, Any]) -> tuple[dict[str, Any], list[Run]]:
    """The DAG's final output and every function run, in execution order.

    Parallel branches run one after the other here (each on the whole machine); the
    data flow is Composer's: every branch gets the same input, and the stage's output
    is ``{"value": [branch outputs in branch order]}``.
    """
    trace: list[Run] = []

    def go(node: Node, value: dict[str, Any]) -> dict[str, Any]:
        if isinstance(node, Action):
            run = run_function(workload.function(node.name), value)[0]
            trace.append(run)
            return run.result
        if isinstance(node, Sequence):
            for step in node.steps:
                value = go(step, value)
            return value
        if isinstance(node, Parallel):
            return {"value": [go(branch, value) for branch in node.branches]}
        if isinstance(node, Map):
            return {"value": [go(node.body, item) for item in value.get("value", [])]}
        raise TypeError(f"unknown node {node!r}")

    return go(workload.dag, args), trace


def run_in_container(
    settings: Settings,
    image: str,
    spec: FunctionSpec,
    args: dict[str, Any],
    *,
    cpus: float,
    memory_mb: int | None = None,
    repeat: int = 1,
) -> list[Run]:
    """Like :func:`run_function`, inside a container of ``image`` (a workload runtime
    image) limited like ``docker run --cpus <cpus> --memory <memory_mb>m``, so the
    function sees that CPU quota in its cgroup."""
    import docker.errors

    from deploy.services import docker_client

    memory = memory_mb or spec.memory_mb
    with tempfile.TemporaryDirectory(prefix="gleaner-fn-") as tmp:
        Path(tmp, "request.json").write_text(json.dumps(_request(spec, [args] * repeat)))
        Path(tmp, "harness.py").write_bytes(HARNESS.read_bytes())
        command = ["python3", "/w/harness.py", "--proxy", CONTAINER_PROXY]
        command += ["--request", "/w/request.json", "--out", "/w/out.json"]
        client = docker_client(settings, timeout=1800)
        try:
            client.containers.run(
                image,
                command,
                nano_cpus=int(cpus * 1e9),
                mem_limit=f"{memory}m",
                memswap_limit=f"{memory}m",
                network_mode="none",
                volumes={tmp: {"bind": "/w", "mode": "rw"}},
                remove=True,
                stderr=True,
            )
        except docker.errors.ContainerError as exc:
            detail = f"container exited {exc.exit_status}"
            if exc.exit_status == 137:
                detail += f" (killed: out of memory at {memory} MB?)"
            stderr = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else ""
            raise FunctionFailed(spec.name, detail, stderr.splitlines()) from exc
        except docker.errors.DockerException as exc:
            raise FunctionFailed(spec.name, f"docker: {exc}", []) from exc
        finally:
            client.close()
        return _parse(spec, json.loads(Path(tmp, "out.json").read_text()))
