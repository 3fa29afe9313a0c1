"""Files as data URIs, so the listening page needs nothing beside it: figures as they are, and
audio as a listening copy (16-bit FLAC with TPDF dither at the file's own rate, written by
`deliver.write`), which Chromium, Firefox and Safari all play. A result above full scale (clip
mode `none`) is scaled down to fit and the caption says by how much. Clips longer than
`EMBED_AUDIO_MAX_S` are not embedded: their players link the files beside the page."""

from __future__ import annotations

import base64
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..core import audio, deliver
from ..core.levels import peak_dbfs, scaled

EMBED_AUDIO_MAX_S = 60.0
"""Longest clip whose players are embedded: a minute of stereo is about 7 MB of FLAC per player
(9 MB as base64), and a page holds four players per clip."""
LISTENING_FORMAT = deliver.OutputFormat("flac", "16")
HEADROOM_DBFS = -0.1
"""Where the peak of a listening copy of a result above full scale is put."""


@dataclass(frozen=True)
class Embedded:
    """A data URI and what the page should say about it (empty when it is the file as it is)."""

    uri: str
    note: str = ""


def data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def image(path: Path) -> Embedded:
    return Embedded(data_uri(path.read_bytes(), "image/png"))


def listening_copy(path: Path) -> Embedded | None:
    """`path` as an embedded 16-bit FLAC listening copy, or None when the clip is longer than
    `EMBED_AUDIO_MAX_S` (link the file instead)."""
    x, info = audio.read(path, sr=None)
    if info.duration_s > EMBED_AUDIO_MAX_S:
        return None
    note = ""
    peak = peak_dbfs(x)
    if peak > 0.0:
        x = scaled(x, HEADROOM_DBFS - peak)
        note = f"listening copy {HEADROOM_DBFS - peak:.1f} dB quieter: the file peaks above full scale"
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "copy.flac"
        deliver.write(copy, x, info.sample_rate, LISTENING_FORMAT)
        return Embedded(data_uri(copy.read_bytes(), "audio/flac"), note)
