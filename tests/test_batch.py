"""Batch runs: every file restored into its own folder, resumable, failures recorded and skipped,
worker processes, and an interrupted batch that leaves only finished results behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from adaptive_argm.core import audio, batch, pipeline
from adaptive_argm.cli import app

from conftest import SR, synthetic_stems

RUNNER = CliRunner()


def cli(*args):
    return RUNNER.invoke(app, [str(a) for a in args], catch_exceptions=True)


def clip(path: Path, seconds: float = 1.0, seed: int = 0) -> Path:
    mix = sum(synthetic_stems(seconds=seconds, seed=seed).values())
    return audio.write(path, mix, SR)


@pytest.fixture
def songs(tmp_path) -> Path:
    folder = tmp_path / "songs"
    for i, name in enumerate(("alpha", "beta", "gamma")):
        clip(folder / f"{name}.wav", seed=i)
    return folder


def record(out: Path) -> dict:
    return json.loads((out / batch.BATCH_FILE).read_text())


def statuses(out: Path) -> dict[str, str]:
    return {Path(f["out_dir"]).name: f["status"] for f in record(out)["files"]}


def temp_files(folder: Path) -> list[Path]:
    return list(folder.rglob(".*"))


def test_a_folder_is_restored_file_by_file_into_track_folders(songs, tmp_path):
    out = tmp_path / "out"
    r = cli("run", songs, "--mode", "direct", "-o", out)
    assert r.exit_code == 0, r.stderr
    assert statuses(out) == {"alpha": "done", "beta": "done", "gamma": "done"}
    for name in ("alpha", "beta", "gamma"):
        rep = json.loads((out / name / "report.json").read_text())
        assert rep["mode_used"] == "direct"
        assert rep["fingerprint"]["input"]["path"] == str((songs / f"{name}.wav").resolve())
        y, _ = audio.read(out / name / "restored.wav")
        assert y.shape == (1, SR)
    for name in ("alpha", "beta", "gamma"):
        assert name in r.stdout  # the summary table names every track


def test_a_second_run_skips_finished_files_and_changed_settings_or_input_reprocess(songs, tmp_path):
    out = tmp_path / "out"
    assert cli("run", songs, "--mode", "direct", "-o", out).exit_code == 0
    stamp = {n: (out / n / "restored.wav").stat().st_mtime_ns for n in ("alpha", "beta", "gamma")}

    again = cli("run", songs, "--mode", "direct", "-o", out)
    assert again.exit_code == 0, again.stderr
    assert set(statuses(out).values()) == {"skipped"}
    assert {n: (out / n / "restored.wav").stat().st_mtime_ns for n in stamp} == stamp
    assert all(f["p25_out_db"] is not None for f in record(out)["files"])  # the table still has the figures

    changed = cli("run", songs, "--mode", "direct", "--clip-mode", "normalize", "-o", out)
    assert changed.exit_code == 0, changed.stderr
    assert set(statuses(out).values()) == {"done"}
    assert json.loads((out / "alpha" / "report.json").read_text())["settings"]["clip_mode"] == "normalize"

    clip(songs / "beta.wav", seed=7)  # a new take under the same name
    edited = cli("run", songs, "--mode", "direct", "--clip-mode", "normalize", "-o", out)
    assert statuses(out) == {"alpha": "skipped", "beta": "done", "gamma": "skipped"}, edited.stderr


def test_a_broken_file_is_recorded_and_skipped_while_the_others_succeed(songs, tmp_path):
    (songs / "broken.wav").write_text("not audio, just text\n")
    out = tmp_path / "out"
    r = cli("run", songs, "--mode", "direct", "-o", out)
    assert r.exit_code == 1
    assert "Traceback" not in r.stderr + r.stdout
    rec = record(out)
    assert rec["counts"] == {"done": 3, "skipped": 0, "failed": 1, "unchanged": 3}  # clean clips: nothing to remove
    failed = [f for f in rec["files"] if f["status"] == "failed"]
    assert len(failed) == 1 and "broken.wav" in failed[0]["error"] and "\n" not in failed[0]["error"]
    assert not (out / "broken" / "restored.wav").exists() and not (out / "broken" / "report.json").exists()
    assert temp_files(out) == []
    # a rerun retries only the broken file
    r2 = cli("run", songs, "--mode", "direct", "-o", out)
    assert r2.exit_code == 1
    assert sorted(statuses(out).values()) == ["failed", "skipped", "skipped", "skipped"]


def test_two_workers_restore_every_file(songs, tmp_path):
    clip(songs / "delta.wav", seed=3)
    out = tmp_path / "out"
    r = cli("run", songs, "--mode", "direct", "-j", "2", "-o", out)
    assert r.exit_code == 0, r.stderr
    assert statuses(out) == dict.fromkeys(("alpha", "beta", "delta", "gamma"), "done")
    for name in ("alpha", "beta", "delta", "gamma"):
        assert (out / name / "restored.wav").is_file()
    assert temp_files(out) == []


def test_equal_file_names_get_distinct_folders_and_globs_are_expanded(tmp_path):
    for song in ("folk", "lofi"):
        clip(tmp_path / "corpus" / song / "mixed.wav", seconds=0.5)
        clip(tmp_path / "corpus" / song / "drums.wav", seconds=0.5)
    out = tmp_path / "out"
    r = cli("run", str(tmp_path / "corpus" / "*" / "mixed.wav"), "--mode", "direct", "-o", out)
    assert r.exit_code == 0, r.stderr
    assert statuses(out) == {"folk-mixed": "done", "lofi-mixed": "done"}


def test_results_are_never_taken_for_inputs_even_when_written_next_to_them(songs):
    r = cli("run", songs, "--mode", "direct", "-o", songs)
    assert r.exit_code == 0, r.stderr
    again = cli("run", str(songs / "**" / "*.wav"), "--mode", "direct", "-o", songs)
    assert again.exit_code == 0, again.stderr
    assert statuses(songs) == dict.fromkeys(("alpha", "beta", "gamma"), "skipped")


def test_track_names_are_unique_even_for_the_same_stem_in_other_formats(tmp_path):
    names = batch.track_names([tmp_path / "a" / "x.wav", tmp_path / "b" / "x.wav", tmp_path / "a" / "x.flac",
                               tmp_path / "c" / "y.wav"])
    assert len(set(names)) == 4
    assert names[3] == "y"


def test_one_file_keeps_the_single_run_layout(songs, tmp_path):
    out = tmp_path / "one"
    r = cli("run", songs / "alpha.wav", "--mode", "direct", "-o", out)
    assert r.exit_code == 0, r.stderr
    assert (out / "restored.wav").is_file() and not (out / batch.BATCH_FILE).exists()


def test_stems_cannot_be_shared_by_several_inputs(songs, tmp_path):
    r = cli("run", songs, "--stems", tmp_path, "-o", tmp_path / "out")
    assert r.exit_code == 2 and "--stems" in r.stderr


def test_a_pattern_that_matches_nothing_is_a_usage_error(tmp_path):
    r = cli("run", str(tmp_path / "*.wav"), "--mode", "direct", "-o", tmp_path / "out")
    assert r.exit_code == 2 and "no audio files match" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "out").exists()


def test_an_interrupt_leaves_only_finished_results_and_a_record_of_them(songs, tmp_path):
    """Ctrl-C during the second file's write: the first is kept, the second leaves nothing."""
    out = tmp_path / "out"
    started: list[str] = []

    def on_start(job):
        started.append(job.out_dir.name)

    def on_stage(stage):
        if stage == "write" and len(started) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        batch.run_batch([songs], out, None, pipeline.Settings(mode="direct"), on_start=on_start, on_stage=on_stage)
    rec = record(out)
    assert rec["interrupted"] is True
    assert [Path(f["out_dir"]).name for f in rec["files"]] == ["alpha"]
    assert len(rec["pending"]) == 2
    assert (out / "alpha" / "restored.wav").is_file()
    assert not (out / "beta").exists()
    assert temp_files(out) == []
    # the interrupted batch resumes where it stopped
    result = batch.run_batch([songs], out, None, pipeline.Settings(mode="direct"))
    assert [f.status for f in result.files] == ["skipped", "done", "done"] and result.ok


@pytest.mark.slow
def test_ctrl_c_stops_the_workers_and_writes_the_record(tmp_path):
    """SIGINT to the whole process group, as a terminal sends it, while two workers run."""
    folder = tmp_path / "songs"
    for i in range(6):
        clip(folder / f"s{i}.wav", seconds=20.0, seed=i)
    out = tmp_path / "out"
    script = "import sys; from adaptive_argm.cli import main; sys.argv[0] = 'adaptive-argm'; main()"
    proc = subprocess.Popen([sys.executable, "-c", script, "run", str(folder), "--mode", "direct", "-j", "2",
                             "-o", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not any(out.glob("*/restored.wav")) and proc.poll() is None:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert "Traceback" not in stderr, stderr
    assert proc.returncode in (0, 130), stderr
    rec = record(out)
    if proc.returncode == 130:
        assert rec["interrupted"] is True and "interrupted" in stderr
    assert temp_files(out) == []
    for f in rec["files"]:
        assert f["status"] == "done" and (Path(f["out_dir"]) / "report.json").is_file()
    for track in out.iterdir():
        if track.is_dir():  # a folder holds a finished result or nothing
            assert (track / "report.json").is_file() == (track / "restored.wav").is_file(), track


STOPPED_WHILE_SETTING_UP = """
import os, signal, time
from adaptive_argm.core import workers

def set_up():  # stopped as the parent's Ctrl-C stops it, while it still imports torch
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(10)

if __name__ == "__main__":
    failed = []
    workers.run_tasks(abs, [-1, -2], 2, lambda i, f: failed.append(type(f.exception()).__name__), initializer=set_up)
    print(sorted(failed))
"""


def test_a_worker_stopped_while_it_sets_up_ends_without_a_traceback(tmp_path):
    # The pool logs an exception of a worker's initializer with its traceback.
    script = tmp_path / "stopped.py"
    script.write_text(STOPPED_WHILE_SETTING_UP)
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert proc.stdout.strip() == "['BrokenProcessPool', 'BrokenProcessPool']"
    assert "Traceback" not in proc.stderr, proc.stderr


def test_recursive_finds_audio_in_subfolders_and_mirrors_the_tree(tmp_path):
    tree = tmp_path / "albums"
    files = ["intro.wav", "first/cd1/song.wav", "first/cd1/song.flac", "first/cd2/song.wav", "second/live/x.wav"]
    for i, name in enumerate(files):
        clip(tree / name, seconds=0.5, seed=i)
    (tree / ".hidden").mkdir()
    clip(tree / ".hidden" / "secret.wav", seconds=0.5)
    out = tmp_path / "out"
    flat = cli("run", tree, "--mode", "direct", "-o", tmp_path / "flat")
    assert flat.exit_code == 0, flat.stderr
    assert statuses(tmp_path / "flat") == {"intro": "done"}  # without --recursive: this folder only
    r = cli("run", tree, "--recursive", "--mode", "direct", "-o", out)
    assert r.exit_code == 0, r.stderr
    done = {Path(f["out_dir"]).relative_to(out).as_posix(): Path(f["input"]).relative_to(tree).as_posix()
            for f in record(out)["files"]}
    assert done == {"intro": "intro.wav", "first/cd1/song-wav": "first/cd1/song.wav",
                    "first/cd1/song-flac": "first/cd1/song.flac", "first/cd2/song": "first/cd2/song.wav",
                    "second/live/x": "second/live/x.wav"}
    for folder in done:
        assert (out / folder / "report.json").is_file()
    for folder in ("first/cd1/song-flac", "second/live/x"):
        assert folder in r.stdout  # the table names each result by its place in the tree
    again = cli("run", tree, "--recursive", "--mode", "direct", "-o", out)
    assert again.exit_code == 0, again.stderr
    assert set(statuses(out).values()) == {"skipped"}


def test_recursive_output_inside_the_input_tree_never_takes_its_results_for_inputs(tmp_path):
    tree = tmp_path / "songs"
    clip(tree / "a" / "one.wav", seconds=0.5)
    out = tree / "restored"
    for _ in range(2):
        r = cli("run", tree, "-r", "--mode", "direct", "--residual", "-o", out)
        assert r.exit_code == 0, r.stderr
        assert [Path(f["input"]).name for f in record(out)["files"]] == ["one.wav"]


def test_recursive_folders_with_the_same_layout_get_their_own_names(tmp_path):
    for side in ("left", "right"):
        clip(tmp_path / side / "take" / "mix.wav", seconds=0.5)
    jobs = batch.plan_jobs(batch.collect_inputs([tmp_path / "left", tmp_path / "right"], recursive=True),
                           tmp_path / "out", trees=[tmp_path / "left", tmp_path / "right"])
    assert [j.out_dir.relative_to(tmp_path / "out").as_posix() for j in jobs] == ["left/take/mix", "right/take/mix"]
