"""Bring an input into a run: decode it at the run's rate into memory or a spill file, measure
its panel on the way (at 44.1 kHz, through the reference computation's resampler), and remove its
DC offset and drift.

The run's rate is the working rate, 44.1 kHz (Demucs' rate), or the input's own when that is
higher: a 96 kHz file keeps its band above 22 kHz in every mode. The panel is always measured
at 44.1 kHz, as documented, so results at any rate compare.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from . import audio, dc, metrics
from .audio import WORK_SR
from .blocks import cut_to
from .finish import keep_measured
from .resample import Stream
from .signal import InMemory, Mapped, Signal, Store
from .threads import Beside


def work_rate(input_sr: int) -> int:
    """The rate a run processes an input at: 44.1 kHz, or the input's own when higher."""
    return max(WORK_SR, int(input_sr))


@dataclass(frozen=True)
class Loaded:
    """An input, ready to restore."""

    mix: np.ndarray | Signal
    """The input without its DC offset and drift, `(channels, samples)` float32 at `sr`: an
    array when the store is memory, else a spill file."""
    info: audio.AudioInfo
    panel: metrics.MetricPanel
    """The input as its file holds it (DC and all), measured at `metrics.METRIC_SR`."""
    sr: int
    lufs: float
    """`mix`'s integrated loudness (BS.1770), measured as it was kept: what a result is brought
    back to."""


def load(path: str | Path, store: Store) -> Loaded:
    """Decode `path` at `work_rate` of its own rate into `store`, then remove its DC offset and
    drift (`dc`) in another pass; its panel is measured beside both, on a thread of its own."""
    reader = audio.Reader(path)
    sr, native, channels = work_rate(reader.sample_rate), reader.sample_rate, reader.channels
    with Beside(lambda blocks: metrics.measure_stream(blocks, native, channels)) as measuring:

        def work_blocks() -> Iterator[np.ndarray]:
            to_work = Stream(native, sr, channels) if native != sr else None
            for block in reader.native_blocks():
                measuring.put(block)
                out = to_work.push(block) if to_work else block
                if out.shape[1]:
                    yield out
            if to_work:
                yield to_work.flush()

        raw = store.keep(work_blocks(), channels, sr, reader.expected_frames(sr))
        info = reader.info()
        mix = keep_measured(store, dc.stage(sr, raw.frames, channels)(raw.blocks()), channels, sr, raw.frames)
        store.drop(raw)
        del raw
        panel = measuring.result()
    return Loaded(mix.array if isinstance(mix, InMemory) else mix, info, panel, sr, mix.measured.meter.lufs())


class _Native(Signal):
    """An input file at its own rate, decoded again each time it is read, `frames` long."""

    def __init__(self, path: str | Path, info: audio.AudioInfo):
        self.path, self.sr, self.channels, self.frames = Path(path), info.sample_rate, info.channels, info.frames

    def blocks(self, size: int = audio.BLOCK_FRAMES) -> Iterator[np.ndarray]:
        return cut_to(audio.Reader(self.path).native_blocks(size), self.frames)


def native_dc_free(path: str | Path, info: audio.AudioInfo) -> Signal:
    """The input `path` (as `info` describes it) at its own rate without its DC offset and drift,
    block by block: what a result that changed nothing else is, written at that rate."""
    source = _Native(path, info)
    return Mapped(source, dc.stage(info.sample_rate, info.frames, info.channels))
