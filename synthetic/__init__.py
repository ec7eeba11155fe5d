"""Synthetic movies with known lineages: CTC datasets for tests and benchmarks."""
