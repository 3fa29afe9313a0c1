"""`adaptive-argm compare`: separate once, restore direct, stem-wise and routed, and show the
metric panel of all three beside the input's."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..config import COMPARE_MODES, MODE_LABELS
from ..core import audio, figures, intrusive, pipeline, ranking
from ..core.load import work_rate
from . import options as o
from .app import app, console, err_console, friendly_errors
from .progress import stage_progress
from .run import check_holds, check_input, choose_out, delivery_line
from .tables import metrics_table, recovery_line, stems_table

def _columns(metric_dicts: dict[str, dict | None], identical: dict[str, bool] | None = None
             ) -> tuple[dict[str, dict], list[str]]:
    """Table columns (an absent result, e.g. stem-wise without a separator, is an empty column)
    and the rows that have a value somewhere (the intrusive ones only with --ref; SI-SDR and SNR
    also when every result is an exact copy of the reference, whose +inf is stored as null)."""
    columns = {header: (metric_dicts.get(key) or {}) for key, header in MODE_LABELS.items()}
    copies = any((identical or {}).values())
    keys = [k for k in metric_dicts["input"] if any(c.get(k) is not None for c in columns.values())
            or (copies and k in ranking.CEILING_KEYS)]
    return columns, keys


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
    columns, keys = _columns(r["metrics"], r.get("identical_to_reference"))
    identical = {MODE_LABELS[m]: v for m, v in r.get("identical_to_reference", {}).items()}
    console.print(metrics_table(columns, keys=keys, identical=identical,
                                title=f"Metrics, preset {r['preset']} (44.1 kHz, mono downmix)"))
    for text, modes in _grouped_warnings(r["warnings"]).items():
        err_console.print(f"[yellow]warning[/] ({', '.join(modes)}): {text}", soft_wrap=True, highlight=False)
    sep = r["separator"]["name"] + (f" ({r['separator']['model']})" if r["separator"].get("model") else "")
    console.print(f"routed used [bold]{router['mode_used']}[/]; separator {sep}", highlight=False)
    for mode, o in r["outputs"].items():  # what each result is, how loud, whether it changed anything
        console.print(f"{MODE_LABELS[mode]}: {delivery_line(o)}", highlight=False, soft_wrap=True)
        console.print(f"{MODE_LABELS[mode]}: {o['change']['summary']}", highlight=False, soft_wrap=True)
        line = recovery_line(o["recovery"])
        if line:
            console.print(f"{MODE_LABELS[mode]}: {line}", highlight=False, soft_wrap=True)
    residuals = [o["residual"] for o in r["outputs"].values() if o.get("residual")]
    if residuals:
        console.print(f"wrote {', '.join(Path(x['path']).name for x in residuals)}: {residuals[0]['what']}",
                      highlight=False, soft_wrap=True)
    folder = Path(result.paths["direct"]).parent
    names = ["compare.json"] + [p.name for p in written]
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
        check_holds(input, settings)
        folder = choose_out(out, input, pipeline.compare_kind(input, settings), default_root="compared",
                            overwrite=overwrite,
                            protect=(*others, *shared.inputs()))
        # At the run's rate: the working rate, or the input's own when higher.
        reader = audio.Reader(input)
        sr = work_rate(reader.sample_rate)
        reference = audio.read(ref, sr)[0] if ref is not None else None
        if reference is not None:
            intrusive.check_lengths(reader.expected_frames(sr), reference.shape[1], sr)
        progress, on_stage, on_progress = stage_progress()
        with progress:
            result = pipeline.compare(input, folder, sep, settings, reference=reference, notice=notice,
                                      figures=not no_figures, protect=others, replace_other=overwrite,
                                      on_stage=on_stage, on_progress=on_progress)
        print_compare(result, [] if no_figures else figures.figure_paths(result, folder))
