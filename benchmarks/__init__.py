"""koyeb-auth benchmarks: `python -m benchmarks` prints every table as markdown."""
