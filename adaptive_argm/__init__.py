"""adaptive-argm: restore text-to-music outputs with stem-relevance routing.

    from adaptive_argm import Settings, StemsFolder, run, compare
    result = run("song.wav", "restored/song", StemsFolder("stems/"), Settings(mode="routed"))
    print(result.plan.mode_used, result.metrics_output.p25_paper_db)
"""

from importlib import import_module

from .config import VERSION

_API = {
    "MetricPanel": "core.metrics", "measure": "core.metrics",
    "CompareResult": "core.pipeline", "RunResult": "core.pipeline", "Settings": "core.pipeline",
    "compare": "core.pipeline", "run": "core.pipeline",
    "Preset": "core.presets", "load_preset": "core.presets",
    "RouterConfig": "core.route", "RoutePlan": "core.route", "route": "core.route",
    "DemucsSeparator": "core.separate", "Separator": "core.separate", "SeparatorOptions": "core.separate",
    "StemsFolder": "core.separate", "resolve_separator": "core.separate",
}
"""The public names and where they live: imported when first used (PEP 562), so that a process
that needs one light module (the figure drawing process, `core.drawing`) does not import the
pipeline, scipy and pedalboard with the package."""
_RENAMED = {"load_preset": "load", "resolve_separator": "resolve"}

__all__ = sorted(_API)


def __getattr__(name: str):
    if name not in _API:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f".{_API[name]}", __name__), _RENAMED.get(name, name))
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])


__version__ = VERSION
