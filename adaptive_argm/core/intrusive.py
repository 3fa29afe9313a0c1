"""Intrusive scores: how close an output is to a clean reference, after fractional-delay
alignment: SI-SDR, log-spectral distance, the SNR in the reference's quietest frames, and ViSQOL
v3's MOS-LQO (`scores` takes all four after one alignment); and that alignment
(`fractional_lag`, `shift`, `fractional_align`), so that a resampler's sub-sample shift never
counts as damage.

Each takes `(channels, samples)` float audio (1-D mono also accepted) at one stated rate; signals
with different channel counts are compared as mono downmixes. Sums run in float64 piece by
piece and a shift transforms one channel at a time, so memory stays bounded on long files.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import scipy.fft
import scipy.signal

from . import spectral, visqol
from .levels import as_2d, downmix

MAX_LAG_SAMPLES = 64
"""Largest delay the scores search: covers the delay of one or two resampling steps."""
QUIET_FRACTION = 0.1
LSD_FLOOR_BELOW_MEAN_DB = 80.0
"""LSD skips a bin when both spectra are this far below the reference's mean bin power, so
that empty bands (above a 32 kHz file's 16 kHz) do not dominate the distance."""
SCORE_CEILING_DB = 60.0
"""SI-SDR or SNR above this means indistinguishable from the reference: scores are read at
most this high when results are ranked, so float rounding between transparent results is no win."""
N_FFT, HOP = spectral.N_FFT, spectral.HOP
"""LSD's STFT and the quiet-frame SNR's frames: the metric panel's analysis grid."""
VISQOL_MAX_LAG_S = 0.002
"""Largest delay `visqol_moslqo` searches (96 samples at 48 kHz): resamplers and the restoration
chains delay by a few samples at most; ViSQOL's own global alignment handles the rest."""

LAG_TOLERANCE = 1e-4
"""A lag this close to a whole number of samples is taken as one, and nothing is interpolated:
the estimate of a whole-sample delay is off by about 2e-5 (the signals' ends bias it), and 1e-4
samples is an error below -70 dB even at 20 kHz."""
NEWTON_STEPS = 8
LAG_WINDOW_SAMPLES = 1 << 20
"""The lag is estimated on at most this many central samples (22 s at 48 kHz): a delay is one
number for the whole signal, and the Fourier refinement holds a few arrays of this size."""
LAG_TAPER = 0.2
"""Tukey taper (the tapered share of the window) on both signals before the lag is estimated. An
output delayed by whole samples holds other samples at its ends than the reference: with
abrupt ends they bias the estimate by about 1e-3 samples on bass-heavy music, tapered by 3e-6.
Sub-sample shifts are found within about 1e-4 samples either way (an error below -75 dB at
3 kHz)."""
EDGE_SAMPLES = 256
"""Cropped at each end after a fractional shift (see `shift`): 6 ms at 44.1 kHz. A 0.3-sample
delay of full-band music with an abrupt start, undone, leaves -56 dB of error uncropped, -60 dB
with this crop, -70 dB in the interior."""

_RAMP_CHUNK = 1 << 18
"""Spectrum bins turned per step of a shift: the phase ramp never exists whole."""
_SUM_CHUNK = 1 << 20
"""Samples per float64 piece when summing energies of long signals."""


def capped(score_db: float) -> float:
    """An SI-SDR or SNR as results are ranked and changes computed: at most `SCORE_CEILING_DB`."""
    return min(score_db, SCORE_CEILING_DB)


# --- alignment ----------------------------------------------------------------------------------


LENGTH_TOLERANCE_S = 0.1
"""A reference may differ in length from what it scores by this much, or 1% of the longer
(a decoder's padding), not more: the scores cover only the part the two share."""


def check_lengths(frames: int, ref_frames: int, sr: int) -> None:
    """Refuse, with a one-line `ValueError`, a reference too unlike in length to be the same clip."""
    if abs(frames - ref_frames) > max(LENGTH_TOLERANCE_S * sr, 0.01 * max(frames, ref_frames)):
        raise ValueError(f"--ref lasts {ref_frames / sr:.2f} s and the input {frames / sr:.2f} s: the scores would "
                         "cover only the part they share; give the clean reference of the same clip")


def _2d(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    return x[np.newaxis] if x.ndim == 1 else x


def fractional_lag(est: np.ndarray, ref: np.ndarray, max_lag_samples: int = MAX_LAG_SAMPLES) -> float:
    """Delay of `est` behind `ref` in samples (positive: `est` is late), |lag| <= max_lag_samples,
    from the mono downmixes: the integer lag maximising |cross-correlation|, refined by Newton's
    method on the band-limited (Fourier-interpolated) cross-correlation, which is exact for
    band-limited signals, unlike a parabola through three points. Only the central
    LAG_WINDOW_SAMPLES are read, both tapered alike (LAG_TAPER). 0.0 when either is silent."""
    e2, r2 = _2d(est), _2d(ref)
    n = min(e2.shape[1], r2.shape[1])
    m = int(max(0, min(max_lag_samples, n - 1)))
    lo, hi = 0, n
    if n > LAG_WINDOW_SAMPLES + 2 * m:  # the same central stretch of both bounds the memory
        lo = (n - LAG_WINDOW_SAMPLES) // 2 - m
        hi = lo + LAG_WINDOW_SAMPLES + 2 * m
    if n == 0:
        return 0.0
    taper = scipy.signal.windows.tukey(hi - lo, LAG_TAPER)
    e = e2[:, lo:hi].mean(axis=0, dtype=np.float64) * taper
    r = r2[:, lo:hi].mean(axis=0, dtype=np.float64) * taper
    if not np.any(e) or not np.any(r):
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


def shift(x: np.ndarray, delay_samples: float, dtype: type | None = None) -> np.ndarray:
    """`x` (1-D or `(channels, samples)`) delayed by a fractional number of samples (negative:
    advanced), same length, by a phase ramp on a zero-padded FFT (ideal band-limited delay);
    float64 unless `dtype` says otherwise. Samples shifted in from outside are zero; the ideal
    delay rings by about 1/n near an abrupt start or end, so callers crop EDGE_SAMPLES there.

    One channel at a time, its FFT in float64: a few float64 copies of one channel at most
    besides the result. Measured (eval/align_cost.py) on 10 minutes of stereo at 48 kHz:
    aligning and scoring peak 0.23 GB above the two inputs, about one float64 channel copy."""
    x2 = _2d(x)
    n = x2.shape[1]
    size = _odd_fast_len(n + 2 * (int(abs(delay_samples)) + EDGE_SAMPLES))
    out = np.empty(x2.shape, dtype=dtype or np.float64)
    for ch in range(x2.shape[0]):
        padded = np.zeros(size)
        padded[:n] = x2[ch]
        spectrum = scipy.fft.rfft(padded, overwrite_x=True)
        del padded
        for k0 in range(0, spectrum.size, _RAMP_CHUNK):
            k = np.arange(k0, min(spectrum.size, k0 + _RAMP_CHUNK))
            spectrum[k0 : k0 + k.size] *= np.exp(-2j * np.pi * k / size * delay_samples)
        out[ch] = scipy.fft.irfft(spectrum, size, overwrite_x=True)[:n]
        del spectrum
    return out[0] if np.ndim(x) == 1 else out


def _odd_fast_len(n: int) -> int:
    """Smallest fast FFT length >= n that is odd: an odd length has no Nyquist bin, whose phase
    a real signal cannot turn, so a delay by d and back by -d is exact."""
    m = n | 1
    while scipy.fft.next_fast_len(m) != m:
        m += 2
    return m


def fractional_align(est: np.ndarray, ref: np.ndarray, max_lag_samples: int = MAX_LAG_SAMPLES,
                     lag: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """`est` advanced by its fractional lag behind `ref` (`fractional_lag`, or `lag` when given),
    then both cropped to their common span less EDGE_SAMPLES at each end: two arrays of the same
    length, each keeping its channel layout (1-D stays 1-D) and its float precision (float32
    stays float32; anything else comes back float64). With a whole-sample lag nothing is
    interpolated, only cropped (`ref` and an unshifted `est` come back as views)."""
    if lag is None:
        lag = fractional_lag(est, ref, max_lag_samples)
    e2, r2 = _2d(est), _2d(ref)
    e2, r2 = (x if x.dtype in (np.float32, np.float64) else x.astype(np.float64) for x in (e2, r2))
    if abs(lag - round(lag)) < LAG_TOLERANCE:
        lag = float(round(lag))
    whole = math.floor(lag)
    e_start, r_start = max(whole, 0), max(-whole, 0)
    n = min(e2.shape[1] - e_start, r2.shape[1] - r_start)
    e_out, r_out = e2[:, e_start : e_start + n], r2[:, r_start : r_start + n]
    if lag != whole:
        edge = EDGE_SAMPLES
        e_out = shift(e_out, -(lag - whole), dtype=e_out.dtype)[:, edge : n - edge]
        r_out = r_out[:, edge : n - edge]
    return (e_out[0] if np.ndim(est) == 1 else e_out), (r_out[0] if np.ndim(ref) == 1 else r_out)


def align(est: np.ndarray, ref: np.ndarray, max_lag_samples: int = MAX_LAG_SAMPLES) -> tuple[np.ndarray, np.ndarray]:
    """`fractional_align` as every score here uses it: `est` moved onto `ref` by its delay
    (whole and fractional, |lag| <= max_lag_samples), both cropped to the overlap."""
    return fractional_align(est, ref, max_lag_samples)


def _aligned_pair(est: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Aligned float32 (channels, samples) pair with equal shapes; different channel counts
    are compared as mono downmixes."""
    e, r = align(as_2d(est), as_2d(ref))
    if e.shape[0] != r.shape[0]:
        e, r = downmix(e)[np.newaxis], downmix(r)[np.newaxis]
    return e, r


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
    """Scale-invariant SDR of `est` against `ref`, in dB, after `align` (fractional delay) and per-channel mean
    removal; channels are flattened into one vector.

    Rewards staying close to the reference in waveform (any gain is forgiven). Cannot be
    gamed by silence or EQ; it punishes every linear filter and phase change, so it
    understates restorations that change timbre on purpose. +inf when est is an exact
    scaled copy, NaN when the reference is silent.
    """
    return _si_sdr(*_aligned_pair(est, ref))


def _si_sdr(e: np.ndarray, r: np.ndarray) -> float:
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


def lsd_db(est: np.ndarray, ref: np.ndarray, sr: int, min_hz: float | None = None) -> float:
    """Log-spectral distance in dB: after `align` and one least-squares gain on `est`, the RMS
    over frequency of the dB difference of the two power spectra (N_FFT / HOP STFT), averaged
    over frames and channels; with `min_hz`, over the bins above that frequency only (the band
    a band-limited input lost). Bins where both spectra are more than
    LSD_FLOOR_BELOW_MEAN_DB below the reference's mean bin power are skipped; levels under
    that floor are clamped to it, so a removed band costs at most the floor depth.

    Rewards matching the reference's spectral envelope at every time; blind to phase.
    Lower is better; 0 for a gain-scaled copy. The STFT settings are in samples, so `sr`
    changes the number only through `min_hz`; both signals must be at it. NaN when no bin
    qualifies.
    """
    return _lsd(*_aligned_pair(est, ref), sr, min_hz)


def _lsd(e: np.ndarray, r: np.ndarray, sr: int, min_hz: float | None = None) -> float:
    bins = slice(None) if min_hz is None else np.fft.rfftfreq(N_FFT, 1.0 / sr) > min_hz
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
            a = np.maximum(pe[:, bins], floor_power)
            b = np.maximum(pr[:, bins], floor_power)
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
    return _quiet_snr(*_aligned_pair(est, clean), quiet_fraction)


def _quiet_snr(e: np.ndarray, c: np.ndarray, quiet_fraction: float = QUIET_FRACTION) -> float:
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


def visqol_reading(est: np.ndarray, ref: np.ndarray, sr: int) -> visqol.Reading:
    """ViSQOL v3 audio-mode MOS-LQO (1 to about 4.75; higher is better) of `est` against the clean
    `ref`, both `(samples,)` or `(channels, samples)` at `sr`: mono downmix, soxr to 48 kHz,
    `est` aligned to `ref` by its fractional delay (within VISQOL_MAX_LAG_S), then scored
    (`visqol.read`). NaN when either is silent or the aligned overlap is shorter than
    `visqol.MIN_DURATION_S`.

    Rewards what listeners hear: a lost high band, codec smear and hiss all cost points, and it
    punishes hiss hard (white noise at -45 dBFS on real music: about 1.8). Blind to gain. About
    1.5 CPU s per 10 s of audio. `misplaced` > 0 marks a reading to distrust (`visqol.Reading`)."""
    e48, r48 = visqol.to_visqol_rate(est, sr), visqol.to_visqol_rate(ref, sr)
    if not np.any(e48) or not np.any(r48) or not (np.all(np.isfinite(e48)) and np.all(np.isfinite(r48))):
        return visqol.UNREAD
    e48, r48 = fractional_align(e48, r48, int(round(VISQOL_MAX_LAG_S * visqol.VISQOL_SR)))
    return visqol.read(e48, r48)


def visqol_moslqo(est: np.ndarray, ref: np.ndarray, sr: int) -> float:
    """`visqol_reading`'s MOS-LQO alone."""
    return visqol_reading(est, ref, sr).moslqo


@dataclass(frozen=True)
class Scores:
    """Every intrusive score of one estimate against one clean reference: the metric panel's
    intrusive fields."""

    si_sdr_db: float
    lsd_db: float
    quiet_frame_snr_db: float
    visqol_moslqo: float = math.nan
    visqol_misplaced: float = math.nan

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def scores(est: np.ndarray, ref: np.ndarray, sr: int, *, with_visqol: bool = True) -> Scores:
    """SI-SDR, LSD, quiet-frame SNR and (unless `with_visqol` is False: it costs most) ViSQOL of
    `est` against `ref` at `sr`, after ONE fractional-delay alignment."""
    e, r = _aligned_pair(est, ref)
    reading = visqol_reading(e, r, sr) if with_visqol else visqol.UNREAD
    return Scores(_si_sdr(e, r), _lsd(e, r, sr), _quiet_snr(e, r), reading.moslqo, reading.misplaced)
