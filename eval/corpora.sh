#!/usr/bin/env bash
# Build the two DEVELOPMENT corpora into a cache folder outside the repository:
#   $ADAPTIVE_ARGM_CACHE/corpora/real-dev   18 full-band real-music excerpts (20 s, source rate)
#   $ADAPTIVE_ARGM_CACHE/corpora/midi-dev   23 General MIDI songs rendered per family (first 30 s)
# ($ADAPTIVE_ARGM_CACHE defaults to ~/.cache/adaptive-argm.) Installs the Debian packages first
# when any is missing. A corpus that already exists is left as it is (delete it to rebuild).
#
# Only the development tracks below are used. Every other track of these packages is held out
# for validation: do not add them here, and do not tune on them.
#
# Usage: eval/corpora.sh            (from the repository root)
#   ADAPTIVE_ARGM="python -m adaptive_argm"   how to run the CLI (default: adaptive-argm if on PATH)
#   MIDI_MAX_S=30                              duration cap of each MIDI song in seconds
#   SOUNDFONT=/usr/share/sounds/sf2/FluidR3_GM.sf2
set -euo pipefail

source "$(dirname "$0")/corpus_env.sh"
MIDI_MAX_S="${MIDI_MAX_S:-30}"
SOUNDFONT="${SOUNDFONT:-/usr/share/sounds/sf2/FluidR3_GM.sf2}"
need_packages wesnoth-1.16-music nexuiz-music warzone2100-music fluidsynth fluid-soundfont-gm openttd-openmsx

WESNOTH=/usr/share/games/wesnoth/1.16/data/core/music
NEXUIZ=/usr/share/games/nexuiz/data/music.pk3/sound/cdtracks   # members of the zip
WARZONE=/usr/share/games/warzone2100/music/albums
OPENMSX=/usr/share/games/openttd/baseset/openmsx

REAL_DEV=()
for t in northern_mountains nunc_dimittis suspense casualties_of_war the_king_is_dead into_the_shadows \
         journeys_end legends_of_the_north; do REAL_DEV+=("$WESNOTH/$t.ogg"); done
for t in stairs ninesix sixtyfour_revisited desert3; do REAL_DEV+=("$NEXUIZ/$t.ogg"); done
for t in original_soundtrack/track3 legacy_soundtrack/track7 legacy_soundtrack/track8 legacy_soundtrack/track13 \
         aftermath_soundtrack/track17 aftermath_soundtrack/track21; do REAL_DEV+=("$WARZONE/$t.opus"); done

MIDI_DEV=()
for t in 5432gone_redfarn boogi_marabi_redfarn busy_schedule careless_perc_redfarn chemistry_lab chuggachugga \
         coconut_run2 keep_on_rolling linns_basket mighty_giant_run modern_motion moo_redfarn mosey_along_redfarn \
         no_work_song_redfarn relax_song run_for_your_life slow_neasy_redfarn the_hobo_redfarn \
         train_filled_with_cash ttsong_iii_imuh3 ttsong_iv_imuh3 tttheme2 ultimate_run; do
    MIDI_DEV+=("$OPENMSX/$t.mid")
done

mkdir -p "$OUT"
build real-dev "${CLI[@]}" corpus real "${REAL_DEV[@]}" --out "$OUT/real-dev"
build midi-dev "${CLI[@]}" corpus midi "${MIDI_DEV[@]}" --out "$OUT/midi-dev" --soundfont "$SOUNDFONT" \
    --max-duration "$MIDI_MAX_S"
