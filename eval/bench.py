"""Speed and memory bench: per-stage wall time and peak RSS of `run` (routed, stemwise, direct)
and `compare`, on synthetic clips (30 s and 5 min, mono and stereo by default), each in its
own process; then the issue's targets.

Separation uses a full-size HTDemucs with random weights, saved to a temporary model repo:
its timings are real, its stems are meaningless. `--model-repo DIR --model NAME` times real
weights instead. Timings on a shared machine are noisy: the load average is printed with them.

    python eval/bench.py --out eval/results/bench.md
    python eval/bench.py --lengths 30 --channels 2 --out /tmp/bench.md
    python eval/bench.py --lengths 30 --channels 2 --commands run:routed,run:stemwise,compare --no-dsp-checks --repeats 3
    python eval/bench.py --long 600      # peak RSS of a 10-minute stereo file: run direct, stem-wise, compare, metrics
    python eval/bench.py --hour          # peak RSS of an hour of stereo (32 and 44.1 kHz): run direct, metrics
    python eval/bench.py --ray --out eval/results/ray.md   # the Ray backend: 1 vs 2 workers, overhead, projection
    python eval/bench.py --recovery FILE --out eval/results/bench_recovery.md  # the spectral_recovery step alone
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

RANDOM_MODEL = "htdemucs_random"
RANDOM_NOTE = "random weights: timings are real, stems are meaningless"
COMMANDS = ("run:routed", "run:stemwise", "run:direct", "compare")
STAGES = ("load", "separate", "route", "restore", "measure", "write", "figures")
NON_SEP_MAX_FRACTION = 0.15
"""Target: everything but separation costs at most this share of separation time (30 s stereo)."""
RSS_MAX_MB = 3072
"""Target for a 10-minute stereo file on CPU."""
RECOVERY_MAX_FRACTION = 0.05
"""Target: the spectral_recovery step costs at most this share of the clip's duration (30 s in 1.5 s)."""
HOUR_RSS_MAX_MB = 1536
"""Target for an hour of stereo (32 or 44.1 kHz) in direct mode and in `metrics`: they stream."""
HOUR_COMMANDS = ("run:direct", "metrics")
HOUR_RATES = (32000, 44100)
SR = 44100


# --- inputs ------------------------------------------------------------------------------------


def random_model_repo(folder: Path, name: str = RANDOM_MODEL) -> Path:
    """A full-size HTDemucs (the `htdemucs` architecture, 41 M parameters) with random weights,
    laid out as a `--model-repo` folder."""
    import torch
    import yaml
    from demucs.htdemucs import HTDemucs

    from adaptive_argm.config import STEM_NAMES
    from adaptive_argm.core import models

    torch.manual_seed(0)
    model = HTDemucs(sources=list(STEM_NAMES), bottom_channels=512, segment=7.8)
    folder.mkdir(parents=True, exist_ok=True)
    models.save_model_package(model, folder / "5eed0001.th")
    (folder / f"{name}.yaml").write_text(yaml.safe_dump({"models": ["5eed0001"]}))
    return folder


def synth_clip(path: Path, seconds: float, channels: int, seed: int = 0, sr: int = SR) -> Path:
    """Drums, bass, a chord and a little hiss: enough for every stage to do its real work.
    Written 10 s at a time (an hour of stereo is 1.3 GB as float32)."""
    from pedalboard.io import AudioFile

    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    with AudioFile(str(path), "w", samplerate=sr, num_channels=channels, bit_depth=32) as f:
        for start in range(0, n, 10 * sr):
            t = np.arange(start, min(n, start + 10 * sr), dtype=np.float64) / sr
            beat = np.mod(t, 0.5)
            x = 0.5 * np.exp(-beat / 0.03) * np.sin(2 * np.pi * 60 * beat)
            x += 0.15 * np.sin(2 * np.pi * 55 * t)
            for freq in (261.6, 329.6, 392.0):
                x += 0.05 * np.sin(2 * np.pi * freq * t)
            out = np.stack([x * (1 - 0.1 * c) + 0.003 * rng.standard_normal(t.size) for c in range(channels)])
            f.write(out.astype(np.float32))
    return path


# --- one measured process ------------------------------------------------------------------------


def own_peak_mb() -> float | None:
    """This process's own peak RSS (VmHWM, Linux), or None. Not `ru_maxrss`: Linux carries the
    parent's RSS at fork into the child's `ru_maxrss`, which would count this bench's own
    memory (the random model, the synthetic clips) as the measured run's."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def worker(spec: dict) -> dict:
    """Runs inside the measured process: one `run` or `compare`, separations counted, in a
    process set up as the command sets up its own (`heap.no_huge_pages`, `threads.one_blas_thread`)."""
    from adaptive_argm.core import heap, pipeline, separate, threads

    heap.no_huge_pages()
    threads.one_blas_thread()

    sep = None
    calls = {"n": 0}
    if spec["command"] not in ("run:direct", "metrics"):
        demucs = separate.DemucsSeparator(spec["model"], spec["model_repo"], device=spec["device"])

        def sep(mix, sr):
            calls["n"] += 1
            return demucs(mix, sr)

    # CPU seconds per stage, from the stage announcements: less sensitive to other load than
    # wall time (separation and stem DSP use 2 threads, so CPU s is up to 2x their wall time).
    cpu_s: dict[str, float] = {}
    current = {"stage": None, "t": 0.0}

    def cpu_now() -> float:
        # With the processes it started and has waited for: `compare`'s figure-drawing process
        # counts in the stage that ends it (figures), its start during the separation included.
        r, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return r.ru_utime + r.ru_stime + c.ru_utime + c.ru_stime

    # The running peak RSS as each stage ends: the stage after which it last rose holds the peak.
    peak_after: list[tuple[str, float]] = []

    def on_stage(stage: str | None) -> None:
        now = cpu_now()
        if current["stage"]:
            cpu_s[current["stage"]] = cpu_s.get(current["stage"], 0.0) + now - current["t"]
            peak_after.append((current["stage"], own_peak_mb() or 0.0))
        current.update(stage=stage, t=now)

    t0 = time.perf_counter()
    if spec["command"] == "metrics":  # what `adaptive-argm metrics FILE` does
        from adaptive_argm.core import audio, metrics

        on_stage("measure")
        reader = audio.Reader(spec["input"])
        metrics.measure_stream(reader.native_blocks(), reader.sample_rate, reader.channels)
        on_stage(None)
        return {"timings_s": {"measure": time.perf_counter() - t0}, "stage_cpu_s": cpu_s, "peak_after_mb": peak_after,
                "own_peak_mb": own_peak_mb(), "wall_s": time.perf_counter() - t0, "separations": 0,
                "mode_used": "–"}
    if spec["command"] == "compare":
        result = pipeline.compare(spec["input"], spec["out"], sep,
                                  pipeline.Settings(mode="routed", preset=spec["preset"]), on_stage=on_stage)
    else:
        mode = spec["command"].split(":")[1]
        result = pipeline.run(spec["input"], spec["out"], sep, pipeline.Settings(mode=mode, preset=spec["preset"]),
                              on_stage=on_stage)
    on_stage(None)
    return {"timings_s": result.timings_s, "stage_cpu_s": cpu_s, "peak_after_mb": peak_after, "own_peak_mb": own_peak_mb(), "wall_s": time.perf_counter() - t0,
            "separations": calls["n"], "mode_used": result.plan.mode_used}


def measured(spec: dict, env: dict | None = None) -> dict:
    """Run `worker(spec)` in a fresh process; add its own peak RSS (from wait4, not a sum)."""
    proc = subprocess.Popen([sys.executable, __file__, "--worker", json.dumps(spec)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    stdout, stderr = proc.stdout.read(), proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        tail = stderr.strip().splitlines()[-1:] or ["?"]
        return {"error": f"exit {proc.returncode}: {tail[0]}"}
    out = json.loads(stdout.strip().splitlines()[-1])
    # ru_maxrss (kilobytes on Linux) only where the process could not read its own VmHWM.
    out["peak_rss_mb"] = out.pop("own_peak_mb") or usage.ru_maxrss / 1024
    out["cpu_s"] = usage.ru_utime + usage.ru_stime
    return out


# --- DSP parallelism and routing cost -----------------------------------------------------------


def dsp_checks(preset_name: str, seconds: float = 30.0) -> dict:
    """Stem DSP in this process: 3 stems through `process_stems` against 1 stem (does the
    thread pool overlap?), and routed vs stem-wise restoration with one near-silent stem
    (does a skipped stem cost any DSP?)."""
    from adaptive_argm.core import dsp, pipeline, presets
    from adaptive_argm.core.route import RouterConfig, route
    from adaptive_argm.core.separate import Separation, SeparatorInfo

    preset = presets.load(preset_name)
    n = int(seconds * SR)
    rng = np.random.default_rng(0)
    t = np.arange(n) / SR
    stems = {
        "drums": np.stack([0.4 * np.exp(-np.mod(t, 0.5) / 0.03) * np.sin(2 * np.pi * 60 * t)] * 2),
        "bass": np.stack([0.15 * np.sin(2 * np.pi * 55 * t)] * 2),
        "other": np.stack([0.05 * np.sin(2 * np.pi * 330 * t) + 0.003 * rng.standard_normal(n)] * 2),
        "vocals": 10 ** (-75 / 20) * rng.standard_normal((2, n)),  # near-silent: the router skips it
    }
    stems = {k: v.astype(np.float32) for k, v in stems.items()}
    mix = sum(stems.values())

    def timed(fn):
        r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        fn()
        r1, wall = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter() - t0
        return wall, (r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime) / wall

    three = ["drums", "bass", "other"]
    pipeline.process_stems(stems, three, preset)  # warm-up (imports, plan caches)
    # The same three stems one after another (each alone in the pool), then together.
    alone = [timed(lambda n=n: pipeline.process_stems(stems, [n], preset)) for n in three]
    one_s, one_cores = sum(a[0] for a in alone), float(np.mean([a[1] for a in alone]))
    three_s, three_cores = timed(lambda: pipeline.process_stems(stems, three, preset))
    # Control: work that certainly releases the GIL (numpy's sort; numpy's own FFT does not),
    # 1 vs 2 threads. When it does not overlap either, the machine (other load, a CPU quota)
    # is the limit, not the code.
    block = rng.standard_normal((64, 16384))
    work = lambda: [np.sort(block, axis=1) for _ in range(25)]  # noqa: E731
    work()
    with ThreadPoolExecutor(2) as pool:
        c1, _ = timed(work)
        c2, c2_cores = timed(lambda: list(pool.map(lambda _: work(), range(2))))

    calls: list[int] = []
    original = dsp.apply_chain

    def counting(x, sr, steps, **kwargs):
        calls.append(x.shape[1])
        return original(x, sr, steps, **kwargs)

    sep = Separation(stems, SeparatorInfo("stems"))
    out = {}
    dsp.apply_chain = counting
    try:
        for mode in ("routed", "stemwise"):
            plan = route(stems, mix, SR, mode, RouterConfig(), "passthrough")
            calls.clear()
            wall, _ = timed(lambda: pipeline.restore(mix, plan, preset, sep))
            out[mode] = {"chains": len(calls), "restore_s": wall, "skipped": plan.skipped(),
                         "mode_used": plan.mode_used}
    finally:
        dsp.apply_chain = original
    return {"seconds": seconds, "alone_s": one_s, "longest_alone_s": max(a[0] for a in alone),
            "one_stem_cores": one_cores, "three_stems_s": three_s,
            "three_stems_cores": three_cores, "routing": out, "cpu_count": os.cpu_count(),
            "control_ratio": c2 / (2 * c1), "control_cores": c2_cores}


# --- report ---------------------------------------------------------------------------------------


def fmt(v, digits=1) -> str:
    return "–" if v is None else f"{v:.{digits}f}"


def cpu_fraction(r: dict) -> float:
    cpu = r["stage_cpu_s"]
    return (sum(cpu.values()) - cpu["separate"]) / cpu["separate"]


def table(rows: list[dict]) -> str:
    head = ["clip", "ch", "command", "mode used", "separations", *STAGES, "total s", "non-sep / sep",
            "CPU s", "CPU non-sep / sep", "peak RSS MB"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['clip_s']:.0f} s | {r['channels']} | {r['command']} | {r['error']} |")
            continue
        ts = r["timings_s"]
        total = sum(ts.values())
        sep = ts.get("separate", 0.0)
        ratio = f"{(total - sep) / sep:.0%}" if sep > 0.5 else "–"
        cpu_ratio = f"{cpu_fraction(r):.0%}" if sep > 0.5 else "–"
        lines.append("| " + " | ".join([
            f"{r['clip_s']:.0f} s", str(r["channels"]), r["command"], r["mode_used"], str(r["separations"]),
            *[fmt(ts.get(s), 2) if s in ts else "–" for s in STAGES], fmt(total, 2), ratio, fmt(r["cpu_s"]),
            cpu_ratio, f"{r['peak_rss_mb']:.0f}"]) + " |")
    return "\n".join(lines)


def targets(rows: list[dict], dsp: dict | None) -> list[str]:
    out = []
    ok = [r for r in rows if "error" not in r]
    # Separation's own time varies by 1.5x between runs here: with repeats, the verdict is
    # taken on the median run's share, every run's share beside it.
    by_command: dict[str, list[dict]] = {}
    for r in ok:
        if r["clip_s"] == 30 and r["channels"] == 2 and r["timings_s"].get("separate", 0) > 0.5:
            by_command.setdefault(r["command"], []).append(r)
    for command, runs in by_command.items():
        fracs = [(sum(r["timings_s"].values()) - r["timings_s"]["separate"]) / r["timings_s"]["separate"]
                 for r in runs]
        mid = sorted(range(len(runs)), key=lambda i: fracs[i])[(len(runs) - 1) // 2]
        r, frac = runs[mid], fracs[mid]
        ts = r["timings_s"]
        verdict = "met" if frac <= NON_SEP_MAX_FRACTION else "NOT met"
        figs = ts.get("figures")
        without = (f"; {frac - figs / ts['separate']:.0%} without the figures stage (the figures are drawn by a "
                   "process of their own during measure and write)") if figs else ""
        each = f" (median of {len(runs)} runs: {', '.join(f'{f:.0%}' for f in fracs)})" if len(runs) > 1 else ""
        out.append(f"- non-separation time, 30 s stereo, {command}: {frac:.0%} of separation{each} "
                   f"(target <= {NON_SEP_MAX_FRACTION:.0%}): {verdict} (in CPU seconds: {cpu_fraction(r):.0%}"
                   f"{without})")
    for r in ok:
        if r["command"] == "compare":
            same = [s for s in ok if s["command"] == "run:stemwise" and s["clip_s"] == r["clip_s"]
                    and s["channels"] == r["channels"]]
            extra = ""
            if same:
                extra = (f"; separate stage {r['timings_s']['separate']:.1f} s vs "
                         f"{same[0]['timings_s']['separate']:.1f} s in run:stemwise")
            verdict = "met" if r["separations"] == 1 else "NOT met"
            out.append(f"- compare, {r['clip_s']:.0f} s x {r['channels']} ch: {r['separations']} separation(s)"
                       f"{extra}: {verdict}")
    if dsp:
        serial = dsp["alone_s"]
        ideal = max(dsp["longest_alone_s"], serial / dsp["cpu_count"]) / serial
        out.append(f"- stem DSP overlap ({dsp['seconds']:.0f} s stereo stems, {dsp['cpu_count']} cores): drums, bass "
                   f"and other one at a time {serial:.2f} s ({dsp['one_stem_cores']:.2f} cores busy), together "
                   f"{dsp['three_stems_s']:.2f} s ({dsp['three_stems_cores']:.2f} cores busy) = "
                   f"{dsp['three_stems_s'] / serial:.0%} of one at a time "
                   f"({'overlaps' if dsp['three_stems_s'] < 0.85 * serial else 'does NOT overlap'}; "
                   f"ideal {ideal:.0%}: the longest stem alone, or the work spread over every core)")
        out.append(f"- control, numpy sorts in 2 threads: {dsp['control_ratio']:.0%} of 2 x one thread "
                   f"({dsp['control_cores']:.2f} cores busy; ideal 50%): "
                   + ("the machine gives 2 cores" if dsp["control_ratio"] < 0.75 else
                      "the machine does NOT give this process 2 cores now, so the overlap check is inconclusive"))
        ro, sw = dsp["routing"]["routed"], dsp["routing"]["stemwise"]
        verdict = "met" if ro["chains"] == sw["chains"] - len(ro["skipped"]) and ro["skipped"] else "NOT met"
        out.append(f"- routed skips {ro['skipped'] or 'nothing'}: {ro['chains']} stem chains run "
                   f"({ro['restore_s']:.2f} s) vs {sw['chains']} in stemwise ({sw['restore_s']:.2f} s): {verdict}")
    return out


def recovery_bench(path: Path, seconds: float = 30.0, repeats: int = 5) -> list[str]:
    """Wall and CPU time of the adaptive preset's spectral_recovery step alone on `seconds` of
    `path` (stereo, at the working rate), full band (the detector only), cut as a 32, 22.05
    and 16 kHz file is (soxr down and back up), and through an MP3 encoder (LAME VBR 7) before the
    32 kHz cut (the codec gaps below the wall refilled too), median of `repeats`."""
    from adaptive_argm.core import audio, dsp, presets
    from adaptive_argm.core.resample import resample
    from adaptive_argm.evaluation.degrade import codec

    x, _ = audio.read(path, SR)
    x = audio.to_channels(x[:, :int(seconds * SR)], 2)
    dur = x.shape[1] / SR
    steps = tuple(s for s in presets.load("adaptive").steps if s.kind == "spectral_recovery")
    lines = [f"- input: {path.name}, {dur:.1f} s, 2 channels at {SR} Hz; step: adaptive's spectral_recovery",
             f"- {machine_line()}", "",
             f"| input | acted | median wall s (of {repeats}) | min wall s | median CPU s | wall / duration |",
             "|---|---|---|---|---|---|"]
    worst = 0.0
    mp3 = codec(x, SR)[0]
    for name, y, rate in (("full band", x, None), ("cut at 16 kHz (32 kHz file)", x, 32000),
                          ("cut at 11 kHz (22.05 kHz file)", x, 22050), ("cut at 8 kHz (16 kHz file)", x, 16000),
                          ("MP3 (LAME VBR 7), then cut at 16 kHz", mp3, 32000)):
        y = y if rate is None else resample(resample(y, SR, rate), rate, SR)[:, :x.shape[1]]
        walls, cpus, found = [], [], []
        for _ in range(repeats):
            found.clear()
            t, c = time.perf_counter(), time.process_time()
            dsp.apply_chain(y, SR, steps, reports=found)
            walls.append(time.perf_counter() - t)
            cpus.append(time.process_time() - c)
        med = float(np.median(walls))
        worst = max(worst, med / dur)
        gaps = f", codec gaps refilled in {found[0].gaps_filled:.0%}" if found[0].gaps_filled else ""
        gaps += f", noise in {found[0].noise_filled:.0%} of the added cells" if found[0].noise_filled else ""
        lines.append(f"| {name} | {found[0].acted}{gaps} | {med:.3f} | {min(walls):.3f} | {float(np.median(cpus)):.3f} "
                     f"| {100 * med / dur:.1f}% |")
    verdict = "met" if worst <= RECOVERY_MAX_FRACTION else "NOT met"
    lines += ["", f"Target: at most {RECOVERY_MAX_FRACTION:.0%} of the duration ({RECOVERY_MAX_FRACTION * 30:g} s "
                  f"per 30 s): worst case {100 * worst:.1f}%: {verdict}. {machine_line()} at end."]
    return lines


def machine_line() -> str:
    import torch

    load = os.getloadavg()
    return (f"{os.cpu_count()} CPU cores, torch {torch.__version__} ({torch.get_num_threads()} threads), "
            f"load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1 / 5 / 15 min)")


def long_rss(seconds: float, repo: Path, model: str, device: str, preset: str, work: Path,
             commands: list[str], sr: int = SR, target_mb: int = RSS_MAX_MB) -> list[str]:
    """Peak RSS of a long stereo file at `sr`, one process per command."""
    clip = synth_clip(work / f"long{seconds:.0f}-{sr}.wav", seconds, 2, sr=sr)
    lines = []
    for command in commands:
        # One folder per file and command: a result set refuses a folder holding another input's result.
        out = work / f"out-long{seconds:.0f}-{sr}-{command.replace(':', '-')}"
        spec = {"command": command, "input": str(clip), "out": str(out),
                "model": model, "model_repo": str(repo), "device": device, "preset": preset}
        r = measured(spec)
        if "error" in r:
            lines.append(f"- {seconds / 60:.0f} min stereo at {sr / 1000:g} kHz, {command}: {r['error']}")
            continue
        verdict = "met" if r["peak_rss_mb"] <= target_mb else "NOT met"
        stages = ", ".join(f"{k} {v:.0f} s" for k, v in r["timings_s"].items())
        rises = ", ".join(f"{stage} {mb:.0f}" for stage, mb in r["peak_after_mb"])
        lines.append(f"- {seconds / 60:.0f} min stereo at {sr / 1000:g} kHz, {command}: peak RSS "
                     f"{r['peak_rss_mb']:.0f} MB (target <= {target_mb} MB: {verdict}); wall {r['wall_s']:.0f} s, "
                     f"CPU {r['cpu_s']:.0f} s; {stages}; peak MB so far after each stage: {rises}")
    clip.unlink(missing_ok=True)
    return lines


def emit(lines: list[str], out: Path | None) -> None:
    """Print the report and, with --out, write it there."""
    text = "\n".join(lines) + "\n"
    print(text)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        print(f"wrote {out}")


def ray_report(args, repo: Path, model: str, note: str, preset: str, work: Path) -> int:
    """The Ray backend's section: scaling and overhead, stage costs, the projection."""
    import bench_ray

    start = machine_line()
    clips, clip_s = args.ray_clips or bench_ray.CLIPS, args.ray_clip_s or bench_ray.CLIP_S
    runs, figures = bench_ray.scaling(__file__, synth_clip, repo, model, preset, work, clips, clip_s, args.ray_repeats)
    costs = bench_ray.stage_costs(measured, synth_clip, repo, model, preset, work)
    land_s_per_mb = figures.get("land_s_per_mb")
    lines = ["# The Ray backend: scaling, overhead, projection", "", f"- separator: {note}",
             f"- machine at start: {start}", f"- machine at end: {machine_line()}", f"- preset: {preset}", "",
             "## 1 vs 2 workers, Ray vs the local process pool", "", *runs, "",
             "## Projection: eval over 10,000 clips of 30 s on N GPUs", ""]
    lines += (bench_ray.projection(costs, land_s_per_mb, bench_ray.eval_mb_per_clip(), bench_ray.workers_per_gpu())
              if "error" not in costs else [f"- stage costs: {costs['error']}"])
    emit(lines, args.out)
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lengths", default="30,300", help="clip lengths in seconds (default 30,300)")
    ap.add_argument("--channels", default="1,2", help="channel counts (default 1,2)")
    ap.add_argument("--commands", default=",".join(COMMANDS), help=f"subset of {','.join(COMMANDS)}")
    ap.add_argument("--model-repo", type=Path, help="real weights: a folder with NAME.yaml and its .th files")
    ap.add_argument("--model", default=None, help="model name in --model-repo (default htdemucs)")
    ap.add_argument("--device", default="cpu", help="cpu | cuda")
    ap.add_argument("--preset", default=None, help="preset to time (default: the package default)")
    ap.add_argument("--no-dsp-checks", action="store_true", help="skip the stem-DSP overlap and routing checks")
    ap.add_argument("--repeats", type=int, default=1,
                    help="run every command this many times (interleaved); the targets take the median run")
    ap.add_argument("--no-warm-up", action="store_true",
                    help="measure the first command's first run too (it pays 1.3-1.7 s more in load and measure)")
    ap.add_argument("--long", type=float, default=0, help="also measure peak RSS on a stereo file this long (s)")
    ap.add_argument("--long-commands", default="run:direct,run:stemwise,compare,metrics",
                    help="commands measured on the --long file")
    ap.add_argument("--hour", action="store_true",
                    help=f"also measure an hour of stereo at 32 and 44.1 kHz ({', '.join(HOUR_COMMANDS)})")
    ap.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temp folder)")
    ap.add_argument("--out", type=Path, help="write the Markdown report here")
    ap.add_argument("--ray", action="store_true", help="only the Ray backend's section (eval/bench_ray.py)")
    ap.add_argument("--ray-clips", type=int, default=0, help="clips per Ray run (default 12)")
    ap.add_argument("--ray-clip-s", type=float, default=0, help="seconds per clip of the Ray runs (default 8)")
    ap.add_argument("--ray-repeats", type=int, default=1, help="runs of each Ray configuration (the best counts)")
    ap.add_argument("--recovery", type=Path, help="time the spectral_recovery step alone on 30 s of this file")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--ray-worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return 0
    if args.ray_worker:
        import bench_ray

        print(json.dumps(bench_ray.ray_worker(json.loads(args.ray_worker))))
        return 0
    if args.recovery:
        text = "\n".join(["# adaptive-argm bench: spectral recovery", "", *recovery_bench(args.recovery)]) + "\n"
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(text)
        print(text)
        return 0

    from adaptive_argm.config import DEFAULT_MODEL, DEFAULT_PRESET

    preset = args.preset or DEFAULT_PRESET
    tmp = tempfile.TemporaryDirectory(prefix="argm-bench-")
    work = args.work or Path(tmp.name)
    work.mkdir(parents=True, exist_ok=True)
    if args.model_repo:
        repo, model, note = args.model_repo, args.model or DEFAULT_MODEL, f"real weights: {args.model or DEFAULT_MODEL}"
    else:
        repo, model, note = random_model_repo(work / "repo"), RANDOM_MODEL, f"full-size HTDemucs, {RANDOM_NOTE}"
    print(f"separator: {note}", flush=True)
    if args.ray:
        return ray_report(args, repo, model, note, preset, work)
    lengths = [float(v) for v in args.lengths.split(",") if v]
    channels = [int(v) for v in args.channels.split(",") if v]
    commands = [c for c in args.commands.split(",") if c]
    header = ["# adaptive-argm bench", "", f"- separator: {note} (device {args.device})",
              f"- machine at start: {machine_line()}", f"- preset: {preset}; times in seconds (wall) from each "
              "result's timings_s; CPU s from each process, with the processes it waited for (compare's figure-drawing "
              "process); peak RSS of each run's own process (its VmHWM)"]
    rows = []
    warm_up = not args.no_warm_up and bool(commands)
    if warm_up:
        header.append("- one warm-up run of the first command discarded (whichever command ran first paid "
                      "1.3-1.7 s more in load and measure)")
    for seconds in lengths:
        for ch in channels:
            clip = synth_clip(work / f"clip{seconds:.0f}s{ch}ch.wav", seconds, ch)
            for k, command in [(k, c) for k in range(args.repeats) for c in commands]:  # repeats interleaved
                spec = {"command": command, "input": str(clip),
                        "out": str(work / f"out{seconds:.0f}{ch}{command}{f'-{k}' if k else ''}"),
                        "model": model, "model_repo": str(repo), "device": args.device, "preset": preset}
                if warm_up:
                    measured({**spec, "out": spec["out"] + "-warm-up"})
                    warm_up = False
                r = {"clip_s": seconds, "channels": ch, "command": command, **measured(spec)}
                rows.append(r)
                print(f"{seconds:.0f} s x {ch} ch {command}: "
                      + (r["error"] if "error" in r else f"{sum(r['timings_s'].values()):.1f} s, "
                         f"{r['peak_rss_mb']:.0f} MB"), flush=True)
    dsp = None if args.no_dsp_checks else dsp_checks(preset)
    lines = [*header, f"- machine at end: {machine_line()}", "", table(rows), "", "## Targets", "",
             *targets(rows, dsp)]
    if args.long:
        lines += ["", "## Long file, peak RSS", "", *long_rss(args.long, repo, model, args.device, preset, work,
                                                                     [c for c in args.long_commands.split(",") if c])]
    if args.hour:
        lines += ["", "## An hour of stereo, peak RSS", ""]
        for sr in HOUR_RATES:
            lines += long_rss(3600.0, repo, model, args.device, preset, work, list(HOUR_COMMANDS), sr, HOUR_RSS_MAX_MB)
    emit(lines, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
