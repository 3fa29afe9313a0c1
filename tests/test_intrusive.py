"""Intrusive scores against a clean reference: delay alignment, SI-SDR, log-spectral distance and
the SNR in the reference's quietest frames."""

from __future__ import annotations

import numpy as np
import pytest
from pedalboard import LowpassFilter, Pedalboard

from adaptive_argm.core import intrusive as M

from conftest import full_band_music, music_like, mute_quietest_blocks

SR = 44100


@pytest.fixture(scope="module")
def music() -> np.ndarray:
    return music_like()


@pytest.mark.parametrize("delay", [0, 17, -9])
def test_align_recovers_known_delay(music, delay):
    ref = music[1000:-1000]
    est = music[1000 - delay : music.size - 1000 - delay]  # est[n] = ref[n - delay]
    est_aligned, ref_aligned = M.align(est, ref)
    assert est_aligned.shape == ref_aligned.shape
    assert ref_aligned.size >= ref.size - abs(delay)
    np.testing.assert_array_equal(est_aligned, ref_aligned)


def test_align_keeps_channel_layout(music):
    stereo = np.stack([music, music])
    est, ref = M.align(np.roll(stereo, 5, axis=1), stereo)
    assert est.ndim == 2 and est.shape == ref.shape
    np.testing.assert_array_equal(est[:, 10:-10], ref[:, 10:-10])


def test_si_sdr_self_high_noise_low_and_gain_and_delay_invariant(music):
    assert M.si_sdr_db(music, music) > 60.0
    noise = np.random.default_rng(7).standard_normal(music.size).astype(np.float32)
    assert M.si_sdr_db(noise, music) < -10.0
    delayed = np.concatenate([np.zeros(11, np.float32), 0.3 * music])
    assert M.si_sdr_db(delayed, music) > 60.0
    slightly_noisy = music + 0.01 * noise
    assert 0.0 < M.si_sdr_db(slightly_noisy, music) < 60.0


def test_intrusive_measures_compare_stereo_with_mono_as_downmixes(music):
    stereo = np.stack([music, music])
    assert M.si_sdr_db(stereo, music) > 60.0
    assert M.lsd_db(stereo, music, SR) < 0.01


def test_lsd_zero_for_scaled_copy_and_grows_with_damage(music):
    assert M.lsd_db(0.5 * music, music, SR) < 0.01
    lowpassed = Pedalboard([LowpassFilter(cutoff_frequency_hz=1000)])(music[np.newaxis], SR)[0]
    noise = np.random.default_rng(8).standard_normal(music.size).astype(np.float32)
    light = M.lsd_db(music + 0.001 * noise, music, SR)
    heavy = M.lsd_db(music + 0.01 * noise, music, SR)
    assert 0.01 < light < heavy
    assert M.lsd_db(lowpassed, music, SR) > 1.0


def test_quiet_frame_snr_sees_noise_that_global_snr_hides(music):
    noise = 0.0003 * np.random.default_rng(9).standard_normal(music.size).astype(np.float32)
    global_snr = 10 * np.log10(np.sum(music.astype(float) ** 2) / np.sum(noise.astype(float) ** 2))
    quiet = M.quiet_frame_snr_db(music + noise, music, SR)
    assert quiet < global_snr - 10.0
    assert M.quiet_frame_snr_db(0.5 * music, music, SR) > 60.0
    # A gate that mutes the quiet passages removes the music there too: worse, not better.
    assert M.quiet_frame_snr_db(mute_quietest_blocks(music + noise, 0.3), music, SR) < quiet


# --- fractional-delay alignment -------------------------------------------------------------


@pytest.mark.parametrize("delay", [0.0, 0.37, -0.25, 0.5, 3.5, -12.8])
def test_fractional_lag_finds_sub_sample_delays(delay):
    x = np.random.default_rng(1).standard_normal(3 * SR)
    y = M.shift(x, delay)
    assert M.fractional_lag(y, x, 64) == pytest.approx(delay, abs=1e-3)
    assert M.fractional_lag(-y, x, 64) == pytest.approx(delay, abs=1e-3)  # polarity flip


def test_fractional_align_undoes_a_resampler_shift_that_integer_alignment_keeps():
    music = full_band_music()
    x = music[0].astype(np.float64)
    y = M.shift(x, 0.3)
    e, r = M.fractional_align(y, x, 64)
    assert e.shape == r.shape
    residual_db = 10 * np.log10(np.sum((e - r) ** 2) / np.sum(r**2))
    unaligned_db = 10 * np.log10(np.sum((y - x) ** 2) / np.sum(x**2))
    assert residual_db < -58.0 and unaligned_db > -30.0


def test_fractional_align_keeps_channels_and_a_whole_lag_exact():
    music = full_band_music()
    y = np.pad(music, ((0, 0), (5, 0)))[:, : music.shape[1]]
    e, r = M.fractional_align(y, music, 64, lag=M.fractional_lag(y, music, 64))
    assert e.shape == r.shape == (2, music.shape[1] - 5)
    np.testing.assert_array_equal(e, r)


def test_every_intrusive_score_forgives_a_resampler_sub_sample_shift():
    music = full_band_music(seconds=2.0)
    delayed = M.shift(music, 0.3, dtype=np.float32)
    whole_sample_error_db = 10 * np.log10(np.sum((delayed - music) ** 2) / np.sum(music**2.0))
    assert whole_sample_error_db > -25.0  # what an integer-lag alignment would have scored
    assert M.si_sdr_db(delayed, music) >= 60.0
    assert M.quiet_frame_snr_db(delayed, music, SR) >= 50.0
    assert M.lsd_db(delayed, music, SR) < 0.3  # a -60 dB residual still shows in the quietest bins
    assert M.lsd_db(delayed, music, SR, min_hz=10000.0) < 0.3
    scored = M.scores(delayed, music, SR, with_visqol=False)
    assert scored.si_sdr_db == M.si_sdr_db(delayed, music) and scored.lsd_db == M.lsd_db(delayed, music, SR)


def test_lsd_above_a_cutoff_sees_the_band_above_it_only():
    music = full_band_music(seconds=2.0)
    lowpassed = Pedalboard([LowpassFilter(cutoff_frequency_hz=4000)])(music, SR)
    hum = music + np.float32(0.003) * np.sin(2 * np.pi * 50.0 * np.arange(music.shape[1]) / SR, dtype=np.float32)
    assert M.lsd_db(lowpassed, music, SR, min_hz=8000.0) > M.lsd_db(lowpassed, music, SR) > 1.0
    assert M.lsd_db(hum, music, SR) > 0.1
    assert M.lsd_db(hum, music, SR, min_hz=8000.0) < 0.05


def test_shift_is_the_ideal_delay_and_keeps_length_and_dtype():
    t = np.arange(SR) / SR
    x = np.stack([np.sin(2 * np.pi * 15000.0 * t), np.sin(2 * np.pi * 440.0 * t)]).astype(np.float32)
    y = M.shift(x, 0.37, dtype=np.float32)
    assert y.shape == x.shape and y.dtype == np.float32
    expected = np.stack([np.sin(2 * np.pi * 15000.0 * (t - 0.37 / SR)), np.sin(2 * np.pi * 440.0 * (t - 0.37 / SR))])
    np.testing.assert_allclose(y[:, 2000:-2000], expected[:, 2000:-2000], atol=1e-3)
