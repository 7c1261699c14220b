"""Benchmark suite (`make bench` = `python -m bench.run`): speed and size figures, written to bench/RESULTS.md."""
