"""True-multitrack corpus from General MIDI files (the Slakh2100 recipe): split each song by
instrument family, render every family with FluidSynth and a SoundFont, and write stems that
add up exactly to the mix.

Layout: `<out>/<song>/{mixed,drums,bass,other,vocals}.wav` + `<out>/<song>/info.json`, and
`<out>/manifest.json`. 44.1 kHz stereo, 32-bit float WAV. Every stem file exists: a family the
song does not use is written as digital silence (and marked absent in info.json), so a reader
never special-cases missing files. `mixed.wav` is the SUM of the four stems (musicgen-dev's is
their mean); all five files carry the same gain.
"""

from __future__ import annotations

import math
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..core import audio
from ..core import levels
from ..core.levels import loudness_lufs
from .corpus import (MANIFEST, PEAK_LIMIT_DBFS, SCHEMA_VERSION, TARGET_LUFS, CorpusError, apply_gain, bandwidth_hz,
                     building, normalising_gain_db, write_json)

FAMILIES = ("drums", "bass", "other", "vocals")
"""Demucs' stem names; `other` takes every program that is not drums, bass or a voice."""
DRUM_CHANNEL = 9
"""MIDI channel 10 (0-based 9): General MIDI's percussion channel, whatever its program."""
BASS_PROGRAMS = frozenset(range(32, 40))
"""GM programs 33-40 (1-based): Acoustic Bass ... Synth Bass 2."""
VOICE_PROGRAMS = frozenset({52, 53, 54, 85, 91})
"""GM 53 Choir Aahs, 54 Voice Oohs, 55 Synth Voice, 86 Lead 6 (voice), 92 Pad 4 (choir)
(1-based): the voice programs and the choir/voice pad."""
SAMPLE_RATE = 44100
RENDER_GAIN = 0.5
"""FluidSynth's master gain for every render; float output, so nothing clips before our gain."""
DEFAULT_SOUNDFONT = "/usr/share/sounds/sf2/FluidR3_GM.sf2"
"""Debian's fluid-soundfont-gm."""
FLUIDSYNTH = "fluidsynth"
RENDER_TIMEOUT_S = 600
TAIL_S = 2.0
"""With a duration cap, MIDI events are kept this long past the cap before all notes are cut,
so the kept part renders exactly as in the full song."""


@dataclass(frozen=True)
class StemInfo:
    present: bool
    notes: int
    programs: tuple[int, ...]
    """0-based GM programs whose notes landed here (drums: the kits on channel 10)."""
    peak_dbfs: float
    rms_dbfs: float


@dataclass(frozen=True)
class Song:
    """One rendered song, as recorded in its info.json."""

    song: str
    source: str
    soundfont: str
    sample_rate: int
    channels: int
    duration_s: float
    midi_length_s: float
    truncated: bool
    gain_db: float
    """Applied to every FluidSynth render (made at RENDER_GAIN)."""
    loudness_lufs: float
    peak_dbfs: float
    bandwidth_hz: float
    stems: dict[str, StemInfo]
    mix: str = "sum"


@dataclass(frozen=True)
class MidiCorpus:
    path: str
    songs: tuple[Song, ...]


def family_of(channel: int, program: int) -> str:
    """Stem of a note on `channel` (0-based) played with GM `program` (0-based)."""
    if channel == DRUM_CHANNEL:
        return "drums"
    if program in BASS_PROGRAMS:
        return "bass"
    return "vocals" if program in VOICE_PROGRAMS else "other"


def read_midi(path: str | Path):
    """Parse a Standard MIDI File with mido; CorpusError for anything that is not one."""
    import mido

    path = Path(path)
    if not path.is_file():
        raise CorpusError(f"{path}: no such file" if not path.exists() else f"{path}: is a folder, not a MIDI file")
    try:
        return mido.MidiFile(str(path))
    except Exception as exc:  # mido raises OSError, EOFError, KeyError, ValueError ...
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CorpusError(f"{path}: not a MIDI file ({reason})") from None


def split_families(mid, max_duration_s: float | None = None):
    """`({family: type-0 MidiFile}, {family: (notes, programs)}, truncated)`.

    Only note-ons with a velocity go to one family (by the channel's program at that moment);
    every other event (tempo, program and control changes, pitch bend, note-offs, sysex) goes to
    all four files, so each family plays with exactly the controller state of the full song.
    Every file ends on the same tick."""
    import mido

    program = [0] * 16
    events: dict[str, list] = {f: [] for f in FAMILIES}
    notes = {f: 0 for f in FAMILIES}
    programs: dict[str, set[int]] = {f: set() for f in FAMILIES}
    tempo, seconds, tick, truncated = 500000, 0.0, 0, False
    limit = None if max_duration_s is None else max_duration_s + TAIL_S
    for msg in mido.merge_tracks(mid.tracks):
        seconds += mido.tick2second(msg.time, mid.ticks_per_beat, tempo)
        tick += msg.time
        if limit is not None and seconds > limit:
            truncated = True
            break
        if msg.type == "end_of_track":
            continue
        if msg.type == "set_tempo":
            tempo = msg.tempo
        if msg.type == "program_change":
            program[msg.channel] = msg.program
        if msg.type == "note_on" and msg.velocity > 0:
            fam = family_of(msg.channel, program[msg.channel])
            events[fam].append((tick, msg))
            notes[fam] += 1
            programs[fam].add(program[msg.channel])
        else:
            for fam in FAMILIES:
                events[fam].append((tick, msg))
    end = tick
    files = {}
    for fam in FAMILIES:
        track, last = mido.MidiTrack(), 0
        for t, msg in events[fam]:
            track.append(msg.copy(time=t - last))
            last = t
        if truncated:  # all sound off on every channel: nothing rings on past the kept part
            track.extend(mido.Message("control_change", channel=c, control=120, value=0, time=0) for c in range(16))
        track.append(mido.MetaMessage("end_of_track", time=end - last))
        files[fam] = mido.MidiFile(type=0, ticks_per_beat=mid.ticks_per_beat, tracks=[track])
    return files, {f: (notes[f], tuple(sorted(programs[f]))) for f in FAMILIES}, truncated


def check_renderer(soundfont: str | Path) -> Path:
    """The SoundFont path; CorpusError when it or the fluidsynth program is missing, or it is not a
    SoundFont."""
    soundfont = Path(soundfont)
    if not soundfont.is_file():
        raise CorpusError(f"{soundfont}: SoundFont not found (Debian: fluid-soundfont-gm or timgm6mb-soundfont)")
    if shutil.which(FLUIDSYNTH) is None:
        raise CorpusError("the fluidsynth program is not installed (Debian/Ubuntu: apt-get install fluidsynth)")
    with open(soundfont, "rb") as f:
        head = f.read(12)
    # FluidSynth falls back on its default SoundFont, silently, when it cannot load the one given.
    if head[:4] != b"RIFF" or head[8:12] not in (b"sfbk", b"DLS "):
        raise CorpusError(f"{soundfont}: not a SoundFont (an SF2/SF3 file begins with RIFF....sfbk, a DLS file with "
                          "RIFF....DLS)")
    return soundfont


def render(mid, soundfont: str | Path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Render a MidiFile with the fluidsynth CLI (file renderer: deterministic, faster than real
    time; float output, default reverb and chorus) to `(2, samples)` float32."""
    soundfont = check_renderer(soundfont)
    with tempfile.TemporaryDirectory(prefix="adaptive-argm-render-") as tmp:
        mid_path, wav_path = Path(tmp) / "in.mid", Path(tmp) / "out.wav"
        mid.save(str(mid_path))
        cmd = [FLUIDSYNTH, "-q", "-n", "-i", "-F", str(wav_path), "-T", "wav", "-O", "float",
               "-r", str(sample_rate), "-g", str(RENDER_GAIN), str(soundfont), str(mid_path)]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=RENDER_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise CorpusError(f"fluidsynth took more than {RENDER_TIMEOUT_S} s") from None
        if done.returncode != 0 or not wav_path.is_file():
            reason = (done.stderr or done.stdout).strip().splitlines()
            raise CorpusError(f"fluidsynth failed ({reason[-1] if reason else f'exit {done.returncode}'})")
        x, info = audio.read(wav_path, sr=None)
    if info.sample_rate != sample_rate:
        raise CorpusError(f"fluidsynth wrote {info.sample_rate} Hz instead of {sample_rate} Hz")
    return audio.to_channels(x, 2)


def render_song(path: str | Path, soundfont: str | Path = DEFAULT_SOUNDFONT, max_duration_s: float | None = None,
                target_lufs: float = TARGET_LUFS,
                peak_limit_dbfs: float = PEAK_LIMIT_DBFS) -> tuple[dict[str, np.ndarray], np.ndarray, Song]:
    """`(stems, mix, info)` of one MIDI file: stems `{family: (2, samples)}` float32 with one
    common gain (mix to `target_lufs`, lowered so that the mix and every stem peak at or under
    `peak_limit_dbfs`), mix their sum. Stems that end early are extended with digital silence to
    the longest render; with `max_duration_s` all are cut to it."""
    mid = read_midi(path)
    soundfont = check_renderer(soundfont)
    files, counts, truncated = split_families(mid, max_duration_s)
    if sum(n for n, _ in counts.values()) == 0:
        raise CorpusError(f"{path}: the MIDI file has no notes" + (" in the kept part" if truncated else ""))
    # A family without notes is not rendered: its stem is digital silence (a render would hold
    # only FluidSynth's reverb anti-denormal offset, about -157 dBFS).
    raw = {fam: render(files[fam], soundfont) for fam in FAMILIES if counts[fam][0]}
    n = max(x.shape[1] for x in raw.values())
    raw = {fam: raw.get(fam, np.zeros((2, n), np.float32)) for fam in FAMILIES}
    if max_duration_s is not None:
        n = min(n, int(round(max_duration_s * SAMPLE_RATE)))
    raw = {f: np.pad(x, ((0, 0), (0, max(0, n - x.shape[1]))))[:, :n] for f, x in raw.items()}
    mix64 = np.sum([x.astype(np.float64) for x in raw.values()], axis=0)
    try:
        gain = normalising_gain_db(mix64.astype(np.float32), SAMPLE_RATE, target_lufs, peak_limit_dbfs,
                                   peers=list(raw.values()))
    except CorpusError:
        raise CorpusError(f"{path}: the rendered song is silent (does the SoundFont have its programs?)") from None
    stems = {f: apply_gain(x, gain) for f, x in raw.items()}
    mix = np.sum([s.astype(np.float64) for s in stems.values()], axis=0).astype(np.float32)
    info = Song(
        song=Path(path).stem, source=str(path), soundfont=str(soundfont), sample_rate=SAMPLE_RATE, channels=2,
        duration_s=round(n / SAMPLE_RATE, 6), midi_length_s=round(float(mid.length), 3), truncated=truncated,
        gain_db=round(gain, 4), loudness_lufs=round(loudness_lufs(mix, SAMPLE_RATE), 4),
        peak_dbfs=round(levels.peak_dbfs(mix), 4), bandwidth_hz=round(bandwidth_hz(mix, SAMPLE_RATE), 1),
        stems={f: StemInfo(present=counts[f][0] > 0, notes=counts[f][0], programs=counts[f][1],
                           peak_dbfs=round(levels.peak_dbfs(stems[f]), 4), rms_dbfs=round(_rms_dbfs(stems[f]), 4))
               for f in FAMILIES})
    return stems, mix, info


def _rms_dbfs(x: np.ndarray) -> float:
    ms = float(np.mean(np.square(x, dtype=np.float64))) if x.size else 0.0
    return 10.0 * math.log10(ms) if ms > 0 else -math.inf


def song_dict(song: Song) -> dict:
    d = asdict(song)
    for s in d["stems"].values():
        s["programs"] = list(s["programs"])
        for k in ("peak_dbfs", "rms_dbfs"):
            s[k] = None if not math.isfinite(s[k]) else s[k]  # JSON has no -inf: a silent stem
    return d


def build_midi_corpus(files: Sequence[str | Path], out: str | Path, soundfont: str | Path = DEFAULT_SOUNDFONT,
                      max_duration_s: float | None = None, target_lufs: float = TARGET_LUFS,
                      peak_limit_dbfs: float = PEAK_LIMIT_DBFS,
                      progress: Callable[[str], None] | None = None) -> MidiCorpus:
    """Render every MIDI file into the new folder `out` (see the module docstring for the
    layout). All or nothing: any bad file fails the run and leaves no folder."""
    if not files:
        raise CorpusError("no MIDI files given")
    if max_duration_s is not None and not (max_duration_s > 0 and math.isfinite(max_duration_s)):
        raise CorpusError(f"duration cap must be a positive number of seconds, not {max_duration_s}")
    if peak_limit_dbfs > 0.0:
        raise CorpusError(f"peak limit {peak_limit_dbfs} dBFS is above full scale")
    names = [Path(f).stem for f in files]
    if len(set(names)) != len(names):
        raise CorpusError(f"two MIDI files share the song name {next(n for n in names if names.count(n) > 1)}")
    soundfont = check_renderer(soundfont)
    for f in files:  # fail on a bad file before minutes of rendering
        read_midi(f)
    songs = []
    with building(out) as tmp:
        for f in files:
            if progress:
                progress(Path(f).stem)
            stems, mix, song = render_song(f, soundfont, max_duration_s, target_lufs, peak_limit_dbfs)
            folder = tmp / song.song
            audio.write(folder / "mixed.wav", mix, SAMPLE_RATE)
            for fam in FAMILIES:
                audio.write(folder / f"{fam}.wav", stems[fam], SAMPLE_RATE)
            write_json(folder / "info.json", song_dict(song))
            songs.append(song)
        write_json(tmp / MANIFEST, {
            "kind": "midi", "schema_version": SCHEMA_VERSION, "soundfont": str(soundfont),
            "sample_rate": SAMPLE_RATE, "max_duration_s": max_duration_s, "target_lufs": target_lufs,
            "peak_limit_dbfs": peak_limit_dbfs, "mix": "sum", "families": list(FAMILIES),
            "family_rule": {"drums": f"channel {DRUM_CHANNEL + 1}", "bass": "GM programs 33-40",
                            "vocals": "GM programs " + ", ".join(str(p + 1) for p in sorted(VOICE_PROGRAMS)),
                            "other": "every other program"},
            "renderer": f"fluidsynth -F (float, gain {RENDER_GAIN}, default reverb and chorus)",
            "songs": [{"song": s.song, "source": s.source, "duration_s": s.duration_s,
                       "present": [f for f in FAMILIES if s.stems[f].present]} for s in songs]})
    return MidiCorpus(str(out), tuple(songs))
