"""Benchmarks: each module a script (python benchmarks/NAME.py) whose figures docs/benchmarks.md quotes."""
