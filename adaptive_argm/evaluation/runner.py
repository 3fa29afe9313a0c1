"""The eval suite's runner: `run` compares every clip of a prompt set once (in worker processes,
resumably), generates missing clips with MusicGen when asked, and writes results.csv,
results.json, summary.md and report.html.

The clips run on a backend (`core.backends`): this machine's process pool, or a Ray cluster
whose workers hand each clip's files back to be committed here.

An interrupted run resumes where it stopped: a clip is reused when its clip.json says `ok` with
the same fingerprint (`records.fingerprint`); anything else is recomputed. A failing clip is
recorded with its error and the run goes on. Every clip, every generated clip and the result
files are written as result sets (`core.results`), so an interrupt keeps finished clips whole
and leaves nothing of the others.
"""

from __future__ import annotations

import json
import math
from concurrent.futures import Future
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np

from ..core import audio, backends, figures, interrupts, pipeline, presets, results, separate, workers
from ..core.audio import WORK_SR
from ..core.report import to_json
from . import generate as musicgen
from . import htmlreport
from .records import (CLIP_RECORD, CLIP_SET, CLIPS_DIR, COMPARE_JSON, GENERATED, GENERATED_RECORD, GENERATED_SET,
                      INPUT_COPY, MISSING, RESULTS_SET, ClipOutcome, EvalError, EvalResult, EvalSettings, PromptClip,
                      PromptSet, SeparatorPlan, find_mix, fingerprint)
from ..core.table import csv_text
from .tables import ROW_FIELDS, aggregate, results_json, rows_for, summary_markdown

STEM_SCALE_TOLERANCE_DB = 1.0
"""Note a stems entry whose stems fit its mix with a gain this far from the declared `stem_scale`."""


@dataclass(frozen=True)
class ClipJob:
    """One clip to compare, with everything a worker process needs for it."""

    clip: PromptClip
    clip_dir: Path
    separator: SeparatorPlan
    fingerprint: str
    settings: EvalSettings


def _one_line(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _sum_stems(clip: PromptClip) -> np.ndarray:
    """The mix of a stems folder without a mix file: the stems' sum x `stem_scale`, 44.1 kHz."""
    parts = [audio.read(p, WORK_SR)[0] for p in separate.stem_files(clip.stems).values()]
    channels = max(x.shape[0] for x in parts)
    n = max(x.shape[1] for x in parts)
    total = np.zeros((channels, n), dtype=np.float32)
    for x in parts:
        total[:, : x.shape[1]] += audio.to_channels(x, channels)
    return total * np.float32(clip.stem_scale)


def prepare_input(clip: PromptClip, staged: results.ResultSet) -> tuple[Path, np.ndarray]:
    """The file `compare` reads for this clip and the clip as measured (44.1 kHz), also staged
    as `input.wav` for the listening page (the source itself is never copied or touched)."""
    if clip.source == "stems":
        mix = find_mix(clip)
        source = mix
        x = audio.read(mix, WORK_SR)[0] if mix else _sum_stems(clip)
    else:
        source = clip.audio if clip.source == "audio" else staged.final(GENERATED)
        x = audio.read(source, WORK_SR)[0]
    copy = audio.write(staged.path(INPUT_COPY), x, WORK_SR)
    return (source or copy), x


_DEMUCS: dict = {}
"""Demucs separators by their options, loaded once per process."""


def _separator_for(job: ClipJob, input_path: Path) -> separate.Separator | None:
    options = job.settings.separation
    if job.separator.kind == "stems":
        mix = find_mix(job.clip)
        exclude = (input_path,) + ((mix,) if mix else ())
        return separate.StemsFolder(job.clip.stems, force=options.force, exclude=exclude)
    if job.separator.kind == "demucs":
        if options not in _DEMUCS:
            _DEMUCS[options] = options.demucs()
        return _DEMUCS[options]
    return None


def _sources(clip: PromptClip, clip_dir: Path) -> tuple[Path, ...]:
    """What a clip's results are made from: never written over by them."""
    return tuple(p for p in (clip.audio, clip.stems, clip.mix, clip_dir / GENERATED) if p is not None)


def run_job(job: ClipJob) -> ClipOutcome:
    """Compare one clip (in whatever process runs it) and commit its files with clip.json, the
    record of success or of the error, as one result set."""
    clip_dir = job.clip_dir
    notes: list[str] = []
    try:
        with results.ResultSet(clip_dir, CLIP_SET, protect=_sources(job.clip, clip_dir)) as staged:
            try:
                input_path, reference = prepare_input(job.clip, staged)
                separator = _separator_for(job, input_path)
                result = pipeline.compare(input_path, staged, separator, job.settings.pipeline, reference=reference,
                                          notice=job.separator.notice, figures=False, stem_views=job.settings.figures)
                audio.write_text(staged.path(COMPARE_JSON), to_json(staged.published(result.to_dict())))
                gain = result.separator.get("gain") if job.separator.kind == "stems" else None
                if gain and gain > 0 and abs(20 * math.log10(gain / job.clip.stem_scale)) > STEM_SCALE_TOLERANCE_DB:
                    notes.append(f"the stems fit the mix with gain {gain:.3g}, not the declared stem_scale "
                                 f"{job.clip.stem_scale:g}")
                if job.settings.figures:
                    try:
                        figures.compare_figures(result, staged.staged_folder)
                    except Exception as exc:  # a figure must not cost the clip its audio and numbers
                        notes.append(f"figures not written ({_one_line(exc)})")
                outcome = ClipOutcome(job.clip.id, "ok", folder=str(clip_dir), notes=tuple(notes))
            except Exception as exc:
                workers.stop_if_stopping(exc)  # a stopped worker's clip did not fail: it was interrupted
                staged.discard()  # the record of the failure replaces the earlier attempt whole
                outcome = ClipOutcome(job.clip.id, "failed", error=_one_line(exc), folder=str(clip_dir))
            staged.commit({"schema": "adaptive-argm/eval-clip/1", **outcome.to_dict(), "fingerprint": job.fingerprint,
                           "figures": job.settings.figures})
    except (results.ResultError, OSError) as exc:  # the folder itself cannot take the result
        return ClipOutcome(job.clip.id, "failed", error=_one_line(exc), folder=str(clip_dir))
    return outcome


def is_done(clip_dir: Path, fp: str, figures: bool = True) -> bool:
    """A finished clip with this fingerprint (and figures, when they are asked for)."""
    try:
        record = json.loads((clip_dir / CLIP_RECORD).read_text())
    except (OSError, ValueError):
        return False
    return (record.get("status") == "ok" and record.get("fingerprint") == fp
            and (record.get("figures") or not figures) and (clip_dir / COMPARE_JSON).is_file())


def _reused(clip_dir: Path, cid: str) -> ClipOutcome:
    record = json.loads((clip_dir / CLIP_RECORD).read_text())
    return ClipOutcome(cid, "ok", reused=True, folder=str(clip_dir), notes=tuple(record.get("notes", ())))


# --- generation ----------------------------------------------------------------------------


def _generation_done(clip: PromptClip, clip_dir: Path, g: musicgen.GenerationSettings) -> bool:
    try:
        record = json.loads((clip_dir / GENERATED_RECORD).read_text())
    except (OSError, ValueError):
        return False
    want = {**g.to_dict(), "prompt": clip.prompt}
    want.pop("device")
    for key in ("schema", results.RECORD_KEY):
        record.pop(key, None)
    return record == want and (clip_dir / GENERATED).is_file()


def _generate_clips(clips: list[PromptClip], out_dir: Path, settings: EvalSettings,
                    on_note: Callable[[str], None], backend: backends.Backend) -> dict[str, ClipOutcome]:
    """Make generated.wav for each clip that needs it (the model is loaded once, in this
    process, or once per worker of a distributed backend); returns the clips that failed."""
    failed: dict[str, ClipOutcome] = {}
    todo = [c for c in clips if not _generation_done(c, out_dir / CLIPS_DIR / c.id, settings.generation)]
    if not todo:
        return failed
    on_note(f"generating {len(todo)} clip(s) with {settings.generation.model}")
    if backend.distributed:  # each worker loads MusicGen once, and generates the clips it is given
        return _generate_on(backend, [GenerationJob(c, out_dir / CLIPS_DIR / c.id, settings.generation)
                                      for c in todo], settings.jobs)
    try:
        model, processor = musicgen.load(settings.generation.model, settings.generation.device)
    except Exception as exc:  # availability was checked up front: this is a real failure
        return {c.id: ClipOutcome(c.id, "failed", error=f"generation: {_one_line(exc)}") for c in todo}
    for clip in todo:
        outcome = _generate_one(GenerationJob(clip, out_dir / CLIPS_DIR / clip.id, settings.generation),
                                model, processor)
        if outcome is not None:
            failed[clip.id] = outcome
    return failed


@dataclass(frozen=True)
class GenerationJob:
    clip: PromptClip
    clip_dir: Path
    settings: musicgen.GenerationSettings


def _generate_one(job: GenerationJob, model, processor) -> ClipOutcome | None:
    """generated.wav with its generated.json, as one result set; a failed outcome or None."""
    try:
        with results.ResultSet(job.clip_dir, GENERATED_SET) as staged:
            gen = musicgen.generate(job.clip.prompt, job.settings, model=model, processor=processor)
            musicgen.write(gen, staged.path(GENERATED))
            record = {"schema": "adaptive-argm/generated/1", **job.settings.to_dict(), "prompt": job.clip.prompt}
            record.pop("device")
            staged.commit(record)
    except Exception as exc:
        return ClipOutcome(job.clip.id, "failed", error=f"generation: {_one_line(exc)}", folder=str(job.clip_dir))
    return None


_MUSICGEN: dict = {}
"""MusicGen models and processors by (model, device), loaded once per worker process."""


def generate_job(job: GenerationJob) -> ClipOutcome | None:
    """`_generate_one` in a worker, with the worker's own MusicGen."""
    key = (job.settings.model, job.settings.device)
    if key not in _MUSICGEN:
        try:
            _MUSICGEN[key] = musicgen.load(*key)
        except Exception as exc:
            return ClipOutcome(job.clip.id, "failed", error=f"generation: {_one_line(exc)}", folder=str(job.clip_dir))
    return _generate_one(job, *_MUSICGEN[key])


def _generate_on(backend: backends.Backend, jobs: list[GenerationJob], workers: int) -> dict[str, ClipOutcome]:
    failed: dict[str, ClipOutcome] = {}

    def done(i: int, finished: Future) -> None:
        try:
            outcome = finished.result()
        except Exception as exc:  # the worker died, or the folder cannot take the clip
            outcome = ClipOutcome(jobs[i].clip.id, "failed", error=f"generation: {_one_line(exc)}",
                                  folder=str(jobs[i].clip_dir))
        if outcome is not None:
            failed[outcome.id] = outcome

    backend.run_tasks(generate_job, jobs, workers, done, gpu=jobs[0].settings.device != "cpu")
    return failed




# --- the run -------------------------------------------------------------------------------


def _missing_reason(clip: PromptClip, settings: EvalSettings, generation_reason: str | None) -> str | None:
    if clip.source == "audio" and not clip.audio.is_file():
        return f"audio file {clip.audio} not found"
    if clip.source == "stems":
        if not clip.stems.is_dir():
            return f"stems folder {clip.stems} not found"
        if clip.mix is not None and not clip.mix.is_file():
            return f"mix file {clip.mix} not found"
    if clip.source == "generate":
        if not settings.generate:
            return "no audio or stems given: pass --generate to make it with MusicGen"
        return generation_reason
    return None


def _plan_separator(clip: PromptClip, settings: EvalSettings, demucs) -> SeparatorPlan:
    """An entry's own stems when it gives them (`auto` and `stems`; `demucs` separates every
    clip), else Demucs when its weights are here, else none."""
    options = settings.separation
    if options.separator in ("auto", "stems") and clip.source == "stems":
        return SeparatorPlan("stems")
    sep, notice = demucs()
    if options.separator == "stems":
        notice = "this entry has no stems: " + (notice or f"separated with Demucs ({options.model}) instead")
    return SeparatorPlan("demucs" if sep is not None else "none", notice)


def run(prompt_set: PromptSet, out_dir: str | Path, settings: EvalSettings = EvalSettings(), *,
        on_total: Callable[[int], None] | None = None, on_clip: Callable[[ClipOutcome], None] | None = None,
        on_note: Callable[[str], None] | None = None, backend: backends.Backend | None = None) -> EvalResult:
    """Evaluate every clip of `prompt_set` into `out_dir` and write the result files, the clips
    on `backend` (default: this machine's process pool, `settings.jobs` workers).

    `on_total(n)` is called once with the number of clips, `on_clip(outcome)` as each clip is
    finished (reused, skipped and failed ones included), `on_note(text)` with notices as soon
    as they are known (a missing source, no MusicGen, no Demucs weights).
    """
    out_dir = Path(out_dir)
    note = on_note or (lambda text: None)
    backend = backend or backends.LOCAL
    preset = presets.load(settings.pipeline.preset)
    problem = results.conflict(out_dir, RESULTS_SET)
    if problem:  # said before any work, not after the last clip
        raise EvalError(problem.message)
    clips = list(prompt_set.clips)
    if on_total:
        on_total(len(clips))

    # Decide, before any work, what cannot run: said at once, skipped or fatal per --missing.
    needs_generation = settings.generate and any(c.source == "generate" for c in clips)
    generation_reason = musicgen.unavailable_reason(settings.generation.model) if needs_generation else None
    missing = {c.id: r for c in clips if (r := _missing_reason(c, settings, generation_reason))}
    notices: list[str] = []
    if generation_reason and needs_generation:
        notices.append(generation_reason)
        note(generation_reason)
    if missing and settings.missing == "fail":
        first = next(iter(missing))
        raise EvalError(f"{len(missing)} clip(s) have no audio (first: {first}: {missing[first]}); ", MISSING,
                        "=skip runs the others")
    outcomes: dict[str, ClipOutcome] = {}
    for cid, reason in missing.items():
        outcomes[cid] = ClipOutcome(cid, "skipped", error=reason)
    if missing:
        note(f"skipping {len(missing)} clip(s) without audio ({'; '.join(sorted(set(missing.values())))})")

    demucs_cache: list = []

    def demucs():
        if not demucs_cache:
            kind = "demucs" if settings.separation.separator == "demucs" else "auto"
            demucs_cache.append(separate.resolve(replace(settings.separation, separator=kind, stems=None)))
            if demucs_cache[0][1]:
                note(demucs_cache[0][1])
                notices.append(demucs_cache[0][1])
        return demucs_cache[0]

    # Before generation: `--separator demucs` without weights stops the run here, at once.
    plans = {c.id: _plan_separator(c, settings, demucs) for c in clips if c.id not in outcomes}
    to_generate = [c for c in clips if c.source == "generate" and c.id not in outcomes]
    if to_generate:
        outcomes.update(_generate_clips(to_generate, out_dir, settings, note, backend))

    jobs: list[ClipJob] = []
    for clip in clips:
        if clip.id in outcomes:
            continue
        clip_dir = out_dir / CLIPS_DIR / clip.id
        try:
            fp = fingerprint(clip, clip_dir, settings, plans[clip.id], preset)
        except (separate.SeparationError, OSError) as exc:
            outcomes[clip.id] = ClipOutcome(clip.id, "failed", error=str(exc), folder=str(clip_dir))
            continue
        if is_done(clip_dir, fp, settings.figures):
            outcomes[clip.id] = _reused(clip_dir, clip.id)
        else:
            jobs.append(ClipJob(clip, clip_dir, plans[clip.id], fp, settings))
    if on_clip:
        for clip in clips:
            if clip.id in outcomes:
                on_clip(outcomes[clip.id])

    def done(i: int, finished: Future) -> None:
        try:
            outcome = finished.result()
        except (results.ResultError, OSError) as exc:  # a worker's result that its folder cannot take
            outcome = ClipOutcome(jobs[i].clip.id, "failed", error=_one_line(exc), folder=str(jobs[i].clip_dir))
        except Exception as exc:  # the worker itself died (out of memory, killed)
            outcome = ClipOutcome(jobs[i].clip.id, "failed", error=f"worker: {_one_line(exc)}",
                                  folder=str(jobs[i].clip_dir))
        outcomes[outcome.id] = outcome
        if outcome.status == "ok":
            interrupts.note_kept(jobs[i].clip_dir)  # also when a worker process committed it
        if on_clip:
            on_clip(outcome)

    gpu = settings.separation.device != "cpu" and any(j.separator.kind == "demucs" for j in jobs)
    try:
        backend.run_tasks(run_job, jobs, settings.jobs, done, gpu=gpu)
    except KeyboardInterrupt:
        # A worker may have committed its clip between the interrupt and its stop: that clip is
        # kept, and said to be.
        for job in jobs:
            if job.clip.id not in outcomes and is_done(job.clip_dir, job.fingerprint, settings.figures):
                interrupts.note_kept(job.clip_dir)
        raise
    ordered = tuple(outcomes[c.id] for c in clips)
    return collect(prompt_set, out_dir, settings, ordered, tuple(dict.fromkeys(notices)))


def collect(prompt_set: PromptSet, out_dir: Path, settings: EvalSettings, outcomes: tuple[ClipOutcome, ...],
            notices: tuple[str, ...] = ()) -> EvalResult:
    """Collect every finished clip's compare.json and write results.csv/json, summary.md and
    report.html."""
    compares = {}
    for o in outcomes:
        if o.status == "ok":
            compares[o.id] = json.loads((out_dir / CLIPS_DIR / o.id / COMPARE_JSON).read_text())
    clips = {c.id: c for c in prompt_set.clips}
    rows = tuple(r for cid, cmp in compares.items() for r in rows_for(clips[cid], cmp))
    result = EvalResult(prompt_set, out_dir, settings, outcomes, compares, rows,
                        aggregate(prompt_set, outcomes, compares, rows), notices)
    write_results(result)
    return result


def write_results(result: EvalResult) -> dict[str, Path]:
    """results.csv, summary.md and report.html, with results.json as their manifest: one set."""
    with results.ResultSet(result.out_dir, RESULTS_SET) as staged:
        audio.write_text(staged.path("results.csv"), csv_text(result.rows, ROW_FIELDS))
        audio.write_text(staged.path("summary.md"), summary_markdown(result))
        audio.write_text(staged.path(htmlreport.REPORT_NAME), htmlreport.render(result))
        staged.commit(results_json(result))
    return {key: result.out_dir / name for key, name in
            (("csv", "results.csv"), ("json", "results.json"), ("summary", "summary.md"),
             ("html", htmlreport.REPORT_NAME))}

