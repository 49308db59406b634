"""``gleaner dag ...``: deploy, read and invoke DAGs, and draw a request's timeline."""

from __future__ import annotations

import argparse
import json
import runpy
from pathlib import Path
from typing import Any

from composer import Node, dag_document
from composer.model import Action, Map, Parallel, Sequence
from gleaner.cli.wsk import param_flags, params_from, print_json, target_flags
from gleaner.errors import GleanerError
from gleaner.gateway_client import OpenWhiskClient, Target


def load_dag_file(path: Path) -> Any:
    """The JSON body for a DAG file: Composer JSON (``compose DAG.js > DAG.json``),
    Gleaner's document, or a Python file that defines ``DAG`` with the DSL."""
    if not path.exists():
        raise GleanerError(f"file {path} does not exist")
    if path.suffix == ".py":
        dag = runpy.run_path(str(path)).get("DAG")
        if not isinstance(dag, Action | Sequence | Parallel | Map):
            raise GleanerError(f"{path} must define DAG = sequence(...) (from composer import ...)")
        node: Node = dag
        return dag_document(node)
    try:
        return json.loads(path.read_text())
    except ValueError as exc:
        raise GleanerError(f"{path} is not valid JSON: {exc}") from exc


def _client(args: argparse.Namespace) -> OpenWhiskClient:
    return OpenWhiskClient(Target.resolve(args.apihost, args.auth))


def dag_put(args: argparse.Namespace, overwrite: bool) -> int:
    body = load_dag_file(Path(args.file))
    params = {"overwrite": str(overwrite).lower()}
    if args.slo is not None:
        params["slo_ms"] = str(args.slo)
    _, doc = _client(args).request("PUT", f"/dags/{args.name}", json=body, params=params)
    a = doc["analysis"]
    print(
        f"ok: {'updated' if overwrite else 'created'} DAG {args.name} "
        f"(depth {a['depth']}, width {a['width']}, parallel stages {a['parallel_stages']})"
    )
    return 0


def dag_simple(args: argparse.Namespace) -> int:
    client = _client(args)
    if args.verb == "get":
        print_json(client.request("GET", f"/dags/{args.name}")[1])
    elif args.verb == "delete":
        client.request("DELETE", f"/dags/{args.name}")
        print(f"ok: deleted DAG {args.name}")
    else:
        print("dags")
        for d in client.request("GET", "/dags")[1]:
            a = d.get("analysis", {})
            print(f"/{d['namespace']}/{d['name']:<36} depth {a.get('depth')} width {a.get('width')}")
    return 0


def dag_invoke(args: argparse.Namespace) -> int:
    client = _client(args)
    blocking = args.blocking or args.result
    params: dict[str, str] = {"blocking": str(blocking).lower(), "result": str(args.result).lower()}
    if args.harvest is not None:
        params["harvest"] = str(args.harvest).lower()
    if args.policy is not None:
        params["policy"] = args.policy
    status, body = client.request(
        "POST", f"/dags/{args.name}", json=params_from(args), params=params, ok=(200, 202, 500, 502)
    )
    if status == 202 or not args.result:
        print(f"ok: invoked DAG {args.name} with id {body['activationId']}")
    if status != 202:
        print_json(body)
    return 0 if status in (200, 202) else 1


def dag_timeline(args: argparse.Namespace) -> int:
    """Draw the PNG, then print every scheduler decision on the request's functions."""
    from monitor.timeline import decision_lines, draw_timeline

    client = _client(args)
    record = client.request("GET", f"/activations/{args.id}")[1]
    if "dag" not in record.get("gleaner", {}):
        raise GleanerError(f"{args.id} is not a DAG request's record")
    children = [client.request("GET", f"/activations/{cid}")[1] for cid in record.get("logs", [])]
    out = draw_timeline(record, children, Path(args.output or f"timeline-{args.id[:8]}.png"))
    print(f"ok: wrote {out}")
    for line in decision_lines(record, children):
        print(line)
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    dag = sub.add_parser("dag", help="deploy, read and invoke DAG workflows")
    verbs = dag.add_subparsers(dest="verb", required=True)
    for verb in ("create", "update"):
        p = verbs.add_parser(verb, help="from Composer JSON, a Gleaner document, or a .py file defining DAG")
        p.add_argument("name")
        p.add_argument("file")
        p.add_argument(
            "--slo",
            type=int,
            metavar="MS",
            help="latency SLO in ms: its requests' deadline for the invokers' scheduler (0 removes it)",
        )
        target_flags(p)
        p.set_defaults(func=lambda a, v=verb: dag_put(a, v == "update"))
    for verb in ("get", "delete", "list"):
        p = verbs.add_parser(verb)
        if verb != "list":
            p.add_argument("name")
        target_flags(p)
        p.set_defaults(func=dag_simple)
    p = verbs.add_parser("invoke")
    p.add_argument("name")
    p.add_argument("-b", "--blocking", action="store_true", help="wait for the result")
    p.add_argument("-r", "--result", action="store_true", help="print only the result (implies -b)")
    p.add_argument("--harvest", dest="harvest", action="store_true", default=None, help="harvest (issue 4)")
    p.add_argument("--no-harvest", dest="harvest", action="store_false")
    p.add_argument("--policy", help="harvesting policy (off, thesis); wins over --harvest")
    param_flags(p)
    target_flags(p)
    p.set_defaults(func=dag_invoke)
    p = verbs.add_parser(
        "timeline", help="draw a DAG request's execution timeline as a PNG and list its scheduler decisions"
    )
    p.add_argument("id")
    p.add_argument("-o", "--output", help="PNG path (default timeline-<id>.png)")
    target_flags(p)
    p.set_defaults(func=dag_timeline)
