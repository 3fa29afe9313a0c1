"""The router on real MusicGen stems and on constructed cases."""

from __future__ import annotations

import tempfile

import numpy as np
import pytest

from adaptive_argm.config import SettingError
from adaptive_argm.core import audio, dsp, pipeline, presets, signal
from adaptive_argm.core.dc import remove_dc
from adaptive_argm.core.route import RouterConfig, route
from adaptive_argm.core.separate import Separation, SeparatorInfo, StemsFolder
from adaptive_argm.core.steps import Step
from adaptive_argm.evaluation import degrade
from test_denoise import coloured, phrases

SR = audio.WORK_SR


def corpus_stems(corpus, song: str):
    mix, _ = audio.read(corpus / song / "mixed.wav")
    mix = remove_dc(mix, SR)
    sep = StemsFolder(corpus / song, exclude=(corpus / song / "mixed.wav",))(mix, SR)
    return mix, dict(sep.stems)


def test_stems_folder_maps_musicgen_layout_onto_demucs_sources(corpus):
    mix, stems = corpus_stems(corpus, "lofi_chill")
    assert set(stems) == {"drums", "bass", "other"}
    sep = StemsFolder(corpus / "lofi_chill", exclude=(corpus / "lofi_chill" / "mixed.wav",))(mix, SR)
    assert abs(sep.info.gain - 0.25) < 1e-3  # mixed.wav is the mean of the four stems
    assert sep.info.residual_db < -60
    assert sorted(sep.info.folded["other"]) == ["harmony", "melody"]


def test_router_processes_a_full_song_and_skips_the_silent_vocals(corpus):
    for song in ("acoustic_folk", "lofi_chill", "upbeat_electronic"):
        mix, stems = corpus_stems(corpus, song)
        stems["vocals"] = np.zeros_like(mix)
        plan = route(stems, mix, SR)
        assert plan.mode_used == "stemwise", song
        decisions = {s.name: s.decision for s in plan.stems}
        assert decisions == {"drums": "process", "bass": "process", "other": "process", "vocals": "skip"}, song
        vocals = next(s for s in plan.stems if s.name == "vocals")
        assert "near-silent" in vocals.reason


def test_router_falls_back_to_direct_when_only_other_is_informative(corpus):
    mix, stems = corpus_stems(corpus, "acoustic_folk")
    only_other = stems["other"]
    silent = np.zeros_like(only_other)
    plan = route({"drums": silent, "bass": silent, "other": only_other, "vocals": silent}, only_other, SR)
    assert plan.mode_used == "direct"
    assert "only 'other'" in plan.reason
    assert all(s.decision == "direct" for s in plan.stems)


def test_router_skips_a_noise_only_vocals_stem_at_minus_60_dbfs(corpus):
    mix, stems = corpus_stems(corpus, "upbeat_electronic")
    rng = np.random.default_rng(0)
    noise = rng.standard_normal(mix.shape).astype(np.float32) * 10 ** (-60 / 20)
    stems["vocals"] = noise
    plan = route(stems, mix + noise, SR)
    vocals = next(s for s in plan.stems if s.name == "vocals")
    assert abs(vocals.rms_dbfs + 60) < 0.5
    assert vocals.decision == "skip"
    assert plan.mode_used == "stemwise"


def test_router_reports_every_measurement_in_forced_modes(corpus):
    mix, stems = corpus_stems(corpus, "lofi_chill")
    stems["vocals"] = np.zeros_like(mix)
    forced = route(stems, mix, SR, mode="stemwise")
    assert forced.mode_used == "stemwise"
    assert all(s.decision == "process" for s in forced.stems)
    assert "router would skip" in next(s for s in forced.stems if s.name == "vocals").reason
    direct = route(stems, mix, SR, mode="direct")
    assert direct.mode_used == "direct" and all(s.decision == "direct" for s in direct.stems)


def test_thresholds_come_from_the_config():
    t = np.arange(SR * 2) / SR
    mix_part = (0.3 * np.sin(2 * np.pi * 220 * t))[None].astype(np.float32)
    quiet = (0.3 * 10 ** (-20 / 20) * np.sin(2 * np.pi * 880 * t))[None].astype(np.float32)
    stems = {"other": mix_part, "drums": mix_part * 0.5, "vocals": quiet}
    mix = sum(stems.values())
    assert {s.name: s.decision for s in route(stems, mix, SR).stems}["vocals"] == "process"
    strict = RouterConfig(min_rel_db=-15.0)
    assert {s.name: s.decision for s in route(stems, mix, SR, cfg=strict).stems}["vocals"] == "skip"


def test_no_stems_means_direct():
    mix = np.zeros((1, SR), np.float32)
    plan = route({}, mix, SR, mode="routed")
    assert plan.mode_used == "direct" and plan.stems == ()


# --- per-kind decisions ---------------------------------------------------------------------


def harmonic_stems(seconds: float = 4.0) -> dict[str, np.ndarray]:
    """Three stereo stems of decaying harmonic notes in different registers (steady enough to be
    music, not noise), about -20 dBFS each."""
    t = np.arange(int(seconds * SR)) / SR
    env = np.exp(-3.0 * (t % 0.5))
    out = {}
    for name, f0 in (("bass", 55.0), ("other", 330.0), ("vocals", 880.0)):
        x = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 8)) * env
        x = 0.1 * x / np.max(np.abs(x))
        out[name] = np.stack([x, x]).astype(np.float32)
    return out


def adaptive_router_inputs():
    preset = presets.load("adaptive")
    return pipeline.step_kinds(preset), pipeline.step_probe(preset)


def white(shape, dbfs: float = -45.0, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(shape) * 10 ** (dbfs / 20)).astype(np.float32)


def test_denoising_goes_to_the_stems_when_one_stem_carries_the_hiss():
    stems = harmonic_stems()
    noise = white(stems["other"].shape)
    stems["other"] = stems["other"] + noise
    kinds, probe = adaptive_router_inputs()
    plan = route(stems, sum(stems.values()), SR, "routed", kinds=kinds, probe=probe)
    decided = {k.kind: k for k in plan.kinds}
    assert plan.mode_used == "stemwise" and plan.direct_kinds() == ()
    assert decided["wiener"].mode_used == "stemwise" and "exposes" in decided["wiener"].reason
    assert "weaker" not in decided["wiener"].reason  # the fluctuation test sees this hiss
    # A linear kind goes wherever the others go: with the denoiser, to the stems.
    with_dc = route(stems, sum(stems.values()), SR, "routed", kinds=("dc_remove", *kinds), probe=probe)
    assert {k.kind: k.mode_used for k in with_dc.kinds}["dc_remove"] == "stemwise"


def test_denoising_stays_on_the_mix_when_separation_shares_the_hiss_by_power():
    stems = harmonic_stems()
    mix = sum(stems.values())
    noise = white(mix.shape)
    for name, share in degrade.split_difference(noise.astype(np.float64), stems, SR).items():
        stems[name] = (stems[name] + share).astype(np.float32)
    kinds, probe = adaptive_router_inputs()
    plan = route(stems, mix + noise, SR, "routed", kinds=kinds, probe=probe)
    decided = {k.kind: k for k in plan.kinds}
    assert decided["wiener"].mode_used == "direct" and "hides it" in decided["wiener"].reason
    # Spectral recovery follows the clip's decision: it runs on the stems, the denoiser on their remix.
    assert "spectral_recovery" in kinds and plan.direct_kinds() == ("wiener",)
    # When every kind runs on the mix, the clip is restored directly and says why.
    denoise_only = route(stems, mix + noise, SR, "routed", kinds=("wiener",), probe=probe)
    assert denoise_only.mode_used == "direct" and "every step kind" in denoise_only.reason
    assert all(s.decision == "direct" for s in denoise_only.stems)
    # Forced modes run every kind as forced, whatever the evidence.
    forced = route(stems, mix + noise, SR, "stemwise", kinds=kinds, probe=probe)
    assert forced.mode_used == "stemwise" and {k.mode_used for k in forced.kinds} == {"stemwise"}


def test_the_denoiser_is_routed_by_its_weak_evidence_only_where_the_strong_finds_nothing():
    # Chords over pink hiss with short breaths: the fluctuation test finds nothing in the mix nor
    # in a stem, the bare floor between the chords does.
    music = phrases(10)
    stems = {"bass": harmonic_stems(10.0)["bass"],
             "other": np.stack([music + coloured(music.size, "pink", -45.0, seed=s) for s in (3, 4)])}
    mix = sum(stems.values())
    kinds, probe = adaptive_router_inputs()
    assert all(probe("wiener", x, n, False) == 0.0 for n, x in [(None, mix), *stems.items()])
    assert probe("wiener", mix, None, True) > 0.0 and probe("wiener", stems["other"], "other", True) > 0.0
    wiener = next(k for k in route(stems, mix, SR, "routed", kinds=kinds, probe=probe).kinds if k.kind == "wiener")
    assert "by its weaker evidence only" in wiener.reason


def test_a_kind_routed_direct_runs_on_the_remix_of_the_stems_processed_without_it():
    stems = harmonic_stems()
    stems["other"] = stems["other"] + white(stems["other"].shape, -40.0)
    mix = sum(stems.values())
    gain = Step("pedalboard.Gain", {"gain_db": -6.0})
    wiener = next(s for s in presets.load("adaptive").steps if s.kind == "wiener")
    preset = presets.Preset("split", "gain per stem, denoise on the remix", (gain, wiener))
    cfg = RouterConfig(kind_modes=(("wiener", "direct"),))
    plan = route(stems, mix, SR, "routed", cfg, kinds=pipeline.step_kinds(preset))
    assert plan.mode_used == "stemwise" and plan.direct_kinds() == ("wiener",)
    assert {k.kind: k.mode_used for k in plan.kinds} == {"pedalboard.Gain": "stemwise", "wiener": "direct"}
    restored, processed = pipeline.restore(mix, plan, preset, Separation(dict(stems), SeparatorInfo("oracle")),
                                           clip_mode="none")
    expected = dsp.apply_chain(sum(dsp.apply_chain(x, SR, (gain,)) for x in stems.values()), SR, (wiener,))
    assert np.max(np.abs(restored.audio - expected)) < 1e-5
    assert processed == {}  # stems that went through part of the chain are not cached as processed
    # The denoiser acted on the remix: the result is not just the stems at -6 dB.
    assert np.max(np.abs(restored.audio - sum(dsp.apply_chain(x, SR, (gain,)) for x in stems.values()))) > 1e-3


def test_per_kind_policies_are_checked():
    with pytest.raises(SettingError):
        RouterConfig(kind_modes=(("wiener", "sometimes"),))


@pytest.mark.parametrize("spilled", [False, True])
def test_compare_restores_routed_per_kind_from_unprocessed_copies_of_the_stems(tmp_path, monkeypatch, spilled):
    # compare restores stem-wise in place, then routed's split chain on its own copies (restored
    # in place too, the stem-wise stems freed first): routed must be what `run` makes of the stems,
    # whether the copies were held in memory or, as for a long file, in a spill file on disk.
    disk_spaces = []

    def workspace(on_disk):
        disk_spaces.append(on_disk)
        return signal.workspace(on_disk)

    monkeypatch.setattr(pipeline, "workspace", workspace)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    if spilled:
        monkeypatch.setattr(pipeline, "SPILL_COPIES_ABOVE", 0)
    stems = harmonic_stems()
    stems["other"] = stems["other"] + white(stems["other"].shape, -40.0)
    mix = sum(stems.values())
    (tmp_path / "split.toml").write_text('name = "split"\nmatch_loudness = false\n[[steps]]\nkind = "pedalboard.Gain"\n'
                                         'gain_db = -6.0\n[[steps]]\nkind = "wiener"\n')
    settings = pipeline.Settings(mode="routed", preset=str(tmp_path / "split.toml"), clip_mode="none",
                                 router=RouterConfig(kind_modes=(("wiener", "direct"),)))
    wav = tmp_path / "mix.wav"
    audio.write(wav, mix, SR)
    separate = lambda x, sr: Separation({k: v.copy() for k, v in stems.items()}, SeparatorInfo("oracle"))  # noqa: E731
    result = pipeline.compare(str(wav), tmp_path / "out", separate, settings, figures=False)
    assert result.plan.direct_kinds() == ("wiener",)
    assert disk_spaces[0] is spilled  # 0.1 MB of copies: held in memory unless told otherwise
    assert not list(tmp_path.glob(signal.SPILL_PREFIX + "*"))  # the spill file went with the stage
    pipeline.run(str(wav), tmp_path / "run", separate, settings)
    routed, _ = audio.read(tmp_path / "out" / "routed.wav", sr=None)
    ran, _ = audio.read(tmp_path / "run" / "restored.wav", sr=None)
    assert np.array_equal(routed, ran)
