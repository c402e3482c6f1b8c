"""`python -m swarmperf`: the same as the `swarmperf` command."""

from swarmperf.cli import main

main()
