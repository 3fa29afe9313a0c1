"""ViSQOL through `intrusive.visqol_moslqo`: a sub-sample delay costs nothing; ViSQOL ranks hiss
and lost bands below the clean signal, and is undefined (NaN) for silence and short clips."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.signal
import soxr

from adaptive_argm.core import intrusive as v

from conftest import full_band_music

SR = 44100
pytest.importorskip("visqol")


def lowpass(x: np.ndarray, cutoff_hz: float, sr: int = SR) -> np.ndarray:
    sos = scipy.signal.butter(12, cutoff_hz, fs=sr, output="sos")
    return scipy.signal.sosfiltfilt(sos, x, axis=-1).astype(np.float32)


@pytest.fixture(scope="module")
def music() -> np.ndarray:
    return full_band_music()


@pytest.fixture(scope="module")
def clean_score(music) -> float:
    return v.visqol_moslqo(music, music, SR)


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
