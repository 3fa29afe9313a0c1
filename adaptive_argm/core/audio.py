"""Audio file I/O: read any format pedalboard reads into `(channels, samples)` float32 at a
working rate, and write results atomically.

Reading keeps the channel count, keeps samples above full scale (MusicGen float files have
them) and reports the DC offset instead of silently changing it; removing it is a separate,
explicit step (`remove_dc`). Writing goes to a temporary file in the destination folder and is
renamed into place, so an interrupted run never leaves a half-written file behind.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pedalboard.io import AudioFile

from ..config import UserError
from .interrupts import signals_held
from .levels import peak_dbfs

WORK_SR = 44100
"""Internal and default output sample rate: Demucs' rate, and the rate every metric uses."""

AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".aiff", ".aif")
RESAMPLER_SHORTFALL_MAX = 4
"""Samples that pedalboard's resampling reader may fall short of the proportional length."""


class AudioError(UserError):
    """Input audio that cannot be used; the message is a one-line explanation for the user."""


@dataclass(frozen=True)
class AudioInfo:
    """What the input file was, before any processing."""

    path: str
    sample_rate: int
    channels: int
    duration_s: float
    dc_offset: float
    peak_dbfs: float

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def read(path: str | Path, sr: int | None = WORK_SR) -> tuple[np.ndarray, AudioInfo]:
    """Read an audio file as `(channels, samples)` float32, resampled to `sr` (None: native rate).

    Raises `AudioError` for a missing, unreadable, empty or non-finite file.
    """
    path = Path(path)
    if not path.exists():
        raise AudioError(f"{path}: no such file")
    if path.is_dir():
        raise AudioError(f"{path}: is a folder, not an audio file")
    try:
        with AudioFile(str(path)) as f:
            native_sr = int(round(f.samplerate))
            channels = f.num_channels
            if f.frames == 0:
                raise AudioError(f"{path}: contains no audio samples")
            if sr is not None and native_sr != sr:
                with f.resampled_to(float(sr)) as r:
                    x = r.read(r.frames)
                # The streaming resampler stops a sample or two short of the proportional
                # length (22049 for one second at 192 kHz); pad so durations stay exact (only
                # that shortfall: a truncated file's missing data is not invented).
                n = int(round(f.frames * sr / native_sr))
                if 0 < n - x.shape[1] <= RESAMPLER_SHORTFALL_MAX:
                    x = np.pad(x, ((0, 0), (0, n - x.shape[1])))
            else:
                x = f.read(f.frames)
    except AudioError:
        raise
    except Exception as exc:  # pedalboard raises ValueError/RuntimeError for unreadable files
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise AudioError(f"{path}: not a readable audio file ({reason})") from None
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim != 2 or x.shape[1] == 0:
        raise AudioError(f"{path}: contains no audio samples")
    if not np.all(np.isfinite(x)):
        raise AudioError(f"{path}: contains NaN or infinite samples")
    info = AudioInfo(
        path=str(path),
        sample_rate=native_sr,
        channels=channels,
        duration_s=x.shape[1] / (sr or native_sr),
        dc_offset=float(np.mean(x)),
        peak_dbfs=peak_dbfs(x),
    )
    return x, info


def remove_dc(x: np.ndarray) -> np.ndarray:
    """Subtract each channel's mean. MusicGen stereo outputs can sit 0.18 off zero, which eats
    headroom and fools level measurements."""
    return (x - x.mean(axis=1, keepdims=True)).astype(np.float32)


def to_channels(x: np.ndarray, channels: int) -> np.ndarray:
    """Bring `(c, n)` audio to `channels`: average down to mono, or repeat mono up."""
    if x.shape[0] == channels:
        return x
    if channels == 1:
        return x.mean(axis=0, keepdims=True)
    if x.shape[0] == 1:
        return np.repeat(x, channels, axis=0)
    raise ValueError(f"cannot map {x.shape[0]} channels onto {channels}")


def resample(x: np.ndarray, sr_from: int, sr_to: int) -> np.ndarray:
    """Resample `(channels, samples)` audio with pedalboard's latency-compensated streaming
    resampler (the same one `AudioFile.resampled_to` uses); bounded memory, no added delay."""
    if sr_from == sr_to:
        return x
    from pedalboard.io import StreamResampler

    r = StreamResampler(float(sr_from), float(sr_to), x.shape[0])
    y = np.concatenate([r.process(np.ascontiguousarray(x, dtype=np.float32)), r.process(None)], axis=1)
    # The flushed tail runs a few samples long: keep the length proportional, so that a file
    # resampled to the working rate and back has its own length again.
    n = int(round(x.shape[1] * sr_to / sr_from))
    y = y[:, :n] if y.shape[1] >= n else np.pad(y, ((0, 0), (0, n - y.shape[1])))
    return np.ascontiguousarray(y, dtype=np.float32)


@contextmanager
def atomic_path(path: str | Path, suffix: str | None = None):
    """Yield a temporary path beside `path`; on success it is renamed onto `path` with the
    permissions a plain `open` would give (mkstemp's are owner-only), on any failure removed.
    An interrupted write therefore never leaves a partial or half-replaced file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = None
    try:
        with signals_held():  # Ctrl-C cannot fall between making the file and knowing its name
            fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix if suffix is None else suffix,
                                       dir=path.parent)
            os.close(fd)
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write(path: str | Path, x: np.ndarray, sr: int, *, protect: tuple[str | Path, ...] = ()) -> Path:
    """Write `(channels, samples)` float32 audio atomically (temp file + rename).

    The format follows the suffix (WAV is written as 32-bit float so nothing above full scale
    is clipped by the file format). `protect` lists input paths that must never be overwritten.
    """
    path = Path(path)
    for p in protect:
        if Path(p).exists() and path.exists() and path.resolve() == Path(p).resolve():
            raise AudioError(f"{path}: refusing to overwrite an input file")
    with atomic_path(path) as tmp:
        with AudioFile(tmp, "w", samplerate=sr, num_channels=x.shape[0],
                       **({"bit_depth": 32} if path.suffix.lower() == ".wav" else {})) as f:
            f.write(np.ascontiguousarray(x, dtype=np.float32))
    return path


def write_text(path: str | Path, text: str) -> Path:
    """Write a text file atomically (temp file + rename)."""
    with atomic_path(path, suffix=".tmp") as tmp:
        Path(tmp).write_text(text, encoding="utf-8")
    return Path(path)
