"""ParallelAES, stage 3: combine the AES functions' results.

Input ``{"value": [aes1, aes2, aes3]}`` (Composer's fan-in convention). Checks that
every segment made the round trip, chains the segment digests in segment order into
one digest of the whole ciphertext, and reports each branch's time and the skew.
"""

import hashlib


def main(args):
    parts = args.get("value")
    if not isinstance(parts, list) or not parts:
        return {"error": "expected {'value': [<aes result>, ...]} from the parallel stage"}
    failed = [p for p in parts if not isinstance(p, dict) or "error" in p or "sha256" not in p]
    if failed:
        return {"error": f"{len(failed)} segment(s) failed", "failed": failed}
    parts = sorted(parts, key=lambda p: p["segment"])
    chain = hashlib.sha256()
    for p in parts:
        chain.update(bytes.fromhex(p["sha256"]))
    seconds = [float(p["seconds"]) for p in parts]
    return {
        "ok": all(p["ok"] for p in parts),
        "segments": len(parts),
        "bytes": sum(int(p["bytes"]) for p in parts),
        "segment_bytes": [int(p["bytes"]) for p in parts],
        "sha256": chain.hexdigest(),
        "seconds": seconds,
        "skew": max(seconds) / max(min(seconds), 1e-9),
    }
