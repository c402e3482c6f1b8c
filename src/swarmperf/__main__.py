"""`python -m swarmperf`: the same as the `swarmperf` command."""

from swarmperf.cli.main import main

main()
