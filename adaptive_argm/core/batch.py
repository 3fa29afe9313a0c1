"""Batch restoration: run `pipeline.run` over many files in worker processes, resumably, and
record every file's outcome in `batch.json`.

Each input gets its own folder `out_root/<track>/` (a recursive batch keeps the subfolders:
`out_root/<sub>/<track>/`) with the single-run layout (restored.wav or
.flac, report.json), written as one result set (`core.results`): a folder holds a finished result or
its earlier one, never part of one. A folder that holds another input's result is never
reused: the input gets the next free name. A file counts as done when its report.json records
the same settings fingerprint and the same input (path, size, modification time); a rerun
skips it. A file that fails is recorded with its one-line error and the batch goes on. The
files run in this process, in a local process pool, or on a Ray cluster (`core.backends`).
batch.json is rewritten atomically after every file that ran, so an interrupted batch leaves
only finished results and a record of them.
"""

from __future__ import annotations

import glob
import json
import os
import time
from concurrent.futures import Future
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterable

from ..config import JOBS, VERSION, SettingError, describe_error
from . import audio, backends, interrupts, pipeline, presets, results, workers
from .report import digest, to_json
from .separate import DemucsSeparator, Separator

BATCH_FILE = "batch.json"
BATCH_SCHEMA = "adaptive-argm/batch/1"
REPORT_FILE = "report.json"
GLOB_CHARS = "*?["
STATUSES = ("done", "skipped", "failed")
"""`done`: restored now; `skipped`: an up-to-date result was already there; `failed`."""


@dataclass(frozen=True)
class Job:
    """One input and the folder its results go to."""

    input: Path
    out_dir: Path


@dataclass(frozen=True)
class FileResult:
    """What happened to one input."""

    input: str
    out_dir: str
    status: str
    mode_used: str | None = None
    p25_in_db: float | None = None
    p25_out_db: float | None = None
    time_s: float | None = None
    """Wall time of this run (None when skipped)."""
    error: str | None = None
    changed: bool | None = None
    """Whether the result changed the input beyond DC and format (report.json's `changed`)."""

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass(frozen=True)
class BatchResult:
    """Every input's outcome, in input order; `to_dict` is batch.json (adaptive-argm/batch/1)."""

    out_root: str
    fingerprint: str
    settings: dict
    files: tuple[FileResult, ...]
    interrupted: bool = False
    pending: tuple[str, ...] = ()
    """Inputs not reached because the batch was interrupted."""

    @property
    def ok(self) -> bool:
        return not self.interrupted and all(f.status != "failed" for f in self.files)

    def counts(self) -> dict[str, int]:
        """Files by status, and `unchanged`: results (done or skipped) that left the input as it was."""
        return {**{s: sum(f.status == s for f in self.files) for s in STATUSES},
                "unchanged": sum(f.changed is False for f in self.files)}

    def to_dict(self) -> dict:
        return {"schema": BATCH_SCHEMA, "out": self.out_root, "fingerprint": self.fingerprint,
                "settings": self.settings, "counts": self.counts(), "interrupted": self.interrupted,
                "files": [f.to_dict() for f in self.files], "pending": list(self.pending)}


# --- which files, and where their results go ----------------------------------------------------


def is_pattern(spec: str | Path) -> bool:
    return any(c in str(spec) for c in GLOB_CHARS) and not Path(spec).exists()


def is_batch(specs: list[str | Path]) -> bool:
    """More than one input, a folder or a glob pattern: a batch. One file: a single run."""
    return len(specs) != 1 or Path(specs[0]).is_dir() or is_pattern(specs[0])


def _audio_files(paths: Iterable[Path]) -> list[Path]:
    # Dot files are skipped: they include the temporary files of an interrupted write.
    return sorted(p for p in paths if p.is_file() and p.suffix.lower() in audio.AUDIO_SUFFIXES
                  and not p.name.startswith("."))


def _result_folder(path: Path) -> Path:
    """The folder whose manifest would own `path`: a kept stem's lies one level up."""
    return path.parent.parent if path.parent.name == "stems" else path.parent


def _is_output(path: Path, out_root: Path) -> bool:
    """A result of an earlier run under `out_root` (a track folder holds a report.json)."""
    return path.is_relative_to(out_root) and (_result_folder(path) / REPORT_FILE).is_file()


def _earlier_result(path: Path) -> bool:
    """A file an earlier run or comparison wrote: its folder's manifest lists it as its own."""
    folder = _result_folder(path)
    for kind in (pipeline.REPORT_SET, pipeline.COMPARE_SET):
        held = results.holding(folder, kind)
        if not held.legacy and path.relative_to(folder).as_posix() in held.files:
            return True
    return False


def _tree_files(folder: Path) -> list[Path]:
    """The audio files in `folder` and its subfolders, folder by folder in name order; hidden
    folders (a result set's staging folder among them) and links to folders are not entered."""
    files: list[Path] = []
    for here, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        files.extend(_audio_files(Path(here) / n for n in names))
    return files


def collect_inputs(specs: list[str | Path], exclude_under: Path | None = None, recursive: bool = False,
                   left_out: list[Path] | None = None) -> list[Path]:
    """The audio files named by `specs`: files as given, a folder's audio files (with
    `recursive`, also those in its subfolders), a glob pattern's audio files (`**` recurses).
    Duplicates are dropped, order kept; results of earlier runs under `exclude_under` (the
    output folder) are left out, and so are the files a folder or pattern finds that an earlier
    run wrote anywhere (its manifest lists them; appended to `left_out`). Raises
    `FileNotFoundError` or `ValueError` for a spec that names nothing."""
    found: list[Path] = []
    given: set[Path] = set()
    for spec in specs:
        path = Path(spec)
        if is_pattern(spec):
            files = _audio_files(Path(p) for p in glob.glob(str(spec), recursive=True))
            if not files:
                raise ValueError(f"{spec}: no audio files match ({', '.join(audio.AUDIO_SUFFIXES)})")
        elif path.is_dir():
            files = _tree_files(path) if recursive else _audio_files(path.iterdir())
            if not files:
                where = "this folder or its subfolders" if recursive else "this folder"
                raise ValueError(f"{spec}: no audio files in {where} ({', '.join(audio.AUDIO_SUFFIXES)})")
        elif path.exists():
            files = [path]
            given.add(path.resolve())
        else:
            raise FileNotFoundError(f"{spec}: no such file")
        found.extend(files)
    skip = exclude_under.resolve() if exclude_under is not None else None
    seen: set[Path] = set()
    out = []
    for p in found:
        r = p.resolve()
        if r in seen or (skip is not None and _is_output(r, skip)):
            continue
        if r not in given and _earlier_result(r):
            if left_out is not None and p not in left_out:
                left_out.append(p)
            continue
        seen.add(r)
        out.append(p)
    return out


def track_names(inputs: list[Path], trees: Iterable[str | Path] = (), follow_links: bool = True) -> list[str]:
    """A folder name per input: its file stem, made unique by prefixing parent folder names
    (`a/mixed.wav`, `b/mixed.wav` -> `a-mixed`, `b-mixed`), then the suffix, then a number.
    An input inside one of the folders `trees` (a recursive batch's folders) keeps its place in
    that tree: `album/cd1/song.wav` under `album` -> `cd1/song`, made unique by the tree's own
    name in front, then the suffix, then a number. Without `follow_links` a link is named as
    given, not after the file it points to."""
    resolved = [p.resolve() if follow_links else Path(os.path.abspath(p)) for p in inputs]
    roots = sorted((Path(t).resolve() for t in trees), key=lambda r: len(r.parts), reverse=True)
    under = [next((r for r in roots if p.is_relative_to(r)), None) for p in resolved]
    if any(under):
        flat = iter(track_names([p for p, r in zip(resolved, under) if r is None]))
        names = [next(flat) if r is None else p.relative_to(r).with_suffix("").as_posix()
                 for p, r in zip(resolved, under)]
        trees_of = {n: {r for r, m in zip(under, names) if m == n} for n in names}
        names = [f"{r.name}/{n}" if r is not None and len(trees_of[n]) > 1 else n for r, n in zip(under, names)]
        clash = {n for n in names if names.count(n) > 1}
        names = [f"{n}-{p.suffix.lstrip('.').lower()}" if r is not None and n in clash else n
                 for p, r, n in zip(resolved, under, names)]
        return _numbered(names)

    def name(p: Path, depth: int, with_suffix: bool) -> str:
        parts = [*p.parent.parts[1:][-depth:], p.stem] if depth else [p.stem]
        if with_suffix:
            parts.append(p.suffix.lstrip(".").lower())
        return "-".join(parts)

    names = [p.stem for p in resolved]
    for depth, with_suffix in [(d, False) for d in range(1, 8)] + [(7, True)]:
        clash = {n for n in names if names.count(n) > 1}
        if not clash:
            break
        names = [name(p, depth, with_suffix) if n in clash else n for p, n in zip(resolved, names)]
    return _numbered(names)


def _numbered(names: list[str]) -> list[str]:
    taken: dict[str, int] = {}
    unique = []
    for n in names:
        taken[n] = taken.get(n, 0) + 1
        unique.append(n if taken[n] == 1 else f"{n}-{taken[n]}")
    return unique


def plan_jobs(inputs: list[Path], out_root: str | Path, settings: pipeline.Settings | None = None,
              trees: Iterable[str | Path] = ()) -> list[Job]:
    """A folder per input under `out_root`, named by `track_names` (`trees`: folders whose
    layout the output mirrors); a folder that holds another input's result (or files that are
    not a result, among those `settings` will write) is left alone and the input gets the next
    free name (`results.candidate_folders`, beside it)."""
    out_root = Path(out_root)
    names = track_names(inputs, trees)
    planned = {out_root / n for n in names}
    jobs: list[Job] = []
    for p, name in zip(inputs, names):
        first = out_root / name
        others = planned - {first}
        candidates = (c for c in results.candidate_folders(first.parent, p, first.name)
                      if c == first or c not in others)
        kind = pipeline.run_kind(p, settings) if settings is not None else pipeline.REPORT_SET
        folder = results.free_folder(candidates, kind, p, taken=[j.out_dir for j in jobs])
        jobs.append(Job(p, folder))
    return jobs


# --- resuming -------------------------------------------------------------------------------------


def fingerprint(settings: pipeline.Settings, separator: Separator | None = None) -> str:
    """A short hash of everything that decides a run's output: the settings, the preset's
    content (a preset file may change under the same name), the separator and the version."""
    preset = presets.load(settings.preset).to_dict()
    spec = separator.spec() if separator is not None else {"name": "none"}
    return digest({"settings": settings.to_dict(), "preset": preset, "separator": spec, "version": VERSION})


def input_identity(path: Path) -> dict:
    st = path.stat()
    return {"path": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _read_report(job: Job) -> dict | None:
    try:
        return json.loads((job.out_dir / REPORT_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def is_current(job: Job, fp: str) -> bool:
    """The job's folder already holds a finished result for these settings and this input (its
    output found by the manifest's own list of files, whatever its format)."""
    report = _read_report(job)
    if not report or not isinstance(report.get("fingerprint"), dict):
        return False
    try:
        same_input = report["fingerprint"].get("input") == input_identity(job.input)
    except OSError:
        return False
    files = results.holding(job.out_dir, pipeline.REPORT_SET).files
    # By name inside the job's folder: the recorded path is relative to where the batch ran.
    name = Path(report.get("output", {}).get("path") or "").name
    return (report["fingerprint"].get("settings") == fp and same_input and name in files
            and all((job.out_dir / f).is_file() for f in files))


def _skipped(job: Job) -> FileResult:
    r = _read_report(job) or {}
    m = r.get("metrics", {})
    return FileResult(str(job.input), str(job.out_dir), "skipped", r.get("mode_used"),
                      m.get("input", {}).get("p25_paper_db"), m.get("output", {}).get("p25_paper_db"),
                      changed=r.get("changed"))


# --- running one file -------------------------------------------------------------------------------


def run_one(job: Job, separator: Separator | None, settings: pipeline.Settings, fp: str, notice: str | None = None,
            on_stage: Callable[[str], None] | None = None) -> FileResult:
    """Restore one file into `job.out_dir` as one result set, its report stamped with the
    fingerprint; an error becomes a `failed` result, and the folder keeps what it held."""
    t0 = time.perf_counter()
    try:
        identity = input_identity(job.input)
        with results.ResultSet(job.out_dir, pipeline.run_kind(job.input, settings), input=job.input,
                               protect=pipeline.inputs_of(separator)) as staged:
            result = pipeline.run(job.input, staged, separator, settings, notice=notice, on_stage=on_stage)
            staged.commit({**result.to_dict(), "fingerprint": {"settings": fp, "input": identity}})
    except Exception as exc:
        workers.stop_if_stopping(exc)  # a stopped worker's file did not fail: it was interrupted
        return FileResult(str(job.input), str(job.out_dir), "failed", time_s=time.perf_counter() - t0,
                          error=describe_error(exc))
    return FileResult(str(job.input), str(job.out_dir), "done", result.plan.mode_used,
                      result.metrics_input.p25_paper_db, result.metrics_output.p25_paper_db,
                      time.perf_counter() - t0, changed=result.restored.change.changed)


# --- worker processes -------------------------------------------------------------------------------

_worker: dict = {}


def _init_worker(separator, settings, fp, notice, threads):
    import torch

    torch.set_num_threads(threads)
    # One separator per worker: DemucsSeparator loads its model on first use and keeps it.
    _worker.update(separator=separator, settings=settings, fp=fp, notice=notice)


def _work(job: Job) -> FileResult:
    w = _worker
    return run_one(job, w["separator"], w["settings"], w["fp"], w["notice"])


# --- the batch --------------------------------------------------------------------------------------


def run_batch(inputs: list[str | Path], out_root: str | Path, separator: Separator | None = None,
              settings: pipeline.Settings = pipeline.Settings(), *, notice: str | None = None, jobs: int = 1,
              on_plan: Callable[[list[Job]], None] | None = None, on_start: Callable[[Job], None] | None = None,
              on_stage: Callable[[str], None] | None = None,
              on_done: Callable[[FileResult], None] | None = None, recursive: bool = False,
              backend: backends.Backend | None = None) -> BatchResult:
    """Restore every audio file named by `inputs` (files, folders, glob patterns) into
    `out_root/<track>/`, skipping up-to-date results, with `jobs` worker processes (1: in this
    process); with `recursive`, a folder's subfolders too, their results in the same tree
    under `out_root`. Writes `out_root/batch.json` after each file that ran (and at the end). Raises
    `FileNotFoundError`/`ValueError` for an input that names nothing, before anything runs. On
    KeyboardInterrupt the workers are stopped, batch.json records what finished (when anything
    did), and the interrupt is raised again.

    `separator` is as for `pipeline.run` (it must be picklable for `jobs > 1`; each worker
    loads its model once). `backend` (default: this machine) runs them; a distributed one runs
    even one file on its workers. `on_start`/`on_stage` report progress with `jobs == 1` only;
    `on_plan` gets the job list first; `on_done` is called for every file as it finishes,
    skipped ones included.
    """
    if jobs < 1:
        raise SettingError(JOBS, f" must be at least 1, not {jobs}")
    backend = backend or backends.LOCAL
    out_root = Path(out_root)
    if out_root.exists() and not out_root.is_dir():
        raise OSError(f"{out_root}: exists and is not a folder, cannot write output there")
    check_record(out_root)
    trees = [i for i in inputs if recursive and not is_pattern(i) and Path(i).is_dir()]
    all_jobs = plan_jobs(collect_inputs(inputs, exclude_under=out_root, recursive=recursive), out_root, settings,
                         trees)
    fp = fingerprint(settings, separator)
    if on_plan:
        on_plan(all_jobs)
    done: dict[Job, FileResult] = {}

    def record(job: Job, result: FileResult, ran: bool = True) -> None:
        done[job] = result
        if result.status == "done":
            interrupts.note_kept(job.out_dir)  # also when a worker process committed it
        if ran:
            write_record(all_jobs, done, out_root, fp, settings)
        if on_done:
            on_done(result)

    todo = []
    for job in all_jobs:
        if is_current(job, fp):
            record(job, _skipped(job), ran=False)
        else:
            todo.append(job)
    try:
        if not backend.distributed and (jobs == 1 or len(todo) <= 1):
            for job in todo:
                if on_start:
                    on_start(job)
                record(job, run_one(job, separator, settings, fp, notice, on_stage))
        elif todo:
            _run_pool(todo, min(jobs, len(todo)), separator, settings, fp, notice, record, backend)
    except KeyboardInterrupt:
        # A result committed just as the interrupt came (its commit holds signals off) is finished.
        for job in todo:
            if job not in done and is_current(job, fp):
                done[job] = replace(_skipped(job), status="done")
                interrupts.note_kept(job.out_dir)
        if any(job in done for job in todo):
            write_record(all_jobs, done, out_root, fp, settings, interrupted=True)
        raise
    return write_record(all_jobs, done, out_root, fp, settings)


def _run_pool(todo: list[Job], jobs: int, separator, settings, fp, notice, record, backend) -> None:
    threads = max(1, (os.cpu_count() or 1) // jobs)

    def done(i: int, finished: Future) -> None:
        try:
            result = finished.result()
        except (results.ResultError, OSError) as exc:  # a worker's result that its folder cannot take
            result = FileResult(str(todo[i].input), str(todo[i].out_dir), "failed", error=describe_error(exc))
        except Exception as exc:  # the worker itself died (out of memory, killed)
            result = FileResult(str(todo[i].input), str(todo[i].out_dir), "failed",
                                error=f"worker: {describe_error(exc)}")
        record(todo[i], result)

    gpu = isinstance(separator, DemucsSeparator) and separator.device != "cpu"
    backend.run_tasks(_work, todo, jobs, done, initializer=_init_worker,
                      initargs=(separator, settings, fp, notice, threads), gpu=gpu)


def check_record(out_root: str | Path) -> None:
    """Refuse, before any work, an `out_root/batch.json` this tool did not write: it is replaced
    after every file."""
    path = Path(out_root) / BATCH_FILE
    if path.is_symlink():
        raise results.ResultError(f"{path}: is a link; a batch writes its own record there, so refusing to replace it")
    if not path.exists():
        return
    try:
        ours = str(json.loads(path.read_text(encoding="utf-8")).get("schema", "")).startswith(
            BATCH_SCHEMA.rsplit("/", 1)[0] + "/")
    except (OSError, ValueError, AttributeError):
        ours = False
    if not ours:
        raise results.ResultError(f"{path}: exists and was not written by adaptive-argm; refusing to replace it")


def write_record(all_jobs: list[Job], done: dict[Job, FileResult], out_root: Path, fp: str,
                 settings: pipeline.Settings, interrupted: bool = False) -> BatchResult:
    """batch.json, atomically, with the finished files in input order."""
    files = tuple(done[j] for j in all_jobs if j in done)
    pending = tuple(str(j.input) for j in all_jobs if j not in done) if interrupted else ()
    result = BatchResult(str(out_root), fp, settings.to_dict(), files, interrupted, pending)
    audio.write_text(out_root / BATCH_FILE, to_json(result.to_dict()))
    interrupts.note_kept(out_root / BATCH_FILE)
    return result
