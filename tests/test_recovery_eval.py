"""The recovery evaluation scripts: the oracle's variants (eval/recovery_oracle.py) change only
the band above the cutoff and the ones told the truth give it back; the LSD of AudioSR's and
NVSR's evaluation code (eval/recovery_lsd_ssr.py) reads known answers."""

from __future__ import annotations

import importlib.util
import sys

import numpy as np

from conftest import ROOT

sys.path.insert(0, str(ROOT / "eval"))
_spec = importlib.util.spec_from_file_location("recovery_oracle", ROOT / "eval" / "recovery_oracle.py")
oracle = importlib.util.module_from_spec(_spec)
sys.modules["recovery_oracle"] = oracle
_spec.loader.exec_module(oracle)
import recovery_dev as rd  # noqa: E402  (on the path once the oracle has loaded)

from adaptive_argm.core.recovery import recover  # noqa: E402

SR = 44100


def band_db(x: np.ndarray, lo_hz: float, hi_hz: float) -> float:
    f = np.fft.rfftfreq(x.shape[1], 1.0 / SR)
    p = np.abs(np.fft.rfft(x, axis=1)) ** 2
    return float(10 * np.log10(p[:, (f >= lo_hz) & (f < hi_hz)].sum()))


def test_oracle_variants_touch_only_the_band_above_the_cutoff_and_the_truth_gives_it_back():
    rng = np.random.default_rng(3)
    n = 4 * SR
    t = np.arange(n) / SR
    # Harmonics up to 20 kHz with a beat, plus a little noise: full-band "music".
    x = sum(np.sin(2 * np.pi * 220.0 * k * t) / k for k in range(1, 90)) * (0.6 + 0.4 * np.sin(2 * np.pi * 2 * t))
    x = (0.05 * np.stack([x, x]) + 1e-3 * rng.standard_normal((2, n))).astype(np.float32)
    y = rd.degrade("r22", x, SR)
    z, rep = recover(y, SR)
    assert rep.acted and rep.cutoff_hz < 11100
    out = oracle.variants(x, y, z, rep.cutoff_hz, SR)
    assert list(out) == list(oracle.VARIANTS)
    below = rep.cutoff_hz * 0.8
    for name, v in out.items():
        assert v.shape == x.shape and v.dtype == np.float32, name
        # Below the cutoff every variant is the band-limited input (the step's own band starts there).
        assert abs(band_db(v, 1000, below) - band_db(y, 1000, below)) < 0.05, name
    lo, hi = rep.cutoff_hz * 1.05, 19000
    truth = band_db(x, lo, hi)
    assert abs(band_db(out["true band"], lo, hi) - truth) < 0.2
    assert abs(band_db(out["ideal level"], lo, hi) - truth) < 1.0
    assert abs(band_db(out["ideal frames"], lo, hi) - truth) < 1.0
    assert rd.lsd_above(x, out["true band"], SR, lo) < 0.1 * rd.lsd_above(x, y, SR, lo)
    # The no-oracle variants reshape the step's band in time only: its long-term level stays
    # within their clamp of the step's.
    for name in ("frames below", "tilt below"):
        assert abs(band_db(out[name], lo, hi) - band_db(z, lo, hi)) < oracle.FRAME_CLAMP_DB, name


def test_ssr_lsd_reads_zero_for_a_copy_and_two_for_a_tenth_of_the_amplitude():
    """The LSD of AudioSR's and NVSR's evaluation code is log10 of power ratios: a signal at a
    tenth of the amplitude is 100x down in power in every bin, 2.0."""
    spec = importlib.util.spec_from_file_location("recovery_lsd_ssr", ROOT / "eval" / "recovery_lsd_ssr.py")
    ssr = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ssr)
    x = np.random.default_rng(5).standard_normal((2, SR)).astype(np.float32) * 0.1
    assert ssr.lsd_ssr(x, x, SR) < 1e-6
    assert abs(ssr.lsd_ssr(x, x * 0.1, SR) - 2.0) < 1e-3
    assert abs(ssr.lsd_ssr(x * 0.1, x, SR) - 2.0) < 1e-3


def test_the_backtest_reads_the_envelope_rules_own_error():
    """eval/recovery_backtest.py: a spectrum that falls 10 dB/octave everywhere is continued 4
    dB/octave steeper above the cutoff (and 6 more above 10 kHz), so the rule's error there is
    known; below half the cutoff the same rule makes the same kind of error over one octave."""
    spec = importlib.util.spec_from_file_location("recovery_backtest", ROOT / "eval" / "recovery_backtest.py")
    bt = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bt)
    f = np.arange(bt.N_ANALYSIS // 2 + 1) * (SR / bt.N_ANALYSIS)
    power = 10 ** (-np.log2(np.maximum(f, 20.0) / 1000.0))  # -10 dB per octave
    up = f[(f >= 11025.0) & (f < 20000.0)]
    expected = np.mean(-4 * np.log2(up / 11025.0) - 6 * np.log2(up / 10000.0))
    assert abs(bt.envelope_error_db(power, SR, 11025.0, 20000.0) - expected) < 0.5
    down = f[(f >= 4000.0) & (f < 8000.0)]
    assert abs(bt.envelope_error_db(power, SR, 4000.0, 8000.0) - np.mean(-4 * np.log2(down / 4000.0))) < 0.5
