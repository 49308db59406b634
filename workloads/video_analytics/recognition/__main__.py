"""VideoAnalytics, stage 3 (parallel): recognise the handwritten digits in a share of
the frames.

``recognition1`` and ``recognition2`` are this same code with different default
parameters: frame ``i`` belongs to this function when ``offset <= i % period <
offset + take``. The catalog gives recognition1 one frame in four and recognition2
the other three, so the two branches of the stage do unequal work (skew), as ORION
observed in real DAGs.

Each frame is denoised (non-local means), segmented into digit blobs and classified by
an SVM trained on scikit-learn's digits (see ``digits.py``). Frames are spread over as
many worker processes as the container's CPU quota pays for, so a bigger allocation
really finishes sooner.
"""

import base64
import multiprocessing
import os
import time
from collections import Counter

import cpu_quota
import cv2
import digits
import numpy as np

# Loaded when the action is initialised (OpenWhisk's /init), not on the first run, so a
# cold start pays for it once as init time; forked workers inherit it.
_MODEL = digits.load_model()


def _model():
    return _MODEL


def _worker_init():
    cv2.setNumThreads(1)  # the processes are the parallelism; no nested thread pools


def _recognize(item):
    index, b64 = item
    gray = cv2.imdecode(np.frombuffer(base64.b64decode(b64), np.uint8), cv2.IMREAD_GRAYSCALE)
    if gray is None:
        return index, None
    return index, digits.recognize(gray, _model())


def select(count, offset, take, period):
    return [i for i in range(count) if offset <= i % period < offset + take]


def main(args):
    start = time.perf_counter()
    frames = args.get("frames")
    if not isinstance(frames, list):
        return {"error": "expected {'frames': [<base64 JPEG>, ...]} from the decoder"}
    period = max(1, int(args.get("period", 4)))
    offset = int(args.get("offset", 0)) % period
    take = max(1, min(period - offset, int(args.get("take", 1))))
    mine = [(i, frames[i]) for i in select(len(frames), offset, take, period)]
    workers = min(cpu_quota.worker_count(), max(1, len(mine)))
    if workers > 1:
        ctx = multiprocessing.get_context("fork")
        with ctx.Pool(workers, initializer=_worker_init) as pool:
            results = pool.map(_recognize, mine, chunksize=max(1, len(mine) // (workers * 4)))
    else:
        _worker_init()
        results = [_recognize(item) for item in mine]
    histogram = Counter(d for _, found in results if found for d in found)
    seconds = time.perf_counter() - start
    name = os.environ.get("__OW_ACTION_NAME", "recognition")
    print(f"{name}: {len(mine)}/{len(frames)} frames, {workers} workers, {seconds:.2f}s")
    return {
        "share": {"offset": offset, "take": take, "period": period},
        "frames": len(mine),
        "workers": workers,
        "digits": [{"frame": i, "digits": found} for i, found in results],
        "histogram": {str(k): histogram[k] for k in sorted(histogram)},
        "seconds": seconds,
    }
