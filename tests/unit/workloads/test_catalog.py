"""The workload catalog, its DAGs, packaging and deployment (no services)."""

from __future__ import annotations

import argparse
import base64
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest

from composer.dsl import normalize
from composer.jsonio import from_json, to_json
from composer.model import Parallel
from composer.stages import analyze
from gleaner.errors import GleanerError
from workloads import deploy
from workloads.catalog import BUILTIN, WORKLOADS, Catalog, Workload, get, input_files

# Thesis Table 3.1: (functions, depth, width)
TABLE_3_1 = {"video-analytics": (4, 3, 2), "parallel-aes": (5, 3, 3), "ml-pipeline": (6, 3, 4)}
DIRS = {"video-analytics": "video_analytics", "parallel-aes": "parallel_aes", "ml-pipeline": "ml_pipeline"}
ROOT = Path(__file__).resolve().parents[3] / "workloads"


@pytest.mark.parametrize("name", list(TABLE_3_1))
def test_shape_matches_table_3_1(name: str) -> None:
    w = WORKLOADS[name]
    analysis = analyze(w.dag)
    assert (len(w.functions), analysis.depth, analysis.width) == TABLE_3_1[name]
    assert len(analysis.parallel_stages) == 1


@pytest.mark.parametrize("name", list(TABLE_3_1))
def test_parallel_stage_fits_two_cores_and_is_mis_provisioned(name: str) -> None:
    """Mis-provisioned as in thesis 2.6: the light function (first branch) gets the
    most CPU, the straggler (last branch) the least; <= 2 cores in all."""
    w = WORKLOADS[name]
    (stage,) = [s for s in normalize(w.dag).steps if isinstance(s, Parallel)]
    specs = [w.function(b.name) for b in stage.branches]  # type: ignore[union-attr]
    assert sum(s.cpu for s in specs) <= 2.0
    assert specs[0].cpu > specs[-1].cpu and len({s.memory_mb for s in specs}) == 1
    assert len({s.source for s in specs}) == 1  # one code, different parameters
    assert len({json.dumps(s.params, sort_keys=True) for s in specs}) == len(specs)
    for spec in w.functions:
        assert spec.cpu % 0.25 == 0 and spec.memory_mb % 128 == 0
        assert 100 <= spec.timeout_ms <= 300_000
        assert (spec.source / "__main__.py").is_file()


@pytest.mark.parametrize("name", list(TABLE_3_1))
def test_dag_json_is_what_compose_writes_for_dag_js(name: str) -> None:
    folder = ROOT / DIRS[name]
    doc = json.loads((folder / "DAG.json").read_text())
    assert doc["version"].startswith("0.12")
    assert normalize(from_json(doc)) == normalize(WORKLOADS[name].dag)
    js = (folder / "DAG.js").read_text()
    assert "require('openwhisk-composer')" in js
    for spec in WORKLOADS[name].functions:
        assert f"composer.action('{spec.name}')" in js


def test_get_and_validation() -> None:
    assert get("parallel-aes") is WORKLOADS["parallel-aes"]
    with pytest.raises(KeyError, match="known"):
        get("nope")
    w = WORKLOADS["parallel-aes"]
    with pytest.raises(ValueError, match="DAG actions"):
        Workload(w.name, w.dag, w.functions[:-1], "", w.generate_inputs, w.small_input)


def test_names_load_nothing_until_one_is_looked_up() -> None:
    catalog = Catalog(BUILTIN)
    assert list(catalog) == ["video-analytics", "parallel-aes", "ml-pipeline"] and len(catalog) == 3
    assert "ml-pipeline" in catalog and "my-dag" not in catalog
    assert catalog.loaded() == []
    assert catalog["ml-pipeline"] is WORKLOADS["ml-pipeline"]  # one module, imported once
    assert catalog.loaded() == ["ml-pipeline"]
    with pytest.raises(KeyError):
        catalog["my-dag"]


def test_a_workload_whose_library_is_missing_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "needs_absent_lib.py").write_text("import gleaner_absent_library\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    catalog = Catalog({"absent": "needs_absent_lib:WORKLOAD"})
    assert "absent" in catalog
    with pytest.raises(GleanerError, match=r"needs gleaner_absent_library, from the workloads extra"):
        catalog["absent"]
    assert catalog.loaded() == []


def test_an_entry_must_name_that_workload() -> None:
    catalog = Catalog({"aes": BUILTIN["parallel-aes"]})
    with pytest.raises(TypeError, match="is not the workload 'aes'"):
        catalog["aes"]


def _unzip(body: dict[str, Any]) -> dict[str, bytes]:
    data = base64.b64decode(body["exec"]["code"])
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return {n: z.read(n) for n in z.namelist()}


def test_action_body_is_an_openwhisk_zip_action() -> None:
    spec = WORKLOADS["video-analytics"].function("recognition2")
    body = deploy.action_body(spec)
    assert body["exec"]["kind"] == "python:3" and body["exec"]["binary"] is True
    assert body["exec"]["main"] == "main"
    assert body["limits"] == {"cpu": spec.cpu, "memory": 768, "timeout": spec.timeout_ms}
    assert {"key": "take", "value": 3} in body["parameters"]
    files = _unzip(body)
    assert next(iter(files)) == "__main__.py"
    assert {"__main__.py", "digits.py", "cpu_quota.py"} <= set(files)
    assert not any("__pycache__" in n for n in files)
    assert deploy.action_body(spec)["exec"]["code"] == body["exec"]["code"]  # reproducible


def test_single_file_source_is_plain_code(tmp_path: Path) -> None:
    src = tmp_path / "hello.py"
    src.write_text("def main(args):\n    return {'ok': True}\n")
    spec = WORKLOADS["parallel-aes"].functions[0]
    from dataclasses import replace

    ex = deploy.exec_of(replace(spec, source=src))
    assert ex == {"kind": "python:3", "code": src.read_text(), "binary": False, "main": "main"}


class FakeClient:
    def __init__(self) -> None:
        self.calls: list[tuple[str, ...] | tuple[Any, ...]] = []

    def put_action(self, name: str, body: dict[str, Any], overwrite: bool) -> Any:
        self.calls.append(("action", name, body, overwrite))

    def request(self, method: str, path: str, **kw: Any) -> tuple[int, Any]:
        self.calls.append(("request", method, path, kw))
        return 200, {}


def test_deploy_workload_puts_actions_then_the_dag() -> None:
    w = WORKLOADS["ml-pipeline"]
    client = FakeClient()
    deploy.deploy_workload(client, w)  # type: ignore[arg-type]
    names = [c[1] for c in client.calls if c[0] == "action"]
    assert names == [f.name for f in w.functions]
    assert all(c[3] is True for c in client.calls if c[0] == "action")
    last = client.calls[-1]
    assert last[:3] == ("request", "PUT", "/dags/ml-pipeline")
    assert last[3] == {"json": {"composition": to_json(w.dag)}, "params": {"overwrite": "true"}}


def test_inputs_come_from_a_folder_first_ones_when_counted(tmp_path: Path) -> None:
    for name in ("b.json", "a.json", "c.json", "notes.txt"):
        (tmp_path / name).write_text("{}")
    every = input_files(argparse.Namespace(input_dir=str(tmp_path), inputs=None, seed=1), "any", tmp_path)
    two = input_files(argparse.Namespace(input_dir=str(tmp_path), inputs=2, seed=1), "any", tmp_path)
    assert [p.name for p in every] == ["a.json", "b.json", "c.json"]
    assert [p.name for p in two] == ["a.json", "b.json"]


def test_inputs_of_an_empty_folder_or_an_unknown_workload_are_an_error(tmp_path: Path) -> None:
    with pytest.raises(GleanerError, match=r"holds no \.json inputs"):
        input_files(argparse.Namespace(input_dir=str(tmp_path), inputs=None, seed=1), "any", tmp_path)
    with pytest.raises(GleanerError, match="not a built-in workload"):
        input_files(argparse.Namespace(input_dir=None, inputs=3, seed=1), "nope", tmp_path)
