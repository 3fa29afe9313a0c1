"""Demucs through its own API, loaded by the code path users hit; user stems; fast offline
failure. Random-weight models here test plumbing only: their stems mean nothing."""

from __future__ import annotations

import time

import numpy as np
import pytest

from adaptive_argm.core import audio, models, separate
from adaptive_argm.core.dc import remove_dc
from adaptive_argm.config import STEM_NAMES
from adaptive_argm.core.separate import SeparationError, SeparatorOptions

from conftest import SR, synthetic_stems, tiny_model_repo


@pytest.mark.parametrize("channels", [1, 2])
def test_demucs_unittest_model_separates_into_four_stems_that_add_up(channels):
    mix = sum(synthetic_stems(seconds=2.0, channels=channels).values())
    sep = separate.DemucsSeparator("demucs_unittest")(mix, SR)
    assert set(sep.stems) == set(STEM_NAMES)
    for s in sep.stems.values():
        assert s.shape == mix.shape and s.dtype == np.float32
    assert sep.info.name == "demucs" and sep.info.weights == "builtin"


def test_tiny_model_in_a_model_repo_loads_through_demucs_get_model(tmp_path, offline):
    repo = tiny_model_repo(tmp_path / "repo")
    assert models.check_repo(repo) == []
    assert models.locate("tiny", repo).where == "model-repo"
    sep_obj, notice = separate.resolve(SeparatorOptions("auto", model="tiny", model_repo=repo))
    assert isinstance(sep_obj, separate.DemucsSeparator) and notice is None
    mix = sum(synthetic_stems(seconds=1.5, channels=2).values())
    sep = sep_obj(mix, SR)
    assert set(sep.stems) == set(STEM_NAMES) and sep.info.weights == "model-repo"


def test_auto_without_weights_restores_directly_and_says_how_to_get_stems(offline):
    t0 = time.perf_counter()
    sep, notice = separate.resolve(SeparatorOptions("auto", model="htdemucs"))
    assert time.perf_counter() - t0 < 5
    assert sep is None
    assert "--model-repo" in notice and "--stems" in notice and "models fetch" in notice


@pytest.mark.parametrize("separator, mode", [("demucs", "routed"), ("auto", "stemwise")])
def test_asking_for_demucs_without_weights_fails_fast(offline, separator, mode):
    t0 = time.perf_counter()
    with pytest.raises(models.ModelUnavailable, match="--model-repo"):
        separate.resolve(SeparatorOptions(separator, model="htdemucs"), mode=mode)
    assert time.perf_counter() - t0 < 5


def test_models_check_flags_weights_without_their_yaml(tmp_path):
    good = tiny_model_repo(tmp_path / "good")
    assert models.check_repo(good) == []
    broken = tmp_path / "broken"
    broken.mkdir()
    (good / "0a1b2c3d.th").rename(broken / "0a1b2c3d.th")
    problems = models.check_repo(broken)
    assert problems and "yaml" in problems[0].lower()
    assert any("names model 0a1b2c3d" in p for p in models.check_repo(good))


def test_user_stems_that_do_not_add_up_are_refused_unless_forced(tmp_path):
    stems = synthetic_stems(seconds=1.0)
    for name, x in stems.items():
        audio.write(tmp_path / f"{name}.wav", x, SR)
    mix = stems["drums"] + 0.2 * np.random.default_rng(0).standard_normal(stems["drums"].shape).astype(np.float32)
    with pytest.raises(SeparationError, match="do not add up"):
        separate.StemsFolder(tmp_path)(mix, SR)
    sep = separate.StemsFolder(tmp_path, force=True)(mix, SR)
    assert sep.info.residual_db > -20


def test_two_files_for_one_stem_are_refused_not_one_of_them_dropped(tmp_path):
    stems = synthetic_stems(seconds=1.0)
    for name, x in stems.items():
        audio.write(tmp_path / f"{name}.wav", x, SR)
    audio.write(tmp_path / "drums.flac", stems["drums"], SR)
    with pytest.raises(SeparationError, match=r"two files for the stem 'drums' \(drums.flac, drums.wav\)"):
        separate.StemsFolder(tmp_path)(sum(stems.values()), SR)


def test_user_stems_fit_one_gain_and_match_the_mix_channels(tmp_path):
    stems = synthetic_stems(seconds=1.0, channels=1)
    for name, x in stems.items():
        audio.write(tmp_path / f"{name}.wav", x, SR)
    mix = remove_dc(np.repeat(0.25 * sum(stems.values()), 2, axis=0), SR)
    sep = separate.StemsFolder(tmp_path)(mix, SR)
    assert abs(sep.info.gain - 0.25) < 1e-3
    assert all(s.shape == mix.shape for s in sep.stems.values())
    np.testing.assert_allclose(sum(sep.stems.values()), mix, atol=1e-4)


@pytest.mark.parametrize("channels, shifts", [(1, 0), (2, 1)])
def test_demucs_reports_its_progress_chunk_by_chunk(channels, shifts):
    mix = sum(synthetic_stems(seconds=2.0, channels=channels).values())
    done: list[float] = []
    sep = separate.DemucsSeparator("demucs_unittest", segment=1.0, shifts=shifts)
    stems = sep(mix, SR, progress=done.append).stems
    assert set(stems) == set(STEM_NAMES)
    # 1 s chunks at 25% overlap over 2 s: 3 chunks per pass, the last one past the end
    assert len(done) >= 2 * max(shifts, 1) and done[-1] == 1.0
    assert all(0 < a < b for a, b in zip(done, done[1:]))  # only grows
    assert done[0] <= 0.5 / max(shifts, 1)


def test_a_separator_without_progress_is_called_as_before(tmp_path):
    folder = tmp_path / "stems"
    stems = synthetic_stems(seconds=1.0)
    for name, x in stems.items():
        audio.write(folder / f"{name}.wav", x, SR)
    assert not getattr(separate.StemsFolder(folder), "reports_progress", False)
