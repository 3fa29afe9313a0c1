"""The paired benchmark: clean sources -> seeded degradations -> restoration through the library
-> intrusive and non-intrusive scores against the clean original, as tables.

Clean sources are the musicgen-dev mixtures with their true stems (oracle stems: each MusicGen
stem x 0.25, since `mixed` is their sample-wise mean; harmony + melody become `other`; there is
no vocals stem) and, optionally, clean files from a user folder (direct mode only: no stems).
Each clip x degradation gets ONE realisation (`degrade.apply_to_stems`), shared by every
preset and mode, so presets and modes are compared on identical input. Restoration runs the
library's own path (`route.route`, `pipeline.restore`: the preset's chains, loudness matching,
clip safety), exactly as `adaptive-argm run` would with those stems.

Everything is scored at 44.1 kHz (`audio.WORK_SR`) against the clean mix without its DC offset and
subsonic drift (`dc.remove_dc`, which every preset's input goes through first; the degraded
input is scored after it too), after `intrusive.align` (delay search up to 64 samples): SI-SDR, log-spectral distance, SNR in the quietest 10 % of
frames, BS.1770 loudness change, samples at or above full scale, and the whole non-intrusive
panel (output panels use the degraded input's band, as `run` does). "Change" is always output
minus the degraded input's own score.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Callable

import numpy as np

from ..config import (CLIP_MODE, CLIP_MODES, COMPARE_MODES, SKIP_POLICIES, SKIP_POLICY, ClipMode, Setting, SettingError,
                      SkipPolicy, check_choice)
from ..core import audio, backends, intrusive, levels, metrics, pipeline, presets
from ..core.audio import WORK_SR
from ..core.dc import remove_dc
from ..core.metrics import MetricPanel
from ..core.route import RouterConfig, route
from ..core.separate import Separation, SeparatorInfo
from . import degrade

MUSICGEN_STEMS = {"drums": ("drums",), "bass": ("bass",), "other": ("harmony", "melody")}
"""How musicgen-dev's stems map onto Demucs' sources."""
MUSICGEN_STEM_SCALE = 0.25
"""`mixed.wav` is the sample-wise MEAN of the four stems: a quarter of each adds up to it."""
DEFAULT_PRESETS = ("paper", "adaptive")
DEFAULT_SEED = 20260
FULL_SCALE = 1.0
# SI-SDR and quiet-frame SNR read at most intrusive.SCORE_CEILING_DB when a change is computed: an
# unchanged waveform scores +inf (clean input) or 140-150 dB (float32 rounding, or a DC offset,
# which the scores remove), and a change from there is undefined or meaningless.

# --- goals (issue 6), means over clips ---------------------------------------------------------
GOAL_NOISE_CASE = "white-45"
GOAL_NOISE_GAIN_MUSICGEN_DB = 1.5
GOAL_NOISE_GAIN_REAL_DB = 2.5
GOAL_WORST_CLIP_DB = -0.5
GOAL_HARMLESS_CASES = ("codec", "bandlimit", "clean")
GOAL_HARMLESS_DB = -0.5
GOAL_LOUDNESS_LU = 1.0


@dataclass(frozen=True)
class CleanClip:
    """One clean source: `(channels, samples)` float32 at the working rate, with the stems that
    add up to it (None for a plain file)."""

    name: str
    audio: np.ndarray
    stems: dict[str, np.ndarray] | None
    source: str
    """`musicgen` or `user`."""
    path: str = ""


CORPUS_ENV = "ADAPTIVE_ARGM_CORPUS"
CLEAN = Setting("clean", "clean folder")
SPLIT = Setting("split", "stem split")


def default_corpus() -> Path | None:
    """musicgen-dev: `$ADAPTIVE_ARGM_CORPUS`, else `../shared/corpus/musicgen-dev` beside the
    checkout or the current folder; None when none exists."""
    candidates = [os.environ.get(CORPUS_ENV)] if os.environ.get(CORPUS_ENV) else []
    candidates += [Path(__file__).resolve().parents[3] / "shared" / "corpus" / "musicgen-dev",
                   Path.cwd().parent / "shared" / "corpus" / "musicgen-dev"]
    return next((Path(c) for c in candidates if Path(c).is_dir()), None)


def musicgen_clips(corpus: str | Path) -> list[CleanClip]:
    """The musicgen-dev songs (`<song>/{mixed,drums,bass,harmony,melody}.wav`) with oracle stems."""
    corpus = Path(corpus)
    clips = []
    for song in sorted(p for p in corpus.iterdir() if (p / "mixed.wav").is_file()):
        mix, _ = audio.read(song / "mixed.wav", WORK_SR)
        stems = {}
        for name, parts in MUSICGEN_STEMS.items():
            stems[name] = sum(audio.read(song / f"{p}.wav", WORK_SR)[0] * np.float32(MUSICGEN_STEM_SCALE)
                              for p in parts)
            stems[name] = audio.to_channels(stems[name], mix.shape[0])[:, : mix.shape[1]]
        residual = mix - sum(stems.values())
        if levels.rms_dbfs(residual) - levels.rms_dbfs(mix) > -60.0:
            raise ValueError(f"{song}: stems x {MUSICGEN_STEM_SCALE} do not add up to mixed.wav")
        stems["other"] = (stems["other"] + residual).astype(np.float32)  # exact sum, ~-130 dB change
        clips.append(CleanClip(song.name, mix, stems, "musicgen", str(song)))
    if not clips:
        raise ValueError(f"{corpus}: no <song>/mixed.wav folders (musicgen-dev layout)")
    return clips


def folder_clips(folder: str | Path) -> list[CleanClip]:
    """Every audio file in `folder` (not recursive) as a clean clip without stems."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SettingError(CLEAN, f" {folder}: not a folder")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in audio.AUDIO_SUFFIXES)
    if not files:
        raise SettingError(CLEAN, f" {folder}: no audio files ({', '.join(audio.AUDIO_SUFFIXES)})")
    return [CleanClip(p.stem, audio.read(p, WORK_SR)[0], None, "user", str(p)) for p in files]


# --- one case ---------------------------------------------------------------------------------


def clipped_samples(y: np.ndarray) -> int:
    """Samples at or above full scale: they clip when written as fixed-point."""
    return int(np.count_nonzero(np.abs(y) >= FULL_SCALE))


@dataclass(frozen=True)
class CaseResult:
    """One clip x degradation x preset x mode: the input's and the output's panels vs clean."""

    clip: str
    source: str
    degradation: str
    preset: str
    mode: str
    mode_used: str
    processed: tuple[str, ...]
    skipped: tuple[str, ...]
    skip_policy: str
    input: MetricPanel
    output: MetricPanel
    clipped_in: int
    clipped_out: int
    clip_action: str
    loudness_gain_db: float
    restore_s: float

    @property
    def si_sdr_change_db(self) -> float:
        return intrusive.capped(self.output.si_sdr_db) - intrusive.capped(self.input.si_sdr_db)

    @property
    def lsd_change_db(self) -> float:
        return self.output.lsd_db - self.input.lsd_db

    @property
    def quiet_snr_change_db(self) -> float:
        return intrusive.capped(self.output.quiet_frame_snr_db) - intrusive.capped(self.input.quiet_frame_snr_db)

    @property
    def loudness_change_lu(self) -> float:
        return self.output.loudness_lufs - self.input.loudness_lufs

    def row(self) -> dict:
        """One flat CSV row: the headline numbers, then both panels (`in_*`, `out_*`)."""
        r = {"clip": self.clip, "source": self.source, "degradation": self.degradation, "preset": self.preset,
             "mode": self.mode, "mode_used": self.mode_used, "processed": "+".join(self.processed),
             "skipped": "+".join(self.skipped), "skip_policy": self.skip_policy,
             "si_sdr_in_db": self.input.si_sdr_db, "si_sdr_out_db": self.output.si_sdr_db,
             "si_sdr_change_db": self.si_sdr_change_db,
             "lsd_in_db": self.input.lsd_db, "lsd_out_db": self.output.lsd_db, "lsd_change_db": self.lsd_change_db,
             "quiet_snr_in_db": self.input.quiet_frame_snr_db, "quiet_snr_out_db": self.output.quiet_frame_snr_db,
             "quiet_snr_change_db": self.quiet_snr_change_db, "loudness_change_lu": self.loudness_change_lu,
             "clipped_in": self.clipped_in, "clipped_out": self.clipped_out, "clip_action": self.clip_action,
             "loudness_gain_db": self.loudness_gain_db, "restore_s": self.restore_s}
        for prefix, panel in (("in_", self.input), ("out_", self.output)):
            r.update({prefix + k: v for k, v in panel.to_dict().items() if k not in metrics.INTRUSIVE_FIELDS})
        return r


@dataclass(frozen=True)
class Damaged:
    """One degradation realisation of one clip: the raw damaged mix (as a user's file would
    hold it), the DC-free mix and stems the pipeline processes, and the record."""

    raw: np.ndarray
    mix: np.ndarray
    separation: Separation | None
    record: degrade.Record


def damage(clip: CleanClip, degradation: str, seed: int, split: str = "mask") -> Damaged:
    """Degrade `clip` once (mix and stems alike); seeds are stable per clip and degradation."""
    s = degrade.clip_seed(seed, clip.name, degradation)
    if clip.stems is None:
        raw, record = degrade.apply(degradation, clip.audio, WORK_SR, s)
        return Damaged(raw, remove_dc(raw, WORK_SR), None, record)
    raw, stems, record = degrade.apply_to_stems(degradation, clip.audio, clip.stems, WORK_SR, s, split)
    # As `load.load` and `StemsFolder` do: the mix and every stem lose their DC offset.
    stems = {k: remove_dc(v, WORK_SR, bypass=False) for k, v in stems.items()}  # linear: they still add up
    return Damaged(raw, remove_dc(raw, WORK_SR), Separation(stems, SeparatorInfo(name="oracle")), record)


class Restorer:
    """Restores one damaged clip with one preset under any number of router plans, running each
    stem through the chain at most once and each distinct remix at most once."""

    def __init__(self, clip: CleanClip, damaged: Damaged, preset: presets.Preset, clip_mode: str = "limit"):
        self.clip, self.damaged, self.preset, self.clip_mode = clip, damaged, preset, clip_mode
        # Scored as restoration sees them: the clean mix and the damaged input without DC offset
        # and drift (every preset starts from the DC-free input; they are not music).
        self.reference = remove_dc(clip.audio, WORK_SR, bypass=False)
        self.panel_in = metrics.with_scores_of(metrics.measure(damaged.raw, WORK_SR), damaged.mix, self.reference,
                                               WORK_SR)
        self._processed: dict[str, np.ndarray] = {}
        self._done: dict[tuple, tuple[pipeline.Restored, MetricPanel, float]] = {}

    @property
    def stems(self) -> dict[str, np.ndarray]:
        return self.damaged.separation.stems if self.damaged.separation else {}

    def case(self, mode: str, cfg: RouterConfig = RouterConfig(), skip_policy: str = "passthrough",
             full_panel: bool = True) -> CaseResult:
        """Route as `mode` says, restore, and score; `full_panel=False` scores only what the
        router sweep needs."""
        plan = route(self.stems, self.damaged.mix, WORK_SR, mode, cfg, skip_policy)
        kept = tuple(plan.skipped()) if skip_policy == "passthrough" else ()
        key = (plan.mode_used, tuple(plan.processed()) if plan.mode_used != "direct" else (), kept, full_panel)
        if key not in self._done:
            t0 = time.perf_counter()
            restored, self._processed = pipeline.restore(self.damaged.mix, plan, self.preset,
                                                         self.damaged.separation, self._processed, self.clip_mode)
            seconds = time.perf_counter() - t0
            panel = (metrics.measure(restored.audio, WORK_SR, ref=self.reference, band_hz=self.panel_in.bandwidth_hz)
                     if full_panel else _intrusive_panel(restored.audio, self.reference))
            self._done[key] = (restored, panel, seconds)
        restored, panel, seconds = self._done[key]
        return CaseResult(self.clip.name, self.clip.source, self.damaged.record.name, self.preset.name, mode,
                          plan.mode_used, tuple(plan.processed()), tuple(plan.skipped()), skip_policy,
                          self.panel_in, panel, clipped_samples(self.damaged.raw), clipped_samples(restored.audio),
                          restored.clip.action, restored.loudness_gain_db, seconds)


def _intrusive_panel(y: np.ndarray, ref: np.ndarray) -> MetricPanel:
    """Only what the router sweep needs (SI-SDR, LSD, quiet-frame SNR, loudness, peak); the
    rest NaN. A third of the cost of the full panel."""
    nan = math.nan
    return MetricPanel(p25_paper_db=nan, p25_abs_db=nan, noise_floor_db=nan,
                       loudness_lufs=levels.loudness_lufs(y, WORK_SR), p95_db=nan, low_high_balance_db=nan,
                       silent_frame_fraction=nan, floor_fraction=nan, peak_dbfs=levels.peak_dbfs(y), bandwidth_hz=nan,
                       si_sdr_db=intrusive.si_sdr_db(y, ref), lsd_db=intrusive.lsd_db(y, ref, WORK_SR),
                       quiet_frame_snr_db=intrusive.quiet_frame_snr_db(y, ref, WORK_SR))


# --- the benchmark ----------------------------------------------------------------------------


@dataclass(frozen=True)
class BenchmarkSettings:
    degradations: tuple[str, ...] = degrade.DEFAULT_SET
    presets: tuple[str, ...] = DEFAULT_PRESETS
    modes: tuple[str, ...] = COMPARE_MODES
    seed: int = DEFAULT_SEED
    split: str = "other"
    """How a degradation's difference is shared among the oracle stems (`degrade.apply_to_stems`).
    `other` by default: Demucs' catch-all source is where steady noise that is neither drums nor
    bass lands, and it keeps the noise stationary, as it is in the mix. `mask` (noise follows
    the music, so it is no longer stationary in any stem) and `vocals` (a noise-only stem, the
    best case for stem-wise work) bracket it; the results record which was used."""
    skip_policy: SkipPolicy = "passthrough"
    router: RouterConfig = field(default_factory=RouterConfig)
    clip_mode: ClipMode = "limit"
    jobs: int = 0
    """Worker processes; 0 = one per CPU core."""

    def __post_init__(self):
        check_choice(self.split, degrade.STEM_SPLITS, SPLIT)
        check_choice(self.skip_policy, SKIP_POLICIES, SKIP_POLICY)
        check_choice(self.clip_mode, CLIP_MODES, CLIP_MODE)

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["router"] = dict(self.router.__dict__)
        return d


@dataclass(frozen=True)
class BenchmarkResult:
    cases: tuple[CaseResult, ...]
    records: tuple[tuple[str, degrade.Record], ...]
    """(clip, record) per clip x degradation."""
    settings: BenchmarkSettings
    clips: tuple[tuple[str, str, float], ...]
    """(name, source, duration_s)."""
    wall_s: float
    jobs: int


def _run_pair(task: tuple[CleanClip, str, BenchmarkSettings]) -> tuple[list[CaseResult], degrade.Record]:
    """Every preset x mode of one clip x degradation (one damage realisation for all)."""
    clip, degradation, s = task
    damaged = damage(clip, degradation, s.seed, s.split)
    out = []
    for name in s.presets:
        r = Restorer(clip, damaged, presets.load(name), s.clip_mode)
        modes = s.modes if clip.stems is not None else tuple(m for m in s.modes if m == "direct")
        out.extend(r.case(m, s.router, s.skip_policy) for m in modes)
    return out, damaged.record


def check(settings: BenchmarkSettings) -> None:
    """Fail before any work on an unknown degradation, preset or mode."""
    for d in settings.degradations:
        degrade.parse(d)
    for p in settings.presets:
        presets.load(p)
    for m in settings.modes:
        if m not in COMPARE_MODES:
            raise ValueError(f"unknown mode {m!r}; modes: {', '.join(COMPARE_MODES)}")


def run_benchmark(clips: list[CleanClip], settings: BenchmarkSettings = BenchmarkSettings(), *,
                  on_done: Callable[[int, int], None] | None = None,
                  backend: backends.Backend | None = None) -> BenchmarkResult:
    """Every clip x degradation x preset x mode, the pairs on `backend` (default: this machine's
    process pool); `on_done(done, total)` after each clip x degradation pair."""
    backend = backend or backends.LOCAL
    check(settings)
    if not clips:
        raise ValueError("no clean clips to benchmark")
    t0 = time.perf_counter()
    tasks = [(c, d, settings) for c in clips for d in settings.degradations]
    used = backend.workers(settings.jobs, len(tasks))
    results = backend.map_ordered(_run_pair, tasks, settings.jobs, on_done)
    cases = tuple(c for cases, _ in results for c in cases)
    records = tuple((t[0].name, rec) for t, (_, rec) in zip(tasks, results))
    info = tuple((c.name, c.source, c.audio.shape[1] / WORK_SR) for c in clips)
    return BenchmarkResult(cases, records, settings, info, time.perf_counter() - t0,
                           used)
