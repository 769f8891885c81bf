#!/usr/bin/env bash
# Reproduces `llm:paper6-set` (README: "Fresh-view models for the paper's protocol"): the paper-6
# model switched to the line scheme of comllm/lm/model.py (`comllm sft --line-positions lines`):
# every action line at the same position ids, encoded from the task line and itself, the lines'
# ends seeing each other, the answer a fixed span after them. The model reads the action lines as
# a set: its scores do not depend on the server order, and what it learns on six servers is not
# tied to where the seventh line sits.
#
#   bash scripts/train_paper6.sh          # first: the data (runs/p6) and llm:paper6, its start
#   bash scripts/train_paper6_set.sh [OUT]
#
# Three fine-tunes of 2,000 + 3,000 + 3,000 steps × 48 on the same 60,000 paper-6 records
# (paper-6 states only), cost head 1.0, half of the canonical prompts renumbered (ids 1..24),
# 30 % perturbed (shuffle-fields, paraphrase, numbers; units held out). The first two ran with
# `--line-compare all` (every line end sees every other: how the scheme was first built), the
# third with the default `earlier` (a line end sees the ends before it), which is what made the
# model accurate (docs/notes/fresh-models.md, third round). Wall time: README.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=runs/p6
OUT=${1:-runs/p6set}
C=.venv/bin/comllm
common=(--batch-size 48 --cost-head 1.0 --renumber 0.5 --renumber-max 24 --line-positions lines
        --perturb shuffle-fields --perturb paraphrase --perturb numbers --perturb-prob 0.3
        --eval-data "$DATA/test-0.3.jsonl.gz" --eval-every 500 --eval-size 500 --save-every 500 --threads 2 --no-progress)
data=()
for f in "$DATA"/sft-*.jsonl.gz; do data+=(--data "$f"); done
start=comllm/checkpoints/lm-paper6
for stage in "1 2000 1e-3 2 all" "2 3000 1e-3 3 all" "3 3000 7e-4 4 earlier"; do
  read -r k steps lr seed compare <<< "$stage"
  [ -f "$OUT/s$k/model.safetensors" ] || $C sft --model "$start" "${data[@]}" --steps "$steps" --lr "$lr" \
    --seed "$seed" --perturb-seed "$seed" --line-compare "$compare" "${common[@]}" --out "$OUT/s$k"
  start="$OUT/s$k"
done
rm -rf comllm/checkpoints/lm-paper6-set && mkdir -p comllm/checkpoints/lm-paper6-set
for f in config.json generation_config.json model.safetensors tokenizer_config.json word_tokenizer.json comllm.json train_log.csv train_summary.json; do
  cp "$OUT/s3/$f" comllm/checkpoints/lm-paper6-set/
done
for k in 1 2; do cp "$OUT/s$k/train_log.csv" "comllm/checkpoints/lm-paper6-set/train_log_s$k.csv"; done
echo "shipped comllm/checkpoints/lm-paper6-set"
