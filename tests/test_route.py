"""The router on real MusicGen stems and on constructed cases."""

from __future__ import annotations

import numpy as np

from adaptive_argm.core import audio
from adaptive_argm.core.dc import remove_dc
from adaptive_argm.core.route import RouterConfig, route
from adaptive_argm.core.separate import StemsFolder

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
