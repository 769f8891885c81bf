#!/usr/bin/env bash
# Reproduces the shipped COMLLM model `llm:comllm` (README: "The all-action stage").
#
#   bash scripts/train_comllm.sh [OUT] [ITERATIONS]
#
# The all-action LACS stage (`comllm improve`) from the paper-protocol SFT model
# (comllm/checkpoints/lm-paper6, made by scripts/train_paper6.sh), on paper-6 only: each
# iteration runs the current model in closed loop, scores every action of 4 recorded
# decisions per slot by LACS (H 5, K 16; the slot's other tasks and later slots decided by the
# greedy oracle), and fits the model on those states to the look-ahead's ranking of every
# action (--objective soft-best: cross-entropy to softmax(-score / 0.25 slot)) with a KL anchor
# to the SFT model. (The expected-advantage objective, --objective advantage, herded at every
# learning rate tried here: README.) The iterations go round the loads and protocols
# (--mix). Shipped as comllm/checkpoints/lm-comllm. Wall time: README.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/comllm}
ITERS=${2:-20}
C=.venv/bin/comllm
$C improve --model comllm/checkpoints/lm-paper6 --out "$OUT" --scenario paper-6 \
  --mix "arrival_prob=0.3" --mix "arrival_prob=0.5;decisions=sequential" \
  --mix "arrival_prob=0.5" --mix "arrival_prob=0.3;decisions=sequential" \
  --iterations "$ITERS" --collect-slots 150 --states-per-slot 4 --epochs 2 --batch-size 32 \
  --objective soft-best --tau 0.25 --others greedy --lr 3e-4 --beta 0.05 --eval-slots 200 --workers 1 --threads 2 $( [ -d "$OUT/checkpoint-1" ] && echo --resume )
rm -rf comllm/checkpoints/lm-comllm && mkdir -p comllm/checkpoints/lm-comllm
for f in config.json generation_config.json model.safetensors tokenizer_config.json word_tokenizer.json comllm.json; do
  cp "$OUT/final/$f" comllm/checkpoints/lm-comllm/
done
cp "$OUT/train_log.csv" comllm/checkpoints/lm-comllm/
cp "$OUT/config.json" comllm/checkpoints/lm-comllm/improve_config.json  # the run's settings (not the model's config)
echo "shipped comllm/checkpoints/lm-comllm"
