#!/usr/bin/env bash
# Reproduces the shipped default language model comllm/checkpoints/lm-default:
# oracle data from closed-loop trajectories with 2-8 servers, then SFT of the embedded
# value-aware decoder (2.07 M parameters) on the `estimates-compact` template with the
# auxiliary per-action cost head. Wall time on the 2-core CPU machine: see README.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/ship}
mkdir -p "$OUT"
.venv/bin/comllm data --scenario paper-6 --n 35000 --split sft --servers 2-8 --seed 11 \
  --template estimates-compact --out "$OUT/sft.jsonl.gz"
.venv/bin/comllm data --scenario paper-6 --n 2000 --split test --servers 6 --seed 12 \
  --template estimates-compact --out "$OUT/test-6.jsonl.gz"
.venv/bin/comllm sft --model default --template estimates-compact --data "$OUT/sft.jsonl.gz" \
  --out "$OUT/lm-default" --steps 3000 --batch-size 32 --cost-head 1.0 --seed 0 \
  --eval-data "$OUT/test-6.jsonl.gz" --eval-every 1000 --no-progress
rm -rf comllm/checkpoints/lm-default && mkdir -p comllm/checkpoints/lm-default
for f in config.json generation_config.json model.safetensors tokenizer_config.json word_tokenizer.json comllm.json train_log.csv train_summary.json; do
  [ -f "$OUT/lm-default/$f" ] && cp "$OUT/lm-default/$f" comllm/checkpoints/lm-default/
done
echo "shipped comllm/checkpoints/lm-default"
