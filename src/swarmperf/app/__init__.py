"""The application layer: build a swarm or a simulation from a spec, run it, store it,
compare strategies. The only place that knows every backend."""
