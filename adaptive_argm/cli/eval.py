"""`adaptive-argm eval`: compare routed restoration with the forced modes over a prompt set."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Optional

import typer
from ..core.separate import SeparatorOptions
from ..evaluation import generate, records, runner, tables
from . import options as o
from ..config import describe_error
from ..core import backends, results
from .app import FLAGS, UsageError, app, console, friendly_errors
from .progress import bar
from .tables import render

STATUS_STYLE = {"ok": "green", "failed": "red", "skipped": "yellow"}


@app.command("eval")
def eval_(
    prompts: Path = typer.Argument(..., help="Prompt set TOML (clip tables: id, prompt, tags, audio or stems)."),
    out: Path = typer.Option(..., "--out", "-o", help="Results folder (reused: finished clips are not recomputed)."),
    jobs: Optional[int] = typer.Option(None, "--jobs", "-j", help="Workers, one clip each at a time (default 1; "
                                       "with --backend ray, one per CPU of the cluster)."),
    separator: str = typer.Option("auto", "--separator", rich_help_panel=o.SEP,
                                  help="auto (an entry's own stems when it gives them, else Demucs if its "
                                       "weights are here, else direct, with a notice) | stems (the same) | "
                                       "demucs (Demucs for every clip, stems entries too)."),
    model: str = o.Model,
    model_repo: Optional[Path] = o.ModelRepo,
    device: str = o.Device,
    force: bool = o.Force,
    preset: Optional[str] = o.Preset,
    preset_file: Optional[Path] = o.PresetFile,
    skip_policy: Optional[str] = o.SkipPolicy,
    clip_mode: str = o.ClipMode,
    generate_: bool = typer.Option(False, "--generate", help="Make clips without audio with MusicGen "
                                   "(needs the generate extra: transformers)."),
    gen_model: str = typer.Option(generate.DEFAULT_MODEL, "--gen-model", help="MusicGen model id or folder."),
    duration: float = typer.Option(generate.DEFAULT_DURATION_S, "--duration", help="Seconds per generated clip."),
    seed: int = typer.Option(generate.DEFAULT_SEED, "--seed", help="Seed of every generated clip."),
    figures: bool = typer.Option(True, "--figures/--no-figures", help="Draw each clip's spectrogram figures."),
    missing: str = typer.Option("skip", "--missing", help="skip | fail, for clips whose audio cannot be had "
                                "(missing file, no --generate, MusicGen weights not here and no network)."),
    backend: str = o.Backend,
    address: Optional[str] = o.Address,
) -> None:
    """Run `compare` on every clip of a prompt set; writes results.csv, results.json, summary.md and
    report.html. Exit code 1 when any clip failed (the others are still evaluated and written)."""
    with friendly_errors():
        chosen = backends.make(backend, address)
        settings = records.EvalSettings(
            pipeline=o.make_settings(preset=preset, preset_file=preset_file, clip_mode=clip_mode,
                                     skip_policy=skip_policy),
            separation=SeparatorOptions(separator, model=model, model_repo=model_repo, device=device, force=force),
            generate=generate_,
            generation=generate.GenerationSettings(model=gen_model, duration_s=duration, seed=seed, device=device),
            missing=missing, jobs=1 if jobs is None else jobs, figures=figures)
        try:
            prompt_set = records.load_prompts(prompts)
        except (records.EvalError, OSError) as exc:  # the prompt set is the command's own argument
            raise UsageError(describe_error(exc, FLAGS)) from None
        problem = results.conflict(out, records.RESULTS_SET)
        if problem:
            raise UsageError(f"--out {problem.message}" if problem.why == "not-a-folder"
                             else f"--out {out}: {problem.message}; give another --out")
        progress = bar()
        task = progress.add_task("clips", total=len(prompt_set.clips))

        def on_clip(outcome: records.ClipOutcome) -> None:
            progress.advance(task)
            if outcome.status == "failed":  # skipped clips were announced together, as a notice
                progress.console.print(f"[{STATUS_STYLE[outcome.status]}]{outcome.status}:[/] {outcome.id}: "
                                       f"{outcome.error}", highlight=False, soft_wrap=True)
            progress.update(task, description=f"clips (last: {outcome.id})")

        def on_note(text: str) -> None:
            progress.console.print(f"[yellow]notice:[/] {text}", highlight=False, soft_wrap=True)

        with o.connected(chosen), progress:
            settings = replace(settings, jobs=o.jobs_for(jobs, chosen))
            result = runner.run(prompt_set, out, settings, on_clip=on_clip, on_note=on_note, backend=chosen)
        a = result.aggregate
        if a.counts["routed"]:
            console.print(render(tables.wins_table(a)))
        console.print(f"{a.status['ok']} evaluated ({a.status['reused']} reused), {a.status['failed']} failed, "
                      f"{a.status['skipped']} skipped; routed sent {len(a.direct_clips)} clip(s) to direct; "
                      "unchanged (nothing changed beyond DC and format): "
                      + ", ".join(f"{m} {n}" for m, n in a.unchanged.items()), highlight=False, soft_wrap=True)
        console.print(f"wrote {', '.join(str(out / n) for n in records.RESULT_FILES)}", highlight=False,
                      soft_wrap=True)
        if result.failed:
            raise typer.Exit(1)
