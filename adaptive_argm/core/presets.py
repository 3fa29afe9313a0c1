"""Restoration presets: named chains of DSP steps, loaded from TOML.

A preset is data, not code. Each `[[steps]]` table names a step `kind` and its parameters;
`[stems.<name>]` tables may give a stem its own `steps`. Built-in presets ship in
`adaptive_argm/core/builtin_presets/`; users pass their own file with `--preset-file`.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from . import steps as step_kinds
from .steps import PresetError, Step


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    steps: tuple[Step, ...]
    stem_steps: dict[str, tuple[Step, ...]] = field(default_factory=dict)
    match_loudness: bool = False
    """Bring the final mix back to the input's integrated loudness (ITU-R BS.1770)."""
    source: str = ""

    def chain_for(self, stem: str | None = None) -> tuple[Step, ...]:
        """The steps for one stem (its own, when the preset gives any), or for the whole mix."""
        return self.stem_steps.get(stem, self.steps) if stem else self.steps

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "source": self.source,
            "match_loudness": self.match_loudness,
            "steps": [{"kind": s.kind, **s.params} for s in self.steps],
            "stem_steps": {k: [{"kind": s.kind, **s.params} for s in v] for k, v in self.stem_steps.items()},
        }


def builtin_names() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files(__package__).joinpath("builtin_presets").iterdir()
                  if p.name.endswith(".toml"))


def _steps(tables: list, where: str) -> tuple[Step, ...]:
    steps = []
    for t in tables:
        if not isinstance(t, dict) or "kind" not in t:
            raise PresetError(f"{where}: every [[steps]] table needs a 'kind'")
        params = {k: v for k, v in t.items() if k != "kind"}
        steps.append(Step(kind=str(t["kind"]), params=params))
    return tuple(steps)


def parse(text: str, source: str) -> Preset:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PresetError(f"{source}: not valid TOML ({exc})") from None
    if "steps" not in data:
        raise PresetError(f"{source}: a preset needs at least one [[steps]] table")
    stems = {name: _steps(t.get("steps", []), f"{source} [stems.{name}]")
             for name, t in data.get("stems", {}).items()}
    preset = Preset(
        name=str(data.get("name", Path(source).stem)),
        description=str(data.get("description", "")),
        steps=_steps(data["steps"], source),
        stem_steps=stems,
        match_loudness=bool(data.get("match_loudness", False)),
        source=source,
    )
    validate(preset)
    return preset


def validate(preset: Preset) -> None:
    """Fail early, with a one-line message, on a step kind or parameter that cannot run."""
    for chain in (preset.steps, *preset.stem_steps.values()):
        for step in chain:
            step_kinds.check(step, preset.source)


def load(name_or_path: str | Path) -> Preset:
    """Load a built-in preset by name, or a preset TOML file by path."""
    p = Path(name_or_path)
    if p.suffix == ".toml" or p.exists():
        if not p.is_file():
            raise PresetError(f"{p}: no such preset file")
        try:
            text = p.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise PresetError(f"{p}: not a text file (a preset is TOML)") from None
        return parse(text, str(p))
    name = str(name_or_path)
    if name not in builtin_names():
        raise PresetError(f"unknown preset {name!r}; built-in presets: {', '.join(builtin_names())}")
    text = resources.files(__package__).joinpath("builtin_presets", f"{name}.toml").read_text(encoding="utf-8")
    return parse(text, f"builtin:{name}")
