"""VideoAnalytics, stage 2: decode the video into frames.

Input: the streaming stage's ``{"chunks": [...], "meta": {...}}``. Reassembles the
bytes, reads every frame with ``cv2.VideoCapture`` and emits each one as a base64 JPEG
(grey: colour carries nothing for digit recognition) with the video's metadata.
"""

import base64
import tempfile
import time

import cv2

cv2.setNumThreads(1)


def main(args):
    start = time.perf_counter()
    chunks = args.get("chunks")
    if not isinstance(chunks, list) or not chunks:
        return {"error": "expected {'chunks': [<base64 piece>, ...]}"}
    data = b"".join(base64.b64decode(c) for c in chunks)
    quality = int(args.get("jpeg_quality", 85))
    frames = []
    with tempfile.NamedTemporaryFile(suffix=".avi") as fh:
        fh.write(data)
        fh.flush()
        cap = cv2.VideoCapture(fh.name)
        try:
            while True:
                ok, frame = cap.read()
                if not ok:
                    break
                gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
                ok, jpeg = cv2.imencode(".jpg", gray, [cv2.IMWRITE_JPEG_QUALITY, quality])
                if not ok:
                    raise RuntimeError(f"cannot encode frame {len(frames)}")
                frames.append(base64.b64encode(jpeg.tobytes()).decode("ascii"))
        finally:
            cap.release()
    if not frames:
        return {"error": "no frame could be decoded"}
    meta = dict(args.get("meta") or {})
    meta["decoded_frames"] = len(frames)
    print(f"decoder: {len(frames)} frames from {len(data)} bytes")
    return {"frames": frames, "meta": meta, "seconds": time.perf_counter() - start}
