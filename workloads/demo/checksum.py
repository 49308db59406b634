"""Demo DAG, stage 2 (parallel): checksum one segment, ``rounds`` times over.

``demo-checksum1``..``3`` are this same code; the default parameter ``segment`` says
which of the split's segments is theirs. A pure-Python FNV-1a loop: CPU-bound, one
core at most, its time proportional to the segment's size, so the function given
the largest segment is the stage's straggler.
"""

import time


def fnv1a(data, rounds):
    h = 2166136261
    for _ in range(rounds):
        for b in data:
            h = ((h ^ b) * 16777619) & 0xFFFFFFFF
    return h


def main(args):
    start = time.perf_counter()
    segments = args.get("segments")
    index = int(args.get("segment", 0))
    if not isinstance(segments, list) or not 0 <= index < len(segments):
        return {"error": f"expected {{'segments': [...]}} with a segment {index}"}
    data = str(segments[index]).encode()
    digest = fnv1a(data, max(1, int(args.get("rounds", 64))))
    return {
        "segment": index,
        "bytes": len(data),
        "fnv1a": f"{digest:08x}",
        "seconds": time.perf_counter() - start,
    }
