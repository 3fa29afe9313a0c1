"""The paired benchmark's files: `paired.md` (per corpus: means and worst clips, the
cross-validated halves, the goals, the degradations as applied), `paired.csv` (one row per case)
and `paired_means.csv` (one row per corpus x half x degradation x preset x mode), written as one
result set with `paired.json` (settings and clips) as its manifest."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

from ..core import audio, results
from ..core.table import Table, csv_text, markdown
from .benchmark import BenchmarkResult, BenchmarkSettings, run_benchmark
from .benchmark_tables import all_means, goals, goals_table, headline_table, means, means_table, misread_note
from .clips import HALF_ROLES, MUSICGEN_STEM_SCALE, CleanClip

REPORT_TITLE = "# Paired benchmark\n"
"""The first line of `<stem>.md`: what marks tables an earlier version wrote (`tables_set`)."""
SOURCE_TEXT = {
    "musicgen": f"MusicGen mixtures with their true stems (oracle stems: stem x {MUSICGEN_STEM_SCALE}, harmony + "
                "melody -> other, no vocals); direct, stem-wise and routed",
    "midi": "MIDI multitracks rendered per General MIDI family (mix = sum of drums, bass, other, vocals; an "
            "absent family is a silent stem); direct, stem-wise and routed",
    "real": "real music without stems; direct only",
}


def to_csv(rows: list[dict]) -> str:
    """paired.csv and its kin: the rows' own keys as columns, floats to six significant digits."""
    return csv_text(rows, number=lambda v: f"{v:.6g}")


def _md(table: Table) -> str:
    return markdown(table) + "\n"


def _corpus_section(result: BenchmarkResult, source: str) -> list[str]:
    clips = [c for c in result.clips if c.source == source]
    rates = sorted({c.sample_rate for c in clips})
    cases = [c for c in result.cases if c.source == source]
    rows = means(cases, source)
    parts = [f"## {source}: {len(clips)} clips\n",
             f"{SOURCE_TEXT.get(source, source)}. Source rates: {', '.join(f'{r / 1000:g} kHz' for r in rates)}; "
             f"scored: {min(c.duration_s for c in clips):.1f}-{max(c.duration_s for c in clips):.1f} s per clip.\n"]
    for h, role in HALF_ROLES.items():
        parts.append(f"- half {h} ({role}): {', '.join(c.name for c in clips if c.half == h) or 'none'}")
    parts += ["",
              "### SI-SDR change (dB): mean / worst clip\n",
              _md(headline_table(rows, "si_sdr_change_db", "si_sdr_change_worst_db")),
              "### ViSQOL change (MOS): mean / worst clip\n",
              _md(headline_table(rows, "visqol_change", "visqol_change_worst")),
              misread_note(cases),
              *(["### ViSQOL change (MOS), misread cases left out: mean / worst clip\n",
                 _md(headline_table(rows, "visqol_change_sound", "visqol_change_sound_worst"))]
                if any(c.visqol_misread for c in cases) else []),
              "### ViSQOL (MOS), degraded input and outputs, mean over clips\n",
              _md(headline_table(rows, "visqol_out", signed=False, input_field="visqol_in")),
              "### LSD above the damaged input's cutoff (dB), degraded input and outputs, mean over clips\n",
              _md(headline_table([r for r in rows if math.isfinite(r.lsd_hf_in_db)], "lsd_hf_out_db", signed=False,
                                 input_field="lsd_hf_in_db")),
              "### Change of the SNR in the quietest 10 % of frames (dB), mean\n",
              _md(headline_table(rows, "quiet_snr_change_db")),
              "### Loudness change (LU), mean\n", _md(headline_table(rows, "loudness_change_lu")),
              "### Cross-validated halves: SI-SDR change (dB), mean / worst clip\n"]
    for h, role in HALF_ROLES.items():
        half_rows = means(cases, source, h)
        if half_rows:
            parts += [f"Half {h} ({role}, n = {half_rows[0].clips}):\n",
                      _md(headline_table(half_rows, "si_sdr_change_db", "si_sdr_change_worst_db"))]
    parts.append("### Cross-validated halves: ViSQOL change (MOS), mean / worst clip\n")
    for h, role in HALF_ROLES.items():
        half_rows = means(cases, source, h)
        if half_rows:
            parts += [f"Half {h} ({role}):\n", _md(headline_table(half_rows, "visqol_change", "visqol_change_worst"))]
    parts += ["### Every mean and worst clip\n", _md(means_table(rows))]
    return parts


def report_markdown(result: BenchmarkResult) -> str:
    s = result.settings
    sources = list(dict.fromkeys(c.source for c in result.clips))
    parts = [REPORT_TITLE,
             "Clean clip -> seeded degradation at the clip's own rate -> the pipeline's read at 44.1 kHz -> "
             "restoration (library path: route + pipeline.restore) -> back to the clip's rate, as "
             "`--output-sr original` writes it. Intrusive scores (SI-SDR, LSD, quiet-frame SNR, ViSQOL v3 audio mode, "
             "LSD above the damaged input's cutoff) at the clip's own rate against the untouched clean clip, after "
             "fractional-delay alignment; the non-intrusive panel (P25, loudness, noise floor) at 44.1 kHz, where "
             "`run` measures it. Δ = output minus the degraded input. SI-SDR, LSD and quiet SNR in dB (SI-SDR and SNR "
             "read at most 60 dB), ViSQOL as MOS-LQO (1-5), loudness in LU (BS.1770), clipped = output samples at or "
             "above full scale. Worst clip = the lowest change over the clips of a cell.\n",
             "The cutoff is measured from each degradation itself (`degrade.lost_band_hz`: the highest frequency "
             "where the damaged mix keeps at least -20 dB of the clean clip's long-term power, among the bins where "
             "the clean clip has content); conditions that lose no band have none, and no LSD above it.\n",
             f"- corpora: {', '.join(sources)}; presets: {', '.join(s.presets)}; modes: {', '.join(s.modes)}; "
             f"skip policy {s.skip_policy}; clip mode {s.clip_mode}; router {s.router.__dict__}",
             f"- damage shared among oracle stems by `{s.split}` (adaptive_argm/evaluation/degrade.py, "
             "apply_to_stems); names joined by + are applied left to right",
             f"- {'whole clips' if s.excerpt_s is None else f'the first {s.excerpt_s:g} s of each clip'}; "
             f"ViSQOL {'on' if s.with_visqol else 'off (--no-visqol)'}",
             "- cross-validation: each corpus's clips sorted by name, alternately into half A (tune) and half B "
             "(report)",
             f"- seed {s.seed}; wall time {result.wall_s:.1f} s with {result.jobs} worker process(es); "
             f"{len(result.cases)} cases",
             ""]
    for src in sources:
        parts += _corpus_section(result, src)
    for p in s.presets:
        if any(c.preset == p for c in result.cases) and p != "paper":
            parts += [f"## Goals (issue 6) for `{p}`, all corpora\n", _md(goals_table(goals(result.cases, p)))]
    applied = tuple((clip, r.name, str(r.seed), r.summary()) for clip, r in result.records)
    parts += ["## Degradations as applied (measured)\n",
              _md(Table(("clip", "degradation", "seed", "applied -> measured"), applied)),
              "Per clip: paired.csv (one row per clip x degradation x preset x mode, with its half).\n"]
    return "\n".join(parts)


def tables_set(stem: str = "paired") -> results.Kind:
    """The benchmark's files as a result set; tables written before it had a manifest count as
    its earlier set when `<stem>.md` is there and begins as the benchmark's own does."""
    names = (f"{stem}.md", f"{stem}.csv", f"{stem}_means.csv")
    return results.Kind(f"{stem}.json", outputs=names, legacy=names, legacy_marker=names[0],
                        legacy_marker_text=REPORT_TITLE)


def write_outputs(result: BenchmarkResult, out_dir: str | Path, stem: str = "paired") -> list[Path]:
    """`<stem>.md` (the summaries), `<stem>.csv` (one row per case), `<stem>_means.csv` (means
    and worst clips per corpus x half x degradation x preset x mode) and `<stem>.json`
    (settings and clips), written as one result set."""
    with results.ResultSet(out_dir, tables_set(stem)) as staged:
        return _commit_tables(result, staged, stem)


def run_into(out_dir: str | Path, clips: list[CleanClip], settings: BenchmarkSettings, *,
             on_done: Callable[[int, int], None] | None = None, stem: str = "paired",
             backend: Backend | None = None) -> tuple[BenchmarkResult, list[Path]]:
    """`run_benchmark`, its tables staged in `out_dir` from the start (so an interrupt leaves
    nothing there, and a folder that cannot take them is refused before any work), then
    committed as `write_outputs` does."""
    with results.ResultSet(out_dir, tables_set(stem)) as staged:
        result = run_benchmark(clips, settings, on_done=on_done, backend=backend)
        return result, _commit_tables(result, staged, stem)


def _commit_tables(result: BenchmarkResult, staged: results.ResultSet, stem: str) -> list[Path]:
    kind = staged.kind
    audio.write_text(staged.path(f"{stem}.md"), report_markdown(result))
    audio.write_text(staged.path(f"{stem}.csv"), to_csv([c.row() for c in result.cases]))
    audio.write_text(staged.path(f"{stem}_means.csv"), to_csv([r.__dict__ for r in all_means(result.cases)]))
    staged.commit({"schema": "adaptive-argm/paired/1", "settings": result.settings.to_dict(),
                   "clips": [dict(c.__dict__) for c in result.clips],
                   "cases": len(result.cases), "wall_s": result.wall_s, "jobs": result.jobs})
    return [staged.final(name) for name in (*kind.outputs, kind.manifest)]
