"""Demo DAG, stage 3: combine the checksums (Composer's fan-in: ``{"value": [...]}``)
and report each branch's time and the stage's skew."""


def main(args):
    parts = args.get("value")
    if not isinstance(parts, list) or not parts:
        return {"error": "expected {'value': [<checksum result>, ...]} from the parallel stage"}
    failed = [p for p in parts if not isinstance(p, dict) or "fnv1a" not in p]
    if failed:
        return {"error": f"{len(failed)} segment(s) failed", "failed": failed}
    parts = sorted(parts, key=lambda p: p["segment"])
    seconds = [round(float(p["seconds"]), 3) for p in parts]
    return {
        "checksums": [p["fnv1a"] for p in parts],
        "bytes": [int(p["bytes"]) for p in parts],
        "seconds": seconds,
        "skew": round(max(seconds) / max(min(seconds), 1e-9), 2),
    }
