"""Whether a result changed its input beyond DC and format, and why. The numeric check decides:
the output against the DC-free input, sample by sample at the working rate, before any format
conversion (largest difference and its energy). What each step did, the loudness match, the clip
safety and a loudness target explain it, and the report says whether they agree."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .audio import WORK_SR
from .levels import difference_and_energy, ratio_db
from .signal import Signal, as_signal
from .steps import StepOutcome

UNCHANGED_MAX_ABS = 1e-6
"""A result whose every sample is within this of the input's (-120 dBFS; a 16-bit step is 3e-5)
is unchanged: float rounding of a chain that did nothing, not a change anyone could hear."""
GAIN_ACTED_DB = 0.005
"""A loudness gain smaller than this (dB) is rounding, not a change."""


@dataclass(frozen=True)
class Change:
    """The verdict on one result."""

    changed: bool
    max_abs_diff: float
    """The largest |output - input| after DC removal (full scale = 1.0)."""
    difference_db: float
    """Energy of output - input re the input's energy, dB (-inf: identical)."""
    steps: tuple[StepOutcome, ...]
    actions: tuple[str, ...]
    """What acted besides the steps: loudness match, clip safety, the loudness target, the remix."""
    agree: bool
    """The steps' outcomes and `actions` say what the numeric check says."""

    @property
    def reasons(self) -> list[str]:
        """Why, one entry per distinct step outcome (stems with the same outcome together), then
        the actions; for an unchanged result only the steps that did nothing say why."""
        acted = [o for o in self.steps if o.acted and not o.dc_only]
        shown = acted if self.changed else [o for o in self.steps if not o.dc_only]
        grouped: dict[tuple[str, str], list[str]] = {}
        for o in shown:
            grouped.setdefault((o.step, o.reason), []).append(o.where or "")
        lines = [f"{step}{' on ' + ', '.join(w for w in where if w) if any(where) else ''}: {reason}"
                 for (step, reason), where in grouped.items()]
        return lines + list(self.actions)

    def summary(self) -> str:
        """One line: `changed: false (...)` or `changed: true (...)`, with the numeric check, why,
        and whether the steps agree."""
        if self.changed:
            check = f"max |output - input| {self.max_abs_diff:.2g}, difference {self.difference_db:.1f} dB re input"
        else:
            check = f"output = input after DC removal, max |difference| {self.max_abs_diff:.2g} <= {UNCHANGED_MAX_ABS:g}"
        why = "; ".join(self.reasons) or "no step ran"
        disagree = ""
        if not self.agree:
            disagree = (" (no step reports acting: the numeric check decides)" if self.changed
                        else " (a step acted, below what the numeric check counts: it decides)")
        return f"changed: {str(self.changed).lower()} ({check}){disagree}; {why}"

    def to_dict(self) -> dict:
        return {"changed": self.changed, "decided_by": "numeric check (output vs DC-free input at the working rate)",
                "max_abs_diff": self.max_abs_diff, "difference_db": self.difference_db,
                "unchanged_max_abs": UNCHANGED_MAX_ABS, "agree": self.agree, "reasons": self.reasons,
                "steps": [o.to_dict() for o in self.steps], "actions": list(self.actions), "summary": self.summary()}


def compared(y: np.ndarray | Signal, mix: np.ndarray | Signal, sr: int) -> tuple[float, float, float]:
    """The largest |y - mix|, the energy of y - mix and the energy of `mix`, accumulated block by
    block (a streamed result and input are read once each, side by side)."""
    ys, xs = as_signal(y, sr), as_signal(mix, sr)
    if (ys.channels, ys.frames) != (xs.channels, xs.frames):
        raise ValueError(f"difference needs one shape, got {(ys.channels, ys.frames)} and {(xs.channels, xs.frames)}")
    largest = diff = total = 0.0
    for yb, xb in zip(ys.blocks(), xs.blocks()):
        big, d, e = difference_and_energy(xb, yb)  # |mix - y| is |y - mix|
        largest, diff, total = max(largest, big), diff + d, total + e
    return largest, diff, total


def assess(y: np.ndarray | Signal, mix: np.ndarray | Signal, steps: tuple[StepOutcome, ...], *, loudness_gain_db: float = 0.0,
           clip_action: str = "none", target_gain_db: float | None = None, limiter_db: float = 0.0,
           separated: bool = False, sr: int = WORK_SR) -> Change:
    """Whether `y` changed `mix` (both `(channels, samples)` at one rate, `mix` DC-free), with the
    outcomes of the steps that made it and what finished it: the loudness match's gain,
    `clip_action` (`dsp.ClipSafety.action`), a loudness target's gain and true-peak limiter, and
    whether it is a remix of separated stems."""
    largest, diff, mix_energy = compared(y, mix, sr)
    changed = largest > UNCHANGED_MAX_ABS
    actions = []
    if abs(loudness_gain_db) >= GAIN_ACTED_DB:
        actions.append(f"loudness matched to the input: {loudness_gain_db:+.2f} dB")
    if clip_action not in ("none", "left-above-full-scale"):
        actions.append(f"clip safety: {clip_action}")
    if target_gain_db is not None and (abs(target_gain_db) >= GAIN_ACTED_DB or limiter_db > 0):
        actions.append(f"loudness target: {target_gain_db:+.2f} dB"
                       + (f", true-peak limiter up to {limiter_db:.2f} dB" if limiter_db > 0 else ""))
    acted = any(o.acted and not o.dc_only for o in steps) or bool(actions)
    if changed and separated and not acted:
        actions.append("the remix of the stems is not the input (they do not add up to it exactly)")
        acted = True
    difference_db = ratio_db(diff, mix_energy)
    return Change(changed, largest, -math.inf if diff == 0 else difference_db, tuple(steps), tuple(actions),
                  acted == changed)
