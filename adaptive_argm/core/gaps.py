"""Fill the frames where a codec dropped the top of the band below its wall.

An MP3 encoder short of bits does not only low-pass: frame by frame it drops whole scale-factor
bands above about 10 kHz (LAME VBR 7 at 44.1 kHz on the real-music development half: the 12.6 kHz
band was gone, 30-40 dB down, in the median frame of four of nine songs). The wall the detector
finds is the encoder's highest low-pass; below it the band comes and goes. Copying up only from
below that wall leaves the gaps, and the copy-up then copies empty frames too.

How: each 1/6-octave band in the octave below the cutoff is compared, frame by frame, with the
octave below it (a reference the codec leaves intact). A band's usual ratio to the reference is
the median over the frames where it is present. A frame lost the band when the band lies more
than `drop_db` under its usual ratio there, and starts at a wall inside the frame: the band
below it, in the same frame, is `wall_step_db` louder per bin or was lost too. Depth alone is
not enough: MIDI-rendered stems, whose samples end or carry their own low-pass, drop a band that
far too, but their top fades together (3-11 dB between neighbouring bands, median) where an MP3's
gap is a cliff (30-45 dB); see eval/results/codec_gaps.md.

A lost band is refilled, in that frame only, with a copy of the band of the same width starting
at half its lower edge, moved up by whole bins (an exact modulation, as recovery's copy-up, so
the copy keeps its time envelope), at the level the band below it in that frame predicts
through the lower quartile (`step_percentile`) of the ratio between the two over the frames
where both are present (never above the reference's prediction), offset by `level_db`. A lower
quartile, not the median, because an encoder drops a band where it is weak: the lost frames come
from the low side of that ratio, and how far low depends on the music (dense recorded music
spreads its ratio over a few dB, a sparse rendered top over tens of dB). The output is the input
plus the filled bins: where nothing was lost it is the input sample for sample, and when nothing
was lost at all the input array itself is returned.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import spectral

_TINY = 1e-20
CHUNK_FRAMES = 256
"""Spectra are taken this many frames at a time (about 3 s at 44.1 kHz): memory stays that of a
run of frames, not of the whole input's spectrogram."""


@dataclass(frozen=True)
class GapSettings:
    """Tunables of `fill_gaps` (chosen on the development half A; see eval/results/recovery.md)."""

    n_fft: int = 2048
    hop: int = 512
    octaves: float = 1.0
    """How far below the cutoff lost bands are looked for (octaves)."""
    band_octaves: float = 1.0 / 6.0
    """Width of the bands compared frame by frame (octaves)."""
    drop_db: float = 30.0
    """A band this far under its usual ratio to the reference has been dropped. At 12 dB, 4.5%
    of the cells of resampled-only songs were refilled (one lost 0.10 ViSQOL); at 30 dB none."""
    wall_step_db: float = 30.0
    """A gap starts where the band below it in the same frame lies at least this much higher
    (mean power per bin, dB): the encoder's low-pass of that frame."""
    present_db: float = 15.0
    """Frames within this of the band's 95th-percentile ratio count as the band present."""
    level_db: float = 0.0
    """Level of the refill relative to the predicted level (dB). With the median step a
    global -6 dB was needed (two sparse MIDI-rendered songs lost 0.1-0.24 ViSQOL at -2 dB); the
    lower-quartile step makes that offset music-dependent, and 0 dB harmed no song of the
    tuning halves (eval/results/recovery.md)."""
    step_percentile: float = 25.0
    """Percentile of a band's per-frame ratio to the band below, over the frames where both are
    present, that predicts a lost frame's level from the band below (50: the median). On the
    tuning halves (MP3, then 32 kHz), 25 with `level_db` 0 beat the median at -6 dB on both
    corpora and took a sparse MIDI-rendered song from -0.03 to +0.12 ViSQOL; 10 was weaker."""
    min_frames: int = 20
    """Bands with fewer active frames than this are left alone (no usual ratio to learn)."""


@dataclass(frozen=True)
class GapCells:
    """The analysis behind `fill_gaps`, one row per 1/6-octave band of the searched octave (the
    anchor band below it left out), one column per STFT frame."""

    deep: np.ndarray
    """`(bands, frames)` bool: the band lies `drop_db` under its usual ratio (active frames)."""
    step_db: np.ndarray
    """`(bands, frames)`: how much louder per bin the band below is in the same frame (dB)."""
    lost: np.ndarray
    """`(bands, frames)` bool: deep, and at a wall (or above a lost band): what is refilled."""
    active: np.ndarray
    """`(frames,)` bool: frames whose reference octave is not near-silent."""


@dataclass(frozen=True)
class _Band:
    bins: np.ndarray
    energy: np.ndarray  # (frames,), summed over channels and bins
    usual_db: float     # usual ratio to the reference
    lost: np.ndarray    # (frames,) bool
    present: np.ndarray  # (frames,) bool: the frames its usual ratio is learnt from


def _grid(cutoff_hz: float, sr: int, s: GapSettings) -> tuple[np.ndarray, list[np.ndarray]]:
    """The reference octave's bins and each band's bins (the anchor band below the searched
    octave first)."""
    f_hz = np.fft.rfftfreq(s.n_fft, 1.0 / sr)
    lo_hz = cutoff_hz * 2.0 ** -s.octaves
    edges = lo_hz * 2.0 ** np.arange(-s.band_octaves, s.octaves + 1e-9, s.band_octaves)
    edges[-1] = cutoff_hz
    bands = [np.flatnonzero((f_hz >= lo) & (f_hz < hi)) for lo, hi in zip(edges[:-1], edges[1:])]
    ref = np.flatnonzero((f_hz >= lo_hz / 2.0) & (f_hz < lo_hz))
    return ref, [b for b in bands if b.size]


def _energies(x: np.ndarray, ref_bins: np.ndarray, bands: list[np.ndarray], first: int, count: int,
              s: GapSettings) -> tuple[np.ndarray, np.ndarray]:
    """Per frame, summed over channels and bins: the reference octave's energy `(frames,)` and
    each band's `(bands, frames)`; the spectra taken `CHUNK_FRAMES` frames at a time."""
    ref = np.zeros(count)
    energy = np.zeros((len(bands), count))
    for t0 in range(0, count, CHUNK_FRAMES):
        m = min(CHUNK_FRAMES, count - t0)
        p = spectral.power(spectral.stft(x, s.n_fft, s.hop, first + t0 * s.hop, m))
        ref[t0 : t0 + m] = p[..., ref_bins].sum(axis=(0, 2), dtype=np.float64)
        for i, bins in enumerate(bands):
            energy[i, t0 : t0 + m] = p[..., bins].sum(axis=(0, 2), dtype=np.float64)
    return ref + _TINY, energy + _TINY


def _analyse(ref: np.ndarray, energy: np.ndarray, bins: list[np.ndarray], s: GapSettings) -> tuple[list[_Band], GapCells] | None:
    """Bands (the anchor first) and cells from the reference's and the bands' energies per frame;
    None when too few frames are active to learn a band's usual level."""
    active = ref > ref.max() * 1e-5
    if active.sum() < s.min_frames or len(bins) < 2:
        return None
    bands: list[_Band] = []
    deep, steps, lost = [], [], []
    below_level_db = None
    for e, b in zip(energy, bins):
        level_db = 10.0 * np.log10(e / b.size)
        ratio_db = 10.0 * np.log10(e / ref)
        present = active & (ratio_db > np.percentile(ratio_db[active], 95) - s.present_db)
        usual_db = float(np.median(ratio_db[present]))
        if below_level_db is None:
            bands.append(_Band(b, e, usual_db, np.zeros(active.size, dtype=bool), present))
            below_level_db = level_db
            continue
        step_db = below_level_db - level_db
        is_deep = active & (ratio_db < usual_db - s.drop_db)
        is_lost = is_deep & (bands[-1].lost | (step_db >= s.wall_step_db))
        bands.append(_Band(b, e, usual_db, is_lost, present))
        deep.append(is_deep)
        steps.append(step_db)
        lost.append(is_lost)
        below_level_db = level_db
    return bands, GapCells(np.array(deep), np.array(steps), np.array(lost), active)


def _step_db(below: _Band, band: _Band, s: GapSettings) -> float:
    """How much louder `band` is than the band below it in a frame that lost it (dB): the
    `step_percentile` of their ratio over the frames where both are present. The difference of
    their usual ratios to the reference is the fallback, when they share too few such frames: on
    music whose top is sparse in time (a band present only in the loud hits, the band below in
    quieter frames too) that difference comes from different frames and overstates the step (on
    two MIDI-rendered songs through the codec, refills 13.5 dB too loud in the median lost cell,
    against 8-10 dB with the median over common frames)."""
    both = below.present & band.present
    if both.sum() < s.min_frames:
        return band.usual_db - below.usual_db
    return float(np.percentile(10.0 * np.log10(band.energy[both] / below.energy[both]), s.step_percentile))


def _measured(x: np.ndarray, sr: int, cutoff_hz: float, s: GapSettings
              ) -> tuple[list[_Band], GapCells, np.ndarray, int, int] | None:
    if x.shape[1] < s.n_fft:
        return None
    first, count = spectral.covering_grid(x.shape[1], s.hop, s.n_fft)
    ref_bins, bins = _grid(cutoff_hz, sr, s)
    ref, energy = _energies(x, ref_bins, bins, first, count, s)
    found = _analyse(ref, energy, bins, s)
    return None if found is None else (*found, ref, first, count)


def gap_cells(x: np.ndarray, sr: int, cutoff_hz: float, s: GapSettings = GapSettings()) -> GapCells | None:
    """What `fill_gaps` sees in `(channels, samples)` `x` below `cutoff_hz` (None: too short or
    too quiet to judge)."""
    found = _measured(x, sr, cutoff_hz, s)
    return None if found is None else found[1]


def _empty_top_hz(bands: list[_Band], sr: int, s: GapSettings) -> float | None:
    """The lower edge of the top bands an encoder left empty throughout (None: there are none):
    the lowest band from which every band up to the wall lies, even in its loudest frames,
    `wall_step_db` under the band below it in its usual ratio to the reference. LAME keeps its
    low-pass at the wall but, on quiet music, quantises the scale-factor band under it to nothing
    in every frame (one real development clip through LAME VBR 7: 13.3-14.9 kHz 60 dB under the
    reference, the band below it 24 dB); copied up, that band carries nothing."""
    usual = [b.usual_db for b in bands]
    for i in range(1, len(bands)):
        if max(usual[i:]) <= usual[i - 1] - s.wall_step_db:
            return float(bands[i].bins[0] * sr / s.n_fft)
    return None


def fill_gaps(x: np.ndarray, sr: int, cutoff_hz: float, s: GapSettings = GapSettings()) -> tuple[np.ndarray, float]:
    """`(channels, samples)` float32 `x` with the bands a codec dropped below `cutoff_hz` refilled,
    and the share of the searched (frame, band) cells refilled (0..1). One decision per frame and
    band for all channels, so the stereo image does not wander."""
    refill, share, _ = refills(x, sr, cutoff_hz, s)
    return (x, share) if refill is None else (x + refill, share)


def refills(x: np.ndarray, sr: int, cutoff_hz: float, s: GapSettings = GapSettings()
            ) -> tuple[np.ndarray | None, float, float | None]:
    """What `fill_gaps` adds to `x` (float32 `(channels, samples)`; None when nothing was lost),
    the share of cells refilled, and where the top bands the codec left empty throughout begin
    (`_empty_top_hz`; None without them, and whenever nothing was lost: a band empty
    throughout is only taken for the codec's where the codec shows itself by its drops): for a
    caller that keeps the input and the addition apart."""
    found = _measured(x, sr, cutoff_hz, s)
    if found is None or not found[1].lost.any():
        return None, 0.0, None
    bands, cells, ref, first, count = found
    # Each lost cell's gain: the level the band below predicts (refilled or not) through the
    # usual ratio between the two, never above the reference's prediction.
    gains = np.zeros((len(bands) - 1, count), dtype=np.float32)
    predicted = bands[0].energy
    for i, (below, band) in enumerate(zip(bands[:-1], bands[1:])):
        from_below = predicted * 10.0 ** (_step_db(below, band, s) / 10.0)
        ceiling = ref * 10.0 ** (band.usual_db / 10.0)
        predicted = np.where(band.lost, np.minimum(from_below, ceiling), band.energy)
        want = predicted * 10.0 ** (s.level_db / 10.0) - band.energy
        gains[i] = np.where(band.lost, np.maximum(want, 0.0), 0.0)
    synthesis = spectral.Synthesis(x.shape[0], x.shape[1], s.n_fft, s.hop, first, count)
    for t0 in range(0, count, CHUNK_FRAMES):
        m = min(CHUNK_FRAMES, count - t0)
        if not cells.lost[:, t0 : t0 + m].any():
            continue
        spec = spectral.stft(x, s.n_fft, s.hop, first + t0 * s.hop, m)
        out = np.zeros_like(spec)
        for i, band in enumerate(bands[1:]):
            rows = np.flatnonzero(band.lost[t0 : t0 + m])
            if rows.size == 0:
                continue
            # The band as wide from half its lower edge, moved up by whole bins as an exact
            # modulation (as recovery's copy-up): the frames overlap-add coherently (a
            # bin-for-bin octave copy keeps phases that do not, and came out 8 dB low on steady
            # noise).
            shift = int(band.bins[0] - band.bins[0] // 2)
            rotation = spectral.shift_phase((first + (t0 + rows) * s.hop) % s.n_fft, [shift], s.n_fft)
            copy = spec[:, rows][..., band.bins - shift] * rotation
            copy_energy = spectral.power(copy).sum(axis=(0, 2), dtype=np.float64) + _TINY
            gain = np.sqrt(gains[i, t0 + rows] / copy_energy).astype(np.float32)
            out[:, rows[:, np.newaxis], band.bins[np.newaxis, :]] = copy * gain[np.newaxis, :, np.newaxis]
        synthesis.add(t0, out)
    share = cells.lost.sum() / max(int(cells.active.sum()) * cells.lost.shape[0], 1)
    return synthesis.result(), float(share), _empty_top_hz(bands, sr, s)
