"""The eval suite over a prompt set: resuming after an interrupt, a failing clip recorded and
skipped, CSV and JSON holding the same rows, and the prompt sets shipped in eval/."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from adaptive_argm.core import audio, metrics, pipeline, ranking
from adaptive_argm.evaluation import records, runner, tables
from adaptive_argm.core.separate import SeparatorOptions
from adaptive_argm.evaluation.records import EvalSettings

from conftest import ROOT, SR, synthetic_stems, write_stems

SECONDS = 1.5
OFFLINE = {"ADAPTIVE_ARGM_NETWORK_PROBE": "127.0.0.1:9"}
FAST = EvalSettings(separation=SeparatorOptions("stems"), figures=False)
"""Figures are most of a short clip's time; test_html.py draws them."""
NO_DEMUCS = EvalSettings(separation=SeparatorOptions("stems", model="no-such-demucs-model"), figures=False)
"""With OFFLINE: oracle stems where an entry has them; the others restored directly, whatever
Demucs weights this machine has."""


def go_offline(monkeypatch):
    for name, value in OFFLINE.items():
        monkeypatch.setenv(name, value)


def stems_clip(folder, seed):
    """A stems folder with its mix (the mix = the sum of the stems)."""
    stems = synthetic_stems(seconds=SECONDS, seed=seed)
    write_stems(folder, stems)
    audio.write(folder / "mix.wav", sum(stems.values()), SR)
    return folder


def prompt_set(path, entries: list[dict]):
    """Write a prompt-set TOML from dicts (strings, lists of strings, numbers)."""
    def value(v):
        if isinstance(v, list):
            return "[" + ", ".join(json.dumps(x) for x in v) + "]"
        return json.dumps(v)

    text = "".join("[[clip]]\n" + "".join(f"{k} = {value(v)}\n" for k, v in e.items()) + "\n" for e in entries)
    path.write_text(text)
    return path


def two_stem_clips(tmp_path):
    stems_clip(tmp_path / "a", seed=1)
    stems_clip(tmp_path / "b", seed=2)
    return prompt_set(tmp_path / "set.toml", [
        {"id": "a", "prompt": "first", "tags": ["drums", "bass", "other"], "stems": "a"},
        {"id": "b", "prompt": "second", "tags": ["drums", "bass", "other"], "stems": "b"},
    ])


def mtime(path):
    return path.stat().st_mtime_ns


def test_an_interrupted_run_resumes_without_recomputing_the_finished_clip(tmp_path):
    ps = records.load_prompts(two_stem_clips(tmp_path))
    out = tmp_path / "results"

    def interrupt_after_first(outcome):
        raise KeyboardInterrupt  # as Ctrl-C right after the first clip finished

    with pytest.raises(KeyboardInterrupt):
        runner.run(ps, out, FAST, on_clip=interrupt_after_first)
    done = out / "clips" / "a"
    assert json.loads((done / "clip.json").read_text())["status"] == "ok"
    assert not (out / "clips" / "b" / "clip.json").exists()
    assert not (out / "results.csv").exists()
    stamp = mtime(done / "compare.json"), mtime(done / "routed.wav")

    seen = []
    result = runner.run(ps, out, FAST, on_clip=seen.append)
    assert [(o.id, o.status, o.reused) for o in result.outcomes] == [("a", "ok", True), ("b", "ok", False)]
    assert (mtime(done / "compare.json"), mtime(done / "routed.wav")) == stamp  # not recomputed
    assert sorted(o.id for o in seen) == ["a", "b"]
    assert {r["clip"] for r in result.rows} == {"a", "b"}
    for name in records.RESULT_FILES:
        assert (out / name).is_file()


def test_changed_settings_recompute_a_finished_clip(tmp_path):
    ps = records.load_prompts(prompt_set(tmp_path / "set.toml", [
        {"id": "a", "prompt": "first", "tags": ["drums"], "stems": "a"}]))
    stems_clip(tmp_path / "a", seed=1)
    out = tmp_path / "results"
    runner.run(ps, out, FAST)
    assert runner.run(ps, out, FAST).outcomes[0].reused
    other_settings = EvalSettings(pipeline=pipeline.Settings(clip_mode="none"), separation=SeparatorOptions("stems"),
                                  figures=False)
    again = runner.run(ps, out, other_settings)
    assert again.outcomes[0].reused is False


def test_a_failing_clip_is_recorded_and_skipped_then_computed_once_fixed(tmp_path, monkeypatch):
    go_offline(monkeypatch)
    stems_clip(tmp_path / "good", seed=1)
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF not really a wav file")
    ps = records.load_prompts(prompt_set(tmp_path / "set.toml", [
        {"id": "good", "prompt": "fine", "tags": ["drums", "bass", "other"], "stems": "good"},
        {"id": "broken", "prompt": "bad file", "tags": ["other"], "audio": "broken.wav"},
    ]))
    out = tmp_path / "results"
    result = runner.run(ps, out, NO_DEMUCS)
    status = {o.id: o for o in result.outcomes}
    assert status["good"].status == "ok"
    assert status["broken"].status == "failed" and "not a readable audio file" in status["broken"].error
    saved = json.loads((out / "results.json").read_text())
    failed = [c for c in saved["clips"] if c["status"] == "failed"]
    assert [c["id"] for c in failed] == ["broken"] and "not a readable audio file" in failed[0]["error"]
    assert {r["clip"] for r in saved["rows"]} == {"good"}
    assert "broken" in (out / "summary.md").read_text()
    assert "not a readable audio file" in (out / "report.html").read_text()
    stamp = mtime(out / "clips" / "good" / "compare.json")

    # The user fixes the file: the failed clip is retried, the good one is not recomputed.
    audio.write(broken, sum(synthetic_stems(seconds=SECONDS, seed=3).values()), SR)
    result = runner.run(ps, out, NO_DEMUCS)
    assert [(o.id, o.status) for o in result.outcomes] == [("good", "ok"), ("broken", "ok")]
    assert mtime(out / "clips" / "good" / "compare.json") == stamp


def test_csv_and_json_hold_the_same_rows_with_every_metric_and_the_routers_decisions(tmp_path, monkeypatch):
    go_offline(monkeypatch)
    stems_clip(tmp_path / "band", seed=1)
    audio.write(tmp_path / "plain.wav", sum(synthetic_stems(seconds=SECONDS, seed=4).values()), SR)
    ps = records.load_prompts(prompt_set(tmp_path / "set.toml", [
        {"id": "band", "prompt": "a band", "tags": ["drums", "bass", "other"], "stems": "band"},
        {"id": "plain", "prompt": "no stems, no Demucs weights", "tags": ["other"], "audio": "plain.wav"},
    ]))
    out = tmp_path / "results"
    notes = []
    # no Demucs weights for this model and no network: the plain clip is restored directly, said at once
    result = runner.run(ps, out, NO_DEMUCS, on_note=notes.append)
    assert any("restored the mix directly" in n for n in notes)
    assert "this entry has no stems" in result.compares["plain"]["separator"]["notice"]

    saved = json.loads((out / "results.json").read_text())
    with open(out / "results.csv", newline="") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames) == tables.ROW_FIELDS == tuple(saved["fields"])
        table = list(reader)
    assert len(table) == len(saved["rows"]) == len(result.rows)
    assert [(r["clip"], r["mode"]) for r in table] == [("band", "input"), ("band", "direct"), ("band", "stemwise"),
                                                      ("band", "routed"), ("plain", "input"), ("plain", "direct"),
                                                      ("plain", "routed")]
    for row_csv, row_json in zip(table, saved["rows"]):
        for key in tables.ROW_FIELDS:
            v = row_json[key]
            if v is None:
                assert row_csv[key] == "", key
            elif isinstance(v, float):
                assert float(row_csv[key]) == v, key
            else:
                assert row_csv[key] == str(v), key
    band = {r["mode"]: r for r in saved["rows"] if r["clip"] == "band"}
    assert set(metrics.DIRECTIONS) <= set(band["routed"])
    assert band["routed"]["separator"] == "stems" and band["routed"]["routed_mode"] in ("stemwise", "direct")
    assert band["routed"]["drums_decision"] in ("process", "skip", "direct")
    assert band["routed"]["vocals_decision"] is None  # no vocals stem in the folder
    # intrusive scores against the input itself (SI-SDR may be +inf, written null: direct returns
    # the DC-free input exactly; LSD is then 0)
    assert band["direct"]["lsd_db"] is not None
    plain = {r["mode"]: r for r in saved["rows"] if r["clip"] == "plain"}
    assert plain["routed"]["separator"] == "none" and plain["routed"]["routed_mode"] == "direct"
    assert "stemwise" not in plain
    # the metric rows agree with the clip's own compare.json
    cmp = json.loads((out / "clips" / "band" / "compare.json").read_text())
    assert band["stemwise"]["noise_floor_db"] == cmp["metrics"]["stemwise"]["noise_floor_db"]
    summary = (out / "summary.md").read_text()
    assert "`plain`" in summary.split("## Clips the router sent to direct")[1]
    assert "routed vs direct" in summary and "## Per-mode means" in summary


def test_routed_vs_forced_win_counts_follow_each_metrics_direction():
    assert ranking.score("si_sdr_db", 10.0, None) > ranking.score("si_sdr_db", 5.0, None)
    assert ranking.score("noise_floor_db", -50.0, -30.0) > ranking.score("noise_floor_db", -40.0, -30.0)
    assert ranking.score("loudness_lufs", -14.5, -14.0) > ranking.score("loudness_lufs", -12.0, -14.0)
    assert ranking.score("peak_dbfs", -1.0, -3.0) is None  # a diagnostic: no better side
    assert ranking.score("lsd_db", None, 0.0) is None
    # as shown: 0.004 dB apart prints the same, and so is a tie
    assert ranking.score("noise_floor_db", -50.004, None) == ranking.score("noise_floor_db", -50.0, None)
    assert "p25_paper_db" not in tables.HONEST_METRICS


def test_the_tiny_demucs_runs_through_eval_as_a_separator(tmp_path):
    # demucs_unittest is random-init: this checks the plumbing, not separation quality
    audio.write(tmp_path / "song.wav", sum(synthetic_stems(seconds=SECONDS, seed=5).values()), SR)
    ps = records.load_prompts(prompt_set(tmp_path / "set.toml", [
        {"id": "song", "prompt": "x", "tags": ["drums"], "audio": "song.wav"}]))
    result = runner.run(ps, tmp_path / "out", EvalSettings(separation=SeparatorOptions("demucs", model="demucs_unittest"),
                                                           figures=False))
    assert result.outcomes[0].status == "ok", result.outcomes[0].error
    assert result.compares["song"]["separator"]["name"] == "demucs"
    assert {r["mode"] for r in result.rows} == {"input", "direct", "stemwise", "routed"}


def test_prompt_set_mistakes_are_one_clear_error(tmp_path):
    cases = [
        ([{"id": "x", "prompt": "p", "tags": ["guitar"]}], "'tags' must be a list of"),
        ([{"id": "x", "prompt": "p", "tags": [], "stem": "d"}], "unknown key(s) stem"),
        ([{"id": "x", "prompt": "p", "tags": []}, {"id": "x", "prompt": "q", "tags": []}], "appears twice"),
        ([{"id": "a/b", "prompt": "p", "tags": []}], "names a folder"),
        ([{"id": "x", "prompt": "p", "tags": [], "audio": "a.wav", "stems": "d"}], "not both"),
        ([{"id": "x", "prompt": "p", "tags": [], "stem_scale": 0.25}], "belong to a 'stems' entry"),
    ]
    for entries, message in cases:
        with pytest.raises(records.EvalError, match=message.replace("(", r"\(").replace(")", r"\)")):
            records.load_prompts(prompt_set(tmp_path / "bad.toml", entries))


def test_stems_without_a_mix_file_are_summed_with_the_declared_scale(tmp_path):
    stems = synthetic_stems(seconds=SECONDS, seed=6)
    write_stems(tmp_path / "multi", {k: v * 4 for k, v in stems.items()})  # saved 4x too loud
    ps = records.load_prompts(prompt_set(tmp_path / "set.toml", [
        {"id": "m", "prompt": "x", "tags": ["drums", "bass", "other"], "stems": "multi", "stem_scale": 0.25}]))
    result = runner.run(ps, tmp_path / "out", FAST)
    assert result.outcomes[0].status == "ok", result.outcomes[0].error
    x, _ = audio.read(tmp_path / "out" / "clips" / "m" / "input.wav")
    np.testing.assert_allclose(x, sum(stems.values()), atol=1e-4)
    assert result.compares["m"]["separator"]["name"] == "stems"


def test_clips_without_audio_are_skipped_or_stop_the_run_at_once(tmp_path):
    stems_clip(tmp_path / "a", seed=1)
    ps = records.load_prompts(prompt_set(tmp_path / "set.toml", [
        {"id": "a", "prompt": "here", "tags": ["drums"], "stems": "a"},
        {"id": "gen", "prompt": "needs MusicGen", "tags": ["other"]},
        {"id": "gone", "prompt": "missing file", "tags": ["other"], "audio": "nowhere.wav"},
    ]))
    with pytest.raises(records.EvalError, match="have no audio"):
        runner.run(ps, tmp_path / "fail", EvalSettings(separation=SeparatorOptions("stems"), missing="fail",
                                                       figures=False))
    assert not (tmp_path / "fail" / "clips" / "a" / "compare.json").exists()  # nothing was run
    result = runner.run(ps, tmp_path / "skip", FAST)
    status = {o.id: (o.status, o.error) for o in result.outcomes}
    assert status["a"][0] == "ok"
    assert status["gen"] == ("skipped", "no audio or stems given: pass --generate to make it with MusicGen")
    assert status["gone"][0] == "skipped" and "not found" in status["gone"][1]


def test_generation_offline_without_cached_weights_is_said_at_once(tmp_path):
    stems_clip(tmp_path / "a", seed=1)
    ps = prompt_set(tmp_path / "set.toml", [
        {"id": "a", "prompt": "here", "tags": ["drums"], "stems": "a"},
        {"id": "gen", "prompt": "needs MusicGen", "tags": ["other"]},
    ])
    env = {**os.environ, **OFFLINE, "HF_HOME": str(tmp_path / "hf")}
    cmd = [sys.executable, "-m", "adaptive_argm", "eval", str(ps), "--generate"]
    r = subprocess.run(cmd + ["--out", str(tmp_path / "fail"), "--missing", "fail"], capture_output=True, text=True,
                       env=env, timeout=300)
    assert r.returncode == 1
    assert "no network" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "fail" / "clips" / "a" / "compare.json").exists()


@pytest.mark.slow
def test_cli_runs_clips_in_worker_processes_and_exits_1_when_one_failed(tmp_path):
    stems_clip(tmp_path / "a", seed=1)
    stems_clip(tmp_path / "b", seed=2)
    (tmp_path / "bad.wav").write_bytes(b"nope")
    ps = prompt_set(tmp_path / "set.toml", [
        {"id": "a", "prompt": "one", "tags": ["drums"], "stems": "a"},
        {"id": "b", "prompt": "two", "tags": ["drums"], "stems": "b"},
        {"id": "bad", "prompt": "three", "tags": ["drums"], "audio": "bad.wav"},
    ])
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "adaptive_argm", "eval", str(ps), "--out", str(out), "-j", "2", "--no-figures",
           "--separator", "stems", "--model", "no-such-demucs-model"]
    r = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **OFFLINE}, timeout=300)
    assert r.returncode == 1, r.stderr
    assert "bad" in r.stderr and "Traceback" not in r.stderr
    saved = json.loads((out / "results.json").read_text())
    assert {c["id"]: c["status"] for c in saved["clips"]} == {"a": "ok", "b": "ok", "bad": "failed"}
    assert (out / "report.html").is_file()


def test_the_shipped_prompt_sets_cover_the_method_and_the_routers_cases():
    ps = records.load_prompts(ROOT / "eval" / "prompts.toml")
    assert len(ps.clips) >= 14
    prompts = {c.prompt for c in ps.clips}
    assert ("Earthy tones, environmentally conscious, ukulele-infused, harmonic, breezy, easygoing, organic "
            "instrumentation, gentle grooves.") in prompts
    assert ("Pop dance track with catchy melodies, tropical percussion, and upbeat rhythms, perfect for the "
            "beach.") in prompts
    tags = [set(c.tags) for c in ps.clips]
    assert any({"drums", "bass"} <= t for t in tags)  # full band
    assert sum("drums" not in t for t in tags) >= 3  # drum-less
    assert any("vocals" in t for t in tags)
    assert any(t == {"other"} for t in tags)  # only other: the direct fallback
    mgd = records.load_prompts(ROOT / "eval" / "musicgen-dev.toml")
    assert [c.stem_scale for c in mgd.clips] == [0.25] * 3
    for clip in mgd.clips + tuple(c for c in ps.clips if c.stems):
        assert clip.stems.resolve().parent == (ROOT.parent / "shared" / "corpus" / "musicgen-dev").resolve()


def test_the_default_separator_uses_a_prompt_sets_own_stems_and_restores_the_others_directly(tmp_path, monkeypatch):
    # auto: an entry that gives its stems is separated by them (as `run --stems` is); an entry
    # with audio only has no weights to separate with here, so it is restored directly, with a notice
    go_offline(monkeypatch)
    stems_clip(tmp_path / "a", seed=1)
    audio.write(tmp_path / "b.wav", sum(synthetic_stems(seconds=1.0, seed=3).values()), SR)
    ps = records.load_prompts(prompt_set(tmp_path / "set.toml", [
        {"id": "a", "prompt": "x", "tags": ["drums", "bass", "other"], "stems": "a"},
        {"id": "b", "prompt": "y", "tags": ["other"], "audio": "b.wav"}]))
    notes = []
    result = runner.run(ps, tmp_path / "out", EvalSettings(separation=SeparatorOptions(model="no-such-demucs-model"),
                                                           figures=False), on_note=notes.append)
    a, b = result.compares["a"], result.compares["b"]
    assert a["separator"]["name"] == "stems" and a["router"]["stems"], a["separator"]
    assert [r["mode"] for r in result.rows if r["clip"] == "a"] == ["input", "direct", "stemwise", "routed"]
    assert b["separator"]["name"] == "none" and "restored the mix directly" in b["separator"]["notice"]
    assert notes and result.notices
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert "`a`: no stems" not in summary and "notice: restored the mix directly" in summary

def test_a_folder_holding_a_users_own_results_csv_is_refused_before_any_clip_runs(tmp_path):
    ps = records.load_prompts(two_stem_clips(tmp_path))
    out = tmp_path / "results"
    out.mkdir()
    (out / "results.csv").write_text("my,own\n")
    with pytest.raises(records.EvalError, match="results.csv: exists and is not part of an earlier result"):
        runner.run(ps, out, FAST)
    assert [p.name for p in out.iterdir()] == ["results.csv"]
