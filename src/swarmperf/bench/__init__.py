"""The Benchmark Suite: scenarios, load generation, results, quality gates, regressions
(change points, with the TCPD harness)."""
