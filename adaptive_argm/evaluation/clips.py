"""The clean clips the paired benchmark degrades: the corpus layouts it reads, at each file's own
sample rate, their excerpts, and the two fixed halves every corpus is split into for
cross-validation (tune on one, report on the other).

Layouts, told apart by the folder itself (`corpus_layout`):
- `midi` (midi-dev, `adaptive-argm corpus midi`): `manifest.json` with kind "midi", one folder per
  song with `mixed.wav` = the SUM of `drums/bass/other/vocals.wav`; a family the song does not use
  is a file of digital silence (kept: a separator returns four stems too, and the router must
  skip it).
- `musicgen` (musicgen-dev): `<song>/{mixed,drums,bass,harmony,melody}.wav`, `mixed.wav` = the MEAN
  of the four; the oracle stems are each stem x 0.25, harmony + melody become `other`, and there is
  no vocals stem.
- `real` (real-dev, `adaptive-argm corpus real`, or any folder of clean files): flat audio files
  (a `manifest.json` beside them is not audio); no stems, so direct mode only.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..config import Setting, SettingError
from ..core import audio, levels

MUSICGEN_STEMS = {"drums": ("drums",), "bass": ("bass",), "other": ("harmony", "melody")}
"""How musicgen-dev's stems map onto Demucs' sources."""
MUSICGEN_STEM_SCALE = 0.25
"""`mixed.wav` is the sample-wise MEAN of the four stems: a quarter of each adds up to it."""
MIDI_FAMILIES = ("drums", "bass", "other", "vocals")
MANIFEST = "manifest.json"
STEMS_MISMATCH_DB = -60.0
"""Stems whose sum misses the mix by more than this (re the mix) are refused."""
HALVES = ("A", "B")
HALF_ROLES = {"A": "tune", "B": "report"}
"""Cross-validation: each corpus's clips sorted by name, alternately into A (first, third, ...)
and B. A later tuning step tunes on A and reports on B."""

CORPUS_ENV = "ADAPTIVE_ARGM_CORPUS"
CLEAN = Setting("clean", "clean folder")
CORPUS = Setting("corpus", "corpus folder")


@dataclass(frozen=True)
class CleanClip:
    """One clean source: `(channels, samples)` float32 at its own rate `sr`, with the stems that
    add up to it (None for a plain file)."""

    name: str
    audio: np.ndarray
    stems: dict[str, np.ndarray] | None
    source: str
    """The corpus layout it came from: `musicgen`, `midi` or `real`."""
    path: str = ""
    sr: int = audio.WORK_SR

    @property
    def duration_s(self) -> float:
        return self.audio.shape[1] / self.sr

    def head(self, seconds: float | None) -> CleanClip:
        """The first `seconds` of the clip (mix and stems alike, copied: the whole clip's arrays
        can be freed); the clip itself when None or longer."""
        if seconds is None or round(seconds * self.sr) >= self.audio.shape[1]:
            return self
        n = int(round(seconds * self.sr))
        stems = None if self.stems is None else {k: v[:, :n].copy() for k, v in self.stems.items()}
        return replace(self, audio=self.audio[:, :n].copy(), stems=stems)


def default_corpus() -> Path | None:
    """musicgen-dev: `$ADAPTIVE_ARGM_CORPUS`, else `../shared/corpus/musicgen-dev` beside the
    checkout or the current folder; None when none exists."""
    candidates = [os.environ.get(CORPUS_ENV)] if os.environ.get(CORPUS_ENV) else []
    candidates += [Path(__file__).resolve().parents[3] / "shared" / "corpus" / "musicgen-dev",
                   Path.cwd().parent / "shared" / "corpus" / "musicgen-dev"]
    return next((Path(c) for c in candidates if Path(c).is_dir()), None)


def _manifest_kind(folder: Path) -> str | None:
    try:
        return json.loads((folder / MANIFEST).read_text()).get("kind")
    except (OSError, ValueError, AttributeError):
        return None


def corpus_layout(folder: str | Path) -> str:
    """`midi` or `musicgen` (see the module docstring), from the folder itself."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SettingError(CORPUS, f" {folder}: not a folder")
    if _manifest_kind(folder) == "midi":
        return "midi"
    if any((p / "mixed.wav").is_file() for p in folder.iterdir()):
        return "musicgen"
    hint = " (real music without stems is read as a clean folder)" if _manifest_kind(folder) == "real" else ""
    raise SettingError(CORPUS, f" {folder}: neither a MIDI multitrack corpus (manifest.json of kind midi) nor "
                               f"<song>/mixed.wav folders{hint}")


def corpus_clips(folder: str | Path, seconds: float | None = None) -> list[CleanClip]:
    """Every song of a corpus with stems, whichever layout it has; with `seconds`, the first
    `seconds` of each (`CleanClip.head`, as each song is read)."""
    reader = midi_clips if corpus_layout(folder) == "midi" else musicgen_clips
    return reader(folder, seconds)


def _read(path: Path) -> tuple[np.ndarray, int]:
    x, info = audio.read(path, sr=None)
    return x, info.sample_rate


def _oracle(song: Path, mix: np.ndarray, stems: dict[str, np.ndarray], source: str, sr: int) -> CleanClip:
    """The clip, after checking that the stems add up to the mix; the float rounding left over
    (about -130 dB) goes into `other`, so the sum is exact."""
    residual = mix - sum(stems.values())
    if levels.rms_dbfs(residual) - levels.rms_dbfs(mix) > STEMS_MISMATCH_DB:
        raise ValueError(f"{song}: the stems do not add up to mixed.wav")
    stems["other"] = (stems["other"] + residual).astype(np.float32)
    return CleanClip(song.name, mix, stems, source, str(song), sr)


def musicgen_clips(corpus: str | Path, seconds: float | None = None) -> list[CleanClip]:
    """The musicgen-dev songs (`<song>/{mixed,drums,bass,harmony,melody}.wav`) with oracle stems."""
    corpus = Path(corpus)
    clips = []
    for song in sorted(p for p in corpus.iterdir() if (p / "mixed.wav").is_file()):
        mix, sr = _read(song / "mixed.wav")
        stems = {}
        for name, parts in MUSICGEN_STEMS.items():
            for p in parts:
                x, part_sr = _read(song / f"{p}.wav")
                if part_sr != sr:
                    raise ValueError(f"{song / p}.wav: {part_sr} Hz, but mixed.wav is {sr} Hz")
                x = audio.to_channels(x, mix.shape[0])[:, : mix.shape[1]] * np.float32(MUSICGEN_STEM_SCALE)
                stems[name] = x if name not in stems else stems[name] + x
        clips.append(_oracle(song, mix, stems, "musicgen", sr).head(seconds))
    if not clips:
        raise ValueError(f"{corpus}: no <song>/mixed.wav folders (musicgen-dev layout)")
    return clips


def midi_clips(corpus: str | Path, seconds: float | None = None) -> list[CleanClip]:
    """The songs of a MIDI multitrack corpus (manifest order): `mixed.wav` and its four stems."""
    corpus = Path(corpus)
    manifest = json.loads((corpus / MANIFEST).read_text())
    clips = []
    for entry in manifest.get("songs", []):
        song = corpus / entry["song"]
        mix, sr = _read(song / "mixed.wav")
        stems = {}
        for fam in MIDI_FAMILIES:
            x, stem_sr = _read(song / f"{fam}.wav")
            if stem_sr != sr or x.shape != mix.shape:
                raise ValueError(f"{song / fam}.wav: not the same rate and shape as mixed.wav")
            stems[fam] = x
        clips.append(_oracle(song, mix, stems, "midi", sr).head(seconds))
    if not clips:
        raise ValueError(f"{corpus}: the manifest lists no songs")
    return clips


def folder_clips(folder: str | Path, seconds: float | None = None) -> list[CleanClip]:
    """Every audio file in `folder` (not recursive) as a clean clip without stems, at its own rate
    (with `seconds`, its first `seconds`)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SettingError(CLEAN, f" {folder}: not a folder")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in audio.AUDIO_SUFFIXES)
    if not files:
        raise SettingError(CLEAN, f" {folder}: no audio files ({', '.join(audio.AUDIO_SUFFIXES)})")
    clips = []
    for p in files:
        x, sr = _read(p)
        clips.append(CleanClip(p.stem, x, None, "real", str(p), sr).head(seconds))
    return clips


def halves(names: list[str] | tuple[str, ...]) -> dict[str, str]:
    """Each name's cross-validation half: sorted, then alternately A and B (see HALVES)."""
    return {name: HALVES[i % 2] for i, name in enumerate(sorted(set(names)))}
