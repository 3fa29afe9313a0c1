"""Audio I/O: channels, length, DC, overs, atomic writes, clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from adaptive_argm.core import audio
from adaptive_argm.core.dc import remove_dc
from adaptive_argm.core.resample import resample
from adaptive_argm.core.audio import AudioError

SR = audio.WORK_SR


def test_read_keeps_channels_overs_and_reports_dc(tmp_path):
    x = np.stack([np.full(SR, 0.2), np.linspace(-1.7, 1.7, SR)]).astype(np.float32) + 0.18
    p = audio.write(tmp_path / "in.wav", x, SR)
    y, info = audio.read(p)
    assert y.shape == (2, SR)
    assert info.channels == 2 and info.sample_rate == SR
    assert abs(info.dc_offset - float(x.mean())) < 1e-6
    assert np.max(y) > 1.8  # float WAV keeps overs; nothing clipped on the way in
    z = remove_dc(y, SR)
    assert np.allclose(z.mean(axis=1), 0, atol=1e-6)


def test_read_resamples_32k_to_the_working_rate_with_proportional_length(tmp_path):
    x = np.sin(np.linspace(0, 1000, 32000 * 2)).astype(np.float32)[None]
    p = audio.write(tmp_path / "in32.wav", x, 32000)
    y, info = audio.read(p)
    assert info.sample_rate == 32000
    assert abs(y.shape[1] - 2 * SR) <= 1


def test_resample_round_trip_keeps_length_and_timing():
    x = np.zeros((1, SR), np.float32)
    x[0, 20000] = 1.0
    y = resample(x, SR, 32000)
    assert y.shape[1] == 32000
    assert abs(int(np.argmax(np.abs(y[0]))) - 20000 * 32000 / SR) <= 1


@pytest.mark.parametrize("content, message", [
    (b"", "not a readable audio file"),
    (b"this is text, not audio" * 10, "not a readable audio file"),
])
def test_unreadable_files_raise_one_line_errors(tmp_path, content, message):
    p = tmp_path / "bad.wav"
    p.write_bytes(content)
    with pytest.raises(AudioError, match=message) as e:
        audio.read(p)
    assert "\n" not in str(e.value)


def test_missing_file_and_folder_are_clear(tmp_path):
    with pytest.raises(AudioError, match="no such file"):
        audio.read(tmp_path / "nope.wav")
    with pytest.raises(AudioError, match="folder"):
        audio.read(tmp_path)


def test_write_is_atomic_and_never_overwrites_an_input(tmp_path):
    x = np.zeros((1, 100), np.float32)
    p = audio.write(tmp_path / "a.wav", x, SR)
    with pytest.raises(AudioError, match="overwrite an input"):
        audio.write(p, x, SR, protect=(p,))
    assert [f.name for f in tmp_path.iterdir()] == ["a.wav"]  # no temp file left behind


def test_write_leaves_nothing_when_interrupted(tmp_path, monkeypatch):
    import pedalboard.io

    class Boom(Exception):
        pass

    real = pedalboard.io.AudioFile

    def exploding(*args, **kwargs):
        f = real(*args, **kwargs)

        class Wrapper:
            def __enter__(self):
                f.__enter__()
                return self

            def write(self, data):
                f.write(data[:, :10])
                raise Boom()

            def __exit__(self, *exc):
                return f.__exit__(*exc)

        return Wrapper()

    monkeypatch.setattr(audio, "AudioFile", exploding)
    with pytest.raises(Boom):
        audio.write(tmp_path / "out.wav", np.zeros((1, 1000), np.float32), SR)
    assert list(tmp_path.iterdir()) == []


def test_written_files_get_ordinary_permissions_not_mkstemps_owner_only(tmp_path):
    import os

    mask = os.umask(0o022)
    try:
        p = audio.write(tmp_path / "a.wav", np.zeros((1, 100), np.float32), SR)
        t = audio.write_text(tmp_path / "r.json", "{}")
    finally:
        os.umask(mask)
    assert (p.stat().st_mode & 0o777) == 0o644
    assert (t.stat().st_mode & 0o777) == 0o644
    assert t.read_text() == "{}"
