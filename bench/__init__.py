"""Benchmarks for issue 5; each module says what it measures and how to run it."""
