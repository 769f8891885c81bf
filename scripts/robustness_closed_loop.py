"""Robustness in closed loop: what a rewritten prompt costs the running system.

    python scripts/robustness_closed_loop.py --policy llm:paper6-robust [--policy ...] \
        [--scenario paper-6] [--slots 500] [--seeds 3] [--out docs/results/robustness-closed-loop.json]

Each policy runs ``comllm simulate`` once per perturbation family of ``comllm.text.perturb``
(``none`` = the canonical prompts, then every family and ``all``; the llm policy's
``perturb=FAMILY`` option, evaluation seed 0), the same arrivals for every run. Prints
latency ± 95 % CI / drops per family and its ratio to the policy's own unperturbed latency
(1.00: the rewrite costs nothing), and writes the rows as JSON.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from comllm.evaluate.closed_loop import evaluate_closed_loop
from comllm.policies import make_policy
from comllm.scenario import load_scenario
from comllm.text.perturb import PERTURBATIONS


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--policy", action="append", required=True, help="an llm policy spec (repeatable)")
    ap.add_argument("--scenario", default="paper-6")
    ap.add_argument("--slots", type=int, default=500)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--out", type=Path, default=Path("docs/results/robustness-closed-loop.json"))
    args = ap.parse_args()
    scenario = load_scenario(args.scenario)
    rows = []
    for spec in args.policy:
        base = None
        for fam in ["none", *PERTURBATIONS]:
            full = spec if fam == "none" else f"{spec},perturb={fam}"
            summary, _ = evaluate_closed_loop(scenario, make_policy(full, scenario), slots=args.slots, seeds=args.seeds,
                                              warmup=args.warmup)  # fmt: skip
            lat = summary["avg_latency"]
            base = lat if base is None else base
            row = {"policy": spec, "perturbation": fam, "scenario": args.scenario, "slots": args.slots,
                   "seeds": args.seeds, "latency": lat, "latency_ci": summary.get("avg_latency_ci"),
                   "drop_rate": summary.get("drop_rate"), "jain": summary.get("jain_index"), "ratio_to_none": lat / base}  # fmt: skip
            rows.append(row)
            print(f"{spec} {fam}: {lat:.3f} ± {row['latency_ci'] or 0:.3f} / {100 * (row['drop_rate'] or 0):.2f} % drops,"
                  f" × {row['ratio_to_none']:.3f} of unperturbed", flush=True)  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
