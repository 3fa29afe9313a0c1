"""Levels: BS.1770 loudness (its K-weighting owned here) against pyloudnorm, peak and RMS."""

from __future__ import annotations

import math

import numpy as np
import pyloudnorm
import pytest
import scipy.signal
from pyloudnorm.iirfilter import IIRfilter

from adaptive_argm.core import levels as L

SR = 44100


@pytest.mark.parametrize("sr", [32000, 44100, 48000, 96000])
def test_k_weighting_is_pyloudnorms_bs1770_biquads_at_any_rate(sr):
    shelf, high_pass = L.k_weighting(sr)
    ref_shelf = IIRfilter(4.0, 1 / np.sqrt(2), 1500.0, sr, "high_shelf")
    ref_high_pass = IIRfilter(0.0, 0.5, 38.0, sr, "high_pass")
    for (b, a), ref in ((shelf, ref_shelf), (high_pass, ref_high_pass)):
        np.testing.assert_array_equal(b, ref.b)
        np.testing.assert_array_equal(a, ref.a)


def test_k_weighting_at_48k_follows_the_bs1770_table_within_a_twentieth_of_a_db():
    """ITU-R BS.1770-4 tables 1 and 2 (48 kHz). The RBJ high pass has a passband gain of 0.995
    where the table's has 1, so the responses differ by 0.043 dB at most from 20 Hz to 20 kHz,
    the same for every signal: loudness changes are exact, absolute loudness is pyloudnorm's."""
    table = (([1.53512485958697, -2.69169618940638, 1.19839281085285], [1.0, -1.69065929318241, 0.73248077421585]),
             ([1.0, -2.0, 1.0], [1.0, -1.99004745483398, 0.99007225036621]))
    f_hz = np.geomspace(20.0, 20000.0, 200)

    def response_db(stages):
        return 20 * np.log10(np.abs(np.prod([scipy.signal.freqz(b, a, worN=f_hz, fs=48000)[1] for b, a in stages],
                                            axis=0)))

    assert np.max(np.abs(response_db(L.k_weighting(48000)) - response_db(table))) < 0.05


@pytest.mark.parametrize("channels,seconds,sr", [(1, 7.0, SR), (2, 10.0, SR), (5, 3.1, SR), (2, 0.45, SR), (2, 7.0, 48000)])
def test_loudness_is_pyloudnorms_integrated_loudness(channels, seconds, sr):
    rng = np.random.default_rng(channels)
    n = int(seconds * sr)
    x = 0.1 * rng.standard_normal((channels, n))
    x[:, : n // 3] *= 1e-3  # a quiet stretch, so that both gates have blocks to drop
    x = x.astype(np.float32)
    expected = pyloudnorm.Meter(sr).integrated_loudness(x.T)
    assert L.loudness_lufs(x, sr) == pytest.approx(expected, abs=1e-5)


def test_loudness_beyond_five_channels_sums_each_channel_in_power():
    x = (0.05 * np.random.default_rng(6).standard_normal((6, 3 * SR))).astype(np.float32)
    each = [pyloudnorm.Meter(SR).integrated_loudness(c) for c in x]
    assert L.loudness_lufs(x, SR) == pytest.approx(10 * np.log10(np.sum(10 ** (np.array(each) / 10))), abs=1e-5)
    assert L.loudness_lufs(np.zeros((2, SR), np.float32), SR) == -math.inf


def test_peak_and_rms_cover_every_channel():
    x = np.zeros((2, 100), np.float32)
    x[1, 10] = -0.5
    assert L.peak(x) == 0.5 and L.peak_dbfs(x) == pytest.approx(-6.0206, abs=1e-4)
    assert L.peak_dbfs(np.zeros((2, 4), np.float32)) == -math.inf
    assert L.rms_dbfs(np.full((2, 10), 0.5, np.float32)) == pytest.approx(-6.0206, abs=1e-4)
    assert L.rms_dbfs(np.zeros(5)) == -math.inf


def test_every_dsp_stage_takes_channels_first_and_refuses_a_transposed_stereo_file():
    from adaptive_argm.core import bandwidth, denoise, recovery

    stereo = np.random.default_rng(0).standard_normal((2, 4096)).astype(np.float32)
    view = L.channels_first(stereo[0])
    assert view.shape == (1, 4096) and np.shares_memory(view, stereo)
    assert L.channels_first(stereo) is stereo
    for call in (L.channels_first, L.as_2d, lambda x: denoise.wiener_denoise(x, 44100),
                 lambda x: bandwidth.detect_cutoff(x, 44100), lambda x: recovery.recover(x, 44100)[0]):
        with pytest.raises(ValueError, match="looks like \\(samples, channels\\)"):
            call(stereo.T)
        with pytest.raises(ValueError, match="got shape"):
            call(stereo[None])


@pytest.mark.parametrize("gains_db", [[0.0], [14.4], [14.4, -0.37], [-6.02, 3.01, 0.5]])
def test_the_peak_after_gains_is_the_peak_sample_scaled_exactly(gains_db):
    # `finish` takes the peak of the gained result from the peak before the gain (no second
    # pass over the result): it must be the sample peak a pass would find, bit for bit.
    from adaptive_argm.core import finish

    x = np.random.default_rng(len(gains_db)).standard_normal((2, 50_000)).astype(np.float32) * 0.3
    y = x
    for g in gains_db:
        y = L.scaled(y, g)
    assert finish._scaled_peak_dbfs(L.peak(x), gains_db) == L.peak_dbfs(y)
