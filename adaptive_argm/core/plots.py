"""`compare`'s two figures drawn with matplotlib from plain data: images and text that
`figures` computes from a comparison. Kept apart so that a process that only draws (`drawing`)
imports numpy and matplotlib, not the pipeline.

Figures are built with matplotlib's object API (no pyplot, no global state), on a fixed layout,
and rendered by Agg; files are written atomically.
"""

from __future__ import annotations

import io
import math
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .interrupts import atomic_path

if TYPE_CHECKING:  # matplotlib is imported when a figure is drawn, not with the pipeline
    from matplotlib.figure import Figure

CUTOFF_COLOUR = "cyan"
"""The dashed line at the cutoff spectral recovery detected."""
DISPLAY_RANGE_DB = 90.0
"""Colour range below the loudest bin of the figure. Wider than the paper metric's 80 dB floor,
so the bottom of that floor is visible, not painted as one flat colour."""
CMAP = "magma"
DIFF_CMAP = "viridis"
DPI = 110
PNG_COMPRESS_LEVEL = 1
"""zlib level: 3 encoded the two figures 0.2 s faster than PIL's default 6 (files 6 % larger), and
1 another 0.16 s faster than 3 (files 3-5 % larger), time that `compare`'s drawing process takes
from the measuring and writing beside it on two cores."""
WIDTH_IN = 11.0
PANEL_HEIGHT_IN = 1.75
LINE_IN = 0.2
"""Height of one line of a panel title."""
TITLE_LINES = 4
"""Lines of a spectrogram panel's title at most: what it is (two), its metrics (two)."""
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


@dataclass(frozen=True)
class MelAxes:
    """The axes every spectrogram of a figure shares: time, and mel bands labelled in Hz."""

    seconds: float
    column_s: float
    """Seconds per image column."""
    first_s: float
    """Where the first column's centre falls (centred frames: half a hop before 0)."""
    hz_ticks: tuple[tuple[float, str], ...]
    """(mel band index, fractional; label) for the labelled frequencies."""
    how: str
    """How the spectrograms were computed, printed under the figure's title."""


@dataclass(frozen=True)
class SpectrogramsFigure:
    """`spectrograms.png`: a row per signal (`input`, then each result), its mel spectrogram on
    one absolute colour scale, and beside each result the spectrogram of what it changed on a
    scale of its own (see `figures`)."""

    names: tuple[str, ...]
    images: dict[str, np.ndarray]
    """By row: a `(columns, mels)` image in dB."""
    differences: dict[str, np.ndarray | None]
    """By result row: the difference's image; None when the result changed nothing."""
    titles: dict[str, str]
    difference_titles: dict[str, str]
    cutoffs: dict[str, tuple[float, str]]
    """By row: a dashed line at a detected cutoff (mel band index; its label)."""
    axes: MelAxes
    title: str

    def draw(self, out_path: str | Path) -> Path:
        """Render to `out_path` (PNG, written atomically)."""
        clim = _colour_limits(list(self.images.values()))
        drawn = [d for d in self.differences.values() if d is not None]
        diff_clim = _colour_limits(drawn) if drawn else clim
        fig, axes, (cax, diff_cax) = _grid(len(self.names), 2, self.axes, title_lines=TITLE_LINES, colourbars=2)
        im = diff_im = None
        for row, n in zip(axes, self.names):
            im = _image(row[0], self.images[n], self.axes, clim)
            row[0].set_title(self.titles[n], fontsize=8, loc="left", y=TITLE_Y)
            row[0].set_ylabel("Hz (mel scale)", fontsize=8)
            if n in self.cutoffs:
                _cutoff_line(row[0], *self.cutoffs[n])
            if n == "input":
                row[1].set_axis_off()
                row[1].text(0.0, 0.5, "right: each result minus the input\n(mel spectrogram of the difference "
                            "signal,\na colour scale of its own: see each title for its level)", fontsize=8,
                            va="center", transform=row[1].transAxes)
                continue
            row[1].set_title(self.difference_titles[n], fontsize=8, loc="left", y=TITLE_Y)
            if self.differences[n] is None:
                _empty(row[1], "unchanged: nothing to show")
            else:
                diff_im = _image(row[1], self.differences[n], self.axes, diff_clim, cmap=DIFF_CMAP)
        for ax in axes[-1]:
            ax.set_xlabel("time (s)", fontsize=8)
        _colourbar(fig, im, cax)
        if diff_im is not None:
            _colourbar(fig, diff_im, diff_cax, "mel power of output - input, dB re 1.0 (own scale)")
        else:
            diff_cax.set_axis_off()
        _suptitle(fig, self.title, self.axes.how)
        return _save(fig, Path(out_path))


@dataclass(frozen=True)
class StemsFigure:
    """`stems.png`: a row per stem, before and after restoration on one colour scale, under the
    router's decision and reason."""

    names: tuple[str, ...]
    before: dict[str, np.ndarray]
    after: dict[str, np.ndarray]
    """By stem, for the stems that were restored."""
    router: dict[str, str]
    before_titles: dict[str, str]
    after_titles: dict[str, str]
    """By stem: the title of its "after" panel, or why it has no image."""
    axes: MelAxes
    title: str

    def draw(self, out_path: str | Path) -> Path:
        """Render to `out_path` (PNG, written atomically)."""
        clim = _colour_limits(list(self.before.values()) + list(self.after.values()))
        fig, axes, cax = _grid(len(self.names), 2, self.axes, title_lines=2 + ROUTER_LINES, extra_in=0.2)
        im = None
        for row, n in zip(axes, self.names):
            top_in = row[0].get_position().y1 * fig.get_figheight() + 2 * LINE_IN + 0.12
            fig.text(row[0].get_position().x0, top_in / fig.get_figheight(),
                     "\n".join(textwrap.wrap(self.router[n], ROUTER_WRAP_CHARS, max_lines=ROUTER_LINES,
                                             placeholder=" ...")),
                     ha="left", va="bottom", fontsize=9, fontweight="bold")
            row[0].set_title(self.before_titles[n], fontsize=9, loc="left", y=TITLE_Y)
            im = _image(row[0], self.before[n], self.axes, clim)
            row[0].set_ylabel("Hz (mel scale)", fontsize=8)
            if n in self.after:
                _image(row[1], self.after[n], self.axes, clim)
                row[1].set_title(self.after_titles[n], fontsize=9, loc="left", y=TITLE_Y)
            else:
                _empty(row[1], "\n".join(textwrap.wrap(self.after_titles[n], 60)))
                row[1].set_title("after", fontsize=9, loc="left", y=TITLE_Y)
        for ax in axes[-1]:
            ax.set_xlabel("time (s)", fontsize=8)
        _colourbar(fig, im, cax)
        _suptitle(fig, self.title, self.axes.how)
        return _save(fig, Path(out_path))


def warm_up() -> None:
    """Draw a small figure of the same make into memory: the first figure a process draws pays
    for loading fonts, colour maps and the PNG encoder."""
    axes = MelAxes(1.0, 0.1, 0.0, ((10.0, "1k"),), "warm-up")
    image = np.zeros((10, 16), dtype=np.float32)
    fig, grid, cax = _grid(1, 2, axes, title_lines=2)
    im = _image(grid[0, 0], image, axes, (-90.0, 0.0))
    _image(grid[0, 1], image, axes, (-90.0, 0.0), cmap=DIFF_CMAP)
    grid[0, 0].set_title("warm-up", fontsize=8, loc="left", y=TITLE_Y)
    fig.text(0.1, 0.9, "warm-up", fontsize=9, fontweight="bold")
    _colourbar(fig, im, cax)
    _suptitle(fig, "warm-up", axes.how)
    _png(fig, io.BytesIO())


# --- pieces -------------------------------------------------------------------------------------


def _colour_limits(images: list[np.ndarray]) -> tuple[float, float]:
    top = max(float(im.max()) for im in images)
    vmax = 5.0 * math.ceil(top / 5.0)
    return vmax - DISPLAY_RANGE_DB, vmax


def _image(ax, image: np.ndarray, axes: MelAxes, clim: tuple[float, float], cmap: str = CMAP):
    """Draw one `(columns, mels)` image with seconds on x and mel bands on y."""
    return ax.imshow(image.T, origin="lower", aspect="auto", cmap=cmap, vmin=clim[0], vmax=clim[1],
                     interpolation="nearest",
                     extent=(axes.first_s, axes.first_s + image.shape[0] * axes.column_s, -0.5,
                             image.shape[1] - 0.5))


def _empty(ax, text: str) -> None:
    """A panel with no image: grey, and why in its middle."""
    ax.set_facecolor("0.92")
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=9, transform=ax.transAxes)


def _cutoff_line(ax, row: float, label: str) -> None:
    """A dashed line at a detected cutoff, labelled at its right end."""
    ax.axhline(row, color=CUTOFF_COLOUR, lw=0.8, ls="--")
    ax.text(0.995, row, label, transform=ax.get_yaxis_transform(), ha="right", va="bottom", fontsize=7,
            color=CUTOFF_COLOUR)


def _grid(n_rows: int, n_cols: int, mel: MelAxes, title_lines: int, extra_in: float = 0.0, colourbars: int = 1):
    """A figure with an `n_rows` x `n_cols` grid of spectrogram axes (`mel`'s, labelled on the
    bottom row and in the left column), room for `title_lines` of title (plus `extra_in`
    inches) above each row, and a colour-bar axis spanning the grid (`colourbars` > 1: a list
    of that many, side by side)."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import NullLocator

    m = dict(MARGINS_IN, right=MARGINS_IN["right"] + COLOURBAR_IN * (colourbars - 1))
    title_in = LINE_IN * title_lines + 0.1 + extra_in
    height_in = m["top"] + m["bottom"] + n_rows * (PANEL_HEIGHT_IN + title_in)
    fig = Figure(figsize=(WIDTH_IN, height_in))
    left, right = m["left"] / WIDTH_IN, 1.0 - m["right"] / WIDTH_IN
    bottom, top = m["bottom"] / height_in, 1.0 - (m["top"] + title_in) / height_in
    col_w_in = (right - left) * WIDTH_IN / n_cols
    gs = fig.add_gridspec(n_rows, n_cols, left=left, right=right, bottom=bottom, top=top,
                          hspace=title_in / PANEL_HEIGHT_IN, wspace=m["between_columns"] / col_w_in)
    axes = gs.subplots(squeeze=False)
    # Ticks only where they are labelled: matplotlib builds and draws every tick of every axis,
    # unlabelled ones too (shared axes hid their labels and kept them: 0.2 s a figure).
    for (row, col), ax in np.ndenumerate(axes):
        ax.tick_params(labelsize=8)
        ax.set_xlim(0.0, mel.seconds)
        if row < n_rows - 1:
            ax.xaxis.set_major_locator(NullLocator())
        if col == 0:
            ax.set_yticks([t for t, _ in mel.hz_ticks])
            ax.set_yticklabels([label for _, label in mel.hz_ticks])
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


def _suptitle(fig: Figure, title: str, how: str) -> None:
    """The figure's title, and under it how the spectrograms were computed."""
    top = 1.0 - 0.1 / fig.get_figheight()
    fig.text(0.5, top, title, ha="center", va="top", fontsize=10)
    fig.text(0.5, top - 0.2 / fig.get_figheight(), how, ha="center", va="top", fontsize=8, color="0.3")


def _save(fig: Figure, path: Path) -> Path:
    """Render to a temporary PNG in the destination folder, then rename it into place. The figure
    is not cleared afterwards: clearing rebuilt every axis (0.12 s a figure) only for the
    garbage collector to drop it."""
    with atomic_path(path) as tmp:
        _png(fig, tmp)
    return path


def _png(fig: Figure, target) -> None:
    """Render `fig` as PNG into `target` (a path or a binary file)."""
    fig.savefig(target, format="png", dpi=DPI, pil_kwargs={"compress_level": PNG_COMPRESS_LEVEL})
