"""What each step reports (acted or bypassed, why, energy removed), and the verdict on a result:
changed or not, decided by the numeric check and explained by the steps."""

from __future__ import annotations

import math

import numpy as np
import pytest

from adaptive_argm.core import change, dsp, presets
from adaptive_argm.core.steps import Step, run_reported

from conftest import SR, music_like


def hissy(seconds: float = 3.0, level_dbfs: float = -45.0) -> np.ndarray:
    x = music_like(seconds)[None]
    return (x + 10 ** (level_dbfs / 20) * np.random.default_rng(1).standard_normal(x.shape)).astype(np.float32)


def test_the_denoiser_says_why_it_left_clean_music_alone():
    x = music_like(3.0)[None]
    y, outcome = run_reported(Step("wiener"), x, SR)
    assert np.array_equal(y, x) and not outcome.acted and outcome.removed_db == -math.inf
    assert outcome.reason.startswith("no steady hiss found")


def test_the_denoiser_reports_the_energy_it_removed_also_in_place():
    x = hissy()
    copy = x.copy()
    y, outcome = run_reported(Step("wiener"), copy, SR, out=copy)
    assert y is copy or np.shares_memory(y, copy)
    assert outcome.acted and -40.0 < outcome.removed_db < -10.0 and "removed steady hiss" in outcome.reason
    removed_db = 10 * np.log10((np.sum(x.astype(np.float64) ** 2) - np.sum(y.astype(np.float64) ** 2))
                               / np.sum(x.astype(np.float64) ** 2))
    assert outcome.removed_db == pytest.approx(removed_db, abs=0.5)  # its STFT-domain count agrees


def test_the_denoiser_says_when_it_filtered_the_stereo_side_and_counts_what_that_removed():
    rng = np.random.default_rng(2)
    x = (np.stack([music_like(8.0), 0.9 * music_like(8.0)])
         + 10 ** (-45 / 20) * rng.standard_normal((2, 8 * SR))).astype(np.float32)
    y, outcome = run_reported(Step("wiener", {"mid_side": True}), x.copy(), SR)
    y_channels, channels = run_reported(Step("wiener"), x.copy(), SR)
    assert "the stereo side once more on its own estimate in 1 block" in outcome.reason
    assert "stereo side" not in channels.reason
    energy = [np.sum(v.astype(np.float64) ** 2) for v in (x, y, y_channels)]
    assert energy[1] < energy[2]  # the side's own filter removed more
    assert outcome.removed_db == pytest.approx(10 * np.log10((energy[0] - energy[1]) / energy[0]), abs=0.5)


def test_a_step_is_marked_identical_only_when_it_gave_its_input_back_bit_for_bit():
    x = music_like(3.0)[None]
    _, clean = run_reported(Step("wiener"), x, SR)
    _, hiss = run_reported(Step("wiener"), hissy(), SR)
    _, dc = run_reported(Step("dc_remove"), x + np.float32(1e-3), SR)
    assert clean.identical and not hiss.identical and not dc.identical
    assert "identical" not in clean.to_dict()  # not part of the record


def test_too_short_for_the_denoiser_is_a_reason_too():
    _, outcome = run_reported(Step("wiener"), np.full((1, 100), 0.1, np.float32), SR)
    assert not outcome.acted and "shorter than one 2048-sample analysis frame" in outcome.reason


def test_dc_removal_is_reported_but_never_counts_as_a_change():
    x = music_like(1.0)[None] + np.float32(0.05)
    _, outcome = run_reported(Step("dc_remove"), x, SR)
    assert outcome.acted and outcome.dc_only and "0.05" in outcome.reason
    _, none = run_reported(Step("dc_remove"), x - x.mean(), SR)
    assert not none.acted and none.reason == "no DC offset to remove"


def test_the_chain_reports_each_step_and_a_plugin_group_as_one():
    outcomes = []
    dsp.apply_chain(music_like(2.0)[None], SR, presets.load("paper").chain_for(None), outcomes=outcomes)
    assert [o.step for o in outcomes] == ["noisereduce", "NoiseGate + Compressor + LowShelfFilter + Gain"]
    assert all(o.acted for o in outcomes)
    identity = []
    dsp.apply_chain(music_like(1.0)[None], SR, (Step("pedalboard.Gain", {"gain_db": 0.0}),), outcomes=identity)
    assert not identity[0].acted and identity[0].reason == "left the signal bit for bit unchanged"


def test_the_numeric_check_decides_and_the_steps_explain():
    x = music_like(2.0)[None]
    bypassed = run_reported(Step("wiener"), x, SR)[1]
    same = change.assess(x.copy(), x, (bypassed,))
    assert not same.changed and same.agree and same.difference_db == -math.inf
    assert same.summary().startswith("changed: false (output = input after DC removal")
    assert "wiener: no steady hiss found" in same.summary()
    louder = change.assess(x * np.float32(1.1), x, (bypassed,), loudness_gain_db=0.83)
    assert louder.changed and louder.agree and louder.reasons == ["loudness matched to the input: +0.83 dB"]
    # no step and no gain explains a change: said, and the numeric check still decides
    unexplained = change.assess(x * np.float32(1.1), x, (bypassed,))
    assert unexplained.changed and not unexplained.agree and "the numeric check decides" in unexplained.summary()
    # a remix of stems that do not add up to the mix exactly
    remix = change.assess(x + np.float32(1e-3), x, (), separated=True)
    assert remix.changed and remix.agree and "do not add up" in remix.summary()


def test_a_rounding_sized_difference_is_no_change():
    x = music_like(1.0)[None]
    tiny = change.assess(x + np.float32(5e-7), x, ())
    assert not tiny.changed and tiny.max_abs_diff == pytest.approx(5e-7, rel=0.1)


def test_outcomes_and_verdict_of_a_stream_do_not_depend_on_its_blocks():
    from adaptive_argm.core.blocks import slices

    x = hissy(4.0)
    chain = presets.load("adaptive").chain_for(None)
    whole: list = []
    y = dsp.apply_chain(x, SR, chain, outcomes=whole)
    for size in (4096, 50000):
        streamed: list = []
        stage = dsp.chain_stage(chain, SR, x.shape[1], x.shape[0], streamed)
        ys = np.concatenate(list(stage(slices(x, size))), axis=1)
        np.testing.assert_array_equal(ys, y)
        assert [(o.step, o.acted, o.reason) for o in streamed] == [(o.step, o.acted, o.reason) for o in whole]
        for a, b in zip(streamed, whole):
            assert a.removed_db == pytest.approx(b.removed_db, abs=1e-6) or a.removed_db == b.removed_db
    assert change.compared(y, x, SR)[0] == float(np.abs(y.astype(np.float64) - x).max())
