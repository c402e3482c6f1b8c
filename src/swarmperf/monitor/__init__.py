"""The Performance Monitor, live: metrics and sketches, collectors of the machine and the
swarm, the sampling loop, and Prometheus exposition."""
