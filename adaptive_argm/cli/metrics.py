"""`adaptive-argm metrics`: the metric panel of one file, as a table or as flat JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from ..core import audio, metrics
from ..core.report import fmt, jsonable
from .app import app, console, friendly_errors
from .run import check_input

INTRUSIVE = ("si_sdr_db", "lsd_db", "quiet_frame_snr_db")
"""Panel fields that need a clean reference (left out of the table without --ref)."""


def panel_table(panel: metrics.MetricPanel, info: audio.AudioInfo, has_ref: bool) -> Table:
    """One row per measure: value, unit, which way is better, and what it is."""
    t = Table(title=f"Metrics of {Path(info.path).name} ({info.sample_rate / 1000:g} kHz, {info.channels} ch, "
                    f"{info.duration_s:.2f} s; measured at {audio.WORK_SR / 1000:g} kHz, mono downmix)",
              title_justify="left")
    for name in ("metric", "value", "unit", "better"):
        t.add_column(name, justify="right" if name == "value" else "left", no_wrap=True)
    t.add_column("what it is", overflow="fold")
    for key, value in panel.to_dict().items():
        if key in INTRUSIVE and not has_ref:
            continue
        t.add_row(key, fmt(value), metrics.UNITS[key], metrics.DIRECTIONS[key], metrics.LABELS[key])
    return t



@app.command("metrics")
def metrics_command(
    file: Path = typer.Argument(..., help="Audio file to measure."),
    ref: Optional[Path] = typer.Option(None, "--ref", help="Clean reference: adds SI-SDR, LSD and quiet-frame SNR."),
    as_json: bool = typer.Option(False, "--json", help="Print one flat JSON object (null = undefined) instead."),
) -> None:
    """Measure one file: the paper's P25 beside the measures it cannot game (and, with --ref,
    the intrusive scores)."""
    with friendly_errors():
        check_input(file)
        if ref is not None:
            check_input(ref)
        y, info = audio.read(file, audio.WORK_SR)
        reference = audio.read(ref, audio.WORK_SR)[0] if ref is not None else None
        panel = metrics.measure(y, audio.WORK_SR, ref=reference)
        if as_json:
            typer.echo(json.dumps(jsonable(panel.to_dict()), allow_nan=False))
        else:
            console.print(panel_table(panel, info, reference is not None))
