#!/usr/bin/env bash
# Measure every shipped checkpoint again with the code at HEAD and rewrite what quotes the numbers:
# checkpoints/*/metrics.json and truncation.png (python -m dalle evaluate), the model cards
# (python -m dalle card), README.md's results table (python -m dalle results) and BENCHMARKS.md's
# results block (python -m benchmarks.run --update-doc).
# Usage: scripts/regenerate.sh [--no-benchmarks]
# On a clean clone it creates .venv and prepares the emoji data first (npm, network).
set -euo pipefail
cd "$(dirname "$0")/.."
benchmarks=1
for arg in "$@"; do
  case "$arg" in
    --no-benchmarks) benchmarks=0 ;;
    *) echo "usage: scripts/regenerate.sh [--no-benchmarks]" >&2; exit 2 ;;
  esac
done
bash scripts/bootstrap.sh requirements.txt
py=.venv/bin/python

# Shipped checkpoints in README table order; every folder with generator weights must be listed.
checkpoints=(shapes-32 shapes-32-early emoji-64 emoji-64-early emoji-32)
for dir in checkpoints/*/; do
  name=$(basename "$dir")
  if [ -f "$dir/generator.safetensors" ] && [[ ! " ${checkpoints[*]} " == *" $name "* ]]; then
    echo "error: checkpoints/$name is not listed in scripts/regenerate.sh" >&2
    exit 1
  fi
done

for name in "${checkpoints[@]}"; do
  # emoji checkpoints need the prepared data at their resolution: "emoji 32" or "shapes 32"
  read -r dataset res < <($py -c "import json, sys; c = json.load(open(sys.argv[1]));
print(c['dataset']['name'], c['model']['resolution'])" "checkpoints/$name/config.json")
  if [ "$dataset" = emoji ] && [ ! -f "data/emoji/emoji-$res.npz" ]; then
    $py -m dalle prepare emoji --resolution "$res"
  fi
  $py -m dalle evaluate "checkpoints/$name" --out "checkpoints/$name/metrics.json"
  $py -m dalle card "checkpoints/$name"
done
$py -m dalle results "${checkpoints[@]/#/checkpoints/}"
if [ "$benchmarks" = 1 ]; then
  $py -m benchmarks.run --update-doc
fi
