"""Tests for adaptive_argm.core.denoise: the noise estimate that trusts only noise-like sub-bands and
fits a tilted floor, and the Wiener filter that must remove hiss (white or coloured) and return
hiss-free audio bit for bit."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import pytest

from adaptive_argm.core import presets, spectral
from adaptive_argm.core.denoise import (
    REF_HZ,
    DenoiseTrace,
    NoiseEstimate,
    WienerSettings,
    _channel_power,
    _dd_wiener_gain,
    _dd_wiener_gains,
    _fit_tilt,
    _CALIBRATED,
    _interior,
    _prior_tilt,
    _side_below_evidence,
    _simulated_calibration,
    _sliding_minimum,
    _track_stats,
    _white_noise_calibration,
    detect_noise_level_db,
    estimate_noise,
    estimate_noise_psd,
    found_noise_power,
    wiener_denoise,
)
from adaptive_argm.evaluation import degrade

SR = 44100
CORPUS = Path(__file__).parents[1].parent / "shared" / "corpus" / "musicgen-dev"
REAL_DEV = Path(os.environ.get("ADAPTIVE_ARGM_CACHE", Path.home() / ".cache" / "adaptive-argm")) / "corpora" / "real-dev"


def si_sdr_db(ref: np.ndarray, est: np.ndarray, cap_db: float = 100.0) -> float:
    """Scale-invariant SDR (means removed), capped so that identical signals read `cap_db`."""
    ref = np.asarray(ref, np.float64).ravel()
    est = np.asarray(est, np.float64).ravel()
    ref, est = ref - ref.mean(), est - est.mean()
    target = ref * (est @ ref) / (ref @ ref)
    err = est - target
    if err @ err <= (target @ target) * 10 ** (-cap_db / 10):
        return cap_db
    return float(10 * np.log10((target @ target) / (err @ err)))


def white(n: int, dbfs: float, seed: int) -> np.ndarray:
    r = np.random.default_rng(seed).standard_normal(n)
    return (r / np.sqrt(np.mean(r**2)) * 10 ** (dbfs / 20)).astype(np.float32)


def steady_chord(seconds: float, f0s=(220.0, 277.2, 329.6), harmonics: int = 8) -> np.ndarray:
    """A held A-major chord; harmonics fall off as 1/k and stop below 3 kHz."""
    t = np.arange(int(seconds * SR)) / SR
    ks = range(1, harmonics + 1)
    x = sum(0.1 / k * np.sin(2 * np.pi * k * f0 * t + k) for f0 in f0s for k in ks)
    return x.astype(np.float32)


def square(seconds: float, amplitude: float, freq_hz: float = 100.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (amplitude * np.where((t * freq_hz) % 1 < 0.5, 1.0, -1.0)).astype(np.float32)


def sawtooth(seconds: float, amplitude: float, freq_hz: float = 100.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (amplitude * (2 * ((t * freq_hz) % 1) - 1)).astype(np.float32)


def pad(seconds: float) -> np.ndarray:
    """A steady synth pad: a held chord of three detuned band-limited sawtooths per note plus a
    sine an octave below, with a slow swell (5 s period)."""
    t = np.arange(int(seconds * SR)) / SR
    x = np.zeros_like(t)
    for f0 in (110.0, 164.8, 220.0, 277.2):
        x += 0.5 * np.sin(2 * np.pi * f0 / 2 * t)
        for detune in (-0.004, 0.0, 0.004):
            f = f0 * (1 + detune)
            for k in range(1, int(16000 / f)):
                x += np.sin(2 * np.pi * k * f * t + k * 0.7) / k
    x *= 0.6 + 0.4 * np.sin(2 * np.pi * 0.2 * t - np.pi / 2)
    return (0.25 * x / np.max(np.abs(x))).astype(np.float32)


def tone(seconds: float, freq_hz: float = 1000.0, level: float = 0.3) -> np.ndarray:
    return (level * np.sin(2 * np.pi * freq_hz * np.arange(int(seconds * SR)) / SR)).astype(np.float32)


def coloured(n: int, colour: str, dbfs: float, seed: int) -> np.ndarray:
    """Pink (degrade's, -3 dB/octave) or lo-fi brown (analogue first-order low-pass at 1 kHz:
    -6 dB/octave above it) noise, RMS `dbfs`."""
    if colour == "pink":
        y, _ = degrade.noise(np.zeros((1, n), np.float32), SR, "pink", dbfs, seed)
        return y[0]
    f = np.fft.rfftfreq(n, 1.0 / SR)
    spec = np.fft.rfft(np.random.default_rng(seed).standard_normal(n)) / np.sqrt(1.0 + (f / 1000.0) ** 2)
    b = np.fft.irfft(spec, n=n)
    return (b / np.sqrt(np.mean(b**2)) * 10 ** (dbfs / 20)).astype(np.float32)


def melody(seconds: float, seed: int = 0) -> np.ndarray:
    """Harmonic notes (0.25 s each, decaying, 12 harmonics up to ~8 kHz) over a quiet bass."""
    rng = np.random.default_rng(seed)
    n_note = int(0.25 * SR)
    t = np.arange(n_note) / SR
    env = np.exp(-t / 0.12) * np.minimum(1.0, t / 0.005)
    notes = []
    for _ in range(int(seconds / 0.25)):
        f0 = 220.0 * 2 ** (rng.integers(0, 24) / 12)
        ks = [k for k in range(1, 13) if k * f0 < 8000]
        notes.append(env * sum(0.2 / k * np.sin(2 * np.pi * k * f0 * t) for k in ks))
    x = np.concatenate(notes)
    bass = 0.1 * np.sin(2 * np.pi * 55.0 * np.arange(x.size) / SR)
    return (x + bass).astype(np.float32)


# --- the estimator -------------------------------------------------------------------------------


@pytest.mark.parametrize("music", ["tone", "chord"])
@pytest.mark.parametrize("noise_dbfs", [-60.0, -45.0])
def test_estimate_finds_white_noise_level_under_steady_music(music, noise_dbfs):
    n = 5 * SR
    x = tone(5) if music == "tone" else steady_chord(5)
    noisy = x + white(n, noise_dbfs, seed=1)
    freqs = np.arange(WienerSettings().n_fft // 2 + 1) * SR / WienerSettings().n_fft
    band = (freqs >= 2000) & (freqs <= 15000)
    unbiased = WienerSettings(bias_correction_db=0.0)
    psd = estimate_noise_psd(noisy, SR, unbiased)
    assert psd.shape == freqs.shape
    assert abs(10 * np.log10(np.median(psd[band])) - noise_dbfs) < 1.5
    assert abs(detect_noise_level_db(noisy, SR, unbiased) - noise_dbfs) < 1.5
    # the default errs low on purpose, by its bias correction
    default_db = 10 * np.log10(np.median(estimate_noise_psd(noisy, SR)[band]))
    assert abs(default_db - (noise_dbfs + WienerSettings().bias_correction_db)) < 1.5
    est = estimate_noise(noisy, SR)
    assert abs(est.tilt_db_per_octave) <= 0.5 and est.strength == 1.0


@pytest.mark.parametrize("colour, low, high", [("pink", -3.75, -2.25), ("brown", -6.0, -4.25)])
def test_estimate_reads_the_tilt_of_coloured_noise(colour, low, high):
    n = 5 * SR
    noise = coloured(n, colour, -45.0, seed=11)
    est = estimate_noise(tone(5) + noise, SR, WienerSettings(bias_correction_db=0.0))
    assert low <= est.tilt_db_per_octave <= high
    # the level follows the noise where it was measured (4-16 kHz), within 3 dB (a line under
    # brown noise's knee sits up to 2-3 dB low in the middle: on the safe side)
    freqs = np.arange(est.psd.size) * SR / WienerSettings().n_fft
    true = noise_psd(noise)
    band = (freqs >= 4000) & (freqs <= 16000)
    assert abs(10 * np.log10(np.mean(est.psd[band]) / np.mean(true[band]))) < 3.0


def test_a_steep_floor_needs_enough_trusted_sub_bands():
    # Brown hiss on a tone: plenty of trusted sub-bands, so the default keeps its steep tilt...
    noisy = tone(5) + coloured(5 * SR, "brown", -45.0, seed=11)
    steep = estimate_noise(noisy, SR)
    assert steep.trusted_bands >= WienerSettings().steep_tilt_min_bands
    assert steep.tilt_db_per_octave < WienerSettings().hold_tilt_below_db_per_octave
    # ...and asked for more evidence than that, it takes the pink-like tilt instead, so the model
    # lies lower everywhere below the sub-bands it was measured in (the safe side).
    guarded = estimate_noise(noisy, SR, WienerSettings(steep_tilt_min_bands=steep.trusted_bands + 1))
    assert guarded.tilt_db_per_octave == WienerSettings().hold_tilt_below_db_per_octave
    freqs = np.arange(steep.psd.size) * SR / WienerSettings().n_fft
    bass = (freqs >= 200) & (freqs <= 1000)
    assert np.mean(guarded.psd[bass]) < 0.7 * np.mean(steep.psd[bass])
    unguarded = estimate_noise(noisy, SR, WienerSettings(steep_tilt_min_bands=0))
    assert unguarded.tilt_db_per_octave == steep.tilt_db_per_octave


FIRST_DESIGN = {"tilt_prior_bands": 0, "hold_tilt_below_db_per_octave": 0.0,
                "tilt_excess_correction": WienerSettings().excess_correction, "floor_spread_max_db": -1.0}
"""The settings that give the estimator as first designed: a flat model whenever the trusted
sub-bands cannot tell a tilt, every falling model held `extrapolate_db` up, one excess correction,
no trust from a bare floor."""


def noise_psd(noise: np.ndarray, n_fft: int = 2048) -> np.ndarray:
    """The time average of a noise signal's periodogram, in the estimator's unit (module doc)."""
    frames = noise[: noise.size // n_fft * n_fft].reshape(-1, n_fft)
    true = np.mean(np.abs(np.fft.rfft(frames * spectral.hann(n_fft), axis=1)) ** 2, axis=0)
    return true / np.sum(spectral.hann(n_fft) ** 2)


def bright_melody(seconds: float, top_hz: float, seed: int = 0) -> np.ndarray:
    """Harmonic notes as in `melody`, rich in harmonics up to `top_hz`: music in every sub-band
    below it."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(0.25 * SR)) / SR
    env = np.exp(-t / 0.12) * np.minimum(1.0, t / 0.005)
    notes = []
    for _ in range(int(seconds / 0.25)):
        f0 = 220.0 * 2 ** (rng.integers(0, 24) / 12)
        notes.append(env * sum(0.2 / k**0.7 * np.sin(2 * np.pi * k * f0 * t + k) for k in range(1, 80) if k * f0 < top_hz))
    return np.concatenate(notes).astype(np.float32)


def bass_error_db(x: np.ndarray, noise: np.ndarray, s: WienerSettings, lo: float = 100.0, hi: float = 500.0) -> float:
    """The estimate of `noise` under `x` minus the noise's own spectrum, between lo and hi (dB)."""
    psd, true = estimate_noise(x + noise, SR, s).psd, noise_psd(noise)
    freqs = np.arange(psd.size) * SR / s.n_fft
    band = (freqs >= lo) & (freqs < hi)
    return float(10 * np.log10(np.mean(psd[band]) / np.mean(true[band])))


def test_a_pink_model_goes_on_into_the_bass():
    """Notes up to 8 kHz hide pink hiss below that; the sub-bands above show a -2.25 dB/octave
    floor. A model no steeper than pink continues into the bass (1/f hiss has no knee there);
    the first design held it 9 dB over its lowest trusted sub-band, 5 dB under the hiss."""
    x = melody(8, seed=0)
    noise = coloured(x.size, "pink", -45.0, seed=31)
    unbiased = WienerSettings(bias_correction_db=0.0)
    first = dataclasses.replace(unbiased, **FIRST_DESIGN)
    assert estimate_noise(x + noise, SR, unbiased).tilt_db_per_octave == pytest.approx(-2.5, abs=0.5)
    held = bass_error_db(x, noise, first)
    assert held < -4.5
    assert bass_error_db(x, noise, unbiased) > held + 0.4
    # A brown (-6 dB/octave) model is still held: such hiss has its knee (here at 1 kHz).
    brown = coloured(x.size, "brown", -45.0, seed=32)
    assert bass_error_db(x, brown, unbiased) < 3.0


def adaptive_wiener() -> WienerSettings:
    """The `adaptive` preset's denoiser settings."""
    return WienerSettings(**presets.load("adaptive").steps[0].params)


def test_a_falling_fit_is_refitted_with_the_smaller_coloured_correction():
    """Faint bright notes under pink hiss lift the lower trusted sub-bands a little, and they
    fluctuate a little more than noise: the full excess correction lowers them most and flattens
    the line (-1.75 dB/octave, 11 dB under the hiss in the bass). Refitted with the smaller
    correction, the tilt reads -2.5 and the model rises toward the hiss, still under it. White
    hiss under the same music fits flat, and its estimate does not move at all."""
    x = melody(8, seed=0) + 0.03 * bright_melody(8, 12000.0, seed=2)
    refit = adaptive_wiener()
    assert (refit.coloured_tilt_excess_correction, refit.coloured_below_db_per_octave) == (2.0, -1.5)
    off = dataclasses.replace(refit, coloured_tilt_excess_correction=-1.0)
    pink = coloured(x.size, "pink", -45.0, seed=31)
    flat, steep = estimate_noise(x + pink, SR, off), estimate_noise(x + pink, SR, refit)
    assert refit.hold_tilt_below_db_per_octave <= steep.tilt_db_per_octave <= flat.tilt_db_per_octave - 0.5
    assert refit.coloured_below_db_per_octave >= flat.tilt_db_per_octave
    assert bass_error_db(x, pink, off) + 3.0 < bass_error_db(x, pink, refit) < 0.0
    hiss = white(x.size, -45.0, seed=31)
    a, b = estimate_noise(x + hiss, SR, off), estimate_noise(x + hiss, SR, refit)
    assert a.tilt_db_per_octave > refit.coloured_below_db_per_octave
    assert a.tilt_db_per_octave == b.tilt_db_per_octave and np.array_equal(a.psd, b.psd)
    y = x + pink
    assert si_sdr_db(x, wiener_denoise(y, SR, refit)) > si_sdr_db(x, wiener_denoise(y, SR, off)) + 0.2


def own_floor(y: np.ndarray, s: WienerSettings) -> np.ndarray:
    """Each bin's own minimum statistics, bias-corrected for white noise (the estimator's cap)."""
    power = _channel_power(y, s)[1][_interior(y.size, s)]
    return _track_stats(power, SR, s)[0] * _white_noise_calibration(s.n_fft, s.hop, SR, s.smoothing_s, s.min_window_s)[0]


def test_on_weak_evidence_the_extrapolated_model_keeps_clear_of_each_bins_own_floor():
    """Below the lowest trusted sub-band the model rests on no evidence of its own. Where fewer
    than `steep_tilt_min_bands` sub-bands are trusted, it may not claim a bin's whole floor (the
    music's quietest moments) as noise there: it stays `extrapolate_margin_db` under that floor
    where it would have come closer, and nothing changes above the lowest trusted sub-band or
    where the model lies lower anyway. With enough trusted sub-bands the margin does nothing."""
    x = melody(8, seed=0)
    y = x + coloured(x.size, "pink", -45.0, seed=31)
    plain = WienerSettings(bias_correction_db=0.0)
    found = estimate_noise(y, SR, plain)
    weak = dataclasses.replace(plain, steep_tilt_min_bands=found.trusted_bands + 1)  # the same evidence, counted as weak
    e0 = estimate_noise(y, SR, weak)
    e3 = estimate_noise(y, SR, dataclasses.replace(weak, extrapolate_margin_db=3.0))
    floor = own_floor(y, plain)
    assert (e0.tilt_db_per_octave, e0.trusted_bands) == (e3.tilt_db_per_octave, e3.trusted_bands)
    changed = np.flatnonzero(~np.isclose(e3.psd, e0.psd, rtol=1e-5))
    assert changed.size >= 5  # the pink model came near the floor in the bass
    freqs = np.arange(e0.psd.size) * SR / plain.n_fft
    assert freqs[changed].max() < 8000  # only under the sub-bands the hiss shows in
    # There the model had come within 3 dB of the floor (or reached it), and now keeps 3 dB clear.
    assert np.all(e0.psd[changed] > floor[changed] * 10 ** -0.3)
    assert np.all(e0.psd[changed] <= floor[changed] * (1 + 1e-5))
    np.testing.assert_allclose(e3.psd[changed], floor[changed] * 10 ** -0.3, rtol=1e-5)
    assert np.all(e3.psd <= e0.psd * (1 + 1e-6))
    # Counted as enough evidence (the default five sub-bands; here eight), the margin is not used.
    assert found.trusted_bands >= plain.steep_tilt_min_bands
    np.testing.assert_array_equal(estimate_noise(y, SR, dataclasses.replace(plain, extrapolate_margin_db=3.0)).psd,
                                  found.psd)


def notes(seconds: float, seed: int = 0) -> np.ndarray:
    """`melody` without its bass: nothing under 200 Hz."""
    x = melody(seconds, seed)
    return (x - 0.1 * np.sin(2 * np.pi * 55.0 * np.arange(x.size) / SR)).astype(np.float32)


def sub_bass_noise(n: int, dbfs: float, seed: int) -> np.ndarray:
    """Noise between 5 and 150 Hz only, RMS `dbfs`: a rumble that fluctuates exactly as hiss does."""
    f = np.fft.rfftfreq(n, 1.0 / SR)
    spec = np.fft.rfft(np.random.default_rng(seed).standard_normal(n)) * ((f >= 5.0) & (f <= 150.0))
    b = np.fft.irfft(spec, n=n)
    return (b / np.sqrt(np.mean(b**2)) * 10 ** (dbfs / 20)).astype(np.float32)


def test_subsonic_bins_that_behave_like_hiss_are_taken_at_their_own_floor():
    """Pink hiss is loudest per bin in the DC and 21.5 Hz bins, where a model fitted above 500 Hz
    reads it several dB low and these notes leave it bare. A bin whose own statistics pass the
    noise test lifts the model to its own floor there, close to the hiss and not over it, and
    the filter removes more of it; nothing above `own_floor_below_hz` moves, nor anything in a
    block shorter than `own_floor_min_s`."""
    x = notes(20, seed=0)
    hiss = coloured(x.size, "pink", -45.0, seed=32)
    y = x + hiss
    assert adaptive_wiener().own_floor_below_hz == 44.0  # the preset's setting
    off = dataclasses.replace(adaptive_wiener(), bias_correction_db=0.0, own_floor_below_hz=0.0)
    on = dataclasses.replace(off, own_floor_below_hz=44.0)
    a, b = estimate_noise(y, SR, off), estimate_noise(y, SR, on)
    true = noise_psd(hiss)
    error_db = lambda e: 10 * np.log10(e.psd[:3] / true[:3])  # noqa: E731
    assert np.all(error_db(a) < -3.0)  # the line reads the subsonic hiss low
    lifted = b.psd[:3] > a.psd[:3]
    assert lifted.sum() >= 2
    assert np.all((error_db(b)[lifted] > -2.0) & (error_db(b)[lifted] < 2.0))
    np.testing.assert_array_equal(a.psd[3:], b.psd[3:])
    assert si_sdr_db(x, wiener_denoise(y, SR, on)) > si_sdr_db(x, wiener_denoise(y, SR, off)) + 0.3
    # Under `own_floor_min_s` of frames one bin's statistics say too little: the rule stays off.
    short = y[: int(on.own_floor_min_s * SR)]
    np.testing.assert_array_equal(estimate_noise(short, SR, on).psd, estimate_noise(short, SR, off).psd)


@pytest.mark.parametrize("bass", ["steady tone", "rumble"])
def test_subsonic_music_is_not_taken_for_hiss(bass):
    """Music over the hiss in the lowest bins stays music: a steady 30 Hz tone 12-18 dB over the
    model, within the bound, fails the fluctuation test (it fluctuates less than noise), and a
    rumble 30-35 dB over the model, which passes it, lies more than `own_floor_within_db` over
    the model. The estimate is the one without the rule."""
    x = notes(20, seed=0)
    low = (0.008 * np.sin(2 * np.pi * 30.0 * np.arange(x.size) / SR) if bass == "steady tone"
           else sub_bass_noise(x.size, -20.0, seed=5))
    y = (x + low + coloured(x.size, "pink", -45.0, seed=32)).astype(np.float32)
    off = dataclasses.replace(adaptive_wiener(), own_floor_below_hz=0.0)
    on = dataclasses.replace(off, own_floor_below_hz=44.0)
    np.testing.assert_array_equal(estimate_noise(y, SR, on).psd, estimate_noise(y, SR, off).psd)
    # The same rumble 10 dB over the hiss would have been taken as hiss: the bound decides.
    near = (x + sub_bass_noise(x.size, -55.0, seed=5) + coloured(x.size, "pink", -45.0, seed=32)).astype(np.float32)
    if bass == "rumble":
        assert np.any(estimate_noise(near, SR, on).psd[:3] > estimate_noise(near, SR, off).psd[:3])


def test_the_routers_noise_evidence_ignores_the_filters_margin():
    """The router compares what the filter would act on, mix against stems; the margin is the
    filter's caution on weak evidence, not evidence, and must not move that comparison."""
    x = melody(8, seed=0)
    y = x + coloured(x.size, "pink", -45.0, seed=31)
    weak = WienerSettings(steep_tilt_min_bands=16, floor_spread_max_db=-1.0)  # every estimate counts as weak
    cautious = dataclasses.replace(weak, extrapolate_margin_db=3.0)
    assert np.mean(estimate_noise(y, SR, cautious).psd) < np.mean(estimate_noise(y, SR, weak).psd)  # the filter's own estimate differs
    assert found_noise_power(y, SR, cautious) == found_noise_power(y, SR, weak) > 0


def test_pink_hiss_seen_in_two_top_sub_bands_takes_their_raw_slope():
    """Music up to 11 kHz leaves two sub-bands of pink hiss, too narrow a span to fit a tilt: the
    first design drew a flat line 18 dB under the hiss in the bass; the raw slope of those two
    sub-bands gives a pink-like tilt, and the filter takes out more of the hiss. (The decaying
    notes also leave the hiss bare under them now and then, which the floor test reads in every
    sub-band: it is off here, to pin the prior path alone.)"""
    x = bright_melody(8, 11000.0, seed=0)
    noise = coloured(x.size, "pink", -45.0, seed=31)
    unbiased = WienerSettings(bias_correction_db=0.0, floor_spread_max_db=-1.0)
    first = dataclasses.replace(unbiased, **FIRST_DESIGN)
    est = estimate_noise(x + noise, SR, unbiased)
    assert est.trusted_bands == 2 and -3.0 <= est.tilt_db_per_octave <= -1.75
    assert estimate_noise(x + noise, SR, first).tilt_db_per_octave == 0.0
    assert bass_error_db(x, noise, first) < -15.0
    assert bass_error_db(x, noise, unbiased) > -8.0
    y = x + noise
    gain = si_sdr_db(x, wiener_denoise(y, SR, WienerSettings(floor_spread_max_db=-1.0))) - si_sdr_db(x, y)
    gain_first = si_sdr_db(x, wiener_denoise(y, SR, WienerSettings(**FIRST_DESIGN))) - si_sdr_db(x, y)
    assert gain > gain_first + 0.8


def test_the_prior_is_the_raw_slope_of_the_top_trusted_sub_bands():
    s = WienerSettings()
    x = np.log2(np.array([4490.0, 5657.0, 7127.0, 8980.0, 11314.0]) / REF_HZ)
    assert _prior_tilt(x, -50.0 - 3.5 * x + np.array([9.0, 5, 0, 0, 0]), s) == -2.75  # the top three only
    assert _prior_tilt(x, -45.0 - 0.5 * x, s) == 0.25
    assert _prior_tilt(x[:1], np.array([-50.0]), s) == 0.0  # one sub-band tells no slope
    assert _prior_tilt(x, -50.0 - 3.5 * x, WienerSettings(tilt_prior_bands=0)) == 0.0


def test_a_tilt_the_sub_bands_cannot_tell_is_the_prior_where_nothing_forbids_it():
    s = WienerSettings()
    no_bound = lambda tilt: 0.0  # every sub-band's minimum statistics far above the line
    top = np.log2(np.array([14254.0, 17889.0]) / REF_HZ)  # two sub-bands: too narrow a span
    assert _fit_tilt(top, -52.0 - 3.0 * top, s, no_bound, -3.0)[0] == -3.0
    # A sub-band at 1 kHz whose own minimum statistics lie 8 dB under that line: flat.
    assert _fit_tilt(top, -52.0 - 3.0 * top, s, lambda tilt: -60.0 + s.fit_margin_db, -3.0)[0] == 0.0
    # Three sub-bands over 2/3 octave falling 1.2 dB per octave: every tilt from -2.5 to +0.5
    # keeps all three within 1 dB; the prior takes the nearest, no prior the flattest.
    span = np.log2(np.array([11314.0, 14254.0, 17889.0]) / REF_HZ)
    y = np.array([-50.0, -50.4, -50.8])
    assert _fit_tilt(span, y, s, no_bound, -3.0)[0] == -2.5
    assert _fit_tilt(span, y, s, no_bound, -1.0)[0] == -1.0
    assert _fit_tilt(span, y, s, no_bound, 0.0)[0] == 0.0


def phrases(seconds: float, note_s: float = 0.5, gap_s: float = 0.2, seed: int = 0) -> np.ndarray:
    """Bright three-note chords (harmonics up to 20 kHz, decaying) of `note_s`, each followed by
    `gap_s` of silence: music over every sub-band most of the time, with short breaths."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(note_s * SR)) / SR
    env = np.exp(-t / 0.6) * np.minimum(1.0, t / 0.01) * np.minimum(1.0, (note_s - t) / 0.01)
    out: list[np.ndarray] = []
    while sum(map(len, out)) < seconds * SR:
        f0s = 220.0 * 2 ** (rng.integers(0, 24, 3) / 12)
        out.append(env * sum(0.1 / k**0.5 * np.sin(2 * np.pi * k * f0 * t + k)
                             for f0 in f0s for k in range(1, 100) if k * f0 < 20000))
        out.append(np.zeros(int(gap_s * SR)))
    return np.concatenate(out)[: int(seconds * SR)].astype(np.float32)


def test_hiss_left_bare_between_phrases_is_found_by_its_floor():
    # Chords cover pink hiss ~70% of the time in every sub-band, so every sub-band fluctuates like
    # music and the fluctuation test alone finds nothing; the breaths leave a floor as flat and
    # steady as noise's.
    music = phrases(10)
    noise = coloured(10 * SR, "pink", -45.0, seed=3)
    noisy = music + noise
    off = WienerSettings(floor_spread_max_db=-1.0)
    assert estimate_noise(noisy, SR, off).trusted_bands == 0
    assert np.array_equal(wiener_denoise(noisy, SR, off), noisy)
    est = estimate_noise(noisy, SR)
    assert est.trusted_bands >= 1 and -3.75 <= est.tilt_db_per_octave <= -2.25
    assert si_sdr_db(music, wiener_denoise(noisy, SR)) > si_sdr_db(music, noisy) + 2.0
    # the router's probe weighs the fluctuation test's evidence alone (found_noise_power's doc)
    assert found_noise_power(noisy, SR) == 0.0
    assert found_noise_power(tone(10) + noise, SR) > 0.0
    # the music's own floor (silence between reverb-free chords) is no noise: untouched
    assert estimate_noise(music, SR).trusted_bands == 0
    assert np.array_equal(wiener_denoise(music, SR), music)


def test_the_floor_is_consulted_only_when_the_fluctuation_test_finds_too_little():
    # Hiss under a held tone: the fluctuation test trusts plenty of sub-bands, and the floor's
    # levels (a little over the noise) are not mixed with theirs (corrected under it).
    noisy = tone(5) + white(5 * SR, -45.0, seed=1)
    est = estimate_noise(noisy, SR)
    assert est.trusted_bands >= WienerSettings().confident_bands
    off = estimate_noise(noisy, SR, WienerSettings(floor_spread_max_db=-1.0))
    assert np.array_equal(est.psd, off.psd) and est.trusted_bands == off.trusted_bands


def test_estimate_finds_nothing_in_clean_or_silent_audio():
    assert not np.any(estimate_noise_psd(melody(5), SR))
    assert not np.any(estimate_noise_psd(np.zeros(3 * SR, np.float32), SR))
    assert not np.any(estimate_noise_psd(np.ones(100, np.float32), SR))  # shorter than a frame
    assert detect_noise_level_db(melody(5), SR) == float("-inf")
    with pytest.raises(ValueError):
        estimate_noise_psd(np.zeros((2, SR), np.float32), SR)


def test_estimate_ignores_bands_a_lower_sample_rate_left_empty():
    """Hiss recorded at 16 kHz and resampled to 44.1 kHz fills only 0-8 kHz: the estimate must
    come from the bands that hold it, not read the empty ones as a near-zero clamp."""
    from scipy.signal import resample_poly

    noise = white(int(5 * 16000), -40, seed=3)  # -40 dBFS RMS, all of it below 8 kHz
    noise = resample_poly(noise, 441, 160).astype(np.float32)
    density_db = -40.0 + 10 * np.log10(SR / 2 / 8000)  # the same power in 8 of 22.05 kHz
    x = steady_chord(noise.size / SR)[: noise.size] + noise
    psd = estimate_noise_psd(x, SR, WienerSettings(bias_correction_db=0.0))
    freqs = np.arange(psd.size) * SR / WienerSettings().n_fft
    assert abs(10 * np.log10(np.median(psd[(freqs > 3000) & (freqs < 7000)])) - density_db) < 3.0
    assert np.max(psd[freqs > 9000]) < 10 ** ((density_db - 25) / 10)  # none above old Nyquist


# --- the filter ----------------------------------------------------------------------------------


def test_filter_raises_si_sdr_on_noisy_harmonic_signal():
    clean = melody(5)
    noisy = clean + white(clean.size, -45, seed=2)
    out = wiener_denoise(noisy, SR)
    assert si_sdr_db(clean, out) - si_sdr_db(clean, noisy) > 3.0


def test_filter_leaves_clean_signals_alone():
    for clean in (melody(5), steady_chord(5), melody(5, seed=1) * 4.0):
        assert np.array_equal(wiener_denoise(clean, SR), clean)


@pytest.mark.parametrize("signal", ["square 1.0", "square 0.5", "sawtooth 1.0", "sawtooth 0.5"])
def test_clean_square_and_sawtooth_come_back_bit_identical(signal):
    """Perfectly steady harmonics fluctuate LESS than noise (median-to-minimum ratio below white
    noise's) and are peaky within every sub-band: the old estimator took them for hiss."""
    kind, amplitude = signal.split()
    x = (square if kind == "square" else sawtooth)(3, float(amplitude))
    stereo = np.stack([x, x])
    assert estimate_noise(x, SR).strength == 0.0
    out = wiener_denoise(stereo, SR)
    assert np.array_equal(out, stereo)


@pytest.mark.parametrize("channels", [1, 2])
def test_steady_synth_pad_comes_back_unchanged(channels):
    x = pad(6)
    x = x if channels == 1 else np.stack([x, 0.9 * x])
    assert np.array_equal(wiener_denoise(x, SR), x)


@pytest.mark.parametrize("colour, min_gain_db", [("white", 6.0), ("pink", 2.0)])
def test_noise_on_a_tone_is_reduced(colour, min_gain_db):
    clean = tone(5)
    noise = white(clean.size, -45, seed=21) if colour == "white" else coloured(clean.size, "pink", -45, seed=21)
    noisy = clean + noise
    out = wiener_denoise(noisy, SR)
    assert si_sdr_db(clean, out) - si_sdr_db(clean, noisy) > min_gain_db


def test_weak_evidence_gives_a_gentler_filter():
    clean = melody(5)
    noisy = clean + white(clean.size, -45, seed=8)
    full = wiener_denoise(noisy, SR)
    # (the floor off: asked for more sub-bands than the fluctuation test finds, it would add its own)
    fewer = WienerSettings(confident_bands=4 * estimate_noise(noisy, SR).trusted_bands, floor_spread_max_db=-1.0)
    assert estimate_noise(noisy, SR, fewer).strength == pytest.approx(0.25)
    gentle = wiener_denoise(noisy, SR, fewer)
    # the gain moves a quarter of the way from 1 to the full-strength gain: ~1/16 of the change
    assert 0 < np.sum((gentle - noisy) ** 2) < 0.1 * np.sum((full - noisy) ** 2)


def test_gain_one_stft_path_reconstructs_exactly():
    x = melody(2)
    s = WienerSettings()
    first, count = spectral.covering_grid(x.size, s.hop, s.n_fft)
    y = spectral.istft(spectral.stft(x, s.n_fft, s.hop, first, count), s.n_fft, s.hop, first, x.size)
    assert y.shape == x.shape
    assert np.max(np.abs(y - x)) < 1e-5


@pytest.mark.parametrize("shape", [(3 * SR,), (1, 3 * SR), (2, 3 * SR)])
def test_shape_length_and_dtype_are_kept(shape):
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(shape) * 0.01).astype(np.float64) + np.resize(melody(3), shape)
    out = wiener_denoise(x, SR)
    assert out.shape == x.shape
    assert out.dtype == np.float32
    assert np.all(np.isfinite(out))


def test_samples_channels_layout_is_refused():
    with pytest.raises(ValueError):
        wiener_denoise(np.zeros((SR, 2), np.float32), SR)


def test_short_silent_and_nonfinite_inputs_pass_through():
    short = np.random.default_rng(0).standard_normal((2, 1000)).astype(np.float32)
    out = wiener_denoise(short, SR)
    assert np.array_equal(out, short) and out is not short
    silence = np.zeros((2, 2 * SR), np.float32)
    out = wiener_denoise(silence, SR)
    assert np.array_equal(out, silence) and np.all(np.isfinite(out))
    bad = melody(1)
    bad[100] = np.nan
    assert np.array_equal(wiener_denoise(bad, SR), bad, equal_nan=True)


def test_dc_and_levels_above_full_scale_survive():
    clean = 4.0 * melody(5)  # peaks well above 1.0
    noisy = clean + white(clean.size, -33, seed=4) + 0.2  # and a DC offset
    out = wiener_denoise(noisy, SR)
    assert np.all(np.isfinite(out))
    assert np.max(np.abs(out)) > 1.5
    assert abs(out.mean() - 0.2) < 0.01
    assert si_sdr_db(clean, out) > si_sdr_db(clean, noisy) + 3.0


def test_channels_are_treated_independently():
    clean = melody(5)
    noisy = clean + white(clean.size, -45, seed=5)
    out = wiener_denoise(np.stack([noisy, clean]), SR)
    assert np.array_equal(out[1], clean)  # no hiss in the right channel: untouched
    assert si_sdr_db(clean, out[0]) > si_sdr_db(clean, noisy) + 3.0


def test_block_processing_matches_one_pass():
    clean = melody(7, seed=3)
    noisy = clean + white(clean.size, -45, seed=6)
    one = wiener_denoise(noisy, SR, WienerSettings(block_s=100.0))
    blocked = wiener_denoise(noisy, SR, WienerSettings(block_s=2.0, block_context_s=1.6))
    assert blocked.shape == noisy.shape
    gain_one = si_sdr_db(clean, one) - si_sdr_db(clean, noisy)
    gain_blocked = si_sdr_db(clean, blocked) - si_sdr_db(clean, noisy)
    assert gain_blocked > gain_one - 1.0
    assert gain_blocked > 2.0


@pytest.mark.parametrize("width", [1, 2, 3, 8, 9, 129, 130, 400])
def test_the_sliding_minimum_is_scipys(width):
    from scipy.ndimage import minimum_filter1d

    x = np.random.default_rng(width).random((5, 300), dtype=np.float32)
    x[2, 40:200] = 0.5  # plateaus and ties, as a smoothed periodogram's minimum track has
    np.testing.assert_array_equal(_sliding_minimum(x, width), minimum_filter1d(x, width, axis=1, mode="nearest"))


def test_the_joint_wiener_recursion_gives_each_block_its_own_gain():
    rng = np.random.default_rng(3)
    s = WienerSettings()
    powers = [rng.exponential(size=(300, 65)).astype(np.float32) * k for k in (1.0, 4.0, 0.25)]
    noises = [np.full(65, 1.5, np.float32), np.linspace(0.0, 3.0, 65, dtype=np.float32), np.ones(65, np.float32)]
    together = _dd_wiener_gains(powers, noises, s)
    alpha = np.float32(s.dd_alpha)
    for power, noise, gain in zip(powers, noises, together):
        np.testing.assert_array_equal(gain, _dd_wiener_gain(power, noise, s))
        # the recursion as its docstring writes it, one block and one frame at a time
        gamma = power * np.where(noise > 0, np.float32(1.0) / np.maximum(noise, np.float32(1e-30)), np.float32(0.0))
        prev, want = np.zeros(65, np.float32), np.empty_like(power)
        for t in range(power.shape[0]):
            xi = alpha * prev + (np.float32(1.0) - alpha) * np.maximum(gamma[t] - np.float32(1.0), np.float32(0.0))
            want[t] = xi / (xi + np.float32(1.0))
            prev = want[t] * want[t] * gamma[t]
        want = np.maximum(want, np.float32(10.0 ** (s.gain_floor_db / 20.0)))
        want[:, noise <= 0] = 1.0
        np.testing.assert_allclose(gain, want, rtol=1e-5, atol=1e-7)
    assert np.all(together[1][:, 0] == 1.0)  # no noise in that bin: left alone
    assert together[0].min() < 0.5  # the recursion did act


@pytest.mark.parametrize("key", sorted(_CALIBRATED))
def test_the_calibration_table_is_the_simulation(key):
    assert _white_noise_calibration(*key) == _CALIBRATED[key]
    assert _simulated_calibration(*key) == pytest.approx(_CALIBRATED[key], rel=1e-9)


def test_settings_without_a_table_entry_are_simulated():
    key = (1024, 256, SR, 0.1, 1.5, False)
    assert key not in _CALIBRATED
    assert _white_noise_calibration(*key) == _simulated_calibration(*key)
    assert _white_noise_calibration(*key[:-1]) == _white_noise_calibration(*key)


def test_settings_are_plain_scalars_and_validated():
    s = WienerSettings()
    assert all(isinstance(getattr(s, k), (int, float)) for k in WienerSettings.keys())
    for bad in ({"dd_alpha": 1.0}, {"gain_floor_db": 3.0}, {"excess_min_db": 2.0}, {"flatness_min_db": 0.5},
                {"tilt_min_db_per_octave": 2.0}, {"tilt_prior_bands": -1},
                {"hold_tilt_below_db_per_octave": 1.0}, {"tilt_excess_correction": -1.0}, {"confident_bands": 0}, {"steep_tilt_min_bands": -1}, {"band_low_hz": 30000.0},
                {"floor_flatness_min_db": 0.1}, {"mid_side_match_db": -1.0}, {"mid_side_min_s": -1.0}):
        with pytest.raises(ValueError):
            WienerSettings(**bad)


# --- stereo: mid and side ------------------------------------------------------------------------


def stereo_music(seconds: float) -> np.ndarray:
    """A melody in the middle and a second one panned left, as a mix places them."""
    centre, left = melody(seconds, seed=11), melody(seconds, seed=12)
    return np.stack([centre + 0.3 * left, centre + 0.1 * left])


MID_SIDE = WienerSettings(mid_side=True)


def gain_db(clean: np.ndarray, noisy: np.ndarray, out: np.ndarray) -> float:
    return si_sdr_db(clean, out) - si_sdr_db(clean, noisy)


@pytest.mark.parametrize("colour", ["white", "pink"])
def test_mid_side_removes_more_of_independent_hiss(colour):
    """Independent hiss is as loud in the side as in the mid; the music mostly is not."""
    clean = stereo_music(8)
    n = clean.shape[1]
    hiss = (np.stack([white(n, -45, seed=31), white(n, -45, seed=32)]) if colour == "white"
            else np.stack([coloured(n, "pink", -45, seed=31), coloured(n, "pink", -45, seed=32)]))
    noisy = clean + hiss
    trace = DenoiseTrace()
    channels, mid_side = wiener_denoise(noisy, SR), wiener_denoise(noisy, SR, MID_SIDE, trace=trace)
    assert trace.side_blocks == 1
    assert gain_db(clean, noisy, mid_side) > gain_db(clean, noisy, channels) + 0.4
    assert gain_db(clean, noisy, channels) > 1.0


@pytest.mark.parametrize("case", ["one channel", "shared"])
def test_mid_side_falls_back_to_the_channels_unless_the_hiss_is_independent_and_even(case):
    """Hiss in the left channel only would leak into the clean right one through a mid and a side
    filtered apart; hiss shared by the two channels is missing from the side. Either way each
    channel is filtered on its own, as without mid-side."""
    clean = stereo_music(8)
    hiss = white(clean.shape[1], -45, seed=33)
    noisy = clean + (np.stack([hiss, 0 * hiss]) if case == "one channel" else np.stack([hiss, hiss]))
    trace = DenoiseTrace()
    out = wiener_denoise(noisy, SR, MID_SIDE, trace=trace)
    assert trace.side_blocks == 0
    np.testing.assert_array_equal(out, wiener_denoise(noisy, SR))
    if case == "one channel":
        np.testing.assert_array_equal(out[1], noisy[1])
    assert gain_db(clean[0], noisy[0], out[0]) > 3.0


def test_the_routers_weak_evidence_reads_the_side_where_its_filter_would_act():
    """The strong evidence stays the channels' (how plainly each shows the hiss: what separation
    can expose); the weak, asked for where that finds nothing anywhere, reads the side too."""
    clean = stereo_music(10)
    n = clean.shape[1]
    hiss = white(n, -45, seed=36)
    even = clean + np.stack([hiss, white(n, -45, seed=37)])
    one = clean + np.stack([hiss, 0 * hiss])
    true_power = 2 * 10 ** (-45 / 10)  # both channels' hiss, in the estimate's unit
    assert found_noise_power(even, SR, MID_SIDE) == found_noise_power(even, SR)
    channels, side = found_noise_power(even, SR, weak=True), found_noise_power(even, SR, MID_SIDE, weak=True)
    assert channels < side <= true_power  # nearer the hiss, still under it (the 3 dB bias)
    assert found_noise_power(one, SR, MID_SIDE, weak=True) == found_noise_power(one, SR, weak=True)


def test_the_sides_estimate_takes_the_channels_where_it_has_no_evidence_of_its_own():
    """Below its lowest trusted sub-band the side's model is extrapolated or held flat; there it
    reads at least the quieter channel (even hiss is as loud in the side as in each channel), but
    never more than the side's own minimum statistics allow; from that bin up it stays its own."""
    bins, lowest = 1025, 100
    s = WienerSettings()
    side_psd = np.full(bins, 1e-5, np.float32)  # a model held flat where it rose too steeply
    floor = np.full(bins, 1e-2, np.float32)
    floor[:20] = 4e-5  # a quiet side at the very bottom (a mix's bass is in the mid)
    left, right = (np.geomspace(1e-3, 1e-6, bins).astype(np.float32) * f for f in (1.0, 0.8))
    side = NoiseEstimate(side_psd, -40.0, -3.75, 8, 16, 1.0, floor, lowest)
    chans = [NoiseEstimate(p, -40.0, -3.25, 8, 16, 1.0, None, 0) for p in (left, right)]
    out = _side_below_evidence(side, chans, s)
    own = floor * np.float32(10.0 ** (s.bias_correction_db / 10.0))  # the floor in the estimate's unit
    np.testing.assert_array_equal(out.psd[:lowest], np.maximum(side_psd, np.minimum(right, own))[:lowest])
    assert np.all(out.psd[:lowest] > side_psd[:lowest])  # the channels' line rises above the held model...
    assert np.all(out.psd[:20] <= own[:20]) and np.all(out.psd[20:lowest] == right[20:lowest])  # ...to the side's floor
    np.testing.assert_array_equal(out.psd[lowest:], side_psd[lowest:])
    assert out.strength == side.strength and np.all(side.psd == 1e-5)  # the side's own estimate is left as it was
    np.testing.assert_array_equal(_side_below_evidence(dataclasses.replace(side, lowest_bin=0), chans, s).psd, side_psd)


def test_music_in_the_side_keeps_the_channels_reading_of_the_bass_hiss():
    """A mix whose music sits in the side (40 slowly swelling partials, 60 Hz to 3 kHz, in
    anti-phase) under even pink hiss: the side trusts only sub-bands from 3.2 kHz and its own
    model reads the bass hiss low, so its filter lost 0.56 dB to the channels' filters alone here.
    Below its evidence it now takes the channels' reading and stays within 0.3 dB of them."""
    t = np.arange(int(8 * SR)) / SR
    rng = np.random.default_rng(3)
    freqs, phases, rates = rng.uniform(60, 3000, 40), rng.uniform(0, 6, 40), rng.uniform(0.2, 3, 40)
    music = sum(0.06 * np.sin(2 * np.pi * f * t + p) * (1 + 0.5 * np.sin(2 * np.pi * r * t))
                for f, p, r in zip(freqs, phases, rates)).astype(np.float32)
    centre = 0.05 * melody(8, seed=43)[: t.size]
    clean = np.stack([centre + music, centre - music])
    noisy = clean + np.stack([coloured(t.size, "pink", -45, seed=34), coloured(t.size, "pink", -45, seed=53)])
    trace = DenoiseTrace()
    mid_side, channels = wiener_denoise(noisy, SR, MID_SIDE, trace=trace), wiener_denoise(noisy, SR)
    assert trace.side_blocks == 1
    assert gain_db(clean, noisy, mid_side) > gain_db(clean, noisy, channels) - 0.3
    assert gain_db(clean, noisy, mid_side) > 2.0


def test_mid_side_needs_enough_frames():
    clean = stereo_music(4)
    n = clean.shape[1]
    noisy = clean + np.stack([white(n, -45, seed=34), white(n, -45, seed=35)])
    trace = DenoiseTrace()
    np.testing.assert_array_equal(wiener_denoise(noisy, SR, MID_SIDE, trace=trace), wiener_denoise(noisy, SR))
    assert trace.side_blocks == 0  # the same music and hiss over 8 s: filtered (above)


def test_mid_side_leaves_clean_stereo_alone():
    for clean in (stereo_music(6), np.stack([pad(6), 0.9 * pad(6)]), np.stack([melody(5), melody(5, seed=1)])):
        assert np.array_equal(wiener_denoise(clean, SR, MID_SIDE), clean)


# --- real MusicGen material ---------------------------------------------------------------------


@pytest.mark.skipif(not CORPUS.is_dir(), reason="musicgen-dev corpus not present")
def test_real_musicgen_mixture():
    import pedalboard
    from pedalboard.io import AudioFile

    with AudioFile(str(CORPUS / "lofi_chill" / "mixed.wav")).resampled_to(SR) as f:
        clean = f.read(f.frames).mean(axis=0).astype(np.float32)
    noisy = clean + white(clean.size, -45, seed=7)
    change = si_sdr_db(clean, wiener_denoise(noisy, SR)) - si_sdr_db(clean, noisy)
    assert change > 1.0
    assert si_sdr_db(clean, wiener_denoise(clean, SR)) - si_sdr_db(clean, clean) > -0.5
    coded = pedalboard.Pedalboard([pedalboard.MP3Compressor(vbr_quality=4)])(clean[None], SR)[0]
    assert si_sdr_db(clean, wiener_denoise(coded, SR)) - si_sdr_db(clean, coded) > -0.5


@pytest.mark.skipif(not REAL_DEV.is_dir(), reason="real-dev corpus not built (eval/corpora.sh)")
@pytest.mark.parametrize("song", ["the_king_is_dead", "legends_of_the_north", "suspense"])
def test_real_music_the_old_estimator_cut_is_left_alone_and_its_hiss_removed(song):
    """Held notes and steady strings that passed the old steadiness test as noise: the first two
    lost 31-32 dB SI-SDR when clean (eval/results/denoise.md)."""
    import soundfile

    x, sr = soundfile.read(str(REAL_DEV / f"{song}.wav"), dtype="float32", always_2d=True)
    assert sr == SR
    clean = np.ascontiguousarray(x[: 10 * SR].T)
    assert np.array_equal(wiener_denoise(clean, SR), clean)
    noisy = clean + np.stack([white(clean.shape[1], -45, seed=s) for s in (1, 2)])
    assert si_sdr_db(clean, wiener_denoise(noisy, SR)) - si_sdr_db(clean, noisy) > 2.0


def test_filtering_in_place_gives_the_same_result():
    rng = np.random.default_rng(7)
    x = (np.stack([melody(40), melody(40, seed=1)]) + 0.003 * rng.standard_normal((2, 40 * SR))).astype(np.float32)
    expected = wiener_denoise(x, SR)  # 40 s: two blocks, so the block context is read back
    assert not np.allclose(expected, x, atol=1e-4)
    y = x.copy()
    result = wiener_denoise(y, SR, out=y)
    assert result is y or np.shares_memory(result, y)
    np.testing.assert_array_equal(y, expected)
