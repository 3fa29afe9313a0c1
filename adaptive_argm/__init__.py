"""adaptive-argm: restore text-to-music outputs with stem-relevance routing.

    from adaptive_argm import Settings, StemsFolder, run, compare
    result = run("song.wav", "restored/song", StemsFolder("stems/"), Settings(mode="routed"))
    print(result.plan.mode_used, result.metrics_output.p25_paper_db)
"""

from .config import VERSION
from .core.metrics import MetricPanel, measure
from .core.pipeline import CompareResult, RunResult, Settings, compare, run
from .core.presets import Preset
from .core.presets import load as load_preset
from .core.route import RouterConfig, RoutePlan, route
from .core.separate import DemucsSeparator, Separator, SeparatorOptions, StemsFolder
from .core.separate import resolve as resolve_separator

__all__ = [
    "CompareResult", "DemucsSeparator", "MetricPanel", "Preset", "RoutePlan", "RouterConfig", "RunResult",
    "Separator", "SeparatorOptions", "Settings", "StemsFolder", "compare", "load_preset", "measure",
    "resolve_separator", "route", "run",
]
__version__ = VERSION
