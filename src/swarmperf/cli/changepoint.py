"""`swarmperf changepoint-eval`: run one change-point detector over a TCPD-layout corpus."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from swarmperf.cli._support import Output, OutputOption, UserError, err, out, user_errors
from swarmperf.core.errors import ConfigError

TCPD_SOURCE = (
    "The TCPD corpus comes from https://github.com/alan-turing-institute/TCPD: give the folder "
    "that holds its datasets/ and annotations.json."
)


def changepoint_eval(
    corpus: Annotated[
        Path | None,
        typer.Option(
            "--corpus",
            envvar="SWARMPERF_TCPD_DIR",
            show_envvar=False,
            help="A TCPD-layout directory: datasets/<name>.json or <name>/<name>.json, "
            "and optionally annotations.json (default: $SWARMPERF_TCPD_DIR).",
        ),
    ] = None,
    method: Annotated[
        str,
        typer.Option(
            "--method", help="default, binseg, pelt, edivisive or cusum (one fixed setting)."
        ),
    ] = "default",
    output: OutputOption = Output.table,
) -> None:
    """Detect change points in every series; score them with F1 and covering if annotated."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
    from rich.table import Table

    from swarmperf.bench.changepoint import DEFAULT_METHOD, config_for, detect_changes
    from swarmperf.bench.tcpd import load_corpus, score_corpus

    with user_errors():
        config = config_for(method)
        # The corpus ships apart from swarmperf: say where it comes from.
        if corpus is None:
            raise UserError(
                f"--corpus: none given, and SWARMPERF_TCPD_DIR is not set. {TCPD_SOURCE}"
            )
        if not corpus.is_dir():
            raise ConfigError("--corpus", str(corpus), f"It is not a folder. {TCPD_SOURCE}")
        data = load_corpus(corpus)
    console = err if output is Output.json else out
    points: dict[str, list[int]] = {}
    skipped: dict[str, str] = {}
    names = sorted(data.series)
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task("detecting", total=len(names))
        for name in names:
            s = data.series[name]
            if s.n_dim != 1:
                skipped[name] = f"{s.n_dim}-dimensional; the detectors are univariate"
            else:
                points[name] = [cp.index for cp in detect_changes(s.values, config=config)]
            bar.advance(task)

    scored = score_corpus(data, points)
    scores: dict[str, dict[str, float]] | None = None
    if scored.scores is not None:
        scores = {
            name: {"f1": sc.f1, "cover": sc.cover, "precision": sc.precision, "recall": sc.recall}
            for name, sc in scored.scores.items()
        }
    mean: dict[str, Any] | None = None
    if scored.f1 is not None and scored.cover is not None:
        mean = {"f1": scored.f1, "cover": scored.cover, "series": list(scored.evaluated)}
    scores_reason = scored.reason

    resolved = DEFAULT_METHOD if method == "default" else method
    if output is Output.json:
        print(
            json.dumps(
                {
                    "method": resolved,
                    "change_points": points,
                    "skipped": skipped,
                    "scores": scores,
                    "mean": mean,
                    "scores_reason": scores_reason,
                }
            )
        )
        return
    table = Table(title=f"Change points ({resolved})")
    table.add_column("series")
    table.add_column("change points (0-based)")
    table.add_column("F1", justify="right")
    table.add_column("cover", justify="right")
    for name in names:
        score = (scores or {}).get(name)
        table.add_row(
            name,
            ", ".join(map(str, points[name])) if name in points else f"skipped: {skipped[name]}",
            f"{score['f1']:.3f}" if score else "-",
            f"{score['cover']:.3f}" if score else "-",
        )
    out.print(table)
    if mean is not None:
        out.print(
            f"mean over {len(mean['series'])} series: F1 {mean['f1']:.3f}, "
            f"cover {mean['cover']:.3f}"
        )
    else:
        out.print(f"not scored: {scores_reason}")


def register(app: typer.Typer) -> None:
    app.command("changepoint-eval")(changepoint_eval)
