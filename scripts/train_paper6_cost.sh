#!/usr/bin/env bash
# lm-paper6-cost (`llm:paper6-cost`): the paper-protocol model that decides by its cost head
# (`llm ...,mode=cost`, the mode its comllm.json names). From lm-paper6-set (scripts/train_paper6_set.sh),
# one more fine-tune on the same paper-6 records in which the cost head also learns from the
# perturbed prompts (their action lines found by name) and weighs twice as much; `units` stays
# held out of training. Wall time: README.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=runs/p6
OUT=${1:-runs/p6cost}
C=.venv/bin/comllm
data=()
for f in "$DATA"/sft-*.jsonl.gz; do data+=(--data "$f"); done
[ -f "$OUT/model.safetensors" ] || $C sft --model comllm/checkpoints/lm-paper6-set "${data[@]}" --steps 1500 --lr 5e-4 \
  --seed 5 --perturb-seed 5 --batch-size 48 --cost-head 2.0 --renumber 0.5 --renumber-max 24 --line-positions lines \
  --line-compare earlier --perturb shuffle-fields --perturb paraphrase --perturb numbers --perturb-prob 0.3 \
  --eval-data "$DATA/test-0.3.jsonl.gz" --eval-every 500 --eval-size 500 --save-every 500 --threads 2 --no-progress \
  --out "$OUT"
bash scripts/ship_checkpoint.sh "$OUT" paper6-cost cost
