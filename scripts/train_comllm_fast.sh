#!/usr/bin/env bash
# Reproduces `llm:comllm-fast` (README: "The all-action stage"): the COMLLM stage with the
# `regress` objective from the fast paper-protocol model lm-paper6-fast
# (scripts/train_paper6_fast.sh), on paper-6 only. The recipe of the retired lm-comllm-cost
# (closed-loop collection deciding by the cost head, LACS H 5 / K 32 of every action of up to 8
# decisions per slot, the slot's other tasks as the model decided them, log1p targets, 3 epochs
# at lr 1e-4, beta 0.1, the four --mix settings in turn), with the training prompts of its SFT:
# half of them name the servers by other ids from 1..24 (--renumber 0.5: the values fitted on six
# servers keep every id's token in use, so the model still reads paper-11), 30 % perturbed by
# shuffle-fields / paraphrase / numbers (FAMILIES, PROB), and each action line's value reading the task and its
# own line only (--line-compare none: what makes the values fitted on six servers carry over to eleven,
# docs/notes/fresh-models.md, seventh round). ITERATIONS (default 12) sets the length; START the starting model;
# EXTRA more options; SHIP=0 skips shipping. About 25 s per iteration on this 2-core CPU (README).
# The shipped checkpoint draws its action from softmax(-cost / COST_TEMPERATURE) under the simultaneous
# protocol (default 0.03, chosen on evaluation seeds 100-102, not the README's 0-2; eighth round).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/comllm-fast}
ITERATIONS=${ITERATIONS:-12}
FAMILIES=${FAMILIES:-shuffle-fields paraphrase numbers}
PROB=${PROB:-0.3}
COST_TEMPERATURE=${COST_TEMPERATURE:-0.03}
C=.venv/bin/comllm
$C improve --model "${START:-comllm/checkpoints/lm-paper6-fast}" --out "$OUT" --scenario paper-6 \
  --mix "arrival_prob=0.3;decisions=sequential" --mix "arrival_prob=0.3" \
  --mix "arrival_prob=0.5;decisions=sequential" --mix "arrival_prob=0.5" \
  --iterations "$ITERATIONS" --collect-slots 150 --states-per-slot 8 --epochs 3 --batch-size 32 --rollouts 32 \
  --objective regress --others policy --lr 1e-4 --beta 0.1 --eval-slots 200 --workers 1 --threads 2 \
  --renumber 0.5 --renumber-max 24 --line-compare none $(for f in $FAMILIES; do echo --perturb "$f"; done) --perturb-prob "$PROB" ${EXTRA:-} \
  $( [ -d "$OUT/checkpoint-1" ] && echo --resume )
[ "${SHIP:-1}" = 1 ] || exit 0
bash scripts/ship_checkpoint.sh "$OUT" comllm-fast cost "$COST_TEMPERATURE"
