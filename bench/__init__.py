"""Benchmark scripts: each prints ours against a reference measured in the same run."""
