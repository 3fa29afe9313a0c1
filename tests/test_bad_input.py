"""Bad and odd input through the real CLI: every case ends in a correct output (right channels
and length, finite samples, report.json) or one clear line on stderr with exit code 1 and no
partial output. Never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from adaptive_argm.core import audio
from adaptive_argm.cli import app

from conftest import SR, synthetic_stems, write_stems

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


def assert_restored(result, out: Path, channels: int, frames_at_work_sr: float) -> np.ndarray:
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 0, result.stderr
    assert "Traceback" not in result.stderr
    report = json.loads((out / "report.json").read_text())
    y, info = audio.read(out / "restored.wav", sr=None)
    assert info.sample_rate == SR
    assert y.shape[0] == channels
    assert abs(y.shape[1] - frames_at_work_sr) <= 1
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


@pytest.mark.parametrize("frames", [1, 100, 2047], ids=["1 sample", "100 samples", "shorter than one FFT frame"])
def test_very_short_input_is_restored_at_its_own_length(tmp_path, frames):
    x = music(1.0)[:frames]
    song = wav(tmp_path / "short.wav", x)
    out = tmp_path / "out"
    y = assert_restored(cli("run", song, "--mode", "direct", "-o", out), out, 1, frames)
    assert y.shape == (1, frames)


@pytest.mark.parametrize("channels", [3, 6])
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
