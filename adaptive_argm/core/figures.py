"""Figures for `compare`: mel spectrograms of the input and of each result on one absolute colour
scale, each result beside what it changed (`spectrograms.png`), and each stem before and after
restoration (`stems.png`).

The difference panel is the mel spectrogram of the difference signal, output minus input (the
result before any loudness-target gain, as `--residual` writes it), in dB re 1.0 on a colour
scale of its own shared by every difference panel. Chosen over the dB difference of the two
spectrograms because it shows small changes at their own level: hiss removed 40 dB under a
chord changes that chord's bins by 0.0004 dB, invisible as a ratio, but is plain as a
difference; and a ratio flickers by tens of dB in near-empty bins where nothing audible
changed. Each panel's title gives the difference's level re the input, so the own colour scale
cannot make a small change look large; a result that changed nothing gets no image, only that
sentence. A band added by spectral recovery shows above a dashed line at
the detected cutoff.

The method's Figure 1 shows each spectrogram against its own loudest bin; here every panel of a
figure shares one absolute scale (mel power re 1.0), so a louder or quieter result looks louder
or quieter, and a bass boost shows as a brighter bottom rather than a darker everything else.
Spectrograms use the metric panel's settings (n_fft 2048, hop 512, 128 mels, mono downmix at the
working rate). Long clips are drawn with each image column the mean power of several frames, so
neither memory nor the PNG grows with the clip. This module computes what the figures show
(images and text, `plots.SpectrogramsFigure` and `plots.StemsFigure`); `plots` draws them, in this
process or in a drawing process of its own (`drawing`, as `compare` does).
"""

from __future__ import annotations

import math
import threading
import textwrap
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np

from ..config import COMPARE_MODES, MODE_LABELS
from . import metrics, spectral
from .audio import WORK_SR
from .levels import power_db, rms_dbfs
from .plots import TITLE_LINES, MelAxes, SpectrogramsFigure, StemsFigure
from .spectral import HOP, N_FFT, N_MELS
from .threads import side_by_side

SPECTROGRAMS_PNG = "spectrograms.png"
STEMS_PNG = "stems.png"

MAX_COLUMNS = 1200
"""Image columns per spectrogram at most: about the pixel width of a panel."""
FREQ_TICKS_HZ = (250, 500, 1000, 2000, 4000, 8000, 16000)
TITLE_WRAP_CHARS = 60
"""A panel title in a two-column figure wraps at this many characters, so that it stays clear of
the title of the panel beside it (a column holds about 64 characters at 8 or 9 points)."""


# --- spectrogram images ---------------------------------------------------------------------


def frames_per_column(n_samples: int, max_columns: int = MAX_COLUMNS) -> int:
    """How many analysis frames each image column averages so that a clip of `n_samples` fits in
    `max_columns` columns (1 for any clip shorter than about 14 s)."""
    n_frames = spectral.centred_grid(n_samples, HOP, N_FFT)[1]
    return max(1, math.ceil(n_frames / max_columns))


def mel_image_db(y: np.ndarray, sr: int, per_column: int = 1) -> np.ndarray:
    """Mel spectrogram in dB re 1.0 (no max reference, no floor) of the mono downmix of `y`
    (`(channels, samples)` or 1-D), shape `(columns, N_MELS)` float32 (time first, as every
    spectrogram here); each column is the mean mel power of `per_column` consecutive frames
    (librosa's centred framing, zero padded). Works chunk by chunk (`spectral.power_frames`)."""
    basis_t = spectral.mel_filterbank(sr, N_FFT, N_MELS).T
    step = per_column * max(1, spectral.CHUNK_FRAMES // per_column)  # whole columns per chunk
    columns = []
    for _, power in spectral.power_frames(y, chunk_frames=step):
        mel = power @ basis_t
        if per_column > 1:
            starts = np.arange(0, mel.shape[0], per_column)
            mel = np.add.reduceat(mel, starts, axis=0) / np.diff(np.append(starts, mel.shape[0]))[:, np.newaxis]
        columns.append(mel)
    return power_db(np.concatenate(columns)).astype(np.float32)


def _recovery_cutoffs(result) -> dict[str, tuple[float | None, bool]]:
    """By panel: the lowest cutoff spectral recovery detected in that result's chains, and
    whether it added a band there; the input panel takes the direct chain's detection."""
    found: dict[str, tuple[float | None, bool]] = {}
    for name, restored in result.outputs.items():
        reports = getattr(restored, "recovery", {}) or {}
        walls = [r.cutoff_hz for r in reports.values() if r.kind == "brick-wall" and r.cutoff_hz]
        found[name] = (min(walls) if walls else None, any(r.acted for r in reports.values()))
    direct = getattr(result.outputs.get("direct"), "recovery", {}) or {}
    if "mix" in direct and direct["mix"].kind == "brick-wall":
        found["input"] = (direct["mix"].cutoff_hz, False)
    return found


# --- the two figures ------------------------------------------------------------------------


def _panel_title(name: str, result) -> str:
    """What the panel is (and the mode it used), then its paper metric and loudness; wrapped."""
    if name == "input":
        info = result.input
        what = f"input: {Path(info.path).name} ({info.sample_rate / 1000:g} kHz, {info.channels} ch)"
    else:
        why = {"routed": f": {result.plan.reason}",
               "stemwise": f": all {len(result.stem_names)} stems through the chain"}.get(name, "")
        what = f"{MODE_LABELS[name]} (mode_used {result.outputs[name].mode}{why})"
    what = "\n".join(textwrap.wrap(what, TITLE_WRAP_CHARS, max_lines=2, placeholder=" ..."))
    panel = result.metrics.get(name)
    if panel is None:
        return what
    saturated = (f" (saturated: {panel.floor_fraction:.0%} on the floor)"
                 if panel.floor_fraction >= metrics.FLOOR_SATURATION_FRACTION else "")
    scores = (f"p25_paper {panel.p25_paper_db:.2f} dB{saturated}; {panel.loudness_lufs:.1f} LUFS; "
              f"floor {panel.noise_floor_db:.1f} dB")
    return "\n".join([what, *textwrap.wrap(scores, TITLE_WRAP_CHARS, max_lines=TITLE_LINES - 2, placeholder=" ...")])


def difference_image_db(y: np.ndarray, x: np.ndarray, sr: int, per_column: int = 1) -> np.ndarray:
    """`mel_image_db` of the mono downmix of `y - x` (both `(channels, samples)`, one shape),
    built channel by channel (no full-size multichannel difference)."""
    d = np.subtract(y[0], x[0], dtype=np.float32)
    for c in range(1, y.shape[0]):
        d += y[c]
        d -= x[c]
    if y.shape[0] > 1:
        d /= np.float32(y.shape[0])
    return mel_image_db(d, sr, per_column)


def _difference_title(name: str, restored) -> str:
    """What a difference panel shows: the result minus the input, and how large that is."""
    c = restored.change
    before = " before the loudness target's gain" if restored.pre_gain is not None else ""
    what = f"{MODE_LABELS[name]} - input{before}"
    if c is None:
        return what
    if not c.changed:
        return f"{what}\nno difference (max |difference| {c.max_abs_diff:.1g}): unchanged"
    return f"{what}\ndifference {c.difference_db:.1f} dB re input; max |difference| {c.max_abs_diff:.2g}"


def mel_axes(sr: int, per_column: int, n_samples: int) -> MelAxes:
    """The time and mel axes of a figure's spectrograms at `sr`, `per_column` frames a column."""
    ticks = [t for t in FREQ_TICKS_HZ if t < sr / 2.0]
    rows = _mel_rows(ticks, sr)
    how = f"n_fft {N_FFT}, hop {HOP}, {N_MELS} mels, {sr / 1000:g} kHz mono downmix"
    if per_column > 1:
        how += f"; each column = mean power of {per_column} frames ({per_column * HOP / sr:.2f} s)"
    return MelAxes(n_samples / sr, per_column * HOP / sr, -HOP / (2.0 * sr),
                   tuple((float(r), f"{t // 1000}k" if t >= 1000 else str(t)) for r, t in zip(rows, ticks)), how)


def _mel_rows(hz: list[float], sr: int) -> np.ndarray:
    """Where each frequency in `hz` falls on a spectrogram's y axis (mel band index, fractional)."""
    centres_mel = spectral.hz_to_mel(spectral.mel_frequencies(N_MELS + 2, 0.0, sr / 2.0)[1:-1])
    return np.interp(spectral.hz_to_mel(np.array(hz, dtype=float)), centres_mel, np.arange(N_MELS))


def _cutoff_lines(result, names: list[str], sr: int) -> dict[str, tuple[float, str]]:
    """The dashed lines at the cutoff spectral recovery detected: "cut at" on the input,
    "recovered above" on a result that got a band back."""
    lines = {}
    for n, (cutoff, acted) in _recovery_cutoffs(result).items():
        if n in names and (n == "input" or acted) and cutoff is not None and 0 < cutoff < sr / 2:
            label = f"{'cut at' if n == 'input' else 'recovered above'} {cutoff / 1000:.1f} kHz"
            lines[n] = (float(_mel_rows([cutoff], sr)[0]), label)
    return lines


def spectrograms_of(result, sr: int = WORK_SR) -> SpectrogramsFigure:
    """Input / direct / stem-wise / routed mel spectrograms, one colour scale, one time axis
    (the stem-wise panel only when the clip was separated), each result beside the spectrogram
    of what it changed (output minus input; see the module doc), for a `pipeline.CompareResult`
    (its files need not be written yet)."""
    names = ["input"] + [m for m in COMPARE_MODES if m in result.outputs]
    signals = {"input": result.mix, **{m: result.outputs[m].audio for m in names[1:]}}
    per_column = frames_per_column(result.mix.shape[-1])
    # Each distinct array once (routed often IS the stem-wise or direct result), and the images
    # side by side: independent FFT and matrix passes that let go of the interpreter.
    # An unchanged result has no difference image.
    images: dict[tuple[str, int], Callable[[], np.ndarray]] = {}
    for m in names:
        images.setdefault(("mel", id(signals[m])), lambda y=signals[m]: mel_image_db(y, sr, per_column))
    for m in names[1:]:
        r = result.outputs[m]
        if not (r.change is not None and not r.change.changed):
            before = r.pre_gain if r.pre_gain is not None else signals[m]
            images.setdefault(("diff", id(signals[m])),
                              lambda b=before: difference_image_db(b, result.mix, sr, per_column))
    made = dict(zip(images, side_by_side(lambda make: make(), images.values())))
    return SpectrogramsFigure(
        tuple(names), {n: made[("mel", id(signals[n]))] for n in names},
        {n: made.get(("diff", id(signals[n]))) for n in names[1:]},
        {n: _panel_title(n, result) for n in names}, {n: _difference_title(n, result.outputs[n]) for n in names[1:]},
        _cutoff_lines(result, names, sr), mel_axes(sr, per_column, result.mix.shape[-1]),
        f"Mel spectrograms, preset {result.preset.name}; right: what each result changed")


def spectrograms_figure(result, out_path: str | Path, sr: int = WORK_SR) -> Path:
    """`spectrograms_of(result)`, drawn into `out_path` (PNG)."""
    return spectrograms_of(result, sr).draw(out_path)


@dataclass(frozen=True)
class StemView:
    """What `stems.png` shows of one stem, taken while the audio exists (`compare` restores the
    stems in place): mel images (`mel_image_db`) and RMS levels before and, when the stem was
    restored, after."""

    before: np.ndarray
    before_rms_dbfs: float
    after: np.ndarray | None = None
    after_rms_dbfs: float | None = None

    @classmethod
    def of(cls, stem: np.ndarray, sr: int = WORK_SR) -> "StemView":
        return cls(mel_image_db(stem, sr, frames_per_column(stem.shape[-1])), rms_dbfs(stem))

    def restored(self, y: np.ndarray, sr: int = WORK_SR) -> "StemView":
        after = StemView.of(y, sr)
        return StemView(self.before, self.before_rms_dbfs, after.before, after.before_rms_dbfs)


class StemViews:
    """The stems figure's `StemView`s of `names`, taken as `remix.process_stems` shows it each
    stem (a `remix.StemWatch`): before its chain and after, on the thread that runs it; the
    stems no chain runs on are handed to `before` by the caller. Once every stem has its view
    and each of `processed` its "after" image, `on_complete` gets them all, in `names`' order,
    on the thread that took the last (the figure can be drawn while the remix is finished)."""

    def __init__(self, sr: int, names: tuple[str, ...], processed: tuple[str, ...] = (),
                 on_complete: Callable[[dict[str, StemView]], None] | None = None):
        self.sr, self.names, self.views = sr, names, {}
        self._waiting = set(names) | {(n, "after") for n in processed}
        self._lock = threading.Lock()
        self._on_complete = on_complete

    def before(self, name: str, stem: np.ndarray) -> None:
        self._took(name, StemView.of(stem, self.sr), name)

    def after(self, name: str, stem: np.ndarray, changed: bool = True) -> None:
        view = self.views[name]
        # A stem its chain gave back bit for bit has the same image after as before.
        after = view.restored(stem, self.sr) if changed else replace(view, after=view.before,
                                                                      after_rms_dbfs=view.before_rms_dbfs)
        self._took(name, after, (name, "after"))

    def ordered(self) -> dict[str, StemView]:
        return {n: self.views[n] for n in self.names}

    def _took(self, name: str, view: StemView, what) -> None:
        with self._lock:
            self.views[name] = view
            self._waiting.discard(what)
            complete = not self._waiting and self._on_complete is not None
            if complete:
                on_complete, self._on_complete = self._on_complete, None
        if complete:
            on_complete(self.ordered())


def _after_title(view: StemView, decision: str, preset_name: str) -> str:
    before, after = view.before_rms_dbfs, view.after_rms_dbfs
    level = f"{after:.1f} dBFS ({after - before:+.1f} dB)"
    if decision == "process":
        used = "used by stem-wise and routed"
    elif decision == "skip":
        used = "used by forced stem-wise only; routed skips this stem"
    else:
        used = "used by forced stem-wise only; routed restores the mix directly"
    return f"after: restored ({preset_name}), {level}\n{used}"


def stem_source(separator: dict) -> str:
    """Where the stems came from, as the stems figure labels them: the user's own stems (a stems
    folder, a prompt set's stems) or a separator's output."""
    if separator.get("name") == "stems":
        return "your stems"
    model = separator.get("model")
    return f"separated ({separator.get('name')}{' ' + model if model else ''})"


def stems_of(views: dict[str, StemView], plan, separator: dict, preset_name: str, n_samples: int,
             sr: int = WORK_SR) -> StemsFigure | None:
    """Each stem before and after restoration (`views`, by stem), a row per stem titled with the
    decision and reason of the router's `plan` (a `route.RoutePlan`); None when the clip was not
    separated. `n_samples`: the clip's length. Needs nothing that measuring or writing the
    results makes."""
    if not views:
        return None
    decisions = {s.name: s for s in plan.stems}
    router, before_titles, after_titles = {}, {}, {}
    for n, view in views.items():
        d = decisions.get(n)
        decision = d.decision if d else "unknown"
        router[n] = f"{n}: router {decision}" + (f", {d.reason}" if d else "")
        level = f"\n{d.rms_dbfs:.1f} dBFS ({d.rel_db:+.1f} dB re mix)" if d else ""
        before_titles[n] = f"before: {stem_source(separator)}{level}"
        after_titles[n] = (_after_title(view, decision, preset_name) if view.after is not None
                           else f"skipped: {d.reason if d else 'not processed'}")
    return StemsFigure(tuple(views), {n: v.before for n, v in views.items()},
                       {n: v.after for n, v in views.items() if v.after is not None}, router, before_titles,
                       after_titles, mel_axes(sr, frames_per_column(n_samples), n_samples),
                       f"Stems before / after restoration, preset {preset_name} (routed used {plan.mode_used})")


def stems_figure(views: dict[str, StemView], plan, separator: dict, preset_name: str, n_samples: int,
                 out_path: str | Path, sr: int = WORK_SR) -> Path | None:
    """`stems_of(...)`, drawn into `out_path` (PNG); None (nothing written) without stems."""
    figure = stems_of(views, plan, separator, preset_name, n_samples, sr)
    return figure.draw(out_path) if figure is not None else None


def figure_paths(result, out_dir: str | Path) -> list[Path]:
    """The files `compare_figures` writes for `result` (the stems figure only with stems)."""
    out_dir = Path(out_dir)
    return [out_dir / SPECTROGRAMS_PNG] + ([out_dir / STEMS_PNG] if result.stem_views else [])


def compare_figures(result, out_dir: str | Path) -> list[Path]:
    """Write `spectrograms.png` and, when the clip was separated, `stems.png` into `out_dir`
    for a `pipeline.CompareResult`; returns the paths written. A `stems.png` left from an
    earlier comparison is removed when this one has no stems, so the folder never shows
    stems that this result does not have."""
    out_dir = Path(out_dir)
    sr = getattr(result, "sr", WORK_SR)
    written = [spectrograms_figure(result, out_dir / SPECTROGRAMS_PNG, sr)]
    stems = stems_figure(result.stem_views, result.plan, result.separator, result.preset.name, result.mix.shape[-1],
                         out_dir / STEMS_PNG, sr)
    if stems is not None:
        written.append(stems)
    else:
        (out_dir / STEMS_PNG).unlink(missing_ok=True)
    return written
