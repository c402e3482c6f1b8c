"""`swarmperf ray-nodes`: a Ray cluster's nodes, their ids (what a spec pins to), resources."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Annotated

import typer

from swarmperf.cli._support import Output, OutputOption, out, user_errors


def ray_nodes(
    address: Annotated[
        str | None,
        typer.Option(
            "--address",
            help="The cluster: ray://<head>:10001, <head>:6379, or auto (default: the "
            "cluster this machine belongs to, as `ray start` left it).",
        ),
    ] = None,
    output: OutputOption = Output.table,
) -> None:
    """List the nodes of a Ray cluster: id, address, alive or dead, resources total and free.

    The id is what `ray.groups.<group>.node` takes to pin a group's agents to a node.
    """
    from rich.table import Table

    from swarmperf.runtime.ray_backend import cluster_nodes

    with user_errors():
        nodes = cluster_nodes(address)
    if output is Output.json:
        print(json.dumps({"nodes": [node.to_dict() for node in nodes]}, indent=2))
        return
    table = Table(title=f"Ray nodes ({sum(n.alive for n in nodes)} alive of {len(nodes)})")
    # The id whole, on one line: it is what a spec's `node` takes, copied from here.
    widest = max((len(node.node_id) for node in nodes), default=8)
    table.add_column("node id", no_wrap=True, min_width=widest)
    for name in ("address", "state", "total", "free"):
        table.add_column(name, overflow="fold")
    for node in nodes:
        state = "alive" if node.alive else "[red]dead[/red]"
        table.add_row(
            node.node_id,
            node.address + (" (head)" if node.head else ""),
            state,
            _resources(node.total),
            "[dim]n/a[/dim]" if node.free is None else _resources(node.free),
        )
    out.print(table)


def _resources(resources: Mapping[str, float]) -> str:
    return ", ".join(f"{name} {_amount(name, v)}" for name, v in resources.items()) or "none"


def _amount(name: str, value: float) -> str:
    if name in ("memory", "object_store_memory"):
        return f"{value / 2**30:.1f}GiB"
    return f"{value:g}"


def register(app: typer.Typer) -> None:
    app.command("ray-nodes")(ray_nodes)
