"""The write stage of `run` and `compare`: each result, already at the output rate, held under
the true-peak ceiling when a loudness target was set (resampling moves the peaks between
samples, so the true peak is measured again at the output rate), written in its delivery format
(`deliver.write`: WAV or FLAC; 16-bit with TPDF dither, 24-bit or 32-bit float) into the result
set, with its residual on request; and the record of what was delivered.
"""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from . import deliver
from .audio import WORK_SR
from .deliver import DeliveryError, OutputFormat, SourceFormat
from .levels import LoudnessMeter
from .signal import Signal, as_signal

RESIDUAL_FORMAT = OutputFormat("wav", "32f")
"""A residual is always 32-bit float WAV: it is for listening and measuring, and may pass full scale."""
RESIDUAL_WHAT = ("output minus input (DC removed), sample-aligned at the run's rate, before any "
                 "loudness-target gain; 32-bit float WAV")
DITHER_SEED = 0
"""Every file's TPDF dither comes from this seed: a rerun writes the same bytes."""


def source_format(path: str | Path) -> SourceFormat:
    """The input's container and sample type (`deliver.probe`); an unreadable header reads as an
    unknown sample type (reading the audio then says what is wrong with it)."""
    try:
        return deliver.probe(path)
    except Exception:  # pedalboard raises several kinds for a file it cannot open
        return SourceFormat(Path(path).suffix.lower().lstrip("."), "unknown")


FLAC_MAX_CHANNELS = 8


def choose_format(source: SourceFormat, peak: float, container: str | None = None,
                  bits: str | None = None) -> tuple[OutputFormat, str]:
    """The format a result is written in, and why: what was asked (`container`, `bits`), the
    rest from the input's own (`deliver.default_format`, which also knows that only float holds
    a result above full scale)."""
    default, why = deliver.default_format(source, peak)
    if container is None and bits is None:
        return default, why
    if container is not None and bits is not None:
        return OutputFormat(container, bits), "as asked"
    if bits is not None:  # asked a depth: the input's container, unless it cannot hold that depth
        container = default.container if not (bits == "32f" and default.container == "flac") else "wav"
        fmt = OutputFormat(container, bits)
        return fmt, f"{fmt.bits} bits as asked, {fmt.container} " + (
            "from the input" if fmt.container == source.container else "(the input's own cannot hold it)")
    bits = default.bits if not (container == "flac" and default.bits == "32f") else deliver.FALLBACK_BITS
    fmt = OutputFormat(container, bits)
    return fmt, f"{container} as asked, {fmt.describe().split(', ', 1)[1]} " + (
        "from the input" if bits == default.bits else "(FLAC holds no float)")


def check_holds(path: str | Path, source: SourceFormat, container: str | None) -> None:
    """Refuse, before any work, a container asked of an input it cannot hold: FLAC holds at most
    eight channels."""
    if container == "flac" and source.channels > FLAC_MAX_CHANNELS:
        raise DeliveryError(f"{path}: FLAC holds at most {FLAC_MAX_CHANNELS} channels and it has {source.channels}: "
                            "write WAV (--format wav)")


def output_name(stem: str, source: SourceFormat, container: str | None, bits: str | None) -> str:
    """The file name a result will most likely get (`stem` + the format's suffix), known before
    any work: the format of a result that stays inside full scale."""
    return stem + choose_format(source, -math.inf, container, bits)[0].suffix


@dataclass(frozen=True)
class Delivered:
    """One delivered result: the file (`deliver.Written`) and why it has its format; its loudness
    (BS.1770) and true peak (BS.1770 Annex 2, 4x) as written, at the output rate; the loudness
    target's record when one was set; the residual file when one was written."""

    written: deliver.Written
    format_reason: str
    loudness_lufs: float
    true_peak_dbtp: float
    target: dict | None = None
    residual: str | None = None
    residual_sr: int = WORK_SR
    rate_note: str | None = None
    """How the output came to the input's own (lower) rate, with `--output-sr original`."""

    def to_dict(self) -> dict:
        return {**self.written.to_dict(), "format_reason": self.format_reason, "format_text": self.written.format.describe(),
                "loudness_lufs": self.loudness_lufs, "true_peak_dbtp": self.true_peak_dbtp,
                "loudness_target": self.target, "rate_note": self.rate_note}

    def residual_dict(self) -> dict | None:
        if self.residual is None:
            return None
        return {"path": self.residual, **RESIDUAL_FORMAT.to_dict(), "sample_rate": self.residual_sr, "what": RESIDUAL_WHAT}


class Difference(Signal):
    """`a - b`, two signals of one shape, block by block (the residual, never held whole)."""

    def __init__(self, a: Signal, b: Signal):
        if (a.channels, a.frames) != (b.channels, b.frames):
            raise DeliveryError(f"residual needs two signals of one shape (channels, samples), got "
                                f"{(a.channels, a.frames)} and {(b.channels, b.frames)}: bring them to one "
                                "rate and layout first")
        self.a, self.b, self.channels, self.frames, self.sr = a, b, a.channels, a.frames, a.sr

    def blocks(self, size: int | None = None):
        sized = {} if size is None else {"size": size}
        for x, y in zip(self.a.blocks(**sized), self.b.blocks(**sized)):
            yield np.subtract(x, y, dtype=np.float32)


def _levels(y: Signal, known: tuple[float, float] | None = None) -> tuple[float, float, float]:
    """Sample peak (dBFS), loudness (LUFS) and true peak (dBTP) of `y`, in one pass over its
    blocks; with `known` (its sample peak and loudness), its true peak only."""
    if known is not None:
        return known[0], known[1], deliver.true_peak_dbtp_of(y.blocks())
    meter, largest = LoudnessMeter(y.sr, y.channels), [0.0]

    def through():
        for block in y.blocks():
            meter.push(block)
            if block.size:
                largest[0] = max(largest[0], float(np.max(np.abs(block))))
            yield block

    true_peak = deliver.true_peak_dbtp_of(through())
    peak = 20.0 * math.log10(largest[0]) if largest[0] > 0 else -math.inf
    return peak, meter.lufs(), true_peak


def deliver_result(out, stem: str, y: np.ndarray | Signal, sr: int, source: SourceFormat, *,
                   container: str | None = None, bits: str | None = None,
                   target: deliver.LoudnessResult | None = None,
                   residual: tuple[np.ndarray | Signal, np.ndarray | Signal] | None = None,
                   residual_name: str | None = None, residual_sr: int = WORK_SR,
                   rate_note: str | None = None, levels: tuple[float, float] | None = None) -> Delivered:
    """Write `y` (`(channels, samples)` float32 at `sr`, the output rate; an array or a signal
    read block by block) as `stem` + the format's suffix into `out` (a result set or a view of
    one, `core.results`), and `residual` (output and input at `residual_sr`, the run's rate:
    their difference, block by block) as `residual_name`. With a loudness `target` (its record
    from restoration) the true peak is brought under its ceiling again at this rate when
    resampling lifted it (on the whole result: a target's result is in memory). `levels`: the
    sample peak (dBFS) and loudness (LUFS) of `y` when already measured (its metric panel's, at
    this rate): not measured again."""
    peak, lufs, true_peak = _levels(as_signal(y, sr), levels)
    target_dict = None
    if target is not None:
        target_dict = target.to_dict()
        if true_peak > target.ceiling_dbtp:
            y = y if not isinstance(y, Signal) else np.concatenate(list(y.blocks()), axis=1)
            y, reduction, true_peak = deliver.true_peak_limit(y, sr, target.ceiling_dbtp)
            target_dict["output_rate_limiter_db"] = reduction
            peak, lufs, true_peak = _levels(as_signal(y, sr))
        target_dict["output_rate_true_peak_dbtp"] = true_peak
    fmt, why = choose_format(source, peak, container, bits)
    name = stem + fmt.suffix
    written = deliver.write(out.path(name), y, sr, fmt, seed=DITHER_SEED)
    written = replace(written, path=str(out.final(name)))
    residual_path = None
    if residual is not None and residual_name:
        diff = Difference(as_signal(residual[0], residual_sr), as_signal(residual[1], residual_sr))
        deliver.write(out.path(residual_name), diff, residual_sr, RESIDUAL_FORMAT)
        residual_path = str(out.final(residual_name))
    return Delivered(written, why, lufs, true_peak, target_dict, residual_path, residual_sr, rate_note)


def deliver_again(out, delivered: Delivered, stem: str, residual_name: str | None = None) -> Delivered:
    """The same result delivered once more as `stem` (and its residual as `residual_name`) in the
    same set: the files `delivered` wrote, copied byte for byte. Writing it again would give the
    same bytes (the dither is seeded), after measuring it again."""
    def copied(path: str, name: str) -> str:
        shutil.copyfile(out.path(Path(path).name), out.path(name))
        return str(out.final(name))

    written = replace(delivered.written, path=copied(delivered.written.path, stem + delivered.written.format.suffix))
    residual = copied(delivered.residual, residual_name) if delivered.residual and residual_name else None
    return replace(delivered, written=written, residual=residual)


__all__ = ["DeliveryError", "Delivered", "RESIDUAL_FORMAT", "check_holds", "choose_format", "deliver_again",
           "deliver_result", "output_name", "source_format"]
