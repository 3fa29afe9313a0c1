"""ViSQOL v3 in audio mode (`visqol-python`, whose SVR model ships in the wheel): MOS-LQO of an
estimate against a clean reference, at 48 kHz on the mono downmix, after fractional-delay
alignment; and that alignment (`fractional_lag`, `fractional_align`), which every intrusive
score needs so that a resampler's sub-sample shift does not count as damage.
"""

from __future__ import annotations

import logging
import math
from functools import lru_cache

import numpy as np
import scipy.fft
import soxr

VISQOL_SR = 48000
"""Audio mode's rate: its gammatone bank and SVR model were fitted at 48 kHz."""
SOXR_QUALITY = "VHQ"
MAX_LAG_S = 0.002
"""Largest delay `visqol_moslqo` searches (96 samples at 48 kHz): resamplers and the restoration
chains delay by a few samples at most; ViSQOL's own global alignment handles the rest."""
MIN_DURATION_S = 0.96
"""Audio mode needs a spectrogram of at least 45 frames (a 30-frame patch after a 15-frame
lead-in; 80 ms windows, 20 ms hop): 46080 samples at 48 kHz. Shorter inputs score NaN."""
LAG_TOLERANCE = 1e-4
"""A lag this close to a whole number of samples is taken as one, and nothing is interpolated:
the estimate of a whole-sample delay is off by about 2e-5 (the signals' ends bias it), and 1e-4
samples is an error below -70 dB even at 20 kHz."""
NEWTON_STEPS = 8
LAG_WINDOW_SAMPLES = 1 << 20
"""The lag is estimated on at most this many central samples (22 s at 48 kHz): a delay is one
number for the whole signal, and the Fourier refinement holds a few arrays of this size."""
EDGE_SAMPLES = 256
"""Cropped at each end after a fractional shift (see `shift`): 6 ms at 44.1 kHz. A 0.3-sample
delay of full-band music with an abrupt start, undone, leaves -56 dB of error uncropped, -60 dB
with this crop, -70 dB in the interior."""


def _mono(x: np.ndarray) -> np.ndarray:
    """1-D float64 mono downmix of `(samples,)` or `(channels, samples)` audio."""
    x = np.asarray(x)
    return (x if x.ndim == 1 else x.mean(axis=0)).astype(np.float64)


def _as_2d(x: np.ndarray) -> np.ndarray:
    return x[np.newaxis] if x.ndim == 1 else x


def fractional_lag(est: np.ndarray, ref: np.ndarray, max_lag_samples: int) -> float:
    """Delay of `est` behind `ref` in samples (positive: `est` is late), |lag| <= max_lag_samples,
    from the mono downmixes: the integer lag maximising |cross-correlation|, refined by Newton's
    method on the band-limited (Fourier-interpolated) cross-correlation, which is exact for
    band-limited signals, unlike a parabola through three points. 0.0 when either is silent."""
    e, r = _mono(est), _mono(ref)
    n = min(e.size, r.size)
    m = int(max(0, min(max_lag_samples, n - 1)))
    if n > LAG_WINDOW_SAMPLES + 2 * m:  # the same central stretch of both bounds the memory
        start = (n - LAG_WINDOW_SAMPLES) // 2
        e, r = e[start - m : start + LAG_WINDOW_SAMPLES + m], r[start - m : start + LAG_WINDOW_SAMPLES + m]
    if n == 0 or not np.any(e) or not np.any(r):
        return 0.0
    size = scipy.fft.next_fast_len(e.size + r.size, real=True)
    cross = scipy.fft.rfft(e, size) * np.conj(scipy.fft.rfft(r, size))
    corr = scipy.fft.irfft(cross, size)  # corr[k] = sum_n e[n + k] r[n], negative k wrapped
    lags = np.arange(-m, m + 1)
    k0 = int(lags[np.argmax(np.abs(corr[lags]))])
    sign = 1.0 if corr[k0] >= 0 else -1.0  # a polarity flip still aligns on the peak
    omega = 2.0 * np.pi * np.arange(cross.size) / size
    weights = np.full(cross.size, 2.0)
    weights[0] = 1.0
    if size % 2 == 0:
        weights[-1] = 1.0
    c = sign * weights * cross

    def derivatives(tau: float) -> tuple[float, float, float]:
        turned = c * np.exp(1j * omega * tau)
        return (float(np.real(turned.sum())), float(np.real(np.sum(1j * omega * turned))),
                float(np.real(np.sum(-omega * omega * turned))))

    # Start at the vertex of the parabola through the three samples around the peak: close
    # enough for Newton even when the true peak sits half-way between two samples.
    y0, y1, y2 = (sign * corr[(k0 + j) % size] for j in (-1, 0, 1))
    curvature = y0 - 2.0 * y1 + y2
    tau = k0 + (0.5 * (y0 - y2) / curvature if curvature < 0 else 0.0)
    value, d1, d2 = derivatives(tau)
    for _ in range(NEWTON_STEPS):
        step = -d1 / d2 if d2 < 0 else math.copysign(0.25, d1)
        step = float(np.clip(step, -0.25, 0.25))
        while abs(step) > 1e-9:
            trial = derivatives(tau + step)
            if trial[0] >= value:
                break
            step /= 2.0
        else:
            break
        tau += step
        value, d1, d2 = trial
        if abs(step) < 1e-6:
            break
    return float(np.clip(tau, k0 - 1.0, k0 + 1.0))


def shift(x: np.ndarray, delay_samples: float) -> np.ndarray:
    """`x` (1-D or `(channels, samples)`) delayed by a fractional number of samples (negative:
    advanced), same length, by a phase ramp on a zero-padded FFT (ideal band-limited delay).
    Samples shifted in from outside are zero; the ideal delay rings by about 1/n near an abrupt
    start or end, so callers crop EDGE_SAMPLES there."""
    x2 = _as_2d(np.asarray(x, dtype=np.float64))
    n = x2.shape[1]
    size = _odd_fast_len(n + 2 * (int(abs(delay_samples)) + EDGE_SAMPLES))
    spectrum = scipy.fft.rfft(x2, size, axis=1)
    ramp = np.exp(-2j * np.pi * np.arange(spectrum.shape[1]) / size * delay_samples)
    y = scipy.fft.irfft(spectrum * ramp, size, axis=1)[:, :n]
    return y[0] if np.ndim(x) == 1 else y


def _odd_fast_len(n: int) -> int:
    """Smallest fast FFT length >= n that is odd: an odd length has no Nyquist bin, whose phase
    a real signal cannot turn, so a delay by d and back by -d is exact."""
    m = n | 1
    while scipy.fft.next_fast_len(m) != m:
        m += 2
    return m


def fractional_align(est: np.ndarray, ref: np.ndarray, max_lag_samples: int,
                     lag: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """`est` advanced by its fractional lag behind `ref` (`fractional_lag`, or `lag` when given),
    then both cropped to their common span less EDGE_SAMPLES at each end: two float64 arrays of
    the same length, each keeping its channel layout (1-D stays 1-D). With a zero lag nothing is
    interpolated, only cropped."""
    if lag is None:
        lag = fractional_lag(est, ref, max_lag_samples)
    e2, r2 = _as_2d(np.asarray(est, dtype=np.float64)), _as_2d(np.asarray(ref, dtype=np.float64))
    if abs(lag - round(lag)) < LAG_TOLERANCE:
        lag = float(round(lag))
    whole = math.floor(lag)
    e_start, r_start = max(whole, 0), max(-whole, 0)
    n = min(e2.shape[1] - e_start, r2.shape[1] - r_start)
    e_out, r_out = e2[:, e_start : e_start + n], r2[:, r_start : r_start + n]
    if lag != whole:
        e_out = shift(e_out, -(lag - whole))
    edge = EDGE_SAMPLES if lag != whole else 0
    e_out, r_out = e_out[:, edge : n - edge], r_out[:, edge : n - edge]
    return (e_out[0] if np.ndim(est) == 1 else e_out), (r_out[0] if np.ndim(ref) == 1 else r_out)


@lru_cache(maxsize=1)
def _api():
    from visqol import VisqolApi

    logging.getLogger("visqol").setLevel(logging.ERROR)  # its duration/rate notices, per call
    api = VisqolApi()
    api.create(mode="audio")
    return api


def to_visqol_rate(x: np.ndarray, sr: int) -> np.ndarray:
    """Mono downmix at VISQOL_SR, float64, resampled with soxr (VHQ)."""
    mono = _mono(x)
    return mono if sr == VISQOL_SR else soxr.resample(mono, sr, VISQOL_SR, quality=SOXR_QUALITY)


def visqol_moslqo(est: np.ndarray, ref: np.ndarray, sr: int) -> float:
    """ViSQOL v3 audio-mode MOS-LQO (1 to about 4.75; higher is better) of `est` against the clean
    `ref`, both `(samples,)` or `(channels, samples)` at `sr`: mono downmix, soxr to 48 kHz,
    `est` aligned to `ref` by its fractional delay (within MAX_LAG_S), then scored. NaN when
    either is silent or the aligned overlap is shorter than MIN_DURATION_S."""
    e48, r48 = to_visqol_rate(est, sr), to_visqol_rate(ref, sr)
    if not np.any(e48) or not np.any(r48) or not (np.all(np.isfinite(e48)) and np.all(np.isfinite(r48))):
        return math.nan
    e48, r48 = fractional_align(e48, r48, int(round(MAX_LAG_S * VISQOL_SR)))
    if e48.size < round(MIN_DURATION_S * VISQOL_SR) or not np.any(e48) or not np.any(r48):
        return math.nan
    return float(_api().measure_from_arrays(r48, e48, VISQOL_SR).moslqo)
