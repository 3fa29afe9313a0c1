"""`compare`: one separation, three restorations (direct, stem-wise, routed), their metric panels,
compare.json and the two figures; and `adaptive-argm compare` as a user runs it."""

from __future__ import annotations

import json
import struct
from dataclasses import replace

import librosa
import numpy as np
import pytest
from rich.console import Console
from typer.testing import CliRunner

from adaptive_argm.core import audio, figures, pipeline
from adaptive_argm.cli import app
from adaptive_argm.core.metrics import DIRECTIONS
from adaptive_argm.cli.tables import metrics_table
from adaptive_argm.core.separate import StemsFolder

from conftest import SR, synthetic_stems, write_stems

SECONDS = 2.0
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class CountingSeparator:
    """A real separator (user stems) that counts how often it is asked to separate."""

    def __init__(self, inner):
        self.inner = inner
        self.calls = 0

    def __call__(self, mix, sr):
        self.calls += 1
        return self.inner(mix, sr)


def _song(folder, stems):
    mix = np.sum(list(stems.values()), axis=0).astype(np.float32)
    return audio.write(folder / "song.wav", mix, SR), write_stems(folder / "stems", stems)


def _png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


# The method's chain always changes the audio, which these comparisons need to see;
# `adaptive` returns clean synthetic input unchanged.
PAPER = pipeline.Settings(preset="paper")


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    """One comparison of a song whose drums, bass and other are all informative."""
    folder = tmp_path_factory.mktemp("full")
    song, stems = _song(folder, synthetic_stems(seconds=SECONDS))
    separator = CountingSeparator(StemsFolder(stems))
    result = pipeline.compare(song, folder / "out", separator, PAPER)
    return result, separator, folder / "out"


def test_compare_separates_exactly_once(compared):
    _, separator, _ = compared
    assert separator.calls == 1


def test_compare_writes_three_results_json_and_both_figures(compared):
    result, _, out = compared
    for name in ("direct.wav", "stemwise.wav", "routed.wav", "compare.json", "spectrograms.png", "stems.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    for png in ("spectrograms.png", "stems.png"):
        width, height = _png_size(out / png)
        assert 600 <= width <= 3000 and 400 <= height <= 3000, (png, width, height)
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # no temp files left behind
    x, _ = audio.read(out / "direct.wav")
    assert x.shape == result.mix.shape


def test_compare_json_has_the_documented_schema(compared):
    result, _, out = compared
    doc = json.loads((out / "compare.json").read_text())
    assert doc["schema"] == "adaptive-argm/compare/1"
    assert {"input", "separator", "router", "metrics"} <= set(doc)
    assert doc["router"]["mode_used"] == result.plan.mode_used == "stemwise"
    assert [s["name"] for s in doc["router"]["stems"]] == list(result.stem_names)
    assert set(doc["metrics"]) == {"input", "direct", "stemwise", "routed"}
    for panel in doc["metrics"].values():
        assert set(panel) == set(DIRECTIONS)
    assert doc["separator"]["name"] == "stems"


def test_stemwise_differs_from_direct_and_routed_follows_the_router(compared):
    _, _, out = compared
    direct, _ = audio.read(out / "direct.wav")
    stemwise, _ = audio.read(out / "stemwise.wav")
    routed, _ = audio.read(out / "routed.wav")
    assert np.max(np.abs(direct - stemwise)) > 1e-3
    np.testing.assert_array_equal(routed, stemwise)  # all three stems informative: routed = stem-wise


def test_a_routed_result_that_is_another_is_written_once_then_copied_with_its_residual(tmp_path):
    song, folder = _song(tmp_path, synthetic_stems(seconds=SECONDS))
    out = tmp_path / "out"
    result = pipeline.compare(song, out, StemsFolder(folder), replace(PAPER, residual=True), figures=False)
    assert result.outputs["routed"] is result.outputs["stemwise"]
    assert (out / "routed.wav").read_bytes() == (out / "stemwise.wav").read_bytes()
    assert (out / "residual-routed.wav").read_bytes() == (out / "residual-stemwise.wav").read_bytes()
    assert (out / "residual-routed.wav").read_bytes() != (out / "residual-direct.wav").read_bytes()
    routed, stemwise = result.delivered["routed"], result.delivered["stemwise"]
    assert routed.written.path == str(out / "routed.wav") and routed.residual == str(out / "residual-routed.wav")
    assert (routed.loudness_lufs, routed.true_peak_dbtp) == (stemwise.loudness_lufs, stemwise.true_peak_dbtp)
    written = json.loads((out / "compare.json").read_text())["outputs"]["routed"]
    assert written["path"] == str(out / "routed.wav") and written["residual"]["path"] == str(out / "residual-routed.wav")


@pytest.mark.parametrize("skip_policy", ["passthrough", "drop"])
def test_each_compared_result_is_what_run_gives_in_that_mode(tmp_path, skip_policy):
    # A near-silent vocals stem: routed skips it, forced stem-wise restores it. compare restores
    # the stems in place and keeps only routed's pass-through audio: same results as three runs.
    rng = np.random.default_rng(5)
    stems = synthetic_stems(seconds=SECONDS)
    stems["vocals"] = (1e-4 * rng.standard_normal(stems["other"].shape)).astype(np.float32)
    song, folder = _song(tmp_path, stems)
    settings = pipeline.Settings(preset="paper", skip_policy=skip_policy)
    result = pipeline.compare(song, tmp_path / "cmp", StemsFolder(folder), settings)
    assert result.plan.skipped() == ["vocals"]
    assert set(result.stem_views) == {"drums", "bass", "other", "vocals"}
    assert all(v.after is not None for v in result.stem_views.values())  # forced stem-wise restored all
    for mode in ("direct", "stemwise", "routed"):
        run = pipeline.run(song, tmp_path / mode, StemsFolder(folder), pipeline.Settings(
            mode=mode, preset="paper", skip_policy=skip_policy))
        compared, _ = audio.read(tmp_path / "cmp" / f"{mode}.wav")
        ran, _ = audio.read(run.output_path, sr=None)  # a direct run streams: its file holds the result
        np.testing.assert_allclose(compared, ran, atol=1e-6, err_msg=mode)


def test_routed_is_direct_when_only_other_is_informative(tmp_path):
    rng = np.random.default_rng(3)
    stems = synthetic_stems(seconds=SECONDS)
    n = stems["other"].shape[1]
    stems["drums"] = (1e-5 * rng.standard_normal((1, n))).astype(np.float32)  # residue, not drums
    stems["bass"] = (1e-5 * rng.standard_normal((1, n))).astype(np.float32)
    song, folder = _song(tmp_path, stems)
    separator = CountingSeparator(StemsFolder(folder))
    result = pipeline.compare(song, tmp_path / "out", separator, PAPER, figures=False)
    assert separator.calls == 1
    assert result.plan.mode_used == "direct"
    direct, _ = audio.read(tmp_path / "out" / "direct.wav")
    routed, _ = audio.read(tmp_path / "out" / "routed.wav")
    stemwise, _ = audio.read(tmp_path / "out" / "stemwise.wav")
    np.testing.assert_array_equal(routed, direct)
    assert not np.array_equal(stemwise, direct)  # forced stem-wise still ran, from the same separation
    assert not (tmp_path / "out" / "spectrograms.png").exists()


def test_without_stems_figures_leave_out_the_stemwise_panel_and_the_stems_figure(tmp_path, compared):
    song, stems = _song(tmp_path, synthetic_stems(seconds=SECONDS))
    out = tmp_path / "out"
    pipeline.compare(song, out, StemsFolder(stems), PAPER)  # an earlier comparison that had stems
    assert (out / "stems.png").is_file() and (out / "stemwise.wav").is_file()
    result = pipeline.compare(song, out, None, PAPER)
    assert set(result.outputs) == {"direct", "routed"}
    assert (out / "spectrograms.png").is_file()
    assert not (out / "stems.png").exists()
    assert not (out / "stemwise.wav").exists()
    assert json.loads((out / "compare.json").read_text())["metrics"]["stemwise"] is None
    # three panels (input, direct, routed): shorter than the four-panel figure of a separated clip
    width, height = _png_size(out / "spectrograms.png")
    full_width, full_height = _png_size(compared[2] / "spectrograms.png")
    assert width == full_width and height < full_height


def test_spectrogram_images_use_an_absolute_reference():
    t = np.arange(SR) / SR
    y = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[np.newaxis]
    loud = figures.mel_image_db(y, SR)
    quiet = figures.mel_image_db(y * 0.1, SR)
    assert loud.shape[1] == 128  # (columns, mel bands): time first, as every spectrogram here
    band = loud.max(axis=0) > loud.max() - 20  # the tone's mel bands
    np.testing.assert_allclose(quiet[:, band], loud[:, band] - 20.0, atol=0.01)


def test_long_clips_are_drawn_with_a_bounded_number_of_columns_at_the_same_level():
    rng = np.random.default_rng(0)
    y = (0.1 * rng.standard_normal((2, 30 * SR))).astype(np.float32)
    per_column = figures.frames_per_column(y.shape[1], max_columns=100)
    coarse = figures.mel_image_db(y, SR, per_column)
    fine = figures.mel_image_db(y, SR, 1)
    assert per_column > 1 and coarse.shape[0] <= 100 and coarse.shape[1] == fine.shape[1]
    # computed chunk by chunk, yet the same as librosa's whole-signal mel spectrogram of the downmix
    whole = librosa.feature.melspectrogram(y=y.mean(axis=0), sr=SR, n_fft=2048, hop_length=512, n_mels=128)
    np.testing.assert_allclose(fine.T, librosa.power_to_db(whole, ref=1.0, amin=1e-10, top_db=None), atol=1e-3)
    # each column is a mean power: steady noise reads the same level at either resolution
    mean_db = lambda im: 10 * np.log10(np.mean(10 ** (im[2:-2] / 10), axis=0))  # noqa: E731
    np.testing.assert_allclose(mean_db(coarse), mean_db(fine), atol=0.2)


def test_cli_compare_with_reference_prints_one_table_and_fills_intrusive_scores(tmp_path):
    stems = synthetic_stems(seconds=SECONDS)
    song, folder = _song(tmp_path, stems)
    # Not the input itself: a result equal to its DC-free reference scores +inf (JSON null).
    noise = 1e-3 * np.random.default_rng(0).standard_normal(stems["other"].shape)
    clean = audio.write(tmp_path / "clean.wav", (np.sum(list(stems.values()), axis=0) + noise).astype(np.float32), SR)
    out = tmp_path / "cmp"
    r = CliRunner().invoke(app, ["compare", str(song), "--stems", str(folder), "--ref", str(clean),
                                 "--out", str(out), "--no-figures"])
    assert r.exit_code == 0, r.output
    doc = json.loads((out / "compare.json").read_text())
    assert isinstance(doc["metrics"]["direct"]["si_sdr_db"], float)
    assert not list(out.glob("*.png"))
    for header in ("input", "direct", "stem-wise", "routed", "si_sdr_db", "p25_paper_db"):
        assert header in r.stdout
    rows = [ln for ln in r.stdout.splitlines() if ln.split("│")[0].strip() == "p25_paper_db"]
    assert len(rows) == 1  # one metric table, not one per result


def test_cli_compare_refuses_a_missing_input(tmp_path):
    r = CliRunner().invoke(app, ["compare", str(tmp_path / "nope.wav"), "--out", str(tmp_path / "o")])
    assert r.exit_code == 2
    assert len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def _marked(table, row: str) -> list[str]:
    """The column headers whose cell in `row` carries the best-value mark."""
    console = Console(record=True, width=200)
    console.print(table)
    line = next(ln for ln in console.export_text().splitlines() if ln.split("│")[0].strip() == row)
    cells = [c.strip() for c in line.split("│")][1:]
    return [h for h, c in zip(["input", "direct", "stem-wise", "routed"], cells) if c.endswith("*")]


def test_metric_table_marks_the_best_by_each_metrics_direction_and_marks_ties():
    cols = {"input": {"p25_paper_db": -57.0, "loudness_lufs": -24.0, "silent_frame_fraction": 0.0},
            "direct": {"p25_paper_db": -70.0, "loudness_lufs": -30.0, "silent_frame_fraction": 0.0},
            "stem-wise": {"p25_paper_db": -73.0, "loudness_lufs": -23.0, "silent_frame_fraction": 0.0},
            "routed": {"p25_paper_db": -73.0, "loudness_lufs": -23.0, "silent_frame_fraction": 0.0}}
    table = metrics_table(cols)
    assert _marked(table, "p25_paper_db") == ["stem-wise", "routed"]  # lower; routed IS stem-wise
    assert _marked(table, "loudness_lufs") == ["stem-wise", "routed"]  # closest to the input, not lowest
    assert _marked(table, "silent_frame_fraction") == []  # all equal: none is better
