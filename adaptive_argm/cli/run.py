"""`adaptive-argm run`: restore one clip."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from .. import pipeline, separate
from ..report import metrics_table, stems_table
from ..route import MODES, SKIP_POLICIES
from . import options as o
from .app import UsageError, app, console, err_console, friendly_errors

STAGE_TEXT = {"load": "loading", "separate": "separating", "route": "routing", "restore": "restoring",
              "measure": "measuring", "write": "writing"}


def check_choice(value: str, choices: tuple[str, ...], flag: str) -> str:
    if value not in choices:
        raise UsageError(f"{flag} must be one of {', '.join(choices)}, not {value!r}")
    return value


def check_input(path: Path) -> Path:
    if not path.exists():
        raise UsageError(f"{path}: no such file")
    return path


def prepare_out(out: Optional[Path], input_path: Path, default_root: str = "restored") -> Path:
    """The output folder (default `restored/<track>/`), created, and never the input's own path."""
    folder = out if out is not None else Path(default_root) / input_path.stem
    if folder.exists() and not folder.is_dir():
        raise OSError(f"{folder}: exists and is not a folder, cannot write output there")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def stage_progress():
    """A transient spinner naming the current stage, so a long separation shows it is alive."""
    progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                        console=err_console, transient=True)
    task = progress.add_task("starting")
    return progress, lambda stage: progress.update(task, description=STAGE_TEXT.get(stage, stage))


def print_run(result: pipeline.RunResult) -> None:
    r = result.to_dict()
    if r["separator"].get("notice"):
        err_console.print(f"[yellow]notice:[/] {r['separator']['notice']}", soft_wrap=True)
    if r["stems"]:
        console.print(stems_table(r["stems"], title=f"Router: {r['route_reason']}"))
    from ..metrics import DIRECTIONS

    console.print(metrics_table({"input": r["metrics"]["input"], "output": r["metrics"]["output"]},
                                DIRECTIONS, title="Metrics (44.1 kHz, mono downmix)"))
    for w in r["warnings"]:
        err_console.print(f"[yellow]warning:[/] {w}", soft_wrap=True)
    sep = r["separator"]["name"] + (f" ({r['separator']['model']})" if r["separator"].get("model") else "")
    console.print(f"mode [bold]{r['mode_used']}[/] (asked: {r['mode_requested']}), separator {sep}, "
                  f"preset {r['preset']}, clip safety: {r['output']['clip_action']}", highlight=False)
    console.print(f"p25_paper_db {r['metrics']['input']['p25_paper_db']:.2f} -> "
                  f"{r['metrics']['output']['p25_paper_db']:.2f} dB   wrote {r['output']['path']}",
                  highlight=False)


@app.command()
def run(
    input: Path = typer.Argument(..., help="Audio file to restore (WAV/FLAC/MP3/OGG/AIFF)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Output folder (default restored/<track>/)."),
    mode: str = o.Mode,
    separator: str = o.Separator,
    stems: Optional[Path] = o.Stems,
    model: str = o.Model,
    model_repo: Optional[Path] = o.ModelRepo,
    device: str = o.Device,
    segment: Optional[float] = o.Segment,
    overlap: float = o.Overlap,
    shifts: int = o.Shifts,
    force: bool = o.Force,
    preset: Optional[str] = o.Preset,
    preset_file: Optional[Path] = o.PresetFile,
    skip_policy: Optional[str] = o.SkipPolicy,
    clip_mode: str = o.ClipMode,
    min_rel_db: float = o.MinRelDb,
    min_active: float = o.MinActive,
    active_rel_db: float = o.ActiveRelDb,
    active_floor_dbfs: float = o.ActiveFloor,
    output_sr: str = typer.Option("work", "--output-sr", help="work (44.1 kHz) | original (the input's rate)."),
    keep_stems: bool = typer.Option(False, "--keep-stems", help="Also write stems/<name>[.restored].wav."),
) -> None:
    """Restore one clip: separate, route, restore, remix, measure; writes restored.wav + report.json."""
    with friendly_errors():
        check_input(input)
        settings = pipeline.Settings(
            mode=check_choice(mode, MODES, "--mode"),
            preset=o.preset_choice(preset, preset_file, pipeline.DEFAULT_PRESET),
            clip_mode=check_choice(clip_mode, ("limit", "normalize", "none"), "--clip-mode"),
            skip_policy=check_choice(skip_policy or pipeline.Settings.skip_policy, SKIP_POLICIES, "--skip-policy"),
            router=o.router_config(min_rel_db, min_active, active_rel_db, active_floor_dbfs),
            output_sr=check_choice(output_sr, ("work", "original"), "--output-sr"),
            keep_stems=keep_stems,
        )
        sep, notice = separate.resolve(separator, mode=mode, stems=stems, model=model, model_repo=model_repo,
                                       device=device, segment=segment, overlap=overlap, shifts=shifts,
                                       force=force, exclude=(input,))
        folder = prepare_out(out, input)
        progress, on_stage = stage_progress()
        with progress:
            result = pipeline.run(input, folder, sep, settings, notice=notice, on_stage=on_stage)
        print_run(result)
