"""Bad and odd input through the real CLI: every case ends in a correct output (right channels
and length, finite samples, report.json) or one clear line on stderr with a non-zero exit code
(2 for usage errors, 1 for processing errors) and no partial output. Never a traceback, and
nothing lost: files the run did not make are byte-identical afterwards, in the output folder
too. Ctrl-C in every command exits 130 with a true one-line account of what was kept."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from adaptive_argm.core import audio
from adaptive_argm.core.dc import remove_dc
from adaptive_argm.cli import app

from conftest import OFFLINE_PROBE, SR, synthetic_stems, write_stems

RUNNER = CliRunner()
MAX_RSS_10_MIN_BYTES = 768 * 1024**2
"""Direct mode streams: a 10-minute stereo file peaks near 0.33 GB (0.95 GB when it was held
whole; one copy of it is 0.21 GB)."""


def cli(*args):
    """The `adaptive-argm` command in this process (typer's runner), stdout and stderr apart."""
    return RUNNER.invoke(app, [str(a) for a in args], catch_exceptions=True)


def music(seconds: float, sr: int = SR, channels: int = 1) -> np.ndarray:
    """`(samples, channels)` float64 test music at `sr`: a chord with a little noise."""
    n = int(round(seconds * sr))
    t = np.arange(n) / sr
    rng = np.random.default_rng(channels)
    x = sum(0.1 * np.sin(2 * np.pi * f * t) for f in (110.0, 220.0, 330.0, 1000.0))
    return np.stack([x * (1 - 0.1 * c) + 0.003 * rng.standard_normal(n) for c in range(channels)], axis=1)


def wav(path: Path, data: np.ndarray, sr: int = SR, subtype: str = "FLOAT") -> Path:
    sf.write(str(path), data, sr, subtype=subtype, format="WAV")
    return path


def leftovers(folder: Path) -> list[str]:
    """Temporary files (atomic writes use dot-prefixed names) anywhere under `folder`."""
    return [str(p) for p in folder.rglob(".*")] if folder.exists() else []


def assert_restored(result, out: Path, channels: int, frames: float, sr: int = SR) -> np.ndarray:
    """A finished run with `channels` and `frames` at `sr` (the working rate unless the input's is higher)."""
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 0, result.stderr
    assert "Traceback" not in result.stderr
    report = json.loads((out / "report.json").read_text())
    y, info = audio.read(out / "restored.wav", sr=None)
    assert info.sample_rate == sr
    assert y.shape[0] == channels
    assert abs(y.shape[1] - frames) <= 1
    assert np.all(np.isfinite(y))
    assert np.max(np.abs(y)) <= 1.0
    assert report["output"]["channels"] == channels
    assert leftovers(out) == []
    return y


def assert_clean_failure(result, out: Path, *words: str) -> str:
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 1, (result.exit_code, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for w in words:
        assert w in lines[0], lines[0]
    assert not (out / "restored.wav").exists() and not (out / "report.json").exists()
    assert leftovers(out) == []
    return lines[0]


# --- files that are not audio ------------------------------------------------------------------

UNREADABLE = {
    "empty file": lambda p: p.write_bytes(b""),
    "text renamed .wav": lambda p: p.write_text("this is a text file, not a WAV\n" * 40),
    "truncated header": lambda p: p.write_bytes(wav(p.with_suffix(".tmp.wav"), music(0.5)).read_bytes()[:22]),
    "RIFF header only": lambda p: p.write_bytes(b"RIFF\x24\x00\x00\x00WAVE"),
}


@pytest.mark.parametrize("kind", list(UNREADABLE))
def test_unreadable_file_fails_with_one_line_and_no_output(tmp_path, kind):
    bad = tmp_path / "bad.wav"
    UNREADABLE[kind](bad)
    out = tmp_path / "out"
    assert_clean_failure(cli("run", bad, "--mode", "direct", "-o", out), out, "bad.wav")


@pytest.mark.parametrize("kind, value", [("NaN", np.nan), ("Inf", np.inf), ("-Inf", -np.inf)])
def test_non_finite_samples_fail_with_one_line(tmp_path, kind, value):
    x = music(1.0)
    x[SR // 2, 0] = value
    bad = wav(tmp_path / "nonfinite.wav", x)
    out = tmp_path / "out"
    assert_clean_failure(cli("run", bad, "--mode", "direct", "-o", out), out, "NaN or infinite")


def test_zero_samples_fail_with_one_line(tmp_path):
    bad = wav(tmp_path / "zero.wav", np.zeros((0, 1)))
    out = tmp_path / "out"
    assert_clean_failure(cli("run", bad, "--mode", "direct", "-o", out), out, "no audio")


# --- odd but valid audio: restored, same channels and length ----------------------------------------


@pytest.mark.parametrize("frames", [1, 100, 441, 2047], ids=["1 sample", "100 samples", "10 ms",
                                                              "shorter than one FFT frame"])
def test_very_short_input_is_restored_at_its_own_length(tmp_path, frames):
    x = music(1.0)[:frames]
    song = wav(tmp_path / "short.wav", x)
    out = tmp_path / "out"
    y = assert_restored(cli("run", song, "--mode", "direct", "-o", out), out, 1, frames)
    assert y.shape == (1, frames)


@pytest.mark.parametrize("channels", [3, 6, 8])
def test_multichannel_input_keeps_its_channels_in_direct_mode(tmp_path, channels):
    song = wav(tmp_path / f"ch{channels}.wav", music(1.0, channels=channels))
    out = tmp_path / "out"
    assert_restored(cli("run", song, "--mode", "direct", "-o", out), out, channels, SR)


def test_six_channels_keep_their_layout_through_user_stems(tmp_path):
    stems = synthetic_stems(seconds=1.0, channels=6)
    song = audio.write(tmp_path / "six.wav", sum(stems.values()), SR)
    folder = write_stems(tmp_path / "stems", stems)
    out = tmp_path / "out"
    assert_restored(cli("run", song, "--stems", folder, "--mode", "stemwise", "-o", out), out, 6, SR)
    assert json.loads((out / "report.json").read_text())["mode_used"] == "stemwise"


def test_three_channels_through_demucs_come_back_as_three(tmp_path):
    song = wav(tmp_path / "three.wav", music(1.0, channels=3))
    out = tmp_path / "out"
    result = cli("run", song, "--model", "demucs_unittest", "--mode", "stemwise", "-o", out)
    assert_restored(result, out, 3, SR)


@pytest.mark.parametrize("sr", [8000, 192000])
def test_unusual_sample_rates_are_resampled_to_the_working_rate(tmp_path, sr):
    song = wav(tmp_path / f"sr{sr}.wav", music(1.0, sr=sr, channels=2), sr)
    out = tmp_path / "out"
    result = cli("run", song, "--mode", "direct", "-o", out)
    if sr <= SR:
        assert_restored(result, out, 2, SR)
    else:  # above 44.1 kHz a run keeps the input's rate, and its band
        assert result.exit_code == 0 and "Traceback" not in result.stderr, result.stderr
        y, info = audio.read(out / "restored.wav", sr=None)
        assert info.sample_rate == sr and y.shape == (2, sr) and np.all(np.isfinite(y))


def test_original_output_rate_gives_back_192k(tmp_path):
    song = wav(tmp_path / "hi.wav", music(0.5, sr=192000), 192000)
    out = tmp_path / "out"
    result = cli("run", song, "--mode", "direct", "--output-sr", "original", "-o", out)
    assert result.exit_code == 0, result.stderr
    y, info = audio.read(out / "restored.wav", sr=None)
    assert info.sample_rate == 192000 and abs(y.shape[1] - 96000) <= 2 and np.all(np.isfinite(y))


@pytest.mark.parametrize("subtype", ["PCM_16", "PCM_24", "FLOAT", "DOUBLE"])
def test_every_wav_sample_format_is_read(tmp_path, subtype):
    x = music(1.0, channels=2)
    song = wav(tmp_path / f"{subtype}.wav", x, subtype=subtype)
    out = tmp_path / "out"
    assert_restored(cli("run", song, "--mode", "direct", "-o", out), out, 2, SR)
    rep = json.loads((out / "report.json").read_text())
    assert rep["input"]["peak_dbfs"] == pytest.approx(20 * np.log10(np.max(np.abs(x))), abs=0.01)


@pytest.mark.parametrize("kind", ["silence", "DC offset only"])
def test_silence_and_pure_dc_restore_to_finite_silence(tmp_path, kind):
    x = np.zeros((SR, 2)) if kind == "silence" else np.full((SR, 2), 0.3)
    song = wav(tmp_path / "flat.wav", x)
    out = tmp_path / "out"
    y = assert_restored(cli("run", song, "--mode", "direct", "-o", out), out, 2, SR)
    assert np.max(np.abs(y)) < 1e-3  # nothing but a removed offset: nothing comes out
    rep = json.loads((out / "report.json").read_text())
    if kind == "DC offset only":
        assert rep["input"]["dc_offset"] == pytest.approx(0.3, abs=1e-4)


PASSTHROUGH_PRESET = """
name = "passthrough"
match_loudness = false
[[steps]]
kind = "dc_remove"
"""


@pytest.mark.parametrize("preset", ["paper", "passthrough"])
def test_peaks_at_two_are_brought_inside_full_scale(tmp_path, preset):
    x = music(1.0, channels=2)
    x = 2.0 * x / np.max(np.abs(x))
    song = wav(tmp_path / "hot.wav", x)
    out = tmp_path / "out"
    args = ["--preset", "paper"]
    if preset == "passthrough":  # nothing in the chain lowers the overs: clip safety must
        (tmp_path / "pass.toml").write_text(PASSTHROUGH_PRESET)
        args = ["--preset-file", tmp_path / "pass.toml"]
    assert_restored(cli("run", song, "--mode", "direct", *args, "-o", out), out, 2, SR)
    rep = json.loads((out / "report.json").read_text())
    assert rep["input"]["peak_dbfs"] == pytest.approx(20 * np.log10(2.0), abs=0.01)
    assert rep["output"]["clip_action"] == ("limited" if preset == "passthrough" else "none")


def test_a_dc_step_on_the_mix_does_not_high_pass_the_loaded_input_again(tmp_path):
    # The input loses its DC offset and drift once, at load; a user preset's dc_remove on the
    # mix would take the music's lowest octave down a second time (a 4 Hz swell: -6 dB, not -3).
    t = np.arange(4 * SR) / SR
    x = (0.2 + 0.3 * np.sin(2 * np.pi * 4 * t) + 0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    song = wav(tmp_path / "swell.wav", np.stack([x, x], axis=1))
    (tmp_path / "pass.toml").write_text(PASSTHROUGH_PRESET)
    out = tmp_path / "out"
    y = assert_restored(cli("run", song, "--mode", "direct", "--preset-file", tmp_path / "pass.toml", "-o", out),
                        out, 2, SR * 4)
    once = remove_dc(np.stack([x, x]), SR)
    assert np.max(np.abs(y - once)) < 1e-5
    steps = json.loads((out / "report.json").read_text())["change"]["steps"]
    dc = [s for s in steps if s["step"] == "dc_remove"]
    assert len(dc) == 1 and dc[0]["acted"] is False and "when it was loaded" in dc[0]["reason"]


def test_truncated_sample_data_is_read_as_far_as_it_goes_or_refused(tmp_path):
    full = wav(tmp_path / "full.wav", music(1.0), subtype="PCM_16").read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(full[: len(full) // 2 + 1])  # header still claims one second; an odd byte count
    out = tmp_path / "out"
    result = cli("run", cut, "--mode", "direct", "-o", out)
    if result.exit_code == 0:
        y, _ = audio.read(out / "restored.wav", sr=None)
        assert 0 < y.shape[1] <= SR and np.all(np.isfinite(y))
        assert leftovers(out) == []
    else:
        assert_clean_failure(result, out, "cut.wav")


def test_a_failing_run_leaves_an_existing_result_untouched(tmp_path):
    song = wav(tmp_path / "good.wav", music(0.5))
    out = tmp_path / "out"
    assert cli("run", song, "--mode", "direct", "-o", out).exit_code == 0
    before = (out / "restored.wav").read_bytes()
    song.write_text("now broken")
    result = cli("run", song, "--mode", "direct", "-o", out)
    assert result.exit_code == 1 and "Traceback" not in result.stderr
    assert (out / "restored.wav").read_bytes() == before
    assert leftovers(out) == []


# --- long files: the memory savings must not change a sample ---------------------------------------


@pytest.mark.parametrize("preset", ["paper", "adaptive"])
def test_stems_processed_in_place_match_the_copying_path_and_spare_the_input(preset):
    from adaptive_argm.core import pipeline, presets

    stems = {k: v + 0.05 for k, v in synthetic_stems(seconds=1.5, channels=2).items()}  # DC for dc_remove
    chain = presets.load(preset)
    kept = {k: v.copy() for k, v in stems.items()}
    copied = pipeline.process_stems(stems, list(stems), chain)
    assert all(np.array_equal(stems[k], kept[k]) for k in stems)  # the copying path leaves its input alone
    in_place = pipeline.process_stems(stems, list(stems), chain, in_place=True)
    for k in stems:
        assert np.array_equal(in_place[k], copied[k])
        assert in_place[k] is stems[k]  # written over the stem, no second full-length array


@pytest.mark.slow
def test_ten_minute_stereo_file_runs_in_bounded_memory(tmp_path):
    """Direct mode with the paper preset, in a real process, its own peak RSS (VmHWM) measured."""
    n = 600 * SR
    t = np.arange(n, dtype=np.float64) / SR
    x = np.stack([0.2 * np.sin(2 * np.pi * 110 * t), 0.2 * np.sin(2 * np.pi * 165 * t)]).astype(np.float32)
    x += 0.01 * np.random.default_rng(0).standard_normal(x.shape).astype(np.float32)
    del t
    song = audio.write(tmp_path / "long.wav", x, SR)
    del x
    out = tmp_path / "out"
    hwm = tmp_path / "hwm"
    # The child's own high-water mark, written as it exits (ru_maxrss would also count the pytest
    # process's RSS at fork).
    script = ("import atexit, sys; from adaptive_argm.cli import main; "
              f"atexit.register(lambda: open({str(hwm)!r}, 'w').write(next(l for l in open('/proc/self/status') "
              "if l.startswith('VmHWM:')).split()[1])); sys.argv[0] = 'adaptive-argm'; main()")
    proc = subprocess.Popen([sys.executable, "-c", script, "run", str(song), "--mode", "direct", "-o", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    stderr = proc.stderr.read()
    proc.returncode = proc.wait()
    peak_bytes = int(hwm.read_text()) * 1024
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr
    y, _ = audio.read(out / "restored.wav", sr=None)
    assert y.shape == (2, n) and np.all(np.isfinite(y))
    assert json.loads((out / "report.json").read_text())["output"]["duration_s"] == pytest.approx(600.0)
    assert peak_bytes <= MAX_RSS_10_MIN_BYTES, f"peak RSS {peak_bytes / 2**30:.2f} GiB"


# --- more odd input: rates, full-scale squares, names, folders ------------------------------------


def test_96k_24_bit_input_is_read_and_restored(tmp_path):
    song = wav(tmp_path / "hi.wav", music(0.5, sr=96000, channels=2), 96000, subtype="PCM_24")
    out = tmp_path / "out"
    # Above 44.1 kHz a run keeps the input's rate (and its band above 22 kHz).
    assert_restored(cli("run", song, "--mode", "direct", "-o", out), out, 2, 48000, sr=96000)


def square(seconds: float, level: float = 1.0, freq_hz: float = 100.0) -> np.ndarray:
    """`(samples, 1)`: a square wave from -level to +level (whole periods at 44.1 kHz: mean 0)."""
    n = int(round(seconds * SR))
    return (level * np.sign(np.sin(2 * np.pi * freq_hz * (np.arange(n) + 0.5) / SR)))[:, None]


def test_full_scale_square_wave_stays_inside_full_scale(tmp_path):
    song = wav(tmp_path / "square.wav", square(1.0))
    out = tmp_path / "out"
    assert_restored(cli("run", song, "--mode", "direct", "-o", out), out, 1, SR)


def test_names_with_spaces_and_non_ascii_get_their_own_default_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    song = wav(tmp_path / "mon morceau ü 音.wav", music(0.5))
    result = cli("run", song, "--mode", "direct")
    assert_restored(result, Path("restored") / "mon morceau ü 音", 1, SR / 2)


@pytest.mark.parametrize("command", [["run"], ["compare"], ["metrics"], ["compare", "x.wav", "--ref"]])
def test_a_folder_where_an_audio_file_belongs_is_a_usage_error(tmp_path, command):
    folder = tmp_path / "clips"
    folder.mkdir()
    wav(tmp_path / "x.wav", music(0.2))
    args = [tmp_path / a if a.endswith(".wav") else a for a in command]
    result = cli(*args, folder, "-o", tmp_path / "out") if command[0] != "metrics" else cli(*args, folder)
    line = one_line(result, 2)
    assert "folder" in line
    assert not (tmp_path / "out").exists()


def test_an_output_folder_that_cannot_be_made_fails_with_one_line(tmp_path):
    song = wav(tmp_path / "song.wav", music(0.2))
    out = Path("/proc/adaptive-argm-cannot-be-here")  # not writable, whoever runs the tests
    line = one_line(cli("run", song, "--mode", "direct", "-o", out), 1)
    assert str(out) in line


def test_an_output_path_that_is_a_file_is_a_usage_error_and_the_file_stays(tmp_path):
    song = wav(tmp_path / "song.wav", music(0.2))
    before = snapshot(tmp_path)
    line = one_line(cli("run", song, "--mode", "direct", "-o", song), 2)
    assert "not a folder" in line
    assert snapshot(tmp_path) == before


def test_an_input_that_is_the_output_is_never_written_over(tmp_path):
    song = wav(tmp_path / "song.wav", music(0.5))
    out = tmp_path / "out"
    assert cli("run", song, "--mode", "direct", "-o", out).exit_code == 0
    earlier = out / "restored.wav"
    before = snapshot(tmp_path)
    for extra in ([], ["--overwrite"]):  # its own folder holds song.wav's result: refused either way
        line = one_line(cli("run", earlier, "--mode", "direct", "-o", out, *extra), 2)
        assert "restored.wav" in line
    assert snapshot(tmp_path) == before


# --- the cases: what a run may delete, replace or leave ---------------------------------


def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every file (its bytes) and folder (None) under `folder`, hidden ones included."""
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None)
            for p in sorted(folder.rglob("*"))}


def one_line(result, code: int) -> str:
    """The single stderr line of a run that ended with `code`, and no traceback."""
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


def set_files(folder: Path, manifest: str) -> set[str]:
    """The files a result set's manifest says are its own, checked against the folder."""
    record = json.loads((folder / manifest).read_text())["result_set"]
    for name in record["files"]:
        assert (folder / name).is_file(), name
    return set(record["files"])


def test_a_batch_never_deletes_an_input_that_sits_in_its_output_folder(tmp_path):
    """Issue case 1: `mkdir -p o/restored && cp x.wav o/restored/restored.wav;
    run o/restored/restored.wav other.wav -o o` used to delete the copied input."""
    o = tmp_path / "o"
    (o / "restored").mkdir(parents=True)
    inside = wav(o / "restored" / "restored.wav", music(0.5))
    other = wav(tmp_path / "other.wav", music(0.5, channels=2))
    before = inside.read_bytes()
    result = cli("run", inside, other, "--mode", "direct", "-o", o)
    assert inside.read_bytes() == before
    assert result.exit_code == 0, result.stderr
    files = json.loads((o / "batch.json").read_text())["files"]
    assert [f["status"] for f in files] == ["done", "done"]
    folders = [Path(f["out_dir"]) for f in files]
    assert o / "restored" not in folders and len(set(folders)) == 2
    for folder in folders:
        assert set_files(folder, "report.json") == {"restored.wav"}


def test_rerunning_compare_without_stems_replaces_the_whole_result(tmp_path, offline):
    """Issue case 2: the earlier stemwise.wav was left beside a compare.json saying stem-wise is null."""
    stems = synthetic_stems(seconds=1.0)
    song = audio.write(tmp_path / "song.wav", sum(stems.values()), SR)
    folder = write_stems(tmp_path / "stems", stems)
    out = tmp_path / "cmp"
    assert cli("compare", song, "--stems", folder, "--no-figures", "-o", out).exit_code == 0
    assert (out / "stemwise.wav").is_file()
    (out / "notes.txt").write_text("mine")
    again = cli("compare", song, "--no-figures", "-o", out)  # offline, no weights: no separator
    assert again.exit_code == 0, again.stderr
    report = json.loads((out / "compare.json").read_text())
    assert report["metrics"]["stemwise"] is None and "stemwise" not in report["outputs"]
    assert not (out / "stemwise.wav").exists()
    assert set_files(out, "compare.json") == {"direct.wav", "routed.wav"}
    assert (out / "notes.txt").read_text() == "mine"
    assert {p.name for p in out.iterdir()} == {"direct.wav", "routed.wav", "compare.json", "notes.txt"}


def test_same_named_inputs_get_distinct_default_folders_and_the_run_says_where(tmp_path, monkeypatch):
    """Issue case 7: `lofi_chill/mixed.wav` and `acoustic_folk/mixed.wav` both defaulted to
    restored/mixed/, and the second silently replaced the first."""
    monkeypatch.chdir(tmp_path)
    first = wav(tmp_path / "acoustic_folk" / "mixed.wav", music(0.5)) if (tmp_path / "acoustic_folk").mkdir() is None \
        else None
    (tmp_path / "lofi_chill").mkdir()
    second = wav(tmp_path / "lofi_chill" / "mixed.wav", music(0.7, channels=2))
    assert cli("run", first, "--mode", "direct").exit_code == 0
    kept = snapshot(tmp_path / "restored")
    result = cli("run", second, "--mode", "direct")
    assert result.exit_code == 0, result.stderr
    assert "restored/lofi_chill-mixed" in result.stderr and "another input" in result.stderr
    assert {k: v for k, v in snapshot(tmp_path / "restored").items() if k.startswith("mixed")} == kept
    report = json.loads((tmp_path / "restored" / "lofi_chill-mixed" / "report.json").read_text())
    assert report["input"]["channels"] == 2
    again = cli("run", first, "--mode", "direct")  # a rerun of the same input replaces its own result
    assert again.exit_code == 0 and "notice" not in again.stderr
    assert sorted(p.name for p in (tmp_path / "restored").iterdir()) == ["lofi_chill-mixed", "mixed"]


def test_an_explicit_out_holding_another_inputs_result_is_refused_unless_overwrite(tmp_path):
    a = wav(tmp_path / "a.wav", music(0.5))
    b = wav(tmp_path / "b.wav", music(0.7, channels=2))
    out = tmp_path / "out"
    assert cli("run", a, "--mode", "direct", "-o", out).exit_code == 0
    (out / "notes.txt").write_text("mine")
    before = snapshot(out)
    line = one_line(cli("run", b, "--mode", "direct", "-o", out), 2)
    assert "another input" in line and "--overwrite" in line
    assert snapshot(out) == before
    replaced = cli("run", b, "--mode", "direct", "-o", out, "--overwrite")
    assert replaced.exit_code == 0, replaced.stderr
    assert json.loads((out / "report.json").read_text())["input"]["channels"] == 2
    assert (out / "notes.txt").read_text() == "mine"


def test_files_the_tool_did_not_write_are_never_replaced(tmp_path):
    song = wav(tmp_path / "song.wav", music(0.5))
    out = tmp_path / "out"
    out.mkdir()
    (out / "restored.wav").write_bytes(b"the user's own file")
    before = snapshot(tmp_path)
    line = one_line(cli("run", song, "--mode", "direct", "-o", out), 2)
    assert "restored.wav" in line and "not part of an earlier result" in line
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("channels", [2, 6])
def test_a_clip_with_as_many_samples_as_channels_is_written(tmp_path, channels):
    """pedalboard cannot tell the layout of a square block; the writer must not ask it to."""
    x = np.linspace(-0.5, 0.5, channels * channels, dtype=np.float32).reshape(channels, channels)
    song = wav(tmp_path / "square.wav", x.T)
    result = cli("run", song, "--mode", "direct", "-o", tmp_path / "out")
    assert result.exit_code == 0, result.stderr
    y, info = audio.read(tmp_path / "out" / "restored.wav", sr=None)
    assert y.shape == (channels, channels) and info.sample_rate == SR
    np.testing.assert_allclose(y, x - x.mean(axis=1, keepdims=True), atol=1e-6)
    (tmp_path / "gain.toml").write_text('name = "gain"\n[[steps]]\nkind = "pedalboard.Gain"\ngain_db = -6.0\n')
    result = cli("run", song, "--mode", "direct", "--preset-file", tmp_path / "gain.toml", "-o", tmp_path / "gain")
    assert result.exit_code == 0, result.stderr  # and through a pedalboard step
    y, _ = audio.read(tmp_path / "gain" / "restored.wav", sr=None)
    np.testing.assert_allclose(y, (x - x.mean(axis=1, keepdims=True)) * 10 ** (-6 / 20), atol=1e-6)


@pytest.mark.parametrize("mine", [b'{"mine": true}', b"RIFF not json"])
def test_a_batch_refuses_a_batch_json_it_did_not_write(tmp_path, mine):
    songs = [wav(tmp_path / f"{n}.wav", music(0.3)) for n in ("a", "b")]
    out = tmp_path / "out"
    out.mkdir()
    (out / "batch.json").write_bytes(mine)
    before = snapshot(tmp_path)
    line = one_line(cli("run", *songs, "--mode", "direct", "-o", out), 2)
    assert "batch.json" in line and "not written by adaptive-argm" in line
    assert snapshot(tmp_path) == before
    (out / "batch.json").unlink()
    assert cli("run", *songs, "--mode", "direct", "-o", out).exit_code == 0
    assert cli("run", *songs, "--mode", "direct", "-o", out).exit_code == 0  # its own record is replaced


def test_a_result_of_an_earlier_version_loses_no_file_it_may_not_have_written(tmp_path):
    """An earlier version's report.json lists no files: its set is known by names only
    (restored.wav, stems/*.wav), which a user's file can carry too. The new set replaces the
    names it writes and removes none."""
    song = wav(tmp_path / "song.wav", music(0.5))
    out = tmp_path / "out"
    (out / "stems").mkdir(parents=True)
    (out / "report.json").write_text(json.dumps({"schema": "adaptive-argm/report/1", "input": {"path": str(song)}}))
    (out / "restored.wav").write_bytes(b"the earlier version's output")
    (out / "stems" / "my_vocals_take.wav").write_bytes(b"the user's own take")
    assert cli("run", song, "--mode", "direct", "-o", out).exit_code == 0
    assert (out / "stems" / "my_vocals_take.wav").read_bytes() == b"the user's own take"
    assert audio.read(out / "restored.wav", sr=None)[0].shape[1] == int(0.5 * SR)
    assert set_files(out, "report.json") == {"restored.wav"}


def test_benchmark_takes_paired_md_for_its_earlier_tables_only_when_it_wrote_it(tmp_path):
    clean = tmp_path / "clean"
    clean.mkdir()
    wav(clean / "song.wav", music(1.0))
    out = tmp_path / "out"
    out.mkdir()
    (out / "paired.md").write_text("my notes on pairing\n")
    (out / "paired.csv").write_text("a,b\n")
    before = snapshot(out)
    args = ("benchmark", "--no-corpus", "--clean", clean, "--degrade", "white-50", "--presets", "adaptive",
            "--modes", "direct", "--jobs", "1", "--no-visqol", "--out", out)
    result = cli(*args)
    assert result.exit_code != 0 and "Traceback" not in result.stderr + result.stdout
    assert "paired" in result.stderr and "refusing" in result.stderr
    assert snapshot(out) == before
    (out / "paired.md").write_text("# Paired benchmark\n\nan earlier version's tables\n")
    assert cli(*args).exit_code == 0
    assert (out / "paired.csv").read_text() != "a,b\n" and (out / "paired.json").is_file()


def test_batches_into_one_folder_never_replace_another_inputs_result(tmp_path):
    for song in ("folk", "lofi"):
        (tmp_path / song).mkdir()
        wav(tmp_path / song / "mixed.wav", music(0.4 if song == "folk" else 0.6))
    x, y = wav(tmp_path / "x.wav", music(0.3)), wav(tmp_path / "y.wav", music(0.3))
    out = tmp_path / "out"
    assert cli("run", tmp_path / "folk" / "mixed.wav", x, "--mode", "direct", "-o", out).exit_code == 0
    kept = snapshot(out / "mixed")
    r = cli("run", tmp_path / "lofi" / "mixed.wav", y, "--mode", "direct", "-o", out)
    assert r.exit_code == 0, r.stderr
    assert snapshot(out / "mixed") == kept
    lofi = json.loads((out / "lofi-mixed" / "report.json").read_text())
    assert lofi["input"]["duration_s"] == pytest.approx(0.6, abs=1e-3)


def test_a_stale_staging_folder_is_ignored_and_removed_by_the_next_run(tmp_path):
    out = tmp_path / "out"
    stale = out / f".adaptive-argm-staging-{socket.gethostname()}-999999999-abc123"  # no such process
    stale.mkdir(parents=True)
    (stale / "restored.wav").write_bytes(b"half of an interrupted write")
    song = wav(tmp_path / "song.wav", music(0.3))
    assert_restored(cli("run", song, "--mode", "direct", "-o", out), out, 1, 0.3 * SR)
    assert not stale.exists()


PRESET_WITHOUT_STEPS = 'name = "empty"\n'
BAD_TOML = "kind = = dc_remove\n"


@pytest.mark.parametrize("args, words", [
    (["run", "{song}", "--preset", "nosuch"], "--preset"),
    (["run", "{song}", "--preset-file", "{tmp}/bad.toml"], "--preset-file"),
    (["run", "{song}", "--preset-file", "{tmp}/empty.toml"], "--preset-file"),
    (["run", "{song}", "--preset-file", "{tmp}/missing.toml"], "--preset-file"),
    (["run", "{song}", "--preset", "paper", "--preset-file", "{tmp}/empty.toml"], "not both"),
    (["run", "{song}", "--separator", "stems"], "--stems"),
    (["run", "{song}", "--stems", "{tmp}/no-such-folder"], "--stems"),
    (["run", "{song}", "--clip-mode", "loud"], "--clip-mode"),
    (["run", "{song}", "{song}", "--overwrite"], "--overwrite"),
    (["run", "{tmp}/*.flac"], "no audio files match"),
    (["compare", "{song}", "--preset", "nosuch"], "--preset"),
    (["compare", "{song}", "--ref", "{tmp}/missing.wav"], "--ref"),
    (["eval", "{tmp}/bad.toml", "-o", "{tmp}/ev"], "bad.toml"),
    (["eval", "{tmp}/set.toml", "-o", "{tmp}/ev", "--preset", "nosuch"], "--preset"),
    (["benchmark", "--no-corpus", "--clean", "{tmp}", "--presets", "nosuch", "-o", "{tmp}/b"], "unknown preset"),
    (["demo", "--seconds", "0", "-o", "{tmp}/d"], "--seconds"),
    (["demo", "--seconds", "0.001", "-o", "{tmp}/d"], "between 1 and 600"),
    (["demo", "--seconds", "nan", "-o", "{tmp}/d"], "between 1 and 600"),
    (["demo", "--seconds", "1e9", "-o", "{tmp}/d"], "between 1 and 600"),
    (["metrics", "{tmp}/missing.wav"], "no such file"),
    (["corpus", "real", "{song}", "-o", "{tmp}"], "not empty"),
    (["run", "{song}", "--device", "tpu"], "--device"),
    (["run", "{song}", "--segment", "-1"], "--segment"),
    (["run", "{song}", "--overlap", "1.5"], "--overlap"),
    (["run", "{song}", "--min-active", "2"], "--min-active"),
    (["run", "{song}", "--preset-file", "{song}"], "not a text file"),
    (["run", "{song}", "--model-repo", "{tmp}/no-such-folder"], "--model-repo"),
    (["models", "--model-repo", "{tmp}/no-such-folder"], "--model-repo"),
    (["demo", "--model-repo", "{tmp}/no-such-folder", "-o", "{tmp}/d"], "--model-repo"),
    (["demo", "-o", "{song}"], "not a folder"),
    (["run", "{song}", "--min-rel-db", "nan"], "--min-rel-db must be a finite number"),
    (["run", "{song}", "-o", "{tmp}/dangling"], "which does not exist"),
    (["run", "{song}", "{song}", "-o", "{tmp}/dangling"], "which does not exist"),
    (["eval", "{tmp}", "-o", "{tmp}/ev"], "is a folder; give a prompt-set TOML file"),
    (["benchmark", "--no-corpus", "--clean", "{tmp}", "-j", "-1", "-o", "{tmp}/b"], "--jobs must be 0"),
    (["eval", "{tmp}/set.toml", "-o", "{tmp}/ev", "--generate", "--duration", "-5"], "--duration must be"),
], ids=lambda v: " ".join(v).replace("{song}", "song").replace("{tmp}/", "") if isinstance(v, list) else None)
def test_usage_errors_exit_2_with_one_line_and_write_nothing(tmp_path, args, words):
    """Issue case 9: a bad --preset or a malformed preset file exited 1."""
    song = wav(tmp_path / "song.wav", music(0.3))
    (tmp_path / "bad.toml").write_text(BAD_TOML)
    (tmp_path / "empty.toml").write_text(PRESET_WITHOUT_STEPS)
    (tmp_path / "set.toml").write_text(f'[[clip]]\nid = "a"\nprompt = "p"\ntags = []\naudio = "{song}"\n')
    (tmp_path / "dangling").symlink_to(tmp_path / "no-such-target")
    before = snapshot(tmp_path)
    argv = [a.replace("{song}", str(song)).replace("{tmp}", str(tmp_path)) for a in args]
    line = one_line(cli(*argv), 2)
    assert words in line
    assert snapshot(tmp_path) == before


# --- audio truth: the other half of the issue ---------------------------------------------------


def test_a_truncated_wav_is_refused_or_processed_for_the_frames_it_has(tmp_path):
    """Issue case 3: the header says 3 s, the data holds 1 s; the run said 3 s (2 s of zeros)."""
    full = wav(tmp_path / "full.wav", music(3.0), subtype="PCM_16").read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(full[: 44 + 2 * SR])  # the 44-byte header still claims 3 s
    out = tmp_path / "out"
    result = cli("run", cut, "--mode", "direct", "-o", out)
    if result.exit_code != 0:
        assert "cut.wav" in one_line(result, 1)
        return
    y, _ = audio.read(out / "restored.wav", sr=None)
    assert y.shape[1] <= SR + 1
    assert "truncat" in (out / "report.json").read_text()


def test_a_clean_full_scale_square_wave_comes_back_unchanged(tmp_path):
    """Issue case 4: ±1.0 at 100 Hz came out with +12 dB of make-up gain through the limiter. Now
    nothing is restored, gained or limited: the output is the input as loading leaves it, to
    16-bit precision. Loading removes DC and drift with a zero-phase 5 Hz high-pass (issue case
    5), which moves a full-scale 100 Hz square by up to 2.3e-3: that, not restoration, is most of
    the difference to the file."""
    x = square(1.0)
    song = wav(tmp_path / "square.wav", x)
    out = tmp_path / "out"
    y = assert_restored(cli("run", song, "--mode", "direct", "-o", out), out, 1, SR)
    report = json.loads((out / "report.json").read_text())["output"]
    assert report["loudness_gain_db"] == 0.0 and report["clip_action"] in ("none", "normalized")
    # Centred, the square peaks a hair over full scale: it is scaled just under it (0.01 dB), not
    # limited to -1 dBFS.
    gain = 10 ** ((report["peak_dbfs"] - report["peak_before_safety_dbfs"]) / 20)
    assert 0.997 < gain <= 1.0
    assert np.max(np.abs(y - gain * remove_dc(audio.read(song)[0], SR))) <= 2.0 / 32768
    assert np.max(np.abs(y[0] - x[:, 0])) <= 4e-3


def sawtooth(seconds: float, level: float, freq_hz: float = 100.0) -> np.ndarray:
    """`(samples, 1)`: a rising sawtooth from -level to +level (mean 0 over whole periods)."""
    n = int(round(seconds * SR))
    phase = ((np.arange(n) + 0.5) * freq_hz / SR) % 1.0
    return (level * (2.0 * phase - 1.0))[:, None]


@pytest.mark.parametrize("signal", [lambda: square(1.0, level=0.5), lambda: sawtooth(1.0, 0.5)],
                         ids=["square-0.5", "sawtooth-0.5"])
def test_a_clean_half_scale_square_or_sawtooth_comes_back_as_it_went_in(tmp_path, signal):
    """Issue case 4 at ±0.5: LSD 11 dB against the input. Nothing to restore, nothing to limit:
    what comes back is the input as loading leaves it (DC and drift removed), to 16-bit
    precision, at its own loudness."""
    x = signal()
    song = wav(tmp_path / "wave.wav", x)
    out = tmp_path / "out"
    y = assert_restored(cli("run", song, "--mode", "direct", "-o", out), out, 1, SR)
    assert np.max(np.abs(y - remove_dc(audio.read(song)[0], SR))) <= 2.0 / 32768
    report = json.loads((out / "report.json").read_text())["output"]
    assert report["loudness_gain_db"] == 0.0
    assert report["clip_action"] == "none"


def test_a_constant_dc_offset_is_gone_from_the_first_sample(tmp_path):
    """Issue case 5 asks for |mean| < 1e-4 and no start-up transient (a real stereo MusicGen file
    with an offset of -0.18 kept -0.0157); a constant offset already meets it."""
    x = music(2.0, sr=32000, channels=2) - 0.18
    song = wav(tmp_path / "dc.wav", x, 32000)
    out = tmp_path / "out"
    y = assert_restored(cli("run", song, "--mode", "direct", "-o", out), out, 2, 2 * SR)
    assert np.max(np.abs(y.mean(axis=1))) < 1e-4
    assert np.max(np.abs(y[:, : SR // 2].mean(axis=1))) < 1e-3


def test_a_96k_input_keeps_its_band_above_22k(tmp_path):
    """Issue case 6: the 25-45 kHz band came back 44-63 dB down, even in direct mode at the original rate."""
    sr = 96000
    t = np.arange(sr) / sr
    x = music(1.0, sr=sr)[:, 0] + 0.05 * np.sin(2 * np.pi * 30000 * t) + 0.05 * np.sin(2 * np.pi * 40000 * t)
    song = wav(tmp_path / "hi.wav", x[:, None], sr, subtype="PCM_24")
    out = tmp_path / "out"
    result = cli("run", song, "--mode", "direct", "--output-sr", "original", "-o", out)
    assert result.exit_code == 0, result.stderr
    y, info = audio.read(out / "restored.wav", sr=None)
    assert info.sample_rate == sr

    def band_db(z):
        spectrum = np.abs(np.fft.rfft(z[: sr])) ** 2
        f = np.fft.rfftfreq(sr, 1 / sr)
        return 10 * np.log10(spectrum[(f >= 25000) & (f <= 45000)].sum())

    assert abs(band_db(y[0]) - band_db(x)) <= 1.0


def test_a_32k_round_trip_through_a_transparent_chain_keeps_the_waveform(tmp_path):
    """Issue case 10: the resampler shifted the audio by a fraction of a sample (11-20 dB SI-SDR)."""
    from adaptive_argm.core.intrusive import si_sdr_db

    sr = 32000
    rng = np.random.default_rng(3)
    # Broadband, so a shift shows at the top; but ending at 14 kHz, below the transition band any
    # band-limited resampler has under 16 kHz (soxr's own round trip of noise up to 16 kHz scores 23 dB).
    noise = np.fft.rfft(rng.standard_normal(2 * sr))
    noise[np.fft.rfftfreq(2 * sr, 1 / sr) > 14000] = 0
    x = music(2.0, sr=sr)[:, 0] + 0.05 * np.fft.irfft(noise, 2 * sr)
    song = wav(tmp_path / "x32.wav", x[:, None], sr)
    y, _, _ = at_own_rate(song, PASSTHROUGH_PRESET, tmp_path / "out")
    assert si_sdr_db(y, (x - x.mean())[None].astype(np.float32)) >= 35.0


def at_own_rate(song: Path, preset: str, out: Path) -> tuple[np.ndarray, dict, str]:
    """`run --output-sr original` of `song` with the preset file holding `preset`: the output
    as written, its report and stdout."""
    (out.parent / f"{out.name}.toml").write_text(preset)
    result = cli("run", song, "--mode", "direct", "--preset-file", out.parent / f"{out.name}.toml",
                 "--output-sr", "original", "-o", out)
    assert result.exit_code == 0, result.stderr
    return audio.read(out / "restored.wav", sr=None)[0], json.loads((out / "report.json").read_text()), result.stdout


def test_an_unchanged_32k_result_at_its_own_rate_keeps_its_whole_band_and_says_how(tmp_path):
    """A round trip through 44.1 kHz loses 15.1-16 kHz of a 32 kHz file; a result that changed
    nothing beyond DC is the input itself, and the report says which of the two was written."""
    sr = 32000
    x = 0.05 * np.random.default_rng(4).standard_normal((2 * sr, 2)).astype(np.float32)  # up to 16 kHz
    song = wav(tmp_path / "x32.wav", x, sr)
    y, report, stdout = at_own_rate(song, PASSTHROUGH_PRESET, tmp_path / "out")
    assert report["output"]["sample_rate"] == sr and report["changed"] is False
    np.testing.assert_allclose(y, remove_dc(x.T, sr), atol=1e-7)
    assert "the input itself" in report["output"]["rate_note"] and "the input itself" in stdout
    y, report, _ = at_own_rate(song, 'name = "gain"\n[[steps]]\nkind = "pedalboard.Gain"\ngain_db = -6.0\n',
                               tmp_path / "gain")
    assert "band above 15.1 kHz is lost" in report["output"]["rate_note"]
    top = np.fft.rfftfreq(y.shape[1], 1 / sr) > 15600
    assert np.sum(np.abs(np.fft.rfft(y[0])[top]) ** 2) < 1e-3 * np.sum(np.abs(np.fft.rfft(x[:, 0])[top]) ** 2)


# --- two runs at once, and Ctrl-C in every command ----------------------------------------------

CLI = [sys.executable, "-m", "adaptive_argm"]
STAGING = ".adaptive-argm-staging-"


def start(args, *, cwd: Path | None = None, env: dict | None = None) -> subprocess.Popen:
    """The CLI in its own process group, as a terminal runs it. Ctrl-C is given back its default
    action first: a test run started in the background of a non-interactive shell inherits
    SIGINT ignored, and Python then never raises KeyboardInterrupt."""
    return subprocess.Popen([*CLI, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=cwd, env={**os.environ, **(env or {})}, start_new_session=True,
                            preexec_fn=_default_ctrl_c)


def _default_ctrl_c() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_two_runs_of_one_input_into_one_folder_both_end_with_a_whole_result(tmp_path):
    song = wav(tmp_path / "song.wav", music(8.0, channels=2))
    out = tmp_path / "out"
    procs = [start(["run", song, "--mode", "direct", "-o", out]) for _ in range(2)]
    errs = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errs
    assert set_files(out, "report.json") == {"restored.wav"}
    assert sorted(p.name for p in out.iterdir()) == ["report.json", "restored.wav"]


def test_two_runs_of_different_inputs_into_one_folder_never_mix(tmp_path):
    songs = [wav(tmp_path / "a.wav", music(8.0)), wav(tmp_path / "b.wav", music(9.0, channels=2))]
    out = tmp_path / "out"
    procs = [start(["run", s, "--mode", "direct", "-o", out]) for s in songs]
    errs = [p.communicate(timeout=300)[1] for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes in ([0, 1], [0, 2]), errs  # one result, and one clear refusal
    loser = errs[[p.returncode for p in procs].index(codes[1])]
    assert "another input" in loser and "Traceback" not in loser
    assert len([line for line in loser.splitlines() if line.strip()]) == 1
    report = json.loads((out / "report.json").read_text())
    y, _ = audio.read(out / "restored.wav", sr=None)
    assert y.shape == (report["input"]["channels"], round(report["input"]["duration_s"] * SR))
    assert set_files(out, "report.json") == {"restored.wav"}


def interrupt(proc: subprocess.Popen, ready, timeout_s: float = 240, signum: int = signal.SIGINT) -> tuple[int, str]:
    """Ctrl-C (SIGINT to the process group; or `signum`) once `ready()` says the command is
    producing its outputs; the exit code and stderr."""
    deadline = time.monotonic() + timeout_s
    while not ready():
        if proc.poll() is not None:
            pytest.fail(f"finished ({proc.returncode}) before it could be interrupted: {proc.stderr.read()}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("never became ready to interrupt")
        time.sleep(0.005)
    os.killpg(proc.pid, signum)
    _, err = proc.communicate(timeout=120)
    return proc.returncode, err


def new_paths(root: Path, before: dict) -> bool:
    return any(str(p.relative_to(root)) not in before for p in root.rglob("*"))


def assert_interrupt_told_the_truth(code: int, stderr: str, root: Path, before: dict,
                                    how: str = "interrupted") -> list[Path]:
    """Exit 130 (143 when terminated), one line saying what was kept, and nothing else of the run
    under `root`: everything that was there before is byte-identical; what is new lies in what
    the line names."""
    assert code == (143 if how == "terminated" else 130), stderr
    assert "Traceback" not in stderr
    line = [x for x in stderr.splitlines() if x.strip()][-1]
    prefix = f"{how}: kept what was finished before it ("
    kept = [Path(p) for p in line[len(prefix):].rsplit(")", 1)[0].split(", ")] if line.startswith(prefix) else []
    after = snapshot(root)
    left = [name for name in set(after) - set(before)
            if not any((root / name).resolve().is_relative_to(k.resolve()) or k.resolve().is_relative_to(root / name)
                       for k in kept)]
    assert not left, (line, sorted(left))  # files of the run that the line does not own up to
    for name, content in before.items():
        assert name in after, name
        assert after[name] == content or content is not None and kept, name  # only a kept result replaces
    assert line == f"{how}: nothing was written" or kept, line
    return kept


def test_ctrl_c_in_run_leaves_no_file_of_the_run_and_the_earlier_result_intact(tmp_path):
    song = wav(tmp_path / "song.wav", music(30.0, channels=2))
    out = tmp_path / "out"
    assert cli("run", song, "--mode", "direct", "-o", out).exit_code == 0
    (out / "notes.txt").write_text("mine")
    before = snapshot(tmp_path)
    code, err = interrupt(start(["run", song, "--mode", "direct", "-o", out]), lambda: new_paths(tmp_path, before))
    assert assert_interrupt_told_the_truth(code, err, tmp_path, before) == []


def test_sigterm_in_run_cleans_up_as_ctrl_c_does(tmp_path):
    """`kill` and `timeout` send SIGTERM: it used to end the run at once, leaving its staging
    folder and the output folder it had made."""
    song = wav(tmp_path / "song.wav", music(30.0, channels=2))
    before = snapshot(tmp_path)
    code, err = interrupt(start(["run", song, "--mode", "direct", "-o", tmp_path / "out"]),
                          lambda: new_paths(tmp_path, before), signum=signal.SIGTERM)
    assert assert_interrupt_told_the_truth(code, err, tmp_path, before, how="terminated") == []
    assert snapshot(tmp_path) == before


def test_ctrl_c_in_compare_while_its_files_are_written_leaves_none_of_them(tmp_path):
    """Issue case 2: SIGINT left a complete direct.wav without compare.json, and said "no
    partial output was left behind"."""
    stems = synthetic_stems(seconds=30.0, channels=2)
    song = audio.write(tmp_path / "song.wav", sum(stems.values()), SR)
    folder = write_stems(tmp_path / "stems", stems)
    before = snapshot(tmp_path)
    out = tmp_path / "cmp"
    proc = start(["compare", song, "--stems", folder, "-o", out])
    code, err = interrupt(proc, lambda: any(out.rglob("direct.wav")))
    kept = assert_interrupt_told_the_truth(code, err, tmp_path, before)
    if kept:  # the interrupt came as the set was committed: then it is whole
        assert set_files(out, "compare.json") >= {"direct.wav", "stemwise.wav", "routed.wav"}


def test_ctrl_c_in_a_batch_keeps_the_finished_file_and_leaves_nothing_of_the_next(tmp_path):
    songs = tmp_path / "songs"
    songs.mkdir()
    wav(songs / "a.wav", music(1.0))
    wav(songs / "b.wav", music(60.0, channels=2))
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    before = snapshot(tmp_path)
    proc = start(["run", songs, "--mode", "direct", "-o", out])
    code, err = interrupt(proc, lambda: (out / "a" / "report.json").is_file() and (out / "b").exists())
    kept = assert_interrupt_told_the_truth(code, err, tmp_path, before)
    assert set(kept) >= {out / "a", out / "batch.json"} and out / "b" not in kept
    assert not (out / "b").exists()
    record = json.loads((out / "batch.json").read_text())
    assert record["interrupted"] is True and [f["status"] for f in record["files"]] == ["done"]


def test_ctrl_c_in_eval_keeps_the_finished_clip_and_nothing_of_the_next(tmp_path):
    a, b = wav(tmp_path / "a.wav", music(1.0)), wav(tmp_path / "b.wav", music(60.0, channels=2))
    prompts = tmp_path / "set.toml"
    prompts.write_text("".join(f'[[clip]]\nid = "{p.stem}"\nprompt = "p"\ntags = []\naudio = "{p}"\n\n'
                               for p in (a, b)))
    out = tmp_path / "ev"
    before = snapshot(tmp_path)
    proc = start(["eval", prompts, "-o", out, "--no-figures"], env={"ADAPTIVE_ARGM_NETWORK_PROBE": OFFLINE_PROBE,
                                                                     "HF_HUB_OFFLINE": "1"})
    clips = out / "clips"
    code, err = interrupt(proc, lambda: (clips / "a" / "clip.json").is_file() and (clips / "b").exists())
    kept = assert_interrupt_told_the_truth(code, err, tmp_path, before)
    assert clips / "a" in kept and not (clips / "b").exists() and not (out / "results.json").exists()


def test_ctrl_c_in_benchmark_leaves_no_table(tmp_path):
    clean = tmp_path / "clean"
    clean.mkdir()
    wav(clean / "song.wav", music(20.0, channels=2))
    out = tmp_path / "bench"
    out.mkdir()
    (out / "other-results.md").write_text("mine")
    before = snapshot(tmp_path)
    proc = start(["benchmark", "--no-corpus", "--clean", clean, "--degrade", "white-45,codec", "--presets", "adaptive",
                  "--modes", "direct", "--jobs", "1", "-o", out])
    code, err = interrupt(proc, lambda: new_paths(tmp_path, before))
    assert assert_interrupt_told_the_truth(code, err, tmp_path, before) == []


def test_ctrl_c_in_metrics_says_nothing_was_written(tmp_path):
    song = wav(tmp_path / "long.wav", music(120.0, channels=2))
    before = snapshot(tmp_path)
    proc = start(["metrics", song], cwd=tmp_path)

    def reading() -> bool:  # metrics writes nothing: its marker is the input held open
        try:
            return any(os.readlink(fd) == str(song) for fd in Path(f"/proc/{proc.pid}/fd").iterdir())
        except OSError:
            return False

    code, err = interrupt(proc, reading)
    assert assert_interrupt_told_the_truth(code, err, tmp_path, before) == []


def test_ctrl_c_in_demo_leaves_no_song_half_written(tmp_path):
    out = tmp_path / "demo-out"
    before = snapshot(tmp_path)
    proc = start(["demo", "-o", out, "--seconds", "20", "--no-figures"], env={"ADAPTIVE_ARGM_NETWORK_PROBE": OFFLINE_PROBE,
                                                                             "HF_HUB_OFFLINE": "1"})
    code, err = interrupt(proc, lambda: new_paths(tmp_path, before))
    kept = assert_interrupt_told_the_truth(code, err, tmp_path, before)
    for folder in kept:  # a song finished before the interrupt is whole
        set_files(folder, "compare.json")


def test_ctrl_c_in_corpus_leaves_no_folder(tmp_path):
    source = wav(tmp_path / "track.wav", music(40.0, channels=2))
    before = snapshot(tmp_path)
    proc = start(["corpus", "real", source, "-o", tmp_path / "corpus"])
    code, err = interrupt(proc, lambda: new_paths(tmp_path, before))
    assert assert_interrupt_told_the_truth(code, err, tmp_path, before) == []


def test_ctrl_c_in_models_fetch_while_downloading_leaves_no_file(tmp_path):
    """A local server stands in for the model hosts: it answers the network probe, then holds
    the download open until the interrupt."""
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    connections: list[socket.socket] = []

    def accept():
        while True:
            try:
                connections.append(server.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    env = {"ADAPTIVE_ARGM_NETWORK_PROBE": f"127.0.0.1:{port}", "HF_ENDPOINT": f"http://127.0.0.1:{port}",
           "HF_HOME": str(tmp_path / "hf"), "TORCH_HOME": str(tmp_path / "torch"), "HF_HUB_OFFLINE": "0"}
    work = tmp_path / "work"
    work.mkdir()
    before = snapshot(work)
    try:
        proc = start(["models", "fetch", "htdemucs", "--to", work / "models"], env=env)
        code, err = interrupt(proc, lambda: len(connections) >= 2)  # the probe, then the download
    finally:
        server.close()
        for c in connections:
            c.close()
    assert assert_interrupt_told_the_truth(code, err, work, before) == []


@pytest.mark.parametrize("args, words", [
    (["run", "--bogus"], "No such option: --bogus"),
    (["run", "x.wav", "--target-lufs", "abc"], "--target-lufs"),
    (["nosuchcommand"], "No such command"),
    (["models", "fetch"], "Missing argument"),
])
def test_the_command_lines_own_usage_errors_are_one_line_too(tmp_path, args, words):
    """click's parser errors, before any command runs, as the program itself prints them."""
    done = subprocess.run([*CLI, *args], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and words in lines[0], done.stderr
    assert "Traceback" not in done.stderr and not list(tmp_path.iterdir())


def test_a_reference_of_another_length_is_refused_not_cropped(tmp_path):
    x = music(2.0)
    song, half = wav(tmp_path / "song.wav", x), wav(tmp_path / "half.wav", x[: len(x) // 2])
    line = one_line(cli("metrics", song, "--ref", half, "--json"), 1)
    assert "--ref lasts 1.00 s and the input 2.00 s" in line
    line = one_line(cli("compare", song, "--ref", half, "--no-figures", "-o", tmp_path / "out"), 1)
    assert "--ref lasts" in line and not (tmp_path / "out").exists()
    scored = cli("metrics", song, "--ref", song, "--json")  # the same clip is scored
    assert scored.exit_code == 0 and json.loads(scored.stdout)["si_sdr_db"] is None  # identical: +inf


def test_flac_asked_of_more_channels_than_it_holds_is_refused_before_any_work(tmp_path):
    song = wav(tmp_path / "ten.wav", np.tile(music(0.5), (1, 10)))
    line = one_line(cli("run", song, "--mode", "direct", "--format", "flac", "-o", tmp_path / "out"), 2)
    assert "ten.wav: FLAC holds at most 8 channels and it has 10" in line and not (tmp_path / "out").exists()
    assert cli("run", song, "--mode", "direct", "-o", tmp_path / "out").exit_code == 0  # its own WAV holds them
    stereo = wav(tmp_path / "stereo.wav", np.tile(music(0.5), (1, 2)))
    result = cli("run", song, stereo, "--mode", "direct", "--format", "flac", "-o", tmp_path / "batch")
    assert result.exit_code == 1  # a batch fails that file alone
    files = {Path(f["input"]).name: f for f in json.loads((tmp_path / "batch" / "batch.json").read_text())["files"]}
    assert files["stereo.wav"]["status"] == "done" and "FLAC holds at most 8" in files["ten.wav"]["error"]


def test_stems_given_to_a_direct_run_are_said_to_be_unused(tmp_path):
    song = wav(tmp_path / "song.wav", music(0.5))
    (tmp_path / "stems").mkdir()
    result = cli("run", song, "--mode", "direct", "--stems", tmp_path / "stems", "-o", tmp_path / "out")
    assert result.exit_code == 0, result.stderr
    assert "mode direct restores the mix itself" in result.stderr and "not used" in result.stderr
    assert "not used" in json.loads((tmp_path / "out" / "report.json").read_text())["separator"]["notice"]


def test_a_batch_over_a_folder_leaves_out_what_earlier_runs_wrote_there_and_says_so(tmp_path):
    songs = tmp_path / "songs"
    songs.mkdir()
    for name in ("a", "b"):
        wav(songs / f"{name}.wav", music(0.4))
    assert cli("run", songs, "--mode", "direct", "-o", songs).exit_code == 0  # results beside the songs
    assert (songs / "a" / "restored.wav").is_file()
    result = cli("run", songs, "--recursive", "--mode", "direct", "-o", tmp_path / "elsewhere")
    assert result.exit_code == 0, result.stderr
    assert "left out 2 file(s) that earlier runs wrote" in result.stderr
    files = json.loads((tmp_path / "elsewhere" / "batch.json").read_text())["files"]
    assert sorted(Path(f["input"]).name for f in files) == ["a.wav", "b.wav"]
    again = cli("run", songs / "a" / "restored.wav", songs / "b.wav", "--mode", "direct", "-o", tmp_path / "named")
    assert again.exit_code == 0 and "left out" not in again.stderr  # a file named itself is restored
    line = one_line(cli("run", songs / "a", songs / "b", "--mode", "direct", "-o", tmp_path / "none"), 2)
    assert "nothing to restore: the 2 audio file(s) found are results of earlier runs" in line
    assert not (tmp_path / "none").exists()


def test_ctrl_c_while_the_commands_load_is_one_line_and_exit_130(tmp_path):
    """The program loads its commands (numpy, scipy, pedalboard, torch) for a second or two; a
    Ctrl-C landing then printed the import chain's traceback. Here it lands in that import."""
    code = ("import builtins, sys\n"
            "real = builtins.__import__\n"
            "def slow(name, globals=None, locals=None, fromlist=(), level=0):\n"
            "    if name == 'cli' and level == 1:\n"
            "        raise KeyboardInterrupt\n"
            "    return real(name, globals, locals, fromlist, level)\n"
            "builtins.__import__ = slow\n"
            "sys.argv = ['adaptive-argm', 'run', 'song.wav']\n"
            "from adaptive_argm.launch import main\n"
            "main()\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 130
    assert done.stderr.strip() == "interrupted: nothing was written" and not list(tmp_path.iterdir())


def test_keep_stems_into_a_folder_holding_a_stem_file_that_is_not_its_own_is_refused_before_any_work(tmp_path):
    stems = synthetic_stems(seconds=1.0)
    song = audio.write(tmp_path / "song.wav", sum(stems.values()), SR)
    folder = write_stems(tmp_path / "stems", stems)
    out = tmp_path / "out"
    assert cli("run", song, "--stems", folder, "--mode", "direct", "-o", out).exit_code == 0
    (out / "stems").mkdir()
    (out / "stems" / "bass.restored.wav").write_bytes(b"left by something else")
    before = snapshot(tmp_path)
    line = one_line(cli("run", song, "--stems", folder, "--mode", "stemwise", "--keep-stems", "-o", out), 2)
    assert "stems/bass.restored.wav" in line and "not part of an earlier result" in line
    assert snapshot(tmp_path) == before
