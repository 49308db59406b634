"""``gleaner bench skew``: how skewed each workload's parallel stage really is.

Runs each built-in workload on a few of its generated inputs at the user
allocations (harvesting off), and reports per request the parallel stage's
skew = longest / shortest function run time (the invoker's /run round trip),
as ORION measured it. Draws one request's timeline per workload as a PNG.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path
from typing import Any

import orjson
from tqdm import tqdm

from benchmarks.report import write_section
from gleaner.gateway_client import OpenWhiskClient, Target
from gleaner.settings import load_settings
from monitor.timeline import draw_timeline


def _children(client: OpenWhiskClient, rec: dict[str, Any]) -> list[dict[str, Any]]:
    return [client.request("GET", f"/activations/{aid}")[1] for aid in rec["logs"]]


def measure(client: OpenWhiskClient, name: str, inputs: list[Path], img_dir: Path) -> dict[str, Any]:
    skews: list[float] = []
    straggler: dict[str, int] = {}
    shown = None
    for path in tqdm(inputs, desc=name, unit="req"):
        status, rec = client.request(
            "POST",
            f"/dags/{name}",
            json=orjson.loads(path.read_bytes()),
            params={"blocking": "true", "harvest": "false"},
            ok=(200, 202, 500, 502),
        )
        if status != 200:
            continue
        children = _children(client, rec)
        stage = next(s for s in rec["gleaner"]["dag"]["stages"] if s["kind"] == "parallel")
        ids = {f["activation_id"] for f in stage["functions"]}
        runs = {c["name"]: float(c["gleaner"]["run_ms"]) for c in children if c["activationId"] in ids}
        skews.append(max(runs.values()) / max(min(runs.values()), 1.0))
        slowest = max(runs, key=lambda k: runs[k])
        straggler[slowest] = straggler.get(slowest, 0) + 1
        shown = (rec, children)
    png = img_dir / f"timeline-{name}.png"
    if shown:
        draw_timeline(shown[0], shown[1], png, title=f"{name} at user allocations")
    return {"name": name, "n": len(skews), "skews": skews, "straggler": straggler, "png": png}


def main(args: argparse.Namespace) -> int:
    from workloads.catalog import WORKLOADS

    settings = load_settings()
    client = OpenWhiskClient(Target.resolve(None, None))
    out = Path(args.out)
    rows = []
    for name, workload in WORKLOADS.items():
        inputs = workload.generate_inputs(
            args.inputs, args.seed, settings.state_dir / "inputs" / name / f"seed{args.seed}"
        )
        rows.append(measure(client, name, inputs, out.parent / "img"))
    lines = [
        "## Skew of the workloads' parallel stages (issue 3)",
        "",
        f"{args.inputs} generated inputs per workload (seed {args.seed}), user allocations, harvesting off.",
        "Skew = longest / shortest function run time in the parallel stage, per request.",
        "",
        "| workload | requests | skew median | skew min / max | slowest function (requests) |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        if not r["skews"]:
            lines.append(f"| {r['name']} | 0 | - | - | - |")
            continue
        lines.append(
            f"| {r['name']} | {r['n']} | {statistics.median(r['skews']):.1f}x "
            f"| {min(r['skews']):.1f}x / {max(r['skews']):.1f}x | {r['straggler']} |"
        )
    lines.append("")
    lines += [f"![{r['name']} timeline](img/{r['png'].name})" for r in rows if r["skews"]]
    text = "\n".join(lines)
    print(text)
    write_section(out, "skew", text)
    return 0
