"""Zero-shot topology and prompt robustness of language-model policies, open loop (README tables).

    python scripts/zero_shot.py --policy llm:paper6 --policy llm:comllm [--n 2000] [--out docs/results]

Test sets (``comllm data --split test`` states, paper-6 devices and load, fresh view): the
server counts 3, 6, 8, 11, 16, 24 (mixed preset types) and a 6-server set whose CPU speeds
are drawn uniformly from 15-60 GHz per episode (speeds no preset has). Every policy decides
every state; scored against the fresh view's one-step oracle (``--oracle incoming`` of
``comllm eval-data``; ``greedy:incoming`` is 1.0 by construction) and the paper's.

Robustness: the 6-server set rendered under every perturbation family of
``comllm.text.perturb`` and ``all``, evaluation seed 0 (training draws its perturbation
seeds from 1,000,000 on: ``comllm sft --perturb``), accuracy and perf ratio per family.

Writes ``OUT/zero-shot.{json,md}`` and ``OUT/robustness.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from comllm.data import generate_records
from comllm.evaluate.open_loop import evaluate_open_loop
from comllm.policies import make_policy
from comllm.scenario import ServerSpec, load_scenario
from comllm.text.perturb import PERTURBATIONS, perturbed_template

COUNTS = (3, 6, 8, 11, 16, 24)


def test_states(n_servers: int | None, n: int, seed: int, speeds: bool = False) -> list:
    """``n`` test states with ``n_servers`` servers (or six of unseen speeds when ``speeds``)."""
    if not speeds:
        return [r.task_state() for r in generate_records(load_scenario("paper-6"), n, "test", "lean-v2", seed,
                                                         servers=n_servers)]  # fmt: skip
    out, episode = [], 0
    rng = np.random.default_rng(seed)
    while len(out) < n:
        ghz = rng.uniform(15.0, 60.0, 6).round(1)
        types = ["high-performance" if g >= 36 else "standard" if g >= 26 else "energy-saving" for g in ghz]
        sc = load_scenario("paper-6", {"servers": [ServerSpec(type=t, ghz=float(g)).model_dump() for t, g in zip(types, ghz)]})
        out += [r.task_state() for r in generate_records(sc, min(250, n - len(out)), "test", "lean-v2", seed + 1 + episode)]
        episode += 1
    return out[:n]


def markdown(rows: list[dict], key: str, columns: list[str]) -> str:
    policies = list(dict.fromkeys(r["policy"] for r in rows))
    head = f"| policy | {' | '.join(columns)} |\n|---|{'---|' * len(columns)}\n"
    body = ""
    for p in policies:
        cells = []
        for c in columns:
            r = next((x for x in rows if x["policy"] == p and str(x[key]) == c), None)
            cells.append("–" if r is None else f"{r['perf_ratio']:.3f} / {r['accuracy']:.3f}"
                         + (f" / {100 * r['invalid_rate']:.1f} % inv." if r["invalid_rate"] > 0 else ""))  # fmt: skip
        body += f"| {p} | {' | '.join(cells)} |\n"
    return head + body


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--policy", action="append", required=True)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--out", type=Path, default=Path("docs/results"))
    ap.add_argument("--seed", type=int, default=500)
    ap.add_argument("--robustness-only", action="store_true", help="only the 6-server set and the robustness table")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    counts = (6,) if args.robustness_only else COUNTS
    sets = {str(n): test_states(n, args.n, args.seed + n) for n in counts}
    if not args.robustness_only:
        sets["15-60 GHz"] = test_states(None, args.n, args.seed + 99, speeds=True)
    print(f"test sets: {time.perf_counter() - t0:.0f} s")
    specs = [] if args.robustness_only else ["greedy", "greedy:incoming", *args.policy]
    zs: list[dict] = []
    for spec in specs:
        for name, states in sets.items():
            pol = make_policy(spec)
            for oracle in ("incoming", "paper"):
                r = evaluate_open_loop(states, pol, oracle=oracle)
                zs.append({"policy": spec, "set": name, "oracle": oracle, **{k: r[k] for k in (
                    "n", "accuracy", "cost_match", "perf_ratio", "invalid_rate", "avg_cost", "oracle_avg_cost", "jain_index")}})  # fmt: skip
            print(spec, name, f"{zs[-2]['perf_ratio']:.3f} / {zs[-2]['accuracy']:.3f}", flush=True)
    if zs:
        write_zero_shot(args.out, zs, list(sets))
    rob = robustness(args.policy, sets["6"])
    (args.out / "robustness.json").write_text(json.dumps(rob, indent=1))
    (args.out / "robustness.md").write_text(
        "perf ratio / accuracy, 6 servers, against the fresh view's oracle\n\n"
        + markdown(rob, "perturbation", ["none", *PERTURBATIONS])
    )
    print(f"done in {time.perf_counter() - t0:.0f} s")


def write_zero_shot(out: Path, zs: list[dict], cols: list[str]) -> None:
    (out / "zero-shot.json").write_text(json.dumps(zs, indent=1))
    md = "perf ratio / accuracy against the fresh view's one-step oracle (`--oracle incoming`)\n\n"
    md += markdown([r for r in zs if r["oracle"] == "incoming"], "set", cols)
    md += "\nagainst the paper's cost model (`--oracle paper`)\n\n" + markdown([r for r in zs if r["oracle"] == "paper"], "set", cols)
    (out / "zero-shot.md").write_text(md)


def robustness(policies: list[str], six: list) -> list[dict]:
    rob: list[dict] = []
    for spec in policies:
        for fam in ["none", *PERTURBATIONS]:
            pol = make_policy(spec)
            if fam != "none":
                pol.template = perturbed_template(fam, seed=0, base=pol.template)
            r = evaluate_open_loop(six, pol, oracle="incoming")
            rob.append({"policy": spec, "perturbation": fam, **{k: r[k] for k in ("n", "accuracy", "cost_match", "perf_ratio", "invalid_rate")}})
            print(spec, fam, f"{r['perf_ratio']:.3f} / {r['accuracy']:.3f}", flush=True)
    return rob


if __name__ == "__main__":
    main()
