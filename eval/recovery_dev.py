"""Spectral recovery on the development corpora: band-limit clean full-band music the way it
happens in practice, recover it, and score it against the clean original.

Conditions (each from the clean excerpt at its own rate, back at that rate):
  full    nothing: recovery must return the input bit for bit
  r32     resampled to 32 kHz and back (soxr, very high quality): a 16 kHz band, MusicGen's
  r22     resampled to 22.05 kHz and back: an 11 kHz band
  r16     resampled to 16 kHz and back: an 8 kHz band
  cr32    the codec (LAME VBR 7 through pedalboard, as `degrade.codec`), then r32
  cr22    the codec, then r22

Scores: ViSQOL v3 audio mode (visqol-python, 48 kHz, mono downmix) against the clean excerpt;
log-spectral distance over the bins from the detected cutoff to 20 kHz (mono downmix, levels
clamped 80 dB below the clean excerpt's mean bin power, as `metrics.lsd_db` does); BS.1770
loudness change; samples newly over full scale. Cross-validation: the songs are split into two
halves (alternating within each game's soundtrack, by name); every table gives each half's mean
and worst clip. The recovery's defaults were tuned on half A only.

With `--midi DIR` (the multitrack corpus: one folder per song, `mixed.wav` plus stems), the
resampling conditions are also run direct (recover the mix), stem-wise (recover each oracle
stem, sum) and routed (the router's choice on the oracle stems).

    python eval/recovery_dev.py --real CORPORA/real-dev --midi CORPORA/midi-dev --out eval/results
    python eval/recovery_dev.py --speed CORPORA/midi-dev/busy_schedule/mixed.wav
    python eval/recovery_dev.py --real CORPORA/real-dev --half B --conditions r32,r22,r16 --as-run --out DIR
"""

from __future__ import annotations

import argparse
import csv
import functools
import json
import math
import os
import statistics
import sys
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import pyloudnorm
import soundfile as sf
import soxr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adaptive_argm.core.recovery import RecoverySettings, recover  # noqa: E402
from adaptive_argm.evaluation.degrade import codec  # noqa: E402

CONDITIONS = ("full", "r32", "r22", "r16", "cr32", "cr22")
LOW_RATES = {"r32": 32000, "r22": 22050, "r16": 16000, "cr32": 32000, "cr22": 22050}
GOALS = {"r22": 1.0, "r16": 0.8, "r32": 0.05, "cr32": 0.5, "cr22": 0.5}
VISQOL_SR = 48000
LSD_TOP_HZ = 20000.0
LSD_FLOOR_DB = 80.0
STEMS = ("drums", "bass", "other", "vocals")


# --- conditions ----------------------------------------------------------------------------------


def resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """`(channels, samples)` float32 through soxr (very high quality, linear phase)."""
    if sr_in == sr_out:
        return x
    y = soxr.resample(np.ascontiguousarray(x.T, dtype=np.float32), sr_in, sr_out, quality="VHQ")
    return np.ascontiguousarray(np.atleast_2d(y.T), dtype=np.float32)


def fit(y: np.ndarray, n: int) -> np.ndarray:
    return y[:, :n] if y.shape[1] >= n else np.pad(y, ((0, 0), (0, n - y.shape[1])))


def degrade(name: str, x: np.ndarray, sr: int) -> np.ndarray:
    if name == "full":
        return x
    y = x
    if name.startswith("cr"):
        y = codec(x, sr)[0]
    low = LOW_RATES[name]
    return fit(resample(resample(y, sr, low), low, sr), x.shape[1])


# --- scores ----------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _visqol_api():
    from visqol import VisqolApi

    api = VisqolApi()
    api.create(mode="audio")
    return api


def visqol(ref: np.ndarray, deg: np.ndarray, sr: int) -> float:
    r = resample(ref.mean(axis=0, keepdims=True), sr, VISQOL_SR)[0].astype(np.float64)
    d = resample(deg.mean(axis=0, keepdims=True), sr, VISQOL_SR)[0].astype(np.float64)
    n = min(r.size, d.size)
    return float(_visqol_api().measure_from_arrays(r[:n], d[:n], VISQOL_SR).moslqo)


def lsd_above(ref: np.ndarray, deg: np.ndarray, sr: int, lo_hz: float, n_fft: int = 2048, hop: int = 512) -> float:
    w = np.hanning(n_fft + 1)[:-1]

    def power(x: np.ndarray) -> np.ndarray:
        frames = np.lib.stride_tricks.sliding_window_view(x.mean(axis=0), n_fft)[::hop]
        return np.abs(np.fft.rfft(frames * w, axis=-1)) ** 2

    pr, pd = power(ref), power(deg)
    floor = np.sum(w**2) * np.mean(ref.mean(axis=0) ** 2) * 10 ** (-LSD_FLOOR_DB / 10)
    f = np.fft.rfftfreq(n_fft, 1 / sr)
    band = (f >= lo_hz) & (f <= min(LSD_TOP_HZ, sr / 2))
    a = 10 * np.log10(np.maximum(pr[:, band], floor))
    b = 10 * np.log10(np.maximum(pd[:, band], floor))
    return float(np.mean(np.sqrt(np.mean((a - b) ** 2, axis=1))))


def lufs(x: np.ndarray, sr: int) -> float:
    return float(pyloudnorm.Meter(sr).integrated_loudness(x.T.astype(np.float64)))


def new_overs(out: np.ndarray, inp: np.ndarray) -> int:
    return int(np.sum((np.abs(out) > 1.0) & (np.abs(inp) <= 1.0)))


# --- jobs ------------------------------------------------------------------------------------------


def read(path: str) -> tuple[np.ndarray, int]:
    x, sr = sf.read(path, dtype="float32", always_2d=True)
    return np.ascontiguousarray(x.T), sr


def real_job(args: tuple[str, str, str, str, dict]) -> dict:
    clip, half, path, cond, settings, as_run = args
    x, sr = read(path)
    y = degrade(cond, x, sr)
    t = time.perf_counter()
    if as_run:  # as `run` does it: DC and drift removed at load (the reference too), the step as a block stage
        from adaptive_argm.core.dc import remove_dc
        from adaptive_argm.core.dsp import apply_chain
        from adaptive_argm.core.recovery import merged
        from adaptive_argm.core.steps import Step

        x, y = remove_dc(x, sr, bypass=False), remove_dc(y, sr, bypass=False)
        found: list = []
        z = apply_chain(y, sr, (Step("spectral_recovery", settings),), reports=found)
        rep = merged(found)
        z = y if not rep.acted else z
    else:
        z, rep = recover(y, sr, RecoverySettings(**settings))
    seconds = time.perf_counter() - t
    row = {"clip": clip, "half": half, "condition": cond, "sr": sr, "acted": rep.acted,
           "kind": rep.kind, "cutoff_hz": rep.cutoff_hz, "band_lo_hz": rep.band_lo_hz,
           "band_hi_hz": rep.band_hi_hz, "level_re_below_db": rep.level_re_below_db,
           "character": rep.character, "recover_s": seconds, "identical": z is y}
    if cond == "full":
        return row
    lo = rep.cutoff_hz or LOW_RATES[cond] / 2
    v_in = visqol(x, y, sr)
    v_out = visqol(x, z, sr) if rep.acted else v_in
    l_in = lsd_above(x, y, sr, lo)
    l_out = lsd_above(x, z, sr, lo) if rep.acted else l_in
    row.update(visqol_in=v_in, visqol_out=v_out, visqol_change=v_out - v_in, lsd_in=l_in,
               lsd_out=l_out, lsd_reduction=1 - l_out / l_in, loudness_change_lu=lufs(z, sr) - lufs(y, sr),
               new_overs=new_overs(z, y))
    return row


def excerpt(x: np.ndarray, sr: int, seconds: float | None) -> np.ndarray:
    """The middle `seconds` of `x` (all of it when None or longer)."""
    n = int(seconds * sr) if seconds else x.shape[1]
    start = max(0, (x.shape[1] - n) // 2)
    return x[:, start:start + n]


def midi_job(args: tuple[str, str, str, str, dict, float | None]) -> dict:
    from adaptive_argm.core.route import route

    song, half, folder, cond, settings, seconds = args
    s = RecoverySettings(**settings)
    mix, sr = read(os.path.join(folder, "mixed.wav"))
    mix = excerpt(mix, sr, seconds)
    stems = {k: excerpt(read(os.path.join(folder, f"{k}.wav"))[0], sr, seconds) for k in STEMS
             if os.path.exists(os.path.join(folder, f"{k}.wav"))}
    # Resampling is linear: degraded stems still sum to the degraded mix.
    y = degrade(cond, mix, sr)
    ys = {k: degrade(cond, v, sr) for k, v in stems.items()}
    direct, rep = recover(y, sr, s)
    recovered = {k: recover(v, sr, s) for k, v in ys.items()}
    stemwise = sum(r[0] for r in recovered.values())
    plan = route(ys, y, sr, mode="routed")
    if plan.mode_used == "direct":
        routed = direct
    else:
        done = set(plan.processed())
        routed = sum(recovered[k][0] if k in done else ys[k] for k in ys)
    lo = rep.cutoff_hz or LOW_RATES[cond] / 2
    v_in = visqol(mix, y, sr)
    row = {"clip": song, "half": half, "condition": cond, "sr": sr, "cutoff_hz": rep.cutoff_hz,
           "router": plan.mode_used, "visqol_in": v_in, "lsd_in": lsd_above(mix, y, sr, lo),
           "stems_acted": ",".join(k for k, r in recovered.items() if r[1].acted)}
    for mode, z in (("direct", direct), ("stemwise", stemwise), ("routed", routed)):
        row[f"visqol_{mode}"] = visqol(mix, z, sr)
        row[f"change_{mode}"] = row[f"visqol_{mode}"] - v_in
        row[f"lsd_{mode}"] = lsd_above(mix, z, sr, lo)
    return row


# --- tables ----------------------------------------------------------------------------------------


def halves(names: list[str], group) -> dict[str, str]:
    """Alternate A/B by name within each group, so both halves hold every source."""
    by: dict[str, list[str]] = {}
    for n in sorted(names):
        by.setdefault(group(n), []).append(n)
    return {n: "AB"[i % 2] for members in by.values() for i, n in enumerate(members)}


def real_clips(folder: str | Path) -> dict[str, tuple[str, str]]:
    """The real-music corpus in `folder` (manifest.json + WAVs): clip name -> (path, half), the
    halves alternating within each game's soundtrack."""
    manifest = json.loads((Path(folder) / "manifest.json").read_text())
    found = {e["track_id"]: (str(Path(folder) / e["file"]), e["source"]) for e in manifest["excerpts"]}
    half = halves(list(found), lambda n: next(g for g in ("wesnoth", "nexuiz", "warzone2100", "")
                                              if g in found[n][1]))
    return {n: (path, half[n]) for n, (path, _) in found.items()}


def midi_songs(folder: str | Path) -> list[str]:
    """The multitrack corpus in `folder`: the names of its song folders (those holding a
    `mixed.wav`), sorted."""
    return sorted(p.name for p in Path(folder).iterdir() if (p / "mixed.wav").exists())


def write_report(out: str | Path, name: str, lines: list[str]) -> None:
    """`lines` as `out/name` (the folder made if needed), and printed."""
    text = "\n".join(lines)
    Path(out).mkdir(parents=True, exist_ok=True)
    (Path(out) / name).write_text(text + "\n")
    print(text)


def _cell(rows: list[dict], key: str) -> tuple[float, float, str]:
    vals = [r[key] for r in rows]
    worst = min(range(len(rows)), key=lambda i: vals[i])
    return statistics.fmean(vals), vals[worst], rows[worst]["clip"]


def real_table(rows: list[dict]) -> list[str]:
    out = ["| condition | half | clips | ViSQOL in | ViSQOL out | change: mean | worst (clip) | goal "
           "| LSD above cutoff: reduction mean | worst | loudness change, max abs (LU) | new overs |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    both = len({r["half"] for r in rows}) == 2
    for cond in CONDITIONS[1:]:
        for half in ("A", "B", "all") if both else ("A", "B"):
            rs = [r for r in rows if r["condition"] == cond and (half == "all" or r["half"] == half)]
            if not rs:
                continue
            mean, worst, clip = _cell(rs, "visqol_change")
            lmean, lworst, _ = _cell(rs, "lsd_reduction")
            out.append(
                f"| {cond} | {half} | {len(rs)} | {statistics.fmean(r['visqol_in'] for r in rs):.2f} "
                f"| {statistics.fmean(r['visqol_out'] for r in rs):.2f} | {mean:+.3f} | {worst:+.3f} ({clip}) "
                f"| {GOALS[cond]:+.2f} | {100 * lmean:.0f}% | {100 * lworst:.0f}% "
                f"| {max(abs(r['loudness_change_lu']) for r in rs):.2f} | {sum(r['new_overs'] for r in rs)} |")
    full = [r for r in rows if r["condition"] == "full"]
    if full:
        out += ["", f"Full-band input returned bit for bit (the same array): "
                    f"{sum(r['identical'] for r in full)} of {len(full)} clips."]
    return out


def midi_table(rows: list[dict]) -> list[str]:
    out = ["| condition | half | songs | ViSQOL in | direct: mean change | worst | stem-wise: mean | worst "
           "| routed: mean | worst | router chose stem-wise | stem-wise beats direct |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    both = len({r["half"] for r in rows}) == 2
    for cond in sorted({r["condition"] for r in rows}, key=CONDITIONS.index):
        for half in ("A", "B", "all") if both else ("A", "B"):
            rs = [r for r in rows if r["condition"] == cond and (half == "all" or r["half"] == half)]
            if not rs:
                continue
            cells = []
            for mode in ("direct", "stemwise", "routed"):
                mean, worst, clip = _cell(rs, f"change_{mode}")
                cells.append(f"{mean:+.3f} | {worst:+.3f} ({clip})")
            wins = sum(r["change_stemwise"] > r["change_direct"] for r in rs)
            out.append(f"| {cond} | {half} | {len(rs)} | {statistics.fmean(r['visqol_in'] for r in rs):.2f} | "
                       + " | ".join(cells)
                       + f" | {sum(r['router'] == 'stemwise' for r in rs)} | {wins} of {len(rs)} |")
    return out


def write_csv(path: Path, rows: list[dict]) -> None:
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)


# --- speed -----------------------------------------------------------------------------------------


def speed(path: str, settings: dict, repeats: int = 5) -> list[str]:
    x, sr = read(path)
    lines = [f"Input: {Path(path).parent.name}/{Path(path).name}, {x.shape[0]} channels, "
             f"{x.shape[1] / sr:.1f} s; load average before: {os.getloadavg()[0]:.2f}", "",
             "| condition | rate | median s (of %d) | min s | real-time share |" % repeats,
             "|---|---|---|---|---|"]
    for rate in (44100, 48000):
        xr = resample(x, sr, rate)
        for cond in ("full", "r32", "r22", "r16"):
            y = degrade(cond, xr, rate)
            times = []
            for _ in range(repeats):
                t = time.perf_counter()
                recover(y, rate, RecoverySettings(**settings))
                times.append(time.perf_counter() - t)
            med = statistics.median(times)
            lines.append(f"| {cond} | {rate} | {med:.3f} | {min(times):.3f} | {100 * med / (x.shape[1] / sr):.1f}% |")
    lines.append(f"\nLoad average after: {os.getloadavg()[0]:.2f} (the machine is shared).")
    return lines


# --- main ------------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--real", help="real-music corpus folder (manifest.json + WAVs)")
    ap.add_argument("--midi", help="multitrack corpus folder (one folder per song)")
    ap.add_argument("--out", default="eval/results")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--conditions", default=",".join(CONDITIONS))
    ap.add_argument("--settings", default="{}", help="RecoverySettings overrides as JSON")
    ap.add_argument("--half", choices=("A", "B", "all"), default="all",
                    help="run one cross-validation half only (for tuning on it)")
    ap.add_argument("--speed", help="time recovery on this file (30 s stereo) instead")
    ap.add_argument("--as-run", action="store_true",
                    help="real music as a run treats it: DC and drift removed at load, the step through the block runner")
    ap.add_argument("--midi-excerpt-s", type=float, default=None,
                    help="score the middle this many seconds of each multitrack song (default: all of it)")
    ap.add_argument("--midi-conditions", default="r32,r22,r16", help="conditions run on the multitrack corpus")
    args = ap.parse_args()
    settings = json.loads(args.settings)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.speed:
        write_report(out, "recovery_speed.md", ["# Spectral recovery: time per call", "", *speed(args.speed, settings)])
        return
    conds = [c for c in args.conditions.split(",") if c]
    md = ["# Spectral recovery on the development corpora", "",
          f"Settings: `RecoverySettings({', '.join(f'{k}={v!r}' for k, v in settings.items())})` "
          "(library defaults otherwise). Conditions and scores: see `eval/recovery_dev.py`.", ""]
    if args.real:
        clips = real_clips(args.real)
        jobs = [(c, clips[c][1], clips[c][0], cond, settings, args.as_run) for cond in conds for c in sorted(clips)
                if args.half in ("all", clips[c][1])]
        with Pool(args.workers) as pool:
            rows = pool.map(real_job, jobs, chunksize=1)
        write_csv(out / "recovery_dev_real.csv", rows)
        md += ["## Real music (direct)", "", *real_table(rows), ""]
    if args.midi:
        songs = midi_songs(args.midi)
        half = halves(songs, lambda n: "")
        midi_conds = [c for c in args.midi_conditions.split(",") if c in ("r32", "r22", "r16")]
        jobs = [(s, half[s], str(Path(args.midi) / s), cond, settings, args.midi_excerpt_s)
                for cond in midi_conds for s in songs if args.half in ("all", half[s])]
        with Pool(args.workers) as pool:
            rows = pool.map(midi_job, jobs, chunksize=1)
        write_csv(out / "recovery_dev_midi.csv", rows)
        span = f"the middle {args.midi_excerpt_s:g} s of each song" if args.midi_excerpt_s else "whole songs"
        md += ["## Multitrack (oracle stems): direct vs stem-wise vs routed", "", f"Scored on {span}.", "",
               *midi_table(rows), ""]
    write_report(out, "recovery_dev.md", md)


if __name__ == "__main__":
    main()
