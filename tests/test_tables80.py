"""Every table the CLI prints reads at 80 columns and never cuts a value: each table is rendered
by rich on an 80-column console and every value must appear whole on one line (prose such as a
router's reason or a model's note may fold at its spaces, but keeps every word)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from rich.console import Console

from adaptive_argm.cli.tables import (batch_table, excerpts_table, metrics_table, models_table, panel_table, render,
                                      songs_table, stems_table)
from adaptive_argm.core import audio, batch, metrics, models
from adaptive_argm.core.table import Table
from adaptive_argm.evaluation import benchmark_tables as bt
from adaptive_argm.evaluation import records, tables


def rendered(table) -> list[str]:
    console = Console(width=80, record=True, color_system=None)
    console.print(table)
    return console.export_text().splitlines()


def assert_whole(table, values: list[str], prose: list[str] = ()) -> list[str]:
    lines = rendered(table)
    text = "\n".join(lines)
    assert all(len(line) <= 80 for line in lines), max(lines, key=len)
    assert "…" not in text
    for v in values:
        assert any(v in line for line in lines), f"{v!r} is not whole in:\n{text}"
    words = " ".join(text.split())
    for p in prose:
        for word in p.split():
            assert word in words, f"{word!r} of {p!r} is lost in:\n{text}"
    return lines


STEMS = [{"name": "drums", "rms_dbfs": -23.46, "rel_db": -5.41, "active_fraction": 0.93, "decision": "process",
          "reason": "informative: -5.4 dB re mix, active in 93% of frames"},
         {"name": "vocals", "rms_dbfs": -73.46, "rel_db": -55.41, "active_fraction": 0.0, "decision": "skip",
          "reason": "near-silent: -55.4 dB re mix (below -30 dB), active in 0% of frames (below 10%)"}]


def test_router_table():
    assert_whole(stems_table(STEMS, "Router: 3 informative stems: bass, drums, other"),
                 ["drums", "vocals", "-23.5", "-73.5", "-5.4", "-55.4", "93%", "0%", "process", "skip"],
                 [s["reason"] for s in STEMS])


def test_compare_metrics_table_with_four_columns_marks_and_identical():
    panel = lambda v, **kw: {**{k: v for k in metrics.LABELS}, "bandwidth_hz": 22050.0, **kw}  # noqa: E731
    cols = {"input": panel(-20.0, si_sdr_db=None, silent_frame_fraction=0.125),
            "direct": panel(-80.0, si_sdr_db=152.1, silent_frame_fraction=0.125),
            "stem-wise": panel(-79.99, si_sdr_db=23.4, silent_frame_fraction=0.126),
            "routed": panel(-80.0, si_sdr_db=None, silent_frame_fraction=0.125)}
    lines = assert_whole(metrics_table(cols, identical={"input": True, "routed": True}, title="Metrics, preset adaptive"),
                         ["silent_frame_fraction", "low_high_balance_db", "quiet_frame_snr_db", "identical *",
                          "-80.00 *", "-79.99", "22.05 kHz", "12.5% *", "12.6%"],
                         ["* = best output as shown, ties all marked"])
    assert sum("identical" in line for line in lines) >= 1


def test_run_metrics_table_and_the_metrics_command_panel():
    p = metrics.MetricPanel(-60.1, -40.0, -70.0, -14.2, -20.0, 3.2, 0.01, 0.0, -1.0, 16000.0, 23.4, 1.2, 30.0)
    info = audio.AudioInfo("/x/a_rather_long_song_name_from_musicgen.wav", 32000, 2, 29.92, 0.001, -0.5)
    assert_whole(panel_table(p, info, True), ["silent_frame_fraction", "16000.00", "-60.10", "LUFS", "~ input",
                                              "higher"], [metrics.LABELS[k] for k in metrics.LABELS])
    assert_whole(metrics_table({"input": p.to_dict(), "output": p.to_dict()}, legend=False),
                 ["bandwidth_hz", "16.00 kHz", "1.0%"])


def test_batch_table_keeps_every_status_and_mode_whole():
    files = (batch.FileResult("/x/a.wav", "/o/lofi_chill-mixed", "done", "stemwise", -57.32, -69.85, 12.3,
                              changed=True),
             batch.FileResult("/x/b.wav", "/o/acoustic_folk-mixed", "skipped", "direct", -57.32, -69.85,
                              changed=False),
             batch.FileResult("/x/c.wav", "/o/broken", "failed", None, None, None, 0.1,
                              "/x/c.wav: not a readable audio file (no decoder found for this format)"))
    assert_whole(batch_table(batch.BatchResult("/o", "fp", {}, files)),
                 ["lofi_chill-mixed", "acoustic_folk-mixed", "broken", "done", "skipped", "failed", "stemwise",
                  "direct", "-57.32", "-69.85", "12.3", "yes", "no", "changed", "time s"])


def test_models_table():
    statuses = models.inventory(None)
    assert_whole(models_table(statuses), [s.model.name for s in statuses] + [f"~{s.model.download_mb} MB"
                                                                            for s in statuses],
                 [s.model.note for s in statuses] + [" ".join(s.model.stems) for s in statuses])


def test_eval_wins_table():
    counts = {k: (1, 2, 0) for k in tables.HONEST_METRICS + (tables.PAPER_METRIC,)}
    agg = records.Aggregate({}, {"routed": 3}, {"direct": counts, "stemwise": counts}, {}, (), {})
    assert_whole(render(tables.wins_table(agg)), ["p25_paper_db (paper, gameable)", "closer-to-input", "1 / 2 / 0",
                                                  "silent_frame_fraction"])


def test_benchmark_tables_too_wide_for_80_columns_come_in_parts():
    rows = [bt.MeanRow("musicgen-dev", "all", d, p, m, 3, 20.0, 22.0, 2.92, -1.5, "lofi_chill", 3.0, 3.2, 0.2,
                       -0.1, "lofi_chill", 0.1, 10.0, 9.0, 1.0, 0.12, 0.2, 0.3, 0, -60.0, -70.0, -3.0)
            for d in ("clean", "white noise -45 dBFS") for p in ("paper", "adaptive") for m in ("direct", "stemwise",
                                                                                             "routed")]
    lines = assert_whole(render(bt.headline_table(rows, title="Mean SI-SDR change")),
                         ["white noise -45 dBFS", "paper direct", "paper stemwise", "adaptive stemwise",
                          "adaptive routed", "+2.92"])
    assert sum("white noise -45 dBFS" in line for line in lines) == 2  # two parts, first column repeated
    goal = ("goal", "mode", "measured", "target", "met", "worst case")
    gs = Table(goal, (("white noise -45 dBFS, musicgen-dev clips: mean SI-SDR change", "stemwise", 2.92, ">= 1.5 dB",
                       True, "lofi_chill (white-45)"),), title="Goals", signed=True)
    assert_whole(render(gs), ["stemwise", "+2.92", ">= 1.5 dB", "yes"],
                 ["white noise -45 dBFS, musicgen-dev clips: mean SI-SDR change", "lofi_chill (white-45)"])


def test_models_check_problems_table():
    problem = "htdemucs.yaml names 955717e8 but 955717e8-8726e21a.th is not in the folder (download it)"
    assert_whole(render(Table(("#", "problem"), ((1, problem),), "Problems in /some/folder")), ["1"], [problem])


def test_corpus_tables():
    excerpts = [SimpleNamespace(track_id="wesnoth-northern_mountains", sample_rate=44100, offset_s=61.5,
                                gain_db=-3.21, loudness_lufs=-23.0, peak_dbfs=-1.5, bandwidth_hz=21500.0,
                                full_band=True)]
    assert_whole(excerpts_table(excerpts, "/data/corpus/real"), ["44.1", "61.5", "-3.21", "-23.00", "21.5"],
                 ["wesnoth-northern_mountains"])
    stem = SimpleNamespace(present=True, notes=1234)
    songs = [SimpleNamespace(song="boogi_marabi_redfarn", duration_s=183.2, gain_db=-6.5, loudness_lufs=-23.0,
                             peak_dbfs=-1.0, stems={f: stem for f in ("drums", "bass", "other", "vocals")})]
    assert_whole(songs_table(songs, "/x"), ["boogi_marabi_redfarn", "183.2", "-6.50", "1234", "vocals"])


@pytest.mark.parametrize("width", [80])
def test_a_run_prints_its_tables_within_80_columns(tmp_path, width, monkeypatch):
    from typer.testing import CliRunner

    from adaptive_argm.cli import app
    from conftest import SR, music_like

    monkeypatch.setenv("COLUMNS", str(width))
    song = audio.write(tmp_path / "s.wav", music_like(1.0)[None], SR)
    r = CliRunner().invoke(app, ["run", str(song), "--mode", "direct", "-o", str(tmp_path / "o")])
    assert r.exit_code == 0, r.stderr
    table_lines = [ln for ln in r.stdout.splitlines() if "│" in ln or "━" in ln]
    assert table_lines and all(len(ln) <= width for ln in table_lines)


def test_a_table_just_too_wide_wraps_its_headers_rather_than_splitting():
    files = tuple(batch.FileResult(f"/x/{n}.wav", f"/o/{n}", "done", "direct", -58.44, -58.06, 1.3, changed=True)
                  for n in ("acoustic_folk-mixed", "upbeat_electronic-mixed"))
    lines = assert_whole(batch_table(batch.BatchResult("/o", "fp", {}, files)),
                         ["upbeat_electronic-mixed", "-58.44", "-58.06", "1.3", "changed"])
    assert not any("continued" in line for line in lines)  # one table
    assert any(line.split("│")[-1].strip() == "time" for line in lines)  # "time s" over two lines
