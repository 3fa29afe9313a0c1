"""Find where an input's band really ends, and whether that end is a brick wall (a resampler's or
a codec's low-pass) or the music's own roll-off.

Why it matters: generated music reaches users cut at 16 kHz (the Nyquist limit of MusicGen's
32 kHz models), 11 kHz (MP3 encoders' low-pass, nothing above it) or 8 kHz (copies resampled to
16 kHz). Many generated clips also roll off steeply from 6-10 kHz inside the band; that is their
timbre, not a cut, and nothing may be "restored" there.

How: the long-term power spectrum of each channel over each block of `block_s`, taken on a
log-frequency grid (`points_per_octave` points, mean power within each). A brick wall is an edge
where the level falls by at least `wall_drop_db` within `wall_width_octaves` and never comes
back above it up to Nyquist: a running maximum from the top, so that a dip below the edge
cannot fake a wall, taken over a 5-point running median, so that one stray partial left above a
codec's low-pass (seen on the development half) cannot hide one. Natural roll-offs fall 6-70 dB
per octave; a resampler's or LAME's low-pass falls 300-2000 dB per octave. The level just below
the edge is a median over `below_octaves`, so a lone sine (one loud point, a low median) is not
a wall.

The cutoff reported is the edge's `edge_db` point: where the running maximum from the top first
stays `edge_db` below the in-band level. `stop_hz` is where it stays `wall_drop_db` below.

Channels and blocks are analysed separately (codecs move the cutoff; a stereo file may have been
treated per channel), then combined into one decision: a block has a wall when every non-silent
channel has one (the lowest counts); the input is a brick wall when at least half of its
non-silent blocks are. Blocks with no wall of their own inside a walled input keep the input's
cutoff only when their content stops below it too (they are quiet near the edge); blocks whose
content reaches above it are left alone (`None`).

Audio is `(channels, samples)` float (1-D mono accepted) at the rate the caller states.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Iterable

import numpy as np
from scipy.ndimage import median_filter

from . import spectral
from .levels import channels_first

Kind = str
"""One of "brick-wall", "roll-off", "full-band", "nyquist" (the band reaches the Nyquist limit of
a sample rate too low to hold a full band: resample before recovering), "silent"."""

_TINY = 1e-30
_WALL_MIN_BINS = 12
_STRAY_CELLS = 5


@dataclass(frozen=True)
class BandwidthSettings:
    """Every tunable of `detect_cutoff`, units in names; plain scalars (TOML-friendly)."""

    n_fft: int = 4096
    """Analysis FFT size (samples): about 11 Hz resolution at 44.1 kHz. Hop is half of it."""
    block_s: float = 2.0
    """Length of the blocks that get their own decision (seconds); codecs move the cutoff."""
    points_per_octave: int = 48
    """Resolution of the log-frequency grid the edges are searched on."""
    min_cutoff_hz: float = 1000.0
    """Lowest cutoff searched for (Hz). An 8 kHz file upsampled holds its wall near 3.7 kHz."""
    wall_drop_db: float = 25.0
    """A wall must fall at least this far (dB) below the in-band level...
    (LAME at low bit rates cuts the top band per block down to a noise floor only 29-32 dB
    below the music: 30 missed those walls on the development half.)"""
    wall_width_octaves: float = 1.0 / 12.0
    """...within this width (octaves): 300 dB per octave at the defaults. Natural roll-offs,
    even MusicGen's steep ones (60 dB over about an octave), stay far below that."""
    below_octaves: float = 0.25
    """Width of the band just below an edge whose median level is the in-band level (octaves)."""
    edge_db: float = 6.0
    """The cutoff is the point where the level has fallen this far (dB) below the in-band level."""
    content_range_db: float = 90.0
    """An edge is only a wall of the music if its in-band level is within this range (dB) of the
    strongest part of the spectrum above 400 Hz; lower edges are noise floors, not music."""
    rolloff_range_db: float = 60.0
    """Without a wall, the band ends where the long-term level falls this far (dB) below its
    strongest point above 400 Hz (the metric panel's bandwidth rule)."""
    full_band_hz: float = 18500.0
    """A band reaching this frequency (Hz) is full: nothing above it is worth restoring. Encoders
    at good settings low-pass at 18.5-20 kHz on purpose (LAME V2 at 18.6 kHz, Vorbis at 18.7-20 kHz
    on the development tracks): those are full band."""
    silence_dbfs: float = -100.0
    """A block whose RMS is below this (dBFS) is silent and gets no decision."""

    def __post_init__(self) -> None:
        if self.n_fft < 64 or self.n_fft & (self.n_fft - 1):
            raise ValueError("n_fft must be a power of two >= 64")
        if self.block_s <= 0 or self.points_per_octave < 6:
            raise ValueError("need block_s > 0 and points_per_octave >= 6")
        if self.wall_drop_db <= self.edge_db or self.edge_db <= 0:
            raise ValueError("need 0 < edge_db < wall_drop_db")
        if self.wall_width_octaves <= 0 or self.below_octaves <= 0:
            raise ValueError("wall_width_octaves and below_octaves must be > 0")
        if self.min_cutoff_hz <= 0 or self.full_band_hz <= self.min_cutoff_hz:
            raise ValueError("need 0 < min_cutoff_hz < full_band_hz")

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))


@dataclass(frozen=True)
class Edge:
    """What one spectrum (one channel, one block, or a whole input) shows."""

    kind: Kind
    cutoff_hz: float | None
    """The wall's `edge_db` point (None without a wall)."""
    stop_hz: float | None
    """Where the wall has fallen by `wall_drop_db` (None without a wall)."""
    bandwidth_hz: float
    """Upper end of the content: the wall's cutoff, else the `rolloff_range_db` point (0 if silent)."""
    drop_db: float
    """Level just below the edge minus the highest level from two wall widths above the cutoff
    up to Nyquist (0 without a wall)."""
    slope_db_per_octave: float
    """Long-term slope of the octave below the band's end (dB per octave; NaN if undefined)."""


@dataclass(frozen=True)
class Bandwidth:
    """The detector's decision for a whole input, with the per-channel and per-block evidence."""

    kind: Kind
    cutoff_hz: float | None
    """The input's brick-wall cutoff (the median of its walled blocks'); None without one."""
    stop_hz: float | None
    bandwidth_hz: float
    drop_db: float
    slope_db_per_octave: float
    edge_slope_db_per_octave: float
    """Steepness of the wall: `drop_db` over the width from cutoff to stop (0 without a wall)."""
    confidence: float
    """0..1: the share of judged blocks agreeing with the decision, lowered when the drop only
    just passes `wall_drop_db`."""
    sample_rate_hz: int
    block_s: float
    block_cutoffs_hz: tuple[float | None, ...]
    """The cutoff each block should be treated with (see the module doc); None: leave it alone."""
    block_kinds: tuple[Kind, ...]
    channel_cutoffs_hz: tuple[float | None, ...]
    """Each channel's own decision over the whole input."""
    cutoffs_hz: tuple[tuple[float | None, ...], ...]
    """Raw walls, `[channel][block]`."""

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


# ---------------------------------------------------------------------------------------------
# One spectrum


def _log_grid(sr: int, s: BandwidthSettings) -> tuple[np.ndarray, np.ndarray]:
    """Edges (Hz) of the log-frequency cells from min_cutoff_hz / 2 to Nyquist, and the STFT bin
    each cell starts at; every cell holds at least one bin."""
    nyq = sr / 2.0
    lo = min(s.min_cutoff_hz / 2.0, nyq / 4.0)
    n = int(np.floor(np.log2(nyq / lo) * s.points_per_octave))
    edges_hz = lo * 2.0 ** (np.arange(n + 1) / s.points_per_octave)
    starts = np.ceil(edges_hz * s.n_fft / sr).astype(int)
    starts = np.maximum.accumulate(np.maximum(starts, np.arange(starts.size) + starts[0]))
    keep = starts <= s.n_fft // 2
    return edges_hz[keep], starts[keep]


def _cells_db(power: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Mean power of each log cell, in dB."""
    sums = np.add.reduceat(power[: starts[-1]], starts[:-1])
    return 10.0 * np.log10(np.maximum(sums / np.diff(starts), _TINY))


def _slope(levels_db: np.ndarray, hi: int, s: BandwidthSettings) -> float:
    """Least-squares slope (dB/octave) of the cells in the octave below cell `hi`."""
    lo = max(0, hi - s.points_per_octave)
    if hi - lo < 4:
        return float("nan")
    octaves = np.arange(lo, hi) / s.points_per_octave
    return float(np.polyfit(octaves, levels_db[lo:hi], 1)[0])


def analyse_spectrum(power: np.ndarray, sr: int, settings: BandwidthSettings = BandwidthSettings()) -> Edge:
    """Classify one long-term power spectrum (`(n_fft // 2 + 1,)`, any positive scale)."""
    s = settings
    power = np.asarray(power, dtype=np.float64)
    freqs_hz = np.arange(power.size) * sr / s.n_fft
    nyq = sr / 2.0
    usable = freqs_hz >= 400.0
    if not usable.any() or float(power[usable].max()) <= _TINY:
        return Edge("silent", None, None, 0.0, 0.0, float("nan"))
    top_db = 10.0 * np.log10(float(power[usable].max()))
    edges_hz, starts = _log_grid(sr, s)
    cells = _cells_db(power, starts)
    centres_hz = np.sqrt(edges_hz[:-1] * edges_hz[1:])
    # The highest level anywhere at or above each cell, ignoring isolated points.
    above = np.maximum.accumulate(median_filter(cells, size=_STRAY_CELLS, mode="nearest")[::-1])[::-1]
    below_n = max(2, int(round(s.below_octaves * s.points_per_octave)))
    width_n = max(1, int(round(s.wall_width_octaves * s.points_per_octave)))
    n = cells.size
    # Below this, a wall width spans fewer than _WALL_MIN_BINS bins and a window's own skirt
    # (a lone sine's) falls as fast as a wall.
    lowest_hz = max(s.min_cutoff_hz,
                    _WALL_MIN_BINS * sr / s.n_fft / (2.0 ** s.wall_width_octaves - 1.0))
    half = below_n // 2
    wall = None
    # The in-band level below every candidate edge j: the median of cells j - below_n .. j
    # (element i is edge below_n + i), taken at once rather than once per candidate.
    in_bands = (np.median(np.lib.stride_tricks.sliding_window_view(cells, below_n + 1), axis=1)
                if n > below_n else np.empty(0))
    for j in range(n - width_n - 1, below_n - 1, -1):  # highest edge first
        if centres_hz[j] < lowest_hz:
            break
        in_band = float(in_bands[j - below_n])
        if in_band < top_db - s.content_range_db or in_band - above[j + width_n] < s.wall_drop_db:
            continue
        # The median tolerates up to half its window inside the wall's transition, so the edge
        # found may sit that far above the real one: take the in-band level half a window lower,
        # where the whole window is below the wall.
        lo = max(j - below_n - half, 0)
        in_band = float(np.median(cells[lo : max(j - half, lo) + 1]))
        cut = lo + int(np.argmax(above[lo:] < in_band - s.edge_db))
        stop = lo + int(np.argmax(above[lo:] < in_band - s.wall_drop_db))
        # A wall falls from edge_db to wall_drop_db below the in-band level within one wall
        # width; a slope that merely steepens (a filter diving to zero at Nyquist) takes longer.
        if stop - cut <= width_n:
            wall = (in_band, cut, stop)
            break
    if wall is not None:
        in_band, cut, stop = wall
        cutoff_hz, stop_hz = float(edges_hz[cut]), float(edges_hz[stop])
        floor_db = float(above[min(cut + 2 * width_n, n - 1)])
        slope = _slope(cells, max(cut - width_n, 1), s)
        reaches_nyquist = np.log2(nyq / cutoff_hz) <= 2 * s.wall_width_octaves
        if cutoff_hz >= s.full_band_hz:
            kind = "full-band"
        elif reaches_nyquist:
            kind = "nyquist"
        else:
            kind = "brick-wall"
        return Edge(kind, cutoff_hz, stop_hz, cutoff_hz, in_band - floor_db, slope)
    # No wall: the band ends where the level falls rolloff_range_db below its strongest point.
    level_db = 10.0 * np.log10(np.maximum(power, _TINY))
    inside = np.flatnonzero(usable & (level_db >= top_db - s.rolloff_range_db))
    bandwidth_hz = float(freqs_hz[inside[-1]])
    j_end = int(np.searchsorted(centres_hz, bandwidth_hz))
    slope = _slope(cells, min(max(j_end, 1), n), s)
    if bandwidth_hz >= s.full_band_hz:
        kind = "full-band"
    elif np.log2(nyq / max(bandwidth_hz, 1.0)) <= 2 * s.wall_width_octaves:
        kind = "nyquist"
    else:
        kind = "roll-off"
    return Edge(kind, None, None, bandwidth_hz, 0.0, slope)


# ---------------------------------------------------------------------------------------------
# A whole input


def block_spectra(x: np.ndarray, sr: int, settings: BandwidthSettings = BandwidthSettings()
                  ) -> tuple[np.ndarray, np.ndarray, int]:
    """Long-term power spectra per channel and block: `(channels, blocks, n_fft // 2 + 1)`
    float64, the mean square per channel and block `(channels, blocks)`, and the block length in
    samples. Non-finite samples read as zeros. Frames are assigned to the block their centre
    falls in; a final block shorter than half a block joins the one before."""
    s = settings
    x2 = channels_first(x)
    if not np.isfinite(x2).all():
        x2 = np.nan_to_num(x2.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    n = x2.shape[1]
    hop = s.n_fft // 2
    block = max(int(round(s.block_s * sr)), hop)
    n_blocks = max(1, int(round(n / block)))
    first, count = spectral.centred_grid(n, hop, s.n_fft)
    inner = spectral.interior(n, hop, s.n_fft, first, count)
    frames = np.arange(count)[inner]
    owner = np.minimum((first + s.n_fft // 2 + hop * frames) // block, n_blocks - 1)
    spectra = np.zeros((x2.shape[0], n_blocks, s.n_fft // 2 + 1))
    msq = np.zeros((x2.shape[0], n_blocks))
    edges = [min(b * block, n) for b in range(n_blocks)] + [n]
    for b in range(n_blocks):  # one block at a time: memory stays bounded on long inputs
        mine = frames[owner == b]
        if mine.size:
            spec = spectral.stft(x2, s.n_fft, hop, first + int(mine[0]) * hop, mine.size)
            spectra[:, b] = spectral.power(spec).mean(axis=1)
        # Mean square from the samples themselves (exact, not window-weighted).
        seg = x2[:, edges[b] : edges[b + 1]].astype(np.float64)
        if seg.shape[1]:
            msq[:, b] = np.mean(seg * seg, axis=1)
    return spectra, msq, block


def block_spectra_stream(blocks: Iterable[np.ndarray], frames: int, channels: int, sr: int,
                         settings: BandwidthSettings = BandwidthSettings()
                         ) -> tuple[np.ndarray, np.ndarray, int]:
    """`block_spectra` of a `frames`-long signal arriving as `(channels, m)` blocks, holding
    about one analysis frame of it: the same numbers as on the whole array."""
    s = settings
    hop = s.n_fft // 2
    if frames < s.n_fft:  # no interior frame: the edge frames count (a short clip, held whole)
        x = np.concatenate([np.asarray(b, np.float32) for b in blocks] or [np.zeros((channels, 0), np.float32)],
                           axis=1)
        return block_spectra(x, sr, s)
    block = max(int(round(s.block_s * sr)), hop)
    n_blocks = max(1, int(round(frames / block)))
    spectra = np.zeros((channels, n_blocks, s.n_fft // 2 + 1))
    counts = np.zeros(n_blocks)
    msq = np.zeros((channels, n_blocks))
    edges = np.array([min(b * block, frames) for b in range(n_blocks)] + [frames])
    buf, buf_lo, pos, start = np.zeros((channels, 0), np.float32), 0, 0, 0
    for raw in blocks:
        x = np.asarray(raw, np.float32)
        if not np.isfinite(x).all():
            x = np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
        # Mean square, split at the block edges this piece crosses.
        cuts = np.concatenate(([pos], edges[(edges > pos) & (edges < pos + x.shape[1])], [pos + x.shape[1]]))
        for a, b in zip(cuts[:-1], cuts[1:]):
            k = min(int(np.searchsorted(edges, a, side="right")) - 1, n_blocks - 1)
            seg = x[:, a - pos:b - pos].astype(np.float64)
            msq[:, k] += np.sum(seg * seg, axis=1)
        pos += x.shape[1]
        buf = np.concatenate([buf, x], axis=1)
        # Every interior frame (start a multiple of hop, wholly inside) that has arrived.
        last = (pos - s.n_fft) // hop * hop
        if last >= start:
            count = (last - start) // hop + 1
            spec = spectral.power(spectral.stft(buf, s.n_fft, hop, start - buf_lo, count))
            owner = np.minimum((start + hop + hop * np.arange(count)) // block, n_blocks - 1)
            for b in np.unique(owner):
                spectra[:, b] += spec[:, owner == b].sum(axis=1)
                counts[b] += int(np.sum(owner == b))
            start = last + hop
            buf, buf_lo = buf[:, start - buf_lo:], start
    spectra /= np.maximum(counts, 1)[None, :, None]
    msq /= np.maximum(np.diff(edges), 1)[None, :]
    return spectra, msq, block


def detect_cutoff(x: np.ndarray, sr: int, settings: BandwidthSettings = BandwidthSettings()) -> Bandwidth:
    """Find the effective cutoff of `x` (`(channels, samples)` or mono 1-D) at `sr` Hz.

    Never raises on silence, mono, short, low-rate or all-high-band input: silence reads
    "silent", a 16 kHz file whose content reaches its Nyquist limit reads "nyquist", an input with
    nothing but high band reads "full-band" or "roll-off" by where its content ends."""
    return decide(*block_spectra(x, sr, settings), sr, settings)


def decide(spectra: np.ndarray, msq: np.ndarray, block: int, sr: int,
           settings: BandwidthSettings = BandwidthSettings()) -> Bandwidth:
    """`detect_cutoff` from `block_spectra`'s output (callers that also need the spectra, such as
    spectral recovery, compute them once)."""
    s = settings
    n_ch, n_blocks = msq.shape
    silent = 10.0 * np.log10(np.maximum(msq, _TINY)) < s.silence_dbfs
    edges = [[analyse_spectrum(spectra[c, b], sr, s) if not silent[c, b]
              else Edge("silent", None, None, 0.0, 0.0, float("nan"))
              for b in range(n_blocks)] for c in range(n_ch)]
    channel_edges = [analyse_spectrum(spectra[c].sum(axis=0), sr, s) if not silent[c].all()
                     else Edge("silent", None, None, 0.0, 0.0, float("nan")) for c in range(n_ch)]
    overall = analyse_spectrum(spectra.sum(axis=(0, 1)), sr, s) if not silent.all() else \
        Edge("silent", None, None, 0.0, 0.0, float("nan"))

    def walled(e: Edge) -> bool:
        return e.kind == "brick-wall"

    # Per block: a wall only when every non-silent channel has one (the lowest counts).
    block_walls: list[float | None] = []
    block_kinds: list[Kind] = []
    for b in range(n_blocks):
        live = [edges[c][b] for c in range(n_ch) if edges[c][b].kind != "silent"]
        if not live:
            block_walls.append(None)
            block_kinds.append("silent")
        elif all(walled(e) for e in live):
            block_walls.append(min(e.cutoff_hz for e in live))
            block_kinds.append("brick-wall")
        else:
            block_walls.append(None)
            block_kinds.append(next((e.kind for e in live if not walled(e)), live[0].kind))
    judged = [k for k in block_kinds if k != "silent"]
    walls = sorted(w for w in block_walls if w is not None)
    is_wall = bool(judged) and 2 * len(walls) >= len(judged)
    if not judged:
        return Bandwidth("silent", None, None, 0.0, 0.0, float("nan"), 0.0, 1.0, sr, block / sr,
                         tuple(None for _ in range(n_blocks)), tuple(block_kinds),
                         tuple(None for _ in range(n_ch)),
                         tuple(tuple(None for _ in range(n_blocks)) for _ in range(n_ch)))
    raw = tuple(tuple(e.cutoff_hz if walled(e) else None for e in row) for row in edges)
    channel_cutoffs = tuple(e.cutoff_hz if walled(e) else None for e in channel_edges)
    if not is_wall:
        kind = overall.kind if overall.kind != "brick-wall" else "roll-off"
        agree = sum(1 for k in judged if k != "brick-wall") / len(judged)
        return Bandwidth(kind, None, None, overall.bandwidth_hz, 0.0, overall.slope_db_per_octave,
                         0.0, agree, sr, block / sr, tuple(None for _ in range(n_blocks)),
                         tuple(block_kinds), channel_cutoffs, raw)
    cutoff_hz = walls[(len(walls) - 1) // 2]
    tol = 2.0 ** s.wall_width_octaves
    # Blocks without a wall of their own: keep the cutoff only if their content ends below it.
    fill: list[float | None] = []
    for b in range(n_blocks):
        if block_walls[b] is not None:
            fill.append(block_walls[b])
            continue
        live = [edges[c][b] for c in range(n_ch) if edges[c][b].kind != "silent"]
        top = max((e.bandwidth_hz for e in live), default=0.0)
        fill.append(cutoff_hz if top <= cutoff_hz * tol else None)
    agree = sum(1 for w in block_walls if w is not None and cutoff_hz / tol <= w <= cutoff_hz * tol)
    drop = overall.drop_db if overall.kind in ("brick-wall", "nyquist", "full-band") and overall.drop_db > 0 \
        else float(np.median([e.drop_db for row in edges for e in row if walled(e)]))
    # The wall's width from the whole input's spectrum, placed at the blocks' median cutoff.
    ratio = overall.stop_hz / overall.cutoff_hz if overall.stop_hz and overall.cutoff_hz else tol
    stop_hz = cutoff_hz * min(max(ratio, 1.0), tol)
    width_oct = max(math.log2(stop_hz / cutoff_hz), 1.0 / s.points_per_octave)
    confidence = agree / len(judged) * min(1.0, drop / (2.0 * s.wall_drop_db))
    slope = overall.slope_db_per_octave
    return Bandwidth("brick-wall", cutoff_hz, stop_hz, cutoff_hz, drop, slope, drop / width_oct,
                     confidence, sr, block / sr, tuple(fill), tuple(block_kinds), channel_cutoffs, raw)
