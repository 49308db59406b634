"""The versioned model store: round trip, versions, and every way a load can fail."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from gleaner.errors import GleanerError
from predictor.dataset import write_csv
from predictor.inference import Predictor
from predictor.models import TrainedModels
from predictor.scaling import ScalingCurve
from predictor.store import ModelLoadError, dag_dir, load_current, save_models, sha256_of
from tests.unit.predictor import DAG, synthetic_comparison, synthetic_rows

SNAPSHOT = {"cpu_min": 0.25, "cpu_max": 2.0}


def trained() -> TrainedModels:
    return synthetic_comparison().to_trained("guest")


@pytest.fixture
def saved(tmp_path: Path) -> tuple[Path, Path]:
    """(models root, the saved version directory)."""
    csv = tmp_path / "profile.csv"
    write_csv(synthetic_rows(20), csv)
    root = tmp_path / "models"
    return root, save_models(root, "guest", DAG, trained(), csv, SNAPSHOT)


def test_round_trip(saved: tuple[Path, Path]) -> None:
    root, version_dir = saved
    assert version_dir == root / "guest" / DAG / "v1"
    assert (root / "guest" / DAG / "current").read_text() == "v1\n"
    loaded = load_current(root, "guest", DAG)
    assert loaded is not None and loaded.version == 1 and loaded.created
    original = trained()
    assert loaded.model_names == original.model_names and loaded.allowed == original.allowed
    assert loaded.features == original.features
    slots = [(1, i) for i in range(4)]
    assert Predictor(loaded).predict(2e7, slots) == Predictor(original).predict(2e7, slots)


def test_meta_describes_the_version(saved: tuple[Path, Path]) -> None:
    _, version_dir = saved
    meta = json.loads((version_dir / "meta.json").read_text())
    assert meta["version"] == 1 and meta["format"] == 1
    assert meta["dataset"]["rows"] == 20 * 6
    assert meta["dataset"]["sha256"] == sha256_of(version_dir / "dataset.csv")
    assert meta["allowed"]["cpu_step"] == 0.25 and meta["settings"] == SNAPSHOT
    assert set(meta["libraries"]) == {"python", "scikit-learn", "numpy", "joblib"}
    assert set(meta["models"]) == {"input_size", "cpu", "memory", "duration"}
    for target, features in (
        ("input_size", "dag_input_size"),
        ("cpu", "input_size"),
        ("duration", "input_size"),
    ):
        entry = meta["models"][target]
        assert entry["features"][0] == features and entry["metrics"]["mae"] >= 0
        assert entry["sha256"] == sha256_of(version_dir / entry["file"])


def test_versions_increase_and_current_follows(saved: tuple[Path, Path], tmp_path: Path) -> None:
    root, _ = saved
    second = save_models(root, "guest", DAG, trained(), tmp_path / "profile.csv", SNAPSHOT)
    assert second.name == "v2" and (second.parent / "v1").is_dir()
    loaded = load_current(root, "guest", DAG)
    assert loaded is not None and loaded.version == 2
    assert not [p for p in second.parent.iterdir() if p.name.startswith(".")]  # no temporaries left


def test_never_trained_is_none(tmp_path: Path) -> None:
    assert load_current(tmp_path, "guest", "nothing") is None
    assert load_current(tmp_path / "missing", "guest", "nothing") is None


def test_names_are_one_path_component(tmp_path: Path) -> None:
    assert dag_dir(tmp_path, "ns/x", "../dag") == tmp_path / "ns%2Fx" / "..%2Fdag"
    with pytest.raises(GleanerError):
        dag_dir(tmp_path, "guest", "..")


def corrupt_model(version_dir: Path) -> None:
    path = version_dir / "cpu.joblib"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def garbage_with_matching_checksum(version_dir: Path) -> None:
    path = version_dir / "memory.joblib"
    path.write_bytes(b"not a pickle")
    meta = json.loads((version_dir / "meta.json").read_text())
    meta["models"]["memory"]["sha256"] = sha256_of(path)
    (version_dir / "meta.json").write_text(json.dumps(meta))


def edit_meta(key: str, value: object) -> object:
    def edit(version_dir: Path) -> None:
        meta = json.loads((version_dir / "meta.json").read_text())
        node = meta
        *parents, last = key.split(".")
        for p in parents:
            node = node[p]
        node[last] = value
        (version_dir / "meta.json").write_text(json.dumps(meta))

    return edit


@pytest.mark.parametrize(
    ("damage", "match"),
    [
        (lambda d: (d / "cpu.joblib").unlink(), r"cpu\.joblib \(cpu model\) is missing"),
        (corrupt_model, "checksum does not match"),
        (garbage_with_matching_checksum, "cannot be loaded"),
        (lambda d: (d / "meta.json").unlink(), r"meta\.json is missing"),
        (lambda d: (d / "meta.json").write_text("{not json"), r"meta\.json is corrupt"),
        (edit_meta("format", 99), "model format 99 is incompatible"),
        (edit_meta("libraries.scikit-learn", "0.24.2"), "saved with scikit-learn 0.24.2"),
        (edit_meta("models.cpu.features", ["size"]), "expects"),
        (edit_meta("models.duration.features", ["size"]), "duration model uses features"),
        (edit_meta("models.memory", None), "incomplete"),
        (edit_meta("allowed", {}), "incomplete"),
        (lambda d: (d.parent / "current").write_text("latest"), "does not name a version"),
        (lambda d: (d.parent / "current").write_text("v7\n"), "points at v7, which is missing"),
    ],
)
def test_damaged_models_raise_model_load_error(saved: tuple[Path, Path], damage: object, match: str) -> None:
    root, version_dir = saved
    damage(version_dir)  # type: ignore[operator]
    with pytest.raises(ModelLoadError, match=match) as err:
        load_current(root, "guest", DAG)
    assert isinstance(err.value, GleanerError)


def without_duration(version_dir: Path) -> None:
    """A version as saved before the work model existed."""
    (version_dir / "duration.joblib").unlink()
    meta = json.loads((version_dir / "meta.json").read_text())
    del meta["models"]["duration"]
    (version_dir / "meta.json").write_text(json.dumps(meta))


def test_a_version_without_a_duration_model_still_loads(saved: tuple[Path, Path]) -> None:
    root, version_dir = saved
    without_duration(version_dir)
    loaded = load_current(root, "guest", DAG)
    assert loaded is not None and set(loaded.models) == {"input_size", "cpu", "memory"}
    assert "duration" not in loaded.model_names and "duration" not in loaded.metrics
    predictor = Predictor(loaded)
    assert not predictor.has_work_model
    slots = [(1, i) for i in range(4)]
    old, new = predictor.predict(2e7, slots), Predictor(trained()).predict(2e7, slots)
    assert all(p.duration_ms is None for p in old)
    assert all(p.duration_ms is not None and p.duration_ms > 0 for p in new)
    assert [(p.input_size, p.cpu, p.memory_mb) for p in old] == [
        (p.input_size, p.cpu, p.memory_mb) for p in new
    ]
    # ... and saving it again writes the three models it has.
    again = save_models(root, "guest", DAG, loaded, version_dir / "dataset.csv", SNAPSHOT)
    assert not (again / "duration.joblib").exists()
    assert "duration" not in json.loads((again / "meta.json").read_text())["models"]


def test_a_saved_duration_model_that_cannot_load_fails_the_load(saved: tuple[Path, Path]) -> None:
    root, version_dir = saved
    (version_dir / "duration.joblib").unlink()  # named in meta.json: damage, not an old version
    with pytest.raises(ModelLoadError, match=r"duration\.joblib \(duration model\) is missing"):
        load_current(root, "guest", DAG)


def test_trained_models_need_the_three_required_targets() -> None:
    t = trained()
    with pytest.raises(ValueError, match="miss targets"):
        TrainedModels(
            "guest", DAG, {"cpu": t.models["cpu"], "duration": t.models["duration"]}, {}, {}, t.allowed
        )
    required = {k: t.models[k] for k in ("input_size", "cpu", "memory")}
    assert set(TrainedModels("guest", DAG, required, {}, {}, t.allowed).models) == set(required)
    assert np.isfinite(t.metrics["cpu"]["mae"]) and np.isfinite(t.metrics["duration"]["mae"])


# ---- scaling curves ------------------------------------------------------------------

CURVES = {(1, 0): ScalingCurve(0.45, 3.0, 6, (0.5, 1.0, 2.0), 0.02), (1, 2): ScalingCurve(0.2)}
REASONS = {(1, 0): "Amdahl s=0.450 ...", (1, 1): "2 distinct CPU allocations ...: linear", (1, 2): "..."}


def save_with_curves(tmp_path: Path) -> tuple[Path, Path]:
    csv = tmp_path / "profile.csv"
    write_csv(synthetic_rows(20), csv)
    root = tmp_path / "models"
    with_curves = replace(trained(), scaling=CURVES, scaling_reasons=REASONS)
    return root, save_models(root, "guest", DAG, with_curves, csv, SNAPSHOT)


def test_curves_are_saved_with_the_models_and_reach_the_predictions(tmp_path: Path) -> None:
    root, version_dir = save_with_curves(tmp_path)
    meta = json.loads((version_dir / "meta.json").read_text())
    assert meta["scaling"]["curves"]["1.0"]["serial_fraction"] == 0.45
    assert set(meta["scaling"]["reasons"]) == {"1.0", "1.1", "1.2"}
    loaded = load_current(root, "guest", DAG)
    assert loaded is not None and loaded.scaling == CURVES and loaded.scaling_reasons == REASONS
    predictions = Predictor(loaded).predict(2e7, [(1, i) for i in range(4)])
    assert [p.scaling for p in predictions] == [CURVES[(1, 0)], None, CURVES[(1, 2)], None]


def test_a_version_saved_before_curves_loads_without_them(saved: tuple[Path, Path]) -> None:
    root, version_dir = saved
    meta = json.loads((version_dir / "meta.json").read_text())
    assert meta["scaling"] == {"curves": {}, "reasons": {}}
    del meta["scaling"]
    (version_dir / "meta.json").write_text(json.dumps(meta))
    loaded = load_current(root, "guest", DAG)
    assert loaded is not None and loaded.scaling == {} and loaded.scaling_reasons == {}
    assert all(p.scaling is None for p in Predictor(loaded).predict(2e7, [(1, 0), (1, 1)]))


def test_a_curve_that_does_not_parse_leaves_its_function_linear(tmp_path: Path) -> None:
    root, version_dir = save_with_curves(tmp_path)
    meta = json.loads((version_dir / "meta.json").read_text())
    meta["scaling"]["curves"]["1.0"] = {"serial_fraction": 7}
    meta["scaling"]["curves"]["not a slot"] = {"serial_fraction": 0.1}
    (version_dir / "meta.json").write_text(json.dumps(meta))
    loaded = load_current(root, "guest", DAG)
    assert loaded is not None and loaded.scaling == {(1, 2): CURVES[(1, 2)]}
    assert loaded.scaling_reasons[(1, 0)].startswith("saved curve unusable")


def test_a_scaling_section_of_the_wrong_shape_loads_as_no_curves(tmp_path: Path) -> None:
    root, version_dir = save_with_curves(tmp_path)
    edit_meta("scaling", {"curves": ["1.0"], "reasons": "none"})(version_dir)
    loaded = load_current(root, "guest", DAG)
    assert loaded is not None and loaded.scaling == {} and loaded.scaling_reasons == {}
