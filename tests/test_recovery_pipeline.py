"""Spectral recovery as users meet it: the `spectral_recovery` step in presets and chains, the
run's output rate, `--no-recovery`, the report, stem-wise runs and the issue's bad inputs."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import scipy.signal

from adaptive_argm.core import audio, dsp, figures, pipeline, presets
from adaptive_argm.core.resample import resample
from adaptive_argm.core.route import route
from adaptive_argm.core.separate import StemsFolder
from adaptive_argm.core.steps import PresetError, Step

from conftest import SR, write_stems
from test_cli_run import cli, report

RECOVERY = (Step("spectral_recovery"),)


def harmonic(seconds: float, sr: int, f0: float = 220.0, channels: int = 2, seed: int = 0) -> np.ndarray:
    """A harmonic tone with partials up to `sr`'s Nyquist (1/k amplitudes), slowly modulated;
    the channels differ by a small delay."""
    t = np.arange(int(seconds * sr)) / sr
    ks = np.arange(1, int((sr / 2 - 100) // f0) + 1)
    phases = np.random.default_rng(seed).uniform(0, 2 * np.pi, ks.size)
    x = sum((0.3 / k) * np.sin(2 * np.pi * f0 * k * t + p) for k, p in zip(ks, phases))
    x = (x * (0.6 + 0.4 * np.sin(2 * np.pi * 0.5 * t))).astype(np.float32) * 0.3
    return np.stack([np.roll(x, 17 * c) for c in range(channels)])


def band_db(x: np.ndarray, sr: int, lo_hz: float, hi_hz: float) -> float:
    """Mean power (dB) of `x` between lo_hz and hi_hz (Welch)."""
    f, p = scipy.signal.welch(np.asarray(x, np.float64).mean(axis=0), sr, nperseg=4096)
    return 10 * np.log10(p[(f >= lo_hz) & (f < hi_hz)].mean() + 1e-30)


def lowpassed(x: np.ndarray, sr: int, cutoff_hz: float) -> np.ndarray:
    sos = scipy.signal.ellip(12, 0.1, 100, cutoff_hz, fs=sr, output="sos")
    return scipy.signal.sosfiltfilt(sos, x, axis=-1).astype(np.float32)


# --- the step kind --------------------------------------------------------------------------------


def test_step_is_bit_for_bit_no_op_without_a_brick_wall():
    rng = np.random.default_rng(3)
    full = (0.1 * rng.standard_normal((2, 3 * SR))).astype(np.float32)
    rolled = lowpassed(full, SR, 17000.0) * 0 + harmonic(3.0, SR)  # reaches 22 kHz
    for x in (full, rolled):
        y = dsp.apply_chain(x, SR, RECOVERY)
        assert y.dtype == x.dtype and y.shape == x.shape and np.array_equal(y, x)


def test_step_adds_the_band_above_a_wall_and_reports_it():
    x = resample(harmonic(3.0, 32000), 32000, SR)
    found: list = []
    y = dsp.apply_chain(x, SR, RECOVERY, reports=found)
    assert len(found) == 1 and found[0].acted and found[0].kind == "brick-wall"
    assert 15000 < found[0].cutoff_hz < 16500
    assert band_db(y, SR, 16500, 19500) > band_db(x, SR, 16500, 19500) + 30
    # Below the cutoff the output is the input: the difference holds nothing there.
    assert band_db(y - x, SR, 100, 14000) < band_db(x, SR, 100, 14000) - 60


def test_preset_toml_with_the_step_loads_and_bad_settings_are_one_line_errors():
    ok = presets.parse('name = "mine"\n[[steps]]\nkind = "spectral_recovery"\nceiling_hz = 18000.0\n', "mine.toml")
    assert ok.has("spectral_recovery") and ok.steps[0].params == {"ceiling_hz": 18000.0}
    for bad in ("source_octaves = 5.0", "no_such_setting = 1", "hop = 500"):
        with pytest.raises(PresetError) as exc:
            presets.parse(f'[[steps]]\nkind = "spectral_recovery"\n{bad}\n', "bad.toml")
        assert "bad.toml" in str(exc.value) and "spectral_recovery" in str(exc.value)
        assert "\n" not in str(exc.value)


def test_paper_preset_is_unchanged_and_has_no_recovery():
    assert not presets.load("paper").has("spectral_recovery")
    assert presets.load("adaptive").has("spectral_recovery")


def test_for_recovery_turns_off_or_lowers_the_ceiling():
    adaptive = presets.load("adaptive")
    off, note = presets.for_recovery(adaptive, False)
    assert not off.has("spectral_recovery") and note == "turned off"
    same, note = presets.for_recovery(adaptive, True, None)
    assert same is adaptive and note is None
    low, note = presets.for_recovery(adaptive, True, 32000)
    assert all(s.params["ceiling_hz"] == 16000 for c in low.chains().values() for s in c
               if s.kind == "spectral_recovery")
    assert "32 kHz" in note and "16 kHz" in note
    mine = presets.parse('[[steps]]\nkind = "spectral_recovery"\nceiling_hz = 12000.0\n'
                         '[[stems.drums.steps]]\nkind = "spectral_recovery"\n', "mine.toml")
    low, _ = presets.for_recovery(mine, True, 32000)
    assert low.steps[0].params["ceiling_hz"] == 12000.0  # already below: kept
    assert low.stem_steps["drums"][0].params["ceiling_hz"] == 16000


# --- the pipeline ---------------------------------------------------------------------------------


def test_full_band_input_is_restored_bit_for_bit_as_without_recovery(tmp_path):
    rng = np.random.default_rng(5)
    x = (harmonic(3.0, SR) + 0.01 * rng.standard_normal((2, 3 * SR))).astype(np.float32)
    song = audio.write(tmp_path / "full.wav", x, SR)
    with_step = pipeline.run(song, tmp_path / "a", settings=pipeline.Settings(mode="direct"))
    without = pipeline.run(song, tmp_path / "b", settings=pipeline.Settings(mode="direct", recovery=False))
    assert np.array_equal(with_step.restored.audio, without.restored.audio)
    rec = with_step.to_dict()["recovery"]
    assert rec["in_preset"] and rec["acted_on"] == [] and rec["chains"]["mix"]["kind"] in ("full-band", "roll-off")
    assert without.to_dict()["recovery"]["note"] == "turned off"


def test_stemwise_each_stem_gets_its_own_recovery(tmp_path):
    stems = {"other": resample(harmonic(3.0, 32000, f0=330.0), 32000, SR),
             "drums": resample((0.05 * np.random.default_rng(2).standard_normal((2, 3 * 32000))
                                      ).astype(np.float32), 32000, SR),
             "bass": resample(harmonic(3.0, 32000, f0=55.0), 32000, SR) * 0.5}
    # A bass stem ends in a natural roll-off, far below the resampler's wall.
    stems["bass"] = scipy.signal.sosfilt(scipy.signal.butter(2, 300.0, fs=SR, output="sos"),
                                         stems["bass"], axis=-1).astype(np.float32)
    n = min(v.shape[1] for v in stems.values())
    stems = {k: v[:, :n] for k, v in stems.items()}
    song = audio.write(tmp_path / "mix.wav", sum(stems.values()), SR)
    folder = write_stems(tmp_path / "stems", stems)
    result = pipeline.run(song, tmp_path / "out", StemsFolder(folder), pipeline.Settings(mode="stemwise"))
    rec = result.to_dict()["recovery"]
    assert set(rec["ran_on"]) == set(stems)
    assert {"other", "drums"} <= set(rec["acted_on"]) and "bass" not in rec["acted_on"]
    assert rec["chains"]["other"]["character"] != rec["chains"]["drums"]["character"]
    assert band_db(result.restored.audio, SR, 16500, 19500) > band_db(sum(stems.values()), SR, 16500, 19500) + 20


def test_compare_reports_recovery_per_output(tmp_path):
    x = resample(harmonic(2.0, 32000), 32000, SR)
    song = audio.write(tmp_path / "s.wav", x, SR)
    result = pipeline.compare(song, tmp_path / "cmp", None, pipeline.Settings())
    d = result.to_dict()
    assert d["outputs"]["direct"]["recovery"]["acted_on"] == ["mix"]
    assert d["outputs"]["routed"]["recovery"]["band_added_hz"][1] > 19000
    # The figure marks the input's cutoff and the results that got a band back above it.
    marks = figures._recovery_cutoffs(result)
    assert 15000 < marks["input"][0] < 16500 and marks["routed"][1] and marks["direct"][1]
    assert (tmp_path / "cmp" / "spectrograms.png").is_file()


# --- bad input ------------------------------------------------------------------------------------


def _changing(sr: int = SR) -> np.ndarray:
    """Cut at 11 kHz (an MP3 encoder's low-pass) for 4 s, then at 16 kHz for 4 s."""
    x = harmonic(8.0, sr, f0=180.0)
    half = x.shape[1] // 2
    return np.concatenate([lowpassed(x, sr, 11000.0)[:, :half], lowpassed(x, sr, 16000.0)[:, half:]], axis=1)


def _partly_cut(sr: int = SR) -> np.ndarray:
    """Cut at 11 kHz for 4 s, then full band for 4 s."""
    x = harmonic(8.0, sr, f0=180.0)
    half = x.shape[1] // 2
    return np.concatenate([lowpassed(x, sr, 11000.0)[:, :half], x[:, half:]], axis=1)


BAD = {
    "mono": (lambda: resample(harmonic(3.0, 32000, channels=1), 32000, SR), SR, True),
    "8 kHz file": (lambda: harmonic(3.0, 8000), 8000, True),
    "all high band": (lambda: lowpassed(harmonic(3.0, SR, f0=1000.0), SR, 21000.0)
                      - lowpassed(harmonic(3.0, SR, f0=1000.0), SR, 12000.0), SR, False),
    "silence": (lambda: np.zeros((2, 3 * SR), np.float32), SR, False),
    "cutoff changes halfway": (_changing, SR, True),
    "cut for less than half": (_partly_cut, SR, False),
}


@pytest.mark.parametrize("name", list(BAD))
def test_bad_input_gives_a_correct_output_and_a_report(tmp_path, name):
    make, sr, expect_added = BAD[name]
    x = make()
    song = audio.write(tmp_path / "in.wav", x, sr)
    result = pipeline.run(song, tmp_path / "out", settings=pipeline.Settings(mode="direct"))
    d = json.loads((tmp_path / "out" / "report.json").read_text())
    chain = d["recovery"]["chains"]["mix"]
    assert d["bandwidth"]["kind"] == chain["kind"]
    assert chain["reason"] and chain["kind"]
    y, _ = audio.read(result.output_path)  # a direct run streams: its result is the file
    assert y.shape[0] == x.shape[0] and np.all(np.isfinite(y)) and np.max(np.abs(y)) <= 1.0
    assert bool(d["recovery"]["acted_on"]) == expect_added, chain
    if name == "cutoff changes halfway":
        blocks = chain["block_cutoffs_hz"]
        assert 10000 < blocks[0] < 11500 and 15000 < blocks[-1] < 16500
        half = y.shape[1] // 2
        # Each half is filled from its own cutoff: the first from 11 kHz, the second from 16 kHz
        # only (its 12-15 kHz is its own).
        assert band_db(y[:, :half - SR], SR, 12000, 15000) > band_db(x[:, :half - SR], SR, 12000, 15000) + 30
        second, second_in = y[:, half + SR:], x[:, half + SR:]
        assert abs(band_db(second, SR, 12000, 15000) - band_db(second_in, SR, 12000, 15000)) < 1.5
        assert band_db(second, SR, 16500, 19500) > band_db(second_in, SR, 16500, 19500) + 30
    if name == "cut for less than half":
        assert re.search(r"brick wall at 1[01]\d{3} Hz in 1 of 4 blocks", chain["reason"]), chain["reason"]
        assert chain["reason"].endswith("left alone")
    if name == "8 kHz file":
        assert chain["cutoff_hz"] is not None and chain["band_added_hz"][1] > 15000
        assert chain["cutoff_is"] == "the 8 kHz file's 4 kHz Nyquist limit, through the resampler's passband"
    elif sr == SR:  # a 44.1 kHz file's walls lie inside its band: they are what they are
        assert chain["cutoff_is"] is None


# --- the CLI --------------------------------------------------------------------------------------


def test_cli_run_on_a_32k_clip_adds_the_band_and_says_so(tmp_path):
    song = audio.write(tmp_path / "clip_32k.wav", harmonic(3.0, 32000), 32000)
    r = cli("run", song, "-o", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    assert "spectral recovery: added" in r.stdout and "brick-wall" in r.stdout
    rep = report(tmp_path / "out")
    assert rep["output"]["sample_rate"] == 44100
    assert rep["recovery"]["band_added_hz"][0] < 16500 and rep["recovery"]["band_added_hz"][1] > 19500
    assert rep["metrics"]["input"]["bandwidth_hz"] < 16500 < rep["metrics"]["output"]["bandwidth_hz"]
    assert rep["bandwidth"]["kind"] == "brick-wall" and 15000 < rep["bandwidth"]["cutoff_hz"] < 16500
    # The wall is the file's own Nyquist limit, and the report says so (not a cut inside its band).
    assert rep["recovery"]["chains"]["mix"]["cutoff_is"] == ("the 32 kHz file's 16 kHz Nyquist limit, through the "
                                                             "resampler's passband")
    assert "16 kHz Nyquist limit" in r.stdout
    y, info = audio.read(tmp_path / "out" / "restored.wav", sr=None)
    assert info.sample_rate == 44100
    assert band_db(y, 44100, 16500, 19500) > band_db(resample(harmonic(3.0, 32000), 32000, SR),
                                                     SR, 16500, 19500) + 30

    r = cli("run", song, "-o", tmp_path / "orig", "--output-sr", "original")
    assert r.returncode == 0, r.stderr
    assert "no band recovered above its 16 kHz Nyquist" in r.stdout
    assert report(tmp_path / "orig")["output"]["sample_rate"] == 32000

    r = cli("run", song, "-o", tmp_path / "off", "--no-recovery")
    assert r.returncode == 0, r.stderr
    assert "spectral recovery: turned off" in r.stdout
    assert report(tmp_path / "off")["recovery"]["acted_on"] == []


def test_cli_batch_and_compare_take_no_recovery(tmp_path):
    for name in ("a", "b"):
        audio.write(tmp_path / "in" / f"{name}.wav", harmonic(1.5, 32000, seed=len(name)), 32000)
    r = cli("run", tmp_path / "in", "-o", tmp_path / "batch", "--no-recovery")
    assert r.returncode == 0, r.stderr
    for name in ("a", "b"):
        assert report(tmp_path / "batch" / name)["recovery"]["note"] == "turned off"
    r = cli("compare", tmp_path / "in" / "a.wav", "-o", tmp_path / "cmp", "--no-recovery", "--no-figures")
    assert r.returncode == 0, r.stderr
    outputs = json.loads((tmp_path / "cmp" / "compare.json").read_text())["outputs"]
    assert all(o["recovery"]["note"] == "turned off" and o["recovery"]["acted_on"] == [] for o in outputs.values())


# --- streaming --------------------------------------------------------------------------------------


def test_the_detector_reads_a_stream_as_it_reads_the_whole_array():
    from adaptive_argm.core import bandwidth, blocks, recovery
    from adaptive_argm.core.signal import InMemory

    x = _changing()
    whole = bandwidth.block_spectra(x, SR)
    for size in (1000, 1 << 16):
        streamed = bandwidth.block_spectra_stream(blocks.slices(x, size), x.shape[1], 2, SR)
        np.testing.assert_allclose(streamed[0], whole[0], rtol=1e-5, atol=1e-20)
        np.testing.assert_allclose(streamed[1], whole[1], rtol=1e-9)
        assert streamed[2] == whole[2]
    assert recovery.detected(InMemory(x, SR), SR) == recovery.detected(x, SR)


def test_a_long_stream_is_recovered_segment_by_segment(monkeypatch):
    from adaptive_argm.core import steps

    # Segments of 3 s (an input over 2 s is cut): the band is added in each, full band stays bit for bit.
    monkeypatch.setattr(steps, "RECOVERY_BLOCK_S", 3.0)
    monkeypatch.setattr(steps, "RECOVERY_WHOLE_UP_TO_S", 2.0)
    x = resample(harmonic(8.0, 32000), 32000, SR)
    found: list = []
    y = dsp.apply_chain(x, SR, RECOVERY, reports=found)
    assert len(found) == 3 and all(r.acted for r in found)
    for a in range(0, x.shape[1] - SR, 3 * SR):  # every segment, away from its edges
        part, part_in = y[:, a + 2048:a + 3 * SR - 2048], x[:, a + 2048:a + 3 * SR - 2048]
        assert band_db(part, SR, 16500, 19500) > band_db(part_in, SR, 16500, 19500) + 30
        assert np.max(np.abs(part - part_in)) < 0.1  # only a band was added
    merged = recovery_merged(found)
    assert merged.acted and "3 of 3 segments" in merged.reason and len(merged.bandwidth.block_cutoffs_hz) >= 4
    full = (0.1 * np.random.default_rng(4).standard_normal((2, 8 * SR))).astype(np.float32)
    found = []
    assert np.array_equal(dsp.apply_chain(full, SR, RECOVERY, reports=found), full)
    assert len(found) == 3 and not recovery_merged(found).acted


def recovery_merged(reports):
    from adaptive_argm.core.recovery import merged
    return merged(reports)


def test_a_96k_input_gets_no_band_added(tmp_path):
    # Full band at 96 kHz, and a 44.1 kHz file upsampled to 96 kHz (its wall at 22 kHz, above
    # the 20 kHz ceiling): the run works at 96 kHz and recovery adds nothing to either.
    rng = np.random.default_rng(5)
    full = (0.05 * rng.standard_normal((2, 2 * 96000))).astype(np.float32)
    up = resample(harmonic(2.0, SR), SR, 96000)
    for name, x in (("full", full), ("up", up)):
        song = audio.write(tmp_path / f"{name}.wav", x, 96000)
        pipeline.run(song, tmp_path / name, settings=pipeline.Settings(mode="direct"))
        d = json.loads((tmp_path / name / "report.json").read_text())
        assert d["output"]["sample_rate"] == 96000
        assert d["recovery"]["in_preset"] and d["recovery"]["acted_on"] == [], d["recovery"]
