"""Open-loop perf ratio under the ``units`` perturbation, split by the time unit each prompt drew.

    python scripts/units_by_time_unit.py --policy llm:paper6-robust [--data runs/p6/test-0.3.jsonl.gz] [--n 1000]

A ``units`` prompt writes its times (estimates, waits) in ``s`` or in ``ms``; this scores the
policy's decisions on the same test states rendered with ``units`` (evaluation seed 0) against
the fresh view's one-step oracle, for the prompts in each time unit apart, beside the same
policy on the canonical prompts (docs/notes/fresh-models.md, tenth round).
"""

from __future__ import annotations

import argparse
import itertools

import numpy as np

from comllm.cost import action_costs
from comllm.data import read_records, state_from_dict
from comllm.policies import make_policy
from comllm.state import StateBatch
from comllm.text.perturb import perturbed_template


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--policy", required=True)
    ap.add_argument("--data", default="runs/p6/test-0.3.jsonl.gz", help="records from `comllm data` (paper-6)")
    ap.add_argument("--n", type=int, default=1000)
    args = ap.parse_args()
    states = [state_from_dict(r.state) if isinstance(r.state, dict) else r.state
              for r in itertools.islice(read_records(args.data), args.n)]  # fmt: skip
    pol = make_policy(args.policy)
    canonical = pol.template
    units = perturbed_template("units", seed=0, base=canonical)
    unit = np.array(["ms" if " ms" in units.render_prompt(s) else "s" for s in states])
    costs = action_costs(StateBatch.from_states(states), incoming=True)
    rows = np.arange(len(states))
    plain = pol.decide(states)
    pol.template = units
    rewritten = pol.decide(states)
    for name in ("s", "ms"):
        m = unit == name
        best = costs[m].min(1).sum()
        print(f"{name}: {int(m.sum())} prompts, perf ratio {best / costs[rows[m], rewritten[m]].sum():.3f} "
              f"(canonical prompts {best / costs[rows[m], plain[m]].sum():.3f})")  # fmt: skip


if __name__ == "__main__":
    main()
