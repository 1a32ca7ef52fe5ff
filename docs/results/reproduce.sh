#!/usr/bin/env bash
# Rebuilds every table and plot under docs/results from nothing: the data sets, then each experiment.
# Usage (from the repository root, after `make test` or `make demo` made .venv):
#   PATH=.venv/bin:$PATH bash docs/results/reproduce.sh [DATA_DIR] [OUT_DIR]
# Each experiment keeps its trained models under OUT_DIR and reuses them when run again with the same settings.
set -euo pipefail
DATA=${1:-data}
OUT=${2:-results}
DOCS=docs/results

build() {  # build NAME COMMAND...: run a data builder unless its folder is there already
    local dest=$1
    shift
    [ -f "$dest/dataset.json" ] || "$@"
}

memopainter weights fetch mobilenet_v2
build "$DATA/kenney" memopainter data kenney "$DATA/kenney"
build "$DATA/kenney-3shot" memopainter data split "$DATA/kenney" "$DATA/kenney-3shot" --shots 3 --seed 0
build "$DATA/wesnoth" memopainter data wesnoth "$DATA/wesnoth"
build "$DATA/wesnoth-5shot" memopainter data split "$DATA/wesnoth" "$DATA/wesnoth-5shot" \
    --shots 5 --ways 100 --test-per-class 3 --seed 0
build "$DATA/emoji" memopainter data emoji "$DATA/emoji"

memopainter experiment retrieval "$DATA/kenney" --out "$OUT/retrieval-kenney" --episodes 20
memopainter experiment retrieval "$DATA/wesnoth" --out "$OUT/retrieval-wesnoth" --episodes 10
memopainter experiment compare "$DATA/kenney-3shot" --steps 800 --out "$OUT/compare-kenney"
memopainter experiment compare "$DATA/wesnoth-5shot" --steps 800 --out "$OUT/compare-wesnoth"
memopainter experiment sweep "$DATA/kenney-3shot" --steps 800 --out "$OUT/sweep-kenney" \
    --memory-sizes 10 25 50 100 400 --thresholds 0.25 0.5 1 2 4
memopainter experiment rare "$DATA/emoji" --rare dark --common default --rare-shots 5 --steps 800 \
    --methods memopainter-dist memopainter-bins res-cgan cic \
    --out "$OUT/rare-emoji"

for result in "$OUT"/*/; do
    name=$(basename "$result")
    mkdir -p "$DOCS/$name"
    cp "$result"/*.md "$result"/*.json "$result"/*.png "$DOCS/$name/"
done
