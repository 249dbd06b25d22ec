"""Benchmark scripts, run as `python benchmarks/NAME.py`; tests import helpers from them (benchmarks.photos)."""
