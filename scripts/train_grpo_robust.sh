#!/usr/bin/env bash
# Reproduces comllm/checkpoints/lm-grpo-robust (`llm:grpo-robust`): the ablation of the
# COMLLM stage without the look-ahead, as the pipeline's GRPO row (configs/paper.yaml, `grpo.method:
# all-actions`): scripts/train_comllm_robust.sh with --lam 0 --horizon 0, so each action is scored by
# its own task's latency only. Same start (lm-paper6-robust), perturbations and iterations.
# Wall time: README ("Shipped models").
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRA="--lam 0 --horizon 0" NAME=grpo-robust bash scripts/train_comllm_robust.sh "${1:-runs/grpo-robust}"
