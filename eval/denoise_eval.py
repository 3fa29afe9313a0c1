"""Shared pieces of the denoiser's evaluation scripts (`denoise_diagnosis.py`, `denoise_cv.py`):
the development clips, the seeded conditions, the restoration call and the scores.

Clips (all clean references, scored at 44.1 kHz; anything at another rate is converted ONCE with
soxr, and the degradation is applied after that, so clean and degraded went through the same
resampling):
- real-dev: the real-music development corpus (`manifest.json` + one WAV per excerpt), or any
  folder of audio files (e.g. excerpts cut by hand from the same development tracks);
- midi-dev: the General MIDI multitrack development corpus (`<song>/mixed.wav` + stems);
- musicgen-dev: `<song>/mixed.wav` (32 kHz mono MusicGen clips).
Clips are cut to `--max-s` seconds (from the start) so that a sweep stays short.

Conditions (`CONDITIONS`): `clean`; `white-45` and `pink-45` (degrade.noise: stationary noise,
RMS -45 dBFS over all channels, independent per channel; pink is -3 dB/octave from 20 Hz);
`brown-45` (lo-fi hiss: white noise shaped by an analogue first-order low-pass magnitude, i.e.
flat below `BROWN_CORNER_HZ` = 1 kHz and -6 dB/octave above it, nothing below 20 Hz, RMS -45 dBFS); `codec`
(degrade.codec, LAME VBR quality 7); `sr32` (soxr to 32 kHz and back: an empty band above
16 kHz); `bandlimit` (degrade.bandlimit, the steep 16 kHz elliptic low-pass).

Scores: SI-SDR change (output minus degraded input, both read at most
`intrusive.SCORE_CEILING_DB`), loudness change (BS.1770, output minus input, LU) and ViSQOL v3
audio mode (visqol-python, 48 kHz mono downmix, soxr) of input and output against the clean clip.
"""

from __future__ import annotations

import json
import math
import zlib
import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.signal
import soundfile as sf
import soxr

from adaptive_argm.core import intrusive, levels, pipeline, presets, steps
from adaptive_argm.core.dc import remove_dc
from adaptive_argm.core.route import route
from adaptive_argm.evaluation import degrade

SR = 44100
VISQOL_SR = 48000
CONDITIONS = ("clean", "white-45", "pink-45", "brown-45", "codec", "sr32", "bandlimit")
NOISE_CONDITIONS = ("white-45", "pink-45", "brown-45")
HARMLESS_CONDITIONS = ("clean", "codec", "sr32", "bandlimit")
BROWN_CORNER_HZ = 1000.0
BROWN_HIGHPASS_HZ = 20.0
SEED = 20260
CEILING_DB = intrusive.SCORE_CEILING_DB
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".opus", ".mp3")


@dataclass(frozen=True)
class Clip:
    """One clean reference: `(channels, samples)` float32 at 44.1 kHz."""

    name: str
    """Unique over every corpus: `<corpus>/<song>`."""
    corpus: str
    audio: np.ndarray


def load(path: str | Path, max_s: float | None = None) -> np.ndarray:
    """`(channels, samples)` float32 at 44.1 kHz (soxr, very high quality), cut to `max_s`."""
    x, sr = sf.read(str(path), dtype="float64", always_2d=True)
    if max_s:
        x = x[: int(round(max_s * sr))]
    if sr != SR:
        x = soxr.resample(x, sr, SR, quality="VHQ")
    return np.ascontiguousarray(x.T, dtype=np.float32)


def real_clips(folder: str | Path, max_s: float | None) -> list[Clip]:
    """The excerpts listed in `manifest.json`, else every audio file in the folder."""
    folder = Path(folder)
    manifest = folder / "manifest.json"
    if manifest.is_file():
        entries = json.loads(manifest.read_text())["excerpts"]
        files = [(Path(e["file"]).stem, folder / e["file"]) for e in entries]
    else:
        files = [(p.stem, p) for p in sorted(folder.iterdir()) if p.suffix.lower() in AUDIO_SUFFIXES]
    return [Clip(f"real/{name}", "real", load(p, max_s)) for name, p in files]


def song_clips(folder: str | Path, corpus: str, max_s: float | None) -> list[Clip]:
    """`<song>/mixed.wav` of a multitrack corpus (midi-dev, musicgen-dev)."""
    folder = Path(folder)
    songs = sorted(p for p in folder.iterdir() if (p / "mixed.wav").is_file())
    return [Clip(f"{corpus}/{p.name}", corpus, load(p / "mixed.wav", max_s)) for p in songs]


def corpus_arguments(ap) -> None:
    """The corpus options every denoiser script takes (`all_clips`' arguments)."""
    ap.add_argument("--real", help="real-music corpus folder (manifest.json + excerpts) or any folder of audio")
    ap.add_argument("--midi", help="multitrack corpus folder (<song>/mixed.wav + stems)")
    ap.add_argument("--musicgen", help="musicgen-dev folder (<song>/mixed.wav)")
    ap.add_argument("--max-s", type=float, default=20.0, help="seconds of each clip, from its start")


def all_clips(real: str | None, midi: str | None, musicgen: str | None, max_s: float | None) -> list[Clip]:
    clips: list[Clip] = []
    if real:
        clips += real_clips(real, max_s)
    if midi:
        clips += song_clips(midi, "midi", max_s)
    if musicgen:
        clips += song_clips(musicgen, "musicgen", max_s)
    if not clips:
        raise SystemExit("no clips: give --real, --midi and/or --musicgen")
    return clips


def halves(clips: list[Clip]) -> tuple[list[Clip], list[Clip]]:
    """The 2-fold split by song: within each corpus, clips in name order alternate A, B, A, ...
    (each corpus is split on its own, so both halves hold real, MIDI and MusicGen songs)."""
    a: list[Clip] = []
    b: list[Clip] = []
    for corpus in dict.fromkeys(c.corpus for c in clips):
        for i, c in enumerate(sorted((c for c in clips if c.corpus == corpus), key=lambda c: c.name)):
            (a if i % 2 == 0 else b).append(c)
    return a, b


# --- conditions --------------------------------------------------------------------------------


def seed_for(clip: Clip, condition: str) -> int:
    return (SEED + zlib.crc32(f"{clip.name}/{condition}".encode())) % (2**31)


def brown_noise(shape: tuple[int, int], rms_dbfs: float, rng: np.random.Generator) -> np.ndarray:
    """Lo-fi hiss: white noise shaped in the frequency domain by an analogue first-order low-pass
    magnitude, |H| = 1 / sqrt(1 + (f / BROWN_CORNER_HZ)^2): flat below the corner, -6 dB/octave
    above it all the way to Nyquist (a digital filter would add a zero there); nothing below
    20 Hz; RMS `rms_dbfs` over all channels."""
    spec = np.fft.rfft(rng.standard_normal(shape), axis=1)
    f = np.fft.rfftfreq(shape[1], 1.0 / SR)
    shaping = 1.0 / np.sqrt(1.0 + (f / BROWN_CORNER_HZ) ** 2)
    shaping[f < BROWN_HIGHPASS_HZ] = 0.0
    n = np.fft.irfft(spec * shaping, n=shape[1], axis=1)
    return n * (10 ** (rms_dbfs / 20) / np.sqrt(np.mean(n**2)))


def reference(clip: Clip) -> np.ndarray:
    """The clean clip as restoration's outputs are scored against it: without its DC offset and
    subsonic drift, which loading removes from every input (`core.dc`) before any step runs."""
    return remove_dc(clip.audio, SR)


def degraded(clip: Clip, condition: str) -> np.ndarray:
    """The clip under `condition`, float32, same shape; seeded per clip and condition."""
    x = clip.audio
    seed = seed_for(clip, condition)
    if condition == "clean":
        return x.copy()
    if condition == "brown-45":
        return (x + brown_noise(x.shape, -45.0, np.random.default_rng(seed))).astype(np.float32)
    if condition == "sr32":
        y = soxr.resample(soxr.resample(x.T.astype(np.float64), SR, 32000, quality="VHQ"), 32000, SR, quality="VHQ")
        y = y.T[:, : x.shape[1]]
        if y.shape[1] < x.shape[1]:
            y = np.pad(y, ((0, 0), (0, x.shape[1] - y.shape[1])))
        return np.ascontiguousarray(y, dtype=np.float32)
    y, _ = degrade.apply(condition, x, SR, seed)
    return y


# --- restoration -------------------------------------------------------------------------------


def preset_with(wiener: dict | None = None, base: str = "adaptive") -> presets.Preset:
    """The built-in preset's mix chain without its spectral recovery, its `wiener` settings
    overridden by `wiener`. Recovery is measured on its own (eval/results/recovery.md, ViSQOL
    against full-band originals); here it would add a band above 16 kHz to the MusicGen clips,
    whose clean references are cut there, and score that as damage to the denoiser's SI-SDR."""
    p = presets.load(base)
    chain = tuple(steps.Step(s.kind, {**s.params, **(wiener or {})}) if s.kind == "wiener" else s
                  for s in p.steps if s.kind != "spectral_recovery")
    return dataclasses.replace(p, steps=chain)


def restore_direct(x: np.ndarray, preset: presets.Preset) -> pipeline.Restored:
    """What `adaptive-argm run --mode direct` does to the 44.1 kHz mix: the preset's chain,
    loudness matching and clip safety."""
    x = remove_dc(x, SR)  # as loading does, before any preset
    restored, _ = pipeline.restore(x, route({}, x, SR, "direct"), preset, None)
    return restored


# --- scores ------------------------------------------------------------------------------------


def capped(db: float) -> float:
    return min(db, CEILING_DB) if not math.isnan(db) else db


def fast_si_sdr_db(ref: np.ndarray, est: np.ndarray) -> float:
    """SI-SDR (means removed, channels flattened) without a delay search: for outputs of a chain
    that adds no delay (tuning loops); reports use `intrusive.si_sdr_db`."""
    r = ref.astype(np.float64)
    e = est.astype(np.float64)
    r -= r.mean(axis=1, keepdims=True)
    e -= e.mean(axis=1, keepdims=True)
    r, e = r.ravel(), e.ravel()
    target = r * (float(e @ r) / float(r @ r))
    err = e - target
    energy = float(err @ err)
    return 10 * math.log10(float(target @ target) / energy) if energy > 0 else math.inf


def si_sdr_change_db(clean: np.ndarray, noisy: np.ndarray, out: np.ndarray) -> float:
    if np.array_equal(out, noisy):
        return 0.0
    return capped(intrusive.si_sdr_db(out, clean)) - capped(intrusive.si_sdr_db(noisy, clean))


def loudness_change_lu(noisy: np.ndarray, out: np.ndarray) -> float:
    return levels.loudness_lufs(out, SR) - levels.loudness_lufs(noisy, SR)


_VISQOL = None


def visqol(ref: np.ndarray, deg: np.ndarray) -> float:
    """ViSQOL v3 MOS-LQO, audio mode: mono downmix, 48 kHz (soxr)."""
    global _VISQOL
    if _VISQOL is None:
        import visqol as vq

        _VISQOL = vq.VisqolApi()
        _VISQOL.create(mode="audio")
    r = soxr.resample(np.mean(ref, axis=0, dtype=np.float64), SR, VISQOL_SR, quality="VHQ")
    d = soxr.resample(np.mean(deg, axis=0, dtype=np.float64), SR, VISQOL_SR, quality="VHQ")
    return float(_VISQOL.measure_from_arrays(r, d, VISQOL_SR).moslqo)


def summary(values: list[float]) -> tuple[float, float]:
    """(mean, worst = minimum) of finite values."""
    v = [x for x in values if x is not None and math.isfinite(x)]
    return (float(np.mean(v)), float(min(v))) if v else (math.nan, math.nan)
