"""Handwritten-digit recognition in video frames, shared by ``recognition1``/``recognition2``
(inside their zip), the workload image's build-time training step and the input
generator (which draws the frames with :func:`glyph`).

The classifier is an RBF SVM trained on scikit-learn's bundled ``load_digits`` set (no
download). The frames show those digits upscaled, so training renders every digit the
same way (upscale, ink on a noisy background, JPEG round trip) and extracts features
with the same code as recognition: denoise, tight ink box, pad to a square, 16x16.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

Image = NDArray[Any]

MODEL_ENV = "GLEANER_DIGITS_MODEL"
MODEL_PATH = "/opt/gleaner/models/digits.joblib"  # written by the image build
SIDE = 16  # feature image side (pixels)
INK = 30  # grey level of the pen


def _fingerprint() -> str:
    # A saved model is only valid for the feature code that trained it: it is stored
    # with a hash of this file, and a model from another version is not used.
    with open(__file__, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()[:16]


FINGERPRINT = _fingerprint()


def glyph(image8: Image, size: int) -> Image:
    """A ``load_digits`` image (8x8, values 0..16) as a size x size ink coverage map in [0, 1]."""
    cover = cv2.resize(np.asarray(image8, np.float32) / 16.0, (size, size), interpolation=cv2.INTER_CUBIC)
    return np.clip(cover, 0.0, 1.0)


def paint(canvas: Image, cover: Image, x: int, y: int) -> None:
    """Draw ink coverage ``cover`` onto the grey ``canvas`` (float32) at (x, y)."""
    h, w = cover.shape
    region = canvas[y : y + h, x : x + w]
    region[...] = region * (1.0 - cover) + INK * cover


def denoise(gray: Image) -> Image:
    # Non-local means: the frames carry sensor-like noise and MJPEG artefacts. This is
    # the bulk of the per-frame cost and it grows with the frame's pixel count.
    return cv2.fastNlMeansDenoising(gray, None, h=12, templateWindowSize=5, searchWindowSize=11)


def features(gray_crop: Image) -> Image:
    """Feature vector of one digit crop (dark ink on a light background)."""
    ink = 255.0 - gray_crop.astype(np.float32)
    ink -= np.percentile(ink, 20)  # the background level
    ink = np.clip(ink, 0, None)
    mask = ink > 0.35 * (ink.max() or 1.0)
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return np.zeros(SIDE * SIDE, np.float32)
    ink = ink[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    h, w = ink.shape
    side = int(max(h, w) * 1.15) + 2  # a margin, as in the 8x8 originals
    square = np.zeros((side, side), np.float32)
    top, left = (side - h) // 2, (side - w) // 2
    square[top : top + h, left : left + w] = ink
    small = cv2.resize(square, (SIDE, SIDE), interpolation=cv2.INTER_AREA)
    peak = float(small.max()) or 1.0
    return (small / peak).ravel()


def find_digits(gray: Image) -> tuple[Image, list[tuple[int, int, int, int]]]:
    """Bounding boxes (x, y, w, h) of the digits in a grey frame, reading order."""
    clean = denoise(gray)
    _, ink = cv2.threshold(clean, 0, 255, cv2.THRESH_BINARY_INV | cv2.THRESH_OTSU)
    height = gray.shape[0]
    # Strokes of an upscaled 8x8 digit can be split by a blank pixel: close the gap.
    k = max(3, height // 60)
    merged = cv2.dilate(ink, np.ones((k, k), np.uint8))
    n, _, stats, _ = cv2.connectedComponentsWithStats(merged, connectivity=8)
    boxes = []
    for x, y, w, h, area in stats[1:n]:
        # Digits are blobs of a sensible size; specks of noise and frame-wide blobs are not.
        if h >= max(10, height // 20) and area >= 0.15 * w * h and h < 0.8 * height:
            boxes.append((int(x), int(y), int(w), int(h)))
    boxes.sort(key=lambda b: (b[1] // max(1, height // 6), b[0]))
    return clean, boxes


def recognize(gray: Image, model: Any) -> list[int]:
    """Digits in a grey frame, in reading order."""
    clean, boxes = find_digits(gray)
    if not boxes:
        return []
    feats = np.stack([features(clean[y : y + h, x : x + w]) for x, y, w, h in boxes])
    return [int(d) for d in model.predict(feats)]


# --------------------------------------------------------------------------- training
def training_set(seed: int = 0, renders: int = 2) -> tuple[Image, Image]:
    """Every ``load_digits`` image rendered ``renders`` times as it appears in a frame."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(seed)
    cv2.setNumThreads(1)  # many tiny images: OpenCV's thread pool only adds overhead
    xs, ys = [], []
    for image, label in zip(digits.images, digits.target, strict=True):
        for _ in range(renders):
            size = int(rng.integers(20, 65))  # denoising cost grows with size; 20-64 px suffice
            pad = size // 3
            background = float(rng.integers(180, 236))
            canvas = np.full((size + 2 * pad, size + 2 * pad), background, np.float32)
            paint(canvas, glyph(image, size), pad, pad)
            canvas += rng.normal(0.0, 5.0, canvas.shape)
            frame = np.clip(canvas, 0, 255).astype(np.uint8)
            _, jpeg = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(60, 95))])
            frame = denoise(cv2.imdecode(jpeg, cv2.IMREAD_GRAYSCALE))  # type: ignore[arg-type]
            xs.append(features(frame))
            ys.append(int(label))
    return np.stack(xs), np.asarray(ys)


def train(seed: int = 0) -> Any:
    from sklearn.svm import SVC

    x, y = training_set(seed)
    return SVC(C=10.0, gamma="scale").fit(x, y)


def save(model: Any, path: str) -> None:
    import joblib

    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path) or ".", suffix=".part")
    os.close(fd)
    joblib.dump({"model": model, "fingerprint": FINGERPRINT}, tmp)
    os.replace(tmp, path)  # atomic: two functions training at once never see half a file


def _fallback_path() -> str:
    import sklearn

    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    name = f"digits-{FINGERPRINT}-sklearn{sklearn.__version__}.joblib"
    return os.path.join(cache, "gleaner-workloads", name)


def load_model() -> Any:
    """The image's model (trained at build time); elsewhere (host tests), or when the
    image's model belongs to other feature code, train once and cache it."""
    import joblib

    for path in (os.environ.get(MODEL_ENV), MODEL_PATH, _fallback_path()):
        if path and os.path.isfile(path):
            saved = joblib.load(path)
            if isinstance(saved, dict) and saved.get("fingerprint") == FINGERPRINT:
                return saved["model"]
    model = train()
    save(model, _fallback_path())
    return model
