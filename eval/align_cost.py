"""Cost of the fractional-delay alignment on a long file: 10 minutes of stereo at 48 kHz, delayed
by 0.3 samples, aligned back (`intrusive.fractional_align`) and scored (`intrusive.scores` without
ViSQOL: SI-SDR, LSD, quiet-frame SNR after one alignment), each in a fresh process. Prints and
writes wall and CPU time, the peak memory above the two input signals (the process's RSS
high-water mark), and the SI-SDR reached.

    python eval/align_cost.py [--minutes 10] [--sr 48000]
Writes eval/results/align_cost.md.
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.signal

from adaptive_argm.core import intrusive

RESULTS = Path(__file__).resolve().parent / "results"
DELAY_SAMPLES = 0.3


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def music_like(n: int, sr: int, seed: int = 0) -> np.ndarray:
    """`(2, n)` float32: pink-ish noise under a slow swell plus a few tones, content to 20 kHz."""
    rng = np.random.default_rng(seed)
    x = np.empty((2, n), np.float32)
    t = np.arange(n) / sr
    for ch in range(2):
        bed = scipy.signal.lfilter([1.0], [1.0, -0.9], rng.standard_normal(n)).astype(np.float32)
        x[ch] = 0.02 * bed * (0.3 + 0.7 * np.sin(2 * np.pi * 0.1 * t) ** 2)
        x[ch] += 0.1 * np.sin(2 * np.pi * (220.0 + 110 * ch) * t)
    return x


def _step(label: str, folder: str, sr: int, queue) -> None:
    """One step in a fresh process: its RSS high-water mark starts at the inputs it loads."""
    ref, est = np.load(f"{folder}/ref.npy"), np.load(f"{folder}/est.npy")
    base_gb = peak_rss_gb()
    t0, c0 = time.perf_counter(), time.process_time()
    if label == "fractional_align":
        si = intrusive.si_sdr_db(*intrusive.fractional_align(est, ref))
    else:
        si = intrusive.scores(est, ref, sr, with_visqol=False).si_sdr_db
    queue.put((label, time.perf_counter() - t0, time.process_time() - c0, peak_rss_gb() - base_gb, si))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--sr", type=int, default=48000)
    ap.add_argument("--out", type=Path, default=RESULTS / "align_cost.md")
    args = ap.parse_args()
    n = int(args.minutes * 60 * args.sr)
    channel_gb = n * 8 / 2**30
    ctx = multiprocessing.get_context("spawn")
    rows = []
    with tempfile.TemporaryDirectory(prefix="align-cost-") as folder:
        ref = music_like(n, args.sr)
        np.save(f"{folder}/ref.npy", ref)
        np.save(f"{folder}/est.npy", intrusive.shift(ref, DELAY_SAMPLES, dtype=np.float32))
        del ref
        for label in ("fractional_align", "scores (no ViSQOL)"):
            queue = ctx.Queue()
            child = ctx.Process(target=_step, args=(label, folder, args.sr, queue))
            child.start()
            rows.append(queue.get())
            child.join()
            label, wall_s, cpu_s, gb, si = rows[-1]
            print(f"{label}: {wall_s:.1f} s wall, {cpu_s:.1f} s CPU, peak {gb:.2f} GB above the inputs, "
                  f"SI-SDR {si:.1f} dB", flush=True)
    lines = [f"# Fractional-delay alignment on {args.minutes:g} min of stereo at {args.sr / 1000:g} kHz",
             "", f"Estimate delayed by {DELAY_SAMPLES} samples. One float64 copy of one channel is "
             f"{channel_gb:.2f} GB; the two float32 inputs take {2 * 2 * n * 4 / 2**30:.2f} GB. Each step runs in "
             "a fresh process; peak = its RSS high-water mark above the loaded inputs. Wall time on the shared "
             "2-core machine (other work running), CPU time of the process.", "",
             "| step | wall s | CPU s | peak GB above inputs | float64 channel copies | SI-SDR dB |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {label} | {s:.1f} | {c:.1f} | {gb:.2f} | {gb / channel_gb:.1f} | {si:.1f} |"
              for label, s, c, gb, si in rows]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
