"""``gleaner profile``, ``gleaner train`` and ``gleaner workload``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from gleaner.cli.wsk import target_flags
from gleaner.errors import GleanerError
from gleaner.gateway_client import OpenWhiskClient, Target
from gleaner.settings import Settings, load_settings

if TYPE_CHECKING:
    from predictor.sweep import CpuSweep


def _client(args: argparse.Namespace) -> OpenWhiskClient:
    return OpenWhiskClient(Target.resolve(args.apihost, args.auth))


def cpu_sweep(args: argparse.Namespace, settings: Settings, n_inputs: int) -> CpuSweep:
    """The profile's CPU sweep from ``--cpu-sweep`` and ``--sweep-inputs`` (defaults: see
    :mod:`predictor.sweep`)."""
    from predictor.allocation import Grid
    from predictor.profiler import profile_cpu
    from predictor.sweep import CpuSweep, default_cpus, default_inputs, parse_cpus

    top = profile_cpu(settings.cpu_max, settings.invoker_cpu_capacity)
    grid = Grid(settings.cpu_min, settings.cpu_max, settings.cpu_step)
    cpus = default_cpus(top, grid) if args.cpu_sweep is None else parse_cpus(args.cpu_sweep, top, grid)
    if args.sweep_inputs is not None and args.sweep_inputs < 0:
        raise GleanerError(f"--sweep-inputs must be >= 0, got {args.sweep_inputs}")
    inputs = default_inputs(n_inputs) if args.sweep_inputs is None else args.sweep_inputs
    return CpuSweep(cpus, inputs)


def cmd_profile(args: argparse.Namespace) -> int:
    from predictor.dataset import dataset_path
    from predictor.profiler import profile_dag
    from workloads.catalog import input_files

    settings = load_settings()
    client = _client(args)
    ns = client.namespace()
    files = input_files(args, args.dag, settings.state_dir)
    sweep = cpu_sweep(args, settings, len(files))
    out = Path(args.out) if args.out else dataset_path(settings.state_dir, ns, args.dag)
    result = profile_dag(client, args.dag, files, out, progress=not args.quiet, sweep=sweep)
    print(
        f"ok: profiled {args.dag} with {result.requests} requests ({result.failed} failed): {result.skipped}"
    )
    print(f"{result.sweep}")
    print(f"dataset: {result.dataset}")
    return 0 if result.rows else 1


def cmd_train(args: argparse.Namespace) -> int:
    from predictor.dataset import dataset_path
    from predictor.train import train_dag

    settings = load_settings()
    ns = args.namespace or _client(args).namespace()
    dataset = Path(args.dataset) if args.dataset else dataset_path(settings.state_dir, ns, args.dag)
    if not dataset.exists():
        raise GleanerError(f"no dataset at {dataset}: run `gleaner profile {args.dag}` first")
    result = train_dag(
        dataset, settings.models_root, ns, args.dag, settings, Path(args.report_dir), progress=not args.quiet
    )
    names = dict(result.trained.model_names)
    print(f"ok: trained {args.dag} -> {result.version_dir}")
    for target, model in names.items():
        print(f"  {target:<12} {model}")
    print(f"report: {result.report.markdown}")
    return 0


def cmd_workload(args: argparse.Namespace) -> int:
    from workloads.catalog import WORKLOADS

    settings = load_settings()
    if args.verb == "list":
        for w in WORKLOADS.values():
            print(f"{w.name:<16} {len(w.functions)} functions  {w.description}")
        return 0
    if args.name not in WORKLOADS:
        raise GleanerError(f"unknown workload {args.name} ({', '.join(WORKLOADS)})")
    workload = WORKLOADS[args.name]
    if args.verb == "deploy":
        from workloads.deploy import deploy_workload
        from workloads.image import ensure_workload_image

        ensure_workload_image(settings, progress=not args.quiet)
        deploy_workload(_client(args), workload)
        print(f"ok: deployed {workload.name} ({len(workload.functions)} actions and the DAG)")
    else:
        out = Path(args.out or settings.state_dir / "inputs" / workload.name / f"seed{args.seed}")
        files = workload.generate_inputs(args.n, args.seed, out)
        print(f"ok: wrote {len(files)} inputs to {out}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "profile",
        help="run a DAG once per input at maximum allocation, a few at lower ones; build its dataset",
    )
    p.add_argument("dag")
    p.add_argument(
        "--inputs", type=int, default=0, help="how many inputs (default: 100, or all in --input-dir)"
    )
    p.add_argument("--input-dir", help="a folder of JSON inputs (default: the workload's generator)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", help="dataset CSV (default ~/.gleaner/profiles/<ns>/<dag>.csv)")
    p.add_argument(
        "--cpu-sweep",
        metavar="CORES",
        help="CPU allocations for the scaling curves, e.g. 2,1,0.5: every input runs at the maximum, "
        "a few also at each lower one (those requests ask for it, the actions' limits are untouched) "
        "(default: about 1/2 and 1/4 of the maximum; 'off': none)",
    )
    p.add_argument(
        "--sweep-inputs",
        type=int,
        metavar="N",
        help="inputs run at each lower allocation (default: a tenth of the inputs, 1 to 10)",
    )
    p.add_argument("-q", "--quiet", action="store_true")
    target_flags(p)
    p.set_defaults(func=cmd_profile)

    p = sub.add_parser("train", help="train and compare the ML1/ML2 models of a DAG from its dataset")
    p.add_argument("dag")
    p.add_argument("--dataset", help="dataset CSV (default: the one `gleaner profile` wrote)")
    p.add_argument("--namespace", help="namespace the DAG belongs to (default: the API key's)")
    p.add_argument("--report-dir", default="docs/models")
    p.add_argument("-q", "--quiet", action="store_true")
    target_flags(p)
    p.set_defaults(func=cmd_train)

    w = sub.add_parser("workload", help="the built-in skew-aware workloads")
    verbs = w.add_subparsers(dest="verb", required=True)
    verbs.add_parser("list").set_defaults(func=cmd_workload)
    p = verbs.add_parser("deploy", help="build the workload image, register the actions and the DAG")
    p.add_argument("name")
    p.add_argument("-q", "--quiet", action="store_true")
    target_flags(p)
    p.set_defaults(func=cmd_workload)
    p = verbs.add_parser("inputs", help="write seeded inputs of varied sizes")
    p.add_argument("name")
    p.add_argument("-n", type=int, default=100)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out")
    p.set_defaults(func=cmd_workload)
