"""Separation: turn a mix into named stems, with Demucs or from a folder of stems the user
already has. Every separator returns stems that add up to the mix at the working rate, in the
mix's channel count.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol

import numpy as np

from ..config import (DEFAULT_MODEL, DEVICE, FORCE, OVERLAP, SEGMENT, SEPARATOR, SEPARATORS, SHIFTS, STEM_NAMES,
                      STEMS, Mode, SeparatorChoice, Setting, SettingError, UserError, check_choice)
from . import audio, heap, models
from .dc import remove_dc
from .resample import resample

MIX_NAMES = ("mix", "mixed", "mixture", "input")
"""File stems in a stems folder that hold the mix itself, not a stem."""
MAX_RESIDUAL_DB = -20.0
"""Refuse user stems whose best-gain sum misses the mix by more than this (unless forced)."""


class SeparationError(UserError):
    """Separation cannot run; the message is one line for the user."""


@dataclass(frozen=True)
class SeparatorInfo:
    name: str
    """`demucs`, `stems` or `none`."""
    model: str | None = None
    weights: str | None = None
    """Where the weights came from (`model-repo`, `hf-cache`, `torch-cache`, `download`, `builtin`)."""
    device: str | None = None
    folder: str | None = None
    gain: float | None = None
    """For user stems: the one gain that best maps their sum onto the mix."""
    residual_db: float | None = None
    """For user stems: energy of mix minus gain x sum, relative to the mix."""
    folded: dict[str, list[str]] = field(default_factory=dict)
    notice: str | None = None
    band_hz: float | None = None
    """The highest frequency its stems can hold (half the model's rate, or of the stem files'),
    when that is below the mix's: the rest of the mix is passed through (`high_band`)."""

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Separation:
    stems: dict[str, np.ndarray]
    """name -> `(channels, samples)` float32 at the run's rate; they add up to the mix."""
    info: SeparatorInfo
    beyond: np.ndarray | None = None
    """The mix above the stems' band (`high_band`), added back to every stem-wise remix; None
    when the stems hold the mix's whole band."""


HIGH_BAND_ORDER = 8
HIGH_BAND_FRACTION = 20000.0 / 22050.0
"""The pass-through starts at this fraction of the stems' band (20 kHz for Demucs' 44.1 kHz):
below it the stems hold the music (soxr's passband ends at about 0.91 of a rate's Nyquist)."""


def high_band(mix: np.ndarray, separation: Separation, sr: int) -> np.ndarray | None:
    """What the stems cannot hold: the mix minus the stems' sum, high-passed above
    `HIGH_BAND_FRACTION` of their band (zero-phase Butterworth, forward and backward; soxr's
    filters are linear-phase, so it lines up with the stems). None when the stems' band reaches
    the mix's Nyquist. A stem-wise result plus this keeps a 96 kHz input's band above 22 kHz.
    Where stem and mix overlap, result = H * mix + (1 - H) * stems: nothing is doubled."""
    band = separation.info.band_hz
    if band is None or band >= sr / 2.0 or not separation.stems:
        return None
    residual = np.array(mix, dtype=np.float64)
    for stem in separation.stems.values():
        residual -= stem
    return above(residual, band, sr)


def above(x: np.ndarray, band_hz: float, sr: int) -> np.ndarray:
    """What of `x` lies above `HIGH_BAND_FRACTION` of `band_hz` (the zero-phase high-pass of
    `high_band`), float32."""
    import scipy.signal

    sos = scipy.signal.butter(HIGH_BAND_ORDER // 2, HIGH_BAND_FRACTION * band_hz, "highpass", fs=sr, output="sos")
    return scipy.signal.sosfiltfilt(sos, np.asarray(x, dtype=np.float64), axis=1).astype(np.float32)


class Separator(Protocol):
    """What `pipeline.run` and `pipeline.compare` separate with: Demucs, a stems folder, or
    anything else that turns a mix into stems that add up to it."""

    def __call__(self, mix: np.ndarray, sr: int) -> Separation:
        """Stems of `mix` (`(channels, samples)` float32 at `sr`), in its channel count and length."""

    def spec(self) -> dict:
        """What decides its output, as plain JSON values: a batch's fingerprint changes with it."""


@dataclass(frozen=True)
class SeparatorOptions:
    """How to separate (what the CLI's separation options say): which separator, a stems folder,
    and Demucs' model and settings. `resolve` turns them into a `Separator`."""

    separator: SeparatorChoice = "auto"
    stems: Path | None = None
    """A folder of stems the user already has."""
    model: str = DEFAULT_MODEL
    model_repo: Path | None = None
    """A local folder with the model's NAME.yaml and SIG-*.th files."""
    device: str = "auto"
    segment: float | None = None
    overlap: float = 0.25
    shifts: int = 0
    force: bool = False
    """Use the stems even when they do not add up to the mix."""

    def __post_init__(self):
        check_choice(self.separator, SEPARATORS, SEPARATOR)
        if not (self.device in ("auto", "cpu", "cuda", "mps") or self.device.startswith("cuda:")):
            raise SettingError(DEVICE, f" must be auto, cpu, cuda (or cuda:N) or mps, not {self.device!r}")
        if self.segment is not None and not self.segment > 0:
            raise SettingError(SEGMENT, f" must be a positive number of seconds, not {self.segment}")
        if not 0 <= self.overlap < 1:
            raise SettingError(OVERLAP, f" must be at least 0 and below 1, not {self.overlap}")
        if self.shifts < 0:
            raise SettingError(SHIFTS, f" must be 0 or more, not {self.shifts}")

    def demucs(self) -> DemucsSeparator:
        """Demucs with these options (the model is loaded on first use)."""
        return DemucsSeparator(self.model, self.model_repo, device=self.device, segment=self.segment,
                               overlap=self.overlap, shifts=self.shifts)


def pick_device(device: str = "auto") -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise SeparationError(DEVICE, " cuda was asked for but torch sees no CUDA device")
    return device


class DemucsSeparator:
    """Demucs 4 through its own API (`get_model`, `apply_model`), loaded once on first use.

    Parameters mirror demucs' CLI: `segment` (seconds per chunk; None = the model's own),
    `overlap` (fraction between chunks), `shifts` (random-shift averaging passes). A call may
    take `progress`, told the share of the work done (0 to 1) as each chunk is finished.
    """

    reports_progress = True
    """`pipeline` hands a call its `on_progress` (separators without this attribute get none)."""

    def __init__(self, model: str = DEFAULT_MODEL, model_repo: str | Path | None = None, *,
                 device: str = "auto", segment: float | None = None, overlap: float = 0.25,
                 shifts: int = 0):
        self.model_name = model
        self.model_repo = model_repo
        self.device = device
        self.segment = segment
        self.overlap = overlap
        self.shifts = shifts
        self._model = None
        self._where: str | None = None

    def spec(self) -> dict:
        return {"name": type(self).__name__, "model_name": self.model_name,
                "model_repo": str(self.model_repo) if isinstance(self.model_repo, Path) else self.model_repo,
                "segment": self.segment, "overlap": self.overlap, "shifts": self.shifts}

    def load(self):
        if self._model is None:
            self._where = models.locate(self.model_name, self.model_repo).where
            self._model = models.load(self.model_name, self.model_repo)
        return self._model

    def __call__(self, mix: np.ndarray, sr: int, progress: Callable[[float], None] | None = None) -> Separation:
        import torch
        from demucs.apply import BagOfModels, apply_model

        model = self.load()
        device = pick_device(self.device)
        segment = self.segment
        if segment is not None and isinstance(model, BagOfModels):
            segment = min(segment, model.max_allowed_segment)
        # A bag of one model is that model: applying it directly skips the bag's accumulation
        # copy of every stem (about 0.85 GB on a 10-minute stereo file).
        if isinstance(model, BagOfModels) and len(model.models) == 1 and all(
                w == 1.0 for w in model.weights[0]):
            model = model.models[0]
        x = resample(mix, sr, model.samplerate)
        stereo = x.shape[0] == 2
        out: dict[str, np.ndarray] = {}
        # Demucs wants stereo: separate a stereo mix in one pass, anything else channel by
        # channel as mono duplicated to stereo (a broadcast view, not a copy), then bring each
        # stem back to the mix's layout.
        groups = [x] if stereo else [x[c:c + 1] for c in range(x.shape[0])]
        chunks = _ChunkProgress(progress, model, segment, self.shifts, len(groups), x.shape[1])
        for c, wav in enumerate(groups):
            t = torch.from_numpy(np.ascontiguousarray(wav))
            ref = t.mean(0)
            mean, std = ref.mean(), ref.std() + 1e-8  # demucs' own normalisation
            wav_in = ((t - mean) / std).expand(2, -1)
            with torch.no_grad():
                est = apply_model(model, wav_in[None], shifts=self.shifts, split=True, overlap=self.overlap,
                                  segment=segment, device=device, progress=False, **chunks.hook(c))[0]
            del wav_in
            # In place: every full-length copy of all stems costs 0.85 GB on 10 minutes of stereo.
            est = est.cpu().mul_(std).add_(mean).numpy()
            for i, name in enumerate(model.sources):
                if stereo:
                    out[name] = est[i]
                else:  # allocated only now, not held through the separation
                    out.setdefault(name, np.empty(x.shape, np.float32))[c] = est[i].mean(axis=0)
            del est
        chunks.finish()
        stems = {name: resample(s, model.samplerate, sr, frames=mix.shape[1]).astype(np.float32, copy=False)
                 for name, s in out.items()}
        stems = {name: _fit_length(s, mix.shape[1]) for name, s in stems.items()}
        # The heap Demucs' chunk activations leave free goes back to the OS (glibc would keep it:
        # about 0.9 GB on a 10-minute file, counted in the RSS through the rest of the pipeline).
        heap.trim()
        info = SeparatorInfo(name="demucs", model=self.model_name, weights=self._where, device=device,
                             band_hz=model.samplerate / 2.0 if model.samplerate < sr else None)
        return Separation(stems, info)


class _ChunkProgress:
    """The share of a separation done, from the callback demucs' `apply_model` makes as each
    chunk ends (its model in the bag, its shift pass, its offset). The work is `passes` equal
    parts (channel groups x models x shift passes), each done as far as its last chunk's end;
    the share only grows. Inert without a `report` or with a demucs whose `apply_model` takes
    no callback."""

    def __init__(self, report: Callable[[float], None] | None, model, segment: float | None, shifts: int,
                 groups: int, length: int):
        from demucs.apply import BagOfModels, apply_model

        self.report = report if "callback" in inspect.signature(apply_model).parameters else None
        members = model.models if isinstance(model, BagOfModels) else [model]
        self.chunk = [int(model.samplerate * (segment if segment is not None else m.segment)) for m in members]
        self.shifts = max(shifts, 1)
        self.passes = groups * len(members) * self.shifts
        self.length = max(length, 1)
        self.done = 0.0

    def hook(self, group: int) -> dict:
        """`apply_model`'s keyword arguments for channel group `group`."""
        if self.report is None:
            return {}
        return {"callback": lambda d: self._chunk_ended(group, d) if d.get("state") == "end" else None}

    def _chunk_ended(self, group: int, d: dict) -> None:
        m = d["model_idx_in_bag"]
        part = min(1.0, (d["segment_offset"] + self.chunk[m]) / self.length)
        done = ((group * len(self.chunk) + m) * self.shifts + d["shift_idx"] + part) / self.passes
        if done > self.done:
            self.done = min(done, 1.0)
            self.report(self.done)

    def finish(self) -> None:
        if self.report is not None and self.done < 1.0:
            self.done = 1.0
            self.report(1.0)


def _fit_length(x: np.ndarray, n: int) -> np.ndarray:
    if x.shape[1] >= n:
        return np.ascontiguousarray(x[:, :n])
    return np.pad(x, ((0, 0), (0, n - x.shape[1])))


def stem_files(folder: str | Path, exclude: tuple[str | Path, ...] = ()) -> dict[str, Path]:
    """Audio files in `folder` by stem name, leaving out the mix itself."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SeparationError(STEMS, f" {folder}: not a folder")
    skip = {Path(p).resolve() for p in exclude}
    files: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if (p.is_file() and p.suffix.lower() in audio.AUDIO_SUFFIXES and p.stem.lower() not in MIX_NAMES
                and p.resolve() not in skip):
            if p.stem.lower() in files:
                raise SeparationError(STEMS, f" {folder}: two files for the stem {p.stem.lower()!r} "
                                             f"({files[p.stem.lower()].name}, {p.name}): keep one")
            files[p.stem.lower()] = p
    if not files:
        raise SeparationError(STEMS, f" {folder}: no stem files (<name>.wav|flac|mp3|ogg|aiff) found")
    return files


class StemsFolder:
    """Stems the user already has (demucs' `separated/<model>/<track>/` layout or any folder of
    `<name>.<ext>` files). Names outside drums/bass/other/vocals are summed into `other`, and
    one least-squares gain maps their sum onto the mix (so stems saved as a mean, or normalised,
    still fit); a sum that misses the mix by more than `max_residual_db` is refused."""

    def __init__(self, folder: str | Path, *, force: bool = False, max_residual_db: float = MAX_RESIDUAL_DB,
                 exclude: tuple[str | Path, ...] = ()):
        self.folder = Path(folder)
        self.force = force
        self.max_residual_db = max_residual_db
        self.exclude = exclude

    def spec(self) -> dict:
        return {"name": type(self).__name__, "folder": str(self.folder), "force": self.force}

    def __call__(self, mix: np.ndarray, sr: int) -> Separation:
        stems: dict[str, np.ndarray] = {}
        folded: dict[str, list[str]] = {}
        rates = []
        for name, path in stem_files(self.folder, self.exclude).items():
            try:
                x, info = audio.read(path, sr)
            except audio.AudioError as exc:
                raise SeparationError(f"stem {exc}") from None
            rates.append(info.sample_rate)
            x = _fit_length(audio.to_channels(remove_dc(x, sr, bypass=False), mix.shape[0]), mix.shape[1])
            target = name if name in STEM_NAMES else "other"
            if target != name:
                folded.setdefault(target, []).append(name)
            stems[target] = stems[target] + x if target in stems else x
        total = sum(stems.values())
        band_hz = min(rates) / 2.0 if min(rates) < sr else None
        gain, resid, residual_db = _fit(mix, total)
        if band_hz is not None:
            # Fitted to the part of the mix they can hold, when the mix holds more than they do (a
            # 96 kHz mix, 44.1 kHz stems); a mix no wider than its stems (32 kHz files in a 44.1 kHz
            # run) is fitted whole, and nothing is passed around them.
            narrow = _fit(mix - above(mix, band_hz, sr), total)
            if narrow[1] < resid:
                gain, resid, residual_db = narrow
            else:
                band_hz = None
        if residual_db > self.max_residual_db and not self.force:
            raise SeparationError(
                STEMS, f" {self.folder}: the stems do not add up to the input (residual {residual_db:.1f} dB after the "
                f"best gain {gain:.3g}; limit {self.max_residual_db:.0f} dB); pass ", FORCE, " to use them anyway")
        stems = {k: (v * gain).astype(np.float32) for k, v in stems.items()}
        info = SeparatorInfo(name="stems", folder=str(self.folder), gain=gain, residual_db=float(residual_db),
                             folded=folded, band_hz=band_hz)
        return Separation(stems, info)


def _fit(mix: np.ndarray, total: np.ndarray) -> tuple[float, float, float]:
    """The least-squares gain mapping `total` onto `mix`: `(gain, residual energy, residual in dB
    re the mix)`."""
    energy = float(np.sum(total.astype(np.float64) ** 2))
    gain = float(np.sum(mix.astype(np.float64) * total) / energy) if energy > 0 else 1.0
    resid = float(np.sum((mix - gain * total).astype(np.float64) ** 2))
    mix_energy = float(np.sum(mix.astype(np.float64) ** 2))
    return gain, resid, float(10 * np.log10(max(resid, 1e-30) / max(mix_energy, 1e-30)))


def resolve(options: SeparatorOptions = SeparatorOptions(), *, mode: Mode = "routed",
            exclude: tuple[str | Path, ...] = ()) -> tuple[Separator | None, str | None]:
    """Pick the separator for a run: `(separator or None, notice or None)`; `exclude` lists files
    a stems folder must not take for stems (the input itself).

    `auto` uses user stems when given, else Demucs when its weights are here (or downloadable),
    else none: the mix is restored directly and `notice` says why and how to get stem-wise
    restoration. Asking for Demucs (`demucs`, or mode `stemwise`) with no weights raises
    `models.ModelUnavailable` at once.
    """
    o = options
    if mode == "direct":
        return None, (None if o.stems is None else f"mode direct restores the mix itself: the stems in {o.stems} are "
                                                   "not used")
    if o.separator == "stems" or (o.separator == "auto" and o.stems is not None):
        if o.stems is None:
            raise SeparationError(SEPARATOR, " stems needs ", Setting(STEMS.name, "a stems folder"))
        return StemsFolder(o.stems, force=o.force, exclude=exclude), None
    if models.locate(o.model, o.model_repo).where != "missing":
        return o.demucs(), None
    message = f"no weights for Demucs model {o.model!r} here and no network: {models.advice(o.model)}"
    if o.separator == "demucs" or mode == "stemwise":
        raise models.ModelUnavailable(message)
    return None, f"restored the mix directly: {message}"
