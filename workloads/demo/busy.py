"""Demo action: count primes below n, burning CPU for a moment.

An ordinary OpenWhisk Python action: ``main(args)`` returns a dict.
"""

import time


def main(args):
    n = int(args.get("n", 200000))
    start = time.time()
    sieve = bytearray([1]) * n
    sieve[0:2] = b"\x00\x00"
    for i in range(2, int(n**0.5) + 1):
        if sieve[i]:
            sieve[i * i :: i] = bytearray(len(sieve[i * i :: i]))
    count = sum(sieve)
    print(f"counted {count} primes below {n} in {time.time() - start:.3f}s")
    return {"n": n, "primes": count}
