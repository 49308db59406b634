"""``gleaner action ...`` and ``gleaner activation ...``, shaped like wsk's."""

from __future__ import annotations

import argparse
import base64
import json
import sys
from pathlib import Path
from typing import Any

from gleaner.errors import GleanerError
from gleaner.gateway_client import OpenWhiskClient, Target


def parse_value(raw: str) -> Any:
    """wsk's rule for ``-p k v``: JSON when it parses, else the plain string."""
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def params_from(args: argparse.Namespace) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if getattr(args, "param_file", None):
        loaded = json.loads(Path(args.param_file).read_text())
        if not isinstance(loaded, dict):
            raise GleanerError(f"{args.param_file} must hold a JSON object")
        params.update(loaded)
    for key, value in getattr(args, "param", None) or []:
        params[key] = parse_value(value)
    return params


def exec_from_file(path: Path, kind: str | None, main: str | None) -> dict[str, Any]:
    if not path.exists():
        raise GleanerError(f"file {path} does not exist")
    if path.suffix == ".zip":
        exec_: dict[str, Any] = {
            "kind": kind or "python:3",
            "binary": True,
            "code": base64.b64encode(path.read_bytes()).decode(),
        }
    elif path.suffix == ".py":
        exec_ = {"kind": kind or "python:3", "binary": False, "code": path.read_text()}
    else:
        raise GleanerError(f"cannot tell the kind of {path}: use a .py file or a .zip with __main__.py")
    if main:
        exec_["main"] = main
    return exec_


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=4, sort_keys=False))


def _client(args: argparse.Namespace) -> OpenWhiskClient:
    return OpenWhiskClient(Target.resolve(args.apihost, args.auth))


def action_put(args: argparse.Namespace, overwrite: bool) -> int:
    body: dict[str, Any] = {}
    if args.file:
        body["exec"] = exec_from_file(Path(args.file), args.kind, args.main)
    elif not overwrite:
        raise GleanerError("an action needs a code file")
    limits = {
        k: v
        for k, v in (
            ("memory", args.memory),
            ("timeout", args.timeout),
            ("cpu", args.cpu),
            ("logs", args.logsize),
        )
        if v is not None
    }
    if limits:
        body["limits"] = limits
    params = params_from(args)
    if params:
        body["parameters"] = [{"key": k, "value": v} for k, v in params.items()]
    client = _client(args)
    client.put_action(args.name, body, overwrite)
    print(f"ok: {'updated' if overwrite else 'created'} action {args.name}")
    return 0


def action_invoke(args: argparse.Namespace) -> int:
    client = _client(args)
    blocking = args.blocking or args.result
    status, body = client.invoke(args.name, params_from(args), blocking=blocking, result=args.result)
    if status == 202:
        print(f"ok: invoked /_/{args.name} with id {body['activationId']}")
        return 0
    if not args.result:
        print(f"ok: invoked /_/{args.name} with id {body['activationId']}")
    print_json(body)
    return 0 if status == 200 else 1


def action_simple(args: argparse.Namespace) -> int:
    client = _client(args)
    if args.verb == "get":
        print_json(client.request("GET", f"/actions/{args.name}")[1])
    elif args.verb == "delete":
        client.request("DELETE", f"/actions/{args.name}")
        print(f"ok: deleted action {args.name}")
    elif args.verb == "list":
        actions = client.request("GET", "/actions", params={"limit": args.limit, "skip": args.skip})[1]
        print("actions")
        for a in actions:
            print(f"/{a['namespace']}/{a['name']:<40} private {a['exec'].get('kind', '')}")
    return 0


def activation_cmd(args: argparse.Namespace) -> int:
    client = _client(args)
    if args.verb == "list":
        params: dict[str, Any] = {"limit": args.limit, "skip": args.skip}
        for key in ("since", "upto", "name"):
            if getattr(args, key, None):
                params[key] = getattr(args, key)
        rows = client.request("GET", "/activations", params=params)[1]
        print(f"{'Datetime':<20} {'Activation ID':<33} {'Status':<18} {'Duration':>9} Entity")
        import datetime as dt

        for r in rows:
            when = dt.datetime.fromtimestamp(r["start"] / 1000).strftime("%Y-%m-%d %H:%M:%S")
            status = {0: "success", 1: "application error", 2: "developer error"}.get(
                r.get("statusCode"), "internal"
            )
            print(f"{when:<20} {r['activationId']:<33} {status:<18} {r.get('duration', 0):>7}ms {r['name']}")
        return 0
    path = f"/activations/{args.id}"
    if args.verb == "get":
        print_json(client.request("GET", path)[1])
    elif args.verb == "result":
        print_json(client.request("GET", path + "/result")[1].get("result"))
    elif args.verb == "logs":
        for line in client.request("GET", path + "/logs")[1]["logs"]:
            print(line)
    return 0


def target_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--apihost", help="API host (default: APIHOST in ~/.wskprops)")
    p.add_argument("-u", "--auth", help="API key uuid:key (default: AUTH in ~/.wskprops)")


def param_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-p",
        "--param",
        nargs=2,
        action="append",
        metavar=("KEY", "VALUE"),
        help="parameter (JSON values are parsed, like wsk)",
    )
    p.add_argument("-P", "--param-file", help="JSON file of parameters")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    action = sub.add_parser("action", help="create, update, get, list, delete and invoke actions")
    verbs = action.add_subparsers(dest="verb", required=True)
    for verb in ("create", "update"):
        p = verbs.add_parser(verb)
        p.add_argument("name")
        p.add_argument("file", nargs="?" if verb == "update" else None)
        p.add_argument("--kind", help="runtime kind (python:3)")
        p.add_argument("--main", help="entry function (default main)")
        p.add_argument("-m", "--memory", type=int, help="memory MB")
        p.add_argument("-c", "--cpu", type=float, help="CPU cores (Gleaner extension)")
        p.add_argument("-t", "--timeout", type=int, help="timeout ms")
        p.add_argument("-l", "--logsize", type=int, help="log limit MB")
        param_flags(p)
        target_flags(p)
        p.set_defaults(func=lambda a, v=verb: action_put(a, v == "update"))
    p = verbs.add_parser("invoke")
    p.add_argument("name")
    p.add_argument("-b", "--blocking", action="store_true", help="wait for the result")
    p.add_argument("-r", "--result", action="store_true", help="print only the result (implies -b)")
    param_flags(p)
    target_flags(p)
    p.set_defaults(func=action_invoke)
    for verb in ("get", "delete", "list"):
        p = verbs.add_parser(verb)
        if verb != "list":
            p.add_argument("name")
        else:
            p.add_argument("--limit", type=int, default=30)
            p.add_argument("--skip", type=int, default=0)
        target_flags(p)
        p.set_defaults(func=action_simple)

    activation = sub.add_parser("activation", help="list and read activation records")
    averbs = activation.add_subparsers(dest="verb", required=True)
    p = averbs.add_parser("list")
    p.add_argument("name", nargs="?")
    p.add_argument("-l", "--limit", type=int, default=30)
    p.add_argument("-s", "--skip", type=int, default=0)
    p.add_argument("--since", type=int)
    p.add_argument("--upto", type=int)
    target_flags(p)
    p.set_defaults(func=activation_cmd)
    for verb in ("get", "result", "logs"):
        p = averbs.add_parser(verb)
        p.add_argument("id")
        target_flags(p)
        p.set_defaults(func=activation_cmd)


def fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 1
