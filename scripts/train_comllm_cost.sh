#!/usr/bin/env bash
# Reproduces `llm:comllm-cost` (README: "The all-action stage"): the COMLLM stage with the
# `regress` objective from the cost-mode paper-protocol model lm-paper6-cost
# (scripts/train_paper6_cost.sh), on paper-6 only. Each iteration runs the current model in
# closed loop (deciding by its cost head), scores every action of up to 8 recorded decisions per
# slot by LACS (H 5, K 32; the slot's other tasks as the model decided them, later slots by the
# greedy oracle), and fits the cost head at each action line's end to log1p of every action's
# score (MSE + 0.1 x the squared distance to the start's estimates), 3 epochs at lr 1e-4. The 12
# iterations go round p 0.3 sequential, p 0.3, p 0.5 sequential, p 0.5 (--mix); the shipped model
# is the last. About 3.5 min per iteration on this 2-core CPU beside other runs (README).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/comllm-cost}
C=.venv/bin/comllm
$C improve --model comllm/checkpoints/lm-paper6-cost --out "$OUT" --scenario paper-6 \
  --mix "arrival_prob=0.3;decisions=sequential" --mix "arrival_prob=0.3" \
  --mix "arrival_prob=0.5;decisions=sequential" --mix "arrival_prob=0.5" \
  --iterations 12 --collect-slots 150 --states-per-slot 8 --epochs 3 --batch-size 32 --rollouts 32 \
  --objective regress --others policy --lr 1e-4 --beta 0.1 --eval-slots 200 --workers 1 --threads 2 \
  $( [ -d "$OUT/checkpoint-1" ] && echo --resume )
bash scripts/ship_checkpoint.sh "$OUT" comllm-cost
