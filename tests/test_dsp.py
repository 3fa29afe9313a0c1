"""Presets and the DSP chain: the paper preset is the method's chain, exactly; safety never
clips silently."""

from __future__ import annotations

import numpy as np
import pedalboard
import pytest

from adaptive_argm.core import dsp, levels, presets
from adaptive_argm.core.presets import PresetError

from conftest import SR, synthetic_stems


def test_paper_preset_is_the_methods_exact_chain():
    p = presets.load("paper")
    assert p.match_loudness is False
    kinds = [(s.kind, s.params) for s in p.steps]
    assert kinds == [
        ("noisereduce", {"stationary": True, "prop_decrease": 0.75}),
        ("pedalboard.NoiseGate", {"threshold_db": -30.0, "ratio": 1.5, "release_ms": 250.0}),
        ("pedalboard.Compressor", {"threshold_db": -16.0, "ratio": 4.0}),
        ("pedalboard.LowShelfFilter", {"cutoff_frequency_hz": 400.0, "gain_db": 10.0, "q": 1.0}),
        ("pedalboard.Gain", {"gain_db": 2.0}),
    ]


def test_paper_chain_output_matches_the_libraries_called_directly():
    import noisereduce

    x = sum(synthetic_stems(seconds=2.0, channels=2).values())
    ours = dsp.apply_chain(x, SR, presets.load("paper").steps)
    ref = noisereduce.reduce_noise(y=x, sr=SR, stationary=True, prop_decrease=0.75)
    board = pedalboard.Pedalboard([
        pedalboard.NoiseGate(threshold_db=-30, ratio=1.5, release_ms=250),
        pedalboard.Compressor(threshold_db=-16, ratio=4),
        pedalboard.LowShelfFilter(cutoff_frequency_hz=400, gain_db=10, q=1),
        pedalboard.Gain(gain_db=2),
    ])
    ref = board(ref.astype(np.float32), SR)
    assert ours.shape == x.shape
    np.testing.assert_allclose(ours, ref, atol=1e-6)


def test_chain_keeps_channels_and_length():
    for channels in (1, 2):
        x = sum(synthetic_stems(seconds=1.3, channels=channels).values())
        y = dsp.apply_chain(x, SR, presets.load("paper").steps)
        assert y.shape == x.shape and y.dtype == np.float32


def test_a_user_preset_file_loads_and_runs(tmp_path):
    f = tmp_path / "mine.toml"
    f.write_text('name = "mine"\n[[steps]]\nkind = "pedalboard.Gain"\ngain_db = -6.0\n'
                 '[stems.drums]\nsteps = [{kind = "pedalboard.Gain", gain_db = 0.0}]\n')
    p = presets.load(f)
    x = np.full((1, 1000), 0.5, np.float32)
    np.testing.assert_allclose(dsp.apply_chain(x, SR, p.chain_for(None)), 0.5 * 10 ** (-6 / 20), rtol=1e-4)
    np.testing.assert_allclose(dsp.apply_chain(x, SR, p.chain_for("drums")), 0.5, rtol=1e-4)
    assert p.chain_for("bass") == p.steps


@pytest.mark.parametrize("text, message", [
    ('name = "x"\n', "needs at least one"),
    ('[[steps]]\nkind = "pedalboard.NoSuchPlugin"\n', "unknown pedalboard plugin"),
    ('[[steps]]\nkind = "magic"\n', "unknown step kind"),
    ('[[steps]]\nkind = "pedalboard.Gain"\nnot_a_param = 1\n', "pedalboard.Gain"),
    ('[[steps]\n', "not valid TOML"),
    ('[[steps]]\nkind = "pedalboard.Gain"\ngain_db = nan\n', "gain_db must be a finite number"),
    ('[[steps]]\nkind = "pedalboard.Gain"\ngain_db = inf\n', "gain_db must be a finite number"),
    ('[[steps]]\nkind = "noisereduce"\nprop_decrease = -3.0\n', r"prop_decrease must be a number in \[0, 1\]"),
    ('steps = 5\n', "steps must be a list of tables"),
    ('[[steps]]\nkind = "noisereduce"\nfoo = 1\n', "noisereduce: unknown parameter 'foo'"),
    ('[[steps]]\nkind = "noisereduce"\nn_fft = "1024"\n', "n_fft must be a number"),
    ('[[steps]]\nkind = "noisereduce"\nn_std_thresh_stationary = "x"\n', "n_std_thresh_stationary must be a number"),
    ('[[steps]]\nkind = "noisereduce"\nstationary = 1\n', "stationary must be true or false"),
    ('[[steps]]\nkind = "noisereduce"\nuse_torch = true\n', "use_torch is not set by a preset"),
    ('[[steps]]\nkind = "pedalboard.Gain"\ngain_db = "loud"\n', r"name or type does not fit: it takes .*Gain\(gain_db"),
    ('[[steps]]\nkind = "pedalboard.Convolution"\nimpulse_response_filename = "/no/such/ir.wav"\n',
     "Unable to load impulse response"),
    ('[[steps]]\nkind = "wiener"\nn_fft = "big"\n', "n_fft must be a number, not 'big'"),
    ('[[steps]]\nkind = "noisereduce"\nprop_decrease = "x"\n', "prop_decrease must be a number"),
    ('bogus_top = 1\n[[steps]]\nkind = "dc_remove"\n', "unknown key 'bogus_top'"),
    ('match_loudness = "yes"\n[[steps]]\nkind = "dc_remove"\n', "match_loudness must be true or false"),
    ('[[steps]]\nkind = "dc_remove"\n[stem_steps]\ndrums = 5\n', "unknown key 'stem_steps'"),
    ('[[steps]]\nkind = "dc_remove"\n[stems]\ndrums = 5\n', r"\[stems.drums\] must be a table"),
    ('[[steps]]\nkind = "dc_remove"\n[stems.drums]\nstep = []\n', r"\[stems.drums\] must be a table holding only steps"),
])
def test_broken_presets_fail_with_one_clear_line(tmp_path, text, message):
    f = tmp_path / "bad.toml"
    f.write_text(text)
    with pytest.raises(PresetError, match=message):
        presets.load(f)


def test_unknown_builtin_preset_names_the_known_ones():
    with pytest.raises(PresetError, match="paper"):
        presets.load("no-such-preset")


def test_clip_safety_limits_overs_and_says_so():
    x = np.sin(np.linspace(0, 200, SR)).astype(np.float32)[None] * 1.8
    y, safety = dsp.clip_safety(x, SR, "limit")
    assert safety.action == "limited"
    assert safety.peak_before_dbfs > 5.0
    assert np.max(np.abs(y)) <= 10 ** (dsp.LIMIT_CEILING_DBFS / 20) + 1e-6
    y, safety = dsp.clip_safety(x, SR, "normalize")
    assert safety.action == "normalized"
    np.testing.assert_allclose(y[:, 1:] / x[:, 1:], 10 ** (dsp.LIMIT_CEILING_DBFS / 20) / 1.8, rtol=1e-3)
    y, safety = dsp.clip_safety(x, SR, "none")
    assert safety.action == "left-above-full-scale" and np.max(np.abs(y)) > 1.0
    quiet = x * 0.1
    y, safety = dsp.clip_safety(quiet, SR, "limit")
    assert safety.action == "none" and np.array_equal(y, quiet)


def test_loudness_match_reaches_the_target():
    x = sum(synthetic_stems(seconds=3.0, channels=2).values())
    target = levels.loudness_lufs(x, SR)
    y, gain_db = dsp.match_loudness(x * 0.3, SR, target)
    assert abs(levels.loudness_lufs(y, SR) - target) < 0.05
    assert abs(gain_db - 20 * np.log10(1 / 0.3)) < 0.05


def test_loudness_matched_result_keeps_its_loudness_through_the_limiter():
    from adaptive_argm.core import finish, pipeline

    x = sum(synthetic_stems(seconds=4.0, channels=2).values())
    x = (x * (1.5 / np.max(np.abs(x)))).astype(np.float32)  # overs: peaks at +3.5 dBFS
    preset = presets.load("adaptive")
    restored = pipeline.finish(x.copy(), x, "direct", preset, "limit", SR)
    assert restored.clip.action == "limited"
    assert np.max(np.abs(restored.audio)) <= 10 ** (dsp.LIMIT_CEILING_DBFS / 20) + 1e-6
    assert abs(levels.loudness_lufs(restored.audio, SR) - levels.loudness_lufs(x, SR)) <= finish.LOUDNESS_TOLERANCE_LU + 0.05
    plain = pipeline.finish(x.copy(), x, "direct", presets.load("paper"), "limit", SR)
    assert plain.loudness_gain_db == 0.0  # presets that do not match loudness are left alone


def test_peak_limiter_touches_only_the_overs():
    t = np.arange(SR) / SR
    x = (0.5 * np.sin(2 * np.pi * 220 * t))[None].astype(np.float32)
    x[0, 20000:20010] = 1.6  # a short over in otherwise quiet music
    y = dsp.peak_limit(x, SR)
    assert np.max(np.abs(y)) <= 10 ** (dsp.LIMIT_CEILING_DBFS / 20) + 1e-6
    far = np.r_[0:19000, 21000:SR]
    np.testing.assert_array_equal(y[0, far], x[0, far])  # everything away from the over is untouched
