"""Controlled, seeded damage for the paired benchmark: take clean `(channels, samples)` float32
audio, apply a declared degradation, and return the damaged audio with a record of what was
applied, including its MEASURED effect (not just the requested parameters).

Degradations (each alone, or chained, as `combined` does):
- `noise`: additive stationary noise, `white` or `pink` (-3 dB/octave from 20 Hz), scaled so its
  RMS over all channels is exactly `rms_dbfs`; independent per channel.
- `codec`: a lossy MP3 pass (LAME through pedalboard's `MP3Compressor`, VBR quality 0-10,
  higher = worse). pedalboard compensates the encoder delay: measured lag 0 samples.
- `bandlimit`: a steep zero-phase elliptic low-pass (scipy `iirdesign` + `sosfiltfilt`); nothing
  to do when the cutoff is at or above the clip's Nyquist frequency.
- `resample`: down to a lower rate and back with soxr (VHQ), as files that went through a 32, 22.05
  or 16 kHz stage reach users: the band above the lower rate's Nyquist is gone; same length, no
  delay. Nothing to do when the clip's own rate is at or below that rate.
- `hum`: mains hum, a fundamental and its harmonics (amplitude 1/k, seeded phases), the same
  in every channel, scaled to `rms_dbfs`.
- `dc`: a constant offset.
- `overs`: one gain that puts the sample peak at `peak` (above full scale), as MusicGen's float
  outputs have.

Named degradations (`NAMED`, `parse`): `clean`, `white-45`, `pink-60` (any level: `white-NN`),
`codec` (`codec-Q`), `bandlimit`, `resample-32k`, `resample-22k` (22.05 kHz), `resample-16k`, `hum`,
`hum-60hz`, `dc`, `overs`, `combined`. Names joined by `+` are applied left to right:
`codec+resample-16k` is the codec pass, then the trip through 16 kHz (what the spectral-recovery
goals call "band-limited + codec"); `resample-16k+codec` the other order.

Every record also carries the damaged mix's effective cutoff (`lost_band_hz`), measured against
the clean clip: where the band it lost begins, or NaN when it lost none.

For clips with stems, `apply_to_stems` applies the SAME realisation to the mix and distributes
it so that the stems still add up to the degraded mix (see its docstring for the split).
"""

from __future__ import annotations

import math
import re
import zlib
from dataclasses import dataclass, field

import numpy as np
import pedalboard
import scipy.signal
import soxr

from ..core import levels

# --- named defaults -------------------------------------------------------------------------
NOISE_LEVELS_DBFS = (-60.0, -50.0, -45.0, -40.0)
PINK_LOW_HZ = 20.0
"""Pink noise is flat below this frequency (and has no DC): 1/f down to 0 Hz would put most of
a 5 s realisation's energy at sub-audio frequencies."""
CODEC_VBR_QUALITY = 7.0
"""LAME VBR quality for `codec` (0 best, 10 worst); 7 is a low-bitrate encode (on musicgen-dev:
SI-SDR about 20 dB, bandwidth cut to about 14 kHz)."""
BANDLIMIT_HZ = 16000.0
BANDLIMIT_STOP_HZ = 16500.0
BANDLIMIT_STOP_DB = 70.0
"""Stop-band attenuation of ONE pass of the elliptic design; `sosfiltfilt` runs it twice."""
BANDLIMIT_RIPPLE_DB = 0.05
RESAMPLE_RATES_HZ = {"32k": 32000, "22k": 22050, "16k": 16000}
"""`resample-<name>`: MusicGen is a 32 kHz model; AudioLDM and kin generate at 16 kHz, and some
published MusicGen outputs were resampled to 16 kHz; 22.05 kHz is the classic half rate."""
SOXR_QUALITY = "VHQ"
CUTOFF_WELCH_N = 8192
CUTOFF_KEPT_DB = -20.0
CUTOFF_CONTENT_DB = 80.0
CUTOFF_MIN_LOST_HZ = 500.0
"""`lost_band_hz`: on the long-term spectra (Welch, CUTOFF_WELCH_N-point Hann, mono downmix), a bin
of the clean clip has content when it is within CUTOFF_CONTENT_DB of the clean clip's strongest
bin at or above 400 Hz; the damaged clip keeps a bin when its power there is at least
CUTOFF_KEPT_DB re the clean clip's. The cutoff is the highest kept content bin, when the content
bins above it span at least CUTOFF_MIN_LOST_HZ (else nothing was lost: NaN)."""
CUTOFF_REF_HZ = 400.0
HUM_HZ = 50.0
HUM_HARMONICS = 5
HUM_RMS_DBFS = -45.0
DC_OFFSET = 0.1
OVERS_PEAK = 1.5
COMBINED_NOISE_DBFS = -50.0
COMBINED_HUM_DBFS = -55.0
COMBINED_DC = 0.05

STEM_SPLIT_N_FFT = 2048
STEM_SPLIT_HOP = 512
STEM_SPLITS = ("mask", "other", "vocals")


@dataclass(frozen=True)
class Degradation:
    """One declared degradation: its kind and parameters."""

    kind: str
    params: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Applied:
    """One degradation as applied: what was asked, with which seed, and what it measurably did."""

    kind: str
    params: dict
    seed: int
    measured: dict

    def to_dict(self) -> dict:
        return {"kind": self.kind, "params": dict(self.params), "seed": self.seed, "measured": dict(self.measured)}

    def summary(self) -> str:
        p = ", ".join(f"{k}={v}" for k, v in self.params.items())
        m = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in self.measured.items())
        return f"{self.kind}({p}) -> {m}"


@dataclass(frozen=True)
class Record:
    """A named degradation as applied: its steps in order, and the damaged mix's effective cutoff
    (`lost_band_hz`; NaN when it lost no band)."""

    name: str
    seed: int
    steps: tuple[Applied, ...]
    cutoff_hz: float = math.nan

    def to_dict(self) -> dict:
        return {"name": self.name, "seed": self.seed, "steps": [s.to_dict() for s in self.steps],
                "cutoff_hz": self.cutoff_hz if math.isfinite(self.cutoff_hz) else None}

    def summary(self) -> str:
        steps = "; ".join(s.summary() for s in self.steps) if self.steps else "none"
        return steps + (f"; band lost above {self.cutoff_hz / 1000:.2f} kHz" if math.isfinite(self.cutoff_hz) else "")


# --- measuring ------------------------------------------------------------------------------


def rms_dbfs_of_difference(y: np.ndarray, x: np.ndarray) -> float:
    """RMS of `y - x` in dBFS: the measured level of what a degradation added."""
    return levels.rms_dbfs(y.astype(np.float64) - x.astype(np.float64))


# --- the degradations -----------------------------------------------------------------------


def _pink(shape: tuple[int, int], sr: int, rng: np.random.Generator) -> np.ndarray:
    white = rng.standard_normal(shape)
    spec = np.fft.rfft(white, axis=1)
    f = np.fft.rfftfreq(shape[1], 1.0 / sr)
    shaping = 1.0 / np.sqrt(np.maximum(f, PINK_LOW_HZ))
    shaping[0] = 0.0
    return np.fft.irfft(spec * shaping, n=shape[1], axis=1)


def noise(x: np.ndarray, sr: int, color: str = "white", rms_dbfs: float = -45.0,
          seed: int = 0) -> tuple[np.ndarray, Applied]:
    """Add stationary `white` or `pink` noise whose RMS over all channels is `rms_dbfs`."""
    if color not in ("white", "pink"):
        raise ValueError(f"noise color must be white or pink, not {color!r}")
    rng = np.random.default_rng(seed)
    n = rng.standard_normal(x.shape) if color == "white" else _pink(x.shape, sr, rng)
    n = n * (10 ** (rms_dbfs / 20) / np.sqrt(np.mean(n**2)))
    y = (x + n).astype(np.float32)
    return y, Applied("noise", {"color": color, "rms_dbfs": rms_dbfs}, seed,
                      {"noise_rms_dbfs": rms_dbfs_of_difference(y, x)})


def codec(x: np.ndarray, sr: int, vbr_quality: float = CODEC_VBR_QUALITY, seed: int = 0) -> tuple[np.ndarray, Applied]:
    """One MP3 encode/decode (LAME VBR) at `vbr_quality`; same shape out (pedalboard
    compensates the encoder's delay). `seed` is recorded only: the encoder is deterministic."""
    enc = pedalboard.MP3Compressor(vbr_quality=float(vbr_quality))
    y = enc(np.ascontiguousarray(x, dtype=np.float32), sr, reset=True)
    y = _fit(np.asarray(y, dtype=np.float32), x.shape[1])
    return y, Applied("codec", {"encoder": "LAME (pedalboard.MP3Compressor)", "vbr_quality": float(vbr_quality)},
                      seed, {"error_rms_dbfs": rms_dbfs_of_difference(y, x),
                             "error_re_signal_db": rms_dbfs_of_difference(y, x) - levels.rms_dbfs(x)})


def _fit(y: np.ndarray, n: int) -> np.ndarray:
    return y[:, :n] if y.shape[1] >= n else np.pad(y, ((0, 0), (0, n - y.shape[1])))


def lowpass_sos(sr: int, cutoff_hz: float = BANDLIMIT_HZ, stop_hz: float = BANDLIMIT_STOP_HZ) -> np.ndarray:
    """The steep elliptic low-pass `bandlimit` runs forwards and backwards."""
    return scipy.signal.iirdesign(cutoff_hz, stop_hz, BANDLIMIT_RIPPLE_DB / 2, BANDLIMIT_STOP_DB,
                                  ftype="ellip", output="sos", fs=sr)


def bandlimit(x: np.ndarray, sr: int, cutoff_hz: float = BANDLIMIT_HZ, stop_hz: float = BANDLIMIT_STOP_HZ,
              seed: int = 0) -> tuple[np.ndarray, Applied]:
    """Zero-phase steep low-pass: flat to `cutoff_hz`, below -BANDLIMIT_STOP_DB x 2 from `stop_hz`.
    A clip whose Nyquist frequency is at or below `cutoff_hz` has nothing to cut: returned as is."""
    params = {"cutoff_hz": cutoff_hz, "stop_hz": stop_hz, "filter": "elliptic, zero-phase"}
    if 0 < cutoff_hz and sr / 2 <= cutoff_hz:
        return x.astype(np.float32), Applied("bandlimit", params, seed, {"nothing_above_cutoff_at_hz": float(sr)})
    if not 0 < cutoff_hz < stop_hz < sr / 2:
        raise ValueError(f"bandlimit needs 0 < cutoff_hz < stop_hz < {sr / 2:.0f} Hz")
    y = scipy.signal.sosfiltfilt(lowpass_sos(sr, cutoff_hz, stop_hz), x.astype(np.float64), axis=1).astype(np.float32)
    return y, Applied("bandlimit", params, seed,
                      {"removed_energy_re_signal_db": rms_dbfs_of_difference(y, x) - levels.rms_dbfs(x)})


def resample(x: np.ndarray, sr: int, rate_hz: int = 16000, seed: int = 0) -> tuple[np.ndarray, Applied]:
    """Down to `rate_hz` and back to `sr` with soxr (VHQ, whole signal: no delay); same shape out.
    A clip at or below `rate_hz` is returned as is (its band already ends there)."""
    params = {"rate_hz": int(rate_hz), "resampler": f"soxr {SOXR_QUALITY}"}
    if rate_hz <= 0:
        raise ValueError(f"resample needs a positive rate, not {rate_hz}")
    if rate_hz >= sr:
        return x.astype(np.float32), Applied("resample", params, seed, {"nothing_to_do_at_hz": float(sr)})
    down = soxr.resample(np.ascontiguousarray(x.T, dtype=np.float32), sr, rate_hz, quality=SOXR_QUALITY)
    up = soxr.resample(down, rate_hz, sr, quality=SOXR_QUALITY)
    y = _fit(np.ascontiguousarray(np.asarray(up, dtype=np.float32).reshape(len(up), -1).T), x.shape[1])
    return y, Applied("resample", params, seed,
                      {"removed_energy_re_signal_db": rms_dbfs_of_difference(y, x) - levels.rms_dbfs(x)})


def lost_band_hz(clean: np.ndarray, damaged: np.ndarray, sr: int) -> float:
    """The damaged clip's effective cutoff in Hz, measured against its clean original (see
    CUTOFF_MIN_LOST_HZ for the rule): where the band it lost begins; NaN when it lost none, as
    after added noise or a gain. Both `(channels, samples)` at `sr`."""
    n = min(CUTOFF_WELCH_N, clean.shape[-1])
    f, pc = scipy.signal.welch(levels.downmix(levels.as_2d(clean)), sr, nperseg=n)
    _, pd = scipy.signal.welch(levels.downmix(levels.as_2d(damaged)), sr, nperseg=n)
    above = f >= CUTOFF_REF_HZ
    if not above.any() or pc[above].max() <= 0.0:
        return math.nan
    content = pc >= pc[above].max() * 10.0 ** (-CUTOFF_CONTENT_DB / 10.0)
    kept = content & (pd >= pc * 10.0 ** (CUTOFF_KEPT_DB / 10.0))
    top_content = float(f[np.flatnonzero(content)[-1]])
    top_kept = float(f[np.flatnonzero(kept)[-1]]) if kept.any() else 0.0
    return top_kept if top_content - top_kept >= CUTOFF_MIN_LOST_HZ else math.nan


def hum(x: np.ndarray, sr: int, freq_hz: float = HUM_HZ, harmonics: int = HUM_HARMONICS,
        rms_dbfs: float = HUM_RMS_DBFS, seed: int = 0) -> tuple[np.ndarray, Applied]:
    """Add mains hum: `freq_hz` and its first `harmonics` multiples (amplitude 1/k, phases from
    `seed`), identical in every channel, RMS `rms_dbfs`."""
    rng = np.random.default_rng(seed)
    t = np.arange(x.shape[1]) / sr
    ks = [k for k in range(1, harmonics + 1) if k * freq_hz < sr / 2]
    h = sum(np.sin(2 * np.pi * k * freq_hz * t + rng.uniform(0, 2 * np.pi)) / k for k in ks)
    h = h * (10 ** (rms_dbfs / 20) / np.sqrt(np.mean(h**2)))
    y = (x + h[np.newaxis, :]).astype(np.float32)
    return y, Applied("hum", {"freq_hz": freq_hz, "harmonics": len(ks), "rms_dbfs": rms_dbfs}, seed,
                      {"hum_rms_dbfs": rms_dbfs_of_difference(y, x)})


def dc(x: np.ndarray, sr: int, offset: float = DC_OFFSET, seed: int = 0) -> tuple[np.ndarray, Applied]:
    """Add a constant `offset` to every sample."""
    y = (x + np.float32(offset)).astype(np.float32)
    return y, Applied("dc", {"offset": offset}, seed,
                      {"mean_change": float(np.mean(y, dtype=np.float64) - np.mean(x, dtype=np.float64))})


def overs(x: np.ndarray, sr: int, peak: float = OVERS_PEAK, seed: int = 0) -> tuple[np.ndarray, Applied]:
    """One gain so that the sample peak is `peak` (above 1.0: over full scale)."""
    p = levels.peak(x)
    gain = peak / p if p > 0 else 1.0
    y = (x * gain).astype(np.float32)
    return y, Applied("overs", {"peak": peak}, seed,
                      {"gain_db": float(20 * np.log10(gain)), "peak": levels.peak(y),
                       "samples_over_full_scale": int(np.sum(np.abs(y) > 1.0))})


KINDS = {"noise": noise, "codec": codec, "bandlimit": bandlimit, "resample": resample, "hum": hum, "dc": dc,
         "overs": overs}
LINEAR_KINDS = ("bandlimit", "resample", "overs")
"""Linear, time-invariant kinds: applied to each stem they give stems that still add up to the
damaged mix. Everything else is distributed to stems as a difference signal."""


# --- named degradations -----------------------------------------------------------------------


def _named() -> dict[str, tuple[Degradation, ...]]:
    named: dict[str, tuple[Degradation, ...]] = {"clean": ()}
    for color in ("white", "pink"):
        for level in NOISE_LEVELS_DBFS:
            named[f"{color}{int(level)}"] = (Degradation("noise", {"color": color, "rms_dbfs": level}),)
    named.update({
        "codec": (Degradation("codec", {"vbr_quality": CODEC_VBR_QUALITY}),),
        "bandlimit": (Degradation("bandlimit", {"cutoff_hz": BANDLIMIT_HZ}),),
        **{f"resample-{k}": (Degradation("resample", {"rate_hz": v}),) for k, v in RESAMPLE_RATES_HZ.items()},
        "hum": (Degradation("hum", {"freq_hz": HUM_HZ, "rms_dbfs": HUM_RMS_DBFS}),),
        "hum-60hz": (Degradation("hum", {"freq_hz": 60.0, "rms_dbfs": HUM_RMS_DBFS}),),
        "dc": (Degradation("dc", {"offset": DC_OFFSET}),),
        "overs": (Degradation("overs", {"peak": OVERS_PEAK}),),
        # What a MusicGen file that went through a poor chain might carry: hiss and hum, a
        # band-limit, a lossy encode, then an offset and overs from float export.
        "combined": (Degradation("noise", {"color": "white", "rms_dbfs": COMBINED_NOISE_DBFS}),
                     Degradation("hum", {"freq_hz": HUM_HZ, "rms_dbfs": COMBINED_HUM_DBFS}),
                     Degradation("bandlimit", {"cutoff_hz": BANDLIMIT_HZ}),
                     Degradation("codec", {"vbr_quality": CODEC_VBR_QUALITY}),
                     Degradation("dc", {"offset": COMBINED_DC}),
                     Degradation("overs", {"peak": OVERS_PEAK})),
    })
    return named


NAMED: dict[str, tuple[Degradation, ...]] = _named()
DEFAULT_SET = ("clean", "white-60", "white-50", "white-45", "white-40", "pink-60", "pink-50", "pink-45",
               "pink-40", "codec", "bandlimit", "hum", "dc", "overs", "combined")

_PATTERN = re.compile(r"^(white|pink)-(\d+(?:\.\d+)?)$|^codec-(\d+(?:\.\d+)?)$")


def parse(name: str) -> tuple[Degradation, ...]:
    """The steps of a named degradation; `white-NN` / `pink-NN` (noise at -NN dBFS) and
    `codec-Q` take any level; `a+b` is `a`'s steps, then `b`'s. Raises ValueError with the
    known names."""
    if "+" in name:
        return tuple(step for part in name.split("+") for step in parse(part))
    if name in NAMED:
        return NAMED[name]
    m = _PATTERN.match(name)
    if m and m.group(1):
        return (Degradation("noise", {"color": m.group(1), "rms_dbfs": -float(m.group(2))}),)
    if m and m.group(3) is not None and 0.0 <= float(m.group(3)) <= 10.0:
        return (Degradation("codec", {"vbr_quality": float(m.group(3))}),)
    raise ValueError(f"unknown degradation {name!r}; known: {', '.join(NAMED)} (also white-NN, pink-NN, codec-Q, "
                     "and names joined by + to apply them in turn)")


def step_seed(seed: int, index: int) -> int:
    """Each step of a chain gets its own seed, derived from the chain's."""
    return (seed * 1009 + index) % (2**31)


def clip_seed(base_seed: int, *names: str) -> int:
    """A stable seed for (clip, degradation) pairs: the same case gets the same realisation in
    every run and every process (Python's `hash` is salted per process; crc32 is not)."""
    return (base_seed + zlib.crc32("/".join(names).encode())) % (2**31)


def apply(name: str, x: np.ndarray, sr: int, seed: int = 0) -> tuple[np.ndarray, Record]:
    """Apply the named degradation to `(channels, samples)` float32 audio; same shape out."""
    y = np.ascontiguousarray(x, dtype=np.float32)
    applied = []
    for i, step in enumerate(parse(name)):
        y, a = KINDS[step.kind](y, sr, **step.params, seed=step_seed(seed, i))
        applied.append(a)
    return y, Record(name, seed, tuple(applied), lost_band_hz(x, y, sr) if applied else math.nan)


# --- stems ------------------------------------------------------------------------------------


def split_difference(d: np.ndarray, stems: dict[str, np.ndarray], sr: int) -> dict[str, np.ndarray]:
    """Share the difference signal `d` among `stems` with soft time-frequency masks proportional
    to each stem's power (the masks sum to one, so the shares add up to `d`); bins where no
    stem has any power go to `other`. This is what an ideal mask-based separator does with
    noise: each stem keeps the part that overlaps it."""
    stft = scipy.signal.ShortTimeFFT(scipy.signal.windows.hann(STEM_SPLIT_N_FFT, sym=False), STEM_SPLIT_HOP, sr)
    names = list(stems)
    powers = [np.abs(stft.stft(s.astype(np.float64), axis=-1)) ** 2 for s in stems.values()]
    total = np.sum(powers, axis=0)
    empty = total <= 1e-12 * max(float(total.max()), 1e-30)
    D = stft.stft(d.astype(np.float64), axis=-1)
    shares = {}
    for name, p in zip(names, powers):
        mask = np.where(empty, 1.0 if name == "other" else 0.0, p / np.where(empty, 1.0, total))
        shares[name] = stft.istft(mask * D, k1=d.shape[1])
    shares.setdefault("other", np.zeros_like(d, dtype=np.float64))
    # Put the reconstruction's rounding error in `other`, so the shares add up exactly.
    shares["other"] = shares["other"] + (d - sum(shares.values()))
    return shares


def apply_to_stems(name: str, mix: np.ndarray, stems: dict[str, np.ndarray], sr: int, seed: int = 0,
                   split: str = "mask") -> tuple[np.ndarray, dict[str, np.ndarray], Record]:
    """Degrade `mix` exactly as `apply` does, and give the stems the same damage so that they
    add up to the degraded mix (assuming the clean stems add up to `mix`).

    Linear, time-invariant steps (`bandlimit`, `resample`, `overs`) are applied to each stem. For the other
    steps the difference they make to the mix is distributed with `split`:
    - `mask`: by soft masks from the stems' powers (`split_difference`): an ideal separator;
    - `other`: all of it into `other` (drums and bass stay clean: an optimistic separator);
    - `vocals`: all of it into a `vocals` stem, which is noise-only for additive noise; this is
      what Demucs does with MusicGen's residual noise on clips that have no vocals.
    """
    if split not in STEM_SPLITS:
        raise ValueError(f"split must be one of {STEM_SPLITS}, not {split!r}")
    y = np.ascontiguousarray(mix, dtype=np.float32)
    out = {k: np.asarray(v, dtype=np.float64) for k, v in stems.items()}
    applied = []
    for i, step in enumerate(parse(name)):
        y_next, a = KINDS[step.kind](y, sr, **step.params, seed=step_seed(seed, i))
        applied.append(a)
        if step.kind in LINEAR_KINDS:
            if step.kind == "overs":
                gain = 10 ** (a.measured["gain_db"] / 20)
                out = {k: v * gain for k, v in out.items()}
            else:  # the same filter on every stem (in float32, as on the mix)
                out = {k: KINDS[step.kind](v.astype(np.float32), sr, **step.params)[0].astype(np.float64)
                       for k, v in out.items()}
        else:
            d = y_next.astype(np.float64) - y.astype(np.float64)
            if split == "mask":
                for k, share in split_difference(d, out, sr).items():
                    out[k] = out.get(k, 0.0) + share
            else:
                out[split] = out.get(split, np.zeros_like(d)) + d
        y = y_next
    # Float32 rounding of the mix differs from the stems' float64 arithmetic; fold it into one
    # stem so the sum is exact to float32 precision.
    target = "vocals" if split == "vocals" else "other"
    out[target] = out.get(target, np.zeros(y.shape)) + (y.astype(np.float64) - sum(out.values()))
    record = Record(name, seed, tuple(applied), lost_band_hz(mix, y, sr) if applied else math.nan)
    return y, {k: v.astype(np.float32) for k, v in out.items()}, record
