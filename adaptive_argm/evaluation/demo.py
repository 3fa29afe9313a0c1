"""Built-in demo: synthesize two short songs with the defects real MusicGen files have, write
each mix with its true stems, and compare the three restoration modes on them, with no model.

`groove` has drums, bass and keys (the router should separate); `pad` has a pad and a quiet
melody and NO drums and NO bass (the router should restore the mix directly). Every stem is
degraded on its own, as if MusicGen had generated it (32 kHz, so nothing above 16 kHz; a noise
floor; MP3 codec artifacts), and each mix is the plain sum of its stems, so the stems add up to
the mix exactly. The DC offset rides in `other`; one gain puts the mix's peak above full scale.
Nothing is shipped: the audio is generated from a seed on every run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from scipy import signal

from ..config import DEFAULT_MODEL
from ..core import audio, models, pipeline, results
from ..core.report import to_json
from ..core.separate import DemucsSeparator, StemsFolder
from . import degrade

MUSICGEN_SR = 32000
DURATION_S = 8.0
SEED = 0
TEMPO_BPM = 120.0
"""Run this Demucs model too when its weights are already here (never downloaded by the demo)."""


@dataclass(frozen=True)
class Defects:
    """What MusicGen leaves in its outputs (NOTES.md), applied to every demo song."""

    noise_dbfs: float = -50.0
    """RMS of the mix's noise floor (white up to 16 kHz), shared out equally among the stems."""
    mp3_vbr_quality: float = 5.0
    """LAME VBR quality of the codec pass on each stem (0 best, 10 worst)."""
    dc_offset: float = 0.08
    peak: float = 1.15
    """The mix is scaled so its sample peak lands here: a few overs above full scale."""


@dataclass(frozen=True)
class Multitrack:
    """A synthesized song at `sr`: degraded stems that sum to `mix`, and the clean mix."""

    name: str
    description: str
    sr: int
    stems: dict[str, np.ndarray]
    """name -> `(1, samples)` float32, degraded; `sum(stems.values()) == mix`."""
    mix: np.ndarray
    clean: np.ndarray
    """The same mix before noise, codec, DC and overs (DC-free, same gain): the reference."""


# -- instruments: mono `(samples,)` float64 -------------------------------------------------

def _hz(midi: float) -> float:
    return 440.0 * 2.0 ** ((midi - 69) / 12)


def _env(n: int, sr: int, attack_s: float, decay_s: float, sustain: float = 0.0, release_s: float = 0.0) -> np.ndarray:
    """An attack/decay/sustain envelope over `n` samples with a release at the end."""
    t = np.arange(n) / sr
    e = np.minimum(1.0, t / max(attack_s, 1e-4))
    e = e * (sustain + (1 - sustain) * np.exp(-np.maximum(t - attack_s, 0) / decay_s))
    if release_s > 0:
        e *= np.clip((n / sr - t) / release_s, 0, 1)
    return e


def _place(track: np.ndarray, sound: np.ndarray, start_s: float, sr: int) -> None:
    i = int(round(start_s * sr))
    m = min(len(sound), len(track) - i)
    if m > 0:
        track[i:i + m] += sound[:m]


def _kick(sr: int) -> np.ndarray:
    n = int(0.35 * sr)
    t = np.arange(n) / sr
    freq_hz = 45 + 80 * np.exp(-t / 0.035)  # the pitch drop that makes a kick
    return np.sin(2 * np.pi * np.cumsum(freq_hz) / sr) * np.exp(-t / 0.12)


def _snare(sr: int, rng: np.random.Generator) -> np.ndarray:
    n = int(0.25 * sr)
    t = np.arange(n) / sr
    body = 0.5 * np.sin(2 * np.pi * 190 * t) * np.exp(-t / 0.04)
    noise = signal.sosfilt(signal.butter(4, [1200, 7000], "bandpass", fs=sr, output="sos"), rng.standard_normal(n))
    return body + 1.4 * noise * np.exp(-t / 0.07)


def _hat(sr: int, rng: np.random.Generator) -> np.ndarray:
    n = int(0.08 * sr)
    noise = signal.sosfilt(signal.butter(4, 7000, "highpass", fs=sr, output="sos"), rng.standard_normal(n))
    return noise * np.exp(-np.arange(n) / sr / 0.015)


def _drums(n: int, sr: int, beat_s: float, rng: np.random.Generator) -> np.ndarray:
    x = np.zeros(n)
    kick, snare = _kick(sr), _snare(sr, rng)
    for b in range(int(n / sr / beat_s) + 1):
        if b % 4 in (0, 2):
            _place(x, 0.9 * kick, b * beat_s, sr)
        if b % 4 == 2:
            _place(x, 0.5 * kick, (b + 0.75) * beat_s, sr)
        if b % 2 == 1:
            _place(x, 0.45 * snare, b * beat_s, sr)
        for half in (0, 0.5):
            _place(x, (0.22 if half else 0.12) * _hat(sr, rng), (b + half) * beat_s, sr)
    return x


def _saw(freq_hz: float, n: int, sr: int, harmonics: int, detune_cents: float = 0.0) -> np.ndarray:
    """A band-limited sawtooth (additive, harmonics kept below Nyquist)."""
    t = np.arange(n) / sr
    f = freq_hz * 2 ** (detune_cents / 1200)
    return sum(np.sin(2 * np.pi * k * f * t) / k for k in range(1, harmonics + 1) if k * f < sr / 2)


def _bass(n: int, sr: int, beat_s: float, roots: list[int]) -> np.ndarray:
    x = np.zeros(n)
    note_s = beat_s / 2
    lowpass = signal.butter(2, 700, "lowpass", fs=sr, output="sos")
    for i in range(int(n / sr / note_s) + 1):
        root = roots[int(i * note_s / (4 * beat_s)) % len(roots)]
        midi = root + (12 if i % 4 == 3 else 0)  # an octave jump on the last eighth of each beat pair
        m = int(note_s * 0.9 * sr)
        tone = signal.sosfilt(lowpass, _saw(_hz(midi), m, sr, 16))
        _place(x, tone * _env(m, sr, 0.005, 0.15, 0.6, 0.02), i * note_s, sr)
    return x


def _keys(n: int, sr: int, beat_s: float, chords: list[tuple[int, ...]]) -> np.ndarray:
    """Electric-piano-like chords: slightly inharmonic partials, the higher ones dying faster."""
    x = np.zeros(n)
    bar_s = 4 * beat_s
    for bar in range(int(n / sr / bar_s) + 1):
        chord = chords[bar % len(chords)]
        for hit_beat, level in ((0.0, 1.0), (1.5, 0.6), (2.5, 0.8)):
            m = int(1.2 * beat_s * sr)
            t = np.arange(m) / sr
            hit = np.zeros(m)
            for note in chord:
                f = _hz(note)
                for k in range(1, 9):
                    fk = k * f * (1 + 0.0004 * k * k)
                    if fk < sr / 2:
                        hit += np.sin(2 * np.pi * fk * t) * k ** -1.6 * np.exp(-t * (1.5 + 1.2 * k))
            _place(x, level * hit * _env(m, sr, 0.004, 10.0, 1.0, 0.05), bar * bar_s + hit_beat * beat_s, sr)
    return x


def _pad(n: int, sr: int, beat_s: float, chords: list[tuple[int, ...]]) -> np.ndarray:
    """Slow, detuned saw voices through a gentle low-pass: a sustained pad, nothing below 130 Hz."""
    x = np.zeros(n)
    bar_s = 4 * beat_s
    lowpass = signal.butter(2, 2500, "lowpass", fs=sr, output="sos")
    for bar in range(int(n / sr / bar_s) + 1):
        m = int((bar_s + 0.6) * sr)  # overlap into the next chord
        t = np.arange(m) / sr
        # plain (aliasing) saws are fine here: the low-pass leaves the aliases 40 dB down, and
        # additive synthesis of 12 voices would take seconds; each voice starts at its own phase
        voices = sum(signal.sawtooth(2 * np.pi * _hz(note) * 2 ** (c / 1200) * t + c)
                     for note in chords[bar % len(chords)] for c in (-7, 0, 7))
        _place(x, signal.sosfilt(lowpass, voices) * _env(m, sr, 0.7, 10.0, 1.0, 0.6), bar * bar_s, sr)
    return x


def _melody(n: int, sr: int, beat_s: float, notes: list[int]) -> np.ndarray:
    x = np.zeros(n)
    for i in range(int(n / sr / beat_s) + 1):
        m = int(0.9 * beat_s * sr)
        t = np.arange(m) / sr
        f = _hz(notes[i % len(notes)])
        tone = np.sin(2 * np.pi * f * t) + 0.3 * np.sin(2 * np.pi * 2 * f * t) + 0.1 * np.sin(2 * np.pi * 3 * f * t)
        _place(x, tone * _env(m, sr, 0.02, 0.6, 0.3, 0.08), i * beat_s, sr)
    return x


def _room(x: np.ndarray, sr: int, wet: float) -> np.ndarray:
    """A little chorus and room, for a timbre that is not a bare oscillator."""
    from pedalboard import Chorus, Pedalboard, Reverb

    board = Pedalboard([Chorus(rate_hz=0.8, depth=0.15, mix=0.3),
                        Reverb(room_size=0.4, damping=0.6, wet_level=wet, dry_level=1.0 - wet)])
    return board(x[None].astype(np.float32), sr)[0].astype(np.float64)


# -- songs ----------------------------------------------------------------------------------

def _groove(n: int, sr: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    beat_s = 60.0 / TEMPO_BPM
    chords = [(57, 60, 64), (53, 57, 60), (60, 64, 67), (55, 59, 62)]  # Am F C G
    return {"drums": 0.9 * _drums(n, sr, beat_s, rng),
            "bass": 0.35 * _bass(n, sr, beat_s, [33, 29, 36, 31]),
            "other": 0.12 * _room(_keys(n, sr, beat_s, chords), sr, 0.25),
            "vocals": np.zeros(n)}  # MusicGen rarely sings: this stem holds only its noise floor


def _pad_song(n: int, sr: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    beat_s = 60.0 / (TEMPO_BPM * 0.75)
    chords = [(60, 64, 67, 71), (57, 60, 64, 67), (53, 57, 60, 64), (55, 59, 62, 67)]  # Cmaj7 Am7 Fmaj7 G
    melody = [76, 79, 81, 79, 76, 74, 72, 74]
    other = 0.05 * _pad(n, sr, beat_s, chords) + 0.05 * _melody(n, sr, beat_s, melody)
    return {"drums": np.zeros(n), "bass": np.zeros(n), "other": _room(other, sr, 0.35), "vocals": np.zeros(n)}


SONGS: dict[str, tuple[str, Callable]] = {
    "groove": ("drums, bass and keys: the router should separate", _groove),
    "pad": ("a pad and a quiet melody, no drums, no bass: the router should restore directly", _pad_song),
}


def add_defects(stems: dict[str, np.ndarray], sr: int, rng: np.random.Generator,
                defects: Defects = Defects()) -> dict[str, np.ndarray]:
    """Give each `(samples,)` stem MusicGen's defects: a share of the noise floor, an MP3 pass,
    and (on `other`) the DC offset. Returns `(1, samples)` float32 stems."""
    noise_rms = 10 ** (defects.noise_dbfs / 20) / np.sqrt(len(stems))  # the stems' noises add up to it
    out = {}
    for name, x in stems.items():
        noisy = (x + noise_rms * rng.standard_normal(x.shape))[None].astype(np.float32)
        y, _ = degrade.codec(noisy, sr, defects.mp3_vbr_quality)
        if name == "other":
            y = y + np.float32(defects.dc_offset)
        out[name] = y.astype(np.float32)
    return out


def synthesize(name: str, duration_s: float = DURATION_S, seed: int = SEED, defects: Defects = Defects()) -> Multitrack:
    """One demo song at MusicGen's 32 kHz: degraded stems, their sum, and the clean mix."""
    description, make = SONGS[name]
    sr = MUSICGEN_SR
    rng = np.random.default_rng(seed)
    clean_stems = make(int(duration_s * sr), sr, rng)
    clean = sum(clean_stems.values())
    gain = defects.peak / max(float(np.max(np.abs(clean))), 1e-9)
    stems = add_defects({k: gain * v for k, v in clean_stems.items()}, sr, rng, defects)
    mix = np.sum(list(stems.values()), axis=0, dtype=np.float32)
    return Multitrack(name, description, sr, stems, mix, (gain * clean)[None].astype(np.float32))


DEMO_SET = results.Kind("compare.json", outputs=("mix.wav", "clean.wav", "direct.wav", "routed.wav"),
                       legacy=pipeline.COMPARE_SET.legacy + ("mix.wav", "clean.wav", "stems/*.wav", "demucs/*"))
"""A demo song's result set: the song (mix, clean, stems/) and its comparisons, compare.json
(the true stems' comparison) its manifest, Demucs' comparison in demucs/."""


def write_song(song: Multitrack, folder: str | Path | results.ResultSet) -> Path:
    """`folder/mix.wav`, `folder/clean.wav` and `folder/stems/<name>.wav` (float WAV, 32 kHz);
    `folder` may be a result set being staged."""
    path = folder.path if isinstance(folder, results.Staged) else (lambda name: Path(folder) / name)
    for name, x in song.stems.items():
        audio.write(path(f"stems/{name}.wav"), x, song.sr)
    audio.write(path("clean.wav"), song.clean, song.sr)
    return audio.write(path("mix.wav"), song.mix, song.sr)


@dataclass(frozen=True)
class DemoSong:
    name: str
    description: str
    folder: str
    compares: dict[str, pipeline.CompareResult]
    """By separator: `stems` (the true stems), and `demucs` when its weights are here."""


@dataclass(frozen=True)
class DemoResult:
    out_dir: str
    songs: list[DemoSong]
    demucs: str
    """Where the real separator's weights were (`missing`: it did not run)."""
    elapsed_s: float
    notes: list[str] = field(default_factory=list)


def demo(out_dir: str | Path, *, duration_s: float = DURATION_S, seed: int = SEED,
         songs: tuple[str, ...] = tuple(SONGS), settings: pipeline.Settings = pipeline.Settings(), figures: bool = True,
         model_repo: str | Path | None = None, on_stage: Callable[[str], None] | None = None) -> DemoResult:
    """Synthesize the demo songs into `out_dir/<song>/` and run `pipeline.compare` on each with
    its true stems (into `<song>/`), and with Demucs (into `<song>/demucs/`) when its weights are
    already here; each song is one result set (`DEMO_SET`). Never touches the network."""
    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    where = models.locate(DEFAULT_MODEL, model_repo, probe_network=False).where
    notes = []
    if where == "missing":
        notes.append(f"Demucs weights for {DEFAULT_MODEL} are not here, so only the true stems were used "
                     f"(`adaptive-argm models fetch {DEFAULT_MODEL}` adds a real-separator run)")
    real = DemucsSeparator(DEFAULT_MODEL, model_repo) if where != "missing" else None  # loaded once, on first use
    done = []
    for name in songs:
        song = synthesize(name, duration_s, seed)
        folder = out_dir / name
        with results.ResultSet(folder, DEMO_SET) as staged:
            mix_path = write_song(song, staged)
            ref, _ = audio.read(staged.path("clean.wav"))
            compares = {"stems": pipeline.compare(mix_path, staged, StemsFolder(staged.path("stems")), settings,
                                                  reference=ref, figures=figures, on_stage=on_stage)}
            if real is not None:
                compares["demucs"] = pipeline.compare(mix_path, staged.view("demucs"), real, settings, reference=ref,
                                                      figures=figures, on_stage=on_stage)
                audio.write_text(staged.path("demucs/compare.json"),
                                 to_json(staged.published(compares["demucs"].to_dict())))
            staged.commit(compares["stems"].to_dict())
        done.append(DemoSong(name, song.description, str(folder), compares))
    return DemoResult(str(out_dir), done, where, time.perf_counter() - t0, notes)
