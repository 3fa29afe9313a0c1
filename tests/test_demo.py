"""The built-in demo: songs whose true stems add up to the mix, with MusicGen's defects, and a
demo command that runs end to end with no model and routes the no-drums/no-bass song to direct."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from adaptive_argm.config import DEFAULT_MODEL, STEM_NAMES
from adaptive_argm.core import audio, models
from adaptive_argm.core.dc import remove_dc
from adaptive_argm.evaluation import demo
from adaptive_argm.cli import app

from conftest import tiny_model_repo

SECONDS = 3.0


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    folder = tmp_path_factory.mktemp("demo-songs")
    return {name: demo.write_song(demo.synthesize(name, SECONDS), folder / name).parent for name in demo.SONGS}


@pytest.mark.parametrize("name", list(demo.SONGS))
def test_demo_stems_written_to_disk_sum_to_the_mix(written, name):
    mix, info = audio.read(written[name] / "mix.wav", sr=None)
    stems = {p.stem: audio.read(p, sr=None)[0] for p in sorted((written[name] / "stems").glob("*.wav"))}
    assert set(stems) == set(STEM_NAMES)
    np.testing.assert_allclose(sum(stems.values()), mix, atol=1e-6)


@pytest.mark.parametrize("name", list(demo.SONGS))
def test_demo_mix_has_musicgen_defects(written, name):
    mix, info = audio.read(written[name] / "mix.wav", sr=None)
    assert info.sample_rate == demo.MUSICGEN_SR
    assert 1 <= int(np.sum(mix > 1.0)) < 0.01 * mix.size  # a few overs, kept by the float WAV
    assert info.dc_offset == pytest.approx(demo.Defects().dc_offset, abs=0.01)
    # read at the working rate, as the pipeline does: nothing above 16 kHz
    y, _ = audio.read(written[name] / "mix.wav")
    power = np.abs(np.fft.rfft(remove_dc(y, audio.WORK_SR)[0])) ** 2
    freqs_hz = np.fft.rfftfreq(y.shape[1], 1 / audio.WORK_SR)
    assert power[freqs_hz > 16000].sum() < 1e-5 * power.sum()
    # the noise floor: the vocals stem holds nothing else
    vocals, _ = audio.read(written[name] / "stems" / "vocals.wav", sr=None)
    share_dbfs = demo.Defects().noise_dbfs - 10 * np.log10(len(STEM_NAMES))
    assert audio.peak_dbfs(vocals) < -30
    assert 10 * np.log10(np.mean(vocals ** 2)) == pytest.approx(share_dbfs, abs=3)


def test_add_defects_applies_a_lossy_codec_pass(tmp_path):
    rng = np.random.default_rng(0)
    t = np.arange(demo.MUSICGEN_SR) / demo.MUSICGEN_SR
    x = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(t.size)
    no_noise = demo.Defects(noise_dbfs=-300.0, dc_offset=0.0)
    y = demo.add_defects({"other": x}, demo.MUSICGEN_SR, rng, no_noise)["other"][0]
    error_db = 10 * np.log10(np.mean((y - x) ** 2) / np.mean(x ** 2))
    assert -45 < error_db < -5  # audibly lossy, still the same signal


def test_the_no_drums_no_bass_song_is_other_only(written):
    # its drums/bass stems carry only MusicGen's noise floor, far below the mix
    mix, info = audio.read(written["pad"] / "mix.wav", sr=None)
    for name in ("drums", "bass"):
        stem, _ = audio.read(written["pad"] / "stems" / f"{name}.wav", sr=None)
        assert np.mean(stem ** 2) < 1e-3 * np.mean(remove_dc(mix, info.sample_rate) ** 2)


def test_demo_command_runs_end_to_end_and_routes_the_no_drums_song_to_direct(offline, tmp_path):  # noqa: F811
    out = tmp_path / "demo-out"
    result = CliRunner().invoke(app, ["demo", "--out", str(out), "--seconds", str(SECONDS)])
    assert result.exit_code == 0, result.output
    for name in demo.SONGS:
        folder = out / name
        for f in ("mix.wav", "clean.wav", "direct.wav", "stemwise.wav", "routed.wav", "compare.json"):
            assert (folder / f).is_file(), f
        assert not (folder / "demucs").exists()  # no weights here: the real separator did not run
    routed = {name: json.loads((out / name / "compare.json").read_text())["router"]["mode_used"]
              for name in demo.SONGS}
    assert routed == {"groove": "stemwise", "pad": "direct"}
    cmp = json.loads((out / "groove" / "compare.json").read_text())
    assert cmp["separator"]["name"] == "stems" and cmp["separator"]["residual_db"] < -60
    assert cmp["metrics"]["input"]["si_sdr_db"] is not None  # the clean mix serves as reference
    assert "pad -> direct" in result.stdout and "groove -> stemwise" in result.stdout
    assert "Router:" in result.stdout and "p25_paper_db" in result.stdout
    assert "models fetch htdemucs" in result.stderr


@pytest.mark.slow  # a tiny HDemucs still pads every chunk to its 40 s training segment
def test_demo_also_runs_demucs_when_its_weights_are_here(offline, tmp_path):  # noqa: F811
    # a tiny random-init model stands in for htdemucs: this tests the plumbing, not separation
    tiny_model_repo(tmp_path / "fetched", name=DEFAULT_MODEL)
    assert models.locate(DEFAULT_MODEL, probe_network=False).where == "model-repo"
    result = demo.demo(tmp_path / "out", duration_s=1.5, songs=("pad",), figures=False)
    assert result.demucs == "model-repo" and not result.notes
    cmp = json.loads((tmp_path / "out" / "pad" / "demucs" / "compare.json").read_text())
    assert cmp["separator"]["name"] == "demucs" and cmp["separator"]["model"] == DEFAULT_MODEL
