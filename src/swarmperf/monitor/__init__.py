"""The Performance Monitor: metrics, collectors, Prometheus, bottlenecks, SLAs, alerts."""
