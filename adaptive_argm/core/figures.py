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
neither memory nor the PNG grows with the clip. Figures are built with matplotlib's object API
(no pyplot, no global state) and rendered by Agg; files are written atomically.
"""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # matplotlib is imported when a figure is drawn, not with the pipeline
    from matplotlib.figure import Figure

from ..config import COMPARE_MODES, MODE_LABELS
from . import metrics, spectral
from .audio import WORK_SR, atomic_path
from .levels import power_db, rms_dbfs
from .spectral import HOP, N_FFT, N_MELS

SPECTROGRAMS_PNG = "spectrograms.png"
STEMS_PNG = "stems.png"

CUTOFF_COLOUR = "cyan"
"""The dashed line at the cutoff spectral recovery detected."""
DISPLAY_RANGE_DB = 90.0
"""Colour range below the loudest bin of the figure. Wider than the paper metric's 80 dB floor,
so the bottom of that floor is visible, not painted as one flat colour."""
MAX_COLUMNS = 1200
"""Image columns per spectrogram at most: about the pixel width of a panel."""
FREQ_TICKS_HZ = (250, 500, 1000, 2000, 4000, 8000, 16000)
CMAP = "magma"
DPI = 110
PNG_COMPRESS_LEVEL = 3
"""zlib level: 3 encodes the two figures 0.2 s faster than PIL's default 6, files 6 % larger."""
WIDTH_IN = 11.0
PANEL_HEIGHT_IN = 1.75
LINE_IN = 0.2
"""Height of one line of a panel title."""
ROUTER_LINES = 2
ROUTER_WRAP_CHARS = 120
"""The router's reason above each stem row: wrapped to the row's width, at most two lines."""
MARGINS_IN = {"top": 0.5, "bottom": 0.5, "left": 0.75, "right": 1.1, "between_columns": 0.4}
"""Fixed margins: a fixed layout renders in half the time of matplotlib's constrained layout."""
COLOURBAR_IN = 0.9
"""Room for one more colour bar (with its ticks and label) in the right margin."""
TITLE_Y = 1.0
"""Panel titles sit on the top edge. Given explicitly, matplotlib does not measure every axis's
tick labels to move titles clear of them (there are none on top): 0.12 s a figure."""
TITLE_WRAP_CHARS = 60
"""A panel title in a two-column figure wraps at this many characters, so that it stays clear of
the title of the panel beside it (a column holds about 64 characters at 8 or 9 points)."""
TITLE_LINES = 4
"""Lines of a spectrogram panel's title at most: what it is (two), its metrics (two)."""
DIFF_CMAP = "viridis"


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


def _colour_limits(images: list[np.ndarray]) -> tuple[float, float]:
    top = max(float(im.max()) for im in images)
    vmax = 5.0 * math.ceil(top / 5.0)
    return vmax - DISPLAY_RANGE_DB, vmax


def _draw(ax, image: np.ndarray, sr: int, per_column: int, clim: tuple[float, float], cmap: str = CMAP):
    """Draw one `(columns, mels)` image with seconds on x and mel bands on y (`_grid`'s axes)."""
    col_s = per_column * HOP / sr
    left = -HOP / (2.0 * sr)
    return ax.imshow(image.T, origin="lower", aspect="auto", cmap=cmap, vmin=clim[0], vmax=clim[1],
                     interpolation="nearest",
                     extent=(left, left + image.shape[0] * col_s, -0.5, image.shape[1] - 0.5))


def _hz_ticks(ax, sr: int) -> None:
    """Hz labels (`FREQ_TICKS_HZ`) on a mel-band y axis."""
    centres_mel = spectral.hz_to_mel(spectral.mel_frequencies(N_MELS + 2, 0.0, sr / 2.0)[1:-1])
    ticks = [t for t in FREQ_TICKS_HZ if t < sr / 2.0]
    ax.set_yticks(np.interp(spectral.hz_to_mel(np.array(ticks, dtype=float)), centres_mel,
                            np.arange(N_MELS)))
    ax.set_yticklabels([f"{t // 1000}k" if t >= 1000 else str(t) for t in ticks])


def _mel_row(hz: float, sr: int) -> float:
    """Where `hz` falls on `_draw`'s y axis (mel band index, fractional)."""
    centres_mel = spectral.hz_to_mel(spectral.mel_frequencies(N_MELS + 2, 0.0, sr / 2.0)[1:-1])
    return float(np.interp(spectral.hz_to_mel(np.array([hz], dtype=float))[0], centres_mel, np.arange(N_MELS)))


def _cutoff_line(ax, cutoff_hz: float | None, sr: int, label: str) -> None:
    """A dashed line at a detected cutoff, labelled at its right end."""
    if cutoff_hz is None or not 0 < cutoff_hz < sr / 2:
        return
    y = _mel_row(cutoff_hz, sr)
    ax.axhline(y, color=CUTOFF_COLOUR, lw=0.8, ls="--")
    ax.text(0.995, y, f"{label} {cutoff_hz / 1000:.1f} kHz", transform=ax.get_yaxis_transform(), ha="right",
            va="bottom", fontsize=7, color=CUTOFF_COLOUR)


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


def _grid(n_rows: int, n_cols: int, seconds: float, sr: int, title_lines: int, extra_in: float = 0.0,
          colourbars: int = 1):
    """A figure with an `n_rows` x `n_cols` grid of spectrogram axes (one time span of
    `seconds`, one mel scale at `sr`, labelled on the bottom row and in the left column), room
    for `title_lines` of title (plus `extra_in` inches) above each row, and a colour-bar axis
    spanning the grid (`colourbars` > 1: a list of that many, side by side)."""
    m = dict(MARGINS_IN, right=MARGINS_IN["right"] + COLOURBAR_IN * (colourbars - 1))
    title_in = LINE_IN * title_lines + 0.1 + extra_in
    height_in = m["top"] + m["bottom"] + n_rows * (PANEL_HEIGHT_IN + title_in)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(WIDTH_IN, height_in))
    left, right = m["left"] / WIDTH_IN, 1.0 - m["right"] / WIDTH_IN
    bottom, top = m["bottom"] / height_in, 1.0 - (m["top"] + title_in) / height_in
    col_w_in = (right - left) * WIDTH_IN / n_cols
    gs = fig.add_gridspec(n_rows, n_cols, left=left, right=right, bottom=bottom, top=top,
                          hspace=title_in / PANEL_HEIGHT_IN, wspace=m["between_columns"] / col_w_in)
    axes = gs.subplots(squeeze=False)
    from matplotlib.ticker import NullLocator

    # Ticks only where they are labelled: matplotlib builds and draws every tick of every axis,
    # unlabelled ones too (shared axes hid their labels and kept them: 0.2 s a figure).
    for (row, col), ax in np.ndenumerate(axes):
        ax.tick_params(labelsize=8)
        ax.set_xlim(0.0, seconds)
        if row < n_rows - 1:
            ax.xaxis.set_major_locator(NullLocator())
        if col == 0:
            _hz_ticks(ax, sr)
        else:
            ax.yaxis.set_major_locator(NullLocator())
    caxes = [fig.add_axes((right + (0.12 + COLOURBAR_IN * i) / WIDTH_IN, bottom, 0.14 / WIDTH_IN, top - bottom))
             for i in range(colourbars)]
    return fig, axes, caxes[0] if colourbars == 1 else caxes


def _colourbar(fig, im, cax, label: str = "mel power, dB re 1.0 (absolute; one scale for every panel)"):
    cb = fig.colorbar(im, cax=cax)
    cb.set_label(label, fontsize=8)
    cb.ax.tick_params(labelsize=8)
    return cb


def _suptitle(fig: Figure, title: str, sr: int, per_column: int) -> None:
    """The figure's title, and under it how the spectrograms were computed."""
    how = (f"n_fft {N_FFT}, hop {HOP}, {N_MELS} mels, "
           f"{sr / 1000:g} kHz mono downmix")
    if per_column > 1:
        how += f"; each column = mean power of {per_column} frames ({per_column * HOP / sr:.2f} s)"
    top = 1.0 - 0.1 / fig.get_figheight()
    fig.text(0.5, top, title, ha="center", va="top", fontsize=10)
    fig.text(0.5, top - 0.2 / fig.get_figheight(), how, ha="center", va="top", fontsize=8, color="0.3")


def _save(fig: Figure, path: Path) -> Path:
    """Render to a temporary PNG in the destination folder, then rename it into place. The figure
    is not cleared afterwards: clearing rebuilt every axis (0.12 s a figure) only for the
    garbage collector to drop it."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI, pil_kwargs={"compress_level": PNG_COMPRESS_LEVEL})
    return path


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


def spectrograms_figure(result, out_path: str | Path, sr: int = WORK_SR) -> Path:
    """Input / direct / stem-wise / routed mel spectrograms, one colour scale, one time axis
    (the stem-wise panel only when the clip was separated), each result beside the spectrogram
    of what it changed (output minus input; see the module doc).
    A dashed line marks the cutoff spectral recovery detected: "cut at" on the input, "recovered
    above" on a result that got a band back."""
    names = ["input"] + [m for m in COMPARE_MODES if m in result.outputs]
    signals = {"input": result.mix, **{m: result.outputs[m].audio for m in names[1:]}}
    per_column = frames_per_column(result.mix.shape[-1])
    by_array: dict[int, np.ndarray] = {}  # routed often IS the stem-wise or direct result
    diffs: dict[int, np.ndarray | None] = {}
    for m in names:
        y = signals[m]
        if id(y) not in by_array:
            by_array[id(y)] = mel_image_db(y, sr, per_column)
        if m != "input" and id(y) not in diffs:
            r = result.outputs[m]
            unchanged = r.change is not None and not r.change.changed
            before = r.pre_gain if r.pre_gain is not None else y
            diffs[id(y)] = None if unchanged else difference_image_db(before, result.mix, sr, per_column)
    images = {n: by_array[id(signals[n])] for n in names}
    differences = {n: diffs[id(signals[n])] for n in names[1:]}
    clim = _colour_limits(list(images.values()))
    drawn = [d for d in differences.values() if d is not None]
    diff_clim = _colour_limits(drawn) if drawn else clim

    cutoffs = _recovery_cutoffs(result)
    fig, axes, (cax, diff_cax) = _grid(len(names), 2, result.mix.shape[-1] / sr, sr, title_lines=TITLE_LINES,
                                       colourbars=2)
    im = diff_im = None
    for row, n in zip(axes, names):
        im = _draw(row[0], images[n], sr, per_column, clim)
        row[0].set_title(_panel_title(n, result), fontsize=8, loc="left", y=TITLE_Y)
        row[0].set_ylabel("Hz (mel scale)", fontsize=8)
        cutoff, acted = cutoffs.get(n, (None, False))
        if n == "input" or acted:
            _cutoff_line(row[0], cutoff, sr, "cut at" if n == "input" else "recovered above")
        if n == "input":
            row[1].set_axis_off()
            row[1].text(0.0, 0.5, "right: each result minus the input\n(mel spectrogram of the difference signal,\n"
                        "a colour scale of its own: see each title for its level)", fontsize=8, va="center",
                        transform=row[1].transAxes)
            continue
        row[1].set_title(_difference_title(n, result.outputs[n]), fontsize=8, loc="left", y=TITLE_Y)
        if differences[n] is None:
            row[1].set_facecolor("0.92")
            row[1].text(0.5, 0.5, "unchanged: nothing to show", ha="center", va="center", fontsize=9,
                        transform=row[1].transAxes)
        else:
            diff_im = _draw(row[1], differences[n], sr, per_column, diff_clim, cmap=DIFF_CMAP)
    for ax in axes[-1]:
        ax.set_xlabel("time (s)", fontsize=8)
    _colourbar(fig, im, cax)
    if diff_im is not None:
        _colourbar(fig, diff_im, diff_cax, "mel power of output - input, dB re 1.0 (own scale)")
    else:
        diff_cax.set_axis_off()
    _suptitle(fig, f"Mel spectrograms, preset {result.preset.name}; right: what each result changed", sr, per_column)
    return _save(fig, Path(out_path))


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


def stems_figure(views: dict[str, StemView], plan, separator: dict, preset_name: str, n_samples: int,
                 out_path: str | Path, sr: int = WORK_SR) -> Path | None:
    """Each stem before and after restoration (`views`, by stem), a row per stem titled with the
    decision and reason of the router's `plan` (a `route.RoutePlan`); None (nothing written) when
    the clip was not separated. `n_samples`: the clip's length. Needs nothing that measuring or
    writing the results makes, so `compare` draws it while they run."""
    if not views:
        return None
    decisions = {s.name: s for s in plan.stems}
    names = list(views)
    per_column = frames_per_column(n_samples)
    before = {n: v.before for n, v in views.items()}
    after = {n: v.after for n, v in views.items() if v.after is not None}
    clim = _colour_limits(list(before.values()) + list(after.values()))

    fig, axes, cax = _grid(len(names), 2, n_samples / sr, sr, title_lines=2 + ROUTER_LINES, extra_in=0.2)
    im = None
    for row, n in zip(axes, names):
        d = decisions.get(n)
        decision = d.decision if d else "unknown"
        router = f"{n}: router {decision}" + (f", {d.reason}" if d else "")
        top_in = row[0].get_position().y1 * fig.get_figheight() + 2 * LINE_IN + 0.12
        fig.text(row[0].get_position().x0, top_in / fig.get_figheight(),
                 "\n".join(textwrap.wrap(router, ROUTER_WRAP_CHARS, max_lines=ROUTER_LINES, placeholder=" ...")),
                 ha="left", va="bottom", fontsize=9, fontweight="bold")
        level = f"\n{d.rms_dbfs:.1f} dBFS ({d.rel_db:+.1f} dB re mix)" if d else ""
        row[0].set_title(f"before: {stem_source(separator)}{level}", fontsize=9, loc="left", y=TITLE_Y)
        im = _draw(row[0], before[n], sr, per_column, clim)
        row[0].set_ylabel("Hz (mel scale)", fontsize=8)
        if n in after:
            _draw(row[1], after[n], sr, per_column, clim)
            row[1].set_title(_after_title(views[n], decision, preset_name),
                             fontsize=9, loc="left", y=TITLE_Y)
        else:
            row[1].set_facecolor("0.92")
            row[1].text(0.5, 0.5, "\n".join(textwrap.wrap(f"skipped: {d.reason if d else 'not processed'}", 60)),
                        ha="center", va="center", fontsize=9, transform=row[1].transAxes)
            row[1].set_title("after", fontsize=9, loc="left", y=TITLE_Y)
    for ax in axes[-1]:
        ax.set_xlabel("time (s)", fontsize=8)
    _colourbar(fig, im, cax)
    _suptitle(fig, f"Stems before / after restoration, preset {preset_name} "
                   f"(routed used {plan.mode_used})", sr, per_column)
    return _save(fig, Path(out_path))


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
