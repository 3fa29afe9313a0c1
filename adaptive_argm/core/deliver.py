"""Delivery: write `(channels, samples)` float32 audio as WAV or FLAC at 16 or 24 bits (with TPDF
dither) or 32-bit float, and optionally bring it to a loudness target under a true-peak ceiling.

Quantising is ours (seeded TPDF dither, rounding, a counted guard at full scale); encoding is
pedalboard.io's, handed integer samples so that the file holds exactly the values computed here.
(Handed float32, pedalboard's 16-bit writer scales by 32767 and moves half of the positive codes
by one step.) PCM holds -1.0 to just under +1.0 only: a result above full scale is refused, not
clipped; clip safety upstream, the loudness target's limiter, or 32-bit float must deal with it.

True peak follows ITU-R BS.1770-4 Annex 2: 4x oversampling with the Recommendation's own 48-tap
polyphase interpolation filter, so the dBTP printed here is the number a BS.1770 meter prints.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
from pedalboard.io import AudioFile
from scipy.ndimage import minimum_filter1d, uniform_filter1d

from ..config import UserError
from .audio import atomic_path, write_frames
from .dsp import LIMITER_WINDOW_MS
from .levels import loudness_lufs, peak_dbfs, scaled
from .signal import Signal

CONTAINERS = ("wav", "flac")
BIT_DEPTHS = ("16", "24", "32f")
LOSSY_CONTAINERS = ("mp3", "ogg", "opus", "m4a", "aac")
"""Formats that are read but never written back: re-encoding would add a second generation of loss."""
FALLBACK_BITS = "24"
"""The bit depth when the input's own cannot be kept: 144 dB of range, transparent without dither."""
_KEPT_SAMPLE_TYPES = {"int16": "16", "int24": "24", "float32": "32f", "float64": "32f"}
"""pedalboard's `file_dtype` of an input whose depth the output keeps (float64 holds nothing a
float32 pipeline could have produced)."""

DEFAULT_CEILING_DBTP = -1.0
TRUE_PEAK_MARGIN_DB = 0.01
"""The limiter aims this far under the ceiling: dither and rounding to 16 bits move an
interpolated peak by about 3 LSB at most (0.001 dB at -1 dBFS)."""
LOUDNESS_TOLERANCE_LU = 0.1
"""Gain-and-limit passes stop once the result is this close to the target."""
LOUDNESS_PASSES = 8
MAX_MAKEUP_DB = 12.0
"""The most gain added beyond the plain gain to the target, to make up what the limiter takes:
where more is needed the limiter is flattening transients for tenths of a LU per dB."""
LIMIT_PASSES = 6
"""Limiter passes on the remaining overs before a last plain gain guarantees the ceiling."""

# ITU-R BS.1770-4 Annex 2, Table 1: the 4x interpolation filter's four phases of 12 taps. The
# 48-tap prototype is symmetric (phase 3 is phase 0 reversed, phase 2 is phase 1 reversed).
_BS1770_PHASES_0_1 = np.array([
    [0.0017089843750, 0.0109863281250, -0.0196533203125, 0.0332031250000, -0.0594482421875,
     0.1373291015625, 0.9721679687500, -0.1022949218750, 0.0476074218750, -0.0266113281250,
     0.0148925781250, -0.0083007812500],
    [-0.0291748046875, 0.0292968750000, -0.0517578125000, 0.0891113281250, -0.1665039062500,
     0.4650878906250, 0.7797851562500, -0.2003173828125, 0.1015625000000, -0.0582275390625,
     0.0330810546875, -0.0189208984375],
])
TRUE_PEAK_FIR = np.vstack([_BS1770_PHASES_0_1, _BS1770_PHASES_0_1[::-1, ::-1]]).T.ravel()
"""The prototype, `h[4 i + phase]`, for `scipy.signal.upfirdn(h, x, up=4)`; delay 23.5 outputs."""
_TP_UP = 4
_TP_CONTEXT = 12  # input samples either side that an oversampled output depends on
_TP_FIRST = 22  # the first of the 4 outputs nearest each input sample (times n - 3/8 ... n + 3/8)
_TP_BLOCK = 1 << 16
_TP_TAPS = TRUE_PEAK_FIR.size // _TP_UP
_TP_KERNEL = np.ascontiguousarray(TRUE_PEAK_FIR.reshape(_TP_TAPS, _TP_UP)[::-1])
"""`(12, 4)`: row i weighs the input `11 - i` samples back, column p is the phase."""
_QUANTIZE_BLOCK = 1 << 16


class DeliveryError(UserError, ValueError):
    """A format that cannot hold the result, or a request that cannot be met; one line."""


@dataclass(frozen=True)
class OutputFormat:
    """The output file's container (`wav`, `flac`), bit depth (`16`, `24`, `32f`) and dither
    (TPDF before quantising; by default on at 16 bits only, where the error floor is -96.3 dBFS
    RMS with dither and truncation distortion of quiet passages is audible without it; at 24 bits
    rounding alone leaves -148.9 dBFS RMS (dither: -144.5), far under any converter's noise)."""

    container: str = "wav"
    bits: str = FALLBACK_BITS
    dither: bool | None = None

    def __post_init__(self):
        object.__setattr__(self, "bits", str(self.bits))
        if self.container not in CONTAINERS:
            raise DeliveryError(f"output format must be wav or flac, not {self.container!r}")
        if self.bits not in BIT_DEPTHS:
            raise DeliveryError(f"bit depth must be 16, 24 or 32f, not {self.bits!r}")
        if self.container == "flac" and self.bits == "32f":
            raise DeliveryError("FLAC holds integer samples only (16 or 24 bits), not 32-bit float; write WAV")
        if self.dither is None:
            object.__setattr__(self, "dither", self.bits == "16")
        elif self.dither and self.bits == "32f":
            raise DeliveryError("32-bit float is not quantised, so it takes no dither")

    @property
    def is_float(self) -> bool:
        return self.bits == "32f"

    @property
    def lsb(self) -> float:
        """One quantisation step in full-scale units (0 for float)."""
        return 0.0 if self.is_float else 2.0 ** (1 - int(self.bits))

    @property
    def suffix(self) -> str:
        return "." + self.container

    def describe(self) -> str:
        depth = "32-bit float" if self.is_float else f"{self.bits}-bit"
        return f"{self.container}, {depth}" + (", TPDF dither" if self.dither else "")

    def to_dict(self) -> dict:
        return {"format": self.container, "bits": self.bits, "dither": "tpdf" if self.dither else "none"}


@dataclass(frozen=True)
class SourceFormat:
    """What the input file was: its container (suffix, lower case, no dot) and its sample type as
    stored (pedalboard's `file_dtype`: `int16`, `int24`, `int32`, `float32`, ...)."""

    container: str
    sample_type: str
    channels: int = 0
    """0: unknown (a header that could not be read)."""


def probe(path: str | Path) -> SourceFormat:
    """The container and stored sample type of an audio file (header only)."""
    with AudioFile(str(path)) as f:
        sample_type, channels = str(f.file_dtype), int(f.num_channels)
    container = Path(path).suffix.lower().lstrip(".")
    return SourceFormat("aiff" if container == "aif" else container, sample_type, channels)


def default_format(source: SourceFormat, peak_dbfs: float) -> tuple[OutputFormat, str]:
    """The input's own format and bit depth where it can hold the result, else WAV or 24 bits;
    returns the format and one line saying why. A lossy or unwritable input becomes WAV; a
    sample type without an offered depth becomes 24-bit; a result peaking above full scale
    (`peak_dbfs` > 0, left there by clip mode `none`) becomes 32-bit float WAV, the only offered
    format that holds it."""
    if peak_dbfs > 0.0:
        fmt = OutputFormat("wav", "32f")
        return fmt, f"the result peaks at {peak_dbfs:+.2f} dBFS, which only float holds: {fmt.describe()}"
    lossy = source.container in LOSSY_CONTAINERS
    container = source.container if source.container in CONTAINERS else "wav"
    bits = None if lossy else _KEPT_SAMPLE_TYPES.get(source.sample_type)
    if bits == "32f" and container == "flac":
        bits = None
    fmt = OutputFormat(container, bits or FALLBACK_BITS)
    if lossy:
        why = f"{source.container} is lossy and is not written back"
    elif source.container not in CONTAINERS:
        why = f"{source.container} is not an offered output format"
    elif bits is None:
        why = f"the input's {source.sample_type} samples have no offered depth"
    else:
        why = "the input's own format"
    return fmt, f"{why}: {fmt.describe()}"


class _Quantizer:
    """Float to integer sample values, block after block, with TPDF dither from one seeded
    generator per channel (so the result does not depend on the block size)."""

    def __init__(self, bits: int, channels: int, dither: bool, seed: int):
        self.scale = 2.0 ** (bits - 1)
        self.rngs = [np.random.default_rng([seed, c]) for c in range(channels)] if dither else None
        self.clipped = 0

    def __call__(self, x: np.ndarray) -> np.ndarray:
        v = x.astype(np.float64) * self.scale
        if self.rngs is not None:
            for c, rng in enumerate(self.rngs):
                # Difference of two uniforms: triangular on (-1, 1) LSB, variance 1/6 LSB^2.
                u = rng.random((v.shape[1], 2))
                v[c] += u[:, 0] - u[:, 1]
        np.rint(v, out=v)
        lo, hi = -self.scale, self.scale - 1
        self.clipped += int(np.count_nonzero((v < lo) | (v > hi)))
        return np.clip(v, lo, hi, out=v).astype(np.int32)


def quantize(x: np.ndarray, bits: int, *, dither: bool = True, seed: int = 0) -> tuple[np.ndarray, int]:
    """Quantise `(channels, samples)` float audio within [-1, 1] to `bits`-bit integer values,
    `(channels, samples)` int32 in [-2**(bits-1), 2**(bits-1) - 1] (each stands for value /
    2**(bits-1)), with optional TPDF dither of +-1 LSB and rounding. Also returns how many samples
    dither or rounding pushed past full scale (held at it: at most a 1.5-step clip)."""
    q = _Quantizer(bits, x.shape[0], dither, seed)
    return q(x), q.clipped


@dataclass(frozen=True)
class Written:
    """One delivered file."""

    path: str
    format: OutputFormat
    sample_rate: int
    channels: int
    frames: int
    peak_dbfs: float
    """Of the float audio handed in."""
    clipped_samples: int
    """Samples that dither or rounding pushed past full scale and that were held at it."""
    dither_seed: int | None

    def to_dict(self) -> dict:
        return {"path": self.path, **self.format.to_dict(), "dither_seed": self.dither_seed,
                "sample_rate": self.sample_rate, "channels": self.channels, "frames": self.frames,
                "peak_dbfs": self.peak_dbfs, "clipped_samples": self.clipped_samples}


def write(path: str | Path, x: np.ndarray | Signal, sr: int, fmt: OutputFormat, *, seed: int = 0,
          protect: tuple[str | Path, ...] = ()) -> Written:
    """Write `(channels, samples)` float32 audio at `sr` Hz in `fmt`, an array or a `Signal` (read
    block by block), atomically (temp file beside `path`, then rename). `path`'s suffix must be
    the format's; `protect` lists inputs that must never be overwritten. PCM refuses a result
    above full scale (DeliveryError) instead of clipping it; 16/24-bit samples are quantised
    block by block (bounded memory; the dither does not depend on the block size)."""
    path = Path(path)
    if path.suffix.lower() != fmt.suffix:
        raise DeliveryError(f"{path}: a {fmt.container} file needs the suffix {fmt.suffix}")
    for p in protect:
        if Path(p).exists() and path.exists() and path.resolve() == Path(p).resolve():
            raise DeliveryError(f"{path}: refusing to overwrite an input file")
    signal = x if isinstance(x, Signal) else None
    if signal is None and x.ndim != 2:
        raise DeliveryError("audio to write must be finite (channels, samples)")
    blocks = (lambda: signal.blocks()) if signal is not None else (lambda: iter([x]))
    channels, frames = (signal.channels, signal.frames) if signal is not None else x.shape
    largest, finite = 0.0, True
    for block in blocks():  # a first pass: a streamed signal is read twice, never held
        finite = finite and bool(np.all(np.isfinite(block)))
        if block.size:
            largest = max(largest, float(np.max(np.abs(block))))
    if not finite:
        raise DeliveryError("audio to write must be finite (channels, samples)")
    peak = 20.0 * math.log10(largest) if largest > 0 else -math.inf
    if not fmt.is_float and peak > 0.0:
        raise DeliveryError(f"the result peaks at {peak:+.2f} dBFS, above full scale, which {fmt.bits}-bit PCM "
                            "cannot hold: limit it first or write 32-bit float")
    bits = 32 if fmt.is_float else int(fmt.bits)
    q = None if fmt.is_float else _Quantizer(bits, channels, bool(fmt.dither), seed)
    with atomic_path(path) as tmp:
        with AudioFile(tmp, "w", samplerate=sr, num_channels=channels, bit_depth=bits) as f:
            for part in blocks():
                for s in range(0, part.shape[1], _QUANTIZE_BLOCK):
                    block = part[:, s:s + _QUANTIZE_BLOCK]
                    if q is None:
                        write_frames(f, np.asarray(block, dtype=np.float32))
                    elif bits == 16:
                        write_frames(f, q(block).astype(np.int16))
                    else:  # pedalboard takes 24-bit samples left-justified in int32
                        write_frames(f, q(block) << 8)
    return Written(str(path), fmt, int(sr), channels, frames, peak,
                   0 if q is None else q.clipped, seed if fmt.dither else None)


# --- true peak and the loudness target ---------------------------------------------------------


def true_peak_envelope(x: np.ndarray) -> np.ndarray:
    """`(samples,)` float32: at each sample, the largest magnitude over all channels of the 4x
    oversampled signal within 3/8 of a sample of it (the filter's ramp-in and ring-out beyond
    the ends fold into the first and last sample), and never below the sample itself: the
    Annex 2 filter interpolates between samples and reads an isolated full-scale sample 0.25 dB low."""
    env = np.zeros(x.shape[1], np.float32)
    n = x.shape[1]
    for ch in x:
        np.maximum(env, np.abs(ch), out=env)
        for s in range(0, n, _TP_BLOCK):
            e = min(n, s + _TP_BLOCK)
            o = max(0, s - _TP_CONTEXT)
            y4 = _upsampled(ch[o:min(n, e + _TP_CONTEXT)])
            np.abs(y4, out=y4)
            k0 = _TP_UP * (s - o) + _TP_FIRST
            k1 = k0 + _TP_UP * (e - s)
            block = _largest_of_each(y4[k0:k1], _TP_UP)
            if s == 0 and k0 > 0:
                block[0] = max(block[0], y4[:k0].max())
            if e == n and y4.size > k1:
                block[-1] = max(block[-1], y4[k1:].max())
            np.maximum(env[s:e], block, out=env[s:e])
    return env


def _upsampled(x: np.ndarray) -> np.ndarray:
    """`scipy.signal.upfirdn(TRUE_PEAK_FIR, x, 4)` in float64 (equal to its last bits or so), as
    one matrix product of the 12-sample windows and the four phases: 2.5 times as fast."""
    padded = np.zeros(x.size + 2 * (_TP_TAPS - 1))
    padded[_TP_TAPS - 1:_TP_TAPS - 1 + x.size] = x
    windows = np.lib.stride_tricks.sliding_window_view(padded, _TP_TAPS)
    return (windows @ _TP_KERNEL).ravel()


def _largest_of_each(v: np.ndarray, size: int) -> np.ndarray:
    """The largest of each run of `size` values of `v` (its length a multiple of `size`): as
    `v.reshape(-1, size).max(axis=1)`, whose reduction over a short axis costs as much as the filter."""
    out = np.maximum(v[0::size], v[1::size]) if size > 1 else v.copy()
    for k in range(2, size):
        np.maximum(out, v[k::size], out=out)
    return out


def _dbtp(linear_peak: float) -> float:
    return 20.0 * math.log10(linear_peak) if linear_peak > 0 else -math.inf


def true_peak_dbtp(x: np.ndarray) -> float:
    """True peak of `(channels, samples)` audio in dBTP (ITU-R BS.1770-4 Annex 2, 4x); -inf for silence."""
    return _dbtp(float(true_peak_envelope(x).max()) if x.size else 0.0)


def true_peak_dbtp_of(blocks: Iterable[np.ndarray]) -> float:
    """`true_peak_dbtp` of a stream of `(channels, m)` blocks, one block behind: each block's
    envelope is taken with the context the whole-signal computation gives it on both sides, so
    the result is the whole signal's."""
    peak, prev = 0.0, None
    before = None
    for block in blocks:
        if prev is not None:
            peak = max(peak, _middle_peak(before, prev, block[:, :_TP_CONTEXT]))
            joined = prev if before is None else np.concatenate([before, prev], axis=1)
            before = joined[:, -_TP_CONTEXT:]
        prev = block
    if prev is not None:
        peak = max(peak, _middle_peak(before, prev, None))
    return _dbtp(peak)


def _middle_peak(before: np.ndarray | None, x: np.ndarray, after: np.ndarray | None) -> float:
    lo = 0 if before is None else before.shape[1]
    parts = [p for p in (before, x, after) if p is not None]
    env = true_peak_envelope(np.concatenate(parts, axis=1) if len(parts) > 1 else x)
    return float(env[lo:lo + x.shape[1]].max()) if x.shape[1] else 0.0


def true_peak_limit(x: np.ndarray, sr: int, ceiling_dbtp: float = DEFAULT_CEILING_DBTP,
                    window_ms: float = LIMITER_WINDOW_MS, *,
                    envelope: np.ndarray | None = None) -> tuple[np.ndarray, float, float]:
    """Bring the true peak of `(channels, samples)` audio to at most `ceiling_dbtp`; returns the
    audio (float32; `x` itself when nothing was over), the largest gain reduction in dB and the
    true peak reached in dBTP. `envelope` is `true_peak_envelope(x)` when the caller has it.

    The look-ahead limiter of `dsp.peak_limit` (a minimum filter over two windows, smoothed over
    one, so only the overs and a few ms around them move) driven by the true-peak envelope.
    A smooth gain changes inter-sample peaks a little differently from samples, so the remaining
    overs are limited again; a plain gain after `LIMIT_PASSES` guarantees the ceiling."""
    ceiling = 10 ** (ceiling_dbtp / 20)
    aim = 10 ** ((ceiling_dbtp - TRUE_PEAK_MARGIN_DB) / 20)
    half = max(1, int(round(window_ms * 1e-3 * sr)))
    env = true_peak_envelope(x) if envelope is None else envelope
    peak = float(env.max()) if env.size else 0.0
    total, y = None, x
    for _ in range(LIMIT_PASSES):
        if peak <= ceiling:
            break
        need = np.minimum(1.0, aim / np.maximum(env, 1e-12))
        gain = np.minimum(uniform_filter1d(minimum_filter1d(need, 2 * half + 1, mode="nearest"), half,
                                           mode="nearest"), need).astype(np.float32)
        total = gain if total is None else total * gain
        y = np.multiply(x, total, dtype=np.float32)
        env = true_peak_envelope(y)
        peak = float(env.max())
    else:
        if peak > ceiling:  # the filter is linear: a plain gain scales the true peak exactly
            total *= np.float32(aim / peak)
            y = np.multiply(x, total, dtype=np.float32)
            peak = float(true_peak_envelope(y).max())
    return y, 0.0 if total is None else -20.0 * math.log10(float(total.min())), _dbtp(peak)


@dataclass(frozen=True)
class LoudnessResult:
    """What the loudness target did. Loudness in LUFS (BS.1770 integrated; NaN under 0.4 s,
    -inf for silence), true peaks in dBTP."""

    target_lufs: float | None
    ceiling_dbtp: float
    input_lufs: float
    reached_lufs: float
    true_peak_in_dbtp: float
    true_peak_dbtp: float
    gain_db: float
    """The plain gain applied before the limiter (includes make-up for what it took)."""
    limiter_reduction_db: float
    """The largest reduction the true-peak limiter applied; 0 when nothing was over the ceiling."""
    passes: int
    status: str
    """`reached`, `short-of-target` (the limiter holds it lower), `over-target` (passes ran
    out; not seen in tests), `silence`, `below-gate`,
    `too-short` (no loudness: no gain) or `ceiling-only` (no target)."""
    note: str

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def normalize_loudness(x: np.ndarray, sr: int, target_lufs: float | None,
                       ceiling_dbtp: float = DEFAULT_CEILING_DBTP) -> tuple[np.ndarray, LoudnessResult]:
    """Gain `(channels, samples)` audio to `target_lufs` (None: no gain) with its true peak at
    most `ceiling_dbtp`. When the gain puts peaks over the ceiling the true-peak limiter takes
    them down, which costs loudness; the make-up gain is raised (secant steps) and the limiter
    rerun until the result is within `LOUDNESS_TOLERANCE_LU`. Silence, audio under BS.1770's
    -70 LUFS gate and clips under its 0.4 s block have no loudness: they get no gain (the
    ceiling still holds)."""
    env_in = true_peak_envelope(x)  # scales with the gain: the limiter's first pass reuses it
    l_in, tp_in = loudness_lufs(x, sr), _dbtp(float(env_in.max()) if env_in.size else 0.0)
    gain = 0.0
    status, note = "ceiling-only", "no loudness target"
    if target_lufs is not None:
        if math.isnan(l_in):
            status, note = "too-short", "shorter than BS.1770's 0.4 s block: loudness undefined, no gain applied"
        elif l_in == -math.inf and not x.any():
            status, note = "silence", "digital silence: loudness undefined, no gain applied"
        elif l_in == -math.inf:
            status, note = "below-gate", "every block is under BS.1770's -70 LUFS gate: loudness undefined, no gain applied"
        else:
            gain, status = target_lufs - l_in, "seeking"
    seek = status == "seeking"
    history: list[tuple[float, float]] = []
    passes = 0
    while True:
        passes += 1
        y, reduction, tp = true_peak_limit(scaled(x, gain), sr, ceiling_dbtp,
                                           envelope=env_in * np.float32(10 ** (gain / 20)))
        reached = loudness_lufs(y, sr)
        if not seek:
            break
        error = target_lufs - reached
        history.append((gain, reached))
        if abs(error) <= LOUDNESS_TOLERANCE_LU or passes >= LOUDNESS_PASSES:
            break
        slope = 1.0
        if len(history) > 1 and history[-1][0] != history[-2][0]:
            slope = (history[-1][1] - history[-2][1]) / (history[-1][0] - history[-2][0])
        step = error / min(1.0, max(0.25, slope))  # the limiter makes the slope < 1; steps stay bounded
        new_gain = min(gain + step, target_lufs - l_in + MAX_MAKEUP_DB)
        if new_gain <= gain + 1e-3 and error > 0:
            break  # make-up gain is at its bound: the limiter holds the loudness here
        gain = new_gain
    if seek:
        if abs(target_lufs - reached) <= LOUDNESS_TOLERANCE_LU:
            status, note = "reached", f"{reached:.2f} LUFS, true peak {tp:.2f} dBTP"
        else:
            status = "short-of-target" if reached < target_lufs else "over-target"
            note = (f"the {ceiling_dbtp:.1f} dBTP ceiling holds it at {reached:.2f} LUFS" if reached < target_lufs
                    else f"{reached:.2f} LUFS after {passes} passes")
    return y, LoudnessResult(target_lufs, ceiling_dbtp, l_in, reached, tp_in, tp, gain,
                             reduction, passes, status, note)


def residual(output: np.ndarray, input: np.ndarray) -> np.ndarray:
    """What a restoration removed or added: `output - input`, `(channels, samples)` float32. Both
    must be sample-aligned at one rate with one channel layout (the pipeline keeps them so);
    resample or remap first, since a difference across rates would be meaningless."""
    if output.shape != input.shape:
        raise DeliveryError(f"residual needs two signals of one shape (channels, samples), got "
                            f"{output.shape} and {input.shape}: bring them to one rate and layout first")
    return np.subtract(output, input, dtype=np.float32)
