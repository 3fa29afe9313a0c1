"""The paired benchmark: one realisation per clip and degradation shared by every preset and
mode, restoration through the library, scores against the clean clip, tables on disk, and a
thin CLI that refuses bad input in one line."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
from typer.testing import CliRunner

from adaptive_argm.core import audio, intrusive, levels
from adaptive_argm.evaluation import benchmark, benchmark_tables
from adaptive_argm.cli import app
from adaptive_argm.core.dc import remove_dc
from adaptive_argm.core.metrics import MetricPanel

from conftest import SR, synthetic_stems, write_stems


def synthetic_clip(name: str = "synth", seconds: float = 2.0) -> benchmark.CleanClip:
    stems = synthetic_stems(seconds=seconds, channels=1)
    return benchmark.CleanClip(name, sum(stems.values()).astype(np.float32), stems, "musicgen")


@pytest.fixture(scope="module")
def small_run() -> benchmark.BenchmarkResult:
    settings = benchmark.BenchmarkSettings(degradations=("clean", "white-45", "overs"), presets=("adaptive",), jobs=1)
    return benchmark.run_benchmark([synthetic_clip(seconds=1.5)], settings)


def test_every_clip_degradation_preset_and_mode_is_scored_once(small_run):
    keys = [(c.degradation, c.preset, c.mode) for c in small_run.cases]
    assert len(keys) == len(set(keys)) == 3 * 1 * 3
    # A clean input restored to exactly its DC-free self scores +inf SI-SDR (ranked at the ceiling).
    assert all(not math.isnan(c.output.si_sdr_db) and math.isfinite(c.output.lsd_db) for c in small_run.cases)


def test_presets_and_modes_see_the_same_degraded_input(small_run):
    clip = synthetic_clip(seconds=1.5)
    noisy = [c for c in small_run.cases if c.degradation == "white-45"]
    assert len({c.input.si_sdr_db for c in noisy}) == 1
    damaged = benchmark.damage(clip, "white-45", small_run.settings.seed, small_run.settings.split)
    clean = remove_dc(clip.audio, benchmark.WORK_SR, bypass=False)  # scored as restoration starts: DC-free
    assert noisy[0].input.si_sdr_db == pytest.approx(intrusive.si_sdr_db(damaged.mix, clean))
    assert abs(levels.rms_dbfs(damaged.raw - clip.audio) - (-45)) < 0.2


def test_routed_runs_the_router_and_matches_stemwise_when_every_stem_is_informative(small_run):
    for c in small_run.cases:
        if c.mode == "routed":
            twin = next(s for s in small_run.cases if (s.degradation, s.preset, s.mode) == (c.degradation, c.preset,
                                                                                           "stemwise"))
            assert c.mode_used == "stemwise" and c.processed == twin.processed
            assert c.output.si_sdr_db == twin.output.si_sdr_db


def test_clean_input_reads_as_no_change_for_a_transparent_restoration(small_run):
    clean = [c for c in small_run.cases if c.degradation == "clean"]
    assert all(math.isinf(c.input.si_sdr_db) for c in clean)
    for c in clean:  # the change is finite (scores read at most SCORE_CEILING_DB)
        assert math.isfinite(c.si_sdr_change_db) and c.si_sdr_change_db <= 0.0


def test_overs_are_counted_in_the_input_and_clip_safety_leaves_none(small_run):
    for c in small_run.cases:
        assert c.clipped_out == 0
        if c.degradation == "overs":
            assert c.clipped_in > 0
            if c.preset == "adaptive":  # loudness matched to an input that peaks at +3.5 dBFS
                assert c.clip_action == "limited"


def test_tables_are_written_with_one_csv_row_per_case(small_run, tmp_path):
    files = benchmark_tables.write_outputs(small_run, tmp_path)
    assert [f.name for f in files] == ["paired.md", "paired.csv", "paired_means.csv", "paired.json"]
    rows = list(csv.DictReader(open(tmp_path / "paired.csv")))
    assert len(rows) == len(small_run.cases)
    assert {"si_sdr_change_db", "lsd_change_db", "quiet_snr_change_db", "loudness_change_lu", "clipped_out",
            "out_p25_paper_db", "in_noise_floor_db"} <= set(rows[0])
    means = list(csv.DictReader(open(tmp_path / "paired_means.csv")))
    assert len(means) == 3 * 1 * 3
    md = (tmp_path / "paired.md").read_text()
    assert "white-45" in md and "Goals" in md and "noise(color=white, rms_dbfs=-45.0)" in md


def test_user_files_run_in_direct_mode_only(tmp_path):
    x = sum(synthetic_stems(seconds=1.5, channels=2).values())
    audio.write(tmp_path / "mine.wav", x, SR)
    clips = benchmark.folder_clips(tmp_path)
    assert clips[0].stems is None and clips[0].audio.shape[0] == 2
    result = benchmark.run_benchmark(clips, benchmark.BenchmarkSettings(degradations=("white-50",), presets=("adaptive",),
                                                                  jobs=1))
    assert [c.mode for c in result.cases] == ["direct"] and result.cases[0].source == "user"


def test_worker_processes_give_the_same_numbers_as_one_process():
    clips = [synthetic_clip("a", 1.0), synthetic_clip("b", 1.0)]
    s = benchmark.BenchmarkSettings(degradations=("white-45",), presets=("adaptive",), modes=("direct",))
    one = benchmark.run_benchmark(clips, benchmark.BenchmarkSettings(**{**s.__dict__, "jobs": 1}))
    two = benchmark.run_benchmark(clips, benchmark.BenchmarkSettings(**{**s.__dict__, "jobs": 2}))
    assert [c.output.si_sdr_db for c in one.cases] == [c.output.si_sdr_db for c in two.cases]


def _case(degradation: str, change_db: float, loudness_lu: float = 0.0, clipped: int = 0) -> benchmark.CaseResult:
    nan = math.nan
    panel = lambda si, lufs: MetricPanel(nan, nan, nan, lufs, nan, nan, nan, nan, nan, nan, si_sdr_db=si)
    return benchmark.CaseResult("c", "musicgen", degradation, "adaptive", "direct", "direct", (), (), "passthrough",
                             panel(20.0, -20.0), panel(20.0 + change_db, -20.0 + loudness_lu), 0, clipped, "none",
                             0.0, 0.0)


def test_goals_follow_the_issue_thresholds():
    ok = benchmark_tables.goals([_case("white-45", 2.0), _case("white-45", 1.2), _case("codec", -0.1)])
    assert all(g.passed for g in ok)
    bad = {g.goal: g for g in benchmark_tables.goals([_case("white-45", 1.0), _case("white-45", -1.0, loudness_lu=1.5),
                                            _case("clean", -0.6, clipped=3)])}
    assert not bad["white-45, musicgen clips: mean SI-SDR change"].passed
    assert not bad["white-45: worst clip SI-SDR change"].passed
    assert not bad["clean: mean SI-SDR change"].passed
    assert not bad["every case: |loudness change|"].passed
    assert not bad["every case: output samples at/above full scale"].passed


def test_musicgen_oracle_stems_add_up_to_the_mix(corpus):
    clips = benchmark.musicgen_clips(corpus)
    assert len(clips) >= 3
    for c in clips:
        assert set(c.stems) == {"drums", "bass", "other"}
        np.testing.assert_allclose(sum(c.stems.values()), c.audio, atol=1e-6)


runner = CliRunner()


def test_benchmark_command_writes_the_tables(tmp_path):
    clean = write_stems(tmp_path / "clean", {"song": sum(synthetic_stems(seconds=1.5).values())})
    out = tmp_path / "out"
    r = runner.invoke(app, ["benchmark", "--no-corpus", "--clean", str(clean), "--degrade", "white-45,codec",
                            "--presets", "adaptive", "--modes", "direct", "--jobs", "1", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert (out / "paired.md").is_file() and (out / "paired.csv").is_file()
    assert "white-45" in r.output


@pytest.mark.parametrize("args, message", [
    (["--degrade", "vinyl"], "unknown degradation"),
    (["--presets", "nosuch"], "unknown preset"),
    (["--modes", "sideways"], "unknown mode"),
    (["--split", "half"], "--split"),
])
def test_benchmark_refuses_bad_choices_in_one_line_and_writes_nothing(tmp_path, args, message):
    clean = write_stems(tmp_path / "clean", {"song": sum(synthetic_stems(seconds=1.0).values())})
    out = tmp_path / "out"
    r = runner.invoke(app, ["benchmark", "--no-corpus", "--clean", str(clean), "--out", str(out), *args])
    assert r.exit_code == 2
    assert message in r.output and "Traceback" not in r.output
    assert not out.exists()
