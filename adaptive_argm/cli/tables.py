"""Rich tables: how the CLI shows the library's table data (`core.table.Table`) and its results
(the router's plan, metric panels, a batch's files, the Demucs models).

Every table reads at 80 columns and never cuts a value: value columns (numbers, names, states)
never wrap and are as wide as their widest cell; only prose (reasons, errors, notes) folds onto
more lines; headers wrap at their spaces; no outer border (two columns more for the values).
"""

from __future__ import annotations

from pathlib import Path

from rich import box
from rich.console import Group, RenderableType
from rich.markup import escape
from rich.table import Table as RichTable
from rich.text import Text

from ..core import audio, batch, metrics, models, ranking
from ..core.table import Table, fmt

DECISION_COLOUR = {"process": "green", "skip": "yellow", "direct": "cyan"}
STATUS_COLOUR = {"done": "green", "skipped": "cyan", "failed": "red"}
WHERE_TEXT = {"model-repo": "local folder", "hf-cache": "Hugging Face cache", "torch-cache": "torch hub cache",
              "builtin": "built in", "download": "downloadable", "missing": "missing"}
BOX = box.MINIMAL_HEAVY_HEAD
WIDTH = 80
"""The terminal width every table is laid out for."""
PROSE_CHARS = 24
"""A column holding a longer cell (or named as prose) folds; all others keep every cell whole."""
MIN_PROSE = 16
"""The least width a prose column is left."""
OVERHEAD_PER_COLUMN = 3
"""Padding and rule per column in `BOX` without edge padding (one less for the table)."""
BETTER_SHORT = {"lower": "lower", "higher": "higher", "closer-to-input": "~ input", "none": "-"}


def new_table(title: str | None = None, caption: str | None = None) -> RichTable:
    return RichTable(title=title or None, title_justify="left", caption=caption or None, caption_justify="left",
                     box=BOX, header_style="bold", pad_edge=False)


def _width(text: str) -> int:
    return Text.from_markup(text).cell_len


def fill(t: RichTable, header: list[str], rows: list[list[str]], *, right: set[int] = frozenset(),
         prose: set[int] = frozenset()) -> RenderableType:
    """`t` with these columns and rows, laid out to read at `WIDTH` columns without cutting a
    value. Prose columns (`prose`, or any with a cell longer than `PROSE_CHARS`) fold at their
    spaces; every other column never wraps and is as wide as its widest cell or its header (rich
    markup does not count). When that is wider than `WIDTH` and wrapping the headers at their
    spaces makes it fit, they wrap. Else, when prose is left less than `MIN_PROSE` columns, the
    widest value columns whose cells have spaces fold too; when the values alone are wider than
    `WIDTH`, the table is shown in parts, each repeating the first column. `right`:
    right-justified columns."""
    widths = [max([_width(r[i]) for r in rows] + [len(header[i])]) for i in range(len(header))]
    spaced = {i for i in range(len(header)) if any(" " in Text.from_markup(r[i]).plain for r in rows)}
    prose = set(prose) | {i for i in spaced if widths[i] > PROSE_CHARS}

    def needed(columns=range(len(header))) -> int:
        return (sum(widths[i] for i in columns if i not in prose) + MIN_PROSE * len(prose & set(columns))
                + OVERHEAD_PER_COLUMN * len(columns) - 1)

    if needed() > WIDTH:  # when that alone makes it fit, headers wrap at their spaces ("time s")
        full = widths
        widths = [max([_width(r[i]) for r in rows] + [len(w) for w in header[i].split()] + [1])
                  for i in range(len(header))]
        if needed() > WIDTH:
            widths = full
    while needed() > WIDTH and spaced - prose:  # else text folds at its spaces
        prose.add(max(spaced - prose, key=lambda i: widths[i]))
    if needed() > WIDTH and len(header) > 2 and all(needed([0, i]) <= WIDTH for i in range(1, len(header))):
        return _in_parts(t, header, rows, widths, right, prose)
    while needed() > WIDTH and set(range(len(header))) - prose:  # last resort: a long name folds
        prose.add(max(set(range(len(header))) - prose, key=lambda i: widths[i]))
    for i, h in enumerate(header):
        justify = "right" if i in right else "left"
        if i in prose:
            t.add_column(h, justify=justify, overflow="fold", ratio=1)
        elif widths[i] < len(h):  # its cells fit whole; the header wraps at its spaces
            t.add_column(h, justify=justify, width=widths[i], overflow="fold")
        else:
            t.add_column(h, justify=justify, no_wrap=True, min_width=widths[i], overflow="fold")
    for r in rows:
        t.add_row(*r)
    return t


def _in_parts(t: RichTable, header, rows, widths, right, prose) -> RenderableType:
    """A table too wide for `WIDTH` as several, each with the first column and as many of the
    others (in order) as fit."""
    first = (MIN_PROSE if 0 in prose else widths[0]) + OVERHEAD_PER_COLUMN
    parts, group, used = [], [], first
    for i in range(1, len(header)):
        w = (MIN_PROSE if i in prose else widths[i]) + OVERHEAD_PER_COLUMN
        if group and used + w - 1 > WIDTH:
            parts.append(group)
            group, used = [], first
        group.append(i)
        used += w
    parts.append(group)
    tables = []
    for n, cols in enumerate(parts):
        keep = [0, *cols]
        title = t.title if n == 0 else f"{t.title} (continued)" if t.title else None
        caption = t.caption if n == len(parts) - 1 else None
        tables.append(fill(new_table(title, caption), [header[i] for i in keep], [[r[i] for i in keep] for r in rows],
                           right={k for k, i in enumerate(keep) if i in right},
                           prose={k for k, i in enumerate(keep) if i in prose}))
    return Group(*tables)


def render(table: Table) -> RenderableType:
    """`table` in rich: columns of numbers right-aligned, columns holding text left-aligned (and
    wrapped when long); yes/no cells green/red; marked cells (a row's best value) bold green with
    a `*`."""
    right = {i for i in range(len(table.header))
             if (table.align[i] == "right" if table.align else not any(isinstance(row[i], str) for row in table.rows))}
    rows = [[f"[bold green]{c} {ranking.MARK}[/]" if (r, i) in table.marked
             else f"[{'green' if v else 'red'}]{c}[/]" if isinstance(v, bool) else escape(c)
             for i, (c, v) in enumerate(zip(row, values))] for r, (row, values) in enumerate(zip(table.cells(), table.rows))]
    return fill(new_table(table.title, table.caption), list(table.header), rows, right=right)


def metrics_table(columns: dict[str, dict], title: str = "Metrics", keys: list[str] | None = None,
                  identical: dict[str, bool] | None = None, legend: bool = True) -> RenderableType:
    """Rows = metrics, columns = the named results (`input` first), cells as every table shows
    them and each row's best results marked (`core.ranking`), the legend under it."""
    table = ranking.metric_table(columns, keys, title, identical)
    return render(table if legend else Table(table.header, table.rows, table.title, marked=table.marked,
                                             align=table.align))


def stems_table(stems: list[dict], title: str = "Router") -> RenderableType:
    """One row per stem of a plan's `to_dict`: its measurements, the decision and the reason."""
    rows = [[s["name"], fmt(s["rms_dbfs"], 1), fmt(s["rel_db"], 1), f"{s['active_fraction']:.0%}",
             f"[{DECISION_COLOUR.get(s['decision'], 'white')}]{s['decision']}[/]", escape(s["reason"])] for s in stems]
    return fill(new_table(title), ["stem", "RMS dBFS", "re mix dB", "active", "decision", "reason"], rows,
                right={1, 2, 3}, prose={5})


def panel_table(panel: metrics.MetricPanel, info: audio.AudioInfo, has_ref: bool) -> RenderableType:
    """One row per measure: value, unit, which way is better, and what it is (the intrusive rows
    only with a reference)."""
    title = (f"Metrics of {Path(info.path).name} ({info.sample_rate / 1000:g} kHz, {info.channels} ch, "
             f"{info.duration_s:.2f} s; measured at {audio.WORK_SR / 1000:g} kHz, mono downmix)")
    rows = [[key, fmt(value), metrics.UNITS[key], BETTER_SHORT[metrics.DIRECTIONS[key]], escape(metrics.LABELS[key])]
            for key, value in panel.to_dict().items() if has_ref or key not in metrics.INTRUSIVE_FIELDS]
    return fill(new_table(escape(title), "better: ~ input = closest to the input's value"),
                ["metric", "value", "unit", "better", "what it is"], rows, right={1}, prose={4})


def track_label(f: batch.FileResult, result: batch.BatchResult) -> str:
    """A batch file's folder as the table names it: its path under the batch's root."""
    folder, root = Path(f.out_dir), Path(result.out_root)
    return folder.relative_to(root).as_posix() if folder.is_relative_to(root) else folder.name


def batch_table(result: batch.BatchResult) -> RenderableType:
    """One row per file of a batch: status, mode, whether it changed the input, the paper's number
    in and out, time (a failed file's error is printed under the table: it would not fit beside)."""
    rows = []
    for f in result.files:
        changed = fmt(None) if f.changed is None else "yes" if f.changed else "[yellow]no[/]"
        rows.append([escape(track_label(f, result)), f"[{STATUS_COLOUR[f.status]}]{f.status}[/]",
                     f.mode_used or fmt(None), changed, fmt(f.p25_in_db), fmt(f.p25_out_db), fmt(f.time_s, 1)])
    header = ["track", "status", "mode", "changed", "p25 in", "p25 out", "time s"]
    return fill(new_table(escape(f"Batch: {result.out_root}"), "p25 in/out: the paper's number (dB) of the input "
                          "and the result; changed: beyond DC and format"), header, rows, right={4, 5, 6})


def models_table(statuses: list[models.ModelStatus]) -> RenderableType:
    """The known Demucs models: stems, download size, and where each is available from here."""
    rows = []
    for s in statuses:
        where = s.location.where
        text = WHERE_TEXT.get(where, where) + (f" {s.location.path}" if s.location.path else "")
        rows.append([s.model.name, " ".join(s.model.stems), f"~{s.model.download_mb} MB",
                     f"[{'red' if where == 'missing' else 'green'}]{escape(text)}[/]", escape(s.model.note)])
    return fill(new_table("Demucs models"), ["model", "stems", "download", "available", "note"], rows, right={2},
                prose={1, 3, 4})


def excerpts_table(excerpts, out) -> RenderableType:
    """`corpus real`: one row per excerpt (`evaluation.corpus.Excerpt`); a band under full band in yellow."""
    rows = [[escape(e.track_id), f"{e.sample_rate / 1000:g}", f"{e.offset_s:.1f}", fmt(e.gain_db),
             fmt(e.loudness_lufs), fmt(e.peak_dbfs),
             f"{e.bandwidth_hz / 1000:.1f}" if e.full_band else f"[yellow]{e.bandwidth_hz / 1000:.1f}[/]"]
            for e in excerpts]
    return fill(new_table(escape(f"{len(excerpts)} excerpts in {out}"),
                          "at: where the excerpt starts (s); gain, peak: dB, dBFS; band: kHz"),
                ["track", "kHz", "at", "gain", "LUFS", "peak", "band"], rows, right=set(range(1, 7)))


def songs_table(songs, out) -> RenderableType:
    """`corpus midi`: one row per song (`evaluation.multitrack.Song`) with the notes in each stem."""
    from ..evaluation.multitrack import FAMILIES

    rows = [[escape(s.song), f"{s.duration_s:.1f}", fmt(s.gain_db), fmt(s.loudness_lufs), fmt(s.peak_dbfs),
             *[str(s.stems[f].notes) if s.stems[f].present else "[dim]-[/]" for f in FAMILIES]] for s in songs]
    return fill(new_table(escape(f"{len(songs)} songs in {out} (mixed = sum of stems)"),
                          "gain, peak: dB, dBFS; drums ... vocals: notes in each stem (-: none)"),
                ["song", "s", "gain", "LUFS", "peak", *FAMILIES], rows, right=set(range(1, 5 + len(FAMILIES))))


def recovery_line(summary: dict) -> str | None:
    """One line on what spectral recovery did (a report's `recovery` section); None when the
    preset has no recovery step and nothing was said about it."""
    if summary.get("note"):
        return f"spectral recovery: {summary['note']}"
    chains = summary.get("chains") or {}
    if not summary.get("in_preset") or not chains:
        return None
    if not summary["acted_on"]:
        reasons = sorted({c["reason"] for c in chains.values()})
        return f"spectral recovery: nothing added ({'; '.join(reasons)})"
    lo, hi = summary["band_added_hz"]
    parts = []
    for name in summary["acted_on"]:
        c = chains[name]
        gaps, holes = c.get("codec_gaps_refilled"), c.get("codec_holes_noise_filled")
        kind = f"{c['kind']}: {c['cutoff_is']}" if c.get("cutoff_is") else c["kind"]
        parts.append(f"{name}: cutoff {c['cutoff_hz'] / 1000:.1f} kHz ({kind}), "
                     f"{fmt(c['level_re_below_db'], 1)} dB re the octave below, {c['character']}"
                     + (f", codec gaps refilled below it in {gaps:.0%} of the octave" if gaps else "")
                     + (f", added from {c['codec_empty_band_from_hz'] / 1000:.1f} kHz, under which the codec left "
                        "its band empty" if c.get("codec_empty_band_from_hz") else "")
                     + (f", noise in {holes:.0%} of the band's cells where the codec left holes" if holes else ""))
    return f"spectral recovery: added {lo / 1000:.1f}-{hi / 1000:.1f} kHz ({'; '.join(parts)})"
