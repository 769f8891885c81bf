#!/usr/bin/env bash
# Reproduces comllm/checkpoints/lm-default, the `llm` policy (README: "The language-model policy").
#
#   bash scripts/train_default.sh [OUT]
#
# The fast robust recipe of lm-paper6-robust (scripts/train_paper6_robust.sh: a 2 x 64 model that
# decides by its cost head, wide value codec, 60 % of the prompts perturbed, `shuffle-servers` held
# out) on the states the default serves: paper-6 physics with 2-24 servers per episode, the fresh
# view's template `lean-v2` and oracle `greedy:incoming`, 80,000 records at p 0.3 and 0.5, half under
# each decision protocol. CPU only. Wall time: README.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/default}
mkdir -p "$OUT"
C=.venv/bin/comllm
for p in 0.3 0.5; do
  for d in simultaneous sequential; do
    f="$OUT/sft-$p-$d.jsonl.gz"
    seed=$(( 20 + ${p/0./} + ${#d} ))
    [ -f "$f" ] || $C data --scenario paper-6 --servers 2-24 --n 20000 --split sft --template lean-v2 \
      --labels greedy:incoming --set arrival_prob=$p --set decisions=$d --seed $seed --out "$f"
  done
done
[ -f "$OUT/test-0.3.jsonl.gz" ] || $C data --scenario paper-6 --servers 2-24 --n 2000 --split test --template lean-v2 \
  --labels greedy:incoming --set arrival_prob=0.3 --out "$OUT/test-0.3.jsonl.gz"
DATA=$OUT NAME=default bash scripts/train_paper6_robust.sh "$OUT/sft"
