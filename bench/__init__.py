"""Benchmarks against peers (run `python -m bench`); not part of the test suite."""
