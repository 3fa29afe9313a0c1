"""`adaptive-argm metrics` as a user runs it: the panel as a table or flat JSON, intrusive scores
with --ref, and one-line errors."""

from __future__ import annotations

import json
from dataclasses import fields

import numpy as np
import pytest
from typer.testing import CliRunner

from adaptive_argm.core import audio
from adaptive_argm.cli import app
from adaptive_argm.core.metrics import MetricPanel

from conftest import SR, synthetic_stems

PANEL_KEYS = {f.name for f in fields(MetricPanel)}
NOISE_REL_DB = -30.0


@pytest.fixture(scope="module")
def clean_and_noisy(tmp_path_factory):
    folder = tmp_path_factory.mktemp("metrics")
    clean = np.sum(list(synthetic_stems(seconds=2.0).values()), axis=0).astype(np.float32)
    noise = np.random.default_rng(0).standard_normal(clean.shape).astype(np.float32)
    noise *= np.sqrt(np.mean(clean**2) / np.mean(noise**2)) * 10 ** (NOISE_REL_DB / 20)
    return audio.write(folder / "clean.wav", clean, SR), audio.write(folder / "noisy.wav", clean + noise, SR)


def metrics_cli(*args):
    return CliRunner().invoke(app, ["metrics", *map(str, args)])


def test_json_output_is_one_flat_object_with_the_panel_keys(clean_and_noisy):
    _, noisy = clean_and_noisy
    r = metrics_cli(noisy, "--json")
    assert r.exit_code == 0, r.output
    panel = json.loads(r.stdout)  # nothing but the JSON on stdout
    assert set(panel) == PANEL_KEYS
    assert all(v is None or isinstance(v, (int, float)) for v in panel.values())
    assert isinstance(panel["p25_paper_db"], float)
    assert panel["si_sdr_db"] is None  # needs a reference


def test_reference_fills_si_sdr_near_the_added_noise_level(clean_and_noisy):
    clean, noisy = clean_and_noisy
    panel = json.loads(metrics_cli(noisy, "--ref", clean, "--json").stdout)
    assert panel["si_sdr_db"] == pytest.approx(-NOISE_REL_DB, abs=1.0)
    assert isinstance(panel["lsd_db"], float) and panel["lsd_db"] > 0


def test_reference_adds_visqol_which_ranks_the_noisy_file_below_the_clean_one(clean_and_noisy):
    pytest.importorskip("visqol")
    clean, noisy = clean_and_noisy
    noisy_panel = json.loads(metrics_cli(noisy, "--ref", clean, "--json").stdout)
    clean_panel = json.loads(metrics_cli(clean, "--ref", clean, "--json").stdout)
    assert 1.0 <= noisy_panel["visqol_moslqo"] < clean_panel["visqol_moslqo"] - 0.5
    assert clean_panel["visqol_moslqo"] <= 5.0
    r = metrics_cli(noisy, "--ref", clean)
    assert r.exit_code == 0 and "visqol_moslqo" in r.stdout
    assert noisy_panel["visqol_misplaced"] == 0.0 and "misreading" not in r.output


def test_a_misread_visqol_score_comes_with_a_warning(tmp_path):
    """Bass notes under hiss 5 dB down: ViSQOL matches its patches elsewhere and scores high;
    the panel says what share was misplaced and the command warns in one line."""
    pytest.importorskip("visqol")
    from test_visqol import bass_notes

    bass = bass_notes()
    hissy = bass + np.random.default_rng(3).standard_normal(bass.shape).astype(np.float32) * 10 ** (-45 / 20)
    clean, noisy = audio.write(tmp_path / "bass.wav", bass, SR), audio.write(tmp_path / "hiss.wav", hissy, SR)
    panel = json.loads(metrics_cli(noisy, "--ref", clean, "--json").stdout)
    assert panel["visqol_misplaced"] >= 0.5
    r = metrics_cli(noisy, "--ref", clean)
    assert r.exit_code == 0 and "visqol_moslqo of the file is a misreading" in r.output


def test_table_lists_the_panel_and_leaves_out_intrusive_rows_without_reference(clean_and_noisy):
    _, noisy = clean_and_noisy
    r = metrics_cli(noisy)
    assert r.exit_code == 0, r.output
    for key in ("p25_paper_db", "noise_floor_db", "loudness_lufs", "floor_fraction"):
        assert key in r.stdout
    assert "si_sdr_db" not in r.stdout and "visqol_moslqo" not in r.stdout


def test_unreadable_file_is_one_line_on_stderr_and_exit_1(tmp_path):
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF not really a wave file")
    r = metrics_cli(bad, "--json")
    assert r.exit_code == 1
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "broken.wav" in lines[0]
