"""The eval suite's tables: one flat row per clip and mode (results.csv, results.json), scores
on one better-is-higher scale, the aggregate over the set, and summary.md.

Intrusive scores (SI-SDR, LSD, quiet-frame SNR) are taken against the INPUT itself: there is
no clean original of a generated clip, so they say how far each restoration moved the audio,
not whether it is cleaner.
"""

from __future__ import annotations

import math
from dataclasses import fields
from typing import Callable

import numpy as np

from ..config import MODE_LABELS
from ..core import intrusive, metrics
from ..core.report import jsonable
from ..core.table import Table, fmt, markdown
from .records import (CLIPS_DIR, FORCED_MODES, INPUT_COPY, ROW_MODES, TAGS, Aggregate, ClipOutcome, EvalResult,
                      PromptClip, PromptSet)

TIE_TOLERANCE = 0.01
"""Two results within this of each other on a metric are a tie: the panel's printed precision
(0.01 dB or LU); float rounding between two transparent results is no win."""
PAPER_METRIC = "p25_paper_db"
HONEST_METRICS = tuple(k for k, d in metrics.DIRECTIONS.items() if d != "none" and k != PAPER_METRIC)
"""The panel minus the paper's gameable number and the direction-less diagnostics."""


# --- rows ------------------------------------------------------------------------------------

METRIC_FIELDS = tuple(f.name for f in fields(metrics.MetricPanel))
BASE_FIELDS = ("clip", "prompt", "tags", "source", "separator", "reference", "mode", "mode_used", "audio",
               "routed_mode", "route_reason")
STEM_FIELDS = tuple(f"{s}_{what}" for s in TAGS for what in ("decision", "rel_db", "active"))
OUTPUT_FIELDS = ("clip_action", "peak_out_dbfs", "loudness_gain_db", "warnings")
ROW_FIELDS = BASE_FIELDS + METRIC_FIELDS + STEM_FIELDS + OUTPUT_FIELDS
"""results.csv's columns, in order; results.json's rows carry the same keys."""


def rows_for(clip: PromptClip, cmp: dict) -> list[dict]:
    """One flat row per mode the clip has (input, direct, stemwise when separated, routed):
    every metric, and the router's plan (the same on each of the clip's rows)."""
    router = cmp["router"]
    stems = {s["name"]: s for s in router.get("stems", [])}
    base = {"clip": clip.id, "prompt": clip.prompt, "tags": ";".join(clip.tags), "source": clip.source,
            "separator": cmp["separator"].get("name"), "reference": "input",
            "routed_mode": router["mode_used"], "route_reason": router["reason"]}
    for s in TAGS:
        st = stems.get(s)
        base[f"{s}_decision"] = None if st is None else st["decision"]
        base[f"{s}_rel_db"] = None if st is None else st["rel_db"]
        base[f"{s}_active"] = None if st is None else st["active_fraction"]
    rows = []
    for mode in ROW_MODES:
        panel = cmp["metrics"].get(mode)
        if panel is None:
            continue
        out = cmp["outputs"].get(mode, {})
        row = {**base, "mode": mode, "mode_used": out.get("mode_used"),
               "audio": f"{CLIPS_DIR}/{clip.id}/{INPUT_COPY if mode == 'input' else mode + '.wav'}",
               **{k: panel.get(k) for k in METRIC_FIELDS},
               "clip_action": out.get("clip_action"), "peak_out_dbfs": out.get("peak_dbfs"),
               "loudness_gain_db": out.get("loudness_gain_db"),
               "warnings": "; ".join(cmp.get("warnings", {}).get(mode, [])) or None}
        rows.append(jsonable({k: row.get(k) for k in ROW_FIELDS}))
    return rows


# --- aggregation -----------------------------------------------------------------------------


def score(metric: str, value, input_value) -> float | None:
    """A value on a higher-is-better scale by the metric's direction (None: no direction or no
    finite value)."""
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    direction = metrics.DIRECTIONS.get(metric)
    if direction == "higher":
        return intrusive.capped(float(value))
    if direction == "lower":
        return -float(value)
    if direction == "closer-to-input":
        if not isinstance(input_value, (int, float)) or not math.isfinite(input_value):
            return None
        return -abs(float(value) - float(input_value))
    return None



def aggregate(prompt_set: PromptSet, outcomes: tuple[ClipOutcome, ...], compares: dict[str, dict],
              rows) -> Aggregate:
    by_clip: dict[str, dict[str, dict]] = {}
    for r in rows:
        by_clip.setdefault(r["clip"], {})[r["mode"]] = r
    means: dict[str, dict] = {}
    counts: dict[str, int] = {}
    for mode in ROW_MODES:
        have = [modes[mode] for modes in by_clip.values() if mode in modes]
        counts[mode] = len(have)
        means[mode] = {}
        for k in METRIC_FIELDS:
            vals = [r[k] for r in have if isinstance(r[k], (int, float)) and math.isfinite(r[k])]
            means[mode][k] = float(np.mean(vals)) if vals else None
    wins: dict[str, dict] = {}
    for forced in FORCED_MODES:
        wins[forced] = {}
        for k in (PAPER_METRIC,) + HONEST_METRICS:
            w = t = l = 0
            for modes in by_clip.values():
                if forced not in modes or "routed" not in modes:
                    continue
                ref = modes["input"][k]
                a, b = score(k, modes["routed"][k], ref), score(k, modes[forced][k], ref)
                if a is None or b is None:
                    continue
                if abs(a - b) <= TIE_TOLERANCE:
                    t += 1
                elif a > b:
                    w += 1
                else:
                    l += 1
            wins[forced][k] = (w, t, l)
    clips = {c.id: c for c in prompt_set.clips}
    by_tag: dict[str, dict[str, int]] = {}
    for tag in TAGS:
        d = {"clips": 0, "routed_stemwise": 0, "routed_direct": 0, "stem_process": 0, "stem_skip": 0,
             "stem_absent": 0}
        for cid, cmp in compares.items():
            if tag not in clips[cid].tags:
                continue
            d["clips"] += 1
            d["routed_stemwise" if cmp["router"]["mode_used"] == "stemwise" else "routed_direct"] += 1
            decision = next((s["decision"] for s in cmp["router"].get("stems", []) if s["name"] == tag), None)
            d["stem_process" if decision == "process" else "stem_skip" if decision == "skip" else "stem_absent"] += 1
        by_tag[tag] = d
    direct = tuple((cid, cmp["router"]["reason"]) for cid, cmp in compares.items()
                   if cmp["router"]["mode_used"] == "direct")
    status = {s: sum(1 for o in outcomes if o.status == s) for s in ("ok", "failed", "skipped")}
    status["reused"] = sum(1 for o in outcomes if o.reused)
    return Aggregate(means, counts, wins, by_tag, direct, status)



# --- summary ---------------------------------------------------------------------------------


def results_json(result: EvalResult) -> dict:
    return {
        "schema": "adaptive-argm/eval/1",
        "prompt_set": {"path": str(result.prompt_set.path), "name": result.prompt_set.name},
        "settings": result.settings.to_dict(),
        "reference": "input (intrusive scores say how far each mode moved the audio, not how clean it is)",
        "notices": list(result.notices),
        "clips": [{**result.clip(o.id).to_dict(), **o.to_dict()} for o in result.outcomes],
        "aggregate": result.aggregate.to_dict(),
        "fields": list(ROW_FIELDS),
        "rows": list(result.rows),
    }


def wins_table(aggregate: Aggregate, label: Callable[[str], str] = str) -> Table:
    """Per metric (the honest panel, then the paper's number, each named by `label`): in how many
    clips routed is better than, tied with, or worse than each forced mode."""
    rows = []
    for k in HONEST_METRICS + (PAPER_METRIC,):
        cells = []
        for forced in FORCED_MODES:
            w, t, l = aggregate.wins[forced][k]
            cells.append(f"{w} / {t} / {l}" if w + t + l else fmt(None))
        rows.append((label(k) + (" (paper, gameable)" if k == PAPER_METRIC else ""), metrics.DIRECTIONS[k], *cells))
    return Table(("metric", "better is", *(f"vs {MODE_LABELS[m]}" for m in FORCED_MODES)), tuple(rows),
                 title="Routed vs forced modes: routed better / tied / worse, per clip")


def summary_markdown(result: EvalResult) -> str:
    """summary.md: per-mode means, routed vs each forced mode on the honest panel, router
    decisions per tag, the clips routed to direct, and what failed or was skipped."""
    a = result.aggregate
    s = result.settings
    lines = [f"# Evaluation: {result.prompt_set.name}", ""]
    lines.append(f"Prompt set `{result.prompt_set.path}`: {len(result.outcomes)} clips, {a.status['ok']} evaluated "
                 f"({a.status['reused']} reused from an earlier run), {a.status['failed']} failed, "
                 f"{a.status['skipped']} skipped.")
    seps = sorted({c["separator"]["name"] for c in result.compares.values()})
    lines.append(f"Separator: `{s.separation.separator}` (used: {', '.join(seps) or 'none'}); preset "
                 f"`{s.pipeline.preset}`; metrics at 44.1 kHz, mono downmix; intrusive scores against the "
                 f"input itself (how far each mode moved the audio, not how clean it is).")
    for n in result.notices:
        lines.append(f"\n> notice: {n}")
    lines += ["", "## Routed vs forced modes on the honest panel", ""]
    if a.counts["routed"]:
        for forced in FORCED_MODES:
            tally = [a.wins[forced][k] for k in HONEST_METRICS]
            w, t, l = (sum(x[i] for x in tally) for i in range(3))
            if w + t + l == 0:
                lines.append(f"- routed vs {forced}: no clip has both (no separation)")
            else:
                lines.append(f"- routed vs {forced}: better in {w}, tied in {t}, worse in {l} of {w + t + l} "
                             f"clip x metric comparisons ({len(HONEST_METRICS)} honest metrics)")
        lines += ["", "Per metric, routed better / tied / worse (clips with both results; "
                  f"ties within {TIE_TOLERANCE:g}):", "", markdown(wins_table(a))]
    else:
        lines.append("No clip was evaluated.")
    lines += ["", "## Per-mode means", ""]
    header = ("metric", *(f"{m} (n={a.counts[m]})" for m in ROW_MODES))
    lines.append(markdown(Table(header, tuple((k, *(fmt(a.means[m][k], 3 if "fraction" in k else 2)
                                                    for m in ROW_MODES)) for k in METRIC_FIELDS))))
    lines += ["", "## Router decisions per tag", "",
              "Clips tagged with each source, where the router sent them, and what it did with that source's "
              "own stem (absent: the separation has no such stem).", ""]
    counts = ("clips", "routed_stemwise", "routed_direct", "stem_process", "stem_skip", "stem_absent")
    lines.append(markdown(Table(("tag", "clips", "routed stem-wise", "routed direct", "stem processed",
                                 "stem skipped", "stem absent"),
                                tuple((tag, *(d[k] for k in counts)) for tag, d in a.by_tag.items()))))
    lines += ["", "## Clips the router sent to direct", ""]
    lines += [f"- `{cid}`: {reason}" for cid, reason in a.direct_clips] or ["- none"]
    bad = [o for o in result.outcomes if o.status != "ok"]
    if bad:
        lines += ["", "## Failed or skipped", ""]
        lines += [f"- `{o.id}` ({o.status}): {o.error}" for o in bad]
    noted = [o for o in result.outcomes if o.notes]
    if noted:
        lines += ["", "## Notes", ""]
        lines += [f"- `{o.id}`: {'; '.join(o.notes)}" for o in noted]
    return "\n".join(lines) + "\n"
