"""Restoration presets: named chains of DSP steps, loaded from TOML.

A preset is data, not code. Each `[[steps]]` table names a step `kind` and its parameters;
`[stems.<name>]` tables may give a stem its own `steps`. Built-in presets ship in
`adaptive_argm/core/builtin_presets/`; users pass their own file with `--preset-file`.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path

from . import steps as step_kinds
from .recovery import RecoverySettings
from .steps import RECOVERY, PresetError, Step


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

    def chains(self) -> dict[str | None, tuple[Step, ...]]:
        """Every chain: the mix's (key None) and each stem's own."""
        return {None: self.steps, **self.stem_steps}

    def has(self, kind: str) -> bool:
        """Whether any chain has a step of `kind`."""
        return any(s.kind == kind for chain in self.chains().values() for s in chain)

    def without(self, kind: str) -> "Preset":
        """This preset with every step of `kind` removed from every chain."""
        def keep(chain):
            return tuple(s for s in chain if s.kind != kind)
        return replace(self, steps=keep(self.steps), stem_steps={k: keep(v) for k, v in self.stem_steps.items()})

    def with_params(self, kind: str, lower_only: bool = False, **params) -> "Preset":
        """This preset with `params` set on every step of `kind` (a run's own limits, such as a
        recovery ceiling below the output's Nyquist); `lower_only` keeps a step's own value
        where it is already lower."""
        def value(step: Step, key: str, v):
            return min(step.params[key], v) if lower_only and key in step.params else v

        def set_(chain):
            return tuple(Step(s.kind, {**s.params, **{k: value(s, k, v) for k, v in params.items()}})
                         if s.kind == kind else s for s in chain)
        preset = replace(self, steps=set_(self.steps), stem_steps={k: set_(v) for k, v in self.stem_steps.items()})
        validate(preset)
        return preset

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "source": self.source,
            "match_loudness": self.match_loudness,
            "steps": [{"kind": s.kind, **s.params} for s in self.steps],
            "stem_steps": {k: [{"kind": s.kind, **s.params} for s in v] for k, v in self.stem_steps.items()},
        }


def for_recovery(preset: Preset, enabled: bool, output_sr: int | None = None) -> tuple[Preset, str | None]:
    """`preset` as a run uses it, and a one-line note on its spectral recovery (None when there
    is nothing to say): without the step when not `enabled`; with the step's ceiling at
    `output_sr`'s Nyquist when the output is written at that (lower) rate, since a band added
    above it would be resampled away."""
    if not preset.has(RECOVERY):
        return preset, None
    if not enabled:
        return preset.without(RECOVERY), "turned off"
    if output_sr is None:
        return preset, None
    nyquist_hz = output_sr / 2
    if max(float(s.params.get("ceiling_hz", RecoverySettings.ceiling_hz))
           for c in preset.chains().values() for s in c if s.kind == RECOVERY) <= nyquist_hz:
        return preset, None
    return preset.with_params(RECOVERY, ceiling_hz=nyquist_hz, lower_only=True), (
        f"output kept at the input's {output_sr / 1000:g} kHz (output rate 'original'): no band recovered "
        f"above its {nyquist_hz / 1000:g} kHz Nyquist limit")


def builtin_names() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files(__package__).joinpath("builtin_presets").iterdir()
                  if p.name.endswith(".toml"))


KEYS = ("name", "description", "match_loudness", "steps", "stems")
"""A preset file's top-level keys: any other is a typo, refused rather than ignored."""


def _steps(tables: list, where: str) -> tuple[Step, ...]:
    if not isinstance(tables, list):
        raise PresetError(f"{where}: steps must be a list of tables ([[steps]]), not {tables!r}")
    steps = []
    for t in tables:
        if not isinstance(t, dict) or "kind" not in t:
            raise PresetError(f"{where}: every [[steps]] table needs a 'kind'")
        params = {k: v for k, v in t.items() if k != "kind"}
        steps.append(Step(kind=str(t["kind"]), params=params))
    return tuple(steps)


_KIND_TEXT = {str: "a string", bool: "true or false", dict: "a table ([stems.<name>])"}


def parse(text: str, source: str) -> Preset:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PresetError(f"{source}: not valid TOML ({exc})") from None
    if "steps" not in data:
        raise PresetError(f"{source}: a preset needs at least one [[steps]] table")
    unknown = [k for k in data if k not in KEYS]
    if unknown:
        raise PresetError(f"{source}: unknown key {unknown[0]!r} (a preset has {', '.join(KEYS)})")
    for key, kind in (("name", str), ("description", str), ("match_loudness", bool), ("stems", dict)):
        if key in data and not isinstance(data[key], kind):
            raise PresetError(f"{source}: {key} must be {_KIND_TEXT[kind]}, not {data[key]!r}")
    for name, t in data.get("stems", {}).items():
        if not isinstance(t, dict) or set(t) - {"steps"}:
            raise PresetError(f"{source}: [stems.{name}] must be a table holding only steps, not {t!r}")
    stems = {name: _steps(t.get("steps", []), f"{source} [stems.{name}]")
             for name, t in data.get("stems", {}).items()}
    preset = Preset(
        name=data.get("name", Path(source).stem),
        description=data.get("description", ""),
        steps=_steps(data["steps"], source),
        stem_steps=stems,
        match_loudness=data.get("match_loudness", False),
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
