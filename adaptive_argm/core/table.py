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
    align: tuple[str, ...] = ()
    """`left` or `right` per column (default: right for columns of numbers, left for text)."""
    caption: str = ""

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
