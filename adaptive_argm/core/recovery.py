"""Give back the high band that a resampler or a codec cut off: spectral band replication by DSP
(the way of HE-AAC's SBR and iZotope RX's Spectral Recovery), and leave full-band audio alone.

How: `bandwidth.detect_cutoff` finds the brick wall (per block: codecs move it). Above it, up to
`ceiling_hz` or Nyquist, each STFT bin is a copy of a bin one patch width lower ("copy-up":
the band below the cutoff shifted up by whole bins, with the phase rotation that makes the shift
an exact single-sideband modulation). A shifted band keeps its time envelope sample for sample,
so the added band's per-frame level follows the source band and transients stay sharp. One
static gain curve per cutoff, common to all channels (the stereo image does not wander), scales
the copies to a target envelope: the level at the cutoff, continued with the top octave's slope
in dB per octave (never rising) plus `extra_rolloff_db_per_octave`, offset by `level_db`. Within
the wall's own transition (from the cutoff to where it has fallen `wall_drop_db`) the copy fades
in, so what the input still holds there is not doubled. The input is kept as it is: the output
is the input plus the added band, so below the cutoff it is the input sample for sample, except
where a codec dropped the band below its wall frame by frame: those frames are refilled first
(`gaps.py`), and the copy-up copies the refilled band. Where that codec left the band under its
wall empty in every frame, the band is added from under the empty one.

Nothing is done, and the input array itself is returned, when no brick wall is found (full-band,
natural roll-off, silence), when the wall sits at or above the detector's `full_band_hz`, when
the band to add spans less than `min_band_octaves`, or when the rate cannot hold anything above
the cutoff (a 32 kHz file cut at 16 kHz: resample it first).

Audio is `(channels, samples)` float (1-D mono accepted) at the rate the caller states.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass, fields, replace

import numpy as np
import scipy.fft
from scipy.ndimage import maximum_filter1d, uniform_filter1d

from ..config import check_field_types
from . import spectral
from .bandwidth import Bandwidth, BandwidthSettings, block_spectra, block_spectra_stream, decide, detect_cutoff
from .gaps import GapSettings, refills
from .levels import channels_first

_TINY = 1e-30


@dataclass(frozen=True)
class RecoverySettings:
    """Every tunable of `recover`, with units in names; plain scalars (TOML keys of a
    `spectral_recovery` preset step)."""

    n_fft: int = 2048
    """Synthesis STFT size (samples)."""
    hop: int = 512
    """Synthesis STFT hop (samples)."""
    ceiling_hz: float = 20000.0
    """Top of the band added (Hz); Nyquist when lower."""
    min_band_octaves: float = 0.3
    """Nothing is added above a cutoff from which the band to the ceiling spans less (octaves):
    with the 20 kHz ceiling, walls above 16.2 kHz are left alone. Encoders at good settings
    low-pass at 16.5-20 kHz on purpose, and a Vorbis development track (full band by any other
    test) moves its low-pass between 16.7 and 18.7 kHz from block to block."""
    source_octaves: float = 0.3
    """Width of the source band just below the cutoff that is copied up (octaves). The top of
    the band is most like what is missing: on the development half, 0.25-0.35 beat a full
    octave by 0.07-0.2 ViSQOL at every cutoff."""
    fit_octaves: float = 1.0
    """The slope continued above the cutoff is fitted over this many octaves below it."""
    max_slope_db_per_octave: float = -3.0
    """The continued slope is at most this (dB per octave): the added band never rises."""
    extra_rolloff_db_per_octave: float = 4.0
    """Added to the continued slope above the cutoff (dB per octave, >= 0 steepens)."""
    knee_hz: float = 10000.0
    """Above this absolute frequency (Hz) the envelope falls a further
    `knee_rolloff_db_per_octave`: music's long-term spectrum steepens above 12-16 kHz (on the
    development half, 14-16.5 kHz fell 19 dB per octave on average against 10 below 11 kHz), and
    a band added too loud costs more than one added too quiet."""
    knee_rolloff_db_per_octave: float = 6.0
    level_db: float = 0.0
    """Level of the added band relative to the continued envelope (dB)."""
    envelope_octaves: float = 1.0 / 6.0
    """Smoothing width of the long-term levels the gain curve is computed from (octaves)."""
    tonal_flatness_max: float = 0.3
    """A block whose octave below the cutoff is flatter than this (spectral flatness, 0..1) is
    noise-like: it is copied by the nominal distance, as HE-AAC's SBR does."""
    harmonic_min_strength: float = 0.3
    """A tonal block's partials count as evenly spaced when the autocorrelation of its log
    spectrum along frequency peaks this high (0..1, re lag 0) at the spacing."""
    min_partial_spacing_hz: float = 80.0
    """Smallest partial spacing searched for (Hz)."""
    max_gain_db: float = 20.0
    """Largest gain applied to a copied bin (dB): a near-empty source is not blown up."""
    fill_codec_gaps: bool = True
    """Refill, first, the frames where a codec dropped the band below its wall (`gaps.py`):
    nothing is refilled in a band that never lies `gap_drop_db` under its usual level."""
    gap_drop_db: float = 30.0
    """See `gaps.GapSettings.drop_db`."""
    gap_level_db: float = 0.0
    """See `gaps.GapSettings.level_db`."""
    gap_step_percentile: float = 25.0
    """See `gaps.GapSettings.step_percentile`."""
    noise_fill_hole_db: float = -20.0
    """On a codec's input (where the gap refill found bands the codec dropped), a cell of the added
    band that lies this far under the mean power around it (`noise_fill_octaves` x
    `noise_fill_frames`) is a hole, and is replaced by noise at `noise_fill_db` relative to that
    mean. The copy-up carries the lines the codec quantised to nothing up with it, holes the
    original does not have; AAC's noise filling and SBR's noise floor put noise in them. -20 dB
    is a depth that noise itself reaches in 1% of its cells (its cell power is exponentially
    distributed), so the natural dips of a noisy band are left alone. Resampled-only input is
    never touched. Below -150 it is off."""
    noise_fill_db: float = 0.0
    """The fill's level relative to the mean around the hole (dB). On the tuning half (MP3, then
    32 kHz) fills at -6, -3 and 0 dB took the LSD reduction above the cutoff from 33% to 40, 41
    and 42%, ViSQOL unchanged (+0.362 without, +0.364 to +0.368)."""
    noise_fill_octaves: float = 1.0 / 6.0
    noise_fill_frames: int = 3

    def __post_init__(self) -> None:
        check_field_types(self)
        if self.n_fft < 64 or self.hop < 1 or self.n_fft % self.hop or self.n_fft // self.hop < 2:
            raise ValueError("need n_fft >= 64 and a hop that divides it at least twice")
        if self.ceiling_hz <= 0 or self.min_band_octaves < 0:
            raise ValueError("need ceiling_hz > 0 and min_band_octaves >= 0")
        if not 0 < self.source_octaves <= 2 or not 0 < self.fit_octaves <= 3:
            raise ValueError("need 0 < source_octaves <= 2 and 0 < fit_octaves <= 3")
        if self.max_slope_db_per_octave > 0 or self.extra_rolloff_db_per_octave < 0:
            raise ValueError("max_slope_db_per_octave must be <= 0, extra_rolloff_db_per_octave >= 0")
        if self.envelope_octaves <= 0:
            raise ValueError("envelope_octaves must be > 0")
        if self.gap_drop_db <= 0:
            raise ValueError("gap_drop_db must be > 0")
        if not 0 <= self.gap_step_percentile <= 100:
            raise ValueError("gap_step_percentile must be in [0, 100]")
        if not self.noise_fill_hole_db <= self.noise_fill_db <= 0:
            raise ValueError("need noise_fill_hole_db <= noise_fill_db <= 0")
        if self.noise_fill_octaves <= 0 or self.noise_fill_frames < 1:
            raise ValueError("need noise_fill_octaves > 0 and noise_fill_frames >= 1")

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))


@dataclass(frozen=True)
class RecoveryReport:
    """What `recover` found and did."""

    acted: bool
    reason: str
    """Why it did nothing, or what it did, in one sentence."""
    kind: str
    """The detector's kind ("brick-wall", "roll-off", "full-band", "nyquist", "silent")."""
    cutoff_hz: float | None
    band_lo_hz: float | None
    """The band added, from the (lowest) cutoff..."""
    band_hi_hz: float | None
    """...to the ceiling or Nyquist."""
    level_re_below_db: float
    """Mean power per Hz of the added band relative to the octave below the cutoff (dB)."""
    slope_db_per_octave: float
    """The envelope slope used above the cutoff (dB per octave)."""
    flatness: float
    """Spectral flatness of the source band (0 tonal .. 1 white noise), median over blocks."""
    character: str
    """What most blocks' source was: "harmonic" (evenly spaced partials: copied by a whole
    number of spacings), "tonal" (peaky, no single spacing: copied by the nominal distance) or
    "noisy" (flatter than `tonal_flatness_max`)."""
    limited_samples: int
    """Samples where the added band was turned down so that nothing new exceeds full scale."""
    sample_rate_hz: int
    bandwidth: Bandwidth
    gaps_filled: float = 0.0
    """Share of the (frame, 1/6-octave band) cells in the octave below the cutoff where a band a
    codec dropped was refilled (0..1; `gaps.py`)."""
    noise_filled: float = 0.0
    """Share of the added band's (frame, bin) cells replaced by noise, where the copy carried a
    codec's holes up (0..1; `noise_fill_hole_db`)."""
    empty_from_hz: float | None = None
    """Where the band was added from instead of the wall: the codec left the band between the
    two empty in every frame (`gaps._empty_top_hz`); None when it did not."""

    def to_dict(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------------------------------------
# The gain curve


def _smoothed_db(power: np.ndarray, df_hz: float, query_hz: np.ndarray, octaves: float) -> np.ndarray:
    """Mean power of `power` (bin k at k * `df_hz`) over `octaves` around each query
    frequency, in dB."""
    cum = np.concatenate(([0.0], np.cumsum(power)))
    half = 2.0 ** (octaves / 2.0)
    lo = np.clip(np.floor(query_hz / half / df_hz).astype(int), 0, power.size - 1)
    hi = np.clip(np.ceil(query_hz * half / df_hz).astype(int) + 1, lo + 1, power.size)
    return 10.0 * np.log10(np.maximum((cum[hi] - cum[lo]) / (hi - lo), _TINY))


@dataclass(frozen=True)
class _Envelope:
    """The target levels of the band above one cutoff: bins [k_lo, k_hi), and what the copies'
    gains are computed from (the long-term spectrum of the blocks treated with that cutoff)."""

    k_lo: int
    k_hi: int
    target_db: np.ndarray  # (k_hi - k_lo,)
    fade: np.ndarray       # (k_hi - k_lo,) 0..1
    power: np.ndarray      # long-term power at the detector's resolution
    power_df_hz: float
    slope_db_per_octave: float


def _envelope(cutoff_hz: float, stop_hz: float, power: np.ndarray, sr: int, n_fft_analysis: int,
              s: RecoverySettings) -> _Envelope | None:
    """The target envelope above one cutoff, from the long-term power spectrum `power` of the
    blocks treated with it (resolution `n_fft_analysis`); None when there is no room for it."""
    nyq = sr / 2.0
    top_hz = min(s.ceiling_hz, nyq * (1.0 - 2.0 / s.n_fft))
    if top_hz <= cutoff_hz * 2.0 ** s.min_band_octaves:
        return None
    df = sr / s.n_fft
    k_lo, k_hi = int(math.ceil(cutoff_hz / df)), int(math.floor(top_hz / df)) + 1
    if k_lo < 16 or k_hi <= k_lo:
        return None
    f_hz = np.arange(k_lo, k_hi) * df
    a_df = sr / n_fft_analysis
    # The envelope below the cutoff: a straight line in dB over log-frequency, fitted to the
    # smoothed levels of the fit range (leaving out the last 1/24 octave, the wall's shoulder).
    fit_hz = cutoff_hz * 2.0 ** -np.linspace(1.0 / 24.0, s.fit_octaves, 32)
    fit_db = _smoothed_db(power, a_df, fit_hz, s.envelope_octaves)
    slope, at_cutoff_db = np.polyfit(np.log2(fit_hz / cutoff_hz), fit_db, 1)
    slope_used = min(float(slope), s.max_slope_db_per_octave) - s.extra_rolloff_db_per_octave
    target_db = (at_cutoff_db + slope_used * np.log2(f_hz / cutoff_hz) + s.level_db
                 - s.knee_rolloff_db_per_octave * np.maximum(np.log2(f_hz / s.knee_hz), 0.0))
    # Fade in across the wall's transition, where the input still holds some of its band.
    fade = np.ones(f_hz.size)
    if stop_hz > cutoff_hz:
        inside = f_hz < stop_hz
        fade[inside] = 0.5 - 0.5 * np.cos(np.pi * (f_hz[inside] - cutoff_hz) / (stop_hz - cutoff_hz))
    return _Envelope(k_lo, k_hi, target_db, fade, power, a_df, slope_used)


def _patching(spec: np.ndarray, k_lo: int, width: int, sr: int, s: RecoverySettings
              ) -> tuple[float, float, float]:
    """How one block's frames `spec` (`(channels, frames, bins)`) are copied above cutoff bin
    `k_lo`: (distance in bins, possibly fractional; the bin the patches are aligned to; the
    spectral flatness of the octave below the cutoff). Nominally the distance is `width` (the
    source band's) and patches start at the cutoff. When that octave is tonal and harmonic (its
    partials evenly spaced), the distance is the whole multiple of the partial spacing nearest to
    `width`, so that copied partials land on harmonic positions, and patch seams fall midway
    between partials rather than splitting one."""
    lo = k_lo // 2
    p = spectral.power(spec[..., lo:k_lo]).sum(axis=0) + np.float32(1e-20)  # (frames, bins)
    flat = np.exp(np.mean(np.log(p), axis=-1)) / np.mean(p, axis=-1)
    flatness = float(np.median(flat))
    nominal = (float(width), float(k_lo), flatness)
    if flatness > s.tonal_flatness_max:
        return nominal
    # Partial spacing: the autocorrelation along frequency of the detrended log spectrum.
    band = k_lo - lo
    m = np.log(p)
    m -= uniform_filter1d(m, size=max(3, band // 4), axis=-1, mode="nearest")
    r = scipy.fft.irfft(np.abs(scipy.fft.rfft(m, n=2 * band, axis=-1)) ** 2, n=2 * band, axis=-1).mean(axis=0)
    lag_lo = max(2, int(math.ceil(s.min_partial_spacing_hz * s.n_fft / sr)))
    lag_hi = band // 8  # at least eight partials in the octave
    if r[0] <= 0 or lag_hi <= lag_lo + 1:
        return nominal
    lag = lag_lo + int(np.argmax(r[lag_lo:lag_hi]))
    if r[lag] / r[0] < s.harmonic_min_strength or lag in (lag_lo, lag_hi - 1):
        return nominal
    a, b, c = r[lag - 1], r[lag], r[lag + 1]
    curve = a - 2.0 * b + c  # parabolic interpolation of the peak
    spacing = lag + 0.5 * (a - c) / curve if curve < 0 else float(lag)
    # Where the comb of partials sits: the phase of the mean log spectrum folded at the spacing.
    bins = np.arange(lo, k_lo)
    phase = float(np.angle(np.sum(m.mean(axis=0) * np.exp(2j * np.pi * bins / spacing))))
    between = (phase / (2 * np.pi) + 0.5) * spacing  # a point midway between two partials
    top = between + np.floor((k_lo - 2 - between) / spacing) * spacing
    return max(4.0, max(1, round(width / spacing)) * spacing), float(top), flatness


# ---------------------------------------------------------------------------------------------
# Synthesis


def _noise_fill(band: np.ndarray, k_lo: int, seed: int, s: RecoverySettings) -> int:
    """Replace, in place, the cells of `band` (`(channels, frames, bins)`, the added band from
    bin `k_lo` up) that lie `noise_fill_hole_db` under the mean power around them by noise at
    `noise_fill_db` relative to that mean, one random phase per cell for all channels (the fill
    does not widen the image). Returns how many cells were filled."""
    p = spectral.power(band)
    width = max(3, int(round(k_lo * (2.0 ** s.noise_fill_octaves - 1.0))))
    mean = uniform_filter1d(uniform_filter1d(p, width, axis=-1, mode="nearest"),
                            int(s.noise_fill_frames), axis=-2, mode="nearest")
    holes = p < mean * np.float32(10.0 ** (s.noise_fill_hole_db / 10.0))
    if not holes.any():
        return 0
    floor = mean * np.float32(10.0 ** (s.noise_fill_db / 10.0))
    phase = np.exp(2j * np.pi * np.random.default_rng(seed).random(band.shape[-2:])).astype(np.complex64)
    band[holes] = np.sqrt(floor[holes]) * np.broadcast_to(phase, band.shape)[holes]
    return int(holes.any(axis=0).sum())


def _limit_added(x2: np.ndarray, added: np.ndarray, sr: int) -> tuple[np.ndarray, int]:
    """x + g * added with a smooth gain g <= 1, common to all channels, so that no sample goes
    over full scale that was not over already (an over of the input keeps its own level)."""
    y = x2 + added
    if not (np.abs(y) > 1.0).any():
        return y, 0
    limit = np.maximum(np.abs(x2), np.float32(1.0))
    over = np.abs(y) > limit
    n_over = int(over.any(axis=0).sum())
    if not n_over:
        return y, 0
    need = np.ones(x2.shape, dtype=np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        g = (np.sign(y) * limit - x2) / added
    need[over] = np.clip(g[over], 0.0, 1.0)
    width = max(1, int(0.002 * sr)) * 2 + 1
    common = need.min(axis=0)
    common = -maximum_filter1d(-common, width)  # a minimum filter
    common = np.minimum(uniform_filter1d(common, width), 1.0).astype(np.float32)
    y = x2 + common * added
    return np.clip(y, -limit, limit), n_over


def _minority_walls(bw: Bandwidth) -> str:
    """What the decision overruled: walls found in fewer than half of the judged blocks (a
    cutoff that lasts part of the input, or an encoder's short low-pass), so the report says they
    were seen and left alone."""
    walled = [b for b, k in enumerate(bw.block_kinds) if k == "brick-wall"]
    if not walled:
        return ""
    judged = sum(1 for k in bw.block_kinds if k != "silent")
    cutoffs = sorted(min(c for c in (row[b] for row in bw.cutoffs_hz) if c is not None) for b in walled)
    return (f"; a brick wall at {cutoffs[(len(cutoffs) - 1) // 2]:.0f} Hz in {len(walled)} of {judged} "
            f"blocks of {bw.block_s:g} s, less than half the input: left alone")


def _walls(cutoffs_hz: list[float]) -> str:
    """The brick wall(s) a band was added above, as the report says it."""
    if len(cutoffs_hz) == 1:
        return f"a brick wall at {cutoffs_hz[0]:.0f} Hz"
    return f"brick walls from {cutoffs_hz[0]:.0f} to {cutoffs_hz[-1]:.0f} Hz, block by block"


def recover(x: np.ndarray, sr: int, settings: RecoverySettings = RecoverySettings(),
            detector: BandwidthSettings = BandwidthSettings()) -> tuple[np.ndarray, RecoveryReport]:
    """Regenerate the band above a detected brick-wall cutoff of `x` at `sr` Hz.

    Returns `(audio, report)`. `audio` is `x` itself (same object, untouched) when nothing is
    done; else float32 of `x`'s shape: the input plus the added band (and plus the refilled codec
    gaps below the cutoff, when `fill_codec_gaps` found any). The rate must be able to
    hold the band: resample a 16 or 32 kHz file to 44.1 or 48 kHz first."""
    s = settings
    x_in = np.asarray(x)
    x2 = channels_first(x_in)
    spectra, msq, block = block_spectra(x2, sr, detector)
    bw = decide(spectra, msq, block, sr, detector)

    def unchanged(reason: str) -> tuple[np.ndarray, RecoveryReport]:
        return x, RecoveryReport(False, reason, bw.kind, bw.cutoff_hz, None, None, math.nan,
                                 math.nan, math.nan, "", 0, sr, bw)

    if bw.kind != "brick-wall":
        return unchanged({
            "full-band": "the input has its full band",
            "roll-off": "no brick wall: the band ends in a natural roll-off",
            "silent": "the input is silent",
            "nyquist": f"the band reaches the Nyquist limit of {sr} Hz: resample to 44.1 or "
                       "48 kHz to make room for a recovered band"}[bw.kind] + _minority_walls(bw))
    if x2.shape[1] < s.n_fft:
        return unchanged("too short to recover")
    if not np.all(np.isfinite(x2)):
        return unchanged("the input holds NaN or infinite samples")
    stop_ratio = (bw.stop_hz or bw.cutoff_hz) / bw.cutoff_hz
    block_cutoffs = bw.block_cutoffs_hz

    def envelopes_of(spectra: np.ndarray) -> dict[float, _Envelope | None]:
        return {c: _envelope(c, c * stop_ratio, spectra[:, [b for b, v in enumerate(block_cutoffs) if v == c]]
                             .sum(axis=(0, 1)), sr, detector.n_fft, s)
                for c in sorted({v for v in block_cutoffs if v is not None})}

    envelopes = envelopes_of(spectra)
    if not any(e is not None for e in envelopes.values()):
        return unchanged(f"the band from {bw.cutoff_hz:.0f} Hz to {min(s.ceiling_hz, sr / 2):.0f} Hz "
                         f"spans less than {s.min_band_octaves:g} octave")

    x2 = x2.astype(np.float32, copy=False)
    source, refill, gaps, empty_hz = x2, None, 0.0, None
    if s.fill_codec_gaps:
        refill, gaps, empty_hz = refills(x2, sr, bw.cutoff_hz, GapSettings(
            n_fft=s.n_fft, hop=s.hop, drop_db=s.gap_drop_db, level_db=s.gap_level_db,
            step_percentile=s.gap_step_percentile))
        if refill is not None:
            # The copy-up's source and level come from the refilled band, as if the codec had
            # kept it; the walls stay where the detector found them in the input, unless the
            # codec left the band under its wall empty throughout: then the band is added from
            # there, since a copy of an empty band adds nothing.
            if empty_hz is not None:
                block_cutoffs = tuple(None if c is None else min(c, empty_hz) for c in block_cutoffs)
            source = x2 + refill
            envelopes = envelopes_of(block_spectra(source, sr, detector)[0])
    n = x2.shape[1]
    first, count = spectral.covering_grid(n, s.hop, s.n_fft)
    centres = first + s.n_fft // 2 + s.hop * np.arange(count)
    n_blocks = len(block_cutoffs)
    frame_block = np.clip(centres // block, 0, n_blocks - 1)
    synthesis = spectral.Synthesis(x2.shape[0], n, s.n_fft, s.hop, first, count)
    flat: list[float] = []
    kinds: list[str] = []
    added_power, below_power = 0.0, 0.0
    noise_fill = refill is not None and s.noise_fill_hole_db > -150.0
    filled, cells = 0, 0
    for b in range(n_blocks):
        cutoff = block_cutoffs[b]
        env = envelopes.get(cutoff) if cutoff is not None else None
        rows = np.flatnonzero(frame_block == b)
        if env is None or rows.size == 0:
            continue
        t0, t1 = int(rows[0]), int(rows[-1]) + 1
        spec = spectral.stft(source, s.n_fft, s.hop, first + t0 * s.hop, t1 - t0)
        nominal = int(round(env.k_lo * (1.0 - 2.0 ** -s.source_octaves)))
        shift, top, flatness = _patching(spec, env.k_lo, nominal, sr, s)
        flat.append(flatness)
        kinds.append("harmonic" if shift != nominal else
                     "tonal" if flatness <= s.tonal_flatness_max else "noisy")
        # Patch p covers [top + p * shift, top + (p + 1) * shift) and is the band just below
        # `top` moved up by (p + 1) * shift, rounded once per patch so that a fractional partial
        # spacing does not drift from patch to patch.
        k = np.arange(env.k_lo, env.k_hi)
        src = k - np.rint((np.floor((k - top) / shift) + 1) * shift).astype(np.int64)
        gain_db = env.target_db - _smoothed_db(env.power, env.power_df_hz, src * sr / s.n_fft,
                                               s.envelope_octaves)
        gain = (10.0 ** (np.minimum(gain_db, s.max_gain_db) / 20.0) * env.fade).astype(np.float32)
        phase = spectral.shift_phase((first + np.arange(t0, t1) * s.hop) % s.n_fft, k - src, s.n_fft)
        out = np.zeros_like(spec)
        out[..., env.k_lo:env.k_hi] = spec[..., src] * (phase * gain)
        if noise_fill:
            filled += _noise_fill(out[..., env.k_lo:env.k_hi], env.k_lo, b, s)
            cells += (t1 - t0) * (env.k_hi - env.k_lo)
        added_power += float(spectral.power(out[..., env.k_lo:env.k_hi]).mean())
        below_power += float(spectral.power(spec[..., env.k_lo // 2:env.k_lo]).mean())
        synthesis.add(t0, out)
    added = synthesis.result()
    if refill is not None:
        added += refill
    y, limited = _limit_added(x2, added, sr)
    used = [e for e in envelopes.values() if e is not None]
    lo_hz = min(e.k_lo for e in used) * sr / s.n_fft
    hi_hz = max(e.k_hi - 1 for e in used) * sr / s.n_fft
    level = 10.0 * math.log10(max(added_power, _TINY) / max(below_power, _TINY))
    character = max(("harmonic", "tonal", "noisy"), key=kinds.count)
    refilled = f"; refilled {gaps:.0%} of the octave below, where a codec dropped it frame by frame" if gaps else ""
    if empty_hz is not None:
        refilled += f"; from {empty_hz:.0f} Hz, under which the codec left its band empty throughout"
    noise = filled / cells if cells else 0.0
    if noise:
        refilled += f"; noise in {noise:.0%} of the added band's cells, holes the codec left"
    where = _walls(sorted({wall for wall, c in zip(bw.block_cutoffs_hz, block_cutoffs)
                           if c is not None and envelopes.get(c) is not None}))
    report = RecoveryReport(True, f"added {lo_hz:.0f}-{hi_hz:.0f} Hz above {where}{refilled}", bw.kind,
                            bw.cutoff_hz, lo_hz, hi_hz, level,
                            float(np.mean([e.slope_db_per_octave for e in used])),
                            float(np.median(flat)) if flat else math.nan, character, limited, sr, bw, gaps, noise,
                            empty_hz)
    return (y[0] if x_in.ndim == 1 else y), report


def detected(x, sr: int, detector: BandwidthSettings = BandwidthSettings()) -> dict:
    """The cutoff detector's decision on `x` (an array, or a `signal.Signal` read block by
    block) as a report shows it (the input's, whether or not the preset recovers anything):
    kind, cutoff, upper end of the content, each channel's cutoff, confidence."""
    if hasattr(x, "blocks"):
        bw = decide(*block_spectra_stream(x.blocks(), x.frames, x.channels, sr, detector), sr, detector)
    else:
        bw = detect_cutoff(x, sr, detector)
    return {"kind": bw.kind, "cutoff_hz": bw.cutoff_hz, "bandwidth_hz": bw.bandwidth_hz,
            "channel_cutoffs_hz": list(bw.channel_cutoffs_hz), "confidence": bw.confidence}


def merged(reports: list[RecoveryReport]) -> RecoveryReport:
    """One report for a chain whose recovery ran in several segments (a long input): the first
    segment that acted (else the first), with the band added over all of them, the overs
    limited summed, and the block-by-block cutoffs of every segment (context blocks included)."""
    if len(reports) == 1:
        return reports[0]
    acted = [r for r in reports if r.acted]
    base = acted[0] if acted else reports[0]
    blocks = tuple(c for r in reports for c in r.bandwidth.block_cutoffs_hz)
    kinds = tuple(k for r in reports for k in r.bandwidth.block_kinds)
    bw = replace(base.bandwidth, block_cutoffs_hz=blocks, block_kinds=kinds)
    if not acted:
        # Segments may have stood aside for different reasons (one saw a minority wall): each is said.
        why = Counter(r.reason for r in reports)
        if len(why) == 1:
            return replace(base, bandwidth=bw, reason=f"{base.reason} (in each of {len(reports)} segments)")
        return replace(base, bandwidth=bw, reason=" | ".join(f"{reason} (in {k} of {len(reports)} segments)"
                                                             for reason, k in why.items()))
    lo, hi = min(r.band_lo_hz for r in acted), max(r.band_hi_hz for r in acted)
    return replace(base, bandwidth=bw, band_lo_hz=lo, band_hi_hz=hi,
                   limited_samples=sum(r.limited_samples for r in reports),
                   level_re_below_db=float(np.mean([r.level_re_below_db for r in acted])),
                   gaps_filled=float(np.mean([r.gaps_filled for r in acted])),
                   noise_filled=float(np.mean([r.noise_filled for r in acted])),
                   empty_from_hz=min((r.empty_from_hz for r in acted if r.empty_from_hz is not None), default=None),
                   reason=f"added {lo:.0f}-{hi:.0f} Hz above {_walls(sorted({r.cutoff_hz for r in acted}))} "
                          f"in {len(acted)} of {len(reports)} segments")


INPUT_NYQUIST_SHARE = 0.93
"""A wall at or above this share of a lower-rate input file's Nyquist frequency is that limit, seen
through the resampler to the working rate: white noise at 32 kHz reads 15.32 kHz (0.958), the
real MusicGen mixes of the development corpus 14.89-15.10 kHz (0.930-0.944); a low-pass at
14.5 kHz (0.906) is a wall inside the file's band."""


def _cutoff_is(r: RecoveryReport, input_sr: int | None) -> str | None:
    """What a wall is when the input file's own rate explains it: its Nyquist limit."""
    if input_sr is None or input_sr >= r.sample_rate_hz or r.cutoff_hz is None \
            or r.cutoff_hz < INPUT_NYQUIST_SHARE * input_sr / 2:
        return None
    return (f"the {input_sr / 1000:g} kHz file's {input_sr / 2000:g} kHz Nyquist limit, through the resampler's "
            f"passband")


def summary(reports: dict[str, RecoveryReport], in_preset: bool, note: str | None = None,
            input_sr: int | None = None) -> dict:
    """What a result's report says about spectral recovery: whether the preset has the step,
    why it did not run (`note`), and for each chain it ran on ("mix", or a stem's name) the
    detected cutoff and its kind (and what it is, when the input file's own rate `input_sr`
    explains it), each channel's own cutoff, the cutoff block by block, the band added and its
    level relative to the octave below."""
    chains = {}
    for name, r in reports.items():
        bw = r.bandwidth
        chains[name] = {
            "acted": r.acted, "reason": r.reason, "kind": r.kind, "cutoff_hz": r.cutoff_hz,
            "cutoff_is": _cutoff_is(r, input_sr),
            "confidence": bw.confidence, "channel_cutoffs_hz": list(bw.channel_cutoffs_hz),
            "block_s": bw.block_s, "block_cutoffs_hz": list(bw.block_cutoffs_hz),
            "band_added_hz": [r.band_lo_hz, r.band_hi_hz] if r.acted else None,
            "level_re_below_db": r.level_re_below_db if r.acted else None,
            "slope_db_per_octave": r.slope_db_per_octave if r.acted else None,
            "character": r.character or None, "limited_samples": r.limited_samples,
            "codec_gaps_refilled": r.gaps_filled if r.acted else None,
            "codec_holes_noise_filled": r.noise_filled if r.acted else None,
            "codec_empty_band_from_hz": r.empty_from_hz}
    acted = [n for n, r in reports.items() if r.acted]
    lo = [reports[n].band_lo_hz for n in acted]
    hi = [reports[n].band_hi_hz for n in acted]
    return {"in_preset": in_preset, "note": note, "ran_on": list(reports), "acted_on": acted,
            "band_added_hz": [min(lo), max(hi)] if acted else None, "chains": chains}
