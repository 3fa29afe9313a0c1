"""`adaptive-argm run`: restore one clip, or a batch of them (several files, a folder, a glob)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ..core import backends, batch, outputs, pipeline, results
from ..core.table import fmt
from . import options as o
from .app import UsageError, app, console, err_console, friendly_errors
from .progress import batch_progress, stage_progress
from .tables import batch_table, metrics_table, recovery_line, stems_table, track_label


def check_input(path: Path, flag: str = "") -> Path:
    """A file argument that must exist (a folder is a batch's input, not this one's)."""
    prefix = f"{flag} " if flag else ""
    if not path.exists():
        raise UsageError(f"{prefix}{path}: no such file")
    if path.is_dir():
        raise UsageError(f"{prefix}{path}: is a folder, not an audio file")
    return path


def check_holds(input_path: Path, settings: pipeline.Settings) -> None:
    """The asked --format can hold the input (FLAC: at most eight channels), or exit 2 before any work."""
    try:
        outputs.check_holds(input_path, outputs.source_format(input_path), settings.format)
    except outputs.DeliveryError as exc:
        raise UsageError(f"--format {settings.format}: {exc}") from None


def choose_out(out: Optional[Path], input_path: Path, kind: results.Kind, *, default_root: str,
               overwrite: bool = False, protect: tuple[Path, ...] = ()) -> Path:
    """Where a single run's result set goes. `--out` as given, refused (exit 2) when the set
    would replace files that are not an earlier result, an input, or (without --overwrite)
    another input's result. Else `default_root/<track>/`, or, when that holds another input's
    result, the next free name (`results.candidate_folders`), said on stderr."""
    if out is not None:
        problem = results.conflict(out, kind, input_path, protect=protect, replace_other=overwrite)
        if problem is None:
            return out
        if problem.why in ("not-a-folder", "other-input"):
            hint = "; give another --out, or --overwrite to replace that result" if problem.why == "other-input" else ""
            raise UsageError(f"--out {problem.message}{hint}")
        raise UsageError(f"--out {out}: {problem.message}; give another --out")
    first = Path(default_root) / input_path.stem
    folder = results.free_folder(results.candidate_folders(default_root, input_path), kind, input_path, protect)
    if folder != first:
        problem = results.conflict(first, kind, input_path, protect=protect)
        err_console.print(f"[yellow]notice:[/] {problem.message if problem else first}; writing to {folder}",
                          highlight=False, soft_wrap=True)
    return folder


def delivery_line(output: dict) -> str:
    """What was written, in what format and why, and how loud: one line."""
    target = output.get("loudness_target")
    aim = ""
    if target:
        aim = f" (target {fmt(target['target_lufs'], 1)} LUFS under {fmt(target['ceiling_dbtp'], 1)} dBTP: {target['status']})"
    rate = f" ({output['rate_note']})" if output.get("rate_note") else ""
    return (f"wrote {output['path']}: {output['format_text']} ({output['format_reason']}), "
            f"{output['sample_rate'] / 1000:g} kHz{rate}; {fmt(output['loudness_lufs'])} LUFS{aim}, "
            f"true peak {fmt(output['true_peak_dbtp'])} dBTP")


def residual_line(residual: dict | None) -> str | None:
    return None if not residual else f"wrote {residual['path']}: {residual['what']}"


def print_run(result: pipeline.RunResult) -> None:
    r = result.to_dict()
    if r["separator"].get("notice"):
        err_console.print(f"[yellow]notice:[/] {r['separator']['notice']}", soft_wrap=True)
    if r["stems"]:
        console.print(stems_table(r["stems"], title=f"Router: {r['route_reason']}"))
    console.print(metrics_table({"input": r["metrics"]["input"], "output": r["metrics"]["output"]},
                                title="Metrics (44.1 kHz, mono downmix)", legend=False))
    for w in r["warnings"]:
        err_console.print(f"[yellow]warning:[/] {w}", soft_wrap=True)
    sep = r["separator"]["name"] + (f" ({r['separator']['model']})" if r["separator"].get("model") else "")
    console.print(f"mode [bold]{r['mode_used']}[/] (asked: {r['mode_requested']}), separator {sep}, "
                  f"preset {r['preset']}, clip safety: {r['output']['clip_action']}", highlight=False)
    console.print(r["change"]["summary"], highlight=False, soft_wrap=True)
    line = recovery_line(r["recovery"])
    if line:
        console.print(line, highlight=False, soft_wrap=True)
    console.print(f"p25_paper_db {fmt(r['metrics']['input']['p25_paper_db'])} -> "
                  f"{fmt(r['metrics']['output']['p25_paper_db'])} dB", highlight=False)
    console.print(delivery_line(r["output"]), highlight=False, soft_wrap=True)
    if residual_line(r["residual"]):
        console.print(residual_line(r["residual"]), highlight=False, soft_wrap=True)


def print_batch(result: batch.BatchResult) -> None:
    console.print(batch_table(result))
    for f in result.files:
        if f.status == "failed":
            console.print(f"[red]failed:[/] {track_label(f, result)}: {f.error}", highlight=False, soft_wrap=True)
    c = result.counts()
    console.print(f"{c['done']} restored, {c['skipped']} already up to date, {c['failed']} failed; "
                  f"{c['unchanged']} unchanged (nothing changed beyond DC and format); "
                  f"record: {Path(result.out_root) / batch.BATCH_FILE}", highlight=False, soft_wrap=True)
    if c["failed"]:
        err_console.print(f"[bold red]error:[/] {c['failed']} of {len(result.files)} files failed "
                          f"(see the table and {Path(result.out_root) / batch.BATCH_FILE})", highlight=False,
                          soft_wrap=True)


def run_many(specs: list[str], out: Optional[Path], sep, settings: pipeline.Settings, notice: Optional[str],
             jobs: Optional[int], recursive: bool = False, chosen: backends.Backend = backends.LOCAL) -> None:
    if notice:
        err_console.print(f"[yellow]notice:[/] {notice}", soft_wrap=True)
    progress, callbacks = batch_progress()
    with o.connected(chosen), progress:
        result = batch.run_batch(specs, out if out is not None else Path("restored"), sep, settings, notice=notice,
                                 jobs=o.jobs_for(jobs, chosen), recursive=recursive, backend=chosen, **callbacks)
    print_batch(result)
    if not result.ok:
        raise typer.Exit(1)


@app.command()
@o.shared_options
def run(
    inputs: List[str] = typer.Argument(..., metavar="INPUT...",
                                       help="Audio file(s) (WAV/FLAC/MP3/OGG/AIFF), folders or glob patterns. "
                                            "More than one, a folder or a pattern runs a batch into OUT/<track>/."),
    out: Optional[Path] = typer.Option(None, "--out", "-o",
                                       help="Output folder (default restored/<track>/; for a batch, the root)."),
    jobs: Optional[int] = typer.Option(None, "--jobs", "-j",
                                       help="Workers for a batch, each loading its own model (default 1; with "
                                            "--backend ray, one per CPU of the cluster)."),
    mode: str = o.Mode,
    keep_stems: bool = typer.Option(False, "--keep-stems", help="Also write stems/<name>[.restored].wav."),
    recursive: bool = typer.Option(False, "--recursive", "-r",
                                   help="Also take audio files in a folder's subfolders; their results keep the "
                                        "subfolders under OUT."),
    overwrite: bool = o.Overwrite,
    backend: str = o.Backend,
    address: Optional[str] = o.Address,
    *,
    shared: o.SharedOptions,
) -> None:
    """Restore clips: separate, route, restore, remix, measure; writes restored.wav + report.json per clip.

    A batch skips files whose report.json matches the settings and the input, records failures
    in OUT/batch.json and goes on; exit code 1 when any file failed."""
    with friendly_errors():
        many = batch.is_batch(inputs)
        if many and shared.stems is not None:
            raise UsageError("--stems holds one mix's stems; it cannot be used with several inputs")
        if many and overwrite:
            raise UsageError("--overwrite is for one input's --out; a batch gives each input a free folder itself")
        if jobs is not None and jobs < 1:
            raise UsageError(f"--jobs must be at least 1, not {jobs}")
        chosen = backends.make(backend, address)
        if not many and chosen.distributed:
            raise UsageError("--backend ray runs a batch (several inputs, a folder or a pattern); one file runs here")
        input = Path(inputs[0])
        for spec in inputs:
            if not batch.is_pattern(spec) and not Path(spec).is_dir():
                check_input(Path(spec))
        settings = shared.settings(mode, keep_stems)
        sep, notice = shared.resolve_separator(mode=settings.mode, exclude=(input,))
        if many:
            left_out: list[Path] = []
            try:
                found = batch.collect_inputs(inputs, recursive=recursive, left_out=left_out)
            except (FileNotFoundError, ValueError) as exc:
                raise UsageError(str(exc)) from None
            if left_out and not found:
                raise UsageError(f"nothing to restore: the {len(left_out)} audio file(s) found are results of earlier "
                                 f"runs (the first: {left_out[0]}); name a file itself to restore it again")
            if left_out:
                err_console.print(f"[yellow]notice:[/] left out {len(left_out)} file(s) that earlier runs wrote "
                                  f"(the first: {left_out[0]}); name a file itself to restore it again",
                                  highlight=False, soft_wrap=True)
            if out is not None and out.exists() and not out.is_dir():
                raise UsageError(f"--out {out}: exists and is not a folder")
            if out is not None and out.is_symlink() and not out.exists():
                raise UsageError(f"--out {out}: is a link to {out.readlink()}, which does not exist")
            try:
                batch.check_record(out if out is not None else Path("restored"))
            except results.ResultError as exc:
                raise UsageError(f"--out: {exc}") from None
            return run_many(inputs, out, sep, settings, notice, jobs, recursive, chosen)
        check_holds(input, settings)
        folder = choose_out(out, input, pipeline.run_kind(input, settings), default_root="restored", overwrite=overwrite,
                            protect=shared.inputs())
        progress, on_stage, on_progress = stage_progress()
        with progress:
            result = pipeline.run(input, folder, sep, settings, notice=notice, replace_other=overwrite,
                                  on_stage=on_stage, on_progress=on_progress)
        print_run(result)
