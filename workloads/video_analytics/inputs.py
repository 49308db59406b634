"""Synthetic videos of handwritten digits, the VideoAnalytics DAG's inputs.

Each video is a Motion-JPEG AVI written with OpenCV's own MJPEG encoder (deterministic:
the same seed gives the same bytes). It is a run of short scenes; a scene shows 3-8
digits from scikit-learn's ``load_digits`` set, upscaled, drifting slowly over a light,
noisy background. Frame count and resolution vary per input, so the work of the
recognition functions (which grows with frames x pixels) varies with the input size.
"""

from __future__ import annotations

import base64
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from workloads.inputs import write_inputs
from workloads.video_analytics.recognition import digits

FPS = 10
RESOLUTIONS = ((320, 240), (480, 360), (640, 480))
MIN_FRAMES = 8
MAX_FRAMES = 120


@cache
def _dataset() -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    from sklearn.datasets import load_digits

    data = load_digits()
    return data.images, data.target


def _scene(rng: np.random.Generator, width: int, height: int) -> list[dict[str, Any]]:
    images, labels = _dataset()
    size = int(height * rng.uniform(0.16, 0.24))
    cell = int(size * 1.6)  # spacing keeps neighbours from touching
    cols, rows = max(1, width // cell), max(1, height // cell)
    count = min(int(rng.integers(3, 9)), cols * rows)
    items = []
    for slot in rng.choice(cols * rows, size=count, replace=False):
        r, c = divmod(int(slot), cols)
        k = int(rng.integers(len(labels)))
        items.append(
            {
                "cover": digits.glyph(images[k], size),
                "label": int(labels[k]),
                "x": c * cell + int(rng.integers(0, cell - size + 1)),
                "y": r * cell + int(rng.integers(0, cell - size + 1)),
                "vx": int(rng.integers(-1, 2)),
                "vy": int(rng.integers(-1, 2)),
            }
        )
    return items


def make_video(
    rng: np.random.Generator, frames: int, width: int, height: int
) -> tuple[bytes, list[list[int]]]:
    """An MJPEG AVI and, per frame, the digits it shows (reading order is not kept)."""
    truth: list[list[int]] = []
    with tempfile.TemporaryDirectory(prefix="gleaner-video-") as tmp:
        path = Path(tmp) / "video.avi"
        writer = cv2.VideoWriter(
            str(path), cv2.CAP_OPENCV_MJPEG, cv2.VideoWriter.fourcc(*"MJPG"), FPS, (width, height)
        )
        if not writer.isOpened():
            raise RuntimeError("OpenCV cannot write MJPEG AVI files")
        writer.set(cv2.VIDEOWRITER_PROP_QUALITY, 40)  # keeps 120 VGA frames near 4 MB
        scene: list[dict[str, Any]] = []
        background = 0.0
        for f in range(frames):
            if f % 10 == 0:  # a new scene every second
                scene = _scene(rng, width, height)
                background = float(rng.integers(185, 236))
            t = f % 10
            canvas = np.full((height, width), background, np.float32)
            for item in scene:
                size = item["cover"].shape[0]
                x = int(np.clip(item["x"] + item["vx"] * t, 0, width - size))
                y = int(np.clip(item["y"] + item["vy"] * t, 0, height - size))
                digits.paint(canvas, item["cover"], x, y)
            canvas += rng.normal(0.0, 2.0, canvas.shape)  # sensor noise
            gray = np.clip(canvas, 0, 255).astype(np.uint8)
            writer.write(cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR))
            truth.append(sorted(item["label"] for item in scene))
        writer.release()
        return path.read_bytes(), truth


def video_input(rng: np.random.Generator, frames: int, width: int, height: int) -> dict[str, Any]:
    data, _ = make_video(rng, frames, width, height)
    return {"video": base64.b64encode(data).decode("ascii"), "format": "avi/mjpeg"}


def _params(rng: np.random.Generator) -> tuple[int, int, int]:
    frames = round(float(np.exp(rng.uniform(np.log(MIN_FRAMES), np.log(MAX_FRAMES)))))
    width, height = RESOLUTIONS[int(rng.integers(len(RESOLUTIONS)))]
    return frames, width, height


def plan(n: int, seed: int) -> list[tuple[int, int, int]]:
    """(frames, width, height) of each input :func:`generate_inputs` writes."""
    return [_params(np.random.default_rng([seed, i])) for i in range(n)]


def generate_inputs(n: int, seed: int, out_dir: Path) -> list[Path]:
    """``n`` videos, 8-120 frames (log-uniform) at 320x240 to 640x480: ~0.1 to ~5.5 MB of JSON."""

    def one(i: int) -> dict[str, Any]:
        rng = np.random.default_rng([seed, i])
        return video_input(rng, *_params(rng))

    return write_inputs(out_dir, n, one, desc="video inputs")


SMALL = (16, 320, 240)  # frames, width, height
SMALL_SEED = 7


def small_input() -> dict[str, Any]:
    """Sixteen 320x240 frames: the whole DAG runs in a few seconds."""
    return video_input(np.random.default_rng(SMALL_SEED), *SMALL)
