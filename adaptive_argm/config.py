"""Named choices and defaults every layer shares: the run modes and their labels, the stem names,
the default Demucs model and preset, and the package version."""

from __future__ import annotations

VERSION = "0.1.0"

MODES = ("routed", "stemwise", "direct")
"""What `run` can be asked to do: route, always separate, never separate."""
COMPARE_MODES = ("direct", "stemwise", "routed")
"""The results `compare` makes from one separation, in the order they are shown."""
MODE_LABELS = {"input": "input", "direct": "direct", "stemwise": "stem-wise", "routed": "routed"}
"""How tables, figures and the listening report name the input and each result."""

STEM_NAMES = ("drums", "bass", "other", "vocals")
"""Demucs' four sources; a stem file with another name is folded into `other`."""
DEFAULT_MODEL = "htdemucs"
"""The Demucs model used unless another is named."""
DEFAULT_PRESET = "adaptive"
"""The default since it met every goal of the paired benchmark (eval/results/paired.md); `paper` is
the method's chain, kept unchanged for comparability."""
