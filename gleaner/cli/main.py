"""Entry point of the ``gleaner`` command."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
from typing import TYPE_CHECKING

import deploy.supervisor as supervisor
from gleaner.cli import admin, dag, predict, replay, wsk
from gleaner.errors import GleanerError
from gleaner.settings import PLACEMENT_POLICIES, load_settings
from streams.components import NAMES, component

if TYPE_CHECKING:
    from streams.kafka.runner import ConsumeRunner

# What `gleaner run` starts: the registered components (streams/components.py), and the
# supervisor `gleaner up` leaves behind (deploy's own process, not a platform component).
COMPONENTS = (*NAMES, supervisor.NAME)


def _run_component(args: argparse.Namespace) -> int:
    settings = load_settings()
    logging.basicConfig(
        level=args.log_level.upper(),
        format=f"%(asctime)s {args.component} %(levelname)s %(name)s: %(message)s",
    )
    from gleaner.metrics import serve_metrics

    if args.component == supervisor.NAME:
        serve_metrics(settings, supervisor.NAME)
        supervisor.run(settings)
        return 0
    part = component(args.component)
    # An invoker's settings carry its id (invoker0, invoker1...), which sets its port.
    serve_metrics(settings, settings.invoker_id if part.per_invoker else part.name)
    options = {"policy": args.policy or settings.placement_policy, "log_level": args.log_level}
    entry = part.resolve()
    if part.kind == "blocking":
        entry(settings, **part.arguments(options))
        return 0
    runner: ConsumeRunner = entry(settings, **part.arguments(options))
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: runner.stop())
    runner.run()
    return 0


def _up(args: argparse.Namespace) -> int:
    import deploy.stack as stack

    settings = load_settings(**({"invokers": args.invokers} if args.invokers else {}))
    if args.demo:
        from gleaner.cli.demo_report import plan_steps

        plan_steps(args.demo_profile, args.demo_requests)  # bad counts fail before the stack starts
    began = time.monotonic()
    parts = stack.up(settings, progress=not args.quiet)
    print(stack.format_status(parts))
    if args.demo:
        from gleaner.cli.demo import run_demo

        return run_demo(
            settings,
            stack_s=time.monotonic() - began,
            profile_inputs=args.demo_profile,
            run_inputs=args.demo_requests,
        )
    return 0


def _down(args: argparse.Namespace) -> int:
    import deploy.stack as stack

    stack.down(load_settings(), docker=args.docker)
    print("ok: embedded stack stopped")
    return 0


def _status(_args: argparse.Namespace) -> int:
    import deploy.stack as stack

    print(stack.format_status(stack.status(load_settings())))
    return 0


def _settings(_args: argparse.Namespace) -> int:
    for key, value in load_settings().masked().items():
        print(f"{key} = {value}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gleaner", description="Serverless DAG workflows over Kafka.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("up", help="start the embedded stack (Kafka, Redis, CouchDB, Docker, Gleaner)")
    p.add_argument(
        "--demo",
        action="store_true",
        help="then deploy, profile and train a skewed DAG; run it harvesting off/on",
    )
    p.add_argument("--demo-profile", type=int, default=20, metavar="N", help="demo: inputs to profile (20)")
    p.add_argument("--demo-requests", type=int, default=5, metavar="N", help="demo: requests each way (5)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.add_argument("--invokers", type=int, help="invoker agents on this machine, sharing its capacity")
    p.set_defaults(func=_up)
    p = sub.add_parser("down", help="stop what 'gleaner up' started")
    p.add_argument("--docker", action="store_true", help="stop dockerd too, if Gleaner started it")
    p.set_defaults(func=_down)
    sub.add_parser("status", help="show each part of the stack").set_defaults(func=_status)
    sub.add_parser("settings", help="print the settings (secrets masked)").set_defaults(func=_settings)
    p = sub.add_parser("run", help="run one component in the foreground")
    p.add_argument("component", choices=COMPONENTS)
    p.add_argument(
        "--policy",
        choices=PLACEMENT_POLICIES,
        help="placement only: the placement policy (default: GLEANER_PLACEMENT_POLICY, greedy-jsq)",
    )
    p.add_argument("--log-level", default="info")
    p.set_defaults(func=_run_component)
    wsk.register(sub)
    admin.register(sub)
    dag.register(sub)
    predict.register(sub)
    replay.register(sub)
    from gleaner.cli import bench

    bench.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except GleanerError as exc:
        return wsk.fail(str(exc))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. `gleaner activation list | head`
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
