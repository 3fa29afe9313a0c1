"""ViSQOL wrapper and fractional alignment: sub-sample delays are found and undone; ViSQOL ranks
hiss and lost bands below the clean signal, and is undefined (NaN) for silence and short clips."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.signal
import soxr

from adaptive_argm.core import visqol as v

SR = 44100


def full_band_music(seconds: float = 3.0, sr: int = SR, seed: int = 0) -> np.ndarray:
    """`(2, samples)` float32: harmonic tones plus decaying noise bursts, content to 20 kHz."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    t = np.arange(n) / sr
    tones = sum(0.3 / k * np.sin(2 * np.pi * 220.0 * k * t) for k in range(1, 40))
    bursts = rng.standard_normal(n) * 0.3 * np.exp(-(t % 0.375) / 0.05)
    x = (tones * (0.6 + 0.4 * np.sin(2 * np.pi * 0.7 * t)) + bursts) * 0.2
    return np.stack([x, 0.8 * x]).astype(np.float32)


def lowpass(x: np.ndarray, cutoff_hz: float, sr: int = SR) -> np.ndarray:
    sos = scipy.signal.butter(12, cutoff_hz, fs=sr, output="sos")
    return scipy.signal.sosfiltfilt(sos, x, axis=-1).astype(np.float32)


@pytest.fixture(scope="module")
def music() -> np.ndarray:
    return full_band_music()


@pytest.fixture(scope="module")
def clean_score(music) -> float:
    return v.visqol_moslqo(music, music, SR)


@pytest.mark.parametrize("delay", [0.0, 0.37, -0.25, 0.5, 3.5, -12.8])
def test_fractional_lag_finds_sub_sample_delays(delay):
    x = np.random.default_rng(1).standard_normal(3 * SR)
    y = v.shift(x, delay)
    assert v.fractional_lag(y, x, 64) == pytest.approx(delay, abs=1e-3)
    assert v.fractional_lag(-y, x, 64) == pytest.approx(delay, abs=1e-3)  # polarity flip


def test_fractional_align_undoes_a_resampler_shift_that_integer_alignment_keeps(music):
    x = music[0].astype(np.float64)
    y = v.shift(x, 0.3)
    e, r = v.fractional_align(y, x, 64)
    assert e.shape == r.shape
    residual_db = 10 * np.log10(np.sum((e - r) ** 2) / np.sum(r**2))
    unaligned_db = 10 * np.log10(np.sum((y - x) ** 2) / np.sum(x**2))
    assert residual_db < -58.0 and unaligned_db > -30.0


def test_fractional_align_keeps_channels_and_a_whole_lag_exact(music):
    y = np.pad(music, ((0, 0), (5, 0)))[:, : music.shape[1]]
    e, r = v.fractional_align(y, music, 64, lag=v.fractional_lag(y, music, 64))
    assert e.shape == r.shape == (2, music.shape[1] - 5)
    np.testing.assert_array_equal(e, r)


def test_identical_signal_scores_near_the_top(clean_score):
    assert clean_score > 4.6


def test_sub_sample_delay_costs_nothing(music, clean_score):
    delayed = v.shift(music, 0.4).astype(np.float32)
    assert v.visqol_moslqo(delayed, music, SR) == pytest.approx(clean_score, abs=0.02)


def test_hiss_at_minus_45_dbfs_scores_low(music, clean_score):
    noise = np.random.default_rng(2).standard_normal(music.shape).astype(np.float32) * 10 ** (-45 / 20)
    assert v.visqol_moslqo(music + noise, music, SR) < clean_score - 1.0


def test_narrower_band_scores_lower(music, clean_score):
    at_16k = v.visqol_moslqo(lowpass(music, 16000), music, SR)
    at_8k = v.visqol_moslqo(lowpass(music, 8000), music, SR)
    assert at_8k < at_16k < clean_score


def test_stereo_is_scored_as_its_mono_downmix(music):
    damaged = lowpass(music, 8000)
    assert v.visqol_moslqo(damaged, music, SR) == pytest.approx(
        v.visqol_moslqo(damaged.mean(axis=0), music.mean(axis=0), SR), abs=1e-9)


def test_soxr_round_trip_through_22050_keeps_the_score_defined(music):
    down_up = soxr.resample(soxr.resample(music.T, SR, 22050, "VHQ"), 22050, SR, "VHQ").T
    assert 1.0 <= v.visqol_moslqo(down_up, music, SR) <= 5.0


def test_silent_or_too_short_input_is_nan(music):
    assert math.isnan(v.visqol_moslqo(np.zeros_like(music), music, SR))
    assert math.isnan(v.visqol_moslqo(music, np.zeros_like(music), SR))
    short = music[:, : int(0.9 * SR)]
    assert math.isnan(v.visqol_moslqo(short, short, SR))
    one_s = music[:, :SR]
    assert not math.isnan(v.visqol_moslqo(one_s, one_s, SR))
