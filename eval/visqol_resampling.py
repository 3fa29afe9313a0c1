"""ViSQOL of real music after a band-limiting round trip: each excerpt of a real-music corpus
resampled down to 32, 22.05 or 16 kHz and back with soxr (VHQ), scored against its clean
original (`adaptive_argm.core.intrusive.visqol_moslqo`, 48 kHz, mono, fractionally aligned).
Also times ViSQOL (CPU seconds per 10 s of audio).

    python eval/visqol_resampling.py --corpus ~/.cache/adaptive-argm/corpora/real-dev
Writes eval/results/visqol_resampling.{md,csv}.
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from adaptive_argm.core.intrusive import visqol_moslqo

RATES_HZ = (32000, 22050, 16000)
RESULTS = Path(__file__).resolve().parent / "results"


def round_trip(x: np.ndarray, sr: int, via_sr: int) -> np.ndarray:
    """`(channels, samples)` resampled to `via_sr` and back with soxr VHQ, same length."""
    y = soxr.resample(soxr.resample(x.T, sr, via_sr, "VHQ"), via_sr, sr, "VHQ").T
    return y[:, : x.shape[1]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, required=True, help="real-music corpus folder (manifest.json)")
    ap.add_argument("--seconds", type=float, default=None, help="score only the first this many seconds")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    manifest = json.loads((args.corpus / "manifest.json").read_text())
    rows, cpu_s, audio_s = [], 0.0, 0.0
    for e in manifest["excerpts"]:
        x, sr = sf.read(str(args.corpus / e["file"]), dtype="float32", always_2d=True)
        x = x.T if args.seconds is None else x.T[:, : int(args.seconds * sr)]
        row = {"track": e["track_id"], "sample_rate": sr, "seconds": round(x.shape[1] / sr, 3)}
        for label, y in [("clean", x)] + [(f"via_{r / 1000:g}k", round_trip(x, sr, r)) for r in RATES_HZ]:
            t = time.process_time()
            row[label] = round(visqol_moslqo(y, x, sr), 4)
            cpu_s += time.process_time() - t
            audio_s += x.shape[1] / sr
        rows.append(row)
        print(row, flush=True)
    labels = ["clean"] + [f"via_{r / 1000:g}k" for r in RATES_HZ]
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "visqol_resampling.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    lines = [f"# ViSQOL v3 (audio mode) after a soxr round trip, {len(rows)} excerpts of {args.corpus.name}",
             "", f"Scored {'whole excerpts' if args.seconds is None else f'the first {args.seconds:g} s'}; "
             f"ViSQOL cost {10 * cpu_s / audio_s:.2f} CPU s per 10 s of audio (resampling to 48 kHz and "
             "alignment included).", "", "| | " + " | ".join(labels) + " |", "|---" * (len(labels) + 1) + "|"]
    for stat, fn in (("mean", np.mean), ("worst", np.min)):
        lines.append(f"| {stat} | " + " | ".join(f"{fn([r[k] for r in rows]):.3f}" for k in labels) + " |")
    worst = {k: min(rows, key=lambda r: r[k])["track"] for k in labels}
    lines.append("| worst clip | " + " | ".join(worst[k] for k in labels) + " |")
    lines += ["", "| track | kHz | " + " | ".join(labels) + " |", "|---" * (len(labels) + 2) + "|"]
    lines += [f"| {r['track']} | {r['sample_rate'] / 1000:g} | " + " | ".join(f"{r[k]:.3f}" for k in labels) + " |"
              for r in rows]
    (args.out / "visqol_resampling.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines[:9]))


if __name__ == "__main__":
    main()
