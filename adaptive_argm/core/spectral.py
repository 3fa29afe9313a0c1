"""Short-time Fourier analysis shared by the denoiser, the metrics and the figures: the STFT and
its inverse on an explicit frame grid, and librosa's mel filterbank and dB conversion.

Why not call librosa and scipy directly: librosa's first STFT or mel call in a process costs
about 1 s of numba import and compilation (7 % of separating a 30 s clip on two cores), and
scipy's `ShortTimeFFT` transforms frame by frame in a Python loop that holds the GIL, so stems
restored in parallel threads ran one after the other. Here each transform is one `scipy.fft`
call over all frames (it releases the GIL). The functions reproduce librosa's (`stft` with
`center=True`, `filters.mel`, `mel_frequencies`, `hz_to_mel`, `power_to_db`) and
`tests/test_spectral.py` checks them against librosa itself.

Arrays are `(..., samples)` in and `(..., frames, bins)` out: time runs along the frames axis.
Every spectrogram in the package keeps that layout.
"""

from __future__ import annotations

import functools
import math
from typing import Iterator

import numpy as np
import scipy.fft

from .levels import downmix

# --- the analysis grid of the metric panel, the intrusive scores and the figures ---------------
N_FFT = 2048
HOP = 512
N_MELS = 128
"""The paper's analysis settings (librosa's `melspectrogram` defaults): 2048-sample frames, 512
apart, 128 Slaney mel bands."""
CHUNK_FRAMES = 2048
"""Frames per transform when a long signal is analysed piece by piece: bounds the complex
temporary to about 17 MB."""


@functools.lru_cache(maxsize=8)
def hann(n_fft: int) -> np.ndarray:
    """Periodic Hann window (librosa's and scipy's `hann(n, sym=False)`), float64, read-only."""
    w = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_fft) / n_fft)
    w.flags.writeable = False
    return w


# --- frame grids ------------------------------------------------------------------------------
# A grid is (first, count): frame k covers samples [first + k * hop, first + k * hop + n_fft);
# samples outside the signal read as zeros.


def centred_grid(n: int, hop: int, n_fft: int) -> tuple[int, int]:
    """librosa's `center=True` framing: frame k is centred on sample k * hop."""
    return -(n_fft // 2), 1 + n // hop


def covering_grid(n: int, hop: int, n_fft: int) -> tuple[int, int]:
    """Every frame centred on a multiple of `hop` that overlaps the signal (scipy's
    `ShortTimeFFT` grid): every sample is covered by the same number of frames, so the
    inverse is exact at the edges too."""
    mid = n_fft // 2
    p_min = (mid - n_fft) // hop + 1
    p_max = -(-(n + mid) // hop)
    return p_min * hop - mid, p_max - p_min


def interior(n: int, hop: int, n_fft: int, first: int, count: int) -> slice:
    """The frames of a grid that lie wholly inside the signal (the zero-padded edge frames drag
    minima down and splatter onsets); all of them when none does."""
    lo = max(0, -(first // hop))
    hi = min(count, (n - n_fft - first) // hop + 1)
    return slice(lo, hi) if hi > lo else slice(0, count)


# --- transforms -------------------------------------------------------------------------------


def stft(x: np.ndarray, n_fft: int, hop: int, first: int, count: int,
         dtype: type = np.float32) -> np.ndarray:
    """Windowed one-sided spectra of `count` frames of `x` (`(..., samples)`), frame k starting
    at sample `first + k * hop`: shape `(..., count, n_fft // 2 + 1)`, complex of `dtype`'s
    precision. Only the samples the frames cover are copied (zero padded at the edges)."""
    x = np.asarray(x)
    n = x.shape[-1]
    span = (count - 1) * hop + n_fft
    lo, hi = max(first, 0), min(first + span, n)
    seg = np.zeros(x.shape[:-1] + (span,), dtype=dtype)
    if hi > lo:
        seg[..., lo - first : hi - first] = x[..., lo:hi]
    frames = np.lib.stride_tricks.sliding_window_view(seg, n_fft, axis=-1)[..., ::hop, :]
    return scipy.fft.rfft(frames * hann(n_fft).astype(dtype), axis=-1)


def overlap_add(frames: np.ndarray, hop: int, count: int) -> np.ndarray:
    """Sum `count` frames (`(..., count, length)`, or one `(..., 1, length)` frame repeated)
    placed `hop` apart: `(..., (count - 1) * hop + length)`. Frames are cut into hop-long
    chunks; chunk j of frame k lands on output chunk k + j, so each j is one vectorised add."""
    length = frames.shape[-1]
    k = math.ceil(length / hop)
    if k * hop != length:
        frames = np.concatenate(
            [frames, np.zeros(frames.shape[:-1] + (k * hop - length,), frames.dtype)], axis=-1)
    chunks = frames.reshape(frames.shape[:-1] + (k, hop))
    lead = np.broadcast_shapes(frames.shape[:-2])
    out = np.zeros(lead + (count + k - 1, hop), dtype=frames.dtype)
    for j in range(k):
        out[..., j : j + count, :] += chunks[..., j, :]
    return out.reshape(lead + (-1,))[..., : (count - 1) * hop + length]


def istft(spec: np.ndarray, n_fft: int, hop: int, first: int, n: int) -> np.ndarray:
    """Inverse of `stft` on the same grid: windowed overlap-add divided by the summed squared
    window (the least-squares inverse), samples `0..n` as float32 `(..., n)`."""
    count = spec.shape[-2]
    frames = scipy.fft.irfft(spec, n=n_fft, axis=-1)
    win = hann(n_fft).astype(frames.dtype)
    frames *= win
    y = overlap_add(frames, hop, count)
    norm = overlap_add((win * win)[np.newaxis], hop, count)
    lo = -first
    out = y[..., lo : lo + n] / np.maximum(norm[lo : lo + n], np.finfo(np.float32).tiny)
    return out.astype(np.float32, copy=False)


def shift_phase(starts: np.ndarray, shift_bins: np.ndarray, n_fft: int) -> np.ndarray:
    """Phase factors that make moving STFT bins up by whole bins an exact modulation:
    `(frames, bins)` complex64 for frames starting at samples `starts` (mod `n_fft` is enough)
    and a shift of `shift_bins` (one per bin, or one for all). Shifting by d bins is a
    modulation by exp(2j pi d m / n_fft): the frame starting at sample m takes that factor, so
    the moved frames overlap-add coherently and keep their time envelope."""
    return np.exp(2j * np.pi * np.outer(starts, shift_bins) / n_fft).astype(np.complex64)


class Synthesis:
    """The inverse of `stft` built up a run of frames at a time, so that only one run's spectra
    are held: `add(t0, spec)` for the frames `t0..` of the grid, then `result()` is samples
    `0..n`, float32 `(channels, n)` (frames never added count as silence)."""

    def __init__(self, channels: int, n: int, n_fft: int, hop: int, first: int, count: int):
        self.n, self.n_fft, self.hop, self.first, self.count = n, n_fft, hop, first, count
        self.win = hann(n_fft).astype(np.float32)
        self.acc = np.zeros((channels, (count - 1) * hop + n_fft), dtype=np.float32)

    def add(self, t0: int, spec: np.ndarray) -> None:
        m = spec.shape[-2]
        frames = scipy.fft.irfft(spec, n=self.n_fft, axis=-1).astype(np.float32) * self.win
        self.acc[:, t0 * self.hop : (t0 + m - 1) * self.hop + self.n_fft] += overlap_add(frames, self.hop, m)

    def result(self) -> np.ndarray:
        norm = overlap_add((self.win * self.win)[np.newaxis], self.hop, self.count)
        lo = -self.first
        out = self.acc[:, lo : lo + self.n]
        out /= np.maximum(norm[lo : lo + self.n], np.float32(1e-6))
        return out


def transposed(a: np.ndarray, tile: int = 64) -> np.ndarray:
    """A contiguous copy of `a.T` (2-D), written `tile` rows of `a` at a time: numpy's own
    transposing copy strides through memory and took ten times as long on a 30 s spectrogram."""
    out = np.empty(a.shape[::-1], a.dtype)
    for i in range(0, a.shape[0], tile):
        out[:, i:i + tile] = a[i:i + tile].T
    return out


def median_of_sorted(rows: np.ndarray) -> np.ndarray:
    """`np.median(rows, axis=1)` of rows already sorted, the same values: the middle value, or
    the mean of the middle two as numpy takes it."""
    n = rows.shape[1]
    if n == 0:
        return np.median(rows, axis=1)
    return np.mean(rows[:, [n // 2 - 1, n // 2] if n % 2 == 0 else [n // 2]], axis=1)


def percentiles_of_sorted(rows: np.ndarray, q) -> np.ndarray:
    """`np.percentile(rows, q, axis=1)` of rows already sorted (`q` a number or a sequence), the
    same values: numpy's linear interpolation step for step (for a number, in the rows' own
    precision, as numpy takes a Python number), read off the rows, where `np.percentile` copies
    and partitions them again (8 ms for a 30 s spectrogram's rows; numpy sorts float32 rows four
    times as fast as it partitions them, so sorting first pays off as soon as two statistics
    are taken)."""
    n = rows.shape[1]
    if n == 0:
        return np.percentile(rows, q, axis=1)
    virtual = np.atleast_1d((n - 1) * np.true_divide(q, 100))
    previous = np.floor(virtual)
    below = previous.astype(np.intp)
    at_end = virtual >= n - 1
    lo, hi = np.where(at_end, n - 1, below), np.where(at_end, n - 1, below + 1)
    gamma = (virtual - previous)[:, np.newaxis]
    a, b = rows[:, lo].T, rows[:, hi].T
    if type(q) in (int, float):  # numpy takes a Python number's weight as a number too
        t = float(gamma[0, 0])
        diff = b[0] - a[0]
        return b[0] - diff * (1 - t) if t >= 0.5 else a[0] + diff * t
    diff = b - a
    out = a + diff * gamma
    np.subtract(b, diff * (1 - gamma), out=out, where=gamma >= 0.5)
    return out[0] if np.ndim(q) == 0 else out


def power(spec: np.ndarray) -> np.ndarray:
    """|spec|^2 as float32."""
    p = np.square(spec.real, dtype=np.float32)
    p += np.square(spec.imag, dtype=np.float32)
    return p


def power_frames(y: np.ndarray, n_fft: int = N_FFT, hop: int = HOP, chunk_frames: int = CHUNK_FRAMES,
                 dtype: type = np.float32) -> Iterator[tuple[int, np.ndarray]]:
    """Yield `(first frame, |STFT|^2 float32 (frames, n_fft // 2 + 1))` of the mono downmix of `y`
    (1-D or `(channels, samples)`), `chunk_frames` frames at a time, on librosa's centred grid
    (`center=True`, zero padded). Only the samples a chunk covers are downmixed, so neither the
    downmix nor the complex spectrogram of a long file ever exists whole. `dtype` is the
    transform's precision (float64 reproduces librosa, whose float64 window promotes frames)."""
    y2 = np.asarray(y)
    y2 = y2[np.newaxis] if y2.ndim == 1 else y2
    n = y2.shape[1]
    first, n_frames = centred_grid(n, hop, n_fft)
    for f0 in range(0, n_frames, chunk_frames):
        f1 = min(n_frames, f0 + chunk_frames)
        start = first + f0 * hop
        lo, hi = max(start, 0), min(start + (f1 - f0 - 1) * hop + n_fft, n)
        mono = downmix(np.asarray(y2[:, lo:hi], dtype=np.float32))  # `stft` reads zeros outside it
        yield f0, power(stft(mono, n_fft, hop, start - lo, f1 - f0, dtype=dtype))


# --- mel scale (librosa's Slaney defaults) ----------------------------------------------------

_F_SP = 200.0 / 3
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP
_LOGSTEP = math.log(6.4) / 27.0


def hz_to_mel(hz) -> np.ndarray:
    """Slaney's mel scale: linear below 1 kHz, logarithmic above (librosa, `htk=False`)."""
    hz = np.asarray(hz, dtype=np.float64)
    mel = hz / _F_SP
    log = hz >= _MIN_LOG_HZ
    return np.where(log, _MIN_LOG_MEL + np.log(np.maximum(hz, _MIN_LOG_HZ) / _MIN_LOG_HZ) / _LOGSTEP, mel)


def mel_to_hz(mel) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    hz = _F_SP * mel
    log = mel >= _MIN_LOG_MEL
    return np.where(log, _MIN_LOG_HZ * np.exp(_LOGSTEP * (mel - _MIN_LOG_MEL)), hz)


def mel_frequencies(n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """`n_mels` frequencies (Hz) evenly spaced on the mel scale from `fmin` to `fmax`."""
    return mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels))


@functools.lru_cache(maxsize=8)
def mel_filterbank(sr: int, n_fft: int, n_mels: int) -> np.ndarray:
    """librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels): triangular filters from 0 Hz to
    sr / 2, Slaney area normalisation, float32 `(n_mels, n_fft // 2 + 1)`, read-only."""
    fft_hz = np.fft.rfftfreq(n_fft, 1.0 / sr)
    mel_hz = mel_frequencies(n_mels + 2, 0.0, sr / 2.0)
    fdiff = np.diff(mel_hz)
    ramps = np.subtract.outer(mel_hz, fft_hz)
    lower = -ramps[:n_mels] / fdiff[:n_mels, np.newaxis]
    upper = ramps[2:] / fdiff[1:, np.newaxis]
    # Rounded to float32 before the normalisation, as librosa does (bit-identical weights).
    weights = np.maximum(0.0, np.minimum(lower, upper)).astype(np.float32)
    weights *= (2.0 / (mel_hz[2:] - mel_hz[:n_mels]))[:, np.newaxis]
    weights.flags.writeable = False
    return weights


def power_to_db(power: np.ndarray, ref: float | None = None, amin: float = 1e-10,
                top_db: float | None = 80.0) -> np.ndarray:
    """librosa.power_to_db: 10 log10(power / ref), power floored at `amin`; `ref=None` means
    the maximum; values more than `top_db` below the top are raised to it."""
    power = np.asarray(power)
    ref_value = float(np.max(power)) if ref is None else ref
    db = 10.0 * np.log10(np.maximum(amin, power))
    db -= 10.0 * np.log10(max(amin, ref_value))
    if top_db is not None:
        db = np.maximum(db, db.max() - top_db)
    return db
