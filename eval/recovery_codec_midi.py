"""Spectral recovery on codec input from the multitrack corpus: each song's mix (its middle 10 s)
through the codec (LAME VBR 7), then a 32 or 22.05 kHz round trip, recovered direct with the
library defaults and with the codec-specific parts switched off one at a time: the gap refill
below the wall (`fill_codec_gaps`) and the noise in the holes the copy carries up
(`noise_fill_hole_db`). Scores as `recovery_dev.py` (ViSQOL change, LSD reduction above the
cutoff, against the clean mix), per cross-validation half with the worst song.

The multitrack corpus's stems are not used: a codec is not linear, so stems each through the
codec would not sum to the mix through it.

    python eval/recovery_codec_midi.py --midi CORPORA/midi-dev --out eval/results
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from multiprocessing import Pool
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import recovery_dev as dev  # noqa: E402

from adaptive_argm.core.recovery import RecoverySettings, recover  # noqa: E402

VARIANTS = {"defaults": {}, "no noise fill": {"noise_fill_hole_db": -200.0},
            "no gap refill": {"fill_codec_gaps": False}}


def job(args: tuple[str, str, str, str, float]) -> dict:
    song, half, folder, cond, seconds = args
    x, sr = dev.read(os.path.join(folder, "mixed.wav"))
    x = dev.excerpt(x, sr, seconds)
    y = dev.degrade(cond, x, sr)
    row = {"clip": song, "half": half, "condition": cond, "visqol_in": dev.visqol(x, y, sr)}
    lsd_in: dict[float, float] = {}  # the input's LSD, once per cutoff (the variants share theirs)
    for name, settings in VARIANTS.items():
        z, rep = recover(y, sr, RecoverySettings(**settings))
        lo = rep.cutoff_hz or dev.LOW_RATES[cond] / 2
        if lo not in lsd_in:
            lsd_in[lo] = dev.lsd_above(x, y, sr, lo)
        row[f"change {name}"] = dev.visqol(x, z, sr) - row["visqol_in"]
        row[f"lsd {name}"] = 1 - dev.lsd_above(x, z, sr, lo) / lsd_in[lo]
        if name == "defaults":
            row.update(cutoff_hz=rep.cutoff_hz, gaps_refilled=rep.gaps_filled, noise_filled=rep.noise_filled)
    return row


def table(rows: list[dict]) -> list[str]:
    out = ["| condition | half | songs | ViSQOL in | "
           + " | ".join(f"{n}: change mean / worst (song) | LSD reduction" for n in VARIANTS) + " |",
           "|---|---|---|---|" + "---|---|" * len(VARIANTS)]
    for cond in sorted({r["condition"] for r in rows}):
        for half in ("A", "B", "all"):
            rs = [r for r in rows if r["condition"] == cond and half in ("all", r["half"])]
            cells = []
            for name in VARIANTS:
                mean, worst, song = dev._cell(rs, f"change {name}")
                cells.append(f"{mean:+.3f} / {worst:+.3f} ({song}) | "
                             f"{100 * statistics.fmean(r[f'lsd {name}'] for r in rs):.0f}%")
            out.append(f"| {cond} | {half} | {len(rs)} | {statistics.fmean(r['visqol_in'] for r in rs):.2f} | "
                       + " | ".join(cells) + " |")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--midi", required=True, help="multitrack corpus folder (one folder per song)")
    ap.add_argument("--conditions", default="cr32,cr22")
    ap.add_argument("--excerpt-s", type=float, default=10.0)
    ap.add_argument("--out", default="eval/results")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    songs = dev.midi_songs(args.midi)
    half = dev.halves(songs, lambda n: "")
    jobs = [(s, half[s], str(Path(args.midi) / s), c, args.excerpt_s) for c in args.conditions.split(",") for s in songs]
    with Pool(args.workers) as pool:
        rows = pool.map(job, jobs, chunksize=1)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    dev.write_csv(Path(args.out) / "recovery_codec_midi.csv", rows)
    dev.write_report(args.out, "recovery_codec_midi.md", [
        "# Spectral recovery on codec input, multitrack corpus (direct)", "",
        f"`python eval/recovery_codec_midi.py --midi CORPORA/midi-dev --conditions {args.conditions}`: "
        f"the middle {args.excerpt_s:g} s of each song's mix; ViSQOL change and LSD reduction above the "
        "cutoff against the clean mix. Per-song rows: `recovery_codec_midi.csv`.", "", *table(rows)])


if __name__ == "__main__":
    main()
