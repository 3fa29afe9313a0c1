"""Tests for adaptive_argm.core.bandwidth: brick walls from resamplers and codecs must be found,
natural roll-offs and full-band audio must not be read as walls, and odd input (silence, mono,
low rates, all high band, a cutoff that moves) gets a correct answer, never an exception."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal

from adaptive_argm.core.bandwidth import BandwidthSettings, analyse_spectrum, detect_cutoff

SR = 44100


def noise(seconds: float, sr: int = SR, channels: int = 2, seed: int = 0) -> np.ndarray:
    """Pink-ish noise (-3 dB/octave above 200 Hz) at about -20 dBFS: music-like spectrum."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    spec = np.fft.rfft(rng.standard_normal((channels, n)), axis=-1)
    f = np.fft.rfftfreq(n, 1.0 / sr)
    spec *= 1.0 / np.sqrt(np.maximum(f, 200.0) / 200.0)
    x = np.fft.irfft(spec, n=n, axis=-1)
    return (0.1 * x / np.sqrt(np.mean(x**2))).astype(np.float32)


def elliptic_lowpass(x: np.ndarray, cutoff_hz: float, sr: int = SR) -> np.ndarray:
    """A codec-like brick wall: passband to `cutoff_hz`, 90 dB down 4 % higher (zero phase)."""
    sos = scipy.signal.ellip(10, 0.1, 90, cutoff_hz, output="sos", fs=sr)
    return scipy.signal.sosfiltfilt(sos, x, axis=-1).astype(np.float32)


def butter(x: np.ndarray, cutoff_hz: float, order: int, btype: str = "low", sr: int = SR) -> np.ndarray:
    sos = scipy.signal.butter(order, cutoff_hz, btype=btype, output="sos", fs=sr)
    return scipy.signal.sosfilt(sos, x, axis=-1).astype(np.float32)


# --- walls and roll-offs --------------------------------------------------------------------------


@pytest.mark.parametrize("cutoff_hz", [4000.0, 8000.0, 11000.0, 16000.0])
def test_elliptic_lowpass_reads_as_brick_wall_at_its_cutoff(cutoff_hz):
    bw = detect_cutoff(elliptic_lowpass(noise(6), cutoff_hz), SR)
    assert bw.kind == "brick-wall"
    assert cutoff_hz * 0.93 <= bw.cutoff_hz <= cutoff_hz * 1.03
    assert bw.stop_hz >= bw.cutoff_hz
    assert bw.drop_db >= 60.0
    assert bw.edge_slope_db_per_octave > 300.0
    assert bw.confidence > 0.9
    assert all(c is not None and abs(np.log2(c / bw.cutoff_hz)) < 0.05 for c in bw.block_cutoffs_hz)


@pytest.mark.parametrize("order", [1, 2])
def test_gentle_tilt_is_not_a_wall(order):
    """-6 or -12 dB/octave above 1 kHz (a bilinear Butterworth: it also dives to zero at
    Nyquist, above the full-band limit)."""
    bw = detect_cutoff(butter(noise(6), 1000.0, order), SR)
    assert bw.kind == ("full-band" if order == 1 else "roll-off")
    assert bw.cutoff_hz is None
    assert all(c is None for c in bw.block_cutoffs_hz)


def test_steep_natural_rolloff_is_a_rolloff_not_a_wall():
    """MusicGen outputs often fall 60 dB over about an octave from 6-10 kHz: that is timbre."""
    x = butter(noise(6), 6000.0, 8)  # -48 dB per octave
    bw = detect_cutoff(x, SR)
    assert bw.kind == "roll-off"
    assert bw.cutoff_hz is None
    assert 7000.0 < bw.bandwidth_hz < 18000.0
    assert bw.slope_db_per_octave < -10.0
    assert all(c is None for c in bw.block_cutoffs_hz)


def test_full_band_noise_and_an_encoder_lowpass_near_20_khz_are_full_band():
    assert detect_cutoff(noise(4), SR).kind == "full-band"
    bw = detect_cutoff(elliptic_lowpass(noise(4), 19500.0), SR)
    assert bw.kind == "full-band"


def test_a_lone_sine_is_not_a_wall():
    t = np.arange(4 * SR) / SR
    x = (0.3 * np.sin(2 * np.pi * 1000.0 * t)).astype(np.float32)
    assert detect_cutoff(x, SR).kind != "brick-wall"


def test_wall_below_the_music_level_counts_but_not_one_in_the_noise_floor():
    quiet = noise(4) * np.float32(10 ** (-100 / 20))  # near -120 dBFS: float rounding noise
    loud = butter(noise(4), 300.0, 8)  # everything above 400 Hz is far down
    bw = detect_cutoff(elliptic_lowpass(loud + quiet, 11000.0), SR)
    assert bw.kind != "brick-wall"


# --- time and channels ------------------------------------------------------------------------------


def test_cutoff_that_changes_halfway_is_followed_per_block():
    x = noise(8)
    half = x.shape[1] // 2
    y = np.concatenate([elliptic_lowpass(x[:, :half], 11000.0), elliptic_lowpass(x[:, half:], 16000.0)], axis=1)
    bw = detect_cutoff(y, SR)
    assert bw.kind == "brick-wall"
    first, last = bw.block_cutoffs_hz[0], bw.block_cutoffs_hz[-1]
    assert 10000.0 < first < 11500.0
    assert 15000.0 < last < 16500.0
    assert bw.cutoff_hz in {c for c in bw.block_cutoffs_hz}
    assert len(bw.cutoffs_hz) == 2 and len(bw.cutoffs_hz[0]) == len(bw.block_cutoffs_hz)


def test_mono_1d_and_one_silent_channel():
    x = elliptic_lowpass(noise(4, channels=1), 8000.0)
    mono = detect_cutoff(x[0], SR)
    assert mono.kind == "brick-wall" and len(mono.channel_cutoffs_hz) == 1
    stereo = detect_cutoff(np.concatenate([x, np.zeros_like(x)]), SR)
    assert stereo.kind == "brick-wall"
    assert abs(stereo.cutoff_hz - mono.cutoff_hz) < 1.0
    assert stereo.channel_cutoffs_hz[1] is None


def test_stereo_channels_with_different_walls_take_the_lower():
    x = noise(4)
    y = np.stack([elliptic_lowpass(x[0], 11000.0), elliptic_lowpass(x[1], 16000.0)])
    bw = detect_cutoff(y, SR)
    assert bw.kind == "brick-wall" and bw.cutoff_hz < 11500.0
    assert bw.channel_cutoffs_hz[0] < 11500.0 < bw.channel_cutoffs_hz[1]


# --- odd input ----------------------------------------------------------------------------------------


def test_silence_reads_silent():
    bw = detect_cutoff(np.zeros((2, 3 * SR), np.float32), SR)
    assert bw.kind == "silent" and bw.cutoff_hz is None and bw.bandwidth_hz == 0.0
    assert set(bw.block_kinds) == {"silent"}


@pytest.mark.parametrize("sr", [8000, 16000, 32000])
def test_low_rate_file_with_content_to_nyquist_reads_nyquist(sr):
    bw = detect_cutoff(noise(3, sr=sr), sr)
    assert bw.kind == "nyquist"
    assert bw.cutoff_hz is None
    assert bw.bandwidth_hz > 0.9 * sr / 2


def test_8_khz_rate_with_a_wall_inside_its_band():
    sr = 8000
    x = elliptic_lowpass(noise(3, sr=sr), 2000.0, sr=sr)
    bw = detect_cutoff(x, sr)
    assert bw.kind == "brick-wall" and 1800.0 < bw.cutoff_hz < 2100.0


def test_all_high_band_input_is_full_band():
    x = butter(noise(4), 10000.0, 8, btype="high")
    bw = detect_cutoff(x, SR)
    assert bw.kind == "full-band" and bw.cutoff_hz is None


def test_short_nonfinite_and_tiny_inputs_do_not_raise():
    assert detect_cutoff(np.zeros(10, np.float32), SR).kind == "silent"
    short = detect_cutoff(noise(0.05), SR)
    assert short.kind in {"full-band", "roll-off", "brick-wall"}
    x = noise(2)
    x[0, 100] = np.nan
    assert detect_cutoff(x, SR).kind == "full-band"


def test_spectrum_classifier_on_a_known_spectrum():
    """An exact spectrum: flat to 12 kHz, then 100 dB lower: a wall, cutoff at 12 kHz."""
    s = BandwidthSettings()
    f = np.arange(s.n_fft // 2 + 1) * SR / s.n_fft
    power = np.where(f < 12000.0, 1.0, 1e-10)
    edge = analyse_spectrum(power, SR, s)
    assert edge.kind == "brick-wall"
    assert 11700.0 < edge.cutoff_hz <= 12050.0
    assert edge.drop_db == pytest.approx(100.0, abs=1.0)
    assert abs(edge.slope_db_per_octave) < 0.5


def test_settings_validate():
    with pytest.raises(ValueError):
        BandwidthSettings(n_fft=1000)
    with pytest.raises(ValueError):
        BandwidthSettings(edge_db=40.0, wall_drop_db=30.0)
    assert "wall_drop_db" in BandwidthSettings.keys()
