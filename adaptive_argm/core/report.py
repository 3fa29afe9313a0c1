"""Reporting: JSON that other tools can read (no NaN, no numpy types) and the rich tables the
CLI prints."""

from __future__ import annotations

import json
import math

import numpy as np
from rich.table import Table


def jsonable(o):
    """Plain JSON types all the way down: numpy scalars become floats/ints, NaN and infinities
    become null (JSON has no spelling for them)."""
    if isinstance(o, dict):
        return {str(k): jsonable(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [jsonable(v) for v in o]
    if isinstance(o, (np.floating, float)):
        return float(o) if math.isfinite(o) else None
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.bool_):
        return bool(o)
    return o


def to_json(d: dict) -> str:
    return json.dumps(jsonable(d), indent=2, allow_nan=False) + "\n"


def fmt(v, digits: int = 2) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}f}" if math.isfinite(v) else ("-inf" if v < 0 else "inf")
    return str(v)


def stems_table(stems: list[dict], title: str = "Router") -> Table:
    """One row per stem: its measurements, the decision and the reason."""
    t = Table(title=title, title_justify="left")
    t.add_column("stem")
    t.add_column("RMS dBFS", justify="right")
    t.add_column("re mix dB", justify="right")
    t.add_column("active", justify="right")
    t.add_column("decision")
    t.add_column("reason", overflow="fold")
    colour = {"process": "green", "skip": "yellow", "direct": "cyan"}
    for s in stems:
        d = s["decision"]
        t.add_row(s["name"], fmt(s["rms_dbfs"], 1), fmt(s["rel_db"], 1), f"{s['active_fraction']:.0%}",
                  f"[{colour.get(d, 'white')}]{d}[/]", s["reason"])
    return t


def metrics_table(columns: dict[str, dict], directions: dict[str, str] | None = None,
                  title: str = "Metrics", keys: list[str] | None = None) -> Table:
    """Rows = metrics, columns = the named results. With `directions`, the best value of each row
    among the non-input columns is marked, by that metric's own direction."""
    t = Table(title=title, title_justify="left")
    t.add_column("metric")
    names = list(columns)
    for n in names:
        t.add_column(n, justify="right")
    first = columns[names[0]]
    keys = keys or [k for k in first if isinstance(first.get(k), (int, float)) or first.get(k) is None]
    for k in keys:
        values = [columns[n].get(k) for n in names]
        best = _best_indices(k, names, values, columns, directions or {})
        cells = [("[bold green]" + fmt(v) + " *[/]") if i in best else fmt(v) for i, v in enumerate(values)]
        t.add_row(k, *cells)
    return t


def _best_indices(key, names, values, columns, directions) -> set[int]:
    """The best column and every column that ties with it as printed (routed is often the very
    same result as direct or stem-wise, and a difference the table cannot show is no win); none
    when all results tie, as then none is better."""
    best = _best_index(key, names, values, columns, directions)
    if best is None:
        return set()
    results = [i for i, v in enumerate(values) if names[i] != "input" and isinstance(v, (int, float))]
    ties = {i for i in results if fmt(values[i]) == fmt(values[best])}
    return set() if len(ties) == len(results) else ties


def _best_index(key, names, values, columns, directions) -> int | None:
    direction = directions.get(key)
    candidates = [(i, v) for i, v in enumerate(values)
                  if names[i] != "input" and isinstance(v, (int, float)) and v is not None and math.isfinite(v)]
    if len(candidates) < 2 or direction not in ("higher", "lower", "closer-to-input"):
        return None
    if direction == "closer-to-input":
        ref = columns.get("input", {}).get(key)
        if not isinstance(ref, (int, float)) or ref is None or not math.isfinite(ref):
            return None
        return min(candidates, key=lambda iv: abs(iv[1] - ref))[0]
    pick = max if direction == "higher" else min
    return pick(candidates, key=lambda iv: iv[1])[0]
