"""ParallelAES (thesis Table 3.1): text encryption, 5 functions, depth 3, width 3.

Its DAG: ``split -> parallel(aes1, aes2, aes3) -> merge``.
"""

from __future__ import annotations

from pathlib import Path

from composer.dsl import parallel, sequence
from workloads.catalog import Workload, function_spec
from workloads.parallel_aes import inputs

HERE = Path(__file__).resolve().parent

PARALLEL_AES = Workload(
    name="parallel-aes",
    dag=sequence("split", parallel("aes1", "aes2", "aes3"), "merge"),
    functions=(
        function_spec(HERE, "split", "split", 0.5, 256, 60_000),
        # Segments of 15%, 30% and 55% of the text; the smallest gets the most CPU.
        function_spec(HERE, "aes", "aes1", 0.75, 256, segment=0, rounds=2),
        function_spec(HERE, "aes", "aes2", 0.5, 256, segment=1, rounds=2),
        function_spec(HERE, "aes", "aes3", 0.25, 256, segment=2, rounds=2),
        function_spec(HERE, "merge", "merge", 0.25, 128, 60_000),
    ),
    description=(
        "Text encryption: the text is split into three unequal segments (15/30/55%), each "
        "encrypted and decrypted through two rounds of AES-256-CTR with pure-Python pyaes "
        "in parallel chunks, and the digests merged."
    ),
    generate_inputs=inputs.generate_inputs,
    small_input=inputs.small_input,
)
