"""Command-line modules: each defines `register(app)` and is picked up by `swarmperf.cli`."""
