#!/usr/bin/env bash
# What the look-ahead is worth to the planner itself (README, "LACS": "What the look-ahead adds"):
#   bash scripts/planner_lookahead.sh [OUTDIR]      (default docs/results/planner-lookahead)
# lacs-planner with horizon 0 (each task's own simulated latency, no later task) beside horizon 5
# at the default weight 0.3 and at weight 1 (later slots decided by greedy or greedy:incoming in the
# rollouts), with greedy:incoming for scale; paper-6 at p 0.3 and 0.5, both decision protocols; 500
# scored slots x evaluation seeds 100-101 (warm-up 200), one run at a time. Tables in OUTDIR/*.md.
# RULE=greedy-sharing (or another rollout rule of comllm.sim.batch) runs instead horizon 0, horizon 5
# and horizon 5 at weight 1 with that rule deciding every other task in the rollouts, into
# OUTDIR/RULE-*.{json,md}.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-docs/results/planner-lookahead}
mkdir -p "$OUT"
for p in 0.3 0.5; do
  for d in simultaneous sequential; do
    if [ -n "${RULE:-}" ]; then
      policies=(--policy "lacs-planner:0,16,$RULE" --policy "lacs-planner:5,16,$RULE" --policy "lacs-planner:5,16,$RULE,1")
      name="$RULE-paper-6-$p-$d"
    else
      policies=(--policy lacs-planner:0,16 --policy lacs-planner:5,16 --policy lacs-planner:5,16,greedy,1
        --policy lacs-planner:5,16,greedy-incoming,1 --policy greedy:incoming)
      name="paper-6-$p-$d"
    fi
    .venv/bin/comllm simulate --scenario paper-6 --set arrival_prob="$p" --set decisions="$d" "${policies[@]}" \
      --slots 500 --seeds 2 --first-seed 100 --warmup 200 \
      --json "$OUT/$name.json" --markdown "$OUT/$name.md"
  done
done
