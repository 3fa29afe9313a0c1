"""Cross-validated evaluation of the `adaptive` preset's denoiser, direct mode, on the development
corpora: tune on one half of the songs, report on the other half, then swap.

Split (`denoise_eval.halves`): within each corpus, songs in name order alternate A, B, A, ...
Tuning: every candidate in `GRID` (overrides of the shipped preset's mix `wiener` settings) is
run on the tuning half under every condition (under noise the whole path with SI-SDR and
ViSQOL; the harmless conditions SI-SDR only, through the preset's chain without the loudness
matching and clip safety, which leave SI-SDR alone); candidates that break a goal other than a
SI-SDR mean there (harmless conditions below -0.1 dB, any noise condition below -0.5 dB on any
clip, any clip's ViSQOL more than 0.05 down, white noise's mean ViSQOL change under +0.3) are
dropped, and the one with the best mean SI-SDR change over the three noise conditions wins
(ties: the earlier, more conservative entry). It is then scored on the other half with every
measure. The shipped preset (`adaptive.toml`) is scored on both halves too, and so is the
estimator as of commit 65c1511 (reproduced in `denoise_diagnosis.py`; SI-SDR and loudness only).

Each case goes through `pipeline.restore` (`adaptive-argm run --mode direct`: DC removal, the
denoiser, loudness matching, clip safety; not the preset's spectral recovery, which is measured on
its own) at 44.1 kHz. SI-SDR change: output minus the DC-free degraded input, both read at most
60 dB, against the DC-free clean clip (loading removes DC and subsonic drift from every input
before any step: scored against the raw clip, that removal would count as the denoiser's damage).
ViSQOL (v3, audio mode, 48 kHz mono, the same reference) is computed only for cases whose output
differs from the DC-free input; an unchanged output scores a change of exactly 0.

    PYTHONPATH=. python eval/denoise_cv.py --real DIR --midi DIR --musicgen DIR \\
        --out eval/results/denoise_cv.md --jobs 2

`--sweep A '{"gain_floor_db": -21}' ...` scores candidates on one half only, with the same rule,
and prints one line each (the explorations of denoise_cv.md's last sections); nothing is written
but `--rows` (every case, as JSON lines).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import denoise_eval as E  # noqa: E402

from adaptive_argm.core import dsp, steps  # noqa: E402
from adaptive_argm.core.dc import remove_dc  # noqa: E402

GRID: tuple[dict, ...] = (
    {"tilt_min_db_per_octave": -5.0},
    {},
    {"tilt_prior_offset_db_per_octave": 0.25},
    {"tilt_prior_offset_db_per_octave": 1.25},
    {"tilt_excess_correction": 3.0},
    {"bias_correction_db": -2.5},
    {"tilt_prior_bands": 0, "hold_tilt_below_db_per_octave": 0.0, "tilt_min_db_per_octave": -6.0},
)
"""Candidates, as overrides of the shipped preset (`SHIPPED` is the shipped preset itself); the
last is the estimator as shipped before the raw-slope prior (the first design's tilt rule)."""
SHIPPED = 1
"""The index of `{}` in `GRID`: the run that chose it listed the steepest tilt -5 first."""

GOAL_MEAN_DB = {"white-45": 2.5, "pink-45": 1.5}
GOAL_WORST_NOISE_DB = -0.5
"""Per clip, for every noise condition (brown-ish hiss included: no goal of its own, but a
denoiser that cuts music under it is a regression)."""
UNCHANGED_TOLERANCE = 1e-6
"""An output within this of the DC-free input (relative to its peak) is the input: the loudness
matching of an unchanged signal can still scale it by a rounding error, which ViSQOL alone notices."""
GOAL_WORST_HARMLESS_DB = -0.1
GOAL_VISQOL_MEAN = {"white-45": 0.3}
GOAL_VISQOL_WORST = -0.05
GOAL_LOUDNESS_LU = 0.5


def case(clip: E.Clip, condition: str, overrides: dict | None, with_visqol: bool, old: bool = False) -> dict:
    """One clip under one condition through one configuration, the whole direct-mode path: its
    scores."""
    noisy = E.degraded(clip, condition)
    if old:
        import denoise_diagnosis as Dg

        out = Dg.old_denoise(remove_dc(noisy, E.SR))
        gain_db = 0.0
    else:
        restored = E.restore_direct(noisy, E.preset_with(overrides))
        out, gain_db = restored.audio, restored.loudness_gain_db
    dc_free, ref = remove_dc(noisy, E.SR), E.reference(clip)
    unchanged = bool(np.max(np.abs(out - dc_free)) <= UNCHANGED_TOLERANCE * max(float(np.max(np.abs(dc_free))), 1e-30))
    row = {"clip": clip.name, "corpus": clip.corpus, "condition": condition, "unchanged": unchanged,
           "si_sdr_change_db": 0.0 if unchanged else E.si_sdr_change_db(ref, dc_free, out),
           "loudness_change_lu": 0.0 if unchanged else E.loudness_change_lu(dc_free, out),
           "loudness_gain_db": gain_db, "visqol_in": math.nan, "visqol_change": 0.0 if unchanged else math.nan}
    if with_visqol and not unchanged:
        row["visqol_in"] = _visqol_in(clip, condition, ref, dc_free)
        row["visqol_change"] = E.visqol(ref, out) - row["visqol_in"]
    return row


VISQOL_CACHE: Path | None = None


def _visqol_in(clip: E.Clip, condition: str, ref: np.ndarray, dc_free: np.ndarray) -> float:
    """The DC-free degraded input's ViSQOL against `ref`, cached on disk per clip, condition and
    seed when asked."""
    if VISQOL_CACHE is None:
        return E.visqol(ref, dc_free)
    f = VISQOL_CACHE / f"{E.seed_for(clip, condition)}-{clip.name.replace('/', '_')}-{condition}-dcfree.json"
    if f.is_file():
        return float(json.loads(f.read_text())["visqol"])
    v = E.visqol(ref, dc_free)
    f.write_text(json.dumps({"visqol": v}))
    return v


def tuning_cases(clip: E.Clip, condition: str, grid: tuple[dict, ...]) -> list[dict]:
    """The scores of every candidate on one clip and condition, for tuning: under noise, the whole
    direct-mode path with SI-SDR and ViSQOL (`case`); under a harmless condition, SI-SDR alone
    through the preset's chain (DC removal, denoiser) without loudness matching and clip safety,
    which do not move SI-SDR, and no delay search, since the chain adds no delay."""
    if condition in E.NOISE_CONDITIONS:
        return [{**case(clip, condition, g, True), "candidate": i} for i, g in enumerate(grid)]
    noisy = E.degraded(clip, condition)
    dc_free, ref = remove_dc(noisy, E.SR), E.reference(clip)
    base = E.fast_si_sdr_db(ref, dc_free)
    rows = []
    for i, g in enumerate(grid):
        out = dsp.apply_chain(dc_free, E.SR, E.preset_with(g).chain_for(None))
        change = 0.0 if np.array_equal(out, dc_free) else E.capped(E.fast_si_sdr_db(ref, out)) - E.capped(base)
        rows.append({"clip": clip.name, "condition": condition, "candidate": i, "si_sdr_change_db": change})
    return rows


def _case(args: tuple) -> dict:
    return case(*args)


def _tuning(args: tuple) -> list[dict]:
    return tuning_cases(*args)


def run_cases(tasks: list[tuple], jobs: int, fn=_case) -> list:
    if jobs <= 1:
        return [fn(t) for t in tasks]
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(fn, tasks, chunksize=1))


def objective(rows: list[dict]) -> tuple[bool, float]:
    """(meets the per-clip goals and the ViSQOL goals, mean SI-SDR change over the noise conditions)."""
    ok = all(r["si_sdr_change_db"] >= GOAL_WORST_HARMLESS_DB for r in rows if r["condition"] in E.HARMLESS_CONDITIONS)
    ok = ok and all(r["si_sdr_change_db"] >= GOAL_WORST_NOISE_DB for r in rows if r["condition"] in E.NOISE_CONDITIONS)
    ok = ok and not any(r.get("visqol_change", 0.0) < GOAL_VISQOL_WORST for r in rows)
    for cond, target in GOAL_VISQOL_MEAN.items():
        ok = ok and float(np.nanmean([r["visqol_change"] for r in rows if r["condition"] == cond])) >= target
    noise = [r["si_sdr_change_db"] for r in rows if r["condition"] in E.NOISE_CONDITIONS]
    return ok, float(np.mean(noise))


# --- report --------------------------------------------------------------------------------------


def worst(rows: list[dict], key: str) -> tuple[float, str]:
    r = min((r for r in rows if math.isfinite(r[key])), key=lambda r: r[key], default=None)
    return (r[key], r["clip"]) if r else (math.nan, "-")


def table(rows: list[dict], with_visqol: bool) -> list[str]:
    head = "| condition | clips | mean dSI-SDR (dB) | worst dSI-SDR (dB), clip | unchanged |"
    sep = "|---|---|---|---|---|"
    if with_visqol:
        head += " mean dViSQOL | worst dViSQOL, clip |"
        sep += "---|---|"
    head += " max abs dLoudness (LU) |"
    sep += "---|"
    out = [head, sep]
    for cond in E.CONDITIONS:
        rs = [r for r in rows if r["condition"] == cond]
        if not rs:
            continue
        w, wc = worst(rs, "si_sdr_change_db")
        line = (f"| {cond} | {len(rs)} | {np.mean([r['si_sdr_change_db'] for r in rs]):+.2f} | {w:+.2f} {wc} | "
                f"{sum(r['unchanged'] for r in rs)} |")
        if with_visqol:
            vq = [r["visqol_change"] for r in rs]
            vw, vwc = worst(rs, "visqol_change")
            line += f" {np.nanmean(vq):+.3f} | {vw:+.3f} {vwc} |"
        line += f" {max(abs(r['loudness_change_lu']) for r in rs):.2f} |"
        out.append(line)
    return out


def goals(rows: list[dict]) -> list[str]:
    out = []

    def say(text: str, passed: bool) -> None:
        out.append(f"- {'met' if passed else 'NOT met'}: {text}")

    for cond, target in GOAL_MEAN_DB.items():
        rs = [r for r in rows if r["condition"] == cond]
        m = float(np.mean([r["si_sdr_change_db"] for r in rs]))
        w, wc = worst(rs, "si_sdr_change_db")
        say(f"{cond} mean dSI-SDR {m:+.2f} dB >= {target:+.1f}", m >= target)
        say(f"{cond} worst clip {w:+.2f} dB ({wc}) >= {GOAL_WORST_NOISE_DB:+.1f}", w >= GOAL_WORST_NOISE_DB)
    for cond, target in GOAL_VISQOL_MEAN.items():
        m = float(np.nanmean([r["visqol_change"] for r in rows if r["condition"] == cond]))
        say(f"{cond} mean dViSQOL {m:+.3f} >= {target:+.2f}", m >= target)
    for cond in E.HARMLESS_CONDITIONS:
        w, wc = worst([r for r in rows if r["condition"] == cond], "si_sdr_change_db")
        say(f"{cond}: worst clip {w:+.2f} dB ({wc}) >= {GOAL_WORST_HARMLESS_DB:+.1f}", w >= GOAL_WORST_HARMLESS_DB)
    w, wc = worst(rows, "visqol_change")
    cond = next((r["condition"] for r in rows if r["clip"] == wc and r["visqol_change"] == w), "")
    say(f"every clip and condition: worst dViSQOL {w:+.3f} ({wc}, {cond}) >= {GOAL_VISQOL_WORST:+.2f}",
        not (w < GOAL_VISQOL_WORST))
    lu = max(abs(r["loudness_change_lu"]) for r in rows)
    say(f"loudness: max |change| {lu:.2f} LU <= {GOAL_LOUDNESS_LU}", lu <= GOAL_LOUDNESS_LU)
    return out


def sweep_line(rows: list[dict]) -> str:
    """One candidate's tuning rows as a line: the rule's verdict and score, then per condition the
    mean / worst clip SI-SDR change and, under noise, the mean / worst ViSQOL change."""
    ok, score = objective(rows)
    parts = []
    for cond in E.CONDITIONS:
        rs = [r for r in rows if r["condition"] == cond]
        w, _ = worst(rs, "si_sdr_change_db")
        part = f"{cond} {np.mean([r['si_sdr_change_db'] for r in rs]):+.2f}/{w:+.2f}"
        if cond in E.NOISE_CONDITIONS:
            vw, vwc = worst(rs, "visqol_change")
            part += f" dViSQOL {np.nanmean([r['visqol_change'] for r in rs]):+.3f}/{vw:+.3f} ({vwc})"
        parts.append(part)
    return f"{'met' if ok else 'BROKEN'} {score:+.3f} | " + " | ".join(parts)


def sweep_grid(values: list[str]) -> tuple[dict, ...]:
    """`--sweep HALF CANDIDATE...` checked: the candidates as overrides (`{}` when none given),
    each refused as a preset step would be (`steps.check`)."""
    if values[0] not in ("A", "B"):
        raise SystemExit(f"--sweep: the first value is the half, A or B, not {values[0]!r}")
    grid = []
    for g in values[1:]:
        try:
            overrides = json.loads(g)
        except json.JSONDecodeError as e:
            raise SystemExit(f"--sweep: {g!r} is not a JSON object of overrides ({e.msg})") from None
        if not isinstance(overrides, dict):
            raise SystemExit(f"--sweep: {g!r} is not a JSON object of overrides")
        try:
            steps.check(steps.Step("wiener", overrides), "--sweep")
        except steps.PresetError as e:
            raise SystemExit(str(e)) from None
        grid.append(overrides)
    return tuple(grid) or ({},)


def write_rows(path: str | None, rows: list[dict]) -> None:
    """Every case as a JSON line to `path` (`--rows`), when one was given."""
    if path:
        Path(path).write_text("".join(json.dumps(r) + "\n" for r in rows))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    E.corpus_arguments(ap)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--out", default="eval/results/denoise_cv.md")
    ap.add_argument("--rows", help="also write every case as JSON lines here")
    ap.add_argument("--visqol-cache", help="folder to keep the degraded inputs' ViSQOL scores in between runs")
    ap.add_argument("--sweep", nargs="+", metavar=("HALF", "CANDIDATE"),
                    help="only score these candidates (JSON overrides of the shipped preset) on half A or B")
    args = ap.parse_args()
    grid = sweep_grid(args.sweep) if args.sweep else None  # bad values fail before the corpora are read
    global VISQOL_CACHE
    if args.visqol_cache:
        VISQOL_CACHE = Path(args.visqol_cache)
        VISQOL_CACHE.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    clips = E.all_clips(args.real, args.midi, args.musicgen, args.max_s)
    halves = dict(zip("AB", E.halves(clips)))
    if grid is not None:
        rows = [r for rs in run_cases([(c, cond, grid) for c in halves[args.sweep[0]] for cond in E.CONDITIONS],
                                      args.jobs, _tuning) for r in rs]
        for i, g in enumerate(grid):
            print(f"{args.sweep[0]} {json.dumps(g)} {sweep_line([r for r in rows if r['candidate'] == i])}")
        write_rows(args.rows, rows)
        return
    lines = ["# Denoiser, cross-validated (direct mode)", "",
             f"Generated by `eval/denoise_cv.py` in {{wall}} s. Clips: {len(clips)} "
             f"({', '.join(f'{c}: {sum(x.corpus == c for x in clips)}' for c in dict.fromkeys(x.corpus for x in clips))}), "
             f"first {args.max_s:g} s of each, 44.1 kHz.", "",
             "Halves (within each corpus, songs in name order alternate A, B):", ""]
    for h, cs in halves.items():
        lines.append(f"- {h}: " + ", ".join(c.name for c in cs))
    lines += ["", "Candidates (overrides of the shipped preset; `{}` is the shipped preset):", ""]
    lines += [f"{i}. `{json.dumps(g)}`" for i, g in enumerate(GRID)]
    all_rows: list[dict] = []
    for tune_h, test_h in (("A", "B"), ("B", "A")):
        tune, test = halves[tune_h], halves[test_h]
        tuned = [r for rs in run_cases([(c, cond, GRID) for c in tune for cond in E.CONDITIONS], args.jobs, _tuning)
                 for r in rs]
        scores = []
        for i, g in enumerate(GRID):
            ok, score = objective([r for r in tuned if r["candidate"] == i])
            scores.append((ok, score, i))
            print(f"tune {tune_h} candidate {i} {json.dumps(g)}: per-clip goals {'met' if ok else 'broken'}, "
                  f"noise mean {score:+.3f} dB", flush=True)
        feasible = [s for s in scores if s[0]] or scores
        best = max(feasible, key=lambda s: (s[1], -s[2]))[2]
        rows = run_cases([(c, cond, GRID[best], True) for c in test for cond in E.CONDITIONS], args.jobs)
        for r in rows:
            r.update(fold=f"tuned on {tune_h}, scored on {test_h}", config=best)
        all_rows += rows
        start = len(lines)
        lines += ["", f"## Tuned on {tune_h}, scored on {test_h}", "",
                  "Tuning half: " + "; ".join(f"{i}: {'ok' if ok else 'breaks a per-clip goal'}, {sc:+.3f} dB"
                                              for ok, sc, i in scores) + f". Chosen: candidate {best}.", ""]
        lines += table(rows, True) + ["", "Goals on this half:", ""] + goals(rows)
        print("\n".join(lines[start:]), flush=True)
    for h in "AB":
        rows = [r for r in all_rows if r["clip"] in {c.name for c in halves[h]} and r["config"] == SHIPPED]
        if len(rows) < len(halves[h]) * len(E.CONDITIONS):
            rows = run_cases([(c, cond, {}, True) for c in halves[h] for cond in E.CONDITIONS], args.jobs)
            for r in rows:
                r.update(fold=f"shipped preset on {h}", config=SHIPPED)
            all_rows += rows
        lines += ["", f"## Shipped preset on half {h}", ""] + table(rows, True)
    both = [r for r in all_rows if r["config"] == SHIPPED and r["fold"].startswith(("shipped", "tuned"))]
    seen, merged = set(), []
    for r in both:
        if (r["clip"], r["condition"]) not in seen:
            seen.add((r["clip"], r["condition"]))
            merged.append(r)
    if len(merged) == len(clips) * len(E.CONDITIONS):
        lines += ["", "## Shipped preset, all clips", ""] + table(merged, True) + ["", "Goals:", ""] + goals(merged)
    old = run_cases([(c, cond, None, False, True) for c in clips for cond in E.CONDITIONS], args.jobs)
    lines += ["", "## The estimator as of commit 65c1511, all clips (SI-SDR and loudness only)", ""] + table(old, False)
    text = "\n".join(lines).replace("{wall}", f"{time.time() - t0:.0f}") + "\n"
    Path(args.out).write_text(text)
    write_rows(args.rows, all_rows + old)
    print(text)


if __name__ == "__main__":
    main()
