"""DSP: run a preset's chain of steps on `(channels, samples)` float32 audio, and keep the result
inside full scale without clipping silently.

Steps are looked up by `kind`: `noisereduce` (spectral gating), `wiener` (our level-aware
denoiser), `dc_remove`, or any pedalboard plugin as `pedalboard.<Plugin>` with its own parameter
names. Consecutive pedalboard steps run as one `Pedalboard`, so their state flows as in a DAW.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pedalboard

from .audio import peak_dbfs, remove_dc
from .metrics import loudness_lufs
from .presets import Preset, PresetError, Step

LIMIT_CEILING_DBFS = -1.0
"""Where `limit` and `normalize` put the peak when a result would exceed full scale."""
LIMITER_WINDOW_MS = 2.0
"""Look-ahead and smoothing of the peak limiter: short enough to leave the music around an over alone."""
CLIP_MODES = ("limit", "normalize", "none")


NOISEREDUCE_N_FFT = 1024
"""noisereduce 3's default `n_fft`: it needs at least this many samples to take one STFT frame."""
NOISEREDUCE_CHUNK_SIZE = 600000
"""noisereduce 3's default `chunk_size`: it filters long files piece by piece, and its
stationary noise profile comes from the first `chunk_size` samples."""


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


IN_PLACE_KINDS = frozenset({"noisereduce", "dc_remove", "wiener"})
"""Step kinds that can write their result over their input (`out=`)."""


def _wiener(x: np.ndarray, sr: int, *, out: np.ndarray | None = None, **params) -> np.ndarray:
    from .denoise import WienerSettings, wiener_denoise

    return wiener_denoise(x, sr, WienerSettings(**params), out=out)


def _dc_remove(x: np.ndarray, sr: int, *, out: np.ndarray | None = None) -> np.ndarray:
    if out is x:
        x -= x.mean(axis=1, keepdims=True)
        return x
    return remove_dc(x)


STEP_KINDS: dict[str, Callable[..., np.ndarray]] = {
    "noisereduce": _noisereduce,
    "wiener": _wiener,
    "dc_remove": _dc_remove,
}


def _plugin(step: Step) -> pedalboard.Plugin:
    name = step.kind.split(".", 1)[1]
    cls = getattr(pedalboard, name, None)
    if not (isinstance(cls, type) and issubclass(cls, pedalboard.Plugin)):
        raise PresetError(f"unknown pedalboard plugin {name!r}")
    try:
        return cls(**step.params)
    except TypeError as exc:
        raise PresetError(f"{step.kind}: {exc}") from None


def validate(preset: Preset) -> None:
    """Fail early, with a one-line message, on a step kind or parameter that cannot run."""
    chains = [preset.steps, *preset.stem_steps.values()]
    for step in (s for chain in chains for s in chain):
        if step.kind.startswith("pedalboard."):
            _plugin(step)
        elif step.kind not in STEP_KINDS:
            raise PresetError(f"{preset.source}: unknown step kind {step.kind!r} "
                              f"(known: {', '.join(STEP_KINDS)}, pedalboard.<Plugin>)")
        elif step.kind == "wiener":
            from .denoise import WienerSettings

            try:
                WienerSettings(**step.params)
            except (TypeError, ValueError) as exc:
                raise PresetError(f"{preset.source}: wiener: {exc}") from None


def apply_chain(x: np.ndarray, sr: int, steps: tuple[Step, ...], *, overwrite: bool = False) -> np.ndarray:
    """Run `steps` in order on `(channels, samples)` audio; same shape out, float32.

    `overwrite` lets steps work in place in `x` (a float32 array the caller no longer needs:
    it is left holding an intermediate result). Arrays made inside the chain are always
    reused that way; on a 10-minute stereo stem each saves 0.2 GB."""
    y = np.ascontiguousarray(x, dtype=np.float32)
    i = 0
    while i < len(steps):
        if steps[i].kind.startswith("pedalboard."):
            j = i
            while j < len(steps) and steps[j].kind.startswith("pedalboard."):
                j += 1
            board = pedalboard.Pedalboard([_plugin(s) for s in steps[i:j]])
            y = board(y, sr, reset=True)
            i = j
        else:
            owned = overwrite or not np.may_share_memory(y, x)  # never write into the caller's x
            in_place = {"out": y} if owned and steps[i].kind in IN_PLACE_KINDS and y.flags.writeable else {}
            y = STEP_KINDS[steps[i].kind](y, sr, **in_place, **steps[i].params)
            i += 1
    return np.ascontiguousarray(y, dtype=np.float32)


def match_loudness(y: np.ndarray, sr: int, target_lufs: float) -> tuple[np.ndarray, float]:
    """Scale `y` to `target_lufs`; returns the audio and the gain applied in dB (0 when either
    loudness is undefined)."""
    current = loudness_lufs(y, sr)  # -inf (silence) and NaN (too short) leave y alone
    if not (np.isfinite(current) and np.isfinite(target_lufs)):
        return y, 0.0
    gain_db = target_lufs - current
    return scaled(y, gain_db), float(gain_db)


def scaled(y: np.ndarray, gain_db: float) -> np.ndarray:
    """`y` times a gain, as one new float32 array (no float64 or second copy)."""
    return np.multiply(y, np.float32(10 ** (gain_db / 20)), dtype=np.float32)


@dataclass(frozen=True)
class ClipSafety:
    """What was done to keep the output inside full scale."""

    mode: str
    action: str
    """`none` (nothing needed), `limited`, `normalized`, or `left-above-full-scale`."""
    peak_before_dbfs: float
    peak_after_dbfs: float


def peak_limit(y: np.ndarray, sr: int, ceiling_dbfs: float = LIMIT_CEILING_DBFS,
               window_ms: float = LIMITER_WINDOW_MS) -> np.ndarray:
    """A look-ahead peak limiter that touches only the overs: the gain each sample needs to stay
    under the ceiling, spread by a minimum filter of two windows and smoothed by a moving average
    of one (so the smoothed gain is never above what any sample needs, and changes over a few
    milliseconds instead of clicking). Unlike pedalboard's `Limiter`, whose JUCE design runs a
    4:1 compressor from -10 dBFS first, it leaves everything below the ceiling untouched."""
    from scipy.ndimage import minimum_filter1d, uniform_filter1d

    ceiling = 10 ** (ceiling_dbfs / 20)
    envelope = np.abs(y[0])
    for ch in y[1:]:  # channel by channel: no full-size |y| temporary
        np.maximum(envelope, np.abs(ch), out=envelope)
    need = np.minimum(1.0, ceiling / np.maximum(envelope, 1e-12))
    half = max(1, int(round(window_ms * 1e-3 * sr)))
    gain = uniform_filter1d(minimum_filter1d(need, 2 * half + 1, mode="nearest"), half, mode="nearest")
    return np.multiply(y, np.minimum(gain, need), dtype=np.float32)


def clip_safety(y: np.ndarray, sr: int, mode: str = "limit") -> tuple[np.ndarray, ClipSafety]:
    """Keep `y` within full scale. `limit`: the look-ahead peak limiter above, to -1 dBFS;
    `normalize`: one gain to -1 dBFS; `none`: leave it (float files hold it) and say so."""
    if mode not in CLIP_MODES:
        raise ValueError(f"clip mode must be limit, normalize or none, not {mode!r}")
    before = peak_dbfs(y)
    if before <= 0.0:
        return y, ClipSafety(mode, "none", before, before)
    if mode == "none":
        return y, ClipSafety(mode, "left-above-full-scale", before, before)
    if mode == "limit":
        y = peak_limit(y, sr)
        action = "limited"
    else:
        y = scaled(y, LIMIT_CEILING_DBFS - before)
        action = "normalized"
    return y, ClipSafety(mode, action, before, peak_dbfs(y))
