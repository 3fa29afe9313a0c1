"""Why the `adaptive` denoiser as of commit 65c1511 bypasses or errs: its noise estimate, sub-band
by sub-band, against the truth, on development clips and on clean synthetic signals.

The estimator of that version is reproduced here step by step (so this script keeps describing
it after the denoiser changes): normalised power spectrogram (2048-point Hann STFT, hop 512,
interior frames), moving average over 0.1 s, sliding minimum over 1.5 s; per bin the median of
the minimum track (x the white-noise bias) and the median-to-minimum ratio. Per 1/3-octave
sub-band: `level` = median over bins of the bias-corrected minimum (unbiased for steady white
noise), `excess` = median over bins of the ratio (dB) minus white noise's. The preset trusted a
sub-band between 2 and 15 kHz when `excess <= 2.0 dB` (and it was not empty), and set one flat
clamp: min over trusted sub-bands of `level - 4.5 - 2 * max(excess, 0)`; no trusted sub-band:
bypass.

Truth: `noise` = the added noise's own power in the sub-band (same normalisation: white noise
at -45 dBFS reads -45 dB); `music floor` = what the same estimator reads on the clean clip alone
(`music med` its median power). New candidate feature: `flat` = spectral flatness (geometric /
arithmetic mean over the sub-band's bins, dB) of the per-bin median power: steady noise reads
about 0 dB, harmonic tones far below.

`old dSI-SDR`: SI-SDR change of the old preset (direct, the whole chain); `ideal dSI-SDR`: the
same decision-directed Wiener gain (alpha 0.98, floor -18 dB) given the TRUE noise spectrum, a
reference for how much there was to gain.

    PYTHONPATH=. python eval/denoise_diagnosis.py --real DIR --musicgen DIR [--midi DIR] \\
        --out eval/results/denoise_diagnosis_tables.md
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
from scipy.ndimage import minimum_filter1d, uniform_filter1d

sys.path.insert(0, str(Path(__file__).resolve().parent))
import denoise_eval as E  # noqa: E402

from adaptive_argm.core import intrusive, levels, spectral  # noqa: E402

N_FFT, HOP, SR = 2048, 512, E.SR
SMOOTH_S, MIN_WINDOW_S = 0.1, 1.5
OLD = {"bias_db": -4.5, "excess_max_db": 2.0, "excess_correction": 2.0, "low_hz": 2000.0, "high_hz": 15000.0,
       "empty_below_db": -110.0, "empty_drop_db": 30.0, "alpha": 0.98, "floor_db": -18.0}
"""The `adaptive` preset's mix settings as of commit 65c1511."""
BAND_LOW_HZ, BAND_HIGH_HZ = 250.0, 20200.0
CONDITIONS = ("clean", "white-45", "white-55", "pink-45", "brown-45")
SHOW_BANDS_FOR = ("clean", "white-45", "pink-45")


# --- the old estimator, reproduced --------------------------------------------------------------


def power_spec(x1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(complex STFT on the covering grid, normalised power of the interior frames)."""
    first, count = spectral.covering_grid(x1.size, HOP, N_FFT)
    spec = spectral.stft(x1, N_FFT, HOP, first, count)
    p = spectral.power(spec) / np.float32(np.sum(spectral.hann(N_FFT) ** 2))
    return spec, p[spectral.interior(x1.size, HOP, N_FFT, first, count)]


def track_stats(p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per bin: median of the minimum track, median-to-minimum ratio, median power."""
    q = uniform_filter1d(np.ascontiguousarray(p.T), max(1, round(SMOOTH_S * SR / HOP)), axis=1, mode="nearest")
    track = minimum_filter1d(q, max(1, round(MIN_WINDOW_S * SR / HOP)), axis=1, mode="nearest")
    low = np.median(track, axis=1)
    med = np.median(q, axis=1)
    return low, med / np.maximum(low, 1e-30), med


def white_calibration() -> tuple[float, float]:
    """(bias, ratio_db) of steady white noise (fixed seed, 20 s)."""
    noise = np.random.default_rng(12345).standard_normal(20 * SR).astype(np.float32)
    low, ratio, _ = track_stats(power_spec(noise)[1][:, 1:-1])
    return 1.0 / float(np.median(low)), 10 * math.log10(float(np.median(ratio)))


BIAS, WHITE_RATIO_DB = white_calibration()


def bands() -> list[tuple[float, float, int, int]]:
    edges = [BAND_LOW_HZ]
    while edges[-1] * 2 ** (1 / 3) <= BAND_HIGH_HZ:
        edges.append(edges[-1] * 2 ** (1 / 3))
    out = []
    for lo_hz, hi_hz in zip(edges[:-1], edges[1:]):
        lo, hi = math.ceil(lo_hz * N_FFT / SR), math.floor(hi_hz * N_FFT / SR)
        if hi > lo:
            out.append((lo_hz, hi_hz, lo, hi))
    return out


def old_bands() -> list[tuple[int, int]]:
    """The old clamp's sub-bands, 2-15 kHz (exactly as the old `_band_edges`)."""
    edges = [OLD["low_hz"]]
    while edges[-1] < OLD["high_hz"]:
        edges.append(min(edges[-1] * 2 ** (1 / 3), OLD["high_hz"]))
    out = []
    for lo_hz, hi_hz in zip(edges[:-1], edges[1:]):
        lo, hi = math.ceil(lo_hz * N_FFT / SR), math.floor(hi_hz * N_FFT / SR)
        if hi > lo:
            out.append((lo, hi))
    return out


def db(v: float) -> float:
    return 10 * math.log10(v) if v > 0 else -math.inf


def band_table(x1: np.ndarray, clean1: np.ndarray, noise1: np.ndarray | None) -> list[dict]:
    _, p = power_spec(x1)
    low, ratio, med = track_stats(p)
    clow, _, cmed = track_stats(power_spec(clean1)[1])
    pn = power_spec(noise1)[1].mean(axis=0) if noise1 is not None else None
    ratio_db = 10 * np.log10(np.maximum(ratio, 1e-30))
    rows = []
    for lo_hz, hi_hz, lo, hi in bands():
        m = med[lo:hi]
        rows.append({
            "band": f"{lo_hz:5.0f}-{hi_hz:5.0f}",
            "level": db(float(np.median(low[lo:hi])) * BIAS),
            "noise": db(float(np.mean(pn[lo:hi]))) if pn is not None else -math.inf,
            "music_floor": db(float(np.median(clow[lo:hi])) * BIAS),
            "music_med": db(float(np.median(cmed[lo:hi]))),
            "excess": float(np.median(ratio_db[lo:hi])) - WHITE_RATIO_DB,
            "flat": db(float(np.exp(np.mean(np.log(np.maximum(m, 1e-30))))) / max(float(np.mean(m)), 1e-30)),
        })
    return rows


def old_clamp(x1: np.ndarray) -> tuple[float, int, int, float]:
    """(clamp dB or -inf, trusted sub-bands, sub-bands, excess of the sub-band that set it)."""
    _, p = power_spec(x1)
    low, ratio, _ = track_stats(p)
    per_bin = low * BIAS * 10 ** (OLD["bias_db"] / 10)
    ratio_db = 10 * np.log10(np.maximum(ratio, 1e-30))
    bs = old_bands()
    levels = [float(np.median(per_bin[lo:hi])) for lo, hi in bs]
    empty = max(10 ** (OLD["empty_below_db"] / 10), max(levels) * 10 ** (-OLD["empty_drop_db"] / 10))
    best, best_excess, trusted = math.inf, math.nan, 0
    for (lo, hi), level in zip(bs, levels):
        excess = float(np.median(ratio_db[lo:hi])) - WHITE_RATIO_DB
        if level < empty or excess > OLD["excess_max_db"]:
            continue
        trusted += 1
        v = level * 10 ** (-OLD["excess_correction"] * max(excess, 0.0) / 10)
        if v < best:
            best, best_excess = v, excess
    return (db(best) if trusted else -math.inf), trusted, len(bs), best_excess


def old_denoise(x: np.ndarray) -> np.ndarray:
    """The old `wiener` step on `(channels, samples)` of at most 32.5 s (one block): per channel,
    noise = min(per-bin minimum statistics, flat clamp); bypass when nothing is trusted or the
    gain would remove less than -40 dB of the energy."""
    out = x.copy()
    for c in range(x.shape[0]):
        clamp = old_clamp(x[c])[0]
        if clamp == -math.inf:
            continue
        _, p = power_spec(x[c])
        low, _, _ = track_stats(p)
        noise = np.minimum(low * BIAS * 10 ** (OLD["bias_db"] / 10), 10 ** (clamp / 10)).astype(np.float32)
        y, removed_db = dd_wiener(x[c], noise, with_removed=True)
        if removed_db > -40.0:
            out[c] = y
    return out


# --- the reference filter ------------------------------------------------------------------------


def dd_wiener(x1: np.ndarray, noise_psd: np.ndarray, with_removed: bool = False):
    """The old gain rule (decision-directed, alpha 0.98, floor -18 dB) with a given noise PSD."""
    first, count = spectral.covering_grid(x1.size, HOP, N_FFT)
    spec = spectral.stft(x1, N_FFT, HOP, first, count)
    p = spectral.power(spec) / np.float32(np.sum(spectral.hann(N_FFT) ** 2))
    gamma = p / np.maximum(noise_psd, 1e-30)
    gain = np.empty_like(gamma)
    prev = np.zeros(gamma.shape[1], np.float32)
    a = OLD["alpha"]
    for t in range(gamma.shape[0]):
        xi = a * prev + (1 - a) * np.maximum(gamma[t] - 1, 0)
        gain[t] = xi / (1 + xi)
        prev = gain[t] ** 2 * gamma[t]
    gain = np.maximum(gain, 10 ** (OLD["floor_db"] / 20))
    y = spectral.istft(spec * gain, N_FFT, HOP, first, x1.size)
    if not with_removed:
        return y
    total = float(np.sum(p, dtype=np.float64))
    return y, db((total - float(np.sum(p * gain * gain, dtype=np.float64))) / max(total, 1e-30))


def ideal_change(clean: np.ndarray, noisy: np.ndarray) -> float:
    noise = noisy - clean
    out = np.stack([dd_wiener(noisy[c], power_spec(noise[c])[1].mean(axis=0)) for c in range(noisy.shape[0])])
    return E.si_sdr_change_db(clean, noisy, out)


# --- synthetic signals --------------------------------------------------------------------------


def synthetic() -> list[E.Clip]:
    t = np.arange(5 * SR) / SR
    square = np.where((t * 100) % 1 < 0.5, 1.0, -1.0)
    saw = 2 * ((t * 100) % 1) - 1
    pad = pad_signal(5.0)
    sigs = {"square 100 Hz +-1.0": square, "square 100 Hz +-0.5": 0.5 * square, "sawtooth 100 Hz +-0.5": 0.5 * saw,
            "detuned saw pad": pad}
    return [E.Clip(f"synthetic/{k}", "synthetic", np.stack([v, v]).astype(np.float32)) for k, v in sigs.items()]


def pad_signal(seconds: float) -> np.ndarray:
    """A steady pad: three detuned band-limited sawtooths per note of a held chord, slow swell."""
    t = np.arange(int(seconds * SR)) / SR
    x = np.zeros_like(t)
    for f0 in (110.0, 164.8, 220.0, 277.2):
        for detune in (-0.004, 0.0, 0.004):
            f = f0 * (1 + detune)
            for k in range(1, int(16000 / f)):
                x += np.sin(2 * np.pi * k * f * t + k * 0.7) / k
    x *= 0.6 + 0.4 * np.sin(2 * np.pi * 0.2 * t - np.pi / 2)  # 5 s swell
    return 0.25 * x / np.max(np.abs(x))


# --- report -------------------------------------------------------------------------------------


def fmt(v: float, spec: str = "6.1f") -> str:
    if v == -math.inf:
        return "-inf"
    return "n/a" if isinstance(v, float) and math.isnan(v) else format(v, spec)


def pct(values: list[float]) -> str:
    """median [5th, 95th percentile]."""
    if not values:
        return "-"
    p5, p50, p95 = np.percentile(values, [5, 50, 95])
    return f"{p50:+.2f} [{p5:+.2f}, {p95:+.2f}]"


def census_rows(records: list[dict]) -> list[str]:
    """Sub-bands 2-20 kHz of every clip's left channel, grouped by what dominates them."""
    out = ["| condition | sub-bands | count | excess (dB) | flat (dB) | level - true noise (dB) | old rule trusts | "
           "trusted with excess in [-1, 1] and flat >= -0.5 |", "|---|---|---|---|---|---|---|---|"]
    for cond in CONDITIONS:
        rs = [r for r in records if r["cond"] == cond]
        groups = {"all (no noise added)": rs} if cond == "clean" else {
            "noise-dominated (music floor >= 10 dB below the noise)": [r for r in rs if r["music_floor"] <= r["noise"] - 10],
            "mixed (music floor within 10 dB of the noise)": [r for r in rs if r["noise"] - 10 < r["music_floor"] <= r["noise"]],
            "music-dominated (music floor above the noise)": [r for r in rs if r["music_floor"] > r["noise"]]}
        for name, g in groups.items():
            old_ok = [r for r in g if r["excess"] <= OLD["excess_max_db"]]
            new_ok = [r for r in g if abs(r["excess"]) <= 1.0 and r["flat"] >= -0.5]
            err = [r["level"] - r["noise"] for r in g if math.isfinite(r["noise"])]
            out.append(f"| {cond} | {name} | {len(g)} | {pct([r['excess'] for r in g])} | {pct([r['flat'] for r in g])} | "
                       f"{pct(err) if err else '-'} | {len(old_ok)} | {len(new_ok)} |")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    E.corpus_arguments(ap)
    ap.add_argument("--out", default="eval/results/denoise_diagnosis_tables.md")
    ap.add_argument("--band-tables", default="", help="comma-separated clip names (or substrings) to show per sub-band")
    args = ap.parse_args()
    t0 = time.time()
    clips = E.all_clips(args.real, args.midi, args.musicgen, args.max_s)
    lines = ["# Denoiser diagnosis: the estimator as of commit 65c1511", "",
             "Generated by `eval/denoise_diagnosis.py` (see its docstring for every quantity). "
             f"White-noise calibration: bias {db(BIAS):+.2f} dB, median-to-minimum ratio {WHITE_RATIO_DB:.2f} dB. "
             f"Clips cut to {args.max_s:g} s; sub-bands are 1/3 octave.", "",
             "## Per clip", "",
             "Channel by channel (L / R): the old flat clamp (preset bias -4.5 dB included), the true noise level in "
             "the sub-band that set it, trusted / all sub-bands between 2 and 15 kHz, the excess of the sub-band "
             "that set it; SI-SDR change of the old `wiener` step and of the same gain rule given the true noise "
             "spectrum.", "",
             "| clip | condition | clamp L / R (dB) | true noise there (dB) | trusted | excess (dB) | old dSI-SDR | ideal dSI-SDR | bypass |",
             "|---|---|---|---|---|---|---|---|---|"]
    synth = ["| signal | clamp (dB) | trusted | excess (dB) | energy removed (dB re input) | loudness gain the preset "
             "then applies (dB) | peak after it (dBFS) | LSD vs input (dB) |", "|---|---|---|---|---|---|---|---|"]
    detail: list[str] = []
    records: list[dict] = []
    wanted = [w for w in args.band_tables.split(",") if w]
    for clip in clips + synthetic():
        conds = CONDITIONS if clip.corpus != "synthetic" else ("clean",)
        for cond in conds:
            noisy = E.degraded(clip, cond) if cond != "white-55" else _white(clip, -55.0)
            noise = noisy - clip.audio if cond != "clean" else None
            clamps = [old_clamp(noisy[c]) for c in range(noisy.shape[0])]
            out = old_denoise(noisy)
            bypass = bool(np.array_equal(out, noisy))
            if clip.corpus == "synthetic":
                synth.append(synthetic_row(clip, noisy, out, clamps[0]))
                detail += band_section(clip, cond, noisy, noise, clamps)
                print(synth[-1], flush=True)
                continue
            change = E.si_sdr_change_db(clip.audio, noisy, out)
            ideal = ideal_change(clip.audio, noisy) if noise is not None else math.nan
            true_at = ["-" if noise is None or cl[0] == -math.inf else fmt(_true_at_clamp(noisy[c], noise[c]))
                       for c, cl in enumerate(clamps)]
            lines.append(f"| {clip.name} | {cond} | {' / '.join(fmt(c[0]) for c in clamps)} | {' / '.join(true_at)} | "
                         f"{' / '.join(f'{c[1]}/{c[2]}' for c in clamps)} | {' / '.join(fmt(c[3], '.2f') for c in clamps)} | "
                         f"{change:+.2f} | {fmt(ideal, '+.2f')} | {'yes' if bypass else 'no'} |")
            for r in band_table(noisy[0], clip.audio[0], noise[0] if noise is not None else None):
                if float(r["band"].split("-")[0]) >= OLD["low_hz"]:
                    records.append({**r, "cond": cond, "clip": clip.name})
            if any(w in clip.name for w in wanted) and cond in SHOW_BANDS_FOR:
                detail += band_section(clip, cond, noisy, noise, clamps)
            print(lines[-1], flush=True)
    lines += ["", "## Sub-band census (2-20 kHz, channel L, every clip)", "",
              "median [5th, 95th percentile] over sub-bands. `level` is the unbiased minimum-statistics level "
              "(without the preset's -4.5 dB).", ""] + census_rows(records)
    lines += ["", "## Clean synthetic signals (5 s, stereo, identical channels)", ""] + synth
    lines += ["", "## Sub-band tables (channel L)", ""] + detail
    lines += ["", f"({time.time() - t0:.0f} s)"]
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


def synthetic_row(clip: E.Clip, x: np.ndarray, out: np.ndarray, clamp: tuple) -> str:
    removed = db(float(np.sum((x.astype(np.float64) - out) ** 2)) / float(np.sum(x.astype(np.float64) ** 2)))
    gain_db = levels.loudness_lufs(x, SR) - levels.loudness_lufs(out, SR)
    y = out * 10 ** (gain_db / 20)
    peak = 20 * math.log10(float(np.max(np.abs(y))))
    return (f"| {clip.name.split('/', 1)[1]} | {fmt(clamp[0])} | {clamp[1]}/{clamp[2]} | {fmt(clamp[3], '+.2f')} | "
            f"{fmt(removed, '+.1f')} | {gain_db:+.2f} | {peak:+.2f} | {intrusive.lsd_db(y, x, SR):.2f} |")


def _white(clip: E.Clip, dbfs: float) -> np.ndarray:
    from adaptive_argm.evaluation import degrade

    y, _ = degrade.noise(clip.audio, SR, "white", dbfs, E.seed_for(clip, f"white{int(dbfs)}"))
    return y


def _true_at_clamp(x1: np.ndarray, noise1: np.ndarray) -> float:
    """True noise level of the old clamp's quietest trusted sub-band."""
    _, p = power_spec(x1)
    low, ratio, _ = track_stats(p)
    per_bin = low * BIAS * 10 ** (OLD["bias_db"] / 10)
    ratio_db = 10 * np.log10(np.maximum(ratio, 1e-30))
    pn = power_spec(noise1)[1].mean(axis=0)
    bs = old_bands()
    levels = [float(np.median(per_bin[lo:hi])) for lo, hi in bs]
    empty = max(10 ** (OLD["empty_below_db"] / 10), max(levels) * 10 ** (-OLD["empty_drop_db"] / 10))
    best, where = math.inf, None
    for (lo, hi), level in zip(bs, levels):
        excess = float(np.median(ratio_db[lo:hi])) - WHITE_RATIO_DB
        if level < empty or excess > OLD["excess_max_db"]:
            continue
        v = level * 10 ** (-OLD["excess_correction"] * max(excess, 0.0) / 10)
        if v < best:
            best, where = v, (lo, hi)
    return db(float(np.mean(pn[where[0]:where[1]]))) if where else math.nan


def band_section(clip, cond, noisy, noise, clamps) -> list[str]:
    rows = band_table(noisy[0], clip.audio[0], noise[0] if noise is not None else None)
    lines = [f"### {clip.name}, {cond} (old clamp L {fmt(clamps[0][0])} dB)", "",
             "| sub-band (Hz) | level | true noise | music floor | music med | excess | flat | old rule |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lo_hz = float(r["band"].split("-")[0])
        in_old = OLD["low_hz"] <= lo_hz < OLD["high_hz"]
        rule = ("trusted" if r["excess"] <= OLD["excess_max_db"] else "skipped") if in_old else ""
        lines.append(f"| {r['band']} | {fmt(r['level'])} | {fmt(r['noise'])} | {fmt(r['music_floor'])} | "
                     f"{fmt(r['music_med'])} | {r['excess']:+.2f} | {r['flat']:+.2f} | {rule} |")
    return lines + [""]


if __name__ == "__main__":
    main()
