"""`adaptive-argm compare`: separate once, restore direct, stem-wise and routed, and show the
metric panel of all three beside the input's."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..config import COMPARE_MODES, MODE_LABELS
from ..core import audio, figures, pipeline
from ..core.load import work_rate
from ..core.metrics import DIRECTIONS
from . import options as o
from .app import app, console, err_console, friendly_errors
from .run import check_input, choose_out, stage_progress
from .tables import metrics_table, recovery_line, stems_table

def _columns(metric_dicts: dict[str, dict | None]) -> tuple[dict[str, dict], list[str]]:
    """Table columns (an absent result, e.g. stem-wise without a separator, is an empty column)
    and the rows that have a value somewhere (the intrusive ones only with --ref)."""
    columns = {header: (metric_dicts.get(key) or {}) for key, header in MODE_LABELS.items()}
    keys = [k for k in metric_dicts["input"] if any(c.get(k) is not None for c in columns.values())]
    return columns, keys


def direction_caption(keys: list[str]) -> str:
    """Which way each shown row counts as better, so the * marks can be read."""
    by_direction: dict[str, list[str]] = {}
    for k in keys:
        by_direction.setdefault(DIRECTIONS[k], []).append(k)
    words = {"lower": "lower", "higher": "higher", "closer-to-input": "closest to input",
             "none": "not ranked"}
    parts = [f"{words.get(d, d)}: {', '.join(ks)}" for d, ks in by_direction.items()]
    return "* = best output (ties all marked); " + "; ".join(parts)


def _grouped_warnings(warnings: dict[str, list[str]]) -> dict[str, list[str]]:
    """Each distinct warning once, with the results it applies to (routed often IS direct)."""
    grouped: dict[str, list[str]] = {}
    for mode in COMPARE_MODES:
        for w in warnings.get(mode, []):
            grouped.setdefault(w, []).append(MODE_LABELS[mode])
    return grouped


def print_compare(result: pipeline.CompareResult, written: list[Path]) -> None:
    """The router table, one metric table (best output per row marked), warnings, and files."""
    r = result.to_dict()
    if r["separator"].get("notice"):
        err_console.print(f"[yellow]notice:[/] {r['separator']['notice']}", soft_wrap=True)
    router = r["router"]
    if router["stems"]:
        console.print(stems_table(router["stems"], title=f"Router: {router['reason']}"))
    columns, keys = _columns(r["metrics"])
    table = metrics_table(columns, DIRECTIONS, keys=keys,
                          title=f"Metrics, preset {r['preset']} (44.1 kHz, mono downmix)")
    table.caption = direction_caption(keys)
    table.caption_justify = "left"
    console.print(table)
    for text, modes in _grouped_warnings(r["warnings"]).items():
        err_console.print(f"[yellow]warning[/] ({', '.join(modes)}): {text}", soft_wrap=True, highlight=False)
    sep = r["separator"]["name"] + (f" ({r['separator']['model']})" if r["separator"].get("model") else "")
    console.print(f"routed used [bold]{router['mode_used']}[/]; separator {sep}", highlight=False)
    for mode, out in r["outputs"].items():
        line = recovery_line(out["recovery"])
        if line:
            console.print(f"{mode}: {line}", highlight=False, soft_wrap=True)
    folder = Path(result.paths["direct"]).parent
    names = [Path(p).name for p in result.paths.values()] + ["compare.json"] + [p.name for p in written]
    console.print(f"wrote {', '.join(names)} in {folder}", highlight=False, soft_wrap=True)


@app.command()
@o.shared_options
def compare(
    input: Path = typer.Argument(..., help="Audio file to restore (WAV/FLAC/MP3/OGG/AIFF)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Output folder (default compared/<track>/)."),
    ref: Optional[Path] = typer.Option(None, "--ref", help="Clean reference: adds SI-SDR, LSD, quiet-frame SNR and ViSQOL."),
    no_figures: bool = typer.Option(False, "--no-figures", help="Skip spectrograms.png and stems.png."),
    overwrite: bool = o.Overwrite,
    *,
    shared: o.SharedOptions,
) -> None:
    """Separate once, then restore three ways (direct, stem-wise, routed) and compare them;
    writes direct/stemwise/routed.wav, compare.json and the figures."""
    with friendly_errors():
        check_input(input)
        if ref is not None:
            check_input(ref, "--ref")
        settings = shared.settings()
        sep, notice = shared.resolve_separator(exclude=(input,) + ((ref,) if ref else ()))
        others = (ref,) if ref is not None else ()
        folder = choose_out(out, input, pipeline.COMPARE_SET, default_root="compared", overwrite=overwrite,
                            protect=(*others, *shared.inputs()))
        # At the run's rate: the working rate, or the input's own when higher.
        reference = (audio.read(ref, work_rate(audio.Reader(input).sample_rate))[0] if ref is not None else None)
        progress, on_stage = stage_progress()
        with progress:
            result = pipeline.compare(input, folder, sep, settings, reference=reference, notice=notice,
                                      figures=not no_figures, protect=others, replace_other=overwrite,
                                      on_stage=on_stage)
        print_compare(result, [] if no_figures else figures.figure_paths(result, folder))
