#!/usr/bin/env bash
# Screen of the settings of TRL's sampled GRPO (`comllm grpo`) from the paper-protocol SFT model
# lm-paper6 (README: "The all-action stage", the TRL path): each variant trains 100 steps of
# 4 prompts x G 8 on the prompts of scripts/train_grpo6.sh, then runs in closed loop on paper-6 at
# p 0.3 in both protocols, 1,000 scored slots x seeds 100-101 (seeds the README's tables, 0-2,
# do not use), beside its SFT start on the same slots. Prints one line per variant.
#
#   bash scripts/screen_grpo_trl.sh [OUT]            # VARIANTS="ship lacs" to run some of them
#
# ship: the first shipped lm-grpo's settings (lr 3e-5, temperature 1.0, beta 0.1, loss dapo, rewards
# scaled by the group's std, the task term's cost the paper's stale formula, --task-cost greedy); the
# others change one or two things each (incoming: the task term priced on the fresh view, --task-cost
# incoming, now the default). About 20 min on this 2-core CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/grpo-screen}
C=.venv/bin/comllm
mkdir -p "$OUT"
declare -A OPTS=(
  [ship]="--lacs off --task-cost greedy"
  [scale-none]="--lacs off --task-cost greedy --scale-rewards none"
  [loss-grpo]="--lacs off --task-cost greedy --loss-type grpo"
  [lr-1e-5]="--lacs off --task-cost greedy --lr 1e-5"
  [beta-0.5]="--lacs off --task-cost greedy --beta 0.5"
  [lacs]="--lacs sim --other-policy greedy-incoming --task-cost greedy"
  [lacs-scale-none]="--lacs sim --other-policy greedy-incoming --task-cost greedy --scale-rewards none"
  [incoming]="--lacs off --task-cost incoming"
  [incoming-scale-none]="--lacs off --task-cost incoming --scale-rewards none"
  [incoming-lr-1e-5]="--lacs off --task-cost incoming --lr 1e-5"
  [lacs-incoming]="--lacs sim --other-policy greedy-incoming --task-cost incoming"
)
VARIANTS=${VARIANTS:-ship incoming incoming-scale-none incoming-lr-1e-5 lacs-incoming}
for d in simultaneous sequential; do
  f="$OUT/grpo-0.3-$d.jsonl.gz"  # the prompts of scripts/train_grpo6.sh (same seed)
  [ -f "$f" ] || $C data --scenario paper-6 --n 1500 --split grpo --template lean-v2 --labels greedy:incoming \
    --set arrival_prob=0.3 --set decisions=$d --seed 61 --out "$f"
done
evaluate() {  # MODEL NAME: both protocols side by side
  for d in simultaneous sequential; do
    [ -f "$OUT/$2-$d.json" ] || $C simulate --scenario paper-6 --policy "llm:$1,threads=1" --slots 1000 --seeds 2 \
      --first-seed 100 --warmup 200 --set arrival_prob=0.3 --set decisions=$d --json "$OUT/$2-$d.json" > "$OUT/$2-$d.log" 2>&1 &
  done
  wait
}
evaluate comllm/checkpoints/lm-paper6 sft
for v in $VARIANTS; do
  [ -f "$OUT/$v/model.safetensors" ] || $C grpo --model comllm/checkpoints/lm-paper6 \
    --data "$OUT/grpo-0.3-simultaneous.jsonl.gz" --data "$OUT/grpo-0.3-sequential.jsonl.gz" \
    --steps 100 -G 8 --prompts-per-step 4 --lr 3e-5 --temperature 1.0 --beta 0.1 ${OPTS[$v]} \
    --save-every 100 --log-every 10 --threads 2 --no-progress --seed 0 --out "$OUT/$v" > "$OUT/$v.log" 2>&1
  evaluate "$OUT/$v" "$v"
done
.venv/bin/python - "$OUT" sft $VARIANTS <<'PY'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
print(f"{'variant':18s} {'simultaneous':>28s} {'sequential':>28s}")
for v in sys.argv[2:]:
    cells = []
    for d in ("simultaneous", "sequential"):
        r = json.loads((out / f"{v}-{d}.json").read_text())
        cells.append(f"{r['avg_latency']:.3f} ± {r['avg_latency_ci']:.3f} / {100 * r['drop_rate']:.2f} % / {r['jain_index']:.2f}")
    print(f"{v:18s} {cells[0]:>28s} {cells[1]:>28s}")
PY
