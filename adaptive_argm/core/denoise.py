"""Remove steady broadband noise (hiss, white or coloured) from music with a decision-directed
Wiener filter whose strength follows how sure the noise estimate is, and return audio that
carries no such noise bit for bit unchanged.

Why this design (eval/results/denoise.md): minimum statistics alone take the floor of
dense music for noise; the previous flat clamp trusted a sub-band whenever its median-to-minimum
ratio was at most 2 dB above white noise's, which let held tones, square waves, pads and steady
strings (ratios BELOW white noise's, or peaky spectra) pass as noise, cut clean music by up to
31 dB SI-SDR, and set one flat level where the hiss is quietest (pink noise under-estimated).
Here, per channel and block:
1. Minimum statistics per bin: periodogram smoothed over `smoothing_s`, sliding minimum over
   `min_window_s`, median over time, bias-corrected on white noise. Music only adds power, so
   this is an upper bound on steady noise in every bin.
2. A sub-band (`band_octaves` wide, `band_low_hz`..`band_high_hz`) is trusted as noise only if
   it behaves like noise on two counts: its median-to-minimum ratio is within
   [`excess_min_db`, `excess_max_db`] of white noise's (music fluctuates more; held tones and
   square waves fluctuate less), and its spectrum is flat across its bins (`flatness_min_db`:
   harmonics are peaky, noise is not). Where fewer than `confident_bands` sub-bands pass, music
   may cover the noise most of the time (so the sub-band fluctuates like music) but leave it
   bare now and then: a sub-band is then also trusted by its minimum track alone, if that is flat
   across the bins (`floor_flatness_min_db`) and as steady over time as white noise's
   (`floor_spread_max_db`); its level is its minimum as it is. Only then, because those levels
   sit 0-2 dB over the noise where the others sit under it: mixed, the two tell a false tilt.
3. The noise spectrum is modelled as a level and a tilt in dB per octave (white 0, pink -3,
   brown -6): a lower envelope of the trusted sub-bands' levels, each first lowered by its
   excess (music under the noise lifts both; `tilt_excess_correction` dB per dB for the tilt,
   `excess_correction` for the level; a falling fit can be tried again with the smaller
   `coloured_tilt_excess_correction`, which reads coloured hiss steeper: off by default). When
   the trusted sub-bands cannot tell a tilt (they span less than `tilt_span_min_octaves`, or
   several tilts fit them equally well), the one nearest the raw slope of the top trusted
   sub-bands is taken (`tilt_prior_bands`), if its line stays under every sub-band's own
   minimum statistics; else the flattest, as first designed (a flat
   model sat 10-20 dB under pink hiss in the bass: eval/results/denoise_cv.md). The model never
   exceeds any sub-band's own minimum-statistics level by more than `fit_margin_db` (music only
   adds power). A model falling faster than `hold_tilt_below_db_per_octave` rises by at most
   `extrapolate_db` below the lowest trusted sub-band (such hiss has a knee; past it the tilt
   would cut the bass); a pink or flatter one goes on to the lowest bin. A tilt that steep needs
   `steep_tilt_min_bands` trusted sub-bands; weaker evidence gets the pink-like tilt. It is
   capped per bin by the bin's own minimum statistics (on such weak evidence, below the lowest
   trusted sub-band, `extrapolate_margin_db` under them). The lowest bins (under
   `own_floor_below_hz`, off by default) may rise to their own floor instead, one by one, where
   that bin behaves like hiss by itself and lies within `own_floor_within_db` of the model: pink
   hiss is loudest per bin there and the line reads it low. Last, the estimate is lowered by
   `bias_correction_db` (cutting music costs more than leaving a little hiss).
4. Strength = trusted sub-bands / `confident_bands` (at most 1): the Wiener gain G becomes
   1 - strength * (1 - G), so weak evidence means a gentle filter.
5. Bypass, returning the input bit for bit: no trusted sub-band, or the filter would remove less
   than `bypass_below_db` of the energy.
6. Stereo (`mid_side`, off by default): the side (left minus right, over the square root of two)
   gets an estimate and a filter of its own, and replaces what the channels' filters left of it;
   the mid stays as they left it. Hiss that is independent and even in the two channels puts half
   of itself in the side, where a mix puts little music, so the side shows it plainly. Only where
   each channel's minimum statistics hold at least the side's noise: hiss in one channel alone
   would otherwise leak into the other. Below the side's lowest trusted sub-band, where its model
   is extrapolated or held, it reads at least the quieter channel's estimate: a mix with its music
   in the side (wide panning, anti-phase voices) can show the side's hiss only high up, and a
   held model left the bass up to 16 dB under the hiss that the channels read within 3 dB
   (eval/results/denoise_cv.md).
Known limits: hiss that lies under the music's floor in every sub-band is left alone (there, even
the true noise spectrum gains next to nothing: see the diagnosis); noise-like music (a steady
noise pad) can be taken for hiss.

Levels: every power spectral density here is "power per bin" normalised so that white noise with
an RMS of -45 dBFS reads 10**(-45/10) in every bin. A level in dB is therefore the RMS, in dBFS, of
the full-band white noise that would have that density.

Pure numpy/scipy; audio is `(channels, samples)` float (1-D accepted), processed as float32.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field, fields, replace
from functools import lru_cache
from typing import Callable, Iterable

import numpy as np
from scipy.ndimage import uniform_filter1d

from ..config import check_field_types
from . import spectral
from .blocks import Blocking, Stage, apply, blockwise
from .levels import channels_first

_TINY = 1e-30
_SQRT_HALF = np.float32(math.sqrt(0.5))
REF_HZ = 1000.0
"""The frequency at which the noise model's level is stated."""
TILT_STEP_DB_PER_OCTAVE = 0.25
"""Resolution of the noise model's tilt."""


@dataclass(frozen=True)
class WienerSettings:
    """Every tunable of `wiener_denoise`, with its unit in its name. Plain scalars so that a
    preset can set them as TOML keys (`[[steps]] kind = "wiener"`)."""

    n_fft: int = 2048
    """STFT size in samples (Hann window of the same length). Longer was worse in NOTES.md."""
    hop: int = 512
    """STFT hop in samples (75 % overlap: perfect reconstruction when the gain is 1)."""
    smoothing_s: float = 0.1
    """Moving average over time of the periodogram before the sliding minimum (seconds)."""
    min_window_s: float = 1.5
    """Length of the sliding minimum (seconds): longer than the music's held notes are absent
    from a bin, short enough to follow a changing noise floor."""
    bias_correction_db: float = -3.0
    """Added to the (otherwise unbiased) noise estimate (dB). Negative on purpose: over-estimating
    the noise cuts music (costly), under-estimating it leaves a little hiss (cheap)."""
    band_low_hz: float = 500.0
    """Lower edge of the sub-bands searched for noise (Hz)."""
    band_high_hz: float = 20000.0
    """Upper edge of the sub-bands searched for noise (Hz); clipped to the Nyquist frequency."""
    band_octaves: float = 1.0 / 3.0
    """Width of the sub-bands (octaves)."""
    excess_min_db: float = -1.0
    """A trusted sub-band's median-to-minimum ratio (median over time / sliding minimum, median
    over its bins) is at least this far from white noise's (dB): anything steadier is a held
    tone, not noise."""
    excess_max_db: float = 1.0
    """... and at most this far above it (dB): anything more fluctuating is music."""
    excess_correction: float = 2.5
    """A trusted sub-band's level is lowered by this many dB per dB of positive excess (unitless):
    music under the noise lifts both (about 2.5-3 on the development songs' white noise; the
    `adaptive` preset uses 3.5, the cross-validated choice: eval/results/denoise_cv.md)."""
    tilt_excess_correction: float = 2.5
    """The same correction, for fitting the tilt only (the level then follows `excess_correction`).
    The `adaptive` preset uses the same value for both: a smaller one read pink hiss better, but
    it also tilted white hiss and cost ViSQOL on white noise (eval/results/denoise_cv.md)."""
    coloured_tilt_excess_correction: float = -1.0
    """Where the tilt fitted with `tilt_excess_correction` already falls (at or below
    `coloured_below_db_per_octave`: coloured hiss), the tilt is fitted again with this smaller
    correction, and the steeper of the two is kept if it is no steeper than
    `hold_tilt_below_db_per_octave`. Under falling hiss the lower sub-bands carry more music
    under the hiss, so the full correction lowers them most and flattens the line: pink hiss was
    read at -2 dB/octave and the model sat 8-11 dB under it in the bass. White hiss (a flat fit)
    keeps the full correction, which a smaller one would tilt. Negative: off (the library's
    default); the `adaptive` preset uses 2.0, which gained pink hiss 0.18 dB out of sample
    (eval/results/denoise_cv.md)."""
    coloured_below_db_per_octave: float = -1.5
    flatness_min_db: float = -0.5
    """A trusted sub-band's spectral flatness (geometric over arithmetic mean, over its bins, of
    the median power over time, dB) is at least this: noise reads about 0 dB, harmonics far less."""
    floor_flatness_min_db: float = -0.15
    """Where fewer than `confident_bands` sub-bands pass those two tests, a sub-band that fails
    them is still trusted if music leaves the noise bare now and then: its minimum track is flat
    across its bins (this flatness, of the track's median over time, dB; harmonics and reverb
    tails read far lower) ..."""
    floor_spread_max_db: float = 1.2
    """... and as steady over time as white noise's: its spread (90th minus 10th percentile over
    time, dB, median over the sub-band's bins) exceeds white noise's by at most this (dB). Music's
    own floor comes and goes with the notes. Such a sub-band's level is its minimum as it is (no
    excess correction: the fluctuation is the music's, the minimum is the noise's). Chosen by
    cross-validation (eval/results/denoise_cv.md); a negative value turns this evidence off."""
    tilt_min_db_per_octave: float = -6.0
    """Steepest falling noise spectrum the model may take (dB per octave)."""
    tilt_max_db_per_octave: float = 1.5
    """Steepest rising one (dB per octave)."""
    tilt_span_min_octaves: float = 0.66
    """Trusted sub-bands spanning less than this cannot tell a tilt: the model takes the prior
    (`tilt_prior_bands`) if that line stays under every sub-band's own minimum statistics, else
    it is flat."""
    tilt_prior_bands: int = 3
    """Where the trusted sub-bands cannot tell a tilt (too narrow a span, or several tilts that
    fit them equally well), the model takes the slope of the raw levels of the highest this many
    of them (`_prior_tilt`); 0 gives the flat model of the first design."""
    tilt_prior_offset_db_per_octave: float = 0.75
    """Added to that raw slope: music lifts the lower of those sub-bands a little more."""
    extrapolate_db: float = 9.0
    """Below the lowest trusted sub-band a model falling faster than `hold_tilt_below_db_per_octave`
    may rise by at most this much over its level there (dB), then is held flat: a tilt measured
    in the treble says little about the bass, and a -6 dB/octave hiss has its knee within two
    octaves or so (the `adaptive` preset uses 6: with 9, a model of brown hiss drawn through five
    trusted sub-bands lay 11-14 dB over the hiss below 250 Hz of a real clip, eval/results/denoise_cv.md)."""
    hold_tilt_below_db_per_octave: float = -3.5
    """A falling model at most this steep (pink hiss, whose 1/f spectrum has no knee in the audio
    band) is extrapolated to the lowest bin instead of being held; 0 holds every falling model."""
    steep_tilt_min_bands: int = 5
    """A model falling faster than `hold_tilt_below_db_per_octave` needs at least this many trusted
    sub-bands; from fewer it takes that tilt instead. Two or three sub-bands far apart, one of
    them a steady stretch of music that passed for noise, can read pink hiss as -6 dB/octave and
    lift the model 6-9 dB into the music below them (a 3 s excerpt of a development song lost
    2.1 dB SI-SDR under pink hiss that way: eval/results/denoise_cv.md). 0 turns the guard off."""
    extrapolate_margin_db: float = 0.0
    """Where fewer than `steep_tilt_min_bands` sub-bands are trusted, the model stays at least this
    far (dB) under each bin's own minimum statistics below the lowest trusted sub-band, where it is
    extrapolated (elsewhere the cap is the minimum statistics themselves). A model that reaches a
    bin's floor there claims that the music's quietest moments are all noise, on little evidence:
    steady music in one of three trusted sub-bands, read as a steep tilt, lifted a model 9-18 dB
    over white hiss below 2 kHz (the `adaptive` preset uses 3: eval/results/denoise_cv.md)."""
    own_floor_below_hz: float = 0.0
    """Below this frequency (and below the lowest trusted sub-band), a bin whose own statistics
    pass the noise test (excess fluctuation within `excess_min_db`..`excess_max_db`, a minimum
    track as steady as white noise's within `own_floor_spread_max_db`) is taken as noise at its
    own floor (its minimum statistics) where that lies over the model. The DC bin is tested
    against its own calibration (one degree of freedom). 0 turns it off. Why: pink hiss holds a
    sixth of its power under 32 Hz, where a line fitted above 500 Hz and held flat reads it
    several dB low, and where most music leaves the hiss bare (eval/results/denoise_cv.md)."""
    own_floor_min_s: float = 8.0
    """The lowest bins' own floor is used only in a block whose analysed frames cover at least this
    many seconds: one bin's minimum over two or three windows says little. On 3 s and 5 s of the real-music
    development excerpts under pink hiss the rule took sub-bass for hiss (nunc_dimittis lost 9.4
    and 3.5 dB), on 8 s and 10 s no excerpt lost more than 0.08 dB (eval/results/denoise_cv.md)."""
    own_floor_within_db: float = 20.0
    """A bin's floor more than this over the model (dB) is music (a steady synthesiser sub-bass
    passes the noise test too), and the model stays."""
    own_floor_spread_max_db: float = 1.2
    """How much more such a bin's minimum track may vary over time than white noise's does (dB of
    spread, `_spread_db`)."""
    fit_tolerance_db: float = 1.0
    """Trusted sub-bands within this of the fitted floor (dB) count as lying on it."""
    fit_margin_db: float = 1.0
    """The model may exceed a non-empty sub-band's own minimum-statistics level by at most this (dB)."""
    confident_bands: int = 3
    """Trusted sub-bands needed for full strength; fewer give a proportionally gentler filter."""
    empty_band_below_db: float = -110.0
    """A sub-band whose level is below this holds no noise and no music (a codec or resampler cut
    it away); it is neither trusted nor used as a bound (dB, see module doc)."""
    empty_band_drop_db: float = 60.0
    """A sub-band more than this far below the loudest sub-band is also taken as cut away (dB)."""
    dd_alpha: float = 0.95
    """Decision-directed smoothing of the a-priori SNR (0..1, per hop); higher = fewer
    musical-noise artefacts but smeared onsets."""
    mid_side: bool = False
    """In a stereo block, filter the side (the difference of the channels, over the square root of
    two) once more on its own estimate, where the hiss is independent and even in the two
    channels. A mix puts little of its music in the side and such hiss puts half of itself
    there: the side shows the hiss plainly, and its own filter removes more of it than the two
    channels' filters do. The mid (the sum) stays what the channels' filters make of it.
    Checked first (`mid_side_match_db`); otherwise the channels' filters alone."""
    mid_side_min_s: float = 6.0
    """The side's filter acts only in blocks whose frames cover at least this (seconds): on 3-5 s
    its statistics took a clean real excerpt's quiet, steady side for hiss."""
    mid_side_match_db: float = 1.0
    """The side's filter needs each channel to hold at least the side's noise: a channel's own
    minimum statistics may lie at most this far under the side's estimate (dB) in the 5th
    percentile of the bins the estimate covers. A channel without the hiss (hiss in one channel
    only, which a filtered side would carry into it) lies far under it."""
    gain_floor_db: float = -18.0
    """Lowest gain the filter applies at full strength (dB); limits musical noise."""
    bypass_below_db: float = -40.0
    """If the filter would remove less than this share of the input's energy (dB), the input is
    returned unchanged."""
    block_s: float = 30.0
    """Long inputs are processed in blocks of this length (seconds) to bound memory; each block
    gets its own noise estimate."""
    block_context_s: float = 2.5
    """Extra audio on each side of a block that is processed and then discarded (seconds);
    longer than `min_window_s` so block edges see a full minimum window."""

    def __post_init__(self) -> None:
        check_field_types(self)
        if self.n_fft < 16 or self.hop < 1 or self.hop > self.n_fft // 2:
            raise ValueError("need n_fft >= 16 and 1 <= hop <= n_fft / 2")
        if not 0.0 <= self.dd_alpha < 1.0:
            raise ValueError("dd_alpha must be in [0, 1)")
        if not 0.0 < self.band_low_hz < self.band_high_hz:
            raise ValueError("need 0 < band_low_hz < band_high_hz")
        if self.band_octaves <= 0 or self.smoothing_s < 0 or self.min_window_s <= 0:
            raise ValueError("band_octaves and min_window_s must be > 0, smoothing_s >= 0")
        if not self.excess_min_db <= self.excess_max_db:
            raise ValueError("need excess_min_db <= excess_max_db")
        if not self.tilt_min_db_per_octave <= self.tilt_max_db_per_octave:
            raise ValueError("need tilt_min_db_per_octave <= tilt_max_db_per_octave")
        if self.tilt_prior_bands < 0:
            raise ValueError("tilt_prior_bands must be >= 0")
        if self.hold_tilt_below_db_per_octave > 0:
            raise ValueError("hold_tilt_below_db_per_octave must be <= 0")
        if self.flatness_min_db > 0 or self.floor_flatness_min_db > 0:
            raise ValueError("flatness_min_db and floor_flatness_min_db must be <= 0")
        if min(self.fit_margin_db, self.fit_tolerance_db, self.extrapolate_db, self.extrapolate_margin_db) < 0:
            raise ValueError("need fit_margin_db, fit_tolerance_db, extrapolate_db, extrapolate_margin_db >= 0")
        if min(self.own_floor_below_hz, self.own_floor_within_db, self.own_floor_min_s) < 0:
            raise ValueError("need own_floor_below_hz, own_floor_within_db and own_floor_min_s >= 0")
        if self.coloured_below_db_per_octave > 0:
            raise ValueError("coloured_below_db_per_octave must be <= 0 (a falling fit)")
        if self.excess_correction < 0 or self.tilt_excess_correction < 0:
            raise ValueError("excess_correction and tilt_excess_correction must be >= 0")
        if self.confident_bands < 1 or self.steep_tilt_min_bands < 0:
            raise ValueError("confident_bands must be >= 1 and steep_tilt_min_bands >= 0")
        if self.mid_side_match_db < 0 or self.mid_side_min_s < 0:
            raise ValueError("mid_side_match_db and mid_side_min_s must be >= 0")
        if self.gain_floor_db > 0:
            raise ValueError("gain_floor_db must be <= 0")
        if self.block_s <= 0 or self.block_context_s < 0:
            raise ValueError("block_s must be > 0 and block_context_s >= 0")

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        """The setting names, i.e. the TOML keys a `wiener` preset step accepts."""
        return tuple(f.name for f in fields(cls))


@dataclass
class DenoiseTrace:
    """What `wiener_denoise` did, filled in as it runs (pass one as `trace=`): the energy it
    removed and the input energy of the blocks it analysed (power-spectrum units, summed over
    channels and blocks), and why it left blocks alone (reason -> number of channel blocks)."""

    removed: float = 0.0
    total: float = 0.0
    acted_blocks: int = 0
    side_blocks: int = 0
    """Stereo blocks whose side was filtered once more on its own estimate (`mid_side`)."""
    bypassed: dict[str, int] = field(default_factory=dict)

    def bypass(self, reason: str, total: float = 0.0) -> None:
        self.bypassed[reason] = self.bypassed.get(reason, 0) + 1
        self.total += total

    def acted(self, removed: float, total: float) -> None:
        self.acted_blocks += 1
        self.removed += removed
        self.total += total


# ---------------------------------------------------------------------------------------------
# STFT helpers: spectra are (frames, bins), on scipy's covering grid (every sample under the same
# number of frames, so a gain of 1 reconstructs exactly).


def _grid(n: int, s: WienerSettings) -> tuple[int, int]:
    return spectral.covering_grid(n, s.hop, s.n_fft)


def _frames(seconds: float, sr: int, hop: int) -> int:
    return max(1, int(round(seconds * sr / hop)))


def _interior(n: int, s: WienerSettings) -> slice:
    return spectral.interior(n, s.hop, s.n_fft, *_grid(n, s))


def _seconds(frames: int, sr: int, s: WienerSettings) -> float:
    """Seconds covered by `frames` analysis frames (what an estimate's minimum rules read)."""
    return frames * s.hop / sr


def _side_filter_applies(channels: int, n: int, sr: int, s: WienerSettings) -> bool:
    """Whether a block of `channels` x `n` samples is one the stereo side's filter may act on
    (`mid_side`, `mid_side_min_s`); whether it does is `_holds_side_noise`'s to say."""
    if not (s.mid_side and channels == 2 and n >= s.n_fft):
        return False
    i = _interior(n, s)
    return _seconds(i.stop - i.start, sr, s) >= s.mid_side_min_s


def _channel_power(x1: np.ndarray, s: WienerSettings) -> tuple[np.ndarray, np.ndarray]:
    """(complex64 STFT, normalised float32 power (module doc)) of one channel."""
    spec = spectral.stft(x1, s.n_fft, s.hop, *_grid(x1.shape[-1], s))
    return spec, _power(spec, s)


def _power(spec: np.ndarray, s: WienerSettings) -> np.ndarray:
    power = spectral.power(spec)
    power *= np.float32(1.0 / np.sum(spectral.hann(s.n_fft) ** 2))
    return power


def _sliding_minimum(x: np.ndarray, width: int) -> np.ndarray:
    """`scipy.ndimage.minimum_filter1d(x, width, axis=1, mode="nearest")`, the same values, by
    doubling: log2(width) whole-array minima instead of a queue per row, three times as fast
    on a 30 s block."""
    n, left = x.shape[1], width // 2
    m = np.empty((x.shape[0], n + width - 1), x.dtype)
    m[:, left:left + n] = x
    m[:, :left] = x[:, :1]
    m[:, left + n:] = x[:, -1:]
    span = 1  # m[:, t] holds the minimum of the padded input over [t, t + span)
    while 2 * span <= width:
        m = np.minimum(m[:, :-span], m[:, span:])
        span *= 2
    return np.minimum(m[:, :n], m[:, width - span:width - span + n])


_TRACK_ROWS = 64
"""Bins whose minimum tracks `_track_stats` takes through all its passes at once."""


def _track_stats(power: np.ndarray, sr: int, s: WienerSettings
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per bin: median over time of the minimum track (sliding minimum of the smoothed
    periodogram, not bias-corrected), the median over time of the smoothed periodogram divided
    by it (the "median-to-minimum ratio", linear), and that median itself; and the minimum
    track, `(bins, frames)`, each row sorted: only statistics over time are taken of it."""
    # (bins, frames) in memory: filters and medians along contiguous rows run ~2x faster; and a
    # few rows at a time through every pass, so that they stay in the cache (a fifth faster).
    rows = spectral.transposed(power)
    smooth = _frames(s.smoothing_s, sr, s.hop)
    width = _frames(s.min_window_s, sr, s.hop)
    track = np.empty_like(rows)
    med = np.empty(rows.shape[0], rows.dtype)
    for i in range(0, rows.shape[0], _TRACK_ROWS):
        p = rows[i:i + _TRACK_ROWS]
        if smooth > 1:
            p = uniform_filter1d(p, smooth, axis=1, mode="nearest")
        t = track[i:i + _TRACK_ROWS]
        t[:] = _sliding_minimum(p, width)
        # Sorted rows: numpy sorts float32 rows four times as fast as it partitions them for a
        # median, and the percentiles of `_spread_db` are read off them.
        t.sort(axis=1)
        p.sort(axis=1)  # p is not needed after
        med[i:i + _TRACK_ROWS] = spectral.median_of_sorted(p)
    low = spectral.median_of_sorted(track)
    return low, med / np.maximum(low, _TINY), med, track


def _spread_db(track: np.ndarray) -> np.ndarray:
    """Per row of a minimum track (its rows sorted, as `_track_stats` leaves them): its spread
    over time, 90th over 10th percentile, in dB."""
    q10, q90 = spectral.percentiles_of_sorted(track, (10.0, 90.0))
    return 10 * np.log10(np.maximum(q90, _TINY) / np.maximum(q10, _TINY))


_CALIBRATED = {
    # (n_fft, hop, sr, smoothing_s, min_window_s, dc): `_simulated_calibration` of them, for the
    # built-in presets' settings at the rates a run works at (a test holds them to it).
    (2048, 512, 44100, 0.1, 1.5, False): (3.3453369371129815, 4.900006294250488, 3.153467675585337),
    (2048, 512, 44100, 0.1, 1.5, True): (6.105625376831548, 7.138886451721191, 4.301546852537001),
    (2048, 512, 48000, 0.1, 1.5, False): (3.4236285281290715, 4.988549709320068, 3.1048113053496045),
    (2048, 512, 48000, 0.1, 1.5, True): (6.360961028477986, 7.270689964294434, 4.2308627953253195),
    (2048, 512, 88200, 0.1, 1.5, False): (2.4107322111462133, 3.6281685829162598, 2.18357876581668),
    (2048, 512, 88200, 0.1, 1.5, True): (3.687779631132267, 5.319068431854248, 3.4009772041834956),
    (2048, 512, 96000, 0.1, 1.5, False): (2.296714687559378, 3.441704750061035, 2.0570563193898304),
    (2048, 512, 96000, 0.1, 1.5, True): (3.5047925755423277, 5.042609691619873, 3.4023509851977387),
}
_SIMULATING = threading.Lock()


def _white_noise_calibration(
    n_fft: int, hop: int, sr: int, smoothing_s: float, min_window_s: float, dc: bool = False
) -> tuple[float, float, float]:
    """`_simulated_calibration` of these settings: from `_CALIBRATED` where it holds them (each
    simulation costs a run 0.07-0.09 s of its first denoised block), else simulated once."""
    key = (n_fft, hop, sr, smoothing_s, min_window_s, bool(dc))
    if key in _CALIBRATED:
        return _CALIBRATED[key]
    with _SIMULATING:  # the chains running side by side wait for one simulation
        return _simulated_calibration(*key)


@lru_cache(maxsize=16)
def _simulated_calibration(
    n_fft: int, hop: int, sr: int, smoothing_s: float, min_window_s: float, dc: bool
) -> tuple[float, float, float]:
    """(bias, ratio_db, spread_db) of steady white noise, measured on a fixed-seed simulation:
    bias = true PSD / median minimum track; ratio_db = its median-to-minimum ratio
    and spread_db its minimum track's spread over time (`_spread_db`), in dB. Over the bins
    between DC and Nyquist, or with `dc` of the DC bin alone, whose power has one degree of
    freedom, not two (simulated three times as long: one bin gives one value per window)."""
    s = WienerSettings(n_fft=n_fft, hop=hop, smoothing_s=smoothing_s, min_window_s=min_window_s)
    n = max(int((60 if dc else 20) * sr), int(8 * (min_window_s + smoothing_s) * sr), 8 * n_fft)
    noise = np.random.default_rng(12345).standard_normal(n).astype(np.float32)
    bins = slice(0, 1) if dc else slice(1, -1)  # without dc: no DC/Nyquist bins
    power = _channel_power(noise, s)[1][_interior(n, s), bins]
    low, ratio, _, track = _track_stats(power, sr, s)
    return (float(1.0 / max(float(np.median(low)), _TINY)), float(10 * np.log10(np.median(ratio))),
            float(np.median(_spread_db(track))))


# ---------------------------------------------------------------------------------------------
# Noise estimate


def _band_edges(sr: int, n_fft: int, s: WienerSettings) -> list[tuple[int, int, float]]:
    """Bin ranges [lo, hi) and centre frequencies (Hz, geometric) of the sub-bands between
    band_low_hz and band_high_hz (at most the Nyquist frequency)."""
    top = min(s.band_high_hz, sr / 2)
    edges_hz = [s.band_low_hz]
    while edges_hz[-1] < top:
        edges_hz.append(min(edges_hz[-1] * 2.0**s.band_octaves, top))
    out = []
    for lo_hz, hi_hz in zip(edges_hz[:-1], edges_hz[1:]):
        lo, hi = int(np.ceil(lo_hz * n_fft / sr)), int(np.floor(hi_hz * n_fft / sr))
        if hi > lo:
            out.append((lo, hi, math.sqrt(lo_hz * hi_hz)))
    return out


@dataclass(frozen=True)
class NoiseEstimate:
    """The noise found in one channel (one block of it): its spectrum as the filter uses it and
    the evidence behind it."""

    psd: np.ndarray
    """Noise power per STFT bin, `(n_fft // 2 + 1,)` float32, `bias_correction_db` included
    (module doc for the unit); all zeros when no noise was found."""
    level_db: float
    """The model's level at REF_HZ before `bias_correction_db` (dB; -inf when none)."""
    tilt_db_per_octave: float
    trusted_bands: int
    bands: int
    """Sub-bands searched (empty ones included)."""
    strength: float
    """0..1: how hard the filter may act on this estimate (0 = bypass)."""
    floor: np.ndarray | None = None
    """Each bin's minimum statistics, bias-corrected for white noise: an upper bound on the
    steady noise it holds (same unit as `psd`, no `bias_correction_db`); None when the channel
    was too short or not finite to measure."""
    lowest_bin: int = 0
    """The first bin of the lowest trusted sub-band: below it `psd` is the model extrapolated
    (or held), with no sub-band of its own evidence."""


def _empty_below(peak: float, s: WienerSettings) -> float:
    """Power under which a sub-band (or bin) counts as empty: under `empty_band_below_db`, or
    `empty_band_drop_db` under the loudest one (`peak`)."""
    return max(10.0 ** (s.empty_band_below_db / 10.0), peak * 10.0 ** (-s.empty_band_drop_db / 10.0))


def _no_noise(n_bins: int, bands: int, floor: np.ndarray | None = None) -> NoiseEstimate:
    return NoiseEstimate(np.zeros(n_bins, np.float32), -math.inf, 0.0, 0, bands, 0.0, floor)


def _flatness_db(v: np.ndarray) -> float:
    v = np.maximum(v.astype(np.float64), _TINY)
    return float(10 * np.log10(np.exp(np.mean(np.log(v))) / np.mean(v)))


def _stays_under(resid: np.ndarray, bound: float, s: WienerSettings) -> bool:
    """Whether a line through sub-band levels (`resid`: each level minus the line's tilt part)
    can sit at their median without exceeding `bound`, or lowered to it still passes within
    `fit_tolerance_db` of every one of them."""
    return float(np.median(resid)) <= bound + 1e-9 or bool(np.all(np.abs(resid - bound) <= s.fit_tolerance_db))


def _prior_tilt(x: np.ndarray, level_db: np.ndarray, s: WienerSettings) -> float:
    """The tilt to take where the fit cannot tell one (dB/octave, on the fit's grid): the
    least-squares slope of the uncorrected levels of the highest `tilt_prior_bands` trusted
    sub-bands (at `x` octaves, ascending), plus `tilt_prior_offset_db_per_octave`. The treble is
    where music lifts the floor least, and its raw slope tells hiss apart where the corrected
    levels cannot: about -1 to 0 dB/octave for white hiss under the development songs, -5 to -2.5
    for pink. Flat from fewer than two sub-bands, or with `tilt_prior_bands` 0."""
    k = min(s.tilt_prior_bands, x.size)
    if k < 2:
        return 0.0
    slope = float(np.polyfit(x[-k:], level_db[-k:], 1)[0]) + s.tilt_prior_offset_db_per_octave
    slope = min(max(slope, s.tilt_min_db_per_octave), s.tilt_max_db_per_octave)
    return round(slope / TILT_STEP_DB_PER_OCTAVE) * TILT_STEP_DB_PER_OCTAVE


def _fit_tilt(x: np.ndarray, y: np.ndarray, s: WienerSettings, bound: Callable[[float], float],
              prior: float) -> tuple[float, np.ndarray]:
    """(tilt dB/octave, inlier mask) of the noise floor under the sub-band levels `y` (dB) at `x`
    octaves from REF_HZ: a lower envelope, not a least-squares line, because music only ever
    lifts a sub-band. Each candidate tilt puts its line through the lowest point; the tilt that
    leaves the most sub-bands within `fit_tolerance_db` above its line wins, ties going to the
    one nearest `prior` (`_prior_tilt`). A span narrower than `tilt_span_min_octaves` takes the
    prior alone. A prior-led choice (a tie, or a narrow span) stands only if the line stays
    under `bound(tilt)`, the highest level every sub-band's own minimum statistics allow
    (`_stays_under`); else the flattest of the best tilts, as without a prior (for a narrow span,
    a flat line through the median of all of them)."""
    narrow = x.max() - x.min() < s.tilt_span_min_octaves
    tilts = (np.array([prior]) if narrow else
             np.arange(s.tilt_min_db_per_octave, s.tilt_max_db_per_octave + 1e-9, TILT_STEP_DB_PER_OCTAVE))
    resid = y[np.newaxis, :] - tilts[:, np.newaxis] * x[np.newaxis, :]
    within = resid - resid.min(axis=1, keepdims=True) <= s.fit_tolerance_db
    counts = within.sum(axis=1)
    best = np.flatnonzero(counts == counts.max())  # tilts ascend: argmin keeps the lower of two as near
    i = best[np.argmin(np.abs(tilts[best] - prior))]
    if (narrow or best.size > 1) and tilts[i] != 0.0 and not _stays_under(y[within[i]] - tilts[i] * x[within[i]],
                                                                          bound(float(tilts[i])), s):
        if narrow:
            return 0.0, np.ones(x.size, dtype=bool)
        i = best[np.argmin(np.abs(tilts[best]))]
    return float(tilts[i]), within[i]


def _own_floor(psd: np.ndarray, low: np.ndarray, ratio_db: np.ndarray, track: np.ndarray, model: np.ndarray,
               margin: float, sr: int, s: WienerSettings) -> np.ndarray:
    """`psd` of the lowest bins (DC first) lifted to their own floor where each passes the noise
    test by itself (`own_floor_below_hz`). `low`, `ratio_db`, `track`: their statistics
    (`_track_stats`); `model`: the model line; `margin`: the cap's factor under the floor."""
    dc, white = (_white_noise_calibration(s.n_fft, s.hop, sr, s.smoothing_s, s.min_window_s, dc=d) for d in (True, False))
    bias, white_ratio_db, white_spread_db = np.array([dc] + [white] * (psd.size - 1)).T
    excess = ratio_db - white_ratio_db
    floor = low * bias * margin
    noise_like = ((excess >= s.excess_min_db) & (excess <= s.excess_max_db)
                  & (_spread_db(track) - white_spread_db <= s.own_floor_spread_max_db)
                  & (floor <= model * 10.0 ** (s.own_floor_within_db / 10.0)))
    return np.where(noise_like, np.maximum(psd, floor), psd)


def _estimate_from_power(power: np.ndarray, sr: int, s: WienerSettings) -> NoiseEstimate:
    """The noise estimate from a normalised power spectrogram of one channel (interior frames)."""
    bias, white_ratio_db, white_spread_db = _white_noise_calibration(s.n_fft, s.hop, sr, s.smoothing_s,
                                                                     s.min_window_s)
    low, ratio, med, track = _track_stats(power, sr, s)
    per_bin = low * np.float32(bias)  # unbiased for steady white noise; an upper bound under music
    ratio_db = 10 * np.log10(np.maximum(ratio, _TINY))
    bands = _band_edges(sr, s.n_fft, s)
    levels = np.array([float(np.median(per_bin[lo:hi])) for lo, hi, _ in bands])
    if not bands or not np.any(levels > 0):
        return _no_noise(per_bin.size, len(bands), per_bin)
    used = levels >= _empty_below(float(levels.max()), s)
    trusted = np.zeros(len(bands), dtype=bool)
    excess_db = np.zeros(len(bands))
    for i, (lo, hi, _) in enumerate(bands):
        if used[i]:
            excess_db[i] = float(np.median(ratio_db[lo:hi])) - white_ratio_db
            trusted[i] = (s.excess_min_db <= excess_db[i] <= s.excess_max_db
                          and _flatness_db(med[lo:hi]) >= s.flatness_min_db)
    if int(trusted.sum()) < s.confident_bands and s.floor_spread_max_db >= 0:
        # Weak evidence from the fluctuation test: look for a bare noise floor, whose minimum is the noise.
        first, last = bands[0][0], bands[-1][1]
        spread_db = _spread_db(track[first:last])
        for i, (lo, hi, _) in enumerate(bands):
            if used[i] and not trusted[i] and (
                    float(np.median(spread_db[lo - first:hi - first])) - white_spread_db <= s.floor_spread_max_db
                    and _flatness_db(low[lo:hi]) >= s.floor_flatness_min_db):
                trusted[i], excess_db[i] = True, 0.0
    if not trusted.any():
        return _no_noise(per_bin.size, len(bands), per_bin)
    octaves = np.log2(np.array([c for _, _, c in bands]) / REF_HZ)
    level_db = 10 * np.log10(np.maximum(levels, _TINY))
    # Music under the noise lifts a sub-band's minimum and its fluctuation together.
    x = octaves[trusted]
    excess = np.maximum(excess_db[trusted], 0.0)
    y = level_db[trusted] - s.excess_correction * excess

    # Music only adds power: no sub-band can hold less noise than its own minimum statistics.
    def bound(tilt: float) -> float:
        return float(np.min(level_db[used] - tilt * octaves[used])) + s.fit_margin_db

    raw_db = level_db[trusted]
    prior = _prior_tilt(x, raw_db, s)
    tilt, inliers = _fit_tilt(x, raw_db - s.tilt_excess_correction * excess, s, bound, prior)
    if s.coloured_tilt_excess_correction >= 0 and tilt <= s.coloured_below_db_per_octave:
        steeper, at = _fit_tilt(x, raw_db - s.coloured_tilt_excess_correction * excess, s, bound, prior)
        if s.hold_tilt_below_db_per_octave <= steeper < tilt:
            tilt, inliers = steeper, at
    n_trusted = int(trusted.sum())
    weak = n_trusted < s.steep_tilt_min_bands
    if weak:  # too little evidence for a steep floor
        tilt = max(tilt, s.hold_tilt_below_db_per_octave)
    level = min(float(np.median(y[inliers] - tilt * x[inliers])), bound(tilt))
    freqs_hz = np.arange(per_bin.size) * (sr / s.n_fft)
    # A steeply falling model is held where it has risen `extrapolate_db` over its lowest trusted sub-band.
    hold_hz = sr / s.n_fft
    if tilt < s.hold_tilt_below_db_per_octave:  # <= 0 (validated): a flat or rising model is never held
        hold_hz = max(hold_hz, REF_HZ * 2.0 ** (float(x.min()) + s.extrapolate_db / tilt))
    model_db = level + tilt * np.log2(np.maximum(freqs_hz, hold_hz) / REF_HZ)
    lowest = bands[int(np.argmax(trusted))][0]  # the first bin of the lowest trusted sub-band
    cap, margin = per_bin, np.float32(1.0)
    if weak and s.extrapolate_margin_db > 0:  # keep clear of the music's floor where the model is extrapolated
        margin = np.float32(10.0 ** (-s.extrapolate_margin_db / 10.0))
        cap = per_bin.copy()
        cap[:lowest] *= margin
    psd = np.minimum(cap, 10.0 ** (model_db / 10.0))
    top = min(int(np.ceil(s.own_floor_below_hz / (sr / s.n_fft))), lowest)
    if top > 0 and _seconds(power.shape[0], sr, s) >= s.own_floor_min_s:
        psd[:top] = _own_floor(psd[:top], low[:top], ratio_db[:top], track[:top], 10.0 ** (model_db[:top] / 10.0),
                               margin, sr, s)
    psd = psd * 10.0 ** (s.bias_correction_db / 10.0)
    return NoiseEstimate(psd.astype(np.float32), level, tilt, n_trusted, len(bands),
                         min(1.0, n_trusted / s.confident_bands), per_bin, lowest)


def estimate_noise(x: np.ndarray, sr: int, settings: WienerSettings = WienerSettings()) -> NoiseEstimate:
    """The steady broadband noise of ONE channel (1-D, or one-row 2-D), as one estimate for the
    whole input (`wiener_denoise` makes one per block of `block_s`). No noise (all-zero `psd`,
    strength 0) when the input is shorter than `n_fft`, not finite, or holds none measurable."""
    x2 = channels_first(x)
    if x2.shape[0] != 1:
        raise ValueError("estimate_noise takes one channel; call it per channel")
    x1 = np.asarray(x2[0], dtype=np.float32)
    n_bins = settings.n_fft // 2 + 1
    if x1.shape[0] < settings.n_fft or not np.all(np.isfinite(x1)):
        return _no_noise(n_bins, 0)
    _, power = _channel_power(x1, settings)
    return _estimate_from_power(power[_interior(x1.shape[0], settings)], sr, settings)


def estimate_noise_psd(
    x: np.ndarray, sr: int, settings: WienerSettings = WienerSettings()
) -> np.ndarray:
    """`estimate_noise(x, sr, settings).psd`: noise power per STFT bin, `(n_fft // 2 + 1,)`."""
    return estimate_noise(x, sr, settings).psd


def found_noise_power(x: np.ndarray, sr: int, settings: WienerSettings = WienerSettings(),
                      seconds: float = 8.0, *, weak: bool = False) -> float:
    """What the filter would act on, as one number: the estimated noise power (linear, full
    scale = 1, summed over channels) weighted by the estimate's strength; 0 when it would
    bypass. Measured on the middle `seconds` of each channel (bounded cost: the router probes
    the mix and every stem; 8 s is what the router study measured on; its frames cover 7.96 s,
    under `own_floor_min_s`, so the lowest bins' own floor never enters these numbers).

    The router compares these numbers, so by default they come from the fluctuation test alone,
    without the bare-floor evidence (`floor_spread_max_db`), whose levels sit 0-2 dB over the
    hiss where the fluctuation test's sit under it. With it, the mix read more to act on than
    the stems together in five more cases of the router study, each one where stem-wise was
    better by 0.9 to 8.9 dB (eval/results/router.md: white hiss on the_hobo_redfarn's mix, direct
    +2.2 dB against stem-wise +11.1). `weak`: the whole estimate, floor included, which the
    router asks for only where the fluctuation test finds nothing in the mix nor in any stem;
    where the stereo side's own filter would act (`mid_side`), twice the side's noise as that
    filter reads it (the hiss of both channels) if that reads more. The side stays out of the
    strong evidence, which measures how plainly each channel shows the hiss: with it, the mix
    read its hiss as fully as a stem holding nothing else, and the router study fell from 131 to
    124 of 138 cases within 0.2 dB.
    Without `extrapolate_margin_db` either: the filter's caution, not evidence, and the router was
    studied without it (with it, the denoiser of one MusicGen clip under white hiss went to the mix
    and lost 1.9 dB against the stems, eval/results/paired.md)."""
    settings = replace(settings, extrapolate_margin_db=0.0)
    if not weak:
        settings = replace(settings, floor_spread_max_db=-1.0)
    x2 = channels_first(x)
    n = min(x2.shape[1], max(int(seconds * sr), 4 * settings.n_fft))
    a = (x2.shape[1] - n) // 2
    ests = [estimate_noise(ch[a:a + n], sr, settings) for ch in x2]
    total = sum(est.strength * float(np.mean(est.psd, dtype=np.float64)) for est in ests)
    if weak and _side_filter_applies(len(ests), n, sr, settings):
        # the side's filter reads independent, even hiss in the side, which holds half of it
        side = estimate_noise((x2[0, a:a + n] - x2[1, a:a + n]) * _SQRT_HALF, sr, settings)
        if _holds_side_noise(side, ests, sr, settings):
            side = _side_below_evidence(side, ests, settings)
            total = max(total, 2.0 * side.strength * float(np.mean(side.psd, dtype=np.float64)))
    return total


def detect_noise_level_db(
    x: np.ndarray, sr: int, settings: WienerSettings = WienerSettings()
) -> float:
    """The hiss level as one number: the full-band RMS (dBFS) of the estimated noise of the
    loudest channel, `bias_correction_db` included. -inf when none is found."""
    x2 = channels_first(x)
    levels = [float(np.mean(estimate_noise_psd(ch, sr, settings), dtype=np.float64)) for ch in x2]
    top = max(levels, default=0.0)
    return float(10 * np.log10(top)) if top > 0 else float("-inf")


# ---------------------------------------------------------------------------------------------
# Filter


def _dd_wiener_gain(power: np.ndarray, noise: np.ndarray, s: WienerSettings) -> np.ndarray:
    """Decision-directed Wiener gain (frames, bins), float32, floored at `gain_floor_db`.

    xi_t = alpha * G_{t-1}^2 * gamma_{t-1} + (1 - alpha) * max(gamma_t - 1, 0),
    G_t = xi_t / (1 + xi_t), with gamma = |X|^2 / noise the a-posteriori SNR.
    Bins without noise keep gain 1. Only the recursion itself runs frame by frame."""
    return _dd_wiener_gains([power], [noise], s)[0]


def _dd_wiener_gains(powers: list[np.ndarray], noises: list[np.ndarray], s: WienerSettings) -> list[np.ndarray]:
    """`_dd_wiener_gain` of blocks of one shape (a stereo block's channels and side), their
    recursions run as one over frames that hold a row of each: the loop costs per frame (numpy
    calls on short rows), and three blocks' gains take 0.06 s where one after the other took
    0.11 s on 30 s. Each gain is what it would be alone, to the bit."""
    alpha = np.float32(s.dd_alpha)
    frames, bins = powers[0].shape
    gamma = np.empty((frames, len(powers), bins), np.float32)
    has_noise = [noise > 0 for noise in noises]
    for i, (power, noise, has) in enumerate(zip(powers, noises, has_noise)):
        inv_noise = np.zeros(noise.shape, dtype=np.float32)
        inv_noise[has] = 1.0 / noise[has]
        np.multiply(power, inv_noise, out=gamma[:, i])
    gain = np.maximum(gamma - np.float32(1.0), np.float32(0.0))
    gain *= np.float32(1.0) - alpha  # the ML part of xi, overwritten frame by frame by G
    prev = np.zeros((len(powers), bins), dtype=np.float32)  # G^2 * gamma of the previous frame
    tmp = np.empty_like(prev)  # one scratch frame: the loop allocates nothing per frame
    for g, g_t in zip(gain, gamma):
        g += np.multiply(prev, alpha, out=tmp)  # now xi_t
        g /= np.add(g, np.float32(1.0), out=tmp)
        np.multiply(g, g, out=prev)
        prev *= g_t
    np.maximum(gain, np.float32(10.0 ** (s.gain_floor_db / 20.0)), out=gain)
    out = [np.ascontiguousarray(gain[:, i]) for i in range(len(powers))]  # one alone is contiguous already
    for g, has in zip(out, has_noise):
        g[:, ~has] = 1.0
    return out


def _analyse(x1: np.ndarray, sr: int, s: WienerSettings) -> tuple[np.ndarray, np.ndarray, NoiseEstimate]:
    """One channel's block: its STFT, its normalised power and its noise estimate."""
    spec, power = _channel_power(x1, s)
    return spec, power, _estimate(power, x1.shape[0], sr, s)


def _estimate(power: np.ndarray, n: int, sr: int, s: WienerSettings) -> NoiseEstimate:
    return _estimate_from_power(power[_interior(n, s)], sr, s)


def _gain(power: np.ndarray, est: NoiseEstimate, s: WienerSettings, trace: DenoiseTrace | None = None,
          total: float | None = None) -> np.ndarray | None:
    """The filter's gain for one channel's block on `est`; None when there is nothing (worth)
    removing (why: in `trace`): less than `bypass_below_db` of `total` (default: the channel's
    own energy)."""
    return _gains([power], [est], s, [trace], [total])[0]


def _gains(powers: list[np.ndarray], ests: list[NoiseEstimate], s: WienerSettings,
           traces: list[DenoiseTrace | None], totals: list[float | None]) -> list[np.ndarray | None]:
    """`_gain` of each of several blocks of one shape (each with its trace and total), their
    Wiener recursions run together (`_dd_wiener_gains`), in their order."""
    acting = [i for i, est in enumerate(ests) if est.strength > 0.0]
    wiener = dict(zip(acting, _dd_wiener_gains([powers[i] for i in acting], [ests[i].psd for i in acting], s)
                      if acting else []))
    out: list[np.ndarray | None] = []
    for i, (power, est, trace, total) in enumerate(zip(powers, ests, traces, totals)):
        if i not in wiener:
            if trace is not None:
                trace.bypass("no steady hiss found (no sub-band fluctuates and is flat like noise)",
                             float(np.sum(power, dtype=np.float64)))
            out.append(None)
            continue
        gain = wiener[i]
        if est.strength < 1.0:  # weak evidence: a gentler filter, 1 - strength * (1 - G)
            gain -= np.float32(1.0)
            gain *= np.float32(est.strength)
            gain += np.float32(1.0)
        own = float(np.sum(power, dtype=np.float64))
        kept = power * gain
        kept *= gain
        removed = own - float(np.sum(kept, dtype=np.float64))
        total = own if total is None else total
        if removed <= total * 10.0 ** (s.bypass_below_db / 10.0):
            if trace is not None:
                trace.bypass(f"no steady hiss found above {s.bypass_below_db:g} dB of the signal's energy", own)
            out.append(None)
            continue
        if trace is not None:
            trace.acted(removed, own)
        out.append(gain)
    return out


def _holds_side_noise(side: NoiseEstimate, channels: list[NoiseEstimate], sr: int, s: WienerSettings) -> bool:
    """Whether every channel holds at least the side's noise (`mid_side_match_db`), as independent
    and even hiss does."""
    if side.strength <= 0.0 or any(ch.floor is None for ch in channels):
        return False
    noise = side.psd * np.float32(10.0 ** (-s.bias_correction_db / 10.0))
    freqs_hz = np.arange(noise.size) * (sr / s.n_fft)
    covered = ((freqs_hz >= s.band_low_hz) & (freqs_hz <= s.band_high_hz)
               & (noise >= _empty_below(float(noise.max()), s)))
    if not covered.any():
        return False
    return all(np.percentile(10.0 * np.log10(np.maximum(ch.floor[covered], _TINY) / noise[covered]), 5)
               >= -s.mid_side_match_db for ch in channels)


def _side_below_evidence(side: NoiseEstimate, channels: list[NoiseEstimate], s: WienerSettings
                         ) -> NoiseEstimate:
    """The side's estimate, below its own lowest trusted sub-band at least the quieter channel's
    (up to the side's own minimum statistics): there the side's model is extrapolated (or held
    flat), and even hiss puts as much in the side as in each channel."""
    low = side.lowest_bin
    if low <= 0 or side.floor is None:
        return side
    psd = side.psd.copy()
    channels_low = np.minimum.reduce([ch.psd[:low] for ch in channels])
    # music only adds power: never above the side's own minimum statistics, as every estimate
    own = side.floor[:low] * np.float32(10.0 ** (s.bias_correction_db / 10.0))
    psd[:low] = np.maximum(psd[:low], np.minimum(channels_low, own))
    return replace(side, psd=psd)


def _denoise_stereo(seg: np.ndarray, sr: int, s: WienerSettings, trace: DenoiseTrace | None = None
                    ) -> np.ndarray:
    """A stereo block through the channels' filters, then its side through its own (`mid_side`)
    where both channels hold the side's noise."""
    n = seg.shape[1]
    (left, lp, le), (right, rp, re) = (_analyse(ch, sr, s) for ch in seg)
    side = (left - right) * _SQRT_HALF  # the STFT is linear
    side_power = _power(side, s)
    side_est = _estimate(side_power, n, sr, s)
    if _holds_side_noise(side_est, [le, re], sr, s):
        # judged against the whole block: a nearly mono mix's side is quiet, and what is little
        # of it is nothing of the mix
        total = float(np.sum(lp, dtype=np.float64) + np.sum(rp, dtype=np.float64))
        side_est = _side_below_evidence(side_est, [le, re], s)
        # (the side's own filter leaves no trace of its own: the channels' account for it below)
        *gains, side_gain = _gains([lp, rp, side_power], [le, re, side_est], s, [trace, trace, None],
                                   [None, None, total])
    else:
        gains, side_gain = _gains([lp, rp], [le, re], s, [trace, trace], [None, None]), None
    if side_gain is None:
        return _filtered(seg, zip((left, right), gains), s)
    for spec, gain in zip((left, right), gains):
        if gain is not None:
            spec *= gain
    side *= side_gain
    if trace is not None:  # what the channels' filters left in the side, less what its own leaves
        trace.side_blocks += 1
        trace.removed += (float(np.sum(_power((left - right) * _SQRT_HALF, s), dtype=np.float64))
                          - float(np.sum(_power(side, s), dtype=np.float64)))
    side *= _SQRT_HALF
    # Left and right rebuilt in place of a stack of temporaries (a 30 s block's STFT is 21 MB).
    out = np.empty((2,) + left.shape, left.dtype)
    half_mid = np.add(left, right, out=out[0])
    half_mid *= np.float32(0.5)  # the channels' filters' mid, over the square root of two
    np.subtract(half_mid, side, out=out[1])
    half_mid += side
    return spectral.istft(out, s.n_fft, s.hop, _grid(n, s)[0], n)


def _filtered(seg: np.ndarray, specs_gains: Iterable[tuple[np.ndarray, np.ndarray | None]], s: WienerSettings
              ) -> np.ndarray:
    """`seg` with each channel whose gain is not None replaced by its filtered STFT (taken one
    channel at a time from `specs_gains`, which may be lazy)."""
    out = seg
    for c, (spec, gain) in enumerate(specs_gains):
        if gain is not None:
            out = np.array(seg) if out is seg else out
            spec *= gain
            out[c] = spectral.istft(spec, s.n_fft, s.hop, _grid(seg.shape[1], s)[0], seg.shape[1])
    return out


def blocking(sr: int, s: WienerSettings) -> Blocking:
    """Blocks of `block_s` with `block_context_s` of context on each side and a 50 ms
    crossfade around each boundary; a signal up to one block plus its context is one block."""
    block = max(int(s.block_s * sr), 4 * s.n_fft)
    context = max(int(s.block_context_s * sr), 0)
    return Blocking(block=block, context=context, fade=min(int(0.025 * sr), context // 2), whole_up_to=block + context)


def _denoise_segment(seg: np.ndarray, sr: int, s: WienerSettings, trace: DenoiseTrace | None = None) -> np.ndarray:
    """One block of every channel, each with its own estimate (and a stereo block's side once
    more on its own, where `mid_side` allows); a channel with nothing (worth) removing, or a
    block shorter than one frame, is returned as it is."""
    if seg.shape[1] < s.n_fft:
        return seg
    if _side_filter_applies(seg.shape[0], seg.shape[1], sr, s):
        return _denoise_stereo(seg, sr, s, trace)
    analysed = (_analyse(ch, sr, s) for ch in seg)
    return _filtered(seg, ((spec, _gain(power, est, s, trace)) for spec, power, est in analysed), s)


def stage(sr: int, settings: WienerSettings, frames: int, channels: int,
          trace: DenoiseTrace | None = None) -> Stage:
    """The denoiser as a block stage over a stream of `frames` frames (`blocking`); `trace`
    gathers what each block did."""
    if trace is not None and frames < settings.n_fft:
        trace.bypass(f"shorter than one {settings.n_fft}-sample analysis frame")
    return lambda blocks: blockwise(blocks, frames, channels, blocking(sr, settings),
                                    lambda seg, first: _denoise_segment(seg, sr, settings, trace))


def wiener_denoise(
    x: np.ndarray, sr: int, settings: WienerSettings = WienerSettings(), *, out: np.ndarray | None = None,
    trace: DenoiseTrace | None = None,
) -> np.ndarray:
    """Remove steady broadband noise; return float32 audio of the same shape and length as `x`.

    Each channel gets its own noise estimate and gain: noise in a stereo file is usually
    independent per channel, a codec can treat the channels differently, and a channel without
    hiss must not be filtered because the other one has some. Long inputs are processed in blocks
    of `block_s` (each with its own estimate, `block_context_s` of context and a 50 ms
    crossfade), so memory stays bounded. Returned unchanged (as a float32 copy): inputs shorter
    than `n_fft`, inputs with NaN/inf, silence, and any channel or block in which no sub-band
    looks like steady noise or the filter would remove less than `bypass_below_db` of the
    energy (clean, band-limited or codec-only audio, steady tones). Nothing is clipped; DC passes
    through (remove it first).

    `out`: a float32 array of `x`'s shape to write the result into; it may be `x` itself
    (filtered in place, one channel of scratch memory instead of a copy of the whole input).
    `trace`: filled in with the energy removed and the reason for each bypass.
    """
    s = settings
    x_in = np.asarray(x)
    x2 = channels_first(x_in)
    if out is None:
        out2 = x2.astype(np.float32, copy=True)
    else:
        out2 = channels_first(out)
        if out2.shape != x2.shape or out2.dtype != np.float32:
            raise ValueError(f"out must be float32 of shape {x2.shape}")
        if not np.shares_memory(out2, x2):
            out2[...] = x2
    if out2.shape[1] < s.n_fft:
        if trace is not None:
            trace.bypass(f"shorter than one {s.n_fft}-sample analysis frame")
    elif not np.all(np.isfinite(out2)):
        if trace is not None:
            trace.bypass("non-finite samples")
    else:
        apply(stage(sr, s, out2.shape[1], out2.shape[0], trace), out2, out=out2)
    return out2.reshape(x_in.shape)
