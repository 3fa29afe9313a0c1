"""Real-music corpus: loudness-normalised full-band excerpts cut from recordings, one WAV each
plus `manifest.json`; and the folder discipline every corpus build shares (`CorpusError`,
`building`: build beside the target, rename into place at the end).

An excerpt keeps the source's sample rate and channels (no resampling, no downmix), gets one
gain for every channel, and is written as 32-bit float WAV. The offset is chosen by a stated,
deterministic rule (`choose_offset`), and the manifest records the gain, loudness, sample peak
and the measured bandwidth of every excerpt.
"""

from __future__ import annotations

import io
import json
import math
import os
import shutil
import tempfile
import zipfile
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import scipy.signal

from ..core import audio, interrupts
from ..core import levels
from ..core.batch import track_names
from ..core.levels import loudness_lufs

EXCERPT_S = 20.0
TARGET_LUFS = -23.0
"""EBU R128's programme level: leaves headroom under the peak limit for most music."""
PEAK_LIMIT_DBFS = -1.0
"""Sample-peak ceiling of every written file; the loudness target gives way to it."""
PEAK_MARGIN_DB = 0.001
"""Kept below the ceiling when the peak rule sets the gain, so float32 rounding stays under it."""
BLOCK_S = 0.5
QUIET_PERCENTILE = 10.0
"""Offset rule: among windows starting on a BLOCK_S grid, the one whose QUIET_PERCENTILE-th
percentile of block levels (mean square over channels, dB) is highest, i.e. whose quietest tenth
is loudest: no fade-in, break or fade-out inside. Ties go to the earliest window."""
WELCH_N = 8192
BANDWIDTH_RANGE_DB = 80.0
"""Bandwidth: the highest frequency of the long-term spectrum (Welch, WELCH_N-point Hann, mono
downmix) within BANDWIDTH_RANGE_DB of its strongest bin at or above BANDWIDTH_REF_HZ. An
encoder's low-pass drops the spectrum by 100 dB or more, so 80 dB sees the wall while still
counting the faint top octave of quiet orchestral music (at 60 dB, the metric panel's rule, a
soft orchestral track with content to 19 kHz reads 12.8 kHz)."""
PANEL_RANGE_DB = 60.0
BANDWIDTH_REF_HZ = 400.0
LOW_CUT_HZ = 30.0
FULL_BAND_HZ = 18000.0
"""An excerpt counts as full band when its bandwidth reaches this."""
MANIFEST = "manifest.json"
SCHEMA_VERSION = 1


class CorpusError(ValueError):
    """A source or setting that cannot make a corpus; the message is one line for the user."""


@dataclass(frozen=True)
class Excerpt:
    """One written excerpt, as recorded in the manifest."""

    file: str
    track_id: str
    source: str
    offset_s: float
    duration_s: float
    sample_rate: int
    channels: int
    source_duration_s: float
    gain_db: float
    loudness_lufs: float
    peak_dbfs: float
    bandwidth_hz: float
    bandwidth_60db_hz: float
    full_band: bool


@dataclass(frozen=True)
class RealCorpus:
    """A built real-music corpus: its folder and its excerpts (manifest order)."""

    path: str
    excerpts: tuple[Excerpt, ...]


# --- the folder discipline ---------------------------------------------------------------------


@contextmanager
def building(out: str | Path) -> Iterator[Path]:
    """Yield a fresh temporary folder beside `out`; on success it is renamed onto `out`, on any
    failure (or interrupt) removed. `out` must not exist, or be an empty folder: a corpus run
    never overwrites or mixes with files it did not create, and never leaves a half-built one."""
    out = Path(out)
    if out.exists() and not (out.is_dir() and not any(out.iterdir())):
        raise CorpusError(f"{out}: already exists and is not an empty folder; choose a new output folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.building-", dir=out.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~interrupts.umask())
        with interrupts.signals_held():  # the folder is in place and said to be kept, or neither
            if out.is_dir():
                out.rmdir()  # empty, checked above; rename cannot replace a folder on every platform
            os.rename(tmp, out)
            interrupts.note_kept(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_json(path: str | Path, data: dict) -> Path:
    return audio.write_text(path, json.dumps(data, indent=2, allow_nan=False) + "\n")


# --- reading sources ---------------------------------------------------------------------------


def _open_source(path: str | Path) -> tuple[io.BytesIO | str, str]:
    """A plain file, or a member of a zip archive given as `ARCHIVE/member/path` (the archive is
    the deepest existing file among the path's parents): `(readable, display name)`."""
    p = Path(path)
    if p.is_file():
        return str(p), str(p)
    if p.is_dir():
        raise CorpusError(f"{p}: is a folder, not an audio file")
    for parent in p.parents:
        if parent.is_file():
            if not zipfile.is_zipfile(parent):
                break
            member = p.relative_to(parent).as_posix()
            with zipfile.ZipFile(parent) as z:
                try:
                    return io.BytesIO(z.read(member)), str(p)
                except KeyError:
                    raise CorpusError(f"{parent}: archive has no member {member}") from None
    raise CorpusError(f"{p}: no such file")


def read_source(path: str | Path) -> tuple[np.ndarray, int]:
    """Decode a recording (or a zip member, see `_open_source`) to `(channels, samples)` float32
    at its own rate. pedalboard.io first; libsndfile (soundfile) for what it cannot read, such as
    Ogg Opus. Never resamples."""
    src, name = _open_source(path)
    x = sr = None
    try:
        from pedalboard.io import AudioFile

        with AudioFile(src) as f:
            sr, x = int(round(f.samplerate)), f.read(f.frames)
    except Exception:
        import soundfile

        if isinstance(src, io.BytesIO):
            src.seek(0)
        try:
            data, sr = soundfile.read(src, dtype="float32", always_2d=True)
        except Exception as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise CorpusError(f"{name}: not a readable audio file ({reason})") from None
        x = data.T
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim != 2 or x.shape[1] == 0:
        raise CorpusError(f"{name}: contains no audio samples")
    if not np.all(np.isfinite(x)):
        raise CorpusError(f"{name}: contains NaN or infinite samples")
    return x, int(sr)


# --- measuring and cutting ---------------------------------------------------------------------


def block_levels_db(x: np.ndarray, sr: int, block_s: float = BLOCK_S) -> np.ndarray:
    """Mean square over channels of each whole `block_s` block, in dB (-inf for silence)."""
    n = int(round(block_s * sr))
    k = x.shape[1] // n
    squares = np.square(x[:, : k * n]).reshape(x.shape[0], k, n)
    ms = squares.sum(axis=(0, 2), dtype=np.float64) / (n * x.shape[0])
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(ms)


def choose_offset(x: np.ndarray, sr: int, duration_s: float = EXCERPT_S) -> int:
    """Start sample of the excerpt (QUIET_PERCENTILE rule); raises CorpusError when the audio is
    shorter than `duration_s`."""
    n = int(round(duration_s * sr))
    if x.shape[1] < n:
        raise CorpusError(f"{x.shape[1] / sr:.2f} s of audio is shorter than the {duration_s:g} s excerpt")
    levels = block_levels_db(x, sr)
    w = int(math.ceil(duration_s / BLOCK_S))
    block = int(round(BLOCK_S * sr))
    starts = [k for k in range(0, levels.size - w + 1) if k * block + n <= x.shape[1]]
    if not starts:
        return 0
    windows = np.lib.stride_tricks.sliding_window_view(levels, w)[starts]
    score = np.percentile(np.where(np.isfinite(windows), windows, -400.0), QUIET_PERCENTILE, axis=1)
    return starts[int(np.argmax(score))] * block


def normalising_gain_db(x: np.ndarray, sr: int, target_lufs: float = TARGET_LUFS,
                        peak_limit_dbfs: float = PEAK_LIMIT_DBFS, peers: Sequence[np.ndarray] = ()) -> float:
    """One gain for all channels: to `target_lufs` (BS.1770), lowered when needed so that the
    sample peak of `x` and of every array in `peers` stays at or under `peak_limit_dbfs`."""
    loudness = loudness_lufs(x, sr)
    peak = max([levels.peak_dbfs(x)] + [levels.peak_dbfs(p) for p in peers])
    if not math.isfinite(loudness) or not math.isfinite(peak):
        raise CorpusError("silent audio has no loudness to normalise")
    gain = target_lufs - loudness
    if peak + gain > peak_limit_dbfs:
        gain = peak_limit_dbfs - PEAK_MARGIN_DB - peak
    return float(gain)


def apply_gain(x: np.ndarray, gain_db: float) -> np.ndarray:
    return (x * np.float32(10.0 ** (gain_db / 20.0))).astype(np.float32)


def bandwidth_hz(x: np.ndarray, sr: int, range_db: float = BANDWIDTH_RANGE_DB) -> float:
    """Upper edge of the long-term spectrum (BANDWIDTH_RANGE_DB rule); 0 for silence."""
    mono = x.mean(axis=0, dtype=np.float64)
    freqs, power = scipy.signal.welch(mono, sr, window="hann", nperseg=min(WELCH_N, mono.size))
    usable = freqs >= LOW_CUT_HZ
    ref = power[freqs >= BANDWIDTH_REF_HZ]
    if ref.size == 0 or float(ref.max()) <= 0.0:
        return 0.0
    level_db = 10.0 * np.log10(np.maximum(power, np.finfo(np.float64).tiny))
    above = np.flatnonzero(usable & (level_db >= 10.0 * np.log10(ref.max()) - range_db))
    return float(freqs[above[-1]]) if above.size else 0.0


def track_ids(sources: Sequence[str | Path]) -> list[str]:
    """File stems; stems shared by several sources take their parent folders' names in front
    (`parent-stem`, then further up), then their suffix, as a batch names its folders. The same
    file given twice is refused."""
    paths = [Path(s) for s in sources]
    resolved = [p.resolve() for p in paths]
    twice = next((p for p, r in zip(paths, resolved) if resolved.count(r) > 1), None)
    if twice is not None:
        raise CorpusError(f"{twice} is given twice; give each source once")
    return track_names(paths, follow_links=False)  # a link to a source is named as the user named it


def cut_excerpt(x: np.ndarray, sr: int, duration_s: float = EXCERPT_S, target_lufs: float = TARGET_LUFS,
                peak_limit_dbfs: float = PEAK_LIMIT_DBFS) -> tuple[np.ndarray, int, float]:
    """`(excerpt, offset in samples, gain_db)` of `(channels, samples)` audio; CorpusError for
    audio that is silent or shorter than the excerpt."""
    if levels.peak_dbfs(x) == -math.inf:
        raise CorpusError("the source is digital silence")
    offset = choose_offset(x, sr, duration_s)
    y = x[:, offset : offset + int(round(duration_s * sr))]
    try:
        gain = normalising_gain_db(y, sr, target_lufs, peak_limit_dbfs)
    except CorpusError:
        raise CorpusError("the chosen excerpt is silent (the source holds too little audio)") from None
    return apply_gain(y, gain), offset, gain


def excerpt_source(source: str | Path, track_id: str, folder: str | Path, duration_s: float = EXCERPT_S,
                   target_lufs: float = TARGET_LUFS, peak_limit_dbfs: float = PEAK_LIMIT_DBFS) -> Excerpt:
    """Decode `source`, cut its excerpt and write `<folder>/<track_id>.wav`; the manifest entry."""
    x, sr = read_source(source)
    try:
        y, offset, gain = cut_excerpt(x, sr, duration_s, target_lufs, peak_limit_dbfs)
    except CorpusError as exc:
        raise CorpusError(f"{source}: {exc}") from None
    name = f"{track_id}.wav"
    audio.write(Path(folder) / name, y, sr)
    bw = bandwidth_hz(y, sr)
    return Excerpt(file=name, track_id=track_id, source=str(source), offset_s=round(offset / sr, 6),
                   duration_s=round(y.shape[1] / sr, 6), sample_rate=sr, channels=int(y.shape[0]),
                   source_duration_s=round(x.shape[1] / sr, 6), gain_db=round(gain, 4),
                   loudness_lufs=round(loudness_lufs(y, sr), 4), peak_dbfs=round(levels.peak_dbfs(y), 4),
                   bandwidth_hz=round(bw, 1), bandwidth_60db_hz=round(bandwidth_hz(y, sr, PANEL_RANGE_DB), 1),
                   full_band=bw >= FULL_BAND_HZ)


def build_real_corpus(sources: Sequence[str | Path], out: str | Path, duration_s: float = EXCERPT_S,
                      target_lufs: float = TARGET_LUFS, peak_limit_dbfs: float = PEAK_LIMIT_DBFS,
                      progress: Callable[[str], None] | None = None) -> RealCorpus:
    """Cut one excerpt per source into the new folder `out` (flat: `<track_id>.wav` +
    `manifest.json`). All or nothing: any bad source fails the run and leaves no folder."""
    if not sources:
        raise CorpusError("no source files given")
    if not (duration_s > 0 and math.isfinite(duration_s)):
        raise CorpusError(f"excerpt duration must be a positive number of seconds, not {duration_s}")
    if peak_limit_dbfs > 0.0:
        raise CorpusError(f"peak limit {peak_limit_dbfs} dBFS is above full scale")
    ids = track_ids(sources)
    excerpts = []
    with building(out) as tmp:
        for source, track_id in zip(sources, ids):
            if progress:
                progress(track_id)
            excerpts.append(excerpt_source(source, track_id, tmp, duration_s, target_lufs, peak_limit_dbfs))
        write_json(tmp / MANIFEST, {
            "kind": "real", "schema_version": SCHEMA_VERSION, "excerpt_s": duration_s,
            "target_lufs": target_lufs, "peak_limit_dbfs": peak_limit_dbfs,
            "offset_rule": f"window on a {BLOCK_S:g} s grid whose {QUIET_PERCENTILE:g}th-percentile block level "
                           "is highest (earliest on ties)",
            "bandwidth_rule": f"highest Welch bin within {BANDWIDTH_RANGE_DB:g} dB of the strongest bin >= "
                              f"{BANDWIDTH_REF_HZ:g} Hz (bandwidth_60db_hz: within {PANEL_RANGE_DB:g} dB)",
            "full_band_hz": FULL_BAND_HZ,
            "excerpts": [asdict(e) for e in excerpts]})
    return RealCorpus(str(out), tuple(excerpts))


def read_manifest(folder: str | Path) -> dict:
    """A corpus folder's manifest (either kind)."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise CorpusError(f"{folder}: no {MANIFEST} (not a corpus folder)")
    return json.loads(path.read_text(encoding="utf-8"))
