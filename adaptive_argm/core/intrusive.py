"""Intrusive scores: how close an output is to a clean reference, after delay alignment:
SI-SDR, log-spectral distance, and the SNR in the reference's quietest frames.

Each takes `(channels, samples)` float audio (1-D mono also accepted) at one stated rate; signals
with different channel counts are compared as mono downmixes. Sums run in float64 piece by
piece, so memory stays bounded on long files.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.signal

from . import spectral
from .levels import as_2d, downmix

MAX_LAG_SAMPLES = 64
"""Largest delay `align` searches: covers the delay of one or two resampling steps."""
QUIET_FRACTION = 0.1
LSD_FLOOR_BELOW_MEAN_DB = 80.0
"""LSD skips a bin when both spectra are this far below the reference's mean bin power, so
that empty bands (above a 32 kHz file's 16 kHz) do not dominate the distance."""
SCORE_CEILING_DB = 60.0
"""SI-SDR or SNR above this means indistinguishable from the reference: scores are read at
most this high when results are ranked, so float rounding between transparent results is no win."""
N_FFT, HOP = spectral.N_FFT, spectral.HOP
"""LSD's STFT and the quiet-frame SNR's frames: the metric panel's analysis grid."""

_ALIGN_BLOCK = 1 << 16
_SUM_CHUNK = 1 << 20
"""Samples per float64 piece when summing energies of long signals."""


def capped(score_db: float) -> float:
    """An SI-SDR or SNR as results are ranked and changes computed: at most `SCORE_CEILING_DB`."""
    return min(score_db, SCORE_CEILING_DB)


def align(
    est: np.ndarray, ref: np.ndarray, max_lag_samples: int = MAX_LAG_SAMPLES
) -> tuple[np.ndarray, np.ndarray]:
    """Shift `est` against `ref` by the integer lag (|lag| <= max_lag_samples) that maximises
    the magnitude of the cross-correlation of their mono downmixes, then crop both to the
    overlap. Each keeps its own channel layout (1-D stays 1-D).

    Absorbs the few-sample delays of resampling; the magnitude is used so that a polarity
    flip does not pick a wrong lag (SI-SDR's scale absorbs the sign). The correlation is
    summed over blocks, so memory stays bounded on long files.
    """
    e2, r2 = as_2d(est), as_2d(ref)
    e_mono, r_mono = downmix(e2), downmix(r2)
    length = min(e_mono.size, r_mono.size)
    m = int(min(max_lag_samples, max(0, (length - 1) // 4)))
    lag = 0
    if m > 0:
        corr = np.zeros(2 * m + 1)
        # c[k] = sum_n est[n + k] * ref[n], n over [m, length - m): every lag sees the same n.
        for s in range(m, length - m, _ALIGN_BLOCK):
            e = min(length - m, s + _ALIGN_BLOCK)
            corr += scipy.signal.correlate(
                e_mono[s - m : e + m].astype(np.float64),
                r_mono[s:e].astype(np.float64),
                mode="valid",
                method="fft",
            )
        lag = int(np.argmax(np.abs(corr))) - m
    e_start, r_start = max(lag, 0), max(-lag, 0)
    n = min(e2.shape[1] - e_start, r2.shape[1] - r_start)
    e_out = e2[:, e_start : e_start + n]
    r_out = r2[:, r_start : r_start + n]
    if np.ndim(est) == 1:
        e_out = e_out[0]
    if np.ndim(ref) == 1:
        r_out = r_out[0]
    return e_out, r_out


def _aligned_pair(est: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Aligned float32 (channels, samples) pair with equal shapes; different channel counts
    are compared as mono downmixes."""
    e, r = align(est, ref)
    e2, r2 = as_2d(e), as_2d(r)
    if e2.shape[0] != r2.shape[0]:
        e2, r2 = downmix(e2)[np.newaxis], downmix(r2)[np.newaxis]
    return e2, r2


def _pieces(n: int):
    for start in range(0, n, _SUM_CHUNK):
        yield slice(start, min(n, start + _SUM_CHUNK))


def _centred_moments(e: np.ndarray, r: np.ndarray):
    """Per-channel means of e and r, then <e, r>, <e, e> and <r, r> of the mean-removed
    signals, summed in float64 piece by piece (no float64 copy of a long signal)."""
    e_mean = e.mean(axis=1, dtype=np.float64)
    r_mean = r.mean(axis=1, dtype=np.float64)
    er = ee = rr = 0.0
    for ch in range(e.shape[0]):
        for sl in _pieces(e.shape[1]):
            ec = e[ch, sl].astype(np.float64) - e_mean[ch]
            rc = r[ch, sl].astype(np.float64) - r_mean[ch]
            er += float(np.dot(ec, rc))
            ee += float(np.dot(ec, ec))
            rr += float(np.dot(rc, rc))
    return e_mean, r_mean, er, ee, rr


def si_sdr_db(est: np.ndarray, ref: np.ndarray) -> float:
    """Scale-invariant SDR of `est` against `ref`, in dB, after `align` and per-channel mean
    removal; channels are flattened into one vector.

    Rewards staying close to the reference in waveform (any gain is forgiven). Cannot be
    gamed by silence or EQ; it punishes every linear filter and phase change, so it
    understates restorations that change timbre on purpose. +inf when est is an exact
    scaled copy, NaN when the reference is silent.
    """
    e, r = _aligned_pair(est, ref)
    e_mean, r_mean, er, _, rr = _centred_moments(e, r)
    if rr == 0.0:
        return math.nan
    alpha = er / rr
    # The residual is summed directly rather than as |e|^2 - <e,r>^2/|r|^2, whose
    # cancellation would cap SI-SDR near 150 dB and can even go negative.
    target_energy, noise_energy = alpha * alpha * rr, 0.0
    for ch in range(e.shape[0]):
        for sl in _pieces(e.shape[1]):
            ec = e[ch, sl].astype(np.float64) - e_mean[ch]
            rc = r[ch, sl].astype(np.float64) - r_mean[ch]
            noise_energy += float(np.sum(np.square(ec - alpha * rc)))
    if noise_energy == 0.0:
        return math.inf
    if target_energy == 0.0:
        return -math.inf
    return 10.0 * math.log10(target_energy / noise_energy)


def _ls_gain(est: np.ndarray, target: np.ndarray) -> float:
    """Least-squares gain g minimising |target - g * est|^2 (1.0 for a silent est)."""
    et = ee = 0.0
    for ch in range(est.shape[0]):
        for sl in _pieces(est.shape[1]):
            ec = est[ch, sl].astype(np.float64)
            et += float(np.dot(ec, target[ch, sl].astype(np.float64)))
            ee += float(np.dot(ec, ec))
    return et / ee if ee > 0.0 else 1.0


def lsd_db(est: np.ndarray, ref: np.ndarray, sr: int) -> float:
    """Log-spectral distance in dB: after `align` and one least-squares gain on `est`, the RMS
    over frequency of the dB difference of the two power spectra (N_FFT / HOP STFT), averaged
    over frames and channels. Bins where both spectra are more than
    LSD_FLOOR_BELOW_MEAN_DB below the reference's mean bin power are skipped; levels under
    that floor are clamped to it, so a removed band costs at most the floor depth.

    Rewards matching the reference's spectral envelope at every time; blind to phase.
    Lower is better; 0 for a gain-scaled copy. The STFT settings are in samples, so `sr`
    does not change the number; it is in the signature so that callers state the rate, and
    both signals must be at it.
    """
    del sr
    e, r = _aligned_pair(est, ref)
    gain = np.float32(_ls_gain(e, r))
    window = scipy.signal.get_window("hann", N_FFT, fftbins=True)
    r_mean_square = sum(
        float(np.dot(r[ch, sl].astype(np.float64), r[ch, sl].astype(np.float64)))
        for ch in range(r.shape[0])
        for sl in _pieces(r.shape[1])
    ) / r.size
    # Parseval: a Hann-windowed frame's mean bin power is sum(w^2) * mean square.
    mean_bin_power = float(np.sum(window**2)) * r_mean_square
    if mean_bin_power <= 0.0:
        return math.nan
    floor_power = np.float32(mean_bin_power * 10.0 ** (-LSD_FLOOR_BELOW_MEAN_DB / 10.0))
    total, count = 0.0, 0
    for e_ch, r_ch in zip(e, r):
        for (_, pe), (_, pr) in zip(spectral.power_frames(e_ch * gain, dtype=np.float64),
                                   spectral.power_frames(r_ch, dtype=np.float64)):
            a = np.maximum(pe, floor_power)
            b = np.maximum(pr, floor_power)
            n_valid = ((a > floor_power) | (b > floor_power)).sum(axis=1)
            diff_sq = np.square(10.0 * np.log10(a / b))  # 0 where both sit on the floor
            frames = n_valid > 0
            msq = diff_sq.sum(axis=1, dtype=np.float64)[frames] / n_valid[frames]
            total += float(np.sqrt(msq).sum())
            count += int(frames.sum())
    return total / count if count else math.nan


def quiet_frame_snr_db(
    est: np.ndarray, clean: np.ndarray, sr: int, quiet_fraction: float = QUIET_FRACTION
) -> float:
    """SNR of `est` against `clean` in dB, counted only in the quietest `quiet_fraction` of
    the clean signal's non-overlapping N_FFT-sample frames (frames of digital silence in
    `clean` are not candidates: SNR is undefined there). Signals are aligned, mean-removed
    per channel, and `est` gets one least-squares gain over the whole signal first.

    Rewards removing noise where it is audible, in quiet passages, without cutting the music
    there. Muting the quiet passages scores about 0 dB (the music there is gone too), so a
    gate only wins where the noise was louder than the music. NaN when no frame qualifies.
    `sr` is accepted so that callers state the rate; the framing is in samples.
    """
    del sr
    e, c = _aligned_pair(est, clean)
    e_mean, c_mean, ec, ee, _ = _centred_moments(e, c)
    gain = ec / ee if ee > 0.0 else 1.0
    n_frames = c.shape[1] // N_FFT
    if n_frames == 0:
        return math.nan
    clean_energy = np.zeros(n_frames)
    error_energy = np.zeros(n_frames)
    frames_per_piece = max(1, _SUM_CHUNK // N_FFT)
    for ch in range(c.shape[0]):
        for f0 in range(0, n_frames, frames_per_piece):
            f1 = min(n_frames, f0 + frames_per_piece)
            sl = slice(f0 * N_FFT, f1 * N_FFT)
            cf = (c[ch, sl].astype(np.float64) - c_mean[ch]).reshape(f1 - f0, N_FFT)
            ef = (e[ch, sl].astype(np.float64) - e_mean[ch]).reshape(f1 - f0, N_FFT)
            clean_energy[f0:f1] += np.einsum("ij,ij->i", cf, cf)
            err = cf - gain * ef
            error_energy[f0:f1] += np.einsum("ij,ij->i", err, err)
    candidates = np.flatnonzero(clean_energy > 0.0)
    if candidates.size == 0:
        return math.nan
    k = max(1, int(round(quiet_fraction * candidates.size)))
    chosen = candidates[np.argsort(clean_energy[candidates], kind="stable")[:k]]
    signal, error = float(clean_energy[chosen].sum()), float(error_energy[chosen].sum())
    if error == 0.0:
        return math.inf
    return 10.0 * math.log10(signal / error)
