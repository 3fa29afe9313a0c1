"""Backends: the eval suite, batch runs and the paired benchmark on a local Ray instance write
what the local process pool writes, each backend resumes from the other's finished results, a
worker killed mid-clip is retried or recorded as failed, and nothing imports Ray unless asked.

One Ray instance (2 CPUs) serves the whole module."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from adaptive_argm.cli import app
from adaptive_argm.core import audio, backends, batch, pipeline
from adaptive_argm.core.separate import Separation, SeparatorInfo, SeparatorOptions
from adaptive_argm.evaluation import benchmark, records, runner
from adaptive_argm.evaluation.records import EvalSettings

from conftest import ROOT, SR, synthetic_stems, write_stems

HAS_RAY = importlib.util.find_spec("ray") is not None
needs_ray = pytest.mark.skipif(not HAS_RAY, reason="ray is not installed (extra [ray])")
RUNNER = CliRunner()
FAST = EvalSettings(separation=SeparatorOptions("stems"), figures=False, jobs=2)
KILL_WAIT_S = 60.0
"""How long a claimed separation waits to be killed (the watcher polls every 50 ms)."""
CLAIM_WAIT_S = 600.0
"""How long the watcher waits for the claim: a loaded machine can take minutes to start Ray's
workers and reach the first separation."""


@pytest.fixture(scope="module")
def ray_backend():
    if not HAS_RAY:
        pytest.skip("ray is not installed (extra [ray])")
    import ray

    backend = backends.RayBackend(num_cpus=2, object_store_bytes=200 * 1024 ** 2)
    backend.connect()
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the test separators below
    yield backend
    backend.close()


@pytest.fixture
def one_thread(monkeypatch):
    """Local workers with one BLAS thread each, as a Ray worker on one CPU has: the last digits of
    a float sum depend on how many threads added it up."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


def cli(*args):
    return RUNNER.invoke(app, [str(a) for a in args], catch_exceptions=True)


def stems_clip(folder: Path, seed: int) -> Path:
    stems = synthetic_stems(seconds=1.5, seed=seed)
    write_stems(folder, stems)
    audio.write(folder / "mix.wav", sum(stems.values()), SR)
    return folder


def prompt_set(tmp_path: Path) -> records.PromptSet:
    stems_clip(tmp_path / "a", seed=1)
    stems_clip(tmp_path / "b", seed=2)
    (tmp_path / "set.toml").write_text(
        '[[clip]]\nid = "a"\nprompt = "first"\ntags = ["drums", "bass", "other"]\nstems = "a"\n\n'
        '[[clip]]\nid = "b"\nprompt = "second"\ntags = ["drums", "bass", "other"]\nstems = "b"\n')
    return records.load_prompts(tmp_path / "set.toml")


def songs(folder: Path, n: int = 3, seconds: float = 1.0) -> Path:
    for i in range(n):
        audio.write(folder / f"song{i}.wav", sum(synthetic_stems(seconds=seconds, seed=i).values()), SR)
    return folder


def published(path: Path, root: Path) -> dict:
    """A JSON record with the run's own folder and wall times taken out."""
    def clean(v):
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items() if k not in ("timings_s", "time_s")}
        if isinstance(v, list):
            return [clean(x) for x in v]
        return v.replace(str(root), "<out>") if isinstance(v, str) else v
    return clean(json.loads(path.read_text()))


def staging_left(folder: Path) -> list[Path]:
    return [p for p in folder.rglob(".*")]


# --- same results, and resuming across backends ------------------------------------------------


@needs_ray
def test_eval_on_ray_writes_what_the_local_pool_writes_and_each_reuses_the_others_clips(
        ray_backend, one_thread, tmp_path):
    ps = prompt_set(tmp_path)
    local, remote = tmp_path / "local", tmp_path / "ray"
    seen: list[str] = []
    runner.run(ps, local, FAST)
    on_ray = runner.run(ps, remote, FAST, backend=ray_backend, on_clip=lambda o: seen.append(o.id))
    assert sorted(seen) == ["a", "b"] and all(o.status == "ok" for o in on_ray.outcomes)
    assert (remote / "results.csv").read_bytes() == (local / "results.csv").read_bytes()
    for cid in ("a", "b"):
        for name in ("input.wav", "direct.wav", "stemwise.wav", "routed.wav"):
            assert (remote / "clips" / cid / name).read_bytes() == (local / "clips" / cid / name).read_bytes()
        for name in ("compare.json", "clip.json"):
            assert (published(remote / "clips" / cid / name, remote)
                    == published(local / "clips" / cid / name, local))
    assert not staging_left(remote)

    stamps = {p: p.stat().st_mtime_ns for p in (*local.rglob("clip.json"), *remote.rglob("clip.json"))}
    again_on_ray = runner.run(ps, local, FAST, backend=ray_backend)
    again_here = runner.run(ps, remote, FAST)
    assert all(o.reused for o in again_on_ray.outcomes + again_here.outcomes)
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps


@needs_ray
def test_batch_on_ray_from_the_cli_restores_like_the_local_pool_and_resumes_across_backends(
        ray_backend, one_thread, tmp_path):
    inputs = songs(tmp_path / "songs")
    local, remote = tmp_path / "local", tmp_path / "ray"
    r = cli("run", inputs, "--mode", "direct", "-o", local, "-j", 2)
    assert r.exit_code == 0, r.stderr
    r = cli("run", inputs, "--mode", "direct", "-o", remote, "--backend", "ray", "-j", 2)
    assert r.exit_code == 0, r.stderr
    assert "3 restored" in r.stdout
    for i in range(3):
        track = f"song{i}"
        assert (remote / track / "restored.wav").read_bytes() == (local / track / "restored.wav").read_bytes()
        assert published(remote / track / "report.json", remote) == published(local / track / "report.json", local)
    assert not staging_left(remote)

    r = cli("run", inputs, "--mode", "direct", "-o", local, "--backend", "ray", "-j", 2)
    assert r.exit_code == 0 and "3 already up to date" in r.stdout, r.stdout
    r = cli("run", inputs, "--mode", "direct", "-o", remote)
    assert r.exit_code == 0 and "3 already up to date" in r.stdout, r.stdout


@needs_ray
def test_benchmark_on_ray_scores_every_case_as_the_local_pool_does(ray_backend, one_thread):
    clips = []
    for i, name in enumerate(("a", "b")):
        stems = synthetic_stems(seconds=1.0, seed=i)
        clips.append(benchmark.CleanClip(name, sum(stems.values()).astype(np.float32), stems, "musicgen"))
    s = benchmark.BenchmarkSettings(degradations=("white-45", "codec"), presets=("adaptive",), jobs=2)
    here = benchmark.run_benchmark(clips, s)
    on_ray = benchmark.run_benchmark(clips, s, backend=ray_backend)
    assert on_ray.jobs == 2 and len(on_ray.cases) == len(here.cases) == 2 * 2 * 3

    def rows(result):  # floats by their repr: equal to the last bit, and NaN (no cutoff found) equal to NaN
        return [{k: repr(v) for k, v in c.row().items() if k != "restore_s"} for c in result.cases]
    assert rows(on_ray) == rows(here)


# --- workers that die ------------------------------------------------------------------------------


class HaltingSeparator:
    """Halves the mix into two stems. The first call that finds `armed` in `marks` claims it,
    writes its process id and waits to be killed; every call is logged."""

    def __init__(self, marks: Path):
        self.marks = marks

    def spec(self) -> dict:
        return {"name": "halting"}

    def __call__(self, mix: np.ndarray, sr: int) -> Separation:
        with open(self.marks / "calls.log", "a") as log:
            log.write(f"{os.getpid()} {mix.shape[1]}\n")
        claimed = self.marks / f"killme.{os.getpid()}"
        try:
            os.rename(self.marks / "armed", claimed)
        except FileNotFoundError:
            pass
        else:
            time.sleep(KILL_WAIT_S)
        half = (mix * np.float32(0.5)).astype(np.float32)
        return Separation({"drums": half, "other": mix - half}, SeparatorInfo(name="halting"))


class DoomedSeparator(HaltingSeparator):
    """Kills its own process whenever it is given a mix of `doomed` samples."""

    def __init__(self, marks: Path, doomed: int):
        super().__init__(marks)
        self.doomed = doomed

    def __call__(self, mix: np.ndarray, sr: int) -> Separation:
        if mix.shape[1] == self.doomed:
            with open(self.marks / "calls.log", "a") as log:
                log.write(f"{os.getpid()} doomed\n")
            os.kill(os.getpid(), signal.SIGKILL)
        return super().__call__(mix, sr)


def kill_when_claimed(marks: Path) -> threading.Thread:
    def watch():
        deadline = time.monotonic() + CLAIM_WAIT_S
        while time.monotonic() < deadline:
            found = list(marks.glob("killme.*"))
            if found:
                os.kill(int(found[0].suffix[1:]), signal.SIGKILL)
                return
            time.sleep(0.05)
    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


@needs_ray
def test_a_worker_killed_mid_clip_is_restarted_and_the_clip_run_again(ray_backend, tmp_path):
    inputs = songs(tmp_path / "songs")
    marks = tmp_path / "marks"
    marks.mkdir()
    (marks / "armed").touch()
    killer = kill_when_claimed(marks)
    out = tmp_path / "out"
    result = batch.run_batch([inputs], out, HaltingSeparator(marks), pipeline.Settings(mode="stemwise"), jobs=2,
                             backend=ray_backend)
    killer.join(1)
    killed = int(next(marks.glob("killme.*")).suffix[1:])
    calls = (marks / "calls.log").read_text().split()
    assert str(killed) in calls  # it was separating when it died
    assert len(calls) // 2 == 4  # three clips, one of them twice
    assert [f.status for f in result.files] == ["done"] * 3
    assert all((out / f"song{i}" / "restored.wav").is_file() for i in range(3))
    assert not staging_left(out)


@needs_ray
def test_a_clip_whose_worker_dies_every_time_is_recorded_as_failed_and_the_run_goes_on(ray_backend, tmp_path):
    inputs = songs(tmp_path / "songs", n=2)
    audio.write(inputs / "doomed.wav", sum(synthetic_stems(seconds=1.3, seed=9).values()), SR)
    marks = tmp_path / "marks"
    marks.mkdir()
    once = backends.RayBackend(retries=1)  # joins the module's instance
    out = tmp_path / "out"
    sep = DoomedSeparator(marks, doomed=int(1.3 * SR))
    result = batch.run_batch([inputs], out, sep, pipeline.Settings(mode="stemwise"), jobs=2, backend=once)
    status = {Path(f.input).stem: f for f in result.files}
    assert status["song0"].status == status["song1"].status == "done"
    assert status["doomed"].status == "failed"
    assert status["doomed"].error.startswith("worker: ") and "died 2 times" in status["doomed"].error
    assert "\n" not in status["doomed"].error
    assert (marks / "calls.log").read_text().count("doomed") == 2  # tried, then retried once
    assert not (out / "doomed").exists() and not staging_left(out)
    assert json.loads((out / batch.BATCH_FILE).read_text())["counts"] == {"done": 2, "skipped": 0, "failed": 1,
                                                                        "unchanged": 2}  # clean songs


# --- resources -----------------------------------------------------------------------------------------


@needs_ray
def test_separating_workers_share_the_gpus_only_when_the_cluster_has_them(ray_backend, monkeypatch):
    import ray

    count, options = ray_backend._plan(0, 10, gpu=True)
    assert count == 2 and "num_gpus" not in options and options["num_cpus"] == 1  # 2 CPUs, no GPU
    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 64.0, "GPU": 2.0})
    count, options = ray_backend._plan(0, 100, gpu=True)
    assert count == 2 * backends.WORKERS_PER_GPU and options["num_gpus"] == 1 / backends.WORKERS_PER_GPU
    count, options = ray_backend._plan(0, 100, gpu=False)  # DSP and metrics: CPUs only
    assert count == 64 and "num_gpus" not in options
    assert ray_backend._plan(3, 100, gpu=False)[0] == 3


# --- asked for, or not -------------------------------------------------------------------------------


def test_without_ray_the_package_imports_and_backend_ray_is_one_clear_line(tmp_path):
    songs(tmp_path / "songs", n=1)
    code = f"""
import sys
sys.modules["ray"] = None  # as when Ray is not installed
import adaptive_argm, adaptive_argm.cli, adaptive_argm.core.backends, adaptive_argm.evaluation.runner
from typer.testing import CliRunner
from adaptive_argm.cli import app
r = CliRunner().invoke(app, ["run", {str(tmp_path / 'songs')!r}, "--mode", "direct", "-o", {str(tmp_path / 'out')!r},
                             "--backend", "ray"])
print(r.exit_code)
print(r.stderr.strip())
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    code_line, message = done.stdout.strip().splitlines()[-2:]
    assert code_line == "2"
    assert message == "error: --backend ray needs Ray: pip install 'adaptive-argm[ray]'"
    assert not (tmp_path / "out").exists()


def test_the_local_backend_never_imports_ray(tmp_path):
    songs(tmp_path / "songs", n=2)
    code = f"""
import sys
from typer.testing import CliRunner
from adaptive_argm.cli import app
r = CliRunner().invoke(app, ["run", {str(tmp_path / 'songs')!r}, "--mode", "direct", "-o", {str(tmp_path / 'out')!r},
                             "--backend", "local"])
assert r.exit_code == 0, r.stderr
print("ray" in sys.modules)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "False"


@pytest.mark.parametrize("args, message", [
    (["--backend", "dask"], "--backend must be one of local, ray, not 'dask'"),
    (["--address", "auto"], "--address is for --backend ray"),
])
def test_backend_options_that_do_not_go_together_are_usage_errors(tmp_path, args, message):
    r = cli("run", songs(tmp_path / "songs", n=2), "--mode", "direct", "-o", tmp_path / "out", *args)
    assert r.exit_code == 2 and message in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "out").exists()


def test_one_file_is_not_sent_to_a_cluster(tmp_path):
    song = songs(tmp_path / "songs", n=1) / "song0.wav"
    r = cli("run", song, "-o", tmp_path / "out", "--backend", "ray")
    assert r.exit_code == 2 and "--backend ray runs a batch" in r.stderr
    assert not (tmp_path / "out").exists()


def test_an_address_where_nothing_answers_is_said_at_once(tmp_path):
    if not HAS_RAY:
        pytest.skip("ray is not installed (extra [ray])")
    t0 = time.monotonic()
    with pytest.raises(backends.BackendError, match="nothing answers there"):
        backends.RayBackend("127.0.0.1:9").connect()
    assert time.monotonic() - t0 < 10
