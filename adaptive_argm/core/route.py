"""Stem-relevance routing: measure each stem's level and activity against the mix, skip the
near-silent ones, fall back to restoring the whole mix when separation has nothing to add, and
decide per kind of processing step whether it runs on the stems or on the mix.

The report this produces is the user's answer to "why was my track handled this way": every
decision carries the measurements and thresholds that made it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Callable

import numpy as np

from ..config import (FRAME, KIND_MODES, KIND_POLICIES, MIN_ACTIVE, MODE, MODES, SKIP_POLICIES, SKIP_POLICY, KindPolicy,
                      Mode, Setting, SettingError, SkipPolicy, check_choice)
from .levels import power_db
from .threads import side_by_side

POWER_FLOOR = 1e-20
"""Floor of the router's power before dB: far below any level it compares."""

LINEAR_KINDS = frozenset({"dc_remove"})
"""Kinds that do the same to the mix as to the sum of the stems: they run wherever the other kinds
of the preset run, so that a plan never splits the chain for them."""
KIND_EVIDENCE: dict[str, tuple[KindPolicy, str]] = {
    "wiener": ("evidence", "stem-wise denoising wins where separation leaves the noise noise-like in "
                           "a stem and does nothing where it shares the noise among the stems by power "
                           "(eval/results/router.md)"),
}
"""The default policy of each step kind and why (eval/results/router.md); kinds not listed follow
the clip's decision."""
DEFAULT_KIND_MODES: tuple[tuple[str, KindPolicy], ...] = tuple((k, p) for k, (p, _) in KIND_EVIDENCE.items())


@dataclass(frozen=True)
class RouterConfig:
    """The router's thresholds, all in one place (CLI flags and preset files override them)."""

    frame_s: float = 0.1
    """Length of the short frames in which activity is measured."""
    min_rel_db: float = -30.0
    """A stem whose RMS sits further than this below the mix's RMS is near-silent."""
    active_rel_db: float = -25.0
    """A frame is active when the stem is within this many dB of the mix in that frame..."""
    active_floor_dbfs: float = -60.0
    """...and above this absolute level (so residual noise in a quiet passage is not activity)."""
    min_active_fraction: float = 0.10
    """A stem active in fewer frames than this is near-silent."""
    direct_only_stem: str = "other"
    """When this is the only informative stem, separation would only add artifacts."""
    kind_modes: tuple[tuple[str, KindPolicy], ...] = DEFAULT_KIND_MODES
    """Per step kind: `direct` (always on the mix, after the stem-wise kinds and the remix),
    `stemwise` (on the stems whenever the clip is restored stem-wise) or `clip` (follow the
    clip's decision, as every kind not listed does)."""

    evidence_margin_db: float = 0.5
    """`evidence` kinds run on the stems when the stems together show no more than this much less
    for the step to act on than the mix does (cross-validated by song on the multitrack
    development songs: eval/results/router.md)."""

    def policy(self, kind: str) -> KindPolicy:
        return dict(self.kind_modes).get(kind, "clip")

    def __post_init__(self):
        for kind, policy in self.kind_modes:
            check_choice(policy, KIND_POLICIES, KIND_MODES)
        if not 0 <= self.min_active_fraction <= 1:
            raise SettingError(MIN_ACTIVE, f" must be between 0 and 1, not {self.min_active_fraction}")
        for name in ("frame_s", "min_rel_db", "active_rel_db", "active_floor_dbfs", "evidence_margin_db"):
            if not math.isfinite(getattr(self, name)):  # NaN compares false with everything: no stem would be skipped
                raise SettingError(Setting(name, f"router {name}"),
                                   f" must be a finite number, not {getattr(self, name)}")
        if not self.frame_s > 0:
            raise SettingError(FRAME, f" must be positive, not {self.frame_s}")


@dataclass(frozen=True)
class StemDecision:
    name: str
    rms_dbfs: float
    rel_db: float
    active_fraction: float
    decision: str
    """`process`, `skip` or `direct`."""
    reason: str

    def to_dict(self) -> dict:
        return asdict(self)


Probe = Callable[[str, np.ndarray, "str | None", bool], "float | None"]
"""`(kind, signal, stem name or None for the mix, weak)`: what a step of that kind would find to
act on in the signal (a power, linear), or None when the kind cannot say; `weak`: by the evidence
the kind trusts less, asked for only where the strong finds nothing anywhere."""


@dataclass(frozen=True)
class KindDecision:
    """Where one kind of processing step runs, and why."""

    kind: str
    mode_used: Mode
    """`stemwise` or `direct`."""
    reason: str

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class RoutePlan:
    mode_requested: Mode
    mode_used: Mode
    """`stemwise` or `direct`: where the stem-wise kinds run (every kind, when `kinds` is empty)."""
    stems: tuple[StemDecision, ...]
    reason: str
    skip_policy: SkipPolicy = "passthrough"
    kinds: tuple[KindDecision, ...] = ()
    """Per step kind of the preset, when the router was told them."""

    def processed(self) -> list[str]:
        return [s.name for s in self.stems if s.decision == "process"]

    def direct_kinds(self) -> tuple[str, ...]:
        """Kinds that run on the remix although the clip is restored stem-wise."""
        if self.mode_used != "stemwise":
            return ()
        return tuple(k.kind for k in self.kinds if k.mode_used == "direct")

    def skipped(self) -> list[str]:
        return [s.name for s in self.stems if s.decision == "skip"]

    def to_dict(self) -> dict:
        return {"mode_requested": self.mode_requested, "mode_used": self.mode_used, "reason": self.reason,
                "skip_policy": self.skip_policy, "stems": [s.to_dict() for s in self.stems],
                "kinds": [k.to_dict() for k in self.kinds]}


def _sample_power(x: np.ndarray) -> np.ndarray:
    """Channel-averaged power of each sample, float32 (sums over it are taken in float64): one
    channel's worth of memory, not float64 copies of every channel."""
    p = np.square(x[0], dtype=np.float32)
    for ch in x[1:]:
        p += np.square(ch, dtype=np.float32)
    p /= np.float32(x.shape[0])
    return p


def frame_power(p: np.ndarray, sr: int, frame_s: float) -> np.ndarray:
    """Mean of per-sample power `p` over non-overlapping frames, shape `(frames,)`, float64."""
    n = max(1, int(round(frame_s * sr)))
    if len(p) < n:
        return np.array([p.mean(dtype=np.float64)])
    frames = len(p) // n
    return p[: frames * n].reshape(frames, n).mean(axis=1, dtype=np.float64)


@dataclass(frozen=True)
class _Measure:
    rms_dbfs: float
    rel_db: float
    active_fraction: float


def measure_stems(stems: dict[str, np.ndarray], mix: np.ndarray, sr: int,
                  cfg: RouterConfig) -> dict[str, _Measure]:
    """Per stem: level (dBFS), level relative to the mix (dB), and the share of frames where it
    is active (within `active_rel_db` of the mix and above `active_floor_dbfs`)."""
    if not stems:  # nothing to measure against the mix (which may be a stream on disk)
        return {}

    def levels(x: np.ndarray) -> tuple[float, np.ndarray]:  # overall and per frame, dB
        p = _sample_power(x)
        frames = frame_power(p, sr, cfg.frame_s)
        return float(power_db(p.mean(dtype=np.float64), POWER_FLOOR)), power_db(frames, POWER_FLOOR)

    mix_db, mix_frames_db = levels(mix)
    out = {}
    for name, stem in stems.items():
        rms_dbfs, frames_db = levels(stem)
        active = (frames_db >= mix_frames_db + cfg.active_rel_db) & (frames_db >= cfg.active_floor_dbfs)
        out[name] = _Measure(rms_dbfs, rms_dbfs - mix_db, float(np.mean(active)))
    return out


def _why_silent(m: _Measure, cfg: RouterConfig) -> str | None:
    if m.rel_db < cfg.min_rel_db:
        return f"near-silent: {m.rel_db:.1f} dB below the mix (threshold {cfg.min_rel_db:.0f} dB)"
    if m.active_fraction < cfg.min_active_fraction:
        return (f"near-silent: active in {m.active_fraction:.0%} of frames "
                f"(threshold {cfg.min_active_fraction:.0%})")
    return None


def route(stems: dict[str, np.ndarray], mix: np.ndarray, sr: int, mode: Mode = "routed",
          cfg: RouterConfig = RouterConfig(), skip_policy: SkipPolicy = "passthrough",
          kinds: tuple[str, ...] = (), probe: Probe | None = None) -> RoutePlan:
    """Decide, stem by stem, what restoration does, and for each step kind in `kinds` (the
    preset's) whether it runs on the stems or on the mix. `stems` may be empty (no separation):
    the plan is then direct. Forced modes still measure every stem, so the report shows what the
    router would have done; they run every kind as forced. `probe` serves the `evidence` kinds;
    without it they follow the clip."""
    return route_modes(stems, mix, sr, (mode,), cfg, skip_policy, kinds, probe)[mode]


def route_modes(stems: dict[str, np.ndarray], mix: np.ndarray, sr: int, modes: tuple[Mode, ...],
                cfg: RouterConfig = RouterConfig(), skip_policy: SkipPolicy = "passthrough",
                kinds: tuple[str, ...] = (), probe: Probe | None = None) -> dict[str, RoutePlan]:
    """`route` for several modes at once, measuring the stems once."""
    for mode in modes:
        check_choice(mode, MODES, MODE)
    check_choice(skip_policy, SKIP_POLICIES, SKIP_POLICY)
    measures = measure_stems(stems, mix, sr, cfg)
    kinds = tuple(dict.fromkeys(kinds))
    return {mode: _by_kind(_plan(mode, measures, cfg, skip_policy), kinds, cfg,
                           lambda k, names: _evidence(k, {n: stems[n] for n in names}, mix, probe, cfg))
            for mode in modes}


def _db(p: float) -> float:
    return float(power_db(p, POWER_FLOOR))


def kind_evidence(kind: str, stems: dict[str, np.ndarray], mix: np.ndarray, probe: Probe
                  ) -> tuple[float, float, bool] | None:
    """(what `kind` finds to act on in `stems` together, in `mix`, whether by its weak evidence):
    its strong evidence, or its weak where the strong finds nothing anywhere (a bare noise floor:
    `denoise.found_noise_power`). None when it cannot say or finds nothing anywhere either way."""
    for weak in (False, True):
        on_mix, *each = side_by_side(lambda item: probe(kind, item[1], item[0], weak), [(None, mix), *stems.items()])
        if on_mix is None:
            return None
        on_stems = sum(p or 0.0 for p in each)
        if on_mix > 0.0 or on_stems > 0.0:
            return on_stems, on_mix, weak
    return None


def _evidence(kind: str, stems: dict[str, np.ndarray], mix: np.ndarray, probe: Probe | None,
              cfg: RouterConfig) -> KindDecision | None:
    """Where an `evidence` kind runs: on the stems (those the plan processes) when they together show at least as much for it
    to act on as the mix (within `evidence_margin_db`), else on the mix (`kind_evidence`). None
    (the clip decides) when it cannot say or finds nothing anywhere."""
    found = None if probe is None else kind_evidence(kind, stems, mix, probe)
    if found is None:
        return None
    on_stems, on_mix, weak = found
    said = (f"finds {_db(on_stems):.1f} dB to act on in the stems together, {_db(on_mix):.1f} dB in the mix"
            + (" (by its weaker evidence only)" if weak else ""))
    if _db(on_stems) >= _db(on_mix) - cfg.evidence_margin_db:
        return KindDecision(kind, "stemwise", f"{said}: separation exposes it")
    return KindDecision(kind, "direct", f"{said}: separation hides it from the step (margin "
                                        f"{cfg.evidence_margin_db:g} dB)")


def _kind_reason(kind: str, cfg: RouterConfig) -> str:
    policy, why = KIND_EVIDENCE.get(kind, ("clip", ""))
    return why if policy == cfg.policy(kind) and why else "set in the router's kind_modes"


def _by_kind(plan: RoutePlan, kinds: tuple[str, ...], cfg: RouterConfig,
             evidence: Callable[[str, list[str]], KindDecision | None]) -> RoutePlan:
    """The per-kind decisions. Only a routed stem-wise clip splits: its `direct` kinds run on the
    remix. When no kind is left for the stems, the clip is restored directly, and says why."""
    if not kinds:
        return plan
    if plan.mode_requested != "routed" or plan.mode_used == "direct":
        why = plan.reason if plan.mode_requested == "routed" else f"forced {plan.mode_used} mode"
        return replace(plan, kinds=tuple(KindDecision(k, plan.mode_used, why) for k in kinds))
    def one(k: str) -> KindDecision:
        policy = cfg.policy(k)
        if policy == "direct":
            return KindDecision(k, "direct", _kind_reason(k, cfg))
        if policy == "evidence" and (found := evidence(k, plan.processed())) is not None:
            return found
        return KindDecision(k, "stemwise", "runs on the stems: " + (
            _kind_reason(k, cfg) if policy == "stemwise" else plan.reason))

    found = {k: one(k) for k in kinds if k not in LINEAR_KINDS}
    where = "stemwise" if any(k.mode_used == "stemwise" for k in found.values()) or not found else "direct"
    decided = tuple(found.get(k) or KindDecision(k, where, f"linear: runs with the preset's other kinds ({where})")
                    for k in kinds)
    if any(k.mode_used == "stemwise" for k in decided):
        return replace(plan, kinds=decided)
    why = "every step kind of the preset runs on the mix: " + "; ".join(f"{k.kind}: {k.reason}" for k in decided)
    stems = tuple(replace(s, decision="direct", reason=f"{why}; {s.reason}") for s in plan.stems)
    return replace(plan, mode_used="direct", stems=stems, reason=why, kinds=decided)


def _plan(mode: Mode, measures: dict[str, _Measure], cfg: RouterConfig, skip_policy: SkipPolicy) -> RoutePlan:
    silent = {name: _why_silent(m, cfg) for name, m in measures.items()}
    informative = [name for name, why in silent.items() if why is None]

    def decisions(kind: str, reason_for) -> tuple[StemDecision, ...]:
        return tuple(StemDecision(name, m.rms_dbfs, m.rel_db, m.active_fraction, kind(name), reason_for(name))
                     for name, m in measures.items())

    if not measures:
        return RoutePlan(mode, "direct", (), "no stems: the mix is restored directly", skip_policy)
    if mode == "direct":
        return RoutePlan(mode, "direct", decisions(lambda n: "direct", lambda n: "forced direct mode"),
                         "forced direct mode", skip_policy)
    if mode == "stemwise":
        return RoutePlan(mode, "stemwise", decisions(
            lambda n: "process",
            lambda n: "forced stem-wise" + (f" (router would skip: {silent[n]})" if silent[n] else "")),
            "forced stem-wise mode", skip_policy)
    if len(informative) <= 1:
        only = informative[0] if informative else None
        if only == cfg.direct_only_stem:
            why = f"only '{only}' is informative: separation would only add artifacts"
        else:
            why = f"{len(informative)} informative stem(s): nothing for separation to add"
        return RoutePlan(mode, "direct", decisions(
            lambda n: "direct", lambda n: f"{why}" + (f"; {silent[n]}" if silent[n] else "")), why, skip_policy)
    action = "added back unprocessed" if skip_policy == "passthrough" else "left out of the remix"
    return RoutePlan(mode, "stemwise", decisions(
        lambda n: "process" if silent[n] is None else "skip",
        lambda n: (f"informative: {measures[n].rel_db:.1f} dB re mix, active {measures[n].active_fraction:.0%}"
                   if silent[n] is None else f"{silent[n]}; {action}")),
        f"{len(informative)} informative stems: {', '.join(informative)}", skip_policy)
