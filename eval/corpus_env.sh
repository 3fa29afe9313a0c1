# Sourced by eval/corpora.sh and eval/outside.sh: where corpora go ($OUT), how to run the CLI
# (${CLI[@]}), `need_packages PKG...`, which installs the Debian packages that are missing, and
# `build NAME CMD...`, which runs CMD unless $OUT/NAME is built.
CACHE="${ADAPTIVE_ARGM_CACHE:-$HOME/.cache/adaptive-argm}"
OUT="$CACHE/corpora"
if [[ -z "${ADAPTIVE_ARGM:-}" ]]; then
    if command -v adaptive-argm >/dev/null; then ADAPTIVE_ARGM=adaptive-argm; else ADAPTIVE_ARGM="python3 -m adaptive_argm"; fi
fi
read -r -a CLI <<<"$ADAPTIVE_ARGM"

need_packages() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if ((${#missing[@]})); then
        echo "installing: ${missing[*]}" >&2
        local SUDO=(); [[ $(id -u) -ne 0 ]] && SUDO=(sudo)
        "${SUDO[@]}" apt-get update
        DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y "${missing[@]}"
    fi
}

build() {  # build NAME CMD...: skip when built, time it otherwise
    local name=$1; shift
    if [[ -f "$OUT/$name/manifest.json" ]]; then
        echo "$name: already built in $OUT/$name" >&2
        return
    fi
    local start=$SECONDS
    "$@"
    echo "$name: built in $((SECONDS - start)) s -> $OUT/$name" >&2
}
