"""Rich tables: how the CLI shows the library's table data (`core.table.Table`) and its results
(the router's plan, metric panels, a batch's files, the Demucs models)."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table as RichTable

from ..core import audio, batch, metrics, models
from ..core.table import Table, fmt, metric_table

DECISION_COLOUR = {"process": "green", "skip": "yellow", "direct": "cyan"}
STATUS_COLOUR = {"done": "green", "skipped": "cyan", "failed": "red"}
WHERE_TEXT = {"model-repo": "local folder", "hf-cache": "Hugging Face cache", "torch-cache": "torch hub cache",
              "builtin": "built in", "download": "downloadable", "missing": "missing"}


def render(table: Table) -> RichTable:
    """`table` in rich: columns of numbers right-aligned, columns holding text left-aligned (and
    wrapped when long); yes/no cells green/red; marked cells (a row's best value) bold green with
    a `*`."""
    t = RichTable(title=table.title or None, title_justify="left")
    for i, h in enumerate(table.header):
        text = any(isinstance(row[i], str) for row in table.rows)
        t.add_column(h, justify="left" if text else "right")
    for r, (row, values) in enumerate(zip(table.cells(), table.rows)):
        t.add_row(*(f"[bold green]{c} *[/]" if (r, i) in table.marked
                    else f"[{'green' if v else 'red'}]{c}[/]" if isinstance(v, bool) else c
                    for i, (c, v) in enumerate(zip(row, values))))
    return t


def metrics_table(columns: dict[str, dict], directions: dict[str, str] | None = None,
                  title: str = "Metrics", keys: list[str] | None = None) -> RichTable:
    """Rows = metrics, columns = the named results, each row's best result marked
    (`core.table.metric_table`)."""
    return render(metric_table(columns, directions, keys, title))


def stems_table(stems: list[dict], title: str = "Router") -> RichTable:
    """One row per stem of a plan's `to_dict`: its measurements, the decision and the reason."""
    t = RichTable(title=title, title_justify="left")
    t.add_column("stem")
    t.add_column("RMS dBFS", justify="right")
    t.add_column("re mix dB", justify="right")
    t.add_column("active", justify="right")
    t.add_column("decision")
    t.add_column("reason", overflow="fold")
    for s in stems:
        d = s["decision"]
        t.add_row(s["name"], fmt(s["rms_dbfs"], 1), fmt(s["rel_db"], 1), f"{s['active_fraction']:.0%}",
                  f"[{DECISION_COLOUR.get(d, 'white')}]{d}[/]", s["reason"])
    return t


def panel_table(panel: metrics.MetricPanel, info: audio.AudioInfo, has_ref: bool) -> RichTable:
    """One row per measure: value, unit, which way is better, and what it is (the intrusive rows
    only with a reference)."""
    t = RichTable(title=f"Metrics of {Path(info.path).name} ({info.sample_rate / 1000:g} kHz, {info.channels} ch, "
                        f"{info.duration_s:.2f} s; measured at {audio.WORK_SR / 1000:g} kHz, mono downmix)",
                  title_justify="left")
    for name in ("metric", "value", "unit", "better"):
        t.add_column(name, justify="right" if name == "value" else "left", no_wrap=True)
    t.add_column("what it is", overflow="fold")
    for key, value in panel.to_dict().items():
        if key in metrics.INTRUSIVE_FIELDS and not has_ref:
            continue
        t.add_row(key, fmt(value), metrics.UNITS[key], metrics.DIRECTIONS[key], metrics.LABELS[key])
    return t


def batch_table(result: batch.BatchResult) -> RichTable:
    """One row per file of a batch: status, mode, the paper's number in and out, time, error."""
    t = RichTable(title=f"Batch: {result.out_root}", title_justify="left")
    t.add_column("file (track)", no_wrap=True)
    for col in ("status", "mode"):
        t.add_column(col)
    for col in ("p25 in -> out dB", "time s"):
        t.add_column(col, justify="right", no_wrap=True)
    t.add_column("error", overflow="fold")
    for f in result.files:
        p25 = f"{fmt(f.p25_in_db)} -> {fmt(f.p25_out_db)}" if f.status != "failed" else fmt(None)
        t.add_row(Path(f.out_dir).name, f"[{STATUS_COLOUR[f.status]}]{f.status}[/]", f.mode_used or fmt(None), p25,
                  fmt(f.time_s, 1), f.error or "")
    return t


def models_table(statuses: list[models.ModelStatus]) -> RichTable:
    """The known Demucs models: stems, download size, and where each is available from here."""
    t = RichTable(title="Demucs models", title_justify="left")
    t.add_column("model", no_wrap=True)
    t.add_column("stems")
    t.add_column("download", justify="right", no_wrap=True)
    t.add_column("available", overflow="fold")
    t.add_column("note", overflow="fold")
    for s in statuses:
        where = s.location.where
        text = WHERE_TEXT.get(where, where) + (f" {s.location.path}" if s.location.path else "")
        t.add_row(s.model.name, " ".join(s.model.stems), f"~{s.model.download_mb} MB",
                  f"[{'red' if where == 'missing' else 'green'}]{text}[/]", s.model.note)
    return t


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
        parts.append(f"{name}: cutoff {c['cutoff_hz'] / 1000:.1f} kHz ({c['kind']}), "
                     f"{fmt(c['level_re_below_db'], 1)} dB re the octave below, {c['character']}")
    return f"spectral recovery: added {lo / 1000:.1f}-{hi / 1000:.1f} kHz ({'; '.join(parts)})"

