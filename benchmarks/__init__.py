"""Benchmarks: scripts that measure and write docs/benchmarks.md."""
