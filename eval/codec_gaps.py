"""Where an MP3 encoder drops the band below its wall frame by frame, and whether the gap
detector (`adaptive_argm/core/gaps.py`) tells that from music whose top band comes and goes.

Real-music development corpus: each clip through the codec (LAME VBR 7) and 32 kHz (cr32), and
resampled only (r32, r22, r16), as `eval/recovery_dev.py` makes them:
  - the codec's level loss against the clean clip per 1/3-octave band, frame by frame;
  - the detector's cells below the detected wall: "deep" (the band 30 dB or more under its usual
    ratio to the octave below), "at a wall" (deep, with the band below it in the same frame at
    least 30 dB louder per bin, or lost itself: what is refilled), and the median step over the
    deep cells.
Multitrack development corpus (the middle 10 s of each song, mix and every stem, resampled): the
same cells, where every refill is a false alarm (no codec touched these).

    python eval/codec_gaps.py --real CORPORA/real-dev --midi CORPORA/midi-dev --out eval/results
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from multiprocessing import Pool
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import recovery_dev as rd  # noqa: E402

from adaptive_argm.core import spectral  # noqa: E402
from adaptive_argm.core.bandwidth import detect_cutoff  # noqa: E402
from adaptive_argm.core.gaps import GapSettings, gap_cells  # noqa: E402

LOSS_BANDS_HZ = (4000.0, 6300.0, 8000.0, 10000.0, 12500.0)
N_FFT, HOP = 2048, 512


def cells_row(name: str, cond: str, y: np.ndarray, sr: int) -> dict | None:
    """The detector's cells for `y`, or None when no wall was found (nothing would run)."""
    bw = detect_cutoff(y, sr)
    if bw.kind != "brick-wall":
        return None
    c = gap_cells(y, sr, bw.cutoff_hz, GapSettings())
    if c is None:
        return None
    n = max(int(c.active.sum()) * c.deep.shape[0], 1)
    steps = c.step_db[c.deep]
    return {"name": name, "condition": cond, "cutoff_hz": bw.cutoff_hz, "deep": c.deep.sum() / n,
            "lost": c.lost.sum() / n, "step_db": float(np.median(steps)) if steps.size else float("nan")}


def codec_loss(x: np.ndarray, y: np.ndarray, sr: int) -> list[tuple[float, float]]:
    """Per 1/3-octave band from LOSS_BANDS_HZ: the median and 90th percentile over active frames
    of the clean clip's band energy over the degraded one's (dB; > 0: the codec lost level)."""
    first, count = spectral.covering_grid(x.shape[1], HOP, N_FFT)
    px = spectral.power(spectral.stft(x, N_FFT, HOP, first, count))
    py = spectral.power(spectral.stft(y, N_FFT, HOP, first, count))
    f = np.fft.rfftfreq(N_FFT, 1.0 / sr)
    out = []
    for lo in LOSS_BANDS_HZ:
        m = (f >= lo) & (f < lo * 2 ** (1 / 3))
        ex = px[..., m].sum(axis=(0, 2), dtype=np.float64) + 1e-20
        ey = py[..., m].sum(axis=(0, 2), dtype=np.float64) + 1e-20
        act = ex > ex.max() * 1e-6
        d = 10 * np.log10(ex[act] / ey[act])
        out.append((float(np.median(d)), float(np.percentile(d, 90))))
    return out


def real_job(args: tuple[str, str, str]) -> tuple[dict, list[dict]]:
    clip, half, path = args
    x, sr = rd.read(path)
    y = rd.degrade("cr32", x, sr)
    loss = {"clip": clip, "half": half, "loss": codec_loss(x, y, sr)}
    rows = [cells_row(clip, cond, rd.degrade(cond, x, sr) if cond != "cr32" else y, sr)
            for cond in ("cr32", "r32", "r22", "r16")]
    return loss, [r for r in rows if r]


def midi_job(folder: str) -> list[dict]:
    song = os.path.basename(folder)
    rows = []
    for part in ("mixed", *rd.STEMS):
        path = os.path.join(folder, f"{part}.wav")
        if not os.path.exists(path):
            continue
        x, sr = rd.read(path)
        x = rd.excerpt(x, sr, 10.0)
        for cond in ("r32", "r22", "r16"):
            r = cells_row(f"{song}/{part}", cond, rd.degrade(cond, x, sr), sr)
            if r:
                rows.append(r)
    return rows


def cells_table(rows: list[dict], conds: tuple[str, ...], what: str) -> list[str]:
    out = [f"| condition | {what} with a wall | deep cells: mean / max | refilled cells: mean / max "
           "| with any refill | median step at deep cells (dB): median over them / lowest |",
           "|---|---|---|---|---|---|"]
    for cond in conds:
        rs = [r for r in rows if r["condition"] == cond]
        if not rs:
            continue
        worst = max(rs, key=lambda r: r["lost"])
        steps = [r["step_db"] for r in rs if not np.isnan(r["step_db"])]
        step_cell = f"{statistics.median(steps):.0f} / {min(steps):.0f}" if steps else "–"
        out.append(
            f"| {cond} | {len(rs)} | {100 * statistics.fmean(r['deep'] for r in rs):.1f}% / "
            f"{100 * max(r['deep'] for r in rs):.1f}% | {100 * statistics.fmean(r['lost'] for r in rs):.2f}% / "
            f"{100 * worst['lost']:.2f}% ({worst['name']}) | {sum(r['lost'] > 0 for r in rs)} | {step_cell} |")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--real", required=True, help="real-music corpus folder (manifest.json + WAVs)")
    ap.add_argument("--midi", help="multitrack corpus folder (one folder per song)")
    ap.add_argument("--out", default="eval/results")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    clips = rd.real_clips(args.real)
    with Pool(args.workers) as pool:
        real = pool.map(real_job, [(c, clips[c][1], clips[c][0]) for c in sorted(clips)], chunksize=1)
        midi = []
        if args.midi:
            songs = [str(Path(args.midi) / s) for s in rd.midi_songs(args.midi)]
            midi = [r for rs in pool.map(midi_job, songs, chunksize=1) for r in rs]
    md = ["# Codec gaps below the wall: what the encoder drops, and what the detector refills", "",
          "See `eval/codec_gaps.py`. Cells: (STFT frame, 1/6-octave band) in the octave below the "
          "detected wall, active frames only.", "",
          "## The codec's level loss (LAME VBR 7, then 32 kHz) against the clean clip, dB, frame by frame", "",
          "| clip | half | " + " | ".join(f"{lo / 1000:g} kHz: median / p90" for lo in LOSS_BANDS_HZ) + " |",
          "|---|---|" + "---|" * len(LOSS_BANDS_HZ)]
    for loss, _ in real:
        md.append(f"| {loss['clip']} | {loss['half']} | "
                  + " | ".join(f"{a:+.1f} / {b:+.1f}" for a, b in loss["loss"]) + " |")
    md += ["", "## Real music: codec input against resampled only", ""]
    md += cells_table([r for _, rs in real for r in rs], ("cr32", "r32", "r22", "r16"), "clips")
    if midi:
        md += ["", "## Multitrack (MIDI renders; mix and stems, the middle 10 s): resampled only", ""]
        md += cells_table(midi, ("r32", "r22", "r16"), "mixes and stems")
        md += ["", "Every refill here is a false alarm. The chains with any:", ""]
        md += [f"- {r['condition']} {r['name']}: {100 * r['lost']:.2f}% of cells (deep {100 * r['deep']:.1f}%)"
               for r in sorted(midi, key=lambda r: -r["lost"]) if r["lost"] > 0]
    rd.write_report(args.out, "codec_gaps.md", md)


if __name__ == "__main__":
    main()
