"""Who receives the whole flat ``Settings``: the composition roots, and a list that only
shrinks. Every other module receives its sections (gleaner/settings_sections.py).

A module "takes" the flat settings when one of its functions has a parameter annotated
with ``Settings`` (or a class declares an attribute of that type). Converting a module
means removing its entries from ``NOT_YET``; the test fails on a stale entry, so the list
is kept true, and on a new taker, so it does not grow."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCES = (
    "gleaner",
    "streams",
    "invoker_agent",
    "composer",
    "predictor",
    "monitor",
    "deploy",
    "workloads",
    "benchmarks",
)

# Composition roots: they load or hold the flat settings and hand each part its sections.
ROOT_FOLDERS = (
    "gleaner/cli/",  # the command line
    "deploy/",  # the stack: starts the services with their environment
    "workloads/",  # the sample workloads' image and measurements, run from the CLI
    "benchmarks/",  # the benchmarks, run from the CLI
)
ROOT_FUNCTIONS = {
    "gleaner/settings.py": {"_check"},  # the loader's own checks
    "gleaner/credentials.py": {  # the platform keys `gleaner up` writes (deploy and CLI only)
        "admin_credential",
        "ensure_admin_credential",
        "guest_credential",
        "ensure_guest_credential",
    },
    # Each component's build function (streams/components.py names them).
    "streams/record_sink.py": {"build"},
    "streams/composition/agent.py": {"build"},
    "streams/placement/agent.py": {"build"},
    "streams/predictor_stream/app.py": {"make_app", "run"},
    "streams/gateway/app.py": {"serve"},
    "invoker_agent/agent.py": {"build"},
}

# Not converted yet: each entry is a function (or class attribute) that still takes the
# whole Settings although it is no composition root. Only ever remove entries.
NOT_YET: dict[str, set[str]] = {
    "gleaner/metrics.py": {"metrics_address", "metrics_port", "serve_metrics"},
    "invoker_agent/agent.py": {"InvokerAgent.__init__"},
    "invoker_agent/container_pool.py": {"ContainerPool.__init__"},
    "invoker_agent/docker_engine.py": {
        "DockerEngine.__init__",
        "bridge_api_host",
        "container_options",
        "network_mismatch",
        "network_name",
        "network_options",
    },
    "invoker_agent/executor.py": {"ActivationExecutor.__init__"},
    "invoker_agent/prewarm.py": {"Prewarmer.__init__"},
    "predictor/train.py": {"train_dag"},
    "streams/gateway/app.py": {"Gateway.__init__"},
    "streams/placement/agent.py": {
        "PlacementAgent.__init__",
        "follow_completions",
        "follow_health",
    },
    "streams/placement/journal.py": {"unacked_key"},
    "streams/predictor_stream/app.py": {"broker_credentials"},
    "streams/predictor_stream/planner.py": {"RequestPlanner.__init__"},
    "streams/topics.py": {
        "Topic.names",
        "Topic.partitions_for",
        "all_topics",
        "invoker_ids_of",
        "topics_by_partitions",
    },
}


def _mentions_settings(annotation: ast.expr | None) -> bool:
    if annotation is None:
        return False
    for node in ast.walk(annotation):
        if isinstance(node, ast.Name) and node.id == "Settings":
            return True
        if isinstance(node, ast.Attribute) and node.attr == "Settings":
            return True
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and "Settings" in node.value.split()
        ):
            return True
    return False


def _takers(tree: ast.Module) -> set[str]:
    """Qualified names of the functions with a Settings parameter and the Settings attributes."""
    found: set[str] = set()

    def visit(node: ast.AST, scope: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef):
                visit(child, f"{scope}{child.name}.")
            elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                a = child.args
                params = [*a.posonlyargs, *a.args, *a.kwonlyargs, a.vararg, a.kwarg]
                if any(p is not None and _mentions_settings(p.annotation) for p in params):
                    found.add(f"{scope}{child.name}")
                visit(child, f"{scope}{child.name}.")
            elif isinstance(child, ast.AnnAssign) and _mentions_settings(child.annotation):
                found.add(f"{scope}{ast.unparse(child.target)}")
            else:
                visit(child, scope)

    visit(tree, "")
    return found


def takers() -> dict[str, set[str]]:
    """Module path -> what in it takes the flat Settings, over the whole source."""
    out: dict[str, set[str]] = {}
    for folder in SOURCES:
        for path in sorted((ROOT / folder).rglob("*.py")):
            found = _takers(ast.parse(path.read_text(), str(path)))
            if found:
                out[path.relative_to(ROOT).as_posix()] = found
    return out


def _not_roots(found: dict[str, set[str]]) -> dict[str, set[str]]:
    rest = {}
    for module, names in found.items():
        if module.startswith(ROOT_FOLDERS):
            continue
        left = names - ROOT_FUNCTIONS.get(module, set())
        if left:
            rest[module] = left
    return rest


def test_the_scan_finds_parameters_and_attributes_of_the_flat_settings() -> None:
    source = """
from gleaner.settings import Settings
def plain(x: int) -> None: ...
def takes(settings: Settings) -> None: ...
def optional(*, settings: Settings | None = None) -> None: ...
class Holder:
    settings: Settings
    def method(self, s: "Settings") -> None: ...
    def section(self, s: KafkaSettings) -> None: ...
"""
    assert _takers(ast.parse(source)) == {"takes", "optional", "Holder.settings", "Holder.method"}


def test_only_composition_roots_and_the_shrinking_list_take_the_whole_settings() -> None:
    rest = _not_roots(takers())
    new = {m: sorted(n - NOT_YET.get(m, set())) for m, n in rest.items() if n - NOT_YET.get(m, set())}
    assert not new, f"these take the whole Settings: give them their sections instead: {new}"


def test_the_list_of_modules_not_yet_converted_holds_no_stale_entry() -> None:
    rest = _not_roots(takers())
    stale = {m: sorted(n - rest.get(m, set())) for m, n in NOT_YET.items() if n - rest.get(m, set())}
    assert not stale, f"converted already: remove them from NOT_YET: {stale}"


def test_the_roots_named_still_exist() -> None:
    found = takers()
    for module, names in ROOT_FUNCTIONS.items():
        assert names <= found.get(module, set()), f"{module}: {sorted(names - found.get(module, set()))}"
