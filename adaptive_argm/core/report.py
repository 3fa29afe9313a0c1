"""Reporting: JSON that other tools can read (no NaN, no numpy types), and the fingerprint of a
JSON payload."""

from __future__ import annotations

import hashlib
import json
import math

import numpy as np


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


def digest(payload: dict) -> str:
    """A short hash of a JSON payload (keys sorted): the fingerprint that says whether a stored
    result was made from the same input and settings."""
    text = json.dumps(jsonable(payload), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
