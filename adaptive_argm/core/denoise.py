"""Remove steady broadband noise (hiss) from music with a level-aware Wiener filter, and leave
audio that carries no such noise untouched.

Why this design (NOTES.md, "What we measured about denoising"): MusicGen mixes are dense and
steady, so "quiet frame" noise profiles and plain minimum statistics take the music for noise and
cut it. What works is a minimum-statistics noise estimate (smoothed periodogram, sliding minimum
over 1.5 s, bias correction) clamped from above by ONE flat level: the lowest sub-band median
between 2 and 15 kHz, where hiss is most exposed, skipping empty sub-bands. Added here, and
measured on musicgen-dev: a sub-band only counts if it is as steady over time as noise (its
median-to-minimum ratio is close to white noise's), else bright steady music (electronic mixes)
was read as hiss and cut by up to 14 dB SI-SDR. Then a decision-directed Wiener gain with a gain
floor on a 2048-point STFT. When no steady sub-band is found, or the gain would remove next to
nothing, the input is returned bit for bit: clean, band-limited and codec-only audio pass through.

Known limits: coloured (pink) noise is under-estimated (the clamp is set where it is quietest), so
the filter does too little; hiss that lies below a music floor in every sub-band is left alone.

Levels: every power spectral density here is "power per bin" normalised so that white noise with
an RMS of -45 dBFS reads 10**(-45/10) in every bin. A level in dB is therefore the RMS, in dBFS, of
the full-band white noise that would have that density.

Pure numpy/scipy; audio is `(channels, samples)` float (1-D accepted), processed as float32.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from functools import lru_cache

import numpy as np
from scipy.ndimage import minimum_filter1d, uniform_filter1d

from . import spectral
from .blocks import Blocking, Stage, apply, blockwise

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
    bias_correction_db: float = -2.0
    """Added to the automatic bias correction of the minimum (dB). The automatic part is measured
    once per STFT/smoothing/window combination on white noise, so 0 gives an unbiased estimate of
    steady noise. The default under-estimates by 2 dB on purpose: over-estimating the noise cuts
    music (costly), under-estimating leaves a little hiss (cheap)."""
    clamp_low_hz: float = 2000.0
    """Lower edge of the band whose quietest sub-band sets the flat clamp level (Hz)."""
    clamp_high_hz: float = 15000.0
    """Upper edge of that band (Hz). MusicGen never has content above 16 kHz."""
    clamp_band_octaves: float = 1.0 / 3.0
    """Width of the sub-bands between `clamp_low_hz` and `clamp_high_hz` (octaves)."""
    steady_excess_max_db: float = 2.5
    """A sub-band is trusted as steady noise only if its smoothed periodogram's median-to-minimum
    ratio (median over time / sliding minimum, median over bins) exceeds that of steady white
    noise by at most this much (dB). Music fluctuates, so music-dominated sub-bands show a larger
    ratio; they are skipped. No trusted sub-band: no measurable hiss, the filter does nothing."""
    steady_excess_correction: float = 1.5
    """A trusted sub-band's level is lowered by this many dB per dB of excess ratio (unitless):
    music under the noise lifts both. About 1 is unbiased on musicgen-dev; 1.5 errs low."""
    empty_band_below_db: float = -110.0
    """A sub-band whose median estimate is below this level holds no noise and no music (a codec
    or resampler cut it away); it is skipped when picking the clamp level (dB, see module doc)."""
    empty_band_drop_db: float = 30.0
    """A sub-band more than this far below the loudest sub-band (median estimates, dB) is also
    taken as cut away (a lowpass with a finite stop band) and skipped."""
    dd_alpha: float = 0.9
    """Decision-directed smoothing of the a-priori SNR (0..1, per hop); higher = fewer
    musical-noise artefacts but smeared onsets and more cut music. 0.98 (speech's usual value)
    lost 2 dB SI-SDR on MusicGen mixes; 0.75-0.9 is a plateau."""
    gain_floor_db: float = -20.0
    """Lowest gain the filter applies (dB); limits musical noise. -15 to -25 dB is a plateau."""
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
        """The setting names, i.e. the TOML keys a `wiener` preset step accepts."""
        return tuple(f.name for f in fields(cls))


# ---------------------------------------------------------------------------------------------
# STFT helpers: spectra are (frames, bins), on scipy's covering grid (every sample under the same
# number of frames, so a gain of 1 reconstructs exactly).


def _grid(n: int, s: WienerSettings) -> tuple[int, int]:
    return spectral.covering_grid(n, s.hop, s.n_fft)


def _frames(seconds: float, sr: int, hop: int) -> int:
    return max(1, int(round(seconds * sr / hop)))


def _interior(n: int, s: WienerSettings) -> slice:
    return spectral.interior(n, s.hop, s.n_fft, *_grid(n, s))


def _channel_power(x1: np.ndarray, s: WienerSettings) -> tuple[np.ndarray, np.ndarray]:
    """(complex64 STFT, normalised float32 power (module doc)) of one channel."""
    spec = spectral.stft(x1, s.n_fft, s.hop, *_grid(x1.shape[-1], s))
    power = spectral.power(spec)
    power *= np.float32(1.0 / np.sum(spectral.hann(s.n_fft) ** 2))
    return spec, power


def _track_stats(power: np.ndarray, sr: int, s: WienerSettings) -> tuple[np.ndarray, np.ndarray]:
    """Per bin: median over time of the minimum track (sliding minimum of the smoothed
    periodogram, not bias-corrected), and the median over time of the smoothed periodogram
    divided by it (the "median-to-minimum ratio", linear)."""
    # (bins, frames) in memory: filters and medians along contiguous rows run ~2x faster.
    p = np.ascontiguousarray(power.T)
    smooth = _frames(s.smoothing_s, sr, s.hop)
    if smooth > 1:
        p = uniform_filter1d(p, smooth, axis=1, mode="nearest")
    width = _frames(s.min_window_s, sr, s.hop)
    track = minimum_filter1d(p, width, axis=1, mode="nearest")
    low = np.median(track, axis=1)
    ratio = np.median(p, axis=1) / np.maximum(low, _TINY)
    return low, ratio


@lru_cache(maxsize=16)
def _white_noise_calibration(
    n_fft: int, hop: int, sr: int, smoothing_s: float, min_window_s: float
) -> tuple[float, float]:
    """(bias, ratio_db) of steady white noise, measured once on a fixed-seed simulation:
    bias = true PSD / median minimum track; ratio_db = its median-to-minimum ratio in dB."""
    s = WienerSettings(n_fft=n_fft, hop=hop, smoothing_s=smoothing_s, min_window_s=min_window_s)
    n = max(int(20 * sr), int(8 * (min_window_s + smoothing_s) * sr), 8 * n_fft)
    noise = np.random.default_rng(12345).standard_normal(n).astype(np.float32)
    power = _channel_power(noise, s)[1][_interior(n, s), 1:-1]  # no DC/Nyquist bins
    low, ratio = _track_stats(power, sr, s)
    return float(1.0 / max(float(np.median(low)), _TINY)), float(10 * np.log10(np.median(ratio)))


def _as_2d(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim == 1:
        return x[None, :]
    if x.ndim != 2:
        raise ValueError(f"expected (channels, samples) or (samples,), got shape {x.shape}")
    if x.shape[0] > 16 and x.shape[1] <= 16:
        raise ValueError(f"shape {x.shape} looks like (samples, channels); "
                         "pass (channels, samples)")
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
    """Noise PSD per bin from a normalised power spectrogram of one channel (interior frames
    only): min(minimum statistics, flat clamp level). All zeros when none is measurable."""
    bias, white_ratio_db = _white_noise_calibration(
        s.n_fft, s.hop, sr, s.smoothing_s, s.min_window_s
    )
    bias *= 10.0 ** (s.bias_correction_db / 10.0)
    low, ratio = _track_stats(power, sr, s)
    per_bin = low * bias
    ratio_db = 10 * np.log10(np.maximum(ratio, _TINY))
    empty = 10.0 ** (s.empty_band_below_db / 10.0)
    bands = _band_edges(sr, s.n_fft, s)
    band_levels = [float(np.median(per_bin[lo:hi])) for lo, hi in bands]
    empty = max(empty, max(band_levels, default=0.0) * 10.0 ** (-s.empty_band_drop_db / 10.0))
    levels = []
    for (lo, hi), level in zip(bands, band_levels):
        excess_db = float(np.median(ratio_db[lo:hi])) - white_ratio_db
        if level < empty or excess_db > s.steady_excess_max_db:
            continue  # cut away by a codec or resampler, or music rather than steady noise
        levels.append(level * 10.0 ** (-s.steady_excess_correction * max(excess_db, 0.0) / 10.0))
    if not levels:  # no steady noise measurable between clamp_low_hz and clamp_high_hz
        return np.zeros(per_bin.shape, dtype=np.float32)
    return np.minimum(per_bin, min(levels)).astype(np.float32)


def estimate_noise_psd(
    x: np.ndarray, sr: int, settings: WienerSettings = WienerSettings()
) -> np.ndarray:
    """Steady broadband noise power per STFT bin of ONE channel: shape `(n_fft // 2 + 1,)`.

    The estimate is constant over time (one value per bin for the whole input; `wiener_denoise`
    makes one per block of `block_s`). Minimum statistics: periodogram smoothed over
    `smoothing_s`, sliding minimum over `min_window_s`, median over time, bias-corrected. Then
    clamped from above by one flat level: the lowest sub-band median between `clamp_low_hz` and
    `clamp_high_hz`, skipping empty sub-bands and sub-bands that fluctuate like music rather than
    steady noise (`steady_excess_max_db`). Units: see the module doc (white noise at -45 dBFS RMS
    reads 10**(-45/10) in every bin). Accepts 1-D or one-row 2-D input. All zeros when the input
    is shorter than `n_fft` or holds no measurable steady noise.
    """
    x2 = _as_2d(x)
    if x2.shape[0] != 1:
        raise ValueError("estimate_noise_psd takes one channel; call it per channel")
    x1 = np.asarray(x2[0], dtype=np.float32)
    if x1.shape[0] < settings.n_fft or not np.all(np.isfinite(x1)):
        return np.zeros(settings.n_fft // 2 + 1, dtype=np.float32)
    _, power = _channel_power(x1, settings)
    return _noise_from_power(power[_interior(x1.shape[0], settings)], sr, settings)


def detect_noise_level_db(
    x: np.ndarray, sr: int, settings: WienerSettings = WienerSettings()
) -> float:
    """The hiss level as one number: the flat clamp level of the loudest channel, expressed as the
    RMS in dBFS of full-band white noise with that density (white noise added at -45 dBFS reads
    about -47 dB: the default under-estimates by 2 dB on purpose). -inf when none is found."""
    x2 = _as_2d(x)
    levels = [float(np.max(estimate_noise_psd(ch, sr, settings))) for ch in x2]
    top = max(levels, default=0.0)
    return float(10 * np.log10(top)) if top > 0 else float("-inf")


# ---------------------------------------------------------------------------------------------
# Filter


def _dd_wiener_gain(power: np.ndarray, noise: np.ndarray, s: WienerSettings) -> np.ndarray:
    """Decision-directed Wiener gain (frames, bins), float32, floored at `gain_floor_db`.

    xi_t = alpha * G_{t-1}^2 * gamma_{t-1} + (1 - alpha) * max(gamma_t - 1, 0),
    G_t = xi_t / (1 + xi_t), with gamma = |X|^2 / noise the a-posteriori SNR.
    Bins without noise keep gain 1. Only the recursion itself runs frame by frame."""
    alpha = np.float32(s.dd_alpha)
    has_noise = noise > 0
    inv_noise = np.zeros(noise.shape, dtype=np.float32)
    inv_noise[has_noise] = 1.0 / noise[has_noise]
    gamma = power * inv_noise
    gain = np.maximum(gamma - np.float32(1.0), np.float32(0.0))
    gain *= np.float32(1.0) - alpha  # the ML part of xi, overwritten frame by frame by G
    prev = np.zeros(power.shape[1], dtype=np.float32)  # G^2 * gamma of the previous frame
    for g, g_t in zip(gain, gamma):
        g += alpha * prev  # now xi_t
        g /= np.float32(1.0) + g
        prev = g * g * g_t
    np.maximum(gain, np.float32(10.0 ** (s.gain_floor_db / 20.0)), out=gain)
    gain[:, ~has_noise] = 1.0
    return gain


def _denoise_block(x1: np.ndarray, sr: int, s: WienerSettings) -> np.ndarray | None:
    """Denoise one channel's block; None when there is nothing (worth) removing."""
    n = x1.shape[0]
    spec, power = _channel_power(x1, s)
    noise = _noise_from_power(power[_interior(n, s)], sr, s)
    if not np.any(noise > 0):
        return None
    gain = _dd_wiener_gain(power, noise, s)
    total = float(np.sum(power, dtype=np.float64))
    removed = total - float(np.sum(power * gain * gain, dtype=np.float64))
    if removed <= total * 10.0 ** (s.bypass_below_db / 10.0):
        return None
    spec *= gain
    return spectral.istft(spec, s.n_fft, s.hop, _grid(n, s)[0], n)


def blocking(sr: int, s: WienerSettings) -> Blocking:
    """Blocks of `block_s` with `block_context_s` of context on each side and a 50 ms
    crossfade around each boundary; a signal up to one block plus its context is one block."""
    block = max(int(s.block_s * sr), 4 * s.n_fft)
    context = max(int(s.block_context_s * sr), 0)
    return Blocking(block=block, context=context, fade=min(int(0.025 * sr), context // 2), whole_up_to=block + context)


def _denoise_segment(seg: np.ndarray, sr: int, s: WienerSettings) -> np.ndarray:
    """One block of every channel, each with its own estimate; a channel with nothing (worth)
    removing, or shorter than one frame, is returned as it is."""
    out = seg
    for c, channel in enumerate(seg):
        y = _denoise_block(channel, sr, s) if channel.shape[0] >= s.n_fft else None
        if y is not None:
            out = np.array(seg) if out is seg else out
            out[c] = y
    return out


def stage(sr: int, settings: WienerSettings, frames: int, channels: int) -> Stage:
    """The denoiser as a block stage over a stream of `frames` frames (`blocking`)."""
    return lambda blocks: blockwise(blocks, frames, channels, blocking(sr, settings),
                                    lambda seg, first: _denoise_segment(seg, sr, settings))


def wiener_denoise(
    x: np.ndarray, sr: int, settings: WienerSettings = WienerSettings(), *, out: np.ndarray | None = None
) -> np.ndarray:
    """Remove steady broadband noise; return float32 audio of the same shape and length as `x`.

    Each channel gets its own noise estimate and gain: noise in a stereo file is usually
    independent per channel, a codec can treat the channels differently, and a channel without
    hiss must not be filtered because the other one has some. Long inputs are processed in blocks
    of `block_s` (each with its own estimate, `block_context_s` of context and a 50 ms
    crossfade), so memory stays bounded. Returned unchanged (as a float32 copy): inputs shorter
    than `n_fft`, inputs with NaN/inf, silence, and any channel or block in which no steady
    broadband noise is found or the filter would remove less than `bypass_below_db` of the
    energy (clean or codec-only audio). Nothing is clipped; DC passes through (remove it first).

    `out`: a float32 array of `x`'s shape to write the result into; it may be `x` itself
    (filtered in place, one channel of scratch memory instead of a copy of the whole input).
    """
    s = settings
    x_in = np.asarray(x)
    x2 = _as_2d(x_in)
    if out is None:
        out2 = x2.astype(np.float32, copy=True)
    else:
        out2 = _as_2d(out)
        if out2.shape != x2.shape or out2.dtype != np.float32:
            raise ValueError(f"out must be float32 of shape {x2.shape}")
        if not np.shares_memory(out2, x2):
            out2[...] = x2
    if out2.shape[1] >= s.n_fft and np.all(np.isfinite(out2)):
        apply(stage(sr, s, out2.shape[1], out2.shape[0]), out2, out=out2)
    return out2.reshape(x_in.shape)
