"""`adaptive-argm demo`: synthesize two MusicGen-like songs with their true stems and compare
the three restoration modes on them, with no model and no network (printed as `compare` does)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..config import DEFAULT_MODEL
from ..evaluation import demo as demo_lib
from ..core import figures as figs
from . import options as o
from .app import UsageError, app, console, err_console, friendly_errors
from .compare import print_compare
from .progress import stage_progress

SEPARATOR_TEXT = {"stems": "with its true stems", "demucs": f"with Demucs {DEFAULT_MODEL}"}


MIN_SECONDS, MAX_SECONDS = 1.0, 600.0
"""Each song holds at least a bar of its beat; ten minutes is what a long run takes."""


@app.command()
def demo(
    out: Path = typer.Option(Path("demo-out"), "--out", "-o", help="Folder for the songs and results."),
    seconds: float = typer.Option(demo_lib.DURATION_S, "--seconds", help="Length of each song."),
    figures: bool = typer.Option(True, "--figures/--no-figures", help="Write the comparison figures."),
    model_repo: Optional[Path] = o.ModelRepo,
) -> None:
    """Synthesize two short songs with MusicGen's defects (one with drums and bass, one with
    neither), write each mix with its true stems, and compare direct, stem-wise and routed
    restoration on them. Runs Demucs too when its weights are already here."""
    with friendly_errors():
        if not MIN_SECONDS <= seconds <= MAX_SECONDS:  # NaN too
            raise UsageError(f"--seconds must be between {MIN_SECONDS:g} and {MAX_SECONDS:g}, not {seconds:g}")
        if out.exists() and not out.is_dir():
            raise UsageError(f"--out {out}: exists and is not a folder")
        if model_repo is not None and not model_repo.is_dir():
            raise UsageError(f"--model-repo {model_repo}: not a folder")
        progress, on_stage, _ = stage_progress()
        with progress:
            result = demo_lib.demo(out, duration_s=seconds, figures=figures, model_repo=model_repo,
                                   on_stage=on_stage)
        for song in result.songs:
            console.rule(f"[bold]{song.name}[/]: {song.description}")
            for sep, cmp in song.compares.items():
                console.print(f"[bold]{song.name}[/] {SEPARATOR_TEXT.get(sep, sep)}", highlight=False)
                folder = Path(cmp.paths["direct"]).parent
                print_compare(cmp, figs.figure_paths(cmp, folder) if figures else [])
        for note in result.notes:
            err_console.print(f"[yellow]notice:[/] {note}", soft_wrap=True, highlight=False)
        routed = ", ".join(f"{s.name} -> {s.compares['stems'].plan.mode_used}" for s in result.songs)
        console.print(f"demo done in {result.elapsed_s:.1f} s: routed {routed}. Files in {result.out_dir}/<song>/ "
                      f"(mix.wav, clean.wav, stems/, direct/stemwise/routed.wav, compare.json, *.png figures)",
                      highlight=False, soft_wrap=True)
