"""ParallelAES, stage 2 (parallel): encrypt and decrypt one segment, iteratively.

``aes1``, ``aes2`` and ``aes3`` are this same code; the default parameter ``segment``
says which of the split stage's segments is theirs. The segment goes through
``rounds`` layers of AES-256-CTR (pure-Python ``pyaes``: CPU-bound), then back through
them in reverse, and the round trip is checked byte for byte.

CTR mode lets the segment be cut into 16 KiB chunks processed independently (each
chunk's counter starts at its block offset): the result is exactly the whole-segment
encryption, computed by as many worker processes as the CPU quota pays for.
"""

import hashlib
import multiprocessing
import os
import time

import cpu_quota
import pyaes

CHUNK = 16 * 1024  # a multiple of the 16-byte AES block


def round_keys(passphrase, rounds):
    """A key and an initial counter per round, derived from the passphrase."""
    keys = []
    for r in range(rounds):
        material = hashlib.pbkdf2_hmac("sha256", passphrase.encode(), f"gleaner-aes-{r}".encode(), 2000, 40)
        keys.append((material[:32], int.from_bytes(material[32:], "big") << 64))
    return keys


def _ctr(key, counter0, block_offset, data):
    counter = pyaes.Counter(initial_value=(counter0 + block_offset) % (1 << 128))
    return pyaes.AESModeOfOperationCTR(key, counter=counter).encrypt(data)


def process_chunk(task):
    """Encrypt a chunk through every round, decrypt it back, check the round trip."""
    start, chunk, keys = task
    block = start // 16
    data = chunk
    for key, counter0 in keys:
        data = _ctr(key, counter0, block, data)
    ciphertext = data
    for key, counter0 in reversed(keys):
        data = _ctr(key, counter0, block, data)  # CTR decryption is the same keystream XOR
    return ciphertext, data == chunk


def main(args):
    t0 = time.perf_counter()
    segments = args.get("segments")
    index = int(args.get("segment", 0))
    if not isinstance(segments, list) or not 0 <= index < len(segments):
        return {"error": f"expected {{'segments': [...]}} with a segment number {index}"}
    plain = segments[index].encode("utf-8")
    rounds = max(1, int(args.get("rounds", 2)))
    keys = round_keys(str(args.get("passphrase", "gleaner")), rounds)
    tasks = [(i, plain[i : i + CHUNK], keys) for i in range(0, len(plain), CHUNK)]
    workers = min(cpu_quota.worker_count(), max(1, len(tasks)))
    if workers > 1:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            results = pool.map(process_chunk, tasks, chunksize=1)
    else:
        results = [process_chunk(t) for t in tasks]
    digest = hashlib.sha256()
    for ciphertext, _ in results:
        digest.update(ciphertext)
    ok = all(good for _, good in results)
    seconds = time.perf_counter() - t0
    name = os.environ.get("__OW_ACTION_NAME", "aes")
    print(f"{name}: segment {index}, {len(plain)} bytes x {rounds} rounds, {workers} workers, {seconds:.2f}s")
    return {
        "segment": index,
        "bytes": len(plain),
        "rounds": rounds,
        "chunks": len(tasks),
        "workers": workers,
        "ok": ok,
        "sha256": digest.hexdigest(),
        "seconds": seconds,
    }
