"""The stem-wise half of restoration: each stem through its chain (in parallel, in place when
the unprocessed stems are not needed), with what each step did, and the remix of the stems."""

from __future__ import annotations

import os
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import replace
from typing import Protocol

import numpy as np

from . import dsp, heap, presets
from .audio import WORK_SR
from .route import RoutePlan
from .steps import StepOutcome


GIVE_BACK_AFTER_BYTES = 64 * 2**20
"""After the chain of a stem at least this large (bytes: about 3 minutes of stereo at 44.1 kHz)
its thread's freed scratch goes back to the kernel (`heap.give_back_freed`): on 10 minutes of
stereo that is 0.6 GB less at `compare`'s peak; on a 60 s clip, where the memory does not
matter, the page faults of taking it again cost 6% of the restore stage's time."""


class StemWatch(Protocol):
    """What `process_stems` shows each stem it processes: before its chain, and after."""

    def before(self, name: str, stem: np.ndarray) -> None: ...

    def after(self, name: str, stem: np.ndarray, changed: bool) -> None:
        """`changed`: False when every step gave its input back bit for bit."""


def process_stems(stems: dict[str, np.ndarray], names: list[str], preset: presets.Preset,
                  sr: int = WORK_SR, *, in_place: bool = False, pool: Executor | None = None,
                  outcomes: dict[str, tuple[StepOutcome, ...]] | None = None,
                  reports: dict[str, list] | None = None, watch: StemWatch | None = None) -> dict[str, np.ndarray]:
    """Run each named stem through its chain, in parallel (the heavy parts, FFTs and
    pedalboard's plugins, release the GIL). `in_place` writes each result over its input stem
    (when the unprocessed stems are not needed afterwards: 0.2 GB per stereo stem on a
    10-minute file). `pool` runs them beside other work already queued there. `outcomes` gets
    what each stem's steps did, by stem name; `reports` what its chain's reporting steps
    (spectral recovery) found. `watch` sees each stem before and after its chain, on the thread
    that runs it (the figures' images of a stem restored in place)."""
    if not names:
        return {}
    found: dict[str, list] = {n: [] for n in names}

    def one(name: str) -> np.ndarray:
        done: list[StepOutcome] = []
        if watch is not None:
            watch.before(name, stems[name])
        y = dsp.apply_chain(stems[name], sr, preset.chain_for(name), overwrite=in_place, outcomes=done,
                            reports=found[name])
        if outcomes is not None:
            outcomes[name] = tuple(replace(o, where=name) for o in done)
        if stems[name].nbytes >= GIVE_BACK_AFTER_BYTES:
            heap.give_back_freed()
        if in_place and y is not stems[name]:
            stems[name][...] = y
            y = stems[name]
        if watch is not None:
            watch.after(name, y, not all(o.identical for o in done))
        return y

    if pool is None:
        with ThreadPoolExecutor(max_workers=max(1, min(len(names), os.cpu_count() or 1))) as own:
            return process_stems(stems, names, preset, sr, in_place=in_place, pool=own, outcomes=outcomes,
                                 reports=reports, watch=watch)
    futures = {n: pool.submit(one, n) for n in names}
    done = {n: f.result() for n, f in futures.items()}
    if reports is not None:
        reports.update(found)
    return done


def without_kinds(preset: presets.Preset, kinds: tuple[str, ...]) -> presets.Preset:
    """`preset` with the steps of `kinds` left out of every chain."""
    def keep(chain):
        return tuple(s for s in chain if s.kind not in kinds)

    return replace(preset, steps=keep(preset.steps), stem_steps={k: keep(v) for k, v in preset.stem_steps.items()})


def remixed(plan: RoutePlan) -> tuple[list[str], list[str]]:
    """The stems a remix sums: (processed, passed through unprocessed)."""
    return plan.processed(), plan.skipped() if plan.skip_policy == "passthrough" else []


def remix(plan: RoutePlan, stems: dict[str, np.ndarray], processed: dict[str, np.ndarray]) -> np.ndarray:
    """Sum the processed stems, plus the skipped ones when the skip policy passes them through."""
    done, passed = remixed(plan)
    parts = [processed[n] if n in processed else stems[n] for n in done] + [stems[n] for n in passed]
    if not parts:  # every stem dropped: silence, said in the report through the plan
        return np.zeros_like(next(iter(stems.values())))
    # Summed one by one: np.sum over the list would first stack every stem into one array.
    total = np.array(parts[0], dtype=np.float32)
    for part in parts[1:]:
        total += part
    return total
