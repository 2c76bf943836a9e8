"""Benchmarks (``make bench``). They never run inside the test suite."""
