"""One rule for the best marks and the shown values, in the CLI's tables and the listening page:
ties as shown, no mark for a result worse than the input, none when all show the same, and
"identical" for a perfect score instead of 150 dB; the figures' difference panel and stem labels."""

from __future__ import annotations

import json

import numpy as np
import pytest
from rich.console import Console
from typer.testing import CliRunner

from adaptive_argm.cli import app
from adaptive_argm.cli.tables import metrics_table
from adaptive_argm.core import audio, figures, ranking
from adaptive_argm.core.intrusive import SCORE_CEILING_DB

from conftest import SR, music_like, synthetic_stems, write_stems


def test_perfect_scores_read_identical_not_150_db():
    assert ranking.shown("si_sdr_db", 152.10) == ranking.shown("si_sdr_db", 133.34) == "identical"
    assert ranking.shown("quiet_frame_snr_db", SCORE_CEILING_DB) == "identical"
    assert ranking.shown("si_sdr_db", None, identical=True) == "identical"  # an exact copy: +inf, stored as null
    assert ranking.shown("si_sdr_db", 59.994) == "59.99" and ranking.shown("si_sdr_db", None) == "–"
    assert ranking.shown("lsd_db", 152.1) == "152.10"  # only the scores that grow without bound
    assert ranking.shown("silent_frame_fraction", 0.125) == "12.5%"
    assert ranking.shown("bandwidth_hz", 15980.0) == "15.98 kHz"


def test_identical_results_tie_and_so_carry_no_mark_when_all_are_identical():
    assert ranking.best("si_sdr_db", {"direct": 152.1, "routed": 133.3}, None) == set()
    assert ranking.best("si_sdr_db", {"direct": 152.1, "routed": 30.0}, 20.0) == {"direct"}


def test_a_result_worse_than_the_input_gets_no_mark():
    assert ranking.best("si_sdr_db", {"direct": 23.24, "stemwise": 23.22, "routed": 23.20}, 23.69) == set()
    assert ranking.best("si_sdr_db", {"direct": 23.24, "stemwise": 23.22, "routed": 23.20}, 23.0) == {"direct"}
    assert ranking.best("noise_floor_db", {"direct": -40.0, "routed": -45.0}, -50.0) == set()
    # as good as the input, and the best: marked
    assert ranking.best("noise_floor_db", {"direct": -50.0, "routed": -45.0}, -50.0) == {"direct"}


def test_ties_are_judged_as_shown_and_all_marked():
    assert ranking.best("noise_floor_db", {"direct": -50.001, "stemwise": -50.004, "routed": -49.0}, -30.0) == \
        {"direct", "stemwise"}
    assert ranking.best("p95_db", {"direct": -20.001, "stemwise": -19.998, "routed": -20.003}, -20.0) == set()


def test_closer_to_input_ranks_distance_and_never_compares_with_the_input_itself():
    assert ranking.best("loudness_lufs", {"direct": -30.0, "routed": -23.0}, -24.0) == {"routed"}


def _cells(table, row: str) -> list[str]:
    console = Console(record=True, width=200)
    console.print(table)
    line = next(ln for ln in console.export_text().splitlines() if ln.split("│")[0].strip() == row)
    return [c.strip() for c in line.split("│")][1:]


def test_the_cli_table_uses_the_same_rule_and_says_identical():
    cols = {"input": {"si_sdr_db": 23.69, "noise_floor_db": -30.0},
            "direct": {"si_sdr_db": 23.24, "noise_floor_db": -50.001},
            "stem-wise": {"si_sdr_db": 152.10, "noise_floor_db": -50.004},
            "routed": {"si_sdr_db": None, "noise_floor_db": -49.0}}
    table = metrics_table(cols, identical={"routed": True})
    assert _cells(table, "si_sdr_db") == ["23.69", "23.24", "identical *", "identical *"]
    assert _cells(table, "noise_floor_db") == ["-30.00", "-50.00 *", "-50.00 *", "-49.00"]


def test_a_misread_visqol_score_is_never_marked_best():
    """ViSQOL that matched its patches to other music (visqol_misplaced > 0) reads high for the
    wrong reason: that output gets no mark, and a misread input leaves the row unmarked."""
    cols = {"input": {"visqol_moslqo": 2.0, "visqol_misplaced": 0.0},
            "direct": {"visqol_moslqo": 3.9, "visqol_misplaced": 0.5},
            "stem-wise": {"visqol_moslqo": 3.1, "visqol_misplaced": 0.0},
            "routed": {"visqol_moslqo": 2.8, "visqol_misplaced": 0.0}}
    assert _cells(metrics_table(cols), "visqol_moslqo") == ["2.00", "3.90", "3.10 *", "2.80"]
    cols["input"] = {"visqol_moslqo": 3.7, "visqol_misplaced": 1.0}
    assert _cells(metrics_table(cols), "visqol_moslqo") == ["3.70", "3.90", "3.10", "2.80"]


def test_compare_against_its_own_input_prints_identical(tmp_path, offline):
    song = audio.write(tmp_path / "clean.wav", music_like(2.0)[None], SR)
    out = tmp_path / "cmp"
    r = CliRunner().invoke(app, ["compare", str(song), "--ref", str(song), "--no-figures", "-o", str(out)])
    assert r.exit_code == 0, r.stderr
    doc = json.loads((out / "compare.json").read_text())
    assert doc["identical_to_reference"]["input"] is True  # the input IS its reference: +inf, null in JSON
    assert doc["metrics"]["input"]["si_sdr_db"] is None
    # the unchanged results differ from it by float rounding only: well over the ceiling (about 150 dB)
    assert all(doc["metrics"][m]["si_sdr_db"] is None or doc["metrics"][m]["si_sdr_db"] >= SCORE_CEILING_DB
               for m in ("direct", "routed"))
    row = next(ln for ln in r.stdout.splitlines() if ln.split("│")[0].strip() == "si_sdr_db")
    table = "\n".join(ln for ln in r.stdout.splitlines() if "│" in ln)  # not the paths: pytest-150 is a folder
    assert "identical" in row and "*" not in row and "150" not in table


def test_the_difference_panel_shows_what_was_removed_at_its_own_level():
    x = music_like(2.0)[None]
    hiss = (10 ** (-60 / 20) * np.random.default_rng(0).standard_normal(x.shape)).astype(np.float32)
    image = figures.difference_image_db(x + hiss, x, SR)
    music = figures.mel_image_db(x, SR)
    # mel power of white noise at -60 dBFS: about -60 - 10 log10(bins / fft normalisation)...
    # what matters: the removed hiss shows, far under the music and flat across the top bands
    top = image[:, 100:].mean()
    assert music.max() - image.max() > 20 and abs(image[:, 100:].mean(axis=0) - top).max() < 3
    stereo = np.stack([x[0], 0.5 * x[0]])
    assert np.allclose(figures.difference_image_db(stereo, stereo, SR), figures.mel_image_db(np.zeros_like(x), SR))


def test_user_stems_are_labelled_as_yours_and_demucs_stems_as_separated():
    assert figures.stem_source({"name": "stems", "folder": "x"}) == "your stems"
    assert figures.stem_source({"name": "demucs", "model": "htdemucs"}) == "separated (demucs htdemucs)"


def test_compare_draws_each_result_beside_its_difference(tmp_path):
    from adaptive_argm.core import pipeline
    from adaptive_argm.core.separate import StemsFolder

    stems = synthetic_stems(seconds=1.0)
    folder = write_stems(tmp_path / "stems", stems)
    song = audio.write(tmp_path / "song.wav", sum(stems.values()), SR)
    result = pipeline.compare(song, tmp_path / "cmp", StemsFolder(folder), pipeline.Settings(preset="paper"))
    assert all(r.change.changed for r in result.outputs.values())
    assert "difference" in figures._difference_title("direct", result.outputs["direct"])
    clean = pipeline.compare(song, tmp_path / "clean", None, pipeline.Settings())
    assert "no difference" in figures._difference_title("direct", clean.outputs["direct"])
    assert (tmp_path / "clean" / "spectrograms.png").is_file()
