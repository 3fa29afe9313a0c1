"""Remove steady broadband noise (hiss) from music with a level-aware Wiener filter, and leave
audio that carries no such noise untouched.

Why this design (NOTES.md, "What we measured about denoising"): MusicGen mixes are dense and
steady, so "quiet frame" noise profiles and plain minimum statistics take the music for noise and
cut it. What works is a minimum-statistics noise estimate (smoothed periodogram, sliding minimum
over 1.5 s, bias correction) that is clamped from above by ONE flat level: the lowest per-band
median estimate between 2 and 15 kHz, where hiss is most exposed. A decision-directed Wiener gain
with a gain floor is then applied on a 2048-point STFT.

Levels: every power spectral density here is "power per bin" normalised so that white noise with
an RMS of -45 dBFS reads -45 dB in every bin. A level in dB is therefore the RMS, in dBFS, of the
white noise that would have that density.

All functions are pure numpy/scipy and take `(channels, samples)` float audio (1-D is accepted).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from functools import lru_cache

import numpy as np
from scipy.ndimage import minimum_filter1d, uniform_filter1d
from scipy.signal import ShortTimeFFT
from scipy.signal.windows import hann

_TINY = 1e-30


@dataclass(frozen=True)
class WienerSettings:
    """Every tunable of `wiener_denoise`, with its unit in its name. Plain scalars so that a
    preset can set them as TOML keys (`[[steps]] kind = "wiener"`)."""

    n_fft: int = 2048
    """STFT size in samples (Hann window of the same length). Longer was worse in NOTES.md."""
    hop: int = 512
    """STFT hop in samples (75 % overlap: perfect reconstruction when the gain is 1)."""
    smoothing_s: float = 0.1
    """Length of the moving average over time applied to the periodogram before the sliding
    minimum (seconds). Lowers the variance so the minimum is less biased."""
    min_window_s: float = 1.5
    """Length of the sliding minimum (seconds): must be longer than the music's held notes are
    absent from a bin, short enough to follow a changing noise floor."""
    bias_correction_db: float = 0.0
    """Added to the automatic bias correction of the minimum (dB). The automatic part is measured
    once per STFT/smoothing/window combination on white noise, so 0 gives an unbiased estimate of
    steady noise; positive values over-estimate the noise (more reduction)."""
    clamp_low_hz: float = 2000.0
    """Lower edge of the band whose quietest sub-band sets the flat clamp level (Hz)."""
    clamp_high_hz: float = 15000.0
    """Upper edge of that band (Hz). MusicGen never has content above 16 kHz."""
    clamp_band_octaves: float = 1.0 / 3.0
    """Width of the sub-bands between `clamp_low_hz` and `clamp_high_hz` (octaves)."""
    empty_band_below_db: float = -110.0
    """A sub-band whose median estimate is below this level holds no noise and no music (a codec
    or resampler cut it away); it is skipped when picking the clamp level (dB, see module doc)."""
    dd_alpha: float = 0.98
    """Decision-directed smoothing of the a-priori SNR (0..1); higher = fewer musical-noise
    artefacts, slower onsets."""
    gain_floor_db: float = -18.0
    """Lowest gain the filter applies (dB). -15 to -20 dB keeps the music's tails natural."""
    bypass_below_db: float = -40.0
    """If the filter would remove less than this share of the input's energy (dB), the input is
    returned unchanged: no broadband noise was found (clean or codec-only audio)."""
    block_s: float = 30.0
    """Long inputs are processed in blocks of this length (seconds) to bound memory; each block
    gets its own noise estimate."""
    block_context_s: float = 2.5
    """Extra audio on each side of a block that is processed and then discarded (seconds);
    longer than `min_window_s` so block edges see a full minimum window."""

    def __post_init__(self) -> None:
        if self.n_fft < 16 or self.hop < 1 or self.hop > self.n_fft // 2:
            raise ValueError("need n_fft >= 16 and 1 <= hop <= n_fft / 2")
        if not 0.0 <= self.dd_alpha < 1.0:
            raise ValueError("dd_alpha must be in [0, 1)")
        if not 0.0 < self.clamp_low_hz < self.clamp_high_hz:
            raise ValueError("need 0 < clamp_low_hz < clamp_high_hz")
        if self.clamp_band_octaves <= 0 or self.smoothing_s < 0 or self.min_window_s <= 0:
            raise ValueError("clamp_band_octaves and min_window_s must be > 0, smoothing_s >= 0")
        if self.gain_floor_db > 0:
            raise ValueError("gain_floor_db must be <= 0")
        if self.block_s <= 0 or self.block_context_s < 0:
            raise ValueError("block_s must be > 0 and block_context_s >= 0")

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))


# ---------------------------------------------------------------------------------------------
# STFT helpers


@lru_cache(maxsize=8)
def _stft(n_fft: int, hop: int, sr: int) -> ShortTimeFFT:
    return ShortTimeFFT(hann(n_fft, sym=False), hop, sr)


def _power_scale(n_fft: int) -> float:
    """|X|^2 of white noise with variance 1 is sum(w^2) on average; divide by it (module doc)."""
    return float(np.sum(hann(n_fft, sym=False) ** 2))


def _frames(seconds: float, sr: int, hop: int) -> int:
    return max(1, int(round(seconds * sr / hop)))


def _min_track(power: np.ndarray, sr: int, s: WienerSettings) -> np.ndarray:
    """Smoothed periodogram -> sliding minimum, per bin (bins, frames). Not bias-corrected."""
    smooth = _frames(s.smoothing_s, sr, s.hop)
    p = uniform_filter1d(power, smooth, axis=1, mode="nearest") if smooth > 1 else power
    return minimum_filter1d(p, _frames(s.min_window_s, sr, s.hop), axis=1, mode="nearest")


@lru_cache(maxsize=16)
def _auto_bias(n_fft: int, hop: int, sr: int, smoothing_s: float, min_window_s: float) -> float:
    """Ratio true PSD / median of the minimum track, measured on white noise (deterministic)."""
    s = WienerSettings(n_fft=n_fft, hop=hop, smoothing_s=smoothing_s, min_window_s=min_window_s)
    n = max(int(20 * sr), int(8 * (min_window_s + smoothing_s) * sr), 8 * n_fft)
    noise = np.random.default_rng(12345).standard_normal(n).astype(np.float32)
    spec = _stft(n_fft, hop, sr).stft(noise)
    power = (np.abs(spec) ** 2).astype(np.float32) / _power_scale(n_fft)
    power = power[1:-1, 4:-4]  # leave out DC/Nyquist bins and the zero-padded edge frames
    est = np.median(_min_track(power, sr, s))
    return float(1.0 / max(est, _TINY))


def _as_2d(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim == 1:
        return x[None, :]
    if x.ndim != 2:
        raise ValueError(f"expected (channels, samples) or (samples,), got shape {x.shape}")
    if x.shape[0] > 16 and x.shape[1] <= 16:
        raise ValueError(f"shape {x.shape} looks like (samples, channels); pass (channels, samples)")
    return x


# ---------------------------------------------------------------------------------------------
# Noise estimate


def _band_edges(sr: int, n_fft: int, s: WienerSettings) -> list[tuple[int, int]]:
    """Bin ranges [lo, hi) of the sub-bands between clamp_low_hz and clamp_high_hz."""
    top = min(s.clamp_high_hz, sr / 2)
    edges_hz = [s.clamp_low_hz]
    while edges_hz[-1] < top:
        edges_hz.append(min(edges_hz[-1] * 2.0**s.clamp_band_octaves, top))
    out = []
    for lo_hz, hi_hz in zip(edges_hz[:-1], edges_hz[1:]):
        lo, hi = int(np.ceil(lo_hz * n_fft / sr)), int(np.floor(hi_hz * n_fft / sr))
        if hi > lo:
            out.append((lo, hi))
    return out


def _noise_from_power(power: np.ndarray, sr: int, s: WienerSettings) -> np.ndarray:
    """The clamped minimum-statistics estimate (bins,) from a normalised power spectrogram."""
    bias = _auto_bias(s.n_fft, s.hop, sr, s.smoothing_s, s.min_window_s)
    bias *= 10.0 ** (s.bias_correction_db / 10.0)
    per_bin = np.median(_min_track(power, sr, s), axis=1) * bias
    levels = [float(np.median(per_bin[lo:hi])) for lo, hi in _band_edges(sr, s.n_fft, s)]
    floor = 10.0 ** (s.empty_band_below_db / 10.0)
    levels = [v for v in levels if v >= floor]
    if not levels:  # nothing between 2 and 15 kHz: no hiss we can measure
        return np.zeros_like(per_bin)
    return np.minimum(per_bin, min(levels)).astype(np.float32)


def estimate_noise_psd(x: np.ndarray, sr: int, settings: WienerSettings = WienerSettings()) -> np.ndarray:
    """Steady broadband noise power per STFT bin, shape `(n_fft // 2 + 1,)`, of ONE channel.

    Minimum statistics (periodogram smoothed over `smoothing_s`, sliding minimum over
    `min_window_s`, median over time, bias-corrected), clamped from above by the lowest
    per-sub-band median between `clamp_low_hz` and `clamp_high_hz` (empty sub-bands skipped).
    Units: see the module doc (white noise at -45 dBFS RMS reads 10**(-45/10) in every bin).
    A 2-D input with one row is accepted; several channels are refused (estimate each).
    Returns zeros when the input is shorter than one frame or holds no measurable noise.
    """
    x2 = _as_2d(x)
    if x2.shape[0] != 1:
        raise ValueError("estimate_noise_psd takes one channel; call it per channel")
    x1 = np.asarray(x2[0], dtype=np.float32)
    if x1.shape[0] < settings.n_fft:
        return np.zeros(settings.n_fft // 2 + 1, dtype=np.float32)
    spec = _stft(settings.n_fft, settings.hop, sr).stft(x1)
    power = (spec.real**2 + spec.imag**2).astype(np.float32) / _power_scale(settings.n_fft)
    return _noise_from_power(power, sr, settings)


def noise_level_db(noise_psd: np.ndarray) -> float:
    """The estimate as one number: the RMS (dBFS) of white noise with the same mean density over
    the bins that carry noise; -inf when there is none."""
    carrying = noise_psd[noise_psd > 0]
    return float(10 * np.log10(np.mean(carrying))) if carrying.size else float("-inf")


# ---------------------------------------------------------------------------------------------
# Filter


def _dd_wiener_gain(power: np.ndarray, noise: np.ndarray, s: WienerSettings) -> np.ndarray:
    """Decision-directed Wiener gain (bins, frames), float32, floored at gain_floor_db."""
    floor = np.float32(10.0 ** (s.gain_floor_db / 20.0))
    alpha = np.float32(s.dd_alpha)
    inv_noise = (1.0 / np.maximum(noise, _TINY)).astype(np.float32)
    inv_noise[noise <= 0] = 0.0  # no noise in this bin -> SNR infinite -> gain 1
    gamma = power * inv_noise[:, None]  # a-posteriori SNR
    gain = np.empty_like(power)
    prev_clean = np.zeros(power.shape[0], dtype=np.float32)  # |S_hat|^2 / N of the last frame
    for t in range(power.shape[1]):
        g_t = gamma[:, t]
        xi = alpha * prev_clean + (1 - alpha) * np.maximum(g_t - 1.0, 0.0)
        g = xi / (1.0 + xi)
        g = np.where(inv_noise > 0, g, 1.0)
        prev_clean = g * g * g_t
        gain[:, t] = np.maximum(g, floor)
    return gain


def _denoise_block(x1: np.ndarray, sr: int, s: WienerSettings) -> np.ndarray | None:
    """Denoise one channel's block; None when the filter would do (almost) nothing."""
    stft = _stft(s.n_fft, s.hop, sr)
    spec = stft.stft(x1).astype(np.complex64)
    power = (spec.real**2 + spec.imag**2) / np.float32(_power_scale(s.n_fft))
    noise = _noise_from_power(power, sr, s)
    if not np.any(noise > 0):
        return None
    gain = _dd_wiener_gain(power, noise, s)
    total = float(np.sum(power, dtype=np.float64))
    removed = float(np.sum(power * (1.0 - gain * gain), dtype=np.float64))
    if total <= 0 or removed <= total * 10.0 ** (s.bypass_below_db / 10.0):
        return None
    spec *= gain
    return stft.istft(spec, k1=x1.shape[0]).astype(np.float32)


def wiener_denoise(x: np.ndarray, sr: int, settings: WienerSettings = WienerSettings()) -> np.ndarray:
    """Remove steady broadband noise; return float32 audio of the same shape and length as `x`.

    Each channel gets its own noise estimate and gain (noise in a stereo file is usually
    independent per channel and a codec can treat channels differently). Long inputs are
    processed in blocks of `block_s` with `block_context_s` of context and a short crossfade, so
    memory stays bounded. Inputs shorter than one FFT frame, silence, and audio in which no
    broadband noise is found are returned unchanged (as a float32 copy). Levels above full scale
    are kept: nothing is clipped.
    """
    s = settings
    x_in = np.asarray(x)
    x2 = _as_2d(x_in).astype(np.float32, copy=True)
    out = x2
    n = x2.shape[1]
    if n < s.n_fft or not np.all(np.isfinite(x2)):
        return out.reshape(x_in.shape)
    for c in range(x2.shape[0]):
        out[c] = _denoise_channel(x2[c], sr, s)
    return out.reshape(x_in.shape)


def _denoise_channel(x1: np.ndarray, sr: int, s: WienerSettings) -> np.ndarray:
    n = x1.shape[0]
    block = max(int(s.block_s * sr), 4 * s.n_fft)
    context = int(s.block_context_s * sr)
    if n <= block + 2 * context:
        y = _denoise_block(x1, sr, s)
        return x1 if y is None else y
    # Blocks own [k*block, (k+1)*block); each is processed with `context` on both sides, and
    # neighbours crossfade linearly over `fade` samples centred on their shared boundary.
    fade = min(int(0.05 * sr), context)
    out = np.zeros_like(x1)
    starts = list(range(0, n, block))
    for k, a in enumerate(starts):
        b = min(a + block, n)
        lo, hi = max(a - context, 0), min(b + context, n)
        seg = x1[lo:hi]
        y = _denoise_block(seg, sr, s) if seg.shape[0] >= s.n_fft else None
        y = seg if y is None else y
        w = np.zeros(hi - lo, dtype=np.float32)
        own_lo = a - fade // 2 if k > 0 else lo
        own_hi = b + fade // 2 if b < n else hi
        w[own_lo - lo : own_hi - lo] = 1.0
        if k > 0 and fade > 0:
            w[own_lo - lo : own_lo - lo + fade] = np.linspace(0, 1, fade, endpoint=False, dtype=np.float32) + 0.5 / fade
        if b < n and fade > 0:
            w[own_hi - lo - fade : own_hi - lo] = 1.0 - (np.linspace(0, 1, fade, endpoint=False, dtype=np.float32) + 0.5 / fade)
        out[lo:hi] += w * y
    return out
