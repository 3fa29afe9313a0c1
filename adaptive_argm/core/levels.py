"""Levels of `(channels, samples)` audio: dB conversions, peak, RMS, and ITU-R BS.1770 integrated
loudness with its K-weighting filters owned here.

Everything above this module (the chains in `dsp`, the metric panel, the router, the benchmark)
takes its levels from here, so a level is measured one way everywhere. Arrays are float audio,
`(channels, samples)` or 1-D mono, full scale = 1.0.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import scipy.signal

POWER_FLOOR = 1e-10
"""Power floor before taking dB (librosa's `amin`): digital silence reads -100 dB."""

LOUDNESS_MIN_S = 0.4
"""BS.1770 gating blocks are 400 ms; shorter audio has no integrated loudness."""
LOUDNESS_BLOCK_S = 0.4
LOUDNESS_OVERLAP = 0.75
"""Gating blocks: 400 ms, 75 % overlap (BS.1770-4)."""
BS1770_GAINS = (1.0, 1.0, 1.0, 1.41, 1.41)
"""Channel weights (L, R, C, Ls, Rs)."""
BS1770_ABSOLUTE_GATE_LUFS = -70.0
BS1770_RELATIVE_GATE_LU = -10.0
K_SHELF = (4.0, 1 / np.sqrt(2), 1500.0)
"""K-weighting stage 1, a high shelf: gain dB, Q, corner Hz."""
K_HIGH_PASS = (0.0, 0.5, 38.0)
"""K-weighting stage 2, the RLB high pass: gain dB (unused), Q, corner Hz."""
_LOUDNESS_CHUNK = 1 << 18
"""Samples per filter call (6 s at 44.1 kHz): bounds the float64 scratch to a few MB."""


# --- arrays as measured -----------------------------------------------------------------------


def as_2d(y: np.ndarray) -> np.ndarray:
    """(channels, samples) view or float32 copy; rejects empty and non-finite audio."""
    y = np.asarray(y)
    if y.ndim == 1:
        y = y[np.newaxis, :]
    if y.ndim != 2:
        raise ValueError(f"audio must be 1-D or (channels, samples), got shape {y.shape}")
    if y.shape[1] == 0:
        raise ValueError("audio is empty")
    y = y.astype(np.float32, copy=False)
    if not np.all(np.isfinite(y)):
        raise ValueError("audio contains NaN or infinite samples")
    return y


def downmix(y2: np.ndarray) -> np.ndarray:
    """The mono downmix (mean over channels) of `(channels, samples)` audio, float32."""
    return y2[0] if y2.shape[0] == 1 else y2.mean(axis=0, dtype=np.float32)


# --- dB ---------------------------------------------------------------------------------------


def power_db(power: np.ndarray | float, floor: float = POWER_FLOOR) -> np.ndarray:
    """10 log10 of a power (mean square, |STFT|^2), floored at `floor` first."""
    return 10.0 * np.log10(np.maximum(power, floor))


def scaled(y: np.ndarray, gain_db: float) -> np.ndarray:
    """`y` times a gain in dB, as one new float32 array (no float64 or second copy)."""
    return np.multiply(y, np.float32(10 ** (gain_db / 20)), dtype=np.float32)


def peak(x: np.ndarray) -> float:
    """Sample peak over all channels, linear (full scale = 1.0); 0 for empty audio."""
    return max(float(np.max(x)), -float(np.min(x))) if np.size(x) else 0.0  # no |x| copy


def peak_dbfs(x: np.ndarray) -> float:
    """Sample peak in dBFS (full scale = 1.0); -inf for digital silence."""
    p = peak(x)
    return 20.0 * math.log10(p) if p > 0 else float("-inf")


def rms_dbfs(x: np.ndarray) -> float:
    """RMS over all channels and samples in dBFS, summed in float64; -inf for silence."""
    ms = float(np.mean(np.asarray(x, dtype=np.float64) ** 2)) if np.size(x) else 0.0
    return 10.0 * np.log10(ms) if ms > 0 else float("-inf")


# --- BS.1770 loudness -------------------------------------------------------------------------


def _biquad(gain_db: float, q: float, corner_hz: float, sr: float, shape: str) -> tuple[np.ndarray, np.ndarray]:
    """RBJ cookbook biquad, normalised to a0 = 1, term by term as pyloudnorm writes it (so the
    coefficients are bit for bit pyloudnorm's)."""
    A = 10 ** (gain_db / 40.0)
    w0 = 2.0 * np.pi * (corner_hz / sr)
    alpha = np.sin(w0) / (2.0 * q)
    if shape == "high_shelf":
        b0 = A * ((A + 1) + (A - 1) * np.cos(w0) + 2 * np.sqrt(A) * alpha)
        b1 = -2 * A * ((A - 1) + (A + 1) * np.cos(w0))
        b2 = A * ((A + 1) + (A - 1) * np.cos(w0) - 2 * np.sqrt(A) * alpha)
        a0 = (A + 1) - (A - 1) * np.cos(w0) + 2 * np.sqrt(A) * alpha
        a1 = 2 * ((A - 1) - (A + 1) * np.cos(w0))
        a2 = (A + 1) - (A - 1) * np.cos(w0) - 2 * np.sqrt(A) * alpha
    else:  # high_pass
        b0 = (1 + np.cos(w0)) / 2
        b1 = -(1 + np.cos(w0))
        b2 = (1 + np.cos(w0)) / 2
        a0 = 1 + alpha
        a1 = -2 * np.cos(w0)
        a2 = 1 - alpha
    return np.array([b0, b1, b2]) / a0, np.array([a0, a1, a2]) / a0


def k_weighting(sr: float) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """The two K-weighting biquads `(b, a)` at `sr`. BS.1770-4 tabulates them at 48 kHz only;
    like pyloudnorm, we re-derive them for any rate from the RBJ shelf and high pass that
    reproduce the 48 kHz response (tests/test_levels.py checks both against pyloudnorm)."""
    return (_biquad(*K_SHELF, sr, "high_shelf"), _biquad(*K_HIGH_PASS, sr, "high_pass"))


def loudness_lufs(y: np.ndarray, sr: int) -> float:
    """Integrated loudness, ITU-R BS.1770, all channels; NaN under 0.4 s, -inf for silence.
    BS.1770 weights at most five channels: beyond that, each channel is measured alone and their
    loudness summed in power (unit weights), which keeps loudness changes exact.

    pyloudnorm's `Meter.integrated_loudness` (K-weighting and gating) to 1e-6 LU, but filtered
    a chunk at a time: pyloudnorm holds a copy of the input and a float64 copy of each channel
    (0.6 GB on 10 minutes of stereo) and sums blocks in Python."""
    y2 = as_2d(y)
    if y2.shape[1] < LOUDNESS_MIN_S * sr:
        return math.nan
    z = _block_mean_squares(y2, sr)
    if y2.shape[0] <= len(BS1770_GAINS):
        return _gated_loudness(z, np.array(BS1770_GAINS[: y2.shape[0]]))
    per_channel = np.array([_gated_loudness(z[i : i + 1], np.ones(1)) for i in range(z.shape[0])])
    return float(10 * np.log10(np.sum(10 ** (per_channel / 10)))) if np.any(np.isfinite(per_channel)) else -math.inf


def _block_mean_squares(y2: np.ndarray, sr: int) -> np.ndarray:
    """Mean square of each K-weighted channel over each gating block, `(channels, blocks)`, with
    pyloudnorm's block bounds: from cumulative energies at the block edges, filtered chunk by
    chunk with the filter state carried over."""
    n = y2.shape[1]
    t_g, step = LOUDNESS_BLOCK_S, 1.0 - LOUDNESS_OVERLAP
    j = np.arange(int(np.round((n / sr - t_g) / (t_g * step))) + 1)
    lo = np.minimum((t_g * (j * step) * sr).astype(np.int64), n)
    hi = np.minimum((t_g * (j * step + 1) * sr).astype(np.int64), n)
    edges = np.unique(np.concatenate([lo, hi]))
    stages = k_weighting(sr)
    z = np.empty((y2.shape[0], j.size))
    for c, channel in enumerate(y2):
        states = [np.zeros(max(len(b), len(a)) - 1) for b, a in stages]
        energy = np.zeros(edges.size)  # sum of squares before each edge
        total = 0.0
        for start in range(0, n, _LOUDNESS_CHUNK):
            seg = channel[start : start + _LOUDNESS_CHUNK].astype(np.float64)
            for k, (b, a) in enumerate(stages):
                seg, states[k] = scipy.signal.lfilter(b, a, seg, zi=states[k])
            cumulative = total + np.cumsum(seg * seg)
            inside = (edges > start) & (edges <= start + seg.size)
            energy[inside] = cumulative[edges[inside] - start - 1]
            total = float(cumulative[-1])
        z[c] = (energy[np.searchsorted(edges, hi)] - energy[np.searchsorted(edges, lo)]) / (t_g * sr)
    return z


def _gated_loudness(z: np.ndarray, gains: np.ndarray) -> float:
    """BS.1770 gated loudness from block mean squares `z` (channels, blocks), as pyloudnorm."""
    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # no block above a gate: mean of nothing
        block = -0.691 + 10.0 * np.log10(gains @ z)
        kept = block >= BS1770_ABSOLUTE_GATE_LUFS
        relative = -0.691 + 10.0 * np.log10(gains @ z[:, kept].mean(axis=1)) + BS1770_RELATIVE_GATE_LU
        kept = (block > relative) & (block > BS1770_ABSOLUTE_GATE_LUFS)
        mean = np.nan_to_num(z[:, kept].mean(axis=1))
        return float(-0.691 + 10.0 * np.log10(gains @ mean))
