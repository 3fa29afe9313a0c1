"""`adaptive-argm corpus real|midi`: build a benchmark corpus (full-band real-music excerpts, or
true multitracks rendered from General MIDI), one new folder per run."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..evaluation import corpus as rc
from ..evaluation import multitrack as mt
from ..core.table import fmt
from .app import UsageError, app, console, err_console, friendly_errors, is_tty

corpus_app = typer.Typer(no_args_is_help=True, help="Build a benchmark corpus (real-music excerpts or MIDI multitracks).")
app.add_typer(corpus_app, name="corpus")

Out = typer.Option(..., "--out", "-o", help="New folder for the corpus (must not exist, or be empty).")
TargetLufs = typer.Option(rc.TARGET_LUFS, "--target-lufs", help="Loudness target (BS.1770); lowered to meet the peak limit.")
PeakDbfs = typer.Option(rc.PEAK_LIMIT_DBFS, "--peak-dbfs", help="Sample-peak ceiling of every written file.")


def _progress(label: str, total: int):
    """A rich progress bar on a terminal; None (and plain output) otherwise."""
    if not is_tty():
        return None
    return Progress(TextColumn(label), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=err_console, transient=True)


def _run(label: str, total: int, build):
    progress = _progress(label, total)
    with progress or nullcontext():
        task = progress.add_task("", total=total) if progress else None
        started = []

        def step(name: str) -> None:
            if progress:
                if started:
                    progress.advance(task)
                progress.update(task, description=name)
            started.append(name)

        return build(step)


def _check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        raise UsageError(f"--out {out}: folder is not empty; give a new one")


@corpus_app.command("real")
def real(
    files: list[Path] = typer.Argument(..., help="Recordings (wav, flac, ogg, opus, mp3...); a zip member as ARCHIVE/member/path."),
    out: Path = Out,
    duration: float = typer.Option(rc.EXCERPT_S, "--duration", help="Excerpt length in seconds."),
    target_lufs: float = TargetLufs,
    peak_dbfs: float = PeakDbfs,
) -> None:
    """Cut one loudness-normalised excerpt per recording, at its own sample rate and channels,
    into OUT/<track>.wav with OUT/manifest.json."""
    with friendly_errors():
        _check_out(out)
        if not duration > 0:
            raise UsageError(f"--duration {duration}: must be positive")
        result = _run("excerpt", len(files), lambda step: rc.build_real_corpus(
            [str(f) for f in files], out, duration, target_lufs, peak_dbfs, progress=step))
        t = Table(title=f"{len(result.excerpts)} excerpts in {out}", title_justify="left")
        for c in ("track", "kHz", "offset s", "gain dB", "LUFS", "peak dBFS", "bandwidth kHz"):
            t.add_column(c, justify="left" if c == "track" else "right")
        for e in result.excerpts:
            bw = f"{e.bandwidth_hz / 1000:.1f}" if e.full_band else f"[yellow]{e.bandwidth_hz / 1000:.1f}[/]"
            t.add_row(e.track_id, f"{e.sample_rate / 1000:g}", f"{e.offset_s:.1f}", fmt(e.gain_db),
                      fmt(e.loudness_lufs), fmt(e.peak_dbfs), bw)
        console.print(t)
        for e in result.excerpts:
            if not e.full_band:
                err_console.print(f"[yellow]warning:[/] {e.track_id}: content only to {e.bandwidth_hz / 1000:.1f} kHz "
                                  f"(under {rc.FULL_BAND_HZ / 1000:g} kHz): not a full-band reference", highlight=False)


@corpus_app.command("midi")
def midi(
    files: list[Path] = typer.Argument(..., help="Standard MIDI files (General MIDI)."),
    out: Path = Out,
    soundfont: Path = typer.Option(Path(mt.DEFAULT_SOUNDFONT), "--soundfont", help="General MIDI SoundFont (.sf2)."),
    max_duration: Optional[float] = typer.Option(None, "--max-duration",
                                                 help="Keep only the first this many seconds of each song."),
    target_lufs: float = TargetLufs,
    peak_dbfs: float = PeakDbfs,
) -> None:
    """Render each MIDI file per instrument family (drums, bass, other, vocals) with FluidSynth
    into OUT/<song>/{mixed,drums,bass,other,vocals}.wav (mixed = exact sum of the stems)."""
    with friendly_errors():
        _check_out(out)
        if max_duration is not None and not max_duration > 0:
            raise UsageError(f"--max-duration {max_duration}: must be positive")
        if not soundfont.is_file():
            raise UsageError(f"--soundfont {soundfont}: SoundFont not found "
                             "(Debian: fluid-soundfont-gm or timgm6mb-soundfont)")
        result = _run("render", len(files), lambda step: mt.build_midi_corpus(
            [str(f) for f in files], out, soundfont, max_duration, target_lufs, peak_dbfs, progress=step))
        t = Table(title=f"{len(result.songs)} songs in {out} (mixed = sum of stems)", title_justify="left")
        for c in ("song", "s", "gain dB", "LUFS", "peak dBFS", *mt.FAMILIES):
            t.add_column(c, justify="left" if c == "song" else "right")
        for s in result.songs:
            t.add_row(s.song, f"{s.duration_s:.1f}", fmt(s.gain_db), fmt(s.loudness_lufs), fmt(s.peak_dbfs),
                      *[str(s.stems[f].notes) if s.stems[f].present else "[dim]-[/]" for f in mt.FAMILIES])
        console.print(t)
