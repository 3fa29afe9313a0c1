"""`adaptive-argm run` as a user runs it: the three modes, audio truth, and clear errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from adaptive_argm.core import audio
from adaptive_argm.core.resample import resample

from conftest import OFFLINE_PROBE, SR, synthetic_stems, tiny_model_repo


def cli(*args, env=None, cwd=None):
    """The installed console script, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "adaptive_argm", *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, cwd=cwd, timeout=300)


def report(folder):
    return json.loads((folder / "report.json").read_text())


@pytest.mark.parametrize("mode, used", [("routed", "stemwise"), ("stemwise", "stemwise"), ("direct", "direct")])
def test_run_with_user_stems_in_each_mode_keeps_stereo_length_and_removes_dc(stereo_song, tmp_path, mode, used):
    song, stems = stereo_song
    out = tmp_path / f"out-{mode}"
    r = cli("run", song, "--stems", stems, "--mode", mode, "-o", out)
    assert r.returncode == 0, r.stderr
    rep = report(out)
    assert rep["mode_requested"] == mode and rep["mode_used"] == used
    assert rep["separator"]["name"] == ("none" if mode == "direct" else "stems")
    assert (rep["stems"] == []) == (mode == "direct")
    y, info = audio.read(out / "restored.wav")
    x, _ = audio.read(song)
    assert y.shape == x.shape  # stereo stays stereo, length kept
    assert abs(rep["input"]["dc_offset"] - 0.05) < 0.01
    assert abs(float(np.mean(y))) < 0.01  # the 0.05 DC offset is gone
    # the input peaks well above full scale: the output must not clip, and the report says what was done
    assert rep["input"]["peak_dbfs"] > 0
    assert np.max(np.abs(y)) <= 1.0
    assert rep["output"]["clip_action"] in ("limited", "none")
    assert isinstance(rep["metrics"]["input"]["p25_paper_db"], float)
    assert set(rep["timings_s"]) >= {"load", "separate", "route", "restore", "measure", "write"}
    assert used in r.stdout


def test_overs_are_never_clipped_silently(stereo_song, tmp_path):
    song, _ = stereo_song
    out = tmp_path / "none"
    r = cli("run", song, "--mode", "direct", "--clip-mode", "none", "-o", out)
    assert r.returncode == 0, r.stderr
    rep = report(out)
    y, _ = audio.read(out / "restored.wav")
    if np.max(np.abs(y)) > 1.0:
        assert rep["output"]["clip_action"] == "left-above-full-scale"
    assert rep["output"]["peak_dbfs"] == pytest.approx(20 * np.log10(np.max(np.abs(y))), abs=0.01)


def test_keep_stems_and_original_output_rate(tmp_path):
    stems = synthetic_stems(seconds=2.0)
    mix = sum(stems.values())
    song = audio.write(tmp_path / "song32.wav", resample(mix, SR, 32000), 32000)
    folder = tmp_path / "stems"
    for name, x in stems.items():
        audio.write(folder / f"{name}.wav", resample(x, SR, 32000), 32000)
    out = tmp_path / "out"
    r = cli("run", song, "--stems", folder, "--keep-stems", "--output-sr", "original", "-o", out)
    assert r.returncode == 0, r.stderr
    rep = report(out)
    assert rep["output"]["sample_rate"] == 32000
    _, info = audio.read(out / "restored.wav", sr=None)
    assert info.sample_rate == 32000 and abs(info.duration_s - 2.0) < 1e-3
    for name in stems:
        assert (out / "stems" / f"{name}.wav").is_file()
        assert (out / "stems" / f"{name}.restored.wav").is_file()


def test_default_output_folder_is_restored_track(stereo_song, tmp_path):
    song, _ = stereo_song
    r = cli("run", song, "--mode", "direct", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "restored" / "song" / "restored.wav").is_file()


def test_demucs_end_to_end_with_the_unittest_model(tmp_path):
    mix = sum(synthetic_stems(seconds=2.0, channels=1).values())
    song = audio.write(tmp_path / "mono.wav", mix, SR)
    out = tmp_path / "out"
    r = cli("run", song, "--model", "demucs_unittest", "--mode", "stemwise", "-o", out)
    assert r.returncode == 0, r.stderr
    rep = report(out)
    assert rep["separator"] == {**rep["separator"], "name": "demucs", "model": "demucs_unittest"}
    assert [s["name"] for s in rep["stems"]] == ["drums", "bass", "other", "vocals"]
    y, _ = audio.read(out / "restored.wav")
    assert y.shape == mix.shape  # mono stays mono through Demucs' stereo


def test_demucs_end_to_end_with_a_tiny_model_in_a_model_repo(tmp_path):
    repo = tiny_model_repo(tmp_path / "repo")
    mix = sum(synthetic_stems(seconds=2.0, channels=2).values())
    song = audio.write(tmp_path / "st.wav", mix, SR)
    out = tmp_path / "out"
    r = cli("run", song, "--model", "tiny", "--model-repo", repo, "-o", out,
            env={"ADAPTIVE_ARGM_NETWORK_PROBE": OFFLINE_PROBE})
    assert r.returncode == 0, r.stderr
    rep = report(out)
    assert rep["separator"]["name"] == "demucs" and rep["separator"]["weights"] == "model-repo"
    assert len(rep["stems"]) == 4


def test_input_is_never_overwritten(stereo_song):
    song, _ = stereo_song
    before = song.read_bytes()
    r = cli("run", song, "--mode", "direct", "-o", song.parent)
    assert r.returncode == 0, r.stderr
    assert song.read_bytes() == before


def one_line_error(r, code):
    assert r.returncode == code, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr
    lines = [line for line in r.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, r.stderr
    return lines[0]


def test_missing_file_is_a_usage_error(tmp_path):
    line = one_line_error(cli("run", tmp_path / "nope.wav", "-o", tmp_path / "o"), 2)
    assert "no such file" in line
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("content", [b"", b"not audio at all\n" * 20])
def test_not_audio_or_empty_fails_with_one_line_and_no_output(tmp_path, content):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(content)
    out = tmp_path / "o"
    line = one_line_error(cli("run", bad, "--mode", "direct", "-o", out), 1)
    assert "bad.wav" in line
    assert not (out / "restored.wav").exists() and not (out / "report.json").exists()


def test_zero_length_audio_fails_with_one_line(tmp_path):
    empty = audio.write(tmp_path / "empty.wav", np.zeros((1, 0), np.float32), SR)
    line = one_line_error(cli("run", empty, "--mode", "direct", "-o", tmp_path / "o"), 1)
    assert "no audio" in line


def test_an_output_path_that_is_a_file_is_a_usage_error(stereo_song, tmp_path):
    song, _ = stereo_song
    blocker = tmp_path / "file-not-folder"
    blocker.write_text("x")
    line = one_line_error(cli("run", song, "--mode", "direct", "-o", blocker), 2)
    assert "not a folder" in line
    assert blocker.read_text() == "x"


def test_bad_option_value_is_a_usage_error(stereo_song):
    song, _ = stereo_song
    one_line_error(cli("run", song, "--mode", "sideways"), 2)


def test_version_is_the_package_version():
    import tomllib
    from pathlib import Path

    declared = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]["version"]
    r = cli("--version")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"adaptive-argm {declared}"


def test_progress_shows_on_a_terminal_only(tmp_path):
    song = audio.write(tmp_path / "mono.wav", sum(synthetic_stems(seconds=1.0, channels=1).values()), SR)
    args = ("run", song, "--mode", "direct")
    piped = cli(*args, "-o", tmp_path / "a", env={"FORCE_COLOR": "1"})
    assert piped.returncode == 0, piped.stderr
    assert "━" not in piped.stderr and "loading" not in piped.stderr  # a pipe or a log gets no bars
    shown = cli(*args, "-o", tmp_path / "b", env={"TTY_COMPATIBLE": "1"})
    assert shown.returncode == 0, shown.stderr
    assert "━" in shown.stderr  # the same run on a terminal draws its progress


def test_a_run_hands_the_separation_progress_on(tmp_path):
    from adaptive_argm.core import pipeline, separate

    song = audio.write(tmp_path / "mono.wav", sum(synthetic_stems(seconds=2.0, channels=1).values()), SR)
    done: list[float] = []
    pipeline.run(song, tmp_path / "out", separate.DemucsSeparator("demucs_unittest", segment=1.0),
                 pipeline.Settings(mode="stemwise"), on_progress=done.append)
    assert len(done) >= 2 and done[-1] == 1.0


def test_the_stage_display_shows_the_separation_share_then_the_next_stage():
    from adaptive_argm.cli.progress import stage_progress

    progress, on_stage, on_progress = stage_progress()
    on_stage("separate")
    on_progress(0.25)
    shown = [t for t in progress.tasks if t.visible]
    assert [(t.description, t.total, t.percentage) for t in shown] == [("separating", 100, 25.0)]
    on_progress(1.0)
    on_stage("restore")
    shown = [t for t in progress.tasks if t.visible]
    assert [(t.description, t.total) for t in shown] == [("restoring", None)]


def test_the_command_list_wraps_each_summary_as_one_paragraph():
    r = cli("--help", env={"COLUMNS": "250"})
    assert r.returncode == 0, r.stderr
    text = " ".join(r.stdout.split())
    # Before, the list kept the docstrings' line breaks: "(one with │ │ neither)" on two rows.
    assert "(one with drums and bass, one with neither), write each mix" in text
    assert "compare them; writes direct/stemwise/routed.wav" in text
    corpus = " ".join(cli("corpus", "--help", env={"COLUMNS": "250"}).stdout.split())
    assert "at its own sample rate and channels, into OUT/<track>.wav" in corpus
