"""Synthetic signals with known answers for the delivery checks (white noise, a faded full-scale
cosine, a loud dense and a quiet sparse mix) and the measure of truncation harmonics; shared by
the tests and eval/deliver_figures.py, so that eval scripts never import the tests."""

from __future__ import annotations

import numpy as np
import scipy.signal

from ..core.audio import WORK_SR
from ..core.levels import loudness_lufs

SR = WORK_SR


def noise(channels: int, seconds: float, sr: int = SR, level: float = 0.3, seed: int = 0) -> np.ndarray:
    """`(channels, samples)` white noise of RMS `level`, clipped to +-0.99."""
    rng = np.random.default_rng(seed)
    return np.clip(level * rng.standard_normal((channels, int(seconds * sr))), -0.99, 0.99).astype(np.float32)


def faded_tone(freq_hz: float, seconds: float, sr: int, phase: float = 0.0) -> np.ndarray:
    """A full-scale-peak cosine with 20 ms raised-cosine fades: no edge overshoot to measure."""
    n = int(seconds * sr)
    fade = np.ones(n)
    k = int(0.02 * sr)
    fade[:k] = np.sin(np.linspace(0, np.pi / 2, k)) ** 2
    fade[-k:] = fade[:k][::-1]
    return (np.cos(2 * np.pi * freq_hz * np.arange(n) / sr + phase) * fade)[None].astype(np.float32)


def loud_dense_mix(sr: int = SR, seconds: float = 6.0) -> np.ndarray:
    """Square-wave chords in saturated pink noise, stereo, at -6 LUFS with peaks at +3 dBFS."""
    rng = np.random.default_rng(1)
    n = int(sr * seconds)
    t = np.arange(n) / sr
    chords = sum(0.2 * np.sign(np.sin(2 * np.pi * f * t)) for f in (110.0, 138.6, 164.8))
    white = rng.standard_normal((2, n))
    f = np.fft.rfftfreq(n)
    f[0] = f[1]
    pink = np.fft.irfft(np.fft.rfft(white) / np.sqrt(f), n=n) / 30
    x = np.tanh(1.5 * (chords + pink)).astype(np.float32)
    x *= np.float32(10 ** ((-6.0 - loudness_lufs(x, sr)) / 20))
    spikes = rng.integers(0, n, 6)
    x[:, spikes] = np.float32(10 ** (3 / 20)) * np.sign(x[:, spikes] + 1e-9)
    return x


def quiet_sparse_mix(sr: int = SR, seconds: float = 6.0) -> np.ndarray:
    """Plucked notes (five harmonics decaying over 0.15 s) every 0.6 s over a faint drone, mono,
    at -40 LUFS: peaks 17 dB above loudness, so -14 LUFS needs +26 dB and the limiter."""
    rng = np.random.default_rng(2)
    n = int(sr * seconds)
    t = np.arange(n) / sr
    x = 0.01 * np.sin(2 * np.pi * 110 * t)
    for start in np.arange(0.1, seconds - 0.5, 0.6):
        i, tt = int(start * sr), np.arange(int(0.5 * sr)) / sr
        f0 = rng.choice([220.0, 262.0, 330.0, 392.0, 440.0])
        note = sum(np.sin(2 * np.pi * k * f0 * tt + rng.uniform(0, 6)) / k for k in range(1, 6))
        x[i:i + tt.size] += note * np.exp(-tt / 0.15) * (1 - np.exp(-tt / 0.002))
    x = x[None].astype(np.float32)
    return x * np.float32(10 ** ((-40.0 - loudness_lufs(x, sr)) / 20))


def harmonic_excess_db(q: np.ndarray, sr: int, f0: float) -> list[float]:
    """Level of each harmonic 2..7 of `f0` in the first channel of `q` above the median of its
    neighbouring bins (Welch, 10 Hz bins at 48 kHz), dB: truncation distortion shows as tens of dB."""
    freqs, psd = scipy.signal.welch(q[0].astype(np.float64), sr, nperseg=4800)
    excess = []
    for k in range(2, 8):
        i = int(round(k * f0 / (freqs[1] - freqs[0])))
        around = np.r_[psd[i - 40:i - 3], psd[i + 4:i + 41]]
        excess.append(10 * np.log10(psd[i - 1:i + 2].max() / np.median(around)))
    return excess
