"""Restoration steps: the kinds a preset's chain can name, their functions on `(channels,
samples)` float32 audio, and the binding of `pedalboard.<Plugin>` steps to pedalboard's plugins.

A step is data (`Step`: a kind and its parameters). `noisereduce` (spectral gating), `wiener`
(our level-aware denoiser) and `dc_remove` are block stages here (`blocks`: each states the
context it needs); any pedalboard plugin is named as `pedalboard.<Plugin>` with pedalboard's own
parameter names, and runs with its state carried from block to block. `spectral_recovery`
regenerates a band cut off by a resampler or a codec (`recovery`; a bit-for-bit no-op on
full-band input), in segments of `RECOVERY_BLOCK_S` with context, and says what it did through
the optional `reports` list. `check` refuses a step that cannot run, with a one-line
`PresetError`; `presets` checks every step it loads, `dsp` runs them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np
import pedalboard

from ..config import UserError
from .blocks import Blocking, Stage, blockwise, sequential
from .dc import stage as dc_stage
from .denoise import WienerSettings
from .denoise import stage as wiener_stage
from .recovery import RecoverySettings, recover

PEDALBOARD_PREFIX = "pedalboard."
NOISEREDUCE_N_FFT = 1024
"""noisereduce 3's default `n_fft`: it needs at least this many samples to take one STFT frame."""
NOISEREDUCE_CHUNK_SIZE = 600000
"""noisereduce 3's default `chunk_size`: it filters long files piece by piece, and its
stationary noise profile comes from the first `chunk_size` samples."""
NOISEREDUCE_PADDING = 30000
"""noisereduce 3's default `padding`: context on each side of a chunk, zeros past the ends."""


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


def _noisereduce(sr: int, frames: int, channels: int, **params) -> Stage:
    """noisereduce, channel by channel, in noisereduce's own chunks: `chunk_size` frames with
    `padding` frames of context on each side, zeros past the ends, hard cuts, exactly as its own
    chunked processing of a whole file (so a stream gives the same samples). The stationary noise
    profile is noisereduce's own, handed over explicitly: the channel mean of the first
    `chunk_size` frames (all of them without `clip_noise_stationary`, which then needs the whole
    file as one block)."""
    import noisereduce

    chunk = int(params.pop("chunk_size", NOISEREDUCE_CHUNK_SIZE))
    padding = int(params.pop("padding", NOISEREDUCE_PADDING))
    min_frames = max(int(params.get("n_fft", NOISEREDUCE_N_FFT)), int(params.get("win_length") or 0))
    clip = params.get("clip_noise_stationary", True)
    profiled = params.get("stationary") and params.get("y_noise") is None
    # A clip shorter than one frame is zero-padded to one and cut back (scipy refuses it).
    n = max(frames, min_frames)
    whole = n if profiled and not clip else 0
    blocking = Blocking(block=max(chunk, whole, 1), context=padding, beyond="zeros")
    profile: list[np.ndarray] = []

    def one(seg: np.ndarray, first: int) -> np.ndarray:
        extra = {}
        if profiled:
            if not profile:  # the first block's own frames: the file's first `chunk_size`
                profile.append(np.array(seg[:, -first: -first + min(chunk if clip else n, n)]))
            extra = {"y_noise": profile[0]}
        out = np.empty(seg.shape, np.float32)
        for c in range(seg.shape[0]):
            out[c] = np.asarray(noisereduce.reduce_noise(y=seg[c:c + 1], sr=sr, chunk_size=None, padding=0,
                                                         **params, **extra), np.float32)[0]
        return out

    def run(blocks: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
        padded = _padded_to(blocks, frames, n, channels)
        return _cut_to(blockwise(padded, n, channels, blocking, one), frames)

    return run


def _padded_to(blocks: Iterator[np.ndarray], frames: int, n: int, channels: int) -> Iterator[np.ndarray]:
    yield from blocks
    if n > frames:
        yield np.zeros((channels, n - frames), np.float32)


def _cut_to(blocks: Iterator[np.ndarray], frames: int) -> Iterator[np.ndarray]:
    pos = 0
    for block in blocks:
        take = min(block.shape[1], frames - pos)
        if take > 0:
            yield block[:, :take]
        pos += block.shape[1]


def _wiener(sr: int, frames: int, channels: int, **params) -> Stage:
    return wiener_stage(sr, WienerSettings(**params), frames, channels)


def _dc_remove(sr: int, frames: int, channels: int) -> Stage:
    return dc_stage(sr, frames, channels)


RECOVERY_BLOCK_S = 60.0
"""Spectral recovery decides and adds its band per segment of this length on a long stream..."""
RECOVERY_WHOLE_UP_TO_S = 90.0
"""...and on an input up to this long, once over the whole of it."""
RECOVERY_CONTEXT_S = 1.0
"""Read on each side of a segment (its STFT and its 2 s detector blocks see across the cut);
segments join without a crossfade, so a segment with nothing to add stays bit for bit."""


def _spectral_recovery(sr: int, frames: int, channels: int, *, reports: list | None = None, **params) -> Stage:
    """Recovery as a block stage: each segment's `recover` report goes to `reports` (in order)."""
    settings = RecoverySettings(**params)
    blocking = Blocking(block=int(RECOVERY_BLOCK_S * sr), context=int(RECOVERY_CONTEXT_S * sr),
                        whole_up_to=int(RECOVERY_WHOLE_UP_TO_S * sr))

    def one(seg: np.ndarray, first: int) -> np.ndarray:
        y, report = recover(seg, sr, settings)
        if reports is not None:
            reports.append(report)
        return y

    return lambda blocks: blockwise(blocks, frames, channels, blocking, one)


RECOVERY = "spectral_recovery"
KINDS: dict[str, Callable[..., Stage]] = {
    "noisereduce": _noisereduce,
    "wiener": _wiener,
    "dc_remove": _dc_remove,
    RECOVERY: _spectral_recovery,
}
"""Each kind's stage factory: `(sr, frames, channels, **params) -> Stage`."""
REPORTING_KINDS = frozenset({RECOVERY})
"""Step kinds that say what they found (`reports=`: a list their reports are appended to)."""


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
    elif step.kind in ("wiener", RECOVERY):
        settings = WienerSettings if step.kind == "wiener" else RecoverySettings
        try:
            settings(**step.params)
        except (TypeError, ValueError) as exc:
            raise PresetError(f"{source}: {step.kind}: {exc}") from None


def stage(step: Step, sr: int, frames: int, channels: int, *, reports: list | None = None) -> Stage:
    """One function step as a block stage over a stream of `frames` frames; a kind in
    `REPORTING_KINDS` appends what it found to `reports` as the stream is read."""
    extra = {"reports": reports} if reports is not None and step.kind in REPORTING_KINDS else {}
    return KINDS[step.kind](sr, frames, channels, **extra, **step.params)


def plugins_stage(steps: tuple[Step, ...], sr: int) -> Stage:
    """Consecutive `pedalboard.<Plugin>` steps as one `Pedalboard`, run block after block with
    its state carried across (the same samples as one call on the whole signal)."""
    board = pedalboard.Pedalboard([plugin(s) for s in steps])
    return lambda blocks: sequential(blocks, lambda block, first: board(block, sr, reset=first))
