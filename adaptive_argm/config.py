"""Typed choices and named defaults every layer shares, checked in the library: run modes, skip
policies, clip modes, output rates and separators (with their labels), the default Demucs model,
stem names and preset; and the errors that name a setting, which each layer words its own way.

A library error says what is wrong in library terms ("stems folder x: not a folder"); the parts
that name a setting are `Setting`s, so the CLI can say the same with its flag names
("--stems x: not a folder") through `UserError.worded`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal, Mapping, get_args

VERSION = "0.1.0"

Mode = Literal["routed", "stemwise", "direct"]
"""What `run` is asked to do: route, always separate, never separate."""
SkipPolicy = Literal["passthrough", "drop"]
"""What a remix does with a stem the router skips: add it back unprocessed, or leave it out."""
ClipMode = Literal["limit", "normalize", "none"]
KindPolicy = Literal["clip", "direct", "stemwise", "evidence"]
"""Where the router sends one kind of processing step: with the clip's own decision, always on the
mix, on the stems whenever the clip is restored stem-wise, or where the step itself finds more
to act on (the stems together against the mix)."""
"""How a result that would pass full scale is kept inside it (`dsp.clip_safety`)."""
OutputRate = Literal["work", "original"]
"""The rate results are written at: the working rate (44.1 kHz) or the input file's own."""
SeparatorChoice = Literal["auto", "demucs", "stems"]
"""Which separator to use: stems when given, else Demucs when its weights are here; Demucs; stems."""

MODES: tuple[Mode, ...] = get_args(Mode)
SKIP_POLICIES: tuple[SkipPolicy, ...] = get_args(SkipPolicy)
CLIP_MODES: tuple[ClipMode, ...] = get_args(ClipMode)
KIND_POLICIES: tuple[KindPolicy, ...] = get_args(KindPolicy)
OUTPUT_RATES: tuple[OutputRate, ...] = get_args(OutputRate)
SEPARATORS: tuple[SeparatorChoice, ...] = get_args(SeparatorChoice)
COMPARE_MODES: tuple[Mode, ...] = ("direct", "stemwise", "routed")
"""The results `compare` makes from one separation, in the order they are shown."""
MODE_LABELS = {"input": "input", "direct": "direct", "stemwise": "stem-wise", "routed": "routed"}
"""How tables, figures and the listening report name the input and each result."""

STEM_NAMES = ("drums", "bass", "other", "vocals")
"""Demucs' four sources; a stem file with another name is folded into `other`."""
DEFAULT_MODEL = "htdemucs"
"""The Demucs model used unless another is named."""
DEFAULT_PRESET = "adaptive"
"""The default since it met every goal of the paired benchmark (eval/results/paired.md); `paper` is
the method's chain, kept unchanged for comparability."""


# --- errors that name settings ----------------------------------------------------------------


@dataclass(frozen=True)
class Setting:
    """A setting as an error message names it: `name` is its field (what the CLI maps to a flag),
    `words` how the library says it."""

    name: str
    words: str


MODE = Setting("mode", "mode")
PRESET = Setting("preset", "preset")
CLIP_MODE = Setting("clip_mode", "clip mode")
SKIP_POLICY = Setting("skip_policy", "skip policy")
OUTPUT_SR = Setting("output_sr", "output rate")
SEPARATOR = Setting("separator", "separator")
STEMS = Setting("stems", "stems folder")
FORCE = Setting("force", "force=True")
DEVICE = Setting("device", "device")
MODEL_REPO = Setting("model_repo", "model repo")
JOBS = Setting("jobs", "jobs")
SEGMENT = Setting("segment", "segment")
OVERLAP = Setting("overlap", "overlap")
SHIFTS = Setting("shifts", "shifts")
MIN_ACTIVE = Setting("min_active_fraction", "minimum active fraction")
OUTPUT_FORMAT = Setting("format", "output format")
BITS = Setting("bits", "bit depth")
TARGET_LUFS = Setting("target_lufs", "loudness target")
TRUE_PEAK = Setting("true_peak_db", "true-peak ceiling")
FRAME = Setting("frame_s", "activity frame")
KIND_MODES = Setting("kind_modes", "per-kind routing")


class UserError(Exception):
    """A problem the user can fix, said in one line. The parts of the message that name a setting
    are `Setting`s: `str()` says them in the library's words, `worded(names)` in a caller's own
    (the CLI passes its flag names)."""

    def __init__(self, *parts: str | Setting):
        self.parts = parts
        super().__init__(self.worded())

    def worded(self, names: Mapping[str, str] | None = None) -> str:
        names = names or {}
        return "".join(names.get(p.name, p.words) if isinstance(p, Setting) else str(p) for p in self.parts)


class SettingError(UserError, ValueError):
    """A setting outside its choices or range."""


def check_types(values: Mapping[str, object], defaults: Mapping[str, object]) -> None:
    """Each value of its default's type, a `ValueError` naming the first that is not: true or
    false where the default is, a number (not true or false) where the default is one. A preset
    writes these as TOML, where `"1024"` or `1` for a flag is a slip, not a value."""
    for key, value in values.items():
        default = defaults.get(key)
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise ValueError(f"{key} must be true or false, not {value!r}")
        elif isinstance(default, (int, float)) and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise ValueError(f"{key} must be a number, not {value!r}")


def check_field_types(settings) -> None:
    """`check_types` over a settings dataclass's fields, against their own defaults."""
    fs = dataclasses.fields(settings)
    check_types({f.name: getattr(settings, f.name) for f in fs}, {f.name: f.default for f in fs})


def check_choice(value, choices: tuple, setting: Setting):
    """`value` when it is one of `choices`; else a `SettingError` naming `setting`."""
    if value not in choices:
        raise SettingError(setting, f" must be one of {', '.join(choices)}, not {value!r}")
    return value


def describe_error(exc: BaseException, names: Mapping[str, str] | None = None) -> str:
    """One line for the user: a file error names its file, a `UserError` or a bad value says what
    is wrong (settings in `names`' words when given), anything else is an internal error."""
    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.filename}: {exc.strerror or exc}"
    text = exc.worded(names) if isinstance(exc, UserError) else str(exc)
    text = text.splitlines()[0] if text else ""
    if isinstance(exc, (UserError, ValueError, OSError)):
        return text or type(exc).__name__
    return f"internal error ({type(exc).__name__}: {text})"
