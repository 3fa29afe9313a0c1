"""The paired benchmark's summaries: per corpus (the clips' source) x degradation x preset x mode,
the mean over clips and the worst clip, for all clips and for each cross-validation half; the
goals each preset is held to; and those summaries as tables (the CLI shows them, `benchmark_report`
writes them)."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Callable, Iterable

import numpy as np

from ..core import visqol
from ..core.table import Table, fmt
from .benchmark import (GOAL_HARMLESS_CASES, GOAL_HARMLESS_DB, GOAL_LOUDNESS_LU, GOAL_NOISE_CASE, GOAL_NOISE_GAIN_DB,
                        GOAL_WORST_CLIP_DB, CaseResult)
from .clips import HALF_ROLES

ALL = "all"
"""The `half` of a summary over every clip."""


def finite_mean(values: Iterable[float]) -> float:
    v = [x for x in values if x is not None and math.isfinite(x)]
    return float(np.mean(v)) if v else math.nan


def finite_min(values: Iterable[float]) -> float:
    v = [x for x in values if x is not None and math.isfinite(x)]
    return float(min(v)) if v else math.nan


def _worst(cases: list[CaseResult], value: Callable[[CaseResult], float]) -> tuple[float, str]:
    """The lowest finite value and its clip; (NaN, "") when none is finite."""
    scored = [(value(c), c.clip) for c in cases if math.isfinite(value(c))]
    return min(scored) if scored else (math.nan, "")


@dataclass(frozen=True)
class MeanRow:
    """Means over the clips of one corpus x degradation x preset x mode (all clips, or one
    cross-validation half), with the worst clip of each change that has a direction."""

    source: str
    half: str
    degradation: str
    preset: str
    mode: str
    clips: int
    si_sdr_in_db: float
    si_sdr_out_db: float
    si_sdr_change_db: float
    si_sdr_change_worst_db: float
    si_sdr_worst_clip: str
    visqol_in: float
    visqol_out: float
    visqol_change: float
    visqol_change_worst: float
    visqol_worst_clip: str
    lsd_change_db: float
    lsd_hf_in_db: float
    lsd_hf_out_db: float
    quiet_snr_in_db: float
    quiet_snr_change_db: float
    loudness_change_lu: float
    loudness_change_max_abs_lu: float
    clipped_out: int
    p25_paper_in_db: float
    p25_paper_out_db: float
    noise_floor_change_db: float
    visqol_misread: int = 0
    """Cases whose ViSQOL change compares a misreading (`CaseResult.visqol_misread`)."""
    visqol_change_sound: float = math.nan
    visqol_change_sound_worst: float = math.nan
    visqol_sound_worst_clip: str = ""
    """The ViSQOL change over the other cases only."""


def _row(source: str, half: str, key: tuple[str, str, str], cs: list[CaseResult]) -> MeanRow:
    si_worst, si_clip = _worst(cs, lambda c: c.si_sdr_change_db)
    vq_worst, vq_clip = _worst(cs, lambda c: c.visqol_change)
    sound = [c for c in cs if not c.visqol_misread]
    sound_worst, sound_clip = _worst(sound, lambda c: c.visqol_change)
    loud = [abs(c.loudness_change_lu) for c in cs if math.isfinite(c.loudness_change_lu)]
    return MeanRow(
        source, half, *key, len(cs),
        finite_mean(c.input.si_sdr_db for c in cs), finite_mean(c.output.si_sdr_db for c in cs),
        finite_mean(c.si_sdr_change_db for c in cs), si_worst, si_clip,
        finite_mean(c.input.visqol_moslqo for c in cs), finite_mean(c.output.visqol_moslqo for c in cs),
        finite_mean(c.visqol_change for c in cs), vq_worst, vq_clip,
        finite_mean(c.lsd_change_db for c in cs), finite_mean(c.lsd_hf_in_db for c in cs),
        finite_mean(c.lsd_hf_out_db for c in cs), finite_mean(c.input.quiet_frame_snr_db for c in cs),
        finite_mean(c.quiet_snr_change_db for c in cs), finite_mean(c.loudness_change_lu for c in cs),
        max(loud, default=math.nan), sum(c.clipped_out for c in cs),
        finite_mean(c.input.p25_paper_db for c in cs), finite_mean(c.output.p25_paper_db for c in cs),
        finite_mean(c.output.noise_floor_db - c.input.noise_floor_db for c in cs),
        sum(c.visqol_misread for c in cs), finite_mean(c.visqol_change for c in sound), sound_worst, sound_clip)


def means(cases: Iterable[CaseResult], source: str | None = None, half: str = ALL) -> list[MeanRow]:
    """Per source x degradation x preset x mode, in first-seen order; `source` keeps one corpus,
    `half` one cross-validation half (`ALL`: every clip)."""
    groups: dict[tuple, list[CaseResult]] = {}
    for c in cases:
        if (source is None or c.source == source) and (half == ALL or c.half == half):
            groups.setdefault((c.source, c.degradation, c.preset, c.mode), []).append(c)
    return [_row(k[0], half, k[1:], cs) for k, cs in groups.items()]


def all_means(cases: Iterable[CaseResult]) -> list[MeanRow]:
    """`means` over every clip, then over each half: paired_means.csv."""
    cases = list(cases)
    return [r for h in (ALL, *HALF_ROLES) for r in means(cases, half=h)]


def misread_note(cases: Iterable[CaseResult]) -> str:
    """One paragraph: which ViSQOL readings matched patches to other music (inputs once per clip x
    degradation, then outputs), so that a worst ViSQOL change can be read for what it is."""
    cases = [c for c in cases if math.isfinite(c.input.visqol_moslqo)]
    if not cases:
        return ""
    inputs = {(c.clip, c.degradation): visqol.misread(c.input.visqol_misplaced) for c in cases}
    bad_in = [k for k, bad in inputs.items() if bad]
    bad_out = [c for c in cases if visqol.misread(c.output.visqol_misplaced)]
    if not bad_in and not bad_out:
        return f"Every ViSQOL reading matched its patches in place ({len(inputs)} inputs, {len(cases)} outputs).\n"
    listed = ", ".join(f"{clip} / {d}" for clip, d in bad_in[:12]) + (", ..." if len(bad_in) > 12 else "")
    return (f"ViSQOL matched patches to other music, seconds away, in {len(bad_in)} of {len(inputs)} inputs"
            + (f" ({listed})" if bad_in else "") + f" and {len(bad_out)} of {len(cases)} outputs: "
            "their ViSQOL change compares a misreading, not a restoration (core/visqol.py; "
            "`visqol_misread` in paired_means.csv counts such cases per row).\n")


# --- goals ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Goal:
    """One of issue 6's goals, checked for one preset x mode."""

    goal: str
    preset: str
    mode: str
    value: float
    target: str
    passed: bool
    where: str = ""
    """The clip (and degradation) that decided a worst-case goal."""


def _worst_case(cases: list[CaseResult], key) -> tuple[float, str]:
    c = max(cases, key=key)
    return key(c), f"{c.clip} / {c.degradation}"


def goals(cases: Iterable[CaseResult], preset: str = "adaptive") -> list[Goal]:
    """Issue 6's goals for `preset`, per mode, from whatever degradations and corpora were run."""
    cases = [c for c in cases if c.preset == preset]
    out = []
    for mode in dict.fromkeys(c.mode for c in cases):
        mc = [c for c in cases if c.mode == mode]
        for source, gain in GOAL_NOISE_GAIN_DB.items():
            noisy = [c for c in mc if c.degradation == GOAL_NOISE_CASE and c.source == source]
            if noisy:
                v = finite_mean(c.si_sdr_change_db for c in noisy)
                out.append(Goal(f"{GOAL_NOISE_CASE}, {source} clips: mean SI-SDR change", preset, mode, v,
                                f">= +{gain} dB", v >= gain))
        noisy = [c for c in mc if c.degradation == GOAL_NOISE_CASE]
        if noisy:
            v, where = _worst_case(noisy, lambda c: -c.si_sdr_change_db)
            out.append(Goal(f"{GOAL_NOISE_CASE}: worst clip SI-SDR change", preset, mode, -v,
                            f">= {GOAL_WORST_CLIP_DB} dB", -v >= GOAL_WORST_CLIP_DB, where))
        for d in GOAL_HARMLESS_CASES:
            dc = [c for c in mc if c.degradation == d]
            if dc:
                v = finite_mean(c.si_sdr_change_db for c in dc)
                out.append(Goal(f"{d}: mean SI-SDR change", preset, mode, v, f">= {GOAL_HARMLESS_DB} dB",
                                v >= GOAL_HARMLESS_DB))
        measured = [c for c in mc if math.isfinite(c.loudness_change_lu)]
        if measured:
            v, where = _worst_case(measured, lambda c: abs(c.loudness_change_lu))
            off = sorted({c.degradation for c in measured if abs(c.loudness_change_lu) > GOAL_LOUDNESS_LU})
            out.append(Goal("every case: |loudness change|", preset, mode, v, f"<= {GOAL_LOUDNESS_LU} LU",
                            v <= GOAL_LOUDNESS_LU, f"{where}" + (f"; over in: {', '.join(off)}" if off else "")))
        v = float(sum(c.clipped_out for c in mc))
        out.append(Goal("every case: output samples at/above full scale", preset, mode, v, "= 0", v == 0))
    return out


# --- tables -----------------------------------------------------------------------------------


def headline_table(rows: list[MeanRow], field: str = "si_sdr_change_db", worst: str | None = None,
                   title: str = "", signed: bool = True, input_field: str | None = None) -> Table:
    """One MeanRow field (default: mean SI-SDR change, dB) per degradation (rows) and preset/mode
    (columns); with `worst`, each cell reads `mean / worst clip's value`; `input_field` adds the
    degraded input's value first (the same for every preset and mode). `signed` for changes."""
    cols = list(dict.fromkeys((r.preset, r.mode) for r in rows))
    by = {(r.degradation, r.preset, r.mode): r for r in rows}
    degs = list(dict.fromkeys(r.degradation for r in rows))

    def cell(d, c):
        r = by.get((d, *c))
        if r is None or worst is None:
            return getattr(r, field) if r is not None else math.nan
        return f"{fmt(getattr(r, field), signed=signed)} / {fmt(getattr(r, worst), signed=signed)}"

    first = {r.degradation: getattr(r, input_field) for r in reversed(rows)} if input_field else {}
    body = tuple((d, *([first[d]] if input_field else []), *(cell(d, c) for c in cols)) for d in degs)
    header = ("degradation", *(["input"] if input_field else []), *(f"{p} {m}" for p, m in cols))
    return Table(header, body, title=title, signed=signed)


def goals_table(gs: list[Goal], title: str = "") -> Table:
    return Table(("goal", "preset", "mode", "measured", "target", "met", "worst case"),
                 tuple((g.goal, g.preset, g.mode, g.value, g.target, g.passed, g.where)
                       for g in gs), title=title, signed=True)


MEANS_HEADER = ("degradation", "preset", "mode", "clips", "SI-SDR in", "SI-SDR out", "ΔSI-SDR", "ΔSI-SDR worst",
                "worst clip", "ViSQOL in", "ViSQOL out", "ΔViSQOL", "ΔViSQOL worst", "worst clip", "ΔLSD",
                "LSD>cutoff in", "LSD>cutoff out", "quiet SNR in", "Δquiet SNR", "ΔLU mean", "|ΔLU| max",
                "clipped out", "P25 paper in", "P25 paper out", "Δnoise floor", "ViSQOL misread",
                "ΔViSQOL sound", "ΔViSQOL sound worst", "worst sound clip")
_MEANS_FIELDS = [f.name for f in fields(MeanRow)][2:]
assert len(MEANS_HEADER) == len(_MEANS_FIELDS)


def means_table(rows: list[MeanRow]) -> Table:
    return Table(MEANS_HEADER, tuple(tuple(getattr(r, f) for f in _MEANS_FIELDS) for r in rows), signed=True)
