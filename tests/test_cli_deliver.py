"""Delivery through the CLI: `--target-lufs -14` lands on target under the true-peak ceiling on the
dev clips and on a loud and a quiet synthetic clip, 16-bit output is dithered (a -96 dBFS floor and
no truncation harmonics on a -80 dBFS sine), every format reads back as written, the default
format is the input's own, `--residual` writes what was removed, and a result that changed
nothing says so (`changed: false`, with why)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import soundfile
from typer.testing import CliRunner

from adaptive_argm.cli import app
from adaptive_argm.config import MODE_LABELS
from adaptive_argm.core import audio, deliver
from adaptive_argm.core.levels import loudness_lufs
from adaptive_argm.core.resample import resample
from adaptive_argm.core.dc import remove_dc
from adaptive_argm.evaluation.signals import harmonic_excess_db, loud_dense_mix, noise, quiet_sparse_mix

from conftest import SONGS, SR, music_like

RUNNER = CliRunner()
TARGET_LUFS, CEILING_DBTP, GOAL_LU = -14.0, -1.0, 0.3


def cli(*args):
    return RUNNER.invoke(app, [str(a) for a in args], catch_exceptions=True)


def ok(result):
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 0, result.stderr
    return result


def report(folder) -> dict:
    return json.loads((folder / "report.json").read_text())


def exact(path) -> np.ndarray:
    """A file as its integer or float samples say (k / 2**(bits-1)), `(channels, samples)` float64."""
    return soundfile.read(str(path), dtype="float64", always_2d=True)[0].T


def hiss(x: np.ndarray, level_dbfs: float = -45.0, seed: int = 5) -> np.ndarray:
    return (x + 10 ** (level_dbfs / 20) * np.random.default_rng(seed).standard_normal(x.shape)).astype(np.float32)


# --- the loudness target --------------------------------------------------------------------


def assert_on_target(out, rep):
    y = exact(out / "restored.wav")
    assert abs(loudness_lufs(y.astype(np.float32), SR) - TARGET_LUFS) <= GOAL_LU
    assert deliver.true_peak_dbtp(y.astype(np.float32)) <= CEILING_DBTP
    t = rep["output"]["loudness_target"]
    assert t["target_lufs"] == TARGET_LUFS and t["ceiling_dbtp"] == CEILING_DBTP and t["status"] == "reached"
    assert rep["output"]["loudness_lufs"] == pytest.approx(loudness_lufs(y.astype(np.float32), SR), abs=0.01)
    assert rep["output"]["true_peak_dbtp"] <= CEILING_DBTP
    assert rep["changed"] is True and any("loudness target" in r for r in rep["change"]["reasons"])


@pytest.mark.parametrize("name, make", [("loud", loud_dense_mix), ("quiet", quiet_sparse_mix)])
def test_target_lufs_lands_on_target_under_the_ceiling_on_loud_and_quiet_clips(tmp_path, name, make):
    song = audio.write(tmp_path / f"{name}.wav", make(), SR)
    out = tmp_path / "out"
    r = ok(cli("run", song, "--mode", "direct", "--target-lufs", TARGET_LUFS, "--true-peak-db", CEILING_DBTP, "-o", out))
    assert_on_target(out, report(out))
    assert "LUFS" in r.stdout and "true peak" in r.stdout


@pytest.mark.parametrize("song", SONGS)
def test_target_lufs_lands_on_target_under_the_ceiling_on_the_dev_clips(corpus, tmp_path, song):
    out = tmp_path / song
    ok(cli("run", corpus / song / "mixed.wav", "--mode", "direct", "--target-lufs", TARGET_LUFS, "-o", out))
    assert_on_target(out, report(out))


def test_target_at_another_output_rate_is_measured_and_held_there(tmp_path):
    x = resample(loud_dense_mix(seconds=3.0), SR, 32000)
    song = audio.write(tmp_path / "loud32.wav", x, 32000)
    out = tmp_path / "out"
    ok(cli("run", song, "--mode", "direct", "--target-lufs", TARGET_LUFS, "--output-sr", "original", "-o", out))
    y = exact(out / "restored.wav").astype(np.float32)
    assert report(out)["output"]["sample_rate"] == 32000
    assert deliver.true_peak_dbtp(y) <= CEILING_DBTP
    assert abs(loudness_lufs(y, 32000) - TARGET_LUFS) <= GOAL_LU


# --- bit depth, dither, formats -------------------------------------------------------------


def test_sixteen_bit_output_is_dithered_to_a_minus_96_dbfs_floor_without_truncation_harmonics(tmp_path):
    t = np.arange(4 * SR) / SR
    x = (10 ** (-80 / 20) * np.sin(2 * np.pi * 1000.0 * t))[None].astype(np.float32)
    song = audio.write(tmp_path / "sine.wav", x, SR)
    out = tmp_path / "out"
    ok(cli("run", song, "--mode", "direct", "--bits", "16", "-o", out))
    rep = report(out)
    assert (rep["output"]["format"], rep["output"]["bits"], rep["output"]["dither"]) == ("wav", "16", "tpdf")
    assert rep["changed"] is False  # the -80 dBFS sine itself is left alone: only the file's depth changes
    y = exact(out / "restored.wav")
    floor_dbfs = 10 * math.log10(np.mean((y - x) ** 2))
    assert floor_dbfs == pytest.approx(20 * math.log10(2.0 ** -16), abs=0.5)  # -96.3 dBFS
    assert max(harmonic_excess_db(y, SR, 1000.0)) < 3.0
    # the same sine truncated without dither shows its harmonics: the check can fail
    assert max(harmonic_excess_db(deliver.quantize(x, 16, dither=False)[0], SR, 1000.0)) > 20.0


@pytest.mark.parametrize("container, bits", [("wav", "16"), ("wav", "24"), ("wav", "32f"), ("flac", "16"),
                                             ("flac", "24")])
def test_every_format_reads_back_as_the_restored_float_within_its_bit_depth(tmp_path, container, bits):
    x = music_like(1.0, seed=3)[None] * np.float32(0.5)
    song = audio.write(tmp_path / "clip.wav", x, SR)
    out = tmp_path / "out"
    ok(cli("run", song, "--mode", "direct", "--format", container, "--bits", bits, "-o", out))
    rep = report(out)
    assert rep["changed"] is False  # so the restored float is the input itself (within 1e-6)
    path = out / f"restored.{container}"
    assert rep["output"]["path"].endswith(path.name) and rep["result_set"]["files"] == [path.name]
    fmt = deliver.OutputFormat(container, bits)
    error = np.abs(exact(path) - remove_dc(x, SR))
    assert error.max() <= (1.5 if fmt.dither else 0.5) * fmt.lsb + 2e-6


@pytest.mark.parametrize("subtype, suffix, expected", [("PCM_16", "wav", ("wav", "16", "tpdf")),
                                                       ("PCM_24", "flac", ("flac", "24", "none")),
                                                       ("FLOAT", "wav", ("wav", "32f", "none")),
                                                       ("PCM_32", "wav", ("wav", "24", "none"))])
def test_default_format_is_the_inputs_own_where_it_holds_the_result(tmp_path, subtype, suffix, expected):
    song = tmp_path / f"in.{suffix}"
    soundfile.write(str(song), 0.3 * music_like(1.0).astype(np.float64), SR, subtype=subtype)
    out = tmp_path / "out"
    r = ok(cli("run", song, "--mode", "direct", "-o", out))
    o = report(out)["output"]
    assert (o["format"], o["bits"], o["dither"]) == expected and (out / f"restored.{expected[0]}").is_file()
    assert o["format_reason"] in r.stdout


def test_a_result_above_full_scale_goes_float_by_default_and_is_refused_by_pcm(tmp_path):
    x = 4.0 * music_like(1.0)[None]  # peaks at +2 dBFS
    song = audio.write(tmp_path / "over.wav", x, SR)
    out = tmp_path / "out"
    ok(cli("run", song, "--mode", "direct", "--clip-mode", "none", "--format", "wav", "-o", out))
    assert report(out)["output"]["bits"] == "32f"
    refused = cli("run", song, "--mode", "direct", "--clip-mode", "none", "--bits", "24", "-o", tmp_path / "o2")
    assert refused.exit_code == 1 and "above full scale" in refused.stderr and "Traceback" not in refused.stderr
    assert not (tmp_path / "o2").exists()


@pytest.mark.parametrize("args, flag", [(("--format", "mp3"), "--format"), (("--bits", "8"), "--bits"),
                                        (("--format", "flac", "--bits", "32f"), "--bits"),
                                        (("--target-lufs", "3"), "--target-lufs"),
                                        (("--target-lufs", "-14", "--true-peak-db", "2"), "--true-peak-db")])
def test_bad_delivery_options_are_usage_errors_naming_the_flag(tmp_path, args, flag):
    song = audio.write(tmp_path / "s.wav", music_like(0.5)[None], SR)
    r = cli("run", song, "--mode", "direct", *args, "-o", tmp_path / "o")
    assert r.exit_code == 2, r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and flag in lines[0]
    assert not (tmp_path / "o").exists()


# --- residual ---------------------------------------------------------------------------------


def test_residual_is_what_the_restoration_removed_as_float_wav(tmp_path):
    x = hiss(music_like(3.0, seed=1)[None])
    song = audio.write(tmp_path / "noisy.wav", x, SR)
    out = tmp_path / "out"
    r = ok(cli("run", song, "--mode", "direct", "--residual", "-o", out))
    rep = report(out)
    assert rep["changed"] is True and sorted(rep["result_set"]["files"]) == ["residual.wav", "restored.wav"]
    assert rep["residual"]["bits"] == "32f" and rep["residual"]["sample_rate"] == SR
    assert soundfile.info(str(out / "residual.wav")).subtype == "FLOAT"
    residual, restored = exact(out / "residual.wav"), exact(out / "restored.wav")
    np.testing.assert_allclose(residual, restored - remove_dc(x, SR), atol=2e-6)
    assert -60.0 < 10 * np.log10(np.mean(residual ** 2)) < -45.0  # part of the -45 dBFS hiss that was added
    assert "residual.wav" in r.stdout


def test_residual_comes_before_the_loudness_target_gain(tmp_path):
    x = hiss(0.1 * music_like(3.0, seed=2)[None])
    song = audio.write(tmp_path / "noisy.wav", x, SR)
    out = tmp_path / "out"
    ok(cli("run", song, "--mode", "direct", "--residual", "--target-lufs", "-14", "-o", out))
    residual = exact(out / "residual.wav")
    assert 10 * np.log10(np.mean(residual ** 2)) < -40.0  # the removed hiss, not the +10 dB target gain


def test_compare_writes_a_residual_per_mode(tmp_path, offline):
    x = hiss(music_like(2.0, seed=4)[None])
    song = audio.write(tmp_path / "noisy.wav", x, SR)
    out = tmp_path / "cmp"
    r = ok(cli("compare", song, "--residual", "--no-figures", "--format", "flac", "-o", out))
    cmp = json.loads((out / "compare.json").read_text())
    for mode, o in cmp["outputs"].items():
        assert o["path"].endswith(f"{mode}.flac") and o["residual"]["path"].endswith(f"residual-{mode}.wav")
        assert (out / f"residual-{mode}.wav").is_file()
        label = MODE_LABELS[mode]
        # each result says what it was written as, how loud, and whether it changed the input
        assert f"{label}: wrote {o['path']}: flac" in r.stdout and f"{label}: changed: true" in r.stdout
        assert f"residual-{mode}.wav" in r.stdout


# --- the honest no-op -------------------------------------------------------------------------


def test_a_clean_clip_comes_back_unchanged_and_says_why(tmp_path):
    song = audio.write(tmp_path / "clean.wav", music_like(3.0)[None] + np.float32(0.05), SR)  # a DC offset too
    out = tmp_path / "out"
    r = ok(cli("run", song, "--mode", "direct", "-o", out))
    rep = report(out)
    assert rep["changed"] is False and rep["change"]["max_abs_diff"] <= 1e-6 and rep["change"]["agree"]
    assert any(line.startswith("wiener on mix: no steady hiss found") for line in rep["change"]["reasons"])
    assert "changed: false" in r.stdout and "no steady hiss found" in r.stdout


def test_a_noisy_clip_is_changed_and_the_denoiser_says_how_much_it_removed(tmp_path):
    song = audio.write(tmp_path / "noisy.wav", hiss(music_like(3.0)[None]), SR)
    out = tmp_path / "out"
    r = ok(cli("run", song, "--mode", "direct", "-o", out))
    rep = report(out)
    wiener = next(s for s in rep["change"]["steps"] if s["step"] == "wiener")
    assert rep["changed"] is True and wiener["acted"] and -40 < wiener["removed_db"] < -10
    assert "changed: true" in r.stdout


def test_the_papers_chain_always_changes_the_clip(tmp_path):
    song = audio.write(tmp_path / "clean.wav", music_like(2.0)[None], SR)
    out = tmp_path / "out"
    ok(cli("run", song, "--mode", "direct", "--preset", "paper", "-o", out))
    rep = report(out)
    assert rep["changed"] is True and all(s["acted"] for s in rep["change"]["steps"])


def test_batch_counts_unchanged_files(tmp_path):
    folder = tmp_path / "in"
    audio.write(folder / "clean.wav", music_like(2.0)[None], SR)
    audio.write(folder / "noisy.wav", hiss(music_like(2.0, seed=1)[None]), SR)
    r = ok(cli("run", folder, "--mode", "direct", "--format", "flac", "-o", tmp_path / "out"))
    record = json.loads((tmp_path / "out" / "batch.json").read_text())
    assert record["counts"]["unchanged"] == 1 and "1 unchanged" in r.stdout
    assert {f["changed"] for f in record["files"]} == {True, False}
    again = ok(cli("run", folder, "--mode", "direct", "--format", "flac", "-o", tmp_path / "out"))
    record = json.loads((tmp_path / "out" / "batch.json").read_text())  # resumed: found by the manifest
    assert record["counts"] == {"done": 0, "skipped": 2, "failed": 0, "unchanged": 1}, again.stdout
    assert (tmp_path / "out" / "clean" / "restored.flac").is_file()


def test_short_input_tells_why_the_denoiser_did_nothing(tmp_path):
    song = audio.write(tmp_path / "tiny.wav", noise(1, 0.01, level=0.1), SR)
    out = tmp_path / "out"
    ok(cli("run", song, "--mode", "direct", "-o", out))
    assert any("shorter than one 2048-sample analysis frame" in s for s in report(out)["change"]["reasons"])
