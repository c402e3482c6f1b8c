"""A swarm that keeps running: the HTTP service, its durable intake and the registry of live swarms.

Importing this package loads nothing heavy; `swarmperf.service.server` brings in the web stack.
"""
