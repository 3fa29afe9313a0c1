"""Router sweep on the paired benchmark: routed restoration of the musicgen-dev clips (oracle
stems) under a grid of `RouterConfig.min_rel_db` x `min_active_fraction` x skip policy, in four
setups per clip (`sweep_setups`): the real stems; a noise-only `vocals` stem (the damage); that
stem plus music leaked from `other`; a real stem turned down near the threshold.

    python eval/router_sweep.py [--out eval/results/router_sweep.md] [--presets adaptive]

Writes the Markdown table and a CSV beside it; prints the wall time.
"""

from __future__ import annotations

import argparse
import itertools
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np

from adaptive_argm.core import audio, levels, presets, workers
from adaptive_argm.core.route import RouterConfig
from adaptive_argm.core.table import Table, markdown
from adaptive_argm.evaluation.benchmark import DEFAULT_SEED, CaseResult, Restorer, Scorer, damage
from adaptive_argm.evaluation.benchmark_report import to_csv
from adaptive_argm.evaluation.benchmark_tables import finite_mean, finite_min
from adaptive_argm.evaluation.clips import CleanClip, default_corpus, musicgen_clips

DEFAULT = RouterConfig()
SWEEP_MIN_REL_DB = (-40.0, -35.0, -30.0, -25.0, -20.0)
SWEEP_MIN_ACTIVE = (0.05, 0.10, 0.20, 0.40)
SWEEP_SKIP_POLICIES = ("passthrough", "drop")
SWEEP_DEGRADATIONS = ("clean", "white-60", "white-45", "codec")
QUIET_STEM = "bass"
QUIET_STEM_REL_DB = -32.0
"""The `quiet-stem` setup turns a real stem down to this level re the mix: real music that a
threshold near the default calls near-silent."""
BLEED_REL_DB = -35.0
"""The `bleed` setup moves this much of `other` (re the mix) into `vocals`, as Demucs leaks
music into the vocals stem of a clip that has none."""


def quiet_stem_clip(clip: CleanClip, stem: str = QUIET_STEM, rel_db: float = QUIET_STEM_REL_DB) -> CleanClip:
    """The clip with one real stem turned down to `rel_db` below the (new) mix."""
    stems = dict(clip.stems)
    rest = sum(v for k, v in stems.items() if k != stem)
    gain = 1.0
    for _ in range(4):  # the mix level depends (slightly) on the gain: iterate to the fixed point
        gain = 10 ** ((levels.rms_dbfs(rest + gain * stems[stem]) + rel_db - levels.rms_dbfs(stems[stem])) / 20)
    stems[stem] = (stems[stem] * gain).astype(np.float32)
    mix = (rest + stems[stem]).astype(np.float32)
    return replace(clip, name=f"{clip.name}~{stem}{rel_db:+.0f}dB", audio=mix, stems=stems)


def bleed_clip(clip: CleanClip, rel_db: float = BLEED_REL_DB, source: str = "other") -> CleanClip:
    """The clip with part of `source` moved into a `vocals` stem at `rel_db` re the mix (the mix
    and the sum of the stems are unchanged)."""
    stems = dict(clip.stems)
    gain = 10 ** ((levels.rms_dbfs(clip.audio) + rel_db - levels.rms_dbfs(stems[source])) / 20)
    stems["vocals"] = (stems[source] * gain).astype(np.float32)
    stems[source] = (stems[source] - stems["vocals"]).astype(np.float32)
    return replace(clip, name=f"{clip.name}~bleed{rel_db:+.0f}dB", stems=stems)


def sweep_setups(clips: list[CleanClip]) -> list[tuple[str, CleanClip, str]]:
    """(setup, clip, split) for the router sweep, four per clip with stems:
    - `plain/mask`: the real stems, damage shared by the stems' powers;
    - `plain/vocals`: the damage is a `vocals` stem of its own (noise-only for additive noise);
    - `bleed/vocals`: that vocals stem also holds music leaked from `other` (BLEED_REL_DB);
    - `quiet-stem/mask`: a real stem turned down to QUIET_STEM_REL_DB re the mix."""
    out = []
    for c in (c for c in clips if c.stems is not None):
        out += [("plain/mask", c, "mask"), ("plain/vocals", c, "vocals"),
                ("bleed/vocals", bleed_clip(c), "vocals"), ("quiet-stem/mask", quiet_stem_clip(c), "mask")]
    return out


@dataclass(frozen=True)
class SweepCase:
    """One routed restoration under one router setting."""

    min_rel_db: float
    min_active_fraction: float
    skip_policy: str
    setup: str
    case: CaseResult


def _sweep_pair(task: tuple) -> list[SweepCase]:
    """Every router setting of one setup x degradation (one damage realisation for all)."""
    setup, clip, split, degradation, preset, grid, policies, seed = task
    damaged = damage(clip, degradation, seed, split)
    r = Restorer(clip, damaged, presets.load(preset), scorer=Scorer(clip, damaged, full_panel=False))
    return [SweepCase(cfg.min_rel_db, cfg.min_active_fraction, pol, setup, r.case("routed", cfg, pol))
            for cfg in grid for pol in policies]


def router_sweep(clips: list[CleanClip], *, preset: str = "adaptive", degradations=SWEEP_DEGRADATIONS,
                 min_rel_db=SWEEP_MIN_REL_DB, min_active=SWEEP_MIN_ACTIVE, policies=SWEEP_SKIP_POLICIES,
                 seed: int = DEFAULT_SEED, jobs: int = 0,
                 on_done: Callable[[int, int], None] | None = None) -> list[SweepCase]:
    """Routed restoration of every `sweep_setups` case x degradation under every
    (min_rel_db, min_active_fraction, skip_policy)."""
    grid = tuple(RouterConfig(min_rel_db=a, min_active_fraction=b)
                 for a, b in itertools.product(min_rel_db, min_active))
    tasks = [(setup, c, split, d, preset, grid, tuple(policies), seed)
             for setup, c, split in sweep_setups(clips) for d in degradations]
    return [x for xs in workers.map_ordered(_sweep_pair, tasks, jobs, on_done) for x in xs]


def sweep_summary(sweep: list[SweepCase]) -> list[dict]:
    """Means per router setting (overall and per setup), best mean SI-SDR change first."""
    groups: dict[tuple, list[SweepCase]] = {}
    for s in sweep:
        groups.setdefault((s.min_rel_db, s.min_active_fraction, s.skip_policy), []).append(s)
    out = []
    for (rel, act, pol), ss in groups.items():
        row = {"min_rel_db": rel, "min_active_fraction": act, "skip_policy": pol, "cases": len(ss),
               "si_sdr_change_db": finite_mean(s.case.si_sdr_change_db for s in ss),
               "si_sdr_change_worst_db": finite_min(s.case.si_sdr_change_db for s in ss),
               "lsd_change_db": finite_mean(s.case.lsd_change_db for s in ss),
               "stems_skipped_per_case": finite_mean(float(len(s.case.skipped)) for s in ss)}
        for setup in dict.fromkeys(s.setup for s in ss):
            part = [s for s in ss if s.setup == setup]
            row[f"ΔSI-SDR {setup}"] = finite_mean(s.case.si_sdr_change_db for s in part)
            row[f"ΔLSD {setup}"] = finite_mean(s.case.lsd_change_db for s in part)
        out.append(row)
    return sorted(out, key=lambda r: -r["si_sdr_change_db"])


def _md(header, rows) -> str:
    return markdown(Table(tuple(header), tuple(tuple(r) for r in rows), signed=True)) + "\n"


def by_case(sweep: list[SweepCase], rel: float, act: float) -> list[list]:
    """At one threshold pair: passthrough vs drop per setup x degradation (means over clips)."""
    rows = []
    keys = dict.fromkeys((s.setup, s.case.degradation) for s in sweep)
    for setup, deg in keys:
        row = [setup, deg]
        for pol in SWEEP_SKIP_POLICIES:
            ss = [s for s in sweep if (s.setup, s.case.degradation, s.skip_policy) == (setup, deg, pol)
                  and s.min_rel_db == rel and s.min_active_fraction == act]
            row += [finite_mean(s.case.si_sdr_change_db for s in ss), finite_mean(s.case.lsd_change_db for s in ss)]
        ss = [s for s in sweep if (s.setup, s.case.degradation) == (setup, deg)
              and s.min_rel_db == rel and s.min_active_fraction == act and s.skip_policy == "drop"]
        row.append(str(sum(len(s.case.skipped) for s in ss)))
        rows.append(row)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "router_sweep.md")
    ap.add_argument("--presets", default="adaptive")
    ap.add_argument("--corpus", type=Path, default=None)
    ap.add_argument("--jobs", type=int, default=0)
    args = ap.parse_args()
    corpus = args.corpus or default_corpus()
    if corpus is None:
        raise SystemExit("musicgen-dev not found: give --corpus")
    clips = musicgen_clips(corpus)
    parts = ["# Router sweep\n",
             "Routed restoration of the musicgen-dev clips with their oracle stems (no real clip has vocals), "
             f"degradations {', '.join(SWEEP_DEGRADATIONS)}, in four setups per clip:\n",
             "- `plain/mask`: the real stems; the damage is shared among them by their powers;",
             "- `plain/vocals`: the damage is a `vocals` stem of its own: noise-only for additive noise (e.g. "
             "white noise at -60 dBFS), the codec's error for `codec`, silent for `clean`;",
             f"- `bleed/vocals`: as plain/vocals, plus music leaked from `other` into `vocals` at "
             f"{BLEED_REL_DB:.0f} dB re the mix (Demucs on a clip without vocals);",
             f"- `quiet-stem/mask`: `{QUIET_STEM}` turned down to {QUIET_STEM_REL_DB:.0f} dB re the "
             "mix: real music near the threshold.\n",
             "Δ = output minus degraded input vs the clean mix (44.1 kHz, aligned; SI-SDR read at most 60 dB), "
             "means over clips x degradations.\n",
             f"Current defaults: min_rel_db {DEFAULT.min_rel_db}, min_active_fraction {DEFAULT.min_active_fraction}, "
             "skip policy passthrough.\n"]
    csv_rows = []
    t0 = time.perf_counter()
    for preset in args.presets.split(","):
        sweep = router_sweep(clips, preset=preset, jobs=args.jobs)
        summary = sweep_summary(sweep)
        csv_rows += [{"preset": preset, **r} for r in summary]
        cols = [k for k in summary[0] if k not in ("cases",)]
        at_default = {r["skip_policy"]: r for r in summary
                      if (r["min_rel_db"], r["min_active_fraction"]) == (DEFAULT.min_rel_db, DEFAULT.min_active_fraction)}
        parts += [f"## Preset `{preset}`: skip policy at the current thresholds\n",
                  _md(("skip policy", "mean ΔSI-SDR", "worst ΔSI-SDR", "mean ΔLSD"),
                      [[pol, r["si_sdr_change_db"], r["si_sdr_change_worst_db"], r["lsd_change_db"]]
                       for pol, r in at_default.items()])]
        parts += [f"## Preset `{preset}`: every setting, best mean ΔSI-SDR first\n",
                  _md(cols, [[r[k] for k in cols] for r in summary])]
        for rel, act in ((DEFAULT.min_rel_db, DEFAULT.min_active_fraction), (-35.0, DEFAULT.min_active_fraction)):
            parts += [f"### `{preset}` at min_rel_db {rel}, min_active_fraction {act}: passthrough vs drop\n",
                      _md(("setup", "degradation", "ΔSI-SDR passthrough", "ΔLSD passthrough", "ΔSI-SDR drop",
                           "ΔLSD drop", "stems skipped (3 clips)"), by_case(sweep, rel, act))]
    wall = time.perf_counter() - t0
    parts.append(f"Wall time {wall:.1f} s.\n")
    audio.write_text(args.out, "\n".join(parts))
    audio.write_text(args.out.with_suffix(".csv"), to_csv(csv_rows))
    print(f"wrote {args.out} and {args.out.with_suffix('.csv')} in {wall:.1f} s")


if __name__ == "__main__":
    main()
