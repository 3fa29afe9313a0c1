"""Can a clip tell, from its own band below the cutoff, how wrong the recovery's envelope will be
above it? The envelope rule (`recovery._envelope`, library defaults) is applied to each clean
development clip's long-term spectrum twice:

  above   at the real cutoff (8, 11.025 or 16 kHz), scored against the clip's own band from the
          cutoff to 20 kHz: the error the step makes there;
  below   at half that cutoff, scored against the octave up to the cutoff: an error the step
          could measure on band-limited input, where that octave is still there.

Error: the envelope's level minus the clip's, each smoothed over 1/6 octave, in dB, averaged
over the bins scored (mono downmix, Welch 8192). If "below" predicted "above", a per-clip level
correction could be taken from it.

    python eval/recovery_backtest.py --real CORPORA/real-dev --midi CORPORA/midi-dev
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy.signal import welch
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import recovery_dev as rd  # noqa: E402

from adaptive_argm.core.recovery import RecoverySettings, _envelope, _smoothed_db  # noqa: E402

N_ANALYSIS = 8192
CUTOFFS_HZ = (8000.0, 11025.0, 16000.0)
TOP_HZ = 20000.0


def envelope_error_db(power: np.ndarray, sr: int, cutoff_hz: float, top_hz: float) -> float:
    """Mean over the bins from `cutoff_hz` to `top_hz` of the envelope's level minus the clip's (dB)."""
    s = RecoverySettings()
    env = _envelope(cutoff_hz, cutoff_hz, power, sr, N_ANALYSIS, s)
    f_hz = np.arange(env.k_lo, env.k_hi) * (sr / s.n_fft)
    keep = f_hz < top_hz
    actual = _smoothed_db(power, sr / N_ANALYSIS, f_hz[keep], s.envelope_octaves)
    return float(np.mean(env.target_db[keep] - actual))


def clip_paths(real: str | None, midi: str | None) -> list[tuple[str, str]]:
    clips = [(f"real/{n}", p) for n, (p, _) in sorted(rd.real_clips(real).items())] if real else []
    if midi:
        clips += [(f"midi/{s}", str(Path(midi) / s / "mixed.wav")) for s in rd.midi_songs(midi)]
    return clips


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--real")
    ap.add_argument("--midi")
    args = ap.parse_args()
    rows = []
    for name, path in clip_paths(args.real, args.midi):
        x, sr = rd.read(path)
        _, power = welch(x.mean(axis=0, dtype=np.float64), sr, window="hann", nperseg=N_ANALYSIS,
                         noverlap=3 * N_ANALYSIS // 4)
        rows.append([envelope_error_db(power, sr, fc, TOP_HZ) for fc in CUTOFFS_HZ]
                    + [envelope_error_db(power, sr, fc / 2, fc) for fc in CUTOFFS_HZ])
    a = np.array(rows)
    print(f"{len(rows)} clips. Envelope level minus the clip's (dB): median, 10th / 90th percentile, range;")
    print("Spearman's rank correlation of the error above with the error below the same cutoff.")
    print("| cutoff | above: median | 10th / 90th | range | below: median | range | rank correlation (p) |")
    print("|---|---|---|---|---|---|---|")
    for j, fc in enumerate(CUTOFFS_HZ):
        up, down = a[:, j], a[:, j + len(CUTOFFS_HZ)]
        r = spearmanr(up, down)
        p10, p90 = np.percentile(up, (10, 90))
        print(f"| {fc / 1000:g} kHz | {np.median(up):+.1f} | {p10:+.1f} / {p90:+.1f} | {up.min():+.1f} to {up.max():+.1f} "
              f"| {np.median(down):+.1f} | {down.min():+.1f} to {down.max():+.1f} | {r.statistic:+.2f} ({r.pvalue:.2f}) |")


if __name__ == "__main__":
    main()
