#!/usr/bin/env bash
# Reproduces comllm/checkpoints/lm-paper6-robust (`llm:paper6-robust`): the fast model's shape and
# recipe (scripts/train_paper6_fast.sh, the paper-6 records of scripts/train_paper6.sh: run that first
# for the data) on the wide value codec (VALUE_RANGE=wide, the default of `comllm sft`: values in other units
# read unclipped, their features moved by a change of unit, comllm/lm/values.py), 60 % of the prompts
# perturbed, `units` and the four families at once among the families drawn; `shuffle-servers` is
# held out (alone and inside `all`). 6,000 steps x 48. Wall time: README ("Robustness").
# DATA names the records' folder, NAME the checkpoint shipped (lm-NAME; scripts/train_default.sh
# ships the same recipe on its 2-24-server records as lm-default); SHIP=0 trains without shipping;
# COST_TEMPERATURE=T ships it drawing among near-ties (llm option cost_temperature).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/p6robust}
export DATA=${DATA:-runs/p6}
VALUE_RANGE=wide FAMILIES="shuffle-fields paraphrase numbers units shuffle-fields+paraphrase+units+numbers" PROB=0.6 STEPS=6000 SHIP=0 \
  bash scripts/train_paper6_fast.sh "$OUT"
[ "${SHIP:-1}" = 1 ] || exit 0
bash scripts/ship_checkpoint.sh "$OUT" "${NAME:-paper6-robust}" cost ${COST_TEMPERATURE:-}
