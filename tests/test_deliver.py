"""Delivery: formats and bit depths round-trip exactly, 16-bit dither leaves a flat floor at
-96 dBFS and no truncation distortion, and the loudness target lands under a true-peak ceiling."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.signal
import soundfile
from pedalboard.io import AudioFile

from adaptive_argm.core import audio
from adaptive_argm.core import deliver
from adaptive_argm.core.deliver import DeliveryError, OutputFormat, SourceFormat
from adaptive_argm.core.levels import loudness_lufs

from conftest import SONGS, SR

TARGET_LUFS = -14.0
CEILING_DBTP = -1.0
GOAL_LU = 0.3
"""How close the loudness target must land (the delivery goal)."""


def noise(channels: int, seconds: float, sr: int = SR, level: float = 0.3, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(level * rng.standard_normal((channels, int(seconds * sr))), -0.99, 0.99).astype(np.float32)


def faded_tone(freq_hz: float, seconds: float, sr: int, phase: float = 0.0) -> np.ndarray:
    """A full-scale-peak cosine with 20 ms raised-cosine fades: no edge overshoot to measure."""
    n = int(seconds * sr)
    fade = np.ones(n)
    k = int(0.02 * sr)
    fade[:k] = np.sin(np.linspace(0, np.pi / 2, k)) ** 2
    fade[-k:] = fade[:k][::-1]
    return (np.cos(2 * np.pi * freq_hz * np.arange(n) / sr + phase) * fade)[None].astype(np.float32)


# --- formats ----------------------------------------------------------------------------------


def test_flac_cannot_hold_float_samples():
    with pytest.raises(DeliveryError, match="FLAC holds integer samples only"):
        OutputFormat("flac", "32f")
    with pytest.raises(DeliveryError, match="wav or flac"):
        OutputFormat("mp3", "16")
    with pytest.raises(DeliveryError, match="16, 24 or 32f"):
        OutputFormat("wav", "8")


def test_sixteen_bits_get_tpdf_dither_by_default_and_other_depths_do_not():
    assert OutputFormat("wav", 16).dither is True and OutputFormat("wav", 16).bits == "16"
    assert OutputFormat("flac", "24").dither is False
    assert OutputFormat("wav", "32f").dither is False
    assert OutputFormat("wav", "24", dither=True).to_dict() == {"format": "wav", "bits": "24", "dither": "tpdf"}
    with pytest.raises(DeliveryError, match="no dither"):
        OutputFormat("wav", "32f", dither=True)


@pytest.mark.parametrize("suffix, bit_depth, expected", [
    (".wav", 16, ("wav", "16", True)),
    (".wav", 32, ("wav", "32f", False)),
    (".flac", 24, ("flac", "24", False)),
    (".flac", 16, ("flac", "16", True)),
    (".mp3", 16, ("wav", "24", False)),
    (".ogg", 16, ("wav", "24", False)),
])
def test_default_format_is_the_inputs_own_where_it_can_hold_the_result(tmp_path, suffix, bit_depth, expected):
    path = tmp_path / f"in{suffix}"
    x = noise(2, 0.5, level=0.1)
    with AudioFile(str(path), "w", samplerate=SR, num_channels=2, bit_depth=bit_depth) as f:
        f.write(x)
    fmt, why = deliver.default_format(deliver.probe(path), audio.peak_dbfs(x))
    assert (fmt.container, fmt.bits, fmt.dither) == expected
    assert ("lossy" in why) == (suffix in (".mp3", ".ogg"))


def test_default_format_goes_float_when_the_result_is_above_full_scale():
    fmt, why = deliver.default_format(SourceFormat("flac", "int16"), peak_dbfs=2.5)
    assert (fmt.container, fmt.bits) == ("wav", "32f") and "+2.50 dBFS" in why
    fmt, why = deliver.default_format(SourceFormat("wav", "int32"), peak_dbfs=-1.0)
    assert fmt.bits == "24" and "int32" in why


def test_pcm_refuses_a_result_above_full_scale_and_float_keeps_it(tmp_path):
    x = noise(1, 0.2)
    x[0, 100] = 1.5
    with pytest.raises(DeliveryError, match=r"\+3\.52 dBFS.*cannot hold"):
        deliver.write(tmp_path / "out.wav", x, SR, OutputFormat("wav", "24"))
    assert not list(tmp_path.iterdir())  # nothing written, no temp file left
    deliver.write(tmp_path / "out.wav", x, SR, OutputFormat("wav", "32f"))
    back, _ = soundfile.read(tmp_path / "out.wav", dtype="float32", always_2d=True)
    assert back[100, 0] == np.float32(1.5)


def test_write_refuses_an_input_path_and_a_wrong_suffix(tmp_path):
    src = tmp_path / "in.wav"
    src.write_bytes(b"not touched")
    with pytest.raises(DeliveryError, match="overwrite an input"):
        deliver.write(src, noise(1, 0.1), SR, OutputFormat("wav", "16"), protect=(src,))
    assert src.read_bytes() == b"not touched"
    with pytest.raises(DeliveryError, match="suffix .flac"):
        deliver.write(tmp_path / "out.wav", noise(1, 0.1), SR, OutputFormat("flac", "16"))


# --- dither and quantisation ------------------------------------------------------------------


def test_sixteen_bit_dither_floor_is_half_an_lsb_rms():
    """TPDF of +-1 LSB (variance 1/6) plus rounding (1/12) gives 1/4 LSB^2: RMS LSB/2, which is
    20 log10(2**-16) = -96.33 dBFS against a full-scale peak of 1.0."""
    x = (0.01 * np.sin(2 * np.pi * 997 * np.arange(5 * SR) / SR))[None].astype(np.float32)
    q, clipped = deliver.quantize(x, 16, dither=True)
    error = q / 2.0 ** 15 - x.astype(np.float64)
    floor_dbfs = 10 * np.log10(np.mean(error ** 2))
    assert clipped == 0
    assert floor_dbfs == pytest.approx(20 * math.log10(2.0 ** -16), abs=0.1)
    # rounding alone would give LSB/sqrt(12), 4.8 dB lower: the dither is really there
    undithered = deliver.quantize(x, 16, dither=False)[0] / 2.0 ** 15 - x
    assert 10 * np.log10(np.mean(undithered ** 2)) < floor_dbfs - 4


def _harmonic_excess_db(q: np.ndarray, sr: int, f0: float) -> list[float]:
    """Level of each harmonic 2..7 of `f0` above the median of its neighbouring bins, dB."""
    freqs, psd = scipy.signal.welch(q[0].astype(np.float64), sr, nperseg=4800)
    excess = []
    for k in range(2, 8):
        i = int(round(k * f0 / (freqs[1] - freqs[0])))
        around = np.r_[psd[i - 40:i - 3], psd[i + 4:i + 41]]
        excess.append(10 * np.log10(psd[i - 1:i + 2].max() / np.median(around)))
    return excess


def test_dither_leaves_no_truncation_harmonics_on_a_minus_80_dbfs_sine():
    sr, f0 = 48000, 1000.0
    x = (10 ** (-80 / 20) * np.sin(2 * np.pi * f0 * np.arange(4 * sr) / sr))[None].astype(np.float32)
    dithered = _harmonic_excess_db(deliver.quantize(x, 16, dither=True)[0], sr, f0)
    truncated = _harmonic_excess_db(deliver.quantize(x, 16, dither=False)[0], sr, f0)
    assert max(dithered) < 3.0, dithered
    assert max(truncated) > 20.0, truncated  # without dither the distortion is plain to see


def test_dither_is_seeded_and_independent_of_block_size(monkeypatch):
    x = noise(2, 1.0, level=0.05)
    a, _ = deliver.quantize(x, 16, seed=7)
    assert np.array_equal(a, deliver.quantize(x, 16, seed=7)[0])
    assert not np.array_equal(a, deliver.quantize(x, 16, seed=8)[0])
    assert not np.array_equal(a[0], a[1] - (np.rint(x[1] * 2 ** 15) - np.rint(x[0] * 2 ** 15)))
    q = deliver._Quantizer(16, 2, True, 7)
    blocks = np.concatenate([q(x[:, s:s + 1000]) for s in range(0, x.shape[1], 1000)], axis=1)
    assert np.array_equal(blocks, a)


def test_dither_overs_are_held_at_full_scale_and_counted():
    x = np.full((1, 10000), 1.0 - 2.0 ** -16, np.float32)
    q, clipped = deliver.quantize(x, 16, dither=True)
    assert q.max() == 2 ** 15 - 1 and 0 < clipped < x.size
    assert deliver.quantize(np.ones((1, 3), np.float32), 24, dither=False)[1] == 3  # +1.0 is one step over
    assert deliver.quantize(np.full((1, 10), -1.0, np.float32), 16, dither=False) == (
        pytest.approx(np.full((1, 10), -2 ** 15)), 0)


# --- round trips ------------------------------------------------------------------------------


@pytest.mark.parametrize("channels, sr", [(1, 44100), (2, 48000), (6, 96000)])
@pytest.mark.parametrize("container, bits", [("wav", "16"), ("wav", "24"), ("wav", "32f"),
                                             ("flac", "16"), ("flac", "24")])
def test_every_format_reads_back_as_written_within_its_bit_depth(tmp_path, container, bits, channels, sr):
    fmt = OutputFormat(container, bits)
    x = noise(channels, 0.25, sr=sr, level=0.4, seed=channels)
    x[:, :4] = [-1.0, 1.0 - fmt.lsb, 0.5, 0.0]  # both ends of the range
    path = tmp_path / f"out.{container}"
    written = deliver.write(path, x, sr, fmt, seed=3)
    back, back_sr = soundfile.read(path, dtype="float64", always_2d=True)  # exact: k / 2**(bits-1)
    back = back.T
    assert back_sr == sr and back.shape == x.shape and written.frames == x.shape[1]
    error = np.abs(back - x)
    assert written.clipped_samples == 0 or fmt.dither
    if fmt.is_float:
        assert np.array_equal(back.astype(np.float32), x)
    else:
        assert error.max() <= (1.5 if fmt.dither else 0.5) * fmt.lsb  # dither +-1 plus rounding 1/2
        assert np.array_equal(np.rint(back * 2 ** (int(bits) - 1)), deliver.quantize(x, int(bits), dither=fmt.dither,
                                                                                      seed=3)[0])
    # The project's reader (pedalboard) scales PCM by 1/(2**(bits-1) - 1): one more step at most.
    ours, info = audio.read(path, sr=None)
    assert info.sample_rate == sr and ours.shape == x.shape
    assert np.abs(ours - x).max() <= (2.5 if fmt.dither else 1.5) * fmt.lsb + 1e-7


# --- true peak --------------------------------------------------------------------------------


@pytest.mark.parametrize("period", [4, 6, 8, 16])
def test_true_peak_finds_the_peak_between_samples(period):
    """A 0 dB cosine of `period` samples, sampled half a step either side of its crests: sample
    peak cos(pi / period), true peak 0 dBTP within the Annex 2 filter's accuracy (4x reads a
    tone a sixth of the rate as much as 0.3 dB low; an exact interpolation is within 0.02 dB)."""
    x = faded_tone(SR / period, 0.5, SR, phase=np.pi / period)
    assert audio.peak_dbfs(x) == pytest.approx(20 * math.log10(math.cos(math.pi / period)), abs=0.01)
    assert deliver.true_peak_dbtp(x) == pytest.approx(0.0, abs=0.3)


def test_true_peak_in_blocks_equals_the_whole_signal_filtered_at_once():
    x = noise(2, 3.5, level=0.2, seed=4)  # more than two blocks
    whole = max(np.abs(scipy.signal.upfirdn(deliver.TRUE_PEAK_FIR, ch.astype(np.float64), 4)).max() for ch in x)
    assert deliver.true_peak_envelope(x).max() == pytest.approx(max(whole, np.abs(x).max()), rel=1e-6)
    assert deliver.true_peak_dbtp(np.zeros((2, 1000), np.float32)) == -math.inf


def test_true_peak_limiter_touches_only_the_overs():
    x = noise(2, 2.0, level=0.05, seed=5)
    x[:, SR:SR + 200] *= 30  # one loud burst in the middle
    y, reduction_db, peak_dbtp = deliver.true_peak_limit(x, SR, CEILING_DBTP)
    assert deliver.true_peak_dbtp(y) == peak_dbtp <= CEILING_DBTP and reduction_db > 3
    assert np.array_equal(y[:, :SR - 1000], x[:, :SR - 1000]) and np.array_equal(y[:, -SR // 2:], x[:, -SR // 2:])
    quiet = noise(1, 1.0, level=0.01)
    assert deliver.true_peak_limit(quiet, SR, CEILING_DBTP)[:2] == (quiet, 0.0)


# --- the loudness target ----------------------------------------------------------------------


def loud_dense_mix(sr: int = SR, seconds: float = 6.0) -> np.ndarray:
    """Square-wave chords in saturated pink noise, stereo, at -6 LUFS with peaks at +3 dBFS."""
    rng = np.random.default_rng(1)
    n = int(sr * seconds)
    t = np.arange(n) / sr
    chords = sum(0.2 * np.sign(np.sin(2 * np.pi * f * t)) for f in (110.0, 138.6, 164.8))
    white = rng.standard_normal((2, n))
    f = np.fft.rfftfreq(n)
    f[0] = f[1]
    pink = np.fft.irfft(np.fft.rfft(white) / np.sqrt(f), n=n) / 30
    x = np.tanh(1.5 * (chords + pink)).astype(np.float32)
    x *= np.float32(10 ** ((-6.0 - loudness_lufs(x, sr)) / 20))
    spikes = rng.integers(0, n, 6)
    x[:, spikes] = np.float32(10 ** (3 / 20)) * np.sign(x[:, spikes] + 1e-9)
    return x


def quiet_sparse_mix(sr: int = SR, seconds: float = 6.0) -> np.ndarray:
    """Plucked notes (five harmonics decaying over 0.15 s) every 0.6 s over a faint drone, mono,
    at -40 LUFS: peaks 17 dB above loudness, so -14 LUFS needs +26 dB and the limiter."""
    rng = np.random.default_rng(2)
    n = int(sr * seconds)
    t = np.arange(n) / sr
    x = 0.01 * np.sin(2 * np.pi * 110 * t)
    for start in np.arange(0.1, seconds - 0.5, 0.6):
        i, tt = int(start * sr), np.arange(int(0.5 * sr)) / sr
        f0 = rng.choice([220.0, 262.0, 330.0, 392.0, 440.0])
        note = sum(np.sin(2 * np.pi * k * f0 * tt + rng.uniform(0, 6)) / k for k in range(1, 6))
        x[i:i + tt.size] += note * np.exp(-tt / 0.15) * (1 - np.exp(-tt / 0.002))
    x = x[None].astype(np.float32)
    return x * np.float32(10 ** ((-40.0 - loudness_lufs(x, sr)) / 20))


def assert_on_target(y: np.ndarray, sr: int, result: deliver.LoudnessResult):
    assert result.status == "reached", result.note
    assert abs(loudness_lufs(y, sr) - TARGET_LUFS) <= GOAL_LU
    assert deliver.true_peak_dbtp(y) <= CEILING_DBTP
    assert result.reached_lufs == pytest.approx(loudness_lufs(y, sr))
    assert result.true_peak_dbtp == pytest.approx(deliver.true_peak_dbtp(y), abs=1e-9)


def test_loud_dense_mix_comes_down_to_the_target():
    x = loud_dense_mix()
    assert loudness_lufs(x, SR) == pytest.approx(-6.0, abs=0.01) and audio.peak_dbfs(x) == pytest.approx(3.0, abs=0.01)
    y, result = deliver.normalize_loudness(x, SR, TARGET_LUFS, CEILING_DBTP)
    assert_on_target(y, SR, result)
    assert result.gain_db == pytest.approx(-8.0, abs=0.05) and result.true_peak_in_dbtp >= 3.0


def test_quiet_sparse_mix_needs_26_db_and_the_limiter():
    x = quiet_sparse_mix()
    y, result = deliver.normalize_loudness(x, SR, TARGET_LUFS, CEILING_DBTP)
    assert_on_target(y, SR, result)
    assert result.gain_db > 26.0 and result.limiter_reduction_db > 1.0 and result.passes > 1


@pytest.mark.parametrize("song", SONGS)
def test_dev_clips_land_on_minus_14_lufs_under_minus_1_dbtp(corpus, song):
    x, _ = audio.read(corpus / song / "mixed.wav")
    y, result = deliver.normalize_loudness(x, SR, TARGET_LUFS, CEILING_DBTP)
    assert_on_target(y, SR, result)


def test_an_unreachable_target_is_reported_short_and_the_ceiling_still_holds():
    x = np.zeros((1, 3 * SR), np.float32)
    x[0, ::SR // 2] = 0.3  # isolated clicks at -54 LUFS: limited clicks add almost no loudness
    y, result = deliver.normalize_loudness(x, SR, TARGET_LUFS, CEILING_DBTP)
    assert result.status == "short-of-target" and result.reached_lufs < TARGET_LUFS - 1
    assert "holds it at" in result.note and deliver.true_peak_dbtp(y) <= CEILING_DBTP


def test_silence_and_clips_too_short_for_bs1770_get_no_gain():
    silent = np.zeros((2, SR), np.float32)
    y, result = deliver.normalize_loudness(silent, SR, TARGET_LUFS)
    assert result.status == "silence" and result.gain_db == 0.0 and not y.any()
    faint = np.full((1, SR), 1e-4, np.float32)  # -80 dBFS: under BS.1770's -70 LUFS absolute gate
    y, result = deliver.normalize_loudness(faint, SR, TARGET_LUFS)
    assert result.status == "below-gate" and result.gain_db == 0.0 and np.array_equal(y, faint)
    short = noise(2, 0.3, level=0.5)
    y, result = deliver.normalize_loudness(short, SR, TARGET_LUFS)
    assert result.status == "too-short" and result.gain_db == 0.0 and math.isnan(result.input_lufs)
    assert deliver.true_peak_dbtp(y) <= CEILING_DBTP < deliver.true_peak_dbtp(short)  # the ceiling still holds
    assert "0.4 s" in result.note


def test_no_target_only_enforces_the_ceiling():
    x = noise(1, 1.0, level=0.05)
    y, result = deliver.normalize_loudness(x, SR, None)
    assert result.status == "ceiling-only" and result.gain_db == 0.0 and np.array_equal(y, x)


# --- residual ---------------------------------------------------------------------------------


def test_residual_is_output_minus_input_and_needs_one_shape():
    x, y = noise(2, 0.5, seed=1), noise(2, 0.5, seed=2)
    r = deliver.residual(y, x)
    assert r.dtype == np.float32 and np.array_equal(r, y - x)
    with pytest.raises(DeliveryError, match="one rate and layout"):
        deliver.residual(y[:, :-1], x)
