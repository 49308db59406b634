"""Every workload function run on the host, chained as its DAG chains them.

Each function runs in a fresh interpreter through the real action proxy's
``Action.init``/``Action.run`` (``workloads.local``), from the same zip that
``workloads.deploy`` uploads; parallel stages fan in as ``{"value": [...]}``.
Needs the host copies of the function libraries (the ``workloads`` extra).
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from workloads.catalog import WORKLOADS
from workloads.local import FunctionFailed, call, run_dag

for module in ("cv2", "lightgbm", "pyaes", "sklearn", "joblib"):
    pytest.importorskip(module)


def test_video_analytics_recognises_the_digits() -> None:
    from workloads.video_analytics.inputs import SMALL, SMALL_SEED, make_video

    w = WORKLOADS["video-analytics"]
    out, trace = run_dag(w, w.small_input())
    assert [r.name for r in trace] == ["streaming", "decoder", "recognition1", "recognition2"]
    streamed = trace[0].result
    frames = SMALL[0]
    assert streamed["meta"]["codec"] == "MJPG" and streamed["meta"]["frames"] == frames
    assert trace[1].result["meta"]["decoded_frames"] == frames
    r1, r2 = out["value"]
    assert (r1["frames"], r2["frames"]) == (frames // 4, frames * 3 // 4)  # the 25% / 75% shares
    assert {d["frame"] for d in r1["digits"]}.isdisjoint(d["frame"] for d in r2["digits"])
    _, truth = make_video(np.random.default_rng(SMALL_SEED), *SMALL)  # small_input's video
    hits = total = 0
    for d in r1["digits"] + r2["digits"]:
        hits += sum((Counter(truth[d["frame"]]) & Counter(d["digits"])).values())
        total += len(truth[d["frame"]])
    assert hits / total > 0.6  # chance is 0.1


def test_parallel_aes_round_trips_every_segment() -> None:
    w = WORKLOADS["parallel-aes"]
    args = w.small_input()
    out, trace = run_dag(w, args)
    assert [r.name for r in trace] == ["split", "aes1", "aes2", "aes3", "merge"]
    sizes = trace[0].result["bytes"]
    assert sum(sizes) == len(args["text"].encode()) and sizes[0] < sizes[1] < sizes[2]
    assert out["ok"] is True and out["segments"] == 3 and out["segment_bytes"] == sizes
    assert [r.result["segment"] for r in trace[1:4]] == [0, 1, 2]
    assert all(r.result["ok"] for r in trace[1:4])
    # Same input, same ciphertext (deterministic keys and counters).
    assert call(w.function("aes3"), trace[0].result)["sha256"] == trace[3].result["sha256"]


def test_aes_ciphertext_does_not_depend_on_the_chunking() -> None:
    w = WORKLOADS["parallel-aes"]
    text = "lorem ipsum " * 4000  # 48 KB: three 16 KiB chunks
    spec = w.function("aes1")
    whole = call(spec, {"segments": [text], "segment": 0, "rounds": 1})
    import hashlib

    import pyaes

    key, counter0 = _round_key()
    ct = pyaes.AESModeOfOperationCTR(key, counter=pyaes.Counter(counter0)).encrypt(text.encode())
    assert whole["sha256"] == hashlib.sha256(ct).hexdigest()
    assert whole["chunks"] == 3


def _round_key() -> tuple[bytes, int]:
    import hashlib

    material = hashlib.pbkdf2_hmac("sha256", b"gleaner", b"gleaner-aes-0", 2000, 40)
    return material[:32], int.from_bytes(material[32:], "big") << 64


def test_ml_pipeline_trains_and_picks_the_best() -> None:
    w = WORKLOADS["ml-pipeline"]
    out, trace = run_dag(w, w.small_input())
    assert [r.name for r in trace] == ["preprocess", "train1", "train2", "train3", "train4", "evaluate"]
    prep = trace[0].result
    assert prep["imputed"] > 0 and prep["rows"]["duplicates"] > 0
    assert abs(prep["rows"]["train"] - 4 * prep["rows"]["test"]) <= 5  # 80/20
    trees = [r.result["hyperparameters"]["trees"] for r in trace[1:5]]
    assert trees == [25, 50, 100, 300]
    assert out["best"]["accuracy"] > 0.7
    assert out["best"]["accuracy"] == max(r.result["accuracy"] for r in trace[1:5])
    assert len(out["leaderboard"]) == 4 and out["failed"] == 0


def test_bad_input_is_an_error_result() -> None:
    w = WORKLOADS["parallel-aes"]
    with pytest.raises(FunctionFailed, match="expected"):
        call(w.function("merge"), {"nope": 1})
