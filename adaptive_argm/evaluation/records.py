"""The eval suite's records: the prompt set, the settings of a run, each clip's outcome, the
results of the whole run, the layout of the output folder and the fingerprint that decides
whether a finished clip can be reused.

Layout of the output folder:
    clips/<id>/input.wav            the clip as measured (44.1 kHz copy, for the listening page)
    clips/<id>/{direct,stemwise,routed}.wav, compare.json, figures   (from `pipeline.compare`)
    clips/<id>/clip.json            status, error and settings fingerprint (the resume marker)
    clips/<id>/generated.wav        MusicGen's clip, for entries without audio (`--generate`)
    results.csv, results.json, summary.md, report.html

Each clip's files are one result set with clip.json as its manifest, the generated clip one with
generated.json, and the four result files one with results.json (`core.results`): a folder
shows one attempt whole, never part of one or a mix of two.

A clip is reused when its clip.json says `ok` with the same fingerprint (settings, preset
content, separator, and the source files' sizes and times) and its compare.json is there.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal, get_args

from ..config import COMPARE_MODES, JOBS, STEM_NAMES, Setting, SettingError, UserError, check_choice
from ..core import audio, pipeline, presets, results, separate
from ..core.report import digest
from ..core.separate import SeparatorOptions
from . import generate as musicgen

TAGS = STEM_NAMES
ROW_MODES = ("input",) + COMPARE_MODES
"""The rows each clip gets in results.csv: the input's panel, then each result's."""
FORCED_MODES = ("direct", "stemwise")
MissingPolicy = Literal["skip", "fail"]
"""What to do with a clip whose audio cannot be had: skip it (recorded), or fail at once."""
MISSING_POLICIES: tuple[MissingPolicy, ...] = get_args(MissingPolicy)
MISSING = Setting("missing", "missing")
CLIP_KEYS = {"id", "prompt", "tags", "audio", "stems", "stem_scale", "mix"}
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
FINGERPRINT_VERSION = 1

CLIPS_DIR = "clips"
CLIP_RECORD = "clip.json"
INPUT_COPY = "input.wav"
GENERATED = "generated.wav"
GENERATED_RECORD = "generated.json"
COMPARE_JSON = "compare.json"
FIGURES = ("spectrograms.png", "stems.png")
"""The figures `pipeline.compare` writes, in the order the report shows them."""
OUTPUT_FILES = tuple(f"{m}.wav" for m in COMPARE_MODES) + (COMPARE_JSON, CLIP_RECORD, INPUT_COPY)
RESULT_FILES = ("results.csv", "results.json", "summary.md", "report.html")
CLIP_SET = results.Kind(CLIP_RECORD, legacy=tuple(n for n in OUTPUT_FILES if n != CLIP_RECORD) + FIGURES)
GENERATED_SET = results.Kind(GENERATED_RECORD, legacy=(GENERATED,))
RESULTS_SET = results.Kind("results.json", outputs=RESULT_FILES[:1] + RESULT_FILES[2:],
                            legacy=RESULT_FILES[:1] + RESULT_FILES[2:])


class EvalError(UserError, ValueError):
    """A prompt set or an evaluation that cannot go ahead; the message is one line."""


# --- the prompt set -------------------------------------------------------------------------


@dataclass(frozen=True)
class PromptClip:
    """One prompt-set entry. Exactly one source, or none (then it needs `--generate`)."""

    id: str
    prompt: str
    tags: tuple[str, ...]
    audio: Path | None = None
    stems: Path | None = None
    """A ground-truth multitrack: the clip is its mix file, or the sum of its stems x `stem_scale`."""
    stem_scale: float = 1.0
    mix: Path | None = None
    """The mix file in `stems` (default: the first of mixed/mix/mixture/input.<audio suffix>)."""

    @property
    def source(self) -> str:
        return "audio" if self.audio else "stems" if self.stems else "generate"

    def to_dict(self) -> dict:
        return {"id": self.id, "prompt": self.prompt, "tags": list(self.tags), "source": self.source,
                "audio": _str(self.audio), "stems": _str(self.stems), "stem_scale": self.stem_scale,
                "mix": _str(self.mix)}


@dataclass(frozen=True)
class PromptSet:
    path: Path
    name: str
    clips: tuple[PromptClip, ...]


def _str(p: Path | None) -> str | None:
    return None if p is None else str(p)


def load_prompts(path: str | Path) -> PromptSet:
    """Parse a prompt-set TOML (`[[clip]]` tables); paths are relative to the file."""
    path = Path(path)
    if path.is_dir():
        raise EvalError(f"{path}: is a folder; give a prompt-set TOML file ([[clip]] tables)")
    if not path.is_file():
        raise EvalError(f"{path}: no such prompt set")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise EvalError(f"{path}: not valid TOML ({exc})") from None
    except UnicodeDecodeError:
        raise EvalError(f"{path}: not a text file (a prompt set is TOML)") from None
    tables = data.get("clip")
    if not isinstance(tables, list) or not tables:
        raise EvalError(f"{path}: no [[clip]] entries")
    base = path.parent
    clips, seen = [], set()
    for n, t in enumerate(tables, 1):
        where = f"{path} clip #{n}"
        unknown = set(t) - CLIP_KEYS
        if unknown:
            raise EvalError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}; "
                            f"known: {', '.join(sorted(CLIP_KEYS))}")
        cid = str(t.get("id", ""))
        if not ID_PATTERN.match(cid):
            raise EvalError(f"{where}: 'id' must be letters, digits, '.', '_' or '-' (it names a folder), "
                            f"not {cid!r}")
        if cid in seen:
            raise EvalError(f"{where}: id {cid!r} appears twice")
        seen.add(cid)
        if not isinstance(t.get("prompt"), str) or not t["prompt"].strip():
            raise EvalError(f"{where} ({cid}): needs a 'prompt'")
        tags = t.get("tags", [])
        if not isinstance(tags, list) or not set(tags) <= set(TAGS):
            raise EvalError(f"{where} ({cid}): 'tags' must be a list of {', '.join(TAGS)}")
        if "audio" in t and "stems" in t:
            raise EvalError(f"{where} ({cid}): give 'audio' or 'stems', not both")
        if ("stem_scale" in t or "mix" in t) and "stems" not in t:
            raise EvalError(f"{where} ({cid}): 'stem_scale' and 'mix' belong to a 'stems' entry")
        scale = t.get("stem_scale", 1.0)
        if not isinstance(scale, (int, float)) or not scale > 0:
            raise EvalError(f"{where} ({cid}): 'stem_scale' must be a positive number")
        stems = base / t["stems"] if "stems" in t else None
        clips.append(PromptClip(id=cid, prompt=t["prompt"].strip(), tags=tuple(tags),
                                audio=base / t["audio"] if "audio" in t else None, stems=stems,
                                stem_scale=float(scale), mix=stems / t["mix"] if "mix" in t else None))
    return PromptSet(path=path, name=str(data.get("name", path.stem)), clips=tuple(clips))


def find_mix(clip: PromptClip) -> Path | None:
    """The mix file of a stems entry: the declared one, else the first conventional name."""
    if clip.mix is not None:
        return clip.mix
    for name in separate.MIX_NAMES:
        for suffix in audio.AUDIO_SUFFIXES:
            p = clip.stems / f"{name}{suffix}"
            if p.is_file():
                return p
    return None




# --- settings and fingerprints -----------------------------------------------------------------


@dataclass(frozen=True)
class EvalSettings:
    """Everything an eval run decides besides the prompt set."""

    pipeline: pipeline.Settings = field(default_factory=pipeline.Settings)
    separation: SeparatorOptions = field(default_factory=SeparatorOptions)
    """Its `separator`: auto: a stems entry's own stems (as `run --stems` uses a stems folder),
    else Demucs when its weights are here, else none (the clip restored directly, with a
    notice); stems: the same, said explicitly; demucs: Demucs for every clip, stems entries
    included (no weights: stop at once). Its `stems` folder is not used: each entry names its own."""
    generate: bool = False
    generation: musicgen.GenerationSettings = field(default_factory=musicgen.GenerationSettings)
    missing: MissingPolicy = "skip"
    """What to do with a clip whose audio cannot be had (missing file, no source and no
    generation, MusicGen unavailable): skip it (recorded), or fail at once before any work."""
    jobs: int = 1
    figures: bool = True
    """Draw each clip's figures (most of a short clip's time goes into them)."""

    def __post_init__(self):
        check_choice(self.missing, MISSING_POLICIES, MISSING)
        if self.jobs < 1:
            raise SettingError(JOBS, f" must be at least 1, not {self.jobs}")

    def to_dict(self) -> dict:
        """results.json's `settings` (its separator keys flat, as schema adaptive-argm/eval/1 has them)."""
        s = self.separation
        return {"pipeline": self.pipeline.to_dict(), "separator": s.separator, "model": s.model,
                "model_repo": None if s.model_repo is None else str(s.model_repo), "device": s.device,
                "force_stems": s.force, "generate": self.generate, "generation": self.generation.to_dict(),
                "missing": self.missing, "jobs": self.jobs, "figures": self.figures}


@dataclass(frozen=True)
class SeparatorPlan:
    kind: str
    """`stems`, `demucs` or `none`."""
    notice: str | None = None


def _file_stamp(p: Path) -> list:
    st = p.stat()
    return [str(p), st.st_size, st.st_mtime_ns]


def source_files(clip: PromptClip, clip_dir: Path) -> list[Path]:
    if clip.source == "audio":
        return [clip.audio]
    if clip.source == "stems":
        mix = find_mix(clip)
        return ([mix] if mix else []) + list(separate.stem_files(clip.stems, exclude=(mix,) if mix else ()).values())
    return [clip_dir / GENERATED]


def fingerprint(clip: PromptClip, clip_dir: Path, settings: EvalSettings, sep: SeparatorPlan,
                preset: presets.Preset) -> str:
    """A short hash of everything that decides a clip's results."""
    s = settings.separation
    payload = {
        "version": FINGERPRINT_VERSION,
        "source": clip.source,
        "stem_scale": clip.stem_scale if clip.source == "stems" else None,
        "files": [_file_stamp(p) for p in source_files(clip, clip_dir)],
        "generation": ({**settings.generation.to_dict(), "prompt": clip.prompt, "device": None}
                       if clip.source == "generate" else None),
        "separator": [sep.kind, s.model if sep.kind == "demucs" else None,
                      None if sep.kind != "demucs" or s.model_repo is None else str(s.model_repo), s.force],
        "pipeline": settings.pipeline.to_dict(),
        "preset": preset.to_dict(),
    }
    return digest(payload)



# --- outcomes and results --------------------------------------------------------------------


@dataclass(frozen=True)
class ClipOutcome:
    id: str
    status: str
    """`ok`, `failed` or `skipped`."""
    reused: bool = False
    error: str | None = None
    folder: str | None = None
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        d = asdict(self)
        d["notes"] = list(self.notes)
        return d


@dataclass(frozen=True)
class Aggregate:
    """What summary.md and the report's head say about the whole set (`tables.aggregate`)."""

    means: dict[str, dict[str, float | None]]
    """mode -> metric -> mean over the clips that have that mode (finite values only)."""
    counts: dict[str, int]
    """mode -> number of clips with that mode."""
    wins: dict[str, dict[str, tuple[int, int, int]]]
    """forced mode -> metric -> (routed better, tie, routed worse) over clips that have both."""
    by_tag: dict[str, dict[str, int]]
    """tag -> clips, routed stem-wise, routed direct, and the decisions on that tag's stem."""
    direct_clips: tuple[tuple[str, str], ...]
    """(clip id, router's reason) for each clip the router sent to direct."""
    status: dict[str, int]
    unchanged: dict[str, int] = field(default_factory=dict)
    """mode -> clips whose result changed nothing beyond DC and format."""

    def to_dict(self) -> dict:
        return {"means": self.means, "counts": self.counts, "unchanged": self.unchanged,
                "wins": {m: {k: {"better": w, "tie": t, "worse": l} for k, (w, t, l) in d.items()}
                         for m, d in self.wins.items()},
                "by_tag": self.by_tag, "direct_clips": [{"clip": c, "reason": r} for c, r in self.direct_clips],
                "status": self.status}


@dataclass(frozen=True)
class EvalResult:
    prompt_set: PromptSet
    out_dir: Path
    settings: EvalSettings
    outcomes: tuple[ClipOutcome, ...]
    """In prompt-set order."""
    compares: dict[str, dict]
    """compare.json of each clip that is `ok`, by id."""
    rows: tuple[dict, ...]
    aggregate: Aggregate
    notices: tuple[str, ...] = ()

    def clip(self, cid: str) -> PromptClip:
        return next(c for c in self.prompt_set.clips if c.id == cid)

    @property
    def failed(self) -> list[ClipOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]
