"""The Resource Allocator's allocation half: pool sizes on the front of cost, latency and risk.

A resources file (`resources.py`) names the pools, prices, speeds, constraints and workload;
a queueing model (`queueing.py`) times each candidate; NSGA-II or enumeration
(`optimise.py`) finds the front; the simulator confirms its points (`confirm.py`); the
cost model (`cost.py`) is the one the performance reports price runs with.
"""
