"""Demo DAG, stage 1: cut the text into three segments of deliberately unequal size.

Input ``{"text": "..."}``; the default ``fractions`` [0.15, 0.30, 0.55] give the three
checksum functions of the next stage about 1x, 2x and 3.7x the same work: a skewed
parallel stage whose straggler grows with the input.
"""

import itertools
import time


def main(args):
    start = time.perf_counter()
    text = args.get("text")
    if not isinstance(text, str):
        return {"error": "expected {'text': '...'}"}
    fractions = [float(f) for f in args.get("fractions", [0.15, 0.30, 0.55])]
    if not fractions or min(fractions) <= 0:
        return {"error": "fractions must be positive"}
    total, bounds, acc = sum(fractions), [0], 0.0
    for f in fractions[:-1]:
        acc += f / total
        bounds.append(int(len(text) * acc))
    bounds.append(len(text))
    segments = [text[a:b] for a, b in itertools.pairwise(bounds)]
    return {"segments": segments, "bytes": [len(s) for s in segments], "seconds": time.perf_counter() - start}
