"""Benchmark scripts (each prints one JSON object; see benchmarks/README.md) and their shared helpers."""
