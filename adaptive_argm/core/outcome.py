"""What `run` and `compare` were asked to do and what they did: `Settings`, `RunResult`
(report.json, schema adaptive-argm/report/1) and `CompareResult` (compare.json, schema
adaptive-argm/compare/1), with the report's spectral-recovery and bandwidth fields."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..config import (CLIP_MODE, CLIP_MODES, DEFAULT_PRESET, MODE, MODES, OUTPUT_RATES, OUTPUT_SR, SKIP_POLICIES,
                      SKIP_POLICY, ClipMode, Mode, OutputRate, SkipPolicy, check_choice)
from . import audio, metrics, presets, recovery
from . import figures as figs
from .audio import WORK_SR
from .finish import Restored
from .route import RouterConfig, RoutePlan
from .steps import RECOVERY


@dataclass(frozen=True)
class Settings:
    """Everything that decides what `run` and `compare` produce (and so whether a stored result
    can be reused)."""

    mode: Mode = "routed"
    preset: str = DEFAULT_PRESET
    """A built-in preset name or a preset TOML path."""
    clip_mode: ClipMode = "limit"
    skip_policy: SkipPolicy = "passthrough"
    router: RouterConfig = field(default_factory=RouterConfig)
    output_sr: OutputRate = "work"
    """`work` (the run's rate: 44.1 kHz, or the input's own when higher) or `original` (the
    input file's rate)."""
    keep_stems: bool = False
    recovery: bool = True
    """Run the preset's spectral recovery steps (False drops them: `--no-recovery`)."""

    def __post_init__(self):
        check_choice(self.mode, MODES, MODE)
        check_choice(self.clip_mode, CLIP_MODES, CLIP_MODE)
        check_choice(self.skip_policy, SKIP_POLICIES, SKIP_POLICY)
        check_choice(self.output_sr, OUTPUT_RATES, OUTPUT_SR)

    def to_dict(self) -> dict:
        d = dict(self.__dict__)
        d["router"] = dict(self.router.__dict__)
        return d


@dataclass(frozen=True)
class RunResult:
    """What `run` did; `to_dict` is report.json (schema adaptive-argm/report/1)."""

    input: audio.AudioInfo
    output_path: str
    output_sr: int
    output_channels: int
    output_duration_s: float
    restored: Restored
    plan: RoutePlan
    separator: dict
    preset: presets.Preset
    metrics_input: metrics.MetricPanel
    metrics_output: metrics.MetricPanel
    warnings: list[str]
    timings_s: dict[str, float]
    settings: Settings
    recovery_note: str | None = None
    bandwidth: dict = field(default_factory=dict)
    """The input's cutoff as the detector sees it (`recovery.detected`)."""

    def to_dict(self) -> dict:
        return {
            "schema": "adaptive-argm/report/1",
            "input": self.input.to_dict(),
            "output": {"path": self.output_path, "sample_rate": self.output_sr, "channels": self.output_channels,
                       "duration_s": self.output_duration_s, "peak_dbfs": self.restored.clip.peak_after_dbfs,
                       "clip_action": self.restored.clip.action,
                       "peak_before_safety_dbfs": self.restored.clip.peak_before_dbfs,
                       "loudness_gain_db": self.restored.loudness_gain_db},
            "mode_requested": self.plan.mode_requested,
            "mode_used": self.plan.mode_used,
            "route_reason": self.plan.reason,
            "skip_policy": self.plan.skip_policy,
            "separator": self.separator,
            "preset": self.preset.name,
            "preset_detail": self.preset.to_dict(),
            "stems": [s.to_dict() for s in self.plan.stems],
            "metrics": {"input": self.metrics_input.to_dict(), "output": self.metrics_output.to_dict()},
            "bandwidth": self.bandwidth,
            "recovery": recovery.summary(self.restored.recovery, self.preset.has(RECOVERY), self.recovery_note),
            "warnings": self.warnings,
            "timings_s": {k: round(v, 4) for k, v in self.timings_s.items()},
            "settings": self.settings.to_dict(),
        }


@dataclass(frozen=True)
class CompareResult:
    """Direct, stem-wise and routed restorations of one clip from ONE separation; `to_dict`
    is compare.json (schema adaptive-argm/compare/1)."""

    input: audio.AudioInfo
    separator: dict
    plan: RoutePlan
    """The router's own plan (what `routed` did)."""
    outputs: dict[str, Restored]
    """By mode: `direct`, `stemwise` (absent without stems), `routed`."""
    paths: dict[str, str]
    metrics: dict[str, metrics.MetricPanel]
    """`input` and each output's panel, all over the input's occupied band."""
    warnings: dict[str, list[str]]
    stem_names: tuple[str, ...]
    stem_views: dict[str, figs.StemView]
    """What the stems figure shows of each stem (empty unless asked for: the stems themselves
    are restored in place and freed before measuring)."""
    preset: presets.Preset
    timings_s: dict[str, float]
    settings: Settings
    mix: np.ndarray
    """The DC-free input at the run's rate (for figures)."""
    sr: int = WORK_SR
    """The run's rate: the working rate, or the input's own when higher."""
    recovery_note: str | None = None
    bandwidth: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "schema": "adaptive-argm/compare/1",
            "input": self.input.to_dict(),
            "separator": self.separator,
            "preset": self.preset.name,
            "router": {**self.plan.to_dict(), "stems": [s.to_dict() for s in self.plan.stems]},
            "outputs": {m: {"path": self.paths.get(m), "mode_used": r.mode, "clip_action": r.clip.action,
                            "peak_dbfs": r.clip.peak_after_dbfs, "loudness_gain_db": r.loudness_gain_db,
                            "recovery": recovery.summary(r.recovery, self.preset.has(RECOVERY), self.recovery_note)}
                        for m, r in self.outputs.items()},
            "metrics": {k: (p.to_dict() if p is not None else None) for k, p in self.metrics.items()},
            "bandwidth": self.bandwidth,
            "warnings": self.warnings,
            "timings_s": {k: round(v, 4) for k, v in self.timings_s.items()},
            "settings": self.settings.to_dict(),
        }
