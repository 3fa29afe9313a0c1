"""Options shared by `run`, `compare` and `eval`, declared once."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..core import pipeline
from ..core.dsp import CLIP_MODES
from ..core.route import MODES, SKIP_POLICIES, RouterConfig
from .app import UsageError

OUTPUT_RATES = ("work", "original")

_R = RouterConfig()
SEP = "Separation"
ROUTE = "Routing"
DSP = "Restoration"

Mode = typer.Option("routed", "--mode", help="routed | stemwise (always separate) | direct (never separate).")
Separator = typer.Option("auto", "--separator", help="auto | demucs | stems.", rich_help_panel=SEP)
Stems = typer.Option(None, "--stems", help="Folder of stems you already have (<name>.wav ...).",
                     rich_help_panel=SEP)
Model = typer.Option("htdemucs", "--model", help="Demucs model name (mdx is the method's).", rich_help_panel=SEP)
ModelRepo = typer.Option(None, "--model-repo", help="Local folder with NAME.yaml and SIG-*.th weights.",
                         rich_help_panel=SEP)
Device = typer.Option("auto", "--device", help="auto | cpu | cuda.", rich_help_panel=SEP)
Segment = typer.Option(None, "--segment", help="Demucs chunk length in seconds.", rich_help_panel=SEP)
Overlap = typer.Option(0.25, "--overlap", help="Demucs overlap between chunks.", rich_help_panel=SEP)
Shifts = typer.Option(0, "--shifts", help="Demucs random-shift passes.", rich_help_panel=SEP)
Force = typer.Option(False, "--force", help="Use --stems even when they do not add up to the input.",
                     rich_help_panel=SEP)
Preset = typer.Option(None, "--preset", help="Built-in preset name (default: the package default).",
                      rich_help_panel=DSP)
PresetFile = typer.Option(None, "--preset-file", help="Your own preset TOML.", rich_help_panel=DSP)
ClipMode = typer.Option("limit", "--clip-mode", help="limit | normalize | none, when the result would clip.",
                        rich_help_panel=DSP)
SkipPolicy = typer.Option(None, "--skip-policy", help="passthrough | drop, for near-silent stems.",
                          rich_help_panel=ROUTE)
MinRelDb = typer.Option(_R.min_rel_db, "--min-rel-db", help="Near-silent below this level re the mix.",
                        rich_help_panel=ROUTE)
MinActive = typer.Option(_R.min_active_fraction, "--min-active", help="Near-silent when active in fewer frames.",
                         rich_help_panel=ROUTE)
ActiveRelDb = typer.Option(_R.active_rel_db, "--active-rel-db", help="Frame active within this many dB of the mix.",
                           rich_help_panel=ROUTE)
ActiveFloor = typer.Option(_R.active_floor_dbfs, "--active-floor-dbfs", help="...and above this level.",
                           rich_help_panel=ROUTE)


def router_config(min_rel_db: float, min_active: float, active_rel_db: float, active_floor_dbfs: float) -> RouterConfig:
    return RouterConfig(min_rel_db=min_rel_db, min_active_fraction=min_active, active_rel_db=active_rel_db,
                        active_floor_dbfs=active_floor_dbfs)


def check_choice(value: str, choices: tuple[str, ...], flag: str) -> str:
    if value not in choices:
        raise UsageError(f"{flag} must be one of {', '.join(choices)}, not {value!r}")
    return value


def preset_choice(preset: Optional[str], preset_file: Optional[Path], default: str) -> str:
    if preset and preset_file:
        raise UsageError("give --preset or --preset-file, not both")
    return str(preset_file) if preset_file else (preset or default)


def make_settings(*, preset: Optional[str], preset_file: Optional[Path], clip_mode: str, skip_policy: Optional[str],
                  mode: str = "routed", router: RouterConfig | None = None, output_sr: str = "work",
                  keep_stems: bool = False) -> pipeline.Settings:
    """The pipeline settings from the options `run`, `compare` and `eval` share, each checked."""
    return pipeline.Settings(
        mode=check_choice(mode, MODES, "--mode"),
        preset=preset_choice(preset, preset_file, pipeline.DEFAULT_PRESET),
        clip_mode=check_choice(clip_mode, CLIP_MODES, "--clip-mode"),
        skip_policy=check_choice(skip_policy or pipeline.Settings.skip_policy, SKIP_POLICIES, "--skip-policy"),
        router=router or RouterConfig(),
        output_sr=check_choice(output_sr, OUTPUT_RATES, "--output-sr"),
        keep_stems=keep_stems,
    )
