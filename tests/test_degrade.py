"""Degradations for the paired benchmark: each one is applied as declared, measured on the
output rather than assumed, and the stems of a clip get the same damage as its mix."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.signal

from adaptive_argm.evaluation import degrade
from adaptive_argm.core import intrusive

from conftest import SR, synthetic_stems


def music(seconds: float = 2.0, channels: int = 2) -> np.ndarray:
    return sum(synthetic_stems(seconds=seconds, channels=channels).values()).astype(np.float32)


def band_power(x: np.ndarray, lo_hz: float, hi_hz: float, sr: int = SR) -> float:
    f, p = scipy.signal.welch(x, sr, nperseg=4096, axis=-1)
    p = p.reshape(-1, p.shape[-1]).mean(axis=0)
    return float(p[(f >= lo_hz) & (f < hi_hz)].sum())


def rms_db(x: np.ndarray) -> float:
    return 10 * np.log10(np.mean(np.asarray(x, np.float64) ** 2))


@pytest.mark.parametrize("color", ["white", "pink"])
@pytest.mark.parametrize("level_dbfs", degrade.NOISE_LEVELS_DBFS)
def test_noise_is_added_at_its_declared_rms(color, level_dbfs):
    x = music()
    y, rec = degrade.noise(x, SR, color, level_dbfs, seed=3)
    assert y.shape == x.shape and y.dtype == np.float32
    assert abs(rms_db(y - x) - level_dbfs) < 0.2
    assert abs(rec.measured["noise_rms_dbfs"] - level_dbfs) < 0.2
    assert rec.seed == 3 and rec.params == {"color": color, "rms_dbfs": level_dbfs}


def test_pink_noise_falls_3_db_per_octave_and_white_rises_3_db():
    silence = np.zeros((1, 10 * SR), np.float32)
    white = degrade.noise(silence, SR, "white", -45, seed=1)[0]
    pink = degrade.noise(silence, SR, "pink", -45, seed=1)[0]
    # Octave 1-2 kHz vs 2-4 kHz: pink has equal energy per octave, white doubles per octave.
    assert abs(10 * np.log10(band_power(pink, 2000, 4000) / band_power(pink, 1000, 2000))) < 0.5
    assert abs(10 * np.log10(band_power(white, 2000, 4000) / band_power(white, 1000, 2000)) - 3.0) < 0.5


def test_noise_realisation_follows_the_seed():
    x = music(1.0)
    a, b, c = (degrade.noise(x, SR, "white", -45, seed=s)[0] for s in (7, 7, 8))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    assert degrade.clip_seed(1, "song", "white-45") == degrade.clip_seed(1, "song", "white-45")
    assert degrade.clip_seed(1, "song", "white-45") != degrade.clip_seed(1, "song", "pink-45")


def test_bandlimit_leaves_nothing_above_16_5_khz_and_keeps_the_passband():
    x = degrade.noise(np.zeros((2, 3 * SR), np.float32), SR, "white", -20, seed=2)[0]
    y, rec = degrade.bandlimit(x, SR)
    assert y.shape == x.shape
    assert 10 * np.log10(band_power(y, 16500, SR / 2) / band_power(x, 16500, SR / 2)) < -60
    assert abs(10 * np.log10(band_power(y, 100, 15000) / band_power(x, 100, 15000))) < 0.1
    assert rec.measured["removed_energy_re_signal_db"] < 0


@pytest.mark.parametrize("sr, name, edge_hz", [(SR, "resample-16k", 8000.0), (SR, "resample-22k", 11025.0),
                                               (SR, "resample-32k", 16000.0), (48000, "resample-32k", 16000.0)])
def test_resampling_cuts_the_band_at_the_lower_rates_nyquist_and_keeps_length_and_timing(sr, name, edge_hz):
    x = degrade.noise(np.zeros((2, 3 * sr), np.float32), sr, "white", -20, seed=2)[0]
    y, rec = degrade.apply(name, x, sr)
    assert y.shape == x.shape and y.dtype == np.float32
    assert 10 * np.log10(band_power(y, edge_hz, sr / 2, sr) / band_power(x, edge_hz, sr / 2, sr)) < -60
    assert abs(10 * np.log10(band_power(y, 100, 0.9 * edge_hz, sr) / band_power(x, 100, 0.9 * edge_hz, sr))) < 0.05
    # No delay: a tone in the passband comes back on the same samples.
    tone = np.sin(2 * np.pi * 1000.0 * np.arange(sr) / sr).astype(np.float32)[np.newaxis]
    back = degrade.apply(name, tone, sr)[0]
    assert intrusive.fractional_lag(back, tone) == pytest.approx(0.0, abs=1e-3)
    np.testing.assert_allclose(back[:, 100:-100], tone[:, 100:-100], atol=1e-3)
    assert 0.9 * edge_hz < rec.cutoff_hz <= edge_hz


def test_resampling_to_the_clips_own_rate_or_above_changes_nothing():
    x = music(1.0)
    y, rec = degrade.apply("resample-32k", x[:, : 32000], 32000)
    np.testing.assert_array_equal(y, x[:, :32000])
    assert math.isnan(rec.cutoff_hz)
    np.testing.assert_array_equal(degrade.apply("bandlimit", x[:, :32000], 32000)[0], x[:, :32000])


def test_noise_loses_no_band_and_a_codec_then_a_trip_through_16_khz_loses_it_above_8_khz():
    x = degrade.noise(np.zeros((2, 2 * SR), np.float32), SR, "white", -20, seed=2)[0]
    assert math.isnan(degrade.apply("white-45", x, SR)[1].cutoff_hz)
    y, rec = degrade.apply("codec+resample-16k", x, SR, seed=3)
    assert [s.kind for s in rec.steps] == ["codec", "resample"]
    assert 7000.0 < rec.cutoff_hz <= 8000.0
    np.testing.assert_array_equal(y, degrade.resample(degrade.codec(x, SR)[0], SR, 16000)[0])
    assert [s.kind for s in degrade.parse("resample-16k+codec")] == ["resample", "codec"]


@pytest.mark.parametrize("freq_hz", [50.0, 60.0])
def test_hum_is_a_peak_at_mains_frequency_at_its_declared_level(freq_hz):
    x = np.zeros((2, 4 * SR), np.float32)
    y, rec = degrade.hum(x, SR, freq_hz=freq_hz, rms_dbfs=-40, seed=0)
    f, p = scipy.signal.periodogram(y[0], SR)
    assert abs(f[np.argmax(p)] - freq_hz) < 1.0
    near = lambda hz: p[np.abs(f - hz) < 1.0].max()
    assert near(2 * freq_hz) > 100 * np.median(p)  # harmonics are there too
    assert abs(rms_db(y - x) - (-40)) < 0.2 and abs(rec.measured["hum_rms_dbfs"] + 40) < 0.2
    np.testing.assert_array_equal(y[0], y[1])  # mains hum is common to every channel


def test_dc_offset_moves_the_mean_by_the_target():
    x = music()
    y, rec = degrade.dc(x, SR, offset=0.1)
    assert abs((y.mean() - x.mean()) - 0.1) < 1e-4
    assert abs(rec.measured["mean_change"] - 0.1) < 1e-4


def test_overs_put_the_peak_at_the_target_above_full_scale():
    x = music()
    y, rec = degrade.overs(x, SR, peak=1.5)
    assert abs(np.max(np.abs(y)) - 1.5) < 1e-5
    assert rec.measured["samples_over_full_scale"] == int(np.sum(np.abs(y) > 1.0)) > 0
    assert intrusive.si_sdr_db(y, x) > 60  # a pure gain


def test_codec_changes_the_waveform_but_keeps_length_and_timing():
    x = music(3.0)
    y, rec = degrade.codec(x, SR, vbr_quality=7)
    assert y.shape == x.shape and y.dtype == np.float32
    assert not np.allclose(y, x, atol=1e-4)
    # Measured, not assumed: the encoder's delay is compensated (best lag 0 samples).
    lags = scipy.signal.correlation_lags(x.shape[1], x.shape[1])
    corr = scipy.signal.correlate(y[0], x[0])
    assert lags[np.argmax(np.abs(corr))] == 0
    assert 5 < intrusive.si_sdr_db(y, x) < 60
    assert rec.measured["error_re_signal_db"] < -5


def test_combined_applies_every_step_in_order():
    x = music(3.0)
    y, rec = degrade.apply("combined", x, SR, seed=5)
    assert [s.kind for s in rec.steps] == ["noise", "hum", "bandlimit", "codec", "dc", "overs"]
    assert abs(np.max(np.abs(y)) - degrade.OVERS_PEAK) < 1e-5
    assert y.shape == x.shape
    assert len({s.seed for s in rec.steps}) == len(rec.steps)


def test_names_parse_and_unknown_ones_are_refused():
    assert degrade.parse("white-45")[0].params == {"color": "white", "rms_dbfs": -45.0}
    assert degrade.parse("pink-33")[0].params == {"color": "pink", "rms_dbfs": -33.0}
    assert degrade.parse("codec-9")[0].params == {"vbr_quality": 9.0}
    assert degrade.parse("clean") == ()
    with pytest.raises(ValueError, match="known"):
        degrade.parse("vinyl")
    for name in degrade.DEFAULT_SET:
        degrade.parse(name)


@pytest.mark.parametrize("split", degrade.STEM_SPLITS)
@pytest.mark.parametrize("name", ["white-45", "codec", "combined", "bandlimit", "dc", "resample-22k",
                                  "codec+resample-16k"])
def test_stems_get_the_same_damage_and_still_add_up_to_the_degraded_mix(name, split):
    stems = synthetic_stems(seconds=2.0, channels=2)
    mix = sum(stems.values()).astype(np.float32)
    y, damaged, rec = degrade.apply_to_stems(name, mix, stems, SR, seed=4, split=split)
    np.testing.assert_array_equal(y, degrade.apply(name, mix, SR, seed=4)[0])  # the same realisation
    np.testing.assert_allclose(sum(damaged.values()), y, atol=2e-6)
    assert rec.name == name


def test_vocals_split_makes_a_noise_only_vocals_stem_and_leaves_the_music_stems_alone():
    stems = synthetic_stems(seconds=2.0)
    mix = sum(stems.values()).astype(np.float32)
    y, damaged, _ = degrade.apply_to_stems("white-60", mix, stems, SR, seed=1, split="vocals")
    assert abs(rms_db(damaged["vocals"]) - (-60)) < 0.2
    for k in ("drums", "bass"):
        np.testing.assert_allclose(damaged[k], stems[k], atol=1e-6)


def test_mask_split_shares_noise_where_each_stem_has_power():
    stems = synthetic_stems(seconds=2.0)
    mix = sum(stems.values()).astype(np.float32)
    _, damaged, _ = degrade.apply_to_stems("white-40", mix, stems, SR, seed=1, split="mask")
    added = {k: damaged[k] - stems[k] for k in stems}
    # The bass stem (a 55 Hz line) takes noise only where it dominates: low frequencies.
    assert band_power(added["bass"], 0, 200) > 100 * band_power(added["bass"], 2000, 20000)
