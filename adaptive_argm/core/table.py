"""Tables as data: a header and rows of values, which the CLI renders with rich and the evaluation
writes as Markdown, and the one number format both use."""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np

DASH = "–"
"""What an undefined value (None, NaN) prints as."""


def fmt(v, digits: int = 2, *, signed: bool = False) -> str:
    """A value as a table shows it: floats to `digits` decimals (with their sign when `signed`,
    below a million), integers whole, booleans as yes/no, None and NaN as a dash, infinities as
    `inf`/`-inf`, anything else as `str` does."""
    if v is None:
        return DASH
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        if math.isnan(v):
            return DASH
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return f"{v:+.{digits}f}" if signed and abs(v) < 1e6 else f"{v:.{digits}f}"
    return str(v)


@dataclass(frozen=True)
class Table:
    """Rows of values under a header. Cells that are strings are shown as they are; any other
    value through `fmt` (signed when `signed`). `marked` holds the (row, column) cells that carry
    their row's best value."""

    header: tuple[str, ...]
    rows: tuple[tuple, ...]
    title: str = ""
    signed: bool = False
    marked: frozenset[tuple[int, int]] = frozenset()

    def cells(self) -> list[list[str]]:
        """Every row as the strings it shows."""
        return [[v if isinstance(v, str) else fmt(v, signed=self.signed) for v in row] for row in self.rows]


def csv_text(rows: Iterable[dict], fields: Iterable[str] | None = None, number: Callable[[float], str] = repr) -> str:
    """Dict rows as CSV: `fields` as the columns (default: the first row's keys; no rows and no
    fields: nothing), None as an empty cell, floats through `number` (default: full precision)."""
    rows = list(rows)
    fields = list(fields if fields is not None else rows[0] if rows else [])
    buf = io.StringIO()
    if fields:
        w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({k: "" if r.get(k) is None else number(r[k]) if isinstance(r[k], float) else r[k]
                        for k in fields})
    return buf.getvalue()


def markdown(table: Table) -> str:
    """The table as GitHub Markdown (no title, no trailing newline)."""
    lines = ["| " + " | ".join(table.header) + " |", "|" + "|".join("---" for _ in table.header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in table.cells()]
    return "\n".join(lines)


def metric_table(columns: dict[str, dict], directions: dict[str, str] | None = None,
                 keys: list[str] | None = None, title: str = "Metrics") -> Table:
    """Rows = metrics (`keys`, default: every numeric key of the first column), columns = the named
    results (metric dicts, e.g. report.json's panels). Each row's best value among the non-input
    columns is marked, by that metric's direction (`metrics.DIRECTIONS`)."""
    names = list(columns)
    first = columns[names[0]]
    keys = keys or [k for k in first if isinstance(first.get(k), (int, float)) or first.get(k) is None]
    rows, marked = [], set()
    for r, k in enumerate(keys):
        values = [columns[n].get(k) for n in names]
        marked |= {(r, 1 + c) for c in _best_columns(k, names, values, columns, directions or {})}
        rows.append((k, *values))
    return Table(("metric", *names), tuple(rows), title=title, marked=frozenset(marked))


def _best_columns(key, names, values, columns, directions) -> set[int]:
    """The best column and every column that ties with it as printed (routed is often the very
    same result as direct or stem-wise, and a difference the table cannot show is no win); none
    when all results tie, as then none is better."""
    best = _best_column(key, names, values, columns, directions)
    if best is None:
        return set()
    results = [i for i, v in enumerate(values) if names[i] != "input" and isinstance(v, (int, float))]
    ties = {i for i in results if fmt(values[i]) == fmt(values[best])}
    return set() if len(ties) == len(results) else ties


def _best_column(key, names, values, columns, directions) -> int | None:
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
