#!/usr/bin/env bash
# A standalone GRPO recipe from the shipped SFT default (comllm/checkpoints/lm-default):
#   GRPO without LACS (--lacs off), the ablation, and COMLLM: GRPO with the simulated LACS term (--lacs sim).
# NOTE: the shipped comllm/checkpoints/lm-grpo and lm-comllm were NOT made by this script but by
#   comllm pipeline --config configs/paper.yaml   (stages grpo and comllm; README, Results and LACS sections).
# Both runs share data, seed, steps and every other option; one at a time (2-core CPU).
# Logs and wall times: runs/grpo-ship/{grpo,comllm}.log, train_log.csv in each checkpoint.
#
# Usage: scripts/train_grpo.sh [STEPS]   train both (default 200 steps of 8 prompts x G=4 completions)
#        scripts/train_grpo.sh eval      the README table: closed loop, 2000 slots x 3 seeds, JSON in runs/grpo-eval/
set -euo pipefail
cd "$(dirname "$0")/.."
COMLLM=".venv/bin/comllm"
PY=".venv/bin/python"
OUT=runs/grpo-ship

if [ "${1:-}" = "eval" ]; then
  mkdir -p runs/grpo-eval
  for sc in paper-6 paper-11; do
    for p in 0.3 0.5; do
      /usr/bin/time -f "%e s wall" $COMLLM simulate --scenario $sc --set arrival_prob=$p --slots 2000 --seeds 3 \
        --policy greedy --policy llm:threads=1 --policy llm:comllm/checkpoints/lm-grpo,threads=1 \
        --policy llm:comllm/checkpoints/lm-comllm,threads=1 \
        --json runs/grpo-eval/${sc}_p${p}.json --markdown runs/grpo-eval/${sc}_p${p}.md
    done
  done
  exit 0
fi

STEPS="${1:-200}"
mkdir -p "$OUT"

# GRPO prompts with simulator snapshots: paper-6 at the default load and at a heavy one (greedy drops ~13 %)
[ -f "$OUT/grpo-p03.jsonl" ] || $COMLLM data --split grpo --scenario paper-6 --n 3000 --seed 0 --out "$OUT/grpo-p03.jsonl"
[ -f "$OUT/grpo-p05.jsonl" ] || $COMLLM data --split grpo --scenario paper-6 --set arrival_prob=0.5 --n 3000 --seed 0 \
  --out "$OUT/grpo-p05.jsonl"

# normalised shaping: with the reference shaping, at heavy load an invalid answer (-10) out-scores every valid one
# whenever all actions are predicted to miss the deadline (see comllm/grpo/config.py)
COMMON=(--model comllm/checkpoints/lm-default --data "$OUT/grpo-p03.jsonl" --data "$OUT/grpo-p05.jsonl"
        --steps "$STEPS" --prompts-per-step 8 --num-generations 4 --lr 1e-4 --beta 0.005 --temperature 1.3
        --top-p 0.95 --max-completion-length 15 --shaping normalised --seed 0 --save-every 50 --log-every 5
        --no-progress)

for run in grpo:off comllm:sim; do
  name="${run%%:*}"; lacs="${run##*:}"
  rm -rf "$OUT/$name"
  start=$(date +%s)
  # one torch thread while the machine is shared (load above 1.5)
  threads=$(awk '{print ($1 > 1.5) ? 1 : 2}' /proc/loadavg)
  $COMLLM grpo "${COMMON[@]}" --lacs "$lacs" --lacs-weight 0.3 --horizon 5 --rollouts 16 --threads "$threads" \
    --out "$OUT/$name" 2>&1 | grep -v "Writing model shards\|Loading weights" | tee "$OUT/$name.log"
  echo "wall: $(( $(date +%s) - start )) s ($name, $threads threads)" | tee -a "$OUT/$name.log"
  $PY -c "from comllm.grpo import export_model; export_model('$OUT/$name', 'comllm/checkpoints/lm-$name')"
done
