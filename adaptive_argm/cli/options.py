"""Options shared by the commands, declared once: the separation, restoration and routing options
`run` and `compare` both take (`shared_options`), and how they become the library's
`SeparatorOptions` and `pipeline.Settings`."""

from __future__ import annotations

import functools
import inspect
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Optional, get_type_hints

import typer
from rich.markup import escape

from ..config import CLIP_MODES, DEFAULT_MODEL, DEFAULT_PRESET, SEPARATORS, SKIP_POLICIES
from ..core import backends, pipeline, presets, separate
from ..core.route import RouterConfig
from ..core.separate import SeparationError, SeparatorOptions
from .app import FLAGS, UsageError

_R = RouterConfig()
SEP = "Separation"
ROUTE = "Routing"
DSP = "Restoration"
OUT = "Output"


def _choices(values: tuple[str, ...]) -> str:
    return " | ".join(values)


Mode = typer.Option("routed", FLAGS["mode"], help="routed | stemwise (always separate) | direct (never separate).")
Separator = typer.Option("auto", FLAGS["separator"], help=f"{_choices(SEPARATORS)}.", rich_help_panel=SEP)
Stems = typer.Option(None, FLAGS["stems"], rich_help_panel=SEP,
                     help="Folder of stems you already have: drums, bass, other, vocals as <name>.wav|flac|... "
                          "(other names are summed into other; mix/mixed/mixture/input are left out).")
Model = typer.Option(DEFAULT_MODEL, "--model", help="Demucs model name (mdx is the method's).", rich_help_panel=SEP)
ModelRepo = typer.Option(None, FLAGS["model_repo"], help="Local folder with NAME.yaml and SIG-*.th weights.",
                         rich_help_panel=SEP)
Device = typer.Option("auto", FLAGS["device"], help="auto | cpu | cuda.", rich_help_panel=SEP)
Segment = typer.Option(None, "--segment", help="Demucs chunk length in seconds.", rich_help_panel=SEP)
Overlap = typer.Option(0.25, "--overlap", help="Demucs overlap between chunks.", rich_help_panel=SEP)
Shifts = typer.Option(0, "--shifts", help="Demucs random-shift passes.", rich_help_panel=SEP)
Force = typer.Option(False, FLAGS["force"], help="Use --stems even when they do not add up to the input.",
                     rich_help_panel=SEP)
Preset = typer.Option(None, FLAGS["preset"], help="Built-in preset name (default: the package default).",
                      rich_help_panel=DSP)
PresetFile = typer.Option(None, "--preset-file", help="Your own preset TOML.", rich_help_panel=DSP)
ClipMode = typer.Option("limit", FLAGS["clip_mode"], help=f"{_choices(CLIP_MODES)}, when the result would clip.",
                        rich_help_panel=DSP)
SkipPolicy = typer.Option(None, FLAGS["skip_policy"], help=f"{_choices(SKIP_POLICIES)}, for near-silent stems.",
                          rich_help_panel=ROUTE)
MinRelDb = typer.Option(_R.min_rel_db, "--min-rel-db", help="Near-silent below this level re the mix.",
                        rich_help_panel=ROUTE)
MinActive = typer.Option(_R.min_active_fraction, "--min-active", help="Near-silent when active in fewer frames.",
                         rich_help_panel=ROUTE)
ActiveRelDb = typer.Option(_R.active_rel_db, "--active-rel-db", help="Frame active within this many dB of the mix.",
                           rich_help_panel=ROUTE)
ActiveFloor = typer.Option(_R.active_floor_dbfs, "--active-floor-dbfs", help="...and above this level.",
                           rich_help_panel=ROUTE)
OutputSr = typer.Option("work", FLAGS["output_sr"], rich_help_panel=OUT,
                        help="work: 44.1 kHz, the rate everything is processed and measured at (room for a "
                             "recovered band) | original: the input file's own rate (resampled back after "
                             "restoration; nothing recovered above its Nyquist).")
Format = typer.Option(None, FLAGS["format"], rich_help_panel=OUT,
                      help="wav | flac (default: the input's own, WAV for MP3/OGG/AIFF).")
Bits = typer.Option(None, FLAGS["bits"], rich_help_panel=OUT,
                    help="16 (with TPDF dither) | 24 | 32f (default: the input's own where the format holds it, "
                         "else 24; 32f when the result passes full scale).")
TargetLufs = typer.Option(None, FLAGS["target_lufs"], rich_help_panel=OUT,
                          help="Bring the result to this loudness (BS.1770, e.g. -14 for streaming) under "
                               "--true-peak-db (default: keep the input's loudness).")
TruePeak = typer.Option(-1.0, FLAGS["true_peak_db"], rich_help_panel=OUT,
                        help="True-peak ceiling with --target-lufs, dBTP (4x oversampled, BS.1770).")
Residual = typer.Option(False, "--residual", rich_help_panel=OUT,
                        help="Also write what each result removed or added (output minus input) as 32-bit float "
                             "residual.wav (compare: residual-<mode>.wav).")
NoRecovery = typer.Option(False, "--no-recovery", help="Leave out the preset's spectral recovery of a band a "
                                                       "resampler or codec cut off.", rich_help_panel=DSP)
BACKEND = "Backend"
Backend = typer.Option("local", "--backend", rich_help_panel=BACKEND,
                       help="local (this machine's worker processes) | ray (a Ray cluster; "
                            f"{escape(backends.RAY_HINT)}).")
Address = typer.Option(None, "--address", rich_help_panel=BACKEND,
                       help="With --backend ray: the cluster to join (auto, HOST:PORT or ray://HOST:PORT); "
                            "default: start a local Ray instance with this machine's CPUs.")
Overwrite = typer.Option(False, "--overwrite", help="Replace the result of another input that --out holds "
                                                    "(its own files only; other files are never touched).")


@contextmanager
def connected(chosen: backends.Backend):
    """`chosen` (`backends.make`: checked with the other options), reached before any work and
    let go of afterwards."""
    try:
        chosen.connect()
        yield chosen
    finally:
        chosen.close()


def jobs_for(jobs: Optional[int], chosen: backends.Backend) -> int:
    """`--jobs` as given; unset: 1 here, one per CPU of a cluster."""
    if jobs is not None:
        return jobs
    return chosen.workers(0, 1 << 30) if chosen.distributed else 1


def router_config(min_rel_db: float, min_active: float, active_rel_db: float, active_floor_dbfs: float) -> RouterConfig:
    return RouterConfig(min_rel_db=min_rel_db, min_active_fraction=min_active, active_rel_db=active_rel_db,
                        active_floor_dbfs=active_floor_dbfs)


def preset_choice(preset: Optional[str], preset_file: Optional[Path], default: str = DEFAULT_PRESET) -> str:
    """The preset the options name, loaded once here so that an unknown name or a bad file is a
    usage error before any work."""
    if preset and preset_file:
        raise UsageError("give --preset or --preset-file, not both")
    choice = str(preset_file) if preset_file else (preset or default)
    try:
        presets.load(choice)
    except presets.PresetError as exc:
        raise UsageError(f"--preset-file {exc}" if preset_file else f"--preset: {exc}") from None
    return choice


@dataclass(frozen=True)
class SharedOptions:
    """The separation, restoration and routing options `run` and `compare` both take; commands
    declared with `shared_options` receive them as this one object. Each field's default is its
    typer option."""

    separator: str = Separator
    stems: Optional[Path] = Stems
    model: str = Model
    model_repo: Optional[Path] = ModelRepo
    device: str = Device
    segment: Optional[float] = Segment
    overlap: float = Overlap
    shifts: int = Shifts
    force: bool = Force
    preset: Optional[str] = Preset
    preset_file: Optional[Path] = PresetFile
    skip_policy: Optional[str] = SkipPolicy
    clip_mode: str = ClipMode
    min_rel_db: float = MinRelDb
    min_active: float = MinActive
    active_rel_db: float = ActiveRelDb
    active_floor_dbfs: float = ActiveFloor
    output_sr: str = OutputSr
    format: Optional[str] = Format
    bits: Optional[str] = Bits
    target_lufs: Optional[float] = TargetLufs
    true_peak_db: float = TruePeak
    residual: bool = Residual
    no_recovery: bool = NoRecovery

    def separation(self) -> SeparatorOptions:
        """The separator the options ask for (checked by the library)."""
        return SeparatorOptions(self.separator, self.stems, self.model, self.model_repo, self.device, self.segment,
                                self.overlap, self.shifts, self.force)

    def resolve_separator(self, mode: str = "routed", exclude: tuple[Path, ...] = ()):
        """`separate.resolve` for these options; a folder option that is not a folder, or a
        separator without what it needs, is a usage error."""
        for flag, folder in (("--stems", self.stems), ("--model-repo", self.model_repo)):
            if folder is not None and not folder.is_dir():
                raise UsageError(f"{flag} {folder}: not a folder")
        try:
            return separate.resolve(self.separation(), mode=mode, exclude=exclude)
        except SeparationError as exc:
            raise UsageError(exc.worded(FLAGS)) from None

    def inputs(self) -> tuple[Path, ...]:
        """Files and folders the run reads besides its input (never written over)."""
        return (self.stems,) if self.stems is not None else ()

    def settings(self, mode: str = "routed", keep_stems: bool = False) -> pipeline.Settings:
        """The pipeline settings the options ask for (checked by the library)."""
        return make_settings(mode=mode, preset=self.preset, preset_file=self.preset_file, clip_mode=self.clip_mode,
                             skip_policy=self.skip_policy, output_sr=self.output_sr, keep_stems=keep_stems,
                             recovery=not self.no_recovery,
                             router=router_config(self.min_rel_db, self.min_active, self.active_rel_db,
                                                  self.active_floor_dbfs),
                             delivery=dict(format=self.format, bits=self.bits, target_lufs=self.target_lufs,
                                           true_peak_db=self.true_peak_db, residual=self.residual))


def make_settings(*, preset: Optional[str], preset_file: Optional[Path], clip_mode: str, skip_policy: Optional[str],
                  mode: str = "routed", router: RouterConfig | None = None, output_sr: str = "work",
                  keep_stems: bool = False, delivery: dict | None = None, recovery: bool = True) -> pipeline.Settings:
    """The pipeline settings from the options `run`, `compare` and `eval` share; `delivery`: the
    output options (format, bits, target_lufs, true_peak_db, residual); `recovery`: False drops
    the preset's spectral recovery steps."""
    return pipeline.Settings(mode=mode, preset=preset_choice(preset, preset_file), clip_mode=clip_mode,
                             skip_policy=skip_policy or pipeline.Settings.skip_policy, router=router or RouterConfig(),
                             output_sr=output_sr, keep_stems=keep_stems, recovery=recovery, **(delivery or {}))


def shared_options(command):
    """Give a typer command the `SharedOptions` as its own options (after its other parameters),
    and hand them to it as one `shared: SharedOptions` argument."""
    signature = inspect.signature(command)
    own = [p for p in signature.parameters.values() if p.name != "shared"]
    types = get_type_hints(SharedOptions)
    added = [inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default, annotation=types[f.name])
             for f in fields(SharedOptions)]

    @functools.wraps(command)
    def with_shared(**kwargs):
        shared = SharedOptions(**{f.name: kwargs.pop(f.name) for f in fields(SharedOptions)})
        return command(shared=shared, **kwargs)

    with_shared.__signature__ = signature.replace(parameters=own + added)
    with_shared.__annotations__ = {**{k: v for k, v in command.__annotations__.items() if k != "shared"},
                                   **{p.name: p.annotation for p in added}}
    return with_shared

