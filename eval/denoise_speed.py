"""Wall time of the `adaptive` preset's `wiener` step, and of the router's probe for it, on 30 s of
stereo at 44.1 kHz, with hiss (white noise at -45 dBFS: the filter acts) and without (it
bypasses), optionally beside another
checkout's (e.g. the version before a change), timed in turns so that both see the same load.

The signal is synthetic and seeded (decaying harmonic notes over a bass line), so no corpus is
needed. Timings on a shared machine are noisy: the load average is printed with them, and the
minimum over `--repeat` runs is the figure to compare.

    PYTHONPATH=. python eval/denoise_speed.py [--compare-tree DIR] [--repeat 7]
    (DIR: a folder holding another version's `adaptive_argm` package, e.g. from
     `git archive 65c1511 adaptive_argm | tar -x -C DIR`)
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
from pathlib import Path

import numpy as np

SR = 44100
SECONDS = 30.0


def signal(seconds: float = SECONDS, seed: int = 0) -> np.ndarray:
    """`(2, samples)` float32: harmonic notes (0.25 s, decaying) over a 55 Hz bass, per channel."""
    rng = np.random.default_rng(seed)
    n_note = int(0.25 * SR)
    t = np.arange(n_note) / SR
    env = np.exp(-t / 0.12) * np.minimum(1.0, t / 0.005)
    chans = []
    for _ in range(2):
        notes = []
        for _ in range(int(seconds / 0.25)):
            f0 = 220.0 * 2 ** (rng.integers(0, 24) / 12)
            notes.append(env * sum(0.2 / k * np.sin(2 * np.pi * k * f0 * t) for k in range(1, 13) if k * f0 < 8000))
        x = np.concatenate(notes)
        chans.append(x + 0.1 * np.sin(2 * np.pi * 55.0 * np.arange(x.size) / SR))
    return np.stack(chans).astype(np.float32)


def load_version(root: str | None):
    """(wiener_denoise, WienerSettings of the built-in `adaptive` preset) of the package under
    `root` (None: the one on the path)."""
    for k in [k for k in sys.modules if k == "adaptive_argm" or k.startswith("adaptive_argm.")]:
        del sys.modules[k]
    if root:
        sys.path.insert(0, str(Path(root).resolve()))
    try:
        try:
            denoise = importlib.import_module("adaptive_argm.core.denoise")
            presets = importlib.import_module("adaptive_argm.core.presets")
        except ModuleNotFoundError:  # a version before the layered layout
            denoise = importlib.import_module("adaptive_argm.denoise")
            presets = importlib.import_module("adaptive_argm.presets")
    finally:
        if root:
            sys.path.pop(0)
    params = next(s.params for s in presets.load("adaptive").steps if s.kind == "wiener")
    return denoise.wiener_denoise, denoise.WienerSettings(**params)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--compare-tree")
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    versions = {"this checkout": load_version(None)}
    if args.compare_tree:
        versions[f"{args.compare_tree}"] = load_version(args.compare_tree)
    clean = signal()
    noisy = clean + (10 ** (-45 / 20) * np.random.default_rng(1).standard_normal(clean.shape)).astype(np.float32)
    print(f"30 s stereo, 44.1 kHz; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    for name, x in (("white noise -45 dBFS", noisy), ("clean", clean)):
        times: dict[str, list[float]] = {v: [] for v in versions}
        for fn, s in versions.values():
            fn(x[:, : 3 * SR], SR, s)  # warm-up: imports, white-noise calibration
        for _ in range(args.repeat):
            for v, (fn, s) in versions.items():
                t0 = time.perf_counter()
                fn(x, SR, s)
                times[v].append(time.perf_counter() - t0)
        for v, ts in times.items():
            print(f"{name:22s} {v:30s} min {min(ts):.3f} s  median {float(np.median(ts)):.3f} s")
    # The router's probe for `wiener` (routed mode): one noise estimate of the mix and one of each
    # of four stems, on 30 s each (each probe reads the middle 8 s).
    _, s = load_version(None)  # this checkout's package again, after any other version's
    from adaptive_argm.core.denoise import found_noise_power
    ts = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        for _ in range(5):
            found_noise_power(noisy, SR, s)
        ts.append(time.perf_counter() - t0)
    print(f"{'router probe, mix + 4 stems':22s} {'this checkout':30s} min {min(ts):.3f} s  median {float(np.median(ts)):.3f} s")


if __name__ == "__main__":
    main()
