"""Measure restored audio: the paper's P25 number, and the panel that shows when it was gamed.

The method we reproduce reports one number, the 25th percentile of a max-referenced mel
spectrogram in dB (`p25_paper_db`). That number is relative to the loudest bin, floors at
-80 dB and rewards silence, bass boosts and low-passes (see the field notes). It is reported
here for comparability, never alone: `measure` returns a `MetricPanel` that puts it beside
absolute-reference levels inside the band the input really has, a noise-floor estimate,
BS.1770 loudness, the share of silent frames and of floored bins, the peak, the bandwidth,
and, when a clean reference exists, SI-SDR, log-spectral distance, quiet-frame SNR and ViSQOL.
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
from dataclasses import asdict, dataclass, fields, replace
from typing import Iterable

import numpy as np

from . import spectral
from . import intrusive, visqol
from .bandwidth import BandwidthSettings, analyse_spectrum
from .framestats import FrameStats, Summary
from .levels import POWER_FLOOR, as_2d, power_db
from .resample import resampled

# --- analysis settings (the paper's) -------------------------------------------------------
METRIC_SR = 44100
"""The rate every panel is measured at: the paper's `librosa.load(sr=44100)`; a signal at another
rate is converted with the package's one resampler (librosa's), as that call converts it."""
N_FFT, HOP, N_MELS = spectral.N_FFT, spectral.HOP, spectral.N_MELS
TOP_DB = 80.0
AMIN = POWER_FLOOR
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

# --- warning thresholds ---------------------------------------------------------------------
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
    visqol_moslqo: float = math.nan
    visqol_misplaced: float = math.nan

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
    "visqol_moslqo": "higher",
    # Where ViSQOL matched its patches to other music, its score says nothing (core/visqol.py).
    "visqol_misplaced": "none",
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
    "visqol_moslqo": "ViSQOL v3 MOS-LQO vs reference (1-5)",
    "visqol_misplaced": "ViSQOL patches matched away from their own time",
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
    "visqol_moslqo": "MOS",
    "visqol_misplaced": "",
}

assert set(DIRECTIONS) == set(LABELS) == set(UNITS) == {f.name for f in fields(MetricPanel)}
INTRUSIVE_FIELDS = tuple(f.name for f in fields(intrusive.Scores))
"""The panel fields that need a clean reference (`intrusive`)."""


# --- shared helpers -------------------------------------------------------------------------


def _mel_basis(sr: int) -> np.ndarray:
    # Exactly what librosa.feature.melspectrogram builds by default (float32, Slaney norm).
    return spectral.mel_filterbank(sr, N_FFT, N_MELS)


def _mel_centres_hz(sr: int) -> np.ndarray:
    return spectral.mel_frequencies(N_MELS + 2, 0.0, sr / 2.0)[1:-1]


def _paper_db(mel_power: np.ndarray) -> np.ndarray:
    """`spectral.power_to_db(mel, ref=np.max, amin=AMIN, top_db=TOP_DB)`, the same operations
    in place on one new array (an hour's mel image is 160 MB)."""
    db = np.maximum(mel_power, np.float32(AMIN))
    np.log10(db, out=db)
    db *= 10.0
    db -= 10.0 * np.log10(max(AMIN, float(np.max(mel_power))))
    np.maximum(db, db.max() - TOP_DB, out=db)
    return db


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


# --- the paper's metric -----------------------------------------------------------------------


def p25_paper_db(y: np.ndarray, sr: int) -> float:
    """The method's metric, exactly: 25th percentile of `power_to_db(mel, ref=np.max)` (80 dB
    floor) of the mono downmix, mel as librosa's defaults (2048 / 512 / 128 mels).

    Rewards (lower = "better" in the paper): anything that lowers the quiet bins relative to
    the loudest one. Gamed by a bass boost (raises the reference), muting quiet frames,
    cutting the tail, low-passing; saturates at exactly -80.00 dB once a quarter of the bins
    sit on the floor. Blind to plain gain.
    """
    y2 = as_2d(y)
    stats = FrameStats(sr, y2.shape[0], histogram_from_hz=sr)  # no histograms: only the mel image is read
    stats.push(y2)
    return float(np.percentile(_paper_db(stats.summary().mel_power), PAPER_PERCENTILE))


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
    same rate), the intrusive fields are filled in as well (`intrusive.scores`: SI-SDR, LSD,
    quiet-frame SNR and ViSQOL, after one fractional-delay alignment).

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
    - bandwidth_hz: the cutoff detector's brick wall in the long-term spectrum
      (`bandwidth.analyse_spectrum`: a resampler's or a codec's low-pass, told apart from a
      natural roll-off) when it finds one; else the upper edge of the occupied band of the
      long-term spectrum (rule at BANDWIDTH_RANGE_DB). A 32 kHz file reads the edge of the
      resampler's passband on the way to 44.1 kHz (white noise 15.3 kHz; the real MusicGen
      mixes of the development corpus 14.9-15.1 kHz), full-band noise 22 kHz; a steep low-pass
      pulls it down, a gentle one (a tilt) or a bass shelf barely moves it. Dull stems read
      their content's roll-off.
    """
    y2 = as_2d(y)
    stats = FrameStats(sr, y2.shape[0], histogram_from_hz=LOW_CUT_HZ)
    stats.push(y2)
    panel = panel_of(stats.summary(), band_hz)
    return with_scores_of(panel, y2, ref, sr) if ref is not None else panel


def measure_stream(blocks: Iterable[np.ndarray], sr: int, channels: int, band_hz: float | None = None) -> MetricPanel:
    """The panel (without the intrusive fields) of `(channels, m)` blocks at `sr`, measured at
    `METRIC_SR` block by block: bounded memory however long the signal."""
    stats = measuring(METRIC_SR, channels)
    for block in (resampled(blocks, sr, METRIC_SR, channels) if sr != METRIC_SR else blocks):
        stats.push(block)
    return panel_of(stats.summary(), band_hz)


def measuring(sr: int, channels: int) -> FrameStats:
    """What `measure` pushes a signal into, for a signal that arrives block by block: push the
    blocks, then `panel_of(stats.summary(), band_hz)`."""
    return FrameStats(sr, channels, histogram_from_hz=LOW_CUT_HZ)


def panel_of(summary: Summary, band_hz: float | None = None) -> MetricPanel:
    """The panel (without the intrusive fields) of a signal from what `FrameStats` kept of it;
    `band_hz` as in `measure`."""
    sr = summary.sr
    freqs_hz = np.fft.rfftfreq(N_FFT, 1.0 / sr)
    mel = summary.mel_power
    silent = float(np.mean(summary.frame_rms_dbfs < SILENT_FRAME_DBFS))

    paper = _paper_db(mel)
    floor_fraction = float(np.mean(paper <= paper.max() - TOP_DB + 1e-6))
    p25_paper = float(np.percentile(paper, PAPER_PERCENTILE, overwrite_input=True))
    del paper

    long_term = summary.long_term_power
    # The cutoff detector's call on the whole signal's long-term spectrum: a brick wall is
    # reported where it is, whatever lies below it; else the occupied band's upper edge.
    wall = analyse_spectrum(long_term, sr, BandwidthSettings(n_fft=N_FFT))
    bandwidth = wall.cutoff_hz if wall.kind == "brick-wall" else _bandwidth_hz(long_term, freqs_hz)
    band = bandwidth if band_hz is None else float(band_hz)
    band = min(band, sr / 2.0)

    mel_in_band = _mel_centres_hz(sr) <= band
    if not mel_in_band.any():
        # Silence (bandwidth 0) or a band below the first mel centre: score all bands.
        mel_in_band[:] = True
    mel_abs_db = power_db(mel[:, mel_in_band] if not mel_in_band.all() else mel)
    p25_abs, p95 = (
        float(v) for v in np.percentile(mel_abs_db, [PAPER_PERCENTILE, CONTENT_PERCENTILE], overwrite_input=True)
    )
    del mel_abs_db

    bins_in_band = np.flatnonzero((freqs_hz >= LOW_CUT_HZ) & (freqs_hz <= band))
    if bins_in_band.size == 0:
        bins_in_band = np.flatnonzero(freqs_hz >= LOW_CUT_HZ)
    noise_floor = float(np.mean(summary.bin_percentile_db(NOISE_FLOOR_PERCENTILE, bins_in_band)))

    low = (freqs_hz >= LOW_CUT_HZ) & (freqs_hz < BALANCE_SPLIT_HZ)
    high = (freqs_hz >= BALANCE_SPLIT_HZ) & (freqs_hz <= band)
    if not high.any():
        # A band that ends below the split would leave "high" empty and the ratio infinite.
        high = freqs_hz >= BALANCE_SPLIT_HZ
    balance = float(power_db(long_term[low].sum()) - power_db(long_term[high].sum()))

    return MetricPanel(
        p25_paper_db=p25_paper,
        p25_abs_db=p25_abs,
        noise_floor_db=noise_floor,
        loudness_lufs=summary.loudness_lufs,
        p95_db=p95,
        low_high_balance_db=balance,
        silent_frame_fraction=silent,
        floor_fraction=floor_fraction,
        peak_dbfs=20.0 * math.log10(summary.peak) if summary.peak > 0 else -math.inf,
        bandwidth_hz=bandwidth,
    )


def intrusive_scores(y: np.ndarray, ref: np.ndarray, sr: int) -> dict[str, float]:
    """The panel's fields that need a clean reference: SI-SDR, LSD, quiet-frame SNR and ViSQOL
    MOS-LQO of `y`, after one fractional-delay alignment (`intrusive.scores`)."""
    return intrusive.scores(as_2d(y), ref, sr).to_dict()


def with_scores_of(panel: MetricPanel, y: np.ndarray, ref: np.ndarray, sr: int) -> MetricPanel:
    """`panel` with its intrusive fields taken from `y` against `ref` (an input is measured as
    its file holds it, and scored as restoration starts from it: without DC offset and drift)."""
    return replace(panel, **intrusive_scores(y, ref, sr))


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
    out += [w for which, panel in (("output", o), ("input", i)) if (w := visqol_warning(panel, which))]
    return out


def visqol_warning(panel: MetricPanel, which: str = "output") -> str:
    """A sentence when ViSQOL matched some of its patches to other music (`visqol.Reading`):
    its score is then a misreading, often too high; "" otherwise (NaN included)."""
    if not visqol.misread(panel.visqol_misplaced):
        return ""
    return (f"visqol_moslqo of the {which} is a misreading: ViSQOL matched {100 * panel.visqol_misplaced:.0f}% "
            "of its patches to other music, away from their own time (a reference whose bands lie mostly "
            "empty); read SI-SDR and LSD instead")
