"""VideoAnalytics, stage 1: take in a video stream and hand it on in chunks.

Input ``{"video": <base64 AVI>, ...}``. Checks that the container opens and has frames,
reads its metadata (codec, frame size, rate, count) and re-chunks the bytes into pieces
of at most ``chunk_kb`` KiB, as a streaming front end would deliver them.
"""

import base64
import tempfile
import time

import cv2

cv2.setNumThreads(1)


def probe(data):
    """Container metadata, read by OpenCV from a temporary file."""
    with tempfile.NamedTemporaryFile(suffix=".avi") as fh:
        fh.write(data)
        fh.flush()
        cap = cv2.VideoCapture(fh.name)
        try:
            if not cap.isOpened():
                raise ValueError("not a video OpenCV can open")
            fourcc = int(cap.get(cv2.CAP_PROP_FOURCC))
            meta = {
                "codec": "".join(chr((fourcc >> (8 * i)) & 0xFF) for i in range(4)),
                "width": int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
                "height": int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
                "fps": float(cap.get(cv2.CAP_PROP_FPS)),
                "frames": int(cap.get(cv2.CAP_PROP_FRAME_COUNT)),
            }
            ok, _ = cap.read()
            if not ok:
                raise ValueError("the video has no readable frame")
        finally:
            cap.release()
    return meta


def main(args):
    start = time.perf_counter()
    if not isinstance(args.get("video"), str):
        return {"error": "expected {'video': <base64 video>}"}
    data = base64.b64decode(args["video"])
    meta = probe(data)
    chunk = max(1, int(args.get("chunk_kb", 256))) * 1024
    chunks = [base64.b64encode(data[i : i + chunk]).decode("ascii") for i in range(0, len(data), chunk)]
    meta["bytes"] = len(data)
    print(f"streaming: {len(data)} bytes, {meta['frames']} frames {meta['width']}x{meta['height']}")
    return {
        "chunks": chunks,
        "meta": meta,
        "seconds": time.perf_counter() - start,
    }
