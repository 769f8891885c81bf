#!/usr/bin/env bash
# Reproduces the shipped COMLLM model `llm:comllm` (README: "The all-action stage").
#
#   bash scripts/train_comllm.sh [OUT] [ITERATIONS]
#
# The all-action LACS stage (`comllm improve`) from the paper-protocol SFT model
# (comllm/checkpoints/lm-paper6, made by scripts/train_paper6.sh), on paper-6 only: each
# iteration runs the current model in closed loop, scores every action of 4 recorded decisions
# per slot by LACS (H 5, K 32; the slot's other tasks as the model decided them, later slots by
# the greedy oracle) and takes the exact expected-advantage step over the action set,
# -sum_a pi(a|s) A(a) + 0.3 KL(pi || pi_SFT), 2 epochs at lr 2e-5. The iterations go round
# p 0.3 sequential, p 0.3, p 0.5 sequential, p 0.5 (--mix). The shipped model is the last of the
# 8 iterations. About 1.4 min per iteration on this 2-core CPU (README "The all-action stage").
# Shipped as comllm/checkpoints/lm-comllm.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/comllm}
ITERS=${2:-8}
C=.venv/bin/comllm
$C improve --model comllm/checkpoints/lm-paper6 --out "$OUT" --scenario paper-6 \
  --mix "arrival_prob=0.3;decisions=sequential" --mix "arrival_prob=0.3" \
  --mix "arrival_prob=0.5;decisions=sequential" --mix "arrival_prob=0.5" \
  --iterations "$ITERS" --collect-slots 150 --states-per-slot 4 --epochs 2 --batch-size 32 --rollouts 32 \
  --objective advantage --others policy --lr 2e-5 --beta 0.3 --eval-slots 200 --workers 1 --threads 2 \
  $( [ -d "$OUT/checkpoint-1" ] && echo --resume )
rm -rf comllm/checkpoints/lm-comllm && mkdir -p comllm/checkpoints/lm-comllm
for f in config.json generation_config.json model.safetensors tokenizer_config.json word_tokenizer.json comllm.json; do
  cp "$OUT/final/$f" comllm/checkpoints/lm-comllm/
done
cp "$OUT/train_log.csv" comllm/checkpoints/lm-comllm/
cp "$OUT/config.json" comllm/checkpoints/lm-comllm/improve_config.json  # the run's settings (not the model's config)
echo "shipped comllm/checkpoints/lm-comllm"
