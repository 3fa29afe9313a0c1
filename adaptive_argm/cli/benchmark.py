"""`adaptive-argm benchmark`: the paired benchmark (clean -> degraded -> restored -> scored vs
clean), written as Markdown + CSV tables."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import List, Optional

import typer

from ..config import COMPARE_MODES
from ..core import backends, results
from ..core.table import Table
from ..core.presets import PresetError
from ..evaluation import benchmark as bench
from ..evaluation import clips as clip_sources
from ..evaluation import degrade
from ..evaluation.benchmark_report import run_into, tables_set
from ..evaluation.benchmark_tables import goals, headline_table, means
from . import options as o
from .app import UsageError, app, console, err_console, friendly_errors
from .progress import bar
from .tables import render


def _list(value: str, flag: str) -> tuple[str, ...]:
    items = tuple(v.strip() for v in value.split(",") if v.strip())
    if not items:
        raise UsageError(f"{flag} needs at least one name")
    return items


@app.command()
def benchmark(
    out: Path = typer.Option(..., "--out", "-o", help="Folder for paired.md, paired.csv, paired_means.csv."),
    clean: Optional[Path] = typer.Option(None, "--clean",
                                         help="Folder of clean real-music files, e.g. real-dev (direct mode only)."),
    corpus: Optional[List[Path]] = typer.Option(
        None, "--corpus", help="Corpus with true stems: musicgen-dev or a MIDI multitrack corpus (the layout is "
                               "read from the folder); repeat for several. Default: $ADAPTIVE_ARGM_CORPUS or "
                               "../shared/corpus/musicgen-dev."),
    no_corpus: bool = typer.Option(False, "--no-corpus", help="No corpus with stems (only --clean files)."),
    degradations: str = typer.Option(",".join(degrade.DEFAULT_SET), "--degrade",
                                     help="Comma-separated degradations (white-NN, pink-NN, codec[-Q], bandlimit, "
                                          "resample-32k|22k|16k, hum, hum-60hz, dc, overs, combined, clean); "
                                          "a+b applies a, then b (codec+resample-16k)."),
    preset_list: str = typer.Option(",".join(bench.DEFAULT_PRESETS), "--presets",
                                    help="Comma-separated preset names or TOML paths."),
    modes: str = typer.Option(",".join(COMPARE_MODES), "--modes", help="Comma-separated: direct, stemwise, routed."),
    split: str = typer.Option(bench.BenchmarkSettings.split, "--split",
                              help="How damage is shared among oracle stems: other | mask | vocals."),
    excerpt_s: Optional[float] = typer.Option(None, "--excerpt-s",
                                              help="Score only the first this many seconds of each clip."),
    no_visqol: bool = typer.Option(False, "--no-visqol", help="Leave ViSQOL out (it costs most of the scoring)."),
    skip_policy: Optional[str] = o.SkipPolicy,
    min_rel_db: float = o.MinRelDb,
    min_active: float = o.MinActive,
    active_rel_db: float = o.ActiveRelDb,
    active_floor_dbfs: float = o.ActiveFloor,
    clip_mode: str = o.ClipMode,
    seed: int = typer.Option(bench.DEFAULT_SEED, "--seed", help="Base seed of every degradation realisation."),
    jobs: int = typer.Option(0, "--jobs", "-j", help="Workers (0: one per CPU core, of the cluster with "
                                                    "--backend ray)."),
    backend: str = o.Backend,
    address: Optional[str] = o.Address,
) -> None:
    """Degrade clean clips in controlled, seeded ways at their own rate, restore them with each
    preset and mode, and score every result against the clean original."""
    with friendly_errors(), ExitStack() as ctx:
        if jobs < 0:
            raise UsageError(f"--jobs must be 0 (one per CPU core) or more, not {jobs}")
        chosen = backends.make(backend, address)
        settings = bench.BenchmarkSettings(
            degradations=_list(degradations, "--degrade"), presets=_list(preset_list, "--presets"),
            modes=_list(modes, "--modes"), seed=seed,
            split=split, skip_policy=skip_policy or bench.BenchmarkSettings.skip_policy, clip_mode=clip_mode,
            jobs=jobs, with_visqol=not no_visqol, excerpt_s=excerpt_s,
            router=o.router_config(min_rel_db, min_active, active_rel_db, active_floor_dbfs))
        try:
            bench.check(settings)
        except (ValueError, PresetError) as exc:
            raise UsageError(str(exc)) from None
        problem = results.conflict(out, tables_set())
        if problem:
            raise UsageError(f"--out {problem.message}" if problem.why == "not-a-folder"
                             else f"--out {out}: {problem.message}; give another --out")
        clips = []
        if not no_corpus:
            folders = list(corpus or [])
            if not folders:
                default = clip_sources.default_corpus()
                if default is None and clean is None:
                    raise UsageError("no clean clips: musicgen-dev not found (give --corpus) and no --clean folder")
                if default is None:
                    err_console.print("[yellow]notice:[/] musicgen-dev not found; benchmarking --clean files only")
                folders = [default] if default is not None else []
            for folder in folders:
                clips += clip_sources.corpus_clips(folder, settings.excerpt_s)
        if clean is not None:
            clips += clip_sources.folder_clips(clean, settings.excerpt_s)
        if not clips:
            raise UsageError("no clean clips: give --clean, or drop --no-corpus")
        ctx.enter_context(o.connected(chosen))
        progress = bar()
        with progress:
            task = progress.add_task("clip x degradation", total=len(clips) * len(settings.degradations))
            result, written = run_into(out, clips, settings, backend=chosen,
                                       on_done=lambda done, total: progress.update(task, completed=done))
        for source in dict.fromkeys(c.source for c in result.clips):
            console.print(render(headline_table(
                means(result.cases, source), "si_sdr_change_db", "si_sdr_change_worst_db",
                title=f"{source}: SI-SDR change vs the degraded input (dB), mean / worst clip")))
            if settings.with_visqol:
                console.print(render(headline_table(
                    means(result.cases, source), "visqol_change", "visqol_change_worst",
                    title=f"{source}: ViSQOL change (MOS), mean / worst clip")))
        for p in settings.presets:
            if p != "paper":  # one preset per table: its column would repeat one name
                gs = goals(result.cases, p)
                console.print(render(Table(("goal", "mode", "measured", "target", "met", "worst case"),
                                           tuple((g.goal, g.mode, g.value, g.target, g.passed, g.where) for g in gs),
                                           title=f"Goals (issue 6), preset {p}", signed=True)))
        console.print(f"{len(result.cases)} cases ({len(clips)} clips x {len(settings.degradations)} degradations), "
                      f"{result.wall_s:.1f} s with {result.jobs} worker(s); wrote "
                      + ", ".join(str(p) for p in written), highlight=False)
