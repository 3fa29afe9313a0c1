"""Restoration steps: the kinds a preset's chain can name, their functions on `(channels,
samples)` float32 audio, and the binding of `pedalboard.<Plugin>` steps to pedalboard's plugins.

A step is data (`Step`: a kind and its parameters). `noisereduce` (spectral gating), `wiener`
(our level-aware denoiser) and `dc_remove` are functions here; any pedalboard plugin is named as
`pedalboard.<Plugin>` with pedalboard's own parameter names. `check` refuses a step that cannot
run, with a one-line `PresetError`; `presets` checks every step it loads, `dsp` runs them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pedalboard

from ..config import UserError
from .audio import remove_dc
from .denoise import WienerSettings, found_noise_power, wiener_denoise

PEDALBOARD_PREFIX = "pedalboard."
NOISEREDUCE_N_FFT = 1024
"""noisereduce 3's default `n_fft`: it needs at least this many samples to take one STFT frame."""
NOISEREDUCE_CHUNK_SIZE = 600000
"""noisereduce 3's default `chunk_size`: it filters long files piece by piece, and its
stationary noise profile comes from the first `chunk_size` samples."""


class PresetError(UserError):
    """A preset that cannot be loaded; the message is one line for the user."""


@dataclass(frozen=True)
class Step:
    """One DSP stage: `kind` names a function in `KINDS`, or `pedalboard.<Plugin>`."""

    kind: str
    params: dict = field(default_factory=dict)

    @property
    def is_plugin(self) -> bool:
        return self.kind.startswith(PEDALBOARD_PREFIX)


def _noisereduce(x: np.ndarray, sr: int, *, out: np.ndarray | None = None, **params) -> np.ndarray:
    """noisereduce, channel by channel; `out` may be `x` itself (filtered in place)."""
    import noisereduce

    n = x.shape[1]
    min_n = max(int(params.get("n_fft", NOISEREDUCE_N_FFT)), int(params.get("win_length") or 0))
    # A clip shorter than one frame is zero-padded to one and cut back (scipy refuses it).
    y_in = np.pad(x, ((0, 0), (0, min_n - n))) if n < min_n else x
    if params.get("stationary") and params.get("y_noise") is None:
        # noisereduce's own profile, handed over explicitly so that each channel can be filtered
        # on its own: the channel mean of the first `chunk_size` samples (all of them without
        # `clip_noise_stationary`). The result is the same as one multichannel call, which
        # copies the whole signal and averages all of it first (0.5 GB more per stereo stem on
        # a 10-minute file). Copied when filtering in place, which overwrites it.
        clip = params.get("clip_noise_stationary", True)
        head = y_in[:, :params.get("chunk_size", NOISEREDUCE_CHUNK_SIZE) if clip else None]
        params = {**params, "y_noise": np.array(head) if out is x else head}
    # noisereduce wants (channels, samples); a (samples, channels) array would be read as
    # thousands of channels, and a 1-D one costs an extra copy on the way out. It works through
    # long files in `chunk_size` pieces.
    result = out if out is not None and y_in is x else np.empty(y_in.shape, np.float32)
    for c in range(y_in.shape[0]):
        result[c] = np.asarray(noisereduce.reduce_noise(y=y_in[c:c + 1], sr=sr, **params), np.float32)[0]
    return result[:, :n]


def _wiener(x: np.ndarray, sr: int, *, out: np.ndarray | None = None, **params) -> np.ndarray:
    return wiener_denoise(x, sr, WienerSettings(**params), out=out)


def _dc_remove(x: np.ndarray, sr: int, *, out: np.ndarray | None = None) -> np.ndarray:
    if out is x:
        x -= x.mean(axis=1, keepdims=True)
        return x
    return remove_dc(x)


KINDS: dict[str, Callable[..., np.ndarray]] = {
    "noisereduce": _noisereduce,
    "wiener": _wiener,
    "dc_remove": _dc_remove,
}
IN_PLACE_KINDS = frozenset({"noisereduce", "dc_remove", "wiener"})
"""Step kinds that can write their result over their input (`out=`)."""

PROBES: dict[str, Callable[..., float]] = {
    "wiener": lambda x, sr, **params: found_noise_power(x, sr, WienerSettings(**params)),
}
"""Step kinds that can say, before running, how much they would find to act on in a signal (a
power, linear): the router compares the mix with the stems through these."""


def probe(step: Step, x: np.ndarray, sr: int) -> float | None:
    """What `step` would find to act on in `x` (`PROBES`); None for a kind that cannot say."""
    fn = PROBES.get(step.kind)
    return None if fn is None else float(fn(x, sr, **step.params))


def plugin(step: Step) -> pedalboard.Plugin:
    """The pedalboard plugin a `pedalboard.<Plugin>` step names, built with its parameters."""
    name = step.kind[len(PEDALBOARD_PREFIX):]
    cls = getattr(pedalboard, name, None)
    if not (isinstance(cls, type) and issubclass(cls, pedalboard.Plugin)):
        raise PresetError(f"unknown pedalboard plugin {name!r}")
    try:
        return cls(**step.params)
    except TypeError as exc:
        raise PresetError(f"{step.kind}: {exc}") from None


def check(step: Step, source: str) -> None:
    """Refuse, with a one-line `PresetError` naming `source`, a step kind or parameter that
    cannot run."""
    if step.is_plugin:
        plugin(step)
    elif step.kind not in KINDS:
        raise PresetError(f"{source}: unknown step kind {step.kind!r} "
                          f"(known: {', '.join(KINDS)}, {PEDALBOARD_PREFIX}<Plugin>)")
    elif step.kind == "wiener":
        try:
            WienerSettings(**step.params)
        except (TypeError, ValueError) as exc:
            raise PresetError(f"{source}: wiener: {exc}") from None


def run(step: Step, x: np.ndarray, sr: int, *, out: np.ndarray | None = None) -> np.ndarray:
    """One function step on `x`; with `out` (a kind in `IN_PLACE_KINDS` only) it may write there."""
    return KINDS[step.kind](x, sr, **({"out": out} if out is not None else {}), **step.params)
