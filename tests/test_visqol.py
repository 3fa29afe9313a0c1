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


def bass_notes(seconds: float = 3.0, level_dbfs: float = -40.0) -> np.ndarray:
    """Decaying bass notes with nothing above 300 Hz: the reference leaves nearly every gammatone
    band on ViSQOL's -45 dB floor, as a quiet bass-and-drums intro does."""
    t = np.arange(int(0.5 * SR)) / SR
    x = np.zeros(int(seconds * SR))
    for k, f in enumerate([55, 82, 65, 110, 73, 98][: int(seconds / 0.5)]):
        x[k * t.size:(k + 1) * t.size] += np.sin(2 * np.pi * f * t) * np.exp(-4 * t) + 0.3 * np.sin(4 * np.pi * f * t) * np.exp(-6 * t)
    return (x / np.sqrt(np.mean(x ** 2)) * 10 ** (level_dbfs / 20)).astype(np.float32)[np.newaxis]


def test_a_reading_whose_patches_were_matched_to_other_music_is_marked(music):
    """Under hiss 5 dB below bass notes that leave the upper bands empty, ViSQOL matches its
    patches seconds away from their own time and reads the mismatch as a better score than
    full-band music 16 dB over the same hiss gets; the reading says so. The music's patches are
    matched in place."""
    hiss = lambda x: x + np.random.default_rng(3).standard_normal(x.shape).astype(np.float32) * 10 ** (-45 / 20)  # noqa: E731
    bass = bass_notes()
    misread = v.visqol_reading(hiss(bass), bass, SR)
    assert misread.misplaced >= 0.5 and misread.moslqo > 3.5
    sound = v.visqol_reading(hiss(music), music, SR)
    assert sound.misplaced == 0.0 and sound.moslqo < misread.moslqo
    assert v.scores(hiss(music), music, SR).visqol_misplaced == 0.0
    assert math.isnan(v.visqol_reading(np.zeros_like(music), music, SR).misplaced)
