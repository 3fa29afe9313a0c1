"""Tests for adaptive_argm.core.recovery: a band cut by a brick wall comes back (harmonics on
harmonic positions, transients where they were), full-band audio is returned bit for bit, and
odd input never raises."""

from __future__ import annotations

import re

import numpy as np
import pytest
import scipy.signal

from adaptive_argm.core.recovery import RecoverySettings, merged, recover

SR = 44100


def elliptic_lowpass(x: np.ndarray, cutoff_hz: float, sr: int = SR) -> np.ndarray:
    sos = scipy.signal.ellip(10, 0.1, 90, cutoff_hz, output="sos", fs=sr)
    return scipy.signal.sosfiltfilt(sos, x, axis=-1).astype(np.float32)


def noise(seconds: float, channels: int = 2, seed: int = 0, sr: int = SR) -> np.ndarray:
    """Pink-ish noise (-3 dB/octave above 200 Hz) at about -20 dBFS."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    spec = np.fft.rfft(rng.standard_normal((channels, n)), axis=-1)
    spec /= np.sqrt(np.maximum(np.fft.rfftfreq(n, 1.0 / sr), 200.0) / 200.0)
    x = np.fft.irfft(spec, n=n, axis=-1)
    return (0.1 * x / np.sqrt(np.mean(x**2))).astype(np.float32)


def sawtooth(f0_hz: float, seconds: float, sr: int = SR) -> np.ndarray:
    """Every harmonic up to Nyquist at 1/k: a bright harmonic tone."""
    t = np.arange(int(seconds * sr)) / sr
    ks = np.arange(1, int(sr / 2 / f0_hz))
    x = (np.sin(2 * np.pi * f0_hz * np.outer(ks, t)) / ks[:, None]).sum(axis=0)
    return (0.2 * x).astype(np.float32)


def band_db(x: np.ndarray, lo_hz: float, hi_hz: float, sr: int = SR) -> float:
    f, p = scipy.signal.welch(np.atleast_2d(x).mean(axis=0), sr, nperseg=4096)
    return float(10 * np.log10(p[(f >= lo_hz) & (f < hi_hz)].mean() + 1e-30))


# --- the band comes back ------------------------------------------------------------------------


def test_band_limited_harmonic_tone_gets_harmonics_above_the_cutoff():
    f0 = 440.0
    x = elliptic_lowpass(sawtooth(f0, 4.0), 8000.0)
    y, report = recover(x, SR)
    assert report.acted and report.kind == "brick-wall"
    assert report.character == "harmonic"
    assert abs(report.band_lo_hz - report.cutoff_hz) < 50.0 and report.band_hi_hz > 19000.0
    added = (y - x)[SR // 2 : -SR // 2]
    f, p = scipy.signal.welch(added, SR, nperseg=8192)
    # Every harmonic between 9 and 18 kHz carries energy, and far more than the gaps between them.
    on, off = [], []
    for k in range(int(9000 / f0), int(18000 / f0)):
        on.append(p[np.abs(f - k * f0) <= 12].max())
        off.append(p[np.abs(f - (k + 0.5) * f0) <= 12].max())
    assert 10 * np.log10(np.median(on) / np.median(off)) > 20.0
    assert 10 * np.log10(min(on) / np.median(off)) > 6.0
    # ...at a level that continues the tone's slope rather than jumping (the knee rolls it off).
    below, above = band_db(x, 6000, 7800), band_db(y, 8500, 10000)
    assert below - 12.0 < above < below + 1.0


def test_pink_noise_band_continues_its_slope_and_loudness_barely_moves():
    import pyloudnorm

    full = noise(6)
    x = elliptic_lowpass(full, 11000.0)
    y, report = recover(x, SR)
    assert report.acted and report.character == "noisy"
    assert -20.0 < report.level_re_below_db < 0.0
    # pink: about -3 dB per octave, never rising; the knee above 10 kHz steepens it
    top, new = band_db(x, 8000, 10500), band_db(y, 12000, 14000)
    assert top - 14.0 < new < top
    assert band_db(y, 12000, 14000) > band_db(x, 12000, 14000) + 40.0
    meter = pyloudnorm.Meter(SR)
    lufs = {k: meter.integrated_loudness(v.T.astype(np.float64)) for k, v in
            {"in": x, "out": y, "full": full}.items()}
    # louder by less than the true band would make it (this noise is far brighter than music)
    assert 0.0 <= lufs["out"] - lufs["in"] <= lufs["full"] - lufs["in"] + 0.1


def test_input_below_the_cutoff_is_kept_sample_for_sample_in_band():
    """The output is the input plus a band above the cutoff: low-passing the difference leaves
    next to nothing."""
    x = elliptic_lowpass(noise(4), 8000.0)
    y, _ = recover(x, SR)
    low = elliptic_lowpass(y - x, 7000.0)
    assert 20 * np.log10(np.std(low) / np.std(x)) < -50.0


def test_transient_stays_sharp():
    """Clicks every 0.5 s over quiet noise, cut at 8 kHz: the added band's energy envelope peaks
    at each click within a few ms, and 20 ms before it sits far lower (no pre-echo)."""
    n = 4 * SR
    x = np.zeros(n, np.float32)
    clicks = np.arange(SR // 4, n - SR // 4, SR // 2)
    x[clicks] = 0.8
    x = elliptic_lowpass(x + noise(4, channels=1, seed=3)[0] * np.float32(0.01), 8000.0)
    y, report = recover(x, SR)
    assert report.acted
    added = (y - x).astype(np.float64)
    ms = SR // 1000
    energy = np.convolve(added**2, np.ones(ms) / ms, mode="same")
    for c in clicks:
        around = energy[c - 30 * ms : c + 30 * ms]
        assert abs(int(np.argmax(around)) - 30 * ms) <= 3 * ms
        assert 10 * np.log10(energy[c - 20 * ms] / around.max()) < -20.0


def test_stereo_image_of_the_added_band_follows_the_source():
    """Left at half the right's level: the added band keeps that ratio (one gain for all)."""
    mono = elliptic_lowpass(noise(4, channels=1), 11000.0)[0]
    x = np.stack([0.5 * mono, mono])
    y, report = recover(x, SR)
    added = y - x
    assert report.acted
    assert 20 * np.log10(np.std(added[0]) / np.std(added[1])) == pytest.approx(-6.02, abs=0.1)


def test_a_cutoff_that_changes_halfway_is_filled_from_each_half_own_cutoff():
    x = noise(8)
    half = x.shape[1] // 2
    y_in = np.concatenate([elliptic_lowpass(x[:, :half], 8000.0), elliptic_lowpass(x[:, half:], 14000.0)], axis=1)
    y, report = recover(y_in, SR)
    assert report.acted and report.band_lo_hz < 8200.0
    first, second = y[:, : half - SR], y[:, half + SR :]
    # the first half gets 8-14 kHz back; the second already had it and gets nothing added there
    assert band_db(first, 10000, 13000) > band_db(y_in[:, : half - SR], 10000, 13000) + 40.0
    gap = band_db(second - y_in[:, half + SR :], 10000, 13000)
    assert gap < band_db(second, 10000, 13000) - 40.0
    assert band_db(second, 15000, 18000) > band_db(y_in[:, half + SR :], 15000, 18000) + 40.0


def test_a_wall_in_less_than_half_the_input_is_left_alone_and_the_report_says_so():
    x = noise(8)
    k = 4 * SR  # cut at 11 kHz for 4 s, full band for 4 s: the wall shows in 1 of 4 blocks
    y_in = np.concatenate([elliptic_lowpass(x[:, :k], 11000.0), x[:, k:]], axis=1)
    y, report = recover(y_in, SR)
    assert y is y_in and not report.acted and report.kind == "full-band"
    found = re.search(r"brick wall at (\d+) Hz in (\d+) of (\d+) blocks", report.reason)
    assert found and 10500 < int(found[1]) < 11500 and int(found[3]) == 4
    assert 0 < int(found[2]) < 2 and report.reason.endswith("left alone")
    # A full-band input's report carries no such note.
    full = recover(x, SR)[1]
    assert full.reason == "the input has its full band"
    # A long input's segments that stood aside for different reasons are each named.
    assert merged([full, full]).reason == "the input has its full band (in each of 2 segments)"
    assert merged([full, report, full]).reason == (f"the input has its full band (in 2 of 3 segments) | "
                                                   f"{report.reason} (in 1 of 3 segments)")


def test_no_new_samples_over_full_scale():
    x = elliptic_lowpass(noise(3), 8000.0)
    x *= np.float32(0.999 / np.abs(x).max())
    y, report = recover(x, SR)
    assert report.acted
    assert np.abs(y).max() <= 1.0


# --- nothing to do: the input itself comes back ------------------------------------------------------


@pytest.mark.parametrize("case", ["full-band", "roll-off", "silent", "encoder-lowpass-19k5", "float64"])
def test_full_band_or_unwalled_input_is_returned_bit_for_bit(case):
    x = {"full-band": lambda: noise(3),
         "roll-off": lambda: scipy.signal.sosfilt(scipy.signal.butter(8, 6000, output="sos", fs=SR),
                                                 noise(3)).astype(np.float32),
         "silent": lambda: np.zeros((2, 3 * SR), np.float32),
         "encoder-lowpass-19k5": lambda: elliptic_lowpass(noise(3), 19500.0),
         "float64": lambda: noise(3).astype(np.float64)}[case]()
    before = x.copy()
    y, report = recover(x, SR)
    assert y is x
    assert np.array_equal(x, before)
    assert not report.acted and report.reason


def test_a_wall_too_close_to_the_ceiling_is_left_alone():
    x = elliptic_lowpass(noise(3), 18000.0)
    y, report = recover(x, SR)
    assert y is x and report.kind == "brick-wall" and not report.acted
    assert "octave" in report.reason


@pytest.mark.parametrize("sr", [8000, 16000, 32000])
def test_low_rate_input_says_it_needs_resampling(sr):
    x = noise(2, sr=sr)
    y, report = recover(x, sr)
    assert y is x and report.kind == "nyquist" and "resample" in report.reason


def test_mono_1d_short_and_all_high_band_input():
    mono = elliptic_lowpass(noise(3, channels=1), 8000.0)[0]
    y, report = recover(mono, SR)
    assert y.shape == mono.shape and y.dtype == np.float32 and report.acted
    tiny = np.zeros(100, np.float32)
    assert recover(tiny, SR)[0] is tiny
    high = scipy.signal.sosfiltfilt(scipy.signal.butter(8, 10000, "high", output="sos", fs=SR), noise(3)).astype(np.float32)
    y, report = recover(high, SR)
    assert y is high and report.kind == "full-band"


def test_settings_validate_and_name_their_keys():
    with pytest.raises(ValueError):
        RecoverySettings(hop=3000)
    with pytest.raises(ValueError):
        RecoverySettings(max_slope_db_per_octave=3.0)
    with pytest.raises(ValueError, match="fill_codec_gaps must be true or false"):
        RecoverySettings(fill_codec_gaps="yes")
    with pytest.raises(ValueError, match="gap_drop_db must be a number"):
        RecoverySettings(gap_drop_db="x")
    with pytest.raises(ValueError, match="gap_drop_db must be > 0"):
        RecoverySettings(gap_drop_db=0.0)
    with pytest.raises(ValueError, match="gap_step_percentile must be in"):
        RecoverySettings(gap_step_percentile=120.0)
    assert RecoverySettings(n_fft=4096, hop=1024, level_db=-3).level_db == -3
    keys = RecoverySettings.keys()
    assert "ceiling_hz" in keys and "level_db" in keys and "fill_codec_gaps" in keys
