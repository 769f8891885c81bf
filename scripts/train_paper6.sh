#!/usr/bin/env bash
# Reproduces the paper-protocol language model `llm:paper6` (= `llm:sft` = `llm:paper6-robust`;
# README: "The language-model policy").
#
#   bash scripts/train_paper6.sh [OUT]
#
# Every stage sees paper-6 states only (six servers of the three preset types, 30 devices):
# 60,000 records from closed-loop trajectories at p 0.3 and 0.5, half under each decision
# protocol, labelled by `greedy:incoming` (the fresh view's one-step oracle), written to OUT; then
# the model of scripts/train_paper6_robust.sh (a 2 x 64 model deciding by its cost head, wide value
# codec, 60 % of the prompts perturbed, `shuffle-servers` held out) is trained on them and shipped
# as comllm/checkpoints/lm-paper6-robust. The same records feed scripts/train_paper6_fast.sh. The
# 0.89 M model this script made before (lm-paper6) is retired: README "Retired checkpoints".
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/p6}
mkdir -p "$OUT"
C=.venv/bin/comllm
for p in 0.3 0.5; do
  for d in simultaneous sequential; do
    f="$OUT/sft-$p-$d.jsonl.gz"
    seed=$(( ${p/0./} + ${#d} ))  # 15 13 17 15 (the seeds of the shipped run)
    [ -f "$f" ] || $C data --scenario paper-6 --n 15000 --split sft --template lean-v2 --labels greedy:incoming \
      --set arrival_prob=$p --set decisions=$d --seed $seed --out "$f"
  done
  [ -f "$OUT/test-$p.jsonl.gz" ] || $C data --scenario paper-6 --n 2000 --split test --template lean-v2 \
    --labels greedy:incoming --set arrival_prob=$p --out "$OUT/test-$p.jsonl.gz"
done
DATA=$OUT bash scripts/train_paper6_robust.sh "$OUT/robust"
