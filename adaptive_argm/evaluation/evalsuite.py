"""Evaluation over a prompt set: load the set, run `compare` once per clip (in worker
processes, resumably), and aggregate the per-clip results into results.csv / results.json,
summary.md and report.html.

Layout of the output folder:
    clips/<id>/input.wav            the clip as measured (44.1 kHz copy, for the listening page)
    clips/<id>/{direct,stemwise,routed}.wav, compare.json, figures   (from `pipeline.compare`)
    clips/<id>/clip.json            status, error and settings fingerprint (the resume marker)
    clips/<id>/generated.wav        MusicGen's clip, for entries without audio (`--generate`)
    results.csv, results.json, summary.md, report.html

A clip is reused when its clip.json says `ok` with the same fingerprint (settings, preset
content, separator, and the source files' sizes and times) and its compare.json is there;
anything else is recomputed, so an interrupted run resumes where it stopped. A failing clip
is recorded with its error and the run goes on.

Intrusive scores (SI-SDR, LSD, quiet-frame SNR) are taken against the INPUT itself: there is
no clean original of a generated clip, so they say how far each restoration moved the audio,
not whether it is cleaner.
"""

from __future__ import annotations

import csv
import io
import json
import math
import hashlib
import re
import tomllib
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field, fields
from multiprocessing import get_context
from pathlib import Path
from typing import Callable

import numpy as np

from ..core import audio, intrusive, metrics, pipeline, presets, separate
from . import generate as musicgen
from ..core.audio import WORK_SR
from ..core.report import jsonable, to_json

TAGS = separate.SOURCES
MODES = ("input",) + pipeline.COMPARE_MODES
FORCED_MODES = ("direct", "stemwise")
SEPARATORS = separate.SEPARATORS
MISSING_POLICIES = ("skip", "fail")
CLIP_KEYS = {"id", "prompt", "tags", "audio", "stems", "stem_scale", "mix"}
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
FINGERPRINT_VERSION = 1
STEM_SCALE_TOLERANCE_DB = 1.0
"""Note a stems entry whose stems fit its mix with a gain this far from the declared `stem_scale`."""
TIE_TOLERANCE = 0.01
"""Two results within this of each other on a metric are a tie: the panel's printed precision
(0.01 dB or LU); float rounding between two transparent results is no win."""
PAPER_METRIC = "p25_paper_db"
HONEST_METRICS = tuple(k for k, d in metrics.DIRECTIONS.items() if d != "none" and k != PAPER_METRIC)
"""The panel minus the paper's gameable number and the direction-less diagnostics."""

CLIPS_DIR = "clips"
CLIP_RECORD = "clip.json"
INPUT_COPY = "input.wav"
GENERATED = "generated.wav"
GENERATED_RECORD = "generated.json"
COMPARE_JSON = "compare.json"
FIGURES = ("spectrograms.png", "stems.png")
"""The figures `pipeline.compare` writes, in the order the report shows them."""
OUTPUT_FILES = tuple(f"{m}.wav" for m in pipeline.COMPARE_MODES) + (COMPARE_JSON, CLIP_RECORD, INPUT_COPY)
RESULT_FILES = ("results.csv", "results.json", "summary.md", "report.html")


class EvalError(ValueError):
    """A prompt set or an evaluation that cannot go ahead; the message is one line."""


# --- the prompt set -------------------------------------------------------------------------


@dataclass(frozen=True)
class Clip:
    """One prompt-set entry. Exactly one source, or none (then it needs `--generate`)."""

    id: str
    prompt: str
    tags: tuple[str, ...]
    audio: Path | None = None
    stems: Path | None = None
    """A ground-truth multitrack: the clip is its mix file, or the sum of its stems x `stem_scale`."""
    stem_scale: float = 1.0
    mix: Path | None = None
    """The mix file in `stems` (default: the first of mixed/mix/mixture/input.<audio suffix>)."""

    @property
    def source(self) -> str:
        return "audio" if self.audio else "stems" if self.stems else "generate"

    def to_dict(self) -> dict:
        return {"id": self.id, "prompt": self.prompt, "tags": list(self.tags), "source": self.source,
                "audio": _str(self.audio), "stems": _str(self.stems), "stem_scale": self.stem_scale,
                "mix": _str(self.mix)}


@dataclass(frozen=True)
class PromptSet:
    path: Path
    name: str
    clips: tuple[Clip, ...]


def _str(p: Path | None) -> str | None:
    return None if p is None else str(p)


def load_prompts(path: str | Path) -> PromptSet:
    """Parse a prompt-set TOML (`[[clip]]` tables); paths are relative to the file."""
    path = Path(path)
    if not path.is_file():
        raise EvalError(f"{path}: no such prompt set")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise EvalError(f"{path}: not valid TOML ({exc})") from None
    tables = data.get("clip")
    if not isinstance(tables, list) or not tables:
        raise EvalError(f"{path}: no [[clip]] entries")
    base = path.parent
    clips, seen = [], set()
    for n, t in enumerate(tables, 1):
        where = f"{path} clip #{n}"
        unknown = set(t) - CLIP_KEYS
        if unknown:
            raise EvalError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}; "
                            f"known: {', '.join(sorted(CLIP_KEYS))}")
        cid = str(t.get("id", ""))
        if not ID_PATTERN.match(cid):
            raise EvalError(f"{where}: 'id' must be letters, digits, '.', '_' or '-' (it names a folder), "
                            f"not {cid!r}")
        if cid in seen:
            raise EvalError(f"{where}: id {cid!r} appears twice")
        seen.add(cid)
        if not isinstance(t.get("prompt"), str) or not t["prompt"].strip():
            raise EvalError(f"{where} ({cid}): needs a 'prompt'")
        tags = t.get("tags", [])
        if not isinstance(tags, list) or not set(tags) <= set(TAGS):
            raise EvalError(f"{where} ({cid}): 'tags' must be a list of {', '.join(TAGS)}")
        if "audio" in t and "stems" in t:
            raise EvalError(f"{where} ({cid}): give 'audio' or 'stems', not both")
        if ("stem_scale" in t or "mix" in t) and "stems" not in t:
            raise EvalError(f"{where} ({cid}): 'stem_scale' and 'mix' belong to a 'stems' entry")
        scale = t.get("stem_scale", 1.0)
        if not isinstance(scale, (int, float)) or not scale > 0:
            raise EvalError(f"{where} ({cid}): 'stem_scale' must be a positive number")
        stems = base / t["stems"] if "stems" in t else None
        clips.append(Clip(id=cid, prompt=t["prompt"].strip(), tags=tuple(tags),
                          audio=base / t["audio"] if "audio" in t else None, stems=stems,
                          stem_scale=float(scale), mix=stems / t["mix"] if "mix" in t else None))
    return PromptSet(path=path, name=str(data.get("name", path.stem)), clips=tuple(clips))


def find_mix(clip: Clip) -> Path | None:
    """The mix file of a stems entry: the declared one, else the first conventional name."""
    if clip.mix is not None:
        return clip.mix
    for name in separate.MIX_NAMES:
        for suffix in audio.AUDIO_SUFFIXES:
            p = clip.stems / f"{name}{suffix}"
            if p.is_file():
                return p
    return None


# --- settings and fingerprints -----------------------------------------------------------------


@dataclass(frozen=True)
class EvalSettings:
    """Everything an eval run decides besides the prompt set."""

    pipeline: pipeline.Settings = field(default_factory=pipeline.Settings)
    separator: str = "auto"
    """auto: Demucs when its weights are here, else none (every clip restored directly, with a
    notice), as a user without stems gets; stems: a stems entry's own stems (oracle separation),
    the other entries as auto; demucs: Demucs for every clip (no weights: stop at once)."""
    model: str = "htdemucs"
    model_repo: str | None = None
    device: str = "auto"
    force_stems: bool = False
    generate: bool = False
    generation: musicgen.GenerationSettings = field(default_factory=musicgen.GenerationSettings)
    missing: str = "skip"
    """What to do with a clip whose audio cannot be had (missing file, no source without
    --generate, MusicGen unavailable): skip it (recorded), or fail at once before any work."""
    jobs: int = 1
    figures: bool = True
    """Draw each clip's figures (most of a short clip's time goes into them)."""

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["pipeline"] = self.pipeline.to_dict()
        d["generation"] = self.generation.to_dict()
        return d


@dataclass(frozen=True)
class SeparatorPlan:
    kind: str
    """`stems`, `demucs` or `none`."""
    notice: str | None = None


def _file_stamp(p: Path) -> list:
    st = p.stat()
    return [str(p), st.st_size, st.st_mtime_ns]


def source_files(clip: Clip, clip_dir: Path) -> list[Path]:
    if clip.source == "audio":
        return [clip.audio]
    if clip.source == "stems":
        mix = find_mix(clip)
        return ([mix] if mix else []) + list(separate.stem_files(clip.stems, exclude=(mix,) if mix else ()).values())
    return [clip_dir / GENERATED]


def fingerprint(clip: Clip, clip_dir: Path, settings: EvalSettings, sep: SeparatorPlan, preset: presets.Preset) -> str:
    """A short hash of everything that decides a clip's results."""
    payload = {
        "version": FINGERPRINT_VERSION,
        "source": clip.source,
        "stem_scale": clip.stem_scale if clip.source == "stems" else None,
        "files": [_file_stamp(p) for p in source_files(clip, clip_dir)],
        "generation": ({**settings.generation.to_dict(), "prompt": clip.prompt, "device": None}
                       if clip.source == "generate" else None),
        "separator": [sep.kind, settings.model if sep.kind == "demucs" else None,
                      settings.model_repo if sep.kind == "demucs" else None, settings.force_stems],
        "pipeline": settings.pipeline.to_dict(),
        "preset": preset.to_dict(),
    }
    return hashlib.sha256(json.dumps(jsonable(payload), sort_keys=True).encode()).hexdigest()[:16]


# --- one clip ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClipOutcome:
    id: str
    status: str
    """`ok`, `failed` or `skipped`."""
    reused: bool = False
    error: str | None = None
    folder: str | None = None
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        d = asdict(self)
        d["notes"] = list(self.notes)
        return d


@dataclass(frozen=True)
class Job:
    clip: Clip
    clip_dir: Path
    separator: SeparatorPlan
    fingerprint: str
    settings: EvalSettings


def _one_line(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _sum_stems(clip: Clip) -> np.ndarray:
    """The mix of a stems folder without a mix file: the stems' sum x `stem_scale`, 44.1 kHz."""
    parts = [audio.read(p, WORK_SR)[0] for p in separate.stem_files(clip.stems).values()]
    channels = max(x.shape[0] for x in parts)
    n = max(x.shape[1] for x in parts)
    total = np.zeros((channels, n), dtype=np.float32)
    for x in parts:
        total[:, : x.shape[1]] += audio.to_channels(x, channels)
    return total * np.float32(clip.stem_scale)


def prepare_input(clip: Clip, clip_dir: Path) -> tuple[Path, np.ndarray]:
    """The file `compare` reads for this clip and the clip as measured (44.1 kHz), also written
    as `input.wav` for the listening page (the source itself is never copied or touched)."""
    if clip.source == "stems":
        mix = find_mix(clip)
        source = mix
        x = audio.read(mix, WORK_SR)[0] if mix else _sum_stems(clip)
    else:
        source = clip.audio if clip.source == "audio" else clip_dir / GENERATED
        x = audio.read(source, WORK_SR)[0]
    copy = audio.write(clip_dir / INPUT_COPY, x, WORK_SR, protect=(source,) if source else ())
    return (source or copy), x


_DEMUCS: dict = {}
"""Demucs separators by (model, repo, device), loaded once per process."""


def _separator_for(job: Job, input_path: Path):
    s = job.settings
    if job.separator.kind == "stems":
        mix = find_mix(job.clip)
        exclude = (input_path,) + ((mix,) if mix else ())
        return separate.StemsFolder(job.clip.stems, force=s.force_stems, exclude=exclude)
    if job.separator.kind == "demucs":
        key = (s.model, s.model_repo, s.device)
        if key not in _DEMUCS:
            _DEMUCS[key] = separate.DemucsSeparator(s.model, s.model_repo, device=s.device)
        return _DEMUCS[key]
    return None


def _clear(clip_dir: Path) -> None:
    """Remove a previous attempt's outputs, so nothing stale is shown beside new results."""
    for name in OUTPUT_FILES + FIGURES:
        (clip_dir / name).unlink(missing_ok=True)


def run_job(job: Job) -> ClipOutcome:
    """Compare one clip (in whatever process runs it); record success or the error in clip.json."""
    clip_dir = job.clip_dir
    clip_dir.mkdir(parents=True, exist_ok=True)
    _clear(clip_dir)
    notes: list[str] = []
    try:
        input_path, reference = prepare_input(job.clip, clip_dir)
        separator = _separator_for(job, input_path)
        result = pipeline.compare(input_path, clip_dir, separator, job.settings.pipeline, reference=reference,
                                  notice=job.separator.notice, figures=False, stem_views=job.settings.figures)
        gain = result.separator.get("gain") if job.separator.kind == "stems" else None
        if gain and gain > 0 and abs(20 * math.log10(gain / job.clip.stem_scale)) > STEM_SCALE_TOLERANCE_DB:
            notes.append(f"the stems fit the mix with gain {gain:.3g}, not the declared stem_scale "
                         f"{job.clip.stem_scale:g}")
        if job.settings.figures:
            try:
                from ..core import figures

                figures.compare_figures(result, clip_dir)
            except Exception as exc:  # a figure must not cost the clip its audio and numbers
                notes.append(f"figures not written ({_one_line(exc)})")
        outcome = ClipOutcome(job.clip.id, "ok", folder=str(clip_dir), notes=tuple(notes))
    except Exception as exc:
        outcome = ClipOutcome(job.clip.id, "failed", error=_one_line(exc), folder=str(clip_dir))
    record = {"schema": "adaptive-argm/eval-clip/1", **outcome.to_dict(), "fingerprint": job.fingerprint,
              "figures": job.settings.figures}
    audio.write_text(clip_dir / CLIP_RECORD, to_json(record))
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


def _generation_done(clip: Clip, clip_dir: Path, g: musicgen.GenerationSettings) -> bool:
    try:
        record = json.loads((clip_dir / GENERATED_RECORD).read_text())
    except (OSError, ValueError):
        return False
    want = {**g.to_dict(), "prompt": clip.prompt}
    want.pop("device")
    return record == want and (clip_dir / GENERATED).is_file()


def _generate_clips(clips: list[Clip], out_dir: Path, settings: EvalSettings,
                    on_note: Callable[[str], None]) -> dict[str, ClipOutcome]:
    """Make generated.wav for each clip that needs it (the model is loaded once, in this
    process); returns the clips that failed."""
    failed: dict[str, ClipOutcome] = {}
    todo = [c for c in clips if not _generation_done(c, out_dir / CLIPS_DIR / c.id, settings.generation)]
    if not todo:
        return failed
    on_note(f"generating {len(todo)} clip(s) with {settings.generation.model}")
    try:
        model, processor = musicgen.load(settings.generation.model, settings.generation.device)
    except Exception as exc:  # availability was checked up front: this is a real failure
        return {c.id: ClipOutcome(c.id, "failed", error=f"generation: {_one_line(exc)}") for c in todo}
    for clip in todo:
        clip_dir = out_dir / CLIPS_DIR / clip.id
        try:
            gen = musicgen.generate(clip.prompt, settings.generation, model=model, processor=processor)
            musicgen.write(gen, clip_dir / GENERATED)
            record = {**settings.generation.to_dict(), "prompt": clip.prompt}
            record.pop("device")
            audio.write_text(clip_dir / GENERATED_RECORD, to_json(record))
        except Exception as exc:
            failed[clip.id] = ClipOutcome(clip.id, "failed", error=f"generation: {_one_line(exc)}",
                                          folder=str(clip_dir))
    return failed


# --- the run -------------------------------------------------------------------------------


@dataclass(frozen=True)
class EvalResult:
    prompt_set: PromptSet
    out_dir: Path
    settings: EvalSettings
    outcomes: tuple[ClipOutcome, ...]
    """In prompt-set order."""
    compares: dict[str, dict]
    """compare.json of each clip that is `ok`, by id."""
    rows: tuple[dict, ...]
    aggregate: "Aggregate"
    notices: tuple[str, ...] = ()

    def clip(self, cid: str) -> Clip:
        return next(c for c in self.prompt_set.clips if c.id == cid)

    @property
    def failed(self) -> list[ClipOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]


def _missing_reason(clip: Clip, settings: EvalSettings, generation_reason: str | None) -> str | None:
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


def _plan_separator(clip: Clip, settings: EvalSettings, demucs) -> SeparatorPlan:
    if settings.separator == "stems" and clip.source == "stems":
        return SeparatorPlan("stems")
    sep, notice = demucs()
    if settings.separator == "stems":
        notice = "this entry has no stems: " + (notice or f"separated with Demucs ({settings.model}) instead")
    return SeparatorPlan("demucs" if sep is not None else "none", notice)


def run(prompt_set: PromptSet, out_dir: str | Path, settings: EvalSettings = EvalSettings(), *,
        on_total: Callable[[int], None] | None = None, on_clip: Callable[[ClipOutcome], None] | None = None,
        on_note: Callable[[str], None] | None = None) -> EvalResult:
    """Evaluate every clip of `prompt_set` into `out_dir` and write the result files.

    `on_total(n)` is called once with the number of clips, `on_clip(outcome)` as each clip is
    finished (reused, skipped and failed ones included), `on_note(text)` with notices as soon
    as they are known (a missing source, no MusicGen, no Demucs weights).
    """
    out_dir = Path(out_dir)
    note = on_note or (lambda text: None)
    if settings.separator not in SEPARATORS:
        raise EvalError(f"--separator must be one of {', '.join(SEPARATORS)}, not {settings.separator!r}")
    if settings.missing not in MISSING_POLICIES:
        raise EvalError(f"--missing must be one of {', '.join(MISSING_POLICIES)}, not {settings.missing!r}")
    if settings.jobs < 1:
        raise EvalError("-j/--jobs must be at least 1")
    preset = presets.load(settings.pipeline.preset)
    if out_dir.exists() and not out_dir.is_dir():
        raise EvalError(f"{out_dir}: exists and is not a folder")
    (out_dir / CLIPS_DIR).mkdir(parents=True, exist_ok=True)
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
        raise EvalError(f"{len(missing)} clip(s) have no audio (first: {first}: {missing[first]}); "
                        f"--missing skip runs the others")
    outcomes: dict[str, ClipOutcome] = {}
    for cid, reason in missing.items():
        outcomes[cid] = ClipOutcome(cid, "skipped", error=reason)
    if missing:
        note(f"skipping {len(missing)} clip(s) without audio ({'; '.join(sorted(set(missing.values())))})")

    demucs_cache: list = []

    def demucs():
        if not demucs_cache:
            demucs_cache.append(separate.resolve("demucs" if settings.separator == "demucs" else "auto",
                                                 model=settings.model, model_repo=settings.model_repo,
                                                 device=settings.device))
            if demucs_cache[0][1]:
                note(demucs_cache[0][1])
                notices.append(demucs_cache[0][1])
        return demucs_cache[0]

    # Before generation: `--separator demucs` without weights stops the run here, at once.
    plans = {c.id: _plan_separator(c, settings, demucs) for c in clips if c.id not in outcomes}
    to_generate = [c for c in clips if c.source == "generate" and c.id not in outcomes]
    if to_generate:
        outcomes.update(_generate_clips(to_generate, out_dir, settings, note))

    jobs: list[Job] = []
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
            jobs.append(Job(clip, clip_dir, plans[clip.id], fp, settings))
    if on_clip:
        for clip in clips:
            if clip.id in outcomes:
                on_clip(outcomes[clip.id])
    for outcome in _run_jobs(jobs, settings.jobs):
        outcomes[outcome.id] = outcome
        if on_clip:
            on_clip(outcome)

    ordered = tuple(outcomes[c.id] for c in clips)
    return finish(prompt_set, out_dir, settings, ordered, tuple(dict.fromkeys(notices)))


def _run_jobs(jobs: list[Job], workers: int):
    """Yield each job's outcome as it finishes; in this process for one worker."""
    if workers == 1 or len(jobs) <= 1:
        for job in jobs:
            yield run_job(job)
        return
    # spawn, not fork: torch and the thread pools of the parent do not survive a fork safely.
    pool = ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=get_context("spawn"))
    try:
        futures = {pool.submit(run_job, job): job for job in jobs}
        for f in as_completed(futures):
            try:
                yield f.result()
            except Exception as exc:  # the worker itself died (out of memory, killed)
                job = futures[f]
                yield ClipOutcome(job.clip.id, "failed", error=f"worker: {_one_line(exc)}", folder=str(job.clip_dir))
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()


def finish(prompt_set: PromptSet, out_dir: Path, settings: EvalSettings, outcomes: tuple[ClipOutcome, ...],
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


# --- rows ------------------------------------------------------------------------------------

METRIC_FIELDS = tuple(f.name for f in fields(metrics.MetricPanel))
BASE_FIELDS = ("clip", "prompt", "tags", "source", "separator", "reference", "mode", "mode_used", "audio",
               "routed_mode", "route_reason")
STEM_FIELDS = tuple(f"{s}_{what}" for s in TAGS for what in ("decision", "rel_db", "active"))
OUTPUT_FIELDS = ("clip_action", "peak_out_dbfs", "loudness_gain_db", "warnings")
ROW_FIELDS = BASE_FIELDS + METRIC_FIELDS + STEM_FIELDS + OUTPUT_FIELDS
"""results.csv's columns, in order; results.json's rows carry the same keys."""


def rows_for(clip: Clip, cmp: dict) -> list[dict]:
    """One flat row per mode the clip has (input, direct, stemwise when separated, routed):
    every metric, and the router's plan (the same on each of the clip's rows)."""
    router = cmp["router"]
    stems = {s["name"]: s for s in router.get("stems", [])}
    base = {"clip": clip.id, "prompt": clip.prompt, "tags": ";".join(clip.tags), "source": clip.source,
            "separator": cmp["separator"].get("name"), "reference": "input",
            "routed_mode": router["mode_used"], "route_reason": router["reason"]}
    for s in TAGS:
        st = stems.get(s)
        base[f"{s}_decision"] = None if st is None else st["decision"]
        base[f"{s}_rel_db"] = None if st is None else st["rel_db"]
        base[f"{s}_active"] = None if st is None else st["active_fraction"]
    rows = []
    for mode in MODES:
        panel = cmp["metrics"].get(mode)
        if panel is None:
            continue
        out = cmp["outputs"].get(mode, {})
        row = {**base, "mode": mode, "mode_used": out.get("mode_used"),
               "audio": f"{CLIPS_DIR}/{clip.id}/{INPUT_COPY if mode == 'input' else mode + '.wav'}",
               **{k: panel.get(k) for k in METRIC_FIELDS},
               "clip_action": out.get("clip_action"), "peak_out_dbfs": out.get("peak_dbfs"),
               "loudness_gain_db": out.get("loudness_gain_db"),
               "warnings": "; ".join(cmp.get("warnings", {}).get(mode, [])) or None}
        rows.append(jsonable({k: row.get(k) for k in ROW_FIELDS}))
    return rows


def csv_text(rows: tuple[dict, ...] | list[dict]) -> str:
    """results.csv: ROW_FIELDS columns; null is an empty cell; floats in full precision."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=ROW_FIELDS, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: "" if r.get(k) is None else repr(r[k]) if isinstance(r[k], float) else r[k]
                    for k in ROW_FIELDS})
    return buf.getvalue()


# --- aggregation -----------------------------------------------------------------------------


def score(metric: str, value, input_value) -> float | None:
    """A value on a higher-is-better scale by the metric's direction (None: no direction or no
    finite value)."""
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    direction = metrics.DIRECTIONS.get(metric)
    if direction == "higher":
        return min(float(value), intrusive.SCORE_CEILING_DB)
    if direction == "lower":
        return -float(value)
    if direction == "closer-to-input":
        if not isinstance(input_value, (int, float)) or not math.isfinite(input_value):
            return None
        return -abs(float(value) - float(input_value))
    return None


@dataclass(frozen=True)
class Aggregate:
    """What summary.md and the report's head say about the whole set."""

    means: dict[str, dict[str, float | None]]
    """mode -> metric -> mean over the clips that have that mode (finite values only)."""
    counts: dict[str, int]
    """mode -> number of clips with that mode."""
    wins: dict[str, dict[str, tuple[int, int, int]]]
    """forced mode -> metric -> (routed better, tie, routed worse) over clips that have both."""
    by_tag: dict[str, dict[str, int]]
    """tag -> clips, routed stem-wise, routed direct, and the decisions on that tag's stem."""
    direct_clips: tuple[tuple[str, str], ...]
    """(clip id, router's reason) for each clip the router sent to direct."""
    status: dict[str, int]

    def to_dict(self) -> dict:
        return {"means": self.means, "counts": self.counts,
                "wins": {m: {k: {"better": w, "tie": t, "worse": l} for k, (w, t, l) in d.items()}
                         for m, d in self.wins.items()},
                "by_tag": self.by_tag, "direct_clips": [{"clip": c, "reason": r} for c, r in self.direct_clips],
                "status": self.status}


def aggregate(prompt_set: PromptSet, outcomes, compares: dict[str, dict], rows) -> Aggregate:
    by_clip: dict[str, dict[str, dict]] = {}
    for r in rows:
        by_clip.setdefault(r["clip"], {})[r["mode"]] = r
    means: dict[str, dict] = {}
    counts: dict[str, int] = {}
    for mode in MODES:
        have = [modes[mode] for modes in by_clip.values() if mode in modes]
        counts[mode] = len(have)
        means[mode] = {}
        for k in METRIC_FIELDS:
            vals = [r[k] for r in have if isinstance(r[k], (int, float)) and math.isfinite(r[k])]
            means[mode][k] = float(np.mean(vals)) if vals else None
    wins: dict[str, dict] = {}
    for forced in FORCED_MODES:
        wins[forced] = {}
        for k in (PAPER_METRIC,) + HONEST_METRICS:
            w = t = l = 0
            for modes in by_clip.values():
                if forced not in modes or "routed" not in modes:
                    continue
                ref = modes["input"][k]
                a, b = score(k, modes["routed"][k], ref), score(k, modes[forced][k], ref)
                if a is None or b is None:
                    continue
                if abs(a - b) <= TIE_TOLERANCE:
                    t += 1
                elif a > b:
                    w += 1
                else:
                    l += 1
            wins[forced][k] = (w, t, l)
    clips = {c.id: c for c in prompt_set.clips}
    by_tag: dict[str, dict[str, int]] = {}
    for tag in TAGS:
        d = {"clips": 0, "routed_stemwise": 0, "routed_direct": 0, "stem_process": 0, "stem_skip": 0,
             "stem_absent": 0}
        for cid, cmp in compares.items():
            if tag not in clips[cid].tags:
                continue
            d["clips"] += 1
            d["routed_stemwise" if cmp["router"]["mode_used"] == "stemwise" else "routed_direct"] += 1
            decision = next((s["decision"] for s in cmp["router"].get("stems", []) if s["name"] == tag), None)
            d["stem_process" if decision == "process" else "stem_skip" if decision == "skip" else "stem_absent"] += 1
        by_tag[tag] = d
    direct = tuple((cid, cmp["router"]["reason"]) for cid, cmp in compares.items()
                   if cmp["router"]["mode_used"] == "direct")
    status = {s: sum(1 for o in outcomes if o.status == s) for s in ("ok", "failed", "skipped")}
    status["reused"] = sum(1 for o in outcomes if o.reused)
    return Aggregate(means, counts, wins, by_tag, direct, status)


# --- writing ---------------------------------------------------------------------------------


def results_json(result: EvalResult) -> dict:
    return {
        "schema": "adaptive-argm/eval/1",
        "prompt_set": {"path": str(result.prompt_set.path), "name": result.prompt_set.name},
        "settings": result.settings.to_dict(),
        "reference": "input (intrusive scores say how far each mode moved the audio, not how clean it is)",
        "notices": list(result.notices),
        "clips": [{**result.clip(o.id).to_dict(), **o.to_dict()} for o in result.outcomes],
        "aggregate": result.aggregate.to_dict(),
        "fields": list(ROW_FIELDS),
        "rows": list(result.rows),
    }


def write_results(result: EvalResult) -> dict[str, Path]:
    from . import htmlreport

    out = result.out_dir
    return {
        "csv": audio.write_text(out / "results.csv", csv_text(result.rows)),
        "json": audio.write_text(out / "results.json", to_json(results_json(result))),
        "summary": audio.write_text(out / "summary.md", summary_markdown(result)),
        "html": htmlreport.write(result),
    }


def _fmt(v, digits: int = 2) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def summary_markdown(result: EvalResult) -> str:
    """summary.md: per-mode means, routed vs each forced mode on the honest panel, router
    decisions per tag, the clips routed to direct, and what failed or was skipped."""
    a = result.aggregate
    s = result.settings
    lines = [f"# Evaluation: {result.prompt_set.name}", ""]
    lines.append(f"Prompt set `{result.prompt_set.path}`: {len(result.outcomes)} clips, {a.status['ok']} evaluated "
                 f"({a.status['reused']} reused from an earlier run), {a.status['failed']} failed, "
                 f"{a.status['skipped']} skipped.")
    seps = sorted({c["separator"]["name"] for c in result.compares.values()})
    lines.append(f"Separator: `--separator {s.separator}` (used: {', '.join(seps) or 'none'}); preset "
                 f"`{s.pipeline.preset}`; metrics at 44.1 kHz, mono downmix; intrusive scores against the "
                 f"input itself (how far each mode moved the audio, not how clean it is).")
    for n in result.notices:
        lines.append(f"\n> notice: {n}")
    lines += ["", "## Routed vs forced modes on the honest panel", ""]
    if a.counts["routed"]:
        for forced in FORCED_MODES:
            tally = [a.wins[forced][k] for k in HONEST_METRICS]
            w, t, l = (sum(x[i] for x in tally) for i in range(3))
            if w + t + l == 0:
                lines.append(f"- routed vs {forced}: no clip has both (no separation)")
            else:
                lines.append(f"- routed vs {forced}: better in {w}, tied in {t}, worse in {l} of {w + t + l} "
                             f"clip x metric comparisons ({len(HONEST_METRICS)} honest metrics)")
        lines += ["", "Per metric, routed better / tied / worse (clips with both results; "
                  f"ties within {TIE_TOLERANCE:g}):", ""]
        table = []
        for k in HONEST_METRICS + (PAPER_METRIC,):
            label = k + (" (paper, gameable)" if k == PAPER_METRIC else "")
            cells = []
            for forced in FORCED_MODES:
                w, t, l = a.wins[forced][k]
                cells.append(f"{w} / {t} / {l}" if w + t + l else "–")
            table.append([label, metrics.DIRECTIONS[k], *cells])
        lines.append(_md_table(["metric", "better is", "routed vs direct", "routed vs stemwise"], table))
    else:
        lines.append("No clip was evaluated.")
    lines += ["", "## Per-mode means", ""]
    header = ["metric"] + [f"{m} (n={a.counts[m]})" for m in MODES]
    lines.append(_md_table(header, [[k] + [_fmt(a.means[m][k], 3 if "fraction" in k else 2) for m in MODES]
                                    for k in METRIC_FIELDS]))
    lines += ["", "## Router decisions per tag", "",
              "Clips tagged with each source, where the router sent them, and what it did with that source's "
              "own stem (absent: the separation has no such stem).", ""]
    lines.append(_md_table(["tag", "clips", "routed stem-wise", "routed direct", "stem processed", "stem skipped",
                            "stem absent"],
                           [[t, *(str(d[k]) for k in ("clips", "routed_stemwise", "routed_direct", "stem_process",
                                                      "stem_skip", "stem_absent"))]
                            for t, d in a.by_tag.items()]))
    lines += ["", "## Clips the router sent to direct", ""]
    lines += [f"- `{cid}`: {reason}" for cid, reason in a.direct_clips] or ["- none"]
    bad = [o for o in result.outcomes if o.status != "ok"]
    if bad:
        lines += ["", "## Failed or skipped", ""]
        lines += [f"- `{o.id}` ({o.status}): {o.error}" for o in bad]
    noted = [o for o in result.outcomes if o.notes]
    if noted:
        lines += ["", "## Notes", ""]
        lines += [f"- `{o.id}`: {'; '.join(o.notes)}" for o in noted]
    return "\n".join(lines) + "\n"
