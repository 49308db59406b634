"""ParallelAES, stage 1: cut the text into three segments of deliberately unequal size.

Input ``{"text": "..."}``. The default ``fractions`` [0.15, 0.30, 0.55] make the
three AES functions of the next stage do about 1x, 2x and 3.7x the same work: the
execution skew of real parallel stages. Cuts fall on whitespace, so words stay whole.
"""

import itertools
import time


def cut_points(text, fractions):
    total = sum(fractions)
    points, acc = [], 0.0
    for f in fractions[:-1]:
        acc += f / total
        at = int(len(text) * acc)
        space = text.find(" ", at)  # the next word boundary
        points.append(len(text) if space < 0 else space)
    return points


def main(args):
    start = time.perf_counter()
    text = args.get("text")
    if not isinstance(text, str):
        return {"error": "expected {'text': '...'}"}
    fractions = [float(f) for f in args.get("fractions", [0.15, 0.30, 0.55])]
    if not fractions or min(fractions) <= 0:
        return {"error": "fractions must be positive"}
    bounds = [0, *cut_points(text, fractions), len(text)]
    segments = [text[a:b] for a, b in itertools.pairwise(bounds)]
    sizes = [len(s.encode("utf-8")) for s in segments]
    print(f"split: {len(text)} chars into segments of {sizes} bytes")
    return {"segments": segments, "bytes": sizes, "seconds": time.perf_counter() - start}
