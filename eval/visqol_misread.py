"""How often ViSQOL matches its patches to other music on inputs that are already aligned: each
development clip's first few seconds, damaged and scored exactly as `adaptive-argm benchmark`
scores its input (`benchmark.damage`, `benchmark.Scorer`: the same seed, at the clip's own rate),
per condition and excerpt length. A misread reading is one with any patch matched more than
`visqol.MISPLACED_S` from its own time.

    python eval/visqol_misread.py --midi CORPORA/midi-dev --musicgen ../shared/corpus/musicgen-dev \
        --real CORPORA/real-dev --seconds 3 10
Writes eval/results/visqol_misread.{md,csv}.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

from adaptive_argm.core import visqol
from adaptive_argm.evaluation import benchmark, clips

CONDITIONS = ("white-45", "pink-45", "codec", "resample-22k")
RESULTS = Path(__file__).resolve().parent / "results"


def corpus(args, seconds: float) -> list[tuple[str, clips.CleanClip]]:
    out = []
    for source, folder, read in (("midi", args.midi, clips.corpus_clips), ("musicgen", args.musicgen, clips.corpus_clips),
                                 ("real", args.real, clips.folder_clips)):
        if folder is not None:
            out += [(source, c) for c in read(folder, seconds)]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--midi", type=Path)
    ap.add_argument("--musicgen", type=Path)
    ap.add_argument("--real", type=Path)
    ap.add_argument("--seconds", type=float, nargs="+", default=[3.0, 10.0])
    ap.add_argument("--conditions", nargs="+", default=list(CONDITIONS))
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    rows = []
    for seconds in args.seconds:
        for source, clip in corpus(args, seconds):
            for cond in args.conditions:
                panel = benchmark.Scorer(clip, benchmark.damage(clip, cond, benchmark.DEFAULT_SEED)).input.panel
                rows.append({"seconds": seconds, "source": source, "clip": clip.name, "condition": cond,
                             "visqol": round(panel.visqol_moslqo, 4), "misplaced": round(panel.visqol_misplaced, 4)})
                print(rows[-1], flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "visqol_misread.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    lines = ["# ViSQOL readings whose patches were matched to other music",
             "", "Damaged inputs against their clean clips, as the benchmark scores them (`eval/visqol_misread.py`). "
             f"Misread: a patch matched more than {visqol.MISPLACED_S:g} s from its own time.", "",
             "| excerpt | condition | readings | misread | mean ViSQOL, sound | mean ViSQOL, misread | misread clips (share of patches) |",
             "|---|---|---|---|---|---|---|"]
    for seconds in args.seconds:
        for cond in args.conditions:
            rs = [r for r in rows if r["seconds"] == seconds and r["condition"] == cond and np.isfinite(r["visqol"])]
            bad = [r for r in rs if visqol.misread(r["misplaced"])]
            sound = [r["visqol"] for r in rs if not visqol.misread(r["misplaced"])]
            lines.append(f"| {seconds:g} s | {cond} | {len(rs)} | {len(bad)} | {np.mean(sound):.2f} | "
                         + (f"{np.mean([r['visqol'] for r in bad]):.2f}" if bad else "–") + " | "
                         + ", ".join(f"{r['clip']} ({r['misplaced']:.2f})" for r in bad) + " |")
    (args.out / "visqol_misread.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
