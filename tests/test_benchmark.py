"""The paired benchmark: one realisation per clip and degradation shared by every preset and
mode, restoration through the library, scores against the clean clip at its own rate (each
signal scored once), tables on disk, and a thin CLI that refuses bad input in one line."""

from __future__ import annotations

import csv
import importlib.util
import json
import math
from dataclasses import replace

import numpy as np
import pytest
import scipy.signal
from typer.testing import CliRunner

from adaptive_argm.core import audio, intrusive, levels
from adaptive_argm.evaluation import benchmark, benchmark_report, benchmark_tables, clips
from adaptive_argm.cli import app
from adaptive_argm.core.dc import remove_dc
from adaptive_argm.core.metrics import MetricPanel

from conftest import SR, synthetic_stems, write_stems

HAS_VISQOL = importlib.util.find_spec("visqol") is not None


def synthetic_clip(name: str = "synth", seconds: float = 2.0, sr: int = SR) -> clips.CleanClip:
    stems = synthetic_stems(seconds=seconds, channels=1, sr=sr)
    return clips.CleanClip(name, sum(stems.values()).astype(np.float32), stems, "musicgen", sr=sr)


@pytest.fixture(scope="module")
def small_run() -> benchmark.BenchmarkResult:
    settings = benchmark.BenchmarkSettings(degradations=("clean", "white-45", "overs"), presets=("adaptive",), jobs=1)
    return benchmark.run_benchmark([synthetic_clip(seconds=1.5)], settings)


def test_every_clip_degradation_preset_and_mode_is_scored_once(small_run):
    keys = [(c.degradation, c.preset, c.mode) for c in small_run.cases]
    assert len(keys) == len(set(keys)) == 3 * 1 * 3
    # A clean input restored to exactly its DC-free self scores +inf SI-SDR (ranked at the ceiling).
    assert all(not math.isnan(c.output.si_sdr_db) and math.isfinite(c.output.lsd_db) for c in small_run.cases)
    if HAS_VISQOL:
        assert all(1.0 <= c.output.visqol_moslqo <= 5.0 for c in small_run.cases)


def test_presets_and_modes_see_the_same_degraded_input(small_run):
    clip = synthetic_clip(seconds=1.5)
    noisy = [c for c in small_run.cases if c.degradation == "white-45"]
    assert len({c.input.si_sdr_db for c in noisy}) == 1
    damaged = benchmark.damage(clip, "white-45", small_run.settings.seed, small_run.settings.split)
    clean = remove_dc(clip.audio, benchmark.WORK_SR, bypass=False)  # scored as restoration starts: DC-free
    assert noisy[0].input.si_sdr_db == pytest.approx(intrusive.si_sdr_db(damaged.mix, clean))
    assert abs(levels.rms_dbfs(damaged.raw - clip.audio) - (-45)) < 0.2


def test_routed_runs_the_router_and_matches_the_mode_it_chose(small_run):
    """Every stem is informative here, so routed is stem-wise, unless the router sends every step
    kind of the preset to the mix (the `adaptive` denoiser where its estimate finds less noise in
    the stems than in the mix): then it is direct."""
    for c in small_run.cases:
        if c.mode == "routed":
            twin = next(s for s in small_run.cases if (s.degradation, s.preset, s.mode) == (c.degradation, c.preset,
                                                                                           c.mode_used))
            assert c.processed == twin.processed
            assert c.output.si_sdr_db == twin.output.si_sdr_db
            if c.preset == "paper":  # no kind of its chain has a per-kind policy: the clip decides
                assert c.mode_used == "stemwise"


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


def test_tables_are_written_with_one_csv_row_per_case_and_the_new_columns(small_run, tmp_path):
    files = benchmark_report.write_outputs(small_run, tmp_path)
    assert [f.name for f in files] == ["paired.md", "paired.csv", "paired_means.csv", "paired.json"]
    rows = list(csv.DictReader(open(tmp_path / "paired.csv")))
    assert len(rows) == len(small_run.cases)
    assert {"si_sdr_change_db", "lsd_change_db", "quiet_snr_change_db", "loudness_change_lu", "clipped_out",
            "out_p25_paper_db", "in_noise_floor_db", "visqol_in", "visqol_out", "visqol_change", "cutoff_hz",
            "lsd_hf_in_db", "lsd_hf_out_db", "half", "sample_rate"} <= set(rows[0])
    means = list(csv.DictReader(open(tmp_path / "paired_means.csv")))
    assert len(means) == 2 * 3 * 1 * 3  # every clip, then half A (the only clip); half B is empty
    assert {r["half"] for r in means} == {"all", "A"}
    assert {"si_sdr_change_worst_db", "si_sdr_worst_clip", "visqol_change_worst", "visqol_worst_clip"} <= set(means[0])
    md = (tmp_path / "paired.md").read_text()
    assert "white-45" in md and "Goals" in md and "noise(color=white, rms_dbfs=-45.0)" in md
    assert "mean / worst clip" in md and "Half A (tune, n = 1)" in md


def test_each_signal_is_scored_once_and_the_input_once_for_every_preset(monkeypatch):
    calls = []
    scores = intrusive.scores
    monkeypatch.setattr(intrusive, "scores", lambda *a, **k: calls.append(1) or scores(*a, **k))
    settings = benchmark.BenchmarkSettings(degradations=("white-45",), presets=("adaptive", "paper"), jobs=1,
                                           with_visqol=False)
    result = benchmark.run_benchmark([synthetic_clip(seconds=1.0)], settings)
    distinct_outputs = {(c.preset, c.output.si_sdr_db) for c in result.cases}
    assert len(result.cases) == 6 and len(distinct_outputs) < 6  # routed is stem-wise's very signal
    assert len(calls) == 1 + len(distinct_outputs)
    assert all(math.isnan(c.output.visqol_moslqo) for c in result.cases)


def test_user_files_run_in_direct_mode_only_and_are_scored_at_their_own_rate(tmp_path):
    sr = 48000
    x = sum(synthetic_stems(seconds=1.5, channels=2, sr=sr).values())
    # Nothing above 20 kHz, as in real music: the working rate (44.1 kHz) cannot carry 22-24 kHz.
    x = scipy.signal.sosfiltfilt(scipy.signal.butter(8, 20000, fs=sr, output="sos"), x).astype(np.float32)
    audio.write(tmp_path / "mine.wav", x, sr)
    found = clips.folder_clips(tmp_path)
    assert found[0].stems is None and found[0].audio.shape == (2, int(1.5 * sr)) and found[0].sr == sr
    result = benchmark.run_benchmark(found, benchmark.BenchmarkSettings(degradations=("clean", "white-50"),
                                                                        presets=("adaptive",), jobs=1))
    assert [c.mode for c in result.cases] == ["direct", "direct"]
    assert {c.source for c in result.cases} == {"real"} and {c.sample_rate for c in result.cases} == {sr}
    clean = result.cases[0]
    # The trip through the working rate and back is aligned away, not counted as damage.
    assert clean.output.si_sdr_db > 40.0


def test_resampled_input_has_a_cutoff_and_lsd_above_it(tmp_path):
    clip = synthetic_clip(seconds=1.5)
    result = benchmark.run_benchmark([clip], benchmark.BenchmarkSettings(
        degradations=("white-45", "resample-16k"), presets=("adaptive",), modes=("direct",), jobs=1,
        with_visqol=False))
    noisy, resampled = result.cases
    assert math.isnan(noisy.cutoff_hz) and math.isnan(noisy.lsd_hf_in_db)
    assert 7000.0 < resampled.cutoff_hz <= 8000.0
    assert resampled.lsd_hf_in_db > 5.0 and math.isfinite(resampled.lsd_hf_out_db)


def test_excerpt_scores_the_first_seconds_only():
    result = benchmark.run_benchmark([synthetic_clip(seconds=2.0)], benchmark.BenchmarkSettings(
        degradations=("white-45",), presets=("adaptive",), modes=("direct",), jobs=1, with_visqol=False,
        excerpt_s=1.0))
    assert result.clips[0].duration_s == pytest.approx(1.0)
    with pytest.raises(ValueError, match="excerpt"):
        benchmark.BenchmarkSettings(excerpt_s=0.0)


def test_worker_processes_give_the_same_numbers_as_one_process():
    two_clips = [synthetic_clip("a", 1.0), synthetic_clip("b", 1.0)]
    s = benchmark.BenchmarkSettings(degradations=("white-45",), presets=("adaptive",), modes=("direct",),
                                    with_visqol=False)
    one = benchmark.run_benchmark(two_clips, benchmark.BenchmarkSettings(**{**s.__dict__, "jobs": 1}))
    two = benchmark.run_benchmark(two_clips, benchmark.BenchmarkSettings(**{**s.__dict__, "jobs": 2}))
    assert [c.output.si_sdr_db for c in one.cases] == [c.output.si_sdr_db for c in two.cases]
    assert [c.half for c in one.cases] == ["A", "B"]


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


def test_worst_clip_is_named_beside_the_mean():
    row = benchmark_tables.means([_case("white-45", 2.0), replace(_case("white-45", -1.0), clip="worst_one")])[0]
    assert row.si_sdr_change_db == pytest.approx(0.5) and row.si_sdr_change_worst_db == pytest.approx(-1.0)
    assert row.si_sdr_worst_clip == "worst_one"


# --- corpus layouts ---------------------------------------------------------------------------


def _midi_corpus(folder, sr: int = 48000):
    """Two songs in the MIDI corpus layout; the second has no drums (a silent stem file)."""
    songs = []
    for i, name in enumerate(("song_b", "song_a")):
        stems = {k: np.vstack([v, 0.9 * v]) for k, v in synthetic_stems(seconds=1.0, sr=sr, seed=i).items()}
        stems["vocals"] = 0.1 * stems["other"][:, ::-1].copy()
        if i == 1:
            stems["drums"] = np.zeros_like(stems["drums"])
        write_stems(folder / name, {**stems, "mixed": sum(stems.values()).astype(np.float32)}, sr)
        songs.append({"song": name, "present": [k for k, v in stems.items() if np.any(v)]})
    (folder / "manifest.json").write_text(json.dumps({"kind": "midi", "mix": "sum", "songs": songs}))
    return folder


def test_midi_layout_is_read_from_the_folder_with_summed_stems_and_silent_ones_kept(tmp_path):
    corpus = _midi_corpus(tmp_path / "midi")
    assert clips.corpus_layout(corpus) == "midi"
    found = clips.corpus_clips(corpus)
    assert [c.name for c in found] == ["song_b", "song_a"] and {c.source for c in found} == {"midi"}
    for c in found:
        assert set(c.stems) == {"drums", "bass", "other", "vocals"} and c.sr == 48000 and c.audio.shape[0] == 2
        np.testing.assert_allclose(sum(c.stems.values()), c.audio, atol=1e-6)
    assert not np.any(found[1].stems["drums"])
    result = benchmark.run_benchmark(found, benchmark.BenchmarkSettings(
        degradations=("white-45",), presets=("adaptive",), jobs=1, with_visqol=False))
    routed = {c.clip: c for c in result.cases if c.mode == "routed"}
    assert "drums" in routed["song_a"].skipped or routed["song_a"].mode_used == "direct"
    assert {c.half for c in result.cases if c.clip == "song_a"} == {"A"}  # sorted names, alternately A and B


def test_musicgen_layout_mean_of_stems_is_read_at_its_own_rate(tmp_path):
    sr = 32000
    parts = synthetic_stems(seconds=1.0, sr=sr)
    parts = {"drums": parts["drums"], "bass": parts["bass"], "harmony": parts["other"], "melody": 0.5 * parts["other"]}
    write_stems(tmp_path / "mg" / "song", {**parts, "mixed": (sum(parts.values()) / 4).astype(np.float32)}, sr)
    assert clips.corpus_layout(tmp_path / "mg") == "musicgen"
    (c,) = clips.corpus_clips(tmp_path / "mg")
    assert c.sr == sr and set(c.stems) == {"drums", "bass", "other"}
    np.testing.assert_allclose(c.stems["other"], 0.25 * (parts["harmony"] + parts["melody"]), atol=1e-6)
    np.testing.assert_allclose(sum(c.stems.values()), c.audio, atol=1e-6)


def test_musicgen_oracle_stems_add_up_to_the_mix(corpus):
    found = clips.musicgen_clips(corpus)
    assert len(found) >= 3
    for c in found:
        assert set(c.stems) == {"drums", "bass", "other"} and c.sr == 32000
        np.testing.assert_allclose(sum(c.stems.values()), c.audio, atol=1e-6)


def test_cross_validation_halves_are_fixed_by_sorted_names():
    assert clips.halves(["d", "b", "a", "c"]) == {"a": "A", "b": "B", "c": "A", "d": "B"}
    assert clips.halves(["c", "a", "d", "b"]) == clips.halves(["a", "b", "c", "d"])


runner = CliRunner()


def test_benchmark_command_writes_the_tables(tmp_path):
    clean = write_stems(tmp_path / "clean", {"song": sum(synthetic_stems(seconds=1.5).values())})
    out = tmp_path / "out"
    r = runner.invoke(app, ["benchmark", "--no-corpus", "--clean", str(clean), "--degrade", "white-45,codec",
                            "--presets", "adaptive", "--modes", "direct", "--jobs", "1", "--no-visqol",
                            "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert (out / "paired.md").is_file() and (out / "paired.csv").is_file()
    assert "white-45" in r.output


def test_benchmark_command_reads_a_midi_corpus(tmp_path):
    corpus = _midi_corpus(tmp_path / "midi")
    out = tmp_path / "out"
    r = runner.invoke(app, ["benchmark", "--corpus", str(corpus), "--degrade", "resample-22k", "--presets",
                            "adaptive", "--jobs", "1", "--no-visqol", "--excerpt-s", "0.5", "--out", str(out)])
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(open(out / "paired.csv")))
    assert {r["source"] for r in rows} == {"midi"} and {r["mode"] for r in rows} == {"direct", "stemwise", "routed"}


@pytest.mark.parametrize("args, message", [
    (["--degrade", "vinyl"], "unknown degradation"),
    (["--presets", "nosuch"], "unknown preset"),
    (["--modes", "sideways"], "unknown mode"),
    (["--split", "half"], "--split"),
    (["--excerpt-s", "-1"], "--excerpt-s"),
])
def test_benchmark_refuses_bad_choices_in_one_line_and_writes_nothing(tmp_path, args, message):
    clean = write_stems(tmp_path / "clean", {"song": sum(synthetic_stems(seconds=1.0).values())})
    out = tmp_path / "out"
    r = runner.invoke(app, ["benchmark", "--no-corpus", "--clean", str(clean), "--out", str(out), *args])
    assert r.exit_code == 2
    assert message in r.output and "Traceback" not in r.output
    assert not out.exists()


def test_a_folder_of_plain_files_given_as_a_corpus_is_one_line(tmp_path):
    clean = write_stems(tmp_path / "clean", {"song": sum(synthetic_stems(seconds=1.0).values())})
    r = runner.invoke(app, ["benchmark", "--corpus", str(clean), "--out", str(tmp_path / "out")])
    assert r.exit_code == 2 and "--corpus" in r.output and "mixed.wav" in r.output
    assert len(r.output.strip().splitlines()) == 1


def test_misread_visqol_cases_are_counted_and_named():
    """A case whose input or output ViSQOL reading matched its patches elsewhere is counted per
    mean row, and the report names the misread inputs once per clip and degradation."""
    def with_visqol(case, clip, misplaced_in, misplaced_out):
        return replace(case, clip=clip, input=replace(case.input, visqol_moslqo=3.7, visqol_misplaced=misplaced_in),
                       output=replace(case.output, visqol_moslqo=1.5, visqol_misplaced=misplaced_out))
    cases = [with_visqol(_case("white-45", 2.0), "quiet_intro", 1.0, 0.0),
             with_visqol(replace(_case("white-45", 2.0), mode="stemwise"), "quiet_intro", 1.0, 0.25),
             with_visqol(_case("white-45", 1.0), "busy", 0.0, 0.0)]
    assert [c.visqol_misread for c in cases] == [True, True, False]
    rows = {r.mode: r for r in benchmark_tables.means(cases)}
    assert rows["direct"].visqol_misread == 1 and rows["stemwise"].visqol_misread == 1
    # the sound cases alone: busy in direct, none in stem-wise
    assert rows["direct"].visqol_sound_worst_clip == "busy" and rows["direct"].visqol_change_sound == pytest.approx(-2.2)
    assert math.isnan(rows["stemwise"].visqol_change_sound) and rows["stemwise"].visqol_sound_worst_clip == ""
    note = benchmark_tables.misread_note(cases)
    assert "in 1 of 2 inputs (quiet_intro / white-45)" in note and "1 of 3 outputs" in note
    assert "in place" in benchmark_tables.misread_note(cases[2:])
