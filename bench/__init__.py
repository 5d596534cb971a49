"""Benchmarks (pytest bench --benchmark-only); a package so that bench/conftest.py imports as
bench.conftest and never shadows tests/conftest.py in ``pytest tests bench``."""
