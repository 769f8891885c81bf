#!/usr/bin/env bash
# Reproduce comllm/checkpoints/lm-paper6-fast (`llm:paper6-fast`): a 2-layer x 64 model that decides
# by its cost head (mode cost), trained from scratch on the paper-6 records of scripts/train_paper6.sh
# (run that first for the data, or pass the folder holding sft-*.jsonl.gz and test-0.3.jsonl.gz).
# The line scheme of `comllm sft --line-positions lines`, renumbering, perturbations (units held out); about 6x fewer
# multiply-adds per token than the 3 x 128 models (README, "Decisions per second").
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-runs/p6}
OUT=${1:-runs/p6fast}
# the perturbation families of training (the rest are held out); SHIP=0 trains without shipping;
# TEMPLATE=lean-sharing prints greedy:sharing's estimate instead of the incoming-aware one
FAMILIES=${FAMILIES:-shuffle-fields paraphrase numbers}
PROB=${PROB:-0.3}      # share of the training prompts perturbed
STEPS=${STEPS:-4000}
# the value codec of the new model: narrow (0.01 .. 2000, the shipped lm-paper6-fast's) or wide
VALUE_RANGE=${VALUE_RANGE:-narrow}
SHIP=${SHIP:-1}
C=.venv/bin/comllm
data=()
for f in "$DATA"/sft-*.jsonl.gz; do data+=(--data "$f"); done
[ -f "$OUT/model.safetensors" ] || $C sft --model default --value-range "$VALUE_RANGE" --template "${TEMPLATE:-lean-v2}" "${data[@]}" \
  --hidden 64 --layers 2 --heads 2 --intermediate 192 --steps "$STEPS" --batch-size 48 --lr 2e-3 --seed 7 \
  --cost-head 2.0 --mode cost --renumber 0.5 --renumber-max 24 --line-positions lines --line-compare earlier \
  $(for f in $FAMILIES; do echo --perturb "$f"; done) --perturb-prob "$PROB" --perturb-seed 7 \
  --eval-data "$DATA/test-0.3.jsonl.gz" --eval-every 1000 --eval-size 500 --save-every 500 --threads 2 --no-progress \
  --out "$OUT"
# the run folder decides in cost mode too (--mode cost: llm:runs/...)
if [ "$SHIP" = 1 ]; then bash scripts/ship_checkpoint.sh "$OUT" paper6-fast cost; fi
