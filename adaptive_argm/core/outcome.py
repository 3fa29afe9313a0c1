"""What `run` and `compare` were asked to do and what they did: `Settings`, `RunResult`
(report.json, schema adaptive-argm/report/1) and `CompareResult` (compare.json, schema
adaptive-argm/compare/1), with the report's delivery, change, spectral-recovery and bandwidth
fields."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..config import (BITS, CLIP_MODE, CLIP_MODES, DEFAULT_PRESET, MODE, MODES, OUTPUT_FORMAT, OUTPUT_RATES,
                      OUTPUT_SR, SKIP_POLICIES, SKIP_POLICY, TARGET_LUFS, TRUE_PEAK, ClipMode, Mode, OutputRate,
                      SettingError, SkipPolicy, check_choice)
from . import audio, deliver, metrics, outputs, presets, recovery
from . import figures as figs
from .audio import WORK_SR
from .finish import Restored
from .route import RouterConfig, RoutePlan
from .steps import RECOVERY

TARGET_LUFS_RANGE = (-70.0, 0.0)
"""Loudness targets offered: BS.1770's absolute gate to full scale."""
TRUE_PEAK_RANGE = (-20.0, 0.0)
"""True-peak ceilings offered (dBTP)."""


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
    format: str | None = None
    """`wav` or `flac`; None: the input's own where it can hold the result (`outputs.choose_format`)."""
    bits: str | None = None
    """`16` (with TPDF dither), `24` or `32f`; None: the input's own where the format holds it, else 24."""
    target_lufs: float | None = None
    """A loudness target (BS.1770 integrated) reached under `true_peak_db`; None: the preset's
    own loudness handling (the adaptive preset keeps the input's loudness)."""
    true_peak_db: float = deliver.DEFAULT_CEILING_DBTP
    """The true-peak ceiling (dBTP, BS.1770 Annex 2) of a loudness target."""
    residual: bool = False
    """Also write what each result removed or added (`residual.wav`)."""

    def __post_init__(self):
        check_choice(self.mode, MODES, MODE)
        check_choice(self.clip_mode, CLIP_MODES, CLIP_MODE)
        check_choice(self.skip_policy, SKIP_POLICIES, SKIP_POLICY)
        check_choice(self.output_sr, OUTPUT_RATES, OUTPUT_SR)
        if self.format is not None:
            check_choice(self.format, deliver.CONTAINERS, OUTPUT_FORMAT)
        if self.bits is not None:
            object.__setattr__(self, "bits", str(self.bits))
            check_choice(self.bits, deliver.BIT_DEPTHS, BITS)
        if self.format == "flac" and self.bits == "32f":
            raise SettingError(BITS, " 32f is float, which FLAC cannot hold: use 16 or 24, or WAV")
        if self.target_lufs is not None and not (TARGET_LUFS_RANGE[0] <= self.target_lufs <= TARGET_LUFS_RANGE[1]):
            raise SettingError(TARGET_LUFS, f" must be between {TARGET_LUFS_RANGE[0]:g} and {TARGET_LUFS_RANGE[1]:g} "
                                            f"LUFS, not {self.target_lufs:g}")
        if not (TRUE_PEAK_RANGE[0] <= self.true_peak_db <= TRUE_PEAK_RANGE[1]):
            raise SettingError(TRUE_PEAK, f" must be between {TRUE_PEAK_RANGE[0]:g} and {TRUE_PEAK_RANGE[1]:g} dBTP, "
                                          f"not {self.true_peak_db:g}")

    @property
    def loudness_target(self) -> tuple[float, float] | None:
        """(target LUFS, true-peak ceiling dBTP), or None without a target."""
        return None if self.target_lufs is None else (self.target_lufs, self.true_peak_db)

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
    delivered: outputs.Delivered | None = None
    recovery_note: str | None = None
    bandwidth: dict = field(default_factory=dict)
    """The input's cutoff as the detector sees it (`recovery.detected`)."""

    def to_dict(self) -> dict:
        record = self.restored.record()
        delivered = self.delivered.to_dict() if self.delivered else {}
        return {
            "schema": "adaptive-argm/report/1",
            "input": self.input.to_dict(),
            "output": {"path": self.output_path, "sample_rate": self.output_sr, "channels": self.output_channels,
                       "duration_s": self.output_duration_s, "peak_dbfs": self.restored.clip.peak_after_dbfs,
                       **delivered, "clip_action": record["clip_action"],
                       "peak_before_safety_dbfs": record["peak_before_safety_dbfs"],
                       "loudness_gain_db": record["loudness_gain_db"]},
            "residual": self.delivered.residual_dict() if self.delivered else None,
            "changed": record["changed"],
            "change": record["change"],
            "mode_requested": self.plan.mode_requested,
            "mode_used": self.plan.mode_used,
            "route_reason": self.plan.reason,
            "route_kinds": [k.to_dict() for k in self.plan.kinds],
            "skip_policy": self.plan.skip_policy,
            "separator": self.separator,
            "preset": self.preset.name,
            "preset_detail": self.preset.to_dict(),
            "stems": [s.to_dict() for s in self.plan.stems],
            "metrics": {"input": self.metrics_input.to_dict(), "output": self.metrics_output.to_dict()},
            "bandwidth": self.bandwidth,
            "recovery": recovery.summary(self.restored.recovery, self.preset.has(RECOVERY), self.recovery_note,
                                         self.input.sample_rate),
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
    delivered: dict[str, outputs.Delivered] = field(default_factory=dict)
    sr: int = WORK_SR
    """The run's rate: the working rate, or the input's own when higher."""
    recovery_note: str | None = None
    bandwidth: dict = field(default_factory=dict)

    def identical_to_reference(self, mode: str) -> bool:
        """The result (or the `input`) is an exact copy of the reference: its SI-SDR is +inf, which
        JSON writes as null, and tables show as "identical"."""
        panel = self.metrics.get(mode)
        return panel is not None and panel.si_sdr_db == math.inf

    def to_dict(self) -> dict:
        return {
            "schema": "adaptive-argm/compare/1",
            "input": self.input.to_dict(),
            "separator": self.separator,
            "preset": self.preset.name,
            "router": {**self.plan.to_dict(), "stems": [s.to_dict() for s in self.plan.stems]},
            "outputs": {m: {"path": self.paths.get(m), "peak_dbfs": r.clip.peak_after_dbfs,
                            **(self.delivered[m].to_dict() if m in self.delivered else {}), **r.record(),
                            "residual": self.delivered[m].residual_dict() if m in self.delivered else None,
                            "recovery": recovery.summary(r.recovery, self.preset.has(RECOVERY), self.recovery_note,
                                                         self.input.sample_rate)}
                        for m, r in self.outputs.items()},
            "identical_to_reference": {m: self.identical_to_reference(m) for m in ("input", *self.outputs)},
            "metrics": {k: (p.to_dict() if p is not None else None) for k, p in self.metrics.items()},
            "bandwidth": self.bandwidth,
            "warnings": self.warnings,
            "timings_s": {k: round(v, 4) for k, v in self.timings_s.items()},
            "settings": self.settings.to_dict(),
        }
