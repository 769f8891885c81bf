#!/usr/bin/env bash
# Copy a trained run folder into the package as a shipped checkpoint:
#   bash scripts/ship_checkpoint.sh RUN_FOLDER NAME [MODE [COST_TEMPERATURE]]
# -> comllm/checkpoints/lm-NAME (weights, config, tokenizer, comllm.json, training log and summary);
# MODE (score | sample | cost) is written into its comllm.json as the decision mode, and
# COST_TEMPERATURE as the cost mode's draws under the simultaneous protocol (llm option
# cost_temperature; README "The all-action stage"). A `comllm
# improve` run folder (one with final/) ships final/ with the run's train_log.csv and its
# config.json as improve_config.json.
set -euo pipefail
cd "$(dirname "$0")/.."
src=$1 name=$2 mode=${3:-} cost_temperature=${4:-}
dst=comllm/checkpoints/lm-$name
rm -rf "$dst" && mkdir -p "$dst"
model=$src
[ -d "$src/final" ] && model=$src/final
for f in config.json generation_config.json model.safetensors tokenizer_config.json word_tokenizer.json comllm.json; do
  [ -f "$model/$f" ] && cp "$model/$f" "$dst/"
done
for f in train_log.csv train_summary.json; do
  [ -f "$src/$f" ] && cp "$src/$f" "$dst/"
done
if [ "$model" != "$src" ]; then
  cp "$src/config.json" "$dst/improve_config.json"  # the run's settings
fi
if [ -n "$mode" ]; then
  .venv/bin/python - "$dst/comllm.json" "$mode" "$cost_temperature" <<'PY'
import json, pathlib, sys
p = pathlib.Path(sys.argv[1])
meta = json.loads(p.read_text()); meta["mode"] = sys.argv[2]
if sys.argv[3]:
    meta["cost_temperature"] = float(sys.argv[3])
p.write_text(json.dumps(meta, indent=2) + "\n")
PY
fi
echo "shipped $dst"
