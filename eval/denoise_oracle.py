"""How much of the denoiser's gap is its noise estimate and how much is its filter: the
`wiener` step of `adaptive` against the same decision-directed Wiener rule given the TRUE noise
spectrum, and against the ideal mask from the clean signal (the ceiling for any mask).

    python eval/denoise_oracle.py --real DIR --midi DIR --musicgen DIR --max-s 10 \
        --conditions white-45,pink-45 --half all --out eval/results/denoise_oracle.md

Per clip of the chosen half of the development corpora (`denoise_eval.halves`), the SI-SDR change
(output minus noisy input, against the clean clip; the step alone, no loudness matching) of:
- estimator: `wiener_denoise` with the preset's settings, as `run` uses it;
- true PSD: the same gain rule and settings, the noise spectrum being the time average of the
  added noise's own periodogram per channel (what a perfect stationary estimate would give);
- true PSD + bias: the same, lowered by the preset's `bias_correction_db` as the estimator's is;
- ideal mask: |S|^2 / (|S|^2 + |N|^2) per time-frequency bin from the clean and noise signals;
- with `--true-below HZ,...`, per frequency: the estimator's own noise spectrum, each channel's,
  with the true PSD + bias put in below HZ only (where the estimate's shortfall costs).
Beside them: what the estimator found in the first channel (trusted sub-bands, strength, tilt)
and its level minus the true noise's in three octave regions.
"""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import denoise_eval as E  # noqa: E402

from adaptive_argm.core import denoise as D, spectral  # noqa: E402

REGIONS_HZ = ((125.0, 1000.0), (1000.0, 4000.0), (4000.0, 16000.0))


def preset_settings() -> D.WienerSettings:
    return D.WienerSettings(**next(s.params for s in E.preset_with().steps if s.kind == "wiener"))


def case(args: tuple) -> dict:
    clip, condition, below_hz = args
    s = preset_settings()
    clean = clip.audio
    noisy = E.degraded(clip, condition)
    noise = (noisy - clean).astype(np.float32)
    before = E.capped(E.fast_si_sdr_db(clean, noisy))

    def change(out: np.ndarray) -> float:
        return 0.0 if np.array_equal(out, noisy) else E.capped(E.fast_si_sdr_db(clean, out)) - before

    # Each channel's spectrogram once; every variant is a gain on the noisy one.
    noisy_stft = [D._channel_power(x, s) for x in noisy]
    clean_pow = [D._channel_power(x, s)[1] for x in clean]
    noise_pow = [D._channel_power(x, s)[1] for x in noise]
    true_psd = [p.mean(axis=0) for p in noise_pow]
    n, frames = noisy.shape[1], D._grid(noisy.shape[1], s)[0]

    def masked(gain_of) -> np.ndarray:
        return np.stack([spectral.istft(spec * gain_of(c, power).astype(np.float32), s.n_fft, s.hop, frames, n)
                         for c, (spec, power) in enumerate(noisy_stft)])

    bias = np.float32(10 ** (s.bias_correction_db / 10))
    rows = {"clip": clip.name, "estimator": change(D.wiener_denoise(noisy, E.SR, s))}
    for key, scale in (("true", np.float32(1.0)), ("true_bias", bias)):
        rows[key] = change(masked(lambda c, p: D._dd_wiener_gain(p, true_psd[c] * scale, s)))
    rows["ideal"] = change(masked(lambda c, p: clean_pow[c] / np.maximum(clean_pow[c] + noise_pow[c], 1e-30)))
    ests = [D._estimate_from_power(power[D._interior(n, s)], E.SR, s) for _, power in noisy_stft]
    est = ests[0]  # estimate_noise on channel 0
    f = np.arange(est.psd.size) * E.SR / s.n_fft
    for hz in below_hz:
        rows[f"below {hz:g}"] = change(masked(
            lambda c, p: D._dd_wiener_gain(p, np.where(f < hz, true_psd[c] * bias, ests[c].psd), s)))
    rows["found"] = f"{est.trusted_bands}/{est.bands}, {est.strength:.2f}, {est.tilt_db_per_octave:+.2f}"
    rows["regions"] = []
    for lo, hi in REGIONS_HZ:
        m = (f >= lo) & (f < hi)
        ratio = float(np.mean(est.psd[m])) / float(np.mean(true_psd[0][m]))
        rows["regions"].append(10 * np.log10(ratio) if ratio > 0 else -np.inf)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    E.corpus_arguments(ap)
    ap.add_argument("--conditions", default="pink-45", help=f"comma-separated, of {', '.join(E.NOISE_CONDITIONS)}")
    ap.add_argument("--half", default="A", choices=("A", "B", "all"))
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--true-below", default="", help="comma-separated Hz: columns with the true PSD below each only")
    ap.add_argument("--out", default="eval/results/denoise_oracle.md")
    args = ap.parse_args()
    below_hz = [float(v) for v in args.true_below.split(",") if v]
    a, b = E.halves(E.all_clips(args.real, args.midi, args.musicgen, args.max_s))
    clips = {"A": a, "B": b, "all": a + b}[args.half]
    conditions = [c for c in args.conditions.split(",") if c]
    if not set(conditions) <= set(E.NOISE_CONDITIONS):
        raise SystemExit(f"--conditions: choose from {', '.join(E.NOISE_CONDITIONS)}")
    half_of = {c.name: "A" for c in a} | {c.name: "B" for c in b}
    keys = ("estimator", "true", "true_bias", "ideal", *(f"below {hz:g}" for hz in below_hz))
    regions = " / ".join(f"{lo / 1000:g}-{hi / 1000:g} kHz" for lo, hi in REGIONS_HZ)
    lines = [f"# Denoiser: estimate or filter? (half {args.half}, first {args.max_s:g} s of each clip)", "",
             f"`python eval/denoise_oracle.py ... --max-s {args.max_s:g} --conditions {args.conditions} "
             f"--half {args.half}" + (f" --true-below {args.true_below}" if below_hz else "")
             + "`: SI-SDR change in dB of the `wiener` step alone (see the script's doc).", ""]
    for condition in conditions:
        with ProcessPoolExecutor(args.jobs) as pool:
            rows = list(pool.map(case, [(c, condition, below_hz) for c in clips]))
        below = "".join(f"| true PSD + bias below {hz:g} Hz " for hz in below_hz)
        lines += [f"## {condition}", "", "| clip | half | estimator | true PSD | true PSD + bias | ideal mask "
                  f"{below}| found (trusted, strength, tilt) | estimate minus true noise, dB: {regions} |",
                  "|---" * (8 + len(below_hz)) + "|"]
        for r in rows:
            lines.append(f"| {r['clip']} | {half_of[r['clip']]} | " + " | ".join(f"{r[k]:+.2f}" for k in keys)
                         + f" | {r['found']} | "
                         + " / ".join("none" if not np.isfinite(v) else f"{v:+.1f}" for v in r["regions"]) + " |")
        for h in sorted({half_of[r["clip"]] for r in rows}) + ["all"]:
            sel = [r for r in rows if h == "all" or half_of[r["clip"]] == h]
            for label, fn in (("mean", np.mean), ("worst", np.min)):
                lines.append(f"| **{label}, {h}** | | " + " | ".join(f"**{fn([r[k] for r in sel]):+.2f}**" for k in keys)
                             + " | | |")
        lines.append("")
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
