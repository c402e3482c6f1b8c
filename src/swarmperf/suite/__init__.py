"""The Benchmark Suite: scenarios, load generation, results, regressions, SLA validation."""
