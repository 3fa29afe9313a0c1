"""`adaptive-argm metrics`: the metric panel of one file, as a table or as flat JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from ..core import audio, intrusive, metrics
from ..core.report import jsonable
from .app import app, console, err_console, friendly_errors
from .run import check_input
from .tables import panel_table


@app.command("metrics")
def metrics_command(
    file: Path = typer.Argument(..., help="Audio file to measure."),
    ref: Optional[Path] = typer.Option(None, "--ref", help="Clean reference: adds SI-SDR, LSD, quiet-frame SNR and ViSQOL."),
    as_json: bool = typer.Option(False, "--json", help="Print one flat JSON object (null = undefined) instead."),
) -> None:
    """Measure one file: the paper's P25 beside the measures it cannot game (and, with --ref,
    the intrusive scores)."""
    with friendly_errors():
        check_input(file)
        if ref is not None:
            check_input(ref, "--ref")
        # Streamed: decoded and measured block by block (an hour in bounded memory).
        reader = audio.Reader(file)
        panel = metrics.measure_stream(reader.native_blocks(), reader.sample_rate, reader.channels)
        info = reader.info()
        reference = audio.read(ref, metrics.METRIC_SR)[0] if ref is not None else None
        if reference is not None:
            y = audio.read(file, metrics.METRIC_SR)[0]
            intrusive.check_lengths(y.shape[1], reference.shape[1], metrics.METRIC_SR)
            panel = metrics.with_scores_of(panel, y, reference, metrics.METRIC_SR)
        if info.truncated:
            err_console.print(f"[yellow]warning:[/] {info.truncation_warning()}", soft_wrap=True)
        if misread := metrics.visqol_warning(panel, "file"):
            err_console.print(f"[yellow]warning:[/] {misread}", soft_wrap=True)
        if as_json:
            typer.echo(json.dumps(jsonable(panel.to_dict()), allow_nan=False))
        else:
            console.print(panel_table(panel, info, reference is not None))
