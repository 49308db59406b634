"""Versioned model store on the local file system.

Layout, one directory per training run, never modified once written::

    <root>/<namespace>/<dag>/
        v1/ v2/ ...                  one version each:
            input_size.joblib        ML1
            cpu.joblib               ML2-CPU
            memory.joblib            ML2-memory
            duration.joblib          ML2-duration (missing from versions saved before it)
            meta.json                what, when, from which data, how good; and each
                                     parallel function's scaling curve (``scaling``)
            dataset.csv              the exact rows it was trained on
        current                      text file naming the live version ("v2")

A version is written into a temporary directory and renamed into place, then
``current`` is replaced atomically (write a temporary file, rename), so a reader
sees either the old version or the new one, never a half-written one.

A version without a duration model (saved before it existed) still loads: its
predictor predicts no duration, and plans fall back to what needs no work model.
A version without scaling curves (or with one that does not parse) loads too:
those functions plan with the linear model.

joblib files are pickles: load only model directories you wrote yourself.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import shutil
import sys
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import joblib
import numpy as np
import sklearn

from gleaner.errors import GleanerError
from predictor.allocation import AllowedValues
from predictor.models import REQUIRED_TARGETS, TARGETS, TrainedModels
from predictor.scaling import ScalingCurve, parse_slot_key, slot_key

FORMAT_VERSION = 1
CURRENT = "current"
_VERSION_DIR = re.compile(r"^v(\d+)$")


class ModelLoadError(GleanerError):
    """Saved models that cannot be used: missing or corrupt files, or an incompatible version."""


def _component(name: str) -> str:
    """A namespace or DAG name as one safe path component."""
    if name in ("", ".", ".."):
        raise GleanerError(f"{name!r} cannot name a model directory")
    return quote(name, safe="@ ")


def dag_dir(root: Path, namespace: str, dag: str) -> Path:
    return root / _component(namespace) / _component(dag)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def library_versions() -> dict[str, str]:
    return {
        "python": sys.version.split()[0],
        "scikit-learn": sklearn.__version__,
        "numpy": np.__version__,
        "joblib": joblib.__version__,
    }


def _jsonable(value: Any) -> Any:
    """NaN and infinities as null, tuples as lists: strict JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return _jsonable(value.item())
    return value


def _count_rows(csv_path: Path) -> int:
    with csv_path.open("rb") as f:
        return max(0, sum(1 for line in f if line.strip()) - 1)  # minus the header


def _versions(directory: Path) -> list[int]:
    if not directory.is_dir():
        return []
    return sorted(int(m.group(1)) for p in directory.iterdir() if (m := _VERSION_DIR.match(p.name)))


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def save_models(
    root: Path,
    namespace: str,
    dag: str,
    trained: TrainedModels,
    dataset_path: Path,
    settings_snapshot: Mapping[str, Any],
) -> Path:
    """Write a new version of ``dag``'s models and make it current; returns its directory."""
    directory = dag_dir(root, namespace, dag)
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f".tmp-{uuid.uuid4().hex}"
    tmp.mkdir()
    try:
        shutil.copyfile(dataset_path, tmp / "dataset.csv")
        models: dict[str, Any] = {}
        for target in (t for t in TARGETS if t in trained.models):
            file = tmp / f"{target}.joblib"
            joblib.dump(trained.models[target], file)
            models[target] = {
                "model": trained.model_names[target],
                "file": file.name,
                "sha256": sha256_of(file),
                "features": list(trained.features[target]),
                "metrics": dict(trained.metrics.get(target, {})),
            }
        meta: dict[str, Any] = {
            "format": FORMAT_VERSION,
            "namespace": namespace,
            "dag": dag,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "dataset": {
                "file": "dataset.csv",
                "source": str(dataset_path),
                "sha256": sha256_of(tmp / "dataset.csv"),
                "rows": _count_rows(tmp / "dataset.csv"),
            },
            "allowed": trained.allowed.as_dict(),
            "settings": dict(settings_snapshot),
            "models": models,
            "scaling": _scaling_meta(trained),
            "libraries": library_versions(),
        }
        # Claim the next free version by renaming; a concurrent writer makes us retry.
        while True:
            version = max(_versions(directory), default=0) + 1
            meta["version"] = version
            (tmp / "meta.json").write_text(json.dumps(_jsonable(meta), indent=2) + "\n", encoding="utf-8")
            final = directory / f"v{version}"
            try:
                final.mkdir()  # fails if another writer took this version
            except FileExistsError:
                continue
            os.replace(tmp, final)  # onto the empty directory we just claimed
            break
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _write_atomically(directory / CURRENT, f"v{version}\n")
    return final


def _scaling_meta(trained: TrainedModels) -> dict[str, Any]:
    """Curves and the reasons by ``"stage.index"``: small, plain JSON next to the models."""
    return {
        "curves": {slot_key(s): c.to_dict() for s, c in sorted(trained.scaling.items())},
        "reasons": {slot_key(s): why for s, why in sorted(trained.scaling_reasons.items())},
    }


def _scaling_from_meta(
    meta: Mapping[str, Any],
) -> tuple[dict[tuple[int, int], ScalingCurve], dict[tuple[int, int], str]]:
    """The saved curves; an entry that does not parse is left out with its reason
    (its function plans linearly), never failing the load: the models are still good."""
    scaling = meta.get("scaling")
    if not isinstance(scaling, Mapping):
        return {}, {}  # saved before curves

    def entries(name: str) -> list[tuple[Any, Any]]:
        found = scaling.get(name)
        return list(found.items()) if isinstance(found, Mapping) else []

    curves: dict[tuple[int, int], ScalingCurve] = {}
    reasons: dict[tuple[int, int], str] = {}
    for key, why in entries("reasons"):
        with contextlib.suppress(ValueError):
            reasons[parse_slot_key(str(key))] = str(why)
    for key, entry in entries("curves"):
        try:
            slot = parse_slot_key(str(key))
        except ValueError:
            continue
        try:
            curves[slot] = ScalingCurve.from_dict(entry)
        except ValueError as exc:
            reasons[slot] = f"saved curve unusable ({exc}): linear"
    return curves, reasons


def _read_meta(version_dir: Path) -> dict[str, Any]:
    path = version_dir / "meta.json"
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ModelLoadError(f"{path} is missing") from exc
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"{path} is corrupt: {exc}") from exc
    if not isinstance(meta, dict):
        raise ModelLoadError(f"{path} is corrupt: not a JSON object")
    if meta.get("format") != FORMAT_VERSION:
        raise ModelLoadError(
            f"{path}: model format {meta.get('format')!r} is incompatible with this Gleaner "
            f"(format {FORMAT_VERSION}); retrain the DAG"
        )
    saved = str(meta.get("libraries", {}).get("scikit-learn", "?"))
    if _minor(saved) != _minor(sklearn.__version__):
        raise ModelLoadError(
            f"{path}: models were saved with scikit-learn {saved}, this is {sklearn.__version__}; "
            "retrain the DAG"
        )
    return meta


def _load_model(version_dir: Path, target: str, entry: Any) -> Any:
    if not isinstance(entry, dict) or "file" not in entry:
        raise ModelLoadError(f"{version_dir}/meta.json names no model file for {target}")
    path = version_dir / str(entry["file"])
    if not path.is_file():
        raise ModelLoadError(f"{path} ({target} model) is missing")
    try:
        checksum = sha256_of(path)
    except OSError as exc:
        raise ModelLoadError(f"{path} ({target} model) cannot be read: {exc}") from exc
    if checksum != entry.get("sha256"):
        raise ModelLoadError(f"{path} ({target} model) is corrupt: its checksum does not match meta.json")
    try:
        return joblib.load(path)
    except Exception as exc:  # unpickling can fail in many ways; all mean "unusable"
        raise ModelLoadError(f"{path} ({target} model) cannot be loaded: {exc}") from exc


def load_current(root: Path, namespace: str, dag: str) -> TrainedModels | None:
    """The current models of ``dag``; None when it was never trained."""
    directory = dag_dir(root, namespace, dag)
    pointer = directory / CURRENT
    if not pointer.exists():
        return None
    try:
        name = pointer.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ModelLoadError(f"{pointer} cannot be read: {exc}") from exc
    match = _VERSION_DIR.match(name)
    if match is None:
        raise ModelLoadError(f"{pointer} is corrupt: {name[:40]!r} does not name a version")
    version_dir = directory / name
    if not version_dir.is_dir():
        raise ModelLoadError(f"{pointer} points at {name}, which is missing")
    meta = _read_meta(version_dir)
    entries = meta.get("models", {})
    try:
        # Optional targets (duration) are loaded when saved; required ones must be.
        targets = [t for t in TARGETS if t in REQUIRED_TARGETS or t in entries]
        allowed = AllowedValues.from_dict(meta["allowed"])
        features = {t: tuple(str(f) for f in entries[t]["features"]) for t in targets}
        names = {t: str(entries[t]["model"]) for t in targets}
    except (KeyError, TypeError, ValueError, GleanerError) as exc:
        raise ModelLoadError(f"{version_dir}/meta.json is incomplete: {exc}") from exc
    for t in targets:
        if features[t] != TARGETS[t].features:
            raise ModelLoadError(
                f"{version_dir}: {t} model uses features {features[t]}, this Gleaner expects "
                f"{TARGETS[t].features}; retrain the DAG"
            )
    models = {t: _load_model(version_dir, t, entries.get(t)) for t in targets}
    curves, reasons = _scaling_from_meta(meta)
    return TrainedModels(
        namespace=namespace,
        dag=dag,
        models=models,
        model_names=names,
        features=features,
        allowed=allowed,
        metrics={t: entries[t].get("metrics", {}) for t in targets},
        version=int(match.group(1)),
        created=str(meta.get("created", "")),
        scaling=curves,
        scaling_reasons=reasons,
    )
