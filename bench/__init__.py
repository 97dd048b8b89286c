"""Benchmarks: each figure beside a raw-Temporal baseline measured in the same run."""
