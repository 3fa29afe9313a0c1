"""The listening report of an eval run: one self-contained HTML page (inline CSS, no scripts)
with, per clip, the prompt, players for input / direct / stem-wise / routed, the figures, the
router's decisions and the metric table, best results marked by the rule the CLI uses
(`core.ranking`).

Self-contained: figures and audio are embedded as data URIs (`embed`; the audio as 16-bit FLAC
listening copies), so the page works alone, copied anywhere. Only clips longer than
`embed.EMBED_AUDIO_MAX_S` link their audio files in clips/<id>/ beside it, and say so at the
player. Links to the result files (CSV, JSON) are relative and only to files that exist.
"""

from __future__ import annotations

import math
from html import escape
from pathlib import Path
from urllib.parse import quote

from ..config import MODE_LABELS
from ..core import audio, metrics, ranking
from ..core.table import Table, fmt
from . import embed
from .records import CLIPS_DIR, COMPARE_JSON, FIGURES, INPUT_COPY, ROW_MODES, EvalResult
from .tables import output_name, wins_table

REPORT_NAME = "report.html"

CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;max-width:1180px;padding:1.5em;
color:#1d232a;background:#fafafa}
h1{font-size:1.6em;margin:.2em 0}h2{font-size:1.25em;margin:1.4em 0 .4em}h3{font-size:1.05em;margin:.8em 0 .3em}
a{color:#0b5cad}.muted{color:#5b6670}.small{font-size:.88em}
table{border-collapse:collapse;margin:.4em 0 .8em;background:#fff}
th,td{border:1px solid #d5dbe1;padding:.22em .55em;text-align:right;vertical-align:top}
th:first-child,td:first-child,td.text,th.text{text-align:left}
thead th{background:#eef2f5}
td.best{font-weight:700;background:#e3f4e6}
.legend{font-size:.85em;color:#5b6670;max-width:70em}
.changed-false{color:#9a6700}.changed-true{color:#1a7f37}
.clip{background:#fff;border:1px solid #d5dbe1;border-radius:8px;padding:1em 1.2em;margin:1.2em 0}
.clip.failed,.clip.skipped{border-color:#e0a39b;background:#fff7f6}
.prompt{font-style:italic;font-size:1.05em;margin:.3em 0}
.tag{display:inline-block;background:#eef2f5;border-radius:4px;padding:0 .4em;margin-right:.3em;font-size:.85em}
.players{display:grid;grid-template-columns:repeat(4,1fr);gap:.6em;margin:.6em 0}
.players figure{margin:0;background:#f3f6f8;border-radius:6px;padding:.4em}
.players figcaption{font-weight:600;font-size:.9em;margin-bottom:.2em}
.players audio{width:100%}
.figures img{max-width:100%;border:1px solid #d5dbe1;margin:.3em 0}
.mode-stemwise{color:#1a7f37;font-weight:600}.mode-direct{color:#0b6f8a;font-weight:600}
.decision-skip{color:#9a6700}.decision-process{color:#1a7f37}
.notice{background:#fff8c5;border:1px solid #e6d27a;padding:.4em .7em;border-radius:6px}
.error{color:#a40e26}
nav ul{columns:3;padding-left:1.2em}
"""


def _rel(result: EvalResult, path: Path) -> str | None:
    """`path` as a link relative to the report, or None when the file does not exist."""
    if not path.is_file():
        return None
    rel = path.resolve().relative_to(result.out_dir.resolve())
    return "/".join(quote(part) for part in rel.parts)


def _fmt(key: str, v) -> str:
    """A value as the page shows it: metrics as every table shows them (`ranking.shown`)."""
    if key in metrics.DIRECTIONS:
        return ranking.shown(key, v)
    return fmt(None) if v is None or (isinstance(v, float) and not math.isfinite(v)) else fmt(float(v))


def _metric_table(result: EvalResult, cmp: dict) -> str:
    """The clip's metric panel, the best results of each row marked as the CLI marks them."""
    modes = [m for m in ROW_MODES if cmp["metrics"].get(m) is not None]
    identical = cmp.get("identical_to_reference", {})
    head = "".join(f"<th>{escape(MODE_LABELS[m])}</th>" for m in modes)
    rows = []
    for key, label in metrics.LABELS.items():
        vals = {m: cmp["metrics"][m].get(key) for m in modes}
        winners = ranking.best_of(key, {m: cmp["metrics"][m] for m in modes}, identical)
        cells = "".join(
            f'<td class="best">{escape(ranking.shown(key, vals[m], identical.get(m, False)))} {ranking.MARK}</td>'
            if m in winners else f"<td>{escape(ranking.shown(key, vals[m], identical.get(m, False)))}</td>"
            for m in modes)
        unit = metrics.UNITS[key] or ("%" if "fraction" in key else "")
        unit = "" if key == "bandwidth_hz" else unit
        rows.append(f'<tr><td class="text">{escape(label)}</td><td class="text muted">{escape(unit)}</td>'
                    f'<td class="text muted">{escape(metrics.DIRECTIONS[key])}</td>{cells}</tr>')
    return (f'<table class="metrics"><thead><tr><th class="text">metric</th><th class="text">unit</th>'
            f'<th class="text">better</th>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
            f'<p class="legend">{escape(ranking.legend(list(metrics.LABELS)))}</p>')


def _router_table(cmp: dict) -> str:
    stems = cmp["router"].get("stems", [])
    if not stems:
        return ""
    rows = "".join(
        f'<tr><td class="text">{escape(s["name"])}</td><td>{_fmt("", s["rel_db"])}</td>'
        f'<td>{_fmt("active_fraction", s["active_fraction"])}</td>'
        f'<td class="text decision-{escape(s["decision"])}">{escape(s["decision"])}</td>'
        f'<td class="text small">{escape(s["reason"])}</td></tr>' for s in stems)
    return ('<table class="router"><thead><tr><th class="text">stem</th><th>re mix dB</th><th>active</th>'
            f'<th class="text">decision</th><th class="text">reason</th></tr></thead><tbody>{rows}</tbody></table>')


def _figures(clip_dir: Path) -> str:
    """The clip's figures, embedded."""
    names = list(FIGURES) + sorted(p.name for p in clip_dir.glob("*.png") if p.name not in FIGURES)
    parts = []
    for name in names:
        if (clip_dir / name).is_file():
            alt = f"{clip_dir.name}: {Path(name).stem}"
            parts.append(f'<img src="{embed.image(clip_dir / name).uri}" alt="{escape(alt)}" '
                         f'data-file="{escape(f"{CLIPS_DIR}/{clip_dir.name}/{name}")}">')
    return f'<div class="figures">{"".join(parts)}</div>' if parts else ""


def _player(result: EvalResult, path: Path, label: str, status: str = "") -> str:
    """A player for `path`, embedded (or linked beside the page when the clip is long); its
    `data-file` names the file it plays."""
    caption = f"<figcaption>{escape(label)}{status}</figcaption>"
    if not path.is_file():
        return f'<figure>{caption}<span class="muted small">not made (no separation)</span></figure>'
    source = escape(path.resolve().relative_to(result.out_dir.resolve()).as_posix())
    copy = embed.listening_copy(path)
    if copy is None:
        href = _rel(result, path)
        return (f'<figure>{caption}<audio controls preload="none" src="{href}" data-file="{source}"></audio>'
                f'<span class="muted small">longer than {embed.EMBED_AUDIO_MAX_S:g} s: plays {escape(href)} '
                f'beside this page</span></figure>')
    note = f'<span class="muted small">{escape(copy.note)}</span>' if copy.note else ""
    return (f'<figure>{caption}<audio controls preload="metadata" src="{copy.uri}" data-file="{source}"></audio>'
            f'{note}</figure>')


def _clip_section(result: EvalResult, outcome) -> str:
    clip = result.clip(outcome.id)
    clip_dir = result.out_dir / CLIPS_DIR / clip.id
    tags = "".join(f'<span class="tag">{escape(t)}</span>' for t in clip.tags) or '<span class="muted">no tags</span>'
    head = (f'<h3>{escape(clip.id)}</h3><p class="prompt">“{escape(clip.prompt)}”</p>'
            f'<p class="small">{tags} source: {escape(clip.source)}')
    if outcome.status != "ok":
        return (f'<article class="clip {outcome.status}" id="clip-{escape(clip.id)}">{head}</p>'
                f'<p class="error">{escape(outcome.status)}: {escape(outcome.error or "")}</p></article>')
    cmp = result.compares[clip.id]
    sep = cmp["separator"]
    router = cmp["router"]
    sep_text = escape(sep.get("name") or "none") + (f" ({escape(sep['model'])})" if sep.get("model") else "")
    head += (f' · separator: {sep_text} · router: <span class="mode-{escape(router["mode_used"])}">'
             f'{escape(router["mode_used"])}</span> — {escape(router["reason"])}</p>')
    if sep.get("notice"):
        head += f'<p class="notice small">{escape(sep["notice"])}</p>'
    players = []
    for mode in ROW_MODES:
        label = MODE_LABELS[mode]
        if mode == "input":
            players.append(_player(result, clip_dir / INPUT_COPY, label))
            continue
        out = cmp["outputs"].get(mode)
        changed = out.get("changed") if out else None
        status = ("" if changed is None else
                  f' · <span class="changed-{str(changed).lower()}">{"changed" if changed else "unchanged"}</span>')
        path = clip_dir / output_name(cmp, mode) if out else clip_dir / f".{mode}-not-made"
        players.append(_player(result, path, label, status))
    summaries: dict[str, list[str]] = {}
    for mode, out in cmp["outputs"].items():
        if out.get("change"):
            summaries.setdefault(out["change"]["summary"], []).append(MODE_LABELS[mode])
    changes = "".join(f"<li>{escape(', '.join(modes))}: {escape(text)}</li>" for text, modes in summaries.items())
    changes = f'<ul class="small changes">{changes}</ul>' if changes else ""
    warnings = [f"{m}: {w}" for m, ws in cmp.get("warnings", {}).items() for w in ws] + list(outcome.notes)
    warn_html = "".join(f"<li>{escape(w)}</li>" for w in warnings)
    warn_html = f'<ul class="small">{warn_html}</ul>' if warn_html else ""
    json_href = _rel(result, clip_dir / COMPARE_JSON)
    link = f' <a class="small" href="{json_href}">compare.json</a>' if json_href else ""
    return (f'<article class="clip" id="clip-{escape(clip.id)}">{head}'
            f'<div class="players">{"".join(players)}</div>{changes}{_figures(clip_dir)}'
            f'{_metric_table(result, cmp)}{_router_table(cmp)}{warn_html}{link}</article>')


def _html_table(table: Table, text_columns: int = 1) -> str:
    """`table` as HTML: the first `text_columns` columns left-aligned (all but the first muted)."""
    def cell(i: int, text: str) -> str:
        kind = "" if i >= text_columns else ' class="text"' if i == 0 else ' class="text muted"'
        return f"<td{kind}>{escape(text)}</td>"

    head = "".join(f'<th class="text">{escape(h)}</th>' if i < text_columns else f"<th>{escape(h)}</th>"
                   for i, h in enumerate(table.header))
    body = "".join("<tr>" + "".join(cell(i, c) for i, c in enumerate(row)) + "</tr>" for row in table.cells())
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _overview(result: EvalResult) -> str:
    a = result.aggregate
    wins = _html_table(wins_table(a, label=metrics.LABELS.get), text_columns=2)
    mean_rows = "".join(
        f'<tr><td class="text">{escape(metrics.LABELS[k])}</td>'
        + "".join(f"<td>{_fmt(k, a.means[m][k])}</td>" for m in ROW_MODES) + "</tr>" for k in metrics.LABELS)
    means = ('<table><thead><tr><th class="text">metric</th>'
             + "".join(f"<th>{escape(m)} (n={a.counts[m]})</th>" for m in ROW_MODES)
             + f'</tr></thead><tbody>{mean_rows}</tbody></table>')
    direct = "".join(f'<li><a href="#clip-{escape(c)}">{escape(c)}</a>: {escape(r)}</li>' for c, r in a.direct_clips)
    unchanged = ", ".join(f"{escape(MODE_LABELS[m])} {n} of {a.counts[m]}" for m, n in a.unchanged.items())
    return (f'<p>Unchanged (nothing changed beyond DC and format): {unchanged or "none"}.</p>'
            f'<h2>Routed vs forced modes (routed better / tied / worse, per clip)</h2>{wins}'
            f'<h2>Per-mode means</h2>{means}'
            f'<h2>Clips the router sent to direct</h2><ul>{direct or "<li>none</li>"}</ul>')


def render(result: EvalResult) -> str:
    """The whole page as a string."""
    a = result.aggregate
    ps = result.prompt_set
    links = " · ".join(f'<a href="{name}">{name}</a>' for name in ("results.csv", "results.json", "summary.md")
                       if (result.out_dir / name).is_file())
    notices = "".join(f'<p class="notice">{escape(n)}</p>' for n in result.notices)
    toc = "".join(f'<li><a href="#clip-{escape(o.id)}">{escape(o.id)}</a>'
                  + (f' <span class="error small">({escape(o.status)})</span>' if o.status != "ok" else "") + "</li>"
                  for o in result.outcomes)
    clips = "".join(_clip_section(result, o) for o in result.outcomes)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Listening report: {escape(ps.name)}</title><style>{CSS}</style></head>
<body>
<header><h1>Listening report: {escape(ps.name)}</h1>
<p class="muted">{len(result.outcomes)} clips: {a.status['ok']} evaluated, {a.status['failed']} failed,
{a.status['skipped']} skipped · separator <code>{escape(result.settings.separation.separator)}</code> · preset
<code>{escape(result.settings.pipeline.preset)}</code> · metrics at {audio.WORK_SR} Hz, mono downmix; intrusive
scores against the input itself (how far a mode moved the audio, not how clean it is). Figures and players are
embedded: the page needs no other file (players play 16-bit FLAC listening copies; the results as written are in
<code>clips/</code>; clips over {embed.EMBED_AUDIO_MAX_S:g} s play those files and say so).</p>
<p>{links}</p>{notices}</header>
<main>{_overview(result)}
<h2>Clips</h2><nav><ul>{toc}</ul></nav>
{clips}</main>
</body></html>
"""
