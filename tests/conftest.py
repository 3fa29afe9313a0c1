"""Shared fixtures: the real MusicGen corpus (skipped when absent) and synthetic clips with
known answers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.signal

import yaml

from adaptive_argm.config import STEM_NAMES
from adaptive_argm.core import audio, models

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus" / "musicgen-dev"
SONGS = ("acoustic_folk", "lofi_chill", "upbeat_electronic")
SR = audio.WORK_SR
OFFLINE_PROBE = "127.0.0.1:9"
"""A closed local port: the network probe fails at once, as on a machine with no network."""


@pytest.fixture
def corpus() -> Path:
    if not CORPUS.is_dir():
        pytest.skip("../shared/corpus/musicgen-dev is not here")
    return CORPUS


def tone(freq_hz: float, seconds: float, sr: int = SR, level: float = 0.2) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (level * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)


def synthetic_stems(seconds: float = 3.0, sr: int = SR, channels: int = 1, seed: int = 0) -> dict[str, np.ndarray]:
    """Kick-like drums, a bass line and a chord: each a `(channels, samples)` stem."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    t = np.arange(n) / sr
    drums = np.zeros(n)
    for start in np.arange(0, seconds, 0.5):
        i = int(start * sr)
        m = min(n - i, int(0.15 * sr))
        env = np.exp(-np.arange(m) / (0.03 * sr))
        drums[i:i + m] += 0.5 * env * np.sin(2 * np.pi * 60 * np.arange(m) / sr) + 0.05 * env * rng.standard_normal(m)
    bass = 0.15 * np.sin(2 * np.pi * 55 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 0.5 * t))
    other = sum(0.06 * np.sin(2 * np.pi * f * t) for f in (261.6, 329.6, 392.0, 523.3))
    stems = {"drums": drums, "bass": bass, "other": other}
    out = {}
    for name, x in stems.items():
        x = np.stack([x * (1.0 - 0.1 * c) for c in range(channels)]).astype(np.float32)
        out[name] = x
    return out


def write_stems(folder: Path, stems: dict[str, np.ndarray], sr: int = SR) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, x in stems.items():
        audio.write(folder / f"{name}.wav", x, sr)
    return folder


@pytest.fixture
def stereo_song(tmp_path) -> tuple[Path, Path]:
    """A stereo mix with a DC offset and overs, plus its stems folder."""
    stems = synthetic_stems(channels=2)
    mix = sum(stems.values()) + 0.001 * np.random.default_rng(1).standard_normal((2, 3 * SR)).astype(np.float32)
    stems["other"] = stems["other"] + (mix - sum(stems.values()))  # stems add up exactly
    mix = mix * 2.5 + 0.05  # overs above full scale and a DC offset, as real MusicGen files have
    stems = {k: v * 2.5 for k, v in stems.items()}
    stems["other"] = stems["other"] + 0.05
    song = audio.write(tmp_path / "song.wav", mix.astype(np.float32), SR)
    return song, write_stems(tmp_path / "stems", stems)


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No weights anywhere and no network; returns the env a subprocess needs for the same."""
    env = {"ADAPTIVE_ARGM_NETWORK_PROBE": OFFLINE_PROBE, "HF_HUB_CACHE": str(tmp_path / "hf"),
           "TORCH_HOME": str(tmp_path / "torch"), models.MODEL_DIR_ENV: str(tmp_path / "fetched")}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_HUB_CACHE", env["HF_HUB_CACHE"])
    return env


def tiny_model_repo(folder: Path, name: str = "tiny") -> Path:
    """A tiny random-init HDemucs saved as demucs' training does, with its bag YAML: plumbing
    only, its stems mean nothing."""
    import torch
    from demucs.hdemucs import HDemucs

    torch.manual_seed(0)
    model = HDemucs(channels=4, sources=list(STEM_NAMES))
    models.save_model_package(model, folder / "0a1b2c3d.th")
    (folder / f"{name}.yaml").write_text(yaml.safe_dump({"models": ["0a1b2c3d"]}))
    return folder


def full_band_music(seconds: float = 3.0, sr: int = SR, seed: int = 0) -> np.ndarray:
    """`(2, samples)` float32: harmonic tones plus decaying noise bursts, content to 20 kHz."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    t = np.arange(n) / sr
    tones = sum(0.3 / k * np.sin(2 * np.pi * 220.0 * k * t) for k in range(1, 40))
    bursts = rng.standard_normal(n) * 0.3 * np.exp(-(t % 0.375) / 0.05)
    x = (tones * (0.6 + 0.4 * np.sin(2 * np.pi * 0.7 * t)) + bursts) * 0.2
    return np.stack([x, 0.8 * x]).astype(np.float32)


def music_like(seconds: float = 6.0, seed: int = 0, sr: int = SR) -> np.ndarray:
    """Harmonic tones over a pink-ish noise bed, with a slow 20 dB loudness swell so that the
    quiet frames come in runs (as decays and breaks do in real music). Dense enough that the
    paper metric is not saturated (real MusicGen mixes read about -53 to -65 dB)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    y = np.zeros_like(t)
    for f0, amp in ((110.0, 0.3), (220.0, 0.15), (330.0, 0.1), (523.0, 0.08), (1760.0, 0.03)):
        y += amp * np.sin(2 * np.pi * f0 * t + rng.uniform(0, 2 * np.pi))
    bed = scipy.signal.lfilter([1.0], [1.0, -0.95], rng.standard_normal(t.size))
    y += 0.05 * bed / np.std(bed)
    envelope = 0.1 + 0.9 * (0.5 + 0.5 * np.sin(2 * np.pi * 0.4 * t)) ** 2
    return (0.5 * y * envelope).astype(np.float32)


def mute_quietest_blocks(y: np.ndarray, fraction: float, block: int = 2048) -> np.ndarray:
    out = y.copy()
    n_blocks = out.size // block
    rms = np.sqrt((out[: n_blocks * block].reshape(n_blocks, block) ** 2).mean(axis=1))
    for b in np.argsort(rms)[: int(round(fraction * n_blocks))]:
        out[b * block : (b + 1) * block] = 0.0
    return out
