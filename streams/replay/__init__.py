"""Stream replay: open-loop DAG requests from a trace, for benchmarks and evaluation."""
