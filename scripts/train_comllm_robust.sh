#!/usr/bin/env bash
# Reproduces comllm/checkpoints/lm-comllm-robust (`llm:comllm-robust`): the COMLLM stage of
# scripts/train_comllm_fast.sh (regress objective, 12 iterations round the four paper-6 settings)
# from lm-paper6-robust (scripts/train_paper6_robust.sh), its training prompts perturbed as that
# model's were: 60 % of them, drawn among shuffle-fields, paraphrase, numbers, units and those four
# at once (shuffle-servers held out). Wall time: README ("The robust model"). EXTRA adds options of
# `comllm improve`, NAME names the checkpoint shipped (lm-NAME; scripts/train_grpo_robust.sh), SHIP=0 skips it,
# START replaces the starting model.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/comllm-robust}
START=${START:-comllm/checkpoints/lm-paper6-robust} PROB=0.6 SHIP=0 \
  FAMILIES="shuffle-fields paraphrase numbers units shuffle-fields+paraphrase+units+numbers" \
  bash scripts/train_comllm_fast.sh "$OUT"
[ "${SHIP:-1}" = 1 ] || exit 0
bash scripts/ship_checkpoint.sh "$OUT" "${NAME:-comllm-robust}" cost 0.03
