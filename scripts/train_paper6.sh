#!/usr/bin/env bash
# Reproduces the paper-protocol language model `llm:paper6` (README: "The language-model policy").
#
#   bash scripts/train_paper6.sh [OUT]
#
# Every stage sees paper-6 states only (six servers of the three preset types, 30 devices):
# 60,000 records from closed-loop trajectories at p 0.3 and 0.5, half under each decision
# protocol, labelled by `greedy:incoming` (the fresh view's one-step oracle); SFT of a new
# embedded value-aware decoder (3 layers, 128 wide) on the short fresh-view template `lean-v2`,
# 30 % of the prompts perturbed (every family but `units`, which is held out of training).
# Stage 2 continues from stage 1 on the same records with the per-action cost head (it regresses
# the printed estimates at each action line's end and names the line's answer token: the dense
# signal that makes the small model read the argmin) and 30 % of the canonical prompts renumbered
# (servers named by random increasing ids from 1..24). Shipped as comllm/checkpoints/lm-paper6
# (stage 2). Wall time: README.
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
[ -f "$OUT/sft/model.safetensors" ] || $C sft --model default --value-range narrow --template lean-v2 \
  $(for f in "$OUT"/sft-*.jsonl.gz; do echo --data "$f"; done) \
  --hidden 128 --layers 3 --heads 4 --intermediate 384 --steps 3000 --batch-size 48 --lr 2e-3 --seed 0 \
  --perturb shuffle-fields --perturb paraphrase --perturb numbers --perturb shuffle-servers --perturb-prob 0.3 \
  --eval-data "$OUT/test-0.3.jsonl.gz" --eval-every 500 --eval-size 1000 --save-every 500 --threads 2 --no-progress \
  --out "$OUT/sft"
[ -f "$OUT/sft2/model.safetensors" ] || $C sft --model "$OUT/sft" \
  $(for f in "$OUT"/sft-*.jsonl.gz; do echo --data "$f"; done) \
  --steps 2500 --batch-size 48 --lr 1e-3 --seed 1 --cost-head 1.0 --renumber 0.3 --renumber-max 24 \
  --perturb shuffle-fields --perturb paraphrase --perturb numbers --perturb shuffle-servers --perturb-prob 0.3 --perturb-seed 1 \
  --eval-data "$OUT/test-0.3.jsonl.gz" --eval-every 500 --eval-size 1000 --save-every 500 --threads 2 --no-progress \
  --out "$OUT/sft2"
rm -rf comllm/checkpoints/lm-paper6 && mkdir -p comllm/checkpoints/lm-paper6
for f in config.json generation_config.json model.safetensors tokenizer_config.json word_tokenizer.json comllm.json train_log.csv train_summary.json; do
  [ -f "$OUT/sft2/$f" ] && cp "$OUT/sft2/$f" comllm/checkpoints/lm-paper6/
done
cp "$OUT/sft/train_log.csv" comllm/checkpoints/lm-paper6/train_log_stage1.csv
echo "shipped comllm/checkpoints/lm-paper6"
