"""Benchmarks: aiopool side by side with its peers. Run ``python -m bench --help``."""
