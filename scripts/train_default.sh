#!/usr/bin/env bash
# Reproduces the shipped language models (README: "The language-model policy").
#
#   bash scripts/train_default.sh [OUT] [--stage-b-device cuda|cpu]
#
# Stage A (CPU, ~32 min on 2 cores): 200,000 oracle-labelled states from closed-loop
#   trajectories with 2-24 servers; SFT of a new embedded value-aware decoder (2.07 M
#   parameters) on the `estimates-compact` template with the auxiliary per-action cost head.
#   Shipped as comllm/checkpoints/lm-estimates.
# Stage B (GPU, 3.8 min on one H200; on 2 CPU cores expect ~6 h): warm start from stage A on the
#   `annotated-compact` template (raw fields + per-action estimates), the first 130,000 records,
#   5,000 steps of 64. Shipped as comllm/checkpoints/lm-default.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/default}
DEVICE_B=auto
[ "${2:-}" = "--stage-b-device" ] && DEVICE_B=${3:-auto}
mkdir -p "$OUT"
C=.venv/bin/comllm
[ -f "$OUT/sft.jsonl.gz" ] || $C data --scenario paper-6 --n 200000 --split sft --servers 2-24 --seed 11 --out "$OUT/sft.jsonl.gz"
[ -f "$OUT/mon.jsonl.gz" ] || $C data --scenario paper-6 --n 2000 --split test --servers 2-24 --seed 12 --out "$OUT/mon.jsonl.gz"
[ -f "$OUT/stageA/model.safetensors" ] || $C sft --model default --value-range narrow --template estimates-compact --data "$OUT/sft.jsonl.gz" \
  --out "$OUT/stageA" --steps 4000 --batch-size 32 --cost-head 1.0 --seed 0 \
  --eval-data "$OUT/mon.jsonl.gz" --eval-every 1000 --eval-size 1500 --save-every 500 --no-progress
[ -f "$OUT/stageB/model.safetensors" ] || $C sft --model "$OUT/stageA" --template annotated-compact --data "$OUT/sft.jsonl.gz" \
  --max-records 130000 --out "$OUT/stageB" --steps 5000 --batch-size 64 --lr 5e-4 --cost-head 1.0 --seed 0 \
  --eval-data "$OUT/mon.jsonl.gz" --eval-every 1000 --eval-size 1500 --save-every 500 --device "$DEVICE_B" --no-progress
for pair in "stageA lm-estimates" "stageB lm-default"; do
  set -- $pair
  rm -rf "comllm/checkpoints/$2" && mkdir -p "comllm/checkpoints/$2"
  for f in config.json generation_config.json model.safetensors tokenizer_config.json word_tokenizer.json comllm.json train_log.csv train_summary.json; do
    [ -f "$OUT/$1/$f" ] && cp "$OUT/$1/$f" "comllm/checkpoints/$2/"
  done
  echo "shipped comllm/checkpoints/$2"
done
