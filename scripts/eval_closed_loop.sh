#!/usr/bin/env bash
# The closed-loop runs of a language model that the README's model tables quote:
#   bash scripts/eval_closed_loop.sh SPEC NAME [OUTDIR]     (PS="0.3 0.5" by default)
# 2,000 scored slots x 3 seeds (warm-up 200) on paper-6 and paper-11, each arrival probability of
# PS, in the default protocol and with decisions=sequential; two runs at a time at 1 torch thread
# each; results in OUTDIR/NAME-SCENARIO-P-PROTOCOL.json (default docs/results/comllm), logs in runs/.
set -euo pipefail
cd "$(dirname "$0")/.."
SPEC=$1 NAME=$2 OUT=${3:-docs/results/comllm}
mkdir -p runs "$OUT"
run() { .venv/bin/comllm simulate --scenario "$1" --policy "$SPEC,threads=1" --slots 2000 --seeds 3 --warmup 200 \
  --set arrival_prob="$2" --set decisions="$3" --json "$OUT/$NAME-$1-$2-$3.json" > "runs/$NAME-$1-$2-$3.log" 2>&1; }
for p in ${PS:-0.3 0.5}; do
  run paper-6 "$p" simultaneous & run paper-11 "$p" simultaneous & wait
  run paper-6 "$p" sequential & run paper-11 "$p" sequential & wait
done
