"""Behaviour of the metric panel: paper parity, what each measure reacts to, and the warnings."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import math
from pathlib import Path

import librosa
import numpy as np
import pytest
import scipy.signal
from pedalboard import LowShelfFilter, Pedalboard
from pedalboard.io import AudioFile

from adaptive_argm.core import metrics as M

from conftest import music_like, mute_quietest_blocks

SR = 44100
CORPUS = Path(__file__).parents[1].parent / "shared" / "corpus" / "musicgen-dev"


def _direct_paper_db(y: np.ndarray, sr: int) -> float:
    """The report's notebook, verbatim: librosa defaults on a mono signal."""
    S = librosa.feature.melspectrogram(y=y, sr=sr, n_fft=2048, hop_length=512, n_mels=128)
    return float(np.percentile(librosa.power_to_db(S, ref=np.max), 25))


def _load_musicgen(path: Path) -> np.ndarray:
    """A corpus file as the tool sees it: mono, resampled from its native 32 kHz to SR."""
    with AudioFile(str(path)) as f:
        y, native_sr = f.read(f.frames).mean(axis=0), f.samplerate
    return librosa.resample(y, orig_sr=native_sr, target_sr=SR)


@pytest.fixture(scope="module")
def music() -> np.ndarray:
    return music_like()


# --- the paper's metric ---------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_paper_metric_matches_direct_librosa_on_synthetic(music, dtype):
    y = (music + 0.01 * np.random.default_rng(1).standard_normal(music.size)).astype(dtype)
    assert M.p25_paper_db(y, SR) == pytest.approx(_direct_paper_db(y, SR), abs=0.01)
    assert M.measure(y, SR).p25_paper_db == pytest.approx(_direct_paper_db(y, SR), abs=0.01)


def test_paper_metric_downmixes_stereo_by_mean(music):
    other = music_like(seed=5)
    stereo = np.stack([music, other])
    assert M.p25_paper_db(stereo, SR) == pytest.approx(
        _direct_paper_db(stereo.mean(axis=0), SR), abs=0.01
    )


def test_paper_metric_matches_direct_librosa_on_real_musicgen():
    mixes = sorted(CORPUS.glob("*/mixed.wav")) if CORPUS.is_dir() else []
    if not mixes:
        pytest.skip("musicgen-dev corpus not present")
    for path in mixes:
        y = _load_musicgen(path)
        assert M.p25_paper_db(y, SR) == pytest.approx(_direct_paper_db(y, SR), abs=0.01), path


def test_resampled_musicgen_mix_reads_its_band_and_has_empty_bands():
    mixes = sorted(CORPUS.glob("*/mixed.wav")) if CORPUS.is_dir() else []
    if not mixes:
        pytest.skip("musicgen-dev corpus not present")
    with AudioFile(str(mixes[0])) as f:
        native_sr = f.samplerate
    panel = M.measure(_load_musicgen(mixes[0]), SR)
    assert panel.bandwidth_hz <= native_sr / 2 + 200
    # The field notes: about 8% of the mel bands of such a file are empty before processing.
    assert panel.floor_fraction > 0.03


def test_low_shelf_does_not_move_bandwidth_of_real_musicgen_stems():
    stems = sorted(CORPUS.glob("*/*.wav")) if CORPUS.is_dir() else []
    if not stems:
        pytest.skip("musicgen-dev corpus not present")
    shelf = Pedalboard([LowShelfFilter(cutoff_frequency_hz=400, gain_db=10, q=1)])
    for path in stems:
        y = _load_musicgen(path)
        before, after = M.measure(y, SR), M.measure(shelf(y[np.newaxis], SR), SR)
        assert not any("bandwidth" in w for w in M.warnings_for(before, after)), path


# --- what each measure reacts to -------------------------------------------------------------


def test_added_noise_raises_noise_floor(music):
    noisy = music + 0.003 * np.random.default_rng(2).standard_normal(music.size).astype(np.float32)
    clean_panel, noisy_panel = M.measure(music, SR), M.measure(noisy, SR)
    assert noisy_panel.noise_floor_db > clean_panel.noise_floor_db + 3.0
    assert noisy_panel.p25_abs_db > clean_panel.p25_abs_db


def test_attenuation_moves_loudness_not_paper_metric(music):
    gain = 10.0 ** (-20.0 / 20.0)
    before, after = M.measure(music, SR), M.measure(music * gain, SR)
    assert after.loudness_lufs - before.loudness_lufs == pytest.approx(-20.0, abs=0.2)
    assert after.p25_paper_db == pytest.approx(before.p25_paper_db, abs=0.01)
    assert after.peak_dbfs - before.peak_dbfs == pytest.approx(-20.0, abs=0.01)
    assert after.p95_db - before.p95_db == pytest.approx(-20.0, abs=0.1)
    warnings = M.warnings_for(before, after)
    # p25_paper did not "improve", so the quieter-not-cleaner warning must stay silent.
    assert not any("quieter" in w for w in warnings)


def test_loudness_drop_with_paper_improvement_warns(music):
    # A gate-like attenuation of only the quiet half improves the paper metric and loses loudness.
    quiet = np.abs(music) < np.percentile(np.abs(music), 99)
    out = np.where(quiet, music * 0.1, music * 0.5).astype(np.float32)
    before, after = M.measure(music, SR), M.measure(out, SR)
    assert after.p25_paper_db < before.p25_paper_db
    assert after.loudness_lufs < before.loudness_lufs - M.LOUDNESS_DROP_WARN_LU
    assert any("loudness" in w and "fell" in w for w in M.warnings_for(before, after))


def test_muting_quietest_frames_raises_silent_fraction_and_warns(music):
    muted = mute_quietest_blocks(music, 0.3)
    before, after = M.measure(music, SR), M.measure(muted, SR)
    assert after.silent_frame_fraction > before.silent_frame_fraction + M.SILENT_RISE_WARN_FRACTION
    # The paper metric rewards the gate (the pitfall this panel exists to expose).
    assert after.p25_paper_db <= before.p25_paper_db
    assert any("silent frames" in w for w in M.warnings_for(before, after))


def test_low_shelf_raises_balance_and_warns(music):
    shelf = Pedalboard([LowShelfFilter(cutoff_frequency_hz=400, gain_db=10, q=1)])
    boosted = shelf(music[np.newaxis, :], SR)
    before, after = M.measure(music, SR), M.measure(boosted, SR)
    assert after.low_high_balance_db - before.low_high_balance_db > 5.0
    assert any("balance" in w for w in M.warnings_for(before, after))


def test_dc_offset_does_not_count_as_bass(music):
    panel, shifted = M.measure(music, SR), M.measure(music + np.float32(0.18), SR)
    assert shifted.low_high_balance_db == pytest.approx(panel.low_high_balance_db, abs=0.5)
    assert shifted.bandwidth_hz == pytest.approx(panel.bandwidth_hz, abs=500)


def test_floor_saturation_pins_paper_metric_and_warns(music):
    half_silent = music.copy()
    half_silent[music.size // 2 :] = 0.0
    before, after = M.measure(music, SR), M.measure(half_silent, SR)
    assert after.floor_fraction >= M.FLOOR_SATURATION_FRACTION
    assert after.p25_paper_db == pytest.approx(-M.TOP_DB, abs=1e-3)
    assert any("saturated" in w and "cannot rank" in w for w in M.warnings_for(before, after))
    assert not any("saturated" in w for w in M.warnings_for(before, before))


def test_a_misread_visqol_score_warns_for_the_output_or_the_input(music):
    panel = M.measure(music, SR)
    misread = dataclasses.replace(panel, visqol_moslqo=4.1, visqol_misplaced=0.25)
    sound = dataclasses.replace(panel, visqol_moslqo=2.9, visqol_misplaced=0.0)
    assert any("of the output is a misreading" in w and "25%" in w for w in M.warnings_for(sound, misread))
    assert any("of the input is a misreading" in w for w in M.warnings_for(misread, sound))
    assert not any("misreading" in w for w in M.warnings_for(sound, sound) + M.warnings_for(panel, panel))


def test_bandwidth_of_resampled_32k_noise_is_about_16k():
    noise = 0.1 * np.random.default_rng(3).standard_normal(32000 * 4).astype(np.float32)
    upsampled = librosa.resample(noise, orig_sr=32000, target_sr=SR)
    assert 15000 <= M.measure(upsampled, SR).bandwidth_hz <= 16500
    full_band = 0.1 * np.random.default_rng(4).standard_normal(SR * 4).astype(np.float32)
    assert M.measure(full_band, SR).bandwidth_hz > 21000


def test_lowpass_shrinks_bandwidth_and_warns():
    noise = 0.1 * np.random.default_rng(5).standard_normal(SR * 4).astype(np.float32)
    # Steep, like a codec's or a resampler's band edge; a gentle slope is tilt, not lost band.
    sos = scipy.signal.butter(12, 4000, fs=SR, output="sos")
    lowpassed = scipy.signal.sosfilt(sos, noise).astype(np.float32)
    before, after = M.measure(noise, SR), M.measure(lowpassed, SR)
    assert after.bandwidth_hz < before.bandwidth_hz - M.BANDWIDTH_LOSS_WARN_HZ
    assert any("bandwidth" in w for w in M.warnings_for(before, after))


def test_empty_bands_above_the_input_band_are_not_scored():
    noise = 0.1 * np.random.default_rng(6).standard_normal(32000 * 4).astype(np.float32)
    y = librosa.resample(noise, orig_sr=32000, target_sr=SR)
    in_band = M.measure(y, SR)
    whole_band = M.measure(y, SR, band_hz=SR / 2)
    # Empty bands would read as "removed noise" if they were counted.
    assert whole_band.p25_abs_db < in_band.p25_abs_db
    assert whole_band.noise_floor_db < in_band.noise_floor_db - 1.0
    # band_hz changes the scored bands, never the reported bandwidth.
    assert whole_band.bandwidth_hz == in_band.bandwidth_hz


def test_stereo_is_accepted_and_peak_covers_all_channels(music):
    stereo = np.stack([music, 0.5 * music])
    stereo[1, 100] = 1.5
    panel = M.measure(stereo, SR)
    assert panel.peak_dbfs == pytest.approx(20 * math.log10(1.5), abs=1e-4)
    assert any("clip" in w for w in M.warnings_for(M.measure(music, SR), panel))


def test_non_finite_or_empty_audio_is_rejected():
    with pytest.raises(ValueError):
        M.measure(np.array([0.0, np.nan, 0.1], dtype=np.float32), SR)
    with pytest.raises(ValueError):
        M.p25_paper_db(np.zeros((2, 0), dtype=np.float32), SR)


def test_short_and_silent_audio_do_not_crash():
    short = M.measure(0.1 * np.ones(SR // 10, dtype=np.float32), SR)
    assert math.isnan(short.loudness_lufs)
    silent = M.measure(np.zeros((2, SR), dtype=np.float32), SR)
    assert silent.silent_frame_fraction == 1.0
    assert silent.peak_dbfs == -math.inf
    json.dumps(silent.to_dict(), allow_nan=False)


# --- intrusive fields of the panel ----------------------------------------------------------


def test_measure_with_reference_fills_intrusive_fields(music):
    plain = M.measure(music, SR)
    assert math.isnan(plain.si_sdr_db) and math.isnan(plain.lsd_db)
    noise = np.random.default_rng(10).standard_normal(music.size).astype(np.float32)
    noisy = music + 0.003 * noise
    panel = M.measure(noisy, SR, ref=music)
    assert math.isfinite(panel.si_sdr_db) and math.isfinite(panel.lsd_db)
    assert math.isfinite(panel.quiet_frame_snr_db)
    if importlib.util.find_spec("visqol") is not None:
        assert 1.0 <= panel.visqol_moslqo <= 5.0
    assert panel.si_sdr_db > M.measure(music + 10 * (noisy - music), SR, ref=music).si_sdr_db


# --- panel plumbing -------------------------------------------------------------------------


def test_to_dict_is_json_serialisable(music):
    panel = M.measure(music, SR, ref=music)
    data = panel.to_dict()
    json.loads(json.dumps(data, allow_nan=False))
    assert set(data) == set(M.DIRECTIONS)
    assert all(v is None or type(v) is float for v in data.values())
    assert data["si_sdr_db"] is None or data["si_sdr_db"] > 60.0


def test_directions_cover_every_field_with_known_words():
    assert set(M.DIRECTIONS.values()) <= {"higher", "lower", "closer-to-input", "none"}
    assert M.DIRECTIONS["p25_paper_db"] == "lower"
    assert M.DIRECTIONS["si_sdr_db"] == "higher"
    assert M.DIRECTIONS["lsd_db"] == "lower"
    assert M.DIRECTIONS["noise_floor_db"] == "lower"
    assert M.DIRECTIONS["loudness_lufs"] == "closer-to-input"


# --- measured block by block: the same panel, bounded memory -------------------------------------


def test_a_signal_pushed_in_blocks_of_any_size_gives_the_panel_of_the_whole():
    from adaptive_argm.core.framestats import FrameStats

    rng = np.random.default_rng(3)
    y = np.stack([music_like(9.0, seed=1), music_like(9.0, seed=2)])
    whole = M.measure(y, SR)
    stats = M.measuring(SR, 2)
    pos = 0
    while pos < y.shape[1]:
        step = int(rng.integers(1, 30000))
        stats.push(y[:, pos:pos + step])
        pos += step
    assert M.panel_of(stats.summary()) == whole
    assert isinstance(stats, FrameStats)


def _levels_and_exact(y: np.ndarray, first_bin: int):
    from adaptive_argm.core import spectral

    power = np.concatenate([p for _, p in spectral.power_frames(y, dtype=np.float64)])
    bins = np.arange(first_bin, power.shape[1])
    return bins, np.percentile(M.power_db(power[:, bins]), M.NOISE_FLOOR_PERCENTILE, axis=0)


def test_the_noise_floor_histogram_is_within_half_a_step_of_the_exact_percentile():
    from adaptive_argm.core.framestats import HIST_STEP_DB, FrameStats

    y = np.stack([music_like(6.0, seed=4)]) * np.float32(0.3)
    stats = FrameStats(SR, 1, histogram_from_hz=M.LOW_CUT_HZ, keep_levels_frames=0)  # a histogram from the start
    stats.push(y)
    summary = stats.summary()
    assert summary.levels is None and summary.level_histogram is not None
    bins, exact = _levels_and_exact(y, summary.first_bin)
    estimate = summary.bin_percentile_db(M.NOISE_FLOOR_PERCENTILE, bins)
    assert np.max(np.abs(estimate - exact)) <= HIST_STEP_DB / 2 + 1e-4  # float32 levels near a cell edge


def test_a_short_signal_s_noise_floor_is_the_exact_percentile():
    from adaptive_argm.core.framestats import FrameStats

    y = np.stack([music_like(6.0, seed=4)]) * np.float32(0.3)
    stats = FrameStats(SR, 1, histogram_from_hz=M.LOW_CUT_HZ)
    stats.push(y)
    summary = stats.summary()
    assert summary.level_histogram is None
    bins, exact = _levels_and_exact(y, summary.first_bin)
    np.testing.assert_allclose(summary.bin_percentile_db(M.NOISE_FLOOR_PERCENTILE, bins), exact, atol=1e-6)


def test_levels_kept_so_far_go_into_the_histogram_when_the_signal_grows_too_long():
    from adaptive_argm.core.framestats import CHUNK_FRAMES, HIST_STEP_DB, FrameStats

    y = np.stack([music_like(26.0, seed=5)]) * np.float32(0.3)  # more than one chunk of frames
    switched = FrameStats(SR, 1, histogram_from_hz=M.LOW_CUT_HZ, keep_levels_frames=CHUNK_FRAMES)
    histogram_only = FrameStats(SR, 1, histogram_from_hz=M.LOW_CUT_HZ, keep_levels_frames=0)
    for pos in range(0, y.shape[1], 44100):
        switched.push(y[:, pos:pos + 44100])
        histogram_only.push(y[:, pos:pos + 44100])
    a, b = switched.summary(), histogram_only.summary()
    assert a.levels is None
    np.testing.assert_array_equal(a.level_histogram, b.level_histogram)  # no frame lost or counted twice
    bins, exact = _levels_and_exact(y, a.first_bin)
    assert np.max(np.abs(a.bin_percentile_db(M.NOISE_FLOOR_PERCENTILE, bins) - exact)) <= HIST_STEP_DB / 2 + 1e-4
