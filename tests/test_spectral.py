"""adaptive_argm.core.spectral against the references it replaces in the hot path: librosa (mel
filterbank, mel scale, centred STFT, power_to_db) and scipy's ShortTimeFFT (covering grid)."""

from __future__ import annotations

import warnings

import librosa
import numpy as np
import pytest
from scipy.signal import ShortTimeFFT
from scipy.signal.windows import hann

from adaptive_argm.core import spectral

SR = 44100


def _noise(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(n).astype(np.float32)


@pytest.mark.filterwarnings("ignore:Empty filters")  # librosa's, at 8 kHz with 128 mels
@pytest.mark.parametrize("sr", [8000, 22050, 32000, 44100, 48000, 192000])
@pytest.mark.parametrize("n_fft,n_mels", [(2048, 128), (1024, 64)])
def test_mel_filterbank_is_librosas_bit_for_bit(sr, n_fft, n_mels):
    ours = spectral.mel_filterbank(sr, n_fft, n_mels)
    theirs = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels)
    assert ours.dtype == theirs.dtype == np.float32
    np.testing.assert_array_equal(ours, theirs)


def test_mel_scale_matches_librosa():
    hz = np.array([0.0, 20.0, 440.0, 999.9, 1000.0, 1000.1, 8000.0, 22050.0])
    np.testing.assert_allclose(spectral.hz_to_mel(hz), librosa.hz_to_mel(hz), rtol=1e-12)
    np.testing.assert_allclose(spectral.mel_frequencies(130, 0.0, 22050.0),
                               librosa.mel_frequencies(n_mels=130, fmin=0.0, fmax=22050.0), rtol=1e-12)


@pytest.mark.filterwarnings("ignore:n_fft=2048 is too large")
@pytest.mark.parametrize("n", [1, 100, 2048, 44100 + 77])
def test_centred_stft_matches_librosa(n):
    x = _noise(n)
    first, count = spectral.centred_grid(n, 512, 2048)
    ours = spectral.stft(x, 2048, 512, first, count, dtype=np.float64)
    theirs = librosa.stft(x, n_fft=2048, hop_length=512, center=True, pad_mode="constant")
    assert ours.shape == theirs.T.shape
    np.testing.assert_allclose(ours.T, theirs, atol=1e-5 * np.abs(theirs).max())


def test_stft_of_a_chunk_equals_the_same_frames_of_the_whole():
    x = _noise(3 * SR)
    first, count = spectral.centred_grid(x.size, 512, 2048)
    whole = spectral.stft(x, 2048, 512, first, count)
    part = spectral.stft(x, 2048, 512, first + 100 * 512, 50)
    np.testing.assert_allclose(part, whole[100:150], atol=1e-4)


@pytest.mark.parametrize("n_fft,hop", [(2048, 512), (2048, 1000), (512, 256), (1024, 300)])
def test_covering_grid_is_shorttimeffts_and_inverts_exactly(n_fft, hop):
    x = _noise(SR + 123)
    first, count = spectral.covering_grid(x.size, hop, n_fft)
    ref = ShortTimeFFT(hann(n_fft, sym=False), hop, SR)
    assert first == ref.p_min * hop - ref.m_num_mid
    assert count == ref.p_max(x.size) - ref.p_min
    spec = spectral.stft(x, n_fft, hop, first, count)
    np.testing.assert_allclose(np.abs(spec).T, np.abs(ref.stft(x)), atol=1e-4)
    y = spectral.istft(spec, n_fft, hop, first, x.size)
    assert y.dtype == np.float32 and y.shape == x.shape
    assert np.max(np.abs(y - x)) < 1e-5


def test_interior_frames_lie_inside_the_signal():
    n, hop, n_fft = 10_000, 512, 2048
    first, count = spectral.covering_grid(n, hop, n_fft)
    inner = spectral.interior(n, hop, n_fft, first, count)
    starts = first + hop * np.arange(count)
    inside = (starts >= 0) & (starts + n_fft <= n)
    assert np.array_equal(np.flatnonzero(inside), np.arange(count)[inner])
    # Shorter than a frame: no frame is inside, so all of them are used.
    first, count = spectral.covering_grid(1000, hop, n_fft)
    assert spectral.interior(1000, hop, n_fft, first, count) == slice(0, count)


def test_stft_works_on_leading_channel_axes():
    x = np.stack([_noise(SR, 1), _noise(SR, 2)])
    first, count = spectral.covering_grid(SR, 512, 2048)
    both = spectral.stft(x, 2048, 512, first, count)
    assert both.shape == (2, count, 1025)
    np.testing.assert_allclose(both[1], spectral.stft(x[1], 2048, 512, first, count), atol=1e-6)
    np.testing.assert_allclose(spectral.istft(both, 2048, 512, first, SR), x, atol=1e-5)


@pytest.mark.parametrize("top_db", [80.0, None])
def test_power_to_db_matches_librosa(top_db):
    power = np.abs(librosa.stft(_noise(SR) * np.linspace(0, 1, SR, dtype=np.float32))) ** 2
    np.testing.assert_allclose(spectral.power_to_db(power, top_db=top_db),
                               librosa.power_to_db(power, ref=np.max, top_db=top_db), atol=1e-4)
    np.testing.assert_allclose(spectral.power_to_db(power, ref=1.0, top_db=None),
                               librosa.power_to_db(power, ref=1.0, top_db=None), atol=1e-4)


@pytest.mark.parametrize("n", [0, 1, 2, 7, 10])
def test_the_median_of_sorted_rows_is_numpys(n):
    x = np.random.default_rng(n).random((4, n), dtype=np.float32)
    x[1, : n // 2] = 0.25  # ties
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        np.testing.assert_array_equal(spectral.median_of_sorted(np.sort(x, axis=1)), np.median(x, axis=1))


@pytest.mark.parametrize("n", [1, 2, 3, 10, 11, 2584])
@pytest.mark.parametrize("qs", [(10.0, 90.0), (0.0, 50.0, 100.0), 10.0, 25, 37.5, 62.5, 100.0, np.float64(37.5),
                                np.array([12.5, 87.5])])
def test_the_percentiles_of_sorted_rows_are_numpys(n, qs):
    x = np.random.default_rng(n).random((4, n), dtype=np.float32) ** 3
    x[1, : n // 2] = 0.25  # ties
    got = spectral.percentiles_of_sorted(np.sort(x, axis=1), qs)
    want = np.percentile(x, qs, axis=1)
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)
