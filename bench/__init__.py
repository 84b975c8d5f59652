"""livecomment benchmark: `python -m bench --help`; see docs/BENCHMARKS.md."""
