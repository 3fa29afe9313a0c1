"""`compare`'s figures drawn in a process of their own: the same PNG as drawn here, its errors
raised here, and drawn here when the process cannot start or dies."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

from adaptive_argm.core import drawing, figures, pipeline, plots, presets

SR = 44100


def _stems_figure() -> plots.StemsFigure:
    rng = np.random.default_rng(0)
    images = {n: (rng.standard_normal((40, figures.N_MELS)) * 10 - 50).astype(np.float32) for n in ("drums", "bass")}
    return plots.StemsFigure(
        names=("drums", "bass"), before=images, after={"drums": images["drums"] - 3.0},
        router={"drums": "drums: router process", "bass": "bass: router skip, near-silent"},
        before_titles={n: f"before: your stems\n{n}" for n in images},
        after_titles={"drums": "after: restored (adaptive)", "bass": "skipped: near-silent"},
        axes=figures.mel_axes(SR, 1, 40 * figures.HOP), title="stems")


def test_a_figure_drawn_in_the_child_is_the_figure_drawn_here(tmp_path):
    figure = _stems_figure()
    figure.draw(tmp_path / "here.png")
    with drawing.Drawing() as d:
        assert d.in_child
        d.draw(figure, tmp_path / "child.png")
        d.finish()
    assert (tmp_path / "child.png").read_bytes() == (tmp_path / "here.png").read_bytes()


def test_what_the_child_could_not_draw_is_raised_here(tmp_path):
    broken = replace(_stems_figure(), names=("drums", "bass", "vocals"))  # no images of vocals
    with drawing.Drawing() as d, pytest.raises(drawing.DrawingError, match="stems.png: KeyError: 'vocals'"):
        d.draw(broken, tmp_path / "stems.png")
        d.finish()
    assert not list(tmp_path.iterdir())  # nothing written, no temporary file left


def test_without_a_child_the_figure_is_drawn_when_handed(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "executable", str(tmp_path / "no-python"))
    with drawing.Drawing() as d:
        assert not d.in_child
        d.draw(_stems_figure(), tmp_path / "stems.png")
        assert (tmp_path / "stems.png").is_file()  # drawn at once, before finish
        d.finish()


def test_a_figure_whose_child_died_is_drawn_here(tmp_path):
    with drawing.Drawing() as d:
        d._child.kill()
        d._child.wait()
        d.draw(_stems_figure(), tmp_path / "stems.png")
        d.finish()
    assert (tmp_path / "stems.png").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name != "stems.png"]  # no temporary file left


def test_the_drawing_process_imports_neither_the_pipeline_nor_scipy():
    # What the child imports to draw (`drawing.child`): the package's public names are imported
    # when first used, so that importing `plots` does not start the pipeline (1.6 CPU s).
    script = ("import sys; from adaptive_argm.core import drawing, plots; "
              "print(sorted(m for m in ('scipy', 'pedalboard', 'torch', 'adaptive_argm.core.pipeline') "
              "if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == "[]", proc.stderr


def test_every_public_name_of_the_package_resolves():
    import adaptive_argm

    for name in adaptive_argm.__all__:
        assert getattr(adaptive_argm, name) is not None, name
    assert adaptive_argm.load_preset is presets.load and adaptive_argm.Settings is pipeline.Settings
    with pytest.raises(AttributeError):
        adaptive_argm.no_such_name  # noqa: B018


def test_stem_views_hand_over_every_stem_once_the_last_is_taken_and_reuse_an_unchanged_stems_image():
    sr = 44100
    x = (0.1 * np.random.default_rng(0).standard_normal((2, 2 * sr))).astype(np.float32)
    handed = []
    views = figures.StemViews(sr, ("drums", "bass", "other"), ("drums", "other"), on_complete=handed.append)
    views.before("bass", x)  # a stem no chain runs on
    views.before("drums", x)
    views.after("drums", x * np.float32(0.5), changed=True)
    views.before("other", x)
    assert not handed  # "other" has no after image yet
    views.after("other", x, changed=False)
    assert len(handed) == 1 and list(handed[0]) == ["drums", "bass", "other"]
    drums, bass, other = handed[0].values()
    assert drums.after_rms_dbfs == pytest.approx(drums.before_rms_dbfs - 6.02, abs=0.01)
    assert bass.after is None
    # given back bit for bit: the same image, not taken again
    assert other.after is other.before and np.array_equal(other.after, figures.StemView.of(x, sr).before)
