"""Per-frame summaries of audio pushed block by block: all that the metric panel keeps of a
signal, so that an hour is measured in bounded memory and a 3 s clip the same way.

The frames are librosa's (`center=True`: 2048 samples, 512 apart, zeros before the first and after
the last sample) on the mono downmix. Kept per frame: the 128-band mel power (the paper's number
and the in-band percentiles need the whole mel image: 128 x frames float32, 160 MB for an hour)
and the RMS over all channels (silent frames). Kept per STFT bin: the long-term mean power (of
the frames wholly inside the signal) and the bin's level over time, for the noise floor (a
per-bin percentile over time): every level itself up to `KEEP_LEVELS_FRAMES` frames (the
percentile is then exact), beyond that a histogram at `HIST_STEP_DB` resolution (within half a
step, 0.005 dB, however long the signal). Kept whole: the peak and the BS.1770 loudness
(`levels.LoudnessMeter`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import spectral
from .levels import LoudnessMeter, POWER_FLOOR, downmix, power_db

N_FFT, HOP, N_MELS = spectral.N_FFT, spectral.HOP, spectral.N_MELS
HIST_LOW_DB = 10.0 * np.log10(POWER_FLOOR)
"""The histograms' lowest level, where `power_db` floors digital silence (-100 dB)."""
HIST_STEP_DB = 0.01
HIST_CELLS = 20000
"""-100 to +100 dB in 0.01 dB steps (a full-scale sine reads about +53 dB in its bin; higher
levels land in the top cell)."""
CHUNK_FRAMES = spectral.CHUNK_FRAMES
KEEP_LEVELS_FRAMES = 8192
"""Levels kept as they are up to this many frames (95 s at 44.1 kHz, 33 MB of float32): a
30 s clip's percentiles came from an 82 MB histogram whose filling and reading cost half of
its panel's time (0.35 of 0.6 s); exact, and smaller, below this."""
_PERCENTILE_ROWS = 64
_HIST_ROWS = 32


@dataclass(frozen=True)
class Summary:
    """What `FrameStats` kept of a signal of `frames` samples at `sr`."""

    sr: int
    frames: int
    mel_power: np.ndarray
    """(analysis frames, N_MELS) float32: the mel spectrogram, frames along the first axis."""
    long_term_power: np.ndarray
    """(1 + N_FFT // 2,) float64: mean power of each STFT bin over the frames wholly inside the
    signal (all frames when none is)."""
    frame_rms_dbfs: np.ndarray
    """(analysis frames,) RMS over all channels of each frame, dBFS (-inf for silence)."""
    levels: np.ndarray | None
    """(analysis frames, bins from `first_bin`) float32: each bin's level in dB, frame by frame;
    None when the signal had more than `KEEP_LEVELS_FRAMES` frames (then `level_histogram`)."""
    level_histogram: np.ndarray | None
    """(bins from `first_bin`, HIST_CELLS) uint32: how many frames had each bin at each level;
    None while `levels` holds them."""
    first_bin: int
    peak: float
    loudness_lufs: float

    def bin_percentile_db(self, q: float, bins: np.ndarray) -> np.ndarray:
        """Per STFT bin in `bins` (all >= `first_bin`), the `q`-th percentile over time of its
        level in dB, as `np.percentile` interpolates it: exact from the levels, within
        `HIST_STEP_DB / 2` of it from the histogram (within `HIST_STEP_DB` in the floor cell,
        which reads as the floor itself)."""
        if self.levels is not None:
            # Each bin's levels as a sorted row: numpy sorts float32 rows several times as fast
            # as it partitions columns, and the percentile of a set does not depend on its order.
            # A band's bins are a run: sliced, not gathered.
            at = bins - self.first_bin
            run = at.size > 0 and bool(np.all(np.diff(at) == 1))
            rows = spectral.transposed(self.levels[:, at[0]:at[-1] + 1] if run else self.levels[:, at])
            rows.sort(axis=1)
            return spectral.percentiles_of_sorted(rows, q).astype(np.float64)
        centre = HIST_LOW_DB + (np.arange(HIST_CELLS) + 0.5) * HIST_STEP_DB
        centre[0] = HIST_LOW_DB  # the floor cell: digital silence reads exactly the floor
        out = np.empty(len(bins))
        for i in range(0, len(bins), _PERCENTILE_ROWS):  # a few rows at a time: no full-size cumsum
            cumulative = np.cumsum(self.level_histogram[bins[i:i + _PERCENTILE_ROWS] - self.first_bin], axis=1,
                                   dtype=np.int64)
            total = cumulative[:, -1]
            rank = q / 100.0 * (total - 1)
            below, frac = np.floor(rank).astype(np.int64), rank - np.floor(rank)
            lo = centre[np.argmax(cumulative > below[:, np.newaxis], axis=1)]
            hi = centre[np.argmax(cumulative > np.minimum(below + 1, total - 1)[:, np.newaxis], axis=1)]
            out[i:i + _PERCENTILE_ROWS] = lo + frac * (hi - lo)
        return out


class FrameStats:
    """Push `(channels, m)` float blocks of one signal at `sr`, then take its `summary`.
    `histogram_from_hz`: the lowest frequency whose bins' levels are kept; `keep_levels_frames`:
    the most frames whose levels are kept as they are, before a histogram takes them."""

    def __init__(self, sr: int, channels: int, histogram_from_hz: float = 0.0,
                 keep_levels_frames: int = KEEP_LEVELS_FRAMES):
        self.sr, self.channels = sr, channels
        freqs_hz = np.fft.rfftfreq(N_FFT, 1.0 / sr)
        self.first_bin = int(np.flatnonzero(freqs_hz >= histogram_from_hz)[0]) if freqs_hz[-1] >= histogram_from_hz \
            else freqs_hz.size
        self._basis_t = spectral.mel_filterbank(sr, N_FFT, N_MELS).T
        self._level_bins = freqs_hz.size - self.first_bin
        self._keep_levels_frames = keep_levels_frames
        self._levels: list[np.ndarray] = []
        self._kept_frames = 0
        self._hist: np.ndarray | None = None
        self._mel: list[np.ndarray] = []
        self._inner = np.zeros(1 + N_FFT // 2)
        self._inner_count = 0
        self._all = np.zeros(1 + N_FFT // 2)
        self._all_count = 0
        self._hop_energy: list[np.ndarray] = []
        self._loudness = LoudnessMeter(sr, channels)
        self._peak = 0.0
        self.frames = 0
        # Samples in "padded" positions: N_FFT // 2 zeros, then the signal. Frame k covers
        # padded [k * HOP, k * HOP + N_FFT); hop block b covers padded [b * HOP, (b + 1) * HOP).
        self._parts: list[np.ndarray] = [np.zeros((channels, N_FFT // 2), np.float32)]
        self._start = 0  # padded position of self._parts[0][:, 0]
        self._end = N_FFT // 2
        self._next_frame = 0
        self._next_block = 0

    def push(self, block: np.ndarray) -> None:
        """The next `(channels, m)` samples."""
        block = np.asarray(block, dtype=np.float32)
        if block.shape[1] == 0:
            return
        self.frames += block.shape[1]
        self._peak = max(self._peak, float(np.max(block)), -float(np.min(block)))
        self._loudness.push(block)
        self._parts.append(block)
        self._end += block.shape[1]
        self._hop_blocks((self._end // HOP))
        ready = (self._end - N_FFT) // HOP + 1 - self._next_frame  # frames wholly inside the data so far
        while ready >= CHUNK_FRAMES:
            self._analyse(CHUNK_FRAMES, inner_limit=None)
            ready -= CHUNK_FRAMES
        self._drop_before(min(self._next_frame, self._next_block) * HOP)

    def summary(self) -> Summary:
        """Everything kept, after the last frames are analysed with zeros past the end."""
        n = self.frames
        n_frames = 1 + n // HOP
        total_blocks = n_frames - 1 + N_FFT // HOP
        pad = max((n_frames - 1) * HOP + N_FFT, total_blocks * HOP) - self._end
        if pad > 0:
            self._parts.append(np.zeros((self.channels, pad), np.float32))
            self._end += pad
        self._hop_blocks(total_blocks)
        while self._next_frame < n_frames:
            self._analyse(min(CHUNK_FRAMES, n_frames - self._next_frame), inner_limit=n)
        mel = np.concatenate(self._mel) if len(self._mel) != 1 else self._mel[0]
        long_term = self._inner / self._inner_count if self._inner_count else self._all / max(1, self._all_count)
        block_energy = np.concatenate(self._hop_energy)
        cumulative = np.concatenate(([0.0], np.cumsum(block_energy)))
        hops = N_FFT // HOP
        frame_energy = cumulative[hops:] - cumulative[:-hops]
        with np.errstate(divide="ignore"):
            rms_dbfs = 10.0 * np.log10(np.maximum(frame_energy, 0.0) / (N_FFT * self.channels))
        levels = None
        if self._hist is None:
            levels = (np.concatenate(self._levels) if self._levels
                      else np.zeros((0, self._level_bins), np.float32))
            self._levels = []
        return Summary(self.sr, n, mel, long_term, rms_dbfs, levels, self._hist, self.first_bin, self._peak,
                       self._loudness.lufs())

    # --- internals ---------------------------------------------------------------------------

    def _samples(self, lo: int, hi: int) -> np.ndarray:
        """Padded samples [lo, hi) (all held), a view when they lie in one part."""
        pos, pieces = self._start, []
        for part in self._parts:
            a, b = max(lo, pos), min(hi, pos + part.shape[1])
            if b > a:
                pieces.append(part[:, a - pos:b - pos])
            pos += part.shape[1]
        return pieces[0] if len(pieces) == 1 else np.concatenate(pieces, axis=1)

    def _drop_before(self, position: int) -> None:
        while self._parts and self._start + self._parts[0].shape[1] <= position:
            self._start += self._parts.pop(0).shape[1]

    def _hop_blocks(self, upto: int) -> None:
        """Energy over all channels of each hop block up to `upto` (float32 per channel, summed
        in float64 channel after channel)."""
        if upto <= self._next_block:
            return
        data = self._samples(self._next_block * HOP, upto * HOP)
        energy = np.zeros(upto - self._next_block)
        for ch in data:
            blocks = ch.reshape(-1, HOP)
            energy += np.einsum("ij,ij->i", blocks, blocks)
        self._hop_energy.append(energy)
        self._next_block = upto

    def _analyse(self, count: int, inner_limit: int | None) -> None:
        """STFT `count` frames from `_next_frame` (float64 transforms, as librosa's) and keep
        their summaries. `inner_limit`: the signal's length, once known (frames reaching past it
        are not inside); None while every frame analysed lies inside the data."""
        k0 = self._next_frame
        seg = self._samples(k0 * HOP, (k0 + count - 1) * HOP + N_FFT)
        mono = downmix(seg)
        power = spectral.power(spectral.stft(mono, N_FFT, HOP, 0, count, dtype=np.float64))
        self._mel.append(power @ self._basis_t)
        k = np.arange(k0, k0 + count)
        inner = k >= 2
        if inner_limit is not None:
            inner &= k * HOP + N_FFT // 2 <= inner_limit
            for row in power:  # only at the end, for a signal with no frame wholly inside it
                self._all += row
            self._all_count += count
        for row in power[inner]:  # frame after frame, as one mean over all of them sums
            self._inner += row
        self._inner_count += int(inner.sum())
        if self._level_bins:
            levels = power_db(power[:, self.first_bin:])
            if self._hist is None and self._kept_frames + count <= self._keep_levels_frames:
                self._levels.append(levels)
                self._kept_frames += count
            else:
                if self._hist is None:  # too long to keep: every level so far goes into the histogram
                    self._hist = np.zeros((self._level_bins, HIST_CELLS), np.uint32)
                    for kept in self._levels:
                        self._count_levels(kept)
                    self._levels = []
                self._count_levels(levels)
        self._next_frame = k0 + count

    def _count_levels(self, levels: np.ndarray) -> None:
        """Add `(frames, bins)` float32 levels (dB) to the histogram."""
        # float32, as the levels themselves: a level within 2e-5 dB of a cell edge may land in
        # the neighbouring cell, which moves a percentile by that much at most.
        cells = levels - np.float32(HIST_LOW_DB)
        cells *= np.float32(1.0 / HIST_STEP_DB)
        cells = np.clip(cells.astype(np.int32), 0, HIST_CELLS - 1)
        offsets = np.arange(_HIST_ROWS, dtype=np.int32) * HIST_CELLS
        for r0 in range(0, cells.shape[1], _HIST_ROWS):  # one bincount per few bins: small scratch
            rows = min(_HIST_ROWS, cells.shape[1] - r0)
            flat = (cells[:, r0:r0 + rows] + offsets[:rows]).ravel()
            counts = np.bincount(flat, minlength=rows * HIST_CELLS).reshape(rows, HIST_CELLS)
            self._hist[r0:r0 + rows] += counts.astype(np.uint32)
