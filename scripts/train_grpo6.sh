#!/usr/bin/env bash
# Reproduces the shipped plain-GRPO model `llm:grpo` (README: "The all-action stage", the GRPO row).
#
#   bash scripts/train_grpo6.sh [OUT]
#
# TRL's GRPOTrainer without the look-ahead term (`--lacs off`: the reward is the chosen action's
# one-step latency on the fresh view, `--task-cost incoming`, plus the format bonus; priced by the
# paper's stale formula, `--task-cost greedy`, it made its start worse: scripts/screen_grpo_trl.sh)
# from the paper-protocol SFT model lm-paper6, on 3,000
# paper-6 prompts at p 0.3 (half of them recorded under each decision protocol): 100 steps of
# 4 prompts x G 8, lr 3e-5, temperature 1.0, beta 0.1, 1 CPU thread (77 s on this 2-core CPU).
# Shipped as comllm/checkpoints/lm-grpo.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/grpo6}
mkdir -p "$OUT"
C=.venv/bin/comllm
for d in simultaneous sequential; do
  f="$OUT/grpo-0.3-$d.jsonl.gz"
  [ -f "$f" ] || $C data --scenario paper-6 --n 1500 --split grpo --template lean-v2 --labels greedy:incoming \
    --set arrival_prob=0.3 --set decisions=$d --seed 61 --out "$f"
done
[ -f "$OUT/run/model.safetensors" ] || $C grpo --model comllm/checkpoints/lm-paper6 \
  --data "$OUT/grpo-0.3-simultaneous.jsonl.gz" --data "$OUT/grpo-0.3-sequential.jsonl.gz" \
  --lacs off --task-cost incoming --steps 100 -G 8 --prompts-per-step 4 --lr 3e-5 --temperature 1.0 --beta 0.1 \
  --save-every 50 --log-every 10 --threads 1 --no-progress --seed 0 --out "$OUT/run"
rm -rf comllm/checkpoints/lm-grpo && mkdir -p comllm/checkpoints/lm-grpo
for f in config.json generation_config.json model.safetensors tokenizer_config.json word_tokenizer.json comllm.json grpo_config.json train_log.csv train_summary.json; do
  [ -f "$OUT/run/$f" ] && cp "$OUT/run/$f" comllm/checkpoints/lm-grpo/
done
echo "shipped comllm/checkpoints/lm-grpo"
