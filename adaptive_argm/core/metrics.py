"""Measure restored audio: the paper's P25 number, and the panel that shows when it was gamed.

The method we reproduce reports one number, the 25th percentile of a max-referenced mel
spectrogram in dB (`p25_paper_db`). That number is relative to the loudest bin, floors at
-80 dB and rewards silence, bass boosts and low-passes (see the field notes). It is reported
here for comparability, never alone: `measure` returns a `MetricPanel` that puts it beside
absolute-reference levels inside the band the input really has, a noise-floor estimate,
BS.1770 loudness, the share of silent frames and of floored bins, the peak, the bandwidth,
and, when a clean reference exists, SI-SDR, log-spectral distance and quiet-frame SNR.
`warnings_for` turns the tell-tale signs of a gamed or saturated result into sentences.

Every function takes `(channels, samples)` float audio (1-D mono also accepted) at the sample
rate the caller states; the project always measures at 44.1 kHz. Spectral measures use the
mono downmix (mean over channels), as the paper's `librosa.load` did; level measures (peak,
loudness, silent frames) use all channels.

Absolute-reference dB values (`p25_abs_db`, `p95_db`, `noise_floor_db`) are
`10*log10(power)` of librosa's unnormalised periodic-Hann STFT (power re 1.0, floored at
`AMIN`): a full-scale sine reads about +53 dB in its STFT bin (+31 to +39 dB in its Slaney
mel band), white noise at -45 dBFS about -16 dB per STFT bin. They are meant for comparing
an input with its output, not as dBFS.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass, fields

import numpy as np
import pyloudnorm
import scipy.signal

from . import spectral
from .audio import peak_dbfs

# --- analysis settings (the paper's) -------------------------------------------------------
N_FFT = 2048
HOP = 512
N_MELS = 128
TOP_DB = 80.0
AMIN = 1e-10
"""Power floor before taking dB (librosa's default): digital silence reads -100 dB."""

# --- panel settings -------------------------------------------------------------------------
PAPER_PERCENTILE = 25.0
CONTENT_PERCENTILE = 95.0
NOISE_FLOOR_PERCENTILE = 10.0
"""Per-bin percentile over time taken as that bin's noise floor."""
LOW_CUT_HZ = 30.0
"""Bins below this are left out of band-limited measures: a constant DC offset (MusicGen
stereo-small outputs carry up to +-0.18) lands only in bins 0-1 of a Hann STFT (0 and
21.5 Hz at 44.1 kHz), and removing it must not read as a bass cut or a lower noise floor."""
BALANCE_SPLIT_HZ = 400.0
"""Low/high split of `low_high_balance_db`: the paper's low-shelf cutoff."""
SILENT_FRAME_DBFS = -60.0
"""A frame (N_FFT samples, hop HOP, librosa's centred framing) is silent when its RMS over
all channels is below this. Absolute, so that it does not depend on gain matching."""
BANDWIDTH_RANGE_DB = 60.0
BANDWIDTH_GUARD_DB = 120.0
"""Bandwidth: the highest STFT bin whose long-term mean power (frames inside the signal only)
is within BANDWIDTH_RANGE_DB of the strongest bin at or above BALANCE_SPLIT_HZ, and within
BANDWIDTH_GUARD_DB of the strongest bin overall (bins below LOW_CUT_HZ ignored). The strongest
bin overall is almost always bass: measured from it, the paper's +10 dB low shelf alone
"shrank" real MusicGen stems by up to 11 kHz. The guard keeps a signal with nothing above
400 Hz from reading full band off float rounding noise."""
LOUDNESS_MIN_S = 0.4
"""BS.1770 gating blocks are 400 ms; shorter audio has no integrated loudness."""

# --- intrusive settings ---------------------------------------------------------------------
MAX_LAG_SAMPLES = 64
"""Largest delay `align` searches: covers the delay of one or two resampling steps."""
QUIET_FRACTION = 0.1
LSD_FLOOR_BELOW_MEAN_DB = 80.0
"""LSD skips a bin when both spectra are this far below the reference's mean bin power, so
that empty bands (above a 32 kHz file's 16 kHz) do not dominate the distance."""

# --- warning thresholds ---------------------------------------------------------------------
SCORE_CEILING_DB = 60.0
"""SI-SDR or SNR above this means indistinguishable from the reference: scores are read at
most this high when results are ranked, so float rounding between transparent results is no win."""
FLOOR_SATURATION_FRACTION = 0.25
"""With this share of bins on the floor the 25th percentile IS the floor: -80.00 dB."""
LOUDNESS_DROP_WARN_LU = 3.0
PAPER_GAIN_WARN_DB = 0.05
"""A p25_paper_db change smaller than this is rounding (it is blind to plain gain), not an
improvement that a loudness drop could explain."""
SILENT_RISE_WARN_FRACTION = 0.1
BALANCE_RISE_WARN_DB = 3.0
BANDWIDTH_LOSS_WARN_HZ = 2000.0
PEAK_WARN_DBFS = 0.0

_STFT_CHUNK_FRAMES = 2048
"""Frames per STFT call: bounds the complex64 temporary to about 17 MB."""
_BIN_CHUNK = 64
"""STFT bins per percentile call: bounds the dB copy of a 10-minute file to about 13 MB."""
_ALIGN_BLOCK = 1 << 16
_SUM_CHUNK = 1 << 20
"""Samples per float64 piece when summing energies of long signals."""


# --- the panel ------------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricPanel:
    """Every measure of one signal. NaN where a measure is undefined (or needs a reference)."""

    p25_paper_db: float
    p25_abs_db: float
    noise_floor_db: float
    loudness_lufs: float
    p95_db: float
    low_high_balance_db: float
    silent_frame_fraction: float
    floor_fraction: float
    peak_dbfs: float
    bandwidth_hz: float
    si_sdr_db: float = math.nan
    lsd_db: float = math.nan
    quiet_frame_snr_db: float = math.nan

    def to_dict(self) -> dict[str, float | None]:
        """Flat, JSON-safe dict: plain floats, with NaN and +-inf written as None."""
        out: dict[str, float | None] = {}
        for name, value in asdict(self).items():
            value = float(value)
            out[name] = value if math.isfinite(value) else None
        return out


DIRECTIONS: dict[str, str] = {
    # The paper's convention: lower = less noise. Kept although it also rewards silence and EQ.
    "p25_paper_db": "lower",
    # Same idea without the max reference or the floor; lower quiet-part level is the goal of a
    # denoiser, but a plain gain cut lowers it too, so read it with loudness_lufs.
    "p25_abs_db": "lower",
    "noise_floor_db": "lower",
    # A restoration should not change how loud the music is.
    "loudness_lufs": "closer-to-input",
    "p95_db": "closer-to-input",
    "low_high_balance_db": "closer-to-input",
    # Rises when a gate mutes music; falls when noise is added to true silence.
    "silent_frame_fraction": "closer-to-input",
    # Diagnostics of the paper metric's validity and of clipping: no "better" direction.
    "floor_fraction": "none",
    "peak_dbfs": "none",
    # Shrinking loses content; growing means hiss added above the input's band.
    "bandwidth_hz": "closer-to-input",
    "si_sdr_db": "higher",
    "lsd_db": "lower",
    "quiet_frame_snr_db": "higher",
}
"""For each MetricPanel field, the direction in which a restoration's result is better:
"higher", "lower", "closer-to-input" (no absolute good value; any change is a side effect),
or "none" (a diagnostic)."""

LABELS: dict[str, str] = {
    "p25_paper_db": "P25, paper (max-ref, 80 dB floor)",
    "p25_abs_db": "P25, absolute, in band",
    "noise_floor_db": "noise floor, in band",
    "loudness_lufs": "integrated loudness",
    "p95_db": "P95 (content level), in band",
    "low_high_balance_db": "low/high balance (<400 Hz vs above)",
    "silent_frame_fraction": "silent frames (< -60 dBFS)",
    "floor_fraction": "bins on the paper's -80 dB floor",
    "peak_dbfs": "sample peak",
    "bandwidth_hz": "bandwidth",
    "si_sdr_db": "SI-SDR vs reference",
    "lsd_db": "log-spectral distance vs reference",
    "quiet_frame_snr_db": "SNR in the reference's quietest frames",
}

UNITS: dict[str, str] = {
    "p25_paper_db": "dB",
    "p25_abs_db": "dB",
    "noise_floor_db": "dB",
    "loudness_lufs": "LUFS",
    "p95_db": "dB",
    "low_high_balance_db": "dB",
    "silent_frame_fraction": "",
    "floor_fraction": "",
    "peak_dbfs": "dBFS",
    "bandwidth_hz": "Hz",
    "si_sdr_db": "dB",
    "lsd_db": "dB",
    "quiet_frame_snr_db": "dB",
}

assert set(DIRECTIONS) == set(LABELS) == set(UNITS) == {f.name for f in fields(MetricPanel)}


# --- shared helpers -------------------------------------------------------------------------


def _as_2d(y: np.ndarray) -> np.ndarray:
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


def _db(power: np.ndarray | float) -> np.ndarray:
    return 10.0 * np.log10(np.maximum(power, AMIN))


def _mel_basis(sr: int) -> np.ndarray:
    # Exactly what librosa.feature.melspectrogram builds by default (float32, Slaney norm).
    return spectral.mel_filterbank(sr, N_FFT, N_MELS)


def _mel_centres_hz(sr: int) -> np.ndarray:
    return spectral.mel_frequencies(N_MELS + 2, 0.0, sr / 2.0)[1:-1]


def _n_frames(n_samples: int) -> int:
    return spectral.centred_grid(n_samples, HOP, N_FFT)[1]


def _power_chunks(x: np.ndarray):
    """Yield (first frame, |STFT|^2 float32 (1 + N_FFT/2, frames)) of a 1-D signal, chunk by
    chunk, with librosa's center=True, pad_mode="constant" framing. Chunking keeps the complex
    spectrogram of a long file from ever existing whole."""
    x = np.asarray(x, dtype=np.float32)
    first, n_frames = spectral.centred_grid(x.shape[-1], HOP, N_FFT)
    for f0 in range(0, n_frames, _STFT_CHUNK_FRAMES):
        f1 = min(n_frames, f0 + _STFT_CHUNK_FRAMES)
        # float64 transforms as librosa's (its float64 window promotes float32 frames).
        spec = spectral.stft(x, N_FFT, HOP, first + f0 * HOP, f1 - f0, dtype=np.float64)
        yield f0, spectral.power(spec).T


def _power_spectrogram(x: np.ndarray) -> np.ndarray:
    """|STFT|^2 of a 1-D signal as one float32 (1 + N_FFT/2, frames) array."""
    out = np.empty((1 + N_FFT // 2, _n_frames(np.shape(x)[-1])), dtype=np.float32)
    for f0, power in _power_chunks(x):
        out[:, f0 : f0 + power.shape[1]] = power
    return out


def _paper_db(mel_power: np.ndarray) -> np.ndarray:
    return spectral.power_to_db(mel_power, ref=None, amin=AMIN, top_db=TOP_DB)


def _frame_rms_dbfs(y2: np.ndarray) -> np.ndarray:
    """RMS over all channels of each analysis frame (same centred framing as the STFT)."""
    n = y2.shape[1]
    n_frames = _n_frames(n)
    hops_per_frame = N_FFT // HOP
    n_blocks = n_frames - 1 + hops_per_frame
    block_energy = np.zeros(n_blocks, dtype=np.float64)
    for ch in y2:
        padded = np.zeros(n_blocks * HOP, dtype=np.float32)
        padded[N_FFT // 2 : N_FFT // 2 + n] = ch
        blocks = padded.reshape(n_blocks, HOP)
        block_energy += np.einsum("ij,ij->i", blocks, blocks)
    cumulative = np.concatenate(([0.0], np.cumsum(block_energy)))
    frame_energy = cumulative[hops_per_frame:] - cumulative[:-hops_per_frame]
    mean_square = np.maximum(frame_energy, 0.0) / (N_FFT * y2.shape[0])
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(mean_square)


def _inner_frames(power: np.ndarray, n_samples: int) -> np.ndarray:
    """The frames whose window lies wholly inside the signal. Frames that reach into the
    zero padding see the signal start or stop abruptly and splatter broadband energy: on a
    5 s clip they alone lift the empty band above a resampled 32 kHz file's 16 kHz from
    about -100 to -55 dB re the strongest bin, which would fake bandwidth."""
    return power[:, spectral.interior(n_samples, HOP, N_FFT, *spectral.centred_grid(n_samples, HOP, N_FFT))]


def _bandwidth_hz(long_term_power: np.ndarray, freqs_hz: np.ndarray) -> float:
    usable = freqs_hz >= LOW_CUT_HZ
    if not usable.any() or float(long_term_power[usable].max()) <= 0.0:
        return 0.0
    levels_db = 10.0 * np.log10(np.maximum(long_term_power, np.finfo(np.float64).tiny))
    above_split = freqs_hz >= BALANCE_SPLIT_HZ
    threshold_db = max(
        levels_db[above_split].max() - BANDWIDTH_RANGE_DB,
        levels_db[usable].max() - BANDWIDTH_GUARD_DB,
    )
    return float(freqs_hz[np.flatnonzero(usable & (levels_db >= threshold_db))[-1]])


def loudness_lufs(y: np.ndarray, sr: int) -> float:
    """Integrated loudness, ITU-R BS.1770, all channels; NaN under 0.4 s, -inf for silence.
    BS.1770 weights at most five channels: beyond that, each channel is measured alone and their
    loudness summed in power (unit weights), which keeps loudness changes exact.

    pyloudnorm's K-weighting filters and its gating, to 1e-6 LU (tests/test_metrics.py), but
    filtered a chunk at a time: `Meter.integrated_loudness` holds a copy of the input and a
    float64 copy of each channel (0.6 GB on 10 minutes of stereo) and sums blocks in Python."""
    y2 = _as_2d(y)
    if y2.shape[1] < LOUDNESS_MIN_S * sr:
        return math.nan
    meter = pyloudnorm.Meter(sr)
    z = _block_mean_squares(y2, sr, meter)
    if y2.shape[0] <= len(_BS1770_GAINS):
        return _gated_loudness(z, np.array(_BS1770_GAINS[: y2.shape[0]]))
    per_channel = np.array([_gated_loudness(z[i : i + 1], np.ones(1)) for i in range(z.shape[0])])
    return float(10 * np.log10(np.sum(10 ** (per_channel / 10)))) if np.any(np.isfinite(per_channel)) else -math.inf


_BS1770_GAINS = (1.0, 1.0, 1.0, 1.41, 1.41)
"""Channel weights (L, R, C, Ls, Rs), as pyloudnorm."""
_BS1770_ABSOLUTE_GATE = -70.0
_BS1770_RELATIVE_GATE = -10.0
_LOUDNESS_CHUNK = 1 << 18
"""Samples per filter call (6 s at 44.1 kHz): bounds the float64 scratch to a few MB."""


def _block_mean_squares(y2: np.ndarray, sr: int, meter) -> np.ndarray:
    """Mean square of each K-weighted channel over each gating block, `(channels, blocks)`, with
    pyloudnorm's block bounds: from cumulative energies at the block edges, filtered chunk by
    chunk with the filter state carried over."""
    n = y2.shape[1]
    t_g, step = meter.block_size, 1.0 - meter.overlap
    j = np.arange(int(np.round((n / sr - t_g) / (t_g * step))) + 1)
    lo = np.minimum((t_g * (j * step) * sr).astype(np.int64), n)
    hi = np.minimum((t_g * (j * step + 1) * sr).astype(np.int64), n)
    edges = np.unique(np.concatenate([lo, hi]))
    stages = [(f.b, f.a, f.passband_gain) for f in meter._filters.values()]
    z = np.empty((y2.shape[0], j.size))
    for c, channel in enumerate(y2):
        states = [np.zeros(max(len(b), len(a)) - 1) for b, a, _ in stages]
        energy = np.zeros(edges.size)  # sum of squares before each edge
        total = 0.0
        for start in range(0, n, _LOUDNESS_CHUNK):
            seg = channel[start : start + _LOUDNESS_CHUNK].astype(np.float64)
            for k, (b, a, gain) in enumerate(stages):
                seg, states[k] = scipy.signal.lfilter(b, a, seg, zi=states[k])
                seg *= gain  # after the filter: the carried state is the unscaled filter's
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
        kept = block >= _BS1770_ABSOLUTE_GATE
        relative = -0.691 + 10.0 * np.log10(gains @ z[:, kept].mean(axis=1)) + _BS1770_RELATIVE_GATE
        kept = (block > relative) & (block > _BS1770_ABSOLUTE_GATE)
        mean = np.nan_to_num(z[:, kept].mean(axis=1))
        return float(-0.691 + 10.0 * np.log10(gains @ mean))


# --- the paper's metric -----------------------------------------------------------------------


def p25_paper_db(y: np.ndarray, sr: int) -> float:
    """The method's metric, exactly: 25th percentile of `power_to_db(mel, ref=np.max)` (80 dB
    floor) of the mono downmix, mel as librosa's defaults (2048 / 512 / 128 mels).

    Rewards (lower = "better" in the paper): anything that lowers the quiet bins relative to
    the loudest one. Gamed by a bass boost (raises the reference), muting quiet frames,
    cutting the tail, low-passing; saturates at exactly -80.00 dB once a quarter of the bins
    sit on the floor. Blind to plain gain.
    """
    basis = _mel_basis(sr)
    mel = np.concatenate([basis @ power for _, power in _power_chunks(downmix(_as_2d(y)))], axis=1)
    return float(np.percentile(_paper_db(mel), PAPER_PERCENTILE))


# --- the panel ------------------------------------------------------------------------------


def measure(
    y: np.ndarray,
    sr: int,
    *,
    ref: np.ndarray | None = None,
    band_hz: float | None = None,
) -> MetricPanel:
    """Measure every panel field of `y` at sample rate `sr`.

    `band_hz` fixes the occupied band (pass the INPUT's `bandwidth_hz` when measuring an
    output, so both are scored over the same bands); None measures it from `y`.
    `bandwidth_hz` itself is always measured from `y`. With `ref` (a clean reference at the
    same rate), the intrusive fields are filled in as well.

    Field by field (what each rewards / how it can be fooled):
    - p25_paper_db: see `p25_paper_db`.
    - p25_abs_db: 25th percentile of mel dB re 1.0, no floor, mel bands centred inside the
      band. Rewards lower quiet parts; fooled by a plain gain cut and by muting.
    - noise_floor_db: per STFT bin (LOW_CUT_HZ..band), the 10th percentile over time of its
      dB level, averaged in dB. Rewards removing steady noise; fooled by gain cuts, muting,
      and by cutting quiet music (it cannot tell a soft note from noise).
    - loudness_lufs: ITU-R BS.1770 integrated loudness, all channels; NaN under 0.4 s,
      -inf for silence.
    - p95_db: 95th percentile of the same in-band absolute mel dB: the content level.
    - low_high_balance_db: long-term power LOW_CUT_HZ..400 Hz minus 400 Hz..band, in dB.
      Rises with a bass boost, which the paper metric rewards.
    - silent_frame_fraction: share of frames whose RMS is below SILENT_FRAME_DBFS. Rises
      when a gate mutes music.
    - floor_fraction: share of paper-spectrogram bins on the -80 dB floor; at 0.25 or more
      p25_paper_db is pinned to -80.00 and cannot rank anything.
    - peak_dbfs: sample peak over all channels (float files can exceed 0 dBFS).
    - bandwidth_hz: upper edge of the occupied band of the long-term spectrum (rule at
      BANDWIDTH_RANGE_DB). A resampled 32 kHz file reads about 16 kHz (real MusicGen mixes
      15.4-15.6 kHz), full-band noise 22 kHz; a steep low-pass pulls it down, a gentle one
      (a tilt) or a bass shelf barely moves it. Dull stems read their content's roll-off.
    """
    y2 = _as_2d(y)
    # Level measures first: pyloudnorm's float64 filter copies are then freed before the
    # spectrogram exists, which keeps the peak memory of a 10-minute file near 0.6 GB.
    loudness = loudness_lufs(y2, sr)
    silent = float(np.mean(_frame_rms_dbfs(y2) < SILENT_FRAME_DBFS))
    mono = downmix(y2)
    power = _power_spectrogram(mono)
    freqs_hz = np.fft.rfftfreq(N_FFT, 1.0 / sr)
    mel = _mel_basis(sr) @ power

    paper = _paper_db(mel)
    p25_paper = float(np.percentile(paper, PAPER_PERCENTILE))
    floor_fraction = float(np.mean(paper <= paper.max() - TOP_DB + 1e-6))

    long_term = _inner_frames(power, mono.size).mean(axis=1, dtype=np.float64)
    bandwidth = _bandwidth_hz(long_term, freqs_hz)
    band = bandwidth if band_hz is None else float(band_hz)
    band = min(band, sr / 2.0)

    mel_in_band = _mel_centres_hz(sr) <= band
    if not mel_in_band.any():
        # Silence (bandwidth 0) or a band below the first mel centre: score all bands.
        mel_in_band[:] = True
    mel_abs_db = _db(mel[mel_in_band])
    p25_abs, p95 = (
        float(v) for v in np.percentile(mel_abs_db, [PAPER_PERCENTILE, CONTENT_PERCENTILE])
    )

    bins_in_band = np.flatnonzero((freqs_hz >= LOW_CUT_HZ) & (freqs_hz <= band))
    if bins_in_band.size == 0:
        bins_in_band = np.flatnonzero(freqs_hz >= LOW_CUT_HZ)
    floors_db = []
    for b0 in range(0, bins_in_band.size, _BIN_CHUNK):
        rows = bins_in_band[b0 : b0 + _BIN_CHUNK]
        floors_db.append(np.percentile(_db(power[rows]), NOISE_FLOOR_PERCENTILE, axis=1))
    noise_floor = float(np.mean(np.concatenate(floors_db)))

    low = (freqs_hz >= LOW_CUT_HZ) & (freqs_hz < BALANCE_SPLIT_HZ)
    high = (freqs_hz >= BALANCE_SPLIT_HZ) & (freqs_hz <= band)
    if not high.any():
        # A band that ends below the split would leave "high" empty and the ratio infinite.
        high = freqs_hz >= BALANCE_SPLIT_HZ
    balance = float(_db(long_term[low].sum()) - _db(long_term[high].sum()))

    intrusive = {}
    if ref is not None:
        intrusive = dict(
            si_sdr_db=si_sdr_db(y2, ref),
            lsd_db=lsd_db(y2, ref, sr),
            quiet_frame_snr_db=quiet_frame_snr_db(y2, ref, sr),
        )

    return MetricPanel(
        p25_paper_db=p25_paper,
        p25_abs_db=p25_abs,
        noise_floor_db=noise_floor,
        loudness_lufs=loudness,
        p95_db=p95,
        low_high_balance_db=balance,
        silent_frame_fraction=silent,
        floor_fraction=floor_fraction,
        peak_dbfs=peak_dbfs(y2),
        bandwidth_hz=bandwidth,
        **intrusive,
    )


# --- intrusive measures -----------------------------------------------------------------------


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
    e2, r2 = _as_2d(est), _as_2d(ref)
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
    e2, r2 = _as_2d(e), _as_2d(r)
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
        for (_, pe), (_, pr) in zip(_power_chunks(e_ch * gain), _power_chunks(r_ch)):
            a = np.maximum(pe, floor_power)
            b = np.maximum(pr, floor_power)
            n_valid = ((a > floor_power) | (b > floor_power)).sum(axis=0)
            diff_sq = np.square(10.0 * np.log10(a / b))  # 0 where both sit on the floor
            frames = n_valid > 0
            msq = diff_sq.sum(axis=0, dtype=np.float64)[frames] / n_valid[frames]
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


# --- warnings ---------------------------------------------------------------------------------


def warnings_for(input_panel: MetricPanel, output_panel: MetricPanel) -> list[str]:
    """Plain-language warnings when the output's scores look gamed, saturated or clipped.

    Comparisons involving NaN never warn (a measure that could not be taken says nothing).
    """
    i, o = input_panel, output_panel
    out: list[str] = []
    for which, panel in (("output", o), ("input", i)):
        if panel.floor_fraction >= FLOOR_SATURATION_FRACTION:
            prefix = "p25_paper_db" if which == "output" else "p25_paper_db of the input"
            out.append(
                f"{prefix} saturated: {100 * panel.floor_fraction:.0f}% of bins on the "
                f"-{TOP_DB:.0f} dB floor; it cannot rank results"
            )
    loudness_change = o.loudness_lufs - i.loudness_lufs
    if i.p25_paper_db - o.p25_paper_db > PAPER_GAIN_WARN_DB and loudness_change < -LOUDNESS_DROP_WARN_LU:
        out.append(
            f"p25_paper_db improved by {i.p25_paper_db - o.p25_paper_db:.1f} dB while loudness "
            f"fell by {-loudness_change:.1f} LU: the output is quieter, not necessarily cleaner"
        )
    if o.silent_frame_fraction - i.silent_frame_fraction > SILENT_RISE_WARN_FRACTION:
        out.append(
            f"silent frames rose from {100 * i.silent_frame_fraction:.0f}% to "
            f"{100 * o.silent_frame_fraction:.0f}%: muting quiet passages games p25_paper_db"
        )
    if o.low_high_balance_db - i.low_high_balance_db > BALANCE_RISE_WARN_DB:
        out.append(
            f"low/high balance rose by {o.low_high_balance_db - i.low_high_balance_db:.1f} dB: "
            f"p25_paper_db rewards bass boosts without removing any noise"
        )
    if i.bandwidth_hz - o.bandwidth_hz > BANDWIDTH_LOSS_WARN_HZ:
        out.append(
            f"bandwidth shrank from {i.bandwidth_hz / 1000:.1f} kHz to "
            f"{o.bandwidth_hz / 1000:.1f} kHz: low-passing games p25_paper_db and dulls the audio"
        )
    if o.peak_dbfs > PEAK_WARN_DBFS:
        out.append(
            f"output peaks at {o.peak_dbfs:+.1f} dBFS: it will clip if written as fixed-point"
        )
    return out
