#!/usr/bin/env bash
# Reproduces the shipped COMLLM model `llm:comllm` (README: "The all-action stage").
#
#   bash scripts/train_comllm.sh [OUT] [ITERATIONS]
#
# The all-action LACS stage (`comllm improve`) from the paper-protocol SFT model
# (comllm/checkpoints/lm-paper6, made by scripts/train_paper6.sh), on paper-6 only: each
# iteration runs the current model in closed loop, scores every action of 4 recorded decisions
# per slot by LACS (H 5, K 16; the slot's other tasks as the model decided them, later slots by
# the greedy oracle) and takes the exact expected-advantage step over the action set,
# -sum_a pi(a|s) A(a) + 0.1 KL(pi || pi_SFT), 2 epochs at lr 1e-4. The iterations go round
# p 0.3 / 0.5 and both protocols (--mix). The shipped model is iteration 8 of this recipe (the
# run went on to iteration 9, whose simultaneous evaluation had started to herd, and was stopped:
# docs/notes/fresh-models.md). About 1 min per iteration on this 2-core CPU.
# Shipped as comllm/checkpoints/lm-comllm.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/comllm}
ITERS=${2:-8}
C=.venv/bin/comllm
$C improve --model comllm/checkpoints/lm-paper6 --out "$OUT" --scenario paper-6 \
  --mix "arrival_prob=0.3" --mix "arrival_prob=0.5;decisions=sequential" \
  --mix "arrival_prob=0.5" --mix "arrival_prob=0.3;decisions=sequential" \
  --iterations "$ITERS" --collect-slots 150 --states-per-slot 4 --epochs 2 --batch-size 32 \
  --objective advantage --others policy --lr 1e-4 --beta 0.1 --eval-slots 200 --workers 1 --threads 2 \
  $( [ -d "$OUT/checkpoint-1" ] && echo --resume )
rm -rf comllm/checkpoints/lm-comllm && mkdir -p comllm/checkpoints/lm-comllm
for f in config.json generation_config.json model.safetensors tokenizer_config.json word_tokenizer.json comllm.json; do
  cp "$OUT/final/$f" comllm/checkpoints/lm-comllm/
done
cp "$OUT/train_log.csv" comllm/checkpoints/lm-comllm/
cp "$OUT/config.json" comllm/checkpoints/lm-comllm/improve_config.json  # the run's settings (not the model's config)
echo "shipped comllm/checkpoints/lm-comllm"
