#!/usr/bin/env bash
# Reproduces the shipped roles (README, "The sharing family"): lm-paper6-sharing (`llm:sft` =
# `llm:paper6-sharing`, SFT), lm-comllm-sharing (`llm:comllm` = `llm:comllm-sharing`, the all-action
# LACS stage from it) and lm-grpo-sharing (`llm:grpo` = `llm:grpo-sharing`, that stage without the
# look-ahead). The robust recipe (scripts/train_paper6_robust.sh, scripts/train_comllm_robust.sh) on the
# template lean-sharing, whose prompts print greedy:sharing's estimate (the cost head regresses it), and
# in the stage LACS rollouts that decide the other tasks as greedy:sharing does (--other-policy
# greedy-sharing) and a ten times stronger pull towards the start's estimates (--beta 1). All three
# draw among near-ties (cost_temperature 0.03). Needs the paper-6 records of
# scripts/train_paper6.sh (DATA, default runs/p6). Training about 6.7 + 3.4 + 2.8 min on this 2-core CPU
# (README). SHIP=0 trains without shipping.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/sharing}
export SHIP=${SHIP:-1}
TEMPLATE=lean-sharing NAME=paper6-sharing COST_TEMPERATURE=0.03 bash scripts/train_paper6_robust.sh "$OUT/sft"
START="$OUT/sft" NAME=comllm-sharing EXTRA="--other-policy greedy-sharing --beta 1" \
  bash scripts/train_comllm_robust.sh "$OUT/comllm"
START="$OUT/sft" NAME=grpo-sharing EXTRA="--other-policy greedy-sharing --beta 1 --lam 0 --horizon 0" \
  bash scripts/train_comllm_robust.sh "$OUT/grpo"
