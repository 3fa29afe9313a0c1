"""ViSQOL v3 in audio mode (`visqol-python`, whose SVR model ships in the wheel): the model, the
48 kHz mono signals it scores, and the MOS-LQO of an aligned estimate and clean reference, with
the share of its patches that ViSQOL matched away from their own time.

Alignment is the caller's: `intrusive.visqol_moslqo` aligns by the fractional delay first, as
every intrusive score does, so that a resampler's sub-sample shift does not count as damage.
ViSQOL then still searches each reference patch (0.6 s) in the estimate by dynamic programming.
Where the reference leaves most of its gammatone bands on ViSQOL's -45 dB floor (bass-only
music, quiet intros) that search can settle on other music, seconds away, and the SVR reads the
mismatch as a good score: bass notes under white hiss at 5 dB SNR read 4.17. `Reading.misplaced`
says when that happened, so that a table can tell such a reading from a measurement.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import soxr

VISQOL_SR = 48000
"""Audio mode's rate: its gammatone bank and SVR model were fitted at 48 kHz."""
SOXR_QUALITY = "VHQ"
MIN_DURATION_S = 0.96
"""Audio mode needs a spectrogram of at least 45 frames (a 30-frame patch after a 15-frame
lead-in; 80 ms windows, 20 ms hop): 46080 samples at 48 kHz. Shorter inputs score NaN."""


def _mono(x: np.ndarray) -> np.ndarray:
    """1-D float64 mono downmix of `(samples,)` or `(channels, samples)` audio."""
    x = np.asarray(x)
    return (x if x.ndim == 1 else x.mean(axis=0)).astype(np.float64)


@lru_cache(maxsize=1)
def _api():
    from visqol import VisqolApi

    logging.getLogger("visqol").setLevel(logging.ERROR)  # its duration/rate notices, per call
    api = VisqolApi()
    api.create(mode="audio")
    return api


def to_visqol_rate(x: np.ndarray, sr: int) -> np.ndarray:
    """Mono downmix at VISQOL_SR, float64, resampled with soxr (VHQ)."""
    mono = _mono(x)
    return mono if sr == VISQOL_SR else soxr.resample(mono, sr, VISQOL_SR, quality=SOXR_QUALITY)


MISPLACED_S = 0.3
"""A patch matched further than this from its own time (half a 0.6 s patch) was matched to other
music: the signals were aligned to within a few samples before scoring."""


@dataclass(frozen=True)
class Reading:
    """ViSQOL's MOS-LQO and the share of its reference patches matched more than MISPLACED_S from
    their own time in the estimate (0 for a sound reading; NaN with the score)."""

    moslqo: float
    misplaced: float


UNREAD = Reading(math.nan, math.nan)
"""No reading: a silent, too short or non-finite signal, or ViSQOL not asked for."""


def misread(misplaced: float | None) -> bool:
    """Whether a reading with this `misplaced` share compared other music (None and NaN: no
    reading, so no)."""
    return isinstance(misplaced, (int, float)) and misplaced > 0


def read(est48: np.ndarray, ref48: np.ndarray) -> Reading:
    """ViSQOL's reading of the mono 48 kHz `est48` against the clean `ref48`, as given (aligned,
    the same length). NaN when either is silent or shorter than MIN_DURATION_S."""
    est48, ref48 = _mono(est48), _mono(ref48)
    if min(est48.size, ref48.size) < round(MIN_DURATION_S * VISQOL_SR) or not np.any(est48) or not np.any(ref48):
        return UNREAD
    result = _api().measure_from_arrays(ref48, est48, VISQOL_SR)
    offsets = [abs(p.deg_patch_start_time - p.ref_patch_start_time) for p in result.patch_sims]
    misplaced = sum(o > MISPLACED_S for o in offsets) / len(offsets) if offsets else math.nan
    return Reading(float(result.moslqo), float(misplaced))
