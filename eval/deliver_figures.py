"""Delivery figures: the loudness target (-14 LUFS, -1 dBTP ceiling) on the musicgen-dev mixes
and on a loud and a quiet synthetic clip, measured again on the delivered 16-bit files; the
16-bit dither floor; truncation harmonics of a -80 dBFS sine with and without dither; round-trip
errors of every format; the Annex 2 true-peak meter against an exact (16x) interpolation.

    python eval/deliver_figures.py [--out eval/results/deliver.md] [--corpus DIR]
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from pathlib import Path

import numpy as np
import scipy.signal
import soundfile

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the synthetic clips and spectra the tests use

from adaptive_argm.core import audio  # noqa: E402
from adaptive_argm.core import deliver  # noqa: E402
from adaptive_argm.core.levels import loudness_lufs  # noqa: E402
from test_deliver import _harmonic_excess_db, faded_tone, loud_dense_mix, noise, quiet_sparse_mix  # noqa: E402

SR = audio.WORK_SR
TARGET_LUFS, CEILING_DBTP = -14.0, -1.0


def loudness_rows(corpus: Path, tmp: Path) -> list[str]:
    clips = {p.parent.name: audio.read(p)[0] for p in sorted(corpus.glob("*/mixed.wav"))}
    clips["synthetic loud dense"] = loud_dense_mix()
    clips["synthetic quiet sparse"] = quiet_sparse_mix()
    rows = ["| clip | in LUFS | in dBTP | gain dB | limiter dB | passes | out LUFS | out dBTP "
            "| 16-bit file LUFS | 16-bit file dBTP | status |", "|" + "---|" * 11]
    errors, peaks = [], []
    for name, x in clips.items():
        y, r = deliver.normalize_loudness(x, SR, TARGET_LUFS, CEILING_DBTP)
        path = tmp / "out.wav"
        deliver.write(path, y, SR, deliver.OutputFormat("wav", "16"))
        back = soundfile.read(path, dtype="float32", always_2d=True)[0].T
        file_lufs, file_tp = loudness_lufs(back, SR), deliver.true_peak_dbtp(back)
        errors.append(abs(file_lufs - TARGET_LUFS))
        peaks.append(file_tp)
        rows.append(f"| {name} | {r.input_lufs:.2f} | {r.true_peak_in_dbtp:.2f} | {r.gain_db:+.2f} | "
                    f"{r.limiter_reduction_db:.2f} | {r.passes} | {r.reached_lufs:.3f} | {r.true_peak_dbtp:.3f} | "
                    f"{file_lufs:.3f} | {file_tp:.3f} | {r.status} |")
    rows.append(f"\nWorst distance from {TARGET_LUFS} LUFS: {max(errors):.3f} LU (mean {np.mean(errors):.3f}); "
                f"highest true peak: {max(peaks):.3f} dBTP (ceiling {CEILING_DBTP}).")
    return rows


def dither_rows() -> list[str]:
    x = (0.01 * np.sin(2 * np.pi * 997 * np.arange(5 * SR) / SR))[None].astype(np.float32)
    rows = []
    for dither in (True, False):
        q, _ = deliver.quantize(x, 16, dither=dither)
        floor = 10 * np.log10(np.mean((q / 2.0 ** 15 - x.astype(np.float64)) ** 2))
        rows.append(f"- 16-bit error floor, {'TPDF dither' if dither else 'rounding only'}: {floor:.2f} dBFS RMS "
                    f"(expected {20 * math.log10(2.0 ** -16 if dither else 2.0 ** -15 / math.sqrt(12)):.2f})")
    sr, f0 = 48000, 1000.0
    sine = (1e-4 * np.sin(2 * np.pi * f0 * np.arange(4 * sr) / sr))[None].astype(np.float32)
    window = np.hanning(sine.shape[1])
    bin_hz = sr / sine.shape[1]
    for dither in (True, False):
        excess = _harmonic_excess_db(deliver.quantize(sine, 16, dither=dither)[0], sr, f0)
        # power spectrum averaged over 40 dither seeds, scaled so a sine of peak 1.0 reads 0 dBFS
        seeds = range(40) if dither else range(1)
        power = sum(np.abs(np.fft.rfft(deliver.quantize(sine, 16, dither=dither, seed=k)[0][0] / 2.0 ** 15
                                       * window)) ** 2 for k in seeds) / len(seeds)
        level = 10 * np.log10(np.maximum(power * 4 / window.sum() ** 2, 1e-40))
        harmonics = [level[int(round(k * f0 / bin_hz))] for k in range(1, 6)]
        floor = np.median(level[int(1500 / bin_hz):int(5500 / bin_hz)])
        rows.append(f"- -80 dBFS 1 kHz sine at 16 bits, {'dithered (40 seeds averaged)' if dither else 'undithered'}: "
                    f"fundamental and harmonics 2-5 at {', '.join(f'{h:.1f}' for h in harmonics)} dBFS; median bin "
                    f"1.5-5.5 kHz {floor:.1f} dBFS (0.25 Hz bins, Hann). Seed 0, Welch (10 Hz bins) excess of "
                    f"harmonics 2-7 over their neighbours, as the test checks: {', '.join(f'{e:+.1f}' for e in excess)} dB")
    return rows


def round_trip_rows(tmp: Path) -> list[str]:
    rows = ["| format | channels x rate | max error, exact reader (LSB) | max error, pedalboard reader (LSB) |",
            "|---|---|---|---|"]
    for container, bits in (("wav", "16"), ("wav", "24"), ("wav", "32f"), ("flac", "16"), ("flac", "24")):
        fmt = deliver.OutputFormat(container, bits)
        for channels, sr in ((1, 44100), (2, 48000), (6, 96000)):
            x = noise(channels, 1.0, sr=sr, level=0.4, seed=channels)
            path = tmp / f"rt.{container}"
            deliver.write(path, x, sr, fmt)
            exact = np.abs(soundfile.read(path, dtype="float64", always_2d=True)[0].T - x).max()
            ours = np.abs(audio.read(path, sr=None)[0] - x).max()
            unit = fmt.lsb or 1.0
            rows.append(f"| {fmt.describe()} | {channels} x {sr} | "
                        f"{exact / unit:.3f}{'' if fmt.lsb else ' (absolute)'} | {ours / unit:.3f} |")
    return rows


def meter_rows() -> list[str]:
    rows = ["| tone (period, samples) | sample peak dBFS | Annex 2 (4x) dBTP | 16x resample_poly dBTP |", "|---|---|---|---|"]
    for period in (3, 4, 6, 8, 12, 16):
        x = faded_tone(SR / period, 0.5, SR, phase=math.pi / period)
        exact = 20 * math.log10(np.abs(scipy.signal.resample_poly(x[0].astype(np.float64), 16, 1)).max())
        rows.append(f"| {period} ({SR / period:.0f} Hz) | {audio.peak_dbfs(x):.3f} | "
                    f"{deliver.true_peak_dbtp(x):.3f} | {exact:.3f} |")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpus" / "musicgen-dev")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        lines = [f"# Delivery figures\n\n## Loudness target {TARGET_LUFS} LUFS, ceiling {CEILING_DBTP} dBTP "
                 f"(at {SR} Hz; the file columns read back the delivered 16-bit WAV)\n",
                 *loudness_rows(args.corpus, tmp),
                 "\n## 16-bit dither\n", *dither_rows(),
                 "\n## Round trips (1 s of noise at 0.4 RMS, written then read back)\n", *round_trip_rows(tmp),
                 "\n## True-peak meter on 0 dB cosines sampled half a step off their crests\n", *meter_rows()]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
