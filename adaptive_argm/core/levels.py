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


def channels_first(x: np.ndarray) -> np.ndarray:
    """`x` as a `(channels, samples)` view (1-D is one channel), dtype and values untouched.
    Rejects other ranks, and a shape that reads as `(samples, channels)` (soundfile's and
    pedalboard's own layouts differ; a transposed file must fail loudly, not be filtered across
    its channels)."""
    x = np.asarray(x)
    if x.ndim == 1:
        return x[np.newaxis, :]
    if x.ndim != 2:
        raise ValueError(f"expected (channels, samples) or (samples,), got shape {x.shape}")
    if x.shape[0] > 16 and x.shape[1] <= 16:
        raise ValueError(f"shape {x.shape} looks like (samples, channels); pass (channels, samples)")
    return x


def as_2d(y: np.ndarray) -> np.ndarray:
    """(channels, samples) view or float32 copy; rejects empty and non-finite audio."""
    y = channels_first(y)
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
    """RMS over all channels and samples in dBFS, summed in float64 piece by piece; -inf for silence."""
    ms = energy(x) / np.size(x) if np.size(x) else 0.0
    return 10.0 * np.log10(ms) if ms > 0 else float("-inf")


_SUM_CHUNK = 1 << 18


def energy(x: np.ndarray) -> float:
    """Sum of squares over all channels and samples, in float64 piece by piece (no full copy)."""
    x2 = np.atleast_2d(x)
    return float(sum(np.dot(c[s:s + _SUM_CHUNK].astype(np.float64), c[s:s + _SUM_CHUNK].astype(np.float64))
                     for c in x2 for s in range(0, x2.shape[1], _SUM_CHUNK)))


def difference_and_energy(y: np.ndarray, x: np.ndarray) -> tuple[float, float, float]:
    """How far `y` is from `x` (one shape), and how loud `y` is: the largest |y - x|, the energy
    of y - x and the energy of `y` (as `energy`), piece by piece in float64, each piece of each
    converted once (no full-size difference array)."""
    y2, x2 = np.atleast_2d(y), np.atleast_2d(x)
    if y2.shape != x2.shape:
        raise ValueError(f"difference needs one shape, got {y2.shape} and {x2.shape}")
    largest, total, own = 0.0, 0.0, 0.0
    for yc, xc in zip(y2, x2):
        for s in range(0, y2.shape[1], _SUM_CHUNK):
            y64 = yc[s:s + _SUM_CHUNK].astype(np.float64)
            if not y64.size:
                continue
            own += float(np.dot(y64, y64))
            d = xc[s:s + _SUM_CHUNK].astype(np.float64)
            np.subtract(y64, d, out=d)
            total += float(np.dot(d, d))
            largest = max(largest, float(np.abs(d, out=d).max()))
    return largest, total, own


def ratio_db(numerator: float, denominator: float) -> float:
    """10 log10 of an energy ratio; -inf when the numerator is 0, NaN when the denominator is."""
    if denominator <= 0:
        return math.nan
    return 10.0 * math.log10(numerator / denominator) if numerator > 0 else -math.inf


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
    """Integrated loudness, ITU-R BS.1770, all channels; NaN under 0.4 s, -inf for silence
    (`LoudnessMeter` over one block)."""
    y2 = as_2d(y)
    meter = LoudnessMeter(sr, y2.shape[0])
    meter.push(y2)
    return meter.lufs()


class LoudnessMeter:
    """Integrated loudness, ITU-R BS.1770, of `(channels, m)` audio pushed block by block: the
    K-weighting filters carry their state from block to block and only the energy at the gating
    blocks' edges is kept, so an hour costs a few kilobytes. BS.1770 weights at most five
    channels: beyond that, each channel is measured alone and their loudness summed in power
    (unit weights), which keeps loudness changes exact.

    pyloudnorm's `Meter.integrated_loudness` (K-weighting and gating, its block bounds) to 1e-6 LU,
    and the same number however the audio is cut into blocks (it is filtered in fixed chunks):
    pyloudnorm holds a copy of the input and a float64 copy of each channel (0.6 GB on 10
    minutes of stereo) and sums blocks in Python."""

    def __init__(self, sr: int, channels: int):
        self.sr, self.channels = sr, channels
        # Both biquads as second-order sections, all channels in one call: half the time of two
        # `lfilter` calls per channel, the same filter to 1e-12.
        self._sos = np.array([np.concatenate([b, a]) for b, a in k_weighting(sr)])
        self._state = np.zeros((len(self._sos), channels, 2))
        self._pending: list[np.ndarray] = []
        self._pending_frames = 0
        self.frames = 0
        self._filtered = 0  # frames filtered so far
        self._total = np.zeros(channels)  # squared K-weighted energy before `_filtered`
        self._edges: list[int] = []  # positions of gating-block edges, ascending, all distinct
        self._energy: list[np.ndarray] = []  # energy before each edge, per channel
        self._next_j = 0

    def push(self, block: np.ndarray) -> None:
        """The next `(channels, m)` block (finite float audio)."""
        if block.shape[1] == 0:
            return
        self._pending.append(np.asarray(block))
        self._pending_frames += block.shape[1]
        self.frames += block.shape[1]
        while self._pending_frames >= _LOUDNESS_CHUNK:
            self._filter(_LOUDNESS_CHUNK)

    def lufs(self) -> float:
        """The integrated loudness of everything pushed (NaN under 0.4 s, -inf for silence)."""
        if self.frames < LOUDNESS_MIN_S * self.sr:
            return math.nan
        while self._pending_frames:
            self._filter(min(self._pending_frames, _LOUDNESS_CHUNK))
        n, sr = self.frames, self.sr
        t_g, step = LOUDNESS_BLOCK_S, 1.0 - LOUDNESS_OVERLAP
        j = np.arange(int(np.round((n / sr - t_g) / (t_g * step))) + 1)
        lo = np.minimum((t_g * (j * step) * sr).astype(np.int64), n)
        hi = np.minimum((t_g * (j * step + 1) * sr).astype(np.int64), n)
        edges = np.array([0, *self._edges, n], np.int64)
        energy = np.stack([np.zeros(self.channels), *self._energy, self._total])
        at = lambda p: energy[np.searchsorted(edges, p)].T  # noqa: E731 - energy before position p
        z = (at(hi) - at(lo)) / (t_g * sr)
        if self.channels <= len(BS1770_GAINS):
            return _gated_loudness(z, np.array(BS1770_GAINS[: self.channels]))
        per_channel = np.array([_gated_loudness(z[i : i + 1], np.ones(1)) for i in range(self.channels)])
        return float(10 * np.log10(np.sum(10 ** (per_channel / 10)))) if np.any(np.isfinite(per_channel)) else -math.inf

    def _filter(self, count: int) -> None:
        """K-weight the next `count` pending frames and record the energy at the edges inside."""
        data = np.concatenate(self._pending, axis=1) if len(self._pending) > 1 else self._pending[0]
        seg_all, rest = data[:, :count], data[:, count:]
        self._pending = [rest] if rest.shape[1] else []
        self._pending_frames -= count
        start = self._filtered
        edges = self._edges_up_to(start + count)
        inside = edges[(edges > start) & (edges <= start + count)]
        seg, self._state = scipy.signal.sosfilt(self._sos, seg_all.astype(np.float64), axis=-1, zi=self._state)
        np.square(seg, out=seg)
        cumulative = np.cumsum(seg, axis=1)
        cumulative += self._total[:, None]
        recorded = cumulative[:, inside - start - 1].T
        self._total = cumulative[:, -1].copy()
        self._edges.extend(int(e) for e in inside)
        self._energy.extend(recorded)
        self._filtered += count

    def _edges_up_to(self, limit: int) -> np.ndarray:
        """Gating-block edges (both kinds, pyloudnorm's rounding) at or below `limit` not yet
        recorded, ascending; an edge at 0 has no energy before it and needs no record."""
        t_g, step = LOUDNESS_BLOCK_S, 1.0 - LOUDNESS_OVERLAP
        found = []
        while True:
            j = np.arange(self._next_j, self._next_j + 1024)
            lo = (t_g * (j * step) * self.sr).astype(np.int64)
            hi = (t_g * (j * step + 1) * self.sr).astype(np.int64)
            found.append(np.concatenate([lo, hi]))
            if lo[-1] > limit:
                break
            self._next_j += 1024
        edges = np.unique(np.concatenate(found))
        recorded_up_to = self._edges[-1] if self._edges else 0
        return edges[(edges > recorded_up_to) & (edges <= limit)]


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
