"""What limits spectral recovery on codec input: the `spectral_recovery` step beside versions of
it that are told part of the truth by the clean original, on the real-music development corpus.

Each variant changes only the band above the detected cutoff (STFT 2048, hop 512), so their
differences say which knowledge of the missing band buys how much ViSQOL:

  step            the step as `adaptive` runs it (library defaults)
  no gap refill   the step without refilling the codec's gaps below the cutoff (`gaps.py`)
  true below      the original's band from 4 kHz to the cutoff put back, then the step: what a
                  perfect repair of the codec's damage below the wall would add
  true band       the original's own band above the cutoff: the ceiling for any recovery
  true >16 kHz    the original's band above 16 kHz only; the codec's band below it left as it is
  ideal level     the step's band, each 1/6 octave scaled to the original's long-term level
  ideal frames    the step's band, each 1/6 octave in each frame scaled to the original's level
  frames below    (no oracle) the step's band, each frame's level taken from the octave below
                  the cutoff instead of the 0.3 octave the step copies
  tilt below      (no oracle) the step's band tilted per frame as the octave below it tilts

Scores as `eval/recovery_dev.py` (ViSQOL v3 audio mode against the clean excerpt; LSD from the
cutoff to 20 kHz); halves as there.

    python eval/recovery_oracle.py --real CORPORA/real-dev --conditions cr32,r22 --out eval/results
    python eval/recovery_oracle.py --midi CORPORA/midi-dev --conditions r22 --out eval/results
"""

from __future__ import annotations

import argparse
import statistics
import sys
from multiprocessing import Pool
from pathlib import Path

import numpy as np
from scipy.ndimage import uniform_filter1d

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import recovery_dev as rd  # noqa: E402

from adaptive_argm.core import spectral  # noqa: E402
from adaptive_argm.core.recovery import RecoverySettings, recover  # noqa: E402

N_FFT, HOP = 2048, 512
VARIANTS = ("step", "no gap refill", "true below", "true band", "true >16 kHz", "ideal level", "ideal frames",
            "frames below", "tilt below")
BAND_OCTAVES = 1.0 / 6.0
FRAME_CLAMP_DB = 12.0
"""The no-oracle variants move a frame's level at most this far from the step's."""
MIDI_EXCERPT_S = 10.0
"""As `eval/recovery_dev.py --midi-excerpt-s 10`, the multitrack tables' excerpts."""
TRUE_BELOW_FROM_HZ = 4000.0
"""Bottom of the band "true below" puts back (the codec leaves the band under it within 0.5 dB)."""


def _stft(x: np.ndarray) -> tuple[np.ndarray, int]:
    """The spectrogram on the grid covering `x`, and the grid's first frame start."""
    first, count = spectral.covering_grid(x.shape[1], HOP, N_FFT)
    return spectral.stft(x, N_FFT, HOP, first, count), first


def _istft(spec: np.ndarray, first: int, n: int) -> np.ndarray:
    return spectral.istft(spec, N_FFT, HOP, first, n).astype(np.float32)


def _bands(cutoff_hz: float, f_hz: np.ndarray) -> list[np.ndarray]:
    """Masks of the 1/6-octave bands from the cutoff up."""
    edges = cutoff_hz * 2.0 ** (np.arange(0, 16) * BAND_OCTAVES)
    return [m for lo, hi in zip(edges[:-1], edges[1:]) if (m := (f_hz >= lo) & (f_hz < hi)).any()]


def _energy(spec: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Energy per frame of the bins in `mask`, summed over channels: `(frames,)`."""
    return spectral.power(spec[..., mask]).sum(axis=(0, 2)) + 1e-20


def variants(x: np.ndarray, y: np.ndarray, z: np.ndarray, cutoff_hz: float, sr: int) -> dict[str, np.ndarray]:
    """Every variant's output for clean `x`, band-limited `y` and the step's output `z`."""
    n = x.shape[1]
    (X, first), (Y, _), (Z, _) = _stft(x), _stft(y), _stft(z)
    f_hz = np.fft.rfftfreq(N_FFT, 1.0 / sr)
    above = f_hz >= cutoff_hz
    out = {"step": z}

    def graft(lo_hz: float) -> np.ndarray:
        spec = Y.copy()
        m = f_hz >= lo_hz
        spec[..., m] = X[..., m]
        return _istft(spec, first, n)

    out["no gap refill"] = recover(y, sr, RecoverySettings(fill_codec_gaps=False))[0]
    below = Y.copy()
    m = (f_hz >= TRUE_BELOW_FROM_HZ) & (f_hz < cutoff_hz)
    below[..., m] = X[..., m]
    out["true below"] = recover(_istft(below, first, n), sr, RecoverySettings())[0]
    out["true band"] = graft(cutoff_hz)
    out["true >16 kHz"] = graft(max(cutoff_hz, 16000.0))
    for name, per_frame in (("ideal level", False), ("ideal frames", True)):
        spec = Z.copy()
        for m in _bands(cutoff_hz, f_hz):
            ex, ez = _energy(X, m), _energy(Z, m)
            g = np.sqrt(ex / ez) if per_frame else np.sqrt(ex.sum() / ez.sum())
            spec[..., m] *= np.reshape(g, (-1, 1)) if per_frame else g
        out[name] = _istft(spec, first, n)
    # The no-oracle variants reshape the added band only (z - y) by a per-frame gain in dB.
    D = Z - Y
    D[..., ~above] = 0

    def reshaped(gain_db: np.ndarray) -> np.ndarray:
        g = 10.0 ** (np.clip(gain_db, -FRAME_CLAMP_DB, FRAME_CLAMP_DB) / 20.0)
        return y + _istft(D * g.astype(np.float32), first, n)

    src = _energy(Y, (f_hz >= cutoff_hz * 2.0 ** -0.3) & (f_hz < cutoff_hz))
    ref = _energy(Y, (f_hz >= cutoff_hz / 2.0) & (f_hz < cutoff_hz))
    db = lambda e: 10.0 * np.log10(e / e.mean())  # noqa: E731
    out["frames below"] = reshaped((db(ref) - db(src))[:, np.newaxis])
    centres = cutoff_hz * 2.0 ** -np.arange(BAND_OCTAVES / 2, 1.0, BAND_OCTAVES)
    levels = np.stack([10.0 * np.log10(uniform_filter1d(
        _energy(Y, (f_hz >= c * 2.0 ** (-BAND_OCTAVES / 2)) & (f_hz < c * 2.0 ** (BAND_OCTAVES / 2))), 9))
        for c in centres])  # (bands, frames)
    o = np.log2(centres / cutoff_hz) - np.log2(centres / cutoff_hz).mean()
    slope_t = o @ (levels - levels.mean(axis=0)) / (o @ o)
    lt = 10.0 * np.log10((10.0 ** (levels / 10.0)).mean(axis=1))
    slope_lt = o @ (lt - lt.mean()) / (o @ o)
    octaves_above = np.log2(np.maximum(f_hz, cutoff_hz) / cutoff_hz)
    out["tilt below"] = reshaped(((slope_t - slope_lt)[:, np.newaxis] * octaves_above[np.newaxis, :]))
    return out


def job(args: tuple[str, str, str, str, float | None]) -> list[dict]:
    clip, half, path, cond, excerpt_s = args
    x, sr = rd.read(path)
    x = rd.excerpt(x, sr, excerpt_s)
    y = rd.degrade(cond, x, sr)
    z, rep = recover(y, sr, RecoverySettings())
    if not rep.acted:
        return []
    v_in, l_in = rd.visqol(x, y, sr), rd.lsd_above(x, y, sr, rep.cutoff_hz)
    return [{"clip": clip, "half": half, "condition": cond, "variant": name, "cutoff_hz": rep.cutoff_hz,
             "visqol_change": rd.visqol(x, v, sr) - v_in,
             "lsd_reduction": 1.0 - rd.lsd_above(x, v, sr, rep.cutoff_hz) / l_in}
            for name, v in variants(x, y, z, rep.cutoff_hz, sr).items()]


def table(rows: list[dict], cond: str) -> list[str]:
    lines = [f"### {cond}", "",
             "| variant | ViSQOL change, half A: mean / worst | half B | all | LSD reduction, all: mean / worst |",
             "|---|---|---|---|---|"]
    for name in VARIANTS:
        cells = []
        for half in ("A", "B", "all"):
            sel = [r for r in rows if r["condition"] == cond and r["variant"] == name and half in ("all", r["half"])]
            if not sel:
                cells.append("–")
                continue
            worst = min(sel, key=lambda r: r["visqol_change"])
            cells.append(f"{statistics.fmean(r['visqol_change'] for r in sel):+.3f} / "
                         f"{worst['visqol_change']:+.3f} ({worst['clip']})")
        sel = [r for r in rows if r["condition"] == cond and r["variant"] == name]
        lsd = (f"{statistics.fmean(r['lsd_reduction'] for r in sel):.0%} / {min(r['lsd_reduction'] for r in sel):.0%}"
               if sel else "–")
        lines.append(f"| {name} | {' | '.join(cells)} | {lsd} |")
    return lines + [""]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--real", help="real-music corpus folder (manifest.json + WAVs)")
    ap.add_argument("--midi", help="instead, the multitrack corpus folder: each song's mix, its middle 10 s")
    ap.add_argument("--conditions", default="cr32,r22", help="conditions of eval/recovery_dev.py")
    ap.add_argument("--out", default="eval/results")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    if bool(args.real) == bool(args.midi):
        sys.exit("error: give one of --real DIR or --midi DIR")
    conds = [c for c in args.conditions.split(",") if c]
    bad = [c for c in conds if c not in rd.LOW_RATES]
    if bad:
        sys.exit(f"error: unknown condition {bad[0]!r} (one of {', '.join(rd.LOW_RATES)})")
    if args.real:
        clips = {c: (path, half, None) for c, (path, half) in rd.real_clips(args.real).items()}
    else:
        songs = rd.midi_songs(args.midi)
        half = rd.halves(songs, lambda n: "")
        clips = {s: (str(Path(args.midi) / s / "mixed.wav"), half[s], MIDI_EXCERPT_S) for s in songs}
    jobs = [(c, clips[c][1], clips[c][0], cond, clips[c][2]) for cond in conds for c in sorted(clips)]
    with Pool(args.workers) as pool:
        rows = [r for rs in pool.map(job, jobs, chunksize=1) for r in rs]
    corpus = ("Real-music development corpus" if args.real else
              f"Multitrack development corpus (each song's mix, its middle {MIDI_EXCERPT_S:g} s)")
    md = ["# Spectral recovery against versions of it told part of the truth", "",
          f"{corpus}, direct; see `eval/recovery_oracle.py` for the variants.", ""]
    for cond in conds:
        md += table(rows, cond)
    rd.write_report(args.out, "recovery_oracle.md" if args.real else "recovery_oracle_midi.md", md)


if __name__ == "__main__":
    main()
