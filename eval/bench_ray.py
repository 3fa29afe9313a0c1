"""The Ray backend's part of the bench (`python eval/bench.py --ray`): a batch of clips through
a full-size HTDemucs with random weights, stem-wise, on the local process pool and on a local Ray
instance, with 1 and 2 workers (one thread each, so both backends do the same work); then the
cost of each stage of one 30 s stereo `compare` on one core, and a projection of eval on a GPU
cluster from those costs and Demucs' speed on a GPU.

Each run is its own process (a fresh Ray instance for each Ray run). The load average of the
machine is printed with every run: timings on a shared machine are only as good as it is idle.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

CLIPS = 12
CLIP_S = 8.0
SCALING_MIN = 1.7
"""Target: throughput with 2 Ray workers over 1."""
OVERHEAD_MAX = 0.10
"""Target: Ray's extra wall time per clip over the local pool's, as a share of the local pool's."""
OTHER_MAX_CORES = 0.25
"""Other work (cores busy between runs) above which the scaling figures test nothing."""
OTHER_SAMPLE_S = 3.0
"""How long other work is sampled before each run (seconds)."""
STORE_BYTES = 200 * 1024 ** 2
CONFIGS = (("local", 1), ("ray", 1), ("local", 2), ("ray", 2))

# --- the projection --------------------------------------------------------------------------------
DEMUCS_CPU_X = 1.5
"""Seconds htdemucs takes per second of audio on a CPU: Demucs' README ("processing time should
be roughly equal to 1.5 times the duration of the track"). It publishes no GPU speed, only the
GPU memory needed (3 GB at --segment 8, about 7 GB with the defaults)."""
GPU_SPEEDUP = (20.0, 50.0)
"""A GPU separates "about 20~50 times faster" than the CPU: a contributor's figure in Demucs'
issue tracker (github.com/facebookresearch/demucs/issues/426, December 2022, about an A100).
The projection uses the low end (separation of 30 s in 2.25 s); the high end is given beside it."""
DEMUCS_GPU_X = GPU_SPEEDUP[0] / DEMUCS_CPU_X
"""Seconds of audio separated per second on one GPU (low end: 13.3)."""
PROJECT_CLIPS = 10_000
PROJECT_CLIP_S = 30.0
PROJECT_GPUS = (1, 4, 16, 64)


def eval_mb_per_clip(seconds: float = PROJECT_CLIP_S) -> float:
    """What eval writes per clip: the input copy and three results, 44.1 kHz stereo float WAV."""
    return 4 * seconds * 44100 * 2 * 4 / 1e6


def workers_per_gpu() -> int:
    from adaptive_argm.core.backends import WORKERS_PER_GPU

    return WORKERS_PER_GPU


def ray_worker(spec: dict) -> dict:
    """Inside a fresh process: one batch run of the clips on one backend with `workers` workers."""
    from adaptive_argm.core import backends, batch, pipeline, separate

    landed = {"s": 0.0, "bytes": 0, "sets": 0}
    land = backends.land

    def timed_land(shipped):  # what the driver spends committing the workers' files
        t0 = time.perf_counter()
        out = land(shipped)
        landed["s"] += time.perf_counter() - t0
        landed["bytes"] += sum(len(b) for b in shipped.files.values())
        landed["sets"] += 1
        return out

    backends.land = timed_land
    sep = separate.DemucsSeparator(spec["model"], spec["model_repo"], device="cpu")
    settings = pipeline.Settings(mode="stemwise", preset=spec["preset"])
    backend = (backends.RayBackend(num_cpus=spec["workers"], object_store_bytes=STORE_BYTES)
               if spec["backend"] == "ray" else backends.LOCAL)
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    backend.connect()
    init_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    result = batch.run_batch([spec["clips"]], spec["out"], sep, settings, jobs=spec["workers"], backend=backend)
    wall_s = time.perf_counter() - t0
    backend.close()
    return {"init_s": init_s, "wall_s": wall_s, "job_s": [f.time_s for f in result.files if f.time_s],
            "failed": result.counts()["failed"], "load_before": load_before, "load_after": os.getloadavg()[0],
            "landed": landed}


def busy_cores(seconds: float = OTHER_SAMPLE_S) -> float | None:
    """CPU cores kept busy by anything over `seconds` (from /proc/stat), measured between runs,
    when none of this bench's processes run: other work on the machine. The load average cannot
    tell it, as it still carries the previous run's own workers for a minute or more."""
    def sample():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return sum(v), v[3] + v[4]  # total, idle + iowait
    try:
        t0, i0 = sample()
        time.sleep(seconds)
        t1, i1 = sample()
    except (OSError, ValueError, IndexError):
        return None
    return (1.0 - (i1 - i0) / max(t1 - t0, 1)) * (os.cpu_count() or 1)


def run_case(bench_script: str, spec: dict) -> dict:
    # One thread per worker on either backend, and the same priority: unless told, Ray starts its
    # workers at a lower priority than the driver (nice 19 under a driver at 10), which on a
    # shared machine changes their share of the CPUs.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RAY_worker_niceness": "0"}
    done = subprocess.run([sys.executable, bench_script, "--ray-worker", json.dumps(spec)], capture_output=True,
                          text=True, env=env)
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-1:] or ["?"]
        return {"error": f"exit {done.returncode}: {tail[0]}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _cores(v: float | None) -> str:
    return "?" if v is None else f"{v:.2f}"


def scaling(bench_script: str, synth_clip, repo: Path, model: str, preset: str, work: Path, clips: int,
            clip_s: float, repeats: int) -> tuple[list[str], dict]:
    folder = work / "ray-clips"
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(clips):
        synth_clip(folder / f"clip{i:02d}.wav", clip_s, 2, seed=i)
    runs = []
    for rep in range(repeats):
        for backend, n in CONFIGS:  # interleaved: a change in the machine's load hits every config alike
            spec = {"backend": backend, "workers": n, "clips": str(folder), "out": str(work / f"ray-out-{backend}{n}-{rep}"),
                    "model": model, "model_repo": str(repo), "preset": preset}
            other = busy_cores()
            r = {"backend": backend, "workers": n, "other_cores": other, **run_case(bench_script, spec)}
            runs.append(r)
            print(f"{backend} x {n}: " + (r["error"] if "error" in r else
                                          f"{r['wall_s']:.1f} s (other work before it: {_cores(other)} cores)"), flush=True)
    ok = [r for r in runs if "error" not in r and not r["failed"]]
    best = {(b, n): min((r for r in ok if (r["backend"], r["workers"]) == (b, n)), key=lambda r: r["wall_s"],
                        default=None) for b, n in CONFIGS}
    lines = [f"{clips} clips of {clip_s:g} s stereo, run stem-wise (full-size HTDemucs, random weights) as one batch; "
             "one thread per worker (OMP_NUM_THREADS=1) and the driver's priority on both backends; Ray's start "
             "is timed apart from the run.",
             "", "| backend | workers | run s | clips/min | in-job s per clip | Ray start s | driver commits s per clip "
             "| MB per clip | other work before (cores) | load before / after |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        if "error" in r:
            lines.append(f"| {r['backend']} | {r['workers']} | {r['error']} |")
            continue
        landed = r["landed"]
        commits = (f"{landed['s'] / landed['sets']:.3f}" if landed["sets"] else "in the workers")
        mb = f"{landed['bytes'] / landed['sets'] / 1e6:.1f}" if landed["sets"] else "–"
        lines.append(f"| {r['backend']} | {r['workers']} | {r['wall_s']:.1f} | {60 * clips / r['wall_s']:.2f} | "
                     f"{sum(r['job_s']) / len(r['job_s']):.2f} | {r['init_s']:.1f} | {commits} | {mb} | "
                     f"{_cores(r['other_cores'])} | {r['load_before']:.1f} / {r['load_after']:.1f} |")
    lines += ["", "## Targets (best run of each configuration)", ""]
    other = [r["other_cores"] for r in ok if r["other_cores"] is not None]
    if other and max(other) > OTHER_MAX_CORES:
        lines += [f"- other work kept up to {max(other):.2f} of the {os.cpu_count()} cores busy between these runs: "
                  "the figures below do not test the targets (two workers cannot run twice as fast on cores that "
                  "are already busy); rerun on an idle machine", ""]
    elif other:
        lines += [f"- the machine was idle between runs (other work: at most {max(other):.2f} of "
                  f"{os.cpu_count()} cores, sampled for {OTHER_SAMPLE_S:g} s before each run; the load average "
                  "also counts the previous run's own workers)", ""]
    figures = {}
    if all(best.values()):
        ray1, ray2 = best[("ray", 1)], best[("ray", 2)]
        ratio = ray1["wall_s"] / ray2["wall_s"]
        figures["scaling"] = ratio
        lines.append(f"- throughput, Ray 2 workers over 1: {ratio:.2f}x (target >= {SCALING_MIN}x): "
                     f"{'met' if ratio >= SCALING_MIN else 'NOT met'}")
        for n in (1, 2):
            here, ray = best[("local", n)], best[("ray", n)]
            extra = (ray["wall_s"] - here["wall_s"]) / clips
            share = extra / (here["wall_s"] / clips)
            figures[f"overhead{n}"] = share
            lines.append(f"- Ray's overhead per clip, {n} worker(s): {extra:+.2f} s on the local pool's "
                         f"{here['wall_s'] / clips:.2f} s = {share:+.1%} (target <= {OVERHEAD_MAX:.0%}): "
                         f"{'met' if share <= OVERHEAD_MAX else 'NOT met'}")
    else:
        lines.append("- a configuration failed every time: no targets")
    landed = [r["landed"] for r in ok if r["landed"]["bytes"]]
    if landed:
        figures["land_s_per_mb"] = sum(x["s"] for x in landed) / (sum(x["bytes"] for x in landed) / 1e6)
    return lines, figures


def stage_costs(measured, synth_clip, repo: Path, model: str, preset: str, work: Path) -> dict:
    """One 30 s stereo `compare` (eval's work per clip) on one thread: seconds per stage."""
    clip = synth_clip(work / "stage30s.wav", PROJECT_CLIP_S, 2, seed=99)
    spec = {"command": "compare", "input": str(clip), "out": str(work / "stage-out"), "model": model,
            "model_repo": str(repo), "device": "cpu", "preset": preset}
    return measured(spec, env={**os.environ, "OMP_NUM_THREADS": "1"})


def projection(costs: dict, landed_s_per_mb: float | None, mb_per_clip_30s: float, per_gpu: int) -> list[str]:
    """Clips per hour for eval over PROJECT_CLIPS clips of PROJECT_CLIP_S s on N GPUs."""
    ts = costs["timings_s"]
    cpu_s = sum(v for k, v in ts.items() if k != "separate")
    cpu_no_fig_s = cpu_s - ts.get("figures", 0.0)
    sep_gpu_s = PROJECT_CLIP_S / DEMUCS_GPU_X
    lines = [f"Per 30 s stereo clip (eval's `compare`: one separation, three restorations, four panels, "
             f"figures), measured here on one core: separation on CPU {ts['separate']:.1f} s (not used below), "
             + ", ".join(f"{k} {v:.2f} s" for k, v in ts.items() if k != "separate")
             + f"; CPU work besides separation {cpu_s:.2f} s ({cpu_no_fig_s:.2f} s with --no-figures). "
             f"Separation on a GPU at {DEMUCS_GPU_X:g} s of audio per second: {sep_gpu_s:.2f} s.", ""]
    saturate = math.ceil((sep_gpu_s + cpu_s) / sep_gpu_s)
    lines += [f"Each worker holds one CPU and 1/{per_gpu} of a GPU and does a clip from start to end (separate, "
              f"then restore and measure on its CPU), so a GPU with k workers finishes min(k / {sep_gpu_s + cpu_s:.2f} s, "
              f"1 / {sep_gpu_s:.2f} s) clips per second; it is kept busy from k = {saturate} workers (CPUs) per GPU "
              f"({math.ceil((sep_gpu_s + cpu_no_fig_s) / sep_gpu_s)} with --no-figures).", ""]
    driver = None
    if landed_s_per_mb:
        driver = 1.0 / (landed_s_per_mb * mb_per_clip_30s)
        lines += [f"The driver commits every clip's files ({mb_per_clip_30s:.0f} MB for a 30 s stereo clip: input "
                  f"copy and three results, float WAV) at the rate measured here, {1 / landed_s_per_mb:.0f} MB/s: "
                  f"at most {driver:.1f} clips per second.", ""]
    lines += ["| GPUs | workers (CPUs) | clips per hour | 10,000 clips take | bottleneck |", "|---|---|---|---|---|"]
    for gpus in PROJECT_GPUS:
        for k in sorted({per_gpu, saturate}):
            per_gpu_rate = min(k / (sep_gpu_s + cpu_s), 1 / sep_gpu_s)
            rate = gpus * per_gpu_rate
            stage = "DSP and metrics (CPU)" if k / (sep_gpu_s + cpu_s) < 1 / sep_gpu_s else "separation (GPU)"
            if driver is not None and driver < rate:
                rate, stage = driver, "the driver's writes"
            lines.append(f"| {gpus} | {gpus * k} | {3600 * rate:,.0f} | {PROJECT_CLIPS / rate / 3600:.1f} h | {stage} |")
    fast_sep_s = PROJECT_CLIP_S * DEMUCS_CPU_X / GPU_SPEEDUP[1]
    lines += ["", f"At the high end of the cited speed-up ({GPU_SPEEDUP[1]:g}x: {fast_sep_s:.2f} s per clip) {per_gpu} "
              f"workers per GPU finish {3600 * min(per_gpu / (fast_sep_s + cpu_s), 1 / fast_sep_s):,.0f} clips per hour "
              f"per GPU, and a GPU is kept busy from k = "
              f"{math.ceil((fast_sep_s + cpu_s) / fast_sep_s)} workers, at {3600 / fast_sep_s:,.0f} clips per hour. "
              f"How many workers share a GPU is bounded by its memory: each holds its own model and needs about 7 GB "
              f"with Demucs' defaults, 3 GB at --segment 8 (Demucs' README); the backend gives each 1/{per_gpu}."]
    top = max(PROJECT_GPUS) * min(saturate / (sep_gpu_s + cpu_s), 1 / sep_gpu_s)
    lines += ["", "Where the driver's writes go: here every clip's files travel through Ray's object store to the "
              f"driver, which commits them into the output folder on its own disk. At {top:.1f} clips per second "
              f"({max(PROJECT_GPUS)} GPUs, saturated) that is {top * mb_per_clip_30s:,.0f} MB/s into one machine's "
              "network link and disk"
              + (f", {top / driver:.1f}x what its commits managed here" if driver else "")
              + ". Beyond a few GPUs the output folder belongs on a filesystem every worker mounts (NFS, Lustre, a "
              "cloud file store): a worker then stages and commits its own set there exactly as the local pool does "
              "(staging folder on the same filesystem, renames, manifest last) and only the outcome travels to the "
              "driver. Object storage (S3, GCS) works the same way if each clip's objects go under a temporary "
              "prefix and its manifest (clip.json) is written last, so that a reader that finds a manifest finds a "
              "whole set; the result-set code has no object-store writer yet."]
    return lines
