"""Commands for anomaly detection: evaluate a detector on a NAB-layout corpus, list detectors."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from swarmperf.cli._support import Output, OutputOption, UserError, out, user_errors


def register(app: typer.Typer) -> None:
    app.command("anomaly-eval")(anomaly_eval)
    app.command("anomaly-detectors")(anomaly_detectors)


def anomaly_eval(
    corpus: Annotated[
        Path,
        typer.Option("--corpus", help="A folder in NAB's layout: data/<category>/<name>.csv."),
    ],
    results_dir: Annotated[
        Path,
        typer.Option("--results-dir", help="Where to write <detector>/<category>/*.csv."),
    ],
    detector: Annotated[
        str | None,
        typer.Option("--detector", help="A name from anomaly-detectors (default: ensemble)."),
    ] = None,
    output: OutputOption = Output.table,
) -> None:
    """Run a detector over every series of a corpus, write NAB results, score them if labelled."""
    from swarmperf.analysis import nab
    from swarmperf.analysis.anomaly import DEFAULT_DETECTOR, detector_factory
    from swarmperf.app.run import Progress
    from swarmperf.cli._support import progress_bar

    with user_errors():
        name = detector or DEFAULT_DETECTOR
        factory = detector_factory(name)
        if not corpus.exists():
            raise UserError(
                f"--corpus: {str(corpus)!r} does not exist. Give a folder in NAB's layout."
            )
        if results_dir.exists() and not results_dir.is_dir():
            raise UserError(
                f"--results-dir: {str(results_dir)!r} is a file. Give a folder to write into."
            )
        loaded = nab.load_corpus(corpus)
        total = len(loaded.series)
        bar, update = progress_bar(total, f"{name} over {corpus.name}", unit="files")
        started = time.perf_counter()
        done = 0

        def one_more(_: object) -> None:
            nonlocal done
            done += 1
            update(Progress(total, done, 0, time.perf_counter() - started))

        with bar:
            scores = nab.run_corpus(loaded, factory, on_file=one_more)
        elapsed = time.perf_counter() - started
        try:
            nab.write_results(results_dir, name, loaded, scores)
        except OSError as exc:
            raise UserError(
                f"--results-dir: {str(results_dir)!r} cannot take the results "
                f"({exc.strerror or exc}: {exc.filename}). Give a folder you can write into."
            ) from exc
        results = nab.score_all(loaded, scores) if loaded.windows is not None else None
    report = {
        "detector": name,
        "corpus": str(corpus),
        "results_dir": str(results_dir / name),
        "files": len(loaded.series),
        "points": loaded.points,
        "windows": loaded.window_count if loaded.windows is not None else None,
        "seconds": elapsed,
        "points_per_second": loaded.points / elapsed if elapsed > 0 else None,
        "scores": None
        if results is None
        else {
            p: {
                "normalized": r.normalized,
                "raw": r.raw,
                "threshold": r.threshold,
                "true_positives": r.true_positives,
                "false_negatives": r.false_negatives,
                "false_positives": r.false_positives,
            }
            for p, r in results.items()
        },
        "reason": None if results is not None else "no labels/combined_windows.json: not scored",
    }
    if output is Output.json:
        out.print_json(json.dumps(report))
        return
    out.print(
        f"{name}: {report['files']} files, {loaded.points:,} points in {elapsed:.1f} s; "
        f"results in {report['results_dir']}"
    )
    if results is None:
        out.print(str(report["reason"]))
        return
    table = Table("profile", "score", "threshold", "windows hit", "missed", "false alarms")
    for profile, r in results.items():
        table.add_row(
            profile,
            f"{r.normalized:.1f}",
            "never alarm" if r.threshold is None else f"{r.threshold:.4f}",
            str(r.true_positives),
            str(r.false_negatives),
            str(r.false_positives),
        )
    out.print(table)


def anomaly_detectors(output: OutputOption = Output.table) -> None:
    """List the anomaly detectors anomaly-eval can run."""
    from swarmperf.analysis.anomaly import DEFAULT_DETECTOR, DETECTORS

    rows = [
        {"name": name, "default": name == DEFAULT_DETECTOR, "summary": cls.summary}
        for name, cls in DETECTORS.items()
    ]
    if output is Output.json:
        out.print_json(json.dumps(rows))
        return
    table = Table("detector", "what it does")
    for row in rows:
        label = f"{row['name']} (default)" if row["default"] else str(row["name"])
        table.add_row(label, str(row["summary"]))
    out.print(table)
