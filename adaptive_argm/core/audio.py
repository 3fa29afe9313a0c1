"""Audio file I/O: decode any format libsndfile reads into `(channels, samples)` float32 blocks
(at the file's rate, or converted by `resample`), gathered or one at a time, and write results
atomically.

Decoding is libsndfile's, through soundfile: what `librosa.load` reads, so a file measured here
holds the samples the reference computation holds. Reading keeps the channel count, keeps samples
above full scale (MusicGen float files have them) and reports the DC offset instead of silently
changing it (`dc.remove_dc` removes it). It never invents audio: a file whose data ends before its header says (a cut-off
download) is read as far as its data goes and reported as truncated, with both lengths. Writing
goes to a temporary file in the destination folder and is renamed into place, so an interrupted
run never leaves a half-written file behind.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import soundfile
from pedalboard.io import AudioFile

from ..config import UserError
from .interrupts import atomic_path
from .levels import peak_dbfs
from .resample import frames_at, resampled
from .signal import Signal, gather

WORK_SR = 44100
"""Internal and default output sample rate: Demucs' rate, and the rate every metric uses."""

AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".aiff", ".aif")
BLOCK_FRAMES = 1 << 16
"""Frames per block when a file is decoded piece by piece (1.5 s at 44.1 kHz)."""
RETRY_FRAMES = 4096
"""After a decode error (a FLAC file cut mid-frame), the rest is read in pieces this small (one
FLAC frame), so that everything before the damage is kept."""
HEADER_COUNTED = frozenset({"WAV", "WAVEX", "AIFF", "RF64", "W64"})
"""Containers whose header states the frame count; libsndfile reports the frames the data
really holds, pedalboard (JUCE) what the header claims."""
LOSSY_SLACK_FRAMES = 2304
"""For lossy formats the header's length is an estimate: a shortfall of up to two MPEG frames
(encoder delay and padding) is not truncation."""


class AudioError(UserError):
    """Input audio that cannot be used; the message is a one-line explanation for the user."""


@dataclass(frozen=True)
class AudioInfo:
    """What the input file was, before any processing."""

    path: str
    sample_rate: int
    channels: int
    duration_s: float
    """Of the audio that was read (the header's length when the file is truncated is `header_frames`)."""
    dc_offset: float
    peak_dbfs: float
    frames: int = 0
    """Frames read, at the file's own rate."""
    header_frames: int = 0
    """Frames the file's header claims."""
    truncated: bool = False
    """The data ends before the header says: only `frames` of `header_frames` exist, and only
    they were processed (nothing is padded)."""

    def to_dict(self) -> dict:
        return dict(self.__dict__)

    def truncation_warning(self) -> str | None:
        """One line saying what a truncated input lacks; None when it is whole."""
        if not self.truncated:
            return None
        return (f"input is truncated: its header says {self.header_frames / self.sample_rate:.2f} s, its data "
                f"holds {self.frames / self.sample_rate:.2f} s; only that was processed (nothing padded)")


class Reader:
    """One audio file, decoded block by block. `blocks` yields `(channels, m)` float32 at the
    file's rate or converted to another; `info` describes the file once the blocks have all
    been read (frames, DC offset, peak, truncation). Raises `AudioError` for a missing,
    unreadable, empty or non-finite file."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.exists():
            raise AudioError(f"{self.path}: no such file")
        if self.path.is_dir():
            raise AudioError(f"{self.path}: is a folder, not an audio file")
        try:
            with soundfile.SoundFile(str(self.path)) as f:
                self.sample_rate, self.channels, self._counted, self.format = f.samplerate, f.channels, f.frames, f.format
        except Exception as exc:  # soundfile raises LibsndfileError (a RuntimeError) for unreadable files
            raise AudioError(f"{self.path}: not a readable audio file ({_reason(exc)})") from None
        self.header_frames = _header_frames(self.path, self.format, self._counted)
        self.frames = 0
        self._sum = 0.0
        self._peak = 0.0

    def native_blocks(self, block_frames: int = BLOCK_FRAMES) -> Iterator[np.ndarray]:
        """The decoded audio at the file's own rate, `block_frames` at a time."""
        self.frames, self._sum, self._peak = 0, 0.0, 0.0
        f = soundfile.SoundFile(str(self.path))
        size = block_frames
        try:
            while True:
                try:
                    data = f.read(size, dtype="float32", always_2d=True)
                except Exception as exc:
                    if size == RETRY_FRAMES or self.format in HEADER_COUNTED:
                        if self.frames == 0:
                            raise AudioError(f"{self.path}: not a readable audio file ({_reason(exc)})") from None
                        break  # damaged from here on: keep what decoded
                    f.close()  # retry from the last good frame in small pieces
                    f = soundfile.SoundFile(str(self.path))
                    f.seek(self.frames)
                    size = RETRY_FRAMES
                    continue
                if data.shape[0] == 0:
                    break
                block = np.ascontiguousarray(data.T)
                if not np.all(np.isfinite(block)):
                    raise AudioError(f"{self.path}: contains NaN or infinite samples")
                self.frames += block.shape[1]
                self._sum += float(np.sum(block, dtype=np.float64))
                self._peak = max(self._peak, float(np.max(block)), -float(np.min(block)))
                yield block
        finally:
            f.close()
        if self.frames == 0:
            raise AudioError(f"{self.path}: contains no audio samples")

    def blocks(self, sr: int | None = None, block_frames: int = BLOCK_FRAMES) -> Iterator[np.ndarray]:
        """The decoded audio converted to `sr` (None: the file's rate), a block at a time."""
        if sr is None or sr == self.sample_rate:
            return self.native_blocks(block_frames)
        return resampled(self.native_blocks(block_frames), self.sample_rate, sr, self.channels)

    def expected_frames(self, sr: int | None = None) -> int:
        """The length the audio will have at `sr` if the data holds what libsndfile counts."""
        return frames_at(self._counted, self.sample_rate, sr or self.sample_rate)

    def info(self) -> AudioInfo:
        """The file as read (call after its blocks are exhausted)."""
        lossy_slack = 0 if self.format in HEADER_COUNTED or self.format == "FLAC" else LOSSY_SLACK_FRAMES
        peak = self._peak
        return AudioInfo(
            path=str(self.path),
            sample_rate=int(self.sample_rate),
            channels=int(self.channels),
            duration_s=self.frames / self.sample_rate,
            dc_offset=self._sum / max(1, self.frames * self.channels),
            peak_dbfs=peak_dbfs(np.array([peak], np.float32)) if peak > 0 else float("-inf"),
            frames=int(self.frames),
            header_frames=int(max(self.header_frames, self.frames)),
            truncated=self.header_frames - self.frames > lossy_slack,
        )


def _reason(exc: Exception) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _header_frames(path: Path, fmt: str, counted: int) -> int:
    """The frame count the header claims: libsndfile's for most formats; for WAV and AIFF,
    whose header states it, what pedalboard reads there (libsndfile counts the data instead)."""
    if fmt not in HEADER_COUNTED:
        return int(counted)
    try:
        with AudioFile(str(path)) as f:
            return max(int(counted), int(f.frames))
    except Exception:  # noqa: BLE001 - pedalboard cannot parse it: libsndfile's count stands
        return int(counted)


def read(path: str | Path, sr: int | None = WORK_SR) -> tuple[np.ndarray, AudioInfo]:
    """Read an audio file as `(channels, samples)` float32, converted to `sr` (None: its own
    rate) with `resample`. Raises `AudioError` for a missing, unreadable, empty or non-finite
    file; a truncated file is read as far as its data goes (`AudioInfo.truncated`)."""
    reader = Reader(path)
    x = gather(reader.blocks(sr), reader.channels, reader.expected_frames(sr))
    return x, reader.info()


def to_channels(x: np.ndarray, channels: int) -> np.ndarray:
    """Bring `(c, n)` audio to `channels`: average down to mono, or repeat mono up."""
    if x.shape[0] == channels:
        return x
    if channels == 1:
        return x.mean(axis=0, keepdims=True)
    if x.shape[0] == 1:
        return np.repeat(x, channels, axis=0)
    raise ValueError(f"cannot map {x.shape[0]} channels onto {channels}")


def write_frames(f: AudioFile, block: np.ndarray) -> None:
    """Write a `(channels, samples)` block to an open `AudioFile`. pedalboard tells a block's layout
    from its shape, and cannot when it is square (as many samples as channels: a 2-sample stereo
    clip, or the last block of a longer one): such a block goes in as two."""
    if block.ndim == 2 and block.shape[0] == block.shape[1] > 1:
        f.write(np.ascontiguousarray(block[:, :1]))
        block = block[:, 1:]
    f.write(np.ascontiguousarray(block))


def write(path: str | Path, x: np.ndarray | Signal, sr: int, *, protect: tuple[str | Path, ...] = ()) -> Path:
    """Write `(channels, samples)` float32 audio, an array or a `Signal` (written block by
    block), atomically (temp file + rename).

    The format follows the suffix (WAV is written as 32-bit float so nothing above full scale
    is clipped by the file format). `protect` lists input paths that must never be overwritten.
    """
    path = Path(path)
    for p in protect:
        if Path(p).exists() and path.exists() and path.resolve() == Path(p).resolve():
            raise AudioError(f"{path}: refusing to overwrite an input file")
    channels = x.channels if isinstance(x, Signal) else x.shape[0]
    with atomic_path(path) as tmp:
        with AudioFile(tmp, "w", samplerate=sr, num_channels=channels,
                       **({"bit_depth": 32} if path.suffix.lower() == ".wav" else {})) as f:
            for block in (x.blocks() if isinstance(x, Signal) else [x]):
                write_frames(f, np.asarray(block, dtype=np.float32))
    return path


def write_text(path: str | Path, text: str) -> Path:
    """Write a text file atomically (temp file + rename)."""
    with atomic_path(path, suffix=".tmp") as tmp:
        Path(tmp).write_text(text, encoding="utf-8")
    return Path(path)
