"""Restoration steps: the kinds a preset's chain can name, their functions on `(channels,
samples)` float32 audio, and the binding of `pedalboard.<Plugin>` steps to pedalboard's plugins.

A step is data (`Step`: a kind and its parameters). `noisereduce` (spectral gating), `wiener`
(our level-aware denoiser) and `dc_remove` are block stages here (`blocks`: each states the
context it needs); any pedalboard plugin is named as `pedalboard.<Plugin>` with pedalboard's own
parameter names, and runs with its state carried from block to block. `spectral_recovery`
regenerates a band cut off by a resampler or a codec (`recovery`; a bit-for-bit no-op on
full-band input), in segments of `RECOVERY_BLOCK_S` with context, and says what it found through
the optional `reports` list. `check` refuses a step that cannot run, with a one-line
`PresetError`; `presets` checks every step it loads, `dsp` runs them.

Every step says what it did (`reported`: a `StepOutcome`, measured block by block as the
stream passes): acted or bypassed, why, and the
energy it removed, so that a result can say honestly that nothing was changed and why.
"""

from __future__ import annotations

import inspect
import math
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Callable, Iterator

import numpy as np
import pedalboard

from ..config import UserError, check_types
from .blocks import Blocking, Stage, apply, blockwise, cut_to, sequential
from .dc import stage as dc_stage
from .denoise import DenoiseTrace, WienerSettings, found_noise_power
from .denoise import stage as wiener_stage
from .levels import difference_and_energy, energy, ratio_db
from .recovery import RecoverySettings, recover

PEDALBOARD_PREFIX = "pedalboard."
NOISEREDUCE_N_FFT = 1024
"""noisereduce 3's default `n_fft`: it needs at least this many samples to take one STFT frame."""
DC_KINDS = frozenset({"dc_remove"})
"""Step kinds whose change does not count as restoring anything (a result changed only by them
is reported unchanged)."""
DC_ACTED_ABOVE = 1e-7
"""A channel mean smaller than this is no DC offset (float rounding of a DC-free signal)."""
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


@dataclass(frozen=True)
class StepOutcome:
    """What one step did: `acted` (changed the samples) or bypassed, and `reason` (why it did
    nothing, or what it did); `removed_db` the energy it took away, input energy minus output
    energy re the input's, dB (-inf: none; None: not measured, or the output is louder); `where`
    the stem or `mix` it ran on (set by the caller)."""

    step: str
    acted: bool
    reason: str
    removed_db: float | None = None
    dc_only: bool = False
    """A DC step: its change does not count as a restoration."""
    where: str | None = None
    identical: bool = False
    """The step gave back its input bit for bit (compared block by block where it was reported;
    not part of the record)."""

    def line(self) -> str:
        """One line: `where: step: reason`."""
        return (f"{self.where}: " if self.where else "") + f"{self.step}: {self.reason}"

    def to_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "identical"}


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
        return cut_to(blockwise(padded, n, channels, blocking, one), frames)

    return run


def _padded_to(blocks: Iterator[np.ndarray], frames: int, n: int, channels: int) -> Iterator[np.ndarray]:
    yield from blocks
    if n > frames:
        yield np.zeros((channels, n - frames), np.float32)


def _wiener(sr: int, frames: int, channels: int, *, trace: DenoiseTrace | None = None, **params) -> Stage:
    return wiener_stage(sr, WienerSettings(**params), frames, channels, trace=trace)


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

PROBES: dict[str, Callable[..., float]] = {
    "wiener": lambda x, sr, weak, **params: found_noise_power(x, sr, WienerSettings(**params), weak=weak),
}
"""Step kinds that can say, before running, how much they would find to act on in a signal (a
power, linear): the router compares the mix with the stems through these. `weak`: by evidence the
kind trusts less, asked for where the strong finds nothing anywhere."""


def probe(step: Step, x: np.ndarray, sr: int, weak: bool = False) -> float | None:
    """What `step` would find to act on in `x` (`PROBES`); None for a kind that cannot say."""
    fn = PROBES.get(step.kind)
    return None if fn is None else float(fn(x, sr, weak, **step.params))


def plugin(step: Step, source: str | None = None) -> pedalboard.Plugin:
    """The pedalboard plugin a `pedalboard.<Plugin>` step names, built with its parameters
    (`source`: the preset, named in errors)."""
    name = step.kind[len(PEDALBOARD_PREFIX):]
    where = f"{source}: " if source else ""
    cls = getattr(pedalboard, name, None)
    if not (isinstance(cls, type) and issubclass(cls, pedalboard.Plugin)):
        raise PresetError(f"{where}unknown pedalboard plugin {name!r}")
    try:
        return cls(**step.params)
    except (TypeError, ValueError, RuntimeError) as exc:
        # pybind11 lists the constructor's signatures over several lines: the first one says it.
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        signature = next((line[3:] for line in lines if line.startswith("1. ")), None)
        said = f"a parameter's name or type does not fit: it takes {signature}" if signature else \
            (lines[0] if lines else type(exc).__name__)
        raise PresetError(f"{where}{step.kind}: {said}") from None


NOISEREDUCE_FIXED = ("y", "sr", "y_noise", "tmp_folder", "use_tqdm", "n_jobs", "use_torch", "device")
"""noisereduce's parameters a preset does not set: the signal, its noise profile (taken from the
signal), and how and where it runs (here: numpy, in this process)."""


def _noisereduce_params(params: dict, source: str) -> None:
    """A noisereduce step's parameters: known to `noisereduce.reduce_noise` (`chunk_size` and
    `padding` are this stage's own), not fixed here, of the type of its default, and
    `prop_decrease` a share."""
    import noisereduce  # a preset with the step runs it: the import is paid once either way

    defaults = {k: p.default for k, p in inspect.signature(noisereduce.reduce_noise).parameters.items()}
    for key in params:
        if key not in defaults:
            raise PresetError(f"{source}: noisereduce: unknown parameter {key!r} (see noisereduce.reduce_noise)")
        if key in NOISEREDUCE_FIXED:
            raise PresetError(f"{source}: noisereduce: {key} is not set by a preset")
    try:
        check_types(params, defaults)
    except ValueError as exc:
        raise PresetError(f"{source}: noisereduce: {exc}") from None
    if not 0.0 <= params.get("prop_decrease", 1.0) <= 1.0:
        raise PresetError(f"{source}: noisereduce: prop_decrease must be a number in [0, 1] (the share of the "
                          f"noise taken out), not {params['prop_decrease']!r}")


def check(step: Step, source: str) -> None:
    """Refuse, with a one-line `PresetError` naming `source`, a step kind or parameter that
    cannot run."""
    for key, value in step.params.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise PresetError(f"{source}: {step.kind}: {key} must be a finite number, not {value!r}")
    if step.kind == "noisereduce":
        _noisereduce_params(step.params, source)
    if step.is_plugin:
        plugin(step, source)
    elif step.kind not in KINDS:
        raise PresetError(f"{source}: unknown step kind {step.kind!r} "
                          f"(known: {', '.join(KINDS)}, {PEDALBOARD_PREFIX}<Plugin>)")
    elif step.kind in ("wiener", RECOVERY):
        settings = WienerSettings if step.kind == "wiener" else RecoverySettings
        try:
            settings(**step.params)
        except (TypeError, ValueError) as exc:
            raise PresetError(f"{source}: {step.kind}: {exc}") from None


def stage(step: Step, sr: int, frames: int, channels: int, *, trace: DenoiseTrace | None = None,
          reports: list | None = None) -> Stage:
    """One function step as a block stage over a stream of `frames` frames (`trace`: the
    Wiener denoiser's, filled in as it runs); a kind in `REPORTING_KINDS` appends what it found
    to `reports` as the stream is read."""
    extra = {"trace": trace} if trace is not None and step.kind == "wiener" else {}
    if reports is not None and step.kind in REPORTING_KINDS:
        extra["reports"] = reports
    return KINDS[step.kind](sr, frames, channels, **step.params, **extra)


def reported(step: Step | tuple[Step, ...], sr: int, frames: int, channels: int,
             sink: list[StepOutcome], *, reports: list | None = None) -> Stage:
    """`step` (or consecutive pedalboard steps, run as one board) as a block stage that appends
    what it did to `sink` once the stream has passed: its input blocks are held until the
    matching output has come out (about one block and its context), and the largest |output -
    input|, the difference's energy, input and output energies and (for `dc_remove`) the channel
    sums are accumulated block by block. The Wiener denoiser says why itself (`DenoiseTrace`);
    a reporting kind (spectral recovery) also appends what it found to `reports`."""
    group = step if isinstance(step, tuple) else (step,)
    trace = DenoiseTrace() if group[0].kind == "wiener" else None
    inner = plugins_stage(group, sr) if group[0].is_plugin else stage(group[0], sr, frames, channels, trace=trace, reports=reports)
    name = (" + ".join(s.kind[len(PEDALBOARD_PREFIX):] for s in group) if group[0].is_plugin else group[0].kind)

    def run(blocks: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
        held: deque[np.ndarray] = deque()
        acc = {"in": 0.0, "out": 0.0, "diff": 0.0, "largest": 0.0, "compared": True}
        sums = np.zeros(channels, np.float64)

        def tap(source: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
            for block in source:
                held.append(np.array(block, dtype=np.float32))  # a copy: the stage may overwrite it
                acc["in"] += energy(block)
                sums[:block.shape[0]] += block.sum(axis=1, dtype=np.float64)
                yield block

        for y in inner(tap(blocks)):
            need, parts = y.shape[1], []
            while need > 0 and held:
                head = held[0]
                take = min(need, head.shape[1])
                parts.append(head[:, :take])
                if take == head.shape[1]:
                    held.popleft()
                else:
                    held[0] = head[:, take:]
                need -= take
            x = np.concatenate(parts, axis=1) if len(parts) > 1 else (parts[0] if parts else y[:, :0])
            if x.shape == y.shape:
                largest, diff, out = difference_and_energy(y, x)
                acc["largest"], acc["diff"] = max(acc["largest"], largest), acc["diff"] + diff
            else:
                acc["compared"], out = False, energy(y)
            acc["out"] += out
            yield y
        outcome = _outcome(name, group[0].kind, acc, sums / max(frames, 1), trace)
        sink.append(replace(outcome, identical=acc["compared"] and acc["largest"] == 0.0))

    return run


def run_reported(step: Step, x: np.ndarray, sr: int, *, out: np.ndarray | None = None) -> tuple[np.ndarray, StepOutcome]:
    """One step on `(channels, samples)` audio through the block runner, and what it did; `out`
    (may be `x` itself) receives the result."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    sink: list[StepOutcome] = []
    y = apply(reported(step, sr, x.shape[1], x.shape[0], sink), x, out=out)
    return y, sink[0]


def _outcome(name: str, kind: str, acc: dict, means: np.ndarray, trace: DenoiseTrace | None) -> StepOutcome:
    before, after = acc["in"], acc["out"]
    if kind == "dc_remove":
        offset = float(np.abs(means).max()) if means.size else 0.0
        acted = offset > DC_ACTED_ABOVE
        return StepOutcome(kind, acted, f"removed a DC offset of {offset:.2g}" if acted
                           else "no DC offset to remove", dc_only=True)
    if trace is not None:
        if trace.acted_blocks or trace.side_blocks:
            removed = ratio_db(trace.removed, trace.total)
            side = (f"; the stereo side once more on its own estimate in {trace.side_blocks} block"
                    + ("s" if trace.side_blocks > 1 else "")) if trace.side_blocks else ""
            return StepOutcome(kind, True, f"removed steady hiss ({removed:.1f} dB of the energy{side})", removed)
        return StepOutcome(kind, False, "; ".join(trace.bypassed) or "nothing to filter", -np.inf)
    if acc["largest"] == 0.0:
        return StepOutcome(name, False, "left the signal bit for bit unchanged", -np.inf)
    return StepOutcome(name, True, f"changed the signal (difference {ratio_db(acc['diff'], before):.1f} dB re input)",
                       _removed_db(before, after))


def _removed_db(before: float, after: float) -> float | None:
    return ratio_db(before - after, before) if after <= before else None


def plugins_stage(steps: tuple[Step, ...], sr: int) -> Stage:
    """Consecutive `pedalboard.<Plugin>` steps as one `Pedalboard`, run block after block with
    its state carried across (the same samples as one call on the whole signal)."""
    board = pedalboard.Pedalboard([plugin(s) for s in steps])

    def run(block: np.ndarray, first: bool) -> np.ndarray:
        # pedalboard tells a block's layout from its shape, and cannot when it is square (as
        # many samples as channels): such a block goes through as two, the state carried on.
        if block.shape[0] == block.shape[1] > 1:
            head = board(np.ascontiguousarray(block[:, :1]), sr, reset=first)
            return np.concatenate([head, board(np.ascontiguousarray(block[:, 1:]), sr, reset=False)], axis=1)
        return board(block, sr, reset=first)

    return lambda blocks: sequential(blocks, run)
