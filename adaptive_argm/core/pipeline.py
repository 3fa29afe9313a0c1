"""The restoration pipeline, top to bottom: load, separate, route, restore, remix, measure,
write. `run` restores one clip in one mode; `compare` separates once and produces the direct,
stem-wise and routed results from that one separation. Both start with `_load_and_separate`
and restore each plan through `restore`; the steps they share follow them. What they are asked and what they
report are in `outcome` (re-exported here).
"""

from __future__ import annotations

import os
import time
from concurrent.futures import Executor, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Callable

import numpy as np

from ..config import COMPARE_MODES, ClipMode, OutputRate
from . import audio, dsp, metrics, presets, recovery, results
from . import figures as figs
from .audio import WORK_SR
from .dc import remove_dc
from .finish import Restored, finish, keep_measured, loudness_lufs
from .load import load
from .outcome import CompareResult, RunResult, Settings
from .resample import resample, resampled
from .route import RoutePlan, route, route_modes
from .separate import Separation, Separator, StemsFolder, high_band
from .signal import MEMORY, Mapped, Signal, Store, as_signal, workspace

NO_SEPARATOR = {"name": "none", "model": None}
RESTORED = "restored.wav"
REPORT_SET = results.Kind("report.json", outputs=(RESTORED,), legacy=(RESTORED, "stems/*.wav"))
"""`run`'s result set: restored.wav (and stems/ with keep_stems), report.json its manifest."""
COMPARE_SET = results.Kind("compare.json", outputs=("direct.wav", "routed.wav"),
                           legacy=tuple(f"{m}.wav" for m in COMPARE_MODES) + (figs.SPECTROGRAMS_PNG, figs.STEMS_PNG))
"""`compare`'s result set: one file per mode and the figures, compare.json its manifest."""


def run(input_path: str | Path, out: str | Path | results.ResultSet | results.View, separator: Separator | None = None,
        settings: Settings | None = None, *, notice: str | None = None, replace_other: bool = False,
        on_stage: Callable[[str], None] | None = None) -> RunResult:
    """Restore one clip into `out/restored.wav` and `out/report.json`.

    `out` is a folder (this call writes the result set there, see `core.results`; an earlier
    result of another input is replaced only with `replace_other`), or a set being staged that
    the caller commits with the report. `separator` turns the mix into stems (Demucs, a stems
    folder); None restores the mix directly. `notice` is recorded as `separator.notice` (why no
    separator was available).

    With no separation nothing needs the whole signal at once: the audio then streams through
    spill files in a temporary folder, a block at a time (an hour of stereo in about 1 GB), and
    `restored.audio` of the result is None (the file holds it).
    """
    if not isinstance(out, results.Staged):
        with results.ResultSet(out, REPORT_SET, input=input_path, protect=inputs_of(separator),
                               replace_other=replace_other) as staged:
            result = run(input_path, staged, separator, settings, notice=notice, on_stage=on_stage)
            staged.commit(result.to_dict())
        return result
    settings = settings or Settings()
    separator = separator if settings.mode != "direct" else None
    with workspace(on_disk=separator is None) as store:
        return _run(input_path, out, separator, settings, Stopwatch(on_stage), store, notice)


def _run(input_path: str | Path, out: results.Staged, separator: Separator | None, settings: Settings, clock: Stopwatch,
         store: Store, notice: str | None) -> RunResult:
    preset = presets.load(settings.preset)
    mix, info, panel_in, separation, sep_info, sr = _load_and_separate(input_path, separator, clock, notice=notice,
                                                                       store=store)
    preset, recovery_note = _recovery_preset(preset, settings, info)
    detected = recovery.detected(mix, sr)
    with clock.stage("route"):
        plan = route(separation.stems if separation else {}, mix, sr, settings.mode, settings.router,
                     settings.skip_policy)
    with clock.stage("restore"):
        restored, processed = restore(mix, plan, preset, separation, clip_mode=settings.clip_mode,
                                      in_place=not settings.keep_stems, target_lufs=_target_lufs(mix, preset, sr),
                                      sr=sr, store=store)
    if not settings.keep_stems:
        separation, processed = None, {}  # not written: free them before measuring (0.85 GB each)
    with clock.stage("measure"):
        panels, warnings = _measure_outputs(panel_in, {"output": restored.audio}, sr=sr, info=info)
    with clock.stage("write"):
        y, out_sr = _output_audio(restored.audio, info, settings.output_sr, sr)
        audio.write(out.path(RESTORED), y, out_sr)
        if settings.keep_stems and separation is not None:
            for name, stem in separation.stems.items():
                audio.write(out.path(f"stems/{name}.wav"), stem, sr)
                if name in processed:
                    audio.write(out.path(f"stems/{name}.restored.wav"), processed[name], sr)
    y = as_signal(y, out_sr)
    if store.on_disk:  # its spill file goes with the run's temporary folder
        restored = replace(restored, audio=None)
    return RunResult(info, str(out.final(RESTORED)), out_sr, y.channels, y.frames / out_sr, restored, plan,
                     sep_info, preset, panel_in, panels["output"], warnings["output"], clock.timings_s, settings,
                     recovery_note, detected)


def compare(input_path: str | Path, out: str | Path | results.ResultSet | results.View,
            separator: Separator | None = None, settings: Settings | None = None, *,
            reference: np.ndarray | None = None, notice: str | None = None, figures: bool = True,
            stem_views: bool | None = None, protect: tuple[str | Path, ...] = (), replace_other: bool = False,
            on_stage: Callable[[str], None] | None = None) -> CompareResult:
    """Separate once, then restore the clip three ways (forced direct, forced stem-wise, routed)
    and measure each; writes `direct.wav`, `stemwise.wav`, `routed.wav`, `compare.json` and the
    figures into `out`, a folder or a set being staged, as for `run` (the caller then writes
    compare.json). `protect` lists other inputs (a reference file). Each stem goes through the
    chain at most once.

    `reference` is a clean `(channels, samples)` signal at the run's rate; with it the panel
    adds the intrusive scores (SI-SDR, LSD, quiet-frame SNR), against the reference without its
    DC offset and drift (which restoration removes from the input first; the input is scored
    after that removal too). `stem_views` (default: `figures`)
    keeps what the stems figure needs, for drawing it later with `figures.compare_figures`.

    Memory: the stems are restored in place (copies only of the stems routed passes through
    unprocessed) and freed before measuring, so a 10-minute stereo file holds the mix, four
    stems and the results, not two sets of stems.
    """
    if not isinstance(out, results.Staged):
        with results.ResultSet(out, COMPARE_SET, input=input_path, protect=(*protect, *inputs_of(separator)),
                               replace_other=replace_other) as staged:
            result = compare(input_path, staged, separator, settings, reference=reference, notice=notice,
                             figures=figures, stem_views=stem_views, on_stage=on_stage)
            staged.commit(result.to_dict())
        return result
    settings = settings or Settings()
    keep_views = figures if stem_views is None else stem_views
    preset = presets.load(settings.preset)
    clock = Stopwatch(on_stage)
    mix, info, panel_in, separation, sep_info, sr = _load_and_separate(input_path, separator, clock, notice=notice,
                                                                       reference=reference)
    reference = remove_dc(reference, sr, bypass=False) if reference is not None else None
    preset, recovery_note = _recovery_preset(preset, settings, info)
    detected = recovery.detected(mix, sr)
    stems = separation.stems if separation else {}
    with clock.stage("route"):
        plans = route_modes(stems, mix, sr, COMPARE_MODES, settings.router, settings.skip_policy)
    with clock.stage("restore"):
        target = _target_lufs(mix, preset, sr)
        routed = plans["routed"]
        views = {n: figs.StemView.of(x, sr) for n, x in stems.items()} if keep_views else {}
        # The stems are restored in place: keep the unprocessed audio that routed passes through.
        passed = {n: stems[n].copy() for n in _remixed(routed)[1]} if routed.mode_used == "stemwise" else {}
        # The mix's chain and the stems' share one pool: every core busy, and no more chains (and
        # their scratch memory) at once than cores.
        stem_reports: dict[str, list] = {}  # what each stem's chain found, shared by stem-wise and routed
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            direct = pool.submit(restore, mix, plans["direct"], preset, None, clip_mode=settings.clip_mode,
                                 target_lufs=target, sr=sr)
            stemwise, processed = (restore(mix, plans["stemwise"], preset, separation, clip_mode=settings.clip_mode,
                                           in_place=True, target_lufs=target, pool=pool, sr=sr,
                                           reports=stem_reports)
                                   if separation is not None else (None, {}))
            outputs: dict[str, Restored] = {"direct": direct.result()[0]}
        if stemwise is not None:
            outputs["stemwise"] = stemwise
        views = {n: v.restored(processed[n], sr) if n in processed else v for n, v in views.items()}
        if routed.mode_used == "direct":
            outputs["routed"] = outputs["direct"]
        elif _remixed(routed) == _remixed(plans["stemwise"]):  # nothing skipped: the same sum
            outputs["routed"] = outputs["stemwise"]
        else:
            outputs["routed"], _ = restore(mix, routed, preset,
                                           Separation({**stems, **passed}, separation.info, separation.beyond),
                                           processed, settings.clip_mode, target_lufs=target, sr=sr,
                                           reports=stem_reports)
        stem_names = tuple(stems)
        separation = stems = processed = passed = stemwise = None  # freed before measuring (0.2 GB per 10 min stem)
    with clock.stage("measure"):
        panels, warnings = _measure_outputs(panel_in, {m: r.audio for m, r in outputs.items()}, reference, sr=sr,
                                            info=info)
        all_panels = {"input": panel_in, **{m: panels.get(m) for m in COMPARE_MODES}}
    with clock.stage("write"):
        paths = {}
        for m, r in outputs.items():
            y, out_sr = _output_audio(r.audio, info, settings.output_sr, sr)
            audio.write(out.path(f"{m}.wav"), y, out_sr)
            paths[m] = str(out.final(f"{m}.wav"))
    result = CompareResult(info, sep_info, routed, outputs, paths, all_panels, warnings, stem_names, views,
                           preset, clock.timings_s, settings, mix, sr,
                           recovery_note, detected)
    if figures:
        with clock.stage("figures"):
            figs.compare_figures(result, out.staged_folder)
    return result


# --- the steps --------------------------------------------------------------------------------


def _load_and_separate(input_path: str | Path, separator: Separator | None, clock: Stopwatch, *,
                       notice: str | None, reference: np.ndarray | None = None, store: Store = MEMORY):
    """Load the input (measuring it on the way) into `store` and separate it: `(mix, info,
    input panel, separation or None, separator record, the run's rate)`. The raw input is not
    held through separation and restoration (0.2 GB per copy on 10 minutes of stereo)."""
    with clock.stage("load"):
        loaded = load(input_path, store)
        mix, sr = loaded.mix, loaded.sr
    with clock.stage("measure"):
        panel_in = loaded.panel
        if reference is not None:
            panel_in = metrics.with_scores_of(panel_in, mix, remove_dc(reference, sr, bypass=False), sr)
    with clock.stage("separate"):
        if separator is None:
            separation, sep_info = None, dict(NO_SEPARATOR)
        else:
            separation = separator(mix, sr)
            separation = Separation(separation.stems, separation.info, high_band(mix, separation, sr))
            sep_info = separation.info.to_dict()
        if notice:
            sep_info["notice"] = notice
    return mix, loaded.info, panel_in, separation, sep_info, sr


def inputs_of(separator: Separator | None) -> tuple[Path, ...]:
    """The files a separator reads (a stems folder): never written over by a result."""
    return (separator.folder,) if isinstance(separator, StemsFolder) else ()


def _target_lufs(mix: np.ndarray | Signal, preset: presets.Preset, sr: int) -> float | None:
    """The loudness a result is brought back to: the DC-free input's, when the preset asks."""
    return loudness_lufs(mix, sr) if preset.match_loudness else None


def _recovery_preset(preset: presets.Preset, settings: Settings,
                     info: audio.AudioInfo) -> tuple[presets.Preset, str | None]:
    """The preset as this run uses it and the note the report carries (`presets.for_recovery`):
    the output keeps a lower input rate only with `output_sr` "original"."""
    keeps = settings.output_sr == "original" and info.sample_rate < WORK_SR
    return presets.for_recovery(preset, settings.recovery, info.sample_rate if keeps else None)


def restore(mix: np.ndarray | Signal, plan: RoutePlan, preset: presets.Preset, separation: Separation | None,
            processed: dict[str, np.ndarray] | None = None, clip_mode: ClipMode = "limit", *,
            in_place: bool = False, target_lufs: float | None = None, pool: Executor | None = None,
            sr: int = WORK_SR, store: Store = MEMORY,
            reports: dict[str, list] | None = None) -> tuple[Restored, dict[str, np.ndarray]]:
    """Restore `mix` (at `sr`) as `plan` says: the preset's chain on the mix (direct), or on
    each stem the plan processes, then the remix (with the band above the separator's added
    back); then loudness and clip safety (`finish`). A direct restoration of a signal on disk
    streams through `store`.

    `processed` holds stems already run through the chain, so no stem is processed twice; the
    return adds any newly processed stems. `in_place` lets processed stems overwrite the
    separation's (see `process_stems`); `pool` runs them beside other work queued there;
    `target_lufs` is the mix's loudness when already measured (see `finish`). `reports` holds,
    by stem, what reporting steps (spectral recovery) found on stems already processed; the
    stems processed here add theirs."""
    processed = dict(processed or {})
    reports = {} if reports is None else reports
    if plan.mode_used == "direct":
        found: dict[str, list] = {"mix": []}
        chain = preset.chain_for(None)
        if isinstance(mix, Signal):
            stage = dsp.chain_stage(chain, sr, mix.frames, mix.channels, reports=found["mix"])
            y = keep_measured(store, stage(mix.blocks()), mix.channels, sr, mix.frames)
        else:
            y = dsp.apply_chain(mix, sr, chain, reports=found["mix"])
    else:
        todo = [n for n in plan.processed() if n not in processed]
        processed.update(process_stems(separation.stems, todo, preset, sr, in_place=in_place, pool=pool,
                                       reports=reports))
        found = {n: reports.get(n, []) for n in plan.processed()}
        y = remix(plan, separation.stems, processed)
        if separation.beyond is not None:
            y += separation.beyond
    restored = finish(y, mix, plan.mode_used, preset, clip_mode, sr, target_lufs=target_lufs, store=store)
    if restored.audio is not y:
        store.drop(y)
    # Each chain's recovery reports, one per segment it was run in (`steps.RECOVERY_BLOCK_S`).
    recovered = {n: recovery.merged(r) for n, r in found.items() if r}
    return replace(restored, recovery=recovered), processed


def process_stems(stems: dict[str, np.ndarray], names: list[str], preset: presets.Preset,
                  sr: int = WORK_SR, *, in_place: bool = False, pool: Executor | None = None,
                  reports: dict[str, list] | None = None) -> dict[str, np.ndarray]:
    """Run each named stem through its chain, in parallel (the heavy parts, FFTs and
    pedalboard's plugins, release the GIL). `in_place` writes each result over its input stem
    (when the unprocessed stems are not needed afterwards: 0.2 GB per stereo stem on a
    10-minute file). `pool` runs them beside other work already queued there. `reports`
    receives, by stem, what its chain's reporting steps found."""
    if not names:
        return {}
    found = {n: [] for n in names}

    def one(name: str) -> np.ndarray:
        y = dsp.apply_chain(stems[name], sr, preset.chain_for(name), overwrite=in_place, reports=found[name])
        if not in_place:
            return y
        if y is not stems[name]:
            stems[name][...] = y
        return stems[name]

    if pool is None:
        with ThreadPoolExecutor(max_workers=max(1, min(len(names), os.cpu_count() or 1))) as own:
            return process_stems(stems, names, preset, sr, in_place=in_place, pool=own, reports=reports)
    futures = {n: pool.submit(one, n) for n in names}
    done = {n: f.result() for n, f in futures.items()}
    if reports is not None:
        reports.update(found)
    return done


def _remixed(plan: RoutePlan) -> tuple[list[str], list[str]]:
    """The stems a remix sums: (processed, passed through unprocessed)."""
    return plan.processed(), plan.skipped() if plan.skip_policy == "passthrough" else []


def remix(plan: RoutePlan, stems: dict[str, np.ndarray], processed: dict[str, np.ndarray]) -> np.ndarray:
    """Sum the processed stems, plus the skipped ones when the skip policy passes them through."""
    done, passed = _remixed(plan)
    parts = [processed[n] if n in processed else stems[n] for n in done] + [stems[n] for n in passed]
    if not parts:  # every stem dropped: silence, said in the report through the plan
        return np.zeros_like(next(iter(stems.values())))
    # Summed one by one: np.sum over the list would first stack every stem into one array.
    total = np.array(parts[0], dtype=np.float32)
    for part in parts[1:]:
        total += part
    return total


def _measure_outputs(panel_in: metrics.MetricPanel, outputs: dict[str, np.ndarray | Signal],
                     ref: np.ndarray | None = None, *, sr: int = WORK_SR, info: audio.AudioInfo | None = None):
    """The metric panel of each output (at `sr`; measured at `metrics.METRIC_SR`) over the
    input's occupied band, and its warnings against the input's panel (after the input's own: a
    truncated file). With `ref` (at `sr`, DC-free) the intrusive scores are added."""
    band = panel_in.bandwidth_hz
    distinct = {id(y): y for y in outputs.values()}  # routed often IS stem-wise or direct: measured once
    by_array = {}
    for key, y in distinct.items():
        signal = as_signal(y, sr)
        panel = metrics.measure_stream(signal.blocks(), sr, signal.channels, band)
        by_array[key] = metrics.with_scores_of(panel, y, ref, sr) if ref is not None else panel
    panels = {name: by_array[id(y)] for name, y in outputs.items()}
    about_input = [w for w in [info.truncation_warning() if info else None] if w]
    warnings = {name: about_input + metrics.warnings_for(panel_in, p) for name, p in panels.items()}
    return panels, warnings


def _output_audio(y: np.ndarray | Signal, info: audio.AudioInfo, output_sr: OutputRate,
                  sr: int = WORK_SR) -> tuple[np.ndarray | Signal, int]:
    """The result as written: at the run's rate, or back at the input's (`original`; its own
    length)."""
    if output_sr != "original" or info.sample_rate == sr:
        return y, sr
    if isinstance(y, Signal):
        return Mapped(y, lambda blocks: resampled(blocks, sr, info.sample_rate, y.channels, info.frames),
                      frames=info.frames, sr=info.sample_rate), info.sample_rate
    return resample(y, sr, info.sample_rate, frames=info.frames), info.sample_rate


class Stopwatch:
    """Wall time per named stage, announced to an optional callback as each stage starts."""

    def __init__(self, on_stage: Callable[[str], None] | None = None):
        self.timings_s: dict[str, float] = {}
        self._on_stage = on_stage

    @contextmanager
    def stage(self, name: str):
        if self._on_stage:
            self._on_stage(name)
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.timings_s[name] = self.timings_s.get(name, 0.0) + time.perf_counter() - t0
