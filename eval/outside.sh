#!/usr/bin/env bash
# Build a corpus of music from OTHER Debian game packages than the development ones, for a check
# on material that no setting was ever chosen on (eval/results/outside.md):
#   $ADAPTIVE_ARGM_CACHE/corpora/outside        26 excerpts (20 s, source rate, -23 LUFS)
#   $ADAPTIVE_ARGM_CACHE/corpora/outside-full   the 23 of them with content to 18 kHz (for recovery)
# ($ADAPTIVE_ARGM_CACHE defaults to ~/.cache/adaptive-argm.) Installs the packages when missing.
#
# Selection, fixed before anything was scored: every music track of extremetuxracer-data,
# lincity-ng-data and neverball-data that lasts at least 25 s (the excerpt is 20 s), and every
# third of hedgewars-data's 26 tracks in C-locale name order (its first, fourth, ...).
#
# Usage: eval/outside.sh            (from the repository root; ADAPTIVE_ARGM as in corpora.sh)
set -euo pipefail

source "$(dirname "$0")/corpus_env.sh"
need_packages extremetuxracer-data lincity-ng-data neverball-data hedgewars-data

ETR=/usr/share/games/etr/music
LINCITY=/usr/share/games/lincity-ng/music/default
NEVERBALL=/usr/share/games/neverball/bgm
HEDGEWARS=/usr/share/games/hedgewars/Data/Music

FULL=()
for t in calmrace-ks credits1-cp freezingpoint race1-jt start1-jt; do FULL+=("$ETR/$t.ogg"); done
FULL+=("$LINCITY/01 - pronobozo - lincity.ogg" "$LINCITY/03 - Robert van Herk - Architectural Contemplations.ogg")
for t in Art Castle Desert Fruit Jungle Rock hell oriental snow; do FULL+=("$HEDGEWARS/$t.ogg"); done
for t in title track1 track2 track3 track4 track5 track6; do FULL+=("$NEVERBALL/$t.ogg"); done
# Content only to 16.9, 17.2 and 17.9 kHz: scored by the denoiser's check, not by recovery's.
NARROW=("$ETR/spunkyrace-ks.ogg" "$LINCITY/02 - Robert van Herk - City Blues.ogg" "$NEVERBALL/inter.ogg")

mkdir -p "$OUT"
build outside "${CLI[@]}" corpus real "${FULL[@]}" "${NARROW[@]}" -o "$OUT/outside"
build outside-full "${CLI[@]}" corpus real "${FULL[@]}" -o "$OUT/outside-full"
