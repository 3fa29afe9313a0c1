"""Tests for adaptive_argm.core.gaps: the frames where a codec dropped the band below its wall are
refilled near the band's usual level, frames it kept are left sample for sample, and a band that
was never dropped is not touched at all."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal

from adaptive_argm.core import spectral
from adaptive_argm.core.gaps import GapSettings, fill_gaps
from adaptive_argm.core.recovery import RecoverySettings, recover

from test_recovery import SR, band_db, elliptic_lowpass, noise

N_FFT, HOP = 2048, 512
WALL_HZ = 14000.0
DROP_HZ = 10500.0


def sparse_top(seconds: float) -> np.ndarray:
    """Pink-ish noise up to 11 kHz, and above 9.5 kHz bursts whose level jumps every 0.25 s
    over 30 dB: a top whose ratio to the band below it changes from frame to frame, as in
    sparsely hit cymbals over steady instruments."""
    steady = elliptic_lowpass(noise(seconds, seed=3), 11000.0)
    bursts = noise(seconds, seed=5)
    bursts = scipy.signal.sosfiltfilt(scipy.signal.butter(8, 9500.0, "highpass", output="sos", fs=SR), bursts, axis=-1)
    segment = int(0.25 * SR)
    levels = 10.0 ** (np.random.default_rng(7).uniform(-30.0, 0.0, bursts.shape[1] // segment + 1) / 20.0)
    return steady + (bursts * np.repeat(levels, segment)[: bursts.shape[1]]).astype(np.float32)


def codec_like(seconds: float = 6.0, period_s: float = 0.5, fade: bool = False,
               sparse: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Pink-ish noise behind a 14 kHz wall whose 10.5-14 kHz band is dropped in every other
    `period_s` (the STFT cells zeroed, as an encoder drops scale-factor bands), and the mask of
    the samples inside a dropped stretch (away from its edges). With `fade`, those stretches
    lose their top gradually instead (12 dB per 1/6 octave above 9 kHz, 46 dB down at 14 kHz),
    as a note whose partials die away: deep, but no wall. With `sparse`, the music is
    `sparse_top` instead of steady noise."""
    x = elliptic_lowpass(sparse_top(seconds) if sparse else noise(seconds, seed=3), WALL_HZ)
    first, count = spectral.covering_grid(x.shape[1], HOP, N_FFT)
    spec = spectral.stft(x, N_FFT, HOP, first, count)
    centres = first + N_FFT // 2 + HOP * np.arange(count)
    dropped_frames = (centres // int(period_s * SR)) % 2 == 1
    f_hz = np.fft.rfftfreq(N_FFT, 1.0 / SR)
    if fade:
        gain_db = -72.0 * np.log2(np.maximum(f_hz, 9000.0) / 9000.0)
        spec[:, dropped_frames] *= (10.0 ** (gain_db / 20.0)).astype(np.float32)
    else:
        band = (f_hz >= DROP_HZ) & (f_hz < WALL_HZ + 500.0)
        spec[np.ix_(np.ones(2, bool), dropped_frames, band)] = 0
    y = spectral.istft(spec, N_FFT, HOP, first, x.shape[1])
    t = np.arange(x.shape[1])
    inside = ((t // int(period_s * SR)) % 2 == 1) & ((t % int(period_s * SR)) > N_FFT) \
        & ((t % int(period_s * SR)) < int(period_s * SR) - N_FFT)
    return y.astype(np.float32), inside


@pytest.mark.parametrize("level_db", [-6.0, 0.0])
def test_dropped_frames_are_refilled_at_the_kept_frames_level_plus_the_offset(level_db):
    y, inside = codec_like()
    out, share = fill_gaps(y, SR, WALL_HZ, GapSettings(level_db=level_db, step_percentile=50.0))
    assert 0.1 < share < 0.6
    kept = ~inside
    before = band_db(y[:, inside], 11000.0, 13500.0) - band_db(y[:, kept], 11000.0, 13500.0)
    after = band_db(out[:, inside], 11000.0, 13500.0) - band_db(out[:, kept], 11000.0, 13500.0)
    assert before < -30.0
    # Within 3 dB: the band straddling the drop's lower edge (9.9-11.1 kHz) loses part of its
    # energy in the dropped frames without counting as lost, and the band above is predicted
    # from it (about 2.8 dB low here; 1.4 dB with the step taken from the bands' usual ratios
    # to the reference, which refilled sparse material far too loud: see gaps._step_db).
    assert abs(after - level_db) < 3.0
    # Below the searched octave nothing moves.
    assert abs(band_db(out, 500.0, 6000.0) - band_db(y, 500.0, 6000.0)) < 0.01


def _refill_db(y: np.ndarray, inside: np.ndarray, percentile: float) -> float:
    out, _ = fill_gaps(y, SR, WALL_HZ, GapSettings(step_percentile=percentile))
    return band_db(out[:, inside], 11200.0, 13500.0)


def test_the_lower_quartile_step_lowers_a_sparse_top_refill_and_barely_a_steady_one():
    # An encoder drops a band where it is weak, so the refill is predicted from the low side of
    # the band's ratio to the band below: how far below the median depends on how that ratio
    # spreads over time, a little for steady music, a lot for a sparse top.
    y, inside = codec_like()
    steady = _refill_db(y, inside, 50.0) - _refill_db(y, inside, 25.0)
    y, inside = codec_like(sparse=True)
    sparse = _refill_db(y, inside, 50.0) - _refill_db(y, inside, 25.0)
    assert 0.0 <= steady < 1.5
    assert sparse > 4.0


def test_frames_far_from_a_drop_are_kept_sample_for_sample():
    y, inside = codec_like(period_s=1.0)
    out, _ = fill_gaps(y, SR, WALL_HZ)
    # The first 1 s is kept; samples more than one frame before the first drop are not touched.
    np.testing.assert_array_equal(out[:, : SR - 2 * N_FFT], y[:, : SR - 2 * N_FFT])
    assert not np.array_equal(out[:, inside], y[:, inside])


def test_a_top_that_fades_without_a_wall_is_not_refilled():
    y, inside = codec_like(fade=True)
    # As deep as a codec's gap where it ends...
    assert band_db(y[:, inside], 13000.0, 13800.0) < band_db(y[:, ~inside], 13000.0, 13800.0) - 35.0
    # ...but no band lies 30 dB under the one below it in the same frame: nothing is refilled.
    out, share = fill_gaps(y, SR, WALL_HZ)
    assert out is y and share == 0.0


def test_a_band_never_dropped_is_returned_as_the_same_array():
    x = elliptic_lowpass(noise(6.0, seed=4), WALL_HZ)
    out, share = fill_gaps(x, SR, WALL_HZ)
    assert out is x and share == 0.0


def test_recover_refills_first_and_says_so_and_the_refill_can_be_switched_off():
    y, inside = codec_like()
    z, report = recover(y, SR)
    assert report.acted and report.gaps_filled > 0.1 and "refilled" in report.reason
    assert band_db(z[:, inside], 11000.0, 13500.0) > band_db(y[:, inside], 11000.0, 13500.0) + 25.0
    z0, report0 = recover(y, SR, RecoverySettings(fill_codec_gaps=False))
    assert report0.acted and report0.gaps_filled == 0.0 and "refilled" not in report0.reason
    # Without the refill the band below the cutoff is the input's, dropped frames and all.
    assert band_db(z0[:, inside], 11000.0, 13500.0) < band_db(y[:, inside], 11000.0, 13500.0) + 3.0


def emptied_from(y: np.ndarray, lo_hz: float) -> np.ndarray:
    """`y` with everything from `lo_hz` up 60 dB down in every frame, as LAME leaves the
    scale-factor band under its low-pass on quiet music."""
    first, count = spectral.covering_grid(y.shape[1], HOP, N_FFT)
    spec = spectral.stft(y, N_FFT, HOP, first, count)
    spec[..., np.fft.rfftfreq(N_FFT, 1.0 / SR) >= lo_hz] *= np.float32(1e-3)
    return spectral.istft(spec, N_FFT, HOP, first, y.shape[1]).astype(np.float32)


def test_a_band_the_codec_left_empty_under_its_wall_is_added_from_where_it_empties():
    y = emptied_from(codec_like()[0], 12300.0)
    z, report = recover(y, SR)
    # The detector still finds the encoder's low-pass; the band under it is empty throughout.
    assert report.cutoff_hz > 13500.0
    assert band_db(y, 12600.0, 13800.0) < band_db(y, 11200.0, 12200.0) - 50.0
    assert report.band_lo_hz < 12700.0 and "left its band empty throughout" in report.reason
    assert report.empty_from_hz == report.band_lo_hz
    # Copied up from the music below it, that band now sits near its neighbour's level.
    assert band_db(z, 12600.0, 13800.0) > band_db(z, 11200.0, 12200.0) - 10.0
    # Where the codec shows itself by no drops, an empty band under the wall is the music's own
    # (a sample's low-pass): the band is added from the wall, as before.
    x = emptied_from(elliptic_lowpass(noise(6.0, seed=4), WALL_HZ), 12300.0)
    z, report = recover(x, SR)
    assert report.gaps_filled == 0.0 and report.band_lo_hz > 13500.0 and report.empty_from_hz is None
    assert band_db(z, 12600.0, 13800.0) < band_db(z, 11200.0, 12200.0) - 40.0


def test_cli_run_on_codec_like_input_refills_and_says_so(tmp_path):
    from adaptive_argm.core import audio

    from test_cli_run import cli, report

    y, _ = codec_like()
    song = audio.write(tmp_path / "clip_mp3like.wav", y, SR)
    r = cli("run", song, "--mode", "direct", "-o", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    assert "codec gaps refilled below it" in r.stdout
    chain = report(tmp_path / "out")["recovery"]["chains"]["mix"]
    assert chain["acted"] and chain["codec_gaps_refilled"] > 0.1
    # The report also says how much of the added band got noise where the copy carried holes up.
    assert 0.0 < chain["codec_holes_noise_filled"] < 0.5
    assert chain["codec_empty_band_from_hz"] is None


def test_cli_run_says_where_the_band_was_added_from_under_an_empty_one(tmp_path):
    from adaptive_argm.core import audio

    from test_cli_run import cli, report

    song = audio.write(tmp_path / "clip_mp3like.wav", emptied_from(codec_like()[0], 12300.0), SR)
    r = cli("run", song, "--mode", "direct", "-o", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    assert "under which the codec left its band empty" in r.stdout
    chain = report(tmp_path / "out")["recovery"]["chains"]["mix"]
    assert chain["codec_empty_band_from_hz"] == chain["band_added_hz"][0] < 12700.0


def holes_share(x: np.ndarray, lo_hz: float, hi_hz: float, depth_db: float = 20.0) -> float:
    """Share of the STFT cells of `x`'s mono downmix between `lo_hz` and `hi_hz` that lie
    `depth_db` under the mean power of the 1/6 octave and 3 frames around them."""
    from scipy.ndimage import uniform_filter

    first, count = spectral.covering_grid(x.shape[1], HOP, N_FFT)
    p = spectral.power(spectral.stft(x.mean(axis=0), N_FFT, HOP, first, count))
    f_hz = np.fft.rfftfreq(N_FFT, 1.0 / SR)
    band = (f_hz >= lo_hz) & (f_hz < hi_hz)
    local = uniform_filter(p, size=(3, 31), mode="nearest")
    return float(np.mean((p < local * 10.0 ** (-depth_db / 10.0))[:, band]))


def codec_with_holes() -> np.ndarray:
    """`codec_like`, with a third of the groups of 6 lines of its top octave also zeroed in every
    frame, as an encoder quantises weak lines to nothing."""
    y, _ = codec_like()
    first, count = spectral.covering_grid(y.shape[1], HOP, N_FFT)
    spec = spectral.stft(y, N_FFT, HOP, first, count)
    f_hz = np.fft.rfftfreq(N_FFT, 1.0 / SR)
    group = np.random.default_rng(5).random(f_hz.size // 6 + 1) < 0.33
    lines = (f_hz >= 7000.0) & (f_hz < WALL_HZ + 500.0) & group[np.arange(f_hz.size) // 6]
    spec[..., lines] = 0
    return spectral.istft(spec, N_FFT, HOP, first, y.shape[1]).astype(np.float32)


def test_the_holes_a_codec_left_are_not_carried_up_into_the_added_band():
    y = codec_with_holes()
    z, report = recover(y, SR)
    z_off, report_off = recover(y, SR, RecoverySettings(noise_fill_hole_db=-200.0))
    assert report.gaps_filled > 0.1 and report_off.noise_filled == 0.0
    assert 0.05 < report.noise_filled < 0.6 and "noise in" in report.reason
    # Without the fill the copy carries the zeroed lines up; with it, hardly a cell is a hole.
    assert holes_share(z_off, 15000.0, 19500.0) > 0.08
    assert holes_share(z, 15000.0, 19500.0) < 0.03
    # The fill changes the band's level by little and never touches the band below the cutoff.
    assert abs(band_db(z, 15000.0, 19500.0) - band_db(z_off, 15000.0, 19500.0)) < 1.5
    np.testing.assert_allclose(band_db(z, 500.0, 6000.0), band_db(y, 500.0, 6000.0), atol=0.01)
    # The same input gives the same output: the noise's phases are seeded.
    np.testing.assert_array_equal(recover(y, SR)[0], z)


def test_input_that_only_went_through_a_resampler_gets_no_noise():
    x = elliptic_lowpass(noise(6.0, seed=4), WALL_HZ)
    z, report = recover(x, SR)
    z_off, _ = recover(x, SR, RecoverySettings(noise_fill_hole_db=-200.0))
    assert report.acted and report.gaps_filled == 0.0 and report.noise_filled == 0.0
    np.testing.assert_array_equal(z, z_off)
