"""Corpus builds: real-music excerpts keep rate, channels and band with one gain; MIDI songs
split into family stems that add up exactly to the mix; bad input is one line and no folder."""

from __future__ import annotations

import json
import math
import shutil
import zipfile
from pathlib import Path

import mido
import numpy as np
import pytest
import scipy.signal
import soundfile as sf
from typer.testing import CliRunner

from adaptive_argm.cli import app
from adaptive_argm.evaluation import corpus as rc
from adaptive_argm.evaluation import multitrack as mt
from adaptive_argm.core.levels import loudness_lufs

RUNNER = CliRunner()
SMALL_SF2 = Path("/usr/share/sounds/sf2/TimGM6mb.sf2")
needs_fluidsynth = pytest.mark.skipif(shutil.which("fluidsynth") is None or not SMALL_SF2.is_file(),
                                      reason="needs the fluidsynth and timgm6mb-soundfont Debian packages")


def cli(*args):
    return RUNNER.invoke(app, [str(a) for a in args], catch_exceptions=True)


def one_line_failure(result, code: int = 1) -> str:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def no_leftovers(parent: Path) -> bool:
    return not any(p.name.startswith(".") for p in parent.iterdir())


# --- real-music excerpts -----------------------------------------------------------------------


def full_band_music(seconds: float, sr: int, quiet_until_s: float = 0.0, seed: int = 0) -> np.ndarray:
    """`(2, samples)` stereo test music with content to the top of the band: tones plus noise
    bursts on a beat; silence before `quiet_until_s`. Left and right differ in level."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * sr))
    t = np.arange(n) / sr
    x = sum(0.05 * np.sin(2 * np.pi * f * t) for f in (110.0, 440.0, 1250.0, 5000.0))
    bursts = rng.standard_normal(n) * (0.2 * np.exp(-(t % 0.25) / 0.03))
    x = x + bursts
    x[t < quiet_until_s] = 0.0
    return np.stack([x, 0.5 * x]).astype(np.float32)


def write_wav(path: Path, x: np.ndarray, sr: int) -> Path:
    sf.write(str(path), x.T, sr, subtype="FLOAT")
    return path


def test_excerpt_keeps_rate_channels_and_band_with_one_gain(tmp_path):
    sr = 48000
    x = full_band_music(30.0, sr, quiet_until_s=8.0)
    src = write_wav(tmp_path / "song.wav", x, sr)
    built = rc.build_real_corpus([src], tmp_path / "real", duration_s=20.0)
    (e,) = built.excerpts
    y, file_sr = sf.read(str(tmp_path / "real" / "song.wav"), dtype="float32", always_2d=True)
    y = y.T
    assert file_sr == sr and y.shape == (2, 20 * sr)
    # The offset rule skips the silent start; both channels carry the same gain.
    assert e.offset_s >= 8.0
    start = int(round(e.offset_s * sr))
    gain = 10 ** (e.gain_db / 20)
    np.testing.assert_allclose(y, x[:, start : start + 20 * sr] * gain, rtol=1e-5, atol=1e-7)
    assert abs(loudness_lufs(y, sr) - rc.TARGET_LUFS) < 0.01
    assert 20 * np.log10(np.abs(y).max()) <= rc.PEAK_LIMIT_DBFS
    assert e.full_band and e.bandwidth_hz >= 18000
    manifest = json.loads((tmp_path / "real" / "manifest.json").read_text())
    assert manifest["kind"] == "real" and manifest["excerpts"][0]["file"] == "song.wav"
    assert manifest["excerpts"][0]["sample_rate"] == sr


def test_loud_peaks_lower_the_gain_to_the_peak_limit():
    sr = 44100
    x = np.zeros((2, 25 * sr), np.float32)
    x[:, :: sr // 4] = 0.5  # sparse clicks: -23 LUFS would put them far above full scale
    y, _, gain = rc.cut_excerpt(x + 1e-4 * np.random.default_rng(0).standard_normal(x.shape).astype(np.float32), sr)
    peak_db = 20 * math.log10(float(np.abs(y).max()))
    assert rc.PEAK_LIMIT_DBFS - 0.01 <= peak_db <= rc.PEAK_LIMIT_DBFS
    assert loudness_lufs(y, sr) < rc.TARGET_LUFS


def test_band_limited_source_is_recorded_as_not_full_band(tmp_path):
    sr = 44100
    x = full_band_music(22.0, sr)
    sos = scipy.signal.butter(16, 12000, fs=sr, output="sos")
    src = write_wav(tmp_path / "dull.wav", scipy.signal.sosfiltfilt(sos, x, axis=1).astype(np.float32), sr)
    (e,) = rc.build_real_corpus([src], tmp_path / "real").excerpts
    assert not e.full_band and 11000 < e.bandwidth_hz < 14000


def test_zip_member_is_read_as_a_source(tmp_path):
    sr = 44100
    write_wav(tmp_path / "inner.wav", full_band_music(21.0, sr), sr)
    with zipfile.ZipFile(tmp_path / "music.pk3", "w") as z:
        z.write(tmp_path / "inner.wav", "sound/cdtracks/track.wav")
    (e,) = rc.build_real_corpus([tmp_path / "music.pk3" / "sound" / "cdtracks" / "track.wav"],
                                tmp_path / "real").excerpts
    assert e.track_id == "track" and (tmp_path / "real" / "track.wav").is_file()


@pytest.mark.parametrize("case, message", [("short", "shorter than the 20 s excerpt"),
                                            ("silent", "digital silence"),
                                            ("missing", "no such file"),
                                            ("not audio", "not a readable audio file")])
def test_bad_real_source_is_one_line_and_leaves_no_folder(tmp_path, case, message):
    sr = 44100
    good = write_wav(tmp_path / "good.wav", full_band_music(21.0, sr), sr)
    bad = tmp_path / "bad.wav"
    if case == "short":
        write_wav(bad, full_band_music(5.0, sr), sr)
    elif case == "silent":
        write_wav(bad, np.zeros((2, 25 * sr), np.float32), sr)
    elif case == "not audio":
        bad.write_text("not audio at all")
    out = tmp_path / "corpus" / "real"
    out.parent.mkdir()
    with pytest.raises(rc.CorpusError, match=message):
        rc.build_real_corpus([good, bad], out)
    assert not out.exists() and no_leftovers(out.parent)
    line = one_line_failure(cli("corpus", "real", good, bad, "--out", out))
    assert message in line and not out.exists() and no_leftovers(out.parent)


def test_existing_output_folder_is_never_overwritten(tmp_path):
    sr = 44100
    src = write_wav(tmp_path / "a.wav", full_band_music(21.0, sr), sr)
    out = tmp_path / "real"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(rc.CorpusError, match="already exists"):
        rc.build_real_corpus([src], out)
    one_line_failure(cli("corpus", "real", src, "--out", out), code=2)
    assert (out / "keep.txt").read_text() == "mine" and len(list(out.iterdir())) == 1


def test_cli_builds_real_corpus(tmp_path):
    sr = 44100
    src = write_wav(tmp_path / "a.wav", full_band_music(12.0, sr), sr)
    result = cli("corpus", "real", src, "--out", tmp_path / "real", "--duration", 10)
    assert result.exit_code == 0, result.output
    assert sf.info(str(tmp_path / "real" / "a.wav")).frames == 10 * sr


# --- MIDI multitracks --------------------------------------------------------------------------


def tiny_midi(path: Path, families=("drums", "bass", "vocals", "other")) -> Path:
    """One second of each wanted family at once: a kick and snare on channel 10, Electric Bass
    (finger) (GM 34), Choir Aahs (GM 53) and Acoustic Grand Piano (GM 1)."""
    parts = {"drums": (9, 0, [36, 38]), "bass": (1, 33, [40]), "vocals": (2, 52, [64]), "other": (0, 0, [72, 76])}
    mid = mido.MidiFile(type=1, ticks_per_beat=480)
    meta = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=500000, time=0)])
    mid.tracks.append(meta)
    for fam in families:
        ch, prog, notes = parts[fam]
        tr = mido.MidiTrack([mido.Message("program_change", channel=ch, program=prog, time=0)])
        tr += [mido.Message("note_on", channel=ch, note=n, velocity=100, time=0) for n in notes]
        tr += [mido.Message("note_off", channel=ch, note=n, velocity=0, time=960 if i == 0 else 0)
               for i, n in enumerate(notes)]
        mid.tracks.append(tr)
    mid.save(str(path))
    return path


def read_song(folder: Path) -> tuple[dict[str, np.ndarray], np.ndarray, dict]:
    stems = {f: sf.read(str(folder / f"{f}.wav"), dtype="float32", always_2d=True)[0].T for f in mt.FAMILIES}
    mix = sf.read(str(folder / "mixed.wav"), dtype="float32", always_2d=True)[0].T
    return stems, mix, json.loads((folder / "info.json").read_text())


def test_family_of_follows_general_midi():
    assert mt.family_of(9, 0) == mt.family_of(9, 33) == "drums"
    assert [mt.family_of(0, p) for p in (31, 32, 39, 40)] == ["other", "bass", "bass", "other"]
    assert [mt.family_of(3, p) for p in (52, 53, 54, 85, 91)] == ["vocals"] * 5
    assert mt.family_of(3, 55) == "other"  # Orchestra Hit, not a voice


def test_program_change_moves_later_notes_to_their_family():
    mid = mido.MidiFile(type=0, ticks_per_beat=480)
    mid.tracks.append(mido.MidiTrack([
        mido.Message("program_change", channel=0, program=0, time=0),
        mido.Message("note_on", channel=0, note=60, velocity=90, time=0),
        mido.Message("note_off", channel=0, note=60, velocity=0, time=480),
        mido.Message("program_change", channel=0, program=34, time=0),
        mido.Message("note_on", channel=0, note=40, velocity=90, time=0),
        mido.Message("note_off", channel=0, note=40, velocity=0, time=480)]))
    files, counts, truncated = mt.split_families(mid)
    assert counts["other"] == (1, (0,)) and counts["bass"] == (1, (34,)) and not truncated
    ends = {f: sum(m.time for m in files[f].tracks[0]) for f in mt.FAMILIES}
    assert len(set(ends.values())) == 1  # every family file ends on the same tick


@needs_fluidsynth
def test_midi_stems_sum_to_the_mix_each_family_in_its_stem(tmp_path):
    full = tiny_midi(tmp_path / "full.mid")
    sparse = tiny_midi(tmp_path / "sparse.mid", families=("drums", "other"))
    built = mt.build_midi_corpus([full, sparse], tmp_path / "midi", SMALL_SF2)
    assert [s.song for s in built.songs] == ["full", "sparse"]
    for song in ("full", "sparse"):
        folder = tmp_path / "midi" / song
        assert sorted(p.name for p in folder.iterdir()) == sorted(
            ["mixed.wav", "info.json"] + [f"{f}.wav" for f in mt.FAMILIES])
        stems, mix, info = read_song(folder)
        assert mix.shape[0] == 2 and sf.info(str(folder / "mixed.wav")).samplerate == 44100
        assert all(s.shape == mix.shape for s in stems.values())
        np.testing.assert_allclose(mix, np.sum([s.astype(np.float64) for s in stems.values()], axis=0),
                                   rtol=0, atol=1e-7)
        assert max(float(np.abs(a).max()) for a in [mix, *stems.values()]) <= 10 ** (rc.PEAK_LIMIT_DBFS / 20)
        for fam, s in stems.items():
            present = song == "full" or fam in ("drums", "other")
            assert info["stems"][fam]["present"] is present
            if present:
                assert 10 * np.log10(np.mean(np.square(s, dtype=np.float64))) > -60.0, fam
            else:
                assert not np.any(s), fam  # an absent family is digital silence
    manifest = json.loads((tmp_path / "midi" / "manifest.json").read_text())
    assert manifest["mix"] == "sum" and manifest["songs"][1]["present"] == ["drums", "other"]


@needs_fluidsynth
def test_every_stem_gets_the_same_gain(tmp_path):
    path = tiny_midi(tmp_path / "song.mid")
    stems, mix, song = mt.render_song(path, SMALL_SF2)
    files, _, _ = mt.split_families(mt.read_midi(path))
    gain = 10 ** (song.gain_db / 20)
    for fam in mt.FAMILIES:
        raw = mt.render(files[fam], SMALL_SF2)
        n = min(raw.shape[1], stems[fam].shape[1])
        np.testing.assert_allclose(stems[fam][:, :n], raw[:, :n] * gain, rtol=1e-5, atol=1e-7)


@needs_fluidsynth
def test_duration_cap_cuts_every_file_alike(tmp_path):
    stems, mix, song = mt.render_song(tiny_midi(tmp_path / "song.mid"), SMALL_SF2, max_duration_s=0.5)
    assert mix.shape[1] == 22050 and all(s.shape == mix.shape for s in stems.values())


@needs_fluidsynth
def test_bad_midi_input_is_one_line_and_leaves_no_folder(tmp_path):
    good = tiny_midi(tmp_path / "good.mid")
    not_midi = tmp_path / "noise.mid"
    not_midi.write_bytes(b"RIFF....WAVEfmt definitely not a MIDI file")
    out = tmp_path / "corpus" / "midi"
    out.parent.mkdir()
    with pytest.raises(rc.CorpusError, match="not a MIDI file"):
        mt.build_midi_corpus([good, not_midi], out, SMALL_SF2)
    assert not out.exists() and no_leftovers(out.parent)
    line = one_line_failure(cli("corpus", "midi", good, not_midi, "--out", out, "--soundfont", SMALL_SF2))
    assert "not a MIDI file" in line and not out.exists() and no_leftovers(out.parent)


def test_missing_soundfont_is_one_line(tmp_path):
    good = tiny_midi(tmp_path / "good.mid")
    missing = tmp_path / "nowhere.sf2"
    with pytest.raises(rc.CorpusError, match="SoundFont not found"):
        mt.build_midi_corpus([good], tmp_path / "midi", missing)
    line = one_line_failure(cli("corpus", "midi", good, "--out", tmp_path / "midi", "--soundfont", missing), code=2)
    assert "SoundFont not found" in line and not (tmp_path / "midi").exists()


def test_missing_fluidsynth_program_is_one_line(tmp_path, monkeypatch):
    good = tiny_midi(tmp_path / "good.mid")
    monkeypatch.setenv("PATH", str(tmp_path))  # a PATH without fluidsynth
    with pytest.raises(rc.CorpusError, match="fluidsynth program is not installed"):
        mt.build_midi_corpus([good], tmp_path / "midi", SMALL_SF2 if SMALL_SF2.is_file() else good)
    assert not (tmp_path / "midi").exists()


def test_a_file_that_is_not_a_soundfont_is_refused_not_replaced_by_fluidsynths_default(tmp_path, monkeypatch):
    """FluidSynth renders with its default SoundFont when it cannot load the one given, and the
    corpus would record the file given."""
    good = tiny_midi(tmp_path / "good.mid")
    fake = tmp_path / "text.sf2"
    fake.write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt not a soundfont")
    (tmp_path / "bin").mkdir()
    fluidsynth = tmp_path / "bin" / mt.FLUIDSYNTH  # the check comes before any rendering
    fluidsynth.write_text("#!/bin/sh\nexit 1\n")
    fluidsynth.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    with pytest.raises(rc.CorpusError, match="not a SoundFont"):
        mt.build_midi_corpus([good], tmp_path / "midi", fake)
    line = one_line_failure(cli("corpus", "midi", good, "--out", tmp_path / "midi", "--soundfont", fake))
    assert "not a SoundFont" in line and not (tmp_path / "midi").exists()


def test_sources_sharing_a_name_get_distinct_excerpt_names_and_one_file_given_twice_is_refused(tmp_path):
    from adaptive_argm.evaluation.corpus import track_ids

    x, y = tmp_path / "x" / "a" / "song.wav", tmp_path / "y" / "a" / "song.wav"
    assert track_ids([x, y]) == ["x-a-song", "y-a-song"]
    assert track_ids([x, x.with_suffix(".flac")])[0].endswith("a-song-wav")
    assert track_ids([tmp_path / "a" / "one.ogg", tmp_path / "b" / "one.ogg", tmp_path / "two.ogg"]) == \
        ["a-one", "b-one", "two"]
    with pytest.raises(rc.CorpusError, match="given twice"):
        track_ids([x, tmp_path / "x" / "a" / ".." / "a" / "song.wav"])
    x.parent.mkdir(parents=True)
    x.write_bytes(b"")
    (tmp_path / "my_favourite.wav").symlink_to(x)
    assert track_ids([tmp_path / "my_favourite.wav"]) == ["my_favourite"]  # named as given, not after its target
