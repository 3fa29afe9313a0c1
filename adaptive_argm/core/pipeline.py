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

from ..config import COMPARE_MODES, STEM_NAMES, ClipMode, OutputRate
from . import audio, change, dsp, metrics, outputs, presets, recovery, results, steps
from . import figures as figs
from .audio import WORK_SR
from .dc import remove_dc
from .drawing import Drawing
from .finish import Restored, finish, keep_measured
from .load import load, native_dc_free
from .outcome import CompareResult, RunResult, Settings
from .remix import StemWatch, process_stems, remix, remixed, without_kinds
from .resample import ROUND_TRIP_BAND, resample, resampled
from .route import RoutePlan, route, route_modes
from .separate import Separation, Separator, StemsFolder, high_band
from .signal import MEMORY, Mapped, Signal, Store, as_signal, held, workspace
from .steps import StepOutcome
from .threads import side_by_side

__all__ = ["CompareResult", "Restored", "RunResult", "Settings", "compare", "finish", "process_stems", "remix",
           "restore", "run"]

NO_SEPARATOR = {"name": "none", "model": None}
RESTORED_STEM = "restored"
RESTORED = RESTORED_STEM + ".wav"
RESIDUAL = "residual.wav"
REPORT_SET = results.Kind("report.json", outputs=(RESTORED,), legacy=(RESTORED, "stems/*.wav"))
"""`run`'s result set: restored.<wav|flac> (and residual.wav, stems/), report.json its manifest
(`run_kind` names the output this run will write)."""
COMPARE_SET = results.Kind("compare.json", outputs=("direct.wav", "routed.wav"),
                           legacy=tuple(f"{m}.wav" for m in COMPARE_MODES) + (figs.SPECTROGRAMS_PNG, figs.STEMS_PNG))
"""`compare`'s result set: one file per mode (and its residual-<mode>.wav) and the figures,
compare.json its manifest."""


def run_kind(input_path: str | Path, settings: Settings) -> results.Kind:
    """`run`'s result set for this input and these settings: the file names it will write (with
    `keep_stems`, those of the four usual stems, which a file in the way then stops before any work)."""
    name = outputs.output_name(RESTORED_STEM, outputs.source_format(input_path), settings.format, settings.bits)
    stems = tuple(f"stems/{n}{suffix}.wav" for n in STEM_NAMES for suffix in ("", ".restored")) \
        if settings.keep_stems else ()
    return replace(REPORT_SET, outputs=(name,) + ((RESIDUAL,) if settings.residual else ()) + stems)


def compare_kind(input_path: str | Path, settings: Settings) -> results.Kind:
    """`compare`'s result set for this input and these settings."""
    source = outputs.source_format(input_path)
    names = tuple(outputs.output_name(m, source, settings.format, settings.bits) for m in ("direct", "routed"))
    return replace(COMPARE_SET, outputs=names + ((f"residual-direct.wav",) if settings.residual else ()))


def run(input_path: str | Path, out: str | Path | results.ResultSet | results.View, separator: Separator | None = None,
        settings: Settings | None = None, *, notice: str | None = None, replace_other: bool = False,
        on_stage: Callable[[str], None] | None = None,
        on_progress: Callable[[float], None] | None = None) -> RunResult:
    """Restore one clip into `out/restored.<wav|flac>` and `out/report.json`.

    `out` is a folder (this call writes the result set there, see `core.results`; an earlier
    result of another input is replaced only with `replace_other`), or a set being staged that
    the caller commits with the report. `separator` turns the mix into stems (Demucs, a stems
    folder); None restores the mix directly. `notice` is recorded as `separator.notice` (why no
    separator was available). `on_stage` hears each stage's name as it starts, `on_progress` the
    separation's progress (0 to 1) where the separator reports it.

    With no separation nothing needs the whole signal at once: the audio then streams through
    spill files in a temporary folder, a block at a time (an hour of stereo in about 1 GB), and
    `restored.audio` of the result is None (the file holds it). A loudness target reads the
    result whole (`finish`).
    """
    settings = settings or Settings()
    if not isinstance(out, results.Staged):
        with results.ResultSet(out, run_kind(input_path, settings), input=input_path, protect=inputs_of(separator),
                               replace_other=replace_other) as staged:
            result = run(input_path, staged, separator, settings, notice=notice, on_stage=on_stage,
                         on_progress=on_progress)
            staged.commit(result.to_dict())
        return result
    separator = separator if settings.mode != "direct" else None
    with workspace(on_disk=separator is None) as store:
        return _run(input_path, out, separator, settings, Stopwatch(on_stage), store, notice, on_progress)


def _run(input_path: str | Path, out: results.Staged, separator: Separator | None, settings: Settings, clock: Stopwatch,
         store: Store, notice: str | None, on_progress: Callable[[float], None] | None) -> RunResult:
    preset = presets.load(settings.preset)
    source = outputs.source_format(input_path)
    outputs.check_holds(input_path, source, settings.format)
    mix, info, panel_in, separation, sep_info, sr, lufs = _load_and_separate(
        input_path, separator, clock, notice=notice, store=store, on_progress=on_progress)
    preset, recovery_note = _recovery_preset(preset, settings, info)
    detected = recovery.detected(mix, sr)
    with clock.stage("route"):
        plan = route(separation.stems if separation else {}, mix, sr, settings.mode, settings.router,
                     settings.skip_policy, step_kinds(preset), step_probe(preset, sr))
    with clock.stage("restore"):
        restored, processed = restore(mix, plan, preset, separation, clip_mode=settings.clip_mode,
                                      in_place=not settings.keep_stems, target_lufs=_target_lufs(lufs, preset),
                                      sr=sr, store=store, loudness_target=settings.loudness_target,
                                      keep_pre_gain=settings.residual)
    if not settings.keep_stems:
        separation, processed = None, {}  # not written: free them before measuring (0.85 GB each)
    with clock.stage("measure"):
        panels, warnings = _measure_outputs(panel_in, {"output": restored.audio}, sr=sr, info=info)
    with clock.stage("write"):
        y, out_sr, rate_note = _output_audio(restored, input_path, info, settings.output_sr, sr)
        delivered = outputs.deliver_result(out, RESTORED_STEM, y, out_sr, source, container=settings.format,
                                           bits=settings.bits, target=restored.loudness,
                                           levels=_panel_levels(panels["output"], y, restored, out_sr),
                                           residual=_residual(restored, mix, settings.residual),
                                           residual_name=RESIDUAL, residual_sr=sr, rate_note=rate_note)
        if settings.keep_stems and separation is not None:
            for name, stem in separation.stems.items():
                audio.write(out.path(f"stems/{name}.wav"), stem, sr)
                if name in processed:
                    audio.write(out.path(f"stems/{name}.restored.wav"), processed[name], sr)
    y = as_signal(y, out_sr)
    if store.on_disk:  # its spill files go with the run's temporary folder
        restored = replace(restored, audio=None, pre_gain=None)
    return RunResult(info, delivered.written.path, out_sr, y.channels, y.frames / out_sr, restored, plan,
                     sep_info, preset, panel_in, panels["output"], warnings["output"], clock.timings_s, settings,
                     delivered, recovery_note=recovery_note, bandwidth=detected)


def compare(input_path: str | Path, out: str | Path | results.ResultSet | results.View,
            separator: Separator | None = None, settings: Settings | None = None, *,
            reference: np.ndarray | None = None, notice: str | None = None, figures: bool = True,
            stem_views: bool | None = None, protect: tuple[str | Path, ...] = (), replace_other: bool = False,
            on_stage: Callable[[str], None] | None = None,
            on_progress: Callable[[float], None] | None = None) -> CompareResult:
    """Separate once, then restore the clip three ways (forced direct, forced stem-wise, routed)
    and measure each; writes `direct`, `stemwise` and `routed` (.wav or .flac), `compare.json`
    and the figures into `out`, a folder or a set being staged, as for `run` (the caller then
    writes compare.json). `protect` lists other inputs (a reference file). Each stem goes
    through the chain at most once.

    `reference` is a clean `(channels, samples)` signal at the run's rate; with it the panel
    adds the intrusive scores (SI-SDR, LSD, quiet-frame SNR), against the reference without its
    DC offset and drift (which restoration removes from the input first; the input is scored
    after that removal too). `stem_views` (default: `figures`)
    keeps what the stems figure needs, for drawing it later with `figures.compare_figures`.

    Memory: the stems are restored in place and freed before measuring; the unprocessed copies
    routed still needs wait in a spill file on disk when they are large (`SPILL_COPIES_ABOVE`),
    so a 10-minute stereo file holds the mix, four stems and the results, not two sets of stems
    (2.8 GB at the peak, eval/results/bench_long600.md).
    """
    settings = settings or Settings()
    if not isinstance(out, results.Staged):
        with results.ResultSet(out, compare_kind(input_path, settings), input=input_path,
                               protect=(*protect, *inputs_of(separator)), replace_other=replace_other) as staged:
            result = compare(input_path, staged, separator, settings, reference=reference, notice=notice,
                             figures=figures, stem_views=stem_views, on_stage=on_stage, on_progress=on_progress)
            staged.commit(result.to_dict())
        return result
    # The figures are drawn in a process of their own, started now (`drawing`): it imports
    # matplotlib while the clip is separated, and draws while the results are measured and written.
    with Drawing(in_process=not figures) as drawing:
        return _compare(input_path, out, separator, settings, reference, notice, figures, stem_views, on_stage,
                        on_progress, drawing)


def _compare(input_path: str | Path, out: results.Staged, separator: Separator | None, settings: Settings,
             reference: np.ndarray | None, notice: str | None, figures: bool, stem_views: bool | None,
             on_stage: Callable[[str], None] | None, on_progress: Callable[[float], None] | None,
             drawing: Drawing) -> CompareResult:
    keep_views = figures if stem_views is None else stem_views
    preset = presets.load(settings.preset)
    source = outputs.source_format(input_path)
    outputs.check_holds(input_path, source, settings.format)
    clock = Stopwatch(on_stage)
    mix, info, panel_in, separation, sep_info, sr, lufs = _load_and_separate(
        input_path, separator, clock, notice=notice, reference=reference, on_progress=on_progress)
    reference = remove_dc(reference, sr, bypass=False) if reference is not None else None
    preset, recovery_note = _recovery_preset(preset, settings, info)
    detected = recovery.detected(mix, sr)
    stems = separation.stems if separation else {}
    with clock.stage("route"):
        plans = route_modes(stems, mix, sr, COMPARE_MODES, settings.router, settings.skip_policy,
                            step_kinds(preset), step_probe(preset, sr))
    routed = plans["routed"]
    # The stems are restored in place: keep the unprocessed audio that routed passes through
    # (and, when routed runs some kinds on the remix instead, every stem it processes).
    keep = (remixed(routed)[1] + (routed.processed() if routed.direct_kinds() else [])
            if routed.mode_used == "stemwise" else [])
    with clock.stage("restore"), workspace(on_disk=sum(stems[n].nbytes for n in keep) > SPILL_COPIES_ABOVE) as spill:
        finishing = dict(clip_mode=settings.clip_mode, target_lufs=_target_lufs(lufs, preset), sr=sr,
                         loudness_target=settings.loudness_target, keep_pre_gain=settings.residual or keep_views)
        passed = {n: spill.keep(as_signal(stems[n], sr).blocks(), stems[n].shape[0], sr, stems[n].shape[1])
                  for n in keep}
        stem_steps: dict[str, tuple[StepOutcome, ...]] = {}
        # The mix's chain and the stems' share one pool: every core busy, and no more chains (and
        # their scratch memory) at once than cores.
        stem_reports: dict[str, list] = {}  # what each stem's chain found, shared by stem-wise and routed
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            direct = pool.submit(restore, mix, plans["direct"], preset, None, **finishing)
            # The stems figure's images: of each stem stem-wise restores (in place), taken by its
            # chain's task before and after; of the others, beside them. The figure goes to the
            # drawing process once they are all taken: it needs nothing that remixing,
            # measuring or writing the results makes.
            watch = None
            if keep_views and separation is not None:
                stems_figure = (lambda views: drawing.draw(
                    figs.stems_of(views, routed, sep_info, preset.name, mix.shape[-1], sr),
                    out.staged_folder / figs.STEMS_PNG)) if figures else None
                watch = figs.StemViews(sr, tuple(stems), tuple(plans["stemwise"].processed()), stems_figure)
            unprocessed = [n for n in stems if n not in plans["stemwise"].processed()] if watch else []
            seen = [pool.submit(watch.before, n, stems[n]) for n in unprocessed]
            stemwise, processed = (restore(mix, plans["stemwise"], preset, separation, in_place=True, pool=pool,
                                           outcomes=stem_steps, reports=stem_reports, watch=watch, **finishing)
                                   if separation is not None else (None, {}))
            for f in seen:
                f.result()
            views = watch.ordered() if watch else {}
            outputs_: dict[str, Restored] = {"direct": direct.result()[0]}
        if stemwise is not None:
            outputs_["stemwise"] = stemwise
        stem_names = tuple(stems)
        if routed.mode_used == "direct":
            outputs_["routed"] = outputs_["direct"]
        elif remixed(routed) == remixed(plans["stemwise"]) and not routed.direct_kinds():  # the same sum
            outputs_["routed"] = outputs_["stemwise"]
        elif routed.direct_kinds():
            # Routed runs part of the chain on its own copies of the stems (`passed` holds every
            # stem it sums): the stems stem-wise restored in place are freed first, and the copies
            # are restored in place (0.85 GB each way on 10 minutes of stereo).
            sep_of, beyond = separation.info, separation.beyond
            separation = stems = processed = None
            separation = Separation({n: held(p) for n, p in passed.items()}, sep_of, beyond)
            passed = None
            outputs_["routed"], _ = restore(mix, routed, preset, separation, in_place=True, outcomes=stem_steps,
                                            reports=stem_reports, **finishing)
        else:
            outputs_["routed"], _ = restore(mix, routed, preset,
                                            Separation({**stems, **{n: held(p) for n, p in passed.items()}},
                                                       separation.info, separation.beyond),
                                            processed, outcomes=stem_steps, reports=stem_reports, **finishing)
        separation = stems = processed = passed = stemwise = None  # freed before measuring (0.2 GB per 10 min stem)
    with clock.stage("measure"):
        panels, warnings = _measure_outputs(panel_in, {m: r.audio for m, r in outputs_.items()}, reference, sr=sr,
                                            info=info)
        all_panels = {"input": panel_in, **{m: panels.get(m) for m in COMPARE_MODES}}
    result = CompareResult(info, sep_info, routed, outputs_, {}, all_panels, warnings, stem_names, views, preset,
                           clock.timings_s, settings, mix, {}, sr, recovery_note=recovery_note, bandwidth=detected)
    if figures:  # the spectrograms need the panels, not the files: drawn while the files are written
        with clock.stage("figures"):
            drawing.draw(figs.spectrograms_of(result, sr), out.staged_folder / figs.SPECTROGRAMS_PNG)
    with clock.stage("write"):
        delivered = _deliver_outputs(out, outputs_, panels, input_path, info, settings, source, mix, sr)
    result = replace(result, paths={m: d.written.path for m, d in delivered.items()}, delivered=delivered)
    if figures:
        with clock.stage("figures"):
            drawing.finish()
            if not views:  # no stems figure, and none from an earlier comparison either
                (out.staged_folder / figs.STEMS_PNG).unlink(missing_ok=True)
    return result


def _deliver_outputs(out, outputs_: dict[str, Restored], panels: dict[str, metrics.MetricPanel],
                     input_path: str | Path, info: audio.AudioInfo, settings: Settings,
                     source: outputs.SourceFormat, mix: np.ndarray, sr: int) -> dict[str, outputs.Delivered]:
    """Each compared result written under its mode's name, side by side (its sample peak and
    loudness from its metric `panels` where they measured the file's audio). Routed often IS the
    stem-wise or direct result: that one is measured and written once, then copied."""
    first: dict[int, str] = {}
    for m, r in outputs_.items():
        first.setdefault(id(r), m)

    def deliver(m: str) -> outputs.Delivered:
        r = outputs_[m]
        y, out_sr, rate_note = _output_audio(r, input_path, info, settings.output_sr, sr)
        return outputs.deliver_result(out, m, y, out_sr, source, container=settings.format, bits=settings.bits,
                                      levels=_panel_levels(panels.get(m), y, r, out_sr),
                                      target=r.loudness, residual=_residual(r, mix, settings.residual),
                                      residual_name=f"residual-{m}.wav", residual_sr=sr, rate_note=rate_note)

    written = dict(zip(first.values(), side_by_side(deliver, first.values())))
    return {m: written[m] if m in written else
            outputs.deliver_again(out, written[first[id(r)]], m, f"residual-{m}.wav")
            for m, r in outputs_.items()}


SPILL_COPIES_ABOVE = 256 * 2**20
"""`compare` keeps the unprocessed stems routed still needs, while stem-wise restores the stems
in place, in a spill file on disk when they would take more memory than this (bytes): on 10
minutes of stereo they are 0.85 GB, which sat beside the two chains running (spilled, the
separated run's peak fell from 3.47 to 2.80 GB: eval/results/bench_long600.md); at 30 s they are
42 MB and stay in memory."""


# --- the steps --------------------------------------------------------------------------------


def _load_and_separate(input_path: str | Path, separator: Separator | None, clock: Stopwatch, *,
                       notice: str | None, reference: np.ndarray | None = None, store: Store = MEMORY,
                       on_progress: Callable[[float], None] | None = None):
    """Load the input (measuring it on the way) into `store` and separate it: `(mix, info,
    input panel, separation or None, separator record, the run's rate, the DC-free input's
    loudness)`. The raw input is not held through separation and restoration (0.2 GB per copy on
    10 minutes of stereo). `on_progress` hears the separation's progress where the separator
    reports it."""
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
            separation = (separator(mix, sr, progress=on_progress) if getattr(separator, "reports_progress", False)
                          else separator(mix, sr))
            separation = Separation(separation.stems, separation.info, high_band(mix, separation, sr))
            sep_info = separation.info.to_dict()
        if notice:
            sep_info["notice"] = notice
    return mix, loaded.info, panel_in, separation, sep_info, sr, loaded.lufs


def inputs_of(separator: Separator | None) -> tuple[Path, ...]:
    """The files a separator reads (a stems folder): never written over by a result."""
    return (separator.folder,) if isinstance(separator, StemsFolder) else ()


def _target_lufs(lufs: float, preset: presets.Preset) -> float | None:
    """The loudness a result is brought back to: the DC-free input's (`lufs`, measured at
    load), when the preset asks."""
    return lufs if preset.match_loudness else None


def _recovery_preset(preset: presets.Preset, settings: Settings,
                     info: audio.AudioInfo) -> tuple[presets.Preset, str | None]:
    """The preset as this run uses it and the note the report carries (`presets.for_recovery`):
    the output keeps a lower input rate only with `output_sr` "original"."""
    keeps = settings.output_sr == "original" and info.sample_rate < WORK_SR
    return presets.for_recovery(preset, settings.recovery, info.sample_rate if keeps else None)


def restore(mix: np.ndarray | Signal, plan: RoutePlan, preset: presets.Preset, separation: Separation | None,
            processed: dict[str, np.ndarray] | None = None, clip_mode: ClipMode = "limit", *,
            in_place: bool = False, target_lufs: float | None = None, pool: Executor | None = None,
            sr: int = WORK_SR, store: Store = MEMORY, loudness_target: tuple[float, float] | None = None,
            keep_pre_gain: bool = False, outcomes: dict[str, tuple[StepOutcome, ...]] | None = None,
            reports: dict[str, list] | None = None,
            watch: StemWatch | None = None) -> tuple[Restored, dict[str, np.ndarray]]:
    """Restore `mix` (at `sr`) as `plan` says: the preset's chain on the mix (direct), or on
    each stem the plan processes, then the remix (with the band above the separator's added
    back); then loudness and clip safety (`finish`), and whether that changed the input
    (`change.assess`, block by block). A direct restoration of a signal on disk streams through
    `store`.

    `processed` holds stems already run through the chain, so no stem is processed twice; the
    return adds any newly processed stems, and `outcomes` (by stem) what their steps did. `in_place`
    lets processed stems overwrite the separation's (see `process_stems`); `pool` runs them
    beside other work queued there; `target_lufs` is the mix's loudness when already measured;
    `loudness_target` (target LUFS, true-peak ceiling dBTP) and `keep_pre_gain`: see `finish`.
    `reports` holds, by stem, what reporting steps (spectral recovery) found on stems already
    processed; the stems processed here add theirs. `watch` sees each stem a stem-wise plan
    processes here, before and after its chain (`process_stems`).

    A stem-wise plan with kinds routed direct (`RoutePlan.direct_kinds`) runs the other kinds on
    the stems, remixes, then runs the mix chain's steps of those kinds on the remix. Its stems
    have been through part of the chain only: they are neither taken from nor added to
    `processed`."""
    processed = dict(processed or {})
    outcomes = {} if outcomes is None else outcomes
    reports = {} if reports is None else reports
    if plan.mode_used == "direct":
        done: list[StepOutcome] = []
        found: dict[str, list] = {"mix": []}
        chain, dc_done = _mix_chain(preset)
        if isinstance(mix, Signal):
            stage = dsp.chain_stage(chain, sr, mix.frames, mix.channels, done, reports=found["mix"])
            y = keep_measured(store, stage(mix.blocks()), mix.channels, sr, mix.frames)
        else:
            y = dsp.apply_chain(mix, sr, chain, outcomes=done, reports=found["mix"])
        steps_done = dc_done + tuple(replace(o, where="mix") for o in done)
    elif direct_kinds := plan.direct_kinds():
        found, partial_steps = {}, {}
        partial = process_stems(separation.stems, plan.processed(), without_kinds(preset, direct_kinds), sr,
                                in_place=in_place, pool=pool, outcomes=partial_steps, reports=found)
        y = remix(plan, separation.stems, partial)
        if separation.beyond is not None:
            y += separation.beyond
        found["mix"], done = [], []
        y = dsp.apply_chain(y, sr, tuple(s for s in preset.chain_for(None) if s.kind in direct_kinds),
                            outcomes=done, reports=found["mix"])
        steps_done = (tuple(o for n in plan.processed() for o in partial_steps.get(n, ()))
                      + tuple(replace(o, where="mix") for o in done))
    else:
        todo = [n for n in plan.processed() if n not in processed]
        processed.update(process_stems(separation.stems, todo, preset, sr, in_place=in_place, pool=pool,
                                       outcomes=outcomes, reports=reports, watch=watch))
        found = {n: reports.get(n, []) for n in plan.processed()}
        y = remix(plan, separation.stems, processed)
        if separation.beyond is not None:
            y += separation.beyond
        steps_done = tuple(o for n in plan.processed() for o in outcomes.get(n, ()))
    r = finish(y, mix, plan.mode_used, preset, clip_mode, sr, target_lufs=target_lufs, store=store,
               loudness_target=loudness_target, keep_pre_gain=keep_pre_gain)
    if r.audio is not y and r.pre_gain is not y:
        store.drop(y)
    target = r.loudness
    verdict = change.assess(r.audio, mix, steps_done, loudness_gain_db=0.0 if target else r.loudness_gain_db,
                            clip_action=r.clip.action, target_gain_db=target.gain_db if target else None,
                            limiter_db=target.limiter_reduction_db if target else 0.0,
                            separated=plan.mode_used == "stemwise", sr=sr)
    # Each chain's recovery reports, one per segment it was run in (`steps.RECOVERY_BLOCK_S`).
    recovered = {n: recovery.merged(found_) for n, found_ in found.items() if found_}
    return replace(r, steps=steps_done, change=verdict, recovery=recovered), processed


MIX_DC_DONE = "not run again: the input's DC offset and drift were removed when it was loaded"


def _mix_chain(preset: presets.Preset) -> tuple[tuple[steps.Step, ...], tuple[StepOutcome, ...]]:
    """The preset's chain for the mix without its DC steps, and what they did (nothing): the
    input lost its DC offset and drift when it was loaded, and a second pass of the zero-phase
    high-pass would take the music's lowest octave down again (-6 dB at 5 Hz instead of -3)."""
    chain = preset.chain_for(None)
    skipped = tuple(StepOutcome(s.kind, False, MIX_DC_DONE, dc_only=True, where="mix")
                    for s in chain if s.kind in steps.DC_KINDS)
    return tuple(s for s in chain if s.kind not in steps.DC_KINDS), skipped


def _residual(r: Restored, mix: np.ndarray | Signal, asked: bool) -> tuple | None:
    """What the restoration removed or added, when asked: (the result before any loudness-target
    gain, the DC-free input), both at the run's rate and sample-aligned by construction (every
    chain and remix keeps the input's length and timing); written as their difference, block by
    block."""
    if not asked:
        return None
    return (r.pre_gain if r.pre_gain is not None else r.audio, mix)


def step_kinds(preset: presets.Preset) -> tuple[str, ...]:
    """Every step kind the preset uses, mix chain first, in order."""
    chains = (preset.steps, *preset.stem_steps.values())
    return tuple(dict.fromkeys(s.kind for chain in chains for s in chain))


def step_probe(preset: presets.Preset, sr: int = WORK_SR):
    """The router's `Probe` for `preset`: a kind's first step in the chain of that stem (or of
    the mix) says what it would find to act on (`steps.probe`)."""
    def probe(kind: str, x: np.ndarray, stem: str | None, weak: bool = False) -> float | None:
        step = next((s for s in preset.chain_for(stem) if s.kind == kind), None)
        return None if step is None else steps.probe(step, x, sr, weak)

    return probe


def _measure_outputs(panel_in: metrics.MetricPanel, outputs: dict[str, np.ndarray | Signal],
                     ref: np.ndarray | None = None, *, sr: int = WORK_SR, info: audio.AudioInfo | None = None):
    """The metric panel of each output (at `sr`; measured at `metrics.METRIC_SR`) over the
    input's occupied band, and its warnings against the input's panel (after the input's own: a
    truncated file). With `ref` (at `sr`, DC-free) the intrusive scores are added."""
    band = panel_in.bandwidth_hz
    distinct = {id(y): y for y in outputs.values()}  # routed often IS stem-wise or direct: measured once

    def measured(y: np.ndarray | Signal) -> metrics.MetricPanel:
        signal = as_signal(y, sr)
        return metrics.measure_stream(signal.blocks(), sr, signal.channels, band)

    # Side by side: a panel's passes are numpy and FFT work that lets go of the interpreter
    # (two 30 s stereo panels 0.50 s one after the other, 0.28 s on two threads). The scores
    # against a reference one after the other: ViSQOL's library aborts the process when two
    # threads call it at once.
    by_array = dict(zip(distinct, side_by_side(measured, distinct.values())))
    if ref is not None:
        by_array = {key: metrics.with_scores_of(panel, distinct[key], ref, sr) for key, panel in by_array.items()}
    panels = {name: by_array[id(y)] for name, y in outputs.items()}
    about_input = [w for w in [info.truncation_warning() if info else None] if w]
    warnings = {name: about_input + metrics.warnings_for(panel_in, p) for name, p in panels.items()}
    return panels, warnings


def _panel_levels(panel: metrics.MetricPanel | None, y: np.ndarray | Signal, r: Restored,
                  out_sr: int) -> tuple[float, float] | None:
    """The sample peak and loudness of `y`, to be written, from its metric panel when the panel
    measured that very audio (the result itself, at the panel's rate), else None."""
    if panel is None or y is not r.audio or out_sr != metrics.METRIC_SR:
        return None
    return panel.peak_dbfs, panel.loudness_lufs


def _output_audio(r: Restored, input_path: str | Path, info: audio.AudioInfo, output_sr: OutputRate,
                  sr: int = WORK_SR) -> tuple[np.ndarray | Signal, int, str | None]:
    """The result as written: at the run's rate, or back at the input's (`original`; its own
    length), with a note on how it got there. A result that changed nothing beyond DC is the
    input itself, read again at its own rate and DC-free there: converted back, it would lose
    the top of its band to the resampler's passband, twice (`resample.ROUND_TRIP_BAND`)."""
    y, native = r.audio, info.sample_rate
    if output_sr != "original" or native == sr:
        return y, sr, None
    if r.change is not None and not r.change.changed:
        return (native_dc_free(input_path, info),
                native, f"the input itself at its own {native / 1000:g} kHz, DC removed there: nothing else changed")
    note = (f"converted back from {sr / 1000:g} to the input's {native / 1000:g} kHz: its band above "
            f"{ROUND_TRIP_BAND * native / 2000:.1f} kHz is lost to the resampler's passband, there and back")
    if isinstance(y, Signal):
        return Mapped(y, lambda blocks: resampled(blocks, sr, native, y.channels, info.frames),
                      frames=info.frames, sr=native), native, note
    return resample(y, sr, native, frames=info.frames), native, note


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
