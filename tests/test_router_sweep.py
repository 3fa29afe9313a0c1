"""The router sweep (eval/router_sweep.py): its setups put a noise-only vocals stem, music leaked
into vocals and a quiet real stem in front of the router."""

from __future__ import annotations

import importlib.util
import sys

import numpy as np

from adaptive_argm.core import levels
from adaptive_argm.evaluation import benchmark, clips

from conftest import ROOT, synthetic_stems

_spec = importlib.util.spec_from_file_location("router_sweep", ROOT / "eval" / "router_sweep.py")
sweep = importlib.util.module_from_spec(_spec)
sys.modules["router_sweep"] = sweep  # dataclasses look their module up while the script loads
_spec.loader.exec_module(sweep)


def synthetic_clip(name: str = "synth", seconds: float = 2.0) -> clips.CleanClip:
    stems = synthetic_stems(seconds=seconds, channels=1)
    return clips.CleanClip(name, sum(stems.values()).astype(np.float32), stems, "musicgen")


def test_router_sweep_setups_cover_a_noise_only_vocals_stem_and_a_quiet_real_stem():
    setups = {s: (c, split) for s, c, split in sweep.sweep_setups([synthetic_clip()])}
    assert set(setups) == {"plain/mask", "plain/vocals", "bleed/vocals", "quiet-stem/mask"}
    quiet, _ = setups["quiet-stem/mask"]
    rel = levels.rms_dbfs(quiet.stems[sweep.QUIET_STEM]) - levels.rms_dbfs(quiet.audio)
    assert abs(rel - sweep.QUIET_STEM_REL_DB) < 0.1
    bleed, _ = setups["bleed/vocals"]
    np.testing.assert_allclose(sum(bleed.stems.values()), bleed.audio, atol=1e-6)
    clip, split = setups["plain/vocals"]
    damaged = benchmark.damage(clip, "white-60", 1, split)
    assert abs(levels.rms_dbfs(damaged.separation.stems["vocals"]) - (-60)) < 0.2
