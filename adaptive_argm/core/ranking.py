"""How a metric's value is shown, and which results are best: one rule for the CLI's tables and
the listening report, so that both mark the same cells.

Values are ranked as they are shown: two results that print the same number are tied, and ties
are all marked. A result that scores worse than the input on a metric with an absolute
direction (higher or lower is better) gets no mark, however it ranks among the results: a
restoration that lowered SI-SDR is not "best". On a closer-to-input metric the input is the
target, not a competitor. When every result shows the same value, none is marked. SI-SDR and the
quiet-frame SNR at or above the score ceiling, or of an exact copy, read "identical".
"""

from __future__ import annotations

import math
from typing import Mapping

from . import metrics, visqol
from .intrusive import SCORE_CEILING_DB
from .table import DASH, Table, fmt

IDENTICAL = "identical"
CEILING_KEYS = ("si_sdr_db", "quiet_frame_snr_db")
"""Scores that grow without bound as a result approaches its reference."""
MARK = "*"
MISREAD_BY = {"visqol_moslqo": "visqol_misplaced"}
"""A metric, and the diagnostic that says its reading compared other music (`visqol.Reading`): a
misread result gets no mark on it, and a misread input leaves its row unmarked."""
DIRECTION_WORDS = {"lower": "lower", "higher": "higher", "closer-to-input": "closest to input", "none": "not ranked"}


def shown(key: str, value, identical: bool = False) -> str:
    """`value` of metric `key` as every table shows it: fractions in percent (one decimal),
    bandwidth in kHz, SI-SDR and SNR at or above `SCORE_CEILING_DB` (or `identical`: an exact
    copy of the reference, whose score is +inf and stored as null) as "identical", undefined as
    a dash, anything else to two decimals."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if key in CEILING_KEYS and (identical and value is None or number and value >= SCORE_CEILING_DB):
        return IDENTICAL
    if not number or math.isnan(value):
        return DASH
    if "fraction" in key:
        return fmt(100.0 * value, 1) + "%"
    if key == "bandwidth_hz":
        return fmt(value / 1000.0) + " kHz"
    return fmt(float(value))


def as_shown(key: str, value, identical: bool = False) -> float | None:
    """The number a reader sees in `shown` (identical reads as the ceiling); None for a dash."""
    text = shown(key, value, identical)
    if text == IDENTICAL:
        return SCORE_CEILING_DB
    if text == DASH:
        return None
    return float(text.removesuffix("%").removesuffix(" kHz"))


def score(key: str, value, input_value=None, identical: bool = False, input_identical: bool = False) -> float | None:
    """The shown value on one better-is-higher scale by the metric's direction (None: no
    direction, or nothing to compare)."""
    v = as_shown(key, value, identical)
    direction = metrics.DIRECTIONS.get(key)
    if v is None or direction not in ("higher", "lower", "closer-to-input"):
        return None
    if direction == "higher":
        return v
    if direction == "lower":
        return -v
    ref = as_shown(key, input_value, input_identical)
    return None if ref is None else -abs(v - ref)


def best(key: str, values: Mapping[str, object], input_value=None, identical: Mapping[str, bool] | None = None,
         input_identical: bool = False) -> set[str]:
    """The results (names in `values`) that carry the mark on metric `key`: the best as shown,
    ties all marked; none when fewer than two results have a value, when they all show the
    same, or (higher/lower metrics) when the best is worse than the input."""
    identical = identical or {}
    scores = {n: s for n, v in values.items()
              if (s := score(key, v, input_value, identical.get(n, False), input_identical)) is not None}
    if len(scores) < 2:
        return set()
    top = max(scores.values())
    if metrics.DIRECTIONS[key] in ("higher", "lower"):
        own = score(key, input_value, input_value, input_identical, input_identical)
        if own is not None and top < own:
            return set()
    winners = {n for n, s in scores.items() if s == top}
    return set() if len(winners) == len(scores) else winners


def best_of(key: str, columns: Mapping[str, Mapping], identical: Mapping[str, bool] | None = None) -> set[str]:
    """`best` on metric `key` of named results (metric dicts; `input` is the input), leaving out
    readings their diagnostic calls misread (`MISREAD_BY`): none at all when the input's is."""
    identical = identical or {}
    own = columns.get("input", {})
    if _misread(own, key):
        return set()
    results = {n: c.get(key) for n, c in columns.items() if n != "input" and not _misread(c, key)}
    return best(key, results, own.get(key), identical, identical.get("input", False))


def _misread(column: Mapping, key: str) -> bool:
    return key in MISREAD_BY and visqol.misread(column.get(MISREAD_BY[key]))


def legend(keys: list[str]) -> str:
    """What the mark means, and which way each shown metric counts as better."""
    by_direction: dict[str, list[str]] = {}
    for k in keys:
        by_direction.setdefault(metrics.DIRECTIONS[k], []).append(k)
    ways = "; ".join(f"{DIRECTION_WORDS.get(d, d)}: {', '.join(ks)}" for d, ks in by_direction.items())
    misread = [f"{k} ({MISREAD_BY[k]} above 0)" for k in keys if k in MISREAD_BY]
    return (f"{MARK} = best output as shown, ties all marked; none when all outputs show the same, and none for an "
            f"output worse than the input" + (f" or a misread {', '.join(misread)}" if misread else "")
            + f". Better is {ways}. \"{IDENTICAL}\": SI-SDR or SNR at or above {SCORE_CEILING_DB:g} dB, or an exact copy.")


def metric_table(columns: Mapping[str, Mapping], keys: list[str] | None = None, title: str = "Metrics",
                 identical: Mapping[str, bool] | None = None) -> Table:
    """Rows = metrics (`keys`, default: every numeric key of the first column), columns = the
    named results (metric dicts, e.g. report.json's panels; `input` is the input), cells as
    `shown`, each row's best results marked (`best_of`); the legend as the caption."""
    identical = identical or {}
    names = list(columns)
    first = columns[names[0]]
    keys = keys or [k for k in first if isinstance(first.get(k), (int, float)) or first.get(k) is None]
    rows, marked = [], set()
    for r, k in enumerate(keys):
        winners = best_of(k, columns, identical)
        marked |= {(r, 1 + c) for c, n in enumerate(names) if n in winners}
        rows.append((k, *(shown(k, columns[n].get(k), identical.get(n, False)) for n in names)))
    return Table(("metric", *names), tuple(rows), title=title, marked=frozenset(marked),
                 align=("left",) + ("right",) * len(names), caption=legend(keys))
