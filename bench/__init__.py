"""Benchmarks for dancodes against a peer run side by side: `python -m bench` (see `bench.__main__`).

`bench.procs` starts and stops the supervisors and watches their children through /proc;
`bench.__main__` runs the measurements and prints the tables.
"""
