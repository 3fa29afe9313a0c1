"""The paired benchmark: clean clips -> seeded degradations -> restoration through the library
-> intrusive and non-intrusive scores against the clean original.

Clean clips (`clips`) come from corpora with oracle stems (musicgen-dev, midi-dev: direct,
stem-wise and routed) or from a folder of clean files (real-dev: direct only). Each clip x
degradation gets ONE realisation at the clip's own sample rate (`degrade.apply_to_stems`), shared
by every preset and mode, so presets and modes are compared on identical input. Then everything
happens as it does for a user of `run --output-sr original`: the pipeline reads the damaged file
at its working rate (44.1 kHz; `resample.resample`, the resampler `audio.read` uses), restores it by
the library's own path (`route.route`, `pipeline.restore`: the preset's chains, loudness matching,
clip safety), and the result goes back to the clip's rate.

Where each score is taken:
- intrusive scores (SI-SDR, LSD, SNR in the quietest 10 % of frames, ViSQOL, and LSD above the
  damaged input's cutoff) at the clip's OWN rate, against the clean clip without its DC offset and
  subsonic drift (`dc.remove_dc`, which every preset's input goes through first; the degraded
  input is scored after it too), after fractional-delay alignment (`intrusive.scores`): what the
  user gets back, resampling included;
- the non-intrusive panel (the paper's P25 and the measures beside it, loudness, peak, bandwidth)
  at the working rate, on the signals the pipeline holds, as `run` reports them: the panel's
  analysis grid (2048 / 512 samples) and its mel bands are fixed at 44.1 kHz, so its numbers stay
  comparable with every report.json. For 44.1 kHz clips both are the same signals.
"Change" is always output minus the degraded input's own score. Each distinct signal is scored
once per clip x degradation (`Scorer`): the degraded input's scores serve every preset and mode,
and a routed result that is the very signal direct or stem-wise made is not scored again.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass, field, fields, replace
from typing import Callable

import numpy as np

from ..config import (CLIP_MODE, CLIP_MODES, COMPARE_MODES, SKIP_POLICIES, SKIP_POLICY, ClipMode, Setting, SettingError,
                      SkipPolicy, check_choice)
from ..core import backends, intrusive, levels, metrics, pipeline, presets, visqol
from ..core.audio import WORK_SR
from ..core.dc import remove_dc
from ..core.metrics import MetricPanel
from ..core.resample import resample
from ..core.route import RouterConfig, route
from ..core.separate import Separation, SeparatorInfo
from . import degrade
from .clips import CleanClip, halves

DEFAULT_PRESETS = ("paper", "adaptive")
DEFAULT_SEED = 20260
FULL_SCALE = 1.0
# SI-SDR and quiet-frame SNR read at most intrusive.SCORE_CEILING_DB when a change is computed: an
# unchanged waveform scores +inf (clean input) or 140-150 dB (float32 rounding, or a DC offset,
# which the scores remove), and a change from there is undefined or meaningless.

# --- goals (issue 6), means over clips ---------------------------------------------------------
GOAL_NOISE_CASE = "white-45"
GOAL_NOISE_GAIN_DB = {"musicgen": 1.5, "midi": 2.5, "real": 2.5}
"""Mean SI-SDR gain at GOAL_NOISE_CASE, per kind of clip."""
GOAL_WORST_CLIP_DB = -0.5
GOAL_HARMLESS_CASES = ("codec", "bandlimit", "clean", "resample-32k", "resample-22k", "resample-16k",
                       "codec+resample-16k")
GOAL_HARMLESS_DB = -0.5
GOAL_LOUDNESS_LU = 1.0

SPLIT = Setting("split", "stem split")
EXCERPT = Setting("excerpt_s", "excerpt length")


def clipped_samples(y: np.ndarray) -> int:
    """Samples at or above full scale: they clip when written as fixed-point."""
    return int(np.count_nonzero(np.abs(y) >= FULL_SCALE))


# --- one case ---------------------------------------------------------------------------------


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
    cutoff_hz: float = math.nan
    """The damaged input's effective cutoff (`degrade.lost_band_hz`); NaN when it lost no band."""
    lsd_hf_in_db: float = math.nan
    lsd_hf_out_db: float = math.nan
    """LSD over the bins above `cutoff_hz` only (NaN without a cutoff)."""
    half: str = ""
    """The clip's cross-validation half (`clips.halves`)."""
    sample_rate: int = WORK_SR
    """The clip's own rate, where the intrusive scores are taken."""

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
    def visqol_change(self) -> float:
        return self.output.visqol_moslqo - self.input.visqol_moslqo

    @property
    def visqol_misread(self) -> bool:
        """ViSQOL matched a patch of the input's or the output's reading to other music: its
        change compares a misreading (`visqol.Reading`)."""
        return visqol.misread(self.input.visqol_misplaced) or visqol.misread(self.output.visqol_misplaced)

    @property
    def loudness_change_lu(self) -> float:
        return self.output.loudness_lufs - self.input.loudness_lufs

    def row(self) -> dict:
        """One flat CSV row: the headline numbers, then both panels (`in_*`, `out_*`)."""
        r = {"clip": self.clip, "source": self.source, "half": self.half, "sample_rate": self.sample_rate,
             "degradation": self.degradation, "preset": self.preset,
             "mode": self.mode, "mode_used": self.mode_used, "processed": "+".join(self.processed),
             "skipped": "+".join(self.skipped), "skip_policy": self.skip_policy,
             "si_sdr_in_db": self.input.si_sdr_db, "si_sdr_out_db": self.output.si_sdr_db,
             "si_sdr_change_db": self.si_sdr_change_db,
             "visqol_in": self.input.visqol_moslqo, "visqol_out": self.output.visqol_moslqo,
             "visqol_change": self.visqol_change,
             "visqol_misplaced_in": self.input.visqol_misplaced, "visqol_misplaced_out": self.output.visqol_misplaced,
             "lsd_in_db": self.input.lsd_db, "lsd_out_db": self.output.lsd_db, "lsd_change_db": self.lsd_change_db,
             "cutoff_hz": self.cutoff_hz, "lsd_hf_in_db": self.lsd_hf_in_db, "lsd_hf_out_db": self.lsd_hf_out_db,
             "quiet_snr_in_db": self.input.quiet_frame_snr_db, "quiet_snr_out_db": self.output.quiet_frame_snr_db,
             "quiet_snr_change_db": self.quiet_snr_change_db, "loudness_change_lu": self.loudness_change_lu,
             "clipped_in": self.clipped_in, "clipped_out": self.clipped_out, "clip_action": self.clip_action,
             "loudness_gain_db": self.loudness_gain_db, "restore_s": self.restore_s}
        for prefix, panel in (("in_", self.input), ("out_", self.output)):
            r.update({prefix + k: v for k, v in panel.to_dict().items() if k not in metrics.INTRUSIVE_FIELDS})
        return r


@dataclass(frozen=True)
class Damaged:
    """One degradation realisation of one clip: the raw damaged mix at the clip's rate (as a
    user's file would hold it) and at the working rate (as the pipeline reads it), the DC-free
    mix and stems the pipeline processes, and the record."""

    raw: np.ndarray
    raw_work: np.ndarray
    mix: np.ndarray
    separation: Separation | None
    record: degrade.Record


def damage(clip: CleanClip, degradation: str, seed: int, split: str = "mask") -> Damaged:
    """Degrade `clip` once at its own rate (mix and stems alike; seeds are stable per clip and
    degradation), then bring it to the working rate as the pipeline reads a file."""
    s = degrade.clip_seed(seed, clip.name, degradation)
    if clip.stems is None:
        raw, record = degrade.apply(degradation, clip.audio, clip.sr, s)
        stems = None
    else:
        raw, stems, record = degrade.apply_to_stems(degradation, clip.audio, clip.stems, clip.sr, s, split)
    raw_work = resample(raw, clip.sr, WORK_SR)
    separation = None
    if stems is not None:
        # As `load.load` and `StemsFolder` do: the mix and every stem lose their DC offset
        # (linear removal: they still add up).
        stems = {k: remove_dc(resample(v, clip.sr, WORK_SR), WORK_SR, bypass=False) for k, v in stems.items()}
        separation = Separation(stems, SeparatorInfo(name="oracle"))
    return Damaged(raw, raw_work, remove_dc(raw_work, WORK_SR), separation, record)


@dataclass(frozen=True)
class Scored:
    """One signal's panel against the clean clip, and its LSD above the damaged input's cutoff."""

    panel: MetricPanel
    lsd_hf_db: float


class Scorer:
    """Scores the signals of one clip x degradation against the clean clip (see the module
    docstring for which rate each score is taken at), each distinct signal once. `full_panel`
    False scores only what the router sweep needs (intrusive scores without ViSQOL, loudness,
    peak: a third of the cost); `with_visqol` False leaves ViSQOL out (NaN)."""

    def __init__(self, clip: CleanClip, damaged: Damaged, with_visqol: bool = True, full_panel: bool = True):
        self.clip, self.cutoff_hz = clip, damaged.record.cutoff_hz
        self.with_visqol, self.full_panel = with_visqol and full_panel, full_panel
        # Scored as restoration sees them: the clean clip and the damaged input without DC offset
        # and drift (every preset starts from the DC-free input; they are not music).
        self.reference = remove_dc(clip.audio, clip.sr, bypass=False)
        self._done: dict[tuple, Scored] = {}
        self.input = self._score(damaged.raw_work, remove_dc(damaged.raw, clip.sr), None)

    def score(self, y_work: np.ndarray) -> Scored:
        """A result at the working rate, its panel over the input's band, its intrusive scores on
        it brought back to the clip's rate (as `--output-sr original` writes it)."""
        return self._score(y_work, resample(y_work, WORK_SR, self.clip.sr), self.input.panel.bandwidth_hz)

    def _score(self, y_work: np.ndarray, y_source: np.ndarray, band_hz: float | None) -> Scored:
        key = (y_source.shape, hashlib.blake2b(np.ascontiguousarray(y_source).tobytes(), digest_size=16).digest())
        if key not in self._done:
            panel = metrics.measure(y_work, WORK_SR, band_hz=band_hz) if self.full_panel else _levels_panel(y_work)
            scores = intrusive.scores(y_source, self.reference, self.clip.sr, with_visqol=self.with_visqol)
            hf = (intrusive.lsd_db(y_source, self.reference, self.clip.sr, min_hz=self.cutoff_hz)
                  if math.isfinite(self.cutoff_hz) else math.nan)
            self._done[key] = Scored(replace(panel, **scores.to_dict()), hf)
        return self._done[key]


def _levels_panel(y: np.ndarray) -> MetricPanel:
    """Loudness and peak only; every other field NaN."""
    nan = math.nan
    return MetricPanel(p25_paper_db=nan, p25_abs_db=nan, noise_floor_db=nan,
                       loudness_lufs=levels.loudness_lufs(y, WORK_SR), p95_db=nan, low_high_balance_db=nan,
                       silent_frame_fraction=nan, floor_fraction=nan, peak_dbfs=levels.peak_dbfs(y), bandwidth_hz=nan)


class Restorer:
    """Restores one damaged clip with one preset under any number of router plans, running each
    stem through the chain at most once and each distinct remix at most once."""

    def __init__(self, clip: CleanClip, damaged: Damaged, preset: presets.Preset, clip_mode: str = "limit",
                 scorer: Scorer | None = None):
        self.clip, self.damaged, self.clip_mode = clip, damaged, clip_mode
        # Scored back at the clip's own rate, as `--output-sr original` writes it: recovery stops
        # at that rate's Nyquist there too (a band added above it would only leak through the
        # resampler's transition band).
        self.preset, _ = presets.for_recovery(preset, True, clip.sr if clip.sr < WORK_SR else None)
        self.scorer = scorer or Scorer(clip, damaged)
        self._processed: dict[str, np.ndarray] = {}
        self._done: dict[tuple, tuple[pipeline.Restored, Scored, float]] = {}

    @property
    def panel_in(self) -> MetricPanel:
        return self.scorer.input.panel

    @property
    def stems(self) -> dict[str, np.ndarray]:
        return self.damaged.separation.stems if self.damaged.separation else {}

    def case(self, mode: str, cfg: RouterConfig = RouterConfig(), skip_policy: str = "passthrough") -> CaseResult:
        """Route as `mode` says, restore, and score."""
        plan = route(self.stems, self.damaged.mix, WORK_SR, mode, cfg, skip_policy,
                     pipeline.step_kinds(self.preset), pipeline.step_probe(self.preset))
        kept = tuple(plan.skipped()) if skip_policy == "passthrough" else ()
        key = (plan.mode_used, tuple(plan.processed()) if plan.mode_used != "direct" else (), kept,
               plan.direct_kinds())
        if key not in self._done:
            t0 = time.perf_counter()
            restored, self._processed = pipeline.restore(self.damaged.mix, plan, self.preset,
                                                         self.damaged.separation, self._processed, self.clip_mode)
            seconds = time.perf_counter() - t0
            self._done[key] = (restored, self.scorer.score(restored.audio), seconds)
        restored, scored, seconds = self._done[key]
        return CaseResult(self.clip.name, self.clip.source, self.damaged.record.name, self.preset.name, mode,
                          plan.mode_used, tuple(plan.processed()), tuple(plan.skipped()), skip_policy,
                          self.panel_in, scored.panel, clipped_samples(self.damaged.raw),
                          clipped_samples(restored.audio), restored.clip.action, restored.loudness_gain_db, seconds,
                          self.damaged.record.cutoff_hz, self.scorer.input.lsd_hf_db, scored.lsd_hf_db,
                          sample_rate=self.clip.sr)


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
    with_visqol: bool = True
    """ViSQOL costs most of the scoring (about 1.5 CPU s per 10 s of audio and signal)."""
    excerpt_s: float | None = None
    """Score only the first this many seconds of each clip (None: whole clips)."""

    def __post_init__(self):
        check_choice(self.split, degrade.STEM_SPLITS, SPLIT)
        check_choice(self.skip_policy, SKIP_POLICIES, SKIP_POLICY)
        check_choice(self.clip_mode, CLIP_MODES, CLIP_MODE)
        if self.excerpt_s is not None and not (math.isfinite(self.excerpt_s) and self.excerpt_s > 0):
            raise SettingError(EXCERPT, f" must be a positive number of seconds, not {self.excerpt_s}")

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["router"] = dict(self.router.__dict__)
        return d


@dataclass(frozen=True)
class ClipInfo:
    name: str
    source: str
    duration_s: float
    """As scored (after `excerpt_s`)."""
    sample_rate: int
    half: str


@dataclass(frozen=True)
class BenchmarkResult:
    cases: tuple[CaseResult, ...]
    records: tuple[tuple[str, degrade.Record], ...]
    """(clip, record) per clip x degradation."""
    settings: BenchmarkSettings
    clips: tuple[ClipInfo, ...]
    wall_s: float
    jobs: int


def _run_pair(task: tuple[CleanClip, str, BenchmarkSettings, str]) -> tuple[list[CaseResult], degrade.Record]:
    """Every preset x mode of one clip x degradation (one damage realisation, one scorer for all)."""
    clip, degradation, s, half = task
    damaged = damage(clip, degradation, s.seed, s.split)
    scorer = Scorer(clip, damaged, s.with_visqol)
    out = []
    for name in s.presets:
        r = Restorer(clip, damaged, presets.load(name), s.clip_mode, scorer)
        modes = s.modes if clip.stems is not None else tuple(m for m in s.modes if m == "direct")
        out.extend(replace(r.case(m, s.router, s.skip_policy), half=half) for m in modes)
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


def clip_halves(clips: list[CleanClip]) -> dict[tuple[str, str], str]:
    """(source, clip name) -> cross-validation half, each source's clips split on their own."""
    out = {}
    for source in dict.fromkeys(c.source for c in clips):
        out.update({(source, n): h for n, h in halves([c.name for c in clips if c.source == source]).items()})
    return out


def run_benchmark(clips: list[CleanClip], settings: BenchmarkSettings = BenchmarkSettings(), *,
                  on_done: Callable[[int, int], None] | None = None,
                  backend: backends.Backend | None = None) -> BenchmarkResult:
    """Every clip x degradation x preset x mode, the pairs on `backend` (default: this machine's
    process pool); `on_done(done, total)` after each clip x degradation pair."""
    backend = backend or backends.LOCAL
    check(settings)
    if not clips:
        raise ValueError("no clean clips to benchmark")
    names = [(c.source, c.name) for c in clips]
    if len(set(names)) != len(names):
        raise ValueError(f"two clips share the name {next(n for s, n in names if names.count((s, n)) > 1)!r}")
    t0 = time.perf_counter()
    clips = [c.head(settings.excerpt_s) for c in clips]
    half = clip_halves(clips)
    tasks = [(c, d, settings, half[(c.source, c.name)]) for c in clips for d in settings.degradations]
    used = backend.workers(settings.jobs, len(tasks))
    results = backend.map_ordered(_run_pair, tasks, settings.jobs, on_done)
    cases = tuple(c for cases, _ in results for c in cases)
    records = tuple((t[0].name, rec) for t, (_, rec) in zip(tasks, results))
    info = tuple(ClipInfo(c.name, c.source, c.duration_s, c.sr, half[(c.source, c.name)]) for c in clips)
    return BenchmarkResult(cases, records, settings, info, time.perf_counter() - t0,
                           used)
