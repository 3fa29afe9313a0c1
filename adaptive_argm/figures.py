"""Figures for `compare` (placeholder until the figure module lands: writes nothing)."""


def compare_figures(result, out_dir) -> list:
    return []
