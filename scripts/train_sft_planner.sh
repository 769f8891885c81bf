#!/usr/bin/env bash
# The ablation "SFT on far-sighted labels" of the COMLLM table (README: "The all-action stage").
#
#   bash scripts/train_sft_planner.sh [OUT]
#
# 48,000 paper-6 records (p 0.3 and 0.5 x both protocols, 12,000 each) from the behaviour mix's
# closed-loop trajectories, labelled by the look-ahead planner `lacs-planner` (H 5, K 16), then the
# SFT of lm-paper6-robust on them (scripts/train_paper6_robust.sh: same shape, codec, perturbations
# and steps). Its cost head regresses the one-step estimates the prompt prints whatever the labels,
# so the planner's choices live in the answer head: evaluate it with `llm:OUT/sft,mode=score`.
# TEMPLATE=lean-sharing trains it in the sharing family's template (the records serve any template).
# Not shipped (README, the COMLLM table).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/sft-planner}
mkdir -p "$OUT"
C=.venv/bin/comllm
for p in 0.3 0.5; do for d in sequential simultaneous; do
  f="$OUT/sft-$p-$d.jsonl.gz"
  seed=$(( ${p/0./} + ${#d} + 100 ))  # 113 115 115 117
  [ -f "$f" ] || $C data --scenario paper-6 --n 12000 --split sft --template lean-v2 --labels lacs-planner \
    --set arrival_prob=$p --set decisions=$d --seed $seed --out "$f"
done; done
[ -f "$OUT/test-0.3.jsonl.gz" ] || $C data --scenario paper-6 --n 2000 --split test --template lean-v2 \
  --labels lacs-planner --set arrival_prob=0.3 --out "$OUT/test-0.3.jsonl.gz"
DATA=$OUT SHIP=0 bash scripts/train_paper6_robust.sh "$OUT/sft"
echo "model in $OUT/sft (--policy llm:$OUT/sft,mode=score)"
