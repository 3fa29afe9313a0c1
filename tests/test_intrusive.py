"""Intrusive scores against a clean reference: delay alignment, SI-SDR, log-spectral distance and
the SNR in the reference's quietest frames."""

from __future__ import annotations

import numpy as np
import pytest
from pedalboard import LowpassFilter, Pedalboard

from adaptive_argm.core import intrusive as M

from conftest import music_like, mute_quietest_blocks

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
